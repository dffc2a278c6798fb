//! Message trace on a real RocketMQ broker: with trace on, after sync, async, callback, oneway,
//! batch and transaction sends, the trace topic (`RMQ_SYS_TRACE_TOPIC`, created by the
//! brokers' `traceTopicEnable`) is read back the way RocketMQ's `queryMsgTraceById` reads it:
//! QUERY_MESSAGE by key (the message id) on every master, then each trace message's body
//! decoded. Every sent message id must have a `Pub` record with its topic, tags, keys, body
//! length, store host and success flag; every committed or rolled back transaction an
//! `EndTransaction` record.
//!
//! Runs only when `ROCKETMQ_INTEROP_NAMESRV` is set (see tests/common/interop.rs).

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::interop::{inflate, namesrv, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::trace::{
    decode_trace_data, EndTransactionRecord, PubRecord, TraceMessageType, TraceRecord,
    DEFAULT_TRACE_TOPIC,
};
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, ProducerConfig,
    TransactionListener, TransactionProducer,
};

/// Every trace record stored under key `key` (a message id), from every master.
fn traces_by_key(reader: &Reader, key: &str) -> Vec<TraceRecord> {
    let mut out = Vec::new();
    for addr in reader.master_addrs() {
        match reader.query(&addr, DEFAULT_TRACE_TOPIC, key, false) {
            Ok(found) => {
                for m in found {
                    let body = if m.sys_flag & sys_flag::COMPRESSED != 0 {
                        inflate(&m.body)
                    } else {
                        m.body.clone()
                    };
                    let text = String::from_utf8(body).expect("trace data is UTF-8");
                    out.extend(decode_trace_data(&text).expect("trace data decodes"));
                }
            }
            Err(e) => println!("query of {key} on {addr}: {e}"),
        }
    }
    out
}

/// Polls until the trace topic has a record about `id` that `want` picks, or panics after a
/// generous deadline (the broker indexes messages shortly after storing them).
fn wait_trace<T>(
    reader: &Reader,
    id: &str,
    what: &str,
    want: impl Fn(&TraceRecord) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = traces_by_key(reader, id);
        if let Some(t) = records.iter().find_map(&want) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} record for {id}; found {records:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pub_of(reader: &Reader, id: &str) -> PubRecord {
    wait_trace(reader, id, "Pub", |r| match r {
        TraceRecord::Pub(p) if p.msg_id == id => Some(p.clone()),
        _ => None,
    })
}

fn end_of(reader: &Reader, id: &str) -> EndTransactionRecord {
    wait_trace(reader, id, "EndTransaction", |r| match r {
        TraceRecord::EndTransaction(e) if e.msg_id == id => Some(e.clone()),
        _ => None,
    })
}

/// Checks a `Pub` record against the message sent and the host that stored it.
fn assert_pub(p: &PubRecord, msg: &Message, group: &str, store_host: &str) {
    assert_eq!(p.group, group, "{p:?}");
    assert_eq!(p.topic, msg.topic(), "{p:?}");
    assert_eq!(p.tags, msg.tags().unwrap_or("null"), "{p:?}");
    let keys: Vec<&str> = msg.keys().collect();
    let want_keys = if keys.is_empty() {
        "null".to_string()
    } else {
        keys.join(" ")
    };
    assert_eq!(p.keys, want_keys, "{p:?}");
    assert_eq!(p.body_length, msg.body().len() as i64, "{p:?}");
    assert_eq!(p.store_host, store_host, "{p:?}");
    assert!(p.success, "{p:?}");
    assert_eq!(p.region_id, "DefaultRegion", "{p:?}");
}

struct Listener;

impl TransactionListener for Listener {
    fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(match msg.body() {
            b"commit" => LocalTransactionState::CommitMessage,
            _ => LocalTransactionState::RollbackMessage,
        })
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::RollbackMessage)
    }
}

#[test]
fn every_send_mode_and_transaction_end_is_traced_on_the_real_broker() {
    let Some(ns) = namesrv("every_send_mode_and_transaction_end_is_traced_on_the_real_broker")
    else {
        return;
    };
    let topic = unique_topic("interop-trace");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let group = "GID_interop_trace";
    let producer = ProducerConfig::testing(group)
        .name_server(&ns)
        .trace(true)
        .start()
        .expect("producer starts");
    let m = |name: &str| {
        Message::new(&topic, format!("body of {name}"))
            .with_tags(name)
            .with_keys([format!("{topic}-{name}"), format!("{name}-2")])
    };

    // (message, id, store host) of every send.
    let mut sent: Vec<(Message, String, String)> = Vec::new();
    let host = |r: &rocketmq_mio::SendResult| {
        r.offset_id()
            .expect("offset id decodes")
            .store_host
            .to_string()
    };

    let msg = m("sync");
    let r = producer.send(msg.clone()).unwrap();
    sent.push((msg, r.msg_id.to_string(), host(&r)));

    let msg = m("async");
    let r = producer.send_async(msg.clone()).wait().unwrap();
    sent.push((msg, r.msg_id.to_string(), host(&r)));

    let msg = m("callback");
    let (tx, rx) = mpsc::channel();
    producer.send_with_callback(msg.clone(), move |r| {
        let _ = tx.send(r);
    });
    let r = rx.recv_timeout(PROMPTLY).unwrap().unwrap();
    sent.push((msg, r.msg_id.to_string(), host(&r)));

    // No tags, no keys: Java writes "null" for both.
    let msg = Message::new(&topic, "plain");
    let r = producer.send(msg.clone()).unwrap();
    sent.push((msg, r.msg_id.to_string(), host(&r)));

    let batch: Vec<Message> = ["batch-0", "batch-1", "batch-2"]
        .iter()
        .map(|n| m(n))
        .collect();
    let r = producer.send_batch(batch.clone()).unwrap();
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    let offsets: Vec<&str> = r.offset_msg_id.split(',').collect();
    assert_eq!((ids.len(), offsets.len()), (3, 3), "{r:?}");
    for (i, msg) in batch.iter().enumerate() {
        let h = rocketmq_mio::OffsetMessageId::parse(offsets[i])
            .expect("offset id")
            .store_host
            .to_string();
        sent.push((msg.clone(), ids[i].to_string(), h));
    }

    // Oneway: its id and store host come from the stored message.
    let msg = m("oneway");
    producer.send_oneway(msg.clone()).unwrap();
    let stored = reader
        .find(&topic, &format!("{topic}-oneway"), false, PROMPTLY)
        .expect("the oneway message is stored");
    let oneway_id = stored.msg_id().expect("UNIQ_KEY").to_string();
    sent.push((msg, oneway_id.clone(), stored.store_host.to_string()));

    // Transactions: one committed, one rolled back.
    let tx_group = "GID_interop_trace_tx";
    let tp = TransactionProducer::builder(tx_group)
        .name_server(&ns)
        .send_timeout(Duration::from_secs(10))
        .trace(true)
        .listener(Listener)
        .start()
        .expect("transaction producer starts");
    let commit_msg = m("commit").with_tags("tx");
    let commit_msg = {
        let mut c = commit_msg;
        c.set_body("commit");
        c
    };
    let commit = tp
        .send_message_in_transaction(commit_msg.clone(), &())
        .unwrap();
    assert_eq!(commit.local_state, LocalTransactionState::CommitMessage);
    let rollback_msg = Message::new(&topic, "rollback").with_tags("tx");
    let rollback = tp
        .send_message_in_transaction(rollback_msg.clone(), &())
        .unwrap();
    assert_eq!(rollback.local_state, LocalTransactionState::RollbackMessage);

    // Shutdown sends what is queued and waits for it.
    producer.shutdown(PROMPTLY).unwrap();
    tp.shutdown(PROMPTLY).unwrap();
    let t = producer.stats().trace.expect("trace counters");
    assert_eq!((t.dropped, t.failed), (0, 0), "{t:?}");
    assert_eq!(t.sent, t.queued, "{t:?}");

    for (msg, id, store_host) in &sent {
        let p = pub_of(&reader, id);
        assert_pub(&p, msg, group, store_host);
        assert_eq!(p.msg_type, TraceMessageType::Normal, "{p:?}");
        if id == &oneway_id {
            assert_eq!(p.offset_msg_id, "", "oneway: no answer, no offset id");
        } else {
            assert!(!p.offset_msg_id.is_empty(), "{p:?}");
        }
    }

    for (msg, r, state) in [
        (&commit_msg, &commit, "COMMIT_MESSAGE"),
        (&rollback_msg, &rollback, "ROLLBACK_MESSAGE"),
    ] {
        let id = &r.transaction_id;
        let half = pub_of(&reader, id);
        assert_pub(&half, msg, tx_group, &host(&r.send_result));
        assert_eq!(half.msg_type, TraceMessageType::TransactionHalf, "{half:?}");
        let e = end_of(&reader, id);
        assert_eq!(e.transaction_state, state, "{e:?}");
        assert_eq!(e.group, tx_group);
        assert_eq!(e.topic, topic);
        assert_eq!(e.tags, "tx");
        assert_eq!(e.transaction_id, *id);
        assert_eq!(e.msg_type, TraceMessageType::TransactionCommit);
        assert!(!e.from_transaction_check);
        assert_eq!(e.store_host, host(&r.send_result), "{e:?}");
    }
    println!(
        "checked {} Pub records of sends, 2 of half messages, 2 EndTransaction records",
        sent.len()
    );
}
