//! Statistics: what the producer sent, per producer, per topic and per broker, without any
//! metrics framework.
//!
//! [`Producer::stats`](crate::Producer::stats) returns a [`ProducerStats`] snapshot; its
//! [`to_json`](ProducerStats::to_json) gives a `serde_json::Value` with the field names listed
//! below, which are stable (new fields may be added; existing ones keep their name and meaning).
//! Statistics are on by default; [`ProducerConfigBuilder::stats(false)`] turns them off, and the
//! hooks on the send path then cost one branch each.
//!
//! [`ProducerConfigBuilder::stats(false)`]: crate::ProducerConfigBuilder::stats
//!
//! # What is counted
//!
//! A **send** is one call of a send method: `send`, `send_to_queue`, `send_with_selector`,
//! `send_batch`, `send_oneway` and their asynchronous forms (a batch is one send of several
//! messages). Every send ends exactly once, as **succeeded** (the broker stored it; for oneway
//! sends: the request was queued for the socket) or **failed** with an
//! [`ErrorKind`](crate::ErrorKind). So, for the producer and for each topic, at any moment:
//!
//! ```text
//! succeeded + failed + in_flight == sent        failed == sum of failed_by_kind
//! ```
//!
//! and a snapshot never shows `succeeded + failed > sent`, even while other threads send
//! (completions are read before `sent`, with acquire/release ordering).
//!
//! An **attempt** is one request to one broker; a send makes one attempt, plus one per retry.
//! Broker statistics count attempts: `attempts = succeeded + failed + in_flight` per broker.
//!
//! - `retried`: attempts after a send's first one (per topic: of that topic's sends; per broker:
//!   retries that went to that broker).
//! - `bytes`: per producer and topic, the message bodies as the caller gave them (before
//!   compression; the sum of bodies for a batch), counted when the send starts. Per broker, the
//!   bytes each attempt put on the wire (body after compression or batch encoding, properties
//!   and topic).
//! - `in_flight_bytes`: `bytes` of the sends that have not ended yet.
//! - `status_not_ok`: succeeded sends whose status was not `SEND_OK` (flush or replication
//!   timeouts, slave not available).
//! - `oneway`: oneway sends (also counted in `sent` and `succeeded`/`failed`).
//! - Backpressure waits (a send that found the producer full and waited for room) and the
//!   producer's in-flight totals as backpressure sees them are per producer only.
//!
//! A send rejected before its topic is known to be valid (a malformed topic name), or a send
//! to a topic beyond the first [`MAX_TRACKED_TOPICS`], is counted in the producer totals but
//! in no topic. Producer totals are the sums over topics (plus those), computed when the
//! snapshot is taken: the send path updates each counter once.
//!
//! # Latency
//!
//! Latencies are recorded for **successful** sends (from the send call to the result; oneway
//! sends have no result and are left out) and, per broker, for successful attempts (request
//! written to response read). Failures are counted by kind instead, so a burst of timeouts
//! does not hide in the percentiles, and immediate failures (refused connections) do not
//! flatter them.
//!
//! Each histogram is a [`LatencyHistogram`]: log-bucketed atomic counters in microseconds. A
//! percentile is exact in rank (nearest rank over the recorded samples) and reported as the
//! **upper bound** of the bucket the sample fell in, capped by the exact maximum: it is never
//! below the true value and at most `2^-5` (3.125 %) above it (exact below 32 µs). See
//! [`LatencyHistogram`] for the layout.
//!
//! # Rates
//!
//! Per-second buckets (a ring of 64 atomic cells per counter, each holding its second and its
//! count in one word) give rates of succeeded and failed sends (per broker: attempts) over the
//! last 1 s, 10 s and 60 s. The W-second rate is the count of the current, partial second and
//! of the W whole seconds before it, divided by the time those span (W seconds plus the part of
//! the current one; less while the producer is younger than that).
//!
//! # JSON schema (`"schema": "rocketmq-mio.stats/1"`)
//!
//! Times are integers in microseconds (`_us`) or milliseconds (`_ms`); rates are floats
//! (per second); counts are unsigned integers except `in_flight` and `in_flight_bytes`, which
//! are signed (they are never negative; a negative value would be a bug, shown rather than
//! wrapped).
//!
//! ```text
//! {
//!   "schema": "rocketmq-mio.stats/1",
//!   "enabled": bool,                 // false: statistics are off; every counter is zero
//!   "client_id": string, "group": string,
//!   "uptime_ms": int,                // since the producer started
//!   "timestamp_ms": int,             // Unix time of the snapshot
//!   "totals": SEND,                  // the whole producer
//!   "topics": { "<topic>": SEND, ... },
//!   "brokers": { "<broker name>": BROKER, ... },
//!   "backpressure": {
//!     "enabled": bool, "waits": int, "waiting": int,
//!     "in_flight": int, "in_flight_bytes": int,            // asynchronous sends holding room
//!     "max_in_flight": int|null, "max_in_flight_bytes": int|null
//!   },
//!   "transactions": null | {         // transaction producers only
//!     "committed": int, "rolled_back": int, "unknown": int, "checked": int,
//!     "check_overflow": int, "check_ignored": int, "end_failed": int
//!   }
//! }
//! SEND = {
//!   "sent": int, "succeeded": int, "failed": int,
//!   "failed_by_kind": { "connection": int, "timeout": int, "broker": int, "protocol": int,
//!                       "no_route": int, "invalid_message": int, "config": int,
//!                       "backpressure": int, "shutdown": int, "user": int },
//!   "retried": int, "oneway": int, "messages": int, "bytes": int, "status_not_ok": int,
//!   "in_flight": int, "in_flight_bytes": int,
//!   "latency_us": LATENCY, "rates": RATES
//! }
//! BROKER = {
//!   "attempts": int, "succeeded": int, "failed": int, "failed_by_kind": { ... as above },
//!   "retried": int, "bytes": int, "status_not_ok": int, "in_flight": int,
//!   "latency_us": LATENCY, "rates": RATES
//! }
//! LATENCY = { "count": int, "mean": int, "p50": int, "p90": int, "p99": int, "p999": int,
//!             "max": int }                                  // all 0 when count is 0
//! RATES = { "succeeded": { "1s": float, "10s": float, "60s": float },
//!           "failed":    { "1s": float, "10s": float, "60s": float } }
//! ```
//!
//! `failed_by_kind` always lists every kind of [`ErrorKind::ALL`](crate::ErrorKind::ALL),
//! under [`ErrorKind::as_str`](crate::ErrorKind::as_str).
//!
//! ```
//! use rocketmq_mio::testing::MockBroker;
//! use rocketmq_mio::{Message, Producer};
//!
//! let broker = MockBroker::start()?;
//! let producer = Producer::builder("GID_STATS_DOC").name_server(broker.namesrv_addr()).start()?;
//! producer.send(Message::new("orders", "hello"))?;
//! let stats = producer.stats();
//! assert_eq!(stats.totals.sent, 1);
//! assert_eq!(stats.topics["orders"].succeeded, 1);
//! assert_eq!(stats.to_json()["totals"]["bytes"], 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, SendResult, SendStatus};

use super::prepare::{self, Prepared};
pub use super::transaction::TransactionStats;

/// The schema tag of [`ProducerStats::to_json`].
pub const STATS_SCHEMA: &str = "rocketmq-mio.stats/1";

/// At most this many topics get their own statistics; sends to further topics count in the
/// producer totals only.
pub const MAX_TRACKED_TOPICS: usize = 1024;

const KINDS: usize = ErrorKind::ALL.len();

// ---------------------------------------------------------------------------------------------
// Histogram

/// Bits of linear sub-buckets per power of two.
pub const SUB_BUCKET_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BUCKET_BITS;
/// The largest power of two with its own buckets: values from `2^(MAX_EXPONENT + 1)` µs
/// (about 3.2 days) on share the last bucket.
const MAX_EXPONENT: u32 = 37;
const BUCKETS: usize = SUB + (MAX_EXPONENT - SUB_BUCKET_BITS + 1) as usize * SUB;

/// A lock-free latency histogram with log-linear buckets, in microseconds.
///
/// Values below 32 µs have one bucket each. Each power of two above, `[2^e, 2^(e+1))`, is cut
/// into 32 equal buckets of width `2^(e-5)`. A bucket's width is therefore at most `1/32` of
/// any value in it: reporting a bucket's upper bound overstates a value by less than 3.125 %,
/// and never understates it. 1 088 buckets cover up to `2^38` µs (about 3.2 days); larger
/// values share the last bucket, for which the exact maximum is reported.
///
/// Recording is three relaxed-or-release atomic operations (bucket, sum, and the maximum when
/// it grows); snapshots read every bucket and may run concurrently with recording.
///
/// ```
/// use std::time::Duration;
/// use rocketmq_mio::stats::LatencyHistogram;
///
/// let h = LatencyHistogram::new();
/// for ms in 1..=100 {
///     h.record(Duration::from_millis(ms));
/// }
/// let s = h.snapshot();
/// assert_eq!(s.count, 100);
/// assert_eq!(s.max, Duration::from_millis(100));
/// // The 50th sample is 50 ms; the report is at most 3.125 % above it.
/// assert!(s.p50 >= Duration::from_millis(50) && s.p50 <= Duration::from_micros(51_563));
/// ```
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

/// The bucket of a value in microseconds.
fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros();
    if e > MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let shift = e - SUB_BUCKET_BITS;
    let sub = ((us >> shift) as usize) & (SUB - 1);
    SUB + shift as usize * SUB + sub
}

/// The largest value in microseconds that falls in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let j = i - SUB;
    let shift = (j / SUB) as u32;
    let sub = (j % SUB) as u64;
    ((SUB as u64 + sub) << shift) + (1u64 << shift) - 1
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A histogram's raw contents, summed across histograms for totals.
#[derive(Clone)]
struct RawHistogram {
    counts: Vec<u64>,
    sum_us: u64,
    max_us: u64,
}

impl RawHistogram {
    fn empty() -> Self {
        RawHistogram {
            counts: vec![0; BUCKETS],
            sum_us: 0,
            max_us: 0,
        }
    }

    fn add(&mut self, other: &RawHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    fn stats(&self) -> LatencyStats {
        let count: u64 = self.counts.iter().sum();
        if count == 0 {
            return LatencyStats::default();
        }
        let at = |num: u64, den: u64| -> Duration {
            // Nearest rank: the smallest sample with at least num/den of the samples at or
            // below it.
            let rank = ((u128::from(count) * u128::from(num)).div_ceil(u128::from(den))).max(1);
            let mut seen = 0u128;
            for (i, c) in self.counts.iter().enumerate() {
                seen += u128::from(*c);
                if seen >= rank {
                    let high = if i == BUCKETS - 1 {
                        self.max_us
                    } else {
                        bucket_high(i)
                    };
                    return Duration::from_micros(high.min(self.max_us));
                }
            }
            Duration::from_micros(self.max_us)
        };
        LatencyStats {
            count,
            mean: Duration::from_micros(self.sum_us / count),
            p50: at(50, 100),
            p90: at(90, 100),
            p99: at(99, 100),
            p999: at(999, 1000),
            max: Duration::from_micros(self.max_us),
        }
    }
}

impl LatencyHistogram {
    /// An empty histogram (about 8.7 KiB).
    pub fn new() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    /// Records one latency (truncated to whole microseconds).
    pub fn record(&self, latency: Duration) {
        self.record_us(micros(latency));
    }

    /// Records one latency in microseconds.
    pub fn record_us(&self, us: u64) {
        // Maximum and sum first, bucket last with release: a snapshot that sees the bucket
        // increment (acquire) also sees the maximum, so no percentile exceeds it.
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(us, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(b) = self.buckets.get(bucket_of(us)) {
            b.fetch_add(1, Ordering::Release);
        }
    }

    fn raw(&self) -> RawHistogram {
        let counts = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Acquire))
            .collect();
        RawHistogram {
            counts,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }

    /// Count, mean, percentiles and maximum of what was recorded so far.
    pub fn snapshot(&self) -> LatencyStats {
        self.raw().stats()
    }
}

/// Percentiles of a [`LatencyHistogram`]. Each percentile is the upper bound of the bucket
/// holding the nearest-rank sample, capped by `max`: at most 3.125 % above the true value,
/// never below it. All zero when `count` is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Samples recorded.
    pub count: u64,
    /// Arithmetic mean (exact, to the microsecond).
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample (exact, to the microsecond).
    pub max: Duration,
}

impl LatencyStats {
    /// `{"count", "mean", "p50", "p90", "p99", "p999", "max"}`, times in microseconds.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "mean": micros(self.mean),
            "p50": micros(self.p50),
            "p90": micros(self.p90),
            "p99": micros(self.p99),
            "p999": micros(self.p999),
            "max": micros(self.max),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rates

const RATE_SLOTS: usize = 64;
const RATE_WINDOWS: [u64; 3] = [1, 10, 60];
const OK: usize = 0;
const FAILED: usize = 1;

/// Per-second counts of successes and failures: each cell holds `second << 32 | count`, so a
/// cell is reset and counted in one compare-and-swap.
struct RateRing {
    slots: Box<[[AtomicU64; 2]]>,
}

impl RateRing {
    fn new() -> Self {
        RateRing {
            slots: (0..RATE_SLOTS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        }
    }

    fn add(&self, sec: u64, which: usize) {
        let Some(cell) = self
            .slots
            .get(sec as usize % RATE_SLOTS)
            .and_then(|s| s.get(which))
        else {
            return;
        };
        let tag = sec & 0xffff_ffff;
        let mut cur = cell.load(Ordering::Relaxed);
        loop {
            let new = if cur >> 32 == tag {
                if cur & 0xffff_ffff == 0xffff_ffff {
                    return;
                }
                cur + 1
            } else if cur >> 32 > tag {
                // A newer second already owns the cell (this thread was delayed by a minute).
                return;
            } else {
                (tag << 32) | 1
            };
            match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Counts per window (1 s, 10 s, 60 s) of successes and failures, as of second `cur`.
    fn windows(&self, cur: u64) -> RawRates {
        let mut out = [[0u64; 3]; 2];
        for (which, row) in out.iter_mut().enumerate() {
            for (w, slot) in RATE_WINDOWS.iter().zip(row.iter_mut()) {
                let first = cur.saturating_sub(*w);
                for sec in first..=cur {
                    let Some(cell) = self
                        .slots
                        .get(sec as usize % RATE_SLOTS)
                        .and_then(|s| s.get(which))
                    else {
                        continue;
                    };
                    let v = cell.load(Ordering::Relaxed);
                    if v >> 32 == sec & 0xffff_ffff {
                        *slot += v & 0xffff_ffff;
                    }
                }
            }
        }
        RawRates(out)
    }
}

#[derive(Clone, Copy, Default)]
struct RawRates([[u64; 3]; 2]);

impl RawRates {
    fn add(&mut self, other: &RawRates) {
        for (a, b) in self.0.iter_mut().flatten().zip(other.0.iter().flatten()) {
            *a += b;
        }
    }

    /// Rates, `elapsed` being the time since the epoch of the buckets.
    fn rates(&self, elapsed: Duration) -> Rates {
        let now = elapsed.as_secs_f64();
        let cur = elapsed.as_secs();
        let per_sec = |count: u64, w: u64| {
            let span = now - cur.saturating_sub(w) as f64;
            if count == 0 || span <= 0.0 {
                0.0
            } else {
                count as f64 / span.max(0.001)
            }
        };
        let windows = |row: &[u64; 3]| RateWindows {
            last_1s: per_sec(row[0], RATE_WINDOWS[0]),
            last_10s: per_sec(row[1], RATE_WINDOWS[1]),
            last_60s: per_sec(row[2], RATE_WINDOWS[2]),
        };
        Rates {
            succeeded: windows(&self.0[OK]),
            failed: windows(&self.0[FAILED]),
        }
    }
}

/// Events per second over three windows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct RateWindows {
    /// Over about the last second.
    pub last_1s: f64,
    /// Over about the last 10 seconds.
    pub last_10s: f64,
    /// Over about the last 60 seconds.
    pub last_60s: f64,
}

impl RateWindows {
    /// `{"1s", "10s", "60s"}`.
    pub fn to_json(&self) -> Value {
        json!({ "1s": self.last_1s, "10s": self.last_10s, "60s": self.last_60s })
    }
}

/// Rates of succeeded and failed sends (per broker: attempts); see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Rates {
    /// Succeeded per second.
    pub succeeded: RateWindows,
    /// Failed per second.
    pub failed: RateWindows,
}

impl Rates {
    /// `{"succeeded": {...}, "failed": {...}}`.
    pub fn to_json(&self) -> Value {
        json!({ "succeeded": self.succeeded.to_json(), "failed": self.failed.to_json() })
    }
}

// ---------------------------------------------------------------------------------------------
// Recorders (the live, atomic side)

fn atomic_kinds() -> [AtomicU64; KINDS] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The live counters of one topic (or of the sends no topic tracks).
pub(crate) struct TopicRecorder {
    epoch: Instant,
    // Touched when a send starts.
    sent: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    oneway: AtomicU64,
    in_flight_bytes: AtomicI64,
    // Touched when it ends.
    succeeded: AtomicU64,
    failed: [AtomicU64; KINDS],
    status_not_ok: AtomicU64,
    // Touched on retries.
    retried: AtomicU64,
    latency: LatencyHistogram,
    rates: RateRing,
}

impl TopicRecorder {
    fn new(epoch: Instant) -> Self {
        TopicRecorder {
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

    fn raw(&self, cur_sec: u64) -> RawSend {
        // Completions first (acquire), `sent` after: every completion seen has its start seen.
        let succeeded = self.succeeded.load(Ordering::Acquire);
        let failed = std::array::from_fn(|i| self.failed[i].load(Ordering::Acquire));
        let in_flight_bytes = self.in_flight_bytes.load(Ordering::Acquire);
        RawSend {
            sent: self.sent.load(Ordering::Acquire),
            succeeded,
            failed,
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            oneway: self.oneway.load(Ordering::Relaxed),
            in_flight_bytes,
            status_not_ok: self.status_not_ok.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            latency: self.latency.raw(),
            rates: self.rates.windows(cur_sec),
        }
    }
}

/// The live counters of one broker (attempts).
pub(crate) struct BrokerRecorder {
    epoch: Instant,
    attempts: AtomicU64,
    bytes: AtomicU64,
    retried: AtomicU64,
    succeeded: AtomicU64,
    failed: [AtomicU64; KINDS],
    status_not_ok: AtomicU64,
    latency: LatencyHistogram,
    rates: RateRing,
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

    fn stats(&self, cur_sec: u64, elapsed: Duration) -> BrokerStats {
        let succeeded = self.succeeded.load(Ordering::Acquire);
        let failed: [u64; KINDS] = std::array::from_fn(|i| self.failed[i].load(Ordering::Acquire));
        let attempts = self.attempts.load(Ordering::Acquire);
        let failed_total: u64 = failed.iter().sum();
        BrokerStats {
            attempts,
            succeeded,
            failed: failed_total,
            failed_by_kind: kinds_map(&failed),
            retried: self.retried.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            status_not_ok: self.status_not_ok.load(Ordering::Relaxed),
            in_flight: attempts as i64 - succeeded as i64 - failed_total as i64,
            latency: self.latency.snapshot(),
            rates: self.rates.windows(cur_sec).rates(elapsed),
        }
    }

    /// In-flight attempts and latency percentiles, for the health report.
    pub(crate) fn in_flight_and_latency(&self) -> (i64, LatencyStats) {
        let succeeded = self.succeeded.load(Ordering::Acquire);
        let failed: u64 = self.failed.iter().map(|f| f.load(Ordering::Acquire)).sum();
        let attempts = self.attempts.load(Ordering::Acquire);
        (
            attempts as i64 - succeeded as i64 - failed as i64,
            self.latency.snapshot(),
        )
    }
}

fn kinds_map(failed: &[u64; KINDS]) -> BTreeMap<ErrorKind, u64> {
    ErrorKind::ALL
        .iter()
        .map(|k| (*k, failed.get(k.index()).copied().unwrap_or(0)))
        .collect()
}

fn kinds_json(map: &BTreeMap<ErrorKind, u64>) -> Value {
    let mut m = Map::new();
    for k in ErrorKind::ALL {
        m.insert(
            k.as_str().to_string(),
            json!(map.get(&k).copied().unwrap_or(0)),
        );
    }
    Value::Object(m)
}

/// Raw counters of a topic, summed for the totals.
#[derive(Clone)]
struct RawSend {
    sent: u64,
    succeeded: u64,
    failed: [u64; KINDS],
    messages: u64,
    bytes: u64,
    oneway: u64,
    in_flight_bytes: i64,
    status_not_ok: u64,
    retried: u64,
    latency: RawHistogram,
    rates: RawRates,
}

impl RawSend {
    fn empty() -> Self {
        RawSend {
            sent: 0,
            succeeded: 0,
            failed: [0; KINDS],
            messages: 0,
            bytes: 0,
            oneway: 0,
            in_flight_bytes: 0,
            status_not_ok: 0,
            retried: 0,
            latency: RawHistogram::empty(),
            rates: RawRates::default(),
        }
    }

    fn add(&mut self, o: &RawSend) {
        self.sent += o.sent;
        self.succeeded += o.succeeded;
        for (a, b) in self.failed.iter_mut().zip(&o.failed) {
            *a += b;
        }
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.oneway += o.oneway;
        self.in_flight_bytes += o.in_flight_bytes;
        self.status_not_ok += o.status_not_ok;
        self.retried += o.retried;
        self.latency.add(&o.latency);
        self.rates.add(&o.rates);
    }

    fn stats(&self, elapsed: Duration) -> SendStats {
        let failed: u64 = self.failed.iter().sum();
        SendStats {
            sent: self.sent,
            succeeded: self.succeeded,
            failed,
            failed_by_kind: kinds_map(&self.failed),
            retried: self.retried,
            oneway: self.oneway,
            messages: self.messages,
            bytes: self.bytes,
            status_not_ok: self.status_not_ok,
            in_flight: self.sent as i64 - self.succeeded as i64 - failed as i64,
            in_flight_bytes: self.in_flight_bytes,
            latency: self.latency.stats(),
            rates: self.rates.rates(elapsed),
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

    fn stats(&self) -> Option<TransactionStats> {
        self.source.get().map(|f| f())
    }
}

/// Backpressure's view, for the snapshot (filled by the producer).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackpressureView {
    pub(crate) enabled: bool,
    pub(crate) waits: u64,
    pub(crate) waiting: usize,
    pub(crate) in_flight: usize,
    pub(crate) in_flight_bytes: usize,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) max_in_flight_bytes: Option<usize>,
}

/// All statistics of one producer.
pub(crate) struct StatsRecorder {
    enabled: bool,
    epoch: Instant,
    topics: RwLock<HashMap<String, Arc<TopicRecorder>>>,
    /// Sends with no valid topic, or beyond [`MAX_TRACKED_TOPICS`].
    untracked: Arc<TopicRecorder>,
    brokers: RwLock<HashMap<String, Arc<BrokerRecorder>>>,
    transactions: TransactionCounters,
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
            topics: RwLock::new(HashMap::new()),
            untracked: Arc::new(TopicRecorder::new(epoch)),
            brokers: RwLock::new(HashMap::new()),
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
        let t = Arc::new(TopicRecorder::new(self.epoch));
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
        let t = match topic {
            Some(name) => self.topic(name),
            None => self.untracked.clone(),
        };
        t.sent.fetch_add(1, Ordering::Relaxed);
        t.messages.fetch_add(messages, Ordering::Relaxed);
        t.bytes.fetch_add(bytes, Ordering::Relaxed);
        t.in_flight_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
        if oneway {
            t.oneway.fetch_add(1, Ordering::Relaxed);
        }
        Op(Some(OpState {
            topic: t,
            // Oneway sends record no latency: no clock read.
            started: if oneway { None } else { Some(Instant::now()) },
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
        if !self.enabled {
            return Op(None);
        }
        let bytes = msgs.iter().map(|m| m.body().len() as u64).sum();
        self.start(
            msgs.first().map(Message::topic),
            msgs.len() as u64,
            bytes,
            false,
        )
    }

    /// Starts counting an asynchronous send of a message or batch.
    pub(super) fn begin_prep(&self, prep: &super::Prep) -> Op {
        match prep {
            super::Prep::Single(m) => self.begin(m, false),
            super::Prep::Batch(ms) => self.begin_batch(ms),
        }
    }

    /// Starts counting an attempt of `prepared` on `broker`; `retry` if it is not the send's
    /// first attempt.
    pub(crate) fn attempt(&self, prepared: &Prepared, broker: &str, retry: bool) -> Attempt {
        if !self.enabled {
            return Attempt(None);
        }
        let b = self.broker(broker);
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

    /// A snapshot; `backpressure` comes from the producer's in-flight tracker.
    pub(crate) fn snapshot(
        &self,
        client_id: &str,
        group: &str,
        backpressure: BackpressureView,
    ) -> ProducerStats {
        let elapsed = self.epoch.elapsed();
        let cur = elapsed.as_secs();
        let mut totals = RawSend::empty();
        let mut topics = BTreeMap::new();
        let mut brokers = BTreeMap::new();
        if self.enabled {
            let live: Vec<(String, Arc<TopicRecorder>)> = self
                .topics
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, t) in live {
                let raw = t.raw(cur);
                totals.add(&raw);
                topics.insert(name, raw.stats(elapsed));
            }
            totals.add(&self.untracked.raw(cur));
            let live: Vec<(String, Arc<BrokerRecorder>)> = self
                .brokers
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, b) in live {
                brokers.insert(name, b.stats(cur, elapsed));
            }
        }
        ProducerStats {
            enabled: self.enabled,
            client_id: client_id.to_string(),
            group: group.to_string(),
            uptime: elapsed,
            timestamp_ms: unix_ms(),
            totals: totals.stats(elapsed),
            topics,
            brokers,
            backpressure: BackpressureStats {
                enabled: backpressure.enabled,
                waits: backpressure.waits,
                waiting: backpressure.waiting,
                in_flight: backpressure.in_flight,
                in_flight_bytes: backpressure.in_flight_bytes,
                max_in_flight: backpressure.max_in_flight,
                max_in_flight_bytes: backpressure.max_in_flight_bytes,
            },
            transactions: self.transactions.stats(),
        }
    }
}

impl super::Inner {
    /// The statistics snapshot (see [`crate::Producer::stats`]).
    pub(crate) fn stats_snapshot(&self) -> ProducerStats {
        let (in_flight, in_flight_bytes, waiting, waits) = self.in_flight.stats();
        let limits = self.in_flight.limits();
        self.stats.snapshot(
            &self.client_id,
            self.config.group(),
            BackpressureView {
                enabled: limits.is_some(),
                waits,
                waiting,
                in_flight,
                in_flight_bytes,
                max_in_flight: limits.map(|l| l.0),
                max_in_flight_bytes: limits.map(|l| l.1),
            },
        )
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn second_of(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_secs()
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
        match result {
            Ok(r) => {
                if r.status != SendStatus::SendOk {
                    if let Some(s) = &self.0 {
                        s.topic.status_not_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.finish(None)
            }
            Err(e) => self.finish(Some(e.kind())),
        }
    }

    /// Records a failure of `kind`; later calls do nothing.
    pub(crate) fn fail(&mut self, e: &Error) {
        self.finish(Some(e.kind()));
    }

    fn finish(&mut self, failed: Option<ErrorKind>) {
        let Some(s) = self.0.take() else {
            return;
        };
        let t = &s.topic;
        let now = Instant::now();
        match failed {
            None => {
                if let Some(started) = s.started {
                    t.latency.record(now.saturating_duration_since(started));
                }
                t.succeeded.fetch_add(1, Ordering::Release);
                t.rates.add(second_of(t.epoch, now), OK);
            }
            Some(kind) => {
                if let Some(cell) = t.failed.get(kind.index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                t.rates.add(second_of(t.epoch, now), FAILED);
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
    /// Records the attempt's result; `started` is when its request was handed to the client.
    pub(crate) fn end(mut self, started: Instant, result: &Result<SendResult>) {
        let Some(b) = self.0.take() else {
            return;
        };
        let now = Instant::now();
        match result {
            Ok(r) => {
                b.latency.record(now.saturating_duration_since(started));
                if r.status != SendStatus::SendOk {
                    b.status_not_ok.fetch_add(1, Ordering::Relaxed);
                }
                b.succeeded.fetch_add(1, Ordering::Release);
                b.rates.add(second_of(b.epoch, now), OK);
            }
            Err(e) => {
                if let Some(cell) = b.failed.get(e.kind().index()) {
                    cell.fetch_add(1, Ordering::Release);
                }
                b.rates.add(second_of(b.epoch, now), FAILED);
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

// ---------------------------------------------------------------------------------------------
// Snapshots

/// Send counters of the producer or of one topic; see the module docs for each field's meaning.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SendStats {
    /// Sends started.
    pub sent: u64,
    /// Sends that ended well.
    pub succeeded: u64,
    /// Sends that failed (the sum of `failed_by_kind`).
    pub failed: u64,
    /// Failed sends by error kind; every kind of [`ErrorKind::ALL`] is present.
    pub failed_by_kind: BTreeMap<ErrorKind, u64>,
    /// Attempts after a send's first one.
    pub retried: u64,
    /// Oneway sends (included in `sent`).
    pub oneway: u64,
    /// Messages in the sends started (a batch counts each of its messages).
    pub messages: u64,
    /// Body bytes of the sends started, as given (before compression).
    pub bytes: u64,
    /// Succeeded sends whose status was not `SEND_OK`.
    pub status_not_ok: u64,
    /// Sends started and not ended: `sent - succeeded - failed`. Never negative.
    pub in_flight: i64,
    /// `bytes` of the sends in flight. Never negative.
    pub in_flight_bytes: i64,
    /// Latency of successful sends, send call to result (oneway sends excluded).
    pub latency: LatencyStats,
    /// Succeeded and failed sends per second.
    pub rates: Rates,
}

impl SendStats {
    /// Failed sends of `kind`.
    pub fn failed_of(&self, kind: ErrorKind) -> u64 {
        self.failed_by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// The `SEND` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_by_kind": kinds_json(&self.failed_by_kind),
            "retried": self.retried,
            "oneway": self.oneway,
            "messages": self.messages,
            "bytes": self.bytes,
            "status_not_ok": self.status_not_ok,
            "in_flight": self.in_flight,
            "in_flight_bytes": self.in_flight_bytes,
            "latency_us": self.latency.to_json(),
            "rates": self.rates.to_json(),
        })
    }
}

/// Attempt counters of one broker; see the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Attempts started on this broker.
    pub attempts: u64,
    /// Attempts that got a successful result.
    pub succeeded: u64,
    /// Attempts that failed (the sum of `failed_by_kind`).
    pub failed: u64,
    /// Failed attempts by error kind; every kind of [`ErrorKind::ALL`] is present.
    pub failed_by_kind: BTreeMap<ErrorKind, u64>,
    /// Attempts here that retried a send whose earlier attempt failed.
    pub retried: u64,
    /// Bytes the attempts put on the wire (body as sent, properties, topic).
    pub bytes: u64,
    /// Successful attempts whose status was not `SEND_OK`.
    pub status_not_ok: u64,
    /// Attempts started and not ended. Never negative.
    pub in_flight: i64,
    /// Latency of successful attempts.
    pub latency: LatencyStats,
    /// Succeeded and failed attempts per second.
    pub rates: Rates,
}

impl BrokerStats {
    /// Failed attempts of `kind`.
    pub fn failed_of(&self, kind: ErrorKind) -> u64 {
        self.failed_by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// The `BROKER` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_by_kind": kinds_json(&self.failed_by_kind),
            "retried": self.retried,
            "bytes": self.bytes,
            "status_not_ok": self.status_not_ok,
            "in_flight": self.in_flight,
            "latency_us": self.latency.to_json(),
            "rates": self.rates.to_json(),
        })
    }
}

/// The producer's backpressure: how often sends waited, and what holds room now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackpressureStats {
    /// Whether asynchronous sends are bounded.
    pub enabled: bool,
    /// Sends that found the producer full and waited (those that gave up are also counted as
    /// failed with kind `backpressure`).
    pub waits: u64,
    /// Callers waiting now.
    pub waiting: usize,
    /// Asynchronous sends holding room now.
    pub in_flight: usize,
    /// Bytes they hold (as prepared for the wire).
    pub in_flight_bytes: usize,
    /// The bound on `in_flight`, when enabled.
    pub max_in_flight: Option<usize>,
    /// The bound on `in_flight_bytes`, when enabled.
    pub max_in_flight_bytes: Option<usize>,
}

impl BackpressureStats {
    /// The `backpressure` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "enabled": self.enabled,
            "waits": self.waits,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "in_flight_bytes": self.in_flight_bytes,
            "max_in_flight": self.max_in_flight,
            "max_in_flight_bytes": self.max_in_flight_bytes,
        })
    }
}

/// A snapshot of a producer's statistics; see the module docs for the definitions and the JSON
/// schema.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Whether statistics are kept (if not, every counter is zero).
    pub enabled: bool,
    /// The producer's client id.
    pub client_id: String,
    /// The producer group.
    pub group: String,
    /// Time since the producer started.
    pub uptime: Duration,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The whole producer.
    pub totals: SendStats,
    /// Per topic (as the caller names it, without namespace).
    pub topics: BTreeMap<String, SendStats>,
    /// Per broker name.
    pub brokers: BTreeMap<String, BrokerStats>,
    /// Backpressure.
    pub backpressure: BackpressureStats,
    /// Transaction counters; `Some` for transaction producers.
    pub transactions: Option<TransactionStats>,
}

impl ProducerStats {
    /// The snapshot as JSON, with the stable field names of the module docs' schema.
    pub fn to_json(&self) -> Value {
        let topics: Map<String, Value> = self
            .topics
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        let brokers: Map<String, Value> = self
            .brokers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        json!({
            "schema": STATS_SCHEMA,
            "enabled": self.enabled,
            "client_id": self.client_id,
            "group": self.group,
            "uptime_ms": u64::try_from(self.uptime.as_millis()).unwrap_or(u64::MAX),
            "timestamp_ms": self.timestamp_ms,
            "totals": self.totals.to_json(),
            "topics": topics,
            "brokers": brokers,
            "backpressure": self.backpressure.to_json(),
            "transactions": self.transactions.as_ref().map(TransactionStats::to_json),
        })
    }
}

impl fmt::Display for ProducerStats {
    /// A short human summary: totals, then one line per topic and per broker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return f.write_str("statistics are off");
        }
        let line = |f: &mut fmt::Formatter<'_>, name: &str, s: &SendStats| {
            writeln!(
                f,
                "{name}: sent {} ok {} failed {} retried {} in flight {} | {:.1}/s (10 s) | \
                 p50 {:?} p99 {:?} max {:?}",
                s.sent,
                s.succeeded,
                s.failed,
                s.retried,
                s.in_flight,
                s.rates.succeeded.last_10s,
                s.latency.p50,
                s.latency.p99,
                s.latency.max
            )
        };
        line(f, "total", &self.totals)?;
        for (name, s) in &self.topics {
            line(f, &format!("topic {name}"), s)?;
        }
        for (name, b) in &self.brokers {
            writeln!(
                f,
                "broker {name}: attempts {} ok {} failed {} in flight {} | p50 {:?} p99 {:?}",
                b.attempts, b.succeeded, b.failed, b.in_flight, b.latency.p50, b.latency.p99
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in (0..5000u64).chain([1 << 20, (1 << 30) + 7, (1 << 38) - 1, 1 << 38, u64::MAX]) {
            let b = bucket_of(us);
            assert!(b < BUCKETS, "{us}");
            assert!(b >= last, "monotonic at {us}");
            last = b;
            if b < BUCKETS - 1 {
                let high = bucket_high(b);
                assert!(high >= us, "{us} above its bucket's high {high}");
                // The error bound: high overstates by less than 1/32.
                assert!((high - us) * 32 < us.max(1) || high == us, "{us} -> {high}");
                // The previous bucket ends just below.
                if b > 0 {
                    assert!(bucket_high(b - 1) < us);
                }
            }
        }
        assert_eq!(bucket_high(BUCKETS - 2) + 1, 63u64 << 32);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn every_bucket_high_maps_back_to_its_bucket() {
        for i in 0..BUCKETS {
            assert_eq!(bucket_of(bucket_high(i)), i, "bucket {i}");
            if i > 0 {
                assert_eq!(bucket_of(bucket_high(i - 1) + 1), i, "start of bucket {i}");
            }
        }
    }

    #[test]
    fn percentiles_nearest_rank_with_error_bound() {
        let h = LatencyHistogram::new();
        assert_eq!(h.snapshot(), LatencyStats::default());
        for us in 1..=1000u64 {
            h.record_us(us * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_millis(1000));
        assert_eq!(s.mean, Duration::from_micros(500_500));
        for (got, want_ms) in [(s.p50, 500u64), (s.p90, 900), (s.p99, 990), (s.p999, 999)] {
            let want = want_ms * 1000;
            let got = micros(got);
            assert!(got >= want && (got - want) * 32 < want, "{got} vs {want}");
        }
        // Small values are exact.
        let h = LatencyHistogram::new();
        for us in [3, 3, 3, 7] {
            h.record_us(us);
        }
        let s = h.snapshot();
        assert_eq!(
            (s.p50, s.p99, s.max),
            (
                Duration::from_micros(3),
                Duration::from_micros(7),
                Duration::from_micros(7)
            )
        );
    }

    #[test]
    fn huge_values_saturate_and_report_the_max() {
        let h = LatencyHistogram::new();
        h.record(Duration::from_secs(400_000));
        let s = h.snapshot();
        assert_eq!(s.p50, Duration::from_secs(400_000));
        assert_eq!(s.max, Duration::from_secs(400_000));
    }

    #[test]
    fn rates_count_per_second_and_windows() {
        let r = RateRing::new();
        // 5 events in second 0, 10 in second 3, 2 failures in second 3.
        for _ in 0..5 {
            r.add(0, OK);
        }
        for _ in 0..10 {
            r.add(3, OK);
        }
        r.add(3, FAILED);
        r.add(3, FAILED);
        let raw = r.windows(3);
        assert_eq!(raw.0[OK], [10, 15, 15]);
        assert_eq!(raw.0[FAILED], [2, 2, 2]);
        // At t = 3.5 s: the 1 s window spans 2.5..3.5 (1.5 s), the others 3.5 s.
        let rates = raw.rates(Duration::from_millis(3500));
        assert!((rates.succeeded.last_1s - 10.0 / 1.5).abs() < 1e-9);
        assert!((rates.succeeded.last_10s - 15.0 / 3.5).abs() < 1e-9);
        // A minute later the ring slot of second 3 is reused for second 67.
        r.add(67, OK);
        assert_eq!(r.windows(67).0[OK], [1, 1, 1]);
        // An old second never overwrites a newer one in its slot.
        r.add(3, OK);
        assert_eq!(r.windows(67).0[OK], [1, 1, 1]);
    }

    fn shutdown_result() -> Result<SendResult> {
        Err(Error::Shutdown)
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
