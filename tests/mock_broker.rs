//! MockBroker on its own, driven by a plain socket client and the codec (not the producer):
//! every request kind and every fault.

mod mock_support;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mock_support::{
    end_tx, props, route_request, send_half, send_header, send_v2, wait_for, Client,
};

use rocketmq_mio::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, CreateTopicRequestHeader,
    GetMaxOffsetRequestHeader, GetRouteInfoRequestHeader, SendMessageResponseHeader,
    UnregisterClientRequestHeader, ViewMessageByIdRequestHeader,
};
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::message_codec::{self, sys_flag};
use rocketmq_mio::protocol::route::TopicRouteData;
use rocketmq_mio::protocol::{
    CodecError, RemotingCommand, RequestCode, ResponseCode, SerializeType,
};
use rocketmq_mio::testing::{MockBroker, MockCluster, TransactionState};
use rocketmq_mio::{Message, OffsetMessageId};

fn route(client: &mut Client, topic: &str) -> RemotingCommand {
    client.call(route_request(topic))
}

#[test]
fn routes_auto_create_and_unknown_topics() {
    let broker = MockBroker::start().unwrap();
    let mut c = Client::connect(&broker.namesrv_addr());
    // Unknown topic: TOPIC_NOT_EXIST, as a real name server answers; TBW102 exists.
    let r = route(&mut c, "Fresh");
    assert_eq!(r.code, ResponseCode::TOPIC_NOT_EXIST);
    assert!(r.remark_str().contains("Fresh"));
    let r = route(&mut c, "TBW102");
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let tbw = TopicRouteData::from_json(&r.body).unwrap();
    assert_eq!(tbw.queue_datas[0].write_queue_nums, 8);
    assert_eq!(tbw.queue_datas[0].perm, 7);
    assert_eq!(
        tbw.broker_datas[0].master_addr(),
        Some(broker.broker_addr().as_str())
    );
    // The first send creates it with min(4, 8) queues; then it has a route.
    let r = c.call(send_v2("Fresh", 1, &props(&[("UNIQ_KEY", "U1")]), b"x"));
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let r = route(&mut c, "Fresh");
    let fresh = TopicRouteData::from_json(&r.body).unwrap();
    assert_eq!(fresh.queue_datas[0].write_queue_nums, 4);
    assert_eq!(fresh.queue_datas[0].perm, 6);

    // With auto-create off, sends to unknown topics fail.
    let strict = MockBroker::builder()
        .auto_create_topics(false)
        .topic("Known", 2)
        .start()
        .unwrap();
    let mut c = Client::connect(&strict.namesrv_addr());
    assert_eq!(route(&mut c, "TBW102").code, ResponseCode::TOPIC_NOT_EXIST);
    assert_eq!(
        c.call(send_v2("Nope", 0, "", b"x")).code,
        ResponseCode::TOPIC_NOT_EXIST
    );
    assert_eq!(route(&mut c, "Known").code, ResponseCode::SUCCESS);
    // Routes change while running.
    strict.set_queues("Known", 6);
    let r = route(&mut c, "Known");
    assert_eq!(
        TopicRouteData::from_json(&r.body).unwrap().queue_datas[0].write_queue_nums,
        6
    );
    strict.remove_topic("Known");
    assert_eq!(route(&mut c, "Known").code, ResponseCode::TOPIC_NOT_EXIST);
}

#[test]
fn send_answers_like_a_real_broker_and_view_reads_it_back() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("T", 4);
    let mut c = Client::connect(&broker.broker_addr());
    let p = props(&[
        ("UNIQ_KEY", "UNIQ-1"),
        ("TAGS", "TagA"),
        ("KEYS", "k1 k2"),
        ("color", "grün 𝄞"),
    ]);
    let r = c.call(send_v2("T", 2, &p, b"hello"));
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let h = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
    assert_eq!(h.queue_id, 2);
    assert_eq!(h.queue_offset, 0);
    assert_eq!(h.transaction_id.as_deref(), Some("UNIQ-1"));
    assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"));
    assert_eq!(h.trace_on, Some(true));
    let id = OffsetMessageId::parse(&h.msg_id).unwrap();
    assert_eq!(id.store_host, broker.addr());

    // A second send to the same queue gets the next queue offset; V1 works too.
    let mut v1 = RemotingCommand::request(RequestCode::SEND_MESSAGE);
    send_header("T", 2, &props(&[("UNIQ_KEY", "UNIQ-2")])).write_v1(&mut v1.ext_fields);
    v1.body = b"second".to_vec();
    let r2 = c.call(v1);
    let h2 = SendMessageResponseHeader::read_from(&r2.ext_fields).unwrap();
    assert_eq!(h2.queue_offset, 1);
    let id2 = OffsetMessageId::parse(&h2.msg_id).unwrap();
    assert!(id2.commit_log_offset > id.commit_log_offset);

    // VIEW_MESSAGE_BY_ID returns the stored layout.
    let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
    ViewMessageByIdRequestHeader {
        offset: id.commit_log_offset,
    }
    .write_to(&mut view.ext_fields);
    let r = c.call(view);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let msgs = message_codec::decode_stored_messages(&r.body).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.topic, "T");
    assert_eq!(m.body, b"hello");
    assert_eq!(m.flag, 7);
    assert_eq!(m.tags(), Some("TagA"));
    assert_eq!(m.keys().collect::<Vec<_>>(), vec!["k1", "k2"]);
    assert_eq!(m.property("color"), Some("grün 𝄞"));
    assert_eq!(m.property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(m.queue_id, 2);
    assert_eq!(m.commit_log_offset, id.commit_log_offset);
    assert_eq!(broker.messages("T")[0], *m);

    // GET_MAX_OFFSET counts the queue.
    let mut max = RemotingCommand::request(RequestCode::GET_MAX_OFFSET);
    GetMaxOffsetRequestHeader {
        topic: "T".into(),
        queue_id: 2,
        committed: true,
        broker_name: None,
    }
    .write_to(&mut max.ext_fields);
    assert_eq!(c.call(max).ext_fields.get("offset"), Some("2"));
}

#[test]
fn invalid_sends_get_a_real_broker_code() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("T", 4);
    let mut c = Client::connect(&broker.broker_addr());
    // Queue 4 of 4: SYSTEM_ERROR "request queueId[4] is illegal, ...", as the real broker
    // answers (tests/interop_send.rs, queue_out_of_range_is_a_broker_error).
    let r = c.call(send_v2("T", 4, "", b"x"));
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert!(r.remark_str().contains("queueId[4] is illegal"));
    let r = c.call(send_v2("bad topic!", 0, "", b"x"));
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert!(r.remark_str().contains("illegal characters"));
    let big = vec![0u8; 4 * 1024 * 1024 + 1];
    assert_eq!(
        c.call(send_v2("T", 0, "", &big)).code,
        ResponseCode::MESSAGE_ILLEGAL
    );
    let r = c.call(RemotingCommand::request(9999));
    assert_eq!(r.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);
    broker.set_perm("T", 4);
    assert_eq!(
        c.call(send_v2("T", 0, "", b"x")).code,
        ResponseCode::NO_PERMISSION
    );
    assert_eq!(broker.message_count("T"), 0);
}

#[test]
fn batch_heartbeat_unregister() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("B", 4);
    let mut c = Client::connect(&broker.broker_addr());
    let msgs: Vec<Message> = (0..3)
        .map(|i| {
            Message::new("B", format!("batch-{i}"))
                .with_property("UNIQ_KEY", format!("B{i}"))
                .with_tags("bt")
        })
        .collect();
    let mut body = Vec::new();
    message_codec::encode_batch(msgs.iter(), &mut body).unwrap();
    let mut req = RemotingCommand::request(RequestCode::SEND_BATCH_MESSAGE);
    let mut h = send_header("B", 3, &props(&[("WAIT", "true")]));
    h.batch = true;
    h.write_v2(&mut req.ext_fields);
    req.body = body;
    let r = c.call(req);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let h = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
    assert_eq!(h.msg_id.split(',').count(), 3);
    assert_eq!(h.queue_offset, 0);
    let stored = broker.messages("B");
    assert_eq!(stored.len(), 3);
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(m.body, format!("batch-{i}").as_bytes());
        assert_eq!(m.queue_offset, i as i64);
        assert_eq!(m.msg_id(), Some(format!("B{i}").as_str()));
    }

    let hb = RemotingCommand::request(RequestCode::HEART_BEAT)
        .with_body(HeartbeatData::for_producer("client-1", "GID_X").to_json());
    assert_eq!(c.call(hb).code, ResponseCode::SUCCESS);
    let mut un = RemotingCommand::request(RequestCode::UNREGISTER_CLIENT);
    UnregisterClientRequestHeader {
        client_id: "client-1".into(),
        producer_group: Some("GID_X".into()),
        consumer_group: None,
    }
    .write_to(&mut un.ext_fields);
    assert_eq!(c.call(un).code, ResponseCode::SUCCESS);
    let counters = broker.counters();
    assert_eq!(counters.heartbeats(), 1);
    assert_eq!(counters.unregisters(), 1);
    assert_eq!(counters.unregistered_clients(), ["client-1".to_string()]);
    assert_eq!(
        counters.clients(),
        [("client-1".to_string(), vec!["GID_X".to_string()])]
    );
    assert_eq!(counters.sends(), 1);
    assert_eq!(counters.messages_stored(), 3);
}

fn half(c: &mut Client, uniq: &str) -> SendMessageResponseHeader {
    send_half(c, "TX", "GID_TX", uniq)
}

fn end(
    group: &str,
    tran_state: i64,
    commit_offset: i64,
    decision: i32,
    from_check: bool,
    msg_id: &str,
) -> RemotingCommand {
    end_tx(
        "TX",
        group,
        tran_state,
        commit_offset,
        decision,
        from_check,
        msg_id,
    )
}

#[test]
fn transactions_commit_rollback_and_check_back() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("TX", 1);
    let mut c = Client::connect(&broker.broker_addr());
    let hb = RemotingCommand::request(RequestCode::HEART_BEAT)
        .with_body(HeartbeatData::for_producer("tx-client", "GID_TX").to_json());
    c.call(hb);

    // Commit: the half message becomes visible, without TRAN_MSG, with the commit type.
    let h1 = half(&mut c, "TX-1");
    assert_eq!(broker.message_count("TX"), 0);
    let off1 = OffsetMessageId::parse(&h1.msg_id)
        .unwrap()
        .commit_log_offset;
    c.send(end("GID_TX", h1.queue_offset, off1, 8, false, "TX-1"));
    assert!(wait_for(Duration::from_secs(20), || broker
        .message_count("TX")
        == 1));
    let m = &broker.messages("TX")[0];
    assert_eq!(m.property("TRAN_MSG"), None);
    assert_eq!(sys_flag::transaction_value(m.sys_flag), 8);

    // Rollback: never visible.
    let h2 = half(&mut c, "TX-2");
    let off2 = OffsetMessageId::parse(&h2.msg_id)
        .unwrap()
        .commit_log_offset;
    // A wrong group or offset is refused, as a real broker does.
    c.send(end("OTHER", h2.queue_offset, off2, 8, false, "TX-2"));
    c.send(end("GID_TX", h2.queue_offset, off2, 12, false, "TX-2"));
    assert!(wait_for(Duration::from_secs(20), || broker
        .half_messages()
        .iter()
        .any(|h| h.state == TransactionState::RolledBack)));
    assert_eq!(broker.message_count("TX"), 1);
    assert_eq!(broker.end_transactions().len(), 3);

    // Unknown, then a check-back: the check names a re-appended copy, and the answer must
    // carry the check's offsets.
    let h3 = half(&mut c, "TX-3");
    let off3 = OffsetMessageId::parse(&h3.msg_id)
        .unwrap()
        .commit_log_offset;
    c.send(end("GID_TX", h3.queue_offset, off3, 0, false, "TX-3"));
    assert_eq!(broker.check_transaction("TX-3"), 1);
    let check = c.read().unwrap();
    assert_eq!(check.code, RequestCode::CHECK_TRANSACTION_STATE);
    assert!(check.is_oneway());
    assert!(!check.is_response());
    let ch = CheckTransactionStateRequestHeader::read_from(&check.ext_fields).unwrap();
    assert_eq!(ch.transaction_id.as_deref(), Some("TX-3"));
    assert_ne!(ch.commit_log_offset, off3);
    assert_ne!(ch.tran_state_table_offset, h3.queue_offset);
    let body = message_codec::decode_stored_messages(&check.body).unwrap();
    assert_eq!(body[0].topic, "TX");
    assert_eq!(body[0].property("PGROUP"), Some("GID_TX"));
    assert_eq!(body[0].property("TRANSACTION_CHECK_TIMES"), Some("1"));
    // The original offsets no longer resolve it; the check's do.
    c.send(end("GID_TX", h3.queue_offset, off3, 8, true, "TX-3"));
    c.send(end(
        "GID_TX",
        ch.tran_state_table_offset,
        ch.commit_log_offset,
        8,
        true,
        "TX-3",
    ));
    assert!(wait_for(Duration::from_secs(20), || broker
        .message_count("TX")
        == 2));
    assert!(broker
        .end_transactions()
        .iter()
        .any(|e| e.from_transaction_check));
    assert_eq!(broker.counters().checks_sent(), 1);
}

#[test]
fn automatic_check_interval() {
    let broker = MockBroker::builder()
        .transaction_check_interval(Duration::from_millis(50))
        .topic("TX", 1)
        .start()
        .unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    let hb = RemotingCommand::request(RequestCode::HEART_BEAT)
        .with_body(HeartbeatData::for_producer("tx-client", "GID_TX").to_json());
    c.call(hb);
    half(&mut c, "AUTO-1");
    let check = c.read().unwrap();
    assert_eq!(check.code, RequestCode::CHECK_TRANSACTION_STATE);
}

#[test]
fn scripted_failures_and_delays() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("F", 1);
    let mut c = Client::connect(&broker.broker_addr());
    broker.fail_next_with(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::SYSTEM_BUSY,
        "busy",
        2,
    );
    for _ in 0..2 {
        let r = c.call(send_v2("F", 0, "", b"x"));
        assert_eq!(r.code, ResponseCode::SYSTEM_BUSY);
        assert_eq!(r.remark_str(), "busy");
    }
    assert_eq!(
        c.call(send_v2("F", 0, "", b"x")).code,
        ResponseCode::SUCCESS
    );
    assert_eq!(broker.message_count("F"), 1);

    // A delayed response does not hold up the next one on the same connection.
    broker.delay_next(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(300), 1);
    let started = Instant::now();
    let slow = c.send(send_v2("F", 0, "", b"slow"));
    let fast = c.send(send_v2("F", 0, "", b"fast"));
    let first = c.read().unwrap();
    let second = c.read().unwrap();
    assert_eq!(first.opaque, fast);
    assert_eq!(second.opaque, slow);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn black_hole_reset_malformed_close() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("F", 1);

    broker.black_hole(true);
    let mut c = Client::connect(&broker.broker_addr());
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    c.send(send_v2("F", 0, "", b"x"));
    let e = c.read().unwrap_err();
    assert!(e.starts_with("io:"), "{e}");
    broker.black_hole(false);

    let mut c = Client::connect(&broker.broker_addr());
    broker.reset_mid_frame_next(RequestCode::SEND_MESSAGE_V2);
    c.send(send_v2("F", 0, "", b"x"));
    assert_eq!(c.read().unwrap_err(), "eof");

    let mut c = Client::connect(&broker.broker_addr());
    broker.malformed_next(RequestCode::SEND_MESSAGE_V2);
    c.send(send_v2("F", 0, "", b"x"));
    let e = c.read().unwrap_err();
    assert_eq!(
        e,
        format!("decode: {}", CodecError::UnknownSerializeType(0x7f))
    );

    let mut c = Client::connect(&broker.broker_addr());
    broker.close_next(RequestCode::SEND_MESSAGE_V2);
    c.send(send_v2("F", 0, "", b"x"));
    assert_eq!(c.read().unwrap_err(), "eof");

    let mut c = Client::connect(&broker.broker_addr());
    assert_eq!(
        c.call(send_v2("F", 0, "", b"x")).code,
        ResponseCode::SUCCESS
    );
    assert!(wait_for(Duration::from_secs(20), || broker
        .connection_count()
        >= 1));
    broker.close_connections();
    c.send(send_v2("F", 0, "", b"x"));
    let e = c.read().unwrap_err();
    assert!(e == "eof" || e.starts_with("io:"), "{e}");
}

#[test]
fn stop_and_restart_on_the_same_port() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("R", 1);
    let addr = broker.broker_addr();
    let mut c = Client::connect(&addr);
    assert_eq!(
        c.call(send_v2("R", 0, "", b"1")).code,
        ResponseCode::SUCCESS
    );
    broker.stop();
    assert!(!broker.is_running());
    let mut buf = [0u8; 16];
    match c.stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() != ErrorKind::WouldBlock => {}
        other => panic!("connection still open after stop: {other:?}"),
    }
    assert!(TcpStream::connect(&addr).is_err());
    broker.restart().unwrap();
    assert_eq!(broker.broker_addr(), addr);
    let mut c = Client::connect(&addr);
    assert_eq!(
        c.call(send_v2("R", 0, "", b"2")).code,
        ResponseCode::SUCCESS
    );
    // The store survived the restart.
    assert_eq!(broker.message_count("R"), 2);
}

#[test]
fn cluster_routes_follow_brokers() {
    let cluster = MockCluster::start_with_slaves(2).unwrap();
    cluster.create_topic("C", 2);
    let mut c = Client::connect(&cluster.namesrv_addr());
    let names = |c: &mut Client| {
        let r = route(c, "C");
        if r.code != ResponseCode::SUCCESS {
            return Vec::new();
        }
        let data = TopicRouteData::from_json(&r.body).unwrap();
        let mut n: Vec<_> = data
            .broker_datas
            .iter()
            .map(|b| {
                assert_eq!(b.broker_addrs.len(), 2, "master and slave listed");
                b.broker_name.clone()
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&mut c), ["broker-a", "broker-b"]);
    cluster.broker(1).stop();
    assert_eq!(names(&mut c), ["broker-a"]);
    cluster.broker(1).restart().unwrap();
    assert_eq!(names(&mut c), ["broker-a", "broker-b"]);
    cluster.remove_broker_from_routes(0);
    assert_eq!(names(&mut c), ["broker-b"]);
    cluster.restore_broker_in_routes(0);
    assert_eq!(names(&mut c).len(), 2);
    cluster.stop_namesrv();
    assert!(TcpStream::connect(cluster.namesrv_addr()).is_err());
    cluster.restart_namesrv().unwrap();
    let mut c = Client::connect(&cluster.namesrv_addr());
    assert_eq!(names(&mut c).len(), 2);
}

#[test]
fn query_create_topic_and_read_write_queues() {
    let broker = MockBroker::start().unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    // UPDATE_AND_CREATE_TOPIC: 2 read, 6 write queues, perm 6; the route shows them.
    let mut create = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC);
    let mut h = CreateTopicRequestHeader::new("Made", 6);
    h.read_queue_nums = 2;
    h.write_to(&mut create.ext_fields);
    assert_eq!(c.call(create).code, ResponseCode::SUCCESS);
    assert!(broker.has_topic("Made"));
    let q = &TopicRouteData::from_json(&route(&mut c, "Made").body)
        .unwrap()
        .queue_datas[0];
    assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm), (2, 6, 6));
    // A queue id below max(read, write) is accepted, at or above it refused.
    assert_eq!(
        c.call(send_v2("Made", 5, "", b"x")).code,
        ResponseCode::SUCCESS
    );
    assert_eq!(
        c.call(send_v2("Made", 6, "", b"x")).code,
        ResponseCode::SYSTEM_ERROR
    );
    broker.set_read_write_queues("Made", 8, 1);
    assert_eq!(
        c.call(send_v2("Made", 7, "", b"x")).code,
        ResponseCode::SUCCESS
    );
    // A system topic cannot be created or sent to.
    let mut create = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC);
    CreateTopicRequestHeader::new("TBW102", 4).write_to(&mut create.ext_fields);
    assert_eq!(c.call(create).code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(
        c.call(send_v2("RMQ_SYS_TRANS_HALF_TOPIC", 0, "", b"x"))
            .code,
        ResponseCode::NO_PERMISSION
    );

    // QUERY_MESSAGE by UNIQ_KEY and by key; nothing found is QUERY_NOT_FOUND.
    let p = props(&[("UNIQ_KEY", "Q-1"), ("KEYS", "order-7 order-8")]);
    assert_eq!(c.call(send_v2("Made", 0, &p, b"find me")).code, 0);
    let query = |c: &mut Client, key: &str, unique: bool| {
        let mut q = RemotingCommand::request(RequestCode::QUERY_MESSAGE);
        q.ext_fields.insert("topic", "Made");
        q.ext_fields.insert("key", key);
        q.ext_fields.insert("maxNum", "32");
        q.ext_fields.insert("beginTimestamp", "0");
        q.ext_fields.insert("endTimestamp", i64::MAX.to_string());
        if unique {
            q.ext_fields.insert("_UNIQUE_KEY_QUERY", "true");
        }
        c.call(q)
    };
    for (key, unique) in [("Q-1", true), ("order-8", false)] {
        let r = query(&mut c, key, unique);
        assert_eq!(r.code, ResponseCode::SUCCESS);
        assert!(r.ext_fields.get("indexLastUpdatePhyoffset").is_some());
        let found = message_codec::decode_stored_messages(&r.body).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].body, b"find me");
    }
    assert_eq!(
        query(&mut c, "Q-1", false).code,
        ResponseCode::QUERY_NOT_FOUND
    );
    assert_eq!(
        query(&mut c, "nobody", true).code,
        ResponseCode::QUERY_NOT_FOUND
    );
}

#[test]
fn binary_headers_are_answered_in_binary() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("Bin", 2);
    let mut c = Client::connect(&broker.broker_addr());
    let mut req = send_v2("Bin", 1, &props(&[("UNIQ_KEY", "B-1")]), b"binary");
    req.serialize_type = SerializeType::RocketMq;
    let r = c.call(req);
    assert_eq!(r.serialize_type, SerializeType::RocketMq);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let h = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
    assert_eq!(h.transaction_id.as_deref(), Some("B-1"));
    assert_eq!(h.queue_id, 1);
    // Errors and route answers too.
    let mut bad = send_v2("Bin", 9, "", b"x");
    bad.serialize_type = SerializeType::RocketMq;
    let r = c.call(bad);
    assert_eq!(
        (r.code, r.serialize_type),
        (ResponseCode::SYSTEM_ERROR, SerializeType::RocketMq)
    );
    let mut rq = route_request("Bin");
    rq.serialize_type = SerializeType::RocketMq;
    let r = c.call(rq);
    assert_eq!(r.serialize_type, SerializeType::RocketMq);
    assert!(TopicRouteData::from_json(&r.body).is_ok());
    // A JSON request on the same connection still gets JSON.
    assert_eq!(
        c.call(route_request("Bin")).serialize_type,
        SerializeType::Json
    );
}

#[test]
fn old_clients_get_legacy_route_json() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("Old", 2);
    let mut c = Client::connect(&broker.namesrv_addr());
    // A 4.9.3 client (version 399) that does not ask for standard JSON: integer keys bare.
    let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    GetRouteInfoRequestHeader {
        topic: "Old".into(),
        accept_standard_json_only: false,
    }
    .write_to(&mut req.ext_fields);
    req.version = 399;
    let r = c.call(req.clone());
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert!(String::from_utf8_lossy(&r.body).contains("{0:\""));
    let legacy = TopicRouteData::from_json(&r.body).unwrap();
    assert_eq!(
        legacy.broker_datas[0].master_addr(),
        Some(broker.broker_addr().as_str())
    );
    // Version 401+ or the flag: standard JSON.
    req.version = 401;
    assert!(serde_json::from_slice::<serde_json::Value>(&c.call(req).body).is_ok());
    assert!(serde_json::from_slice::<serde_json::Value>(&route(&mut c, "Old").body).is_ok());

    // A name server that always answers the legacy way.
    let old = MockBroker::builder()
        .legacy_route_json(true)
        .topic("Old", 1)
        .start()
        .unwrap();
    let mut c = Client::connect(&old.namesrv_addr());
    let body = route(&mut c, "Old").body;
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    assert!(TopicRouteData::from_json(&body).is_ok());
}

#[test]
fn keep_messages_off_still_counts_and_answers() {
    let broker = MockBroker::builder()
        .keep_messages(false)
        .topic("K", 1)
        .start()
        .unwrap();
    let mut c = Client::connect(&broker.broker_addr());
    let mut offsets = Vec::new();
    for i in 0..3 {
        let r = c.call(send_v2("K", 0, "", format!("m{i}").as_bytes()));
        let h = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
        assert_eq!(h.queue_offset, i);
        offsets.push(OffsetMessageId::parse(&h.msg_id).unwrap().commit_log_offset);
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(broker.message_count("K"), 0, "nothing kept");
    let counters = broker.counters();
    assert_eq!(counters.messages_stored(), 3);
    assert_eq!(counters.sends(), 3);
    assert_eq!(counters.connections(), 1);
    assert_eq!(counters.requests(), 3);
}

#[test]
fn stored_properties_keep_java_map_rules() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("P", 1);
    let mut c = Client::connect(&broker.broker_addr());
    // A repeated name, an empty value, no final separator, a stamped name set by the client:
    // stored as a real broker would (last value wins, empty dropped, broker stamps win).
    let raw = "A\u{1}1\u{2}E\u{1}\u{2}A\u{1}2\u{2}TRACE_ON\u{1}false\u{2}Z\u{1}z";
    assert_eq!(c.call(send_v2("P", 0, raw, b"x")).code, 0);
    let m = &broker.messages("P")[0];
    assert_eq!(m.property("A"), Some("2"));
    assert_eq!(m.property("E"), None);
    assert_eq!(m.property("Z"), Some("z"));
    assert_eq!(m.property("TRACE_ON"), Some("true"));
    assert_eq!(m.properties.iter().filter(|(k, _)| k == "A").count(), 1);
    assert_eq!(m.flag, 7);
    assert_eq!(m.born_timestamp, 1_700_000_000_000);
    assert_eq!(m.born_host, c.stream.local_addr().unwrap());
    assert_eq!(m.body_crc, message_codec::body_crc32(b"x"));
}
