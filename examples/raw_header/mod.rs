//! The bench's raw client reads a response header here: its `code` and `opaque`, and nothing
//! else, in one pass over the bytes with no allocation and no search.
//!
//! A JSON header is walked as JSON: the top-level object's keys are read one after another (in
//! any order, escapes allowed), the values of `code` and `opaque` parsed as integers, every
//! other value skipped whole (strings with escaped quotes, nested objects and arrays), so a key
//! named `code` inside `extFields` or a remark that mentions `"opaque":1` is never mistaken for
//! the real one. A binary (ROCKETMQ) header has both at fixed offsets. Anything malformed is an
//! error, never a guess.
//!
//! It lives in its own file so `tests/bench_raw_header.rs` can run its unit tests (examples'
//! own tests are not run by `cargo test`).

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not the JSON the protocol uses, at this byte offset.
    Syntax(usize),
    /// `code` or `opaque` is missing, not an integer, or out of the 32-bit range.
    Field(&'static str),
    /// Serialize type byte other than 0 (JSON) or 1 (ROCKETMQ).
    SerializeType(u8),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Syntax(at) => write!(f, "malformed JSON header at byte {at}"),
            HeaderError::Field(name) => write!(f, "header field {name} missing or not an i32"),
            HeaderError::SerializeType(t) => write!(f, "unknown serialize type {t}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// `(code, opaque)` of a header of serialize type `serialize_type` (the top byte of the
/// frame's second length word).
pub fn code_and_opaque(serialize_type: u8, header: &[u8]) -> Result<(i32, i32), HeaderError> {
    match serialize_type {
        0 => json_code_and_opaque(header),
        1 => binary_code_and_opaque(header),
        other => Err(HeaderError::SerializeType(other)),
    }
}

/// The binary layout: code i16, language u8, version i16, opaque i32 (big-endian).
fn binary_code_and_opaque(h: &[u8]) -> Result<(i32, i32), HeaderError> {
    let code = h.get(0..2).ok_or(HeaderError::Field("code"))?;
    let opaque = h.get(5..9).ok_or(HeaderError::Field("opaque"))?;
    Ok((
        i32::from(i16::from_be_bytes([code[0], code[1]])),
        i32::from_be_bytes([opaque[0], opaque[1], opaque[2], opaque[3]]),
    ))
}

struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn err<T>(&self) -> Result<T, HeaderError> {
        Err(HeaderError::Syntax(self.pos))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace; consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string, the cursor on its opening quote; returns its raw bytes (escapes as written:
    /// the keys we look for have none, and an escaped key is never one of them).
    fn string(&mut self) -> Result<&'a [u8], HeaderError> {
        if self.b.get(self.pos) != Some(&b'"') {
            return self.err();
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(&self.b[start..self.pos - 1]);
                }
                // An escape: skip its first character, whatever it is (`\"` included).
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
                None => return self.err(),
            }
        }
    }

    /// An integer value: `-?digits` fitting an i32.
    fn int(&mut self, name: &'static str) -> Result<i32, HeaderError> {
        self.ws();
        let neg = self.b.get(self.pos) == Some(&b'-');
        if neg {
            self.pos += 1;
        }
        let start = self.pos;
        let mut v: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.pos) {
            v = v * 10 + i64::from(d - b'0');
            if v > i64::from(i32::MAX) + 1 {
                return Err(HeaderError::Field(name));
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(HeaderError::Field(name));
        }
        let v = if neg { -v } else { v };
        i32::try_from(v).map_err(|_| HeaderError::Field(name))
    }

    /// Skips one value of any kind.
    fn skip_value(&mut self) -> Result<(), HeaderError> {
        self.ws();
        match self.b.get(self.pos) {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => {
                // Brackets are counted; strings inside are skipped whole, so a bracket in a
                // string does not count.
                let mut depth = 0usize;
                loop {
                    match self.b.get(self.pos) {
                        Some(b'{' | b'[') => {
                            depth += 1;
                            self.pos += 1;
                        }
                        Some(b'}' | b']') => {
                            depth -= 1;
                            self.pos += 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        Some(b'"') => {
                            self.string()?;
                        }
                        Some(_) => self.pos += 1,
                        None => return self.err(),
                    }
                }
            }
            Some(_) => {
                // A number or a literal: up to the next delimiter.
                let start = self.pos;
                while let Some(&c) = self.b.get(self.pos) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return self.err();
                }
                Ok(())
            }
            None => self.err(),
        }
    }
}

fn json_code_and_opaque(header: &[u8]) -> Result<(i32, i32), HeaderError> {
    let mut s = Scan { b: header, pos: 0 };
    let (mut code, mut opaque) = (None, None);
    if !s.eat(b'{') {
        return s.err();
    }
    if !s.eat(b'}') {
        loop {
            s.ws();
            let key = s.string()?;
            if !s.eat(b':') {
                return s.err();
            }
            match key {
                b"code" => code = Some(s.int("code")?),
                b"opaque" => opaque = Some(s.int("opaque")?),
                _ => s.skip_value()?,
            }
            if s.eat(b',') {
                continue;
            }
            if s.eat(b'}') {
                break;
            }
            return s.err();
        }
    }
    s.ws();
    if s.pos != header.len() {
        return s.err();
    }
    Ok((
        code.ok_or(HeaderError::Field("code"))?,
        opaque.ok_or(HeaderError::Field("opaque"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(h: &str) -> Result<(i32, i32), HeaderError> {
        code_and_opaque(0, h.as_bytes())
    }

    #[test]
    fn the_mock_and_java_layouts() {
        let mock = r#"{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"7F00000100002A9F0000000000000000","queueId":"3","queueOffset":"17"},"flag":1,"language":"RUST","opaque":1000000042,"serializeTypeCurrentRPC":"JSON","version":0}"#;
        assert_eq!(json(mock), Ok((0, 1_000_000_042)));
        let java = r#"{"code":17,"extFields":{},"flag":1,"language":"JAVA","opaque":7,"remark":"topic[x] not exist, apply first please!","serializeTypeCurrentRPC":"JSON","version":453}"#;
        assert_eq!(json(java), Ok((17, 7)));
    }

    #[test]
    fn fields_in_any_order_and_whitespace() {
        assert_eq!(json(r#"{"opaque":5,"flag":1,"code":2}"#), Ok((2, 5)));
        assert_eq!(
            json(" {\n \"flag\" : 1 ,\t\"opaque\" : 9 , \"code\" : 0 } \r\n"),
            Ok((0, 9))
        );
    }

    #[test]
    fn negative_and_extreme_values() {
        assert_eq!(json(r#"{"code":-1,"opaque":-7}"#), Ok((-1, -7)));
        assert_eq!(
            json(r#"{"code":2147483647,"opaque":-2147483648}"#),
            Ok((i32::MAX, i32::MIN))
        );
        assert_eq!(
            json(r#"{"code":2147483648,"opaque":1}"#),
            Err(HeaderError::Field("code"))
        );
        assert_eq!(
            json(r#"{"code":0,"opaque":-2147483649}"#),
            Err(HeaderError::Field("opaque"))
        );
        assert_eq!(
            json(r#"{"code":0,"opaque":99999999999999999999999}"#),
            Err(HeaderError::Field("opaque"))
        );
    }

    #[test]
    fn a_remark_with_quotes_and_lookalike_keys_is_skipped() {
        let h = r#"{"remark":"say \"code\":5, \"opaque\":6 \\","code":1,"opaque":2}"#;
        assert_eq!(json(h), Ok((1, 2)));
        // Keys of the same name inside extFields or an array are not the header's.
        let h = r#"{"extFields":{"code":"9","opaque":"9","x":{"code":8},"y":["}",{"opaque":3}]},"code":4,"opaque":5}"#;
        assert_eq!(json(h), Ok((4, 5)));
        // Values of other kinds are skipped too.
        let h = r#"{"a":null,"b":true,"c":-1.5e3,"d":[],"e":{},"code":0,"opaque":1}"#;
        assert_eq!(json(h), Ok((0, 1)));
    }

    #[test]
    fn missing_or_malformed_is_an_error() {
        assert_eq!(json(r#"{"code":0}"#), Err(HeaderError::Field("opaque")));
        assert_eq!(json(r#"{"opaque":0}"#), Err(HeaderError::Field("code")));
        assert_eq!(
            json(r#"{"code":"0","opaque":1}"#),
            Err(HeaderError::Field("code"))
        );
        for bad in [
            "",
            "{",
            r#"{"code":0,"opaque":1"#,
            r#"{"code":0,"opaque":1}x"#,
            r#"{"code":0 "opaque":1}"#,
            r#"{"remark":"never ends,"code":0,"opaque":1}"#,
            r#"{"x":{"y":1,"code":0,"opaque":1}"#,
            r#"["code",0]"#,
        ] {
            assert!(
                matches!(json(bad), Err(HeaderError::Syntax(_))),
                "{bad:?} -> {:?}",
                json(bad)
            );
        }
    }

    #[test]
    fn binary_header() {
        let mut h = vec![];
        h.extend_from_slice(&(-3i16).to_be_bytes());
        h.push(12);
        h.extend_from_slice(&453i16.to_be_bytes());
        h.extend_from_slice(&(-42i32).to_be_bytes());
        h.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(code_and_opaque(1, &h), Ok((-3, -42)));
        assert_eq!(
            code_and_opaque(1, &h[..8]),
            Err(HeaderError::Field("opaque"))
        );
        assert_eq!(code_and_opaque(7, &h), Err(HeaderError::SerializeType(7)));
    }
}
