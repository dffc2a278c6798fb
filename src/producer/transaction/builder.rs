//! Building a [`TransactionProducer`]: [`ProducerConfigBuilder::listener`] turns the
//! producer's builder into a [`TransactionProducerBuilder`].

use std::fmt;
use std::sync::Arc;

use super::{TransactionListener, TransactionProducer};
use crate::config::ProducerConfigBuilder;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

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
