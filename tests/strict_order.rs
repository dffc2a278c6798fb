//! Strict order on MockCluster: a key never moves to another queue. When its queue is gone
//! (queue count changed, broker removed, not writable) or its broker isolated, its sends fail
//! at once with `OrderViolation`; when the queue comes back, they go to it again. Queue-count
//! changes are counted in `health()` either way.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::routing::router::RoutingStrategy;
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockCluster;
use rocketmq_mio::{Error, ErrorKind, Message, MessageQueue, Producer, ProducerConfig};

use common::{wait_until, PROMPTLY};

const TOPIC: &str = "StrictTopic";

/// Runs `f` on a thread; fails the test if it does not return within `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: no return within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the watched code panicked"),
    }
}

/// Two brokers with four queues each: the layout is a0..a3, b0..b3.
fn cluster() -> MockCluster {
    MockCluster::builder()
        .brokers(2)
        .topic(TOPIC, 4)
        .start()
        .unwrap()
}

fn producer(cluster: &MockCluster, strict: bool) -> Producer {
    ProducerConfig::ordered("GID_STRICT")
        .name_server(cluster.namesrv_addr())
        .strict_order(strict)
        .send_timeout(Duration::from_secs(10))
        .route_refresh_interval(Duration::from_millis(20))
        .start()
        .unwrap()
}

/// A key whose queue in the 8-queue layout is `index` (0..=3 broker-a, 4..=7 broker-b).
fn key_for(index: usize) -> String {
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| MessageHashSelector::index_for(k, 8) == index)
        .unwrap()
}

fn send_key(p: &Producer, key: &str) -> rocketmq_mio::Result<MessageQueue> {
    p.send_with_selector(
        Message::new(TOPIC, format!("for {key}")).with_keys([key]),
        &MessageHashSelector,
        key,
    )
    .map(|r| r.queue)
}

fn route_queues(p: &Producer) -> Option<usize> {
    p.health()
        .routes
        .iter()
        .find(|r| r.topic == TOPIC)
        .map(|r| r.queues)
}

fn assert_violation(r: rocketmq_mio::Result<MessageQueue>, broker: &str, id: i32, why: &str) {
    match r {
        Err(e @ Error::OrderViolation { .. }) => {
            assert_eq!(e.kind(), ErrorKind::OrderViolation);
            let Error::OrderViolation { queue, reason } = &e else {
                unreachable!()
            };
            assert_eq!((queue.broker_name(), queue.queue_id()), (broker, id), "{e}");
            assert!(reason.contains(why), "{reason}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("queue {id} of broker {broker}")),
                "{text}"
            );
        }
        other => panic!("expected an order violation on {broker}/{id}, got {other:?}"),
    }
}

#[test]
fn queue_count_change_fails_moved_keys_and_keeps_the_others() {
    watchdog(PROMPTLY * 3, || {
        let cluster = cluster();
        let p = producer(&cluster, true);
        let gone = key_for(3); // a3
        let kept = key_for(1); // a1
        let other = key_for(6); // b2
        let before: Vec<_> = [&gone, &kept, &other]
            .iter()
            .map(|k| send_key(&p, k).unwrap())
            .collect();
        assert_eq!(
            before
                .iter()
                .map(|q| (q.broker_name().to_string(), q.queue_id()))
                .collect::<Vec<_>>(),
            [
                ("broker-a".into(), 3),
                ("broker-a".into(), 1),
                ("broker-b".into(), 2)
            ]
        );
        cluster.broker(0).set_queues(TOPIC, 2); // layout now a0 a1 b0..b3
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(6)));
        let sends_before = cluster.broker(0).counters().sends();
        assert_violation(send_key(&p, &gone), "broker-a", 3, "gone");
        let async_try = p
            .send_with_selector_async(
                Message::new(TOPIC, "async").with_keys([gone.as_str()]),
                Arc::new(MessageHashSelector),
                gone.clone(),
            )
            .wait()
            .map(|r| r.queue);
        assert_violation(async_try, "broker-a", 3, "gone");
        assert_eq!(
            cluster.broker(0).counters().sends(),
            sends_before,
            "nothing sent"
        );
        // The other keys stay on their queues (hash % 6 would move both).
        assert_eq!(send_key(&p, &kept).unwrap(), before[1]);
        assert_eq!(send_key(&p, &other).unwrap(), before[2]);
        let health = p.health();
        let route = health.routes.iter().find(|r| r.topic == TOPIC).unwrap();
        assert_eq!(route.queue_count_changes, 1);
        assert_eq!(route.previous_queues, Some(8));
        assert_eq!(route.strict_order_queues, Some(8));
        let json = health.to_json();
        let r = json["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["topic"] == TOPIC)
            .unwrap();
        assert_eq!(r["queue_count_changes"], 1);
        // The queue comes back: the key's sends resume on it.
        cluster.broker(0).set_queues(TOPIC, 4);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(8)));
        assert_eq!(send_key(&p, &gone).unwrap(), before[0]);
        assert_eq!(
            p.health()
                .routes
                .iter()
                .find(|r| r.topic == TOPIC)
                .unwrap()
                .queue_count_changes,
            2
        );
        p.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn accept_route_moves_keys_to_the_new_layout() {
    watchdog(PROMPTLY * 3, || {
        let cluster = cluster();
        let p = producer(&cluster, true);
        let gone = key_for(3);
        send_key(&p, &gone).unwrap();
        cluster.broker(0).set_queues(TOPIC, 2);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(6)));
        assert!(matches!(
            send_key(&p, &gone),
            Err(Error::OrderViolation { .. })
        ));
        assert_eq!(p.accept_route(TOPIC).unwrap(), Some(8));
        let q = send_key(&p, &gone).unwrap();
        let expected = MessageHashSelector::index_for(&gone, 6);
        let layout = p.publish_queues(TOPIC).unwrap();
        assert_eq!(
            (q.broker_name(), q.queue_id()),
            (layout[expected].broker_name(), layout[expected].queue_id())
        );
        p.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn without_strict_order_keys_move_when_the_count_changes() {
    watchdog(PROMPTLY * 3, || {
        let cluster = cluster();
        let p = producer(&cluster, false);
        let gone = key_for(3);
        assert_eq!(send_key(&p, &gone).unwrap().queue_id(), 3);
        cluster.broker(0).set_queues(TOPIC, 2);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(6)));
        // Today's (Java's) behaviour, documented: the key silently lands elsewhere.
        let moved = send_key(&p, &gone).unwrap();
        assert_ne!((moved.broker_name(), moved.queue_id()), ("broker-a", 3));
        let route = p
            .health()
            .routes
            .into_iter()
            .find(|r| r.topic == TOPIC)
            .unwrap();
        assert_eq!(route.queue_count_changes, 1);
        assert_eq!(route.strict_order_queues, None);
        p.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn removed_or_read_only_broker_fails_its_keys_until_restored() {
    watchdog(PROMPTLY * 3, || {
        let cluster = cluster();
        let p = producer(&cluster, true);
        let on_b = key_for(5); // b1
        let on_a = key_for(2); // a2
        let b_queue = send_key(&p, &on_b).unwrap();
        let a_queue = send_key(&p, &on_a).unwrap();
        assert_eq!(b_queue.broker_name(), "broker-b");
        cluster.remove_broker_from_routes(1);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(4)));
        assert_violation(
            send_key(&p, &on_b),
            "broker-b",
            1,
            "no longer in the topic's route",
        );
        assert_eq!(send_key(&p, &on_a).unwrap(), a_queue);
        cluster.restore_broker_in_routes(1);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(8)));
        assert_eq!(send_key(&p, &on_b).unwrap(), b_queue);
        // Read-only (perm 4: read, no write).
        cluster.broker(1).set_perm(TOPIC, 4);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(4)));
        assert_violation(send_key(&p, &on_b), "broker-b", 1, "does not take writes");
        cluster.broker(1).set_perm(TOPIC, 6);
        assert!(wait_until(PROMPTLY, || route_queues(&p) == Some(8)));
        assert_eq!(send_key(&p, &on_b).unwrap(), b_queue);
        p.shutdown(PROMPTLY).unwrap();
    });
}

/// The message-hash strategy (no selector) with fault tolerance on: an isolated broker's keys
/// fail instead of moving to the other broker, and go back to their queue when the isolation
/// ends. A failed strict send is not retried elsewhere.
#[test]
fn isolated_broker_fails_its_keys_until_the_isolation_ends() {
    watchdog(PROMPTLY * 3, || {
        let cluster = cluster();
        let p = ProducerConfig::ordered("GID_STRICT_HASH")
            .name_server(cluster.namesrv_addr())
            .routing_strategy(RoutingStrategy::MessageHash)
            .fault_tolerance(true)
            .retries(2)
            .async_retries(2)
            .send_timeout(Duration::from_secs(10))
            .start()
            .unwrap();
        assert!(p.config().strict_order(), "on in the ordered preset");
        let on_b = key_for(6);
        let on_a = key_for(0);
        let send = |key: &str| {
            p.send(Message::new(TOPIC, "hash").with_keys([key]))
                .map(|r| r.queue)
        };
        let b_queue = send(&on_b).unwrap();
        let a_queue = send(&on_a).unwrap();
        assert_eq!((b_queue.broker_name(), b_queue.queue_id()), ("broker-b", 2));
        cluster
            .broker(1)
            .fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
        let a_sends = cluster.broker(0).counters().sends();
        // Retriable code, retries configured: still not retried on broker-a.
        assert!(matches!(send(&on_b), Err(Error::Broker { .. })));
        assert_eq!(cluster.broker(0).counters().sends(), a_sends);
        assert!(p.health().broker("broker-b").unwrap().isolated);
        assert_violation(send(&on_b), "broker-b", 2, "isolated");
        let async_try = p
            .send_async(Message::new(TOPIC, "hash").with_keys([on_b.as_str()]))
            .wait()
            .map(|r| r.queue);
        assert_violation(async_try, "broker-b", 2, "isolated");
        assert_eq!(send(&on_a).unwrap(), a_queue);
        p.advance_routing_clock(Duration::from_secs(120));
        assert_eq!(send(&on_b).unwrap(), b_queue);
        // Keyless messages are not ordered: they go round robin as usual.
        p.send(Message::new(TOPIC, "no key")).unwrap();
        p.shutdown(PROMPTLY).unwrap();
    });
}
