//! Transactions against MockBroker: commit, rollback, unknown then check-back, panicking
//! listeners, `begin` across threads, the async handle, check-backs on a heartbeat-only
//! connection, the bounded check pool, and the END_TRANSACTION headers of both paths.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::testing::{EndTransactionRecord, MockBroker, TransactionState};
use rocketmq_mio::{
    Error, ListenerResult, LocalTransactionState, Message, MessageExt, TransactionListener,
    TransactionProducer, TransactionSendResult,
};

use common::{wait_until, PROMPTLY};

use LocalTransactionState::{CommitMessage, RollbackMessage, Unknown};

/// A listener made of two closures.
struct FnListener<E, C> {
    exec: E,
    check: C,
}

impl<E, C> TransactionListener for FnListener<E, C>
where
    E: Fn(&Message, &str, &dyn Any) -> ListenerResult + Send + Sync + 'static,
    C: Fn(&MessageExt, &str) -> ListenerResult + Send + Sync + 'static,
{
    fn execute_local_transaction(
        &self,
        msg: &Message,
        transaction_id: &str,
        arg: &dyn Any,
    ) -> ListenerResult {
        (self.exec)(msg, transaction_id, arg)
    }

    fn check_local_transaction(&self, msg: &MessageExt, transaction_id: &str) -> ListenerResult {
        (self.check)(msg, transaction_id)
    }
}

fn listener<E, C>(exec: E, check: C) -> FnListener<E, C> {
    FnListener { exec, check }
}

fn start(broker: &MockBroker, group: &str, l: impl TransactionListener) -> TransactionProducer {
    TransactionProducer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .listener(l)
        .start()
        .expect("transaction producer starts")
}

fn ends(broker: &MockBroker, n: usize) -> Vec<EndTransactionRecord> {
    assert!(
        wait_until(PROMPTLY, || broker.end_transactions().len() >= n),
        "expected {n} END_TRANSACTION, got {:?}",
        broker.end_transactions()
    );
    broker.end_transactions()
}

/// Asks the broker to check `id` back, once the producer's heartbeat has registered its
/// connection.
fn check_back(broker: &MockBroker, id: &str) {
    assert!(
        wait_until(PROMPTLY, || broker.check_transaction(id) > 0),
        "no connection of the group to check {id} on"
    );
}

/// The END_TRANSACTION of the first (non-check) path matches the send response.
fn assert_first_end(
    end: &EndTransactionRecord,
    r: &TransactionSendResult,
    group: &str,
    topic: &str,
    code: i32,
) {
    assert_eq!(end.producer_group, group);
    assert_eq!(end.commit_or_rollback, code);
    assert!(!end.from_transaction_check);
    assert!(end.oneway, "END_TRANSACTION is oneway");
    assert_eq!(end.tran_state_table_offset, r.send_result.queue_offset);
    assert_eq!(
        end.commit_log_offset,
        r.send_result.offset_id().unwrap().commit_log_offset
    );
    assert_eq!(end.msg_id, r.transaction_id);
    assert_eq!(end.msg_id, r.send_result.msg_id);
    assert_eq!(
        end.transaction_id.as_deref(),
        r.send_result.transaction_id.as_deref()
    );
    assert!(
        end.transaction_id.is_some(),
        "the mock answers a transactionId"
    );
    assert_eq!(end.topic.as_deref(), Some(topic));
    assert_eq!(end.broker_name.as_deref(), Some("broker-a"));
}

#[test]
fn commit_makes_the_message_visible() {
    let broker = MockBroker::start().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let caller = std::thread::current().id();
    let tp = start(
        &broker,
        "GID_TX_COMMIT",
        listener(
            move |m: &Message, id: &str, arg: &dyn Any| {
                assert_eq!(
                    std::thread::current().id(),
                    caller,
                    "runs on the caller's thread"
                );
                s.lock().unwrap().push((
                    m.clone(),
                    id.to_string(),
                    arg.downcast_ref::<String>().cloned(),
                ));
                Ok(CommitMessage)
            },
            |_: &MessageExt, _: &str| Ok(RollbackMessage),
        ),
    );
    let msg = Message::new("TxCommit", "paid")
        .with_tags("t")
        .with_keys(["order-1"])
        .with_delay_level(3);
    let r = tp
        .send_message_in_transaction(msg, &"order-1".to_string())
        .unwrap();
    assert_eq!(r.local_state, CommitMessage);
    assert_eq!(r.transaction_id, r.send_result.msg_id);

    // The listener saw the half message with its id and the argument.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (m, id, arg) = &seen[0];
    assert_eq!(id, &r.transaction_id);
    assert_eq!(arg.as_deref(), Some("order-1"));
    assert_eq!(m.property("TRAN_MSG"), Some("true"));
    assert_eq!(m.property("PGROUP"), Some("GID_TX_COMMIT"));
    assert_eq!(m.property("UNIQ_KEY"), Some(id.as_str()));
    assert_eq!(m.property("DELAY"), None, "the delay level is removed");
    assert_eq!(
        m.property("__transactionId__"),
        r.send_result.transaction_id.as_deref()
    );

    // What the broker holds: a prepared half message, then the committed real one.
    let half = broker.half_messages();
    assert_eq!(half.len(), 1);
    assert_eq!(half[0].producer_group, "GID_TX_COMMIT");
    assert_eq!(
        sys_flag::transaction_value(half[0].message.sys_flag),
        sys_flag::TRANSACTION_PREPARED
    );
    assert_eq!(half[0].message.property("DELAY"), None);

    let end = &ends(&broker, 1)[0];
    assert_first_end(end, &r, "GID_TX_COMMIT", "TxCommit", 8);
    assert_eq!(end.remark, None);

    assert!(wait_until(PROMPTLY, || broker.message_count("TxCommit") == 1));
    let stored = &broker.messages("TxCommit")[0];
    assert_eq!(stored.body, b"paid");
    assert_eq!(stored.msg_id(), Some(r.transaction_id.as_str()));
    assert_eq!(stored.keys().collect::<Vec<_>>(), ["order-1"]);
    assert_eq!(
        sys_flag::transaction_value(stored.sys_flag),
        sys_flag::TRANSACTION_COMMIT
    );
    assert_eq!(broker.half_messages()[0].state, TransactionState::Committed);

    let stats = tp.transaction_stats();
    assert_eq!(
        (stats.committed, stats.rolled_back, stats.unknown),
        (1, 0, 0)
    );
    assert_eq!((stats.checked, stats.end_failed), (0, 0));
    tp.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn rollback_is_never_visible() {
    let broker = MockBroker::start().unwrap();
    let tp = start(
        &broker,
        "GID_TX_ROLLBACK",
        listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(RollbackMessage),
            |_: &MessageExt, _: &str| Ok(CommitMessage),
        ),
    );
    let r = tp
        .send_message_in_transaction(Message::new("TxRollback", "nope"), &())
        .unwrap();
    assert_eq!(r.local_state, RollbackMessage);
    let end = &ends(&broker, 1)[0];
    assert_first_end(end, &r, "GID_TX_ROLLBACK", "TxRollback", 12);
    assert!(wait_until(PROMPTLY, || broker.half_messages()[0].state
        == TransactionState::RolledBack));
    // Nothing is left to check, and nothing ever became visible.
    assert_eq!(broker.check_all_transactions(), 0);
    assert_eq!(broker.message_count("TxRollback"), 0);
    assert_eq!(broker.counters().messages_stored(), 0);
    assert_eq!(tp.transaction_stats().rolled_back, 1);
}

#[test]
fn unknown_then_check_back_commits_with_the_check_offsets() {
    let broker = MockBroker::start().unwrap();
    let checks = Arc::new(Mutex::new(Vec::new()));
    let c = checks.clone();
    let tp = start(
        &broker,
        "GID_TX_UNKNOWN",
        listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(Unknown),
            move |m: &MessageExt, id: &str| {
                c.lock().unwrap().push((
                    m.clone(),
                    id.to_string(),
                    std::thread::current().name().map(str::to_string),
                ));
                Ok(CommitMessage)
            },
        ),
    );
    let r = tp
        .send_message_in_transaction(Message::new("TxUnknown", "later"), &())
        .unwrap();
    assert_eq!(r.local_state, Unknown);
    let first = ends(&broker, 1)[0].clone();
    assert_first_end(&first, &r, "GID_TX_UNKNOWN", "TxUnknown", 0);
    assert_eq!(broker.message_count("TxUnknown"), 0);
    assert_eq!(broker.half_messages()[0].state, TransactionState::Prepared);

    check_back(&broker, &r.transaction_id);
    assert!(wait_until(PROMPTLY, || broker.message_count("TxUnknown") == 1));

    let checks = checks.lock().unwrap().clone();
    assert_eq!(checks.len(), 1);
    let (m, id, thread) = &checks[0];
    assert_eq!(id, &r.transaction_id);
    assert_eq!(m.body, b"later");
    assert_eq!(m.topic, "TxUnknown");
    assert_eq!(m.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert!(
        thread
            .as_deref()
            .is_some_and(|n| n.starts_with("rocketmq-tx-check-")),
        "check ran on {thread:?}"
    );

    // The answer names the re-appended copy the check named, not the original send.
    let ends = ends(&broker, 2);
    let answer = &ends[1];
    let half = &broker.half_messages()[0];
    assert_eq!(half.state, TransactionState::Committed);
    assert_eq!(answer.producer_group, "GID_TX_UNKNOWN");
    assert_eq!(answer.commit_or_rollback, 8);
    assert!(answer.from_transaction_check);
    assert!(answer.oneway);
    assert_eq!(answer.tran_state_table_offset, half.tran_state_table_offset);
    assert_eq!(answer.commit_log_offset, half.message.commit_log_offset);
    assert_ne!(
        answer.tran_state_table_offset,
        first.tran_state_table_offset
    );
    assert_ne!(answer.commit_log_offset, first.commit_log_offset);
    assert_eq!(answer.msg_id, r.transaction_id);
    assert_eq!(
        answer.transaction_id.as_deref(),
        Some(r.transaction_id.as_str())
    );
    // The check's topic, echoed: a real broker names the half topic there.
    assert_eq!(answer.topic.as_deref(), Some("RMQ_SYS_TRANS_HALF_TOPIC"));
    assert_eq!(answer.broker_name.as_deref(), Some("broker-a"));

    let stats = tp.transaction_stats();
    assert_eq!(
        (
            stats.unknown,
            stats.checked,
            stats.committed,
            stats.rolled_back
        ),
        (1, 1, 1, 0)
    );
}

#[test]
fn panicking_listener_is_unknown_then_check_back_resolves() {
    let broker = MockBroker::start().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let tp = start(
        &broker,
        "GID_TX_PANIC",
        listener(
            |_: &Message, _: &str, _: &dyn Any| -> ListenerResult {
                panic!("local transaction exploded")
            },
            move |_: &MessageExt, _: &str| -> ListenerResult {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("check exploded"),
                    1 => Err("database unavailable".into()),
                    _ => Ok(CommitMessage),
                }
            },
        ),
    );
    let r = tp
        .send_message_in_transaction(Message::new("TxPanic", "boom"), &())
        .unwrap();
    assert_eq!(r.local_state, Unknown);
    let first = &ends(&broker, 1)[0];
    assert_first_end(first, &r, "GID_TX_PANIC", "TxPanic", 0);
    let remark = first.remark.as_deref().unwrap_or_default();
    assert!(
        remark.starts_with("executeLocalTransactionBranch exception: ")
            && remark.contains("local transaction exploded"),
        "{remark}"
    );

    // Check 1 panics, check 2 fails: both answer unknown. Check 3 commits.
    check_back(&broker, &r.transaction_id);
    let e = &ends(&broker, 2)[1];
    assert!(e.from_transaction_check);
    assert_eq!(e.commit_or_rollback, 0);
    let remark = e.remark.as_deref().unwrap_or_default();
    assert!(
        remark.starts_with("checkLocalTransactionState Exception: ")
            && remark.contains("check exploded"),
        "{remark}"
    );
    check_back(&broker, &r.transaction_id);
    let e = &ends(&broker, 3)[2];
    assert_eq!(e.commit_or_rollback, 0);
    assert!(e
        .remark
        .as_deref()
        .is_some_and(|r| r.contains("database unavailable")));
    assert_eq!(broker.message_count("TxPanic"), 0);
    check_back(&broker, &r.transaction_id);
    assert!(wait_until(PROMPTLY, || broker.message_count("TxPanic") == 1));

    let stats = tp.transaction_stats();
    assert_eq!((stats.unknown, stats.checked, stats.committed), (3, 3, 1));
    // The producer still works.
    let r = tp
        .producer()
        .send(Message::new("TxPanic", "plain"))
        .unwrap();
    assert!(!r.msg_id.is_empty());
}

#[test]
fn begin_then_commit_or_rollback_from_another_thread() {
    let broker = MockBroker::start().unwrap();
    let executed = Arc::new(AtomicUsize::new(0));
    let e = executed.clone();
    let tp = start(
        &broker,
        "GID_TX_BEGIN",
        listener(
            move |_: &Message, _: &str, _: &dyn Any| {
                e.fetch_add(1, Ordering::SeqCst);
                Ok(RollbackMessage)
            },
            |_: &MessageExt, _: &str| Ok(CommitMessage),
        ),
    );
    fn assert_send<T: Send + 'static>(_: &T) {}

    let commit = tp.begin(Message::new("TxBegin", "commit me")).unwrap();
    let rollback = tp.begin(Message::new("TxBegin", "roll me back")).unwrap();
    assert_send(&commit);
    let commit_id = commit.transaction_id().to_string();
    let rollback_id = rollback.transaction_id().to_string();
    assert_eq!(commit.send_result().msg_id, commit_id);
    let committed_offset = commit.send_result().queue_offset;
    std::thread::spawn(move || {
        commit.commit().unwrap();
        rollback.rollback().unwrap();
    })
    .join()
    .unwrap();

    let ends = ends(&broker, 2);
    let by_id = |id: &str| ends.iter().find(|e| e.msg_id == id).unwrap().clone();
    let c = by_id(&commit_id);
    assert_eq!(c.commit_or_rollback, 8);
    assert!(!c.from_transaction_check);
    assert_eq!(c.tran_state_table_offset, committed_offset);
    assert_eq!(by_id(&rollback_id).commit_or_rollback, 12);
    assert!(wait_until(PROMPTLY, || broker.message_count("TxBegin") == 1));
    assert_eq!(broker.messages("TxBegin")[0].body, b"commit me");
    assert_eq!(
        executed.load(Ordering::SeqCst),
        0,
        "begin never runs the local transaction"
    );

    // A transaction dropped open sends nothing; the check-back decides (commit).
    let open = tp
        .begin(Message::new("TxBegin", "decided by check"))
        .unwrap();
    let open_id = open.transaction_id().to_string();
    drop(open);
    assert_eq!(tp.transaction_stats().unknown, 1);
    check_back(&broker, &open_id);
    assert!(wait_until(PROMPTLY, || broker.message_count("TxBegin") == 2));
    let all = broker.end_transactions();
    let for_open: Vec<_> = all.iter().filter(|e| e.msg_id == open_id).collect();
    assert_eq!(for_open.len(), 1, "only the check's answer: {for_open:?}");
    assert!(for_open[0].from_transaction_check);
}

#[test]
fn async_transaction_runs_the_listener_on_a_transaction_thread() {
    let broker = MockBroker::start().unwrap();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let t = threads.clone();
    let tp = start(
        &broker,
        "GID_TX_ASYNC",
        listener(
            move |_: &Message, _: &str, arg: &dyn Any| {
                t.lock()
                    .unwrap()
                    .push(std::thread::current().name().map(str::to_string));
                match arg.downcast_ref::<u32>() {
                    Some(n) if n % 2 == 0 => Ok(CommitMessage),
                    Some(_) => Ok(RollbackMessage),
                    None => Err("no argument".into()),
                }
            },
            |_: &MessageExt, _: &str| Ok(RollbackMessage),
        ),
    );
    let handles: Vec<_> = (0..6u32)
        .map(|i| tp.send_message_in_transaction_async(Message::new("TxAsync", format!("m{i}")), i))
        .collect();
    let mut states = Vec::new();
    for h in handles {
        states.push(h.wait().unwrap().local_state);
    }
    assert_eq!(
        states,
        [
            CommitMessage,
            RollbackMessage,
            CommitMessage,
            RollbackMessage,
            CommitMessage,
            RollbackMessage
        ]
    );
    // Awaited on an executor, with an argument of the wrong type: Unknown.
    let h = tp.send_message_in_transaction_async(Message::new("TxAsync", "x"), "not a u32");
    let r = futures_lite::future::block_on(h).unwrap();
    assert_eq!(r.local_state, Unknown);

    for name in threads.lock().unwrap().iter() {
        assert!(
            name.as_deref().is_some_and(
                |n| n.starts_with("rocketmq-tx-") && !n.starts_with("rocketmq-tx-check")
            ),
            "ran on {name:?}"
        );
    }
    assert!(wait_until(PROMPTLY, || broker.message_count("TxAsync") == 3));
    let ends = ends(&broker, 7);
    assert!(ends.iter().all(|e| !e.from_transaction_check && e.oneway));
    let stats = tp.transaction_stats();
    assert_eq!(
        (stats.committed, stats.rolled_back, stats.unknown),
        (3, 3, 1)
    );

    // Errors come back through the handle.
    let h = tp.send_message_in_transaction_async(Message::new("TxAsync", ""), 0u32);
    assert!(matches!(h.wait(), Err(Error::InvalidMessage(_))));
}

#[test]
fn check_back_on_a_connection_that_only_heartbeats() {
    let broker = MockBroker::start().unwrap();
    // The first producer leaves a transaction unknown and goes away.
    let first = start(
        &broker,
        "GID_TX_RESTART",
        listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(Unknown),
            |_: &MessageExt, _: &str| Ok(Unknown),
        ),
    );
    let r = first
        .send_message_in_transaction(Message::new("TxRestart", "orphan"), &())
        .unwrap();
    ends(&broker, 1);
    first.shutdown(Duration::from_secs(5)).unwrap();
    drop(first);
    assert!(wait_until(PROMPTLY, || broker.connection_count() == 0));

    // Its successor never sends a message: it only looks the route up, which heartbeats.
    let checked = Arc::new(Mutex::new(Vec::new()));
    let c = checked.clone();
    let second = start(
        &broker,
        "GID_TX_RESTART",
        listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(RollbackMessage),
            move |_: &MessageExt, id: &str| {
                c.lock().unwrap().push(id.to_string());
                Ok(CommitMessage)
            },
        ),
    );
    second.producer().publish_queues("TxRestart").unwrap();
    check_back(&broker, &r.transaction_id);
    assert!(wait_until(PROMPTLY, || broker.message_count("TxRestart") == 1));
    assert_eq!(*checked.lock().unwrap(), [r.transaction_id]);
    assert_eq!(broker.counters().sends(), 1, "only the first producer sent");
    let answer = broker.end_transactions().pop().unwrap();
    assert!(answer.from_transaction_check);
    assert_eq!(answer.commit_or_rollback, 8);
    assert_eq!(second.transaction_stats().checked, 1);
}

#[test]
fn check_pool_overflow_is_counted_and_blocks_nothing() {
    let broker = MockBroker::start().unwrap();
    let (gate_tx, gate_rx) = crossbeam_channel::unbounded::<()>();
    let entered = Arc::new(AtomicUsize::new(0));
    let e = entered.clone();
    let tp = TransactionProducer::builder("GID_TX_OVERFLOW")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .transaction_check_threads(1)
        .transaction_check_queue(1)
        .listener(listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(Unknown),
            move |_: &MessageExt, _: &str| {
                e.fetch_add(1, Ordering::SeqCst);
                // Held until the test drops the gate's sender.
                let _ = gate_rx.recv();
                Ok(CommitMessage)
            },
        ))
        .start()
        .unwrap();
    let ids: Vec<String> = (0..4)
        .map(|i| {
            tp.send_message_in_transaction(Message::new("TxOverflow", format!("m{i}")), &())
                .unwrap()
                .transaction_id
        })
        .collect();
    ends(&broker, 4);

    // The one check thread takes the first check and blocks in the listener ...
    check_back(&broker, &ids[0]);
    assert!(wait_until(PROMPTLY, || entered.load(Ordering::SeqCst) == 1));
    // ... one more check fits in the queue, the other two overflow.
    for id in &ids[1..] {
        check_back(&broker, id);
    }
    assert!(wait_until(PROMPTLY, || tp
        .transaction_stats()
        .check_overflow
        == 2));

    // Nothing else is blocked: sync sends (I/O threads) and callbacks (callback pool) go on.
    let r = tp
        .producer()
        .send(Message::new("TxOverflow", "plain"))
        .unwrap();
    assert!(!r.msg_id.is_empty());
    let (tx, rx) = mpsc::channel();
    tp.producer()
        .send_with_callback(Message::new("TxOverflow", "callback"), move |res| {
            let _ = tx.send(res.is_ok());
        });
    assert_eq!(rx.recv_timeout(PROMPTLY), Ok(true));
    assert_eq!(entered.load(Ordering::SeqCst), 1);

    // Open the gate: the running and the queued checks answer; the dropped ones are checked
    // again and resolve too.
    drop(gate_tx);
    assert!(wait_until(PROMPTLY, || tp.transaction_stats().checked == 2));
    assert!(wait_until(PROMPTLY, || broker.message_count("TxOverflow") == 4));
    let left: Vec<String> = broker
        .half_messages()
        .iter()
        .filter(|h| h.state == TransactionState::Prepared)
        .filter_map(|h| h.message.msg_id().map(str::to_string))
        .collect();
    assert_eq!(left.len(), 2);
    for (i, id) in left.iter().enumerate() {
        // One at a time: the idle check thread takes each before the next arrives.
        check_back(&broker, id);
        assert!(wait_until(PROMPTLY, || tp.transaction_stats().checked == 3 + i as u64));
    }
    assert!(wait_until(PROMPTLY, || broker.message_count("TxOverflow") == 6));
    let stats = tp.transaction_stats();
    assert_eq!(
        (stats.checked, stats.check_overflow, stats.committed),
        (4, 2, 4)
    );
}

#[test]
fn shut_down_producer_refuses_transactions() {
    let broker = MockBroker::start().unwrap();
    let tp = start(
        &broker,
        "GID_TX_SHUTDOWN",
        listener(
            |_: &Message, _: &str, _: &dyn Any| Ok(CommitMessage),
            |_: &MessageExt, _: &str| Ok(CommitMessage),
        ),
    );
    let open = tp.begin(Message::new("TxShutdown", "open")).unwrap();
    tp.shutdown(Duration::from_secs(5)).unwrap();
    assert!(tp.is_shut_down());
    assert!(matches!(
        tp.send_message_in_transaction(Message::new("TxShutdown", "x"), &()),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        tp.begin(Message::new("TxShutdown", "x")),
        Err(Error::Shutdown)
    ));
    let h = tp.send_message_in_transaction_async(Message::new("TxShutdown", "x"), ());
    assert!(matches!(h.wait(), Err(Error::Shutdown)));
    assert!(matches!(open.commit(), Err(Error::Shutdown)));
    assert_eq!(tp.transaction_stats().end_failed, 1);
    assert_eq!(broker.message_count("TxShutdown"), 0);
}

#[test]
fn transaction_counters_appear_in_the_producer_stats() {
    let broker = MockBroker::start().unwrap();
    let tp = start(
        &broker,
        "GID_TX_STATS",
        listener(
            |m: &Message, _: &str, _: &dyn Any| {
                Ok(if m.body() == b"yes" {
                    CommitMessage
                } else {
                    RollbackMessage
                })
            },
            |_: &MessageExt, _: &str| Ok(RollbackMessage),
        ),
    );
    // Attached at start, before any transaction.
    assert_eq!(tp.producer().stats().transactions, Some(Default::default()));
    tp.send_message_in_transaction(Message::new("TxStats", "yes"), &())
        .unwrap();
    tp.send_message_in_transaction(Message::new("TxStats", "no"), &())
        .unwrap();
    let stats = tp.producer().stats();
    let t = stats
        .transactions
        .expect("transaction counters in the snapshot");
    assert_eq!((t.committed, t.rolled_back), (1, 1));
    assert_eq!(t, tp.transaction_stats());
    let json = stats.to_json();
    assert_eq!(json["transactions"]["committed"], 1);
    assert_eq!(json["transactions"]["rolled_back"], 1);
    assert_eq!(json["totals"]["succeeded"], 2);
}

#[test]
fn shutdown_waits_for_a_running_async_transaction() {
    let broker = MockBroker::start().unwrap();
    let (gate_tx, gate_rx) = crossbeam_channel::unbounded::<()>();
    let entered = Arc::new(AtomicUsize::new(0));
    let e = entered.clone();
    let tp = start(
        &broker,
        "GID_TX_DRAIN",
        listener(
            move |_: &Message, _: &str, _: &dyn Any| {
                e.fetch_add(1, Ordering::SeqCst);
                let _ = gate_rx.recv();
                Ok(CommitMessage)
            },
            |_: &MessageExt, _: &str| Ok(RollbackMessage),
        ),
    );
    let handle = tp.send_message_in_transaction_async(Message::new("TxDrain", "slow"), ());
    assert!(wait_until(PROMPTLY, || entered.load(Ordering::SeqCst) == 1));
    let stopper = {
        let tp = tp.clone();
        std::thread::spawn(move || tp.shutdown(PROMPTLY))
    };
    // Shutdown has begun: new transactions are refused while the running one goes on.
    assert!(wait_until(PROMPTLY, || tp.is_shut_down()));
    assert!(matches!(
        tp.send_message_in_transaction(Message::new("TxDrain", "late"), &()),
        Err(Error::Shutdown)
    ));
    drop(gate_tx);
    let r = handle.wait().unwrap();
    assert_eq!(r.local_state, CommitMessage);
    stopper.join().unwrap().unwrap();
    // Its END_TRANSACTION went out before the connections closed.
    assert!(wait_until(PROMPTLY, || broker.message_count("TxDrain") == 1));
    assert_eq!(tp.transaction_stats().end_failed, 0);
}

#[test]
fn half_stored_but_not_safe_is_rolled_back_without_the_listener() {
    use rocketmq_mio::protocol::{RequestCode, ResponseCode};
    let broker = MockBroker::start().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    let tp = start(
        &broker,
        "GID_TX_FLUSH",
        listener(
            move |_: &Message, _: &str, _: &dyn Any| {
                r2.fetch_add(1, Ordering::SeqCst);
                Ok(CommitMessage)
            },
            |_: &MessageExt, _: &str| Ok(CommitMessage),
        ),
    );
    tp.producer().publish_queues("TxFlush").unwrap();
    broker.store_with_status_next(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        1,
    );
    let r = tp
        .send_message_in_transaction(Message::new("TxFlush", "x"), &())
        .unwrap();
    // Java: a half message that is not safely stored is rolled back; the local transaction
    // never runs.
    assert_eq!(r.local_state, RollbackMessage);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let end = &ends(&broker, 1)[0];
    assert_first_end(
        end,
        &r,
        "GID_TX_FLUSH",
        "TxFlush",
        sys_flag::TRANSACTION_ROLLBACK,
    );
    assert!(wait_until(PROMPTLY, || broker
        .half_messages()
        .iter()
        .all(|h| h.state == TransactionState::RolledBack)));
    assert_eq!(broker.message_count("TxFlush"), 0);
}
