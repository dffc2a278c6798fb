//! [`SendHandle`]: the result of an asynchronous send, to wait on or to await.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::message::SendResult;
use crate::remoting::Handle;

/// The pending result of an asynchronous send.
///
/// Block a thread on it with [`SendHandle::wait`], or `.await` it on any executor: it is a
/// [`Future`] that needs no runtime of ours. It always resolves: with the broker's answer, a
/// timeout, a connection error, or [`crate::Error::Shutdown`] when the producer shuts down.
///
/// ```
/// # use rocketmq_mio::{Message, Producer, testing::MockBroker};
/// # let broker = MockBroker::start().unwrap();
/// # let producer = Producer::builder("GID_DOC").name_server(broker.namesrv_addr()).start().unwrap();
/// let handle = producer.send_async(Message::new("orders", "hello"));
/// let result = futures_lite::future::block_on(handle)?;
/// assert_eq!(result.queue.topic(), "orders");
/// # Ok::<(), rocketmq_mio::Error>(())
/// ```
#[must_use = "dropping the handle discards the send result (the send still happens)"]
#[derive(Debug)]
pub struct SendHandle {
    inner: Handle<SendResult>,
}

impl SendHandle {
    pub(crate) fn new(inner: Handle<SendResult>) -> Self {
        SendHandle { inner }
    }

    /// Blocks until the send ends.
    pub fn wait(self) -> Result<SendResult> {
        self.inner.wait()
    }

    /// Blocks up to `timeout`; `None` if the send has not ended yet (the handle stays usable).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<SendResult>> {
        self.inner.wait_timeout(timeout)
    }

    /// Blocks until `deadline`; `None` if the send has not ended yet.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<SendResult>> {
        self.inner.wait_deadline(deadline)
    }

    /// Whether the send has ended.
    pub fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}

impl Future for SendHandle {
    type Output = Result<SendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
