//! Namespaces on a MockBroker: the topic and the producer group are wrapped (`ns%name`)
//! everywhere they go on the wire (send header, heartbeat, unregister, PGROUP,
//! END_TRANSACTION, check filtering), never twice, never for system topics, and stripped from
//! what the user sees (the SendResult's queue, check-back messages).

mod common;

use std::any::Any;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, Producer, TransactionListener,
    TransactionProducer,
};

use common::{wait_until, PROMPTLY};

/// Runs `f` on a thread; fails if it takes longer than a generous deadline.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PROMPTLY * 2) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match body.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body hung (watchdog)"),
    }
}

#[test]
fn topic_and_group_are_wrapped_on_the_wire_and_stripped_for_the_user() {
    watchdog(|| {
        let broker = MockBroker::start().unwrap();
        let producer = Producer::builder("GID_NS")
            .name_server(broker.namesrv_addr())
            .namespace("ns1")
            .start()
            .unwrap();
        let r = producer.send(Message::new("Orders", "a")).unwrap();
        assert_eq!(r.queue.topic(), "Orders");
        assert_eq!(broker.message_count("ns1%Orders"), 1);
        // Already wrapped: not wrapped again, and the user still sees the bare name.
        let r = producer.send(Message::new("ns1%Orders", "b")).unwrap();
        assert_eq!(r.queue.topic(), "Orders");
        assert_eq!(broker.message_count("ns1%Orders"), 2);
        assert_eq!(broker.message_count("ns1%ns1%Orders"), 0);
        // A system topic is left alone.
        producer.send(Message::new("rmq_sys_custom", "c")).unwrap();
        assert_eq!(broker.message_count("rmq_sys_custom"), 1);
        // Async and batch sends too.
        let r = producer
            .send_async(Message::new("Orders", "d"))
            .wait()
            .unwrap();
        assert_eq!(r.queue.topic(), "Orders");
        let r = producer
            .send_batch(vec![
                Message::new("Orders", "e"),
                Message::new("Orders", "f"),
            ])
            .unwrap();
        assert_eq!(r.queue.topic(), "Orders");
        assert_eq!(broker.message_count("ns1%Orders"), 5);

        let c = broker.counters();
        assert_eq!(c.send_groups(), ["ns1%GID_NS"], "{c:?}");
        assert!(wait_until(PROMPTLY, || broker
            .counters()
            .clients()
            .iter()
            .any(|(_, groups)| groups == &["ns1%GID_NS".to_string()])));
        producer.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(broker.counters().unregistered_groups(), ["ns1%GID_NS"]);
    });
}

/// Records the topics the listener sees.
struct Seen(Arc<Mutex<Vec<String>>>);

impl TransactionListener for Seen {
    fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("execute {}", msg.topic()));
        Ok(LocalTransactionState::Unknown)
    }

    fn check_local_transaction(&self, msg: &MessageExt, _: &str) -> ListenerResult {
        self.0.lock().unwrap().push(format!("check {}", msg.topic));
        Ok(LocalTransactionState::CommitMessage)
    }
}

#[test]
fn transactions_carry_the_wrapped_group_and_checks_see_the_bare_topic() {
    watchdog(|| {
        let broker = MockBroker::start().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tp = TransactionProducer::builder("GID_NS_TX")
            .name_server(broker.namesrv_addr())
            .namespace("ns1")
            .send_timeout(Duration::from_secs(10))
            .listener(Seen(seen.clone()))
            .start()
            .unwrap();
        let r = tp
            .send_message_in_transaction(Message::new("Tx", "body"), &())
            .unwrap();
        let half = broker.half_messages();
        assert_eq!(half[0].producer_group, "ns1%GID_NS_TX");
        assert_eq!(half[0].message.property("REAL_TOPIC"), Some("ns1%Tx"));
        assert!(wait_until(PROMPTLY, || broker.end_transactions().len() == 1));
        assert_eq!(broker.end_transactions()[0].producer_group, "ns1%GID_NS_TX");
        // The check-back reaches the listener (its PGROUP is ours, wrapped), which sees the
        // topic without the namespace, and its END_TRANSACTION commits.
        let id = r.send_result.transaction_id.unwrap_or_default();
        assert!(wait_until(PROMPTLY, || broker.check_transaction(&id) > 0));
        assert!(wait_until(PROMPTLY, || broker.message_count("ns1%Tx") == 1));
        assert_eq!(
            *seen.lock().unwrap(),
            ["execute Tx".to_string(), "check Tx".to_string()]
        );
        assert!(broker
            .end_transactions()
            .iter()
            .all(|e| e.producer_group == "ns1%GID_NS_TX"));
        tp.shutdown(Duration::from_secs(5)).unwrap();
    });
}
