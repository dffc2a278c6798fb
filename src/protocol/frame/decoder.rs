//! [`FrameDecoder`]: bytes from the stream in any pieces in, whole commands out.

use byteorder::{BigEndian, ByteOrder};

use super::{CodecError, RemotingCommand, DEFAULT_MAX_FRAME};

/// An incremental frame decoder: feed it bytes in any pieces, take whole commands out.
///
/// After an error the decoder is poisoned (the stream cannot be resynchronised); the connection
/// that feeds it must be closed.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    max_frame: usize,
    poisoned: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder with the default 16 MiB frame limit.
    pub fn new() -> Self {
        FrameDecoder::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A decoder that rejects frames (length prefix included) over `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max_frame,
            poisoned: false,
        }
    }

    /// The frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next whole command, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A [`CodecError`] if the stream is malformed; every later call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<RemotingCommand>, CodecError> {
        match self.next_frame_bytes()? {
            None => Ok(None),
            Some((start, end)) => {
                let result = RemotingCommand::decode_unprefixed(&self.buf[start..end]);
                self.pos = end;
                self.compact();
                match result {
                    Ok(cmd) => Ok(Some(cmd)),
                    Err(e) => {
                        self.poisoned = true;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Checks the next frame's length and returns its range (without the length prefix).
    fn next_frame_bytes(&mut self) -> Result<Option<(usize, usize)>, CodecError> {
        if self.poisoned {
            return Err(CodecError::Malformed(
                "stream already failed to decode".into(),
            ));
        }
        let avail = &self.buf[self.pos..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let total = BigEndian::read_i32(&avail[..4]);
        let result = if total < 0 {
            Err(CodecError::NegativeLength(total))
        } else if (total as usize).saturating_add(4) > self.max_frame {
            Err(CodecError::FrameTooLarge {
                len: total as usize + 4,
                max: self.max_frame,
            })
        } else if total < 4 {
            Err(CodecError::FrameTooShort(total as usize))
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.poisoned = true;
            return Err(e);
        }
        let end = 4 + total as usize;
        if avail.len() < end {
            self.buf.reserve(end - avail.len());
            return Ok(None);
        }
        Ok(Some((self.pos + 4, self.pos + end)))
    }

    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_rejects_bad_lengths() {
        let mut d = FrameDecoder::with_max_frame(1024);
        d.feed(&(-5i32).to_be_bytes());
        assert_eq!(d.next_frame(), Err(CodecError::NegativeLength(-5)));
        let mut d = FrameDecoder::with_max_frame(1024);
        d.feed(&2000i32.to_be_bytes());
        assert!(matches!(
            d.next_frame(),
            Err(CodecError::FrameTooLarge { len: 2004, .. })
        ));
        let mut d = FrameDecoder::new();
        d.feed(&[0, 0, 0, 8, 0, 0, 0, 100, 1, 2, 3, 4]);
        assert!(matches!(
            d.next_frame(),
            Err(CodecError::HeaderLengthExceedsFrame {
                header_len: 100,
                ..
            })
        ));
        let mut d = FrameDecoder::new();
        d.feed(&[0, 0, 0, 6, 7, 0, 0, 0, b'{', b'}']);
        assert_eq!(d.next_frame(), Err(CodecError::UnknownSerializeType(7)));
    }
}
