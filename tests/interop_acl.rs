//! ACL against a real broker (RocketMQ-Rust 1.0.0) with `authenticationEnabled` and
//! `authorizationEnabled`, users and topic permissions from a Java `plain_acl.yml`.
//!
//! The test starts its own one-broker cluster with `scripts/real-broker.sh` and
//! `ROCKETMQ_ACL_FILE` on free loopback ports, and stops it at the end (a panic included). It is
//! skipped, with the reason printed, when the real broker binaries are not installed
//! (`scripts/real-broker.sh install`).
//!
//! With the right keys, every send mode and a transaction (its END_TRANSACTION and a check-back's
//! END_TRANSACTION) succeed, and sends with binary (ROCKETMQ) headers too; a wrong secret, no credentials and a topic the account may not
//! publish to each fail with `Error::NoPermission` carrying the broker's remark, after one
//! attempt, and nothing is stored.

mod common;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_mio::protocol::acl::Credentials;
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::{
    Error, ErrorKind, ListenerResult, LocalTransactionState, Message, MessageExt, Producer,
    ProducerConfig, SerializeType, TransactionListener,
};

use common::interop::Reader;

const ADMIN: (&str, &str) = ("rmq-admin", "admin-Secret-1");
const APP: (&str, &str) = ("rmq-app", "app-Secret-1");

const ACL_FILE: &str = "\
accounts:
  - accessKey: rmq-admin
    secretKey: admin-Secret-1
    admin: true
  - accessKey: rmq-app
    secretKey: app-Secret-1
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - AclOrders=PUB
      - AclTx=PUB
      # A check-back's END_TRANSACTION names the topic the check named, the half topic (as the
      # Java client's does): without PUB on it, commits on check-back are refused.
      - RMQ_SYS_TRANS_HALF_TOPIC=PUB
";

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/real-broker.sh")
}

/// A one-broker cluster with ACL on; stopped when dropped.
struct AclCluster {
    dir: PathBuf,
    namesrv: String,
}

impl AclCluster {
    /// Starts one, or returns `None` after printing why the test is skipped.
    fn start(test: &str) -> Option<AclCluster> {
        let root = std::env::var("ROCKETMQ_REAL_ROOT").map_or_else(
            |_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".local/rocketmq-real")
            },
            PathBuf::from,
        );
        for bin in ["rocketmq-namesrv-rust", "rocketmq-broker-rust"] {
            if !root.join("bin").join(bin).exists() {
                println!(
                    "{test}: skipped: {bin} is not installed in {} (scripts/real-broker.sh install)",
                    root.display()
                );
                return None;
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("rocketmq-acl-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let acl_file = dir.join("plain_acl.yml");
        std::fs::write(&acl_file, ACL_FILE).expect("ACL file");
        for _ in 0..20 {
            let base = 20_000 + rand::random::<u16>() % 12_000;
            let out = Command::new("bash")
                .arg(script())
                .args(["start", &dir.to_string_lossy()])
                .arg(base.to_string())
                .arg((base + 100).to_string())
                .arg("1")
                .env("ROCKETMQ_ACL_FILE", &acl_file)
                .output()
                .expect("bash runs");
            if out.status.success() {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let namesrv = stdout.lines().last().unwrap_or_default().trim().to_string();
                println!(
                    "ACL cluster: name server {namesrv}, state in {}",
                    dir.display()
                );
                return Some(AclCluster { dir, namesrv });
            }
            stop(&dir);
            // Exit status 3: a port is taken; try others.
            assert_eq!(
                out.status.code(),
                Some(3),
                "real-broker.sh start failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("no free loopback ports for the ACL cluster");
    }
}

fn stop(dir: &Path) {
    let _ = Command::new("bash")
        .arg(script())
        .args(["stop", &dir.to_string_lossy()])
        .status();
}

impl Drop for AclCluster {
    fn drop(&mut self) {
        stop(&self.dir);
        if std::thread::panicking() {
            eprintln!("ACL cluster logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `f` on a thread; fails if it takes longer than `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match body.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body hung (watchdog)"),
    }
}

/// The sum of the max offsets of `topic`'s four queues on `addr`: how many messages it holds.
fn stored(reader: &Reader, addr: &str, topic: &str) -> i64 {
    (0..4)
        .map(|q| reader.max_offset(addr, topic, q).unwrap_or(0))
        .sum()
}

fn producer(namesrv: &str, group: &str, credentials: Option<(&str, &str)>) -> Producer {
    let mut b = ProducerConfig::testing(group)
        .name_server(namesrv)
        .retries(2);
    if let Some((ak, sk)) = credentials {
        b = b.credentials(ak, sk);
    }
    b.start().expect("producer starts")
}

/// Commits in `execute` when the body says so, else answers Unknown and commits on the check.
struct Listener;

impl TransactionListener for Listener {
    fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        if msg.body() == b"commit-now" {
            Ok(LocalTransactionState::CommitMessage)
        } else {
            Ok(LocalTransactionState::Unknown)
        }
    }

    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

fn assert_refused(what: &str, e: &Error, remark_part: &str) {
    println!("{what}: {e}");
    assert!(matches!(e, Error::NoPermission { .. }), "{what}: {e:?}");
    assert_eq!(e.kind(), ErrorKind::NoPermission);
    assert!(e.to_string().contains(remark_part), "{what}: {e}");
}

#[test]
fn acl_on_a_real_broker() {
    let Some(cluster) = AclCluster::start("acl_on_a_real_broker") else {
        return;
    };
    let ns = cluster.namesrv.clone();
    watchdog(Duration::from_secs(240), move || {
        let admin = Reader::with_credentials(&ns, Credentials::new(ADMIN.0, ADMIN.1));
        for topic in ["AclOrders", "AclTx", "AclForbidden"] {
            admin.create_topic(topic, 4);
        }
        let broker = admin.master_addr("broker-a");

        // The right keys: every send mode.
        let p = producer(&ns, "GID_ACL_APP", Some(APP));
        let msg = |body: &str| Message::new("AclOrders", body.to_string()).with_keys(["acl"]);
        let r = p.send(msg("sync")).expect("sync send");
        assert_eq!(admin.view_result(&r).body, b"sync");
        let r = p.send_async(msg("async")).wait().expect("async send");
        assert_eq!(admin.view_result(&r).body, b"async");
        let (tx, rx) = mpsc::channel();
        p.send_with_callback(msg("callback"), move |r| {
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("callback send");
        assert_eq!(admin.view_result(&r).body, b"callback");
        p.send_batch(vec![msg("batch-1"), msg("batch-2")])
            .expect("batch send");
        let queue = p.publish_queues("AclOrders").unwrap()[2].clone();
        let r = p.send_to_queue(msg("to-queue"), &queue).unwrap();
        assert_eq!(r.queue.queue_id(), 2);
        p.send_with_selector(msg("selector"), &MessageHashSelector, "k")
            .unwrap();
        let r = p
            .send(Message::new("AclOrders", vec![b'z'; 10_000]))
            .expect("compressed send");
        assert!(admin.view_result(&r).body.len() < 10_000);
        let oneway = msg("oneway");
        p.send_oneway(oneway).expect("oneway send");
        assert!(
            common::wait_until(Duration::from_secs(30), || stored(
                &admin,
                &broker,
                "AclOrders"
            ) == 9),
            "stored {}",
            stored(&admin, &broker, "AclOrders")
        );
        assert_eq!(p.stats().totals.failed, 0);

        // A transaction committed at once, and one committed on the broker's check-back.
        let tp = ProducerConfig::testing("GID_ACL_TX")
            .name_server(&ns)
            .credentials(APP.0, APP.1)
            .listener(Listener)
            .start()
            .unwrap();
        let now = tp
            .send_message_in_transaction(Message::new("AclTx", "commit-now"), &())
            .expect("half message");
        let later = tp
            .send_message_in_transaction(Message::new("AclTx", "commit-on-check"), &())
            .expect("half message");
        for (what, r) in [("commit", &now), ("check-back commit", &later)] {
            let found = admin.find(
                "AclTx",
                &r.send_result.msg_id,
                true,
                Duration::from_secs(60),
            );
            assert!(
                found.is_some(),
                "{what}: the committed message never showed up"
            );
        }
        tp.shutdown(Duration::from_secs(5)).unwrap();

        // The binary ROCKETMQ header layout: the signature covers the fields, not the layout.
        let bin = ProducerConfig::testing("GID_ACL_BIN")
            .name_server(&ns)
            .retries(2)
            .serialize_type(SerializeType::RocketMq)
            .credentials(APP.0, APP.1)
            .start()
            .unwrap();
        let r = bin.send(msg("binary sync")).expect("binary sync send");
        assert_eq!(admin.view_result(&r).body, b"binary sync");
        let r = bin
            .send_async(msg("binary async"))
            .wait()
            .expect("binary async send");
        assert_eq!(admin.view_result(&r).body, b"binary async");
        bin.send_batch(vec![msg("binary batch-1"), msg("binary batch-2")])
            .expect("binary batch send");
        bin.shutdown(Duration::from_secs(5)).unwrap();
        let wrong_bin = ProducerConfig::testing("GID_ACL_BIN_WRONG")
            .name_server(&ns)
            .serialize_type(SerializeType::RocketMq)
            .credentials(APP.0, "not-the-secret")
            .start()
            .unwrap();
        let e = wrong_bin.send(msg("binary wrong secret")).unwrap_err();
        assert_refused(
            "wrong secret (binary)",
            &e,
            "Authentication credentials are invalid",
        );
        wrong_bin.shutdown(Duration::from_secs(5)).unwrap();

        // Refusals: one attempt each, NoPermission with the broker's remark, nothing stored.
        let before = stored(&admin, &broker, "AclOrders");
        let wrong = producer(&ns, "GID_ACL_WRONG", Some((APP.0, "not-the-secret")));
        let e = wrong.send(msg("wrong secret")).unwrap_err();
        assert_refused("wrong secret", &e, "Authentication credentials are invalid");
        assert!(!e.to_string().contains("not-the-secret"));
        assert_eq!(wrong.stats().totals.retried, 0, "retried");
        let e = wrong
            .send_async(msg("wrong secret async"))
            .wait()
            .unwrap_err();
        assert_refused(
            "wrong secret (async)",
            &e,
            "Authentication credentials are invalid",
        );

        let anonymous = producer(&ns, "GID_ACL_NONE", None);
        let e = anonymous.send(msg("no credentials")).unwrap_err();
        assert_refused(
            "no credentials",
            &e,
            "Authentication credentials are invalid",
        );
        assert_eq!(anonymous.stats().totals.retried, 0, "retried");

        let e = p.send(Message::new("AclForbidden", "x")).unwrap_err();
        assert_refused("forbidden topic", &e, "Permission was denied");
        assert_eq!(p.stats().totals.failed_of(ErrorKind::NoPermission), 1);

        assert_eq!(stored(&admin, &broker, "AclOrders"), before);
        assert_eq!(stored(&admin, &broker, "AclForbidden"), 0);
        p.shutdown(Duration::from_secs(5)).unwrap();
    });
    drop(cluster);
}
