//! [`RemotingCommand`]: one request or response, its builders, and the frame around its header
//! (length prefix, serialize type, header length, body); each header layout has its own file.

use byteorder::{BigEndian, ByteOrder};

use super::{
    json_memo, CodecError, ExtFields, SerializeType, FLAG_ONEWAY, FLAG_RESPONSE, MAX_HEADER_LEN,
};
use crate::protocol::codes::{LanguageCode, CLIENT_LANGUAGE, CLIENT_VERSION};

/// One request or response of the remoting protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses).
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's version ordinal.
    pub version: i32,
    /// Request id; a response echoes its request's.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway request.
    pub flag: i32,
    /// Free text: the error message of a failed response.
    pub remark: Option<String>,
    /// The custom-header fields.
    pub ext_fields: ExtFields,
    /// The raw body.
    pub body: Vec<u8>,
    /// How the header is (or was) serialized.
    pub serialize_type: SerializeType,
}

impl Default for RemotingCommand {
    fn default() -> Self {
        RemotingCommand {
            code: 0,
            language: CLIENT_LANGUAGE,
            version: CLIENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Vec::new(),
            serialize_type: SerializeType::Json,
        }
    }
}

impl RemotingCommand {
    /// A request with this client's language and version.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            ..Default::default()
        }
    }

    /// A response to the request with `opaque`.
    pub fn response(code: i32, opaque: i32) -> Self {
        RemotingCommand {
            code,
            opaque,
            flag: FLAG_RESPONSE,
            ..Default::default()
        }
    }

    /// Sets the ext fields (builder style).
    pub fn with_ext_fields(mut self, ext_fields: ExtFields) -> Self {
        self.ext_fields = ext_fields;
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the remark (builder style).
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Marks the request oneway (builder style).
    pub fn into_oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// The remark, or `""`.
    pub fn remark_str(&self) -> &str {
        self.remark.as_deref().unwrap_or("")
    }

    /// Appends the whole frame (length prefix included) to `out`.
    ///
    /// # Errors
    /// [`CodecError::HeaderTooLarge`] if the header does not fit in 24 bits of length;
    /// [`CodecError::InvalidField`] for an ext field key over 32 767 bytes in the binary
    /// layout (its length is 16-bit there). `out` is then left as it was. In the binary
    /// layout, `code` and `version` are 16-bit on the wire.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        out.reserve(self.encoded_len_hint());
        out.extend_from_slice(&[0u8; 8]);
        match self.serialize_type {
            SerializeType::Json => self.write_json_header(out),
            SerializeType::RocketMq => {
                if let Err(e) = self.write_binary_header(out) {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        let header_len = out.len() - start - 8;
        if header_len > MAX_HEADER_LEN {
            out.truncate(start);
            return Err(CodecError::HeaderTooLarge(header_len));
        }
        out.extend_from_slice(&self.body);
        let total = out.len() - start - 4;
        BigEndian::write_u32(&mut out[start..start + 4], total as u32);
        let proto = ((self.serialize_type.code() as u32) << 24) | header_len as u32;
        BigEndian::write_u32(&mut out[start + 4..start + 8], proto);
        Ok(())
    }

    /// Encodes the whole frame into a new buffer.
    pub fn to_frame(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode(&mut out)?;
        Ok(out)
    }

    /// About how many bytes [`RemotingCommand::encode`] writes (exact unless values need
    /// escaping).
    pub fn encoded_len_hint(&self) -> usize {
        let fields: usize = self
            .ext_fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum();
        8 + 128 + fields + self.remark.as_ref().map_or(0, |r| r.len() + 12) + self.body.len()
    }

    /// Decodes one frame without its 4-byte length prefix: `[proto_and_hdr_len | header | body]`.
    pub fn decode_unprefixed(frame: &[u8]) -> Result<Self, CodecError> {
        if frame.len() < 4 {
            return Err(CodecError::FrameTooShort(frame.len()));
        }
        let proto = BigEndian::read_u32(&frame[..4]);
        let serialize_type = SerializeType::from_code((proto >> 24) as u8)?;
        let header_len = (proto & MAX_HEADER_LEN as u32) as usize;
        let rest = &frame[4..];
        if header_len > rest.len() {
            return Err(CodecError::HeaderLengthExceedsFrame {
                header_len,
                available: rest.len(),
            });
        }
        let (header, body) = rest.split_at(header_len);
        match serialize_type {
            // Returned as built (the JSON reads build the command where it ends).
            SerializeType::Json => json_memo::decode_json(header, body),
            SerializeType::RocketMq => {
                let mut cmd = Self::read_binary_header(header)?;
                cmd.serialize_type = serialize_type;
                cmd.body = body.to_vec();
                Ok(cmd)
            }
        }
    }

    /// Decodes one whole frame, length prefix included; the prefix must match the slice.
    pub fn decode(frame: &[u8]) -> Result<Self, CodecError> {
        if frame.len() < 4 {
            return Err(CodecError::FrameTooShort(frame.len()));
        }
        let total = BigEndian::read_i32(&frame[..4]);
        if total < 0 {
            return Err(CodecError::NegativeLength(total));
        }
        if total as usize != frame.len() - 4 {
            return Err(CodecError::Malformed(format!(
                "length prefix {total} does not match the {} bytes after it",
                frame.len() - 4
            )));
        }
        Self::decode_unprefixed(&frame[4..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command is moved several times from the decoder to its reader (returned through
    /// the readers, the decoder, the connection): at most 128 bytes it moves in registers
    /// (eight 16-byte moves) where a larger one is a `memcpy` call each time.
    #[test]
    fn a_command_is_at_most_128_bytes() {
        assert!(
            std::mem::size_of::<RemotingCommand>() <= 128,
            "{}",
            std::mem::size_of::<RemotingCommand>()
        );
        assert!(std::mem::size_of::<ExtFields>() <= 48);
    }

    #[test]
    fn round_trip_both_types() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let mut cmd = RemotingCommand::response(2, -7)
                .with_remark("busy \"now\" \u{1} ✓")
                .with_body(vec![1, 2, 3, 0]);
            cmd.ext_fields.insert("i", "TAGS\u{1}a\u{2}");
            cmd.ext_fields.insert("b", "Topic");
            cmd.serialize_type = st;
            let frame = cmd.to_frame().unwrap();
            assert_eq!(RemotingCommand::decode(&frame).unwrap(), cmd);
        }
    }
}
