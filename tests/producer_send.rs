//! Every send mode against MockBroker: what the broker stores is what was sent.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, Message, MessageQueue, Producer, SendStatus};

use common::{java_hash, wait_until, PROMPTLY};

fn producer(broker: &MockBroker) -> Producer {
    Producer::builder("GID_SEND_TEST")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .start()
        .expect("producer starts")
}

fn sample(topic: &str, body: &str) -> Message {
    Message::new(topic, body)
        .with_tags("TagA")
        .with_keys(["k1", "k2"])
        .with_property("color", "grün ✓ 𝄞")
}

#[test]
fn sync_send_stores_the_message() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let r = p.send(sample("SyncTopic", "hello sync")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.queue.topic(), "SyncTopic");
    assert_eq!(r.msg_id.len(), 32, "UNIQ_KEY layout: {}", r.msg_id);
    let stored = broker.messages("SyncTopic");
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.body, b"hello sync");
    assert_eq!(m.tags(), Some("TagA"));
    assert_eq!(m.keys().collect::<Vec<_>>(), vec!["k1", "k2"]);
    assert_eq!(m.property("color"), Some("grün ✓ 𝄞"));
    assert_eq!(m.property("UNIQ_KEY"), Some(r.msg_id.as_str()));
    assert_eq!(m.property("WAIT"), Some("true"));
    assert_eq!(m.queue_id, r.queue.queue_id());
    assert_eq!(m.queue_offset, r.queue_offset);
    assert_eq!(m.sys_flag, 0);
    assert_eq!(
        r.offset_id().unwrap().commit_log_offset,
        m.commit_log_offset
    );
}

#[test]
fn async_handle_and_callback_store_messages() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let handles: Vec<_> = (0..50)
        .map(|i| p.send_async(sample("AsyncTopic", &format!("async {i}"))))
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.wait().unwrap().msg_id);
    }
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        p.send_with_callback(sample("AsyncTopic", &format!("callback {i}")), move |r| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            let _ = tx.send((r, name));
        });
    }
    for _ in 0..50 {
        let (r, thread) = rx.recv_timeout(PROMPTLY).unwrap();
        ids.push(r.unwrap().msg_id);
        assert!(
            thread.starts_with("rocketmq-callback"),
            "callback ran on {thread}"
        );
    }
    let stored = broker.messages("AsyncTopic");
    assert_eq!(stored.len(), 100);
    let mut stored_ids: Vec<_> = stored
        .iter()
        .map(|m| m.property("UNIQ_KEY").unwrap().to_string())
        .collect();
    stored_ids.sort();
    ids.sort();
    assert_eq!(stored_ids, ids);
}

#[test]
fn oneway_arrives() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    for i in 0..10 {
        p.send_oneway(sample("OnewayTopic", &format!("oneway {i}")))
            .unwrap();
    }
    assert!(wait_until(PROMPTLY, || broker.message_count("OnewayTopic") == 10));
}

#[test]
fn batch_stores_each_message() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let msgs = (0..3)
        .map(|i| Message::new("BatchTopic", format!("batch-{i}")).with_tags("B"))
        .collect();
    let r = p.send_batch(msgs).unwrap();
    let ids: Vec<_> = r.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(r.offset_msg_id.split(',').count(), 3);
    let stored = broker.messages("BatchTopic");
    assert_eq!(stored.len(), 3);
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(m.body, format!("batch-{i}").as_bytes());
        assert_eq!(m.tags(), Some("B"));
        assert_eq!(m.property("UNIQ_KEY"), Some(ids[i]));
        assert_eq!(m.queue_id, r.queue.queue_id());
        assert_eq!(m.queue_offset, r.queue_offset + i as i64);
    }
    // Batches are checked before anything is sent.
    let mixed = vec![Message::new("BatchTopic", "a"), Message::new("Other", "b")];
    assert!(matches!(p.send_batch(mixed), Err(Error::InvalidMessage(_))));
    let delayed = vec![Message::new("BatchTopic", "a").with_delay_level(3)];
    assert!(matches!(
        p.send_batch(delayed),
        Err(Error::InvalidMessage(_))
    ));
    assert!(matches!(
        p.send_batch(vec![]),
        Err(Error::InvalidMessage(_))
    ));
    assert_eq!(broker.message_count("BatchTopic"), 3);
}

#[test]
fn to_queue_and_selector() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let queues = p.publish_queues("QueueTopic").unwrap();
    assert!(queues.len() >= 2);
    let target = MessageQueue::new("QueueTopic", queues[1].broker_name(), queues[1].queue_id());
    let r = p.send_to_queue(sample("QueueTopic", "q"), &target).unwrap();
    assert_eq!(r.queue.queue_id(), target.queue_id());

    // The same key always lands on the queue Java would pick: abs(hashCode % n).
    let n = queues.len() as i32;
    let expected = (java_hash("order-42") % n).abs();
    for i in 0..10 {
        let r = p
            .send_with_selector(
                sample("QueueTopic", &format!("ordered {i}")),
                &MessageHashSelector,
                "order-42",
            )
            .unwrap();
        assert_eq!(r.queue.queue_id(), expected);
    }
    // A closure selector, asynchronously.
    let pick_last = Arc::new(|qs: &[MessageQueue], _: &Message, _: &str| qs.len() - 1);
    let r = p
        .send_with_selector_async(sample("QueueTopic", "closure"), pick_last, "x")
        .wait()
        .unwrap();
    assert_eq!(r.queue.queue_id(), n - 1);
    let stored = broker.messages("QueueTopic");
    assert_eq!(stored.len(), 12);
    assert!(stored[1..11].iter().all(|m| m.queue_id == expected));
}

#[test]
fn compression_and_delay() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8 + b'a').collect();
    p.send(Message::new("BigTopic", body.clone())).unwrap();
    let m = &broker.messages("BigTopic")[0];
    assert_eq!(m.sys_flag & sys_flag::COMPRESSED, sys_flag::COMPRESSED);
    assert_eq!(
        m.sys_flag & sys_flag::COMPRESSION_TYPE_MASK,
        sys_flag::COMPRESSION_ZLIB
    );
    assert!(m.body.len() < body.len());
    let mut inflated = Vec::new();
    use std::io::Read;
    flate2::read::ZlibDecoder::new(&m.body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, body);

    // Small bodies are not compressed.
    p.send(Message::new("BigTopic", vec![b'a'; 100])).unwrap();
    assert_eq!(broker.messages("BigTopic")[1].sys_flag, 0);

    p.send(Message::new("DelayTopic", "later").with_delay_level(3))
        .unwrap();
    assert_eq!(
        broker.messages("DelayTopic")[0].property("DELAY"),
        Some("3")
    );
}

#[test]
fn invalid_messages_send_nothing() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let cases = [
        Message::new("T", ""),
        Message::new("T", vec![0u8; 4 * 1024 * 1024 + 1]),
        Message::new("bad topic!", "x"),
        Message::new("", "x"),
        Message::new("T", "x").with_property("a\u{1}b", "v"),
        Message::new("RMQ_SYS_TRANS_HALF_TOPIC", "x"),
    ];
    for msg in cases {
        let e = p.send(msg.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidMessage(_)), "{e}");
        let e = p.send_async(msg.clone()).wait().unwrap_err();
        assert!(matches!(e, Error::InvalidMessage(_)), "{e}");
        assert!(p.send_oneway(msg).is_err());
    }
    // Nothing reached the broker, not even a route lookup.
    assert_eq!(broker.counters().sends(), 0);
}

#[test]
fn awaited_in_tokio_and_block_on() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let handle = p.send_async(sample("FutureTopic", "block_on"));
    let r = futures_lite::future::block_on(handle).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let p2 = &p;
    let results = rt.block_on(async move {
        // The runtime's only thread keeps running other tasks while sends are in flight.
        let ticker = tokio::spawn(async {
            let mut ticks = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks += 1;
            }
            ticks
        });
        let mut out = Vec::new();
        for i in 0..20 {
            out.push(
                p2.send_async(sample("FutureTopic", &format!("tokio {i}")))
                    .await,
            );
        }
        (out, ticker.await.unwrap())
    });
    assert_eq!(results.1, 5);
    assert!(results.0.iter().all(|r| r.is_ok()));
    assert_eq!(broker.message_count("FutureTopic"), 21);
}

#[test]
fn stored_but_not_safe_statuses_come_back_as_results() {
    use rocketmq_mio::protocol::{RequestCode, ResponseCode};
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    p.publish_queues("StatusTopic").unwrap();
    for (code, status) in [
        (
            ResponseCode::FLUSH_DISK_TIMEOUT,
            SendStatus::FlushDiskTimeout,
        ),
        (
            ResponseCode::SLAVE_NOT_AVAILABLE,
            SendStatus::SlaveNotAvailable,
        ),
        (
            ResponseCode::FLUSH_SLAVE_TIMEOUT,
            SendStatus::FlushSlaveTimeout,
        ),
    ] {
        broker.store_with_status_next(RequestCode::SEND_MESSAGE_V2, code, 1);
        let r = p.send(Message::new("StatusTopic", "x")).unwrap();
        assert_eq!(r.status, status);
    }
    // Not retried (Java's default): each message was stored exactly once.
    assert_eq!(broker.message_count("StatusTopic"), 3);
    assert_eq!(broker.counters().sends(), 3);
}

#[test]
fn retry_another_broker_when_not_store_ok() {
    use rocketmq_mio::protocol::{RequestCode, ResponseCode};
    use rocketmq_mio::testing::MockCluster;
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("NotOkTopic", 2);
    let p = Producer::builder("GID_NOT_OK")
        .name_server(cluster.namesrv_addr())
        .retry_another_broker_when_not_store_ok(true)
        .start()
        .unwrap();
    for b in cluster.brokers() {
        b.store_with_status_next(
            RequestCode::SEND_MESSAGE_V2,
            ResponseCode::FLUSH_DISK_TIMEOUT,
            1,
        );
    }
    // The first attempt is stored but not safe; the second goes to the other broker, which is
    // also not safe: the first result comes back, and the message is on both brokers.
    let r = p.send(Message::new("NotOkTopic", "x")).unwrap();
    assert_eq!(r.status, SendStatus::FlushDiskTimeout);
    assert_eq!(cluster.broker(0).message_count("NotOkTopic"), 1);
    assert_eq!(cluster.broker(1).message_count("NotOkTopic"), 1);
    // With the other broker healthy, the retry there is the answer.
    let mut saw_ok_after_retry = false;
    for _ in 0..20 {
        cluster.broker(0).clear_faults();
        cluster.broker(0).store_with_status_next(
            RequestCode::SEND_MESSAGE_V2,
            ResponseCode::FLUSH_DISK_TIMEOUT,
            1,
        );
        let count = || -> usize {
            cluster
                .brokers()
                .iter()
                .map(|b| b.message_count("NotOkTopic"))
                .sum()
        };
        let before = count();
        let r = p.send(Message::new("NotOkTopic", "y")).unwrap();
        if count() - before == 2 {
            assert_eq!(r.status, SendStatus::SendOk);
            assert_eq!(r.queue.broker_name(), cluster.broker(1).broker_name());
            saw_ok_after_retry = true;
            break;
        }
    }
    assert!(saw_ok_after_retry);
}
