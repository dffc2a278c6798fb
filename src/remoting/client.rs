//! [`RemotingClient`]: the caller-facing side of the event loops and the callback pool.

use crate::hash::FxHashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::completion::pooled_pair;
use super::event_loop::{self, deadline_after, FramePool, LoopConfig};
use super::pool::{self, HandlerSlot};
use super::resolve::{check_syntax, Resolver};
use super::task::{
    CallbackReply, Command, LoopShared, PoolJob, PoolSender, Reply, Request, Target, Task,
};
use super::tls::TlsConnector;
use super::{Completion, ConnectionState, RemotingConfig, RequestHandler};
use crate::error::{Error, Result};
use crate::protocol::frame::{FLAG_ONEWAY, FLAG_RESPONSE};
use crate::protocol::RemotingCommand;

/// The longest [`RemotingConfig::busy_poll`]: 10 ms (a spin is for answers that come within
/// microseconds; longer only burns a core).
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// Request ids, shared by every client of the process (as in the Java client).
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

/// The client side of the remoting protocol. Cheap to clone; the last clone dropped shuts the
/// client down (as [`RemotingClient::shutdown`] does).
///
/// See the [module docs](super) for the threads and the guarantees.
///
/// # Examples
///
/// A round trip to a peer that answers one request (here a `std::net` listener on a thread):
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use rocketmq_mio::protocol::RemotingCommand;
/// use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?.to_string();
/// std::thread::spawn(move || -> std::io::Result<()> {
///     let (mut socket, _) = listener.accept()?;
///     for _ in 0..2 {
///         let mut len = [0u8; 4];
///         socket.read_exact(&mut len)?;
///         let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
///         socket.read_exact(&mut frame)?;
///         let request = RemotingCommand::decode_unprefixed(&frame).expect("a frame");
///         let response = RemotingCommand::response(0, request.opaque).with_body("pong");
///         socket.write_all(&response.to_frame().expect("encodes"))?;
///     }
///     Ok(())
/// });
///
/// let client = RemotingClient::new(RemotingConfig::default())?;
/// let timeout = Duration::from_secs(3);
///
/// // Blocking.
/// let response = client.invoke_sync(&addr, RemotingCommand::request(34), timeout)?;
/// assert_eq!(response.body, b"pong");
///
/// // With a handle: `wait()` it, or `.await` it on any executor.
/// let (completer, handle) = pair();
/// client.invoke_async(&addr, RemotingCommand::request(34), timeout, Completion::Handle(completer));
/// assert_eq!(handle.wait()?.body, b"pong");
///
/// client.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RemotingConfig,
    loops: Vec<LoopHandle>,
    /// Dropped at shutdown: the workers stop once every sender is gone.
    pool_tx: RwLock<Option<PoolSender>>,
    pool_threads: Mutex<Vec<JoinHandle<()>>>,
    handler: Arc<HandlerSlot>,
    /// Server requests answered on the I/O threads themselves.
    inline: Arc<super::InlineHandlers>,
    /// Addresses used so far (syntax checked), with the loop that owns each.
    targets: RwLock<FxHashMap<String, Arc<Target>>>,
    closed: AtomicBool,
    lifecycle: Mutex<Lifecycle>,
    lifecycle_cv: Condvar,
    /// Every thread this client started, to avoid joining oneself.
    own_threads: Vec<ThreadId>,
    pending: Arc<AtomicUsize>,
    frames: Arc<FramePool>,
    /// This client among every client of the process (the key of a thread's
    /// [`LAST_TARGET`]).
    id: u64,
}

/// Numbers the clients ([`Inner::id`]).
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The target of the last address this thread encoded a request for with
    /// [`RemotingClient::encode_request_shared`], with the id of its client and the address
    /// (held: the same pointer is the same address string).
    static LAST_TARGET: std::cell::RefCell<Option<LastTarget>> =
        const { std::cell::RefCell::new(None) };
}

/// A client's id, an address and its target ([`LAST_TARGET`]).
type LastTarget = (u64, Arc<str>, Arc<Target>);

struct LoopHandle {
    shared: Arc<LoopShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Running,
    /// A shutdown is under way on this thread.
    Stopping(ThreadId),
    Stopped,
}

impl RemotingClient {
    /// Starts the event-loop and callback threads.
    ///
    /// # Errors
    /// [`Error::Config`] if a thread count is zero or the frame limit is too small to hold a
    /// frame, or if the threads or pollers cannot be created. With [`RemotingConfig::tls`]:
    /// [`Error::Config`] naming the TLS setting when a certificate or key file cannot be read
    /// or used, or when the crate was built without its `tls` feature.
    pub fn new(config: RemotingConfig) -> Result<Self> {
        Self::with_resolver(config, Resolver::system())
    }

    /// [`RemotingClient::new`] with the given name resolver (tests install their own).
    pub(crate) fn with_resolver(config: RemotingConfig, resolver: Resolver) -> Result<Self> {
        if config.io_threads == 0 {
            return Err(Error::config("io_threads", "must be at least 1"));
        }
        if config.callback_threads == 0 {
            return Err(Error::config("callback_threads", "must be at least 1"));
        }
        if config.max_frame < 16 {
            return Err(Error::config("max_frame", "must be at least 16 bytes"));
        }
        if config.busy_poll > MAX_BUSY_POLL {
            return Err(Error::config(
                "busy_poll",
                format!("must be at most {MAX_BUSY_POLL:?}"),
            ));
        }
        if config.max_connection_output_bytes == 0 {
            return Err(Error::config(
                "max_connection_output_bytes",
                "must be at least 1 byte",
            ));
        }
        if config
            .tcp_keepalive
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return Err(Error::config("tcp_keepalive", "must be at least 1 s"));
        }
        // Certificate files are read once, before any thread starts.
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(TlsConnector::new(tls)?)),
            None => None,
        };
        let handler: Arc<HandlerSlot> = Arc::new(RwLock::new(None));
        let pending = Arc::new(AtomicUsize::new(0));
        let (pool_tx, pool_rx) = super::task::pool_queue();
        let workers = pool::spawn_workers(config.callback_threads, &pool_rx, &handler);
        drop(pool_rx);
        let workers = match workers {
            Ok(w) => w,
            Err(e) => {
                // The workers started so far stop by themselves once `pool_tx` is dropped.
                return Err(Error::config(
                    "callback_threads",
                    format!("cannot start a callback thread: {e}"),
                ));
            }
        };
        let frames = Arc::new(FramePool::default());
        let inline = Arc::new(super::InlineHandlers::default());
        let loop_config = LoopConfig {
            connect_timeout: config.connect_timeout,
            max_frame: config.max_frame,
            close_on_request_timeout: config.close_on_request_timeout,
            tcp_keepalive: config.tcp_keepalive,
            max_output: config.max_connection_output_bytes,
            resolver,
            frames: frames.clone(),
            tls,
            inline: inline.clone(),
        };
        let mut loops = Vec::with_capacity(config.io_threads);
        for i in 0..config.io_threads {
            match event_loop::spawn(i, loop_config.clone(), pool_tx.clone(), pending.clone()) {
                Ok((shared, thread)) => loops.push(LoopHandle {
                    shared,
                    thread: Mutex::new(Some(thread)),
                }),
                Err(e) => {
                    for lp in &loops {
                        let _ = lp.shared.send(Command::Shutdown);
                    }
                    for lp in &loops {
                        if let Some(t) = lp.thread.lock().take() {
                            let _ = t.join();
                        }
                    }
                    drop(pool_tx);
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(Error::config(
                        "io_threads",
                        format!("cannot start an event loop: {e}"),
                    ));
                }
            }
        }
        let mut own_threads: Vec<ThreadId> = workers.iter().map(|t| t.thread().id()).collect();
        for lp in &loops {
            if let Some(t) = lp.thread.lock().as_ref() {
                own_threads.push(t.thread().id());
            }
        }
        Ok(RemotingClient {
            inner: Arc::new(Inner {
                config,
                loops,
                pool_tx: RwLock::new(Some(pool_tx)),
                pool_threads: Mutex::new(workers),
                handler,
                inline,
                targets: RwLock::new(FxHashMap::default()),
                closed: AtomicBool::new(false),
                lifecycle: Mutex::new(Lifecycle::Running),
                lifecycle_cv: Condvar::new(),
                own_threads,
                pending,
                frames,
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            }),
        })
    }

    /// Installs the handler for server-initiated requests (replacing an earlier one). Ignored
    /// once the client is shut down.
    pub fn set_request_handler(&self, handler: Arc<dyn RequestHandler>) {
        let mut slot = self.inner.handler.write();
        if !self.inner.closed.load(Ordering::SeqCst) {
            *slot = Some(handler);
        }
    }

    /// Installs an inline handler for server requests of `code`: it runs on the I/O thread
    /// that read the request (library code only: quick, never blocking, no user code), and
    /// its answer is queued on the same connection at once. Ignored once the client is shut
    /// down.
    pub(crate) fn set_inline_handler(&self, code: i32, handler: super::InlineHandler) {
        if !self.inner.closed.load(Ordering::SeqCst) {
            self.inner.inline.set(code, handler);
        }
    }

    /// Sends `request` to `addr` and blocks until the response, a timeout, a connection error
    /// or shutdown. The opaque is assigned here.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming `addr` and `timeout`; [`Error::Io`] or
    /// [`Error::ConnectionClosed`] naming `addr` if the connect fails or the connection is lost
    /// while the request is pending; [`Error::Shutdown`]; [`Error::Protocol`] if the request
    /// cannot be encoded. A response with an error code is still `Ok`: the caller reads it.
    pub fn invoke_sync(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let (target, frame, opaque) = self.prepare(addr, request, false)?;
        let (completer, handle) = pooled_pair();
        self.push(
            target,
            frame,
            opaque,
            timeout,
            Some(Reply::Handle(completer)),
        )?;
        handle.wait_spinning(self.inner.config.busy_poll)
    }

    /// Sends `request` to `addr`; `completion` ends exactly once. Never blocks on the network.
    ///
    /// Errors found before anything is queued (shut down, an address that is not `host:port`, a
    /// request that cannot be encoded) complete it at once, a callback still on the pool.
    pub fn invoke_async(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
        completion: Completion,
    ) {
        self.invoke_async_with(addr, request, timeout, completion, false);
    }

    /// [`RemotingClient::invoke_async`] for a request whose timeout never closes the
    /// connection, whatever [`RemotingConfig::close_on_request_timeout`] says: the unregister
    /// at shutdown, which must not fail the sends still draining on the connection with a
    /// connection error (they end with `Shutdown` when the connections close).
    pub(crate) fn invoke_async_keeping_connection(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
        completion: Completion,
    ) {
        self.invoke_async_with(addr, request, timeout, completion, true);
    }

    fn invoke_async_with(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
        completion: Completion,
        keep_connection_on_timeout: bool,
    ) {
        let reply = match completion {
            Completion::Handle(c) => Reply::Handle(c),
            Completion::Callback(cb) => Reply::Callback(CallbackReply::new(
                Box::new(cb),
                self.inner.pool_tx.read().clone(),
            )),
        };
        match self.prepare(addr, request, false) {
            // A failed push has completed the reply with `Shutdown`.
            Ok((target, frame, opaque)) => {
                let _ = self.push_with(
                    target,
                    frame,
                    opaque,
                    timeout,
                    Some(reply),
                    keep_connection_on_timeout,
                );
            }
            Err(e) => reply.complete(Err(e)),
        }
    }

    /// Encodes a request frame for `addr` with `encode` (straight into a reused buffer,
    /// without a [`RemotingCommand`]): it gets the opaque, the flag and the serialize type to
    /// write and appends one whole frame. Send it with [`RemotingClient::send_encoded_sync`],
    /// [`RemotingClient::send_encoded_inline`] or [`RemotingClient::send_encoded_oneway`]
    /// (which must match `oneway`).
    pub(crate) fn encode_request(
        &self,
        addr: &str,
        oneway: bool,
        encode: impl FnOnce(FrameSpec<'_>, &mut Vec<u8>) -> Result<()>,
    ) -> Result<EncodedRequest> {
        let (target, frame, opaque) = self.prepare_encoded(addr, oneway, encode)?;
        Ok(EncodedRequest {
            target,
            frame,
            opaque,
        })
    }

    /// [`RemotingClient::encode_request`] for a shared address string, with the target of the
    /// last one this thread encoded for remembered per thread: the same address again (the
    /// same shared string, to the same client) skips the look-up of its target. For callers
    /// with no memo of their own (oneway sends).
    pub(crate) fn encode_request_shared(
        &self,
        addr: &Arc<str>,
        oneway: bool,
        encode: impl FnOnce(FrameSpec<'_>, &mut Vec<u8>) -> Result<()>,
    ) -> Result<EncodedRequest> {
        let id = self.inner.id;
        let remembered = || {
            LAST_TARGET
                .try_with(|last| match &*last.try_borrow().ok()? {
                    Some((i, a, t)) if *i == id && Arc::ptr_eq(a, addr) => Some(t.clone()),
                    _ => None,
                })
                .ok()
                .flatten()
        };
        let (target, frame, opaque) = self.prepare_encoded_with(
            || match remembered() {
                Some(t) => Ok(t),
                None => {
                    let t = self.target(addr)?;
                    // Only while this thread is torn down is there no slot (then no memory).
                    let _ = LAST_TARGET.try_with(|last| {
                        if let Ok(mut last) = last.try_borrow_mut() {
                            *last = Some((id, addr.clone(), t.clone()));
                        }
                    });
                    Ok(t)
                }
            },
            oneway,
            encode,
        )?;
        Ok(EncodedRequest {
            target,
            frame,
            opaque,
        })
    }

    /// [`RemotingClient::encode_request`] with the target of `addr` remembered in `memo`:
    /// the same address again (the same shared string) skips the look-up of its target.
    // Always inlined into its two sending-path callers (asynchronous and synchronous
    // attempts): one call layer, and the move of its result, less per send.
    #[inline(always)]
    pub(crate) fn encode_request_memo(
        &self,
        addr: &Arc<str>,
        memo: &mut TargetMemo,
        oneway: bool,
        encode: impl FnOnce(FrameSpec<'_>, &mut Vec<u8>) -> Result<()>,
    ) -> Result<EncodedRequest> {
        let (target, frame, opaque) = self.prepare_encoded_with(
            || match &memo.0 {
                Some((a, t)) if Arc::ptr_eq(a, addr) => Ok(t.clone()),
                _ => {
                    let t = self.target(addr)?;
                    memo.0 = Some((addr.clone(), t.clone()));
                    Ok(t)
                }
            },
            oneway,
            encode,
        )?;
        Ok(EncodedRequest {
            target,
            frame,
            opaque,
        })
    }

    /// [`RemotingClient::invoke_sync`] for an encoded request.
    pub(crate) fn send_encoded_sync(
        &self,
        request: EncodedRequest,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let now = Instant::now();
        let (completer, handle) = pooled_pair();
        self.push_at(
            request.target,
            request.frame,
            request.opaque,
            now,
            timeout,
            Some(Reply::Handle(completer)),
            false,
        )?;
        handle.wait_spinning(self.inner.config.busy_poll)
    }

    /// [`RemotingClient::send_encoded_sync`] on the caller's kept completion `reuse` (no pool
    /// round trip per request), for a caller that read the clock at `now` (just before): the
    /// request's deadline is `timeout` after it, with no clock read here. `arrived`: set to
    /// when the response arrived (its I/O thread's read), if it did.
    #[inline]
    pub(crate) fn send_encoded_sync_reusing(
        &self,
        request: EncodedRequest,
        now: Instant,
        timeout: Duration,
        reuse: &mut super::completion::Reusable<RemotingCommand>,
        arrived: &mut Option<Instant>,
    ) -> Result<RemotingCommand> {
        self.push_at(
            request.target,
            request.frame,
            request.opaque,
            now,
            timeout,
            Some(Reply::Handle(reuse.completer())),
            false,
        )?;
        reuse.wait_spinning_at(self.inner.config.busy_poll, arrived)
    }

    /// Sends an encoded request; `callback` runs on the thread that ends it: the I/O thread
    /// for a response, a timeout, a connection error or shutdown, this thread if the client is
    /// shut down already. Never on the callback pool, so it never waits behind user callbacks.
    /// For the crate's own continuations only: the callback must be quick, must not block and
    /// must run no user code; it may hand work to other threads ([`RemotingClient::execute`]).
    ///
    /// `timeout` runs from `started`, a clock read of the caller's (the deadline is
    /// `started + timeout`: no clock read here).
    pub(crate) fn send_encoded_inline(
        &self,
        request: EncodedRequest,
        started: Instant,
        timeout: Duration,
        callback: Box<dyn super::OnResponse>,
    ) {
        let reply = Reply::Inline(CallbackReply::new(callback, None));
        // A failed push has completed the reply with `Shutdown`.
        let _ = self.push_at(
            request.target,
            request.frame,
            request.opaque,
            started,
            timeout,
            Some(reply),
            false,
        );
    }

    /// [`RemotingClient::invoke_oneway`] for an encoded (oneway) request.
    pub(crate) fn send_encoded_oneway(&self, request: EncodedRequest) -> Result<()> {
        self.push(
            request.target,
            request.frame,
            request.opaque,
            Duration::ZERO,
            None,
        )
    }

    /// Sends a oneway request (flag bit 1 set here). `Ok` once queued for the socket; a later
    /// connection failure is only logged.
    ///
    /// # Errors
    /// [`Error::Shutdown`], an address that is not `host:port`, or a request that cannot be
    /// encoded.
    pub fn invoke_oneway(&self, addr: &str, request: RemotingCommand) -> Result<()> {
        let (target, frame, opaque) = self.prepare(addr, request, true)?;
        self.push(target, frame, opaque, Duration::ZERO, None)
    }

    /// Runs `task` on the callback pool. A task accepted here always runs (a panic in it is
    /// caught and logged).
    ///
    /// The pool takes tasks until [`RemotingClient::shutdown`] has ended every request (while
    /// a shutdown is under way too: answers that arrive then still get their callbacks run on
    /// the pool, never on an I/O thread).
    ///
    /// # Errors
    /// [`Error::Shutdown`] once the pool has stopped taking tasks; the task is dropped unrun.
    pub fn execute(&self, task: Box<dyn FnOnce() + Send + 'static>) -> Result<()> {
        self.try_execute(task).map_err(|_| Error::Shutdown)
    }

    /// [`RemotingClient::execute`] that gives the task back when the pool no longer takes
    /// tasks, so that the caller can run it elsewhere.
    pub(crate) fn try_execute(
        &self,
        task: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::result::Result<(), Box<dyn FnOnce() + Send + 'static>> {
        match self.inner.pool_tx.read().as_ref() {
            Some(tx) => match tx.send(Task::Run(task)) {
                Ok(()) => Ok(()),
                Err(e) => match e {
                    Task::Run(task) => Err(task),
                    // Only `Run` was sent.
                    _ => Ok(()),
                },
            },
            None => Err(task),
        }
    }

    /// [`RemotingClient::try_execute`] for a job that carries its own state: queueing it
    /// allocates nothing. Gives the job back when the pool no longer takes tasks.
    pub(crate) fn try_execute_job(
        &self,
        job: Box<dyn PoolJob>,
    ) -> std::result::Result<(), Box<dyn PoolJob>> {
        match self.inner.pool_tx.read().as_ref() {
            Some(tx) => match tx.send(Task::Job(job)) {
                Ok(()) => Ok(()),
                Err(e) => match e {
                    Task::Job(job) => Err(job),
                    // Only `Job` was sent.
                    _ => Ok(()),
                },
            },
            None => Err(job),
        }
    }

    /// Stops accepting requests, fails everything pending with `Shutdown`, joins every thread.
    /// Idempotent.
    ///
    /// Callable from a callback: the calling callback thread is then not joined (it finishes
    /// its queue and ends by itself). Blocks until every callback that is running has
    /// returned. Other callers that come while a shutdown is under way wait for it to end.
    pub fn shutdown(&self) {
        self.inner.shutdown(None);
    }

    /// [`RemotingClient::shutdown`], but waits for running callbacks only until `deadline`:
    /// callback threads still busy in user code then are left to finish their queue and end by
    /// themselves (every accepted callback still runs once), and this returns.
    pub(crate) fn shutdown_until(&self, deadline: Instant) {
        self.inner.shutdown(Some(deadline));
    }

    /// Whether [`RemotingClient::shutdown`] was called (or the last clone dropped).
    pub fn is_shutdown(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The state of the connection to every address used so far, for health snapshots.
    pub fn connection_states(&self) -> Vec<(String, ConnectionState)> {
        let mut states: Vec<(String, ConnectionState)> = self
            .inner
            .loops
            .iter()
            .flat_map(|lp| {
                lp.shared
                    .states
                    .lock()
                    .iter()
                    .map(|(addr, state)| (addr.to_string(), state.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// The state of the connection to `addr`, if it was used.
    pub fn connection_state(&self, addr: &str) -> Option<ConnectionState> {
        let target = self.inner.targets.read().get(addr).cloned()?;
        let lp = self.inner.loops.get(target.lp)?;
        let state = lp.shared.states.lock().get(&target.addr).cloned();
        state
    }

    /// Closes the connection to `addr`, if there is one: requests pending on it fail with
    /// [`Error::ConnectionClosed`]; the next request connects again.
    pub fn close_connection(&self, addr: &str) {
        let target = self.inner.targets.read().get(addr).cloned();
        if let Some(target) = target {
            if let Some(lp) = self.inner.loops.get(target.lp) {
                let _ = lp.shared.send(Command::Close(target.addr.clone()));
            }
        }
    }

    /// Requests sent and waiting for their response, over all connections.
    pub fn pending_count(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// The settings this client was started with.
    pub fn config(&self) -> &RemotingConfig {
        &self.inner.config
    }

    /// Checks the client is running and `addr`'s syntax, assigns the opaque and encodes.
    fn prepare(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        oneway: bool,
    ) -> Result<(Arc<Target>, Vec<u8>, i32)> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        let target = self.target(addr)?;
        let opaque = NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        request.serialize_type = self.inner.config.serialize_type;
        request.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        if oneway {
            request.flag |= FLAG_ONEWAY;
        }
        if let Some(credentials) = &self.inner.config.credentials {
            // Last, so that nothing is added to the fields after signing.
            credentials.sign(&mut request.ext_fields, &request.body);
        }
        let mut frame = self.inner.frames.take();
        if let Err(e) = request.encode(&mut frame) {
            self.inner.frames.put(frame);
            return Err(e.into());
        }
        Ok((target, frame, opaque))
    }

    /// Checks the client is running and `addr`'s syntax, assigns the opaque and lets `encode`
    /// write the frame into a pooled buffer.
    fn prepare_encoded(
        &self,
        addr: &str,
        oneway: bool,
        encode: impl FnOnce(FrameSpec<'_>, &mut Vec<u8>) -> Result<()>,
    ) -> Result<(Arc<Target>, Vec<u8>, i32)> {
        self.prepare_encoded_with(|| self.target(addr), oneway, encode)
    }

    /// [`RemotingClient::prepare_encoded`] with the target from `target` (asked only while
    /// the client is open).
    // Always inlined (into `encode_request_memo` too): one call layer less per send.
    #[inline(always)]
    fn prepare_encoded_with(
        &self,
        target: impl FnOnce() -> Result<Arc<Target>>,
        oneway: bool,
        encode: impl FnOnce(FrameSpec<'_>, &mut Vec<u8>) -> Result<()>,
    ) -> Result<(Arc<Target>, Vec<u8>, i32)> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        let target = target()?;
        let opaque = NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed);
        let spec = FrameSpec {
            opaque,
            flag: if oneway { FLAG_ONEWAY } else { 0 },
            serialize_type: self.inner.config.serialize_type,
            credentials: self.inner.config.credentials.as_ref(),
        };
        let mut frame = self.inner.frames.take();
        if let Err(e) = encode(spec, &mut frame) {
            self.inner.frames.put(frame);
            return Err(e);
        }
        Ok((target, frame, opaque))
    }

    /// Hands a request to the loop that owns its address. If the loop has stopped, the request
    /// (and its reply, which completes with `Shutdown` as it drops) is dropped here.
    fn push(
        &self,
        target: Arc<Target>,
        frame: Vec<u8>,
        opaque: i32,
        timeout: Duration,
        reply: Option<Reply>,
    ) -> Result<()> {
        self.push_with(target, frame, opaque, timeout, reply, false)
    }

    /// [`RemotingClient::push`], saying whether the request's timeout may close the connection.
    fn push_with(
        &self,
        target: Arc<Target>,
        frame: Vec<u8>,
        opaque: i32,
        timeout: Duration,
        reply: Option<Reply>,
        keep_connection_on_timeout: bool,
    ) -> Result<()> {
        let now = Instant::now();
        self.push_at(
            target,
            frame,
            opaque,
            now,
            timeout,
            reply,
            keep_connection_on_timeout,
        )
    }

    /// [`RemotingClient::push_with`] for a request whose `timeout` runs from `started`.
    #[allow(clippy::too_many_arguments)] // the parts of one request, each moved in once
    fn push_at(
        &self,
        target: Arc<Target>,
        frame: Vec<u8>,
        opaque: i32,
        started: Instant,
        timeout: Duration,
        reply: Option<Reply>,
        keep_connection_on_timeout: bool,
    ) -> Result<()> {
        let deadline = deadline_after(started, timeout);
        let Some(lp) = self.inner.loops.get(target.lp) else {
            return Err(Error::Shutdown); // targets only name existing loops
        };
        // The command built in place, as the argument (one move fewer of the ~100 bytes).
        lp.shared
            .send(Command::Request(Request {
                target,
                frame,
                opaque,
                timeout,
                deadline,
                reply,
                keep_connection_on_timeout,
            }))
            .map_err(|_| Error::Shutdown)
    }

    /// The target for `addr`. Only its syntax is checked here (a bad address fails at once);
    /// a host name is looked up by the event loop's lookup threads on every connect, never on
    /// the caller's thread.
    fn target(&self, addr: &str) -> Result<Arc<Target>> {
        if let Some(t) = self.inner.targets.read().get(addr) {
            return Ok(t.clone());
        }
        check_syntax(addr).map_err(|source| Error::Io {
            addr: addr.to_owned(),
            source,
        })?;
        let mut hasher = crate::hash::FxHasher::default();
        addr.hash(&mut hasher);
        let lp = (hasher.finish() % self.inner.loops.len() as u64) as usize;
        let target = Arc::new(Target::new(Arc::from(addr), lp));
        let mut targets = self.inner.targets.write();
        Ok(targets.entry(addr.to_owned()).or_insert(target).clone())
    }
}

/// A caller's memory of the target of the last address it sent to
/// ([`RemotingClient::encode_request_memo`]). Targets are never removed from the client's
/// table, so the target remembered for an address stays that address's.
#[derive(Clone, Debug, Default)]
pub(crate) struct TargetMemo(Option<(Arc<str>, Arc<Target>)>);

/// A request frame encoded for its address, not sent yet.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    target: Arc<Target>,
    frame: Vec<u8>,
    opaque: i32,
}

/// What an encoder of a pre-encoded request frame must write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameSpec<'a> {
    /// The request id.
    pub(crate) opaque: i32,
    /// The flag: 0, or [`FLAG_ONEWAY`].
    pub(crate) flag: i32,
    /// The header serialization the client is configured with.
    pub(crate) serialize_type: crate::protocol::SerializeType,
    /// The credentials to sign the request with (its last ext fields), if any.
    pub(crate) credentials: Option<&'a crate::protocol::acl::Credentials>,
}

impl Inner {
    fn shutdown(&self, deadline: Option<Instant>) {
        let me = thread::current().id();
        {
            let mut state = self.lifecycle.lock();
            match *state {
                Lifecycle::Running => *state = Lifecycle::Stopping(me),
                Lifecycle::Stopped => return,
                Lifecycle::Stopping(stopper) => {
                    // One of our own threads must not wait: the shutdown may be joining it.
                    // Nor may the stopping thread itself (a callback run inline, a waker).
                    if stopper != me && !self.own_threads.contains(&me) {
                        while *state != Lifecycle::Stopped {
                            self.lifecycle_cv.wait(&mut state);
                        }
                    }
                    return;
                }
            }
        }
        self.closed.store(true, Ordering::SeqCst);
        for lp in &self.loops {
            // A loop that already stopped has failed its requests.
            let _ = lp.shared.send(Command::Shutdown);
        }
        for lp in &self.loops {
            let thread = lp.thread.lock().take();
            if let Some(t) = thread {
                join_unless_current(t, me);
            }
        }
        // Every loop has ended its requests; the callbacks they queued are on the pool.
        self.handler.write().take();
        self.inline.clear();
        drop(self.pool_tx.write().take());
        let workers = std::mem::take(&mut *self.pool_threads.lock());
        match deadline {
            None => {
                for t in workers {
                    join_unless_current(t, me);
                }
            }
            Some(deadline) => join_until(workers, me, deadline),
        }
        *self.lifecycle.lock() = Lifecycle::Stopped;
        self.lifecycle_cv.notify_all();
    }
}

/// Joins the callback workers that end by `deadline`; the others (busy in user code) are left
/// to finish their queue and end by themselves.
fn join_until(workers: Vec<JoinHandle<()>>, me: ThreadId, deadline: Instant) {
    let mut left: Vec<JoinHandle<()>> = workers
        .into_iter()
        .filter(|t| t.thread().id() != me)
        .collect();
    loop {
        let (done, busy): (Vec<_>, Vec<_>) = left.into_iter().partition(JoinHandle::is_finished);
        for t in done {
            join_unless_current(t, me);
        }
        left = busy;
        if left.is_empty() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            log::warn!(
                "shutdown deadline passed with {} callback thread(s) still running user code; \
                 they end by themselves once their callbacks return",
                left.len()
            );
            return;
        }
        // The workers give no signal when they end: look again shortly.
        thread::sleep((deadline - now).min(Duration::from_millis(1)));
    }
}

fn join_unless_current(thread: JoinHandle<()>, me: ThreadId) {
    if thread.thread().id() == me {
        return; // this thread ends by itself once its work is done
    }
    let name = thread.thread().name().unwrap_or("?").to_owned();
    if thread.join().is_err() {
        log::error!("thread {name} panicked");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingClient")
            .field("config", &self.inner.config)
            .field("shut_down", &self.is_shutdown())
            .field("pending", &self.pending_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{RemotingClient, RemotingConfig, TargetMemo};

    /// The remembered target is the address's: a memo asked for other addresses (other
    /// strings with the same text too) gives each its own target, the one the client's table
    /// holds.
    #[test]
    fn target_memo_gives_each_address_its_target() {
        let client = RemotingClient::new(RemotingConfig::default()).unwrap();
        let addrs: Vec<Arc<str>> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "[::1]:3"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let mut memo = TargetMemo::default();
        for round in 0..3 {
            for addr in addrs.iter().chain(addrs.iter().rev()) {
                let encoded = client
                    .encode_request_memo(addr, &mut memo, false, |_, out| {
                        out.push(round);
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(&*encoded.target.addr, &**addr);
                assert!(Arc::ptr_eq(&encoded.target, &client.target(addr).unwrap()));
                assert_eq!(encoded.frame, [round]);
            }
        }
        client.shutdown();
        assert!(client
            .encode_request_memo(&addrs[0], &mut memo, false, |_, _| Ok(()))
            .is_err());
    }

    /// The thread's remembered target is the address's and the client's: two clients sent
    /// the same shared address strings in turn each get the target their own table holds.
    #[test]
    fn thread_target_memory_gives_each_client_and_address_its_target() {
        let clients = [
            RemotingClient::new(RemotingConfig::default()).unwrap(),
            RemotingClient::new(RemotingConfig::default()).unwrap(),
        ];
        let addrs: Vec<Arc<str>> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "[::1]:3"]
            .into_iter()
            .map(Arc::from)
            .collect();
        for round in 0..3u8 {
            for (i, addr) in addrs.iter().chain(addrs.iter().rev()).enumerate() {
                for client in [&clients[i % 2], &clients[(i + usize::from(round)) % 2]] {
                    let encoded = client
                        .encode_request_shared(addr, true, |spec, out| {
                            assert_eq!(spec.flag, crate::protocol::frame::FLAG_ONEWAY);
                            out.push(round);
                            Ok(())
                        })
                        .unwrap();
                    assert_eq!(&*encoded.target.addr, &**addr);
                    assert!(Arc::ptr_eq(&encoded.target, &client.target(addr).unwrap()));
                    assert_eq!(encoded.frame, [round]);
                }
            }
        }
        for client in &clients {
            client.shutdown();
            assert!(client
                .encode_request_shared(&addrs[0], true, |_, _| Ok(()))
                .is_err());
        }
    }
}
