//! A fast reader for the JSON header, straight from the bytes into a [`RemotingCommand`].
//!
//! It takes the common case only: an object whose `code`, `version`, `opaque` and `flag` are
//! integers or null, `language` a string or null, `remark` a string or null, `extFields` an
//! object of string (or null) values or null, and any other keys with any valid JSON value
//! (skipped). Keys may come in any order, with escapes, repeated (the last one wins, as in
//! `serde_json`'s map). Whenever anything else turns up (a number where a string belongs, a
//! fraction, a lone surrogate, a syntax error, invalid UTF-8, trailing bytes, nesting over 64
//! levels), it gives up with `None`, and the `serde_json::Value` reader decides: the result
//! or the error is then exactly what that reader says.

use std::borrow::Cow;

use super::ext_fields::intern_key;
use super::json_write::next_special;
use super::{ExtFields, RemotingCommand, SerializeType};
use crate::protocol::codes::LanguageCode;

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

/// An object key: one the caller expects (recognised without the string reader), or any
/// other (unescaped).
enum Key<'a> {
    Known(&'static str),
    Other(Cow<'a, str>),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Known(k) => k,
            Key::Other(k) => k,
        }
    }
}

/// `key` if `rest` starts with it written plainly: `"key":`.
fn plain_key(rest: &[u8], key: &'static str) -> Option<&'static str> {
    let n = key.len();
    (rest.first() == Some(&b'"')
        && same_bytes(rest.get(1..n + 1)?, key.as_bytes())
        && rest.get(n + 1..n + 3)? == b"\":")
        .then_some(key)
}

/// `a == b` for short slices of the same length, eight bytes at a time (no `memcmp` call).
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if <[u8; 8]>::try_from(x).ok() != <[u8; 8]>::try_from(y).ok() {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

/// The header's own keys, written plainly.
fn top_key(rest: &[u8]) -> Option<&'static str> {
    plain_key(rest, top_name(*rest.get(1)?)?)
}

/// The header key that `key` is.
fn top_key_id(key: &str) -> Option<&'static str> {
    top_name(*key.as_bytes().first()?).filter(|name| *name == key)
}

/// The header key that starts with `first` (they all differ in their first byte).
fn top_name(first: u8) -> Option<&'static str> {
    let name = match first {
        b'c' => "code",
        b'e' => "extFields",
        b'f' => "flag",
        b'l' => "language",
        b'o' => "opaque",
        b'r' => "remark",
        b's' => "serializeTypeCurrentRPC",
        b'v' => "version",
        _ => return None,
    };
    Some(name)
}

/// The `extFields` keys of the hot paths (send requests and responses), written plainly.
fn ext_key(rest: &[u8]) -> Option<&'static str> {
    const LETTERS: [&str; 14] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
    ];
    let first = *rest.get(1)?;
    if rest.first() == Some(&b'"') && rest.get(2..4) == Some(b"\":") {
        return LETTERS.get(usize::from(first.wrapping_sub(b'a'))).copied();
    }
    let key = match first {
        b'M' => "MSG_REGION",
        b'T' => "TRACE_ON",
        b'm' => "msgId",
        b'q' => match rest.get(6)? {
            b'I' => "queueId",
            _ => "queueOffset",
        },
        b't' => match rest.get(5)? {
            b's' => "transactionId",
            b'S' => "tranStateTableOffset",
            _ => "topic",
        },
        b'o' => "offsetMsgId",
        b'b' => "batchUniqId",
        _ => return None,
    };
    plain_key(rest, key)
}

/// No expected keys (values skipped over).
fn no_key(_: &[u8]) -> Option<&'static str> {
    None
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
        self.members(top_key, |p, key| {
            // The first byte names a header key (they all differ in it); 0 for other keys.
            let id = match &key {
                Key::Known(k) => k.as_bytes().first().copied().unwrap_or(0),
                Key::Other(k) => match top_key_id(k) {
                    Some(known) => known.as_bytes().first().copied().unwrap_or(0),
                    None => 0,
                },
            };
            match id {
                b'c' => code = Some(p.int_or_null(-1)?),
                b'v' => cmd.version = p.int_or_null(0)?,
                b'o' => cmd.opaque = p.int_or_null(0)?,
                b'f' => cmd.flag = p.int_or_null(0)?,
                b'l' => {
                    cmd.language = if p.null() {
                        LanguageCode::JAVA
                    } else {
                        let name = p.string()?;
                        LanguageCode::from_name(&name).unwrap_or(LanguageCode::OTHER)
                    }
                }
                b'r' => {
                    cmd.remark = if p.null() {
                        None
                    } else {
                        Some(p.string()?.into_owned())
                    }
                }
                b'e' => {
                    if p.null() {
                        cmd.ext_fields.clear();
                    } else {
                        // Unescaping only shrinks: the header length bounds the values. The
                        // buffers are recycled ones when a dropped map left some.
                        cmd.ext_fields = ExtFields::for_decoding(p.buf.len());
                        let fields = &mut cmd.ext_fields;
                        p.members(ext_key, |p, key| {
                            if p.null() {
                                fields.remove_entry(key.as_str());
                                Some(())
                            } else {
                                p.ws();
                                let key = match key {
                                    Key::Known(k) => Cow::Borrowed(k),
                                    Key::Other(k) => intern_key(&k),
                                };
                                fields.push_decoded(key, |buf| p.string_into(buf))
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
    /// `known` recognises the keys the caller expects when they are written plainly (the
    /// common case), which then skip the general string reader.
    fn members(
        &mut self,
        known: fn(&[u8]) -> Option<&'static str>,
        mut member: impl FnMut(&mut Self, Key<'a>) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.ws();
            let rest = self.buf.get(self.pos..)?;
            if let Some(key) = known(rest) {
                // `"key":` exactly: quotes, key and colon.
                self.pos += key.len() + 3;
                member(self, Key::Known(key))?;
            } else {
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                member(self, Key::Other(key))?;
            }
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
            b'{' => self.members(no_key, |p, _| p.skip_value(depth + 1)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use byteorder::{BigEndian, ByteOrder};

    /// The fast JSON reader agrees with the `serde_json::Value` reader whenever it answers.
    fn agree(header: &str) -> bool {
        let fast = parse_header(header.as_bytes());
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

    /// Keys recognised without the string reader (written plainly) and near misses of them
    /// (a different byte, an escape, space before the colon, a key that only starts the same)
    /// all decode as the general reader says; maps made from recycled buffers start empty.
    #[test]
    fn predicted_keys_and_near_misses_agree() {
        for h in [
            r#"{"code":0,"extFields":{"MSG_REGION":"r","TRACE_ON":"true","msgId":"m","queueId":"1","queueOffset":"2","transactionId":"t"},"flag":1}"#,
            r#"{"code":0,"extFields":{"a":"1","b":"2","n":"3","o":"4","z":"5","batchUniqId":"u","offsetMsgId":"o","topic":"t","tranStateTableOffset":"9"}}"#,
            r#"{"codeX":5,"code":1,"c":7,"extFieldsX":{},"e":3,"flag" :2,"opaque":3}"#,
            r#"{"code":1,"extFields":{"queueIdX":"1","queueO":"2","q":"3","t":"4","tr":"5","msgId" :"6","M":"7"}}"#,
            r#"{"code":1,"extFields":{"qu\u0065ueId":"1","queueId":"2"},"v\u0065rsion":7}"#,
            r#"{"code":1,"extFields":{"transactionId":"1","tranStateTableOffset":"2","topic":"3","a":"4"}}"#,
            r#"{"code":1,"extFields":{"z":"1","a":"2","m":"3","a":"4"}}"#,
            r#"{"code":1,"extFields":{"msgId":null,"msgId":"x","queueId":"1","queueId":null}}"#,
            r#"{"code":1,"remark":"r","language":"RUST","serializeTypeCurrentRPC":"JSON","version":1}"#,
        ] {
            assert!(agree(h), "{h}");
        }
        for round in 0..300 {
            let h = if round % 2 == 0 {
                format!(r#"{{"code":0,"extFields":{{"a":"{round}","b":"x"}}}}"#)
            } else {
                r#"{"code":0,"extFields":{"c":"y"}}"#.to_owned()
            };
            let cmd = parse_header(h.as_bytes()).unwrap();
            let expected: Vec<(String, String)> = if round % 2 == 0 {
                vec![("a".into(), round.to_string()), ("b".into(), "x".into())]
            } else {
                vec![("c".into(), "y".into())]
            };
            let got: Vec<(String, String)> = cmd
                .ext_fields
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn fast_json_takes_every_real_broker_header() {
        for frame in [
            &include_bytes!("../../../tests/data/send_v2_request.bin")[..],
            include_bytes!("../../../tests/data/send_v2_response.bin"),
            include_bytes!("../../../tests/data/check_transaction_request.bin"),
            include_bytes!("../../../tests/data/route_response_missing_topic.bin"),
            include_bytes!("../../../tests/data/heartbeat_response.bin"),
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
        use rand::SeedableRng;
        let headers: Vec<Vec<u8>> = [
            &include_bytes!("../../../tests/data/send_v2_request.bin")[..],
            include_bytes!("../../../tests/data/send_v2_response.bin"),
            include_bytes!("../../../tests/data/send_batch_response.bin"),
            include_bytes!("../../../tests/data/send_error_response.bin"),
            include_bytes!("../../../tests/data/route_response_tbw102.bin"),
            include_bytes!("../../../tests/data/heartbeat_request.bin"),
        ]
        .iter()
        .map(|frame| {
            let header_len = BigEndian::read_u32(&frame[4..8]) as usize;
            frame[8..8 + header_len].to_vec()
        })
        .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let rounds = if cfg!(debug_assertions) {
            3_000
        } else {
            30_000
        };
        let mut answered = 0;
        for round in 0..rounds {
            let mut h = headers[round % headers.len()].clone();
            super::super::mutate_header(&mut h, &mut rng);
            if let Some(fast) = parse_header(&h) {
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
        assert!(parse_header(&b).is_none());
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
}
