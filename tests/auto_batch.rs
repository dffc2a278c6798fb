//! Auto-batching against MockBroker: every caller gets its own result, order within a queue
//! holds, shutdown sends what is waiting, and what Java does not batch is not batched.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, MessageExt, Producer, SendResult, SendStatus};

use common::PROMPTLY;

/// Held size of the test messages: 20 + body (28) + UNIQ_KEY property (8 + 32 + 2), so ten of
/// them fill a 900-byte batch exactly.
fn body(i: usize) -> String {
    format!("message-{i:020}")
}

fn producer(broker: &MockBroker, delay: Duration, max_bytes: usize) -> Producer {
    Producer::builder("GID_AUTO_BATCH")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(20))
        .auto_batch(true)
        .batch_max_delay(delay)
        .batch_max_bytes(max_bytes)
        .start()
        .expect("producer starts")
}

/// The stored message a result points at; checks that the result is that message's own.
fn check_own_result(stored: &[MessageExt], r: &SendResult, expected_body: &str) {
    assert_eq!(r.status, SendStatus::SendOk);
    assert!(!r.msg_id.contains(','), "one id per caller: {}", r.msg_id);
    let m = stored
        .iter()
        .find(|m| m.property("UNIQ_KEY") == Some(r.msg_id.as_str()))
        .unwrap_or_else(|| panic!("no stored message with UNIQ_KEY {}", r.msg_id));
    assert_eq!(m.body, expected_body.as_bytes());
    assert_eq!(m.queue_id, r.queue.queue_id());
    assert_eq!(m.queue_offset, r.queue_offset);
    assert_eq!(
        r.offset_id().unwrap().commit_log_offset,
        m.commit_log_offset,
        "offset id of {expected_body}"
    );
}

#[test]
fn every_async_caller_gets_its_own_result() {
    let broker = MockBroker::start().unwrap();
    // A long delay: only full batches (ten messages each) leave before shutdown.
    let p = producer(&broker, Duration::from_secs(30), 900);
    let handles: Vec<_> = (0..200)
        .map(|i| p.send_async(Message::new("BatchTopic", body(i))))
        .collect();
    let results: Vec<SendResult> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
    let stored = broker.messages("BatchTopic");
    for (i, r) in results.iter().enumerate() {
        check_own_result(&stored, r, &body(i));
    }
    let counters = broker.counters();
    assert_eq!(counters.received(RequestCode::SEND_BATCH_MESSAGE), 20);
    p.shutdown(PROMPTLY).unwrap();
}

#[test]
fn sync_senders_and_callbacks_are_batched_with_their_own_results() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, Duration::from_millis(20), 32 * 1024);
    let (tx, rx) = mpsc::channel();
    for i in 0..40 {
        let tx = tx.clone();
        p.send_with_callback(Message::new("MixedTopic", body(i)), move |r| {
            tx.send((i, r)).unwrap();
        });
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|k| {
                        let i = 1000 + t * 10 + k;
                        (i, p.send(Message::new("MixedTopic", body(i))).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut results: Vec<(usize, SendResult)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for _ in 0..40 {
        let (i, r) = rx.recv_timeout(PROMPTLY).expect("every callback runs");
        results.push((i, r.unwrap()));
    }
    let stored = broker.messages("MixedTopic");
    assert_eq!(stored.len(), 80);
    for (i, r) in &results {
        check_own_result(&stored, r, &body(*i));
    }
    let c = broker.counters();
    assert!(c.received(RequestCode::SEND_BATCH_MESSAGE) >= 1);
    assert!(c.sends() < 80, "{} requests for 80 messages", c.sends());
}

#[test]
fn order_within_a_queue_is_kept() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, Duration::from_millis(5), 900);
    let queue = p.publish_queues("OrderTopic").unwrap()[1].clone();
    let handles: Vec<_> = (0..300)
        .map(|i| p.send_to_queue_async(Message::new("OrderTopic", body(i)), &queue))
        .collect();
    for h in handles {
        assert_eq!(h.wait().unwrap().queue, queue);
    }
    // Automatic routing: each queue gets an increasing subsequence.
    let handles: Vec<_> = (300..600)
        .map(|i| p.send_async(Message::new("OrderTopic", body(i))))
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    let stored = broker.messages("OrderTopic");
    let in_queue: Vec<&MessageExt> = stored
        .iter()
        .filter(|m| m.queue_id == queue.queue_id())
        .collect();
    let first: Vec<&[u8]> = in_queue
        .iter()
        .take(300)
        .map(|m| m.body.as_slice())
        .collect();
    let expected: Vec<String> = (0..300).map(body).collect();
    assert_eq!(
        first,
        expected.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()
    );
    for q in 0..8 {
        let bodies: Vec<&Vec<u8>> = stored
            .iter()
            .filter(|m| m.queue_id == q)
            .map(|m| &m.body)
            .collect();
        assert!(
            bodies.windows(2).all(|w| w[0] < w[1]),
            "queue {q} out of order"
        );
        let offsets: Vec<i64> = stored
            .iter()
            .filter(|m| m.queue_id == q)
            .map(|m| m.queue_offset)
            .collect();
        assert!(offsets.iter().enumerate().all(|(i, o)| *o == i as i64));
    }
}

#[test]
fn shutdown_sends_open_batches() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, Duration::from_secs(30), 32 * 1024);
    let handles: Vec<_> = (0..5)
        .map(|i| p.send_async(Message::new("FlushTopic", body(i))))
        .collect();
    let (tx, rx) = mpsc::channel();
    p.send_with_callback(Message::new("FlushTopic", body(5)), move |r| {
        tx.send(r).unwrap();
    });
    assert!(
        handles.iter().all(|h| !h.is_done()),
        "nothing leaves before the delay"
    );
    p.shutdown(PROMPTLY).unwrap();
    let stored = broker.messages("FlushTopic");
    for (i, h) in handles.into_iter().enumerate() {
        check_own_result(&stored, &h.wait().unwrap(), &body(i));
    }
    let r = rx.recv_timeout(PROMPTLY).unwrap().unwrap();
    check_own_result(&stored, &r, &body(5));
    assert_eq!(
        broker.counters().received(RequestCode::SEND_BATCH_MESSAGE),
        1
    );
}

#[test]
fn what_java_does_not_batch_goes_alone() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, Duration::from_secs(30), 32 * 1024);
    p.send(Message::new("AloneTopic", "delayed").with_delay_level(2))
        .unwrap();
    p.send_async(Message::new("AloneTopic", "timer").with_deliver_time_ms(4_000_000_000_000))
        .wait()
        .unwrap();
    p.send_oneway(Message::new("AloneTopic", "oneway")).unwrap();
    let selector = rocketmq_mio::routing::selector::MessageHashSelector;
    p.send_with_selector(Message::new("AloneTopic", "ordered"), &selector, "k")
        .unwrap();
    p.send(Message::new("AloneTopic", vec![b'x'; 40 * 1024]))
        .unwrap();
    assert!(common::wait_until(PROMPTLY, || broker
        .message_count("AloneTopic")
        == 5));
    let c = broker.counters();
    assert_eq!(c.received(RequestCode::SEND_BATCH_MESSAGE), 0);
    assert_eq!(c.received(RequestCode::SEND_MESSAGE_V2), 5);
}
