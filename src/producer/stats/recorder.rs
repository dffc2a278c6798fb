//! The live side: atomic counters per topic and per broker that the send path bumps, and the
//! [`Op`] and [`Attempt`] guards that end each send and each attempt exactly once.

use crate::hash::FxHashMap;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::histogram::{micros, LatencyHistogram};
use super::rates::{RateRing, FAILED, OK};
use super::{TransactionStats, KINDS, MAX_TRACKED_TOPICS};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, SendResult, SendStatus};
use crate::padded::Padded;
use crate::producer::prepare::{self, Prepared};
use crate::producer::Prep;

fn atomic_kinds() -> [AtomicU64; KINDS] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// What a send's start writes: on the sending thread, on lines of their own (see
/// [`TopicRecorder`]).
#[derive(Default)]
pub(super) struct TopicStarts {
    pub(super) sent: AtomicU64,
    pub(super) messages: AtomicU64,
    /// Every send's bytes, counted when it starts; `in_flight_bytes` is these less
    /// [`TopicEnds::ended_bytes`].
    pub(super) bytes: AtomicU64,
    pub(super) oneway: AtomicU64,
    /// Touched on retries (by the thread that retries).
    pub(super) retried: AtomicU64,
}

/// What a send's end writes: usually on an I/O thread, on lines of their own (see
/// [`TopicRecorder`]).
pub(super) struct TopicEnds {
    pub(super) succeeded: AtomicU64,
    pub(super) failed: [AtomicU64; KINDS],
    pub(super) status_not_ok: AtomicU64,
    /// The bytes of the sends that ended (see [`TopicStarts::bytes`]).
    pub(super) ended_bytes: AtomicU64,
    pub(super) latency: LatencyHistogram,
    pub(super) rates: RateRing,
}

/// The live counters of one topic (or of the sends no topic tracks).
///
/// A send's start (on the sending thread) and its end (usually on an I/O thread) write
/// counters on separate lines ([`Padded`]): a counter one thread bumps never shares a line
/// with one the other bumps, so neither takes the line from the other per send. Nothing is
/// written by both: in-flight figures are derived when a snapshot is read (sends started
/// less sends ended, bytes started less bytes ended).
pub(crate) struct TopicRecorder {
    /// The topic it counts (empty for the untracked sends' recorder). Read-only, as `epoch`.
    name: Box<str>,
    pub(super) epoch: Instant,
    pub(super) start: Padded<TopicStarts>,
    pub(super) end: Padded<TopicEnds>,
}

impl TopicRecorder {
    fn new(name: &str, epoch: Instant) -> Self {
        TopicRecorder {
            name: name.into(),
            epoch,
            start: Padded::new(TopicStarts::default()),
            end: Padded::new(TopicEnds {
                succeeded: AtomicU64::new(0),
                failed: atomic_kinds(),
                status_not_ok: AtomicU64::new(0),
                ended_bytes: AtomicU64::new(0),
                latency: LatencyHistogram::new(),
                rates: RateRing::new(),
            }),
        }
    }
}

/// What an attempt's start writes (the sending or retrying thread), on lines of its own.
#[derive(Default)]
pub(super) struct BrokerStarts {
    pub(super) attempts: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) retried: AtomicU64,
}

/// What an attempt's end writes (usually an I/O thread), on lines of its own.
pub(super) struct BrokerEnds {
    pub(super) succeeded: AtomicU64,
    pub(super) failed: [AtomicU64; KINDS],
    pub(super) status_not_ok: AtomicU64,
    pub(super) latency: LatencyHistogram,
    pub(super) rates: RateRing,
}

/// The live counters of one broker (attempts), split as [`TopicRecorder`]'s are.
pub(crate) struct BrokerRecorder {
    pub(super) epoch: Instant,
    pub(super) start: Padded<BrokerStarts>,
    pub(super) end: Padded<BrokerEnds>,
}

impl BrokerRecorder {
    fn new(epoch: Instant) -> Self {
        BrokerRecorder {
            epoch,
            start: Padded::new(BrokerStarts::default()),
            end: Padded::new(BrokerEnds {
                succeeded: AtomicU64::new(0),
                failed: atomic_kinds(),
                status_not_ok: AtomicU64::new(0),
                latency: LatencyHistogram::new(),
                rates: RateRing::new(),
            }),
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
        let s = &t.start;
        s.sent.fetch_add(1, Ordering::Relaxed);
        s.messages.fetch_add(messages, Ordering::Relaxed);
        s.bytes.fetch_add(bytes, Ordering::Relaxed);
        if started.is_none() {
            s.oneway.fetch_add(1, Ordering::Relaxed);
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

    /// The recorder of `topic` for a send counted through `memo`, and whether `memo` now
    /// remembers it: the remembered one (its count lent by `memo`, see [`TopicMemo`]) for
    /// the same topic, else the one looked up, which `memo` remembers from then on if it is
    /// a tracked topic's.
    fn topic_memo(&self, topic: &str, memo: &mut TopicMemo) -> (Arc<TopicRecorder>, bool) {
        if let Some(t) = memo.lend(topic) {
            return (t, true);
        }
        let t = self.topic(topic);
        // Only a topic's own recorder (never the untracked one) is remembered: its name is
        // a checked topic.
        let tracked = !t.name.is_empty();
        memo.remember(tracked.then(|| t.clone()));
        (t, tracked)
    }

    /// [`StatsRecorder::begin`] for a synchronous or asynchronous send that began at `now`
    /// (a clock read the caller shares with the send's time budget), with the recorder of
    /// the last topic remembered in `memo`: a message for the same topic skips the look-up
    /// of its recorder. End the send with [`Op::record_ended_memo`] on the same `memo`.
    pub(in crate::producer) fn begin_memo(
        &self,
        m: &Message,
        now: Instant,
        memo: &mut TopicMemo,
    ) -> Op {
        if !self.enabled {
            return Op(None);
        }
        let (t, _) = self.topic_memo(m.topic(), memo);
        self.start_on(t, 1, m.body().len() as u64, Some(now))
    }

    /// Starts counting an asynchronous send of a message or batch that began at `now`, with
    /// the recorder of the last topic remembered in `memo`: a message for the same topic
    /// skips the look-up of its recorder. Also tells whether `memo` now remembers the
    /// message's topic ([`TopicMemo::is_checked`] of it, known without comparing again).
    /// End the send with [`Op::record_ended_memo`] on the same `memo`.
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
                let (t, checked) = self.topic_memo(m.topic(), memo);
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
    /// broker as the last one skips the look-up of its recorder, and takes the count
    /// `spares` keeps on it (see [`TopicMemo`]). End the attempt with
    /// [`Attempt::end_as_memo`] on the same `spares`.
    pub(crate) fn attempt_memo(
        &self,
        prepared: &Prepared,
        broker: &Arc<str>,
        retry: bool,
        memo: &mut BrokerMemo,
        spares: &mut TopicMemo,
    ) -> Attempt {
        if !self.enabled {
            return Attempt(None);
        }
        let b = match memo.lend(broker, spares) {
            Some(b) => b,
            None => {
                let b = self.broker(broker);
                memo.remember(broker, &b);
                b
            }
        };
        self.attempt_on(prepared, b, retry)
    }

    fn attempt_on(&self, prepared: &Prepared, b: Arc<BrokerRecorder>, retry: bool) -> Attempt {
        let s = &b.start;
        s.attempts.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(prepared.size as u64, Ordering::Relaxed);
        if retry {
            s.retried.fetch_add(1, Ordering::Relaxed);
            self.topic(&prepared.topic)
                .start
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
///
/// It also keeps a second count on that recorder, lent to the send counted on it and given
/// back when the send ends ([`Op::record_ended_memo`]): a send to the remembered topic takes
/// no count of its own on the recorder (an atomic add on the sending thread and a subtract
/// where the send ends, usually another thread: the count's line would cross cores twice per
/// send). It keeps the count lent to the send's attempts on their broker's recorder too
/// ([`StatsRecorder::attempt_memo`], [`Attempt::end_as_memo`]): here, not in the
/// [`BrokerMemo`], an attempt's end writes only where its send's end writes anyway, and the
/// broker memo is only read per attempt. A clone remembers the same recorder, without
/// counts to lend.
#[derive(Default)]
pub(crate) struct TopicMemo {
    recorder: Option<Arc<TopicRecorder>>,
    /// A count on `recorder` to lend (none while lent).
    spare: Option<Arc<TopicRecorder>>,
    /// A count on the recorder of the broker last attempted on, to lend (none while lent).
    broker_spare: Option<Arc<BrokerRecorder>>,
}

impl Clone for TopicMemo {
    fn clone(&self) -> Self {
        TopicMemo {
            recorder: self.recorder.clone(),
            spare: None,
            broker_spare: None,
        }
    }
}

impl TopicMemo {
    /// Whether `topic` is the remembered topic: one that passed
    /// [`prepare::check_topic`] (only such topics get their own recorder), so it needs no
    /// second check.
    pub(crate) fn is_checked(&self, topic: &str) -> bool {
        self.recorder.as_ref().is_some_and(|t| *t.name == *topic)
    }

    /// A count on the remembered recorder if it is `topic`'s: the spare one, else a new one.
    #[inline]
    fn lend(&mut self, topic: &str) -> Option<Arc<TopicRecorder>> {
        let t = self.recorder.as_ref().filter(|t| *t.name == *topic)?;
        Some(match self.spare.take() {
            Some(spare) => spare,
            None => t.clone(),
        })
    }

    /// Remembers `recorder` (a tracked topic's) or nothing.
    fn remember(&mut self, recorder: Option<Arc<TopicRecorder>>) {
        self.spare = None;
        self.recorder = recorder;
    }

    /// Takes back `t`, a count lent (or any other count, dropped then).
    #[inline]
    fn give_back(&mut self, t: Arc<TopicRecorder>) {
        if self.spare.is_none() && self.recorder.as_ref().is_some_and(|r| Arc::ptr_eq(r, &t)) {
            self.spare = Some(t);
        }
    }
}

/// A caller's memory of the recorder of the last broker it counted an attempt on
/// ([`StatsRecorder::attempt_memo`]). Broker recorders are never removed, so the one
/// remembered for a name stays that name's. The count lent to an attempt is kept in the
/// caller's [`TopicMemo`].
#[derive(Clone, Default)]
pub(crate) struct BrokerMemo(Option<(Arc<str>, Arc<BrokerRecorder>)>);

impl BrokerMemo {
    /// A count on the remembered recorder if it is `broker`'s: the one `spares` keeps if it
    /// is on that recorder, else a new one.
    #[inline]
    fn lend(&mut self, broker: &Arc<str>, spares: &mut TopicMemo) -> Option<Arc<BrokerRecorder>> {
        let (name, b) = self.0.as_ref()?;
        if !(Arc::ptr_eq(name, broker) || **name == **broker) {
            return None;
        }
        Some(match spares.broker_spare.take() {
            Some(spare) if Arc::ptr_eq(&spare, b) => spare,
            _ => b.clone(),
        })
    }

    /// Remembers `b`, the recorder of `broker`.
    fn remember(&mut self, broker: &Arc<str>, b: &Arc<BrokerRecorder>) {
        self.0 = Some((broker.clone(), b.clone()));
    }
}

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
        drop(self.record_ended_taking(result, ended));
    }

    /// [`Op::record_ended`] for a send begun with `memo` ([`StatsRecorder::begin_prep_memo`],
    /// [`StatsRecorder::begin_memo`]): the count it took on its recorder goes back to `memo`
    /// for the next send (no count taken or dropped per send).
    #[inline]
    pub(crate) fn record_ended_memo(
        &mut self,
        result: &Result<SendResult>,
        ended: &Ended,
        memo: &mut TopicMemo,
    ) {
        if let Some(t) = self.record_ended_taking(result, ended) {
            memo.give_back(t);
        }
    }

    /// [`Op::record_ended`], handing back the count it held on its recorder (if it counted).
    #[inline]
    fn record_ended_taking(
        &mut self,
        result: &Result<SendResult>,
        ended: &Ended,
    ) -> Option<Arc<TopicRecorder>> {
        match result {
            Ok(r) => {
                if r.status != SendStatus::SendOk {
                    if let Some(s) = &self.0 {
                        s.topic.end.status_not_ok.fetch_add(1, Ordering::Relaxed);
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
            drop(self.finish_at(failed, &Ended::at(Instant::now())));
        }
    }

    /// Counts the end (only the end's counters, on their own lines: see [`TopicRecorder`]);
    /// hands back the count held on the recorder.
    fn finish_at(
        &mut self,
        failed: Option<ErrorKind>,
        ended: &Ended,
    ) -> Option<Arc<TopicRecorder>> {
        let s = self.0.take()?;
        let t = &s.topic;
        let e = &t.end;
        match failed {
            None => {
                if let Some(started) = s.started {
                    e.latency.record_us(ended.latency_us_since(started));
                }
                e.succeeded.fetch_add(1, Ordering::Release);
                e.rates.add(ended.second(t.epoch), OK);
            }
            Some(kind) => {
                if let Some(cell) = e.failed.get(kind.index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                e.rates.add(ended.second(t.epoch), FAILED);
            }
        }
        // Last, with release: a snapshot that sees these bytes ended sees them started.
        e.ended_bytes.fetch_add(s.bytes, Ordering::Release);
        Some(s.topic)
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
    pub(crate) fn end_as(self, ended: &Ended, result: &Result<SendResult>) {
        drop(self.end_taking(ended, result));
    }

    /// [`Attempt::end_as`] for an attempt begun with `spares` ([`StatsRecorder::attempt_memo`]):
    /// the count it took on its recorder goes back to `spares` for the next attempt.
    #[inline]
    pub(crate) fn end_as_memo(
        self,
        ended: &Ended,
        result: &Result<SendResult>,
        spares: &mut TopicMemo,
    ) {
        if let Some(b) = self.end_taking(ended, result) {
            if spares.broker_spare.is_none() {
                spares.broker_spare = Some(b);
            }
        }
    }

    /// Counts the end (only the end's counters, on their own lines: see [`TopicRecorder`]);
    /// hands back the count held on the recorder.
    // Always inlined: LLVM's choice flips with unrelated changes (the I/O thread's
    // `attempt_ended_at` then pays a call: +30 instructions per message).
    #[inline(always)]
    fn end_taking(
        mut self,
        ended: &Ended,
        result: &Result<SendResult>,
    ) -> Option<Arc<BrokerRecorder>> {
        let b = self.0.take()?;
        let e = &b.end;
        match result {
            Ok(r) => {
                e.latency.record_us(ended.latency_us);
                if r.status != SendStatus::SendOk {
                    e.status_not_ok.fetch_add(1, Ordering::Relaxed);
                }
                e.succeeded.fetch_add(1, Ordering::Release);
                e.rates.add(ended.second(b.epoch), OK);
            }
            Err(err) => {
                if let Some(cell) = e.failed.get(err.kind().index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                e.rates.add(ended.second(b.epoch), FAILED);
            }
        }
        Some(b)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            if let Some(cell) = b.end.failed.get(ErrorKind::Shutdown.index()) {
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

    /// A line-aligned address range of `v`: the 128-byte lines it touches.
    fn sent_ok(status: SendStatus) -> SendResult {
        SendResult {
            status,
            msg_id: "ID".into(),
            offset_msg_id: "X".into(),
            queue: crate::message::MessageQueue::new("T", "b", 0),
            queue_offset: 0,
            transaction_id: None,
            region_id: None,
            trace_on: false,
        }
    }

    fn lines_of<T>(v: &T) -> std::ops::Range<usize> {
        let start = v as *const T as usize;
        start / 128..(start + std::mem::size_of::<T>()).div_ceil(128)
    }

    fn test_config() -> crate::producer::ProducerConfig {
        crate::producer::ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap()
    }

    /// A prepared 5-byte message to topic `T` (id `ID`).
    fn prepared_t() -> Prepared {
        crate::producer::prepare::prepare_single(Message::new("T", "12345"), &test_config(), || {
            "ID".into()
        })
        .unwrap()
    }

    fn disjoint(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
        a.end <= b.start || b.end <= a.start
    }

    /// What a start writes and what an end writes never share a 128-byte line, nor with the
    /// read-only fields (name, epoch) the other side reads; the histograms' and rates'
    /// cells sit on lines of their own.
    #[test]
    fn starts_and_ends_write_separate_lines() {
        let s = StatsRecorder::new(true);
        let t = s.topic("T");
        let (start, end) = (lines_of(&*t.start), lines_of(&*t.end));
        assert!(disjoint(&start, &end), "{start:?} {end:?}");
        for read_only in [lines_of(&t.name), lines_of(&t.epoch)] {
            assert!(disjoint(&read_only, &start) && disjoint(&read_only, &end));
        }
        let b = s.broker("b");
        let (start, end) = (lines_of(&*b.start), lines_of(&*b.end));
        assert!(disjoint(&start, &end), "{start:?} {end:?}");
        assert!(disjoint(&lines_of(&b.epoch), &start) && disjoint(&lines_of(&b.epoch), &end));
        for r in [&t.end.rates, &b.end.rates] {
            assert_eq!(r.cells_address() % 128, 0);
        }
        for h in [&t.end.latency, &b.end.latency] {
            assert_eq!(h.buckets_address() % 128, 0);
        }
    }

    /// Sends counted through a topic memo and attempts through a broker memo, ended through
    /// it, take no count of their own on the recorders once the memo lends one: the counts
    /// on the recorders stay what they were after the first send, whatever the outcome.
    #[test]
    fn memo_sends_take_no_count_on_their_recorders() {
        let s = StatsRecorder::new(true);
        let prepared = prepared_t();
        let broker: Arc<str> = Arc::from("b");
        let mut topics = TopicMemo::default();
        let mut brokers = BrokerMemo::default();
        let mut counts = None;
        for i in 0..100 {
            let prep = Prep::Single(Message::new("T", "12345"));
            let now = Instant::now();
            let (mut op, checked) = s.begin_prep_memo(&prep, now, &mut topics);
            assert!(checked);
            let attempt = s.attempt_memo(&prepared, &broker, false, &mut brokers, &mut topics);
            let result = if i % 3 == 0 {
                shutdown_result()
            } else {
                Ok(sent_ok(SendStatus::SendOk))
            };
            let ended = Ended::new(now, Instant::now());
            attempt.end_as_memo(&ended, &result, &mut topics);
            op.record_ended_memo(&result, &ended, &mut topics);
            let now_counts = (
                Arc::strong_count(&s.topic("T")),
                Arc::strong_count(&s.broker("b")),
            );
            match counts {
                None => counts = Some(now_counts),
                Some(c) => assert_eq!(c, now_counts, "send {i}"),
            }
        }
        let snap = s.snapshot("c", "g", BackpressureView::default());
        let t = &snap.topics["T"];
        assert_eq!((t.sent, t.succeeded, t.failed), (100, 66, 34));
        assert_eq!((t.in_flight, t.in_flight_bytes, t.bytes), (0, 0, 500));
        assert_eq!(t.latency.count, 66);
        let b = &snap.brokers["b"];
        assert_eq!(
            (b.attempts, b.succeeded, b.failed, b.in_flight),
            (100, 66, 34, 0)
        );
        assert_eq!(b.latency.count, 66);
    }

    /// The memo path counts what the general path counts: a random mix of topics (tracked,
    /// invalid, one beyond the tracking limit), batches, brokers, outcomes, sends ended
    /// through another memo or dropped, memos cloned (a clone has no count to lend), on two
    /// recorders, one through memos and one through `begin`/`attempt`: their snapshots
    /// match, latencies too, but for rates (per elapsed second).
    #[test]
    fn memo_counts_match_the_general_path() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x57a7);
        let memo_side = StatsRecorder::new(true);
        let plain = StatsRecorder::new(true);
        let config = test_config();
        // Fill the tracking limit but for one topic, on both sides alike.
        for i in 0..MAX_TRACKED_TOPICS - 5 {
            for r in [&memo_side, &plain] {
                let _ = r
                    .begin(&Message::new(format!("F{i}"), "x"), false)
                    .end(shutdown_result());
            }
        }
        let topics = ["A", "B", "bad topic", "C", "Z1", "Z2"];
        let brokers: Vec<Arc<str>> = ["b1", "b2", "b3"].into_iter().map(Arc::from).collect();
        let mut memos = vec![(TopicMemo::default(), BrokerMemo::default()); 3];
        let mut open = Vec::new();
        for i in 0..3_000 {
            let m = rng.gen_range(0..memos.len());
            let topic = topics[rng.gen_range(0..topics.len())];
            let body = "x".repeat(rng.gen_range(0..20));
            let batch = rng.gen_ratio(1, 10);
            let prep = if batch {
                Prep::Batch(vec![
                    Message::new(topic, body.as_str()),
                    Message::new(topic, "yy"),
                ])
            } else {
                Prep::Single(Message::new(topic, body.as_str()))
            };
            let now = Instant::now();
            let (op, _) = memo_side.begin_prep_memo(&prep, now, &mut memos[m].0);
            // `begin`/`begin_batch` at the same start (its latency compared too).
            let plain_op = match &prep {
                Prep::Single(msg) => {
                    plain.start_at(Some(msg.topic()), 1, msg.body().len() as u64, Some(now))
                }
                Prep::Batch(msgs) => {
                    let bytes = msgs.iter().map(|m| m.body().len() as u64).sum();
                    plain.start_at(Some(topic), msgs.len() as u64, bytes, Some(now))
                }
            };
            let prepared = crate::producer::prepare::prepare_single(
                Message::new("T", format!("p{body}")),
                &config,
                || "ID".into(),
            )
            .unwrap();
            let broker = &brokers[rng.gen_range(0..brokers.len())];
            let retry = rng.gen_ratio(1, 4);
            let (topic_memo, broker_memo) = &mut memos[m];
            let attempt = memo_side.attempt_memo(&prepared, broker, retry, broker_memo, topic_memo);
            let plain_attempt = plain.attempt(&prepared, broker, retry);
            open.push((op, plain_op, attempt, plain_attempt, prepared, m));
            if rng.gen_ratio(1, 50) {
                memos.push(memos[m].clone());
            }
            // End some of the open sends, in any order, through any memo.
            while !open.is_empty() && (open.len() > 8 || rng.gen_bool(0.5)) {
                let k = rng.gen_range(0..open.len());
                let (mut op, mut plain_op, attempt, plain_attempt, _, m) = open.swap_remove(k);
                let m = if rng.gen_ratio(1, 10) {
                    rng.gen_range(0..memos.len())
                } else {
                    m
                };
                let result = match rng.gen_range(0..4) {
                    0 => shutdown_result(),
                    1 => Err(Error::InvalidMessage("x".into())),
                    2 => Ok(sent_ok(SendStatus::FlushDiskTimeout)),
                    _ => Ok(sent_ok(SendStatus::SendOk)),
                };
                let ended = Ended::new(now, Instant::now());
                if rng.gen_ratio(1, 20) {
                    drop((op, attempt));
                    drop((plain_op, plain_attempt));
                    continue;
                }
                attempt.end_as_memo(&ended, &result, &mut memos[m].0);
                plain_attempt.end_as(&ended, &result);
                op.record_ended_memo(&result, &ended, &mut memos[m].0);
                plain_op.record_ended(&result, &ended);
            }
            if i % 500 == 0 {
                assert_same(&memo_side, &plain);
            }
        }
        drop(open);
        assert_same(&memo_side, &plain);
    }

    /// The snapshots of `a` and `b` match, but for the times they were taken at and rates
    /// (per elapsed second): the first difference is reported by its path.
    fn assert_same(a: &StatsRecorder, b: &StatsRecorder) {
        fn diff(path: &str, a: &Value, b: &Value) -> Option<String> {
            match (a, b) {
                (Value::Object(x), Value::Object(y)) => {
                    if x.len() != y.len() {
                        return Some(format!("{path}: {} vs {} keys", x.len(), y.len()));
                    }
                    x.iter().find_map(|(k, v)| match k.as_str() {
                        "rates" | "uptime_ms" | "timestamp_ms" => None,
                        _ => match y.get(k) {
                            Some(w) => diff(&format!("{path}.{k}"), v, w),
                            None => Some(format!("{path}.{k} missing")),
                        },
                    })
                }
                _ if a == b => None,
                _ => Some(format!("{path}: {a} vs {b}")),
            }
        }
        let snap = |s: &StatsRecorder| s.snapshot("c", "g", BackpressureView::default()).to_json();
        if let Some(d) = diff("", &snap(a), &snap(b)) {
            panic!("memo path vs general path: {d}");
        }
    }

    /// Attempts counted through a memo land on their own broker's recorder, whatever the
    /// order of brokers.
    #[test]
    fn attempt_memo_counts_each_broker_on_its_own_recorder() {
        let s = StatsRecorder::new(true);
        let prepared = prepared_t();
        let names: Vec<Arc<str>> = ["a", "b", "a", "c"].into_iter().map(Arc::from).collect();
        let mut memo = BrokerMemo::default();
        let mut spares = TopicMemo::default();
        let mut expected = std::collections::BTreeMap::new();
        for (i, name) in names.iter().chain(names.iter().rev()).enumerate() {
            // A name in another string is the same broker.
            let name: Arc<str> = if i % 3 == 0 {
                Arc::from(&**name)
            } else {
                name.clone()
            };
            let attempt = s.attempt_memo(&prepared, &name, i % 2 == 1, &mut memo, &mut spares);
            let now = Instant::now();
            attempt.end(now, now, &Err(Error::Shutdown));
            *expected.entry(name.to_string()).or_insert(0u64) += 1;
        }
        for (name, n) in expected {
            let b = s.broker_recorder(&name).unwrap();
            assert_eq!(b.start.attempts.load(Ordering::Relaxed), n, "broker {name}");
        }
        let off = StatsRecorder::new(false);
        assert!(off
            .attempt_memo(&prepared, &names[0], false, &mut memo, &mut spares)
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
        assert_eq!(s.untracked.start.sent.load(Ordering::Relaxed), untracked);
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
