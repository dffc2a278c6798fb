//! What the threads of a [`RemotingClient`](super::RemotingClient) hand each other: the
//! [`Command`]s that callers and callback threads send an event loop (through its
//! [`LoopShared`] handle), the [`Request`]s inside them and the [`Reply`] each one ends with,
//! and the [`Task`]s that event loops and callers give the callback pool.
//!
//! These types refer to one another in a ring (a request carries a reply, a reply may go to
//! the pool, a server request carries the handle of the loop to answer through), so they live
//! together here; the event loop and the pool both depend on this module and not on each
//! other.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Waker;
use parking_lot::{Condvar, Mutex};

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

    /// [`Reply::complete`] with a response that arrived with a read at `arrival`: an inline
    /// continuation and a handle get that time (a pooled callback has no use for it).
    // Inlined, as the calls below it: the response is moved once, not copied per call.
    #[inline(always)]
    pub(crate) fn complete_at(self, result: Result<RemotingCommand>, arrival: &super::Arrival) {
        match self {
            Reply::Inline(c) => c.run_here_at(result, arrival),
            // Completed here, not through `complete`: the response is moved once, into the
            // completion (a synchronous sender's wait, which takes the arrival as its
            // attempt's end).
            Reply::Handle(c) => {
                c.complete_at(result, arrival.at);
            }
            other => other.complete(result),
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

/// The handle other threads hold on an event loop: its command queue and waker, and the
/// connection states it publishes. The loop's own state stays in `event_loop`.
///
/// # The command queue
///
/// Commands wait in a `VecDeque` behind a mutex, and the loop takes them all at once: it
/// swaps the shared deque with its own empty one ([`LoopShared::take_commands`]) and works
/// through its copy without the lock. The two deques trade places turn after turn and each
/// keeps its capacity, so once they have grown to the largest backlog seen, queueing a
/// command allocates nothing (a crossbeam list channel allocated a block every 31 commands).
/// A deque grown past [`KEPT_COMMAND_CAPACITY`] by a burst is shrunk back when the loop has
/// emptied it, so a flood does not pin its memory.
///
/// The queue is unbounded, so that no sender ever waits for room: the loop itself queues
/// commands (to itself and to other loops: continuations that run on it start sends), and
/// a bounded queue could block it on its own backlog. A sender holds the lock only to push
/// one command (a reallocation when the deque grows is the longest it can take), and the
/// loop only to swap two deques, so neither waits long for the other. Order is kept: the
/// loop runs commands in the order they were queued.
///
/// Once the loop stops ([`LoopShared::close_commands`]) the queue takes nothing more: a
/// sender gets its command back (its request then ends with `Shutdown`), and the loop ends
/// every command it took.
#[derive(Debug)]
pub(crate) struct LoopShared {
    commands: Mutex<CommandQueue>,
    waker: Waker,
    /// Whether the loop is awake (or already woken): a sender calls the waker (a syscall,
    /// and a wake-up of the loop's thread) only when it finds this false, and sets it.
    ///
    /// The loop sets it when it returns from a poll and clears it only just before it blocks
    /// in the next one, then looks at the queue once more ([`LoopShared::going_to_sleep`]):
    /// a command queued while the loop works needs no wake-up, and one queued as it goes to
    /// sleep is either seen by that last look or wakes it (the sender's swap then finds the
    /// flag cleared). No command is left in the queue while the loop sleeps.
    notified: AtomicBool,
    /// Connection state per address, for health snapshots.
    pub(crate) states: Mutex<HashMap<Arc<str>, ConnectionState>>,
}

/// The commands queued for a loop (see [`LoopShared`]).
#[derive(Debug, Default)]
struct CommandQueue {
    queued: VecDeque<Command>,
    /// The loop has stopped: nothing more is taken.
    closed: bool,
}

/// The capacity a drained command deque keeps (commands); a larger one is shrunk to it.
pub(crate) const KEPT_COMMAND_CAPACITY: usize = 4096;

impl LoopShared {
    /// The handle of a loop that polls with `waker`.
    pub(crate) fn new(waker: Waker) -> Self {
        LoopShared {
            commands: Mutex::new(CommandQueue::default()),
            waker,
            notified: AtomicBool::new(false),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a command and wakes the loop. Gives the command back if the loop has stopped.
    /// Never waits for room (see [`LoopShared`]).
    #[inline(always)]
    pub(crate) fn send(&self, cmd: Command) -> std::result::Result<(), Command> {
        {
            let mut q = self.commands.lock();
            if q.closed {
                return Err(cmd);
            }
            q.queued.push_back(cmd);
        }
        if !self.notified.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake an event loop: {e}");
            }
        }
        Ok(())
    }

    /// Called by the loop, with `into` empty: moves every queued command into `into`, in
    /// order, by swapping the deques (no copy, no allocation).
    // Inlined: a call per turn (its frame saved and restored) cost as much as its work.
    #[inline]
    pub(crate) fn take_commands(&self, into: &mut VecDeque<Command>) {
        debug_assert!(into.is_empty());
        if into.capacity() > KEPT_COMMAND_CAPACITY {
            // A burst grew it: give the memory back (off the senders' lock).
            shrink_commands(into);
        }
        let mut q = self.commands.lock();
        if !q.queued.is_empty() {
            std::mem::swap(&mut q.queued, into);
        }
    }

    /// Called by the loop when it stops: closes the queue (later sends get their command
    /// back) and moves what is queued into `into`.
    pub(crate) fn close_commands(&self, into: &mut VecDeque<Command>) {
        let mut q = self.commands.lock();
        q.closed = true;
        into.append(&mut q.queued);
    }

    /// Called by the loop when it is about to block in a poll: from now on senders wake it.
    /// Returns whether a command is already waiting (then the loop must not block: it polls
    /// without waiting and drains the queue again, and senders need not wake it).
    pub(crate) fn going_to_sleep(&self) -> bool {
        self.notified.store(false, Ordering::SeqCst);
        // Pairs with the sender's `swap` (after its push): either this look sees the
        // command, or the sender sees the flag cleared and wakes the loop.
        fence(Ordering::SeqCst);
        if self.commands.lock().queued.is_empty() {
            return false;
        }
        self.notified.store(true, Ordering::Relaxed);
        true
    }

    /// Called by the loop when a poll returns: it drains the queue before it blocks
    /// again, so senders need not wake it until [`LoopShared::going_to_sleep`].
    pub(crate) fn awake(&self) {
        self.notified.store(true, Ordering::Relaxed);
    }
}

/// Shrinks a command deque that a burst grew (see [`LoopShared::take_commands`]).
#[cold]
fn shrink_commands(commands: &mut VecDeque<Command>) {
    commands.shrink_to(KEPT_COMMAND_CAPACITY);
}

/// Work for a callback thread.
pub(crate) enum Task {
    /// An arbitrary task from `execute`.
    Run(Box<dyn FnOnce() + Send + 'static>),
    /// A response callback with its result.
    Respond(Box<dyn OnResponse>, Result<RemotingCommand>),
    /// A request a peer sent us.
    Serve(ServerRequest),
    /// Work that carries its own state (no allocation to queue it).
    Job(Box<dyn PoolJob>),
}

/// Work that carries its own state to a callback thread: the task is the box it already
/// lives in (a recycled one, say), so queueing it allocates nothing.
pub(crate) trait PoolJob: Send + 'static {
    /// Runs the job on a callback thread (a panic is caught and logged).
    fn run(self: Box<Self>);
}

/// Creates the callback pool's task queue: any number of senders (the loops, the client,
/// pending callbacks) and receivers (the workers).
///
/// Tasks wait in a `VecDeque` behind a mutex; an idle worker waits on a condition variable.
/// The deque keeps its capacity, so once it has grown to the largest backlog seen, queueing
/// a task allocates nothing (a crossbeam list channel allocated a block every 31 tasks); one
/// grown past [`KEPT_TASK_CAPACITY`] by a burst is shrunk back when a worker empties it.
/// Unbounded, as before: a sender (an I/O thread) never waits for room.
///
/// It behaves as the channel it replaces: [`PoolSender::send`] gives the task back once every
/// receiver is gone, and [`PoolReceiver::recv`] returns `None` once the queue is empty and
/// every sender is gone, so workers run every task queued before they stop.
pub(crate) fn pool_queue() -> (PoolSender, PoolReceiver) {
    let queue = Arc::new(PoolQueue {
        state: Mutex::new(PoolState {
            tasks: VecDeque::new(),
            receivers: 1,
        }),
        senders: AtomicUsize::new(1),
        ready: Condvar::new(),
    });
    (
        PoolSender {
            queue: queue.clone(),
        },
        PoolReceiver { queue },
    )
}

/// The capacity an emptied task deque keeps (tasks); a larger one is shrunk to it.
pub(crate) const KEPT_TASK_CAPACITY: usize = 4096;

struct PoolQueue {
    state: Mutex<PoolState>,
    /// Senders alive. Changed outside the lock; the last one to go notifies under it.
    senders: AtomicUsize,
    /// Signalled when a task is queued, and when the last sender goes.
    ready: Condvar,
}

struct PoolState {
    tasks: VecDeque<Task>,
    receivers: usize,
}

/// The sending side of the callback pool's queue (see [`pool_queue`]).
pub(crate) struct PoolSender {
    queue: Arc<PoolQueue>,
}

impl PoolSender {
    /// Queues `task` for a worker. Gives it back when no worker is left to run it.
    #[allow(clippy::result_large_err)] // the task is handed back, not an error
    pub(crate) fn send(&self, task: Task) -> std::result::Result<(), Task> {
        let mut state = self.queue.state.lock();
        if state.receivers == 0 {
            return Err(task);
        }
        state.tasks.push_back(task);
        drop(state);
        // Nothing to do (an atomic load) when no worker waits.
        self.queue.ready.notify_one();
        Ok(())
    }
}

impl std::fmt::Debug for PoolSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSender").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PoolReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolReceiver").finish_non_exhaustive()
    }
}

impl Clone for PoolSender {
    fn clone(&self) -> Self {
        self.queue.senders.fetch_add(1, Ordering::Relaxed);
        PoolSender {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for PoolSender {
    fn drop(&mut self) {
        if self.queue.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Under the lock: a worker checks the count and starts waiting under it, so it
            // either sees the count at zero or gets this wake-up.
            let _state = self.queue.state.lock();
            self.queue.ready.notify_all();
        }
    }
}

/// The receiving side of the callback pool's queue (see [`pool_queue`]).
pub(crate) struct PoolReceiver {
    queue: Arc<PoolQueue>,
}

impl PoolReceiver {
    /// The next task, waiting for one; `None` once the queue is empty and every sender is
    /// gone.
    pub(crate) fn recv(&self) -> Option<Task> {
        let mut state = self.queue.state.lock();
        loop {
            if let Some(task) = state.tasks.pop_front() {
                if state.tasks.is_empty() && state.tasks.capacity() > KEPT_TASK_CAPACITY {
                    state.tasks.shrink_to(KEPT_TASK_CAPACITY);
                }
                return Some(task);
            }
            if self.queue.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            self.queue.ready.wait(&mut state);
        }
    }
}

impl Clone for PoolReceiver {
    fn clone(&self) -> Self {
        self.queue.state.lock().receivers += 1;
        PoolReceiver {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for PoolReceiver {
    fn drop(&mut self) {
        let mut state = self.queue.state.lock();
        state.receivers -= 1;
        if state.receivers == 0 {
            // No one will run them: dropped here, as a channel with no receiver drops its
            // messages (a dropped reply or job ends its request with `Shutdown`).
            let tasks = std::mem::take(&mut state.tasks);
            drop(state);
            drop(tasks);
        }
    }
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
    pool: Option<PoolSender>,
}

impl CallbackReply {
    pub(crate) fn new(callback: Box<dyn OnResponse>, pool: Option<PoolSender>) -> Self {
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
        let callback = self.callback.take();
        let pool = self.pool.take();
        // Emptied: its `Drop` would have nothing to do (forgetting it spares the call).
        std::mem::forget(self);
        drop(pool);
        if let Some(callback) = callback {
            run_callback(callback, result);
        }
    }

    /// [`CallbackReply::run_here`] for a response that arrived with a read at `arrival`.
    #[inline(always)]
    pub(crate) fn run_here_at(mut self, result: Result<RemotingCommand>, arrival: &super::Arrival) {
        let callback = self.callback.take();
        let pool = self.pool.take();
        // Emptied: as in `run_here`.
        std::mem::forget(self);
        drop(pool);
        if let Some(callback) = callback {
            super::guard::run_callback_at(callback, result, arrival);
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
                Err(task) => task,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn shared() -> (mio::Poll, LoopShared) {
        let poll = mio::Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), mio::Token(0)).unwrap();
        (poll, LoopShared::new(waker))
    }

    fn close(addr: &str) -> Command {
        Command::Close(Arc::from(addr))
    }

    fn addr_of(cmd: &Command) -> &str {
        match cmd {
            Command::Close(a) => a,
            _ => panic!("not a Close: {cmd:?}"),
        }
    }

    /// Every sender's commands come out in the order it queued them, none lost, none twice,
    /// while the loop takes them concurrently.
    #[test]
    fn commands_keep_each_senders_order() {
        let (_poll, shared) = shared();
        let shared = Arc::new(shared);
        const SENDERS: usize = 4;
        const EACH: usize = 5_000;
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        shared.send(close(&format!("{s}:{i}"))).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0usize; SENDERS];
        let mut inbox = VecDeque::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while next.iter().sum::<usize>() < SENDERS * EACH {
            assert!(Instant::now() < deadline, "commands missing: {next:?}");
            shared.take_commands(&mut inbox);
            for cmd in inbox.drain(..) {
                let (s, i) = addr_of(&cmd).split_once(':').unwrap();
                let (s, i): (usize, usize) = (s.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[s], "sender {s} out of order");
                next[s] += 1;
            }
        }
        for t in senders {
            t.join().unwrap();
        }
        shared.take_commands(&mut inbox);
        assert!(inbox.is_empty(), "a command came twice");
    }

    /// Closing takes what is queued (in order, after what the loop holds) and refuses later
    /// commands, giving them back.
    #[test]
    fn closed_queue_gives_commands_back() {
        let (_poll, shared) = shared();
        shared.send(close("a")).unwrap();
        shared.send(close("b")).unwrap();
        let mut inbox = VecDeque::new();
        inbox.push_back(close("held"));
        shared.close_commands(&mut inbox);
        let got: Vec<String> = inbox.iter().map(|c| addr_of(c).to_owned()).collect();
        assert_eq!(got, ["held", "a", "b"]);
        let back = shared.send(close("late")).unwrap_err();
        assert_eq!(addr_of(&back), "late");
        assert!(!shared.going_to_sleep());
    }

    /// The waker protocol: a command queued before the loop's last look makes
    /// `going_to_sleep` say so; an empty queue lets it sleep.
    #[test]
    fn going_to_sleep_sees_a_queued_command() {
        let (_poll, shared) = shared();
        assert!(!shared.going_to_sleep());
        shared.send(close("a")).unwrap();
        assert!(shared.going_to_sleep());
        let mut inbox = VecDeque::new();
        shared.take_commands(&mut inbox);
        assert_eq!(inbox.len(), 1);
        inbox.clear();
        assert!(!shared.going_to_sleep());
    }

    /// A burst's capacity is given back once the loop has emptied its deque.
    #[test]
    fn burst_capacity_is_shrunk() {
        let (_poll, shared) = shared();
        let mut inbox = VecDeque::new();
        for i in 0..3 * KEPT_COMMAND_CAPACITY {
            shared.send(close(&i.to_string())).unwrap();
        }
        shared.take_commands(&mut inbox);
        assert_eq!(inbox.len(), 3 * KEPT_COMMAND_CAPACITY);
        inbox.clear();
        shared.take_commands(&mut inbox);
        shared.send(close("x")).unwrap();
        shared.take_commands(&mut inbox);
        assert_eq!(inbox.len(), 1);
        inbox.clear();
        shared.take_commands(&mut inbox);
        assert!(inbox.capacity() <= KEPT_COMMAND_CAPACITY);
        assert!(shared.commands.lock().queued.capacity() <= KEPT_COMMAND_CAPACITY);
    }

    fn counting_task(ran: &Arc<AtomicUsize>) -> Task {
        let ran = ran.clone();
        Task::Run(Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }))
    }

    /// Workers run every task queued before the last sender went, then stop.
    #[test]
    fn pool_runs_everything_queued_then_stops() {
        let (tx, rx) = pool_queue();
        let ran = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = mpsc::channel();
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    while let Some(task) = rx.recv() {
                        if let Task::Run(f) = task {
                            f();
                        }
                    }
                    done_tx.send(()).unwrap();
                })
            })
            .collect();
        drop(rx);
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let tx = tx.clone();
                let ran = ran.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        assert!(tx.send(counting_task(&ran)).is_ok());
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        drop(tx);
        for _ in 0..3 {
            done_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a worker did not stop");
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 8_000);
    }

    /// With no worker left, a task is given back, unrun.
    #[test]
    fn pool_without_workers_gives_tasks_back() {
        let (tx, rx) = pool_queue();
        let ran = Arc::new(AtomicUsize::new(0));
        drop(rx);
        let back = tx.send(counting_task(&ran)).unwrap_err();
        assert!(matches!(back, Task::Run(_)));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    /// A worker waiting on an empty queue wakes when the last sender goes.
    #[test]
    fn idle_worker_stops_when_senders_go() {
        let (tx, rx) = pool_queue();
        let tx2 = tx.clone();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            done_tx.send(rx.recv().is_none()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
        assert!(done_rx.try_recv().is_err(), "stopped with a sender left");
        drop(tx2);
        assert!(done_rx.recv_timeout(Duration::from_secs(60)).unwrap());
        worker.join().unwrap();
    }
}
