//! In-flight accounting: a bound on asynchronous sends by count and by bytes, and the count
//! that `shutdown` waits on.
//!
//! A send holds its [`Permit`] until its caller has its result: for a callback, until the
//! callback has returned, so callbacks that finished but have not run yet count too (slow
//! callbacks make new sends wait instead of queueing without bound).
//!
//! Callback threads never wait for room: the room they would wait for is held by callbacks
//! queued behind them, which only callback threads can release. They take room when there is
//! some; past the bounds they draw on the callback allowance, a second budget of a quarter of
//! the bounds (at least [`MIN_ALLOWANCE_SENDS`] sends; [`InFlight::acquire_now`]); past that
//! they fail at once with [`Error::Backpressure`].

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct Counts {
    /// All sends in flight, the allowance's included.
    sends: usize,
    bytes: usize,
    /// Those admitted under the callback allowance.
    over_sends: usize,
    over_bytes: usize,
    waiting: usize,
    /// Threads in [`InFlight::wait_idle`].
    idle_waiters: usize,
    /// Acquisitions that had to wait (statistics).
    waits: u64,
}

impl Counts {
    /// Whether a send of `bytes` fits `(max_sends, max_bytes)` given `(sends, bytes)` in it.
    /// A single send larger than the byte bound fits when nothing else is in.
    fn fits(
        (sends, held): (usize, usize),
        bytes: usize,
        (max_sends, max_bytes): (usize, usize),
    ) -> bool {
        sends < max_sends && (sends == 0 || held.saturating_add(bytes) <= max_bytes)
    }

    fn main(&self) -> (usize, usize) {
        (self.sends - self.over_sends, self.bytes - self.over_bytes)
    }
}

/// The callback allowance is a quarter of the bounds, but at least this many sends: enough
/// for a few callbacks that each send again (chains), however small `max_in_flight` is.
pub(crate) const MIN_ALLOWANCE_SENDS: usize = 16;

/// Tracks sends in flight; optionally bounds them.
#[derive(Debug)]
pub(crate) struct InFlight {
    counts: Mutex<Counts>,
    changed: Condvar,
    /// `None`: unbounded.
    limits: Option<(usize, usize)>,
    /// The callback allowance (sends, bytes), with `limits`.
    allowance: Option<(usize, usize)>,
}

/// One send's share of the in-flight totals; released when dropped, so exactly once.
#[derive(Debug)]
pub(crate) struct Permit {
    owner: Arc<InFlight>,
    bytes: usize,
    /// Admitted under the callback allowance.
    over: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock();
        c.sends -= 1;
        c.bytes -= self.bytes;
        if self.over {
            c.over_sends -= 1;
            c.over_bytes -= self.bytes;
        }
        let wake = c.waiting > 0 || c.idle_waiters > 0;
        drop(c);
        if wake {
            self.owner.changed.notify_all();
        }
    }
}

thread_local! {
    /// The permits the code running on this thread holds while its callback runs: (the
    /// tracker's address, how many). A callback that shuts its producer down does not wait
    /// for its own send.
    static HELD_HERE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

impl Permit {
    /// Runs `f` as the holder of this permit (see [`InFlight::wait_idle`]).
    pub(crate) fn held_while<R>(&self, f: impl FnOnce() -> R) -> R {
        let me = Arc::as_ptr(&self.owner) as usize;
        let before = HELD_HERE.with(Cell::get);
        let n = if before.0 == me { before.1 + 1 } else { 1 };
        HELD_HERE.with(|h| h.set((me, n)));
        struct Restore((usize, usize));
        impl Drop for Restore {
            fn drop(&mut self) {
                HELD_HERE.with(|h| h.set(self.0));
            }
        }
        let _restore = Restore(before);
        f()
    }
}

impl InFlight {
    /// A tracker; `limits` are (max sends, max bytes) for bounded acquisitions.
    pub(crate) fn new(limits: Option<(usize, usize)>) -> Arc<Self> {
        Arc::new(InFlight {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            limits,
            allowance: limits
                .map(|(sends, bytes)| ((sends / 4).max(MIN_ALLOWANCE_SENDS), bytes / 4)),
        })
    }

    /// Takes a permit for `bytes`, waiting until `deadline` while the bound is reached.
    /// A single send larger than the byte bound is admitted when nothing else is in flight.
    pub(crate) fn acquire(self: &Arc<Self>, bytes: usize, deadline: Instant) -> Result<Permit> {
        self.acquire_waited(bytes, deadline)
            .map(|(permit, _)| permit)
    }

    /// [`InFlight::acquire`], and whether it waited for room (so a caller that read the clock
    /// before knows whether it must read it again).
    pub(crate) fn acquire_waited(
        self: &Arc<Self>,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(Permit, bool)> {
        let mut c = self.counts.lock();
        let mut waited = false;
        if let Some(limits) = self.limits {
            let fits = |c: &Counts| Counts::fits(c.main(), bytes, limits);
            if !fits(&c) {
                // The clock is read only when there is a wait to time.
                let start = Instant::now();
                waited = true;
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
        Ok((self.admit(&mut c, bytes, false), waited))
    }

    /// Takes a permit for `bytes` without waiting, for callback threads: within the bounds if
    /// there is room, else within the callback allowance (a quarter of each bound, at least
    /// [`MIN_ALLOWANCE_SENDS`] sends; a single send larger than its byte share is admitted
    /// when nothing else uses it).
    ///
    /// # Errors
    /// [`Error::Backpressure`] at once when both are full.
    pub(crate) fn acquire_now(self: &Arc<Self>, bytes: usize) -> Result<Permit> {
        let mut c = self.counts.lock();
        let (Some(limits), Some(allowance)) = (self.limits, self.allowance) else {
            return Ok(self.admit(&mut c, bytes, false));
        };
        if Counts::fits(c.main(), bytes, limits) {
            return Ok(self.admit(&mut c, bytes, false));
        }
        if Counts::fits((c.over_sends, c.over_bytes), bytes, allowance) {
            return Ok(self.admit(&mut c, bytes, true));
        }
        Err(Error::Backpressure {
            in_flight: c.sends,
            in_flight_bytes: c.bytes,
            waited: Duration::ZERO,
        })
    }

    /// Takes a permit without any bound (sync sends: the caller's thread is the bound).
    pub(crate) fn acquire_unbounded(self: &Arc<Self>, bytes: usize) -> Permit {
        let mut c = self.counts.lock();
        self.admit(&mut c, bytes, false)
    }

    fn admit(self: &Arc<Self>, c: &mut Counts, bytes: usize, over: bool) -> Permit {
        c.sends += 1;
        c.bytes += bytes;
        if over {
            c.over_sends += 1;
            c.over_bytes += bytes;
        }
        Permit {
            owner: self.clone(),
            bytes,
            over,
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

    /// Waits until nothing is in flight or `deadline`; returns whether it drained. What the
    /// calling thread holds itself (a callback that shuts its producer down holds its own
    /// send's permit, [`Permit::held_while`]) is not waited for.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let me = self as *const InFlight as usize;
        let mine = HELD_HERE.with(|h| match h.get() {
            (owner, n) if owner == me => n,
            _ => 0,
        });
        let mut c = self.counts.lock();
        c.idle_waiters += 1;
        let mut drained = true;
        while c.sends > mine {
            if self.changed.wait_until(&mut c, deadline).timed_out() {
                drained = c.sends <= mine;
                break;
            }
        }
        c.idle_waiters -= 1;
        drained
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
    fn callback_allowance_is_bounded_and_never_waits() {
        let f = InFlight::new(Some((80, 1000)));
        let main: Vec<_> = (0..80).map(|_| f.acquire_now(1).unwrap()).collect();
        let over: Vec<_> = (0..20).map(|_| f.acquire_now(1).unwrap()).collect();
        assert!(over.iter().all(|p| p.over));
        match f.acquire_now(1) {
            Err(Error::Backpressure {
                in_flight: 100,
                waited,
                ..
            }) => assert_eq!(waited, Duration::ZERO),
            other => panic!("expected backpressure, got {other:?}"),
        }
        // The allowance does not take room from the bound.
        drop(main);
        assert_eq!(f.current(), (20, 20));
        let again: Vec<_> = (0..80)
            .map(|_| f.acquire(1, Instant::now()).unwrap())
            .collect();
        assert!(f.acquire(1, Instant::now()).is_err());
        drop((over, again));
        assert_eq!(f.current(), (0, 0));
        // A small bound still leaves room for a few callbacks that send again.
        let small = InFlight::new(Some((1, 1000)));
        let held: Vec<_> = (0..=MIN_ALLOWANCE_SENDS)
            .map(|_| small.acquire_now(1).unwrap())
            .collect();
        assert!(small.acquire_now(1).is_err());
        drop(held);
    }

    #[test]
    fn wait_idle_skips_what_this_thread_holds() {
        let f = InFlight::new(None);
        let p = f.acquire_unbounded(1);
        assert!(!f.wait_idle(Instant::now()));
        assert!(p.held_while(|| f.wait_idle(Instant::now())));
        let other = InFlight::new(None);
        let _q = other.acquire_unbounded(1);
        assert!(p.held_while(|| !other.wait_idle(Instant::now())));
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
