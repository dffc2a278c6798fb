//! In-flight accounting: a bound on asynchronous sends by count and by bytes, and the count
//! that `shutdown` waits on.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct Counts {
    sends: usize,
    bytes: usize,
    waiting: usize,
    /// Acquisitions that had to wait (statistics).
    waits: u64,
}

/// Tracks sends in flight; optionally bounds them.
#[derive(Debug)]
pub(crate) struct InFlight {
    counts: Mutex<Counts>,
    changed: Condvar,
    /// `None`: unbounded.
    limits: Option<(usize, usize)>,
}

/// One send's share of the in-flight totals; released when dropped, so exactly once.
#[derive(Debug)]
pub(crate) struct Permit {
    owner: Arc<InFlight>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock();
        c.sends -= 1;
        c.bytes -= self.bytes;
        let wake = c.waiting > 0 || c.sends == 0;
        drop(c);
        if wake {
            self.owner.changed.notify_all();
        }
    }
}

impl InFlight {
    /// A tracker; `limits` are (max sends, max bytes) for bounded acquisitions.
    pub(crate) fn new(limits: Option<(usize, usize)>) -> Arc<Self> {
        Arc::new(InFlight {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            limits,
        })
    }

    /// Takes a permit for `bytes`, waiting until `deadline` while the bound is reached.
    /// A single send larger than the byte bound is admitted when nothing else is in flight.
    pub(crate) fn acquire(self: &Arc<Self>, bytes: usize, deadline: Instant) -> Result<Permit> {
        let start = Instant::now();
        let mut c = self.counts.lock();
        if let Some((max_sends, max_bytes)) = self.limits {
            let fits = |c: &Counts| {
                c.sends < max_sends && (c.sends == 0 || c.bytes.saturating_add(bytes) <= max_bytes)
            };
            if !fits(&c) {
                c.waiting += 1;
                c.waits += 1;
                while !fits(&c) {
                    if self.changed.wait_until(&mut c, deadline).timed_out() && !fits(&c) {
                        c.waiting -= 1;
                        return Err(Error::Backpressure {
                            in_flight: c.sends,
                            in_flight_bytes: c.bytes,
                            waited: start.elapsed(),
                        });
                    }
                }
                c.waiting -= 1;
            }
        }
        c.sends += 1;
        c.bytes += bytes;
        Ok(Permit {
            owner: self.clone(),
            bytes,
        })
    }

    /// Takes a permit without any bound (sync sends: the caller's thread is the bound).
    pub(crate) fn acquire_unbounded(self: &Arc<Self>, bytes: usize) -> Permit {
        let mut c = self.counts.lock();
        c.sends += 1;
        c.bytes += bytes;
        Permit {
            owner: self.clone(),
            bytes,
        }
    }

    /// (sends, bytes) in flight now.
    pub(crate) fn current(&self) -> (usize, usize) {
        let c = self.counts.lock();
        (c.sends, c.bytes)
    }

    /// (sends, bytes, callers waiting now, acquisitions that waited so far), for statistics.
    pub(crate) fn stats(&self) -> (usize, usize, usize, u64) {
        let c = self.counts.lock();
        (c.sends, c.bytes, c.waiting, c.waits)
    }

    /// The bounds (sends, bytes), if any.
    pub(crate) fn limits(&self) -> Option<(usize, usize)> {
        self.limits
    }

    /// Waits until nothing is in flight or `deadline`; returns whether it drained.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut c = self.counts.lock();
        while c.sends > 0 {
            if self.changed.wait_until(&mut c, deadline).timed_out() {
                return c.sends == 0;
            }
        }
        true
    }

    /// Callers blocked in [`InFlight::acquire`].
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.counts.lock().waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bound_by_count_then_release() {
        let f = InFlight::new(Some((2, 1000)));
        let a = f.acquire(10, Instant::now()).unwrap();
        let _b = f.acquire(10, Instant::now()).unwrap();
        let e = f.acquire(10, Instant::now() + Duration::from_millis(5));
        assert!(matches!(e, Err(Error::Backpressure { in_flight: 2, .. })));
        drop(a);
        let _c = f.acquire(10, Instant::now()).unwrap();
        assert_eq!(f.current(), (2, 20));
    }

    #[test]
    fn bound_by_bytes_admits_single_large() {
        let f = InFlight::new(Some((10, 100)));
        let big = f.acquire(500, Instant::now()).unwrap();
        assert!(f.acquire(1, Instant::now()).is_err());
        drop(big);
        assert!(f.wait_idle(Instant::now()));
    }

    #[test]
    fn waiter_wakes_on_release() {
        let f = InFlight::new(Some((1, 100)));
        let p = f.acquire(1, Instant::now()).unwrap();
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            f2.acquire(1, Instant::now() + Duration::from_secs(30))
                .map(|_| ())
        });
        while f.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(p);
        assert!(t.join().unwrap().is_ok());
    }
}
