//! Issue 12, items 1, 13 and 14: nothing hangs, nothing is lost.
//!
//! - Shutdown (and dropping the last clone) of an auto-batching producer under load returns:
//!   the deadlock between the accumulator's close and its flush thread is a race, so each
//!   test loops many rounds, every round under a watchdog.
//! - `shutdown(timeout)` returns within its timeout plus a small margin whatever the brokers
//!   and name server do, and no transaction listener code starts after it returned.
//! - A synchronous send through the accumulator spends one send timeout and `retries`.
//!
//! Everything that could hang runs under [`watchdog`], so a regression fails in bounded time.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::testing::{MockBroker, MockCluster};
use rocketmq_mio::{
    Error, ListenerResult, LocalTransactionState, Message, MessageExt, Producer, SendHandle,
    TransactionListener, TransactionProducer,
};

use common::{thread_names, wait_until, PROMPTLY};

/// How long a step that must not hang may take before the test fails (a loaded 2-core machine
/// is slow, a hang is forever).
const WATCHDOG: Duration = Duration::from_secs(30);

/// What `shutdown(timeout)` may take beyond `timeout` on a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);

/// Runs `f` on its own thread; panics if it has not returned within `limit`.
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

// ---------------------------------------------------------------------------------------------
// Item 1: shutdown and drop with auto-batching under load.

const ROUNDS: usize = 60;

fn batching_producer(broker: &MockBroker, group: &str) -> Producer {
    Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(20))
        .auto_batch(true)
        .batch_max_delay(Duration::from_millis(1))
        .batch_max_bytes(2048)
        .start()
        .expect("producer starts")
}

/// Three threads sending `send_async` steadily (batches fill and expire every few ms) until
/// `stop`, each returning its handles; `sent` counts what they handed over.
fn steady_senders(
    p: &Producer,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicUsize>,
) -> Vec<JoinHandle<Vec<SendHandle>>> {
    (0..3)
        .map(|t| {
            let p = p.clone();
            let stop = stop.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) && i < 20_000 {
                    let tag = ["a", "b", "c"][i % 3];
                    let msg = Message::new("HangBatch", vec![b'x'; 100 + 50 * t]).with_tags(tag);
                    handles.push(p.send_async(msg));
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                handles
            })
        })
        .collect()
}

/// Every handle ends: sent, or failed with `Shutdown` (never anything else, never a hang).
fn all_end(what: &str, handles: Vec<SendHandle>) {
    let what = what.to_string();
    watchdog(&what.clone(), WATCHDOG, move || {
        for h in handles {
            match h.wait() {
                Ok(_) => {}
                Err(e) if e.is_shutdown() => {}
                Err(e) => panic!("{what}: unexpected {e}"),
            }
        }
    });
}

#[test]
fn shutdown_with_auto_batching_under_load_returns() {
    let broker = MockBroker::builder().keep_messages(false).start().unwrap();
    for round in 0..ROUNDS {
        let p = batching_producer(&broker, "GID_HANG_SHUTDOWN");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let senders = steady_senders(&p, &stop, &sent);
        let start = sent.load(Ordering::Relaxed);
        assert!(wait_until(PROMPTLY, || sent.load(Ordering::Relaxed) >= start + 300));
        let q = p.clone();
        let r = watchdog(&format!("shutdown, round {round}"), WATCHDOG, move || {
            q.shutdown(Duration::from_secs(5))
        });
        stop.store(true, Ordering::Relaxed);
        assert!(r.is_ok(), "round {round}: {r:?}");
        for s in senders {
            let handles = watchdog("a sender", WATCHDOG, move || s.join().unwrap());
            all_end(&format!("handles of round {round}"), handles);
        }
    }
}

#[test]
fn drop_of_the_last_clone_with_auto_batching_under_load_returns() {
    let broker = MockBroker::builder().keep_messages(false).start().unwrap();
    for round in 0..ROUNDS {
        let p = batching_producer(&broker, "GID_HANG_DROP");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        // The senders hold the other clones; the last one dropped is a sender's or ours.
        let senders = steady_senders(&p, &stop, &sent);
        assert!(wait_until(PROMPTLY, || sent.load(Ordering::Relaxed) >= 300));
        let dropper = watchdog("a dropper thread", WATCHDOG, move || {
            std::thread::spawn(move || drop(p))
        });
        stop.store(true, Ordering::Relaxed);
        watchdog(&format!("drop, round {round}"), WATCHDOG, move || {
            dropper.join().unwrap();
            for s in senders {
                // Each sender drops its clone as it ends.
                let handles = s.join().unwrap();
                for h in handles {
                    match h.wait() {
                        Ok(_) => {}
                        Err(e) if e.is_shutdown() => {}
                        Err(e) => panic!("round {round}: unexpected {e}"),
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Item 13: one deadline for the whole shutdown.

/// A fault the cluster plays while the producer shuts down.
struct Case {
    name: &'static str,
    /// Sets the fault up (after the producer has routes and heartbeated).
    setup: fn(&MockCluster, &Producer),
}

/// A cluster of two brokers holding `HangTopic`, and a producer that sent to both (so both
/// are registered and get an unregister at shutdown).
fn cluster_and_producer(group: &str, route_refresh: Duration) -> (MockCluster, Producer) {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("HangTopic", 2)
        .start()
        .unwrap();
    let p = Producer::builder(group)
        .name_server(cluster.namesrv_addr())
        .send_timeout(Duration::from_secs(30))
        .client_api_timeout(Duration::from_secs(30))
        .route_refresh_interval(route_refresh)
        .start()
        .unwrap();
    for i in 0..4 {
        p.send(Message::new("HangTopic", format!("warm {i}")))
            .unwrap();
    }
    assert!(wait_until(PROMPTLY, || cluster
        .brokers()
        .iter()
        .all(|b| b.counters().heartbeats() > 0)));
    (cluster, p)
}

fn never_answer_unregister(cluster: &MockCluster, _: &Producer) {
    for b in cluster.brokers() {
        b.set_delay(RequestCode::UNREGISTER_CLIENT, Duration::from_secs(3600));
    }
}

fn black_hole_brokers_with_sends_in_flight(cluster: &MockCluster, p: &Producer) {
    for b in cluster.brokers() {
        b.black_hole(true);
    }
    for i in 0..20 {
        // Ends with Shutdown (checked by Drop of the handle's completer); not waited for here.
        drop(p.send_async(Message::new("HangTopic", format!("lost {i}"))));
    }
    let q = p.clone();
    std::thread::spawn(move || {
        let r = q.send(Message::new("HangTopic", "blocked sync"));
        assert!(r.is_err(), "a black hole answered: {r:?}");
    });
}

fn black_hole_name_server_during_route_refresh(cluster: &MockCluster, _: &Producer) {
    cluster.namesrv().black_hole(true);
    for b in cluster.brokers() {
        b.set_delay(RequestCode::UNREGISTER_CLIENT, Duration::from_secs(3600));
    }
    // The service thread refreshes every 50 ms: it is soon stuck in a route lookup.
    let seen = cluster
        .namesrv()
        .received(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    assert!(wait_until(PROMPTLY, || cluster
        .namesrv()
        .received(RequestCode::GET_ROUTEINFO_BY_TOPIC)
        > seen));
}

#[test]
fn shutdown_returns_within_its_timeout_whatever_the_brokers_do() {
    let cases = [
        Case {
            name: "two brokers never answer UNREGISTER_CLIENT",
            setup: never_answer_unregister,
        },
        Case {
            name: "two black-holed brokers, async and sync sends in flight",
            setup: black_hole_brokers_with_sends_in_flight,
        },
        Case {
            name: "the name server never answers a route refresh under way",
            setup: black_hole_name_server_during_route_refresh,
        },
    ];
    let timeout = Duration::from_secs(2);
    let mut failed = Vec::new();
    for case in cases {
        let (cluster, p) = cluster_and_producer("GID_HANG_DEADLINE", Duration::from_millis(50));
        (case.setup)(&cluster, &p);
        let q = p.clone();
        let started = Instant::now();
        let r = watchdog(case.name, WATCHDOG, move || q.shutdown(timeout));
        let took = started.elapsed();
        eprintln!("{}: shutdown({timeout:?}) took {took:?}", case.name);
        assert!(r.is_ok(), "{}: {r:?}", case.name);
        if took > timeout + MARGIN {
            failed.push(format!(
                "{}: shutdown({timeout:?}) took {took:?}",
                case.name
            ));
        }
        // The unregisters went out, to both brokers, at the same time.
        for b in cluster.brokers() {
            assert!(
                wait_until(PROMPTLY, || b.counters().unregisters() > 0
                    || b.counters().received(RequestCode::UNREGISTER_CLIENT) > 0),
                "{}: {} got no unregister",
                case.name,
                b.broker_name()
            );
        }
        // Sends after shutdown fail at once.
        assert!(p
            .send(Message::new("HangTopic", "late"))
            .unwrap_err()
            .is_shutdown());
        drop(p);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

// ---------------------------------------------------------------------------------------------
// Item 13: transaction check-back threads are stopped before shutdown returns.

/// Counts check-backs that started; each blocks until `open` is set.
struct BlockingChecks {
    started: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
}

impl TransactionListener for BlockingChecks {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::Unknown)
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        self.started.fetch_add(1, Ordering::SeqCst);
        // Not a test's sleep: a listener stuck in user code until the test lets it go.
        while !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(LocalTransactionState::CommitMessage)
    }
}

fn live_check_threads() -> usize {
    thread_names()
        .iter()
        // `comm` keeps 15 bytes of the name.
        .filter(|n| n.starts_with("rocketmq-tx-che"))
        .count()
}

#[test]
fn shutdown_stops_check_backs_blocked_in_the_listener() {
    let broker = MockBroker::start().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicBool::new(false));
    let tp = TransactionProducer::builder("GID_HANG_TX")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .transaction_check_threads(1)
        .transaction_check_queue(1)
        .listener(BlockingChecks {
            started: started.clone(),
            open: open.clone(),
        })
        .start()
        .unwrap();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            tp.send_message_in_transaction(Message::new("HangTx", format!("m{i}")), &())
                .unwrap()
                .transaction_id
        })
        .collect();
    // The one check thread blocks in the first check; of the other two, one waits in its
    // queue (of one) and one overflows: then the queue is known to hold a check.
    assert!(wait_until(PROMPTLY, || broker.check_transaction(&ids[0]) > 0));
    assert!(wait_until(PROMPTLY, || started.load(Ordering::SeqCst) == 1));
    for id in &ids[1..] {
        assert!(wait_until(PROMPTLY, || broker.check_transaction(id) > 0));
    }
    assert!(wait_until(PROMPTLY, || tp
        .transaction_stats()
        .check_overflow
        == 1));

    let timeout = Duration::from_secs(1);
    let began = Instant::now();
    let r = watchdog("transaction shutdown", WATCHDOG, move || {
        tp.shutdown(timeout)
    });
    let took = began.elapsed();
    eprintln!("transaction shutdown({timeout:?}) took {took:?}: {r:?}");
    let at_return = started.load(Ordering::SeqCst);
    assert!(
        took <= timeout + MARGIN,
        "shutdown({timeout:?}) took {took:?}"
    );
    assert_eq!(at_return, 1);

    // The listener returns; the queued checks must not start any more.
    open.store(true, Ordering::SeqCst);
    assert!(wait_until(PROMPTLY, || live_check_threads() == 0));
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "listener code started after shutdown returned"
    );
    // Shutdown said a check thread was still in listener code.
    match &r {
        Err(Error::User(why)) => assert!(why.contains("1 transaction check"), "{why}"),
        other => panic!("expected an error naming the stuck check thread, got {other:?}"),
    }
    // The broker resolves the two by checking back with another producer.
    assert_eq!(broker.message_count("HangTx"), 0);
}

// ---------------------------------------------------------------------------------------------
// Item 14: a synchronous send through the accumulator has one budget and `retries`.

fn sends_seen(b: &MockBroker) -> u64 {
    let c = b.counters();
    c.received(RequestCode::SEND_MESSAGE)
        + c.received(RequestCode::SEND_MESSAGE_V2)
        + c.received(RequestCode::SEND_BATCH_MESSAGE)
}

#[test]
fn sync_send_with_auto_batch_spends_one_send_timeout() {
    let timeout = Duration::from_secs(2);
    // (what, batch delay, memory bound held by a batch in flight)
    let cases = [
        (
            "a lone send, batch delay close to the timeout",
            Duration::from_millis(1600),
            false,
        ),
        (
            "a send that waits for memory held by a batch in flight",
            Duration::from_millis(1),
            true,
        ),
    ];
    let mut failed = Vec::new();
    for (what, delay, memory) in cases {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_HANG_SYNC_BUDGET")
            .name_server(broker.namesrv_addr())
            .send_timeout(timeout)
            .auto_batch(true)
            .batch_max_delay(delay)
            .batch_max_bytes(400)
            .batch_total_max_bytes(400)
            .start()
            .unwrap();
        broker.create_topic("HangSync", 4);
        p.publish_queues("HangSync").unwrap();
        for code in [
            RequestCode::SEND_MESSAGE,
            RequestCode::SEND_MESSAGE_V2,
            RequestCode::SEND_BATCH_MESSAGE,
        ] {
            broker.set_delay(code, Duration::from_secs(3600));
        }
        if memory {
            // A batch of its own that fills the bound and is never answered.
            let filler = p.send_async(Message::new("HangSync", vec![b'f'; 300]));
            assert!(wait_until(PROMPTLY, || sends_seen(&broker) == 1));
            std::mem::forget(filler);
        }
        let q = p.clone();
        let began = Instant::now();
        let r = watchdog(what, WATCHDOG, move || {
            q.send(Message::new("HangSync", vec![b's'; 100]))
        });
        let took = began.elapsed();
        eprintln!("{what}: send with timeout {timeout:?} took {took:?}");
        assert!(
            r.is_err(),
            "{what}: a broker that never answers answered: {r:?}"
        );
        if took > timeout + MARGIN {
            failed.push(format!(
                "{what}: send with timeout {timeout:?} took {took:?}"
            ));
        }
        drop(p);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn sync_send_with_auto_batch_uses_retries_not_async_retries() {
    // (retries, async retries): the attempts the broker sees are 1 + retries.
    let mut failed = Vec::new();
    for (retries, async_retries) in [(3u32, 0u32), (0, 2), (1, 1)] {
        let broker = MockBroker::start().unwrap();
        let p = Producer::builder("GID_HANG_SYNC_RETRIES")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(20))
            .retries(retries)
            .async_retries(async_retries)
            .auto_batch(true)
            .batch_max_delay(Duration::from_millis(1))
            .start()
            .unwrap();
        broker.create_topic("HangRetry", 4);
        p.publish_queues("HangRetry").unwrap();
        for code in [
            RequestCode::SEND_MESSAGE,
            RequestCode::SEND_MESSAGE_V2,
            RequestCode::SEND_BATCH_MESSAGE,
        ] {
            broker.fail_next(code, ResponseCode::SYSTEM_ERROR, 100);
        }
        let q = p.clone();
        let r = watchdog("a failing sync send", WATCHDOG, move || {
            q.send(Message::new("HangRetry", "again and again"))
        });
        assert!(r.is_err(), "{r:?}");
        let seen = sends_seen(&broker);
        if seen != 1 + u64::from(retries) {
            failed.push(format!(
                "retries {retries}, async retries {async_retries}: {seen} attempts"
            ));
        }
        drop(p);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
