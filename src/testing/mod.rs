//! An in-process RocketMQ name server and broker for tests and examples, with fault injection.
//!
//! [`MockBroker::start`] binds `127.0.0.1:0` and plays name server **and** broker (`broker-a`
//! of `DefaultCluster`) on that one port: point a producer's name server at
//! [`MockBroker::namesrv_addr`] and send. Topics are auto-created on first send from `TBW102`
//! (perm 7, 8 queues) with `min(defaultTopicQueueNums, 8)` queues, 4 for a Java-like producer,
//! as on a broker with `autoCreateTopicEnable=true`. What was stored can be read back with
//! [`MockBroker::messages`]. [`MockCluster`] runs several brokers (and optional slaves) behind
//! one name server, for failover tests.
//!
//! # What it answers
//!
//! It answers the requests a producer makes the way a real broker does, checked against frames
//! captured from a real RocketMQ name server and broker:
//!
//! - `GET_ROUTEINFO_BY_TOPIC` (105): the route as standard JSON (the legacy form with unquoted
//!   integer keys to clients older than 4.9.4 that do not ask for standard JSON, or always with
//!   [`MockBrokerBuilder::legacy_route_json`]); `TOPIC_NOT_EXIST` with the remark
//!   `No topic route info in name server for the topic: X` for unknown topics.
//! - `SEND_MESSAGE` (10), `SEND_MESSAGE_V2` (310), `SEND_BATCH_MESSAGE` (320): the offset
//!   message id (store address + commit-log offset, 32 hex digits; comma-joined, one per
//!   message, for batches), `queueId`, `queueOffset` per queue, `transactionId` (the
//!   `UNIQ_KEY`), `MSG_REGION` and `TRACE_ON`. Stored messages get `CLUSTER`, `MSG_REGION` and
//!   `TRACE_ON` properties. Refusals use a real broker's codes: illegal topic name or queue id
//!   out of range `SYSTEM_ERROR` (1), body over 4 MiB or properties over 32 KiB
//!   `MESSAGE_ILLEGAL` (13), unwritable topic or system topic `NO_PERMISSION` (16), unknown
//!   topic without auto-create `TOPIC_NOT_EXIST` (17); a slave answers sends with
//!   `SERVICE_NOT_AVAILABLE` (14).
//! - `HEART_BEAT` (34) records the client id and producer groups and remembers the connection
//!   for check-backs and reply pushes; `UNREGISTER_CLIENT` (35) forgets it.
//! - `SEND_REPLY_MESSAGE` (324) and `SEND_REPLY_MESSAGE_V2` (325), request-reply: the reply
//!   is stored as a send is, and pushed as `PUSH_REPLY_MESSAGE_TO_CLIENT` (326) to the
//!   connection whose heartbeat registered its `REPLY_TO_CLIENT` client id
//!   ([`MockBroker::reply_pushes`] shows what the requester answered); `SYSTEM_ERROR` with a
//!   real broker's remark when no such connection is alive. [`MockBroker::wait_messages`]
//!   reads a request back for a test's responder.
//! - `END_TRANSACTION` (37): looked up by `commitLogOffset`, checked against the producer group
//!   and `tranStateTableOffset` like a real broker, then applied; every one is recorded
//!   ([`MockBroker::end_transactions`]).
//! - `VIEW_MESSAGE_BY_ID` (33) and `QUERY_MESSAGE` (12) return stored messages in the stored
//!   layout; `GET_MAX_OFFSET` (30) a queue's next offset; `UPDATE_AND_CREATE_TOPIC` (17)
//!   creates a topic.
//! - Anything else: `REQUEST_CODE_NOT_SUPPORTED` (3). Oneway requests are never answered.
//!   Responses use the request's header format (JSON or ROCKETMQ binary).
//!
//! # Transactions
//!
//! A half message (`TRAN_MSG=true`) is held, like on a real broker, in
//! `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with `REAL_TOPIC` / `REAL_QID`, and becomes visible in
//! [`MockBroker::messages`] only once committed (the commit writes the real message, with the
//! commit bits in its sysFlag). [`MockBroker::check_transaction`] (or an automatic
//! [`MockBrokerBuilder::transaction_check_interval`]) sends `CHECK_TRANSACTION_STATE` (39,
//! oneway) to a connection that heartbeats for the message's `PGROUP`; as a real broker does,
//! each check first stores the half message again, so the check names offsets that differ from
//! the send response's, and only an `END_TRANSACTION` carrying the check's offsets resolves it.
//!
//! # Faults
//!
//! Faults are scripted per request code ([`MockBroker::fail_next`],
//! [`MockBroker::store_with_status_next`], [`MockBroker::delay_next`],
//! [`MockBroker::set_delay`], [`MockBroker::reset_mid_frame_next`],
//! [`MockBroker::malformed_next`], [`MockBroker::close_next`]) or per node
//! ([`MockBroker::black_hole`], [`MockBroker::close_connections`], [`MockBroker::stop`] and
//! [`MockBroker::restart`] on the same port). A [`MockCluster`]'s name server takes the same
//! faults through [`MockCluster::namesrv`]. [`MockBroker::counters`] tells what arrived.
//!
//! # Threads and speed
//!
//! The mock uses blocking `std::net` threads, one per connection, and nothing of the client's
//! event loop, so a bug in one cannot hide in the other. A connection thread decodes every
//! request that one read brought in and answers them all with one write, so pipelined sends
//! are answered at several hundred thousand per second (`cargo run --release --example
//! mock_bench`); it is not the bottleneck of a client benchmark.
//!
//! # Example
//!
//! ```
//! use rocketmq_mio::testing::MockBroker;
//! use rocketmq_mio::protocol::{RequestCode, ResponseCode};
//! use rocketmq_mio::{Message, Producer};
//!
//! let broker = MockBroker::start()?;
//! let producer = Producer::builder("GID_DOC").name_server(broker.namesrv_addr()).start()?;
//! producer.send(Message::new("orders", "hello").with_tags("created"))?;
//! assert_eq!(broker.messages("orders")[0].tags(), Some("created"));
//!
//! // The next send is refused once with SYSTEM_BUSY; the producer retries it.
//! broker.fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
//! producer.send(Message::new("orders", "again"))?;
//! assert_eq!(broker.message_count("orders"), 2);
//! assert_eq!(broker.counters().received(RequestCode::SEND_MESSAGE_V2), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Two brokers behind one name server; a stopped broker leaves the routes:
//!
//! ```
//! use rocketmq_mio::testing::MockCluster;
//! use rocketmq_mio::{Message, Producer};
//!
//! let cluster = MockCluster::builder().brokers(2).topic("orders", 4).start()?;
//! let producer = Producer::builder("GID_DOC2").name_server(cluster.namesrv_addr()).start()?;
//! cluster.broker(0).stop();
//! producer.send(Message::new("orders", "to broker-b"))?;
//! assert_eq!(cluster.broker(1).message_count("orders"), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod acl;
mod cluster;
mod node;
mod records;
mod reply;
mod server;
#[cfg(feature = "tls")]
mod tls;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

pub use acl::{AclAccount, AclPerm};
pub use cluster::{MockCluster, MockClusterBuilder, MockNameServer};
pub use records::{
    EndTransactionRecord, HalfMessage, MockCounters, ReplyPush, StoredMessage, TransactionState,
};
#[cfg(feature = "tls")]
pub use tls::MockTls;

use node::{BrokerCore, BrokerSettings, Fault, NamesrvCore, Node, TopicConf};
use server::{Dispatch, Server, ServerTls};

/// Settings of a [`MockBroker`].
#[derive(Debug, Clone)]
pub struct MockBrokerBuilder {
    name: String,
    topics: Vec<(String, i32)>,
    check_interval: Option<Duration>,
    port: u16,
    ip: IpAddr,
    legacy_json: bool,
    settings: BrokerSettings,
    acl: Option<Vec<AclAccount>>,
    tls: ServerTls,
}

impl Default for MockBrokerBuilder {
    fn default() -> Self {
        MockBrokerBuilder {
            name: "broker-a".into(),
            topics: Vec::new(),
            check_interval: None,
            port: 0,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            legacy_json: false,
            acl: None,
            tls: ServerTls::default(),
            settings: BrokerSettings {
                auto_create: true,
                keep_messages: true,
                slave: false,
                transaction_timeout: Duration::ZERO,
                transaction_check_max: 15,
            },
        }
    }
}

impl MockBrokerBuilder {
    /// The broker name (default `broker-a`).
    pub fn broker_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Whether unknown topics are created on first send (default true). When off, TBW102 does
    /// not exist and sends to unknown topics get TOPIC_NOT_EXIST.
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.settings.auto_create = on;
        self
    }

    /// A topic that exists from the start, with `queues` read and write queues.
    pub fn topic(mut self, name: impl Into<String>, queues: i32) -> Self {
        self.topics.push((name.into(), queues));
        self
    }

    /// Sends check-backs for unresolved half messages every `interval` (a real broker's
    /// `transactionCheckInterval`; off by default: checks are sent by
    /// [`MockBroker::check_transaction`]).
    pub fn transaction_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = Some(interval);
        self
    }

    /// How old a half message must be before an automatic check names it (a real broker's
    /// `transactionTimeOut`, 6 s there; default zero here).
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.settings.transaction_timeout = timeout;
        self
    }

    /// How many automatic checks a half message gets before the broker gives up on it (a real
    /// broker's `transactionCheckMax`, default 15).
    pub fn transaction_check_max(mut self, max: u32) -> Self {
        self.settings.transaction_check_max = max;
        self
    }

    /// Whether stored messages are kept for [`MockBroker::messages`] (default true). Turn it
    /// off for long benchmarks: offsets, ids and [`MockBroker::counters`] still advance, but
    /// memory does not grow with every message.
    pub fn keep_messages(mut self, keep: bool) -> Self {
        self.settings.keep_messages = keep;
        self
    }

    /// Answers routes in the legacy form with unquoted integer keys (`{0:"ip:port"}`), as name
    /// servers before 4.9.4 always do (default false: standard JSON to clients that send
    /// version 401+ or `acceptStandardJsonOnly`).
    pub fn legacy_route_json(mut self, on: bool) -> Self {
        self.legacy_json = on;
        self
    }

    /// Turns on ACL verification with these accounts: every request must be signed by one of
    /// them, and sends need `PUB` on their topic (the rules are in [`AclAccount`]'s module
    /// docs). Refusals are answered with `NO_PERMISSION` (16) and a remark, and counted in
    /// [`MockCounters::acl_refusals`]. Off by default.
    pub fn acl(mut self, accounts: impl IntoIterator<Item = AclAccount>) -> Self {
        self.acl = Some(accounts.into_iter().collect());
        self
    }

    /// Listens on this loopback address instead of 127.0.0.1: `::1` gives a broker that
    /// routes name as `[::1]:port`, for IPv6 tests. Loopback only: any other address is
    /// refused when the broker starts.
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// Binds this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves TLS only, with this identity (crate feature `tls`): clients must connect with
    /// TLS, as to a real broker in "enforcing" mode.
    ///
    /// # Errors
    /// The certificate and key do not fit together (or another rustls refusal).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: MockTls) -> io::Result<Self> {
        self.tls.config = Some(tls.server_config()?);
        Ok(self)
    }

    /// Starts a broker that is also its own name server.
    pub fn start(self) -> io::Result<MockBroker> {
        self.start_as(true)
    }

    fn start_as(self, serve_routes: bool) -> io::Result<MockBroker> {
        if !self.ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a mock broker listens on loopback only, not {}", self.ip),
            ));
        }
        let core = BrokerCore::new(&self.name, self.settings.clone());
        {
            let mut store = core.store.lock();
            for (topic, queues) in &self.topics {
                store.topics.insert(topic.clone(), TopicConf::rw(*queues));
            }
        }
        let namesrv = serve_routes.then(|| NamesrvCore {
            brokers: parking_lot::Mutex::new(Vec::new()),
            serve_self: true,
            legacy_json: self.legacy_json.into(),
        });
        let mut node = Node::new(Some(core), namesrv);
        node.acl = self.acl.map(acl::MockAcl::new);
        let node = Arc::new(node);
        let server = serve(&node, self.ip, self.port, &self.tls)?;
        if let Some(b) = &node.broker {
            let _ = b.addr.set(server.addr());
        }
        if let Some(interval) = self.check_interval {
            let weak = Arc::downgrade(&node);
            thread::Builder::new()
                .name("mock-tx-check".into())
                .spawn(move || check_loop(weak, interval))?;
        }
        Ok(MockBroker { node })
    }
}

fn serve(node: &Arc<Node>, ip: IpAddr, port: u16, tls: &ServerTls) -> io::Result<Arc<Server>> {
    let (server, listener) = Server::bind(ip, port, tls.clone())?;
    let weak: Weak<dyn Dispatch> = Arc::downgrade(&(node.clone() as Arc<dyn Dispatch>));
    server.start(listener, weak)?;
    *node.server.lock() = Some(server.clone());
    Ok(server)
}

/// The automatic check service: wakes every `interval` (in short naps, so a dropped broker
/// ends it soon).
fn check_loop(node: Weak<Node>, interval: Duration) {
    let nap = interval.min(Duration::from_millis(50));
    let mut waited = Duration::ZERO;
    loop {
        thread::sleep(nap);
        let Some(node) = node.upgrade() else { return };
        waited += nap;
        if waited < interval {
            continue;
        }
        waited = Duration::ZERO;
        if let (true, Some(b)) = (node.is_running(), &node.broker) {
            b.check(&|_| true, true);
        }
    }
}

/// The fault API shared by brokers and a cluster's name server.
fn push_fault(node: &Node, request_code: i32, fault: Fault, n: usize) {
    node.with_faults(|faults| {
        let queue = faults.next.entry(request_code).or_default();
        for _ in 0..n {
            queue.push_back(fault.clone());
        }
    });
}

fn node_addr(node: &Node) -> SocketAddr {
    node.server
        .lock()
        .as_ref()
        .map(|s| s.addr())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Implements the per-node fault and lifecycle API on a type with a `node: Arc<Node>` field.
macro_rules! node_api {
    ($ty:ty) => {
        impl $ty {
            /// The socket address it listens on.
            pub fn addr(&self) -> SocketAddr {
                node_addr(&self.node)
            }

            /// Answers the next `n` requests with `request_code` with `response_code` (remark
            /// `"injected failure"`), without handling them. Oneway requests are dropped.
            pub fn fail_next(&self, request_code: i32, response_code: i32, n: usize) {
                self.fail_next_with(request_code, response_code, "injected failure", n);
            }

            /// Like `fail_next`, with a remark.
            pub fn fail_next_with(
                &self,
                request_code: i32,
                response_code: i32,
                remark: &str,
                n: usize,
            ) {
                push_fault(
                    &self.node,
                    request_code,
                    Fault::Fail(response_code, remark.to_string()),
                    n,
                );
            }

            /// Delays the responses to the next `n` requests with `request_code` (handled at
            /// once; later requests on the connection are answered meanwhile).
            pub fn delay_next(&self, request_code: i32, delay: Duration, n: usize) {
                push_fault(&self.node, request_code, Fault::Delay(delay), n);
            }

            /// Delays every response to `request_code` until `clear_faults`.
            pub fn set_delay(&self, request_code: i32, delay: Duration) {
                self.node.with_faults(|f| {
                    f.standing_delay.insert(request_code, delay);
                });
            }

            /// Handles the next request with `request_code`, writes the first half of its
            /// response, then resets the connection.
            pub fn reset_mid_frame_next(&self, request_code: i32) {
                push_fault(&self.node, request_code, Fault::Reset, 1);
            }

            /// Answers the next request with `request_code` with a frame that cannot be
            /// decoded (a valid length, then an unknown serialize type and junk).
            pub fn malformed_next(&self, request_code: i32) {
                push_fault(&self.node, request_code, Fault::Malformed, 1);
            }

            /// Closes the connection when the next request with `request_code` arrives,
            /// without handling it.
            pub fn close_next(&self, request_code: i32) {
                push_fault(&self.node, request_code, Fault::Close, 1);
            }

            /// While on, requests are read (and counted) and never answered.
            pub fn black_hole(&self, on: bool) {
                self.node.with_faults(|f| f.black_hole = on);
            }

            /// Drops every scripted fault, delay and the black hole.
            pub fn clear_faults(&self) {
                self.node.with_faults(|f| {
                    f.next.clear();
                    f.standing_delay.clear();
                    f.black_hole = false;
                });
            }

            /// Closes every client connection (it keeps listening).
            pub fn close_connections(&self) {
                if let Some(s) = self.node.server.lock().clone() {
                    s.close_connections();
                }
            }

            /// Client connections open now.
            pub fn connection_count(&self) -> usize {
                self.node
                    .server
                    .lock()
                    .as_ref()
                    .map_or(0, |s| s.connections().len())
            }

            /// Stops listening and closes every connection; what it stores is kept.
            pub fn stop(&self) {
                if let Some(s) = self.node.server.lock().clone() {
                    s.stop();
                }
            }

            /// Listens again on the same port.
            ///
            /// # Errors
            /// If the port cannot be bound again within about two seconds.
            pub fn restart(&self) -> io::Result<()> {
                match self.node.server.lock().clone() {
                    Some(s) => s.restart(),
                    None => Err(io::Error::other("never started")),
                }
            }

            /// Whether it is listening.
            pub fn is_running(&self) -> bool {
                self.node.is_running()
            }
        }
    };
}
pub(crate) use node_api;

/// An in-process broker that is also its own name server. See the [module docs](self).
///
/// Dropping it stops it and closes every connection.
pub struct MockBroker {
    node: Arc<Node>,
}

node_api!(MockBroker);

impl std::fmt::Debug for MockBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBroker")
            .field("name", &self.broker_name())
            .field("addr", &self.addr())
            .finish()
    }
}

impl MockBroker {
    /// Starts a broker named `broker-a` on a free loopback port, auto-creating topics.
    ///
    /// # Errors
    /// If it cannot bind or spawn its threads.
    pub fn start() -> io::Result<MockBroker> {
        MockBrokerBuilder::default().start()
    }

    /// Settings for a broker.
    pub fn builder() -> MockBrokerBuilder {
        MockBrokerBuilder::default()
    }

    fn core(&self) -> &BrokerCore {
        // Every MockBroker is built with a broker role (see `start_as`).
        match &self.node.broker {
            Some(b) => b,
            None => unreachable!("a MockBroker always has a broker role"),
        }
    }

    /// The name server address (`host:port`) to give producers.
    pub fn namesrv_addr(&self) -> String {
        self.addr().to_string()
    }

    /// The broker address (`host:port`), as routes list it.
    pub fn broker_addr(&self) -> String {
        self.addr().to_string()
    }

    /// The broker name.
    pub fn broker_name(&self) -> &str {
        &self.core().name
    }

    /// Creates (or resizes) a topic with `queues` read and write queues, perm 6.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        self.core()
            .store
            .lock()
            .topics
            .insert(topic.to_string(), TopicConf::rw(queues));
    }

    /// Whether the broker has `topic` (configured or auto-created).
    pub fn has_topic(&self, topic: &str) -> bool {
        self.core().store.lock().topics.contains_key(topic)
    }

    /// Changes a topic's read and write queue counts (routes change at once).
    pub fn set_queues(&self, topic: &str, queues: i32) {
        self.set_read_write_queues(topic, queues, queues);
    }

    /// Sets a topic's read and write queue counts separately (producers send to the write
    /// queues; a send to a queue id at or past the larger count is refused).
    pub fn set_read_write_queues(&self, topic: &str, read: i32, write: i32) {
        if let Some(t) = self.core().store.lock().topics.get_mut(topic) {
            t.read_queues = read;
            t.write_queues = write;
        }
    }

    /// Changes a topic's permission bits (see [`crate::protocol::route::perm`]).
    pub fn set_perm(&self, topic: &str, perm: i32) {
        if let Some(t) = self.core().store.lock().topics.get_mut(topic) {
            t.perm = perm;
        }
    }

    /// Removes a topic: its route disappears (stored messages stay readable). With
    /// auto-create on, the next send to it creates it again.
    pub fn remove_topic(&self, topic: &str) {
        self.core().store.lock().topics.remove(topic);
    }

    /// The visible messages of `topic`, in arrival order (committed transactional messages
    /// included, half messages not).
    pub fn messages(&self, topic: &str) -> Vec<StoredMessage> {
        self.core().messages(topic)
    }

    /// Waits until `topic` has at least `n` visible messages or `timeout` has passed, and
    /// returns its messages then (fewer than `n` at the timeout). For responders of
    /// request-reply in tests: the mock keeps the requests it stores.
    pub fn wait_messages(&self, topic: &str, n: usize, timeout: Duration) -> Vec<StoredMessage> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let messages = self.messages(topic);
            if messages.len() >= n || std::time::Instant::now() >= deadline {
                return messages;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The replies pushed to requesters (PUSH_REPLY_MESSAGE_TO_CLIENT), in order, with the
    /// requesters' answers.
    pub fn reply_pushes(&self) -> Vec<ReplyPush> {
        self.core().reply_pushes()
    }

    /// How many visible messages `topic` has.
    pub fn message_count(&self, topic: &str) -> usize {
        self.core().message_count(topic)
    }

    /// Half messages, in arrival order (each shows its latest record).
    pub fn half_messages(&self) -> Vec<HalfMessage> {
        self.core().half_messages()
    }

    /// The state of the half message whose transaction id (`UNIQ_KEY`) is `transaction_id`;
    /// `None` if the broker never got it.
    pub fn transaction_state(&self, transaction_id: &str) -> Option<TransactionState> {
        self.core().transaction_state(transaction_id)
    }

    /// Handles the next `n` requests with `request_code` normally (the message is stored), then
    /// answers with `status` instead of SUCCESS: FLUSH_DISK_TIMEOUT (10), SLAVE_NOT_AVAILABLE
    /// (11) or FLUSH_SLAVE_TIMEOUT (12), as a SYNC_FLUSH or SYNC_MASTER broker does (the
    /// response keeps its msgId, queueId and queueOffset).
    pub fn store_with_status_next(&self, request_code: i32, status: i32, n: usize) {
        push_fault(&self.node, request_code, Fault::Status(status), n);
    }

    /// Handles the next request with `request_code` normally (a send is stored), then answers
    /// with its usual code but a header that cannot be read (`queueId` is not a number): what a
    /// client sees when a broker stored the message and the answer got garbled. A client must
    /// not send such a message again.
    pub fn unreadable_header_next(&self, request_code: i32) {
        push_fault(&self.node, request_code, Fault::UnreadableHeader, 1);
    }

    /// Every END_TRANSACTION received, in order.
    pub fn end_transactions(&self) -> Vec<EndTransactionRecord> {
        self.core().store.lock().end_transactions.clone()
    }

    /// Sends CHECK_TRANSACTION_STATE for the unresolved half message with this transaction id
    /// (its `UNIQ_KEY`) to a connection that heartbeats for its group. Returns how many checks
    /// went out (0 if no such message or no such connection).
    pub fn check_transaction(&self, transaction_id: &str) -> usize {
        self.core()
            .check(&|m| m.msg_id() == Some(transaction_id), false)
    }

    /// Sends a check-back for every unresolved half message.
    pub fn check_all_transactions(&self) -> usize {
        self.core().check(&|_| true, false)
    }

    /// What it received and did.
    pub fn counters(&self) -> MockCounters {
        let mut c = self.core().store.lock().counters.clone();
        c.received = self.node.received.snapshot();
        c.received_binary = self.node.received_binary.snapshot();
        c.acl_refused = self.node.acl_refused.snapshot();
        c.end_transactions = self.core().store.lock().end_transactions.len() as u64;
        c.connections = self.node.server.lock().as_ref().map_or(0, |s| s.accepted());
        c
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
