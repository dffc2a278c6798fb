//! The library's transaction threads: [`Workers`], a fixed set of named threads draining one
//! channel (the check-back pool), and the transaction pool started on first use.
//!
//! Their jobs run user code (transaction listeners). Shutdown lets them drain their queue up
//! to its deadline; then [`Workers::stop`] closes their [`Gate`]: queued jobs are dropped
//! unrun (a transaction's handle then ends with `Shutdown`; a check-back is checked again by
//! the broker) and no job starts any more. A job already in listener code cannot be
//! interrupted: its thread ends when the listener returns, and `stop` says how many there were.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use super::lifecycle::Core;
use crate::error::{Error, Result};
use crate::producer::backpressure::InFlight;

pub(super) enum TxPool {
    NotStarted,
    Running(Sender<TxJob>, Workers),
    Closed,
}

pub(super) type TxJob = Box<dyn FnOnce() + Send + 'static>;

impl Core {
    /// Starts the transaction threads unless they run (or were shut down) already.
    pub(super) fn start_tx_pool(&self) -> Result<()> {
        let mut pool = self.tx_pool.lock();
        if let TxPool::NotStarted = *pool {
            let (sender, receiver) = crossbeam_channel::unbounded::<TxJob>();
            let workers = Workers::spawn("rocketmq-tx", self.tx_threads, receiver, |job| job())?;
            *pool = TxPool::Running(sender, workers);
        }
        Ok(())
    }

    /// Queues a job on the transaction threads, starting them on first use.
    pub(super) fn submit(&self, job: TxJob) -> Result<()> {
        self.start_tx_pool()?;
        let pool = self.tx_pool.lock();
        match &*pool {
            TxPool::Running(sender, _) => sender.send(job).map_err(|_| Error::Shutdown),
            _ => Err(Error::Shutdown),
        }
    }
}

/// Whether jobs may still start, and how many run now. Both change under one lock, so once
/// [`Gate::close`] returns no job starts.
#[derive(Default)]
pub(super) struct Gate {
    state: Mutex<GateState>,
    left: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    running: usize,
}

impl Gate {
    /// Counts a job in; `false` once closed (the job must not run).
    fn enter(&self) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        s.running += 1;
        true
    }

    fn leave(&self) {
        let mut s = self.state.lock();
        s.running -= 1;
        drop(s);
        self.left.notify_all();
    }

    /// Lets no job start any more; returns how many run now.
    fn close(&self) -> usize {
        let mut s = self.state.lock();
        s.closed = true;
        s.running
    }

    /// Waits until at most `n` jobs run, or `deadline`; returns how many run.
    fn wait_at_most(&self, n: usize, deadline: Instant) -> usize {
        let mut s = self.state.lock();
        while s.running > n && !self.left.wait_until(&mut s, deadline).timed_out() {}
        s.running
    }
}

/// Counts a job out of its [`Gate`] when dropped (also if the job panics).
struct Running<'a>(&'a Gate);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A fixed set of named threads draining one channel.
pub(super) struct Workers {
    pub(super) name: &'static str,
    pub(super) threads: Vec<JoinHandle<()>>,
    /// One permit per live thread.
    pub(super) alive: Arc<InFlight>,
    /// Closed at the shutdown deadline.
    pub(super) gate: Arc<Gate>,
}

impl Workers {
    pub(super) fn spawn<T, F>(
        name: &'static str,
        n: usize,
        jobs: Receiver<T>,
        run: F,
    ) -> Result<Workers>
    where
        T: Send + 'static,
        F: Fn(T) + Send + Sync + 'static,
    {
        let run = Arc::new(run);
        let alive = InFlight::new(None);
        let gate = Arc::new(Gate::default());
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let jobs = jobs.clone();
            let run = run.clone();
            let gate = gate.clone();
            let permit = alive.acquire_unbounded(0);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let _alive = permit;
                    for job in jobs.iter() {
                        if !gate.enter() {
                            // Past the shutdown deadline: dropped unrun.
                            drop(job);
                            continue;
                        }
                        let _running = Running(&gate);
                        if catch_unwind(AssertUnwindSafe(|| run(job))).is_err() {
                            log::error!("a {name} job panicked");
                        }
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                // The threads already started end when `jobs` closes (the caller drops it).
                Err(e) => return Err(Error::config("transaction threads", e.to_string())),
            }
        }
        Ok(Workers {
            name,
            threads,
            alive,
            gate,
        })
    }

    /// After the channel is closed: waits until `deadline` for the threads to drain it and
    /// end, and joins them. At the deadline, closes the gate: what is still queued is dropped
    /// unrun and no job starts any more. Returns how many threads were still running a job
    /// then (user code that cannot be interrupted; each such thread ends when its job
    /// returns); 0 when every thread was joined.
    ///
    /// Called from one of its own jobs (a listener that shuts the producer down), it closes
    /// the gate at once, waits until `deadline` for the other running jobs and does not join.
    pub(super) fn stop(self, deadline: Instant) -> usize {
        let me = std::thread::current().id();
        if self.threads.iter().any(|t| t.thread().id() == me) {
            self.gate.close();
            // Ourselves: one job that is running and will return.
            return self.gate.wait_at_most(1, deadline).saturating_sub(1);
        }
        if !self.alive.wait_idle(deadline) {
            let running = self.gate.close();
            if running > 0 {
                return running;
            }
            // The threads only drop what is queued now, and end: joined below.
        }
        for t in self.threads {
            let _ = t.join();
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn workers_drain_then_end() {
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let sum = Arc::new(AtomicU64::new(0));
        let s = sum.clone();
        let w = Workers::spawn("test-workers", 2, rx, move |n| {
            if n == 3 {
                panic!("a job that panics does not kill its thread");
            }
            s.fetch_add(u64::from(n), Ordering::Relaxed);
        })
        .unwrap();
        for n in 0..10 {
            tx.send(n).unwrap();
        }
        drop(tx);
        assert_eq!(w.stop(Instant::now() + Duration::from_secs(20)), 0);
        assert_eq!(sum.load(Ordering::Relaxed), 45 - 3);
    }

    /// A job stuck past the deadline is reported, not joined; what is queued never starts.
    #[test]
    fn stop_at_the_deadline_drops_the_queue() {
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let (gate_tx, gate_rx) = crossbeam_channel::unbounded::<()>();
        let started = Arc::new(AtomicU64::new(0));
        let s = started.clone();
        let w = Workers::spawn("test-stop", 1, rx, move |_| {
            s.fetch_add(1, Ordering::SeqCst);
            let _ = gate_rx.recv();
        })
        .unwrap();
        for n in 0..3 {
            tx.send(n).unwrap();
        }
        drop(tx);
        let alive = w.alive.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        while started.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first job never started");
            std::thread::yield_now();
        }
        assert_eq!(w.stop(Instant::now() + Duration::from_millis(50)), 1);
        drop(gate_tx);
        assert!(alive.wait_idle(Instant::now() + Duration::from_secs(20)));
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    /// Stopped from one of its own jobs: the gate closes at once, the caller is not counted.
    #[test]
    fn stop_from_a_job_of_its_own() {
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let slot: Arc<parking_lot::Mutex<Option<Workers>>> = Arc::default();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<usize>();
        let ran = Arc::new(AtomicU64::new(0));
        let (s, r) = (slot.clone(), ran.clone());
        let w = Workers::spawn("test-self", 1, rx, move |n| {
            r.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                let w = s.lock().take().expect("the workers are in the slot");
                let _ = done_tx.send(w.stop(Instant::now() + Duration::from_secs(20)));
            }
        })
        .unwrap();
        let alive = w.alive.clone();
        *slot.lock() = Some(w);
        for n in 0..3 {
            tx.send(n).unwrap();
        }
        drop(tx);
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(20)), Ok(0));
        assert!(alive.wait_idle(Instant::now() + Duration::from_secs(20)));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
