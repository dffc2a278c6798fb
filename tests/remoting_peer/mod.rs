//! Scripted `std::net` peers for the remoting tests: a listener on 127.0.0.1:0 and blocking
//! frame I/O on the accepted connections.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::frame::FLAG_RESPONSE;
use rocketmq_mio::protocol::RemotingCommand;

/// How long a peer waits for anything before the test is declared stuck.
pub const STUCK: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// A listening peer.
pub struct Peer {
    listener: TcpListener,
    addr: String,
}

impl Peer {
    pub fn bind() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        Peer { listener, addr }
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Accepts the next connection (panics if none comes within [`STUCK`]).
    pub fn accept(&self) -> PeerConn {
        self.try_accept(STUCK).expect("no connection came")
    }

    /// Accepts a connection if one comes within `within`.
    pub fn try_accept(&self, within: Duration) -> Option<PeerConn> {
        let deadline = Instant::now() + within;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(STUCK)).unwrap();
                    stream.set_nodelay(true).unwrap();
                    return Some(PeerConn {
                        stream,
                        read_buf: Vec::new(),
                        write_buf: Vec::new(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// One accepted connection.
pub struct PeerConn {
    pub stream: TcpStream,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
}

impl PeerConn {
    /// Reads one whole frame and decodes it.
    pub fn read_cmd(&mut self) -> io::Result<RemotingCommand> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let total = u32::from_be_bytes(len) as usize;
        self.read_buf.resize(total, 0);
        self.stream.read_exact(&mut self.read_buf)?;
        RemotingCommand::decode_unprefixed(&self.read_buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    pub fn write_cmd(&mut self, cmd: &RemotingCommand) {
        self.write_buf.clear();
        cmd.encode(&mut self.write_buf).unwrap();
        self.stream.write_all(&self.write_buf).unwrap();
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Answers `request` with `code`, echoing its body.
    pub fn answer(&mut self, request: &RemotingCommand, code: i32) {
        self.write_cmd(&echo_response(request, code));
    }

    /// Whether the client closed the connection (EOF within `within`).
    pub fn sees_eof(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 1];
        let eof = matches!(self.stream.read(&mut b), Ok(0));
        self.stream.set_read_timeout(Some(STUCK)).unwrap();
        eof
    }
}

/// A response to `request` with `code` and its body, the request's code in ext field "req".
pub fn echo_response(request: &RemotingCommand, code: i32) -> RemotingCommand {
    let mut r = RemotingCommand::response(code, request.opaque).with_body(request.body.clone());
    r.ext_fields.insert("req", request.code.to_string());
    r.flag = FLAG_RESPONSE;
    r
}

/// A peer that answers every request on every connection with SUCCESS, echoing the body.
/// Its threads run until the test process ends.
pub fn spawn_echo() -> String {
    let peer = Peer::bind();
    let addr = peer.addr();
    thread::spawn(move || loop {
        let Some(mut conn) = peer.try_accept(Duration::from_secs(3600)) else {
            return;
        };
        thread::spawn(move || {
            while let Ok(req) = conn.read_cmd() {
                if !req.is_oneway() {
                    conn.answer(&req, 0);
                }
            }
        });
    });
    addr
}

/// A listener whose accept queue is full: connects to it hang (the kernel drops further SYNs).
/// Keep the listener and the filler connections alive for as long as connects must hang;
/// the address is the listener's.
pub fn hanging_listener() -> (TcpListener, Vec<TcpStream>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filler = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
        filler.push(s);
        assert!(filler.len() < 10_000, "the accept queue never filled");
    }
    (listener, filler, addr.to_string())
}
