//! The send forms added to the basic ones: `send_batch_oneway` and `Message::with_delay`
//! (timer properties, validated like `with_deliver_time_ms`), against MockBroker.

mod common;

use std::time::Duration;

use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, Message, Producer, SendStatus};

use common::{wait_until, PROMPTLY};

fn producer(broker: &MockBroker) -> Producer {
    Producer::builder("GID_SEND_FORMS")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(20))
        .start()
        .expect("producer starts")
}

#[test]
fn send_batch_oneway_stores_every_message_in_one_request() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let msgs: Vec<_> = (0..5)
        .map(|i| Message::new("OnewayBatch", format!("m{i}")).with_keys([format!("k{i}")]))
        .collect();
    p.send_batch_oneway(msgs).unwrap();
    assert!(wait_until(PROMPTLY, || broker.message_count("OnewayBatch") == 5));
    let stored = broker.messages("OnewayBatch");
    let mut bodies: Vec<_> = stored.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        (0..5)
            .map(|i| format!("m{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    // One batch request, all in one queue, each message with its own UNIQ_KEY.
    assert_eq!(
        broker.counters().received(RequestCode::SEND_BATCH_MESSAGE),
        1
    );
    assert!(stored.iter().all(|m| m.queue_id == stored[0].queue_id));
    let mut ids: Vec<_> = stored
        .iter()
        .filter_map(|m| m.property("UNIQ_KEY"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    let stats = p.stats();
    assert_eq!(stats.topics["OnewayBatch"].oneway, 1);
    assert_eq!(stats.topics["OnewayBatch"].messages, 5);
    p.shutdown(PROMPTLY).unwrap();
}

#[test]
fn send_batch_oneway_refuses_a_bad_batch_and_sends_nothing() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let mixed = vec![Message::new("BatchA", "a"), Message::new("BatchB", "b")];
    assert!(matches!(
        p.send_batch_oneway(mixed),
        Err(Error::InvalidMessage(_))
    ));
    assert!(matches!(
        p.send_batch_oneway(Vec::new()),
        Err(Error::InvalidMessage(_))
    ));
    let delayed = vec![
        Message::new("BatchA", "a"),
        Message::new("BatchA", "b").with_delay(Duration::from_secs(5)),
    ];
    assert!(matches!(
        p.send_batch_oneway(delayed),
        Err(Error::InvalidMessage(_))
    ));
    assert_eq!(broker.counters().sends(), 0);
    p.shutdown(PROMPTLY).unwrap();
    assert!(matches!(
        p.send_batch_oneway(vec![Message::new("BatchA", "a")]),
        Err(Error::Shutdown)
    ));
}

#[test]
fn with_delay_writes_the_timer_property() {
    let m = Message::new("t", "b").with_delay(Duration::from_secs(3));
    assert_eq!(m.property("TIMER_DELAY_SEC"), Some("3"));
    assert_eq!(m.property("TIMER_DELAY_MS"), None);
    let m = m.with_delay(Duration::from_millis(2500));
    assert_eq!(m.property("TIMER_DELAY_MS"), Some("2500"));
    assert_eq!(m.property("TIMER_DELAY_SEC"), None);
    let m = Message::new("t", "b")
        .with_deliver_time_ms(1_900_000_000_000)
        .with_delay(Duration::from_secs(60));
    assert_eq!(m.property("TIMER_DELIVER_MS"), None, "the last one wins");
    assert_eq!(m.property("TIMER_DELAY_SEC"), Some("60"));
}

#[test]
fn delayed_messages_reach_the_broker_with_their_delay() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    let r = p
        .send(Message::new("DelayTopic", "sec").with_delay(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    p.send(Message::new("DelayTopic", "ms").with_delay(Duration::from_millis(1500)))
        .unwrap();
    p.send_async(Message::new("DelayTopic", "async").with_delay(Duration::from_millis(250)))
        .wait()
        .unwrap();
    let stored = broker.messages("DelayTopic");
    let find = |body: &str| {
        stored
            .iter()
            .find(|m| m.body == body.as_bytes())
            .unwrap_or_else(|| panic!("{body} not stored"))
    };
    assert_eq!(find("sec").property("TIMER_DELAY_SEC"), Some("10"));
    assert_eq!(find("ms").property("TIMER_DELAY_MS"), Some("1500"));
    assert_eq!(find("async").property("TIMER_DELAY_MS"), Some("250"));
    p.shutdown(PROMPTLY).unwrap();
}

#[test]
fn a_delay_under_a_millisecond_is_refused_like_a_bad_delivery_time() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    for m in [
        Message::new("DelayBad", "zero").with_delay(Duration::ZERO),
        Message::new("DelayBad", "tiny").with_delay(Duration::from_micros(300)),
        Message::new("DelayBad", "neg").with_property("TIMER_DELAY_SEC", "-5"),
        Message::new("DelayBad", "junk").with_property("TIMER_DELAY_MS", "soon"),
        Message::new("DelayBad", "past").with_deliver_time_ms(0),
    ] {
        match p.send(m.clone()) {
            Err(Error::InvalidMessage(reason)) => {
                assert!(
                    reason.contains("delay") || reason.contains("delivery"),
                    "{reason}"
                )
            }
            other => panic!("{m:?}: expected InvalidMessage, got {other:?}"),
        }
        assert!(matches!(
            p.send_async(m.clone()).wait(),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(p.send_oneway(m), Err(Error::InvalidMessage(_))));
    }
    assert_eq!(broker.counters().sends(), 0);
    p.shutdown(PROMPTLY).unwrap();
}
