//! [`ExtFields`]: the custom-header map of a command (sorted keys, values in one shared
//! buffer), and the key names it interns so that decoded keys cost no allocation.

use std::borrow::Cow;
use std::fmt;

use super::json_write::push_int;
use super::CodecError;

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
    /// Where a decoded send response's fields are: for each [`ResponseKey`], 1 + the index of
    /// its entry, or 0 when absent. Only a decoder sets it (while the keys arrive in order, so
    /// each key has one entry); every other change to the map clears `slots_valid`. Eight
    /// bytes in all: a command is moved several times between decoder and reader.
    slots: [u8; RESPONSE_KEYS],
    slots_valid: bool,
}

/// The `extFields` keys of a send response (`SendMessageResponseHeader`, plus what brokers
/// add), which a decoder records the places of (see [`ExtFields::response_values`]).
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

/// How many [`ResponseKey`]s there are.
pub(crate) const RESPONSE_KEYS: usize = 7;

impl ResponseKey {
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
    pub(super) fn of(key: &[u8]) -> Option<ResponseKey> {
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
            ..ExtFields::default()
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
    pub(super) fn insert_with(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        self.slots_valid = false;
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
        self.slots_valid = false;
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
    pub(super) fn from_ranges(
        ranges: Vec<(Cow<'static, str>, usize, usize)>,
        values: String,
    ) -> Self {
        let sorted = ranges.windows(2).all(|w| key_less(&w[0].0, &w[1].0));
        if sorted {
            return ExtFields {
                entries: ranges,
                values,
                ..ExtFields::default()
            };
        }
        let mut fields = ExtFields {
            entries: Vec::with_capacity(ranges.len()),
            values,
            ..ExtFields::default()
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

    /// An empty map for a decoded header's fields, with room for a dozen entries and
    /// `value_bytes` of values: the buffers of a dropped map when one is recycled (the common
    /// case once warm: no allocation), new ones otherwise.
    pub(super) fn for_decoding(value_bytes: usize) -> Self {
        let recycled = RECYCLED.try_lock().and_then(|mut free| free.pop());
        let mut fields = match recycled {
            Some((entries, values)) => ExtFields {
                entries,
                values,
                ..ExtFields::default()
            },
            None => ExtFields::new(),
        };
        fields.entries.reserve(RECYCLED_MIN_ENTRIES);
        if fields.values.capacity() < value_bytes {
            fields
                .values
                .reserve(value_bytes.max(RECYCLED_MIN_VALUE_BYTES));
        }
        fields
    }

    /// Appends `key` with the value `write` appends to the value buffer, as
    /// [`ExtFields::insert_with`] but quicker for keys that come in order (a decoded header's
    /// usually do).
    pub(super) fn push_decoded(
        &mut self,
        key: Cow<'static, str>,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<()> {
        self.slots_valid = false;
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

    /// Appends `key` with its value at `values[start..end]`, a range of text the caller
    /// appends with [`ExtFields::push_value_text`] before anything reads the map (a decoded
    /// header's values, copied in one piece with what lies between them). Returns whether an
    /// earlier entry of the key was replaced: then call [`ExtFields::compact_if_wasteful`]
    /// once the text is in.
    ///
    /// `response_key` is the key's [`ResponseKey`] when it is one (never `None` for a key of
    /// that name): [`ExtFields::response_values`] then knows its place while the keys come
    /// in order. A decoder starts that table with [`ExtFields::start_response_slots`].
    #[inline]
    pub(super) fn push_range_of(
        &mut self,
        key: Cow<'static, str>,
        response_key: Option<ResponseKey>,
        start: usize,
        end: usize,
    ) -> bool {
        let in_order = match self.entries.last() {
            None => true,
            Some((last, ..)) => key_less(last, &key),
        };
        if in_order {
            if let Some(k) = response_key {
                match u8::try_from(self.entries.len() + 1) {
                    Ok(slot) => self.slots[k as usize] = slot,
                    Err(_) => self.slots_valid = false,
                }
            }
            self.entries.push((key, start, end));
            false
        } else {
            self.place_out_of_order(key, start, end)
        }
    }

    /// [`ExtFields::place`] for a decoder's key out of order (rare: kept out of line, so the
    /// in-order push stays small).
    #[cold]
    #[inline(never)]
    fn place_out_of_order(&mut self, key: Cow<'static, str>, start: usize, end: usize) -> bool {
        self.place(key, start, end)
    }

    /// Starts the table of [`ExtFields::response_values`] for an empty map a decoder fills
    /// with [`ExtFields::push_range_of`].
    pub(super) fn start_response_slots(&mut self) {
        self.slots = [0; RESPONSE_KEYS];
        self.slots_valid = self.entries.is_empty();
    }

    /// The values of the send-response keys, by [`ResponseKey`] (`None`: absent), read from
    /// the table a decoder kept: no key comparisons. `None` when there is no table (a map not
    /// straight from a decoder, or whose keys came out of order): then look them up.
    pub(crate) fn response_values(&self) -> Option<[Option<&str>; RESPONSE_KEYS]> {
        if !self.slots_valid {
            return None;
        }
        let mut found = [None; RESPONSE_KEYS];
        for (value, &slot) in found.iter_mut().zip(&self.slots) {
            if let Some(&(_, start, end)) = self.entries.get(usize::from(slot).wrapping_sub(1)) {
                *value = self.values.get(start..end);
            }
        }
        Some(found)
    }

    /// The length of the value buffer: where text appended next starts.
    pub(super) fn value_text_len(&self) -> usize {
        self.values.len()
    }

    /// Appends text that ranges given to [`ExtFields::push_range_of`] point into.
    pub(super) fn push_value_text(&mut self, text: &str) {
        self.values.push_str(text);
    }

    /// Removes `key` without handing its value back.
    pub(super) fn remove_entry(&mut self, key: &str) -> bool {
        self.slots_valid = false;
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

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.slots_valid = false;
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
        self.slots_valid = false;
        self.entries.clear();
        self.values.clear();
    }

    /// Drops the bytes of replaced and removed values once they are most of the buffer.
    pub(super) fn compact_if_wasteful(&mut self) {
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

/// Buffers of dropped maps, for the decoder to reuse: a response is decoded on an I/O thread
/// and dropped on the caller's, so without this every response costs two allocations on one
/// thread and two frees on another (the slow, cross-thread path of the allocator). Bounded in
/// count and size; only ever `try_lock`ed, so nobody waits for it (a busy pool means an
/// allocation or a free, as without it).
static RECYCLED: parking_lot::Mutex<Vec<Recycled>> = parking_lot::const_mutex(Vec::new());

type Recycled = (Vec<(Cow<'static, str>, usize, usize)>, String);

/// Buffers kept at most, and the largest ones kept. An event loop decodes every frame of a
/// read (up to 64 KiB: ~300 send responses of the real brokers' size) before their maps are
/// dropped, so the pool holds a read's worth. It only grows to the largest burst seen:
/// 512 maps of a send response are ~600 KiB; the bound is 512 x 3.3 KiB.
const RECYCLED_MAX: usize = 512;
const RECYCLED_MAX_ENTRIES: usize = 32;
const RECYCLED_MAX_VALUE_BYTES: usize = 2048;
/// The smallest buffers kept, and the room a decoded map starts with: a recycled buffer then
/// holds a response's values without growing (a small one, from a map built field by field,
/// would be reallocated by the next decode: freed instead).
const RECYCLED_MIN_ENTRIES: usize = 16;
const RECYCLED_MIN_VALUE_BYTES: usize = 512;

impl Drop for ExtFields {
    fn drop(&mut self) {
        if !(RECYCLED_MIN_VALUE_BYTES..=RECYCLED_MAX_VALUE_BYTES).contains(&self.values.capacity())
            || !(RECYCLED_MIN_ENTRIES..=RECYCLED_MAX_ENTRIES).contains(&self.entries.capacity())
        {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        if let Some(mut free) = RECYCLED.try_lock() {
            if free.len() < RECYCLED_MAX {
                if free.capacity() == 0 {
                    free.reserve_exact(RECYCLED_MAX);
                }
                free.push((entries, values));
            }
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
        let mut m = ExtFields::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
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
