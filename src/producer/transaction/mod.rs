//! Transactional messages: [`TransactionProducer`], [`TransactionListener`], [`Transaction`],
//! and the brokers' check-backs (protocol.md section 9). The user-facing docs are on
//! [`TransactionProducer`].

// Layout: this file holds the `TransactionProducer` type and its public methods. The rest,
// one idea a file: `listener` (the listener trait, local states, send result), `builder`,
// `counters` (`TransactionStats`), `lifecycle` (shared state, start, shutdown), `send` (local
// transaction and END_TRANSACTION), `check` (check-backs), `workers` (the thread pools),
// `handle` (`TransactionHandle`) and `open` (`Transaction`).

mod builder;
mod check;
mod counters;
mod handle;
mod lifecycle;
mod listener;
mod open;
mod records;
mod send;
mod workers;

use std::any::Any;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ProducerConfig, ProducerConfigBuilder};
use crate::error::{Error, Result};
use crate::message::{Message, SendStatus};
use crate::producer::Producer;
use crate::protocol::ResponseCode;
use crate::remoting::pair;

pub use builder::TransactionProducerBuilder;
pub use counters::TransactionStats;
pub use handle::TransactionHandle;
use lifecycle::Owner;
pub use listener::{
    ListenerResult, LocalTransactionState, TransactionListener, TransactionSendResult,
};
pub use open::Transaction;
pub(crate) use records::RecordTable;
pub use records::{
    EndTransactionSent, HalfMessageStored, TransactionPhase, TransactionRecord,
    TransactionTableHealth,
};
use send::{AsyncTransaction, EndTarget};

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
        let result = self.send_half(half)?;
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
        self.owner.core.records.begin(&uniq_key(&half), &half);
        let job = AsyncTransaction {
            core: self.owner.core.clone(),
            inner: self.owner.producer.inner().clone(),
            view: half.clone(),
            wire_topic,
            arg,
            completer,
            _permit: permit,
        };
        // The transaction threads start here, not where the half message's result arrives
        // (an I/O thread). A failure shows when the job is submitted.
        let _ = self.owner.core.start_tx_pool();
        // `on_sent` is library work, not a user callback: it runs where the result is known
        // and only hands the local transaction to a transaction thread, so it never waits for
        // a callback thread (a callback blocked on this handle gets its result).
        let inner = self.owner.producer.inner();
        // Counted by `Producer::flush` like any send with a callback.
        let ticket = inner.flush.ticket();
        inner.send_async(
            crate::producer::Prep::Single(half),
            crate::producer::Target::Auto,
            crate::producer::Done::Internal(Box::new(move |result, _hold| {
                job.on_sent(result);
                drop(ticket);
            })),
        );
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
        // The send hooks see the half message in `end_transaction` too.
        let kept = self
            .owner
            .producer
            .inner()
            .hooks
            .is_some()
            .then(|| half.clone());
        let result = self.send_half(half)?;
        let target = EndTarget::new(&result, wire_topic);
        if result.status != SendStatus::SendOk {
            let inner = self.owner.producer.inner();
            let state = LocalTransactionState::RollbackMessage;
            self.owner.core.records.local(
                &result.msg_id,
                state,
                Some("the half message was not stored cleanly: rolled back"),
            );
            // A failure is logged and counted; the broker checks back.
            let _ = self
                .owner
                .core
                .end(inner, &target, state, None, kept.as_ref());
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
            transaction_id: result.msg_id.to_string(),
            send_result: result,
            target,
            half: kept,
            ended: false,
        })
    }

    /// What this producer knows of the transaction `transaction_id` (the message's
    /// `UNIQ_KEY`, as in [`TransactionSendResult::transaction_id`]): topic, keys, where the
    /// half message was stored, what the local transaction returned and when, the last
    /// END_TRANSACTION sent, the check-backs received and the last error. `None` if it is not
    /// in the table: never seen by this producer, or dropped for the table's bounds
    /// ([`ProducerConfig::transaction_records`], [`ProducerConfig::transaction_record_age`]).
    pub fn transaction(&self, transaction_id: &str) -> Option<TransactionRecord> {
        self.owner.core.records.get(transaction_id)
    }

    /// The transactions in doubt, oldest first: their local state is Unknown (the listener said
    /// so, failed or panicked; or a [`Transaction`] was dropped open) and no commit or rollback
    /// has been sent since, by this producer or in answer to a check-back. The broker will check
    /// back; an operator or a recovery job can decide them sooner. Only transactions still in
    /// the table are listed.
    pub fn in_doubt(&self) -> Vec<TransactionRecord> {
        self.owner.core.records.in_doubt()
    }

    /// Sends a half message synchronously, recording it.
    fn send_half(&self, half: Message) -> Result<crate::message::SendResult> {
        let records = &self.owner.core.records;
        let id = uniq_key(&half);
        records.begin(&id, &half);
        match self.owner.producer.send(half) {
            Ok(r) => {
                records.stored(&id, &r);
                Ok(r)
            }
            Err(e) => {
                records.failed(&id, &e);
                Err(e)
            }
        }
    }

    /// Counts of committed, rolled back and unknown transactions, check-backs and overflows.
    pub fn transaction_stats(&self) -> TransactionStats {
        self.owner.core.stats.snapshot()
    }

    /// Stops taking transactional sends and check-backs, waits up to `timeout` for the ones
    /// under way (including queued check-backs), then shuts the producer down
    /// ([`Producer::shutdown`]) with what is left of `timeout`. Idempotent.
    ///
    /// `timeout` is one deadline for all of it. At the deadline, check-backs and asynchronous
    /// local transactions still queued are dropped without running (their handles end with
    /// [`Error::Shutdown`]; the broker checks those transactions back later): once this
    /// returns, no listener call starts. A listener call still running at the deadline cannot
    /// be interrupted: shutdown does not wait for it, finishes the rest, and returns
    /// [`Error::User`] saying how many threads are still in listener code (each ends when its
    /// listener returns; its answer is not sent).
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
}

/// The half message's `UNIQ_KEY` (set by `half_message`): its transaction id.
fn uniq_key(half: &Message) -> String {
    half.property(crate::message::property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        .unwrap_or_default()
        .to_string()
}

impl fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("group", &self.owner.core.group)
            .field("client_id", &self.owner.producer.client_id())
            .finish_non_exhaustive()
    }
}
