//! Callbacks never hold up the library (issue 12, items 2, 3 and 8): a callback that blocks on
//! a send always gets its result, user callbacks never run on an I/O thread, and finished
//! callbacks that have not run yet still count against backpressure.
//!
//! Everything that could hang runs under a watchdog (a thread and `recv_timeout`), so a
//! regression fails in bounded time instead of hanging CI.

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{
    Error, ListenerResult, LocalTransactionState, Message, MessageExt, Producer, Result,
    SendResult, TransactionListener, TransactionProducer,
};

use common::{wait_until, PROMPTLY};

/// Runs `f` on its own thread; panics if it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("a watchdog thread");
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?} (hung)"))
}

/// Collects `n` values from `rx`, each within the deadline.
fn collect<T>(rx: &mpsc::Receiver<T>, n: usize, what: &str) -> Vec<T> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(PROMPTLY)
                .unwrap_or_else(|_| panic!("{what}: only {i} of {n} finished within {PROMPTLY:?}"))
        })
        .collect()
}

fn builder(broker: &MockBroker, group: &str) -> rocketmq_mio::ProducerConfigBuilder {
    Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
}

fn shutdown_within(p: Producer, timeout: Duration) {
    within(PROMPTLY, "shutdown", move || p.shutdown(timeout)).expect("shutdown");
}

/// The scenario: eight callbacks, each blocked on `send_async(..).wait()` to a topic
/// whose route is not cached yet. Every one gets its result, then shutdown returns.
fn eight_callbacks_wait_on_uncached_sends(auto_batch: bool) {
    let broker = MockBroker::start().unwrap();
    let p = builder(&broker, "GID_HANG_8")
        .auto_batch(auto_batch)
        .batch_max_delay(Duration::from_millis(5))
        .start()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..8 {
        let inner = p.clone();
        let tx = tx.clone();
        // One topic each: with auto-batching, eight batches (eight results at once).
        p.send_with_callback(Message::new(format!("HangOuter{i}"), "outer"), move |r| {
            let outer = r.map(|_| ());
            let msg = Message::new(format!("HangInner{i}"), format!("inner {i}"));
            let waited = inner
                .send_async(msg)
                .wait()
                .map(|r| r.queue.topic().to_string());
            let _ = tx.send((i, outer, waited));
        });
    }
    for (i, outer, inner) in collect(&rx, 8, "callbacks waiting on a send") {
        outer.unwrap_or_else(|e| panic!("outer send {i}: {e}"));
        assert_eq!(inner.unwrap(), format!("HangInner{i}"));
    }
    for i in 0..8 {
        assert_eq!(broker.message_count(&format!("HangInner{i}")), 1);
    }
    shutdown_within(p, Duration::from_secs(5));
}

#[test]
fn eight_callbacks_waiting_on_uncached_sends_finish() {
    eight_callbacks_wait_on_uncached_sends(false);
}

#[test]
fn eight_callbacks_waiting_on_uncached_sends_finish_with_auto_batch() {
    eight_callbacks_wait_on_uncached_sends(true);
}

/// One callback thread, blocked in a synchronous send (to an uncached topic): it gets its
/// result.
fn callback_waits_on_sync_send(auto_batch: bool) {
    let broker = MockBroker::start().unwrap();
    let p = builder(&broker, "GID_HANG_SYNC")
        .callback_threads(1)
        .auto_batch(auto_batch)
        .batch_max_delay(Duration::from_millis(5))
        .start()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let inner = p.clone();
        let tx = tx.clone();
        p.send_with_callback(Message::new("SyncOuter", "outer"), move |_| {
            let r = inner.send(Message::new(format!("SyncInner{i}"), "inner"));
            let _ = tx.send(r.map(|r| r.queue.topic().to_string()));
        });
    }
    let mut topics: Vec<String> = collect(&rx, 3, "callbacks blocked in a sync send")
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    topics.sort();
    assert_eq!(topics, ["SyncInner0", "SyncInner1", "SyncInner2"]);
    shutdown_within(p, Duration::from_secs(5));
}

#[test]
fn callback_blocking_on_a_sync_send_gets_its_result() {
    callback_waits_on_sync_send(false);
}

#[test]
fn callback_blocking_on_a_sync_send_gets_its_result_with_auto_batch() {
    callback_waits_on_sync_send(true);
}

/// One callback thread, blocked on a handle whose send fails on the I/O thread (the
/// connection closes under it): the failure reaches the handle without a callback thread.
#[test]
fn callback_blocking_on_a_failing_send_gets_the_error() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = builder(&broker, "GID_HANG_FAIL")
        .callback_threads(1)
        .async_retries(0)
        .start()
        .unwrap();
    p.send(Message::new("FailInner", "warm")).unwrap();
    let (open, gate) = mpsc::channel::<()>();
    let open = Gate(Some(open));
    let (tx, rx) = mpsc::channel();
    let inner = p.clone();
    p.send_with_callback(Message::new("FailInner", "outer"), move |r| {
        r.unwrap();
        let _ = gate.recv();
        let _ = tx.send(inner.send_async(Message::new("FailInner", "inner")).wait());
    });
    assert!(wait_until(PROMPTLY, || broker.message_count("FailInner") == 2));
    broker.close_next(RequestCode::SEND_MESSAGE_V2);
    drop(open);
    let r = rx
        .recv_timeout(PROMPTLY)
        .expect("the blocked callback gets its result");
    let e = r.expect_err("the connection closed under the send");
    assert!(
        matches!(e, Error::ConnectionClosed { .. } | Error::Io { .. }),
        "{e:?}"
    );
    shutdown_within(p, Duration::from_secs(5));
}

struct Commit;

impl TransactionListener for Commit {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

/// One callback thread, blocked on a transactional send (the asynchronous one, then the
/// synchronous one): both finish.
#[test]
fn callback_blocking_on_a_transaction_send_gets_its_result() {
    let broker = MockBroker::start().unwrap();
    let tp = TransactionProducer::builder("GID_HANG_TX")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .callback_threads(1)
        .listener(Commit)
        .start()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..2 {
        let inner = tp.clone();
        let tx = tx.clone();
        tp.producer()
            .send_with_callback(Message::new("TxOuter", "outer"), move |_| {
                let a = inner
                    .send_message_in_transaction_async(
                        Message::new("TxInner", format!("a{i}")),
                        1u32,
                    )
                    .wait()
                    .map(|r| r.local_state);
                let s = inner
                    .send_message_in_transaction(Message::new("TxInner", format!("s{i}")), &1u32)
                    .map(|r| r.local_state);
                let _ = tx.send((a, s));
            });
    }
    for (a, s) in collect(&rx, 2, "callbacks blocked on a transaction") {
        assert_eq!(a.unwrap(), LocalTransactionState::CommitMessage);
        assert_eq!(s.unwrap(), LocalTransactionState::CommitMessage);
    }
    assert!(wait_until(PROMPTLY, || broker.message_count("TxInner") == 4));
    within(PROMPTLY, "transaction producer shutdown", move || {
        tp.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

/// Item 3: callbacks of sends that end while shutdown is under way (answers still arriving,
/// the rest failed by shutdown) run on a callback thread or on the thread calling shutdown,
/// never on an I/O thread. Answers stream in while shutdown begins; a few rounds widen the
/// window in which the pool used to refuse work.
#[test]
fn callbacks_during_shutdown_never_run_on_an_io_thread() {
    let broker = MockBroker::start().unwrap();
    for round in 0..4 {
        let p = builder(&broker, "GID_HANG_SHUT")
            .max_in_flight(100_000)
            .start()
            .unwrap();
        p.send(Message::new("ShutStream", "warm")).unwrap();
        broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(150));
        let names = Arc::new(Mutex::new(Vec::new()));
        let n = 3_000;
        for i in 0..n {
            let names = names.clone();
            p.send_with_callback(Message::new("ShutStream", format!("m{i}")), move |_| {
                let me = std::thread::current();
                names
                    .lock()
                    .unwrap()
                    .push(me.name().unwrap_or("?").to_string());
            });
        }
        // Shutdown begins while answers stream back.
        let until = Duration::from_millis(100);
        shutdown_within(p, until);
        broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::ZERO);
        let names = names.lock().unwrap().clone();
        assert_eq!(names.len(), n, "round {round}: every callback ran once");
        let on_io: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("rocketmq-io"))
            .collect();
        assert!(
            on_io.is_empty(),
            "round {round}: {} callbacks ran on an I/O thread",
            on_io.len()
        );
    }
}

/// Opens a gate when dropped (so a failing test does not leave callbacks blocked).
struct Gate(Option<mpsc::Sender<()>>);

impl Drop for Gate {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Item 8: a send whose callback has not run yet still holds its in-flight share, so slow
/// callbacks make new sends wait (and then fail) instead of queueing without bound.
#[test]
fn finished_callbacks_hold_their_share_until_they_run() {
    let broker = MockBroker::start().unwrap();
    let p = builder(&broker, "GID_HANG_BP")
        .send_timeout(Duration::from_millis(500))
        .callback_threads(1)
        .max_in_flight(4)
        .start()
        .unwrap();
    p.send(Message::new("SlowCallbacks", "warm")).unwrap();
    let (open, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let open = Gate(Some(open));
    let ran = Arc::new(Mutex::new(0usize));
    for i in 0..4 {
        let gate = gate.clone();
        let ran = ran.clone();
        p.send_with_callback(Message::new("SlowCallbacks", format!("m{i}")), move |r| {
            r.unwrap();
            // Blocks until the gate opens (the sender is dropped).
            let _ = gate.lock().unwrap().recv();
            *ran.lock().unwrap() += 1;
        });
    }
    assert!(wait_until(PROMPTLY, || broker
        .message_count("SlowCallbacks")
        == 5));
    // All four are answered, none of their callbacks has finished: the producer is full.
    let p2 = p.clone();
    let fifth = within(PROMPTLY, "a send past the bound", move || {
        p2.send_async(Message::new("SlowCallbacks", "fifth")).wait()
    });
    assert!(
        matches!(fifth, Err(Error::Backpressure { in_flight: 4, .. })),
        "expected backpressure, got {fifth:?}"
    );
    assert_eq!(p.in_flight().0, 4);
    drop(open);
    assert!(wait_until(PROMPTLY, || *ran.lock().unwrap() == 4));
    assert!(wait_until(PROMPTLY, || p.in_flight() == (0, 0)));
    p.send_async(Message::new("SlowCallbacks", "after"))
        .wait()
        .unwrap();
    shutdown_within(p, Duration::from_secs(5));
}

/// Item 8: a callback that sends while the budget is exhausted (by callbacks queued behind it,
/// which only callback threads can release) never waits: it may use the callback allowance
/// (a quarter of `max_in_flight`, at least 16 sends) and past it fails at once with
/// `Backpressure`.
#[test]
fn callback_sends_past_the_bound_use_a_bounded_allowance() {
    let broker = MockBroker::start().unwrap();
    let p = builder(&broker, "GID_HANG_FAN")
        .send_timeout(Duration::from_secs(10))
        .callback_threads(1)
        .max_in_flight(8)
        .start()
        .unwrap();
    p.send(Message::new("FanOut", "warm")).unwrap();
    let (open, gate) = mpsc::channel::<()>();
    let open = Gate(Some(open));
    let (tx, rx) = mpsc::channel::<Vec<Result<SendResult>>>();
    let fan = p.clone();
    p.send_with_callback(Message::new("FanOut", "first"), move |_| {
        let _ = gate.recv();
        let handles: Vec<_> = (0..20)
            .map(|i| fan.send_async(Message::new("FanOut", format!("fan {i}"))))
            .collect();
        let _ = tx.send(handles.into_iter().map(|h| h.wait()).collect());
    });
    for i in 0..7 {
        p.send_with_callback(Message::new("FanOut", format!("queued {i}")), |_| {});
    }
    assert!(wait_until(PROMPTLY, || broker.message_count("FanOut") == 9));
    // The fan-out sends stay in flight while the callback sends them all.
    broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_secs(2));
    drop(open);
    let results = rx
        .recv_timeout(PROMPTLY)
        .expect("the fan-out callback finishes");
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Backpressure { .. })))
        .count();
    assert_eq!((ok, refused), (16, 4), "{results:?}");
    broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::ZERO);
    assert!(wait_until(PROMPTLY, || p.in_flight() == (0, 0)));
    shutdown_within(p, Duration::from_secs(5));
}

#[test]
fn a_callback_stuck_in_user_code_does_not_hold_shutdown_past_its_timeout() {
    let broker = MockBroker::start().expect("mock broker");
    let producer = builder(&broker, "GID_stuck_callback")
        .callback_threads(1)
        .start()
        .expect("producer");
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    producer.send_with_callback(Message::new("StuckCallback", "x"), move |r| {
        let _ = entered_tx.send(());
        // User code that does not return until the test lets it.
        let _ = release_rx.recv();
        let _ = done_tx.send(r.is_ok());
    });
    entered_rx
        .recv_timeout(PROMPTLY)
        .expect("the callback starts");
    let timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    // The watchdog catches a shutdown that waits for the callback (it never returns by itself).
    within(Duration::from_secs(10), "shutdown", move || {
        producer.shutdown(timeout)
    })
    .expect("shutdown");
    let took = started.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "shutdown took {took:?} with a {timeout:?} timeout"
    );
    // The callback still ends exactly once, when user code lets it.
    release_tx.send(()).expect("the callback waits");
    assert_eq!(done_rx.recv_timeout(PROMPTLY), Ok(true));
}
