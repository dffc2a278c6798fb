//! The binary ROCKETMQ header layout (serialize type 1), written and read: fixed-width
//! big-endian fields, then the length-prefixed `extFields` map.

use byteorder::{BigEndian, ByteOrder};

use super::ext_fields::{known_key, RawBuilder, ResponseKey};
use super::{CodecError, RemotingCommand, SerializeType};
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
        // Checked in one pass and kept as raw bytes (see `ExtFields`): no map is built, no
        // value copied but in one piece; where the send-response values are is noted.
        let mut raw = RawBuilder::new();
        let mut bad_value = false;
        let mut m = Reader { buf: map, pos: 0 };
        while m.pos < map.len() {
            let key_len = m.i16("extFields key length")?;
            if key_len < 0 {
                return Err(CodecError::BinaryHeader("negative extFields key length"));
            }
            let key = m.take(key_len as usize, "extFields key")?;
            // Known keys (every key of a send response) need no UTF-8 check.
            let response_key = ResponseKey::of(key);
            if response_key.is_none()
                && known_key(key).is_none()
                && std::str::from_utf8(key).is_err()
            {
                return Err(CodecError::BinaryHeader("extFields key"));
            }
            let val_len = m.len_i32("extFields value length")?;
            let start = m.pos;
            let val = m.take(val_len, "extFields value")?;
            let ascii = val.is_ascii();
            // Reported once the whole map is read, as one check of every value would.
            bad_value |= !ascii && std::str::from_utf8(val).is_err();
            if let Some(key) = response_key {
                raw.send_value(key, start, m.pos, ascii);
            }
        }
        if bad_value {
            return Err(CodecError::BinaryHeader("extFields value"));
        }
        let ext_fields = raw.finish_binary(map);
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

    /// The binary reader as it was before the raw fields: every value copied and the map
    /// built while reading (a later duplicate wins). The reference for the raw reader.
    fn read_binary_header_eager(header: &[u8]) -> Result<RemotingCommand, CodecError> {
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
        let mut pairs = Vec::new();
        let mut m = Reader { buf: map, pos: 0 };
        while m.pos < map.len() {
            let key_len = m.i16("extFields key length")?;
            if key_len < 0 {
                return Err(CodecError::BinaryHeader("negative extFields key length"));
            }
            let key = m.str(key_len as usize, "extFields key")?.to_owned();
            let val_len = m.len_i32("extFields value length")?;
            pairs.push((key, m.take(val_len, "extFields value")?.to_vec()));
        }
        let mut ext_fields = super::super::ExtFields::new();
        for (key, value) in pairs {
            let value = String::from_utf8(value)
                .map_err(|_| CodecError::BinaryHeader("extFields value"))?;
            ext_fields.insert(key, value);
        }
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

    /// Thousands of generated binary headers (send keys and others, repeated, empty, unicode,
    /// invalid UTF-8, long values; then cut, with lengths broken, bytes flipped): the raw
    /// reader gives what the eager one gives, map and error alike; where it noted the send
    /// values, they are the map's, and both ways of reading them ran.
    #[test]
    fn raw_fields_match_the_eager_reader_on_generated_headers() {
        use super::super::ResponseKey;
        use rand::rngs::StdRng;
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        const KEYS: &[&[u8]] = &[
            b"msgId",
            b"queueId",
            b"queueOffset",
            b"batchUniqId",
            b"transactionId",
            b"MSG_REGION",
            b"TRACE_ON",
            b"offsetMsgId",
            b"msgid",
            b"a",
            "ключ".as_bytes(),
            b"bad\xff",
            b"",
        ];
        const VALUES: &[&[u8]] = &[
            b"7F000001000051E10000000000000000",
            b"",
            b"1",
            b"-3",
            b"true",
            "grün ✓ 𝄞".as_bytes(),
            b"\xc3",
            b"q\"uote\\",
        ];
        let mut rng = StdRng::seed_from_u64(0xB1A);
        let (mut noted, mut looked_up, mut errors) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut map = Vec::new();
            for _ in 0..rng.gen_range(0..9) {
                let key = *KEYS.choose(&mut rng).unwrap();
                let long = [b'x'; 300];
                let value: &[u8] = if rng.gen_bool(0.05) {
                    &long[..rng.gen_range(0..300)]
                } else {
                    VALUES.choose(&mut rng).unwrap()
                };
                map.extend_from_slice(&(key.len() as u16).to_be_bytes());
                map.extend_from_slice(key);
                map.extend_from_slice(&(value.len() as u32).to_be_bytes());
                map.extend_from_slice(value);
            }
            let mut header = vec![0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
            header.extend_from_slice(&(map.len() as u32).to_be_bytes());
            header.extend_from_slice(&map);
            match rng.gen_range(0..10) {
                0 => header.truncate(rng.gen_range(0..header.len())),
                1 => {
                    let at = rng.gen_range(0..header.len());
                    header[at] = rng.gen();
                }
                2 => header.push(rng.gen()),
                _ => {}
            }
            let raw = RemotingCommand::read_binary_header(&header);
            let eager = read_binary_header_eager(&header);
            let (Ok(raw), Ok(eager)) = (&raw, &eager) else {
                assert_eq!(raw, eager, "{header:?}");
                errors += 1;
                continue;
            };
            let (lazy, map) = (&raw.ext_fields, &eager.ext_fields);
            match lazy.response_values() {
                Some(values) => {
                    noted += 1;
                    for key in ResponseKey::ALL {
                        let expected = map.get(key.name()).map(str::as_bytes);
                        assert_eq!(values[key as usize], expected, "{key:?} {header:?}");
                    }
                }
                None => looked_up += usize::from(lazy.is_raw()),
            }
            for (key, value) in map.iter() {
                assert_eq!(lazy.clone().get(key), Some(value));
            }
            assert_eq!(raw, eager, "{header:?}");
        }
        assert!(
            noted > 2_000 && looked_up > 1_000 && errors > 1_000,
            "noted {noted}, looked up {looked_up}, errors {errors}"
        );
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
