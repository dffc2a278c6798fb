//! The send path: SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE checked and stored
//! the way a real broker does (header fields, topic auto-creation, the broker's stamps,
//! offset message ids); a transactional message is held as a half message.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use super::store::{stored_len_of, Half, Record, Store, TopicConf};
use super::{now_ms, response, set_property, BrokerCore, Conn, HALF_TOPIC, MAX_MESSAGE_SIZE};
use crate::message::{property, MessageExt};
use crate::protocol::message_codec;
use crate::protocol::route::perm;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::testing::records::TransactionState;
use crate::testing::reply::{Reply, SendOk};

/// Topics a real broker refuses sends to (`TopicValidator.isNotAllowedSendTopic`).
pub(super) const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    HALF_TOPIC,
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC",
    "SCHEDULE_TOPIC_XXXX",
    "rmq_sys_wheel_timer",
    "RMQ_SYS_SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// The send header fields the broker uses, borrowed from the request: one pass over the
/// extFields, V1 (long names) or V2 (single letters) alike.
pub(super) struct SendFields<'a> {
    topic: &'a str,
    default_topic: &'a str,
    default_topic_queue_nums: i32,
    queue_id: i32,
    sys_flag: i32,
    born_timestamp: i64,
    flag: i32,
    pub(super) properties: &'a str,
    reconsume_times: i32,
}

impl<'a> SendFields<'a> {
    /// From the request's ext fields, in their order (a later field wins).
    pub(super) fn read(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SendFields<'a>, String> {
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
        for (k, v) in fields {
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

/// How many send fields [`SendFields::from_slots`] takes: `a` (the producer group) to `j`.
pub(super) const SEND_FIELDS: usize = 10;

/// The slot of a send field's key (V1 or V2 spelling): `a`/`producerGroup` 0 to
/// `j`/`reconsumeTimes` 9; `None` for the other keys.
pub(super) fn send_field_slot(key: &[u8]) -> Option<usize> {
    match key {
        [c @ b'a'..=b'j'] => Some(usize::from(c - b'a')),
        b"producerGroup" => Some(0),
        b"topic" => Some(1),
        b"defaultTopic" => Some(2),
        b"defaultTopicQueueNums" => Some(3),
        b"queueId" => Some(4),
        b"sysFlag" => Some(5),
        b"bornTimestamp" => Some(6),
        b"flag" => Some(7),
        b"properties" => Some(8),
        b"reconsumeTimes" => Some(9),
        _ => None,
    }
}

/// `v.parse::<i64>()`: a run of at most 18 plain digits read directly (no overflow possible),
/// anything else (a sign, more digits, junk) by `str::parse`.
#[inline(always)] // six times per send
fn parse_i64(v: &str) -> Result<i64, ()> {
    let b = v.as_bytes();
    if !b.is_empty() && b.len() <= 18 {
        let mut n = 0i64;
        let mut plain = true;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            plain &= d <= 9;
            n = n * 10 + i64::from(d);
        }
        if plain {
            return Ok(n);
        }
    }
    v.parse().map_err(|_| ())
}

impl<'a> SendFields<'a> {
    /// What [`SendFields::read`] gives for ext fields holding each send field at most once,
    /// given by slot ([`send_field_slot`]) as (key as it came, value), with the numbers a
    /// caller has read already (`nums`, by slot: what `str::parse::<i64>` gives the value):
    /// the general path reads the decoded map, sorted by key, so of several unparsable
    /// numbers the error names the one whose key sorts first.
    pub(super) fn from_slots(
        slots: &[Option<(&[u8], &'a str)>; SEND_FIELDS],
        nums: &[Option<i64>; SEND_FIELDS],
    ) -> Result<SendFields<'a>, String> {
        /// The number in `slot` (`num` if the caller read it already), or `None` (and the
        /// field noted in `bad` if it is the first unparsable one in key order).
        #[inline(always)]
        fn int<'k, 'v>(
            slot: Option<(&'k [u8], &'v str)>,
            num: Option<i64>,
            wide: bool,
            bad: &mut Option<(&'k [u8], &'v str)>,
        ) -> Option<i64> {
            let (k, v) = slot?;
            match num.ok_or(()).or_else(|_| parse_i64(v)) {
                Ok(n) if wide || i32::try_from(n).is_ok() => Some(n),
                _ => {
                    match bad {
                        Some((first, _)) if *first <= k => {}
                        _ => *bad = Some((k, v)),
                    }
                    None
                }
            }
        }
        let mut bad = None;
        let narrow = |n: Option<i64>| n.map(|n| n as i32); // in range: checked by `int`
        let default_nums = narrow(int(slots[3], nums[3], false, &mut bad));
        let queue_id = narrow(int(slots[4], nums[4], false, &mut bad));
        let sys_flag = narrow(int(slots[5], nums[5], false, &mut bad));
        let born = int(slots[6], nums[6], true, &mut bad);
        let flag = narrow(int(slots[7], nums[7], false, &mut bad));
        let reconsume = narrow(int(slots[9], nums[9], false, &mut bad));
        if let Some((k, v)) = bad {
            return Err(format!("invalid {}: {v:?}", String::from_utf8_lossy(k)));
        }
        let value = |i: usize| slots[i].map(|(_, v)| v);
        let missing = |name: &str| format!("the custom field <{name}> is null");
        Ok(SendFields {
            topic: value(1).ok_or_else(|| missing("topic"))?,
            default_topic: value(2).ok_or_else(|| missing("defaultTopic"))?,
            default_topic_queue_nums: default_nums
                .ok_or_else(|| missing("defaultTopicQueueNums"))?,
            queue_id: queue_id.ok_or_else(|| missing("queueId"))?,
            sys_flag: sys_flag.ok_or_else(|| missing("sysFlag"))?,
            born_timestamp: born.ok_or_else(|| missing("bornTimestamp"))?,
            flag: flag.ok_or_else(|| missing("flag"))?,
            properties: value(8).unwrap_or_default(),
            reconsume_times: reconsume.unwrap_or(0),
        })
    }
}

/// The properties a broker stamps on every stored message.
pub(super) const STAMPS: [(&str, &str); 2] = [
    (property::MSG_REGION, "DefaultRegion"),
    (property::TRACE_ON, "true"),
];

/// What the send path needs to know of a properties string, found without allocating.
pub(super) struct PropScan<'a> {
    pub(super) uniq: Option<&'a str>,
    pub(super) transactional: bool,
    /// Whether `decode_properties` + re-encoding would give the string back unchanged (every
    /// pair well formed and ended, no repeated or broker-stamped name), so it can be stored
    /// as it came.
    pub(super) canonical: bool,
    /// The string's length (as stored, before the broker's stamps).
    pub(super) len: usize,
}

/// What [`scan_properties`] notes of one well-formed pair (name and value non-empty): the
/// `UNIQ_KEY`, whether it makes the message transactional, and whether the name keeps the
/// string canonical (not repeated, not stamped by the broker, one of the first 16 names).
/// Shared with the fast path's reading of a properties string in its escaped form.
#[inline(always)]
pub(super) fn note_pair<'a>(
    scan: &mut PropScan<'a>,
    names: &mut [&'a [u8]; 16],
    n: &mut usize,
    k: &'a [u8],
    v: &'a str,
) {
    if k == property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.as_bytes() {
        scan.uniq = Some(v);
    } else if k == property::TRANSACTION_PREPARED.as_bytes() {
        scan.transactional = v.eq_ignore_ascii_case("true");
    }
    if *n == names.len()
        || names[..*n].contains(&k)
        || k == property::CLUSTER.as_bytes()
        || STAMPS.iter().any(|(s, _)| s.as_bytes() == k)
    {
        scan.canonical = false;
    } else {
        names[*n] = k;
        *n += 1;
    }
}

/// The index of the first `needle` in `b` at or after `i`. Eight bytes at a time: a byte's
/// high bit in `(x - 0x01..) & !x` (`x` = the word xor the needle) is set for a matching byte
/// (and possibly for bytes above it, through the borrow, never below), so the lowest flag is
/// exact.
fn find_byte(b: &[u8], mut i: usize, needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        let m = x.wrapping_sub(ONES) & !x & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

pub(super) fn scan_properties(s: &str) -> PropScan<'_> {
    const PAIR_END: u8 = message_codec::PROPERTY_SEPARATOR as u8;
    const NAME_END: u8 = message_codec::NAME_VALUE_SEPARATOR as u8;
    let bytes = s.as_bytes();
    let mut scan = PropScan {
        uniq: None,
        transactional: false,
        canonical: bytes.is_empty() || bytes.last() == Some(&PAIR_END),
        len: s.len(),
    };
    let mut names: [&[u8]; 16] = [b""; 16];
    let mut n = 0;
    let body_end = if bytes.last() == Some(&PAIR_END) {
        bytes.len() - 1
    } else {
        bytes.len()
    };
    // Segments between separators (ASCII bytes, so every cut is a char boundary).
    let mut start = 0;
    while start <= body_end {
        let end = find_byte(&bytes[..body_end], start, PAIR_END).unwrap_or(body_end);
        let segment = &bytes[start..end];
        let seg_start = start;
        start = end + 1;
        if segment.is_empty() {
            // Only the end may be empty (and `s` itself).
            scan.canonical &= s.is_empty();
            continue;
        }
        let Some(eq) = find_byte(segment, 0, NAME_END) else {
            scan.canonical = false;
            continue;
        };
        let (k, v) = (
            s.get(seg_start..seg_start + eq).unwrap_or_default(),
            s.get(seg_start + eq + 1..end).unwrap_or_default(),
        );
        if k.is_empty() || v.is_empty() {
            scan.canonical = false;
            continue;
        }
        note_pair(&mut scan, &mut names, &mut n, k.as_bytes(), v);
    }
    scan
}

/// The longest offset message id: an IPv6 store host, port and offset, in hex.
pub(super) const MAX_OFFSET_ID_LEN: usize = 2 * (16 + 4 + 8);

/// `v` as 8 upper-case hex digits, most significant first, without a loop: the nibbles are
/// spread one per byte (most significant in the top byte), then each becomes `'0' + n`, plus 7
/// for the digits past 9 (where `n + 6` carries into the byte's high nibble).
fn hex8(v: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut x = u64::from(v);
    x = (x | x << 16) & 0x0000_FFFF_0000_FFFF;
    x = (x | x << 8) & 0x00FF_00FF_00FF_00FF;
    x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F;
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    (x + 0x30 * ONES + 7 * letters).to_be_bytes()
}

/// An offset message id: store host and commit-log offset, 32 upper-case hex digits for IPv4
/// (56 for IPv6), written into `out`; returns its length.
pub(super) fn offset_id_into(
    out: &mut [u8; MAX_OFFSET_ID_LEN],
    host: SocketAddr,
    offset: i64,
) -> usize {
    let mut n = 0;
    let mut push = |word: u32| {
        out[n..n + 8].copy_from_slice(&hex8(word));
        n += 8;
    };
    match host.ip() {
        std::net::IpAddr::V4(ip) => push(u32::from(ip)),
        std::net::IpAddr::V6(ip) => {
            for w in u128::from(ip).to_be_bytes().chunks_exact(4) {
                push(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
    }
    push(u32::from(host.port()));
    push((offset >> 32) as u32);
    push(offset as u32);
    n
}

/// [`offset_id_into`], appended to a string.
fn write_offset_id(out: &mut String, host: SocketAddr, offset: i64) {
    let mut buf = [0u8; MAX_OFFSET_ID_LEN];
    let n = offset_id_into(&mut buf, host, offset);
    // Hex digits: ASCII.
    out.extend(buf[..n].iter().map(|&b| b as char));
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
pub(super) fn valid_topic(topic: &str) -> bool {
    /// The bytes a topic name may hold (`^[%|a-zA-Z0-9_-]+$`), by value.
    const ALLOWED: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-');
            c += 1;
        }
        t
    };
    // Bytewise: a non-ASCII char's bytes fail the test as the char would.
    !topic.is_empty() && topic.len() <= 127 && topic.bytes().all(|c| ALLOWED[usize::from(c)])
}

/// A send rejected before anything was stored: code and remark.
type Refusal = (i32, String);

/// A plain message stored: what its response says.
pub(super) struct Stored<'a> {
    pub(super) store_host: SocketAddr,
    pub(super) commit_log_offset: i64,
    pub(super) queue_id: i32,
    pub(super) queue_offset: i64,
    /// The `UNIQ_KEY`, answered as `transactionId`.
    pub(super) uniq: Option<&'a str>,
}

/// The end of the send path.
pub(super) enum Sent<'a> {
    /// A plain message was stored; its response is still to be written.
    Stored(Stored<'a>),
    /// Anything else: the whole reply.
    Reply(Reply),
}

impl BrokerCore {
    fn offset_id(&self, offset: i64) -> String {
        let mut s = String::with_capacity(32);
        write_offset_id(&mut s, self.store_addr(), offset);
        s
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

    pub(super) fn handle_send(&self, conn: &Conn, request: &mut RemotingCommand) -> Reply {
        let opaque = request.opaque;
        let body = std::mem::take(&mut request.body);
        let f = match SendFields::read(request.ext_fields.iter()) {
            Ok(f) => f,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e).into(),
        };
        let group = request
            .ext_fields
            .get("a")
            .or_else(|| request.ext_fields.get("producerGroup"));
        let batch = request.code == RequestCode::SEND_BATCH_MESSAGE;
        match self.send(conn, opaque, &f, group, batch, None, Cow::Owned(body)) {
            Sent::Stored(s) => {
                let mut id = String::with_capacity(32);
                write_offset_id(&mut id, s.store_host, s.commit_log_offset);
                Self::send_ok(opaque, id, s.queue_id, s.queue_offset, s.uniq)
            }
            Sent::Reply(r) => r,
        }
    }

    /// The send path after the header was read: checks, then a plain message, a half message
    /// or a batch stored. A plain message's response is left to the caller (`Sent::Stored`),
    /// which writes it as a reply or straight into the output (the fast path). The body is
    /// copied only if it is kept. `scan` is `scan_properties(f.properties)` if the caller has
    /// it already (or the same found by reading the properties in their escaped JSON form:
    /// then, when messages are not kept, `f.properties` may still be escaped, as nothing but
    /// the scan is read of a canonical, not transactional string that is not kept).
    #[allow(clippy::too_many_arguments)] // one call site per path
    pub(super) fn send<'a>(
        &self,
        conn: &Conn,
        opaque: i32,
        f: &SendFields<'a>,
        group: Option<&str>,
        batch: bool,
        scan: Option<PropScan<'a>>,
        body: Cow<'_, [u8]>,
    ) -> Sent<'a> {
        let mut store = self.store.lock();
        if let Some(group) = group {
            if !store.counters.send_groups.iter().any(|g| g == group) {
                store.counters.send_groups.push(group.to_string());
            }
        }
        let conf = match self.check_send(&mut store, f, body.len()) {
            Ok(c) => c,
            Err((code, remark)) => return Sent::Reply(Self::send_reply(code, opaque, &remark)),
        };
        let queue_id = if f.queue_id < 0 {
            (rand::random::<u32>() % conf.write_queues.max(1) as u32) as i32
        } else {
            f.queue_id
        };
        if batch {
            return Sent::Reply(self.store_batch(&mut store, conn, f, queue_id, &body, opaque));
        }
        let scan = scan.unwrap_or_else(|| scan_properties(f.properties));
        if scan.transactional {
            let mut properties = message_codec::decode_properties(f.properties);
            if let Err((code, remark)) = self.stamp(&mut properties) {
                return Sent::Reply(Self::send_reply(code, opaque, &remark));
            }
            let body = body.into_owned();
            let msg = Self::base_message(f, queue_id, body, f.flag, properties, conn.peer);
            return Sent::Reply(self.store_half(&mut store, msg, opaque, scan.uniq));
        }
        // The stored properties: as they came plus the stamps when that is what re-encoding
        // would give (built only if the message is kept), else decoded, stamped and encoded
        // again.
        let rebuilt = if scan.canonical {
            None
        } else {
            let mut props = message_codec::decode_properties(f.properties);
            if let Err((code, remark)) = self.stamp(&mut props) {
                return Sent::Reply(Self::send_reply(code, opaque, &remark));
            }
            let mut p = String::new();
            message_codec::encode_properties(
                props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut p,
            );
            Some(p)
        };
        let properties_len = rebuilt
            .as_ref()
            .map_or(scan.len + self.stamp_suffix.len(), String::len);
        if let Err((code, remark)) = check_properties_len(properties_len) {
            return Sent::Reply(Self::send_reply(code, opaque, &remark));
        }
        let store_host = self.store_addr();
        let len = stored_len_of(
            &conn.peer,
            &store_host,
            body.len(),
            f.topic.len(),
            properties_len,
        );
        let commit_log_offset = Self::next_commit_offset(&mut store, len);
        let queue_offset = Self::next_queue_offset(&mut store, f.topic, queue_id);
        store.counters.messages_stored += 1;
        if self.settings.keep_messages {
            let topic = Self::topic_name(&mut store, f.topic);
            let properties = rebuilt.unwrap_or_else(|| {
                let mut p = String::with_capacity(properties_len);
                p.push_str(f.properties);
                p.push_str(&self.stamp_suffix);
                p
            });
            self.keep(
                &mut store,
                Record {
                    topic,
                    body: body.into_owned(),
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
        Sent::Stored(Stored {
            store_host,
            commit_log_offset,
            queue_id,
            queue_offset,
            uniq: scan.uniq,
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::OffsetMessageId;

    #[test]
    fn valid_topic_is_the_pattern() {
        let reference = |t: &str| {
            !t.is_empty()
                && t.len() <= 127
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
        };
        let mut topics: Vec<String> = (0u32..=0x3000)
            .filter_map(char::from_u32)
            .map(|c| format!("T{c}x"))
            .collect();
        topics.extend(["", "a", "é", "%|_-", "a b", "ok-Topic_1"].map(String::from));
        topics.extend(["a".repeat(127), "a".repeat(128)]);
        for t in &topics {
            assert_eq!(valid_topic(t), reference(t), "{t:?}");
        }
    }

    #[test]
    fn hex8_is_upper_case_hex() {
        let mut v = 0x9E37_79B9u32;
        for fixed in [
            0,
            1,
            9,
            10,
            15,
            16,
            0xFF,
            0x0A0B_0C0D,
            0x1234_5678,
            u32::MAX,
        ] {
            assert_eq!(hex8(fixed), format!("{fixed:08X}").as_bytes(), "{fixed:x}");
        }
        for _ in 0..100_000 {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            assert_eq!(hex8(v), format!("{v:08X}").as_bytes(), "{v:x}");
        }
    }

    #[test]
    fn offset_ids_match_offset_message_id() {
        for host in [
            "127.0.0.1:20961",
            "10.1.2.3:0",
            "[::1]:65535",
            "[fe80::1:2]:10911",
        ] {
            for offset in [
                0,
                1,
                0x11B,
                i64::MAX,
                -1,
                0x1234_5678_9ABC_DEF0,
                0xFFFF_FFFF,
            ] {
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

    /// The scan as it was written before it went byte-wise: `str::split` and `split_once`.
    fn reference_scan(s: &str) -> (Option<&str>, bool, bool) {
        let (mut uniq, mut transactional) = (None, false);
        let mut canonical = s.is_empty() || s.ends_with(message_codec::PROPERTY_SEPARATOR);
        let mut names: Vec<&str> = vec![];
        let body = s
            .strip_suffix(message_codec::PROPERTY_SEPARATOR)
            .unwrap_or(s);
        for segment in body.split(message_codec::PROPERTY_SEPARATOR) {
            if segment.is_empty() {
                canonical &= s.is_empty();
                continue;
            }
            let Some((k, v)) = segment.split_once(message_codec::NAME_VALUE_SEPARATOR) else {
                canonical = false;
                continue;
            };
            if k.is_empty() || v.is_empty() {
                canonical = false;
                continue;
            }
            if k == property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX {
                uniq = Some(v);
            } else if k == property::TRANSACTION_PREPARED {
                transactional = v.eq_ignore_ascii_case("true");
            }
            if names.len() == 16
                || names.contains(&k)
                || k == property::CLUSTER
                || STAMPS.iter().any(|(s, _)| *s == k)
            {
                canonical = false;
            } else {
                names.push(k);
            }
        }
        (uniq, transactional, canonical)
    }

    #[test]
    fn find_byte_finds_the_first_match() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..40 {
            for _ in 0..100 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        [0, 1, 2, 3, 0x81, 0xff, b'a'][(seed % 7) as usize]
                    })
                    .collect();
                for needle in [1u8, 2, 0xff] {
                    for i in 0..=len {
                        let naive = (i..len).find(|&j| b[j] == needle);
                        assert_eq!(find_byte(&b, i, needle), naive, "{b:?} {needle} from {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn property_scan_matches_the_reference_on_random_strings() {
        let pieces = [
            "\u{1}", "\u{2}", "UNIQ_KEY", "TRAN_MSG", "true", "TRUE", "a", "b", "é", "CLUSTER",
            "TRACE_ON", "",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for i in 0..(seed % 12) {
                s.push_str(pieces[((seed >> (4 * i)) % pieces.len() as u64) as usize]);
            }
            let scan = scan_properties(&s);
            assert_eq!(
                (scan.uniq, scan.transactional, scan.canonical),
                reference_scan(&s),
                "{s:?}"
            );
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
}
