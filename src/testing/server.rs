//! The network side of a mock node: a listener, a thread per connection, pipelined replies,
//! and the socket-level faults. Plain `std::net` with blocking threads: nothing here is shared
//! with the client's mio event loop, so a bug in one cannot hide in the other.
//!
//! With TLS (feature `tls`) a connection's socket is wrapped in a rustls server session: the
//! reader thread feeds what it reads into the session and decodes the plaintext; writers
//! encrypt under the connection's lock. Nothing blocks on the lock but socket writes.

use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::node::FrameScratch;
use super::reply::Reply;
use crate::protocol::frame::DEFAULT_MAX_FRAME;
use crate::protocol::{CodecError, RemotingCommand};

/// What the node does with one request.
pub(crate) enum Action {
    /// Nothing goes back (oneway requests, black hole).
    Silent,
    /// Reply at once.
    Reply(Reply),
    /// Reply after a delay, without holding up the connection's other requests.
    Delayed(Reply, Duration),
    /// Write the first half of the reply, then reset the connection.
    ResetMidFrame(Reply),
    /// Write a frame the client cannot decode.
    Malformed,
    /// Close the connection.
    Close,
}

/// Decides what to do with each request; implemented by the node.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// Answers a whole frame (without its length prefix) straight from its bytes, appending
    /// any response to `out`: the fast path of the common request. `false` if it does not take
    /// this frame, and then nothing was done: it is decoded and goes to
    /// [`Dispatch::dispatch`]. `scratch` is what the connection keeps for the dispatcher's use.
    fn dispatch_frame(
        &self,
        _conn: &Arc<Conn>,
        _frame: &[u8],
        _out: &mut Vec<u8>,
        _scratch: &mut FrameScratch,
    ) -> bool {
        false
    }

    fn dispatch(&self, conn: &Arc<Conn>, request: RemotingCommand) -> Action;
}

/// The TLS server configuration of a node, if it serves TLS.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerTls {
    #[cfg(feature = "tls")]
    pub(crate) config: Option<Arc<rustls::ServerConfig>>,
}

/// The write side of a connection: the socket, and the TLS session when there is one.
#[derive(Debug)]
enum Wire {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(TcpStream, Box<rustls::ServerConnection>),
}

impl Wire {
    fn new(socket: TcpStream, _tls: &ServerTls) -> io::Result<Wire> {
        #[cfg(feature = "tls")]
        if let Some(config) = &_tls.config {
            let mut session = rustls::ServerConnection::new(config.clone())
                .map_err(|e| io::Error::other(e.to_string()))?;
            // Writers never wait for the reader: unbounded buffers (test traffic only).
            session.set_buffer_limit(None);
            return Ok(Wire::Tls(socket, Box::new(session)));
        }
        Ok(Wire::Plain(socket))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Wire::Plain(socket) => socket.write_all(bytes).and_then(|_| socket.flush()),
            #[cfg(feature = "tls")]
            Wire::Tls(socket, session) => {
                session.writer().write_all(bytes)?;
                while session.wants_write() {
                    session.write_tls(socket)?;
                }
                socket.flush()
            }
        }
    }

    /// Takes bytes read from the socket; appends the plaintext they carry to `plain` (TLS: and
    /// sends the handshake records they call for).
    fn received(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Wire::Plain(_) => {
                plain.extend_from_slice(bytes);
                Ok(())
            }
            #[cfg(feature = "tls")]
            Wire::Tls(socket, session) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    session.read_tls(&mut rest)?;
                    let processed = session.process_new_packets();
                    while session.wants_write() {
                        session.write_tls(socket)?;
                    }
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                    }
                    let mut chunk = [0u8; 16 * 1024];
                    loop {
                        match session.reader().read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => plain.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn shutdown(&self) {
        #[allow(clippy::infallible_destructuring_match)] // one variant without the feature
        let socket = match self {
            Wire::Plain(socket) => socket,
            #[cfg(feature = "tls")]
            Wire::Tls(socket, _) => socket,
        };
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// One accepted connection; other threads write to it (check-backs, delayed replies).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    writer: Mutex<Wire>,
    alive: AtomicBool,
}

impl Conn {
    /// Writes whole frames; `false` if the connection is gone.
    pub(crate) fn write(&self, bytes: &[u8]) -> bool {
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        let mut w = self.writer.lock();
        if w.write_all(bytes).is_err() {
            self.alive.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Sends a command.
    pub(crate) fn send(&self, cmd: &RemotingCommand) -> bool {
        match cmd.to_frame() {
            Ok(frame) => self.write(&frame),
            Err(_) => false,
        }
    }

    /// Whether the connection is plain TCP (not TLS): its socket's bytes are the frames.
    fn is_plain(&self) -> bool {
        matches!(*self.writer.lock(), Wire::Plain(_))
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.alive.store(false, Ordering::Release);
        self.writer.lock().shutdown();
    }

    /// A plain connection over loopback for unit tests, and the client's end of it.
    #[cfg(test)]
    pub(crate) fn for_tests() -> (Arc<Conn>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let conn = Conn {
            id: 1,
            peer,
            writer: Mutex::new(Wire::Plain(server)),
            alive: AtomicBool::new(true),
        };
        (Arc::new(conn), client)
    }

    /// Bytes read from the socket -> plaintext (see [`Wire::received`]).
    fn received(&self, bytes: &[u8], plain: &mut Vec<u8>) -> io::Result<()> {
        self.writer.lock().received(bytes, plain)
    }
}

/// A listener that can stop and start again on the same port.
pub(crate) struct Server {
    addr: SocketAddr,
    dispatch: Mutex<Option<Weak<dyn Dispatch>>>,
    running: AtomicBool,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    conns: Mutex<Vec<Arc<Conn>>>,
    next_id: AtomicU64,
    delayer: Arc<Delayer>,
    tls: ServerTls,
}

/// A delayed reply waiting for its time.
struct Delayed {
    at: Instant,
    seq: u64,
    conn: Arc<Conn>,
    reply: Reply,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Earliest first out of a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Sends delayed replies from one thread per server (started on first use), not a thread per
/// reply: a standing delay under a benchmark stays cheap.
#[derive(Default)]
pub(crate) struct Delayer {
    queue: Mutex<(BinaryHeap<Delayed>, u64)>,
    wake: Condvar,
    started: AtomicBool,
}

impl Delayer {
    fn push(self: &Arc<Self>, conn: Arc<Conn>, reply: Reply, delay: Duration) {
        {
            let mut q = self.queue.lock();
            let seq = q.1;
            q.1 += 1;
            q.0.push(Delayed {
                at: Instant::now() + delay,
                seq,
                conn,
                reply,
            });
        }
        self.wake.notify_one();
        if !self.started.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(self);
            let spawned = thread::Builder::new()
                .name("mock-delay".into())
                .spawn(move || delay_loop(weak));
            if let Err(e) = spawned {
                log::error!("mock broker cannot spawn its delay thread: {e}");
                self.started.store(false, Ordering::Release);
            }
        }
    }
}

/// Until the server is gone: waits for the earliest reply's time (at most 50 ms at a time,
/// so the end of the server is noticed), then sends what is due.
fn delay_loop(delayer: Weak<Delayer>) {
    loop {
        let Some(d) = delayer.upgrade() else { return };
        let mut due = Vec::new();
        {
            let mut q = d.queue.lock();
            let now = Instant::now();
            let wait = q.0.peek().map_or(Duration::from_millis(50), |e| {
                e.at.saturating_duration_since(now)
                    .min(Duration::from_millis(50))
            });
            if !wait.is_zero() {
                d.wake.wait_for(&mut q, wait);
            }
            let now = Instant::now();
            while q.0.peek().is_some_and(|e| e.at <= now) {
                if let Some(e) = q.0.pop() {
                    due.push(e);
                }
            }
        }
        drop(d);
        for e in due {
            e.conn.send(&e.reply.into_command());
        }
    }
}

impl Server {
    /// Binds `ip`:0 (or `port`); serving starts with [`Server::start`].
    pub(crate) fn bind(
        ip: IpAddr,
        port: u16,
        tls: ServerTls,
    ) -> io::Result<(Arc<Server>, TcpListener)> {
        let listener = TcpListener::bind((ip, port))?;
        let addr = listener.local_addr()?;
        Ok((
            Arc::new(Server {
                addr,
                dispatch: Mutex::new(None),
                running: AtomicBool::new(false),
                acceptor: Mutex::new(None),
                conns: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                delayer: Arc::new(Delayer::default()),
                tls,
            }),
            listener,
        ))
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Starts accepting on `listener` (bound to this server's address).
    pub(crate) fn start(
        self: &Arc<Self>,
        listener: TcpListener,
        dispatch: Weak<dyn Dispatch>,
    ) -> io::Result<()> {
        *self.dispatch.lock() = Some(dispatch);
        self.running.store(true, Ordering::Release);
        let server = Arc::downgrade(self);
        let handle = thread::Builder::new()
            .name(format!("mock-accept-{}", self.addr.port()))
            .spawn(move || accept_loop(server, listener))?;
        *self.acceptor.lock() = Some(handle);
        Ok(())
    }

    /// Stops accepting and closes every connection.
    pub(crate) fn stop(&self) {
        if !self.running.swap(false, Ordering::AcqRel) {
            return;
        }
        // Unblock the acceptor: it sees `running == false` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.lock().take() {
            let _ = h.join();
        }
        self.close_connections();
    }

    /// Binds the same port again and serves.
    pub(crate) fn restart(self: &Arc<Self>) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = bind_retrying(self.addr)?;
        let dispatch = self
            .dispatch
            .lock()
            .clone()
            .ok_or_else(|| io::Error::other("server was never started"))?;
        self.start(listener, dispatch)
    }

    pub(crate) fn close_connections(&self) {
        let conns = std::mem::take(&mut *self.conns.lock());
        for c in conns {
            c.close();
        }
    }

    /// Connections accepted since the server was bound.
    pub(crate) fn accepted(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed) - 1
    }

    /// Live connections.
    pub(crate) fn connections(&self) -> Vec<Arc<Conn>> {
        self.conns
            .lock()
            .iter()
            .filter(|c| c.is_alive())
            .cloned()
            .collect()
    }
}

fn bind_retrying(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..100 {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => {
                last = Some(e);
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("bind failed")))
}

fn accept_loop(server: Weak<Server>, listener: TcpListener) {
    for stream in listener.incoming() {
        let Some(srv) = server.upgrade() else { return };
        if !srv.is_running() {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let (Ok(peer), Ok(writer)) = (stream.peer_addr(), stream.try_clone()) else {
            continue;
        };
        let writer = match Wire::new(writer, &srv.tls) {
            Ok(w) => w,
            Err(e) => {
                log::error!("mock broker cannot start a TLS session: {e}");
                continue;
            }
        };
        let conn = Arc::new(Conn {
            id: srv.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            writer: Mutex::new(writer),
            alive: AtomicBool::new(true),
        });
        {
            let mut conns = srv.conns.lock();
            conns.retain(|c| c.is_alive());
            conns.push(conn.clone());
        }
        let Some(dispatch) = srv.dispatch.lock().as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let delayer = srv.delayer.clone();
        let spawned = thread::Builder::new()
            .name(format!("mock-conn-{}", srv.addr.port()))
            .spawn(move || serve(conn, stream, dispatch, delayer));
        if let Err(e) = spawned {
            log::error!("mock broker cannot spawn a connection thread: {e}");
        }
    }
}

/// The frames a connection has read and not yet handled: one buffer that the socket reads into
/// directly (plain TCP; TLS appends the plaintext), handed out a whole frame at a time as a
/// slice, with the length checks of [`crate::protocol::FrameDecoder`].
struct Frames {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Free room the buffer keeps for one read.
const READ_ROOM: usize = 64 * 1024;

impl Frames {
    fn new() -> Frames {
        Frames {
            buf: vec![0; 2 * READ_ROOM],
            start: 0,
            end: 0,
        }
    }

    /// Room for at least [`READ_ROOM`] more bytes at the end.
    fn room(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < READ_ROOM && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_ROOM {
            self.buf.resize(self.end + READ_ROOM, 0);
        }
        &mut self.buf[self.end..]
    }

    fn extend(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = self.room();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            self.end += n;
            rest = &rest[n..];
        }
    }

    /// The next whole frame, without its length prefix: `[proto_and_hdr_len | header | body]`.
    fn next(&mut self) -> Result<Option<&[u8]>, CodecError> {
        let avail = &self.buf[self.start..self.end];
        let Some(len) = avail.get(..4) else {
            return Ok(None);
        };
        let total = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if total < 0 {
            return Err(CodecError::NegativeLength(total));
        }
        let total = total as usize;
        if total.saturating_add(4) > DEFAULT_MAX_FRAME {
            return Err(CodecError::FrameTooLarge {
                len: total + 4,
                max: DEFAULT_MAX_FRAME,
            });
        }
        if total < 4 {
            return Err(CodecError::FrameTooShort(total));
        }
        if avail.len() < 4 + total {
            if self.start + 4 + total > self.buf.len() {
                // Make the whole frame fit.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < 4 + total + READ_ROOM {
                    self.buf.resize(4 + total + READ_ROOM, 0);
                }
            }
            return Ok(None);
        }
        let frame = self.start + 4..self.start + 4 + total;
        self.start = frame.end;
        Ok(Some(&self.buf[frame]))
    }
}

/// Reads requests, answers each batch of pipelined requests with one write. A frame the
/// dispatcher answers from its bytes (the fast path) is never decoded.
fn serve(
    conn: Arc<Conn>,
    mut stream: TcpStream,
    dispatch: Arc<dyn Dispatch>,
    delayer: Arc<Delayer>,
) {
    let mut frames = Frames::new();
    let mut tls_buf = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut plain = Vec::new();
    let mut scratch = FrameScratch::default();
    let is_plain = conn.is_plain();
    loop {
        if is_plain {
            let n = match stream.read(frames.room()) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            frames.end += n;
        } else {
            tls_buf.resize(READ_ROOM, 0);
            let n = match stream.read(&mut tls_buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            plain.clear();
            if let Err(e) = conn.received(&tls_buf[..n], &mut plain) {
                log::warn!("mock broker: connection from {} failed: {e}", conn.peer);
                break;
            }
            frames.extend(&plain);
        }
        loop {
            let frame = match frames.next() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("mock broker: bad frame from {}: {e}", conn.peer);
                    conn.close();
                    return;
                }
            };
            if dispatch.dispatch_frame(&conn, frame, &mut out, &mut scratch) {
                continue;
            }
            let request = match RemotingCommand::decode_unprefixed(frame) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("mock broker: bad frame from {}: {e}", conn.peer);
                    conn.close();
                    return;
                }
            };
            match dispatch.dispatch(&conn, request) {
                Action::Silent => {}
                Action::Reply(response) => {
                    if response.encode(&mut out).is_err() {
                        log::error!("mock broker: cannot encode a response");
                    }
                }
                Action::Delayed(response, delay) => {
                    delayer.push(conn.clone(), response, delay);
                }
                Action::ResetMidFrame(response) => {
                    let mut frame = Vec::new();
                    if response.encode(&mut frame).is_ok() {
                        out.extend_from_slice(&frame[..frame.len() / 2]);
                    }
                    conn.write(&out);
                    conn.close();
                    return;
                }
                Action::Malformed => {
                    // A valid length, then an unknown serialize type and junk.
                    out.extend_from_slice(&[0, 0, 0, 6, 0x7f, 0, 0, 2, b'{', b'!']);
                    conn.write(&out);
                    out.clear();
                }
                Action::Close => {
                    conn.write(&out);
                    conn.close();
                    return;
                }
            }
        }
        if !out.is_empty() {
            if !conn.write(&out) {
                break;
            }
            out.clear();
        }
    }
    conn.close();
}
