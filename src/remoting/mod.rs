//! The remoting core: library-owned mio event-loop threads, requests matched by opaque,
//! completions that never hang. The only module that touches mio.
//!
//! OWNER: remoting helper. The public contract below is what the producer is written against;
//! keep these names and signatures (add more freely).

pub mod completion;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::protocol::{RemotingCommand, SerializeType};

pub use completion::{pair, Completer, Handle};

/// A callback that receives the response to an asynchronous request, on a callback thread.
pub type ResponseCallback = Box<dyn FnOnce(Result<RemotingCommand>) + Send + 'static>;

/// How an asynchronous request reports its end.
pub enum Completion {
    /// Complete a [`Handle`] (the I/O thread completes it directly: no user code runs).
    Handle(Completer<RemotingCommand>),
    /// Run a callback on the callback pool (never on an I/O thread).
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
    /// connection with the request's opaque.
    fn handle_request(&self, addr: &str, request: RemotingCommand) -> Option<RemotingCommand>;
}

/// Settings of a [`RemotingClient`].
#[derive(Debug, Clone)]
pub struct RemotingConfig {
    /// Event-loop threads (`rocketmq-io-N`).
    pub io_threads: usize,
    /// Callback threads (`rocketmq-callback-N`).
    pub callback_threads: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Largest frame accepted from a peer, length prefix included.
    pub max_frame: usize,
    /// Header serialization of the requests this client sends.
    pub serialize_type: SerializeType,
}

impl Default for RemotingConfig {
    fn default() -> Self {
        RemotingConfig {
            io_threads: 1,
            callback_threads: 2,
            connect_timeout: Duration::from_secs(3),
            max_frame: crate::protocol::frame::DEFAULT_MAX_FRAME,
            serialize_type: SerializeType::Json,
        }
    }
}

/// The client side of the remoting protocol. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RemotingClient {
    _inner: Arc<()>,
}

impl RemotingClient {
    /// Starts the event-loop and callback threads.
    pub fn new(_config: RemotingConfig) -> Result<Self> {
        todo!("remoting helper")
    }

    /// Installs the handler for server-initiated requests.
    pub fn set_request_handler(&self, _handler: Arc<dyn RequestHandler>) {
        todo!("remoting helper")
    }

    /// Sends `request` to `addr` and blocks until the response, a timeout, a connection error
    /// or shutdown. The opaque is assigned here.
    pub fn invoke_sync(
        &self,
        _addr: &str,
        _request: RemotingCommand,
        _timeout: Duration,
    ) -> Result<RemotingCommand> {
        todo!("remoting helper")
    }

    /// Sends `request` to `addr`; `completion` ends exactly once. Never blocks on the network.
    pub fn invoke_async(
        &self,
        _addr: &str,
        _request: RemotingCommand,
        _timeout: Duration,
        _completion: Completion,
    ) {
        todo!("remoting helper")
    }

    /// Sends a oneway request (flag bit 1 set here). `Ok` once queued for the socket.
    pub fn invoke_oneway(&self, _addr: &str, _request: RemotingCommand) -> Result<()> {
        todo!("remoting helper")
    }

    /// Runs `task` on the callback pool.
    pub fn execute(&self, _task: Box<dyn FnOnce() + Send + 'static>) -> Result<()> {
        todo!("remoting helper")
    }

    /// Stops accepting requests, fails everything pending with `Shutdown`, joins every thread.
    /// Idempotent.
    pub fn shutdown(&self) {
        todo!("remoting helper")
    }
}
