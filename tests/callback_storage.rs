//! Send callbacks of every shape through the real send path (issue 15: a callback is held in
//! a box reused for the next callback of its closure type, carried in the recycled send
//! state): zero-sized, small, medium, large, over-aligned, panicking, and callbacks dropped
//! unrun at shutdown, each shape sent many times (so its boxes are reused).
//! Each runs exactly once with its result, and drops its captures exactly once.
//!
//! Everything that could hang runs under a deadline (`recv_timeout`), so a regression fails
//! in bounded time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer, Result, SendResult};

use common::{wait_until, PROMPTLY};

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn producer(broker: &MockBroker, group: &str) -> Producer {
    let p = Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(20))
        .start()
        .expect("producer starts");
    p.send(Message::new("InlineCb", "warm")).expect("warm-up");
    p
}

fn msg(i: usize) -> Message {
    Message::new("InlineCb", format!("m{i}"))
}

/// One result per callback, each within the deadline; no more afterwards.
fn results(rx: &mpsc::Receiver<(usize, bool)>, n: usize) -> Vec<(usize, bool)> {
    let mut got: Vec<_> = (0..n)
        .map(|i| {
            rx.recv_timeout(PROMPTLY)
                .unwrap_or_else(|_| panic!("only {i} of {n} callbacks ran within {PROMPTLY:?}"))
        })
        .collect();
    got.sort();
    got
}

#[test]
fn callbacks_of_every_size_and_alignment_run_once_and_drop_once() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, "GID_INLINE_SIZES");
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let rounds = 50;
    // Zero-sized callbacks report through a static.
    static ZST_CALLS: AtomicUsize = AtomicUsize::new(0);
    for round in 0..rounds {
        p.send_with_callback(msg(round), |r: Result<SendResult>| {
            assert!(r.is_ok());
            ZST_CALLS.fetch_add(1, Ordering::SeqCst);
        });
        // Small (a sender and a drop counter).
        let (t, c) = (tx.clone(), Counted(drops.clone()));
        p.send_with_callback(msg(round), move |r| {
            let _keep = &c;
            t.send((0, r.is_ok())).unwrap();
        });
        // Medium (48 bytes of captures besides the sender).
        let (t, c, pad) = (tx.clone(), Counted(drops.clone()), [round as u8; 32]);
        p.send_with_callback(msg(round), move |r| {
            let _keep = &c;
            t.send((1, r.is_ok() && pad[31] == round as u8)).unwrap();
        });
        // Large (512 bytes of captures).
        let (t, c, big) = (tx.clone(), Counted(drops.clone()), [round as u64; 64]);
        p.send_with_callback(msg(round), move |r| {
            let _keep = &c;
            t.send((2, r.is_ok() && big.iter().all(|&x| x == round as u64)))
                .unwrap();
        });
        // Over-aligned captures: still aligned when the callback runs.
        #[repr(align(64))]
        struct Wide(u64, Counted);
        let (t, w) = (tx.clone(), Wide(round as u64, Counted(drops.clone())));
        p.send_with_callback(msg(round), move |r| {
            let _keep = &w.1;
            let aligned = (&w as *const Wide as usize) % 64 == 0;
            t.send((3, r.is_ok() && aligned && w.0 == round as u64))
                .unwrap();
        });
        // 16-aligned: aligned when the callback runs.
        #[repr(align(16))]
        struct Sixteen(u128, Counted);
        let (t, s) = (tx.clone(), Sixteen(round as u128, Counted(drops.clone())));
        p.send_with_callback(msg(round), move |r| {
            let _keep = &s.1;
            let aligned = (&s as *const Sixteen as usize) % 16 == 0;
            t.send((4, r.is_ok() && aligned && s.0 == round as u128))
                .unwrap();
        });
    }
    let got = results(&rx, 5 * rounds);
    for kind in 0..5 {
        let ok = got.iter().filter(|&&(k, ok)| k == kind && ok).count();
        assert_eq!(
            ok, rounds,
            "callbacks of kind {kind} that got a good result"
        );
    }
    // Every capture dropped once (each callback drops its captures as it returns).
    let want = 5 * rounds;
    wait_until(PROMPTLY, || drops.load(Ordering::SeqCst) == want);
    assert_eq!(drops.load(Ordering::SeqCst), want);
    // The zero-sized ones report through a static (set before their results were sent).
    wait_until(PROMPTLY, || ZST_CALLS.load(Ordering::SeqCst) == rounds);
    assert_eq!(ZST_CALLS.load(Ordering::SeqCst), rounds);
    p.shutdown(Duration::from_secs(10)).unwrap();
    assert!(rx.try_recv().is_err(), "a callback ran twice");
    assert_eq!(drops.load(Ordering::SeqCst), want);
}

#[test]
fn panicking_callbacks_are_contained_and_drop_their_captures() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, "GID_INLINE_PANIC");
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let n = 40;
    for i in 0..n {
        let c = Counted(drops.clone());
        let t = tx.clone();
        if i % 2 == 0 {
            p.send_with_callback(msg(i), move |r| {
                let _keep = &c;
                t.send((i, r.is_ok())).unwrap();
                panic!("callback {i} panics after reporting");
            });
        } else {
            let big = [1u8; 256];
            p.send_with_callback(msg(i), move |r| {
                let _keep = (&c, big);
                t.send((i, r.is_ok())).unwrap();
                panic!("large callback {i} panics after reporting");
            });
        }
    }
    let got = results(&rx, n);
    assert_eq!(got, (0..n).map(|i| (i, true)).collect::<Vec<_>>());
    wait_until(PROMPTLY, || drops.load(Ordering::SeqCst) == n);
    assert_eq!(drops.load(Ordering::SeqCst), n);
    // The pool survived: a later callback still runs.
    let t = tx;
    p.send_with_callback(msg(999), move |r| t.send((999, r.is_ok())).unwrap());
    assert_eq!(results(&rx, 1), [(999, true)]);
    p.shutdown(Duration::from_secs(10)).unwrap();
}

/// Callbacks in flight when the producer shuts down: each runs once (a result or
/// `Shutdown`), and every capture is dropped once, whether the callback got to the pool or
/// not.
#[test]
fn shutdown_runs_every_accepted_callback_once() {
    let broker = MockBroker::builder().keep_messages(false).start().unwrap();
    let p = producer(&broker, "GID_INLINE_SHUTDOWN");
    // Answers come late: the callbacks are still pending when shutdown starts, and some
    // answers come after its timeout (those callbacks get `Shutdown`).
    broker.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(300));
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let n = 200;
    for i in 0..n {
        let c = Counted(drops.clone());
        let t = tx.clone();
        if i % 3 == 0 {
            let big = [0u8; 128];
            p.send_with_callback(msg(i), move |r| {
                let _keep = (&c, big);
                t.send((i, r.is_ok())).unwrap();
            });
        } else {
            p.send_with_callback(msg(i), move |r| {
                let _keep = &c;
                t.send((i, r.is_ok())).unwrap();
            });
        }
    }
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(p.shutdown(Duration::from_millis(200)));
    });
    done_rx
        .recv_timeout(PROMPTLY)
        .expect("shutdown hung")
        .expect("shutdown");
    let got = results(&rx, n);
    let ids: Vec<usize> = got.iter().map(|&(i, _)| i).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "each callback once");
    assert!(rx.try_recv().is_err(), "a callback ran twice");
    wait_until(PROMPTLY, || drops.load(Ordering::SeqCst) == n);
    assert_eq!(drops.load(Ordering::SeqCst), n);
}

/// Sends one callback that, from inside itself, sends the next of the same closure type (its
/// box is taken from the pool while callbacks of its type are running) and blocks on a sync
/// send, `depth` deep.
fn chain(p: Producer, depth: usize, tx: mpsc::Sender<(usize, bool)>, drops: Arc<AtomicUsize>) {
    let c = Counted(drops.clone());
    let p2 = p.clone();
    p.send_with_callback(msg(depth), move |r| {
        let _keep = &c;
        let blocked = p2.send(msg(depth)).is_ok();
        tx.send((depth, r.is_ok() && blocked)).unwrap();
        if depth > 0 {
            chain(p2, depth - 1, tx, drops);
        }
    });
}

#[test]
fn callbacks_send_callbacks_of_their_own_type_and_block_on_sends() {
    let broker = MockBroker::start().unwrap();
    let p = producer(&broker, "GID_INLINE_NESTED");
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let depth = 30;
    for _ in 0..3 {
        chain(p.clone(), depth, tx.clone(), drops.clone());
    }
    let got = results(&rx, 3 * (depth + 1));
    assert!(got.iter().all(|&(_, ok)| ok), "{got:?}");
    let want = 3 * (depth + 1);
    wait_until(PROMPTLY, || drops.load(Ordering::SeqCst) == want);
    assert_eq!(drops.load(Ordering::SeqCst), want);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(p.shutdown(Duration::from_secs(10)));
    });
    done_rx
        .recv_timeout(PROMPTLY)
        .expect("shutdown hung")
        .expect("shutdown");
    assert!(rx.try_recv().is_err(), "a callback ran twice");
}
