//! Transactional messages: [`TransactionProducer`], [`TransactionListener`], [`Transaction`],
//! and the brokers' check-backs (protocol.md section 9). The user-facing docs are on
//! [`TransactionProducer`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Mutex, RwLock};

use super::backpressure::{InFlight, Permit};
use super::{prepare, Inner, Producer, ServerRequestHook};
use crate::config::{ProducerConfig, ProducerConfigBuilder};
use crate::error::{Error, Result};
use crate::message::{property, Message, MessageExt, SendResult, SendStatus};
use crate::protocol::frame::CodecError;
use crate::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
};
use crate::protocol::message_codec::{decode_stored_messages, sys_flag};
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::remoting::{pair, Completer, Handle};

/// What a [`TransactionListener`] returns: a state, or an error that counts as
/// [`LocalTransactionState::Unknown`] (its text goes to the broker in the END_TRANSACTION remark).
pub type ListenerResult =
    std::result::Result<LocalTransactionState, Box<dyn std::error::Error + Send + Sync + 'static>>;

/// The outcome of a local transaction, as the broker learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTransactionState {
    /// Commit: the message becomes visible to consumers (`commitOrRollback` 8).
    CommitMessage,
    /// Roll back: the message is dropped and never visible (`commitOrRollback` 12).
    RollbackMessage,
    /// Not decided yet: the broker will check back later (`commitOrRollback` 0).
    Unknown,
}

impl LocalTransactionState {
    /// The `commitOrRollback` value of END_TRANSACTION.
    fn end_code(self) -> i32 {
        match self {
            LocalTransactionState::CommitMessage => sys_flag::TRANSACTION_COMMIT,
            LocalTransactionState::RollbackMessage => sys_flag::TRANSACTION_ROLLBACK,
            LocalTransactionState::Unknown => sys_flag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// Your side of a transaction: runs the local transaction and answers the brokers' check-backs.
///
/// Both methods may run on library threads (see [`TransactionProducer`]); they should not block
/// for long. A panic or an `Err` counts as [`LocalTransactionState::Unknown`].
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction of a half message the broker has stored.
    ///
    /// `msg` is the message as sent (with `TRAN_MSG`, `PGROUP` and its `UNIQ_KEY`);
    /// `transaction_id` is its client id (`UNIQ_KEY`), the same id a later check-back names;
    /// `arg` is the value given to the send call (downcast it to its type).
    fn execute_local_transaction(
        &self,
        msg: &Message,
        transaction_id: &str,
        arg: &dyn Any,
    ) -> ListenerResult;

    /// Answers a check-back: where does the transaction of this half message stand?
    ///
    /// `msg` is the half message as the broker stored it (its real topic and queue; the
    /// `TRANSACTION_CHECK_TIMES` property counts the checks); `transaction_id` is its `UNIQ_KEY`.
    /// Runs on a check thread.
    fn check_local_transaction(&self, msg: &MessageExt, transaction_id: &str) -> ListenerResult;
}

impl<T: TransactionListener + ?Sized> TransactionListener for Arc<T> {
    fn execute_local_transaction(
        &self,
        msg: &Message,
        transaction_id: &str,
        arg: &dyn Any,
    ) -> ListenerResult {
        (**self).execute_local_transaction(msg, transaction_id, arg)
    }

    fn check_local_transaction(&self, msg: &MessageExt, transaction_id: &str) -> ListenerResult {
        (**self).check_local_transaction(msg, transaction_id)
    }
}

/// The result of a transactional send: the half message's send result and what the local
/// transaction decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionSendResult {
    /// The half message's send result (its queue offset is in the half queue).
    pub send_result: SendResult,
    /// The transaction id: the message's `UNIQ_KEY`, which check-backs name.
    pub transaction_id: String,
    /// What the local transaction decided ([`LocalTransactionState::RollbackMessage`] without
    /// running it when the half message was stored with a flush or slave problem, as Java).
    pub local_state: LocalTransactionState,
}

/// Counts of a [`TransactionProducer`]'s transactions, from
/// [`TransactionProducer::transaction_stats`].
///
/// `committed`, `rolled_back` and `unknown` count decisions, from local transactions and from
/// check-backs alike: a transaction that was unknown and then committed by a check-back counts
/// once in `unknown`, once in `checked` and once in `committed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionStats {
    /// Decisions to commit.
    pub committed: u64,
    /// Decisions to roll back (including half messages stored with a flush or slave problem).
    pub rolled_back: u64,
    /// Unknown outcomes: listener returned Unknown, panicked or failed, or a [`Transaction`]
    /// was dropped without commit or rollback.
    pub unknown: u64,
    /// Check-backs answered (the listener ran).
    pub checked: u64,
    /// Check-backs dropped because the check queue was full.
    pub check_overflow: u64,
    /// Check-backs ignored: for another producer group, undecodable, or after shutdown began.
    pub check_ignored: u64,
    /// END_TRANSACTION requests that could not be sent (no broker address, connection
    /// failure, shutdown). The broker resolves those transactions by checking back.
    pub end_failed: u64,
}

impl TransactionStats {
    /// The `transactions` object of the statistics JSON schema (see [`crate::stats`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "committed": self.committed,
            "rolled_back": self.rolled_back,
            "unknown": self.unknown,
            "checked": self.checked,
            "check_overflow": self.check_overflow,
            "check_ignored": self.check_ignored,
            "end_failed": self.end_failed,
        })
    }
}

#[derive(Debug, Default)]
struct Counters {
    committed: AtomicU64,
    rolled_back: AtomicU64,
    unknown: AtomicU64,
    checked: AtomicU64,
    check_overflow: AtomicU64,
    check_ignored: AtomicU64,
    end_failed: AtomicU64,
}

impl Counters {
    fn decided(&self, state: LocalTransactionState) {
        let c = match state {
            LocalTransactionState::CommitMessage => &self.committed,
            LocalTransactionState::RollbackMessage => &self.rolled_back,
            LocalTransactionState::Unknown => &self.unknown,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TransactionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransactionStats {
            committed: get(&self.committed),
            rolled_back: get(&self.rolled_back),
            unknown: get(&self.unknown),
            checked: get(&self.checked),
            check_overflow: get(&self.check_overflow),
            check_ignored: get(&self.check_ignored),
            end_failed: get(&self.end_failed),
        }
    }
}

/// Settings of a [`TransactionProducer`]: the producer's settings and the listener. Made by
/// [`ProducerConfigBuilder::listener`].
pub struct TransactionProducerBuilder {
    config: ProducerConfigBuilder,
    listener: Arc<dyn TransactionListener>,
}

impl fmt::Debug for TransactionProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionProducerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProducerConfigBuilder {
    /// Sets the transaction listener, which makes this the builder of a
    /// [`TransactionProducer`]. Set every other setting first.
    ///
    /// ```no_run
    /// # use rocketmq_mio::{TransactionProducer, TransactionListener};
    /// # #[allow(dead_code)]
    /// fn start(listener: impl TransactionListener) -> rocketmq_mio::Result<TransactionProducer> {
    ///     TransactionProducer::builder("GID_TX")
    ///         .name_server("127.0.0.1:9876")
    ///         .send_timeout(std::time::Duration::from_secs(5))
    ///         .listener(listener)
    ///         .start()
    /// }
    /// ```
    pub fn listener(self, listener: impl TransactionListener) -> TransactionProducerBuilder {
        TransactionProducerBuilder {
            config: self,
            listener: Arc::new(listener),
        }
    }
}

impl TransactionProducerBuilder {
    /// Replaces the listener.
    pub fn listener(mut self, listener: impl TransactionListener) -> Self {
        self.listener = Arc::new(listener);
        self
    }

    /// Validates the settings and starts the producer.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting or when threads cannot be started.
    pub fn start(self) -> Result<TransactionProducer> {
        TransactionProducer::start_shared(self.config.build()?, self.listener)
    }
}

/// A producer of transactional messages. Cheap to clone; every clone shares the producer.
///
/// It is a [`Producer`] (reachable with [`TransactionProducer::producer`] for ordinary sends)
/// plus a [`TransactionListener`] and the check-back pool.
///
/// Dropping the last clone (and every open [`Transaction`]) shuts it down, as
/// [`TransactionProducer::shutdown`] with [`crate::DROP_SHUTDOWN_TIMEOUT`].
///
/// # The cycle
///
/// 1. The producer sends a **half message**: the message with `TRAN_MSG=true` and
///    `PGROUP=<group>` (and any delay level removed), synchronously and with the usual retries.
///    The broker stores it where no consumer sees it.
/// 2. Your **local transaction** runs ([`TransactionListener::execute_local_transaction`]), or
///    your own code does its work between [`TransactionProducer::begin`] and
///    [`Transaction::commit`] / [`Transaction::rollback`].
/// 3. The producer sends **END_TRANSACTION** (oneway) to the master of the broker that holds the
///    half message: commit makes the message visible, rollback drops it, unknown leaves it to
///    step 4.
/// 4. For a half message left unresolved (unknown, a lost END_TRANSACTION, a crashed producer),
///    the broker **checks back** with a producer of the group: CHECK_TRANSACTION_STATE runs
///    [`TransactionListener::check_local_transaction`], and its answer goes back as a new
///    END_TRANSACTION with the offsets the check named.
///
/// # Threads
///
/// - [`TransactionProducer::send_message_in_transaction`] runs the local transaction on the
///   calling thread.
/// - [`TransactionProducer::send_message_in_transaction_async`] runs it on a transaction thread
///   (`rocketmq-tx-N`, as many as [`ProducerConfig::callback_threads`], started on first use):
///   never on an I/O thread nor on the caller's thread.
/// - Check-backs run on their own bounded pool (`rocketmq-tx-check-N`):
///   [`ProducerConfig::transaction_check_threads`] threads (default 1) and a queue of
///   [`ProducerConfig::transaction_check_queue`] checks (default 2,000, as Java). A check that
///   finds the queue full is dropped, counted in [`TransactionStats::check_overflow`] and logged;
///   the broker checks again later. Receiving a check never blocks a library thread.
/// - The check-back handler is installed when the producer starts, before it opens any
///   connection, so it answers on every connection, including one that has only carried
///   heartbeats (a producer restarted after a crash resolves the half messages its predecessor
///   left).
///
/// A listener that panics or returns an error counts as [`LocalTransactionState::Unknown`]: the
/// broker will check back. It never takes a library thread down.
///
/// # Example
///
/// ```
/// use std::any::Any;
/// use rocketmq_mio::testing::MockBroker;
/// use rocketmq_mio::{
///     ListenerResult, LocalTransactionState, Message, MessageExt, TransactionListener,
///     TransactionProducer,
/// };
///
/// struct Orders;
///
/// impl TransactionListener for Orders {
///     fn execute_local_transaction(&self, _msg: &Message, _id: &str, arg: &dyn Any) -> ListenerResult {
///         // Write the order to the database here, keyed by `id`.
///         let amount = arg.downcast_ref::<u32>().copied().unwrap_or(0);
///         Ok(if amount > 0 {
///             LocalTransactionState::CommitMessage
///         } else {
///             LocalTransactionState::RollbackMessage
///         })
///     }
///
///     fn check_local_transaction(&self, _msg: &MessageExt, _id: &str) -> ListenerResult {
///         // Look `id` up in the database here.
///         Ok(LocalTransactionState::CommitMessage)
///     }
/// }
///
/// let broker = MockBroker::start()?;
/// let producer = TransactionProducer::builder("GID_ORDERS_TX")
///     .name_server(broker.namesrv_addr())
///     .listener(Orders)
///     .start()?;
///
/// let r = producer.send_message_in_transaction(Message::new("orders", "order-1"), &42u32)?;
/// assert_eq!(r.local_state, LocalTransactionState::CommitMessage);
///
/// // The same with the local work done by the caller, from any thread:
/// let tx = producer.begin(Message::new("orders", "order-2"))?;
/// // ... write order-2, await things, ...
/// tx.commit()?;
/// # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
/// # while broker.message_count("orders") < 2 && std::time::Instant::now() < deadline {
/// #     std::thread::sleep(std::time::Duration::from_millis(5));
/// # }
/// # assert_eq!(broker.message_count("orders"), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TransactionProducer {
    owner: Arc<Owner>,
}

/// Shuts everything down when the last user handle goes.
struct Owner {
    producer: Producer,
    core: Arc<Core>,
    check_workers: Mutex<Option<Workers>>,
    stopping: AtomicBool,
    /// Transactional sends under way (sync ones until their END_TRANSACTION is sent, async ones
    /// until their handle completes); shutdown waits for them.
    active: Arc<InFlight>,
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
struct Core {
    group: String,
    listener: Arc<dyn TransactionListener>,
    inner: Weak<Inner>,
    stats: Counters,
    /// Where checks go; `None` once shutdown began.
    checks: RwLock<Option<Sender<CheckJob>>>,
    /// The transaction threads of asynchronous transactions, started on first use.
    tx_pool: Mutex<TxPool>,
    tx_threads: usize,
}

enum TxPool {
    NotStarted,
    Running(Sender<TxJob>, Workers),
    Closed,
}

type TxJob = Box<dyn FnOnce() + Send + 'static>;

/// A check-back waiting for a check thread.
struct CheckJob {
    addr: String,
    header: CheckTransactionStateRequestHeader,
    msg: MessageExt,
}

/// What END_TRANSACTION needs about a half message, from its send result.
#[derive(Debug, Clone)]
struct EndTarget {
    broker_name: String,
    /// The topic on the wire.
    topic: String,
    tran_state_table_offset: i64,
    commit_log_offset: std::result::Result<i64, CodecError>,
    /// The `UNIQ_KEY`.
    msg_id: String,
    /// From the send response (5.x brokers).
    transaction_id: Option<String>,
}

impl EndTarget {
    fn new(result: &SendResult, wire_topic: String) -> Self {
        EndTarget {
            broker_name: result.queue.broker_name().to_string(),
            topic: wire_topic,
            tran_state_table_offset: result.queue_offset,
            commit_log_offset: result.offset_id().map(|id| id.commit_log_offset),
            msg_id: result.msg_id.clone(),
            transaction_id: result.transaction_id.clone(),
        }
    }
}

impl TransactionProducer {
    /// Starts configuring a transaction producer of `group`: set the name servers and other
    /// settings, then [`ProducerConfigBuilder::listener`], then
    /// [`TransactionProducerBuilder::start`].
    pub fn builder(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
    }

    /// Starts a transaction producer with `config` and `listener`.
    ///
    /// # Errors
    /// [`Error::Config`] if threads cannot be started.
    pub fn start(config: ProducerConfig, listener: impl TransactionListener) -> Result<Self> {
        Self::start_shared(config, Arc::new(listener))
    }

    fn start_shared(
        config: ProducerConfig,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<Self> {
        let check_threads = config.transaction_check_threads().max(1);
        let check_queue = config.transaction_check_queue().max(1);
        let tx_threads = config.callback_threads().max(1);
        // No connection exists yet: routes are fetched on first use, so the hook below is in
        // place before any broker can reach this client.
        let producer = Producer::start(config)?;
        let (check_tx, check_rx) = crossbeam_channel::bounded::<CheckJob>(check_queue);
        let core = Arc::new(Core {
            group: producer.config().group().to_string(),
            listener,
            inner: Arc::downgrade(producer.inner()),
            stats: Counters::default(),
            checks: RwLock::new(Some(check_tx)),
            tx_pool: Mutex::new(TxPool::NotStarted),
            tx_threads,
        });
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

    /// The underlying producer, for ordinary (non-transactional) sends and its other
    /// operations. Shutting it down shuts this producer's sends down too.
    pub fn producer(&self) -> &Producer {
        &self.owner.producer
    }

    /// The settings this producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        self.owner.producer.config()
    }

    /// Sends `msg` as a half message, runs the listener's
    /// [`execute_local_transaction`](TransactionListener::execute_local_transaction) with `arg`
    /// on this thread, and sends its decision to the broker (END_TRANSACTION, oneway).
    ///
    /// The half message carries `TRAN_MSG=true` and `PGROUP`; any delay level is removed. It is
    /// sent synchronously with the usual retries. If the broker stores it with a flush or
    /// slave problem, the listener does not run and the message is rolled back (as Java).
    /// A listener that panics or fails counts as [`LocalTransactionState::Unknown`].
    ///
    /// A failure to send END_TRANSACTION is logged and counted
    /// ([`TransactionStats::end_failed`]), not returned: the broker resolves the transaction by
    /// checking back.
    ///
    /// # Errors
    /// The half message's send errors (as [`Producer::send`]); the listener has not run then.
    #[doc(alias = "send_in_transaction")]
    pub fn send_message_in_transaction(
        &self,
        msg: Message,
        arg: &dyn Any,
    ) -> Result<TransactionSendResult> {
        let _active = self.enter()?;
        let (half, wire_topic) = self.half_message(msg)?;
        let mut view = half.clone();
        let result = self.owner.producer.send(half)?;
        let core = &self.owner.core;
        Ok(core.settle(
            self.owner.producer.inner(),
            &mut view,
            result,
            wire_topic,
            |m, id| core.listener.execute_local_transaction(m, id, arg),
        ))
    }

    /// Asynchronous [`TransactionProducer::send_message_in_transaction`]: sends the half message
    /// without blocking on the network, runs the local transaction on a transaction thread
    /// (never an I/O thread, never this thread) with `arg`, sends the decision, and then
    /// resolves the handle. Wait on the handle or `.await` it.
    ///
    /// Backpressure applies to the half message as to [`Producer::send_async`].
    #[doc(alias = "send_in_transaction_async")]
    pub fn send_message_in_transaction_async<A>(&self, msg: Message, arg: A) -> TransactionHandle
    where
        A: Any + Send,
    {
        let (completer, handle) = pair();
        let permit = match self.enter() {
            Ok(p) => p,
            Err(e) => {
                completer.complete(Err(e));
                return TransactionHandle { inner: handle };
            }
        };
        let (half, wire_topic) = match self.half_message(msg) {
            Ok(h) => h,
            Err(e) => {
                completer.complete(Err(e));
                return TransactionHandle { inner: handle };
            }
        };
        let job = AsyncTransaction {
            core: self.owner.core.clone(),
            inner: self.owner.producer.inner().clone(),
            view: half.clone(),
            wire_topic,
            arg,
            completer,
            _permit: permit,
        };
        self.owner
            .producer
            .send_with_callback(half, move |result| job.on_sent(result));
        TransactionHandle { inner: handle }
    }

    /// Sends `msg` as a half message and returns the open [`Transaction`]: do the local work
    /// (on any thread, synchronously or with `.await`), then [`Transaction::commit`] or
    /// [`Transaction::rollback`]. The listener's `execute_local_transaction` does not run; its
    /// `check_local_transaction` answers check-backs for this transaction as for any other.
    ///
    /// A `Transaction` dropped without commit or rollback sends nothing: the broker checks
    /// back (a real broker at its first check round after the transaction timeout, 6 s by
    /// default) and the listener decides.
    ///
    /// # Errors
    /// The half message's send errors (as [`Producer::send`]). A half message stored with a
    /// flush or slave problem is rolled back at once and reported as [`Error::Broker`] with the
    /// status's response code (10, 11 or 12).
    pub fn begin(&self, msg: Message) -> Result<Transaction> {
        let _active = self.enter()?;
        let (half, wire_topic) = self.half_message(msg)?;
        let result = self.owner.producer.send(half)?;
        let target = EndTarget::new(&result, wire_topic);
        if result.status != SendStatus::SendOk {
            let inner = self.owner.producer.inner();
            let state = LocalTransactionState::RollbackMessage;
            // A failure is logged and counted; the broker checks back.
            let _ = self.owner.core.end(inner, &target, state, None);
            let code = match result.status {
                SendStatus::FlushDiskTimeout => ResponseCode::FLUSH_DISK_TIMEOUT,
                SendStatus::FlushSlaveTimeout => ResponseCode::FLUSH_SLAVE_TIMEOUT,
                _ => ResponseCode::SLAVE_NOT_AVAILABLE,
            };
            return Err(Error::Broker {
                code,
                remark: format!(
                    "the half message {} was stored with status {:?}; it was rolled back",
                    result.msg_id, result.status
                ),
                addr: inner
                    .mapping
                    .master_addr(&target.broker_name)
                    .unwrap_or_default(),
            });
        }
        Ok(Transaction {
            producer: self.clone(),
            transaction_id: result.msg_id.clone(),
            send_result: result,
            target,
            ended: false,
        })
    }

    /// Counts of committed, rolled back and unknown transactions, check-backs and overflows.
    pub fn transaction_stats(&self) -> TransactionStats {
        self.owner.core.stats.snapshot()
    }

    /// Stops taking transactional sends and check-backs, waits up to `timeout` for the ones
    /// under way (including queued check-backs), then shuts the producer down
    /// ([`Producer::shutdown`]) with what is left of `timeout`. Idempotent.
    ///
    /// An open [`Transaction`] is not waited for; committing it afterwards fails with
    /// [`Error::Shutdown`] and the broker checks back with another producer of the group.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.owner.shutdown(timeout)
    }

    /// Whether [`TransactionProducer::shutdown`] has begun (or the producer was shut down).
    pub fn is_shut_down(&self) -> bool {
        self.owner.stopping.load(Ordering::Acquire) || self.owner.producer.is_shut_down()
    }

    /// Registers a transactional send that shutdown waits for, unless shutdown has begun.
    fn enter(&self) -> Result<Permit> {
        // Counted first, checked second: a shutdown that begins in between sees the count.
        let permit = self.owner.active.acquire_unbounded(0);
        if self.is_shut_down() {
            Err(Error::Shutdown)
        } else {
            Ok(permit)
        }
    }

    /// The half message (and its topic on the wire): `TRAN_MSG`, `PGROUP`, a `UNIQ_KEY` set
    /// now so the listener sees it, no delay level.
    fn half_message(&self, mut msg: Message) -> Result<(Message, String)> {
        let inner = self.owner.producer.inner();
        prepare::check_message(&msg, &inner.config)?;
        msg.remove_property(property::DELAY_TIME_LEVEL);
        msg.set_property(property::TRANSACTION_PREPARED, "true");
        msg.set_property(property::PRODUCER_GROUP, self.owner.core.group.as_str());
        if msg
            .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .is_none()
        {
            msg.set_property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, inner.new_msg_id());
        }
        let wire_topic = prepare::wire_topic(msg.topic(), &inner.config);
        Ok((msg, wire_topic))
    }
}

impl fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("group", &self.owner.core.group)
            .field("client_id", &self.owner.producer.client_id())
            .finish_non_exhaustive()
    }
}

impl Owner {
    fn shutdown(&self, timeout: Duration) -> Result<()> {
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
        for workers in [check_workers, tx_workers].into_iter().flatten() {
            let name = workers.name;
            if !workers.wait_finished(deadline) {
                log::warn!("transaction producer shutdown: {name} threads still busy");
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.producer.shutdown(left)
    }
}

impl Core {
    /// Runs a local transaction (unless the half message was not stored cleanly) and sends its
    /// decision.
    fn settle(
        &self,
        inner: &Inner,
        view: &mut Message,
        result: SendResult,
        wire_topic: String,
        run: impl FnOnce(&Message, &str) -> ListenerResult,
    ) -> TransactionSendResult {
        let target = EndTarget::new(&result, wire_topic);
        let transaction_id = result.msg_id.clone();
        let (state, remark) = if result.status == SendStatus::SendOk {
            if let Some(id) = &result.transaction_id {
                view.set_property(property::TRANSACTION_ID, id.as_str());
            }
            guarded(
                || run(view, &transaction_id),
                "executeLocalTransactionBranch exception: ",
            )
        } else {
            log::warn!(
                "half message {} stored with {:?}: rolling it back",
                result.msg_id,
                result.status
            );
            (LocalTransactionState::RollbackMessage, None)
        };
        // A failure is logged and counted; the broker checks back.
        let _ = self.end(inner, &target, state, remark);
        TransactionSendResult {
            send_result: result,
            transaction_id,
            local_state: state,
        }
    }

    /// Counts `state` and sends it (END_TRANSACTION, oneway, not from a check); a failure is
    /// logged and counted.
    fn end(
        &self,
        inner: &Inner,
        target: &EndTarget,
        state: LocalTransactionState,
        remark: Option<String>,
    ) -> Result<()> {
        self.stats.decided(state);
        let sent = self.send_end(inner, target, state, remark);
        if let Err(e) = &sent {
            self.stats.end_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "END_TRANSACTION {state:?} for {} could not be sent ({e}); the broker will check back",
                target.msg_id
            );
        }
        sent
    }

    fn send_end(
        &self,
        inner: &Inner,
        target: &EndTarget,
        state: LocalTransactionState,
        remark: Option<String>,
    ) -> Result<()> {
        let commit_log_offset = target.commit_log_offset.clone().map_err(Error::Protocol)?;
        let addr = inner
            .mapping
            .master_addr(&target.broker_name)
            .ok_or_else(|| Error::NoRoute {
                topic: target.topic.clone(),
                reason: format!("no master address for broker {}", target.broker_name),
            })?;
        let header = EndTransactionRequestHeader {
            topic: Some(target.topic.clone()),
            producer_group: self.group.clone(),
            tran_state_table_offset: target.tran_state_table_offset,
            commit_log_offset,
            commit_or_rollback: state.end_code(),
            from_transaction_check: false,
            msg_id: target.msg_id.clone(),
            transaction_id: target.transaction_id.clone(),
            broker_name: Some(target.broker_name.clone()),
        };
        inner
            .remoting
            .invoke_oneway(&addr, end_request(&header, remark))
    }

    /// The CHECK_TRANSACTION_STATE hook, on a callback thread: decode, filter, queue. Never
    /// blocks.
    fn on_check(&self, addr: &str, request: RemotingCommand) {
        let header = match CheckTransactionStateRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return self.ignore_check(addr, &format!("bad header: {e}")),
        };
        let msg = match decode_stored_messages(&request.body) {
            Ok(mut msgs) if !msgs.is_empty() => msgs.swap_remove(0),
            Ok(_) => return self.ignore_check(addr, "no message in the body"),
            Err(e) => return self.ignore_check(addr, &format!("bad body: {e}")),
        };
        if msg.property(property::PRODUCER_GROUP) != Some(self.group.as_str()) {
            let group = msg.property(property::PRODUCER_GROUP).unwrap_or("(none)");
            return self.ignore_check(addr, &format!("group {group} is not ours"));
        }
        let job = CheckJob {
            addr: addr.to_string(),
            header,
            msg,
        };
        let checks = self.checks.read();
        let Some(sender) = checks.as_ref() else {
            return self.ignore_check(addr, "shutting down");
        };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let n = self.stats.check_overflow.fetch_add(1, Ordering::Relaxed) + 1;
                // Logged at powers of two so a flood cannot flood the log.
                if n.is_power_of_two() {
                    log::warn!(
                        "transaction check queue full: dropped the check of {} from {addr} \
                         ({n} dropped so far); the broker will check again",
                        job.msg.msg_id().unwrap_or("?")
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.ignore_check(addr, "shutting down"),
        }
    }

    fn ignore_check(&self, addr: &str, why: &str) {
        self.stats.check_ignored.fetch_add(1, Ordering::Relaxed);
        log::debug!("ignored a transaction check from {addr}: {why}");
    }

    /// Answers one check-back, on a check thread: a new END_TRANSACTION to the address the check
    /// came from, with the check's offsets.
    fn run_check(&self, job: CheckJob) {
        let CheckJob { addr, header, msg } = job;
        let transaction_id = msg
            .msg_id()
            .or(header.transaction_id.as_deref())
            .or(header.msg_id.as_deref())
            .unwrap_or_default()
            .to_string();
        let (state, remark) = guarded(
            || self.listener.check_local_transaction(&msg, &transaction_id),
            "checkLocalTransactionState Exception: ",
        );
        self.stats.checked.fetch_add(1, Ordering::Relaxed);
        self.stats.decided(state);
        let msg_id = match msg.msg_id() {
            Some(id) => id.to_string(),
            None => msg.offset_msg_id().to_string(),
        };
        let end = EndTransactionRequestHeader {
            topic: header.topic,
            producer_group: self.group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: state.end_code(),
            from_transaction_check: true,
            msg_id,
            transaction_id: header.transaction_id,
            broker_name: header.broker_name,
        };
        let sent = match self.inner.upgrade() {
            Some(inner) => inner
                .remoting
                .invoke_oneway(&addr, end_request(&end, remark)),
            None => Err(Error::Shutdown),
        };
        if let Err(e) = sent {
            self.stats.end_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "END_TRANSACTION {state:?} answering the check of {transaction_id} to {addr} \
                 could not be sent: {e}"
            );
        }
    }

    /// Queues a job on the transaction threads, starting them on first use.
    fn submit(&self, job: TxJob) -> Result<()> {
        let mut pool = self.tx_pool.lock();
        if let TxPool::NotStarted = *pool {
            let (sender, receiver) = crossbeam_channel::unbounded::<TxJob>();
            let workers = Workers::spawn("rocketmq-tx", self.tx_threads, receiver, |job| job())?;
            *pool = TxPool::Running(sender, workers);
        }
        match &*pool {
            TxPool::Running(sender, _) => sender.send(job).map_err(|_| Error::Shutdown),
            _ => Err(Error::Shutdown),
        }
    }
}

fn end_request(header: &EndTransactionRequestHeader, remark: Option<String>) -> RemotingCommand {
    let mut request = RemotingCommand::request(RequestCode::END_TRANSACTION);
    header.write_to(&mut request.ext_fields);
    request.remark = remark;
    request
}

/// Runs a listener method: a panic or an error is Unknown, with a remark for the broker.
fn guarded(
    run: impl FnOnce() -> ListenerResult,
    remark_prefix: &str,
) -> (LocalTransactionState, Option<String>) {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(state)) => (state, None),
        Ok(Err(e)) => {
            log::warn!("transaction listener failed: {e}");
            (
                LocalTransactionState::Unknown,
                Some(format!("{remark_prefix}{e}")),
            )
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            log::error!("transaction listener panicked: {text}");
            (
                LocalTransactionState::Unknown,
                Some(format!("{remark_prefix}panicked: {text}")),
            )
        }
    }
}

/// An asynchronous transactional send between its half message and its handle.
struct AsyncTransaction<A> {
    core: Arc<Core>,
    inner: Arc<Inner>,
    view: Message,
    wire_topic: String,
    arg: A,
    completer: Completer<TransactionSendResult>,
    _permit: Permit,
}

impl<A: Any + Send> AsyncTransaction<A> {
    /// The half message's send ended (on a callback thread).
    fn on_sent(self, result: Result<SendResult>) {
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.completer.complete(Err(e));
                return;
            }
        };
        if result.status != SendStatus::SendOk {
            // Rolled back without running the listener: no need for a transaction thread.
            return self.settle(result);
        }
        let core = self.core.clone();
        let mut slot = Some((self, result));
        let job: TxJob = Box::new(move || {
            if let Some((tx, result)) = slot.take() {
                tx.settle(result);
            }
        });
        if let Err(e) = core.submit(job) {
            // Shutdown closed the pool: the job (and its completer) was dropped, which ends the
            // handle with Shutdown; the broker resolves the half message by checking back.
            core.stats.unknown.fetch_add(1, Ordering::Relaxed);
            log::warn!("an asynchronous local transaction could not run: {e}");
        }
    }

    fn settle(mut self, result: SendResult) {
        let core = self.core.clone();
        let arg = &self.arg;
        let r = core.settle(
            &self.inner,
            &mut self.view,
            result,
            std::mem::take(&mut self.wire_topic),
            |m, id| core.listener.execute_local_transaction(m, id, arg),
        );
        self.completer.complete(Ok(r));
    }
}

/// The pending result of [`TransactionProducer::send_message_in_transaction_async`].
///
/// Block on it with [`TransactionHandle::wait`] or `.await` it on any executor. It always
/// resolves: with the transaction's result, the half message's send error, or
/// [`Error::Shutdown`].
#[must_use = "dropping the handle discards the result (the transaction still happens)"]
#[derive(Debug)]
pub struct TransactionHandle {
    inner: Handle<TransactionSendResult>,
}

impl TransactionHandle {
    /// Blocks until the transaction's decision is sent.
    pub fn wait(self) -> Result<TransactionSendResult> {
        self.inner.wait()
    }

    /// Blocks up to `timeout`; `None` if it has not ended yet (the handle stays usable).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<TransactionSendResult>> {
        self.inner.wait_timeout(timeout)
    }

    /// Blocks until `deadline`; `None` if it has not ended yet.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<TransactionSendResult>> {
        self.inner.wait_deadline(deadline)
    }

    /// Whether it has ended.
    pub fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}

impl Future for TransactionHandle {
    type Output = Result<TransactionSendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// An open transaction from [`TransactionProducer::begin`]: the half message is stored; end it
/// with [`Transaction::commit`] or [`Transaction::rollback`], from any thread.
///
/// Dropping it without either sends nothing (counted as unknown): the broker checks back and
/// the listener's [`check_local_transaction`](TransactionListener::check_local_transaction)
/// decides. It keeps its producer running until it is ended or dropped.
#[must_use = "a transaction left open is resolved only by the broker's check-back"]
pub struct Transaction {
    producer: TransactionProducer,
    send_result: SendResult,
    transaction_id: String,
    target: EndTarget,
    ended: bool,
}

impl Transaction {
    /// The half message's send result.
    pub fn send_result(&self) -> &SendResult {
        &self.send_result
    }

    /// The transaction id: the message's `UNIQ_KEY`, which check-backs name.
    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }

    /// Commits: the message becomes visible. Sends END_TRANSACTION (oneway); `Ok` once it is
    /// queued for the broker's connection.
    ///
    /// # Errors
    /// [`Error::Shutdown`], [`Error::NoRoute`] when the broker's address is gone,
    /// [`Error::Protocol`] when the send result's offset id cannot be decoded. The broker then
    /// checks back.
    pub fn commit(self) -> Result<()> {
        self.end(LocalTransactionState::CommitMessage)
    }

    /// Rolls back: the message is never visible. Errors as [`Transaction::commit`].
    pub fn rollback(self) -> Result<()> {
        self.end(LocalTransactionState::RollbackMessage)
    }

    /// Ends with `state`; [`LocalTransactionState::Unknown`] tells the broker to check back.
    /// Errors as [`Transaction::commit`].
    pub fn end(mut self, state: LocalTransactionState) -> Result<()> {
        self.ended = true;
        let owner = &self.producer.owner;
        owner
            .core
            .end(owner.producer.inner(), &self.target, state, None)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.ended {
            self.producer
                .owner
                .core
                .stats
                .unknown
                .fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "transaction {} dropped open; the broker will check back",
                self.transaction_id
            );
        }
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("transaction_id", &self.transaction_id)
            .field("queue", &self.send_result.queue)
            .field("queue_offset", &self.send_result.queue_offset)
            .finish_non_exhaustive()
    }
}

/// A fixed set of named threads draining one channel.
struct Workers {
    name: &'static str,
    threads: Vec<JoinHandle<()>>,
    /// One permit per live thread.
    alive: Arc<InFlight>,
}

impl Workers {
    fn spawn<T, F>(name: &'static str, n: usize, jobs: Receiver<T>, run: F) -> Result<Workers>
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
    fn wait_finished(self, deadline: Instant) -> bool {
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
    use super::*;

    #[test]
    fn end_codes() {
        assert_eq!(LocalTransactionState::CommitMessage.end_code(), 8);
        assert_eq!(LocalTransactionState::RollbackMessage.end_code(), 12);
        assert_eq!(LocalTransactionState::Unknown.end_code(), 0);
    }

    #[test]
    fn guarded_maps_errors_and_panics_to_unknown() {
        let (s, r) = guarded(|| Ok(LocalTransactionState::CommitMessage), "p: ");
        assert_eq!((s, r), (LocalTransactionState::CommitMessage, None));
        let (s, r) = guarded(|| Err("db down".into()), "p: ");
        assert_eq!(s, LocalTransactionState::Unknown);
        assert_eq!(r.as_deref(), Some("p: db down"));
        let (s, r) = guarded(|| panic!("boom {}", 7), "p: ");
        assert_eq!(s, LocalTransactionState::Unknown);
        assert_eq!(r.as_deref(), Some("p: panicked: boom 7"));
        let (s, r) = guarded(|| std::panic::panic_any(5u8), "p: ");
        assert_eq!(s, LocalTransactionState::Unknown);
        assert_eq!(r.as_deref(), Some("p: panicked: a panic"));
    }

    struct Fixed(LocalTransactionState);

    impl TransactionListener for Fixed {
        fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
            Ok(self.0)
        }

        fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
            Ok(self.0)
        }
    }

    fn core(queue: usize) -> (Arc<Core>, Receiver<CheckJob>) {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let core = Arc::new(Core {
            group: "GID_OURS".into(),
            listener: Arc::new(Fixed(LocalTransactionState::CommitMessage)),
            inner: Weak::new(),
            stats: Counters::default(),
            checks: RwLock::new(Some(tx)),
            tx_pool: Mutex::new(TxPool::NotStarted),
            tx_threads: 1,
        });
        (core, rx)
    }

    fn check_request(group: Option<&str>) -> RemotingCommand {
        let mut properties = vec![
            (
                "UNIQ_KEY".to_string(),
                "AC11000100002A9F0000000000000001".to_string(),
            ),
            ("TRAN_MSG".to_string(), "true".to_string()),
        ];
        if let Some(g) = group {
            properties.push(("PGROUP".to_string(), g.to_string()));
        }
        let msg = MessageExt {
            topic: "orders".into(),
            body: b"body".to_vec(),
            flag: 0,
            properties,
            queue_id: 1,
            queue_offset: 5,
            commit_log_offset: 4096,
            sys_flag: sys_flag::TRANSACTION_PREPARED,
            born_timestamp: 1,
            born_host: "127.0.0.1:1234".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        };
        let mut body = Vec::new();
        crate::protocol::message_codec::encode_stored_message(&msg, &mut body).unwrap();
        let mut request =
            RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE).into_oneway();
        CheckTransactionStateRequestHeader {
            topic: Some("orders".into()),
            tran_state_table_offset: 77,
            commit_log_offset: 4096,
            msg_id: Some("AC11000100002A9F0000000000000001".into()),
            transaction_id: Some("AC11000100002A9F0000000000000001".into()),
            offset_msg_id: None,
            broker_name: Some("broker-a".into()),
        }
        .write_to(&mut request.ext_fields);
        request.body = body;
        request
    }

    #[test]
    fn checks_are_filtered_queued_and_overflow_counted() {
        let (core, rx) = core(1);
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OTHER")));
        core.on_check("127.0.0.1:10911", check_request(None));
        let mut garbage = check_request(Some("GID_OURS"));
        garbage.body = vec![0, 0, 0, 9, 1, 2];
        core.on_check("127.0.0.1:10911", garbage);
        let mut no_header = check_request(Some("GID_OURS"));
        no_header.ext_fields = Default::default();
        core.on_check("127.0.0.1:10911", no_header);
        assert_eq!(core.stats.snapshot().check_ignored, 4);
        assert!(rx.is_empty());

        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        let stats = core.stats.snapshot();
        assert_eq!((stats.check_overflow, stats.check_ignored), (1, 4));
        let job = rx.try_recv().unwrap();
        assert_eq!(job.addr, "127.0.0.1:10911");
        assert_eq!(job.header.tran_state_table_offset, 77);
        assert_eq!(job.msg.body, b"body");
        assert!(rx.is_empty());

        // Without a producer (gone), the answer cannot be sent: counted, no panic.
        core.run_check(job);
        let stats = core.stats.snapshot();
        assert_eq!(
            (stats.checked, stats.committed, stats.end_failed),
            (1, 1, 1)
        );

        // After shutdown began, checks are ignored.
        core.checks.write().take();
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        assert_eq!(core.stats.snapshot().check_ignored, 5);
    }

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
