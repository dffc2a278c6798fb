//! TLS (crate feature `tls`) against TLS-only MockBrokers: every send mode, certificate
//! verification failures, handshake faults, and the exactly-once guarantees over TLS.
//!
//! Certificates: tests/data/tls/, made by `scripts/tls-certs.sh tests/data/tls` (a test CA,
//! a server certificate for 127.0.0.1/::1/localhost, a client certificate, another CA).
//!
//! Run with `cargo test --features tls --test tls`. Every test runs under a watchdog, so a
//! regression that hangs fails in bounded time.
#![cfg(feature = "tls")]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig, TlsConfig};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::{MockBroker, MockTls};
use rocketmq_mio::{Error, ErrorKind, Message, Producer, ProducerConfig, SendStatus};

use common::{wait_until, PROMPTLY};

/// Longest any one test may take before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(120);

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// Runs `f` on its own thread; fails the test if it does not finish within [`WATCHDOG`].
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

fn server_identity() -> MockTls {
    MockTls::from_pem_files(data("server.pem"), data("server.key")).expect("test certificates")
}

fn tls_broker() -> MockBroker {
    MockBroker::builder()
        .tls(server_identity())
        .expect("server config")
        .start()
        .expect("broker starts")
}

fn tls_producer_config(broker: &MockBroker, group: &str) -> rocketmq_mio::ProducerConfigBuilder {
    ProducerConfig::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .tls(true)
        .tls_ca_file(data("ca.pem"))
}

fn start(config: rocketmq_mio::ProducerConfigBuilder) -> Producer {
    config.start().expect("producer starts")
}

fn tls_client(tls: TlsConfig) -> RemotingClient {
    RemotingClient::new(RemotingConfig {
        tls: Some(tls),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .expect("client starts")
}

const LONG: Duration = Duration::from_secs(10);

/// A connection error naming `addr`, whose text contains `needle`.
fn assert_connection_error(err: &Error, addr: &str, needle: &str) {
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let text = err.to_string();
    assert!(text.contains(addr), "names the peer {addr}: {text}");
    assert!(text.contains(needle), "says {needle:?}: {text}");
}

#[test]
fn every_send_mode_over_tls() {
    bounded(|| {
        let broker = tls_broker();
        let p = start(tls_producer_config(&broker, "GID_TLS_MODES"));
        let topic = "TlsModes";

        let r = p.send(Message::new(topic, "sync").with_tags("T")).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);

        let h = p.send_async(Message::new(topic, "async"));
        assert_eq!(h.wait().unwrap().status, SendStatus::SendOk);

        let (tx, rx) = mpsc::channel();
        p.send_with_callback(Message::new(topic, "callback"), move |r| {
            let _ = tx.send(r);
        });
        assert!(rx.recv_timeout(PROMPTLY).expect("callback runs").is_ok());

        p.send_oneway(Message::new(topic, "oneway")).unwrap();

        p.send_batch(vec![
            Message::new(topic, "batch 1"),
            Message::new(topic, "batch 2"),
        ])
        .unwrap();

        let r = p
            .send_with_selector(Message::new(topic, "ordered"), &MessageHashSelector, "o-42")
            .unwrap();
        p.send_to_queue(Message::new(topic, "to queue"), &r.queue)
            .unwrap();

        // The handle is a future too, driven here without a runtime.
        let r = futures_lite_block_on(p.send_async(Message::new(topic, "awaited"))).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);

        assert!(
            wait_until(PROMPTLY, || broker.message_count(topic) == 9),
            "stored: {}",
            broker.message_count(topic)
        );
        let mut bodies: Vec<String> = broker
            .messages(topic)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        bodies.sort();
        assert_eq!(
            bodies,
            [
                "async", "awaited", "batch 1", "batch 2", "callback", "oneway", "ordered", "sync",
                "to queue"
            ]
        );
        p.shutdown(Duration::from_secs(5)).unwrap();
    });
}

/// Polls a future to completion on this thread (the handle is a `Future`).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn large_bodies_and_pipelined_sends_cross_tls_whole() {
    bounded(|| {
        let broker = tls_broker();
        let p = start(
            tls_producer_config(&broker, "GID_TLS_LARGE")
                .compress_threshold(usize::MAX)
                .max_in_flight(4096),
        );
        // Far over a TLS record (16 KiB) and rustls' 64 KiB buffer: written in many turns.
        let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        p.send(Message::new("TlsLarge", body.clone())).unwrap();
        assert_eq!(broker.messages("TlsLarge")[0].body, body);

        let handles: Vec<_> = (0..2000)
            .map(|i| p.send_async(Message::new("TlsMany", format!("m{i}"))))
            .collect();
        for h in handles {
            h.wait().unwrap();
        }
        assert_eq!(broker.message_count("TlsMany"), 2000);
    });
}

#[test]
fn wrong_ca_fails_cleanly_naming_the_broker() {
    bounded(|| {
        let broker = tls_broker();
        let addr = broker.addr().to_string();
        let client = tls_client(TlsConfig::new().ca_file(data("other-ca.pem")));
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap_err();
        assert_connection_error(&err, &addr, "TLS handshake failed");
        assert!(err.to_string().contains("certificate"), "{err}");

        // Through the producer: the send ends with the error, naming the name server.
        let p = start(
            tls_producer_config(&broker, "GID_TLS_WRONG_CA")
                .tls_ca_file(data("other-ca.pem"))
                .send_timeout(Duration::from_secs(3)),
        );
        let err = p.send(Message::new("TlsWrongCa", "x")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&addr), "names {addr}: {text}");
        assert!(text.contains("certificate"), "says why: {text}");
        assert_eq!(broker.message_count("TlsWrongCa"), 0);
    });
}

#[test]
fn certificate_must_name_the_server() {
    bounded(|| {
        let broker = tls_broker();
        let addr = broker.addr().to_string();
        // The certificate names 127.0.0.1 and localhost, not this.
        let client = tls_client(
            TlsConfig::new()
                .ca_file(data("ca.pem"))
                .server_name("broker.example"),
        );
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap_err();
        assert_connection_error(&err, &addr, "TLS handshake failed");

        // A name the certificate has: verified.
        let client = tls_client(
            TlsConfig::new()
                .ca_file(data("ca.pem"))
                .server_name("localhost"),
        );
        client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap();
    });
}

#[test]
fn insecure_skip_verify_accepts_an_unknown_ca() {
    bounded(|| {
        let broker = tls_broker();
        let p = start(
            ProducerConfig::builder("GID_TLS_INSECURE")
                .name_server(broker.namesrv_addr())
                .tls(true)
                .tls_insecure_skip_verify_for_testing(true)
                .tls_server_name("not-the-name.example"),
        );
        p.send(Message::new("TlsInsecure", "x")).unwrap();
        assert_eq!(broker.message_count("TlsInsecure"), 1);
    });
}

#[test]
fn mutual_tls() {
    bounded(|| {
        let broker = MockBroker::builder()
            .tls(
                server_identity()
                    .require_client_cert(data("ca.pem"))
                    .unwrap(),
            )
            .unwrap()
            .start()
            .unwrap();
        let addr = broker.addr().to_string();
        // No client certificate: the broker refuses the handshake.
        let client = tls_client(TlsConfig::new().ca_file(data("ca.pem")));
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.to_string().contains(&addr), "{err}");

        let p = start(
            tls_producer_config(&broker, "GID_TLS_MUTUAL")
                .tls_client_cert(data("client.pem"), data("client.key")),
        );
        p.send(Message::new("TlsMutual", "x")).unwrap();
        assert_eq!(broker.message_count("TlsMutual"), 1);
    });
}

#[test]
fn tls_client_to_a_plain_server_fails_cleanly() {
    bounded(|| {
        let plain = MockBroker::start().unwrap();
        let addr = plain.addr().to_string();
        let client = tls_client(TlsConfig::new().ca_file(data("ca.pem")));
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
    });
}

#[test]
fn plain_client_to_a_tls_server_fails_cleanly() {
    bounded(|| {
        let broker = tls_broker();
        let addr = broker.addr().to_string();
        let client = RemotingClient::new(RemotingConfig::default()).unwrap();
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
    });
}

#[test]
fn a_silent_server_fails_the_handshake_at_the_connect_timeout() {
    bounded(|| {
        // Accepts, then never says a word: the handshake cannot finish.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let holder = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });
        let client = RemotingClient::new(RemotingConfig {
            tls: Some(TlsConfig::new().ca_file(data("ca.pem"))),
            connect_timeout: Duration::from_millis(300),
            ..Default::default()
        })
        .unwrap();
        // The request's own timeout is far longer: the handshake deadline ends it.
        let err = client
            .invoke_sync(&addr, RemotingCommand::request(34), Duration::from_secs(60))
            .unwrap_err();
        assert_connection_error(&err, &addr, "TLS handshake timed out");
        client.shutdown();
        drop(client);
        let _ = holder.join();
    });
}

#[test]
fn every_pending_request_ends_when_a_tls_connection_drops_and_the_next_reconnects() {
    bounded(|| {
        let broker = tls_broker();
        let addr = broker.addr().to_string();
        let client = tls_client(TlsConfig::new().ca_file(data("ca.pem")));
        client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap();
        broker.black_hole(true);
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (c, h) = pair();
                client.invoke_async(
                    &addr,
                    RemotingCommand::request(34),
                    LONG,
                    Completion::Handle(c),
                );
                h
            })
            .collect();
        assert!(wait_until(PROMPTLY, || client.pending_count() == 20));
        broker.close_connections();
        for h in handles {
            let err = h.wait().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        }
        broker.black_hole(false);
        client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap();
    });
}

#[test]
fn shutdown_ends_every_pending_tls_request() {
    bounded(|| {
        let broker = tls_broker();
        let addr = broker.addr().to_string();
        let client = tls_client(TlsConfig::new().ca_file(data("ca.pem")));
        client
            .invoke_sync(&addr, RemotingCommand::request(34), LONG)
            .unwrap();
        broker.black_hole(true);
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (c, h) = pair();
                client.invoke_async(
                    &addr,
                    RemotingCommand::request(34),
                    LONG,
                    Completion::Handle(c),
                );
                h
            })
            .collect();
        client.shutdown();
        for h in handles {
            assert!(matches!(h.wait(), Err(Error::Shutdown)));
        }
    });
}

#[test]
fn unreadable_certificate_files_are_config_errors() {
    let setting_of = |r: rocketmq_mio::Result<Producer>| match r {
        Err(Error::Config { setting, reason }) => (setting, reason),
        Err(other) => panic!("not a config error: {other}"),
        Ok(_) => panic!("started"),
    };
    let base = || {
        ProducerConfig::builder("GID_TLS_CFG")
            .name_server("127.0.0.1:9")
            .tls(true)
    };
    let (setting, reason) = setting_of(Producer::start(
        base().tls_ca_file("/nonexistent/ca.pem").build().unwrap(),
    ));
    assert_eq!(setting, "tls_ca_file");
    assert!(reason.contains("/nonexistent/ca.pem"), "{reason}");

    // A key file is no CA file.
    let (setting, _) = setting_of(Producer::start(
        base().tls_ca_file(data("server.key")).build().unwrap(),
    ));
    assert_eq!(setting, "tls_ca_file");

    let (setting, _) = setting_of(Producer::start(
        base()
            .tls_ca_file(data("ca.pem"))
            .tls_client_cert(data("client.pem"), data("server.pem"))
            .build()
            .unwrap(),
    ));
    assert_eq!(setting, "tls_client_key");
}

/// A listener that leaves the outcome open, then commits when the broker checks back.
struct CommitOnCheck;

impl rocketmq_mio::TransactionListener for CommitOnCheck {
    fn execute_local_transaction(
        &self,
        _msg: &Message,
        _transaction_id: &str,
        _arg: &dyn std::any::Any,
    ) -> rocketmq_mio::ListenerResult {
        Ok(rocketmq_mio::LocalTransactionState::Unknown)
    }

    fn check_local_transaction(
        &self,
        _msg: &rocketmq_mio::MessageExt,
        _transaction_id: &str,
    ) -> rocketmq_mio::ListenerResult {
        Ok(rocketmq_mio::LocalTransactionState::CommitMessage)
    }
}

#[test]
fn transaction_check_backs_over_tls() {
    bounded(|| {
        // The broker asks over the producer's TLS connection; the answer goes back over it.
        let broker = tls_broker();
        let tp = tls_producer_config(&broker, "GID_TLS_TX")
            .listener(CommitOnCheck)
            .start()
            .unwrap();
        let r = tp
            .send_message_in_transaction(Message::new("TlsTx", "tx body"), &())
            .unwrap();
        assert_eq!(
            broker.message_count("TlsTx"),
            0,
            "a half message is not visible"
        );
        let id = r.transaction_id;
        assert!(
            wait_until(PROMPTLY, || broker.check_transaction(&id) > 0),
            "no TLS connection of the group to check back on"
        );
        assert!(
            wait_until(PROMPTLY, || broker.message_count("TlsTx") == 1),
            "the check-back's commit arrived"
        );
    });
}
