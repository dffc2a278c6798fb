//! Backpressure and shutdown: bounded memory, and every send ends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, ErrorKind, Message, Producer};

use common::{wait_until, PROMPTLY};

#[derive(Default)]
struct Outcomes {
    ok: AtomicUsize,
    timeout: AtomicUsize,
    /// The connection closed on a request timeout (`close_on_request_timeout`, the default)
    /// ends the other sends pending on it.
    connection: AtomicUsize,
    backpressure: AtomicUsize,
    other: AtomicUsize,
}

#[test]
fn backpressure_bounds_in_flight_against_a_black_hole() {
    let broker = MockBroker::start().unwrap();
    let bound = 1_000;
    let p = Producer::builder("GID_BACKPRESSURE")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_millis(100))
        .max_in_flight(bound)
        .start()
        .unwrap();
    // The route lookup shares the 100 ms send timeout: on a loaded machine the first one may
    // time out, so ask again until a deadline.
    assert!(wait_until(PROMPTLY, || p
        .publish_queues("HoleTopic")
        .is_ok()));
    broker.black_hole(true);

    let offered = 100_000;
    let outcomes = Arc::new(Outcomes::default());
    let mut max_seen = 0;
    for i in 0..offered {
        let o = outcomes.clone();
        p.send_with_callback(Message::new("HoleTopic", vec![b'x'; 128]), move |r| {
            let counter = match r {
                Ok(_) => &o.ok,
                Err(Error::Timeout { .. }) => &o.timeout,
                Err(e) if e.kind() == ErrorKind::Connection => &o.connection,
                Err(Error::Backpressure { .. }) => &o.backpressure,
                Err(_) => &o.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        if i % 1_000 == 0 {
            max_seen = max_seen.max(p.in_flight().0);
        }
    }
    let total = |o: &Outcomes| {
        o.ok.load(Ordering::Relaxed)
            + o.timeout.load(Ordering::Relaxed)
            + o.connection.load(Ordering::Relaxed)
            + o.backpressure.load(Ordering::Relaxed)
            + o.other.load(Ordering::Relaxed)
    };
    assert!(wait_until(PROMPTLY, || total(&outcomes) == offered));
    assert!(
        max_seen <= bound,
        "in flight {max_seen} over the bound {bound}"
    );
    assert_eq!(outcomes.ok.load(Ordering::Relaxed), 0);
    assert_eq!(outcomes.other.load(Ordering::Relaxed), 0);
    assert!(
        outcomes.timeout.load(Ordering::Relaxed) + outcomes.connection.load(Ordering::Relaxed)
            >= bound
    );
    // Every send is released once its callback has returned: the last callbacks may have
    // counted their outcome and not returned yet.
    assert!(
        wait_until(PROMPTLY, || p.in_flight() == (0, 0)),
        "still in flight: {:?}",
        p.in_flight()
    );
}

#[test]
fn backpressure_error_is_clear() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_BACKPRESSURE2")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_millis(300))
        .max_in_flight(10)
        .start()
        .unwrap();
    p.publish_queues("HoleTopic").unwrap();
    broker.black_hole(true);
    let handles: Vec<_> = (0..10)
        .map(|_| p.send_async(Message::new("HoleTopic", "x")))
        .collect();
    let started = Instant::now();
    let e = p
        .send_async(Message::new("HoleTopic", "x"))
        .wait()
        .unwrap_err();
    // Either it waited and gave up, or a slot freed when the first sends timed out.
    match e {
        Error::Backpressure { in_flight, .. } => {
            assert_eq!(in_flight, 10);
            assert!(started.elapsed() >= Duration::from_millis(250));
            assert!(e.to_string().contains("10 sends"), "{e}");
        }
        Error::Timeout { .. } => {}
        // The first timeout closed the connection (`close_on_request_timeout`).
        ref e if e.kind() == ErrorKind::Connection => {}
        other => panic!("unexpected {other}"),
    }
    for h in handles {
        assert!(h.wait().unwrap_err().is_timeout());
    }
}

#[test]
fn drop_without_shutdown_unregisters() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_DROP")
        .name_server(broker.namesrv_addr())
        .start()
        .unwrap();
    let clone = p.clone();
    clone.send(Message::new("DropTopic", "x")).unwrap();
    drop(clone);
    // The other clone still works: dropping one clone does not shut the producer down.
    p.send(Message::new("DropTopic", "y")).unwrap();
    assert_eq!(broker.counters().unregisters(), 0);
    drop(p);
    assert!(wait_until(PROMPTLY, || broker.counters().unregisters() >= 1));
}

fn chain(p: Producer, left: usize, done: std::sync::mpsc::Sender<Result<(), Error>>) {
    let next = p.clone();
    p.send_with_callback(Message::new("ChainTopic", "link"), move |r| {
        if let Err(e) = r {
            let _ = done.send(Err(e));
        } else if left == 0 {
            let _ = done.send(Ok(()));
        } else {
            chain(next, left - 1, done);
        }
    });
}

#[test]
fn callbacks_that_send_do_not_wait_for_their_own_room() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_CHAIN")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(30))
        .max_in_flight(1)
        .callback_threads(1)
        .start()
        .unwrap();
    p.publish_queues("ChainTopic").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..2 {
        chain(p.clone(), 20, tx.clone());
    }
    // Meanwhile this thread keeps the producer full: the chains' callbacks find no room, and
    // the room they would wait for is made on the one callback thread they occupy.
    let handles: Vec<_> = (0..200)
        .map(|_| p.send_async(Message::new("ChainTopic", "flood")))
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    for _ in 0..2 {
        rx.recv_timeout(PROMPTLY).unwrap().unwrap();
    }
    assert_eq!(broker.message_count("ChainTopic"), 242);
}
