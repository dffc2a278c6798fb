//! The binary ROCKETMQ header layout (serialize type 1), written and read: fixed-width
//! big-endian fields, then the length-prefixed `extFields` map.

use std::borrow::Cow;

use byteorder::{BigEndian, ByteOrder};

use super::ext_fields::known_key;
use super::{CodecError, ExtFields, RemotingCommand, SerializeType};
use crate::protocol::codes::LanguageCode;

impl RemotingCommand {
    /// Appends the binary header. A key longer than 32 767 bytes (its length is an i16 on the
    /// wire) is refused; `out` may then hold part of the header (the caller truncates).
    pub(super) fn write_binary_header(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let remark = self.remark.as_deref().unwrap_or("");
        out.extend_from_slice(&(self.code as i16).to_be_bytes());
        out.push(self.language.0);
        out.extend_from_slice(&(self.version as i16).to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        // Lengths over 24 bits make the header too large, which encode refuses after this.
        out.extend_from_slice(&(remark.len() as u32).to_be_bytes());
        out.extend_from_slice(remark.as_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        for (k, v) in self.ext_fields.iter() {
            // A zero-length value decodes as null in Java: such entries are skipped.
            if k.is_empty() || v.is_empty() {
                continue;
            }
            let Ok(key_len) = i16::try_from(k.len()) else {
                return Err(CodecError::invalid(
                    "extFields key (at most 32767 bytes in the ROCKETMQ layout)",
                    k,
                ));
            };
            out.extend_from_slice(&key_len.to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        let map_len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&map_len.to_be_bytes());
        Ok(())
    }

    pub(super) fn read_binary_header(header: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader {
            buf: header,
            pos: 0,
        };
        let code = r.i16("code")? as i32;
        let language = LanguageCode(r.u8("language")?);
        let version = r.i16("version")? as i32;
        let opaque = r.i32("opaque")?;
        let flag = r.i32("flag")?;
        let remark_len = r.len_i32("remark length")?;
        let remark = if remark_len > 0 {
            Some(r.string(remark_len, "remark")?)
        } else {
            None
        };
        let map_len = r.len_i32("extFields length")?;
        let map = r.take(map_len, "extFields")?;
        // Values are gathered as bytes and checked as UTF-8 once.
        let mut ranges = Vec::new();
        let mut raw = Vec::new();
        if !map.is_empty() {
            ranges.reserve(16);
            raw.reserve(map.len());
        }
        let mut m = Reader { buf: map, pos: 0 };
        while m.pos < map.len() {
            let key_len = m.i16("extFields key length")?;
            if key_len < 0 {
                return Err(CodecError::BinaryHeader("negative extFields key length"));
            }
            let key = m.take(key_len as usize, "extFields key")?;
            // Known keys (every key of a send response) need no UTF-8 check.
            let key = match known_key(key) {
                Some(known) => Cow::Borrowed(known),
                None => Cow::Owned(
                    std::str::from_utf8(key)
                        .map_err(|_| CodecError::BinaryHeader("extFields key"))?
                        .to_owned(),
                ),
            };
            let val_len = m.len_i32("extFields value length")?;
            let val = m.take(val_len, "extFields value")?;
            let start = raw.len();
            raw.extend_from_slice(val);
            ranges.push((key, start, raw.len()));
        }
        let values =
            String::from_utf8(raw).map_err(|_| CodecError::BinaryHeader("extFields value"))?;
        let ext_fields = ExtFields::from_ranges(ranges, values);
        if r.pos != header.len() {
            return Err(CodecError::BinaryHeader("trailing bytes after extFields"));
        }
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            body: Vec::new(),
            serialize_type: SerializeType::RocketMq,
        })
    }
}

/// A bounds-checked big-endian reader over a slice; every read names what it was reading.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(CodecError::BinaryHeader(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        Ok(BigEndian::read_i16(self.take(2, what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        Ok(BigEndian::read_i32(self.take(4, what)?))
    }
    fn len_i32(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| CodecError::BinaryHeader(what))
    }
    fn str(&mut self, n: usize, what: &'static str) -> Result<&'a str, CodecError> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::BinaryHeader(what))
    }
    fn string(&mut self, n: usize, what: &'static str) -> Result<String, CodecError> {
        self.str(n, what).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::route_request;

    /// A key too long for its 16-bit length is refused, not wrapped into a frame that reads
    /// back as something else; the buffer is left as it was.
    #[test]
    fn key_over_32767_bytes_is_refused() {
        let mut cmd = route_request();
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.ext_fields.insert("k".repeat(40_000), "v");
        let mut out = vec![1, 2, 3];
        let err = cmd.encode(&mut out).unwrap_err();
        assert!(matches!(err, CodecError::InvalidField { .. }), "{err:?}");
        assert_eq!(out, [1, 2, 3]);
        // The longest key that fits goes through.
        let mut cmd = route_request();
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.ext_fields.insert("k".repeat(32_767), "v");
        let frame = cmd.to_frame().unwrap();
        assert_eq!(RemotingCommand::decode(&frame).unwrap(), cmd);
    }

    /// Empty values are left out (a zero-length value reads as null in Java and RocketMQ-Rust),
    /// and an empty remark is written as length 0.
    #[test]
    fn empty_values_are_left_out() {
        let mut cmd = route_request();
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.ext_fields.insert("empty", "");
        cmd.remark = Some(String::new());
        let frame = cmd.to_frame().unwrap();
        let mut plain = route_request();
        plain.serialize_type = SerializeType::RocketMq;
        assert_eq!(frame, plain.to_frame().unwrap());
    }

    /// Keys are looked up by their bytes; an unknown key is still checked as UTF-8, and a
    /// known one is the interned name.
    #[test]
    fn keys_known_or_checked() {
        let frame_with_key = |key: &[u8]| {
            let mut map = (key.len() as u16).to_be_bytes().to_vec();
            map.extend_from_slice(key);
            map.extend_from_slice(&[0, 0, 0, 1, b'v']);
            let mut header = vec![0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
            header.extend_from_slice(&(map.len() as u32).to_be_bytes());
            header.extend_from_slice(&map);
            let mut frame = ((4 + header.len()) as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&(0x0100_0000 | header.len() as u32).to_be_bytes());
            frame.extend_from_slice(&header);
            frame
        };
        let err = RemotingCommand::decode(&frame_with_key(&[b'k', 0xff])).unwrap_err();
        assert_eq!(err, CodecError::BinaryHeader("extFields key"));
        for key in ["queueOffset", "n", "z", "grün"] {
            let cmd = RemotingCommand::decode(&frame_with_key(key.as_bytes())).unwrap();
            assert_eq!(cmd.ext_fields.iter().collect::<Vec<_>>(), [(key, "v")]);
        }
    }

    #[test]
    fn golden_binary_route_request() {
        let mut cmd = route_request();
        cmd.serialize_type = SerializeType::RocketMq;
        let frame = cmd.to_frame().unwrap();
        let hex = "0000002d010000290069000\
                   1df000000010000000000000000000000140005746f7069630000000954\
                   6f70696354657374";
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(frame.len(), 49);
        assert_eq!(frame, expected);
        assert_eq!(RemotingCommand::decode(&frame).unwrap(), cmd);
    }
}
