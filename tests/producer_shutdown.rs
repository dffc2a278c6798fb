//! Shutdown with sends in flight: every handle ends, every thread is joined. Alone in its
//! binary so that no other test's threads are alive.

mod common;

use std::time::{Duration, Instant};

use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer};

use common::{thread_names, wait_until, PROMPTLY};

#[test]
fn shutdown_resolves_everything_and_joins_threads() {
    let broker = MockBroker::start().unwrap();
    let p = Producer::builder("GID_SHUTDOWN")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    p.send(Message::new("ShutTopic", "warm")).unwrap();
    broker.black_hole(true);
    let handles: Vec<_> = (0..500)
        .map(|i| p.send_async(Message::new("ShutTopic", format!("m{i}"))))
        .collect();
    let started = Instant::now();
    p.shutdown(Duration::from_millis(200)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(25));
    for h in handles {
        let e = h.wait().unwrap_err();
        assert!(e.is_shutdown(), "{e:?}");
    }
    // Sends after shutdown fail at once.
    assert!(p
        .send(Message::new("ShutTopic", "late"))
        .unwrap_err()
        .is_shutdown());
    assert!(p
        .send_async(Message::new("ShutTopic", "late"))
        .wait()
        .unwrap_err()
        .is_shutdown());
    drop(p);
    assert!(wait_until(PROMPTLY, || !thread_names()
        .iter()
        .any(|n| n.starts_with("rocketmq-"))));
}
