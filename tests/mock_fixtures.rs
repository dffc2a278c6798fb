//! MockBroker against frames captured from a real RocketMQ name server and broker
//! (`tests/data/`, see its README): the captured requests are replayed to the mock as they
//! were sent, and its answers must have the real answers' shape: codes, flags, extFields keys,
//! id formats, offsets, route and stored-message layouts.

mod mock_support;

use std::collections::BTreeSet;

use mock_support::{fixture, Client};
use rocketmq_mio::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, SendMessageResponseHeader,
    ViewMessageByIdRequestHeader,
};
use rocketmq_mio::protocol::message_codec::{self, sys_flag};
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::OffsetMessageId;
use serde_json::Value;

fn keys(cmd: &RemotingCommand) -> BTreeSet<String> {
    cmd.ext_fields.iter().map(|(k, _)| k.to_string()).collect()
}

fn prop_keys(m: &rocketmq_mio::MessageExt) -> BTreeSet<String> {
    m.properties.iter().map(|(k, _)| k.clone()).collect()
}

/// Replays a captured request on `c` and checks the answer against the captured answer's
/// code, flag and extFields keys.
fn replay(c: &mut Client, request: &str, expected: &str) -> RemotingCommand {
    let r = c.call(fixture(request));
    let want = fixture(expected);
    assert_eq!(r.code, want.code, "{request}: {}", r.remark_str());
    assert_eq!(r.flag, want.flag, "{request}: flag");
    assert_eq!(keys(&r), keys(&want), "{request}: extFields keys");
    r
}

fn offset_id(id: &str) -> OffsetMessageId {
    assert_eq!(id.len(), 32, "{id}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
    OffsetMessageId::parse(id).unwrap()
}

#[test]
fn routes_answer_like_the_real_name_server() {
    let broker = MockBroker::start().unwrap();
    let mut c = Client::connect(&broker.namesrv_addr());
    let r = replay(
        &mut c,
        "route_request_tbw102.bin",
        "route_response_tbw102.bin",
    );
    let ours: Value = serde_json::from_slice(&r.body).unwrap();
    let real: Value = serde_json::from_slice(&fixture("route_response_tbw102.bin").body).unwrap();
    assert_eq!(ours["queueDatas"], real["queueDatas"], "perm 7, 8 queues");
    let (ob, rb) = (&ours["brokerDatas"][0], &real["brokerDatas"][0]);
    assert_eq!(ob["cluster"], rb["cluster"]);
    assert_eq!(ob["brokerName"], rb["brokerName"]);
    assert_eq!(ob["brokerAddrs"]["0"], broker.broker_addr().as_str());
    assert_eq!(ours["filterServerTable"], real["filterServerTable"]);

    // A topic nobody has: the same code, no body.
    let mut missing = fixture("route_request_tbw102.bin");
    missing.ext_fields.insert("topic", "NoSuchTopic");
    let r = c.call(missing);
    let want = fixture("route_response_missing_topic.bin");
    assert_eq!(r.code, want.code);
    assert_eq!(r.flag, want.flag);
    assert!(r.body.is_empty());
    assert!(r.remark_str().contains("NoSuchTopic"), "{}", r.remark_str());
}

#[test]
fn sends_answer_like_the_real_broker() {
    let broker = MockBroker::start().unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    let heartbeat = replay(&mut c, "heartbeat_request.bin", "heartbeat_response.bin");
    assert_eq!(
        heartbeat.ext_fields.get("IS_SUPPORT_HEART_BEAT_V2"),
        Some("true")
    );
    assert_eq!(
        broker.counters().clients(),
        [(
            "127.0.0.1@fixture".to_string(),
            vec!["FIXTURE_GROUP".to_string()]
        )]
    );

    // A plain send: the same fields; the offset id names this broker at offset 0.
    let r = replay(&mut c, "send_v2_request.bin", "send_v2_response.bin");
    let want = fixture("send_v2_response.bin");
    for key in [
        "queueId",
        "queueOffset",
        "transactionId",
        "MSG_REGION",
        "TRACE_ON",
    ] {
        assert_eq!(r.ext_fields.get(key), want.ext_fields.get(key), "{key}");
    }
    let id = offset_id(r.ext_fields.get("msgId").unwrap());
    assert_eq!(id.store_host, broker.addr());
    assert_eq!(id.commit_log_offset, 0);
    let real_id = offset_id(want.ext_fields.get("msgId").unwrap());
    assert_eq!(real_id.commit_log_offset, 0);

    // VIEW_MESSAGE_BY_ID: the stored record as the real broker keeps it.
    let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
    ViewMessageByIdRequestHeader { offset: 0 }.write_to(&mut view.ext_fields);
    let r = c.call(view);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let ours = message_codec::decode_stored_messages(&r.body).unwrap();
    let real =
        message_codec::decode_stored_messages(&fixture("view_message_response.bin").body).unwrap();
    assert_eq!(ours.len(), 1);
    let (o, w) = (&ours[0], &real[0]);
    assert_eq!(o.topic, w.topic);
    assert_eq!(o.body, w.body);
    assert_eq!(o.flag, w.flag);
    assert_eq!(o.queue_id, w.queue_id);
    assert_eq!(o.queue_offset, w.queue_offset);
    assert_eq!(o.sys_flag, w.sys_flag);
    assert_eq!(o.born_timestamp, w.born_timestamp);
    assert_eq!(o.body_crc, w.body_crc);
    assert_eq!(o.reconsume_times, w.reconsume_times);
    assert_eq!(o.prepared_transaction_offset, w.prepared_transaction_offset);
    let mut op = o.properties.clone();
    let mut wp = w.properties.clone();
    op.sort();
    wp.sort();
    assert_eq!(op, wp, "stored properties, broker stamps included");
    // The stored length is what moves the commit-log offset: the next message starts there.
    assert_eq!(
        r.body.len(),
        0x11B,
        "the real record of this message is 0x11B bytes"
    );

    // A batch: one offset id per message; they follow each other in the commit log exactly as
    // on the real broker (same record sizes).
    let r = replay(&mut c, "send_batch_request.bin", "send_batch_response.bin");
    let want = fixture("send_batch_response.bin");
    for key in ["queueId", "queueOffset", "MSG_REGION", "TRACE_ON"] {
        assert_eq!(r.ext_fields.get(key), want.ext_fields.get(key), "{key}");
    }
    let offsets = |cmd: &RemotingCommand| -> Vec<i64> {
        cmd.ext_fields
            .get("msgId")
            .unwrap()
            .split(',')
            .map(|id| offset_id(id).commit_log_offset)
            .collect()
    };
    assert_eq!(offsets(&r), offsets(&want));
    let stored = broker.messages("FixtureTopic");
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].body, b"batch-2");
    assert_eq!(stored[3].queue_offset, 2);

    // A refused send: the same code, remark and extFields.
    let mut bad = fixture("send_v2_request.bin");
    bad.ext_fields.insert("b", "bad topic!");
    let r = c.call(bad);
    let want = fixture("send_error_response.bin");
    assert_eq!(r.code, want.code);
    assert_eq!(r.remark, want.remark);
    assert_eq!(keys(&r), keys(&want));
}

#[test]
fn transactions_answer_like_the_real_broker() {
    let broker = MockBroker::start().unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    c.call(fixture("heartbeat_request.bin"));
    // The offsets follow the other fixtures' messages on the real broker: replay them first.
    c.call(fixture("send_v2_request.bin"));
    c.call(fixture("send_batch_request.bin"));
    let r = replay(&mut c, "send_half_request.bin", "send_half_response.bin");
    let want = fixture("send_half_response.bin");
    for key in ["queueId", "queueOffset", "transactionId", "msgId"] {
        let (ours, real) = (
            r.ext_fields.get(key).unwrap(),
            want.ext_fields.get(key).unwrap(),
        );
        if key == "msgId" {
            assert_eq!(
                offset_id(ours).commit_log_offset,
                offset_id(real).commit_log_offset,
                "the half message's commit-log offset"
            );
        } else {
            assert_eq!(ours, real, "{key}");
        }
    }
    let sent = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
    assert_eq!(
        broker.message_count("FixtureTxTopic"),
        0,
        "half messages are not visible"
    );

    // The half record, viewed by its offset, sits in the half topic.
    let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
    ViewMessageByIdRequestHeader {
        offset: offset_id(&sent.msg_id).commit_log_offset,
    }
    .write_to(&mut view.ext_fields);
    let half = &message_codec::decode_stored_messages(&c.call(view).body).unwrap()[0];
    assert_eq!(half.topic, "RMQ_SYS_TRANS_HALF_TOPIC");
    assert_eq!(half.queue_id, 0);
    assert_eq!(half.property("REAL_TOPIC"), Some("FixtureTxTopic"));
    assert_eq!(half.property("REAL_QID"), Some("0"));

    // The check-back: oneway code 39 with the real header fields and body layout.
    assert_eq!(broker.check_transaction("7F0000010001FIXTURET000000001"), 1);
    let check = c.read().unwrap();
    let real = fixture("check_transaction_request.bin");
    assert_eq!(check.code, real.code);
    assert_eq!(check.flag, real.flag, "oneway request");
    assert_eq!(keys(&check), keys(&real));
    for key in ["bname", "msgId", "offsetMsgId", "topic", "transactionId"] {
        assert_eq!(check.ext_fields.get(key), real.ext_fields.get(key), "{key}");
    }
    let ours = CheckTransactionStateRequestHeader::read_from(&check.ext_fields).unwrap();
    let theirs = CheckTransactionStateRequestHeader::read_from(&real.ext_fields).unwrap();
    assert_eq!(ours.tran_state_table_offset, theirs.tran_state_table_offset);
    assert_eq!(
        ours.commit_log_offset, theirs.commit_log_offset,
        "re-stored copy's offset"
    );
    let o = &message_codec::decode_stored_messages(&check.body).unwrap()[0];
    let w = &message_codec::decode_stored_messages(&real.body).unwrap()[0];
    assert_eq!(prop_keys(o), prop_keys(w));
    for key in [
        "TRANSACTION_CHECK_TIMES",
        "REAL_TOPIC",
        "REAL_QID",
        "PGROUP",
        "TRAN_MSG",
    ] {
        assert_eq!(o.property(key), w.property(key), "{key}");
    }
    assert_eq!(o.topic, w.topic);
    assert_eq!(o.queue_id, w.queue_id);
    assert_eq!(o.queue_offset, w.queue_offset);
    assert_eq!(o.commit_log_offset, w.commit_log_offset);
    assert_eq!(o.sys_flag, w.sys_flag);
    assert_eq!(sys_flag::transaction_value(o.sys_flag), 0);
    assert_eq!(o.body, w.body);
    assert_eq!(check.body.len(), real.body.len(), "same stored record size");
}
