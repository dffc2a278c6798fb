//! Broker requests: send, heartbeat, unregister; and the mapping of send responses.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::message::{IdStr, MessageQueue, SendResult, SendStatus};
use crate::producer::prepare::{Prepared, ID_LEN};
use crate::protocol::acl::{Credentials, SignatureText};
use crate::protocol::codes::{CLIENT_LANGUAGE, CLIENT_VERSION};
use crate::protocol::frame::{
    int_digits, write_int, write_json_str, ResponseKey, ResponsePlaces, MAX_HEADER_LEN,
    RESPONSE_KEYS,
};
use crate::protocol::header::{CommandHeader, UnregisterClientRequestHeader};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::{CodecError, ExtFields, RemotingCommand, RequestCode, SerializeType};
use crate::remoting::FrameSpec;

/// The parts of a send request that come from the producer's settings, with the JSON text
/// they make in every send frame written once.
#[derive(Debug, Clone)]
pub(crate) struct SendDefaults {
    /// Which defaults these are (unique per [`SendDefaults::new`], kept by a clone, which is
    /// equal): the key of the text a thread's [`FrameMemo`] made from them.
    id: u64,
    pub(crate) group: String,
    pub(crate) create_topic_key: String,
    pub(crate) default_topic_queue_nums: i32,
    /// `"a":<group>,"b":` (the topic follows).
    json_group: Vec<u8>,
    /// `,"c":<create topic key>,"d":"<queue nums>","e":"` (the queue id follows).
    json_create_topic: Vec<u8>,
    /// `,"language":<this client's>,"opaque":` (the opaque follows).
    json_language: Vec<u8>,
    /// `},"flag":0` and then [`SendDefaults::json_language`]: the end of the ext fields to
    /// the opaque of a request with no flag (every send but oneway), in one copy.
    json_flag0_language: Vec<u8>,
    /// `,"serializeTypeCurrentRPC":"JSON","version":<this client's>}`: the header's end.
    json_end: Vec<u8>,
}

impl SendDefaults {
    pub(crate) fn new(
        group: String,
        create_topic_key: String,
        default_topic_queue_nums: i32,
    ) -> Self {
        let mut json_group = b"\"a\":".to_vec();
        write_json_str(&mut json_group, &group);
        json_group.extend_from_slice(b",\"b\":");
        let mut json_create_topic = b",\"c\":".to_vec();
        write_json_str(&mut json_create_topic, &create_topic_key);
        json_create_topic.extend_from_slice(b",\"d\":\"");
        write_int(&mut json_create_topic, default_topic_queue_nums.into());
        json_create_topic.extend_from_slice(b"\",\"e\":\"");
        let mut json_language = b",\"language\":".to_vec();
        write_json_str(&mut json_language, CLIENT_LANGUAGE.name());
        json_language.extend_from_slice(b",\"opaque\":");
        let mut json_flag0_language = b"},\"flag\":0".to_vec();
        json_flag0_language.extend_from_slice(&json_language);
        let mut json_end = b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":".to_vec();
        write_int(&mut json_end, CLIENT_VERSION.into());
        json_end.push(b'}');
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        SendDefaults {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            group,
            create_topic_key,
            default_topic_queue_nums,
            json_group,
            json_create_topic,
            json_language,
            json_flag0_language,
            json_end,
        }
    }
}

/// Builds the SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) request of one attempt: the reference
/// [`encode_send_frame`] is tested against (byte for byte, in both layouts).
#[cfg(test)]
pub(crate) fn send_request(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
) -> RemotingCommand {
    let mut request = RemotingCommand::request(prepared.request_code());
    let header = crate::protocol::header::SendMessageRequestHeader {
        producer_group: defaults.group.clone(),
        topic: prepared.wire_topic().to_string(),
        default_topic: defaults.create_topic_key.clone(),
        default_topic_queue_nums: defaults.default_topic_queue_nums,
        queue_id: queue.queue_id(),
        sys_flag: prepared.sys_flag,
        born_timestamp,
        flag: prepared.flag,
        properties: prepared.properties.as_str().to_string(),
        reconsume_times: Some(0),
        unit_mode: false,
        batch: prepared.batch,
        max_reconsume_times: None,
        broker_name: Some(queue.broker_name().to_string()),
    };
    header.write_v2(&mut request.ext_fields);
    request.body = prepared.wire_body().to_vec();
    request
}

/// Appends the whole SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) frame of one attempt to `out`,
/// in the header layout `spec` names: byte for byte what [`send_request`] encodes to, but
/// written straight from `prepared`, with no intermediate command, header strings or body copy.
///
/// With credentials in `spec`, the request is signed as [`Credentials::sign`] would sign the
/// command: the signature is computed from the values this function writes (in key order),
/// then `AccessKey`, `SecurityToken` and `Signature` are written before `a`.
pub(crate) fn encode_send_frame(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    // The usual message (the most frequent send by far): the thread's template of its whole
    // head, when it is up to date, in a function of its own (no other path's work).
    if spec.serialize_type == SerializeType::Json && spec.credentials.is_none() {
        let done = with_frame_memo(|memo| {
            memo.write_usual(prepared, queue, defaults, born_timestamp, spec, out)
        });
        if let Some(Some(done)) = done {
            return Ok(done?);
        }
    }
    encode_send_frame_other(prepared, queue, defaults, born_timestamp, spec, out)
}

/// [`encode_send_frame`] of every send but a usual message whose template is up to date
/// ([`FrameMemo::write_usual`]): out of line, so that the usual message's path stays small.
#[inline(never)]
fn encode_send_frame_other(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let binary = spec.serialize_type == SerializeType::RocketMq;
    // The usual send (no signature): from this thread's memo of the text that does not
    // change from message to message. Only while this thread is torn down is there no memo
    // (then the general way).
    if spec.credentials.is_none() {
        let done = with_frame_memo(|memo| {
            if binary {
                encode_send_frame_binary_memo(
                    memo,
                    prepared,
                    queue,
                    defaults,
                    born_timestamp,
                    spec,
                    out,
                )
            } else {
                encode_send_frame_memo(memo, prepared, queue, defaults, born_timestamp, spec, out)
            }
        });
        if let Some(done) = done {
            return Ok(done?);
        }
    }
    if binary {
        return encode_send_frame_binary(prepared, queue, defaults, born_timestamp, spec, out);
    }
    encode_send_frame_json(prepared, queue, defaults, born_timestamp, spec, out)
}

/// The text of the send frames this thread wrote last that depends only on the producer's
/// [`SendDefaults`], the request code, the topic and the broker name: written again only when
/// one of them changes, and copied whole into each frame (no escaping, no numbers to format).
/// Also the last born timestamp's digits (the same for every send in one millisecond).
struct FrameMemo {
    /// [`SendDefaults::id`] of the text below (0: none yet).
    defaults: u64,
    code: i32,
    /// The wire topic.
    topic: String,
    /// The frame's lengths (zeros, set per frame), then `{"code":<code>,"extFields":{"a":
    /// <group>,"b":<topic>,"c":<create topic key>,"d":"<queue nums>","e":"`.
    prefix: Vec<u8>,
    /// The broker name of `broker_text` (held: the same pointer is the same name).
    broker: Option<Arc<str>>,
    /// The request flag of `broker_text`.
    flag: i32,
    /// `,"n":<broker name>},"flag":<flag>,"language":<ours>,"opaque":` (no `n` for an empty
    /// name).
    broker_text: Vec<u8>,
    /// The last born timestamp and its text (sign and digits) in `born_text[..born_len]`.
    born: i64,
    born_text: [u8; 20],
    born_len: usize,
    /// The usual message's text from the end of `e` to the start of its id:
    /// `","f":"0","g":"<born>","h":"0","i":"UNIQ_KEY\u0001` in `usual_mid[..usual_mid_len]`.
    usual_mid: [u8; 64],
    usual_mid_len: usize,
    /// The usual message's text from the end of its id to the opaque:
    /// `\u0002WAIT\u0001true\u0002","j":"0","k":"false","m":"false"` and `broker_text`.
    usual_tail: Vec<u8>,
    /// The last opaque written and its text with [`JSON_END`] in
    /// `opaque_end[opaque_from..]` (`opaque_from` 0: none yet): the next opaque is mostly
    /// the last one's plus one, its text the last one's with the units digit raised.
    opaque: i32,
    opaque_end: [u8; OPAQUE_END_LEN],
    opaque_from: usize,
    /// The binary layout's fields `f` (0), `g` (the born timestamp) and `h` (0) in
    /// `bin_fgh[..bin_fgh_len]`: what a message with sysFlag 0 and flag 0 has there.
    bin_fgh: [u8; 48],
    bin_fgh_len: usize,
    /// [`SendDefaults::id`], request code and wire topic of `bin_prefix` (0: none yet).
    bin_defaults: u64,
    bin_code: i32,
    bin_topic: String,
    /// A binary frame up to the queue id: zeros for the frame's two lengths, the code,
    /// language and version, zeros for the opaque, the flag, the remark length and the ext
    /// fields length (all but the remark's set per frame), the fields `a` to `d`, then the
    /// key of `e` and the first three bytes of its value length (a queue id's digits are
    /// fewer than 256).
    bin_prefix: Vec<u8>,
    /// The broker name of `bin_tail`.
    bin_broker: Option<Arc<str>>,
    /// The fields `j`, `k`, `m` (false: not a batch) and `n` (left out for an empty name).
    bin_tail: Vec<u8>,
    /// The whole JSON frame head of the last usual send (see [`UsualFrame`]).
    usual: UsualFrame,
}

/// The whole head (the two lengths and the header) of the last usual JSON send frame this
/// thread wrote (sysFlag 0, flag 0, not a batch, only the default properties with an id of
/// this client's length: [`Properties::usual_id`]): the memo's `prefix`, the queue id,
/// [`USUAL_BEFORE_BORN`], the born timestamp, [`USUAL_BEFORE_ID`], the id, the memo's
/// `usual_tail`, the opaque and [`JSON_END`]. The next usual frame puts its own values in
/// place (the id always, the others when they changed: a single-digit queue id is one byte,
/// the next opaque mostly its units digit) and its lengths, and is copied in one piece.
///
/// [`Properties::usual_id`]: crate::producer::prepare::Properties::usual_id
struct UsualFrame {
    /// Whether `text` is built from the memo's current `prefix` and `usual_tail` (cleared
    /// when either is written again).
    valid: bool,
    text: Vec<u8>,
    /// Where the queue id's text starts (the length of the memo's prefix).
    qid_at: usize,
    /// The values in `text` and the lengths of their text (sign and digits).
    queue_id: i32,
    qid_len: usize,
    born: i64,
    born_len: usize,
    opaque: i32,
    opaque_len: usize,
}

impl UsualFrame {
    const EMPTY: UsualFrame = UsualFrame {
        valid: false,
        text: Vec::new(),
        qid_at: 0,
        queue_id: 0,
        qid_len: 0,
        born: 0,
        born_len: 0,
        opaque: 0,
        opaque_len: 0,
    };

    /// Writes `text` whole from the memo's `prefix` and `usual_tail` and these values (the
    /// id's place left to fill).
    #[cold]
    fn build(&mut self, prefix: &[u8], tail: &[u8], queue_id: i32, born: i64, opaque: i32) {
        let mut buf = [0u8; 21];
        let text = &mut self.text;
        text.clear();
        text.extend_from_slice(prefix);
        self.qid_at = text.len();
        let t = signed_text(&mut buf, queue_id.into());
        text.extend_from_slice(t);
        self.qid_len = t.len();
        text.extend_from_slice(USUAL_BEFORE_BORN);
        let t = signed_text(&mut buf, born);
        text.extend_from_slice(t);
        self.born_len = t.len();
        text.extend_from_slice(USUAL_BEFORE_ID);
        text.extend_from_slice(&[0; ID_LEN]);
        text.extend_from_slice(tail);
        let t = signed_text(&mut buf, opaque.into());
        text.extend_from_slice(t);
        self.opaque_len = t.len();
        text.extend_from_slice(JSON_END);
        self.queue_id = queue_id;
        self.born = born;
        self.opaque = opaque;
        self.valid = true;
    }

    /// Puts `queue_id`'s text in place.
    #[inline(always)]
    fn set_queue_id(&mut self, queue_id: i32) {
        if self.qid_len == 1 && (0..10).contains(&queue_id) {
            // One digit for another (a text of one byte is a digit: a sign comes with one).
            self.text[self.qid_at] = b'0' + queue_id as u8;
        } else {
            let mut buf = [0u8; 21];
            let t = signed_text(&mut buf, queue_id.into());
            replace(&mut self.text, self.qid_at, self.qid_len, t);
            self.qid_len = t.len();
        }
        self.queue_id = queue_id;
    }

    /// Puts `born`'s text in place (a new millisecond).
    fn set_born(&mut self, born: i64) {
        let mut buf = [0u8; 21];
        let t = signed_text(&mut buf, born);
        let at = self.qid_at + self.qid_len + USUAL_BEFORE_BORN.len();
        replace(&mut self.text, at, self.born_len, t);
        self.born_len = t.len();
        self.born = born;
    }

    /// Puts `opaque`'s text in place: the last one plus one (the usual next opaque) by
    /// raising its units digit when that does not carry, else by carrying into the digits
    /// before it as long as the number keeps its length.
    #[inline(always)]
    fn set_opaque(&mut self, opaque: i32) {
        let units = self.text.len() - JSON_END.len() - 1;
        if opaque > 0 && self.opaque.wrapping_add(1) == opaque && self.text[units] != b'9' {
            // The last one (not negative: its units digit is last) plus one, no carry.
            self.text[units] += 1;
        } else if opaque > 1 && self.opaque.wrapping_add(1) == opaque && self.carry_opaque(units) {
            // The last one (positive) plus one, carried (9 -> 10 grows: not here).
        } else if opaque != self.opaque {
            let mut buf = [0u8; 21];
            let t = signed_text(&mut buf, opaque.into());
            replace(
                &mut self.text,
                units + 1 - self.opaque_len,
                self.opaque_len,
                t,
            );
            self.opaque_len = t.len();
        }
        self.opaque = opaque;
    }

    /// Adds one to the opaque's text whose units digit is at `units` and is a `9` (the last
    /// opaque, positive), carrying: the trailing `9`s become `0`s and the digit before them
    /// goes up by one. `false`, with nothing changed, when every digit is a `9` (the text
    /// grows by one digit: written whole by the caller).
    #[inline]
    fn carry_opaque(&mut self, units: usize) -> bool {
        let from = units + 1 - self.opaque_len;
        let Some(digits) = self.text.get_mut(from..=units) else {
            return false;
        };
        match digits.iter().rposition(|&d| d != b'9') {
            Some(at) if digits[at].is_ascii_digit() => {
                digits[at] += 1;
                digits[at + 1..].fill(b'0');
                true
            }
            _ => false,
        }
    }

    /// Appends the frame of a usual send with these values (the memo's prefix and tail are
    /// `prefix` and `tail`) and `body`, as [`encode_send_frame_json`] writes it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the values of one frame
    fn write(
        &mut self,
        (prefix, tail): (&[u8], &[u8]),
        queue_id: i32,
        born: i64,
        id: &[u8; ID_LEN],
        opaque: i32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Written {
        if !self.valid {
            self.build(prefix, tail, queue_id, born, opaque);
        }
        if self.queue_id != queue_id {
            self.set_queue_id(queue_id);
        }
        if self.born != born {
            self.set_born(born);
        }
        self.set_opaque(opaque);
        let id_at = self.qid_at
            + self.qid_len
            + USUAL_BEFORE_BORN.len()
            + self.born_len
            + USUAL_BEFORE_ID.len();
        self.text[id_at..id_at + ID_LEN].copy_from_slice(id);
        let header_len = self.text.len() - 8;
        if header_len > MAX_HEADER_LEN {
            return Err(HeaderTooLarge(header_len));
        }
        let total = (self.text.len() - 4 + body.len()) as u32;
        self.text[..4].copy_from_slice(&total.to_be_bytes());
        self.text[4..8].copy_from_slice(&(header_len as u32).to_be_bytes());
        let len = self.text.len() + body.len();
        if out.capacity() - out.len() < len {
            // With room for a longer opaque or queue id later: a reused buffer is not grown
            // again for one more digit.
            out.reserve(len + 64);
        }
        out.extend_from_slice(&self.text);
        out.extend_from_slice(body);
        Ok(())
    }
}

/// `v`'s decimal text (sign and digits), at the end of `buf`.
fn signed_text(buf: &mut [u8; 21], v: i64) -> &[u8] {
    let mut digits = [0u8; 20];
    let d = int_digits(&mut digits, v);
    let from = buf.len() - d.len();
    buf[from..].copy_from_slice(d);
    if v < 0 {
        buf[from - 1] = b'-'; // 19 digits at most: room for the sign
        return &buf[from - 1..];
    }
    &buf[from..]
}

/// Replaces the `len` bytes of `text` at `at` with `new`, moving what follows when the
/// lengths differ (no allocation once `text` has grown to its largest).
fn replace(text: &mut Vec<u8>, at: usize, len: usize, new: &[u8]) {
    let end = text.len();
    if new.len() > len {
        text.resize(end + new.len() - len, 0);
        text.copy_within(at + len..end, at + new.len());
    } else if new.len() < len {
        text.copy_within(at + len..end, at + new.len());
        text.truncate(end - (len - new.len()));
    }
    text[at..at + new.len()].copy_from_slice(new);
}

impl FrameMemo {
    const EMPTY: FrameMemo = FrameMemo {
        defaults: 0,
        code: 0,
        topic: String::new(),
        prefix: Vec::new(),
        broker: None,
        flag: 0,
        broker_text: Vec::new(),
        born: 0,
        born_text: [b'0'; 20],
        born_len: 1,
        usual_mid: [0; 64],
        usual_mid_len: 0,
        usual_tail: Vec::new(),
        opaque: 0,
        opaque_end: [0; OPAQUE_END_LEN],
        opaque_from: 0,
        bin_fgh: [0; 48],
        bin_fgh_len: 0,
        bin_defaults: 0,
        bin_code: 0,
        bin_topic: String::new(),
        bin_prefix: Vec::new(),
        bin_broker: None,
        bin_tail: Vec::new(),
        usual: UsualFrame::EMPTY,
    };

    fn set_prefix(&mut self, defaults: &SendDefaults, code: i32, topic: &str) {
        if self.defaults != defaults.id {
            self.broker = None; // its text holds the defaults' language
        }
        self.usual.valid = false; // its text holds the prefix
        self.defaults = defaults.id;
        self.code = code;
        self.topic.clear();
        self.topic.push_str(topic);
        let out = &mut self.prefix;
        out.clear();
        out.extend_from_slice(b"\0\0\0\0\0\0\0\0{\"code\":");
        write_int(out, code.into());
        out.extend_from_slice(b",\"extFields\":{");
        out.extend_from_slice(&defaults.json_group);
        write_json_str(out, topic);
        out.extend_from_slice(&defaults.json_create_topic);
    }

    fn set_broker(&mut self, defaults: &SendDefaults, broker: &Arc<str>, flag: i32) {
        self.broker = Some(broker.clone());
        self.flag = flag;
        let out = &mut self.broker_text;
        out.clear();
        if !broker.is_empty() {
            out.extend_from_slice(b",\"n\":");
            write_json_str(out, broker);
        }
        if flag == 0 {
            out.extend_from_slice(&defaults.json_flag0_language);
        } else {
            out.extend_from_slice(b"},\"flag\":");
            write_int(out, flag.into());
            out.extend_from_slice(&defaults.json_language);
        }
        self.usual_tail.clear();
        self.usual_tail.extend_from_slice(USUAL_AFTER_ID);
        self.usual_tail.extend_from_slice(&self.broker_text);
        self.usual.valid = false; // its text holds the tail
    }

    fn set_born(&mut self, born: i64) {
        let mut buf = [0u8; 20];
        let digits = int_digits(&mut buf, born);
        let sign = usize::from(born < 0);
        self.born_text[0] = b'-';
        self.born_text[sign..sign + digits.len()].copy_from_slice(digits);
        self.born_len = sign + digits.len();
        self.born = born;
        let born_text = &self.born_text[..self.born_len];
        let mid = &mut self.usual_mid;
        mid[..USUAL_BEFORE_BORN.len()].copy_from_slice(USUAL_BEFORE_BORN);
        let at = USUAL_BEFORE_BORN.len();
        mid[at..at + born_text.len()].copy_from_slice(born_text);
        let at = at + born_text.len();
        mid[at..at + USUAL_BEFORE_ID.len()].copy_from_slice(USUAL_BEFORE_ID);
        self.usual_mid_len = at + USUAL_BEFORE_ID.len();
        let fgh = &mut self.bin_fgh;
        fgh[..8].copy_from_slice(b"\0\x01f\0\0\0\x01\x30");
        fgh[8..15].copy_from_slice(&[0, 1, b'g', 0, 0, 0, born_text.len() as u8]);
        let h_at = 15 + born_text.len();
        fgh[15..h_at].copy_from_slice(born_text);
        fgh[h_at..h_at + 8].copy_from_slice(b"\0\x01h\0\0\0\x01\x30");
        self.bin_fgh_len = h_at + 8;
    }

    /// Appends `opaque`'s decimal text and [`JSON_END`] in one copy.
    #[inline]
    fn write_opaque_end(&mut self, out: &mut Vec<u8>, opaque: i32) {
        let units = &mut self.opaque_end[19];
        if self.opaque_from != 0
            && opaque > 0
            && self.opaque.wrapping_add(1) == opaque
            && *units != b'9'
        {
            // The last one (not negative: its units digit is last) plus one, no carry.
            *units += 1;
        } else if self.opaque_from == 0 || opaque != self.opaque {
            self.opaque_from = opaque_end_text(&mut self.opaque_end, opaque);
        }
        self.opaque = opaque;
        out.extend_from_slice(&self.opaque_end[self.opaque_from..]);
    }

    /// The frame of a usual message (sysFlag 0, flag 0, not a batch, only the default
    /// properties with an id of this client's length) from [`FrameMemo::usual`], when its
    /// text is that of these defaults, request code, topic, broker and request flag; `None`
    /// (nothing written) for any other send or when the memo must be brought up to date
    /// first ([`encode_send_frame_memo`] does).
    #[inline(always)]
    fn write_usual(
        &mut self,
        prepared: &Prepared,
        queue: &MessageQueue,
        defaults: &SendDefaults,
        born_timestamp: i64,
        spec: FrameSpec<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Written> {
        if prepared.sys_flag != 0 || prepared.flag != 0 || prepared.batch || !self.usual.valid {
            return None;
        }
        let id = prepared.properties.usual_id()?;
        if self.defaults != defaults.id
            || self.code != prepared.request_code()
            || self.flag != spec.flag
            || !self
                .broker
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, queue.broker_name_arc()))
            || self.topic != prepared.wire_topic()
        {
            return None;
        }
        Some(self.usual.write(
            (&self.prefix, &self.usual_tail),
            queue.queue_id(),
            born_timestamp,
            id,
            spec.opaque,
            prepared.wire_body(),
            out,
        ))
    }

    fn set_bin_prefix(&mut self, defaults: &SendDefaults, code: i32, topic: &str) {
        self.bin_defaults = defaults.id;
        self.bin_code = code;
        self.bin_topic.clear();
        self.bin_topic.push_str(topic);
        let out = &mut self.bin_prefix;
        out.clear();
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&(code as i16).to_be_bytes());
        out.push(CLIENT_LANGUAGE.0);
        out.extend_from_slice(&(CLIENT_VERSION as i16).to_be_bytes());
        out.extend_from_slice(&[0u8; 16]); // opaque, flag, remark length 0, fields length
        binary_field(out, b"a", defaults.group.as_bytes());
        binary_field(out, b"b", topic.as_bytes());
        binary_field(out, b"c", defaults.create_topic_key.as_bytes());
        binary_int(out, b'd', defaults.default_topic_queue_nums.into());
        out.extend_from_slice(&[0, 1, b'e', 0, 0, 0]);
    }

    fn set_bin_broker(&mut self, broker: &Arc<str>) {
        self.bin_broker = Some(broker.clone());
        let out = &mut self.bin_tail;
        out.clear();
        out.extend_from_slice(BINARY_JKM_SINGLE);
        binary_field(out, b"n", broker.as_bytes());
    }
}

/// The usual message's JSON text from the end of `e`'s value to the born timestamp.
const USUAL_BEFORE_BORN: &[u8] = b"\",\"f\":\"0\",\"g\":\"";
/// The usual message's JSON text from the born timestamp to its id.
const USUAL_BEFORE_ID: &[u8] = b"\",\"h\":\"0\",\"i\":\"UNIQ_KEY\\u0001";
/// The usual message's JSON text from its id to `n`.
const USUAL_AFTER_ID: &[u8] =
    b"\\u0002WAIT\\u0001true\\u0002\",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\"";

/// The binary layout's fields `j` (0), `k` (false) and `m` (false) of a single message.
const BINARY_JKM_SINGLE: &[u8] =
    b"\0\x01j\0\0\0\x01\x30\0\x01k\0\0\0\x05false\0\x01m\0\0\0\x05false";
/// The binary layout's fields `j` (0), `k` (false) and `m` (true) of a batch.
const BINARY_JKM_BATCH: &[u8] = b"\0\x01j\0\0\0\x01\x30\0\x01k\0\0\0\x05false\0\x01m\0\0\0\x04true";

thread_local! {
    static FRAME_MEMO: RefCell<FrameMemo> = const { RefCell::new(FrameMemo::EMPTY) };
}

/// Runs `f` on this thread's [`FrameMemo`]; `None` (`f` not run) while the thread is torn
/// down or the memo is in use (never, as nothing in `f` encodes another frame).
#[inline(always)]
fn with_frame_memo<R>(f: impl FnOnce(&mut FrameMemo) -> R) -> Option<R> {
    FRAME_MEMO
        .try_with(|memo| Some(f(&mut *memo.try_borrow_mut().ok()?)))
        .ok()
        .flatten()
}

/// [`encode_send_frame`] of a request with no signature in the JSON layout, with the text
/// that does not change from message to message taken from `memo` (brought up to date
/// first): the same bytes as [`encode_send_frame_json`].
fn encode_send_frame_memo(
    memo: &mut FrameMemo,
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Written {
    let code = prepared.request_code();
    let topic = prepared.wire_topic();
    if memo.defaults != defaults.id || memo.code != code || memo.topic != topic {
        memo.set_prefix(defaults, code, topic);
    }
    let broker = queue.broker_name_arc();
    if memo.flag != spec.flag || !memo.broker.as_ref().is_some_and(|b| Arc::ptr_eq(b, broker)) {
        memo.set_broker(defaults, broker, spec.flag);
    }
    let body = prepared.wire_body();
    if prepared.sys_flag == 0 && prepared.flag == 0 && !prepared.batch {
        if let Some(id) = prepared.properties.usual_id() {
            // The usual message: the whole head from the template, its values put in place.
            return memo.usual.write(
                (&memo.prefix, &memo.usual_tail),
                queue.queue_id(),
                born_timestamp,
                id,
                spec.opaque,
                body,
                out,
            );
        }
    }
    if memo.born != born_timestamp || memo.usual_mid_len == 0 {
        memo.set_born(born_timestamp);
    }
    let start = out.len();
    // One growth at most: the memo's parts, the properties with their separators escaped,
    // the numbers and the constants.
    out.reserve(
        memo.prefix.len()
            + memo.broker_text.len()
            + defaults.json_end.len()
            + 2 * prepared.properties.len()
            + 160
            + body.len(),
    );
    out.extend_from_slice(&memo.prefix);
    write_int(out, queue.queue_id().into());
    match prepared.properties.only_plain_defaults() {
        // The usual message (sysFlag 0, flag 0, only the defaults, an id of ours): `f` to
        // the id's start in one copy, the id, then the rest to the opaque in one copy.
        Some(id) if prepared.sys_flag == 0 && prepared.flag == 0 && !prepared.batch => {
            out.extend_from_slice(&memo.usual_mid[..memo.usual_mid_len]);
            out.extend_from_slice(id);
            out.extend_from_slice(&memo.usual_tail);
            memo.write_opaque_end(out, spec.opaque);
            return finish_frame(out, start, body);
        }
        _ => {}
    }
    if prepared.sys_flag == 0 {
        out.extend_from_slice(b"\",\"f\":\"0\",\"g\":\"");
    } else {
        out.extend_from_slice(b"\",\"f\":\"");
        write_int(out, prepared.sys_flag.into());
        out.extend_from_slice(b"\",\"g\":\"");
    }
    out.extend_from_slice(&memo.born_text[..memo.born_len]);
    match prepared.properties.only_plain_defaults() {
        // The usual message (flag 0, only the defaults, an id of ours): its properties'
        // JSON text is constants around the id.
        Some(id) if prepared.flag == 0 && !prepared.batch => {
            out.extend_from_slice(b"\",\"h\":\"0\",\"i\":\"UNIQ_KEY\\u0001");
            out.extend_from_slice(id);
            out.extend_from_slice(
                b"\\u0002WAIT\\u0001true\\u0002\",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\"",
            );
        }
        _ => {
            out.extend_from_slice(b"\",\"h\":\"");
            write_int(out, prepared.flag.into());
            out.extend_from_slice(b"\",\"i\":");
            prepared.properties.write_json(out);
            out.extend_from_slice(if prepared.batch {
                b",\"j\":\"0\",\"k\":\"false\",\"m\":\"true\"".as_slice()
            } else {
                b",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\""
            });
        }
    }
    out.extend_from_slice(&memo.broker_text);
    memo.write_opaque_end(out, spec.opaque);
    finish_frame(out, start, body)
}

/// How writing a frame ends: written, or not (nothing appended) as its header is longer than
/// [`MAX_HEADER_LEN`]: a small value, returned in registers by the per-frame functions (an
/// [`Error`] is made from it only at the end).
type Written = std::result::Result<(), HeaderTooLarge>;

/// A header of this many bytes, longer than [`MAX_HEADER_LEN`].
#[derive(Debug)]
struct HeaderTooLarge(usize);

impl From<HeaderTooLarge> for Error {
    fn from(e: HeaderTooLarge) -> Self {
        Error::Protocol(CodecError::HeaderTooLarge(e.0))
    }
}

/// The end of every JSON request header this crate writes:
/// `,"serializeTypeCurrentRPC":"JSON","version":<CLIENT_VERSION>}` ([`SendDefaults`]' text,
/// as a constant of known length: a test checks they are the same).
const JSON_END: &[u8; 48] = b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":401}";

/// `opaque`'s decimal text and [`JSON_END`] written to the end of `buf`: they start at the
/// index returned.
fn opaque_end_text(buf: &mut [u8; OPAQUE_END_LEN], opaque: i32) -> usize {
    let (digits, end) = buf.split_at_mut(20);
    end.copy_from_slice(JSON_END);
    let mut from = 20;
    if let Ok(digits) = <&mut [u8; 20]>::try_from(digits) {
        from -= int_digits(digits, opaque.into()).len();
        if opaque < 0 {
            from -= 1; // an i32 has 10 digits at most: room for the sign
            digits[from] = b'-';
        }
    }
    from
}

/// The room for an opaque's text (20 bytes) and [`JSON_END`].
const OPAQUE_END_LEN: usize = 20 + JSON_END.len();

/// Appends `opaque`'s decimal text and [`JSON_END`] in one copy.
#[cfg(test)]
fn write_opaque_end(out: &mut Vec<u8>, opaque: i32) {
    let mut buf = [0u8; OPAQUE_END_LEN];
    let from = opaque_end_text(&mut buf, opaque);
    out.extend_from_slice(&buf[from..]);
}

/// Checks the header written from `start` (after the two lengths), appends the body and sets
/// the lengths of a JSON frame.
#[inline]
fn finish_frame(out: &mut Vec<u8>, start: usize, body: &[u8]) -> Written {
    let header_len = out.len() - start - 8;
    if header_len > MAX_HEADER_LEN {
        out.truncate(start);
        return Err(HeaderTooLarge(header_len));
    }
    out.extend_from_slice(body);
    let total = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&(header_len as u32).to_be_bytes());
    Ok(())
}

/// [`encode_send_frame`] in the JSON layout, every part written here: the general way (a
/// signature, a flag, or no memo), and the reference of [`encode_send_frame_memo`].
fn encode_send_frame_json(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let code = prepared.request_code();
    let start = out.len();
    let body = prepared.wire_body();
    // Room for the usual header (its constant parts, short names, the properties with their
    // separators escaped) and the body: one growth at most.
    out.reserve(
        256 + defaults.json_group.len()
            + prepared.wire_topic().len()
            + 2 * prepared.properties.len()
            + queue.broker_name().len()
            + body.len(),
    );
    // The frame's two lengths (set below), then the keys in the order RemotingCommand's JSON
    // header writes them (sorted, as fastjson); the codes of our sends with their text.
    match code {
        RequestCode::SEND_MESSAGE_V2 => {
            out.extend_from_slice(b"\0\0\0\0\0\0\0\0{\"code\":310,\"extFields\":{")
        }
        RequestCode::SEND_BATCH_MESSAGE => {
            out.extend_from_slice(b"\0\0\0\0\0\0\0\0{\"code\":320,\"extFields\":{")
        }
        RequestCode::SEND_REPLY_MESSAGE_V2 => {
            out.extend_from_slice(b"\0\0\0\0\0\0\0\0{\"code\":325,\"extFields\":{")
        }
        _ => {
            out.extend_from_slice(b"\0\0\0\0\0\0\0\0{\"code\":");
            write_int(out, code.into());
            out.extend_from_slice(b",\"extFields\":{");
        }
    }
    if let Some(credentials) = spec.credentials {
        let signature = send_signature(credentials, prepared, queue, defaults, born_timestamp);
        out.extend_from_slice(b"\"AccessKey\":");
        write_json_str(out, credentials.access_key());
        if let Some(token) = credentials.security_token() {
            out.extend_from_slice(b",\"SecurityToken\":");
            write_json_str(out, token.expose());
        }
        out.extend_from_slice(b",\"Signature\":");
        write_json_str(out, signature.as_str());
        out.push(b',');
    }
    // a, b, c, d, and the key of e: written once per producer but for the topic.
    out.extend_from_slice(&defaults.json_group);
    if prepared.wire_topic_plain {
        out.push(b'"');
        out.extend_from_slice(prepared.wire_topic().as_bytes());
        out.push(b'"');
    } else {
        write_json_str(out, prepared.wire_topic());
    }
    out.extend_from_slice(&defaults.json_create_topic);
    write_int(out, queue.queue_id().into());
    out.extend_from_slice(b"\",\"f\":\"");
    write_int(out, prepared.sys_flag.into());
    out.extend_from_slice(b"\",\"g\":\"");
    write_int(out, born_timestamp);
    out.extend_from_slice(b"\",\"h\":\"");
    write_int(out, prepared.flag.into());
    out.extend_from_slice(b"\",\"i\":");
    prepared.properties.write_json(out);
    // j, k, m and the key of n in one copy.
    let broker_name = queue.broker_name();
    out.extend_from_slice(match (prepared.batch, broker_name.is_empty()) {
        (true, false) => b",\"j\":\"0\",\"k\":\"false\",\"m\":\"true\",\"n\":".as_slice(),
        (false, false) => b",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\",\"n\":",
        (true, true) => b",\"j\":\"0\",\"k\":\"false\",\"m\":\"true\"",
        (false, true) => b",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\"",
    });
    if !broker_name.is_empty() {
        write_json_str(out, broker_name);
    }
    if spec.flag == 0 {
        out.extend_from_slice(&defaults.json_flag0_language);
    } else {
        out.extend_from_slice(b"},\"flag\":");
        write_int(out, spec.flag.into());
        out.extend_from_slice(&defaults.json_language);
    }
    write_int(out, spec.opaque.into());
    out.extend_from_slice(&defaults.json_end);
    Ok(finish_frame(out, start, body)?)
}

/// [`encode_send_frame`] of a request with no signature in the binary ROCKETMQ layout, with
/// the bytes that do not change from message to message taken from `memo` (brought up to
/// date first) and the opaque, the flag and the lengths set in place: the same bytes as
/// [`encode_send_frame_binary`].
fn encode_send_frame_binary_memo(
    memo: &mut FrameMemo,
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Written {
    let code = prepared.request_code();
    let topic = prepared.wire_topic();
    if memo.bin_defaults != defaults.id || memo.bin_code != code || memo.bin_topic != topic {
        memo.set_bin_prefix(defaults, code, topic);
    }
    let broker = queue.broker_name_arc();
    if !memo
        .bin_broker
        .as_ref()
        .is_some_and(|b| Arc::ptr_eq(b, broker))
    {
        memo.set_bin_broker(broker);
    }
    if memo.born != born_timestamp || memo.bin_fgh_len == 0 {
        memo.set_born(born_timestamp);
    }
    let start = out.len();
    let body = prepared.wire_body();
    let props = prepared.properties.as_bytes();
    // One growth at most: the memo's parts, the numbers, the properties, the body.
    out.reserve(
        memo.bin_prefix.len() + memo.bin_tail.len() + props.len() + 3 * 28 + 80 + body.len(),
    );
    out.extend_from_slice(&memo.bin_prefix);
    // The opaque and the flag in their places (the memo's prefix is longer than 21 bytes).
    let mut fixed = [0u8; 8];
    fixed[..4].copy_from_slice(&spec.opaque.to_be_bytes());
    fixed[4..].copy_from_slice(&spec.flag.to_be_bytes());
    if let Some(at) = out.get_mut(start + 13..start + 21) {
        at.copy_from_slice(&fixed);
    }
    // e: the rest of its value length, then the digits (one byte's worth at most).
    let queue_id = queue.queue_id();
    if (0..10).contains(&queue_id) {
        out.extend_from_slice(&[1, b'0' + queue_id as u8]);
    } else {
        let mut buf = [0u8; 20];
        let digits = int_digits(&mut buf, queue_id.into());
        let negative = queue_id < 0;
        out.push((digits.len() + usize::from(negative)) as u8);
        if negative {
            out.push(b'-');
        }
        out.extend_from_slice(digits);
    }
    if prepared.sys_flag == 0 && prepared.flag == 0 {
        out.extend_from_slice(&memo.bin_fgh[..memo.bin_fgh_len]);
    } else {
        binary_int(out, b'f', prepared.sys_flag.into());
        out.extend_from_slice(&memo.bin_fgh[8..memo.bin_fgh_len - 8]);
        binary_int(out, b'h', prepared.flag.into());
    }
    binary_field(out, b"i", props);
    if prepared.batch {
        out.extend_from_slice(BINARY_JKM_BATCH);
        binary_field(out, b"n", broker.as_bytes());
    } else {
        out.extend_from_slice(&memo.bin_tail);
    }
    finish_binary_frame(out, start, start + 29, body)
}

/// One ext field of a binary header whose value is the decimal text of `v` (a one-byte key).
fn binary_int(out: &mut Vec<u8>, key: u8, v: i64) {
    let mut buf = [0u8; 20];
    let digits = int_digits(&mut buf, v);
    let len = digits.len() + usize::from(v < 0);
    out.extend_from_slice(&[0, 1, key, 0, 0, 0, len as u8]);
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(digits);
}

/// Checks the binary header written from `start` (after the two lengths), sets the ext fields
/// length (the fields start at `map_at`), appends the body and sets the frame's lengths.
#[inline]
fn finish_binary_frame(out: &mut Vec<u8>, start: usize, map_at: usize, body: &[u8]) -> Written {
    let header_len = out.len() - start - 8;
    if header_len > MAX_HEADER_LEN {
        out.truncate(start);
        return Err(HeaderTooLarge(header_len));
    }
    // Below MAX_HEADER_LEN (24 bits), so every length here fits its field.
    let map_len = (out.len() - map_at) as u32;
    out[map_at - 4..map_at].copy_from_slice(&map_len.to_be_bytes());
    out.extend_from_slice(body);
    let total = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    let proto = (u32::from(SerializeType::RocketMq.code()) << 24) | header_len as u32;
    out[start + 4..start + 8].copy_from_slice(&proto.to_be_bytes());
    Ok(())
}

/// [`encode_send_frame`] in the binary ROCKETMQ layout: the fixed fields (code i16, language
/// u8, version i16, opaque i32, flag i32, an empty remark), then the ext fields in key order,
/// each as key length i16, key, value length i32, value. Empty values are left out, as
/// [`RemotingCommand::encode`] leaves them out (a zero-length value reads as null in Java and
/// RocketMQ-Rust): an empty broker name or properties string.
fn encode_send_frame_binary(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let code = prepared.request_code();
    let start = out.len();
    // Length prefix, type and header length, then the fixed part of the header: 8 + 21 bytes.
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(code as i16).to_be_bytes());
    out.push(CLIENT_LANGUAGE.0);
    out.extend_from_slice(&(CLIENT_VERSION as i16).to_be_bytes());
    out.extend_from_slice(&spec.opaque.to_be_bytes());
    out.extend_from_slice(&spec.flag.to_be_bytes());
    out.extend_from_slice(&[0u8; 8]); // remark length 0, ext fields length (set below)
    let map_at = out.len();
    if let Some(credentials) = spec.credentials {
        let signature = send_signature(credentials, prepared, queue, defaults, born_timestamp);
        binary_field(out, b"AccessKey", credentials.access_key().as_bytes());
        if let Some(token) = credentials.security_token() {
            binary_field(out, b"SecurityToken", token.expose().as_bytes());
        }
        binary_field(out, b"Signature", signature.as_str().as_bytes());
    }
    binary_field(out, b"a", defaults.group.as_bytes());
    binary_field(out, b"b", prepared.wire_topic().as_bytes());
    binary_field(out, b"c", defaults.create_topic_key.as_bytes());
    for (key, v) in [
        (b'd', i64::from(defaults.default_topic_queue_nums)),
        (b'e', queue.queue_id().into()),
        (b'f', prepared.sys_flag.into()),
        (b'g', born_timestamp),
        (b'h', prepared.flag.into()),
    ] {
        binary_int(out, key, v);
    }
    binary_field(out, b"i", prepared.properties.as_bytes());
    binary_field(out, b"j", b"0");
    binary_field(out, b"k", b"false");
    binary_field(out, b"m", if prepared.batch { b"true" } else { b"false" });
    binary_field(out, b"n", queue.broker_name().as_bytes());
    Ok(finish_binary_frame(
        out,
        start,
        map_at,
        prepared.wire_body(),
    )?)
}

/// One ext field of a binary header (a key of our own, under 32 768 bytes); nothing for an
/// empty value. A value too long for its 32-bit length makes the header too large, which the
/// caller checks before the frame is used.
fn binary_field(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    if value.is_empty() {
        return;
    }
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// The signature of the send request [`encode_send_frame`] writes: the values of its ext
/// fields in key order (`AccessKey`, `SecurityToken`, then `a` to `n`), then the body, as
/// [`send_request`] signed by [`Credentials::sign`] would have it.
fn send_signature(
    credentials: &Credentials,
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
) -> SignatureText {
    let mut signer = credentials.signer();
    signer.update(credentials.access_key().as_bytes());
    if let Some(token) = credentials.security_token() {
        signer.update(token.expose().as_bytes());
    }
    signer.update(defaults.group.as_bytes());
    signer.update(prepared.wire_topic().as_bytes());
    signer.update(defaults.create_topic_key.as_bytes());
    let mut buf = [0u8; 20];
    for v in [
        i64::from(defaults.default_topic_queue_nums),
        queue.queue_id().into(),
        prepared.sys_flag.into(),
        born_timestamp,
        prepared.flag.into(),
    ] {
        if v < 0 {
            signer.update(b"-");
        }
        signer.update(int_digits(&mut buf, v));
    }
    signer.update(prepared.properties.as_str().as_bytes());
    signer.update(b"0"); // j: reconsume times
    signer.update(b"false"); // k: unit mode
    signer.update(if prepared.batch { b"true" } else { b"false" }); // m: batch
    signer.update(queue.broker_name().as_bytes()); // n (nothing when empty and left out)
    signer.update(prepared.wire_body());
    signer.finish()
}

/// Maps a send response: the four "stored" codes become a [`SendResult`], anything else a
/// [`Error::Broker`].
pub(crate) fn send_result(
    response: &RemotingCommand,
    prepared: &Prepared,
    queue: &MessageQueue,
    addr: &str,
) -> Result<SendResult> {
    send_result_with(response, prepared, queue, addr, &mut None)
}

/// [`send_result`] for a caller that owns the queue sent to (an asynchronous send's ended
/// attempt, on its I/O thread): the queue is moved into the result when it is the queue stored
/// in (the usual case), so no count is taken on its names here and none dropped; it comes back
/// in `kept` with an error, or when the broker stored in another queue (then the result has a
/// new one, as `send_result` makes it).
// Not inlined into its caller (the attempt's end is large): its field reads stay inlined here,
// and the result is built in the caller's place (no tuple around it to copy it out of).
#[inline(never)]
pub(crate) fn send_result_owned(
    response: &RemotingCommand,
    prepared: &Prepared,
    queue: MessageQueue,
    addr: &str,
    kept: &mut Option<MessageQueue>,
) -> Result<SendResult> {
    send_result_with(response, prepared, queue, addr, kept)
}

/// The queue a send went to, lent or owned ([`send_result`], [`send_result_owned`]).
trait SentQueue: Sized {
    fn queue(&self) -> &MessageQueue;
    /// This queue, for a result stored in it (a lent one is cloned, an owned one moved).
    fn stored(self) -> MessageQueue;
    /// This queue back to its owner, in `kept` (a lent one: nothing to give back).
    fn back(self, kept: &mut Option<MessageQueue>);
}

impl SentQueue for &MessageQueue {
    #[inline(always)]
    fn queue(&self) -> &MessageQueue {
        self
    }
    #[inline(always)]
    fn stored(self) -> MessageQueue {
        self.clone()
    }
    #[inline(always)]
    fn back(self, _: &mut Option<MessageQueue>) {}
}

impl SentQueue for MessageQueue {
    #[inline(always)]
    fn queue(&self) -> &MessageQueue {
        self
    }
    #[inline(always)]
    fn stored(self) -> MessageQueue {
        self
    }
    #[inline(always)]
    fn back(self, kept: &mut Option<MessageQueue>) {
        *kept = Some(self);
    }
}

/// [`send_result`] with the queue lent or owned; an owned queue not moved into the result is
/// given back in `kept`.
#[inline(always)]
fn send_result_with<Q: SentQueue>(
    response: &RemotingCommand,
    prepared: &Prepared,
    queue: Q,
    addr: &str,
    kept: &mut Option<MessageQueue>,
) -> Result<SendResult> {
    let Some(status) = SendStatus::from_response_code(response.code) else {
        queue.back(kept);
        // The remark copied: only an error response pays for it.
        return Err(Error::from_response(
            response.code,
            response.remark.clone(),
            addr,
        ));
    };
    // The fields of a `SendMessageResponseHeader`, where the decoder found them in the raw
    // header (or looked up in the map): the ids go straight into inline `IdStr`s, the numbers
    // are read from the bytes, so building the result allocates nothing. One branch on where
    // they are, then the result built for that kind (no branch per field or id, and each id
    // made in place).
    match ResponseFields::of(&response.ext_fields) {
        ResponseFields::Places(places) => stored_result(status, places, prepared, queue, kept),
        ResponseFields::Looked(values) => {
            stored_result(status, LookedFields(values), prepared, queue, kept)
        }
    }
}

/// The rest of [`send_result_with`] once the status is known: the result from `fields`.
#[inline(always)]
fn stored_result<'a, F: FieldSource<'a>, Q: SentQueue>(
    status: SendStatus,
    fields: F,
    prepared: &Prepared,
    queue: Q,
    kept: &mut Option<MessageQueue>,
) -> Result<SendResult> {
    let get = |k: ResponseKey| fields.get(k);
    // Not `ok_or`: that builds the error (and drops it) for every response.
    let Some(msg_id) = get(ResponseKey::MsgId) else {
        queue.back(kept);
        return Err(CodecError::MissingField("msgId").into());
    };
    let queue_id = match required_int(get(ResponseKey::QueueId), "queueId", i32::try_from) {
        Ok(id) => id,
        Err(e) => {
            queue.back(kept);
            return Err(e.into());
        }
    };
    let queue_offset = match required_int(
        get(ResponseKey::QueueOffset),
        "queueOffset",
        Ok::<i64, Infallible>,
    ) {
        Ok(offset) => offset,
        Err(e) => {
            queue.back(kept);
            return Err(e.into());
        }
    };
    // The queue sent to is the queue stored in, unless the broker picked another one (or a
    // namespace makes the names differ): then a new one.
    let sent = queue.queue();
    let stored = if sent.queue_id() == queue_id && sent.topic() == prepared.topic {
        queue.stored()
    } else {
        let other = MessageQueue::new(
            prepared.topic.as_str(),
            sent.broker_name_arc().clone(),
            queue_id,
        );
        queue.back(kept);
        other
    };
    let present = |k: ResponseKey| get(k).filter(|v| !v.is_empty()).map(|v| fields.id(v));
    // The ids are made here, past every check, in the result itself (no copies aside).
    Ok(SendResult {
        status,
        // A batch's id is the broker's `batchUniqId` when it sends one (only looked at then).
        msg_id: if prepared.batch {
            present(ResponseKey::BatchUniqId).unwrap_or_else(|| prepared.msg_id.clone())
        } else {
            prepared.msg_id.clone()
        },
        offset_msg_id: fields.id(msg_id),
        queue: stored,
        queue_offset,
        transaction_id: present(ResponseKey::TransactionId),
        region_id: present(ResponseKey::MsgRegion),
        // Java's `Boolean.parseBoolean`: "true" in any case; absent is true.
        trace_on: get(ResponseKey::TraceOn).map_or(true, is_true),
    })
}

/// Whether `v` is "true" in any case (`eq_ignore_ascii_case(b"true")`), in one 4-byte
/// compare: setting bit 5 makes an upper-case ASCII letter lower-case, and the only bytes it
/// turns into `t`, `r`, `u` or `e` are those letters in either case.
#[inline(always)]
fn is_true(v: &[u8]) -> bool {
    <[u8; 4]>::try_from(v)
        .is_ok_and(|b| u32::from_le_bytes(b) | 0x2020_2020 == u32::from_le_bytes(*b"true"))
}

/// Where a send response's fields are read from ([`ResponsePlaces`], [`LookedFields`]).
trait FieldSource<'a>: Copy {
    /// The value of `key`, `None` when absent.
    fn get(&self, key: ResponseKey) -> Option<&'a [u8]>;
    /// An id holding `value`, one of this response's values.
    fn id(&self, value: &[u8]) -> IdStr;
}

impl<'a> FieldSource<'a> for ResponsePlaces<'a> {
    #[inline(always)]
    fn get(&self, key: ResponseKey) -> Option<&'a [u8]> {
        ResponsePlaces::get(*self, key)
    }
    #[inline(always)]
    fn id(&self, value: &[u8]) -> IdStr {
        // Each value ASCII (see `ResponseFields::Places`).
        IdStr::from_ascii(value)
    }
}

/// The fields looked up in the map (each valid UTF-8: a `&str` of the map).
#[derive(Clone, Copy)]
struct LookedFields<'a>([Option<&'a [u8]>; RESPONSE_KEYS]);

impl<'a> FieldSource<'a> for LookedFields<'a> {
    #[inline]
    fn get(&self, key: ResponseKey) -> Option<&'a [u8]> {
        self.0[key as usize]
    }
    #[inline]
    fn id(&self, value: &[u8]) -> IdStr {
        // Always valid (the bytes of a `&str`): borrowed, no copy.
        IdStr::new(&String::from_utf8_lossy(value))
    }
}

/// The values of a send response's fields that [`send_result`] reads, by [`ResponseKey`].
enum ResponseFields<'a> {
    /// Where the decoder found them (each ASCII).
    Places(ResponsePlaces<'a>),
    /// Looked up in the map (each valid UTF-8: a `&str` of the map).
    Looked([Option<&'a [u8]>; RESPONSE_KEYS]),
}

impl<'a> ResponseFields<'a> {
    // Always inlined (as when `send_result` was its only caller): one branch on the send path.
    #[inline(always)]
    fn of(fields: &'a ExtFields) -> Self {
        // A decoded header knows where these are: no map, no key comparisons.
        if let Some(places) = fields.response_places() {
            return ResponseFields::Places(places);
        }
        // Anything else (a map built by hand, or a repeated send key, a non-ASCII value):
        // looked up in the map.
        let mut values = [None; RESPONSE_KEYS];
        for (key, value) in fields.iter() {
            if let Some(k) = ResponseKey::of(key.as_bytes()) {
                values[k as usize] = Some(value.as_bytes());
            }
        }
        ResponseFields::Looked(values)
    }
}

/// A required integer field, as [`ExtFields::required_i64`] (or `_i32`) reads it: plain
/// decimal digits directly, anything else (signs, blanks, too many digits) through
/// `str::parse`, which decides.
// Always inlined (as when `send_result` was its only caller): its digits loop is the send
// path's.
#[inline(always)]
fn required_int<T, E>(
    value: Option<&[u8]>,
    key: &'static str,
    narrow: impl FnOnce(i64) -> std::result::Result<T, E>,
) -> std::result::Result<T, CodecError>
where
    T: std::str::FromStr,
{
    let Some(v) = value else {
        return Err(CodecError::MissingField(key));
    };
    if !v.is_empty() && v.len() <= 18 {
        // Checked and summed in one pass: a byte that is not a digit sends the value to
        // `str::parse` (at most 18 digits: no overflow).
        let mut n = 0i64;
        let mut digits = true;
        for &b in v {
            let d = b.wrapping_sub(b'0');
            digits &= d <= 9;
            n = n.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if digits {
            return narrow(n).map_err(|_| CodecError::invalid(key, &String::from_utf8_lossy(v)));
        }
    }
    parsed_int(v, key)
}

/// [`required_int`] for a value that is not plain digits: `str::parse` decides.
#[cold]
fn parsed_int<T: std::str::FromStr>(
    v: &[u8],
    key: &'static str,
) -> std::result::Result<T, CodecError> {
    // Always valid (ASCII, or the bytes of a `&str`): borrowed, no copy.
    let text = String::from_utf8_lossy(v);
    text.trim()
        .parse()
        .map_err(|_| CodecError::invalid(key, &text))
}

/// The HEART_BEAT request for `client_id` with these producer groups.
pub(crate) fn heartbeat_request(client_id: &str, groups: &[String]) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.to_string(),
        producer_groups: groups.to_vec(),
        consumer_groups: Vec::new(),
    };
    RemotingCommand::request(RequestCode::HEART_BEAT).with_body(data.to_json())
}

/// The UNREGISTER_CLIENT request for one producer group.
pub(crate) fn unregister_request(client_id: &str, group: &str) -> RemotingCommand {
    let mut request = RemotingCommand::request(RequestCode::UNREGISTER_CLIENT);
    UnregisterClientRequestHeader {
        client_id: client_id.to_string(),
        producer_group: Some(group.to_string()),
        consumer_group: None,
    }
    .write_to(&mut request.ext_fields);
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProducerConfig;
    use crate::message::Message;
    use crate::producer::prepare;
    use crate::protocol::frame::FLAG_ONEWAY;

    fn defaults() -> SendDefaults {
        SendDefaults::new("GID_\"quoted\"_✓".into(), "TBW102".into(), 4)
    }

    /// A prepared single message ("UNIQ1") and a prepared batch of two ("UNIQ2") on topic
    /// `T`: the requests the send-result tests answer.
    fn single_and_batch() -> (prepare::Prepared, prepare::Prepared) {
        let config = ProducerConfig::builder("GID_R")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let single =
            prepare::prepare_single(Message::new("T", "x"), &config, || "UNIQ1".into()).unwrap();
        let batch = prepare::prepare_batch(
            vec![Message::new("T", "a"), Message::new("T", "b")],
            &config,
            || "UNIQ2".into(),
        )
        .unwrap();
        (single, batch)
    }

    /// `send_result_owned` (the queue moved in) gives what `send_result` (the queue lent)
    /// gave, `fast`; the queue is moved into the result (not cloned: its names are the same
    /// allocations) exactly when the result is stored in it, and given back otherwise.
    fn owned_matches(
        cmd: &RemotingCommand,
        prepared: &Prepared,
        queue: &MessageQueue,
        fast: &Result<SendResult>,
    ) {
        let mut kept = None;
        let owned = send_result_owned(cmd, prepared, queue.clone(), "b:1", &mut kept);
        match (&owned, fast) {
            (Ok(o), Ok(f)) => {
                assert_eq!(o, f, "{cmd:?}");
                if o.queue == *queue {
                    assert!(kept.is_none(), "moved, not kept: {cmd:?}");
                    assert!(Arc::ptr_eq(
                        o.queue.broker_name_arc(),
                        queue.broker_name_arc()
                    ));
                } else {
                    assert_eq!(kept.as_ref(), Some(queue), "given back: {cmd:?}");
                }
            }
            (Err(o), Err(f)) => {
                assert_eq!(o.to_string(), f.to_string(), "{cmd:?}");
                assert_eq!(o.kind(), f.kind());
                assert_eq!(kept.as_ref(), Some(queue), "given back: {cmd:?}");
            }
            _ => panic!("{owned:?} vs {fast:?} for {cmd:?}"),
        }
    }

    /// `is_true` is `eq_ignore_ascii_case(b"true")` for every value of up to 4 bytes made
    /// of the bytes that matter (the letters of "true" in both cases, their neighbours with
    /// bit 5 flipped, other bytes).
    #[test]
    fn is_true_matches_eq_ignore_ascii_case() {
        let bytes = b"tTrRuUeE\x14\x12\x15\x05\x34\x32\x35\x25\xf4\xd4\xe5 0x";
        let mut values: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for v in values.iter().filter(|v| v.len() == len - 1) {
                for &b in bytes {
                    let mut w = v.clone();
                    w.push(b);
                    next.push(w);
                }
            }
            values.extend(next);
        }
        values.push(b"truee".to_vec());
        let mut trues = 0;
        for v in &values {
            assert_eq!(is_true(v), v.eq_ignore_ascii_case(b"true"), "{v:?}");
            trues += usize::from(is_true(v));
        }
        assert_eq!(trues, 16);
    }

    /// `send_result` as it read the fields before the one-pass reader: a lookup per field,
    /// `str::parse` for the numbers. The reference the fast reader is compared with.
    fn send_result_reference(
        response: RemotingCommand,
        prepared: &Prepared,
        queue: &MessageQueue,
        addr: &str,
    ) -> Result<SendResult> {
        let Some(status) = SendStatus::from_response_code(response.code) else {
            return Err(Error::from_response(response.code, response.remark, addr));
        };
        let fields = &response.ext_fields;
        let offset_msg_id = IdStr::new(fields.required("msgId")?);
        let queue_id = fields.required_i32("queueId")?;
        let queue_offset = fields.required_i64("queueOffset")?;
        let present = |key: &str| fields.get(key).filter(|v| !v.is_empty());
        let msg_id = match present("batchUniqId") {
            Some(id) if prepared.batch => IdStr::new(id),
            _ => IdStr::new(&prepared.msg_id),
        };
        Ok(SendResult {
            status,
            msg_id,
            offset_msg_id,
            queue: if queue.queue_id() == queue_id && queue.topic() == prepared.topic {
                queue.clone()
            } else {
                MessageQueue::new(
                    prepared.topic.as_str(),
                    queue.broker_name_arc().clone(),
                    queue_id,
                )
            },
            queue_offset,
            transaction_id: present("transactionId").map(IdStr::new),
            region_id: present("MSG_REGION").map(IdStr::new),
            trace_on: fields.optional_bool("TRACE_ON").unwrap_or(true),
        })
    }

    /// The one-pass `send_result` gives what the lookup-per-field reference gives, field by
    /// field (or the same error), on thousands of varied send responses, each decoded from
    /// its frame in both header layouts: fields missing, empty, repeated, in any order, with
    /// escapes and unicode; numbers with signs, blanks, leading zeros, overflow; every
    /// response code with a remark; the real broker's captured responses.
    #[test]
    fn send_result_matches_the_reference_on_varied_responses() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let (single, batch) = single_and_batch();
        let queues = [
            MessageQueue::new("T", "broker-a", 1),
            MessageQueue::new("Other", "broker-a", 1),
        ];
        let mut commands: Vec<RemotingCommand> = [
            &include_bytes!("../../tests/data/send_v2_response.bin")[..],
            include_bytes!("../../tests/data/send_batch_response.bin"),
            include_bytes!("../../tests/data/send_error_response.bin"),
            include_bytes!("../../tests/data/send_half_response.bin"),
        ]
        .iter()
        .map(|f| RemotingCommand::decode(f).unwrap())
        .collect();
        const NUMBERS: &[&str] = &[
            "0",
            "1",
            "7",
            "42",
            "2147483647",
            "2147483648",
            "-1",
            "+5",
            " 3 ",
            "007",
            "",
            "x",
            "1.0",
            "999999999999999999",
            "9999999999999999999",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "٣",
            "0x10",
            "1 2",
        ];
        const IDS: &[&str] = &[
            "7F000001000051E10000000000000000",
            "",
            "a,b,c",
            "grün ✓ 𝄞",
            "q\"uote\\ \u{1}",
            "7F000001000051E1000000000000011B,7F000001000051E10000000000000202,7F000001000051E100000000000002E9",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(31);
        for _ in 0..3000 {
            let code = *[0, 0, 0, 10, 11, 12, 1, 2, 17, 14, 215]
                .choose(&mut rng)
                .unwrap();
            let mut cmd = RemotingCommand::response(code, rng.gen());
            if rng.gen_bool(0.3) {
                cmd.remark = Some(IDS.choose(&mut rng).unwrap().to_string());
            }
            let mut keys = vec![
                ("msgId", IDS),
                ("queueId", NUMBERS),
                ("queueOffset", NUMBERS),
                ("batchUniqId", IDS),
                ("transactionId", IDS),
                ("MSG_REGION", IDS),
                ("TRACE_ON", &["true", "TRUE", "false", "yes", ""][..]),
                ("offsetMsgId", IDS),
                ("unknown", IDS),
                ("msgid", IDS),
                ("queueIdX", NUMBERS),
            ];
            keys.shuffle(&mut rng);
            for (key, values) in keys {
                // The three required fields are usually there.
                let p = if ["msgId", "queueId", "queueOffset"].contains(&key) {
                    0.93
                } else {
                    0.5
                };
                if rng.gen_bool(p) {
                    let v = if values == NUMBERS && rng.gen_bool(0.7) {
                        rng.gen_range(0..100_000i64).to_string()
                    } else {
                        values.choose(&mut rng).unwrap().to_string()
                    };
                    cmd.ext_fields.insert(key, v);
                }
            }
            for st in [SerializeType::Json, SerializeType::RocketMq] {
                cmd.serialize_type = st;
                let decoded = RemotingCommand::decode(&cmd.to_frame().unwrap()).unwrap();
                commands.push(decoded);
            }
        }
        let (mut ok, mut err, mut raw, mut looked_up) = (0, 0, 0, 0);
        for cmd in commands {
            // Read where the decoder noted the values, or looked up in the map.
            if cmd.ext_fields.response_values().is_some() {
                raw += 1;
            } else {
                looked_up += 1;
            }
            for prepared in [&single, &batch] {
                for queue in &queues {
                    let fast = send_result(&cmd, prepared, queue, "b:1");
                    owned_matches(&cmd, prepared, queue, &fast);
                    let reference = send_result_reference(cmd.clone(), prepared, queue, "b:1");
                    match (&fast, &reference) {
                        (Ok(f), Ok(r)) => {
                            assert_eq!(f, r, "{cmd:?}");
                            ok += 1;
                        }
                        (Err(f), Err(r)) => {
                            assert_eq!(f.to_string(), r.to_string(), "{cmd:?}");
                            assert_eq!(f.kind(), r.kind());
                            err += 1;
                        }
                        _ => panic!("{fast:?} vs {reference:?} for {cmd:?}"),
                    }
                }
            }
        }
        assert!(
            ok > 5_000 && err > 5_000 && raw > 2_000 && looked_up > 1_000,
            "ok {ok}, errors {err}, raw {raw}, looked up {looked_up}"
        );
    }

    /// `send_result` on raw JSON send responses as brokers could write them: the
    /// send-response keys (read where the decoder noted them in the raw header) in any
    /// order, repeated, missing, beside unknown and near-miss keys, with escapes, unicode and
    /// odd numbers; plus truncated frames. Same result or same error as the lookup-per-field
    /// reference, and both the raw reading and the lookups in the map are exercised.
    #[test]
    fn send_result_matches_the_reference_on_raw_json_responses() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let (single, batch) = single_and_batch();
        let queue = MessageQueue::new("T", "broker-a", 1);
        const KEYS: &[&str] = &[
            "msgId",
            "queueId",
            "queueOffset",
            "batchUniqId",
            "transactionId",
            "MSG_REGION",
            "TRACE_ON",
            "offsetMsgId",
            "msgid",
            "queueIdX",
            "a",
            "zz",
            "ключ",
            "msg\\u0049d",
        ];
        const VALUES: &[&str] = &[
            "7F000001000051E10000000000000000",
            "",
            "1",
            "42",
            "-3",
            "+5",
            " 7",
            "2147483648",
            "9223372036854775807",
            "9223372036854775808",
            "true",
            "TRUE",
            "grün ✓ 𝄞",
            "q\\\"uote",
            "\\u0031",
            "a,b",
        ];
        let frame = |header: &[u8]| {
            let mut f = ((4 + header.len()) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&(header.len() as u32).to_be_bytes());
            f.extend_from_slice(header);
            f
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5107);
        let (mut slotted, mut looked_up, mut ok, mut err) = (0, 0, 0, 0);
        for round in 0..6000 {
            let mut fields: Vec<String> = Vec::new();
            // Usually the three required keys, in order, as brokers write them.
            for key in ["MSG_REGION", "TRACE_ON", "msgId", "queueId", "queueOffset"] {
                if rng.gen_bool(0.9) {
                    let v = if key.starts_with('q') && rng.gen_bool(0.7) {
                        rng.gen_range(0..100_000).to_string()
                    } else {
                        VALUES.choose(&mut rng).unwrap().to_string()
                    };
                    fields.push(format!("\"{key}\":\"{v}\""));
                }
            }
            for _ in 0..[0, 0, 1, 2, 3][rng.gen_range(0..5)] {
                let key = KEYS.choose(&mut rng).unwrap();
                let v = VALUES.choose(&mut rng).unwrap();
                fields.push(format!("\"{key}\":\"{v}\""));
            }
            match rng.gen_range(0..3) {
                0 => fields.sort(),
                1 => fields.shuffle(&mut rng),
                _ => {}
            }
            let code = *[0, 0, 0, 10, 11, 12, 1, 17].choose(&mut rng).unwrap();
            let header = format!(
                r#"{{"code":{code},"extFields":{{{}}},"flag":1,"language":"JAVA","opaque":{round},"serializeTypeCurrentRPC":"JSON","version":401}}"#,
                fields.join(",")
            );
            let mut bytes = frame(header.as_bytes());
            if rng.gen_bool(0.05) {
                // Truncated: the frame's own length still matches, the header is cut.
                let cut = rng.gen_range(10..header.len());
                bytes = frame(&header.as_bytes()[..cut]);
            }
            let Ok(cmd) = RemotingCommand::decode(&bytes) else {
                continue;
            };
            if cmd.ext_fields.response_values().is_some() {
                slotted += 1;
            } else {
                looked_up += 1;
            }
            for prepared in [&single, &batch] {
                let fast = send_result(&cmd, prepared, &queue, "b:1");
                let reference = send_result_reference(cmd.clone(), prepared, &queue, "b:1");
                owned_matches(&cmd, prepared, &queue, &fast);
                match (&fast, &reference) {
                    (Ok(f), Ok(r)) => {
                        assert_eq!(f, r, "{header}");
                        ok += 1;
                    }
                    (Err(f), Err(r)) => {
                        assert_eq!(f.to_string(), r.to_string(), "{header}");
                        assert_eq!(f.kind(), r.kind());
                        err += 1;
                    }
                    _ => panic!("{fast:?} vs {reference:?} for {header}"),
                }
            }
        }
        assert!(
            slotted > 500 && looked_up > 1000 && ok > 1000 && err > 1000,
            "slotted {slotted}, looked up {looked_up}, ok {ok}, errors {err}"
        );
    }

    /// `send_result` on send responses read through the I/O thread's layout memo (sequences
    /// of the real broker's responses, tests/data, with new values each time: the memo hits)
    /// gives what it gives on the same header read independently (`serde_json`, into a map,
    /// its fields looked up): same result or same error, over ids, odd numbers, escapes,
    /// unicode, a region or trace flag that changes, a code that is an error.
    #[test]
    fn send_result_through_the_memo_matches_an_independent_read() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let (single, batch) = single_and_batch();
        let queue = MessageQueue::new("T", "broker-a", 1);
        let header_of = |frame: &[u8]| {
            let len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
            String::from_utf8(frame[8..8 + (len & 0xff_ffff)].to_vec()).unwrap()
        };
        let bases = [
            header_of(include_bytes!("../../tests/data/send_v2_response.bin")),
            header_of(include_bytes!("../../tests/data/send_half_response.bin")),
            header_of(include_bytes!("../../tests/data/send_batch_response.bin")),
            r#"{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"7F000001000051E10000000000000000","queueId":"3","queueOffset":"0","transactionId":"7F0000010001FIXTURE0000000001"},"flag":1,"language":"RUST","opaque":-7,"serializeTypeCurrentRPC":"JSON","version":401}"#.to_string(),
        ];
        // `"key":"value"` with the value replaced (the key is there once, its value plain).
        let set = |header: &str, key: &str, value: &str| -> String {
            let pat = format!("\"{key}\":\"");
            let Some(at) = header.find(&pat) else {
                return header.to_string();
            };
            let start = at + pat.len();
            let end = start + header[start..].find('"').unwrap();
            format!("{}{value}{}", &header[..start], &header[end..])
        };
        let set_int = |header: &str, key: &str, value: &str| -> String {
            let pat = format!("\"{key}\":");
            let start = header.find(&pat).unwrap() + pat.len();
            let end = start + header[start..].find([',', '}']).unwrap();
            format!("{}{value}{}", &header[..start], &header[end..])
        };
        // The header read by `serde_json` into a map: no raw places, no memo.
        let independent = |header: &str| -> Option<RemotingCommand> {
            let v: serde_json::Value = serde_json::from_str(header).ok()?;
            let mut cmd = RemotingCommand::response(i32::try_from(v["code"].as_i64()?).ok()?, 0);
            cmd.remark = v["remark"].as_str().map(str::to_string);
            let mut ext = ExtFields::new();
            for (k, v) in v["extFields"].as_object()? {
                ext.insert(k.clone(), v.as_str()?);
            }
            cmd.ext_fields = ext;
            Some(cmd)
        };
        let frame = |header: &[u8]| {
            let mut f = ((4 + header.len()) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&(header.len() as u32).to_be_bytes());
            f.extend_from_slice(header);
            f
        };
        let hex = |rng: &mut rand::rngs::StdRng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b"0123456789ABCDEF"[rng.gen_range(0..16)]))
                .collect()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x3e31);
        let (mut placed, mut ok, mut err) = (0, 0, 0);
        let mut base = bases[0].clone();
        for round in 0..8000 {
            if rng.gen_range(0..200) == 0 {
                base = bases.choose(&mut rng).unwrap().clone();
            }
            let odd = |rng: &mut rand::rngs::StdRng| -> &'static str {
                [
                    "",
                    "-1",
                    "+5",
                    " 7",
                    "x",
                    "2147483648",
                    "9223372036854775808",
                    "grün ✓",
                    "\\u0031",
                    "q\\\"",
                    "1.5",
                    "007",
                ]
                .choose(rng)
                .unwrap()
            };
            let mut h = set_int(&base, "opaque", &rng.gen_range(-5..i32::MAX).to_string());
            let msg_id = match rng.gen_range(0..30) {
                0 => odd(&mut rng).to_string(),
                1 => format!("{},{}", hex(&mut rng, 32), hex(&mut rng, 32)),
                2 => hex(&mut rng, 70),
                _ => hex(&mut rng, 32),
            };
            h = set(&h, "msgId", &msg_id);
            let queue_id = match rng.gen_range(0..30) {
                0 => odd(&mut rng).to_string(),
                _ => rng.gen_range(0..16).to_string(),
            };
            h = set(&h, "queueId", &queue_id);
            let offset = match rng.gen_range(0..30) {
                0 => odd(&mut rng).to_string(),
                _ => {
                    let shift = rng.gen_range(0..63);
                    rng.gen_range(0..i64::MAX >> shift).to_string()
                }
            };
            h = set(&h, "queueOffset", &offset);
            if rng.gen_range(0..10) == 0 {
                let tx = if rng.gen_bool(0.5) {
                    hex(&mut rng, 32)
                } else {
                    odd(&mut rng).into()
                };
                h = set(&h, "transactionId", &tx);
            }
            if rng.gen_range(0..300) == 0 {
                let region = ["RegionB", "DefaultRegion", "", "grün"]
                    .choose(&mut rng)
                    .unwrap();
                h = set(&h, "MSG_REGION", region);
            }
            if rng.gen_range(0..300) == 0 {
                let trace = ["false", "true", "TRUE", "x"].choose(&mut rng).unwrap();
                h = set(&h, "TRACE_ON", trace);
            }
            if rng.gen_range(0..50) == 0 {
                h = set_int(
                    &h,
                    "code",
                    ["1", "10", "11", "12", "17"].choose(&mut rng).unwrap(),
                );
            }
            let decoded = RemotingCommand::decode(&frame(h.as_bytes()));
            let reference = independent(&h);
            let (Ok(cmd), Some(reference)) = (decoded, reference) else {
                panic!("round {round}: not read: {h}");
            };
            placed += usize::from(cmd.ext_fields.response_values().is_some());
            for prepared in [&single, &batch] {
                let fast = send_result(&cmd, prepared, &queue, "b:1");
                let slow = send_result(&reference, prepared, &queue, "b:1");
                owned_matches(&cmd, prepared, &queue, &fast);
                match (&fast, &slow) {
                    (Ok(f), Ok(s)) => {
                        assert_eq!(f, s, "{h}");
                        ok += 1;
                    }
                    (Err(f), Err(s)) => {
                        assert_eq!(f.to_string(), s.to_string(), "{h}");
                        assert_eq!(f.kind(), s.kind(), "{h}");
                        err += 1;
                    }
                    _ => panic!("{h}: {fast:?} vs {slow:?}"),
                }
            }
        }
        assert!(
            placed > 6000 && ok > 10_000 && err > 500,
            "{placed} {ok} {err}"
        );
    }

    /// The frame a golden send must be, built field by field from the layout (Java's
    /// `RocketMQSerializable`): big-endian code i16, language u8, version i16, opaque i32,
    /// flag i32, remark length i32 (0: no remark), ext fields length i32, then each field as
    /// key length i16, key, value length i32, value, in key order; then the body.
    fn hand_made_binary(opaque: i32, fields: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut map = Vec::new();
        for (k, v) in fields {
            map.extend_from_slice(&[0, k.len() as u8]);
            map.extend_from_slice(k.as_bytes());
            map.extend_from_slice(&[0, 0, (v.len() >> 8) as u8, v.len() as u8]);
            map.extend_from_slice(v.as_bytes());
        }
        let mut header = vec![0x01, 0x36, 12, 0x01, 0x91]; // 310, RUST, 401
        header.extend_from_slice(&opaque.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flag 0, remark length 0
        header.extend_from_slice(&(map.len() as u32).to_be_bytes());
        header.extend_from_slice(&map);
        let mut frame = ((4 + header.len() + body.len()) as u32)
            .to_be_bytes()
            .to_vec();
        frame.extend_from_slice(&[1, 0, (header.len() >> 8) as u8, header.len() as u8]);
        frame.extend_from_slice(&header);
        frame.extend_from_slice(body);
        frame
    }

    /// The binary send frame against bytes derived from the layout by hand: the fixed part as
    /// a literal, every field in key order, negative numbers, an empty broker name left out.
    #[test]
    fn golden_binary_send_frame() {
        let config = ProducerConfig::builder("GID_G")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let msg = Message::new("TopicG", b"hi".to_vec()).with_flag(-3);
        let prepared = prepare::prepare_single(msg, &config, || "ID1".into()).unwrap();
        let defaults = SendDefaults::new("GID_G".into(), "TBW102".into(), 4);
        let spec = FrameSpec {
            opaque: 0x0102_0304,
            flag: 0,
            serialize_type: SerializeType::RocketMq,
            credentials: None,
        };
        let props = prepared.properties.as_str().to_string();
        assert!(props.contains("UNIQ_KEY\u{1}ID1"), "{props:?}");
        for (queue, n) in [
            (MessageQueue::new("TopicG", "broker-a", 2), Some("broker-a")),
            (MessageQueue::new("TopicG", "", 2), None),
        ] {
            let mut got = Vec::new();
            encode_send_frame(&prepared, &queue, &defaults, -1, spec, &mut got).unwrap();
            let mut fields = vec![
                ("a", "GID_G"),
                ("b", "TopicG"),
                ("c", "TBW102"),
                ("d", "4"),
                ("e", "2"),
                ("f", "0"),
                ("g", "-1"),
                ("h", "-3"),
                ("i", props.as_str()),
                ("j", "0"),
                ("k", "false"),
                ("m", "false"),
            ];
            fields.extend(n.map(|n| ("n", n)));
            assert_eq!(got, hand_made_binary(0x0102_0304, &fields, b"hi"));
            // The fixed part, as a literal: type 1, code 310, RUST, 401, opaque, flag 0,
            // no remark.
            assert_eq!(got[4], 1);
            assert_eq!(
                got[8..29],
                [
                    0x01, 0x36, 0x0c, 0x01, 0x91, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0,
                    got[25], got[26], got[27], got[28]
                ]
            );
            // The first field: key length 1, "a", value length 5, "GID_G".
            assert_eq!(got[29..41], *b"\0\x01a\0\0\0\x05GID_G");
        }
    }

    /// The direct encoder writes exactly the bytes the command path writes.
    #[test]
    fn direct_frame_equals_the_command_frame() {
        let config = ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let single = Message::new("T_1", vec![0u8, 1, 2, 255])
            .with_tags("a\"b\\c")
            .with_keys(["k1", "k2"])
            .with_property("p", "grün ✓ 𝄞 \u{7}\n");
        let mut id = 0;
        let mut next = || {
            id += 1;
            crate::message::IdStr::from(format!("ID{id}"))
        };
        let prepared = [
            prepare::prepare_single(single.clone(), &config, &mut next).unwrap(),
            prepare::prepare_single(Message::new("T", vec![b'x'; 5000]), &config, &mut next)
                .unwrap(),
            prepare::prepare_batch(vec![single.clone(), single], &config, &mut next).unwrap(),
        ];
        let queues = [
            MessageQueue::new("T", "broker-a", 3),
            MessageQueue::new("T", "", -1),
            MessageQueue::new("T", "b\"x", i32::MAX),
        ];
        let creds = [
            None,
            Some(Credentials::new("ak", "sk")),
            Some(
                Credentials::new("ak\"✓", "sk-2")
                    .with_security_token("tok")
                    .with_algorithm(crate::protocol::acl::SignatureAlgorithm::HmacSha256),
            ),
        ];
        for p in &prepared {
            for q in &queues {
                for (opaque, flag) in [(0, 0), (-7, FLAG_ONEWAY), (i32::MAX, 0), (5, 12)] {
                    for c in &creds {
                        let born = 1_795_468_920_976;
                        let mut expected = send_request(p, q, &defaults(), born);
                        expected.opaque = opaque;
                        expected.flag = flag;
                        if let Some(c) = c {
                            c.sign(&mut expected.ext_fields, &expected.body);
                        }
                        let expected_cmd = expected.clone();
                        let expected = expected.to_frame().unwrap();
                        let mut got = vec![9u8; 3]; // appends after what is there
                        let spec = FrameSpec {
                            opaque,
                            flag,
                            serialize_type: SerializeType::Json,
                            credentials: c.as_ref(),
                        };
                        encode_send_frame(p, q, &defaults(), born, spec, &mut got).unwrap();
                        assert_eq!(&got[..3], &[9, 9, 9]);
                        assert_eq!(
                            String::from_utf8_lossy(&got[3..]),
                            String::from_utf8_lossy(&expected)
                        );
                        assert_eq!(got[3..], expected[..]);
                        // The binary layout: the command's binary frame, byte for byte.
                        let spec = FrameSpec {
                            serialize_type: SerializeType::RocketMq,
                            ..spec
                        };
                        let mut bin = vec![7u8; 2];
                        encode_send_frame(p, q, &defaults(), born, spec, &mut bin).unwrap();
                        assert_eq!(&bin[..2], &[7, 7]);
                        let bin = bin.split_off(2);
                        let mut expected_bin = expected_cmd.clone();
                        expected_bin.serialize_type = SerializeType::RocketMq;
                        assert_eq!(bin, expected_bin.to_frame().unwrap());
                        let decoded = RemotingCommand::decode(&bin).unwrap();
                        assert_eq!(decoded.serialize_type, SerializeType::RocketMq);
                        assert_eq!((decoded.opaque, decoded.flag), (opaque, flag));
                        assert_eq!(decoded.body, p.wire_body());
                        assert_eq!(
                            decoded.ext_fields.get(crate::protocol::acl::SIGNATURE),
                            expected_cmd.ext_fields.get(crate::protocol::acl::SIGNATURE)
                        );
                        // What a broker checks: the decoded fields and body verify.
                        if let Some(c) = c {
                            for cmd in [&decoded, &RemotingCommand::decode(&got[3..]).unwrap()] {
                                let sig = crate::protocol::acl::signature(
                                    c.algorithm(),
                                    c.secret_key().expose(),
                                    cmd.ext_fields.iter(),
                                    &cmd.body,
                                );
                                assert_eq!(
                                    cmd.ext_fields.get(crate::protocol::acl::SIGNATURE),
                                    Some(sig.as_str())
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The direct encoder against the reference (`send_request` through `RemotingCommand`)
    /// on many random sends: properties with every escape class, unicode, long keys (past the
    /// inline properties), the caller's own `UNIQ_KEY` or `WAIT`, tags, keys, delay levels,
    /// transactions, flags, compression, batches, replies, namespaces, odd groups, broker
    /// names and queue ids, negative and huge numbers, both layouts, with and without
    /// credentials.
    #[test]
    fn direct_frame_equals_the_reference_on_random_sends() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(153);
        let alphabet: Vec<char> = (0u32..0x20)
            .filter_map(char::from_u32)
            .filter(|c| !matches!(c, '\u{1}' | '\u{2}'))
            .chain("\"\\aZ09 _-/=\u{7f}é€✓𝄞".chars())
            .collect();
        let text = |rng: &mut rand::rngs::StdRng, max: usize| -> String {
            let len = rng.gen_range(1..=max);
            let plain = rng.gen_bool(0.5);
            (0..len)
                .map(|_| {
                    if plain {
                        (b'a' + rng.gen_range(0..26)) as char
                    } else {
                        alphabet[rng.gen_range(0..alphabet.len())]
                    }
                })
                .collect()
        };
        let configs = [
            ProducerConfig::builder("g")
                .name_server("127.0.0.1:9876")
                .compress_threshold(64)
                .build()
                .unwrap(),
            ProducerConfig::builder("g")
                .name_server("127.0.0.1:9876")
                .namespace("ns_1")
                .build()
                .unwrap(),
        ];
        let all_defaults = [
            defaults(),
            SendDefaults::new("GID_plain".into(), "TBW102".into(), -8),
            SendDefaults::new("".into(), "\\k\u{3}".into(), i32::MAX),
        ];
        let creds = [
            None,
            Some(Credentials::new("ak", "sk").with_security_token("t\"ok")),
        ];
        let long_topic = "t".repeat(100);
        let kept_queues: Vec<MessageQueue> = ["broker-a", "", "b\"\\x\u{1f}✓", "broker-b"]
            .iter()
            .zip([3, 0, 15, -2])
            .map(|(b, q)| MessageQueue::new("T", *b, q))
            .collect();
        let mut compared = 0;
        let mut memo_frames = 0;
        let mut oneway_memo_frames = 0;
        let mut binary_memo_frames = 0;
        let mut usual_frames = 0; // no properties of the caller's, flag 0: constants
        let mut with_user_props = 0;
        for round in 0..3000 {
            let topic = ["T", "Topic_1-%|x", &long_topic][rng.gen_range(0..3)];
            let mut msg = Message::new(topic, {
                let n = [1, 10, 100, 3000][rng.gen_range(0..4)];
                (0..n).map(|i| (i % 7) as u8).collect::<Vec<u8>>()
            });
            for _ in 0..rng.gen_range(0..4) {
                let key = if rng.gen_bool(0.1) {
                    text(&mut rng, 300)
                } else {
                    text(&mut rng, 12)
                };
                msg.set_property(key, text(&mut rng, 40));
            }
            if rng.gen_bool(0.3) {
                msg = msg.with_tags(text(&mut rng, 10));
            }
            if rng.gen_bool(0.3) {
                msg = msg.with_keys([text(&mut rng, 10), text(&mut rng, 5)]);
            }
            if rng.gen_bool(0.2) {
                msg = msg.with_delay_level(rng.gen_range(1..19));
            }
            if rng.gen_bool(0.2) {
                msg.set_property(crate::message::property::TRANSACTION_PREPARED, "true");
            }
            if rng.gen_bool(0.2) {
                msg.set_property(
                    crate::message::property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
                    text(&mut rng, 40),
                );
            }
            if rng.gen_bool(0.2) {
                msg = msg.with_wait_store_msg_ok(rng.gen_bool(0.5));
            }
            if rng.gen_bool(0.3) {
                msg = msg.with_flag(rng.gen_range(i32::MIN..=i32::MAX));
            }
            if rng.gen_bool(0.15) {
                // The usual send: no properties of the caller's, flag 0.
                msg = Message::new(topic, msg.body().to_vec());
            }
            let config = &configs[rng.gen_range(0..configs.len())];
            let mut n = 0;
            let mut ids = || {
                n += 1;
                crate::message::IdStr::from(format!("7F00000100{round:08X}{n:014X}"))
            };
            let prepared = if rng.gen_bool(0.15) {
                prepare::prepare_batch(vec![msg.clone(), msg], config, &mut ids)
            } else {
                prepare::prepare_single(msg, config, &mut ids)
            };
            let Ok(mut prepared) = prepared else {
                continue; // a property the send refuses (an empty name, say)
            };
            if !prepared.properties.as_str().starts_with("UNIQ_KEY")
                && !prepared.properties.as_str().starts_with("WAIT")
            {
                with_user_props += 1;
            }
            prepared.reply = rng.gen_bool(0.1);
            let broker = ["broker-a", "", "b\"\\x\u{1f}✓"][rng.gen_range(0..3)];
            let queue_id = [0, 7, -1, i32::MAX, i32::MIN, 12, 100][rng.gen_range(0..7)];
            // Mostly a queue of a few kept ones (their broker names are the same shared
            // strings, as a route's are: what the thread's frame memo remembers), sometimes
            // a new one with an equal name.
            let queue = if rng.gen_bool(0.7) {
                kept_queues[rng.gen_range(0..kept_queues.len())].clone()
            } else {
                MessageQueue::new(prepared.wire_topic(), broker, queue_id)
            };
            // Often the same millisecond as the frame before (the memo's digits reused).
            let born = [
                1_795_468_920_976,
                1_795_468_920_976,
                1_795_468_920_977,
                0,
                -5,
                i64::MAX,
                i64::MIN,
            ][rng.gen_range(0..7)];
            let opaque = rng.gen_range(i32::MIN..=i32::MAX);
            // 0 and oneway are what sends use (0 has its own constant text); others must
            // still come out as the command writes them.
            let flag = [0, FLAG_ONEWAY, 0, 1, -1, i32::MIN][rng.gen_range(0..6)];
            let d = &all_defaults[rng.gen_range(0..all_defaults.len())];
            let c = &creds[rng.gen_range(0..creds.len())];
            let mut expected = send_request(&prepared, &queue, d, born);
            expected.opaque = opaque;
            expected.flag = flag;
            if let Some(c) = c {
                c.sign(&mut expected.ext_fields, &expected.body);
            }
            for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
                let mut cmd = expected.clone();
                cmd.serialize_type = serialize_type;
                let spec = FrameSpec {
                    opaque,
                    flag,
                    serialize_type,
                    credentials: c.as_ref(),
                };
                let mut got = vec![1u8; rng.gen_range(0..3)];
                let before = got.clone();
                encode_send_frame(&prepared, &queue, d, born, spec, &mut got).unwrap();
                assert_eq!(got[..before.len()], before[..]);
                assert_eq!(
                    String::from_utf8_lossy(&got[before.len()..]),
                    String::from_utf8_lossy(&cmd.to_frame().unwrap()),
                    "round {round}"
                );
                compared += 1;
                if c.is_none() {
                    memo_frames += 1;
                    oneway_memo_frames += usize::from(flag == FLAG_ONEWAY);
                    binary_memo_frames += usize::from(serialize_type == SerializeType::RocketMq);
                    if prepared.properties.only_plain_defaults().is_some() && prepared.flag == 0 {
                        usual_frames += 1;
                    }
                }
            }
        }
        assert!(compared > 4000, "only {compared} frames compared");
        assert!(
            memo_frames > 2000,
            "only {memo_frames} frames from the memo"
        );
        assert!(
            oneway_memo_frames > 300,
            "only {oneway_memo_frames} oneway frames from the memo"
        );
        assert!(
            binary_memo_frames > 1000,
            "only {binary_memo_frames} binary frames from the memo"
        );
        assert!(usual_frames > 20, "only {usual_frames} usual frames");
        assert!(
            with_user_props > 500,
            "only {with_user_props} with the caller's properties"
        );
    }

    /// The constant end of JSON headers is the defaults' (the client version's text).
    #[test]
    fn json_end_is_the_defaults_end() {
        assert_eq!(&defaults().json_end[..], &JSON_END[..]);
        for opaque in [0, 7, 10, -1, i32::MIN, i32::MAX, 123_456] {
            let mut out = vec![1];
            write_opaque_end(&mut out, opaque);
            assert_eq!(
                out,
                [&[1][..], opaque.to_string().as_bytes(), JSON_END].concat()
            );
        }
        // The memo's text of the next opaque (raised in place) across carries, signs, wraps,
        // repeats and jumps.
        let mut memo = FrameMemo::EMPTY;
        let mut opaques: Vec<i32> = (-12..120).chain(995..1012).collect();
        opaques.extend([
            5,
            5,
            6,
            i32::MAX - 1,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            0,
            1,
            0,
        ]);
        opaques.extend((0..300).map(|i| (i * 7919) % 1000 - 200));
        for opaque in opaques {
            let mut out = vec![2];
            memo.write_opaque_end(&mut out, opaque);
            assert_eq!(
                out,
                [&[2][..], opaque.to_string().as_bytes(), JSON_END].concat(),
                "{opaque}"
            );
        }
    }

    /// Runs of sends that mostly repeat the one before, as a producer's do (same group,
    /// topic, broker, flag; the next opaque; the same or the next millisecond), with one
    /// thing changed now and then: the frames the thread's memo writes are the reference's
    /// bytes, in both layouts, whatever changed (queue ids of other lengths,
    /// opaques crossing a power of ten or negative, born timestamps of other lengths, ids of
    /// other lengths, the caller's properties, tags, a transaction, a batch, a reply, a
    /// namespace, oneway, another group or broker).
    #[test]
    fn memo_frames_of_repeating_sends_equal_the_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(909);
        let configs = [
            ProducerConfig::builder("g")
                .name_server("127.0.0.1:9876")
                .build()
                .unwrap(),
            ProducerConfig::builder("g")
                .name_server("127.0.0.1:9876")
                .namespace("ns_1")
                .build()
                .unwrap(),
        ];
        let all_defaults = [
            SendDefaults::new("GID_plain".into(), "TBW102".into(), 4),
            defaults(),
        ];
        // Broker names shared as a route shares them (what the thread's memo remembers).
        let brokers: Vec<Arc<str>> = ["broker-a", "broker-b", "b\"✓", ""]
            .into_iter()
            .map(Arc::from)
            .collect();
        let queues: Vec<(Arc<str>, i32)> = brokers
            .iter()
            .flat_map(|b| [0, 3, 9, 10, 15, 123, -1].map(|q| (b.clone(), q)))
            .collect();
        let (mut config, mut d, mut topic, mut queue) = (0, 0, "T", 1);
        let (mut flag, mut born, mut opaque) = (0, 1_795_468_920_976i64, 1i32);
        let (mut kind, mut id_len) = (0, 32);
        let mut compared = 0;
        for round in 0..6000 {
            // Mostly what a producer does from one send to the next.
            opaque = opaque.wrapping_add(1);
            born += i64::from(rng.gen_bool(0.3));
            kind = if rng.gen_bool(0.9) { 0 } else { kind };
            match rng.gen_range(0..40) {
                0 => config = rng.gen_range(0..configs.len()),
                1 => d = rng.gen_range(0..all_defaults.len()),
                2 => topic = ["T", "Topic_1-%|x", "TopicTest"][rng.gen_range(0..3)],
                3..=6 => queue = rng.gen_range(0..queues.len()),
                7 => flag = [0, FLAG_ONEWAY][rng.gen_range(0..2)],
                8 => born = [0, -5, 9, 1_795_468_920_976, i64::MIN][rng.gen_range(0..5)],
                9 => opaque = [9, 99, 999_999, -3, i32::MAX, 0][rng.gen_range(0..6)],
                10..=13 => kind = rng.gen_range(1..8),
                14 => id_len = [32, 20, 44, 1][rng.gen_range(0..4)],
                _ => {}
            }
            let body: Vec<u8> = (0..[0, 1, 128, 5000][rng.gen_range(0..4)])
                .map(|i| (i % 251) as u8)
                .collect();
            let mut msg = Message::new(topic, body);
            match kind {
                1 => msg = msg.with_tags("TagA"),
                2 => msg = msg.with_keys(["k1", "k\"2"]),
                3 => msg.set_property("p", "grün ✓ \u{7}\n"),
                4 => msg.set_property(crate::message::property::TRANSACTION_PREPARED, "true"),
                5 => msg = msg.with_flag(7),
                6 => msg = msg.with_wait_store_msg_ok(false),
                _ => {}
            }
            let config = &configs[config];
            let mut n = 0u64;
            let mut ids = || {
                n += 1;
                let id = format!(
                    "{:0>width$X}",
                    u64::from(round as u32) << 8 | n,
                    width = id_len
                );
                crate::message::IdStr::from(id)
            };
            let prepared = if kind == 7 {
                prepare::prepare_batch(vec![msg.clone(), msg], config, &mut ids)
            } else {
                prepare::prepare_single(msg, config, &mut ids)
            };
            let Ok(mut prepared) = prepared else {
                continue;
            };
            prepared.reply = kind == 6 && rng.gen_bool(0.5);
            let (broker, queue_id) = &queues[queue];
            let q = MessageQueue::new(prepared.wire_topic(), broker.clone(), *queue_id);
            let defaults = &all_defaults[d];
            let mut expected = send_request(&prepared, &q, defaults, born);
            expected.opaque = opaque;
            expected.flag = flag;
            for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
                let mut cmd = expected.clone();
                cmd.serialize_type = serialize_type;
                let spec = FrameSpec {
                    opaque,
                    flag,
                    serialize_type,
                    credentials: None,
                };
                let mut got = vec![3u8; rng.gen_range(0..2)];
                let at = got.len();
                encode_send_frame(&prepared, &q, defaults, born, spec, &mut got).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got[at..]),
                    String::from_utf8_lossy(&cmd.to_frame().unwrap()),
                    "round {round} {serialize_type:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 8000, "only {compared} frames compared");
    }

    /// The usual frame's template ([`UsualFrame`]): runs of usual sends (no properties of
    /// the caller's, an id of this client's length, flag 0) whose queue id, born timestamp
    /// and opaque change as a producer's do (queue ids round robin over one and two digits,
    /// the next opaque, the same or the next millisecond) and also by jumps to other lengths
    /// and signs, with another kind of send, topic, broker, group or oneway now and then:
    /// every frame is the reference's bytes.
    #[test]
    fn usual_frames_equal_the_reference_whatever_changes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1111);
        let config = ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let all_defaults = [
            defaults(),
            SendDefaults::new("GID_x".into(), "TBW102".into(), 8),
        ];
        let brokers: Vec<Arc<str>> = ["broker-a", "b\"✓", ""]
            .into_iter()
            .map(Arc::from)
            .collect();
        let (mut d, mut topic, mut broker, mut flag) = (0, "T", 0, 0);
        let (mut queues, mut next_queue) = (4, 0);
        let (mut born, mut opaque) = (1_795_468_920_976i64, 1i32);
        let mut usual = 0;
        for round in 0..20_000u64 {
            opaque = opaque.wrapping_add(1);
            born += i64::from(rng.gen_bool(0.05));
            next_queue = (next_queue + 1) % queues;
            let mut queue_id = next_queue;
            let mut tagged = false;
            match rng.gen_range(0..100) {
                0 => d = rng.gen_range(0..all_defaults.len()),
                1 => topic = ["T", "Topic_1-%|x", "TopicTest"][rng.gen_range(0..3)],
                2 => broker = rng.gen_range(0..brokers.len()),
                3 => flag = [0, FLAG_ONEWAY][rng.gen_range(0..2)],
                4 => queues = [1, 4, 8, 10, 11, 16, 200][rng.gen_range(0..7)],
                5 => {
                    born =
                        [0, -5, 9, 99, 1_795_468_920_976, i64::MIN, i64::MAX][rng.gen_range(0..7)]
                }
                6 => {
                    opaque = [8, 9, 99, 999_999, -3, -1, i32::MAX, i32::MIN, 0][rng.gen_range(0..9)]
                }
                7 => queue_id = [-1, i32::MIN, i32::MAX, 1000][rng.gen_range(0..4)],
                8 => tagged = true,
                _ => {}
            }
            let body: Vec<u8> = (0..[1, 128, 3000][rng.gen_range(0..3)])
                .map(|i| (i % 251) as u8)
                .collect();
            let mut msg = Message::new(topic, body);
            if tagged {
                msg = msg.with_tags("TagA");
            }
            let ids = || crate::message::IdStr::from(format!("7F0000010000{round:020X}"));
            let prepared = prepare::prepare_single(msg, &config, ids).unwrap();
            usual += usize::from(prepared.properties.usual_id().is_some());
            let q = MessageQueue::new(prepared.wire_topic(), brokers[broker].clone(), queue_id);
            let defaults = &all_defaults[d];
            let mut expected = send_request(&prepared, &q, defaults, born);
            expected.opaque = opaque;
            expected.flag = flag;
            let spec = FrameSpec {
                opaque,
                flag,
                serialize_type: SerializeType::Json,
                credentials: None,
            };
            let mut got = vec![5u8; rng.gen_range(0..2)];
            let at = got.len();
            encode_send_frame(&prepared, &q, defaults, born, spec, &mut got).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got[at..]),
                String::from_utf8_lossy(&expected.to_frame().unwrap()),
                "round {round}"
            );
        }
        assert!(usual > 18_000, "only {usual} usual frames");
    }

    /// A usual frame whose header is too long (a huge group) is refused as the general
    /// encoder refuses it, with nothing appended; the next frames are written as before.
    #[test]
    fn usual_frame_with_a_header_too_large_is_refused() {
        let config = ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let huge = SendDefaults::new("g".repeat(MAX_HEADER_LEN), "TBW102".into(), 4);
        let small = defaults();
        let q = MessageQueue::new("T", "broker-a", 1);
        for (round, d) in [&small, &huge, &small, &huge, &huge, &small]
            .into_iter()
            .enumerate()
        {
            let ids = || crate::message::IdStr::from(format!("7F00000100000000{round:016X}"));
            let prepared =
                prepare::prepare_single(Message::new("T", vec![1; 10]), &config, ids).unwrap();
            assert!(prepared.properties.usual_id().is_some());
            for credentials in [None, Some(Credentials::new("ak", "sk"))] {
                let spec = FrameSpec {
                    opaque: round as i32,
                    flag: 0,
                    serialize_type: SerializeType::Json,
                    credentials: credentials.as_ref(),
                };
                let mut got = vec![7u8];
                let result = encode_send_frame(&prepared, &q, d, 5, spec, &mut got);
                if std::ptr::eq(d, &huge) {
                    assert!(
                        matches!(
                            result,
                            Err(Error::Protocol(CodecError::HeaderTooLarge(n))) if n > MAX_HEADER_LEN
                        ),
                        "{result:?}"
                    );
                    assert_eq!(got, [7]);
                } else if credentials.is_none() {
                    result.unwrap();
                    let mut expected = send_request(&prepared, &q, d, 5);
                    expected.opaque = round as i32;
                    assert_eq!(got[1..], expected.to_frame().unwrap()[..]);
                }
            }
        }
    }

    /// A buffer that held a usual frame is not grown again for the next one with a longer
    /// opaque or queue id (a frame pool's buffers are reused: one more digit must not make
    /// every one of them grow).
    #[test]
    fn usual_frame_buffer_has_room_for_longer_numbers() {
        let config = ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let d = defaults();
        let mut out = Vec::new();
        let mut capacity = 0;
        for (round, (opaque, queue_id)) in [(9, 9), (10, 10), (99_999, 10), (100_000, 11)]
            .into_iter()
            .enumerate()
        {
            let ids = || crate::message::IdStr::from(format!("7F00000100000000{round:016X}"));
            let prepared =
                prepare::prepare_single(Message::new("T", vec![1; 128]), &config, ids).unwrap();
            let q = MessageQueue::new("T", "broker-a", queue_id);
            let spec = FrameSpec {
                opaque,
                flag: 0,
                serialize_type: SerializeType::Json,
                credentials: None,
            };
            out.clear();
            encode_send_frame(&prepared, &q, &d, 5, spec, &mut out).unwrap();
            let mut expected = send_request(&prepared, &q, &d, 5);
            expected.opaque = opaque;
            assert_eq!(out, expected.to_frame().unwrap());
            if round == 0 {
                capacity = out.capacity();
            }
            assert_eq!(out.capacity(), capacity, "round {round}");
        }
    }
}
