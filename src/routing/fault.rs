//! Latency fault tolerance: which brokers to avoid for a while, and per-broker health data.
//!
//! This is Java's `LatencyFaultToleranceImpl` with the 5.1.4+ tables. After each send attempt the
//! producer reports the attempt's latency; the broker is then "not available" for the duration
//! that the latency maps to:
//!
//! | latency at least (ms) | 50 | 100 | 550 | 1800 | 3000 | 5000 | 15000 |
//! | --- | --- | --- | --- | --- | --- | --- | --- |
//! | not available for (ms) | 0 | 0 | 2000 | 5000 | 6000 | 10000 | 30000 |
//!
//! The duration is the one of the **largest** threshold the latency reaches (below the first
//! threshold: 0). A failed attempt that isolates the broker (a connection error, a timeout, an
//! error response) counts as a latency of [`ISOLATION_LATENCY`] (10 s, so 10 s of isolation with
//! the default tables), as in Java 5.1.4+.
//!
//! The table is pure: every call that needs the time takes `now`, so tests inject time instead of
//! sleeping. It is `Send + Sync`: a `parking_lot::RwLock` over the map of brokers, and a mutex
//! per broker's entry. A sender that remembers a broker's entry (a `FaultMemo`) reports its
//! attempts on it under the entry's lock alone: no map lookup, no write lock on the map.
//! Senders choosing a queue read an entry's flags (and, for latency awareness, its EWMA)
//! without the lock, from a cache line that reports write only when a broker's isolation
//! starts or ends: the usual good report writes only the reporting thread's own line.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rocketmq_mio::routing::fault::LatencyFaultTolerance;
//!
//! let fault = LatencyFaultTolerance::default();
//! let t0 = Instant::now();
//! fault.update("broker-a", Duration::from_millis(3000), false, true, t0);
//! assert!(!fault.is_available("broker-a", t0 + Duration::from_millis(5999)));
//! assert!(fault.is_available("broker-a", t0 + Duration::from_millis(6000)));
//! assert!(fault.is_available("never-seen", t0));
//! ```

use crate::hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::padded::Padded;

/// Java 5.1.4+ `latencyMax`: latency thresholds.
pub const DEFAULT_LATENCY_MAX: [Duration; 7] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(550),
    Duration::from_millis(1800),
    Duration::from_millis(3000),
    Duration::from_millis(5000),
    Duration::from_millis(15000),
];

/// Java 5.1.4+ `notAvailableDuration`: how long a broker is avoided after a latency reaching
/// the threshold at the same index of [`DEFAULT_LATENCY_MAX`].
pub const DEFAULT_NOT_AVAILABLE_DURATION: [Duration; 7] = [
    Duration::ZERO,
    Duration::ZERO,
    Duration::from_millis(2000),
    Duration::from_millis(5000),
    Duration::from_millis(6000),
    Duration::from_millis(10000),
    Duration::from_millis(30000),
];

/// The latency an isolating failure counts as (Java 5.1.4+: 10 000 ms; 30 000 ms before).
pub const ISOLATION_LATENCY: Duration = Duration::from_millis(10_000);

/// The most entries a table may have.
pub const MAX_TABLE_LEN: usize = 64;

/// Weight of a new sample in the latency EWMA (`ewma = ewma + WEIGHT * (sample - ewma)`).
pub const LATENCY_EWMA_WEIGHT: f64 = 0.2;

/// The two tables: latency thresholds and the not-available durations they map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultTables {
    latency_max: Vec<Duration>,
    not_available: Vec<Duration>,
}

impl FaultTables {
    /// Tables from thresholds and durations.
    ///
    /// # Errors
    /// [`Error::Config`] naming `fault_latency_max` or `fault_not_available_duration` when a table
    /// is empty or longer than [`MAX_TABLE_LEN`], the lengths differ, or the thresholds are not in
    /// ascending order.
    pub fn new(latency_max: Vec<Duration>, not_available_duration: Vec<Duration>) -> Result<Self> {
        if latency_max.is_empty() || latency_max.len() > MAX_TABLE_LEN {
            return Err(Error::config(
                "fault_latency_max",
                format!(
                    "needs 1 to {MAX_TABLE_LEN} thresholds, got {}",
                    latency_max.len()
                ),
            ));
        }
        if not_available_duration.len() != latency_max.len() {
            return Err(Error::config(
                "fault_not_available_duration",
                format!(
                    "needs one duration per latency threshold ({}), got {}",
                    latency_max.len(),
                    not_available_duration.len()
                ),
            ));
        }
        if latency_max.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::config(
                "fault_latency_max",
                format!("thresholds must be in ascending order, got {latency_max:?}"),
            ));
        }
        Ok(FaultTables {
            latency_max,
            not_available: not_available_duration,
        })
    }

    /// The latency thresholds, ascending.
    pub fn latency_max(&self) -> &[Duration] {
        &self.latency_max
    }

    /// The not-available durations, one per threshold.
    pub fn not_available_duration(&self) -> &[Duration] {
        &self.not_available
    }

    /// How long a broker is avoided after an attempt with this latency: the duration of the
    /// largest threshold that `latency` reaches, or zero below the first.
    pub fn not_available_for(&self, latency: Duration) -> Duration {
        // Below the first (smallest) threshold: none is reached (the common case, one compare).
        if self
            .latency_max
            .first()
            .map_or(true, |first| latency < *first)
        {
            return Duration::ZERO;
        }
        self.latency_max
            .iter()
            .rposition(|max| latency >= *max)
            .map_or(Duration::ZERO, |i| self.not_available[i])
    }
}

impl Default for FaultTables {
    /// The Java 5.1.4+ tables.
    fn default() -> Self {
        FaultTables {
            latency_max: DEFAULT_LATENCY_MAX.to_vec(),
            not_available: DEFAULT_NOT_AVAILABLE_DURATION.to_vec(),
        }
    }
}

/// Health of one broker, as [`LatencyFaultTolerance::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerFaultInfo {
    /// The broker's name.
    pub broker_name: String,
    /// Whether the broker may be chosen now (its isolation, if any, has ended).
    pub available: bool,
    /// Whether the last attempt reached the broker.
    pub reachable: bool,
    /// The latency of the last attempt.
    pub last_latency: Option<Duration>,
    /// Exponentially weighted moving average of the latencies of attempts that did not isolate
    /// the broker (weight [`LATENCY_EWMA_WEIGHT`] per new sample). Isolating attempts (errors,
    /// latencies that map to a non-zero duration) are left out: isolation already accounts for
    /// them, and one timeout would otherwise dominate the average for a long time.
    pub latency_ewma: Option<Duration>,
    /// Attempts reported.
    pub attempts: u64,
    /// Failed attempts (isolating or unreachable) since the last good one.
    pub consecutive_failures: u32,
    /// Failed attempts in total.
    pub total_failures: u64,
    /// When the current isolation ends, if the broker is isolated now.
    pub isolated_until: Option<Instant>,
    /// How much of the current isolation is left (zero if not isolated).
    pub isolation_remaining: Duration,
    /// The text of the last error recorded with [`LatencyFaultTolerance::record_error`].
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct FaultItem {
    available_at: Option<Instant>,
    reachable: bool,
    last_latency: Option<Duration>,
    ewma_secs: Option<f64>,
    ewma_at: Option<Instant>,
    attempts: u64,
    consecutive_failures: u32,
    total_failures: u64,
    last_error: Option<String>,
    /// Taken out of the table ([`LatencyFaultTolerance::remove`], `retain`): a memo that still
    /// holds it must look its broker up again.
    removed: bool,
}

impl Default for FaultItem {
    /// A broker never reported: available and reachable.
    fn default() -> Self {
        FaultItem {
            available_at: None,
            reachable: true,
            last_latency: None,
            ewma_secs: None,
            ewma_at: None,
            attempts: 0,
            consecutive_failures: 0,
            total_failures: 0,
            last_error: None,
            removed: false,
        }
    }
}

impl FaultItem {
    fn is_available(&self, now: Instant) -> bool {
        self.available_at.map_or(true, |at| now >= at)
    }
}

/// One broker's entry in the table, in two parts on separate cache lines, so that reports
/// (on an I/O thread, per response) and queue scans (on the sending threads, per send) do not
/// move each other's lines between cores:
///
/// - what the senders read (`plain`, `removed`): written only when it changes, so a line that
///   stays shared in every core's cache while brokers are healthy;
/// - what the reporters write on every attempt (the item under its lock, and the latency EWMA
///   mirrored in atomics for the senders' latency-aware scans): a line only the reporting
///   thread touches in the usual case.
#[derive(Debug)]
struct FaultEntry {
    read: Padded<ReadSide>,
    write: Padded<WriteSide>,
}

/// The part of a [`FaultEntry`] that senders read on every send.
#[derive(Debug)]
struct ReadSide {
    /// `true` while the item has no isolation (`available_at` is `None`) and is still in the
    /// table: the broker is available at any time. Stored under the item's lock when that
    /// changes ([`FaultEntry::publish`]), and only then: a report that leaves it as it is (the
    /// usual good attempt) writes nothing here. A reader that finds it `false` takes the lock
    /// and reads the item. A reader racing a writer sees the state before or after the write,
    /// as it would taking the lock before or after it.
    plain: AtomicBool,
    /// The item was taken out of the table (set under the item's lock, with `removed`; never
    /// cleared): lock-free readers of the EWMA look the broker up again, as locked ones do.
    removed: AtomicBool,
    /// A sender's latency-aware scan read the EWMA (set once, never cleared): from then on
    /// reports mirror it in the write side's atomics. Until then they skip that work (a
    /// conversion of the time that costs as much as the rest of the report): a topic with
    /// one broker never reads it.
    ewma_wanted: AtomicBool,
}

/// The part of a [`FaultEntry`] that reporters write on every attempt.
#[derive(Debug)]
struct WriteSide {
    item: Mutex<FaultItem>,
    /// `item.ewma_secs` as `f64` bits ([`NO_EWMA`] for none), stored under the lock with it:
    /// the senders' latency-aware scans read it without the lock.
    ewma_bits: AtomicU64,
    /// `item.ewma_at` as signed nanoseconds from [`epoch`], stored under the lock before
    /// `ewma_bits`.
    ewma_at: AtomicI64,
}

/// `ewma_bits` of an entry without an EWMA (a NaN: an EWMA of latencies never is one).
const NO_EWMA: u64 = u64::MAX;

/// The origin of the entries' lock-free EWMA times (the first time one is needed).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as signed nanoseconds from [`epoch`] (saturated at about 292 years either way).
fn nanos_of(at: Instant) -> i64 {
    let origin = epoch();
    match at.checked_duration_since(origin) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => i64::try_from((origin - at).as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

impl Default for FaultEntry {
    /// A broker never reported: available, in the table.
    fn default() -> Self {
        FaultEntry {
            read: Padded::new(ReadSide {
                plain: AtomicBool::new(true),
                removed: AtomicBool::new(false),
                ewma_wanted: AtomicBool::new(false),
            }),
            write: Padded::new(WriteSide {
                item: Mutex::new(FaultItem::default()),
                ewma_bits: AtomicU64::new(NO_EWMA),
                ewma_at: AtomicI64::new(0),
            }),
        }
    }
}

impl FaultEntry {
    fn lock(&self) -> parking_lot::MutexGuard<'_, FaultItem> {
        self.write.item.lock()
    }

    /// Sets the flags from `item` (this entry's item, its lock held by the caller), storing
    /// only what changes: the usual report (no isolation before or after) reads the flag and
    /// leaves the senders' line alone.
    #[inline]
    fn publish(&self, item: &FaultItem) {
        let plain = item.available_at.is_none() && !item.removed;
        // Under the item's lock: no other writer, so the load sees the last store.
        if self.read.plain.load(Ordering::Relaxed) != plain {
            self.read.plain.store(plain, Ordering::Release);
        }
        if item.removed && !self.read.removed.load(Ordering::Relaxed) {
            self.read.removed.store(true, Ordering::Release);
        }
    }

    /// Mirrors `item`'s EWMA in the lock-free fields (its lock held by the caller), if a
    /// sender reads them.
    #[inline]
    fn publish_ewma(&self, item: &FaultItem) {
        if self.read.ewma_wanted.load(Ordering::Relaxed) {
            self.mirror_ewma(item);
        }
    }

    /// Mirrors `item`'s EWMA in the lock-free fields (its lock held by the caller).
    fn mirror_ewma(&self, item: &FaultItem) {
        if let (Some(secs), Some(at)) = (item.ewma_secs, item.ewma_at) {
            self.write.ewma_at.store(nanos_of(at), Ordering::Relaxed);
            self.write
                .ewma_bits
                .store(secs.to_bits(), Ordering::Release);
        }
    }

    /// Whether the item surely has no isolation and is in the table (`false`: look at it).
    #[inline]
    fn is_plain(&self) -> bool {
        self.read.plain.load(Ordering::Acquire)
    }

    /// Asks reports to mirror the EWMA from now on, and mirrors the current one. Both under
    /// the item's lock: a report before this one's lock left an EWMA that this mirrors, a
    /// report after it sees the flag (the lock orders the flag's store before its load).
    #[cold]
    #[inline(never)]
    fn want_ewma(&self) {
        let item = self.lock();
        self.read.ewma_wanted.store(true, Ordering::Release);
        self.mirror_ewma(&item);
    }

    /// Whether the item was taken out of the table.
    #[inline]
    fn is_removed(&self) -> bool {
        self.read.removed.load(Ordering::Acquire)
    }

    /// The EWMA in seconds if its last sample is no older than `max_age` at `now`, read
    /// without the lock (see [`FaultView::fresh_ewma_secs`]). Racing a report, it may pair
    /// the EWMA of one report with the time of the next: both are of reports made by then.
    #[inline]
    fn fresh_ewma_secs(&self, now: Instant, max_age: Duration) -> Option<f64> {
        if !self.read.ewma_wanted.load(Ordering::Acquire) {
            self.want_ewma();
        }
        let bits = self.write.ewma_bits.load(Ordering::Acquire);
        if bits == NO_EWMA {
            return None;
        }
        let at = self.write.ewma_at.load(Ordering::Relaxed);
        // `now.saturating_duration_since(at) > max_age`, in nanoseconds from the epoch.
        let age = (i128::from(nanos_of(now)) - i128::from(at)).max(0);
        if age > i128::try_from(max_age.as_nanos()).unwrap_or(i128::MAX) {
            return None;
        }
        Some(f64::from_bits(bits))
    }
}

/// Per-broker latency fault tolerance and health data. `Send + Sync`; share it by reference or in
/// an `Arc`.
#[derive(Debug)]
pub struct LatencyFaultTolerance {
    tables: FaultTables,
    items: RwLock<FxHashMap<String, Arc<FaultEntry>>>,
}

/// A sender's memory of the table entry of the broker it last reported on (see
/// [`LatencyFaultTolerance::update_memo`]): the next report on the same broker goes straight to
/// the entry. An entry taken out of the table is marked so, and the memo then looks again.
#[derive(Clone, Default)]
pub(crate) struct FaultMemo(Option<(Arc<str>, Arc<FaultEntry>)>);

impl Default for LatencyFaultTolerance {
    /// With the Java 5.1.4+ tables.
    fn default() -> Self {
        LatencyFaultTolerance::new(FaultTables::default())
    }
}

impl LatencyFaultTolerance {
    /// An empty table using `tables`.
    pub fn new(tables: FaultTables) -> Self {
        LatencyFaultTolerance {
            tables,
            items: RwLock::new(FxHashMap::default()),
        }
    }

    /// The tables in use.
    pub fn tables(&self) -> &FaultTables {
        &self.tables
    }

    /// Reports an attempt on `broker` (Java `MQFaultStrategy.updateFaultItem`, 5.1.4+).
    ///
    /// - `latency`: how long the attempt took;
    /// - `isolation`: the attempt failed in a way that should isolate the broker (a connection
    ///   error, a timeout, an error response); the not-available duration is then computed from
    ///   [`ISOLATION_LATENCY`] instead of `latency`;
    /// - `reachable`: whether the broker was reached;
    /// - `now`: when the attempt ended.
    ///
    /// The broker is avoided until `now` + the duration (which may be zero: a good attempt ends
    /// an earlier isolation). An attempt with `isolation` or `!reachable` counts as a failure for
    /// the health data; any other ends a run of consecutive failures.
    pub fn update(
        &self,
        broker: &str,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        let items = self.items.read();
        if let Some(entry) = items.get(broker) {
            self.apply(entry, &mut entry.lock(), latency, isolation, reachable, now);
            return;
        }
        drop(items);
        let mut items = self.items.write();
        let entry = items.entry(broker.to_owned()).or_default();
        self.apply(entry, &mut entry.lock(), latency, isolation, reachable, now);
    }

    /// [`LatencyFaultTolerance::update`] through `memo`: on the broker the memo holds, the
    /// report takes the entry's lock only (no lookup, no lock on the map); on another broker
    /// (or one taken out of the table since), it looks the broker up and remembers it.
    // Inlined: the memo's broker is the common case; the look-up is out of line.
    #[inline(always)]
    pub(crate) fn update_memo(
        &self,
        broker: &Arc<str>,
        memo: &mut FaultMemo,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        if let Some((name, entry)) = &memo.0 {
            if Arc::ptr_eq(name, broker) || **name == **broker {
                let mut item = entry.lock();
                if !item.removed {
                    self.apply(entry, &mut item, latency, isolation, reachable, now);
                    return;
                }
            }
        }
        self.update_looked_up(broker, memo, latency, isolation, reachable, now);
    }

    /// [`LatencyFaultTolerance::update_memo`] on a broker the memo does not hold: looks it
    /// up and remembers it.
    #[cold]
    #[inline(never)]
    fn update_looked_up(
        &self,
        broker: &Arc<str>,
        memo: &mut FaultMemo,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        // Under the map's lock: a removal cannot slip in between the look-up and the report.
        let mut items = self.items.write();
        let entry = match items.get(&**broker) {
            Some(entry) => entry.clone(),
            None => items.entry(broker.to_string()).or_default().clone(),
        };
        self.apply(
            &entry,
            &mut entry.lock(),
            latency,
            isolation,
            reachable,
            now,
        );
        drop(items);
        memo.0 = Some((broker.clone(), entry));
    }

    /// The report of [`LatencyFaultTolerance::update`] on one broker's entry.
    #[inline]
    fn apply(
        &self,
        entry: &FaultEntry,
        item: &mut FaultItem,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        let duration = self.tables.not_available_for(if isolation {
            ISOLATION_LATENCY
        } else {
            latency
        });
        // A zero duration ends any isolation outright rather than "from `now`": senders pick
        // queues with a clock read when their send began, which may be earlier than the end
        // time reported here, and must not see a healthy broker as not yet available.
        let available_at = if duration.is_zero() {
            None
        } else {
            Some(now.checked_add(duration).unwrap_or(now))
        };
        let failed = isolation || !reachable;
        // The flag is `available_at.is_none()` of an item in the table (reports go to items
        // in the table, under their lock): it changes only when that does. The usual report
        // (no isolation before or after) neither stores nor loads it.
        debug_assert!(!item.removed, "reports go to items in the table");
        let flag_changes = item.available_at.is_none() != available_at.is_none();
        item.available_at = available_at;
        if flag_changes {
            entry.publish(item);
        }
        item.reachable = reachable;
        item.last_latency = Some(latency);
        if duration.is_zero() && !isolation {
            let sample = latency.as_secs_f64();
            item.ewma_secs = Some(match item.ewma_secs {
                None => sample,
                Some(old) => old + LATENCY_EWMA_WEIGHT * (sample - old),
            });
            item.ewma_at = Some(now);
            entry.publish_ewma(item);
        }
        item.attempts += 1;
        if failed {
            item.consecutive_failures = item.consecutive_failures.saturating_add(1);
            item.total_failures += 1;
        } else {
            item.consecutive_failures = 0;
        }
    }

    /// Stores the text of the last error seen on `broker`, for the health snapshot. Does not
    /// change availability (that is [`LatencyFaultTolerance::update`]'s job).
    pub fn record_error(&self, broker: &str, error: impl Into<String>) {
        let error = error.into();
        let mut items = self.items.write();
        let entry = match items.get(broker) {
            Some(entry) => entry,
            None => items.entry(broker.to_owned()).or_default(),
        };
        entry.lock().last_error = Some(error);
    }

    /// Whether `broker` may be chosen at `now`: true unless an isolation is running. Brokers
    /// never reported are available.
    pub fn is_available(&self, broker: &str, now: Instant) -> bool {
        self.items
            .read()
            .get(broker)
            .map_or(true, |item| item.lock().is_available(now))
    }

    /// Whether the last attempt on `broker` reached it. Brokers never reported are reachable.
    pub fn is_reachable(&self, broker: &str) -> bool {
        self.items
            .read()
            .get(broker)
            .map_or(true, |item| item.lock().reachable)
    }

    /// Marks `broker` reachable again (for example after a successful probe), without changing
    /// its isolation.
    pub fn mark_reachable(&self, broker: &str) {
        if let Some(item) = self.items.read().get(broker) {
            item.lock().reachable = true;
        }
    }

    /// The latency EWMA of `broker` (non-isolating attempts only), if any was reported.
    pub fn latency_ewma(&self, broker: &str) -> Option<Duration> {
        self.items
            .read()
            .get(broker)
            .and_then(|item| item.lock().ewma_secs)
            .map(secs_to_duration)
    }

    /// Forgets `broker`.
    pub fn remove(&self, broker: &str) {
        if let Some(entry) = self.items.write().remove(broker) {
            let mut item = entry.lock();
            item.removed = true;
            entry.publish(&item);
        }
    }

    /// Keeps only the brokers for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.items.write().retain(|name, entry| {
            let kept = keep(name);
            if !kept {
                let mut item = entry.lock();
                item.removed = true;
                entry.publish(&item);
            }
            kept
        });
    }

    /// How many brokers have data.
    pub fn len(&self) -> usize {
        self.items.read().len()
    }

    /// Whether no broker has data.
    pub fn is_empty(&self) -> bool {
        self.items.read().is_empty()
    }

    /// Health of every broker with data, sorted by broker name.
    pub fn snapshot(&self, now: Instant) -> Vec<BrokerFaultInfo> {
        let items = self.items.read();
        let mut out: Vec<BrokerFaultInfo> = items
            .iter()
            .map(|(name, entry)| {
                let item = entry.lock();
                let isolated_until = item.available_at.filter(|at| *at > now);
                BrokerFaultInfo {
                    broker_name: name.clone(),
                    available: item.is_available(now),
                    reachable: item.reachable,
                    last_latency: item.last_latency,
                    latency_ewma: item.ewma_secs.map(secs_to_duration),
                    attempts: item.attempts,
                    consecutive_failures: item.consecutive_failures,
                    total_failures: item.total_failures,
                    isolated_until,
                    isolation_remaining: isolated_until
                        .map_or(Duration::ZERO, |at| at.saturating_duration_since(now)),
                    last_error: item.last_error.clone(),
                }
            })
            .collect();
        drop(items);
        out.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        out
    }

    /// Runs `f` with a view of the table under one read lock (the router ranks all brokers of a
    /// topic at once).
    pub(crate) fn with_view<R>(&self, f: impl FnOnce(&FaultView<'_>) -> R) -> R {
        let items = self.items.read();
        f(&FaultView { items: &items })
    }
}

/// A read-only view of the table, valid while its read lock is held.
#[derive(Clone, Copy)]
pub(crate) struct FaultView<'a> {
    items: &'a FxHashMap<String, Arc<FaultEntry>>,
}

impl FaultView<'_> {
    /// Whether the table has no data at all (nothing to avoid).
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn is_available(&self, broker: &str, now: Instant) -> bool {
        self.items
            .get(broker)
            .map_or(true, |item| item.lock().is_available(now))
    }

    pub(crate) fn is_reachable(&self, broker: &str) -> bool {
        self.items
            .get(broker)
            .map_or(true, |item| item.lock().reachable)
    }

    /// The EWMA in seconds, if its last sample is no older than `max_age` at `now`.
    pub(crate) fn fresh_ewma_secs(
        &self,
        broker: &str,
        now: Instant,
        max_age: Duration,
    ) -> Option<f64> {
        // Without the entry's lock: see `FaultEntry::fresh_ewma_secs`.
        self.items.get(broker)?.fresh_ewma_secs(now, max_age)
    }
}

/// What the router's queue scan asks of the fault table about one broker (see
/// [`crate::routing::router`]): implemented by a [`FaultView`] (look-ups by name under the map's
/// read lock) and by [`HandleLookup`] (a sender's remembered entries). Both answer alike.
pub(crate) trait FaultLookup {
    /// Whether the table surely has no data at all (nothing to avoid); `false` is always safe.
    fn is_empty(&mut self) -> bool;
    fn is_available(&mut self, broker: &Arc<str>, now: Instant) -> bool;
    fn is_reachable(&mut self, broker: &Arc<str>) -> bool;
    /// The EWMA in seconds, if its last sample is no older than `max_age` at `now`.
    fn fresh_ewma_secs(
        &mut self,
        broker: &Arc<str>,
        now: Instant,
        max_age: Duration,
    ) -> Option<f64>;
}

impl FaultLookup for FaultView<'_> {
    fn is_empty(&mut self) -> bool {
        FaultView::is_empty(self)
    }
    fn is_available(&mut self, broker: &Arc<str>, now: Instant) -> bool {
        FaultView::is_available(self, broker, now)
    }
    fn is_reachable(&mut self, broker: &Arc<str>) -> bool {
        FaultView::is_reachable(self, broker)
    }
    fn fresh_ewma_secs(
        &mut self,
        broker: &Arc<str>,
        now: Instant,
        max_age: Duration,
    ) -> Option<f64> {
        FaultView::fresh_ewma_secs(self, broker, now, max_age)
    }
}

/// How many entries [`FaultHandles`] keeps before it starts over (a sender's topics rarely
/// span more brokers; the bound keeps a long-lived sender's memory small).
const MAX_HANDLES: usize = 32;

/// A sender's remembered fault-table entries, by broker name, for the router's queue scan: a
/// broker found here is read under its entry's lock alone (no map lock, no string hash). An
/// entry taken out of the table since is dropped and the broker looked up again; a broker with
/// no entry (never reported) is looked up each time, as it may be reported at any moment.
#[derive(Clone, Default)]
pub(crate) struct FaultHandles {
    /// A copy of `all`'s first entry (the one the usual send asks about), inline where the
    /// handles are kept (a send box): the queue scan's usual answer reads no line of `all`'s
    /// buffer, a small heap block whose neighbours other threads may write.
    first: Option<(Arc<str>, Arc<FaultEntry>)>,
    all: Vec<(Arc<str>, Arc<FaultEntry>)>,
}

impl FaultHandles {
    /// Makes `first` a copy of `all`'s first entry again (after `all` changed).
    fn sync_first(&mut self) {
        let same = match (&self.first, self.all.first()) {
            (Some((_, a)), Some((_, b))) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.first = self.all.first().cloned();
        }
    }
}

/// [`FaultLookup`] through a sender's [`FaultHandles`] on a table.
pub(crate) struct HandleLookup<'a> {
    pub(crate) fault: &'a LatencyFaultTolerance,
    pub(crate) handles: &'a mut FaultHandles,
}

impl HandleLookup<'_> {
    /// `f` of `broker`'s entry, or `None` when the table has no entry for it.
    fn with_item<R>(&mut self, broker: &Arc<str>, f: impl FnOnce(&FaultItem) -> R) -> Option<R> {
        let found = (self.handles.all.iter())
            .position(|(name, _)| Arc::ptr_eq(name, broker))
            .or_else(|| (self.handles.all.iter()).position(|(name, _)| **name == **broker));
        if let Some(i) = found {
            let item = self.handles.all[i].1.lock();
            if !item.removed {
                return Some(f(&item));
            }
            drop(item);
            self.handles.all.swap_remove(i);
            self.handles.sync_first();
        }
        // Under the map's read lock, as a view reads it: no removal slips in between.
        let items = self.fault.items.read();
        let entry = items.get(&**broker)?;
        let answer = f(&entry.lock());
        let entry = entry.clone();
        drop(items);
        if self.handles.all.len() >= MAX_HANDLES {
            self.handles.all.clear();
        }
        self.handles.all.push((broker.clone(), entry));
        self.handles.sync_first();
        Some(answer)
    }
}

impl HandleLookup<'_> {
    /// `f` of `broker`'s entry, read without its lock (an entry taken out of the table is
    /// dropped and the broker looked up again, as [`HandleLookup::with_item`] does), or
    /// `None` when the table has no entry for it.
    fn with_entry<R>(&mut self, broker: &Arc<str>, f: impl FnOnce(&FaultEntry) -> R) -> Option<R> {
        let found = (self.handles.all.iter())
            .position(|(name, _)| Arc::ptr_eq(name, broker))
            .or_else(|| (self.handles.all.iter()).position(|(name, _)| **name == **broker));
        if let Some(i) = found {
            let entry = &self.handles.all[i].1;
            if !entry.is_removed() {
                return Some(f(entry));
            }
            self.handles.all.swap_remove(i);
            self.handles.sync_first();
        }
        // Under the map's read lock, as a view reads it: no removal slips in between.
        let items = self.fault.items.read();
        let entry = items.get(&**broker)?;
        let answer = f(entry);
        let entry = entry.clone();
        drop(items);
        if self.handles.all.len() >= MAX_HANDLES {
            self.handles.all.clear();
        }
        self.handles.all.push((broker.clone(), entry));
        self.handles.sync_first();
        Some(answer)
    }

    /// [`FaultLookup::is_available`] beyond the flag: the entry read under its lock.
    #[inline(never)]
    fn is_available_looked_at(&mut self, broker: &Arc<str>, now: Instant) -> bool {
        // The first remembered entry is this very broker's (one broker, or the one it found
        // first), still in the table. Otherwise the general way.
        if let Some((name, entry)) = &self.handles.first {
            if Arc::ptr_eq(name, broker) {
                let item = entry.lock();
                if !item.removed {
                    return item.is_available(now);
                }
            }
        }
        self.with_item(broker, |item| item.is_available(now))
            .unwrap_or(true)
    }
}

impl FaultLookup for HandleLookup<'_> {
    fn is_empty(&mut self) -> bool {
        self.handles.all.is_empty() && self.fault.is_empty()
    }
    // Inlined into the queue scan: the usual answer takes a few instructions, the rest is out
    // of line.
    #[inline]
    fn is_available(&mut self, broker: &Arc<str>, now: Instant) -> bool {
        // The sender's usual case: its first remembered entry is this very broker's, with no
        // isolation and still in the table (the flag read without the entry's lock).
        if let Some((name, entry)) = &self.handles.first {
            if Arc::ptr_eq(name, broker) && entry.is_plain() {
                return true;
            }
        }
        self.is_available_looked_at(broker, now)
    }
    fn is_reachable(&mut self, broker: &Arc<str>) -> bool {
        self.with_item(broker, |item| item.reachable)
            .unwrap_or(true)
    }
    fn fresh_ewma_secs(
        &mut self,
        broker: &Arc<str>,
        now: Instant,
        max_age: Duration,
    ) -> Option<f64> {
        // Without the entry's lock: see `FaultEntry::fresh_ewma_secs`.
        self.with_entry(broker, |entry| entry.fresh_ewma_secs(now, max_age))
            .flatten()
    }
}

fn secs_to_duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn default_tables_map_latencies() {
        let t = FaultTables::default();
        let cases = [
            (0, 0),
            (49, 0),
            (50, 0),
            (549, 0),
            (550, 2000),
            (1799, 2000),
            (1800, 5000),
            (3000, 6000),
            (4999, 6000),
            (5000, 10000),
            (10000, 10000),
            (15000, 30000),
            (999_999, 30000),
        ];
        for (latency, expected) in cases {
            assert_eq!(
                t.not_available_for(MS * latency),
                MS * expected,
                "latency {latency}"
            );
        }
    }

    /// The shortcut below the first threshold gives what the full scan gives, on random
    /// tables (equal thresholds, zero and non-zero durations first) at and around every
    /// threshold.
    #[test]
    fn not_available_for_matches_the_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let n = rng.gen_range(1..8);
            let mut max: Vec<Duration> = (0..n).map(|_| MS * rng.gen_range(0..20_000)).collect();
            max.sort_unstable();
            let durations: Vec<Duration> = (0..n)
                .map(|_| MS * rng.gen_range(0..3) * rng.gen_range(0..30_000))
                .collect();
            let t = FaultTables::new(max.clone(), durations.clone()).unwrap();
            let scan = |latency: Duration| {
                max.iter()
                    .rposition(|m| latency >= *m)
                    .map_or(Duration::ZERO, |i| durations[i])
            };
            for m in &max {
                for latency in [
                    m.saturating_sub(MS),
                    *m,
                    *m + MS,
                    Duration::ZERO,
                    Duration::MAX,
                ] {
                    assert_eq!(
                        t.not_available_for(latency),
                        scan(latency),
                        "{max:?} {latency:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn tables_validate() {
        let e = FaultTables::new(vec![], vec![]).unwrap_err();
        assert!(matches!(e, Error::Config { ref setting, .. } if setting == "fault_latency_max"));
        let e = FaultTables::new(vec![MS], vec![MS, MS]).unwrap_err();
        assert!(
            matches!(e, Error::Config { ref setting, .. } if setting == "fault_not_available_duration")
        );
        let e = FaultTables::new(vec![MS * 2, MS], vec![MS, MS]).unwrap_err();
        assert!(matches!(e, Error::Config { ref setting, .. } if setting == "fault_latency_max"));
        let t = FaultTables::new(vec![MS * 10], vec![MS * 100]).unwrap();
        assert_eq!(t.not_available_for(MS * 9), Duration::ZERO);
        assert_eq!(t.not_available_for(MS * 10), MS * 100);
    }

    #[test]
    fn isolation_and_recovery_with_injected_time() {
        let f = LatencyFaultTolerance::default();
        let t0 = Instant::now();
        assert!(f.is_available("a", t0));
        f.update("a", MS * 3000, false, true, t0);
        assert!(!f.is_available("a", t0));
        assert!(!f.is_available("a", t0 + MS * 5999));
        assert!(f.is_available("a", t0 + MS * 6000));
        assert!(f.is_reachable("a"));
        // Isolation: 10 s penalty whatever the latency.
        f.update("b", MS * 5, true, false, t0);
        assert!(!f.is_available("b", t0 + MS * 9999));
        assert!(f.is_available("b", t0 + MS * 10000));
        assert!(!f.is_reachable("b"));
        // A good attempt ends the isolation at once and makes it reachable again.
        f.update("b", MS * 5, false, true, t0 + MS * 1);
        assert!(f.is_available("b", t0 + MS * 1));
        assert!(f.is_reachable("b"));
        // Fast attempts never isolate.
        f.update("c", MS * 99, false, true, t0);
        assert!(f.is_available("c", t0));
    }

    #[test]
    fn health_data() {
        let f = LatencyFaultTolerance::default();
        let t0 = Instant::now();
        f.update("a", MS * 100, false, true, t0);
        f.update("a", MS * 200, false, true, t0);
        f.update("b", MS * 10, true, true, t0);
        f.update("b", MS * 10, true, false, t0);
        f.record_error("b", "connection refused");
        f.record_error("c", "never updated");
        let snap = f.snapshot(t0 + MS * 1000);
        let names: Vec<&str> = snap.iter().map(|i| i.broker_name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &snap[0];
        assert!(a.available && a.reachable);
        assert_eq!(a.last_latency, Some(MS * 200));
        // 100 + 0.2 * (200 - 100) = 120 ms
        let ewma = a.latency_ewma.unwrap().as_secs_f64();
        assert!((ewma - 0.120).abs() < 1e-9, "{ewma}");
        assert_eq!(a.attempts, 2);
        assert_eq!(a.consecutive_failures, 0);
        assert_eq!(a.isolated_until, None);
        let b = &snap[1];
        assert!(!b.available && !b.reachable);
        assert_eq!(b.consecutive_failures, 2);
        assert_eq!(b.total_failures, 2);
        assert_eq!(b.isolated_until, Some(t0 + MS * 10000));
        assert_eq!(b.isolation_remaining, MS * 9000);
        assert_eq!(b.last_error.as_deref(), Some("connection refused"));
        let c = &snap[2];
        assert!(c.available && c.reachable && c.attempts == 0);
        assert_eq!(c.latency_ewma, None);
        // A success resets the run of failures, not the total.
        f.update("b", MS * 10, false, true, t0 + MS * 2000);
        let b = f
            .snapshot(t0 + MS * 2000)
            .into_iter()
            .find(|i| i.broker_name == "b")
            .unwrap();
        assert_eq!((b.consecutive_failures, b.total_failures), (0, 2));
        assert_eq!(f.latency_ewma("a"), Some(Duration::from_secs_f64(0.120)));
        f.retain(|n| n != "c");
        f.remove("a");
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn isolating_attempts_stay_out_of_the_ewma() {
        let f = LatencyFaultTolerance::default();
        let t0 = Instant::now();
        f.update("a", MS * 100, false, true, t0);
        f.update("a", MS * 3000, false, true, t0); // isolates: not a sample
        f.update("a", MS * 20, true, false, t0); // error: not a sample
        assert_eq!(f.latency_ewma("a"), Some(MS * 100));
        let info = &f.snapshot(t0)[0];
        assert_eq!(info.last_latency, Some(MS * 20));
        assert_eq!(info.attempts, 3);
        f.with_view(|v| {
            assert_eq!(v.fresh_ewma_secs("a", t0 + MS * 1000, MS * 1000), Some(0.1));
            assert_eq!(v.fresh_ewma_secs("a", t0 + MS * 1001, MS * 1000), None);
            assert_eq!(v.fresh_ewma_secs("zz", t0, MS * 1000), None);
        });
    }

    /// Reports through a memo leave the table exactly as reports by name do, whatever the
    /// order of brokers (a name in another string is the same broker), outcomes, removals and
    /// retains in between (a memo whose entry was taken out looks the broker up again).
    #[test]
    fn memo_updates_match_updates_by_name() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let names: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
        for round in 0..200 {
            let by_name = LatencyFaultTolerance::default();
            let by_memo = LatencyFaultTolerance::default();
            let mut memos: Vec<FaultMemo> = (0..2).map(|_| FaultMemo::default()).collect();
            let t0 = Instant::now();
            for step in 0..rng.gen_range(1..200u32) {
                let now = t0 + MS * step * 100;
                let name = &names[rng.gen_range(0..names.len())];
                let name: Arc<str> = if rng.gen_bool(0.3) {
                    Arc::from(&**name)
                } else {
                    name.clone()
                };
                match rng.gen_range(0..20) {
                    0 => {
                        by_name.remove(&name);
                        by_memo.remove(&name);
                    }
                    1 => {
                        by_name.retain(|n| n != &*name);
                        by_memo.retain(|n| n != &*name);
                    }
                    2 => {
                        by_name.record_error(&name, "e");
                        by_memo.record_error(&name, "e");
                    }
                    _ => {
                        let latency = MS * rng.gen_range(0..20_000);
                        let isolation = rng.gen_bool(0.2);
                        let reachable = rng.gen_bool(0.8);
                        by_name.update(&name, latency, isolation, reachable, now);
                        let memo = &mut memos[rng.gen_range(0..2)];
                        by_memo.update_memo(&name, memo, latency, isolation, reachable, now);
                    }
                }
                let at = now + MS * 50;
                assert_eq!(by_memo.snapshot(at), by_name.snapshot(at), "round {round}");
            }
        }
    }

    /// A sender's remembered entries (the lock-free flag, then the entry under its lock, then
    /// the look-up) answer availability as the table's look-up by name does, through random
    /// reports (isolating or not, through a memo or by name), removals, retains and re-adds,
    /// read at times before, inside and after isolations. Reading an entry's flag that missed
    /// an isolation or a removal would answer `true` where the table says `false`.
    #[test]
    fn handle_lookups_match_the_table_through_reports_and_removals() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let names: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
        let mut flag_answers = 0;
        for round in 0..200 {
            let table = LatencyFaultTolerance::default();
            let mut handles: Vec<FaultHandles> = (0..2).map(|_| FaultHandles::default()).collect();
            let mut memo = FaultMemo::default();
            let t0 = Instant::now();
            for step in 0..rng.gen_range(1..200u32) {
                let now = t0 + MS * step * 100;
                let name = names[rng.gen_range(0..names.len())].clone();
                match rng.gen_range(0..12) {
                    0 => table.remove(&name),
                    1 => table.retain(|n| n != &*name),
                    2 => table.record_error(&name, "e"),
                    3 => table.mark_reachable(&name),
                    _ => {
                        let latency = MS * rng.gen_range(0..8_000);
                        let isolation = rng.gen_bool(0.2);
                        let reachable = rng.gen_bool(0.8);
                        if rng.gen_bool(0.5) {
                            table.update(&name, latency, isolation, reachable, now);
                        } else {
                            table.update_memo(&name, &mut memo, latency, isolation, reachable, now);
                        }
                    }
                }
                for _ in 0..4 {
                    let asked = &names[rng.gen_range(0..names.len())];
                    let at = now + MS * rng.gen_range(0..12_000);
                    let h = &mut handles[rng.gen_range(0..2)];
                    let plain = (h.first.as_ref())
                        .is_some_and(|(n, e)| Arc::ptr_eq(n, asked) && e.is_plain());
                    flag_answers += usize::from(plain);
                    let mut lookup = HandleLookup {
                        fault: &table,
                        handles: h,
                    };
                    assert_eq!(
                        FaultLookup::is_available(&mut lookup, asked, at),
                        table.is_available(asked, at),
                        "round {round} step {step} broker {asked}"
                    );
                    // The inline copy is the list's first entry.
                    let first = h.first.as_ref().map(|(n, e)| (n.clone(), Arc::as_ptr(e)));
                    let listed = h.all.first().map(|(n, e)| (n.clone(), Arc::as_ptr(e)));
                    assert_eq!(first, listed, "round {round} step {step}");
                }
            }
        }
        assert!(
            flag_answers > 1000,
            "the flag answered {flag_answers} times"
        );
    }

    /// The table as it was before reports left the senders' line alone when nothing changes
    /// (every report stored the flag, and all data was read under the entry's lock): the
    /// reference for the differential test below.
    #[derive(Default, Clone)]
    struct Reference {
        available_at: Option<Instant>,
        reachable: bool,
        ewma_secs: Option<f64>,
        ewma_at: Option<Instant>,
        attempts: u64,
        consecutive_failures: u32,
    }

    impl Reference {
        fn new() -> Self {
            Reference {
                reachable: true,
                ..Reference::default()
            }
        }

        fn update(
            &mut self,
            t: &FaultTables,
            latency: Duration,
            isolation: bool,
            reachable: bool,
            now: Instant,
        ) {
            let d = t.not_available_for(if isolation {
                ISOLATION_LATENCY
            } else {
                latency
            });
            self.available_at = (!d.is_zero()).then(|| now.checked_add(d).unwrap_or(now));
            self.reachable = reachable;
            if d.is_zero() && !isolation {
                let sample = latency.as_secs_f64();
                self.ewma_secs = Some(match self.ewma_secs {
                    None => sample,
                    Some(old) => old + LATENCY_EWMA_WEIGHT * (sample - old),
                });
                self.ewma_at = Some(now);
            }
            self.attempts += 1;
            if isolation || !reachable {
                self.consecutive_failures += 1;
            } else {
                self.consecutive_failures = 0;
            }
        }

        fn is_available(&self, now: Instant) -> bool {
            self.available_at.map_or(true, |at| now >= at)
        }

        fn fresh_ewma_secs(&self, now: Instant, max_age: Duration) -> Option<f64> {
            let at = self.ewma_at?;
            if now.saturating_duration_since(at) > max_age {
                return None;
            }
            self.ewma_secs
        }
    }

    /// Random runs of mostly usual reports (good, under the first threshold: they leave the
    /// senders' line alone) with failures, slow attempts in every bucket, removals and
    /// re-adds in between, through two memos: after every report the isolation decisions (by
    /// name, through the lock-free flag, through a sender's handles), the flag itself, the
    /// lock-free EWMA and the health data are those of the reference, the locked update that
    /// stored everything on every report.
    #[test]
    fn reports_that_skip_unchanged_stores_match_the_locked_update() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let names: Vec<Arc<str>> = ["a", "b"].into_iter().map(Arc::from).collect();
        let thresholds = [0u32, 49, 50, 99, 100, 549, 550, 1800, 3000, 5000, 15000];
        let (mut plain_true, mut plain_false) = (0usize, 0usize);
        for round in 0..300 {
            let table = LatencyFaultTolerance::default();
            let mut reference: Vec<Option<Reference>> = vec![None; names.len()];
            let mut memos: Vec<FaultMemo> = (0..2).map(|_| FaultMemo::default()).collect();
            let mut handles = FaultHandles::default();
            let t0 = Instant::now();
            let mut now = t0;
            for step in 0..rng.gen_range(1..300u32) {
                now += MS * rng.gen_range(0..3_000);
                let b = rng.gen_range(0..names.len());
                let name = &names[b];
                match rng.gen_range(0..100) {
                    0 => {
                        table.remove(name);
                        reference[b] = None;
                    }
                    1..=10 => {
                        let latency = MS * thresholds[rng.gen_range(0..thresholds.len())];
                        let isolation = rng.gen_bool(0.5);
                        let reachable = rng.gen_bool(0.5);
                        let memo = &mut memos[rng.gen_range(0..2)];
                        table.update_memo(name, memo, latency, isolation, reachable, now);
                        (reference[b].get_or_insert_with(Reference::new)).update(
                            table.tables(),
                            latency,
                            isolation,
                            reachable,
                            now,
                        );
                    }
                    _ => {
                        let latency = MS * rng.gen_range(0..50);
                        let memo = &mut memos[rng.gen_range(0..2)];
                        table.update_memo(name, memo, latency, false, true, now);
                        (reference[b].get_or_insert_with(Reference::new)).update(
                            table.tables(),
                            latency,
                            false,
                            true,
                            now,
                        );
                    }
                }
                for (b, name) in names.iter().enumerate() {
                    let want = reference[b].as_ref();
                    let ctx = format!("round {round} step {step} broker {name}");
                    // The flag: set exactly while the broker has no isolation.
                    if let Some(entry) = table.items.read().get(&**name) {
                        let plain = want.is_some_and(|r| r.available_at.is_none());
                        assert_eq!(entry.is_plain(), plain, "{ctx}");
                        if plain {
                            plain_true += 1
                        } else {
                            plain_false += 1
                        }
                    }
                    for at in [now, now + MS * rng.gen_range(0..31_000)] {
                        let available = want.map_or(true, |r| r.is_available(at));
                        assert_eq!(table.is_available(name, at), available, "{ctx}");
                        let mut lookup = HandleLookup {
                            fault: &table,
                            handles: &mut handles,
                        };
                        assert_eq!(
                            FaultLookup::is_available(&mut lookup, name, at),
                            available,
                            "{ctx}"
                        );
                        let ewma = want.and_then(|r| r.fresh_ewma_secs(at, SLOW));
                        assert_eq!(lookup.fresh_ewma_secs(name, at, SLOW), ewma, "{ctx}");
                        let by_view = table.with_view(|v| v.fresh_ewma_secs(name, at, SLOW));
                        assert_eq!(by_view, ewma, "{ctx}");
                    }
                    let info = table
                        .snapshot(now)
                        .into_iter()
                        .find(|i| *i.broker_name == **name);
                    match (info, want) {
                        (None, None) => {}
                        (Some(i), Some(r)) => {
                            assert_eq!(i.available, r.is_available(now), "{ctx}");
                            assert_eq!(i.reachable, r.reachable, "{ctx}");
                            assert_eq!(i.attempts, r.attempts, "{ctx}");
                            assert_eq!(i.consecutive_failures, r.consecutive_failures, "{ctx}");
                            assert_eq!(i.latency_ewma, r.ewma_secs.map(secs_to_duration), "{ctx}");
                        }
                        (i, r) => panic!("{ctx}: {i:?} vs {}", r.is_some()),
                    }
                }
            }
        }
        assert!(
            plain_true > 10_000 && plain_false > 1_000,
            "{plain_true} {plain_false}"
        );
    }

    const SLOW: Duration = Duration::from_secs(10);

    /// The part senders read and the part reporters write are on separate 128-byte lines.
    #[test]
    fn the_senders_line_is_apart_from_the_reporters() {
        let entry = FaultEntry::default();
        let read = &*entry.read as *const ReadSide as usize;
        let write = &*entry.write as *const WriteSide as usize;
        assert_eq!((read % 128, write % 128), (0, 0));
        assert!(read.abs_diff(write) >= 128);
    }

    #[test]
    fn send_sync_and_shared() {
        fn check<T: Send + Sync>() {}
        check::<LatencyFaultTolerance>();
        let f = std::sync::Arc::new(LatencyFaultTolerance::default());
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for j in 0..100u64 {
                        f.update(&format!("b{}", j % 3), MS * (i * 10), false, true, t0);
                        let _ = f.is_available("b1", t0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total: u64 = f.snapshot(t0).iter().map(|i| i.attempts).sum();
        assert_eq!(total, 400);
    }

    /// A good attempt ends an isolation outright: a sender whose clock was read before the
    /// I/O thread's end time still sees the broker available (an `available_at` of the end
    /// time made it look isolated for that moment).
    #[test]
    fn a_good_report_makes_the_broker_available_to_an_earlier_clock() {
        let table = LatencyFaultTolerance::default();
        let began = Instant::now();
        let ended = began + 5 * MS;
        table.update("b", 2 * MS, true, true, began);
        assert!(!table.is_available("b", began + MS));
        table.update("b", 2 * MS, false, true, ended);
        assert!(table.is_available("b", began + MS));
        assert!(table.is_available("b", ended));
        // A slow attempt still isolates from its end.
        table.update("b", 600 * MS, false, true, ended);
        assert!(!table.is_available("b", ended + MS));
    }
}
