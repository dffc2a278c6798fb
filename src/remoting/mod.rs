//! The remoting core: library-owned mio event-loop threads, requests matched by opaque,
//! completions that never hang. The only module that touches mio.
//!
//! # Threads
//!
//! A [`RemotingClient`] owns `io_threads` event loops (`rocketmq-io-N`) and `callback_threads`
//! callback threads (`rocketmq-callback-N`).
//!
//! - Each peer address belongs to one event loop (chosen by a hash of the address), which owns
//!   the one TCP connection to it. Any number of requests are in flight on that connection,
//!   matched by `opaque`.
//! - A caller assigns the opaque and encodes the frame on its own thread, then hands it to the
//!   loop over its command queue and wakes the loop. The loop coalesces queued frames into as
//!   few writes as it can, reads until the socket would block, and matches responses to
//!   pending requests.
//! - [`Completion::Handle`] is completed directly on the I/O thread (no user code runs there);
//!   [`Completion::Callback`], [`RequestHandler`]s and [`RemotingClient::execute`] tasks run on
//!   the callback pool, never on an I/O thread. A panicking callback is caught and logged.
//!
//! # Every request ends exactly once
//!
//! With the response, a [`Timeout`](crate::Error::Timeout) naming the address and the timeout,
//! a connection error naming the address ([`Io`](crate::Error::Io) or
//! [`ConnectionClosed`](crate::Error::ConnectionClosed)), or [`Shutdown`](crate::Error::Shutdown).
//! A connection that fails (EOF, reset, a malformed frame, a frame over
//! [`RemotingConfig::max_frame`], a refused or timed-out connect, a host name that does not
//! resolve) fails every request pending on it at once; the next request to that address
//! connects again. A request that times out resets its connection too, unless
//! [`RemotingConfig::close_on_request_timeout`] is off: a peer that stopped answering does not
//! keep a connection whose queued output would go out when it wakes. A connection's queued
//! output is capped ([`RemotingConfig::max_connection_output_bytes`]); a request over the cap
//! fails at once.
//!
//! # Addresses
//!
//! `host:port`, the host an IP address or a name. A name is looked up again on every connect
//! (so a peer whose name moves to a new IP is reached there after a reconnect), on a lookup
//! thread of its own (`rocketmq-resolve`): neither the caller (an asynchronous request returns
//! at once) nor the event loop waits for it. The lookup counts against the connect timeout; a
//! name that does not resolve fails the request with an [`Io`](crate::Error::Io) error naming
//! the host. The first address found is dialled.
//!
//! # TLS
//!
//! With [`RemotingConfig::tls`] (crate feature `tls`) every connection is a rustls client
//! session driven by its event loop over the same non-blocking socket: no extra thread and no
//! blocking call. The handshake follows the TCP connect under the same deadline
//! ([`RemotingConfig::connect_timeout`]); requests queued meanwhile leave once it is done. A
//! failed handshake (a certificate that does not verify, a peer that does not speak TLS, the
//! deadline) closes the connection with [`ConnectionClosed`](crate::Error::ConnectionClosed)
//! naming the peer and the reason, and every request pending on it ends with that error.
//!
//! # Server-initiated requests
//!
//! A frame from a peer without the response flag is a request (CHECK_TRANSACTION_STATE and the
//! like). It goes to the [`RequestHandler`] on a callback thread; when the request expects a
//! reply, the handler's response is sent back on the same connection with the request's opaque.
//! With no handler, or a handler that returns `None` for a request that expects a reply, the
//! peer gets REQUEST_CODE_NOT_SUPPORTED.
//!
//! A few codes are the library's own business and must not wait for the callback pool (which
//! may be busy with user callbacks): PUSH_REPLY_MESSAGE_TO_CLIENT, the reply to a request of
//! request-reply, must complete the request and be answered even while every callback thread
//! blocks on such a request. The producer registers an inline handler for them
//! (`RemotingClient::set_inline_handler`): it runs on the I/O thread that read the frame, is
//! library code only, never blocks, and its answer is queued on the connection at once.

mod client;
pub mod completion;
mod connection;
mod event_loop;
mod guard;
mod pool;
mod resolve;
mod task;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::protocol::acl::Credentials;
use crate::protocol::{RemotingCommand, SerializeType};

pub(crate) use client::{FrameSpec, TargetMemo};
pub use client::{RemotingClient, MAX_BUSY_POLL};
pub use completion::{pair, Completer, Handle};
pub(crate) use guard::guarded;
pub(crate) use task::PoolJob;
pub use tls::{TlsConfig, TlsTrust};

/// A callback that receives the response to an asynchronous request, on a callback thread.
pub type ResponseCallback = Box<dyn FnOnce(Result<RemotingCommand>) + Send + 'static>;

/// What a request's end is handed to, inside the crate: any response callback, or a boxed
/// value that is its own continuation (an asynchronous send: its box is the request's
/// callback, so an attempt allocates no closure).
pub(crate) trait OnResponse: Send + 'static {
    /// Takes the request's end.
    fn on_response(self: Box<Self>, result: Result<RemotingCommand>);

    /// Takes a response that arrived with a read of its I/O thread: `arrival` says when (one
    /// clock read per read, shared by the responses it brought). A continuation that times
    /// its request overrides this to use that time instead of reading the clock again.
    fn on_response_at(self: Box<Self>, result: Result<RemotingCommand>, arrival: &Arrival) {
        let _ = arrival;
        self.on_response(result);
    }
}

/// When the frames of one read of an event loop arrived: the clock is read once per read, not
/// once per response, and the responses of the read share it (their latencies end there).
/// It also carries what their continuations derive from that time and can hand on to the
/// next one (the second since a statistics epoch it falls in), so that is computed once
/// per read too.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// When the read returned.
    pub(crate) at: std::time::Instant,
    /// A continuation's note for the next: (epoch, whole seconds from it to `at`).
    pub(crate) second: std::cell::Cell<Option<(std::time::Instant, u64)>>,
}

impl Arrival {
    /// Frames that arrived at `at`.
    pub(crate) fn new(at: std::time::Instant) -> Self {
        Arrival {
            at,
            second: std::cell::Cell::new(None),
        }
    }
}

impl<F: FnOnce(Result<RemotingCommand>) + Send + 'static> OnResponse for F {
    fn on_response(self: Box<Self>, result: Result<RemotingCommand>) {
        (*self)(result)
    }
}

/// How an asynchronous request reports its end.
pub enum Completion {
    /// Complete a [`Handle`] (the I/O thread completes it directly: no user code runs).
    Handle(Completer<RemotingCommand>),
    /// Run a callback on the callback pool (never on an I/O thread).
    ///
    /// The callback runs exactly once. If the client shuts down first it gets
    /// [`Error::Shutdown`](crate::Error::Shutdown): on the pool while it still runs, otherwise
    /// on the thread that invoked or shut down the client.
    Callback(ResponseCallback),
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Handle(_) => f.write_str("Completion::Handle"),
            Completion::Callback(_) => f.write_str("Completion::Callback"),
        }
    }
}

/// Handles requests that a server sends to this client (CHECK_TRANSACTION_STATE, NOTIFY_*).
pub trait RequestHandler: Send + Sync + 'static {
    /// Called on a worker thread, never on an I/O thread. `addr` is the peer the request came
    /// from. Return the response for a request that expects one; it is sent on the same
    /// connection with the request's opaque (the response flag is set for you).
    ///
    /// Returning `None` for a request that expects a reply (not oneway) answers
    /// REQUEST_CODE_NOT_SUPPORTED; for a oneway request nothing is sent either way. A panic is
    /// caught and logged, and answered with SYSTEM_ERROR when a reply is expected.
    fn handle_request(&self, addr: &str, request: RemotingCommand) -> Option<RemotingCommand>;
}

/// A handler of broker-initiated requests of one code that runs on the I/O thread itself (see
/// the module docs): library code only, quick, never blocking, never running user code. Its
/// return value is the response, as for [`RequestHandler::handle_request`].
pub(crate) type InlineHandler =
    Arc<dyn Fn(&str, RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// The inline handlers of a client, by request code; shared with its event loops.
#[derive(Default)]
pub(crate) struct InlineHandlers(parking_lot::RwLock<Vec<(i32, InlineHandler)>>);

impl InlineHandlers {
    /// The handler for `code`, if any.
    pub(crate) fn get(&self, code: i32) -> Option<InlineHandler> {
        let handlers = self.0.read();
        if handlers.is_empty() {
            return None;
        }
        handlers
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, h)| h.clone())
    }

    /// Installs `handler` for `code`, replacing an earlier one.
    pub(crate) fn set(&self, code: i32, handler: InlineHandler) {
        let mut handlers = self.0.write();
        handlers.retain(|(c, _)| *c != code);
        handlers.push((code, handler));
    }

    /// Removes every handler (at shutdown: they may hold their owner).
    pub(crate) fn clear(&self) {
        self.0.write().clear();
    }
}

impl std::fmt::Debug for InlineHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes: Vec<i32> = self.0.read().iter().map(|(c, _)| *c).collect();
        f.debug_tuple("InlineHandlers").field(&codes).finish()
    }
}

/// Settings of a [`RemotingClient`].
#[derive(Debug, Clone)]
pub struct RemotingConfig {
    /// Event-loop threads (`rocketmq-io-N`). At least 1.
    pub io_threads: usize,
    /// Callback threads (`rocketmq-callback-N`). At least 1.
    pub callback_threads: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Largest frame accepted from a peer, length prefix included.
    pub max_frame: usize,
    /// Header serialization of the requests this client sends.
    pub serialize_type: SerializeType,
    /// ACL credentials: when set, every request this client sends (not the responses it
    /// gives to a server's requests) is signed with them just before it is encoded
    /// ([`crate::protocol::acl`]). Default `None`.
    pub credentials: Option<Credentials>,
    /// Whether a request that times out closes its connection (Java's
    /// `clientCloseSocketIfTimeout`, default true): a peer that stopped answering (a paused
    /// process, a dropped route) loses the connection, every request pending on it fails at
    /// once, and the output queued for it is dropped instead of going out when the peer wakes.
    /// The next request connects again.
    ///
    /// The connection is reset (`SO_LINGER` 0) rather than closed gracefully, so that what the
    /// kernel still holds for the peer is discarded too.
    pub close_on_request_timeout: bool,
    /// TCP keepalive on every connection: `Some(idle)` turns `SO_KEEPALIVE` on, with the first
    /// probe after `idle` without traffic and the next ones `idle` apart (where the platform
    /// lets the times be set; the probe count is the system's). `None` leaves it off.
    pub tcp_keepalive: Option<Duration>,
    /// The most bytes a connection may hold queued for its socket (written by callers, not yet
    /// taken by the kernel). A request that would go over fails at once with a retriable
    /// [`Error::Io`](crate::Error::Io) naming the peer, and nothing of it is queued. A frame
    /// is always accepted by an empty queue, so any frame size can be sent.
    pub max_connection_output_bytes: usize,
    /// TLS for every connection (name servers and brokers), or `None` for plain TCP (the
    /// default). Needs the crate feature `tls`; without it [`RemotingClient::new`] refuses a
    /// configuration that sets this.
    pub tls: Option<TlsConfig>,
    /// How long a thread blocked on a synchronous request ([`RemotingClient::invoke_sync`],
    /// the producer's `send`) spins on its result before it parks (default zero: it parks at
    /// once). On a caller with a core of its own, an answer within the spin is taken without
    /// the thread being put to sleep and woken again, which shortens the round trip by the
    /// scheduler's wake-up latency; on shared cores the spin takes CPU from the threads that
    /// would produce the answer, and can lose. The result, the timeout and every error are
    /// the same either way.
    pub busy_poll: Duration,
}

/// Default [`RemotingConfig::tcp_keepalive`]: 30 s.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// Default [`RemotingConfig::max_connection_output_bytes`]: 128 MiB (above the default
/// 100 MiB bound on asynchronous sends in flight, so backpressure acts before the cap does).
pub const DEFAULT_MAX_CONNECTION_OUTPUT_BYTES: usize = 128 * 1024 * 1024;

impl Default for RemotingConfig {
    fn default() -> Self {
        RemotingConfig {
            io_threads: 1,
            callback_threads: 2,
            connect_timeout: Duration::from_secs(3),
            max_frame: crate::protocol::frame::DEFAULT_MAX_FRAME,
            serialize_type: SerializeType::Json,
            credentials: None,
            close_on_request_timeout: true,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            max_connection_output_bytes: DEFAULT_MAX_CONNECTION_OUTPUT_BYTES,
            tls: None,
            busy_poll: Duration::ZERO,
        }
    }
}

/// The state of the connection to one address, as seen by its event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// A TCP connect is under way.
    Connecting,
    /// Connected; requests flow.
    Connected,
    /// The last connection failed or was closed; the next request connects again.
    Closed {
        /// Why (the error that closed it).
        reason: String,
    },
}

impl ConnectionState {
    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}
