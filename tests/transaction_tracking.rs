//! Transaction state tracking against MockBroker: `TransactionProducer::transaction(id)`,
//! `in_doubt()`, the table in `health()`, and its bounds (including check-backs for a
//! transaction dropped from the table).

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::testing::{MockBroker, TransactionState};
use rocketmq_mio::transaction::TransactionPhase;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, TransactionListener,
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

/// Executes with the state passed as `arg` (an error for `None`); answers checks with `check`.
struct Scripted {
    check: Arc<Mutex<LocalTransactionState>>,
}

impl TransactionListener for Scripted {
    fn execute_local_transaction(&self, _: &Message, _: &str, arg: &dyn Any) -> ListenerResult {
        match arg.downcast_ref::<Option<LocalTransactionState>>() {
            Some(Some(s)) => Ok(*s),
            _ => Err("the database is down".into()),
        }
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(*self.check.lock())
    }
}

fn start(
    broker: &MockBroker,
    records: usize,
) -> (TransactionProducer, Arc<Mutex<LocalTransactionState>>) {
    let check = Arc::new(Mutex::new(LocalTransactionState::CommitMessage));
    let tp = TransactionProducer::builder("GID_TRACK")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .transaction_records(records)
        .listener(Scripted {
            check: check.clone(),
        })
        .start()
        .unwrap();
    (tp, check)
}

fn tx_msg(i: usize) -> Message {
    Message::new("TrackTopic", format!("order-{i}")).with_keys([format!("o-{i}"), "batch-7".into()])
}

const COMMIT: Option<LocalTransactionState> = Some(LocalTransactionState::CommitMessage);
const UNKNOWN: Option<LocalTransactionState> = Some(LocalTransactionState::Unknown);

#[test]
fn a_committed_transaction_is_recorded_end_to_end() {
    watchdog(PROMPTLY * 2, || {
        let broker = MockBroker::start().unwrap();
        let (tp, _) = start(&broker, 100);
        let r = tp.send_message_in_transaction(tx_msg(1), &COMMIT).unwrap();
        let rec = tp.transaction(&r.transaction_id).expect("recorded");
        assert_eq!(rec.transaction_id, r.transaction_id);
        assert_eq!(rec.topic, "TrackTopic");
        assert_eq!(rec.keys, ["o-1", "batch-7"]);
        let half = rec.half.as_ref().expect("half stored");
        assert_eq!(half.queue, r.send_result.queue);
        assert_eq!(half.queue_offset, r.send_result.queue_offset);
        assert_eq!(half.offset_msg_id, r.send_result.offset_msg_id);
        assert_eq!(
            half.commit_log_offset,
            Some(r.send_result.offset_id().unwrap().commit_log_offset)
        );
        assert_eq!(rec.local_state, Some(LocalTransactionState::CommitMessage));
        assert!(rec.local_state_at.is_some() && rec.local_state_at >= Some(rec.begun_at));
        let end = rec.end.as_ref().unwrap();
        assert_eq!(end.state, LocalTransactionState::CommitMessage);
        assert!(!end.from_check && end.error.is_none());
        assert_eq!((rec.checks, rec.error.as_ref()), (0, None));
        assert_eq!(rec.phase, TransactionPhase::Committed);
        assert!(tp.in_doubt().is_empty());
        assert_eq!(rec.to_json()["phase"], "committed");
        assert!(tp.transaction("no-such-id").is_none());
        tp.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn unknown_transactions_are_in_doubt_until_a_check_back_decides() {
    watchdog(PROMPTLY * 2, || {
        let broker = MockBroker::start().unwrap();
        let (tp, check) = start(&broker, 100);
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let arg = if i == 1 { None } else { UNKNOWN }; // #1: the listener fails
                tp.send_message_in_transaction(tx_msg(i), &arg)
                    .unwrap()
                    .transaction_id
            })
            .collect();
        let committed = tp.send_message_in_transaction(tx_msg(9), &COMMIT).unwrap();
        let doubt: Vec<String> = tp
            .in_doubt()
            .into_iter()
            .map(|r| r.transaction_id)
            .collect();
        assert_eq!(doubt, ids, "oldest first, the committed one absent");
        let failed = tp.transaction(&ids[1]).unwrap();
        assert_eq!(failed.local_state, Some(LocalTransactionState::Unknown));
        assert!(failed
            .error
            .as_deref()
            .unwrap()
            .contains("the database is down"));
        let health = tp.producer().health();
        let table = health
            .transactions
            .as_ref()
            .expect("a transaction producer's table");
        assert_eq!(table.records, 4);
        let count = |p: TransactionPhase| table.by_phase.iter().find(|(q, _)| *q == p).unwrap().1;
        assert_eq!(count(TransactionPhase::InDoubt), 3);
        assert_eq!(count(TransactionPhase::Committed), 1);
        assert!(table.oldest_in_doubt.is_some());
        let json = health.to_json();
        assert_eq!(json["transactions"]["by_phase"]["in_doubt"], 3);
        assert!(json["transactions"]["oldest_in_doubt_ms"].is_u64());

        // A check-back rolls #0 back and commits #2 (the listener's answer changes).
        *check.lock() = LocalTransactionState::RollbackMessage;
        assert_eq!(broker.check_transaction(&ids[0]), 1);
        assert!(wait_until(PROMPTLY, || tp
            .transaction(&ids[0])
            .is_some_and(|r| r.phase == TransactionPhase::RolledBack)));
        *check.lock() = LocalTransactionState::CommitMessage;
        assert_eq!(broker.check_transaction(&ids[2]), 1);
        assert!(wait_until(PROMPTLY, || tp
            .transaction(&ids[2])
            .is_some_and(|r| r.phase == TransactionPhase::Committed)));
        let r2 = tp.transaction(&ids[2]).unwrap();
        assert_eq!(r2.checks, 1);
        assert!(r2.last_check_at.is_some());
        assert_eq!(
            r2.last_check_from.as_deref(),
            Some(broker.broker_addr().as_str())
        );
        assert!(r2.end.as_ref().unwrap().from_check);
        assert_eq!(
            r2.local_state,
            Some(LocalTransactionState::Unknown),
            "what it returned"
        );
        assert!(wait_until(PROMPTLY, || broker.transaction_state(&ids[2])
            == Some(TransactionState::Committed)));
        // A check that says Unknown again leaves it in doubt, counted.
        *check.lock() = LocalTransactionState::Unknown;
        assert_eq!(broker.check_transaction(&ids[1]), 1);
        assert!(wait_until(PROMPTLY, || tp
            .transaction(&ids[1])
            .unwrap()
            .checks
            == 1));
        let doubt: Vec<String> = tp
            .in_doubt()
            .into_iter()
            .map(|r| r.transaction_id)
            .collect();
        assert_eq!(doubt, [ids[1].clone()]);
        assert_eq!(
            tp.transaction(&committed.transaction_id).unwrap().phase,
            TransactionPhase::Committed
        );
        tp.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn open_transactions_async_sends_and_failed_halves_are_recorded() {
    watchdog(PROMPTLY * 2, || {
        let broker = MockBroker::start().unwrap();
        let (tp, _) = start(&broker, 100);
        let t = tp.begin(tx_msg(1)).unwrap();
        let open_id = t.transaction_id().to_string();
        assert_eq!(
            tp.transaction(&open_id).unwrap().phase,
            TransactionPhase::Executing
        );
        t.rollback().unwrap();
        let rec = tp.transaction(&open_id).unwrap();
        assert_eq!(
            rec.local_state,
            Some(LocalTransactionState::RollbackMessage)
        );
        assert_eq!(rec.phase, TransactionPhase::RolledBack);

        let dropped = tp.begin(tx_msg(2)).unwrap();
        let dropped_id = dropped.transaction_id().to_string();
        drop(dropped);
        let rec = tp.transaction(&dropped_id).unwrap();
        assert_eq!(rec.phase, TransactionPhase::InDoubt);
        assert!(rec.error.as_deref().unwrap().contains("dropped"));

        let r = tp
            .send_message_in_transaction_async(tx_msg(3), COMMIT)
            .wait()
            .unwrap();
        assert_eq!(
            tp.transaction(&r.transaction_id).unwrap().phase,
            TransactionPhase::Committed
        );

        broker.fail_next(
            RequestCode::SEND_MESSAGE_V2,
            ResponseCode::MESSAGE_ILLEGAL,
            1,
        );
        assert!(tp.send_message_in_transaction(tx_msg(4), &COMMIT).is_err());
        let failed: Vec<_> = tp
            .producer()
            .health()
            .transactions
            .unwrap()
            .by_phase
            .into_iter()
            .filter(|(p, _)| *p == TransactionPhase::Failed)
            .collect();
        assert_eq!(failed, [(TransactionPhase::Failed, 1)]);
        tp.shutdown(PROMPTLY).unwrap();
    });
}

/// Capacity 2: older records are dropped (counted); a check-back for a dropped transaction is
/// still answered by the listener, counted as untracked, and adds no record.
#[test]
fn the_table_is_bounded_and_check_backs_survive_eviction() {
    watchdog(PROMPTLY * 2, || {
        let broker = MockBroker::start().unwrap();
        let (tp, _) = start(&broker, 2);
        let ids: Vec<String> = (0..5)
            .map(|i| {
                tp.send_message_in_transaction(tx_msg(i), &UNKNOWN)
                    .unwrap()
                    .transaction_id
            })
            .collect();
        for id in &ids[..3] {
            assert!(tp.transaction(id).is_none(), "{id} should be evicted");
        }
        let table = tp.producer().health().transactions.unwrap();
        assert_eq!(
            (table.records, table.capacity, table.evicted_full),
            (2, 2, 3)
        );
        let doubt: Vec<String> = tp
            .in_doubt()
            .into_iter()
            .map(|r| r.transaction_id)
            .collect();
        assert_eq!(doubt, ids[3..]);
        // The broker checks the evicted #0: the listener commits it all the same.
        assert_eq!(broker.check_transaction(&ids[0]), 1);
        assert!(wait_until(PROMPTLY, || broker.transaction_state(&ids[0])
            == Some(TransactionState::Committed)));
        assert!(wait_until(PROMPTLY, || tp
            .producer()
            .health()
            .transactions
            .unwrap()
            .untracked_checks
            == 1));
        assert!(tp.transaction(&ids[0]).is_none());
        assert_eq!(tp.producer().health().transactions.unwrap().records, 2);
        assert_eq!(tp.transaction_stats().checked, 1);
        tp.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn a_plain_producer_has_no_transaction_table() {
    let broker = MockBroker::start().unwrap();
    let p = rocketmq_mio::Producer::builder("GID_PLAIN")
        .name_server(broker.namesrv_addr())
        .start()
        .unwrap();
    assert!(p.health().transactions.is_none());
    assert!(p.health().to_json()["transactions"].is_null());
    p.shutdown(PROMPTLY).unwrap();
}
