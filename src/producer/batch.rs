//! Auto-batching: small sends to the same topic (and queue) gathered into one
//! SEND_BATCH_MESSAGE, as the Java client's `ProduceAccumulator` does when `autoBatch` is on.
//!
//! # What is batched
//!
//! With [`ProducerConfig::auto_batch`](crate::ProducerConfig::auto_batch) on, these sends go
//! through the accumulator, as in Java (`DefaultMQProducer.send(msg)`, `send(msg, mq)`,
//! `send(msg, callback)` and `send(msg, mq, callback)` all call `sendByAccumulator`):
//! [`Producer::send`](crate::Producer::send), [`Producer::send_to_queue`](crate::Producer::send_to_queue),
//! [`Producer::send_async`](crate::Producer::send_async),
//! [`Producer::send_to_queue_async`](crate::Producer::send_to_queue_async) and
//! [`Producer::send_with_callback`](crate::Producer::send_with_callback).
//! Selector sends, oneway sends, explicit batches and transactional sends are never batched;
//! nor, under [`strict_order`](crate::ProducerConfig::strict_order) with the message-hash
//! strategy, are messages with keys (each goes to its key's queue).
//! Neither are messages Java's `canBatch` refuses: delayed or timed ones (`DELAY`,
//! `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`), retry topics (`%RETRY%`), messages
//! with a producer group property (`PGROUP`, transactions) and half messages (`TRAN_MSG`). A
//! message whose size alone reaches `batch_max_bytes` is sent on its own too.
//!
//! Messages are grouped by topic, target queue (none for automatic routing: the batch is then
//! routed like one message), the `WAIT` flag and tags: Java's `AggregateKey`.
//!
//! # When a batch leaves
//!
//! When it holds [`batch_max_bytes`](crate::ProducerConfig::batch_max_bytes) (the sender that
//! fills it sends it, on its own thread), or [`batch_max_delay`](crate::ProducerConfig::batch_max_delay)
//! after its first message (the `rocketmq-batch` thread sends it). Shutdown and
//! [`Producer::flush`](crate::Producer::flush) send every open batch before they wait for
//! in-flight sends. A synchronous `send` blocks until its batch is
//! answered, so a lone synchronous sender waits up to the delay for each message, as in Java.
//!
//! # Time and retries
//!
//! A synchronous caller keeps its one budget: its send timeout counts from its call, so the
//! wait for memory and for the batch to leave are part of it, and its batch is tried with
//! [`retries`](crate::ProducerConfig::retries). A batch of only asynchronous callers gets the
//! send timeout from when it leaves and
//! [`async_retries`](crate::ProducerConfig::async_retries). Asynchronous callers in a batch
//! with a synchronous one share the synchronous budget (the earliest deadline of the batch).
//! A delay longer than the send timeout therefore fails synchronous sends with a timeout.
//!
//! # Results
//!
//! Every caller gets its own [`SendResult`]: the broker's comma-joined offset ids are split,
//! `msg_id` is the caller's own `UNIQ_KEY`, `queue_offset` is the batch's first offset plus the
//! message's index in the batch (Java's `splitSendResults`). When the broker answers with a
//! single id (a batch consume queue), every caller gets the batch's result. A failed batch fails
//! every message in it with the same error (after the usual retries).
//!
//! # Memory
//!
//! Messages waiting in batches or in batches in flight hold at most
//! [`batch_total_max_bytes`](crate::ProducerConfig::batch_total_max_bytes). A sender that would
//! exceed it blocks, like backpressure, up to the send timeout and then gets
//! [`Error::Backpressure`]. (Java sends such a message directly instead, unbatched; blocking
//! keeps the bound a bound on memory and on the broker's load.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::stats::Op;
use super::{finish_done, Budget, Done, Hold, Inner, SharedHold, Target};
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::message::{property, IdStr, Message, MessageQueue, SendResult};
use crate::producer::prepare;

/// Messages of a batch share these (Java's `AggregateKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    topic: String,
    queue: Option<MessageQueue>,
    wait: Option<String>,
    tags: Option<String>,
}

impl Key {
    fn of(msg: &Message, queue: Option<MessageQueue>) -> Key {
        Key {
            topic: msg.topic().to_string(),
            queue,
            wait: msg
                .property(property::WAIT_STORE_MSG_OK)
                .map(str::to_string),
            tags: msg.tags().map(str::to_string),
        }
    }

    /// Whether `msg` sent to `queue` belongs with this key (compared without building a key).
    fn matches(&self, msg: &Message, queue: Option<&MessageQueue>) -> bool {
        self.topic == msg.topic()
            && self.queue.as_ref() == queue
            && self.wait.as_deref() == msg.property(property::WAIT_STORE_MSG_OK)
            && self.tags.as_deref() == msg.tags()
    }
}

/// One caller's message and how to tell it the outcome.
struct Entry {
    msg: Message,
    id: String,
    done: Done,
    /// The caller's statistics, ended with its own result.
    op: Op,
    /// A synchronous caller's deadline (its send timeout from the call).
    sync_deadline: Option<Instant>,
}

/// An open batch.
struct Batch {
    key: Key,
    /// Tells a batch from a later one of the same key.
    seq: u64,
    created: Instant,
    bytes: usize,
    entries: Vec<Entry>,
}

struct State {
    /// Usually a handful: searched in place, no key is built per message.
    open: Vec<Batch>,
    /// Bytes in open batches and in batches in flight.
    held: usize,
    /// Senders blocked on the memory bound.
    waiting: usize,
    closed: bool,
    next_seq: u64,
}

/// The accumulator of one producer.
pub(crate) struct Accumulator {
    max_delay: Duration,
    max_bytes: usize,
    total_max: usize,
    /// Strict order with the message-hash strategy: keyed messages go on their own (their
    /// queue is their key's, not the batch's).
    strict_keys: bool,
    state: Mutex<State>,
    /// Signals the flusher (a new first batch, closing).
    flush_cv: Condvar,
    /// Signals senders blocked on the memory bound.
    space_cv: Condvar,
    /// Held from taking a batch out of `state` until it is handed to the I/O thread, so that
    /// batches of a key leave in the order they were filled. Taken before `state`.
    launch: Mutex<()>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// The producer, for the batches [`Accumulator::close`] sends.
    inner: Mutex<Weak<Inner>>,
}

impl std::fmt::Debug for Accumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Accumulator")
            .field("open", &s.open.len())
            .field("held", &s.held)
            .finish_non_exhaustive()
    }
}

/// Bytes a message holds while it waits (what its batch record will take, roughly).
fn held_size(msg: &Message) -> usize {
    20 + msg.body().len()
        + msg
            .properties()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
}

/// Java's `canBatch` (without the memory check, which blocks here instead).
fn can_batch(msg: &Message, max_bytes: usize) -> bool {
    let positive = |key: &str| {
        msg.property(key)
            .is_some_and(|v| v.trim().parse::<i64>().map_or(true, |n| n > 0))
    };
    !(positive(property::DELAY_TIME_LEVEL)
        || positive(property::TIMER_DELIVER_MS)
        || positive(property::TIMER_DELAY_SEC)
        || positive(property::TIMER_DELAY_MS)
        || msg.topic().starts_with("%RETRY%")
        || msg.property(property::PRODUCER_GROUP).is_some()
        || msg.property(property::TRANSACTION_PREPARED).is_some()
        || held_size(msg) >= max_bytes)
}

impl Accumulator {
    /// An accumulator with the producer's batch settings.
    pub(crate) fn new(config: &ProducerConfig) -> Arc<Accumulator> {
        Arc::new(Accumulator {
            max_delay: config.batch_max_delay(),
            max_bytes: config.batch_max_bytes(),
            total_max: config.batch_total_max_bytes(),
            strict_keys: config.strict_order()
                && config.routing_strategy()
                    == crate::routing::router::RoutingStrategy::MessageHash,
            state: Mutex::new(State {
                open: Vec::new(),
                held: 0,
                waiting: 0,
                closed: false,
                next_seq: 0,
            }),
            flush_cv: Condvar::new(),
            space_cv: Condvar::new(),
            launch: Mutex::new(()),
            flusher: Mutex::new(None),
            inner: Mutex::new(Weak::new()),
        })
    }

    /// Starts the `rocketmq-batch` thread that sends batches whose delay is up.
    pub(crate) fn start(self: &Arc<Self>, inner: &Arc<Inner>) -> Result<()> {
        *self.inner.lock() = Arc::downgrade(inner);
        let acc = self.clone();
        let inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("rocketmq-batch".into())
            .spawn(move || acc.flush_loop(&inner))
            .map_err(|e| Error::config("batch thread", e.to_string()))?;
        *self.flusher.lock() = Some(thread);
        Ok(())
    }

    /// Whether `msg` sent to `target` goes through the accumulator.
    pub(crate) fn accepts(&self, msg: &Message, target: &Target) -> bool {
        matches!(target, Target::Auto | Target::Queue(_))
            && can_batch(msg, self.max_bytes)
            && !(self.strict_keys && msg.property(property::KEYS).is_some())
    }

    /// Adds a message; `done` is resolved with its own result once its batch is answered.
    /// Invalid messages and a full accumulator (after waiting up to the send timeout, or
    /// `sync_deadline`) resolve `done` at once with the error; so does a closed accumulator,
    /// with `Shutdown`. `sync_deadline`: the caller blocks on the result until then (see
    /// [`Accumulator::budget`]).
    pub(crate) fn add(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        mut msg: Message,
        target: Target,
        done: Done,
        mut op: Op,
        sync_deadline: Option<Instant>,
    ) {
        if let Err(e) = prepare::check_message(&msg, &inner.config) {
            op.fail(&e);
            return finish_done(inner, done, Err(e), Hold::Nothing);
        }
        let id = match msg.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
            Some(id) => id.to_string(),
            None => {
                let id = inner.new_msg_id().to_string();
                msg.set_property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id.as_str());
                id
            }
        };
        let queue = match target {
            Target::Queue(q) => Some(q),
            _ => None,
        };
        let bytes = held_size(&msg);
        let deadline =
            sync_deadline.unwrap_or_else(|| Instant::now() + inner.config.send_timeout());
        let started = Instant::now();
        let mut state = self.state.lock();
        // The memory bound: wait like backpressure, then fail.
        if state.held > 0 && state.held + bytes > self.total_max && !state.closed {
            state.waiting += 1;
            while state.held > 0 && state.held + bytes > self.total_max && !state.closed {
                if self.space_cv.wait_until(&mut state, deadline).timed_out()
                    && state.held > 0
                    && state.held + bytes > self.total_max
                {
                    state.waiting -= 1;
                    let e = Error::Backpressure {
                        in_flight: state.open.iter().map(|b| b.entries.len()).sum(),
                        in_flight_bytes: state.held,
                        waited: started.elapsed(),
                    };
                    drop(state);
                    op.fail(&e);
                    return finish_done(inner, done, Err(e), Hold::Nothing);
                }
            }
            state.waiting -= 1;
        }
        if state.closed {
            drop(state);
            op.fail(&Error::Shutdown);
            return finish_done(inner, done, Err(Error::Shutdown), Hold::Nothing);
        }
        state.held += bytes;
        let was_empty = state.open.is_empty();
        let i = match state
            .open
            .iter()
            .position(|b| b.key.matches(&msg, queue.as_ref()))
        {
            Some(i) => i,
            None => {
                let seq = state.next_seq;
                state.next_seq += 1;
                state.open.push(Batch {
                    key: Key::of(&msg, queue),
                    seq,
                    created: Instant::now(),
                    bytes: 0,
                    entries: Vec::new(),
                });
                state.open.len() - 1
            }
        };
        let batch = &mut state.open[i];
        batch.bytes += bytes;
        batch.entries.push(Entry {
            msg,
            id,
            done,
            op,
            sync_deadline,
        });
        let full = batch.bytes >= self.max_bytes;
        let full_seq = batch.seq;
        drop(state);
        if was_empty && !full {
            self.flush_cv.notify_one();
        }
        if full {
            let _order = self.launch.lock();
            let taken = {
                let mut state = self.state.lock();
                // Gone if the flusher or shutdown took it.
                let at = state.open.iter().position(|b| b.seq == full_seq);
                at.map(|i| state.open.swap_remove(i))
            };
            if let Some(batch) = taken {
                self.send(inner, batch);
            }
        }
    }

    /// Sends every open batch and stops the flusher; later adds fail with `Shutdown`.
    ///
    /// The flusher is joined only after `launch` is released: it may be waiting for `launch`
    /// to send batches it found expired (it finds none left, sees `closed` and ends). Joining
    /// it with `launch` held deadlocked (issue 12, item 1).
    pub(crate) fn close(self: &Arc<Self>) {
        let mut orphans = Vec::new();
        {
            let _order = self.launch.lock();
            let mut batches: Vec<Batch> = {
                let mut state = self.state.lock();
                state.closed = true;
                std::mem::take(&mut state.open)
            };
            self.flush_cv.notify_all();
            self.space_cv.notify_all();
            batches.sort_by_key(|b| b.seq);
            // Sent with `launch` held, so they leave after any batch the flusher or a sender
            // took before us (sending only hands them to the I/O thread: it never blocks).
            let inner = self.inner.lock().upgrade();
            match inner {
                Some(inner) => {
                    for batch in batches {
                        self.send(&inner, batch);
                    }
                }
                // Only when the producer is gone already; failed below, without `launch`
                // (a callback may run here).
                None => orphans = batches,
            }
        }
        for batch in orphans {
            for entry in batch.entries {
                resolve_one(
                    None,
                    entry.done,
                    entry.op,
                    Err(Error::Shutdown),
                    Hold::Nothing,
                );
            }
        }
        let flusher = self.flusher.lock().take();
        if let Some(t) = flusher {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }

    /// Sends every open batch now, oldest first, without closing ([`Producer::flush`]).
    ///
    /// [`Producer::flush`]: crate::Producer::flush
    pub(crate) fn send_open(self: &Arc<Self>, inner: &Arc<Inner>) {
        let _order = self.launch.lock();
        let mut batches: Vec<Batch> = std::mem::take(&mut self.state.lock().open);
        batches.sort_by_key(|b| b.seq);
        for batch in batches {
            self.send(inner, batch);
        }
    }

    fn flush_loop(self: Arc<Self>, inner: &Arc<Inner>) {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return;
            }
            let now = Instant::now();
            if state.open.iter().any(|b| b.created + self.max_delay <= now) {
                drop(state);
                self.flush_expired(inner);
                state = self.state.lock();
                continue;
            }
            match state.open.iter().map(|b| b.created).min() {
                Some(first) => {
                    self.flush_cv.wait_until(&mut state, first + self.max_delay);
                }
                None => self.flush_cv.wait(&mut state),
            }
        }
    }

    /// Sends every batch whose delay is up, oldest first.
    fn flush_expired(self: &Arc<Self>, inner: &Arc<Inner>) {
        let _order = self.launch.lock();
        let mut batches: Vec<Batch> = Vec::new();
        {
            let mut state = self.state.lock();
            let now = Instant::now();
            let mut i = 0;
            while i < state.open.len() {
                if state.open[i].created + self.max_delay <= now {
                    batches.push(state.open.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        batches.sort_by_key(|b| b.seq);
        for batch in batches {
            self.send(inner, batch);
        }
    }

    fn release(&self, bytes: usize) {
        let mut state = self.state.lock();
        state.held -= bytes;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.space_cv.notify_all();
        }
    }

    /// What a batch may spend: with a synchronous caller in it, the earliest such caller's
    /// deadline (its send timeout counts from its call, so the wait for memory and for the
    /// batch to leave is part of it) and `retries`; otherwise the asynchronous defaults (the
    /// send timeout from now, `async_retries`). Asynchronous callers in a batch with a
    /// synchronous one share its budget.
    fn budget(inner: &Inner, entries: &[Entry]) -> Option<Budget> {
        let deadline = entries.iter().filter_map(|e| e.sync_deadline).min()?;
        Some(Budget {
            deadline,
            retries: inner.config.retries(),
        })
    }

    /// Sends one batch; a batch of one goes as a plain message. Its result is split where it
    /// is known (an I/O thread, usually): handles complete there, callbacks go to the pool,
    /// and the batch's bytes (and in-flight share) are released once every caller has its
    /// result, callbacks run.
    fn send(self: &Arc<Self>, inner: &Arc<Inner>, batch: Batch) {
        let target = match batch.key.queue {
            Some(q) => Target::Queue(q),
            None => Target::Auto,
        };
        let budget = Self::budget(inner, &batch.entries);
        let mut entries = batch.entries;
        let bytes = batch.bytes;
        let acc = self.clone();
        let release = move || acc.release(bytes);
        if entries.len() == 1 {
            if let Some(Entry { msg, done, op, .. }) = entries.pop() {
                let owner = inner.clone();
                let done = Done::Internal(Box::new(move |r, hold| {
                    let hold = Hold::Shared(SharedHold::new(hold, release));
                    resolve_one(Some(&owner), done, op, r, hold);
                }));
                inner.launch_async(super::Prep::Single(msg), target, done, budget);
            }
            return;
        }
        let (msgs, waiters): (Vec<Message>, Vec<(String, Done, Op)>) = entries
            .into_iter()
            .map(|e| (e.msg, (e.id, e.done, e.op)))
            .unzip();
        let waiters = Waiters(waiters, inner.clone());
        let on_done = Done::Internal(Box::new(move |result: Result<SendResult>, hold| {
            waiters.resolve(result, SharedHold::new(hold, release));
        }));
        inner.launch_async(super::Prep::Batch(msgs), target, on_done, budget);
    }
}

/// The callers of a batch in flight; whoever is not resolved when this drops gets `Shutdown`.
struct Waiters(Vec<(String, Done, Op)>, Arc<Inner>);

impl Waiters {
    /// Gives every caller its result and a share of `hold`.
    fn resolve(mut self, result: Result<SendResult>, hold: Arc<SharedHold>) {
        let waiters = std::mem::take(&mut self.0);
        let inner = Some(&*self.1);
        let n = waiters.len();
        let share = || Hold::Shared(hold.clone());
        match result {
            Ok(r) => {
                let (ids, rest): (Vec<String>, Vec<(Done, Op)>) = waiters
                    .into_iter()
                    .map(|(id, done, op)| (id, (done, op)))
                    .unzip();
                let split = split_result(&r, ids.into_iter(), n);
                for ((done, op), one) in rest.into_iter().zip(split) {
                    resolve_one(inner, done, op, Ok(one), share());
                }
            }
            Err(e) => {
                for (_, done, op) in waiters {
                    resolve_one(inner, done, op, Err(e.duplicate()), share());
                }
            }
        }
    }
}

impl Drop for Waiters {
    fn drop(&mut self) {
        let inner = self.1.clone();
        for (_, done, op) in self.0.drain(..) {
            resolve_one(Some(&inner), done, op, Err(Error::Shutdown), Hold::Nothing);
        }
    }
}

/// Resolves one caller: a handle here, a callback on the pool (`inner`), or here when the
/// producer is gone.
fn resolve_one(
    inner: Option<&Inner>,
    done: Done,
    mut op: Op,
    result: Result<SendResult>,
    hold: Hold,
) {
    op.record(&result);
    match (inner, done) {
        (Some(inner), done) => finish_done(inner, done, result, hold),
        (None, Done::Handle(completer)) => {
            completer.complete(result);
        }
        (None, Done::Callback(callback)) => {
            if catch_unwind(AssertUnwindSafe(|| callback.call(result, None))).is_err() {
                log::error!("a send callback panicked");
            }
        }
        (None, Done::Internal(continuation)) => continuation(result, hold),
    }
}

/// Java's `splitSendResults`: one result per message of a batch.
fn split_result(
    batch: &SendResult,
    ids: impl Iterator<Item = String>,
    n: usize,
) -> Vec<SendResult> {
    let offsets: Vec<&str> = batch.offset_msg_id.split(',').collect();
    if !batch.offset_msg_id.contains(',') || offsets.len() != n {
        // One id for the whole batch (a batch consume queue): everyone gets the batch's result.
        return (0..n).map(|_| batch.clone()).collect();
    }
    ids.zip(offsets)
        .enumerate()
        .map(|(i, (id, offset_id))| SendResult {
            status: batch.status,
            msg_id: IdStr::from(id),
            offset_msg_id: IdStr::new(offset_id),
            queue: batch.queue.clone(),
            queue_offset: batch.queue_offset + i as i64,
            transaction_id: None,
            region_id: batch.region_id.clone(),
            trace_on: batch.trace_on,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SendStatus;
    use crate::protocol::RequestCode;
    use crate::testing::MockBroker;
    use crate::Producer;

    #[test]
    fn split_by_index() {
        let batch = SendResult {
            status: SendStatus::SendOk,
            msg_id: "A,B,C".into(),
            offset_msg_id: "X1,X2,X3".into(),
            queue: MessageQueue::new("t", "b", 2),
            queue_offset: 40,
            transaction_id: Some("tx".into()),
            region_id: Some("r".into()),
            trace_on: true,
        };
        let split = split_result(&batch, ["A", "B", "C"].map(String::from).into_iter(), 3);
        assert_eq!(split.len(), 3);
        for (i, r) in split.iter().enumerate() {
            assert_eq!(r.msg_id, ["A", "B", "C"][i]);
            assert_eq!(r.offset_msg_id, ["X1", "X2", "X3"][i]);
            assert_eq!(r.queue_offset, 40 + i as i64);
            assert_eq!(r.queue, batch.queue);
        }
        // A single id: the batch's result for everyone.
        let single = SendResult {
            offset_msg_id: "X".into(),
            ..batch
        };
        let split = split_result(&single, ["A", "B"].map(String::from).into_iter(), 2);
        assert!(split.iter().all(|r| *r == single));
    }

    fn producer(
        broker: &MockBroker,
        max_bytes: usize,
        total: usize,
        timeout: Duration,
    ) -> Producer {
        Producer::builder("GID_BATCH_UNIT")
            .name_server(broker.namesrv_addr())
            .send_timeout(timeout)
            .auto_batch(true)
            .batch_max_delay(Duration::from_secs(30))
            .batch_max_bytes(max_bytes)
            .batch_total_max_bytes(total)
            .start()
            .unwrap()
    }

    fn accumulator(p: &Producer) -> &Arc<Accumulator> {
        p.inner().batcher.as_ref().unwrap()
    }

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Three open batches (distinct tags) hold 807 of 1000 bytes: the fourth message waits
    /// for room until the send timeout, then fails; shutdown still sends the three.
    #[test]
    fn memory_bound_blocks_then_fails() {
        let broker = MockBroker::start().unwrap();
        let p = producer(&broker, 1000, 1000, Duration::from_millis(300));
        let msg = |tag: &str| Message::new("BoundTopic", vec![b'x'; 200]).with_tags(tag);
        assert_eq!(held_size(&msg("a")) + 42, 269); // + the UNIQ_KEY property added on entry
        let held: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|t| p.send_async(msg(t)))
            .collect();
        assert_eq!(accumulator(&p).state.lock().held, 3 * 269);
        let refused = p.send_async(msg("d"));
        match refused.wait() {
            Err(Error::Backpressure {
                in_flight_bytes, ..
            }) => assert_eq!(in_flight_bytes, 807),
            other => panic!("expected backpressure, got {other:?}"),
        }
        assert!(held.iter().all(|h| !h.is_done()));
        p.shutdown(Duration::from_secs(20)).unwrap();
        for h in held {
            assert_eq!(h.wait().unwrap().status, SendStatus::SendOk);
        }
        assert_eq!(broker.message_count("BoundTopic"), 3);
    }

    /// A batch in flight holds its bytes until it is answered; a sender that needs them waits
    /// and goes on once they are free.
    #[test]
    fn blocked_sender_goes_on_when_a_batch_returns() {
        let broker = MockBroker::start().unwrap();
        broker.set_delay(RequestCode::SEND_BATCH_MESSAGE, Duration::from_secs(2));
        let p = producer(&broker, 500, 1000, Duration::from_secs(20));
        let msg = || Message::new("BlockTopic", vec![b'x'; 200]);
        p.send_oneway(msg()).unwrap(); // caches the route: the batch leaves from this thread
        let first: Vec<_> = (0..3).map(|_| p.send_async(msg())).collect();
        let acc = accumulator(&p).clone();
        assert_eq!(acc.state.lock().held, 3 * 262);
        let p2 = p.clone();
        let blocked = std::thread::spawn(move || p2.send_async(msg()));
        assert!(wait_for(|| acc.state.lock().waiting == 1));
        assert!(acc.state.lock().held <= 1000);
        // The delay applies once the broker has the batch.
        let c = || broker.counters().received(RequestCode::SEND_BATCH_MESSAGE);
        assert!(wait_for(|| c() == 1));
        assert_eq!(acc.state.lock().waiting, 1);
        broker.set_delay(RequestCode::SEND_BATCH_MESSAGE, Duration::ZERO);
        let last = blocked.join().unwrap();
        for h in first.into_iter().chain([last]) {
            assert_eq!(h.wait().unwrap().status, SendStatus::SendOk);
        }
        assert_eq!(broker.message_count("BlockTopic"), 5);
        assert_eq!(
            broker.counters().received(RequestCode::SEND_BATCH_MESSAGE),
            2
        );
        assert!(wait_for(|| acc.state.lock().held == 0));
        p.shutdown(Duration::from_secs(20)).unwrap();
    }

    #[test]
    fn what_java_batches() {
        let m = || Message::new("t", vec![1u8; 10]);
        assert!(can_batch(&m(), 1024));
        assert!(!can_batch(&m().with_delay_level(3), 1024));
        assert!(!can_batch(&m().with_deliver_time_ms(1), 1024));
        assert!(!can_batch(
            &m().with_property(property::TIMER_DELAY_SEC, "5"),
            1024
        ));
        assert!(!can_batch(&Message::new("%RETRY%g", vec![1u8]), 1024));
        assert!(!can_batch(
            &m().with_property(property::PRODUCER_GROUP, "g"),
            1024
        ));
        assert!(!can_batch(
            &m().with_property(property::TRANSACTION_PREPARED, "true"),
            1024
        ));
        assert!(!can_batch(&Message::new("t", vec![1u8; 2000]), 1024));
    }
}
