//! The flat JSON header reader: the one layout brokers write their responses in, read in one
//! pass with no closures, no key strings and no per-value checks.
//!
//! Java brokers (fastjson) and RocketMQ-Rust brokers (serde) write a header as an object with
//! no whitespace and no escapes in the common case: integers, strings or null at the top level
//! (`code`, `flag`, `language`, `opaque`, `remark`, `serializeTypeCurrentRPC`, `version`, in
//! any order), and `extFields`, an object of string values. Every send response has that shape
//! (`{"code":0,...,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"7F..",
//! "queueId":"1","queueOffset":"0"},...}`), and send responses are most of what an I/O thread
//! reads.
//!
//! This reader takes exactly that shape: keys and values without escapes or control
//! characters, no whitespace, integers of at most 18 digits (no fraction, exponent, leading
//! zero or `-0`), unknown top-level keys with a string, integer, `true`, `false` or null value
//! (skipped), `extFields` once, with string values only. Anything else (an escape, a space, a
//! null or a number inside `extFields`, a nested value, a syntax error, invalid UTF-8, trailing
//! bytes) gives up with `None`, and the general readers decide ([`super::json_fast`], then the
//! `serde_json::Value` reader): whatever this reader answers is what they answer.
//!
//! `extFields` is checked in the same pass but not built into a map: its text is kept raw
//! (see [`ExtFields`]), with where the send-response values are, which is all a send
//! response's reader needs. Only strings with a byte >= 0x80 are checked as UTF-8.

use super::ext_fields::{RawBuilder, ResponseKey};
use super::{ExtFields, RemotingCommand, SerializeType};
use crate::protocol::codes::LanguageCode;

/// Reads a flat header, or `None` when it is not one (see the module docs).
pub(super) fn parse_flat(header: &[u8]) -> Option<RemotingCommand> {
    parse_flat_noting::<false>(header, &mut Places::default())
}

/// Where a flat header's variable values are, as [`parse_flat_noting`] notes them for the
/// layout memo ([`super::json_memo`]).
#[derive(Default)]
pub(super) struct Places {
    /// The variable values in header order.
    pub(super) slots: Vec<Slot>,
    /// The `extFields` text (between its braces) when there is one: its range in the header.
    pub(super) text: Option<(usize, usize)>,
}

/// A variable value of a header: `header[start..end]`, read as `kind` says.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: SlotKind,
}

/// How a [`Slot`] is read: exactly as [`parse_flat`] reads the value there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotKind {
    /// The top-level `opaque`: [`Flat::int_or_null`].
    Opaque,
    /// An `extFields` value, quotes included: [`Flat::value`], noted for the send key if it
    /// is one.
    Value(Option<ResponseKey>),
}

/// [`parse_flat`], noting in `places` (when `NOTE`) where the variable values are: the
/// top-level `opaque` and every `extFields` value. Everything else in the header is read
/// the same way whatever surrounds it, so a header equal to this one outside those values
/// reads the same outside them (see [`super::json_memo`]).
pub(super) fn parse_flat_noting<const NOTE: bool>(
    header: &[u8],
    places: &mut Places,
) -> Option<RemotingCommand> {
    // No UTF-8 check of the whole header: outside strings only ASCII punctuation, digits and
    // literals are taken, and each string is checked as it is scanned (see `Flat::string`).
    let mut r = Flat {
        buf: header,
        pos: 0,
    };
    r.expect(b'{')?;
    let mut code = None;
    let mut ext_fields: Option<ExtFields> = None;
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
    loop {
        match r.top_key()? {
            Top::Code => code = Some(r.int_or_null(-1)?),
            Top::ExtFields => {
                // Twice is legal JSON (the last one wins), but no broker writes it.
                if ext_fields.is_some() {
                    return None;
                }
                ext_fields = Some(if r.null() {
                    ExtFields::new()
                } else {
                    r.ext_fields::<NOTE>(places)?
                });
            }
            Top::Flag => cmd.flag = r.int_or_null(0)?,
            Top::Language => {
                cmd.language = match r.string_or_null()? {
                    // The two languages brokers are written in, without a search of the names.
                    Some(b"JAVA") => LanguageCode::JAVA,
                    Some(b"RUST") => LanguageCode::RUST,
                    Some(name) => LanguageCode::from_name(std::str::from_utf8(name).ok()?)
                        .unwrap_or(LanguageCode::OTHER),
                    None => LanguageCode::JAVA,
                }
            }
            Top::Opaque => {
                let start = r.pos;
                cmd.opaque = r.int_or_null(0)?;
                if NOTE {
                    places.slots.push(Slot {
                        start,
                        end: r.pos,
                        kind: SlotKind::Opaque,
                    });
                }
            }
            Top::Remark => {
                cmd.remark = match r.string_or_null()? {
                    Some(remark) => Some(std::str::from_utf8(remark).ok()?.to_owned()),
                    None => None,
                }
            }
            Top::Version => cmd.version = r.int_or_null(0)?,
            Top::Other => r.skip_scalar()?,
        }
        match r.next_byte()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    if r.pos != header.len() {
        return None;
    }
    cmd.code = code?;
    if let Some(fields) = ext_fields {
        cmd.ext_fields = fields;
    }
    Some(cmd)
}

/// The header's own keys; `Other` for any other.
#[derive(Clone, Copy)]
enum Top {
    Code,
    ExtFields,
    Flag,
    Language,
    Opaque,
    Remark,
    Version,
    Other,
}

impl Top {
    /// The key that starts with `first` (they all differ in their first byte), and its name.
    fn by_first(first: u8) -> Option<(Top, &'static str)> {
        Some(match first {
            b'c' => (Top::Code, "code"),
            b'e' => (Top::ExtFields, "extFields"),
            b'f' => (Top::Flag, "flag"),
            b'l' => (Top::Language, "language"),
            b'o' => (Top::Opaque, "opaque"),
            b'r' => (Top::Remark, "remark"),
            b'v' => (Top::Version, "version"),
            _ => return None,
        })
    }

    /// The key that starts with `first`, as the literal `"name":` it is written as; Java's
    /// `serializeTypeCurrentRPC` too (skipped as [`Top::Other`]).
    fn literal(first: u8) -> Option<(Top, &'static Lit)> {
        Some(match first {
            b'c' => (Top::Code, &LIT_CODE),
            b'e' => (Top::ExtFields, &LIT_EXT_FIELDS),
            b'f' => (Top::Flag, &LIT_FLAG),
            b'l' => (Top::Language, &LIT_LANGUAGE),
            b'o' => (Top::Opaque, &LIT_OPAQUE),
            b'r' => (Top::Remark, &LIT_REMARK),
            b'v' => (Top::Version, &LIT_VERSION),
            b's' => (Top::Other, &LIT_SERIALIZE_TYPE),
            _ => return None,
        })
    }

    fn of(key: &[u8]) -> Top {
        match Top::by_first(key.first().copied().unwrap_or(0)) {
            Some((top, name)) if name.as_bytes() == key => top,
            _ => Top::Other,
        }
    }
}

pub(super) struct Flat<'a> {
    /// The whole header (its strings are valid UTF-8 once read).
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Flat<'a> {
    fn next_byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next_byte()? == b).then_some(())
    }

    /// `null` at the cursor (consumed)?
    fn null(&mut self) -> bool {
        if self.buf.get(self.pos..self.pos + 4) == Some(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// A string without escapes at the cursor: its bytes, valid UTF-8 (the quotes consumed).
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut end = string_end(self.buf, start);
        if *self.buf.get(end)? >= 0x80 {
            // Not ASCII: found the end without stopping at such bytes, then checked.
            end = string_end_utf8(self.buf, end);
            std::str::from_utf8(self.buf.get(start..end)?).ok()?;
        }
        // A backslash, a control character or the end of the input: not flat.
        if *self.buf.get(end)? != b'"' {
            return None;
        }
        self.pos = end + 1;
        self.buf.get(start..end)
    }

    fn string_or_null(&mut self) -> Option<Option<&'a [u8]>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// An object key and its colon: the key's bytes.
    fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// Consumes `"name":` when the cursor is on exactly that: one masked compare of the
    /// next 16 or 32 bytes (no scan for the closing quote, no `memcmp` call).
    #[inline]
    fn literal_key(&mut self, lit: &Lit) -> bool {
        let found = match self.buf.get(self.pos..self.pos + 32) {
            Some(window) => lit.matches(window),
            // Near the end of the header: byte by byte.
            None => self.buf.get(self.pos..self.pos + lit.len) == Some(lit.bytes()),
        };
        if found {
            self.pos += lit.len;
        }
        found
    }

    /// A top-level key and its colon: told by its first byte and confirmed in place when it
    /// is one of the header's own, read as any string otherwise.
    fn top_key(&mut self) -> Option<Top> {
        if let Some((top, lit)) = self.buf.get(self.pos + 1).and_then(|&b| Top::literal(b)) {
            if self.literal_key(lit) {
                return Some(top);
            }
        }
        self.key().map(Top::of)
    }

    /// An `extFields` key and its colon, checked: the [`ResponseKey`] it is, if any. A send
    /// response's keys are told by their first byte and confirmed in place; any other is
    /// scanned as a string.
    #[inline]
    fn ext_key(&mut self) -> Option<Option<ResponseKey>> {
        let predicted = match self.buf.get(self.pos + 1) {
            Some(b'M') => Some((&LIT_MSG_REGION, ResponseKey::MsgRegion)),
            Some(b'T') => Some((&LIT_TRACE_ON, ResponseKey::TraceOn)),
            Some(b'm') => Some((&LIT_MSG_ID, ResponseKey::MsgId)),
            Some(b'q') => match self.buf.get(self.pos + 6) {
                Some(b'I') => Some((&LIT_QUEUE_ID, ResponseKey::QueueId)),
                _ => Some((&LIT_QUEUE_OFFSET, ResponseKey::QueueOffset)),
            },
            Some(b't') => Some((&LIT_TRANSACTION_ID, ResponseKey::TransactionId)),
            Some(b'b') => Some((&LIT_BATCH_UNIQ_ID, ResponseKey::BatchUniqId)),
            _ => None,
        };
        if let Some((lit, response_key)) = predicted {
            if self.literal_key(lit) {
                return Some(Some(response_key));
            }
        }
        Some(ResponseKey::of(self.key()?))
    }

    /// A string value without escapes at the cursor, checked as [`Flat::string`] does: its
    /// range, and whether it is all ASCII (the quotes consumed).
    #[inline(always)]
    pub(super) fn value(&mut self) -> Option<(usize, usize, bool)> {
        self.expect(b'"')?;
        self.value_rest()
    }

    /// [`Flat::value`] with its opening quote already read (the cursor just after it).
    #[inline(always)]
    pub(super) fn value_rest(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.pos;
        let mut end = string_end(self.buf, start);
        let ascii = *self.buf.get(end)? < 0x80;
        if !ascii {
            // Not ASCII: found the end without stopping at such bytes, then checked (only
            // this string).
            end = string_end_utf8(self.buf, end);
            std::str::from_utf8(self.buf.get(start..end)?).ok()?;
        }
        // A backslash, a control character or the end of the input: not flat.
        if *self.buf.get(end)? != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some((start, end, ascii))
    }

    #[inline]
    pub(super) fn int_or_null(&mut self, default: i32) -> Option<i32> {
        if self.buf.get(self.pos) == Some(&b'n') {
            return self.null().then_some(default);
        }
        i32::try_from(self.integer()?).ok()
    }

    /// A JSON integer of at most 18 digits, not `-0`, no leading zero, not followed by a
    /// fraction or an exponent (the same integers [`super::json_fast`] takes).
    #[inline]
    fn integer(&mut self) -> Option<i64> {
        let buf = self.buf;
        let negative = buf.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let mut end = start;
        let mut n: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = buf.get(end) {
            // Wraps only past 18 digits, which are refused below.
            n = n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
            end += 1;
        }
        let digits = end - start;
        if digits == 0
            || digits > 18
            || (digits > 1 && buf.get(start) == Some(&b'0'))
            || (negative && n == 0)
        {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = buf.get(end) {
            return None;
        }
        self.pos = end;
        Some(if negative { -n } else { n })
    }

    /// The value of a key nobody reads: a string, an integer, `true`, `false` or null.
    fn skip_scalar(&mut self) -> Option<()> {
        let literal = |r: &mut Self, lit: &[u8]| {
            (r.buf.get(r.pos..r.pos + lit.len())? == lit).then(|| r.pos += lit.len())
        };
        match *self.buf.get(self.pos)? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.integer().map(drop),
            b't' => literal(self, b"true"),
            b'f' => literal(self, b"false"),
            b'n' => literal(self, b"null"),
            _ => None,
        }
    }

    /// `extFields`: an object of string values, checked in one pass and kept as its raw
    /// text (one copy, into a recycled buffer): no map is built (see [`ExtFields`]); where
    /// the send-response values are is noted on the way.
    /// With `NOTE`, each value is noted in `places` as a [`SlotKind::Value`], and the text.
    fn ext_fields<const NOTE: bool>(&mut self, places: &mut Places) -> Option<ExtFields> {
        self.expect(b'{')?;
        if self.buf.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Some(ExtFields::new());
        }
        let text_start = self.pos;
        let mut raw = RawBuilder::new();
        loop {
            let response_key = self.ext_key()?;
            let quote = self.pos;
            let (start, end, ascii) = self.value()?;
            if NOTE {
                places.slots.push(Slot {
                    start: quote,
                    end: self.pos,
                    kind: SlotKind::Value(response_key),
                });
            }
            if let Some(key) = response_key {
                raw.send_value(key, start - text_start, end - text_start, ascii);
            }
            match self.next_byte()? {
                b',' => continue,
                b'}' => {
                    let text_end = self.pos - 1;
                    if NOTE {
                        places.text = Some((text_start, text_end));
                    }
                    return Some(raw.finish_json(self.buf.get(text_start..text_end)?));
                }
                _ => return None,
            }
        }
    }
}

/// A key as written, `"name":` (at most 32 bytes), for one masked compare.
struct Lit {
    /// The `"name":` bytes, zero-padded to 32.
    text: [u8; 32],
    /// 0xff over the `len` bytes of `text`.
    mask: [u8; 32],
    len: usize,
}

impl Lit {
    const fn new(name: &'static str) -> Lit {
        let b = name.as_bytes();
        let len = b.len() + 3;
        assert!(len <= 32);
        let mut text = [0u8; 32];
        let mut mask = [0u8; 32];
        text[0] = b'"';
        let mut i = 0;
        while i < b.len() {
            text[i + 1] = b[i];
            i += 1;
        }
        text[b.len() + 1] = b'"';
        text[b.len() + 2] = b':';
        let mut i = 0;
        while i < len {
            mask[i] = 0xff;
            i += 1;
        }
        Lit { text, mask, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }

    /// Whether `window` (32 bytes) starts with the literal.
    fn matches(&self, window: &[u8]) -> bool {
        let word = |bytes: &[u8], i: usize| {
            let mut w = [0u8; 16];
            w.copy_from_slice(&bytes[i..i + 16]);
            u128::from_le_bytes(w)
        };
        let first = word(window, 0) & word(&self.mask, 0) == word(&self.text, 0);
        first && (self.len <= 16 || word(window, 16) & word(&self.mask, 16) == word(&self.text, 16))
    }
}

const LIT_CODE: Lit = Lit::new("code");
const LIT_EXT_FIELDS: Lit = Lit::new("extFields");
const LIT_FLAG: Lit = Lit::new("flag");
const LIT_LANGUAGE: Lit = Lit::new("language");
const LIT_OPAQUE: Lit = Lit::new("opaque");
const LIT_REMARK: Lit = Lit::new("remark");
const LIT_VERSION: Lit = Lit::new("version");
const LIT_SERIALIZE_TYPE: Lit = Lit::new("serializeTypeCurrentRPC");
const LIT_MSG_REGION: Lit = Lit::new("MSG_REGION");
const LIT_TRACE_ON: Lit = Lit::new("TRACE_ON");
const LIT_MSG_ID: Lit = Lit::new("msgId");
const LIT_QUEUE_ID: Lit = Lit::new("queueId");
const LIT_QUEUE_OFFSET: Lit = Lit::new("queueOffset");
const LIT_TRANSACTION_ID: Lit = Lit::new("transactionId");
const LIT_BATCH_UNIQ_ID: Lit = Lit::new("batchUniqId");

/// `json_write::next_special` for a string inside a header, stopping at bytes >= 0x80 too:
/// the index of the first quote, backslash, control character or non-ASCII byte at or after
/// `from`, or `bytes.len()`. Eight bytes at a time to the end: the last 1..=7 bytes as a word
/// padded with a plain byte.
#[inline(always)]
fn string_end(bytes: &[u8], from: usize) -> usize {
    scan(bytes, from, true)
}

/// [`string_end`], not stopping at bytes >= 0x80 (`next_special` exactly).
fn string_end_utf8(bytes: &[u8], from: usize) -> usize {
    scan(bytes, from, false)
}

/// The first quote, backslash or control character (and, if `stop_non_ascii`, byte >= 0x80)
/// at or after `from`, or `bytes.len()`.
#[inline(always)]
fn scan(bytes: &[u8], from: usize, stop_non_ascii: bool) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let flagged = |w: u64| {
        let quote = w ^ (LO * u64::from(b'"'));
        let backslash = w ^ (LO * u64::from(b'\\'));
        // The lowest flagged byte is exactly the first special one (borrows run upwards).
        let high = if stop_non_ascii { w } else { 0 };
        ((quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (w.wrapping_sub(LO * 0x20) & !w)
            | high)
            & HI
    };
    let mut i = from;
    loop {
        let w = match bytes.get(i..i + 8) {
            Some(chunk) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                u64::from_le_bytes(word)
            }
            None => {
                let rest = bytes.get(i..).unwrap_or(&[]);
                if rest.is_empty() {
                    return bytes.len();
                }
                let mut word = [b'a'; 8];
                word[..rest.len()].copy_from_slice(rest);
                let special = flagged(u64::from_le_bytes(word));
                return if special != 0 {
                    i + (special.trailing_zeros() / 8) as usize
                } else {
                    bytes.len()
                };
            }
        };
        let special = flagged(w);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
}

/// Whether `bytes[from..from + len]` is plain string content closed right after it: each
/// byte printable ASCII (0x20..0x80) other than a quote or a backslash, and `bytes[from +
/// len]` a quote. Then [`Flat::value_rest`] at `from` answers `(from, from + len, true)` (its
/// first special byte is that quote): the check of a value whose length is predicted, eight
/// bytes at a time with no branch per word (the last word overlapping, or padded).
#[inline(always)]
pub(super) fn plain_string_of_len(bytes: &[u8], from: usize, len: usize) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let Some(end) = from.checked_add(len) else {
        return false;
    };
    if bytes.get(end) != Some(&b'"') {
        return false;
    }
    let Some(content) = bytes.get(from..end) else {
        return false;
    };
    // A word of the content (`chunks_exact` gives eight bytes: never the fallback, which
    // would fail the check).
    let word = |chunk: &[u8]| <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
    // In a word of bytes below 0x80 (no carry crosses a byte): the high bit of `b + 0x60`
    // is set iff `b >= 0x20`, that of `(b ^ c) + 0x7f` iff `b != c`. A byte of 0x80 or more
    // shows in `any`.
    let good = |w: u64| {
        w.wrapping_add(LO * 0x60)
            & (w ^ (LO * u64::from(b'"'))).wrapping_add(LO * 0x7f)
            & (w ^ (LO * u64::from(b'\\'))).wrapping_add(LO * 0x7f)
    };
    let (mut all, mut any) = (HI, 0u64);
    let chunks = content.chunks_exact(8);
    let rest = chunks.remainder().len();
    for chunk in chunks {
        let w = word(chunk);
        all &= good(w);
        any |= w;
    }
    if rest != 0 {
        // The last bytes: the eight ending at `end` (overlapping the words read, or the
        // bytes before `from`, then read as a plain byte), or padded near the start.
        let w = match end.checked_sub(8).and_then(|at| bytes.get(at..end)) {
            Some(last) if len >= 8 => word(last),
            Some(last) => {
                let keep = u64::MAX << (8 * (8 - len));
                (word(last) & keep) | ((LO * u64::from(b'a')) & !keep)
            }
            None => {
                // Shorter than eight bytes here (an end of eight or more has a word before it).
                let mut w = [0u8; 8];
                if let Some(head) = w.get_mut(..len) {
                    head.copy_from_slice(content);
                    w[len..].fill(b'a');
                }
                u64::from_le_bytes(w)
            }
        };
        all &= good(w);
        any |= w;
    }
    all & HI == HI && any & HI == 0
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use byteorder::{BigEndian, ByteOrder};
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// The flat reader's answer, when it gives one, is the general reader's; returns whether
    /// it answered.
    fn agree(header: &[u8]) -> bool {
        agree_counting(header, &mut [0; 2])
    }

    /// [`agree`], and the raw fields the flat reader kept against the map the general reader
    /// built eagerly: the send-response values where the decoder noted them (counted in
    /// `send_table[0]`, the headers it could not note them for in `send_table[1]`), lookups
    /// before anything else built the map, length, a clone, a change to the unread map.
    fn agree_counting(header: &[u8], send_table: &mut [usize; 2]) -> bool {
        let text = String::from_utf8_lossy(header);
        let flat = parse_flat(header);
        if let Some(flat) = &flat {
            let Ok(reference) = RemotingCommand::read_json_header_value(header) else {
                panic!("flat answered, the reference failed: {text}");
            };
            let (lazy, eager) = (&flat.ext_fields, &reference.ext_fields);
            // No map built by the decoder: only the raw text (when there are fields).
            assert_eq!(lazy.is_raw(), !eager.is_empty(), "{text}");
            match lazy.response_values() {
                Some(values) => {
                    send_table[0] += 1;
                    for key in ResponseKey::ALL {
                        assert_eq!(
                            values[key as usize],
                            eager.get(key.name()).map(str::as_bytes),
                            "{key:?} in {text}"
                        );
                    }
                }
                None => send_table[1] += usize::from(lazy.is_raw()),
            }
            let unread = lazy.clone();
            for (key, value) in eager.iter() {
                assert_eq!(unread.get(key), Some(value), "{key} in {text}");
            }
            assert_eq!(unread.get("no such key"), None);
            assert_eq!(lazy.clone().len(), eager.len(), "{text}");
            let (mut changed, mut expected) = (lazy.clone(), eager.clone());
            changed.insert("msgId", "changed");
            expected.insert("msgId", "changed");
            assert_eq!(changed, expected, "{text}");
            assert!(changed.response_values().is_none(), "{text}");
            let (mut changed, mut expected) = (lazy.clone(), eager.clone());
            assert_eq!(changed.remove("queueId"), expected.remove("queueId"));
            assert_eq!(changed, expected, "{text}");
            assert_eq!(&reference, flat, "{text}");
        }
        flat.is_some()
    }

    /// The bulk check of a value of predicted length answers what the scan answers (the
    /// first special byte is a quote right after the value): every length up to 40, one byte
    /// of every value at every place of it, special bytes before the value, predicted lengths
    /// one off too.
    #[test]
    fn plain_string_of_len_agrees_with_the_scan() {
        let before: &[u8] = b"\"\\\x01\xc3\x80\x1f\"\x7f\xff";
        let mut checked = 0;
        for len in 0..40 {
            for prefix in [0, 1, 3, 9] {
                for at in 0..len.max(1) {
                    for b in 0..=255u8 {
                        let mut buf: Vec<u8> =
                            before.iter().cycle().take(prefix).copied().collect();
                        buf.extend(std::iter::repeat(b'A').take(len));
                        if len > 0 {
                            buf[prefix + at] = b;
                        }
                        buf.extend_from_slice(b"\",\"x\":\"y\"");
                        let end = string_end(&buf, prefix);
                        for predicted in [len, len + 1, len.saturating_sub(1)] {
                            let expect = end == prefix + predicted && buf[end] == b'"';
                            assert_eq!(
                                plain_string_of_len(&buf, prefix, predicted),
                                expect,
                                "{buf:?} from {prefix} len {predicted}"
                            );
                            checked += usize::from(expect);
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    /// `string_end_utf8` finds what `next_special` finds, and `string_end` that or the first
    /// byte >= 0x80 if earlier, from every start, with every byte value at every position
    /// near the end.
    #[test]
    fn string_end_is_next_special() {
        use super::super::json_write::next_special;
        let ascii_end = |bytes: &[u8], from: usize| {
            let special = next_special(bytes, from).min(bytes.len());
            (from..special)
                .find(|&i| bytes[i] >= 0x80)
                .unwrap_or(special)
        };
        let cases: &[&[u8]] = &[
            b"",
            b"a",
            b"abcdefg\"",
            b"abcdefgh",
            b"abcdefghijklmnop\"",
            b"\\",
            b"\x7f\x80\xff\x1f",
            "grün ✓ 𝄞\u{1}".as_bytes(),
            b"aaaaaaa\"aaaaaaa\\",
            b"\"#\"\x01",
        ];
        for bytes in cases {
            for from in 0..=bytes.len() + 1 {
                assert_eq!(
                    string_end_utf8(bytes, from),
                    next_special(bytes, from).min(bytes.len())
                );
                assert_eq!(string_end(bytes, from), ascii_end(bytes, from));
            }
        }
        for b in 0..=255u8 {
            for len in 1..=17 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    for from in 0..=len {
                        assert_eq!(
                            string_end_utf8(&bytes, from),
                            next_special(&bytes, from),
                            "{b} at {at} of {len} from {from}"
                        );
                        assert_eq!(
                            string_end(&bytes, from),
                            ascii_end(&bytes, from),
                            "{b} at {at} of {len} from {from}"
                        );
                    }
                }
            }
        }
    }

    /// The header of a whole frame (length prefix included).
    pub(in crate::protocol::frame) fn header_of(frame: &[u8]) -> Vec<u8> {
        let header_len = BigEndian::read_u32(&frame[4..8]) as usize;
        frame[8..8 + header_len].to_vec()
    }

    /// The headers of every frame the real broker sent (tests/data).
    pub(in crate::protocol::frame) fn real_responses() -> Vec<Vec<u8>> {
        [
            &include_bytes!("../../../tests/data/send_v2_response.bin")[..],
            include_bytes!("../../../tests/data/send_batch_response.bin"),
            include_bytes!("../../../tests/data/send_error_response.bin"),
            include_bytes!("../../../tests/data/send_half_response.bin"),
            include_bytes!("../../../tests/data/heartbeat_response.bin"),
            include_bytes!("../../../tests/data/route_response_tbw102.bin"),
            include_bytes!("../../../tests/data/route_response_missing_topic.bin"),
            include_bytes!("../../../tests/data/view_message_response.bin"),
            // A broker's request (transaction check-back): the same reader.
            include_bytes!("../../../tests/data/check_transaction_request.bin"),
        ]
        .iter()
        .map(|f| header_of(f))
        .collect()
    }

    /// Every response a real broker sent (RocketMQ-Rust, tests/data) and the send responses
    /// MockBroker writes (Java's layout) are flat, and read as the general reader reads them.
    #[test]
    fn takes_every_real_broker_response() {
        for h in real_responses() {
            assert!(agree(&h), "{}", String::from_utf8_lossy(&h));
        }
        // MockBroker's send response (testing/reply.rs), in Java's layout: keys sorted.
        for tx in ["", r#","transactionId":"7F0000010001FIXTURE0000000001""#] {
            let h = format!(
                r#"{{"code":0,"extFields":{{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"7F000001000051E10000000000000000","queueId":"3","queueOffset":"9223372036854775807"{tx}}},"flag":1,"language":"RUST","opaque":-7,"serializeTypeCurrentRPC":"JSON","version":401}}"#
            );
            assert!(agree(h.as_bytes()), "{h}");
        }
    }

    /// One generated header: its text, and whether it is flat (the reader must answer).
    struct Generated {
        text: String,
        flat: bool,
    }

    /// A random header from the pieces brokers write and many they do not: keys in any order,
    /// repeated or missing; integers at and past the i32 bounds, with signs, leading zeros,
    /// fractions, exponents; strings with unicode, escapes and control characters; null,
    /// nested and non-string values; unknown keys; blanks.
    fn generate(rng: &mut StdRng) -> Generated {
        let mut flat = true;
        let mut members: Vec<String> = Vec::new();
        // Half the headers take odd pieces only rarely: most of those stay flat.
        let odd = if rng.gen_bool(0.5) { 1.0 } else { 0.02 };
        let int = |rng: &mut StdRng, flat: &mut bool, fits_i32: bool| -> String {
            if !rng.gen_bool(odd) {
                return rng.gen_range(-5000..5000).to_string();
            }
            match rng.gen_range(0..14) {
                0 => "null".into(),
                1 => "2147483647".into(),
                2 => "-2147483648".into(),
                3 => {
                    *flat &= !fits_i32;
                    "2147483648".into()
                }
                4 => {
                    *flat = false;
                    "01".into()
                }
                5 => {
                    *flat = false;
                    "-0".into()
                }
                6 => {
                    *flat = false;
                    "1.5".into()
                }
                7 => {
                    *flat = false;
                    "2e3".into()
                }
                8 => {
                    // A string: for a key nobody reads, skipped like any string.
                    *flat &= !fits_i32;
                    "\"12\"".into()
                }
                9 => {
                    *flat = false;
                    "1234567890123456789".into()
                }
                _ => rng.gen_range(-5000..5000).to_string(),
            }
        };
        let string = |rng: &mut StdRng, flat: &mut bool| -> String {
            const PLAIN: &[&str] = &[
                "",
                "DefaultRegion",
                "true",
                "7F000001000051E10000000000000000",
                "grün ✓ 𝄞",
                "a,b",
                "^[%|a-zA-Z0-9_-]+$",
                "JAVA",
                "RUST",
                "x y",
            ];
            const ESCAPED: &[&str] = &[
                "a\\\"b",
                "\\u00e9",
                "\\n",
                "\\ud834\\udd1e",
                "back\\\\slash",
                "\\/",
            ];
            if !rng.gen_bool(odd) {
                return format!("\"{}\"", PLAIN[rng.gen_range(0..PLAIN.len())]);
            }
            match rng.gen_range(0..12) {
                0 => {
                    *flat = false;
                    format!("\"{}\"", ESCAPED[rng.gen_range(0..ESCAPED.len())])
                }
                1 => {
                    *flat = false;
                    "\"ctl\u{1}\"".into()
                }
                _ => format!("\"{}\"", PLAIN[rng.gen_range(0..PLAIN.len())]),
            }
        };
        // `code`: usually there; missing is an error for the general reader.
        if rng.gen_bool(odd / 20.0) {
            flat = false;
        } else {
            let v = int(rng, &mut flat, true);
            members.push(format!("\"code\":{v}"));
        }
        for key in ["flag", "opaque", "version"] {
            if rng.gen_bool(0.8) {
                let v = int(rng, &mut flat, true);
                members.push(format!("\"{key}\":{v}"));
            }
        }
        for key in ["language", "remark", "serializeTypeCurrentRPC"] {
            if rng.gen_bool(0.8) {
                let v = match rng.gen_range(0..8) {
                    0 => "null".into(),
                    1 if key != "serializeTypeCurrentRPC" && !rng.gen_bool(odd) => "null".into(),
                    1 if key != "serializeTypeCurrentRPC" => {
                        flat = false;
                        "5".into()
                    }
                    _ => string(rng, &mut flat),
                };
                members.push(format!("\"{key}\":{v}"));
            }
        }
        // Unknown keys with any value.
        for _ in 0..rng.gen_range(0..3) {
            let key = ["unknown", "x", "ü", "codeX", "extField", "e"][rng.gen_range(0..6)];
            let from = if rng.gen_bool(odd) { 0 } else { 5 };
            let v = match rng.gen_range(from..9) {
                0 => "true".into(),
                1 => "false".into(),
                2 => "null".into(),
                3 => {
                    flat = false;
                    "[1,2]".into()
                }
                4 => {
                    flat = false;
                    "{\"a\":\"b\"}".into()
                }
                5 => int(rng, &mut flat, false),
                _ => string(rng, &mut flat),
            };
            members.push(format!("\"{key}\":{v}"));
        }
        let ext_times = match rng.gen_range(0..20) {
            1 if !rng.gen_bool(odd) => 1,
            0 => 0,
            1 => {
                flat = false;
                2
            }
            _ => 1,
        };
        for _ in 0..ext_times {
            if rng.gen_range(0..10) == 0 {
                members.push("\"extFields\":null".into());
                continue;
            }
            const KEYS: &[&str] = &[
                "MSG_REGION",
                "TRACE_ON",
                "msgId",
                "queueId",
                "queueOffset",
                "transactionId",
                "batchUniqId",
                "offsetMsgId",
                "IS_SUB_CHANGE",
                "unknownKey",
                "ключ",
                "a",
                "queueIdX",
                "msgid",
            ];
            let mut fields = Vec::new();
            for _ in 0..rng.gen_range(0..8) {
                let key = KEYS[rng.gen_range(0..KEYS.len())];
                let from = if rng.gen_bool(odd) { 0 } else { 2 };
                let v = match rng.gen_range(from..14) {
                    0 => {
                        flat = false;
                        "null".into()
                    }
                    1 => {
                        flat = false;
                        "7".into()
                    }
                    2 => format!("\"{}\"", rng.gen_range(-10i64..i64::MAX)),
                    _ => string(rng, &mut flat),
                };
                fields.push(format!("\"{key}\":{v}"));
            }
            if rng.gen_bool(0.5) {
                fields.sort();
            }
            members.push(format!("\"extFields\":{{{}}}", fields.join(",")));
        }
        members.shuffle(rng);
        let mut text = format!("{{{}}}", members.join(","));
        if rng.gen_bool(odd / 10.0) {
            // A blank before a value, or after the opening brace: still JSON, never flat.
            let colons: Vec<usize> = text.match_indices("\":").map(|(i, _)| i + 2).collect();
            let at = colons.choose(rng).copied().unwrap_or(1);
            text.insert(at, [' ', '\n', '\t'][rng.gen_range(0..3)]);
            flat = false;
        }
        Generated { text, flat }
    }

    /// Thousands of generated headers: the flat reader answers exactly the flat ones, and
    /// each answer is the general reader's, field by field.
    #[test]
    fn generated_headers_agree() {
        let mut rng = StdRng::seed_from_u64(0xF1A7);
        let (mut flat, mut other) = (0, 0);
        let mut send_table = [0; 2];
        for _ in 0..20_000 {
            let g = generate(&mut rng);
            let answered = agree_counting(g.text.as_bytes(), &mut send_table);
            assert_eq!(answered, g.flat, "{}", g.text);
            if g.flat {
                flat += 1;
            } else {
                other += 1;
            }
        }
        assert!(flat > 2_000 && other > 2_000, "flat {flat}, other {other}");
        // Both ways of reading the send values ran: where the decoder noted them, and the
        // map (a repeated send key, a non-ASCII value).
        assert!(
            send_table[0] > 2_000 && send_table[1] > 500,
            "send table {send_table:?}"
        );
    }

    /// Random byte-level mutations of the real responses (JSON punctuation, escapes, digits,
    /// invalid UTF-8, blanks, deleted and moved pieces): whatever the flat reader answers, the
    /// general reader answers the same; what it refuses, the full decode still reads as the
    /// general reader does (or fails with the same error).
    #[test]
    fn mutated_real_responses_agree() {
        let headers = real_responses();
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let rounds = if cfg!(debug_assertions) {
            5_000
        } else {
            50_000
        };
        let mut answered = 0;
        for round in 0..rounds {
            let mut h = headers[round % headers.len()].clone();
            super::super::mutate_header(&mut h, &mut rng);
            answered += usize::from(agree(&h));
            assert_eq!(
                RemotingCommand::read_json_header(&h),
                RemotingCommand::read_json_header_value(&h),
                "{}",
                String::from_utf8_lossy(&h)
            );
        }
        assert!(
            answered * 10 > rounds,
            "flat reader answered {answered} of {rounds}"
        );
    }

    #[test]
    fn gives_up_on_what_is_not_flat() {
        for h in [
            "",
            "{",
            "{}",
            "[]",
            r#"{"code":0,}"#,
            r#"{"code":0} "#,
            r#" {"code":0}"#,
            r#"{"code" :0}"#,
            r#"{"code":0,"extFields":{"a":"1"},"extFields":{"b":"2"}}"#,
            r#"{"code":0,"extFields":{"a":null}}"#,
            r#"{"code":0,"extFields":{"a":1}}"#,
            r#"{"code":0,"extFields":[]}"#,
            r#"{"code":0,"extFields":{"a":"1",}}"#,
            r#"{"code":0,"extFields":{"a":"\u0041"}}"#,
            r#"{"code":0,"remark":"a\"b"}"#,
            r#"{"code":0,"remark":5}"#,
            r#"{"code":0,"language":7}"#,
            r#"{"c\u006fde":0}"#,
            r#"{"code":0,"x":[1]}"#,
            r#"{"code":0,"x":{}}"#,
            r#"{"code":0,"x":1.5}"#,
            r#"{"code":0,"x":tru}"#,
            r#"{"code":2147483648}"#,
            r#"{"code":"0"}"#,
            r#"{"flag":1}"#,
        ] {
            assert!(!agree(h.as_bytes()), "{h}");
        }
        // Invalid UTF-8 inside a string.
        let mut b = br#"{"code":1,"remark":"xx"}"#.to_vec();
        b[21] = 0xFF;
        assert!(parse_flat(&b).is_none());
    }
}
