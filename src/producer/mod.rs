//! The producer: lifecycle, the one send path every mode goes through, retries.
//!
//! # Threads
//!
//! A [`Producer`] owns a [`RemotingClient`] (its `rocketmq-io-N` event-loop threads and
//! `rocketmq-callback-N` pool) and one `rocketmq-service` thread that refreshes routes and sends
//! heartbeats. Synchronous sends run their attempts on the caller's thread and block on the
//! response. Asynchronous sends encode on the caller's thread and never block on the network:
//! a route that is not cached yet is fetched on the callback pool, and retries run there too.
//! Completion callbacks, selectors and transaction listeners never run on an I/O thread.

pub(crate) mod backpressure;
mod batch;
mod handle;
pub mod health;
pub(crate) mod prepare;
pub mod stats;
pub mod transaction;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};

use crate::client::broker::{self, SendDefaults};
use crate::client::namesrv::NameServers;
use crate::config::{ProducerConfig, ProducerConfigBuilder};
use crate::error::{Error, Result};
use crate::message::{Message, MessageQueue, SendResult, SendStatus};
use crate::protocol::message_codec::UniqIdGenerator;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::remoting::{Completion, RemotingClient, RemotingConfig, RequestHandler};
use crate::routing::mapping::{TopicBrokerMapping, TopicPublishInfo};
use crate::routing::router::MessageRouter;
use crate::routing::selector::QueueSelector;

use backpressure::{InFlight, Permit};
pub use handle::SendHandle;
use prepare::Prepared;

/// How long dropping the last clone of a producer waits for in-flight sends.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const STOPPED: u8 = 2;

/// A RocketMQ producer. Cheap to clone; every clone sends through the same connections.
///
/// Dropping the last clone shuts it down (waiting up to [`DROP_SHUTDOWN_TIMEOUT`] for
/// in-flight sends); call [`Producer::shutdown`] to choose the deadline.
#[derive(Clone)]
pub struct Producer {
    owner: Arc<Owner>,
}

/// Shuts the producer down when the last user handle goes; background tasks hold only
/// `Arc<Inner>`.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Err(e) = self.inner.shutdown(DROP_SHUTDOWN_TIMEOUT) {
            log::warn!("producer shutdown on drop: {e}");
        }
    }
}

/// A handler for broker-initiated requests of one code (the transaction producer installs the
/// CHECK_TRANSACTION_STATE one).
pub(crate) type ServerRequestHook =
    Arc<dyn Fn(&str, RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// Everything a producer shares with its background tasks.
pub(crate) struct Inner {
    pub(crate) config: ProducerConfig,
    pub(crate) remoting: RemotingClient,
    pub(crate) mapping: TopicBrokerMapping,
    pub(crate) router: MessageRouter,
    pub(crate) client_id: String,
    namesrv: NameServers,
    ids: UniqIdGenerator,
    defaults: SendDefaults,
    /// Asynchronous sends (bounded when backpressure is on).
    in_flight: Arc<InFlight>,
    /// Synchronous sends (unbounded; shutdown waits for them too).
    sync_in_flight: Arc<InFlight>,
    state: AtomicU8,
    /// Added to `Instant::now()` for routing decisions (tests move time forward with it).
    routing_clock_skew_ms: AtomicU64,
    /// Broker addresses that got a heartbeat already.
    heartbeated: Mutex<Vec<String>>,
    service: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// The auto-batch accumulator, when auto-batching is on.
    batcher: Option<Arc<batch::Accumulator>>,
    /// Handlers of broker-initiated requests, by request code.
    pub(crate) server_hooks: RwLock<Vec<(i32, ServerRequestHook)>>,
    /// Counters and histograms (no-ops when statistics are off).
    pub(crate) stats: stats::StatsRecorder,
    /// Finished asynchronous sends, dropped by the next sender rather than by the I/O thread
    /// that finished them: their memory was allocated on the sending side, and freeing it
    /// there keeps the allocator's cross-thread locking off the I/O thread.
    spent: (Sender<Box<AsyncSend>>, Receiver<Box<AsyncSend>>),
}

/// What an attempt sends to.
#[derive(Clone)]
enum Target {
    /// A queue the router picks; retries go to another broker.
    Auto,
    /// This queue, no retry elsewhere.
    Queue(MessageQueue),
    /// The queue a selector picks; no retry elsewhere (order matters).
    Selector(Arc<dyn QueueSelector>, String),
}

/// How an asynchronous send reports its end.
enum Done {
    Handle(crate::remoting::Completer<SendResult>),
    Callback(Box<dyn FnOnce(Result<SendResult>) + Send + 'static>),
}

impl Producer {
    /// Starts configuring a producer of `group`. Finish with
    /// [`ProducerConfigBuilder::start`].
    pub fn builder(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
    }

    /// Starts a producer with `config`: spawns its threads. Routes are fetched on first use.
    ///
    /// # Errors
    /// [`Error::Config`] if threads cannot be started.
    pub fn start(config: ProducerConfig) -> Result<Producer> {
        let inner = Inner::start(config)?;
        Ok(Producer {
            owner: Arc::new(Owner { inner }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.owner.inner
    }

    /// The settings this producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner().config
    }

    /// The client id this producer registers with brokers (`ip@instance[@unit]`).
    pub fn client_id(&self) -> &str {
        &self.inner().client_id
    }

    /// Sends `msg` and blocks until the broker answers, retrying on another broker on
    /// connection errors, timeouts and the retry codes, all within the send timeout.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] before anything is sent; [`Error::Broker`], [`Error::Timeout`],
    /// [`Error::Io`]/[`Error::ConnectionClosed`] from the last attempt; [`Error::NoRoute`];
    /// [`Error::Shutdown`].
    pub fn send(&self, msg: Message) -> Result<SendResult> {
        let op = self.inner().stats.begin(&msg, false);
        op.end(match self.inner().send_batched(msg, Target::Auto) {
            Ok(handle) => handle.wait(),
            Err(msg) => self.inner().send_sync(msg, SyncTarget::Auto),
        })
    }

    /// Sends `msg` to `queue`, with no retry to another queue.
    pub fn send_to_queue(&self, msg: Message, queue: &MessageQueue) -> Result<SendResult> {
        let op = self.inner().stats.begin(&msg, false);
        let inner = self.inner();
        op.end(
            match inner.send_batched(msg, Target::Queue(queue.clone())) {
                Ok(handle) => handle.wait(),
                Err(msg) => inner.send_sync(msg, SyncTarget::Queue(queue.clone())),
            },
        )
    }

    /// Sends `msg` to the queue `selector` picks for `arg` (for ordered messages: the same
    /// `arg` always picks the same queue while the route does not change). No retry to another
    /// queue. The selector runs on the calling thread.
    pub fn send_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
        arg: &str,
    ) -> Result<SendResult> {
        let op = self.inner().stats.begin(&msg, false);
        op.end(
            self.inner()
                .send_sync(msg, SyncTarget::Selector(selector, arg)),
        )
    }

    /// Sends several messages of one topic as one batch (never compressed). The result's
    /// `msg_id` and `offset_msg_id` list every message, comma-separated.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let op = self.inner().stats.begin_batch(&msgs);
        op.end(self.send_batch_inner(msgs))
    }

    fn send_batch_inner(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let inner = self.inner();
        inner.check_running()?;
        let prepared = prepare::prepare_batch(msgs, &inner.config, || inner.new_msg_id())?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let _permit = inner.sync_in_flight.acquire_unbounded(prepared.size);
        inner.send_prepared_sync(&prepared, None, deadline)
    }

    /// Sends `msg` asynchronously; the returned handle can be waited on (`.wait()`) or awaited.
    ///
    /// Never blocks on network I/O. With backpressure on (the default), it blocks while the
    /// producer is full, up to the send timeout, and then resolves the handle with
    /// [`Error::Backpressure`].
    pub fn send_async(&self, msg: Message) -> SendHandle {
        let (completer, handle) = crate::remoting::pair();
        self.inner()
            .send_async(Prep::Single(msg), Target::Auto, Done::Handle(completer));
        SendHandle::new(handle)
    }

    /// Sends `msg` asynchronously; `callback` runs once with the result, on a callback thread.
    pub fn send_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        self.inner().send_async(
            Prep::Single(msg),
            Target::Auto,
            Done::Callback(Box::new(callback)),
        );
    }

    /// Asynchronous [`Producer::send_to_queue`].
    pub fn send_to_queue_async(&self, msg: Message, queue: &MessageQueue) -> SendHandle {
        let (completer, handle) = crate::remoting::pair();
        self.inner().send_async(
            Prep::Single(msg),
            Target::Queue(queue.clone()),
            Done::Handle(completer),
        );
        SendHandle::new(handle)
    }

    /// Asynchronous [`Producer::send_with_selector`]; the selector may run on a callback thread
    /// when the route is not cached yet.
    pub fn send_with_selector_async(
        &self,
        msg: Message,
        selector: Arc<dyn QueueSelector>,
        arg: impl Into<String>,
    ) -> SendHandle {
        let (completer, handle) = crate::remoting::pair();
        self.inner().send_async(
            Prep::Single(msg),
            Target::Selector(selector, arg.into()),
            Done::Handle(completer),
        );
        SendHandle::new(handle)
    }

    /// Asynchronous [`Producer::send_batch`].
    pub fn send_batch_async(&self, msgs: Vec<Message>) -> SendHandle {
        let (completer, handle) = crate::remoting::pair();
        self.inner()
            .send_async(Prep::Batch(msgs), Target::Auto, Done::Handle(completer));
        SendHandle::new(handle)
    }

    /// Sends `msg` without waiting for any answer. `Ok` once it is queued for the socket; no
    /// retry. The route lookup (first send to a topic) may block up to the send timeout.
    pub fn send_oneway(&self, msg: Message) -> Result<()> {
        let op = self.inner().stats.begin(&msg, true);
        op.end_oneway(self.inner().send_oneway(msg))
    }

    /// The queues sends to `topic` can go to (fetching the route if needed), for selectors.
    pub fn publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let inner = self.inner();
        prepare::check_topic(topic)?;
        let deadline = Instant::now() + inner.config.send_timeout();
        let info = inner.publish_info(&prepare::wire_topic(topic, &inner.config), deadline)?;
        Ok(info
            .queues()
            .iter()
            .map(|q| MessageQueue::new(topic, q.broker_name(), q.queue_id()))
            .collect())
    }

    /// Stops taking sends, waits up to `timeout` for in-flight ones, fails the rest with
    /// [`Error::Shutdown`], unregisters from every broker and joins every thread. Idempotent.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.inner().shutdown(timeout)
    }

    /// Moves the clock that fault tolerance and routing see forward by `by`, so tests can end
    /// a broker's isolation without sleeping. Not for production use.
    #[doc(hidden)]
    pub fn advance_routing_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner()
            .routing_clock_skew_ms
            .fetch_add(ms, Ordering::Relaxed);
    }

    /// Asynchronous sends in flight now: (count, bytes). Backpressure bounds both.
    pub fn in_flight(&self) -> (usize, usize) {
        self.inner().in_flight.current()
    }

    /// A snapshot of this producer's statistics: sends, failures by kind, retries, bytes,
    /// latency percentiles and rates, per producer, topic and broker. See [`stats`] for the
    /// definitions and the JSON schema. All zero when [`ProducerConfig::stats`] is off.
    pub fn stats(&self) -> stats::ProducerStats {
        self.inner().stats_snapshot()
    }

    /// A health report: the producer's state, name server reachability, the route cache, and
    /// per broker isolation, failures, last error, latency, in-flight attempts and connection
    /// state. See [`health`] for the JSON schema.
    pub fn health(&self) -> health::HealthReport {
        self.inner().health_report()
    }

    /// Whether [`Producer::shutdown`] has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner().state.load(Ordering::Acquire) != RUNNING
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("group", &self.inner().config.group())
            .field("client_id", &self.inner().client_id)
            .finish_non_exhaustive()
    }
}

impl ProducerConfigBuilder {
    /// Validates the settings and starts a [`Producer`] with them.
    pub fn start(self) -> Result<Producer> {
        Producer::start(self.build()?)
    }
}

/// What a synchronous send goes to (the selector borrowed from the caller).
enum SyncTarget<'a> {
    Auto,
    Queue(MessageQueue),
    Selector(&'a dyn QueueSelector, &'a str),
}

/// A message or batch not yet prepared.
enum Prep {
    Single(Message),
    Batch(Vec<Message>),
}

/// The clock used for born timestamps and ids.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The first non-loopback local IPv4 address, found by asking the routing table (no packet
/// is sent); loopback if there is none.
fn local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect("10.254.254.254:1")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// Routes broker-initiated requests to the hooks a producer installed; holds the producer
/// weakly so the remoting client does not keep it alive.
struct ServerRequests(std::sync::Weak<Inner>);

impl RequestHandler for ServerRequests {
    fn handle_request(&self, addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let inner = self.0.upgrade()?;
        let hook = inner
            .server_hooks
            .read()
            .iter()
            .find(|(code, _)| *code == request.code)
            .map(|(_, h)| h.clone());
        if let Some(hook) = hook {
            return hook(addr, request);
        }
        match request.code {
            RequestCode::NOTIFY_CONSUMER_IDS_CHANGED => None,
            _ if request.is_oneway() => None,
            code => Some(
                RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, request.opaque)
                    .with_remark(format!(" request type {code} not supported")),
            ),
        }
    }
}

impl Inner {
    fn start(config: ProducerConfig) -> Result<Arc<Inner>> {
        let remoting = RemotingClient::new(RemotingConfig {
            io_threads: config.io_threads(),
            callback_threads: config.callback_threads(),
            connect_timeout: config.connect_timeout(),
            ..RemotingConfig::default()
        })?;
        let ip = match config.client_ip() {
            Some(ip) => ip,
            None => local_ip(),
        };
        let instance = if config.instance_name() == "DEFAULT" {
            // Java: `pid#System.nanoTime()`; any per-process unique suffix serves.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}#{nanos}", std::process::id())
        } else {
            config.instance_name().to_string()
        };
        let mut client_id = format!("{ip}@{instance}");
        if let Some(unit) = config.unit_name().filter(|u| !u.trim().is_empty()) {
            client_id.push('@');
            client_id.push_str(unit);
        }
        let in_flight = if config.backpressure() {
            InFlight::new(Some((config.max_in_flight(), config.max_in_flight_bytes())))
        } else {
            InFlight::new(None)
        };
        let router = MessageRouter::from_config(&config);
        let inner = Arc::new(Inner {
            namesrv: NameServers::new(config.name_servers().to_vec()),
            ids: UniqIdGenerator::new(ip, std::process::id()),
            defaults: SendDefaults {
                group: config.group().to_string(),
                create_topic_key: config.create_topic_key().to_string(),
                default_topic_queue_nums: config.default_topic_queue_nums() as i32,
            },
            mapping: TopicBrokerMapping::new(),
            router,
            client_id,
            remoting,
            in_flight,
            sync_in_flight: InFlight::new(None),
            state: AtomicU8::new(RUNNING),
            routing_clock_skew_ms: AtomicU64::new(0),
            heartbeated: Mutex::new(Vec::new()),
            service: Mutex::new(None),
            batcher: config
                .auto_batch()
                .then(|| batch::Accumulator::new(&config)),
            server_hooks: RwLock::new(Vec::new()),
            stats: stats::StatsRecorder::new(config.stats()),
            spent: crossbeam_channel::unbounded(),
            config,
        });
        inner
            .remoting
            .set_request_handler(Arc::new(ServerRequests(Arc::downgrade(&inner))));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let service_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("rocketmq-service".into())
            .spawn(move || service_inner.service_loop(stop_rx))
            .map_err(|e| Error::config("service thread", e.to_string()))?;
        *inner.service.lock() = Some((stop_tx, thread));
        if let Some(acc) = &inner.batcher {
            if let Err(e) = acc.start(&inner) {
                let _ = inner.shutdown(Duration::ZERO);
                return Err(e);
            }
        }
        Ok(inner)
    }

    /// The clock the fault table and the router see: real time plus a skew that tests can
    /// advance instead of sleeping.
    pub(crate) fn routing_now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.routing_clock_skew_ms.load(Ordering::Relaxed))
    }

    fn check_running(&self) -> Result<()> {
        if self.state.load(Ordering::Acquire) == RUNNING {
            Ok(())
        } else {
            Err(Error::Shutdown)
        }
    }

    pub(crate) fn new_msg_id(&self) -> String {
        self.ids.next_id(now_ms())
    }

    /// The publish info of `wire_topic`, fetched from the name servers if it is not cached.
    /// The last good route stays in the cache when a lookup fails.
    pub(crate) fn publish_info(
        &self,
        wire_topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicPublishInfo>> {
        let now = Instant::now();
        if let Some(info) = self.mapping.get(wire_topic, now) {
            if !info.queues().is_empty() {
                return Ok(info);
            }
        }
        let fetched = self.refresh_route(wire_topic, deadline);
        match self.mapping.get(wire_topic, Instant::now()) {
            Some(info) if !info.queues().is_empty() => Ok(info),
            _ => Err(match fetched {
                Err(Error::NoRoute { .. }) | Ok(()) => Error::NoRoute {
                    topic: wire_topic.to_string(),
                    reason: match fetched {
                        Err(e) => e.to_string(),
                        Ok(()) => "the route has no writable queue with a master".into(),
                    },
                },
                Err(e) => Error::NoRoute {
                    topic: wire_topic.to_string(),
                    reason: e.to_string(),
                },
            }),
        }
    }

    /// Fetches the route of `wire_topic` and updates the cache; falls back to the create-topic
    /// key's route (TBW102) when the topic does not exist yet.
    fn refresh_route(&self, wire_topic: &str, deadline: Instant) -> Result<()> {
        let api = self.config.client_api_timeout();
        match self
            .namesrv
            .fetch_route(&self.remoting, wire_topic, api, deadline)
        {
            Ok(route) => {
                if self
                    .mapping
                    .update_route(wire_topic, &route, Instant::now())
                {
                    self.heartbeat_new_brokers();
                }
                Ok(())
            }
            Err(e) if e.response_code() == Some(ResponseCode::TOPIC_NOT_EXIST) => {
                if self.mapping.get(wire_topic, Instant::now()).is_some() {
                    // Keep the fallback route we already use.
                    return Ok(());
                }
                let key = self.config.create_topic_key();
                let default = self
                    .namesrv
                    .fetch_route(&self.remoting, key, api, deadline)
                    .map_err(|d| Error::NoRoute {
                        topic: wire_topic.to_string(),
                        reason: format!("{e}; and the route of {key}: {d}"),
                    })?;
                self.mapping.update_from_default(
                    wire_topic,
                    &default,
                    self.config.default_topic_queue_nums(),
                    Instant::now(),
                );
                self.heartbeat_new_brokers();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The address to send to for `broker_name` (the master; the VIP port when configured).
    fn broker_addr(&self, broker_name: &str) -> Option<String> {
        let addr = self.mapping.master_addr(broker_name)?;
        if self.config.vip_channel() {
            if let Some((host, port)) = addr.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    return Some(format!("{host}:{}", port.saturating_sub(2)));
                }
            }
        }
        Some(addr)
    }

    fn attempt_timeout(&self, deadline: Instant, now: Instant) -> Duration {
        let left = deadline.saturating_duration_since(now);
        match self.config.per_attempt_timeout() {
            Some(cap) => left.min(cap),
            None => left,
        }
    }

    fn budget_exhausted(&self) -> Error {
        Error::Timeout {
            addr: String::new(),
            after: self.config.send_timeout(),
        }
    }

    /// Records an attempt's outcome in the fault table (and statistics).
    fn record_attempt(&self, broker_name: &str, latency: Duration, result: &Result<SendResult>) {
        let now = self.routing_now();
        match result {
            Ok(_) => self
                .router
                .update_fault(broker_name, latency, false, true, now),
            Err(e) => {
                let reachable = !matches!(e, Error::Broker { .. });
                self.router
                    .update_fault(broker_name, latency, true, reachable, now);
                self.router.record_error(broker_name, e.to_string());
            }
        }
    }

    fn should_retry(&self, result: &Result<SendResult>) -> bool {
        match result {
            Ok(r) => {
                r.status != SendStatus::SendOk
                    && self.config.retry_another_broker_when_not_store_ok()
            }
            Err(e) => e.is_retriable_with(self.config.retry_codes()),
        }
    }

    /// Picks the queue for an automatic attempt.
    fn select_auto(
        &self,
        info: &TopicPublishInfo,
        prepared: &Prepared,
        last_broker: Option<&str>,
    ) -> Result<MessageQueue> {
        self.router
            .select_queue(
                info,
                prepared.first_key.as_deref(),
                last_broker,
                self.routing_now(),
            )
            .ok_or_else(|| Error::NoRoute {
                topic: prepared.topic.clone(),
                reason: "the route has no queue".into(),
            })
    }

    fn run_selector(
        selector: &dyn QueueSelector,
        info: &TopicPublishInfo,
        msg: &Message,
        arg: &str,
    ) -> Result<MessageQueue> {
        let queues = info.queues();
        if queues.is_empty() {
            return Err(Error::NoRoute {
                topic: msg.topic().to_string(),
                reason: "the route has no queue".into(),
            });
        }
        let picked = catch_unwind(AssertUnwindSafe(|| selector.select(queues, msg, arg)))
            .map_err(|_| Error::User("the queue selector panicked".into()))?;
        Ok(queues[picked % queues.len()].clone())
    }

    fn send_sync(&self, msg: Message, target: SyncTarget<'_>) -> Result<SendResult> {
        self.check_running()?;
        prepare::check_message(&msg, &self.config)?;
        let deadline = Instant::now() + self.config.send_timeout();
        let queue = match target {
            SyncTarget::Auto => None,
            SyncTarget::Queue(q) => Some(q),
            SyncTarget::Selector(selector, arg) => {
                let info =
                    self.publish_info(&prepare::wire_topic(msg.topic(), &self.config), deadline)?;
                Some(Self::run_selector(selector, &info, &msg, arg)?)
            }
        };
        let prepared = prepare::prepare_single(msg, &self.config, || self.new_msg_id())?;
        let _permit = self.sync_in_flight.acquire_unbounded(prepared.size);
        self.send_prepared_sync(&prepared, queue, deadline)
    }

    /// The synchronous attempt loop: all attempts and route lookups share `deadline`.
    pub(crate) fn send_prepared_sync(
        &self,
        prepared: &Prepared,
        fixed_queue: Option<MessageQueue>,
        deadline: Instant,
    ) -> Result<SendResult> {
        let attempts = if fixed_queue.is_some() {
            1
        } else {
            1 + self.config.retries()
        };
        let mut last_broker: Option<Arc<str>> = None;
        let mut last_error = None;
        for _ in 0..attempts {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let queue = match &fixed_queue {
                Some(q) => q.clone(),
                None => {
                    let info = self.publish_info(&prepared.wire_topic, deadline)?;
                    self.select_auto(&info, prepared, last_broker.as_deref())?
                }
            };
            let Some(addr) = self.broker_addr_or_refresh(&prepared.wire_topic, &queue, deadline)
            else {
                last_error = Some(Error::NoRoute {
                    topic: prepared.topic.clone(),
                    reason: format!("no master address for broker {}", queue.broker_name()),
                });
                last_broker = Some(queue.broker_name_arc().clone());
                continue;
            };
            let attempt = self
                .stats
                .attempt(prepared, queue.broker_name(), last_broker.is_some());
            let started = Instant::now();
            let timeout = self.attempt_timeout(deadline, started);
            let result = self
                .send_frame_sync(prepared, &queue, &addr, timeout)
                .and_then(|response| broker::send_result(response, prepared, &queue, &addr));
            attempt.end(started, &result);
            self.record_attempt(queue.broker_name(), started.elapsed(), &result);
            if fixed_queue.is_none() && self.should_retry(&result) {
                log::debug!(
                    "send of {} to {addr} will be retried: {result:?}",
                    prepared.msg_id
                );
                last_broker = Some(queue.broker_name_arc().clone());
                match result {
                    Ok(r) => return self.retry_not_ok(prepared, r, deadline, &last_broker),
                    Err(e) => last_error = Some(e),
                }
                continue;
            }
            return result;
        }
        Err(match last_error {
            Some(e) if Instant::now() < deadline || e.is_timeout() => e,
            _ => self.budget_exhausted(),
        })
    }

    /// `retryAnotherBrokerWhenNotStoreOK`: the message is stored but not flushed/replicated;
    /// try once more elsewhere and fall back to the first result.
    fn retry_not_ok(
        &self,
        prepared: &Prepared,
        first: SendResult,
        deadline: Instant,
        last_broker: &Option<Arc<str>>,
    ) -> Result<SendResult> {
        let Ok(info) = self.publish_info(&prepared.wire_topic, deadline) else {
            return Ok(first);
        };
        let Ok(queue) = self.select_auto(&info, prepared, last_broker.as_deref()) else {
            return Ok(first);
        };
        let Some(addr) = self.broker_addr(queue.broker_name()) else {
            return Ok(first);
        };
        let attempt = self.stats.attempt(prepared, queue.broker_name(), true);
        let started = Instant::now();
        let result = self
            .send_frame_sync(
                prepared,
                &queue,
                &addr,
                self.attempt_timeout(deadline, started),
            )
            .and_then(|response| broker::send_result(response, prepared, &queue, &addr));
        attempt.end(started, &result);
        self.record_attempt(queue.broker_name(), started.elapsed(), &result);
        match result {
            Ok(r) if r.status == SendStatus::SendOk => Ok(r),
            _ => Ok(first),
        }
    }

    /// The broker's address; refreshes the topic's route once if it is unknown.
    fn broker_addr_or_refresh(
        &self,
        wire_topic: &str,
        queue: &MessageQueue,
        deadline: Instant,
    ) -> Option<String> {
        if let Some(addr) = self.broker_addr(queue.broker_name()) {
            return Some(addr);
        }
        let _ = self.refresh_route(wire_topic, deadline);
        self.broker_addr(queue.broker_name())
    }

    fn send_oneway(&self, msg: Message) -> Result<()> {
        self.check_running()?;
        let prepared = prepare::prepare_single(msg, &self.config, || self.new_msg_id())?;
        let deadline = Instant::now() + self.config.send_timeout();
        let info = self.publish_info(&prepared.wire_topic, deadline)?;
        let queue = self.select_auto(&info, &prepared, None)?;
        let addr = self
            .broker_addr_or_refresh(&prepared.wire_topic, &queue, deadline)
            .ok_or_else(|| Error::NoRoute {
                topic: prepared.topic.clone(),
                reason: format!("no master address for broker {}", queue.broker_name()),
            })?;
        let born = now_ms();
        let request = self.remoting.encode_request(&addr, true, |spec, out| {
            broker::encode_send_frame(&prepared, &queue, &self.defaults, born, spec, out)
        })?;
        self.remoting.send_encoded_oneway(request)
    }

    /// One synchronous attempt: the frame encoded straight from `prepared`.
    fn send_frame_sync(
        &self,
        prepared: &Prepared,
        queue: &MessageQueue,
        addr: &str,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let born = now_ms();
        let request = self.remoting.encode_request(addr, false, |spec, out| {
            broker::encode_send_frame(prepared, queue, &self.defaults, born, spec, out)
        })?;
        self.remoting.send_encoded_sync(request, timeout)
    }

    /// Hands `msg` to the auto-batch accumulator when it takes it; the handle resolves with
    /// the message's own result. Gives the message back otherwise.
    #[allow(clippy::result_large_err)] // the message is handed back, not an error
    fn send_batched(
        self: &Arc<Self>,
        msg: Message,
        target: Target,
    ) -> std::result::Result<crate::remoting::Handle<SendResult>, Message> {
        match &self.batcher {
            Some(acc) if self.check_running().is_ok() && acc.accepts(&msg, &target) => {
                self.free_spent();
                let (completer, handle) = crate::remoting::pair();
                acc.add(
                    self,
                    msg,
                    target,
                    Done::Handle(completer),
                    stats::Op::none(),
                );
                Ok(handle)
            }
            _ => Err(msg),
        }
    }

    /// Frees what finished sends left behind (two per send keeps up with one per send; the
    /// rest goes at shutdown).
    fn free_spent(&self) {
        for _ in 0..2 {
            match self.spent.1.try_recv() {
                Ok(spent) => drop(spent),
                Err(_) => break,
            }
        }
    }

    fn send_async(self: &Arc<Self>, prep: Prep, target: Target, done: Done) {
        self.free_spent();
        let mut op = self.stats.begin_prep(&prep);
        let prep = match (prep, &self.batcher) {
            (Prep::Single(msg), Some(acc))
                if self.check_running().is_ok() && acc.accepts(&msg, &target) =>
            {
                return acc.add(self, msg, target, done, op);
            }
            (prep, _) => prep,
        };
        match self.prepare_async(prep, &target) {
            Ok((prepared, permit)) => self.start_async(prepared, permit, target, done, op),
            Err(e) => {
                op.fail(&e);
                finish_done(self, done, Err(e), true)
            }
        }
    }

    /// Sends what the auto-batch accumulator admitted (it bounds their memory): no check that
    /// the producer runs (shutdown flushes batches), no wait for in-flight room. The callers'
    /// statistics are kept by the accumulator, not here.
    fn launch_async(self: &Arc<Self>, prep: Prep, target: Target, done: Done) {
        self.free_spent();
        let prepared = match prep {
            Prep::Single(msg) => prepare::prepare_single(msg, &self.config, || self.new_msg_id()),
            Prep::Batch(msgs) => prepare::prepare_batch(msgs, &self.config, || self.new_msg_id()),
        };
        match prepared {
            Ok(prepared) => {
                let permit = self.in_flight.acquire_unbounded(prepared.size);
                self.start_async(prepared, permit, target, done, stats::Op::none());
            }
            Err(e) => finish_done(self, done, Err(e), true),
        }
    }

    fn start_async(
        self: &Arc<Self>,
        prepared: Prepared,
        permit: Permit,
        target: Target,
        done: Done,
        op: stats::Op,
    ) {
        let attempts_left = match target {
            Target::Auto => self.config.async_retries(),
            _ => 0,
        };
        let job = Box::new(AsyncSend {
            inner: self.clone(),
            deadline: Instant::now() + self.config.send_timeout(),
            prepared,
            target,
            attempts_left,
            last_broker: None,
            last_error: None,
            done: Some(done),
            _permit: Some(permit),
            op,
        });
        job.attempt(true);
    }

    fn prepare_async(&self, prep: Prep, target: &Target) -> Result<(Prepared, Permit)> {
        self.check_running()?;
        let prepared = match prep {
            Prep::Single(msg) => {
                if let Target::Selector(..) = target {
                    prepare::check_message(&msg, &self.config)?;
                }
                prepare::prepare_single(msg, &self.config, || self.new_msg_id())?
            }
            Prep::Batch(msgs) => prepare::prepare_batch(msgs, &self.config, || self.new_msg_id())?,
        };
        let permit = if on_callback_thread() {
            // A callback that sends must not wait for room: room is made by the very callback
            // threads it would block.
            self.in_flight.acquire_unbounded(prepared.size)
        } else {
            let deadline = Instant::now() + self.config.send_timeout();
            self.in_flight.acquire(prepared.size, deadline)?
        };
        Ok((prepared, permit))
    }

    /// Heartbeats brokers that have not had one yet (new routes), without blocking.
    fn heartbeat_new_brokers(&self) {
        let brokers = self.mapping.broker_addrs_for_heartbeat();
        let fresh: Vec<String> = {
            let mut seen = self.heartbeated.lock();
            brokers
                .into_iter()
                .map(|(_, addr)| addr)
                .filter(|addr| {
                    let new = !seen.contains(addr);
                    if new {
                        seen.push(addr.clone());
                    }
                    new
                })
                .collect()
        };
        for addr in fresh {
            self.heartbeat(&addr);
        }
    }

    fn heartbeat(&self, addr: &str) {
        let request =
            broker::heartbeat_request(&self.client_id, &[self.config.group().to_string()]);
        let target = addr.to_string();
        self.remoting.invoke_async(
            addr,
            request,
            self.config.client_api_timeout(),
            Completion::Callback(Box::new(move |result| match result {
                Ok(r) if r.code == ResponseCode::SUCCESS => {
                    log::trace!("heartbeat to {target} ok")
                }
                Ok(r) => log::warn!("heartbeat to {target}: code {} {}", r.code, r.remark_str()),
                Err(e) => log::warn!("heartbeat to {target} failed: {e}"),
            })),
        );
    }

    fn heartbeat_all(&self) {
        let brokers = self.mapping.broker_addrs_for_heartbeat();
        {
            let mut seen = self.heartbeated.lock();
            seen.clear();
            seen.extend(brokers.iter().map(|(_, a)| a.clone()));
        }
        for (_, addr) in brokers {
            self.heartbeat(&addr);
        }
    }

    fn refresh_all_routes(&self) {
        let now = Instant::now();
        for topic in self.mapping.expire_unused(now, self.config.route_expiry()) {
            log::debug!("route of unused topic {topic} expired");
        }
        for topic in self.mapping.topics() {
            if self.state.load(Ordering::Acquire) != RUNNING {
                return;
            }
            let deadline = Instant::now() + self.config.client_api_timeout();
            if let Err(e) = self.refresh_route(&topic, deadline) {
                log::warn!("route refresh of {topic} failed, keeping the last good route: {e}");
            }
        }
        self.mapping.clean_offline_brokers();
    }

    fn service_loop(self: Arc<Self>, stop: Receiver<()>) {
        let mut next_route = Instant::now() + self.config.route_refresh_interval();
        let mut next_heartbeat = Instant::now() + Duration::from_secs(1);
        loop {
            let wake = next_route.min(next_heartbeat);
            match stop.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let now = Instant::now();
            if now >= next_route {
                self.refresh_all_routes();
                next_route = Instant::now() + self.config.route_refresh_interval();
            }
            if now >= next_heartbeat {
                self.heartbeat_all();
                next_heartbeat = Instant::now() + self.config.heartbeat_interval();
            }
        }
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<()> {
        if self
            .state
            .compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        if let Some(acc) = &self.batcher {
            // Open batches leave now; the wait below covers them.
            acc.close();
        }
        let drained = self.in_flight.wait_idle(deadline) && self.sync_in_flight.wait_idle(deadline);
        if !drained {
            let (n, _) = self.in_flight.current();
            log::warn!("shutdown deadline reached with {n} sends in flight; failing them");
        }
        if let Some((stop, thread)) = self.service.lock().take() {
            let _ = stop.send(());
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let api = self
            .config
            .client_api_timeout()
            .min(left.max(Duration::from_millis(200)));
        for (_, addr) in self.mapping.all_broker_addrs() {
            let request = broker::unregister_request(&self.client_id, self.config.group());
            match self.remoting.invoke_sync(&addr, request, api) {
                Ok(r) if r.code == ResponseCode::SUCCESS => {}
                Ok(r) => log::warn!("unregister at {addr}: code {} {}", r.code, r.remark_str()),
                Err(e) => log::warn!("unregister at {addr} failed: {e}"),
            }
        }
        self.remoting.shutdown();
        // No I/O thread is left to finish a send: free what they left (it holds this producer).
        while let Ok(spent) = self.spent.1.try_recv() {
            drop(spent);
        }
        self.state.store(STOPPED, Ordering::Release);
        Ok(())
    }
}

/// Whether the current thread is one of the callback pool's.
fn on_callback_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("rocketmq-callback"))
}

/// Ends an asynchronous send: completes its handle or runs its callback on the pool.
fn finish_done(inner: &Inner, done: Done, result: Result<SendResult>, on_caller: bool) {
    match done {
        Done::Handle(completer) => {
            completer.complete(result);
        }
        Done::Callback(callback) => {
            let run = move || {
                if catch_unwind(AssertUnwindSafe(|| callback(result))).is_err() {
                    log::error!("a send callback panicked");
                }
            };
            if on_caller {
                // User code runs on the callback pool, not on the caller's thread; only when
                // the pool is gone (shutdown) does it run here, so that it still runs once.
                let slot = Arc::new(Mutex::new(Some(run)));
                let pooled = slot.clone();
                let task = Box::new(move || {
                    if let Some(run) = pooled.lock().take() {
                        run();
                    }
                });
                if inner.remoting.execute(task).is_err() {
                    if let Some(run) = slot.lock().take() {
                        run();
                    }
                }
            } else {
                run();
            }
        }
    }
}

/// One asynchronous send across its attempts. Ends exactly once: `finish`, or `Drop` with
/// [`Error::Shutdown`] as a last line of defence.
struct AsyncSend {
    inner: Arc<Inner>,
    prepared: Prepared,
    target: Target,
    deadline: Instant,
    attempts_left: u32,
    last_broker: Option<Arc<str>>,
    last_error: Option<Error>,
    done: Option<Done>,
    _permit: Option<Permit>,
    /// Statistics of this send.
    op: stats::Op,
}

impl AsyncSend {
    /// Runs one attempt. On the caller's thread it only uses cached routes; a miss moves the
    /// attempt to the callback pool, where lookups may block.
    fn attempt(mut self: Box<Self>, on_caller: bool) {
        let now = Instant::now();
        if now >= self.deadline {
            let e = self
                .last_error
                .take()
                .filter(Error::is_timeout)
                .unwrap_or_else(|| self.inner.budget_exhausted());
            return self.finish(Err(e), on_caller);
        }
        if self.inner.state.load(Ordering::Acquire) == STOPPED {
            return self.finish(Err(Error::Shutdown), on_caller);
        }
        let queue = match self.pick_queue(on_caller) {
            Ok(Some(q)) => q,
            Ok(None) => return self.defer(),
            Err(e) => return self.finish(Err(e), on_caller),
        };
        let addr = match self.inner.broker_addr(queue.broker_name()) {
            Some(a) => a,
            None if on_caller => return self.defer(),
            None => match self.inner.broker_addr_or_refresh(
                &self.prepared.wire_topic,
                &queue,
                self.deadline,
            ) {
                Some(a) => a,
                None => {
                    let e = Error::NoRoute {
                        topic: self.prepared.topic.clone(),
                        reason: format!("no master address for broker {}", queue.broker_name()),
                    };
                    return self.finish(Err(e), on_caller);
                }
            },
        };
        let born = now_ms();
        let encoded = self
            .inner
            .remoting
            .encode_request(&addr, false, |spec, out| {
                broker::encode_send_frame(
                    &self.prepared,
                    &queue,
                    &self.inner.defaults,
                    born,
                    spec,
                    out,
                )
            });
        let request = match encoded {
            Ok(r) => r,
            Err(e) => return self.finish(Err(e), on_caller),
        };
        let attempt = self.inner.stats.attempt(
            &self.prepared,
            queue.broker_name(),
            self.last_broker.is_some(),
        );
        let started = Instant::now();
        let timeout = self.inner.attempt_timeout(self.deadline, started);
        let remoting = self.inner.remoting.clone();
        // The response is mapped on the I/O thread (no user code runs there: a callback
        // goes to the pool, a retry too); a failed request ends on the pool.
        remoting.send_encoded_inline(
            request,
            timeout,
            Box::new(move |response| {
                let on_io = response.is_ok();
                self.on_response(response, queue, addr, started, attempt, on_io)
            }),
        );
    }

    /// The queue for this attempt; `Ok(None)` when the route must be fetched first and we are
    /// on the caller's thread.
    fn pick_queue(&self, on_caller: bool) -> Result<Option<MessageQueue>> {
        let wire_topic = &self.prepared.wire_topic;
        let info = match &self.target {
            Target::Queue(q) => return Ok(Some(q.clone())),
            _ if on_caller => match self.inner.mapping.get(wire_topic, Instant::now()) {
                Some(info) if !info.queues().is_empty() => info,
                _ => return Ok(None),
            },
            _ => self.inner.publish_info(wire_topic, self.deadline)?,
        };
        match &self.target {
            Target::Selector(selector, arg) => {
                // The selector sees the message as the user built it, but the body may be
                // compressed already: give it the metadata it routes on.
                let view = Message::new(self.prepared.topic.clone(), Vec::new());
                let view = match &self.prepared.first_key {
                    Some(k) => view.with_keys([k.as_str()]),
                    None => view,
                };
                Inner::run_selector(selector.as_ref(), &info, &view, arg).map(Some)
            }
            _ => self
                .inner
                .select_auto(&info, &self.prepared, self.last_broker.as_deref())
                .map(Some),
        }
    }

    /// Moves the attempt to the callback pool (route lookups block).
    fn defer(self: Box<Self>) {
        let remoting = self.inner.remoting.clone();
        let mut slot = Some(self);
        let task = Box::new(move || {
            if let Some(job) = slot.take() {
                job.attempt(false);
            }
        });
        // If the pool is gone, the task (and the job in it) is dropped: Drop ends the send
        // with Shutdown.
        if let Err(e) = remoting.execute(task) {
            log::debug!("could not defer an async send: {e}");
        }
    }

    fn on_response(
        mut self: Box<Self>,
        response: Result<RemotingCommand>,
        queue: MessageQueue,
        addr: String,
        started: Instant,
        attempt: stats::Attempt,
        on_io: bool,
    ) {
        let result = response.and_then(|r| broker::send_result(r, &self.prepared, &queue, &addr));
        attempt.end(started, &result);
        self.inner
            .record_attempt(queue.broker_name(), started.elapsed(), &result);
        let retry = self.attempts_left > 0
            && matches!(self.target, Target::Auto)
            && result.is_err()
            && self.inner.should_retry(&result)
            && Instant::now() < self.deadline
            && self.inner.state.load(Ordering::Acquire) == RUNNING;
        if retry {
            self.attempts_left -= 1;
            self.last_broker = Some(queue.broker_name_arc().clone());
            if let Err(e) = result {
                log::debug!("async send to {addr} will be retried: {e}");
                self.last_error = Some(e);
            }
            if on_io {
                return self.defer(); // route lookups may block: not on the I/O thread
            }
            return self.attempt(false);
        }
        // On the I/O thread a handle completes here and a callback goes to the pool.
        self.finish(result, on_io);
    }

    fn finish(mut self: Box<Self>, result: Result<SendResult>, on_caller: bool) {
        // Release the in-flight share first: a callback that sends again must find room.
        self._permit = None;
        self.op.record(&result);
        if let Some(done) = self.done.take() {
            finish_done(&self.inner, done, result, on_caller);
        }
        if on_caller {
            // Finished on the I/O thread: leave the freeing to the sending side.
            let spent = self.inner.spent.0.clone();
            if let Err(e) = spent.send(self) {
                drop(e.into_inner());
            }
        }
    }
}

impl Drop for AsyncSend {
    fn drop(&mut self) {
        self._permit = None;
        self.op.fail(&Error::Shutdown);
        if let Some(done) = self.done.take() {
            match done {
                Done::Handle(completer) => {
                    completer.complete(Err(Error::Shutdown));
                }
                Done::Callback(callback) => {
                    if catch_unwind(AssertUnwindSafe(|| callback(Err(Error::Shutdown)))).is_err() {
                        log::error!("a send callback panicked");
                    }
                }
            }
        }
    }
}
