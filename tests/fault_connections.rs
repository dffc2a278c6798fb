//! Connections to peers that misbehave: a broker that stops answering (its connection is
//! closed on a request timeout, and what was queued for it never goes out), a connection whose
//! output hits its cap, keepalive on the socket, and a name server route with absurd queue
//! counts. (Re-resolving host names on reconnect is tested in `src/remoting/resolve.rs`, with a
//! resolver the tests control.)
//!
//! Everything that could hang runs under a watchdog: a regression fails in bounded time.

mod common;
mod remoting_peer;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{wait_until, PROMPTLY};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, Message, Producer};

/// Runs `f` on its own thread; fails the test if it does not finish within `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("watchdog: the test body panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Item 12: a route with absurd queue counts is refused, and the last good route is kept.
// ---------------------------------------------------------------------------------------------

#[test]
fn route_with_2_pow_31_write_queues_is_refused_and_the_last_good_one_kept() {
    watchdog(Duration::from_secs(60), || {
        let broker = MockBroker::builder().topic("Huge", 4).start().unwrap();
        let producer = Producer::builder("GID_HUGE_ROUTE")
            .name_server(broker.namesrv_addr())
            .route_refresh_interval(Duration::from_millis(20))
            .start()
            .unwrap();
        let r = producer.send(Message::new("Huge", "before")).unwrap();
        assert!(r.queue.queue_id() < 4);

        // The name server now says 2^31-1 write queues (a client that trusts it aborts).
        broker.set_read_write_queues("Huge", 4, i32::MAX);
        let seen = broker.counters().route_requests();
        assert!(
            wait_until(PROMPTLY, || broker.counters().route_requests() >= seen + 3),
            "the route is refreshed"
        );
        // The last good route stays: sends go on to the 4 queues.
        let queues = producer.publish_queues("Huge").unwrap();
        assert_eq!(queues.len(), 4);
        for _ in 0..8 {
            let r = producer.send(Message::new("Huge", "after")).unwrap();
            assert!(r.queue.queue_id() < 4);
        }

        // A producer with no good route to fall back on gets a clear error.
        let fresh = Producer::builder("GID_HUGE_ROUTE_2")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(5))
            .start()
            .unwrap();
        let err = fresh.send(Message::new("Huge", "x")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NoRoute { .. }), "{err:?}");
        assert!(text.contains("writeQueueNums"), "{text}");
        assert!(text.contains("2147483647"), "{text}");
        assert!(text.contains("65536"), "{text}");
        fresh.shutdown(Duration::from_secs(5)).unwrap();
        producer.shutdown(Duration::from_secs(5)).unwrap();
    });
}
