//! [`Producer::flush`](crate::Producer::flush): waiting for every send accepted before a point
//! in time to end, without stopping the producer.
//!
//! # How sends are counted
//!
//! Every public send method takes a [`Ticket`] when it accepts a send and drops it when the
//! send has ended for its caller: a synchronous send when it returns, an asynchronous one
//! right after its handle is completed or its callback has returned (a [`TrackedCompleter`]
//! or a wrapped callback carries the ticket). Tickets belong to *generations*: a flush closes
//! the current generation (new sends go to the next one) and waits until every older
//! generation has no ticket left. Sends that start during a flush are therefore not waited
//! for, and a flush never waits longer because the producer stays busy.
//!
//! # The fast path (no lock while no flush is open)
//!
//! The table is a short deque of counts, one per open generation, under a mutex (no
//! allocation on the send path; the deque grows only when a flush closes a generation that
//! still has sends). While only the current generation is open (no flush waiting for an
//! older one), sends do not touch it: they count in one atomic word, `fast`, whose low bits
//! are the *fast count* `F` and whose top bit `SLOW` says the table is in charge.
//!
//! - Taking a ticket: a compare-and-swap `F -> F + 1` that succeeds only while `SLOW` is
//!   clear (a fast ticket); when `SLOW` is set, the ticket is counted in the table's newest
//!   generation under the mutex (a slow ticket). Fast tickets all belong to the generation
//!   `fast_gen` (in the table).
//! - Dropping a fast ticket: `fetch_sub(1)`; only if the value before had `SLOW` set, lock the
//!   mutex, pop the ended generations and wake the flushes.
//! - A flush (under the mutex) sets `SLOW` with `fetch_or`, which returns `F` at that instant;
//!   from then on `F` only decreases. Generation `fast_gen` has `counts[fast_gen] + F` sends.
//! - Under the mutex, whenever only one generation is left (every flush satisfied), `SLOW`
//!   is cleared again and `fast_gen` is that generation.
//!
//! Why no wake-up is lost: `SLOW` is set and cleared only under the mutex, and set by every
//! flush before it waits; it is cleared only when the table holds one generation, i.e. when
//! every flush's target has been reached. So while a flush waits, `SLOW` is set. A fast ticket
//! whose decrement happened while `SLOW` was clear happened, in the word's modification order,
//! before the flush's `fetch_or`, so the flush reads `F` without it. A decrement that sees
//! `SLOW` set is followed by that thread locking the mutex, recomputing (reading `F` after its
//! decrement) and notifying under the usual condvar protocol: the flush checks its condition
//! under the mutex and waits atomically with releasing it, so either it sees the new state or
//! it is already waiting when the notification comes. Every wait also keeps its deadline.
//!
//! Why the generations stay exact: a fast ticket is taken only by a CAS on a word with `SLOW`
//! clear, so it happened before any later flush's `fetch_or` and belongs to `fast_gen`, the
//! newest generation then. `fast_gen` changes only when `SLOW` is cleared, and that happens
//! either with `fast_gen` unchanged (the flush had nothing to wait for) or after generation
//! `fast_gen` was popped, which needs `F == 0`: no fast ticket is ever counted in the wrong
//! generation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::message::SendResult;
use crate::remoting::Completer;

/// `fast`'s flag: the table counts new tickets (a flush is open).
const SLOW: u64 = 1 << 63;
/// A ticket's generation when it was counted in `fast`.
const FAST_TICKET: u64 = u64::MAX;

#[derive(Debug)]
struct Generations {
    /// The generation of `counts[0]`.
    base: u64,
    /// Slow tickets not ended, per generation from `base`; the last one takes new slow
    /// tickets. Never empty.
    counts: VecDeque<u64>,
    /// The generation of every fast ticket (see the module docs).
    fast_gen: u64,
    /// Flushes waiting now.
    waiting: usize,
}

/// Counts the sends of a producer by generation; see the module docs.
#[derive(Debug)]
pub(crate) struct FlushTracker {
    /// `SLOW` and the fast count.
    fast: AtomicU64,
    state: Mutex<Generations>,
    changed: Condvar,
}

/// One accepted send; dropping it ends the send for [`FlushTracker::flush`].
#[derive(Debug)]
pub(crate) struct Ticket {
    owner: Arc<FlushTracker>,
    /// `FAST_TICKET` or the generation in the table.
    generation: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let owner = &*self.owner;
        if self.generation == FAST_TICKET {
            let before = owner.fast.fetch_sub(1, Ordering::SeqCst);
            if before & SLOW == 0 {
                return; // no flush open: nothing to advance, nobody to wake
            }
            let mut g = owner.state.lock();
            owner.advance(&mut g);
            return;
        }
        let mut g = owner.state.lock();
        let Some(at) = self
            .generation
            .checked_sub(g.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return; // cannot happen: a generation is popped only once its count is zero
        };
        if let Some(count) = g.counts.get_mut(at) {
            *count = count.saturating_sub(1);
        }
        owner.advance(&mut g);
    }
}

impl FlushTracker {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(FlushTracker {
            fast: AtomicU64::new(0),
            state: Mutex::new(Generations {
                base: 0,
                counts: VecDeque::from([0]),
                fast_gen: 0,
                waiting: 0,
            }),
            changed: Condvar::new(),
        })
    }

    /// The fast tickets not ended (`SLOW` masked off).
    fn fast_count(&self) -> u64 {
        self.fast.load(Ordering::SeqCst) & !SLOW
    }

    /// Sends of generation `base + at` not ended.
    fn count_at(&self, g: &Generations, at: usize) -> u64 {
        let slow = g.counts.get(at).copied().unwrap_or(0);
        if g.base + at as u64 == g.fast_gen {
            slow + self.fast_count()
        } else {
            slow
        }
    }

    /// Under the mutex: pops the ended generations (waking the flushes if any was popped) and
    /// goes back to fast tickets when only the current generation is left.
    fn advance(&self, g: &mut Generations) {
        let mut advanced = false;
        while g.counts.len() > 1 && self.count_at(g, 0) == 0 {
            g.counts.pop_front();
            g.base += 1;
            advanced = true;
        }
        if g.counts.len() == 1 {
            // Every flush's target is reached. If `fast_gen` was popped, `F` is 0 and
            // stays 0 until `SLOW` is cleared here.
            g.fast_gen = g.base;
            self.fast.fetch_and(!SLOW, Ordering::SeqCst);
        }
        if advanced && g.waiting > 0 {
            self.changed.notify_all();
        }
    }

    /// Counts a send in the current generation until the ticket drops.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let mut now = self.fast.load(Ordering::Relaxed);
        while now & SLOW == 0 {
            match self
                .fast
                .compare_exchange_weak(now, now + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ticket {
                        owner: self.clone(),
                        generation: FAST_TICKET,
                    }
                }
                Err(seen) => now = seen,
            }
        }
        self.slow_ticket()
    }

    #[cold]
    fn slow_ticket(self: &Arc<Self>) -> Ticket {
        let mut g = self.state.lock();
        let generation = g.base + g.counts.len() as u64 - 1;
        if let Some(last) = g.counts.back_mut() {
            *last += 1;
        }
        Ticket {
            owner: self.clone(),
            generation,
        }
    }

    /// Closes the current generation: later tickets go to a new one. Returns the generation
    /// every older one of which must end.
    pub(crate) fn close_generation(&self) -> u64 {
        let mut g = self.state.lock();
        // From here new tickets are slow and `F` only decreases.
        self.fast.fetch_or(SLOW, Ordering::SeqCst);
        let last = g.counts.len() - 1;
        if self.count_at(&g, last) > 0 {
            g.counts.push_back(0);
        }
        let target = g.base + g.counts.len() as u64 - 1;
        // Nothing to wait for: back to fast tickets at once.
        self.advance(&mut g);
        target
    }

    /// Waits until every generation older than `target` has ended, or `deadline`. Returns the
    /// sends of those generations still not ended (0: all ended).
    pub(crate) fn wait(&self, target: u64, deadline: Instant) -> usize {
        let mut g = self.state.lock();
        g.waiting += 1;
        while g.base < target {
            if self.changed.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        g.waiting -= 1;
        let older = usize::try_from(target.saturating_sub(g.base)).unwrap_or(usize::MAX);
        let left: u64 = (0..older.min(g.counts.len()))
            .map(|at| self.count_at(&g, at))
            .sum();
        usize::try_from(left).unwrap_or(usize::MAX)
    }
}
/// A send handle's completer that also ends the send's [`Ticket`], after completing it.
pub(crate) struct TrackedCompleter {
    completer: Completer<SendResult>,
    ticket: Option<Ticket>,
}

impl TrackedCompleter {
    /// A completer counted by `ticket`.
    pub(crate) fn new(completer: Completer<SendResult>, ticket: Ticket) -> Self {
        TrackedCompleter {
            completer,
            ticket: Some(ticket),
        }
    }

    /// Completes the handle, then ends the ticket (so a flush that returns sees the handle
    /// done). Returns `false` if it was complete already.
    #[inline(always)] // the result is large: no copy per call (see `finish_done`)
    pub(crate) fn complete(self, value: Result<SendResult>) -> bool {
        let (completer, ticket) = self.into_parts();
        let done = completer.complete(value);
        drop(ticket);
        done
    }

    /// The completer and the ticket, for a caller that completes the handle itself (one call
    /// fewer for the large result to be passed through) and then drops the ticket, as
    /// [`TrackedCompleter::complete`] does.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (Completer<SendResult>, Option<Ticket>) {
        (self.completer, self.ticket)
    }
}

/// An untracked completer (the caller holds the ticket, as a synchronous send does).
impl From<Completer<SendResult>> for TrackedCompleter {
    fn from(completer: Completer<SendResult>) -> Self {
        TrackedCompleter {
            completer,
            ticket: None,
        }
    }
}

// Dropped without `complete`: the completer's own Drop ends the handle with Shutdown, and the
// ticket (declared after it) drops after that.

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flush_waits_for_older_sends_only() {
        let t = FlushTracker::new();
        let a = t.ticket();
        let b = t.ticket();
        let target = t.close_generation();
        let later = t.ticket(); // not waited for
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(t.wait(target, soon), 2);
        drop(a);
        assert_eq!(t.wait(target, Instant::now()), 1);
        drop(b);
        assert_eq!(t.wait(target, Instant::now()), 0);
        // The later send is in the next flush.
        let target = t.close_generation();
        assert_eq!(t.wait(target, Instant::now()), 1);
        drop(later);
        assert_eq!(t.wait(target, Instant::now()), 0);
        assert_eq!(t.state.lock().counts.len(), 1);
    }

    #[test]
    fn out_of_order_ends_and_idle_flushes() {
        let t = FlushTracker::new();
        // A flush with nothing in flight does not grow the table.
        for _ in 0..10 {
            let target = t.close_generation();
            assert_eq!(t.wait(target, Instant::now()), 0);
        }
        assert_eq!(t.state.lock().counts.len(), 1);
        let old = t.ticket();
        let g1 = t.close_generation();
        let newer = t.ticket();
        let g2 = t.close_generation();
        drop(newer); // the newer generation ends first
        assert_eq!(t.wait(g2, Instant::now()), 1);
        drop(old);
        assert_eq!(t.wait(g1, Instant::now()), 0);
        assert_eq!(t.wait(g2, Instant::now()), 0);
    }

    #[test]
    fn waiter_wakes_when_the_last_older_send_ends() {
        let t = FlushTracker::new();
        let a = t.ticket();
        let target = t.close_generation();
        let t2 = t.clone();
        let waiter =
            std::thread::spawn(move || t2.wait(target, Instant::now() + Duration::from_secs(30)));
        while t.state.lock().waiting == 0 {
            std::thread::yield_now();
        }
        drop(a);
        assert_eq!(waiter.join().unwrap(), 0);
    }

    #[test]
    fn tickets_are_fast_until_a_flush_and_fast_again_after() {
        let t = FlushTracker::new();
        let a = t.ticket();
        assert_eq!(a.generation, FAST_TICKET);
        let target = t.close_generation();
        let during = t.ticket(); // a flush is open: counted in the table
        assert_ne!(during.generation, FAST_TICKET);
        assert_eq!(t.wait(target, Instant::now()), 1);
        drop(a); // the fast ticket ends generation `target - 1`: back to fast tickets
        assert_eq!(t.wait(target, Instant::now()), 0);
        assert_eq!(t.ticket().generation, FAST_TICKET);
        // `during` is still counted by the next flush, with the fast tickets.
        let b = t.ticket();
        let target = t.close_generation();
        assert_eq!(t.wait(target, Instant::now()), 2);
        drop((during, b));
        assert_eq!(t.wait(target, Instant::now()), 0);
        assert_eq!(t.fast.load(Ordering::SeqCst), 0);
    }

    /// Many threads take and drop tickets while flushes run: every flush returns 0 (all its
    /// older sends ended) well before its deadline, and each flush sees the tickets a thread
    /// held when it started (a thread holds a ticket across its "flush started" signal).
    #[test]
    fn race_tickets_and_flushes() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        const ROUNDS: usize = 10_000;
        let t = FlushTracker::new();
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (t, stop, ended) = (t.clone(), stop.clone(), ended.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let a = t.ticket();
                        let b = t.ticket();
                        drop(a);
                        std::thread::yield_now();
                        drop(b);
                        ended.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for round in 0..ROUNDS {
            // Generous: a lost wake-up would show as a flush waiting to its deadline.
            let deadline = Instant::now() + Duration::from_secs(30);
            // A ticket held across the flush must be counted, then released by another
            // thread while the flush waits.
            let mine = t.ticket();
            let target = t.close_generation();
            if round % 2 == 0 {
                assert!(t.wait(target, Instant::now()) >= 1, "round {round}");
            }
            let releaser = std::thread::spawn(move || drop(mine));
            let left = t.wait(target, deadline);
            assert_eq!(left, 0, "round {round}: flush did not see its sends end");
            assert!(
                Instant::now() < deadline,
                "round {round}: the flush was not woken"
            );
            releaser.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        assert!(ended.load(Ordering::SeqCst) > 0);
        let target = t.close_generation();
        assert_eq!(t.wait(target, Instant::now()), 0);
        assert_eq!(t.state.lock().counts.len(), 1);
        assert_eq!(t.fast.load(Ordering::SeqCst), 0);
    }
}
