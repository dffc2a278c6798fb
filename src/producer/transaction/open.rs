//! [`Transaction`]: an open transaction from [`TransactionProducer::begin`], ended by commit
//! or rollback from any thread.

use std::fmt;
use std::sync::atomic::Ordering;

use super::send::EndTarget;
#[cfg(doc)]
use super::TransactionListener;
use super::{LocalTransactionState, TransactionProducer};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::SendResult;

/// An open transaction from [`TransactionProducer::begin`]: the half message is stored; end it
/// with [`Transaction::commit`] or [`Transaction::rollback`], from any thread.
///
/// Dropping it without either sends nothing (counted as unknown): the broker checks back and
/// the listener's [`check_local_transaction`](TransactionListener::check_local_transaction)
/// decides. It keeps its producer running until it is ended or dropped.
#[must_use = "a transaction left open is resolved only by the broker's check-back"]
pub struct Transaction {
    pub(super) producer: TransactionProducer,
    pub(super) send_result: SendResult,
    pub(super) transaction_id: String,
    pub(super) target: EndTarget,
    /// The half message, kept for the send hooks (only when there are some).
    pub(super) half: Option<crate::message::Message>,
    pub(super) ended: bool,
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
        owner.core.records.local(&self.transaction_id, state, None);
        owner.core.end(
            owner.producer.inner(),
            &self.target,
            state,
            None,
            self.half.as_ref(),
        )
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.ended {
            let core = &self.producer.owner.core;
            core.stats.unknown.fetch_add(1, Ordering::Relaxed);
            core.records.local(
                &self.transaction_id,
                LocalTransactionState::Unknown,
                Some("the transaction was dropped without commit or rollback"),
            );
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
