//! The library's transaction threads: [`Workers`], a fixed set of named threads draining one
//! channel (the check-back pool), and the transaction pool started on first use.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

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

/// A fixed set of named threads draining one channel.
pub(super) struct Workers {
    pub(super) name: &'static str,
    pub(super) threads: Vec<JoinHandle<()>>,
    /// One permit per live thread.
    pub(super) alive: Arc<InFlight>,
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
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let jobs = jobs.clone();
            let run = run.clone();
            let permit = alive.acquire_unbounded(0);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let _alive = permit;
                    for job in jobs.iter() {
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
        })
    }

    /// After the channel is closed: waits until `deadline` for the threads to drain it and
    /// end, and joins them. A thread still busy at the deadline is left to end by itself.
    pub(super) fn wait_finished(self, deadline: Instant) -> bool {
        let me = std::thread::current().id();
        if self.threads.iter().any(|t| t.thread().id() == me) {
            // Shutdown from one of our own jobs: the others end by themselves.
            return true;
        }
        if !self.alive.wait_idle(deadline) {
            return false;
        }
        for t in self.threads {
            let _ = t.join();
        }
        true
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
        assert!(w.wait_finished(Instant::now() + Duration::from_secs(20)));
        assert_eq!(sum.load(Ordering::Relaxed), 45 - 3);
    }
}
