//! Request-reply on a real RocketMQ cluster (RocketMQ-Rust 1.0.0, `scripts/real-broker.sh`):
//! a requester sends sync, async and callback requests; a responder in this file reads each
//! request from the broker with PULL_MESSAGE and answers it with `Producer::reply`
//! (SEND_REPLY_MESSAGE_V2); the broker pushes the reply back (PUSH_REPLY_MESSAGE_TO_CLIENT).
//! Plus a request nobody answers, which times out at its deadline, and whose late reply is
//! dropped and counted.
//!
//! Runs only when `ROCKETMQ_INTEROP_NAMESRV` is set. Replies go to `DefaultCluster_REPLY_TOPIC`,
//! which the RocketMQ-Rust broker does not pre-create (it creates `<brokerName>_REPLY_TOPIC`):
//! the test cluster relies on `autoCreateTopicEnable = true` (see scripts/real-broker.sh).
//!
//! Everything that could hang runs under a watchdog (a thread and `recv_timeout`).

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::interop::{namesrv, producer, unique_topic, Reader};
use common::{wait_until, PROMPTLY};
use rocketmq_mio::message::property;
use rocketmq_mio::protocol::message_codec::decode_stored_messages;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig};
use rocketmq_mio::{Message, MessageExt, Result, SendResult};

/// How long a test may take at most before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(90);

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

/// PULL_MESSAGE's `sysFlag` bit saying the request carries its subscription (`PullSysFlag`).
const PULL_FLAG_SUBSCRIPTION: i32 = 0x4;
/// PULL_MESSAGE response codes with no messages.
const PULL_NOT_FOUND: i32 = 19;
const PULL_RETRY_IMMEDIATELY: i32 = 20;
const PULL_OFFSET_MOVED: i32 = 21;

/// A minimal pull consumer: PULL_MESSAGE (11) without suspension, with the subscription in
/// the request (`*`, so no consumer registration is needed). Returns the messages and the
/// next offset; no messages when there is nothing new.
fn pull(
    client: &RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> std::result::Result<(Vec<MessageExt>, i64), String> {
    let mut request = RemotingCommand::request(RequestCode::PULL_MESSAGE);
    let f = &mut request.ext_fields;
    f.insert("consumerGroup", group);
    f.insert("topic", topic);
    f.insert_int("queueId", queue_id.into());
    f.insert_int("queueOffset", offset);
    f.insert_int("maxMsgNums", 32);
    f.insert_int("sysFlag", PULL_FLAG_SUBSCRIPTION.into());
    f.insert_int("commitOffset", 0);
    f.insert_int("suspendTimeoutMillis", 0);
    f.insert("subscription", "*");
    f.insert_int("subVersion", 0);
    f.insert("expressionType", "TAG");
    let r = client
        .invoke_sync(addr, request, Duration::from_secs(5))
        .map_err(|e| format!("pull from {addr}: {e}"))?;
    let next = r
        .ext_fields
        .get("nextBeginOffset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(offset);
    match r.code {
        ResponseCode::SUCCESS => {
            let msgs = decode_stored_messages(&r.body).map_err(|e| format!("pull body: {e}"))?;
            Ok((msgs, next))
        }
        PULL_NOT_FOUND | PULL_RETRY_IMMEDIATELY | PULL_OFFSET_MOVED => Ok((Vec::new(), next)),
        code => Err(format!("pull from {addr}: code {code} {}", r.remark_str())),
    }
}

/// A responder: pulls `topic` (`queues` queues on every master) from the start, and answers
/// each request after waiting `delay` with `re:<body>`, until `n` are answered or the
/// watchdog's time is up. Returns the requests and the replies' send results.
fn responder(
    ns: &str,
    topic: &str,
    queues: i32,
    n: usize,
    delay: Duration,
) -> JoinHandle<Vec<(MessageExt, Result<SendResult>)>> {
    let ns = ns.to_string();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let reader = Reader::new(&ns);
        let masters = reader.master_addrs();
        let client = RemotingClient::new(RemotingConfig::default()).expect("remoting client");
        let server = producer(&unique_topic("GID_RR_SERVER"), &ns);
        let group = unique_topic("GID_RR_PULL");
        let mut offsets: HashMap<(String, i32), i64> = HashMap::new();
        let mut answered = Vec::new();
        let deadline = Instant::now() + WATCHDOG;
        while answered.len() < n && Instant::now() < deadline {
            for addr in &masters {
                for q in 0..queues {
                    let at = offsets.entry((addr.clone(), q)).or_insert(0);
                    match pull(&client, addr, &group, &topic, q, *at) {
                        Ok((msgs, next)) => {
                            *at = next;
                            for m in msgs {
                                std::thread::sleep(delay);
                                let mut body = b"re:".to_vec();
                                body.extend_from_slice(&m.body);
                                let r = server.reply(&m, body);
                                answered.push((m, r));
                            }
                        }
                        Err(e) => println!("responder: {e}"),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        client.shutdown();
        server
            .shutdown(Duration::from_secs(5))
            .expect("responder shutdown");
        answered
    })
}

#[test]
fn interop_sync_async_and_callback_requests_get_their_replies() {
    let Some(ns) = namesrv("interop_sync_async_and_callback_requests_get_their_replies") else {
        return;
    };
    let topic = unique_topic("RrReal");
    Reader::new(&ns).create_topic(&topic, 2);
    let server = responder(&ns, &topic, 2, 3, Duration::ZERO);
    let requester = producer(&unique_topic("GID_RR_CLIENT"), &ns);
    let client_id = requester.client_id().to_string();
    let p = requester.clone();
    let t = topic;
    let (sync, asynchronous, callback) = within(WATCHDOG, "requests", move || {
        let timeout = Duration::from_secs(30);
        let sync = p.request(Message::new(t.as_str(), "sync"), timeout);
        let asynchronous = p
            .request_async(Message::new(t.as_str(), "async"), timeout)
            .wait();
        let (tx, rx) = mpsc::channel();
        p.request_with_callback(Message::new(t.as_str(), "callback"), timeout, move |r| {
            let _ = tx.send(r);
        });
        let callback = rx.recv_timeout(WATCHDOG).expect("the callback ran");
        (sync, asynchronous, callback)
    });
    for (r, body) in [
        (&sync, "sync"),
        (&asynchronous, "async"),
        (&callback, "callback"),
    ] {
        let reply = r.as_ref().unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(reply.body, format!("re:{body}").as_bytes());
        assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
        assert_eq!(reply.property(property::MESSAGE_TYPE), Some("reply"));
        assert_eq!(
            reply.property(property::REPLY_TO_CLIENT),
            Some(client_id.as_str())
        );
        assert!(reply.property(property::CORRELATION_ID).is_some());
    }
    let answered = server.join().expect("responder");
    assert_eq!(answered.len(), 3);
    for (request, result) in &answered {
        // The broker stored the request with the properties the requester set, and stamped
        // its cluster, which names the reply topic.
        assert_eq!(request.property(property::CLUSTER), Some("DefaultCluster"));
        assert_eq!(request.property(property::MESSAGE_TTL), Some("30000"));
        assert!(result.is_ok(), "reply: {result:?}");
    }
    let stats = requester.stats().requests;
    assert_eq!((stats.requests, stats.replies_matched), (3, 3));
    assert_eq!(
        (stats.replies_late, stats.replies_unknown, stats.pending),
        (0, 0, 0)
    );
    within(PROMPTLY, "shutdown", move || {
        requester.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}

#[test]
fn interop_a_request_nobody_answers_in_time_times_out_and_its_late_reply_is_counted() {
    let Some(ns) = namesrv("interop_a_request_nobody_answers_in_time_times_out") else {
        return;
    };
    let topic = unique_topic("RrLate");
    Reader::new(&ns).create_topic(&topic, 1);
    let requester = producer(&unique_topic("GID_RR_LATE"), &ns);
    let p = requester.clone();
    let t = topic.clone();
    let timeout = Duration::from_millis(1500);
    let (result, elapsed) = within(WATCHDOG, "request", move || {
        let started = Instant::now();
        let r = p.request(Message::new(t.as_str(), "too slow"), timeout);
        (r, started.elapsed())
    });
    match result {
        Err(rocketmq_mio::Error::Timeout { after, .. }) => assert_eq!(after, timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "ended before its deadline: {elapsed:?}");
    // The request was stored; the responder answers it now, after the deadline.
    let server = responder(&ns, &topic, 1, 1, Duration::ZERO);
    let answered = server.join().expect("responder");
    assert_eq!(answered.len(), 1);
    assert!(answered[0].1.is_ok(), "late reply: {:?}", answered[0].1);
    assert!(
        wait_until(PROMPTLY, || requester.stats().requests.replies_late == 1),
        "{:?}",
        requester.stats().requests
    );
    let stats = requester.stats().requests;
    assert_eq!((stats.timed_out, stats.replies_matched), (1, 0));
    within(PROMPTLY, "shutdown", move || {
        requester.shutdown(Duration::from_secs(5))
    })
    .unwrap();
}
