//! The I/O thread's hand-offs: the loop skips the waker while it is awake and looks at its
//! channel once more before it sleeps, so no request may be left waiting in the channel while
//! the loop sleeps (a lost wake-up would hang a synchronous caller: nothing else wakes the
//! loop, and a request still in the channel has no deadline the loop knows of); a caller that
//! spins on its result (`busy_poll`) gets the same results, errors and timeouts as one that
//! parks. Everything that could hang runs under a watchdog.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{ErrorKind, Message, Producer, SendStatus};

/// Runs `f` on a thread and fails if it does not finish within `limit` (a hang fails in
/// bounded time instead of hanging the suite).
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("did not finish within {limit:?}: a request was lost or hangs"),
    }
}

/// A peer that answers every request with SUCCESS and its body, in one write, and never
/// closes a connection or times a read out by itself: nothing but the client's own loop
/// moves a request along (a lost wake-up is then a hang, not a delay). Its threads run until
/// the client closes the connection.
fn spawn_echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream.set_nodelay(true).unwrap();
            thread::spawn(move || {
                let mut frame = Vec::new();
                let mut out = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if stream.read_exact(&mut len).is_err() {
                        return;
                    }
                    frame.resize(u32::from_be_bytes(len) as usize, 0);
                    if stream.read_exact(&mut frame).is_err() {
                        return;
                    }
                    let req = RemotingCommand::decode_unprefixed(&frame).unwrap();
                    if req.is_oneway() {
                        continue;
                    }
                    let resp = RemotingCommand::response(0, req.opaque).with_body(req.body.clone());
                    out.clear();
                    resp.encode(&mut out).unwrap();
                    if stream.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Busy-waits about `nanos` ns (a pause that lands the next send at another point of the
/// loop's turn; not a sleep, nothing is timed by it).
fn pause(nanos: u64) {
    let until = Instant::now() + Duration::from_nanos(nanos);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn ping_pong(busy_poll: Duration, rounds: usize) {
    let addr = spawn_echo();
    let client = RemotingClient::new(RemotingConfig {
        busy_poll,
        ..RemotingConfig::default()
    })
    .unwrap();
    for i in 0..rounds {
        let body = i.to_string();
        let response = client
            .invoke_sync(
                &addr,
                RemotingCommand::request(10).with_body(body.as_bytes().to_vec()),
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert_eq!(response.body, body.as_bytes());
        // Requests land right after the loop completed the last one (while it finishes its
        // turn), as it goes to sleep, and once it sleeps: pauses swept over 0-20 µs.
        pause((i as u64 * 131) % 20_000);
    }
    client.shutdown();
}

/// One caller, one request at a time: each request is queued while the loop finishes the
/// turn that completed the previous one, and the loop believes it is awake. Every request
/// still completes (a lost wake-up hangs here: the watchdog fails it).
#[test]
fn sync_ping_pong_never_loses_a_wakeup() {
    watchdog(Duration::from_secs(120), || {
        ping_pong(Duration::ZERO, 10_000)
    });
}

/// The same with a spinning caller, whose next request comes microseconds after the
/// previous answer: most land while the loop is still in its turn or going to sleep.
#[test]
fn sync_ping_pong_with_busy_poll_never_loses_a_wakeup() {
    watchdog(Duration::from_secs(120), || {
        ping_pong(Duration::from_micros(200), 10_000)
    });
}

/// Several threads mixing sync requests, handles and callbacks on one loop: every request
/// ends exactly once, with its own answer.
#[test]
fn mixed_senders_on_one_loop_all_complete_once() {
    watchdog(Duration::from_secs(120), || {
        let addr = spawn_echo();
        let client = RemotingClient::new(RemotingConfig {
            busy_poll: Duration::from_micros(50),
            ..RemotingConfig::default()
        })
        .unwrap();
        let callbacks = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                let addr = addr.clone();
                let callbacks = callbacks.clone();
                thread::spawn(move || {
                    let timeout = Duration::from_secs(60);
                    for i in 0..1_500 {
                        let body = format!("{t}-{i}");
                        let req = RemotingCommand::request(10).with_body(body.clone());
                        match i % 3 {
                            0 => {
                                let r = client.invoke_sync(&addr, req, timeout).unwrap();
                                assert_eq!(r.body, body.as_bytes());
                            }
                            1 => {
                                let (c, h) = pair();
                                client.invoke_async(&addr, req, timeout, Completion::Handle(c));
                                assert_eq!(h.wait().unwrap().body, body.as_bytes());
                            }
                            _ => {
                                let callbacks = callbacks.clone();
                                client.invoke_async(
                                    &addr,
                                    req,
                                    timeout,
                                    Completion::Callback(Box::new(move |r| {
                                        assert_eq!(r.unwrap().body, body.as_bytes());
                                        callbacks.fetch_add(1, Ordering::SeqCst);
                                    })),
                                );
                            }
                        }
                        pause((i as u64 * 977) % 7_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while callbacks.load(Ordering::SeqCst) < 4 * 500 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(callbacks.load(Ordering::SeqCst), 4 * 500);
        client.shutdown();
    });
}

/// `busy_poll` off, short and long: the same results, and the same timeout for a broker that
/// stops answering (the spin never ends a request early or late, and never hangs it).
#[test]
fn busy_poll_on_and_off_give_the_same_results_and_timeouts() {
    watchdog(Duration::from_secs(120), || {
        let broker = MockBroker::start().unwrap();
        let mut stored = 0;
        for spin in [
            Duration::ZERO,
            Duration::from_micros(100),
            Duration::from_millis(10),
        ] {
            let producer = Producer::builder("GID_BUSY_POLL")
                .name_server(broker.addr().to_string())
                .busy_poll(spin)
                .send_timeout(Duration::from_millis(700))
                .retries(0)
                .start()
                .unwrap();
            for i in 0..200 {
                let r = producer
                    .send(Message::new("busy", format!("m{i}")))
                    .unwrap_or_else(|e| panic!("spin {spin:?}, send {i}: {e}"));
                assert_eq!(r.status, SendStatus::SendOk);
            }
            stored += 200;
            assert_eq!(broker.messages("busy").len(), stored, "spin {spin:?}");
            // A broker that stops answering: a timeout, after the send timeout, not before.
            broker.black_hole(true);
            let started = Instant::now();
            let err = producer.send(Message::new("busy", "lost")).unwrap_err();
            let took = started.elapsed();
            broker.black_hole(false);
            assert_eq!(err.kind(), ErrorKind::Timeout, "spin {spin:?}: {err}");
            assert!(
                took >= Duration::from_millis(650),
                "spin {spin:?}: timed out after {took:?}"
            );
            producer.shutdown(Duration::from_secs(5)).unwrap();
        }
    });
}
