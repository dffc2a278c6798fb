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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

// # The word (no lock on the usual path)
//
// The sends within the bounds ("main" sends) are counted in one atomic word, `main`: the
// bytes in its low `BYTE_BITS` bits, the sends in the next `SEND_BITS`, and the flag `WAIT`
// in the top bit. Taking a permit is a compare-and-swap that adds (1, bytes) only while the
// send fits the bounds (the same `fits` as under a lock: it reads sends and bytes from one
// snapshot); releasing one is a `fetch_sub`. The mutex is taken only to wait (a sender with
// no room, `wait_idle`), for the callback allowance, and by a release that saw `WAIT`.
//
// Why no wake-up is lost: `WAIT` is set (`fetch_or`) under the mutex by every waiter before
// it checks its condition, and cleared only under the mutex when no one waits. A waiter
// checks its condition under the mutex after setting `WAIT` and then waits on the condvar,
// which releases the mutex atomically. A release is a `fetch_sub` on the same word: if it
// comes before the waiter's `fetch_or` in the word's modification order, the waiter's check
// (a load after it) sees the room it made; if after, it sees `WAIT` set, and that releasing
// thread then takes the mutex (so the waiter is either before its check or inside `wait`)
// and notifies. Every wait has its deadline regardless.
//
// The fields cannot overflow: bounds larger than the fields are taken as the fields' maxima
// (`SEND_CAP` sends, `BYTE_CAP` bytes: 8 million sends, 1 TiB, far beyond any memory), and an
// unbounded acquisition that would not fit the fields is counted under the mutex instead
// (`extra`).

const BYTE_BITS: u32 = 40;
const SEND_BITS: u32 = 23;
const BYTE_CAP: u64 = (1 << BYTE_BITS) - 1;
const SEND_CAP: u64 = (1 << SEND_BITS) - 1;
const ONE_SEND: u64 = 1 << BYTE_BITS;
const WAIT: u64 = 1 << 63;

/// (sends, bytes) of a word.
fn unpack(w: u64) -> (usize, usize) {
    (
        ((w >> BYTE_BITS) & SEND_CAP) as usize,
        (w & BYTE_CAP) as usize,
    )
}

#[derive(Debug, Default)]
struct Counts {
    /// Sends counted here rather than in the word: unbounded ones that would not fit it.
    extra_sends: usize,
    extra_bytes: usize,
    /// Those admitted under the callback allowance.
    over_sends: usize,
    over_bytes: usize,
    waiting: usize,
    /// Threads in [`InFlight::wait_idle`].
    idle_waiters: usize,
    /// Acquisitions that had to wait (statistics).
    waits: u64,
}

/// Whether a send of `bytes` fits `(max_sends, max_bytes)` given `(sends, bytes)` in it.
/// A single send larger than the byte bound fits when nothing else is in.
fn fits(
    (sends, held): (usize, usize),
    bytes: usize,
    (max_sends, max_bytes): (usize, usize),
) -> bool {
    sends < max_sends && (sends == 0 || held.saturating_add(bytes) <= max_bytes)
}

/// The callback allowance is a quarter of the bounds, but at least this many sends: enough
/// for a few callbacks that each send again (chains), however small `max_in_flight` is.
pub(crate) const MIN_ALLOWANCE_SENDS: usize = 16;

/// Tracks sends in flight; optionally bounds them.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The main sends: see the comment on the word above.
    main: AtomicU64,
    counts: Mutex<Counts>,
    changed: Condvar,
    /// `None`: unbounded. Within (`SEND_CAP`, `BYTE_CAP`).
    bounds: Option<(usize, usize)>,
    /// The bounds as configured (for [`InFlight::limits`]).
    limits: Option<(usize, usize)>,
    /// The callback allowance (sends, bytes), with `limits`.
    allowance: Option<(usize, usize)>,
}

/// Where a permit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// In the word.
    Main,
    /// In `Counts::extra_*`.
    Extra,
    /// In `Counts::over_*` (the callback allowance).
    Over,
}

/// One send's share of the in-flight totals; released when dropped, so exactly once.
#[derive(Debug)]
pub(crate) struct Permit {
    owner: Arc<InFlight>,
    bytes: usize,
    kind: Kind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let owner = &*self.owner;
        if self.kind == Kind::Main {
            // `bytes` fit the word when it was added (see `try_main`).
            let before = owner
                .main
                .fetch_sub(ONE_SEND + self.bytes as u64, Ordering::SeqCst);
            if before & WAIT != 0 {
                owner.wake();
            }
            return;
        }
        let mut c = owner.counts.lock();
        if self.kind == Kind::Over {
            c.over_sends -= 1;
            c.over_bytes -= self.bytes;
        } else {
            c.extra_sends -= 1;
            c.extra_bytes -= self.bytes;
        }
        let wake = c.waiting > 0 || c.idle_waiters > 0;
        drop(c);
        if wake {
            owner.changed.notify_all();
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
        let cap = |n: usize, cap: u64| n.min(usize::try_from(cap).unwrap_or(usize::MAX));
        Arc::new(InFlight {
            main: AtomicU64::new(0),
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            bounds: limits.map(|(s, b)| (cap(s, SEND_CAP), cap(b, BYTE_CAP))),
            limits,
            allowance: limits
                .map(|(sends, bytes)| ((sends / 4).max(MIN_ALLOWANCE_SENDS), bytes / 4)),
        })
    }

    /// Under no lock: wakes the waiters (a release saw `WAIT`).
    #[cold]
    fn wake(&self) {
        // Taking the mutex orders this after a waiter's check (see the word's comment).
        drop(self.counts.lock());
        self.changed.notify_all();
    }

    /// Adds a send of `bytes` to the word if `admit` accepts (sends, bytes) now and the
    /// fields have room. A compare-and-swap: never beyond the bounds.
    #[inline]
    fn try_main(&self, bytes: usize, admit: impl Fn((usize, usize)) -> bool) -> bool {
        let Ok(add) = u64::try_from(bytes) else {
            return false;
        };
        let mut w = self.main.load(Ordering::Relaxed);
        loop {
            let (sends, held) = unpack(w);
            if !admit((sends, held))
                || sends as u64 >= SEND_CAP
                || (held as u64).saturating_add(add) > BYTE_CAP
            {
                return false;
            }
            match self.main.compare_exchange_weak(
                w,
                w + ONE_SEND + add,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => w = seen,
            }
        }
    }

    fn permit(self: &Arc<Self>, bytes: usize, kind: Kind) -> Permit {
        Permit {
            owner: self.clone(),
            bytes,
            kind,
        }
    }

    /// Under the mutex: sets `WAIT` while anyone waits, clears it when no one does.
    fn set_wait_flag(&self, c: &Counts) {
        if c.waiting > 0 || c.idle_waiters > 0 {
            self.main.fetch_or(WAIT, Ordering::SeqCst);
        } else {
            self.main.fetch_and(!WAIT, Ordering::SeqCst);
        }
    }

    /// Takes a permit for `bytes`, waiting until `deadline` while the bound is reached.
    /// A single send larger than the byte bound is admitted when nothing else is in flight.
    pub(crate) fn acquire(self: &Arc<Self>, bytes: usize, deadline: Instant) -> Result<Permit> {
        self.acquire_waited(bytes, deadline)
            .map(|(permit, _)| permit)
    }

    /// [`InFlight::acquire`], and whether it waited for room (so a caller that read the clock
    /// before knows whether it must read it again).
    // Always inlined: the send path's fast case is a few instructions around one CAS.
    #[inline(always)]
    pub(crate) fn acquire_waited(
        self: &Arc<Self>,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(Permit, bool)> {
        let Some(limits) = self.bounds else {
            return Ok((self.acquire_unbounded(bytes), false));
        };
        if self.try_main(bytes, |now| fits(now, bytes, limits)) {
            return Ok((self.permit(bytes, Kind::Main), false));
        }
        self.acquire_slow(bytes, limits, deadline)
            .map(|permit| (permit, true))
    }

    #[cold]
    fn acquire_slow(
        self: &Arc<Self>,
        bytes: usize,
        limits: (usize, usize),
        deadline: Instant,
    ) -> Result<Permit> {
        // The clock is read only when there is a wait to time.
        let start = Instant::now();
        let mut c = self.counts.lock();
        c.waiting += 1;
        c.waits += 1;
        self.set_wait_flag(&c);
        let result = loop {
            // After `WAIT` is set: a release from here on wakes this thread.
            if self.try_main(bytes, |now| fits(now, bytes, limits)) {
                break Ok(self.permit(bytes, Kind::Main));
            }
            if self.changed.wait_until(&mut c, deadline).timed_out() {
                if self.try_main(bytes, |now| fits(now, bytes, limits)) {
                    break Ok(self.permit(bytes, Kind::Main));
                }
                let (in_flight, in_flight_bytes) = self.totals(&c);
                break Err(Error::Backpressure {
                    in_flight,
                    in_flight_bytes,
                    waited: start.elapsed(),
                });
            }
        };
        c.waiting -= 1;
        self.set_wait_flag(&c);
        result
    }

    /// (sends, bytes) in flight, all kinds; under the mutex.
    fn totals(&self, c: &Counts) -> (usize, usize) {
        let (sends, bytes) = unpack(self.main.load(Ordering::SeqCst));
        (
            sends + c.extra_sends + c.over_sends,
            bytes + c.extra_bytes + c.over_bytes,
        )
    }

    /// Takes a permit for `bytes` without waiting, for callback threads: within the bounds if
    /// there is room, else within the callback allowance (a quarter of each bound, at least
    /// [`MIN_ALLOWANCE_SENDS`] sends; a single send larger than its byte share is admitted
    /// when nothing else uses it).
    ///
    /// # Errors
    /// [`Error::Backpressure`] at once when both are full.
    pub(crate) fn acquire_now(self: &Arc<Self>, bytes: usize) -> Result<Permit> {
        let (Some(limits), Some(allowance)) = (self.bounds, self.allowance) else {
            return Ok(self.acquire_unbounded(bytes));
        };
        if self.try_main(bytes, |now| fits(now, bytes, limits)) {
            return Ok(self.permit(bytes, Kind::Main));
        }
        let mut c = self.counts.lock();
        if fits((c.over_sends, c.over_bytes), bytes, allowance) {
            c.over_sends += 1;
            c.over_bytes += bytes;
            return Ok(self.permit(bytes, Kind::Over));
        }
        let (in_flight, in_flight_bytes) = self.totals(&c);
        Err(Error::Backpressure {
            in_flight,
            in_flight_bytes,
            waited: Duration::ZERO,
        })
    }

    /// Takes a permit without any bound (sync sends: the caller's thread is the bound).
    #[inline]
    pub(crate) fn acquire_unbounded(self: &Arc<Self>, bytes: usize) -> Permit {
        if self.try_main(bytes, |_| true) {
            return self.permit(bytes, Kind::Main);
        }
        let mut c = self.counts.lock();
        c.extra_sends += 1;
        c.extra_bytes += bytes;
        self.permit(bytes, Kind::Extra)
    }

    /// (sends, bytes) in flight now.
    pub(crate) fn current(&self) -> (usize, usize) {
        let c = self.counts.lock();
        self.totals(&c)
    }

    /// (sends, bytes, callers waiting now, acquisitions that waited so far), for statistics.
    pub(crate) fn stats(&self) -> (usize, usize, usize, u64) {
        let c = self.counts.lock();
        let (sends, bytes) = self.totals(&c);
        (sends, bytes, c.waiting, c.waits)
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
        self.set_wait_flag(&c);
        let mut drained = true;
        while self.totals(&c).0 > mine {
            if self.changed.wait_until(&mut c, deadline).timed_out() {
                drained = self.totals(&c).0 <= mine;
                break;
            }
        }
        c.idle_waiters -= 1;
        self.set_wait_flag(&c);
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
        assert!(over.iter().all(|p| p.kind == Kind::Over));
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

    /// Many threads acquire and release under a small bound by count and bytes (so most of
    /// them wait): the bounds always hold (counted independently), every acquisition gets
    /// room before its deadline (a lost wake-up would leave one waiting to it), and the
    /// totals come back to zero.
    #[test]
    fn race_acquire_release_with_waiters() {
        use std::sync::atomic::AtomicUsize;
        const ROUNDS: usize = 10_000;
        const MAX: (usize, usize) = (3, 600);
        let f = InFlight::new(Some(MAX));
        let held = Arc::new(AtomicUsize::new(0)); // sends * 1_000_000 + bytes
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (f, held) = (f.clone(), held.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        let bytes = 1 + (round * 7 + t * 131) % 400;
                        let deadline = Instant::now() + Duration::from_secs(60);
                        let p = f
                            .acquire(bytes, deadline)
                            .unwrap_or_else(|e| panic!("thread {t} round {round}: {e}"));
                        let now =
                            held.fetch_add(1_000_000 + bytes, Ordering::SeqCst) + 1_000_000 + bytes;
                        let (sends, b) = (now / 1_000_000, now % 1_000_000);
                        assert!(sends <= MAX.0 && (sends == 1 || b <= MAX.1), "{sends} {b}");
                        if round % 3 == 0 {
                            std::thread::yield_now();
                        }
                        held.fetch_sub(1_000_000 + bytes, Ordering::SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f.current(), (0, 0));
        assert_eq!(
            f.main.load(Ordering::SeqCst),
            0,
            "WAIT cleared, nothing counted"
        );
        assert!(f.wait_idle(Instant::now()));
    }

    /// One permit, handed over 10,000 times from this thread to a waiting one: each handover
    /// is the only release that can wake the waiter, so a lost wake-up fails its deadline.
    #[test]
    fn race_handover_wakes_every_time() {
        const ROUNDS: usize = 10_000;
        let f = InFlight::new(Some((1, 100)));
        let (tx, rx) = std::sync::mpsc::channel::<Permit>();
        let f2 = f.clone();
        let waiter = std::thread::spawn(move || {
            for round in 0..ROUNDS {
                let deadline = Instant::now() + Duration::from_secs(60);
                let p = f2
                    .acquire(1, deadline)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                // Room came only from a release: it must have woken this thread.
                assert!(Instant::now() < deadline, "round {round}: not woken");
                tx.send(p).unwrap();
            }
        });
        for _ in 0..ROUNDS {
            // The waiter has the permit; take it back and release it, sometimes while the
            // waiter is already blocked, sometimes before it gets there.
            let p = rx.recv().unwrap();
            drop(p);
        }
        waiter.join().unwrap();
        assert_eq!(f.current(), (0, 0));
        assert_eq!(f.main.load(Ordering::SeqCst), 0);
    }

    /// `wait_idle` wakes when the last fast permit is released by another thread.
    #[test]
    fn wait_idle_wakes_on_fast_release() {
        for _ in 0..1_000 {
            let f = InFlight::new(Some((8, 1000)));
            let p = f.acquire(10, Instant::now()).unwrap();
            let t = std::thread::spawn(move || drop(p));
            assert!(f.wait_idle(Instant::now() + Duration::from_secs(60)));
            t.join().unwrap();
        }
    }

    #[test]
    fn unbounded_beyond_the_word_is_counted_exactly() {
        let f = InFlight::new(None);
        let big = f.acquire_unbounded(usize::try_from(BYTE_CAP).unwrap());
        let more = f.acquire_unbounded(5); // does not fit the word's bytes
        assert_eq!(more.kind, Kind::Extra);
        assert_eq!(f.current(), (2, usize::try_from(BYTE_CAP).unwrap() + 5));
        drop((big, more));
        assert_eq!(f.current(), (0, 0));
    }
}
