//! The JSON header writer: keys in fastjson's order, and the JSON string and decimal integer
//! writers under it (no `fmt` machinery, no `serde_json`: this runs on every frame).

use super::RemotingCommand;

impl RemotingCommand {
    pub(super) fn write_json_header(&self, out: &mut Vec<u8>) {
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
pub(super) fn next_special(bytes: &[u8], from: usize) -> usize {
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
pub(super) fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let digits = int_digits(&mut buf, v);
    if v < 0 {
        out.push('-');
    }
    // Digits are ASCII.
    out.extend(digits.iter().map(|&d| d as char));
}

/// The decimal digits of `|v|`, at the end of `buf`.
pub(crate) fn int_digits(buf: &mut [u8; 20], v: i64) -> &[u8] {
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
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let digits = int_digits(&mut buf, v);
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::route_request;

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
}
