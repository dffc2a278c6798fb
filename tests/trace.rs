//! Message trace on MockBroker: records of every send mode and of transaction ends reach the
//! trace topic in Java's format (decoded here field by field), a full queue drops and counts,
//! shutdown flushes, a trace topic that never answers does not slow or fail sends, and the
//! trace producer does not trace itself.

mod common;

use std::any::Any;
use std::collections::HashMap;
use std::io::Read as _;
use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::testing::{MockBroker, MockCluster, StoredMessage};
use rocketmq_mio::trace::{
    decode_trace_data, EndTransactionRecord, PubRecord, TraceMessageType, TraceRecord,
    DEFAULT_TRACE_TOPIC,
};
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, Producer, SendResult,
    TransactionListener, TransactionProducer,
};

use common::{wait_until, PROMPTLY};

/// Runs `f` on its own thread; panics if it is still running after `limit` (a hang fails in
/// bounded time instead of holding CI).
fn watchdog<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watched-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a watched thread");
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// The body of a stored trace message (inflated when the trace producer compressed it).
fn body_text(m: &StoredMessage) -> String {
    let bytes = if m.sys_flag & sys_flag::COMPRESSED != 0 {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&m.body[..])
            .read_to_end(&mut out)
            .expect("a zlib body");
        out
    } else {
        m.body.clone()
    };
    String::from_utf8(bytes).expect("trace data is UTF-8")
}

/// Every record in the stored trace messages, with the keys of the message holding it.
fn records(stored: &[StoredMessage]) -> Vec<(TraceRecord, Vec<String>)> {
    let mut out = Vec::new();
    for m in stored {
        let keys: Vec<String> = m.keys().map(str::to_string).collect();
        for r in decode_trace_data(&body_text(m)).expect("trace data decodes") {
            out.push((r, keys.clone()));
        }
    }
    out
}

/// `Pub` records by message id.
fn pubs(stored: &[StoredMessage]) -> HashMap<String, (PubRecord, Vec<String>)> {
    records(stored)
        .into_iter()
        .filter_map(|(r, keys)| match r {
            TraceRecord::Pub(p) => Some((p.msg_id.to_string(), (p, keys))),
            _ => None,
        })
        .collect()
}

fn end_records(stored: &[StoredMessage]) -> Vec<EndTransactionRecord> {
    records(stored)
        .into_iter()
        .filter_map(|(r, _)| match r {
            TraceRecord::EndTransaction(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Waits until the trace topic holds `Pub` records for every id in `ids`.
fn wait_for_pubs(broker: &MockBroker, ids: &[String]) -> HashMap<String, (PubRecord, Vec<String>)> {
    let ok = wait_until(PROMPTLY, || {
        let p = pubs(&broker.messages(DEFAULT_TRACE_TOPIC));
        ids.iter().all(|id| p.contains_key(id))
    });
    let p = pubs(&broker.messages(DEFAULT_TRACE_TOPIC));
    assert!(
        ok,
        "missing Pub records for {:?}",
        ids.iter()
            .filter(|id| !p.contains_key(*id))
            .collect::<Vec<_>>()
    );
    p
}

fn traced(broker: &MockBroker, group: &str) -> Producer {
    Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .trace(true)
        .start()
        .expect("producer starts")
}

/// Checks the fields a `Pub` record copies from the message and the broker.
fn assert_pub(p: &PubRecord, keys: &[String], msg: &Message, group: &str, broker: &MockBroker) {
    assert_eq!(p.group, group);
    assert_eq!(p.topic, msg.topic());
    assert_eq!(p.tags, msg.tags().unwrap_or("null"));
    let msg_keys: Vec<&str> = msg.keys().collect();
    if msg_keys.is_empty() {
        assert_eq!(p.keys, "null");
    } else {
        assert_eq!(p.keys, msg_keys.join(" "));
    }
    assert_eq!(p.store_host, broker.broker_addr());
    assert_eq!(p.body_length, msg.body().len() as i64);
    assert_eq!(p.region_id, "DefaultRegion");
    assert!(p.success);
    assert!(p.timestamp_ms > 1_600_000_000_000, "{}", p.timestamp_ms);
    assert!(p.cost_time_ms >= 0);
    // The trace message is found by the message id and by each business key.
    assert!(keys.contains(&p.msg_id), "{keys:?} lacks {}", p.msg_id);
    for k in msg_keys {
        assert!(keys.iter().any(|have| have == k), "{keys:?} lacks {k}");
    }
}

fn assert_result_pub(p: &PubRecord, r: &SendResult) {
    assert_eq!(r.msg_id, p.msg_id);
    assert_eq!(r.offset_msg_id, p.offset_msg_id);
    assert_eq!(p.msg_type, TraceMessageType::Normal);
}

#[test]
fn every_send_mode_is_traced_with_javas_fields() {
    let broker = MockBroker::start().unwrap();
    let group = "GID_TRACE_MODES";
    let producer = traced(&broker, group);
    let m = |i: u32| {
        Message::new("trace-orders", format!("body {i}"))
            .with_tags(format!("tag{i}"))
            .with_keys([format!("k{i}"), format!("other{i}")])
    };

    let sync_msg = m(1);
    let sync = producer.send(sync_msg.clone()).unwrap();
    let async_msg = m(2);
    let asynced = producer.send_async(async_msg.clone()).wait().unwrap();
    let (tx, rx) = mpsc::channel();
    let cb_msg = m(3);
    producer.send_with_callback(cb_msg.clone(), move |r| {
        let _ = tx.send(r);
    });
    let callback = rx.recv_timeout(PROMPTLY).unwrap().unwrap();
    // No tags, no keys: Java writes "null" for both.
    let plain = Message::new("trace-orders", "plain");
    let plain_r = producer.send(plain.clone()).unwrap();
    let batch_msgs = vec![m(10), m(11), m(12)];
    let batch = producer.send_batch(batch_msgs.clone()).unwrap();
    let oneway_msg = m(20);
    producer.send_oneway(oneway_msg.clone()).unwrap();
    // The oneway message's id is known only to the broker's store.
    assert!(wait_until(PROMPTLY, || broker
        .messages("trace-orders")
        .iter()
        .any(|s| s.tags() == Some("tag20"))));
    let oneway_id = broker
        .messages("trace-orders")
        .into_iter()
        .find(|s| s.tags() == Some("tag20"))
        .and_then(|s| s.msg_id().map(str::to_string))
        .unwrap();

    let batch_ids: Vec<String> = batch.msg_id.split(',').map(str::to_string).collect();
    let batch_offsets: Vec<&str> = batch.offset_msg_id.split(',').collect();
    assert_eq!(batch_ids.len(), 3);
    let mut ids = vec![
        sync.msg_id.to_string(),
        asynced.msg_id.to_string(),
        callback.msg_id.to_string(),
        plain_r.msg_id.to_string(),
        oneway_id.clone(),
    ];
    ids.extend(batch_ids.iter().cloned());
    let found = wait_for_pubs(&broker, &ids);

    for (msg, r) in [
        (&sync_msg, &sync),
        (&async_msg, &asynced),
        (&cb_msg, &callback),
        (&plain, &plain_r),
    ] {
        let (p, keys) = &found[r.msg_id.as_str()];
        assert_pub(p, keys, msg, group, &broker);
        assert_result_pub(p, r);
    }
    // A batch: one record per message, each with its own id, fields and offset id.
    for (i, msg) in batch_msgs.iter().enumerate() {
        let (p, keys) = &found[&batch_ids[i]];
        assert_pub(p, keys, msg, group, &broker);
        assert_eq!(p.offset_msg_id, batch_offsets[i]);
    }
    // Oneway: no answer, so no offset id.
    let (p, keys) = &found[&oneway_id];
    assert_pub(p, keys, &oneway_msg, group, &broker);
    assert_eq!(p.offset_msg_id, "");

    let stats = producer.stats();
    let t = stats.trace.expect("trace counters");
    assert_eq!(t.dropped, 0);
    assert!(t.queued >= ids.len() as u64, "{t:?}");
    assert_eq!(stats.to_json()["trace"]["dropped"], 0);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&stats.to_json()["trace"]),
        [
            "dropped",
            "failed",
            "messages_failed",
            "messages_sent",
            "pending",
            "queued",
            "sent"
        ]
    );
    assert_eq!(
        keys(&producer.health().to_json()["trace"]),
        [
            "in_flight_messages",
            "producer",
            "queue_capacity",
            "queue_len",
            "running",
            "topic"
        ]
    );
    let health = producer.health();
    let th = health.trace.as_ref().expect("trace health");
    assert_eq!(th.topic, DEFAULT_TRACE_TOPIC);
    assert!(th.running);
    assert!(
        th.producer
            .group
            .starts_with("_INNER_TRACE_PRODUCER-GID_TRACE_MODES-PRODUCE-"),
        "{}",
        th.producer.group
    );
    assert_eq!(
        health.to_json()["trace"]["producer"]["group"],
        th.producer.group.as_str()
    );
    producer.shutdown(PROMPTLY).unwrap();
    let t = producer.stats().trace.unwrap();
    assert_eq!(t.queued, t.sent + t.failed, "{t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
}

#[test]
fn trace_off_has_no_trace_counters_health_or_messages() {
    let broker = MockBroker::start().unwrap();
    let producer = Producer::builder("GID_TRACE_OFF")
        .name_server(broker.namesrv_addr())
        .start()
        .unwrap();
    producer.send(Message::new("trace-off", "x")).unwrap();
    assert_eq!(producer.stats().trace, None);
    assert!(producer.health().trace.is_none());
    assert!(producer.stats().to_json()["trace"].is_null());
    producer.shutdown(PROMPTLY).unwrap();
    assert_eq!(broker.message_count(DEFAULT_TRACE_TOPIC), 0);
}

struct Listener;

impl TransactionListener for Listener {
    fn execute_local_transaction(
        &self,
        msg: &Message,
        _transaction_id: &str,
        _arg: &dyn Any,
    ) -> ListenerResult {
        Ok(match msg.tags() {
            Some("commit") => LocalTransactionState::CommitMessage,
            Some("rollback") => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        })
    }

    fn check_local_transaction(&self, _msg: &MessageExt, _transaction_id: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

#[test]
fn transaction_half_and_end_records_from_execute_and_check_back() {
    let broker = MockBroker::start().unwrap();
    let group = "GID_TRACE_TX";
    let tp = TransactionProducer::builder(group)
        .name_server(broker.namesrv_addr())
        .trace(true)
        .listener(Listener)
        .start()
        .unwrap();
    let commit = tp
        .send_message_in_transaction(
            Message::new("trace-tx", "c")
                .with_tags("commit")
                .with_keys(["kc"]),
            &(),
        )
        .unwrap();
    let rollback = tp
        .send_message_in_transaction(Message::new("trace-tx", "r").with_tags("rollback"), &())
        .unwrap();
    let unknown = tp
        .send_message_in_transaction(Message::new("trace-tx", "u").with_tags("later"), &())
        .unwrap();
    let id = |r: &rocketmq_mio::TransactionSendResult| r.send_result.msg_id.to_string();
    let (commit_id, rollback_id, unknown_id) = (id(&commit), id(&rollback), id(&unknown));
    // The broker checks the unknown one back; the listener commits it then.
    assert!(wait_until(PROMPTLY, || broker
        .check_transaction(&unknown_id)
        > 0));

    // Half messages: Pub records of type 1 (Trans_Msg_Half).
    let found = wait_for_pubs(
        &broker,
        &[commit_id.clone(), rollback_id.clone(), unknown_id.clone()],
    );
    for id in [&commit_id, &rollback_id, &unknown_id] {
        let (p, _) = &found[id];
        assert_eq!(p.msg_type, TraceMessageType::TransactionHalf, "{p:?}");
        assert_eq!(p.topic, "trace-tx");
        assert_eq!(p.group, group);
    }
    // End records: commit and rollback from execute, unknown from execute, commit from the
    // check-back.
    assert!(
        wait_until(PROMPTLY, || end_records(
            &broker.messages(DEFAULT_TRACE_TOPIC)
        )
        .len()
            >= 4),
        "{:?}",
        end_records(&broker.messages(DEFAULT_TRACE_TOPIC))
    );
    let ends = end_records(&broker.messages(DEFAULT_TRACE_TOPIC));
    let find = |id: &str, check: bool| {
        ends.iter()
            .find(|e| e.msg_id == id && e.from_transaction_check == check)
            .unwrap_or_else(|| panic!("no EndTransaction for {id} (check {check}) in {ends:?}"))
            .clone()
    };
    let c = find(&commit_id, false);
    assert_eq!(c.transaction_state, "COMMIT_MESSAGE");
    assert_eq!(c.msg_type, TraceMessageType::TransactionCommit);
    assert_eq!((c.tags.as_str(), c.keys.as_str()), ("commit", "kc"));
    assert_eq!(c.topic, "trace-tx");
    assert_eq!(c.group, group);
    assert_eq!(c.store_host, broker.broker_addr());
    assert_eq!(c.transaction_id, commit_id);
    assert_eq!(c.region_id, "DefaultRegion");
    let r = find(&rollback_id, false);
    assert_eq!(r.transaction_state, "ROLLBACK_MESSAGE");
    assert_eq!(r.keys, "null");
    assert_eq!(find(&unknown_id, false).transaction_state, "UNKNOW");
    let checked = find(&unknown_id, true);
    assert_eq!(checked.transaction_state, "COMMIT_MESSAGE");
    assert_eq!(checked.tags, "later");
    tp.shutdown(PROMPTLY).unwrap();
}

#[test]
fn shutdown_flushes_queued_traces() {
    let broker = MockBroker::start().unwrap();
    let producer = traced(&broker, "GID_TRACE_FLUSH");
    let mut ids = Vec::new();
    for i in 0..50 {
        let r = producer
            .send(Message::new("trace-flush", format!("m{i}")))
            .unwrap();
        ids.push(r.msg_id.to_string());
    }
    // Right away: the records are queued or batching; shutdown sends them and waits.
    watchdog("shutdown", PROMPTLY * 2, move || {
        producer.shutdown(PROMPTLY).unwrap();
        let t = producer.stats().trace.unwrap();
        assert_eq!((t.sent, t.failed, t.pending), (t.queued, 0, 0), "{t:?}");
    });
    // Nothing to wait for: the trace messages were stored before shutdown returned.
    let found = pubs(&broker.messages(DEFAULT_TRACE_TOPIC));
    for id in &ids {
        assert!(found.contains_key(id), "no trace of {id} after shutdown");
    }
}

#[test]
fn black_holed_trace_topic_never_slows_or_fails_sends_and_a_full_queue_drops() {
    // The trace topic lives on broker 1 only, which never answers; sends go to broker 0.
    let cluster = MockCluster::builder()
        .brokers(2)
        .auto_create_topics(false)
        .topic_on("trace-user", 4, &[0])
        .topic_on(DEFAULT_TRACE_TOPIC, 1, &[1])
        .start()
        .unwrap();
    cluster.broker(1).black_hole(true);
    let producer = Producer::builder("GID_TRACE_HOLE")
        .name_server(cluster.namesrv_addr())
        .trace(true)
        .start()
        .unwrap();
    const BATCHES: usize = 4;
    const PER_BATCH: usize = 1000;
    // More records than the trace thread can hold: 64 trace messages in flight of at most 20
    // records, plus the queue of 2048.
    let p = producer.clone();
    let started = std::time::Instant::now();
    let (t, took) = watchdog("sends", PROMPTLY * 3, move || {
        for b in 0..BATCHES {
            let msgs: Vec<Message> = (0..PER_BATCH)
                .map(|i| Message::new("trace-user", format!("b{b}-{i}")))
                .collect();
            p.send_batch(msgs)
                .expect("a send never fails because of tracing");
        }
        p.send(Message::new("trace-user", "after the queue is full"))
            .expect("a send never fails because of tracing");
        (p.stats().trace.unwrap(), started.elapsed())
    });
    // Sends never wait for room in the trace queue: a full queue drops.
    assert!(t.dropped > 0, "a full queue drops: {t:?}");
    assert_eq!((t.sent, t.messages_sent), (0, 0), "{t:?}");
    // A trace message to the black hole ends only at its 5 s timeout; when the sends took
    // less than that (as they do unless the machine stalls), no send can have waited for one.
    if took < rocketmq_mio::trace::TRACE_SEND_TIMEOUT {
        assert_eq!((t.failed, t.messages_failed), (0, 0), "{t:?}");
    } else {
        println!("sends took {took:?}: the machine stalled; not checking that none ended");
    }
    assert_eq!(
        t.queued + t.dropped,
        (BATCHES * PER_BATCH + 1) as u64,
        "every record is queued or dropped: {t:?}"
    );
    assert_eq!(
        cluster.broker(0).message_count("trace-user"),
        BATCHES * PER_BATCH + 1
    );
    // Shutdown does not wait for the black hole past its deadline (bounded by the watchdog),
    // and what could not be sent counts as failed.
    let p = producer.clone();
    watchdog("shutdown", PROMPTLY * 2, move || {
        p.shutdown(Duration::from_millis(300)).unwrap();
    });
    let t = producer.stats().trace.unwrap();
    assert_eq!(t.sent, 0, "{t:?}");
    assert_eq!(t.queued, t.failed, "{t:?}");
    assert_eq!(t.pending, 0, "{t:?}");
    // Offered after shutdown: dropped, not queued.
    cluster.broker(1).black_hole(false);
}

#[test]
fn the_trace_producer_does_not_trace_itself() {
    let broker = MockBroker::start().unwrap();
    let producer = traced(&broker, "GID_TRACE_SELF");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            producer
                .send(Message::new("trace-self", format!("m{i}")))
                .unwrap()
                .msg_id
                .to_string(),
        );
    }
    // A user send to the trace topic is not traced either (Java: by topic prefix).
    producer
        .send(Message::new(DEFAULT_TRACE_TOPIC, "hand-made"))
        .unwrap();
    wait_for_pubs(&broker, &ids);
    producer.shutdown(PROMPTLY).unwrap();
    // After shutdown nothing more arrives; every record is about a user message of the user
    // topic, each exactly once: no record of a trace message, no feedback loop.
    let trace_messages: Vec<StoredMessage> = broker
        .messages(DEFAULT_TRACE_TOPIC)
        .into_iter()
        .filter(|m| m.body != b"hand-made")
        .collect();
    let all = records(&trace_messages);
    assert_eq!(all.len(), ids.len(), "{all:?}");
    for (r, _) in &all {
        match r {
            TraceRecord::Pub(p) => assert_eq!(p.topic, "trace-self"),
            other => panic!("unexpected record {other:?}"),
        }
    }
    let t = producer.stats().trace.unwrap();
    assert_eq!((t.queued, t.sent), (5, 5), "{t:?}");
}
