//! One asynchronous send across its attempts: [`AsyncSend`], which ends exactly once, and
//! how its end reaches the caller (a handle or a callback on the callback pool).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::attempt::Failures;
use super::backpressure::Permit;
use super::inner::{now_ms, Inner, RUNNING, STOPPED};
use super::prepare::Prepared;
use super::stats;
use super::submit::Target;
use crate::client::broker;
use crate::error::{Error, Result};
use crate::message::{MessageQueue, SendResult};
use crate::protocol::RemotingCommand;

/// How an asynchronous send reports its end.
pub(super) enum Done {
    /// A handle; the completer also ends the send's flush ticket.
    Handle(super::flush::TrackedCompleter),
    Callback(Box<dyn FnOnce(Result<SendResult>) + Send + 'static>),
}

/// Ends an asynchronous send: completes its handle or runs its callback on the pool.
pub(super) fn finish_done(inner: &Inner, done: Done, result: Result<SendResult>, on_caller: bool) {
    match done {
        Done::Handle(completer) => {
            completer.complete(result);
        }
        Done::Callback(callback) => {
            let run = move || {
                if catch_unwind(AssertUnwindSafe(|| callback(result))).is_err() {
                    log::error!("a send callback panicked");
                }
            };
            if on_caller {
                // User code runs on the callback pool, not on the caller's thread; only when
                // the pool is gone (shutdown) does it run here, so that it still runs once.
                let slot = Arc::new(Mutex::new(Some(run)));
                let pooled = slot.clone();
                let task = Box::new(move || {
                    if let Some(run) = pooled.lock().take() {
                        run();
                    }
                });
                if inner.remoting.execute(task).is_err() {
                    if let Some(run) = slot.lock().take() {
                        run();
                    }
                }
            } else {
                run();
            }
        }
    }
}

/// One asynchronous send across its attempts. Ends exactly once: `finish`, or `Drop` with
/// [`Error::Shutdown`] as a last line of defence.
pub(super) struct AsyncSend {
    inner: Arc<Inner>,
    prepared: Prepared,
    target: Target,
    deadline: Instant,
    attempts_left: u32,
    last_broker: Option<Arc<str>>,
    failures: Failures,
    done: Option<Done>,
    _permit: Option<Permit>,
    /// Statistics of this send.
    op: stats::Op,
}

impl AsyncSend {
    /// Runs one attempt. On the caller's thread it only uses cached routes; a miss moves the
    /// attempt to the callback pool, where lookups may block.
    fn attempt(mut self: Box<Self>, on_caller: bool) {
        let now = Instant::now();
        if now >= self.deadline {
            let failures = std::mem::take(&mut self.failures);
            let e = self.inner.attempts_failed(self.deadline, failures);
            return self.finish(Err(e), on_caller);
        }
        if self.inner.state.load(Ordering::Acquire) == STOPPED {
            return self.finish(Err(Error::Shutdown), on_caller);
        }
        let queue = match self.pick_queue(on_caller) {
            Ok(Some(q)) => q,
            Ok(None) => return self.defer(),
            Err(e) => return self.finish(Err(e), on_caller),
        };
        let addr = match self.inner.broker_addr(queue.broker_name()) {
            Some(a) => a,
            None if on_caller => return self.defer(),
            None => match self.inner.broker_addr_or_refresh(
                &self.prepared.wire_topic,
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
                    return self.finish(Err(e), on_caller);
                }
            },
        };
        let born = now_ms();
        let encoded = self
            .inner
            .remoting
            .encode_request(&addr, false, |spec, out| {
                broker::encode_send_frame(
                    &self.prepared,
                    &queue,
                    &self.inner.defaults,
                    born,
                    spec,
                    out,
                )
            });
        let request = match encoded {
            Ok(r) => r,
            Err(e) => return self.finish(Err(e), on_caller),
        };
        let attempt = self.inner.stats.attempt(
            &self.prepared,
            queue.broker_name(),
            self.last_broker.is_some(),
        );
        let started = Instant::now();
        let timeout = self.inner.attempt_timeout(self.deadline, started);
        let remoting = self.inner.remoting.clone();
        // The response is mapped on the I/O thread (no user code runs there: a callback
        // goes to the pool, a retry too); a failed request ends on the pool.
        remoting.send_encoded_inline(
            request,
            timeout,
            Box::new(move |response| {
                let on_io = response.is_ok();
                self.on_response(response, queue, addr, started, attempt, on_io)
            }),
        );
    }

    /// The queue for this attempt; `Ok(None)` when the route must be fetched first and we are
    /// on the caller's thread.
    fn pick_queue(&mut self, on_caller: bool) -> Result<Option<MessageQueue>> {
        let wire_topic = &self.prepared.wire_topic;
        let info = match &self.target {
            Target::Queue(q) => return Ok(Some(q.clone())),
            _ if on_caller => match self.inner.mapping.get(wire_topic, Instant::now()) {
                Some(info) if !info.queues().is_empty() => info,
                _ => return Ok(None),
            },
            _ => self.inner.publish_info(wire_topic, self.deadline)?,
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
                let picked = self.inner.run_selector(selector.as_ref(), &info, msg, arg);
                self.prepared.release_message();
                picked.map(Some)
            }
            _ => self
                .inner
                .select_auto(&info, &self.prepared, self.last_broker.as_deref())
                .map(Some),
        }
    }

    /// Moves the attempt to the callback pool (route lookups block).
    fn defer(self: Box<Self>) {
        let remoting = self.inner.remoting.clone();
        let mut slot = Some(self);
        let task = Box::new(move || {
            if let Some(job) = slot.take() {
                job.attempt(false);
            }
        });
        // If the pool is gone, the task (and the job in it) is dropped: Drop ends the send
        // with Shutdown.
        if let Err(e) = remoting.execute(task) {
            log::debug!("could not defer an async send: {e}");
        }
    }

    fn on_response(
        mut self: Box<Self>,
        response: Result<RemotingCommand>,
        queue: MessageQueue,
        addr: String,
        started: Instant,
        attempt: stats::Attempt,
        on_io: bool,
    ) {
        let result = response.and_then(|r| broker::send_result(r, &self.prepared, &queue, &addr));
        attempt.end(started, &result);
        self.inner
            .record_attempt(queue.broker_name(), started.elapsed(), &result);
        let retriable = matches!(self.target, Target::Auto)
            && result.is_err()
            && self.inner.should_retry(&result);
        if retriable {
            if let Err(e) = result {
                let retry = self.attempts_left > 0
                    && Instant::now() < self.deadline
                    && self.inner.state.load(Ordering::Acquire) == RUNNING;
                if retry {
                    log::debug!("async send to {addr} will be retried: {e}");
                }
                self.failures.push(e);
                if !retry {
                    // Out of attempts or of time: the error says what happened before.
                    let failures = std::mem::take(&mut self.failures);
                    let e = self.inner.attempts_failed(self.deadline, failures);
                    return self.finish(Err(e), on_io);
                }
                self.attempts_left -= 1;
                self.last_broker = Some(queue.broker_name_arc().clone());
                if on_io {
                    return self.defer(); // route lookups may block: not on the I/O thread
                }
                return self.attempt(false);
            }
        }
        // On the I/O thread a handle completes here and a callback goes to the pool.
        self.finish(result, on_io);
    }

    fn finish(mut self: Box<Self>, result: Result<SendResult>, on_caller: bool) {
        // Release the in-flight share first: a callback that sends again must find room.
        self._permit = None;
        self.op.record(&result);
        if let Some(done) = self.done.take() {
            finish_done(&self.inner, done, result, on_caller);
        }
        if on_caller {
            // Finished on the I/O thread: leave the freeing to the sending side.
            let spent = self.inner.spent.0.clone();
            if let Err(e) = spent.send(self) {
                drop(e.into_inner());
            }
        }
    }
}

impl Drop for AsyncSend {
    fn drop(&mut self) {
        self._permit = None;
        self.op.fail(&Error::Shutdown);
        if let Some(done) = self.done.take() {
            match done {
                Done::Handle(completer) => {
                    completer.complete(Err(Error::Shutdown));
                }
                Done::Callback(callback) => {
                    if catch_unwind(AssertUnwindSafe(|| callback(Err(Error::Shutdown)))).is_err() {
                        log::error!("a send callback panicked");
                    }
                }
            }
        }
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
    pub(super) fn start_async(
        self: &Arc<Self>,
        prepared: Prepared,
        permit: Permit,
        target: Target,
        done: Done,
        op: stats::Op,
    ) {
        let budget = Budget {
            deadline: Instant::now() + self.config.send_timeout(),
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
        let attempts_left = match target {
            // Strict order: a keyed message-hash send is never retried on another queue.
            Target::Auto if self.strict_hash_key(&prepared).is_some() => 0,
            Target::Auto => budget.retries,
            _ => 0,
        };
        let job = Box::new(AsyncSend {
            inner: self.clone(),
            deadline: budget.deadline,
            prepared,
            target,
            attempts_left,
            last_broker: None,
            failures: Failures::default(),
            done: Some(done),
            _permit: Some(permit),
            op,
        });
        job.attempt(true);
    }
}
