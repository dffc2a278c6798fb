//! The remoting client against scripted `std::net` peers: every way a request can end.

mod remoting_peer;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use remoting_peer::{echo_response, hanging_listener, spawn_echo, wait_until, Peer, STUCK};
use rocketmq_mio::protocol::frame::{FLAG_ONEWAY, FLAG_RESPONSE};
use rocketmq_mio::protocol::{RemotingCommand, SerializeType};
use rocketmq_mio::remoting::{
    pair, Completion, ConnectionState, RemotingClient, RemotingConfig, RequestHandler,
};
use rocketmq_mio::{Error, ErrorKind};

const LONG: Duration = Duration::from_secs(30);

fn client() -> RemotingClient {
    RemotingClient::new(RemotingConfig::default()).unwrap()
}

fn request(code: i32, body: &str) -> RemotingCommand {
    RemotingCommand::request(code).with_body(body.as_bytes().to_vec())
}

fn is_callback_thread() -> bool {
    thread::current()
        .name()
        .is_some_and(|n| n.starts_with("rocketmq-callback-"))
}

#[test]
fn sync_round_trip() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        assert_eq!(req.code, 10);
        assert_eq!(req.flag, 0, "a request, not oneway");
        assert_eq!(req.serialize_type, SerializeType::Json);
        conn.answer(&req, 0);
        (req.opaque, conn)
    });
    let resp = client
        .invoke_sync(&addr, request(10, "hello"), LONG)
        .unwrap();
    let (opaque, _conn) = server.join().unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(resp.opaque, opaque);
    assert!(resp.is_response());
    assert_eq!(resp.body, b"hello");
    assert_eq!(resp.ext_fields.get("req"), Some("10"));
    assert_eq!(
        client.connection_state(&addr),
        Some(ConnectionState::Connected)
    );
    assert_eq!(client.pending_count(), 0);
}

#[test]
fn rocketmq_serialization_round_trip() {
    let addr = spawn_echo();
    let client = RemotingClient::new(RemotingConfig {
        serialize_type: SerializeType::RocketMq,
        ..Default::default()
    })
    .unwrap();
    let resp = client.invoke_sync(&addr, request(11, "bin"), LONG).unwrap();
    assert_eq!(resp.body, b"bin");
}

#[test]
fn async_handle_round_trip() {
    let addr = spawn_echo();
    let client = client();
    let (c, h) = pair();
    client.invoke_async(&addr, request(12, "async"), LONG, Completion::Handle(c));
    let resp = h.wait().unwrap();
    assert_eq!(resp.body, b"async");
}

#[test]
fn callback_runs_on_the_callback_pool() {
    let addr = spawn_echo();
    let client = client();
    let (tx, rx) = mpsc::channel();
    client.invoke_async(
        &addr,
        request(13, "cb"),
        LONG,
        Completion::Callback(Box::new(move |r| {
            let name = thread::current().name().map(str::to_owned);
            tx.send((name, r.map(|c| c.body))).unwrap();
        })),
    );
    let (name, body) = rx.recv_timeout(STUCK).unwrap();
    let name = name.unwrap();
    assert!(name.starts_with("rocketmq-callback-"), "{name}");
    assert_eq!(body.unwrap(), b"cb");
}

#[test]
fn oneway_is_sent_with_the_oneway_flag() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    client.invoke_oneway(&addr, request(37, "one")).unwrap();
    let mut conn = peer.accept();
    let req = conn.read_cmd().unwrap();
    assert_eq!(req.code, 37);
    assert_eq!(req.flag & FLAG_ONEWAY, FLAG_ONEWAY);
    assert_eq!(req.body, b"one");
    // A oneway flag on a sync request is cleared: the peer is expected to answer.
    let server = thread::spawn(move || {
        let req = conn.read_cmd().unwrap();
        assert_eq!(req.flag, 0);
        conn.answer(&req, 0);
    });
    let resp = client
        .invoke_sync(&addr, request(10, "two").into_oneway(), LONG)
        .unwrap();
    assert_eq!(resp.body, b"two");
    server.join().unwrap();
}

#[test]
fn ten_thousand_in_flight_answered_out_of_order() {
    const N: usize = 10_000;
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let mut reqs = Vec::with_capacity(N);
        for _ in 0..N {
            reqs.push(conn.read_cmd().unwrap());
        }
        // Answer in an order unlike the requests': odd positions backwards, then even ones.
        let mut order: Vec<usize> = (0..N).filter(|i| i % 2 == 1).rev().collect();
        order.extend((0..N).filter(|i| i % 2 == 0));
        let mut out = Vec::new();
        for i in order {
            echo_response(&reqs[i], 0).encode(&mut out).unwrap();
            if out.len() > 64 * 1024 {
                conn.write_raw(&out);
                out.clear();
            }
        }
        conn.write_raw(&out);
        conn
    });
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (c, h) = pair();
            client.invoke_async(
                &addr,
                request(10, &format!("req-{i}")),
                LONG,
                Completion::Handle(c),
            );
            h
        })
        .collect();
    let mut opaques = HashSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        let resp = h.wait().unwrap();
        assert_eq!(resp.body, format!("req-{i}").as_bytes());
        assert!(opaques.insert(resp.opaque));
    }
    let _conn = server.join().unwrap();
    assert_eq!(client.pending_count(), 0);
}

#[test]
fn timeout_not_before_the_deadline_and_connection_stays_usable() {
    let peer = Peer::bind();
    let addr = peer.addr();
    // Keeping the connection after a timeout is the non-default mode (see
    // tests/fault_connections.rs for the default, which closes it).
    let client = RemotingClient::new(RemotingConfig {
        close_on_request_timeout: false,
        ..Default::default()
    })
    .unwrap();
    let (got_first, first) = mpsc::channel();
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let late = conn.read_cmd().unwrap();
        got_first.send(()).unwrap();
        // The second request proves the client timed out the first and kept the connection.
        let second = conn.read_cmd().unwrap();
        conn.answer(&late, 0); // too late: dropped by the client
        conn.answer(&second, 0);
        assert!(peer.try_accept(Duration::from_millis(100)).is_none());
        conn
    });
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    let err = client
        .invoke_sync(&addr, request(10, "never"), timeout)
        .unwrap_err();
    let waited = start.elapsed();
    first.recv_timeout(STUCK).unwrap();
    assert!(waited >= timeout, "timed out early, after {waited:?}");
    match &err {
        Error::Timeout { addr: a, after, .. } => {
            assert_eq!(a, &addr);
            assert_eq!(*after, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.to_string().contains(&addr));
    assert!(err.to_string().contains("200ms"));
    let resp = client
        .invoke_sync(&addr, request(10, "next"), LONG)
        .unwrap();
    assert_eq!(resp.body, b"next");
    let _conn = server.join().unwrap();
    assert_eq!(
        client.connection_state(&addr),
        Some(ConnectionState::Connected)
    );
}

#[test]
fn async_timeouts_end_each_request_once() {
    for close_on_request_timeout in [false, true] {
        async_timeouts_end_each_request_once_with(close_on_request_timeout);
    }
}

fn async_timeouts_end_each_request_once_with(close_on_request_timeout: bool) {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = RemotingClient::new(RemotingConfig {
        close_on_request_timeout,
        ..Default::default()
    })
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let timeouts = Arc::new(AtomicUsize::new(0));
    for i in 0..50u64 {
        let (calls, timeouts) = (calls.clone(), timeouts.clone());
        client.invoke_async(
            &addr,
            request(10, "x"),
            Duration::from_millis(20 + i),
            Completion::Callback(Box::new(move |r| {
                calls.fetch_add(1, Ordering::SeqCst);
                if r.is_err_and(|e| e.is_timeout()) {
                    timeouts.fetch_add(1, Ordering::SeqCst);
                }
            })),
        );
    }
    let _conn = peer.accept();
    assert!(wait_until(STUCK, || calls.load(Ordering::SeqCst) == 50));
    if close_on_request_timeout {
        // The first timeout closes the connection; the rest fail with it (or time out first).
        assert!(timeouts.load(Ordering::SeqCst) >= 1);
    } else {
        assert_eq!(timeouts.load(Ordering::SeqCst), 50);
    }
    assert!(wait_until(STUCK, || client.pending_count() == 0));
    thread::sleep(Duration::from_millis(30));
    assert_eq!(calls.load(Ordering::SeqCst), 50, "no request ends twice");
}

#[test]
fn peer_closing_mid_stream_fails_all_pending_then_reconnects() {
    const N: usize = 1_000;
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (c, h) = pair();
            client.invoke_async(
                &addr,
                request(10, &format!("{i}")),
                Duration::from_secs(600),
                Completion::Handle(c),
            );
            h
        })
        .collect();
    let mut conn = peer.accept();
    for _ in 0..N {
        conn.read_cmd().unwrap();
    }
    assert!(wait_until(STUCK, || client.pending_count() == N));
    drop(conn);
    let deadline = Instant::now() + STUCK;
    for mut h in handles {
        let err = h
            .wait_deadline(deadline)
            .expect("request not failed promptly")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert_eq!(err.broker_addr(), Some(addr.as_str()));
    }
    assert!(matches!(
        client.connection_state(&addr),
        Some(ConnectionState::Closed { .. })
    ));
    // The next request connects again.
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        conn.answer(&req, 0);
        conn
    });
    let resp = client
        .invoke_sync(&addr, request(10, "again"), LONG)
        .unwrap();
    assert_eq!(resp.body, b"again");
    let _conn = server.join().unwrap();
}

/// Sends a request, lets the peer answer it with `bytes`, and checks the request fails with a
/// connection error and the connection is closed.
fn bad_bytes_close_the_connection(config: RemotingConfig, bytes: Vec<u8>, reason_has: &str) {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = RemotingClient::new(config).unwrap();
    let (c, mut pending) = pair();
    client.invoke_async(&addr, request(10, "p"), LONG, Completion::Handle(c));
    let mut conn = peer.accept();
    let first = conn.read_cmd().unwrap();
    assert_eq!(first.body, b"p");
    // A second request is in flight too.
    let server = thread::spawn(move || {
        let _second = conn.read_cmd().unwrap();
        conn.write_raw(&bytes);
        assert!(conn.sees_eof(STUCK), "client did not close the connection");
        peer
    });
    let err = client
        .invoke_sync(&addr, request(10, "q"), LONG)
        .unwrap_err();
    match &err {
        Error::ConnectionClosed { addr: a, reason } => {
            assert_eq!(a, &addr);
            assert!(reason.contains(reason_has), "{reason}");
        }
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    let first_err = pending.wait_timeout(STUCK).unwrap().unwrap_err();
    assert_eq!(first_err.kind(), ErrorKind::Connection);
    let peer = server.join().unwrap();
    // Still serving: the next request reconnects.
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        conn.answer(&req, 0);
    });
    assert_eq!(
        client
            .invoke_sync(&addr, request(10, "r"), LONG)
            .unwrap()
            .body,
        b"r"
    );
    server.join().unwrap();
}

#[test]
fn garbage_closes_the_connection() {
    // Length 8, then an unknown serialize type.
    let mut garbage = 8u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[9, 0, 0, 0, 1, 2, 3, 4]);
    bad_bytes_close_the_connection(RemotingConfig::default(), garbage, "unknown serialize type");
}

#[test]
fn bad_json_header_closes_the_connection() {
    let header = b"{not json";
    let mut bytes = ((4 + header.len()) as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(header);
    bad_bytes_close_the_connection(RemotingConfig::default(), bytes, "bad JSON");
}

#[test]
fn negative_length_closes_the_connection() {
    bad_bytes_close_the_connection(
        RemotingConfig::default(),
        (-5i32).to_be_bytes().to_vec(),
        "negative frame length",
    );
}

#[test]
fn frame_over_the_limit_closes_the_connection() {
    let config = RemotingConfig {
        max_frame: 1024,
        ..Default::default()
    };
    // Only the length prefix: the client must not wait for the megabyte behind it.
    bad_bytes_close_the_connection(
        config,
        (1u32 << 20).to_be_bytes().to_vec(),
        "over the limit",
    );
}

#[test]
fn whole_response_over_the_limit_closes_the_connection() {
    let config = RemotingConfig {
        max_frame: 1024,
        ..Default::default()
    };
    let big = RemotingCommand::response(0, 12345).with_body(vec![7u8; 2000]);
    bad_bytes_close_the_connection(config, big.to_frame().unwrap(), "over the limit");
}

#[test]
fn large_frames_within_the_limit_pass() {
    let addr = spawn_echo();
    let client = client();
    let body = vec![0xA5u8; 3 * 1024 * 1024];
    let resp = client
        .invoke_sync(
            &addr,
            RemotingCommand::request(10).with_body(body.clone()),
            LONG,
        )
        .unwrap();
    assert!(resp.body == body);
}

#[test]
fn unknown_opaque_is_dropped() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        conn.write_cmd(&RemotingCommand::response(
            0,
            req.opaque.wrapping_add(1_000_000),
        ));
        conn.answer(&req, 0);
        conn
    });
    let resp = client
        .invoke_sync(&addr, request(10, "mine"), LONG)
        .unwrap();
    assert_eq!(resp.body, b"mine");
    let _conn = server.join().unwrap();
}

struct Recorder {
    seen: mpsc::Sender<(String, RemotingCommand, bool)>,
}

impl RequestHandler for Recorder {
    fn handle_request(&self, addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let reply = match request.code {
            39 | 1234 => Some(RemotingCommand::response(0, 0).with_body("pong")),
            _ => None,
        };
        self.seen
            .send((addr.to_owned(), request, is_callback_thread()))
            .unwrap();
        reply
    }
}

#[test]
fn server_request_reaches_the_handler_and_its_reply_the_peer() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let (tx, seen) = mpsc::channel();
    client.set_request_handler(Arc::new(Recorder { seen: tx }));
    client.invoke_oneway(&addr, request(34, "hi")).unwrap();
    let mut conn = peer.accept();
    conn.read_cmd().unwrap();

    // A oneway request from the server: handled, nothing sent back.
    let oneway = RemotingCommand::request(39)
        .with_body("check")
        .into_oneway();
    let mut oneway = oneway;
    oneway.opaque = 776;
    conn.write_cmd(&oneway);
    let (from, req, on_pool) = seen.recv_timeout(STUCK).unwrap();
    assert_eq!(req.code, 39);
    assert!(req.is_oneway());
    assert!(on_pool, "handler ran off the callback pool");
    assert_eq!(from, addr);

    // A request that expects a reply.
    let mut ask = RemotingCommand::request(1234).with_body("ping");
    ask.opaque = 777;
    conn.write_cmd(&ask);
    let reply = conn.read_cmd().unwrap();
    assert_eq!(reply.opaque, 777);
    assert_eq!(reply.flag & FLAG_RESPONSE, FLAG_RESPONSE);
    assert_eq!(reply.code, 0);
    assert_eq!(reply.body, b"pong");
    let (_, req, on_pool) = seen.recv_timeout(STUCK).unwrap();
    assert_eq!(req.body, b"ping");
    assert!(on_pool);

    // A code the handler does not know.
    let mut unknown = RemotingCommand::request(4321);
    unknown.opaque = 778;
    conn.write_cmd(&unknown);
    let reply = conn.read_cmd().unwrap();
    assert_eq!(reply.opaque, 778);
    assert_eq!(reply.code, 3);
    assert_eq!(reply.remark_str(), " request type 4321 not supported");
    assert!(reply.is_response());
    seen.recv_timeout(STUCK).unwrap();
}

#[test]
fn server_request_without_a_handler_is_not_supported() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    client.invoke_oneway(&addr, request(34, "hi")).unwrap();
    let mut conn = peer.accept();
    conn.read_cmd().unwrap();
    let mut ask = RemotingCommand::request(39);
    ask.opaque = 9;
    conn.write_cmd(&ask);
    let reply = conn.read_cmd().unwrap();
    assert_eq!((reply.opaque, reply.code), (9, 3));
    assert_eq!(reply.remark_str(), " request type 39 not supported");
}

struct Panicker;

impl RequestHandler for Panicker {
    fn handle_request(&self, _: &str, _: RemotingCommand) -> Option<RemotingCommand> {
        panic!("handler bug (expected by the test)");
    }
}

#[test]
fn panicking_handler_answers_system_error() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = RemotingClient::new(RemotingConfig {
        callback_threads: 1,
        ..Default::default()
    })
    .unwrap();
    client.set_request_handler(Arc::new(Panicker));
    client.invoke_oneway(&addr, request(34, "hi")).unwrap();
    let mut conn = peer.accept();
    conn.read_cmd().unwrap();
    for opaque in [5, 6] {
        let mut ask = RemotingCommand::request(39);
        ask.opaque = opaque;
        conn.write_cmd(&ask);
        let reply = conn.read_cmd().unwrap();
        assert_eq!((reply.opaque, reply.code), (opaque, 1));
    }
}

#[test]
fn panicking_callback_does_not_kill_the_pool() {
    let addr = spawn_echo();
    let client = RemotingClient::new(RemotingConfig {
        callback_threads: 1,
        ..Default::default()
    })
    .unwrap();
    client.invoke_async(
        &addr,
        request(10, "boom"),
        LONG,
        Completion::Callback(Box::new(|_| panic!("callback bug (expected by the test)"))),
    );
    client
        .execute(Box::new(|| panic!("task bug (expected by the test)")))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    client.invoke_async(
        &addr,
        request(10, "fine"),
        LONG,
        Completion::Callback(Box::new(move |r| tx.send(r.unwrap().body).unwrap())),
    );
    assert_eq!(rx.recv_timeout(STUCK).unwrap(), b"fine");
    client
        .execute(Box::new(move || {
            tx2.send(thread::current().name().unwrap().as_bytes().to_vec())
                .unwrap()
        }))
        .unwrap();
    assert_eq!(rx.recv_timeout(STUCK).unwrap(), b"rocketmq-callback-0");
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handle_as_a_future() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let (go, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        // block_on
        let req = conn.read_cmd().unwrap();
        conn.answer(&req, 0);
        // counting waker: answer only once told to
        let req = conn.read_cmd().unwrap();
        go_rx.recv().unwrap();
        conn.answer(&req, 0);
        // wait_timeout: answer only once told to
        let req = conn.read_cmd().unwrap();
        go_rx.recv().unwrap();
        conn.answer(&req, 0);
        conn
    });

    let (c, h) = pair();
    client.invoke_async(&addr, request(10, "awaited"), LONG, Completion::Handle(c));
    let resp = futures_lite::future::block_on(h).unwrap();
    assert_eq!(resp.body, b"awaited");

    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let (c, mut h) = pair();
    client.invoke_async(&addr, request(10, "polled"), LONG, Completion::Handle(c));
    assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    go.send(()).unwrap();
    assert!(wait_until(STUCK, || counter.0.load(Ordering::SeqCst) >= 1));
    match Pin::new(&mut h).poll(&mut cx) {
        Poll::Ready(Ok(resp)) => assert_eq!(resp.body, b"polled"),
        other => panic!("expected Ready(Ok), got {other:?}"),
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "exactly one wake");

    let (c, mut h) = pair();
    client.invoke_async(&addr, request(10, "waited"), LONG, Completion::Handle(c));
    assert!(h.wait_timeout(Duration::from_millis(50)).is_none());
    assert!(!h.is_done());
    go.send(()).unwrap();
    let resp = h.wait_timeout(STUCK).unwrap().unwrap();
    assert_eq!(resp.body, b"waited");
    let _conn = server.join().unwrap();
}

#[test]
fn connect_refused_fails_promptly_with_the_address() {
    let addr = {
        let peer = Peer::bind();
        peer.addr()
    };
    let client = client();
    // Requests queued behind the connect all fail with it.
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let (c, h) = pair();
            client.invoke_async(
                &addr,
                request(10, "q"),
                Duration::from_secs(60),
                Completion::Handle(c),
            );
            h
        })
        .collect();
    let err = client
        .invoke_sync(&addr, request(10, "x"), Duration::from_secs(60))
        .unwrap_err();
    for mut h in queued {
        let e = h.wait_timeout(STUCK).unwrap().unwrap_err();
        assert_eq!(e.broker_addr(), Some(addr.as_str()), "{e}");
    }
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert_eq!(err.broker_addr(), Some(addr.as_str()));
    assert!(matches!(
        client.connection_state(&addr),
        Some(ConnectionState::Closed { .. })
    ));
    // Callbacks see the same.
    let (tx, rx) = mpsc::channel();
    client.invoke_async(
        &addr,
        request(10, "y"),
        Duration::from_secs(60),
        Completion::Callback(Box::new(move |r| {
            tx.send((r.unwrap_err().kind(), is_callback_thread()))
                .unwrap()
        })),
    );
    assert_eq!(
        rx.recv_timeout(STUCK).unwrap(),
        (ErrorKind::Connection, true)
    );
}

#[test]
fn unresolvable_address_fails_at_once() {
    let client = client();
    let err = client
        .invoke_sync("no-such-host.invalid:10911", request(10, "x"), LONG)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let err = client
        .invoke_oneway("not an address", request(10, "x"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}

#[test]
fn close_connection_fails_pending_and_reconnects() {
    let peer = Peer::bind();
    let addr = peer.addr();
    let client = client();
    let (c, h) = pair();
    client.invoke_async(&addr, request(10, "x"), LONG, Completion::Handle(c));
    let mut conn = peer.accept();
    conn.read_cmd().unwrap();
    client.close_connection(&addr);
    let err = h.wait().unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed { .. }), "{err}");
    assert!(conn.sees_eof(STUCK));
    let server = thread::spawn(move || {
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        conn.answer(&req, 0);
    });
    client.invoke_sync(&addr, request(10, "y"), LONG).unwrap();
    server.join().unwrap();
}

#[test]
fn several_loops_and_addresses() {
    let client = RemotingClient::new(RemotingConfig {
        io_threads: 3,
        ..Default::default()
    })
    .unwrap();
    let addrs: Vec<String> = (0..6).map(|_| spawn_echo()).collect();
    let handles: Vec<_> = (0..600)
        .map(|i| {
            let (c, h) = pair();
            let addr = &addrs[i % addrs.len()];
            client.invoke_async(
                addr,
                request(10, &i.to_string()),
                LONG,
                Completion::Handle(c),
            );
            h
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap().body, i.to_string().as_bytes());
    }
    let states = client.connection_states();
    assert_eq!(states.len(), addrs.len());
    assert!(states.iter().all(|(_, s)| s.is_connected()));
}

#[test]
fn sync_callers_on_many_threads() {
    let addr = spawn_echo();
    let client = client();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            let addr = addr.clone();
            thread::spawn(move || {
                for i in 0..200 {
                    let body = format!("{t}-{i}");
                    let resp = client.invoke_sync(&addr, request(10, &body), LONG).unwrap();
                    assert_eq!(resp.body, body.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn invalid_config_is_rejected() {
    for config in [
        RemotingConfig {
            io_threads: 0,
            ..Default::default()
        },
        RemotingConfig {
            callback_threads: 0,
            ..Default::default()
        },
    ] {
        let err = RemotingClient::new(config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}

#[test]
fn client_types_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<RemotingClient>();
    check::<rocketmq_mio::remoting::Handle<RemotingCommand>>();
    fn check_send<T: Send + 'static>() {}
    check_send::<Completion>();
}

#[test]
fn connect_timeout_fails_the_queued_requests() {
    let (_listener, filler, addr) = hanging_listener();
    let connect_timeout = Duration::from_millis(200);
    let client = RemotingClient::new(RemotingConfig {
        connect_timeout,
        ..Default::default()
    })
    .unwrap();
    let start = Instant::now();
    let (c, mut queued) = pair();
    client.invoke_async(&addr, request(10, "q"), LONG, Completion::Handle(c));
    let err = client
        .invoke_sync(&addr, request(10, "x"), LONG)
        .unwrap_err();
    assert!(start.elapsed() >= connect_timeout);
    match &err {
        Error::Io { addr: a, source } => {
            assert_eq!(a, &addr);
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        }
        other => panic!("expected an i/o error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("connect timed out after 200ms"),
        "{err}"
    );
    let err = queued.wait_timeout(STUCK).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(matches!(
        client.connection_state(&addr),
        Some(ConnectionState::Closed { .. })
    ));
    drop(filler);
}
