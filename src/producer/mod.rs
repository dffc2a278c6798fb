//! The producer: lifecycle, the one send path every mode goes through, retries.
//!
//! # Threads
//!
//! A [`Producer`] owns a [`RemotingClient`](crate::remoting::RemotingClient) (its
//! `rocketmq-io-N` event-loop threads and `rocketmq-callback-N` pool), `rocketmq-async-N`
//! internal threads (`executor`) and one `rocketmq-service` thread that refreshes routes and
//! sends heartbeats. Synchronous sends run their attempts on the caller's thread and block on
//! the response. Asynchronous sends encode on the caller's thread and never block on the
//! network: a route that is not cached yet is fetched on an internal thread, and retries run
//! there too. Handles complete where the result is known (an I/O thread, usually); the
//! callback pool runs only user callbacks and broker-initiated requests, so no library
//! progress ever waits for a callback to return (`async_send` has the details). Completion
//! callbacks, selectors and transaction listeners never run on an I/O thread.
//!
//! # Layout
//!
//! This file holds the [`Producer`] type and its public methods. The rest, one idea a file:
//! `inner` (the state shared with background tasks), `lifecycle` (start and shutdown),
//! `route` (route resolution), `service` (route refresh and heartbeats), `attempt` (queue
//! choice, timeouts, retry policy, fault records), `sync_send` (the synchronous attempt loop
//! and oneway), `submit` (where asynchronous sends enter), `async_send` (one asynchronous
//! send across its attempts), `executor` (the internal threads), `batch` (auto-batching), `prepare` (validation and encoding
//! inputs), `backpressure`, `handle`, `health`, `stats`, `transaction` and `request` (request-reply).

mod async_send;
mod attempt;
pub(crate) mod backpressure;
mod batch;
mod callback;
mod executor;
mod flush;
mod handle;
pub mod health;
pub mod hooks;
mod inner;
mod lifecycle;
mod order;
pub(crate) mod prepare;
mod request;
mod route;
mod service;
pub mod stats;
mod submit;
mod sync_send;
pub mod trace;
pub mod transaction;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{ProducerConfig, ProducerConfigBuilder};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::{Message, MessageQueue, SendResult};
use crate::routing::selector::QueueSelector;
use hooks::SendMode;

// The producer's parts, by the names its other modules (batch, health, stats, transaction)
// use for them.
pub(crate) use async_send::hand_over_retired;
use async_send::{finish_done, Budget, Done, Hold, SharedHold};
use flush::TrackedCompleter;
pub use handle::SendHandle;
pub(crate) use inner::{Inner, ServerRequestHook};
use inner::{RUNNING, STOPPING};
pub use request::{RequestHandle, RequestStats};
use submit::{Prep, Target};
use sync_send::SyncTarget;

/// How long dropping the last clone of a producer waits for in-flight sends.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// A RocketMQ producer. Cheap to clone; every clone sends through the same connections.
///
/// Dropping the last clone shuts it down (waiting up to [`DROP_SHUTDOWN_TIMEOUT`] for
/// in-flight sends); call [`Producer::shutdown`] to choose the deadline.
#[derive(Clone)]
pub struct Producer {
    owner: Arc<Owner>,
}

/// Shuts the producer down when the last user handle goes; background tasks hold only
/// `Arc<Inner>`.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Err(e) = self.inner.shutdown(DROP_SHUTDOWN_TIMEOUT) {
            log::warn!("producer shutdown on drop: {e}");
        }
    }
}

impl Producer {
    /// Starts configuring a producer of `group`. Finish with
    /// [`ProducerConfigBuilder::start`].
    pub fn builder(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
    }

    /// Starts a producer with `config`: spawns its threads. Routes are fetched on first use,
    /// except those of [`ProducerConfig::topics`], which are fetched now (their brokers get a
    /// heartbeat at once); that takes up to the client API timeout per topic when the name
    /// servers do not answer, and a topic that fails is only logged.
    ///
    /// # Errors
    /// [`Error::Config`] if threads cannot be started.
    pub fn start(config: ProducerConfig) -> Result<Producer> {
        let producer = Producer::start_unresolved(config)?;
        producer.inner().resolve_configured_topics();
        Ok(producer)
    }

    /// Starts a producer without resolving its configured topics (the transaction producer
    /// installs its check-back handler first, then resolves them).
    pub(crate) fn start_unresolved(config: ProducerConfig) -> Result<Producer> {
        let inner = Inner::start(config)?;
        Ok(Producer {
            owner: Arc::new(Owner { inner }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.owner.inner
    }

    /// The settings this producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner().config
    }

    /// The client id this producer registers with brokers (`ip@instance[@unit]`).
    pub fn client_id(&self) -> &str {
        &self.inner().client_id
    }

    /// Sends `msg` and blocks until the broker answers, retrying on another broker on
    /// connection errors, timeouts and the retry codes, all within the send timeout.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] before anything is sent; [`Error::Broker`], [`Error::Timeout`],
    /// [`Error::Io`]/[`Error::ConnectionClosed`] from the last attempt; [`Error::NoRoute`];
    /// [`Error::Shutdown`].
    pub fn send(&self, mut msg: Message) -> Result<SendResult> {
        let inner = self.inner();
        let _ticket = inner.flush.ticket();
        // One clock read starts the send's statistics and its time budget; the thread's
        // sync memory serves both from the start.
        let started = Instant::now();
        let mut slot = inner.sync_memos.take();
        let mut op = inner.begin_sync(&msg, started, &mut slot);
        if let Err(e) = self.hook_before_one(&mut msg, SendMode::Sync) {
            return op.end(Err(e));
        }
        // Without auto-batching, the message is not moved into the accumulator's check and
        // back.
        if inner.batcher.is_some() {
            match inner.send_batched(msg, Target::Auto) {
                Ok(handle) => return op.end(handle.wait()),
                Err(back) => msg = back,
            }
        }
        inner.send_sync_counted(msg, SyncTarget::Auto, started, &mut op, &mut slot)
    }

    /// Sends `msg` to `queue`, with no retry to another queue.
    pub fn send_to_queue(&self, mut msg: Message, queue: &MessageQueue) -> Result<SendResult> {
        let inner = self.inner();
        let _ticket = inner.flush.ticket();
        let started = Instant::now();
        let mut slot = inner.sync_memos.take();
        let mut op = inner.begin_sync(&msg, started, &mut slot);
        if let Err(e) = self.hook_before_one(&mut msg, SendMode::Sync) {
            return op.end(Err(e));
        }
        match inner.send_batched(msg, Target::Queue(queue.clone())) {
            Ok(handle) => op.end(handle.wait()),
            Err(msg) => {
                let target = SyncTarget::Queue(queue.clone());
                inner.send_sync_counted(msg, target, started, &mut op, &mut slot)
            }
        }
    }

    /// Sends `msg` to the queue `selector` picks for `arg` (for ordered messages: the same
    /// `arg` always picks the same queue while the route does not change). No retry to another
    /// queue. The selector runs on the calling thread.
    pub fn send_with_selector(
        &self,
        mut msg: Message,
        selector: &dyn QueueSelector,
        arg: &str,
    ) -> Result<SendResult> {
        let inner = self.inner();
        let _ticket = inner.flush.ticket();
        let started = Instant::now();
        let mut slot = inner.sync_memos.take();
        let mut op = inner.begin_sync(&msg, started, &mut slot);
        if let Err(e) = self.hook_before_one(&mut msg, SendMode::Sync) {
            return op.end(Err(e));
        }
        let target = SyncTarget::Selector(selector, arg);
        inner.send_sync_counted(msg, target, started, &mut op, &mut slot)
    }

    /// Sends several messages of one topic as one batch (never compressed). The result's
    /// `msg_id` and `offset_msg_id` list every message, comma-separated.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let _ticket = self.inner().flush.ticket();
        let op = self.inner().stats.begin_batch(&msgs);
        op.end(self.send_batch_inner(msgs))
    }

    fn send_batch_inner(&self, mut msgs: Vec<Message>) -> Result<SendResult> {
        let inner = self.inner();
        inner.check_running()?;
        if !msgs.is_empty() {
            inner.hook_before(&mut msgs, SendMode::Sync, true)?;
        }
        let prepared = inner.prepare_msgs(msgs, SendMode::Sync)?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let _permit = inner.sync_in_flight.acquire_unbounded(prepared.size);
        inner.send_prepared_sync(&prepared, None, deadline)
    }

    /// Sends `msg` asynchronously; the returned handle can be waited on (`.wait()`) or awaited.
    ///
    /// Never blocks on network I/O. With backpressure on (the default), it blocks while the
    /// producer is full, up to the send timeout, and then resolves the handle with
    /// [`Error::Backpressure`]. Called from a callback it never waits: see
    /// [what callbacks may do](crate#what-callbacks-may-do). Waiting on the handle from a
    /// callback is fine: it never needs a callback thread to complete.
    pub fn send_async(&self, msg: Message) -> SendHandle {
        let (completer, handle) = self.tracked_pair();
        self.inner()
            .send_async(Prep::Single(msg), Target::Auto, Done::Handle(completer));
        SendHandle::new(handle)
    }

    /// Sends `msg` asynchronously; `callback` runs once with the result, on a callback thread
    /// (`rocketmq-callback-N`; during a shutdown possibly on the thread calling shutdown; never
    /// on an I/O thread). Backpressure applies as for [`Producer::send_async`]; an error found
    /// before sending (an invalid message, [`Error::Backpressure`], [`Error::Shutdown`]) goes
    /// to the callback too.
    ///
    /// The send counts as in flight until the callback has returned. The callback may block
    /// on other sends (sync, handles, transactions), send more and shut the producer down;
    /// it should not block for long on anything else. See
    /// [what callbacks may do](crate#what-callbacks-may-do).
    pub fn send_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let ticket = self.inner().flush.ticket();
        self.inner().send_async(
            Prep::Single(msg),
            Target::Auto,
            Done::Callback(async_send::UserCallback::new(
                move |result| {
                    callback(result);
                    drop(ticket);
                },
                &self.inner().callback_slots,
            )),
        );
    }

    /// Asynchronous [`Producer::send_to_queue`].
    pub fn send_to_queue_async(&self, msg: Message, queue: &MessageQueue) -> SendHandle {
        let (completer, handle) = self.tracked_pair();
        self.inner().send_async(
            Prep::Single(msg),
            Target::Queue(queue.clone()),
            Done::Handle(completer),
        );
        SendHandle::new(handle)
    }

    /// Asynchronous [`Producer::send_with_selector`]. The selector runs on this thread when the
    /// route is cached, otherwise on an internal `rocketmq-async-N` thread once it is fetched:
    /// it must be quick and must not block or send.
    pub fn send_with_selector_async(
        &self,
        msg: Message,
        selector: Arc<dyn QueueSelector>,
        arg: impl Into<String>,
    ) -> SendHandle {
        let (completer, handle) = self.tracked_pair();
        self.inner().send_async(
            Prep::Single(msg),
            Target::Selector(selector, arg.into()),
            Done::Handle(completer),
        );
        SendHandle::new(handle)
    }

    /// Asynchronous [`Producer::send_batch`].
    pub fn send_batch_async(&self, msgs: Vec<Message>) -> SendHandle {
        let (completer, handle) = self.tracked_pair();
        self.inner()
            .send_async(Prep::Batch(msgs), Target::Auto, Done::Handle(completer));
        SendHandle::new(handle)
    }

    /// Sends `msg` without waiting for any answer. `Ok` once it is queued for the socket; no
    /// retry. The route lookup (first send to a topic) may block up to the send timeout.
    pub fn send_oneway(&self, mut msg: Message) -> Result<()> {
        let _ticket = self.inner().flush.ticket();
        let op = self.inner().stats.begin(&msg, true);
        if let Err(e) = self.hook_before_one(&mut msg, SendMode::Oneway) {
            return op.end_oneway(Err(e));
        }
        op.end_oneway(self.inner().send_oneway(msg))
    }

    /// Waits until every send accepted before this call has ended (stored, failed or timed
    /// out), without stopping the producer: asynchronous sends whose handle is completed or
    /// whose callback has returned, and synchronous and oneway sends running on other threads.
    /// Open auto-batches are sent at once rather than at their delay. Sends that start while
    /// it waits are not waited for.
    ///
    /// Returns how many of those sends are still in flight at the deadline (`timeout` from
    /// now): 0 when all have ended. Every send ends by its own send timeout anyway, so a
    /// `timeout` a little over [`ProducerConfig::send_timeout`] returns 0 unless a callback
    /// is slow.
    ///
    /// A send callback that calls `flush` waits for itself: it returns at its deadline with at
    /// least 1.
    pub fn flush(&self, timeout: Duration) -> usize {
        let inner = self.inner();
        let deadline = Instant::now() + timeout;
        let target = inner.flush.close_generation();
        if let Some(acc) = &inner.batcher {
            acc.send_open(inner);
        }
        inner.flush.wait(target, deadline)
    }

    /// Strict order: makes the current route of `topic` the layout keys are mapped over, so
    /// that sends use the queues the topic has now. Until then, keys keep the queues of the
    /// layout they were first sent with, and keys whose queue is gone fail with
    /// [`Error::OrderViolation`] (see [`ProducerConfig::strict_order`]).
    ///
    /// Call it when moving keys to other queues is acceptable, typically once the consumers
    /// have drained the queues that went away. Keys may land on other queues from then on, so
    /// a key's messages sent before and after may be consumed out of order. Returns the queue
    /// count of the layout replaced (`None` if there was none). Harmless with strict order off.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a bad topic name; [`Error::NoRoute`] if the route cannot
    /// be fetched within the send timeout.
    pub fn accept_route(&self, topic: &str) -> Result<Option<usize>> {
        let inner = self.inner();
        prepare::check_topic(topic)?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let wire = prepare::wire_topic(topic, &inner.config);
        let _ = inner.refresh_route(&wire, deadline);
        let info = inner.publish_info(&wire, deadline)?;
        Ok(inner.accept_layout(&info))
    }

    /// `before_send` for one message of a call on this thread (nothing without hooks).
    #[inline]
    fn hook_before_one(&self, msg: &mut Message, mode: SendMode) -> Result<()> {
        self.inner()
            .hook_before(std::slice::from_mut(msg), mode, false)
    }

    /// A handle pair whose completion also ends a flush ticket taken now.
    fn tracked_pair(&self) -> (TrackedCompleter, crate::remoting::Handle<SendResult>) {
        let ticket = self.inner().flush.ticket();
        let (completer, handle) = crate::remoting::completion::pooled_pair();
        (TrackedCompleter::new(completer, ticket), handle)
    }

    /// Sends several messages of one topic as one batch without waiting for any answer (the
    /// batch rules of [`Producer::send_batch`], the delivery of [`Producer::send_oneway`]): `Ok`
    /// once the batch is queued for the socket; no retry, no result, no per-message ids back.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a batch [`Producer::send_batch`] refuses, before anything
    /// is sent; [`Error::NoRoute`]; [`Error::Shutdown`].
    pub fn send_batch_oneway(&self, mut msgs: Vec<Message>) -> Result<()> {
        let _ticket = self.inner().flush.ticket();
        let op = self.inner().stats.begin_batch_oneway(&msgs);
        if !msgs.is_empty() {
            if let Err(e) = self.inner().hook_before(&mut msgs, SendMode::Oneway, true) {
                return op.end_oneway(Err(e));
            }
        }
        op.end_oneway(self.inner().send_batch_oneway(msgs))
    }

    /// The queues sends to `topic` can go to (fetching the route if needed), for selectors.
    pub fn publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let inner = self.inner();
        prepare::check_topic(topic)?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let info = inner.publish_info(&prepare::wire_topic(topic, &inner.config), deadline)?;
        Ok(info
            .queues()
            .iter()
            .map(|q| MessageQueue::new(topic, q.broker_name(), q.queue_id()))
            .collect())
    }

    /// Stops taking sends, waits up to `timeout` for in-flight ones, fails the rest with
    /// [`Error::Shutdown`], unregisters from every broker and joins every thread. Idempotent.
    ///
    /// `timeout` is one deadline for all of it, whatever the brokers and name servers do: the
    /// unregisters go to every broker at once and are waited for until the deadline (at least
    /// 200 ms, so that a producer whose sends used the whole deadline still says goodbye), and
    /// a route lookup or heartbeat under way is cut short when the connections close. It
    /// returns within `timeout` plus about 200 ms, except that a user callback running on the
    /// callback pool is waited for.
    ///
    /// With [message trace](crate::trace) on, the trace records of the sends that ended are
    /// sent and waited for within the same deadline (records still unsent then count as
    /// failed); the internal trace producer's unregister may add up to another 200 ms when its
    /// broker does not answer.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.inner().shutdown(timeout)
    }

    /// Moves the clock that fault tolerance and routing see forward by `by`, so tests can end
    /// a broker's isolation without sleeping. Not for production use.
    #[doc(hidden)]
    pub fn advance_routing_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner()
            .routing_clock_skew_ms
            .fetch_add(ms, Ordering::Relaxed);
    }

    /// Asynchronous sends in flight now: (count, bytes), counting sends whose callback has not
    /// returned yet. Backpressure bounds both (sends from callbacks may go past the bounds by
    /// the callback allowance, see [what callbacks may do](crate#what-callbacks-may-do)).
    pub fn in_flight(&self) -> (usize, usize) {
        self.inner().in_flight.current()
    }

    /// A snapshot of this producer's statistics: sends, failures by kind, retries, bytes,
    /// latency percentiles and rates, per producer, topic and broker. See [`stats`] for the
    /// definitions and the JSON schema. All zero when [`ProducerConfig::stats`] is off.
    pub fn stats(&self) -> stats::ProducerStats {
        self.inner().stats_snapshot()
    }

    /// A health report: the producer's state, name server reachability, the route cache, and
    /// per broker isolation, failures, last error, latency, in-flight attempts and connection
    /// state. See [`health`] for the JSON schema.
    pub fn health(&self) -> health::HealthReport {
        self.inner().health_report()
    }

    /// Whether [`Producer::shutdown`] has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner().state.load(Ordering::Acquire) != RUNNING
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("group", &self.inner().config.group())
            .field("client_id", &self.inner().client_id)
            .finish_non_exhaustive()
    }
}

impl ProducerConfigBuilder {
    /// Validates the settings and starts a [`Producer`] with them.
    pub fn start(self) -> Result<Producer> {
        Producer::start(self.build()?)
    }
}
