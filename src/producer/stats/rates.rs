//! Rates: per-second rings of atomic cells, read as [`Rates`] of succeeded and failed sends
//! over the last 1 s, 10 s and 60 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::padded::Padded;

const RATE_SLOTS: usize = 64;
const RATE_WINDOWS: [u64; 3] = [1, 10, 60];
pub(super) const OK: usize = 0;
pub(super) const FAILED: usize = 1;

/// Per-second counts of successes and failures: each cell holds `second << 32 | count`, so a
/// cell is reset and counted in one compare-and-swap.
pub(super) struct RateRing {
    /// On lines of their own (1 KiB, 128-byte aligned): no other data shares their first or
    /// last line.
    slots: Box<Padded<[[AtomicU64; 2]; RATE_SLOTS]>>,
}

impl RateRing {
    pub(super) fn new() -> Self {
        RateRing {
            slots: Box::new(Padded::new(std::array::from_fn(|_| {
                [AtomicU64::new(0), AtomicU64::new(0)]
            }))),
        }
    }

    pub(super) fn add(&self, sec: u64, which: usize) {
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

    /// Where its cells start (for the layout tests).
    #[cfg(test)]
    pub(super) fn cells_address(&self) -> usize {
        &*self.slots as *const _ as usize
    }

    /// Counts per window (1 s, 10 s, 60 s) of successes and failures, as of second `cur`.
    pub(super) fn windows(&self, cur: u64) -> RawRates {
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
pub(super) struct RawRates([[u64; 3]; 2]);

impl RawRates {
    pub(super) fn add(&mut self, other: &RawRates) {
        for (a, b) in self.0.iter_mut().flatten().zip(other.0.iter().flatten()) {
            *a += b;
        }
    }

    /// Rates, `elapsed` being the time since the epoch of the buckets.
    pub(super) fn rates(&self, elapsed: Duration) -> Rates {
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

/// Rates of succeeded and failed sends (per broker: attempts); see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Rates {
    /// Succeeded per second.
    pub succeeded: RateWindows,
    /// Failed per second.
    pub failed: RateWindows,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
