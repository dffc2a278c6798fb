//! Round trips through the remoting client against a minimal loopback peer, next to a bare
//! blocking-socket ping-pong against the same peer.
//!
//! ```text
//! cargo run --release --example remoting_bench            # full run
//! cargo run --release --example remoting_bench -- --quick # short run
//! cargo run --release --example remoting_bench -- --only rocketmq   # or json
//! ```
//!
//! The peer answers every request by echoing its frame with the response flag set (patched in
//! place, no decoding), so the numbers are the client's cost plus the kernel's. Bodies are 128
//! bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::{RemotingCommand, SerializeType};
use rocketmq_mio::remoting::{pair, Completion, Handle, RemotingClient, RemotingConfig};

const BODY: usize = 128;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (sync_n, async_n) = if quick {
        (5_000, 200_000)
    } else {
        (50_000, 2_000_000)
    };
    let addr = spawn_peer();
    println!("remoting bench: {BODY}-byte bodies, peer {addr}");
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "case", "msgs/s", "p50 µs", "p99 µs"
    );

    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.to_ascii_lowercase());
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        if only
            .as_ref()
            .is_some_and(|o| *o != format!("{st:?}").to_ascii_lowercase())
        {
            continue;
        }
        let client = RemotingClient::new(RemotingConfig {
            serialize_type: st,
            ..Default::default()
        })
        .expect("client");
        let label = format!("{st:?}");
        codec_only(st, sync_n / 5);
        report(
            &format!("codec only: encode + decode ({label})"),
            codec_only(st, sync_n * 4),
        );
        baseline(&addr, st, sync_n / 5);
        report(
            &format!("bare blocking ping-pong ({label})"),
            baseline(&addr, st, sync_n),
        );
        sync_round_trips(&client, &addr, sync_n / 5);
        report(
            &format!("invoke_sync, 1 caller ({label})"),
            sync_round_trips(&client, &addr, sync_n),
        );
        for window in [1024, 8192] {
            async_handles(&client, &addr, async_n / 10, window);
            report(
                &format!("invoke_async handles, {window} in flight ({label})"),
                async_handles(&client, &addr, async_n, window),
            );
        }
        async_callbacks(&client, &addr, async_n / 10, 1024);
        report(
            &format!("invoke_async callbacks, 1024 in flight ({label})"),
            async_callbacks(&client, &addr, async_n, 1024),
        );
        client.shutdown();
    }
}

struct Run {
    n: usize,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

fn report(case: &str, mut run: Run) {
    run.latencies_ns.sort_unstable();
    let pct = |p: f64| {
        let i = ((run.latencies_ns.len() as f64 - 1.0) * p) as usize;
        run.latencies_ns[i] as f64 / 1000.0
    };
    println!(
        "{:<44} {:>12.0} {:>10.1} {:>10.1}",
        case,
        run.n as f64 / run.elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
}

fn request(st: SerializeType) -> RemotingCommand {
    let mut r = RemotingCommand::request(310).with_body(vec![b'x'; BODY]);
    r.ext_fields.insert("a", "bench-group");
    r.ext_fields.insert("b", "bench-topic");
    r.serialize_type = st;
    r
}

/// What the client and the loop spend on the codec per request: encode the request, decode a
/// response frame (on one thread, no I/O).
fn codec_only(st: SerializeType, n: usize) -> Run {
    let mut response_frame = request(st).to_frame().expect("encode");
    set_response_flag(&mut response_frame[4..]);
    let mut latencies_ns = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let frame = request(st).to_frame().expect("encode");
        let resp = RemotingCommand::decode(&response_frame).expect("decode");
        std::hint::black_box((frame, resp));
        latencies_ns.push(t.elapsed().as_nanos() as u64);
    }
    Run {
        n,
        elapsed: start.elapsed(),
        latencies_ns,
    }
}

fn baseline(addr: &str, st: SerializeType, n: usize) -> Run {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let frame = request(st).to_frame().expect("encode");
    let mut back = vec![0u8; frame.len()];
    let mut latencies_ns = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        stream.write_all(&frame).expect("write");
        stream.read_exact(&mut back).expect("read");
        latencies_ns.push(t.elapsed().as_nanos() as u64);
    }
    Run {
        n,
        elapsed: start.elapsed(),
        latencies_ns,
    }
}

fn sync_round_trips(client: &RemotingClient, addr: &str, n: usize) -> Run {
    let timeout = Duration::from_secs(10);
    let mut latencies_ns = Vec::with_capacity(n);
    let st = client.config().serialize_type;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let resp = client
            .invoke_sync(addr, request(st), timeout)
            .expect("round trip");
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        debug_assert_eq!(resp.body.len(), BODY);
    }
    Run {
        n,
        elapsed: start.elapsed(),
        latencies_ns,
    }
}

/// One thread keeps `window` handles in flight and waits on the oldest; latency is taken when
/// the wait returns (an upper bound: responses come back in order).
fn async_handles(client: &RemotingClient, addr: &str, n: usize, window: usize) -> Run {
    let timeout = Duration::from_secs(10);
    let st = client.config().serialize_type;
    let mut in_flight: std::collections::VecDeque<(Instant, Handle<RemotingCommand>)> =
        std::collections::VecDeque::with_capacity(window);
    let mut latencies_ns = Vec::with_capacity(n);
    let start = Instant::now();
    let finish = |(t, h): (Instant, Handle<RemotingCommand>), lat: &mut Vec<u64>| {
        h.wait().expect("response");
        lat.push(t.elapsed().as_nanos() as u64);
    };
    for _ in 0..n {
        if in_flight.len() == window {
            let oldest = in_flight.pop_front().expect("window is full");
            finish(oldest, &mut latencies_ns);
        }
        let (c, h) = pair();
        let t = Instant::now();
        client.invoke_async(addr, request(st), timeout, Completion::Handle(c));
        in_flight.push_back((t, h));
    }
    while let Some(oldest) = in_flight.pop_front() {
        finish(oldest, &mut latencies_ns);
    }
    Run {
        n,
        elapsed: start.elapsed(),
        latencies_ns,
    }
}

/// One thread sends with callbacks, `window` at most in flight; each callback records its
/// request's latency.
fn async_callbacks(client: &RemotingClient, addr: &str, n: usize, window: usize) -> Run {
    let timeout = Duration::from_secs(10);
    let st = client.config().serialize_type;
    let latencies: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    let start = Instant::now();
    for i in 0..n {
        permit_tx.send(()).expect("permit");
        let t = Instant::now();
        let (latencies, done, permit_rx) = (latencies.clone(), done.clone(), permit_rx.clone());
        client.invoke_async(
            addr,
            request(st),
            timeout,
            Completion::Callback(Box::new(move |r| {
                r.expect("response");
                latencies[i].store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Release);
                let _ = permit_rx.try_recv();
            })),
        );
    }
    while done.load(Ordering::Acquire) < n {
        thread::yield_now();
    }
    let elapsed = start.elapsed();
    Run {
        n,
        elapsed,
        latencies_ns: latencies
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect(),
    }
}

/// A peer that answers each request with its own frame, response flag set.
fn spawn_peer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
        match stream.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        let first = start;
        while end - start >= 4 {
            let total =
                u32::from_be_bytes(buf[start..start + 4].try_into().expect("4 bytes")) as usize;
            if end - start < 4 + total {
                break;
            }
            set_response_flag(&mut buf[start + 4..start + 4 + total]);
            start += 4 + total;
        }
        if start > first && stream.write_all(&buf[first..start]).is_err() {
            return;
        }
        if start == end {
            start = 0;
            end = 0;
        }
    }
}

fn set_response_flag(frame: &mut [u8]) {
    let proto = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    let header_len = (proto & 0x00FF_FFFF) as usize;
    let header = &mut frame[4..4 + header_len];
    if proto >> 24 == 1 {
        // Binary header: code(2) language(1) version(2) opaque(4) flag(4).
        header[12] |= 1;
    } else {
        let key = b"\"flag\":";
        if let Some(i) = header.windows(key.len()).position(|w| w == key) {
            // Requests are sent with flag 0; a one-digit change keeps the length.
            header[i + key.len()] = b'1';
        }
    }
}
