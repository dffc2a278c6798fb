//! # rocketmq-mio
//!
//! A blocking Apache RocketMQ producer for Rust programs that run no async runtime.
//!
//! Library-owned [mio] event-loop threads drive the broker sockets; your threads stay
//! synchronous. [`Producer::send`] blocks until the broker has stored the message. Asynchronous
//! sends come back as callbacks ([`Producer::send_with_callback`]) or as a [`SendHandle`] that
//! you can block on with [`SendHandle::wait`] or `.await` on any executor (futures-lite's
//! `block_on`, smol, tokio): it is a plain [`std::future::Future`] and needs no runtime of ours.
//!
//! ## Quick start
//!
//! The embedded [`testing::MockBroker`] plays name server and broker in-process, so this runs
//! as it is; point [`ProducerConfigBuilder::name_server`] at your name servers instead.
//!
//! ```
//! use std::time::Duration;
//! use rocketmq_mio::{Message, Producer};
//! use rocketmq_mio::routing::selector::MessageHashSelector;
//! # use rocketmq_mio::testing::MockBroker;
//! # let broker = MockBroker::start()?;
//! # let namesrv = broker.namesrv_addr();
//!
//! let producer = Producer::builder("GID_ORDERS")
//!     .name_server(namesrv)                      // "host:port;host:port"
//!     .send_timeout(Duration::from_secs(3))      // one budget for all attempts
//!     .retries(2)
//!     .start()?;
//!
//! let msg = Message::new("orders", "order 42 created")
//!     .with_tags("created")
//!     .with_keys(["o-42"]);
//! let result = producer.send(msg)?;              // blocks until the broker answers
//! println!("stored at {} offset {}", result.queue, result.queue_offset);
//!
//! let handle = producer.send_async(Message::new("orders", "order 43 created"));
//! let result = handle.wait()?;                   // or `handle.await?` in async code
//!
//! // Ordered: the same key always goes to the same queue (and to the queue a Java producer
//! // would pick for it).
//! producer.send_with_selector(Message::new("orders", "o-42 paid"), &MessageHashSelector, "o-42")?;
//!
//! producer.shutdown(Duration::from_secs(5))?;   // drains in-flight sends, unregisters
//! # let _ = result;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Threads and blocking
//!
//! A producer owns:
//!
//! - `rocketmq-io-N` threads: mio event loops that own every socket, match responses by
//!   opaque, and complete [`SendHandle`]s;
//! - `rocketmq-async-N` threads (as many as `callback_threads`): the library's own work that
//!   may block, route lookups and retries of asynchronous sends; they never run your
//!   callbacks;
//! - a `rocketmq-callback-N` pool (`callback_threads`, default 4): your completion callbacks
//!   and broker-initiated requests, nothing else;
//! - a `rocketmq-service` thread: route refresh and heartbeats every 30 s.
//!
//! Your code (callbacks, selectors, transaction listeners, send hooks) never runs on an I/O
//! thread, and no progress of the library (route lookups, retries, completions) ever waits for
//! your code to return. All threads are joined by [`Producer::shutdown`], or when the last
//! clone of the producer is dropped.
//!
//! Every request ends exactly once: with the broker's answer, a timeout, a connection error, or
//! [`Error::Shutdown`]. No handle, callback or blocked caller can hang.
//!
//! ## What callbacks may do
//!
//! A callback ([`Producer::send_with_callback`]) runs once, on a `rocketmq-callback-N` thread
//! (during a shutdown, once that pool has stopped, on the thread calling shutdown; never on
//! an I/O thread). A panic in it is caught and logged.
//!
//! - It **may block on any send**: [`Producer::send`], `send_async(..).wait()` (or
//!   `block_on` of the handle), transactional sends, [`Transaction::commit`]. It always gets
//!   its result: nothing those sends need runs on the callback pool.
//! - It **may send more** (chains, fan-out). It never waits for in-flight room, because the
//!   room is held by callbacks queued behind it: it takes room if there is some, else a
//!   callback allowance on top of the bounds (a quarter of `max_in_flight` and
//!   `max_in_flight_bytes`, at least 16 sends), else it fails at once with
//!   [`Error::Backpressure`].
//! - It **may shut the producer down**; shutdown then does not wait for the callback's own
//!   send, but waits (up to its timeout) for callbacks queued behind it.
//! - It **should not block for long on anything else**: each blocked callback takes one of
//!   the `callback_threads` threads, the callbacks queued behind it wait, and a send holds its
//!   in-flight share until its callback has returned, so slow callbacks slow down new sends
//!   (backpressure) instead of queueing without bound. It must not wait for another callback
//!   to run (with every callback thread waiting, none would).
//!
//! ## Send modes
//!
//! | method | returns | retries on another broker |
//! | --- | --- | --- |
//! | [`Producer::send`] | `Result<SendResult>` when stored | yes (`retries`, default 2) |
//! | [`Producer::send_async`] | [`SendHandle`] at once | yes (`async_retries`, default 2), on the library's `rocketmq-async-N` threads |
//! | [`Producer::send_with_callback`] | `()`; the callback gets the result on a callback thread | yes |
//! | [`Producer::send_oneway`] | `Ok` once queued for the socket | no |
//! | [`Producer::send_batch`] | one `SendResult` for the batch (ids comma-joined) | yes |
//! | [`Producer::send_to_queue`] | `Result<SendResult>` | no |
//! | [`Producer::send_with_selector`] | `Result<SendResult>` | no (order matters) |
//! | [`Producer::send_batch_oneway`] | `Ok` once the batch is queued for the socket | no |
//! | [`Producer::request`] | the reply, a `MessageExt` (see [request-reply](#request-reply)) | as [`Producer::send`] |
//!
//! Asynchronous forms exist for batches, queues and selectors too. [`Producer::flush`] waits
//! for every send accepted before it to end (pushing open auto-batches out), without stopping
//! the producer. Delayed messages: [`Message::with_delay`] (5.x timer) or
//! [`Message::with_delay_level`]. Asynchronous sends never
//! block on the network; with backpressure on (the default) they block while the producer has
//! `max_in_flight` sends or `max_in_flight_bytes` in flight, up to the send timeout, and then
//! fail with [`Error::Backpressure`]. A send counts as in flight until its caller has the
//! result: for a callback, until the callback has returned. Sends from callbacks never wait
//! (see above).
//!
//! ## Send hooks
//!
//! [`hooks::SendHook`]s registered with [`ProducerConfigBuilder::send_hook`] see every send
//! of every mode (transactions and their END_TRANSACTIONs included): `before_send` once per
//! send, before encoding, may add properties; `after_send` once per attempt shows the queue,
//! the broker, the attempt number, the latency and the result. Synchronous sends run them on
//! the calling thread, asynchronous ones run `after_send` on the callback pool without
//! holding up the send. A panicking hook is caught and counted. No hook, no cost. See
//! [`hooks`].
//!
//! ## Ordered messages
//!
//! The same key goes to the same queue while the topic's route is stable: a selector such as
//! [`routing::selector::MessageHashSelector`], or the `message_hash` routing strategy. With
//! [`ProducerConfig::strict_order`] (on in [`ProducerConfig::ordered`]) a key never moves: when
//! its queue is gone, not writable or its broker isolated, its sends fail with
//! [`Error::OrderViolation`] until the queue is back. Route changes that change a topic's
//! queue count are logged and counted in [`Producer::health`].
//!
//! ## Request-reply
//!
//! RPC over RocketMQ, as Java's `DefaultMQProducer.request`: [`Producer::request`] sends a
//! message and blocks until a consumer of it answers with [`Producer::reply`], at most its
//! timeout (one deadline for the route lookup, the send with its retries, and the reply).
//! [`Producer::request_async`] returns a [`RequestHandle`] (`.wait()` or `.await`),
//! [`Producer::request_with_callback`] runs a callback on a callback thread; forms to a
//! queue and with a selector exist too.
//!
//! ```
//! use std::time::Duration;
//! use rocketmq_mio::{Message, Producer};
//! # use rocketmq_mio::testing::MockBroker;
//! # let broker = std::sync::Arc::new(MockBroker::start()?);
//! # let namesrv = broker.namesrv_addr();
//! let requester = Producer::builder("GID_RPC_CLIENT").name_server(namesrv.clone()).start()?;
//! let responder = Producer::builder("GID_RPC_SERVER").name_server(namesrv).start()?;
//! # let b = broker.clone();
//! std::thread::spawn(move || {
//!     // A consumer receives the request (here the embedded broker hands it over) ...
//! #   let request = b.wait_messages("prices", 1, Duration::from_secs(10)).remove(0);
//!     // ... and answers it: the broker pushes the reply to the requester.
//!     responder.reply(&request, "42.0").unwrap();
//! });
//! let reply = requester.request(Message::new("prices", "AAPL"), Duration::from_secs(10))?;
//! assert_eq!(reply.body, b"42.0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The reply finds its request by the `CORRELATION_ID` property; the broker finds the
//! requester by its client id (`REPLY_TO_CLIENT`), learned from its heartbeat, so the
//! producer heartbeats a broker (and waits for the answer) before its first request to it
//! and after a reconnect. Replies are matched on the I/O threads, so a callback may block on
//! a request. A request ends exactly once: with its reply, [`Error::Timeout`] at its
//! deadline, its send's error, or [`Error::Shutdown`]. A reply that comes too late, or for
//! a request this producer does not know, is dropped and counted
//! ([`stats::ProducerStats::requests`]). Pending requests count against backpressure like
//! asynchronous sends.
//!
//! ## Errors and retries
//!
//! One error type, [`Error`], sorted into [`ErrorKind`]s. Invalid messages are refused before
//! anything is sent ([`Error::InvalidMessage`]). A send is retried, within one time budget
//! (`send_timeout`, default 3 s), on connection errors, timeouts and the broker codes in
//! `retry_codes` (Java's list: 1, 2, 14, 16, 17, 204, 205, 1500; but a `NO_PERMISSION` (16)
//! refusal is [`Error::NoPermission`], never retried); a retry avoids the broker that
//! just failed, and the latency fault table keeps new sends away from a failing broker for a
//! while ([`routing::fault`]). [`Error::is_retriable`], [`Error::response_code`] and
//! [`Error::broker_addr`] tell what happened. A send that runs out of its time budget fails
//! with an [`Error::Timeout`] that carries its last attempt's error (kind, code, broker; also
//! its `source()`). A response the client cannot read is never retried: the broker may have
//! stored the message.
//!
//! ## Configuration
//!
//! [`ProducerConfig`] holds every RocketMQ producer setting, with Java's defaults, built with
//! [`Producer::builder`] or [`ProducerConfig::builder`], from `ROCKETMQ_*` environment
//! variables ([`ProducerConfigBuilder::from_env`]), or from presets
//! ([`ProducerConfig::production`], [`ProducerConfig::high_throughput`], ...). Invalid values are
//! errors that name the setting.
//!
//! ## Secured clusters (ACL) and namespaces
//!
//! With [`ProducerConfigBuilder::credentials`] (or `ROCKETMQ_ACCESS_KEY` and
//! `ROCKETMQ_SECRET_KEY`), every request the producer sends is signed as the Java client's
//! `AclClientRPCHook` signs it ([`protocol::acl`]). A broker's refusal is
//! [`Error::NoPermission`], with the broker's remark, and is never retried. The secret key never
//! shows in `Debug`, logs, statistics, health reports or errors. [`testing::MockBroker`] can
//! check signatures and topic permissions, so a test can try a signing configuration:
//!
//! ```
//! use rocketmq_mio::testing::{AclAccount, AclPerm, MockBroker};
//! use rocketmq_mio::{Error, Message, Producer};
//!
//! let broker = MockBroker::builder()
//!     .acl([AclAccount::new("orders-app", "s3cret").topic_perm("orders", AclPerm::Pub)])
//!     .start()?;
//! let producer = Producer::builder("GID_ACL")
//!     .name_server(broker.namesrv_addr())
//!     .credentials("orders-app", "s3cret")
//!     .start()?;
//! producer.send(Message::new("orders", "signed"))?;
//! let refused = producer.send(Message::new("payments", "not allowed")).unwrap_err();
//! assert!(matches!(refused, Error::NoPermission { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [namespace](ProducerConfig::namespace) wraps topics and the producer group on the wire
//! (`namespace%name`), as the Java client does, and is taken off what the user sees.
//! ## TLS
//!
//! With the cargo feature `tls` (off by default; rustls with the ring backend, no OpenSSL),
//! [`ProducerConfigBuilder::tls`] makes every connection, to name servers and brokers, a TLS
//! connection: servers verified against a CA file ([`ProducerConfigBuilder::tls_ca_file`]) or
//! the system roots, by the host they are reached at or a fixed
//! [`tls_server_name`](ProducerConfigBuilder::tls_server_name), with an optional client
//! certificate; `ROCKETMQ_TLS*` variables set the same. TLS runs inside the event loops (no
//! extra thread, no blocking call); the handshake is part of connecting, under the connect
//! timeout, and a failed one ends the requests waiting for it with a connection error that names
//! the node and says why. [`ProducerConfigBuilder::tls_insecure_skip_verify_for_testing`] turns
//! verification off, for self-signed test clusters only. Without the feature, asking for TLS is
//! a configuration error.
//!
//! ## Message trace
//!
//! [`ProducerConfigBuilder::trace`] (or `ROCKETMQ_TRACE=true`) records every send and every
//! transaction end in the Java client's trace format and sends the records, in batches, to
//! `RMQ_SYS_TRACE_TOPIC` ([`trace_topic`](ProducerConfigBuilder::trace_topic)) with an internal
//! producer of its own, keyed by message id, so RocketMQ's dashboard and admin tools show the
//! traces. Tracing never slows or fails a send: records wait in a bounded queue and are
//! dropped (counted in [`Producer::stats`]) when it is full; see [`trace`] for what is recorded
//! and what it costs, and [`trace::decode_trace_data`] to read trace messages back.
//!
//! ## Testing your own code
//!
//! [`testing::MockBroker`] and [`testing::MockCluster`] are always compiled: an in-process name
//! server and broker with an in-memory store you can read back, transactions with check-backs,
//! and scripted faults (error codes, delays, black holes, resets, malformed frames, restarts).
//!
//! [mio]: https://docs.rs/mio
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod error;
pub mod message;
pub mod protocol;
pub mod remoting;
pub mod routing;
pub mod testing;

mod client;
pub mod config;
mod hash;
mod padded;
mod producer;

pub use config::{ProducerConfig, ProducerConfigBuilder};
pub use error::{Error, ErrorKind, Result};
pub use message::{
    IdStr, Message, MessageExt, MessageQueue, OffsetMessageId, SendResult, SendStatus,
};
pub use producer::health::HealthReport;
pub use producer::hooks::SendHook;
pub use producer::stats::ProducerStats;
pub use producer::transaction::{
    ListenerResult, LocalTransactionState, Transaction, TransactionHandle, TransactionListener,
    TransactionProducer, TransactionProducerBuilder, TransactionRecord, TransactionSendResult,
    TransactionStats,
};
pub use producer::{health, hooks, stats, trace, transaction};
pub use producer::{Producer, RequestHandle, SendHandle, DROP_SHUTDOWN_TIMEOUT};
/// The value of [`ProducerConfig::serialize_type`] (re-exported from [`protocol`] so that the
/// setting needs no deeper import).
pub use protocol::SerializeType;
