//! IPv6: a producer on an IPv6-only address sends to a MockBroker listening on `[::1]`, whose
//! routes name `[::1]:port`; message ids carry the 16-byte client address, the broker's
//! offset ids the 16-byte store address, and the stored message's born host (as the broker
//! encodes it for VIEW_MESSAGE_BY_ID) is the IPv6 peer. Skipped, with the reason printed, on a
//! machine without an IPv6 loopback.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::protocol::header::{CommandHeader, ViewMessageByIdRequestHeader};
use rocketmq_mio::protocol::message_codec::{decode_stored_messages, sys_flag};
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer};

use common::PROMPTLY;

/// Whether this machine can listen on `[::1]`.
fn ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PROMPTLY * 2) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match body.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body hung (watchdog)"),
    }
}

#[test]
fn send_to_a_broker_on_ipv6_loopback_from_an_ipv6_client() {
    if !ipv6_loopback() {
        eprintln!("skipped: this machine has no IPv6 loopback ([::1] cannot be bound)");
        return;
    }
    watchdog(|| {
        let broker = MockBroker::builder()
            .bind_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
            .start()
            .unwrap();
        let addr = broker.namesrv_addr();
        assert!(addr.starts_with("[::1]:"), "{addr}");
        let producer = Producer::builder("GID_V6")
            .name_server(&addr)
            .client_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
            .send_timeout(Duration::from_secs(10))
            .start()
            .unwrap();
        let r = producer.send(Message::new("V6", "over ipv6")).unwrap();
        let r2 = producer
            .send_async(Message::new("V6", "async"))
            .wait()
            .unwrap();
        assert_eq!(broker.message_count("V6"), 2);

        // The client id and message ids carry the IPv6 address: 16 bytes, 56 hex digits.
        assert!(
            producer.client_id().starts_with("::1@"),
            "{}",
            producer.client_id()
        );
        for id in [&r.msg_id, &r2.msg_id] {
            assert_eq!(id.len(), 56, "{id}");
            assert!(id.starts_with("00000000000000000000000000000001"), "{id}");
        }
        // The broker's offset id names its IPv6 store address.
        let offset = r.offset_id().unwrap();
        let broker_addr: SocketAddr = broker.broker_addr().parse().unwrap();
        assert_eq!(offset.store_host, broker_addr);
        assert_eq!(r.offset_msg_id.len(), 56, "{}", r.offset_msg_id);

        // The stored message as the broker encodes it: IPv6 born and store hosts, flagged.
        let client = RemotingClient::new(RemotingConfig::default()).unwrap();
        let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
        ViewMessageByIdRequestHeader {
            offset: offset.commit_log_offset,
        }
        .write_to(&mut view.ext_fields);
        let response = client
            .invoke_sync(&broker.broker_addr(), view, PROMPTLY)
            .unwrap();
        assert_eq!(
            response.code,
            ResponseCode::SUCCESS,
            "{:?}",
            response.remark
        );
        let stored = decode_stored_messages(&response.body).unwrap().remove(0);
        assert_eq!(stored.born_host.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(stored.store_host, broker_addr);
        assert_ne!(stored.sys_flag & sys_flag::BORNHOST_V6, 0);
        assert_ne!(stored.sys_flag & sys_flag::STOREHOST_V6, 0);
        assert_eq!(stored.body, b"over ipv6");
        assert_eq!(stored.msg_id(), Some(r.msg_id.as_str()));
        client.shutdown();
        producer.shutdown(Duration::from_secs(5)).unwrap();
    });
}
