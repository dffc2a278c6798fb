//! Interop over TLS with a real RocketMQ cluster whose brokers serve TLS only ("enforcing"),
//! started by `scripts/real-broker.sh start-tls DIR` (which makes a test CA in `DIR/tls`).
//!
//! Runs when `ROCKETMQ_INTEROP_TLS_NAMESRV` names its name server and `ROCKETMQ_INTEROP_TLS_DIR`
//! its directory (`.ci/run` starts one); otherwise each test prints why it is skipped. Needs the
//! crate feature `tls`: `cargo test --features tls --test interop_tls`.
//!
//! Every send mode is read back from the broker (over TLS too), and a client with the wrong CA
//! fails cleanly with an error naming the node. Each test runs under a watchdog.
#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use common::interop::{assert_stored, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig, TlsConfig};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::{ErrorKind, Message, Producer, ProducerConfig, SendStatus};

const NAMESRV_ENV: &str = "ROCKETMQ_INTEROP_TLS_NAMESRV";
const DIR_ENV: &str = "ROCKETMQ_INTEROP_TLS_DIR";
const WATCHDOG: Duration = Duration::from_secs(180);

/// The TLS cluster's name server and CA file, or `None` after printing why `test` is skipped.
fn tls_cluster(test: &str) -> Option<(String, PathBuf)> {
    let get = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    match (get(NAMESRV_ENV), get(DIR_ENV)) {
        (Some(ns), Some(dir)) => {
            Some((ns.trim().to_string(), PathBuf::from(dir.trim()).join("tls")))
        }
        _ => {
            println!(
                "{test}: skipped: {NAMESRV_ENV} and {DIR_ENV} not set \
                 (scripts/real-broker.sh start-tls DIR; .ci/run does it)"
            );
            None
        }
    }
}

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

fn tls_producer(group: &str, ns: &str, ca: PathBuf) -> Producer {
    ProducerConfig::testing(group)
        .name_server(ns)
        .tls(true)
        .tls_ca_file(ca)
        .start()
        .expect("producer starts")
}

fn tls_reader(ns: &str, ca: PathBuf) -> Reader {
    Reader::with_config(
        ns,
        RemotingConfig {
            tls: Some(TlsConfig::new().ca_file(ca)),
            ..Default::default()
        },
    )
}

fn sample(topic: &str, i: usize) -> Message {
    Message::new(topic, format!("tls body {i}"))
        .with_tags("TagTls")
        .with_keys([format!("tls-key-{i}")])
        .with_property("n", i.to_string())
}

#[test]
fn every_send_mode_over_tls_enforcing() {
    let Some((ns, dir)) = tls_cluster("every_send_mode_over_tls_enforcing") else {
        return;
    };
    bounded(move || {
        let ca = dir.join("ca.pem");
        let topic = unique_topic("interop-tls");
        let producer = tls_producer("GID_interop_tls", &ns, ca.clone());
        let reader = tls_reader(&ns, ca);

        // The brokers refuse plain TCP (enforcing): the reader's TLS is what lets it in.
        let plain = RemotingClient::new(RemotingConfig::default()).unwrap();
        let broker = reader.master_addrs().remove(0);
        let err = plain
            .invoke_sync(
                &broker,
                RemotingCommand::request(34),
                Duration::from_secs(5),
            )
            .expect_err("a plain connection to an enforcing broker fails");
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "{err}"
        );

        // sync
        let msg = sample(&topic, 0);
        let r = producer.send(msg.clone()).expect("sync send over TLS");
        assert_eq!(r.status, SendStatus::SendOk);
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // async handle, and the handle as a future
        let msg = sample(&topic, 1);
        let r = producer.send_async(msg.clone()).wait().expect("async send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
        let msg = sample(&topic, 2);
        let r = futures_lite::future::block_on(producer.send_async(msg.clone())).expect("awaited");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // callback
        let (tx, rx) = mpsc::channel();
        let msg = sample(&topic, 3);
        producer.send_with_callback(msg.clone(), move |r| {
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(PROMPTLY)
            .expect("callback runs")
            .expect("callback send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);

        // batch
        let msgs: Vec<Message> = (4..7).map(|i| sample(&topic, i)).collect();
        let r = producer.send_batch(msgs.clone()).expect("batch send");
        let ids: Vec<&str> = r.msg_id.split(',').collect();
        assert_eq!(ids.len(), 3);
        for (m, id) in msgs.iter().zip(&ids) {
            let stored = reader
                .find(&topic, id, true, PROMPTLY)
                .unwrap_or_else(|| panic!("batch message {id} stored"));
            assert_stored(&stored, m, id);
        }

        // selector and explicit queue
        let msg = sample(&topic, 7);
        let r = producer
            .send_with_selector(msg.clone(), &MessageHashSelector, "order-1")
            .expect("selector send");
        assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
        let msg = sample(&topic, 8);
        let r2 = producer
            .send_to_queue(msg.clone(), &r.queue)
            .expect("queue send");
        assert_eq!(r2.queue, r.queue);
        assert_stored(&reader.view_result(&r2), &msg, &r2.msg_id);

        // oneway: no result; found by its key
        let msg = sample(&topic, 9);
        producer.send_oneway(msg.clone()).expect("oneway send");
        let stored = reader
            .find(&topic, "tls-key-9", false, PROMPTLY)
            .expect("oneway message stored");
        let uniq = stored.msg_id().expect("UNIQ_KEY").to_string();
        assert_stored(&stored, &msg, &uniq);

        producer.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn wrong_ca_fails_cleanly_naming_the_node() {
    let Some((ns, dir)) = tls_cluster("wrong_ca_fails_cleanly_naming_the_node") else {
        return;
    };
    bounded(move || {
        // A CA that signed nothing of this cluster.
        let wrong = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls/other-ca.pem");
        let broker = tls_reader(&ns, dir.join("ca.pem")).master_addrs().remove(0);
        let client = RemotingClient::new(RemotingConfig {
            tls: Some(TlsConfig::new().ca_file(&wrong)),
            ..Default::default()
        })
        .unwrap();
        for addr in [&ns, &broker] {
            let err = client
                .invoke_sync(addr, RemotingCommand::request(105), Duration::from_secs(10))
                .expect_err("the wrong CA fails");
            assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
            let text = err.to_string();
            assert!(text.contains(addr.as_str()), "names {addr}: {text}");
            assert!(text.contains("TLS handshake failed"), "{text}");
            assert!(text.contains("certificate"), "{text}");
        }

        let producer = ProducerConfig::testing("GID_interop_tls_wrong_ca")
            .name_server(ns.as_str())
            .tls(true)
            .tls_ca_file(wrong)
            .send_timeout(Duration::from_secs(3))
            .start()
            .expect("producer starts");
        let err = producer
            .send(Message::new(
                unique_topic("interop-tls-wrong").as_str(),
                "x",
            ))
            .expect_err("nothing is sent with the wrong CA");
        let text = err.to_string();
        assert!(text.contains(&ns), "names the name server {ns}: {text}");
        assert!(text.contains("certificate"), "{text}");
        producer.shutdown(PROMPTLY).unwrap();
    });
}

#[test]
fn insecure_mode_reaches_the_cluster() {
    let Some((ns, _)) = tls_cluster("insecure_mode_reaches_the_cluster") else {
        return;
    };
    bounded(move || {
        let producer = ProducerConfig::testing("GID_interop_tls_insecure")
            .name_server(ns.as_str())
            .tls(true)
            .tls_insecure_skip_verify_for_testing(true)
            .start()
            .expect("producer starts");
        let r = producer
            .send(Message::new(
                unique_topic("interop-tls-insecure").as_str(),
                "x",
            ))
            .expect("send without verification");
        assert_eq!(r.status, SendStatus::SendOk);
        producer.shutdown(PROMPTLY).unwrap();
    });
}
