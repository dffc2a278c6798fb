//! Throughput and latency of the producer, and of a raw socket client as the ceiling.
//!
//! ```text
//! cargo run --release --example bench -- --mode async --in-flight 1024 --duration 10 --raw
//! cargo run --release --example bench -- --mode sync --raw
//! cargo run --release --example bench -- --namesrv 127.0.0.1:9876 --topic BenchTopic --mode oneway
//! cargo run --release --features tls --example bench -- --mode async --tls
//! ```
//!
//! Flags (all optional):
//!
//! | flag | default | meaning |
//! | --- | --- | --- |
//! | `--namesrv ADDR` | embedded `MockBroker` | name server to use; without it, a MockBroker is started in this process |
//! | `--topic NAME` | `BenchTopic` | topic to send to |
//! | `--mode M` | `async` | `sync`, `async` (handles), `callback`, `oneway` or `batch` (explicit `send_batch`) |
//! | `--threads N` | 1 | sending threads |
//! | `--size BYTES` | 128 | body size |
//! | `--in-flight N` | 1024 | async/callback window, shared by the threads (each gets N / threads) |
//! | `--batch N` | 16 | messages per `send_batch` in batch mode |
//! | `--duration SECS` | 10 | measured time per phase (after `--warmup`) |
//! | `--count N` | | send N messages per phase instead of running for a duration |
//! | `--warmup SECS` | 1 | unmeasured run before each phase |
//! | `--raw` | off | first run the same load as pre-encoded frames over a plain socket: the ceiling |
//! | `--raw-only` | off | run only the raw phase |
//! | `--auto-batch` | off | turn the producer's auto-batching on |
//! | `--io-threads N` | 1 | producer event-loop threads |
//! | `--busy-poll MICROS` | 0 | the producer's `busy_poll`: a sync send spins that long on its result before parking (the raw client is unchanged) |
//! | `--json` | off | print the summary as JSON on stdout |
//! | `--serialize-type T` | `json` | header layout of the requests, `json` or `rocketmq` (binary), for the client and the raw phase (the embedded MockBroker answers in the request's layout) |
//! | `--tls` | off | TLS to every node (crate feature `tls`); the embedded MockBroker then serves TLS only, with the test certificates of `tests/data/tls` |
//! | `--tls-ca FILE` | `tests/data/tls/ca.pem` | CA file to verify the nodes with, under `--tls` |
//! | `--tls-insecure` | off | under `--tls`, do not verify certificates (a self-signed test cluster) |
//! | `--hooks N` | 0 | register N send hooks that read what a trace hook reads (ids, topic, tags, keys, body length, broker, queue, latency, result), to measure what hooks cost |
//!
//! A progress line goes to stderr every second: messages per second and MB per second in that
//! second, latency p50 and p99 of the phase so far, errors so far.
//!
//! # What is measured
//!
//! - Throughput: messages completed in the phase divided by the phase's time, which ends when
//!   the last response of the phase has arrived (in-flight sends are drained, not dropped).
//!   Oneway phases end with one synchronous send on the same connection, answered only after
//!   every oneway message before it was processed, so queued bytes count too.
//! - Latency: from the call (or from writing the frame, for raw) to its result. With handles
//!   (async) the result is seen when the sending thread waits on the oldest handle, which is
//!   how an application using a window sees it. For oneway, the time of the `send_oneway` call.
//! - Raw: the request frames are encoded once before the phase (only the opaque is patched in
//!   place), written to a plain socket per thread and their responses only split into frames
//!   and matched by opaque: no client logic at all. Async raw runs one non-blocking loop per
//!   thread with the same window; sync raw writes one frame and reads its response.
//!
//! The embedded MockBroker keeps no message bodies (`keep_messages(false)`), so memory stays
//! flat however long the run.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_mio::protocol::header::{
    CommandHeader, GetRouteInfoRequestHeader, SendMessageRequestHeader,
};
use rocketmq_mio::protocol::message_codec;
use rocketmq_mio::protocol::route::TopicRouteData;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode, ResponseCode};
use rocketmq_mio::remoting::{RemotingClient, RemotingConfig};
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{ErrorKind, Message, Producer, SerializeType};

mod raw_header;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Async,
    Callback,
    Oneway,
    Batch,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::Callback => "callback",
            Mode::Oneway => "oneway",
            Mode::Batch => "batch",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    namesrv: Option<String>,
    topic: String,
    mode: Mode,
    threads: usize,
    size: usize,
    in_flight: usize,
    batch: usize,
    duration: Duration,
    count: Option<u64>,
    warmup: Duration,
    raw: bool,
    raw_only: bool,
    auto_batch: bool,
    io_threads: usize,
    /// `ProducerConfig::busy_poll` of the client (the raw client is unchanged).
    busy_poll: Duration,
    json: bool,
    serialize_type: SerializeType,
    tls: bool,
    tls_ca: Option<String>,
    tls_insecure: bool,
    hooks: usize,
}

const USAGE: &str = "usage: bench [--namesrv ADDR] [--topic NAME] \
[--mode sync|async|callback|oneway|batch] [--threads N] [--size BYTES] [--in-flight N] \
[--batch N] [--duration SECS | --count N] [--warmup SECS] [--raw] [--raw-only] \
[--auto-batch] [--io-threads N] [--busy-poll MICROS] [--json] [--serialize-type json|rocketmq] \
[--tls [--tls-ca FILE | --tls-insecure]] [--hooks N]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        namesrv: None,
        topic: "BenchTopic".into(),
        mode: Mode::Async,
        threads: 1,
        size: 128,
        in_flight: 1024,
        batch: 16,
        duration: Duration::from_secs(10),
        count: None,
        warmup: Duration::from_secs(1),
        raw: false,
        raw_only: false,
        auto_batch: false,
        io_threads: 1,
        busy_poll: Duration::ZERO,
        json: false,
        serialize_type: SerializeType::Json,
        tls: false,
        tls_ca: None,
        tls_insecure: false,
        hooks: 0,
    };
    let mut it = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
    }
    fn secs(flag: &str, v: Option<String>) -> Result<Duration, String> {
        let s: f64 = num(flag, v)?;
        if !(0.0..1e6).contains(&s) {
            return Err(format!("{flag}: out of range"));
        }
        Ok(Duration::from_secs_f64(s))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--namesrv" => a.namesrv = Some(it.next().ok_or("--namesrv needs a value")?),
            "--topic" => a.topic = it.next().ok_or("--topic needs a value")?,
            "--mode" => {
                a.mode = match it.next().as_deref() {
                    Some("sync") => Mode::Sync,
                    Some("async") => Mode::Async,
                    Some("callback") => Mode::Callback,
                    Some("oneway") => Mode::Oneway,
                    Some("batch") => Mode::Batch,
                    other => return Err(format!("--mode: unknown mode {other:?}")),
                }
            }
            "--threads" => a.threads = num(&flag, it.next())?,
            "--size" => a.size = num(&flag, it.next())?,
            "--in-flight" => a.in_flight = num(&flag, it.next())?,
            "--batch" => a.batch = num(&flag, it.next())?,
            "--duration" => a.duration = secs(&flag, it.next())?,
            "--count" => a.count = Some(num(&flag, it.next())?),
            "--warmup" => a.warmup = secs(&flag, it.next())?,
            "--raw" => a.raw = true,
            "--raw-only" => {
                a.raw = true;
                a.raw_only = true;
            }
            "--auto-batch" => a.auto_batch = true,
            "--io-threads" => a.io_threads = num(&flag, it.next())?,
            "--busy-poll" => a.busy_poll = Duration::from_micros(num(&flag, it.next())?),
            "--json" => a.json = true,
            "--serialize-type" => {
                let v = it.next().ok_or("--serialize-type needs a value")?;
                a.serialize_type = v
                    .parse()
                    .map_err(|_| format!("--serialize-type: {v:?} is not json or rocketmq"))?;
            }
            "--tls" => a.tls = true,
            "--tls-ca" => a.tls_ca = Some(it.next().ok_or("--tls-ca needs a value")?),
            "--tls-insecure" => a.tls_insecure = true,
            "--hooks" => a.hooks = num(&flag, it.next())?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if a.threads == 0 || a.size == 0 || a.in_flight == 0 || a.batch == 0 || a.io_threads == 0 {
        return Err("--threads, --size, --in-flight, --batch and --io-threads must be > 0".into());
    }
    if (a.tls_ca.is_some() || a.tls_insecure) && !a.tls {
        return Err("--tls-ca and --tls-insecure need --tls".into());
    }
    if a.tls && a.raw {
        return Err("--raw speaks plain TCP: it cannot run with --tls".into());
    }
    if a.tls && !cfg!(feature = "tls") {
        return Err(
            "--tls needs the crate feature: cargo run --release --features tls --example bench"
                .into(),
        );
    }
    if a.in_flight < a.threads {
        a.in_flight = a.threads;
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Statistics: a lock-free log-linear histogram (16 buckets per power of two, ~6 % precision).

const SUB_BITS: u32 = 4;
const BUCKETS: usize = 64 << SUB_BITS;

fn bucket_of(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) as usize & ((1 << SUB_BITS) - 1);
    (((shift + 1) as usize) << SUB_BITS) | sub
}

/// The middle of a bucket, in nanoseconds.
fn bucket_value(i: usize) -> u64 {
    if i < (1 << SUB_BITS) {
        return i as u64;
    }
    let shift = (i >> SUB_BITS) as u32 - 1;
    let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
    let low = ((1 << SUB_BITS) | sub) << shift;
    low + (1u64 << shift) / 2
}

struct Stats {
    msgs: AtomicU64,
    errors: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Arc::new(Stats {
            msgs: AtomicU64::new(0),
            errors: (0..ErrorKind::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        })
    }

    fn ok(&self, msgs: u64, latency: Duration) {
        self.msgs.fetch_add(msgs, Ordering::Relaxed);
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    fn err(&self, kind: ErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn error_count(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Ordering::Relaxed)).sum()
    }

    fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

fn percentile(counts: &[u64], q: f64) -> Duration {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let target = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= target {
            return Duration::from_nanos(bucket_value(i));
        }
    }
    Duration::ZERO
}

// ---------------------------------------------------------------------------------------------
// CPU time per thread group (from /proc; Linux only, zero elsewhere): the load-independent
// cost of a message.

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The group a thread's name puts it in.
fn group_of(comm: &str) -> &'static str {
    if comm.starts_with("mock-") {
        "broker"
    } else if comm.starts_with("rocketmq-io") {
        "io"
    } else if comm.starts_with("rocketmq-callba") {
        "callback"
    } else if comm.starts_with("rocketmq-") {
        "library-other"
    } else {
        "other"
    }
}

/// CPU nanoseconds of every live thread of this process: (thread id, group, ns).
fn cpu_by_thread() -> Vec<(String, &'static str, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let tid = task.file_name().to_string_lossy().into_owned();
        out.push((tid, group_of(comm.trim()), ns));
    }
    out
}

/// CPU time used between two snapshots, by group (threads that ended in between are lost,
/// which is why raw sockets stay open until the second snapshot).
fn cpu_delta(
    before: &[(String, &'static str, u64)],
    after: &[(String, &'static str, u64)],
) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for (tid, g, a) in after {
        if *g == "other" {
            continue;
        }
        let b = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |(_, _, v)| *v);
        match out.iter_mut().find(|(k, _)| k == g) {
            Some((_, v)) => *v += a.saturating_sub(b),
            None => out.push((g.to_string(), a.saturating_sub(b))),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Phases.

/// What a worker shares with the phase: its stats, the stop flag and the message budget.
struct Ctx {
    stats: Arc<Stats>,
    stop: AtomicBool,
    /// Messages left to send, in count mode.
    remaining: Option<AtomicU64>,
    /// Raw sockets, closed only after the phase's CPU time is read (the broker's connection
    /// thread ends with its socket).
    keep: Mutex<Vec<Box<dyn Send>>>,
}

impl Ctx {
    fn keep_until_end<T: Send + 'static>(&self, v: T) {
        self.keep
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(v));
    }
}

impl Ctx {
    /// Whether to send `n` more messages.
    fn take(&self, n: u64) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(r) => r
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(n)
                })
                .is_ok(),
        }
    }
}

#[derive(Debug, Clone)]
struct PhaseResult {
    name: String,
    msgs: u64,
    elapsed: Duration,
    counts: Vec<u64>,
    max: Duration,
    errors: Vec<(ErrorKind, u64)>,
    /// CPU nanoseconds by thread group during the phase (workers measured by themselves).
    cpu: Vec<(String, u64)>,
}

impl PhaseResult {
    /// CPU microseconds per message of a group.
    fn cpu_per_msg(&self, group: &str) -> f64 {
        let ns = self
            .cpu
            .iter()
            .find(|(g, _)| g == group)
            .map_or(0, |(_, v)| *v);
        ns as f64 / 1e3 / (self.msgs.max(1) as f64)
    }

    fn rate(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn p(&self, q: f64) -> Duration {
        // A bucket's middle can lie above the largest value seen.
        percentile(&self.counts, q).min(self.max)
    }
}

/// Runs `worker` on `threads` threads until the duration or count is done, printing progress;
/// then `finish` (a drain barrier) before the clock stops.
fn run_phase<W, F>(
    name: &str,
    args: &Args,
    run: Duration,
    quiet: bool,
    worker: W,
    finish: F,
) -> PhaseResult
where
    W: Fn(&Ctx, usize) + Sync,
    F: FnOnce(),
{
    let ctx = Ctx {
        stats: Stats::new(),
        stop: AtomicBool::new(false),
        remaining: args.count.filter(|_| !quiet).map(AtomicU64::new),
        keep: Mutex::new(Vec::new()),
    };
    let done = AtomicUsize::new(0);
    let worker_cpu = AtomicU64::new(0);
    let cpu_before = cpu_by_thread();
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..args.threads {
            let (ctx, done, worker, worker_cpu) = (&ctx, &done, &worker, &worker_cpu);
            let spawned = thread::Builder::new()
                .name(format!("bench-worker-{t}"))
                .spawn_scoped(s, move || {
                    let cpu = thread_cpu_ns();
                    worker(ctx, t);
                    worker_cpu.fetch_add(thread_cpu_ns().saturating_sub(cpu), Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Release);
                });
            if let Err(e) = spawned {
                eprintln!("cannot start a worker: {e}");
                done.fetch_add(1, Ordering::Release);
            }
        }
        let mut next_report = start + Duration::from_secs(1);
        let mut last_msgs = 0;
        let mut last_at = start;
        while done.load(Ordering::Acquire) < args.threads {
            thread::sleep(Duration::from_millis(5));
            let now = Instant::now();
            if ctx.remaining.is_none() && now - start >= run {
                ctx.stop.store(true, Ordering::Relaxed);
            }
            if now >= next_report && !quiet {
                let msgs = ctx.stats.msgs.load(Ordering::Relaxed);
                let secs = (now - last_at).as_secs_f64();
                let rate = (msgs - last_msgs) as f64 / secs;
                let counts = ctx.stats.snapshot();
                eprintln!(
                    "{name:>6} {:>5.1}s {:>10.0} msg/s {:>8.1} MB/s  p50 {:>9}  p99 {:>9}  errors {}",
                    (now - start).as_secs_f64(),
                    rate,
                    rate * args.size as f64 / 1e6,
                    fmt_dur(percentile(&counts, 0.5)),
                    fmt_dur(percentile(&counts, 0.99)),
                    ctx.stats.error_count()
                );
                last_msgs = msgs;
                last_at = now;
                next_report += Duration::from_secs(1);
            }
        }
    });
    finish();
    let elapsed = start.elapsed();
    let mut cpu = cpu_delta(&cpu_before, &cpu_by_thread());
    cpu.push(("workers".into(), worker_cpu.load(Ordering::Relaxed)));
    drop(std::mem::take(
        &mut *ctx.keep.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    PhaseResult {
        cpu,
        name: name.to_string(),
        msgs: ctx.stats.msgs.load(Ordering::Relaxed),
        elapsed,
        counts: ctx.stats.snapshot(),
        max: Duration::from_nanos(ctx.stats.max.load(Ordering::Relaxed)),
        errors: ErrorKind::ALL
            .iter()
            .map(|k| (*k, ctx.stats.errors[k.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect(),
    }
}

/// A warm-up run (not reported), then the measured one.
fn phase<W, F, G>(name: &str, args: &Args, worker: W, mut finish: G) -> PhaseResult
where
    W: Fn(&Ctx, usize) + Sync,
    G: FnMut() -> F,
    F: FnOnce(),
{
    if !args.warmup.is_zero() {
        run_phase(name, args, args.warmup, true, &worker, finish());
    }
    run_phase(name, args, args.duration, false, &worker, finish())
}

// ---------------------------------------------------------------------------------------------
// The client phases.

fn client_worker(producer: &Producer, args: &Args, msg: &Message) -> impl Fn(&Ctx, usize) + Sync {
    let producer = producer.clone();
    let args = args.clone();
    let msg = msg.clone();
    move |ctx: &Ctx, _t: usize| {
        let stats = &ctx.stats;
        let window = (args.in_flight / args.threads).max(1);
        match args.mode {
            Mode::Sync => {
                while ctx.take(1) {
                    let t = Instant::now();
                    match producer.send(msg.clone()) {
                        Ok(_) => stats.ok(1, t.elapsed()),
                        Err(e) => stats.err(e.kind()),
                    }
                }
            }
            Mode::Oneway => {
                while ctx.take(1) {
                    let t = Instant::now();
                    match producer.send_oneway(msg.clone()) {
                        Ok(()) => stats.ok(1, t.elapsed()),
                        Err(e) => stats.err(e.kind()),
                    }
                }
            }
            Mode::Batch => {
                let n = args.batch as u64;
                while ctx.take(n) {
                    let batch = vec![msg.clone(); args.batch];
                    let t = Instant::now();
                    match producer.send_batch(batch) {
                        Ok(_) => stats.ok(n, t.elapsed()),
                        Err(e) => stats.err(e.kind()),
                    }
                }
            }
            Mode::Async => {
                let mut pending = VecDeque::with_capacity(window);
                let settle = |(t, h): (Instant, rocketmq_mio::SendHandle)| match h.wait() {
                    Ok(_) => stats.ok(1, t.elapsed()),
                    Err(e) => stats.err(e.kind()),
                };
                while ctx.take(1) {
                    if pending.len() >= window {
                        if let Some(oldest) = pending.pop_front() {
                            settle(oldest);
                        }
                    }
                    let t = Instant::now();
                    pending.push_back((t, producer.send_async(msg.clone())));
                }
                pending.into_iter().for_each(settle);
            }
            Mode::Callback => {
                let slots = Arc::new((Mutex::new(0usize), Condvar::new()));
                while ctx.take(1) {
                    {
                        let (n, cv) = &*slots;
                        let mut n = n.lock().unwrap_or_else(|e| e.into_inner());
                        while *n >= window {
                            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
                        }
                        *n += 1;
                    }
                    let t = Instant::now();
                    let stats = stats.clone();
                    let slots = slots.clone();
                    producer.send_with_callback(msg.clone(), move |r| {
                        match r {
                            Ok(_) => stats.ok(1, t.elapsed()),
                            Err(e) => stats.err(e.kind()),
                        }
                        let (n, cv) = &*slots;
                        *n.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                        cv.notify_all();
                    });
                }
                let (n, cv) = &*slots;
                let mut n = n.lock().unwrap_or_else(|e| e.into_inner());
                while *n > 0 {
                    n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The raw phases: pre-encoded frames over a plain socket.

const OPAQUE_BASE: i32 = 1_000_000_000;

/// One pre-encoded request frame per queue; the opaque is at the offset kept with it: 10
/// digits in a JSON header, a big-endian i32 in a binary one (`binary`).
#[derive(Clone)]
struct RawFrames {
    frames: Vec<(Vec<u8>, usize)>,
    binary: bool,
}

impl RawFrames {
    fn new(args: &Args, broker_name: &str, queues: i32, oneway: bool) -> RawFrames {
        let born = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut frames = Vec::new();
        for q in 0..queues.max(1) {
            let batch = args.mode == Mode::Batch;
            let mut props = String::new();
            message_codec::encode_properties(
                [
                    ("UNIQ_KEY", "7F0000010001BENCHRAW0000000000"),
                    ("WAIT", "true"),
                ],
                &mut props,
            );
            let body = if batch {
                let msgs: Vec<Message> = (0..args.batch)
                    .map(|_| {
                        Message::new(args.topic.as_str(), vec![b'x'; args.size])
                            .with_property("UNIQ_KEY", "7F0000010001BENCHRAW0000000000")
                            .with_wait_store_msg_ok(true)
                    })
                    .collect();
                let mut body = Vec::new();
                message_codec::encode_batch(msgs.iter(), &mut body).expect("encodes a batch");
                props.clear();
                message_codec::encode_properties([("WAIT", "true")], &mut props);
                body
            } else {
                vec![b'x'; args.size]
            };
            let header = SendMessageRequestHeader {
                producer_group: "GID_BENCH_RAW".into(),
                topic: args.topic.clone(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 4,
                queue_id: q,
                sys_flag: 0,
                born_timestamp: born,
                flag: 0,
                properties: props,
                reconsume_times: Some(0),
                unit_mode: false,
                batch,
                max_reconsume_times: None,
                broker_name: Some(broker_name.to_string()),
            };
            let code = if batch {
                RequestCode::SEND_BATCH_MESSAGE
            } else {
                RequestCode::SEND_MESSAGE_V2
            };
            let mut cmd = RemotingCommand::request(code).with_body(body);
            header.write_v2(&mut cmd.ext_fields);
            cmd.opaque = OPAQUE_BASE;
            cmd.serialize_type = args.serialize_type;
            if oneway {
                cmd = cmd.into_oneway();
            }
            let frame = cmd.to_frame().expect("encodes");
            if args.serialize_type == SerializeType::RocketMq {
                // Length, type and header length, code i16, language u8, version i16: the
                // opaque follows.
                frames.push((frame, 8 + 5));
                continue;
            }
            let needle = format!("\"opaque\":{OPAQUE_BASE}");
            let at = frame
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("the opaque is in the header")
                + needle.len()
                - 10;
            frames.push((frame, at));
        }
        RawFrames {
            frames,
            binary: args.serialize_type == SerializeType::RocketMq,
        }
    }

    /// The frame for request `seq`, its opaque patched in.
    fn frame(&mut self, seq: u64) -> &[u8] {
        let n = self.frames.len();
        let (frame, at) = &mut self.frames[(seq % n as u64) as usize];
        if self.binary {
            let v = OPAQUE_BASE + (seq % OPAQUE_BASE as u64) as i32;
            frame[*at..*at + 4].copy_from_slice(&v.to_be_bytes());
            return frame;
        }
        let mut v = OPAQUE_BASE as u64 + seq % OPAQUE_BASE as u64;
        for i in (0..10).rev() {
            frame[*at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        frame
    }
}

/// Reads frames from a stream: whole frames are handed out as (code, opaque), read from the
/// header by [`raw_header`] (JSON or binary), a malformed one an `InvalidData` error.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader {
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// The next whole frame in the buffer as (code, opaque).
    fn next(&mut self) -> io::Result<Option<(i32, i32)>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 8 {
            return Ok(None);
        }
        let total = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize + 4;
        if total < 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame length {} is shorter than its header length",
                    total - 4
                ),
            ));
        }
        if total > self.buf.len() {
            self.buf.resize(total.next_power_of_two(), 0);
            return Ok(None);
        }
        if avail.len() < total {
            return Ok(None);
        }
        let proto = u32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]);
        let header_len = (proto & 0x00ff_ffff) as usize;
        let Some(header) = avail
            .get(8..8 + header_len)
            .filter(|_| header_len <= total - 8)
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("header length {header_len} exceeds the {total}-byte frame"),
            ));
        };
        let (code, opaque) = raw_header::code_and_opaque((proto >> 24) as u8, header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.start += total;
        Ok(Some((code, opaque)))
    }

    /// Reads once (blocking or not, as the stream is); `Ok(false)` on would-block.
    fn fill(&mut self, stream: &mut impl Read) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Blocks for the next frame.
    fn next_blocking(&mut self, stream: &mut TcpStream) -> io::Result<(i32, i32)> {
        loop {
            if let Some(f) = self.next()? {
                return Ok(f);
            }
            self.fill(stream)?;
        }
    }
}

fn record_raw(stats: &Stats, code: i32, msgs: u64, latency: Duration) {
    if code == ResponseCode::SUCCESS {
        stats.ok(msgs, latency);
    } else {
        stats.err(ErrorKind::Broker);
    }
}

/// One request at a time (sync and batch modes).
fn raw_sync(
    addr: SocketAddr,
    mut frames: RawFrames,
    msgs_per_frame: u64,
    ctx: &Ctx,
) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = FrameReader::new();
    let mut seq = 0u64;
    while ctx.take(msgs_per_frame) {
        let t = Instant::now();
        stream.write_all(frames.frame(seq))?;
        seq += 1;
        let (code, _) = reader.next_blocking(&mut stream)?;
        record_raw(&ctx.stats, code, msgs_per_frame, t.elapsed());
    }
    ctx.keep_until_end(stream);
    Ok(())
}

/// Oneway frames written back to back (32 per write), then one request answered after them.
fn raw_oneway(
    addr: SocketAddr,
    mut frames: RawFrames,
    mut barrier: RawFrames,
    ctx: &Ctx,
) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut seq = 0u64;
    let mut more = true;
    while more {
        out.clear();
        let t = Instant::now();
        let mut n = 0;
        while n < 32 {
            more = ctx.take(1);
            if !more {
                break;
            }
            out.extend_from_slice(frames.frame(seq));
            seq += 1;
            n += 1;
        }
        if n > 0 {
            stream.write_all(&out)?;
            let per = t.elapsed() / n;
            for _ in 0..n {
                ctx.stats.ok(1, per);
            }
        }
    }
    let mut reader = FrameReader::new();
    stream.write_all(barrier.frame(seq))?;
    reader.next_blocking(&mut stream)?;
    ctx.keep_until_end(stream);
    Ok(())
}

/// A window of `window` requests in flight, one non-blocking loop (async and callback modes).
fn raw_async(addr: SocketAddr, mut frames: RawFrames, window: usize, ctx: &Ctx) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    let std_stream = TcpStream::connect(addr)?;
    std_stream.set_nodelay(true)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = mio::net::TcpStream::from_std(std_stream);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    poll.registry().register(
        &mut stream,
        Token(0),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    let cap = (window * 2).next_power_of_two();
    let mut sent_at = vec![Instant::now(); cap];
    let mut reader = FrameReader::new();
    let mut out: Vec<u8> = Vec::with_capacity(window * 512);
    let mut out_pos = 0;
    let mut seq = 0u64;
    let mut outstanding = 0usize;
    let mut issuing = true;
    loop {
        // Refill the window.
        if out_pos == out.len() {
            out.clear();
            out_pos = 0;
        }
        while issuing && outstanding < window {
            if !ctx.take(1) {
                issuing = false;
                break;
            }
            out.extend_from_slice(frames.frame(seq));
            sent_at[(seq as usize) & (cap - 1)] = Instant::now();
            seq += 1;
            outstanding += 1;
        }
        // Write what we can.
        while out_pos < out.len() {
            match stream.write(&out[out_pos..]) {
                Ok(n) => out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if outstanding == 0 && !issuing {
            ctx.keep_until_end(stream);
            return Ok(());
        }
        // Read what there is.
        let mut got = false;
        while reader.fill(&mut stream)? {
            while let Some((code, opaque)) = reader.next()? {
                let seq = opaque.wrapping_sub(OPAQUE_BASE) as usize;
                record_raw(&ctx.stats, code, 1, sent_at[seq & (cap - 1)].elapsed());
                outstanding = outstanding.saturating_sub(1);
                got = true;
            }
        }
        if !got && (out_pos == out.len() || outstanding >= window || !issuing) {
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The first broker (with a master) that serves `topic`, and its write queue count.
fn broker_of(
    namesrv: &str,
    topic: &str,
) -> Result<(String, String, i32), Box<dyn std::error::Error>> {
    let client = RemotingClient::new(RemotingConfig::default())?;
    let mut request = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    GetRouteInfoRequestHeader::new(topic).write_to(&mut request.ext_fields);
    let addr = namesrv.split(';').next().unwrap_or(namesrv);
    let response = client.invoke_sync(addr, request, Duration::from_secs(3))?;
    client.shutdown();
    if response.code != ResponseCode::SUCCESS {
        return Err(format!(
            "route of {topic}: code {} {}",
            response.code,
            response.remark_str()
        )
        .into());
    }
    let route = TopicRouteData::from_json(&response.body)?;
    for b in &route.broker_datas {
        if let Some(addr) = b.master_addr() {
            let queues = route
                .queue_datas
                .iter()
                .find(|q| q.broker_name == b.broker_name)
                .map_or(4, |q| q.write_queue_nums);
            return Ok((b.broker_name.clone(), addr.to_string(), queues));
        }
    }
    Err(format!("no broker with a master serves {topic}").into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let load_before = loadavg();
    let (namesrv, _embedded) = match &args.namesrv {
        Some(a) => (a.clone(), None),
        None => {
            let builder = MockBroker::builder().keep_messages(false);
            #[cfg(feature = "tls")]
            let builder = if args.tls {
                builder.tls(rocketmq_mio::testing::MockTls::from_pem_files(
                    test_cert("server.pem"),
                    test_cert("server.key"),
                )?)?
            } else {
                builder
            };
            let broker = builder.start()?;
            (broker.namesrv_addr(), Some(broker))
        }
    };
    let broker_label = match &args.namesrv {
        Some(a) => format!("name server {a}"),
        None => format!("embedded MockBroker {namesrv}"),
    };
    let broker_label = if args.tls {
        format!("{broker_label} over TLS")
    } else {
        broker_label
    };
    let mut config = Producer::builder("GID_BENCH");
    if args.tls {
        config = config.tls(true);
        config = if args.tls_insecure {
            config.tls_insecure_skip_verify_for_testing(true)
        } else {
            config.tls_ca_file(args.tls_ca.clone().unwrap_or_else(|| test_cert("ca.pem")))
        };
    }
    for _ in 0..args.hooks {
        config = config.send_hook(Arc::new(ReadingHook::default()));
    }
    let producer = config
        .name_server(namesrv.as_str())
        .io_threads(args.io_threads)
        .busy_poll(args.busy_poll)
        .max_in_flight(
            args.in_flight
                .max(rocketmq_mio::config::DEFAULT_MAX_IN_FLIGHT),
        )
        .auto_batch(args.auto_batch)
        .serialize_type(args.serialize_type)
        .start()?;
    let msg = Message::new(args.topic.as_str(), vec![b'x'; args.size]);
    // Creates the topic (auto-create) and caches its route.
    producer.send(msg.clone())?;

    let mut results = Vec::new();
    if args.raw {
        let (broker_name, addr, queues) = broker_of(&namesrv, &args.topic)?;
        let addr: SocketAddr = addr.parse()?;
        let oneway = args.mode == Mode::Oneway;
        let frames = RawFrames::new(&args, &broker_name, queues, oneway);
        let barrier = RawFrames::new(&args, &broker_name, 1, false);
        let window = (args.in_flight / args.threads).max(1);
        let per_frame = if args.mode == Mode::Batch {
            args.batch as u64
        } else {
            1
        };
        let raw = phase(
            "raw",
            &args,
            |ctx: &Ctx, _t| {
                let frames = frames.clone();
                let result = match args.mode {
                    Mode::Sync | Mode::Batch => raw_sync(addr, frames, per_frame, ctx),
                    Mode::Oneway => raw_oneway(addr, frames, barrier.clone(), ctx),
                    Mode::Async | Mode::Callback => raw_async(addr, frames, window, ctx),
                };
                if let Err(e) = result {
                    eprintln!("raw worker: {e}");
                    ctx.stats.err(ErrorKind::Connection);
                }
            },
            || || {},
        );
        results.push(raw);
    }
    if !args.raw_only {
        let worker = client_worker(&producer, &args, &msg);
        let client = phase("client", &args, worker, || {
            let producer = producer.clone();
            let msg = msg.clone();
            let oneway = args.mode == Mode::Oneway;
            move || {
                // Oneway: a sync send on the same connection is answered after every message
                // queued before it.
                if oneway {
                    if let Err(e) = producer.send(msg) {
                        eprintln!("barrier send failed: {e}");
                    }
                }
            }
        });
        results.push(client);
    }
    producer.shutdown(Duration::from_secs(5))?;
    report(&args, &broker_label, &load_before, &results);
    Ok(())
}

/// A file of the crate's test certificates (`tests/data/tls`, scripts/tls-certs.sh).
fn test_cert(name: &str) -> String {
    format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn report(args: &Args, broker: &str, load_before: &str, results: &[PhaseResult]) {
    let load_after = loadavg();
    let raw = results.iter().find(|r| r.name == "raw");
    let client = results.iter().find(|r| r.name == "client");
    let ratio = match (raw, client) {
        (Some(r), Some(c)) if r.rate() > 0.0 => Some(c.rate() / r.rate()),
        _ => None,
    };
    let p99_ratio = match (raw, client) {
        (Some(r), Some(c)) if !r.p(0.99).is_zero() => {
            Some(c.p(0.99).as_secs_f64() / r.p(0.99).as_secs_f64())
        }
        _ => None,
    };
    if args.json {
        let phase = |r: &PhaseResult| {
            let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
            serde_json::json!({
                "msgs": r.msgs,
                "seconds": r.elapsed.as_secs_f64(),
                "msgs_per_sec": r.rate().round(),
                "mb_per_sec": (r.rate() * args.size as f64 / 1e4).round() / 100.0,
                "latency_us": {
                    "p50": us(r.p(0.5)), "p90": us(r.p(0.9)), "p99": us(r.p(0.99)),
                    "p999": us(r.p(0.999)), "max": us(r.max),
                },
                "errors": r.errors.iter().map(|(k, n)| (k.as_str().to_string(), serde_json::json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "cpu_us_per_msg": r.cpu.iter()
                    .map(|(g, _)| (g.clone(), serde_json::json!((r.cpu_per_msg(g) * 100.0).round() / 100.0)))
                    .collect::<serde_json::Map<_, _>>(),
            })
        };
        let mut phases = serde_json::Map::new();
        for r in results {
            phases.insert(r.name.clone(), phase(r));
        }
        let out = serde_json::json!({
            "mode": args.mode.name(),
            "threads": args.threads,
            "size": args.size,
            "in_flight": args.in_flight,
            "batch": args.batch,
            "auto_batch": args.auto_batch,
            "tls": args.tls,
            "hooks": args.hooks,
            "serialize_type": args.serialize_type.as_str(),
            "broker": broker,
            "load_before": load_before,
            "load_after": load_after,
            "phases": phases,
            "client_over_raw": ratio,
            "p99_client_over_raw": p99_ratio,
        });
        println!("{out}");
        return;
    }
    println!(
        "mode {}, threads {}, size {} B, in-flight {}{}{}, {} headers, {}; load {} -> {}",
        args.mode.name(),
        args.threads,
        args.size,
        args.in_flight,
        if args.mode == Mode::Batch {
            format!(", batch {}", args.batch)
        } else {
            String::new()
        },
        if args.auto_batch {
            ", auto-batch on"
        } else {
            ""
        },
        args.serialize_type,
        broker,
        load_before,
        load_after
    );
    println!(
        "{:<7} {:>10} {:>7} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "phase", "msgs", "secs", "msg/s", "MB/s", "p50", "p90", "p99", "p99.9", "max"
    );
    for r in results {
        let errors = if r.errors.is_empty() {
            "none".to_string()
        } else {
            r.errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:<7} {:>10} {:>7.2} {:>11.0} {:>8.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            r.name,
            r.msgs,
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.rate() * args.size as f64 / 1e6,
            fmt_dur(r.p(0.5)),
            fmt_dur(r.p(0.9)),
            fmt_dur(r.p(0.99)),
            fmt_dur(r.p(0.999)),
            fmt_dur(r.max),
            errors
        );
    }
    for r in results {
        let mut line = format!("{:<7} CPU per message:", r.name);
        let mut own = 0.0;
        for (g, _) in &r.cpu {
            let v = r.cpu_per_msg(g);
            if g != "broker" {
                own += v;
            }
            line.push_str(&format!(" {g} {v:.2}µs,"));
        }
        line.push_str(&format!(" all but the broker {own:.2}µs"));
        println!("{line}");
    }
    if let Some(ratio) = ratio {
        print!("client/raw throughput: {:.1} %", ratio * 100.0);
        if let Some(p) = p99_ratio {
            print!(", p99 {p:.2}x raw");
        }
        println!();
    }
}

/// A send hook that reads what a trace hook reads, per message of each attempt (`--hooks`).
#[derive(Default)]
struct ReadingHook {
    seen: AtomicU64,
}

impl rocketmq_mio::SendHook for ReadingHook {
    fn name(&self) -> &str {
        "bench-reading-hook"
    }

    fn after_send(&self, ctx: &rocketmq_mio::hooks::AfterSendContext<'_>) {
        let mut n = ctx.latency().as_micros() as u64 + u64::from(ctx.attempt());
        n += (ctx.topic().len() + ctx.wire_topic().len() + ctx.broker_addr().len()) as u64;
        n += ctx.queue().queue_id() as u64 + u64::from(ctx.result().is_ok());
        for (m, id) in ctx.messages().iter().zip(ctx.msg_ids()) {
            n += (m.body().len() + id.len() + m.tags().map_or(0, str::len)) as u64;
            n += m.keys().count() as u64;
        }
        n += ctx.offset_msg_ids().count() as u64;
        self.seen.fetch_add(n.max(1), Ordering::Relaxed);
    }
}
