//! What a send's outcome tells the caller, against MockBroker (issue 12, items 4 to 7):
//! stored messages come back inflated (check-backs, VIEW, QUERY), a selector sees the
//! caller's message in every send form, errors keep what happened (the last attempt's error
//! when the time budget runs out, the cause of `NoRoute`, the OS error code of `Io`), and a
//! SUCCESS response with an unreadable header is not sent again.
//!
//! Every wait has a deadline, and every send runs under a watchdog, so a regression fails in
//! bounded time instead of hanging.

mod common;
mod mock_support;

use std::any::Any;
use std::error::Error as StdError;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::header::{CommandHeader, ViewMessageByIdRequestHeader};
use rocketmq_mio::protocol::message_codec::{self, sys_flag};
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::routing::selector::QueueSelector;
use rocketmq_mio::testing::{MockBroker, MockCluster};
use rocketmq_mio::{
    Error, ErrorKind, ListenerResult, LocalTransactionState, Message, MessageExt, MessageQueue,
    Producer, SendResult, TransactionListener, TransactionProducer,
};

use common::{wait_until, PROMPTLY};
use mock_support::Client;

/// Runs `f` on its own thread and fails the test if it does not return within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(e) => panic!("watchdog: no result within {limit:?} ({e})"),
    }
}

/// A body well over the 4 KiB compression threshold that zlib shrinks a lot.
fn compressible(len: usize) -> Vec<u8> {
    let line = b"order 42 created, 3 items, paid by card; ";
    line.iter().copied().cycle().take(len).collect()
}

fn producer(broker_namesrv: String, timeout: Duration, retries: u32) -> Producer {
    Producer::builder("GID_RESULTS")
        .name_server(broker_namesrv)
        .send_timeout(timeout)
        .retries(retries)
        .async_retries(retries)
        .start()
        .expect("producer starts")
}

// ---- 4: stored messages come back inflated ----------------------------------------------

/// A listener whose local transactions stay Unknown and whose checks record the message.
struct RecordingChecks {
    seen: Arc<Mutex<Vec<MessageExt>>>,
}

impl TransactionListener for RecordingChecks {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::Unknown)
    }

    fn check_local_transaction(&self, msg: &MessageExt, _: &str) -> ListenerResult {
        self.seen.lock().unwrap().push(msg.clone());
        Ok(LocalTransactionState::CommitMessage)
    }
}

/// The scenario: a 10,000-byte half message (compressed on the wire), local state
/// Unknown, then a check-back: the listener gets the 10,000 bytes, not the zlib stream.
#[test]
fn check_back_hands_the_listener_the_inflated_body() {
    let broker = MockBroker::start().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tp = TransactionProducer::builder("GID_TX_INFLATE")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .listener(RecordingChecks { seen: seen.clone() })
        .start()
        .unwrap();
    let body = compressible(10_000);
    let msg = Message::new("TxBig", body.clone()).with_tags("big");
    let tp2 = tp.clone();
    let r = within(PROMPTLY, move || tp2.send_message_in_transaction(msg, &())).unwrap();
    assert_eq!(r.local_state, LocalTransactionState::Unknown);
    // What the broker holds is compressed: the check-back carries zlib bytes.
    let half = broker.half_messages();
    assert_eq!(half.len(), 1);
    assert_ne!(half[0].message.sys_flag & sys_flag::COMPRESSED, 0);
    assert!(half[0].message.body.len() < body.len());

    assert!(
        wait_until(PROMPTLY, || broker.check_transaction(&r.transaction_id) > 0),
        "no connection to check on"
    );
    assert!(
        wait_until(PROMPTLY, || !seen.lock().unwrap().is_empty()),
        "the listener was not asked"
    );
    let m = seen.lock().unwrap()[0].clone();
    assert_eq!(
        m.body.len(),
        10_000,
        "the listener got {} bytes",
        m.body.len()
    );
    assert!(m.body == body, "the listener got another body");
    assert_eq!(m.tags(), Some("big"));
    // The check answered: the message is committed.
    assert!(wait_until(PROMPTLY, || broker.message_count("TxBig") == 1));
    drop(tp); // alive until here: it answers the check
}

/// VIEW_MESSAGE_BY_ID and QUERY_MESSAGE results decode to the inflated body.
#[test]
fn view_and_query_results_are_inflated() {
    let broker = MockBroker::start().unwrap();
    let p = producer(broker.namesrv_addr(), Duration::from_secs(10), 2);
    let body = compressible(10_000);
    let msg = Message::new("ViewBig", body.clone()).with_keys(["big-1"]);
    let p2 = p.clone();
    let sent = within(PROMPTLY, move || p2.send(msg)).unwrap();
    let stored = broker.messages("ViewBig");
    assert_ne!(
        stored[0].sys_flag & sys_flag::COMPRESSED,
        0,
        "sent compressed"
    );

    let mut c = Client::connect(&broker.broker_addr());
    let mut view = RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID);
    ViewMessageByIdRequestHeader {
        offset: sent.offset_id().unwrap().commit_log_offset,
    }
    .write_to(&mut view.ext_fields);
    let r = c.call(view);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let viewed = message_codec::decode_stored_messages(&r.body).unwrap();
    assert_eq!(viewed.len(), 1);
    assert!(
        viewed[0].body == body,
        "VIEW gave {} bytes, not the 10,000 sent",
        viewed[0].body.len()
    );
    // The sysFlag says how the broker stores it (as Java's MessageDecoder leaves it).
    assert_ne!(viewed[0].sys_flag & sys_flag::COMPRESSED, 0);

    let mut q = RemotingCommand::request(RequestCode::QUERY_MESSAGE);
    q.ext_fields.insert("topic", "ViewBig");
    q.ext_fields.insert("key", "big-1");
    q.ext_fields.insert("maxNum", "32");
    q.ext_fields.insert("beginTimestamp", "0");
    q.ext_fields.insert("endTimestamp", i64::MAX.to_string());
    let r = c.call(q);
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let found = message_codec::decode_stored_messages(&r.body).unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        found[0].body == body,
        "QUERY gave {} bytes, not the 10,000 sent",
        found[0].body.len()
    );
    drop(p);
}

// ---- 5: the selector sees the caller's message ------------------------------------------

/// What a selector saw: topic, tags, keys, properties, body.
type View = (
    String,
    Option<String>,
    Vec<String>,
    Vec<(String, String)>,
    Vec<u8>,
);

/// Routes on the tag: `q<N>` picks queue N. Records every message it is shown.
struct TagSelector {
    seen: Mutex<Vec<View>>,
}

impl QueueSelector for TagSelector {
    fn select(&self, queues: &[MessageQueue], msg: &Message, _arg: &str) -> usize {
        self.seen.lock().unwrap().push(view_of(msg));
        msg.tags()
            .and_then(|t| t.strip_prefix('q'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
            % queues.len()
    }
}

fn view_of(msg: &Message) -> View {
    (
        msg.topic().to_string(),
        msg.tags().map(str::to_string),
        msg.keys().map(str::to_string).collect(),
        msg.properties()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        msg.body().to_vec(),
    )
}

/// The same tag-routed message through `send_with_selector` and `send_with_selector_async`
/// (route not cached yet, and cached): the selector sees the caller's message each time and
/// picks the same queue.
#[test]
fn selector_sees_the_callers_message_in_every_form() {
    let broker = MockBroker::builder().topic("Ordered", 8).start().unwrap();
    let p = producer(broker.namesrv_addr(), Duration::from_secs(10), 2);
    let selector = Arc::new(TagSelector {
        seen: Mutex::new(Vec::new()),
    });
    for body in [compressible(10_000), b"small".to_vec()] {
        let msg = Message::new("Ordered", body.clone())
            .with_tags("q3")
            .with_keys(["order-7", "customer-9"])
            .with_property("region", "eu");
        let expected = view_of(&msg);
        let mut results: Vec<(&str, SendResult)> = Vec::new();

        // Async first: the first time, the route is not cached yet.
        let (p2, s2, m2) = (p.clone(), selector.clone(), msg.clone());
        let r = within(PROMPTLY, move || {
            p2.send_with_selector_async(m2, s2, "arg").wait()
        });
        results.push(("send_with_selector_async", r.unwrap()));

        let (p2, s2, m2) = (p.clone(), selector.clone(), msg.clone());
        let r = within(PROMPTLY, move || {
            p2.send_with_selector(m2, s2.as_ref(), "arg")
        });
        results.push(("send_with_selector", r.unwrap()));

        let (p2, s2, m2) = (p.clone(), selector.clone(), msg.clone());
        let r = within(PROMPTLY, move || {
            p2.send_with_selector_async(m2, s2, "arg").wait()
        });
        results.push(("send_with_selector_async (cached route)", r.unwrap()));

        let seen = std::mem::take(&mut *selector.seen.lock().unwrap());
        assert_eq!(seen.len(), results.len(), "one selector call per send");
        for (i, v) in seen.iter().enumerate() {
            assert!(
                v == &expected,
                "call {i} ({}) saw another message: topic {:?}, tags {:?}, keys {:?}, \
                 properties {:?}, {} body bytes",
                results[i].0,
                v.0,
                v.1,
                v.2,
                v.3,
                v.4.len()
            );
        }
        for (form, r) in &results {
            assert_eq!(
                r.queue.queue_id(),
                3,
                "{form} picked queue {}",
                r.queue.queue_id()
            );
        }
    }
    let stored = broker.messages("Ordered");
    assert_eq!(stored.len(), 6);
    assert!(stored.iter().all(|m| m.queue_id == 3));
}

// ---- 6: errors keep what happened ---------------------------------------------------------

/// The budget runs out after the broker answered SYSTEM_BUSY: the timeout names the broker,
/// the code and the kind of that answer, and the time spent.
#[test]
fn budget_out_after_a_broker_code_names_it() {
    let broker = MockBroker::builder().topic("Busy", 4).start().unwrap();
    let p = producer(broker.namesrv_addr(), Duration::from_secs(1), 2);
    within(PROMPTLY, {
        let p = p.clone();
        move || p.publish_queues("Busy")
    })
    .unwrap();
    for form in ["sync", "async"] {
        broker.fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
        broker.delay_next(RequestCode::SEND_MESSAGE_V2, Duration::from_secs(30), 1);
        let p2 = p.clone();
        let started = Instant::now();
        let r = within(PROMPTLY, move || {
            let msg = Message::new("Busy", "x");
            if form == "sync" {
                p2.send(msg)
            } else {
                p2.send_async(msg).wait()
            }
        });
        let spent = started.elapsed();
        let e = r.expect_err("the budget ran out");
        let text = e.to_string();
        assert!(e.is_timeout(), "{form}: {e:?}");
        assert_eq!(e.kind(), ErrorKind::Broker, "{form}: {e:?}");
        assert_eq!(
            e.response_code(),
            Some(ResponseCode::SYSTEM_BUSY),
            "{form}: {e:?}"
        );
        assert_eq!(
            e.broker_addr(),
            Some(broker.broker_addr().as_str()),
            "{form}: {e:?}"
        );
        assert!(text.contains("SYSTEM_BUSY (2)"), "{form}: {text}");
        assert!(text.contains(&broker.broker_addr()), "{form}: {text}");
        let Error::Timeout { after, .. } = &e else {
            panic!("{form}: {e:?}");
        };
        assert!(
            *after >= Duration::from_secs(1) && *after <= spent,
            "{form}: after {after:?}, spent {spent:?}"
        );
        assert!(text.contains(&format!("{after:?}")), "{form}: {text}");
        let cause = e
            .source()
            .and_then(|s| s.downcast_ref::<Error>())
            .unwrap_or_else(|| panic!("{form}: no source in {e:?}"));
        assert_eq!(cause.response_code(), Some(ResponseCode::SYSTEM_BUSY));
        broker.clear_faults();
    }
}

/// The budget runs out after a refused connection: the timeout names the refusing broker,
/// the kind, and keeps the OS error code.
#[test]
fn budget_out_after_a_refused_connection_names_it() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("Refused", 4)
        .start()
        .unwrap();
    let p = Producer::builder("GID_RESULTS_REFUSED")
        .name_server(cluster.namesrv_addr())
        .send_timeout(Duration::from_secs(1))
        .per_attempt_timeout(Duration::from_millis(300))
        .retries(16)
        .start()
        .unwrap();
    within(PROMPTLY, {
        let p = p.clone();
        move || p.publish_queues("Refused")
    })
    .unwrap();
    let refusing = cluster.broker(0).broker_addr();
    cluster.broker(0).stop();
    cluster
        .broker(1)
        .set_delay(RequestCode::SEND_MESSAGE_V2, Duration::from_secs(30));
    let p2 = p.clone();
    let e = within(PROMPTLY, move || p2.send(Message::new("Refused", "x")))
        .expect_err("nothing can succeed");
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e:?}");
    assert_eq!(e.broker_addr(), Some(refusing.as_str()), "{e:?}");
    assert!(e.to_string().contains(&refusing), "{e}");
    let cause = e
        .source()
        .and_then(|s| s.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("no source in {e:?}"));
    let Error::Io { source, .. } = cause else {
        panic!("the cause is not an i/o error: {cause:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        source.raw_os_error().is_some(),
        "the OS error code is lost: {source:?}"
    );
    cluster.broker(1).clear_faults();
    drop(p);
}

/// `NoRoute` keeps its cause as an error: a refused name server connection, with its kind
/// and retriability.
#[test]
fn no_route_keeps_its_source() {
    // A port that nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = Producer::builder("GID_RESULTS_NOROUTE")
        .name_server(format!("127.0.0.1:{port}"))
        .send_timeout(Duration::from_secs(2))
        .start()
        .unwrap();
    let p2 = p.clone();
    let e = within(PROMPTLY, move || p2.send(Message::new("Nowhere", "x")))
        .expect_err("no name server");
    assert_eq!(e.kind(), ErrorKind::NoRoute, "{e:?}");
    assert!(!e.is_retriable());
    let cause = e
        .source()
        .and_then(|s| s.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("no source in {e:?}"));
    assert_eq!(cause.kind(), ErrorKind::Connection, "{cause:?}");
    assert!(cause.is_retriable());
    assert_eq!(
        cause.broker_addr(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    drop(p);
}

// ---- 7: a stored message is not sent again ----------------------------------------------

/// The broker stores the message and answers SUCCESS with a header that cannot be read: the
/// send fails with a protocol error and is not retried (the broker sees exactly one send).
#[test]
fn success_with_an_unreadable_header_is_not_retried() {
    let broker = MockBroker::builder().topic("Garbled", 4).start().unwrap();
    let p = producer(broker.namesrv_addr(), Duration::from_secs(10), 2);
    for form in ["sync", "async"] {
        let before = broker.counters().sends();
        broker.unreadable_header_next(RequestCode::SEND_MESSAGE_V2);
        let p2 = p.clone();
        let r = within(PROMPTLY, move || {
            let msg = Message::new("Garbled", form);
            if form == "sync" {
                p2.send(msg)
            } else {
                p2.send_async(msg).wait()
            }
        });
        let e = r.expect_err("the header is unreadable");
        assert_eq!(e.kind(), ErrorKind::Protocol, "{form}: {e:?}");
        assert!(!e.is_retriable(), "{form}: {e:?}");
        assert_eq!(
            broker.counters().sends() - before,
            1,
            "{form}: the broker saw the message more than once"
        );
    }
    assert_eq!(broker.message_count("Garbled"), 2);
}
