//! [`ExtFields`]: the custom-header map of a command (sorted keys, values in one shared
//! buffer), the raw state a decoded header's map starts in, and the key names it interns so
//! that decoded keys cost no allocation.
//!
//! A decoder does not build the map: it validates the header's `extFields` and keeps their
//! raw text (JSON: the object between its braces; binary: the length-prefixed map), noting
//! where the values of the send-response keys ([`ResponseKey`]) are. The map is built from
//! that text the first time anything reads it through the general API (`get`, `iter`, `len`,
//! `insert`, equality, ...), so every reader sees exactly what an eager parse gave; a send
//! response, read only through [`ExtFields::response_places`], never builds it.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use super::json_write::push_int;
use super::CodecError;

/// A key and the range of its value in the value buffer.
type Entry = (Cow<'static, str>, usize, usize);

/// The custom-header fields of a command: string keys to string values, kept sorted by key
/// (the order fastjson writes them in).
///
/// Values live in one shared buffer, so a header of a dozen fields costs two allocations, not a
/// dozen; keys this crate knows are static strings. A decoded header's map is built on first
/// use from the raw text the decoder kept (see the module docs).
#[derive(Clone, Default)]
pub struct ExtFields {
    /// The map: built on first read when `raw` holds a decoded header's fields (which it then
    /// mirrors), set by every change (which clears `raw`). Boxed: a command is moved several
    /// times on its way from the decoder to its reader, and a decoded response never builds
    /// its map (this keeps `RemotingCommand` small enough to move without a `memcpy` call).
    map: OnceLock<Box<Map>>,
    /// A decoded header's fields as they came, or nothing.
    raw: Raw,
}

/// The map itself: sorted entries, values back to back in one buffer.
#[derive(Clone, Default)]
pub(super) struct Map {
    /// Sorted by key: the key and the range of its value in `values`.
    entries: Vec<Entry>,
    /// Every value, back to back (replaced values leave garbage until [`Map::compact`]).
    values: String,
}

/// The layout of a decoded header's raw fields.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Layout {
    /// No raw fields: the map is all there is (empty if never set).
    #[default]
    None,
    /// The text between the braces of a flat JSON object of string values, checked by the
    /// decoder: `"key":"value"` pairs separated by commas, no escapes, no control characters,
    /// valid UTF-8.
    Json,
    /// A binary header's map, checked by the decoder: (i16 key length, key, i32 value length,
    /// value)*, keys and values valid UTF-8.
    Binary,
}

/// A decoded header's fields as they came, and where the send-response values are in them.
#[derive(Clone, Default)]
struct Raw {
    layout: Layout,
    /// Whether the send places can be read: each send key at most once, with an ASCII value,
    /// and the text short enough for 16-bit offsets.
    send_ok: bool,
    /// The text, then (unless `layout` is `None`) the send places: for each [`ResponseKey`],
    /// the range of its value in the text as two little-endian `u16`s; (0, 0) when absent (a
    /// value never starts at 0: its key comes first). In one buffer, so that `Raw` is small.
    text: Vec<u8>,
}

/// The bytes of the send places at the end of [`Raw::text`].
const PLACES_BYTES: usize = 4 * RESPONSE_KEYS;

impl Raw {
    /// The text itself (without the send places).
    fn text(&self) -> &[u8] {
        let len = self.text.len().saturating_sub(PLACES_BYTES);
        self.text.get(..len).unwrap_or(&[])
    }

    /// The send places (zeros when there are none).
    fn places(&self) -> &[u8] {
        let len = self.text.len().saturating_sub(PLACES_BYTES);
        self.text.get(len..).unwrap_or(&[])
    }
}

/// The `extFields` keys of a send response (`SendMessageResponseHeader`, plus what brokers
/// add), which a decoder records the places of (see [`ExtFields::response_places`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseKey {
    MsgId,
    QueueId,
    QueueOffset,
    BatchUniqId,
    TransactionId,
    MsgRegion,
    TraceOn,
}

/// Where a decoded header's send-response values are (see [`ExtFields::response_places`]).
#[derive(Clone, Copy)]
pub(crate) struct ResponsePlaces<'a> {
    text: &'a [u8],
    /// The send places as [`Raw::text`] ends with them.
    send: &'a [u8],
}

impl<'a> ResponsePlaces<'a> {
    /// The value of `key` (ASCII), `None` when absent.
    #[inline]
    pub(crate) fn get(self, key: ResponseKey) -> Option<&'a [u8]> {
        let (start, end) = place(self.send, key);
        if start == 0 {
            return None;
        }
        self.text.get(usize::from(start)..usize::from(end))
    }
}

/// The range of `key`'s value in send places `send` (as [`Raw::text`] ends with them); (0, 0)
/// when not there.
#[inline]
fn place(send: &[u8], key: ResponseKey) -> (u16, u16) {
    let at = key as usize * 4;
    match send.get(at..at + 4) {
        Some(b) => (
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
        ),
        None => (0, 0),
    }
}

/// How many [`ResponseKey`]s there are.
pub(crate) const RESPONSE_KEYS: usize = 7;

impl ResponseKey {
    /// Every key.
    #[cfg(test)]
    pub(crate) const ALL: [ResponseKey; RESPONSE_KEYS] = [
        ResponseKey::MsgId,
        ResponseKey::QueueId,
        ResponseKey::QueueOffset,
        ResponseKey::BatchUniqId,
        ResponseKey::TransactionId,
        ResponseKey::MsgRegion,
        ResponseKey::TraceOn,
    ];

    /// The key's name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            ResponseKey::MsgId => "msgId",
            ResponseKey::QueueId => "queueId",
            ResponseKey::QueueOffset => "queueOffset",
            ResponseKey::BatchUniqId => "batchUniqId",
            ResponseKey::TransactionId => "transactionId",
            ResponseKey::MsgRegion => "MSG_REGION",
            ResponseKey::TraceOn => "TRACE_ON",
        }
    }

    /// The response key named `key`, told apart by length and first byte before one
    /// comparison.
    pub(crate) fn of(key: &[u8]) -> Option<ResponseKey> {
        let k = match (key.len(), key.first()?) {
            (5, b'm') => ResponseKey::MsgId,
            (7, b'q') => ResponseKey::QueueId,
            (8, b'T') => ResponseKey::TraceOn,
            (10, b'M') => ResponseKey::MsgRegion,
            (11, b'q') => ResponseKey::QueueOffset,
            (11, b'b') => ResponseKey::BatchUniqId,
            (13, b't') => ResponseKey::TransactionId,
            _ => return None,
        };
        (k.name().as_bytes() == key).then_some(k)
    }
}

/// What a decoder learns while it checks a header's raw fields: where the send-response
/// values are. [`RawBuilder::finish`] then keeps the text.
#[derive(Clone, Copy)]
pub(super) struct RawBuilder {
    /// The send places as [`Raw::text`] ends with them (written as noted: `finish` appends
    /// them in one copy).
    places: [u8; PLACES_BYTES],
    send_ok: bool,
    /// The [`ResponseKey`]s seen, one bit each.
    seen: u8,
}

impl RawBuilder {
    pub(super) const fn new() -> Self {
        RawBuilder {
            places: [0; PLACES_BYTES],
            send_ok: true,
            seen: 0,
        }
    }

    /// Notes `text[start..end]` as the place of `key`'s value.
    #[inline(always)]
    fn set(&mut self, key: ResponseKey, start: u16, end: u16) {
        let at = key as usize * 4;
        let [s0, s1] = start.to_le_bytes();
        let [e0, e1] = end.to_le_bytes();
        if let Some(place) = self.places.get_mut(at..at + 4) {
            place.copy_from_slice(&[s0, s1, e0, e1]);
        }
    }

    /// The value of `key` is `text[start..end]`; `ascii` says whether it is all ASCII.
    #[inline]
    pub(super) fn send_value(&mut self, key: ResponseKey, start: usize, end: usize, ascii: bool) {
        let bit = 1u8 << key as u8;
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(s), Ok(e)) if ascii && self.seen & bit == 0 => self.set(key, s, e),
            // A repeated key (the map keeps the last), a non-ASCII value or a long text: the
            // map decides.
            _ => self.send_ok = false,
        }
        self.seen |= bit;
    }

    /// [`RawBuilder::send_value`] for a key not given before and a place below 65 536 (the
    /// caller knows both): no checks of either.
    #[inline]
    pub(super) fn send_value_once(&mut self, key: ResponseKey, start: u16, end: u16, ascii: bool) {
        if ascii {
            self.set(key, start, end);
        } else {
            self.send_ok = false;
        }
    }

    /// The fields of a flat JSON object whose text between the braces is `text` (checked:
    /// see [`Layout::Json`]).
    #[inline]
    pub(super) fn finish_json(self, text: &[u8]) -> ExtFields {
        self.finish(Layout::Json, text)
    }

    /// The fields of a binary header's map `text` (checked: see [`Layout::Binary`]).
    pub(super) fn finish_binary(self, text: &[u8]) -> ExtFields {
        self.finish(Layout::Binary, text)
    }

    // Inlined: a decoded response's one call of it (no call, no moves of the builder).
    #[inline(always)]
    fn finish(self, layout: Layout, text: &[u8]) -> ExtFields {
        if text.is_empty() {
            return ExtFields::new();
        }
        let mut buf = recycled_buffer(text.len() + PLACES_BYTES);
        buf.extend_from_slice(text);
        buf.extend_from_slice(&self.places);
        ExtFields {
            map: OnceLock::new(),
            raw: Raw {
                layout,
                send_ok: self.send_ok,
                text: buf,
            },
        }
    }
}

impl Raw {
    /// The map these fields make, the text left as it is.
    fn build(&self) -> Map {
        match self.layout {
            Layout::None => Map::default(),
            Layout::Json => json_map(self.text().to_vec()),
            Layout::Binary => binary_map(self.text()),
        }
    }

    /// The map these fields make, taking the text (a JSON text becomes the value buffer).
    fn into_map(mut self) -> Map {
        match self.layout {
            Layout::None => Map::default(),
            Layout::Json => {
                let mut text = std::mem::take(&mut self.text);
                text.truncate(text.len().saturating_sub(PLACES_BYTES));
                json_map(text)
            }
            Layout::Binary => binary_map(self.text()),
        }
    }
}

/// The map of a checked flat JSON object's text (see [`Layout::Json`]); the text becomes the
/// value buffer, each value a range of it. A later duplicate key wins.
fn json_map(text: Vec<u8>) -> Map {
    // Checked by the decoder: always valid.
    let values = String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let bytes = values.as_bytes();
    let quote = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'"'))
            .map(|i| from + i)
    };
    let mut ranges: Vec<Entry> = Vec::with_capacity(16);
    // `"key":"value"` pairs, separated by commas.
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(key_end) = quote(pos + 1) else { break };
        let value_start = key_end + 3;
        let Some(value_end) = quote(value_start) else {
            break;
        };
        let Some(key) = values.get(pos + 1..key_end) else {
            break;
        };
        ranges.push((intern_key(key), value_start, value_end));
        pos = value_end + 2;
    }
    Map::from_ranges(ranges, values)
}

/// The map of a checked binary header's map (see [`Layout::Binary`]): values copied into one
/// buffer. A later duplicate key wins.
fn binary_map(text: &[u8]) -> Map {
    let mut ranges = Vec::with_capacity(16);
    let mut raw = Vec::with_capacity(text.len());
    let mut pos = 0;
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let s = text.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    };
    while let Some(len) = take(&mut pos, 2) {
        let key_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(key) = take(&mut pos, key_len) else {
            break;
        };
        // Checked by the decoder: always valid.
        let key = match known_key(key) {
            Some(known) => Cow::Borrowed(known),
            None => Cow::Owned(String::from_utf8_lossy(key).into_owned()),
        };
        let Some(len) = take(&mut pos, 4) else { break };
        let value_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(value) = take(&mut pos, value_len) else {
            break;
        };
        let start = raw.len();
        raw.extend_from_slice(value);
        ranges.push((key, start, raw.len()));
    }
    // Checked by the decoder: always valid.
    let values = String::from_utf8(raw)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Map::from_ranges(ranges, values)
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        ExtFields::default()
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        ExtFields::from_map(Map {
            entries: Vec::with_capacity(n),
            values: String::with_capacity(n * 16),
        })
    }

    fn from_map(map: Map) -> Self {
        ExtFields {
            map: OnceLock::from(Box::new(map)),
            raw: Raw::default(),
        }
    }

    /// The map, built from the raw fields on first use.
    fn map(&self) -> &Map {
        self.map.get_or_init(|| Box::new(self.raw.build()))
    }

    /// Changes the map (built from the raw fields first, which are then let go).
    fn with_map<R>(&mut self, change: impl FnOnce(&mut Map) -> R) -> R {
        let raw = std::mem::take(&mut self.raw);
        let mut map = match self.map.take() {
            Some(map) => {
                raw.recycle();
                map
            }
            None => Box::new(raw.into_map()),
        };
        let result = change(&mut map);
        self.map = OnceLock::from(map);
        result
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
    pub(super) fn insert_with(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        self.with_map(|m| m.insert_with(key, write))
    }

    /// An empty map for a decoded header's fields, with room for a dozen entries and
    /// `value_bytes` of values.
    pub(super) fn for_decoding(value_bytes: usize) -> Self {
        ExtFields::from_map(Map {
            entries: Vec::with_capacity(16),
            values: String::with_capacity(value_bytes),
        })
    }

    /// Appends `key` with the value `write` appends to the value buffer, as
    /// [`ExtFields::insert_with`] but quicker for keys that come in order (a decoded header's
    /// usually do).
    pub(super) fn push_decoded(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        self.with_map(|m| m.push_decoded(key, write))
    }

    /// The values of the send-response keys, by [`ResponseKey`] (`None`: absent): a test's
    /// view of [`ExtFields::response_places`].
    #[cfg(test)]
    pub(crate) fn response_values(&self) -> Option<[Option<&[u8]>; RESPONSE_KEYS]> {
        let places = self.response_places()?;
        Some(ResponseKey::ALL.map(|key| places.get(key)))
    }

    /// Where the decoder found the values of the send-response keys in the raw fields (each
    /// read by [`ResponsePlaces::get`]): no map, no key comparisons. Each is ASCII. `None`
    /// when that is not known (a map not straight from a decoder, changed since, or whose
    /// send keys are repeated or not ASCII): then look them up.
    #[inline]
    pub(crate) fn response_places(&self) -> Option<ResponsePlaces<'_>> {
        let raw = &self.raw;
        if raw.layout == Layout::None || !raw.send_ok {
            return None;
        }
        Some(ResponsePlaces {
            text: raw.text(),
            send: raw.places(),
        })
    }

    /// The raw fields as kept: whether there are any and their layout's name, whether the
    /// send values' places can be read, those places, the text.
    #[cfg(test)]
    pub(crate) fn raw_parts(&self) -> (&'static str, bool, [(u16, u16); RESPONSE_KEYS], &[u8]) {
        let layout = match self.raw.layout {
            Layout::None => "none",
            Layout::Json => "json",
            Layout::Binary => "binary",
        };
        let places = self.raw.places();
        let send = ResponseKey::ALL.map(|key| place(places, key));
        (layout, self.raw.send_ok, send, self.raw.text())
    }

    /// Whether the map is still only the raw fields of a decoded header (not built yet).
    #[cfg(test)]
    pub(crate) fn is_raw(&self) -> bool {
        self.raw.layout != Layout::None && self.map.get().is_none()
    }

    /// Removes `key` without handing its value back.
    pub(super) fn remove_entry(&mut self, key: &str) -> bool {
        self.with_map(|m| m.remove_entry(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map().get(key)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.with_map(|m| m.remove(key))
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map().iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.map().entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        std::mem::take(&mut self.raw).recycle();
        match self.map.get_mut() {
            Some(map) => {
                map.entries.clear();
                map.values.clear();
            }
            None => self.map = OnceLock::new(),
        }
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

impl Map {
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
    fn from_ranges(ranges: Vec<Entry>, values: String) -> Self {
        let sorted = ranges.windows(2).all(|w| key_less(&w[0].0, &w[1].0));
        if sorted {
            return Map {
                entries: ranges,
                values,
            };
        }
        let mut map = Map {
            entries: Vec::with_capacity(ranges.len()),
            values,
        };
        let mut replaced = false;
        for (key, start, end) in ranges {
            replaced |= map.place(key, start, end);
        }
        // Only now: compacting moves values, and the ranges not yet placed point into them.
        if replaced {
            map.compact_if_wasteful();
        }
        map
    }

    /// Appends `key` with the value `write` appends, quicker for keys in order.
    fn push_decoded(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        let in_order = match self.entries.last() {
            None => true,
            Some((last, ..)) => key_less(last, &key),
        };
        if !in_order {
            return self.insert_with(key, write);
        }
        let start = self.values.len();
        if write(&mut self.values).is_none() {
            self.values.truncate(start);
            return None;
        }
        self.entries.push((key, start, self.values.len()));
        Some(())
    }

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

    fn get(&self, key: &str) -> Option<&str> {
        // A header has a dozen fields: comparing lengths first beats a binary search of memcmps.
        let found = if self.entries.len() <= 16 {
            // Length and first byte rule out nearly every other key without a `memcmp` call.
            let (len, first) = (key.len(), key.as_bytes().first());
            self.entries
                .iter()
                .position(|(k, ..)| k.len() == len && k.as_bytes().first() == first && k == key)
        } else {
            self.position(key).ok()
        };
        found.map(|i| self.value(i))
    }

    fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key).ok()?;
        let value = self.value(i).to_owned();
        self.entries.remove(i);
        Some(value)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, start, end)| (k.as_ref(), &self.values[*start..*end]))
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
}

/// Raw-field buffers of dropped maps, for the decoders to reuse: a response is decoded on an
/// I/O thread and dropped on the caller's, so without this every response costs an
/// allocation on one thread and a free on another (the slow, cross-thread path of the
/// allocator). Bounded in count and size; only ever `try_lock`ed, so nobody waits for it (a
/// busy pool means an allocation or a free, as without it).
static RECYCLED: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::const_mutex(Vec::new());

/// Buffers kept at most, and the largest ones kept. An event loop completes each response
/// as it decodes it, but a response handed to another thread (a sync caller, the callback
/// pool) drops its map there, later: the pool holds what such threads give back in a burst.
/// It only grows to the largest burst seen: at most 512 x 2 KiB.
const RECYCLED_MAX: usize = 512;
const RECYCLED_MAX_BYTES: usize = 2048;
/// The smallest buffers kept, and the room a raw text starts with: a recycled buffer then
/// holds a response's fields without growing.
const RECYCLED_MIN_BYTES: usize = 512;

thread_local! {
    /// One recycled buffer of this thread's, taken and given back without a lock: an I/O
    /// thread completes a response as it decodes it, so the buffer it takes for one response
    /// comes back before the next is decoded. Only when the slot is taken (or full) does the
    /// shared pool serve.
    static RECYCLED_HERE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty buffer with room for `len` bytes: a recycled one when there is one (this
/// thread's first).
fn recycled_buffer(len: usize) -> Vec<u8> {
    // A thread being torn down has no slot: the shared pool, as for an empty slot.
    let mut buf = RECYCLED_HERE.try_with(Cell::take).unwrap_or_default();
    if buf.capacity() == 0 {
        buf = RECYCLED
            .try_lock()
            .and_then(|mut free| free.pop())
            .unwrap_or_default();
    }
    if buf.capacity() < len {
        buf.reserve(len.max(RECYCLED_MIN_BYTES));
    }
    buf
}

impl Raw {
    /// Gives the text's buffer back to the pool.
    fn recycle(self) {
        let mut text = self.text;
        if !(RECYCLED_MIN_BYTES..=RECYCLED_MAX_BYTES).contains(&text.capacity()) {
            return;
        }
        text.clear();
        // Into this thread's slot when it is empty; otherwise (or while the thread is torn
        // down, when the closure is dropped unrun and frees the buffer) the shared pool.
        let spare = RECYCLED_HERE.try_with(move |slot| {
            let held = slot.take();
            if held.capacity() == 0 {
                slot.set(text);
                None
            } else {
                slot.set(held);
                Some(text)
            }
        });
        let Ok(Some(text)) = spare else {
            return;
        };
        if let Some(mut free) = RECYCLED.try_lock() {
            if free.len() < RECYCLED_MAX {
                if free.capacity() == 0 {
                    free.reserve_exact(RECYCLED_MAX);
                }
                free.push(text);
            }
        }
    }
}

impl Drop for ExtFields {
    fn drop(&mut self) {
        if self.raw.text.capacity() != 0 {
            std::mem::take(&mut self.raw).recycle();
        }
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
        let mut m = Map::default();
        for (k, v) in iter {
            let v = v.as_ref();
            m.insert_with(k.into(), |buf| {
                buf.push_str(v);
                Some(())
            });
        }
        ExtFields::from_map(m)
    }
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
pub(super) fn intern_letter(b: u8) -> Cow<'static, str> {
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
pub(super) fn intern_key(key: &str) -> Cow<'static, str> {
    match known_key(key.as_bytes()) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(key.to_owned()),
    }
}

/// The static name of a key [`intern_key`] knows, from its bytes: a binary header's keys are
/// looked up before (and, when known, instead of) a UTF-8 check.
pub(super) fn known_key(key: &[u8]) -> Option<&'static str> {
    if let [b @ b'a'..=b'n'] = key {
        return match intern_letter(*b) {
            Cow::Borrowed(k) => Some(k),
            Cow::Owned(_) => None,
        };
    }
    // A `match` compares lengths first: only keys of the same length reach `memcmp`.
    Some(match key {
        b"IS_SUB_CHANGE" => "IS_SUB_CHANGE",
        b"IS_SUPPORT_HEART_BEAT_V2" => "IS_SUPPORT_HEART_BEAT_V2",
        b"MSG_REGION" => "MSG_REGION",
        b"TRACE_ON" => "TRACE_ON",
        b"acceptStandardJsonOnly" => "acceptStandardJsonOnly",
        b"batch" => "batch",
        b"batchUniqId" => "batchUniqId",
        b"bname" => "bname",
        b"bornTimestamp" => "bornTimestamp",
        b"clientID" => "clientID",
        b"commitLogOffset" => "commitLogOffset",
        b"commitOrRollback" => "commitOrRollback",
        b"committed" => "committed",
        b"consumerGroup" => "consumerGroup",
        b"defaultTopic" => "defaultTopic",
        b"defaultTopicQueueNums" => "defaultTopicQueueNums",
        b"flag" => "flag",
        b"fromTransactionCheck" => "fromTransactionCheck",
        b"maxReconsumeTimes" => "maxReconsumeTimes",
        b"msgId" => "msgId",
        b"offset" => "offset",
        b"offsetMsgId" => "offsetMsgId",
        b"producerGroup" => "producerGroup",
        b"properties" => "properties",
        b"queueId" => "queueId",
        b"queueOffset" => "queueOffset",
        b"recallHandle" => "recallHandle",
        b"reconsumeTimes" => "reconsumeTimes",
        b"sysFlag" => "sysFlag",
        b"topic" => "topic",
        b"tranStateTableOffset" => "tranStateTableOffset",
        b"transactionId" => "transactionId",
        b"unitMode" => "unitMode",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded command crosses threads (I/O thread to caller) and may be shared.
    #[test]
    fn ext_fields_and_commands_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ExtFields>();
        send_sync::<super::super::RemotingCommand>();
    }

    /// A response's raw-field buffer, dropped on the thread that decoded it, is the buffer
    /// the thread's next decode takes (this thread's slot: no lock, no allocation), and the
    /// next response reads the same.
    #[test]
    fn a_dropped_responses_buffer_is_the_threads_next() {
        let frame = include_bytes!("../../../tests/data/send_v2_response.bin");
        let first = super::super::RemotingCommand::decode(frame).unwrap();
        let expected: Vec<(String, String)> = first
            .ext_fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(!expected.is_empty());
        let at = first.ext_fields.raw.text.as_ptr();
        assert!(first.ext_fields.raw.text.capacity() >= RECYCLED_MIN_BYTES);
        drop(first);
        for _ in 0..3 {
            let next = super::super::RemotingCommand::decode(frame).unwrap();
            assert_eq!(next.ext_fields.raw.text.as_ptr(), at);
            let got: Vec<(String, String)> = next
                .ext_fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, expected);
        }
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
        assert!(f.map().values.len() < 1024, "{}", f.map().values.len());
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
        let f = Map::from_ranges(
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
