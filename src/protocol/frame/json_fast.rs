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
        use rand::{Rng, SeedableRng};
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
