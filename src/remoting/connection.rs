//! One TCP connection of an event loop: its socket, output buffer, read buffer and framing.
//!
//! Output: queued frames are appended to one buffer, so a burst of requests leaves in as few
//! `write` calls as the socket allows; write interest is registered only while output is
//! left over. Input: reads go straight into a reused buffer, whole frames are decoded from it
//! in place, and the buffer grows only for a frame that does not fit (up to the frame limit).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use byteorder::{BigEndian, ByteOrder};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::error::Error;
use crate::protocol::{CodecError, RemotingCommand};

/// Initial (and shrink-to) size of the read buffer.
const READ_BUF: usize = 64 * 1024;
/// An idle buffer above this size is shrunk back.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connect under way; fails if not done by the deadline.
    Connecting { deadline: Instant },
    /// Connected.
    Connected,
}

/// Why a connection is being closed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The peer closed the stream.
    Eof,
    /// A socket call failed.
    Io(io::Error),
    /// The peer sent bytes that are not a frame, or a frame over the limit.
    Codec(CodecError),
    /// Closed on request of the client.
    Local(&'static str),
}

impl Failure {
    /// The error to give every request pending on the connection to `addr`.
    pub(crate) fn to_error(&self, addr: &str) -> Error {
        match self {
            Failure::Eof => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: "closed by the peer".into(),
            },
            Failure::Io(e) => Error::Io {
                addr: addr.to_owned(),
                source: io::Error::new(e.kind(), e.to_string()),
            },
            Failure::Codec(e) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: format!("bad frame from the peer: {e}"),
            },
            Failure::Local(why) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: (*why).to_owned(),
            },
        }
    }
}

/// One connection to one address.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Unique among the connections of a client's lifetime (tokens are reused, ids are not).
    pub(crate) id: u64,
    pub(crate) addr: Arc<str>,
    pub(crate) stream: TcpStream,
    pub(crate) phase: Phase,
    /// Whether the conn is in the loop's dirty list.
    pub(crate) dirty: bool,
    out: Vec<u8>,
    out_pos: usize,
    write_interest: bool,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// Length (prefix included) of the frame at `in_start`, once known and not yet complete.
    need: usize,
    max_frame: usize,
}

impl Conn {
    /// A connection whose connect was just started; registered for read and write (the
    /// connect completes with a writable event).
    pub(crate) fn connecting(
        id: u64,
        addr: Arc<str>,
        stream: TcpStream,
        deadline: Instant,
        max_frame: usize,
    ) -> Self {
        Conn {
            id,
            addr,
            stream,
            phase: Phase::Connecting { deadline },
            dirty: false,
            out: Vec::new(),
            out_pos: 0,
            write_interest: true,
            input: Vec::new(),
            in_start: 0,
            in_end: 0,
            need: 0,
            max_frame,
        }
    }

    /// Checks whether the connect finished: `Ok(true)` connected, `Ok(false)` not yet.
    pub(crate) fn finish_connect(&mut self) -> Result<bool, Failure> {
        match self.stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Err(Failure::Io(e)),
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.phase = Phase::Connected;
                if let Err(e) = self.stream.set_nodelay(true) {
                    log::debug!("cannot set TCP_NODELAY on {}: {e}", self.addr);
                }
                self.input.resize(READ_BUF, 0);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Failure::Io(e)),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Appends a whole frame to the output.
    pub(crate) fn queue(&mut self, frame: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(frame);
    }

    /// Whether output is waiting for the socket.
    pub(crate) fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Writes queued output until it is all written or the socket would block.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > SHRINK_ABOVE {
                self.out = Vec::new();
            }
        } else if self.out_pos > READ_BUF && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Registers write interest exactly while output is left over.
    pub(crate) fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.has_output() || !self.is_connected();
        if want != self.write_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.write_interest = want;
        }
        Ok(())
    }

    /// Reads until the socket would block, pushing every whole frame onto `frames`. Frames
    /// decoded before an error are pushed too: the caller handles them, then closes.
    pub(crate) fn read(&mut self, frames: &mut Vec<RemotingCommand>) -> Result<(), Failure> {
        loop {
            if self.in_end == self.input.len() {
                self.make_room();
            }
            match self.stream.read(&mut self.input[self.in_end..]) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => {
                    self.in_end += n;
                    self.parse(frames)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        if self.in_start == self.in_end && self.input.len() > SHRINK_ABOVE {
            self.input = vec![0; READ_BUF];
            self.in_start = 0;
            self.in_end = 0;
        }
        Ok(())
    }

    /// Moves the unread bytes to the front, and grows the buffer if a frame needs more room.
    fn make_room(&mut self) {
        if self.in_start > 0 {
            self.input.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        if self.in_end == self.input.len() {
            let grown = (self.input.len() * 2)
                .min(self.max_frame)
                .max(self.need)
                .max(READ_BUF);
            self.input.resize(grown, 0);
        }
    }

    /// Decodes the whole frames in the read buffer.
    fn parse(&mut self, frames: &mut Vec<RemotingCommand>) -> Result<(), Failure> {
        loop {
            let avail = self.in_end - self.in_start;
            if avail < 4 {
                break;
            }
            let total = BigEndian::read_i32(&self.input[self.in_start..self.in_start + 4]);
            if total < 0 {
                return Err(Failure::Codec(CodecError::NegativeLength(total)));
            }
            let len = total as usize + 4;
            if len > self.max_frame {
                return Err(Failure::Codec(CodecError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                }));
            }
            if total < 4 {
                return Err(Failure::Codec(CodecError::FrameTooShort(total as usize)));
            }
            if avail < len {
                self.need = len;
                break;
            }
            let body = &self.input[self.in_start + 4..self.in_start + len];
            let cmd = RemotingCommand::decode_unprefixed(body).map_err(Failure::Codec)?;
            self.in_start += len;
            self.need = 0;
            frames.push(cmd);
        }
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
        Ok(())
    }

    /// Registers the stream (read and write: the connect completes with a writable event).
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut self.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }
}
