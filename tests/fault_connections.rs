//! Connections to peers that misbehave: a broker that stops answering (its connection is
//! closed on a request timeout, and what was queued for it never goes out), a connection whose
//! output hits its cap, keepalive on the socket, and a name server route with absurd queue
//! counts. (Re-resolving host names on reconnect is tested in `src/remoting/resolve.rs`, with a
//! resolver the tests control.)
//!
//! Everything that could hang runs under a watchdog: a regression fails in bounded time.

mod common;
mod remoting_peer;

use std::io::Read;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, PROMPTLY};
use remoting_peer::Peer;
use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, Message, Producer};

/// Runs `f` on its own thread; fails the test if it does not finish within `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("watchdog: the test body panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Item 12: a route with absurd queue counts is refused, and the last good route is kept.
// ---------------------------------------------------------------------------------------------

#[test]
fn route_with_2_pow_31_write_queues_is_refused_and_the_last_good_one_kept() {
    watchdog(Duration::from_secs(60), || {
        let broker = MockBroker::builder().topic("Huge", 4).start().unwrap();
        let producer = Producer::builder("GID_HUGE_ROUTE")
            .name_server(broker.namesrv_addr())
            .route_refresh_interval(Duration::from_millis(20))
            .start()
            .unwrap();
        let r = producer.send(Message::new("Huge", "before")).unwrap();
        assert!(r.queue.queue_id() < 4);

        // The name server now says 2^31-1 write queues (a client that trusts it aborts).
        broker.set_read_write_queues("Huge", 4, i32::MAX);
        let seen = broker.counters().route_requests();
        assert!(
            wait_until(PROMPTLY, || broker.counters().route_requests() >= seen + 3),
            "the route is refreshed"
        );
        // The last good route stays: sends go on to the 4 queues.
        let queues = producer.publish_queues("Huge").unwrap();
        assert_eq!(queues.len(), 4);
        for _ in 0..8 {
            let r = producer.send(Message::new("Huge", "after")).unwrap();
            assert!(r.queue.queue_id() < 4);
        }

        // A producer with no good route to fall back on gets a clear error.
        let fresh = Producer::builder("GID_HUGE_ROUTE_2")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(5))
            .start()
            .unwrap();
        let err = fresh.send(Message::new("Huge", "x")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NoRoute { .. }), "{err:?}");
        assert!(text.contains("writeQueueNums"), "{text}");
        assert!(text.contains("2147483647"), "{text}");
        assert!(text.contains("65536"), "{text}");
        fresh.shutdown(Duration::from_secs(5)).unwrap();
        producer.shutdown(Duration::from_secs(5)).unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Item 9: a broker that stops answering loses its connection on a request timeout; output
// queued for a connection is capped; keepalive is on.
// ---------------------------------------------------------------------------------------------

/// Whether `needle` occurs in what `conn` reads until EOF or an error; and whether the stream
/// ended (EOF or reset) rather than timing out after `quiet` without data.
fn read_to_end_looking_for(
    conn: &mut std::net::TcpStream,
    needle: &[u8],
    quiet: Duration,
) -> (bool, bool) {
    conn.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut found = false;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return (found, true),
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(needle.len()).any(|w| w == needle) {
                    found = true;
                }
                let keep = tail.len().saturating_sub(needle.len());
                tail.drain(..keep);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (found, false)
            }
            // A reset is the end too.
            Err(_) => return (found, true),
        }
    }
}

fn request(code: i32, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(code).with_body(body)
}

#[test]
fn request_timeout_closes_the_connection_and_what_was_queued_never_goes_out() {
    watchdog(Duration::from_secs(120), || {
        let peer = Peer::bind();
        let addr = peer.addr();
        let client = RemotingClient::new(RemotingConfig::default()).unwrap();
        assert!(
            client.config().close_on_request_timeout,
            "the default, as in Java"
        );
        // A request that will time out, then far more than the kernel buffers hold (the peer
        // never reads: a paused broker), then a marker frame that stays in our output queue.
        let (c, mut timed_out) = pair();
        client.invoke_async(
            &addr,
            request(10, b"first".to_vec()),
            Duration::from_millis(300),
            Completion::Handle(c),
        );
        let mut conn = peer.accept();
        for _ in 0..48 {
            client
                .invoke_oneway(&addr, request(11, vec![b'x'; 1024 * 1024]))
                .unwrap();
        }
        client
            .invoke_oneway(
                &addr,
                request(12, b"MARKER-QUEUED-BEFORE-THE-TIMEOUT".to_vec()),
            )
            .unwrap();
        let err = timed_out
            .wait_timeout(PROMPTLY)
            .expect("the request ends")
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            wait_until(PROMPTLY, || !client
                .connection_state(&addr)
                .is_some_and(|s| s.is_connected())),
            "the connection is closed after the timeout: {:?}",
            client.connection_state(&addr)
        );
        // The broker wakes up and reads: the stream ends, and the marker never comes.
        let (found, ended) = read_to_end_looking_for(
            &mut conn.stream,
            b"MARKER-QUEUED-BEFORE",
            Duration::from_secs(5),
        );
        assert!(
            !found,
            "a frame queued before the timeout reached the peer after it woke"
        );
        assert!(ended, "the peer sees the connection end");
        // The next request connects again.
        let (c, mut next) = pair();
        client.invoke_async(
            &addr,
            request(13, b"again".to_vec()),
            Duration::from_secs(20),
            Completion::Handle(c),
        );
        let mut conn2 = peer.accept();
        let req = conn2.read_cmd().unwrap();
        assert_eq!(req.code, 13);
        conn2.answer(&req, 0);
        assert_eq!(
            next.wait_timeout(PROMPTLY).expect("answered").unwrap().body,
            b"again"
        );
        client.shutdown();
    });
}

#[test]
fn with_close_on_request_timeout_off_the_connection_stays() {
    watchdog(Duration::from_secs(60), || {
        let peer = Peer::bind();
        let addr = peer.addr();
        let client = RemotingClient::new(RemotingConfig {
            close_on_request_timeout: false,
            ..Default::default()
        })
        .unwrap();
        let (c, mut h) = pair();
        client.invoke_async(
            &addr,
            request(10, b"late".to_vec()),
            Duration::from_millis(100),
            Completion::Handle(c),
        );
        let mut conn = peer.accept();
        let req = conn.read_cmd().unwrap();
        assert!(h
            .wait_timeout(PROMPTLY)
            .expect("ends")
            .unwrap_err()
            .is_timeout());
        // Still connected: the next request goes out on the same connection.
        let (c, mut h2) = pair();
        client.invoke_async(
            &addr,
            request(11, b"next".to_vec()),
            Duration::from_secs(20),
            Completion::Handle(c),
        );
        let req2 = conn.read_cmd().unwrap();
        assert_eq!(req2.code, 11);
        conn.answer(&req, 0); // late: dropped
        conn.answer(&req2, 0);
        assert_eq!(
            h2.wait_timeout(PROMPTLY).expect("answered").unwrap().body,
            b"next"
        );
        client.shutdown();
    });
}

#[test]
fn output_over_the_cap_fails_a_send_at_once_with_a_retriable_error_naming_the_broker() {
    watchdog(Duration::from_secs(60), || {
        let peer = Peer::bind();
        let addr = peer.addr();
        let cap = 1024 * 1024;
        let client = RemotingClient::new(RemotingConfig {
            max_connection_output_bytes: cap,
            ..Default::default()
        })
        .unwrap();
        // Requests that would wait a minute for an answer: only the cap can end one sooner.
        let long = Duration::from_secs(60);
        let (c, mut first) = pair();
        client.invoke_async(
            &addr,
            request(10, b"first".to_vec()),
            long,
            Completion::Handle(c),
        );
        let _conn = peer.accept(); // never reads
        let mut handles = Vec::new();
        for _ in 0..200 {
            let (c, h) = pair();
            client.invoke_async(
                &addr,
                request(11, vec![b'y'; 256 * 1024]),
                long,
                Completion::Handle(c),
            );
            handles.push(h);
        }
        let deadline = Instant::now() + PROMPTLY;
        let mut refused = None;
        while refused.is_none() && Instant::now() < deadline {
            for h in &mut handles {
                if let Some(r) = h.try_take() {
                    refused = Some(r.expect_err("nobody answers"));
                    break;
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        let err = refused.expect("a send over the cap fails long before its timeout");
        assert!(err.is_retriable(), "{err:?}");
        assert_eq!(err.broker_addr(), Some(addr.as_str()), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
        assert!(err.to_string().contains("output"), "{err}");
        // The connection itself stays, and the first request is still pending.
        assert!(client
            .connection_state(&addr)
            .is_some_and(|s| s.is_connected()));
        assert!(first.try_take().is_none());
        client.shutdown();
    });
}

/// The `/proc/net/tcp` line of the IPv4 socket from local port `local` to remote port
/// `remote`: (state, timer kind, timer expiry in clock ticks).
#[cfg(target_os = "linux")]
fn proc_tcp_timer(local: u16, remote: u16) -> Option<(u8, u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |s: &str| u16::from_str_radix(s.rsplit(':').next()?, 16).ok();
        if f.len() > 5 && port(f[1]) == Some(local) && port(f[2]) == Some(remote) {
            let state = u8::from_str_radix(f[3], 16).ok()?;
            let (kind, when) = f[5].split_once(':')?;
            return Some((
                state,
                u8::from_str_radix(kind, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ));
        }
    }
    None
}

/// TCP keepalive is on for the client's sockets: the kernel arms the keepalive timer (timer
/// kind 2 in `/proc/net/tcp`) with the configured idle time, and does not without it.
#[cfg(target_os = "linux")]
#[test]
fn keepalive_is_set_on_the_socket() {
    watchdog(Duration::from_secs(60), || {
        for keepalive in [Some(Duration::from_secs(45)), None] {
            let peer = Peer::bind();
            let addr = peer.addr();
            let client = RemotingClient::new(RemotingConfig {
                tcp_keepalive: keepalive,
                ..Default::default()
            })
            .unwrap();
            let (c, mut h) = pair();
            client.invoke_async(
                &addr,
                request(10, b"hi".to_vec()),
                Duration::from_secs(20),
                Completion::Handle(c),
            );
            let mut conn = peer.accept();
            let req = conn.read_cmd().unwrap();
            conn.answer(&req, 0);
            h.wait_timeout(PROMPTLY).expect("answered").unwrap();
            let client_port = conn.stream.peer_addr().unwrap().port();
            let server_port = conn.stream.local_addr().unwrap().port();
            let (state, kind, when) =
                proc_tcp_timer(client_port, server_port).expect("the client's socket is listed");
            assert_eq!(state, 1, "established");
            match keepalive {
                Some(idle) => {
                    assert_eq!(kind, 2, "the keepalive timer is armed");
                    // Clock ticks (USER_HZ, 100 on Linux) left until the first probe.
                    assert!(when > 0 && when <= idle.as_secs() * 100, "{when}");
                }
                None => assert_eq!(kind, 0, "no timer without keepalive"),
            }
            client.shutdown();
        }
    });
}
