//! What the threads of a [`RemotingClient`](super::RemotingClient) hand each other: the
//! [`Command`]s that callers and callback threads send an event loop (through its
//! [`LoopShared`] handle), the [`Request`]s inside them and the [`Reply`] each one ends with,
//! and the [`Task`]s that event loops and callers give the callback pool.
//!
//! These types refer to one another in a ring (a request carries a reply, a reply may go to
//! the pool, a server request carries the handle of the loop to answer through), so they live
//! together here; the event loop and the pool both depend on this module and not on each
//! other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::Waker;
use parking_lot::Mutex;

use super::completion::Completer;
use super::guard::run_callback;
use super::{ConnectionState, OnResponse};
use crate::error::{Error, Result};
use crate::protocol::RemotingCommand;

/// Where a request is headed: the address as the caller wrote it (checked to be `host:port`;
/// a host name is looked up on every connect, see `resolve`), and the event loop that owns it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: Arc<str>,
    pub(crate) lp: usize,
    /// The token index of the connection to `addr` when last seen by its loop (only that
    /// loop reads or writes it): a hint that spares the loop a map lookup per request. The
    /// loop checks that the connection there is still this address's before using it.
    pub(crate) conn_hint: AtomicUsize,
}

impl Target {
    /// A target for `addr`, owned by loop `lp`.
    pub(crate) fn new(addr: Arc<str>, lp: usize) -> Self {
        Target {
            addr,
            lp,
            conn_hint: AtomicUsize::new(usize::MAX),
        }
    }
}

/// How a request that expects a response ends.
pub(crate) enum Reply {
    /// Complete a handle, on the I/O thread.
    Handle(Completer<RemotingCommand>),
    /// Run a callback, on the callback pool.
    Callback(CallbackReply),
    /// Run a crate-internal continuation on the thread that ends the request: the I/O thread
    /// for a response, a timeout, a connection error or shutdown; the sending thread when the
    /// loop is gone. It must be quick, must not block and must run no user code; it never
    /// needs a callback thread, so it cannot wait behind user callbacks.
    Inline(CallbackReply),
}

impl Reply {
    pub(crate) fn complete(self, result: Result<RemotingCommand>) {
        match self {
            Reply::Handle(c) => {
                c.complete(result);
            }
            Reply::Callback(c) => c.complete(result),
            Reply::Inline(c) => c.run_here(result),
        }
    }
}

/// A request on its way to the socket.
pub(crate) struct Request {
    pub(crate) target: Arc<Target>,
    pub(crate) frame: Vec<u8>,
    pub(crate) opaque: i32,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Instant,
    /// `None` for a oneway request.
    pub(crate) reply: Option<Reply>,
    /// Its timeout leaves the connection open even when the client closes connections on
    /// request timeouts.
    pub(crate) keep_connection_on_timeout: bool,
}

/// What callers and callback threads send to an event loop.
pub(crate) enum Command {
    /// Send a request.
    Request(Request),
    /// Send the reply to a server-initiated request on the connection it came on.
    Reply {
        token: usize,
        conn_id: u64,
        frame: Vec<u8>,
    },
    /// Close the connection to an address, failing what is pending on it.
    Close(Arc<str>),
    /// The lookup of a connection's host name finished (sent by its lookup thread).
    Resolved {
        token: usize,
        conn_id: u64,
        result: std::io::Result<Vec<SocketAddr>>,
    },
    /// Fail everything with `Shutdown` and stop.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Request(r) => write!(f, "Request({}, opaque {})", r.target.addr, r.opaque),
            Command::Reply { token, .. } => write!(f, "Reply(token {token})"),
            Command::Close(addr) => write!(f, "Close({addr})"),
            Command::Resolved { token, .. } => write!(f, "Resolved(token {token})"),
            Command::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// The handle other threads hold on an event loop: its command channel and waker, and the
/// connection states it publishes. The loop's own state stays in `event_loop`.
#[derive(Debug)]
pub(crate) struct LoopShared {
    tx: Sender<Command>,
    waker: Waker,
    /// Whether the loop is awake (or already woken): a sender calls the waker (a syscall,
    /// and a wake-up of the loop's thread) only when it finds this false, and sets it.
    ///
    /// The loop sets it when it returns from a poll and clears it only just before it blocks
    /// in the next one, then looks at the channel once more ([`LoopShared::going_to_sleep`]):
    /// a command queued while the loop works needs no wake-up, and one queued as it goes to
    /// sleep is either seen by that last look or wakes it (the sender's swap then finds the
    /// flag cleared). No command is left in the channel while the loop sleeps.
    notified: AtomicBool,
    /// Connection state per address, for health snapshots.
    pub(crate) states: Mutex<HashMap<Arc<str>, ConnectionState>>,
}

impl LoopShared {
    /// The handle of a loop that receives on `tx`'s channel and polls with `waker`.
    pub(crate) fn new(tx: Sender<Command>, waker: Waker) -> Self {
        LoopShared {
            tx,
            waker,
            notified: AtomicBool::new(false),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a command and wakes the loop. Gives the command back if the loop has stopped.
    pub(crate) fn send(&self, cmd: Command) -> std::result::Result<(), Command> {
        self.tx.send(cmd).map_err(|e| e.into_inner())?;
        if !self.notified.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake an event loop: {e}");
            }
        }
        Ok(())
    }

    /// Called by the loop when it is about to block in a poll: from now on senders wake it.
    /// Returns whether a command is already waiting (then the loop must not block: it polls
    /// without waiting and drains the channel again, and senders need not wake it).
    pub(crate) fn going_to_sleep(&self, rx: &crossbeam_channel::Receiver<Command>) -> bool {
        self.notified.store(false, Ordering::SeqCst);
        // Pairs with the sender's `swap` (after its `send`): either this look sees the
        // command, or the sender sees the flag cleared and wakes the loop.
        fence(Ordering::SeqCst);
        if rx.is_empty() {
            return false;
        }
        self.notified.store(true, Ordering::Relaxed);
        true
    }

    /// Called by the loop when a poll returns: it drains the channel before it blocks
    /// again, so senders need not wake it until [`LoopShared::going_to_sleep`].
    pub(crate) fn awake(&self) {
        self.notified.store(true, Ordering::Relaxed);
    }
}

/// Work for a callback thread.
pub(crate) enum Task {
    /// An arbitrary task from `execute`.
    Run(Box<dyn FnOnce() + Send + 'static>),
    /// A response callback with its result.
    Respond(Box<dyn OnResponse>, Result<RemotingCommand>),
    /// A request a peer sent us.
    Serve(ServerRequest),
}

/// A request from a peer, and how to answer it on the same connection.
pub(crate) struct ServerRequest {
    pub(crate) addr: Arc<str>,
    pub(crate) token: usize,
    pub(crate) conn_id: u64,
    pub(crate) request: RemotingCommand,
    pub(crate) reply_to: Arc<LoopShared>,
}

/// A response callback that runs exactly once: with the result when completed, with
/// `Shutdown` when dropped unfinished. It runs on the pool while the pool takes tasks, and on
/// the current thread once the pool is gone (or always, when made without a pool: the
/// crate's inline continuations).
pub(crate) struct CallbackReply {
    callback: Option<Box<dyn OnResponse>>,
    pool: Option<Sender<Task>>,
}

impl CallbackReply {
    pub(crate) fn new(callback: Box<dyn OnResponse>, pool: Option<Sender<Task>>) -> Self {
        CallbackReply {
            callback: Some(callback),
            pool,
        }
    }

    pub(crate) fn complete(mut self, result: Result<RemotingCommand>) {
        self.dispatch(result);
    }

    /// Runs the callback on this thread (a panic is caught and logged).
    pub(crate) fn run_here(mut self, result: Result<RemotingCommand>) {
        if let Some(callback) = self.callback.take() {
            run_callback(callback, result);
        }
    }

    fn dispatch(&mut self, result: Result<RemotingCommand>) {
        let Some(callback) = self.callback.take() else {
            return;
        };
        let task = Task::Respond(callback, result);
        let task = match self.pool.take() {
            Some(pool) => match pool.send(task) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => task,
        };
        // The pool is gone: run it here rather than lose it.
        if let Task::Respond(callback, result) = task {
            run_callback(callback, result);
        }
    }
}

impl Drop for CallbackReply {
    fn drop(&mut self) {
        if self.callback.is_some() {
            self.dispatch(Err(Error::Shutdown));
        }
    }
}
