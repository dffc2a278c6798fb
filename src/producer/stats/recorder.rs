//! The live side: atomic counters per topic and per broker that the send path bumps, and the
//! [`Op`] and [`Attempt`] guards that end each send and each attempt exactly once.

use crate::hash::FxHashMap;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::histogram::{micros, LatencyHistogram};
use super::rates::{RateRing, FAILED, OK};
use super::{TransactionStats, KINDS, MAX_TRACKED_TOPICS};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, SendResult, SendStatus};
use crate::producer::prepare::{self, Prepared};
use crate::producer::Prep;

fn atomic_kinds() -> [AtomicU64; KINDS] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The live counters of one topic (or of the sends no topic tracks).
pub(crate) struct TopicRecorder {
    /// The topic it counts (empty for the untracked sends' recorder).
    name: Box<str>,
    pub(super) epoch: Instant,
    // Touched when a send starts.
    pub(super) sent: AtomicU64,
    pub(super) messages: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) oneway: AtomicU64,
    pub(super) in_flight_bytes: AtomicI64,
    // Touched when it ends.
    pub(super) succeeded: AtomicU64,
    pub(super) failed: [AtomicU64; KINDS],
    pub(super) status_not_ok: AtomicU64,
    // Touched on retries.
    pub(super) retried: AtomicU64,
    pub(super) latency: LatencyHistogram,
    pub(super) rates: RateRing,
}

impl TopicRecorder {
    fn new(name: &str, epoch: Instant) -> Self {
        TopicRecorder {
            name: name.into(),
            epoch,
            sent: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            oneway: AtomicU64::new(0),
            in_flight_bytes: AtomicI64::new(0),
            succeeded: AtomicU64::new(0),
            failed: atomic_kinds(),
            status_not_ok: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            latency: LatencyHistogram::new(),
            rates: RateRing::new(),
        }
    }
}

/// The live counters of one broker (attempts).
pub(crate) struct BrokerRecorder {
    pub(super) epoch: Instant,
    pub(super) attempts: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) failed: [AtomicU64; KINDS],
    pub(super) status_not_ok: AtomicU64,
    pub(super) latency: LatencyHistogram,
    pub(super) rates: RateRing,
}

impl BrokerRecorder {
    fn new(epoch: Instant) -> Self {
        BrokerRecorder {
            epoch,
            attempts: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: atomic_kinds(),
            status_not_ok: AtomicU64::new(0),
            latency: LatencyHistogram::new(),
            rates: RateRing::new(),
        }
    }
}

/// Where a transaction producer's counters come from (it attaches them at start); reported in
/// [`ProducerStats::transactions`].
#[derive(Default)]
pub(crate) struct TransactionCounters {
    source: std::sync::OnceLock<Box<dyn Fn() -> TransactionStats + Send + Sync>>,
}

impl fmt::Debug for TransactionCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionCounters")
            .field("attached", &self.source.get().is_some())
            .finish()
    }
}

impl TransactionCounters {
    /// Makes `source` part of every snapshot; the first attachment wins.
    pub(crate) fn attach(&self, source: impl Fn() -> TransactionStats + Send + Sync + 'static) {
        let _ = self.source.set(Box::new(source));
    }

    pub(super) fn stats(&self) -> Option<TransactionStats> {
        self.source.get().map(|f| f())
    }
}

/// All statistics of one producer.
pub(crate) struct StatsRecorder {
    pub(super) enabled: bool,
    pub(super) epoch: Instant,
    pub(super) topics: RwLock<FxHashMap<String, Arc<TopicRecorder>>>,
    /// Sends with no valid topic, or beyond [`MAX_TRACKED_TOPICS`].
    pub(super) untracked: Arc<TopicRecorder>,
    pub(super) brokers: RwLock<FxHashMap<String, Arc<BrokerRecorder>>>,
    pub(super) transactions: TransactionCounters,
}

impl fmt::Debug for StatsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsRecorder")
            .field("enabled", &self.enabled)
            .field("topics", &self.topics.read().len())
            .field("brokers", &self.brokers.read().len())
            .finish_non_exhaustive()
    }
}

impl StatsRecorder {
    /// Recorders that count only when `enabled`.
    pub(crate) fn new(enabled: bool) -> Self {
        let epoch = Instant::now();
        StatsRecorder {
            enabled,
            epoch,
            topics: RwLock::new(FxHashMap::default()),
            untracked: Arc::new(TopicRecorder::new("", epoch)),
            brokers: RwLock::new(FxHashMap::default()),
            transactions: TransactionCounters::default(),
        }
    }

    /// Whether statistics are kept.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The transaction counters (a transaction producer records into them).
    pub(crate) fn transactions(&self) -> &TransactionCounters {
        &self.transactions
    }

    fn topic(&self, name: &str) -> Arc<TopicRecorder> {
        if let Some(t) = self.topics.read().get(name) {
            return t.clone();
        }
        if prepare::check_topic(name).is_err() {
            return self.untracked.clone();
        }
        let mut topics = self.topics.write();
        if let Some(t) = topics.get(name) {
            return t.clone();
        }
        if topics.len() >= MAX_TRACKED_TOPICS {
            return self.untracked.clone();
        }
        let t = Arc::new(TopicRecorder::new(name, self.epoch));
        topics.insert(name.to_string(), t.clone());
        t
    }

    /// The recorder of `name`, if the broker has one.
    pub(crate) fn broker_recorder(&self, name: &str) -> Option<Arc<BrokerRecorder>> {
        self.brokers.read().get(name).cloned()
    }

    /// Names of the brokers with statistics.
    pub(crate) fn broker_names(&self) -> Vec<String> {
        self.brokers.read().keys().cloned().collect()
    }

    fn broker(&self, name: &str) -> Arc<BrokerRecorder> {
        if let Some(b) = self.brokers.read().get(name) {
            return b.clone();
        }
        self.brokers
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(BrokerRecorder::new(self.epoch)))
            .clone()
    }

    fn start(&self, topic: Option<&str>, messages: u64, bytes: u64, oneway: bool) -> Op {
        // Oneway sends record no latency: no clock read.
        let started = if oneway { None } else { Some(Instant::now()) };
        self.start_at(topic, messages, bytes, started)
    }

    /// [`StatsRecorder::start`] with the clock already read (`None`: a oneway send).
    fn start_at(
        &self,
        topic: Option<&str>,
        messages: u64,
        bytes: u64,
        started: Option<Instant>,
    ) -> Op {
        let t = match topic {
            Some(name) => self.topic(name),
            None => self.untracked.clone(),
        };
        self.start_on(t, messages, bytes, started)
    }

    /// [`StatsRecorder::start_at`] on the recorder `t`.
    fn start_on(
        &self,
        t: Arc<TopicRecorder>,
        messages: u64,
        bytes: u64,
        started: Option<Instant>,
    ) -> Op {
        t.sent.fetch_add(1, Ordering::Relaxed);
        t.messages.fetch_add(messages, Ordering::Relaxed);
        t.bytes.fetch_add(bytes, Ordering::Relaxed);
        t.in_flight_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
        if started.is_none() {
            t.oneway.fetch_add(1, Ordering::Relaxed);
        }
        Op(Some(OpState {
            topic: t,
            started,
            bytes,
        }))
    }

    /// Starts counting a send of `msg` (synchronous, asynchronous or oneway).
    pub(crate) fn begin(&self, msg: &Message, oneway: bool) -> Op {
        if !self.enabled {
            return Op(None);
        }
        self.start(Some(msg.topic()), 1, msg.body().len() as u64, oneway)
    }

    /// Starts counting a batch send.
    pub(crate) fn begin_batch(&self, msgs: &[Message]) -> Op {
        self.begin_batch_as(msgs, false)
    }

    /// Starts counting a oneway batch send.
    pub(crate) fn begin_batch_oneway(&self, msgs: &[Message]) -> Op {
        self.begin_batch_as(msgs, true)
    }

    fn begin_batch_as(&self, msgs: &[Message], oneway: bool) -> Op {
        if !self.enabled {
            return Op(None);
        }
        let bytes = msgs.iter().map(|m| m.body().len() as u64).sum();
        self.start(
            msgs.first().map(Message::topic),
            msgs.len() as u64,
            bytes,
            oneway,
        )
    }

    /// [`StatsRecorder::begin`] for a synchronous or asynchronous send that began at `now`
    /// (a clock read the caller shares with the send's time budget), with the recorder of
    /// the last topic remembered in `memo`: a message for the same topic skips the look-up
    /// of its recorder.
    pub(in crate::producer) fn begin_memo(
        &self,
        m: &Message,
        now: Instant,
        memo: &mut TopicMemo,
    ) -> Op {
        if !self.enabled {
            return Op(None);
        }
        let t = match &memo.0 {
            Some(t) if *t.name == *m.topic() => t.clone(),
            _ => {
                let t = self.topic(m.topic());
                // Only a topic's own recorder (never the untracked one) is remembered: its
                // name is a checked topic.
                memo.0 = (!t.name.is_empty()).then(|| t.clone());
                t
            }
        };
        self.start_on(t, 1, m.body().len() as u64, Some(now))
    }

    /// Starts counting an asynchronous send of a message or batch that began at `now`, with
    /// the recorder of the last topic remembered in `memo`: a message for the same topic
    /// skips the look-up of its recorder. Also tells whether `memo` now remembers the
    /// message's topic ([`TopicMemo::is_checked`] of it, known without comparing again).
    pub(in crate::producer) fn begin_prep_memo(
        &self,
        prep: &Prep,
        now: Instant,
        memo: &mut TopicMemo,
    ) -> (Op, bool) {
        if !self.enabled {
            return (Op(None), false);
        }
        match prep {
            Prep::Single(m) => {
                let (t, checked) = match &memo.0 {
                    Some(t) if *t.name == *m.topic() => (t.clone(), true),
                    _ => {
                        let t = self.topic(m.topic());
                        // Only a topic's own recorder (never the untracked one) is
                        // remembered: its name is a checked topic.
                        let tracked = !t.name.is_empty();
                        memo.0 = tracked.then(|| t.clone());
                        (t, tracked)
                    }
                };
                let op = self.start_on(t, 1, m.body().len() as u64, Some(now));
                (op, checked)
            }
            Prep::Batch(ms) => {
                let op = self.start_at(
                    ms.first().map(Message::topic),
                    ms.len() as u64,
                    ms.iter().map(|m| m.body().len() as u64).sum(),
                    Some(now),
                );
                (op, false)
            }
        }
    }

    /// Starts counting an attempt of `prepared` on `broker`; `retry` if it is not the send's
    /// first attempt.
    pub(crate) fn attempt(&self, prepared: &Prepared, broker: &str, retry: bool) -> Attempt {
        if !self.enabled {
            return Attempt(None);
        }
        self.attempt_on(prepared, self.broker(broker), retry)
    }

    /// [`StatsRecorder::attempt`] with the broker's recorder remembered in `memo`: the same
    /// broker as the last one skips the look-up of its recorder.
    pub(crate) fn attempt_memo(
        &self,
        prepared: &Prepared,
        broker: &Arc<str>,
        retry: bool,
        memo: &mut BrokerMemo,
    ) -> Attempt {
        if !self.enabled {
            return Attempt(None);
        }
        let b = match &memo.0 {
            Some((name, b)) if Arc::ptr_eq(name, broker) || **name == **broker => b.clone(),
            _ => {
                let b = self.broker(broker);
                memo.0 = Some((broker.clone(), b.clone()));
                b
            }
        };
        self.attempt_on(prepared, b, retry)
    }

    fn attempt_on(&self, prepared: &Prepared, b: Arc<BrokerRecorder>, retry: bool) -> Attempt {
        b.attempts.fetch_add(1, Ordering::Relaxed);
        b.bytes.fetch_add(prepared.size as u64, Ordering::Relaxed);
        if retry {
            b.retried.fetch_add(1, Ordering::Relaxed);
            self.topic(&prepared.topic)
                .retried
                .fetch_add(1, Ordering::Relaxed);
        }
        Attempt(Some(b))
    }
}

/// A caller's memory of the recorder of the last topic it counted a send of
/// ([`StatsRecorder::begin_prep_memo`]). Topic recorders are never removed, and only a tracked
/// topic's recorder is remembered, so the one remembered for a name stays that name's; it is
/// known to be a checked topic name ([`TopicMemo::is_checked`]).
#[derive(Clone, Default)]
pub(crate) struct TopicMemo(Option<Arc<TopicRecorder>>);

impl TopicMemo {
    /// Whether `topic` is the remembered topic: one that passed
    /// [`prepare::check_topic`] (only such topics get their own recorder), so it needs no
    /// second check.
    pub(crate) fn is_checked(&self, topic: &str) -> bool {
        self.0.as_ref().is_some_and(|t| *t.name == *topic)
    }
}

/// A caller's memory of the recorder of the last broker it counted an attempt on
/// ([`StatsRecorder::attempt_memo`]). Broker recorders are never removed, so the one
/// remembered for a name stays that name's.
#[derive(Clone, Default)]
pub(crate) struct BrokerMemo(Option<(Arc<str>, Arc<BrokerRecorder>)>);

fn second_of(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_secs()
}

/// When an attempt ended, with what the statistics derive from it computed once for both the
/// attempt's and its send's records: the attempt's latency and the second (since an epoch)
/// its rates count in.
pub(crate) struct Ended {
    /// When the attempt started (`now` for an end with no attempt).
    started: Instant,
    now: Instant,
    latency: Duration,
    /// `latency` in whole microseconds (the histograms' unit), converted once for the
    /// attempt's and the send's records.
    latency_us: u64,
    /// The last epoch asked for and `now`'s second since it.
    second: Cell<Option<(Instant, u64)>>,
}

impl Ended {
    /// An attempt that started at `started` and ended at `now`.
    pub(crate) fn new(started: Instant, now: Instant) -> Self {
        let latency = now.saturating_duration_since(started);
        Ended {
            started,
            now,
            latency,
            latency_us: micros(latency),
            second: Cell::new(None),
        }
    }

    /// An end at `now` with no attempt's latency (zero): a send's end.
    pub(crate) fn at(now: Instant) -> Self {
        Ended {
            started: now,
            now,
            latency: Duration::ZERO,
            latency_us: 0,
            second: Cell::new(None),
        }
    }

    /// [`Ended::new`], knowing `now`'s second since an epoch already (`second`: a note of
    /// an earlier end at the same `now`, see [`Ended::second_note`]).
    pub(crate) fn noted(started: Instant, now: Instant, second: Option<(Instant, u64)>) -> Self {
        let ended = Ended::new(started, now);
        ended.second.set(second);
        ended
    }

    /// The second since an epoch this end computed (or was given), for the next end at the
    /// same `now` ([`Ended::noted`]).
    pub(crate) fn second_note(&self) -> Option<(Instant, u64)> {
        self.second.get()
    }

    /// When the attempt ended.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// How long the attempt took.
    pub(crate) fn latency(&self) -> Duration {
        self.latency
    }

    /// How long since `started`, in whole microseconds: the attempt's latency when that is
    /// when it started (a send whose one attempt began with it), without a second
    /// subtraction.
    fn latency_us_since(&self, started: Instant) -> u64 {
        if started == self.started {
            self.latency_us
        } else {
            micros(self.now.saturating_duration_since(started))
        }
    }

    fn second(&self, epoch: Instant) -> u64 {
        if let Some((e, s)) = self.second.get() {
            if e == epoch {
                return s;
            }
        }
        let s = second_of(epoch, self.now);
        self.second.set(Some((epoch, s)));
        s
    }
}

struct OpState {
    topic: Arc<TopicRecorder>,
    started: Option<Instant>,
    bytes: u64,
}

/// One send being counted. Ends exactly once: with [`Op::end`]/[`Op::record`], or when dropped
/// (as failed with [`ErrorKind::Shutdown`]). Does nothing when statistics are off.
#[must_use = "a send that is not ended counts as failed (shutdown) when dropped"]
pub(crate) struct Op(Option<OpState>);

impl Op {
    /// An operation that counts nothing (a send whose callers are counted elsewhere: the
    /// batch an auto-batch accumulator sends for them).
    pub(crate) fn none() -> Op {
        Op(None)
    }

    /// Whether it counts nothing (ended, or [`Op::none`]).
    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// Records `result` and hands it back.
    pub(crate) fn end(mut self, result: Result<SendResult>) -> Result<SendResult> {
        self.record(&result);
        result
    }

    /// Records the outcome of a oneway send and hands it back.
    pub(crate) fn end_oneway(mut self, result: Result<()>) -> Result<()> {
        match &result {
            Ok(()) => self.finish(None),
            Err(e) => self.finish(Some(e.kind())),
        }
        result
    }

    /// Records `result`; later calls do nothing.
    pub(crate) fn record(&mut self, result: &Result<SendResult>) {
        self.record_ended(result, &Ended::at(Instant::now()));
    }

    /// [`Op::record`] for a send whose last attempt ended as `ended` says.
    pub(crate) fn record_ended(&mut self, result: &Result<SendResult>, ended: &Ended) {
        match result {
            Ok(r) => {
                if r.status != SendStatus::SendOk {
                    if let Some(s) = &self.0 {
                        s.topic.status_not_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.finish_at(None, ended)
            }
            Err(e) => self.finish_at(Some(e.kind()), ended),
        }
    }

    /// Records a failure of `kind`; later calls do nothing.
    pub(crate) fn fail(&mut self, e: &Error) {
        self.finish(Some(e.kind()));
    }

    fn finish(&mut self, failed: Option<ErrorKind>) {
        if self.0.is_some() {
            self.finish_at(failed, &Ended::at(Instant::now()));
        }
    }

    fn finish_at(&mut self, failed: Option<ErrorKind>, ended: &Ended) {
        let Some(s) = self.0.take() else {
            return;
        };
        let t = &s.topic;
        match failed {
            None => {
                if let Some(started) = s.started {
                    t.latency.record_us(ended.latency_us_since(started));
                }
                t.succeeded.fetch_add(1, Ordering::Release);
                t.rates.add(ended.second(t.epoch), OK);
            }
            Some(kind) => {
                if let Some(cell) = t.failed.get(kind.index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                t.rates.add(ended.second(t.epoch), FAILED);
            }
        }
        t.in_flight_bytes
            .fetch_sub(s.bytes as i64, Ordering::Release);
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.finish(Some(ErrorKind::Shutdown));
    }
}

/// One attempt being counted on a broker. Ends exactly once: with [`Attempt::end`], or when
/// dropped (as failed with [`ErrorKind::Shutdown`]). Does nothing when statistics are off.
#[must_use = "an attempt that is not ended counts as failed (shutdown) when dropped"]
pub(crate) struct Attempt(Option<Arc<BrokerRecorder>>);

impl Attempt {
    /// Records the attempt's result; `started` is when its request was handed to the client,
    /// `now` when its result came back (one clock read, shared with the fault table's record).
    pub(crate) fn end(self, started: Instant, now: Instant, result: &Result<SendResult>) {
        self.end_as(&Ended::new(started, now), result);
    }

    /// [`Attempt::end`] with the attempt's end already read (its latency and second are
    /// computed once, for the send's record too).
    pub(crate) fn end_as(mut self, ended: &Ended, result: &Result<SendResult>) {
        let Some(b) = self.0.take() else {
            return;
        };
        match result {
            Ok(r) => {
                b.latency.record_us(ended.latency_us);
                if r.status != SendStatus::SendOk {
                    b.status_not_ok.fetch_add(1, Ordering::Relaxed);
                }
                b.succeeded.fetch_add(1, Ordering::Release);
                b.rates.add(ended.second(b.epoch), OK);
            }
            Err(e) => {
                if let Some(cell) = b.failed.get(e.kind().index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                b.rates.add(ended.second(b.epoch), FAILED);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            if let Some(cell) = b.failed.get(ErrorKind::Shutdown.index()) {
                cell.fetch_add(1, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::producer::stats::snapshot::BackpressureView;
    use crate::producer::stats::STATS_SCHEMA;

    fn shutdown_result() -> Result<SendResult> {
        Err(Error::Shutdown)
    }

    /// Attempts counted through a memo land on their own broker's recorder, whatever the
    /// order of brokers.
    #[test]
    fn attempt_memo_counts_each_broker_on_its_own_recorder() {
        let s = StatsRecorder::new(true);
        let config = crate::producer::ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let prepared =
            crate::producer::prepare::prepare_single(Message::new("T", "12345"), &config, || {
                "ID".into()
            })
            .unwrap();
        let names: Vec<Arc<str>> = ["a", "b", "a", "c"].into_iter().map(Arc::from).collect();
        let mut memo = BrokerMemo::default();
        let mut expected = std::collections::BTreeMap::new();
        for (i, name) in names.iter().chain(names.iter().rev()).enumerate() {
            // A name in another string is the same broker.
            let name: Arc<str> = if i % 3 == 0 {
                Arc::from(&**name)
            } else {
                name.clone()
            };
            let attempt = s.attempt_memo(&prepared, &name, i % 2 == 1, &mut memo);
            let now = Instant::now();
            attempt.end(now, now, &Err(Error::Shutdown));
            *expected.entry(name.to_string()).or_insert(0u64) += 1;
        }
        for (name, n) in expected {
            let b = s.broker_recorder(&name).unwrap();
            assert_eq!(b.attempts.load(Ordering::Relaxed), n, "broker {name}");
        }
        let off = StatsRecorder::new(false);
        assert!(off
            .attempt_memo(&prepared, &names[0], false, &mut memo)
            .0
            .is_none());
    }

    /// An end's latency (in microseconds) since a start gives the subtraction's figure, whether the start is
    /// its attempt's (the shortcut) or another.
    #[test]
    fn ended_latency_since_matches_the_subtraction() {
        let base = Instant::now();
        for started_ns in [0u64, 1, 1_000, 5_000_000] {
            for took_ns in [0u64, 1, 999, 2_000_000_000] {
                let started = base + Duration::from_nanos(started_ns);
                let now = started + Duration::from_nanos(took_ns);
                let ended = Ended::new(started, now);
                for other in [base, started, now, now + Duration::from_nanos(1)] {
                    assert_eq!(
                        ended.latency_us_since(other),
                        micros(now.saturating_duration_since(other)),
                        "attempt {started_ns}+{took_ns} ns"
                    );
                }
                let at = Ended::at(now);
                assert_eq!(at.latency_us_since(now), 0);
                assert_eq!(
                    at.latency_us_since(started),
                    micros(now.saturating_duration_since(started))
                );
            }
        }
    }

    /// An end noted with an earlier end's second (same time) counts in the same second as
    /// one that subtracts, for that epoch and for any other.
    #[test]
    fn noted_second_matches_the_subtraction() {
        let base = Instant::now();
        let epochs = [
            base,
            base + Duration::from_millis(700),
            base + Duration::from_secs(3),
        ];
        for offset_ms in [0u64, 1, 699, 700, 999, 1_000, 2_999, 3_000, 3_001, 61_000] {
            let now = base + Duration::from_millis(offset_ms);
            for first in epochs {
                let earlier = Ended::new(base, now);
                let _ = earlier.second(first);
                let started = base + Duration::from_millis(offset_ms / 2);
                let ended = Ended::noted(started, now, earlier.second_note());
                assert_eq!(ended.latency(), now.saturating_duration_since(started));
                for epoch in epochs {
                    assert_eq!(
                        ended.second(epoch),
                        now.saturating_duration_since(epoch).as_secs(),
                        "{offset_ms} ms, noted for {first:?}, asked for {epoch:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ops_end_exactly_once_and_drops_count_as_shutdown() {
        let s = StatsRecorder::new(true);
        let msg = Message::new("T", "12345");
        let op = s.begin(&msg, false);
        let r = op.end(shutdown_result());
        assert!(r.is_err());
        let mut op = s.begin(&msg, false);
        op.fail(&Error::InvalidMessage("x".into()));
        op.fail(&Error::InvalidMessage("again".into()));
        drop(op);
        drop(s.begin(&msg, false));
        let oneway = s.begin(&msg, true);
        assert!(oneway.end_oneway(Ok(())).is_ok());
        let in_flight = s.begin(&Message::new("!bad topic!", "x"), false);
        let snap = s.snapshot("c", "g", BackpressureView::default());
        let t = &snap.topics["T"];
        assert_eq!((t.sent, t.succeeded, t.failed, t.oneway), (4, 1, 3, 1));
        assert_eq!(t.failed_of(ErrorKind::Shutdown), 2);
        assert_eq!(t.failed_of(ErrorKind::InvalidMessage), 1);
        assert_eq!((t.in_flight, t.in_flight_bytes, t.bytes), (0, 0, 20));
        assert_eq!(t.latency.count, 0, "oneway and failures record no latency");
        // The bad topic counts in the totals only.
        assert_eq!(snap.topics.len(), 1);
        assert_eq!(
            (
                snap.totals.sent,
                snap.totals.in_flight,
                snap.totals.in_flight_bytes
            ),
            (5, 1, 1)
        );
        drop(in_flight);
        let json = s.snapshot("c", "g", BackpressureView::default()).to_json();
        assert_eq!(json["schema"], STATS_SCHEMA);
        assert_eq!(json["totals"]["failed_by_kind"]["shutdown"], 3);
        assert_eq!(json["totals"]["in_flight"], 0);
        assert_eq!(json["topics"]["T"]["oneway"], 1);
        assert_eq!(json["transactions"], Value::Null);
    }

    #[test]
    fn disabled_counts_nothing() {
        let s = StatsRecorder::new(false);
        let op = s.begin(&Message::new("T", "x"), false);
        assert!(op.0.is_none());
        let _ = op.end(shutdown_result());
        let snap = s.snapshot("c", "g", BackpressureView::default());
        assert!(!snap.enabled);
        assert_eq!(snap.totals.sent, 0);
        assert!(snap.topics.is_empty());
    }

    #[test]
    fn topics_beyond_the_limit_count_in_totals_only() {
        let s = StatsRecorder::new(true);
        for i in 0..MAX_TRACKED_TOPICS + 3 {
            let _ = s
                .begin(&Message::new(format!("T{i}"), "x"), false)
                .end(shutdown_result());
        }
        let snap = s.snapshot("c", "g", BackpressureView::default());
        assert_eq!(snap.topics.len(), MAX_TRACKED_TOPICS);
        assert_eq!(snap.totals.sent, MAX_TRACKED_TOPICS as u64 + 3);
    }

    /// Sends counted through a topic memo land on their own topic's recorder, whatever the
    /// order of topics; only tracked topics (checked names) are remembered as checked, never
    /// an invalid name or one beyond the tracking limit.
    #[test]
    fn begin_prep_memo_counts_each_topic_on_its_own_recorder() {
        let s = StatsRecorder::new(true);
        let mut memo = TopicMemo::default();
        let topics = ["A", "B", "A", "A", "bad topic", "A", "", "C", "C", "B"];
        let mut expected = std::collections::BTreeMap::new();
        let mut untracked = 0;
        for t in topics {
            let prep = Prep::Single(Message::new(t, "12345"));
            let (op, checked) = s.begin_prep_memo(&prep, Instant::now(), &mut memo);
            let _ = op.end(shutdown_result());
            // What it tells is what the memo says.
            assert_eq!(checked, memo.is_checked(t), "{t:?}");
            if prepare::check_topic(t).is_ok() {
                *expected.entry(t.to_string()).or_insert(0u64) += 1;
                assert!(memo.is_checked(t), "{t:?}");
            } else {
                untracked += 1;
                assert!(!memo.is_checked(t), "{t:?}");
            }
        }
        let snap = s.snapshot("c", "g", BackpressureView::default());
        for (name, n) in &expected {
            assert_eq!(snap.topics[name].sent, *n, "topic {name}");
        }
        assert_eq!(snap.topics.len(), expected.len());
        assert_eq!(snap.totals.sent, topics.len() as u64);
        assert_eq!(s.untracked.sent.load(Ordering::Relaxed), untracked);
        // Beyond the tracking limit: counted in the totals only, and never remembered.
        for i in 0..MAX_TRACKED_TOPICS + 3 {
            let t = format!("T{i}");
            let prep = Prep::Single(Message::new(t.as_str(), "x"));
            let (op, checked) = s.begin_prep_memo(&prep, Instant::now(), &mut memo);
            let _ = op.end(shutdown_result());
            assert_eq!(checked, memo.is_checked(&t), "{t}");
            if i + expected.len() >= MAX_TRACKED_TOPICS {
                assert!(!memo.is_checked(&t), "{t}");
            }
        }
        let off = StatsRecorder::new(false);
        let mut memo = TopicMemo::default();
        let prep = Prep::Single(Message::new("A", "x"));
        let (op, checked) = off.begin_prep_memo(&prep, Instant::now(), &mut memo);
        assert!(op.0.is_none() && !checked);
        assert!(!memo.is_checked("A"));
    }

    #[test]
    fn transaction_counters_show_once_attached() {
        let s = StatsRecorder::new(true);
        assert!(s
            .snapshot("c", "g", BackpressureView::default())
            .transactions
            .is_none());
        s.transactions().attach(|| TransactionStats {
            committed: 3,
            ..TransactionStats::default()
        });
        let t = s
            .snapshot("c", "g", BackpressureView::default())
            .transactions
            .unwrap();
        assert_eq!(t.committed, 3);
        let json = s.snapshot("c", "g", BackpressureView::default()).to_json();
        assert_eq!(json["transactions"]["committed"], 3);
    }
}
