//! Shutdown: every request in flight ends with `Shutdown`, every thread is joined, nothing is
//! accepted afterwards. The tests of this file run one at a time, so that the threads of the
//! process named `rocketmq-*` are this test's.

mod remoting_peer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use remoting_peer::{spawn_echo, wait_until, Peer, STUCK};
use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::remoting::{pair, Completion, RemotingClient, RemotingConfig};
use rocketmq_mio::Error;

const LONG: Duration = Duration::from_secs(600);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names of this process's threads that the client starts (names are cut to 15 bytes).
#[cfg(target_os = "linux")]
fn library_threads() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim().to_owned();
            if comm.starts_with("rocketmq-") {
                names.push(comm);
            }
        }
    }
    names.sort();
    names
}

#[cfg(not(target_os = "linux"))]
fn library_threads() -> Vec<String> {
    Vec::new()
}

fn assert_all_threads_gone() {
    let gone = wait_until(STUCK, || library_threads().is_empty());
    assert!(gone, "threads left: {:?}", library_threads());
}

/// The 2 + 2 threads of [`config`] are there (a thread names itself as it starts).
fn assert_threads_started() {
    if cfg!(target_os = "linux") {
        let started = wait_until(STUCK, || library_threads().len() == 4);
        assert!(started, "threads: {:?}", library_threads());
    }
}

fn config() -> RemotingConfig {
    RemotingConfig {
        io_threads: 2,
        callback_threads: 2,
        ..Default::default()
    }
}

fn request() -> RemotingCommand {
    RemotingCommand::request(10).with_body("x")
}

#[test]
fn shutdown_ends_everything_in_flight_and_joins_every_thread() {
    let _serial = serial();
    assert_all_threads_gone();
    let silent = Peer::bind();
    let addr = silent.addr();
    let client = RemotingClient::new(config()).unwrap();
    assert_threads_started();

    let sync_callers: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            let addr = addr.clone();
            thread::spawn(move || client.invoke_sync(&addr, request(), LONG))
        })
        .collect();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let (c, h) = pair();
            client.invoke_async(&addr, request(), LONG, Completion::Handle(c));
            h
        })
        .collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let shutdowns = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let (calls, shutdowns) = (calls.clone(), shutdowns.clone());
        client.invoke_async(
            &addr,
            request(),
            LONG,
            Completion::Callback(Box::new(move |r| {
                calls.fetch_add(1, Ordering::SeqCst);
                if r.is_err_and(|e| e.is_shutdown()) {
                    shutdowns.fetch_add(1, Ordering::SeqCst);
                }
            })),
        );
    }
    // Everything reaches the peer (and so is pending) before the shutdown.
    let mut conn = silent.accept();
    for _ in 0..203 {
        conn.read_cmd().unwrap();
    }
    assert!(wait_until(STUCK, || client.pending_count() == 203));

    client.shutdown();

    assert!(client.is_shutdown());
    assert_eq!(client.pending_count(), 0);
    for t in sync_callers {
        assert!(t.join().unwrap().unwrap_err().is_shutdown());
    }
    for h in handles {
        assert!(h.is_done());
        assert!(h.wait().unwrap_err().is_shutdown());
    }
    // The pool was joined: every callback has run, exactly once.
    assert_eq!(calls.load(Ordering::SeqCst), 100);
    assert_eq!(shutdowns.load(Ordering::SeqCst), 100);
    assert!(conn.sees_eof(STUCK), "the connection is closed");
    assert_all_threads_gone();

    // Nothing is accepted any more.
    assert!(client
        .invoke_sync(&addr, request(), LONG)
        .unwrap_err()
        .is_shutdown());
    assert!(client
        .invoke_oneway(&addr, request())
        .unwrap_err()
        .is_shutdown());
    assert!(client.execute(Box::new(|| {})).unwrap_err().is_shutdown());
    let (c, h) = pair();
    client.invoke_async(&addr, request(), LONG, Completion::Handle(c));
    assert!(h.wait().unwrap_err().is_shutdown());
    let (tx, rx) = mpsc::channel();
    client.invoke_async(
        &addr,
        request(),
        LONG,
        Completion::Callback(Box::new(move |r| tx.send(r.unwrap_err()).unwrap())),
    );
    assert!(rx.recv_timeout(STUCK).unwrap().is_shutdown());
    // Idempotent.
    client.shutdown();
    client.shutdown();
}

#[test]
fn shutdown_from_a_callback() {
    let _serial = serial();
    assert_all_threads_gone();
    let addr = spawn_echo();
    let client = RemotingClient::new(config()).unwrap();
    assert_threads_started();
    let (tx, rx) = mpsc::channel();
    let inner = client.clone();
    client.invoke_async(
        &addr,
        request(),
        LONG,
        Completion::Callback(Box::new(move |r| {
            r.unwrap();
            inner.shutdown();
            // The pool's own thread is still alive and running this callback.
            let after = inner.invoke_sync("127.0.0.1:1", request(), LONG);
            tx.send(after.unwrap_err()).unwrap();
        })),
    );
    let err = rx.recv_timeout(STUCK).unwrap();
    assert!(matches!(err, Error::Shutdown), "{err}");
    assert!(client.is_shutdown());
    client.shutdown(); // returns once the shutdown from the callback is complete
    drop(client);
    assert_all_threads_gone();
}

#[test]
fn drop_of_the_last_clone_shuts_down() {
    let _serial = serial();
    assert_all_threads_gone();
    let silent = Peer::bind();
    let addr = silent.addr();
    let client = RemotingClient::new(config()).unwrap();
    assert_threads_started();
    let other = client.clone();
    let (c, h) = pair();
    client.invoke_async(&addr, request(), LONG, Completion::Handle(c));
    let mut conn = silent.accept();
    conn.read_cmd().unwrap();
    drop(client);
    assert!(!other.is_shutdown(), "a clone is still alive");
    drop(other);
    assert!(h.wait().unwrap_err().is_shutdown());
    assert_all_threads_gone();
}

#[test]
fn last_clone_dropped_inside_a_callback() {
    let _serial = serial();
    assert_all_threads_gone();
    let addr = spawn_echo();
    let client = RemotingClient::new(config()).unwrap();
    assert_threads_started();
    let (tx, rx) = mpsc::channel();
    let inner = client.clone();
    client.invoke_async(
        &addr,
        request(),
        LONG,
        Completion::Callback(Box::new(move |r| {
            tx.send(r.is_ok()).unwrap();
            drop(inner); // the last clone, once the test dropped its own
        })),
    );
    // `client` still lives until here, so the callback cannot have dropped the last clone yet
    // unless it already ran: either way the last drop shuts down without deadlock.
    drop(client);
    assert!(rx.recv_timeout(STUCK).unwrap());
    assert_all_threads_gone();
}

#[test]
fn oneway_and_callbacks_racing_a_shutdown_all_end() {
    let _serial = serial();
    assert_all_threads_gone();
    let addr = spawn_echo();
    let client = RemotingClient::new(config()).unwrap();
    assert_threads_started();
    let calls = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let addr = addr.clone();
            let calls = calls.clone();
            thread::spawn(move || {
                let mut sent = 0;
                for _ in 0..2000 {
                    let calls = calls.clone();
                    client.invoke_async(
                        &addr,
                        request(),
                        LONG,
                        Completion::Callback(Box::new(move |_| {
                            calls.fetch_add(1, Ordering::SeqCst);
                        })),
                    );
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(5));
    client.shutdown();
    let sent: usize = senders.into_iter().map(|t| t.join().unwrap()).sum();
    // Callbacks of requests made after the pool ended ran on their callers' threads, which
    // are joined now: every callback ran exactly once.
    assert_eq!(calls.load(Ordering::SeqCst), sent);
    drop(client);
    assert_all_threads_gone();
}
