//! Route data (protocol.md section 6): the body of a GET_ROUTEINFO_BY_TOPIC response.
//!
//! Name servers answer in one of two forms:
//!
//! - standard JSON (name servers 4.9.4+ when the request has `version >= 401` or
//!   `acceptStandardJsonOnly=true`), with quoted map keys: `"brokerAddrs":{"0":"host:port"}`;
//! - the legacy fastjson form, with **unquoted integer keys**: `"brokerAddrs":{0:"host:port"}`,
//!   which is not JSON. Older name servers always send it, and GET_BROKER_CLUSTER_INFO is always in
//!   it.
//!
//! [`TopicRouteData::from_json`] tries standard JSON first; if that fails it quotes every bare
//! integer key (a `-?[0-9]+` token right after `{` or `,`, whitespace allowed, followed by `:`,
//! outside string literals) and parses again. Both `topicSysFlag` and the pre-4.9.0 spelling
//! `topicSynFlag` are accepted; unknown keys are ignored.
//!
//! ```
//! use rocketmq_mio::protocol::route::TopicRouteData;
//! let legacy = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},
//!     "brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},
//!     "queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSynFlag":0,
//!     "writeQueueNums":4}]}"#;
//! let route = TopicRouteData::from_json(legacy).unwrap();
//! assert_eq!(route.broker_datas[0].master_addr(), Some("10.0.0.1:10911"));
//! assert_eq!(route.queue_datas[0].write_queue_nums, 4);
//! assert_eq!(TopicRouteData::from_json(&route.to_json()).unwrap(), route);
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::frame::CodecError;

/// Permission bits of a topic on a broker (`PermName.java`).
pub mod perm {
    /// PERM_PRIORITY.
    pub const PRIORITY: i32 = 8;
    /// PERM_READ: consumers may read.
    pub const READ: i32 = 4;
    /// PERM_WRITE: producers may write.
    pub const WRITE: i32 = 2;
    /// PERM_INHERIT: the topic may serve as a template for auto-created topics (TBW102).
    pub const INHERIT: i32 = 1;

    /// Whether producers may write (`perm & WRITE != 0`).
    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }

    /// Whether consumers may read (`perm & READ != 0`).
    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }

    /// Whether the topic may be inherited by auto-created topics.
    pub fn is_inherited(perm: i32) -> bool {
        perm & INHERIT != 0
    }
}

/// The broker id of a master (`MixAll.MASTER_ID`); slaves have ids 1 and above.
pub const MASTER_ID: i64 = 0;

/// The most queues a topic's route may give a producer: the write (or read) queues of one
/// broker, their sum over the brokers, and the counts of `orderTopicConf`. Far above any real
/// topic (brokers default to 8 or 16 queues); a route over it is refused
/// ([`TopicRouteData::check_limits`]) rather than trusted with a huge allocation.
pub const MAX_TOPIC_QUEUES: usize = 65_536;

/// The route of a topic: which brokers host it, with how many queues, at which addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicRouteData {
    /// `"brokerA:4;brokerB:4"` for order topics configured on the name server; usually `None`.
    pub order_topic_conf: Option<String>,
    /// One entry per broker name hosting the topic.
    pub queue_datas: Vec<QueueData>,
    /// The brokers' addresses.
    pub broker_datas: Vec<BrokerData>,
    /// Whether the route carries a non-empty `topicQueueMappingByBroker` (a 5.x static topic).
    /// This client does not implement static-topic logical queues; the mapping itself is not kept.
    pub has_static_queue_mapping: bool,
}

/// The queues of a topic on one broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueData {
    /// The broker's name.
    pub broker_name: String,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
    /// Permission bits, see [`perm`].
    pub perm: i32,
    /// Topic system flag (`topicSysFlag`, spelled `topicSynFlag` before 4.9.0).
    pub topic_sys_flag: i32,
}

/// One broker (a master and its slaves) by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerData {
    /// The cluster the broker belongs to.
    pub cluster: String,
    /// The broker's name, shared by the master and its slaves.
    pub broker_name: String,
    /// Broker id to `host:port`; id [`MASTER_ID`] (0) is the master.
    pub broker_addrs: BTreeMap<i64, String>,
    /// The zone (5.x), if any.
    pub zone_name: Option<String>,
    /// Whether a slave may act as master (5.x).
    pub enable_acting_master: bool,
}

impl BrokerData {
    /// The master's address (broker id 0), if the broker has a master.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

impl TopicRouteData {
    /// Parses a route body: standard JSON first, then the legacy fastjson form with unquoted
    /// integer keys.
    ///
    /// # Errors
    /// [`CodecError::Json`] if the body is not JSON even after the repair, or is not an object;
    /// [`CodecError::MissingField`] / [`CodecError::InvalidField`] naming the field otherwise;
    /// [`CodecError::Malformed`] for a route over the queue limits
    /// ([`TopicRouteData::check_limits`]).
    pub fn from_json(body: &[u8]) -> Result<Self, CodecError> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(first) => {
                let repaired = quote_integer_keys(body);
                serde_json::from_slice(&repaired).map_err(|second| {
                    CodecError::Json(format!(
                        "route body: {first} (after quoting integer keys: {second})"
                    ))
                })?
            }
        };
        Self::from_value(&value)
    }

    /// Reads a route from an already-parsed JSON value.
    ///
    /// # Errors
    /// As [`TopicRouteData::from_json`], and a route over the queue limits
    /// ([`TopicRouteData::check_limits`]).
    pub fn from_value(value: &Value) -> Result<Self, CodecError> {
        let root = value
            .as_object()
            .ok_or_else(|| CodecError::Json("route body is not a JSON object".into()))?;
        let order_topic_conf = opt_string(root, "orderTopicConf")?;
        let queue_datas = match root.get("queueDatas") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(QueueData::from_value)
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("queueDatas", other)),
        };
        let broker_datas = match root.get("brokerDatas") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(BrokerData::from_value)
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("brokerDatas", other)),
        };
        let has_static_queue_mapping = match root.get("topicQueueMappingByBroker") {
            None | Some(Value::Null) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(other) => return Err(invalid("topicQueueMappingByBroker", other)),
        };
        let route = TopicRouteData {
            order_topic_conf,
            queue_datas,
            broker_datas,
            has_static_queue_mapping,
        };
        route.check_limits()?;
        Ok(route)
    }

    /// The route as a JSON value (keys sorted, map keys quoted).
    pub fn to_value(&self) -> Value {
        let mut root = Map::new();
        if let Some(conf) = &self.order_topic_conf {
            root.insert("orderTopicConf".into(), Value::String(conf.clone()));
        }
        root.insert(
            "queueDatas".into(),
            Value::Array(self.queue_datas.iter().map(QueueData::to_value).collect()),
        );
        root.insert(
            "brokerDatas".into(),
            Value::Array(self.broker_datas.iter().map(BrokerData::to_value).collect()),
        );
        root.insert("filterServerTable".into(), Value::Object(Map::new()));
        if self.has_static_queue_mapping {
            // The mapping's content is not kept; write a minimal one per broker so the flag
            // survives a round trip.
            let mut mapping = Map::new();
            for qd in &self.queue_datas {
                let mut info = Map::new();
                info.insert("bname".into(), Value::String(qd.broker_name.clone()));
                info.insert("currIdMap".into(), Value::Object(Map::new()));
                info.insert("dirty".into(), Value::Bool(false));
                info.insert("epoch".into(), Value::from(0));
                info.insert("scope".into(), Value::String("__global__".into()));
                info.insert("totalQueues".into(), Value::from(qd.write_queue_nums));
                mapping.insert(qd.broker_name.clone(), Value::Object(info));
            }
            if mapping.is_empty() {
                mapping.insert("__unknown__".into(), Value::Object(Map::new()));
            }
            root.insert("topicQueueMappingByBroker".into(), Value::Object(mapping));
        }
        Value::Object(root)
    }

    /// Standard JSON (quoted map keys, sorted), as a 4.9.4+ name server answers a client that
    /// asks for it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a Value to a Vec cannot fail (no non-string keys, no I/O).
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// The legacy fastjson form: integer map keys (`brokerAddrs`) unquoted. Not valid JSON; what
    /// name servers before 4.9.4 send.
    pub fn to_legacy_json(&self) -> Vec<u8> {
        unquote_integer_keys(&self.to_json())
    }

    /// A copy with `queue_datas` and `broker_datas` sorted by broker name, for change detection
    /// (`TopicRouteData.topicRouteDataChanged` sorts both before comparing).
    pub fn normalized(&self) -> TopicRouteData {
        let mut r = self.clone();
        r.queue_datas.sort_by(|a, b| {
            a.broker_name.cmp(&b.broker_name).then_with(|| {
                (a.perm, a.read_queue_nums, a.write_queue_nums).cmp(&(
                    b.perm,
                    b.read_queue_nums,
                    b.write_queue_nums,
                ))
            })
        });
        r.broker_datas.sort_by(|a, b| {
            a.broker_name
                .cmp(&b.broker_name)
                .then_with(|| a.cluster.cmp(&b.cluster))
                .then_with(|| a.broker_addrs.cmp(&b.broker_addrs))
        });
        r
    }

    /// Checks the queue counts against [`MAX_TOPIC_QUEUES`]: each queue data's read and write
    /// queues, the write queues summed over the brokers, and the counts of `orderTopicConf`
    /// (each and summed; malformed items are left to the queue builder, which skips them).
    /// Parsing ([`TopicRouteData::from_json`]) refuses a route that fails this, and the route
    /// cache refuses to install one, so a name server cannot make a client allocate billions
    /// of queues.
    ///
    /// # Errors
    /// [`CodecError::Malformed`] naming the field, the broker, the count and the limit.
    pub fn check_limits(&self) -> Result<(), CodecError> {
        let over = |what: &str, broker: &str, count: i64| {
            CodecError::Malformed(format!(
                "route refused: {what} of {broker:?} is {count}, over the limit of \
                 {MAX_TOPIC_QUEUES} queues a topic may have"
            ))
        };
        let max = MAX_TOPIC_QUEUES as i64;
        let mut total_write: i64 = 0;
        for qd in &self.queue_datas {
            if i64::from(qd.write_queue_nums) > max {
                return Err(over(
                    "queueDatas[].writeQueueNums",
                    &qd.broker_name,
                    qd.write_queue_nums.into(),
                ));
            }
            if i64::from(qd.read_queue_nums) > max {
                return Err(over(
                    "queueDatas[].readQueueNums",
                    &qd.broker_name,
                    qd.read_queue_nums.into(),
                ));
            }
            total_write += i64::from(qd.write_queue_nums.max(0));
            if total_write > max {
                return Err(over(
                    "the sum of queueDatas[].writeQueueNums",
                    "every broker",
                    total_write,
                ));
            }
        }
        if let Some(conf) = &self.order_topic_conf {
            let mut total: i64 = 0;
            for item in conf.split(';') {
                let Some((broker, count)) = item.split_once(':') else {
                    continue;
                };
                let Ok(count) = count.trim().parse::<i64>() else {
                    continue;
                };
                if count > max {
                    return Err(over("orderTopicConf", broker.trim(), count));
                }
                total += count.max(0);
                if total > max {
                    return Err(over("the sum of orderTopicConf", "every broker", total));
                }
            }
        }
        Ok(())
    }

    /// The broker data with this name.
    pub fn broker_data(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }
}

impl QueueData {
    fn from_value(value: &Value) -> Result<Self, CodecError> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("queueDatas[]", value))?;
        let topic_sys_flag = match opt_i32(obj, "topicSysFlag", "queueDatas[].topicSysFlag")? {
            Some(v) => v,
            None => opt_i32(obj, "topicSynFlag", "queueDatas[].topicSynFlag")?.unwrap_or(0),
        };
        Ok(QueueData {
            broker_name: req_string(obj, "brokerName", "queueDatas[].brokerName")?,
            read_queue_nums: opt_i32(obj, "readQueueNums", "queueDatas[].readQueueNums")?
                .ok_or(CodecError::MissingField("queueDatas[].readQueueNums"))?,
            write_queue_nums: opt_i32(obj, "writeQueueNums", "queueDatas[].writeQueueNums")?
                .ok_or(CodecError::MissingField("queueDatas[].writeQueueNums"))?,
            perm: opt_i32(obj, "perm", "queueDatas[].perm")?
                .ok_or(CodecError::MissingField("queueDatas[].perm"))?,
            topic_sys_flag,
        })
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("brokerName".into(), Value::String(self.broker_name.clone()));
        m.insert("perm".into(), Value::from(self.perm));
        m.insert("readQueueNums".into(), Value::from(self.read_queue_nums));
        m.insert("topicSysFlag".into(), Value::from(self.topic_sys_flag));
        m.insert("writeQueueNums".into(), Value::from(self.write_queue_nums));
        Value::Object(m)
    }
}

impl BrokerData {
    fn from_value(value: &Value) -> Result<Self, CodecError> {
        const ADDRS: &str = "brokerDatas[].brokerAddrs";
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("brokerDatas[]", value))?;
        let mut broker_addrs = BTreeMap::new();
        match obj.get("brokerAddrs") {
            None | Some(Value::Null) => return Err(CodecError::MissingField(ADDRS)),
            Some(Value::Object(addrs)) => {
                for (id, addr) in addrs {
                    let id: i64 = id
                        .trim()
                        .parse()
                        .map_err(|_| CodecError::invalid(ADDRS, id))?;
                    let addr = addr.as_str().ok_or_else(|| invalid(ADDRS, addr))?;
                    broker_addrs.insert(id, addr.to_owned());
                }
            }
            Some(other) => return Err(invalid(ADDRS, other)),
        }
        Ok(BrokerData {
            cluster: opt_string(obj, "cluster")?.unwrap_or_default(),
            broker_name: req_string(obj, "brokerName", "brokerDatas[].brokerName")?,
            broker_addrs,
            zone_name: opt_string(obj, "zoneName")?,
            enable_acting_master: match obj.get("enableActingMaster") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(invalid("brokerDatas[].enableActingMaster", other)),
            },
        })
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        let addrs: Map<String, Value> = self
            .broker_addrs
            .iter()
            .map(|(id, addr)| (id.to_string(), Value::String(addr.clone())))
            .collect();
        m.insert("brokerAddrs".into(), Value::Object(addrs));
        m.insert("brokerName".into(), Value::String(self.broker_name.clone()));
        m.insert("cluster".into(), Value::String(self.cluster.clone()));
        m.insert(
            "enableActingMaster".into(),
            Value::Bool(self.enable_acting_master),
        );
        if let Some(zone) = &self.zone_name {
            m.insert("zoneName".into(), Value::String(zone.clone()));
        }
        Value::Object(m)
    }
}

fn invalid(field: &'static str, value: &Value) -> CodecError {
    CodecError::invalid(field, &value.to_string())
}

fn opt_string(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, CodecError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(key, other)),
    }
}

fn req_string(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<String, CodecError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(CodecError::MissingField(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(invalid(field, other)),
    }
}

fn opt_i32(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<i32>, CodecError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(field, v)),
    }
}

/// Quotes every bare integer key: a `-?[0-9]+` token that directly follows `{` or `,`
/// (whitespace allowed) and is followed by `:` (whitespace allowed), outside string literals.
/// Everything else is copied unchanged.
pub fn quote_integer_keys(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut i = 0;
    let mut in_string = false;
    while i < input.len() {
        let b = input[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' => {
                    // Copy the escaped byte as is (it may be a quote).
                    if let Some(&next) = input.get(i + 1) {
                        out.push(next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
        match b {
            b'"' => in_string = true,
            b'{' | b',' => {
                let mut j = i;
                while j < input.len() && input[j].is_ascii_whitespace() {
                    j += 1;
                }
                let start = j;
                if j < input.len() && input[j] == b'-' {
                    j += 1;
                }
                let digits = j;
                while j < input.len() && input[j].is_ascii_digit() {
                    j += 1;
                }
                let end = j;
                while j < input.len() && input[j].is_ascii_whitespace() {
                    j += 1;
                }
                if end > digits && j < input.len() && input[j] == b':' {
                    out.extend_from_slice(&input[i..start]);
                    out.push(b'"');
                    out.extend_from_slice(&input[start..end]);
                    out.push(b'"');
                    i = end;
                }
            }
            _ => {}
        }
    }
    out
}

/// The inverse of [`quote_integer_keys`]: removes the quotes around keys that are `-?[0-9]+`.
fn unquote_integer_keys(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut in_string = false;
    while i < input.len() {
        let b = input[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' => {
                    if let Some(&next) = input.get(i + 1) {
                        out.push(next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
        match b {
            b'"' => in_string = true,
            b'{' | b',' if input.get(i) == Some(&b'"') => {
                let start = i + 1;
                let mut j = start;
                if j < input.len() && input[j] == b'-' {
                    j += 1;
                }
                let digits = j;
                while j < input.len() && input[j].is_ascii_digit() {
                    j += 1;
                }
                if j > digits && input.get(j) == Some(&b'"') && input.get(j + 1) == Some(&b':') {
                    out.extend_from_slice(&input[start..j]);
                    i = j + 1;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TopicRouteData {
        TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![
                QueueData {
                    broker_name: "broker-b".into(),
                    read_queue_nums: 8,
                    write_queue_nums: 8,
                    perm: 6,
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "broker-a".into(),
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    perm: 6,
                    topic_sys_flag: 0,
                },
            ],
            broker_datas: vec![
                BrokerData {
                    cluster: "DefaultCluster".into(),
                    broker_name: "broker-a".into(),
                    broker_addrs: [(0, "10.0.0.1:10911".into()), (1, "10.0.0.2:10911".into())]
                        .into_iter()
                        .collect(),
                    zone_name: None,
                    enable_acting_master: false,
                },
                BrokerData {
                    cluster: "DefaultCluster".into(),
                    broker_name: "broker-b".into(),
                    broker_addrs: [(0, "10.0.0.3:10911".into())].into_iter().collect(),
                    zone_name: Some("zone-1".into()),
                    enable_acting_master: true,
                },
            ],
            has_static_queue_mapping: false,
        }
    }

    #[test]
    fn standard_json() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{"0":"172.17.0.3:10911","1":"172.17.0.4:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.queue_datas.len(), 1);
        assert_eq!(r.queue_datas[0].perm, 6);
        assert_eq!(r.broker_datas[0].master_addr(), Some("172.17.0.3:10911"));
        assert_eq!(r.broker_datas[0].broker_addrs[&1], "172.17.0.4:10911");
        assert_eq!(r.broker_datas[0].cluster, "DefaultCluster");
        assert!(!r.has_static_queue_mapping);
        assert_eq!(r.order_topic_conf, None);
    }

    #[test]
    fn legacy_unquoted_keys() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"172.17.0.3:10911",1:"172.17.0.4:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        assert!(serde_json::from_slice::<Value>(body).is_err());
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.broker_datas[0].broker_addrs.len(), 2);
        assert_eq!(r.broker_datas[0].master_addr(), Some("172.17.0.3:10911"));
    }

    #[test]
    fn legacy_negative_multi_digit_and_spaced_keys() {
        let body = br#"{ "brokerDatas" : [ { "brokerAddrs" : { 0 : "a:1" , 12:"b:2",-3 :"c:3",  1234567890123:"d:4"}, "brokerName":"x"}], "queueDatas":[]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        let addrs = &r.broker_datas[0].broker_addrs;
        assert_eq!(addrs[&0], "a:1");
        assert_eq!(addrs[&12], "b:2");
        assert_eq!(addrs[&-3], "c:3");
        assert_eq!(addrs[&1_234_567_890_123], "d:4");
    }

    #[test]
    fn repair_leaves_strings_alone() {
        // Strings containing `{0:` and `,1:` and escaped quotes must not change.
        let body = br#"{"orderTopicConf":"{0:\"x\",1:2}","brokerDatas":[{"brokerAddrs":{0:"h:1"},"brokerName":"b,7:\"{9:"}],"queueDatas":[{"brokerName":"b,7:\"{9:","perm":2,"readQueueNums":1,"writeQueueNums":1}]}"#;
        let repaired = quote_integer_keys(body);
        let s = std::str::from_utf8(&repaired).unwrap();
        assert!(s.contains(r#""orderTopicConf":"{0:\"x\",1:2}""#), "{s}");
        assert!(s.contains(r#""brokerName":"b,7:\"{9:""#), "{s}");
        assert!(s.contains(r#"{"0":"h:1"}"#), "{s}");
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.order_topic_conf.as_deref(), Some(r#"{0:"x",1:2}"#));
        assert_eq!(r.broker_datas[0].broker_name, r#"b,7:"{9:"#);
        assert_eq!(r.queue_datas[0].broker_name, r#"b,7:"{9:"#);
        // A string ending in an escaped backslash closes normally.
        let body = br#"{"orderTopicConf":"a\\","brokerDatas":[{"brokerAddrs":{0:"h:1"},"brokerName":"b"}]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.order_topic_conf.as_deref(), Some("a\\"));
        assert_eq!(r.broker_datas[0].master_addr(), Some("h:1"));
    }

    #[test]
    fn repair_only_touches_keys() {
        // Integer values after `,` inside arrays are not keys (no `:` follows).
        assert_eq!(
            quote_integer_keys(b"[1,2,{3:4}]"),
            br#"[1,2,{"3":4}]"#.to_vec()
        );
        assert_eq!(quote_integer_keys(b"{-:1}"), b"{-:1}".to_vec());
        assert_eq!(
            quote_integer_keys(b"{\"a\":1,7 :2}"),
            b"{\"a\":1,\"7\" :2}".to_vec()
        );
    }

    #[test]
    fn topic_syn_flag_spelling() {
        let body = br#"{"brokerDatas":[],"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":4,"topicSynFlag":3,"writeQueueNums":4}]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.queue_datas[0].topic_sys_flag, 3);
        let body = br#"{"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":4,"topicSysFlag":5,"writeQueueNums":4}]}"#;
        assert_eq!(
            TopicRouteData::from_json(body).unwrap().queue_datas[0].topic_sys_flag,
            5
        );
    }

    #[test]
    fn unknown_keys_and_nulls_ignored() {
        let body = br#"{"orderTopicConf":null,"future":{"x":[1,2]},"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":4,"writeQueueNums":4,"extra":true}],"brokerDatas":[{"brokerName":"a","brokerAddrs":{"0":"h:1"},"zoneName":null,"newField":1}],"topicQueueMappingInfo":null}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.queue_datas[0].topic_sys_flag, 0);
        assert_eq!(r.broker_datas[0].zone_name, None);
        assert_eq!(r.broker_datas[0].cluster, "");
    }

    #[test]
    fn static_queue_mapping_flag() {
        let body = br#"{"queueDatas":[],"brokerDatas":[],"topicQueueMappingByBroker":{"broker-a":{"bname":"broker-a","currIdMap":{0:0},"epoch":1,"scope":"__global__","totalQueues":2}}}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert!(r.has_static_queue_mapping);
        let body = br#"{"queueDatas":[],"brokerDatas":[],"topicQueueMappingByBroker":{}}"#;
        assert!(
            !TopicRouteData::from_json(body)
                .unwrap()
                .has_static_queue_mapping
        );
        let mut s = sample();
        s.has_static_queue_mapping = true;
        assert_eq!(TopicRouteData::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"queueDatas":[{"perm":6,"readQueueNums":1,"writeQueueNums":1}]}"#, "queueDatas[].brokerName"),
            (br#"{"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":1}]}"#, "queueDatas[].writeQueueNums"),
            (br#"{"queueDatas":[{"brokerName":"a","perm":"x","readQueueNums":1,"writeQueueNums":1}]}"#, "queueDatas[].perm"),
            (br#"{"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":1,"writeQueueNums":99999999999}]}"#, "queueDatas[].writeQueueNums"),
            (br#"{"brokerDatas":[{"brokerName":"a","brokerAddrs":{"zero":"h:1"}}]}"#, "brokerDatas[].brokerAddrs"),
            (br#"{"brokerDatas":[{"brokerName":"a","brokerAddrs":{"0":5}}]}"#, "brokerDatas[].brokerAddrs"),
            (br#"{"brokerDatas":[{"brokerName":"a"}]}"#, "brokerDatas[].brokerAddrs"),
        ];
        for (body, field) in cases {
            let err = TopicRouteData::from_json(body).unwrap_err();
            let named = match &err {
                CodecError::MissingField(f) => *f,
                CodecError::InvalidField { field, .. } => *field,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(named, field, "{}", String::from_utf8_lossy(body));
        }
        assert!(matches!(
            TopicRouteData::from_json(b"[1,2]"),
            Err(CodecError::Json(_))
        ));
        assert!(matches!(
            TopicRouteData::from_json(b"{\"queueDatas\":[}"),
            Err(CodecError::Json(_))
        ));
        assert!(matches!(
            TopicRouteData::from_json(b""),
            Err(CodecError::Json(_))
        ));
    }

    #[test]
    fn huge_queue_counts_are_refused() {
        // 2^31-1 write queues would make a client build 2^31-1 queues: refused, with an error
        // that names the field, the broker and the limit.
        let body = br#"{"brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"broker-a"}],"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"writeQueueNums":2147483647}]}"#;
        let err = TopicRouteData::from_json(body).unwrap_err().to_string();
        assert!(err.contains("writeQueueNums"), "{err}");
        assert!(err.contains("broker-a"), "{err}");
        assert!(err.contains("2147483647"), "{err}");
        assert!(err.contains("65536"), "{err}");
        // Each count under the limit, but the sum over brokers over it.
        let mut r = sample();
        r.queue_datas[0].write_queue_nums = 40_000;
        r.queue_datas[1].write_queue_nums = 40_000;
        let err = TopicRouteData::from_json(&r.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains("80000"), "{err}");
        // Read queues too.
        let mut r = sample();
        r.queue_datas[0].read_queue_nums = i32::MAX;
        let err = TopicRouteData::from_json(&r.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains("readQueueNums"), "{err}");
        // orderTopicConf counts.
        let mut r = sample();
        r.order_topic_conf = Some("broker-a:4;broker-b:2147483647".into());
        let err = TopicRouteData::from_json(&r.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains("orderTopicConf"), "{err}");
        assert!(err.contains("broker-b"), "{err}");
        r.order_topic_conf = Some("broker-a:40000;broker-b:40000".into());
        assert!(TopicRouteData::from_json(&r.to_json()).is_err());
        // At the limit is fine.
        let mut r = sample();
        r.queue_datas[0].write_queue_nums = MAX_TOPIC_QUEUES as i32 / 2;
        r.queue_datas[1].write_queue_nums = MAX_TOPIC_QUEUES as i32 / 2;
        r.order_topic_conf = Some(format!("broker-a:{}", MAX_TOPIC_QUEUES));
        assert_eq!(TopicRouteData::from_json(&r.to_json()).unwrap(), r);
        assert!(r.check_limits().is_ok());
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let std_json = r.to_json();
        assert!(serde_json::from_slice::<Value>(&std_json).is_ok());
        assert_eq!(TopicRouteData::from_json(&std_json).unwrap(), r);
        let legacy = r.to_legacy_json();
        let text = String::from_utf8(legacy.clone()).unwrap();
        assert!(
            text.contains(r#"{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#),
            "{text}"
        );
        assert!(serde_json::from_slice::<Value>(&legacy).is_err());
        assert_eq!(TopicRouteData::from_json(&legacy).unwrap(), r);
        let mut ordered = r;
        ordered.order_topic_conf = Some("broker-a:4;broker-b:4".into());
        assert_eq!(
            TopicRouteData::from_json(&ordered.to_legacy_json()).unwrap(),
            ordered
        );
    }

    #[test]
    fn normalized_ignores_order() {
        let a = sample();
        let mut b = sample();
        b.queue_datas.reverse();
        b.broker_datas.reverse();
        assert_ne!(a, b);
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.normalized().queue_datas[0].broker_name, "broker-a");
    }

    #[test]
    fn perm_bits() {
        assert!(perm::is_writeable(6) && perm::is_readable(6) && !perm::is_inherited(6));
        assert!(perm::is_inherited(7));
        assert!(!perm::is_writeable(4));
        assert!(!perm::is_readable(2));
        assert_eq!(
            perm::PRIORITY | perm::READ | perm::WRITE | perm::INHERIT,
            15
        );
    }
}
