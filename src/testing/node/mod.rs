//! The logic of a mock node: the broker's store and request handling, the name server's routes,
//! transactions and scripted faults. Network-free; [`super::server`] feeds it requests.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::reply::{Reply, SendOk};
use super::server::{Action, Conn, Dispatch, Server};
use super::{EndTransactionRecord, HalfMessage, MockCounters, TransactionState};
use crate::message::{property, MessageExt};
use crate::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, CreateTopicRequestHeader,
    EndTransactionRequestHeader, GetMaxOffsetRequestHeader, GetRouteInfoRequestHeader,
    UnregisterClientRequestHeader, ViewMessageByIdRequestHeader,
};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::message_codec::{self, sys_flag};
use crate::protocol::route::{perm, BrokerData, QueueData, TopicRouteData};
use crate::protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode, SerializeType};

/// The topic real brokers auto-create topics from.
pub(crate) const DEFAULT_TOPIC: &str = "TBW102";
/// Queues of TBW102 (broker default `defaultTopicQueueNums`).
pub(crate) const DEFAULT_TOPIC_QUEUES: i32 = 8;
/// Largest body a broker accepts (`maxMessageSize`).
pub(crate) const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Where a real broker keeps half messages (queue 0).
pub(crate) const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Topics a real broker refuses sends to (`TopicValidator.isNotAllowedSendTopic`).
const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    HALF_TOPIC,
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC",
    "SCHEDULE_TOPIC_XXXX",
    "rmq_sys_wheel_timer",
    "RMQ_SYS_SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];
/// The first request version a name server answers with standard JSON (V4_9_4).
const STANDARD_JSON_VERSION: i32 = 401;

/// A topic's configuration on a broker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicConf {
    pub(crate) read_queues: i32,
    pub(crate) write_queues: i32,
    pub(crate) perm: i32,
}

impl TopicConf {
    pub(crate) fn rw(queues: i32) -> TopicConf {
        TopicConf {
            read_queues: queues,
            write_queues: queues,
            perm: perm::READ | perm::WRITE,
        }
    }
}

/// A visible stored message, compact: properties stay encoded until a test reads them back.
struct Record {
    topic: Arc<str>,
    body: Vec<u8>,
    flag: i32,
    /// Encoded as stored (`name \u0001 value \u0002`...), broker stamps included.
    properties: String,
    queue_id: i32,
    queue_offset: i64,
    commit_log_offset: i64,
    sys_flag: i32,
    born_timestamp: i64,
    born_host: SocketAddr,
    store_timestamp: i64,
    reconsume_times: i32,
    prepared_transaction_offset: i64,
}

impl Record {
    fn from_message(msg: MessageExt) -> Record {
        let mut properties = String::new();
        message_codec::encode_properties(
            msg.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut properties,
        );
        Record {
            topic: msg.topic.into(),
            body: msg.body,
            flag: msg.flag,
            properties,
            queue_id: msg.queue_id,
            queue_offset: msg.queue_offset,
            commit_log_offset: msg.commit_log_offset,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            born_host: msg.born_host,
            store_timestamp: msg.store_timestamp,
            reconsume_times: msg.reconsume_times,
            prepared_transaction_offset: msg.prepared_transaction_offset,
        }
    }

    fn to_message(&self, store_host: SocketAddr) -> MessageExt {
        MessageExt {
            topic: self.topic.to_string(),
            body: self.body.clone(),
            flag: self.flag,
            properties: message_codec::decode_properties(&self.properties),
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            commit_log_offset: self.commit_log_offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body_crc: message_codec::body_crc32(&self.body),
        }
    }
}

/// Where a record's variable parts start in the stored layout: everything but the body, topic
/// and properties (IPv4 hosts; 12 more bytes per IPv6 host).
const STORED_FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2;

fn stored_len_of(
    born: &SocketAddr,
    store: &SocketAddr,
    body: usize,
    topic: usize,
    props: usize,
) -> i64 {
    let v6 = |a: &SocketAddr| if a.is_ipv4() { 0 } else { 12 };
    (STORED_FIXED_LEN + v6(born) + v6(store) + body + topic + props) as i64
}

/// The send header fields the broker uses, borrowed from the request: one pass over the
/// extFields, V1 (long names) or V2 (single letters) alike.
struct SendFields<'a> {
    topic: &'a str,
    default_topic: &'a str,
    default_topic_queue_nums: i32,
    queue_id: i32,
    sys_flag: i32,
    born_timestamp: i64,
    flag: i32,
    properties: &'a str,
    reconsume_times: i32,
}

impl<'a> SendFields<'a> {
    fn read(fields: &'a ExtFields) -> Result<SendFields<'a>, String> {
        let mut topic = None;
        let mut default_topic = None;
        let mut default_nums = None;
        let mut queue_id = None;
        let mut sys_flag = None;
        let mut born = None;
        let mut flag = None;
        let mut properties = "";
        let mut reconsume = 0;
        fn int<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("invalid {key}: {v:?}"))
        }
        for (k, v) in fields.iter() {
            match k {
                "b" | "topic" => topic = Some(v),
                "c" | "defaultTopic" => default_topic = Some(v),
                "d" | "defaultTopicQueueNums" => default_nums = Some(int(k, v)?),
                "e" | "queueId" => queue_id = Some(int(k, v)?),
                "f" | "sysFlag" => sys_flag = Some(int(k, v)?),
                "g" | "bornTimestamp" => born = Some(int(k, v)?),
                "h" | "flag" => flag = Some(int(k, v)?),
                "i" | "properties" => properties = v,
                "j" | "reconsumeTimes" => reconsume = int(k, v)?,
                _ => {}
            }
        }
        let missing = |name: &str| format!("the custom field <{name}> is null");
        Ok(SendFields {
            topic: topic.ok_or_else(|| missing("topic"))?,
            default_topic: default_topic.ok_or_else(|| missing("defaultTopic"))?,
            default_topic_queue_nums: default_nums
                .ok_or_else(|| missing("defaultTopicQueueNums"))?,
            queue_id: queue_id.ok_or_else(|| missing("queueId"))?,
            sys_flag: sys_flag.ok_or_else(|| missing("sysFlag"))?,
            born_timestamp: born.ok_or_else(|| missing("bornTimestamp"))?,
            flag: flag.ok_or_else(|| missing("flag"))?,
            properties,
            reconsume_times: reconsume,
        })
    }
}

/// The properties a broker stamps on every stored message.
const STAMPS: [(&str, &str); 2] = [
    (property::MSG_REGION, "DefaultRegion"),
    (property::TRACE_ON, "true"),
];

/// What the send path needs to know of a properties string, found without allocating.
struct PropScan<'a> {
    uniq: Option<&'a str>,
    transactional: bool,
    /// Whether `decode_properties` + re-encoding would give the string back unchanged (every
    /// pair well formed and ended, no repeated or broker-stamped name), so it can be stored
    /// as it came.
    canonical: bool,
}

fn scan_properties(s: &str) -> PropScan<'_> {
    let mut scan = PropScan {
        uniq: None,
        transactional: false,
        canonical: s.is_empty() || s.ends_with(message_codec::PROPERTY_SEPARATOR),
    };
    let mut names: [&str; 16] = [""; 16];
    let mut n = 0;
    let body = s
        .strip_suffix(message_codec::PROPERTY_SEPARATOR)
        .unwrap_or(s);
    for segment in body.split(message_codec::PROPERTY_SEPARATOR) {
        if segment.is_empty() {
            // Only the end may be empty (and `s` itself).
            scan.canonical &= s.is_empty();
            continue;
        }
        let Some((k, v)) = segment.split_once(message_codec::NAME_VALUE_SEPARATOR) else {
            scan.canonical = false;
            continue;
        };
        if k.is_empty() || v.is_empty() {
            scan.canonical = false;
            continue;
        }
        if k == property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX {
            scan.uniq = Some(v);
        } else if k == property::TRANSACTION_PREPARED {
            scan.transactional = v.eq_ignore_ascii_case("true");
        }
        if n == names.len()
            || names[..n].contains(&k)
            || k == property::CLUSTER
            || STAMPS.iter().any(|(s, _)| *s == k)
        {
            scan.canonical = false;
        } else {
            names[n] = k;
            n += 1;
        }
    }
    scan
}

/// An offset message id: store host and commit-log offset, 32 upper-case hex digits for IPv4.
fn write_offset_id(out: &mut String, host: SocketAddr, offset: i64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut push = |bytes: &[u8]| {
        for b in bytes {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xF) as usize] as char);
        }
    };
    match host.ip() {
        std::net::IpAddr::V4(ip) => push(&ip.octets()),
        std::net::IpAddr::V6(ip) => push(&ip.octets()),
    }
    push(&i32::from(host.port()).to_be_bytes());
    push(&offset.to_be_bytes());
}

/// A scripted fault for the next request of a code.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Fail(i32, String),
    /// Handle the request, then answer with this code instead of SUCCESS (FLUSH_DISK_TIMEOUT
    /// and friends: the message is stored, the status says it is not safe yet).
    Status(i32),
    Delay(Duration),
    Reset,
    Malformed,
    Close,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) next: HashMap<i32, VecDeque<Fault>>,
    pub(crate) standing_delay: HashMap<i32, Duration>,
    pub(crate) black_hole: bool,
}

impl Faults {
    fn is_empty(&self) -> bool {
        self.next.is_empty() && self.standing_delay.is_empty() && !self.black_hole
    }
}

/// A half message and where it stands.
struct Half {
    /// The latest half record (the original or the copy of the last check), with its real topic
    /// and queue.
    msg: MessageExt,
    tran_state_offset: i64,
    group: String,
    state: TransactionState,
    checks: u32,
    /// When the original was stored (checks wait for `transaction_timeout` after it).
    stored_at: Instant,
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) topics: HashMap<String, TopicConf>,
    /// Every visible message, in arrival order (unless messages are not kept), which is also
    /// commit-log order: VIEW_MESSAGE_BY_ID finds a record by binary search.
    log: Vec<Record>,
    /// Topic names shared by stored records.
    names: HashMap<String, Arc<str>>,
    /// Next offset per topic and queue.
    queue_offsets: HashMap<String, HashMap<i32, i64>>,
    next_commit_offset: i64,
    halves: Vec<Half>,
    /// Every half record (originals and check copies) by commit-log offset, as a real broker
    /// keeps them: in the half topic, queue 0.
    half_records: HashMap<i64, MessageExt>,
    half_queue_offset: i64,
    pub(crate) end_transactions: Vec<EndTransactionRecord>,
    pub(crate) counters: MockCounters,
    /// Producer group -> connections that heartbeat for it.
    groups: HashMap<String, Vec<Weak<Conn>>>,
}

/// Settings of the broker role.
#[derive(Debug, Clone)]
pub(crate) struct BrokerSettings {
    pub(crate) auto_create: bool,
    pub(crate) keep_messages: bool,
    pub(crate) slave: bool,
    pub(crate) transaction_timeout: Duration,
    pub(crate) transaction_check_max: u32,
}

/// The broker role of a node.
pub(crate) struct BrokerCore {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) settings: BrokerSettings,
    pub(crate) store: Mutex<Store>,
    /// Set once the server is bound.
    pub(crate) addr: OnceLock<SocketAddr>,
    /// The stamps appended to a stored properties string.
    stamp_suffix: String,
    /// The address of a slave listed in routes as id 1, if any.
    pub(crate) slave_addr: Mutex<Option<String>>,
}

/// The name server role: which brokers' topics make up the routes.
pub(crate) struct NamesrvCore {
    /// Brokers of the cluster (a single MockBroker serves routes to itself instead).
    pub(crate) brokers: Mutex<Vec<(Arc<Node>, bool)>>,
    pub(crate) serve_self: bool,
    /// Always answer routes in the legacy (pre-4.9.4) form with unquoted integer keys.
    pub(crate) legacy_json: AtomicBool,
}

/// A mock node: a broker, a name server, or both on one port.
pub(crate) struct Node {
    pub(crate) broker: Option<BrokerCore>,
    pub(crate) namesrv: Option<NamesrvCore>,
    pub(crate) server: Mutex<Option<Arc<Server>>>,
    pub(crate) faults: Mutex<Faults>,
    /// Fast path: false while no fault is scripted.
    pub(crate) any_fault: AtomicBool,
    /// Requests received per code.
    pub(crate) received: RequestCounts,
}

/// Requests received per code: lock-free for the codes a client sends (below 1024).
pub(crate) struct RequestCounts {
    low: Box<[AtomicU64]>,
    other: Mutex<HashMap<i32, u64>>,
}

impl RequestCounts {
    fn new() -> Self {
        RequestCounts {
            low: (0..1024).map(|_| AtomicU64::new(0)).collect(),
            other: Mutex::new(HashMap::new()),
        }
    }

    fn add(&self, code: i32) {
        match usize::try_from(code).ok().and_then(|i| self.low.get(i)) {
            Some(slot) => {
                slot.fetch_add(1, Ordering::Relaxed);
            }
            None => *self.other.lock().entry(code).or_insert(0) += 1,
        }
    }

    pub(crate) fn get(&self, code: i32) -> u64 {
        match usize::try_from(code).ok().and_then(|i| self.low.get(i)) {
            Some(slot) => slot.load(Ordering::Relaxed),
            None => self.other.lock().get(&code).copied().unwrap_or(0),
        }
    }

    pub(crate) fn snapshot(&self) -> HashMap<i32, u64> {
        let mut all = self.other.lock().clone();
        for (code, slot) in self.low.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            if n > 0 {
                all.insert(code as i32, n);
            }
        }
        all
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn response(code: i32, opaque: i32, remark: &str) -> RemotingCommand {
    let mut r = RemotingCommand::response(code, opaque);
    if !remark.is_empty() {
        r.remark = Some(remark.to_string());
    }
    r
}

/// The size of `msg` in the stored layout (V1 magic), which is how far it moves the
/// commit-log offset (protocol.md 9.5).
fn stored_len(msg: &MessageExt) -> i64 {
    let props: usize = msg
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    stored_len_of(
        &msg.born_host,
        &msg.store_host,
        msg.body.len(),
        msg.topic.len(),
        props,
    )
}

/// The commit log's limit on a stored properties string (an i16 length).
fn check_properties_len(len: usize) -> Result<(), Refusal> {
    if len > message_codec::MAX_PROPERTIES_LEN {
        return Err((
            ResponseCode::MESSAGE_ILLEGAL,
            "Message validation failed. Check body length (<4MB) and properties size (<32KB)."
                .into(),
        ));
    }
    Ok(())
}

/// Topic names a real broker accepts.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 127
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
}

fn set_property(props: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    match props.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => props.push((key.to_string(), value)),
    }
}

fn remove_property(props: &mut Vec<(String, String)>, key: &str) {
    props.retain(|(k, _)| k != key);
}

/// A send rejected before anything was stored: code and remark.
type Refusal = (i32, String);

impl BrokerCore {
    pub(crate) fn new(name: &str, settings: BrokerSettings) -> Self {
        let mut store = Store::default();
        if settings.auto_create {
            store.topics.insert(
                DEFAULT_TOPIC.to_string(),
                TopicConf {
                    read_queues: DEFAULT_TOPIC_QUEUES,
                    write_queues: DEFAULT_TOPIC_QUEUES,
                    perm: perm::READ | perm::WRITE | perm::INHERIT,
                },
            );
        }
        let cluster = "DefaultCluster".to_string();
        let mut stamp_suffix = String::new();
        message_codec::encode_properties(
            std::iter::once((property::CLUSTER, cluster.as_str())).chain(STAMPS),
            &mut stamp_suffix,
        );
        BrokerCore {
            name: name.to_string(),
            cluster,
            settings,
            store: Mutex::new(store),
            addr: OnceLock::new(),
            stamp_suffix,
            slave_addr: Mutex::new(None),
        }
    }

    fn store_addr(&self) -> SocketAddr {
        self.addr
            .get()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn offset_id(&self, offset: i64) -> String {
        let mut s = String::with_capacity(32);
        write_offset_id(&mut s, self.store_addr(), offset);
        s
    }

    /// Takes the next commit-log offset for a record of `len` bytes.
    fn next_commit_offset(store: &mut Store, len: i64) -> i64 {
        let at = store.next_commit_offset;
        store.next_commit_offset += len;
        at
    }

    /// Keeps a visible record for readers (unless messages are not kept).
    fn keep(&self, store: &mut Store, record: Record) {
        if self.settings.keep_messages {
            store.log.push(record);
        }
    }

    /// Gives `msg` the next commit-log offset and its store fields; visible messages are kept
    /// for readers. Returns the message as stored. (The path of half records and committed
    /// messages; plain sends take a faster one.)
    fn append(&self, store: &mut Store, mut msg: MessageExt, visible: bool) -> MessageExt {
        msg.store_host = self.store_addr();
        msg.store_timestamp = now_ms();
        msg.body_crc = message_codec::body_crc32(&msg.body);
        msg.commit_log_offset = Self::next_commit_offset(store, stored_len(&msg));
        if visible {
            self.keep(store, Record::from_message(msg.clone()));
        }
        msg
    }

    /// Appends a half record: the commit log holds it in the half topic, queue 0, with its real
    /// topic and queue in `REAL_TOPIC` / `REAL_QID`. Returns it with its real topic and queue.
    fn append_half(&self, store: &mut Store, msg: MessageExt) -> MessageExt {
        let mut record = msg;
        let (topic, queue) = (record.topic.clone(), record.queue_id);
        record.topic = HALF_TOPIC.to_string();
        record.queue_id = 0;
        let mut record = self.append(store, record, false);
        store
            .half_records
            .insert(record.commit_log_offset, record.clone());
        record.topic = topic;
        record.queue_id = queue;
        record
    }

    fn next_queue_offset(store: &mut Store, topic: &str, queue: i32) -> i64 {
        let offsets = match store.queue_offsets.get_mut(topic) {
            Some(o) => o,
            None => store.queue_offsets.entry(topic.to_string()).or_default(),
        };
        let slot = offsets.entry(queue).or_insert(0);
        let v = *slot;
        *slot += 1;
        v
    }

    /// The shared name of a topic, for stored records.
    fn topic_name(store: &mut Store, topic: &str) -> Arc<str> {
        match store.names.get(topic) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = topic.into();
                store.names.insert(topic.to_string(), name.clone());
                name
            }
        }
    }

    /// The topic's config, auto-creating it from the default topic when allowed.
    fn topic_for_send(&self, store: &mut Store, f: &SendFields<'_>) -> Result<TopicConf, Refusal> {
        if let Some(conf) = store.topics.get(f.topic) {
            return Ok(*conf);
        }
        let template = store.topics.get(f.default_topic).copied();
        match template {
            Some(t) if self.settings.auto_create && perm::is_inherited(t.perm) => {
                let queues = f.default_topic_queue_nums.clamp(1, t.write_queues);
                let conf = TopicConf {
                    read_queues: queues,
                    write_queues: queues,
                    perm: t.perm & !perm::INHERIT,
                };
                store.topics.insert(f.topic.to_string(), conf);
                Ok(conf)
            }
            _ => Err((
                ResponseCode::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", f.topic),
            )),
        }
    }

    /// `AbstractSendMessageProcessor.msgCheck` and the store's checks, in a real broker's order.
    fn check_send(
        &self,
        store: &mut Store,
        f: &SendFields<'_>,
        body_len: usize,
    ) -> Result<TopicConf, Refusal> {
        if self.settings.slave {
            return Err((
                ResponseCode::SERVICE_NOT_AVAILABLE,
                "service not available now. It may be caused by one of the following reasons: \
                 the broker's disk is full, messages are put to the slave, message store has \
                 been shut down, etc."
                    .into(),
            ));
        }
        if !valid_topic(f.topic) {
            return Err((
                ResponseCode::SYSTEM_ERROR,
                "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
                    .into(),
            ));
        }
        if NOT_ALLOWED_SEND_TOPICS.contains(&f.topic) {
            return Err((
                ResponseCode::NO_PERMISSION,
                format!("Sending message to topic[{}] is forbidden.", f.topic),
            ));
        }
        if body_len > MAX_MESSAGE_SIZE {
            return Err((
                ResponseCode::MESSAGE_ILLEGAL,
                format!("the message body size over max value, MAX: {MAX_MESSAGE_SIZE}"),
            ));
        }
        let conf = self.topic_for_send(store, f)?;
        if !perm::is_writeable(conf.perm) {
            return Err((
                ResponseCode::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", f.topic),
            ));
        }
        // SYSTEM_ERROR, as Java's `msgCheck` and the RocketMQ-Rust broker answer (checked on the
        // wire), not INVALID_PARAMETER.
        let queues = conf.read_queues.max(conf.write_queues);
        if f.queue_id >= queues {
            return Err((
                ResponseCode::SYSTEM_ERROR,
                format!(
                    "request queueId[{}] is illegal, topic {} has {} queues",
                    f.queue_id, f.topic, queues
                ),
            ));
        }
        Ok(conf)
    }

    fn base_message(
        f: &SendFields<'_>,
        queue_id: i32,
        body: Vec<u8>,
        flag: i32,
        properties: Vec<(String, String)>,
        born_host: SocketAddr,
    ) -> MessageExt {
        MessageExt {
            topic: f.topic.to_string(),
            body,
            flag,
            properties,
            queue_id,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: f.sys_flag,
            born_timestamp: f.born_timestamp,
            born_host,
            store_timestamp: 0,
            store_host: born_host,
            reconsume_times: f.reconsume_times,
            prepared_transaction_offset: 0,
            body_crc: 0,
        }
    }

    /// Sets the properties a real broker stamps on every stored message (`CLUSTER`,
    /// `MSG_REGION`, `TRACE_ON`) and checks the stored properties against the commit log's
    /// 32 767-byte limit, which therefore includes them (as on a real broker).
    fn stamp(&self, properties: &mut Vec<(String, String)>) -> Result<(), Refusal> {
        set_property(properties, property::CLUSTER, self.cluster.clone());
        for (k, v) in STAMPS {
            set_property(properties, k, v);
        }
        let len: usize = properties.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        check_properties_len(len)
    }

    /// A send response: a real broker puts `MSG_REGION` and `TRACE_ON` on every response of
    /// the send path, failures included.
    fn send_reply(code: i32, opaque: i32, remark: &str) -> Reply {
        let mut r = response(code, opaque, remark);
        r.ext_fields.insert("MSG_REGION", "DefaultRegion");
        r.ext_fields.insert("TRACE_ON", "true");
        Reply::Cmd(r)
    }

    fn send_ok(
        opaque: i32,
        msg_ids: String,
        queue_id: i32,
        queue_offset: i64,
        transaction_id: Option<&str>,
    ) -> Reply {
        Reply::SendOk(SendOk {
            opaque,
            msg_ids,
            queue_id,
            queue_offset,
            transaction_id: transaction_id.map(str::to_string),
        })
    }

    fn handle_send(&self, conn: &Conn, request: &mut RemotingCommand) -> Reply {
        let opaque = request.opaque;
        let body = std::mem::take(&mut request.body);
        let f = match SendFields::read(&request.ext_fields) {
            Ok(f) => f,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e).into(),
        };
        let mut store = self.store.lock();
        let conf = match self.check_send(&mut store, &f, body.len()) {
            Ok(c) => c,
            Err((code, remark)) => return Self::send_reply(code, opaque, &remark),
        };
        let queue_id = if f.queue_id < 0 {
            (rand::random::<u32>() % conf.write_queues.max(1) as u32) as i32
        } else {
            f.queue_id
        };
        if request.code == RequestCode::SEND_BATCH_MESSAGE {
            return self.store_batch(&mut store, conn, &f, queue_id, &body, opaque);
        }
        let scan = scan_properties(f.properties);
        if scan.transactional {
            let mut properties = message_codec::decode_properties(f.properties);
            if let Err((code, remark)) = self.stamp(&mut properties) {
                return Self::send_reply(code, opaque, &remark);
            }
            let msg = Self::base_message(&f, queue_id, body, f.flag, properties, conn.peer);
            return self.store_half(&mut store, msg, opaque, scan.uniq);
        }
        // The stored properties: as they came plus the stamps when that is what re-encoding
        // would give, else decoded, stamped and encoded again.
        let properties = if scan.canonical {
            let mut p = String::with_capacity(f.properties.len() + self.stamp_suffix.len());
            p.push_str(f.properties);
            p.push_str(&self.stamp_suffix);
            p
        } else {
            let mut props = message_codec::decode_properties(f.properties);
            if let Err((code, remark)) = self.stamp(&mut props) {
                return Self::send_reply(code, opaque, &remark);
            }
            let mut p = String::new();
            message_codec::encode_properties(
                props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut p,
            );
            p
        };
        if let Err((code, remark)) = check_properties_len(properties.len()) {
            return Self::send_reply(code, opaque, &remark);
        }
        let store_host = self.store_addr();
        let len = stored_len_of(
            &conn.peer,
            &store_host,
            body.len(),
            f.topic.len(),
            properties.len(),
        );
        let commit_log_offset = Self::next_commit_offset(&mut store, len);
        let queue_offset = Self::next_queue_offset(&mut store, f.topic, queue_id);
        store.counters.messages_stored += 1;
        if self.settings.keep_messages {
            let topic = Self::topic_name(&mut store, f.topic);
            self.keep(
                &mut store,
                Record {
                    topic,
                    body,
                    flag: f.flag,
                    properties,
                    queue_id,
                    queue_offset,
                    commit_log_offset,
                    sys_flag: f.sys_flag,
                    born_timestamp: f.born_timestamp,
                    born_host: conn.peer,
                    store_timestamp: now_ms(),
                    reconsume_times: f.reconsume_times,
                    prepared_transaction_offset: 0,
                },
            );
        }
        drop(store);
        let mut id = String::with_capacity(32);
        write_offset_id(&mut id, store_host, commit_log_offset);
        Self::send_ok(opaque, id, queue_id, queue_offset, scan.uniq)
    }

    /// Stores each message of a batch; the response lists one offset id per message.
    fn store_batch(
        &self,
        store: &mut Store,
        conn: &Conn,
        f: &SendFields<'_>,
        queue_id: i32,
        body: &[u8],
        opaque: i32,
    ) -> Reply {
        let mut entries = match message_codec::decode_batch(body) {
            Ok(e) if !e.is_empty() => e,
            Ok(_) => return Self::send_reply(ResponseCode::MESSAGE_ILLEGAL, opaque, "empty batch"),
            Err(e) => {
                return Self::send_reply(ResponseCode::MESSAGE_ILLEGAL, opaque, &e.to_string())
            }
        };
        // A real broker stamps the batch's own properties and appends them, as they are, to
        // each message's (a name in both is then stored twice; readers see the last value).
        let mut outer = message_codec::decode_properties(f.properties);
        if let Err((code, remark)) = self.stamp(&mut outer) {
            return Self::send_reply(code, opaque, &remark);
        }
        let mut outer_s = String::new();
        message_codec::encode_properties(
            outer.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut outer_s,
        );
        let mut stored_props = Vec::with_capacity(entries.len());
        for entry in &mut entries {
            let mut p = String::new();
            message_codec::encode_properties(
                entry
                    .properties
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
                &mut p,
            );
            p.push_str(&outer_s);
            if let Err((code, remark)) = check_properties_len(p.len()) {
                return Self::send_reply(code, opaque, &remark);
            }
            stored_props.push(p);
        }
        let store_host = self.store_addr();
        let topic = Self::topic_name(store, f.topic);
        let now = now_ms();
        let mut ids = String::with_capacity(33 * entries.len());
        let mut first_offset = None;
        let count = entries.len() as u64;
        for (entry, properties) in entries.into_iter().zip(stored_props) {
            let len = stored_len_of(
                &conn.peer,
                &store_host,
                entry.body.len(),
                f.topic.len(),
                properties.len(),
            );
            let commit_log_offset = Self::next_commit_offset(store, len);
            let queue_offset = Self::next_queue_offset(store, f.topic, queue_id);
            first_offset.get_or_insert(queue_offset);
            self.keep(
                store,
                Record {
                    topic: topic.clone(),
                    body: entry.body,
                    flag: entry.flag,
                    properties,
                    queue_id,
                    queue_offset,
                    commit_log_offset,
                    sys_flag: f.sys_flag,
                    born_timestamp: f.born_timestamp,
                    born_host: conn.peer,
                    store_timestamp: now,
                    reconsume_times: f.reconsume_times,
                    prepared_transaction_offset: 0,
                },
            );
            if !ids.is_empty() {
                ids.push(',');
            }
            write_offset_id(&mut ids, store_host, commit_log_offset);
        }
        store.counters.messages_stored += count;
        Self::send_ok(opaque, ids, queue_id, first_offset.unwrap_or(0), None)
    }

    /// Holds a half message: the response names its half-queue offset.
    fn store_half(
        &self,
        store: &mut Store,
        msg: MessageExt,
        opaque: i32,
        uniq: Option<&str>,
    ) -> Reply {
        let group = msg
            .property(property::PRODUCER_GROUP)
            .unwrap_or_default()
            .to_string();
        let queue_id = msg.queue_id;
        let mut half = msg;
        set_property(
            &mut half.properties,
            property::REAL_TOPIC,
            half.topic.clone(),
        );
        set_property(
            &mut half.properties,
            property::REAL_QUEUE_ID,
            queue_id.to_string(),
        );
        if let Some(id) = uniq {
            set_property(&mut half.properties, property::TRANSACTION_ID, id);
        }
        let tran_state_offset = store.half_queue_offset;
        store.half_queue_offset += 1;
        half.queue_offset = tran_state_offset;
        let half = self.append_half(store, half);
        let id = self.offset_id(half.commit_log_offset);
        store.halves.push(Half {
            msg: half,
            tran_state_offset,
            group,
            state: TransactionState::Prepared,
            checks: 0,
            stored_at: Instant::now(),
        });
        store.counters.half_messages += 1;
        Self::send_ok(opaque, id, queue_id, tran_state_offset, uniq)
    }

    fn handle_end_transaction(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match EndTransactionRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        store.end_transactions.push(EndTransactionRecord {
            producer_group: header.producer_group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: header.commit_or_rollback,
            from_transaction_check: header.from_transaction_check,
            msg_id: header.msg_id.clone(),
            transaction_id: header.transaction_id.clone(),
            topic: header.topic.clone(),
            broker_name: header.broker_name.clone(),
            remark: request.remark.clone(),
            oneway: request.is_oneway(),
        });
        if self.settings.slave {
            return response(
                ResponseCode::SLAVE_NOT_AVAILABLE,
                opaque,
                "Transaction message is not available on a slave broker",
            );
        }
        let decision = header.commit_or_rollback;
        if decision != sys_flag::TRANSACTION_COMMIT && decision != sys_flag::TRANSACTION_ROLLBACK {
            // TRANSACTION_NOT_TYPE: logged by a real broker, which then waits for a check.
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        let Some(i) = store
            .halves
            .iter()
            .position(|h| h.msg.commit_log_offset == header.commit_log_offset)
        else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "Find prepared transaction message failed",
            );
        };
        if store.halves[i].group != header.producer_group {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The producer group wrong",
            );
        }
        if store.halves[i].tran_state_offset != header.tran_state_table_offset {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The transaction state table offset wrong",
            );
        }
        if store.halves[i].state != TransactionState::Prepared {
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        if decision == sys_flag::TRANSACTION_ROLLBACK {
            store.halves[i].state = TransactionState::RolledBack;
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        store.halves[i].state = TransactionState::Committed;
        // `EndTransactionProcessor.endMessageTransaction`: the real topic and queue, the half's
        // properties without REAL_TOPIC / REAL_QID / TRAN_MSG, the commit bits.
        let mut real = store.halves[i].msg.clone();
        remove_property(&mut real.properties, property::REAL_TOPIC);
        remove_property(&mut real.properties, property::REAL_QUEUE_ID);
        remove_property(&mut real.properties, property::TRANSACTION_PREPARED);
        real.sys_flag = sys_flag::reset_transaction_value(real.sys_flag, decision);
        real.prepared_transaction_offset = header.commit_log_offset;
        real.queue_offset = Self::next_queue_offset(&mut store, &real.topic, real.queue_id);
        self.append(&mut store, real, true);
        store.counters.messages_stored += 1;
        response(ResponseCode::SUCCESS, opaque, "")
    }

    fn handle_heartbeat(&self, conn: &Arc<Conn>, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let data = match HeartbeatData::from_json(&request.body) {
            Ok(d) => d,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        store.counters.heartbeats += 1;
        for group in &data.producer_groups {
            let conns = store.groups.entry(group.clone()).or_default();
            conns.retain(|c| c.upgrade().is_some_and(|c| c.is_alive()));
            if !conns
                .iter()
                .any(|c| c.upgrade().is_some_and(|c| c.id == conn.id))
            {
                conns.push(Arc::downgrade(conn));
            }
        }
        let clients = &mut store.counters.clients;
        match clients.iter_mut().find(|(id, _)| *id == data.client_id) {
            Some((_, groups)) => {
                for g in data.producer_groups {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
            None => clients.push((data.client_id, data.producer_groups)),
        }
        // What a 5.x broker (Java or Rust) answers.
        let mut r = response(ResponseCode::SUCCESS, opaque, "");
        r.ext_fields.insert("IS_SUB_CHANGE", "true");
        r.ext_fields.insert("IS_SUPPORT_HEART_BEAT_V2", "true");
        r
    }

    fn handle_unregister(&self, conn: &Conn, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        match UnregisterClientRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => {
                let mut store = self.store.lock();
                // The group no longer reaches this connection (no more check-backs through it).
                if let Some(group) = &h.producer_group {
                    if let Some(conns) = store.groups.get_mut(group) {
                        conns.retain(|c| c.upgrade().is_some_and(|c| c.id != conn.id));
                    }
                }
                store.counters.unregisters += 1;
                store.counters.unregistered.push(h.client_id);
                response(ResponseCode::SUCCESS, opaque, "")
            }
            Err(e) => response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        }
    }

    fn handle_view(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match ViewMessageByIdRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let msg = store
            .log
            .binary_search_by_key(&header.offset, |r| r.commit_log_offset)
            .ok()
            .map(|i| store.log[i].to_message(self.store_addr()))
            .or_else(|| store.half_records.get(&header.offset).cloned());
        drop(store);
        let Some(msg) = msg else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                &format!("can not find message by the offset, {}", header.offset),
            );
        };
        let mut body = Vec::new();
        if let Err(e) = message_codec::encode_stored_message(&msg, &mut body) {
            return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string());
        }
        RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body)
    }

    /// QUERY_MESSAGE: stored messages of a topic by `UNIQ_KEY` (`_UNIQUE_KEY_QUERY=true`) or by
    /// one of their `KEYS`, within a store-time range.
    fn handle_query(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let f = &request.ext_fields;
        let parsed = (|| {
            Ok::<_, crate::protocol::CodecError>((
                f.required("topic")?.to_string(),
                f.required("key")?.to_string(),
                f.required_i32("maxNum")?,
                f.required_i64("beginTimestamp")?,
                f.required_i64("endTimestamp")?,
            ))
        })();
        let (topic, key, max, begin, end) = match parsed {
            Ok(p) => p,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let unique = f.optional_bool("_UNIQUE_KEY_QUERY").unwrap_or(false);
        let store = self.store.lock();
        let mut body = Vec::new();
        let mut found = 0;
        let hits = store
            .log
            .iter()
            .filter(|r| *r.topic == *topic && (begin..=end).contains(&r.store_timestamp))
            .map(|r| r.to_message(self.store_addr()))
            .filter(|m| {
                if unique {
                    m.msg_id() == Some(key.as_str())
                } else {
                    m.keys().any(|k| k == key)
                }
            });
        for m in hits {
            if found >= max.max(1) {
                break;
            }
            if let Err(e) = message_codec::encode_stored_message(&m, &mut body) {
                return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string());
            }
            found += 1;
        }
        if found == 0 {
            return response(
                ResponseCode::QUERY_NOT_FOUND,
                opaque,
                "can not find message, maybe time range not correct",
            );
        }
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body);
        r.ext_fields
            .insert("indexLastUpdateTimestamp", now_ms().to_string());
        r.ext_fields.insert(
            "indexLastUpdatePhyoffset",
            store.next_commit_offset.to_string(),
        );
        r
    }

    fn handle_max_offset(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetMaxOffsetRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let offset = store
            .queue_offsets
            .get(&header.topic)
            .and_then(|q| q.get(&header.queue_id))
            .copied()
            .unwrap_or(0);
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        r.ext_fields.insert("offset", offset.to_string());
        r
    }

    /// UPDATE_AND_CREATE_TOPIC (admin): creates or updates the topic; routes change at once.
    fn handle_create_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match CreateTopicRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        if !valid_topic(&header.topic) {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
            );
        }
        if header.topic == DEFAULT_TOPIC || NOT_ALLOWED_SEND_TOPICS.contains(&&*header.topic) {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                &format!("The topic[{}] is conflict with system topic.", header.topic),
            );
        }
        self.store.lock().topics.insert(
            header.topic,
            TopicConf {
                read_queues: header.read_queue_nums,
                write_queues: header.write_queue_nums,
                perm: header.perm,
            },
        );
        response(ResponseCode::SUCCESS, opaque, "")
    }

    /// Re-appends matching unresolved half messages and sends CHECK_TRANSACTION_STATE for each
    /// to a live connection of its group. `automatic` checks honour the transaction timeout and
    /// the check limit, as the broker's check service does. Returns how many checks went out.
    pub(crate) fn check(&self, matches: &dyn Fn(&MessageExt) -> bool, automatic: bool) -> usize {
        // Sent once the store is unlocked: a client that does not read must not stall the
        // broker's other connections.
        let mut outgoing = Vec::new();
        let mut store = self.store.lock();
        let timeout = self.settings.transaction_timeout;
        let max = self.settings.transaction_check_max;
        let candidates: Vec<usize> = store
            .halves
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.state == TransactionState::Prepared
                    && matches(&h.msg)
                    && (!automatic || (h.stored_at.elapsed() >= timeout && h.checks < max))
            })
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            let group = store.halves[i].group.clone();
            let conn = store.groups.get(&group).and_then(|conns| {
                conns
                    .iter()
                    .filter_map(Weak::upgrade)
                    .find(|c| c.is_alive())
            });
            let Some(conn) = conn else { continue };
            // Like a real broker: count the check on the message and store it again; the check
            // names the new copy.
            let checks = store.halves[i].checks + 1;
            let tran_state_offset = store.half_queue_offset;
            store.half_queue_offset += 1;
            let mut copy = store.halves[i].msg.clone();
            set_property(
                &mut copy.properties,
                property::TRANSACTION_CHECK_TIMES,
                checks.to_string(),
            );
            copy.queue_offset = tran_state_offset;
            let copy = self.append_half(&mut store, copy);
            // The body: the copy with its real topic and queue, without transaction bits.
            let mut view = copy.clone();
            view.sys_flag =
                sys_flag::reset_transaction_value(view.sys_flag, sys_flag::TRANSACTION_NOT_TYPE);
            let mut body = Vec::new();
            if message_codec::encode_stored_message(&view, &mut body).is_err() {
                continue;
            }
            let uniq = copy.msg_id().map(str::to_string);
            let header = CheckTransactionStateRequestHeader {
                topic: Some(HALF_TOPIC.to_string()),
                tran_state_table_offset: tran_state_offset,
                commit_log_offset: copy.commit_log_offset,
                msg_id: uniq.clone(),
                transaction_id: uniq,
                // The RocketMQ-Rust broker sends it empty (a Java broker sends the copy's offset
                // id): a client must not depend on it.
                offset_msg_id: None,
                broker_name: Some(self.name.clone()),
            };
            let half = &mut store.halves[i];
            half.msg = copy;
            half.tran_state_offset = tran_state_offset;
            half.checks = checks;
            let mut request =
                RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE).into_oneway();
            request.opaque = rand::random::<i32>() & 0x3fff_ffff;
            header.write_to(&mut request.ext_fields);
            // The header writer leaves an empty value out; the real broker sends the key.
            request.ext_fields.insert("offsetMsgId", "");
            request.body = body;
            store.counters.checks_sent += 1;
            outgoing.push((conn, request));
        }
        drop(store);
        outgoing
            .into_iter()
            .filter(|(conn, request)| conn.send(request))
            .count()
    }

    pub(crate) fn half_messages(&self) -> Vec<HalfMessage> {
        self.store
            .lock()
            .halves
            .iter()
            .map(|h| HalfMessage {
                message: h.msg.clone(),
                state: h.state,
                producer_group: h.group.clone(),
                tran_state_table_offset: h.tran_state_offset,
                checks: h.checks,
            })
            .collect()
    }

    pub(crate) fn transaction_state(&self, transaction_id: &str) -> Option<TransactionState> {
        self.store
            .lock()
            .halves
            .iter()
            .rev()
            .find(|h| h.msg.msg_id() == Some(transaction_id))
            .map(|h| h.state)
    }

    pub(crate) fn messages(&self, topic: &str) -> Vec<MessageExt> {
        let host = self.store_addr();
        self.store
            .lock()
            .log
            .iter()
            .filter(|r| *r.topic == *topic)
            .map(|r| r.to_message(host))
            .collect()
    }

    pub(crate) fn message_count(&self, topic: &str) -> usize {
        self.store
            .lock()
            .log
            .iter()
            .filter(|r| *r.topic == *topic)
            .count()
    }

    pub(crate) fn queue_data(&self, topic: &str) -> Option<QueueData> {
        let store = self.store.lock();
        let conf = store.topics.get(topic)?;
        Some(QueueData {
            broker_name: self.name.clone(),
            read_queue_nums: conf.read_queues,
            write_queue_nums: conf.write_queues,
            perm: conf.perm,
            topic_sys_flag: 0,
        })
    }

    pub(crate) fn broker_data(&self) -> Option<BrokerData> {
        let addr = *self.addr.get()?;
        let mut addrs = std::collections::BTreeMap::new();
        addrs.insert(0, addr.to_string());
        if let Some(slave) = self.slave_addr.lock().clone() {
            addrs.insert(1, slave);
        }
        Some(BrokerData {
            cluster: self.cluster.clone(),
            broker_name: self.name.clone(),
            broker_addrs: addrs,
            zone_name: None,
            enable_acting_master: false,
        })
    }

    fn dispatch_broker(&self, conn: &Arc<Conn>, request: &mut RemotingCommand) -> Option<Reply> {
        let r = match request.code {
            RequestCode::SEND_MESSAGE
            | RequestCode::SEND_MESSAGE_V2
            | RequestCode::SEND_BATCH_MESSAGE => return Some(self.handle_send(conn, request)),
            RequestCode::HEART_BEAT => self.handle_heartbeat(conn, request),
            RequestCode::UNREGISTER_CLIENT => self.handle_unregister(conn, request),
            RequestCode::END_TRANSACTION => self.handle_end_transaction(request),
            RequestCode::VIEW_MESSAGE_BY_ID => self.handle_view(request),
            RequestCode::QUERY_MESSAGE => self.handle_query(request),
            RequestCode::GET_MAX_OFFSET => self.handle_max_offset(request),
            RequestCode::UPDATE_AND_CREATE_TOPIC => self.handle_create_topic(request),
            _ => return None,
        };
        Some(Reply::Cmd(r))
    }
}

impl Node {
    pub(crate) fn new(broker: Option<BrokerCore>, namesrv: Option<NamesrvCore>) -> Node {
        Node {
            broker,
            namesrv,
            server: Mutex::new(None),
            faults: Mutex::new(Faults::default()),
            any_fault: AtomicBool::new(false),
            received: RequestCounts::new(),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.server.lock().as_ref().is_some_and(|s| s.is_running())
    }

    /// Changes the scripted faults.
    pub(crate) fn with_faults(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = self.faults.lock();
        change(&mut faults);
        self.any_fault.store(!faults.is_empty(), Ordering::Release);
    }

    fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let ns = self.namesrv.as_ref()?;
        let mut route = TopicRouteData::default();
        let mut add = |b: &BrokerCore| {
            if let (Some(q), Some(bd)) = (b.queue_data(topic), b.broker_data()) {
                route.queue_datas.push(q);
                route.broker_datas.push(bd);
            }
        };
        if ns.serve_self {
            if let Some(b) = &self.broker {
                add(b);
            }
        }
        for (node, in_routes) in ns.brokers.lock().iter() {
            if *in_routes && node.is_running() {
                if let Some(b) = &node.broker {
                    add(b);
                }
            }
        }
        if route.queue_datas.is_empty() {
            None
        } else {
            Some(route)
        }
    }

    fn handle_route(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetRouteInfoRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        match self.route(&header.topic) {
            Some(route) => {
                // `ClientRequestProcessor.getRouteInfoByTopic`: standard JSON for 4.9.4+ clients
                // or on request, the legacy form with unquoted integer keys otherwise.
                let legacy = self
                    .namesrv
                    .as_ref()
                    .is_some_and(|ns| ns.legacy_json.load(Ordering::Acquire))
                    || (request.version < STANDARD_JSON_VERSION
                        && !header.accept_standard_json_only);
                let body = if legacy {
                    route.to_legacy_json()
                } else {
                    route.to_json()
                };
                RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body)
            }
            None => response(
                ResponseCode::TOPIC_NOT_EXIST,
                opaque,
                &format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                ),
            ),
        }
    }

    fn count(&self, code: i32) {
        self.received.add(code);
    }

    /// Takes the next scripted fault for `code`; `Err(())` for the black hole.
    fn next_fault(&self, code: i32) -> Result<Option<Fault>, ()> {
        if !self.any_fault.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut faults = self.faults.lock();
        if faults.black_hole {
            return Err(());
        }
        let fault = match faults.next.get_mut(&code) {
            Some(queue) => {
                let f = queue.pop_front();
                if queue.is_empty() {
                    faults.next.remove(&code);
                }
                f
            }
            None => None,
        };
        let fault = fault.or_else(|| faults.standing_delay.get(&code).map(|d| Fault::Delay(*d)));
        self.any_fault.store(!faults.is_empty(), Ordering::Release);
        Ok(fault)
    }

    /// The answer to a request, fault-free.
    fn handle(&self, conn: &Arc<Conn>, request: &mut RemotingCommand) -> Reply {
        let reply = if request.code == RequestCode::GET_ROUTEINFO_BY_TOPIC && self.namesrv.is_some()
        {
            Some(Reply::Cmd(self.handle_route(request)))
        } else {
            self.broker
                .as_ref()
                .and_then(|b| b.dispatch_broker(conn, request))
        };
        reply.unwrap_or_else(|| {
            Reply::Cmd(response(
                ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
                request.opaque,
                &format!(" request type {} not supported", request.code),
            ))
        })
    }
}

/// A reply in the header format `st`.
fn in_format(reply: Reply, st: SerializeType) -> Reply {
    match (reply, st) {
        (r @ Reply::SendOk(_), SerializeType::Json) => r,
        (r, st) => {
            let mut c = r.into_command();
            c.serialize_type = st;
            Reply::Cmd(c)
        }
    }
}

impl Dispatch for Node {
    fn dispatch(&self, conn: &Arc<Conn>, mut request: RemotingCommand) -> Action {
        if request.is_response() {
            return Action::Silent;
        }
        self.count(request.code);
        let oneway = request.is_oneway();
        // A real server answers in the request's header format.
        let st = request.serialize_type;
        // Err: the black hole.
        let Ok(fault) = self.next_fault(request.code) else {
            return Action::Silent;
        };
        let delay = match &fault {
            Some(Fault::Fail(code, remark)) => {
                let r = response(*code, request.opaque, remark);
                return if oneway {
                    Action::Silent
                } else {
                    Action::Reply(in_format(r.into(), st))
                };
            }
            Some(Fault::Malformed) => return Action::Malformed,
            Some(Fault::Close) => return Action::Close,
            Some(Fault::Reset) => {
                let r = self.handle(conn, &mut request);
                return Action::ResetMidFrame(in_format(r, st));
            }
            Some(Fault::Delay(d)) => Some(*d),
            Some(Fault::Status(_)) | None => None,
        };
        let mut reply = self.handle(conn, &mut request);
        if oneway {
            return Action::Silent;
        }
        if let Some(Fault::Status(code)) = fault {
            // What a SYNC_FLUSH / SYNC_MASTER broker answers: the usual fields, another code.
            let mut c = reply.into_command();
            if c.code == ResponseCode::SUCCESS {
                c.code = code;
            }
            reply = Reply::Cmd(c);
        }
        let reply = in_format(reply, st);
        match delay {
            Some(d) => Action::Delayed(reply, d),
            None => Action::Reply(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::OffsetMessageId;

    #[test]
    fn offset_ids_match_offset_message_id() {
        for host in [
            "127.0.0.1:20961",
            "10.1.2.3:0",
            "[::1]:65535",
            "[fe80::1:2]:10911",
        ] {
            for offset in [0, 1, 0x11B, i64::MAX] {
                let store_host: SocketAddr = host.parse().unwrap();
                let mut s = String::new();
                write_offset_id(&mut s, store_host, offset);
                let id = OffsetMessageId {
                    store_host,
                    commit_log_offset: offset,
                };
                assert_eq!(s, id.to_string());
            }
        }
    }

    #[test]
    fn property_scan() {
        let enc = |pairs: &[(&str, &str)]| {
            let mut s = String::new();
            message_codec::encode_properties(pairs.iter().copied(), &mut s);
            s
        };
        let s = enc(&[("UNIQ_KEY", "U1"), ("TAGS", "t"), ("TRAN_MSG", "TRUE")]);
        let scan = scan_properties(&s);
        assert_eq!(scan.uniq, Some("U1"));
        assert!(scan.transactional);
        assert!(scan.canonical);
        assert!(scan_properties("").canonical);
        // Not what re-encoding gives: no final separator, a repeat, an empty value, a name
        // the broker stamps, too many pairs to check cheaply.
        for odd in [
            "A\u{1}1".to_string(),
            enc(&[("A", "1"), ("A", "2")]),
            "A\u{1}\u{2}".to_string(),
            "\u{2}A\u{1}1\u{2}".to_string(),
            enc(&[("CLUSTER", "x")]),
            enc(&[("TRACE_ON", "false")]),
            (0..17).map(|i| format!("k{i}\u{1}v\u{2}")).collect(),
        ] {
            let scan = scan_properties(&odd);
            assert!(!scan.canonical, "{odd:?}");
            let mut round = String::new();
            let decoded = message_codec::decode_properties(&odd);
            message_codec::encode_properties(
                decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut round,
            );
            let stamped = odd.contains("CLUSTER") || odd.contains("TRACE_ON");
            assert!(round != odd || stamped || odd.starts_with('k'), "{odd:?}");
        }
        assert!(!scan_properties(&enc(&[("TRAN_MSG", "false")])).transactional);
    }

    #[test]
    fn stored_length_is_the_encoded_length() {
        let msg = MessageExt {
            topic: "TopicA".into(),
            body: vec![7; 100],
            flag: 3,
            properties: vec![("UNIQ_KEY".into(), "ü".into()), ("K".into(), "v".into())],
            queue_id: 1,
            queue_offset: 2,
            commit_log_offset: 3,
            sys_flag: 0,
            born_timestamp: 4,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 5,
            store_host: "[::1]:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        };
        let mut msg = msg;
        msg.sys_flag = sys_flag::STOREHOST_V6;
        let mut out = Vec::new();
        message_codec::encode_stored_message(&msg, &mut out).unwrap();
        assert_eq!(stored_len(&msg), out.len() as i64);
        let record = Record::from_message(msg.clone());
        let back = record.to_message(msg.store_host);
        assert_eq!(back.properties, msg.properties);
        assert_eq!(back.body_crc, message_codec::body_crc32(&msg.body));
    }
}
