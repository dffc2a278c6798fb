//! ACL signing against a MockBroker that verifies it: every request a producer originates is
//! signed (route lookups, heartbeats, sends of every mode, END_TRANSACTION, unregister), and
//! the broker's refusals (a wrong secret, no credentials, a topic the account may not publish
//! to) come back as `Error::NoPermission`, not retried, with nothing stored.

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::protocol::acl::SignatureAlgorithm;
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::{AclAccount, AclPerm, MockBroker};
use rocketmq_mio::{
    Error, ErrorKind, ListenerResult, LocalTransactionState, Message, MessageExt, Producer,
    ProducerConfigBuilder, SendStatus, TransactionListener, TransactionProducer,
};

use common::{wait_until, PROMPTLY};

const AK: &str = "app-ak";
const SK: &str = "app-secret-7Q";

fn broker() -> MockBroker {
    MockBroker::builder()
        .acl([
            AclAccount::new(AK, SK)
                .topic_perm("Orders", AclPerm::Pub)
                .topic_perm("Tx", AclPerm::PubSub)
                // A check-back's END_TRANSACTION names the topic the check named (the half
                // topic, as RocketMQ-Rust brokers send it), as the Java client does.
                .topic_perm("RMQ_SYS_TRANS_HALF_TOPIC", AclPerm::Pub),
            AclAccount::new("root", "root-secret").admin(true),
            AclAccount::new("sha256", "sha256-secret")
                .admin(true)
                .signature_algorithm(SignatureAlgorithm::HmacSha256),
        ])
        .start()
        .expect("mock broker starts")
}

fn builder(broker: &MockBroker, group: &str) -> ProducerConfigBuilder {
    Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
}

/// Runs `f` on a thread and fails the test if it does not finish within `PROMPTLY`.
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
fn every_send_mode_is_signed_and_accepted() {
    watchdog(|| {
        let broker = broker();
        let producer = builder(&broker, "GID_ACL")
            .credentials(AK, SK)
            .start()
            .expect("producer starts");
        let msg = |body: &str| Message::new("Orders", body.to_string()).with_keys(["k1"]);

        let r = producer.send(msg("sync")).expect("sync send");
        assert_eq!(r.status, SendStatus::SendOk);
        producer
            .send_async(msg("async"))
            .wait()
            .expect("async send");
        let (tx, rx) = mpsc::channel();
        producer.send_with_callback(msg("callback"), move |r| {
            let _ = tx.send(r.map(|_| ()));
        });
        rx.recv_timeout(PROMPTLY).unwrap().expect("callback send");
        producer.send_oneway(msg("oneway")).expect("oneway send");
        producer
            .send_batch(vec![msg("batch-1"), msg("batch-2")])
            .expect("batch send");
        producer
            .send_batch_async(vec![msg("batch-3"), msg("batch-4")])
            .wait()
            .expect("async batch send");
        let queue = producer.publish_queues("Orders").unwrap()[1].clone();
        producer.send_to_queue(msg("to-queue"), &queue).unwrap();
        producer
            .send_with_selector(msg("selector"), &MessageHashSelector, "key")
            .unwrap();
        // A large body goes out compressed: the signature covers the bytes on the wire.
        producer
            .send(Message::new("Orders", vec![b'z'; 10_000]))
            .expect("compressed send");
        assert!(wait_until(PROMPTLY, || broker.message_count("Orders") == 11));
        // The secret is nowhere a user can look.
        let shown = format!(
            "{producer:?} {:?} {} {}",
            producer.config(),
            producer.stats().to_json(),
            producer.health().to_json()
        );
        assert!(shown.contains(AK), "the access key may show");
        assert!(!shown.contains(SK), "the secret key shows: {shown}");
        producer.shutdown(Duration::from_secs(5)).unwrap();

        let c = broker.counters();
        assert_eq!(c.acl_refusals_total(), 0, "{c:?}");
        assert!(c.route_requests() >= 1, "{c:?}");
        assert!(c.heartbeats() >= 1, "{c:?}");
        // Unregister is carried out only when its signature holds.
        assert_eq!(c.unregisters(), 1, "{c:?}");
    });
}

/// An admin account signing with HMAC-SHA256 (the broker configured for it).
#[test]
fn sha256_signatures_are_accepted() {
    watchdog(|| {
        let broker = broker();
        let producer = builder(&broker, "GID_ACL256")
            .credentials("sha256", "sha256-secret")
            .signature_algorithm(SignatureAlgorithm::HmacSha256)
            .start()
            .unwrap();
        producer.send(Message::new("Anything", "x")).unwrap();
        assert_eq!(broker.counters().acl_refusals_total(), 0);
    });
}

struct Commit;

impl TransactionListener for Commit {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::Unknown)
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

/// The half message, then a check-back answered by a signed END_TRANSACTION: the message is
/// committed only if that request's signature holds.
#[test]
fn transaction_end_and_check_back_are_signed() {
    watchdog(|| {
        let broker = broker();
        let tp = TransactionProducer::builder("GID_ACL_TX")
            .name_server(broker.namesrv_addr())
            .credentials(AK, SK)
            .send_timeout(Duration::from_secs(10))
            .listener(Commit)
            .start()
            .unwrap();
        let r = tp
            .send_message_in_transaction(Message::new("Tx", "tx-body"), &())
            .unwrap();
        // The first END_TRANSACTION (UNKNOWN) is signed and accepted.
        assert!(wait_until(PROMPTLY, || broker.end_transactions().len() == 1));
        let id = r.send_result.transaction_id.unwrap_or_default();
        assert!(wait_until(PROMPTLY, || broker.check_transaction(&id) > 0));
        assert!(
            wait_until(PROMPTLY, || broker.message_count("Tx") == 1),
            "{:?}",
            broker.counters()
        );
        assert_eq!(broker.counters().acl_refusals_total(), 0);
        tp.shutdown(Duration::from_secs(5)).unwrap();
    });
}

fn assert_no_permission(e: &Error, remark_part: &str) {
    assert!(matches!(e, Error::NoPermission { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::NoPermission);
    assert!(!e.is_retriable());
    assert!(e.to_string().contains(remark_part), "{e}");
}

#[test]
fn refusals_are_no_permission_not_retried_and_store_nothing() {
    watchdog(|| {
        let broker = broker();
        // Known topics, so that the route lookup of an unsigned client is no issue of the
        // test (the mock name server checks signatures too).
        broker.create_topic("Orders", 4);
        broker.create_topic("Forbidden", 4);

        // A forbidden topic: the account may not publish there.
        let producer = builder(&broker, "GID_ACL_F")
            .credentials(AK, SK)
            .retries(2)
            .start()
            .unwrap();
        let before = broker.counters().sends();
        let e = producer.send(Message::new("Forbidden", "x")).unwrap_err();
        assert_no_permission(&e, "Permission was denied");
        assert_eq!(broker.counters().sends() - before, 1, "retried: {e}");
        let e = producer
            .send_async(Message::new("Forbidden", "y"))
            .wait()
            .unwrap_err();
        assert_no_permission(&e, "Permission was denied");
        assert_eq!(broker.counters().sends() - before, 2, "retried: {e}");
        assert!(producer.stats().totals.failed_of(ErrorKind::NoPermission) >= 2);
        assert_eq!(broker.message_count("Forbidden"), 0);

        // A wrong secret: nothing gets through, the route lookup included.
        let wrong = builder(&broker, "GID_ACL_W")
            .credentials(AK, "not-the-secret")
            .start()
            .unwrap();
        let e = wrong.send(Message::new("Orders", "x")).unwrap_err();
        assert_no_permission(&e, "Authentication credentials are invalid");
        assert!(!e.to_string().contains("not-the-secret"), "{e}");
        // No credentials at all.
        let anonymous = builder(&broker, "GID_ACL_N").start().unwrap();
        let e = anonymous.send(Message::new("Orders", "x")).unwrap_err();
        assert_no_permission(&e, "Authentication credentials are invalid");
        assert_eq!(broker.message_count("Orders"), 0);
        assert!(broker.counters().acl_refusals_total() >= 4);
    });
}

/// A wrong secret after a good producer warmed the broker up: refused (at the route lookup,
/// since this mock is its own name server), not retried, nothing stored.
#[test]
fn wrong_secret_is_refused_once() {
    watchdog(|| {
        let broker = broker();
        let good = builder(&broker, "GID_ACL_G")
            .credentials(AK, SK)
            .start()
            .unwrap();
        good.send(Message::new("Orders", "warm-up")).unwrap();
        let before = broker.counters();
        let bad = builder(&broker, "GID_ACL_B")
            .credentials(AK, "wrong")
            .retries(2)
            .start()
            .unwrap();
        let e = bad.send(Message::new("Orders", "x")).unwrap_err();
        assert_no_permission(&e, "Authentication credentials are invalid");
        let after = broker.counters();
        assert_eq!(after.sends(), before.sends(), "{after:?}");
        assert_eq!(
            after.route_requests() - before.route_requests(),
            1,
            "{after:?}"
        );
        assert_eq!(broker.message_count("Orders"), 1);
    });
}

/// The remoting client signs every request it sends, in both header layouts, whatever the
/// invoke mode.
#[test]
fn remoting_client_signs_json_and_binary_requests() {
    use rocketmq_mio::protocol::acl::Credentials;
    use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode, SerializeType};
    use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig};

    watchdog(|| {
        let broker = broker();
        let addr = broker.broker_addr();
        let heartbeat = || {
            RemotingCommand::request(RequestCode::HEART_BEAT)
                .with_body(r#"{"clientID":"c","producerDataSet":[],"consumerDataSet":[]}"#)
        };
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            for credentials in [None, Some(Credentials::new(AK, SK))] {
                let signed = credentials.is_some();
                let client = RemotingClient::new(RemotingConfig {
                    serialize_type: st,
                    credentials,
                    ..RemotingConfig::default()
                })
                .unwrap();
                let expected = if signed {
                    ResponseCode::SUCCESS
                } else {
                    ResponseCode::NO_PERMISSION
                };
                let r = client.invoke_sync(&addr, heartbeat(), PROMPTLY).unwrap();
                assert_eq!((r.code, st), (expected, st), "{:?}", r.remark);
                let (c, h) = pair();
                client.invoke_async(&addr, heartbeat(), PROMPTLY, Completion::Handle(c));
                assert_eq!(h.wait().unwrap().code, expected);
                let refused = broker.counters().acl_refusals(RequestCode::HEART_BEAT);
                client.invoke_oneway(&addr, heartbeat()).unwrap();
                // The oneway request arrived (or was refused) before this one's answer.
                client.invoke_sync(&addr, heartbeat(), PROMPTLY).unwrap();
                let now = broker.counters().acl_refusals(RequestCode::HEART_BEAT);
                assert_eq!(now - refused, if signed { 0 } else { 2 });
                client.shutdown();
            }
        }
    });
}
