//! `ProducerConfig::serialize_type`: a producer set to the binary ROCKETMQ header layout sends
//! every request it originates in that layout (route lookups, heartbeats, every send mode,
//! END_TRANSACTION of both paths, UNREGISTER_CLIENT), reads MockBroker's answers (in the
//! request's layout), and signs them as with JSON. Every test runs under a watchdog.

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::time::Duration;

use common::{wait_until, PROMPTLY};
use rocketmq_mio::protocol::{RequestCode, SerializeType};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::{AclAccount, MockBroker, MockCounters};
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, ProducerConfig, SendStatus,
    TransactionListener, TransactionProducer,
};

const WATCHDOG: Duration = Duration::from_secs(120);

fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("test hung: watchdog fired after {WATCHDOG:?}"),
    }
}

/// The request codes a producer sends, each received at least once, all in the binary layout.
fn assert_all_binary(c: &MockCounters, codes: &[i32]) {
    for &code in codes {
        let all = c.received(code);
        assert!(all > 0, "no request with code {code} received");
        assert_eq!(
            c.received_binary(code),
            all,
            "code {code}: {} of {all} requests in the binary layout",
            c.received_binary(code)
        );
    }
}

fn sample(topic: &str, i: usize) -> Message {
    Message::new(topic, format!("binary body {i}"))
        .with_tags("TagBin")
        .with_keys([format!("bin-key-{i}")])
        .with_property("n", i.to_string())
}

#[test]
fn every_send_mode_goes_out_in_the_binary_layout() {
    bounded(|| {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("BinTopic", 4);
        let producer = ProducerConfig::testing("GID_bin")
            .name_server(broker.namesrv_addr())
            .serialize_type(SerializeType::RocketMq)
            .start()
            .unwrap();
        assert_eq!(producer.config().serialize_type(), SerializeType::RocketMq);

        let r = producer.send(sample("BinTopic", 0)).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        producer.send_async(sample("BinTopic", 1)).wait().unwrap();
        let (tx, rx) = mpsc::channel();
        producer.send_with_callback(sample("BinTopic", 2), move |r| {
            let _ = tx.send(r);
        });
        rx.recv_timeout(PROMPTLY).unwrap().unwrap();
        producer.send_oneway(sample("BinTopic", 3)).unwrap();
        let batch = producer
            .send_batch(vec![sample("BinTopic", 4), sample("BinTopic", 5)])
            .unwrap();
        assert_eq!(batch.msg_id.split(',').count(), 2);
        producer
            .send_with_selector(sample("BinTopic", 6), &MessageHashSelector, "k")
            .unwrap();
        assert!(wait_until(PROMPTLY, || broker.message_count("BinTopic") == 7));

        // What the broker stored is what was sent, field by field.
        let stored = broker.messages("BinTopic");
        for i in 0..7 {
            let body = format!("binary body {i}");
            let m = stored
                .iter()
                .find(|m| m.body == body.as_bytes())
                .unwrap_or_else(|| panic!("message {i} stored"));
            assert_eq!(m.tags(), Some("TagBin"));
            assert_eq!(m.keys().collect::<Vec<_>>(), [format!("bin-key-{i}")]);
            assert_eq!(m.property("n"), Some(i.to_string().as_str()));
        }
        producer.shutdown(PROMPTLY).unwrap();

        assert_all_binary(
            &broker.counters(),
            &[
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                RequestCode::HEART_BEAT,
                RequestCode::SEND_MESSAGE_V2,
                RequestCode::SEND_BATCH_MESSAGE,
                RequestCode::UNREGISTER_CLIENT,
            ],
        );
    });
}

#[test]
fn json_stays_the_default() {
    bounded(|| {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("JsonTopic", 4);
        let producer = ProducerConfig::testing("GID_json")
            .name_server(broker.namesrv_addr())
            .start()
            .unwrap();
        assert_eq!(producer.config().serialize_type(), SerializeType::Json);
        producer.send(sample("JsonTopic", 0)).unwrap();
        producer.shutdown(PROMPTLY).unwrap();
        let c = broker.counters();
        assert!(c.received(RequestCode::SEND_MESSAGE_V2) > 0);
        assert_eq!(c.received_binary(RequestCode::SEND_MESSAGE_V2), 0);
        assert_eq!(c.received_binary(RequestCode::GET_ROUTEINFO_BY_TOPIC), 0);
    });
}

/// Executes to Unknown, checks answer Commit.
struct CheckCommits;

impl TransactionListener for CheckCommits {
    fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(match msg.body() {
            b"commit" => LocalTransactionState::CommitMessage,
            _ => LocalTransactionState::Unknown,
        })
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

#[test]
fn transactions_and_check_backs_in_the_binary_layout() {
    bounded(|| {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("BinTx", 4);
        let tp = TransactionProducer::builder("GID_bin_tx")
            .name_server(broker.namesrv_addr())
            .serialize_type(SerializeType::RocketMq)
            .send_timeout(Duration::from_secs(10))
            .listener(CheckCommits)
            .start()
            .unwrap();
        let r = tp
            .send_message_in_transaction(Message::new("BinTx", "commit"), &())
            .unwrap();
        assert_eq!(r.local_state, LocalTransactionState::CommitMessage);
        let r = tp
            .send_message_in_transaction(Message::new("BinTx", "unknown"), &())
            .unwrap();
        assert_eq!(r.local_state, LocalTransactionState::Unknown);
        // The check-back (a binary-layout answer from the check pool) commits it.
        assert!(
            wait_until(PROMPTLY, || broker.check_transaction(&r.transaction_id) > 0),
            "no connection to check on"
        );
        assert!(wait_until(PROMPTLY, || broker.message_count("BinTx") == 2));
        let ends = broker.end_transactions();
        assert!(ends.iter().any(|e| e.from_transaction_check));
        assert!(ends.iter().any(|e| !e.from_transaction_check));
        tp.shutdown(PROMPTLY).unwrap();
        assert_all_binary(
            &broker.counters(),
            &[
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                RequestCode::HEART_BEAT,
                RequestCode::SEND_MESSAGE_V2,
                RequestCode::END_TRANSACTION,
                RequestCode::UNREGISTER_CLIENT,
            ],
        );
    });
}

#[test]
fn signed_binary_requests_pass_the_acl() {
    bounded(|| {
        let broker = MockBroker::builder()
            .acl([AclAccount::new("ak-bin", "sk-bin").admin(true)])
            .start()
            .unwrap();
        broker.create_topic("AclBin", 4);
        let producer = ProducerConfig::testing("GID_acl_bin")
            .name_server(broker.namesrv_addr())
            .serialize_type(SerializeType::RocketMq)
            .credentials("ak-bin", "sk-bin")
            .start()
            .unwrap();
        producer.send(sample("AclBin", 0)).unwrap();
        producer.send_async(sample("AclBin", 1)).wait().unwrap();
        producer
            .send_batch(vec![sample("AclBin", 2), sample("AclBin", 3)])
            .unwrap();
        producer.shutdown(PROMPTLY).unwrap();
        let c = broker.counters();
        assert_eq!(c.acl_refusals_total(), 0, "every signed request verified");
        assert_all_binary(
            &c,
            &[
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                RequestCode::HEART_BEAT,
                RequestCode::SEND_MESSAGE_V2,
                RequestCode::SEND_BATCH_MESSAGE,
            ],
        );
        // A wrong secret is refused in the binary layout too.
        let wrong = ProducerConfig::testing("GID_acl_bin")
            .name_server(broker.namesrv_addr())
            .serialize_type(SerializeType::RocketMq)
            .credentials("ak-bin", "wrong")
            .send_timeout(Duration::from_secs(3))
            .start();
        if let Ok(p) = wrong {
            assert!(p.send(sample("AclBin", 9)).is_err());
            p.shutdown(PROMPTLY).unwrap();
        }
        assert!(broker.counters().acl_refusals_total() > 0);
    });
}

#[test]
fn request_and_reply_in_the_binary_layout() {
    bounded(|| {
        let broker = std::sync::Arc::new(MockBroker::start().unwrap());
        broker.create_topic("BinRpc", 4);
        let binary = |group: &str| {
            ProducerConfig::testing(group)
                .name_server(broker.namesrv_addr())
                .serialize_type(SerializeType::RocketMq)
                .send_timeout(Duration::from_secs(10))
                .start()
                .unwrap()
        };
        let requester = binary("GID_bin_req");
        let server = binary("GID_bin_resp");
        let responder = {
            let broker = broker.clone();
            std::thread::spawn(move || {
                let requests = broker.wait_messages("BinRpc", 1, PROMPTLY);
                let request = requests.first().expect("the request is stored");
                let mut body = b"re:".to_vec();
                body.extend_from_slice(&request.body);
                let r = server.reply(request, body);
                server.shutdown(PROMPTLY).unwrap();
                r
            })
        };
        let reply = requester
            .request(Message::new("BinRpc", "ping"), Duration::from_secs(15))
            .expect("the reply");
        assert_eq!(reply.body, b"re:ping");
        responder.join().unwrap().expect("reply sent");
        requester.shutdown(PROMPTLY).unwrap();
        assert_all_binary(
            &broker.counters(),
            &[
                RequestCode::SEND_MESSAGE_V2,
                RequestCode::SEND_REPLY_MESSAGE_V2,
            ],
        );
    });
}
