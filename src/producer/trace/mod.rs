//! Message trace: what each send and each transaction end did, written to a trace topic in the
//! Java client's format, so RocketMQ's dashboard and admin tools (`queryMsgTraceById`) show
//! the traces of this crate's producers as they show Java's.
//!
//! Turn it on with [`ProducerConfigBuilder::trace`](crate::ProducerConfigBuilder::trace) (or
//! `ROCKETMQ_TRACE=true`); [`trace_topic`](crate::ProducerConfigBuilder::trace_topic) (or
//! `ROCKETMQ_TRACE_TOPIC`) changes the topic from [`DEFAULT_TRACE_TOPIC`].
//!
//! # What is recorded
//!
//! - A `Pub` record ([`PubRecord`]) for every attempt that gets a result from the broker
//!   (sync, async, callback, to a queue, with a selector, and a transaction's half message):
//!   topic, message id, tags, keys, the broker address, body length, the attempt's latency,
//!   the message type, the broker's offset id, whether the status was `SEND_OK`, and the region
//!   the broker answered with. As in Java, an attempt that fails (timeout, connection error,
//!   broker error) gets no record, nor does a send the broker answered with `TRACE_ON=false`.
//! - A batch gets one `Pub` record per message (its own id, tags, keys, body length and
//!   offset id), so each message's trace is found by its id. (Java writes one record for the
//!   whole batch, with the ids comma-joined, which its tools cannot find by a message's id.)
//! - A oneway send gets a `Pub` record when its request is written: the broker sends no
//!   answer, so the offset id is empty, the region is [`DEFAULT_REGION`] and `success` is
//!   true. (Java records no oneway send.)
//! - An `EndTransaction` record ([`EndTransactionRecord`]) for every END_TRANSACTION sent:
//!   commit, rollback or unknown, after the local transaction ran and after a broker's
//!   check-back (`fromTransactionCheck`).
//! - Sends to the trace topic itself (any topic whose name starts with it) are not traced, and
//!   the internal trace producer traces nothing.
//!
//! # How records travel
//!
//! The send path only builds the record and offers it to a bounded queue of
//! [`QUEUE_CAPACITY`] records (Java's 2048): when the queue is full the record is dropped and
//! counted; a send is never slowed, blocked or failed by tracing. One `rocketmq-trace`
//! thread takes the records and sends them as trace messages, each holding up to
//! [`BATCH_RECORDS`] records of one topic, at most [`MAX_TRACE_BODY`] bytes of body (Java's
//! trace `maxMsgSize`, 128 000), with the message ids and business keys of its records as its
//! keys; a record waits at most [`BATCH_DELAY`] for others to join it. The trace messages are
//! sent asynchronously by an internal producer of its own (its own connections and threads,
//! group `_INNER_TRACE_PRODUCER-<group>-PRODUCE-<n>` as in Java, same name servers,
//! namespace, credentials and TLS settings), with at most [`MAX_IN_FLIGHT_MESSAGES`] in
//! flight: a trace topic that does not answer fills the queue, and records are dropped, while
//! sends go on at full speed.
//!
//! # Counters, health, shutdown
//!
//! [`Producer::stats`](crate::Producer::stats) has the [`TraceStats`] (`queued`, `sent`,
//! `failed`, `dropped`, ...); [`Producer::health`](crate::Producer::health) has the
//! [`TraceHealth`], with the trace producer's own [`HealthReport`]. Shutdown sends what is
//! queued and waits for the trace messages until the producer's shutdown deadline, never
//! longer; records still unsent then count as failed.

mod codec;
mod hook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};

pub use codec::{
    decode_trace_data, EndTransactionRecord, PubRecord, TraceDecodeError, TraceMessageType,
    TraceRecord, TraceType, CONTENT_SEPARATOR, DEFAULT_REGION, DEFAULT_TRACE_TOPIC,
    FIELD_SEPARATOR, NULL_TEXT,
};

use super::health::HealthReport;
use super::Producer;
use crate::config::{ProducerConfig, MAX_GROUP_LEN};
use crate::error::{Error, Result};
use crate::message::Message;

/// Records waiting for the trace thread; more are dropped (Java's `traceContextQueue`).
pub const QUEUE_CAPACITY: usize = 2048;
/// The most records in one trace message (Java caps its `traceMsgBatchNum` at 20).
pub const BATCH_RECORDS: usize = 20;
/// The most body bytes in one trace message (Java's trace `maxMsgSize`).
pub const MAX_TRACE_BODY: usize = 128_000;
/// The most bytes of keys (ids and business keys, space-separated) on one trace message, so
/// its properties stay far below the protocol's 32 KiB.
pub const MAX_TRACE_KEYS: usize = 16 * 1024;
/// The longest a record waits for others before its trace message leaves.
pub const BATCH_DELAY: Duration = Duration::from_millis(100);
/// The send timeout of trace messages (Java's trace producer: 5 s).
pub const TRACE_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The most trace messages in flight; at the bound the trace thread waits and the queue
/// fills.
pub const MAX_IN_FLIGHT_MESSAGES: usize = 64;
/// The prefix of the trace producer's group (Java's `TraceConstants.GROUP_NAME_PREFIX`).
pub const GROUP_PREFIX: &str = "_INNER_TRACE_PRODUCER";

/// Trace counters of a producer with trace on; see the [module docs](self).
///
/// Every record is either `dropped` (never queued) or `queued`; a queued one ends as `sent`
/// (its trace message was stored) or `failed` (its trace message failed, or it was still
/// unsent at the shutdown deadline), or is `pending`: `queued == sent + failed + pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceStats {
    /// Records accepted by the queue.
    pub queued: u64,
    /// Records whose trace message the broker stored.
    pub sent: u64,
    /// Records whose trace message failed, or that shutdown could not send by its deadline.
    pub failed: u64,
    /// Records not queued: the queue was full, or the producer was shutting down.
    pub dropped: u64,
    /// Records queued and not ended yet (in the queue, batching, or in flight).
    pub pending: u64,
    /// Trace messages stored.
    pub messages_sent: u64,
    /// Trace messages that failed.
    pub messages_failed: u64,
}

impl TraceStats {
    /// `{"queued", "sent", "failed", "dropped", "pending", "messages_sent", "messages_failed"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "queued": self.queued,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "pending": self.pending,
            "messages_sent": self.messages_sent,
            "messages_failed": self.messages_failed,
        })
    }
}

/// The trace machinery's health: its queue and the internal trace producer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TraceHealth {
    /// The trace topic.
    pub topic: String,
    /// Records in the queue now.
    pub queue_len: usize,
    /// [`QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Trace messages sent and not answered yet.
    pub in_flight_messages: usize,
    /// Whether the trace thread still runs (false once shutdown has stopped it).
    pub running: bool,
    /// The internal trace producer's own report (its group, brokers, connections, ...).
    pub producer: Box<HealthReport>,
}

impl TraceHealth {
    /// `{"topic", "queue_len", "queue_capacity", "in_flight_messages", "running",
    /// "producer": HEALTH}` (`HEALTH`: the health schema).
    pub fn to_json(&self) -> Value {
        json!({
            "topic": self.topic,
            "queue_len": self.queue_len,
            "queue_capacity": self.queue_capacity,
            "in_flight_messages": self.in_flight_messages,
            "running": self.running,
            "producer": self.producer.to_json(),
        })
    }
}

/// Counters and the in-flight bound, shared by the tracer, its thread and send callbacks.
#[derive(Default)]
struct Shared {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    messages_sent: AtomicU64,
    messages_failed: AtomicU64,
    /// Trace messages in flight, and the shutdown deadline once shutdown began.
    flight: Mutex<Flight>,
    room: Condvar,
}

#[derive(Default)]
struct Flight {
    in_flight: usize,
    stop_by: Option<Instant>,
}

impl Shared {
    fn ended(&self, records: u64, ok: bool) {
        if ok {
            self.messages_sent.fetch_add(1, Ordering::Relaxed);
            self.sent.fetch_add(records, Ordering::Release);
        } else {
            self.messages_failed.fetch_add(1, Ordering::Relaxed);
            self.failed.fetch_add(records, Ordering::Release);
        }
        let mut f = self.flight.lock();
        f.in_flight = f.in_flight.saturating_sub(1);
        drop(f);
        self.room.notify_all();
    }
}

/// A producer's trace: the queue records enter, the `rocketmq-trace` thread, the internal
/// producer.
pub(crate) struct Tracer {
    topic: String,
    /// The user's group, without namespace (what records carry).
    group: String,
    /// Encoded records (one allocation each, made by the send hook).
    tx: Sender<String>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    producer: Producer,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The trace producer's group: Java's `_INNER_TRACE_PRODUCER-<group>-PRODUCE-<n>`, the user's
/// group shortened if the whole would be over the group length limit.
fn trace_group(group: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let suffix = format!("-PRODUCE-{n}");
    let room = MAX_GROUP_LEN.saturating_sub(GROUP_PREFIX.len() + 1 + suffix.len());
    // Groups are ASCII (validated), so byte and char counts agree.
    let cut: String = group.chars().take(room).collect();
    format!("{GROUP_PREFIX}-{cut}{suffix}")
}

/// The internal producer's settings: the user's connection settings (name servers,
/// namespace, credentials, TLS, client address, timeouts), its own group, no trace, no send
/// hooks, no batching, no configured topics, one I/O and one callback thread, no backpressure (the
/// trace thread bounds what is in flight itself), Java's 5 s send timeout.
fn trace_producer_config(config: &ProducerConfig, group: &str) -> Result<ProducerConfig> {
    config
        .to_builder()
        .group(group)
        .instance_name(crate::config::DEFAULT_INSTANCE_NAME)
        .trace(false)
        .clear_send_hooks()
        .topics(Vec::<String>::new())
        .auto_batch(false)
        .strict_order(false)
        .routing_strategy(crate::routing::router::RoutingStrategy::RoundRobin)
        .io_threads(1)
        .callback_threads(1)
        .backpressure(false)
        .send_timeout(TRACE_SEND_TIMEOUT)
        .per_attempt_timeout(None)
        .vip_channel(false)
        .transaction_records(0)
        .build()
}

impl Tracer {
    /// Starts the internal producer and the trace thread for a producer with `config`.
    pub(crate) fn start(config: &ProducerConfig) -> Result<Arc<Tracer>> {
        let trace_config = trace_producer_config(config, &trace_group(config.group()))?;
        let producer = Producer::start(trace_config)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let dispatcher = Dispatcher {
            rx,
            shared: shared.clone(),
            producer: producer.clone(),
            topic: config.trace_topic().to_string(),
        };
        let thread = std::thread::Builder::new()
            .name("rocketmq-trace".into())
            .spawn(move || dispatcher.run())
            .map_err(|e| {
                let _ = producer.shutdown(Duration::ZERO);
                Error::config("trace thread", e.to_string())
            })?;
        Ok(Arc::new(Tracer {
            topic: config.trace_topic().to_string(),
            group: config.group().to_string(),
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
            producer,
        }))
    }

    /// The send hook that records into this tracer.
    pub(crate) fn hook(self: &Arc<Self>) -> Arc<dyn crate::hooks::SendHook> {
        Arc::new(hook::TraceHook(self.clone()))
    }

    /// The producer group records carry (without namespace).
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Whether a send to `topic` is left untraced (the trace topic, as Java: by prefix).
    pub(crate) fn skips(&self, topic: &str) -> bool {
        topic.starts_with(&self.topic)
    }

    /// Offers an encoded `Pub` or `EndTransaction` record to the queue; never blocks. A full
    /// queue or a stopped tracer drops it (counted).
    pub(crate) fn append(&self, record: String) {
        // Counted before it is visible to the trace thread, so `pending` never goes negative.
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters.
    pub(crate) fn stats(&self) -> TraceStats {
        let s = &self.shared;
        let sent = s.sent.load(Ordering::Acquire);
        let failed = s.failed.load(Ordering::Acquire);
        let queued = s.queued.load(Ordering::Acquire);
        TraceStats {
            queued,
            sent,
            failed,
            dropped: s.dropped.load(Ordering::Relaxed),
            pending: queued.saturating_sub(sent + failed),
            messages_sent: s.messages_sent.load(Ordering::Relaxed),
            messages_failed: s.messages_failed.load(Ordering::Relaxed),
        }
    }

    /// The queue and the internal producer's health.
    pub(crate) fn health(&self) -> TraceHealth {
        TraceHealth {
            topic: self.topic.clone(),
            queue_len: self.tx.len(),
            queue_capacity: QUEUE_CAPACITY,
            in_flight_messages: self.shared.flight.lock().in_flight,
            running: self.thread.lock().is_some(),
            producer: Box::new(self.producer.health()),
        }
    }

    /// Sends what is queued and stops, by `deadline`: the trace thread takes every queued
    /// record, sends the trace messages (waiting for room until the deadline), and ends; the
    /// internal producer then waits for them until the deadline and shuts down. Records that
    /// could not be sent count as failed; records offered from now on are dropped.
    pub(crate) fn shutdown(&self, deadline: Instant) {
        let thread = self.thread.lock().take();
        {
            let mut f = self.shared.flight.lock();
            f.stop_by = Some(deadline);
        }
        self.shared.room.notify_all();
        if let Some(thread) = thread {
            // Ends by itself: it sees `stop_by` within one wait slice and never waits for
            // room past the deadline.
            if thread.join().is_err() {
                log::error!("the trace thread panicked");
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.producer.shutdown(left) {
            log::warn!("trace producer shutdown: {e}");
        }
    }
}

/// How long the trace thread waits for a record, or for room, before looking at the
/// shutdown flag again.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// The `rocketmq-trace` thread's state.
struct Dispatcher {
    rx: Receiver<String>,
    shared: Arc<Shared>,
    producer: Producer,
    topic: String,
}

impl Dispatcher {
    fn stop_by(&self) -> Option<Instant> {
        self.shared.flight.lock().stop_by
    }

    fn run(self) {
        let mut pending: Vec<String> = Vec::with_capacity(BATCH_RECORDS);
        let mut oldest: Option<Instant> = None;
        loop {
            if let Some(deadline) = self.stop_by() {
                // Shutdown: everything queued leaves now.
                while let Ok(r) = self.rx.try_recv() {
                    pending.push(r);
                }
                self.flush(&mut pending, Some(deadline));
                return;
            }
            let wait = match oldest {
                Some(t) => (t + BATCH_DELAY)
                    .saturating_duration_since(Instant::now())
                    .min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            match self.rx.recv_timeout(wait) {
                Ok(r) => {
                    if pending.is_empty() {
                        oldest = Some(Instant::now());
                    }
                    pending.push(r);
                    // Take what else is there without waiting, up to a full batch.
                    while pending.len() < BATCH_RECORDS {
                        match self.rx.try_recv() {
                            Ok(r) => pending.push(r),
                            Err(_) => break,
                        }
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                // The tracer is gone without a shutdown (it always shuts down first).
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.flush(&mut pending, Some(Instant::now()));
                    return;
                }
            }
            let due = oldest.is_some_and(|t| t.elapsed() >= BATCH_DELAY);
            if pending.len() >= BATCH_RECORDS || (due && !pending.is_empty()) {
                self.flush(&mut pending, None);
                oldest = None;
            }
        }
    }

    /// Sends `pending` as trace messages: grouped by the traced topic (as Java), each message
    /// within the record, body and key bounds. `deadline` is set at shutdown.
    fn flush(&self, pending: &mut Vec<String>, deadline: Option<Instant>) {
        if pending.is_empty() {
            return;
        }
        // (topic, records) in order of first appearance.
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for r in pending.iter() {
            let topic = codec::encoded_topic(r);
            match groups.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, v)) => v.push(r),
                None => groups.push((topic, vec![r])),
            }
        }
        for (_, records) in groups {
            let mut batch = Batch::default();
            for encoded in records {
                let keys_len: usize = codec::encoded_trace_keys(encoded)
                    .map(|k| k.len() + 1)
                    .sum();
                if batch.count > 0
                    && (batch.count >= BATCH_RECORDS
                        || batch.body.len() + encoded.len() > MAX_TRACE_BODY
                        || batch.keys_len + keys_len > MAX_TRACE_KEYS)
                {
                    self.send(std::mem::take(&mut batch), deadline);
                }
                batch.body.push_str(encoded);
                for k in codec::encoded_trace_keys(encoded) {
                    if !batch.keys.iter().any(|have| have == k) {
                        batch.keys_len += k.len() + 1;
                        batch.keys.push(k.to_string());
                    }
                }
                batch.count += 1;
            }
            if batch.count > 0 {
                self.send(batch, deadline);
            }
        }
        pending.clear();
    }

    /// Waits for room (until `deadline` at shutdown), then sends one trace message.
    fn send(&self, batch: Batch, deadline: Option<Instant>) {
        let records = batch.count as u64;
        {
            let mut f = self.shared.flight.lock();
            while f.in_flight >= MAX_IN_FLIGHT_MESSAGES {
                match deadline.or(f.stop_by) {
                    Some(d) if Instant::now() >= d => {
                        drop(f);
                        // Shutdown's deadline: it cannot leave in time.
                        self.shared.failed.fetch_add(records, Ordering::Release);
                        self.shared.messages_failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some(d) => {
                        let until = d.min(Instant::now() + WAIT_SLICE);
                        self.shared.room.wait_until(&mut f, until);
                    }
                    None => {
                        self.shared.room.wait_for(&mut f, WAIT_SLICE);
                    }
                }
            }
            f.in_flight += 1;
        }
        let msg = Message::new(self.topic.clone(), batch.body.into_bytes()).with_keys(&batch.keys);
        let shared = self.shared.clone();
        self.producer.send_with_callback(msg, move |result| {
            if let Err(e) = &result {
                log::debug!("trace message of {records} records failed: {e}");
            }
            shared.ended(records, result.is_ok());
        });
    }
}

/// One trace message being filled.
#[derive(Default)]
struct Batch {
    body: String,
    keys: Vec<String>,
    keys_len: usize,
    count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockBroker;

    fn record(topic: &str, i: usize, keys: &str) -> TraceRecord {
        TraceRecord::Pub(PubRecord {
            timestamp_ms: 1,
            region_id: DEFAULT_REGION.into(),
            group: "G".into(),
            topic: topic.into(),
            msg_id: format!("ID{i}"),
            tags: NULL_TEXT.into(),
            keys: keys.into(),
            store_host: "h:1".into(),
            body_length: 1,
            cost_time_ms: 0,
            msg_type: TraceMessageType::Normal,
            offset_msg_id: String::new(),
            success: true,
            client_host: None,
        })
    }

    impl Tracer {
        fn append_record(&self, r: TraceRecord) {
            self.append(r.encode());
        }
    }

    fn tracer(broker: &MockBroker) -> Arc<Tracer> {
        let config = ProducerConfig::builder("GID_TRACER")
            .name_server(broker.namesrv_addr())
            .trace(true)
            .build()
            .unwrap();
        Tracer::start(&config).unwrap()
    }

    fn stored(broker: &MockBroker) -> Vec<(Vec<TraceRecord>, Vec<String>)> {
        broker
            .messages(DEFAULT_TRACE_TOPIC)
            .iter()
            .map(|m| {
                let mut bytes = m.body.clone();
                if m.sys_flag & crate::protocol::message_codec::sys_flag::COMPRESSED != 0 {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::ZlibDecoder::new(&m.body[..]),
                        &mut out,
                    )
                    .unwrap();
                    bytes = out;
                }
                let body = String::from_utf8(bytes).unwrap();
                (
                    decode_trace_data(&body).unwrap(),
                    m.keys().map(str::to_string).collect(),
                )
            })
            .collect()
    }

    /// Records leave in messages of at most 20, one topic each, keyed by ids and keys; the
    /// shutdown sends what is left before returning.
    #[test]
    fn batches_by_count_and_topic_and_flushes_at_shutdown() {
        let broker = MockBroker::start().unwrap();
        let t = tracer(&broker);
        for i in 0..45 {
            t.append_record(record("a", i, &format!("ka{i} kb{i}")));
        }
        t.append_record(record("b", 100, NULL_TEXT));
        t.shutdown(Instant::now() + Duration::from_secs(20));
        let msgs = stored(&broker);
        let total: usize = msgs.iter().map(|(r, _)| r.len()).sum();
        assert_eq!(total, 46);
        for (records, keys) in &msgs {
            assert!(records.len() <= BATCH_RECORDS);
            let topics: Vec<&str> = records
                .iter()
                .map(|r| match r {
                    TraceRecord::Pub(p) => p.topic.as_str(),
                    _ => "?",
                })
                .collect();
            assert!(topics.iter().all(|t| *t == topics[0]), "{topics:?}");
            for r in records {
                for k in r.trace_keys() {
                    assert!(keys.iter().any(|have| have == k), "{keys:?} lacks {k}");
                }
            }
        }
        let s = t.stats();
        assert_eq!((s.queued, s.sent, s.failed, s.dropped), (46, 46, 0, 0));
        // Offered after shutdown: dropped.
        t.append_record(record("a", 999, NULL_TEXT));
        assert_eq!(t.stats().dropped, 1);
    }

    /// Long keys close a message early so its KEYS property stays bounded.
    #[test]
    fn long_keys_split_messages() {
        let broker = MockBroker::start().unwrap();
        let t = tracer(&broker);
        let long = "k".repeat(3000);
        for i in 0..12 {
            t.append_record(record("a", i, &format!("{long}{i}")));
        }
        t.shutdown(Instant::now() + Duration::from_secs(20));
        let msgs = stored(&broker);
        assert!(msgs.len() >= 3, "{} messages", msgs.len());
        for (_, keys) in &msgs {
            let len: usize = keys.iter().map(|k| k.len() + 1).sum();
            assert!(len <= MAX_TRACE_KEYS, "{len}");
        }
        assert_eq!(msgs.iter().map(|(r, _)| r.len()).sum::<usize>(), 12);
    }

    #[test]
    fn trace_group_is_javas_and_fits() {
        let g = trace_group("GID_ORDERS");
        assert!(
            g.starts_with("_INNER_TRACE_PRODUCER-GID_ORDERS-PRODUCE-"),
            "{g}"
        );
        let long = "G".repeat(MAX_GROUP_LEN);
        let g = trace_group(&long);
        assert!(g.len() <= MAX_GROUP_LEN, "{}", g.len());
        assert!(g.starts_with("_INNER_TRACE_PRODUCER-GGG"), "{g}");
    }
}
