//! MockBroker transactions from a plain socket client: half messages, END_TRANSACTION checks,
//! check-backs (manual and automatic) and what becomes visible.

mod mock_support;

use std::time::{Duration, Instant};

use mock_support::{end_tx, send_half, wait_for, Client, PATIENCE};
use rocketmq_mio::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, UnregisterClientRequestHeader,
    ViewMessageByIdRequestHeader,
};
use rocketmq_mio::protocol::message_codec::{self, sys_flag};
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::testing::{MockBroker, MockCluster, TransactionState};
use rocketmq_mio::OffsetMessageId;

fn offset_of(msg_id: &str) -> i64 {
    OffsetMessageId::parse(msg_id).unwrap().commit_log_offset
}

/// Reads the next frame, which must be a check-back; returns its header and decoded body.
fn read_check(c: &mut Client) -> (CheckTransactionStateRequestHeader, rocketmq_mio::MessageExt) {
    let check = c.read().unwrap();
    assert_eq!(check.code, RequestCode::CHECK_TRANSACTION_STATE);
    assert!(check.is_oneway() && !check.is_response());
    let header = CheckTransactionStateRequestHeader::read_from(&check.ext_fields).unwrap();
    let mut body = message_codec::decode_stored_messages(&check.body).unwrap();
    assert_eq!(body.len(), 1);
    (header, body.remove(0))
}

#[test]
fn check_back_round_trip() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("TxTopic", 4);
    let mut c = Client::connect(&broker.broker_addr());
    assert_eq!(
        c.heartbeat("client-tx", "GID_TX").code,
        ResponseCode::SUCCESS
    );

    let sent = send_half(&mut c, "TxTopic", "GID_TX", "TX-RT-1");
    assert_eq!(sent.transaction_id.as_deref(), Some("TX-RT-1"));
    assert_eq!(
        broker.message_count("TxTopic"),
        0,
        "a half message is not visible"
    );
    assert_eq!(
        broker.transaction_state("TX-RT-1"),
        Some(TransactionState::Prepared)
    );
    assert_eq!(broker.transaction_state("nobody"), None);

    // The producer does not know: UNKNOWN changes nothing.
    c.send(end_tx(
        "TxTopic",
        "GID_TX",
        sent.queue_offset,
        offset_of(&sent.msg_id),
        0,
        false,
        "TX-RT-1",
    ));

    assert_eq!(broker.check_transaction("TX-RT-1"), 1);
    let (check, msg) = read_check(&mut c);
    assert_eq!(check.topic.as_deref(), Some("RMQ_SYS_TRANS_HALF_TOPIC"));
    assert_eq!(check.transaction_id.as_deref(), Some("TX-RT-1"));
    assert_eq!(check.msg_id.as_deref(), Some("TX-RT-1"));
    assert_eq!(check.broker_name.as_deref(), Some("broker-a"));
    assert_ne!(
        check.commit_log_offset,
        offset_of(&sent.msg_id),
        "a re-stored copy"
    );
    assert_ne!(check.tran_state_table_offset, sent.queue_offset);
    assert_eq!(msg.topic, "TxTopic");
    assert_eq!(msg.queue_id, 0);
    assert_eq!(msg.body, b"half");
    assert_eq!(msg.commit_log_offset, check.commit_log_offset);
    assert_eq!(msg.queue_offset, check.tran_state_table_offset);
    assert_eq!(msg.property("PGROUP"), Some("GID_TX"));
    assert_eq!(msg.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(msg.property("REAL_TOPIC"), Some("TxTopic"));
    assert_eq!(sys_flag::transaction_value(msg.sys_flag), 0);

    // The answer carries the check's offsets.
    c.send(end_tx(
        "TxTopic",
        "GID_TX",
        check.tran_state_table_offset,
        check.commit_log_offset,
        8,
        true,
        "TX-RT-1",
    ));
    assert!(wait_for(PATIENCE, || broker.message_count("TxTopic") == 1));
    assert_eq!(
        broker.transaction_state("TX-RT-1"),
        Some(TransactionState::Committed)
    );
    let m = &broker.messages("TxTopic")[0];
    assert_eq!(m.body, b"half");
    assert_eq!(m.msg_id(), Some("TX-RT-1"));
    assert_eq!(sys_flag::transaction_value(m.sys_flag), 8);
    assert_eq!(m.prepared_transaction_offset, check.commit_log_offset);
    for gone in ["TRAN_MSG", "REAL_TOPIC", "REAL_QID"] {
        assert_eq!(m.property(gone), None, "{gone}");
    }
    assert_eq!(m.property("PGROUP"), Some("GID_TX"));
    assert_eq!(m.property("TRANSACTION_CHECK_TIMES"), Some("1"));

    let ends = broker.end_transactions();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0].commit_or_rollback, 0);
    assert!(!ends[0].from_transaction_check);
    assert!(ends[1].from_transaction_check && ends[1].oneway);
    assert_eq!(
        ends[1].tran_state_table_offset,
        check.tran_state_table_offset
    );
    assert_eq!(ends[1].commit_log_offset, check.commit_log_offset);
    assert_eq!(ends[1].transaction_id.as_deref(), Some("TX-RT-1"));
    let counters = broker.counters();
    assert_eq!(counters.end_transactions(), 2);
    assert_eq!(counters.half_messages(), 1);
    assert_eq!(counters.checks_sent(), 1);
    // Resolved: nothing left to check.
    assert_eq!(broker.check_all_transactions(), 0);
}

#[test]
fn end_transaction_is_verified_like_a_real_broker() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("TxV", 1);
    let mut c = Client::connect(&broker.broker_addr());
    let h = send_half(&mut c, "TxV", "GID_V", "V-1");
    let off = offset_of(&h.msg_id);
    // Sent as a request (not oneway) so the answers show: a real broker answers the same way
    // to a oneway one, but nobody reads it.
    let ask = |c: &mut Client, group: &str, state: i64, offset: i64, decision: i32| {
        let mut req = end_tx("TxV", group, state, offset, decision, false, "V-1");
        req.flag = 0;
        c.call(req)
    };
    let r = ask(&mut c, "GID_OTHER", h.queue_offset, off, 8);
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert!(
        r.remark_str().contains("producer group"),
        "{}",
        r.remark_str()
    );
    let r = ask(&mut c, "GID_V", h.queue_offset + 1, off, 8);
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert!(r.remark_str().contains("offset"), "{}", r.remark_str());
    let r = ask(&mut c, "GID_V", h.queue_offset, off + 1, 8);
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(broker.message_count("TxV"), 0);
    assert_eq!(
        broker.transaction_state("V-1"),
        Some(TransactionState::Prepared)
    );
    // The right one rolls it back; a later commit changes nothing.
    assert_eq!(ask(&mut c, "GID_V", h.queue_offset, off, 12).code, 0);
    assert_eq!(ask(&mut c, "GID_V", h.queue_offset, off, 8).code, 0);
    assert_eq!(
        broker.transaction_state("V-1"),
        Some(TransactionState::RolledBack)
    );
    assert_eq!(broker.message_count("TxV"), 0);
    assert_eq!(broker.counters().messages_stored(), 0);
    assert_eq!(broker.end_transactions().len(), 5);

    // The half record itself, viewed by its offset, sits in the half topic as sent.
    let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
    ViewMessageByIdRequestHeader { offset: off }.write_to(&mut view.ext_fields);
    let r = c.call(view);
    let half = &message_codec::decode_stored_messages(&r.body).unwrap()[0];
    assert_eq!(half.topic, "RMQ_SYS_TRANS_HALF_TOPIC");
    assert_eq!(half.queue_offset, h.queue_offset);
    assert_eq!(half.property("REAL_TOPIC"), Some("TxV"));
    assert_eq!(half.property("__transactionId__"), Some("V-1"));
    assert_eq!(
        sys_flag::transaction_value(half.sys_flag),
        sys_flag::TRANSACTION_PREPARED
    );
}

#[test]
fn checks_need_a_registered_live_connection() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("TxC", 1);
    let mut sender = Client::connect(&broker.broker_addr());
    send_half(&mut sender, "TxC", "GID_C", "C-1");
    // Nobody heartbeats for GID_C: no check can go out.
    assert_eq!(broker.check_transaction("C-1"), 0);

    // A second connection registers; checks go to it.
    let mut listener = Client::connect(&broker.broker_addr());
    listener.heartbeat("client-c", "GID_C");
    assert_eq!(broker.check_transaction("C-1"), 1);
    let (first, _) = read_check(&mut listener);
    // A second check re-stores the message again: new offsets, the count goes up.
    assert_eq!(broker.check_transaction("C-1"), 1);
    let (second, msg) = read_check(&mut listener);
    assert!(second.commit_log_offset > first.commit_log_offset);
    assert_eq!(
        second.tran_state_table_offset,
        first.tran_state_table_offset + 1
    );
    assert_eq!(msg.property("TRANSACTION_CHECK_TIMES"), Some("2"));
    let half = &broker.half_messages()[0];
    assert_eq!(half.checks, 2);
    assert_eq!(half.tran_state_table_offset, second.tran_state_table_offset);
    assert_eq!(half.message.commit_log_offset, second.commit_log_offset);

    // The first check's offsets no longer resolve it.
    let mut stale = end_tx(
        "TxC",
        "GID_C",
        first.tran_state_table_offset,
        first.commit_log_offset,
        8,
        true,
        "C-1",
    );
    stale.flag = 0;
    assert_eq!(listener.call(stale).code, ResponseCode::SYSTEM_ERROR);

    // Unregistering the group stops checks through that connection.
    let mut un = RemotingCommand::request(RequestCode::UNREGISTER_CLIENT);
    UnregisterClientRequestHeader {
        client_id: "client-c".into(),
        producer_group: Some("GID_C".into()),
        consumer_group: None,
    }
    .write_to(&mut un.ext_fields);
    assert_eq!(listener.call(un).code, ResponseCode::SUCCESS);
    assert_eq!(broker.check_transaction("C-1"), 0);

    // Registered again, then gone: a closed connection gets no checks.
    let mut again = Client::connect(&broker.broker_addr());
    again.heartbeat("client-c2", "GID_C");
    drop(again);
    assert!(wait_for(PATIENCE, || broker.check_transaction("C-1") == 0
        && broker.connection_count() == 2));
}

#[test]
fn automatic_checks_wait_for_the_timeout_and_stop_at_the_limit() {
    let broker = MockBroker::builder()
        .topic("TxA", 1)
        .transaction_check_interval(Duration::from_millis(20))
        .transaction_timeout(Duration::from_millis(200))
        .transaction_check_max(2)
        .start()
        .unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    c.heartbeat("client-a", "GID_A");
    let started = Instant::now();
    let sent = send_half(&mut c, "TxA", "GID_A", "A-1");
    // Two checks arrive, none before the timeout, then no more.
    let (first, _) = read_check(&mut c);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (second, msg) = read_check(&mut c);
    assert_eq!(msg.property("TRANSACTION_CHECK_TIMES"), Some("2"));
    assert!(first.tran_state_table_offset > sent.queue_offset);
    assert!(second.tran_state_table_offset > first.tran_state_table_offset);
    // Fifteen more intervals: nothing comes.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let e = c.read().expect_err("no third automatic check");
    assert!(e.starts_with("io:"), "{e}");
    c.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(broker.counters().checks_sent(), 2);
    // A manual check is not limited.
    assert_eq!(broker.check_transaction("A-1"), 1);
    let (third, _) = read_check(&mut c);
    // Answered with rollback: stays invisible, and automatic checks have nothing to do.
    c.send(end_tx(
        "TxA",
        "GID_A",
        third.tran_state_table_offset,
        third.commit_log_offset,
        12,
        true,
        "A-1",
    ));
    assert!(wait_for(PATIENCE, || broker.transaction_state("A-1")
        == Some(TransactionState::RolledBack)));
    assert_eq!(broker.message_count("TxA"), 0);
}

#[test]
fn slaves_refuse_transactions_and_sends() {
    let cluster = MockCluster::start_with_slaves(1).unwrap();
    let slave = &cluster.slaves()[0];
    let mut c = Client::connect(&slave.broker_addr());
    let p = mock_support::props(&[("UNIQ_KEY", "S-1"), ("TRAN_MSG", "true"), ("PGROUP", "G")]);
    let r = c.call(mock_support::send_v2("SlaveTopic", 0, &p, b"x"));
    assert_eq!(r.code, ResponseCode::SERVICE_NOT_AVAILABLE);
    let mut end = end_tx("SlaveTopic", "G", 0, 0, 8, false, "S-1");
    end.flag = 0;
    assert_eq!(c.call(end).code, ResponseCode::SLAVE_NOT_AVAILABLE);
    assert_eq!(slave.message_count("SlaveTopic"), 0);
}
