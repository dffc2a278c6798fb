//! What the user supplies and gets back: the [`TransactionListener`] trait, the
//! [`LocalTransactionState`] it decides, the [`TransactionSendResult`], and the guard that
//! turns a listener's panic or error into `Unknown`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

#[cfg(doc)]
use super::TransactionProducer;
use crate::message::{Message, MessageExt, SendResult};
use crate::protocol::message_codec::sys_flag;

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
    pub(super) fn end_code(self) -> i32 {
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

/// Runs a listener method: a panic or an error is Unknown, with a remark for the broker.
pub(super) fn guarded(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn end_codes() {
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
}
