//! Messages, queues, send results and message ids.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::protocol::CodecError;

/// Property keys with a meaning to RocketMQ (`MessageConst.java`).
pub mod property {
    /// A single tag; brokers filter on it.
    pub const TAGS: &str = "TAGS";
    /// Business keys, separated by a space; brokers index them.
    pub const KEYS: &str = "KEYS";
    /// Separator between keys in [`KEYS`].
    pub const KEY_SEPARATOR: &str = " ";
    /// `"true"`: the broker answers after the message is stored (flushed/replicated as configured).
    pub const WAIT_STORE_MSG_OK: &str = "WAIT";
    /// Delay level `1..=18` (1s 5s 10s 30s 1m 2m ... 2h with default broker levels).
    pub const DELAY_TIME_LEVEL: &str = "DELAY";
    /// 5.x timer: absolute delivery time in epoch milliseconds.
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// 5.x timer: relative delay in seconds.
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// 5.x timer: relative delay in milliseconds.
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    /// The client message id.
    pub const UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
    /// `"true"` on transactional half messages.
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    /// The producer group of a half message.
    pub const PRODUCER_GROUP: &str = "PGROUP";
    /// First check-back delay of a transaction message, in seconds.
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    /// Transaction id the Java client puts on its local copy.
    pub const TRANSACTION_ID: &str = "__transactionId__";
    /// Namespace.
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    /// 5.x FIFO sharding key.
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    /// Original topic of a half, delay or timer message (set by the broker).
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// Original queue of a half, delay or timer message (set by the broker).
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
    /// Broker cluster name (set by the broker on every stored message).
    pub const CLUSTER: &str = "CLUSTER";
    /// Broker region (set by the broker).
    pub const MSG_REGION: &str = "MSG_REGION";
    /// Trace switch (set by the broker).
    pub const TRACE_ON: &str = "TRACE_ON";
    /// How often the broker checked a transaction (set by the broker).
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";

    /// Request-reply: the id that matches a reply to its request (set by
    /// [`Producer::request`](crate::Producer::request), copied into the reply).
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    /// Request-reply: the client id of the requester, which the broker pushes the reply to.
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    /// Request-reply: the request's timeout in milliseconds.
    pub const MESSAGE_TTL: &str = "TTL";
    /// Request-reply: the message type; [`REPLY_MESSAGE_TYPE`] on a reply.
    pub const MESSAGE_TYPE: &str = "MSG_TYPE";
    /// The [`MESSAGE_TYPE`] value of a reply.
    pub const REPLY_MESSAGE_TYPE: &str = "reply";
    /// A reply goes to the topic `<CLUSTER>` followed by this suffix.
    pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";

    /// Keys only brokers set; a user property with one of these names is rejected.
    pub const RESERVED_BY_BROKER: &[&str] = &[
        "MSG_REGION",
        "TRACE_ON",
        "CLUSTER",
        "REAL_TOPIC",
        "REAL_QID",
        "RETRY_TOPIC",
        "TRAN_PREPARED_QUEUE_OFFSET",
        "TRANSACTION_CHECK_TIMES",
        "MIN_OFFSET",
        "MAX_OFFSET",
        "CONSUME_START_TIME",
        "ORIGIN_MESSAGE_ID",
        "DUP_INFO",
        "EXTEND_UNIQ_INFO",
        "INNER_NUM",
        "INNER_BASE",
        "TIMER_OUT_MS",
        "TIMER_ENQUEUE_MS",
        "TIMER_DEQUEUE_MS",
        "TIMER_ROLL_TIMES",
        "TIMER_DEL_UNIQKEY",
        "TIMER_DELAY_LEVEL",
        "__BORNHOST",
        "BORN_TIMESTAMP",
        "__CRC32#",
        "DLQ_ORIGIN_TOPIC",
        "DLQ_ORIGIN_MESSAGE_ID",
        "POP_CK",
        "POP_CK_OFFSET",
        "1ST_POP_TIME",
        "ARRIVE_TIME",
        "PUSH_REPLY_TIME",
        "PROPERTY_FORWARD_QUEUE_ID",
        "REDIRECT",
        "TRACE_CONTEXT",
    ];
}

/// A message to send: topic, body, user flag and properties (tags, keys and your own).
///
/// ```
/// use rocketmq_mio::Message;
/// let msg = Message::new("orders", "order 42 created")
///     .with_tags("created")
///     .with_keys(["o-42"])
///     .with_property("region", "eu");
/// assert_eq!(msg.tags(), Some("created"));
/// assert_eq!(msg.keys().collect::<Vec<_>>(), vec!["o-42"]);
/// assert_eq!(msg.property("region"), Some("eu"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    topic: String,
    body: Vec<u8>,
    flag: i32,
    properties: Vec<(String, String)>,
}

impl Message {
    /// A message for `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            flag: 0,
            properties: Vec::new(),
        }
    }

    /// Sets the tag (one string; brokers filter on it).
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.set_property(property::TAGS, tags);
        self
    }

    /// Sets the business keys (indexed by the broker; the first one drives the message-hash
    /// routing strategy).
    pub fn with_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut joined = String::new();
        for k in keys {
            if !joined.is_empty() {
                joined.push_str(property::KEY_SEPARATOR);
            }
            joined.push_str(k.as_ref());
        }
        self.set_property(property::KEYS, joined);
        self
    }

    /// Sets a property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_property(key, value);
        self
    }

    /// Sets the delay level (`1..=18` with the broker's default levels: 1s 5s 10s 30s 1m ... 2h).
    pub fn with_delay_level(mut self, level: u32) -> Self {
        self.set_property(property::DELAY_TIME_LEVEL, level.to_string());
        self
    }

    /// Asks a 5.x broker to deliver the message at `epoch_ms` (timer messages).
    pub fn with_deliver_time_ms(mut self, epoch_ms: i64) -> Self {
        self.set_property(property::TIMER_DELIVER_MS, epoch_ms.to_string());
        self
    }

    /// Asks a 5.x broker to deliver the message `delay` after it stores it (timer messages):
    /// `TIMER_DELAY_SEC` when `delay` is whole seconds, `TIMER_DELAY_MS` otherwise (whole
    /// milliseconds, rounded down). Replaces a delay or delivery time set before with
    /// [`with_delay`](Message::with_delay) or [`with_deliver_time_ms`](Message::with_deliver_time_ms)
    /// (a broker reads `TIMER_DELAY_SEC` first, then `TIMER_DELAY_MS`, then
    /// `TIMER_DELIVER_MS`).
    ///
    /// Checked at send as [`with_deliver_time_ms`](Message::with_deliver_time_ms) is: a
    /// delay under 1 ms is [`Error::InvalidMessage`](crate::Error::InvalidMessage), nothing
    /// sent. The broker refuses a delay over its `timerMaxDelaySec` (3 days by default), and
    /// one without its timer wheel enabled. Delayed messages are never auto-batched, and a
    /// batch cannot hold them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rocketmq_mio::Message;
    ///
    /// let m = Message::new("t", "b").with_delay(Duration::from_secs(10));
    /// assert_eq!(m.property("TIMER_DELAY_SEC"), Some("10"));
    /// let m = m.with_delay(Duration::from_millis(1500));
    /// assert_eq!(m.property("TIMER_DELAY_MS"), Some("1500"));
    /// assert_eq!(m.property("TIMER_DELAY_SEC"), None);
    /// ```
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.remove_property(property::TIMER_DELAY_SEC);
        self.remove_property(property::TIMER_DELAY_MS);
        self.remove_property(property::TIMER_DELIVER_MS);
        if delay.subsec_nanos() == 0 && !delay.is_zero() {
            self.set_property(property::TIMER_DELAY_SEC, delay.as_secs().to_string());
        } else {
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            self.set_property(property::TIMER_DELAY_MS, ms.to_string());
        }
        self
    }

    /// Sets the user flag (an int carried untouched).
    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    /// Whether the broker should answer only once the message is stored (default true).
    pub fn with_wait_store_msg_ok(mut self, wait: bool) -> Self {
        self.set_property(
            property::WAIT_STORE_MSG_OK,
            if wait { "true" } else { "false" },
        );
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Takes the topic and the body out (the send path keeps both without copying).
    pub(crate) fn into_topic_and_body(self) -> (String, Vec<u8>) {
        (self.topic, self.body)
    }

    /// The user flag.
    pub fn flag(&self) -> i32 {
        self.flag
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The business keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        // No split at all when the message has no keys (most have none).
        self.property(property::KEYS)
            .into_iter()
            .flat_map(|keys| keys.split(' '))
            .filter(|k| !k.is_empty())
    }

    /// The delay level, if one is set and valid.
    pub fn delay_level(&self) -> Option<u32> {
        self.property(property::DELAY_TIME_LEVEL)
            .and_then(|v| v.parse().ok())
    }

    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All properties, in the order they were set.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets the topic.
    pub fn set_topic(&mut self, topic: impl Into<String>) {
        self.topic = topic.into();
    }

    /// Sets the body.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.body = body.into();
    }

    /// Sets a property, replacing an earlier value.
    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((key, value)),
        }
    }

    /// Removes a property, returning its value.
    pub fn remove_property(&mut self, key: &str) -> Option<String> {
        let i = self.properties.iter().position(|(k, _)| k == key)?;
        Some(self.properties.remove(i).1)
    }
}

/// One queue of a topic on one broker.
///
/// Cheap to clone: names are shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    topic: Arc<str>,
    broker_name: Arc<str>,
    queue_id: i32,
}

impl MessageQueue {
    /// A queue.
    pub fn new(
        topic: impl Into<Arc<str>>,
        broker_name: impl Into<Arc<str>>,
        queue_id: i32,
    ) -> Self {
        MessageQueue {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The broker name (not its address).
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    /// The queue id on that broker.
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    /// The shared broker name.
    pub(crate) fn broker_name_arc(&self) -> &Arc<str> {
        &self.broker_name
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.topic, self.broker_name, self.queue_id)
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How a successful send was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// Stored (and flushed/replicated as the broker is configured).
    SendOk,
    /// Stored, but the flush to disk timed out (SYNC_FLUSH brokers).
    FlushDiskTimeout,
    /// Stored, but replication to the slave timed out (SYNC_MASTER brokers).
    FlushSlaveTimeout,
    /// Stored, but no slave is available (SYNC_MASTER brokers).
    SlaveNotAvailable,
}

impl SendStatus {
    /// The status for a send response code, if the code means "stored".
    pub fn from_response_code(code: i32) -> Option<SendStatus> {
        match code {
            0 => Some(SendStatus::SendOk),
            10 => Some(SendStatus::FlushDiskTimeout),
            12 => Some(SendStatus::FlushSlaveTimeout),
            11 => Some(SendStatus::SlaveNotAvailable),
            _ => None,
        }
    }
}

/// An id in a [`SendResult`] (client message id, offset message id, transaction id, region):
/// a string held inline, without a heap allocation, up to [`IdStr::INLINE_CAPACITY`] bytes
/// (every single message's id fits: a `UNIQ_KEY` is 32 hex digits, an offset id 32 or 56);
/// longer ones (a batch's ids joined with `,`) are shared on the heap.
///
/// It reads as the `&str` it holds: [`as_str`](IdStr::as_str), `Deref<Target = str>`,
/// [`Display`](fmt::Display) (the bare string), `Debug` (the quoted string, as a `String`'s),
/// comparisons with `str`, `&str` and `String`, and `String::from(id)` / `id.to_string()` for
/// an owned copy. Equality, ordering and hashing are the string's.
///
/// ```
/// use rocketmq_mio::message::IdStr;
/// let id = IdStr::new("7F0000010B2A18B4AAC21C6F0A1B0000");
/// assert_eq!(id, "7F0000010B2A18B4AAC21C6F0A1B0000");
/// assert_eq!(id.len(), 32);
/// assert_eq!(format!("{id}"), "7F0000010B2A18B4AAC21C6F0A1B0000");
/// assert_eq!(format!("{id:?}"), "\"7F0000010B2A18B4AAC21C6F0A1B0000\"");
/// let owned: String = id.into();
/// assert_eq!(owned, "7F0000010B2A18B4AAC21C6F0A1B0000");
/// ```
#[derive(Clone)]
pub struct IdStr(IdRepr);

#[derive(Clone)]
enum IdRepr {
    Inline {
        len: u8,
        buf: [u8; IdStr::INLINE_CAPACITY],
    },
    Shared(Arc<str>),
}

impl IdStr {
    /// The longest id held inline (62 bytes: the type is 64 bytes in all).
    pub const INLINE_CAPACITY: usize = 62;

    /// The empty id.
    pub const EMPTY: IdStr = IdStr(IdRepr::Inline {
        len: 0,
        buf: [0; IdStr::INLINE_CAPACITY],
    });

    /// An id holding `s` (inline when it fits, which allocates nothing).
    pub fn new(s: &str) -> IdStr {
        let bytes = s.as_bytes();
        if bytes.len() <= Self::INLINE_CAPACITY {
            let buf = Self::inline_buf(bytes);
            IdStr(IdRepr::Inline {
                // Fits: at most INLINE_CAPACITY (62).
                len: bytes.len() as u8,
                buf,
            })
        } else {
            IdStr(IdRepr::Shared(Arc::from(s)))
        }
    }

    /// An inline id of the first `len` bytes of `buf`, which must be ASCII (a generated
    /// id). A longer `len` than the capacity makes an empty id (not for generated ids).
    pub(crate) fn inline_ascii(buf: [u8; Self::INLINE_CAPACITY], len: usize) -> IdStr {
        let len = if len <= Self::INLINE_CAPACITY { len } else { 0 };
        IdStr(IdRepr::Inline {
            // Fits: at most INLINE_CAPACITY (62).
            len: len as u8,
            buf,
        })
    }

    /// An id holding `bytes`, which must be ASCII (a decoded response's checked value): one
    /// copy, no UTF-8 check. Any other byte is replaced when the id is longer than the inline
    /// capacity; an inline one reads as empty.
    #[inline]
    pub(crate) fn from_ascii(bytes: &[u8]) -> IdStr {
        if bytes.len() <= Self::INLINE_CAPACITY {
            let buf = Self::inline_buf(bytes);
            IdStr(IdRepr::Inline {
                // Fits: at most INLINE_CAPACITY (62).
                len: bytes.len() as u8,
                buf,
            })
        } else {
            IdStr::from(String::from_utf8_lossy(bytes).into_owned())
        }
    }

    /// The inline buffer holding `bytes` (at most [`Self::INLINE_CAPACITY`] of them; any
    /// more are left out), zero past them as always. Copied in fixed-size pieces, the last
    /// one overlapping the one before (it writes the same bytes again): each piece is one
    /// move, where a copy of a length known only at run time is a `memcpy` call (about 40
    /// instructions for an id's 13-32 bytes, more than the copy itself).
    #[inline]
    fn inline_buf(bytes: &[u8]) -> [u8; Self::INLINE_CAPACITY] {
        let mut buf = [0; Self::INLINE_CAPACITY];
        let len = bytes.len().min(Self::INLINE_CAPACITY);
        let bytes = &bytes[..len];
        if len >= 16 {
            // Written out, not a loop: LLVM turns a loop of pieces into a `memcpy` call.
            // The first piece, the ones that fit whole after it (at most 62 bytes: three
            // more), and the last 16 bytes, overlapping (the same bytes again when it fits).
            copy_piece::<16>(&mut buf, bytes, 0);
            if len >= 32 {
                copy_piece::<16>(&mut buf, bytes, 16);
                if len >= 48 {
                    copy_piece::<16>(&mut buf, bytes, 32);
                }
            }
            copy_piece::<16>(&mut buf, bytes, len - 16);
        } else if len >= 8 {
            copy_piece::<8>(&mut buf, bytes, 0);
            copy_piece::<8>(&mut buf, bytes, len - 8);
        } else if len >= 4 {
            copy_piece::<4>(&mut buf, bytes, 0);
            copy_piece::<4>(&mut buf, bytes, len - 4);
        } else {
            for (to, from) in buf.iter_mut().zip(bytes) {
                *to = *from;
            }
        }
        buf
    }

    /// Whether the id is held inline (tests).
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.0, IdRepr::Inline { .. })
    }

    /// The id's bytes (no UTF-8 check: for writers that copy them).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            IdRepr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            IdRepr::Shared(s) => s.as_bytes(),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always valid: the bytes were copied whole from a `&str` (never cut).
            IdRepr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            IdRepr::Shared(s) => s,
        }
    }
}

/// Copies `bytes[at..at + N]` to `buf[at..at + N]` (both in bounds: `at + N <= bytes.len()
/// <= buf.len()`, which every caller keeps; out of bounds copies nothing rather than
/// panicking).
#[inline(always)]
fn copy_piece<const N: usize>(buf: &mut [u8], bytes: &[u8], at: usize) {
    let from: Option<&[u8; N]> = bytes.get(at..at + N).and_then(|b| b.try_into().ok());
    let to: Option<&mut [u8; N]> = buf.get_mut(at..at + N).and_then(|b| b.try_into().ok());
    if let (Some(to), Some(from)) = (to, from) {
        *to = *from;
    }
}

impl Default for IdStr {
    fn default() -> Self {
        IdStr::EMPTY
    }
}

impl std::ops::Deref for IdStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for IdStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for IdStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IdStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IdStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for IdStr {
    fn eq(&self, other: &IdStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for IdStr {}

impl PartialOrd for IdStr {
    fn partial_cmp(&self, other: &IdStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdStr {
    fn cmp(&self, other: &IdStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for IdStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

macro_rules! id_str_eq {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for IdStr {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<IdStr> for $t {
            fn eq(&self, other: &IdStr) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
id_str_eq!(str, &str, String);

impl From<&str> for IdStr {
    fn from(s: &str) -> IdStr {
        IdStr::new(s)
    }
}

impl From<&String> for IdStr {
    fn from(s: &String) -> IdStr {
        IdStr::new(s)
    }
}

impl From<String> for IdStr {
    fn from(s: String) -> IdStr {
        if s.len() <= IdStr::INLINE_CAPACITY {
            IdStr::new(&s)
        } else {
            IdStr(IdRepr::Shared(Arc::from(s)))
        }
    }
}

impl From<IdStr> for String {
    fn from(id: IdStr) -> String {
        id.as_str().to_owned()
    }
}

/// The broker's answer to a successful send.
///
/// Its ids are [`IdStr`]s (inline strings: building a result allocates nothing; earlier
/// versions had `String`s). They read as `&str` (`r.msg_id.as_str()`, `&*r.msg_id`, `==` with
/// strings, `Display`); `r.msg_id.to_string()` or `String::from(r.msg_id)` gives an owned copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendResult {
    /// How it was stored.
    pub status: SendStatus,
    /// The client message id (`UNIQ_KEY`); for a batch, the ids joined with `,`.
    pub msg_id: IdStr,
    /// The broker's offset message id (store address + commit-log offset); for a batch, the
    /// ids joined with `,`.
    pub offset_msg_id: IdStr,
    /// The queue it was stored in.
    pub queue: MessageQueue,
    /// Its offset in that queue (the first message's, for a batch).
    pub queue_offset: i64,
    /// The transaction id (5.x brokers set it to the `UNIQ_KEY`).
    pub transaction_id: Option<IdStr>,
    /// The broker's region (`MSG_REGION`).
    pub region_id: Option<IdStr>,
    /// Whether the broker traces the message (`TRACE_ON`).
    pub trace_on: bool,
}

impl SendResult {
    /// The offset message id decoded (the first one, for a batch).
    pub fn offset_id(&self) -> Result<OffsetMessageId, CodecError> {
        let first = self.offset_msg_id.split(',').next().unwrap_or("");
        OffsetMessageId::parse(first)
    }
}

/// A broker's offset message id: the store host and the commit-log offset, as 32 (IPv4) or
/// 56 (IPv6) upper-case hex digits.
///
/// ```
/// use rocketmq_mio::OffsetMessageId;
/// let id = OffsetMessageId::parse("AC11000300002A9F0000000000012C4A").unwrap();
/// assert_eq!(id.store_host.to_string(), "172.17.0.3:10911");
/// assert_eq!(id.commit_log_offset, 76874);
/// assert_eq!(id.to_string(), "AC11000300002A9F0000000000012C4A");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetMessageId {
    /// The broker's store address.
    pub store_host: SocketAddr,
    /// The message's commit-log offset.
    pub commit_log_offset: i64,
}

impl OffsetMessageId {
    /// Decodes an id (hex, any case).
    pub fn parse(id: &str) -> Result<OffsetMessageId, CodecError> {
        let bad = || CodecError::Malformed(format!("offset message id {id:?}"));
        if id.len() != 32 && id.len() != 56 {
            return Err(bad());
        }
        let mut bytes = [0u8; 28];
        for (i, pair) in id.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            bytes[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        let (ip, rest): (IpAddr, &[u8]) = if id.len() == 32 {
            let o: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
            (IpAddr::V4(Ipv4Addr::from(o)), &bytes[4..16])
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&bytes[..16]);
            (IpAddr::V6(Ipv6Addr::from(o)), &bytes[16..28])
        };
        let port = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let port = u16::try_from(port).map_err(|_| bad())?;
        let mut off = [0u8; 8];
        off.copy_from_slice(&rest[4..12]);
        Ok(OffsetMessageId {
            store_host: SocketAddr::new(ip, port),
            commit_log_offset: i64::from_be_bytes(off),
        })
    }
}

impl fmt::Display for OffsetMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.store_host.ip() {
            IpAddr::V4(ip) => {
                for b in ip.octets() {
                    write!(f, "{b:02X}")?;
                }
            }
            IpAddr::V6(ip) => {
                for b in ip.octets() {
                    write!(f, "{b:02X}")?;
                }
            }
        }
        write!(f, "{:08X}", self.store_host.port() as i32)?;
        write!(f, "{:016X}", self.commit_log_offset)
    }
}

/// A message as a broker stores it: what check-backs carry and VIEW_MESSAGE_BY_ID returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageExt {
    /// The topic.
    pub topic: String,
    /// The body, inflated if the broker stores it compressed (up to the maximum message size;
    /// see [`crate::protocol::message_codec::decode_stored_messages`]).
    pub body: Vec<u8>,
    /// The user flag.
    pub flag: i32,
    /// The properties, in stored order.
    pub properties: Vec<(String, String)>,
    /// The queue id.
    pub queue_id: i32,
    /// The queue offset.
    pub queue_offset: i64,
    /// The commit-log offset.
    pub commit_log_offset: i64,
    /// The sysFlag bits, as stored: the compression bits stay set on an inflated body.
    pub sys_flag: i32,
    /// When the producer built the request, epoch ms.
    pub born_timestamp: i64,
    /// The producer's address as the broker saw it.
    pub born_host: SocketAddr,
    /// When the broker stored it, epoch ms.
    pub store_timestamp: i64,
    /// The broker's store address.
    pub store_host: SocketAddr,
    /// Reconsume count.
    pub reconsume_times: i32,
    /// Prepared transaction offset.
    pub prepared_transaction_offset: i64,
    /// CRC32 of the body as stored.
    pub body_crc: i32,
}

impl MessageExt {
    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The business keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        // No split at all when the message has no keys (most have none).
        self.property(property::KEYS)
            .into_iter()
            .flat_map(|keys| keys.split(' '))
            .filter(|k| !k.is_empty())
    }

    /// The client message id (`UNIQ_KEY`).
    pub fn msg_id(&self) -> Option<&str> {
        self.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
    }

    /// The broker's offset message id.
    pub fn offset_msg_id(&self) -> OffsetMessageId {
        OffsetMessageId {
            store_host: self.store_host,
            commit_log_offset: self.commit_log_offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_id_round_trip_v6() {
        let id = OffsetMessageId {
            store_host: "[fe80::1]:10911".parse().unwrap(),
            commit_log_offset: 1 << 40,
        };
        let s = id.to_string();
        assert_eq!(s.len(), 56);
        assert_eq!(OffsetMessageId::parse(&s).unwrap(), id);
        assert_eq!(OffsetMessageId::parse(&s.to_lowercase()).unwrap(), id);
    }

    #[test]
    fn offset_id_rejects_garbage() {
        assert!(OffsetMessageId::parse("").is_err());
        assert!(OffsetMessageId::parse("ZZ11000300002A9F0000000000012C4A").is_err());
        assert!(OffsetMessageId::parse("ÄC11000300002A9F0000000000012C4").is_err());
    }

    /// The piecewise inline copy holds what a plain copy into a zeroed buffer holds, for every
    /// length (each piece size, each overlap, the byte loop) and through both constructors;
    /// longer ids are shared, whole.
    #[test]
    fn id_str_inline_copy_matches_a_plain_copy_at_every_length() {
        let text: String = (0..80u8).map(|i| char::from(b'!' + (i * 7) % 90)).collect();
        for len in 0..=text.len() {
            let s = &text[..len];
            let mut reference = [0u8; IdStr::INLINE_CAPACITY];
            if len <= IdStr::INLINE_CAPACITY {
                reference[..len].copy_from_slice(s.as_bytes());
            }
            for id in [IdStr::new(s), IdStr::from_ascii(s.as_bytes())] {
                assert_eq!(id.as_str(), s, "len {len}");
                assert_eq!(id.as_bytes(), s.as_bytes(), "len {len}");
                match &id.0 {
                    IdRepr::Inline { len: l, buf } => {
                        assert!(len <= IdStr::INLINE_CAPACITY, "len {len}");
                        assert_eq!(usize::from(*l), len);
                        assert_eq!(buf, &reference, "len {len}");
                    }
                    IdRepr::Shared(_) => assert!(len > IdStr::INLINE_CAPACITY, "len {len}"),
                }
            }
        }
    }

    #[test]
    fn id_str_inline_and_shared() {
        assert_eq!(std::mem::size_of::<IdStr>(), 64);
        assert_eq!(std::mem::size_of::<Option<IdStr>>(), 64);
        for s in [
            "",
            "a",
            "7F0000010B2A18B4AAC21C6F0A1B0000",
            "grün ✓ 𝄞",
            &"x".repeat(IdStr::INLINE_CAPACITY),
            &"y".repeat(IdStr::INLINE_CAPACITY + 1),
            &["7F0000010B2A18B4AAC21C6F0A1B0000"; 4].join(","),
        ] {
            let id = IdStr::new(s);
            assert_eq!(id.as_str(), s);
            assert_eq!(id, s);
            assert_eq!(s, id);
            assert_eq!(id, s.to_string());
            assert_eq!(IdStr::from(s.to_string()), id);
            assert_eq!(id.to_string(), s);
            assert_eq!(format!("{id:?}"), format!("{s:?}"));
            assert_eq!(String::from(id.clone()), s);
            let mut set = std::collections::HashSet::new();
            set.insert(id.clone());
            assert!(set.contains(s));
        }
        assert!(matches!(
            IdStr::new(&"x".repeat(62)).0,
            IdRepr::Inline { .. }
        ));
        assert!(matches!(IdStr::new(&"x".repeat(63)).0, IdRepr::Shared(_)));
        assert_eq!(IdStr::default(), "");
        assert!(IdStr::new("A") < IdStr::new("B"));
    }

    #[test]
    fn properties_replace() {
        let mut m = Message::new("t", "b").with_tags("a").with_tags("b");
        assert_eq!(m.tags(), Some("b"));
        assert_eq!(m.properties().count(), 1);
        assert_eq!(m.remove_property("TAGS").as_deref(), Some("b"));
        assert_eq!(m.tags(), None);
        let m = Message::new("t", "b").with_keys(["k1", "k2"]);
        assert_eq!(m.property("KEYS"), Some("k1 k2"));
    }
}
