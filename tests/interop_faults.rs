//! Faults on a real RocketMQ cluster (`scripts/real-broker.sh`): a broker process is killed
//! (SIGKILL) with asynchronous sends in flight, then started again.
//!
//! Needs `ROCKETMQ_INTEROP_NAMESRV` and `ROCKETMQ_INTEROP_DIR` (the cluster's directory, so the
//! test can kill and restart a broker); skipped with a printed reason otherwise. With two or more
//! brokers it also checks failover to the survivors. Cargo runs test binaries one after another,
//! so killing a broker here does not disturb the other interop tests; the tests in this file
//! take [`CLUSTER`] so they do not disturb each other either.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::interop::{assert_stored, cluster, real_broker_script, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::{Error, Message, MessageQueue, ProducerConfig, SendResult};

/// One fault test at a time: they kill brokers of the shared cluster.
static CLUSTER: Mutex<()> = Mutex::new(());

/// Starts the killed broker again if the test ends (or panics) before it did.
struct Restart<'a> {
    dir: &'a Path,
    name: String,
    pending: bool,
}

impl Restart<'_> {
    fn kill(&mut self) {
        self.pending = true;
        real_broker_script(&["kill-broker", &self.dir.to_string_lossy(), &self.name]);
    }

    fn start(&mut self) {
        real_broker_script(&["start-broker", &self.dir.to_string_lossy(), &self.name]);
        self.pending = false;
    }
}

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if self.pending {
            let _ = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/real-broker.sh"
                ))
                .args(["start-broker", &self.dir.to_string_lossy(), &self.name])
                .status();
        }
    }
}

fn msg(topic: &str, i: usize) -> Message {
    Message::new(topic, format!("fault body {i}"))
        .with_tags("TagF")
        .with_keys([format!("f{i}")])
        .with_property("i", i.to_string())
}

/// An error a send may end with when its broker dies under it.
fn is_broker_loss(e: &Error) -> bool {
    matches!(
        e,
        Error::Io { .. } | Error::ConnectionClosed { .. } | Error::Timeout { .. }
    )
}

/// Sends to `queue` until one succeeds, or panics at `deadline`.
fn send_until_ok(
    producer: &rocketmq_mio::Producer,
    topic: &str,
    queue: &MessageQueue,
    deadline: Instant,
) -> (Message, SendResult) {
    let mut last = None;
    let mut i = 10_000;
    while Instant::now() < deadline {
        let m = msg(topic, i);
        i += 1;
        match producer.send_to_queue(m.clone(), queue) {
            Ok(r) => return (m, r),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sends to {queue:?} did not resume; last error: {last:?}");
}

#[test]
fn broker_killed_with_sends_in_flight_then_restarted() {
    let Some((ns, dir)) = cluster("broker_killed_with_sends_in_flight_then_restarted") else {
        return;
    };
    let _serial = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let reader = Reader::new(&ns);
    let mut brokers: Vec<String> = reader
        .route("TBW102")
        .expect("route of TBW102")
        .broker_datas
        .iter()
        .map(|b| b.broker_name.clone())
        .collect();
    brokers.sort();
    let victim = brokers[0].clone();
    let survivors: Vec<String> = brokers[1..].to_vec();
    let topic = unique_topic("interop-fault");
    reader.create_topic(&topic, 2);

    let send_timeout = Duration::from_secs(5);
    let producer = ProducerConfig::testing("GID_interop_fault")
        .name_server(&ns)
        .send_timeout(send_timeout)
        .start()
        .expect("producer");
    let queues = producer.publish_queues(&topic).expect("queues");
    let on_victim: Vec<MessageQueue> = queues
        .iter()
        .filter(|q| q.broker_name() == victim)
        .cloned()
        .collect();
    assert!(!on_victim.is_empty(), "{queues:?}");
    // Connections up, the victim answering.
    producer
        .send_to_queue(msg(&topic, 0), &on_victim[0])
        .expect("warm-up send");

    let mut restart = Restart {
        dir: &dir,
        name: victim.clone(),
        pending: false,
    };

    // A thread sending synchronously (automatic queue choice) all through the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let sync_count = Arc::new(AtomicUsize::new(0));
    let sync_sender = {
        let (producer, topic) = (producer.clone(), topic.clone());
        let (stop, count) = (stop.clone(), sync_count.clone());
        std::thread::spawn(move || {
            let mut results = Vec::new();
            for i in 6000.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let m = msg(&topic, i);
                let r = producer.send(m.clone());
                if r.is_err() {
                    // No live broker (one-broker cluster): do not spin.
                    std::thread::sleep(Duration::from_millis(10));
                }
                results.push((m, r));
                count.fetch_add(1, Ordering::SeqCst);
            }
            results
        })
    };
    assert!(common::wait_until(PROMPTLY, || sync_count
        .load(Ordering::SeqCst)
        >= 3));

    // Sends in flight: to the victim's queues (no retry elsewhere), automatic ones (retried on
    // another broker), and callbacks.
    let mut sent: Vec<(bool, Message, rocketmq_mio::SendHandle)> = Vec::new();
    for i in 0..150 {
        let m = msg(&topic, i);
        let h = producer.send_to_queue_async(m.clone(), &on_victim[i % on_victim.len()]);
        sent.push((false, m, h));
        let m = msg(&topic, 1000 + i);
        let h = producer.send_async(m.clone());
        sent.push((true, m, h));
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let callbacks = 50;
    for i in 0..callbacks {
        let tx = tx.clone();
        producer.send_with_callback(msg(&topic, 2000 + i), move |r| {
            let _ = tx.send(r);
        });
    }
    restart.kill();
    let killed_at = Instant::now();

    // Every handle and every callback ends, within the send timeout (plus slack for a loaded
    // machine).
    let deadline = killed_at + send_timeout + PROMPTLY;
    let mut stored: Vec<(Message, SendResult)> = Vec::new();
    let mut failed = 0;
    let mut auto_failed = 0;
    for (auto, m, mut h) in sent {
        match h.wait_deadline(deadline) {
            Some(Ok(r)) => stored.push((m, r)),
            Some(Err(e)) => {
                assert!(is_broker_loss(&e), "unexpected error: {e:?}");
                failed += 1;
                auto_failed += usize::from(auto);
            }
            None => panic!("a send did not end by its deadline"),
        }
    }
    let mut callback_failed = 0;
    for _ in 0..callbacks {
        match rx.recv_deadline(deadline).expect("every callback runs") {
            Ok(_) => {}
            Err(e) => {
                assert!(is_broker_loss(&e), "unexpected error: {e:?}");
                callback_failed += 1;
            }
        }
    }
    println!(
        "after the kill: {} stored, {failed} failed ({auto_failed} automatic); callbacks: {callback_failed} of {callbacks} failed",
        stored.len()
    );
    // The synchronous sender keeps going past the kill.
    let at_kill = sync_count.load(Ordering::SeqCst);
    assert!(
        common::wait_until(send_timeout + PROMPTLY, || sync_count
            .load(Ordering::SeqCst)
            >= at_kill + 10),
        "synchronous sends stalled after the kill"
    );
    stop.store(true, Ordering::SeqCst);
    let mut sync_failed = 0;
    for (m, r) in sync_sender.join().expect("sync sender") {
        match r {
            Ok(r) => stored.push((m, r)),
            Err(e) => {
                assert!(
                    is_broker_loss(&e) || matches!(e, Error::NoRoute { .. }),
                    "unexpected error: {e:?}"
                );
                sync_failed += 1;
            }
        }
    }
    println!("synchronous sends: {sync_failed} failed");

    if !survivors.is_empty() {
        // Automatic sends are retried on another broker: none of them fails.
        assert_eq!(sync_failed, 0, "synchronous sends failed over");
        assert_eq!(auto_failed, 0, "automatic sends failed over");
        assert_eq!(
            callback_failed, 0,
            "automatic sends (callbacks) failed over"
        );
    }
    let victim_addr_stored = stored
        .iter()
        .filter(|(_, r)| r.queue.broker_name() == victim)
        .count();

    // Sends to the dead broker's queue fail (no hang).
    let e = producer
        .send_to_queue(msg(&topic, 3000), &on_victim[0])
        .expect_err("the broker is dead");
    // Either the connection fails, or the route no longer names the broker.
    assert!(
        is_broker_loss(&e) || matches!(e, Error::NoRoute { .. }),
        "{e:?}"
    );

    // With survivors, automatic sends fail over to them.
    if !survivors.is_empty() {
        for i in 0..5 {
            let m = msg(&topic, 4000 + i);
            let r = producer
                .send(m.clone())
                .expect("fails over to a live broker");
            assert_ne!(r.queue.broker_name(), victim);
            assert_stored(&reader.view_result(&r), &m, &r.msg_id);
            let m = msg(&topic, 4100 + i);
            let r = producer
                .send_async(m.clone())
                .wait()
                .expect("async fails over");
            assert_ne!(r.queue.broker_name(), victim);
            assert_stored(&reader.view_result(&r), &m, &r.msg_id);
        }
    } else {
        println!("one broker only: failover not checked");
    }

    // Started again, the broker takes sends again.
    restart.start();
    let resume_deadline = Instant::now() + Duration::from_secs(60);
    for q in &on_victim {
        let (m, r) = send_until_ok(&producer, &topic, q, resume_deadline);
        assert_eq!(&r.queue, q);
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
    }
    // Automatic sends reach it again once the route lists it again.
    let mut back = false;
    while !back && Instant::now() < resume_deadline {
        let m = msg(&topic, 5000);
        let r = producer.send(m.clone()).expect("send after restart");
        back = r.queue.broker_name() == victim;
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
    }
    assert!(back, "automatic sends never went to {victim} again");

    // Every send the broker acknowledged before it died is still there.
    for (m, r) in &stored {
        assert_stored(&reader.view_result(r), m, &r.msg_id);
    }
    println!("{victim_addr_stored} acknowledged sends on {victim} survived the kill");
    producer.shutdown(PROMPTLY).unwrap();
}

/// Resumes the paused broker if the test ends (or panics) before it did.
struct Resume<'a> {
    dir: &'a Path,
    name: String,
    pending: bool,
}

impl Resume<'_> {
    fn pause(&mut self) {
        self.pending = true;
        real_broker_script(&["pause-broker", &self.dir.to_string_lossy(), &self.name]);
    }

    fn resume(&mut self) {
        real_broker_script(&["resume-broker", &self.dir.to_string_lossy(), &self.name]);
        self.pending = false;
    }
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        if self.pending {
            let _ = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/real-broker.sh"
                ))
                .args(["resume-broker", &self.dir.to_string_lossy(), &self.name])
                .status();
        }
    }
}

/// A broker that stops answering (SIGSTOP: its connections stay open) makes sends to it time out
/// after the per-attempt cap; automatic sends go to another broker; once it answers again (and
/// its late answers to the timed-out requests arrive), sends to it succeed again.
#[test]
fn broker_paused_sends_time_out_then_resume() {
    let Some((ns, dir)) = cluster("broker_paused_sends_time_out_then_resume") else {
        return;
    };
    let _serial = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let reader = Reader::new(&ns);
    let mut brokers: Vec<String> = reader
        .route("TBW102")
        .expect("route of TBW102")
        .broker_datas
        .iter()
        .map(|b| b.broker_name.clone())
        .collect();
    brokers.sort();
    let victim = brokers[0].clone();
    let topic = unique_topic("interop-pause");
    reader.create_topic(&topic, 2);
    let cap = Duration::from_secs(1);
    let send_timeout = Duration::from_secs(6);
    let producer = ProducerConfig::testing("GID_interop_pause")
        .name_server(&ns)
        .send_timeout(send_timeout)
        .per_attempt_timeout(cap)
        .start()
        .expect("producer");
    let queues = producer.publish_queues(&topic).expect("queues");
    let on_victim: Vec<MessageQueue> = queues
        .iter()
        .filter(|q| q.broker_name() == victim)
        .cloned()
        .collect();
    producer
        .send_to_queue(msg(&topic, 0), &on_victim[0])
        .expect("warm-up send");

    let mut paused = Resume {
        dir: &dir,
        name: victim.clone(),
        pending: false,
    };
    paused.pause();
    let handles: Vec<_> = (0..20)
        .map(|i| producer.send_to_queue_async(msg(&topic, i), &on_victim[i % on_victim.len()]))
        .collect();
    let deadline = Instant::now() + send_timeout + PROMPTLY;
    for mut h in handles {
        match h.wait_deadline(deadline) {
            // A timeout (or the connection closed after one: Java clients do that).
            Some(Err(Error::Timeout { .. } | Error::ConnectionClosed { .. })) => {}
            other => panic!("expected a timeout from the paused broker, got {other:?}"),
        }
    }
    // A producer shut down with sends stuck on the paused broker ends them and returns.
    let stuck = ProducerConfig::testing("GID_interop_pause_shutdown")
        .name_server(&ns)
        .send_timeout(Duration::from_secs(30))
        .start()
        .expect("producer");
    let stuck_handles: Vec<_> = (0..5)
        .map(|i| stuck.send_to_queue_async(msg(&topic, 50 + i), &on_victim[0]))
        .collect();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(stuck.shutdown(Duration::from_secs(1)));
    });
    done_rx
        .recv_timeout(PROMPTLY)
        .expect("shutdown returns despite the paused broker")
        .expect("shutdown");
    for mut h in stuck_handles {
        match h.wait_timeout(PROMPTLY) {
            Some(Err(_)) => {}
            other => panic!("a stuck send must end with an error at shutdown: {other:?}"),
        }
    }
    let e = producer
        .send_to_queue(msg(&topic, 100), &on_victim[0])
        .expect_err("the broker is paused");
    assert!(
        matches!(e, Error::Timeout { .. } | Error::ConnectionClosed { .. }),
        "{e:?}"
    );
    if brokers.len() > 1 {
        for i in 0..4 {
            let m = msg(&topic, 200 + i);
            let r = producer.send(m.clone()).expect("retried on a live broker");
            assert_ne!(r.queue.broker_name(), victim);
            assert_stored(&reader.view_result(&r), &m, &r.msg_id);
            let m = msg(&topic, 300 + i);
            let r = producer
                .send_async(m.clone())
                .wait()
                .expect("async retried");
            assert_ne!(r.queue.broker_name(), victim);
        }
    }

    paused.resume();
    let resume_deadline = Instant::now() + Duration::from_secs(60);
    for q in &on_victim {
        let (m, r) = send_until_ok(&producer, &topic, q, resume_deadline);
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
    }
    for i in 0..5 {
        let m = msg(&topic, 400 + i);
        let r = producer
            .send_to_queue(m.clone(), &on_victim[i % on_victim.len()])
            .expect("the broker answers again");
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
    }
    producer.shutdown(PROMPTLY).unwrap();
}

/// Starts the killed name server again if the test ends (or panics) before it did, and waits
/// until every broker registered with it again.
struct RestartNamesrv<'a> {
    dir: &'a Path,
    pending: bool,
}

impl RestartNamesrv<'_> {
    fn kill(&mut self) {
        self.pending = true;
        real_broker_script(&["kill-namesrv", &self.dir.to_string_lossy()]);
    }

    fn start(&mut self) {
        real_broker_script(&["start-namesrv", &self.dir.to_string_lossy()]);
        self.pending = false;
    }
}

impl Drop for RestartNamesrv<'_> {
    fn drop(&mut self) {
        if self.pending {
            let _ = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/real-broker.sh"
                ))
                .args(["start-namesrv", &self.dir.to_string_lossy()])
                .status();
        }
    }
}

/// With the name server down, sends keep going to the brokers of the last good route; a topic
/// with no cached route fails with `NoRoute` within the send timeout; once the name server is
/// back (and the brokers registered again), new topics work again.
#[test]
fn name_server_down_keeps_the_last_good_route() {
    let Some((ns, dir)) = cluster("name_server_down_keeps_the_last_good_route") else {
        return;
    };
    let _serial = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let reader = Reader::new(&ns);
    let brokers = reader.master_addrs().len();
    let topic = unique_topic("interop-nsdown");
    reader.create_topic(&topic, 2);
    let send_timeout = Duration::from_secs(3);
    let producer = ProducerConfig::testing("GID_interop_nsdown")
        .name_server(&ns)
        .send_timeout(send_timeout)
        .client_api_timeout(Duration::from_secs(1))
        .start()
        .expect("producer");
    let r = producer.send(msg(&topic, 0)).expect("route cached");
    assert_stored(&reader.view_result(&r), &msg(&topic, 0), &r.msg_id);

    let mut namesrv = RestartNamesrv {
        dir: &dir,
        pending: false,
    };
    namesrv.kill();
    // Several route refreshes (every second with the testing preset) fail meanwhile.
    let until = Instant::now() + Duration::from_secs(3);
    let mut i = 1;
    while Instant::now() < until {
        let m = msg(&topic, i);
        let r = producer.send(m.clone()).expect("the last good route stays");
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
        let m = msg(&topic, 1000 + i);
        let r = producer.send_async(m.clone()).wait().expect("async too");
        assert_stored(&reader.view_result(&r), &m, &r.msg_id);
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let fresh = unique_topic("interop-nsdown-new");
    let started = Instant::now();
    let e = producer
        .send(msg(&fresh, 0))
        .expect_err("no route without a name server");
    assert!(matches!(e, Error::NoRoute { .. }), "{e:?}");
    assert!(
        started.elapsed() < send_timeout + PROMPTLY,
        "bounded by the send timeout"
    );

    namesrv.start();
    // The brokers register again within their registration period (10 s in the script's config).
    assert!(
        common::wait_until(Duration::from_secs(60), || reader
            .route("TBW102")
            .is_ok_and(|r| r.broker_datas.len() == brokers)),
        "the brokers did not register with the restarted name server"
    );
    let (m, r) = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = msg(&fresh, 1);
            match producer.send(m.clone()) {
                Ok(r) => break (m, r),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("a new topic never worked again: {e:?}"),
            }
        }
    };
    assert_stored(&reader.view_result(&r), &m, &r.msg_id);
    // The old topic's route comes back too (the broker registers its topics again).
    assert!(
        common::wait_until(Duration::from_secs(30), || reader.route(&topic).is_ok()),
        "route of {topic} after the restart"
    );
    producer.shutdown(PROMPTLY).unwrap();
}
