//! What every send attempt decides with, synchronous or not: the queue it goes to, its
//! timeout, whether its outcome is retried, and the fault record it leaves.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inner::Inner;
use super::prepare::Prepared;
use crate::error::{Error, Result};
use crate::message::{Message, MessageQueue, SendResult, SendStatus};
use crate::routing::fault::{FaultHandles, FaultMemo};
use crate::routing::mapping::TopicPublishInfo;
use crate::routing::selector::QueueSelector;

/// The errors of a send's attempts, for the error that ends it when its time budget runs out.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// The last attempt's error.
    last: Option<Error>,
    /// When the last attempt timed out: the last error before it that was not a timeout.
    before: Option<Error>,
}

impl Failures {
    /// Records an attempt's error.
    pub(super) fn push(&mut self, e: Error) {
        if e.is_timeout() {
            if let Some(previous) = self.last.take().filter(|p| !p.is_timeout()) {
                self.before = Some(previous);
            }
        } else {
            self.before = None;
        }
        self.last = Some(e);
    }

    /// The timeout of a send that ran out of its budget after `took`: it names the broker of
    /// the last attempt and carries its error (or, when that attempt timed out, the last
    /// error before it that was not a timeout).
    pub(super) fn into_timeout(self, took: Duration) -> Error {
        match self.last {
            None => Error::Timeout {
                addr: String::new(),
                after: took,
                last: None,
            },
            Some(Error::Timeout { addr, last, .. }) => Error::Timeout {
                addr,
                after: took,
                last: self.before.map(Box::new).or(last),
            },
            Some(e) => Error::Timeout {
                addr: e.broker_addr().unwrap_or_default().to_string(),
                after: took,
                last: Some(Box::new(e)),
            },
        }
    }
}

impl Inner {
    pub(super) fn attempt_timeout(&self, deadline: Instant, now: Instant) -> Duration {
        self.attempt_timeout_left(deadline.saturating_duration_since(now))
    }

    /// [`Inner::attempt_timeout`] of an attempt with `left` until the send's deadline.
    pub(super) fn attempt_timeout_left(&self, left: Duration) -> Duration {
        match self.config.per_attempt_timeout() {
            Some(cap) => left.min(cap),
            None => left,
        }
    }

    /// The error that ends a send whose attempts all failed: the last attempt's error while
    /// time is left (the attempts ran out first), else a timeout that carries it (the time
    /// budget ran out; see [`Failures::into_timeout`]).
    pub(super) fn attempts_failed(&self, deadline: Instant, failures: Failures) -> Error {
        let now = Instant::now();
        match failures.last {
            Some(e) if now < deadline => e,
            _ => {
                // The send began one send timeout before its deadline.
                let took = self.config.send_timeout() + now.saturating_duration_since(deadline);
                failures.into_timeout(took)
            }
        }
    }

    /// Records an attempt's outcome in the fault table (and statistics); `ended` is when the
    /// attempt's result came back (`Instant::now()` then, read once by the caller).
    pub(super) fn record_attempt(
        &self,
        broker_name: &str,
        latency: Duration,
        ended: Instant,
        result: &Result<SendResult>,
    ) {
        let now = self.routing_at(ended);
        let (isolation, reachable) = fault_of(result);
        self.router
            .update_fault(broker_name, latency, isolation, reachable, now);
        if let Err(e) = result {
            self.router.record_error(broker_name, e.to_string());
        }
    }

    /// [`Inner::record_attempt`] through `memo`, the fault-table entry of the broker last
    /// reported on (see [`crate::routing::fault::FaultMemo`]).
    // Inlined into the attempts' ends: the report is a few loads and stores under the
    // entry's lock, less than the calls around it.
    #[inline(always)]
    pub(super) fn record_attempt_memo(
        &self,
        broker_name: &Arc<str>,
        memo: &mut FaultMemo,
        latency: Duration,
        ended: Instant,
        result: &Result<SendResult>,
    ) {
        let now = self.routing_at(ended);
        let (isolation, reachable) = fault_of(result);
        self.router
            .fault()
            .update_memo(broker_name, memo, latency, isolation, reachable, now);
        if let Err(e) = result {
            self.router.record_error(broker_name, e.to_string());
        }
    }

    pub(super) fn should_retry(&self, result: &Result<SendResult>) -> bool {
        match result {
            Ok(r) => {
                r.status != SendStatus::SendOk
                    && self.config.retry_another_broker_when_not_store_ok()
            }
            Err(e) => e.is_retriable_with(self.config.retry_codes()),
        }
    }

    /// Picks the queue for an automatic attempt made at `now` (under strict order, a keyed
    /// message-hash send's queue is fixed: see `order`).
    pub(super) fn select_auto(
        &self,
        info: &Arc<TopicPublishInfo>,
        prepared: &Prepared,
        last_broker: Option<&str>,
        now: Instant,
    ) -> Result<MessageQueue> {
        self.select_auto_with(info, prepared, last_broker, now, None)
    }

    /// [`Inner::select_auto`], reading the fault table through a sender's remembered entries
    /// when it has them (see [`crate::routing::fault::FaultHandles`]): the same choice.
    #[inline]
    pub(super) fn select_auto_with(
        &self,
        info: &Arc<TopicPublishInfo>,
        prepared: &Prepared,
        last_broker: Option<&str>,
        now: Instant,
        handles: Option<&mut FaultHandles>,
    ) -> Result<MessageQueue> {
        let strict_key = self.strict_hash_key(prepared);
        self.select_auto_inline(info, prepared, strict_key, last_broker, now, handles)
    }

    /// [`Inner::select_auto_with`] built into its caller (a synchronous send's attempt loop:
    /// no call, and the queue is not moved through a returned `Result`), with the caller's
    /// [`Inner::strict_hash_key`] of `prepared` (found once per send, not per attempt).
    #[inline(always)]
    pub(super) fn select_auto_inline(
        &self,
        info: &Arc<TopicPublishInfo>,
        prepared: &Prepared,
        strict_key: Option<&str>,
        last_broker: Option<&str>,
        now: Instant,
        handles: Option<&mut FaultHandles>,
    ) -> Result<MessageQueue> {
        if let Some(key) = strict_key {
            return self.strict_hash_pick(info, key);
        }
        let hash_key = prepared.first_key.as_deref();
        let now = self.routing_at(now);
        match handles {
            Some(handles) => {
                self.router
                    .select_queue_with(info, hash_key, last_broker, now, handles)
            }
            None => self.router.select_queue(info, hash_key, last_broker, now),
        }
        .ok_or_else(|| Error::NoRoute {
            topic: prepared.topic.clone(),
            reason: "the route has no queue".into(),
            source: None,
        })
    }

    pub(super) fn run_selector(
        &self,
        selector: &dyn QueueSelector,
        info: &Arc<TopicPublishInfo>,
        msg: &Message,
        arg: &str,
    ) -> Result<MessageQueue> {
        let select = |queues: &[MessageQueue]| {
            catch_unwind(AssertUnwindSafe(|| selector.select(queues, msg, arg)))
                .map_err(|_| Error::User("the queue selector panicked".into()))
        };
        if self.config.strict_order() {
            return self.strict_pick(info, select);
        }
        let queues = info.queues();
        if queues.is_empty() {
            return Err(Error::NoRoute {
                topic: msg.topic().to_string(),
                reason: "the route has no queue".into(),
                source: None,
            });
        }
        let picked = select(queues)?;
        Ok(queues[picked % queues.len()].clone())
    }
}

/// How an attempt's result counts in the fault table: (isolates the broker, reached it).
fn fault_of(result: &Result<SendResult>) -> (bool, bool) {
    match result {
        Ok(_) => (false, true),
        Err(e) => (
            true,
            !matches!(e, Error::Broker { .. } | Error::NoPermission { .. }),
        ),
    }
}
