//! A hand-rolled decoder of the JSON frame header: the fast path of
//! [`RemotingCommand::decode_unprefixed`](super::RemotingCommand::decode_unprefixed).
//!
//! Going through `serde_json::Value` costs a map, a string per key and a string per value of
//! every header on the I/O thread. This scanner reads the header in one pass: any key order,
//! unknown keys (their values are checked and skipped), string escapes including `\uXXXX` and
//! surrogate pairs, integers written as numbers or strings, `null`s. Well-known `extFields`
//! keys are interned (no allocation for the key).
//!
//! It is exact or silent: it returns a command only when it is certain the `serde_json` path
//! gives the same one. Anything unusual (a syntax error, a float, a duplicate key, an integer
//! out of range, a lone surrogate, a non-string `remark`, a `null` inside `extFields`, deep
//! nesting) makes it return `None`, and the caller decodes with `serde_json`, which then
//! produces the value or the error it always did. A differential test holds the two paths
//! together on captured frames and random mutations of them.

use std::borrow::Cow;

use super::codes::LanguageCode;
use super::frame::{ExtFields, RemotingCommand, SerializeType};

/// Nesting beyond this (in skipped values) is left to `serde_json` (its limit is 128).
const MAX_DEPTH: usize = 64;

/// Decodes a JSON header, or `None` when the `serde_json` path must decide.
pub(crate) fn decode(header: &[u8]) -> Option<RemotingCommand> {
    let mut s = Scanner { b: header, i: 0 };
    let cmd = s.header()?;
    s.ws();
    (s.i == s.b.len()).then_some(cmd)
}

/// `extFields` keys that the broker and the client write; kept as `&'static str`.
fn intern(key: &str) -> Option<&'static str> {
    Some(match key {
        "msgId" => "msgId",
        "queueId" => "queueId",
        "queueOffset" => "queueOffset",
        "transactionId" => "transactionId",
        "MSG_REGION" => "MSG_REGION",
        "TRACE_ON" => "TRACE_ON",
        "batchUniqId" => "batchUniqId",
        "recallHandle" => "recallHandle",
        "topic" => "topic",
        "producerGroup" => "producerGroup",
        "acceptStandardJsonOnly" => "acceptStandardJsonOnly",
        "a" => "a",
        "b" => "b",
        "c" => "c",
        "d" => "d",
        "e" => "e",
        "f" => "f",
        "g" => "g",
        "h" => "h",
        "i" => "i",
        "j" => "j",
        "k" => "k",
        "l" => "l",
        "m" => "m",
        "n" => "n",
        "tranStateTableOffset" => "tranStateTableOffset",
        "commitLogOffset" => "commitLogOffset",
        "commitOrRollback" => "commitOrRollback",
        "fromTransactionCheck" => "fromTransactionCheck",
        "offsetMsgId" => "offsetMsgId",
        "clientID" => "clientID",
        "consumerGroup" => "consumerGroup",
        "bname" => "bname",
        _ => return None,
    })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Which top-level keys were seen (a second one sends the header to `serde_json`).
#[derive(Default)]
struct Seen {
    code: bool,
    language: bool,
    version: bool,
    opaque: bool,
    flag: bool,
    remark: bool,
    ext: bool,
}

fn first_time(flag: &mut bool) -> Option<()> {
    if *flag {
        return None;
    }
    *flag = true;
    Some(())
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// After a member: `true` for `,`, `false` for the closing `c`.
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Whether the object (just after `{`) is empty; consumes the `}` if so.
    fn empty(&mut self, close: u8) -> bool {
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn header(&mut self) -> Option<RemotingCommand> {
        self.eat(b'{')?;
        let mut seen = Seen::default();
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
        if !self.empty(b'}') {
            loop {
                self.ws();
                let key = self.string()?;
                self.eat(b':')?;
                self.ws();
                match key.as_ref() {
                    "code" => {
                        first_time(&mut seen.code)?;
                        code = Some(self.int_field(-1)?);
                    }
                    "version" => {
                        first_time(&mut seen.version)?;
                        cmd.version = self.int_field(0)?;
                    }
                    "opaque" => {
                        first_time(&mut seen.opaque)?;
                        cmd.opaque = self.int_field(0)?;
                    }
                    "flag" => {
                        first_time(&mut seen.flag)?;
                        cmd.flag = self.int_field(0)?;
                    }
                    "language" => {
                        first_time(&mut seen.language)?;
                        cmd.language = self.language()?;
                    }
                    "remark" => {
                        first_time(&mut seen.remark)?;
                        cmd.remark = match self.peek()? {
                            b'"' => Some(self.string()?.into_owned()),
                            b'n' => self.literal(b"null").map(|()| None)?,
                            _ => return None,
                        };
                    }
                    "extFields" => {
                        first_time(&mut seen.ext)?;
                        match self.peek()? {
                            b'{' => self.ext_fields(&mut cmd.ext_fields)?,
                            b'n' => self.literal(b"null")?,
                            _ => return None,
                        }
                    }
                    _ => self.skip_value(0)?,
                }
                if !self.comma_or(b'}')? {
                    break;
                }
            }
        }
        // A missing code is an error; let serde_json word it.
        cmd.code = code?;
        Some(cmd)
    }

    /// An integer field: a number, a string holding an `i64`, or `null` (the default); it
    /// must fit an `i32`.
    fn int_field(&mut self, default: i32) -> Option<i32> {
        let v = match self.peek()? {
            b'"' => self.string()?.parse::<i64>().ok()?,
            b'n' => {
                self.literal(b"null")?;
                return Some(default);
            }
            _ => self.integer()?.0,
        };
        i32::try_from(v).ok()
    }

    fn language(&mut self) -> Option<LanguageCode> {
        match self.peek()? {
            b'"' => {
                let name = self.string()?;
                Some(LanguageCode::from_name(&name).unwrap_or(LanguageCode::OTHER))
            }
            b'n' => self.literal(b"null").map(|()| LanguageCode::JAVA),
            _ => {
                let (v, _) = self.integer()?;
                u8::try_from(v).ok().map(LanguageCode)
            }
        }
    }

    /// The members of `extFields` (the `{` is next): string, integer and boolean values.
    fn ext_fields(&mut self, out: &mut ExtFields) -> Option<()> {
        self.i += 1;
        if self.empty(b'}') {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            let value: String = match self.peek()? {
                b'"' => self.string()?.into_owned(),
                b't' => self.literal(b"true").map(|()| "true".to_owned())?,
                b'f' => self.literal(b"false").map(|()| "false".to_owned())?,
                // serde_json drops a null after keeping an earlier value of the same key.
                b'n' => return None,
                _ => self.integer()?.1.to_owned(),
            };
            if out.get(&key).is_some() {
                return None; // a duplicate: serde_json keeps the last; leave it to it
            }
            match intern(&key) {
                Some(k) => out.insert(k, value),
                None => out.insert(key.into_owned(), value),
            }
            if !self.comma_or(b'}')? {
                return Some(());
            }
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// An integer literal that `serde_json` reads as the same `i64`: `-?(0|[1-9][0-9]*)`,
    /// not followed by a fraction or exponent, not `-0`, in range. Returns the value and the
    /// literal (which is then also its canonical decimal form).
    fn integer(&mut self) -> Option<(i64, &'a str)> {
        let start = self.i;
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let digits = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if let Some(b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            return None; // a float, or a leading zero
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        let v: i64 = text.parse().ok()?;
        if negative && v == 0 {
            return None; // serde_json reads -0 as a float
        }
        debug_assert!(self.i > digits);
        Some((v, text))
    }

    /// A string (the `"` is next), unescaped; borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        // The fast case: no escape.
        loop {
            match self.peek()? {
                b'"' => {
                    let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
                    self.i += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(std::str::from_utf8(&self.b[start..self.i]).ok()?);
        let mut run = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    out.push_str(std::str::from_utf8(&self.b[run..self.i]).ok()?);
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(std::str::from_utf8(&self.b[run..self.i]).ok()?);
                    self.i += 1;
                    let c = match self.peek()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let c = match hi {
                                0xD800..=0xDBFF => {
                                    self.literal(b"\\u")?;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    char::from_u32(cp)?
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => char::from_u32(hi)?,
                            };
                            out.push(c);
                            run = self.i;
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(c);
                    self.i += 1;
                    run = self.i;
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = (v << 4) | (d as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// Checks and skips any value of an unknown key.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'{' => {
                self.i += 1;
                if self.empty(b'}') {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.eat(b':')?;
                    self.skip_value(depth + 1)?;
                    if !self.comma_or(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.empty(b']') {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.comma_or(b']')? {
                        return Some(());
                    }
                }
            }
            _ => self.integer().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::CodecError;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn slow(h: &[u8]) -> Result<RemotingCommand, CodecError> {
        RemotingCommand::read_json_header_serde(h)
    }

    /// The fast path either declines or agrees with serde_json.
    fn check(h: &[u8]) -> bool {
        match decode(h) {
            None => false,
            Some(fast) => {
                match slow(h) {
                    Ok(s) => assert_eq!(fast, s, "{}", String::from_utf8_lossy(h)),
                    Err(e) => panic!(
                        "fast path accepted what serde_json rejects ({e}): {}",
                        String::from_utf8_lossy(h)
                    ),
                }
                true
            }
        }
    }

    fn accepted(h: &str) -> RemotingCommand {
        assert!(check(h.as_bytes()), "declined: {h}");
        decode(h.as_bytes()).unwrap()
    }

    fn declined(h: &str) {
        assert!(decode(h.as_bytes()).is_none(), "accepted: {h}");
    }

    /// The JSON headers of the frames in `tests/data` and the shared real-broker fixtures.
    fn fixture_headers() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut out = Vec::new();
        let mut files = Vec::new();
        for d in [dir.clone(), dir.join("real-broker")] {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        for p in files {
            if p.extension().and_then(|e| e.to_str()) != Some("bin") {
                continue;
            }
            let frame = std::fs::read(&p).unwrap();
            let proto = u32::from_be_bytes(frame[4..8].try_into().unwrap());
            if proto >> 24 != 0 {
                continue;
            }
            let len = (proto & 0xff_ffff) as usize;
            out.push(frame[8..8 + len].to_vec());
        }
        assert!(out.len() >= 10, "fixtures missing: {}", out.len());
        out
    }

    #[test]
    fn fixtures_take_the_fast_path_and_agree() {
        for h in fixture_headers() {
            assert!(check(&h), "declined: {}", String::from_utf8_lossy(&h));
        }
    }

    #[test]
    fn encoded_commands_round_trip() {
        let mut cmd = RemotingCommand::response(2, -7).with_remark("busy \"now\" \u{1} ✓ 𝄞");
        cmd.ext_fields.insert("i", "TAGS\u{1}a\u{2}");
        cmd.ext_fields.insert("msgId", "7F00");
        cmd.ext_fields.insert("weird key \\ \"", "\u{7f}\u{0}");
        let mut frame = Vec::new();
        cmd.encode(&mut frame).unwrap();
        let len = (u32::from_be_bytes(frame[4..8].try_into().unwrap()) & 0xff_ffff) as usize;
        let got = accepted(std::str::from_utf8(&frame[8..8 + len]).unwrap());
        assert_eq!(
            got,
            RemotingCommand {
                body: Vec::new(),
                ..cmd
            }
        );
    }

    #[test]
    fn key_order_escapes_and_unknown_keys() {
        let c = accepted(
            r#" { "version" : 479, "x":[1,{"y":[true,false,null,"\""]},-3], "flag":1,
                "ext\u0046ields":{"queueOffset":12,"TRACE_ON":true,"k\u00e9y":"v\ud834\udd1e\n\/"},
                "remark":"a\tb", "opaque":"-5", "language":"GO", "code":0 } "#,
        );
        assert_eq!((c.code, c.version, c.opaque, c.flag), (0, 479, -5, 1));
        assert_eq!(c.language, LanguageCode::GO);
        assert_eq!(c.remark.as_deref(), Some("a\tb"));
        assert_eq!(c.ext_fields.get("queueOffset"), Some("12"));
        assert_eq!(c.ext_fields.get("TRACE_ON"), Some("true"));
        assert_eq!(c.ext_fields.get("kéy"), Some("v𝄞\n/"));
        let c = accepted(r#"{"code":null,"language":7,"remark":null,"extFields":null}"#);
        assert_eq!((c.code, c.language, c.remark), (-1, LanguageCode(7), None));
        let c = accepted(r#"{"code":3,"language":"KLINGON","extFields":{}}"#);
        assert_eq!(c.language, LanguageCode::OTHER);
    }

    #[test]
    fn odd_input_is_left_to_serde_json() {
        for h in [
            r#"{"code":1.0}"#,
            r#"{"code":1e2}"#,
            r#"{"code":-0}"#,
            r#"{"code":01}"#,
            r#"{"code":99999999999}"#,
            r#"{"code":1,"code":2}"#,
            r#"{"code":1,"remark":5}"#,
            r#"{"code":1,"extFields":{"a":null}}"#,
            r#"{"code":1,"extFields":{"a":"1","a":"2"}}"#,
            r#"{"code":1,"extFields":{"a":1.5}}"#,
            r#"{"code":1,"extFields":[]}"#,
            r#"{"code":1,"x":"\ud800"}"#,
            r#"{"code":1,"x":"\udc00\ud800"}"#,
            r#"{"code":1,"x":"\q"}"#,
            "{\"code\":1,\"x\":\"\u{1}\"}",
            r#"{"code":1,"x":1.5}"#,
            r#"{"code":1} x"#,
            r#"{"code":1,}"#,
            r#"{"language":"JAVA"}"#,
            r#"{"code":"1 "}"#,
            r#"{"code":true}"#,
            r#"{"code":1,"language":256}"#,
            r#"[]"#,
            "",
        ] {
            declined(h);
        }
        let deep = format!(
            "{{\"code\":1,\"x\":{}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        declined(&deep);
        assert!(decode(b"{\"code\":1,\"remark\":\"\xff\"}").is_none());
    }

    /// Random byte-level mutations of every fixture header: the fast path may decline, but
    /// whatever it accepts, serde_json reads the same.
    #[test]
    fn differential_random_mutations() {
        let alphabet: &[u8] = b"{}[]\",:\\/ \t\n-+.0123456789eEtrueflsnu\xc3\xa9\xff\x01abAF";
        let mut rng = StdRng::seed_from_u64(0x5eed_9);
        let headers = fixture_headers();
        let rounds = if cfg!(debug_assertions) {
            3_000
        } else {
            30_000
        };
        let (mut fast, mut total) = (0, 0);
        for round in 0..rounds {
            let mut h = headers[round % headers.len()].clone();
            for _ in 0..rng.gen_range(1..4) {
                if h.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..h.len());
                match rng.gen_range(0..5) {
                    0 => h[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        h.remove(at);
                    }
                    2 => h.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                    3 => {
                        let end = (at + rng.gen_range(1..12)).min(h.len());
                        let piece = h[at..end].to_vec();
                        let to = rng.gen_range(0..h.len());
                        h.splice(to..to, piece);
                    }
                    _ => {
                        // Swap two members' worth of bytes (reorders keys when it lands well).
                        let end = (at + rng.gen_range(1..30)).min(h.len());
                        h[at..end].reverse();
                    }
                }
            }
            total += 1;
            if check(&h) {
                fast += 1;
            }
        }
        eprintln!("fast path taken {fast} of {total}");
        // Many mutations land inside string values and keep the header valid.
        assert!(fast * 20 > total, "fast path taken {fast} of {total}");
    }

    /// Random valid headers (random key order, escapes, unknown keys, numbers as strings):
    /// the fast path takes every one and agrees.
    #[test]
    fn differential_random_valid_headers() {
        let mut rng = StdRng::seed_from_u64(42);
        let pieces = [
            "a", "é", "𝄞", "\"", "\\", "\n", "\u{1}", "/", "x y", "✓", "\u{0}",
        ];
        let rounds = if cfg!(debug_assertions) { 500 } else { 5_000 };
        for _ in 0..rounds {
            let text = |rng: &mut StdRng| -> String {
                let s: String = (0..rng.gen_range(0..6))
                    .map(|_| pieces[rng.gen_range(0..pieces.len())])
                    .collect();
                // Escape with serde_json, then \u-escape some plain characters too.
                let quoted = serde_json::to_string(&s).unwrap();
                let mut out = String::new();
                for ch in quoted.chars() {
                    if ch.is_ascii_alphabetic() && rng.gen_bool(0.3) {
                        out.push_str(&format!("\\u{:04X}", ch as u32));
                    } else if !ch.is_ascii() && rng.gen_bool(0.5) {
                        let mut buf = [0u16; 2];
                        for unit in ch.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    } else {
                        out.push(ch);
                    }
                }
                out
            };
            let int = |rng: &mut StdRng| -> String {
                let v: i32 = rng.gen();
                match rng.gen_range(0..3) {
                    0 => v.to_string(),
                    1 => format!("\"{v}\""),
                    _ => "null".into(),
                }
            };
            let mut members = vec![
                format!("\"code\":{}", rng.gen_range(-1..400)),
                format!("\"opaque\":{}", int(&mut rng)),
                format!("\"version\":{}", int(&mut rng)),
                format!("\"flag\":{}", int(&mut rng)),
                format!(
                    "\"language\":\"{}\"",
                    ["JAVA", "RUST", "GO", "??"][rng.gen_range(0..4)]
                ),
                format!("\"remark\":{}", text(&mut rng)),
                format!("\"serializeTypeCurrentRPC\":\"JSON\""),
                format!("\"unknown\":{{\"a\":[1,-2,{},null,true]}}", text(&mut rng)),
            ];
            let mut ext = Vec::new();
            for i in 0..rng.gen_range(0..8) {
                let key = format!("\"k{i}{}", &text(&mut rng)[1..]);
                let value = match rng.gen_range(0..3) {
                    0 => rng.gen::<i64>().to_string(),
                    1 => ["true", "false"][rng.gen_range(0..2)].to_string(),
                    _ => text(&mut rng),
                };
                ext.push(format!("{key} : {value}"));
            }
            members.push(format!("\"extFields\":{{{}}}", ext.join(",")));
            let n = members.len();
            for i in 0..n {
                members.swap(i, rng.gen_range(0..n));
            }
            let h = format!("{{{}}}", members.join(", "));
            assert!(check(h.as_bytes()), "declined: {h}");
        }
    }
}
