//! The `rocketmq-async-N` threads: the producer's internal work that may block, and that
//! therefore runs neither on an I/O thread nor on the callback pool. Asynchronous sends whose
//! route is not cached yet look it up here, retries run here, and finished sends are freed
//! here.
//!
//! These threads never run user callbacks, hooks or listeners (the one exception: the queue
//! selector of [`Producer::send_with_selector_async`](crate::Producer::send_with_selector_async)
//! when the route had to be fetched first, a pure function that must not block). So nothing
//! here ever waits for user code: a callback blocked on a send always gets its result.
//!
//! Jobs accepted are always run: [`Executor::shutdown`] closes the queue and the threads run
//! what is in it before they end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};

use super::async_send::{AsyncSend, SpentSends};
use crate::error::{Error, Result};

/// Work for an internal thread.
pub(super) enum Job {
    /// Run an attempt of an asynchronous send (route lookups may block).
    Attempt(Box<AsyncSend>),
    /// Free the sends the I/O threads finished.
    FreeSpent,
    /// Other internal work that may block (a request's route lookup and heartbeats). Never
    /// user code.
    Run(Box<dyn FnOnce() + Send + 'static>),
}

/// The internal threads of one producer.
pub(crate) struct Executor {
    tx: RwLock<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Where the I/O threads leave finished sends (its flag says whether a
    /// [`Job::FreeSpent`] is queued and has not started yet).
    spent: Arc<SpentSends>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.threads.lock().len())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Starts `n` threads (at least one); `spent` is where the I/O threads leave finished
    /// sends.
    pub(super) fn start(n: usize, spent: &Arc<SpentSends>) -> Result<Executor> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let spent = spent.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rocketmq-async-{i}"))
                .spawn(move || run(&rx, &spent));
            match spawned {
                Ok(t) => threads.push(t),
                // The threads started so far end when `tx` drops.
                Err(e) => return Err(Error::config("async threads", e.to_string())),
            }
        }
        Ok(Executor {
            tx: RwLock::new(Some(tx)),
            threads: Mutex::new(threads),
            spent: spent.clone(),
        })
    }

    /// Queues `job`; gives it back once the executor is shut down.
    pub(super) fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        match self.tx.read().as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        }
    }

    /// Makes sure finished sends are freed soon (within [`FREE_DELAY`] and the time a thread
    /// takes to be free): queues a [`Job::FreeSpent`] unless one is pending already (so a
    /// burst costs one job, not one per send). Returns `false` once the executor is shut down.
    pub(super) fn schedule_free(&self) -> bool {
        let free_queued = &self.spent.free_queued;
        if free_queued.swap(true, Ordering::AcqRel) {
            return true;
        }
        if self.submit(Job::FreeSpent).is_err() {
            free_queued.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Stops taking jobs, lets the threads run what is queued, and joins them (not the
    /// calling thread, if it is one of them).
    pub(super) fn shutdown(&self) {
        drop(self.tx.write().take());
        let me = std::thread::current().id();
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.thread().id() == me {
                continue;
            }
            if t.join().is_err() {
                log::error!("an async thread panicked");
            }
        }
    }
}

/// How long a [`Job::FreeSpent`] waits before it frees: what finishes meanwhile goes with it,
/// so a steady stream of sends costs an I/O thread one wake-up of this pool per period, not
/// one per burst. Also the bound on how long a finished send keeps its memory when nothing
/// else frees it.
pub(super) const FREE_DELAY: Duration = Duration::from_millis(2);

fn run(jobs: &Receiver<Job>, spent: &SpentSends) {
    let free_queued = &spent.free_queued;
    // Reused: no allocation per free once it has room for a burst.
    let mut taken = Vec::new();
    let mut free = || {
        // Cleared first: a send finished after this point queues a new job.
        free_queued.store(false, Ordering::Release);
        spent.take_all(&mut taken);
        for send in taken.drain(..) {
            send.recycle();
        }
    };
    // When the pending free is due.
    let mut free_at: Option<Instant> = None;
    loop {
        let job = match free_at {
            Some(at) => match jobs.recv_deadline(at) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return free(),
            },
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        match job {
            Some(Job::Attempt(send)) => {
                // An attempt ends its send on every path, a panic too (its Drop).
                crate::remoting::guarded("async send attempt", move || send.attempt(true));
            }
            Some(Job::Run(work)) => crate::remoting::guarded("internal job", work),
            Some(Job::FreeSpent) => {
                free_at.get_or_insert_with(|| Instant::now() + FREE_DELAY);
            }
            None => {
                free_at = None;
                free();
            }
        }
        if free_at.is_some_and(|at| Instant::now() >= at) {
            free_at = None;
            free();
        }
    }
}
