//! The fast path of the common request, a plain `SEND_MESSAGE` / `SEND_MESSAGE_V2`, answered
//! straight from the frame's bytes: a scanner specialised for the send header finds the fields
//! the broker uses (borrowed from the frame, unescaped into a reused buffer only when they
//! hold escapes), the shared send path stores the message, and the response is written into
//! the connection's output without building a command. The header as clients write it (keys
//! sorted, one-letter ext field keys in order, no whitespace) is read literal by literal
//! first; any other layout goes through the general scanner, which takes keys in any order.
//! The send fields are kept by slot as they are scanned. No `RemotingCommand`, no `ExtFields`,
//! no copy of the body unless the message is kept.
//!
//! Each connection keeps ([`FrameScratch`]) the parts of its last client-layout header that a
//! producer repeats from send to send (start, tail, end: [`HeaderPrefix`]) with what was read
//! in them, and the next header's read steps over the same bytes at the same point. A
//! client's properties value is scanned in its escaped form ([`EscapedProps`]) and unescaped
//! only if the message is kept.
//!
//! A binary (ROCKETMQ) header is read field by field the same way (lengths, no scan), the
//! response written in the same layout.
//!
//! It takes only what it is sure the general path would answer the same way, and says no
//! (`None`, having changed nothing) to anything else, which then goes through
//! [`crate::protocol::FrameDecoder`]-style decoding and `Dispatch::dispatch` as before:
//! a binary header with a remark or with invalid UTF-8 anywhere, a response, a batch, a
//! transactional or non-canonical properties string, a header key it does not know, a repeated key
//! or field, a null, a number that is not a plain i32, a string with a raw control character or an
//! escaped surrogate, invalid UTF-8, trailing bytes; and every node with ACL on or a fault
//! scripted. `tests` below compares both paths on the same frames.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::send::{
    note_pair, offset_id_into, scan_properties, send_field_slot, PropScan, SendFields, Sent,
    MAX_OFFSET_ID_LEN, SEND_FIELDS,
};
use super::{in_format, response, BrokerCore, Node};
use crate::message::property;
use crate::protocol::message_codec;
use crate::protocol::{RequestCode, ResponseCode, SerializeType};
use crate::testing::reply::{encode_send_ok_binary, encode_send_ok_with};
use crate::testing::server::Conn;

/// Where a scanned string is: in the header as it came, or unescaped in the scratch buffer.
#[derive(Clone, Copy)]
enum Span {
    Header(u32, u32),
    Scratch(u32, u32),
}

/// The index of the first byte at or after `i` that ends a plain run of a JSON string: a quote,
/// a backslash or a control character. Eight bytes at a time: a byte's high bit in
/// `(w - 0x01..) & !w` is set for a zero byte (and possibly for bytes above it, through the
/// borrow, never below), so the lowest flag of each test is exact and so is the lowest of
/// their union.
fn find_special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let q = w ^ (ONES * u64::from(b'"'));
        let s = w ^ (ONES * u64::from(b'\\'));
        let m = ((q.wrapping_sub(ONES) & !q)
            | (s.wrapping_sub(ONES) & !s)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// What a connection keeps for the fast path from frame to frame: the buffer for unescaped
/// values, and the start of the last send header read in the client layout.
#[derive(Default)]
pub(crate) struct FrameScratch {
    text: String,
    prefix: HeaderPrefix,
}

/// The parts of a send header in the client layout that a producer repeats from send to send,
/// with what [`Scanner::client_layout`] found in them, from the last header read:
///
/// - the start, through the `d` ext field's value and the comma after it (code, group,
///   topic, default topic, queue count);
/// - the tail, from the end of the properties value through `,"opaque":` (the fields the
///   broker does not read, the reconsume count, flag, language);
/// - the end, after the opaque (serialize type, version).
///
/// The read is a function of the bytes (and, for the tail, of having just read the `i`
/// field): where a header holds the same bytes at the same point, the read steps over them
/// with what was found in them. Empty parts: nothing known.
#[derive(Default)]
struct HeaderPrefix {
    bytes: Vec<u8>,
    code: i32,
    /// Slots `a` to `d` (all header spans: a prefix with an escaped value is not kept).
    fields: [Option<((u32, u32), Span)>; 4],
    /// The `d` number.
    num: Option<i64>,
    tail: Vec<u8>,
    /// Slot `j`, its spans relative to the tail's start (a header span: one with an escaped
    /// value is not kept).
    tail_j: Option<((u32, u32), Span)>,
    tail_j_num: Option<i64>,
    tail_flag: i32,
    end: Vec<u8>,
}

impl HeaderPrefix {
    /// Keeps the parts of `header` (read as `h`) that the read went through.
    fn keep(&mut self, header: &[u8], h: &SendHeader, cuts: &Cuts) {
        if let Some(cut) = cuts.prefix {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(header.get(..cut).unwrap_or_default());
            self.code = h.code;
            self.fields.copy_from_slice(&h.fields[..4]);
            self.num = h.nums[3];
        }
        if let Some((start, end)) = cuts.tail {
            let at = start as u32;
            let j = match h.fields[9] {
                None => Some(None),
                Some(((ks, ke), Span::Header(s, e))) => {
                    Some(Some(((ks - at, ke - at), Span::Header(s - at, e - at))))
                }
                Some((_, Span::Scratch(..))) => None,
            };
            if let Some(j) = j {
                self.tail.clear();
                self.tail
                    .extend_from_slice(header.get(start..end).unwrap_or_default());
                self.tail_j = j;
                self.tail_j_num = h.nums[9];
                self.tail_flag = h.flag;
            }
        }
        if let Some(start) = cuts.end {
            self.end.clear();
            self.end
                .extend_from_slice(header.get(start..).unwrap_or_default());
        }
    }
}

/// Where [`Scanner::client_layout`] passed the ends of the parts [`HeaderPrefix`] keeps,
/// having read them (not stepped over them).
#[derive(Default)]
struct Cuts {
    prefix: Option<usize>,
    tail: Option<(usize, usize)>,
    end: Option<usize>,
}

/// A send request's header, scanned.
struct SendHeader {
    code: i32,
    opaque: i32,
    flag: i32,
    /// The send fields by slot ([`send_field_slot`]): key and value, if present.
    fields: [Option<((u32, u32), Span)>; SEND_FIELDS],
    /// The send fields' numbers read as they were scanned (plain digits), by slot.
    nums: [Option<i64>; SEND_FIELDS],
    /// The properties value read in its escaped form ([`Scanner::escaped_properties`]), if
    /// it was: then its field's span is the escaped text.
    props: Option<EscapedProps>,
}

/// A properties value as clients write it, read without unescaping it: pairs of plain runs
/// (no quote, backslash or control character) joined by the escapes of the separators,
/// `name\u0001value\u0002`, every pair whole, no name repeated or stamped by the broker, not
/// transactional. What [`scan_properties`] finds of the unescaped string.
#[derive(Clone, Copy)]
struct EscapedProps {
    /// The `UNIQ_KEY` value: a plain run of the header, nothing to escape.
    uniq: Option<(u32, u32)>,
    /// The unescaped length.
    len: u32,
}

struct Scanner<'a> {
    /// The header, valid UTF-8 (checked up front).
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    scratch: &'a mut String,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        // Headers as clients write them have no whitespace: one compare.
        while let Some(&c) = self.b.get(self.pos) {
            if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return;
            }
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string with no escapes (keys and the header's own string values), the cursor on its
    /// opening quote.
    fn plain_string(&mut self) -> Option<(usize, usize)> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = find_special(self.b, start)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some((start, end))
    }

    /// A string value, unescaped into the scratch buffer if it has escapes.
    #[inline(always)] // on every value; the escapes are out of line
    fn string(&mut self) -> Option<Span> {
        self.ws();
        self.string_here()
    }

    /// [`Scanner::string`] with the cursor on the opening quote (no whitespace before it).
    #[inline(always)] // on every value of the client layout
    fn string_here(&mut self) -> Option<Span> {
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let at = find_special(self.b, start)?;
        match self.b[at] {
            b'"' => {
                self.pos = at + 1;
                Some(Span::Header(start as u32, at as u32))
            }
            b'\\' => self.escaped(start, at),
            _ => None,
        }
    }

    /// The rest of [`Scanner::string`] for a string with escapes, the first at `at`.
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut at: usize) -> Option<Span> {
        // The plain run so far, then escape by escape. Runs end at ASCII bytes of the (valid
        // UTF-8) header: char boundaries.
        let from = self.scratch.len();
        self.scratch.push_str(self.text.get(start..at)?);
        loop {
            match *self.b.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(Span::Scratch(from as u32, self.scratch.len() as u32));
                }
                b'\\' => {
                    // The escapes of a properties string's separators (`\u0001`, `\u0002`),
                    // and any other `\u00XX` below 0x80, in one step.
                    if let Some(&[b'u', b'0', b'0', hi @ b'0'..=b'7', lo]) =
                        self.b.get(at + 1..at + 6)
                    {
                        let lo = match lo {
                            b'0'..=b'9' => lo - b'0',
                            b'a'..=b'f' => lo - b'a' + 10,
                            b'A'..=b'F' => lo - b'A' + 10,
                            _ => return None,
                        };
                        self.scratch.push(char::from((hi - b'0') << 4 | lo));
                        at += 6;
                        continue;
                    }
                    let c = match *self.b.get(at + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.b.get(at + 2..at + 6)?;
                            let mut v = 0u32;
                            for &d in hex {
                                let digit = match d {
                                    b'0'..=b'9' => d - b'0',
                                    b'a'..=b'f' => d - b'a' + 10,
                                    b'A'..=b'F' => d - b'A' + 10,
                                    _ => return None,
                                };
                                v = v << 4 | u32::from(digit);
                            }
                            at += 4;
                            // A surrogate (half of a pair, or lone): the general path decides.
                            char::from_u32(v)?
                        }
                        _ => return None,
                    };
                    self.scratch.push(c);
                    at += 2;
                }
                c if c < 0x20 => return None,
                _ => {
                    // Up to the next quote, escape or control character, as it is.
                    let end = find_special(self.b, at)?;
                    self.scratch.push_str(self.text.get(at..end)?);
                    at = end;
                }
            }
        }
    }

    /// A string value of 1 to 18 plain digits, the cursor on its opening quote, stepped over,
    /// and its number (what `str::parse::<i64>` gives it); `None` (the cursor left where it
    /// was) for anything else, which [`Scanner::string`] then reads.
    #[inline(always)] // six times per header
    fn digits_value(&mut self) -> Option<(Span, i64)> {
        let start = self.pos + 1;
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let digits = self.b.get(start..).unwrap_or_default();
        let mut v = 0i64;
        let mut n = 0;
        // At most 18 digits: no overflow.
        for &c in digits.iter().take(18) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v * 10 + i64::from(d);
            n += 1;
        }
        if n == 0 || digits.get(n) != Some(&b'"') {
            return None;
        }
        self.pos = start + n + 1;
        Some((Span::Header(start as u32, (start + n) as u32), v))
    }

    /// A properties value in the form of [`EscapedProps`], the cursor on its opening quote,
    /// stepped over; `None` (the cursor left where it was) for anything else, which
    /// [`Scanner::string`] and [`scan_properties`] then read.
    fn escaped_properties(&mut self) -> Option<(Span, EscapedProps)> {
        const PAIR_END: &[u8] = b"u0002";
        const NAME_END: &[u8] = b"u0001";
        let b = self.b;
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut scan = PropScan {
            uniq: None,
            transactional: false,
            canonical: true,
            len: 0,
        };
        let mut uniq = None;
        let mut names: [&[u8]; 16] = [b""; 16];
        let mut n = 0;
        // The current pair's name, once its separator is read; where the current run starts.
        let mut name: Option<(usize, usize)> = None;
        let mut run = start;
        let mut escapes = 0;
        loop {
            let at = find_special(b, run)?;
            match b[at] {
                b'"' if name.is_none() && at == run => break,
                b'\\' => {
                    let escape = b.get(at + 1..at + 6)?;
                    if escape == NAME_END && name.is_none() && at > run {
                        name = Some((run, at));
                    } else if escape == PAIR_END && at > run {
                        let (ns, ne) = name.take()?;
                        let value = self.text.get(run..at)?;
                        let key = &b[ns..ne];
                        if key == property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.as_bytes() {
                            uniq = Some((run as u32, at as u32));
                        }
                        note_pair(&mut scan, &mut names, &mut n, key, value);
                    } else {
                        return None;
                    }
                    escapes += 1;
                    run = at + 6;
                }
                _ => return None,
            }
        }
        if !scan.canonical || scan.transactional {
            return None;
        }
        let end = run;
        self.pos = end + 1;
        let len = (end - start - 5 * escapes) as u32;
        Some((
            Span::Header(start as u32, end as u32),
            EscapedProps { uniq, len },
        ))
    }

    /// A plain i32: `-?(0|[1-9][0-9]*)`, nothing after it but a delimiter.
    fn int(&mut self) -> Option<i32> {
        self.ws();
        let neg = self.b.get(self.pos) == Some(&b'-');
        if neg {
            self.pos += 1;
        }
        let start = self.pos;
        let mut v: i64 = 0;
        // At most 10 digits (more cannot be an i32): no overflow check per digit.
        let digits = self.b.get(start..).unwrap_or_default();
        for &d in digits.iter().take(11) {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v * 10 + i64::from(d);
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits > 10 {
            return None;
        }
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || (neg && v == 0) {
            return None;
        }
        if !matches!(
            self.b.get(self.pos),
            Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
        ) {
            return None;
        }
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// [`Scanner::int`] for what clients write, for less: 1 to 9 digits, no sign, no leading
    /// zero, then `,` or `}`. Anything else is read by [`Scanner::int`].
    #[inline(always)] // three times per header
    fn client_int(&mut self) -> Option<i32> {
        let digits = self.b.get(self.pos..).unwrap_or_default();
        let mut v = 0u32;
        let mut n = 0;
        for &c in digits.iter().take(10) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v.wrapping_mul(10).wrapping_add(u32::from(d));
            n += 1;
        }
        if n == 0 || n > 9 || (n > 1 && digits[0] == b'0') {
            return self.int();
        }
        if !matches!(digits.get(n), Some(b',' | b'}')) {
            return self.int();
        }
        self.pos += n;
        // At most 9 digits: below 2^31.
        Some(v as i32)
    }

    /// The literal `lit` at the cursor, stepped over.
    #[inline(always)] // a compare of a constant length
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.pos + lit.len();
        (self.b.get(self.pos..end)? == lit).then(|| self.pos = end)
    }

    /// The header in the layout clients write (keys sorted, V2 one-letter ext field keys in
    /// order, no whitespace, no remark), read literal by literal: what [`Scanner::header`]
    /// reads from such a header, for less. `None` for any other layout (the caller then
    /// starts again with [`Scanner::header`]).
    ///
    /// A header that starts with `known`'s bytes is read from after them. Also returns where
    /// the read passed the comma after the `d` field with nothing unescaped so far (the end
    /// of a prefix worth keeping), if it did.
    fn client_layout(&mut self, known: &HeaderPrefix) -> Option<(SendHeader, Cuts)> {
        let mut h = SendHeader {
            code: 0,
            opaque: 0,
            flag: 0,
            fields: [None; SEND_FIELDS],
            nums: [None; SEND_FIELDS],
            props: None,
        };
        // One-letter keys, each after the one before it (so none twice); letters past `j`
        // are fields the broker does not read.
        let mut last = 0u8;
        let mut cuts = Cuts::default();
        let mut tail_start = None;
        let mut stepped_tail = false;
        if !known.bytes.is_empty() && self.b.starts_with(&known.bytes) {
            h.code = known.code;
            h.fields[..4].copy_from_slice(&known.fields);
            h.nums[3] = known.num;
            self.pos = known.bytes.len();
            last = b'd';
        } else if self.lit(b"{\"code\":310,\"extFields\":{").is_some() {
            // A V2 send's code in the same compare as what comes before and after it.
            h.code = RequestCode::SEND_MESSAGE_V2;
        } else {
            self.lit(b"{\"code\":")?;
            h.code = self.int()?;
            self.lit(b",\"extFields\":{")?;
        }
        loop {
            let key = match self.b.get(self.pos..self.pos + 4)? {
                &[b'"', c @ b'a'..=b'z', b'"', b':'] if c > last => c,
                _ => return None,
            };
            last = key;
            let ks = self.pos as u32 + 1;
            self.pos += 4;
            let value = match key {
                b'd'..=b'h' | b'j' => match self.digits_value() {
                    Some((span, v)) => {
                        h.nums[usize::from(key - b'a')] = Some(v);
                        span
                    }
                    None => self.string_here()?,
                },
                b'i' => match self.escaped_properties() {
                    Some((span, props)) => {
                        h.props = Some(props);
                        span
                    }
                    None => self.string_here()?,
                },
                _ => self.string_here()?,
            };
            if let Some(slot) = h.fields.get_mut(usize::from(key - b'a')) {
                *slot = Some(((ks, ks + 1), value));
            }
            if key == b'i' {
                let rest = self.b.get(self.pos..).unwrap_or_default();
                if !known.tail.is_empty() && rest.starts_with(&known.tail) {
                    let at = self.pos as u32;
                    h.fields[9] = known.tail_j.map(|((ks, ke), v)| {
                        let v = match v {
                            Span::Header(s, e) => Span::Header(s + at, e + at),
                            scratch => scratch, // not kept
                        };
                        ((ks + at, ke + at), v)
                    });
                    h.nums[9] = known.tail_j_num;
                    h.flag = known.tail_flag;
                    self.pos += known.tail.len();
                    stepped_tail = true;
                    break;
                }
                tail_start = Some(self.pos);
            }
            match self.b.get(self.pos)? {
                b',' => {
                    self.pos += 1;
                    if key == b'd' && self.scratch.is_empty() {
                        cuts.prefix = Some(self.pos);
                    }
                }
                b'}' => {
                    self.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
        if !stepped_tail {
            self.lit(b",\"flag\":")?;
            h.flag = self.client_int()?;
            self.lit(b",\"language\":")?;
            self.plain_string()?;
            self.lit(b",\"opaque\":")?;
            cuts.tail = tail_start.map(|start| (start, self.pos));
        }
        h.opaque = self.client_int()?;
        let rest = self.b.get(self.pos..).unwrap_or_default();
        if !known.end.is_empty() && rest == known.end.as_slice() {
            return Some((h, cuts));
        }
        cuts.end = Some(self.pos);
        self.lit(b",\"serializeTypeCurrentRPC\":")?;
        self.plain_string()?;
        self.lit(b",\"version\":")?;
        self.client_int()?;
        self.lit(b"}")?;
        (self.pos == self.b.len()).then_some((h, cuts))
    }

    /// The header object.
    fn header(&mut self) -> Option<SendHeader> {
        let mut h = SendHeader {
            code: 0,
            opaque: 0,
            flag: 0,
            fields: [None; SEND_FIELDS],
            nums: [None; SEND_FIELDS],
            props: None,
        };
        let mut seen = 0u8;
        let mut once = |bit: u8| {
            let fresh = seen & bit == 0;
            seen |= bit;
            fresh.then_some(())
        };
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return None;
        }
        loop {
            let (ks, ke) = self.plain_string()?;
            if !self.eat(b':') {
                return None;
            }
            match &self.b[ks..ke] {
                b"code" => {
                    once(1)?;
                    h.code = self.int()?;
                }
                b"opaque" => {
                    once(2)?;
                    h.opaque = self.int()?;
                }
                b"flag" => {
                    once(4)?;
                    h.flag = self.int()?;
                }
                b"version" => {
                    once(8)?;
                    self.int()?;
                }
                b"language" => {
                    once(16)?;
                    self.plain_string()?;
                }
                b"serializeTypeCurrentRPC" => {
                    once(32)?;
                    self.plain_string()?;
                }
                b"remark" => {
                    once(64)?;
                    self.plain_string()?;
                }
                b"extFields" => {
                    once(128)?;
                    self.ext_fields(&mut h)?;
                }
                _ => return None,
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                break;
            }
            return None;
        }
        self.ws();
        // `code` is required.
        (self.pos == self.b.len() && seen & 1 != 0).then_some(h)
    }

    fn ext_fields(&mut self, h: &mut SendHeader) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            // A client's keys are one letter: `"a":` read at once.
            let (ks, ke) = match self.b.get(self.pos..self.pos + 4) {
                Some(&[b'"', c, b'"', b':']) if c >= 0x20 && c != b'"' && c != b'\\' => {
                    self.pos += 4;
                    (self.pos - 3, self.pos - 2)
                }
                _ => {
                    let key = self.plain_string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    key
                }
            };
            let value = self.string()?;
            if let Some(slot) = send_field_slot(&self.b[ks..ke]) {
                if h.fields[slot].is_some() {
                    // A field named twice (or in both spellings): which one wins depends on
                    // the decoded map's order; the general path decides.
                    return None;
                }
                h.fields[slot] = Some(((ks as u32, ke as u32), value));
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }
}

/// Appends `escaped`, a properties value in the form of [`EscapedProps`], unescaped: each
/// `\u0001` / `\u0002` as the separator it stands for.
fn unescape_separators(escaped: &str, out: &mut String) {
    let mut parts = escaped.split("\\u000");
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        // Each part starts with the escape's last digit, `1` or `2`.
        match part.as_bytes().first() {
            Some(b'1') => out.push(message_codec::NAME_VALUE_SEPARATOR),
            _ => out.push(message_codec::PROPERTY_SEPARATOR),
        }
        out.push_str(part.get(1..).unwrap_or_default());
    }
}

/// The send fields of a request by slot ([`send_field_slot`]): key as it came, value.
type Slots<'a> = [Option<(&'a [u8], &'a str)>; SEND_FIELDS];

/// A binary (ROCKETMQ) send header read as [`RemotingCommand::decode_unprefixed`] reads it,
/// keeping only what the send path uses: code, opaque, flag and the send fields by slot,
/// borrowed from the header. `None` (the general path decides) for a remark, a field named
/// twice (or in both spellings), a negative length, a short or overlong map, invalid UTF-8 in
/// any key or value, trailing bytes.
///
/// [`RemotingCommand::decode_unprefixed`]: crate::protocol::RemotingCommand::decode_unprefixed
fn binary_header(header: &[u8]) -> Option<(i32, i32, i32, Slots<'_>)> {
    let be32 = |b: &[u8], at: usize| -> Option<i32> {
        let w = b.get(at..at + 4)?;
        Some(i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let fixed = header.get(..21)?;
    let code = i32::from(i16::from_be_bytes([fixed[0], fixed[1]]));
    let opaque = be32(fixed, 5)?;
    let flag = be32(fixed, 9)?;
    // No remark (a client sends none): length 0.
    if be32(fixed, 13)? != 0 {
        return None;
    }
    let map_len = usize::try_from(be32(fixed, 17)?).ok()?;
    let map = &header[21..];
    // The map is the rest of the header: no trailing bytes.
    if map.len() != map_len {
        return None;
    }
    let mut fields: Slots<'_> = [None; SEND_FIELDS];
    let mut pos = 0;
    while pos < map.len() {
        let kl = map.get(pos..pos + 2)?;
        let key_len = usize::try_from(i16::from_be_bytes([kl[0], kl[1]])).ok()?;
        let key = map.get(pos + 2..pos + 2 + key_len)?;
        pos += 2 + key_len;
        let value_len = usize::try_from(be32(map, pos)?).ok()?;
        let value = map.get(pos + 4..pos + 4 + value_len)?;
        pos += 4 + value_len;
        let value = std::str::from_utf8(value).ok()?;
        match send_field_slot(key) {
            Some(slot) => {
                if fields[slot].is_some() {
                    return None;
                }
                fields[slot] = Some((key, value));
            }
            None => {
                if !key.is_ascii() {
                    std::str::from_utf8(key).ok()?;
                }
            }
        }
    }
    Some((code, opaque, flag, fields))
}

impl Node {
    /// Answers a plain send straight from its frame (without the length prefix), appending
    /// the response to `out`; `false` if the frame is not one it takes, and then nothing
    /// happened. `scratch` is what the connection keeps for the fast path.
    pub(super) fn send_fast(
        &self,
        conn: &Arc<Conn>,
        frame: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut FrameScratch,
    ) -> bool {
        let Some(broker) = &self.broker else {
            return false;
        };
        if self.acl.is_some() || self.any_fault.load(Ordering::Acquire) {
            return false;
        }
        let Some(proto) = frame.get(..4) else {
            return false;
        };
        let proto = u32::from_be_bytes([proto[0], proto[1], proto[2], proto[3]]);
        let header_len = (proto & 0x00FF_FFFF) as usize;
        if header_len > frame.len() - 4 {
            return false;
        }
        let (header, body) = frame[4..].split_at(header_len);
        match proto >> 24 {
            0 => self.send_fast_json(broker, conn, header, body, out, scratch),
            1 => {
                let Some((code, opaque, flag, fields)) = binary_header(header) else {
                    return false;
                };
                let h = (code, opaque, flag);
                let st = SerializeType::RocketMq;
                let nums = &[None; SEND_FIELDS];
                self.answer_send(broker, conn, st, h, &fields, nums, None, false, body, out)
            }
            _ => false,
        }
    }

    fn send_fast_json(
        &self,
        broker: &BrokerCore,
        conn: &Arc<Conn>,
        header: &[u8],
        body: &[u8],
        out: &mut Vec<u8>,
        frame_scratch: &mut FrameScratch,
    ) -> bool {
        let Ok(text) = std::str::from_utf8(header) else {
            return false;
        };
        if header.len() > u32::MAX as usize {
            return false;
        }
        let FrameScratch {
            text: scratch,
            prefix,
        } = frame_scratch;
        scratch.clear();
        let mut scanner = Scanner {
            text,
            b: header,
            pos: 0,
            scratch,
        };
        let h = match scanner.client_layout(prefix) {
            Some((h, cuts)) => {
                prefix.keep(header, &h, &cuts);
                h
            }
            None => {
                scanner.pos = 0;
                scanner.scratch.clear();
                match scanner.header() {
                    Some(h) => h,
                    None => return false,
                }
            }
        };
        // A properties value read in its escaped form: its scan is known; the text is needed
        // only if the message is kept, and then unescaped into the scratch buffer.
        let mut h = h;
        let mut scan = None;
        if let Some(p) = h.props {
            if broker.settings.keep_messages {
                if let Some((key, Span::Header(s, e))) = h.fields[8] {
                    let from = scratch.len() as u32;
                    let escaped = text.get(s as usize..e as usize).unwrap_or_default();
                    unescape_separators(escaped, scratch);
                    h.fields[8] = Some((key, Span::Scratch(from, scratch.len() as u32)));
                }
            }
            scan = Some(PropScan {
                uniq: p.uniq.and_then(|(s, e)| text.get(s as usize..e as usize)),
                transactional: false,
                canonical: true,
                len: p.len as usize,
            });
        }
        let uniq_plain = scan.is_some();
        let scratch: &str = scratch;
        // Spans end at ASCII bytes (quotes) or the ends of unescaped values: char boundaries.
        let resolve = |span: Span| match span {
            Span::Header(s, e) => text.get(s as usize..e as usize).unwrap_or_default(),
            Span::Scratch(s, e) => scratch.get(s as usize..e as usize).unwrap_or_default(),
        };
        let mut fields = [None; SEND_FIELDS];
        for (slot, field) in fields.iter_mut().zip(&h.fields) {
            *slot = field.map(|((ks, ke), v)| {
                (
                    header.get(ks as usize..ke as usize).unwrap_or_default(),
                    resolve(v),
                )
            });
        }
        let head = (h.code, h.opaque, h.flag);
        let st = SerializeType::Json;
        let nums = &h.nums;
        self.answer_send(
            broker, conn, st, head, &fields, nums, scan, uniq_plain, body, out,
        )
    }

    /// The send path for a header read by a fast scanner: (code, opaque, flag) and the send
    /// fields by slot (and their numbers where the scanner read them), and the properties'
    /// scan if the scanner found it (`uniq_plain`: its
    /// `UNIQ_KEY` needs no JSON escape). `false` (nothing done) if it is not a plain send.
    #[allow(clippy::too_many_arguments)] // the two fast paths' common end
    #[inline(always)] // one call site per header format
    fn answer_send(
        &self,
        broker: &BrokerCore,
        conn: &Arc<Conn>,
        st: SerializeType,
        (code, opaque, flag): (i32, i32, i32),
        fields: &Slots<'_>,
        nums: &[Option<i64>; SEND_FIELDS],
        scan: Option<PropScan<'_>>,
        uniq_plain: bool,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if !matches!(
            code,
            RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2
        ) || flag & crate::protocol::frame::FLAG_RESPONSE != 0
        {
            return false;
        }
        let group = fields[0].map(|(_, v)| v);
        let f = match SendFields::from_slots(fields, nums) {
            Ok(f) => {
                let scan = scan.unwrap_or_else(|| scan_properties(f.properties));
                if scan.transactional || !scan.canonical {
                    return false;
                }
                Ok((f, scan))
            }
            Err(e) => Err(e),
        };
        // Taken: from here on, what `Dispatch::dispatch` does with this request.
        self.count(code, st);
        let oneway = flag & crate::protocol::frame::FLAG_ONEWAY != 0;
        let reply = match f {
            Err(e) => response(ResponseCode::SYSTEM_ERROR, opaque, &e).into(),
            Ok((f, scan)) => match broker.send(
                conn,
                opaque,
                &f,
                group,
                false,
                Some(scan),
                Cow::Borrowed(body),
            ) {
                Sent::Stored(s) => {
                    if !oneway {
                        let mut id = [0u8; MAX_OFFSET_ID_LEN];
                        let n = offset_id_into(&mut id, s.store_host, s.commit_log_offset);
                        let id = id.get(..n).unwrap_or_default();
                        match st {
                            SerializeType::Json => {
                                // Hex digits: nothing to escape.
                                let write_id = |out: &mut Vec<u8>| {
                                    out.push(b'"');
                                    out.extend_from_slice(id);
                                    out.push(b'"');
                                };
                                encode_send_ok_with(
                                    out,
                                    opaque,
                                    write_id,
                                    s.queue_id,
                                    s.queue_offset,
                                    s.uniq,
                                    uniq_plain,
                                );
                            }
                            SerializeType::RocketMq => encode_send_ok_binary(
                                out,
                                opaque,
                                id,
                                s.queue_id,
                                s.queue_offset,
                                s.uniq,
                            ),
                        }
                    }
                    return true;
                }
                Sent::Reply(r) => r,
            },
        };
        if !oneway && in_format(reply, st).encode(out).is_err() {
            log::error!("mock broker: cannot encode a response");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::header::SendMessageRequestHeader;
    use crate::protocol::message_codec::{self, sys_flag};
    use crate::protocol::route::perm;
    use crate::protocol::RemotingCommand;
    use crate::testing::node::store::TopicConf;
    use crate::testing::node::{BrokerCore, BrokerSettings};
    use crate::testing::server::{Action, Dispatch};

    fn node(keep_messages: bool, auto_create: bool) -> Node {
        let broker = BrokerCore::new(
            "broker-a",
            BrokerSettings {
                auto_create,
                keep_messages,
                slave: false,
                transaction_timeout: Duration::from_secs(6),
                transaction_check_max: 15,
            },
        );
        broker.addr.set("127.0.0.1:10911".parse().unwrap()).unwrap();
        {
            let mut store = broker.store.lock();
            store.topics.insert("Fixed".into(), TopicConf::rw(2));
            store.topics.insert(
                "ReadOnly".into(),
                TopicConf {
                    perm: perm::READ,
                    ..TopicConf::rw(2)
                },
            );
        }
        Node::new(Some(broker), None)
    }

    /// What the server does without the fast path: decode (a frame that does not decode
    /// closes the connection), dispatch, encode.
    fn general(node: &Node, conn: &Arc<Conn>, frame: &[u8], out: &mut Vec<u8>) {
        let Ok(request) = RemotingCommand::decode_unprefixed(frame) else {
            out.extend_from_slice(b"<closed>");
            return;
        };
        match node.dispatch(conn, request) {
            Action::Silent => {}
            Action::Reply(r) => r.encode(out).unwrap(),
            _ => panic!("no fault is scripted"),
        }
    }

    fn props(pairs: &[(&str, &str)]) -> String {
        let mut s = String::new();
        message_codec::encode_properties(pairs.iter().copied(), &mut s);
        s
    }

    fn header(topic: &str, queue: i32, properties: String) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "GID_FAST".into(),
            topic: topic.into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: queue,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_123,
            flag: 0,
            properties,
            reconsume_times: Some(0),
            unit_mode: false,
            batch: false,
            max_reconsume_times: None,
            broker_name: Some("broker-a".into()),
        }
    }

    /// A frame without its length prefix.
    fn unprefixed(cmd: &RemotingCommand) -> Vec<u8> {
        cmd.to_frame().unwrap()[4..].to_vec()
    }

    fn v2(h: &SendMessageRequestHeader, opaque: i32, body: &[u8]) -> Vec<u8> {
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2).with_body(body);
        h.write_v2(&mut cmd.ext_fields);
        cmd.opaque = opaque;
        unprefixed(&cmd)
    }

    fn v1(h: &SendMessageRequestHeader, opaque: i32, body: &[u8]) -> Vec<u8> {
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE).with_body(body);
        h.write_v1(&mut cmd.ext_fields);
        cmd.opaque = opaque;
        unprefixed(&cmd)
    }

    /// A frame with a header written by hand.
    fn raw(json: &str, body: &[u8]) -> Vec<u8> {
        let mut f = (json.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(json.as_bytes());
        f.extend_from_slice(body);
        f
    }

    /// The cases: (frame, whether the fast path takes it).
    fn cases() -> Vec<(&'static str, Vec<u8>, bool)> {
        let mut out = json_cases();
        out.extend(binary_cases());
        out
    }

    /// The cases with a JSON header (and one binary).
    fn json_cases() -> Vec<(&'static str, Vec<u8>, bool)> {
        let body = b"hello fast path".to_vec();
        let plain = props(&[("UNIQ_KEY", "7F0000010001FAST0000000000"), ("WAIT", "true")]);
        let rich = props(&[
            ("KEYS", "k1 k2"),
            ("TAGS", "tag-a"),
            ("UNIQ_KEY", "7F0000010001FAST0000000001"),
            ("WAIT", "false"),
            (
                "user",
                "quote \" backslash \\ slash / tab \t nl \n é ✓ \u{7f}",
            ),
        ]);
        let mut out = vec![];
        let mut add =
            |name: &'static str, frame: Vec<u8>, fast: bool| out.push((name, frame, fast));

        add(
            "v2 plain",
            v2(&header("TopicA", 0, plain.clone()), 1, &body),
            true,
        );
        add(
            "v2 rich properties",
            v2(&header("TopicA", 1, rich.clone()), 2, &body),
            true,
        );
        add("v1 names", v1(&header("TopicA", 2, rich), 3, &body), true);
        add(
            "v2 no properties",
            v2(&header("TopicB", 0, String::new()), 4, &body),
            true,
        );
        let mut h = header("TopicA", 3, plain.clone());
        h.flag = -7;
        h.sys_flag = sys_flag::COMPRESSED;
        h.reconsume_times = Some(3);
        add(
            "flags, compressed, reconsume",
            v2(&h, 5, b"\x78\x9c\x03\0\0\0\0\x01"),
            true,
        );
        add(
            "empty body",
            v2(&header("TopicA", 0, plain.clone()), 6, b""),
            true,
        );
        add(
            "big body",
            v2(&header("TopicA", 1, plain.clone()), 7, &vec![0xAB; 70_000]),
            true,
        );
        add(
            "extreme opaque",
            v2(&header("TopicA", 0, plain.clone()), i32::MIN, &body),
            true,
        );
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2)
            .with_body(body.clone())
            .into_oneway();
        header("TopicA", 1, plain.clone()).write_v2(&mut cmd.ext_fields);
        cmd.opaque = 8;
        add("oneway", unprefixed(&cmd), true);
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2)
            .with_body(body.clone())
            .with_remark("a remark");
        header("Fixed", 1, plain.clone()).write_v2(&mut cmd.ext_fields);
        cmd.ext_fields.insert("AccessKey", "ignored without ACL");
        add(
            "remark, extra field, existing topic",
            unprefixed(&cmd),
            true,
        );

        // Refusals the fast path answers like the general one.
        add(
            "queue out of range",
            v2(&header("Fixed", 5, plain.clone()), 20, &body),
            true,
        );
        add(
            "read-only topic",
            v2(&header("ReadOnly", 0, plain.clone()), 21, &body),
            true,
        );
        add(
            "illegal topic",
            v2(&header("bad topic!", 0, plain.clone()), 22, &body),
            true,
        );
        add(
            "system topic",
            v2(&header("SCHEDULE_TOPIC_XXXX", 0, plain.clone()), 23, &body),
            true,
        );
        add(
            "body too large",
            v2(
                &header("TopicA", 0, plain.clone()),
                24,
                &vec![1; 4 * 1024 * 1024 + 1],
            ),
            true,
        );
        let long = props(&[("big", &"v".repeat(40_000))]);
        add(
            "properties too long",
            v2(&header("TopicA", 0, long), 25, &body),
            true,
        );
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"x","e":"0","f":"0","g":"1","h":"0"},"flag":0,"language":"JAVA","opaque":26,"serializeTypeCurrentRPC":"JSON","version":453}"#;
        add("unparsable field", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","h":"0"},"flag":0,"opaque":27}"#;
        add("missing field", raw(json, &body), true);
        // Two unparsable fields: the general path reads the ext fields sorted by key, so the
        // error names the first in key order, not in the frame's order.
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","e":"x","d":"y","f":"0","g":"1","h":"0"},"flag":0,"opaque":28}"#;
        add("two unparsable fields", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","queueId":"x","d":"y","f":"0","g":"1","h":"0"},"flag":0,"opaque":29}"#;
        add(
            "two unparsable fields, both spellings",
            raw(json, &body),
            true,
        );
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","e":"y","defaultTopicQueueNums":"x","f":"0","g":"1","h":"0"},"flag":0,"opaque":30}"#;
        add(
            "two unparsable fields, long name first",
            raw(json, &body),
            true,
        );
        // Numbers as `str::parse` reads them: a sign, leading zeros, many digits, overflow.
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"+4","e":"-0","f":"00","g":"0000000000000000000000001","h":"-2147483648","j":"+0"},"flag":0,"opaque":31}"#;
        add("signs and zeros", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"2147483648","f":"0","g":"1","h":"0"},"flag":0,"opaque":32}"#;
        add("an i32 overflow", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"99999999999999999999","h":"0"},"flag":0,"opaque":33}"#;
        add("an i64 overflow", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"","h":"0","j":"-"},"flag":0,"opaque":34}"#;
        add("empty and sign-only numbers", raw(json, &body), true);

        // Numbers in the client layout: read as the values are scanned where they are plain
        // digits (up to 18), by `str::parse` otherwise.
        for (name, d, e, g, j) in [
            (
                "client layout numbers: plain",
                "4",
                "3",
                "1700000000123",
                "0",
            ),
            ("client layout numbers: signs", "+4", "-0", "-1", "+0"),
            (
                "client layout numbers: zeros",
                "00",
                "0000000000000000000000001",
                "000",
                "0",
            ),
            (
                "client layout numbers: 18 digits",
                "4",
                "0",
                "999999999999999999",
                "0",
            ),
            (
                "client layout numbers: 19 digits",
                "4",
                "0",
                "1000000000000000000",
                "0",
            ),
            (
                "client layout numbers: i64 overflow",
                "4",
                "0",
                "9999999999999999999",
                "0",
            ),
            (
                "client layout numbers: i32 overflow",
                "4",
                "2147483648",
                "1",
                "2147483648",
            ),
            (
                "client layout numbers: i32 edges",
                "-2147483648",
                "2147483647",
                "1",
                "0",
            ),
            ("client layout numbers: empty", "", "0", "1", ""),
            ("client layout numbers: junk", "4x", "0 ", "1e3", "0"),
            ("client layout numbers: escaped", "\\u0034", "0", "1", "0"),
        ] {
            let json = format!(
                r#"{{"code":310,"extFields":{{"a":"G","b":"TopicA","c":"TBW102","d":"{d}","e":"{e}","f":"0","g":"{g}","h":"0","j":"{j}"}},"flag":0,"language":"JAVA","opaque":80,"serializeTypeCurrentRPC":"JSON","version":1}}"#
            );
            add(name, raw(&json, &body), true);
        }

        // Properties strings of every shape, as a client would escape them.
        let seventeen: String = (0..17).map(|i| format!("k{i}\u{1}v\u{2}")).collect();
        for (name, p) in [
            (
                "props: TRAN_MSG false",
                "TRAN_MSG\u{1}false\u{2}UNIQ_KEY\u{1}U1\u{2}",
            ),
            ("props: unicode", "clé\u{1}✓ é\u{2}UNIQ_KEY\u{1}Ü\u{2}"),
            ("props: a separator in a value", "A\u{1}1\u{1}2\u{2}"),
            ("props: no final separator", "A\u{1}1\u{2}B\u{1}2"),
            ("props: an empty name", "\u{1}1\u{2}"),
            ("props: an empty value", "A\u{1}\u{2}"),
            ("props: an empty pair", "A\u{1}1\u{2}\u{2}"),
            ("props: a name alone", "A\u{2}"),
            ("props: a repeated name", "A\u{1}1\u{2}A\u{1}2\u{2}"),
            (
                "props: UNIQ_KEY twice",
                "UNIQ_KEY\u{1}1\u{2}UNIQ_KEY\u{1}2\u{2}",
            ),
            ("props: a stamped name", "TRACE_ON\u{1}false\u{2}"),
            ("props: CLUSTER", "CLUSTER\u{1}c\u{2}"),
            (
                "props: TRAN_MSG TRUE",
                "TRAN_MSG\u{1}TRUE\u{2}PGROUP\u{1}G\u{2}",
            ),
            ("props: 17 names", seventeen.as_str()),
            ("props: other controls", "A\u{1}\u{3}\u{2}B\u{1}\t\u{2}"),
            ("props: a quote and a backslash", "A\u{1}\"\\\u{2}"),
        ] {
            let fast = !name.contains("TRUE")
                && !matches!(name, "props: no final separator")
                && !name.contains("empty")
                && !name.contains("alone")
                && !name.contains("repeated")
                && !name.contains("twice")
                && !name.contains("stamped")
                && !name.contains("CLUSTER")
                && !name.contains("17");
            add(
                name,
                v2(&header("TopicA", 0, p.to_string()), 70, &body),
                fast,
            );
        }

        // Hand-written layouts: key order, whitespace, escapes.
        let json = "{ \"opaque\" : 30 ,\n \"version\":1, \"extFields\" : {\"h\":\"2\",\"g\":\"5\",\"f\":\"0\",\"e\":\"1\",\"d\":\"4\",\"c\":\"TBW102\",\"b\":\"Topic\\u0041\",\"a\":\"G\\/1\",\"i\":\"UNIQ_KEY\\u0001U\\u00e9\\u0002WAIT\\u0001true\\u0002\"}, \"language\":\"JAVA\", \"code\" : 310, \"flag\":0 }\r\n";
        add("any order, whitespace, escapes", raw(json, &body), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"A\u0001\u0041\u007f\u001F\u001fz\u0000\u0002B\u00011\u0002UNIQ_KEY\u0001\u0055\u0002"},"flag":0,"language":"JAVA","opaque":35,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add("\\u00XX escapes of either case", raw(json, &body), true);
        // The client layout's numbers: what the short reading takes and what it leaves to the
        // general one.
        let fields = r#""a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0""#;
        for (name, code, flag, opaque, version, fast) in [
            ("client layout: v1 code", "10", "0", "60", "401", true),
            ("client layout: other code", "3100", "0", "61", "401", false),
            ("client layout: oneway", "310", "2", "62", "401", true),
            (
                "client layout: two-digit flag",
                "310",
                "10",
                "63",
                "401",
                true,
            ),
            (
                "client layout: negative flag",
                "310",
                "-4",
                "64",
                "401",
                true,
            ),
            ("client layout: zero opaque", "310", "0", "0", "401", true),
            (
                "client layout: 9-digit opaque",
                "310",
                "0",
                "999999999",
                "1",
                true,
            ),
            (
                "client layout: 10-digit opaque",
                "310",
                "0",
                "2147483647",
                "1",
                true,
            ),
            (
                "client layout: opaque overflow",
                "310",
                "0",
                "2147483648",
                "1",
                false,
            ),
            (
                "client layout: negative opaque",
                "310",
                "0",
                "-2147483648",
                "0",
                true,
            ),
            ("client layout: leading zero", "310", "0", "065", "1", false),
            (
                "client layout: version overflow",
                "310",
                "0",
                "66",
                "99999999999",
                false,
            ),
            (
                "client layout: negative zero",
                "310",
                "-0",
                "67",
                "1",
                false,
            ),
            ("client layout: a fraction", "310", "0", "68", "1.5", false),
            ("client layout: an exponent", "310", "0", "69e1", "1", false),
        ] {
            let json = format!(
                r#"{{"code":{code},"extFields":{{{fields}}},"flag":{flag},"language":"JAVA","opaque":{opaque},"serializeTypeCurrentRPC":"JSON","version":{version}}}"#
            );
            add(name, raw(&json, &body), fast);
        }
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"A\u0001\u00G1\u0002"},"flag":0,"language":"JAVA","opaque":36,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add("a bad hex digit", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"A\u0001\u008"},"flag":0,"language":"JAVA","opaque":37,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add("a short escape", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"A\u0001\u0080\u00ff\u0100\u0002"},"flag":0,"language":"JAVA","opaque":38,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add("escapes past ASCII", raw(json, &body), true);

        // Not the fast path's: the general path answers.
        let mut h = header("TopicA", 0, props(&[("WAIT", "true")]));
        h.batch = true;
        let msgs = [
            crate::Message::new("TopicA", "m1"),
            crate::Message::new("TopicA", "m2"),
        ];
        let mut batch_body = vec![];
        message_codec::encode_batch(msgs.iter(), &mut batch_body).unwrap();
        let mut cmd =
            RemotingCommand::request(RequestCode::SEND_BATCH_MESSAGE).with_body(batch_body);
        h.write_v2(&mut cmd.ext_fields);
        cmd.opaque = 40;
        add("batch", unprefixed(&cmd), false);
        let tx = props(&[
            ("TRAN_MSG", "true"),
            ("PGROUP", "GID_FAST"),
            ("UNIQ_KEY", "U-TX"),
        ]);
        add(
            "transactional",
            v2(&header("TopicA", 0, tx), 41, &body),
            false,
        );
        add(
            "non-canonical properties",
            v2(&header("TopicA", 0, "A\u{1}1".into()), 42, &body),
            false,
        );
        let mut cmd =
            RemotingCommand::request(RequestCode::SEND_MESSAGE_V2).with_body(body.clone());
        header("TopicA", 0, plain).write_v2(&mut cmd.ext_fields);
        cmd.opaque = 43;
        cmd.serialize_type = crate::protocol::SerializeType::RocketMq;
        // (A binary header is the fast path's too: `binary_cases` has more.)
        add("binary header", unprefixed(&cmd), true);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","topic":"TopicB","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":0,"opaque":44}"#;
        add("a field in both spellings", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":null},"flag":0,"opaque":45}"#;
        add("a null value", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":0,"opaque":46,"future":[1]}"#;
        add("an unknown header key", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":0,"opaque":47.0}"#;
        add("a fraction", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"\ud83d\ude00\u0001x\u0002"},"flag":0,"opaque":48}"#;
        add("a surrogate pair", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{},"flag":0,"opaque":49,"opaque":50}"#;
        add("a repeated header key", raw(json, &body), false);
        let json = r#"{"code":105,"extFields":{"topic":"TopicA"},"flag":0,"opaque":51}"#;
        add("another request", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":1,"opaque":52}"#;
        add("a response", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"a":"G","a":"H","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":0,"language":"JAVA","opaque":53,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add("a field twice, client layout", raw(json, &body), false);
        let json = r#"{"code":310,"extFields":{"b":"TopicA","a":"G","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0"},"flag":0,"language":"JAVA","opaque":54,"serializeTypeCurrentRPC":"JSON","version":1}"#;
        add(
            "fields out of order, client layout otherwise",
            raw(json, &body),
            true,
        );
        out
    }

    /// A binary (ROCKETMQ) frame written by hand: the fixed fields, a remark, the map entries
    /// as given (keys and values as bytes, any lengths), then `trailing` bytes in the header.
    fn bin(
        code: i16,
        opaque: i32,
        flag: i32,
        remark: &[u8],
        entries: &[(&[u8], &[u8])],
        trailing: &[u8],
        body: &[u8],
    ) -> Vec<u8> {
        let mut h = code.to_be_bytes().to_vec();
        h.push(12);
        h.extend_from_slice(&401i16.to_be_bytes());
        h.extend_from_slice(&opaque.to_be_bytes());
        h.extend_from_slice(&flag.to_be_bytes());
        h.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        h.extend_from_slice(remark);
        let mut map = vec![];
        for (k, v) in entries {
            map.extend_from_slice(&(k.len() as i16).to_be_bytes());
            map.extend_from_slice(k);
            map.extend_from_slice(&(v.len() as i32).to_be_bytes());
            map.extend_from_slice(v);
        }
        h.extend_from_slice(&(map.len() as i32).to_be_bytes());
        h.extend_from_slice(&map);
        h.extend_from_slice(trailing);
        let mut f = (1u32 << 24 | h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&h);
        f.extend_from_slice(body);
        f
    }

    /// Every JSON case again with a binary header (where it decodes), and binary frames the
    /// encoder would not write.
    fn binary_cases() -> Vec<(&'static str, Vec<u8>, bool)> {
        let body = b"hello binary".to_vec();
        let mut out = vec![];
        // The fast path declines these in either layout: a field in both spellings, and
        // (below) properties the send path does not store as they came.
        let declined = ["a field in both spellings"];
        for (name, frame, _) in json_cases() {
            let Ok(mut cmd) = RemotingCommand::decode_unprefixed(&frame) else {
                continue;
            };
            if cmd.serialize_type == SerializeType::RocketMq {
                continue;
            }
            cmd.serialize_type = SerializeType::RocketMq;
            // A plain send request without a remark (the binary reading declines a remark).
            let props = cmd.ext_fields.get("i");
            let props = props.or_else(|| cmd.ext_fields.get("properties"));
            let scan = scan_properties(props.unwrap_or_default());
            let fast = matches!(cmd.code, 10 | 310)
                && !cmd.is_response()
                && cmd.remark.is_none()
                && scan.canonical
                && !scan.transactional
                && !declined.contains(&name);
            let name: &'static str = Box::leak(format!("{name} (binary)").into_boxed_str());
            out.push((name, unprefixed(&cmd), fast));
        }
        let plain = props(&[("UNIQ_KEY", "7F0000010001BIN00000000000"), ("WAIT", "true")]);
        let fields = |topic: &'static [u8], props: Vec<u8>| -> Vec<(Vec<u8>, Vec<u8>)> {
            [
                (&b"a"[..], &b"GID_BIN"[..]),
                (b"b", topic),
                (b"c", b"TBW102"),
                (b"d", b"4"),
                (b"e", b"1"),
                (b"f", b"0"),
                (b"g", b"1700000000000"),
                (b"h", b"0"),
                (b"j", b"0"),
                (b"n", b"broker-a"),
            ]
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .chain([(b"i".to_vec(), props)])
            .collect()
        };
        let refs = |v: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> { v.to_vec() };
        let mut add = |name: &'static str, entries: Vec<(Vec<u8>, Vec<u8>)>, opaque, fast| {
            let e: Vec<(&[u8], &[u8])> = entries
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            out.push((name, bin(310, opaque, 0, b"", &e, b"", &body), fast));
        };
        let base = fields(b"TopicA", plain.clone().into_bytes());
        add("binary: fields unsorted", refs(&base), 100, true);
        let mut e = refs(&base);
        e.push((b"zzz unknown".to_vec(), "é value".as_bytes().to_vec()));
        e.push((b"".to_vec(), b"empty key".to_vec()));
        add("binary: unknown keys", e, 101, true);
        let mut e = refs(&base);
        e[3].1 = vec![];
        e[4].1 = b"x".to_vec();
        add("binary: empty and bad numbers", e, 102, true);
        let mut e = refs(&base);
        e.retain(|(k, _)| k != b"f");
        add("binary: missing field", e, 103, true);
        let mut e = refs(&base);
        e[1].1 = "Topé".as_bytes().to_vec();
        add("binary: unicode topic", e, 104, true);
        let rich = props(&[("KEYS", "k é ✓"), ("UNIQ_KEY", "U\"1"), ("WAIT", "false")]);
        add(
            "binary: unicode properties",
            fields(b"TopicA", rich.into_bytes()),
            105,
            true,
        );
        let mut e = refs(&base);
        e.push((b"i".to_vec(), plain.into_bytes()));
        add("binary: a field twice", e, 106, false);
        let mut e = refs(&base);
        e.push((b"properties".to_vec(), b"A\x011\x02".to_vec()));
        add("binary: a field in both spellings", e, 107, false);
        let mut e = refs(&base);
        e.push((b"k".to_vec(), vec![0xC3]));
        add("binary: invalid UTF-8 in another value", e, 108, false);
        let mut e = refs(&base);
        e[1].1 = vec![b'T', 0xFF];
        add("binary: invalid UTF-8 in the topic", e, 109, false);
        let mut e = refs(&base);
        e.push((vec![0xFF, 0xFE], b"v".to_vec()));
        add("binary: invalid UTF-8 in a key", e, 110, false);
        add("binary: no fields", vec![], 111, true);
        let e: Vec<(&[u8], &[u8])> = base
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        out.push((
            "binary: a remark",
            bin(310, 112, 0, b"hi", &e, b"", &body),
            false,
        ));
        out.push((
            "binary: trailing bytes",
            bin(310, 113, 0, b"", &e, b"\0", &body),
            false,
        ));
        out.push((
            "binary: oneway",
            bin(310, 114, 2, b"", &e, b"", &body),
            true,
        ));
        out.push((
            "binary: v1 code",
            bin(10, 115, 0, b"", &e, b"", &body),
            true,
        ));
        out.push((
            "binary: a response",
            bin(310, 116, 1, b"", &e, b"", &body),
            false,
        ));
        out.push((
            "binary: another code",
            bin(11, 117, 0, b"", &e, b"", &body),
            false,
        ));
        // Lengths that do not add up: cut the map short, or a negative length.
        let whole = bin(310, 118, 0, b"", &e, b"", b"");
        let mut cut = whole.clone();
        let header_len = (cut.len() - 4) as u32;
        cut[..4].copy_from_slice(&(1 << 24 | (header_len - 3)).to_be_bytes());
        out.push(("binary: map cut short", cut, false));
        let mut neg = whole.clone();
        neg[4 + 21..4 + 23].copy_from_slice(&(-1i16).to_be_bytes());
        out.push(("binary: negative key length", neg, false));
        let mut neg = whole;
        neg[4 + 17..4 + 21].copy_from_slice(&(-5i32).to_be_bytes());
        out.push(("binary: negative map length", neg, false));
        out.push((
            "binary: header too short",
            vec![1, 0, 0, 3, 1, 54, 12],
            false,
        ));
        out
    }

    /// Everything the store holds, comparable.
    fn state(node: &Node) -> String {
        let broker = node.broker.as_ref().unwrap();
        let store = broker.store.lock();
        let mut topics: Vec<_> = store
            .topics
            .iter()
            .map(|(k, v)| format!("{k}:{}/{}/{}", v.read_queues, v.write_queues, v.perm))
            .collect();
        topics.sort();
        let mut offsets: Vec<_> = store
            .queue_offsets
            .iter()
            .flat_map(|(t, q)| q.iter().map(move |(q, o)| format!("{t}/{q}={o}")))
            .collect();
        offsets.sort();
        let log: Vec<_> = store
            .log
            .iter()
            .map(|r| {
                let mut m = r.to_message(broker.store_addr());
                m.store_timestamp = 0;
                format!("{m:?}")
            })
            .collect();
        let c = &store.counters;
        let mut received: Vec<_> = node.received.snapshot().into_iter().collect();
        received.sort();
        let mut binary: Vec<_> = node.received_binary.snapshot().into_iter().collect();
        binary.sort();
        received.extend(binary.into_iter().map(|(code, n)| (-code, n)));
        format!(
            "topics {topics:?}\noffsets {offsets:?}\ncommit {}\nlog {log:#?}\nstored {} halves {} {}\ngroups {:?}\nreceived {received:?}",
            store.next_commit_offset,
            c.messages_stored,
            c.half_messages,
            store.halves.len(),
            c.send_groups,
        )
    }

    fn fast_path_answers_as_the_general_path(keep_messages: bool, auto_create: bool) {
        let (fast, slow) = (
            node(keep_messages, auto_create),
            node(keep_messages, auto_create),
        );
        let (conn, _client) = Conn::for_tests();
        // One connection for every case: the header start kept from one case is tried on the
        // next (most share it).
        let mut scratch = FrameScratch::default();
        for (name, frame, expect_fast) in cases() {
            let mut out_fast = vec![0xEE];
            let taken = fast.send_fast(&conn, &frame, &mut out_fast, &mut scratch);
            if !taken {
                general(&fast, &conn, &frame, &mut out_fast);
            }
            let mut out_slow = vec![0xEE];
            general(&slow, &conn, &frame, &mut out_slow);
            assert_eq!(
                String::from_utf8_lossy(&out_fast),
                String::from_utf8_lossy(&out_slow),
                "{name}"
            );
            assert_eq!(out_fast, out_slow, "{name}");
            assert_eq!(taken, expect_fast, "{name}: taken by the fast path");
            assert_eq!(state(&fast), state(&slow), "{name}");
        }
        let kept = fast.broker.as_ref().unwrap().message_count("TopicA");
        assert_eq!(kept >= 8, keep_messages && auto_create, "{kept} kept");
    }

    #[test]
    fn fast_path_answers_and_stores_as_the_general_path() {
        fast_path_answers_as_the_general_path(true, true);
    }

    #[test]
    fn fast_path_without_kept_messages() {
        fast_path_answers_as_the_general_path(false, true);
    }

    #[test]
    fn fast_path_without_auto_create() {
        fast_path_answers_as_the_general_path(true, false);
    }

    /// A scanned header, with its spans resolved.
    /// A scanned header, with its spans resolved (a properties value read in its escaped form
    /// unescaped, its scan checked against `scan_properties` of the unescaped text), and
    /// whether its properties were read in their escaped form.
    fn resolved(h: &SendHeader, text: &str, scratch: &str) -> (String, bool) {
        let span = |s: Span| match s {
            Span::Header(s, e) => format!("h:{}", &text[s as usize..e as usize]),
            Span::Scratch(s, e) => format!("s:{}", &scratch[s as usize..e as usize]),
        };
        let mut fields: Vec<_> = h
            .fields
            .iter()
            .map(|f| f.map(|((ks, ke), v)| (span(Span::Header(ks, ke)), span(v))))
            .collect();
        for (field, num) in h.fields.iter().zip(&h.nums) {
            if let (Some((_, Span::Header(s, e))), Some(n)) = (field, num) {
                let v = &text[*s as usize..*e as usize];
                assert_eq!(v.parse::<i64>(), Ok(*n), "{v:?}");
            }
            if let (Some((_, Span::Scratch(..))), Some(_)) = (field, num) {
                panic!("a number read from an escaped value");
            }
        }
        if let (Some(p), Some(((ks, ke), Span::Header(s, e)))) = (h.props, h.fields[8]) {
            let mut unescaped = String::new();
            unescape_separators(&text[s as usize..e as usize], &mut unescaped);
            let scan = scan_properties(&unescaped);
            assert!(scan.canonical && !scan.transactional, "{unescaped:?}");
            assert_eq!(scan.len, p.len as usize, "{unescaped:?}");
            let uniq = p.uniq.map(|(s, e)| &text[s as usize..e as usize]);
            assert_eq!(scan.uniq, uniq, "{unescaped:?}");
            if let Some(u) = uniq {
                let mut json = vec![];
                crate::protocol::frame::write_json_str(&mut json, u);
                assert_eq!(json, format!("\"{u}\"").as_bytes(), "plain");
            }
            // As the general scan unescapes it (into the scratch buffer, escapes being there).
            let tag = if unescaped.len() == (e - s) as usize {
                "h"
            } else {
                "s"
            };
            fields[8] = Some((span(Span::Header(ks, ke)), format!("{tag}:{unescaped}")));
        }
        (
            format!("{} {} {} {fields:?}", h.code, h.opaque, h.flag),
            h.props.is_some(),
        )
    }

    #[test]
    fn client_layout_reads_what_the_general_scan_reads() {
        let mut client_layouts = vec![];
        let mut escaped_form = vec![];
        let mut known = HeaderPrefix::default();
        let mut read_from_kept = 0;
        for (name, frame, _) in cases() {
            let header_len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            let Some(header) = frame.get(4..4 + header_len) else {
                continue; // a binary header
            };
            let Ok(text) = std::str::from_utf8(header) else {
                continue;
            };
            // Read from the start, and from the start kept of the case before (when this
            // header starts with it): the same.
            let mut scratch = String::new();
            let mut s = Scanner {
                text,
                b: header,
                pos: 0,
                scratch: &mut scratch,
            };
            if !known.bytes.is_empty() && header.starts_with(&known.bytes) {
                read_from_kept += 1;
            }
            let from_kept = s
                .client_layout(&known)
                .map(|(h, _)| resolved(&h, text, &s.scratch.clone()));
            let mut scratch = String::new();
            let mut s = Scanner {
                text,
                b: header,
                pos: 0,
                scratch: &mut scratch,
            };
            let Some((fast, cuts)) = s.client_layout(&HeaderPrefix::default()) else {
                assert!(from_kept.is_none(), "{name}");
                continue;
            };
            known.keep(header, &fast, &cuts);
            let (fast, escaped_props) = resolved(&fast, text, &scratch);
            assert_eq!(
                from_kept.as_ref(),
                Some(&(fast.clone(), escaped_props)),
                "{name}"
            );
            if escaped_props {
                escaped_form.push(name);
            }
            let mut scratch = String::new();
            let mut s = Scanner {
                text,
                b: header,
                pos: 0,
                scratch: &mut scratch,
            };
            let general = s.header().map(|h| resolved(&h, text, &scratch).0);
            assert_eq!(Some(fast), general, "{name}");
            client_layouts.push(name);
        }
        assert!(read_from_kept > 20, "{read_from_kept}");
        // What the client writes takes the literal scan; V1 names and a remark do not.
        for name in ["v2 plain", "v2 rich properties", "oneway", "big body"] {
            assert!(client_layouts.contains(&name), "{name}: {client_layouts:?}");
        }
        for name in [
            "v1 names",
            "remark, extra field, existing topic",
            "any order, whitespace, escapes",
        ] {
            assert!(!client_layouts.contains(&name), "{name}");
        }
        // Properties as clients write them are read in their escaped form; the others are
        // unescaped and scanned.
        for name in ["v2 plain", "oneway", "big body", "props: TRAN_MSG false"] {
            assert!(escaped_form.contains(&name), "{name}: {escaped_form:?}");
        }
        for name in [
            "v2 rich properties",
            "transactional",
            "props: a separator in a value",
            "props: no final separator",
            "props: a repeated name",
            "props: a stamped name",
            "props: 17 names",
        ] {
            assert!(client_layouts.contains(&name), "{name}");
            assert!(!escaped_form.contains(&name), "{name}");
        }
    }

    #[test]
    fn find_special_finds_the_first_quote_backslash_or_control() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len()).find(|&j| b[j] == b'"' || b[j] == b'\\' || b[j] < 0x20)
        };
        let alphabet: &[u8] = b"a\"\\\x00\x01\x1f\x20\x21\x7f\x80\xff\x5b\x5d";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..40 {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain bytes, sometimes a special one.
                        if seed % 5 == 0 {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (seed >> 16) as u8 % 26
                        }
                    })
                    .collect();
                for i in 0..=len {
                    assert_eq!(find_special(&b, i), naive(&b, i), "{b:?} from {i}");
                }
            }
        }
    }

    #[test]
    fn no_fast_path_with_acl_or_faults() {
        let n = node(true, true);
        let (conn, _client) = Conn::for_tests();
        let frame = v2(&header("TopicA", 0, props(&[("WAIT", "true")])), 1, b"x");
        let mut out = vec![];
        let mut scratch = FrameScratch::default();
        n.with_faults(|f| f.black_hole = true);
        assert!(!n.send_fast(&conn, &frame, &mut out, &mut scratch));
        n.with_faults(|f| f.black_hole = false);
        assert!(n.send_fast(&conn, &frame, &mut out, &mut scratch));
        let mut n = node(true, true);
        n.acl = Some(crate::testing::acl::MockAcl::new(vec![]));
        assert!(!n.send_fast(&conn, &frame, &mut vec![], &mut scratch));
    }
}
