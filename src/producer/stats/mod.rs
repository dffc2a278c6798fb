//! Statistics: what the producer sent, per producer, per topic and per broker, without any
//! metrics framework.
//!
//! [`Producer::stats`](crate::Producer::stats) returns a [`ProducerStats`] snapshot; its
//! [`to_json`](ProducerStats::to_json) gives a `serde_json::Value` with the field names listed
//! below, which are stable (new fields may be added; existing ones keep their name and meaning).
//! Statistics are on by default; [`ProducerConfigBuilder::stats(false)`] turns them off, and the
//! hooks on the send path then cost one branch each.
//!
//! [`ProducerConfigBuilder::stats(false)`]: crate::ProducerConfigBuilder::stats
//!
//! # What is counted
//!
//! A **send** is one call of a send method: `send`, `send_to_queue`, `send_with_selector`,
//! `send_batch`, `send_oneway` and their asynchronous forms (a batch is one send of several
//! messages). Every send ends exactly once, as **succeeded** (the broker stored it; for oneway
//! sends: the request was queued for the socket) or **failed** with an
//! [`ErrorKind`](crate::ErrorKind). So, for the producer and for each topic, at any moment:
//!
//! ```text
//! succeeded + failed + in_flight == sent        failed == sum of failed_by_kind
//! ```
//!
//! and a snapshot never shows `succeeded + failed > sent`, even while other threads send
//! (completions are read before `sent`, with acquire/release ordering).
//!
//! An **attempt** is one request to one broker; a send makes one attempt, plus one per retry.
//! Broker statistics count attempts: `attempts = succeeded + failed + in_flight` per broker.
//!
//! - `retried`: attempts after a send's first one (per topic: of that topic's sends; per broker:
//!   retries that went to that broker).
//! - `bytes`: per producer and topic, the message bodies as the caller gave them (before
//!   compression; the sum of bodies for a batch), counted when the send starts. Per broker, the
//!   bytes each attempt put on the wire (body after compression or batch encoding, properties
//!   and topic).
//! - `in_flight_bytes`: `bytes` of the sends that have not ended yet.
//! - `status_not_ok`: succeeded sends whose status was not `SEND_OK` (flush or replication
//!   timeouts, slave not available).
//! - `oneway`: oneway sends (also counted in `sent` and `succeeded`/`failed`).
//! - Backpressure waits (a send that found the producer full and waited for room) and the
//!   producer's in-flight totals as backpressure sees them are per producer only.
//!
//! A send rejected before its topic is known to be valid (a malformed topic name), or a send
//! to a topic beyond the first [`MAX_TRACKED_TOPICS`], is counted in the producer totals but
//! in no topic. Producer totals are the sums over topics (plus those), computed when the
//! snapshot is taken: the send path updates each counter once.
//!
//! # Latency
//!
//! Latencies are recorded for **successful** sends (from the send call to the result; oneway
//! sends have no result and are left out) and, per broker, for successful attempts (request
//! written to response read). Failures are counted by kind instead, so a burst of timeouts
//! does not hide in the percentiles, and immediate failures (refused connections) do not
//! flatter them.
//!
//! Each histogram is a [`LatencyHistogram`]: log-bucketed atomic counters in microseconds. A
//! percentile is exact in rank (nearest rank over the recorded samples) and reported as the
//! **upper bound** of the bucket the sample fell in, capped by the exact maximum: it is never
//! below the true value and at most `2^-5` (3.125 %) above it (exact below 32 µs). See
//! [`LatencyHistogram`] for the layout.
//!
//! # Rates
//!
//! Per-second buckets (a ring of 64 atomic cells per counter, each holding its second and its
//! count in one word) give rates of succeeded and failed sends (per broker: attempts) over the
//! last 1 s, 10 s and 60 s. The W-second rate is the count of the current, partial second and
//! of the W whole seconds before it, divided by the time those span (W seconds plus the part of
//! the current one; less while the producer is younger than that).
//!
//! # JSON schema (`"schema": "rocketmq-mio.stats/1"`)
//!
//! Times are integers in microseconds (`_us`) or milliseconds (`_ms`); rates are floats
//! (per second); counts are unsigned integers except `in_flight` and `in_flight_bytes`, which
//! are signed (they are never negative; a negative value would be a bug, shown rather than
//! wrapped).
//!
//! ```text
//! {
//!   "schema": "rocketmq-mio.stats/1",
//!   "enabled": bool,                 // false: statistics are off; every counter is zero
//!   "client_id": string, "group": string,
//!   "uptime_ms": int,                // since the producer started
//!   "timestamp_ms": int,             // Unix time of the snapshot
//!   "totals": SEND,                  // the whole producer
//!   "topics": { "<topic>": SEND, ... },
//!   "brokers": { "<broker name>": BROKER, ... },
//!   "backpressure": {
//!     "enabled": bool, "waits": int, "waiting": int,
//!     "in_flight": int, "in_flight_bytes": int,            // asynchronous sends holding room
//!     "max_in_flight": int|null, "max_in_flight_bytes": int|null
//!   },
//!   "transactions": null | {         // transaction producers only
//!     "committed": int, "rolled_back": int, "unknown": int, "checked": int,
//!     "check_overflow": int, "check_ignored": int, "end_failed": int
//!   },
//!   "trace": null | {                // message trace on only (crate::trace); kept with
//!                                    // statistics off
//!     "queued": int, "sent": int, "failed": int, "dropped": int, "pending": int,
//!     "messages_sent": int, "messages_failed": int
//!   },
//!   "requests": {                    // request-reply; kept even with statistics off
//!     "requests": int, "replies_matched": int, "replies_late": int, "replies_unknown": int,
//!     "timed_out": int, "failed": int, "pending": int
//!   },
//!   "hooks": { "registered": int, "panics": int }   // send hooks (counted even when off)
//! }
//! SEND = {
//!   "sent": int, "succeeded": int, "failed": int,
//!   "failed_by_kind": { "connection": int, "timeout": int, "broker": int, "protocol": int,
//!                       "no_route": int, "invalid_message": int, "config": int,
//!                       "backpressure": int, "shutdown": int, "user": int,
//!                       "order_violation": int },
//!   "retried": int, "oneway": int, "messages": int, "bytes": int, "status_not_ok": int,
//!   "in_flight": int, "in_flight_bytes": int,
//!   "latency_us": LATENCY, "rates": RATES
//! }
//! BROKER = {
//!   "attempts": int, "succeeded": int, "failed": int, "failed_by_kind": { ... as above },
//!   "retried": int, "bytes": int, "status_not_ok": int, "in_flight": int,
//!   "latency_us": LATENCY, "rates": RATES
//! }
//! LATENCY = { "count": int, "mean": int, "p50": int, "p90": int, "p99": int, "p999": int,
//!             "max": int }                                  // all 0 when count is 0
//! RATES = { "succeeded": { "1s": float, "10s": float, "60s": float },
//!           "failed":    { "1s": float, "10s": float, "60s": float } }
//! ```
//!
//! `failed_by_kind` always lists every kind of [`ErrorKind::ALL`](crate::ErrorKind::ALL),
//! under [`ErrorKind::as_str`](crate::ErrorKind::as_str).
//!
//! ```
//! use rocketmq_mio::testing::MockBroker;
//! use rocketmq_mio::{Message, Producer};
//!
//! let broker = MockBroker::start()?;
//! let producer = Producer::builder("GID_STATS_DOC").name_server(broker.namesrv_addr()).start()?;
//! producer.send(Message::new("orders", "hello"))?;
//! let stats = producer.stats();
//! assert_eq!(stats.totals.sent, 1);
//! assert_eq!(stats.topics["orders"].succeeded, 1);
//! assert_eq!(stats.to_json()["totals"]["bytes"], 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// One file per piece:
// - histogram: `LatencyHistogram` and the `LatencyStats` it reports.
// - rates: the per-second rings behind `Rates`.
// - recorder: the live atomic counters the send path bumps, and the `Op`/`Attempt` guards.
// - snapshot: reading those counters into `ProducerStats` and the other snapshot types.
// - json: the stable JSON form of the snapshots.

mod histogram;
mod rates;
mod recorder;
mod snapshot;
// After `snapshot`: rustdoc lists `SendStats::failed_of` before `to_json`, as it always has.
mod json;

use crate::error::ErrorKind;

pub use super::request::RequestStats;
pub use super::transaction::TransactionStats;
pub use histogram::{LatencyHistogram, LatencyStats, SUB_BUCKET_BITS};
pub use json::STATS_SCHEMA;
pub use rates::{RateWindows, Rates};
pub(crate) use recorder::{Attempt, BrokerMemo, Ended, Op, StatsRecorder, TopicMemo};
pub(crate) use snapshot::unix_ms;
pub use snapshot::{BackpressureStats, BrokerStats, HookStats, ProducerStats, SendStats};

/// At most this many topics get their own statistics; sends to further topics count in the
/// producer totals only.
pub const MAX_TRACKED_TOPICS: usize = 1024;

const KINDS: usize = ErrorKind::ALL.len();
