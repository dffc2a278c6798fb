//! Where asynchronous sends enter the producer: preparing the message, waiting for
//! in-flight room (backpressure), or handing it to the auto-batch accumulator.

use std::sync::Arc;
use std::time::Instant;

use super::async_send::{finish_done, Budget, Done, FirstAttempt, Hold};
use super::backpressure::Permit;
use super::hooks::SendMode;
use super::inner::{now_ms, Inner};
use super::prepare::Prepared;
use super::stats;
use crate::error::Result;
use crate::message::{Message, MessageQueue, SendResult};
use crate::routing::selector::QueueSelector;

/// What an attempt sends to.
#[derive(Clone)]
pub(super) enum Target {
    /// A queue the router picks; retries go to another broker.
    Auto,
    /// This queue, no retry elsewhere.
    Queue(MessageQueue),
    /// The queue a selector picks; no retry elsewhere (order matters).
    Selector(Arc<dyn QueueSelector>, String),
}

/// A message or batch not yet prepared.
pub(super) enum Prep {
    Single(Message),
    Batch(Vec<Message>),
}

/// Whether the current thread is one of the callback pool's.
fn on_callback_thread() -> bool {
    thread_local! {
        // A thread's name never changes: looked up once per thread, not per send.
        static CALLBACK_THREAD: bool = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("rocketmq-callback"));
    }
    CALLBACK_THREAD.with(|on| *on)
}

impl Inner {
    /// Hands `msg` of a synchronous caller to the auto-batch accumulator when it takes it; the
    /// handle resolves with the message's own result, within the caller's send timeout (from
    /// now) and with its `retries`. Gives the message back otherwise.
    #[allow(clippy::result_large_err)] // the message is handed back, not an error
    pub(super) fn send_batched(
        self: &Arc<Self>,
        msg: Message,
        target: Target,
    ) -> std::result::Result<crate::remoting::Handle<SendResult>, Message> {
        match &self.batcher {
            Some(acc) if self.check_running().is_ok() && acc.accepts(&msg, &target) => {
                let deadline = Instant::now() + self.config.send_timeout();
                self.free_spent();
                let (completer, handle) = crate::remoting::completion::pooled_pair();
                acc.add(
                    self,
                    msg,
                    target,
                    Done::Handle(completer.into()),
                    stats::Op::none(),
                    Some(deadline),
                );
                Ok(handle)
            }
            _ => Err(msg),
        }
    }

    /// Frees what finished sends left behind (two per send keeps up with one per send; the
    /// rest goes at shutdown).
    pub(super) fn free_spent(&self) {
        for _ in 0..2 {
            match self.spent.take_one() {
                Some(spent) => self.recycle(spent),
                None => break,
            }
        }
    }

    pub(super) fn send_async(self: &Arc<Self>, mut prep: Prep, target: Target, done: Done) {
        // The send begins now: its statistics, its wait for room and its time budget (one
        // monotonic clock read), its id and its first born timestamp (one wall-clock read).
        let now = Instant::now();
        let wall_ms = now_ms();
        // The send's box first (a finished send's, reused in place; finished sends are freed
        // here too): it remembers the last topic's statistics recorder.
        let mut job = self.send_box(now);
        let (mut op, stats_checked) = self.stats.begin_prep_memo(&prep, now, &mut job.stats_memo);
        if self.hooks.is_some() {
            let hooked = match &mut prep {
                Prep::Single(msg) => {
                    self.hook_before(std::slice::from_mut(msg), SendMode::Async, false)
                }
                Prep::Batch(msgs) if msgs.is_empty() => Ok(()),
                Prep::Batch(msgs) => self.hook_before(msgs, SendMode::Async, true),
            };
            if let Err(e) = hooked {
                self.give_back(job);
                op.fail(&e);
                return finish_done(self, done, Err(e), Hold::Nothing);
            }
        }
        // Looked at in place: a message the accumulator does not take is not moved here.
        if let (Prep::Single(msg), Some(acc)) = (&prep, &self.batcher) {
            if self.check_running().is_ok() && acc.accepts(msg, &target) {
                if let Prep::Single(msg) = prep {
                    self.give_back(job);
                    return acc.add(self, msg, target, done, op, None);
                }
            }
        }
        // Prepared right in the send that carries it (no move of the prepared message). A
        // topic the box's statistics recorder was made for has passed the topic check.
        // Known from the recorder's look-up unless a hook may have changed the topic since.
        let topic_checked = match &prep {
            Prep::Single(_) if self.hooks.is_none() => stats_checked,
            Prep::Single(msg) => job.stats_memo.is_checked(msg.topic()),
            Prep::Batch(_) => false,
        };
        let prepared = &mut job.prepared;
        match self.prepare_async_into(prep, &target, now, wall_ms, topic_checked, prepared) {
            Ok((permit, admitted, deadline)) => {
                let budget = Budget {
                    deadline,
                    retries: self.config.async_retries(),
                };
                // Nothing waited: the first attempt is born when the id was made, with the
                // whole send timeout left.
                job.first = (admitted == now).then_some(FirstAttempt {
                    born_ms: wall_ms,
                    left: self.config.send_timeout(),
                });
                self.start_prepared(job, permit, target, done, op, budget, admitted)
            }
            Err(e) => {
                self.give_back(job);
                op.fail(&e);
                finish_done(self, done, Err(e), Hold::Nothing)
            }
        }
    }

    /// Sends what the auto-batch accumulator admitted (it bounds their memory): no check that
    /// the producer runs (shutdown flushes batches), no wait for in-flight room. The callers'
    /// statistics are kept by the accumulator, not here. `budget`: a synchronous caller's
    /// deadline and retries, if the batch holds one.
    pub(super) fn launch_async(
        self: &Arc<Self>,
        prep: Prep,
        target: Target,
        done: Done,
        budget: Option<Budget>,
    ) {
        self.free_spent();
        let prepared = match prep {
            Prep::Single(msg) => self.prepare_msg(msg, false, SendMode::Async),
            Prep::Batch(msgs) => self.prepare_msgs(msgs, SendMode::Async),
        };
        match prepared {
            Ok(prepared) => {
                let permit = self.in_flight.acquire_unbounded(prepared.size);
                let op = stats::Op::none();
                match budget {
                    Some(b) => self.start_async_within(prepared, permit, target, done, op, b),
                    None => self.start_async(prepared, permit, target, done, op, Instant::now()),
                }
            }
            Err(e) => finish_done(self, done, Err(e), Hold::Nothing),
        }
    }

    /// Prepares a send that began at `now` (`wall_ms` on the wall clock) into `prepared`
    /// (vacant; `topic_checked`: its topic is known to pass the topic check) and takes its
    /// in-flight room; also returns when the room was taken (`now`,
    /// unless it had to wait), where its time budget begins, and its deadline (the send
    /// timeout from then).
    pub(super) fn prepare_async_into(
        &self,
        prep: Prep,
        target: &Target,
        now: Instant,
        wall_ms: i64,
        topic_checked: bool,
        prepared: &mut Prepared,
    ) -> Result<(Permit, Instant, Instant)> {
        self.check_running()?;
        match prep {
            // The selector runs later (maybe once the route is fetched): it must see the
            // message as the caller built it.
            Prep::Single(msg) => {
                let for_selector = matches!(target, Target::Selector(..));
                let mode = SendMode::Async;
                self.prepare_msg_into_at(msg, for_selector, mode, prepared, wall_ms, topic_checked)?
            }
            Prep::Batch(msgs) => *prepared = self.prepare_msgs(msgs, SendMode::Async)?,
        }
        let deadline = now + self.config.send_timeout();
        if on_callback_thread() {
            // A callback that sends must not wait for room: room is made by the callbacks
            // queued behind it, which only callback threads can run. It takes room if there
            // is some, else the bounded callback allowance, else fails at once.
            return Ok((self.in_flight.acquire_now(prepared.size)?, now, deadline));
        }
        Ok(
            match self.in_flight.acquire_waited(prepared.size, deadline)? {
                (permit, false) => (permit, now, deadline),
                (permit, true) => {
                    let admitted = Instant::now();
                    (permit, admitted, admitted + self.config.send_timeout())
                }
            },
        )
    }
}
