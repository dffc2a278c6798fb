//! Request codes, response codes, language codes and the protocol version we send.
//!
//! Values are from the Java sources (`RequestCode.java`, `ResponseCode.java`,
//! `RemotingSysResponseCode.java`, `LanguageCode.java`, `MQVersion.java`).

/// Request codes a producer sends or receives.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestCode;

impl RequestCode {
    /// SEND_MESSAGE, V1 long-name header.
    pub const SEND_MESSAGE: i32 = 10;
    /// PULL_MESSAGE (consumers; never sent by a producer).
    pub const PULL_MESSAGE: i32 = 11;
    /// QUERY_MESSAGE by key.
    pub const QUERY_MESSAGE: i32 = 12;
    /// UPDATE_AND_CREATE_TOPIC (admin).
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    /// GET_MAX_OFFSET of a queue; the fault detector's probe.
    pub const GET_MAX_OFFSET: i32 = 30;
    /// VIEW_MESSAGE_BY_ID: a stored message by commit-log offset.
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    /// HEART_BEAT: register the client and its groups.
    pub const HEART_BEAT: i32 = 34;
    /// UNREGISTER_CLIENT on shutdown.
    pub const UNREGISTER_CLIENT: i32 = 35;
    /// END_TRANSACTION: commit or roll back a half message (oneway).
    pub const END_TRANSACTION: i32 = 37;
    /// CHECK_TRANSACTION_STATE: broker to client, oneway.
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    /// NOTIFY_CONSUMER_IDS_CHANGED: broker to client, oneway (consumers only).
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// PUT_KV_CONFIG (admin, name server).
    pub const PUT_KV_CONFIG: i32 = 100;
    /// GET_KV_CONFIG (admin, name server).
    pub const GET_KV_CONFIG: i32 = 101;
    /// GET_ROUTEINFO_BY_TOPIC, to a name server.
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// GET_BROKER_CLUSTER_INFO, to a name server.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    /// RESET_CONSUMER_CLIENT_OFFSET: broker to client (consumers only).
    pub const RESET_CONSUMER_CLIENT_OFFSET: i32 = 220;
    /// GET_CONSUMER_STATUS_FROM_CLIENT: broker to client (consumers only).
    pub const GET_CONSUMER_STATUS_FROM_CLIENT: i32 = 221;
    /// GET_CONSUMER_RUNNING_INFO: broker to client (consumers only).
    pub const GET_CONSUMER_RUNNING_INFO: i32 = 307;
    /// CONSUME_MESSAGE_DIRECTLY: broker to client (consumers only).
    pub const CONSUME_MESSAGE_DIRECTLY: i32 = 309;
    /// SEND_MESSAGE_V2, short-key header; the Java default.
    pub const SEND_MESSAGE_V2: i32 = 310;
    /// SEND_BATCH_MESSAGE, V2 header, batch body.
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// SEND_REPLY_MESSAGE (V1 header).
    pub const SEND_REPLY_MESSAGE: i32 = 324;
    /// SEND_REPLY_MESSAGE_V2.
    pub const SEND_REPLY_MESSAGE_V2: i32 = 325;
    /// PUSH_REPLY_MESSAGE_TO_CLIENT: broker to client.
    pub const PUSH_REPLY_MESSAGE_TO_CLIENT: i32 = 326;
}

/// Response codes.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponseCode;

impl ResponseCode {
    /// SUCCESS.
    pub const SUCCESS: i32 = 0;
    /// SYSTEM_ERROR.
    pub const SYSTEM_ERROR: i32 = 1;
    /// SYSTEM_BUSY.
    pub const SYSTEM_BUSY: i32 = 2;
    /// REQUEST_CODE_NOT_SUPPORTED.
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    /// TRANSACTION_FAILED.
    pub const TRANSACTION_FAILED: i32 = 4;
    /// FLUSH_DISK_TIMEOUT (the message is stored).
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    /// SLAVE_NOT_AVAILABLE (the message is stored).
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    /// FLUSH_SLAVE_TIMEOUT (the message is stored).
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    /// MESSAGE_ILLEGAL.
    pub const MESSAGE_ILLEGAL: i32 = 13;
    /// SERVICE_NOT_AVAILABLE.
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    /// VERSION_NOT_SUPPORTED.
    pub const VERSION_NOT_SUPPORTED: i32 = 15;
    /// NO_PERMISSION.
    pub const NO_PERMISSION: i32 = 16;
    /// TOPIC_NOT_EXIST.
    pub const TOPIC_NOT_EXIST: i32 = 17;
    /// TOPIC_EXIST_ALREADY.
    pub const TOPIC_EXIST_ALREADY: i32 = 18;
    /// QUERY_NOT_FOUND.
    pub const QUERY_NOT_FOUND: i32 = 22;
    /// INVALID_PARAMETER.
    pub const INVALID_PARAMETER: i32 = 29;
    /// TRANSACTION_SHOULD_COMMIT.
    pub const TRANSACTION_SHOULD_COMMIT: i32 = 200;
    /// TRANSACTION_SHOULD_ROLLBACK.
    pub const TRANSACTION_SHOULD_ROLLBACK: i32 = 201;
    /// TRANSACTION_STATE_UNKNOW.
    pub const TRANSACTION_STATE_UNKNOW: i32 = 202;
    /// TRANSACTION_STATE_GROUP_WRONG.
    pub const TRANSACTION_STATE_GROUP_WRONG: i32 = 203;
    /// NO_BUYER_ID.
    pub const NO_BUYER_ID: i32 = 204;
    /// NOT_IN_CURRENT_UNIT.
    pub const NOT_IN_CURRENT_UNIT: i32 = 205;
    /// FLOW_CONTROL.
    pub const FLOW_CONTROL: i32 = 215;
    /// NOT_LEADER_FOR_QUEUE.
    pub const NOT_LEADER_FOR_QUEUE: i32 = 501;
    /// ILLEGAL_OPERATION.
    pub const ILLEGAL_OPERATION: i32 = 604;
    /// GO_AWAY: the server is shutting down (5.3.1+ servers, to requests with version > 475).
    pub const GO_AWAY: i32 = 1500;

    /// The Java constant name of a response code, or `"UNKNOWN"`.
    pub fn name(code: i32) -> &'static str {
        match code {
            0 => "SUCCESS",
            1 => "SYSTEM_ERROR",
            2 => "SYSTEM_BUSY",
            3 => "REQUEST_CODE_NOT_SUPPORTED",
            4 => "TRANSACTION_FAILED",
            10 => "FLUSH_DISK_TIMEOUT",
            11 => "SLAVE_NOT_AVAILABLE",
            12 => "FLUSH_SLAVE_TIMEOUT",
            13 => "MESSAGE_ILLEGAL",
            14 => "SERVICE_NOT_AVAILABLE",
            15 => "VERSION_NOT_SUPPORTED",
            16 => "NO_PERMISSION",
            17 => "TOPIC_NOT_EXIST",
            18 => "TOPIC_EXIST_ALREADY",
            19 => "PULL_NOT_FOUND",
            20 => "PULL_RETRY_IMMEDIATELY",
            21 => "PULL_OFFSET_MOVED",
            22 => "QUERY_NOT_FOUND",
            29 => "INVALID_PARAMETER",
            200 => "TRANSACTION_SHOULD_COMMIT",
            201 => "TRANSACTION_SHOULD_ROLLBACK",
            202 => "TRANSACTION_STATE_UNKNOW",
            203 => "TRANSACTION_STATE_GROUP_WRONG",
            204 => "NO_BUYER_ID",
            205 => "NOT_IN_CURRENT_UNIT",
            206 => "CONSUMER_NOT_ONLINE",
            207 => "CONSUME_MSG_TIMEOUT",
            208 => "NO_MESSAGE",
            211 => "BROKER_NOT_EXIST",
            215 => "FLOW_CONTROL",
            501 => "NOT_LEADER_FOR_QUEUE",
            604 => "ILLEGAL_OPERATION",
            1500 => "GO_AWAY",
            _ => "UNKNOWN",
        }
    }
}

/// The sender's language, as carried in every header.
///
/// JSON headers carry the enum name (`"JAVA"`), binary headers the code byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LanguageCode(pub u8);

impl LanguageCode {
    /// JAVA (0).
    pub const JAVA: LanguageCode = LanguageCode(0);
    /// CPP (1).
    pub const CPP: LanguageCode = LanguageCode(1);
    /// DOTNET (2).
    pub const DOTNET: LanguageCode = LanguageCode(2);
    /// PYTHON (3).
    pub const PYTHON: LanguageCode = LanguageCode(3);
    /// DELPHI (4).
    pub const DELPHI: LanguageCode = LanguageCode(4);
    /// ERLANG (5).
    pub const ERLANG: LanguageCode = LanguageCode(5);
    /// RUBY (6).
    pub const RUBY: LanguageCode = LanguageCode(6);
    /// OTHER (7).
    pub const OTHER: LanguageCode = LanguageCode(7);
    /// HTTP (8).
    pub const HTTP: LanguageCode = LanguageCode(8);
    /// GO (9).
    pub const GO: LanguageCode = LanguageCode(9);
    /// PHP (10).
    pub const PHP: LanguageCode = LanguageCode(10);
    /// OMS (11).
    pub const OMS: LanguageCode = LanguageCode(11);
    /// RUST (12), known to servers since 4.9.4.
    pub const RUST: LanguageCode = LanguageCode(12);
    /// NODE_JS (13), known to servers since 5.3.2.
    pub const NODE_JS: LanguageCode = LanguageCode(13);

    const NAMES: [&'static str; 14] = [
        "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP",
        "OMS", "RUST", "NODE_JS",
    ];

    /// The enum name used in JSON headers; `"OTHER"` for codes this crate does not know.
    pub fn name(self) -> &'static str {
        Self::NAMES.get(self.0 as usize).copied().unwrap_or("OTHER")
    }

    /// The language for a JSON enum name, if known.
    pub fn from_name(name: &str) -> Option<LanguageCode> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| LanguageCode(i as u8))
    }
}

/// The `version` this client puts in every request: `V4_9_4` (401).
///
/// At 401 or above, name servers answer routes in standard JSON; at 475 or below, a shutting-down
/// 5.3.1+ server still serves the request instead of answering `GO_AWAY` (protocol.md 10.3).
pub const CLIENT_VERSION: i32 = 401;

/// The default language this client sends: `RUST`.
pub const CLIENT_LANGUAGE: LanguageCode = LanguageCode::RUST;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_names_round_trip() {
        for code in 0..14u8 {
            let l = LanguageCode(code);
            assert_eq!(LanguageCode::from_name(l.name()), Some(l));
        }
        assert_eq!(LanguageCode(200).name(), "OTHER");
        assert_eq!(LanguageCode::from_name("COBOL"), None);
        assert_eq!(LanguageCode::RUST.name(), "RUST");
    }

    #[test]
    fn version_in_safe_range() {
        const { assert!(CLIENT_VERSION >= 401 && CLIENT_VERSION <= 475) };
    }
}
