//! Heap allocations per send on the producer's side, in steady state, pinned.
//!
//! The broker runs in a child process (this same binary, started with `ALLOC_COUNT_MOCK=1`),
//! so every allocation the counting allocator sees here is the producer's: the sending
//! thread, the `rocketmq-io` event loop and the `rocketmq-callback` pool. Messages are built
//! before the measured window; only the calls are measured. The sending thread's allocations
//! are also counted on their own (a thread-local counter), so the numbers say where they are.
//!
//! Pinned: 0 per send in every mode (synchronous, asynchronous with a handle, callback,
//! oneway, signed, synchronous in the binary ROCKETMQ header layout). What they were, and
//! what removed them:
//! - the `SendResult` handed back: nothing; its ids are inline `IdStr`s read straight from the
//!   response's ext fields (they were 4 `String`s);
//! - the decoded response: nothing once warm; its `ExtFields` are the raw text of the
//!   header's fields (no map is built unless something reads it as one), held in the buffer
//!   of a dropped one (they were 2 allocations on the I/O thread; the binary layout's were 2
//!   more);
//! - preparing the message: nothing; the `UNIQ_KEY` id is an inline `IdStr`, the properties
//!   string is held inline (up to 192 bytes) and the wire topic is the message's own topic
//!   unless a namespace changes it (they were 3 `String`s);
//! - the broker address: nothing; the route cache hands out a shared `Arc<str>` (it was a
//!   `String` per attempt);
//! - the completion: nothing; the `Arc` shared by a handle and its completer is reused from
//!   a per-thread pool of spent ones (it was one allocation);
//! - asynchronous sends: nothing more; the send's state is boxed once and the box is reused
//!   by later sends (a free list), and that box is the request's response callback itself
//!   (no closure box). They were 2;
//! - the command to the event loop: nothing; its queue is a pair of deques that trade places
//!   and keep their capacity (a crossbeam list channel allocated a block every 31 commands:
//!   0.03 per send in every mode);
//! - callbacks: nothing; the user's callback is held in a box reused for the next callback of
//!   its closure type (a per-producer pool keyed by type), carried in the recycled send
//!   state, and the callback pool's task is that same box (with the result and the in-flight
//!   hold in it), queued on a deque that keeps its capacity. They were 2 (the boxed callback
//!   and the boxed pool task) and 0.03 (the pool's channel blocks);
//! - oneway sends: nothing, while the socket keeps up (see `oneway_send`: unpaced, frames
//!   pile up and the frame pool runs dry).
//!
//! The request frame (encoded straight from the prepared message into a pooled buffer), the
//! read buffers and the pending-request table allocate nothing once warm. Signing a send (ACL
//! credentials) adds nothing either: the HMAC state and the base64 signature live on the stack.

// The counting allocator needs `unsafe impl GlobalAlloc`; unsafe code is denied by default.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer, SerializeType};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread being torn down has no thread-locals left.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const-initialized thread-local (neither allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Below this many allocations per send counts as none (see the pins at the end of `main`).
/// The pins hold in release builds (the measurement). Debug builds send 2,000 messages per
/// window after as short a warm-up, slowly enough that on a loaded machine finished sends
/// wait longer to be recycled and free lists and queues still grow to new high-water marks
/// (0.12 per async send was seen): they only catch an allocation in every send or two.
const ZERO: f64 = if cfg!(debug_assertions) { 0.5 } else { 0.005 };

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per send, process-wide and on the sending thread alone.
#[derive(Debug, Clone, Copy)]
struct PerSend {
    total: f64,
    sending_thread: f64,
}

fn measure(n: usize, mut send: impl FnMut(Message)) -> PerSend {
    let msgs: Vec<Message> = (0..n)
        .map(|_| Message::new("AllocTopic", vec![b'x'; 128]))
        .collect();
    let total = ALLOCS.load(Ordering::Relaxed);
    let own = THREAD_ALLOCS.with(Cell::get);
    for m in msgs {
        send(m);
    }
    PerSend {
        total: (ALLOCS.load(Ordering::Relaxed) - total) as f64 / n as f64,
        sending_thread: (THREAD_ALLOCS.with(Cell::get) - own) as f64 / n as f64,
    }
}

/// Child mode: serve a MockBroker until stdin closes.
fn serve_mock() {
    let broker = MockBroker::builder()
        .keep_messages(false)
        .start()
        .expect("mock starts");
    println!("{}", broker.namesrv_addr());
    std::io::stdout().flush().ok();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(broker);
}

fn main() {
    if std::env::var_os("ALLOC_COUNT_MOCK").is_some() {
        return serve_mock();
    }
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env("ALLOC_COUNT_MOCK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mock process starts");
    let mut addr = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut addr)
        .expect("mock address");
    let addr = addr.trim().to_string();

    let producer = Producer::builder("GID_ALLOC")
        .name_server(addr.as_str())
        .send_timeout(Duration::from_secs(30))
        .stats(false)
        .start()
        .expect("producer starts");
    // 100,000 sends per mode after as many of warm-up (release builds; debug ones: 2,000).
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        100_000
    };

    // Warm-up: routes, connection, buffers, pools, channel blocks.
    measure(n, |m| {
        producer.send(m).expect("sent");
    });
    let sync = measure(n, |m| {
        producer.send(m).expect("sent");
    });

    let window = 64;
    let async_send = |n: usize| {
        let mut pending = std::collections::VecDeque::with_capacity(window);
        measure(n, |m| {
            if pending.len() == window {
                let h: rocketmq_mio::SendHandle = pending.pop_front().expect("a handle");
                h.wait().expect("sent");
            }
            pending.push_back(producer.send_async(m));
        })
    };
    async_send(n);
    let asynchronous = async_send(n);

    // Callbacks, at most `window` in flight: the sending thread waits (yielding, which
    // allocates nothing) for the callbacks to catch up.
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let callback_send = |n: usize| {
        let sent = std::cell::Cell::new(0u64);
        let per_send = measure(n, |m| {
            while sent.get() - done.load(Ordering::Acquire) >= window as u64 {
                std::thread::yield_now();
            }
            let done = done.clone();
            producer.send_with_callback(m, move |r| {
                r.expect("sent");
                done.fetch_add(1, Ordering::Release);
            });
            sent.set(sent.get() + 1);
        });
        // Every callback has run before the next window (bounded by the send timeout).
        while sent.get() > done.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        done.store(0, Ordering::Release);
        per_send
    };
    callback_send(n);
    let callback = callback_send(n);

    // Oneway: nothing comes back, and nothing holds the sender back: unpaced, a release
    // build queues frames faster than the socket takes them, the frame pool runs dry and new
    // frame buffers are allocated (about 2.5 per send here). Steady state is a socket that
    // keeps up: every 64th send is a synchronous one (its allocations, if any, are in
    // the count, spread over the 64).
    let oneway_send = |n: usize| {
        let mut i = 0usize;
        measure(n, |m| {
            i += 1;
            if i % window == 0 {
                producer.send(m).expect("sent");
            } else {
                producer.send_oneway(m).expect("queued");
            }
        })
    };
    oneway_send(n);
    let oneway = oneway_send(n);

    producer
        .shutdown(Duration::from_secs(10))
        .expect("shuts down");

    // Signed sends (ACL credentials): the signature is computed and written on the stack.
    let signed_producer = Producer::builder("GID_ALLOC_ACL")
        .name_server(addr.as_str())
        .send_timeout(Duration::from_secs(30))
        .stats(false)
        .credentials("alloc-ak", "alloc-sk")
        .start()
        .expect("producer starts");
    measure(n, |m| {
        signed_producer.send(m).expect("sent");
    });
    let signed = measure(n, |m| {
        signed_producer.send(m).expect("sent");
    });
    signed_producer
        .shutdown(Duration::from_secs(10))
        .expect("shuts down");

    // The binary ROCKETMQ header layout both ways: its response's ext fields are kept as the
    // raw map (a recycled buffer), like a JSON response's.
    let binary_producer = Producer::builder("GID_ALLOC_BINARY")
        .name_server(addr.as_str())
        .send_timeout(Duration::from_secs(30))
        .stats(false)
        .serialize_type(SerializeType::RocketMq)
        .start()
        .expect("producer starts");
    measure(n, |m| {
        binary_producer.send(m).expect("sent");
    });
    let binary = measure(n, |m| {
        binary_producer.send(m).expect("sent");
    });
    binary_producer
        .shutdown(Duration::from_secs(10))
        .expect("shuts down");
    drop(child.stdin.take());
    let _ = child.wait();

    // Pinned: 0 per send in every mode. A stray allocation of the producer's background work
    // (a route refresh or heartbeat of the service thread) may land in a window: fewer than
    // one per 200 sends passes, a per-send or per-31-sends allocation fails.
    println!("allocations per send, steady state:");
    let modes = [
        ("sync", sync),
        ("async", asynchronous),
        ("callback", callback),
        ("oneway", oneway),
        ("signed sync", signed),
        ("rocketmq sync", binary),
    ];
    for (mode, per_send) in modes {
        println!(
            "{mode:>12}: {:.4} allocations per send ({:.4} on the sending thread)",
            per_send.total, per_send.sending_thread
        );
    }
    for (mode, per_send) in modes {
        assert!(
            per_send.total < ZERO,
            "{mode} sends allocate {:.4} times each (pinned at 0)",
            per_send.total
        );
    }
}
