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
//!   for check-backs; `UNREGISTER_CLIENT` (35) forgets it.
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

mod node;
mod reply;
mod server;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use node::{BrokerCore, BrokerSettings, Fault, NamesrvCore, Node, TopicConf};
use server::{Dispatch, Server};

use crate::message::MessageExt;
use crate::protocol::RequestCode;

/// A message as the mock stores it: a [`MessageExt`] with the fields a real broker's stored
/// record has (topic, queue id and offset, commit-log offset, body, flag, properties, sysFlag,
/// born and store time and host), and accessors for tags, keys, properties, the client id
/// ([`MessageExt::msg_id`], the `UNIQ_KEY`) and the offset id ([`MessageExt::offset_msg_id`]).
pub type StoredMessage = MessageExt;

/// Where a half message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// Waiting for END_TRANSACTION or a check-back.
    Prepared,
    /// Committed: the real message is visible.
    Committed,
    /// Rolled back: never visible.
    RolledBack,
}

/// A half (prepared) message the broker holds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HalfMessage {
    /// The latest half record (the original, or the copy stored by the last check), shown with
    /// its real topic and queue; `queue_offset` and `commit_log_offset` are what an
    /// END_TRANSACTION must carry. On the broker's wire (VIEW_MESSAGE_BY_ID) it sits in
    /// `RMQ_SYS_TRANS_HALF_TOPIC`, queue 0.
    pub message: MessageExt,
    /// Where it stands.
    pub state: TransactionState,
    /// The `PGROUP` it belongs to.
    pub producer_group: String,
    /// Its offset in the half queue (what END_TRANSACTION must echo).
    pub tran_state_table_offset: i64,
    /// How many check-backs were sent for it.
    pub checks: u32,
}

/// An END_TRANSACTION the broker received, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndTransactionRecord {
    /// `producerGroup`.
    pub producer_group: String,
    /// `tranStateTableOffset`.
    pub tran_state_table_offset: i64,
    /// `commitLogOffset`.
    pub commit_log_offset: i64,
    /// `commitOrRollback`: 8 commit, 12 rollback, 0 unknown.
    pub commit_or_rollback: i32,
    /// `fromTransactionCheck`.
    pub from_transaction_check: bool,
    /// `msgId`.
    pub msg_id: String,
    /// `transactionId`.
    pub transaction_id: Option<String>,
    /// `topic`.
    pub topic: Option<String>,
    /// `bname`.
    pub broker_name: Option<String>,
    /// The command's remark.
    pub remark: Option<String>,
    /// Whether it came oneway.
    pub oneway: bool,
}

/// What a mock node received and did.
#[derive(Debug, Clone, Default)]
pub struct MockCounters {
    received: HashMap<i32, u64>,
    heartbeats: u64,
    unregisters: u64,
    unregistered: Vec<String>,
    messages_stored: u64,
    half_messages: u64,
    checks_sent: u64,
    end_transactions: u64,
    connections: u64,
    clients: Vec<(String, Vec<String>)>,
}

impl MockCounters {
    /// Requests received with `code` (faulted and black-holed ones included).
    pub fn received(&self, code: i32) -> u64 {
        self.received.get(&code).copied().unwrap_or(0)
    }

    /// Requests received, all codes together.
    pub fn requests(&self) -> u64 {
        self.received.values().sum()
    }

    /// Send requests received (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE), faulted
    /// ones included: retries show here.
    pub fn sends(&self) -> u64 {
        self.received(RequestCode::SEND_MESSAGE)
            + self.received(RequestCode::SEND_MESSAGE_V2)
            + self.received(RequestCode::SEND_BATCH_MESSAGE)
    }

    /// Route requests received (GET_ROUTEINFO_BY_TOPIC).
    pub fn route_requests(&self) -> u64 {
        self.received(RequestCode::GET_ROUTEINFO_BY_TOPIC)
    }

    /// Heartbeats handled.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats
    }

    /// UNREGISTER_CLIENT requests handled.
    pub fn unregisters(&self) -> u64 {
        self.unregisters
    }

    /// Client ids that unregistered, in order.
    pub fn unregistered_clients(&self) -> &[String] {
        &self.unregistered
    }

    /// Messages stored (visible ones; each message of a batch counts).
    pub fn messages_stored(&self) -> u64 {
        self.messages_stored
    }

    /// Half messages received.
    pub fn half_messages(&self) -> u64 {
        self.half_messages
    }

    /// CHECK_TRANSACTION_STATE requests sent.
    pub fn checks_sent(&self) -> u64 {
        self.checks_sent
    }

    /// END_TRANSACTION requests handled (see [`MockBroker::end_transactions`] for each one).
    pub fn end_transactions(&self) -> u64 {
        self.end_transactions
    }

    /// Connections accepted since start (reconnects show here).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Clients seen in heartbeats: (client id, producer groups).
    pub fn clients(&self) -> &[(String, Vec<String>)] {
        &self.clients
    }
}

/// Settings of a [`MockBroker`].
#[derive(Debug, Clone)]
pub struct MockBrokerBuilder {
    name: String,
    topics: Vec<(String, i32)>,
    check_interval: Option<Duration>,
    port: u16,
    legacy_json: bool,
    settings: BrokerSettings,
}

impl Default for MockBrokerBuilder {
    fn default() -> Self {
        MockBrokerBuilder {
            name: "broker-a".into(),
            topics: Vec::new(),
            check_interval: None,
            port: 0,
            legacy_json: false,
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

    /// Binds this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts a broker that is also its own name server.
    pub fn start(self) -> io::Result<MockBroker> {
        self.start_as(true)
    }

    fn start_as(self, serve_routes: bool) -> io::Result<MockBroker> {
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
        let node = Arc::new(Node::new(Some(core), namesrv));
        let server = serve(&node, self.port)?;
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

fn serve(node: &Arc<Node>, port: u16) -> io::Result<Arc<Server>> {
    let (server, listener) = Server::bind(port)?;
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

/// The name server of a [`MockCluster`]: its address, faults and lifecycle.
pub struct MockNameServer {
    node: Arc<Node>,
}

node_api!(MockNameServer);

impl std::fmt::Debug for MockNameServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockNameServer")
            .field("addr", &self.addr())
            .finish()
    }
}

impl MockNameServer {
    /// Requests it received with `code`.
    pub fn received(&self, code: i32) -> u64 {
        self.node.received.get(code)
    }

    /// Route requests it received (GET_ROUTEINFO_BY_TOPIC).
    pub fn route_requests(&self) -> u64 {
        self.received(RequestCode::GET_ROUTEINFO_BY_TOPIC)
    }

    /// Answers routes in the legacy form with unquoted integer keys, as name servers before
    /// 4.9.4 do.
    pub fn legacy_route_json(&self, on: bool) {
        if let Some(ns) = &self.node.namesrv {
            ns.legacy_json.store(on, Ordering::Release);
        }
    }
}

impl Drop for MockNameServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings of a [`MockCluster`].
#[derive(Debug, Clone)]
pub struct MockClusterBuilder {
    brokers: usize,
    slaves: bool,
    broker: MockBrokerBuilder,
    topics_on: Vec<(String, i32, Vec<usize>)>,
}

impl Default for MockClusterBuilder {
    fn default() -> Self {
        MockClusterBuilder {
            brokers: 2,
            slaves: false,
            broker: MockBrokerBuilder::default(),
            topics_on: Vec::new(),
        }
    }
}

impl MockClusterBuilder {
    /// How many brokers (default 2), named `broker-a`, `broker-b`, ...
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n;
        self
    }

    /// Gives each broker a slave, listed in routes as broker id 1 (default false). Slaves
    /// refuse sends with SERVICE_NOT_AVAILABLE, as real slaves do.
    pub fn slaves(mut self, on: bool) -> Self {
        self.slaves = on;
        self
    }

    /// Whether brokers auto-create unknown topics (default true).
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.broker = self.broker.auto_create_topics(on);
        self
    }

    /// A topic with `queues` queues on every broker.
    pub fn topic(mut self, name: impl Into<String>, queues: i32) -> Self {
        self.broker = self.broker.topic(name, queues);
        self
    }

    /// A topic with `queues` queues on the brokers with these indexes only.
    pub fn topic_on(mut self, name: impl Into<String>, queues: i32, brokers: &[usize]) -> Self {
        self.topics_on.push((name.into(), queues, brokers.to_vec()));
        self
    }

    /// Automatic check-backs on every broker (see
    /// [`MockBrokerBuilder::transaction_check_interval`]).
    pub fn transaction_check_interval(mut self, interval: Duration) -> Self {
        self.broker = self.broker.transaction_check_interval(interval);
        self
    }

    /// See [`MockBrokerBuilder::keep_messages`].
    pub fn keep_messages(mut self, keep: bool) -> Self {
        self.broker = self.broker.keep_messages(keep);
        self
    }

    /// Starts the brokers, then the name server.
    ///
    /// # Errors
    /// If a node cannot bind or spawn its threads.
    pub fn start(self) -> io::Result<MockCluster> {
        let mut brokers = Vec::with_capacity(self.brokers);
        let mut slaves = Vec::new();
        for i in 0..self.brokers {
            let name = broker_name(i);
            let b = self
                .broker
                .clone()
                .broker_name(name.clone())
                .start_as(false)?;
            for (topic, queues, on) in &self.topics_on {
                if on.contains(&i) {
                    b.create_topic(topic, *queues);
                }
            }
            if self.slaves {
                let mut builder = self.broker.clone().broker_name(name);
                builder.settings.slave = true;
                builder.check_interval = None;
                let s = builder.start_as(false)?;
                *b.core().slave_addr.lock() = Some(s.broker_addr());
                slaves.push(s);
            }
            brokers.push(b);
        }
        let namesrv = Arc::new(Node::new(
            None,
            Some(NamesrvCore {
                brokers: parking_lot::Mutex::new(
                    brokers.iter().map(|b| (b.node.clone(), true)).collect(),
                ),
                serve_self: false,
                legacy_json: self.broker.legacy_json.into(),
            }),
        ));
        serve(&namesrv, 0)?;
        Ok(MockCluster {
            namesrv: MockNameServer { node: namesrv },
            brokers,
            slaves,
        })
    }
}

/// `broker-a`, `broker-b`, ..., `broker-z`, `broker-a1`, ...
fn broker_name(i: usize) -> String {
    let letter = (b'a' + (i % 26) as u8) as char;
    match i / 26 {
        0 => format!("broker-{letter}"),
        n => format!("broker-{letter}{n}"),
    }
}

/// A name server and several brokers (`broker-a`, `broker-b`, ...), each on its own port.
///
/// A stopped broker disappears from the routes (as with a real name server once the broker's
/// registration lapses) and comes back when restarted;
/// [`MockCluster::remove_broker_from_routes`] scripts route changes.
pub struct MockCluster {
    namesrv: MockNameServer,
    brokers: Vec<MockBroker>,
    slaves: Vec<MockBroker>,
}

impl std::fmt::Debug for MockCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCluster")
            .field("namesrv", &self.namesrv_addr())
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl MockCluster {
    /// A name server and `n` brokers that auto-create topics.
    ///
    /// # Errors
    /// If a node cannot bind or spawn its threads.
    pub fn start(n: usize) -> io::Result<MockCluster> {
        Self::builder().brokers(n).start()
    }

    /// Like [`MockCluster::start`], each broker with a slave listed as broker id 1.
    ///
    /// # Errors
    /// If a node cannot bind or spawn its threads.
    pub fn start_with_slaves(n: usize) -> io::Result<MockCluster> {
        Self::builder().brokers(n).slaves(true).start()
    }

    /// Settings for a cluster.
    pub fn builder() -> MockClusterBuilder {
        MockClusterBuilder::default()
    }

    /// The name server address to give producers.
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.addr().to_string()
    }

    /// The name server, for faults and counters.
    pub fn namesrv(&self) -> &MockNameServer {
        &self.namesrv
    }

    /// Broker `i` (0 is `broker-a`).
    ///
    /// # Panics
    /// If `i` is out of range (test code).
    pub fn broker(&self, i: usize) -> &MockBroker {
        &self.brokers[i]
    }

    /// The broker named `name`.
    pub fn broker_named(&self, name: &str) -> Option<&MockBroker> {
        self.brokers.iter().find(|b| b.broker_name() == name)
    }

    /// All brokers.
    pub fn brokers(&self) -> &[MockBroker] {
        &self.brokers
    }

    /// The slaves, if started with them (slave `i` belongs to broker `i`).
    pub fn slaves(&self) -> &[MockBroker] {
        &self.slaves
    }

    /// Creates a topic with `queues` queues on every broker.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        for b in &self.brokers {
            b.create_topic(topic, queues);
        }
    }

    /// Changes a topic's queue count on every broker that has it.
    pub fn set_queues(&self, topic: &str, queues: i32) {
        for b in &self.brokers {
            b.set_queues(topic, queues);
        }
    }

    /// Removes a topic from every broker.
    pub fn remove_topic(&self, topic: &str) {
        for b in &self.brokers {
            b.remove_topic(topic);
        }
    }

    /// The visible messages of `topic` on every broker, broker by broker.
    pub fn messages(&self, topic: &str) -> Vec<StoredMessage> {
        self.brokers
            .iter()
            .flat_map(|b| b.messages(topic))
            .collect()
    }

    /// How many visible messages `topic` has across the brokers.
    pub fn message_count(&self, topic: &str) -> usize {
        self.brokers.iter().map(|b| b.message_count(topic)).sum()
    }

    fn set_in_routes(&self, i: usize, on: bool) {
        if let Some(ns) = &self.namesrv.node.namesrv {
            if let Some(entry) = ns.brokers.lock().get_mut(i) {
                entry.1 = on;
            }
        }
    }

    /// Takes broker `i` out of every route (it keeps running and answering).
    pub fn remove_broker_from_routes(&self, i: usize) {
        self.set_in_routes(i, false);
    }

    /// Puts broker `i` back into the routes.
    pub fn restore_broker_in_routes(&self, i: usize) {
        self.set_in_routes(i, true);
    }

    /// Stops the name server (brokers keep running).
    pub fn stop_namesrv(&self) {
        self.namesrv.stop();
    }

    /// Starts the name server again on the same port.
    ///
    /// # Errors
    /// If the port cannot be bound again.
    pub fn restart_namesrv(&self) -> io::Result<()> {
        self.namesrv.restart()
    }
}
