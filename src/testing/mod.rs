//! An in-process RocketMQ name server and broker for tests and examples, with fault injection.
//!
//! [`MockBroker::start`] binds `127.0.0.1:0` and plays name server **and** broker on that one
//! port: point a producer's name server at [`MockBroker::namesrv_addr`] and send. Topics are
//! auto-created on first send (from `TBW102`, 4 queues), as on a broker with
//! `autoCreateTopicEnable=true`. What was stored can be read back with
//! [`MockBroker::messages`]. [`MockCluster`] runs several brokers behind one name server, for
//! failover tests.
//!
//! It answers the requests a producer makes the way a real broker does (checked against the
//! RocketMQ-Rust broker's captured frames): offset message ids (store address + commit-log
//! offset), queue offsets per queue, `transactionId`, `MSG_REGION` and `TRACE_ON` on send
//! responses, comma-joined ids for batches, `TOPIC_NOT_EXIST` for unknown routes, and
//! transactions with check-backs that re-append the half message first.
//!
//! Faults are scripted per request code ([`MockBroker::fail_next`], [`MockBroker::delay_next`],
//! [`MockBroker::reset_mid_frame_next`], [`MockBroker::malformed_next`]) or per broker
//! ([`MockBroker::black_hole`], [`MockBroker::close_connections`], [`MockBroker::stop`] and
//! [`MockBroker::restart`] on the same port).
//!
//! The mock uses blocking `std::net` threads, one per connection, and nothing of the client's
//! event loop, so a bug in one cannot hide in the other. Pipelined requests that arrive in one
//! read are answered with one write.
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod node;
mod server;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use node::{BrokerCore, Fault, NamesrvCore, Node, TopicConf};
use server::{Dispatch, Server};

use crate::message::MessageExt;
use crate::protocol::route::perm;
use crate::protocol::RequestCode;

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
    /// The message (its topic and queue are the real ones).
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

/// What a mock broker received and did.
#[derive(Debug, Clone, Default)]
pub struct MockCounters {
    received: HashMap<i32, u64>,
    heartbeats: u64,
    unregisters: u64,
    unregistered: Vec<String>,
    messages_stored: u64,
    half_messages: u64,
    checks_sent: u64,
    clients: Vec<(String, Vec<String>)>,
}

impl MockCounters {
    /// Requests received with `code` (faulted and black-holed ones included).
    pub fn received(&self, code: i32) -> u64 {
        self.received.get(&code).copied().unwrap_or(0)
    }

    /// Send requests received (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE).
    pub fn sends(&self) -> u64 {
        self.received(RequestCode::SEND_MESSAGE)
            + self.received(RequestCode::SEND_MESSAGE_V2)
            + self.received(RequestCode::SEND_BATCH_MESSAGE)
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

    /// Clients seen in heartbeats: (client id, producer groups).
    pub fn clients(&self) -> &[(String, Vec<String>)] {
        &self.clients
    }
}

/// Settings of a [`MockBroker`].
#[derive(Debug, Clone)]
pub struct MockBrokerBuilder {
    name: String,
    auto_create: bool,
    topics: Vec<(String, i32)>,
    check_interval: Option<Duration>,
    port: u16,
    keep_messages: bool,
}

impl Default for MockBrokerBuilder {
    fn default() -> Self {
        MockBrokerBuilder {
            name: "broker-a".into(),
            auto_create: true,
            topics: Vec::new(),
            check_interval: None,
            port: 0,
            keep_messages: true,
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
        self.auto_create = on;
        self
    }

    /// A topic that exists from the start, with `queues` read and write queues.
    pub fn topic(mut self, name: impl Into<String>, queues: i32) -> Self {
        self.topics.push((name.into(), queues));
        self
    }

    /// Sends check-backs for unresolved half messages every `interval`.
    pub fn transaction_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = Some(interval);
        self
    }

    /// Binds this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Whether stored messages are kept for [`MockBroker::messages`] (default true). Turn it
    /// off for long benchmarks: offsets, ids and [`MockBroker::counters`] still advance, but
    /// memory does not grow with every message.
    pub fn keep_messages(mut self, keep: bool) -> Self {
        self.keep_messages = keep;
        self
    }

    /// Starts a broker that is also its own name server.
    pub fn start(self) -> io::Result<MockBroker> {
        self.start_as(true)
    }

    fn start_as(self, serve_routes: bool) -> io::Result<MockBroker> {
        let mut core = BrokerCore::new(&self.name, self.auto_create);
        core.keep_messages = self.keep_messages;
        {
            let mut store = core.store.lock();
            for (topic, queues) in &self.topics {
                store.topics.insert(
                    topic.clone(),
                    TopicConf {
                        queues: *queues,
                        perm: perm::READ | perm::WRITE,
                    },
                );
            }
        }
        let node = Arc::new(Node {
            broker: Some(core),
            namesrv: serve_routes.then(|| NamesrvCore {
                brokers: parking_lot::Mutex::new(Vec::new()),
                serve_self: true,
            }),
            server: parking_lot::Mutex::new(None),
        });
        let server = serve(&node, self.port)?;
        if let Some(b) = &node.broker {
            *b.addr.lock() = Some(server.addr());
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

fn check_loop(node: Weak<Node>, interval: Duration) {
    loop {
        thread::sleep(interval);
        let Some(node) = node.upgrade() else { return };
        let running = node.server.lock().as_ref().is_some_and(|s| s.is_running());
        if let (true, Some(b)) = (running, &node.broker) {
            b.check(&|_| true);
        }
    }
}

/// An in-process broker that is also its own name server. See the [module docs](self).
///
/// Dropping it stops it and closes every connection.
pub struct MockBroker {
    node: Arc<Node>,
}

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

    fn server(&self) -> Option<Arc<Server>> {
        self.node.server.lock().clone()
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server()
            .map(|s| s.addr())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
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

    /// Creates (or resizes) a topic with `queues` read and write queues.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        self.core().store.lock().topics.insert(
            topic.to_string(),
            TopicConf {
                queues,
                perm: perm::READ | perm::WRITE,
            },
        );
    }

    /// Changes a topic's queue count (routes change at once).
    pub fn set_queues(&self, topic: &str, queues: i32) {
        if let Some(t) = self.core().store.lock().topics.get_mut(topic) {
            t.queues = queues;
        }
    }

    /// Changes a topic's permission bits (see [`crate::protocol::route::perm`]).
    pub fn set_perm(&self, topic: &str, perm: i32) {
        if let Some(t) = self.core().store.lock().topics.get_mut(topic) {
            t.perm = perm;
        }
    }

    /// Removes a topic: its route disappears (stored messages stay readable).
    pub fn remove_topic(&self, topic: &str) {
        self.core().store.lock().topics.remove(topic);
    }

    /// The visible messages of `topic`, in arrival order.
    pub fn messages(&self, topic: &str) -> Vec<MessageExt> {
        self.core().messages(topic)
    }

    /// How many visible messages `topic` has.
    pub fn message_count(&self, topic: &str) -> usize {
        self.messages(topic).len()
    }

    /// Half messages, in arrival order (re-appended copies replace their originals).
    pub fn half_messages(&self) -> Vec<HalfMessage> {
        self.core().half_messages()
    }

    /// Every END_TRANSACTION received, in order.
    pub fn end_transactions(&self) -> Vec<EndTransactionRecord> {
        self.core().store.lock().end_transactions.clone()
    }

    /// Sends CHECK_TRANSACTION_STATE for the unresolved half message with this transaction id
    /// (its `UNIQ_KEY`) to a connection that heartbeats for its group. Returns how many checks
    /// went out (0 if no such message or no such connection).
    pub fn check_transaction(&self, transaction_id: &str) -> usize {
        self.core().check(&|m| m.msg_id() == Some(transaction_id))
    }

    /// Sends a check-back for every unresolved half message.
    pub fn check_all_transactions(&self) -> usize {
        self.core().check(&|_| true)
    }

    /// What it received and did.
    pub fn counters(&self) -> MockCounters {
        self.core().store.lock().counters.clone()
    }

    fn push_fault(&self, request_code: i32, fault: Fault, n: usize) {
        let mut faults = self.core().faults.lock();
        let queue = faults.next.entry(request_code).or_default();
        for _ in 0..n {
            queue.push_back(fault.clone());
        }
    }

    /// Answers the next `n` requests with `request_code` with `response_code` (remark
    /// `"injected failure"`), without handling them.
    pub fn fail_next(&self, request_code: i32, response_code: i32, n: usize) {
        self.fail_next_with(request_code, response_code, "injected failure", n);
    }

    /// Like [`MockBroker::fail_next`], with a remark.
    pub fn fail_next_with(&self, request_code: i32, response_code: i32, remark: &str, n: usize) {
        self.push_fault(
            request_code,
            Fault::Fail(response_code, remark.to_string()),
            n,
        );
    }

    /// Handles the next `n` requests with `request_code` normally (the message is stored), then
    /// answers with `status` instead of SUCCESS: FLUSH_DISK_TIMEOUT (10), SLAVE_NOT_AVAILABLE
    /// (11) or FLUSH_SLAVE_TIMEOUT (12), as a SYNC_FLUSH or SYNC_MASTER broker does.
    pub fn store_with_status_next(&self, request_code: i32, status: i32, n: usize) {
        self.push_fault(request_code, Fault::Status(status), n);
    }

    /// Delays the responses to the next `n` requests with `request_code`.
    pub fn delay_next(&self, request_code: i32, delay: Duration, n: usize) {
        self.push_fault(request_code, Fault::Delay(delay), n);
    }

    /// Delays every response to `request_code` until [`MockBroker::clear_faults`].
    pub fn set_delay(&self, request_code: i32, delay: Duration) {
        self.core()
            .faults
            .lock()
            .standing_delay
            .insert(request_code, delay);
    }

    /// Writes half of the next response to `request_code`, then resets the connection.
    pub fn reset_mid_frame_next(&self, request_code: i32) {
        self.push_fault(request_code, Fault::Reset, 1);
    }

    /// Answers the next request with `request_code` with a frame that cannot be decoded.
    pub fn malformed_next(&self, request_code: i32) {
        self.push_fault(request_code, Fault::Malformed, 1);
    }

    /// Closes the connection when the next request with `request_code` arrives.
    pub fn close_next(&self, request_code: i32) {
        self.push_fault(request_code, Fault::Close, 1);
    }

    /// While on, requests are read and never answered.
    pub fn black_hole(&self, on: bool) {
        self.core().faults.lock().black_hole = on;
    }

    /// Drops every scripted fault, delay and the black hole.
    pub fn clear_faults(&self) {
        let mut f = self.core().faults.lock();
        f.next.clear();
        f.standing_delay.clear();
        f.black_hole = false;
    }

    /// Closes every client connection (the broker keeps listening).
    pub fn close_connections(&self) {
        if let Some(s) = self.server() {
            s.close_connections();
        }
    }

    /// Client connections open now.
    pub fn connection_count(&self) -> usize {
        self.server().map_or(0, |s| s.connections().len())
    }

    /// Stops listening and closes every connection; the store is kept.
    pub fn stop(&self) {
        if let Some(s) = self.server() {
            s.stop();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&self) -> io::Result<()> {
        match self.server() {
            Some(s) => s.restart(),
            None => Err(io::Error::other("never started")),
        }
    }

    /// Whether it is listening.
    pub fn is_running(&self) -> bool {
        self.server().is_some_and(|s| s.is_running())
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A name server and several brokers (`broker-a`, `broker-b`, ...), each on its own port.
///
/// A stopped broker disappears from the routes (as with a real name server once the broker's
/// registration lapses); [`MockCluster::remove_broker_from_routes`] scripts route changes.
pub struct MockCluster {
    namesrv: Arc<Node>,
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
    pub fn start(n: usize) -> io::Result<MockCluster> {
        Self::start_with(n, false)
    }

    /// Like [`MockCluster::start`], each broker with a slave listed as broker id 1.
    pub fn start_with_slaves(n: usize) -> io::Result<MockCluster> {
        Self::start_with(n, true)
    }

    fn start_with(n: usize, slaves: bool) -> io::Result<MockCluster> {
        let mut brokers = Vec::with_capacity(n);
        let mut slave_nodes = Vec::new();
        for i in 0..n {
            let name = format!("broker-{}", (b'a' + (i % 26) as u8) as char);
            let b = MockBrokerBuilder::default()
                .broker_name(name.clone())
                .start_as(false)?;
            if slaves {
                let s = MockBrokerBuilder::default()
                    .broker_name(name)
                    .start_as(false)?;
                *b.core().slave_addr.lock() = Some(s.broker_addr());
                slave_nodes.push(s);
            }
            brokers.push(b);
        }
        let namesrv = Arc::new(Node {
            broker: None,
            namesrv: Some(NamesrvCore {
                brokers: parking_lot::Mutex::new(
                    brokers.iter().map(|b| (b.node.clone(), true)).collect(),
                ),
                serve_self: false,
            }),
            server: parking_lot::Mutex::new(None),
        });
        serve(&namesrv, 0)?;
        Ok(MockCluster {
            namesrv,
            brokers,
            slaves: slave_nodes,
        })
    }

    /// The name server address to give producers.
    pub fn namesrv_addr(&self) -> String {
        self.namesrv
            .server
            .lock()
            .as_ref()
            .map(|s| s.addr().to_string())
            .unwrap_or_default()
    }

    /// Broker `i` (0 is `broker-a`).
    ///
    /// # Panics
    /// If `i` is out of range (test code).
    pub fn broker(&self, i: usize) -> &MockBroker {
        &self.brokers[i]
    }

    /// All brokers.
    pub fn brokers(&self) -> &[MockBroker] {
        &self.brokers
    }

    /// The slaves, if started with them.
    pub fn slaves(&self) -> &[MockBroker] {
        &self.slaves
    }

    /// Creates a topic with `queues` queues on every broker.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        for b in &self.brokers {
            b.create_topic(topic, queues);
        }
    }

    fn set_in_routes(&self, i: usize, on: bool) {
        if let Some(ns) = &self.namesrv.namesrv {
            if let Some(entry) = ns.brokers.lock().get_mut(i) {
                entry.1 = on;
            }
        }
    }

    /// Takes broker `i` out of every route (it keeps running).
    pub fn remove_broker_from_routes(&self, i: usize) {
        self.set_in_routes(i, false);
    }

    /// Puts broker `i` back into the routes.
    pub fn restore_broker_in_routes(&self, i: usize) {
        self.set_in_routes(i, true);
    }

    /// Stops the name server (brokers keep running).
    pub fn stop_namesrv(&self) {
        if let Some(s) = self.namesrv.server.lock().clone() {
            s.stop();
        }
    }

    /// Starts the name server again on the same port.
    pub fn restart_namesrv(&self) -> io::Result<()> {
        match self.namesrv.server.lock().clone() {
            Some(s) => s.restart(),
            None => Ok(()),
        }
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        self.stop_namesrv();
    }
}
