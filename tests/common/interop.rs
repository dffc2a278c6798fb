//! Helpers for interop tests against a real RocketMQ name server and broker
//! (`scripts/real-broker.sh`, RocketMQ-Rust 1.0.0).
//!
//! Tests run only when `ROCKETMQ_INTEROP_NAMESRV` names the name server ("127.0.0.1:29876");
//! otherwise [`namesrv`] prints why the test is skipped and the test returns. Tests that kill and
//! restart brokers also need `ROCKETMQ_INTEROP_DIR`, the cluster's state directory.
//!
//! Reading back what a producer stored uses the broker's own admin requests, with this crate's
//! codec and remoting client:
//! - VIEW_MESSAGE_BY_ID (33) with `offset` = the commit-log offset decoded from the send
//!   result's offset msgId, sent to the store host named in that id ([`Reader::view`]);
//! - QUERY_MESSAGE (12) by `UNIQ_KEY` (`_UNIQUE_KEY_QUERY=true`), for sends that return no id
//!   (oneway) or messages the broker moves (delay levels) ([`Reader::find_uniq`]).
#![allow(dead_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_mio::protocol::acl::Credentials;
use rocketmq_mio::protocol::header::{
    CommandHeader, CreateTopicRequestHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    GetRouteInfoRequestHeader, ViewMessageByIdRequestHeader,
};
use rocketmq_mio::protocol::message_codec::{decode_stored_messages_with, sys_flag};
use rocketmq_mio::protocol::route::TopicRouteData;
use rocketmq_mio::protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig};
use rocketmq_mio::{Message, MessageExt, OffsetMessageId, Producer, SendResult};

/// Environment variable naming the real name server.
pub const NAMESRV_ENV: &str = "ROCKETMQ_INTEROP_NAMESRV";
/// Environment variable naming the cluster's directory (for fault tests).
pub const DIR_ENV: &str = "ROCKETMQ_INTEROP_DIR";

/// Timeout of one admin request to the real broker.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The real name server's address, or `None` after printing why `test` is skipped.
pub fn namesrv(test: &str) -> Option<String> {
    match std::env::var(NAMESRV_ENV) {
        Ok(addr) if !addr.trim().is_empty() => Some(addr.trim().to_string()),
        _ => {
            println!("{test}: skipped: {NAMESRV_ENV} not set (see README, \"Interop with a real broker\")");
            None
        }
    }
}

/// The real cluster: its name server and its state directory (`scripts/real-broker.sh`), or
/// `None` after printing why `test` is skipped.
pub fn cluster(test: &str) -> Option<(String, PathBuf)> {
    let ns = namesrv(test)?;
    match std::env::var(DIR_ENV) {
        Ok(dir) if !dir.trim().is_empty() => Some((ns, PathBuf::from(dir.trim()))),
        _ => {
            println!("{test}: skipped: {DIR_ENV} not set (the cluster directory of scripts/real-broker.sh start)");
            None
        }
    }
}

/// A topic name no earlier run used: the real broker keeps its store between runs.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A producer for the real cluster: the testing preset (5 s timeouts, route refresh every
/// second, plain round robin).
pub fn producer(group: &str, namesrv: &str) -> Producer {
    rocketmq_mio::ProducerConfig::testing(group)
        .name_server(namesrv)
        .start()
        .expect("producer starts")
}

/// Zlib-inflates a stored body.
pub fn inflate(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the stored body is a zlib stream");
    out
}

/// Properties the producer or the broker add (with every `TIMER_*` one); everything else on a
/// stored message is the user's.
pub const SYSTEM_PROPERTIES: &[&str] = &[
    "TAGS",
    "KEYS",
    "WAIT",
    "UNIQ_KEY",
    "DELAY",
    "CLUSTER",
    "MSG_REGION",
    "TRACE_ON",
    "REAL_TOPIC",
    "REAL_QID",
    "PGROUP",
    "TRAN_MSG",
    "__transactionId__",
    "TRANSACTION_CHECK_TIMES",
];

/// Whether `key` is a property the producer or the broker adds (not a user property).
pub fn is_system_property(key: &str) -> bool {
    SYSTEM_PROPERTIES.contains(&key) || key.starts_with("TIMER_")
}

/// The user properties of a stored message, sorted.
pub fn user_properties(m: &MessageExt) -> Vec<(String, String)> {
    let mut v: Vec<_> = m
        .properties
        .iter()
        .filter(|(k, _)| !is_system_property(k))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Checks that `stored` is `sent` as the broker keeps it: topic, body (inflated when the
/// compressed bit is set), tags, keys, user flag, user properties, the client id, and a sysFlag
/// of exactly what the producer sends (0, or 0x301 when zlib-compressed).
pub fn assert_stored(stored: &MessageExt, sent: &Message, uniq_key: &str) {
    assert_stored_tx(stored, sent, uniq_key, sys_flag::TRANSACTION_NOT_TYPE);
}

/// [`assert_stored`] for a message whose sysFlag also carries the transaction bits
/// `transaction` (`sys_flag::TRANSACTION_COMMIT` for a committed message, ...).
pub fn assert_stored_tx(stored: &MessageExt, sent: &Message, uniq_key: &str, transaction: i32) {
    assert_eq!(stored.topic, sent.topic(), "topic");
    let body = if stored.sys_flag & sys_flag::COMPRESSED != 0 {
        inflate(&stored.body)
    } else {
        stored.body.clone()
    };
    assert!(
        body == sent.body(),
        "body differs ({} bytes stored, {} sent)",
        body.len(),
        sent.body().len()
    );
    assert_eq!(stored.tags(), sent.tags(), "tags");
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        sent.keys().collect::<Vec<_>>(),
        "keys"
    );
    assert_eq!(stored.flag, sent.flag(), "user flag");
    let mut sent_user: Vec<(String, String)> = sent
        .properties()
        .filter(|(k, _)| !is_system_property(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sent_user.sort();
    assert_eq!(user_properties(stored), sent_user, "user properties");
    assert_eq!(stored.msg_id(), Some(uniq_key), "UNIQ_KEY");
    let compression = if stored.sys_flag & sys_flag::COMPRESSED != 0 {
        sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB
    } else {
        0
    };
    let expected_flag = compression | transaction;
    assert_eq!(
        stored.sys_flag, expected_flag,
        "sysFlag {:#x}",
        stored.sys_flag
    );
    // The broker stamps its cluster on every stored message.
    assert_eq!(stored.property("CLUSTER"), Some("DefaultCluster"));
}

/// Reads messages back from the real brokers with admin requests.
pub struct Reader {
    client: RemotingClient,
    namesrv: String,
}

impl Reader {
    /// A reader with its own remoting client.
    pub fn new(namesrv: &str) -> Reader {
        Reader {
            client: RemotingClient::new(RemotingConfig::default()).expect("remoting client"),
            namesrv: namesrv.to_string(),
        }
    }

    /// A reader that signs its requests with `credentials` (for a cluster with ACL on).
    pub fn with_credentials(namesrv: &str, credentials: Credentials) -> Reader {
        Reader::with_config(
            namesrv,
            RemotingConfig {
                credentials: Some(credentials),
                ..RemotingConfig::default()
            },
        )
    }

    /// A reader whose remoting client has `config` (TLS clusters).
    pub fn with_config(namesrv: &str, config: RemotingConfig) -> Reader {
        Reader {
            client: RemotingClient::new(config).expect("remoting client"),
            namesrv: namesrv.to_string(),
        }
    }

    fn invoke(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand, String> {
        self.client
            .invoke_sync(addr, request, ADMIN_TIMEOUT)
            .map_err(|e| format!("{addr}: {e}"))
    }

    /// The route of `topic` from the name server.
    pub fn route(&self, topic: &str) -> Result<TopicRouteData, String> {
        let mut request = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        GetRouteInfoRequestHeader::new(topic).write_to(&mut request.ext_fields);
        let r = self.invoke(&self.namesrv, request)?;
        if r.code != ResponseCode::SUCCESS {
            return Err(format!(
                "route of {topic}: code {} {}",
                r.code,
                r.remark_str()
            ));
        }
        TopicRouteData::from_json(&r.body).map_err(|e| e.to_string())
    }

    /// The master address of `broker_name`, from the route of TBW102 (every broker of the test
    /// cluster auto-creates topics, so every one hosts TBW102).
    pub fn master_addr(&self, broker_name: &str) -> String {
        let route = self.route("TBW102").expect("route of TBW102");
        route
            .broker_data(broker_name)
            .and_then(|b| b.master_addr())
            .unwrap_or_else(|| panic!("no master for {broker_name} in {route:?}"))
            .to_string()
    }

    /// Every master address of the cluster (from the route of TBW102).
    pub fn master_addrs(&self) -> Vec<String> {
        let route = self.route("TBW102").expect("route of TBW102");
        route
            .broker_datas
            .iter()
            .filter_map(|b| b.master_addr().map(str::to_string))
            .collect()
    }

    /// VIEW_MESSAGE_BY_ID: the stored message at `id`'s commit-log offset, asked of `id`'s store
    /// host.
    pub fn view(&self, id: &OffsetMessageId) -> Result<MessageExt, String> {
        let mut request = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
        ViewMessageByIdRequestHeader {
            offset: id.commit_log_offset,
        }
        .write_to(&mut request.ext_fields);
        let addr = id.store_host.to_string();
        let r = self.invoke(&addr, request)?;
        if r.code != ResponseCode::SUCCESS {
            return Err(format!("view {id}: code {} {}", r.code, r.remark_str()));
        }
        // As stored: these checks compare the broker's bytes (compressed body, CRC).
        let mut msgs =
            decode_stored_messages_with(&r.body, None).map_err(|e| format!("view {id}: {e}"))?;
        if msgs.len() != 1 {
            return Err(format!("view {id}: {} records in the body", msgs.len()));
        }
        Ok(msgs.remove(0))
    }

    /// The stored message a send result names (the first one, for a batch), checked against the
    /// result: queue, queue offset, commit-log offset.
    pub fn view_result(&self, r: &SendResult) -> MessageExt {
        let id = r.offset_id().expect("offset msgId decodes");
        let stored = self.view(&id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stored.commit_log_offset, id.commit_log_offset,
            "commit-log offset"
        );
        assert_eq!(stored.store_host, id.store_host, "store host");
        stored
    }

    /// QUERY_MESSAGE on one broker: messages of `topic` whose `UNIQ_KEY` (`unique`) or one of
    /// whose `KEYS` is `key`; `Ok(vec![])` when the index has no hit (yet).
    pub fn query(
        &self,
        addr: &str,
        topic: &str,
        key: &str,
        unique: bool,
    ) -> Result<Vec<MessageExt>, String> {
        let mut request = RemotingCommand::request(RequestCode::QUERY_MESSAGE);
        let mut f = ExtFields::new();
        f.insert("topic", topic);
        f.insert("key", key);
        f.insert("maxNum", "32");
        f.insert("beginTimestamp", "0");
        f.insert("endTimestamp", i64::MAX.to_string());
        if unique {
            f.insert("_UNIQUE_KEY_QUERY", "true");
        }
        request.ext_fields = f;
        let r = self.invoke(addr, request)?;
        match r.code {
            ResponseCode::SUCCESS => {
                let msgs = decode_stored_messages_with(&r.body, None).map_err(|e| e.to_string())?;
                Ok(msgs
                    .into_iter()
                    .filter(|m| {
                        m.topic == topic
                            && if unique {
                                m.msg_id() == Some(key)
                            } else {
                                m.keys().any(|k| k == key)
                            }
                    })
                    .collect())
            }
            ResponseCode::QUERY_NOT_FOUND => Ok(Vec::new()),
            code => Err(format!("query {key}: code {code} {}", r.remark_str())),
        }
    }

    /// Polls every master until one has a message of `topic` with `UNIQ_KEY` (`unique`) or
    /// business key `key`, or `timeout` passes (brokers index messages shortly after storing
    /// them).
    pub fn find(
        &self,
        topic: &str,
        key: &str,
        unique: bool,
        timeout: Duration,
    ) -> Option<MessageExt> {
        let deadline = Instant::now() + timeout;
        let addrs = self.master_addrs();
        loop {
            for addr in &addrs {
                match self.query(addr, topic, key, unique) {
                    Ok(mut found) if !found.is_empty() => return Some(found.remove(0)),
                    Ok(_) => {}
                    Err(e) => println!("query on {addr}: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// UPDATE_AND_CREATE_TOPIC with `queues` queues on every master, then waits until the name
    /// server's route of `topic` lists every master with that many writable queues.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        let addrs = self.master_addrs();
        for addr in &addrs {
            let mut request = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC);
            CreateTopicRequestHeader::new(topic, queues).write_to(&mut request.ext_fields);
            let r = self.invoke(addr, request).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                r.code,
                ResponseCode::SUCCESS,
                "create {topic} on {addr}: {}",
                r.remark_str()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(route) = self.route(topic) {
                let ready = route.queue_datas.len() == addrs.len()
                    && route
                        .queue_datas
                        .iter()
                        .all(|q| q.write_queue_nums == queues);
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "route of {topic} never listed every broker"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET_PRODUCER_CONNECTION_LIST (204): the connections the broker at `addr` has registered
    /// for producer `group` by heartbeat (`connectionSet` entries: `clientId`, `clientAddr`,
    /// `language`, `version`); empty when it knows no producer of the group.
    pub fn producer_connections(&self, addr: &str, group: &str) -> Vec<serde_json::Value> {
        let mut request = RemotingCommand::request(204);
        request.ext_fields.insert("producerGroup", group);
        let r = self.invoke(addr, request).unwrap_or_else(|e| panic!("{e}"));
        if r.code != ResponseCode::SUCCESS {
            // SYSTEM_ERROR "the producer group[..] not exist"
            return Vec::new();
        }
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).expect("ProducerConnection JSON");
        v["connectionSet"].as_array().cloned().unwrap_or_default()
    }

    /// GET_MAX_OFFSET of one queue on `addr`.
    pub fn max_offset(&self, addr: &str, topic: &str, queue_id: i32) -> Result<i64, String> {
        let mut request = RemotingCommand::request(RequestCode::GET_MAX_OFFSET);
        GetMaxOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id,
            committed: true,
            broker_name: None,
        }
        .write_to(&mut request.ext_fields);
        let r = self.invoke(addr, request)?;
        if r.code != ResponseCode::SUCCESS {
            return Err(format!("max offset: code {} {}", r.code, r.remark_str()));
        }
        GetMaxOffsetResponseHeader::read_from(&r.ext_fields)
            .map(|h| h.offset)
            .map_err(|e| e.to_string())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.client.shutdown();
    }
}

/// Runs `scripts/real-broker.sh` with `args`; panics with its output when it fails.
pub fn real_broker_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/real-broker.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "real-broker.sh {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
