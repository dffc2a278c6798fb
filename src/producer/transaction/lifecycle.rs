//! The transaction producer's shared state and its life: [`Owner`] (what user handles hold)
//! and [`Core`] (what the check-back hook and the threads hold), the start that installs the
//! check-back hook before any connection opens, and the shutdown order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::check::CheckJob;
use super::counters::Counters;
use super::workers::{TxPool, Workers};
use super::{TransactionListener, TransactionProducer};
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::producer::backpressure::{InFlight, Permit};
use crate::producer::{Inner, Producer, ServerRequestHook};
use crate::protocol::{RemotingCommand, RequestCode};
use crossbeam_channel::Sender;

/// Shuts everything down when the last user handle goes.
pub(super) struct Owner {
    pub(super) producer: Producer,
    pub(super) core: Arc<Core>,
    pub(super) check_workers: Mutex<Option<Workers>>,
    pub(super) stopping: AtomicBool,
    /// Transactional sends under way (sync ones until their END_TRANSACTION is sent, async ones
    /// until their handle completes); shutdown waits for them.
    pub(super) active: Arc<InFlight>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(crate::DROP_SHUTDOWN_TIMEOUT) {
            log::warn!("transaction producer shutdown on drop: {e}");
        }
    }
}

/// What the check-back hook, the check threads and the transaction threads share. Holds the
/// producer weakly: the hook lives inside the producer.
pub(super) struct Core {
    pub(super) group: String,
    /// The largest body a check-back's message is inflated to (the maximum message size).
    pub(super) max_body: usize,
    pub(super) listener: Arc<dyn TransactionListener>,
    pub(super) inner: Weak<Inner>,
    pub(super) stats: Counters,
    /// Where checks go; `None` once shutdown began.
    pub(super) checks: RwLock<Option<Sender<CheckJob>>>,
    /// The transaction threads of asynchronous transactions, started on first use.
    pub(super) tx_pool: Mutex<TxPool>,
    pub(super) tx_threads: usize,
    /// Recent transactions (bounded).
    pub(super) records: Arc<super::RecordTable>,
}

impl TransactionProducer {
    pub(super) fn start_shared(
        config: ProducerConfig,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<Self> {
        let check_threads = config.transaction_check_threads().max(1);
        let check_queue = config.transaction_check_queue().max(1);
        let tx_threads = config.callback_threads().max(1);
        // No connection exists yet: routes (even those of `topics`) are fetched after the hook
        // below is in place, so no broker can reach this client before it.
        let producer = Producer::start_unresolved(config)?;
        let (check_tx, check_rx) = crossbeam_channel::bounded::<CheckJob>(check_queue);
        let core = Arc::new(Core {
            // As on the wire: PGROUP, END_TRANSACTION and the check filter use it.
            group: producer.inner().defaults.group.clone(),
            max_body: producer.config().max_message_size(),
            listener,
            inner: Arc::downgrade(producer.inner()),
            stats: Counters::default(),
            checks: RwLock::new(Some(check_tx)),
            tx_pool: Mutex::new(TxPool::NotStarted),
            tx_threads,
            records: Arc::new(super::RecordTable::new(
                producer.config().transaction_records(),
                producer.config().transaction_record_age(),
            )),
        });
        *producer.inner().tx_records.lock() = Some(core.records.clone());
        let worker_core = core.clone();
        let check_workers =
            match Workers::spawn("rocketmq-tx-check", check_threads, check_rx, move |job| {
                worker_core.run_check(job)
            }) {
                Ok(w) => w,
                Err(e) => {
                    core.checks.write().take();
                    let _ = producer.shutdown(Duration::ZERO);
                    return Err(e);
                }
            };
        let stats_core = core.clone();
        producer
            .inner()
            .stats
            .transactions()
            .attach(move || stats_core.stats.snapshot());
        let hook_core = core.clone();
        let hook: ServerRequestHook = Arc::new(move |addr: &str, request: RemotingCommand| {
            hook_core.on_check(addr, request);
            // CHECK_TRANSACTION_STATE is oneway: nothing goes back on its connection.
            None
        });
        producer
            .inner()
            .server_hooks
            .write()
            .push((RequestCode::CHECK_TRANSACTION_STATE, hook));
        // The configured topics now: their brokers learn of this producer (heartbeat) and
        // check back the half messages a crashed predecessor left, before any send.
        producer.inner().resolve_configured_topics();
        Ok(TransactionProducer {
            owner: Arc::new(Owner {
                producer,
                core,
                check_workers: Mutex::new(Some(check_workers)),
                stopping: AtomicBool::new(false),
                active: InFlight::new(None),
            }),
        })
    }

    /// Registers a transactional send that shutdown waits for, unless shutdown has begun.
    pub(super) fn enter(&self) -> Result<Permit> {
        // Counted first, checked second: a shutdown that begins in between sees the count.
        let permit = self.owner.active.acquire_unbounded(0);
        if self.is_shut_down() {
            Err(Error::Shutdown)
        } else {
            Ok(permit)
        }
    }
}

impl Owner {
    pub(super) fn shutdown(&self, timeout: Duration) -> Result<()> {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        if !self.active.wait_idle(deadline) {
            let (n, _) = self.active.current();
            log::warn!("transaction producer shutdown: {n} transactional sends still under way");
        }
        // Stop taking checks; the accepted ones still run and answer.
        self.core.checks.write().take();
        let check_workers = self.check_workers.lock().take();
        let tx_pool = std::mem::replace(&mut *self.core.tx_pool.lock(), TxPool::Closed);
        let tx_workers = match tx_pool {
            TxPool::Running(sender, workers) => {
                drop(sender);
                Some(workers)
            }
            _ => None,
        };
        let mut stuck = Vec::new();
        for (workers, what) in [
            (check_workers, "transaction check"),
            (tx_workers, "transaction"),
        ] {
            let Some(workers) = workers else { continue };
            let name = workers.name;
            let running = workers.stop(deadline);
            if running > 0 {
                log::warn!(
                    "transaction producer shutdown: {running} {name} threads still in listener \
                     code at the deadline"
                );
                stuck.push(format!("{running} {what} thread(s)"));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.producer.shutdown(left)?;
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(Error::User(format!(
                "shutdown deadline passed with {} still running listener code; no listener \
                 call starts any more, and they end when the listener returns",
                stuck.join(" and ")
            )))
        }
    }
}
