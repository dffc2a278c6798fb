//! Statistics and health against MockBroker / MockCluster: the counters add up exactly to what
//! the broker saw, isolation shows in the health report, and concurrent snapshots never break
//! the invariants.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_mio::health::ProducerState;
use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::stats::{ProducerStats, SendStats};
use rocketmq_mio::testing::{MockBroker, MockCluster};
use rocketmq_mio::{ErrorKind, Message, Producer};

use common::{wait_until, PROMPTLY};

const SEND: i32 = RequestCode::SEND_MESSAGE_V2;

fn producer(namesrv: String, retries: u32) -> Producer {
    Producer::builder("GID_STATS_TEST")
        .name_server(namesrv)
        .send_timeout(Duration::from_secs(10))
        .retries(retries)
        .async_retries(retries)
        .start()
        .expect("producer starts")
}

/// The invariants every snapshot must satisfy, whatever is in flight.
fn check_invariants(s: &ProducerStats) {
    let check = |name: &str, t: &SendStats| {
        assert!(t.succeeded + t.failed <= t.sent, "{name}: {t:?}");
        assert_eq!(t.failed, t.failed_by_kind.values().sum::<u64>(), "{name}");
        assert_eq!(t.in_flight, t.sent as i64 - (t.succeeded + t.failed) as i64);
        assert!(t.in_flight >= 0, "{name}: {t:?}");
        assert!(t.in_flight_bytes >= 0, "{name}: {t:?}");
        assert!(t.in_flight_bytes as u64 <= t.bytes, "{name}: {t:?}");
        // Latency is recorded before success is counted (oneway sends record none).
        assert!(t.latency.count + t.oneway >= t.succeeded, "{name}: {t:?}");
        let l = &t.latency;
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    };
    check("totals", &s.totals);
    for (name, t) in &s.topics {
        check(name, t);
    }
    for (name, b) in &s.brokers {
        assert!(b.succeeded + b.failed <= b.attempts, "{name}: {b:?}");
        assert!(b.in_flight >= 0, "{name}: {b:?}");
        assert!(b.latency.count >= b.succeeded, "{name}: {b:?}");
    }
}

#[test]
fn counters_add_up_to_what_the_broker_saw() {
    let broker = MockBroker::start().unwrap();
    let topic = "StatsExact";

    // No retries: each injected failure fails one send.
    let p = producer(broker.namesrv_addr(), 0);
    p.publish_queues(topic).unwrap();
    const N: u64 = 40;
    const K: u64 = 7;
    broker.fail_next(SEND, ResponseCode::SYSTEM_BUSY, K as usize);
    let mut failures = 0;
    for i in 0..N {
        let body = format!("m{i:03}"); // 4 bytes each
        if p.send(Message::new(topic, body)).is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, K);
    let s = p.stats();
    check_invariants(&s);
    let t = &s.topics[topic];
    assert_eq!((t.sent, t.succeeded, t.failed), (N, N - K, K));
    assert_eq!(t.failed_of(ErrorKind::Broker), K);
    assert_eq!((t.retried, t.messages, t.bytes), (0, N, 4 * N));
    assert_eq!((t.in_flight, t.in_flight_bytes), (0, 0));
    assert_eq!(t.latency.count, N - K, "one sample per successful send");
    assert_eq!(s.totals, *t, "one topic: the totals are that topic");
    let b = &s.brokers["broker-a"];
    assert_eq!(broker.counters().sends(), N);
    assert_eq!((b.attempts, b.succeeded, b.failed), (N, N - K, K));
    assert_eq!(b.failed_of(ErrorKind::Broker), K);
    assert_eq!(b.latency.count, N - K);
    assert_eq!(broker.message_count(topic) as u64, t.succeeded);
    // Rates: everything happened within the last minute.
    let per_min = s.totals.rates.succeeded.last_60s;
    assert!(per_min > 0.0, "{:?}", s.totals.rates);

    // A batch and oneway sends count too (after the injected failures are used up).
    p.send_batch(vec![Message::new(topic, "b1"), Message::new(topic, "b2")])
        .unwrap();
    for _ in 0..3 {
        p.send_oneway(Message::new(topic, "one")).unwrap();
    }
    assert!(wait_until(PROMPTLY, || broker.message_count(topic) as u64
        == N - K + 2 + 3));
    let t = p.stats().topics[topic].clone();
    assert_eq!((t.sent, t.succeeded, t.oneway), (N + 4, N - K + 4, 3));
    assert_eq!((t.messages, t.bytes), (N + 2 + 3, 4 * N + 4 + 9));
    assert_eq!(t.latency.count, N - K + 1, "oneway sends record no latency");
    p.shutdown(Duration::from_secs(5)).unwrap();

    // With retries, asynchronous: every injected failure is either retried or, after three
    // in a row for one send, fails it. Either way the numbers add up exactly.
    let p = producer(broker.namesrv_addr(), 2);
    let topic = "StatsRetried";
    p.publish_queues(topic).unwrap();
    let before = broker.counters().sends();
    broker.fail_next(SEND, ResponseCode::SYSTEM_BUSY, K as usize);
    let handles: Vec<_> = (0..N)
        .map(|i| p.send_async(Message::new(topic, format!("a{i}"))))
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.wait())
        .filter(Result::is_ok)
        .count() as u64;
    let s = p.stats();
    check_invariants(&s);
    let t = &s.topics[topic];
    let b = &s.brokers["broker-a"];
    assert_eq!((t.sent, t.succeeded, t.in_flight), (N, ok, 0));
    assert_eq!(
        b.failed_of(ErrorKind::Broker),
        K,
        "every injected failure seen once"
    );
    assert_eq!(
        t.retried + t.failed,
        K,
        "each failed attempt was retried or ended its send"
    );
    assert_eq!(b.attempts, N + t.retried);
    assert_eq!(b.retried, t.retried);
    assert_eq!(b.attempts, broker.counters().sends() - before);
    assert_eq!(broker.message_count(topic) as u64, t.succeeded);
    assert_eq!(s.totals.latency.count, t.succeeded);
}

#[test]
fn percentiles_reflect_broker_delays() {
    let broker = MockBroker::start().unwrap();
    let p = producer(broker.namesrv_addr(), 0);
    let topic = "StatsLatency";
    p.publish_queues(topic).unwrap();
    // 10 of 100 sends are held 40 ms by the broker: the 99th percentile and the maximum of
    // both the send and the attempt histograms are at least that (lower bounds only: the
    // machine may be slow, never fast).
    let delay = Duration::from_millis(40);
    for i in 0..100 {
        if i % 10 == 3 {
            broker.delay_next(SEND, delay, 1);
        }
        p.send(Message::new(topic, "x")).unwrap();
    }
    let s = p.stats();
    let (t, b) = (&s.topics[topic], &s.brokers["broker-a"]);
    for l in [&t.latency, &b.latency] {
        assert_eq!(l.count, 100);
        assert!(l.p99 >= delay && l.p999 >= delay && l.max >= delay, "{l:?}");
        assert!(l.mean >= delay / 10, "{l:?}");
    }
    // The JSON carries the same numbers, in microseconds.
    let j = s.to_json();
    assert_eq!(
        j["topics"][topic]["latency_us"]["p99"],
        t.latency.p99.as_micros() as u64
    );
    assert_eq!(j["brokers"]["broker-a"]["latency_us"]["count"], 100);
}

#[test]
fn isolated_broker_shows_in_health_with_its_deadline() {
    let cluster = MockCluster::start(2).unwrap();
    let topic = "StatsIsolation";
    cluster.create_topic(topic, 4);
    let p = producer(cluster.namesrv_addr(), 2);
    p.publish_queues(topic).unwrap();
    let h = p.health();
    assert_eq!(h.state, ProducerState::Running);
    assert_eq!(h.name_servers.len(), 1);
    assert_eq!(h.name_servers[0].reachable, Some(true));
    let route = h
        .routes
        .iter()
        .find(|r| r.topic == topic)
        .expect("route cached");
    assert_eq!(route.queues, 8);
    assert_eq!(route.brokers, ["broker-a", "broker-b"]);
    for b in &h.brokers {
        assert!(!b.isolated && b.available, "{b:?}");
    }

    // Make broker-a answer SYSTEM_BUSY once: the send is retried on broker-b and broker-a is
    // isolated by the fault table.
    let a = cluster.broker(0);
    let mut isolated = false;
    for _ in 0..20 {
        a.fail_next(SEND, ResponseCode::SYSTEM_BUSY, 1);
        let before = a.counters().sends();
        p.send(Message::new(topic, "x")).unwrap();
        if a.counters().sends() > before {
            isolated = true;
            break;
        }
        a.clear_faults();
    }
    assert!(isolated, "no send was routed to broker-a");
    a.clear_faults();

    let h = p.health();
    let ha = h.broker("broker-a").expect("broker-a in the report");
    assert!(ha.isolated && !ha.available, "{ha:?}");
    assert!(ha.isolated_until.is_some());
    // An error response isolates for the duration of a 10 s latency: 10 s.
    assert!(
        ha.isolated_for > Duration::ZERO && ha.isolated_for <= Duration::from_secs(10),
        "{ha:?}"
    );
    assert_eq!(ha.consecutive_failures, 1);
    let err = ha.last_error.as_deref().unwrap_or_default();
    assert!(err.contains("SYSTEM_BUSY"), "{err}");
    assert_eq!(ha.addr.as_deref(), Some(a.broker_addr().as_str()));
    assert!(ha.connection.as_ref().is_some_and(|c| c.is_connected()));
    assert_eq!(ha.in_flight, Some(0));
    let hb = h.broker("broker-b").expect("broker-b in the report");
    assert!(!hb.isolated && hb.available && hb.isolated_for == Duration::ZERO);
    assert_eq!(hb.consecutive_failures, 0);

    let j = h.to_json();
    let ja = j["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "broker-a")
        .unwrap()
        .clone();
    assert_eq!(ja["isolated"], true);
    let ms = ja["isolated_for_ms"].as_u64().unwrap();
    assert!(ms > 0 && ms <= 10_000, "{ja}");
    assert_eq!(ja["connection"]["state"], "connected");

    // Statistics agree: one failed attempt of kind broker, one retried send.
    let s = p.stats();
    assert_eq!(s.brokers["broker-a"].failed_of(ErrorKind::Broker), 1);
    assert_eq!(s.topics[topic].retried, 1);
    assert_eq!(s.topics[topic].failed, 0);

    // Once the isolation is over (the routing clock moved, no sleeping) it is available again.
    p.advance_routing_clock(Duration::from_secs(11));
    let ha = p.health().broker("broker-a").cloned().unwrap();
    assert!(
        !ha.isolated && ha.available && ha.isolated_until.is_none(),
        "{ha:?}"
    );

    // Name server down: a lookup fails and the report says so.
    cluster.stop_namesrv();
    assert!(p.publish_queues("StatsUnknownTopic").is_err());
    let ns = &p.health().name_servers[0];
    assert_eq!(ns.reachable, Some(false), "{ns:?}");
    assert!(ns.consecutive_failures >= 1 && ns.last_error.is_some());

    p.shutdown(Duration::from_secs(5)).unwrap();
    let h = p.health();
    assert_eq!(h.state, ProducerState::Stopped);
    assert_eq!(h.to_json()["state"], "stopped");
}

#[test]
fn snapshots_while_four_threads_send_keep_the_invariants() {
    let broker = MockBroker::start().unwrap();
    let p = producer(broker.namesrv_addr(), 0);
    let topics = ["StatsConcA", "StatsConcB"];
    for t in topics {
        p.publish_queues(t).unwrap();
    }
    let per_thread: u64 = if cfg!(debug_assertions) { 300 } else { 2000 };
    // Some failures too, so `failed` moves while snapshots run.
    broker.fail_next(SEND, ResponseCode::SYSTEM_BUSY, 25);

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let p = p.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last_sent = 0;
            let mut snapshots = 0u64;
            while !done.load(Ordering::Acquire) {
                let s = p.stats();
                check_invariants(&s);
                assert!(s.totals.sent >= last_sent, "sent went backwards");
                last_sent = s.totals.sent;
                let _ = p.health();
                snapshots += 1;
            }
            snapshots
        })
    };
    let senders: Vec<_> = (0..4u64)
        .map(|n| {
            let p = p.clone();
            std::thread::spawn(move || {
                let topic = topics[n as usize % 2];
                let mut handles = Vec::new();
                for i in 0..per_thread {
                    let msg = Message::new(topic, format!("t{n} m{i}"));
                    if n % 2 == 0 {
                        let _ = p.send(msg);
                    } else {
                        handles.push(p.send_async(msg));
                        if handles.len() >= 64 {
                            for h in handles.drain(..) {
                                let _ = h.wait();
                            }
                        }
                    }
                }
                for h in handles {
                    let _ = h.wait();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let snapshots = watcher.join().unwrap();
    assert!(snapshots > 0);

    let s = p.stats();
    check_invariants(&s);
    let total = 4 * per_thread;
    assert_eq!(s.totals.sent, total);
    assert_eq!(s.totals.succeeded + s.totals.failed, total);
    assert_eq!(s.totals.failed_of(ErrorKind::Broker), 25);
    assert_eq!((s.totals.in_flight, s.totals.in_flight_bytes), (0, 0));
    assert_eq!(s.totals.latency.count, s.totals.succeeded);
    let stored: usize = topics.iter().map(|t| broker.message_count(t)).sum();
    assert_eq!(stored as u64, s.totals.succeeded);
    assert_eq!(s.brokers["broker-a"].attempts, total);
    assert_eq!(s.brokers["broker-a"].in_flight, 0);
    let per_topic: u64 = s.topics.values().map(|t| t.sent).sum();
    assert_eq!(per_topic, total);
}

#[test]
fn stats_off_counts_nothing_and_health_still_works() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_STATS_OFF")
        .name_server(broker.namesrv_addr())
        .stats(false)
        .start()
        .unwrap();
    p.send(Message::new("StatsOff", "x")).unwrap();
    p.send_async(Message::new("StatsOff", "y")).wait().unwrap();
    let s = p.stats();
    assert!(!s.enabled);
    assert_eq!(s.totals.sent, 0);
    assert!(s.topics.is_empty() && s.brokers.is_empty());
    assert_eq!(s.to_json()["enabled"], false);
    let h = p.health();
    let b = h.broker("broker-a").unwrap();
    assert_eq!((b.latency, b.in_flight), (None, None));
    assert_eq!(b.attempts, 2, "the fault table still sees attempts");
    assert_eq!(
        h.to_json()["brokers"][0]["latency_us"],
        serde_json::Value::Null
    );
}

#[test]
fn backpressure_waits_are_counted() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_STATS_BP")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .max_in_flight(1)
        .start()
        .unwrap();
    p.publish_queues("StatsBp").unwrap();
    // The first send is held by the broker; the second must wait for its room. Tried a few
    // times in case this thread was descheduled for the whole delay.
    let mut waited = false;
    for _ in 0..5 {
        broker.delay_next(SEND, Duration::from_millis(300), 1);
        let first = p.send_async(Message::new("StatsBp", "1"));
        let second = p.send_async(Message::new("StatsBp", "2"));
        first.wait().unwrap();
        second.wait().unwrap();
        if p.stats().backpressure.waits > 0 {
            waited = true;
            break;
        }
    }
    assert!(waited);
    let s = p.stats();
    assert!(s.backpressure.enabled);
    assert_eq!(s.backpressure.max_in_flight, Some(1));
    assert_eq!((s.backpressure.in_flight, s.backpressure.waiting), (0, 0));
    assert_eq!(s.to_json()["backpressure"]["max_in_flight"], 1);
}

/// The JSON field names are part of the API: this lists them as documented.
#[test]
fn json_field_names_are_stable() {
    let broker = MockBroker::start().unwrap();
    let p = producer(broker.namesrv_addr(), 0);
    p.send(Message::new("StatsJson", "x")).unwrap();
    let s = p.stats().to_json();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&s),
        [
            "backpressure",
            "brokers",
            "client_id",
            "enabled",
            "group",
            "hooks",
            "requests",
            "schema",
            "timestamp_ms",
            "topics",
            "totals",
            "transactions",
            "uptime_ms"
        ]
    );
    assert_eq!(s["schema"], "rocketmq-mio.stats/1");
    assert_eq!(keys(&s["hooks"]), ["panics", "registered"]);
    assert_eq!(
        keys(&s["requests"]),
        [
            "failed",
            "pending",
            "replies_late",
            "replies_matched",
            "replies_unknown",
            "requests",
            "timed_out"
        ]
    );
    assert_eq!(
        keys(&s["totals"]),
        [
            "bytes",
            "failed",
            "failed_by_kind",
            "in_flight",
            "in_flight_bytes",
            "latency_us",
            "messages",
            "oneway",
            "rates",
            "retried",
            "sent",
            "status_not_ok",
            "succeeded"
        ]
    );
    assert_eq!(keys(&s["totals"]), keys(&s["topics"]["StatsJson"]));
    assert_eq!(
        keys(&s["totals"]["failed_by_kind"]),
        [
            "backpressure",
            "broker",
            "config",
            "connection",
            "invalid_message",
            "no_permission",
            "no_route",
            "order_violation",
            "protocol",
            "shutdown",
            "timeout",
            "user"
        ]
    );
    assert_eq!(
        keys(&s["totals"]["latency_us"]),
        ["count", "max", "mean", "p50", "p90", "p99", "p999"]
    );
    assert_eq!(keys(&s["totals"]["rates"]), ["failed", "succeeded"]);
    assert_eq!(keys(&s["totals"]["rates"]["failed"]), ["10s", "1s", "60s"]);
    assert_eq!(
        keys(&s["brokers"]["broker-a"]),
        [
            "attempts",
            "bytes",
            "failed",
            "failed_by_kind",
            "in_flight",
            "latency_us",
            "rates",
            "retried",
            "status_not_ok",
            "succeeded"
        ]
    );
    assert_eq!(
        keys(&s["backpressure"]),
        [
            "enabled",
            "in_flight",
            "in_flight_bytes",
            "max_in_flight",
            "max_in_flight_bytes",
            "waiting",
            "waits"
        ]
    );

    let h = p.health().to_json();
    assert_eq!(
        keys(&h),
        [
            "brokers",
            "client_id",
            "fault_tolerance",
            "group",
            "in_flight",
            "name_servers",
            "routes",
            "schema",
            "state",
            "timestamp_ms",
            "transactions"
        ]
    );
    assert_eq!(h["schema"], "rocketmq-mio.health/1");
    assert_eq!(
        keys(&h["name_servers"][0]),
        [
            "addr",
            "consecutive_failures",
            "last_answer_ms_ago",
            "last_error",
            "last_failure_ms_ago",
            "reachable"
        ]
    );
    assert_eq!(
        keys(&h["routes"][0]),
        [
            "age_ms",
            "brokers",
            "from_default",
            "previous_queues",
            "queue_count_changes",
            "queues",
            "strict_order_queues",
            "topic"
        ]
    );
    assert_eq!(
        keys(&h["brokers"][0]),
        [
            "addr",
            "attempts",
            "available",
            "connection",
            "consecutive_failures",
            "in_flight",
            "isolated",
            "isolated_for_ms",
            "last_error",
            "last_latency_us",
            "latency_ewma_us",
            "latency_us",
            "name",
            "reachable",
            "total_failures"
        ]
    );
    assert_eq!(keys(&h["brokers"][0]["connection"]), ["reason", "state"]);
    assert_eq!(
        keys(&h["in_flight"]),
        [
            "async",
            "async_bytes",
            "max_async",
            "max_async_bytes",
            "sync",
            "sync_bytes",
            "waiting"
        ]
    );
}
