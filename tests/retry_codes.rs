//! A non-default `retry_codes` changes what is retried, end to end (sync and async sends on a
//! two-broker MockCluster). Each broker fails its next send with the code under test, so the
//! outcome does not depend on which broker the first attempt picks.

mod common;

use std::time::Duration;

use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::testing::MockCluster;
use rocketmq_mio::{Error, Message, Producer, SendStatus};

use common::PROMPTLY;

fn producer(cluster: &MockCluster, codes: Option<Vec<i32>>) -> Producer {
    let b = Producer::builder("GID_RETRY_CODES")
        .name_server(cluster.namesrv_addr())
        .send_timeout(Duration::from_secs(20))
        .retries(2)
        .async_retries(2);
    match codes {
        Some(c) => b.retry_codes(c),
        None => b,
    }
    .start()
    .unwrap()
}

fn fail_everywhere(cluster: &MockCluster, code: i32) {
    for b in cluster.brokers() {
        b.fail_next(RequestCode::SEND_MESSAGE_V2, code, 1);
    }
}

fn sends(cluster: &MockCluster) -> u64 {
    cluster
        .brokers()
        .iter()
        .map(|b| b.counters().received(RequestCode::SEND_MESSAGE_V2))
        .sum()
}

fn code_of(r: rocketmq_mio::Result<rocketmq_mio::SendResult>) -> Option<i32> {
    match r {
        Err(Error::Broker { code, .. }) => Some(code),
        Ok(_) => None,
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn a_code_added_to_retry_codes_is_retried() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("RetryT", 2)
        .start()
        .unwrap();
    // Default codes: FLOW_CONTROL (215) is not retried.
    let p = producer(&cluster, None);
    p.publish_queues("RetryT").unwrap();
    fail_everywhere(&cluster, ResponseCode::FLOW_CONTROL);
    assert_eq!(
        code_of(p.send(Message::new("RetryT", "x"))),
        Some(ResponseCode::FLOW_CONTROL)
    );
    assert_eq!(sends(&cluster), 1, "one attempt");
    p.shutdown(PROMPTLY).unwrap();
    for b in cluster.brokers() {
        b.clear_faults();
    }

    // With 215 retried: both brokers fail once, the third attempt stores it.
    let p = producer(&cluster, Some(vec![ResponseCode::FLOW_CONTROL]));
    p.publish_queues("RetryT").unwrap();
    let before = sends(&cluster);
    fail_everywhere(&cluster, ResponseCode::FLOW_CONTROL);
    let r = p.send(Message::new("RetryT", "sync")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(sends(&cluster) - before, 3);
    fail_everywhere(&cluster, ResponseCode::FLOW_CONTROL);
    let r = p
        .send_async(Message::new("RetryT", "async"))
        .wait()
        .unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(sends(&cluster) - before, 6);
    assert_eq!(cluster.message_count("RetryT"), 2);
    assert!(p.stats().totals.retried >= 4);
    p.shutdown(PROMPTLY).unwrap();
}

#[test]
fn a_default_code_left_out_of_retry_codes_is_not_retried() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("RetryU", 2)
        .start()
        .unwrap();
    // Default codes: SYSTEM_ERROR (1) is retried on the other broker.
    let p = producer(&cluster, None);
    p.publish_queues("RetryU").unwrap();
    fail_everywhere(&cluster, ResponseCode::SYSTEM_ERROR);
    assert!(p.send(Message::new("RetryU", "x")).is_ok());
    assert_eq!(sends(&cluster), 3);
    p.shutdown(PROMPTLY).unwrap();
    for b in cluster.brokers() {
        b.clear_faults();
    }

    let p = producer(&cluster, Some(vec![ResponseCode::FLOW_CONTROL]));
    p.publish_queues("RetryU").unwrap();
    let before = sends(&cluster);
    fail_everywhere(&cluster, ResponseCode::SYSTEM_ERROR);
    assert_eq!(
        code_of(p.send(Message::new("RetryU", "sync"))),
        Some(ResponseCode::SYSTEM_ERROR)
    );
    assert_eq!(sends(&cluster) - before, 1);
    for b in cluster.brokers() {
        b.clear_faults();
    }
    fail_everywhere(&cluster, ResponseCode::SYSTEM_ERROR);
    assert_eq!(
        code_of(p.send_async(Message::new("RetryU", "async")).wait()),
        Some(ResponseCode::SYSTEM_ERROR)
    );
    assert_eq!(sends(&cluster) - before, 2);
    p.shutdown(PROMPTLY).unwrap();
}
