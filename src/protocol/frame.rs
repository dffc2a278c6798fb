//! `RemotingCommand`: the frame every request and response travels in, its two header
//! serializations, and an incremental [`FrameDecoder`].
//!
//! ```text
//! +----------------+--------------------------+----------------------+-----------------+
//! | total_len: i32 | proto_and_hdr_len: i32   | header: hdr_len bytes| body: rest      |
//! +----------------+--------------------------+----------------------+-----------------+
//! total_len         = 4 + hdr_len + body_len     (does not count its own 4 bytes)
//! proto_and_hdr_len = (serialize_type << 24) | hdr_len
//! ```

use std::borrow::Cow;
use std::fmt;

use byteorder::{BigEndian, ByteOrder};
use serde_json::Value;

use super::codes::{LanguageCode, CLIENT_LANGUAGE, CLIENT_VERSION};

/// Default maximum frame size, length prefix included: 16 MiB, as Java's `frameMaxLength`.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The largest header a frame can carry (24 bits of length).
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// Header serialization of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// JSON header (type 0); what Java clients and servers use by default.
    #[default]
    Json,
    /// The binary ROCKETMQ header layout (type 1).
    RocketMq,
}

impl SerializeType {
    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// The type for a wire byte.
    pub fn from_code(code: u8) -> Result<SerializeType, CodecError> {
        match code {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(CodecError::UnknownSerializeType(other)),
        }
    }
}

/// Everything that can be wrong with bytes that should be a frame, a header or a message.
///
/// Decoding never panics: any input yields a value or one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix is negative.
    NegativeLength(i32),
    /// The frame (length prefix included) is over the limit.
    FrameTooLarge {
        /// The frame length, prefix included.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is too short to hold the header-length word.
    FrameTooShort(usize),
    /// The header length points past the end of the frame.
    HeaderLengthExceedsFrame {
        /// The header length from the frame.
        header_len: usize,
        /// The bytes the frame has after the header-length word.
        available: usize,
    },
    /// A header over 16 MiB - 1 cannot be encoded.
    HeaderTooLarge(usize),
    /// The serialize-type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    UnknownSerializeType(u8),
    /// The JSON header (or a JSON body) is not what it should be.
    Json(String),
    /// The binary header is truncated or inconsistent; says where.
    BinaryHeader(&'static str),
    /// A required field is missing.
    MissingField(&'static str),
    /// A field is present but cannot be parsed.
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The value found (cut to 64 characters).
        value: String,
    },
    /// A message body or id is malformed; says what.
    Malformed(String),
}

impl CodecError {
    /// An [`CodecError::InvalidField`], the value cut to 64 characters.
    pub fn invalid(field: &'static str, value: &str) -> CodecError {
        CodecError::InvalidField {
            field,
            value: value.chars().take(64).collect(),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NegativeLength(n) => write!(f, "negative frame length {n}"),
            CodecError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
            CodecError::FrameTooShort(n) => write!(f, "frame of {n} bytes has no header length"),
            CodecError::HeaderLengthExceedsFrame {
                header_len,
                available,
            } => write!(
                f,
                "header length {header_len} exceeds the {available} bytes left in the frame"
            ),
            CodecError::HeaderTooLarge(n) => {
                write!(f, "header of {n} bytes is over the 16 MiB limit")
            }
            CodecError::UnknownSerializeType(t) => write!(f, "unknown serialize type {t}"),
            CodecError::Json(e) => write!(f, "bad JSON: {e}"),
            CodecError::BinaryHeader(what) => write!(f, "bad binary header: {what}"),
            CodecError::MissingField(name) => write!(f, "missing field {name}"),
            CodecError::InvalidField { field, value } => {
                write!(f, "invalid value {value:?} for field {field}")
            }
            CodecError::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// The custom-header fields of a command: string keys to string values, kept sorted by key
/// (the order fastjson writes them in).
///
/// Values live in one shared buffer, so a header of a dozen fields costs two allocations, not a
/// dozen; keys this crate knows are static strings.
#[derive(Clone, Default)]
pub struct ExtFields {
    /// Sorted by key: the key and the range of its value in `values`.
    entries: Vec<(Cow<'static, str>, usize, usize)>,
    /// Every value, back to back (replaced values leave garbage until [`ExtFields::compact`]).
    values: String,
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        ExtFields::default()
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        ExtFields {
            entries: Vec::with_capacity(n),
            values: String::with_capacity(n * 16),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.insert_with(key.into(), |buf| {
            buf.push_str(value);
            Some(())
        });
    }

    /// Sets `key` to the decimal form of `value`.
    pub fn insert_int(&mut self, key: impl Into<Cow<'static, str>>, value: i64) {
        self.insert_with(key.into(), |buf| {
            push_int(buf, value);
            Some(())
        });
    }

    /// Sets `key` to `"true"` or `"false"`.
    pub fn insert_bool(&mut self, key: impl Into<Cow<'static, str>>, value: bool) {
        self.insert(key, if value { "true" } else { "false" });
    }

    /// Sets `key` to whatever `write` appends to the value buffer; if `write` fails, nothing
    /// changes.
    fn insert_with(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        let start = self.values.len();
        if write(&mut self.values).is_none() {
            self.values.truncate(start);
            return None;
        }
        let end = self.values.len();
        if self.place(key, start, end) {
            self.compact_if_wasteful();
        }
        Some(())
    }

    /// Points `key` at `values[start..end]`, replacing an earlier entry of the same key (then
    /// returns true). Never compacts: the caller may still hold ranges into `values`.
    fn place(&mut self, key: Cow<'static, str>, start: usize, end: usize) -> bool {
        // Keys usually arrive in order (fastjson writes them sorted; headers write them so).
        let append = match self.entries.last() {
            None => true,
            Some((last, ..)) => key_less(last, &key),
        };
        if append {
            self.entries.push((key, start, end));
            return false;
        }
        match self.position(&key) {
            Ok(i) => {
                self.entries[i].1 = start;
                self.entries[i].2 = end;
                true
            }
            Err(i) => {
                self.entries.insert(i, (key, start, end));
                false
            }
        }
    }

    /// Fields from `(key, start, end)` ranges into `values`, in any order; a later duplicate
    /// wins.
    fn from_ranges(ranges: Vec<(Cow<'static, str>, usize, usize)>, values: String) -> Self {
        let sorted = ranges.windows(2).all(|w| key_less(&w[0].0, &w[1].0));
        if sorted {
            return ExtFields {
                entries: ranges,
                values,
            };
        }
        let mut fields = ExtFields {
            entries: Vec::with_capacity(ranges.len()),
            values,
        };
        let mut replaced = false;
        for (key, start, end) in ranges {
            replaced |= fields.place(key, start, end);
        }
        // Only now: compacting moves values, and the ranges not yet placed point into them.
        if replaced {
            fields.compact_if_wasteful();
        }
        fields
    }

    /// Makes room for a decoded header's fields: a dozen entries, `value_bytes` of values.
    fn reserve_for_decoding(&mut self, value_bytes: usize) {
        self.entries.reserve(16);
        self.values.reserve(value_bytes);
    }

    /// Removes `key` without handing its value back.
    fn remove_entry(&mut self, key: &str) -> bool {
        match self.position(key) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, ..)| key_cmp(k, key))
    }

    fn value(&self, i: usize) -> &str {
        let (_, start, end) = self.entries[i];
        &self.values[start..end]
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        // A header has a dozen fields: comparing lengths first beats a binary search of memcmps.
        let found = if self.entries.len() <= 16 {
            self.entries
                .iter()
                .position(|(k, ..)| k.len() == key.len() && k == key)
        } else {
            self.position(key).ok()
        };
        found.map(|i| self.value(i))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key).ok()?;
        let value = self.value(i).to_owned();
        self.entries.remove(i);
        Some(value)
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, start, end)| (k.as_ref(), &self.values[*start..*end]))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.values.clear();
    }

    /// Drops the bytes of replaced and removed values once they are most of the buffer.
    fn compact_if_wasteful(&mut self) {
        let live: usize = self.entries.iter().map(|(_, s, e)| e - s).sum();
        if self.values.len() > 256 && self.values.len() > 2 * live {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut values = String::with_capacity(self.values.len());
        for (_, start, end) in &mut self.entries {
            let new_start = values.len();
            values.push_str(&self.values[*start..*end]);
            *start = new_start;
            *end = values.len();
        }
        self.values = values;
    }

    /// The value of a required field.
    pub fn required(&self, key: &'static str) -> Result<&str, CodecError> {
        self.get(key).ok_or(CodecError::MissingField(key))
    }

    /// A required field parsed as `i32`.
    pub fn required_i32(&self, key: &'static str) -> Result<i32, CodecError> {
        let v = self.required(key)?;
        v.trim().parse().map_err(|_| CodecError::invalid(key, v))
    }

    /// A required field parsed as `i64`.
    pub fn required_i64(&self, key: &'static str) -> Result<i64, CodecError> {
        let v = self.required(key)?;
        v.trim().parse().map_err(|_| CodecError::invalid(key, v))
    }

    /// An optional field parsed as `i32`: absent is `None`, unparsable is an error.
    pub fn optional_i32(&self, key: &'static str) -> Result<Option<i32>, CodecError> {
        self.get(key)
            .map(|v| v.trim().parse().map_err(|_| CodecError::invalid(key, v)))
            .transpose()
    }

    /// An optional field parsed as `i64`: absent is `None`, unparsable is an error.
    pub fn optional_i64(&self, key: &'static str) -> Result<Option<i64>, CodecError> {
        self.get(key)
            .map(|v| v.trim().parse().map_err(|_| CodecError::invalid(key, v)))
            .transpose()
    }

    /// An optional boolean with Java's `Boolean.parseBoolean` semantics: `"true"` in any case is
    /// true, anything else false; absent is `None`.
    pub fn optional_bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v.eq_ignore_ascii_case("true"))
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<Cow<'static, str>>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        let mut m = ExtFields::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

/// One request or response of the remoting protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses).
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's version ordinal.
    pub version: i32,
    /// Request id; a response echoes its request's.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway request.
    pub flag: i32,
    /// Free text: the error message of a failed response.
    pub remark: Option<String>,
    /// The custom-header fields.
    pub ext_fields: ExtFields,
    /// The raw body.
    pub body: Vec<u8>,
    /// How the header is (or was) serialized.
    pub serialize_type: SerializeType,
}

impl Default for RemotingCommand {
    fn default() -> Self {
        RemotingCommand {
            code: 0,
            language: CLIENT_LANGUAGE,
            version: CLIENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Vec::new(),
            serialize_type: SerializeType::Json,
        }
    }
}

impl RemotingCommand {
    /// A request with this client's language and version.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            ..Default::default()
        }
    }

    /// A response to the request with `opaque`.
    pub fn response(code: i32, opaque: i32) -> Self {
        RemotingCommand {
            code,
            opaque,
            flag: FLAG_RESPONSE,
            ..Default::default()
        }
    }

    /// Sets the ext fields (builder style).
    pub fn with_ext_fields(mut self, ext_fields: ExtFields) -> Self {
        self.ext_fields = ext_fields;
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the remark (builder style).
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Marks the request oneway (builder style).
    pub fn into_oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// The remark, or `""`.
    pub fn remark_str(&self) -> &str {
        self.remark.as_deref().unwrap_or("")
    }

    /// Appends the whole frame (length prefix included) to `out`.
    ///
    /// # Errors
    /// [`CodecError::HeaderTooLarge`] if the header does not fit in 24 bits of length; `out` is
    /// then left as it was. In the binary layout, `code` and `version` are 16-bit on the wire.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        out.reserve(self.encoded_len_hint());
        out.extend_from_slice(&[0u8; 8]);
        match self.serialize_type {
            SerializeType::Json => self.write_json_header(out),
            SerializeType::RocketMq => self.write_binary_header(out),
        }
        let header_len = out.len() - start - 8;
        if header_len > MAX_HEADER_LEN {
            out.truncate(start);
            return Err(CodecError::HeaderTooLarge(header_len));
        }
        out.extend_from_slice(&self.body);
        let total = out.len() - start - 4;
        BigEndian::write_u32(&mut out[start..start + 4], total as u32);
        let proto = ((self.serialize_type.code() as u32) << 24) | header_len as u32;
        BigEndian::write_u32(&mut out[start + 4..start + 8], proto);
        Ok(())
    }

    /// Encodes the whole frame into a new buffer.
    pub fn to_frame(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode(&mut out)?;
        Ok(out)
    }

    /// About how many bytes [`RemotingCommand::encode`] writes (exact unless values need
    /// escaping).
    pub fn encoded_len_hint(&self) -> usize {
        let fields: usize = self
            .ext_fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum();
        8 + 128 + fields + self.remark.as_ref().map_or(0, |r| r.len() + 12) + self.body.len()
    }

    /// Decodes one frame without its 4-byte length prefix: `[proto_and_hdr_len | header | body]`.
    pub fn decode_unprefixed(frame: &[u8]) -> Result<Self, CodecError> {
        if frame.len() < 4 {
            return Err(CodecError::FrameTooShort(frame.len()));
        }
        let proto = BigEndian::read_u32(&frame[..4]);
        let serialize_type = SerializeType::from_code((proto >> 24) as u8)?;
        let header_len = (proto & MAX_HEADER_LEN as u32) as usize;
        let rest = &frame[4..];
        if header_len > rest.len() {
            return Err(CodecError::HeaderLengthExceedsFrame {
                header_len,
                available: rest.len(),
            });
        }
        let (header, body) = rest.split_at(header_len);
        let mut cmd = match serialize_type {
            SerializeType::Json => Self::read_json_header(header)?,
            SerializeType::RocketMq => Self::read_binary_header(header)?,
        };
        cmd.serialize_type = serialize_type;
        cmd.body = body.to_vec();
        Ok(cmd)
    }

    /// Decodes one whole frame, length prefix included; the prefix must match the slice.
    pub fn decode(frame: &[u8]) -> Result<Self, CodecError> {
        if frame.len() < 4 {
            return Err(CodecError::FrameTooShort(frame.len()));
        }
        let total = BigEndian::read_i32(&frame[..4]);
        if total < 0 {
            return Err(CodecError::NegativeLength(total));
        }
        if total as usize != frame.len() - 4 {
            return Err(CodecError::Malformed(format!(
                "length prefix {total} does not match the {} bytes after it",
                frame.len() - 4
            )));
        }
        Self::decode_unprefixed(&frame[4..])
    }

    fn write_json_header(&self, out: &mut Vec<u8>) {
        // Keys in alphabetical order, as fastjson writes them.
        out.extend_from_slice(b"{\"code\":");
        write_int(out, self.code.into());
        if !self.ext_fields.is_empty() {
            out.extend_from_slice(b",\"extFields\":{");
            for (i, (k, v)) in self.ext_fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, k);
                out.push(b':');
                write_json_str(out, v);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"flag\":");
        write_int(out, self.flag.into());
        out.extend_from_slice(b",\"language\":");
        write_json_str(out, self.language.name());
        out.extend_from_slice(b",\"opaque\":");
        write_int(out, self.opaque.into());
        if let Some(remark) = &self.remark {
            out.extend_from_slice(b",\"remark\":");
            write_json_str(out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        write_int(out, self.version.into());
        out.push(b'}');
    }

    fn write_binary_header(&self, out: &mut Vec<u8>) {
        let mut b2 = [0u8; 2];
        let mut b4 = [0u8; 4];
        BigEndian::write_i16(&mut b2, self.code as i16);
        out.extend_from_slice(&b2);
        out.push(self.language.0);
        BigEndian::write_i16(&mut b2, self.version as i16);
        out.extend_from_slice(&b2);
        BigEndian::write_i32(&mut b4, self.opaque);
        out.extend_from_slice(&b4);
        BigEndian::write_i32(&mut b4, self.flag);
        out.extend_from_slice(&b4);
        let remark = self.remark.as_deref().unwrap_or("");
        BigEndian::write_i32(&mut b4, remark.len() as i32);
        out.extend_from_slice(&b4);
        out.extend_from_slice(remark.as_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        for (k, v) in self.ext_fields.iter() {
            // A zero-length value decodes as null in Java: such entries are skipped.
            if k.is_empty() || v.is_empty() {
                continue;
            }
            BigEndian::write_i16(&mut b2, k.len() as i16);
            out.extend_from_slice(&b2);
            out.extend_from_slice(k.as_bytes());
            BigEndian::write_i32(&mut b4, v.len() as i32);
            out.extend_from_slice(&b4);
            out.extend_from_slice(v.as_bytes());
        }
        let map_len = (out.len() - len_at - 4) as i32;
        BigEndian::write_i32(&mut out[len_at..len_at + 4], map_len);
    }

    fn read_json_header(header: &[u8]) -> Result<Self, CodecError> {
        match json_fast::parse_header(header) {
            Some(cmd) => Ok(cmd),
            None => Self::read_json_header_value(header),
        }
    }

    /// The general JSON header reader, through `serde_json::Value`: the reference semantics, and
    /// the path for everything [`json_fast`] does not take (and for every error).
    fn read_json_header_value(header: &[u8]) -> Result<Self, CodecError> {
        let value: Value =
            serde_json::from_slice(header).map_err(|e| CodecError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(CodecError::Json("header is not a JSON object".into()));
        };
        let int = |key: &'static str, default: i64| -> Result<i64, CodecError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .ok_or_else(|| CodecError::invalid(key, &n.to_string())),
                Some(Value::String(s)) => s.parse().map_err(|_| CodecError::invalid(key, s)),
                Some(other) => Err(CodecError::invalid(key, &other.to_string())),
            }
        };
        let to_i32 = |key: &'static str, v: i64| -> Result<i32, CodecError> {
            i32::try_from(v).map_err(|_| CodecError::invalid(key, &v.to_string()))
        };
        let code = to_i32("code", int("code", -1)?)?;
        if !obj.contains_key("code") {
            return Err(CodecError::MissingField("code"));
        }
        let language = match obj.get("language") {
            None | Some(Value::Null) => LanguageCode::JAVA,
            Some(Value::String(s)) => LanguageCode::from_name(s).unwrap_or(LanguageCode::OTHER),
            // A code as its name would decode: one without a name is OTHER, like an unknown
            // name (a JSON header can only carry it back as "OTHER").
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(|n| LanguageCode::from_name(LanguageCode(n).name()))
                .ok_or_else(|| CodecError::invalid("language", &n.to_string()))?,
            Some(other) => return Err(CodecError::invalid("language", &other.to_string())),
        };
        let remark = match obj.get("remark") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut ext_fields = ExtFields::new();
        match obj.get("extFields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                ext_fields = ExtFields::with_capacity(map.len());
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    ext_fields.insert(intern_key(k), v);
                }
            }
            Some(other) => return Err(CodecError::invalid("extFields", &other.to_string())),
        }
        Ok(RemotingCommand {
            code,
            language,
            version: to_i32("version", int("version", 0)?)?,
            opaque: to_i32("opaque", int("opaque", 0)?)?,
            flag: to_i32("flag", int("flag", 0)?)?,
            remark,
            ext_fields,
            body: Vec::new(),
            serialize_type: SerializeType::Json,
        })
    }

    fn read_binary_header(header: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader {
            buf: header,
            pos: 0,
        };
        let code = r.i16("code")? as i32;
        let language = LanguageCode(r.u8("language")?);
        let version = r.i16("version")? as i32;
        let opaque = r.i32("opaque")?;
        let flag = r.i32("flag")?;
        let remark_len = r.len_i32("remark length")?;
        let remark = if remark_len > 0 {
            Some(r.string(remark_len, "remark")?)
        } else {
            None
        };
        let map_len = r.len_i32("extFields length")?;
        let map = r.take(map_len, "extFields")?;
        // Values are gathered as bytes and checked as UTF-8 once.
        let mut ranges = Vec::new();
        let mut raw = Vec::new();
        if !map.is_empty() {
            ranges.reserve(16);
            raw.reserve(map.len());
        }
        let mut m = Reader { buf: map, pos: 0 };
        while m.pos < map.len() {
            let key_len = m.i16("extFields key length")?;
            if key_len < 0 {
                return Err(CodecError::BinaryHeader("negative extFields key length"));
            }
            let key = m.take(key_len as usize, "extFields key")?;
            let key = match key {
                [b @ b'a'..=b'n'] => intern_letter(*b),
                _ => intern_key(
                    std::str::from_utf8(key)
                        .map_err(|_| CodecError::BinaryHeader("extFields key"))?,
                ),
            };
            let val_len = m.len_i32("extFields value length")?;
            let val = m.take(val_len, "extFields value")?;
            let start = raw.len();
            raw.extend_from_slice(val);
            ranges.push((key, start, raw.len()));
        }
        let values =
            String::from_utf8(raw).map_err(|_| CodecError::BinaryHeader("extFields value"))?;
        let ext_fields = ExtFields::from_ranges(ranges, values);
        if r.pos != header.len() {
            return Err(CodecError::BinaryHeader("trailing bytes after extFields"));
        }
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            body: Vec::new(),
            serialize_type: SerializeType::RocketMq,
        })
    }
}

/// A bounds-checked big-endian reader over a slice; every read names what it was reading.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(CodecError::BinaryHeader(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        Ok(BigEndian::read_i16(self.take(2, what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        Ok(BigEndian::read_i32(self.take(4, what)?))
    }
    fn len_i32(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| CodecError::BinaryHeader(what))
    }
    fn str(&mut self, n: usize, what: &'static str) -> Result<&'a str, CodecError> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::BinaryHeader(what))
    }
    fn string(&mut self, n: usize, what: &'static str) -> Result<String, CodecError> {
        self.str(n, what).map(str::to_owned)
    }
}

/// For each byte: 0 if it goes into a JSON string as is, else the character after the
/// backslash (`u` for a `\u00XX` escape).
const JSON_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The index of the first byte at or after `from` that a JSON string cannot hold as is (`"`,
/// `\\` or a control character), or `bytes.len()`. Eight bytes at a time, then byte by byte.
fn next_special(bytes: &[u8], from: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let quote = w ^ (LO * u64::from(b'"'));
        let backslash = w ^ (LO * u64::from(b'\\'));
        // Per byte: zero after the XOR (a quote, a backslash) or below 0x20. The lowest flagged
        // byte is exactly the first such byte (borrows only run upwards from it).
        let special = ((quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if JSON_ESCAPE[b as usize] != 0 {
            return i;
        }
        i += 1;
    }
    i
}

/// Writes `s` as a JSON string literal: quotes, backslashes and control characters escaped
/// (control characters as `\u00XX`, as fastjson does); everything else as UTF-8.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = next_special(bytes, 0);
    if start == bytes.len() {
        // Nothing to escape (most strings).
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.reserve(s.len() + 8);
    out.push(b'"');
    out.extend_from_slice(&bytes[..start]);
    loop {
        let i = next_special(bytes, start);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let escape = JSON_ESCAPE[b as usize];
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `v` in decimal to a `String`.
fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let digits = int_digits(&mut buf, v);
    if v < 0 {
        out.push('-');
    }
    // Digits are ASCII.
    out.extend(digits.iter().map(|&d| d as char));
}

/// The decimal digits of `|v|`, at the end of `buf`.
fn int_digits(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Writes `v` in decimal (no `fmt` machinery: this is on every frame).
fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let digits = int_digits(&mut buf, v);
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(digits);
}

/// `a.cmp(b)`, deciding on the first byte when it differs (most keys do): no `memcmp` call.
fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// `a < b`, as [`key_cmp`].
fn key_less(a: &str, b: &str) -> bool {
    key_cmp(a, b).is_lt()
}

/// A one-letter key; static for the V2 send header's `a`..`n`.
fn intern_letter(b: u8) -> Cow<'static, str> {
    const LETTERS: [&str; 14] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
    ];
    match LETTERS.get(usize::from(b.wrapping_sub(b'a'))) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(char::from(b).to_string()),
    }
}

/// The `extFields` keys this crate reads or writes, as static strings: a decoded frame's keys
/// then cost no allocation.
fn intern_key(key: &str) -> Cow<'static, str> {
    if let [b @ b'a'..=b'n'] = key.as_bytes() {
        return intern_letter(*b);
    }
    // A `match` compares lengths first: only keys of the same length reach `memcmp`.
    let known = match key {
        "IS_SUB_CHANGE" => "IS_SUB_CHANGE",
        "IS_SUPPORT_HEART_BEAT_V2" => "IS_SUPPORT_HEART_BEAT_V2",
        "MSG_REGION" => "MSG_REGION",
        "TRACE_ON" => "TRACE_ON",
        "acceptStandardJsonOnly" => "acceptStandardJsonOnly",
        "batch" => "batch",
        "batchUniqId" => "batchUniqId",
        "bname" => "bname",
        "bornTimestamp" => "bornTimestamp",
        "clientID" => "clientID",
        "commitLogOffset" => "commitLogOffset",
        "commitOrRollback" => "commitOrRollback",
        "committed" => "committed",
        "consumerGroup" => "consumerGroup",
        "defaultTopic" => "defaultTopic",
        "defaultTopicQueueNums" => "defaultTopicQueueNums",
        "flag" => "flag",
        "fromTransactionCheck" => "fromTransactionCheck",
        "maxReconsumeTimes" => "maxReconsumeTimes",
        "msgId" => "msgId",
        "offset" => "offset",
        "offsetMsgId" => "offsetMsgId",
        "producerGroup" => "producerGroup",
        "properties" => "properties",
        "queueId" => "queueId",
        "queueOffset" => "queueOffset",
        "recallHandle" => "recallHandle",
        "reconsumeTimes" => "reconsumeTimes",
        "sysFlag" => "sysFlag",
        "topic" => "topic",
        "tranStateTableOffset" => "tranStateTableOffset",
        "transactionId" => "transactionId",
        "unitMode" => "unitMode",
        _ => return Cow::Owned(key.to_owned()),
    };
    Cow::Borrowed(known)
}

/// A fast reader for the JSON header, straight from the bytes into a [`RemotingCommand`].
///
/// It takes the common case only: an object whose `code`, `version`, `opaque` and `flag` are
/// integers or null, `language` a string or null, `remark` a string or null, `extFields` an
/// object of string (or null) values or null, and any other keys with any valid JSON value
/// (skipped). Keys may come in any order, with escapes, repeated (the last one wins, as in
/// `serde_json`'s map). Whenever anything else turns up (a number where a string belongs, a
/// fraction, a lone surrogate, a syntax error, invalid UTF-8, trailing bytes, nesting over 64
/// levels), it gives up with `None`, and the `serde_json::Value` reader decides: the result
/// or the error is then exactly what that reader says.
mod json_fast {
    use std::borrow::Cow;

    use super::{
        intern_key, next_special, ExtFields, LanguageCode, RemotingCommand, SerializeType,
    };

    const MAX_DEPTH: u32 = 64;

    /// The value of a hex digit.
    fn hex_value(d: u8) -> Option<u8> {
        match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            b'A'..=b'F' => Some(d - b'A' + 10),
            _ => None,
        }
    }

    struct Parser<'a> {
        /// The whole header, valid UTF-8 (checked once, up front).
        text: &'a str,
        buf: &'a [u8],
        pos: usize,
    }

    pub(super) fn parse_header(header: &[u8]) -> Option<RemotingCommand> {
        // Invalid UTF-8 anywhere is an error for serde_json too (in a string) or a syntax error.
        let text = std::str::from_utf8(header).ok()?;
        let mut p = Parser {
            text,
            buf: header,
            pos: 0,
        };
        let cmd = p.header()?;
        p.ws();
        (p.pos == p.buf.len()).then_some(cmd)
    }

    impl<'a> Parser<'a> {
        fn peek(&self) -> Option<u8> {
            self.buf.get(self.pos).copied()
        }

        fn ws(&mut self) {
            // Headers as fastjson writes them have no whitespace: one compare.
            while let Some(&b) = self.buf.get(self.pos) {
                if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    return;
                }
                self.pos += 1;
            }
        }

        /// Skips whitespace, then consumes `b` if it is next.
        fn eat(&mut self, b: u8) -> bool {
            self.ws();
            if self.peek() == Some(b) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn literal(&mut self, lit: &[u8]) -> Option<()> {
            let end = self.pos.checked_add(lit.len())?;
            (self.buf.get(self.pos..end)? == lit).then(|| self.pos = end)
        }

        /// `null` at the cursor (after whitespace)?
        fn null(&mut self) -> bool {
            self.ws();
            if self.peek() == Some(b'n') && self.buf[self.pos..].starts_with(b"null") {
                self.pos += 4;
                true
            } else {
                false
            }
        }

        fn header(&mut self) -> Option<RemotingCommand> {
            let mut code = None;
            let mut cmd = RemotingCommand {
                code: 0,
                language: LanguageCode::JAVA,
                version: 0,
                opaque: 0,
                flag: 0,
                remark: None,
                ext_fields: ExtFields::new(),
                body: Vec::new(),
                serialize_type: SerializeType::Json,
            };
            self.members(|p, key| {
                match key {
                    "code" => code = Some(p.int_or_null(-1)?),
                    "version" => cmd.version = p.int_or_null(0)?,
                    "opaque" => cmd.opaque = p.int_or_null(0)?,
                    "flag" => cmd.flag = p.int_or_null(0)?,
                    "language" => {
                        cmd.language = if p.null() {
                            LanguageCode::JAVA
                        } else {
                            let name = p.string()?;
                            LanguageCode::from_name(&name).unwrap_or(LanguageCode::OTHER)
                        }
                    }
                    "remark" => {
                        cmd.remark = if p.null() {
                            None
                        } else {
                            Some(p.string()?.into_owned())
                        }
                    }
                    "extFields" => {
                        cmd.ext_fields.clear();
                        if !p.null() {
                            // Unescaping only shrinks: the header length bounds the values.
                            let fields = &mut cmd.ext_fields;
                            fields.reserve_for_decoding(p.buf.len());
                            p.members(|p, key| {
                                if p.null() {
                                    fields.remove_entry(key);
                                    Some(())
                                } else {
                                    p.ws();
                                    fields.insert_with(intern_key(key), |buf| p.string_into(buf))
                                }
                            })?;
                        }
                    }
                    _ => p.skip_value(1)?,
                }
                Some(())
            })?;
            cmd.code = code?;
            Some(cmd)
        }

        /// An object: `{ "key": value, ... }`, calling `member` with the cursor on each value.
        fn members(&mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
            if !self.eat(b'{') {
                return None;
            }
            if self.eat(b'}') {
                return Some(());
            }
            loop {
                self.ws();
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                member(self, &key)?;
                if self.eat(b',') {
                    continue;
                }
                return self.eat(b'}').then_some(());
            }
        }

        /// An integer that fits an i32, or null (`default`).
        fn int_or_null(&mut self, default: i32) -> Option<i32> {
            if self.null() {
                return Some(default);
            }
            i32::try_from(self.integer()?).ok()
        }

        /// A JSON integer of at most 18 digits, not `-0`, not followed by a fraction or an
        /// exponent.
        fn integer(&mut self) -> Option<i64> {
            self.ws();
            let negative = self.peek() == Some(b'-');
            if negative {
                self.pos += 1;
            }
            let start = self.pos;
            let mut n: i64 = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if self.pos - start == 18 {
                    return None;
                }
                n = n * 10 + i64::from(d - b'0');
                self.pos += 1;
            }
            let digits = self.pos - start;
            if digits == 0 || (digits > 1 && self.buf[start] == b'0') || (negative && n == 0) {
                return None;
            }
            if let Some(b'.' | b'e' | b'E') = self.peek() {
                return None;
            }
            Some(if negative { -n } else { n })
        }

        /// A string literal at the cursor, unescaped (borrowed when it has no escapes).
        fn string(&mut self) -> Option<Cow<'a, str>> {
            if self.peek() != Some(b'"') {
                return None;
            }
            let open = self.pos;
            self.pos += 1;
            self.scan()?;
            if self.buf[self.pos] == b'"' {
                let s = self.text.get(open + 1..self.pos)?;
                self.pos += 1;
                return Some(Cow::Borrowed(s));
            }
            self.pos = open;
            let mut out = String::new();
            self.string_into(&mut out)?;
            Some(Cow::Owned(out))
        }

        /// A string literal at the cursor, unescaped and appended to `out`.
        fn string_into(&mut self, out: &mut String) -> Option<()> {
            if self.peek() != Some(b'"') {
                return None;
            }
            self.pos += 1;
            loop {
                let run = self.pos;
                self.scan()?;
                out.push_str(self.text.get(run..self.pos)?);
                if self.buf[self.pos] == b'"' {
                    self.pos += 1;
                    return Some(());
                }
                self.pos += 1;
                let c = match *self.buf.get(self.pos)? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        self.pos += 1;
                        // \u00XX below 0x80 (the properties separators): one ASCII byte.
                        if let Some(&[b'0', b'0', h, l]) = self.buf.get(self.pos..self.pos + 4) {
                            if let (Some(h @ 0..=7), Some(l)) = (hex_value(h), hex_value(l)) {
                                out.push(char::from(h << 4 | l));
                                self.pos += 4;
                                continue;
                            }
                        }
                        let hi = self.hex4()?;
                        let c = match hi {
                            0xD800..=0xDBFF => {
                                self.literal(b"\\u")?;
                                let lo = self.hex4()?;
                                if !(0xDC00..=0xDFFF).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            }
                            0xDC00..=0xDFFF => return None,
                            _ => hi,
                        };
                        out.push(char::from_u32(c)?);
                        continue;
                    }
                    _ => return None,
                };
                out.push(c);
                self.pos += 1;
            }
        }

        /// Moves the cursor to the next `"` or `\\` of a string; `None` at the end of the input
        /// or at a control character.
        fn scan(&mut self) -> Option<()> {
            self.pos = next_special(self.buf, self.pos);
            (*self.buf.get(self.pos)? >= 0x20).then_some(())
        }

        fn hex4(&mut self) -> Option<u32> {
            let end = self.pos.checked_add(4)?;
            let digits = self.buf.get(self.pos..end)?;
            let mut v = 0;
            for &d in digits {
                v = v * 16 + u32::from(hex_value(d)?);
            }
            self.pos = end;
            Some(v)
        }

        /// Skips any JSON value (validating it); gives up on fractions, exponents, integers of
        /// more than 18 digits (whose range `serde_json` may reject) and deep nesting.
        fn skip_value(&mut self, depth: u32) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.ws();
            match self.peek()? {
                b'"' => self.string().map(drop),
                b'{' => self.members(|p, _| p.skip_value(depth + 1)),
                b'[' => {
                    self.pos += 1;
                    if self.eat(b']') {
                        return Some(());
                    }
                    loop {
                        self.skip_value(depth + 1)?;
                        if self.eat(b',') {
                            continue;
                        }
                        return self.eat(b']').then_some(());
                    }
                }
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.integer().map(drop),
                _ => None,
            }
        }
    }
}

/// Fuzzing hook: the fast JSON header reader must agree with the `serde_json::Value` reader
/// whenever it gives an answer. Not gated on `cfg(fuzzing)`, so that `tests/fuzz_replay.rs`
/// replays saved inputs through it on stable.
#[doc(hidden)]
pub fn json_header_differential(header: &[u8]) {
    if let Some(fast) = json_fast::parse_header(header) {
        assert_eq!(RemotingCommand::read_json_header_value(header), Ok(fast));
    }
}

/// An incremental frame decoder: feed it bytes in any pieces, take whole commands out.
///
/// After an error the decoder is poisoned (the stream cannot be resynchronised); the connection
/// that feeds it must be closed.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    max_frame: usize,
    poisoned: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder with the default 16 MiB frame limit.
    pub fn new() -> Self {
        FrameDecoder::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A decoder that rejects frames (length prefix included) over `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max_frame,
            poisoned: false,
        }
    }

    /// The frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next whole command, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A [`CodecError`] if the stream is malformed; every later call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<RemotingCommand>, CodecError> {
        match self.next_frame_bytes()? {
            None => Ok(None),
            Some((start, end)) => {
                let result = RemotingCommand::decode_unprefixed(&self.buf[start..end]);
                self.pos = end;
                self.compact();
                match result {
                    Ok(cmd) => Ok(Some(cmd)),
                    Err(e) => {
                        self.poisoned = true;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Checks the next frame's length and returns its range (without the length prefix).
    fn next_frame_bytes(&mut self) -> Result<Option<(usize, usize)>, CodecError> {
        if self.poisoned {
            return Err(CodecError::Malformed(
                "stream already failed to decode".into(),
            ));
        }
        let avail = &self.buf[self.pos..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let total = BigEndian::read_i32(&avail[..4]);
        let result = if total < 0 {
            Err(CodecError::NegativeLength(total))
        } else if (total as usize).saturating_add(4) > self.max_frame {
            Err(CodecError::FrameTooLarge {
                len: total as usize + 4,
                max: self.max_frame,
            })
        } else if total < 4 {
            Err(CodecError::FrameTooShort(total as usize))
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.poisoned = true;
            return Err(e);
        }
        let end = 4 + total as usize;
        if avail.len() < end {
            self.buf.reserve(end - avail.len());
            return Ok(None);
        }
        Ok(Some((self.pos + 4, self.pos + end)))
    }

    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_request() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(105);
        cmd.language = LanguageCode::JAVA;
        cmd.version = 479;
        cmd.opaque = 1;
        cmd.ext_fields.insert("topic", "TopicTest");
        cmd
    }

    #[test]
    fn golden_json_route_request() {
        let frame = route_request().to_frame().unwrap();
        let json = br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        assert_eq!(json.len(), 131);
        let mut expected = vec![0, 0, 0, 0x87, 0, 0, 0, 0x83];
        expected.extend_from_slice(json);
        assert_eq!(frame, expected);
    }

    #[test]
    fn golden_binary_route_request() {
        let mut cmd = route_request();
        cmd.serialize_type = SerializeType::RocketMq;
        let frame = cmd.to_frame().unwrap();
        let hex = "0000002d010000290069000\
                   1df000000010000000000000000000000140005746f7069630000000954\
                   6f70696354657374";
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(frame.len(), 49);
        assert_eq!(frame, expected);
        assert_eq!(RemotingCommand::decode(&frame).unwrap(), cmd);
    }

    #[test]
    fn round_trip_both_types() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let mut cmd = RemotingCommand::response(2, -7)
                .with_remark("busy \"now\" \u{1} ✓")
                .with_body(vec![1, 2, 3, 0]);
            cmd.ext_fields.insert("i", "TAGS\u{1}a\u{2}");
            cmd.ext_fields.insert("b", "Topic");
            cmd.serialize_type = st;
            let frame = cmd.to_frame().unwrap();
            assert_eq!(RemotingCommand::decode(&frame).unwrap(), cmd);
        }
    }

    #[test]
    fn decoder_rejects_bad_lengths() {
        let mut d = FrameDecoder::with_max_frame(1024);
        d.feed(&(-5i32).to_be_bytes());
        assert_eq!(d.next_frame(), Err(CodecError::NegativeLength(-5)));
        let mut d = FrameDecoder::with_max_frame(1024);
        d.feed(&2000i32.to_be_bytes());
        assert!(matches!(
            d.next_frame(),
            Err(CodecError::FrameTooLarge { len: 2004, .. })
        ));
        let mut d = FrameDecoder::new();
        d.feed(&[0, 0, 0, 8, 0, 0, 0, 100, 1, 2, 3, 4]);
        assert!(matches!(
            d.next_frame(),
            Err(CodecError::HeaderLengthExceedsFrame {
                header_len: 100,
                ..
            })
        ));
        let mut d = FrameDecoder::new();
        d.feed(&[0, 0, 0, 6, 7, 0, 0, 0, b'{', b'}']);
        assert_eq!(d.next_frame(), Err(CodecError::UnknownSerializeType(7)));
    }

    #[test]
    fn known_keys_are_interned() {
        let known = [
            "IS_SUB_CHANGE",
            "MSG_REGION",
            "TRACE_ON",
            "msgId",
            "queueId",
            "queueOffset",
            "transactionId",
            "unitMode",
            "a",
            "n",
            "tranStateTableOffset",
        ];
        for k in known {
            assert!(matches!(intern_key(k), Cow::Borrowed(b) if b == k), "{k}");
        }
        for k in ["o", "msgid", "", "queueIdX", "é"] {
            assert!(matches!(intern_key(k), Cow::Owned(o) if o == k), "{k}");
        }
        let mut f = ExtFields::new();
        for i in 0..40 {
            f.insert(format!("k{i:02}"), format!("v{i}"));
        }
        assert_eq!(f.get("k07"), Some("v7"));
        assert_eq!(f.get("k39"), Some("v39"));
        assert_eq!(f.get("k40"), None);
        f.clear();
        f.insert("ab", "1");
        f.insert("b", "2");
        assert_eq!(
            (f.get("ab"), f.get("b"), f.get("a")),
            (Some("1"), Some("2"), None)
        );
    }

    /// The fast JSON reader agrees with the `serde_json::Value` reader whenever it answers.
    fn agree(header: &str) -> bool {
        let fast = json_fast::parse_header(header.as_bytes());
        let slow = RemotingCommand::read_json_header_value(header.as_bytes());
        if let Some(fast) = &fast {
            assert_eq!(slow.as_ref(), Ok(fast), "{header}");
        }
        fast.is_some()
    }

    #[test]
    fn fast_json_takes_the_common_headers() {
        for h in [
            r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#,
            r#"{"code":0,"language":"RUST","version":474,"opaque":1001,"flag":1,"remark":null,"extFields":null,"serializeTypeCurrentRPC":"JSON"}"#,
            r#"{"code":310,"extFields":{"i":"WAIT\u0001true\u0002c\u0001gr\u00fcn \u2713 \ud834\udd1e\u0002"},"flag":0}"#,
            r#" { "code" : -1 , "extFields" : { } , "x" : [ 1 , { "y" : [ ] } , "s" , true , false , null , -20 ] } "#,
            r#"{"code":null}"#,
            r#"{"c\u006fde":3,"remark":"a\"b\\c\/d\b\f\n\r\t"}"#,
            r#"{"code":1,"code":2,"remark":"x","remark":null,"language":"GO","language":null}"#,
            r#"{"code":1,"extFields":{"k":"v","k":null,"j":null,"j":"w"},"extFields":{"z":"1"}}"#,
            r#"{"code":1,"extFields":{"k":"v"},"extFields":null}"#,
            r#"{"code":2147483647,"opaque":-2147483648,"unknown":123456789012345678}"#,
            "{\"code\":1,\"remark\":\"gr\u{fc}n \u{2713} \u{1d11e}\"}",
        ] {
            assert!(agree(h), "{h}");
        }
    }

    #[test]
    fn fast_json_takes_every_real_broker_header() {
        for frame in [
            &include_bytes!("../../tests/data/send_v2_request.bin")[..],
            include_bytes!("../../tests/data/send_v2_response.bin"),
            include_bytes!("../../tests/data/check_transaction_request.bin"),
            include_bytes!("../../tests/data/route_response_missing_topic.bin"),
            include_bytes!("../../tests/data/heartbeat_response.bin"),
        ] {
            let header_len = BigEndian::read_u32(&frame[4..8]) as usize;
            let header = std::str::from_utf8(&frame[8..8 + header_len]).unwrap();
            assert!(agree(header), "{header}");
        }
    }

    /// Random byte-level mutations of every real-broker header (inserted JSON punctuation,
    /// escapes, digits, invalid UTF-8, deleted and moved pieces): the fast reader may give up,
    /// but whatever it answers, the general reader answers the same.
    #[test]
    fn fast_json_agrees_on_mutated_real_headers() {
        use rand::{Rng, SeedableRng};
        let headers: Vec<Vec<u8>> = [
            &include_bytes!("../../tests/data/send_v2_request.bin")[..],
            include_bytes!("../../tests/data/send_v2_response.bin"),
            include_bytes!("../../tests/data/send_batch_response.bin"),
            include_bytes!("../../tests/data/send_error_response.bin"),
            include_bytes!("../../tests/data/route_response_tbw102.bin"),
            include_bytes!("../../tests/data/heartbeat_request.bin"),
        ]
        .iter()
        .map(|frame| {
            let header_len = BigEndian::read_u32(&frame[4..8]) as usize;
            frame[8..8 + header_len].to_vec()
        })
        .collect();
        let alphabet: &[u8] = b"{}[]\",:\\/ \t\n-+.0123456789eEtrueflsnu\xc3\xa9\xff\x01abAF";
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let rounds = if cfg!(debug_assertions) {
            3_000
        } else {
            30_000
        };
        let mut answered = 0;
        for round in 0..rounds {
            let mut h = headers[round % headers.len()].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..h.len());
                let pick = alphabet[rng.gen_range(0..alphabet.len())];
                match rng.gen_range(0..4) {
                    0 => h[at] = pick,
                    1 => {
                        h.remove(at);
                    }
                    2 => h.insert(at, pick),
                    _ => {
                        let end = (at + rng.gen_range(1..12)).min(h.len());
                        let piece = h[at..end].to_vec();
                        let to = rng.gen_range(0..h.len());
                        h.splice(to..to, piece);
                    }
                }
            }
            if let Some(fast) = json_fast::parse_header(&h) {
                let slow = RemotingCommand::read_json_header_value(&h);
                assert_eq!(slow, Ok(fast), "{}", String::from_utf8_lossy(&h));
                answered += 1;
            }
        }
        // Mutations inside string values keep most headers valid: the test is not vacuous.
        assert!(
            answered * 10 > rounds,
            "fast reader answered {answered} of {rounds}"
        );
    }

    #[test]
    fn fast_json_gives_up_to_the_general_reader() {
        for h in [
            "",
            "{",
            "[]",
            r#"{}"#,
            r#"{"code":1.0}"#,
            r#"{"code":1e2}"#,
            r#"{"code":-0}"#,
            r#"{"code":01}"#,
            r#"{"code":"1"}"#,
            r#"{"code":2147483648}"#,
            r#"{"code":1,"language":3}"#,
            r#"{"code":1,"remark":5}"#,
            r#"{"code":1,"extFields":{"k":1}}"#,
            r#"{"code":1,"extFields":[]}"#,
            r#"{"code":1,"x":1.5}"#,
            r#"{"code":1,"x":1234567890123456789}"#,
            r#"{"code":1,"remark":"\ud834"}"#,
            r#"{"code":1,"remark":"\udd1e"}"#,
            r#"{"code":1,"remark":"\ud834\u0041"}"#,
            r#"{"code":1,"remark":"\q"}"#,
            r#"{"code":1,"remark":"\u12"}"#,
            r#"{"code":1,}"#,
            r#"{"code":1} x"#,
            r#"{"code":1,"x":tru}"#,
            "{\"code\":1,\"remark\":\"a\u{1}b\"}",
        ] {
            assert!(!agree(h), "{h}");
        }
        let deep = format!(r#"{{"code":1,"x":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(!agree(&deep));
        let ok = format!(r#"{{"code":1,"x":{}{}}}"#, "[".repeat(60), "]".repeat(60));
        assert!(agree(&ok));
        // Invalid UTF-8 in a string.
        let mut b = br#"{"code":1,"remark":"xx"}"#.to_vec();
        b[21] = 0xC3;
        assert!(json_fast::parse_header(&b).is_none());
        assert!(RemotingCommand::read_json_header_value(&b).is_err());
    }

    #[test]
    fn fast_json_agrees_on_random_headers() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\"",
            "\\\"",
            "\\\\",
            "\\u00e9",
            "\\ud834",
            "\\udd1e",
            "\\n",
            "null",
            "true",
            "-",
            "0",
            "7",
            "1e2",
            ".5",
            "\"code\"",
            "\"extFields\"",
            "\"language\"",
            "\"JAVA\"",
            "\"remark\"",
            "\"opaque\"",
            "\"k\"",
            "\"v\"",
            "ü",
            "\u{1}",
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let mut answered = 0;
        for _ in 0..20_000 {
            // A valid header with a few random pieces spliced in.
            let mut h = String::from(
                r#"{"code":310,"extFields":{"a":"g","b":"t"},"flag":0,"language":"JAVA","opaque":7,"remark":"r","version":401}"#,
            );
            for _ in 0..rng.gen_range(0..3) {
                let mut at = rng.gen_range(0..=h.len());
                while !h.is_char_boundary(at) {
                    at -= 1;
                }
                h.insert_str(at, PIECES[rng.gen_range(0..PIECES.len())]);
            }
            answered += usize::from(agree(&h));
        }
        assert!(answered > 1000, "{answered}");
    }

    #[test]
    fn ext_fields_buffer_replace_remove_compact() {
        let mut f = ExtFields::new();
        f.insert("b", "1");
        f.insert_int("a", -42);
        f.insert_bool("c", true);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [("a", "-42"), ("b", "1"), ("c", "true")]
        );
        // Replacing a value many times keeps the buffer bounded.
        for i in 0..10_000 {
            f.insert("b", format!("value-{i}"));
        }
        assert_eq!(f.get("b"), Some("value-9999"));
        assert!(f.values.len() < 1024, "{}", f.values.len());
        assert_eq!(f.remove("b").as_deref(), Some("value-9999"));
        assert_eq!(f.remove("b"), None);
        assert_eq!(f.len(), 2);
        // Equality ignores garbage in the buffer and insertion order.
        let g: ExtFields = [("c", "true"), ("a", "-42")].into_iter().collect();
        assert_eq!(f, g);
        assert_eq!(format!("{g:?}"), r#"{"a": "-42", "c": "true"}"#);
        f.clear();
        assert!(f.is_empty());
        assert_eq!(f.get("a"), None);
        // Ranges in any order, duplicates: the later one wins.
        let values = String::from("xyz");
        let f = ExtFields::from_ranges(
            vec![
                (Cow::Borrowed("z"), 0, 1),
                (Cow::Borrowed("a"), 1, 2),
                (Cow::Borrowed("z"), 2, 3),
            ],
            values,
        );
        assert_eq!(f.iter().collect::<Vec<_>>(), [("a", "y"), ("z", "z")]);
        // Small maps are searched linearly, large ones by binary search: both find every key.
        let big: ExtFields = (0..40)
            .map(|i| (format!("key{i}"), i.to_string()))
            .collect();
        for i in 0..40 {
            assert_eq!(big.get(&format!("key{i}")), Some(i.to_string().as_str()));
        }
        assert_eq!(big.get("key40"), None);
        assert_eq!(intern_key("queueId"), Cow::Borrowed("queueId"));
        assert!(matches!(intern_key("custom"), Cow::Owned(_)));
        assert_eq!(intern_letter(b'z'), "z");
    }

    #[test]
    fn next_special_finds_the_first_special_byte() {
        let cases: &[&[u8]] = &[
            b"",
            b"abc",
            b"abcdefgh",
            b"abcdefghijklmnop\"",
            b"\\",
            b"\x7f\x80\xff\x1f",
            "grün ✓ 𝄞\u{1}".as_bytes(),
            b"aaaaaaa\"aaaaaaa\\",
        ];
        for bytes in cases {
            for from in 0..=bytes.len() {
                let expected = bytes[from..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                    .map_or(bytes.len(), |i| from + i);
                assert_eq!(next_special(bytes, from), expected, "{bytes:?} from {from}");
            }
        }
        // Every byte value at every position of a 16-byte window.
        for b in 0..=255u8 {
            for at in 0..16 {
                let mut bytes = [b'x'; 16];
                bytes[at] = b;
                let special = b == b'"' || b == b'\\' || b < 0x20;
                assert_eq!(next_special(&bytes, 0), if special { at } else { 16 });
            }
        }
    }

    #[test]
    fn ext_fields_sorted_and_typed() {
        let mut f = ExtFields::new();
        f.insert("z", "1");
        f.insert("a", "x");
        f.insert("m", "true");
        f.insert("a", "y");
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![("a", "y"), ("m", "true"), ("z", "1")]
        );
        assert_eq!(f.required_i32("z"), Ok(1));
        assert_eq!(f.required_i32("q"), Err(CodecError::MissingField("q")));
        assert!(matches!(
            f.required_i64("a"),
            Err(CodecError::InvalidField { field: "a", .. })
        ));
        assert_eq!(f.optional_bool("m"), Some(true));
    }
}
