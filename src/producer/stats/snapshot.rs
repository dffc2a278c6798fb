//! Snapshots: the live counters read into [`ProducerStats`], [`SendStats`], [`BrokerStats`] and
//! [`BackpressureStats`], per-topic counters summed into the producer's totals.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::histogram::{LatencyStats, RawHistogram};
use super::rates::{Rates, RawRates};
use super::recorder::{BrokerRecorder, StatsRecorder, TopicRecorder};
use super::{TransactionStats, KINDS};
use crate::error::ErrorKind;

impl TopicRecorder {
    fn raw(&self, cur_sec: u64) -> RawSend {
        // Completions first (acquire), starts after: every completion seen has its start
        // seen (its `sent` and its bytes).
        let e = &self.end;
        let succeeded = e.succeeded.load(Ordering::Acquire);
        let failed = std::array::from_fn(|i| e.failed[i].load(Ordering::Acquire));
        let ended_bytes = e.ended_bytes.load(Ordering::Acquire);
        let s = &self.start;
        let sent = s.sent.load(Ordering::Acquire);
        let bytes = s.bytes.load(Ordering::Acquire);
        RawSend {
            sent,
            succeeded,
            failed,
            messages: s.messages.load(Ordering::Relaxed),
            bytes,
            oneway: s.oneway.load(Ordering::Relaxed),
            in_flight_bytes: bytes as i64 - ended_bytes as i64,
            status_not_ok: e.status_not_ok.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            latency: e.latency.raw(),
            rates: e.rates.windows(cur_sec),
        }
    }
}

impl BrokerRecorder {
    fn stats(&self, cur_sec: u64, elapsed: Duration) -> BrokerStats {
        let e = &self.end;
        let succeeded = e.succeeded.load(Ordering::Acquire);
        let failed: [u64; KINDS] = std::array::from_fn(|i| e.failed[i].load(Ordering::Acquire));
        let attempts = self.start.attempts.load(Ordering::Acquire);
        let failed_total: u64 = failed.iter().sum();
        BrokerStats {
            attempts,
            succeeded,
            failed: failed_total,
            failed_by_kind: kinds_map(&failed),
            retried: self.start.retried.load(Ordering::Relaxed),
            bytes: self.start.bytes.load(Ordering::Relaxed),
            status_not_ok: e.status_not_ok.load(Ordering::Relaxed),
            in_flight: attempts as i64 - succeeded as i64 - failed_total as i64,
            latency: e.latency.snapshot(),
            rates: e.rates.windows(cur_sec).rates(elapsed),
        }
    }

    /// In-flight attempts and latency percentiles, for the health report.
    pub(crate) fn in_flight_and_latency(&self) -> (i64, LatencyStats) {
        let e = &self.end;
        let succeeded = e.succeeded.load(Ordering::Acquire);
        let failed: u64 = e.failed.iter().map(|f| f.load(Ordering::Acquire)).sum();
        let attempts = self.start.attempts.load(Ordering::Acquire);
        (
            attempts as i64 - succeeded as i64 - failed as i64,
            e.latency.snapshot(),
        )
    }
}

fn kinds_map(failed: &[u64; KINDS]) -> BTreeMap<ErrorKind, u64> {
    ErrorKind::ALL
        .iter()
        .map(|k| (*k, failed.get(k.index()).copied().unwrap_or(0)))
        .collect()
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

impl StatsRecorder {
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
            trace: None,
            requests: Default::default(),
            hooks: HookStats::default(),
        }
    }
}

impl crate::producer::Inner {
    /// The statistics snapshot (see [`crate::Producer::stats`]).
    pub(crate) fn stats_snapshot(&self) -> ProducerStats {
        let (in_flight, in_flight_bytes, waiting, waits) = self.in_flight.stats();
        let limits = self.in_flight.limits();
        let mut snapshot = self.stats.snapshot(
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
        );
        snapshot.requests = self.requests.stats();
        if let Some(hooks) = &self.hooks {
            snapshot.hooks = HookStats {
                registered: hooks.len(),
                panics: hooks.panics(),
            };
        }
        // Kept whether or not statistics are on: tracing has its own counters.
        snapshot.trace = self.trace.as_ref().map(|t| t.stats());
        snapshot
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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
    /// Message trace counters; `Some` when [`trace`](crate::ProducerConfig::trace) is on
    /// (kept even with statistics off).
    pub trace: Option<crate::trace::TraceStats>,
    /// Request-reply counters (kept whether or not statistics are on).
    pub requests: crate::producer::RequestStats,
    /// Send hooks.
    pub hooks: HookStats,
}

/// The producer's send hooks ([`crate::hooks`]). Counted whether statistics are on or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookStats {
    /// Hooks registered.
    pub registered: usize,
    /// Hook calls that panicked (each caught, logged, and otherwise ignored).
    pub panics: u64,
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
