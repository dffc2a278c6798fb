//! Transactions on a real RocketMQ broker: commit, rollback, and Unknown resolved by a real
//! check-back (CHECK_TRANSACTION_STATE from the broker, answered by our check pool).
//!
//! Runs only when `ROCKETMQ_INTEROP_NAMESRV` is set. The brokers started by
//! `scripts/real-broker.sh` set `transactionCheckInterval = 3000` and `transactionTimeout = 2000`,
//! so an unresolved half message is checked back after 2-5 s.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::interop::{assert_stored_tx, namesrv, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, TransactionListener,
    TransactionProducer,
};

/// Executes to the state the body names; checks answer `check_answer` and count themselves.
struct Listener {
    check_answer: LocalTransactionState,
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
        Ok(self.check_answer)
    }
}

fn producer(
    ns: &str,
    group: &str,
    check_answer: LocalTransactionState,
) -> (TransactionProducer, Arc<AtomicUsize>) {
    let checks = Arc::new(AtomicUsize::new(0));
    let tp = TransactionProducer::builder(group)
        .name_server(ns)
        .send_timeout(Duration::from_secs(10))
        .listener(Listener {
            check_answer,
            checks: checks.clone(),
        })
        .start()
        .expect("transaction producer starts");
    (tp, checks)
}

fn sample(topic: &str, body: &str) -> Message {
    Message::new(topic, body)
        .with_tags("tx")
        .with_keys([format!("{topic}-{body}")])
        .with_property("stage", body)
}

#[test]
fn commit_is_visible_with_commit_bits() {
    let Some(ns) = namesrv("commit_is_visible_with_commit_bits") else {
        return;
    };
    let topic = unique_topic("interop-tx-commit");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let (tp, _) = producer(
        &ns,
        "GID_interop_tx_commit",
        LocalTransactionState::RollbackMessage,
    );
    let msg = sample(&topic, "commit");
    let r = tp.send_message_in_transaction(msg.clone(), &()).unwrap();
    assert_eq!(r.local_state, LocalTransactionState::CommitMessage);
    let stored = reader
        .find(&topic, &r.transaction_id, true, PROMPTLY)
        .expect("the committed message is visible in its topic");
    assert_stored_tx(
        &stored,
        &msg,
        &r.transaction_id,
        sys_flag::TRANSACTION_COMMIT,
    );
    assert_eq!(stored.property("TRAN_MSG"), None);
    assert_eq!(stored.property("PGROUP"), Some("GID_interop_tx_commit"));
    tp.shutdown(PROMPTLY).unwrap();
}

#[test]
fn rollback_is_never_visible() {
    let Some(ns) = namesrv("rollback_is_never_visible") else {
        return;
    };
    let topic = unique_topic("interop-tx-rollback");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let (tp, checks) = producer(
        &ns,
        "GID_interop_tx_rollback",
        LocalTransactionState::CommitMessage,
    );
    let r = tp
        .send_message_in_transaction(sample(&topic, "rollback"), &())
        .unwrap();
    assert_eq!(r.local_state, LocalTransactionState::RollbackMessage);
    // A committed control message on the same topic becomes visible; the rolled-back one,
    // sent before it, never does, and the broker never asks about it (our check answer would
    // commit it).
    let control = tp
        .send_message_in_transaction(sample(&topic, "commit"), &())
        .unwrap();
    assert!(reader
        .find(&topic, &control.transaction_id, true, PROMPTLY)
        .is_some());
    // Two check intervals pass with no sign of it.
    assert!(reader
        .find(&topic, &r.transaction_id, true, Duration::from_secs(7))
        .is_none());
    assert_eq!(checks.load(Ordering::SeqCst), 0);
    tp.shutdown(PROMPTLY).unwrap();
}

#[test]
fn unknown_is_resolved_by_a_real_check_back() {
    let Some(ns) = namesrv("unknown_is_resolved_by_a_real_check_back") else {
        return;
    };
    let topic = unique_topic("interop-tx-check");
    let reader = Reader::new(&ns);
    reader.create_topic(&topic, 4);
    let (tp, checks) = producer(
        &ns,
        "GID_interop_tx_check",
        LocalTransactionState::CommitMessage,
    );
    let msg = sample(&topic, "unknown");
    let r = tp.send_message_in_transaction(msg.clone(), &()).unwrap();
    assert_eq!(r.local_state, LocalTransactionState::Unknown);
    // The broker checks back after transactionTimeout (2 s) within its 3 s interval; our
    // listener says commit, and the END_TRANSACTION carries the check's offsets.
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
    let stats = tp.transaction_stats();
    assert!(stats.checked >= 1 && stats.unknown >= 1 && stats.committed >= 1);
    tp.shutdown(PROMPTLY).unwrap();
}
