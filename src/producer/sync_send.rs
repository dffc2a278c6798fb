//! Sends that run on the caller's thread: the synchronous attempt loop with its retries
//! (one time budget for every attempt and route lookup), and oneway sends.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::attempt::Failures;
use super::hooks::SendMode;
use super::inner::{now_ms, Inner};
use super::prepare::{self, Prepared};
use super::route::AddrMemo;
use super::stats::{self, Ended, Op};
use crate::client::broker;
use crate::error::{Error, Result};
use crate::message::{Message, MessageQueue, SendResult, SendStatus};
use crate::protocol::RemotingCommand;
use crate::remoting::completion::Reusable;
use crate::routing::fault::{FaultHandles, FaultMemo};
use crate::routing::mapping::TopicMemo;
use crate::routing::selector::QueueSelector;

/// How many memories a producer keeps for synchronous sends ([`SyncMemos`]).
pub(super) const SYNC_MEMOS: usize = 64;

/// What a synchronous sender keeps from one send to the next: the same memories an
/// asynchronous send box keeps (its broker address and target, its topic's publish info, the
/// fault-table entries its queue scans read and the one its attempts report to), and the
/// completion its responses come in.
#[derive(Default)]
pub(super) struct SyncMemo {
    memo: AddrMemo,
    route: TopicMemo,
    fault: FaultMemo,
    fault_handles: FaultHandles,
    /// The statistics recorder of the last topic: a send to the same topic skips its look-up
    /// and its topic check (only a checked topic gets a recorder).
    stats: stats::TopicMemo,
    completion: Reusable<RemotingCommand>,
}

/// A synchronous send's memory: this thread's slot of [`SyncMemos`], or a fresh memory when
/// the slot is in use (never waited for; rare, so boxed: the usual slot stays two words).
pub(super) enum SyncSlot<'a> {
    Kept(MutexGuard<'a, SyncMemo>),
    Fresh(Box<SyncMemo>),
}

impl std::ops::Deref for SyncSlot<'_> {
    type Target = SyncMemo;
    fn deref(&self) -> &SyncMemo {
        match self {
            SyncSlot::Kept(memo) => memo,
            SyncSlot::Fresh(memo) => memo,
        }
    }
}

impl std::ops::DerefMut for SyncSlot<'_> {
    fn deref_mut(&mut self) -> &mut SyncMemo {
        match self {
            SyncSlot::Kept(memo) => memo,
            SyncSlot::Fresh(memo) => memo,
        }
    }
}

/// A producer's memories of synchronous sends: [`SYNC_MEMOS`] slots, each calling thread
/// using its own (by a number given to the thread once, modulo the slots). A send holds its
/// slot's lock for the whole send (one lock per send, no taking out and putting back); a
/// slot in use (two threads of the same number, or a send made from a hook of a send) is
/// not waited for: that send starts with a fresh memory.
pub(super) struct SyncMemos(Box<[Mutex<SyncMemo>]>);

impl SyncMemos {
    pub(super) fn new() -> Self {
        SyncMemos((0..SYNC_MEMOS).map(|_| Mutex::default()).collect())
    }

    /// This thread's slot, if no other send is using it.
    fn slot(&self) -> Option<MutexGuard<'_, SyncMemo>> {
        self.0.get(thread_number() % self.0.len())?.try_lock()
    }

    /// This thread's slot, or a fresh memory when another send is using it.
    pub(super) fn take(&self) -> SyncSlot<'_> {
        match self.slot() {
            Some(memo) => SyncSlot::Kept(memo),
            None => SyncSlot::Fresh(Box::default()),
        }
    }
}

/// The number of this thread for [`SyncMemos`] (given on first use).
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    NUMBER
        .try_with(|n| {
            let mut v = n.get();
            if v == usize::MAX {
                v = NEXT.fetch_add(1, Ordering::Relaxed) % SYNC_MEMOS;
                n.set(v);
            }
            v
        })
        .unwrap_or(0)
}

/// A synchronous send's time budget, with the clock read that the send's first attempt
/// starts with (no read of its own).
#[derive(Clone, Copy)]
struct Budget {
    /// The end of the send's time budget.
    deadline: Instant,
    /// A clock read taken just before (when preparing the send began).
    now: Instant,
    /// `deadline` is this long after `now`: an attempt that starts at `now` gets all of it
    /// with no subtraction. `None` when the budget started earlier.
    whole: Option<Duration>,
}

impl Budget {
    /// A budget that ends at `deadline`, with the clock read now.
    fn until(deadline: Instant) -> Self {
        Budget {
            deadline,
            now: Instant::now(),
            whole: None,
        }
    }

    /// The budget with a later clock read `now`.
    fn at(self, now: Instant) -> Self {
        Budget {
            now,
            whole: None,
            ..self
        }
    }

    /// What is left of the budget at `now`.
    fn left(&self, now: Instant) -> Duration {
        match self.whole {
            Some(whole) if now == self.now => whole,
            _ => self.deadline.saturating_duration_since(now),
        }
    }
}

/// How a synchronous send's attempts run (see [`Inner::send_prepared_sync`]).
struct Plan {
    /// The queue of a send to one queue (no retry elsewhere).
    fixed_queue: Option<MessageQueue>,
    budget: Budget,
    /// A keyed message-hash send: never retried on another queue.
    strict: bool,
    /// The most attempts.
    attempts: u32,
    /// The wall clock (epoch ms) read for the message's `UNIQ_KEY` just before the budget's
    /// clock read: the first attempt's born timestamp when nothing blocked before it (one
    /// wall-clock read per send); `None`: the first attempt reads the wall clock.
    born_ms: Option<i64>,
}

/// Records `e` as the end of `op` and hands it back.
fn failed(op: &mut Op, e: Error) -> Result<SendResult> {
    op.fail(&e);
    Err(e)
}

/// What a synchronous send goes to (the selector borrowed from the caller).
pub(super) enum SyncTarget<'a> {
    Auto,
    Queue(MessageQueue),
    Selector(&'a dyn QueueSelector, &'a str),
}

impl Inner {
    /// Starts counting a synchronous send of `msg` begun at `started`, with the statistics
    /// recorder remembered in `slot`.
    pub(super) fn begin_sync(&self, msg: &Message, started: Instant, slot: &mut SyncMemo) -> Op {
        self.stats.begin_memo(msg, started, &mut slot.stats)
    }

    /// A synchronous send counted by `op`, both begun at `started` (one clock read): its
    /// time budget runs from there, and the end of its last attempt ends `op` (no further
    /// clock read). `slot`: the memory the send was begun with (lent, not moved: it is
    /// large).
    #[inline]
    pub(super) fn send_sync_counted(
        &self,
        msg: Message,
        target: SyncTarget<'_>,
        started: Instant,
        op: &mut Op,
        slot: &mut SyncMemo,
    ) -> Result<SendResult> {
        // Send hooks ran since `started`: the budget starts after them, as before.
        let now = if self.hooks.is_some() {
            Instant::now()
        } else {
            started
        };
        let whole = self.config.send_timeout();
        let budget = Budget {
            deadline: now + whole,
            now,
            whole: Some(whole),
        };
        // `op` is recorded where the send ends (the result handed straight back, not copied).
        self.send_sync_at(msg, target, budget, slot, op)
    }

    /// [`Inner::send_sync_counted`] within `deadline` (a request's, for request-reply).
    pub(super) fn send_sync_until(
        &self,
        msg: Message,
        target: SyncTarget<'_>,
        deadline: Instant,
    ) -> Result<SendResult> {
        let mut slot = self.sync_memos.take();
        let budget = Budget::until(deadline);
        self.send_sync_at(msg, target, budget, &mut slot, &mut Op::none())
    }

    /// [`Inner::send_sync_until`] within `budget`, recorded in `op` (when the last attempt
    /// ended, if one ran last).
    fn send_sync_at(
        &self,
        msg: Message,
        target: SyncTarget<'_>,
        budget: Budget,
        slot: &mut SyncMemo,
        op: &mut Op,
    ) -> Result<SendResult> {
        if let Err(e) = self.check_running() {
            return failed(op, e);
        }
        // Preparing checks the message; a selector must not see a bad one first.
        let (queue, budget) = match target {
            SyncTarget::Auto => (None, budget),
            SyncTarget::Queue(q) => (Some(q), budget),
            SyncTarget::Selector(selector, arg) => {
                match self.select_for_sync(&msg, selector, arg, budget.deadline) {
                    // The selector (user code, maybe after a route lookup) took time.
                    Ok(q) => (Some(q), budget.at(Instant::now())),
                    Err(e) => return failed(op, e),
                }
            }
        };
        // Prepared where it stays (not moved out of the preparing functions).
        let mut prepared = Prepared::vacant();
        let wall_ms = now_ms();
        // A topic the slot's statistics recorder was made for has passed the topic check.
        let checked = slot.stats.is_checked(msg.topic());
        let mode = SendMode::Sync;
        if let Err(e) = self.prepare_msg_into_at(msg, false, mode, &mut prepared, wall_ms, checked)
        {
            return failed(op, e);
        }
        let _permit = self.sync_in_flight.acquire_unbounded(prepared.size);
        let plan = self.plan(queue, &prepared, budget, Some(wall_ms));
        self.send_attempts_sync(&prepared, &plan, slot, op)
    }

    /// The queue `selector` picks for `msg` and `arg` (the message checked first).
    fn select_for_sync(
        &self,
        msg: &Message,
        selector: &dyn QueueSelector,
        arg: &str,
        deadline: Instant,
    ) -> Result<MessageQueue> {
        prepare::check_message(msg, &self.config)?;
        let info = self.publish_info(&prepare::wire_topic(msg.topic(), &self.config), deadline)?;
        self.run_selector(selector, &info, msg, arg)
    }

    /// The synchronous attempt loop: all attempts and route lookups share `deadline`.
    pub(crate) fn send_prepared_sync(
        &self,
        prepared: &Prepared,
        fixed_queue: Option<MessageQueue>,
        deadline: Instant,
    ) -> Result<SendResult> {
        let plan = self.plan(fixed_queue, prepared, Budget::until(deadline), None);
        let mut slot = self.sync_memos.take();
        self.send_attempts_sync(prepared, &plan, &mut slot, &mut Op::none())
    }

    /// How the attempts of `prepared` run, within `budget` (`born_ms`: see [`Plan`]).
    fn plan(
        &self,
        fixed_queue: Option<MessageQueue>,
        prepared: &Prepared,
        budget: Budget,
        born_ms: Option<i64>,
    ) -> Plan {
        // Strict order: a keyed message-hash send is never retried on another queue.
        let strict = self.strict_hash_key(prepared).is_some();
        let attempts = if fixed_queue.is_some() || strict {
            1
        } else {
            1 + self.config.retries()
        };
        Plan {
            fixed_queue,
            budget,
            strict,
            attempts,
            born_ms,
        }
    }

    /// The attempts of a synchronous send, with the memories of `sync_memo`, recorded in `op`
    /// (with the end of the last attempt, if one ran last: no clock read of its own). The
    /// clock is read once per attempt before it (the budget's read stands for the first) and
    /// once after it: the start serves the deadline check, the queue choice, the request's
    /// deadline and the latency; the end serves the statistics, the fault table, the hooks
    /// and the send's record.
    fn send_attempts_sync(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        sync_memo: &mut SyncMemo,
        op: &mut Op,
    ) -> Result<SendResult> {
        let SyncMemo {
            memo,
            route,
            fault,
            fault_handles,
            stats,
            completion,
        } = sync_memo;
        let Plan {
            fixed_queue,
            budget,
            strict,
            attempts,
            born_ms,
        } = plan;
        // The first attempt's born timestamp, while nothing has blocked since it was read.
        let mut first_born = *born_ms;
        let (deadline, strict) = (budget.deadline, *strict);
        let mut last_broker: Option<Arc<str>> = None;
        let mut failures = Failures::default();
        let mut attempt_no = 0;
        let mut first_now = Some(budget.now);
        for _ in 0..*attempts {
            let mut now = first_now.take().unwrap_or_else(Instant::now);
            if now >= deadline {
                break;
            }
            let queue = match fixed_queue {
                Some(q) => q.clone(),
                None => {
                    let wire_topic = prepared.wire_topic();
                    let looked_up;
                    let info = match self.cached_publish_info_memo(wire_topic, route) {
                        Some(info) => info,
                        None => {
                            looked_up = match self.publish_info(wire_topic, deadline) {
                                Ok(info) => info,
                                Err(e) => return failed(op, e),
                            };
                            now = Instant::now(); // after a lookup
                            first_born = None;
                            &looked_up
                        }
                    };
                    let last = last_broker.as_deref();
                    // `strict`: the plan found the key (a key only under strict order).
                    let key = if strict {
                        self.strict_hash_key(prepared)
                    } else {
                        None
                    };
                    let handles = Some(&mut *fault_handles);
                    match self.select_auto_inline(info, prepared, key, last, now, handles) {
                        Ok(queue) => queue,
                        Err(e) => return failed(op, e),
                    }
                }
            };
            let addr = match self.broker_addr_memo(queue.broker_name_arc(), memo) {
                Some(addr) => Some(addr),
                None => {
                    let addr = self.broker_addr_or_refresh(prepared.wire_topic(), &queue, deadline);
                    now = Instant::now(); // after a possible lookup
                    first_born = None;
                    addr
                }
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
                stats,
            );
            let started = now;
            let timeout = self.attempt_timeout_left(budget.left(started));
            let born = first_born.take().unwrap_or_else(now_ms);
            // When the response arrived: its I/O thread's read.
            let mut arrived = None;
            let encoded =
                self.remoting
                    .encode_request_memo(&addr, &mut memo.target, false, |spec, out| {
                        broker::encode_send_frame(prepared, &queue, &self.defaults, born, spec, out)
                    });
            // Matched, not chained through closures: a closure's argument is a copy of the
            // (large) response.
            let response = match encoded {
                Ok(request) => self.remoting.send_encoded_sync_reusing(
                    request,
                    started,
                    timeout,
                    completion,
                    &mut arrived,
                ),
                Err(e) => Err(e),
            };
            // The response by reference: no copy of it into `send_result`'s arguments.
            let result = match response {
                Ok(response) => broker::send_result(&response, prepared, &queue, &addr),
                Err(e) => Err(e),
            };
            // The attempt's end, read once: the response's arrival (read by its I/O thread
            // for every response of the read, as an asynchronous send's end), else the clock
            // now (a timeout, a connection error). Its latency serves the statistics, the
            // fault table, the hooks and the send's record.
            let ended = Ended::new(started, arrived.unwrap_or_else(Instant::now));
            let latency = ended.latency();
            attempt.end_as_memo(&ended, &result, stats);
            let broker_name = queue.broker_name_arc();
            self.record_attempt_memo(broker_name, fault, latency, ended.now(), &result);
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
                        let result =
                            self.retry_not_ok(prepared, r, deadline, &last_broker, attempt_no);
                        op.record(&result);
                        return result;
                    }
                    Err(e) => failures.push(e),
                }
                continue;
            }
            op.record_ended_memo(&result, &ended, stats);
            return result;
        }
        failed(op, self.attempts_failed(deadline, failures))
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
            .and_then(|response| broker::send_result(&response, prepared, &queue, &addr));
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
            .encode_request_shared(&addr, true, |spec, out| {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's slot is its own while a send holds it: a second send of the same thread
    /// (from a hook) finds it in use and goes on with a fresh memory, not a deadlock; the
    /// slot is free again after.
    #[test]
    fn a_slot_in_use_is_not_waited_for() {
        let memos = SyncMemos::new();
        let held = memos.slot();
        assert!(held.is_some());
        assert!(memos.slot().is_none());
        drop(held);
        assert!(memos.slot().is_some());
        // Another thread has a number of its own (a different slot, for fewer threads than
        // slots).
        let here = thread_number();
        assert_eq!(thread_number(), here);
        let there = std::thread::spawn(thread_number).join().unwrap();
        assert_ne!(there, here);
    }

    fn wall_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// One wall-clock read per synchronous send serves its id and its first attempt's born
    /// timestamp: each stored message's born timestamp lies within its send call, and ids
    /// stay unique.
    #[test]
    fn sync_first_attempts_are_born_within_their_send() {
        use crate::testing::MockBroker;
        use crate::Producer;
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_BORN_SYNC")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut windows = Vec::new();
        for i in 0..100 {
            let before = wall_ms();
            let r = p.send(Message::new("BornSync", format!("m{i}"))).unwrap();
            windows.push((format!("m{i}"), before, wall_ms()));
            assert!(ids.insert(r.msg_id.to_string()), "id {} twice", r.msg_id);
        }
        let stored = broker.wait_messages("BornSync", 100, Duration::from_secs(20));
        for (body, before, after) in windows {
            let m = stored.iter().find(|m| m.body == body.as_bytes()).unwrap();
            assert!(
                (before..=after).contains(&m.born_timestamp),
                "{body} born {} outside {before}..={after}",
                m.born_timestamp
            );
        }
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// A first attempt that waited for its route is born when it is sent (after the lookup),
    /// not when the send's id was made.
    #[test]
    fn sync_first_attempt_after_a_route_lookup_is_born_after_it() {
        use crate::protocol::codes::RequestCode;
        use crate::testing::MockBroker;
        use crate::Producer;
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_BORN_LOOKUP")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .start()
            .unwrap();
        let delay = Duration::from_millis(400);
        broker.delay_next(RequestCode::GET_ROUTEINFO_BY_TOPIC, delay, 1);
        let before = wall_ms();
        p.send(Message::new("BornLookup", "late")).unwrap();
        let stored = broker.wait_messages("BornLookup", 1, Duration::from_secs(20));
        let born = stored[0].born_timestamp;
        assert!(
            born >= before + delay.as_millis() as i64,
            "born {born}, {} ms after the send began: before its route came",
            born - before
        );
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// A synchronous send's statistics are recorded on every way it ends: an invalid message
    /// (found while preparing) counts as failed of its kind, a not-store-OK result retried on
    /// another broker counts as one succeeded send; nothing is left to count as a shutdown.
    #[test]
    fn sync_sends_are_counted_on_every_way_they_end() {
        use crate::error::ErrorKind;
        use crate::protocol::codes::{RequestCode, ResponseCode};
        use crate::testing::MockBroker;
        use crate::Producer;
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_SYNC_COUNTED")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .retry_another_broker_when_not_store_ok(true)
            .start()
            .unwrap();
        p.send(Message::new("Counted", "warm")).unwrap();
        // Invalid: too large a body, found while preparing.
        let big = vec![b'x'; 5 * 1024 * 1024];
        let e = p.send(Message::new("Counted", big)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidMessage, "{e}");
        // Not stored OK, retried (the retry's result, or the first one, is the send's).
        broker.store_with_status_next(
            RequestCode::SEND_MESSAGE_V2,
            ResponseCode::FLUSH_DISK_TIMEOUT,
            1,
        );
        p.send(Message::new("Counted", "not ok")).unwrap();
        let t = p.stats().topics["Counted"].clone();
        assert_eq!(t.failed_of(ErrorKind::InvalidMessage), 1, "{t:?}");
        assert_eq!(t.failed_of(ErrorKind::Shutdown), 0, "{t:?}");
        assert_eq!((t.sent, t.succeeded, t.failed), (3, 2, 1), "{t:?}");
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    /// Synchronous sends whose answers race the caller's wait on its kept completion: spins
    /// swept from none through a few microseconds, so that answers land before the caller
    /// looks, while it spins, between its look and its park, and while it is parked. Every
    /// send gets its own result (a lost wake-up hangs: the deadline fails the test instead).
    #[test]
    fn sync_sends_racing_their_wait_all_complete() {
        use crate::testing::MockBroker;
        use crate::Producer;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let broker = MockBroker::start().unwrap();
            for spin_us in [0u64, 2, 7, 20] {
                let p = Producer::builder("GID_SYNC_RACE")
                    .name_server(broker.namesrv_addr())
                    .send_timeout(Duration::from_secs(60))
                    .busy_poll(Duration::from_micros(spin_us))
                    .start()
                    .unwrap();
                let mut ids = std::collections::HashSet::new();
                for i in 0..500 {
                    let r = p
                        .send(Message::new("SyncRace", format!("{spin_us}-{i}")))
                        .unwrap_or_else(|e| panic!("spin {spin_us} µs, send {i}: {e}"));
                    assert_eq!(r.status, SendStatus::SendOk);
                    assert!(ids.insert(r.msg_id.to_string()), "id {} twice", r.msg_id);
                }
                p.shutdown(Duration::from_secs(5)).unwrap();
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("a synchronous send hung (or failed: see its panic)");
    }

    /// A budget's shortcut (the whole budget for an attempt that starts with it) gives what
    /// the subtraction gives, at the start and at any later or earlier read.
    #[test]
    fn budget_left_matches_the_subtraction() {
        let base = Instant::now();
        let lengths = [0, 1, 999, 1_000_000, 3_000_000_000, 86_400_000_000_000u64];
        for (i, &whole_ns) in lengths.iter().enumerate() {
            let whole = Duration::from_nanos(whole_ns);
            let now = base + Duration::from_nanos(i as u64 * 7);
            let budget = Budget {
                deadline: now + whole,
                now,
                whole: Some(whole),
            };
            for offset in [
                0,
                1,
                500,
                whole_ns / 2,
                whole_ns,
                whole_ns + 1,
                whole_ns * 2,
            ] {
                let t = now + Duration::from_nanos(offset);
                assert_eq!(
                    budget.left(t),
                    budget.deadline.saturating_duration_since(t),
                    "whole {whole_ns} ns, read {offset} ns after"
                );
            }
            let later = budget.at(now + Duration::from_nanos(3));
            assert_eq!(
                later.left(later.now),
                later.deadline.saturating_duration_since(later.now)
            );
            let until = Budget::until(budget.deadline);
            assert_eq!(
                until.left(until.now),
                until.deadline.saturating_duration_since(until.now)
            );
        }
    }
}
