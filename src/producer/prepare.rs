//! Validation and one-time preparation of a message before its first attempt: the id, the
//! properties string, compression and the sysFlag. Retries reuse what is prepared here.

use std::io::Write as _;
use std::sync::Arc;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::message::{property, IdStr, Message};
use crate::producer::hooks::{Hooked, SendMode};
use crate::protocol::frame::write_json_text;
use crate::protocol::message_codec::{self, sys_flag};
use crate::protocol::namespace;

/// Longest topic name.
pub(crate) const MAX_TOPIC_LEN: usize = 127;
/// Longest encoded properties string (stored with an i16 length).
pub(crate) const MAX_PROPERTIES_LEN: usize = 32_767;

/// Topics no producer may send to.
const NOT_ALLOWED_SEND_TOPICS: [&str; 6] = [
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// Longest properties string held inline in a [`Prepared`] (longer ones go on the heap).
const INLINE_PROPERTIES: usize = 192;

/// The encoded properties string of a prepared message: inline up to [`INLINE_PROPERTIES`]
/// bytes (a `UNIQ_KEY`, `WAIT` and a few short properties: no allocation), on the heap beyond.
///
/// It also knows where the defaults the producer appends ([`Properties::push_defaults`]:
/// `UNIQ_KEY` and `WAIT=true`) are, whose JSON text is known without a scan, so
/// [`Properties::write_json`] only escapes the caller's own properties.
pub(crate) struct Properties {
    len: usize,
    inline: [u8; INLINE_PROPERTIES],
    heap: Option<Vec<u8>>,
    /// Where the defaults begin (everything before is escaped in general).
    defaults_at: usize,
    /// The id's length when the defaults hold a `UNIQ_KEY` (it comes first).
    default_id_len: Option<usize>,
    /// Whether that id is plain JSON text (no byte to escape), so it is copied as it is.
    default_id_plain: bool,
    /// Whether the defaults hold `WAIT=true` (after the id).
    default_wait: bool,
    /// Where the defaults end (everything after is escaped in general).
    defaults_end: usize,
}

/// `UNIQ_KEY` and the name-value separator.
const UNIQ_KEY_NAME: &[u8] = b"UNIQ_KEY\x01";
/// `WAIT=true` with its separators.
const WAIT_TRUE: &[u8] = b"WAIT\x01true\x02";

/// The length of the ids this client makes ([`message_codec::UniqIdGenerator`]: 32 hex digits).
pub(crate) const ID_LEN: usize = 32;
/// The defaults with an id of [`ID_LEN`] bytes: `UNIQ_KEY`, its separator, the id, the
/// property separator, then [`WAIT_TRUE`].
const DEFAULTS_BLOCK_LEN: usize = UNIQ_KEY_NAME.len() + ID_LEN + 1 + WAIT_TRUE.len();
/// [`DEFAULTS_BLOCK_LEN`] bytes of defaults, the id's place filled with zeros.
const DEFAULTS_BLOCK: [u8; DEFAULTS_BLOCK_LEN] = {
    let mut b = [0u8; DEFAULTS_BLOCK_LEN];
    let mut i = 0;
    while i < UNIQ_KEY_NAME.len() {
        b[i] = UNIQ_KEY_NAME[i];
        i += 1;
    }
    b[UNIQ_KEY_NAME.len() + ID_LEN] = 0x02;
    let mut j = 0;
    while j < WAIT_TRUE.len() {
        b[UNIQ_KEY_NAME.len() + ID_LEN + 1 + j] = WAIT_TRUE[j];
        j += 1;
    }
    b
};

impl Properties {
    pub(crate) fn new() -> Self {
        Properties {
            len: 0,
            inline: [0; INLINE_PROPERTIES],
            heap: None,
            defaults_at: 0,
            default_id_len: None,
            default_id_plain: false,
            default_wait: false,
            defaults_end: 0,
        }
    }

    /// Empties it (the inline buffer is not zeroed: only its first `len` bytes are read).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.heap = None;
        self.defaults_at = 0;
        self.default_id_len = None;
        self.default_id_plain = false;
        self.default_wait = false;
        self.defaults_end = 0;
    }

    /// Appends bytes that are whole UTF-8 (a `&str`'s, or ASCII pieces).
    #[inline]
    fn push_bytes(&mut self, s: &[u8]) {
        if let Some(heap) = &mut self.heap {
            return heap.extend_from_slice(s);
        }
        let end = self.len + s.len();
        if end <= INLINE_PROPERTIES {
            self.inline[self.len..end].copy_from_slice(s);
            self.len = end;
        } else {
            let mut heap = Vec::with_capacity(end.max(2 * INLINE_PROPERTIES));
            heap.extend_from_slice(&self.inline[..self.len]);
            heap.extend_from_slice(s);
            self.heap = Some(heap);
        }
    }

    /// Appends `key=value` pairs, encoded as [`message_codec::encode_properties`] does.
    pub(crate) fn encode<'a>(&mut self, props: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut sep = [0u8; 4];
        let name_value = message_codec::NAME_VALUE_SEPARATOR.encode_utf8(&mut sep);
        let name_value: &str = name_value;
        let mut sep2 = [0u8; 4];
        let property = message_codec::PROPERTY_SEPARATOR.encode_utf8(&mut sep2);
        for (k, v) in props {
            self.push_bytes(k.as_bytes());
            self.push_bytes(name_value.as_bytes());
            self.push_bytes(v.as_bytes());
            self.push_bytes(property.as_bytes());
        }
    }

    /// Appends the defaults a send adds when the caller has not set them: `UNIQ_KEY=id`
    /// (when `id` is given) and `WAIT=true` (when `wait`), in that order, as [`Properties::encode`]
    /// would. The first call is remembered for [`Properties::write_json`]; a second one is
    /// encoded as any other property. `id_plain`: the id is one this client made (hex digits:
    /// [`message_codec::UniqIdGenerator`]; any `new_id` of [`prepare_single`] makes ids of
    /// plain JSON text), whose JSON text is itself; any other id (the caller's own) is
    /// escaped as JSON needs.
    // Always inlined: the usual send's defaults (an id of this client's length and `WAIT`,
    // the first time, inline) are a fixed-size block written in place, where a call costs as
    // much; any other case is out of line.
    #[inline(always)]
    pub(crate) fn push_defaults(&mut self, id: Option<&IdStr>, id_plain: bool, wait: bool) {
        if let (0, Some(id), true, None) = (self.defaults_end, id, wait, &self.heap) {
            // The usual send: an id of this client's length and `WAIT=true`, written inline
            // as one fixed-size block (constants around the id; no copy of a variable length).
            let id = id.as_bytes();
            let at = self.len;
            if let (Some(dst), Ok(id32)) = (
                self.inline.get_mut(at..at + DEFAULTS_BLOCK_LEN),
                <&[u8; ID_LEN]>::try_from(id),
            ) {
                let (name, rest) = dst.split_at_mut(UNIQ_KEY_NAME.len());
                let (value, tail) = rest.split_at_mut(ID_LEN);
                name.copy_from_slice(&DEFAULTS_BLOCK[..UNIQ_KEY_NAME.len()]);
                value.copy_from_slice(id32);
                tail.copy_from_slice(&DEFAULTS_BLOCK[UNIQ_KEY_NAME.len() + ID_LEN..]);
                self.defaults_at = at;
                self.len = at + DEFAULTS_BLOCK_LEN;
                self.default_id_len = Some(ID_LEN);
                debug_assert!(!id_plain || json_plain(id));
                self.default_id_plain = id_plain;
                self.default_wait = true;
                self.defaults_end = self.len;
                return;
            }
        }
        self.push_defaults_other(id, id_plain, wait)
    }

    /// [`Properties::push_defaults`] but for the usual send's block.
    #[inline(never)]
    fn push_defaults_other(&mut self, id: Option<&IdStr>, id_plain: bool, wait: bool) {
        if self.defaults_end != 0 {
            let id = id.map(|id| id.as_str());
            let props = id.map(|id| (property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id));
            let waits = wait.then_some((property::WAIT_STORE_MSG_OK, "true"));
            return self.encode(props.into_iter().chain(waits));
        }
        self.defaults_at = self.len();
        if let Some(id) = id {
            let id = id.as_bytes();
            let at = self.len;
            let end = at + UNIQ_KEY_NAME.len() + id.len() + 1;
            match self.inline.get_mut(at..end) {
                // Inline (the usual case): written in place, the fixed parts as constants.
                Some(dst) if self.heap.is_none() => {
                    let (name, rest) = dst.split_at_mut(UNIQ_KEY_NAME.len());
                    name.copy_from_slice(UNIQ_KEY_NAME);
                    let (value, sep) = rest.split_at_mut(id.len());
                    value.copy_from_slice(id);
                    sep.copy_from_slice(b"\x02");
                    self.len = end;
                }
                _ => {
                    self.push_bytes(UNIQ_KEY_NAME);
                    self.push_bytes(id);
                    self.push_bytes(b"\x02");
                }
            }
            self.default_id_len = Some(id.len());
            debug_assert!(!id_plain || json_plain(id));
            self.default_id_plain = id_plain;
        }
        if wait {
            let at = self.len;
            match self.inline.get_mut(at..at + WAIT_TRUE.len()) {
                Some(dst) if self.heap.is_none() => {
                    dst.copy_from_slice(WAIT_TRUE);
                    self.len = at + WAIT_TRUE.len();
                }
                _ => self.push_bytes(WAIT_TRUE),
            }
            self.default_wait = true;
        }
        self.defaults_end = self.len();
    }

    /// Writes the properties as a JSON string literal, as [`write_json_str`] writes
    /// [`Properties::as_str`] (and byte for byte the same): the defaults are written from
    /// what they are known to be, only the caller's properties are escaped.
    ///
    /// [`write_json_str`]: crate::protocol::frame::write_json_str
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let bytes = self.as_bytes();
        out.push(b'"');
        if self.defaults_end == 0 {
            write_json_text(out, bytes);
        } else {
            let (head, rest) = bytes.split_at(self.defaults_at.min(bytes.len()));
            if !head.is_empty() {
                write_json_text(out, head);
            }
            if let Some(id_len) = self.default_id_len {
                out.extend_from_slice(b"UNIQ_KEY\\u0001");
                let at = UNIQ_KEY_NAME.len();
                let id = rest.get(at..at + id_len).unwrap_or_default();
                if self.default_id_plain {
                    out.extend_from_slice(id);
                } else {
                    write_json_text(out, id);
                }
                out.extend_from_slice(b"\\u0002");
            }
            if self.default_wait {
                out.extend_from_slice(b"WAIT\\u0001true\\u0002");
            }
            let tail = bytes.get(self.defaults_end..).unwrap_or_default();
            if !tail.is_empty() {
                write_json_text(out, tail);
            }
        }
        out.push(b'"');
    }

    /// The id of a properties string that is only the defaults `UNIQ_KEY=<id>` and
    /// `WAIT=true` with an id of plain JSON text (a message with no properties of its own, the
    /// usual send): its JSON text is `UNIQ_KEY\u0001<id>\u0002WAIT\u0001true\u0002`, written
    /// around the id from constants. `None` for any other string.
    #[inline]
    pub(crate) fn only_plain_defaults(&self) -> Option<&[u8]> {
        let id_len = self.default_id_len?;
        if self.defaults_at != 0
            || !self.default_id_plain
            || !self.default_wait
            || self.heap.is_some()
            || self.defaults_end != self.len
        {
            return None;
        }
        self.inline
            .get(UNIQ_KEY_NAME.len()..UNIQ_KEY_NAME.len() + id_len)
    }

    /// [`Properties::only_plain_defaults`]' id when it has this client's length
    /// ([`ID_LEN`]), as an array: the usual send, whose frame text is copied from a template
    /// with the id put in place.
    #[inline]
    pub(crate) fn usual_id(&self) -> Option<&[u8; ID_LEN]> {
        if self.default_id_len != Some(ID_LEN) {
            return None;
        }
        self.only_plain_defaults()
            .and_then(|id| <&[u8; ID_LEN]>::try_from(id).ok())
    }

    /// The encoded string.
    pub(crate) fn as_str(&self) -> &str {
        // Always valid: whole `&str`s (or ASCII pieces) were copied in, never cut.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The encoded string's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.heap {
            Some(heap) => heap,
            None => &self.inline[..self.len],
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.heap {
            Some(heap) => heap.len(),
            None => self.len,
        }
    }
}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A message ready for the wire: everything but the queue and the born timestamp.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The topic as the user knows it (without the namespace).
    pub(crate) topic: String,
    /// The topic on the wire when a namespace makes it differ from `topic` (read it with
    /// [`Prepared::wire_topic`]; without a namespace nothing is copied).
    pub(crate) namespaced_topic: Option<String>,
    /// Whether the wire topic is plain JSON text (nothing to escape): a checked topic
    /// ([`check_topic`] allows only `[%|a-zA-Z0-9_-]`) without a namespace.
    pub(crate) wire_topic_plain: bool,
    /// The body on the wire (compressed, or a batch body); empty while the body to send is
    /// still in `message` (read it with [`Prepared::wire_body`]).
    pub(crate) body: Vec<u8>,
    /// The encoded properties string.
    pub(crate) properties: Properties,
    pub(crate) sys_flag: i32,
    pub(crate) flag: i32,
    /// The client message id(s): `UNIQ_KEY`, comma-joined for a batch.
    pub(crate) msg_id: IdStr,
    pub(crate) batch: bool,
    /// A reply of request-reply (`MSG_TYPE=reply`): sent with SEND_REPLY_MESSAGE_V2.
    pub(crate) reply: bool,
    /// The first business key, for the message-hash routing strategy.
    pub(crate) first_key: Option<String>,
    /// Bytes this send holds in memory (for backpressure and statistics).
    pub(crate) size: usize,
    /// The caller's message, kept for a queue selector until it has run
    /// ([`prepare_for_selector`]); an uncompressed body stays in it, not copied.
    pub(crate) message: Option<Message>,
    /// With send hooks: the message(s) as the hooks see them, shared with the hook tasks of
    /// the attempts. An uncompressed single body stays in its message, not copied.
    pub(crate) hooked: Option<Arc<Hooked>>,
}

impl Prepared {
    /// An empty one (what a recycled send holds; allocates nothing).
    pub(crate) fn vacant() -> Prepared {
        Prepared {
            topic: String::new(),
            namespaced_topic: None,
            wire_topic_plain: false,
            body: Vec::new(),
            properties: Properties::new(),
            sys_flag: 0,
            flag: 0,
            msg_id: IdStr::EMPTY,
            batch: false,
            reply: false,
            first_key: None,
            size: 0,
            message: None,
            hooked: None,
        }
    }

    /// Empties it in place, as [`Prepared::vacant`] makes one (what it held is dropped here;
    /// the inline properties' buffer is kept, not zeroed).
    pub(crate) fn clear(&mut self) {
        self.topic = String::new();
        self.namespaced_topic = None;
        self.wire_topic_plain = false;
        self.body = Vec::new();
        self.properties.clear();
        self.sys_flag = 0;
        self.flag = 0;
        self.msg_id = IdStr::EMPTY;
        self.batch = false;
        self.reply = false;
        self.first_key = None;
        self.size = 0;
        self.message = None;
        self.hooked = None;
    }

    /// The topic on the wire (with the namespace, if any).
    pub(crate) fn wire_topic(&self) -> &str {
        self.namespaced_topic.as_deref().unwrap_or(&self.topic)
    }

    /// The request code this message is sent with: SEND_REPLY_MESSAGE_V2 for a reply,
    /// SEND_BATCH_MESSAGE for a batch, SEND_MESSAGE_V2 otherwise.
    pub(crate) fn request_code(&self) -> i32 {
        if self.reply {
            crate::protocol::RequestCode::SEND_REPLY_MESSAGE_V2
        } else if self.batch {
            crate::protocol::RequestCode::SEND_BATCH_MESSAGE
        } else {
            crate::protocol::RequestCode::SEND_MESSAGE_V2
        }
    }

    /// The body that goes on the wire.
    pub(crate) fn wire_body(&self) -> &[u8] {
        if self.sys_flag & sys_flag::COMPRESSED != 0 || self.batch {
            return &self.body;
        }
        match (&self.message, &self.hooked) {
            (Some(msg), _) => msg.body(),
            (None, Some(hooked)) => hooked
                .messages
                .first()
                .map_or(&self.body[..], Message::body),
            (None, None) => &self.body,
        }
    }

    /// The message as the caller passed it (after the send hooks), while it is kept: for a
    /// queue selector, or for the hooks.
    pub(crate) fn message(&self) -> Option<&Message> {
        match &self.hooked {
            Some(hooked) if !self.batch => hooked.messages.first(),
            _ => self.message.as_ref(),
        }
    }

    /// Drops the caller's message once the selector has seen it, moving an uncompressed body
    /// into [`Prepared::body`] (no copy).
    pub(crate) fn release_message(&mut self) {
        if let Some(msg) = self.message.take() {
            if self.sys_flag & sys_flag::COMPRESSED == 0 && !self.batch {
                self.body = msg.into_body();
            }
        }
    }
}

/// The bytes a topic name may hold: `[%|a-zA-Z0-9_-]`.
const TOPIC_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'%' | b'|' | b'_' | b'-');
        b += 1;
    }
    t
};

/// Whether `id` needs no escaping inside a JSON string (printable ASCII, no quote or
/// backslash): what `push_defaults` is told of the ids this client makes.
fn json_plain(id: &[u8]) -> bool {
    id.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Checks a topic name (protocol.md 7.7).
pub(crate) fn check_topic(topic: &str) -> Result<()> {
    // A good name in one pass over its bytes; anything else takes the checks below, which
    // say what is wrong.
    let bytes = topic.as_bytes();
    if !bytes.is_empty()
        && bytes.len() <= MAX_TOPIC_LEN
        && bytes.iter().all(|&b| TOPIC_BYTES[usize::from(b)])
        && !NOT_ALLOWED_SEND_TOPICS.contains(&topic)
    {
        return Ok(());
    }
    check_topic_slowly(topic)
}

fn check_topic_slowly(topic: &str) -> Result<()> {
    if topic.trim().is_empty() {
        return Err(Error::InvalidMessage("the topic is blank".into()));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(Error::InvalidMessage(format!(
            "the topic is {} bytes long; the limit is {MAX_TOPIC_LEN}",
            topic.len()
        )));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(Error::InvalidMessage(format!(
            "the topic {topic:?} contains {c:?}; allowed are [%|a-zA-Z0-9_-]"
        )));
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&topic) {
        return Err(Error::InvalidMessage(format!(
            "the topic {topic} is a system topic that producers may not send to"
        )));
    }
    Ok(())
}

fn check_properties(msg: &Message) -> Result<()> {
    if msg.properties().next().is_none() {
        return Ok(()); // nothing to check (most messages), and no property to look up
    }
    for (k, v) in msg.properties() {
        if k.is_empty() || v.is_empty() {
            return Err(Error::InvalidMessage(format!(
                "property {k:?} has an empty name or value"
            )));
        }
        let bad = |s: &str| s.contains(['\u{1}', '\u{2}']);
        if bad(k) || bad(v) {
            return Err(Error::InvalidMessage(format!(
                "property {k:?} contains a separator character (\\u0001 or \\u0002)"
            )));
        }
        if property::RESERVED_BY_BROKER.contains(&k) {
            return Err(Error::InvalidMessage(format!(
                "property {k} is reserved for brokers"
            )));
        }
    }
    if let Some(level) = msg.property(property::DELAY_TIME_LEVEL) {
        match level.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(Error::InvalidMessage(format!(
                    "delay level {level:?} is not a positive integer"
                )))
            }
        }
    }
    if let Some(ms) = msg.property(property::TIMER_DELIVER_MS) {
        if ms.parse::<i64>().map_or(true, |v| v <= 0) {
            return Err(Error::InvalidMessage(format!(
                "delivery time {ms:?} is not a positive epoch millisecond"
            )));
        }
    }
    for (key, unit) in [
        (property::TIMER_DELAY_SEC, "seconds"),
        (property::TIMER_DELAY_MS, "milliseconds"),
    ] {
        if let Some(v) = msg.property(key) {
            if v.parse::<i64>().map_or(true, |n| n <= 0) {
                return Err(Error::InvalidMessage(format!(
                    "delay {v:?} ({key}) is not a positive number of {unit}"
                )));
            }
        }
    }
    Ok(())
}

/// Checks one message against the config (protocol.md 7.7).
pub(crate) fn check_message(msg: &Message, config: &ProducerConfig) -> Result<()> {
    check_topic(msg.topic())?;
    check_message_but_topic(msg, config)
}

/// [`check_message`] but for its topic.
// Always inlined: a few checks, once per send, where a call costs as much.
#[inline(always)]
fn check_message_but_topic(msg: &Message, config: &ProducerConfig) -> Result<()> {
    if msg.body().is_empty() {
        return Err(Error::InvalidMessage("the body is empty".into()));
    }
    let max = config.max_message_size();
    if msg.body().len() > max {
        return Err(Error::InvalidMessage(format!(
            "the body is {} bytes; the limit is {max}",
            msg.body().len()
        )));
    }
    check_properties(msg)
}

/// The topic on the wire: `namespace%topic` when a namespace is configured (never twice, never
/// for a system topic; [`namespace::wrap`]).
pub(crate) fn wire_topic(topic: &str, config: &ProducerConfig) -> String {
    match config.namespace() {
        Some(ns) => namespace::wrap(ns, topic).into_owned(),
        None => topic.to_string(),
    }
}

/// The producer group on the wire (send headers, heartbeats, unregister, `PGROUP`,
/// END_TRANSACTION): wrapped in the namespace like a topic, as the Java client does.
pub(crate) fn wire_group(config: &ProducerConfig) -> String {
    match config.namespace() {
        Some(ns) => namespace::wrap(ns, config.group()).into_owned(),
        None => config.group().to_string(),
    }
}

/// The topic a result shows and the topic on the wire when it differs: `topic` as given,
/// unless a namespace must come off (and then the namespaced one for the wire).
fn shown_and_wire_topic(topic: String, config: &ProducerConfig) -> (String, Option<String>) {
    match config.namespace() {
        Some(_) => {
            let wire = wire_topic(&topic, config);
            (user_name(&wire, config), Some(wire))
        }
        None => (topic, None),
    }
}

/// A name from the wire as the user knows it: the namespace taken off.
pub(crate) fn user_name(name: &str, config: &ProducerConfig) -> String {
    match config.namespace() {
        Some(ns) => namespace::strip(ns, name).into_owned(),
        None => name.to_string(),
    }
}

fn ensure_defaults(msg: &mut Message, id: &str) {
    if msg
        .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        .is_none()
    {
        msg.set_property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id);
    }
    if msg.property(property::WAIT_STORE_MSG_OK).is_none() {
        msg.set_property(property::WAIT_STORE_MSG_OK, "true");
    }
}

fn encoded_properties(msg: &Message) -> Result<()> {
    let mut properties = Properties::new();
    properties.encode(msg.properties());
    check_properties_len(&properties)
}

fn check_properties_len(properties: &Properties) -> Result<()> {
    if properties.len() > MAX_PROPERTIES_LEN {
        return Err(Error::InvalidMessage(format!(
            "the properties are {} bytes encoded; the limit is {MAX_PROPERTIES_LEN}",
            properties.len()
        )));
    }
    Ok(())
}

/// Validates and prepares a single message. `new_id` makes a fresh `UNIQ_KEY` (printable
/// ASCII without `"` or `\\`, which JSON carries as it is: this client's are hex digits).
pub(crate) fn prepare_single(
    msg: Message,
    config: &ProducerConfig,
    new_id: impl FnOnce() -> IdStr,
) -> Result<Prepared> {
    prepare_one(msg, config, new_id, false)
}

/// [`prepare_single`] for a send whose queue a selector picks later (an asynchronous send
/// that may wait for its route): the caller's message stays in [`Prepared::message`], as
/// the caller built it, until [`Prepared::release_message`]. Its body is not copied: when it
/// is not compressed, it is sent from the message.
pub(crate) fn prepare_for_selector(
    msg: Message,
    config: &ProducerConfig,
    new_id: impl FnOnce() -> IdStr,
) -> Result<Prepared> {
    prepare_one(msg, config, new_id, true)
}

fn prepare_one(
    msg: Message,
    config: &ProducerConfig,
    new_id: impl FnOnce() -> IdStr,
    keep_message: bool,
) -> Result<Prepared> {
    let mut prepared = Prepared::vacant();
    prepare_one_into(msg, config, new_id, keep_message, false, &mut prepared)?;
    Ok(prepared)
}

/// What preparing a single message reads of its properties, found in one pass over them
/// (none for a message without properties, the usual case), each as [`Message::property`]
/// and [`Message::keys`] find it: the first property of its name.
struct ReadProperties<'a> {
    /// `UNIQ_KEY`.
    id: Option<&'a str>,
    /// Whether `WAIT` is set.
    wait: bool,
    /// `TRAN_MSG`.
    transaction: Option<&'a str>,
    /// The first business key (the first non-empty word of `KEYS`).
    first_key: Option<&'a str>,
}

impl<'a> ReadProperties<'a> {
    // Always inlined: for a message without properties (the rule) it is an empty loop.
    #[inline(always)]
    fn of(msg: &'a Message) -> Self {
        let mut read = ReadProperties {
            id: None,
            wait: false,
            transaction: None,
            first_key: None,
        };
        let mut keys = None;
        for (name, value) in msg.properties() {
            match name {
                property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX if read.id.is_none() => {
                    read.id = Some(value);
                }
                property::WAIT_STORE_MSG_OK => read.wait = true,
                property::TRANSACTION_PREPARED if read.transaction.is_none() => {
                    read.transaction = Some(value);
                }
                property::KEYS if keys.is_none() => keys = Some(value),
                _ => {}
            }
        }
        read.first_key = keys.and_then(|k| k.split(' ').find(|k| !k.is_empty()));
        read
    }
}

/// Validates and prepares a single message into `out`, which must be vacant
/// ([`Prepared::vacant`], or [`Prepared::clear`]ed): the asynchronous path prepares right in
/// the send that carries it, so the prepared message is never moved. On an error, `out` is
/// left part filled (clear it before another use). `topic_checked`: the message's topic is
/// one that passed [`check_topic`] before (a string equal to it did), so it is not checked
/// again; everything else about the message is.
pub(crate) fn prepare_one_into(
    msg: Message,
    config: &ProducerConfig,
    new_id: impl FnOnce() -> IdStr,
    keep_message: bool,
    topic_checked: bool,
    out: &mut Prepared,
) -> Result<()> {
    if !topic_checked {
        check_topic(msg.topic())?;
    }
    check_message_but_topic(&msg, config)?;
    let read = ReadProperties::of(&msg);
    let add_id = match read.id {
        Some(existing) => {
            out.msg_id = IdStr::new(existing);
            false
        }
        None => {
            out.msg_id = new_id();
            true
        }
    };
    let add_wait = !read.wait;
    let mut sys = 0;
    if read
        .transaction
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        sys |= sys_flag::TRANSACTION_PREPARED;
    }
    // The defaults go at the end, as `ensure_defaults` would append them, without copying
    // them into the message first.
    out.properties.encode(msg.properties());
    // An id made here is hex (`new_id` makes `UNIQ_KEY`s: [`Inner::new_msg_id`]).
    out.properties
        .push_defaults(add_id.then_some(&out.msg_id), add_id, add_wait);
    check_properties_len(&out.properties)?;
    out.first_key = read.first_key.map(str::to_string);
    out.flag = msg.flag();
    let mut compressed = None;
    if msg.body().len() >= config.compress_threshold() {
        // Only worth it when it saves bytes.
        compressed =
            zlib(msg.body(), config.compress_level()).filter(|c| c.len() < msg.body().len());
        if compressed.is_some() {
            sys |= sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB;
        }
    }
    out.sys_flag = sys;
    let topic = if keep_message {
        out.body = compressed.unwrap_or_default();
        let topic = msg.topic().to_string();
        out.message = Some(msg);
        topic
    } else {
        let (topic, body) = msg.into_topic_and_body();
        out.body = compressed.unwrap_or(body);
        topic
    };
    if config.namespace().is_none() {
        // The usual case, without the general path's moves of the pair of names: the topic
        // is sent as the user named it, and was checked above (`check_topic`, here or when
        // the caller's memo remembered it): only bytes JSON carries as they are.
        out.topic = topic;
        out.namespaced_topic = None;
        out.wire_topic_plain = true;
    } else {
        (out.topic, out.namespaced_topic) = shown_and_wire_topic(topic, config);
        out.wire_topic_plain = out.namespaced_topic.is_none();
    }
    let wire_len = match &out.message {
        Some(m) if sys & sys_flag::COMPRESSED == 0 => m.body().len(),
        _ => out.body.len(),
    };
    out.size = wire_len + out.properties.len() + out.wire_topic().len();
    Ok(())
}

/// Validates and prepares a batch: same topic, no delay, no transaction, no retry topic;
/// never compressed (protocol.md 7.6).
pub(crate) fn prepare_batch(
    msgs: Vec<Message>,
    config: &ProducerConfig,
    new_id: impl FnMut() -> IdStr,
) -> Result<Prepared> {
    prepare_batch_keeping(msgs, config, new_id).map(|(prepared, _)| prepared)
}

/// [`prepare_single`] for a producer with send hooks: the message is kept in
/// [`Prepared::hooked`] (its uncompressed body is sent from there, not copied).
pub(crate) fn prepare_single_hooked(
    msg: Message,
    config: &ProducerConfig,
    new_id: impl FnOnce() -> IdStr,
    mode: SendMode,
) -> Result<Prepared> {
    let mut prepared = prepare_one(msg, config, new_id, true)?;
    let messages: Vec<Message> = prepared.message.take().into_iter().collect();
    prepared.hooked = Some(Arc::new(Hooked {
        messages,
        wire_topic: prepared.wire_topic().to_string(),
        mode,
        batch: false,
    }));
    Ok(prepared)
}

/// [`prepare_batch`] for a producer with send hooks: the messages are kept in
/// [`Prepared::hooked`].
pub(crate) fn prepare_batch_hooked(
    msgs: Vec<Message>,
    config: &ProducerConfig,
    new_id: impl FnMut() -> IdStr,
    mode: SendMode,
) -> Result<Prepared> {
    let (mut prepared, messages) = prepare_batch_keeping(msgs, config, new_id)?;
    prepared.hooked = Some(Arc::new(Hooked {
        messages,
        wire_topic: prepared.wire_topic().to_string(),
        mode,
        batch: true,
    }));
    Ok(prepared)
}

fn prepare_batch_keeping(
    msgs: Vec<Message>,
    config: &ProducerConfig,
    mut new_id: impl FnMut() -> IdStr,
) -> Result<(Prepared, Vec<Message>)> {
    let Some(first) = msgs.first() else {
        return Err(Error::InvalidMessage("the batch is empty".into()));
    };
    let topic = first.topic().to_string();
    let wait = first
        .property(property::WAIT_STORE_MSG_OK)
        .map(str::to_string);
    if topic.starts_with("%RETRY%") {
        return Err(Error::InvalidMessage(
            "retry topics cannot take batches".into(),
        ));
    }
    let mut ids = String::with_capacity(msgs.len() * 33);
    let mut prepared = Vec::with_capacity(msgs.len());
    for (i, mut msg) in msgs.into_iter().enumerate() {
        check_message(&msg, config)?;
        if msg.topic() != topic {
            return Err(Error::InvalidMessage(format!(
                "message {i} of the batch is for topic {:?}, the first for {topic:?}; \
                 a batch takes one topic",
                msg.topic()
            )));
        }
        if msg
            .property(property::WAIT_STORE_MSG_OK)
            .map(str::to_string)
            != wait
        {
            return Err(Error::InvalidMessage(format!(
                "message {i} of the batch differs in its wait-store setting"
            )));
        }
        if msg.delay_level().is_some_and(|l| l > 0)
            || msg.property(property::TIMER_DELIVER_MS).is_some()
            || msg.property(property::TIMER_DELAY_SEC).is_some()
            || msg.property(property::TIMER_DELAY_MS).is_some()
        {
            return Err(Error::InvalidMessage(format!(
                "message {i} of the batch is delayed; batches cannot be delayed"
            )));
        }
        if msg.property(property::TRANSACTION_PREPARED).is_some() {
            return Err(Error::InvalidMessage(format!(
                "message {i} of the batch is transactional; batches cannot be"
            )));
        }
        let id = match msg.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
            Some(existing) => IdStr::new(existing),
            None => new_id(),
        };
        ensure_defaults(&mut msg, &id);
        if !ids.is_empty() {
            ids.push(',');
        }
        ids.push_str(&id);
        encoded_properties(&msg)?;
        prepared.push(msg);
    }
    let mut body = Vec::new();
    message_codec::encode_batch(prepared.iter(), &mut body)?;
    if body.len() > config.max_message_size() {
        return Err(Error::InvalidMessage(format!(
            "the batch is {} bytes encoded; the limit is {}",
            body.len(),
            config.max_message_size()
        )));
    }
    let mut properties = Properties::new();
    let wait = wait.unwrap_or_else(|| "true".to_string());
    properties.encode([(property::WAIT_STORE_MSG_OK, wait.as_str())]);
    let first_key = prepared
        .first()
        .and_then(|m| m.keys().next().map(str::to_string));
    let (topic, namespaced_topic) = shown_and_wire_topic(topic, config);
    let wire_topic_len = namespaced_topic.as_ref().unwrap_or(&topic).len();
    let size = body.len() + properties.len() + wire_topic_len;
    let batch = Prepared {
        topic,
        // Every message's topic is this one, checked (`check_message`).
        wire_topic_plain: namespaced_topic.is_none(),
        namespaced_topic,
        body,
        properties,
        sys_flag: 0,
        flag: 0,
        msg_id: IdStr::from(ids),
        batch: true,
        reply: false,
        first_key,
        size,
        message: None,
        hooked: None,
    };
    Ok((batch, prepared))
}

fn zlib(body: &[u8], level: u32) -> Option<Vec<u8>> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2),
        Compression::new(level.min(9)),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one pass over a message's properties reads what the look-ups by name read
    /// (`Message::property`, `Message::keys`), on random messages: with and without each
    /// property preparing reads, mixed with others, in any order, with keys lists of any
    /// spacing.
    #[test]
    fn read_properties_matches_the_lookups_by_name() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e11);
        let names = [
            property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
            property::WAIT_STORE_MSG_OK,
            property::TRANSACTION_PREPARED,
            property::KEYS,
            property::TAGS,
            "UNIQ",
            "KEYSX",
            "a",
        ];
        let values = [
            "",
            " ",
            "true",
            "TRUE",
            "false",
            "k1",
            " k1",
            "k1 k2",
            "  k2  k3 ",
            "x",
        ];
        for _ in 0..5_000 {
            let mut msg = Message::new("T", "b");
            for _ in 0..rng.gen_range(0..7) {
                let name = names[rng.gen_range(0..names.len())];
                let value = values[rng.gen_range(0..values.len())];
                msg.set_property(name, value);
            }
            let read = ReadProperties::of(&msg);
            let uniq = property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX;
            assert_eq!(read.id, msg.property(uniq), "{msg:?}");
            let wait = msg.property(property::WAIT_STORE_MSG_OK).is_some();
            assert_eq!(read.wait, wait, "{msg:?}");
            let transaction = msg.property(property::TRANSACTION_PREPARED);
            assert_eq!(read.transaction, transaction, "{msg:?}");
            assert_eq!(read.first_key, msg.keys().next(), "{msg:?}");
        }
    }

    /// Inline or spilled to the heap, the properties string is what `encode_properties`
    /// makes.
    #[test]
    fn properties_inline_and_spilled() {
        for n in [0, 1, 5, 12, 40] {
            let pairs: Vec<(String, String)> = (0..n)
                .map(|i| (format!("key{i}"), format!("välue-{i}")))
                .collect();
            let mut expected = String::new();
            message_codec::encode_properties(
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut expected,
            );
            let mut p = Properties::new();
            for (k, v) in &pairs {
                p.encode([(k.as_str(), v.as_str())]);
            }
            assert_eq!(p.as_str(), expected);
            assert_eq!(p.len(), expected.len());
            assert_eq!(p.heap.is_some(), expected.len() > INLINE_PROPERTIES);
        }
    }

    /// `write_json` writes what `write_json_str` writes for the same string, whatever the
    /// order of the caller's properties and the defaults (and their escapes, and a spill to
    /// the heap at any point).
    #[test]
    fn properties_json_matches_the_general_writer() {
        let values = ["v", "a\"b\\c\n\r\t\u{0}\u{1f}\u{7f}", "grün ✓ 𝄞", ""];
        let long = "k".repeat(150);
        let ids = [
            IdStr::from("7F0000010001ABCD"),
            IdStr::from("id\"\\\u{3}✓"),
            IdStr::EMPTY,
            // This client's length: written as one block with `WAIT` when it fits inline.
            IdStr::from("7F00000100014E2A8B1C2D3E4F5A6B7C"),
            IdStr::from("\"\\\u{3}\u{1f}abcdefghijklmnopqrstuvwxyz01"),
        ];
        let mut cases = 0;
        let crossing = "c".repeat(170); // the defaults cross the end of the inline buffer
        for before in 0..4 {
            for after in 0..2 {
                for id in [None].into_iter().chain(ids.iter().map(Some)) {
                    for wait in [false, true] {
                        for twice in [false, true] {
                            let mut p = Properties::new();
                            let (key, n) = match before {
                                2 => (long.as_str(), 4),
                                3 => (crossing.as_str(), 1),
                                _ => ("key", before * 2),
                            };
                            // The same pairs through `encode` alone: the raw string.
                            let mut raw = Properties::new();
                            for v in &values[..n] {
                                p.encode([(key, *v)]);
                                raw.encode([(key, *v)]);
                            }
                            let uniq = property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX;
                            let wait_key = property::WAIT_STORE_MSG_OK;
                            // A plain id (ours, hex) may be copied as it is; any other
                            // is escaped.
                            let plain = id.is_some_and(|id| {
                                id.bytes().all(|b| b.is_ascii_hexdigit()) && n % 2 == 0
                            });
                            p.push_defaults(id, plain, wait);
                            raw.encode(id.map(|id| (uniq, id.as_str())));
                            raw.encode(wait.then_some((wait_key, "true")));
                            if twice {
                                p.push_defaults(id, plain, !wait);
                                raw.encode(id.map(|id| (uniq, id.as_str())));
                                raw.encode((!wait).then_some((wait_key, "true")));
                            }
                            for v in &values[..after * 3] {
                                p.encode([(long.as_str(), *v)]);
                                raw.encode([(long.as_str(), *v)]);
                            }
                            assert_eq!(p.as_str(), raw.as_str());
                            assert_eq!(p.len(), raw.len());
                            let mut expected = Vec::new();
                            crate::protocol::frame::write_json_str(&mut expected, p.as_str());
                            let mut got = b"x".to_vec();
                            p.write_json(&mut got);
                            assert_eq!(
                                String::from_utf8_lossy(&got[1..]),
                                String::from_utf8_lossy(&expected)
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 2 * 6 * 2 * 2);
    }

    /// The defaults of a usual send (this client's 32-digit id and `WAIT=true`), written as
    /// one block, are what the piecewise path writes, with the same record of where they
    /// are: the id is found for the constant JSON text, alone or after the caller's own
    /// properties (then not, as before), inline or past the inline buffer.
    #[test]
    fn default_block_matches_the_piecewise_defaults() {
        let id = IdStr::from("7F00000100014E2A8B1C2D3E4F5A6B7C");
        assert_eq!(id.as_bytes().len(), ID_LEN);
        for before in [0, 1, 3, 20] {
            let mut block = Properties::new();
            let mut pieces = Properties::new();
            for i in 0..before {
                let (k, v) = (format!("k{i}"), "v".repeat(7));
                block.encode([(k.as_str(), v.as_str())]);
                pieces.encode([(k.as_str(), v.as_str())]);
            }
            block.push_defaults(Some(&id), true, true);
            // The piecewise path: the id first, then `WAIT` (the block's own fields by hand).
            pieces.defaults_at = pieces.len();
            pieces.push_bytes(UNIQ_KEY_NAME);
            pieces.push_bytes(id.as_bytes());
            pieces.push_bytes(b"\x02");
            pieces.push_bytes(WAIT_TRUE);
            pieces.default_id_len = Some(ID_LEN);
            pieces.default_id_plain = true;
            pieces.default_wait = true;
            pieces.defaults_end = pieces.len();
            assert_eq!(block.as_str(), pieces.as_str(), "{before}");
            assert_eq!(
                (block.defaults_at, block.default_id_len, block.defaults_end),
                (
                    pieces.defaults_at,
                    pieces.default_id_len,
                    pieces.defaults_end
                )
            );
            assert_eq!(block.heap.is_some(), pieces.heap.is_some());
            let mut raw = String::new();
            message_codec::encode_properties(
                (0..before)
                    .map(|i| (format!("k{i}"), "v".repeat(7)))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain([
                        (property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id.as_str()),
                        (property::WAIT_STORE_MSG_OK, "true"),
                    ]),
                &mut raw,
            );
            assert_eq!(block.as_str(), raw);
            let only = block.only_plain_defaults();
            assert_eq!(only, (before == 0).then_some(id.as_bytes()), "{before}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            block.write_json(&mut a);
            pieces.write_json(&mut b);
            assert_eq!(a, b);
        }
    }

    /// The one-pass check agrees with the rule-by-rule one on every byte at every place,
    /// on lengths around the limit, on blanks and on the system topics.
    #[test]
    fn topic_check_fast_path_agrees() {
        let mut names: Vec<String> = vec![
            String::new(),
            " ".into(),
            "\t".into(),
            "a".repeat(127),
            "a".repeat(128),
            "ok-name_%|9".into(),
            "grün".into(),
            "a b".into(),
        ];
        names.extend(NOT_ALLOWED_SEND_TOPICS.iter().map(|t| t.to_string()));
        for b in 0..=255u8 {
            for at in 0..3 {
                let mut bytes = b"ab".to_vec();
                bytes.insert(at, b);
                names.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        for c in ['é', '✓', '𝄞', '\u{a0}', '\u{2003}'] {
            names.push(format!("a{c}b"));
        }
        for name in names {
            let fast = check_topic(&name).map_err(|e| e.to_string());
            let slow = check_topic_slowly(&name).map_err(|e| e.to_string());
            assert_eq!(fast, slow, "{name:?}");
        }
    }

    #[test]
    fn topics() {
        assert!(check_topic("orders-1_%|x").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("bad topic").is_err());
        assert!(check_topic(&"a".repeat(128)).is_err());
        assert!(check_topic(&"a".repeat(127)).is_ok());
        assert!(check_topic("RMQ_SYS_TRANS_HALF_TOPIC").is_err());
    }
}
