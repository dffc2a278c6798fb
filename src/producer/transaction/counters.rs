//! The transaction counters: [`TransactionStats`], the snapshot users read, and the atomic
//! counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::LocalTransactionState;
#[cfg(doc)]
use super::{Transaction, TransactionProducer};

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
pub(super) struct Counters {
    pub(super) committed: AtomicU64,
    pub(super) rolled_back: AtomicU64,
    pub(super) unknown: AtomicU64,
    pub(super) checked: AtomicU64,
    pub(super) check_overflow: AtomicU64,
    pub(super) check_ignored: AtomicU64,
    pub(super) end_failed: AtomicU64,
}

impl Counters {
    pub(super) fn decided(&self, state: LocalTransactionState) {
        let c = match state {
            LocalTransactionState::CommitMessage => &self.committed,
            LocalTransactionState::RollbackMessage => &self.rolled_back,
            LocalTransactionState::Unknown => &self.unknown,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> TransactionStats {
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
