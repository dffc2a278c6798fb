//! Health: the producer's state, its name servers, its route cache and each broker, as one
//! snapshot.
//!
//! [`Producer::health`](crate::Producer::health) returns a [`HealthReport`]; its
//! [`to_json`](HealthReport::to_json) gives a `serde_json::Value` with the stable field names
//! below (new fields may be added; existing ones keep their name and meaning). The report is
//! built from what the producer already tracks (the fault table, the route cache, the
//! connections, the statistics); taking it sends nothing on the network.
//!
//! - **Name servers** are judged by the route lookups made at them: reachable if the last one
//!   got an answer (any response code, `TOPIC_NOT_EXIST` included), unreachable if it failed
//!   (connection error, timeout), unknown before the first lookup.
//! - **Routes** are the cached topic routes; `age` is the time since the route was last built,
//!   which happens when it is first fetched and whenever a refresh finds it changed (an
//!   unchanged refresh keeps the age growing; name server failures show above).
//! - **Brokers** are every broker in a cached route, in the fault table or in the statistics.
//!   Fault data (isolation, consecutive failures, last error, latency EWMA) comes from the
//!   fault table, which records every attempt whether or not fault tolerance is used for
//!   routing. Isolation is judged on the producer's routing clock. Percentiles and in-flight
//!   attempts come from the statistics (absent when they are off).
//!
//! # JSON schema (`"schema": "rocketmq-mio.health/1"`)
//!
//! ```text
//! {
//!   "schema": "rocketmq-mio.health/1",
//!   "state": "running" | "stopping" | "stopped",
//!   "client_id": string, "group": string,
//!   "timestamp_ms": int,                          // Unix time of the report
//!   "name_servers": [ {
//!     "addr": string,
//!     "reachable": bool | null,                   // null: no lookup yet
//!     "last_answer_ms_ago": int | null,
//!     "last_failure_ms_ago": int | null,
//!     "last_error": string | null,
//!     "consecutive_failures": int
//!   } ],
//!   "routes": [ {
//!     "topic": string,                            // as on the wire (with namespace)
//!     "age_ms": int, "queues": int, "brokers": [string],
//!     "from_default": bool,                       // built from the TBW102 fallback
//!     "queue_count_changes": int,                 // route updates that changed "queues"
//!     "previous_queues": int | null,              // "queues" before the last such change
//!     "strict_order_queues": int | null           // strict order's reference layout, if any
//!   } ],
//!   "brokers": [ {
//!     "name": string,
//!     "addr": string | null,                      // master address, if routed
//!     "available": bool,                          // may be chosen now
//!     "isolated": bool,
//!     "isolated_for_ms": int,                     // 0 when not isolated
//!     "reachable": bool,                          // the last attempt reached it
//!     "consecutive_failures": int, "total_failures": int, "attempts": int,
//!     "last_error": string | null,
//!     "latency_ewma_us": int | null, "last_latency_us": int | null,
//!     "latency_us": LATENCY | null,               // see the stats schema; null: stats off
//!     "in_flight": int | null,                    // attempts in flight; null: stats off
//!     "connection": { "state": "connected" | "connecting" | "closed" | "none",
//!                     "reason": string | null }   // "none": never connected
//!   } ],
//!   "in_flight": {
//!     "async": int, "async_bytes": int, "sync": int, "sync_bytes": int,
//!     "max_async": int | null, "max_async_bytes": int | null, "waiting": int
//!   },
//!   "fault_tolerance": bool,                      // whether isolated brokers are avoided
//!   "transactions": {                             // transaction producers only, else null
//!     "records": int, "capacity": int,            // the transaction record table
//!     "by_phase": { "sending": int, "executing": int, "in_doubt": int,
//!                   "committed": int, "rolled_back": int, "failed": int },
//!     "oldest_in_doubt_ms": int | null,
//!     "evicted_full": int, "evicted_age": int,    // records dropped for the bounds
//!     "untracked_checks": int                     // check-backs for transactions not held
//!   } | null,
//!   "trace": {                                    // message trace on only, else null
//!     "topic": string, "queue_len": int, "queue_capacity": int,
//!     "in_flight_messages": int, "running": bool,
//!     "producer": HEALTH                          // the internal trace producer's report
//!   } | null
//! }
//! ```
//!
//! ```
//! use rocketmq_mio::testing::MockBroker;
//! use rocketmq_mio::{Message, Producer};
//! use rocketmq_mio::health::ProducerState;
//!
//! let broker = MockBroker::start()?;
//! let producer = Producer::builder("GID_HEALTH_DOC").name_server(broker.namesrv_addr()).start()?;
//! producer.send(Message::new("orders", "hello"))?;
//! let health = producer.health();
//! assert_eq!(health.state, ProducerState::Running);
//! assert_eq!(health.name_servers[0].reachable, Some(true));
//! assert!(health.brokers.iter().any(|b| b.name == "broker-a" && !b.isolated));
//! assert_eq!(health.to_json()["state"], "running");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::remoting::ConnectionState;

use super::stats::{unix_ms, LatencyStats};
use super::{Inner, RUNNING, STOPPING};

/// The schema tag of [`HealthReport::to_json`].
pub const HEALTH_SCHEMA: &str = "rocketmq-mio.health/1";

/// Where a producer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProducerState {
    /// Taking sends.
    #[default]
    Running,
    /// Shutting down: no new sends; waiting for those in flight.
    Stopping,
    /// Shut down.
    Stopped,
}

impl ProducerState {
    /// `"running"`, `"stopping"` or `"stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProducerState::Running => "running",
            ProducerState::Stopping => "stopping",
            ProducerState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for ProducerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the route lookups at one name server came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameServerHealth {
    /// `host:port`.
    pub addr: String,
    /// Whether the last lookup got an answer; `None` before the first lookup.
    pub reachable: Option<bool>,
    /// How long ago it last answered.
    pub last_answer: Option<Duration>,
    /// How long ago a lookup at it last failed.
    pub last_failure: Option<Duration>,
    /// Why that lookup failed.
    pub last_error: Option<String>,
    /// Failed lookups since its last answer.
    pub consecutive_failures: u32,
}

/// One cached topic route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteHealth {
    /// The topic as on the wire (with the namespace, if any).
    pub topic: String,
    /// Time since the route was last built (first fetch, or a refresh that changed it).
    pub age: Duration,
    /// Queues sends can go to.
    pub queues: usize,
    /// Brokers those queues are on.
    pub brokers: Vec<String>,
    /// Whether it was built from the create-topic key's route (topic not created yet).
    pub from_default: bool,
    /// Route updates that changed the topic's queue count since the producer started (each
    /// one is also logged): a sign that per-key order may have broken (strict order off) or
    /// that keys fail (strict order on).
    pub queue_count_changes: u64,
    /// The queue count before the last such change.
    pub previous_queues: Option<usize>,
    /// With [`strict_order`](crate::ProducerConfig::strict_order): the queue count of the
    /// layout keys are mapped over (see [`Producer::accept_route`](crate::Producer::accept_route)).
    pub strict_order_queues: Option<usize>,
}

/// One broker's health.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerHealth {
    /// The broker name.
    pub name: String,
    /// The address sends go to (the master; the VIP port when configured), if routed.
    pub addr: Option<String>,
    /// Whether it may be chosen now (no isolation running).
    pub available: bool,
    /// Whether the fault table isolates it now.
    pub isolated: bool,
    /// When the isolation ends (on the producer's routing clock), if isolated.
    pub isolated_until: Option<Instant>,
    /// How much of the isolation is left (zero if not isolated).
    pub isolated_for: Duration,
    /// Whether the last attempt reached it.
    pub reachable: bool,
    /// Failed attempts since the last good one.
    pub consecutive_failures: u32,
    /// Failed attempts in total.
    pub total_failures: u64,
    /// Attempts the fault table saw.
    pub attempts: u64,
    /// The text of the last error.
    pub last_error: Option<String>,
    /// Latency EWMA of attempts that did not isolate it.
    pub latency_ewma: Option<Duration>,
    /// Latency of the last attempt.
    pub last_latency: Option<Duration>,
    /// Percentiles of successful attempts; `None` when statistics are off.
    pub latency: Option<LatencyStats>,
    /// Attempts in flight; `None` when statistics are off.
    pub in_flight: Option<i64>,
    /// The connection to `addr`; `None` if never connected.
    pub connection: Option<ConnectionState>,
}

/// Sends holding room in the producer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InFlightHealth {
    /// Asynchronous sends in flight.
    pub async_sends: usize,
    /// Their bytes (as prepared for the wire).
    pub async_bytes: usize,
    /// Synchronous sends in flight.
    pub sync_sends: usize,
    /// Their bytes.
    pub sync_bytes: usize,
    /// The bound on asynchronous sends, with backpressure on.
    pub max_async: Option<usize>,
    /// The bound on their bytes, with backpressure on.
    pub max_async_bytes: Option<usize>,
    /// Callers waiting for room.
    pub waiting: usize,
}

/// A health snapshot of a producer; see the module docs for the JSON schema.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HealthReport {
    /// Running, stopping or stopped.
    pub state: ProducerState,
    /// The producer's client id.
    pub client_id: String,
    /// The producer group.
    pub group: String,
    /// When the report was taken, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Every configured name server.
    pub name_servers: Vec<NameServerHealth>,
    /// Cached routes, sorted by topic.
    pub routes: Vec<RouteHealth>,
    /// Brokers, sorted by name.
    pub brokers: Vec<BrokerHealth>,
    /// Sends in flight.
    pub in_flight: InFlightHealth,
    /// Whether isolated brokers are avoided when choosing queues.
    pub fault_tolerance: bool,
    /// A transaction producer's record table (see
    /// [`TransactionProducer::in_doubt`](crate::TransactionProducer::in_doubt)); `None` for
    /// other producers.
    pub transactions: Option<crate::transaction::TransactionTableHealth>,
    /// Message trace's queue and internal producer; `None` when
    /// [`trace`](crate::ProducerConfig::trace) is off.
    pub trace: Option<crate::trace::TraceHealth>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl NameServerHealth {
    /// One entry of `name_servers` in the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "addr": self.addr,
            "reachable": self.reachable,
            "last_answer_ms_ago": self.last_answer.map(ms),
            "last_failure_ms_ago": self.last_failure.map(ms),
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
        })
    }
}

impl RouteHealth {
    /// One entry of `routes` in the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "topic": self.topic,
            "age_ms": ms(self.age),
            "queues": self.queues,
            "brokers": self.brokers,
            "from_default": self.from_default,
            "queue_count_changes": self.queue_count_changes,
            "previous_queues": self.previous_queues,
            "strict_order_queues": self.strict_order_queues,
        })
    }
}

fn connection_json(c: Option<&ConnectionState>) -> Value {
    let (state, reason) = match c {
        None => ("none", None),
        Some(ConnectionState::Connected) => ("connected", None),
        Some(ConnectionState::Connecting) => ("connecting", None),
        Some(ConnectionState::Closed { reason }) => ("closed", Some(reason.as_str())),
    };
    json!({ "state": state, "reason": reason })
}

impl BrokerHealth {
    /// One entry of `brokers` in the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "addr": self.addr,
            "available": self.available,
            "isolated": self.isolated,
            "isolated_for_ms": ms(self.isolated_for),
            "reachable": self.reachable,
            "consecutive_failures": self.consecutive_failures,
            "total_failures": self.total_failures,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "latency_ewma_us": self.latency_ewma.map(us),
            "last_latency_us": self.last_latency.map(us),
            "latency_us": self.latency.as_ref().map(LatencyStats::to_json),
            "in_flight": self.in_flight,
            "connection": connection_json(self.connection.as_ref()),
        })
    }
}

impl InFlightHealth {
    /// The `in_flight` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "async": self.async_sends,
            "async_bytes": self.async_bytes,
            "sync": self.sync_sends,
            "sync_bytes": self.sync_bytes,
            "max_async": self.max_async,
            "max_async_bytes": self.max_async_bytes,
            "waiting": self.waiting,
        })
    }
}

impl HealthReport {
    /// The report as JSON, with the stable field names of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "schema": HEALTH_SCHEMA,
            "state": self.state.as_str(),
            "client_id": self.client_id,
            "group": self.group,
            "timestamp_ms": self.timestamp_ms,
            "name_servers": self.name_servers.iter().map(NameServerHealth::to_json).collect::<Vec<_>>(),
            "routes": self.routes.iter().map(RouteHealth::to_json).collect::<Vec<_>>(),
            "brokers": self.brokers.iter().map(BrokerHealth::to_json).collect::<Vec<_>>(),
            "in_flight": self.in_flight.to_json(),
            "fault_tolerance": self.fault_tolerance,
            "transactions": self.transactions.as_ref().map(|t| t.to_json()),
            "trace": self.trace.as_ref().map(crate::trace::TraceHealth::to_json),
        })
    }

    /// The broker called `name`, if the report has it.
    pub fn broker(&self, name: &str) -> Option<&BrokerHealth> {
        self.brokers.iter().find(|b| b.name == name)
    }
}

impl Inner {
    /// The health report (see [`crate::Producer::health`]).
    pub(crate) fn health_report(&self) -> HealthReport {
        let now = Instant::now();
        let routing_now = self.routing_now();
        let state = match self.state.load(Ordering::Acquire) {
            RUNNING => ProducerState::Running,
            STOPPING => ProducerState::Stopping,
            _ => ProducerState::Stopped,
        };
        let name_servers = self
            .namesrv
            .outcomes()
            .into_iter()
            .map(|(addr, o)| {
                let answer = o.last_answer;
                let failure = o.last_failure.as_ref().map(|(at, _)| *at);
                let reachable = match (answer, failure) {
                    (None, None) => None,
                    (Some(_), None) => Some(true),
                    (None, Some(_)) => Some(false),
                    (Some(a), Some(f)) => Some(a >= f),
                };
                NameServerHealth {
                    addr,
                    reachable,
                    last_answer: answer.map(|a| now.saturating_duration_since(a)),
                    last_failure: failure.map(|f| now.saturating_duration_since(f)),
                    last_error: o.last_failure.map(|(_, e)| e),
                    consecutive_failures: o.consecutive_failures,
                }
            })
            .collect();

        let mut topics = self.mapping.topics();
        topics.sort();
        let routes = topics
            .into_iter()
            .filter_map(|topic| {
                let info = self.mapping.peek(&topic)?;
                let order = self.order.view(&topic);
                Some(RouteHealth {
                    queue_count_changes: order.changes,
                    previous_queues: order.previous_count,
                    strict_order_queues: order.reference_count,
                    age: now.saturating_duration_since(info.fetched_at()),
                    queues: info.queues().len(),
                    brokers: info.broker_names().map(str::to_string).collect(),
                    from_default: info.is_from_default(),
                    topic,
                })
            })
            .collect();

        let faults = self.router.health(routing_now);
        let mut names: BTreeSet<String> = self
            .mapping
            .broker_addrs_for_heartbeat()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.extend(faults.iter().map(|f| f.broker_name.clone()));
        if self.stats.enabled() {
            names.extend(self.stats.broker_names());
        }
        let brokers = names
            .into_iter()
            .map(|name| {
                let fault = faults.iter().find(|f| f.broker_name == name);
                let addr = self.broker_addr(&name);
                let connection = addr
                    .as_deref()
                    .and_then(|a| self.remoting.connection_state(a));
                let recorder = self.stats.broker_recorder(&name);
                let (in_flight, latency) = match &recorder {
                    Some(r) => {
                        let (n, l) = r.in_flight_and_latency();
                        (Some(n), Some(l))
                    }
                    None if self.stats.enabled() => (Some(0), Some(LatencyStats::default())),
                    None => (None, None),
                };
                let isolated_until = fault.and_then(|f| f.isolated_until);
                BrokerHealth {
                    available: fault.map_or(true, |f| f.available),
                    isolated: isolated_until.is_some(),
                    isolated_until,
                    isolated_for: fault.map_or(Duration::ZERO, |f| f.isolation_remaining),
                    reachable: fault.map_or(true, |f| f.reachable),
                    consecutive_failures: fault.map_or(0, |f| f.consecutive_failures),
                    total_failures: fault.map_or(0, |f| f.total_failures),
                    attempts: fault.map_or(0, |f| f.attempts),
                    last_error: fault.and_then(|f| f.last_error.clone()),
                    latency_ewma: fault.and_then(|f| f.latency_ewma),
                    last_latency: fault.and_then(|f| f.last_latency),
                    latency,
                    in_flight,
                    connection,
                    addr: addr.map(|a| a.to_string()),
                    name,
                }
            })
            .collect();

        let (async_sends, async_bytes, waiting, _) = self.in_flight.stats();
        let (sync_sends, sync_bytes, _, _) = self.sync_in_flight.stats();
        let limits = self.in_flight.limits();
        HealthReport {
            state,
            client_id: self.client_id.clone(),
            group: self.config.group().to_string(),
            timestamp_ms: unix_ms(),
            name_servers,
            routes,
            brokers,
            in_flight: InFlightHealth {
                async_sends,
                async_bytes,
                sync_sends,
                sync_bytes,
                max_async: limits.map(|l| l.0),
                max_async_bytes: limits.map(|l| l.1),
                waiting,
            },
            fault_tolerance: self.router.fault_tolerance_enabled(),
            transactions: self.tx_records.lock().as_ref().map(|t| t.health()),
            trace: self.trace.as_ref().map(|t| t.health()),
        }
    }
}
