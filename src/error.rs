//! The one error type of the crate, and its kinds.
//!
//! Every fallible call returns [`Error`]. Policy lives on the error, not at the call sites:
//! [`Error::is_retriable`] says whether a send may be tried again on another broker,
//! [`Error::kind`] sorts errors into the [`ErrorKind`]s that statistics count, and
//! [`Error::response_code`] gives the broker's response code where there is one.
//!
//! Errors keep what happened: a send that runs out of its time budget returns an
//! [`Error::Timeout`] that carries the last attempt's error (its kind, response code and
//! broker), [`Error::NoRoute`] keeps the name server error behind it, and both give it back
//! through [`std::error::Error::source`].

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
    ///
    /// For a single request, `addr` names the peer and `last` is `None`. For a send that ran
    /// out of its time budget (all attempts and route lookups share one), `after` is the time
    /// the send took, `addr` the broker of its last attempt (empty if none was made), and
    /// `last` the last attempt's error, so that [`Error::kind`], [`Error::response_code`],
    /// [`Error::broker_addr`] and [`std::error::Error::source`] tell what went wrong before
    /// time ran out (when the last attempt itself timed out, `last` is the last error before
    /// it that was not a timeout, if any).
    Timeout {
        /// `host:port` of the peer, when a request timed out; for a send that ran out of its
        /// time budget, the broker of its last attempt (empty when none was made).
        addr: String,
        /// How long the request or operation waited.
        after: Duration,
        /// The error that came before the time ran out, if any (see above).
        last: Option<Box<Error>>,
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
    /// The broker refused the request for lack of permission (response code 16,
    /// `NO_PERMISSION`): with ACL on, a wrong or missing access key, a bad signature, or an
    /// account that may not use the topic or group; also a topic or broker that takes no
    /// writes. Never retried: another attempt would be refused the same way.
    NoPermission {
        /// The broker's remark, which says why (`Authentication credentials are invalid`, ...).
        remark: String,
        /// `host:port` of the peer that refused.
        addr: String,
    },
    /// A frame or a message body could not be decoded.
    Protocol(CodecError),
    /// No route is known for the topic, and the name servers could not provide one.
    NoRoute {
        /// The topic.
        topic: String,
        /// Why (the last error from the name servers, as text), if known.
        reason: String,
        /// The error behind it (a name server that refused, timed out or answered a code),
        /// with its own kind and retriability; also [`std::error::Error::source`].
        source: Option<Box<Error>>,
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
    /// [`Error::NoPermission`].
    NoPermission,
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
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Broker,
        ErrorKind::NoPermission,
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
            ErrorKind::NoPermission => "no_permission",
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
    ///
    /// A send that ran out of its time budget after an attempt failed (an
    /// [`Error::Timeout`] with `last`) is of the kind of that failure: [`ErrorKind::Broker`]
    /// after a broker's error code, [`ErrorKind::Connection`] after a refused connection, and
    /// so on. A pure timeout is [`ErrorKind::Timeout`]. [`Error::is_timeout`] is true for both.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::ConnectionClosed { .. } => ErrorKind::Connection,
            Error::Timeout { last: Some(e), .. } => e.kind(),
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Broker { .. } => ErrorKind::Broker,
            Error::NoPermission { .. } => ErrorKind::NoPermission,
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
    /// Protocol errors are not: a local encoding error fails the same way again, and a
    /// response that cannot be read may come from a broker that stored the message (a
    /// malformed frame from a peer ends its connection: a connection error). Invalid
    /// messages, configuration errors, backpressure, shutdown and [`Error::NoPermission`]
    /// (although Java's list has its code, 16) are not either.
    pub fn is_retriable(&self) -> bool {
        self.is_retriable_with(&DEFAULT_RETRY_CODES)
    }

    /// Like [`Error::is_retriable`], with the given set of retriable broker response codes.
    pub fn is_retriable_with(&self, retry_codes: &[i32]) -> bool {
        match self {
            Error::Io { .. } | Error::ConnectionClosed { .. } | Error::Timeout { .. } => true,
            Error::Broker { code, .. } => retry_codes.contains(code),
            // Nothing reached the broker (a local encoding error), or it answered and the
            // answer is unreadable: the message may be stored, so it must not go again.
            Error::Protocol(_) => false,
            Error::NoRoute { .. } => false,
            _ => false,
        }
    }

    /// The broker's response code, for [`Error::Broker`] (and a send that ran out of its
    /// time budget after one).
    pub fn response_code(&self) -> Option<i32> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            Error::NoPermission { .. } => Some(crate::protocol::ResponseCode::NO_PERMISSION),
            Error::Timeout { last: Some(e), .. } => e.response_code(),
            _ => None,
        }
    }

    /// The address of the peer involved, where there is one: for a send that ran out of its
    /// time budget, the peer of the error it carries, else the broker of its last attempt.
    pub fn broker_addr(&self) -> Option<&str> {
        match self {
            Error::Io { addr, .. }
            | Error::ConnectionClosed { addr, .. }
            | Error::Broker { addr, .. }
            | Error::NoPermission { addr, .. } => Some(addr),
            Error::Timeout { addr, last, .. } => last
                .as_deref()
                .and_then(Error::broker_addr)
                .or((!addr.is_empty()).then_some(addr.as_str())),
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

    /// The error for a response with a code that is not success: [`Error::NoPermission`] for
    /// `NO_PERMISSION` (16), [`Error::Broker`] for the others.
    pub(crate) fn from_response(code: i32, remark: Option<String>, addr: &str) -> Error {
        let remark = remark.unwrap_or_default();
        let addr = addr.to_string();
        if code == crate::protocol::ResponseCode::NO_PERMISSION {
            Error::NoPermission { remark, addr }
        } else {
            Error::Broker { code, remark, addr }
        }
    }

    /// Builds a [`Error::Config`].
    pub(crate) fn config(setting: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// A copy of this error for another waiter (io errors keep their OS error code, or their
    /// kind and text).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { addr, source } => Error::Io {
                addr: addr.clone(),
                source: copy_io_error(source),
            },
            Error::ConnectionClosed { addr, reason } => Error::ConnectionClosed {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::Timeout { addr, after, last } => Error::Timeout {
                addr: addr.clone(),
                after: *after,
                last: last.as_ref().map(|e| Box::new(e.duplicate())),
            },
            Error::Broker { code, remark, addr } => Error::Broker {
                code: *code,
                remark: remark.clone(),
                addr: addr.clone(),
            },
            Error::NoPermission { remark, addr } => Error::NoPermission {
                remark: remark.clone(),
                addr: addr.clone(),
            },
            Error::Protocol(e) => Error::Protocol(e.clone()),
            Error::NoRoute {
                topic,
                reason,
                source,
            } => Error::NoRoute {
                topic: topic.clone(),
                reason: reason.clone(),
                source: source.as_ref().map(|e| Box::new(e.duplicate())),
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

/// A copy of an i/o error: the OS error code when there is one (its kind and text follow from
/// it), else the kind and the text.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { addr, source } => write!(f, "i/o error on connection to {addr}: {source}"),
            Error::ConnectionClosed { addr, reason } => {
                write!(f, "connection to {addr} closed: {reason}")
            }
            Error::Timeout {
                addr,
                after,
                last: None,
            } if addr.is_empty() => write!(f, "timed out after {after:?}"),
            Error::Timeout {
                addr,
                after,
                last: None,
            } => write!(f, "request to {addr} timed out after {after:?}"),
            Error::Timeout {
                addr,
                after,
                last: Some(last),
            } if addr.is_empty() || last.broker_addr() == Some(addr.as_str()) => {
                write!(f, "timed out after {after:?}; the last error: {last}")
            }
            Error::Timeout {
                addr,
                after,
                last: Some(last),
            } => write!(
                f,
                "request to {addr} timed out after {after:?}; the last error before: {last}"
            ),
            Error::Broker { code, remark, addr } => {
                let name = crate::protocol::codes::ResponseCode::name(*code);
                write!(f, "{addr} answered {name} ({code})")?;
                if !remark.is_empty() {
                    write!(f, ": {remark}")?;
                }
                Ok(())
            }
            Error::NoPermission { remark, addr } => {
                write!(f, "{addr} refused the request: NO_PERMISSION (16)")?;
                if !remark.is_empty() {
                    write!(f, ": {remark}")?;
                }
                Ok(())
            }
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::NoRoute { topic, reason, .. } if reason.is_empty() => {
                write!(f, "no route for topic {topic:?}")
            }
            Error::NoRoute { topic, reason, .. } => {
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
            Error::Timeout { last: Some(e), .. } => Some(e.as_ref()),
            Error::NoRoute {
                source: Some(e), ..
            } => Some(e.as_ref()),
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
            after: Duration::from_secs(1),
            last: None,
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
            last: None,
        };
        assert_eq!(
            t.to_string(),
            "request to 10.0.0.1:10911 timed out after 250ms"
        );
    }

    #[test]
    fn no_permission_is_its_own_kind_and_never_retried() {
        let e = Error::from_response(
            16,
            Some("Authentication credentials are invalid".into()),
            "b:1",
        );
        assert_eq!(e.kind(), ErrorKind::NoPermission);
        assert_eq!(e.response_code(), Some(16));
        assert_eq!(e.broker_addr(), Some("b:1"));
        assert!(!e.is_retriable());
        assert!(!e.is_retriable_with(&[16]));
        assert_eq!(
            e.to_string(),
            "b:1 refused the request: NO_PERMISSION (16): Authentication credentials are invalid"
        );
        assert_eq!(e.duplicate().to_string(), e.to_string());
        let other = Error::from_response(2, None, "b:1");
        assert!(matches!(other, Error::Broker { code: 2, .. }));
    }

    #[test]
    fn a_budget_timeout_tells_what_came_before() {
        let busy = Error::Broker {
            code: 2,
            remark: "busy".into(),
            addr: "10.0.0.1:10911".into(),
        };
        let t = Error::Timeout {
            addr: "10.0.0.1:10911".into(),
            after: Duration::from_millis(3001),
            last: Some(Box::new(busy)),
        };
        assert!(t.is_timeout());
        assert!(t.is_retriable());
        assert_eq!(t.kind(), ErrorKind::Broker);
        assert_eq!(t.response_code(), Some(2));
        assert_eq!(t.broker_addr(), Some("10.0.0.1:10911"));
        assert_eq!(
            t.to_string(),
            "timed out after 3.001s; the last error: 10.0.0.1:10911 answered SYSTEM_BUSY (2): busy"
        );
        let cause = t.source().and_then(|s| s.downcast_ref::<Error>()).unwrap();
        assert_eq!(cause.response_code(), Some(2));
        // The copy keeps all of it.
        let copy = t.duplicate();
        assert_eq!(copy.to_string(), t.to_string());
        assert_eq!(copy.kind(), ErrorKind::Broker);

        // The last attempt timed out at another broker after a refused connection.
        let refused = Error::Io {
            addr: "10.0.0.2:10911".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        let t = Error::Timeout {
            addr: "10.0.0.1:10911".into(),
            after: Duration::from_secs(3),
            last: Some(Box::new(refused)),
        };
        assert_eq!(t.kind(), ErrorKind::Connection);
        assert_eq!(t.broker_addr(), Some("10.0.0.2:10911"));
        assert_eq!(t.response_code(), None);
        assert!(t
            .to_string()
            .starts_with("request to 10.0.0.1:10911 timed out after 3s; the last error before: "));

        // A pure timeout stays one.
        let pure = Error::Timeout {
            addr: String::new(),
            after: Duration::from_secs(3),
            last: None,
        };
        assert_eq!(pure.kind(), ErrorKind::Timeout);
        assert_eq!(pure.broker_addr(), None);
        assert!(pure.source().is_none());
        assert_eq!(pure.to_string(), "timed out after 3s");
    }

    #[test]
    fn no_route_keeps_its_cause() {
        let e = Error::NoRoute {
            topic: "t".into(),
            reason: "the name server refused".into(),
            source: Some(Box::new(Error::Io {
                addr: "ns:9876".into(),
                source: io::Error::from_raw_os_error(111),
            })),
        };
        assert_eq!(e.kind(), ErrorKind::NoRoute);
        assert!(!e.is_retriable());
        let cause = e.source().and_then(|s| s.downcast_ref::<Error>()).unwrap();
        assert_eq!(cause.kind(), ErrorKind::Connection);
        assert!(cause.is_retriable());
        let Error::NoRoute {
            source: Some(copied),
            ..
        } = e.duplicate()
        else {
            panic!("the copy lost its source");
        };
        let Error::Io { source, .. } = *copied else {
            panic!()
        };
        assert_eq!(source.raw_os_error(), Some(111));
    }

    #[test]
    fn protocol_errors_are_not_retriable() {
        // A local encoding error: nothing was sent, and the same bytes fail again.
        let local = Error::Protocol(CodecError::HeaderTooLarge(1 << 24));
        assert!(!local.is_retriable());
        // A response that came back unreadable: the broker may have stored the message.
        let unreadable = Error::Protocol(CodecError::invalid("queueId", "x"));
        assert!(!unreadable.is_retriable());
        assert!(!unreadable.is_retriable_with(&[0, 1, 2]));
    }

    #[test]
    fn a_copied_io_error_keeps_its_os_code() {
        let refused = io::Error::from_raw_os_error(111);
        let e = Error::Io {
            addr: "a:1".into(),
            source: refused,
        };
        let copy = e.duplicate();
        let Error::Io { source, addr } = &copy else {
            panic!("{copy:?}");
        };
        assert_eq!(addr, "a:1");
        assert_eq!(source.raw_os_error(), Some(111));
        assert_eq!(source.kind(), io::Error::from_raw_os_error(111).kind());
        assert_eq!(copy.to_string(), e.to_string());
        // Without an OS code, kind and text survive.
        let custom = Error::Io {
            addr: "a:1".into(),
            source: io::Error::new(io::ErrorKind::InvalidData, "odd"),
        };
        let Error::Io { source, .. } = custom.duplicate() else {
            panic!()
        };
        assert_eq!(source.kind(), io::ErrorKind::InvalidData);
        assert_eq!(source.to_string(), "odd");
    }

    #[test]
    fn kinds_index_matches_all() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
