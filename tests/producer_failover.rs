//! Retries, fault tolerance, broker loss and route changes, against a two-broker MockCluster.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::testing::MockCluster;
use rocketmq_mio::{Error, Message, Producer};

use common::{wait_until, PROMPTLY};

fn producer(cluster: &MockCluster, refresh: Duration) -> Producer {
    Producer::builder("GID_FAILOVER_TEST")
        .name_server(cluster.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .route_refresh_interval(refresh)
        .start()
        .expect("producer starts")
}

#[test]
fn busy_broker_retry_lands_elsewhere_and_is_avoided_until_isolation_ends() {
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("BusyTopic", 4);
    let p = producer(&cluster, Duration::from_secs(30));
    // Warm the route, then make broker-a answer SYSTEM_BUSY once.
    p.publish_queues("BusyTopic").unwrap();
    let a = cluster.broker(0);
    let b = cluster.broker(1);
    let mut landed_on_b_after_busy = false;
    for _ in 0..20 {
        a.fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
        let before_a = a.counters().sends();
        let r = p.send(Message::new("BusyTopic", "x")).unwrap();
        if a.counters().sends() > before_a {
            // It went to A first, got SYSTEM_BUSY, and the retry landed on B.
            assert_eq!(r.queue.broker_name(), b.broker_name());
            landed_on_b_after_busy = true;
            break;
        }
        // It went to B straight away (A isolated or round robin): the armed failure stays.
        a.clear_faults();
    }
    assert!(landed_on_b_after_busy, "no send was routed to broker-a");
    a.clear_faults();

    // Broker A is isolated now (error response): new sends avoid it.
    let before_a = a.message_count("BusyTopic");
    for _ in 0..20 {
        let r = p.send(Message::new("BusyTopic", "avoid")).unwrap();
        assert_eq!(r.queue.broker_name(), b.broker_name());
    }
    assert_eq!(a.message_count("BusyTopic"), before_a);

    // Once its isolation ends (time moved forward, no sleeping), A takes sends again.
    p.advance_routing_clock(Duration::from_secs(60));
    let mut a_again = false;
    for _ in 0..40 {
        if p.send(Message::new("BusyTopic", "back"))
            .unwrap()
            .queue
            .broker_name()
            == a.broker_name()
        {
            a_again = true;
            break;
        }
    }
    assert!(a_again, "broker-a never chosen after its isolation ended");
}

#[test]
fn broker_killed_with_async_sends_in_flight() {
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("KillTopic", 4);
    let p = producer(&cluster, Duration::from_secs(30));
    p.publish_queues("KillTopic").unwrap();
    let a = cluster.broker(0);
    a.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(20));

    let n = 2_000;
    let ok = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..n {
        let msg = Message::new("KillTopic", format!("m{i}"));
        if i % 2 == 0 {
            handles.push(p.send_async(msg));
        } else {
            let tx = tx.clone();
            p.send_with_callback(msg, move |r| {
                let _ = tx.send(r);
            });
        }
        if i == n / 4 {
            a.stop();
        }
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.wait());
    }
    for _ in 0..n / 2 {
        results.push(rx.recv_timeout(PROMPTLY).expect("every callback runs"));
    }
    assert_eq!(results.len(), n);
    let mut stored_ids = std::collections::HashSet::new();
    for broker in [cluster.broker(0), cluster.broker(1)] {
        for m in broker.messages("KillTopic") {
            stored_ids.insert(m.property("UNIQ_KEY").unwrap().to_string());
        }
    }
    for r in results.iter().flatten() {
        {
            ok.fetch_add(1, Ordering::Relaxed);
            assert!(
                stored_ids.contains(r.msg_id.as_str()),
                "reported success not stored: {r:?}"
            );
        }
    }
    assert!(ok.load(Ordering::Relaxed) > 0);
}

#[test]
fn cached_route_survives_name_server_loss_and_refresh_sees_changes() {
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("RouteTopic", 4);
    let p = producer(&cluster, Duration::from_millis(100));
    p.send(Message::new("RouteTopic", "first")).unwrap();
    let brokers_in_route = |p: &Producer| {
        let mut names: Vec<_> = p
            .publish_queues("RouteTopic")
            .unwrap()
            .iter()
            .map(|q| q.broker_name().to_string())
            .collect();
        names.dedup();
        names
    };
    assert_eq!(brokers_in_route(&p).len(), 2);

    // Broker B leaves the route: the refresh picks it up.
    cluster.remove_broker_from_routes(1);
    assert!(wait_until(PROMPTLY, || brokers_in_route(&p).len() == 1));
    for _ in 0..10 {
        let r = p.send(Message::new("RouteTopic", "after change")).unwrap();
        assert_eq!(r.queue.broker_name(), cluster.broker(0).broker_name());
    }

    // The name server goes away: sends keep working on the cached route.
    cluster.stop_namesrv();
    for _ in 0..10 {
        p.send(Message::new("RouteTopic", "no namesrv")).unwrap();
    }
    // An unknown topic has no route now.
    assert!(matches!(
        p.send(Message::new("UnknownTopic", "x")),
        Err(Error::NoRoute { .. })
    ));
}
