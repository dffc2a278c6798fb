//! Every command a producer sends or receives, with its typed header and body, round-tripped
//! through both header layouts; required fields named when missing or unparsable; the fixture
//! headers read back as typed headers.

use std::fmt::Debug;

use rocketmq_mio::protocol::header::*;
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::{
    CodecError, ExtFields, LanguageCode, RemotingCommand, RequestCode, ResponseCode, SerializeType,
};

fn send_header() -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "TopicTest".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 4,
        born_timestamp: 1_795_468_920_976,
        flag: -7,
        properties: "UNIQ_KEY\u{1}C0A8\u{2}WAIT\u{1}true\u{2}TAGS\u{1}grün ✓ 𝄞\u{2}".into(),
        reconsume_times: Some(0),
        unit_mode: false,
        batch: false,
        max_reconsume_times: Some(16),
        broker_name: Some("broker-a".into()),
    }
}

/// Puts `fields` and `body` into a command, encodes it in both layouts, decodes it, checks the
/// command survived and returns the decoded ext fields of each.
fn round_trip(mut cmd: RemotingCommand) -> Vec<ExtFields> {
    let mut out = Vec::new();
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        cmd.serialize_type = st;
        let frame = cmd.to_frame().unwrap();
        let back = RemotingCommand::decode(&frame).unwrap();
        assert_eq!(back, cmd, "{st:?}");
        out.push(back.ext_fields);
    }
    out
}

fn check_header<H>(code: i32, header: &H, response: bool)
where
    H: CommandHeader + PartialEq + Debug,
{
    let mut cmd = if response {
        RemotingCommand::response(code, 77)
    } else {
        RemotingCommand::request(code)
    };
    cmd.opaque = 77;
    header.write_to(&mut cmd.ext_fields);
    for fields in round_trip(cmd) {
        assert_eq!(&H::read_from(&fields).unwrap(), header);
    }
}

#[test]
fn route_request() {
    check_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader::new("TopicTest"),
        false,
    );
    check_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader {
            topic: "t".into(),
            accept_standard_json_only: false,
        },
        false,
    );
}

#[test]
fn send_v1_and_v2() {
    let h = send_header();
    for code in [RequestCode::SEND_MESSAGE, RequestCode::SEND_REPLY_MESSAGE] {
        check_header(code, &h, false);
        let mut cmd = RemotingCommand::request(code).with_body("body");
        h.write_v1(&mut cmd.ext_fields);
        for f in round_trip(cmd) {
            assert_eq!(SendMessageRequestHeader::read_v1(&f).unwrap(), h);
            assert_eq!(SendMessageRequestHeader::read_any(&f).unwrap(), h);
        }
    }
    for code in [
        RequestCode::SEND_MESSAGE_V2,
        RequestCode::SEND_BATCH_MESSAGE,
        RequestCode::SEND_REPLY_MESSAGE_V2,
    ] {
        let mut h = send_header();
        h.batch = code == RequestCode::SEND_BATCH_MESSAGE;
        let mut cmd = RemotingCommand::request(code).with_body(vec![0u8, 1, 2, 255]);
        h.write_v2(&mut cmd.ext_fields);
        if h.batch {
            assert_eq!(cmd.ext_fields.get("m"), Some("true"));
        }
        for f in round_trip(cmd) {
            assert_eq!(SendMessageRequestHeader::read_v2(&f).unwrap(), h);
            assert_eq!(SendMessageRequestHeader::read_any(&f).unwrap(), h);
        }
    }
    // The minimal header: every optional left out.
    let h = SendMessageRequestHeader {
        properties: String::new(),
        reconsume_times: None,
        max_reconsume_times: None,
        broker_name: None,
        ..send_header()
    };
    let mut f = ExtFields::new();
    h.write_v2(&mut f);
    assert_eq!(f.get("n"), None);
    assert_eq!(f.get("j"), None);
    assert_eq!(f.get("l"), None);
    assert_eq!(SendMessageRequestHeader::read_v2(&f).unwrap(), h);
}

#[test]
fn send_response() {
    let full = SendMessageResponseHeader {
        msg_id: "7F000001000051E10000000000000000".into(),
        queue_id: 1,
        queue_offset: 1 << 40,
        transaction_id: Some("7F0000010001FIXTURE0000000001".into()),
        batch_uniq_id: Some("B".into()),
        recall_handle: Some("R".into()),
        region_id: Some("DefaultRegion".into()),
        trace_on: Some(false),
    };
    for code in [
        ResponseCode::SUCCESS,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        ResponseCode::SLAVE_NOT_AVAILABLE,
        ResponseCode::FLUSH_SLAVE_TIMEOUT,
    ] {
        check_header(code, &full, true);
    }
    check_header(
        0,
        &SendMessageResponseHeader {
            msg_id: "a,b,c".into(),
            ..Default::default()
        },
        true,
    );
}

#[test]
fn transactions() {
    let end = EndTransactionRequestHeader {
        topic: Some("FixtureTxTopic".into()),
        producer_group: "FIXTURE_GROUP".into(),
        tran_state_table_offset: 1,
        commit_log_offset: 1326,
        commit_or_rollback: 8,
        from_transaction_check: true,
        msg_id: "7F0000010001FIXTURET000000001".into(),
        transaction_id: Some("7F0000010001FIXTURET000000001".into()),
        broker_name: Some("broker-a".into()),
    };
    let mut cmd = RemotingCommand::request(RequestCode::END_TRANSACTION)
        .with_remark("checkLocalTransactionState Exception: boom")
        .into_oneway();
    end.write_to(&mut cmd.ext_fields);
    for f in round_trip(cmd) {
        assert_eq!(EndTransactionRequestHeader::read_from(&f).unwrap(), end);
    }
    check_header(
        RequestCode::END_TRANSACTION,
        &EndTransactionRequestHeader {
            topic: None,
            transaction_id: None,
            broker_name: None,
            from_transaction_check: false,
            commit_or_rollback: 12,
            ..end
        },
        false,
    );

    let check = CheckTransactionStateRequestHeader {
        topic: Some("RMQ_SYS_TRANS_HALF_TOPIC".into()),
        tran_state_table_offset: 1,
        commit_log_offset: 1326,
        msg_id: Some("U".into()),
        transaction_id: Some("U".into()),
        offset_msg_id: Some("7F000001000051E100000000000003D0".into()),
        broker_name: Some("broker-a".into()),
    };
    let mut cmd = RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE)
        .into_oneway()
        .with_body(&include_bytes!("data/view_message_response.bin")[137..]);
    check.write_to(&mut cmd.ext_fields);
    for f in round_trip(cmd) {
        assert_eq!(
            CheckTransactionStateRequestHeader::read_from(&f).unwrap(),
            check
        );
    }
}

#[test]
fn client_and_admin_headers() {
    check_header(
        RequestCode::UNREGISTER_CLIENT,
        &UnregisterClientRequestHeader {
            client_id: "127.0.0.1@1#2".into(),
            producer_group: Some("pg".into()),
            consumer_group: None,
        },
        false,
    );
    check_header(
        RequestCode::VIEW_MESSAGE_BY_ID,
        &ViewMessageByIdRequestHeader { offset: 76874 },
        false,
    );
    check_header(
        RequestCode::GET_MAX_OFFSET,
        &GetMaxOffsetRequestHeader {
            topic: "t".into(),
            queue_id: 0,
            committed: true,
            broker_name: Some("broker-a".into()),
        },
        false,
    );
    check_header(0, &GetMaxOffsetResponseHeader { offset: -1 }, true);
    check_header(
        RequestCode::UPDATE_AND_CREATE_TOPIC,
        &CreateTopicRequestHeader::new("NewTopic", 8),
        false,
    );
    check_header(
        RequestCode::UPDATE_AND_CREATE_TOPIC,
        &CreateTopicRequestHeader {
            attributes: Some("+message.type=TRANSACTION".into()),
            topic_sys_flag: None,
            order: true,
            perm: 7,
            topic_filter_type: "MULTI_TAG".into(),
            ..CreateTopicRequestHeader::new("NewTopic", 8)
        },
        false,
    );
}

#[test]
fn bodies_and_headerless_commands() {
    let hb = HeartbeatData::for_producer("127.0.0.1@fixture", "FIXTURE_GROUP");
    let cmd = RemotingCommand::request(RequestCode::HEART_BEAT).with_body(hb.to_json());
    for _ in round_trip(cmd.clone()) {}
    let back = RemotingCommand::decode(&cmd.to_frame().unwrap()).unwrap();
    assert_eq!(HeartbeatData::from_json(&back.body).unwrap(), hb);

    for cmd in [
        RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_INFO),
        RemotingCommand::response(ResponseCode::SUCCESS, i32::MIN),
        RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, -1)
            .with_remark(" request type 40 not supported"),
        RemotingCommand::response(ResponseCode::SYSTEM_ERROR, i32::MAX)
            .with_remark("the custom field <queueId> is null \"quoted\" \\ \u{1}"),
        RemotingCommand::response(ResponseCode::GO_AWAY, 5).with_remark("please go away"),
    ] {
        round_trip(cmd);
    }
    // Every language code, in both layouts.
    for l in 0..14u8 {
        let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT);
        cmd.language = LanguageCode(l);
        round_trip(cmd);
    }
    // JSON carries codes beyond 16 bits (the binary layout cannot).
    let mut cmd = RemotingCommand::request(200_050);
    let back = RemotingCommand::decode(&cmd.to_frame().unwrap()).unwrap();
    assert_eq!(back.code, 200_050);
    cmd.serialize_type = SerializeType::RocketMq;
    let back = RemotingCommand::decode(&cmd.to_frame().unwrap()).unwrap();
    assert_eq!(back.code, 200_050_i32 as i16 as i32);
}

/// Removing any required key gives `MissingField(key)`; garbage in a numeric one gives
/// `InvalidField { field: key }`.
fn check_required<H: CommandHeader + Debug>(
    fields: &ExtFields,
    read: impl Fn(&ExtFields) -> Result<H, CodecError>,
    required: &[&'static str],
    numeric: &[&'static str],
) {
    read(fields).unwrap();
    for &key in required {
        let mut f = fields.clone();
        assert!(f.remove(key).is_some(), "{key} was not written");
        assert_eq!(read(&f).unwrap_err(), CodecError::MissingField(key));
    }
    for &key in numeric {
        let mut f = fields.clone();
        f.insert(key, "12x");
        assert_eq!(
            read(&f).unwrap_err(),
            CodecError::InvalidField {
                field: key,
                value: "12x".into()
            }
        );
    }
}

#[test]
fn required_fields_are_named() {
    let mut v2 = ExtFields::new();
    send_header().write_v2(&mut v2);
    check_required(
        &v2,
        SendMessageRequestHeader::read_v2,
        &["a", "b", "c", "d", "e", "f", "g", "h"],
        &["d", "e", "f", "g", "h", "j", "l"],
    );
    let v1 = send_header().to_ext_fields();
    check_required(
        &v1,
        SendMessageRequestHeader::read_v1,
        &[
            "producerGroup",
            "topic",
            "defaultTopic",
            "defaultTopicQueueNums",
            "queueId",
            "sysFlag",
            "bornTimestamp",
            "flag",
        ],
        &[
            "defaultTopicQueueNums",
            "queueId",
            "sysFlag",
            "bornTimestamp",
            "flag",
            "reconsumeTimes",
            "maxReconsumeTimes",
        ],
    );
    let resp = SendMessageResponseHeader {
        msg_id: "m".into(),
        ..Default::default()
    }
    .to_ext_fields();
    check_required(
        &resp,
        SendMessageResponseHeader::read_from,
        &["msgId", "queueId", "queueOffset"],
        &["queueId", "queueOffset"],
    );
    let end = EndTransactionRequestHeader {
        producer_group: "g".into(),
        msg_id: "m".into(),
        ..Default::default()
    }
    .to_ext_fields();
    check_required(
        &end,
        EndTransactionRequestHeader::read_from,
        &[
            "producerGroup",
            "tranStateTableOffset",
            "commitLogOffset",
            "commitOrRollback",
            "msgId",
        ],
        &[
            "tranStateTableOffset",
            "commitLogOffset",
            "commitOrRollback",
        ],
    );
    let check = CheckTransactionStateRequestHeader::default().to_ext_fields();
    check_required(
        &check,
        CheckTransactionStateRequestHeader::read_from,
        &["tranStateTableOffset", "commitLogOffset"],
        &["tranStateTableOffset", "commitLogOffset"],
    );
    let unreg = UnregisterClientRequestHeader {
        client_id: "c".into(),
        ..Default::default()
    }
    .to_ext_fields();
    check_required(
        &unreg,
        UnregisterClientRequestHeader::read_from,
        &["clientID"],
        &[],
    );
    check_required(
        &ViewMessageByIdRequestHeader { offset: 1 }.to_ext_fields(),
        ViewMessageByIdRequestHeader::read_from,
        &["offset"],
        &["offset"],
    );
    check_required(
        &GetMaxOffsetRequestHeader {
            topic: "t".into(),
            ..Default::default()
        }
        .to_ext_fields(),
        GetMaxOffsetRequestHeader::read_from,
        &["topic", "queueId"],
        &["queueId"],
    );
    check_required(
        &GetMaxOffsetResponseHeader { offset: 1 }.to_ext_fields(),
        GetMaxOffsetResponseHeader::read_from,
        &["offset"],
        &["offset"],
    );
    check_required(
        &CreateTopicRequestHeader::new("t", 1).to_ext_fields(),
        CreateTopicRequestHeader::read_from,
        &[
            "topic",
            "defaultTopic",
            "readQueueNums",
            "writeQueueNums",
            "perm",
            "topicFilterType",
            "order",
        ],
        &["readQueueNums", "writeQueueNums", "perm", "topicSysFlag"],
    );
    check_required(
        &GetRouteInfoRequestHeader::new("t").to_ext_fields(),
        GetRouteInfoRequestHeader::read_from,
        &["topic"],
        &[],
    );
}

#[test]
fn java_boolean_and_number_parsing() {
    let mut f = ExtFields::new();
    send_header().write_v2(&mut f);
    f.insert("k", "TRUE");
    f.insert("m", "yes");
    f.insert("e", " 3 ");
    let h = SendMessageRequestHeader::read_v2(&f).unwrap();
    assert!(h.unit_mode);
    assert!(!h.batch);
    assert_eq!(h.queue_id, 3);
    f.insert("e", "2147483648");
    assert!(matches!(
        SendMessageRequestHeader::read_v2(&f),
        Err(CodecError::InvalidField { field: "e", .. })
    ));
}

fn fixture(bytes: &[u8]) -> RemotingCommand {
    RemotingCommand::decode(bytes).unwrap()
}

#[test]
fn fixture_headers_read_typed() {
    let send = fixture(include_bytes!("data/send_v2_request.bin"));
    let h = SendMessageRequestHeader::read_v2(&send.ext_fields).unwrap();
    assert_eq!(h.producer_group, "FIXTURE_GROUP");
    assert_eq!(h.topic, "FixtureTopic");
    assert_eq!(h.default_topic, "TBW102");
    assert_eq!(h.default_topic_queue_nums, 4);
    assert_eq!(h.queue_id, 1);
    assert_eq!(h.sys_flag, 0);
    assert_eq!(h.born_timestamp, 1_795_468_920_976);
    assert_eq!(h.reconsume_times, Some(0));
    assert!(!h.unit_mode && !h.batch);
    assert_eq!(h.broker_name, None);
    // Re-encoding with write_v2 gives back the same fields.
    let mut again = ExtFields::new();
    h.write_v2(&mut again);
    assert_eq!(again, send.ext_fields);

    let batch = fixture(include_bytes!("data/send_batch_request.bin"));
    let h = SendMessageRequestHeader::read_v2(&batch.ext_fields).unwrap();
    assert!(h.batch);
    assert_eq!(h.queue_id, 2);

    let half = fixture(include_bytes!("data/send_half_request.bin"));
    assert_eq!(
        SendMessageRequestHeader::read_v2(&half.ext_fields)
            .unwrap()
            .sys_flag,
        4
    );

    let resp = fixture(include_bytes!("data/send_v2_response.bin"));
    let r = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
    assert_eq!(
        r,
        SendMessageResponseHeader {
            msg_id: "7F000001000051E10000000000000000".into(),
            queue_id: 1,
            queue_offset: 0,
            transaction_id: Some("7F0000010001FIXTURE0000000001".into()),
            batch_uniq_id: None,
            recall_handle: None,
            region_id: Some("DefaultRegion".into()),
            trace_on: Some(true),
        }
    );
    let batch_resp = fixture(include_bytes!("data/send_batch_response.bin"));
    let r = SendMessageResponseHeader::read_from(&batch_resp.ext_fields).unwrap();
    assert_eq!(r.msg_id.split(',').count(), 3);
    assert_eq!(r.transaction_id, None);

    let check = fixture(include_bytes!("data/check_transaction_request.bin"));
    let c = CheckTransactionStateRequestHeader::read_from(&check.ext_fields).unwrap();
    assert_eq!(
        c,
        CheckTransactionStateRequestHeader {
            topic: Some("RMQ_SYS_TRANS_HALF_TOPIC".into()),
            tran_state_table_offset: 1,
            commit_log_offset: 1326,
            msg_id: Some("7F0000010001FIXTURET000000001".into()),
            transaction_id: Some("7F0000010001FIXTURET000000001".into()),
            offset_msg_id: None,
            broker_name: Some("broker-a".into()),
        }
    );

    let route = fixture(include_bytes!("data/route_request_tbw102.bin"));
    assert_eq!(
        GetRouteInfoRequestHeader::read_from(&route.ext_fields).unwrap(),
        GetRouteInfoRequestHeader::new("TBW102")
    );

    let hb = fixture(include_bytes!("data/heartbeat_request.bin"));
    let data = HeartbeatData::from_json(&hb.body).unwrap();
    assert_eq!(
        data,
        HeartbeatData::for_producer("127.0.0.1@fixture", "FIXTURE_GROUP")
    );
}
