//! [`CodecError`]: everything that can be wrong with bytes that should be a frame, a header or
//! a message.

use std::fmt;

/// Everything that can be wrong with bytes that should be a frame, a header or a message.
///
/// Decoding never panics: any input yields a value or one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix is negative.
    NegativeLength(i32),
    /// The frame (length prefix included) is over the limit.
    FrameTooLarge {
        /// The frame length, prefix included.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is too short to hold the header-length word.
    FrameTooShort(usize),
    /// The header length points past the end of the frame.
    HeaderLengthExceedsFrame {
        /// The header length from the frame.
        header_len: usize,
        /// The bytes the frame has after the header-length word.
        available: usize,
    },
    /// A header over 16 MiB - 1 cannot be encoded.
    HeaderTooLarge(usize),
    /// The serialize-type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    UnknownSerializeType(u8),
    /// The JSON header (or a JSON body) is not what it should be.
    Json(String),
    /// The binary header is truncated or inconsistent; says where.
    BinaryHeader(&'static str),
    /// A required field is missing.
    MissingField(&'static str),
    /// A field is present but cannot be parsed.
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The value found (cut to 64 characters).
        value: String,
    },
    /// A message body or id is malformed; says what.
    Malformed(String),
    /// A stored message's body is compressed with a codec this crate does not decode (the
    /// compression type bits of its sysFlag: 1 is LZ4, 2 is ZSTD; only zlib, 0 and 3, is
    /// decoded).
    UnsupportedCompression(i32),
    /// A stored message's compressed body inflates to more than the limit (the maximum message
    /// size): decoding stops there rather than allocate without bound.
    InflatedBodyTooLarge {
        /// The limit, in bytes.
        max: usize,
    },
}

impl CodecError {
    /// An [`CodecError::InvalidField`], the value cut to 64 characters.
    pub fn invalid(field: &'static str, value: &str) -> CodecError {
        CodecError::InvalidField {
            field,
            value: value.chars().take(64).collect(),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NegativeLength(n) => write!(f, "negative frame length {n}"),
            CodecError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
            CodecError::FrameTooShort(n) => write!(f, "frame of {n} bytes has no header length"),
            CodecError::HeaderLengthExceedsFrame {
                header_len,
                available,
            } => write!(
                f,
                "header length {header_len} exceeds the {available} bytes left in the frame"
            ),
            CodecError::HeaderTooLarge(n) => {
                write!(f, "header of {n} bytes is over the 16 MiB limit")
            }
            CodecError::UnknownSerializeType(t) => write!(f, "unknown serialize type {t}"),
            CodecError::Json(e) => write!(f, "bad JSON: {e}"),
            CodecError::BinaryHeader(what) => write!(f, "bad binary header: {what}"),
            CodecError::MissingField(name) => write!(f, "missing field {name}"),
            CodecError::InvalidField { field, value } => {
                write!(f, "invalid value {value:?} for field {field}")
            }
            CodecError::Malformed(what) => write!(f, "malformed: {what}"),
            CodecError::UnsupportedCompression(t) => {
                let name = match t {
                    1 => "LZ4",
                    2 => "ZSTD",
                    _ => "an unknown codec",
                };
                write!(
                    f,
                    "the body is compressed with {name} (compression type {t}); \
                     only zlib bodies can be inflated"
                )
            }
            CodecError::InflatedBodyTooLarge { max } => write!(
                f,
                "the compressed body inflates to more than the limit of {max} bytes"
            ),
        }
    }
}

impl std::error::Error for CodecError {}
