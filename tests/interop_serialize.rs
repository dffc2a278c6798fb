//! The binary ROCKETMQ header layout (`ProducerConfig::serialize_type(SerializeType::RocketMq)`)
//! against a real RocketMQ cluster (`scripts/real-broker.sh`): every send mode is read back
//! from the broker, and a transaction commits both ways, through the local transaction and
//! through a real check-back.
//!
//! Runs only when `ROCKETMQ_INTEROP_NAMESRV` is set (`.ci/run` starts a cluster); otherwise
//! each test prints why it is skipped. Each test runs under a watchdog.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::interop::{assert_stored, assert_stored_tx, namesrv, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::header::{CommandHeader, GetRouteInfoRequestHeader};
use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode, SerializeType};
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, ProducerConfig, SendStatus,
    TransactionListener, TransactionProducer,
};

const WATCHDOG: Duration = Duration::from_secs(180);

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

fn sample(topic: &str, i: usize) -> Message {
    Message::new(topic, format!("rocketmq-header body {i} ✓"))
        .with_tags("TagBin")
        .with_keys([format!("bin-key-{i}")])
        .with_property("n", i.to_string())
        .with_property("quote", "a\"b\\c")
}

/// A request in the binary layout reaches the name server and the broker, and their answers
/// (in whichever layout they choose) are read; the layout of each answer is printed.
#[test]
fn binary_requests_are_answered() {
    let Some(ns) = namesrv("binary_requests_are_answered") else {
        return;
    };
    bounded(move || {
        let client = RemotingClient::new(RemotingConfig {
            serialize_type: SerializeType::RocketMq,
            ..Default::default()
        })
        .unwrap();
        let mut request = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        GetRouteInfoRequestHeader {
            topic: "TBW102".into(),
            accept_standard_json_only: true,
        }
        .write_to(&mut request.ext_fields);
        let response = client
            .invoke_sync(&ns, request, Duration::from_secs(5))
            .expect("the name server answers a binary-layout route request");
        assert_eq!(response.code, ResponseCode::SUCCESS, "{response:?}");
        assert!(!response.body.is_empty());
        println!(
            "name server answered a ROCKETMQ-layout request in {:?}",
            response.serialize_type
        );
        // A broker request (GET_MAX_OFFSET of a queue that exists: TBW102's queue 0).
        let broker = Reader::new(&ns).master_addrs().remove(0);
        let mut request = RemotingCommand::request(RequestCode::GET_MAX_OFFSET);
        request.ext_fields.insert("topic", "TBW102");
        request.ext_fields.insert("queueId", "0");
        let response = client
            .invoke_sync(&broker, request, Duration::from_secs(5))
            .expect("the broker answers a binary-layout request");
        assert_eq!(response.code, ResponseCode::SUCCESS, "{response:?}");
        assert!(response.ext_fields.get("offset").is_some(), "{response:?}");
        println!(
            "broker answered a ROCKETMQ-layout request in {:?}",
            response.serialize_type
        );
        client.shutdown();
    });
}

#[test]
fn every_send_mode_with_binary_headers() {
    let Some(ns) = namesrv("every_send_mode_with_binary_headers") else {
        return;
    };
    bounded(move || {
        let topic = unique_topic("interop-bin");
        let reader = Reader::new(&ns);
        reader.create_topic(&topic, 4);
        let producer = ProducerConfig::testing("GID_interop_bin")
            .name_server(ns.as_str())
            .serialize_type(SerializeType::RocketMq)
            .start()
            .expect("producer starts");

        // sync
        let msg = sample(&topic, 0);
        let r = producer.send(msg.clone()).expect("sync send");
        assert_eq!(r.status, SendStatus::SendOk);
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // async handle, and the handle as a future
        let msg = sample(&topic, 1);
        let r = producer.send_async(msg.clone()).wait().expect("async send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
        let msg = sample(&topic, 2);
        let r = futures_lite::future::block_on(producer.send_async(msg.clone())).expect("awaited");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // callback
        let (tx, rx) = mpsc::channel();
        let msg = sample(&topic, 3);
        producer.send_with_callback(msg.clone(), move |r| {
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(PROMPTLY)
            .expect("callback runs")
            .expect("callback send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // batch
        let msgs: Vec<Message> = (4..7).map(|i| sample(&topic, i)).collect();
        let r = producer.send_batch(msgs.clone()).expect("batch send");
        let ids: Vec<&str> = r.msg_id.split(',').collect();
        assert_eq!(ids.len(), 3);
        for (m, id) in msgs.iter().zip(&ids) {
            let stored = reader
                .find(&topic, id, true, PROMPTLY)
                .unwrap_or_else(|| panic!("batch message {id} stored"));
            assert_stored(&stored, m, id);
        }

        // selector and explicit queue
        let msg = sample(&topic, 7);
        let r = producer
            .send_with_selector(msg.clone(), &MessageHashSelector, "order-1")
            .expect("selector send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
        let msg = sample(&topic, 8);
        let r2 = producer
            .send_to_queue(msg.clone(), &r.queue)
            .expect("queue send");
        assert_eq!(r2.queue, r.queue);
        assert_stored(&reader.view_result(&r2), &msg, &r2.msg_id);

        // a compressed body (over the 4 KiB threshold)
        let msg = Message::new(&topic, vec![b'z'; 10_000]).with_keys(["bin-big"]);
        let r = producer.send(msg.clone()).expect("compressed send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // oneway: no result; found by its key
        let msg = sample(&topic, 9);
        producer.send_oneway(msg.clone()).expect("oneway send");
        let stored = reader
            .find(&topic, "bin-key-9", false, PROMPTLY)
            .expect("oneway message stored");
        let uniq = stored.msg_id().expect("UNIQ_KEY").to_string();
        assert_stored(&stored, &msg, &uniq);

        producer.shutdown(PROMPTLY).unwrap();
    });
}

/// Executes to the state the body names; checks answer commit and count themselves.
struct Listener {
    checks: Arc<AtomicUsize>,
}

impl TransactionListener for Listener {
    fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(match msg.body() {
            b"commit" => LocalTransactionState::CommitMessage,
            b"rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        })
    }

    fn check_local_transaction(&self, msg: &MessageExt, _: &str) -> ListenerResult {
        assert_eq!(msg.body, b"unknown", "the check carries the half message");
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(LocalTransactionState::CommitMessage)
    }
}

#[test]
fn transaction_and_check_back_with_binary_headers() {
    let Some(ns) = namesrv("transaction_and_check_back_with_binary_headers") else {
        return;
    };
    bounded(move || {
        let topic = unique_topic("interop-bin-tx");
        let reader = Reader::new(&ns);
        reader.create_topic(&topic, 4);
        let checks = Arc::new(AtomicUsize::new(0));
        let tp = TransactionProducer::builder("GID_interop_bin_tx")
            .name_server(ns.as_str())
            .serialize_type(SerializeType::RocketMq)
            .send_timeout(Duration::from_secs(10))
            .listener(Listener {
                checks: checks.clone(),
            })
            .start()
            .expect("transaction producer starts");
        let tx_msg = |body: &str| {
            Message::new(&topic, body)
                .with_tags("tx")
                .with_keys([format!("{topic}-{body}")])
        };

        // Commit through the local transaction.
        let msg = tx_msg("commit");
        let r = tp.send_message_in_transaction(msg.clone(), &()).unwrap();
        assert_eq!(r.local_state, LocalTransactionState::CommitMessage);
        let stored = reader
            .find(&topic, &r.transaction_id, true, PROMPTLY)
            .expect("the committed message is visible");
        assert_stored_tx(
            &stored,
            &msg,
            &r.transaction_id,
            sys_flag::TRANSACTION_COMMIT,
        );

        // Unknown, resolved by the broker's check-back (answered by a binary END_TRANSACTION).
        let msg = tx_msg("unknown");
        let r = tp.send_message_in_transaction(msg.clone(), &()).unwrap();
        assert_eq!(r.local_state, LocalTransactionState::Unknown);
        let stored = reader
            .find(&topic, &r.transaction_id, true, Duration::from_secs(60))
            .expect("the check-back committed the message");
        assert!(checks.load(Ordering::SeqCst) >= 1);
        assert_stored_tx(
            &stored,
            &msg,
            &r.transaction_id,
            sys_flag::TRANSACTION_COMMIT,
        );

        // Rollback: never visible (checked last, after the check-back proved the broker reads
        // our END_TRANSACTIONs).
        let r = tp
            .send_message_in_transaction(tx_msg("rollback"), &())
            .unwrap();
        assert_eq!(r.local_state, LocalTransactionState::RollbackMessage);
        assert!(reader
            .find(&topic, &r.transaction_id, true, Duration::from_secs(4))
            .is_none());
        tp.shutdown(PROMPTLY).unwrap();
    });
}
