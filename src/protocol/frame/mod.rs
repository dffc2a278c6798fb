//! `RemotingCommand`: the frame every request and response travels in, its two header
//! serializations, and an incremental [`FrameDecoder`].
//!
//! ```text
//! +----------------+--------------------------+----------------------+-----------------+
//! | total_len: i32 | proto_and_hdr_len: i32   | header: hdr_len bytes| body: rest      |
//! +----------------+--------------------------+----------------------+-----------------+
//! total_len         = 4 + hdr_len + body_len     (does not count its own 4 bytes)
//! proto_and_hdr_len = (serialize_type << 24) | hdr_len
//! ```

// One file per piece:
// - command: `RemotingCommand`, its builders, and the frame around the header.
// - ext_fields: `ExtFields`, the custom-header map (a decoded header's starts as its raw
//   fields, built into a map on first use), and the key names it interns.
// - json_write: the JSON header writer, and the JSON string and integer writers under it.
// - json_read: the JSON header reader through `serde_json::Value` (the reference).
// - json_flat: the reader of the flat layout brokers write responses in (tried first; keeps
//   `extFields` raw).
// - json_memo: the layout memo of an I/O thread: a header shaped as the last one read only
//   has its variable values read (`json_flat`'s answer, cheaper).
// - json_fast: the hand-rolled fast JSON header reader that the common case takes.
// - binary: the binary ROCKETMQ header, both ways.
// - decoder: the incremental `FrameDecoder`.
// - error: `CodecError`.

mod binary;
mod command;
mod decoder;
mod error;
mod ext_fields;
mod json_fast;
mod json_flat;
mod json_memo;
mod json_read;
mod json_write;

pub use command::RemotingCommand;
pub use decoder::FrameDecoder;
pub use error::CodecError;
pub use ext_fields::ExtFields;
pub(crate) use ext_fields::{ResponseKey, ResponsePlaces, RESPONSE_KEYS};
#[doc(hidden)]
pub use json_read::json_header_differential;
pub use json_write::write_json_str;
pub(crate) use json_write::{int_digits, write_int, write_json_text};

/// Default maximum frame size, length prefix included: 16 MiB, as Java's `frameMaxLength`.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The largest header a frame can carry (24 bits of length).
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// Header serialization of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// JSON header (type 0); what Java clients and servers use by default.
    #[default]
    Json,
    /// The binary ROCKETMQ header layout (type 1).
    RocketMq,
}

impl SerializeType {
    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// The type for a wire byte.
    pub fn from_code(code: u8) -> Result<SerializeType, CodecError> {
        match code {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(CodecError::UnknownSerializeType(other)),
        }
    }

    /// The name Java uses (`SerializeType` enum, `rocketmq.serialize.type`): `JSON` or
    /// `ROCKETMQ`.
    pub fn as_str(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

impl std::fmt::Display for SerializeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SerializeType {
    type Err = CodecError;

    /// Parses `JSON` or `ROCKETMQ` in any case (surrounding blanks ignored), as the Java
    /// client reads `rocketmq.serialize.type`; anything else is
    /// [`CodecError::InvalidField`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("json") {
            Ok(SerializeType::Json)
        } else if t.eq_ignore_ascii_case("rocketmq") {
            Ok(SerializeType::RocketMq)
        } else {
            Err(CodecError::invalid("serialize type (JSON or ROCKETMQ)", s))
        }
    }
}

/// The route request of the golden-frame tests (JSON and binary).
/// Test helper: one to three random edits of a header (a byte replaced, removed or inserted
/// from JSON-ish bytes and invalid UTF-8, or a piece copied elsewhere), for the readers'
/// differential tests.
#[cfg(test)]
fn mutate_header(h: &mut Vec<u8>, rng: &mut impl rand::Rng) {
    let alphabet: &[u8] = b"{}[]\",:\\/ \t\n-+.0123456789eEtrueflsnu\xc3\xa9\xff\x01abAF";
    for _ in 0..rng.gen_range(1..4) {
        let at = rng.gen_range(0..h.len());
        let pick = alphabet[rng.gen_range(0..alphabet.len())];
        match rng.gen_range(0..4) {
            0 => h[at] = pick,
            1 => {
                h.remove(at);
            }
            2 => h.insert(at, pick),
            _ => {
                let end = (at + rng.gen_range(1..12)).min(h.len());
                let piece = h[at..end].to_vec();
                let to = rng.gen_range(0..h.len());
                h.splice(to..to, piece);
            }
        }
    }
}

#[cfg(test)]
fn route_request() -> RemotingCommand {
    let mut cmd = RemotingCommand::request(105);
    cmd.language = crate::protocol::codes::LanguageCode::JAVA;
    cmd.version = 479;
    cmd.opaque = 1;
    cmd.ext_fields.insert("topic", "TopicTest");
    cmd
}

#[cfg(test)]
mod serialize_type_tests {
    use super::SerializeType;

    #[test]
    fn names_parse_in_any_case_and_display_as_java_spells_them() {
        for (s, t) in [
            ("JSON", SerializeType::Json),
            ("json", SerializeType::Json),
            (" Json ", SerializeType::Json),
            ("ROCKETMQ", SerializeType::RocketMq),
            ("rocketmq", SerializeType::RocketMq),
            ("RocketMQ", SerializeType::RocketMq),
        ] {
            assert_eq!(s.parse::<SerializeType>().unwrap(), t, "{s:?}");
        }
        for bad in ["", "binary", "rocket_mq", "1", "JSON5"] {
            let e = bad.parse::<SerializeType>().unwrap_err();
            assert!(e.to_string().contains("JSON or ROCKETMQ"), "{e}");
        }
        assert_eq!(SerializeType::Json.to_string(), "JSON");
        assert_eq!(SerializeType::RocketMq.to_string(), "ROCKETMQ");
    }
}
