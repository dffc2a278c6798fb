//! Request-reply on the MockBroker (issue 14): sync, async and callback requests answered by a
//! responder thread that reads the request back from the mock and calls `reply`; timeouts at
//! the request's deadline; late and unknown replies dropped and counted; shutdown ends pending
//! requests; compressed replies; a callback that blocks on another request still gets its
//! reply; backpressure bounds pending requests; heartbeats before a request after a reconnect.
//!
//! Everything that could hang runs under a watchdog (a thread and `recv_timeout`), so a
//! regression fails in bounded time instead of hanging CI.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocketmq_mio::message::property;
use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Error, Message, MessageExt, MessageQueue, Producer, Result};

use common::{wait_until, PROMPTLY};

/// Runs `f` on its own thread; panics if it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("a watchdog thread");
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?} (hung)"))
}

fn requester(broker: &MockBroker, group: &str) -> Producer {
    Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .start()
        .expect("requester")
}

/// A responder thread: answers the first `n` requests of `topic` (in arrival order) with
/// `answer(request)`, through a producer of its own. Returns the replies' send results.
fn responder(
    broker: &Arc<MockBroker>,
    topic: &str,
    n: usize,
    answer: impl Fn(&MessageExt) -> Vec<u8> + Send + 'static,
) -> JoinHandle<Vec<Result<rocketmq_mio::SendResult>>> {
    let broker = broker.clone();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let server = Producer::builder("GID_RESPONDER")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(10))
            .start()
            .expect("responder");
        let mut results = Vec::new();
        for i in 0..n {
            let requests = broker.wait_messages(&topic, i + 1, PROMPTLY);
            let Some(request) = requests.get(i) else {
                break;
            };
            results.push(server.reply(request, answer(request)));
        }
        server
            .shutdown(Duration::from_secs(5))
            .expect("responder shutdown");
        results
    })
}

fn echo(request: &MessageExt) -> Vec<u8> {
    let mut body = b"re:".to_vec();
    body.extend_from_slice(&request.body);
    body
}

#[test]
fn sync_request_gets_the_reply_and_the_push_is_answered() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_SYNC");
    let server = responder(&broker, "RpcSync", 1, echo);
    let client_id = p.client_id().to_string();
    let reply = within(PROMPTLY, "sync request", move || {
        let r = p.request(Message::new("RpcSync", "ping"), Duration::from_secs(15));
        (p, r)
    });
    let (p, reply) = reply;
    let reply = reply.expect("the reply");
    assert_eq!(reply.body, b"re:ping");
    assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
    assert_eq!(reply.property(property::MESSAGE_TYPE), Some("reply"));
    assert_eq!(
        reply.property(property::REPLY_TO_CLIENT),
        Some(client_id.as_str())
    );
    assert!(server.join().unwrap().iter().all(|r| r.is_ok()));

    // The request carried the properties Java's requester sets, and the reply was built from
    // them.
    let request = &broker.messages("RpcSync")[0];
    let id = request
        .property(property::CORRELATION_ID)
        .expect("a correlation id");
    assert_eq!(reply.property(property::CORRELATION_ID), Some(id));
    assert_eq!(
        request.property(property::REPLY_TO_CLIENT),
        Some(client_id.as_str())
    );
    assert_eq!(request.property(property::MESSAGE_TTL), Some("15000"));
    // The reply went with SEND_REPLY_MESSAGE_V2 and is stored in the reply topic.
    assert_eq!(
        broker
            .counters()
            .received(RequestCode::SEND_REPLY_MESSAGE_V2),
        1
    );
    assert_eq!(broker.message_count("DefaultCluster_REPLY_TOPIC"), 1);
    // The push was answered SUCCESS, with its opaque echoed (the mock matches by opaque).
    assert!(wait_until(PROMPTLY, || broker.reply_pushes()[0]
        .answer
        .is_some()));
    let push = &broker.reply_pushes()[0];
    assert_eq!(push.answer, Some(ResponseCode::SUCCESS));
    assert_eq!(push.correlation_id.as_deref(), Some(id));
    assert_eq!(push.client_id, client_id);

    let stats = p.stats();
    assert_eq!(stats.requests.requests, 1);
    assert_eq!(stats.requests.replies_matched, 1);
    assert_eq!(stats.requests.pending, 0);
    assert_eq!(stats.to_json()["requests"]["replies_matched"], 1);
    // The request's send counts as a send.
    assert_eq!(stats.topics["RpcSync"].succeeded, 1);
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn async_requests_resolve_by_wait_and_by_await() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_ASYNC");
    let server = responder(&broker, "RpcAsync", 2, echo);
    let (a, b) = within(PROMPTLY, "async requests", move || {
        let h1 = p.request_async(Message::new("RpcAsync", "one"), Duration::from_secs(15));
        let a = h1.wait();
        let h2 = p.request_async(Message::new("RpcAsync", "two"), Duration::from_secs(15));
        let b = futures_lite::future::block_on(h2);
        p.shutdown(Duration::from_secs(5)).unwrap();
        (a, b)
    });
    assert_eq!(a.unwrap().body, b"re:one");
    assert_eq!(b.unwrap().body, b"re:two");
    assert_eq!(server.join().unwrap().len(), 2);
}

#[test]
fn callback_request_runs_its_callback_on_the_callback_pool() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_CB");
    let server = responder(&broker, "RpcCallback", 1, echo);
    let (tx, rx) = mpsc::channel();
    p.request_with_callback(
        Message::new("RpcCallback", "cb"),
        Duration::from_secs(15),
        move |result| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            let _ = tx.send((result.map(|m| m.body), thread));
        },
    );
    let (body, thread) = rx.recv_timeout(PROMPTLY).expect("the callback ran");
    assert_eq!(body.unwrap(), b"re:cb");
    assert!(thread.starts_with("rocketmq-callback"), "ran on {thread}");
    server.join().unwrap();
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn requests_to_a_queue_and_with_a_selector_go_there() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_QUEUE");
    let server = responder(&broker, "RpcQueue", 4, echo);
    let queues = p.publish_queues("RpcQueue").unwrap();
    let q: MessageQueue = queues[2].clone();
    let p2 = p.clone();
    let results = within(PROMPTLY, "queue requests", move || {
        let t = Duration::from_secs(15);
        vec![
            p2.request_to_queue(Message::new("RpcQueue", "q"), &q, t),
            p2.request_to_queue_async(Message::new("RpcQueue", "qa"), &q, t)
                .wait(),
            p2.request_with_selector(Message::new("RpcQueue", "s"), &MessageHashSelector, "k", t),
            p2.request_with_selector_async(
                Message::new("RpcQueue", "sa"),
                Arc::new(MessageHashSelector),
                "k",
                t,
            )
            .wait(),
        ]
    });
    let bodies: Vec<Vec<u8>> = results.into_iter().map(|r| r.unwrap().body).collect();
    assert_eq!(bodies, [&b"re:q"[..], b"re:qa", b"re:s", b"re:sa"]);
    let stored = broker.messages("RpcQueue");
    assert_eq!(stored[0].queue_id, 2);
    assert_eq!(stored[1].queue_id, 2);
    assert_eq!(stored[2].queue_id, stored[3].queue_id);
    server.join().unwrap();
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_request_without_a_reply_times_out_at_its_deadline() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_TIMEOUT");
    let timeout = Duration::from_millis(300);
    let p2 = p.clone();
    let (sync, elapsed, asynchronous, callback) = within(PROMPTLY, "timeouts", move || {
        let started = Instant::now();
        let sync = p2.request(Message::new("RpcTimeout", "nobody"), timeout);
        let elapsed = started.elapsed();
        let asynchronous = p2
            .request_async(Message::new("RpcTimeout", "nobody"), timeout)
            .wait();
        let (tx, rx) = mpsc::channel();
        p2.request_with_callback(Message::new("RpcTimeout", "nobody"), timeout, move |r| {
            let _ = tx.send(r);
        });
        let callback = rx.recv_timeout(PROMPTLY).expect("the callback ran");
        (sync, elapsed, asynchronous, callback)
    });
    for r in [&sync, &asynchronous, &callback] {
        match r {
            Err(Error::Timeout { after, .. }) => assert_eq!(*after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert!(elapsed >= timeout, "ended before its deadline: {elapsed:?}");
    // Each request was sent (on a loaded machine a send may end after its request's deadline,
    // so this waits for them).
    assert!(wait_until(PROMPTLY, || broker.message_count("RpcTimeout") == 3));
    let stats = p.stats().requests;
    assert_eq!((stats.requests, stats.timed_out, stats.pending), (3, 3, 0));
    // Nothing is held: the permits went with the requests (the callback's once it returned).
    assert!(wait_until(PROMPTLY, || p.in_flight() == (0, 0)));
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_request_whose_send_is_never_answered_times_out_at_its_deadline() {
    let broker = Arc::new(MockBroker::start().unwrap());
    // A send timeout past the watchdog: only the request's own deadline can end it in time.
    let p = Producer::builder("GID_REQ_BLACKHOLE")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(120))
        .start()
        .unwrap();
    // Route and heartbeat first, so only the send meets the silent broker.
    p.send(Message::new("RpcSilent", "warm")).unwrap();
    broker.delay_next(RequestCode::SEND_MESSAGE_V2, Duration::from_secs(120), 2);
    let timeout = Duration::from_millis(500);
    let p2 = p.clone();
    let (sync, asynchronous) = within(PROMPTLY, "silent broker", move || {
        let sync = p2.request(Message::new("RpcSilent", "x"), timeout);
        let asynchronous = p2
            .request_async(Message::new("RpcSilent", "y"), timeout)
            .wait();
        (sync, asynchronous)
    });
    // Timeouts of the request (the send's own timeout inside, when it ended first).
    for r in [sync, asynchronous] {
        match r {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert_eq!(p.stats().requests.timed_out, 2);
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_late_reply_is_dropped_and_counted() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_LATE");
    let p2 = p.clone();
    let r = within(PROMPTLY, "request", move || {
        p2.request(Message::new("RpcLate", "slow"), Duration::from_millis(200))
    });
    assert!(r.unwrap_err().is_timeout());
    // The responder answers after the deadline.
    let server = responder(&broker, "RpcLate", 1, echo);
    let results = server.join().unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert!(wait_until(PROMPTLY, || p.stats().requests.replies_late == 1));
    let stats = p.stats().requests;
    assert_eq!((stats.replies_matched, stats.replies_unknown), (0, 0));
    // Still answered SUCCESS: the broker has nothing to retry.
    assert!(wait_until(PROMPTLY, || broker.reply_pushes()[0]
        .answer
        .is_some()));
    assert_eq!(broker.reply_pushes()[0].answer, Some(ResponseCode::SUCCESS));
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_reply_with_an_unknown_correlation_id_is_dropped_and_counted() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_UNKNOWN");
    // One real exchange, so the responder has a request to forge from.
    let server = responder(&broker, "RpcUnknown", 1, echo);
    let p2 = p.clone();
    within(PROMPTLY, "request", move || {
        p2.request(Message::new("RpcUnknown", "a"), Duration::from_secs(15))
    })
    .unwrap();
    server.join().unwrap();
    let mut forged = broker.messages("RpcUnknown")[0].clone();
    for (k, v) in forged.properties.iter_mut() {
        if k == property::CORRELATION_ID {
            *v = "no-such-request".into();
        }
    }
    let other = requester(&broker, "GID_REQ_UNKNOWN_RESPONDER");
    other
        .reply(&forged, "who?")
        .expect("the broker takes the reply");
    assert!(wait_until(PROMPTLY, || p.stats().requests.replies_unknown == 1));
    let stats = p.stats().requests;
    assert_eq!((stats.replies_matched, stats.replies_late), (1, 0));
    within(PROMPTLY, "shutdown", move || {
        other.shutdown(Duration::from_secs(5)).unwrap();
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn reply_to_a_message_that_is_no_request_is_refused_before_sending() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_NOT_A_REQUEST");
    p.send(Message::new("Plain", "not a request")).unwrap();
    let plain = &broker.messages("Plain")[0];
    match p.reply(plain, "x") {
        Err(Error::InvalidMessage(m)) => assert!(m.contains("CORRELATION_ID"), "{m}"),
        other => panic!("expected InvalidMessage, got {other:?}"),
    }
    assert_eq!(
        broker
            .counters()
            .received(RequestCode::SEND_REPLY_MESSAGE_V2),
        0
    );
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn shutdown_ends_pending_requests() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_SHUTDOWN");
    let handle = p.request_async(Message::new("RpcShutdown", "a"), Duration::from_secs(120));
    let (tx, rx) = mpsc::channel();
    p.request_with_callback(
        Message::new("RpcShutdown", "b"),
        Duration::from_secs(120),
        move |r| {
            let _ = tx.send(r);
        },
    );
    assert!(wait_until(PROMPTLY, || broker.message_count("RpcShutdown") == 2));
    let p2 = p.clone();
    within(PROMPTLY, "shutdown", move || {
        p2.shutdown(Duration::from_millis(300))
    })
    .unwrap();
    let r = within(PROMPTLY, "handle", move || handle.wait());
    assert!(r.unwrap_err().is_shutdown());
    let r = rx.recv_timeout(PROMPTLY).expect("the callback ran");
    assert!(r.unwrap_err().is_shutdown());
    // A request after shutdown fails at once.
    assert!(p
        .request(Message::new("RpcShutdown", "c"), Duration::from_secs(1))
        .unwrap_err()
        .is_shutdown());
    assert_eq!(p.stats().requests.pending, 0);
}

#[test]
fn a_compressed_reply_body_is_inflated() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_ZIP");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
    let expected = big.clone();
    let server = responder(&broker, "RpcZip", 1, move |_| big.clone());
    let p2 = p.clone();
    let reply = within(PROMPTLY, "request", move || {
        p2.request(Message::new("RpcZip", "zip me"), Duration::from_secs(15))
    })
    .unwrap();
    assert_eq!(reply.body, expected);
    server.join().unwrap();
    // It really travelled compressed.
    let stored = &broker.messages("DefaultCluster_REPLY_TOPIC")[0];
    assert_eq!(stored.sys_flag & 1, 1);
    assert!(stored.body.len() < expected.len());
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_callback_that_blocks_on_another_request_gets_its_reply() {
    let broker = Arc::new(MockBroker::start().unwrap());
    // One callback thread: if replies needed it, the inner request could never complete.
    let p = Producer::builder("GID_REQ_NESTED")
        .name_server(broker.namesrv_addr())
        .callback_threads(1)
        .send_timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    let server = responder(&broker, "RpcNested", 2, echo);
    let (tx, rx) = mpsc::channel();
    let inner = p.clone();
    p.request_with_callback(
        Message::new("RpcNested", "outer"),
        Duration::from_secs(15),
        move |outer| {
            let nested = inner.request(Message::new("RpcNested", "inner"), Duration::from_secs(15));
            let _ = tx.send((outer.map(|m| m.body), nested.map(|m| m.body)));
        },
    );
    let (outer, nested) = rx.recv_timeout(PROMPTLY).expect("the callback finished");
    assert_eq!(outer.unwrap(), b"re:outer");
    assert_eq!(nested.unwrap(), b"re:inner");
    server.join().unwrap();
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn pending_requests_hold_backpressure_permits() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = Producer::builder("GID_REQ_BP")
        .name_server(broker.namesrv_addr())
        .max_in_flight(1)
        .send_timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    let first = p.request_async(Message::new("RpcBp", "a"), Duration::from_secs(60));
    assert!(wait_until(PROMPTLY, || broker.message_count("RpcBp") == 1));
    // The first request's send has ended; it still holds its permit while it waits.
    assert_eq!(p.in_flight().0, 1);
    let p2 = p.clone();
    let second = within(PROMPTLY, "second request", move || {
        p2.request_async(Message::new("RpcBp", "b"), Duration::from_millis(300))
            .wait()
    });
    assert!(
        matches!(second, Err(Error::Backpressure { .. })),
        "{second:?}"
    );
    // Once the first one is answered, room is back.
    let server = responder(&broker, "RpcBp", 1, echo);
    let first = within(PROMPTLY, "first request", move || first.wait());
    assert_eq!(first.unwrap().body, b"re:a");
    server.join().unwrap();
    assert!(wait_until(PROMPTLY, || p.in_flight() == (0, 0)));
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_request_after_a_reconnect_heartbeats_first() {
    let broker = Arc::new(MockBroker::start().unwrap());
    // No periodic heartbeat during the test once the first one (1 s after start) is done:
    // only the request itself can tell the broker about the new connection.
    let p = Producer::builder("GID_REQ_RECONNECT")
        .name_server(broker.namesrv_addr())
        .heartbeat_interval(Duration::from_secs(3600))
        .send_timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    let server = responder(&broker, "RpcReconnect", 2, echo);
    let p2 = p.clone();
    within(PROMPTLY, "first request", move || {
        p2.request(Message::new("RpcReconnect", "a"), Duration::from_secs(15))
    })
    .unwrap();
    let before = broker.counters().heartbeats();
    assert!(
        wait_until(PROMPTLY, || broker.counters().heartbeats() > before),
        "the service thread's first heartbeat"
    );
    // The broker drops the connection: it forgets which connection our client id is on.
    broker.close_connections();
    assert!(wait_until(PROMPTLY, || p.health().brokers.iter().all(
        |b| !b.connection.as_ref().is_some_and(|c| c.is_connected())
    )));
    let heartbeats = broker.counters().heartbeats();
    let p2 = p.clone();
    let second = within(PROMPTLY, "second request", move || {
        p2.request(Message::new("RpcReconnect", "b"), Duration::from_secs(15))
    });
    assert_eq!(second.unwrap().body, b"re:b");
    assert!(broker.counters().heartbeats() > heartbeats);
    server.join().unwrap();
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn a_zero_timeout_is_refused() {
    let broker = Arc::new(MockBroker::start().unwrap());
    let p = requester(&broker, "GID_REQ_ZERO");
    assert!(matches!(
        p.request(Message::new("RpcZero", "a"), Duration::ZERO),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        p.request_async(Message::new("RpcZero", "a"), Duration::ZERO)
            .wait(),
        Err(Error::Config { .. })
    ));
    assert_eq!(broker.message_count("RpcZero"), 0);
    within(PROMPTLY, "shutdown", move || {
        p.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}
