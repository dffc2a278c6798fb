//! The JSON form of the snapshots, with the stable field names of the schema in the module docs
//! (`"schema": "rocketmq-mio.stats/1"`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::histogram::micros;
use super::{
    BackpressureStats, BrokerStats, LatencyStats, ProducerStats, RateWindows, Rates, SendStats,
    TransactionStats,
};
use crate::error::ErrorKind;

/// The schema tag of [`ProducerStats::to_json`].
pub const STATS_SCHEMA: &str = "rocketmq-mio.stats/1";

fn kinds_json(map: &BTreeMap<ErrorKind, u64>) -> Value {
    let mut m = Map::new();
    for k in ErrorKind::ALL {
        m.insert(
            k.as_str().to_string(),
            json!(map.get(&k).copied().unwrap_or(0)),
        );
    }
    Value::Object(m)
}

impl LatencyStats {
    /// `{"count", "mean", "p50", "p90", "p99", "p999", "max"}`, times in microseconds.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "mean": micros(self.mean),
            "p50": micros(self.p50),
            "p90": micros(self.p90),
            "p99": micros(self.p99),
            "p999": micros(self.p999),
            "max": micros(self.max),
        })
    }
}

impl RateWindows {
    /// `{"1s", "10s", "60s"}`.
    pub fn to_json(&self) -> Value {
        json!({ "1s": self.last_1s, "10s": self.last_10s, "60s": self.last_60s })
    }
}

impl Rates {
    /// `{"succeeded": {...}, "failed": {...}}`.
    pub fn to_json(&self) -> Value {
        json!({ "succeeded": self.succeeded.to_json(), "failed": self.failed.to_json() })
    }
}

impl SendStats {
    /// The `SEND` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_by_kind": kinds_json(&self.failed_by_kind),
            "retried": self.retried,
            "oneway": self.oneway,
            "messages": self.messages,
            "bytes": self.bytes,
            "status_not_ok": self.status_not_ok,
            "in_flight": self.in_flight,
            "in_flight_bytes": self.in_flight_bytes,
            "latency_us": self.latency.to_json(),
            "rates": self.rates.to_json(),
        })
    }
}

impl BrokerStats {
    /// The `BROKER` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_by_kind": kinds_json(&self.failed_by_kind),
            "retried": self.retried,
            "bytes": self.bytes,
            "status_not_ok": self.status_not_ok,
            "in_flight": self.in_flight,
            "latency_us": self.latency.to_json(),
            "rates": self.rates.to_json(),
        })
    }
}

impl BackpressureStats {
    /// The `backpressure` object of the module docs' schema.
    pub fn to_json(&self) -> Value {
        json!({
            "enabled": self.enabled,
            "waits": self.waits,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "in_flight_bytes": self.in_flight_bytes,
            "max_in_flight": self.max_in_flight,
            "max_in_flight_bytes": self.max_in_flight_bytes,
        })
    }
}

impl ProducerStats {
    /// The snapshot as JSON, with the stable field names of the module docs' schema.
    pub fn to_json(&self) -> Value {
        let topics: Map<String, Value> = self
            .topics
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        let brokers: Map<String, Value> = self
            .brokers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        json!({
            "schema": STATS_SCHEMA,
            "enabled": self.enabled,
            "client_id": self.client_id,
            "group": self.group,
            "uptime_ms": u64::try_from(self.uptime.as_millis()).unwrap_or(u64::MAX),
            "timestamp_ms": self.timestamp_ms,
            "totals": self.totals.to_json(),
            "topics": topics,
            "brokers": brokers,
            "backpressure": self.backpressure.to_json(),
            "transactions": self.transactions.as_ref().map(TransactionStats::to_json),
            "requests": self.requests.to_json(),
            "hooks": { "registered": self.hooks.registered, "panics": self.hooks.panics },
        })
    }
}
