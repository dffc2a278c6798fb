//! Typed custom headers, to and from `extFields` (protocol.md section 4).
//!
//! Every header converts to and from [`ExtFields`] through [`CommandHeader`]. Keys are the Java
//! field names (protocol.md 2.6); values are strings: integers in plain decimal, booleans
//! `"true"`/`"false"`, optional fields omitted when `None`.
//!
//! Reading is as lenient as Java's `decodeCommandCustomHeader` and no more: unknown keys are
//! ignored, booleans follow `Boolean.parseBoolean` (`"true"` in any case is true, anything else
//! false), integers may carry surrounding blanks. A required field that is missing is
//! [`CodecError::MissingField`], one that does not parse is [`CodecError::InvalidField`]; both
//! name the key as it appears on the wire (`"b"` for the V2 topic, `"topic"` for V1). An optional
//! string field that is present but empty reads as `None` (the binary header cannot carry empty
//! values, so `Some("")` could not survive a round trip anyway) and is never written.
//!
//! ```
//! use rocketmq_mio::protocol::header::{CommandHeader, GetRouteInfoRequestHeader};
//! use rocketmq_mio::protocol::ExtFields;
//!
//! let header = GetRouteInfoRequestHeader::new("orders");
//! let mut fields = ExtFields::new();
//! header.write_to(&mut fields);
//! assert_eq!(fields.get("topic"), Some("orders"));
//! assert_eq!(fields.get("acceptStandardJsonOnly"), Some("true"));
//! assert_eq!(GetRouteInfoRequestHeader::read_from(&fields).unwrap(), header);
//! ```

use super::frame::{CodecError, ExtFields};

/// A custom header that lives in a command's `extFields`.
pub trait CommandHeader: Sized {
    /// Writes the header's fields into `fields` (replacing values of the same keys).
    fn write_to(&self, fields: &mut ExtFields);

    /// Reads the header from `fields`.
    ///
    /// # Errors
    /// [`CodecError::MissingField`] or [`CodecError::InvalidField`], naming the key.
    fn read_from(fields: &ExtFields) -> Result<Self, CodecError>;

    /// The header as a new [`ExtFields`].
    fn to_ext_fields(&self) -> ExtFields {
        let mut fields = ExtFields::with_capacity(16);
        self.write_to(&mut fields);
        fields
    }
}

fn put_int(fields: &mut ExtFields, key: &'static str, v: i64) {
    fields.insert_int(key, v);
}

fn put_bool(fields: &mut ExtFields, key: &'static str, v: bool) {
    fields.insert_bool(key, v);
}

fn put_str(fields: &mut ExtFields, key: &'static str, v: &str) {
    fields.insert(key, v);
}

fn put_opt_str(fields: &mut ExtFields, key: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        if !v.is_empty() {
            fields.insert(key, v);
        }
    }
}

fn put_opt_int(fields: &mut ExtFields, key: &'static str, v: Option<i64>) {
    if let Some(v) = v {
        put_int(fields, key, v);
    }
}

fn req_str(fields: &ExtFields, key: &'static str) -> Result<String, CodecError> {
    fields.required(key).map(str::to_owned)
}

fn opt_str(fields: &ExtFields, key: &str) -> Option<String> {
    fields.get(key).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn opt_bool(fields: &ExtFields, key: &str, default: bool) -> bool {
    fields.optional_bool(key).unwrap_or(default)
}

fn req_bool(fields: &ExtFields, key: &'static str) -> Result<bool, CodecError> {
    fields
        .optional_bool(key)
        .ok_or(CodecError::MissingField(key))
}

/// GET_ROUTEINFO_BY_TOPIC (105) request header (protocol.md 4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetRouteInfoRequestHeader {
    /// The topic (`topic`, required).
    pub topic: String,
    /// Ask for standard JSON with quoted map keys (`acceptStandardJsonOnly`; written only when
    /// true, as Java leaves a null `Boolean` out).
    pub accept_standard_json_only: bool,
}

impl GetRouteInfoRequestHeader {
    /// A request for `topic`, asking for standard JSON.
    pub fn new(topic: impl Into<String>) -> Self {
        GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: true,
        }
    }
}

impl CommandHeader for GetRouteInfoRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_str(fields, "topic", &self.topic);
        if self.accept_standard_json_only {
            put_bool(fields, "acceptStandardJsonOnly", true);
        }
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(GetRouteInfoRequestHeader {
            topic: req_str(fields, "topic")?,
            accept_standard_json_only: opt_bool(fields, "acceptStandardJsonOnly", false),
        })
    }
}

/// The send request header, V1 (codes 10, 324: long names) and V2 (codes 310, 320, 325: the
/// single letters `a`..`n`), protocol.md 4.2 and 4.3.
///
/// [`CommandHeader`] reads and writes the V1 form; [`SendMessageRequestHeader::write_v2`] and
/// [`SendMessageRequestHeader::read_v2`] the V2 form. [`SendMessageRequestHeader::read_any`]
/// takes either.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    /// Producer group (`producerGroup` / `a`, required).
    pub producer_group: String,
    /// Topic (`topic` / `b`, required).
    pub topic: String,
    /// Topic to create the topic from, usually `TBW102` (`defaultTopic` / `c`, required).
    pub default_topic: String,
    /// Queue count for auto-created topics, usually 4 (`defaultTopicQueueNums` / `d`, required).
    pub default_topic_queue_nums: i32,
    /// Target queue; negative lets the broker pick (`queueId` / `e`, required).
    pub queue_id: i32,
    /// sysFlag bits, see [`super::message_codec::sys_flag`] (`sysFlag` / `f`, required).
    pub sys_flag: i32,
    /// When the request was built, epoch ms (`bornTimestamp` / `g`, required).
    pub born_timestamp: i64,
    /// The user flag (`flag` / `h`, required).
    pub flag: i32,
    /// The encoded properties string (`properties` / `i`; written even when empty, read as
    /// empty when absent).
    pub properties: String,
    /// Reconsume count (`reconsumeTimes` / `j`); Java sends `0`.
    pub reconsume_times: Option<i32>,
    /// Unit mode (`unitMode` / `k`; always written).
    pub unit_mode: bool,
    /// Batch (`batch` / `m`; always written, `true` for SEND_BATCH_MESSAGE).
    pub batch: bool,
    /// Max reconsume times, retry topics only (`maxReconsumeTimes` / `l`).
    pub max_reconsume_times: Option<i32>,
    /// Broker name of the target queue (`bname` / `n`).
    pub broker_name: Option<String>,
}

impl SendMessageRequestHeader {
    /// Writes the V2 form (single-letter keys `a`..`n`), as SEND_MESSAGE_V2 (310),
    /// SEND_BATCH_MESSAGE (320) and SEND_REPLY_MESSAGE_V2 (325) carry it.
    pub fn write_v2(&self, fields: &mut ExtFields) {
        // Keys in sorted order: each insert appends.
        put_str(fields, "a", &self.producer_group);
        put_str(fields, "b", &self.topic);
        put_str(fields, "c", &self.default_topic);
        put_int(fields, "d", self.default_topic_queue_nums.into());
        put_int(fields, "e", self.queue_id.into());
        put_int(fields, "f", self.sys_flag.into());
        put_int(fields, "g", self.born_timestamp);
        put_int(fields, "h", self.flag.into());
        put_str(fields, "i", &self.properties);
        put_opt_int(fields, "j", self.reconsume_times.map(i64::from));
        put_bool(fields, "k", self.unit_mode);
        put_opt_int(fields, "l", self.max_reconsume_times.map(i64::from));
        put_bool(fields, "m", self.batch);
        put_opt_str(fields, "n", &self.broker_name);
    }

    /// Reads the V2 form.
    ///
    /// # Errors
    /// A missing or unparsable required field, named by its letter.
    pub fn read_v2(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(SendMessageRequestHeader {
            producer_group: req_str(fields, "a")?,
            topic: req_str(fields, "b")?,
            default_topic: req_str(fields, "c")?,
            default_topic_queue_nums: fields.required_i32("d")?,
            queue_id: fields.required_i32("e")?,
            sys_flag: fields.required_i32("f")?,
            born_timestamp: fields.required_i64("g")?,
            flag: fields.required_i32("h")?,
            properties: fields.get("i").unwrap_or("").to_owned(),
            reconsume_times: fields.optional_i32("j")?,
            unit_mode: opt_bool(fields, "k", false),
            max_reconsume_times: fields.optional_i32("l")?,
            batch: opt_bool(fields, "m", false),
            broker_name: opt_str(fields, "n"),
        })
    }

    /// Writes the V1 form (long names), as SEND_MESSAGE (10) and SEND_REPLY_MESSAGE (324) carry it.
    pub fn write_v1(&self, fields: &mut ExtFields) {
        put_str(fields, "producerGroup", &self.producer_group);
        put_str(fields, "topic", &self.topic);
        put_str(fields, "defaultTopic", &self.default_topic);
        put_int(
            fields,
            "defaultTopicQueueNums",
            self.default_topic_queue_nums.into(),
        );
        put_int(fields, "queueId", self.queue_id.into());
        put_int(fields, "sysFlag", self.sys_flag.into());
        put_int(fields, "bornTimestamp", self.born_timestamp);
        put_int(fields, "flag", self.flag.into());
        put_str(fields, "properties", &self.properties);
        put_opt_int(
            fields,
            "reconsumeTimes",
            self.reconsume_times.map(i64::from),
        );
        put_bool(fields, "unitMode", self.unit_mode);
        put_bool(fields, "batch", self.batch);
        put_opt_int(
            fields,
            "maxReconsumeTimes",
            self.max_reconsume_times.map(i64::from),
        );
        put_opt_str(fields, "bname", &self.broker_name);
    }

    /// Reads the V1 form.
    ///
    /// # Errors
    /// A missing or unparsable required field, named by its Java name.
    pub fn read_v1(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(SendMessageRequestHeader {
            producer_group: req_str(fields, "producerGroup")?,
            topic: req_str(fields, "topic")?,
            default_topic: req_str(fields, "defaultTopic")?,
            default_topic_queue_nums: fields.required_i32("defaultTopicQueueNums")?,
            queue_id: fields.required_i32("queueId")?,
            sys_flag: fields.required_i32("sysFlag")?,
            born_timestamp: fields.required_i64("bornTimestamp")?,
            flag: fields.required_i32("flag")?,
            properties: fields.get("properties").unwrap_or("").to_owned(),
            reconsume_times: fields.optional_i32("reconsumeTimes")?,
            unit_mode: opt_bool(fields, "unitMode", false),
            batch: opt_bool(fields, "batch", false),
            max_reconsume_times: fields.optional_i32("maxReconsumeTimes")?,
            broker_name: opt_str(fields, "bname"),
        })
    }

    /// Reads whichever form is present: V2 if the fields have the V2 topic key `b`, else V1
    /// (what a broker does for the send codes).
    ///
    /// # Errors
    /// As [`SendMessageRequestHeader::read_v1`] / [`SendMessageRequestHeader::read_v2`].
    pub fn read_any(fields: &ExtFields) -> Result<Self, CodecError> {
        if fields.get("b").is_some() {
            Self::read_v2(fields)
        } else {
            Self::read_v1(fields)
        }
    }
}

impl CommandHeader for SendMessageRequestHeader {
    /// The V1 form.
    fn write_to(&self, fields: &mut ExtFields) {
        self.write_v1(fields);
    }

    /// The V1 form.
    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Self::read_v1(fields)
    }
}

/// The response header of a send (protocol.md 4.4), plus the two extra keys every broker adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageResponseHeader {
    /// The offset message id; for a batch, the ids joined with `,` (`msgId`, required).
    pub msg_id: String,
    /// The queue the message went to (`queueId`, required).
    pub queue_id: i32,
    /// Its queue offset; for a batch, the first one's (`queueOffset`, required).
    pub queue_offset: i64,
    /// 5.x brokers: the message's `UNIQ_KEY` (`transactionId`).
    pub transaction_id: Option<String>,
    /// 5.x inner batches (`batchUniqId`).
    pub batch_uniq_id: Option<String>,
    /// 5.3.2+, delay/timer messages (`recallHandle`).
    pub recall_handle: Option<String>,
    /// The broker's region (`MSG_REGION`).
    pub region_id: Option<String>,
    /// Whether the broker traces (`TRACE_ON`, `"true"`/`"false"`).
    pub trace_on: Option<bool>,
}

impl CommandHeader for SendMessageResponseHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_str(fields, "msgId", &self.msg_id);
        put_int(fields, "queueId", self.queue_id.into());
        put_int(fields, "queueOffset", self.queue_offset);
        put_opt_str(fields, "transactionId", &self.transaction_id);
        put_opt_str(fields, "batchUniqId", &self.batch_uniq_id);
        put_opt_str(fields, "recallHandle", &self.recall_handle);
        put_opt_str(fields, "MSG_REGION", &self.region_id);
        if let Some(t) = self.trace_on {
            put_bool(fields, "TRACE_ON", t);
        }
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(SendMessageResponseHeader {
            msg_id: req_str(fields, "msgId")?,
            queue_id: fields.required_i32("queueId")?,
            queue_offset: fields.required_i64("queueOffset")?,
            transaction_id: opt_str(fields, "transactionId"),
            batch_uniq_id: opt_str(fields, "batchUniqId"),
            recall_handle: opt_str(fields, "recallHandle"),
            region_id: opt_str(fields, "MSG_REGION"),
            trace_on: fields.optional_bool("TRACE_ON"),
        })
    }
}

/// END_TRANSACTION (37) request header (protocol.md 4.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndTransactionRequestHeader {
    /// 5.x: the message topic (`topic`).
    pub topic: Option<String>,
    /// Must equal the half message's `PGROUP` (`producerGroup`, required).
    pub producer_group: String,
    /// The half message's queue offset (`tranStateTableOffset`, required).
    pub tran_state_table_offset: i64,
    /// The half message's commit-log offset (`commitLogOffset`, required).
    pub commit_log_offset: i64,
    /// 0 unknown, 8 commit, 12 rollback (`commitOrRollback`, required); see
    /// [`super::message_codec::sys_flag`].
    pub commit_or_rollback: i32,
    /// True when answering a check-back (`fromTransactionCheck`; always written).
    pub from_transaction_check: bool,
    /// The message's `UNIQ_KEY` (`msgId`, required).
    pub msg_id: String,
    /// From the send response or the check request (`transactionId`).
    pub transaction_id: Option<String>,
    /// Broker name (`bname`).
    pub broker_name: Option<String>,
}

impl CommandHeader for EndTransactionRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_opt_str(fields, "topic", &self.topic);
        put_str(fields, "producerGroup", &self.producer_group);
        put_int(fields, "tranStateTableOffset", self.tran_state_table_offset);
        put_int(fields, "commitLogOffset", self.commit_log_offset);
        put_int(fields, "commitOrRollback", self.commit_or_rollback.into());
        put_bool(fields, "fromTransactionCheck", self.from_transaction_check);
        put_str(fields, "msgId", &self.msg_id);
        put_opt_str(fields, "transactionId", &self.transaction_id);
        put_opt_str(fields, "bname", &self.broker_name);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(EndTransactionRequestHeader {
            topic: opt_str(fields, "topic"),
            producer_group: req_str(fields, "producerGroup")?,
            tran_state_table_offset: fields.required_i64("tranStateTableOffset")?,
            commit_log_offset: fields.required_i64("commitLogOffset")?,
            commit_or_rollback: fields.required_i32("commitOrRollback")?,
            from_transaction_check: opt_bool(fields, "fromTransactionCheck", false),
            msg_id: req_str(fields, "msgId")?,
            transaction_id: opt_str(fields, "transactionId"),
            broker_name: opt_str(fields, "bname"),
        })
    }
}

/// CHECK_TRANSACTION_STATE (39) request header, broker to client (protocol.md 4.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckTransactionStateRequestHeader {
    /// 5.x: the real topic of the half message (`topic`).
    pub topic: Option<String>,
    /// Queue offset of the re-put half message (`tranStateTableOffset`, required).
    pub tran_state_table_offset: i64,
    /// Commit-log offset of the re-put half message (`commitLogOffset`, required).
    pub commit_log_offset: i64,
    /// The `UNIQ_KEY` (`msgId`).
    pub msg_id: Option<String>,
    /// Same as `msg_id` (`transactionId`).
    pub transaction_id: Option<String>,
    /// The half message's offset id (`offsetMsgId`; brokers may send it empty, read as `None`).
    pub offset_msg_id: Option<String>,
    /// Broker name (`bname`).
    pub broker_name: Option<String>,
}

impl CommandHeader for CheckTransactionStateRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_opt_str(fields, "topic", &self.topic);
        put_int(fields, "tranStateTableOffset", self.tran_state_table_offset);
        put_int(fields, "commitLogOffset", self.commit_log_offset);
        put_opt_str(fields, "msgId", &self.msg_id);
        put_opt_str(fields, "transactionId", &self.transaction_id);
        put_opt_str(fields, "offsetMsgId", &self.offset_msg_id);
        put_opt_str(fields, "bname", &self.broker_name);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(CheckTransactionStateRequestHeader {
            topic: opt_str(fields, "topic"),
            tran_state_table_offset: fields.required_i64("tranStateTableOffset")?,
            commit_log_offset: fields.required_i64("commitLogOffset")?,
            msg_id: opt_str(fields, "msgId"),
            transaction_id: opt_str(fields, "transactionId"),
            offset_msg_id: opt_str(fields, "offsetMsgId"),
            broker_name: opt_str(fields, "bname"),
        })
    }
}

/// UNREGISTER_CLIENT (35) request header (protocol.md 4.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterClientRequestHeader {
    /// The client id, as in heartbeats (`clientID`, required).
    pub client_id: String,
    /// The producer group being unregistered (`producerGroup`).
    pub producer_group: Option<String>,
    /// The consumer group being unregistered (`consumerGroup`).
    pub consumer_group: Option<String>,
}

impl CommandHeader for UnregisterClientRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_str(fields, "clientID", &self.client_id);
        put_opt_str(fields, "producerGroup", &self.producer_group);
        put_opt_str(fields, "consumerGroup", &self.consumer_group);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(UnregisterClientRequestHeader {
            client_id: req_str(fields, "clientID")?,
            producer_group: opt_str(fields, "producerGroup"),
            consumer_group: opt_str(fields, "consumerGroup"),
        })
    }
}

/// VIEW_MESSAGE_BY_ID (33) request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewMessageByIdRequestHeader {
    /// The commit-log offset (`offset`, required).
    pub offset: i64,
}

impl CommandHeader for ViewMessageByIdRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_int(fields, "offset", self.offset);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(ViewMessageByIdRequestHeader {
            offset: fields.required_i64("offset")?,
        })
    }
}

/// GET_MAX_OFFSET (30) request header (protocol.md 4.9).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetMaxOffsetRequestHeader {
    /// The topic (`topic`, required).
    pub topic: String,
    /// The queue (`queueId`, required).
    pub queue_id: i32,
    /// Committed offset only (`committed`; Java always sends `true`; absent reads as true).
    pub committed: bool,
    /// Broker name (`bname`).
    pub broker_name: Option<String>,
}

impl CommandHeader for GetMaxOffsetRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_str(fields, "topic", &self.topic);
        put_int(fields, "queueId", self.queue_id.into());
        put_bool(fields, "committed", self.committed);
        put_opt_str(fields, "bname", &self.broker_name);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(GetMaxOffsetRequestHeader {
            topic: req_str(fields, "topic")?,
            queue_id: fields.required_i32("queueId")?,
            committed: opt_bool(fields, "committed", true),
            broker_name: opt_str(fields, "bname"),
        })
    }
}

/// GET_MAX_OFFSET (30) response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetMaxOffsetResponseHeader {
    /// The max offset (`offset`, required).
    pub offset: i64,
}

impl CommandHeader for GetMaxOffsetResponseHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_int(fields, "offset", self.offset);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(GetMaxOffsetResponseHeader {
            offset: fields.required_i64("offset")?,
        })
    }
}

/// UPDATE_AND_CREATE_TOPIC (17) request header, admin (protocol.md 4.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicRequestHeader {
    /// The topic (`topic`, required).
    pub topic: String,
    /// Java admin passes `TBW102` (`defaultTopic`, required).
    pub default_topic: String,
    /// Read queues (`readQueueNums`, required).
    pub read_queue_nums: i32,
    /// Write queues (`writeQueueNums`, required).
    pub write_queue_nums: i32,
    /// Permission bits, 6 = read + write (`perm`, required).
    pub perm: i32,
    /// `SINGLE_TAG` or `MULTI_TAG` (`topicFilterType`, required).
    pub topic_filter_type: String,
    /// Topic sysFlag (`topicSysFlag`).
    pub topic_sys_flag: Option<i32>,
    /// Ordered topic (`order`, required).
    pub order: bool,
    /// 5.x attributes, e.g. `+message.type=NORMAL` (`attributes`).
    pub attributes: Option<String>,
}

impl CreateTopicRequestHeader {
    /// A read-write topic with `queues` read and write queues, as Java's admin creates it.
    pub fn new(topic: impl Into<String>, queues: i32) -> Self {
        CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: Some(0),
            order: false,
            attributes: None,
        }
    }
}

impl CommandHeader for CreateTopicRequestHeader {
    fn write_to(&self, fields: &mut ExtFields) {
        put_str(fields, "topic", &self.topic);
        put_str(fields, "defaultTopic", &self.default_topic);
        put_int(fields, "readQueueNums", self.read_queue_nums.into());
        put_int(fields, "writeQueueNums", self.write_queue_nums.into());
        put_int(fields, "perm", self.perm.into());
        put_str(fields, "topicFilterType", &self.topic_filter_type);
        put_opt_int(fields, "topicSysFlag", self.topic_sys_flag.map(i64::from));
        put_bool(fields, "order", self.order);
        put_opt_str(fields, "attributes", &self.attributes);
    }

    fn read_from(fields: &ExtFields) -> Result<Self, CodecError> {
        Ok(CreateTopicRequestHeader {
            topic: req_str(fields, "topic")?,
            default_topic: req_str(fields, "defaultTopic")?,
            read_queue_nums: fields.required_i32("readQueueNums")?,
            write_queue_nums: fields.required_i32("writeQueueNums")?,
            perm: fields.required_i32("perm")?,
            topic_filter_type: req_str(fields, "topicFilterType")?,
            topic_sys_flag: fields.optional_i32("topicSysFlag")?,
            order: req_bool(fields, "order")?,
            attributes: opt_str(fields, "attributes"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_match_display() {
        for v in [
            0,
            1,
            -1,
            9,
            10,
            42,
            -42,
            1_795_468_920_976,
            i64::MIN,
            i64::MAX,
        ] {
            let mut f = ExtFields::new();
            put_int(&mut f, "v", v);
            assert_eq!(f.get("v"), Some(v.to_string().as_str()));
        }
    }

    fn send_header() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "TopicTest".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 1,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: "WAIT\u{1}true\u{2}".into(),
            reconsume_times: Some(0),
            unit_mode: false,
            batch: false,
            max_reconsume_times: None,
            broker_name: Some("broker-a".into()),
        }
    }

    #[test]
    fn v2_keys_are_the_java_ones() {
        let mut f = ExtFields::new();
        send_header().write_v2(&mut f);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "m", "n"]
        );
        assert_eq!(f.get("g"), Some("1700000000000"));
        assert_eq!(f.get("k"), Some("false"));
        assert_eq!(
            SendMessageRequestHeader::read_v2(&f).unwrap(),
            send_header()
        );
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let mut f = ExtFields::new();
        send_header().write_v2(&mut f);
        f.remove("b");
        assert_eq!(
            SendMessageRequestHeader::read_v2(&f),
            Err(CodecError::MissingField("b"))
        );
        let mut f = ExtFields::new();
        send_header().write_v1(&mut f);
        f.insert("queueId", "one");
        assert_eq!(
            SendMessageRequestHeader::read_v1(&f),
            Err(CodecError::invalid("queueId", "one"))
        );
    }
}
