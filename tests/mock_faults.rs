//! MockBroker faults, each seen from a plain socket: what arrives on the wire, what the broker
//! did with the request, and that the next request is served normally again.

mod mock_support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mock_support::{end_tx, props, route_request, send_half, send_v2, wait_for, Client, PATIENCE};
use rocketmq_mio::protocol::header::{CommandHeader, SendMessageResponseHeader};
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode, SerializeType};
use rocketmq_mio::testing::{MockBroker, MockCluster, TransactionState};

fn broker() -> MockBroker {
    MockBroker::builder().topic("F", 2).start().unwrap()
}

/// Reads raw bytes until EOF (or an error); returns them.
fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn fail_next_answers_without_handling_then_recovers() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 2);
    for _ in 0..2 {
        let r = c.call(send_v2("F", 0, "", b"x"));
        assert_eq!(r.code, ResponseCode::SYSTEM_BUSY);
        assert_eq!(r.remark_str(), "injected failure");
    }
    // Other codes are not affected while a fault is queued for SEND_MESSAGE_V2.
    b.fail_next(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        1,
    );
    assert_eq!(c.heartbeat("c1", "G").code, ResponseCode::SUCCESS);
    assert_eq!(
        c.call(send_v2("F", 0, "", b"x")).code,
        ResponseCode::FLUSH_DISK_TIMEOUT
    );
    assert_eq!(
        c.call(send_v2("F", 0, "", b"x")).code,
        ResponseCode::SUCCESS
    );
    assert_eq!(b.message_count("F"), 1, "failed sends store nothing");
    let counters = b.counters();
    assert_eq!(counters.sends(), 4, "faulted requests are counted");
    assert_eq!(counters.messages_stored(), 1);

    // In the request's header format.
    b.fail_next_with(RequestCode::SEND_MESSAGE_V2, 215, "flow control", 1);
    let mut req = send_v2("F", 0, "", b"x");
    req.serialize_type = SerializeType::RocketMq;
    let r = c.call(req);
    assert_eq!(
        (r.code, r.remark_str(), r.serialize_type),
        (215, "flow control", SerializeType::RocketMq)
    );
}

#[test]
fn a_failed_oneway_request_is_dropped() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    let h = send_half(&mut c, "F", "G", "OW-1");
    let offset = rocketmq_mio::OffsetMessageId::parse(&h.msg_id)
        .unwrap()
        .commit_log_offset;
    b.fail_next(RequestCode::END_TRANSACTION, ResponseCode::SYSTEM_ERROR, 1);
    c.send(end_tx("F", "G", h.queue_offset, offset, 8, false, "OW-1"));
    // The next request's answer is the first thing to come back: nothing for the oneway one.
    let r = c.call(route_request("F"));
    assert_eq!(r.code, ResponseCode::SUCCESS);
    assert_eq!(
        b.transaction_state("OW-1"),
        Some(TransactionState::Prepared)
    );
    assert!(b.end_transactions().is_empty(), "not handled");
    assert_eq!(b.counters().received(RequestCode::END_TRANSACTION), 1);
    c.send(end_tx("F", "G", h.queue_offset, offset, 8, false, "OW-1"));
    assert!(wait_for(PATIENCE, || b.message_count("F") == 1));
}

#[test]
fn delays_standing_and_cleared() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.set_delay(RequestCode::HEART_BEAT, Duration::from_millis(100));
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(c.heartbeat("c1", "G").code, 0);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
    // Handled at once even though the answer waits.
    assert_eq!(b.counters().heartbeats(), 2);
    b.clear_faults();
    // Sends were never delayed; heartbeats no longer are (nothing to assert on speed: the
    // answer simply comes, and in order with a send behind it).
    let hb = c.send(
        RemotingCommand::request(RequestCode::HEART_BEAT)
            .with_body(HeartbeatData::for_producer("c1", "G").to_json()),
    );
    let send = c.send(send_v2("F", 0, "", b"x"));
    assert_eq!(c.read().unwrap().opaque, hb);
    assert_eq!(c.read().unwrap().opaque, send);

    // delay_next with n = 2: two delayed answers overtaken by an undelayed one.
    b.delay_next(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(200), 2);
    let slow1 = c.send(send_v2("F", 0, "", b"s1"));
    let slow2 = c.send(send_v2("F", 1, "", b"s2"));
    let fast = c.send(route_request("F"));
    let order: Vec<i32> = (0..3).map(|_| c.read().unwrap().opaque).collect();
    assert_eq!(order[0], fast);
    assert!(order[1..].contains(&slow1) && order[1..].contains(&slow2));
}

#[test]
fn black_hole_reads_counts_and_never_answers() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.black_hole(true);
    c.send(send_v2("F", 0, "", b"x"));
    c.send(route_request("F"));
    assert!(wait_for(PATIENCE, || b.counters().requests() == 2));
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c.read().unwrap_err().starts_with("io:"), "no answer");
    assert_eq!(b.message_count("F"), 0, "not handled either");
    b.black_hole(false);
    c.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(c.call(send_v2("F", 0, "", b"y")).code, 0);
    assert_eq!(b.message_count("F"), 1);
}

#[test]
fn reset_mid_frame_sends_half_a_response_after_handling() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.reset_mid_frame_next(RequestCode::SEND_MESSAGE_V2);
    c.send(send_v2("F", 0, &props(&[("UNIQ_KEY", "R-1")]), b"x"));
    let bytes = read_to_end(&mut c.stream);
    assert!(bytes.len() > 4, "part of a frame arrived");
    let announced = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(bytes.len() < announced + 4, "but not all of it");
    // The broker stored the message before the connection broke: a retry duplicates it.
    assert_eq!(b.message_count("F"), 1);
    let mut c = Client::connect(&b.broker_addr());
    assert_eq!(c.call(send_v2("F", 0, "", b"y")).code, 0);
}

#[test]
fn malformed_and_close_next() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.malformed_next(RequestCode::HEART_BEAT);
    c.send(
        RemotingCommand::request(RequestCode::HEART_BEAT)
            .with_body(HeartbeatData::for_producer("c1", "G").to_json()),
    );
    let e = c.read().unwrap_err();
    assert!(e.starts_with("decode:"), "{e}");
    assert_eq!(b.counters().heartbeats(), 0, "not handled");

    let mut c = Client::connect(&b.broker_addr());
    b.close_next(RequestCode::SEND_MESSAGE_V2);
    c.send(send_v2("F", 0, "", b"x"));
    assert_eq!(c.read().unwrap_err(), "eof");
    assert_eq!(b.message_count("F"), 0, "closed without handling");
    assert!(wait_for(PATIENCE, || b.connection_count() <= 1));
}

#[test]
fn close_connections_stop_and_restart() {
    let b = broker();
    let addr = b.broker_addr();
    let mut c1 = Client::connect(&addr);
    let mut c2 = Client::connect(&addr);
    assert_eq!(c1.call(send_v2("F", 0, "", b"1")).code, 0);
    assert_eq!(c2.call(route_request("F")).code, 0);
    assert!(wait_for(PATIENCE, || b.connection_count() == 2));
    b.close_connections();
    for c in [&mut c1, &mut c2] {
        let e = c.read().unwrap_err();
        assert!(e == "eof" || e.starts_with("io:"), "{e}");
    }
    // Still listening.
    let mut c3 = Client::connect(&addr);
    assert_eq!(c3.call(send_v2("F", 0, "", b"2")).code, 0);
    assert_eq!(b.counters().connections(), 3);

    b.stop();
    assert!(!b.is_running());
    let e = c3.read().unwrap_err();
    assert!(e == "eof" || e.starts_with("io:"), "{e}");
    assert!(TcpStream::connect(&addr).is_err(), "not listening");
    b.stop(); // twice is fine
    b.restart().unwrap();
    b.restart().unwrap(); // and so is restarting a running broker
    assert!(b.is_running());
    assert_eq!(b.broker_addr(), addr, "same port");
    let mut c4 = Client::connect(&addr);
    assert_eq!(c4.call(send_v2("F", 0, "", b"3")).code, 0);
    // The store and the counters survived.
    let stored = b.messages("F");
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2].queue_offset, 2);
    assert_eq!(b.counters().sends(), 3);
}

#[test]
fn a_cluster_name_server_takes_faults_too() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("NS", 2)
        .start()
        .unwrap();
    let ns = cluster.namesrv();
    let mut c = Client::connect(&cluster.namesrv_addr());
    ns.fail_next(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        ResponseCode::SYSTEM_ERROR,
        1,
    );
    assert_eq!(c.call(route_request("NS")).code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(c.call(route_request("NS")).code, ResponseCode::SUCCESS);
    assert_eq!(ns.route_requests(), 2);

    ns.black_hole(true);
    c.send(route_request("NS"));
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c.read().unwrap_err().starts_with("io:"));
    ns.black_hole(false);

    ns.set_delay(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        Duration::from_millis(100),
    );
    let mut c = Client::connect(&cluster.namesrv_addr());
    let started = Instant::now();
    assert_eq!(c.call(route_request("NS")).code, 0);
    assert!(started.elapsed() >= Duration::from_millis(100));
    ns.clear_faults();

    ns.reset_mid_frame_next(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    c.send(route_request("NS"));
    assert_eq!(c.read().unwrap_err(), "eof");

    // A broker's faults are its own.
    cluster
        .broker(0)
        .fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
    let mut b1 = Client::connect(&cluster.broker(1).broker_addr());
    assert_eq!(b1.call(send_v2("NS", 0, "", b"x")).code, 0);
    let mut b0 = Client::connect(&cluster.broker(0).broker_addr());
    assert_eq!(
        b0.call(send_v2("NS", 0, "", b"x")).code,
        ResponseCode::SYSTEM_BUSY
    );
}

#[test]
fn store_with_status_stores_and_answers_another_code() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.store_with_status_next(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        1,
    );
    let r = c.call(send_v2("F", 1, &props(&[("UNIQ_KEY", "ST-1")]), b"x"));
    assert_eq!(r.code, ResponseCode::FLUSH_DISK_TIMEOUT);
    let h = SendMessageResponseHeader::read_from(&r.ext_fields).unwrap();
    assert_eq!((h.queue_id, h.queue_offset), (1, 0));
    assert_eq!(h.transaction_id.as_deref(), Some("ST-1"));
    assert_eq!(b.message_count("F"), 1, "stored all the same");
    // A refusal stays a refusal.
    b.store_with_status_next(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::SLAVE_NOT_AVAILABLE,
        1,
    );
    assert_eq!(
        c.call(send_v2("F", 9, "", b"x")).code,
        ResponseCode::SYSTEM_ERROR
    );
    assert_eq!(
        c.call(send_v2("F", 1, "", b"y")).code,
        ResponseCode::SUCCESS
    );
    assert_eq!(b.messages("F")[1].queue_offset, 1);
}

#[test]
fn a_standing_delay_under_load_answers_everything_in_order() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_millis(20));
    let opaques: Vec<i32> = (0..300)
        .map(|i| c.send(send_v2("F", i % 2, "", b"x")))
        .collect();
    let answered: Vec<i32> = (0..300).map(|_| c.read().unwrap().opaque).collect();
    assert_eq!(answered, opaques, "equal delays keep the request order");
    assert_eq!(b.message_count("F"), 300);
}

#[test]
fn unreadable_header_next_stores_then_garbles_the_answer() {
    let b = broker();
    let mut c = Client::connect(&b.broker_addr());
    b.unreadable_header_next(RequestCode::SEND_MESSAGE_V2);
    let r = c.call(send_v2("F", 0, "", b"x"));
    assert_eq!(r.code, ResponseCode::SUCCESS);
    assert!(SendMessageResponseHeader::read_from(&r.ext_fields).is_err());
    assert_eq!(b.message_count("F"), 1, "the message is stored");
    // The next answer is readable again.
    let r = c.call(send_v2("F", 0, "", b"y"));
    assert!(SendMessageResponseHeader::read_from(&r.ext_fields).is_ok());
}
