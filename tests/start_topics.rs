//! `ProducerConfigBuilder::topics([..])`: routes resolved and brokers heartbeated at start, so a
//! restarted transaction producer answers its crashed predecessor's check-backs before its first
//! send. Also: heartbeats reach every master of a multi-broker cluster and repeat at the
//! interval.

mod common;
mod mock_support;

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mock_support::{send_half, Client};
use rocketmq_mio::protocol::RequestCode;
use rocketmq_mio::testing::{MockBroker, MockCluster, TransactionState};
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, Producer, TransactionListener,
    TransactionProducer,
};

use common::{wait_until, PROMPTLY};

fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: no return within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the watched code panicked"),
    }
}

/// Commits whatever is checked; counts checks.
struct CommitOnCheck(Arc<AtomicUsize>);

impl TransactionListener for CommitOnCheck {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::Unknown)
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(LocalTransactionState::CommitMessage)
    }
}

/// A predecessor (a plain client of group GID_RESTART) heartbeats, stores a half message and
/// dies without unregistering. Its successor, started with `topics`, answers the check-back
/// without sending anything.
#[test]
fn restarted_transaction_producer_answers_check_backs_before_any_send() {
    watchdog(PROMPTLY * 3, || {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("RestartTx", 4);
        {
            let mut crashed = Client::connect(&broker.broker_addr());
            crashed.heartbeat("crashed-client", "GID_RESTART");
            send_half(&mut crashed, "RestartTx", "GID_RESTART", "TX-LEFT-1");
        } // connection dropped: the crash
        assert!(wait_until(PROMPTLY, || broker.connection_count() == 0));
        assert_eq!(broker.check_transaction("TX-LEFT-1"), 0, "nobody to ask");

        let checks = Arc::new(AtomicUsize::new(0));
        let tp = TransactionProducer::builder("GID_RESTART")
            .name_server(broker.namesrv_addr())
            .topics(["RestartTx"])
            .listener(CommitOnCheck(checks.clone()))
            .start()
            .unwrap();
        // The heartbeat is on its way at start; the broker can then reach the successor.
        assert!(wait_until(PROMPTLY, || broker
            .check_transaction("TX-LEFT-1")
            == 1));
        assert!(wait_until(PROMPTLY, || broker
            .transaction_state("TX-LEFT-1")
            == Some(TransactionState::Committed)));
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        assert_eq!(broker.message_count("RestartTx"), 1);
        assert_eq!(
            broker.counters().sends(),
            1,
            "only the predecessor's half message"
        );
        tp.shutdown(PROMPTLY).unwrap();
    });
}

/// Without `topics`, a fresh transaction producer has no route and no broker knows it: the
/// check-back finds nobody until its first send (today's behaviour, kept).
#[test]
fn without_topics_nothing_is_resolved_at_start() {
    watchdog(PROMPTLY * 3, || {
        let broker = MockBroker::start().unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let tp = TransactionProducer::builder("GID_NO_TOPICS")
            .name_server(broker.namesrv_addr())
            .listener(CommitOnCheck(checks))
            .start()
            .unwrap();
        assert_eq!(broker.counters().route_requests(), 0);
        assert_eq!(broker.counters().heartbeats(), 0);
        assert!(tp.producer().health().routes.is_empty());
        tp.shutdown(PROMPTLY).unwrap();
    });
}

/// `topics` on a three-broker cluster: every master gets a heartbeat at start, without a send,
/// and again at every interval; the routes are cached. A topic the name server does not know
/// (auto-create off) is logged and does not fail the start.
#[test]
fn heartbeats_reach_every_master_and_repeat_at_the_interval() {
    watchdog(PROMPTLY * 3, || {
        let cluster = MockCluster::builder()
            .brokers(3)
            .auto_create_topics(false)
            .topic("HbTopic", 2)
            .start()
            .unwrap();
        let p = Producer::builder("GID_HB")
            .name_server(cluster.namesrv_addr())
            .topics(["HbTopic", "NoSuchTopic"])
            .heartbeat_interval(Duration::from_millis(50))
            .start()
            .unwrap();
        let routed: Vec<String> = p.health().routes.iter().map(|r| r.topic.clone()).collect();
        assert_eq!(routed, ["HbTopic"]);
        for b in cluster.brokers() {
            assert!(
                wait_until(PROMPTLY, || b.counters().heartbeats() >= 1),
                "{} got no heartbeat at start",
                b.broker_name()
            );
            assert!(b
                .counters()
                .clients()
                .iter()
                .any(|(id, groups)| id == p.client_id() && groups.iter().any(|g| g == "GID_HB")));
        }
        // Repeated: several more at the 50 ms interval, on every broker.
        for b in cluster.brokers() {
            assert!(
                wait_until(PROMPTLY, || b.counters().heartbeats() >= 4),
                "{} heartbeats not repeated",
                b.broker_name()
            );
            assert_eq!(b.counters().received(RequestCode::SEND_MESSAGE_V2), 0);
        }
        p.shutdown(PROMPTLY).unwrap();
    });
}

/// A configured topic's route does not expire for lack of use.
#[test]
fn configured_topics_do_not_expire() {
    watchdog(PROMPTLY * 3, || {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("Pinned", 2);
        broker.create_topic("Unpinned", 2);
        let p = Producer::builder("GID_PINNED")
            .name_server(broker.namesrv_addr())
            .topics(["Pinned"])
            .route_expiry(Duration::from_secs(1))
            .route_refresh_interval(Duration::from_millis(20))
            .start()
            .unwrap();
        p.send(Message::new("Unpinned", "x")).unwrap();
        let topics = || -> Vec<String> { p.health().routes.into_iter().map(|r| r.topic).collect() };
        assert_eq!(topics(), ["Pinned", "Unpinned"]);
        // Expiry works on real time: wait (with a deadline) for the unused one to go.
        assert!(wait_until(PROMPTLY, || topics() == ["Pinned"]));
        p.shutdown(PROMPTLY).unwrap();
    });
}
