//! Several mock brokers (and optional slaves) behind one mock name server:
//! [`MockCluster`], its builder, and [`MockNameServer`], for failover tests.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::node::{Fault, NamesrvCore, Node};
use super::{node_addr, node_api, push_fault, serve, MockBroker, MockBrokerBuilder, StoredMessage};
use crate::protocol::RequestCode;

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

    /// The name server and every broker serve TLS only, with this identity (see
    /// [`MockBrokerBuilder::tls`]).
    ///
    /// # Errors
    /// The certificate and key do not fit together.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::MockTls) -> io::Result<Self> {
        self.broker = self.broker.tls(tls)?;
        Ok(self)
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
        serve(
            &namesrv,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            0,
            &self.broker.tls,
        )?;
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
