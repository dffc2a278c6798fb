//! [`TransactionHandle`]: the pending result of an asynchronous transactional send.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[cfg(doc)]
use super::TransactionProducer;
use super::TransactionSendResult;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::remoting::Handle;

/// The pending result of [`TransactionProducer::send_message_in_transaction_async`].
///
/// Block on it with [`TransactionHandle::wait`] or `.await` it on any executor. It always
/// resolves: with the transaction's result, the half message's send error, or
/// [`Error::Shutdown`].
#[must_use = "dropping the handle discards the result (the transaction still happens)"]
#[derive(Debug)]
pub struct TransactionHandle {
    pub(super) inner: Handle<TransactionSendResult>,
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
