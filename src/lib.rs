//! # rocketmq-mio
//!
//! A blocking Apache RocketMQ producer for programs that run no async runtime.
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod message;
pub mod protocol;
pub mod remoting;
pub mod routing;
pub mod testing;

mod client;
pub mod config;
mod producer;

pub use config::{ProducerConfig, ProducerConfigBuilder};
pub use error::{Error, ErrorKind, Result};
pub use message::{Message, MessageExt, MessageQueue, OffsetMessageId, SendResult, SendStatus};
pub use producer::health::HealthReport;
pub use producer::stats::ProducerStats;
pub use producer::{health, stats};
pub use producer::{Producer, SendHandle, DROP_SHUTDOWN_TIMEOUT};
