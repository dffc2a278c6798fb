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
//! The table is a short deque of counts, one per open generation; a send only adds one to
//! the newest count and subtracts one from its own, under a lock held for a few instructions
//! (no allocation on the send path; the deque grows only when a flush closes a generation
//! that still has sends).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::message::SendResult;
use crate::remoting::Completer;

#[derive(Debug)]
struct Generations {
    /// The generation of `counts[0]`.
    base: u64,
    /// Sends not ended, per generation from `base`; the last one takes new sends. Never empty.
    counts: VecDeque<u64>,
    /// Flushes waiting now.
    waiting: usize,
}

/// Counts the sends of a producer by generation; see the module docs.
#[derive(Debug)]
pub(crate) struct FlushTracker {
    state: Mutex<Generations>,
    changed: Condvar,
}

/// One accepted send; dropping it ends the send for [`FlushTracker::flush`].
#[derive(Debug)]
pub(crate) struct Ticket {
    owner: Arc<FlushTracker>,
    generation: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.owner.state.lock();
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
        let mut advanced = false;
        while g.counts.len() > 1 && g.counts.front() == Some(&0) {
            g.counts.pop_front();
            g.base += 1;
            advanced = true;
        }
        let wake = advanced && g.waiting > 0;
        drop(g);
        if wake {
            self.owner.changed.notify_all();
        }
    }
}

impl FlushTracker {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(FlushTracker {
            state: Mutex::new(Generations {
                base: 0,
                counts: VecDeque::from([0]),
                waiting: 0,
            }),
            changed: Condvar::new(),
        })
    }

    /// Counts a send in the current generation until the ticket drops.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
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
        if g.counts.back().is_some_and(|&n| n > 0) {
            g.counts.push_back(0);
        }
        g.base + g.counts.len() as u64 - 1
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
        let left: u64 = g.counts.iter().take(older).sum();
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
}
