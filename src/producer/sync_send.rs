//! Sends that run on the caller's thread: the synchronous attempt loop with its retries
//! (one time budget for every attempt and route lookup), and oneway sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attempt::Failures;
use super::hooks::SendMode;
use super::inner::{now_ms, Inner};
use super::prepare::{self, Prepared};
use super::route::AddrMemo;
use crate::client::broker;
use crate::error::{Error, Result};
use crate::message::{Message, MessageQueue, SendResult, SendStatus};
use crate::protocol::RemotingCommand;
use crate::routing::selector::QueueSelector;

/// The most broker address memories kept for synchronous sends (one per concurrent caller).
pub(super) const SYNC_MEMOS: usize = 64;

/// What a synchronous send goes to (the selector borrowed from the caller).
pub(super) enum SyncTarget<'a> {
    Auto,
    Queue(MessageQueue),
    Selector(&'a dyn QueueSelector, &'a str),
}

impl Inner {
    pub(super) fn send_sync(&self, msg: Message, target: SyncTarget<'_>) -> Result<SendResult> {
        let deadline = Instant::now() + self.config.send_timeout();
        self.send_sync_until(msg, target, deadline)
    }

    /// [`Inner::send_sync`] within `deadline` (a request's, for request-reply).
    pub(super) fn send_sync_until(
        &self,
        msg: Message,
        target: SyncTarget<'_>,
        deadline: Instant,
    ) -> Result<SendResult> {
        self.check_running()?;
        // Preparing checks the message; a selector must not see a bad one first.
        let queue = match target {
            SyncTarget::Auto => None,
            SyncTarget::Queue(q) => Some(q),
            SyncTarget::Selector(selector, arg) => {
                prepare::check_message(&msg, &self.config)?;
                let info =
                    self.publish_info(&prepare::wire_topic(msg.topic(), &self.config), deadline)?;
                Some(self.run_selector(selector, &info, &msg, arg)?)
            }
        };
        // Prepared where it stays (not moved out of the preparing functions).
        let mut prepared = Prepared::vacant();
        self.prepare_msg_into(msg, false, SendMode::Sync, &mut prepared)?;
        let _permit = self.sync_in_flight.acquire_unbounded(prepared.size);
        self.send_prepared_sync(&prepared, queue, deadline)
    }

    /// The synchronous attempt loop: all attempts and route lookups share `deadline`.
    pub(crate) fn send_prepared_sync(
        &self,
        prepared: &Prepared,
        fixed_queue: Option<MessageQueue>,
        deadline: Instant,
    ) -> Result<SendResult> {
        // Strict order: a keyed message-hash send is never retried on another queue.
        let strict = self.strict_hash_key(prepared).is_some();
        let attempts = if fixed_queue.is_some() || strict {
            1
        } else {
            1 + self.config.retries()
        };
        let mut memo = self.sync_memos.lock().pop().unwrap_or_default();
        let result =
            self.send_attempts_sync(prepared, fixed_queue, deadline, strict, attempts, &mut memo);
        let mut memos = self.sync_memos.lock();
        if memos.len() < SYNC_MEMOS {
            memos.push(memo);
        }
        result
    }

    /// The attempts of [`Inner::send_prepared_sync`], with the broker address memory `memo`.
    fn send_attempts_sync(
        &self,
        prepared: &Prepared,
        fixed_queue: Option<MessageQueue>,
        deadline: Instant,
        strict: bool,
        attempts: u32,
        memo: &mut AddrMemo,
    ) -> Result<SendResult> {
        let mut last_broker: Option<Arc<str>> = None;
        let mut failures = Failures::default();
        let mut attempt_no = 0;
        for _ in 0..attempts {
            let mut now = Instant::now();
            if now >= deadline {
                break;
            }
            let queue = match &fixed_queue {
                Some(q) => q.clone(),
                None => {
                    let info = match self.cached_publish_info(prepared.wire_topic(), now) {
                        Some(info) => info,
                        None => {
                            let info = self.publish_info(prepared.wire_topic(), deadline)?;
                            now = Instant::now(); // after a lookup
                            info
                        }
                    };
                    self.select_auto(&info, prepared, last_broker.as_deref(), now)?
                }
            };
            let addr = match self.broker_addr_memo(queue.broker_name_arc(), memo) {
                Some(addr) => Some(addr),
                None => self.broker_addr_or_refresh(prepared.wire_topic(), &queue, deadline),
            };
            let Some(addr) = addr else {
                failures.push(Error::NoRoute {
                    topic: prepared.topic.clone(),
                    reason: format!("no master address for broker {}", queue.broker_name()),
                    source: None,
                });
                last_broker = Some(queue.broker_name_arc().clone());
                continue;
            };
            let attempt = self.stats.attempt_memo(
                prepared,
                queue.broker_name_arc(),
                last_broker.is_some(),
                &mut memo.stats,
            );
            let started = Instant::now();
            let timeout = self.attempt_timeout(deadline, started);
            let born = now_ms();
            let result = self
                .remoting
                .encode_request_memo(&addr, &mut memo.target, false, |spec, out| {
                    broker::encode_send_frame(prepared, &queue, &self.defaults, born, spec, out)
                })
                .and_then(|request| self.remoting.send_encoded_sync(request, timeout))
                .and_then(|response| broker::send_result(response, prepared, &queue, &addr));
            // One clock read for the attempt's end: its latency in the statistics, the fault
            // table and the hooks.
            let ended = Instant::now();
            let latency = ended.saturating_duration_since(started);
            attempt.end(started, ended, &result);
            self.record_attempt(queue.broker_name(), latency, ended, &result);
            attempt_no += 1;
            self.hook_after(
                prepared,
                &queue,
                &addr,
                attempt_no,
                latency,
                result.as_ref().map(Some),
            );
            if fixed_queue.is_none() && !strict && self.should_retry(&result) {
                log::debug!(
                    "send of {} to {addr} will be retried: {result:?}",
                    prepared.msg_id
                );
                last_broker = Some(queue.broker_name_arc().clone());
                match result {
                    Ok(r) => {
                        return self.retry_not_ok(prepared, r, deadline, &last_broker, attempt_no)
                    }
                    Err(e) => failures.push(e),
                }
                continue;
            }
            return result;
        }
        Err(self.attempts_failed(deadline, failures))
    }

    /// `retryAnotherBrokerWhenNotStoreOK`: the message is stored but not flushed/replicated;
    /// try once more elsewhere and fall back to the first result.
    pub(super) fn retry_not_ok(
        &self,
        prepared: &Prepared,
        first: SendResult,
        deadline: Instant,
        last_broker: &Option<Arc<str>>,
        attempts_before: u32,
    ) -> Result<SendResult> {
        let Ok(info) = self.publish_info(prepared.wire_topic(), deadline) else {
            return Ok(first);
        };
        let now = Instant::now();
        let Ok(queue) = self.select_auto(&info, prepared, last_broker.as_deref(), now) else {
            return Ok(first);
        };
        let Some(addr) = self.broker_addr(queue.broker_name()) else {
            return Ok(first);
        };
        let attempt = self.stats.attempt(prepared, queue.broker_name(), true);
        let started = now;
        let result = self
            .send_frame_sync(
                prepared,
                &queue,
                &addr,
                self.attempt_timeout(deadline, started),
            )
            .and_then(|response| broker::send_result(response, prepared, &queue, &addr));
        let ended = Instant::now();
        let latency = ended.saturating_duration_since(started);
        attempt.end(started, ended, &result);
        self.record_attempt(queue.broker_name(), latency, ended, &result);
        let attempt_no = attempts_before + 1;
        self.hook_after(
            prepared,
            &queue,
            &addr,
            attempt_no,
            latency,
            result.as_ref().map(Some),
        );
        match result {
            Ok(r) if r.status == SendStatus::SendOk => Ok(r),
            _ => Ok(first),
        }
    }

    pub(super) fn send_oneway(&self, msg: Message) -> Result<()> {
        self.check_running()?;
        let prepared = self.prepare_msg(msg, false, SendMode::Oneway)?;
        self.send_prepared_oneway(&prepared)
    }

    pub(super) fn send_batch_oneway(&self, msgs: Vec<Message>) -> Result<()> {
        self.check_running()?;
        let prepared = self.prepare_msgs(msgs, SendMode::Oneway)?;
        self.send_prepared_oneway(&prepared)
    }

    /// One oneway attempt: route, queue, frame queued for the socket; no retry.
    fn send_prepared_oneway(&self, prepared: &Prepared) -> Result<()> {
        let deadline = Instant::now() + self.config.send_timeout();
        let info = self.publish_info(prepared.wire_topic(), deadline)?;
        let queue = self.select_auto(&info, prepared, None, Instant::now())?;
        let addr = self
            .broker_addr_or_refresh(prepared.wire_topic(), &queue, deadline)
            .ok_or_else(|| Error::NoRoute {
                topic: prepared.topic.clone(),
                reason: format!("no master address for broker {}", queue.broker_name()),
                source: None,
            })?;
        let started = Instant::now();
        let born = now_ms();
        let sent = self
            .remoting
            .encode_request(&addr, true, |spec, out| {
                broker::encode_send_frame(prepared, &queue, &self.defaults, born, spec, out)
            })
            .and_then(|request| self.remoting.send_encoded_oneway(request));
        let latency = started.elapsed();
        self.hook_after(
            prepared,
            &queue,
            &addr,
            1,
            latency,
            sent.as_ref().map(|()| None),
        );
        sent
    }

    /// One synchronous attempt: the frame encoded straight from `prepared`.
    pub(super) fn send_frame_sync(
        &self,
        prepared: &Prepared,
        queue: &MessageQueue,
        addr: &str,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let born = now_ms();
        let request = self.remoting.encode_request(addr, false, |spec, out| {
            broker::encode_send_frame(prepared, queue, &self.defaults, born, spec, out)
        })?;
        self.remoting.send_encoded_sync(request, timeout)
    }
}
