//! One TCP connection of an event loop: its socket, output buffer, read buffer and framing.
//!
//! Output: queued frames wait in a queue as the buffers they were encoded in (no copy), and a
//! burst of requests leaves in as few vectored writes (`writev`, up to [`MAX_IOV`] frames
//! each) as the socket allows; a frame the socket took only part of is continued where it
//! stopped, so frames leave whole and in order. A written frame's buffer is handed back (to
//! the frame pool). Write interest is registered only while output is left over. Input: reads go straight into a reused buffer, whole frames are decoded from it
//! in place, and the buffer grows only for a frame that does not fit (up to the frame limit).
//!
//! TLS: a connection with a [`TlsSession`] has the same phases plus a handshake between the
//! TCP connect and `Connected` (under the same deadline). Its frames are copied into one
//! plaintext buffer that the session encrypts as the socket takes records; its reads go through the session
//! into the same read buffer. The event loop sees one read/flush interface either way.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use byteorder::{BigEndian, ByteOrder};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::tls::TlsSession;
use crate::error::Error;
use crate::protocol::{CodecError, RemotingCommand};

/// Initial (and shrink-to) size of the read buffer.
const READ_BUF: usize = 64 * 1024;
/// Most frames handed to one vectored write.
pub(crate) const MAX_IOV: usize = 64;
/// An idle buffer above this size is shrunk back.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The peer's host name is being looked up (no socket yet); the connect that follows has
    /// the same deadline.
    Resolving { deadline: Instant },
    /// Connect under way; fails if not done by the deadline.
    Connecting { deadline: Instant },
    /// TCP connected, TLS handshake under way; fails if not done by the (connect) deadline.
    Handshaking { deadline: Instant },
    /// Connected (and the TLS handshake, if any, done).
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
    /// A request on it timed out, and the client closes connections on request timeouts.
    RequestTimedOut(Duration),
    /// TLS failed: the handshake (a certificate that does not verify, no common protocol) or
    /// a record from the peer.
    Tls(String),
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
                source: crate::error::copy_io_error(e),
            },
            Failure::Codec(e) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: format!("bad frame from the peer: {e}"),
            },
            Failure::Local(why) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: (*why).to_owned(),
            },
            Failure::RequestTimedOut(after) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: format!(
                    "a request on it got no answer within {after:?}, so the connection was \
                     reset (close_on_request_timeout)"
                ),
            },
            Failure::Tls(why) => Error::ConnectionClosed {
                addr: addr.to_owned(),
                reason: why.clone(),
            },
        }
    }
}

/// Socket options of a connected stream: `TCP_NODELAY`, and TCP keepalive when `keepalive` is
/// set (first probe after that much idle time, then probes that far apart, where the platform
/// lets the times be set). Failures are logged: the connection works without them.
pub(crate) fn configure_socket(stream: &TcpStream, addr: &str, keepalive: Option<Duration>) {
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("cannot set TCP_NODELAY on {addr}: {e}");
    }
    let Some(idle) = keepalive else {
        return;
    };
    let params = socket2::TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let params = params.with_interval(idle);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        log::warn!("cannot turn TCP keepalive on for {addr}: {e}");
    }
}

/// Frames up to which a vectored write uses a small array of slices.
const FEW_IOV: usize = 4;

/// One vectored write of the first `N` (at most) of `frames`, the first from `front_pos`.
#[inline]
fn write_frames<const N: usize>(
    stream: &mut TcpStream,
    frames: &VecDeque<Vec<u8>>,
    front_pos: usize,
) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut n = 0;
    for (slot, frame) in slices.iter_mut().zip(frames) {
        let from = if n == 0 { front_pos } else { 0 };
        *slot = IoSlice::new(frame.get(from..).unwrap_or_default());
        n += 1;
    }
    stream.write_vectored(slices.get(..n).unwrap_or_default())
}

/// One connection to one address.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Unique among the connections of a client's lifetime (tokens are reused, ids are not).
    pub(crate) id: u64,
    pub(crate) addr: Arc<str>,
    /// `None` while the address is being resolved.
    pub(crate) stream: Option<TcpStream>,
    pub(crate) phase: Phase,
    /// Whether the conn is in the loop's dirty list.
    pub(crate) dirty: bool,
    /// TLS only: plaintext waiting for the session (frames are copied in).
    out: Vec<u8>,
    out_pos: usize,
    /// Plain TCP: the frames waiting for the socket, in order; the front one has had its
    /// first `front_pos` bytes written.
    frames: VecDeque<Vec<u8>>,
    front_pos: usize,
    /// Bytes of `frames` not written yet.
    frames_left: usize,
    write_interest: bool,
    input: ReadBuf,
    /// The TLS session of a TLS connection (boxed: rustls state is large).
    tls: Option<Box<TlsSession>>,
}

impl Conn {
    /// A connection whose connect was just started; registered for read and write (the
    /// connect completes with a writable event). With `tls`, the handshake follows the
    /// connect, under the same deadline.
    pub(crate) fn connecting(
        id: u64,
        addr: Arc<str>,
        stream: TcpStream,
        deadline: Instant,
        max_frame: usize,
        tls: Option<TlsSession>,
    ) -> Self {
        Conn {
            id,
            addr,
            stream: Some(stream),
            phase: Phase::Connecting { deadline },
            dirty: false,
            out: Vec::new(),
            out_pos: 0,
            frames: VecDeque::new(),
            front_pos: 0,
            frames_left: 0,
            write_interest: true,
            input: ReadBuf::new(max_frame),
            tls: tls.map(Box::new),
        }
    }

    /// A connection whose address is being looked up: requests queue on it; it has no socket
    /// until [`Conn::start_connect`].
    pub(crate) fn resolving(
        id: u64,
        addr: Arc<str>,
        deadline: Instant,
        max_frame: usize,
        tls: Option<TlsSession>,
    ) -> Self {
        Conn {
            id,
            addr,
            stream: None,
            phase: Phase::Resolving { deadline },
            dirty: false,
            out: Vec::new(),
            out_pos: 0,
            frames: VecDeque::new(),
            front_pos: 0,
            frames_left: 0,
            write_interest: true,
            input: ReadBuf::new(max_frame),
            tls: tls.map(Box::new),
        }
    }

    /// The deadline of the lookup or connect under way, if one is.
    pub(crate) fn connect_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Resolving { deadline }
            | Phase::Connecting { deadline }
            | Phase::Handshaking { deadline } => Some(deadline),
            Phase::Connected => None,
        }
    }

    /// Takes the socket of a connect started once the address was resolved, and registers it
    /// (read and write: the connect completes with a writable event). The deadline stays.
    pub(crate) fn start_connect(
        &mut self,
        mut stream: TcpStream,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let deadline = self.connect_deadline().unwrap_or_else(Instant::now);
        self.stream = Some(stream);
        self.phase = Phase::Connecting { deadline };
        self.write_interest = true;
        Ok(())
    }

    /// Checks whether the connect (and the TLS handshake) finished: `Ok(true)` connected,
    /// `Ok(false)` not yet.
    pub(crate) fn finish_connect(&mut self) -> Result<bool, Failure> {
        match self.phase {
            Phase::Connected => Ok(true),
            Phase::Resolving { .. } => Ok(false),
            Phase::Connecting { deadline } => {
                if !self.finish_tcp_connect()? {
                    return Ok(false);
                }
                if self.tls.is_none() {
                    self.phase = Phase::Connected;
                    return Ok(true);
                }
                self.phase = Phase::Handshaking { deadline };
                self.handshake()
            }
            Phase::Handshaking { .. } => self.handshake(),
        }
    }

    fn handshake(&mut self) -> Result<bool, Failure> {
        let (Some(tls), Some(stream)) = (self.tls.as_mut(), self.stream.as_mut()) else {
            return Ok(false);
        };
        if tls.handshake(stream)? {
            self.phase = Phase::Connected;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the TCP connect finished: `Ok(true)` connected, `Ok(false)` not yet.
    fn finish_tcp_connect(&mut self) -> Result<bool, Failure> {
        let Some(stream) = &self.stream else {
            return Ok(false); // still resolving
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Err(Failure::Io(e)),
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Failure::Io(e)),
        }
    }

    /// Whether this is a TLS connection.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Tells a TLS peer that the connection ends (one non-blocking attempt; plain: nothing).
    pub(crate) fn close_notify(&mut self) {
        if let (Some(tls), Some(stream)) = (self.tls.as_mut(), self.stream.as_mut()) {
            tls.close_notify(stream);
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Queues a whole frame for the socket, after every frame queued before it. Plain TCP
    /// keeps the buffer itself until it is written (`None`); TLS copies the frame into its
    /// plaintext buffer and gives the buffer straight back (`Some`).
    #[inline]
    pub(crate) fn queue(&mut self, frame: Vec<u8>) -> Option<Vec<u8>> {
        if self.tls.is_none() {
            self.frames_left += frame.len();
            self.frames.push_back(frame);
            return None;
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(&frame);
        Some(frame)
    }

    /// Whether output is waiting for the socket (frames, or TLS records).
    pub(crate) fn has_output(&self) -> bool {
        !self.frames.is_empty()
            || self.out_pos < self.out.len()
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Bytes queued and not yet taken by the socket.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.out.len() - self.out_pos + self.frames_left
    }

    /// Makes the coming close a reset (`SO_LINGER` 0): what the kernel still holds for the
    /// peer is discarded instead of delivered after the close.
    pub(crate) fn reset_on_close(&self) {
        let Some(stream) = &self.stream else {
            return;
        };
        if let Err(e) = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO)) {
            log::debug!("cannot set SO_LINGER on {}: {e}", self.addr);
        }
    }

    /// Writes queued output until it is all written or the socket would block; the buffer
    /// of each frame written whole goes to `written`.
    pub(crate) fn flush(&mut self, mut written: impl FnMut(Vec<u8>)) -> Result<(), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(()); // flushed once connected
        };
        while !self.frames.is_empty() {
            // A turn usually queues a few frames: a small array then (it is filled in full).
            let wrote = if self.frames.len() == 1 {
                // One frame (a synchronous sender's request): a plain write.
                let frame = self.frames.front().map_or(&[][..], |f| &f[..]);
                stream.write(frame.get(self.front_pos..).unwrap_or_default())
            } else if self.frames.len() <= FEW_IOV {
                write_frames::<FEW_IOV>(stream, &self.frames, self.front_pos)
            } else {
                write_frames::<MAX_IOV>(stream, &self.frames, self.front_pos)
            };
            match wrote {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
                Ok(mut took) => {
                    self.frames_left = self.frames_left.saturating_sub(took);
                    // Whole frames off the front; the rest of a partial one stays.
                    while let Some(front) = self.frames.front() {
                        let left = front.len().saturating_sub(self.front_pos);
                        if left > took {
                            self.front_pos += took;
                            break;
                        }
                        took -= left;
                        self.front_pos = 0;
                        if let Some(frame) = self.frames.pop_front() {
                            written(frame);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        if let Some(tls) = self.tls.as_mut() {
            self.out_pos += tls.flush(stream, &self.out[self.out_pos..])?;
        }
        while self.tls.is_none() && self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
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
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        if want != self.write_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(stream, token, interest)?;
            self.write_interest = want;
        }
        Ok(())
    }

    /// Reads, pushing every whole frame onto `frames`; called until it returns `Ok(false)`,
    /// it reads until the socket would block. Each call makes one read (TLS: every read until
    /// the socket would block) and returns `Ok(true)` when another is due: the caller handles
    /// the frames first, so their header maps go back to the decode pool between reads. Frames
    /// decoded before an error are pushed too: the caller handles them, then closes.
    ///
    /// Unless `to_end`, a read that fills less than the room it was given ends the reading
    /// too: the socket was empty then, and data that arrives later raises a new readiness
    /// event (epoll and kqueue report every arrival; not done on other platforms), so the
    /// read that would only say
    /// "would block" is saved (one syscall per response of a request-response exchange).
    /// With `to_end` (the peer closed its side, or an error), it reads until the socket would
    /// block or ends: no later event would report the end.
    pub(crate) fn read_some(
        &mut self,
        frames: &mut impl FrameSink,
        to_end: bool,
    ) -> Result<bool, Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        if let Some(tls) = self.tls.as_mut() {
            tls.read(stream, &mut self.input, frames)?;
            self.input.shrink_if_idle();
            return Ok(false);
        }
        loop {
            let spare = self.input.spare();
            let room = spare.len();
            match stream.read(spare) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => {
                    self.input.filled(n, frames).map_err(Failure::Codec)?;
                    // Not on Windows: mio's readiness there is only re-armed by a
                    // "would block".
                    if n < room && !to_end && cfg!(unix) {
                        break;
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        self.input.shrink_if_idle();
        Ok(false)
    }

    /// Registers the stream (read and write: the connect completes with a writable event).
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(stream) => {
                registry.register(stream, token, Interest::READABLE | Interest::WRITABLE)
            }
            None => Ok(()),
        }
    }

    /// Deregisters the socket, if there is one.
    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(stream) => registry.deregister(stream),
            None => Ok(()),
        }
    }
}

/// Where a connection's reads hand their frames, one by one as they are decoded (so that the
/// event loop completes a response right there, without moving it through a list first).
pub(crate) trait FrameSink {
    /// Takes a frame as the decoder returned it (so the command is not moved out of the
    /// result on the way); a decoding error is handed back, and fails the read.
    fn frame(&mut self, decoded: Result<RemotingCommand, CodecError>) -> Result<(), CodecError>;
}

/// Frames kept in order.
impl FrameSink for Vec<RemotingCommand> {
    fn frame(&mut self, decoded: Result<RemotingCommand, CodecError>) -> Result<(), CodecError> {
        self.push(decoded?);
        Ok(())
    }
}

/// The read side of a connection: bytes are read straight into `buf[end..]`, and whole frames
/// decoded in place from `buf[start..end]`. The unread tail moves to the front only when the
/// buffer is full, and the buffer grows only for a frame that does not fit.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Length (prefix included) of the incomplete frame at `start`, once known.
    need: usize,
    max_frame: usize,
}

impl ReadBuf {
    pub(crate) fn new(max_frame: usize) -> Self {
        ReadBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            need: 0,
            max_frame,
        }
    }

    /// Room to read into (never empty).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2)
                    .min(self.max_frame)
                    .max(self.need)
                    .max(READ_BUF);
                self.buf.resize(grown, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Takes `n` bytes read into [`ReadBuf::spare`] and decodes every whole frame.
    ///
    /// # Errors
    /// The stream is malformed (negative, too short or over-limit length, bad header); the
    /// connection must be closed. Frames before the bad one are on `frames`.
    pub(crate) fn filled(
        &mut self,
        n: usize,
        frames: &mut impl FrameSink,
    ) -> Result<(), CodecError> {
        self.end += n;
        loop {
            let avail = self.end - self.start;
            if avail < 4 {
                break;
            }
            let total = BigEndian::read_i32(&self.buf[self.start..self.start + 4]);
            if total < 0 {
                return Err(CodecError::NegativeLength(total));
            }
            let len = total as usize + 4;
            if len > self.max_frame {
                return Err(CodecError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            if total < 4 {
                return Err(CodecError::FrameTooShort(total as usize));
            }
            if avail < len {
                self.need = len;
                break;
            }
            let frame = &self.buf[self.start + 4..self.start + len];
            // Handed on as the decoder returns it, the command in it: every move of it is a
            // copy. A frame that does not decode fails the read (the connection is closed).
            let handed = frames.frame(RemotingCommand::decode_unprefixed(frame));
            self.start += len;
            self.need = 0;
            handed?;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Gives back a buffer that grew for a large frame, once it is empty.
    pub(crate) fn shrink_if_idle(&mut self) {
        if self.start == self.end && self.buf.len() > SHRINK_ABOVE {
            self.buf = vec![0; READ_BUF];
            self.start = 0;
            self.end = 0;
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectored writes: frames of every size (empty, one byte, several megabytes), more than
    /// one write's worth, to a peer that reads slowly in odd chunks (so the socket takes
    /// partial frames), arrive whole and in order; each buffer comes back once, in order,
    /// after it was written; the queued byte count stays exact throughout.
    #[test]
    fn vectored_writes_keep_frames_whole_and_in_order() {
        // More frames than one write takes...
        vectored_round(
            (0..3 * MAX_IOV + 7)
                .map(|i| match i % 9 {
                    0 => 0,
                    1 => 1,
                    4 => 3 << 20,
                    n => 17 * n + i,
                })
                .collect(),
        );
        // ...and a few (the small array), each larger than the socket takes at once.
        vectored_round(vec![5 << 20, 1, 4 << 20, 0]);
        vectored_round(vec![6 << 20]);
    }

    fn vectored_round(sizes: Vec<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let (peer, _) = listener.accept().unwrap();
        let mut conn = Conn::connecting(
            1,
            Arc::from(addr.to_string()),
            stream,
            Instant::now() + Duration::from_secs(30),
            1 << 20,
            None,
        );
        let connect_by = Instant::now() + Duration::from_secs(30);
        while !conn.finish_connect().unwrap() {
            assert!(Instant::now() < connect_by, "no connect");
            std::thread::sleep(Duration::from_millis(1));
        }
        let frames: Vec<Vec<u8>> = sizes
            .into_iter()
            .enumerate()
            .map(|(i, n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
            .collect();
        let expected: Vec<u8> = frames.concat();
        let total = expected.len();
        // The reader starts once the first flush has returned: until then the peer reads
        // nothing, so the socket takes at most its buffers (well under the frames of each round)
        // and the first write stops inside a frame whatever the machine's load.
        let (started, start) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut peer = peer;
            let _ = start.recv();
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 70_001];
            let mut step = 1;
            while got.len() < total {
                // Odd, small reads, with pauses: the writer's socket fills up.
                step = step * 7 % 65_521 + 1;
                let n = peer.read(&mut chunk[..step.min(70_001)]).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&chunk[..n]);
                if got.len() % 3 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            got
        });
        let mut queued = 0;
        for f in &frames {
            queued += f.len();
            assert!(
                conn.queue(f.clone()).is_none(),
                "plain TCP keeps the buffer"
            );
            assert_eq!(conn.queued_bytes(), queued);
        }
        let mut back: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut partial = false;
        while conn.has_output() {
            assert!(Instant::now() < deadline, "output never drained");
            conn.flush(|f| back.push(f)).unwrap();
            let _ = started.send(());
            let returned: usize = back.iter().map(Vec::len).sum();
            assert_eq!(conn.queued_bytes(), total - returned - conn.front_pos);
            partial |= conn.front_pos > 0;
            std::thread::sleep(Duration::from_micros(100));
        }
        assert!(partial, "the socket never took part of a frame");
        assert_eq!(back, frames, "buffers back once each, in order");
        assert_eq!(conn.queued_bytes(), 0);
        let got = reader.join().unwrap();
        assert!(got == expected, "bytes out of order or torn");
    }

    fn frames_of(cmds: &[RemotingCommand]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            c.encode(&mut out).unwrap();
        }
        out
    }

    /// Feeds `bytes` in pieces of `piece` bytes (at most what `spare` offers).
    fn feed(
        rb: &mut ReadBuf,
        bytes: &[u8],
        piece: usize,
    ) -> Result<Vec<RemotingCommand>, CodecError> {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let spare = rb.spare();
            let n = piece.min(spare.len()).min(bytes.len() - at);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            at += n;
            rb.filled(n, &mut frames)?;
        }
        Ok(frames)
    }

    fn sample() -> Vec<RemotingCommand> {
        (0..5)
            .map(|i| {
                let mut c =
                    RemotingCommand::response(i, 100 + i).with_body(vec![i as u8; 50 * i as usize]);
                c.ext_fields.insert("k", format!("v{i}"));
                c
            })
            .collect()
    }

    #[test]
    fn configure_socket_turns_keepalive_on_or_leaves_it_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for keepalive in [Some(Duration::from_secs(45)), None] {
            let stream = TcpStream::connect(addr).unwrap();
            let _peer = listener.accept().unwrap();
            configure_socket(&stream, "test", keepalive);
            let sock = socket2::SockRef::from(&stream);
            assert_eq!(sock.keepalive().unwrap(), keepalive.is_some());
            assert!(sock.tcp_nodelay().unwrap());
        }
    }

    #[test]
    fn frames_split_at_every_byte_decode_the_same() {
        let cmds = sample();
        let bytes = frames_of(&cmds);
        for piece in [1, 2, 3, 7, 64, 1000, bytes.len()] {
            let mut rb = ReadBuf::new(1 << 20);
            let got = feed(&mut rb, &bytes, piece).unwrap();
            assert_eq!(got.len(), cmds.len(), "piece {piece}");
            for (g, c) in got.iter().zip(&cmds) {
                assert_eq!((g.code, g.opaque, &g.body), (c.code, c.opaque, &c.body));
                assert_eq!(g.ext_fields.get("k"), c.ext_fields.get("k"));
            }
        }
    }

    #[test]
    fn grows_for_a_large_frame_and_shrinks_back() {
        let big = RemotingCommand::response(0, 1).with_body(vec![9u8; 3 * 1024 * 1024]);
        let bytes = frames_of(&[big]);
        let mut rb = ReadBuf::new(16 << 20);
        let got = feed(&mut rb, &bytes, 100_000).unwrap();
        assert_eq!(got[0].body.len(), 3 * 1024 * 1024);
        assert!(rb.capacity() >= bytes.len());
        rb.shrink_if_idle();
        assert_eq!(rb.capacity(), READ_BUF);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut rb = ReadBuf::new(1024);
        let err = feed(&mut rb, &(-1i32).to_be_bytes(), 4).unwrap_err();
        assert_eq!(err, CodecError::NegativeLength(-1));
        let mut rb = ReadBuf::new(1024);
        let err = feed(&mut rb, &2000u32.to_be_bytes(), 4).unwrap_err();
        assert!(matches!(
            err,
            CodecError::FrameTooLarge {
                len: 2004,
                max: 1024
            }
        ));
        let mut rb = ReadBuf::new(1024);
        let err = feed(&mut rb, &2u32.to_be_bytes(), 4).unwrap_err();
        assert_eq!(err, CodecError::FrameTooShort(2));
    }

    #[test]
    fn good_frames_before_a_bad_one_are_kept() {
        let mut bytes = frames_of(&sample()[..2]);
        bytes.extend_from_slice(&8u32.to_be_bytes());
        bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        let mut rb = ReadBuf::new(1 << 20);
        let mut frames = Vec::new();
        rb.spare()[..bytes.len()].copy_from_slice(&bytes);
        let err = rb.filled(bytes.len(), &mut frames).unwrap_err();
        assert_eq!(err, CodecError::UnknownSerializeType(7));
        assert_eq!(frames.len(), 2);
    }
}
