//! Name resolution of peer addresses.
//!
//! An address that is an IP literal (`10.0.0.1:10911`, `[::1]:9876`) needs none. A host name
//! (`broker-a.internal:10911`) is looked up again on every connect, so a name server or broker
//! whose name moves to a new IP is dialled at the new one after a reconnect. Lookups block
//! (`getaddrinfo`), so they run neither on the caller's thread (an asynchronous send returns at
//! once) nor on the event loop: each runs on a short-lived `rocketmq-resolve` thread and hands
//! its result back to the loop, which then connects. The lookup counts against the connect
//! timeout: a lookup that has not answered by then fails the connect (its late answer is
//! dropped).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

type LookupFn = dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Turns `host:port` into socket addresses; the system resolver unless a test installs its own.
#[derive(Clone)]
pub(crate) struct Resolver(Arc<LookupFn>);

impl Resolver {
    /// The system resolver (`ToSocketAddrs`, i.e. `getaddrinfo`).
    pub(crate) fn system() -> Self {
        Resolver(Arc::new(|addr: &str| {
            addr.to_socket_addrs().map(Iterator::collect)
        }))
    }

    /// A resolver that answers with `lookup` (tests: names that move, lookups that hang).
    #[cfg(test)]
    pub(crate) fn custom(
        lookup: impl Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        Resolver(Arc::new(lookup))
    }

    /// Looks `addr` (`host:port`) up; blocks. An empty answer is an error.
    pub(crate) fn lookup(&self, addr: &str) -> io::Result<Vec<SocketAddr>> {
        let found = (self.0)(addr).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot resolve {}: {e}", host_of(addr)))
        })?;
        if found.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", host_of(addr)),
            ));
        }
        Ok(found)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

/// The host part of `host:port` (the whole string if it has no port).
pub(crate) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

/// Checks that `addr` can be dialled: an IP literal with a port, or `host:port` with a
/// non-empty host and a valid port. No lookup happens here.
pub(crate) fn check_syntax(addr: &str) -> io::Result<Option<SocketAddr>> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok(Some(socket));
    }
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} is not host:port ({why})"),
        )
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if host.trim().is_empty() {
        return Err(bad("no host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(bad("the port is not a number from 0 to 65535"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;

    use super::*;
    use crate::error::Error;
    use crate::protocol::RemotingCommand;
    use crate::remoting::{pair, Completion, RemotingClient, RemotingConfig};

    const PATIENCE: Duration = Duration::from_secs(20);

    /// Runs `f` on its own thread; panics if it does not finish within `limit`.
    fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(limit) {
            Ok(v) => v,
            Err(e) => panic!("watchdog: no result within {limit:?} ({e})"),
        }
    }

    fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn try_accept(l: &TcpListener, within: Duration) -> Option<TcpStream> {
        let deadline = Instant::now() + within;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(PATIENCE)).unwrap();
                    return Some(s);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Reads one request and answers it with its body.
    fn answer_one(s: &mut TcpStream) {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame).unwrap();
        let req = RemotingCommand::decode_unprefixed(&frame).unwrap();
        let resp = RemotingCommand::response(0, req.opaque).with_body(req.body);
        s.write_all(&resp.to_frame().unwrap()).unwrap();
    }

    fn request(body: &str) -> RemotingCommand {
        RemotingCommand::request(34).with_body(body.as_bytes().to_vec())
    }

    /// A resolver for `name` that answers what `target` holds, counting lookups.
    fn moving(
        name: &'static str,
        target: Arc<Mutex<SocketAddr>>,
        calls: Arc<AtomicUsize>,
    ) -> Resolver {
        Resolver::custom(move |addr| {
            calls.fetch_add(1, Ordering::SeqCst);
            if addr == name {
                Ok(vec![*target.lock()])
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "unknown test name"))
            }
        })
    }

    #[test]
    fn a_host_that_moves_is_resolved_again_on_reconnect() {
        watchdog(Duration::from_secs(60), || {
            const NAME: &str = "broker-a.test:10911";
            let (old, old_addr) = listener();
            let (new, new_addr) = listener();
            let target = Arc::new(Mutex::new(old_addr));
            let calls = Arc::new(AtomicUsize::new(0));
            let client = RemotingClient::with_resolver(
                RemotingConfig::default(),
                moving(NAME, target.clone(), calls.clone()),
            )
            .unwrap();
            let server = thread::spawn(move || {
                let mut s = try_accept(&old, PATIENCE).expect("the first connect");
                answer_one(&mut s);
                (old, s)
            });
            let r = client.invoke_sync(NAME, request("one"), PATIENCE).unwrap();
            assert_eq!(r.body, b"one");
            let (old, s) = server.join().unwrap();
            // The name moves; the old address keeps listening (a stale IP that still takes
            // connections), and the connection drops.
            *target.lock() = new_addr;
            drop(s);
            let deadline = Instant::now() + PATIENCE;
            while client
                .connection_state(NAME)
                .is_some_and(|s| s.is_connected())
            {
                assert!(Instant::now() < deadline, "the client sees the close");
                thread::sleep(Duration::from_millis(2));
            }
            let server = thread::spawn(move || {
                let mut s =
                    try_accept(&new, PATIENCE).expect("the reconnect goes to the new address");
                answer_one(&mut s);
                s
            });
            let r = client.invoke_sync(NAME, request("two"), PATIENCE).unwrap();
            assert_eq!(r.body, b"two");
            let _s = server.join().unwrap();
            assert!(try_accept(&old, Duration::from_millis(50)).is_none());
            assert!(calls.load(Ordering::SeqCst) >= 2);
            client.shutdown();
        });
    }

    /// A resolver that blocks until the test releases it (or drops the release).
    fn gated(answer: SocketAddr) -> (Resolver, mpsc::Sender<()>, Arc<AtomicUsize>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let resolver = Resolver::custom(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            match gate.lock().recv_timeout(Duration::from_secs(60)) {
                Ok(()) => Ok(vec![answer]),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "test lookup released",
                )),
            }
        });
        (resolver, release, calls)
    }

    #[test]
    fn an_async_send_returns_while_the_lookup_is_slow_and_the_loop_keeps_going() {
        let (l, addr) = listener();
        let (other, other_addr) = listener();
        let (resolver, release, calls) = gated(addr);
        let client = RemotingClient::with_resolver(RemotingConfig::default(), resolver).unwrap();
        let (c, mut handle) = pair();
        {
            let client = client.clone();
            // Returns although the lookup is stuck.
            watchdog(Duration::from_secs(20), move || {
                client.invoke_async(
                    "slow.test:1",
                    request("slow"),
                    PATIENCE,
                    Completion::Handle(c),
                );
            });
        }
        // The lookup is under way on another thread, and the event loop serves other peers.
        let deadline = Instant::now() + PATIENCE;
        while calls.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the lookup starts");
            thread::sleep(Duration::from_millis(2));
        }
        let other_server = thread::spawn(move || {
            let mut s = try_accept(&other, PATIENCE).unwrap();
            answer_one(&mut s);
            s
        });
        let r = watchdog(Duration::from_secs(20), {
            let client = client.clone();
            move || client.invoke_sync(&other_addr.to_string(), request("other"), PATIENCE)
        });
        assert_eq!(r.unwrap().body, b"other");
        let _o = other_server.join().unwrap();
        assert!(handle.try_take().is_none(), "still waiting for its lookup");
        // The lookup answers: the request goes out.
        release.send(()).unwrap();
        let mut s = try_accept(&l, PATIENCE).expect("connected after the lookup");
        answer_one(&mut s);
        let r = handle.wait_timeout(PATIENCE).expect("answered").unwrap();
        assert_eq!(r.body, b"slow");
        client.shutdown();
    }

    #[test]
    fn a_lookup_slower_than_the_connect_timeout_fails_the_request() {
        let (_l, addr) = listener();
        let (resolver, release, _calls) = gated(addr);
        let client = RemotingClient::with_resolver(
            RemotingConfig {
                connect_timeout: Duration::from_millis(200),
                ..Default::default()
            },
            resolver,
        )
        .unwrap();
        let result = watchdog(Duration::from_secs(20), {
            let client = client.clone();
            move || client.invoke_sync("stuck.test:1", request("x"), Duration::from_secs(60))
        });
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(err.broker_addr(), Some("stuck.test:1"));
        assert!(err.is_retriable());
        let text = err.to_string();
        assert!(
            text.contains("timed out") && text.contains("stuck.test"),
            "{text}"
        );
        drop(release);
        client.shutdown();
    }

    #[test]
    fn a_name_that_does_not_resolve_fails_with_an_error_naming_the_host() {
        let resolver =
            Resolver::custom(|_| Err(io::Error::new(io::ErrorKind::NotFound, "no such host")));
        let client = RemotingClient::with_resolver(RemotingConfig::default(), resolver).unwrap();
        let err = watchdog(Duration::from_secs(20), {
            let client = client.clone();
            move || client.invoke_sync("nohost.test:9876", request("x"), PATIENCE)
        })
        .unwrap_err();
        assert_eq!(err.broker_addr(), Some("nohost.test:9876"));
        assert!(
            err.to_string().contains("cannot resolve nohost.test"),
            "{err}"
        );
        assert!(err.is_retriable());
        // The same through a handle.
        let (c, h) = pair();
        client.invoke_async(
            "nohost.test:9876",
            request("x"),
            PATIENCE,
            Completion::Handle(c),
        );
        let err = h.wait().unwrap_err();
        assert!(
            err.to_string().contains("cannot resolve nohost.test"),
            "{err}"
        );
        client.shutdown();
    }

    #[test]
    fn bad_addresses_fail_at_once_without_a_lookup() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let resolver = Resolver::custom(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::new(io::ErrorKind::NotFound, "no"))
        });
        let client = RemotingClient::with_resolver(RemotingConfig::default(), resolver).unwrap();
        for bad in ["no-port", ":10911", "host:port", "host:70000", ""] {
            let err = client.invoke_sync(bad, request("x"), PATIENCE).unwrap_err();
            assert!(err.to_string().contains("not host:port"), "{bad}: {err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(host_of("a.b:1"), "a.b");
        assert!(check_syntax("[::1]:9876").unwrap().is_some());
        assert!(check_syntax("broker:10911").unwrap().is_none());
        client.shutdown();
    }
}
