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

/// [`next_special`] from the start of `bytes`, for the writer: the last 1..=7 bytes are
/// checked as one more word too (the last eight bytes of a longer string, whose first ones
/// are known plain, or the rest padded with a plain byte), not byte by byte.
fn first_special(bytes: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let flagged = |w: u64| {
        let quote = w ^ (LO * u64::from(b'"'));
        let backslash = w ^ (LO * u64::from(b'\\'));
        ((quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI
    };
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let special = flagged(u64::from_le_bytes(word));
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i == bytes.len() {
        return i;
    }
    let (w, at) = match bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
        Some(last) => {
            let mut word = [0u8; 8];
            word.copy_from_slice(last);
            (u64::from_le_bytes(word), bytes.len() - 8)
        }
        None => {
            let mut w = LO * u64::from(b'a');
            for (k, &b) in bytes[i..].iter().enumerate() {
                w = (w & !(0xff << (8 * k))) | (u64::from(b) << (8 * k));
            }
            (w, i)
        }
    };
    // Flagged bytes before `i` are impossible (plain), so the lowest is the first special.
    match flagged(w) {
        0 => bytes.len(),
        special => at + (special.trailing_zeros() / 8) as usize,
    }
}

/// For each byte, what a JSON string holds for it, packed in a `u64`: the bytes of its text in
/// the low six bytes (little-endian), the text's length (1, 2 or 6) in the top byte. A byte
/// that needs no escape stands for itself; `"`, `\\`, `\n`, `\r` and `\t` get their short
/// escapes; the other control characters `\u00XX` (as fastjson writes them).
const JSON_TEXT: [u64; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let text: [u8; 6] = match JSON_ESCAPE[b] {
            0 => [b as u8, 0, 0, 0, 0, 0],
            b'u' => [b'\\', b'u', b'0', b'0', HEX[b >> 4], HEX[b & 0xf]],
            e => [b'\\', e, 0, 0, 0, 0],
        };
        let len: u64 = match JSON_ESCAPE[b] {
            0 => 1,
            b'u' => 6,
            _ => 2,
        };
        let mut word = len << 56;
        let mut k = 0;
        while k < 6 {
            word |= (text[k] as u64) << (8 * k);
            k += 1;
        }
        t[b] = word;
        b += 1;
    }
    t
};

/// Input bytes escaped per [`write_escaped`] step: bounds the scratch room a long string takes
/// at the end of the output (six times this, at most) while it is written.
const ESCAPE_STEP: usize = 4096;

/// Writes `s` as a JSON string literal: quotes, backslashes and control characters escaped
/// (control characters as `\u00XX`, as fastjson does); everything else as UTF-8.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_json_text(out, s.as_bytes());
    out.push(b'"');
}

/// Writes the text of a JSON string literal for `bytes` (UTF-8, or a part of it cut at an
/// ASCII byte), without the quotes: escaped as [`write_json_str`] escapes it.
pub(crate) fn write_json_text(out: &mut Vec<u8>, bytes: &[u8]) {
    let first = first_special(bytes);
    out.extend_from_slice(&bytes[..first]);
    if first < bytes.len() {
        for step in bytes[first..].chunks(ESCAPE_STEP) {
            write_escaped(out, step);
        }
    }
}

/// Appends the JSON text of `bytes` (no quotes). The output is first grown by the worst case
/// (six bytes per input byte) plus eight bytes of slack, so that every store below can write a
/// whole 8-byte word: the plain bytes eight at a time as they are scanned, and each escape as
/// one word of [`JSON_TEXT`]. What a store writes past the text is overwritten by the next
/// store or cut off at the end.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let at = out.len();
    out.resize(at + 6 * bytes.len() + 8, 0);
    let dst = &mut out[at..];
    let mut i = 0;
    let mut j = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let Some(d) = dst.get_mut(j..j + 8) else {
            break; // cannot happen: j + 8 <= 6 * i + 8 (the room made above)
        };
        d.copy_from_slice(&word);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (LO * u64::from(b'"'));
        let backslash = w ^ (LO * u64::from(b'\\'));
        // As in `next_special`: the lowest flagged byte is the first special one.
        let special = ((quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if special == 0 {
            i += 8;
            j += 8;
            continue;
        }
        // The plain bytes before the special one are in place; write its escape over the rest.
        let k = (special.trailing_zeros() / 8) as usize;
        let text = JSON_TEXT[word[k] as usize];
        if let Some(d) = dst.get_mut(j + k..j + k + 8) {
            d.copy_from_slice(&text.to_le_bytes());
        }
        i += k + 1;
        j += k + (text >> 56) as usize;
    }
    while let Some(&b) = bytes.get(i) {
        let text = JSON_TEXT[b as usize];
        if let Some(d) = dst.get_mut(j..j + 8) {
            d.copy_from_slice(&text.to_le_bytes());
        }
        i += 1;
        j += (text >> 56) as usize;
    }
    out.truncate(at + j);
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

/// "00", "01", ... "99": two digits per table look-up.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The decimal digits of `|v|`, at the end of `buf`: two at a time (a division by 100 and a
/// look-up in [`DIGIT_PAIRS`]), which halves the divisions of a 13-digit timestamp.
pub(crate) fn int_digits(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    &buf[i..]
}

/// Writes `v` in decimal (no `fmt` machinery: this is on every frame). A single digit (a
/// queue id, a flag) is written right here.
#[inline]
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64) {
    if (0..10).contains(&v) {
        out.push(b'0' + v as u8);
    } else {
        write_long_int(out, v);
    }
}

fn write_long_int(out: &mut Vec<u8>, v: i64) {
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

    /// The plain reading of the fastjson rules, byte by byte: the reference for `write_json_str`.
    fn reference_json_str(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                _ => out.push(b),
            }
        }
        out.push(b'"');
        out
    }

    /// Random strings (lengths 0..80, runs across the 8-byte words, every control character,
    /// quotes, backslashes, 2- to 4-byte UTF-8): `write_json_str` writes the reference's bytes,
    /// serde_json reads them back as the string, and where fastjson and serde_json agree (no
    /// backspace or form feed, which serde_json writes as `\b`, `\f`) it writes serde_json's bytes.
    #[test]
    fn write_json_str_matches_reference_and_serde_json_on_random_strings() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let alphabet: Vec<char> = (0u32..0x20)
            .filter_map(char::from_u32)
            .chain("\"\\aZ09 _-/\u{7f}é€✓𝄞\u{1}\u{2}".chars())
            .collect();
        for round in 0..20_000 {
            let len = rng.gen_range(0..80);
            let plain_bias = rng.gen_range(0..=10);
            let s: String = (0..len)
                .map(|_| {
                    if rng.gen_range(0..10) < plain_bias {
                        'k'
                    } else {
                        alphabet[rng.gen_range(0..alphabet.len())]
                    }
                })
                .collect();
            // Written after other bytes, as in a frame.
            let mut out = b"{\"x\":".to_vec();
            write_json_str(&mut out, &s);
            let ours = &out[5..];
            assert_eq!(ours, &reference_json_str(&s)[..], "round {round}: {s:?}");
            let back: String = serde_json::from_slice(ours).unwrap();
            assert_eq!(back, s, "round {round}");
            if !s.contains(['\u{8}', '\u{c}']) {
                assert_eq!(
                    ours,
                    serde_json::to_vec(&s).unwrap(),
                    "round {round}: {s:?}"
                );
            }
        }
        // Long strings cross the escape steps.
        for s in [
            "\u{1}".repeat(3 * ESCAPE_STEP + 5),
            format!(
                "{}\"{}",
                "a".repeat(ESCAPE_STEP - 1),
                "\u{2}b".repeat(ESCAPE_STEP)
            ),
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            assert_eq!(out, reference_json_str(&s));
        }
    }

    #[test]
    fn int_digits_match_std_formatting() {
        let mut values = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            i64::MAX,
            i64::MIN,
            -1,
            -10,
        ];
        for p in 0..19 {
            let t = 10i64.pow(p);
            values.extend([t - 1, t, t + 1, -t, 1_722_000_000_000 + t]);
        }
        for v in values {
            let mut buf = [0u8; 20];
            assert_eq!(
                int_digits(&mut buf, v),
                v.unsigned_abs().to_string().as_bytes()
            );
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            let mut text = String::new();
            push_int(&mut text, v);
            assert_eq!(text, v.to_string());
        }
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
        // The writer's variant, on every prefix of each case.
        for bytes in cases {
            for len in 0..=bytes.len() {
                assert_eq!(first_special(&bytes[..len]), next_special(&bytes[..len], 0));
            }
        }
        // Every byte value at every position of a 16-byte window.
        for b in 0..=255u8 {
            for at in 0..16 {
                let mut bytes = [b'x'; 16];
                bytes[at] = b;
                let special = b == b'"' || b == b'\\' || b < 0x20;
                assert_eq!(next_special(&bytes, 0), if special { at } else { 16 });
                for len in at + 1..=16 {
                    let expected = if special { at } else { len };
                    assert_eq!(
                        first_special(&bytes[..len]),
                        expected,
                        "{b} at {at} of {len}"
                    );
                }
            }
        }
    }
}
