//! The body of an event-loop thread (`rocketmq-io-N`): one mio `Poll`, a `Waker` on token 0,
//! the connections it owns, and the requests pending on them.
//!
//! One turn of the loop: poll (the timeout is the nearest deadline); read every ready
//! connection until it would block and complete the requests its responses match; drain the
//! command queue (new requests are appended to their connection's output); flush every
//! connection with output (one write for everything queued in the turn); expire overdue
//! requests and connects.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use parking_lot::Mutex;

use super::connection::{configure_socket, Conn, Failure, Phase};
use super::resolve::{check_syntax, host_of, Resolver};
use super::task::{Command, LoopShared, PoolSender, Reply, Request, ServerRequest, Target, Task};
use super::tls::TlsConnector;
use super::{Arrival, ConnectionState};
use crate::error::Error;
use crate::protocol::{CodecError, RemotingCommand};

/// The waker's token; connection `i` has token `i + 1`.
const WAKER: Token = Token(0);
/// Commands taken from the queue in one turn, so that I/O is not starved by a flood.
const COMMANDS_PER_TURN: usize = 4096;

/// Most request buffers an event loop holds before giving them back to the pool (it gives
/// back what it holds at the end of each command drain too): senders find buffers free.
const RETURN_BATCH: usize = 64;

/// Settings an event loop needs.
#[derive(Debug, Clone)]
pub(crate) struct LoopConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) max_frame: usize,
    /// [`RemotingConfig::close_on_request_timeout`](super::RemotingConfig::close_on_request_timeout).
    pub(crate) close_on_request_timeout: bool,
    /// [`RemotingConfig::tcp_keepalive`](super::RemotingConfig::tcp_keepalive).
    pub(crate) tcp_keepalive: Option<Duration>,
    /// [`RemotingConfig::max_connection_output_bytes`](super::RemotingConfig::max_connection_output_bytes).
    pub(crate) max_output: usize,
    /// Where request frame buffers go back once written (TLS: once copied to the session).
    pub(crate) frames: Arc<FramePool>,
    /// Looks host names up (on lookup threads).
    pub(crate) resolver: Resolver,
    /// Every connection speaks TLS when set.
    pub(crate) tls: Option<Arc<TlsConnector>>,
    /// Server requests handled right here, on the I/O thread (see the module docs of
    /// `remoting`).
    pub(crate) inline: Arc<super::InlineHandlers>,
}

/// Host-name lookups under way at once, per event loop; a connect that would start one more
/// fails at once (a resolver that hangs must not pile up threads).
const MAX_LOOKUPS: usize = 16;

/// Request frame buffers, reused: a caller takes one to encode into, the event loop gives it
/// back once the frame is queued on its connection. Keeps the send path free of allocations
/// once warm.
#[derive(Debug, Default)]
pub(crate) struct FramePool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept at most; and the largest buffer kept (bigger ones are dropped).
const POOLED_FRAMES: usize = 1024;
const POOLED_FRAME_CAPACITY: usize = 64 * 1024;

impl FramePool {
    /// An empty buffer (reused when one is free).
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free.lock().pop().unwrap_or_default()
    }

    /// Whether a buffer is worth keeping.
    fn keeps(frame: &Vec<u8>) -> bool {
        frame.capacity() != 0 && frame.capacity() <= POOLED_FRAME_CAPACITY
    }

    /// Gives back the buffers in `frames` (kept ones only: see [`EventLoop::give_back`])
    /// under one lock, emptying `frames`.
    fn put_all(&self, frames: &mut Vec<Vec<u8>>) {
        let mut free = self.free.lock();
        while let Some(mut frame) = frames.pop() {
            if free.len() < POOLED_FRAMES {
                frame.clear();
                free.push(frame);
            }
        }
    }

    /// Gives a buffer back.
    pub(crate) fn put(&self, mut frame: Vec<u8>) {
        if frame.capacity() == 0 || frame.capacity() > POOLED_FRAME_CAPACITY {
            return;
        }
        frame.clear();
        let mut free = self.free.lock();
        if free.len() < POOLED_FRAMES {
            free.push(frame);
        }
    }
}

/// Gives a frame buffer back to `pool` through `returned`, one lock per [`RETURN_BATCH`]
/// buffers (the loop gives back what is left in `returned` at the end of each turn).
fn give_back(pool: &FramePool, returned: &mut Vec<Vec<u8>>, frame: Vec<u8>) {
    if !FramePool::keeps(&frame) {
        return;
    }
    returned.push(frame);
    if returned.len() >= RETURN_BATCH {
        pool.put_all(returned);
    }
}

/// Starts event loop `index` on its own thread.
pub(crate) fn spawn(
    index: usize,
    config: LoopConfig,
    pool: PoolSender,
    pending_count: Arc<AtomicUsize>,
) -> io::Result<(Arc<LoopShared>, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let shared = Arc::new(LoopShared::new(waker));
    let lp = EventLoop {
        poll,
        inbox: VecDeque::new(),
        shared: shared.clone(),
        pool,
        config,
        conns: Vec::new(),
        free: Vec::new(),
        by_addr: HashMap::new(),
        pending: PendingTable::default(),
        deadlines: Deadlines::default(),
        dirty: Vec::new(),
        frames: Vec::new(),
        returned: Vec::with_capacity(RETURN_BATCH),
        scratch: Vec::new(),
        next_conn_id: 0,
        unconnected: 0,
        read_clock: None,
        pending_count,
        lookups: Arc::new(AtomicUsize::new(0)),
    };
    let thread = thread::Builder::new()
        .name(format!("rocketmq-io-{index}"))
        .spawn(move || lp.run())?;
    Ok((shared, thread))
}

/// A request waiting for its response.
struct Pending {
    deadline: Instant,
    timeout: Duration,
    token: usize,
    conn_id: u64,
    reply: Reply,
    /// See [`Request::keep_connection_on_timeout`].
    keep_connection_on_timeout: bool,
}

/// Opaques are sequential: a multiplicative hash spreads them over the table.
#[derive(Default)]
struct OpaqueHasher(u64);

impl Hasher for OpaqueHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = u64::from(n as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Requests waiting for their responses, by opaque (see [`OpaqueTable`]).
type PendingTable = OpaqueTable<Pending>;

/// Slots an [`OpaqueTable`] starts with, and the most it grows to.
const MIN_SLOTS: usize = 256;
const MAX_SLOTS: usize = 8 * 1024;

/// Values by opaque, as a map would keep them, found without hashing: a ring of slots indexed
/// by the opaque's low bits (opaques are handed out in sequence, so the requests in flight at
/// once mostly fall in distinct slots), and a map for an opaque whose slot another one holds
/// (a request left pending long enough for the counter to come round to its slot). The ring
/// doubles, up to [`MAX_SLOTS`], when it gets crowded.
struct OpaqueTable<V> {
    slots: Vec<Slot<V>>,
    /// Values whose slot was taken when they came.
    overflow: HashMap<i32, V, BuildHasherDefault<OpaqueHasher>>,
    /// Values in `slots`.
    in_slots: usize,
}

/// A slot of an [`OpaqueTable`]: the opaque beside the value (not in a tuple with it), so that
/// a value goes in and out with one move, not through a temporary of another layout.
struct Slot<V> {
    /// Meaningful only while `value` is `Some`.
    opaque: i32,
    value: Option<V>,
}

impl<V> Slot<V> {
    fn holds(&self, opaque: i32) -> bool {
        self.value.is_some() && self.opaque == opaque
    }
}

impl<V> Default for OpaqueTable<V> {
    fn default() -> Self {
        OpaqueTable {
            slots: Vec::new(),
            overflow: HashMap::default(),
            in_slots: 0,
        }
    }
}

impl<V> OpaqueTable<V> {
    fn slot_of(&self, opaque: i32) -> usize {
        // `slots.len()` is a power of two (or zero: then nothing is looked up in it).
        (opaque as u32 as usize) & self.slots.len().wrapping_sub(1)
    }

    fn len(&self) -> usize {
        self.in_slots + self.overflow.len()
    }

    fn get(&self, opaque: i32) -> Option<&V> {
        if let Some(slot) = self.slots.get(self.slot_of(opaque)) {
            if slot.opaque == opaque {
                if let Some(v) = &slot.value {
                    return Some(v);
                }
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(&opaque)
    }

    /// Adds `value` under `opaque`; gives it back if the opaque is in use.
    fn insert(&mut self, opaque: i32, value: V) -> std::result::Result<(), V> {
        if self.slots.len() < MAX_SLOTS && 2 * (self.len() + 1) > self.slots.len() {
            // (Before the check below: growing moves values, never adds or drops one.)
            self.grow();
        }
        let i = self.slot_of(opaque);
        match self.slots.get_mut(i) {
            // The usual case: a free slot, and no value in the map under this opaque.
            Some(slot)
                if slot.value.is_none()
                    && (self.overflow.is_empty() || !self.overflow.contains_key(&opaque)) =>
            {
                slot.opaque = opaque;
                // `None` has nothing to drop: replaced without a drop, the value is written
                // straight into the slot (an assignment builds it aside first, for the drop).
                #[allow(clippy::mem_replace_option_with_some)] // the same, measured: kept
                std::mem::forget(std::mem::replace(&mut slot.value, Some(value)));
                self.in_slots += 1;
                Ok(())
            }
            Some(slot) if slot.holds(opaque) => Err(value),
            _ => match self.overflow.entry(opaque) {
                std::collections::hash_map::Entry::Occupied(_) => Err(value),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(value);
                    Ok(())
                }
            },
        }
    }

    /// Removes the value of `opaque` if `keep` says no to it (`keep` sees it first).
    fn remove_unless(&mut self, opaque: i32, keep: impl FnOnce(&V) -> bool) -> Option<V> {
        let i = self.slot_of(opaque);
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.opaque == opaque {
                if let Some(v) = &slot.value {
                    if keep(v) {
                        return None;
                    }
                    self.in_slots -= 1;
                    return slot.value.take();
                }
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        match self.overflow.entry(opaque) {
            std::collections::hash_map::Entry::Occupied(e) if !keep(e.get()) => Some(e.remove()),
            _ => None,
        }
    }

    fn remove(&mut self, opaque: i32) -> Option<V> {
        self.remove_unless(opaque, |_| false)
    }

    /// Every opaque and value, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (i32, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.value.as_ref().map(|v| (s.opaque, v)))
            .chain(self.overflow.iter().map(|(&o, v)| (o, v)))
    }

    /// Takes every value out.
    fn drain(&mut self) -> Vec<(i32, V)> {
        let mut out: Vec<(i32, V)> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.value.take().map(|v| (s.opaque, v)))
            .collect();
        out.extend(self.overflow.drain());
        self.in_slots = 0;
        out
    }

    /// Puts `value` in its opaque's slot, or in the overflow map when that slot is taken (the
    /// opaque is in neither).
    fn place(&mut self, opaque: i32, value: V) {
        let i = self.slot_of(opaque);
        match self.slots.get_mut(i) {
            Some(slot) if slot.value.is_none() => {
                slot.opaque = opaque;
                slot.value = Some(value);
                self.in_slots += 1;
            }
            _ => {
                self.overflow.insert(opaque, value);
            }
        }
    }

    /// Doubles the ring (to [`MIN_SLOTS`] at first) and puts every value where it now belongs.
    fn grow(&mut self) {
        let size = (2 * self.slots.len()).clamp(MIN_SLOTS, MAX_SLOTS);
        let all = self.drain();
        self.slots = std::iter::repeat_with(|| Slot {
            opaque: 0,
            value: None,
        })
        .take(size)
        .collect();
        for (opaque, value) in all {
            self.place(opaque, value);
        }
    }
}

/// Where the frames of one read of connection `idx` go as they are decoded: a response
/// completes its request at once (the command is moved once, from the decoder's result into
/// the request's end, instead of through a list and the calls between); the first frame that
/// is not a response, and every frame after it, goes to `others`, for
/// [`EventLoop::on_frame`] after the read. The clock is read once per read, for the first
/// frame.
struct Responses<'a> {
    pending: &'a mut PendingTable,
    deadlines: &'a mut Deadlines,
    pending_count: &'a AtomicUsize,
    idx: usize,
    conn_id: u64,
    arrival: Option<Arrival>,
    others: &'a mut Vec<RemotingCommand>,
    /// Responses that matched no pending request, and the opaque of the last one (logged
    /// after the read, with the connection's address).
    unmatched: usize,
    last_unmatched: i32,
}

impl super::connection::FrameSink for Responses<'_> {
    #[inline(always)]
    fn frame(
        &mut self,
        decoded: std::result::Result<RemotingCommand, CodecError>,
    ) -> std::result::Result<(), CodecError> {
        let Ok(cmd) = &decoded else {
            return decoded.map(drop); // fails the read
        };
        if !self.others.is_empty() || !cmd.is_response() {
            return self.others.frame(decoded);
        }
        let opaque = cmd.opaque;
        let arrival = self
            .arrival
            .get_or_insert_with(|| Arrival::new(Instant::now()));
        // As `EventLoop::on_frame` does: a response on another connection than its
        // request's is not its response.
        let (idx, conn_id) = (self.idx, self.conn_id);
        match self
            .pending
            .remove_unless(opaque, |p| p.token != idx || p.conn_id != conn_id)
        {
            Some(p) => {
                self.pending_count.fetch_sub(1, Ordering::Relaxed);
                self.deadlines.forget(p.deadline, opaque);
                p.reply
                    .complete_at(decoded.map_err(Error::Protocol), arrival);
            }
            None => {
                self.unmatched += 1;
                self.last_unmatched = opaque;
            }
        }
        Ok(())
    }
}

/// Logs responses from `addr` that matched no pending request: `count` of them, the last
/// with opaque `last`.
#[cold]
fn log_unmatched(addr: &str, count: usize, last: i32) {
    if count == 1 {
        log::debug!(
            "response with opaque {last} from {addr} matches no pending request \
             (it timed out, or the peer is confused): dropped"
        );
    } else {
        log::debug!(
            "{count} responses from {addr} (the last with opaque {last}) match no pending \
             request (they timed out, or the peer is confused): dropped"
        );
    }
}

struct EventLoop {
    poll: Poll,
    /// Commands taken from the queue, not run yet (see [`LoopShared::take_commands`]).
    inbox: VecDeque<Command>,
    shared: Arc<LoopShared>,
    pool: PoolSender,
    config: LoopConfig,
    /// Connections by token index; `free` lists the empty slots.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_addr: HashMap<Arc<str>, usize>,
    pending: PendingTable,
    /// Deadlines of pending requests, nearest first (see [`Deadlines`]: a response removes
    /// its entry at once when it is first or last in order; other ended entries are dropped
    /// when they reach the front, or when the deadlines are rebuilt).
    deadlines: Deadlines,
    /// Connections with output queued in this turn.
    dirty: Vec<usize>,
    /// Reused buffers.
    frames: Vec<RemotingCommand>,
    scratch: Vec<usize>,
    /// Request frame buffers written (or copied, or refused), given back to the pool together
    /// (one lock per [`RETURN_BATCH`] and per turn, not per request).
    returned: Vec<Vec<u8>>,
    next_conn_id: u64,
    /// Connections in `conns` not connected yet (resolving, connecting, handshaking): the
    /// only ones with a connect deadline. While none is, a turn skips the scans for connect
    /// deadlines.
    unconnected: usize,
    /// The clock read for the last read of this turn that had frames (see [`Arrival`]).
    read_clock: Option<Instant>,
    pending_count: Arc<AtomicUsize>,
    /// Lookup threads running.
    lookups: Arc<AtomicUsize>,
}

/// What a readiness event asks of a connection's read side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Nothing (write readiness only).
    No,
    /// Readable: read until the socket would block, or until a read comes back short (the
    /// socket had no more then, and data that arrives later raises a new event).
    Ready,
    /// The peer closed its side, or the socket has an error: read until it would block or
    /// ends, so that the end is seen now (no later event will report it).
    ToEnd,
}

enum Drained {
    /// The queue was empty: no command was taken.
    Empty,
    /// The queue is empty now.
    Idle,
    /// More commands are waiting.
    Busy,
    /// Stop the loop.
    Stop,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut busy = false;
        // The one clock read of a turn, taken after its work: it expires requests and sets
        // the next poll's timeout.
        let mut now = Instant::now();
        // The nearest entry of the deadlines, as `expire` last saw it (kept equal to
        // `self.deadlines.peek()` until the next turn: the poll's timeout starts from it
        // instead of looking again).
        let mut front = self.deadlines.peek();
        loop {
            let mut timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.poll_timeout(now, &mut front)
            };
            if timeout != Some(Duration::ZERO) && self.shared.going_to_sleep() {
                // A command came while the turn ended: take it without sleeping.
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop poll failed, stopping the loop: {e}");
                break;
            }
            self.shared.awake();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let read = if event.is_read_closed() || event.is_error() {
                    Read::ToEnd
                } else if event.is_readable() {
                    Read::Ready
                } else {
                    Read::No
                };
                self.on_event(event.token().0 - 1, read);
            }
            let drained = self.drain_commands();
            match drained {
                Drained::Empty | Drained::Idle => busy = false,
                Drained::Busy => busy = true,
                Drained::Stop => break,
            }
            self.flush_dirty();
            // The buffers of the frames written (and of any refused) go back together.
            if !self.returned.is_empty() {
                self.config.frames.put_all(&mut self.returned);
            }
            // A turn that only read (a response woke the loop: no command came) ends a
            // moment after its last read's clock read, which serves as the turn's: a
            // deadline is then seen at most that moment late, and a synchronous send's
            // response costs one clock read on this thread instead of two.
            now = match self.read_clock.take() {
                Some(at) if matches!(drained, Drained::Empty) => at,
                _ => Instant::now(),
            };
            front = self.expire(now);
            // The sends this turn finished go to their producers together (one lock each).
            crate::producer::hand_over_retired();
        }
        self.stop();
        crate::producer::hand_over_retired();
    }

    /// The time from `now` until the nearest request or connect deadline. `front` is
    /// `self.deadlines.peek()` (what [`EventLoop::expire`] returned), and stays so: entries of
    /// ended requests dropped from the front here are dropped from it too.
    fn poll_timeout(
        &mut self,
        now: Instant,
        front: &mut Option<(Instant, i32)>,
    ) -> Option<Duration> {
        debug_assert_eq!(*front, self.deadlines.peek());
        let mut next = None;
        while let Some((deadline, opaque)) = *front {
            if self
                .pending
                .get(opaque)
                .is_some_and(|p| p.deadline == deadline)
            {
                next = Some(deadline);
                break;
            }
            self.deadlines.pop();
            *front = self.deadlines.peek();
        }
        if self.unconnected > 0 {
            for conn in self.conns.iter().flatten() {
                if let Some(deadline) = conn.connect_deadline() {
                    next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                }
            }
        }
        next.map(|d| d.saturating_duration_since(now))
    }

    fn on_event(&mut self, idx: usize, mut read: Read) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return; // a connection closed earlier in this turn
        };
        if !conn.is_connected() {
            match conn.finish_connect() {
                Ok(true) => {
                    self.unconnected -= 1;
                    let tls = if conn.is_tls() { " (TLS)" } else { "" };
                    log::debug!("connected to {}{tls}", conn.addr);
                    // A TLS handshake may have read past its end (this event's readiness
                    // is used up): read what is there.
                    read = Read::ToEnd;
                    if let Some(stream) = &conn.stream {
                        configure_socket(stream, &conn.addr, self.config.tcp_keepalive);
                    }
                    let addr = conn.addr.clone();
                    if !conn.dirty {
                        conn.dirty = true;
                        self.dirty.push(idx);
                    }
                    self.set_state(addr, ConnectionState::Connected);
                }
                Ok(false) => return,
                Err(failure) => {
                    self.close(idx, failure);
                    return;
                }
            }
        }
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if conn.has_output() && !conn.dirty {
            conn.dirty = true;
            self.dirty.push(idx);
        }
        if read == Read::No {
            return;
        }
        let conn_id = conn.id;
        // Read by read: the frames of each read are handled before the next one, so their
        // header maps go back to the decode pool (sized for a read) and are reused.
        loop {
            let Some(conn) = self
                .conns
                .get_mut(idx)
                .and_then(Option::as_mut)
                .filter(|c| c.id == conn_id)
            else {
                return;
            };
            // Responses complete their requests as they are decoded; anything else (a
            // server's request) is kept in `frames`, with every frame after it, and handled
            // after the read, in order.
            let mut sink = Responses {
                pending: &mut self.pending,
                deadlines: &mut self.deadlines,
                pending_count: &self.pending_count,
                idx,
                conn_id,
                arrival: None,
                others: &mut self.frames,
                unmatched: 0,
                last_unmatched: 0,
            };
            let result = conn.read_some(&mut sink, read == Read::ToEnd);
            let arrival = sink.arrival.take();
            let (unmatched, last_unmatched) = (sink.unmatched, sink.last_unmatched);
            if let Some(a) = &arrival {
                self.read_clock = Some(a.at);
            }
            if unmatched > 0 {
                log_unmatched(&conn.addr, unmatched, last_unmatched);
            }

            // TLS: reading may leave records to send (alerts, key updates).
            if conn.has_output() && !conn.dirty {
                conn.dirty = true;
                self.dirty.push(idx);
            }
            if !self.frames.is_empty() {
                // One clock read for the frames of this read (not one per frame).
                let arrival = arrival.unwrap_or_else(|| Arrival::new(Instant::now()));
                self.read_clock = Some(arrival.at);
                let addr = conn.addr.clone();
                let mut frames = std::mem::take(&mut self.frames);
                for frame in frames.drain(..) {
                    self.on_frame(idx, conn_id, &addr, frame, &arrival);
                }
                self.frames = frames;
            }
            match result {
                Ok(true) => {}
                Ok(false) => return,
                Err(failure) => {
                    self.close(idx, failure);
                    return;
                }
            }
        }
    }

    /// A frame of a read handled after it (see [`Responses`]).
    fn on_frame(
        &mut self,
        idx: usize,
        conn_id: u64,
        addr: &Arc<str>,
        cmd: RemotingCommand,
        arrival: &Arrival,
    ) {
        if !cmd.is_response() {
            if let Some(handler) = self.config.inline.get(cmd.code) {
                return self.serve_inline(idx, conn_id, addr, cmd, &handler);
            }
            let task = Task::Serve(ServerRequest {
                addr: addr.clone(),
                token: idx,
                conn_id,
                request: cmd,
                reply_to: self.shared.clone(),
            });
            if self.pool.send(task).is_err() {
                log::warn!("callback pool gone: dropping a request from {addr}");
            }
            return;
        }
        let opaque = cmd.opaque;
        // A response on another connection than its request's is not its response.
        match self
            .pending
            .remove_unless(opaque, |p| p.token != idx || p.conn_id != conn_id)
        {
            Some(p) => {
                self.pending_count.fetch_sub(1, Ordering::Relaxed);
                self.deadlines.forget(p.deadline, opaque);
                p.reply.complete_at(Ok(cmd), arrival);
            }
            None => log_unmatched(addr, 1, opaque),
        }
    }

    /// Runs an inline handler on a server request and queues its answer on the connection
    /// the request came from (nothing for a oneway request). A panic is caught, logged and
    /// answered with SYSTEM_ERROR.
    fn serve_inline(
        &mut self,
        idx: usize,
        conn_id: u64,
        addr: &Arc<str>,
        cmd: RemotingCommand,
        handler: &super::InlineHandler,
    ) {
        let oneway = cmd.is_oneway();
        let opaque = cmd.opaque;
        let code = cmd.code;
        let serialize_type = cmd.serialize_type;
        let response = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler(addr, cmd)
        })) {
            Ok(r) => r,
            Err(_) => {
                log::error!("the inline handler of request code {code} from {addr} panicked");
                Some(
                    RemotingCommand::response(crate::protocol::ResponseCode::SYSTEM_ERROR, opaque)
                        .with_remark("request handler panicked"),
                )
            }
        };
        if oneway {
            return;
        }
        let mut response = response.unwrap_or_else(|| {
            RemotingCommand::response(
                crate::protocol::ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
                opaque,
            )
            .with_remark(format!(" request type {code} not supported"))
        });
        response.opaque = opaque;
        response.serialize_type = serialize_type;
        response.flag = (response.flag | crate::protocol::frame::FLAG_RESPONSE)
            & !crate::protocol::frame::FLAG_ONEWAY;
        let frame = match response.to_frame() {
            Ok(frame) => frame,
            Err(e) => {
                log::error!("cannot encode the answer to request code {code} from {addr}: {e}");
                return;
            }
        };
        match self.conns.get_mut(idx).and_then(Option::as_mut) {
            Some(conn) if conn.id == conn_id => {
                let back = conn.queue(frame);
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(idx);
                }
                if let Some(frame) = back {
                    self.give_back(frame);
                }
            }
            _ => log::debug!("connection gone: dropping the answer to request code {code}"),
        }
    }

    fn drain_commands(&mut self) -> Drained {
        // Commands in the last batch taken from the queue.
        let mut batch = 0;
        for taken in 0..COMMANDS_PER_TURN {
            if self.inbox.is_empty() {
                if batch == 1 {
                    // A batch of one (a synchronous sender's request: its sender waits for
                    // the response now) is rarely followed at once by another: the turn
                    // ends without a second look at the queue. `going_to_sleep` looks
                    // before the loop sleeps, so a command that did come is not left.
                    return Drained::Idle;
                }
                self.shared.take_commands(&mut self.inbox);
                batch = self.inbox.len();
            }
            match self.inbox.pop_front() {
                Some(Command::Request(r)) => self.on_request(r),
                Some(Command::Reply {
                    token,
                    conn_id,
                    frame,
                }) => match self.conns.get_mut(token).and_then(Option::as_mut) {
                    Some(conn) if conn.id == conn_id => {
                        let back = conn.queue(frame);
                        if !conn.dirty {
                            conn.dirty = true;
                            self.dirty.push(token);
                        }
                        if let Some(frame) = back {
                            self.give_back(frame);
                        }
                    }
                    _ => log::debug!("connection gone: dropping a reply to a server request"),
                },
                Some(Command::Close(addr)) => {
                    if let Some(&idx) = self.by_addr.get(&addr) {
                        self.close(idx, Failure::Local("closed by the client"));
                    }
                }
                Some(Command::Resolved {
                    token,
                    conn_id,
                    result,
                }) => self.on_resolved(token, conn_id, result),
                Some(Command::Shutdown) => return Drained::Stop,
                None if taken == 0 => return Drained::Empty,
                None => return Drained::Idle,
            }
        }
        Drained::Busy
    }

    fn on_request(&mut self, r: Request) {
        let deadline = r.deadline;
        let hint = r.target.conn_hint.load(Ordering::Relaxed);
        let hinted = self
            .conns
            .get(hint)
            .and_then(Option::as_ref)
            .is_some_and(|c| Arc::ptr_eq(&c.addr, &r.target.addr));
        let known = if hinted {
            Some(hint)
        } else {
            self.by_addr.get(&r.target.addr).copied()
        };
        let idx = match known {
            Some(idx) => idx,
            None => match self.connect(&r.target) {
                Ok(idx) => idx,
                Err(e) => {
                    log::warn!("cannot connect to {}: {e}", r.target.addr);
                    self.set_state(
                        r.target.addr.clone(),
                        ConnectionState::Closed {
                            reason: e.to_string(),
                        },
                    );
                    if let Some(reply) = r.reply {
                        reply.complete(Err(Error::Io {
                            addr: r.target.addr.to_string(),
                            source: e,
                        }));
                    }
                    return;
                }
            },
        };
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            // by_addr only names live connections.
            log::error!("no connection behind token {idx} for {}", r.target.addr);
            return;
        };
        let queued = conn.queued_bytes();
        if queued > 0 && queued.saturating_add(r.frame.len()) > self.config.max_output {
            // An empty queue takes any frame, so every frame can go out eventually.
            let error = Error::Io {
                addr: r.target.addr.to_string(),
                source: io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "output queue full: {queued} bytes are waiting for the peer to read, \
                         and this request's {} bytes would go over \
                         max_connection_output_bytes ({})",
                        r.frame.len(),
                        self.config.max_output
                    ),
                ),
            };
            match r.reply {
                Some(reply) => reply.complete(Err(error)),
                None => log::warn!("oneway request dropped: {error}"),
            }
            self.give_back(r.frame);
            return;
        }
        if let Some(reply) = r.reply {
            let pending = Pending {
                deadline,
                timeout: r.timeout,
                token: idx,
                conn_id: conn.id,
                reply,
                keep_connection_on_timeout: r.keep_connection_on_timeout,
            };
            if let Err(p) = self.pending.insert(r.opaque, pending) {
                p.reply
                    .complete(Err(Error::Protocol(CodecError::Malformed(format!(
                        "opaque {} is still in use by a pending request",
                        r.opaque
                    )))));
                return;
            }
            self.deadlines.push(deadline, r.opaque);
            self.pending_count.fetch_add(1, Ordering::Relaxed);
        }
        // Plain TCP keeps the buffer until it is written (no copy); TLS copies it.
        let back = conn.queue(r.frame);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(idx);
        }
        if let Some(frame) = back {
            self.give_back(frame);
        }
    }

    /// Gives a request's frame buffer back to the pool, in a batch (see [`RETURN_BATCH`]).
    fn give_back(&mut self, frame: Vec<u8>) {
        give_back(&self.config.frames, &mut self.returned, frame);
    }

    /// Starts a non-blocking connect to `target`: at once for an IP address; for a host name,
    /// after a lookup on a lookup thread (the connection queues requests meanwhile). The
    /// lookup and the connect share the connect timeout.
    fn connect(&mut self, target: &Target) -> io::Result<usize> {
        let deadline = deadline_after(Instant::now(), self.config.connect_timeout);
        let literal = check_syntax(&target.addr)?;
        let tls = match &self.config.tls {
            None => None,
            Some(connector) => Some(connector.session(&target.addr).map_err(io::Error::other)?),
        };
        let (conn_id, mut conn) = match literal {
            Some(socket) => {
                let stream = TcpStream::connect(socket)?;
                log::debug!("connecting to {}", target.addr);
                let id = self.next_conn_id + 1;
                let conn = Conn::connecting(
                    id,
                    target.addr.clone(),
                    stream,
                    deadline,
                    self.config.max_frame,
                    tls,
                );
                (id, conn)
            }
            None => {
                if self.lookups.load(Ordering::SeqCst) >= MAX_LOOKUPS {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "cannot resolve {}: {MAX_LOOKUPS} name lookups are already under way",
                            host_of(&target.addr)
                        ),
                    ));
                }
                let id = self.next_conn_id + 1;
                let conn = Conn::resolving(
                    id,
                    target.addr.clone(),
                    deadline,
                    self.config.max_frame,
                    tls,
                );
                (id, conn)
            }
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = conn.register(self.poll.registry(), Token(idx + 1)) {
            self.free.push(idx);
            return Err(e);
        }
        if literal.is_none() {
            if let Err(e) = self.spawn_lookup(&target.addr, idx, conn_id) {
                self.free.push(idx);
                return Err(e);
            }
        }
        self.next_conn_id = conn_id;
        target.conn_hint.store(idx, Ordering::Relaxed);
        self.conns[idx] = Some(conn);
        self.unconnected += 1;
        self.by_addr.insert(target.addr.clone(), idx);
        self.set_state(target.addr.clone(), ConnectionState::Connecting);
        Ok(idx)
    }

    /// Looks `addr` up on a thread of its own, which reports to this loop with
    /// [`Command::Resolved`]. A lookup that outlives its connect's deadline is ignored when it
    /// reports (the connection id no longer matches).
    fn spawn_lookup(&self, addr: &Arc<str>, token: usize, conn_id: u64) -> io::Result<()> {
        let resolver = self.config.resolver.clone();
        let shared = self.shared.clone();
        let lookups = self.lookups.clone();
        let name = addr.to_string();
        lookups.fetch_add(1, Ordering::SeqCst);
        log::debug!("looking up {name}");
        let spawned = thread::Builder::new()
            .name("rocketmq-resolve".into())
            .spawn(move || {
                let result = resolver.lookup(&name);
                lookups.fetch_sub(1, Ordering::SeqCst);
                // The loop may have stopped meanwhile: nothing waits for this answer then.
                let _ = shared.send(Command::Resolved {
                    token,
                    conn_id,
                    result,
                });
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => {
                self.lookups.fetch_sub(1, Ordering::SeqCst);
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot start a thread to resolve {}: {e}", host_of(addr)),
                ))
            }
        }
    }

    /// A lookup finished: connect to the first address it found, or fail the connection.
    fn on_resolved(
        &mut self,
        idx: usize,
        conn_id: u64,
        result: io::Result<Vec<std::net::SocketAddr>>,
    ) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return; // the connection is gone (timed out, closed): a late answer
        };
        if conn.id != conn_id || !matches!(conn.phase, Phase::Resolving { .. }) {
            return;
        }
        let socket = match result {
            Ok(found) => match found.first() {
                Some(&s) => s,
                None => {
                    let e = io::Error::new(io::ErrorKind::NotFound, "resolves to no address");
                    self.close(idx, Failure::Io(e));
                    return;
                }
            },
            Err(e) => {
                self.close(idx, Failure::Io(e));
                return;
            }
        };
        log::debug!("connecting to {} ({socket})", conn.addr);
        let started = TcpStream::connect(socket)
            .and_then(|stream| conn.start_connect(stream, self.poll.registry(), Token(idx + 1)));
        // Queued output is flushed once connected (the connect ends with a writable event).
        if let Err(e) = started {
            self.close(idx, Failure::Io(e));
        }
    }

    /// Writes the output queued on every dirty connection, and sets write interest from
    /// what is left.
    fn flush_dirty(&mut self) {
        // Nothing below adds to the list (a close does not).
        while let Some(idx) = self.dirty.pop() {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            conn.dirty = false;
            if !conn.is_connected() {
                continue; // flushed once connected
            }
            let (pool, returned) = (&self.config.frames, &mut self.returned);
            let result = conn
                .flush(|frame| give_back(pool, returned, frame))
                .and_then(|()| {
                    conn.update_interest(self.poll.registry(), Token(idx + 1))
                        .map_err(Failure::Io)
                });
            if let Err(failure) = result {
                self.close(idx, failure);
            }
        }
    }

    /// Ends overdue requests with `Timeout` (closing their connections when configured to)
    /// and overdue connects with an error. Returns the nearest entry of the deadlines left
    /// (`self.deadlines.peek()`; it may be an ended request's).
    fn expire(&mut self, now: Instant) -> Option<(Instant, i32)> {
        debug_assert_eq!(
            self.unconnected,
            self.conns
                .iter()
                .flatten()
                .filter(|c| !c.is_connected())
                .count()
        );
        // Nothing due (the usual turn): only the upkeep below.
        let mut front = self.deadlines.peek();
        if front.is_some_and(|(deadline, _)| deadline <= now) {
            self.expire_requests(now);
            front = self.deadlines.peek();
        }
        if self.deadlines.len() > 1024 {
            self.trim_deadlines();
            front = self.deadlines.peek();
        }
        if self.unconnected > 0 {
            self.expire_connects(now);
            // (Closing a connection may change the deadlines.)
            front = self.deadlines.peek();
        }
        front
    }

    /// Ends the overdue requests with `Timeout` (see [`EventLoop::expire`]).
    #[cold]
    fn expire_requests(&mut self, now: Instant) {
        let mut to_close: Vec<(usize, u64, Duration)> = Vec::new();
        while let Some((deadline, opaque)) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if !self
                .pending
                .get(opaque)
                .is_some_and(|p| p.deadline == deadline)
            {
                continue; // ended already
            }
            if let Some(p) = self.pending.remove(opaque) {
                self.pending_count.fetch_sub(1, Ordering::Relaxed);
                let conn = self.conns.get(p.token).and_then(Option::as_ref);
                let addr = conn.map(|c| c.addr.to_string()).unwrap_or_default();
                if self.config.close_on_request_timeout
                    && !p.keep_connection_on_timeout
                    && conn.is_some_and(|c| c.id == p.conn_id && c.is_connected())
                {
                    to_close.push((p.token, p.conn_id, p.timeout));
                }
                p.reply.complete(Err(Error::Timeout {
                    addr,
                    after: p.timeout,
                    last: None,
                }));
            }
        }
        // A peer that let a request time out is presumed stuck: drop the connection and the
        // output queued for it, and fail what else is pending on it (Java closes the channel
        // on a timeout too, `clientCloseSocketIfTimeout`).
        for (idx, conn_id, after) in to_close {
            let same = self
                .conns
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.id == conn_id);
            if same {
                self.close(idx, Failure::RequestTimedOut(after));
            }
        }
    }

    /// Keeps the deadlines in proportion to the pending requests: first drops the entries of
    /// ended requests at the front (responses mostly come in the order of their requests, so
    /// that is usually all of them, without a sort), then rebuilds if still needed.
    #[cold]
    fn trim_deadlines(&mut self) {
        if self.deadlines.len() > 1024 && self.deadlines.len() > 2 * self.pending.len() {
            while let Some((deadline, opaque)) = self.deadlines.peek() {
                if self
                    .pending
                    .get(opaque)
                    .is_some_and(|p| p.deadline == deadline)
                {
                    break;
                }
                self.deadlines.pop();
            }
        }
        if self.deadlines.len() > 1024 && self.deadlines.len() > 2 * self.pending.len() {
            self.deadlines
                .rebuild(self.pending.iter().map(|(opaque, p)| (p.deadline, opaque)));
        }
    }

    /// Fails the connects (lookups, TLS handshakes) past their deadline. Only called while
    /// some connection is not connected yet (see [`EventLoop::unconnected`]).
    #[cold]
    fn expire_connects(&mut self, now: Instant) {
        let mut overdue = std::mem::take(&mut self.scratch);
        overdue.extend(self.conns.iter().enumerate().filter_map(|(i, c)| {
            c.as_ref()
                .and_then(Conn::connect_deadline)
                .filter(|deadline| *deadline <= now)
                .map(|_| i)
        }));
        for &idx in &overdue {
            let resolving = self
                .conns
                .get(idx)
                .and_then(Option::as_ref)
                .filter(|c| matches!(c.phase, Phase::Resolving { .. }))
                .map(|c| host_of(&c.addr).to_owned());
            let handshaking = self
                .conns
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| matches!(c.phase, Phase::Handshaking { .. }));
            let after = self.config.connect_timeout;
            if handshaking {
                let why = format!("TLS handshake timed out after {after:?} (the connect timeout)");
                self.close(idx, Failure::Tls(why));
                continue;
            }
            let message = match resolving {
                Some(host) => format!(
                    "connect timed out after {after:?}: the lookup of {host} did not finish"
                ),
                None => format!("connect timed out after {after:?}"),
            };
            self.close(
                idx,
                Failure::Io(io::Error::new(io::ErrorKind::TimedOut, message)),
            );
        }
        overdue.clear();
        self.scratch = overdue;
    }

    /// Closes connection `idx` and fails every request pending on it.
    fn close(&mut self, idx: usize, failure: Failure) {
        let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        if !conn.is_connected() {
            self.unconnected -= 1;
        }
        if matches!(failure, Failure::Local(_)) && conn.is_connected() {
            conn.close_notify();
        }
        if let Err(e) = conn.deregister(self.poll.registry()) {
            log::debug!("deregistering {}: {e}", conn.addr);
        }
        if self.by_addr.get(&conn.addr) == Some(&idx) {
            self.by_addr.remove(&conn.addr);
        }
        let error = failure.to_error(&conn.addr);
        match failure {
            Failure::Local(_) => log::debug!("{error}"),
            Failure::RequestTimedOut(_) => {
                conn.reset_on_close();
                log::warn!("{error}");
            }
            _ => log::warn!("{error}"),
        }
        let failed: Vec<i32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.token == idx && p.conn_id == conn.id)
            .map(|(opaque, _)| opaque)
            .collect();
        self.pending_count
            .fetch_sub(failed.len(), Ordering::Relaxed);
        self.set_state(
            conn.addr.clone(),
            ConnectionState::Closed {
                reason: error.to_string(),
            },
        );
        drop(conn);
        for opaque in failed {
            if let Some(p) = self.pending.remove(opaque) {
                p.reply.complete(Err(error.duplicate()));
            }
        }
    }

    fn set_state(&self, addr: Arc<str>, state: ConnectionState) {
        self.shared.states.lock().insert(addr, state);
    }

    /// Ends everything with `Shutdown`: queued commands, pending requests. Output already
    /// queued gets one non-blocking attempt to leave.
    fn stop(&mut self) {
        self.shared.close_commands(&mut self.inbox);
        for cmd in std::mem::take(&mut self.inbox) {
            if let Command::Request(Request {
                reply: Some(reply), ..
            }) = cmd
            {
                reply.complete(Err(Error::Shutdown));
            }
        }
        for conn in self.conns.iter_mut().flatten() {
            if conn.is_connected() {
                if conn.has_output() {
                    let _ = conn.flush(drop);
                }
                conn.close_notify();
            }
        }
        self.pending_count
            .fetch_sub(self.pending.len(), Ordering::Relaxed);
        for (_, p) in self.pending.drain() {
            p.reply.complete(Err(Error::Shutdown));
        }
        self.deadlines.clear();
        self.unconnected = 0;
        for conn in self.conns.iter_mut().filter_map(Option::take) {
            self.shared.states.lock().insert(
                conn.addr.clone(),
                ConnectionState::Closed {
                    reason: "the client is shut down".into(),
                },
            );
        }
        self.by_addr.clear();
    }
}

/// The deadlines of pending requests, nearest first: a queue for deadlines that come in order
/// (requests with one timeout, queued one after another: the common case, O(1) each) and a
/// heap for the others. Entries of requests that ended stay until they reach the front (the
/// loop drops them then), or until [`Deadlines::rebuild`].
#[derive(Default)]
struct Deadlines {
    in_order: VecDeque<(Instant, i32)>,
    heap: BinaryHeap<Reverse<(Instant, i32)>>,
}

impl Deadlines {
    fn push(&mut self, deadline: Instant, opaque: i32) {
        match self.in_order.back() {
            Some(&(last, _)) if deadline < last => self.heap.push(Reverse((deadline, opaque))),
            _ => self.in_order.push_back((deadline, opaque)),
        }
    }

    /// The nearest deadline and its opaque.
    fn peek(&self) -> Option<(Instant, i32)> {
        let queued = self.in_order.front().copied();
        let heaped = self.heap.peek().map(|r| r.0);
        match (queued, heaped) {
            (Some(q), Some(h)) => Some(q.min(h)),
            (q, h) => q.or(h),
        }
    }

    /// Drops the entry of a request that ended (`deadline`, `opaque`) when it is first or last
    /// in the queue (the usual case: responses come in the order of their requests, and a
    /// synchronous sender's is the only one), so the loop need not look it up when it reaches
    /// the front; one elsewhere stays until then, as any other. An entry equal to it is no
    /// pending request's: opaques of pending requests are unique.
    #[inline]
    fn forget(&mut self, deadline: Instant, opaque: i32) {
        let entry = (deadline, opaque);
        if self.in_order.front() == Some(&entry) {
            self.in_order.pop_front();
        } else if self.in_order.back() == Some(&entry) {
            self.in_order.pop_back();
        }
    }

    /// Drops the entry [`Deadlines::peek`] returns.
    fn pop(&mut self) {
        let queued = self.in_order.front().copied();
        let heaped = self.heap.peek().map(|r| r.0);
        match (queued, heaped) {
            (Some(q), Some(h)) if h < q => {
                self.heap.pop();
            }
            (Some(_), _) => {
                self.in_order.pop_front();
            }
            (None, _) => {
                self.heap.pop();
            }
        }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.heap.len()
    }

    /// Keeps only `live` (the entries of pending requests).
    fn rebuild(&mut self, live: impl Iterator<Item = (Instant, i32)>) {
        self.heap.clear();
        self.in_order.clear();
        let mut sorted: Vec<(Instant, i32)> = live.collect();
        sorted.sort_unstable();
        self.in_order.extend(sorted);
    }

    fn clear(&mut self) {
        self.in_order.clear();
        self.heap.clear();
    }
}

/// `now + timeout`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        // Unreachable on real clocks; an immediate deadline beats a panic.
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The opaque table keeps exactly what a map would, whatever the opaques: sequential ones,
    /// ones that share a slot (equal low bits, at every ring size), negative and extreme ones,
    /// duplicates (refused, the value handed back), removals that the predicate refuses, while
    /// the ring grows and after a drain.
    #[test]
    fn opaque_table_keeps_what_a_map_keeps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..300 {
            let mut table: OpaqueTable<u64> = OpaqueTable::default();
            let mut model: HashMap<i32, u64> = HashMap::new();
            let mut next: i32 = rng.gen_range(-2..3) * 1_000_000_000;
            let mut used: Vec<i32> = Vec::new();
            for step in 0..rng.gen_range(1..3000u64) {
                let pick = |rng: &mut rand::rngs::StdRng, used: &[i32], next: i32| -> i32 {
                    match rng.gen_range(0..8) {
                        0 if !used.is_empty() => used[rng.gen_range(0..used.len())],
                        1 if !used.is_empty() => {
                            // Same low bits as one in use, at some ring size.
                            let base = used[rng.gen_range(0..used.len())];
                            let ring =
                                [MIN_SLOTS, 2 * MIN_SLOTS, 4096, MAX_SLOTS][rng.gen_range(0..4)];
                            base.wrapping_add(ring as i32 * rng.gen_range(-3..4))
                        }
                        2 => [i32::MIN, i32::MAX, -1, 0, 1][rng.gen_range(0..5)],
                        _ => next,
                    }
                };
                let opaque = pick(&mut rng, &used, next);
                match rng.gen_range(0..10) {
                    0..=4 => {
                        next = next.wrapping_add(1);
                        let got = table.insert(opaque, step);
                        let expected = match model.entry(opaque) {
                            std::collections::hash_map::Entry::Occupied(_) => Err(step),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(step);
                                used.push(opaque);
                                Ok(())
                            }
                        };
                        assert_eq!(got, expected, "round {round} insert {opaque}");
                    }
                    5 | 6 => {
                        let refuse = rng.gen_bool(0.3);
                        let got = table.remove_unless(opaque, |_| refuse);
                        let expected = if refuse { None } else { model.remove(&opaque) };
                        assert_eq!(got, expected, "round {round} remove {opaque}");
                    }
                    7 => assert_eq!(table.remove(opaque), model.remove(&opaque)),
                    8 if rng.gen_range(0..200) == 0 => {
                        let mut got = table.drain();
                        let mut expected: Vec<(i32, u64)> = model.drain().collect();
                        got.sort_unstable();
                        expected.sort_unstable();
                        assert_eq!(got, expected, "round {round} drain");
                    }
                    _ => assert_eq!(table.get(opaque), model.get(&opaque), "round {round}"),
                }
                assert_eq!(table.len(), model.len(), "round {round}");
            }
            let mut got: Vec<(i32, u64)> = table.iter().map(|(o, v)| (o, *v)).collect();
            let mut expected: Vec<(i32, u64)> = model.iter().map(|(&o, &v)| (o, v)).collect();
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "round {round}");
            for (o, v) in &expected {
                assert_eq!(table.get(*o), Some(v));
            }
        }
    }

    /// Deadlines pushed in order, out of order and mixed, with pops in between, come out
    /// nearest first, as a sorted list says; a rebuild keeps exactly the live ones.
    #[test]
    fn deadlines_come_out_nearest_first() {
        let base = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for round in 0..200 {
            let mut d = Deadlines::default();
            let mut reference: Vec<(Instant, i32)> = Vec::new();
            let mut clock = 0u64;
            for opaque in 0..rng.gen_range(1..300) {
                // Mostly increasing (one timeout), sometimes earlier (a shorter one).
                clock += rng.gen_range(0..5);
                let at = if rng.gen_range(0..4) == 0 {
                    clock.saturating_sub(rng.gen_range(0..50))
                } else {
                    clock
                };
                let entry = (base + Duration::from_micros(at), opaque);
                d.push(entry.0, entry.1);
                reference.push(entry);
                if rng.gen_range(0..5) == 0 {
                    reference.sort_unstable();
                    assert_eq!(d.peek(), Some(reference[0]), "round {round}");
                    d.pop();
                    reference.remove(0);
                }
                if !reference.is_empty() && rng.gen_range(0..4) == 0 {
                    // A request ends: its entry goes if first or last, else stays (then it
                    // comes out in its turn, as the loop would skip it).
                    let ended = reference[rng.gen_range(0..reference.len())];
                    let before = d.len();
                    d.forget(ended.0, ended.1);
                    if d.len() < before {
                        let at = reference.iter().position(|e| *e == ended).unwrap();
                        reference.remove(at);
                    }
                }
            }
            reference.sort_unstable();
            if round % 2 == 0 {
                let live: Vec<_> = reference.iter().copied().filter(|e| e.1 % 3 != 0).collect();
                d.rebuild(live.iter().copied());
                reference = live;
            }
            assert_eq!(d.len(), reference.len());
            for expected in reference {
                assert_eq!(d.peek(), Some(expected), "round {round}");
                d.pop();
            }
            assert_eq!(d.peek(), None);
        }
    }

    /// A read's frames through [`Responses`]: each response completes its request as it is
    /// decoded (with the read's one arrival time); the first frame that is not a response and
    /// every frame after it are kept, in order, for after the read; a response from another
    /// connection than its request's leaves the request pending; a frame that does not
    /// decode fails the read, after the frames before it were handled.
    #[test]
    fn responses_complete_as_decoded_and_the_rest_keeps_its_order() {
        use super::super::completion::{pair, Handle};
        use super::super::connection::ReadBuf;
        let (idx, conn_id) = (3, 7);
        let mut pending = PendingTable::default();
        let mut handles: HashMap<i32, Handle<RemotingCommand>> = HashMap::new();
        let now = Instant::now();
        for (opaque, token, conn) in [(1, idx, conn_id), (2, idx, conn_id), (3, idx, conn_id + 1)] {
            let (completer, handle) = pair();
            let p = Pending {
                deadline: now + Duration::from_secs(60),
                timeout: Duration::from_secs(60),
                token,
                conn_id: conn,
                reply: Reply::Handle(completer),
                keep_connection_on_timeout: false,
            };
            assert!(pending.insert(opaque, p).is_ok());
            handles.insert(opaque, handle);
        }
        let count = AtomicUsize::new(3);
        let frames: Vec<RemotingCommand> = vec![
            RemotingCommand::response(0, 1).with_remark("one"),
            RemotingCommand::response(0, 3), // its request went out on another connection
            RemotingCommand::request(39),    // a server's request
            RemotingCommand::response(0, 2), // after it: kept, in order
            RemotingCommand::response(0, 99), // matches nothing
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode(&mut bytes).unwrap();
        }
        // Then a frame that does not decode (serialize type 7).
        bytes.extend_from_slice(&8u32.to_be_bytes());
        bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        let mut rb = ReadBuf::new(1 << 20);
        rb.spare()[..bytes.len()].copy_from_slice(&bytes);
        let mut others = Vec::new();
        let mut deadlines = Deadlines::default();
        for opaque in [1, 2, 3] {
            deadlines.push(pending.get(opaque).unwrap().deadline, opaque);
        }
        let mut sink = Responses {
            pending: &mut pending,
            deadlines: &mut deadlines,
            pending_count: &count,
            idx,
            conn_id,
            arrival: None,
            others: &mut others,
            unmatched: 0,
            last_unmatched: 0,
        };
        let err = rb.filled(bytes.len(), &mut sink).unwrap_err();
        assert_eq!(err, CodecError::UnknownSerializeType(7));
        assert!(sink.arrival.is_some(), "the read's arrival was taken");
        // The response on another connection matched nothing (logged after the read).
        assert_eq!((sink.unmatched, sink.last_unmatched), (1, 3));
        // Opaque 1 ended with its response; 3 (another connection) and 2 (after the server
        // request) are still pending.
        let one = handles.remove(&1).unwrap().wait().unwrap();
        assert_eq!(one.remark.as_deref(), Some("one"));
        assert_eq!(count.load(Ordering::Relaxed), 2);
        assert!(pending.get(2).is_some() && pending.get(3).is_some());
        assert!(!handles[&2].is_done() && !handles[&3].is_done());
        let kept: Vec<(i32, i32, bool)> = others
            .iter()
            .map(|c| (c.code, c.opaque, c.is_response()))
            .collect();
        assert_eq!(kept, vec![(39, 0, false), (0, 2, true), (0, 99, true)]);
        // The ended request's deadline went with it (it was first); the others' stay.
        assert_eq!(deadlines.len(), 2);
        assert_eq!(deadlines.peek().map(|(_, o)| o), Some(2));
    }
}
