//! One asynchronous send across its attempts: [`AsyncSend`], which ends exactly once, and
//! how its end reaches the caller.
//!
//! # Where each step runs
//!
//! - The first attempt runs on the caller's thread when the route is cached; otherwise it
//!   moves to the internal `rocketmq-async-N` threads ([`super::executor`]), where route
//!   lookups may block.
//! - The response is mapped on the I/O thread (failures too: timeouts, connection errors,
//!   shutdown); a retry moves to the internal threads.
//! - The end is delivered where it is known: a handle is completed right there (I/O thread or
//!   internal thread), the library's own continuations ([`Done::Internal`]: auto-batch
//!   results, asynchronous transactions) run right there too, and only user callbacks go to
//!   the callback pool. So no step of a send ever waits for a callback thread, and a callback
//!   that blocks on a send always gets its result.
//! - A user callback never runs on an I/O thread: on the pool while it takes work (during a
//!   shutdown too), on the thread calling shutdown once the pool has stopped, and on the
//!   calling thread after shutdown has ended.
//! - The send's in-flight [`Permit`] is held until its caller has the result: until a
//!   callback has returned, so queued callbacks count against backpressure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attempt::Failures;
use super::backpressure::Permit;
use super::executor::Job;
use super::hooks::AfterTask;
use super::inner::{now_ms, Inner, RUNNING, STOPPED};
use super::prepare::Prepared;
use super::route::AddrMemo;
use super::stats;
use super::submit::Target;
use crate::client::broker;
use crate::error::{Error, Result};
use crate::message::{MessageQueue, SendResult};
use crate::protocol::RemotingCommand;
use crate::remoting::RemotingClient;
use crate::routing::fault::{FaultHandles, FaultMemo};

/// A user's send callback.
pub(super) type UserCallback = super::callback::PooledFnOnce<Result<SendResult>>;

/// A library continuation of a send: gets the result and what the send holds.
pub(super) type Continuation = Box<dyn FnOnce(Result<SendResult>, Hold) + Send + 'static>;

/// How an asynchronous send reports its end.
pub(super) enum Done {
    /// Complete a handle, wherever the result is known (the completer also ends the send's
    /// flush ticket).
    Handle(super::flush::TrackedCompleter),
    /// Run a user callback on the callback pool (in a box reused per closure type: see
    /// [`super::callback`]).
    Callback(UserCallback),
    /// Run a library continuation wherever the result is known (an I/O thread too): it must
    /// be quick, must not block and must run no user code itself (user callbacks it resolves
    /// go through [`finish_done`]).
    Internal(Continuation),
}

/// What a send holds until its caller has the result: its in-flight share, or a share of
/// one (the callers of an auto-batch hold the batch's together).
pub(super) enum Hold {
    Nothing,
    Permit(Permit),
    Shared(Arc<SharedHold>),
}

/// A hold shared by the callers of one send: released (and `then` run) when the last of
/// them has its result.
pub(super) struct SharedHold {
    permit: Option<Permit>,
    then: Option<Box<dyn FnOnce() + Send + Sync + 'static>>,
}

impl SharedHold {
    /// Shares `hold`; `then` runs once every share is gone.
    pub(super) fn new(hold: Hold, then: impl FnOnce() + Send + Sync + 'static) -> Arc<Self> {
        let permit = match hold {
            Hold::Nothing => None,
            Hold::Permit(p) => Some(p),
            // Nested sharing does not happen; keep the outer share alive for as long.
            Hold::Shared(outer) => {
                return Arc::new(SharedHold {
                    permit: None,
                    then: Some(Box::new(move || {
                        drop(outer);
                        then();
                    })),
                })
            }
        };
        Arc::new(SharedHold {
            permit,
            then: Some(Box::new(then)),
        })
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        if let Some(then) = self.then.take() {
            then();
        }
    }
}

impl Hold {
    /// Runs `f` as the holder (a callback that shuts the producer down does not wait for its
    /// own send).
    pub(super) fn while_held<R>(&self, f: impl FnOnce() -> R) -> R {
        let permit = match self {
            Hold::Nothing => None,
            Hold::Permit(p) => Some(p),
            Hold::Shared(s) => s.permit.as_ref(),
        };
        match permit {
            Some(p) => p.held_while(f),
            None => f(),
        }
    }
}

/// Ends an asynchronous send: completes its handle or runs its continuation here, or hands
/// its callback to the callback pool. `hold` is released once the caller has the result.
// Inlined, like the completers below it: the ~350-byte result is then moved once into the
// completion instead of being copied at every call.
#[inline(always)]
pub(super) fn finish_done(inner: &Inner, done: Done, result: Result<SendResult>, hold: Hold) {
    match done {
        Done::Handle(completer) => {
            // Released first: a caller that has the result finds the send no longer counted.
            drop(hold);
            completer.complete(result);
        }
        Done::Internal(continuation) => continuation(result, hold),
        Done::Callback(callback) => {
            let mut ready = ReadyCallback::new(callback, result, hold, None);
            inner.run_user(Box::new(move || ready.run(None)));
        }
    }
}

/// A user callback with its result, ready to run on the callback pool. It runs where it
/// lies (in its send's box): the result is moved once, straight into the callback.
pub(super) struct ReadyCallback {
    callback: Option<UserCallback>,
    result: Option<Result<SendResult>>,
    /// Released once the callback has returned.
    hold: Hold,
    /// The last attempt's `after_send` hooks, run first.
    after: Option<AfterTask>,
}

impl ReadyCallback {
    fn new(
        callback: UserCallback,
        result: Result<SendResult>,
        hold: Hold,
        after: Option<AfterTask>,
    ) -> Self {
        ReadyCallback {
            callback: Some(callback),
            result: Some(result),
            hold,
            after,
        }
    }

    /// Runs the hooks and the callback as the holder (a panic is caught and logged), then
    /// releases the hold; the callback's empty box goes back to `slots`, if given. Does
    /// nothing the second time.
    fn run(&mut self, slots: Option<&super::callback::SlotPool>) {
        let ReadyCallback {
            callback,
            result,
            hold,
            after,
        } = self;
        let Some(callback) = callback.take() else {
            return;
        };
        hold.while_held(|| {
            let run = || {
                if let (Some(after), Some(r)) = (after.take(), result.as_ref()) {
                    after.run(r.as_ref().map(Some));
                }
                callback.call_from(result, slots);
            };
            if catch_unwind(AssertUnwindSafe(run)).is_err() {
                log::error!("a send callback panicked");
            }
        });
        *hold = Hold::Nothing;
    }
}

impl Inner {
    /// Runs user code (a callback) on the callback pool. Once the pool has stopped (late in
    /// a shutdown), on the thread calling shutdown; once shutdown has ended, here. Never on
    /// an I/O thread: the pool takes work until every I/O thread has ended.
    pub(super) fn run_user(&self, task: Box<dyn FnOnce() + Send + 'static>) {
        let Err(task) = self.remoting.try_execute(task) else {
            return;
        };
        let mut late = self.late.lock();
        match late.as_mut() {
            Some(queue) => queue.push(task),
            None => {
                drop(late);
                crate::remoting::guarded("send callback", task);
            }
        }
    }

    /// Runs an ended send's callback (its [`AsyncSend::ready`]) as [`Inner::run_user`] does,
    /// queueing the send's own box (no allocation while the pool takes work).
    fn run_user_job(&self, send: Box<AsyncSend>) {
        if let Err(job) = self.remoting.try_execute_job(send) {
            self.run_user(Box::new(move || job.run()));
        }
    }

    /// Runs the callbacks that found the pool stopped, on the thread calling shutdown (after
    /// the pool and every I/O and internal thread have ended); callbacks that end later run
    /// where they end.
    pub(super) fn run_late_callbacks(&self) {
        loop {
            let tasks = match self.late.lock().as_mut() {
                Some(queue) if !queue.is_empty() => std::mem::take(queue),
                _ => break,
            };
            for task in tasks {
                crate::remoting::guarded("send callback", task);
            }
        }
        let rest = self.late.lock().take().unwrap_or_default();
        for task in rest {
            crate::remoting::guarded("send callback", task);
        }
    }
}

/// One asynchronous send across its attempts. Ends exactly once: `finish`, or `Drop` with
/// [`Error::Shutdown`] as a last line of defence.
pub(super) struct AsyncSend {
    inner: Arc<Inner>,
    /// The message, prepared in place (see [`Inner::vacant_send`]).
    pub(super) prepared: Prepared,
    target: Target,
    deadline: Instant,
    attempts_left: u32,
    last_broker: Option<Arc<str>>,
    failures: Failures,
    done: Option<Done>,
    permit: Option<Permit>,
    /// Statistics of this send.
    op: stats::Op,
    /// Attempts made so far (the number hooks see).
    attempt_no: u32,
    /// The attempt whose request is out.
    current: Option<Current>,
    /// The ended send's callback, on its way to the callback pool in this box.
    ready: Option<ReadyCallback>,
    /// The last broker address and target this box sent to (kept across the sends it is
    /// recycled for: most go to the same broker).
    addr_memo: AddrMemo,
    /// The fault-table entry of the broker this box last reported an attempt on (kept across
    /// the sends it is recycled for, as `addr_memo`).
    fault_memo: FaultMemo,
    /// The fault-table entries the queue scan of this box's attempts read (kept across the
    /// sends it is recycled for, as `fault_memo`).
    fault_handles: FaultHandles,
    /// What the send's first attempt on the caller's thread knows without reading a clock,
    /// when nothing waited since the send began; later attempts read the clocks again.
    pub(super) first: Option<FirstAttempt>,
    /// The last topic this box sent to: its publish info, and its statistics recorder (kept
    /// across the sends it is recycled for: most go to the same topic).
    route_memo: crate::routing::mapping::TopicMemo,
    pub(super) stats_memo: stats::TopicMemo,
}

/// What a send's first attempt knows from when the send began ([`AsyncSend::first`]).
pub(super) struct FirstAttempt {
    /// The wall clock (epoch ms) read for the send's `UNIQ_KEY`: the born timestamp (one
    /// wall-clock read per send).
    pub(super) born_ms: i64,
    /// The time left when the attempt starts (its deadline minus its start: the send
    /// timeout, as the send's budget began at the attempt's start).
    pub(super) left: Duration,
}

/// What an attempt whose request is out needs when it ends.
struct Current {
    queue: MessageQueue,
    addr: Arc<str>,
    started: Instant,
    attempt: stats::Attempt,
}

impl AsyncSend {
    /// Runs one attempt. With `may_block` false (the caller's thread) it only uses cached
    /// routes, and a miss moves the attempt to the internal threads, where it runs with
    /// `may_block` true and lookups may block.
    pub(super) fn attempt(self: Box<Self>, may_block: bool) {
        // The box moves into the request: the client it is sent through is held apart.
        let remoting = self.inner.remoting.clone();
        self.attempt_at(may_block, Instant::now(), &remoting);
    }

    /// [`AsyncSend::attempt`] beginning at `now`: its deadline check, route, queue choice
    /// and start (its latency and timeout) all read this one clock. `remoting`: the send's
    /// producer's client (lent by a caller that holds the producer: no count taken on it
    /// per send).
    fn attempt_at(mut self: Box<Self>, may_block: bool, now: Instant, remoting: &RemotingClient) {
        if now >= self.deadline {
            let failures = std::mem::take(&mut self.failures);
            let e = self.inner.attempts_failed(self.deadline, failures);
            return self.finish(Err(e));
        }
        if self.inner.state.load(Ordering::Acquire) == STOPPED {
            return self.finish(Err(Error::Shutdown));
        }
        let queue = match self.pick_queue(may_block, now) {
            Ok(Some(q)) => q,
            Ok(None) => return self.defer(),
            Err(e) => return self.finish(Err(e)),
        };
        let addr = match self
            .inner
            .broker_addr_memo(queue.broker_name_arc(), &mut self.addr_memo)
        {
            Some(a) => a,
            None if !may_block => return self.defer(),
            None => match self.inner.broker_addr_or_refresh(
                self.prepared.wire_topic(),
                &queue,
                self.deadline,
            ) {
                Some(a) => a,
                None => {
                    let e = Error::NoRoute {
                        topic: self.prepared.topic.clone(),
                        reason: format!("no master address for broker {}", queue.broker_name()),
                        source: None,
                    };
                    return self.finish(Err(e));
                }
            },
        };
        // The first attempt on the caller's thread (nothing blocked since the send began)
        // knows its born timestamp and time left; any other reads the clock.
        let first = self.first.take().filter(|_| !may_block);
        let born = first.as_ref().map_or_else(now_ms, |f| f.born_ms);
        let encoded = self.inner.remoting.encode_request_memo(
            &addr,
            &mut self.addr_memo.target,
            false,
            |spec, out| {
                broker::encode_send_frame(
                    &self.prepared,
                    &queue,
                    &self.inner.defaults,
                    born,
                    spec,
                    out,
                )
            },
        );
        let request = match encoded {
            Ok(r) => r,
            Err(e) => {
                self.attempt_no += 1;
                let after = self.inner.after_task(
                    &self.prepared,
                    &queue,
                    &addr,
                    self.attempt_no,
                    Duration::ZERO,
                );
                return self.finish_after(Err(e), after);
            }
        };
        let attempt = self.inner.stats.attempt_memo(
            &self.prepared,
            queue.broker_name_arc(),
            self.last_broker.is_some(),
            &mut self.addr_memo.stats,
            &mut self.stats_memo,
        );
        // On the caller's thread nothing above blocks: the attempt starts at `now`. Here,
        // a route lookup may have taken time.
        let started = if may_block { Instant::now() } else { now };
        let timeout = match first {
            Some(f) => self.inner.attempt_timeout_left(f.left),
            None => self.inner.attempt_timeout(self.deadline, started),
        };
        self.attempt_no += 1;
        // No attempt is out here (the last one's was taken when it ended): nothing to drop
        // (the branch never runs), and the attempt is written in place.
        if self.current.is_some() {
            self.current = None;
        }
        self.current.get_or_insert(Current {
            queue,
            addr,
            started,
            attempt,
        });
        self.inner.spent.offer_seed(&self);
        // The request ends on the I/O thread (response, timeout, connection error, shutdown),
        // or here if the client is shut down: `on_response` never blocks and runs no user
        // code. The send's own box is the request's callback (no closure to allocate).
        remoting.send_encoded_inline(request, started, timeout, self);
    }

    /// The queue for this attempt; `Ok(None)` when the route must be fetched first and this
    /// thread must not block.
    fn pick_queue(&mut self, may_block: bool, mut now: Instant) -> Result<Option<MessageQueue>> {
        let wire_topic = self.prepared.wire_topic();
        let fetched;
        let info = match &self.target {
            Target::Queue(q) => return Ok(Some(q.clone())),
            // Lent by the box's memo: no count taken on the publish info per send.
            _ => match self
                .inner
                .cached_publish_info_memo(wire_topic, &mut self.route_memo)
            {
                Some(info) => info,
                None if !may_block => return Ok(None),
                None => {
                    fetched = self.inner.publish_info(wire_topic, self.deadline)?;
                    now = Instant::now(); // after a lookup
                    &fetched
                }
            },
        };
        match &self.target {
            Target::Selector(selector, arg) => {
                // The selector sees the message as the caller built it (kept for it when the
                // send was prepared); after that, the send needs only what goes on the wire.
                let Some(msg) = self.prepared.message() else {
                    return Err(Error::User(
                        "the message for the queue selector is gone".into(),
                    ));
                };
                let picked = self.inner.run_selector(selector.as_ref(), info, msg, arg);
                self.prepared.release_message();
                picked.map(Some)
            }
            _ => self
                .inner
                .select_auto_with(
                    info,
                    &self.prepared,
                    self.last_broker.as_deref(),
                    now,
                    Some(&mut self.fault_handles),
                )
                .map(Some),
        }
    }

    /// Moves the attempt to the internal threads (route lookups block there).
    fn defer(self: Box<Self>) {
        let inner = self.inner.clone();
        if let Err(Job::Attempt(job)) = inner.executor.submit(Job::Attempt(self)) {
            // Only after shutdown has stopped the internal threads.
            job.finish(Err(Error::Shutdown));
        }
    }

    /// The request of an attempt ended (on the thread that ended it: usually an I/O thread).
    /// Never blocks: a retry moves to the internal threads.
    fn attempt_ended(self: Box<Self>, response: Result<RemotingCommand>) {
        self.attempt_ended_at(response, None);
    }

    /// [`AsyncSend::attempt_ended`]; `arrival`: when a response arrived (read by its I/O
    /// thread once for every response of the read), else the clock is read here.
    fn attempt_ended_at(
        mut self: Box<Self>,
        response: Result<RemotingCommand>,
        arrival: Option<&crate::remoting::Arrival>,
    ) {
        let Some(Current {
            queue,
            addr,
            started,
            attempt,
        }) = self.current.take()
        else {
            // Every request is sent with its attempt recorded first.
            return self.finish(response.and(Err(Error::Shutdown)));
        };
        // Matched, not chained through a closure (whose argument is a copy of the response);
        // the response by reference. The queue is moved into the result when stored in (no
        // count taken on its names here, none dropped: its counts are the sending side's
        // alone); `kept` has it otherwise (an error, another queue stored in).
        let mut kept = None;
        let result = match response {
            Ok(r) => broker::send_result_owned(&r, &self.prepared, queue, &addr, &mut kept),
            Err(e) => {
                kept = Some(queue);
                Err(e)
            }
        };
        // The queue sent to, for the fault table, the hooks and a retry: the result's when it
        // was moved there (the same queue).
        let queue = match (&kept, &result) {
            (Some(q), _) => q,
            (None, Ok(r)) => &r.queue,
            // Not reached: `send_result_owned` gives the queue back with every error.
            (None, Err(_)) => return self.finish(result),
        };
        // One clock read (per read of the I/O thread, for a response) and one latency for the
        // attempt's, the send's and the fault table's records; the second their rates count
        // in is computed once per read too.
        let ended = match arrival {
            Some(a) => stats::Ended::noted(started, a.at, a.second.get()),
            None => stats::Ended::new(started, Instant::now()),
        };
        let latency = ended.latency();
        attempt.end_as_memo(&ended, &result, &mut self.stats_memo);
        if let Some(a) = arrival {
            a.second.set(ended.second_note());
        }
        self.inner.record_attempt_memo(
            queue.broker_name_arc(),
            &mut self.fault_memo,
            latency,
            ended.now(),
            &result,
        );
        // Hooks run on the callback pool; nothing here waits for them.
        let after = self
            .inner
            .after_task(&self.prepared, queue, &addr, self.attempt_no, latency);
        let retriable = matches!(self.target, Target::Auto)
            && result.is_err()
            && self.inner.should_retry(&result);
        if retriable {
            let retry = self.attempts_left > 0
                && Instant::now() < self.deadline
                && self.inner.state.load(Ordering::Acquire) == RUNNING;
            // Taken before the result (which `queue` may borrow) is moved apart below.
            let last_broker = retry.then(|| queue.broker_name_arc().clone());
            if let Err(e) = result {
                if retry {
                    log::debug!("async send to {addr} will be retried: {e}");
                }
                if let Some(after) = after {
                    after.spawn(&self.inner, Err(&e));
                }
                self.failures.push(e);
                if !retry {
                    // Out of attempts or of time: the error says what happened before.
                    let failures = std::mem::take(&mut self.failures);
                    let e = self.inner.attempts_failed(self.deadline, failures);
                    return self.finish(Err(e));
                }
                self.attempts_left -= 1;
                self.last_broker = last_broker;
                // Route lookups may block: on an internal thread, not here.
                return self.defer();
            }
        }
        // The usual ends, as `finish_after_at` makes them, written out here: every call the
        // ~312-byte result is passed down copies it, so it goes from `send_result` to where
        // its caller takes it through as few calls as can be.
        match self.done.take() {
            Some(Done::Handle(tracked)) => {
                self.op
                    .record_ended_memo(&result, &ended, &mut self.stats_memo);
                if let Some(after) = after {
                    after.spawn(&self.inner, result.as_ref());
                }
                // Released first, as `finish_after_at` does.
                drop(self.permit.take());
                // Stored once the slot is locked: copied from here straight into it.
                let (completer, ticket) = tracked.into_parts();
                if let Some(shared) = completer.into_shared() {
                    // Not `map`: a closure would take the result in, a copy more.
                    #[allow(clippy::manual_map)]
                    let waiters = match shared.lock_pending() {
                        Some(slot) => Some(slot.store(result)),
                        None => None, // complete already (cannot happen: one end per send)
                    };
                    if let Some(waiters) = waiters {
                        crate::remoting::completion::wake(shared, waiters);
                    }
                }
                drop(ticket);
                return self.retire();
            }
            Some(Done::Callback(callback)) => {
                self.op
                    .record_ended_memo(&result, &ended, &mut self.stats_memo);
                let hold = self.hold();
                self.set_ready(ReadyCallback {
                    callback: Some(callback),
                    result: Some(result),
                    hold,
                    after,
                });
                let inner = self.inner.clone();
                return inner.run_user_job(self);
            }
            done => self.done = done,
        }
        self.finish_after_at(result, after, &ended);
    }

    fn finish(self: Box<Self>, result: Result<SendResult>) {
        self.finish_after(result, None);
    }

    /// Ends the send; `after`: the last attempt's `after_send`, queued on the callback pool
    /// (a user callback runs right after it, in the same task).
    fn finish_after(self: Box<Self>, result: Result<SendResult>, after: Option<AfterTask>) {
        self.finish_after_at(result, after, &stats::Ended::at(Instant::now()));
    }

    /// [`AsyncSend::finish_after`] for a send that ended with its last attempt (`ended`: one
    /// clock read for the attempt's and the send's statistics).
    fn finish_after_at(
        mut self: Box<Self>,
        result: Result<SendResult>,
        after: Option<AfterTask>,
        ended: &stats::Ended,
    ) {
        self.op
            .record_ended_memo(&result, ended, &mut self.stats_memo);
        // Each arm moves the result once, to where it is consumed.
        match self.done.take() {
            Some(Done::Callback(callback)) => {
                // The callback, its result and its hold go to the pool in this box (nothing
                // to allocate); the pool thread runs them and recycles the box.
                let hold = self.hold();
                self.set_ready(ReadyCallback::new(callback, result, hold, after));
                let inner = self.inner.clone();
                return inner.run_user_job(self);
            }
            Some(Done::Handle(completer)) => {
                if let Some(after) = after {
                    after.spawn(&self.inner, result.as_ref());
                }
                // Released first: a caller that has the result finds the send no longer
                // counted (as `finish_done` does). The permit itself: no `Hold` around it.
                drop(self.permit.take());
                completer.complete(result);
            }
            Some(done) => {
                if let Some(after) = after {
                    after.spawn(&self.inner, result.as_ref());
                }
                let hold = self.hold();
                finish_done(&self.inner, done, result, hold);
            }
            None => {
                if let Some(after) = after {
                    after.spawn(&self.inner, result.as_ref());
                }
                drop(self.permit.take());
            }
        }
        self.retire();
    }

    /// Leaves an ended send's box to be freed or reused (see [`SpentSends`]): staged on this
    /// thread when it ends its turns with [`hand_over_retired`] (an I/O thread: handed over
    /// at the end of the turn, or once [`BATCH`] are staged), else handed over at once. Its
    /// producer's list is reached through the thread's own count on it, not a count taken per
    /// send: no `Arc` clone here but on the rare paths (a free to schedule, a full list).
    fn retire(self: Box<Self>) {
        let mut send = Some(self);
        let staged = STAGING.try_with(|cell| {
            // Busy only if freeing a send re-entered here: then the send goes the plain way.
            let Ok(mut staging) = cell.try_borrow_mut() else {
                return;
            };
            if let Some(send) = send.take() {
                staging.stage(send);
            }
        });
        if staged.is_err() || send.is_some() {
            // This thread's staging is gone (the thread is ending) or busy.
            if let Some(send) = send {
                let spent = send.inner.spent.clone();
                let mut one = vec![send];
                spent.hand_over(&mut one);
            }
        }
    }

    /// Puts `ready` in this box, for the callback pool. An assignment would drop what was
    /// there first and so build the large value aside before copying it in; a box whose send
    /// ends holds none (`clear` emptied it), so there is nothing to drop.
    #[inline(always)]
    fn set_ready(&mut self, ready: ReadyCallback) {
        if self.ready.is_none() {
            // `None` has nothing to drop.
            #[allow(clippy::mem_replace_option_with_some)] // the same, measured: kept
            std::mem::forget(std::mem::replace(&mut self.ready, Some(ready)));
        } else {
            self.ready = Some(ready);
        }
    }

    /// What the send holds until its caller has the result (its permit, taken out).
    fn hold(&mut self) -> Hold {
        match self.permit.take() {
            Some(p) => Hold::Permit(p),
            None => Hold::Nothing,
        }
    }

    /// A finished send, emptied: it holds nothing of its message or caller any more, only
    /// its producer (its box is reused by a later send; see [`Inner::recycle`]).
    fn vacant(inner: Arc<Inner>, deadline: Instant) -> AsyncSend {
        AsyncSend {
            inner,
            prepared: Prepared::vacant(),
            target: Target::Auto,
            deadline,
            attempts_left: 0,
            last_broker: None,
            failures: Failures::default(),
            done: None,
            permit: None,
            op: stats::Op::none(),
            attempt_no: 0,
            current: None,
            ready: None,
            addr_memo: AddrMemo::default(),
            fault_memo: FaultMemo::default(),
            fault_handles: FaultHandles::default(),
            first: None,
            route_memo: Default::default(),
            stats_memo: Default::default(),
        }
    }
}

impl crate::remoting::OnResponse for AsyncSend {
    fn on_response(self: Box<Self>, result: Result<RemotingCommand>) {
        self.attempt_ended(result);
    }

    fn on_response_at(
        self: Box<Self>,
        result: Result<RemotingCommand>,
        arrival: &crate::remoting::Arrival,
    ) {
        self.attempt_ended_at(result, Some(arrival));
    }
}

/// On the callback pool: the ended send's callback runs, then its box is recycled.
impl crate::remoting::PoolJob for AsyncSend {
    fn run(mut self: Box<Self>) {
        if let Some(ready) = self.ready.as_mut() {
            ready.run(Some(&self.inner.callback_slots));
        }
        self.ready = None;
        self.retire();
    }
}

/// Most finished sends' boxes kept for reuse.
pub(super) const FREE_SENDS: usize = 1024;

/// Most finished sends waiting for a sender to reuse them or an internal thread to free them.
pub(super) const SPENT_CAPACITY: usize = 4096;

/// Boxes handed over at once: an I/O thread hands its finished sends over at the end of each
/// turn or once this many are staged; a sender takes up to this many at once into its own
/// spare list. So the list both sides lock is locked once per batch, not once per send.
pub(super) const BATCH: usize = 32;

/// Spare lists of one producer, one per sending thread (threads beyond this many share them:
/// a slot is a lock of its own, so sharing is correct, only slower).
const SLOTS: usize = 8;

/// Finished sends left for another thread to reuse or free ([`Inner::spent`]), and the
/// senders' spare boxes.
///
/// - An I/O thread stages the sends it ends on itself (no lock: see [`STAGING`]) and hands
///   them over here at the end of its turn ([`hand_over_retired`]) or once [`BATCH`] are
///   staged: one lock per batch. Other threads hand each over at once.
/// - A sender takes its box from its own spare list ([`SpentSends::slots`], a lock no other
///   thread takes while it sends), and refills that list with up to [`BATCH`] finished
///   sends at once (one lock on `list`), emptied right then; else from the free list.
/// - An internal thread frees what is left (a job scheduled when a hand-over finds none
///   pending: every finished send left here is then taken by a job that has not run yet, or
///   by a later one).
///
/// No allocation: the list is made with room for [`SPENT_CAPACITY`] and never grows, a spare
/// list has room for [`BATCH`]; what does not fit is freed where it is.
pub(super) struct SpentSends {
    #[allow(clippy::vec_box)] // the boxes are what is handed over
    list: crate::padded::Padded<parking_lot::Mutex<Vec<Box<AsyncSend>>>>,
    /// A free job ([`super::executor::Job::FreeSpent`]) is queued and has not started yet.
    /// Read under `list`'s lock by a hand-over (see [`SpentSends::hand_over`]).
    pub(super) free_queued: AtomicBool,
    /// The senders' spare boxes, by thread slot ([`thread_slot`]); `None` once shutdown has
    /// emptied them for good (each box holds its producer).
    slots: Box<[crate::padded::Padded<parking_lot::Mutex<Option<Spare>>>; SLOTS]>,
    /// The memos a new box starts with (see [`MemoSeed`]).
    seed: parking_lot::Mutex<Option<MemoSeed>>,
    /// Whether the next attempt is to leave its memos in `seed`: at first, and after each
    /// new box took them (so the seed follows what sends use now).
    seed_wanted: AtomicBool,
}

/// A sending thread's spare boxes (at most [`BATCH`] of each kind: made with that room).
struct Spare {
    /// Emptied boxes (given back, or from the free list).
    #[allow(clippy::vec_box)]
    clean: Vec<Box<AsyncSend>>,
    /// Finished sends taken from the list at once, emptied one at a time as they are used:
    /// each frees its message's memory just before the next message is allocated, so the
    /// allocator's thread cache serves both (emptying a whole batch at once would overflow
    /// it). A free job takes what is left here (with the list), so a sender that stops
    /// leaves no message behind.
    #[allow(clippy::vec_box)]
    dirty: Vec<Box<AsyncSend>>,
}

impl Spare {
    fn new() -> Spare {
        Spare {
            clean: Vec::with_capacity(BATCH),
            dirty: Vec::with_capacity(BATCH),
        }
    }
}

/// This thread's slot among a producer's spare lists: threads are numbered as they first
/// send, and share a slot only beyond [`SLOTS`] threads.
fn thread_slot() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    SLOT.try_with(|s| *s).unwrap_or(0)
}

/// The finished sends a thread staged, not yet handed over ([`AsyncSend::retire`]).
struct Staging {
    /// The list the staged sends go to (their producer's): this thread's own count on it,
    /// so a retiring send takes none.
    home: Option<Arc<SpentSends>>,
    /// At most [`BATCH`], all of `home`'s producer.
    #[allow(clippy::vec_box)]
    staged: Vec<Box<AsyncSend>>,
}

thread_local! {
    static STAGING: std::cell::RefCell<Staging> = const {
        std::cell::RefCell::new(Staging {
            home: None,
            staged: Vec::new(),
        })
    };
}

impl Staging {
    /// Stages `send`, handing the staged ones over when the batch is full, when `send` is of
    /// another producer, or when this thread does not end turns.
    fn stage(&mut self, send: Box<AsyncSend>) {
        let home_of_send = self
            .home
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h, &send.inner.spent));
        if !home_of_send {
            // Another producer's (or the first): what is staged goes to its own list first.
            self.hand_over();
            self.home = Some(send.inner.spent.clone());
        }
        if self.staged.capacity() == 0 {
            self.staged.reserve_exact(BATCH);
        }
        self.staged.push(send);
        if TURNS.get() == NO_TURNS || self.staged.len() >= BATCH {
            self.hand_over();
        } else if self.staged.len() == 1 {
            TURNS.set(STAGED);
        }
    }

    /// Hands what is staged over (one lock).
    fn hand_over(&mut self) {
        if let Some(home) = &self.home {
            home.hand_over(&mut self.staged);
        }
        if TURNS.get() == STAGED {
            TURNS.set(EMPTY);
        }
        debug_assert!(self.staged.is_empty());
    }
}

/// Hands the finished sends this thread staged over to their producer (one lock for all of
/// them), and marks the thread as one that calls this at the end of each turn, so that from
/// now on its finished sends are staged rather than handed over one by one. An I/O thread
/// calls it at the end of every turn of its event loop (and after its last), so nothing stays
/// staged while it sleeps.
#[inline]
pub(crate) fn hand_over_retired() {
    // A flag of its own (no destructor: read with no check), so a turn that staged nothing
    // costs one load and a compare, inlined into the caller's turn (no call).
    if TURNS.get() != EMPTY {
        hand_over_staged();
    }
}

/// [`hand_over_retired`] when the thread has sends staged, or ends its first turn.
#[inline(never)]
fn hand_over_staged() {
    match TURNS.get() {
        EMPTY => {}
        NO_TURNS => TURNS.set(EMPTY),
        _ => {
            let _ = STAGING.try_with(|cell| {
                if let Ok(mut staging) = cell.try_borrow_mut() {
                    staging.hand_over();
                }
            });
        }
    }
}

/// [`TURNS`]: this thread does not end turns with [`hand_over_retired`] (never called it).
const NO_TURNS: u8 = 0;
/// [`TURNS`]: it ends turns, and nothing is staged.
const EMPTY: u8 = 1;
/// [`TURNS`]: it ends turns, and sends are staged.
const STAGED: u8 = 2;

thread_local! {
    /// Whether this thread ends its turns with [`hand_over_retired`] (then its finished sends
    /// are staged; else each is handed over at once), and whether it has sends staged.
    static TURNS: std::cell::Cell<u8> = const { std::cell::Cell::new(NO_TURNS) };
}

/// The memos of a send's box (its broker address and target, fault-table entries, route
/// and statistics recorders), as an attempt left them, for a new box to start with: while
/// the in-flight window grows, each new box would otherwise look everything up again on its
/// first send (the tables' locks, hashes of the names). Every memo checks what it
/// remembers on each use (the name it is for, the table's version, an entry's removal), so
/// one made by another box answers as the box's own would: it only saves look-ups.
#[derive(Clone)]
struct MemoSeed {
    addr_memo: AddrMemo,
    fault_memo: FaultMemo,
    fault_handles: FaultHandles,
    route_memo: crate::routing::mapping::TopicMemo,
    stats_memo: stats::TopicMemo,
}

impl MemoSeed {
    fn of(send: &AsyncSend) -> MemoSeed {
        MemoSeed {
            addr_memo: send.addr_memo.clone(),
            fault_memo: send.fault_memo.clone(),
            fault_handles: send.fault_handles.clone(),
            route_memo: send.route_memo.clone(),
            stats_memo: send.stats_memo.clone(),
        }
    }

    fn into_send(self, send: &mut AsyncSend) {
        send.addr_memo = self.addr_memo;
        send.fault_memo = self.fault_memo;
        send.fault_handles = self.fault_handles;
        send.route_memo = self.route_memo;
        send.stats_memo = self.stats_memo;
    }
}

impl SpentSends {
    /// An empty list with room for [`SPENT_CAPACITY`] sends, and empty spare lists with room
    /// for [`BATCH`] each.
    pub(super) fn new() -> Self {
        SpentSends {
            list: crate::padded::Padded::new(parking_lot::Mutex::new(Vec::with_capacity(
                SPENT_CAPACITY,
            ))),
            free_queued: AtomicBool::new(false),
            slots: Box::new(std::array::from_fn(|_| {
                crate::padded::Padded::new(parking_lot::Mutex::new(Some(Spare::new())))
            })),
            seed: parking_lot::Mutex::new(None),
            seed_wanted: AtomicBool::new(true),
        }
    }

    /// Leaves the memos of `send` (after its attempt's look-ups) for new boxes, if wanted.
    /// One flag read otherwise.
    #[inline]
    fn offer_seed(&self, send: &AsyncSend) {
        if self.seed_wanted.load(Ordering::Relaxed)
            && self.seed_wanted.swap(false, Ordering::Relaxed)
        {
            *self.seed.lock() = Some(MemoSeed::of(send));
        }
    }

    /// Gives a new box the memos an attempt left (none before the first attempt), and asks
    /// the next attempt for fresh ones.
    fn seed_new(&self, send: &mut AsyncSend) {
        let seed = self.seed.lock().clone();
        if let Some(seed) = seed {
            seed.into_send(send);
        }
        self.seed_wanted.store(true, Ordering::Relaxed);
    }

    /// Moves the finished sends in `staged` (all of this producer's) here with one lock;
    /// what does not fit is freed here. Schedules a free job unless one is pending (read
    /// under the lock: a job clears its flag before it takes the list, so either it takes
    /// these or this sees the flag cleared); frees everything at once if the internal
    /// threads have stopped.
    #[allow(clippy::vec_box)]
    fn hand_over(&self, staged: &mut Vec<Box<AsyncSend>>) {
        if staged.is_empty() {
            return;
        }
        let schedule = {
            let mut list = self.list.lock();
            let fit = staged
                .len()
                .min(SPENT_CAPACITY - list.len().min(SPENT_CAPACITY));
            let rest = staged.len() - fit;
            list.extend(staged.drain(rest..));
            // The producer, to reach its internal threads: a count taken only here (at most
            // once per free job).
            match list.last() {
                Some(last) if !self.free_queued.load(Ordering::Acquire) => Some(last.inner.clone()),
                _ => None,
            }
        };
        // Full: freed here.
        for send in staged.drain(..) {
            send.recycle();
        }
        if let Some(inner) = schedule {
            if !inner.executor.schedule_free() {
                // Shut down: free what is there now.
                while let Some(spent) = self.take_one() {
                    inner.recycle(spent);
                }
            }
        }
    }

    /// Takes one finished send, if any.
    pub(super) fn take_one(&self) -> Option<Box<AsyncSend>> {
        self.list.lock().pop()
    }

    /// Moves up to [`BATCH`] finished sends into `into`, short of its room (one lock).
    #[allow(clippy::vec_box)]
    fn take_batch(&self, into: &mut Vec<Box<AsyncSend>>) {
        let want = BATCH.min(into.capacity()).saturating_sub(into.len());
        if want == 0 {
            return;
        }
        let mut list = self.list.lock();
        let from = list.len() - want.min(list.len());
        into.extend(list.drain(from..));
    }

    /// Moves every finished send into `into`, those the senders took and have not used
    /// too (reused: it grows to the most ever taken at once, then allocates no more).
    #[allow(clippy::vec_box)]
    pub(super) fn take_all(&self, into: &mut Vec<Box<AsyncSend>>) {
        into.append(&mut *self.list.lock());
        for slot in self.slots.iter() {
            if let Some(spare) = slot.lock().as_mut() {
                into.append(&mut spare.dirty);
            }
        }
    }

    /// This thread's spare list.
    fn slot(&self) -> &parking_lot::Mutex<Option<Spare>> {
        // `thread_slot` is below SLOTS, the length of `slots`: the mask only lets the compiler
        // see it (no bounds check).
        &self.slots[thread_slot() % SLOTS]
    }

    /// Frees every spare box and finished send, for good: spare lists refuse boxes from now
    /// on (each holds its producer). At shutdown, once no I/O or internal thread is left.
    pub(super) fn close(&self) {
        for slot in self.slots.iter() {
            let spare = slot.lock().take();
            drop(spare);
        }
        let mut spent = Vec::new();
        self.take_all(&mut spent);
        drop(spent);
    }

    /// Finished sends waiting (in the list, or taken by a sender and not used yet).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let taken: usize = (self.slots.iter())
            .map(|slot| slot.lock().as_ref().map_or(0, |s| s.dirty.len()))
            .sum();
        self.list.lock().len() + taken
    }

    /// Finished sends in the list.
    #[cfg(test)]
    pub(super) fn list_len(&self) -> usize {
        self.list.lock().len()
    }

    /// This thread's spare boxes: (emptied, finished sends not emptied yet).
    #[cfg(test)]
    pub(super) fn spare_len(&self) -> (usize, usize) {
        let slot = self.slot().lock();
        slot.as_ref()
            .map_or((0, 0), |s| (s.clean.len(), s.dirty.len()))
    }
}

impl AsyncSend {
    /// Frees a finished send (see [`Inner::recycle`]).
    pub(super) fn recycle(self: Box<Self>) {
        let inner = self.inner.clone();
        inner.recycle(self);
    }
}

impl AsyncSend {
    /// Ends it as [`Drop`] does if it has not ended (it never has, when a finished send is
    /// recycled).
    fn abandon(&mut self) {
        self.op.fail(&Error::Shutdown);
        if let Some(done) = self.done.take() {
            let hold = match self.permit.take() {
                Some(p) => Hold::Permit(p),
                None => Hold::Nothing,
            };
            finish_done(&self.inner, done, Err(Error::Shutdown), hold);
        } else if let Some(permit) = self.permit.take() {
            // Released here (a finished send holds none: nothing to drop, no drop call).
            drop(permit);
        }
        if let Some(mut ready) = self.ready.take().filter(|r| r.callback.is_some()) {
            // Its pool job was dropped unrun: the callback still runs, once.
            self.inner.run_user(Box::new(move || ready.run(None)));
        }
    }

    /// Reads what [`AsyncSend::clear`] reads first (what ending the send wrote), for
    /// nothing but to bring it into this thread's cache (see [`Inner::send_box`]).
    #[inline]
    fn touch(&self) {
        std::hint::black_box(
            self.done.is_none() & self.permit.is_none() & self.ready.is_none() & self.op.is_none(),
        );
    }

    /// Empties it in place, as [`AsyncSend::vacant`] makes one (what it held is dropped
    /// here), but for its producer and deadline.
    fn clear(&mut self) {
        // A finished send holds nothing to end (the usual case here): no call.
        let ended = self.done.is_none()
            && self.permit.is_none()
            && self.ready.is_none()
            && self.op.is_none();
        if !ended {
            self.abandon();
        }
        self.prepared.clear();
        // What a finished send usually holds (automatic routing, no attempt out) is not
        // dropped again: no drop of a target or an attempt that holds nothing.
        if !matches!(self.target, Target::Auto) {
            self.target = Target::Auto;
        }
        self.attempts_left = 0;
        self.last_broker = None;
        self.failures = Failures::default();
        self.attempt_no = 0;
        if self.current.is_some() {
            self.current = None;
        }
        self.ready = None;
        self.first = None;
    }
}

impl Inner {
    /// Takes in a finished send: its contents are dropped here (the message's memory), and
    /// its box goes to the free list for the next send while the producer runs.
    pub(super) fn recycle(&self, mut spent: Box<AsyncSend>) {
        spent.clear();
        let mut free = self.free_sends.lock();
        // `None` once shutdown has emptied it: a vacant send still holds its producer, so
        // none may stay in the list after that.
        if let Some(list) = free.as_mut() {
            if list.len() < FREE_SENDS {
                list.push(spent);
            }
        }
    }

    /// The box for a new send begun at `now`, emptied: from this thread's spare list (its
    /// own lock: no other thread takes it while this one sends). An empty spare list is
    /// refilled with up to [`BATCH`] finished sends at once (one lock on the shared list),
    /// each emptied here when it is used; else with boxes from the free list (one lock);
    /// else a new box is made.
    pub(super) fn send_box(self: &Arc<Self>, now: Instant) -> Box<AsyncSend> {
        let (job, took) = {
            let mut slot = self.spent.slot().lock();
            let Some(spare) = slot.as_mut() else {
                // Closed: shut down.
                drop(slot);
                return self.vacant_send(now);
            };
            if let Some(job) = spare.clean.pop() {
                return job;
            }
            match spare.dirty.pop() {
                Some(job) => (job, false),
                None => {
                    self.spent.take_batch(&mut spare.dirty);
                    // What the threads that ended them wrote last, read together: the line
                    // transfers overlap here rather than each stalling the send that
                    // empties its box.
                    for job in spare.dirty.iter() {
                        job.touch();
                    }
                    match spare.dirty.pop() {
                        Some(job) => (job, true),
                        None => {
                            if let Some(free) = self.free_sends.lock().as_mut() {
                                let want = BATCH.min(spare.clean.capacity());
                                let from = free.len() - want.min(free.len());
                                spare.clean.extend(free.drain(from..));
                            }
                            match spare.clean.pop() {
                                Some(job) => return job,
                                None => {
                                    drop(slot);
                                    return self.vacant_send(now);
                                }
                            }
                        }
                    }
                }
            }
        };
        // Those taken wait in this thread's list: a free job takes them if it stops sending
        // (read after the lock: a job clears its flag before it takes the lists, so either
        // it takes them or this sees the flag cleared).
        if took && !self.spent.free_queued.load(Ordering::Acquire) {
            self.executor.schedule_free();
        }
        // Emptied with no lock held: emptying may end what it held.
        let mut job = job;
        job.clear();
        job
    }

    /// Gives back a box [`Inner::send_box`] gave this thread but that carried no send (its
    /// message went another way, or failed before it was sent): emptied, to this thread's
    /// spare list if it has room, else to [`Inner::recycle`].
    pub(super) fn give_back(&self, mut job: Box<AsyncSend>) {
        job.clear();
        let job = {
            let mut slot = self.spent.slot().lock();
            match slot.as_mut() {
                Some(spare) if spare.clean.len() < spare.clean.capacity() => {
                    spare.clean.push(job);
                    return;
                }
                _ => job,
            }
        };
        self.recycle(job);
    }

    /// A vacant send for a new one: a box from the free list (no allocation), or a new one
    /// (`now`: a placeholder deadline, set when the send starts).
    pub(super) fn vacant_send(self: &Arc<Self>, now: Instant) -> Box<AsyncSend> {
        let recycled = self.free_sends.lock().as_mut().and_then(Vec::pop);
        recycled.unwrap_or_else(|| {
            let mut send = Box::new(AsyncSend::vacant(self.clone(), now));
            self.spent.seed_new(&mut send);
            send
        })
    }
}

impl Drop for AsyncSend {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// The time and retries an asynchronous send may spend, when they are not an asynchronous
/// caller's (the send timeout from now, `async_retries`): an auto-batch that holds a
/// synchronous caller's message spends that caller's.
pub(super) struct Budget {
    /// When the last attempt must have ended.
    pub(super) deadline: Instant,
    /// Retries to another broker (automatic routing only).
    pub(super) retries: u32,
}

impl Inner {
    /// Starts a send whose time budget begins at `now` (the send timeout from then, and
    /// `async_retries`).
    pub(super) fn start_async(
        self: &Arc<Self>,
        prepared: Prepared,
        permit: Permit,
        target: Target,
        done: Done,
        op: stats::Op,
        now: Instant,
    ) {
        let budget = Budget {
            deadline: now + self.config.send_timeout(),
            retries: self.config.async_retries(),
        };
        self.start_async_within(prepared, permit, target, done, op, budget);
    }

    /// [`Inner::start_async`] with the given time and retries.
    pub(super) fn start_async_within(
        self: &Arc<Self>,
        prepared: Prepared,
        permit: Permit,
        target: Target,
        done: Done,
        op: stats::Op,
        budget: Budget,
    ) {
        let mut job = self.vacant_send(budget.deadline);
        job.prepared = prepared;
        self.start_prepared(job, permit, target, done, op, budget, Instant::now());
    }

    /// Starts `job`, a vacant send whose message is prepared in it, and makes its first
    /// attempt at `now` (a clock read of the caller's, taken after any wait for room).
    #[allow(clippy::too_many_arguments)]
    // the parts of one send, each moved in once
    // Always inlined into the send path (its two callers): its arguments go straight into the
    // box, not through a call.
    #[inline(always)]
    pub(super) fn start_prepared(
        self: &Arc<Self>,
        mut job: Box<AsyncSend>,
        permit: Permit,
        target: Target,
        done: Done,
        op: stats::Op,
        budget: Budget,
        now: Instant,
    ) {
        job.attempts_left = match target {
            // Strict order: a keyed message-hash send is never retried on another queue.
            Target::Auto if self.strict_hash_key(&job.prepared).is_some() => 0,
            Target::Auto => budget.retries,
            _ => 0,
        };
        job.deadline = budget.deadline;
        // A vacant box's target is `Auto` ([`AsyncSend::vacant`], [`AsyncSend::clear`]):
        // nothing to drop, and nothing to write for an `Auto` send. `Auto` holds nothing:
        // forgetting it frees nothing (and spares a drop call after the attempt).
        debug_assert!(matches!(job.target, Target::Auto));
        if matches!(target, Target::Auto) {
            std::mem::forget(target);
        } else {
            job.target = target;
        }
        // A vacant box holds no callback, room or statistics ([`AsyncSend::clear`] ends what a
        // box still holds). Plain assignments all the same: should that ever break, the old
        // permit is dropped (its room given back) rather than leaked, which would shrink the
        // in-flight window for good.
        debug_assert!(job.done.is_none() && job.permit.is_none() && job.op.is_none());
        job.done = Some(done);
        job.permit = Some(permit);
        job.op = op;
        job.attempt_at(false, now, &self.remoting);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testing::MockBroker;
    use crate::{Message, Producer};

    /// A send box remembers its last topic (its route and statistics recorder, and that the
    /// name passed the topic check): a message for another topic, valid or not, is still
    /// checked and routed on its own, whatever the box sent before.
    #[test]
    fn a_box_remembering_a_topic_still_checks_and_routes_others() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_MEMO")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        let long = "a".repeat(128);
        let bad = [
            "bad topic",
            "",
            long.as_str(),
            "SCHEDULE_TOPIC_XXXX",
            "Good\u{e9}",
        ];
        for round in 0..3 {
            for good in ["MemoA", "MemoB", "MemoA"] {
                let r = p.send_async(Message::new(good, "x")).wait().unwrap();
                assert_eq!(r.queue.topic(), good);
            }
            for topic in bad {
                let e = p.send_async(Message::new(topic, "x")).wait().unwrap_err();
                assert_eq!(
                    e.kind(),
                    crate::ErrorKind::InvalidMessage,
                    "{round} {topic:?}"
                );
            }
        }
        let stats = p.stats();
        assert_eq!(stats.topics["MemoA"].succeeded, 6);
        assert_eq!(stats.topics["MemoB"].succeeded, 3);
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// One wall-clock read per send serves its id and its first attempt's born timestamp:
    /// each stored message's born timestamp lies within its send call (first attempts never
    /// wait here), and ids stay unique.
    #[test]
    fn first_attempts_are_born_within_their_send() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_BORN")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        p.send(Message::new("BornTopic", "warm")).unwrap();
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        let mut windows = Vec::new();
        for i in 0..200 {
            let before = wall();
            let h = p.send_async(Message::new("BornTopic", format!("m{i}")));
            windows.push((format!("m{i}"), before, wall(), h));
        }
        let mut ids = std::collections::HashSet::new();
        let stored = broker.wait_messages("BornTopic", 201, Duration::from_secs(20));
        for (body, before, after, h) in windows {
            let r = h.wait().unwrap();
            assert!(ids.insert(r.msg_id.to_string()), "id {} twice", r.msg_id);
            let m = stored.iter().find(|m| m.body == body.as_bytes()).unwrap();
            assert!(
                (before..=after).contains(&m.born_timestamp),
                "{body} born {} outside {before}..={after}",
                m.born_timestamp
            );
        }
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// The first attempt, which knows its time left without a clock read, is still capped by
    /// the per-attempt timeout: a broker that does not answer fails it after the cap, long
    /// before the send timeout.
    #[test]
    fn first_attempt_is_capped_by_the_per_attempt_timeout() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_CAP")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(60))
            .per_attempt_timeout(Duration::from_millis(300))
            .retries(0)
            .start()
            .unwrap();
        p.send(Message::new("CapTopic", "warm")).unwrap();
        broker.set_delay(
            crate::protocol::RequestCode::SEND_MESSAGE_V2,
            Duration::from_secs(120),
        );
        let h = p.send_async(Message::new("CapTopic", "x"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(h.wait());
        });
        // Watchdog: far below the send timeout, far above the cap.
        let result = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the first attempt was not capped by the per-attempt timeout");
        assert!(result.unwrap_err().is_timeout());
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// A new box starts with the memos an attempt left (its topic's route and statistics
    /// recorder, its broker's address, target and fault entries), and sends in new boxes go
    /// where sends with their own look-ups go: many topics in a window of new boxes each
    /// reach their own topic and are counted on it.
    #[test]
    fn new_boxes_start_with_the_memos_an_attempt_left() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_SEED")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        p.send_async(Message::new("SeedA", "warm")).wait().unwrap();
        let inner = p.inner();
        // No send is in flight: with the free list empty, the next box is a new one.
        if let Some(free) = inner.free_sends.lock().as_mut() {
            free.clear();
        }
        let job = inner.vacant_send(std::time::Instant::now());
        assert!(job.stats_memo.is_checked("SeedA"), "seeded by the attempt");
        assert!(!job.stats_memo.is_checked("SeedB"));
        assert!(job.addr_memo.remembers_a_broker(), "seeded by the attempt");
        drop(job);
        let topics = ["SeedA", "SeedB", "SeedC"];
        let handles: Vec<_> = (0..300)
            .map(|i| {
                let topic = topics[i % 3];
                (topic, p.send_async(Message::new(topic, format!("m{i}"))))
            })
            .collect();
        for (topic, h) in handles {
            assert_eq!(h.wait().unwrap().queue.topic(), topic);
        }
        let stats = p.stats();
        assert_eq!(stats.topics["SeedA"].succeeded, 101);
        assert_eq!(stats.topics["SeedB"].succeeded, 100);
        assert_eq!(stats.topics["SeedC"].succeeded, 100);
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// Waits until no free job is pending, then marks one as pending, so that no free job
    /// takes the finished list while a test looks at it (nothing schedules one meanwhile).
    fn hold_off_free_jobs(inner: &crate::producer::Inner) {
        let flag = &inner.spent.free_queued;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while flag.load(std::sync::atomic::Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "a free job never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
        flag.store(true, std::sync::atomic::Ordering::Release);
    }

    /// A sender takes finished sends from the shared list a batch at a time (one lock) into
    /// its own spare list, empties each as it uses it, and takes the free list's boxes only
    /// when none is finished; a box it gives back is its next one.
    #[test]
    fn a_sender_takes_finished_sends_a_batch_at_a_time() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_REUSE")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        p.send(Message::new("ReuseTopic", "warm")).unwrap();
        let inner = p.inner();
        hold_off_free_jobs(inner);
        let now = std::time::Instant::now();
        // No send is in flight: nothing else touches the lists.
        let spent = &inner.spent;
        let free_len = || inner.free_sends.lock().as_ref().map_or(0, Vec::len);
        let free_before = free_len();
        let (clean_before, dirty_before) = spent.spare_len();
        assert_eq!(dirty_before, 0);
        let mut boxes: Vec<_> = (0..super::BATCH + 3)
            .map(|_| Box::new(super::AsyncSend::vacant(inner.clone(), now)))
            .collect();
        for b in &mut boxes {
            // A finished send still holds its message: emptied when it is used.
            b.prepared.topic = "ReuseTopic".into();
        }
        let ptrs: Vec<*const super::AsyncSend> = boxes.iter().map(|b| &**b as *const _).collect();
        spent.hand_over(&mut boxes);
        assert_eq!(spent.list_len(), super::BATCH + 3);
        // Emptied boxes first.
        let mut earlier = Vec::new();
        for _ in 0..clean_before {
            let job = inner.send_box(now);
            assert!(!ptrs.contains(&(&*job as *const _)));
            earlier.push(job);
        }
        let job = inner.send_box(now);
        assert_eq!(
            &*job as *const _,
            ptrs[super::BATCH + 2],
            "the last finished"
        );
        assert!(job.prepared.topic.is_empty(), "emptied when taken");
        assert_eq!(spent.list_len(), 3, "a batch taken at once");
        assert_eq!(spent.spare_len(), (0, super::BATCH - 1));
        assert_eq!(spent.len(), super::BATCH + 2, "the taken ones still count");
        // A box given back is the next one.
        let given = &*job as *const _;
        inner.give_back(job);
        assert_eq!(spent.spare_len(), (1, super::BATCH - 1));
        let job = inner.send_box(now);
        assert_eq!(&*job as *const _, given);
        let mut taken = vec![job];
        for i in (3..super::BATCH + 2).rev() {
            let job = inner.send_box(now);
            assert_eq!(&*job as *const _, ptrs[i]);
            taken.push(job);
        }
        assert_eq!(spent.spare_len(), (0, 0));
        assert_eq!(
            spent.list_len(),
            3,
            "not touched while the spare list lasts"
        );
        for i in (0..3).rev() {
            let job = inner.send_box(now);
            assert_eq!(&*job as *const _, ptrs[i]);
            taken.push(job);
        }
        assert_eq!(spent.len(), 0);
        assert_eq!(free_len(), free_before, "the free list is left alone");
        // Nothing finished: a batch from the free list.
        for job in taken {
            inner.recycle(job);
        }
        let free_full = free_len();
        assert!(free_full > super::BATCH);
        let job = inner.send_box(now);
        assert_eq!(free_len(), free_full - super::BATCH);
        assert_eq!(spent.spare_len(), (super::BATCH - 1, 0));
        inner.give_back(job);
        drop(earlier);
        spent
            .free_queued
            .store(false, std::sync::atomic::Ordering::Release);
        // The sends still go.
        for i in 0..50 {
            let r = p.send_async(Message::new("ReuseTopic", format!("m{i}")));
            assert_eq!(r.wait().unwrap().queue.topic(), "ReuseTopic");
        }
        p.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(spent.len(), 0);
        assert_eq!(spent.spare_len(), (0, 0), "spare boxes freed at shutdown");
        // A box given back after shutdown is freed, not kept.
        let job = Box::new(super::AsyncSend::vacant(inner.clone(), now));
        inner.give_back(job);
        assert_eq!(spent.spare_len(), (0, 0));
    }

    /// A thread that ends its turns with `hand_over_retired` (an I/O thread) stages the sends
    /// it finishes and hands them over at the end of the turn, or once a batch is staged;
    /// any other thread hands each over at once.
    #[test]
    fn finished_sends_are_handed_over_per_turn() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_TURN")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        p.send(Message::new("TurnTopic", "warm")).unwrap();
        let inner = p.inner().clone();
        hold_off_free_jobs(&inner);
        let spent = &inner.spent;
        let before = spent.list_len();
        let now = std::time::Instant::now();
        let vacant = || Box::new(super::AsyncSend::vacant(inner.clone(), now));
        // A thread of its own (its staging starts empty).
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // Not ending turns: at once.
                    vacant().retire();
                    assert_eq!(spent.list_len(), before + 1);
                    super::hand_over_retired();
                    assert_eq!(spent.list_len(), before + 1);
                    // Ending turns: staged until the turn ends.
                    for _ in 0..3 {
                        vacant().retire();
                    }
                    assert_eq!(spent.list_len(), before + 1);
                    super::hand_over_retired();
                    assert_eq!(spent.list_len(), before + 4);
                    // Or a batch is full.
                    for _ in 0..super::BATCH - 1 {
                        vacant().retire();
                    }
                    assert_eq!(spent.list_len(), before + 4);
                    vacant().retire();
                    assert_eq!(spent.list_len(), before + 4 + super::BATCH);
                    // Another producer's send: what is staged goes to its own list first.
                    vacant().retire();
                    let other = Producer::builder("GID_TURN2")
                        .name_server(broker.namesrv_addr())
                        .start()
                        .unwrap();
                    let other_before = other.inner().spent.list_len();
                    Box::new(super::AsyncSend::vacant(other.inner().clone(), now)).retire();
                    assert_eq!(spent.list_len(), before + 5 + super::BATCH);
                    assert_eq!(other.inner().spent.list_len(), other_before);
                    super::hand_over_retired();
                    assert_eq!(other.inner().spent.list_len(), other_before + 1);
                    other.shutdown(Duration::from_secs(5)).unwrap();
                })
                .join()
                .unwrap();
        });
        spent
            .free_queued
            .store(false, std::sync::atomic::Ordering::Release);
        p.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(spent.len(), 0, "freed at shutdown");
    }

    /// Item 10 of issue 12: a burst of asynchronous sends followed by idleness leaves no
    /// finished send (and its body) waiting to be freed.
    #[test]
    fn finished_sends_are_freed_while_idle() {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_SPENT")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        p.send(Message::new("SpentTopic", "warm")).unwrap();
        let handles: Vec<_> = (0..64)
            .map(|i| p.send_async(Message::new("SpentTopic", vec![i as u8; 1024])))
            .collect();
        for h in handles {
            h.wait().unwrap();
        }
        let spent = &p.inner().spent;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while spent.len() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(spent.len(), 0, "finished sends still held after idling");
        p.shutdown(Duration::from_secs(5)).unwrap();
    }
}
