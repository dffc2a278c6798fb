//! Request-reply (RPC over RocketMQ): a requester sends a message and gets back the reply a
//! consumer of it sends with [`Producer::reply`].
//!
//! # How it works (protocol.md §12)
//!
//! 1. [`Producer::request`] (and its forms) adds `CORRELATION_ID` (a random id),
//!    `REPLY_TO_CLIENT` (this producer's client id) and `TTL` (the timeout in ms) to the
//!    message, and sends it through the ordinary send path (retries, statistics and send
//!    hooks as for any send). Before the first request to a broker (and again after its
//!    connection was lost) the producer sends it a heartbeat and waits for the answer, so that
//!    the broker knows the connection of our client id before the reply comes.
//! 2. A responder reads the request (a [`MessageExt`]), and calls [`Producer::reply`]: the
//!    reply goes to `<CLUSTER>_REPLY_TOPIC` with `MSG_TYPE=reply` and the request's
//!    `CORRELATION_ID`, `REPLY_TO_CLIENT` and `TTL`, sent with SEND_REPLY_MESSAGE_V2 (325).
//! 3. The broker pushes it to the requester's connection as PUSH_REPLY_MESSAGE_TO_CLIENT (326).
//!    The push is handled on the I/O thread that reads it (an inline handler of the remoting
//!    layer, never the callback pool, so a callback blocked on a request still gets its
//!    reply): the body is inflated if compressed (up to the maximum message size), the
//!    request is looked up by `CORRELATION_ID` and completed, and the broker gets SUCCESS.
//!
//! # Every request ends exactly once
//!
//! The pending requests live in a correlation table: with the reply; with
//! [`Error::Timeout`] at the request's deadline (the timeout from the call: it covers the
//! route lookup, the heartbeats, the send and the wait for the reply, whatever the broker does
//! or does not answer); with the send's error; or with [`Error::Shutdown`]. Whoever removes a
//! request from the table ends it. A `rocketmq-request` thread (started with the first
//! request) ends the requests whose deadline has passed; it never runs user code.
//!
//! A reply for a request that has timed out already is dropped and counted as late
//! ([`RequestStats::replies_late`]); a reply for an id this producer never sent (or forgot)
//! as unknown ([`RequestStats::replies_unknown`]).
//!
//! # Backpressure
//!
//! Each request holds an in-flight permit of the same bound as asynchronous sends
//! ([`ProducerConfig::max_in_flight`](crate::ProducerConfig::max_in_flight) and bytes) from
//! the call until it ends, so the table is bounded. Shutdown waits for pending requests as
//! for in-flight sends, up to its deadline, then ends the rest with [`Error::Shutdown`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::async_send::{Budget, Done, Hold};
use super::backpressure::Permit;
use super::executor::Job;
use super::hooks::SendMode;
use super::inner::Inner;
use super::prepare;
use super::submit::Target;
use super::sync_send::SyncTarget;
use super::Producer;
use crate::client::broker;
use crate::error::{Error, Result};
use crate::message::{property, Message, MessageExt, MessageQueue, SendResult};
use crate::protocol::message_codec::{self, sys_flag};
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::remoting::{pair, Completer, Completion, Handle};
use crate::routing::selector::QueueSelector;

/// How many ids of timed-out requests are remembered, to tell a late reply from an unknown one.
const REMEMBERED_EXPIRED: usize = 4096;

/// The pending result of an asynchronous request: the reply, to wait on or to await.
///
/// Block a thread on it with [`RequestHandle::wait`], or `.await` it on any executor. It always
/// resolves: with the reply, [`Error::Timeout`] at the request's deadline, the send's error,
/// or [`Error::Shutdown`].
///
/// ```
/// # use std::time::Duration;
/// # use rocketmq_mio::{Message, Producer, testing::MockBroker};
/// # let broker = MockBroker::start().unwrap();
/// # let producer = Producer::builder("GID_DOC").name_server(broker.namesrv_addr()).start().unwrap();
/// let handle = producer.request_async(Message::new("rpc", "ping"), Duration::from_millis(200));
/// // Nobody answers: the handle ends with a timeout at the deadline.
/// assert!(handle.wait().unwrap_err().is_timeout());
/// ```
#[must_use = "dropping the handle discards the reply (the request is still sent)"]
#[derive(Debug)]
pub struct RequestHandle {
    inner: Handle<MessageExt>,
}

impl RequestHandle {
    /// Blocks until the request ends.
    pub fn wait(self) -> Result<MessageExt> {
        self.inner.wait()
    }

    /// Blocks up to `timeout`; `None` if the request has not ended yet (the handle stays
    /// usable).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<MessageExt>> {
        self.inner.wait_timeout(timeout)
    }

    /// Blocks until `deadline`; `None` if the request has not ended yet.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<MessageExt>> {
        self.inner.wait_deadline(deadline)
    }

    /// Whether the request has ended.
    pub fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}

impl Future for RequestHandle {
    type Output = Result<MessageExt>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Request-reply counters of a producer ([`ProducerStats::requests`]); kept whether or not
/// statistics are on (they cost one atomic add per event).
///
/// [`ProducerStats::requests`]: crate::stats::ProducerStats::requests
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// Requests started (taken into the correlation table).
    pub requests: u64,
    /// Replies matched to a pending request (each ends its request).
    pub replies_matched: u64,
    /// Replies that came after their request had timed out: dropped.
    pub replies_late: u64,
    /// Replies for an id this producer does not know (never sent, or forgotten): dropped.
    pub replies_unknown: u64,
    /// Requests that ended with a timeout.
    pub timed_out: u64,
    /// Requests that ended with another error (the send's, or shutdown).
    pub failed: u64,
    /// Requests pending now.
    pub pending: usize,
}

impl RequestStats {
    /// As JSON (the `"requests"` object of the stats schema).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "replies_matched": self.replies_matched,
            "replies_late": self.replies_late,
            "replies_unknown": self.replies_unknown,
            "timed_out": self.timed_out,
            "failed": self.failed,
            "pending": self.pending,
        })
    }
}

/// How a request reports its end.
pub(super) enum ReplyDone {
    /// Complete a handle, wherever the end is known (an I/O thread too: no user code runs).
    Handle(Completer<MessageExt>),
    /// Run a user callback on the callback pool.
    Callback(Box<dyn FnOnce(Result<MessageExt>) + Send + 'static>),
}

/// A request waiting for its reply.
struct Pending {
    deadline: Instant,
    timeout: Duration,
    done: ReplyDone,
    /// Its in-flight permit (while the send holds it itself: `None`).
    hold: Option<Hold>,
    /// The broker the request was stored on, once known (for the timeout error).
    addr: String,
}

#[derive(Default)]
struct Table {
    pending: HashMap<String, Pending>,
    /// Deadlines, nearest first; entries of requests that ended otherwise are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
    /// Ids of requests that timed out recently, oldest first.
    expired: VecDeque<String>,
    expired_set: HashSet<String>,
    closed: bool,
    timer_started: bool,
}

impl Table {
    fn remember_expired(&mut self, id: String) {
        if self.expired.len() >= REMEMBERED_EXPIRED {
            if let Some(old) = self.expired.pop_front() {
                self.expired_set.remove(&old);
            }
        }
        self.expired_set.insert(id.clone());
        self.expired.push_back(id);
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    matched: AtomicU64,
    late: AtomicU64,
    unknown: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
}

/// The correlation table, its timer thread and the brokers known to have our heartbeat.
#[derive(Default)]
pub(crate) struct Requests {
    table: Mutex<Table>,
    wake: Condvar,
    timer: Mutex<Option<JoinHandle<()>>>,
    /// Broker addresses that answered a heartbeat sent for request-reply.
    ready: Mutex<HashSet<String>>,
    counters: Counters,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("pending", &self.table.lock().pending.len())
            .finish_non_exhaustive()
    }
}

/// A new correlation id: 128 random bits in the UUID text form Java uses.
fn new_correlation_id() -> String {
    let bits: u128 = rand::random();
    let h = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Ends a request: completes its handle here, or hands its callback to the callback pool.
/// `hold` is released once the caller has the result (after the callback has returned).
fn finish(inner: &Inner, done: ReplyDone, result: Result<MessageExt>, hold: Option<Hold>) {
    match done {
        ReplyDone::Handle(completer) => {
            drop(hold);
            completer.complete(result);
        }
        ReplyDone::Callback(callback) => inner.run_user(Box::new(move || {
            let hold = hold.unwrap_or(Hold::Nothing);
            hold.while_held(|| {
                if catch_unwind(AssertUnwindSafe(|| callback(result))).is_err() {
                    log::error!("a request callback panicked");
                }
            });
            drop(hold);
        })),
    }
}

impl Requests {
    /// Takes a request into the table. Gives `done` back if the producer is shutting down
    /// or the timer thread cannot start.
    #[allow(clippy::result_large_err)] // `done` is handed back, not an error
    fn register(
        &self,
        inner: &Arc<Inner>,
        id: &str,
        deadline: Instant,
        timeout: Duration,
        done: ReplyDone,
        hold: Option<Hold>,
    ) -> std::result::Result<(), (ReplyDone, Option<Hold>, Error)> {
        let mut table = self.table.lock();
        if table.closed {
            return Err((done, hold, Error::Shutdown));
        }
        if !table.timer_started {
            let timer_inner = inner.clone();
            let spawned = std::thread::Builder::new()
                .name("rocketmq-request".into())
                .spawn(move || timer_loop(&timer_inner));
            match spawned {
                Ok(t) => {
                    table.timer_started = true;
                    *self.timer.lock() = Some(t);
                }
                Err(e) => {
                    return Err((
                        done,
                        hold,
                        Error::config("request timer thread", e.to_string()),
                    ))
                }
            }
        }
        // Ends with no reply stay in the heap until their deadline; keep it near the table.
        if table.deadlines.len() > 2 * table.pending.len() + 1024 {
            let live: Vec<Reverse<(Instant, String)>> = table
                .pending
                .iter()
                .map(|(k, p)| Reverse((p.deadline, k.clone())))
                .collect();
            table.deadlines = live.into();
        }
        table.pending.insert(
            id.to_string(),
            Pending {
                deadline,
                timeout,
                done,
                hold,
                addr: String::new(),
            },
        );
        table.deadlines.push(Reverse((deadline, id.to_string())));
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        drop(table);
        self.wake.notify_one();
        Ok(())
    }

    /// The send of request `id` succeeded: it now waits for the reply, holding `hold`.
    fn sent(&self, id: &str, hold: Option<Hold>, addr: String) {
        let mut table = self.table.lock();
        match table.pending.get_mut(id) {
            Some(p) => {
                if hold.is_some() {
                    p.hold = hold;
                }
                p.addr = addr;
            }
            None => {
                // Ended already (a quick reply, or its deadline): release outside the lock.
                drop(table);
                drop(hold);
            }
        }
    }

    /// Ends request `id` with `error` (its send failed), if it is still pending.
    fn fail(&self, inner: &Inner, id: &str, error: Error, hold: Option<Hold>) {
        let taken = self.table.lock().pending.remove(id);
        match taken {
            Some(p) => {
                // A send that ran out of the request's time: the request timed out (its send's
                // error inside), so every timeout of a request says the request's timeout.
                let error = if error.is_timeout() {
                    self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    Error::Timeout {
                        addr: error.broker_addr().unwrap_or_default().to_string(),
                        after: p.timeout,
                        last: Some(Box::new(error)),
                    }
                } else {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    error
                };
                let hold = match (hold, p.hold) {
                    (Some(h), other) => {
                        drop(other);
                        Some(h)
                    }
                    (None, other) => other,
                };
                finish(inner, p.done, Err(error), hold);
            }
            None => drop(hold),
        }
    }

    /// Ends request `id` with a timeout if it is still pending (a synchronous caller whose
    /// wait reached the deadline before the timer thread did).
    fn expire(&self, inner: &Inner, id: &str) {
        let mut table = self.table.lock();
        let Some(p) = table.pending.remove(id) else {
            return;
        };
        table.remember_expired(id.to_string());
        drop(table);
        self.end_timed_out(inner, p);
    }

    fn end_timed_out(&self, inner: &Inner, p: Pending) {
        self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
        let error = Error::Timeout {
            addr: p.addr,
            after: p.timeout,
            last: None,
        };
        finish(inner, p.done, Err(error), p.hold);
    }

    /// Ends every pending request with [`Error::Shutdown`], takes no more, and stops the
    /// timer thread.
    pub(super) fn close(&self, inner: &Inner) {
        let pending: Vec<Pending> = {
            let mut table = self.table.lock();
            table.closed = true;
            table.deadlines.clear();
            table.pending.drain().map(|(_, p)| p).collect()
        };
        self.wake.notify_all();
        if !pending.is_empty() {
            log::warn!(
                "shutdown: {} requests had no reply; ending them",
                pending.len()
            );
        }
        for p in pending {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            finish(inner, p.done, Err(Error::Shutdown), p.hold);
        }
        let timer = self.timer.lock().take();
        if let Some(t) = timer {
            if t.thread().id() != std::thread::current().id() && t.join().is_err() {
                log::error!("the request timer thread panicked");
            }
        }
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> RequestStats {
        let c = &self.counters;
        RequestStats {
            requests: c.requests.load(Ordering::Relaxed),
            replies_matched: c.matched.load(Ordering::Relaxed),
            replies_late: c.late.load(Ordering::Relaxed),
            replies_unknown: c.unknown.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            pending: self.table.lock().pending.len(),
        }
    }

    /// A PUSH_REPLY_MESSAGE_TO_CLIENT from `addr`, on the I/O thread that read it: matches it,
    /// completes its request (a callback goes to the pool), and answers. Never blocks.
    fn on_push(&self, inner: &Inner, addr: &str, push: RemotingCommand) -> RemotingCommand {
        let opaque = push.opaque;
        let fail = |why: &str| {
            log::warn!("reply pushed by {addr} refused: {why}");
            RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                .with_remark("process reply message fail")
        };
        let properties =
            message_codec::decode_properties(push.ext_fields.get("properties").unwrap_or_default());
        let Some(id) = properties
            .iter()
            .find(|(k, _)| k == property::CORRELATION_ID)
            .map(|(_, v)| v.clone())
        else {
            self.counters.unknown.fetch_add(1, Ordering::Relaxed);
            return fail("it has no CORRELATION_ID");
        };
        let decoded = decode_push(push, properties, inner.config.max_message_size());
        let taken = {
            let mut table = self.table.lock();
            match table.pending.remove(&id) {
                Some(p) => Ok(p),
                None => Err(table.expired_set.contains(&id)),
            }
        };
        match taken {
            Ok(p) => {
                self.counters.matched.fetch_add(1, Ordering::Relaxed);
                let ok = decoded.is_ok();
                let result = decoded.map_err(|e| {
                    log::warn!("reply {id} pushed by {addr} is unreadable: {e}");
                    e
                });
                finish(inner, p.done, result, p.hold);
                if ok {
                    RemotingCommand::response(ResponseCode::SUCCESS, opaque)
                } else {
                    fail("its body or header is unreadable")
                }
            }
            Err(late) => {
                if late {
                    self.counters.late.fetch_add(1, Ordering::Relaxed);
                    log::info!("reply {id} from {addr} came after its request timed out: dropped");
                } else {
                    self.counters.unknown.fetch_add(1, Ordering::Relaxed);
                    log::warn!("reply {id} from {addr} matches no request of ours: dropped");
                }
                RemotingCommand::response(ResponseCode::SUCCESS, opaque)
            }
        }
    }
}

/// The `rocketmq-request` thread: ends requests at their deadline. Never runs user code.
fn timer_loop(inner: &Arc<Inner>) {
    let requests = &inner.requests;
    let mut table = requests.table.lock();
    loop {
        if table.closed {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(Reverse((at, _))) = table.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, id))) = table.deadlines.pop() else {
                break;
            };
            if table.pending.get(&id).is_some_and(|p| p.deadline <= now) {
                if let Some(p) = table.pending.remove(&id) {
                    table.remember_expired(id);
                    expired.push(p);
                }
            }
        }
        if !expired.is_empty() {
            MutexGuard::unlocked(&mut table, || {
                for p in expired {
                    requests.end_timed_out(inner, p);
                }
            });
            continue;
        }
        match table.deadlines.peek() {
            Some(Reverse((at, _))) => {
                let at = *at;
                requests.wake.wait_until(&mut table, at);
            }
            None => requests.wake.wait(&mut table),
        }
    }
}

/// `ip:port`, as brokers write hosts (Java may prefix a `/`); unspecified if unreadable.
fn parse_host(s: Option<&str>) -> SocketAddr {
    s.map(|s| s.trim_start_matches('/'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// The reply a push carries (protocol.md §4.11): header fields, properties, and the body
/// inflated if compressed (up to `max_body` bytes).
fn decode_push(
    push: RemotingCommand,
    properties: Vec<(String, String)>,
    max_body: usize,
) -> Result<MessageExt> {
    let f = &push.ext_fields;
    fn int<T: std::str::FromStr + Default>(f: &crate::protocol::ExtFields, key: &str) -> Result<T> {
        match f.get(key) {
            None | Some("") => Ok(T::default()),
            Some(v) => v.parse().map_err(|_| {
                Error::Protocol(crate::protocol::CodecError::Malformed(format!(
                    "reply push header field {key} = {v:?}"
                )))
            }),
        }
    }
    let topic = f.get("topic").unwrap_or_default().to_string();
    let sys_flag: i32 = int(f, "sysFlag")?;
    let body = if sys_flag & sys_flag::COMPRESSED != 0 {
        message_codec::inflate_body(&push.body, sys_flag, max_body)?
    } else {
        push.body
    };
    let f = &push.ext_fields;
    Ok(MessageExt {
        topic,
        body_crc: message_codec::body_crc32(&body),
        body,
        flag: int(f, "flag")?,
        properties,
        queue_id: int(f, "queueId")?,
        queue_offset: 0,
        commit_log_offset: 0,
        sys_flag,
        born_timestamp: int(f, "bornTimestamp")?,
        born_host: parse_host(f.get("bornHost")),
        store_timestamp: int(f, "storeTimestamp")?,
        store_host: parse_host(f.get("storeHost")),
        reconsume_times: int(f, "reconsumeTimes")?,
        prepared_transaction_offset: 0,
    })
}

/// The reply to `request`, as Java's `MessageUtil.createReplyMessage` builds it: topic
/// `<CLUSTER>_REPLY_TOPIC`, `MSG_TYPE=reply`, and the request's `CORRELATION_ID`,
/// `REPLY_TO_CLIENT` and `TTL`.
///
/// # Errors
/// [`Error::InvalidMessage`] naming the first of those properties the request lacks (it was
/// not read back from a broker, or not sent as a request).
pub(crate) fn reply_message(request: &MessageExt, body: Vec<u8>) -> Result<Message> {
    let get = |key: &str| {
        request
            .property(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::InvalidMessage(format!(
                    "cannot reply: the request has no {key} property (a request read back from a \
                 broker has CLUSTER; CORRELATION_ID, REPLY_TO_CLIENT and TTL are set by \
                 Producer::request)"
                ))
            })
    };
    let cluster = get(property::CLUSTER)?;
    let correlation_id = get(property::CORRELATION_ID)?;
    let reply_to = get(property::REPLY_TO_CLIENT)?;
    let ttl = get(property::MESSAGE_TTL)?;
    let mut reply = Message::new(format!("{cluster}{}", property::REPLY_TOPIC_SUFFIX), body);
    reply.set_property(property::MESSAGE_TYPE, property::REPLY_MESSAGE_TYPE);
    reply.set_property(property::CORRELATION_ID, correlation_id);
    reply.set_property(property::REPLY_TO_CLIENT, reply_to);
    reply.set_property(property::MESSAGE_TTL, ttl);
    Ok(reply)
}

/// Whether the current thread is one of the callback pool's.
fn on_callback_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("rocketmq-callback"))
}

impl Inner {
    /// Installs the PUSH_REPLY_MESSAGE_TO_CLIENT handler on the I/O threads.
    pub(super) fn install_reply_handler(self: &Arc<Self>) {
        let weak: Weak<Inner> = Arc::downgrade(self);
        self.remoting.set_inline_handler(
            RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT,
            Arc::new(move |addr: &str, push: RemotingCommand| {
                let opaque = push.opaque;
                Some(match weak.upgrade() {
                    Some(inner) => inner.requests.on_push(&inner, addr, push),
                    None => RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                        .with_remark("process reply message fail"),
                })
            }),
        );
    }

    /// Checks the timeout and the message, adds the request properties, and returns the
    /// request's id and deadline.
    fn begin_request(&self, msg: &mut Message, timeout: Duration) -> Result<(String, Instant)> {
        self.check_running()?;
        if timeout.is_zero() {
            return Err(Error::config("request timeout", "must be more than zero"));
        }
        let deadline = Instant::now()
            .checked_add(timeout)
            .ok_or_else(|| Error::config("request timeout", "is too large"))?;
        prepare::check_message(msg, &self.config)?;
        let id = new_correlation_id();
        let ttl = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        msg.set_property(property::CORRELATION_ID, id.clone());
        msg.set_property(property::REPLY_TO_CLIENT, self.client_id.clone());
        msg.set_property(property::MESSAGE_TTL, ttl.to_string());
        Ok((id, deadline))
    }

    /// An in-flight permit for a request: waits for room until `deadline`, except on a
    /// callback thread (see [`super::backpressure`]).
    fn request_permit(&self, msg: &Message, deadline: Instant) -> Result<Permit> {
        let size = msg.body().len() + msg.topic().len();
        if on_callback_thread() {
            self.in_flight.acquire_now(size)
        } else {
            self.in_flight.acquire(size, deadline)
        }
    }

    /// Makes sure every broker of `wire_topic` knows this client's connection (a heartbeat it
    /// answered, on the connection up now). With `may_block` false, only looks: `Ok(false)`
    /// when a route lookup or a heartbeat is needed. A heartbeat that fails is logged; the
    /// send goes ahead (the broker then refuses the reply, and the request times out).
    fn ensure_reply_ready(
        &self,
        wire_topic: &str,
        deadline: Instant,
        may_block: bool,
    ) -> Result<bool> {
        let info = if may_block {
            self.publish_info(wire_topic, deadline)?
        } else {
            match self.mapping.get(wire_topic, Instant::now()) {
                Some(info) if !info.queues().is_empty() => info,
                _ => return Ok(false),
            }
        };
        let mut addrs: Vec<String> = Vec::new();
        for q in info.queues() {
            if let Some(a) = self.broker_addr(q.broker_name()) {
                if !addrs.iter().any(|x| **x == *a) {
                    addrs.push(a.to_string());
                }
            }
        }
        let todo: Vec<String> = {
            let ready = self.requests.ready.lock();
            addrs
                .into_iter()
                .filter(|a| {
                    !ready.contains(a)
                        || !self
                            .remoting
                            .connection_state(a)
                            .is_some_and(|s| s.is_connected())
                })
                .collect()
        };
        if todo.is_empty() {
            return Ok(true);
        }
        if !may_block {
            return Ok(false);
        }
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(self.config.client_api_timeout())
            .max(Duration::from_millis(1));
        let waiting: Vec<(String, Handle<RemotingCommand>)> = todo
            .into_iter()
            .map(|addr| {
                let request = broker::heartbeat_request(
                    &self.client_id,
                    std::slice::from_ref(&self.defaults.group),
                );
                let (completer, handle) = pair();
                self.remoting
                    .invoke_async(&addr, request, timeout, Completion::Handle(completer));
                (addr, handle)
            })
            .collect();
        for (addr, mut handle) in waiting {
            match handle.wait_deadline(deadline) {
                Some(Ok(r)) if r.code == ResponseCode::SUCCESS => {
                    self.requests.ready.lock().insert(addr);
                }
                Some(Ok(r)) => log::warn!(
                    "heartbeat to {addr} before a request: code {} {}",
                    r.code,
                    r.remark_str()
                ),
                Some(Err(e)) => log::warn!("heartbeat to {addr} before a request failed: {e}"),
                None => log::warn!("heartbeat to {addr} before a request: no answer in time"),
            }
        }
        Ok(true)
    }

    /// The broker address a send result names (for a timeout error).
    fn stored_at(&self, r: &SendResult) -> String {
        self.broker_addr(r.queue.broker_name())
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// A request on the caller's thread: route and heartbeats, the send, then the wait for
    /// the reply, all within `timeout` from now.
    fn request_sync(
        self: &Arc<Self>,
        mut msg: Message,
        target: SyncTarget<'_>,
        timeout: Duration,
    ) -> Result<MessageExt> {
        let (id, deadline) = self.begin_request(&mut msg, timeout)?;
        self.hook_before(std::slice::from_mut(&mut msg), SendMode::Sync, false)?;
        let permit = self.request_permit(&msg, deadline)?;
        let wire = prepare::wire_topic(msg.topic(), &self.config);
        self.ensure_reply_ready(&wire, deadline, true)?;
        let (completer, mut handle) = pair();
        if let Err((_, _, e)) = self.requests.register(
            self,
            &id,
            deadline,
            timeout,
            ReplyDone::Handle(completer),
            Some(Hold::Permit(permit)),
        ) {
            return Err(e);
        }
        let op = self.stats.begin(&msg, false);
        match op.end(self.send_sync_until(msg, target, deadline)) {
            Ok(r) => self.requests.sent(&id, None, self.stored_at(&r)),
            Err(e) => self.requests.fail(self, &id, e, None),
        }
        match handle.wait_deadline(deadline) {
            Some(result) => result,
            None => {
                self.requests.expire(self, &id);
                handle.wait()
            }
        }
    }

    /// A request that does not block the caller past backpressure: the route lookup and
    /// heartbeats, when needed, run on an internal thread; `done` gets the end.
    fn request_async(
        self: &Arc<Self>,
        mut msg: Message,
        target: Target,
        timeout: Duration,
        done: ReplyDone,
    ) {
        let (id, deadline) = match self.begin_request(&mut msg, timeout) {
            Ok(v) => v,
            Err(e) => return finish(self, done, Err(e), None),
        };
        if let Err(e) = self.hook_before(std::slice::from_mut(&mut msg), SendMode::Async, false) {
            return finish(self, done, Err(e), None);
        }
        let permit = match self.request_permit(&msg, deadline) {
            Ok(p) => p,
            Err(e) => return finish(self, done, Err(e), None),
        };
        if let Err((done, hold, e)) = self
            .requests
            .register(self, &id, deadline, timeout, done, None)
        {
            return finish(self, done, Err(e), hold);
        }
        let wire = prepare::wire_topic(msg.topic(), &self.config);
        match self.ensure_reply_ready(&wire, deadline, false) {
            Ok(true) => return self.launch_request(id, msg, target, permit, deadline),
            Ok(false) => {}
            Err(e) => return self.requests.fail(self, &id, e, None),
        }
        let this = self.clone();
        let job_id = id.clone();
        let job = Job::Run(Box::new(move || {
            match this.ensure_reply_ready(&wire, deadline, true) {
                Ok(_) => this.launch_request(job_id, msg, target, permit, deadline),
                Err(e) => this
                    .requests
                    .fail(&this, &job_id, e, Some(Hold::Permit(permit))),
            }
        }));
        if self.executor.submit(job).is_err() {
            // Shut down; the job (and its permit) is dropped with the error.
            self.requests.fail(self, &id, Error::Shutdown, None);
        }
    }

    /// The send of an asynchronous request, through the asynchronous send path (within the
    /// request's deadline); its end moves the permit into the table or ends the request.
    fn launch_request(
        self: &Arc<Self>,
        id: String,
        msg: Message,
        target: Target,
        permit: Permit,
        deadline: Instant,
    ) {
        let mut op = self.stats.begin(&msg, false);
        let for_selector = matches!(target, Target::Selector(..));
        let prepared = self.prepare_msg(msg, for_selector, SendMode::Async);
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                op.fail(&e);
                return self.requests.fail(self, &id, e, Some(Hold::Permit(permit)));
            }
        };
        let this = self.clone();
        let done =
            Done::Internal(Box::new(
                move |result: Result<SendResult>, hold: Hold| match result {
                    Ok(r) => {
                        let addr = this.stored_at(&r);
                        this.requests.sent(&id, Some(hold), addr);
                    }
                    Err(e) => this.requests.fail(&this, &id, e, Some(hold)),
                },
            ));
        let budget = Budget {
            deadline,
            retries: self.config.async_retries(),
        };
        self.start_async_within(prepared, permit, target, done, op, budget);
    }
}

impl Producer {
    /// Sends `msg` as a request and blocks until its reply comes, at most `timeout` (which
    /// covers the route lookup, the send with its retries, and the wait for the reply).
    ///
    /// The reply is what a consumer of `msg` sends with [`Producer::reply`]; see
    /// [request-reply](crate#request-reply). The message gets the properties
    /// `CORRELATION_ID`, `REPLY_TO_CLIENT` and `TTL`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no reply came by the deadline (the send may have succeeded);
    /// the send's error ([`Error::InvalidMessage`], [`Error::Broker`], [`Error::NoRoute`],
    /// ...); [`Error::Backpressure`] when too many requests and asynchronous sends are in
    /// flight until the deadline; [`Error::Config`] for a zero timeout; [`Error::Shutdown`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rocketmq_mio::{Message, Producer, testing::MockBroker};
    /// # let broker = std::sync::Arc::new(MockBroker::start()?);
    /// let producer = Producer::builder("GID_RPC").name_server(broker.namesrv_addr()).start()?;
    /// let responder = Producer::builder("GID_SERVER").name_server(broker.namesrv_addr()).start()?;
    /// let b = broker.clone();
    /// std::thread::spawn(move || {
    ///     // A consumer would receive the request; the mock keeps it.
    ///     let request = b.wait_messages("rpc", 1, Duration::from_secs(10)).remove(0);
    ///     responder.reply(&request, "pong").unwrap();
    /// });
    /// let reply = producer.request(Message::new("rpc", "ping"), Duration::from_secs(10))?;
    /// assert_eq!(reply.body, b"pong");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&self, msg: Message, timeout: Duration) -> Result<MessageExt> {
        self.inner().request_sync(msg, SyncTarget::Auto, timeout)
    }

    /// [`Producer::request`] to `queue` (no retry to another queue).
    pub fn request_to_queue(
        &self,
        msg: Message,
        queue: &MessageQueue,
        timeout: Duration,
    ) -> Result<MessageExt> {
        self.inner()
            .request_sync(msg, SyncTarget::Queue(queue.clone()), timeout)
    }

    /// [`Producer::request`] to the queue `selector` picks for `arg` (no retry to another
    /// queue). The selector runs on the calling thread.
    pub fn request_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
        arg: &str,
        timeout: Duration,
    ) -> Result<MessageExt> {
        self.inner()
            .request_sync(msg, SyncTarget::Selector(selector, arg), timeout)
    }

    /// Sends `msg` as a request; the handle gets the reply (`.wait()` it or `.await` it).
    ///
    /// Blocks only for backpressure (as [`Producer::send_async`]; never on a callback
    /// thread). A route lookup and the heartbeats a new broker needs run on an internal
    /// thread. The handle ends at the latest at `timeout` from now.
    pub fn request_async(&self, msg: Message, timeout: Duration) -> RequestHandle {
        let (completer, handle) = pair();
        self.inner()
            .request_async(msg, Target::Auto, timeout, ReplyDone::Handle(completer));
        RequestHandle { inner: handle }
    }

    /// Asynchronous [`Producer::request_to_queue`].
    pub fn request_to_queue_async(
        &self,
        msg: Message,
        queue: &MessageQueue,
        timeout: Duration,
    ) -> RequestHandle {
        let (completer, handle) = pair();
        self.inner().request_async(
            msg,
            Target::Queue(queue.clone()),
            timeout,
            ReplyDone::Handle(completer),
        );
        RequestHandle { inner: handle }
    }

    /// Asynchronous [`Producer::request_with_selector`]. The selector runs on this thread
    /// when the route is cached, otherwise on an internal thread: it must be quick and must
    /// not block or send.
    pub fn request_with_selector_async(
        &self,
        msg: Message,
        selector: Arc<dyn QueueSelector>,
        arg: impl Into<String>,
        timeout: Duration,
    ) -> RequestHandle {
        let (completer, handle) = pair();
        self.inner().request_async(
            msg,
            Target::Selector(selector, arg.into()),
            timeout,
            ReplyDone::Handle(completer),
        );
        RequestHandle { inner: handle }
    }

    /// Sends `msg` as a request; `callback` runs once with the reply or the error, on a
    /// callback thread (never on an I/O thread), at the latest at `timeout` from now.
    ///
    /// The callback may block on other requests and sends (see
    /// [what callbacks may do](crate#what-callbacks-may-do)): replies are matched on the
    /// I/O threads, not on the callback pool.
    pub fn request_with_callback<F>(&self, msg: Message, timeout: Duration, callback: F)
    where
        F: FnOnce(Result<MessageExt>) + Send + 'static,
    {
        self.inner().request_async(
            msg,
            Target::Auto,
            timeout,
            ReplyDone::Callback(Box::new(callback)),
        );
    }

    /// Replies to `request` (a request message a consumer received) with `body`: sends the
    /// reply Java's `MessageUtil.createReplyMessage` builds (topic `<CLUSTER>_REPLY_TOPIC`,
    /// `MSG_TYPE=reply`, the request's `CORRELATION_ID`, `REPLY_TO_CLIENT` and `TTL`) with
    /// SEND_REPLY_MESSAGE_V2, synchronously, within the send timeout. The broker pushes it
    /// to the requester.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] naming the property `request` lacks, before anything is
    /// sent; the send's errors as for [`Producer::send`] (a broker that cannot reach the
    /// requester answers [`Error::Broker`] with code SYSTEM_ERROR).
    pub fn reply(&self, request: &MessageExt, body: impl Into<Vec<u8>>) -> Result<SendResult> {
        let inner = self.inner();
        let mut msg = reply_message(request, body.into())?;
        inner.check_running()?;
        prepare::check_message(&msg, &inner.config)?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let op = inner.stats.begin(&msg, false);
        if let Err(e) = inner.hook_before(std::slice::from_mut(&mut msg), SendMode::Sync, false) {
            return op.end(Err(e));
        }
        let mut prepared = match inner.prepare_msg(msg, false, SendMode::Sync) {
            Ok(p) => p,
            Err(e) => return op.end(Err(e)),
        };
        prepared.reply = true;
        let _permit = inner.sync_in_flight.acquire_unbounded(prepared.size);
        op.end(inner.send_prepared_sync(&prepared, None, deadline))
    }

    /// Request-reply counters (also in [`Producer::stats`]).
    pub fn request_stats(&self) -> RequestStats {
        self.inner().requests.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_ext(props: &[(&str, &str)]) -> MessageExt {
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        MessageExt {
            topic: "rpc".into(),
            body: b"ping".to_vec(),
            flag: 0,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            queue_id: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        }
    }

    #[test]
    fn reply_message_is_built_like_java() {
        let req = request_ext(&[
            ("CLUSTER", "DefaultCluster"),
            ("CORRELATION_ID", "c-1"),
            ("REPLY_TO_CLIENT", "10.0.0.1@42"),
            ("TTL", "3000"),
            ("KEYS", "k"),
        ]);
        let reply = reply_message(&req, b"pong".to_vec()).unwrap();
        assert_eq!(reply.topic(), "DefaultCluster_REPLY_TOPIC");
        assert_eq!(reply.body(), b"pong");
        assert_eq!(reply.property("MSG_TYPE"), Some("reply"));
        assert_eq!(reply.property("CORRELATION_ID"), Some("c-1"));
        assert_eq!(reply.property("REPLY_TO_CLIENT"), Some("10.0.0.1@42"));
        assert_eq!(reply.property("TTL"), Some("3000"));
        // Nothing else of the request is copied.
        assert_eq!(reply.property("KEYS"), None);
    }

    #[test]
    fn reply_to_a_message_that_is_no_request_is_refused() {
        let full = [
            ("CLUSTER", "DefaultCluster"),
            ("CORRELATION_ID", "c-1"),
            ("REPLY_TO_CLIENT", "10.0.0.1@42"),
            ("TTL", "3000"),
        ];
        for missing in 0..full.len() {
            let props: Vec<(&str, &str)> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, p)| *p)
                .collect();
            match reply_message(&request_ext(&props), b"x".to_vec()) {
                Err(Error::InvalidMessage(m)) => assert!(m.contains(full[missing].0), "{m}"),
                other => panic!("expected InvalidMessage, got {other:?}"),
            }
        }
    }

    #[test]
    fn correlation_ids_look_like_uuids_and_differ() {
        let a = new_correlation_id();
        let b = new_correlation_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn push_decoding_reads_the_header_and_inflates() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(5));
        z.write_all(&[7u8; 10_000]).unwrap();
        let compressed = z.finish().unwrap();
        let mut push = RemotingCommand::request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT);
        push.ext_fields
            .insert("topic", "DefaultCluster_REPLY_TOPIC");
        push.ext_fields.insert("sysFlag", "1");
        push.ext_fields.insert("queueId", "3");
        push.ext_fields.insert("bornHost", "127.0.0.1:5555");
        push.ext_fields.insert("storeHost", "/10.0.0.2:10911");
        push.ext_fields.insert("storeTimestamp", "1700000000000");
        push.body = compressed.clone();
        let m = decode_push(push, vec![], 1 << 20).unwrap();
        assert_eq!(m.body, vec![7u8; 10_000]);
        assert_eq!(m.queue_id, 3);
        assert_eq!(m.born_host, "127.0.0.1:5555".parse().unwrap());
        assert_eq!(m.store_host, "10.0.0.2:10911".parse().unwrap());
        // Over the cap: an error, not a huge allocation.
        let mut push = RemotingCommand::request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT);
        push.ext_fields.insert("sysFlag", "1");
        push.body = compressed;
        assert!(decode_push(push, vec![], 100).is_err());
        let mut push = RemotingCommand::request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT);
        push.ext_fields.insert("queueId", "x");
        assert!(decode_push(push, vec![], 100).is_err());
    }
}
