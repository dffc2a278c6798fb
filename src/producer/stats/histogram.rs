//! [`LatencyHistogram`]: lock-free log-linear latency buckets, and the [`LatencyStats`]
//! (count, mean, percentiles, maximum) they report.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::padded::Padded;

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
    /// On lines of their own: recording writes them, on whichever thread records, and no
    /// other data of another thread's may share their first or last line.
    buckets: Box<Padded<[AtomicU64; BUCKETS]>>,
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

/// `d` in whole microseconds, `u64::MAX` past it (what `as_micros` gives, without its
/// 128-bit arithmetic).
#[inline]
pub(super) fn micros(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(u64::from(d.subsec_micros())))
        .unwrap_or(u64::MAX)
}

/// A histogram's raw contents, summed across histograms for totals.
#[derive(Clone)]
pub(super) struct RawHistogram {
    counts: Vec<u64>,
    sum_us: u64,
    max_us: u64,
}

impl RawHistogram {
    pub(super) fn empty() -> Self {
        RawHistogram {
            counts: vec![0; BUCKETS],
            sum_us: 0,
            max_us: 0,
        }
    }

    pub(super) fn add(&mut self, other: &RawHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    pub(super) fn stats(&self) -> LatencyStats {
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
            buckets: Box::new(Padded::new(std::array::from_fn(|_| AtomicU64::new(0)))),
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

    /// Where its buckets start (for the layout tests).
    #[cfg(test)]
    pub(super) fn buckets_address(&self) -> usize {
        &*self.buckets as *const _ as usize
    }

    pub(super) fn raw(&self) -> RawHistogram {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `micros` is `as_micros`, saturated at `u64::MAX`.
    #[test]
    fn micros_is_as_micros_saturated() {
        let max_secs = u64::MAX / 1_000_000;
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_nanos(1_000),
            Duration::from_nanos(1_999_999_999),
            Duration::from_secs(max_secs),
            Duration::new(max_secs, 551_615_999),
            Duration::new(max_secs, 551_616_000),
            Duration::new(max_secs, 999_999_999),
            Duration::new(max_secs + 1, 0),
            Duration::MAX,
        ] {
            let expected = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            assert_eq!(micros(d), expected, "{d:?}");
        }
    }

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
}
