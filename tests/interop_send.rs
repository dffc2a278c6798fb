//! Every send mode against a real RocketMQ name server and broker (RocketMQ-Rust 1.0.0, see
//! `scripts/real-broker.sh`): send, then read the message back from the broker with
//! VIEW_MESSAGE_BY_ID (or QUERY_MESSAGE when the send returns no id) and check topic, body, tags,
//! keys, user properties and flags.
//!
//! Runs only when `ROCKETMQ_INTEROP_NAMESRV` is set; otherwise each test prints why it is
//! skipped and passes.

mod common;

use std::time::Duration;

use common::interop::{self, assert_stored, namesrv, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::{Message, SendResult, SendStatus};

/// Checks the parts of a send result that do not depend on the mode.
fn assert_result(r: &SendResult, topic: &str) {
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.queue.topic(), topic);
    assert_eq!(r.msg_id.len(), 32, "UNIQ_KEY {}", r.msg_id);
    // 5.x brokers answer the UNIQ_KEY as the transaction id.
    assert_eq!(r.transaction_id.as_deref(), Some(r.msg_id.as_str()));
    assert_eq!(r.region_id.as_deref(), Some("DefaultRegion"));
}

fn sample(topic: &str, i: usize) -> Message {
    Message::new(topic, format!("body {i} of {topic}"))
        .with_tags("TagA")
        .with_keys([format!("k{i}"), format!("order-{i}")])
        .with_property("color", "blue")
        .with_property("seq", i.to_string())
        .with_flag(7 + i as i32)
}

#[test]
fn sync_send_reads_back() {
    let Some(ns) = namesrv("sync_send_reads_back") else {
        return;
    };
    let topic = unique_topic("interop-sync");
    let producer = interop::producer("GID_interop_sync", &ns);
    let reader = Reader::new(&ns);
    for i in 0..3 {
        let msg = sample(&topic, i);
        let r = producer.send(msg.clone()).expect("send");
        assert_result(&r, &topic);
        let stored = reader.view_result(&r);
        assert_stored(&stored, &msg, &r.msg_id);
        assert_eq!(stored.queue_id, r.queue.queue_id());
        assert_eq!(stored.queue_offset, r.queue_offset);
        assert_eq!(stored.sys_flag & sys_flag::COMPRESSED, 0);
    }
    producer.shutdown(PROMPTLY).unwrap();
}

/// A oneway send returns no id and no queue. The message carries a business key no other
/// message has; the broker indexes KEYS, so QUERY_MESSAGE by that key (polled until the index
/// has caught up, on every master) returns exactly the stored message, whatever queue or broker
/// it went to and whatever else is written meanwhile. Its fields are then checked as for the
/// other modes, and its UNIQ_KEY is the producer's.
#[test]
fn oneway_found_by_key() {
    let Some(ns) = namesrv("oneway_found_by_key") else {
        return;
    };
    let topic = unique_topic("interop-oneway");
    let producer = interop::producer("GID_interop_oneway", &ns);
    let reader = Reader::new(&ns);
    let token = unique_topic("oneway-key");
    let msg = Message::new(&topic, "oneway body")
        .with_tags("TagO")
        .with_keys([token.as_str()])
        .with_property("mode", "oneway");
    producer.send_oneway(msg.clone()).expect("oneway queued");
    let stored = reader
        .find(&topic, &token, false, Duration::from_secs(20))
        .expect("the oneway message is stored and indexed by its key");
    let uniq = stored.msg_id().expect("UNIQ_KEY").to_string();
    assert_stored(&stored, &msg, &uniq);
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn async_handles_read_back() {
    let Some(ns) = namesrv("async_handles_read_back") else {
        return;
    };
    let topic = unique_topic("interop-async");
    let producer = interop::producer("GID_interop_async", &ns);
    let reader = Reader::new(&ns);
    let msgs: Vec<Message> = (0..6).map(|i| sample(&topic, i)).collect();
    let handles: Vec<_> = msgs
        .iter()
        .map(|m| producer.send_async(m.clone()))
        .collect();
    for (msg, h) in msgs.iter().zip(handles) {
        let r = h.wait().expect("async send");
        assert_result(&r, &topic);
        let stored = reader.view_result(&r);
        assert_stored(&stored, msg, &r.msg_id);
        assert_eq!(
            (stored.queue_id, stored.queue_offset),
            (r.queue.queue_id(), r.queue_offset)
        );
    }
    // A handle is also a future.
    let msg = sample(&topic, 99);
    let r = futures_lite::future::block_on(producer.send_async(msg.clone())).expect("awaited");
    assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn callbacks_read_back() {
    let Some(ns) = namesrv("callbacks_read_back") else {
        return;
    };
    let topic = unique_topic("interop-callback");
    let producer = interop::producer("GID_interop_callback", &ns);
    let reader = Reader::new(&ns);
    let (tx, rx) = crossbeam_channel::unbounded();
    let n = 5;
    for i in 0..n {
        let tx = tx.clone();
        let msg = sample(&topic, i);
        producer.send_with_callback(msg.clone(), move |r| {
            let _ = tx.send((msg, r, std::thread::current().name().map(str::to_string)));
        });
    }
    for _ in 0..n {
        let (msg, r, thread) = rx.recv_timeout(PROMPTLY).expect("every callback runs");
        let r = r.expect("callback send");
        assert!(
            thread
                .as_deref()
                .is_some_and(|t| t.starts_with("rocketmq-callback")),
            "callback ran on {thread:?}"
        );
        assert_result(&r, &topic);
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "one callback per send"
    );
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn batch_reads_back_every_message() {
    let Some(ns) = namesrv("batch_reads_back_every_message") else {
        return;
    };
    let topic = unique_topic("interop-batch");
    let producer = interop::producer("GID_interop_batch", &ns);
    let reader = Reader::new(&ns);
    let mut msgs: Vec<Message> = (0..4)
        .map(|i| sample(&topic, i).with_tags(format!("Tag{i}")))
        .collect();
    // Over the compression threshold, but batches are never compressed.
    msgs.push(Message::new(&topic, vec![b'z'; 5000]).with_tags("Big"));
    let r = producer.send_batch(msgs.clone()).expect("batch");
    assert_eq!(r.status, SendStatus::SendOk);
    let uniq: Vec<&str> = r.msg_id.split(',').collect();
    let offsets: Vec<&str> = r.offset_msg_id.split(',').collect();
    assert_eq!(
        uniq.len(),
        msgs.len(),
        "one UNIQ_KEY per message: {}",
        r.msg_id
    );
    assert_eq!(
        offsets.len(),
        msgs.len(),
        "one offset id per message: {}",
        r.offset_msg_id
    );
    for (i, msg) in msgs.iter().enumerate() {
        let id = rocketmq_mio::OffsetMessageId::parse(offsets[i]).expect("offset id");
        let stored = reader.view(&id).expect("view");
        assert_stored(&stored, msg, uniq[i]);
        assert_eq!(stored.queue_id, r.queue.queue_id());
        assert_eq!(
            stored.queue_offset,
            r.queue_offset + i as i64,
            "consecutive offsets"
        );
        assert_eq!(
            stored.sys_flag & sys_flag::COMPRESSED,
            0,
            "batches are never compressed"
        );
    }
    // The async form too.
    let more: Vec<Message> = (10..12).map(|i| sample(&topic, i)).collect();
    let r = producer
        .send_batch_async(more.clone())
        .wait()
        .expect("async batch");
    for (i, id) in r.offset_msg_id.split(',').enumerate() {
        let stored = reader
            .view(&rocketmq_mio::OffsetMessageId::parse(id).unwrap())
            .unwrap();
        assert_stored(&stored, &more[i], r.msg_id.split(',').nth(i).unwrap());
    }
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn to_a_queue_lands_there() {
    let Some(ns) = namesrv("to_a_queue_lands_there") else {
        return;
    };
    let topic = unique_topic("interop-queue");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let producer = interop::producer("GID_interop_queue", &ns);
    let queues = producer.publish_queues(&topic).expect("queues");
    assert_eq!(queues.len(), 4 * reader.master_addrs().len(), "{queues:?}");
    // The last queue: the last broker's last queue (queues are sorted by broker name).
    for queue in [queues[queues.len() - 1].clone(), queues[1].clone()] {
        let addr = reader.master_addr(queue.broker_name());
        let mut last = None;
        for i in 0..3 {
            let msg = sample(&topic, i);
            let r = producer
                .send_to_queue(msg.clone(), &queue)
                .expect("send to queue");
            assert_result(&r, &topic);
            assert_eq!(r.queue, queue);
            let stored = reader.view_result(&r);
            assert_eq!(
                stored.store_host.to_string(),
                addr,
                "stored on {queue:?}'s broker"
            );
            assert_eq!(stored.queue_id, queue.queue_id());
            assert_stored(&stored, &msg, &r.msg_id);
            if let Some(prev) = last {
                assert_eq!(r.queue_offset, prev + 1, "consecutive offsets in one queue");
            }
            last = Some(r.queue_offset);
        }
        let h = producer.send_to_queue_async(sample(&topic, 9), &queue);
        let r = h.wait().expect("async to queue");
        assert_eq!(r.queue, queue);
        assert_eq!(Some(r.queue_offset), last.map(|o| o + 1));
        // The consume queue is written shortly after the commit log.
        assert!(
            common::wait_until(PROMPTLY, || reader
                .max_offset(&addr, &topic, queue.queue_id())
                .unwrap()
                == r.queue_offset + 1),
            "GET_MAX_OFFSET agrees"
        );
    }
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn ordered_by_key_same_queue() {
    let Some(ns) = namesrv("ordered_by_key_same_queue") else {
        return;
    };
    use rocketmq_mio::routing::selector::MessageHashSelector;
    let topic = unique_topic("interop-ordered");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let producer = interop::producer("GID_interop_ordered", &ns);
    let queues = producer.publish_queues(&topic).expect("queues");
    let n = queues.len();
    for key in [
        "order-1",
        "order-42",
        "customer-77",
        "ключ-𝄞",
        "polygenelubricants",
    ] {
        let expected = &queues[(common::java_hash(key) % n as i32).unsigned_abs() as usize];
        let mut last = None;
        for i in 0..3 {
            let msg = sample(&topic, i).with_keys([key]);
            let r = producer
                .send_with_selector(msg.clone(), &MessageHashSelector, key)
                .expect("ordered send");
            assert_eq!(&r.queue, expected, "key {key}");
            let stored = reader.view_result(&r);
            assert_eq!(stored.queue_id, expected.queue_id());
            assert_eq!(
                stored.store_host.to_string(),
                reader.master_addr(expected.broker_name())
            );
            assert_stored(&stored, &msg, &r.msg_id);
            if let Some(prev) = last {
                assert!(r.queue_offset > prev, "in order within the queue");
            }
            last = Some(r.queue_offset);
        }
    }
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn delay_level_is_scheduled_then_delivered() {
    let Some(ns) = namesrv("delay_level_is_scheduled_then_delivered") else {
        return;
    };
    let topic = unique_topic("interop-delay");
    let producer = interop::producer("GID_interop_delay", &ns);
    let reader = Reader::new(&ns);
    let msg = sample(&topic, 1).with_delay_level(1); // 1 s
    let r = producer.send(msg.clone()).expect("delayed send");
    assert_result(&r, &topic);
    let scheduled = reader.view_result(&r);
    assert_eq!(scheduled.topic, "SCHEDULE_TOPIC_XXXX");
    assert_eq!(scheduled.queue_id, 0, "delay level 1 is schedule queue 0");
    assert_eq!(scheduled.property("DELAY"), Some("1"));
    assert_eq!(scheduled.property("REAL_TOPIC"), Some(topic.as_str()));
    let real_qid = r.queue.queue_id().to_string();
    assert_eq!(scheduled.property("REAL_QID"), Some(real_qid.as_str()));
    assert_eq!(scheduled.msg_id(), Some(r.msg_id.as_str()));
    // Delivered to the real topic about a second later, with the same UNIQ_KEY.
    let delivered = reader
        .find(&topic, &r.msg_id, true, PROMPTLY)
        .expect("the delayed message is delivered to its topic");
    assert_stored(&delivered, &msg, &r.msg_id);
    assert_eq!(delivered.queue_id, r.queue.queue_id());
    assert_eq!(
        delivered.property("DELAY"),
        None,
        "the broker clears the level on delivery"
    );
    // Held for the level's second (by the broker's own clock).
    assert!(
        delivered.store_timestamp >= scheduled.store_timestamp + 950,
        "stored {} ms after scheduling",
        delivered.store_timestamp - scheduled.store_timestamp
    );
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn compressed_body_inflates_to_the_original() {
    let Some(ns) = namesrv("compressed_body_inflates_to_the_original") else {
        return;
    };
    let topic = unique_topic("interop-zlib");
    let producer = interop::producer("GID_interop_zlib", &ns);
    let reader = Reader::new(&ns);
    let big: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {i} of a compressible body\n").into_bytes())
        .collect();
    assert!(big.len() > 4096);
    let msg = Message::new(&topic, big.clone())
        .with_tags("TagZ")
        .with_keys(["big-1"])
        .with_property("size", big.len().to_string())
        .with_flag(3);
    for r in [
        producer.send(msg.clone()).expect("sync"),
        producer.send_async(msg.clone()).wait().expect("async"),
    ] {
        let stored = reader.view_result(&r);
        assert_ne!(
            stored.sys_flag & sys_flag::COMPRESSED,
            0,
            "{:#x}",
            stored.sys_flag
        );
        assert_eq!(
            stored.sys_flag & sys_flag::COMPRESSION_TYPE_MASK,
            sys_flag::COMPRESSION_ZLIB
        );
        assert!(
            stored.body.len() < big.len() / 4,
            "stored {} bytes",
            stored.body.len()
        );
        assert_eq!(
            stored.body_crc,
            rocketmq_mio::protocol::message_codec::body_crc32(&stored.body),
            "the broker's CRC is over the bytes it stores"
        );
        assert_eq!(interop::inflate(&stored.body), big);
        assert_stored(&stored, &msg, &r.msg_id);
    }
    // Just under the threshold: sent as is.
    let small = Message::new(&topic, vec![b'x'; 4095]);
    let r = producer.send(small.clone()).unwrap();
    let stored = reader.view_result(&r);
    assert_eq!(stored.sys_flag & sys_flag::COMPRESSED, 0);
    assert_stored(&stored, &small, &r.msg_id);
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn unicode_properties_survive() {
    let Some(ns) = namesrv("unicode_properties_survive") else {
        return;
    };
    let topic = unique_topic("interop-unicode");
    let producer = interop::producer("GID_interop_unicode", &ns);
    let reader = Reader::new(&ns);
    let key = format!("ключ-𝄞-{}", unique_topic("k"));
    let msg = Message::new(&topic, "héllo wörld ✓ 𝄞 😀".as_bytes())
        .with_tags("标签")
        .with_keys([key.as_str(), "clé"])
        .with_property("grüße", "grün ✓ 𝄞")
        .with_property("emoji", "😀🎉")
        .with_property("quote\"back\\slash", "tab\there {json}")
        .with_flag(-5);
    let r = producer.send(msg.clone()).expect("send");
    let stored = reader.view_result(&r);
    assert_stored(&stored, &msg, &r.msg_id);
    assert_eq!(stored.property("grüße"), Some("grün ✓ 𝄞"));
    // The broker's key index takes non-ASCII keys too.
    let found = reader
        .find(&topic, &key, false, PROMPTLY)
        .expect("found by its non-ASCII key");
    assert_eq!(found.commit_log_offset, stored.commit_log_offset);
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn timer_message_is_delivered_at_its_time() {
    let Some(ns) = namesrv("timer_message_is_delivered_at_its_time") else {
        return;
    };
    let topic = unique_topic("interop-timer");
    let producer = interop::producer("GID_interop_timer", &ns);
    let reader = Reader::new(&ns);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = now + 1500;
    let msg = sample(&topic, 1).with_deliver_time_ms(at);
    let r = producer.send(msg.clone()).expect("timer send");
    assert_result(&r, &topic);
    // Parked in the timer wheel's topic until its time.
    let parked = reader.view_result(&r);
    assert_ne!(parked.topic, topic);
    assert_eq!(parked.property("REAL_TOPIC"), Some(topic.as_str()));
    let at_s = at.to_string();
    assert_eq!(parked.property("TIMER_DELIVER_MS"), Some(at_s.as_str()));
    let delivered = reader
        .find(&topic, &r.msg_id, true, PROMPTLY)
        .expect("the timer message is delivered to its topic");
    assert_stored(&delivered, &msg, &r.msg_id);
    assert_eq!(delivered.queue_id, r.queue.queue_id());
    // Not before its time, give or take the wheel's one-second precision.
    assert!(
        delivered.store_timestamp >= at - 1000,
        "delivered {} ms before its time",
        at - delivered.store_timestamp
    );
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn namespace_prefixes_the_stored_topic() {
    let Some(ns) = namesrv("namespace_prefixes_the_stored_topic") else {
        return;
    };
    let topic = unique_topic("interop-ns");
    let producer = rocketmq_mio::ProducerConfig::testing("GID_interop_ns")
        .name_server(&ns)
        .namespace("interopns")
        .start()
        .unwrap();
    let reader = Reader::new(&ns);
    let msg = sample(&topic, 1);
    let r = producer.send(msg.clone()).expect("send");
    // The result speaks of the user's topic; the broker stores `namespace%topic`.
    assert_result(&r, &topic);
    let stored = reader.view_result(&r);
    assert_eq!(stored.topic, format!("interopns%{topic}"));
    let mut on_wire = msg;
    on_wire.set_topic(stored.topic.clone());
    assert_stored(&stored, &on_wire, &r.msg_id);
    producer.shutdown(PROMPTLY).unwrap();
}

/// Commits every transaction at once.
struct CommitNow;

impl rocketmq_mio::TransactionListener for CommitNow {
    fn execute_local_transaction(
        &self,
        _: &Message,
        _: &str,
        _: &dyn std::any::Any,
    ) -> rocketmq_mio::ListenerResult {
        Ok(rocketmq_mio::LocalTransactionState::CommitMessage)
    }

    fn check_local_transaction(
        &self,
        _: &rocketmq_mio::MessageExt,
        _: &str,
    ) -> rocketmq_mio::ListenerResult {
        Ok(rocketmq_mio::LocalTransactionState::CommitMessage)
    }
}

/// A namespaced producer's group is wrapped on the wire: the broker registers the heartbeat
/// under `namespace%group`, and a transactional message carries it as PGROUP.
#[test]
fn namespace_wraps_the_group_in_heartbeats_and_transactions() {
    let Some(ns) = namesrv("namespace_wraps_the_group_in_heartbeats_and_transactions") else {
        return;
    };
    let topic = unique_topic("interop-nsgroup");
    let group = unique_topic("GID_interop_nsgroup");
    let wrapped = format!("interopns%{group}");
    let tp = rocketmq_mio::ProducerConfig::testing(group.as_str())
        .name_server(&ns)
        .namespace("interopns")
        .listener(CommitNow)
        .start()
        .unwrap();
    let reader = Reader::new(&ns);
    let r = tp
        .send_message_in_transaction(sample(&topic, 1), &())
        .expect("transactional send");
    assert_eq!(r.send_result.queue.topic(), topic);
    let stored = reader
        .find(
            &format!("interopns%{topic}"),
            &r.send_result.msg_id,
            true,
            PROMPTLY,
        )
        .expect("the committed message is stored under the wrapped topic");
    assert_eq!(stored.property("PGROUP"), Some(wrapped.as_str()));
    let addr = r.send_result.offset_id().unwrap().store_host.to_string();
    let client_id = tp.producer().client_id().to_string();
    let mut seen = Vec::new();
    assert!(
        common::wait_until(PROMPTLY, || {
            seen = reader.producer_connections(&addr, &wrapped);
            seen.iter().any(|c| c["clientId"] == client_id.as_str())
        }),
        "the broker never registered {client_id} for {wrapped}: {seen:?}"
    );
    assert!(
        reader.producer_connections(&addr, &group).is_empty(),
        "the bare group is registered too"
    );
    tp.shutdown(PROMPTLY).unwrap();
}

#[test]
fn queue_out_of_range_is_a_broker_error() {
    let Some(ns) = namesrv("queue_out_of_range_is_a_broker_error") else {
        return;
    };
    let topic = unique_topic("interop-badqueue");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 2);
    let producer = interop::producer("GID_interop_badqueue", &ns);
    let queues = producer.publish_queues(&topic).unwrap();
    let bad = rocketmq_mio::MessageQueue::new(topic.as_str(), queues[0].broker_name(), 9);
    let e = producer
        .send_to_queue(sample(&topic, 1), &bad)
        .expect_err("queue 9 of 2");
    // SYSTEM_ERROR (as Java's msgCheck answers), not INVALID_PARAMETER.
    assert_eq!(e.response_code(), Some(1), "{e:?}");
    assert!(e.to_string().contains("queueId[9] is illegal"), "{e}");
    assert_eq!(
        e.broker_addr(),
        Some(reader.master_addr(queues[0].broker_name()).as_str())
    );
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn large_incompressible_body_is_sent_as_is() {
    let Some(ns) = namesrv("large_incompressible_body_is_sent_as_is") else {
        return;
    };
    use rand::RngCore;
    let topic = unique_topic("interop-large");
    let producer = interop::producer("GID_interop_large", &ns);
    let reader = Reader::new(&ns);
    let mut big = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut big);
    let msg = Message::new(&topic, big).with_tags("Large");
    let r = producer.send(msg.clone()).expect("1 MiB send");
    let stored = reader.view_result(&r);
    // zlib would not make it smaller, so it travels and is stored uncompressed.
    assert_eq!(stored.sys_flag, 0);
    assert_stored(&stored, &msg, &r.msg_id);
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn heartbeat_registers_and_shutdown_unregisters() {
    let Some(ns) = namesrv("heartbeat_registers_and_shutdown_unregisters") else {
        return;
    };
    let topic = unique_topic("interop-hb");
    let group = unique_topic("GID_interop_hb");
    let producer = interop::producer(&group, &ns);
    let reader = Reader::new(&ns);
    let r = producer.send(sample(&topic, 1)).expect("send");
    let addr = r.offset_id().unwrap().store_host.to_string();
    let client_id = producer.client_id().to_string();
    let mut seen = Vec::new();
    assert!(
        common::wait_until(PROMPTLY, || {
            seen = reader.producer_connections(&addr, &group);
            seen.iter().any(|c| c["clientId"] == client_id.as_str())
        }),
        "the broker never registered {client_id} for {group}: {seen:?}"
    );
    let me = seen
        .iter()
        .find(|c| c["clientId"] == client_id.as_str())
        .unwrap();
    // The language and version of every request we send, as the broker decoded them.
    assert_eq!(me["language"], "RUST");
    assert_eq!(me["version"], rocketmq_mio::protocol::codes::CLIENT_VERSION);
    producer.shutdown(PROMPTLY).unwrap();
    // Gone after shutdown (UNREGISTER_CLIENT, or the closed connection: the broker drops a
    // producer's registration either way).
    assert!(
        common::wait_until(PROMPTLY, || {
            seen = reader.producer_connections(&addr, &group);
            !seen.iter().any(|c| c["clientId"] == client_id.as_str())
        }),
        "still registered after shutdown: {seen:?}"
    );
}

#[test]
fn longest_topic_and_large_properties() {
    let Some(ns) = namesrv("longest_topic_and_large_properties") else {
        return;
    };
    let producer = interop::producer("GID_interop_limits", &ns);
    let reader = Reader::new(&ns);
    let topic = unique_topic("interop-limits");
    // 127 bytes, the longest topic a producer and a broker accept.
    let long_topic = format!("{topic}-{}", "x".repeat(127 - topic.len() - 1));
    let msg = sample(&long_topic, 1);
    let r = producer.send(msg.clone()).expect("127-byte topic");
    assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

    let msg = sample(&topic, 2).with_property("big", "v".repeat(32_000));
    let r = producer.send(msg.clone()).expect("32 000-byte property");
    assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
    // About 32 760 bytes encoded with UNIQ_KEY and WAIT: within the producer's 32 767-byte
    // limit, but over it once the broker adds CLUSTER, MSG_REGION and TRACE_ON to the stored
    // properties: MESSAGE_ILLEGAL, as a Java broker's commit log answers.
    let msg = Message::new(&topic, "b").with_property("big", "v".repeat(32_700));
    let e = producer.send(msg).expect_err("the broker's limit");
    assert_eq!(e.response_code(), Some(13), "{e:?}");
    producer.shutdown(PROMPTLY).unwrap();
}
