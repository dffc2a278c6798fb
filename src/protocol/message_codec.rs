//! Message encodings (protocol.md sections 7-9): the properties string, the batch body, the
//! stored-message layout, client message ids (`UNIQ_KEY`) and Java's `String.hashCode`.
//!
//! Nothing here reads a clock: the id generator takes the current time as an argument.

use std::cell::Cell;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use byteorder::{BigEndian, ByteOrder};
use flate2::read::ZlibDecoder;

use super::frame::CodecError;
use crate::message::{IdStr, Message, MessageExt};

/// The sysFlag bits of a message (`MessageSysFlag.java`, protocol.md 7.4).
pub mod sys_flag {
    /// The body is compressed (the codec is in the type bits).
    pub const COMPRESSED: i32 = 0x1;
    /// The topic uses multi-tag filtering (set by the broker).
    pub const MULTI_TAGS: i32 = 0x2;
    /// Not a transaction message (transaction bits 0).
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    /// A transactional half message.
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    /// Commit; also END_TRANSACTION's `commitOrRollback` value.
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    /// Rollback; also END_TRANSACTION's `commitOrRollback` value.
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    /// The born host is IPv6 (changes the stored layout).
    pub const BORNHOST_V6: i32 = 0x10;
    /// The store host is IPv6 (changes the stored layout and the offset id length).
    pub const STOREHOST_V6: i32 = 0x20;
    /// Inner batch, needs unwrapping (set by the broker).
    pub const NEED_UNWRAP: i32 = 0x40;
    /// Inner batch (set by the broker).
    pub const INNER_BATCH: i32 = 0x80;
    /// Compression type LZ4 (4.9.4+).
    pub const COMPRESSION_LZ4: i32 = 0x100;
    /// Compression type ZSTD (4.9.4+).
    pub const COMPRESSION_ZSTD: i32 = 0x200;
    /// Compression type ZLIB (4.9.4+).
    pub const COMPRESSION_ZLIB: i32 = 0x300;
    /// Mask of the compression-type bits.
    pub const COMPRESSION_TYPE_MASK: i32 = 0x700;

    /// The transaction bits of `flag`: one of the `TRANSACTION_*` values.
    pub fn transaction_value(flag: i32) -> i32 {
        flag & TRANSACTION_ROLLBACK
    }

    /// `flag` with its transaction bits replaced by `value`.
    pub fn reset_transaction_value(flag: i32, value: i32) -> i32 {
        (flag & !TRANSACTION_ROLLBACK) | (value & TRANSACTION_ROLLBACK)
    }

    /// The compression type bits, shifted down: 0 = zlib (legacy), 1 = LZ4, 2 = ZSTD, 3 = ZLIB.
    pub fn compression_type(flag: i32) -> i32 {
        (flag & COMPRESSION_TYPE_MASK) >> 8
    }
}

/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends each property.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// The largest encoded properties string a message can carry (an i16 length on the wire).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// Appends the properties string: `name \u0001 value \u0002` for every pair, the last one
/// included (`MessageDecoder.messageProperties2String`).
///
/// Names and values must not contain `\u0001` or `\u0002`; the producer validates that.
pub fn encode_properties<'a>(
    props: impl IntoIterator<Item = (&'a str, &'a str)>,
    out: &mut String,
) {
    for (k, v) in props {
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
        out.push(PROPERTY_SEPARATOR);
    }
}

/// Splits a properties string into pairs, as `MessageDecoder.string2messageProperties` does:
/// segments end at `\u0002` (a missing last one is tolerated), name and value split at the first
/// `\u0001`, segments with an empty name or value dropped. A repeated name keeps its first
/// position and its last value (Java puts into a map).
pub fn decode_properties(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for segment in s.split(PROPERTY_SEPARATOR) {
        let Some((k, v)) = segment.split_once(NAME_VALUE_SEPARATOR) else {
            continue;
        };
        if k.is_empty() || v.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    out
}

/// The properties string of `msg` (what goes into the send header's `i` / `properties`).
pub fn message_properties_string(msg: &Message) -> String {
    let mut s = String::new();
    encode_properties(msg.properties(), &mut s);
    s
}

fn check_properties_len(len: usize) -> Result<(), CodecError> {
    if len > MAX_PROPERTIES_LEN {
        return Err(CodecError::Malformed(format!(
            "properties of {len} bytes are over the {MAX_PROPERTIES_LEN}-byte limit"
        )));
    }
    Ok(())
}

/// Appends the SEND_BATCH_MESSAGE body for `messages` (protocol.md 7.6): per message
/// `TOTALSIZE, MAGICCODE=0, BODYCRC=0, FLAG, body length, body, properties length (i16),
/// properties`, with no count prefix. The properties are each message's own (`UNIQ_KEY`,
/// `TAGS`, `KEYS`, `WAIT` included if the message has them).
///
/// # Errors
/// [`CodecError::Malformed`] if a message's properties are over [`MAX_PROPERTIES_LEN`] bytes or
/// a record is over 2 GiB; `out` is then left as it was.
pub fn encode_batch<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    let mut props = String::new();
    for msg in messages {
        props.clear();
        encode_properties(msg.properties(), &mut props);
        let body = msg.body();
        let total = 20 + body.len() + 2 + props.len();
        if let Err(e) = check_properties_len(props.len()).and_then(|()| {
            i32::try_from(total)
                .map(|_| ())
                .map_err(|_| CodecError::Malformed(format!("batch record of {total} bytes")))
        }) {
            out.truncate(start);
            return Err(e);
        }
        out.reserve(total);
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&msg.flag().to_be_bytes());
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(props.len() as i16).to_be_bytes());
        out.extend_from_slice(props.as_bytes());
    }
    Ok(())
}

/// One message of a batch body, as [`decode_batch`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// The user flag.
    pub flag: i32,
    /// The body.
    pub body: Vec<u8>,
    /// The properties, decoded.
    pub properties: Vec<(String, String)>,
}

/// Splits a SEND_BATCH_MESSAGE body into its messages (what a broker does; the mock broker needs
/// it).
///
/// # Errors
/// [`CodecError::Malformed`] if a record's sizes do not add up.
pub fn decode_batch(body: &[u8]) -> Result<Vec<BatchEntry>, CodecError> {
    let mut entries = Vec::new();
    let mut r = Cursor::new(body);
    while !r.is_empty() {
        let total = r.i32("batch TOTALSIZE")?;
        let total = usize::try_from(total)
            .ok()
            .filter(|&t| t >= 22)
            .ok_or_else(|| malformed("batch TOTALSIZE"))?;
        let mut rec = Cursor::new(r.take(total - 4, "batch record")?);
        let _magic = rec.i32("batch MAGICCODE")?;
        let _crc = rec.i32("batch BODYCRC")?;
        let flag = rec.i32("batch FLAG")?;
        let body_len = rec.len_i32("batch body length")?;
        let body = rec.take(body_len, "batch body")?.to_vec();
        let props_len = rec.len_i16("batch properties length")?;
        let props = rec.str(props_len, "batch properties")?;
        if !rec.is_empty() {
            return Err(malformed("batch record longer than its fields"));
        }
        entries.push(BatchEntry {
            flag,
            body,
            properties: decode_properties(props),
        });
    }
    Ok(entries)
}

/// Stored-message magic code, V1: 1-byte topic length.
pub const MESSAGE_MAGIC_CODE_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Stored-message magic code, V2: 2-byte topic length.
pub const MESSAGE_MAGIC_CODE_V2: i32 = 0xDAA3_20AB_u32 as i32;

/// The largest body [`decode_stored_messages`] inflates a compressed body to: the default
/// maximum message size ([`crate::config::DEFAULT_MAX_MESSAGE_SIZE`], 4 MiB), the largest body
/// a producer with default settings sends.
pub const DEFAULT_MAX_INFLATED_BODY: usize = crate::config::DEFAULT_MAX_MESSAGE_SIZE;

/// Decodes every stored message in `body` (protocol.md 9.5): the body of a
/// CHECK_TRANSACTION_STATE request, a VIEW_MESSAGE_BY_ID or QUERY_MESSAGE response, a pull
/// result.
///
/// Accepts the V1 and V2 magic codes, IPv4 and IPv6 hosts (by the sysFlag bits), and several
/// records back to back. The body CRC is read, not checked. A compressed body (the
/// [`sys_flag::COMPRESSED`] bit) is inflated, up to [`DEFAULT_MAX_INFLATED_BODY`] bytes; the
/// sysFlag is returned as stored, with the compression bits still set (as Java's
/// `MessageDecoder` leaves it). [`decode_stored_messages_with`] takes another limit, or
/// leaves bodies as stored.
///
/// # Errors
/// [`CodecError::Malformed`] naming the field where the bytes stop making sense, or a zlib
/// stream that does not inflate; [`CodecError::UnsupportedCompression`] for an LZ4 or ZSTD
/// body; [`CodecError::InflatedBodyTooLarge`] past the limit.
pub fn decode_stored_messages(body: &[u8]) -> Result<Vec<MessageExt>, CodecError> {
    decode_stored_messages_with(body, Some(DEFAULT_MAX_INFLATED_BODY))
}

/// [`decode_stored_messages`] with a limit on inflated bodies: `Some(max)` inflates a
/// compressed body up to `max` bytes (a producer passes its maximum message size); `None`
/// leaves every body as stored, compressed or not (Java's `deCompressBody = false`), for
/// tools that check what a broker keeps byte for byte.
///
/// # Errors
/// As [`decode_stored_messages`]; [`CodecError::InflatedBodyTooLarge`] names `max`.
pub fn decode_stored_messages_with(
    body: &[u8],
    max_inflated: Option<usize>,
) -> Result<Vec<MessageExt>, CodecError> {
    let mut out = Vec::new();
    let mut r = Cursor::new(body);
    while !r.is_empty() {
        let total = r.i32("TOTALSIZE")?;
        let total = usize::try_from(total)
            .ok()
            .filter(|&t| t >= 4)
            .ok_or_else(|| malformed("TOTALSIZE"))?;
        let rec = r.take(total - 4, "stored message record")?;
        let mut msg = decode_stored_record(rec)?;
        if let Some(max) = max_inflated {
            if msg.sys_flag & sys_flag::COMPRESSED != 0 {
                msg.body = inflate_body(&msg.body, msg.sys_flag, max)?;
            }
        }
        out.push(msg);
    }
    Ok(out)
}

/// Inflates a stored body compressed as `flag` (a message's sysFlag) says, to at most `max`
/// bytes. A body without the [`sys_flag::COMPRESSED`] bit is returned as it is.
///
/// Compression types 0 (before 4.9.4) and 3 are zlib; 1 (LZ4) and 2 (ZSTD) are not decoded by
/// this crate.
///
/// # Errors
/// [`CodecError::UnsupportedCompression`] for a type other than zlib;
/// [`CodecError::InflatedBodyTooLarge`] when the body inflates past `max` bytes (no more than
/// `max + 1` bytes are ever allocated); [`CodecError::Malformed`] when the bytes are not a zlib
/// stream.
pub fn inflate_body(body: &[u8], flag: i32, max: usize) -> Result<Vec<u8>, CodecError> {
    if flag & sys_flag::COMPRESSED == 0 {
        return Ok(body.to_vec());
    }
    match sys_flag::compression_type(flag) {
        0 | 3 => {}
        other => return Err(CodecError::UnsupportedCompression(other)),
    }
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    // zlib rarely shrinks more than 1:1000; start small and let the reader grow the vector.
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    ZlibDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Malformed(format!("compressed body: {e}")))?;
    if out.len() > max {
        return Err(CodecError::InflatedBodyTooLarge { max });
    }
    Ok(out)
}

/// Decodes one record without its TOTALSIZE field.
fn decode_stored_record(rec: &[u8]) -> Result<MessageExt, CodecError> {
    let mut r = Cursor::new(rec);
    let magic = r.i32("MAGICCODE")?;
    if magic != MESSAGE_MAGIC_CODE_V1 && magic != MESSAGE_MAGIC_CODE_V2 {
        return Err(CodecError::Malformed(format!(
            "stored message magic code {:#010X}",
            magic as u32
        )));
    }
    let body_crc = r.i32("BODYCRC")?;
    let queue_id = r.i32("QUEUEID")?;
    let flag = r.i32("FLAG")?;
    let queue_offset = r.i64("QUEUEOFFSET")?;
    let commit_log_offset = r.i64("PHYSICALOFFSET")?;
    let sys_flag = r.i32("SYSFLAG")?;
    let born_timestamp = r.i64("BORNTIMESTAMP")?;
    let born_host = r.host(sys_flag & sys_flag::BORNHOST_V6 != 0, "BORNHOST")?;
    let store_timestamp = r.i64("STORETIMESTAMP")?;
    let store_host = r.host(sys_flag & sys_flag::STOREHOST_V6 != 0, "STOREHOST")?;
    let reconsume_times = r.i32("RECONSUMETIMES")?;
    let prepared_transaction_offset = r.i64("PREPARED TRANSACTION OFFSET")?;
    let body_len = r.len_i32("BODY length")?;
    let body = r.take(body_len, "BODY")?.to_vec();
    let topic_len = if magic == MESSAGE_MAGIC_CODE_V1 {
        r.u8("TOPIC length")? as usize
    } else {
        r.len_i16("TOPIC length")?
    };
    let topic = r.str(topic_len, "TOPIC")?.to_owned();
    let props_len = r.len_i16("PROPERTIES length")?;
    let properties = decode_properties(r.str(props_len, "PROPERTIES")?);
    if !r.is_empty() {
        return Err(malformed("stored message longer than its fields"));
    }
    Ok(MessageExt {
        topic,
        body,
        flag,
        properties,
        queue_id,
        queue_offset,
        commit_log_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body_crc,
    })
}

/// Appends `msg` in the stored-message layout, as a broker sends it in a check-back or a
/// VIEW_MESSAGE_BY_ID response (for the mock broker).
///
/// Writes the V1 magic (1-byte topic length) for topics up to 127 bytes, as Java does, and the
/// V2 magic (2-byte length) for longer ones. The body CRC is computed from the body
/// ([`body_crc32`]); `msg.body_crc` is ignored. The IPv6 bits of the written sysFlag follow the
/// host addresses, whatever `msg.sys_flag` says about them.
///
/// # Errors
/// [`CodecError::Malformed`] if the topic is over 32767 bytes, the properties are over
/// [`MAX_PROPERTIES_LEN`], or the record over 2 GiB; `out` is then left as it was.
pub fn encode_stored_message(msg: &MessageExt, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut props = String::new();
    encode_properties(
        msg.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut props,
    );
    check_properties_len(props.len())?;
    let topic = msg.topic.as_bytes();
    let v1 = topic.len() <= 127;
    if topic.len() > i16::MAX as usize {
        return Err(CodecError::Malformed(format!(
            "topic of {} bytes",
            topic.len()
        )));
    }
    let host_len = |h: &SocketAddr| if h.is_ipv4() { 8 } else { 20 };
    let total = 4
        + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + host_len(&msg.born_host)
        + 8
        + host_len(&msg.store_host)
        + 4
        + 8
        + 4
        + msg.body.len()
        + if v1 { 1 } else { 2 }
        + topic.len()
        + 2
        + props.len();
    let total = i32::try_from(total)
        .map_err(|_| CodecError::Malformed(format!("stored message of {total} bytes")))?;
    let mut flag = msg.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
    if msg.born_host.is_ipv6() {
        flag |= sys_flag::BORNHOST_V6;
    }
    if msg.store_host.is_ipv6() {
        flag |= sys_flag::STOREHOST_V6;
    }
    out.reserve(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    let magic = if v1 {
        MESSAGE_MAGIC_CODE_V1
    } else {
        MESSAGE_MAGIC_CODE_V2
    };
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&body_crc32(&msg.body).to_be_bytes());
    out.extend_from_slice(&msg.queue_id.to_be_bytes());
    out.extend_from_slice(&msg.flag.to_be_bytes());
    out.extend_from_slice(&msg.queue_offset.to_be_bytes());
    out.extend_from_slice(&msg.commit_log_offset.to_be_bytes());
    out.extend_from_slice(&flag.to_be_bytes());
    out.extend_from_slice(&msg.born_timestamp.to_be_bytes());
    write_host(&msg.born_host, out);
    out.extend_from_slice(&msg.store_timestamp.to_be_bytes());
    write_host(&msg.store_host, out);
    out.extend_from_slice(&msg.reconsume_times.to_be_bytes());
    out.extend_from_slice(&msg.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(msg.body.len() as i32).to_be_bytes());
    out.extend_from_slice(&msg.body);
    if v1 {
        out.push(topic.len() as u8);
    } else {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    }
    out.extend_from_slice(topic);
    out.extend_from_slice(&(props.len() as i16).to_be_bytes());
    out.extend_from_slice(props.as_bytes());
    Ok(())
}

fn write_host(host: &SocketAddr, out: &mut Vec<u8>) {
    match host.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(host.port()).to_be_bytes());
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, as `java.util.zip.CRC32`) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFF_u32;
    for &b in data {
        c = CRC32_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// The BODYCRC a broker stores: `crc32(body) & 0x7FFFFFFF` (`UtilAll.crc32`).
pub fn body_crc32(body: &[u8]) -> i32 {
    (crc32(body) & 0x7FFF_FFFF) as i32
}

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + s[1]*31^(n-2) + ... + s[n-1]` over the UTF-16
/// code units of `s` (a character outside the BMP counts as its two surrogates), in wrapping
/// 32-bit arithmetic. The message-hash queue selector uses it so that Java and Rust producers
/// put a key on the same queue.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Generates client message ids (`UNIQ_KEY`) in Java's `MessageClientIDSetter` layout
/// (protocol.md 8.1), as upper-case hex:
///
/// ```text
/// ip (4 or 16 bytes) | pid as i16 | hash i32 | ms since the start of the month, i32 | counter u16
/// ```
///
/// 32 characters for an IPv4 address, 56 for IPv6. The generator is `Sync`: the counter is an
/// atomic that wraps at 65536. It reads no clock; callers pass the current epoch ms.
///
/// The start of the month is computed in **UTC**. Java uses the JVM's local time zone; the
/// difference only shifts the time field (which only tools such as the dashboard read back), not
/// uniqueness.
///
/// ```
/// use rocketmq_mio::protocol::message_codec::UniqIdGenerator;
/// let ids = UniqIdGenerator::with_hash("192.168.1.5".parse().unwrap(), 12345, 0x1B6D3586);
/// // 2023-11-01T00:00:00Z (start of the month) + 0x05265C00 ms (one day).
/// let id = ids.next_id(1_698_796_800_000 + 0x0526_5C00);
/// assert_eq!(id, "C0A8010530391B6D358605265C000000");
/// assert_eq!(&ids.next_id(1_698_796_800_000 + 0x0526_5C00)[28..], "0001");
/// ```
#[derive(Debug)]
pub struct UniqIdGenerator {
    prefix: String,
    counter: AtomicU16,
    /// The month of the last id, so the next ids of that month skip the calendar: its first
    /// day (days since the epoch, as `i32` bits) above 8 bits, its length in days below (0:
    /// none yet).
    month: AtomicU64,
    /// An inline id's buffer with `prefix` in place ([`UniqIdGenerator::next_id_str`] writes
    /// the suffix after it).
    template: [u8; IdStr::INLINE_CAPACITY],
}

impl UniqIdGenerator {
    /// A generator for this host and process, with a random stand-in for Java's class-loader
    /// hash.
    pub fn new(ip: IpAddr, pid: u32) -> Self {
        Self::with_hash(ip, pid, rand::random::<i32>())
    }

    /// A generator with a given hash field (deterministic, for tests).
    pub fn with_hash(ip: IpAddr, pid: u32, hash: i32) -> Self {
        let mut prefix = String::with_capacity(56);
        match ip {
            IpAddr::V4(ip) => push_hex(&mut prefix, &ip.octets()),
            IpAddr::V6(ip) => push_hex(&mut prefix, &ip.octets()),
        }
        push_hex(&mut prefix, &(pid as u16).to_be_bytes());
        push_hex(&mut prefix, &hash.to_be_bytes());
        let mut template = [0u8; IdStr::INLINE_CAPACITY];
        if let Some(dst) = template.get_mut(..prefix.len()) {
            dst.copy_from_slice(prefix.as_bytes());
        }
        UniqIdGenerator {
            prefix,
            counter: AtomicU16::new(0),
            month: AtomicU64::new(0),
            template,
        }
    }

    /// The fixed part of every id (ip, pid, hash): 20 hex characters for IPv4, 44 for IPv6.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Appends the next id, for the current time `now_ms` (epoch milliseconds), to `out`.
    pub fn write_id(&self, now_ms: i64, out: &mut String) {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        out.reserve(self.prefix.len() + 12);
        out.push_str(&self.prefix);
        push_hex(out, &self.month_delta(now_ms).to_be_bytes());
        push_hex(out, &counter.to_be_bytes());
    }

    /// The next id as an inline [`IdStr`], for the current time `now_ms`: the same id as
    /// [`UniqIdGenerator::next_id`] would make, its suffix's hex written straight into a copy
    /// of the buffer that holds the prefix (no intermediate suffix, no separate copies).
    /// Allocates nothing.
    pub(crate) fn next_id_str(&self, now_ms: i64) -> IdStr {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let at = self.prefix.len();
        let mut buf = self.template;
        let Some(dst) = buf.get_mut(at..at + 12) else {
            // Not for an IP address's prefix (44 hex digits at most): kept for safety.
            let mut s = String::with_capacity(at + 12);
            s.push_str(&self.prefix);
            push_hex(&mut s, &self.month_delta(now_ms).to_be_bytes());
            push_hex(&mut s, &counter.to_be_bytes());
            return IdStr::from(s);
        };
        let (time, count) = dst.split_at_mut(8);
        time.copy_from_slice(&self.time_hex(now_ms));
        let counter = counter.to_be_bytes();
        for (pair, &b) in count.chunks_exact_mut(2).zip(&counter) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        IdStr::inline_ascii(buf, at + 12)
    }

    /// The hex of an id's time field for `now_ms` ([`UniqIdGenerator::month_delta`]): the
    /// last one this thread made when it is for the same millisecond (the ids of one
    /// millisecond share it; the field is a function of `now_ms` alone, whatever the
    /// generator), else made and remembered.
    #[inline]
    fn time_hex(&self, now_ms: i64) -> [u8; 8] {
        thread_local! {
            static LAST: Cell<Option<(i64, [u8; 8])>> = const { Cell::new(None) };
        }
        LAST.with(|last| match last.get() {
            Some((ms, hex)) if ms == now_ms => hex,
            _ => {
                let mut hex = [0u8; 8];
                let time = self.month_delta(now_ms).to_be_bytes();
                for (pair, &b) in hex.chunks_exact_mut(2).zip(&time) {
                    pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
                }
                last.set(Some((now_ms, hex)));
                hex
            }
        })
    }

    /// [`month_delta`], with the month's bounds remembered from the last call.
    fn month_delta(&self, now_ms: i64) -> i32 {
        const DAY_MS: i64 = 86_400_000;
        let month = self.month.load(Ordering::Relaxed);
        let start = i64::from((month >> 8) as u32 as i32) * DAY_MS;
        let len = (month & 0xff) as i64 * DAY_MS;
        if now_ms >= start && now_ms - start < len {
            return month_delta_from(now_ms, start);
        }
        let start = start_of_month_utc(now_ms);
        let next = start_of_month_utc(start.saturating_add(32 * DAY_MS));
        if let Ok(day) = i32::try_from(start.div_euclid(DAY_MS)) {
            let len = ((next - start) / DAY_MS) as u64 & 0xff;
            self.month
                .store(u64::from(day as u32) << 8 | len, Ordering::Relaxed);
        }
        month_delta_from(now_ms, start)
    }

    /// The next id, for the current time `now_ms` (epoch milliseconds).
    pub fn next_id(&self, now_ms: i64) -> String {
        let mut s = String::with_capacity(self.prefix.len() + 12);
        self.write_id(now_ms, &mut s);
        s
    }
}

/// The time field of an id: ms since the start of `now_ms`'s month (UTC), as Java's `(int)` cast
/// makes it (it wraps after 24.8 days), small negatives clamped to 0 as Java does.
#[cfg(test)]
fn month_delta(now_ms: i64) -> i32 {
    month_delta_from(now_ms, start_of_month_utc(now_ms))
}

/// [`month_delta`] for the month that starts at `month_start`.
fn month_delta_from(now_ms: i64, month_start: i64) -> i32 {
    let diff = now_ms.wrapping_sub(month_start) as i32;
    if diff < 0 && diff > -1_000_000 {
        0
    } else {
        diff
    }
}

/// Epoch ms of day 1, 00:00:00.000 UTC, of the month `epoch_ms` falls in.
pub fn start_of_month_utc(epoch_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let days = epoch_ms.div_euclid(DAY_MS);
    let (_, _, day) = civil_from_days(days);
    (days - (day - 1)) * DAY_MS
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The upper-case hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [HEX[b >> 4], HEX[b & 0xF]];
        b += 1;
    }
    t
};

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xF) as usize] as char);
    }
}

/// Upper-case hex of `bytes` (`UtilAll.bytes2string`).
pub fn bytes_to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

fn malformed(what: &str) -> CodecError {
    CodecError::Malformed(what.to_owned())
}

/// A bounds-checked big-endian reader; errors name the field.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CodecError> {
        if n > self.buf.len() {
            return Err(CodecError::Malformed(format!(
                "{what}: {n} bytes wanted, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &str) -> Result<i16, CodecError> {
        Ok(BigEndian::read_i16(self.take(2, what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, CodecError> {
        Ok(BigEndian::read_i32(self.take(4, what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, CodecError> {
        Ok(BigEndian::read_i64(self.take(8, what)?))
    }

    fn len_i32(&mut self, what: &str) -> Result<usize, CodecError> {
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| CodecError::Malformed(format!("{what} {n}")))
    }

    fn len_i16(&mut self, what: &str) -> Result<usize, CodecError> {
        let n = self.i16(what)?;
        usize::try_from(n).map_err(|_| CodecError::Malformed(format!("{what} {n}")))
    }

    fn str(&mut self, n: usize, what: &str) -> Result<&'a str, CodecError> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::Malformed(format!("{what}: not UTF-8")))
    }

    fn host(&mut self, v6: bool, what: &str) -> Result<SocketAddr, CodecError> {
        let ip = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(self.take(16, what)?);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let mut o = [0u8; 4];
            o.copy_from_slice(self.take(4, what)?);
            IpAddr::V4(Ipv4Addr::from(o))
        };
        let port = self.i32(what)?;
        let port = u16::try_from(port)
            .map_err(|_| CodecError::Malformed(format!("{what} port {port}")))?;
        Ok(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline id is the id `next_id` makes (the same counter and time fields), for IPv4
    /// and IPv6 prefixes, across counter wrap-around and times before the epoch.
    #[test]
    fn id_str_is_the_next_id() {
        for ip in ["10.0.0.1", "fe80::1:2:3:4"] {
            let a = UniqIdGenerator::with_hash(ip.parse().unwrap(), 7, -42);
            let b = UniqIdGenerator::with_hash(ip.parse().unwrap(), 7, -42);
            for i in 0..70_000i64 {
                let now =
                    1_700_000_000_123 + i * 997 - if i % 3 == 0 { 2_000_000_000_000 } else { 0 };
                let id = a.next_id_str(now);
                assert_eq!(id.as_str(), b.next_id(now), "{i}");
                assert!(id.is_inline());
            }
        }
    }

    /// Ids of one millisecond (the time field's hex remembered on this thread), of other
    /// milliseconds in any order, and of another generator in between are the ids `next_id`
    /// makes.
    #[test]
    fn id_str_of_repeated_milliseconds_is_the_next_id() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let a = UniqIdGenerator::with_hash("10.0.0.1".parse().unwrap(), 7, -42);
        let b = UniqIdGenerator::with_hash("10.0.0.1".parse().unwrap(), 7, -42);
        let other = UniqIdGenerator::with_hash("fe80::1".parse().unwrap(), 9, 3);
        let other_ref = UniqIdGenerator::with_hash("fe80::1".parse().unwrap(), 9, 3);
        let mut now = 1_700_000_000_123i64;
        for i in 0..20_000 {
            match rng.gen_range(0..10) {
                0 => now += 1,
                1 => now -= rng.gen_range(0..3_000_000_000),
                2 => now = start_of_month_utc(now) - rng.gen_range(0..2),
                3 => now = -now,
                _ => {}
            }
            if rng.gen_range(0..5) == 0 {
                assert_eq!(
                    other.next_id_str(now).as_str(),
                    other_ref.next_id(now),
                    "{i}"
                );
            }
            assert_eq!(a.next_id_str(now).as_str(), b.next_id(now), "{i}");
        }
    }

    /// The remembered month gives what the calendar gives: across month and year ends, leap
    /// days, far-apart times in any order, and before the epoch.
    #[test]
    fn remembered_month_matches_the_calendar() {
        use rand::{Rng, SeedableRng};
        let g = UniqIdGenerator::with_hash("10.0.0.1".parse().unwrap(), 7, 42);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut times = vec![-1, 0, 1, 951_868_800_000 - 1, 951_868_800_000];
        for _ in 0..2000 {
            let base: i64 = rng.gen_range(-5_000_000_000_000..5_000_000_000_000);
            times.push(base);
            // Walk through month ends in small steps.
            let start = start_of_month_utc(base);
            times.extend([start - 1, start, start + 1, base + 1, base + 86_400_000]);
        }
        for t in times {
            assert_eq!(g.month_delta(t), month_delta(t), "at {t}");
        }
    }

    #[test]
    fn crc32_reference_values() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn properties_round_trip_and_java_rules() {
        let mut s = String::new();
        encode_properties([("TAGS", "a"), ("KEYS", "k1 k2")], &mut s);
        assert_eq!(s, "TAGS\u{1}a\u{2}KEYS\u{1}k1 k2\u{2}");
        assert_eq!(
            decode_properties(&s),
            vec![("TAGS".into(), "a".into()), ("KEYS".into(), "k1 k2".into())]
        );
        // Missing last separator, empty names/values, value with a second \u0001, duplicates.
        let d = decode_properties("A\u{1}1\u{2}\u{1}x\u{2}B\u{1}\u{2}C\u{1}x\u{1}y\u{2}A\u{1}2");
        assert_eq!(
            d,
            vec![("A".into(), "2".into()), ("C".into(), "x\u{1}y".into())]
        );
        assert!(decode_properties("").is_empty());
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(5));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn stored(body: Vec<u8>, flag: i32) -> Vec<u8> {
        let msg = MessageExt {
            topic: "T".into(),
            body,
            flag: 0,
            properties: vec![("UNIQ_KEY".into(), "U1".into())],
            queue_id: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: flag,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        };
        let mut out = Vec::new();
        encode_stored_message(&msg, &mut out).unwrap();
        out
    }

    #[test]
    fn compressed_bodies_are_inflated() {
        let original = b"order 42 created; ".repeat(600);
        let z = zlib(&original);
        assert!(z.len() < original.len() / 10);
        let zlib_flag = sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB;
        // Type 3 (4.9.4+) and type 0 (older brokers) are both zlib.
        for flag in [
            zlib_flag,
            sys_flag::COMPRESSED,
            zlib_flag | sys_flag::TRANSACTION_PREPARED,
        ] {
            let bytes = stored(z.clone(), flag);
            let m = &decode_stored_messages(&bytes).unwrap()[0];
            assert_eq!(m.body, original, "flag {flag:#x}");
            assert_eq!(m.sys_flag, flag, "the sysFlag is as stored");
            assert_eq!(m.body_crc, body_crc32(&z), "the CRC is of the stored bytes");
            // Left as stored on request.
            let raw = &decode_stored_messages_with(&bytes, None).unwrap()[0];
            assert_eq!(raw.body, z);
        }
        // Several records, one compressed: each as it should be.
        let mut two = stored(z.clone(), zlib_flag);
        two.extend_from_slice(&stored(b"plain".to_vec(), 0));
        let ms = decode_stored_messages(&two).unwrap();
        assert_eq!(
            (ms[0].body.as_slice(), ms[1].body.as_slice()),
            (&original[..], &b"plain"[..])
        );
        // An uncompressed body is never touched, whatever it looks like.
        let m = &decode_stored_messages(&stored(z.clone(), 0)).unwrap()[0];
        assert_eq!(m.body, z);
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let original = vec![0u8; 100_000];
        let bytes = stored(
            zlib(&original),
            sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB,
        );
        let ok = decode_stored_messages_with(&bytes, Some(100_000)).unwrap();
        assert_eq!(ok[0].body.len(), 100_000);
        let e = decode_stored_messages_with(&bytes, Some(99_999)).unwrap_err();
        assert_eq!(e, CodecError::InflatedBodyTooLarge { max: 99_999 });
        assert_eq!(
            e.to_string(),
            "the compressed body inflates to more than the limit of 99999 bytes"
        );
        // A zlib bomb is cut at the default limit, not inflated whole.
        let bomb = stored(
            zlib(&vec![0u8; DEFAULT_MAX_INFLATED_BODY + 1]),
            sys_flag::COMPRESSED,
        );
        assert_eq!(
            decode_stored_messages(&bomb).unwrap_err(),
            CodecError::InflatedBodyTooLarge {
                max: DEFAULT_MAX_INFLATED_BODY
            }
        );
    }

    #[test]
    fn other_codecs_and_garbage_are_clear_errors() {
        for (flag, name) in [
            (sys_flag::COMPRESSED | sys_flag::COMPRESSION_LZ4, "LZ4"),
            (sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZSTD, "ZSTD"),
            (sys_flag::COMPRESSED | 0x400, "an unknown codec"),
        ] {
            let e = decode_stored_messages(&stored(b"whatever".to_vec(), flag)).unwrap_err();
            assert_eq!(
                e,
                CodecError::UnsupportedCompression(sys_flag::compression_type(flag))
            );
            assert!(e.to_string().contains(name), "{e}");
            // As stored, they decode.
            assert!(decode_stored_messages_with(&stored(b"w".to_vec(), flag), None).is_ok());
        }
        let e = decode_stored_messages(&stored(b"not zlib at all".to_vec(), sys_flag::COMPRESSED))
            .unwrap_err();
        assert!(
            matches!(&e, CodecError::Malformed(w) if w.starts_with("compressed body")),
            "{e}"
        );
        // A cut zlib stream is an error too, not a short body.
        let mut z = zlib(&b"abc".repeat(1000));
        z.truncate(z.len() / 2);
        assert!(decode_stored_messages(&stored(z, sys_flag::COMPRESSED)).is_err());
    }

    #[test]
    fn start_of_month() {
        // 2024-02-29T12:00:00Z -> 2024-02-01T00:00:00Z
        assert_eq!(start_of_month_utc(1_709_208_000_000), 1_706_745_600_000);
        // 1969-12-31T23:59:59.999Z -> 1969-12-01T00:00:00Z
        assert_eq!(start_of_month_utc(-1), -2_678_400_000);
        // exactly the first instant of a month
        assert_eq!(start_of_month_utc(1_706_745_600_000), 1_706_745_600_000);
        // 2000-03-01 (leap century) -> itself
        assert_eq!(start_of_month_utc(951_868_800_000), 951_868_800_000);
    }

    #[test]
    fn month_delta_wraps_like_java() {
        let start = 1_706_745_600_000; // 2024-02-01
        assert_eq!(month_delta(start + 5), 5);
        let late = start + 28 * 86_400_000; // 2024-02-29, past 2^31 ms
        assert_eq!(month_delta(late), (28i64 * 86_400_000) as i32);
        assert!(month_delta(late) < 0);
    }
}
