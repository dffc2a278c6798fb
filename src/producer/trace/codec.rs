//! The trace data format of the Java client (`TraceDataEncoder`), both ways.
//!
//! A trace message's body is a run of records. Each record is its fields joined by
//! [`CONTENT_SEPARATOR`] (char 1) and ended by [`FIELD_SEPARATOR`] (char 2); the first field
//! names the record's [`TraceType`]. The Java names are the other way round
//! (`CONTENT_SPLITOR` = 1 separates fields, `FIELD_SPLITOR` = 2 ends a record); this module
//! names them by what they do.
//!
//! `Pub` (a send), 14 fields:
//!
//! ```text
//! Pub|timestamp|region|group|topic|msgId|tags|keys|storeHost|bodyLength|costTime|msgType|offsetMsgId|success
//! ```
//!
//! `EndTransaction` (a commit, rollback or unknown sent to the broker), 13 fields:
//!
//! ```text
//! EndTransaction|timestamp|region|group|topic|msgId|tags|keys|storeHost|msgType|transactionId|transactionState|fromTransactionCheck
//! ```
//!
//! - `timestamp` is Unix milliseconds; `costTime` whole milliseconds; `bodyLength` bytes;
//!   booleans are `true`/`false`; `msgType` is the ordinal of Java's `MessageType`
//!   ([`TraceMessageType`]); `transactionState` the name of Java's `LocalTransactionState`
//!   (`COMMIT_MESSAGE`, `ROLLBACK_MESSAGE`, `UNKNOW`).
//! - The group is the producer group and the topic the message's topic, both without the
//!   namespace.
//! - A message without tags or keys has the text `null` there: Java appends the `null` it
//!   gets from `Message.getTags()` / `getKeys()`, and readers of Java traces expect it.
//!
//! The trace message itself has as its keys (`KEYS`, space-separated) the message id and the
//! business keys of every record it holds, so the broker's index finds a message's traces by
//! its id ([`TraceRecord::trace_keys`]).

use std::fmt::{self, Write as _};

/// Separates the fields of a record (Java's `TraceConstants.CONTENT_SPLITOR`, char 1).
pub const CONTENT_SEPARATOR: char = '\u{1}';
/// Ends a record (Java's `TraceConstants.FIELD_SPLITOR`, char 2).
pub const FIELD_SEPARATOR: char = '\u{2}';
/// The default trace topic (Java's `TopicValidator.RMQ_SYS_TRACE_TOPIC`).
pub const DEFAULT_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// The region a record carries when the broker named none (Java's
/// `MixAll.DEFAULT_TRACE_REGION_ID`).
pub const DEFAULT_REGION: &str = "DefaultRegion";
/// What Java writes for a missing tags or keys field.
pub const NULL_TEXT: &str = "null";

/// The kind of a trace record (Java's `TraceType`, same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceType {
    /// A send.
    Pub,
    /// A recalled message (not written by this crate).
    Recall,
    /// Before a consumer's listener runs (not written by this crate).
    SubBefore,
    /// After a consumer's listener ran (not written by this crate).
    SubAfter,
    /// The end of a transaction: commit, rollback or unknown.
    EndTransaction,
}

impl TraceType {
    /// The name on the wire (`Pub`, `EndTransaction`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceType::Pub => "Pub",
            TraceType::Recall => "Recall",
            TraceType::SubBefore => "SubBefore",
            TraceType::SubAfter => "SubAfter",
            TraceType::EndTransaction => "EndTransaction",
        }
    }

    /// The type named `name` on the wire.
    pub fn from_name(name: &str) -> Option<TraceType> {
        Some(match name {
            "Pub" => TraceType::Pub,
            "Recall" => TraceType::Recall,
            "SubBefore" => TraceType::SubBefore,
            "SubAfter" => TraceType::SubAfter,
            "EndTransaction" => TraceType::EndTransaction,
            _ => return None,
        })
    }
}

/// The kind of message a record is about (Java's `MessageType`; written as its ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceMessageType {
    /// 0: an ordinary message (`Normal_Msg`).
    Normal,
    /// 1: a transaction's half message (`Trans_Msg_Half`).
    TransactionHalf,
    /// 2: a transaction's end (`Trans_msg_Commit`; every `EndTransaction` record has it,
    /// whatever the state).
    TransactionCommit,
    /// 3: a delayed or timed message (`Delay_Msg`).
    Delay,
    /// 4: an ordered message (`Order_Msg`; Java's producer never writes it).
    Order,
}

impl TraceMessageType {
    /// Java's ordinal.
    pub fn ordinal(self) -> u8 {
        match self {
            TraceMessageType::Normal => 0,
            TraceMessageType::TransactionHalf => 1,
            TraceMessageType::TransactionCommit => 2,
            TraceMessageType::Delay => 3,
            TraceMessageType::Order => 4,
        }
    }

    /// The type of Java's ordinal `n`.
    pub fn from_ordinal(n: u8) -> Option<TraceMessageType> {
        Some(match n {
            0 => TraceMessageType::Normal,
            1 => TraceMessageType::TransactionHalf,
            2 => TraceMessageType::TransactionCommit,
            3 => TraceMessageType::Delay,
            4 => TraceMessageType::Order,
            _ => return None,
        })
    }
}

/// A `Pub` record: one message sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubRecord {
    /// When the send started, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The broker's region (`MSG_REGION` of the send response).
    pub region_id: String,
    /// The producer group, without namespace.
    pub group: String,
    /// The message's topic, without namespace.
    pub topic: String,
    /// The client message id (`UNIQ_KEY`).
    pub msg_id: String,
    /// The tags, or `null`.
    pub tags: String,
    /// The business keys, space-separated, or `null`.
    pub keys: String,
    /// The broker address the message went to.
    pub store_host: String,
    /// The body length as the caller gave it, in bytes.
    pub body_length: i64,
    /// Time from the start of the attempt to its result, in milliseconds.
    pub cost_time_ms: i64,
    /// The kind of message.
    pub msg_type: TraceMessageType,
    /// The broker's offset message id (empty when there is none, as for oneway sends).
    pub offset_msg_id: String,
    /// Whether the broker answered `SEND_OK`.
    pub success: bool,
    /// The client host of old Java writers (a 15th field); never written here.
    pub client_host: Option<String>,
}

/// An `EndTransaction` record: a transaction's end sent to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTransactionRecord {
    /// When the end was sent, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The message's `MSG_REGION`, or [`DEFAULT_REGION`].
    pub region_id: String,
    /// The producer group, without namespace.
    pub group: String,
    /// The message's topic, without namespace.
    pub topic: String,
    /// The client message id of the half message.
    pub msg_id: String,
    /// The tags, or `null`.
    pub tags: String,
    /// The business keys, space-separated, or `null`.
    pub keys: String,
    /// The broker address the end went to.
    pub store_host: String,
    /// Always [`TraceMessageType::TransactionCommit`] when written by Java or this crate.
    pub msg_type: TraceMessageType,
    /// The transaction id.
    pub transaction_id: String,
    /// `COMMIT_MESSAGE`, `ROLLBACK_MESSAGE` or `UNKNOW`.
    pub transaction_state: String,
    /// Whether the end answered a broker's check-back.
    pub from_transaction_check: bool,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceRecord {
    /// A send.
    Pub(PubRecord),
    /// A transaction's end.
    EndTransaction(EndTransactionRecord),
    /// Another type (consumer records, recalls), fields as written (type name first).
    Other(Vec<String>),
}

impl TraceRecord {
    /// The client message id the record is about, if any.
    pub fn msg_id(&self) -> Option<&str> {
        match self {
            TraceRecord::Pub(p) => Some(&p.msg_id),
            TraceRecord::EndTransaction(e) => Some(&e.msg_id),
            TraceRecord::Other(_) => None,
        }
    }

    /// The keys a trace message holding this record gets: the message id, then each business
    /// key (Java's `TraceTransferBean.transKey`).
    pub fn trace_keys(&self) -> Vec<&str> {
        let (id, keys) = match self {
            TraceRecord::Pub(p) => (&p.msg_id, &p.keys),
            TraceRecord::EndTransaction(e) => (&e.msg_id, &e.keys),
            TraceRecord::Other(_) => return Vec::new(),
        };
        let mut out = vec![id.as_str()];
        if keys != NULL_TEXT {
            out.extend(keys.split(' ').filter(|k| !k.is_empty()));
        }
        out
    }

    /// Appends the record, ended by [`FIELD_SEPARATOR`], to `out`.
    pub fn encode_into(&self, out: &mut String) {
        match self {
            TraceRecord::Pub(p) => write_pub(
                out,
                &PubFields {
                    timestamp_ms: p.timestamp_ms,
                    region_id: &p.region_id,
                    group: &p.group,
                    topic: &p.topic,
                    msg_id: &p.msg_id,
                    tags: &p.tags,
                    keys: &p.keys,
                    store_host: &p.store_host,
                    body_length: p.body_length,
                    cost_time_ms: p.cost_time_ms,
                    msg_type: p.msg_type,
                    offset_msg_id: &p.offset_msg_id,
                    success: p.success,
                },
            ),
            TraceRecord::EndTransaction(e) => write_end(
                out,
                &EndFields {
                    timestamp_ms: e.timestamp_ms,
                    region_id: &e.region_id,
                    group: &e.group,
                    topic: &e.topic,
                    msg_id: &e.msg_id,
                    tags: &e.tags,
                    keys: &e.keys,
                    store_host: &e.store_host,
                    msg_type: e.msg_type,
                    transaction_id: &e.transaction_id,
                    transaction_state: &e.transaction_state,
                    from_transaction_check: e.from_transaction_check,
                },
            ),
            TraceRecord::Other(fields) => {
                let mut w = Fields { out, first: true };
                for f in fields {
                    w.field(f);
                }
                out_end(w.out);
            }
        }
    }

    /// The record as the wire has it, ended by [`FIELD_SEPARATOR`].
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(256);
        self.encode_into(&mut s);
        s
    }
}

/// A `Pub` record's fields, borrowed (the send hook encodes straight from the message).
pub(crate) struct PubFields<'a> {
    pub(crate) timestamp_ms: i64,
    pub(crate) region_id: &'a str,
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) msg_id: &'a str,
    pub(crate) tags: &'a str,
    pub(crate) keys: &'a str,
    pub(crate) store_host: &'a str,
    pub(crate) body_length: i64,
    pub(crate) cost_time_ms: i64,
    pub(crate) msg_type: TraceMessageType,
    pub(crate) offset_msg_id: &'a str,
    pub(crate) success: bool,
}

/// An `EndTransaction` record's fields, borrowed.
pub(crate) struct EndFields<'a> {
    pub(crate) timestamp_ms: i64,
    pub(crate) region_id: &'a str,
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) msg_id: &'a str,
    pub(crate) tags: &'a str,
    pub(crate) keys: &'a str,
    pub(crate) store_host: &'a str,
    pub(crate) msg_type: TraceMessageType,
    pub(crate) transaction_id: &'a str,
    pub(crate) transaction_state: &'a str,
    pub(crate) from_transaction_check: bool,
}

/// Appends a `Pub` record (Java's field order), ended by [`FIELD_SEPARATOR`].
pub(crate) fn write_pub(out: &mut String, p: &PubFields<'_>) {
    let mut w = Fields { out, first: true };
    w.text(TraceType::Pub.as_str());
    w.field(p.timestamp_ms);
    w.text(p.region_id);
    w.text(p.group);
    w.text(p.topic);
    w.text(p.msg_id);
    w.text(p.tags);
    w.text(p.keys);
    w.text(p.store_host);
    w.field(p.body_length);
    w.field(p.cost_time_ms);
    w.field(p.msg_type.ordinal());
    w.text(p.offset_msg_id);
    w.flag(p.success);
    out_end(w.out);
}

/// Appends an `EndTransaction` record (Java's field order), ended by [`FIELD_SEPARATOR`].
pub(crate) fn write_end(out: &mut String, e: &EndFields<'_>) {
    let mut w = Fields { out, first: true };
    w.text(TraceType::EndTransaction.as_str());
    w.field(e.timestamp_ms);
    w.text(e.region_id);
    w.text(e.group);
    w.text(e.topic);
    w.text(e.msg_id);
    w.text(e.tags);
    w.text(e.keys);
    w.text(e.store_host);
    w.field(e.msg_type.ordinal());
    w.text(e.transaction_id);
    w.text(e.transaction_state);
    w.flag(e.from_transaction_check);
    out_end(w.out);
}

/// The traced topic of an encoded `Pub` or `EndTransaction` record (field 4 of both).
pub(crate) fn encoded_topic(record: &str) -> &str {
    record.split(CONTENT_SEPARATOR).nth(4).unwrap_or("")
}

/// The keys a trace message holding an encoded `Pub` or `EndTransaction` record gets: its
/// message id (field 5), then its business keys (field 7) unless `null`.
pub(crate) fn encoded_trace_keys(record: &str) -> impl Iterator<Item = &str> {
    let mut fields = record.split(CONTENT_SEPARATOR).skip(5);
    let id = fields.next().filter(|id| !id.is_empty());
    let keys = fields.nth(1).filter(|k| *k != NULL_TEXT).unwrap_or("");
    id.into_iter()
        .chain(keys.split(' ').filter(|k| !k.is_empty()))
}

struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(CONTENT_SEPARATOR);
        }
        self.first = false;
    }

    fn field(&mut self, value: impl fmt::Display) {
        self.sep();
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{value}");
    }

    fn text(&mut self, value: &str) {
        self.sep();
        self.out.push_str(value);
    }

    fn flag(&mut self, value: bool) {
        self.text(if value { "true" } else { "false" });
    }
}

fn out_end(out: &mut String) {
    out.push(FIELD_SEPARATOR);
}

/// Why a trace body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceDecodeError {
    /// The index of the bad record in the body (0 is the first).
    pub record: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for TraceDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace record {}: {}", self.record, self.reason)
    }
}

impl std::error::Error for TraceDecodeError {}

/// Decodes a trace message's body (Java's `TraceDataEncoder.decoderFromTraceDataString`).
///
/// `Pub` records of 13 fields (no offset id), 14 (today's) and 15 or more (an old writer's
/// client host) are read as Java reads them; types other than `Pub` and `EndTransaction` come
/// back as [`TraceRecord::Other`]. A record of a known type with too few fields or a field
/// that does not parse is an error naming the record; nothing panics.
///
/// ```
/// use rocketmq_mio::trace::{decode_trace_data, TraceRecord};
///
/// let body = "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}GID\u{1}orders\u{1}ID1\u{1}created\u{1}\
///             o-42\u{1}10.0.0.1:10911\u{1}5\u{1}3\u{1}0\u{1}OFF1\u{1}true\u{2}";
/// let records = decode_trace_data(body)?;
/// match &records[0] {
///     TraceRecord::Pub(p) => assert_eq!((p.topic.as_str(), p.body_length, p.success), ("orders", 5, true)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), rocketmq_mio::trace::TraceDecodeError>(())
/// ```
pub fn decode_trace_data(data: &str) -> Result<Vec<TraceRecord>, TraceDecodeError> {
    let mut out = Vec::new();
    for (i, record) in data
        .split(FIELD_SEPARATOR)
        .filter(|r| !r.is_empty())
        .enumerate()
    {
        let fields: Vec<&str> = record.split(CONTENT_SEPARATOR).collect();
        let err = |reason: String| TraceDecodeError { record: i, reason };
        let need = |n: usize| {
            if fields.len() < n {
                Err(err(format!(
                    "{} has {} fields, at least {n} expected",
                    fields[0],
                    fields.len()
                )))
            } else {
                Ok(())
            }
        };
        let int = |idx: usize, name: &str| -> Result<i64, TraceDecodeError> {
            fields[idx].parse::<i64>().map_err(|_| {
                err(format!(
                    "{name} {:?} (field {idx}) is not an integer",
                    fields[idx]
                ))
            })
        };
        let boolean = |idx: usize| fields[idx] == "true";
        let msg_type = |idx: usize| -> Result<TraceMessageType, TraceDecodeError> {
            fields[idx]
                .parse::<u8>()
                .ok()
                .and_then(TraceMessageType::from_ordinal)
                .ok_or_else(|| {
                    err(format!(
                        "message type {:?} (field {idx}) is not an ordinal 0..=4",
                        fields[idx]
                    ))
                })
        };
        let s = |idx: usize| fields[idx].to_string();
        match TraceType::from_name(fields[0]) {
            Some(TraceType::Pub) => {
                need(13)?;
                let (offset_msg_id, success, client_host) = match fields.len() {
                    13 => (String::new(), boolean(12), None),
                    14 => (s(12), boolean(13), None),
                    _ => (s(12), boolean(13), Some(s(14))),
                };
                out.push(TraceRecord::Pub(PubRecord {
                    timestamp_ms: int(1, "timestamp")?,
                    region_id: s(2),
                    group: s(3),
                    topic: s(4),
                    msg_id: s(5),
                    tags: s(6),
                    keys: s(7),
                    store_host: s(8),
                    body_length: int(9, "body length")?,
                    cost_time_ms: int(10, "cost time")?,
                    msg_type: msg_type(11)?,
                    offset_msg_id,
                    success,
                    client_host,
                }));
            }
            Some(TraceType::EndTransaction) => {
                need(13)?;
                out.push(TraceRecord::EndTransaction(EndTransactionRecord {
                    timestamp_ms: int(1, "timestamp")?,
                    region_id: s(2),
                    group: s(3),
                    topic: s(4),
                    msg_id: s(5),
                    tags: s(6),
                    keys: s(7),
                    store_host: s(8),
                    msg_type: msg_type(9)?,
                    transaction_id: s(10),
                    transaction_state: s(11),
                    from_transaction_check: boolean(12),
                }));
            }
            _ => out.push(TraceRecord::Other(
                fields.iter().map(|f| f.to_string()).collect(),
            )),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pub_record() -> PubRecord {
        PubRecord {
            timestamp_ms: 1_700_000_000_123,
            region_id: "DefaultRegion".into(),
            group: "GID_ORDERS".into(),
            topic: "orders".into(),
            msg_id: "7F00000100002A9F0000000000000001".into(),
            tags: "created".into(),
            keys: "o-42 c-7".into(),
            store_host: "127.0.0.1:10911".into(),
            body_length: 16,
            cost_time_ms: 3,
            msg_type: TraceMessageType::Normal,
            offset_msg_id: "7F00000100002A9F0000000000000100".into(),
            success: true,
            client_host: None,
        }
    }

    /// The golden string is written out by hand from Java's `encoderFromContextBean` (`Pub`
    /// case): type, timestamp, region, group, topic, msgId, tags, keys, storeHost, bodyLength,
    /// costTime, msgType ordinal, offsetMsgId, success, each followed by char 1 except the
    /// last, which is followed by char 2.
    #[test]
    fn pub_golden() {
        let golden = "Pub\u{1}1700000000123\u{1}DefaultRegion\u{1}GID_ORDERS\u{1}orders\u{1}\
                      7F00000100002A9F0000000000000001\u{1}created\u{1}o-42 c-7\u{1}\
                      127.0.0.1:10911\u{1}16\u{1}3\u{1}0\u{1}\
                      7F00000100002A9F0000000000000100\u{1}true\u{2}";
        let r = TraceRecord::Pub(pub_record());
        assert_eq!(r.encode(), golden);
        assert_eq!(decode_trace_data(golden).unwrap(), vec![r.clone()]);
        assert_eq!(
            r.trace_keys(),
            ["7F00000100002A9F0000000000000001", "o-42", "c-7"]
        );
        assert_eq!(encoded_topic(golden), "orders");
        assert_eq!(
            encoded_trace_keys(golden).collect::<Vec<_>>(),
            r.trace_keys()
        );
    }

    /// A message without tags and keys, sent oneway (no offset id), failed status, delayed.
    #[test]
    fn pub_golden_nulls_and_empty_offset() {
        let mut p = pub_record();
        p.tags = NULL_TEXT.into();
        p.keys = NULL_TEXT.into();
        p.offset_msg_id = String::new();
        p.success = false;
        p.msg_type = TraceMessageType::Delay;
        let golden = "Pub\u{1}1700000000123\u{1}DefaultRegion\u{1}GID_ORDERS\u{1}orders\u{1}\
                      7F00000100002A9F0000000000000001\u{1}null\u{1}null\u{1}\
                      127.0.0.1:10911\u{1}16\u{1}3\u{1}3\u{1}\u{1}false\u{2}";
        let r = TraceRecord::Pub(p);
        assert_eq!(r.encode(), golden);
        assert_eq!(decode_trace_data(golden).unwrap(), vec![r.clone()]);
        assert_eq!(r.trace_keys(), ["7F00000100002A9F0000000000000001"]);
        assert_eq!(
            encoded_trace_keys(golden).collect::<Vec<_>>(),
            ["7F00000100002A9F0000000000000001"]
        );
    }

    /// From Java's `EndTransaction` case: type, timestamp, region, group, topic, msgId, tags,
    /// keys, storeHost, msgType ordinal (2, `Trans_msg_Commit`), transactionId, the state's
    /// enum name, fromTransactionCheck.
    #[test]
    fn end_transaction_golden() {
        let r = TraceRecord::EndTransaction(EndTransactionRecord {
            timestamp_ms: 1_700_000_000_456,
            region_id: DEFAULT_REGION.into(),
            group: "GID_TX".into(),
            topic: "payments".into(),
            msg_id: "ID2".into(),
            tags: "paid".into(),
            keys: NULL_TEXT.into(),
            store_host: "127.0.0.1:10911".into(),
            msg_type: TraceMessageType::TransactionCommit,
            transaction_id: "ID2".into(),
            transaction_state: "ROLLBACK_MESSAGE".into(),
            from_transaction_check: true,
        });
        let golden = "EndTransaction\u{1}1700000000456\u{1}DefaultRegion\u{1}GID_TX\u{1}\
                      payments\u{1}ID2\u{1}paid\u{1}null\u{1}127.0.0.1:10911\u{1}2\u{1}ID2\u{1}\
                      ROLLBACK_MESSAGE\u{1}true\u{2}";
        assert_eq!(r.encode(), golden);
        assert_eq!(decode_trace_data(golden).unwrap(), vec![r]);
    }

    #[test]
    fn several_records_and_java_variants() {
        let one = TraceRecord::Pub(pub_record()).encode();
        // 13 fields (no offset id) and 15 (an old writer's client host), as Java reads them.
        let thirteen =
            "Pub\u{1}1\u{1}R\u{1}G\u{1}T\u{1}M\u{1}t\u{1}k\u{1}h:1\u{1}2\u{1}3\u{1}1\u{1}true\u{2}";
        let fifteen = "Pub\u{1}1\u{1}R\u{1}G\u{1}T\u{1}M\u{1}t\u{1}k\u{1}h:1\u{1}2\u{1}3\u{1}0\u{1}O\u{1}false\u{1}10.0.0.9\u{2}";
        let sub = "SubAfter\u{1}req\u{1}M\u{1}5\u{1}true\u{1}k\u{1}0\u{2}";
        let body = format!("{one}{thirteen}{fifteen}{sub}");
        let records = decode_trace_data(&body).unwrap();
        assert_eq!(records.len(), 4);
        match &records[1] {
            TraceRecord::Pub(p) => {
                assert_eq!(p.offset_msg_id, "");
                assert!(p.success);
                assert_eq!(p.msg_type, TraceMessageType::TransactionHalf);
            }
            r => panic!("{r:?}"),
        }
        match &records[2] {
            TraceRecord::Pub(p) => {
                assert_eq!(p.offset_msg_id, "O");
                assert!(!p.success);
                assert_eq!(p.client_host.as_deref(), Some("10.0.0.9"));
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(&records[3], TraceRecord::Other(f) if f[0] == "SubAfter"));
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let short = "Pub\u{1}1\u{1}R\u{2}";
        let e = decode_trace_data(short).unwrap_err();
        assert_eq!(e.record, 0);
        assert!(e.reason.contains("at least 13"), "{e}");
        let bad_int = "Pub\u{1}x\u{1}R\u{1}G\u{1}T\u{1}M\u{1}t\u{1}k\u{1}h:1\u{1}2\u{1}3\u{1}1\u{1}O\u{1}true\u{2}";
        assert!(decode_trace_data(bad_int)
            .unwrap_err()
            .reason
            .contains("timestamp"));
        let bad_type = "Pub\u{1}1\u{1}R\u{1}G\u{1}T\u{1}M\u{1}t\u{1}k\u{1}h:1\u{1}2\u{1}3\u{1}9\u{1}O\u{1}true\u{2}";
        assert!(decode_trace_data(bad_type)
            .unwrap_err()
            .reason
            .contains("message type"));
        let end_short = format!(
            "{}EndTransaction\u{1}1\u{2}",
            TraceRecord::Pub(pub_record()).encode()
        );
        assert_eq!(decode_trace_data(&end_short).unwrap_err().record, 1);
        assert_eq!(decode_trace_data("").unwrap(), vec![]);
        // Garbage without separators is one record of an unknown type.
        assert_eq!(
            decode_trace_data("hello").unwrap(),
            vec![TraceRecord::Other(vec!["hello".into()])]
        );
    }
}
