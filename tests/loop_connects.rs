//! An event loop skips its scans for connect deadlines while none of its connections is
//! connecting: connects that start, finish, fail and time out next to connected connections
//! and in-flight requests keep that count exact, so every connect timeout still fires.

mod remoting_peer;

use std::time::{Duration, Instant};

use remoting_peer::{hanging_listener, spawn_echo};
use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{ConnectionState, RemotingClient, RemotingConfig};
use rocketmq_mio::Error;

const LONG: Duration = Duration::from_secs(30);

fn request(code: i32, body: &str) -> RemotingCommand {
    RemotingCommand::request(code).with_body(body.as_bytes().to_vec())
}

/// An address nothing listens on: connects to it fail at once (refused).
fn refused_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

fn expect_connect_timeout(err: Error, addr: &str) {
    match &err {
        Error::Io { addr: a, source } => {
            assert_eq!(a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{err}");
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
}

#[test]
fn connect_timeouts_fire_among_connected_connections() {
    let connect_timeout = Duration::from_millis(200);
    // One event loop: every connection below is counted by the same loop.
    let client = RemotingClient::new(RemotingConfig {
        io_threads: 1,
        connect_timeout,
        ..Default::default()
    })
    .unwrap();
    let echo = spawn_echo();
    let (_listener, _filler, hanging) = hanging_listener();
    for round in 0..3 {
        // A connected connection (a connect that finished) and round trips on it.
        let resp = client.invoke_sync(&echo, request(10, "a"), LONG).unwrap();
        assert_eq!(resp.body, b"a");
        // A connect that fails at once (closed while connecting).
        let refused = refused_addr();
        let err = client
            .invoke_sync(&refused, request(10, "r"), LONG)
            .unwrap_err();
        assert!(
            matches!(err, Error::Io { .. } | Error::ConnectionClosed { .. }),
            "round {round}: {err:?}"
        );
        // A connect that hangs: it must time out at the connect timeout, while requests go
        // back and forth on the connected connection.
        let start = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let client = client.clone();
            let hanging = hanging.clone();
            std::thread::spawn(move || {
                let err = client
                    .invoke_sync(&hanging, request(10, "h"), LONG)
                    .unwrap_err();
                tx.send(()).unwrap();
                err
            })
        };
        while rx.try_recv().is_err() {
            let resp = client.invoke_sync(&echo, request(10, "b"), LONG).unwrap();
            assert_eq!(resp.body, b"b");
            assert!(
                start.elapsed() < LONG,
                "round {round}: the connect never timed out"
            );
        }
        expect_connect_timeout(waiter.join().unwrap(), &hanging);
        assert!(start.elapsed() >= connect_timeout);
        assert!(matches!(
            client.connection_state(&hanging),
            Some(ConnectionState::Closed { .. })
        ));
        assert_eq!(
            client.connection_state(&echo),
            Some(ConnectionState::Connected)
        );
    }
    assert_eq!(client.pending_count(), 0);
}
