//! `Producer::flush`: returns once every send accepted before it has ended, without stopping
//! the producer; pushes open auto-batches out at once; reports what is left at its deadline.
//! Every wait runs under a watchdog so a regression fails in bounded time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer, SendStatus};

use common::{wait_until, PROMPTLY};

/// Runs `f` on a thread; fails the test if it does not return within `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("watchdog: the call did not return in time")
}

fn producer(broker: &MockBroker) -> Producer {
    Producer::builder("GID_FLUSH")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(30))
        .start()
        .expect("producer starts")
}

/// With a slow broker, flush waits for every handle and every callback, and the producer
/// keeps working afterwards.
#[test]
fn flush_waits_for_slow_async_sends_and_callbacks() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    p.send(Message::new("FlushTopic", "warm")).unwrap(); // route cached
    broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(300));
    let handles: Vec<_> = (0..20)
        .map(|i| p.send_async(Message::new("FlushTopic", format!("h{i}"))))
        .collect();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let ran = ran.clone();
        p.send_with_callback(Message::new("FlushTopic", format!("c{i}")), move |r| {
            assert!(r.is_ok());
            // Slow user code: flush waits for it to return.
            std::thread::sleep(Duration::from_millis(20));
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    let p2 = p.clone();
    let left = watchdog(PROMPTLY * 2, move || p2.flush(PROMPTLY));
    assert_eq!(left, 0);
    assert!(handles.iter().all(|h| h.is_done()), "a handle is not done");
    assert_eq!(ran.load(Ordering::SeqCst), 20, "a callback has not run");
    broker.clear_faults();
    // Not stopped.
    assert!(!p.is_shut_down());
    assert_eq!(
        p.send(Message::new("FlushTopic", "after")).unwrap().status,
        SendStatus::SendOk
    );
    for h in handles {
        assert_eq!(h.wait().unwrap().status, SendStatus::SendOk);
    }
    assert_eq!(broker.message_count("FlushTopic"), 42);
    p.shutdown(PROMPTLY).unwrap();
}

/// A broker that never answers: flush returns at its deadline with the count still in flight,
/// and the sends go on (they end by their own timeout, or at shutdown).
#[test]
fn flush_deadline_returns_what_is_in_flight() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    p.send(Message::new("FlushHole", "warm")).unwrap();
    broker.black_hole(true);
    let handles: Vec<_> = (0..7)
        .map(|i| p.send_async(Message::new("FlushHole", format!("m{i}"))))
        .collect();
    let p2 = p.clone();
    let left = watchdog(PROMPTLY, move || p2.flush(Duration::from_millis(100)));
    assert_eq!(left, 7);
    assert!(handles.iter().all(|h| !h.is_done()));
    broker.black_hole(false);
    broker.close_connections(); // the pending sends fail (or retry) now
    let p2 = p.clone();
    assert_eq!(watchdog(PROMPTLY * 3, move || p2.flush(PROMPTLY * 2)), 0);
    assert!(handles.iter().all(|h| h.is_done()));
    p.shutdown(PROMPTLY).unwrap();
}

/// A synchronous send blocked on another thread is waited for too.
#[test]
fn flush_waits_for_a_sync_send_on_another_thread() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    p.send(Message::new("FlushSync", "warm")).unwrap();
    broker.black_hole(true);
    let p2 = p.clone();
    let sender = std::thread::spawn(move || p2.send(Message::new("FlushSync", "blocked")));
    assert!(wait_until(PROMPTLY, || broker
        .counters()
        .received(RequestCode::SEND_MESSAGE_V2)
        == 2));
    let p2 = p.clone();
    assert_eq!(
        watchdog(PROMPTLY, move || p2.flush(Duration::from_millis(100))),
        1
    );
    broker.black_hole(false);
    broker.close_connections();
    let p2 = p.clone();
    assert_eq!(watchdog(PROMPTLY * 3, move || p2.flush(PROMPTLY * 2)), 0);
    let _ = sender.join().unwrap(); // it ended: retried elsewhere or failed
    p.shutdown(PROMPTLY).unwrap();
}

/// Auto-batching with a 30 s delay: flush sends the open batches at once (a flush whose own
/// timeout is shorter than the delay still sees every send end).
#[test]
fn flush_sends_open_auto_batches_at_once() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_FLUSH_BATCH")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(30))
        .auto_batch(true)
        .batch_max_delay(Duration::from_secs(30))
        .start()
        .unwrap();
    p.send_oneway(Message::new("FlushBatch", "warm")).unwrap(); // route cached
    let handles: Vec<_> = (0..5)
        .map(|i| p.send_async(Message::new("FlushBatch", format!("m{i}"))))
        .collect();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..5 {
        let ran = ran.clone();
        p.send_with_callback(
            Message::new("FlushBatch", format!("c{i}")).with_tags("cb"),
            move |r| {
                assert!(r.is_ok());
                ran.fetch_add(1, Ordering::SeqCst);
            },
        );
    }
    assert!(handles.iter().all(|h| !h.is_done()));
    let p2 = p.clone();
    let left = watchdog(Duration::from_secs(25), move || {
        p2.flush(Duration::from_secs(20))
    });
    assert_eq!(left, 0, "open batches did not leave at flush");
    assert!(handles.iter().all(|h| h.is_done()));
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(
        broker.counters().received(RequestCode::SEND_BATCH_MESSAGE),
        2
    );
    assert!(wait_until(PROMPTLY, || broker.message_count("FlushBatch") == 11));
    for h in handles {
        assert_eq!(h.wait().unwrap().status, SendStatus::SendOk);
    }
    p.shutdown(PROMPTLY).unwrap();
}

/// Nothing in flight: flush returns 0 at once, any number of times.
#[test]
fn flush_with_nothing_in_flight() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker);
    for _ in 0..3 {
        let p2 = p.clone();
        assert_eq!(watchdog(PROMPTLY, move || p2.flush(PROMPTLY)), 0);
    }
    p.shutdown(PROMPTLY).unwrap();
}
