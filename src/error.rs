//! The one error type of the crate, and its kinds.
//!
//! Every fallible call returns [`Error`]. Policy lives on the error, not at the call sites:
//! [`Error::is_retriable`] says whether a send may be tried again on another broker,
//! [`Error::kind`] sorts errors into the [`ErrorKind`]s that statistics count, and
//! [`Error::response_code`] gives the broker's response code where there is one.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::protocol::CodecError;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Broker addresses are included wherever one is known, so a log line says which broker failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed (connect, read, write) on the connection to `addr`.
    Io {
        /// `host:port` of the peer.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The connection to `addr` was closed while a request was pending on it.
    ConnectionClosed {
        /// `host:port` of the peer.
        addr: String,
        /// Why the connection was closed (EOF, reset, malformed frame from the peer, ...).
        reason: String,
    },
    /// No answer came before the deadline.
    Timeout {
        /// `host:port` of the peer, when a single request timed out; empty for a whole
        /// operation (a send with retries) that ran out of its time budget.
        addr: String,
        /// How long the request or operation waited.
        after: Duration,
    },
    /// The broker or name server answered with a non-success response code.
    Broker {
        /// The response code (see [`crate::protocol::codes::ResponseCode`]).
        code: i32,
        /// The remark the peer sent with it.
        remark: String,
        /// `host:port` of the peer that answered.
        addr: String,
    },
    /// A frame or a message body could not be decoded.
    Protocol(CodecError),
    /// No route is known for the topic, and the name servers could not provide one.
    NoRoute {
        /// The topic.
        topic: String,
        /// Why (the last error from the name servers), if known.
        reason: String,
    },
    /// The message was rejected before anything was sent (empty body, too large, bad topic, ...).
    InvalidMessage(String),
    /// A setting is invalid. Names the setting.
    Config {
        /// The setting's name, as in [`crate::ProducerConfig`] (or the environment variable).
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The producer has too many asynchronous sends in flight, and none finished before the
    /// deadline (see the backpressure settings of [`crate::ProducerConfig`]).
    Backpressure {
        /// In-flight sends when the caller gave up.
        in_flight: usize,
        /// In-flight bytes when the caller gave up.
        in_flight_bytes: usize,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The producer or client was shut down before the request finished.
    Shutdown,
    /// A user-supplied component (selector, transaction listener) failed.
    User(String),
    /// Strict order ([`ProducerConfig::strict_order`](crate::ProducerConfig::strict_order)):
    /// the queue the message's key maps to cannot take it now, and sending it to another
    /// queue would break the key's order. Nothing was sent; sends of the key succeed again
    /// once the queue is back.
    OrderViolation {
        /// The key's queue.
        queue: crate::message::MessageQueue,
        /// Why it cannot take the message (gone from the route, not writable, broker isolated).
        reason: String,
    },
}

/// The kinds that errors are sorted into, for statistics and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Io`] and [`Error::ConnectionClosed`].
    Connection,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Broker`].
    Broker,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::NoRoute`].
    NoRoute,
    /// [`Error::InvalidMessage`].
    InvalidMessage,
    /// [`Error::Config`].
    Config,
    /// [`Error::Backpressure`].
    Backpressure,
    /// [`Error::Shutdown`].
    Shutdown,
    /// [`Error::User`].
    User,
    /// [`Error::OrderViolation`].
    OrderViolation,
}

impl ErrorKind {
    /// Every kind, in a stable order (used for statistics tables).
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Broker,
        ErrorKind::Protocol,
        ErrorKind::NoRoute,
        ErrorKind::InvalidMessage,
        ErrorKind::Config,
        ErrorKind::Backpressure,
        ErrorKind::Shutdown,
        ErrorKind::User,
        ErrorKind::OrderViolation,
    ];

    /// A stable lower-case name, used as a key in JSON snapshots.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Broker => "broker",
            ErrorKind::Protocol => "protocol",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::InvalidMessage => "invalid_message",
            ErrorKind::Config => "config",
            ErrorKind::Backpressure => "backpressure",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::User => "user",
            ErrorKind::OrderViolation => "order_violation",
        }
    }

    /// The index of this kind in [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Response codes that the Java client retries on another broker by default
/// (`DefaultMQProducer.retryResponseCodes`, 5.3.1+).
pub const DEFAULT_RETRY_CODES: [i32; 8] = [1, 2, 14, 16, 17, 204, 205, 1500];

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::ConnectionClosed { .. } => ErrorKind::Connection,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Broker { .. } => ErrorKind::Broker,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::NoRoute { .. } => ErrorKind::NoRoute,
            Error::InvalidMessage(_) => ErrorKind::InvalidMessage,
            Error::Config { .. } => ErrorKind::Config,
            Error::Backpressure { .. } => ErrorKind::Backpressure,
            Error::Shutdown => ErrorKind::Shutdown,
            Error::User(_) => ErrorKind::User,
            Error::OrderViolation { .. } => ErrorKind::OrderViolation,
        }
    }

    /// Whether another attempt (on another broker) may succeed, with the default retry codes.
    ///
    /// Connection errors, timeouts and broker codes in [`DEFAULT_RETRY_CODES`] are retriable.
    /// Invalid messages, configuration errors, backpressure and shutdown are not.
    pub fn is_retriable(&self) -> bool {
        self.is_retriable_with(&DEFAULT_RETRY_CODES)
    }

    /// Like [`Error::is_retriable`], with the given set of retriable broker response codes.
    pub fn is_retriable_with(&self, retry_codes: &[i32]) -> bool {
        match self {
            Error::Io { .. } | Error::ConnectionClosed { .. } | Error::Timeout { .. } => true,
            Error::Broker { code, .. } => retry_codes.contains(code),
            // A malformed frame from a peer closes its connection: like a connection error.
            Error::Protocol(_) => true,
            Error::NoRoute { .. } => false,
            _ => false,
        }
    }

    /// The broker's response code, for [`Error::Broker`].
    pub fn response_code(&self) -> Option<i32> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The address of the peer involved, where there is one.
    pub fn broker_addr(&self) -> Option<&str> {
        match self {
            Error::Io { addr, .. }
            | Error::ConnectionClosed { addr, .. }
            | Error::Broker { addr, .. } => Some(addr),
            Error::Timeout { addr, .. } if !addr.is_empty() => Some(addr),
            _ => None,
        }
    }

    /// Whether this error is [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether this error is [`Error::Shutdown`].
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Error::Shutdown)
    }

    /// Builds a [`Error::Config`].
    pub(crate) fn config(setting: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// A copy of this error for another waiter (io errors keep their kind and text).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { addr, source } => Error::Io {
                addr: addr.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::ConnectionClosed { addr, reason } => Error::ConnectionClosed {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::Timeout { addr, after } => Error::Timeout {
                addr: addr.clone(),
                after: *after,
            },
            Error::Broker { code, remark, addr } => Error::Broker {
                code: *code,
                remark: remark.clone(),
                addr: addr.clone(),
            },
            Error::Protocol(e) => Error::Protocol(e.clone()),
            Error::NoRoute { topic, reason } => Error::NoRoute {
                topic: topic.clone(),
                reason: reason.clone(),
            },
            Error::InvalidMessage(s) => Error::InvalidMessage(s.clone()),
            Error::Config { setting, reason } => Error::Config {
                setting: setting.clone(),
                reason: reason.clone(),
            },
            Error::Backpressure {
                in_flight,
                in_flight_bytes,
                waited,
            } => Error::Backpressure {
                in_flight: *in_flight,
                in_flight_bytes: *in_flight_bytes,
                waited: *waited,
            },
            Error::Shutdown => Error::Shutdown,
            Error::User(s) => Error::User(s.clone()),
            Error::OrderViolation { queue, reason } => Error::OrderViolation {
                queue: queue.clone(),
                reason: reason.clone(),
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { addr, source } => write!(f, "i/o error on connection to {addr}: {source}"),
            Error::ConnectionClosed { addr, reason } => {
                write!(f, "connection to {addr} closed: {reason}")
            }
            Error::Timeout { addr, after } if addr.is_empty() => {
                write!(f, "timed out after {after:?}")
            }
            Error::Timeout { addr, after } => {
                write!(f, "request to {addr} timed out after {after:?}")
            }
            Error::Broker { code, remark, addr } => {
                let name = crate::protocol::codes::ResponseCode::name(*code);
                write!(f, "{addr} answered {name} ({code})")?;
                if !remark.is_empty() {
                    write!(f, ": {remark}")?;
                }
                Ok(())
            }
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::NoRoute { topic, reason } if reason.is_empty() => {
                write!(f, "no route for topic {topic:?}")
            }
            Error::NoRoute { topic, reason } => {
                write!(f, "no route for topic {topic:?}: {reason}")
            }
            Error::InvalidMessage(why) => write!(f, "invalid message: {why}"),
            Error::Config { setting, reason } => write!(f, "invalid setting {setting}: {reason}"),
            Error::Backpressure {
                in_flight,
                in_flight_bytes,
                waited,
            } => write!(
                f,
                "producer is full ({in_flight} sends, {in_flight_bytes} bytes in flight) \
                 and no send finished within {waited:?}"
            ),
            Error::Shutdown => f.write_str("the producer or client is shut down"),
            Error::User(why) => write!(f, "user code failed: {why}"),
            Error::OrderViolation { queue, reason } => write!(
                f,
                "strict order: queue {} of broker {} (topic {:?}) cannot take the message: \
                 {reason}; not sent elsewhere",
                queue.queue_id(),
                queue.broker_name(),
                queue.topic()
            ),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Protocol(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(
            std::mem::size_of::<Error>() <= 72,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn retriable_policy() {
        let busy = Error::Broker {
            code: 2,
            remark: "busy".into(),
            addr: "a:1".into(),
        };
        assert!(busy.is_retriable());
        assert_eq!(busy.response_code(), Some(2));
        assert_eq!(busy.broker_addr(), Some("a:1"));
        let illegal = Error::Broker {
            code: 13,
            remark: String::new(),
            addr: "a:1".into(),
        };
        assert!(!illegal.is_retriable());
        assert!(illegal.is_retriable_with(&[13]));
        assert!(Error::Timeout {
            addr: "a:1".into(),
            after: Duration::from_secs(1)
        }
        .is_retriable());
        assert!(!Error::InvalidMessage("empty body".into()).is_retriable());
        assert!(!Error::Shutdown.is_retriable());
    }

    #[test]
    fn display_names_code_and_address() {
        let e = Error::Broker {
            code: 2,
            remark: "[TIMEOUT_CLEAN_QUEUE] busy".into(),
            addr: "10.0.0.1:10911".into(),
        };
        assert_eq!(
            e.to_string(),
            "10.0.0.1:10911 answered SYSTEM_BUSY (2): [TIMEOUT_CLEAN_QUEUE] busy"
        );
        let t = Error::Timeout {
            addr: "10.0.0.1:10911".into(),
            after: Duration::from_millis(250),
        };
        assert_eq!(
            t.to_string(),
            "request to 10.0.0.1:10911 timed out after 250ms"
        );
    }

    #[test]
    fn kinds_index_matches_all() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
