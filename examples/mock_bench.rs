//! How fast MockBroker answers pipelined sends: SEND_MESSAGE_V2 with 128-byte bodies from a
//! plain blocking socket (no producer, no event loop), a window of requests in flight.
//!
//! ```text
//! cargo run --release --example mock_bench                 # 1 connection, 2 000 000 sends
//! cargo run --release --example mock_bench -- --quick      # 200 000 sends
//! cargo run --release --example mock_bench -- --no-keep    # keep_messages(false)
//! cargo run --release --example mock_bench -- --conns 2    # 2 connections side by side
//! cargo run --release --example mock_bench -- --binary     # ROCKETMQ binary headers
//! ```
//!
//! A writer thread per connection encodes the requests ahead of time and writes them in 64 KiB
//! chunks while at most `--window` (default 4096) are unanswered; a reader thread per connection
//! frames every response and checks its code without a full decode (every 1024th is decoded and
//! its opaque checked), so the client costs little next to the broker.
//!
//! Two numbers come out: the wall-clock rate, which on a shared machine depends on what else
//! runs, and the CPU the broker's connection threads spent per send (from `/proc`, Linux), which
//! gives the rate one core sustains.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::header::SendMessageRequestHeader;
use rocketmq_mio::protocol::message_codec;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode, SerializeType};
use rocketmq_mio::testing::MockBroker;

const BODY: usize = 128;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// One encoded SEND_MESSAGE_V2 request frame with this opaque.
fn request(opaque: i32, queue: i32, binary: bool) -> Vec<u8> {
    let mut props = String::new();
    let uniq = format!("7F00000100002A9F0000000{opaque:09}");
    message_codec::encode_properties(
        [
            ("UNIQ_KEY", uniq.as_str()),
            ("WAIT", "true"),
            ("TAGS", "bench"),
        ],
        &mut props,
    );
    let header = SendMessageRequestHeader {
        producer_group: "GID_BENCH".into(),
        topic: "BenchTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: queue,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: props,
        reconsume_times: Some(0),
        unit_mode: false,
        batch: false,
        max_reconsume_times: None,
        broker_name: Some("broker-a".into()),
    };
    let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
    cmd.opaque = opaque;
    header.write_v2(&mut cmd.ext_fields);
    cmd.body = vec![b'x'; BODY];
    if binary {
        cmd.serialize_type = SerializeType::RocketMq;
    }
    cmd.to_frame().expect("encodable request")
}

/// Requests sent and answered on one connection; the writer waits on `more` while the window
/// is full.
struct Window {
    answered: Mutex<i64>,
    more: Condvar,
}

/// Sends `n` requests over one connection; returns when every response arrived, with the
/// connection still open (so its broker thread is still there to be measured).
fn run_connection(addr: &str, n: usize, window: i64, conn: usize, binary: bool) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = stream.try_clone().expect("clone");
    let state = Arc::new(Window {
        answered: Mutex::new(0),
        more: Condvar::new(),
    });
    let seen = state.clone();
    let read = thread::Builder::new()
        .name("bench-read".into())
        .spawn(move || {
            // Every response is framed and checked for code 0 without a full decode (the
            // client's CPU is not what is measured); every 1024th is decoded and its opaque
            // checked against the request order.
            let mut buf = vec![0u8; 256 * 1024];
            let mut pending: Vec<u8> = Vec::with_capacity(512 * 1024);
            let mut got = 0usize;
            while got < n {
                let k = reader.read(&mut buf).expect("read");
                assert!(k > 0, "broker closed the connection");
                pending.extend_from_slice(&buf[..k]);
                let mut pos = 0;
                while pending.len() - pos >= 4 {
                    let len =
                        u32::from_be_bytes(pending[pos..pos + 4].try_into().unwrap()) as usize;
                    if pending.len() - pos - 4 < len {
                        break;
                    }
                    let frame = &pending[pos..pos + 4 + len];
                    let success: &[u8] = if binary { &[0, 0] } else { b"{\"code\":0," };
                    assert!(
                        frame[8..].starts_with(success),
                        "not a success: {}",
                        String::from_utf8_lossy(&frame[8..])
                    );
                    got += 1;
                    if got % 1024 == 0 || got == n {
                        let r = RemotingCommand::decode(frame).expect("decodable response");
                        assert_eq!(r.code, ResponseCode::SUCCESS);
                        assert_eq!(r.opaque, got as i32, "responses in request order");
                    }
                    pos += 4 + len;
                }
                pending.drain(..pos);
                *seen.answered.lock().expect("window lock") = got as i64;
                seen.more.notify_one();
            }
        })
        .expect("reader thread");
    // Encode ahead of time so the writer measures the broker, not the encoder.
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| request(i as i32 + 1, ((i + conn) % 4) as i32, binary))
        .collect();
    let mut stream = stream;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for (sent, frame) in frames.iter().enumerate() {
        // Requests written so far (those in `chunk` included).
        let sent = sent as i64;
        if sent - *state.answered.lock().expect("window lock") >= window {
            if !chunk.is_empty() {
                stream.write_all(&chunk).expect("write");
                chunk.clear();
            }
            let mut answered = state.answered.lock().expect("window lock");
            while sent - *answered >= window {
                answered = state.more.wait(answered).expect("window lock");
            }
        }
        chunk.extend_from_slice(frame);
        if chunk.len() >= 64 * 1024 {
            stream.write_all(&chunk).expect("write");
            chunk.clear();
        }
    }
    stream.write_all(&chunk).expect("write");
    read.join().expect("reader");
    stream
}

/// CPU time (user + system) of this process's threads whose name starts with `prefix`, from
/// `/proc` (Linux; `None` elsewhere).
fn thread_cpu(prefix: &str) -> Option<Duration> {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the parenthesised name; utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        total += (utime + stime) / tick;
    }
    Some(Duration::from_secs_f64(total))
}

fn main() {
    let n: usize = if flag("--quick") {
        200_000
    } else {
        arg("--n").map_or(2_000_000, |s| s.parse().expect("--n N"))
    };
    let window: i64 = arg("--window").map_or(4096, |s| s.parse().expect("--window N"));
    let conns: usize = arg("--conns").map_or(1, |s| s.parse().expect("--conns N"));
    let keep = !flag("--no-keep");
    let binary = flag("--binary");
    let broker = MockBroker::builder()
        .topic("BenchTopic", 4)
        .keep_messages(keep)
        .start()
        .expect("mock broker");
    let addr = broker.broker_addr();
    println!(
        "mock_bench: SEND_MESSAGE_V2, {BODY}-byte bodies, {} headers, {n} per connection, \
         {conns} connection(s), window {window}, keep_messages({keep})",
        if binary { "ROCKETMQ" } else { "JSON" }
    );
    // Warm up: the first connection, page faults, the allocator.
    drop(run_connection(&addr, 20_000.min(n), window, 0, binary));
    // Until its broker thread has seen the close and exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.connection_count() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let before = broker.counters().messages_stored();
    let started = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            thread::spawn(move || run_connection(&addr, n, window, c, binary))
        })
        .collect();
    let streams: Vec<TcpStream> = workers
        .into_iter()
        .map(|w| w.join().expect("connection"))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let total = (n * conns) as f64;
    let stored = broker.counters().messages_stored() - before;
    assert_eq!(stored as usize, n * conns, "every send stored");
    println!(
        "{total:.0} sends answered in {secs:.3} s: {:.0} msgs/s",
        total / secs
    );
    // The warm-up connection's thread is gone; the ones left served this run.
    let cpu = thread_cpu("mock-conn");
    drop(streams);
    if let Some(after) = cpu {
        let per_msg = after.as_secs_f64() / total;
        println!(
            "mock connection threads: {:.2} s CPU, {:.2} µs per send: {:.0} sends/s per core",
            after.as_secs_f64(),
            per_msg * 1e6,
            1.0 / per_msg
        );
    }
}
