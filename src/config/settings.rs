//! [`ProducerConfig`]: every setting, its default and its getter (what each one means).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::producer::hooks::SendHook;
use crate::protocol::acl::{Credentials, Secret, SignatureAlgorithm};
use crate::protocol::SerializeType;
use crate::routing::fault::FaultTables;
use crate::routing::router::RoutingStrategy;

/// Default [`ProducerConfig::instance_name`]: `"DEFAULT"` (the producer replaces it with a
/// per-process name at start, as Java does).
pub const DEFAULT_INSTANCE_NAME: &str = "DEFAULT";
/// Default [`ProducerConfig::send_timeout`]: 3 s.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// Default [`ProducerConfig::retries`]: 2 (3 attempts).
pub const DEFAULT_RETRIES: u32 = 2;
/// Default [`ProducerConfig::async_retries`]: 2.
pub const DEFAULT_ASYNC_RETRIES: u32 = 2;
/// Default [`ProducerConfig::retry_another_broker_when_not_store_ok`]: false.
pub const DEFAULT_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK: bool = false;
/// Default [`ProducerConfig::max_message_size`]: 4 MiB (4 194 304 bytes).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default [`ProducerConfig::compress_threshold`]: 4096 bytes.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 4096;
/// Default [`ProducerConfig::compress_level`]: 5.
pub const DEFAULT_COMPRESS_LEVEL: u32 = 5;
/// Default [`ProducerConfig::default_topic_queue_nums`]: 4.
pub const DEFAULT_TOPIC_QUEUE_NUMS: u32 = 4;
/// Default [`ProducerConfig::create_topic_key`]: `"TBW102"`.
pub const DEFAULT_CREATE_TOPIC_KEY: &str = "TBW102";
/// Default [`ProducerConfig::heartbeat_interval`]: 30 s.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Default [`ProducerConfig::route_refresh_interval`]: 30 s.
pub const DEFAULT_ROUTE_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Default [`ProducerConfig::route_expiry`]: 30 minutes.
pub const DEFAULT_ROUTE_EXPIRY: Duration = Duration::from_secs(30 * 60);
/// Default [`ProducerConfig::client_api_timeout`]: 3 s.
pub const DEFAULT_CLIENT_API_TIMEOUT: Duration = Duration::from_secs(3);
/// Default [`ProducerConfig::connect_timeout`]: 3 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default [`ProducerConfig::close_on_request_timeout`]: true (Java's
/// `clientCloseSocketIfTimeout`).
pub const DEFAULT_CLOSE_ON_REQUEST_TIMEOUT: bool = true;
/// Default [`ProducerConfig::tcp_keepalive`]: 30 s.
pub const DEFAULT_TCP_KEEPALIVE: Option<Duration> = Some(crate::remoting::DEFAULT_TCP_KEEPALIVE);
/// Default [`ProducerConfig::max_connection_output_bytes`]: 128 MiB.
pub const DEFAULT_MAX_CONNECTION_OUTPUT_BYTES: usize =
    crate::remoting::DEFAULT_MAX_CONNECTION_OUTPUT_BYTES;
/// Default [`ProducerConfig::io_threads`]: 1.
pub const DEFAULT_IO_THREADS: usize = 1;
/// Default [`ProducerConfig::callback_threads`]: 4.
pub const DEFAULT_CALLBACK_THREADS: usize = 4;
/// Default [`ProducerConfig::backpressure`]: on.
pub const DEFAULT_BACKPRESSURE: bool = true;
/// Default [`ProducerConfig::max_in_flight`]: 1024 (Java develop HEAD's
/// `backPressureForAsyncSendNum`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default [`ProducerConfig::max_in_flight_bytes`]: 100 MiB (Java's
/// `backPressureForAsyncSendSize`).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 100 * 1024 * 1024;
/// Default [`ProducerConfig::fault_tolerance`]: on.
pub const DEFAULT_FAULT_TOLERANCE: bool = true;
/// Default [`ProducerConfig::routing_strategy`]: round robin.
pub const DEFAULT_ROUTING_STRATEGY: RoutingStrategy = RoutingStrategy::RoundRobin;
/// Default [`ProducerConfig::serialize_type`]: JSON (Java's `rocketmq.serialize.type` default).
pub const DEFAULT_SERIALIZE_TYPE: SerializeType = SerializeType::Json;
/// Default [`ProducerConfig::vip_channel`]: off.
pub const DEFAULT_VIP_CHANNEL: bool = false;
/// Default [`ProducerConfig::auto_batch`]: off.
pub const DEFAULT_AUTO_BATCH: bool = false;
/// Default [`ProducerConfig::batch_max_delay`]: 10 ms.
pub const DEFAULT_BATCH_MAX_DELAY: Duration = Duration::from_millis(10);
/// Default [`ProducerConfig::batch_max_bytes`]: 32 KiB.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 32 * 1024;
/// Default [`ProducerConfig::batch_total_max_bytes`]: 32 MiB.
pub const DEFAULT_BATCH_TOTAL_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Default [`ProducerConfig::stats`]: on.
pub const DEFAULT_STATS: bool = true;
/// Default [`ProducerConfig::transaction_check_threads`]: 1.
pub const DEFAULT_TRANSACTION_CHECK_THREADS: usize = 1;
/// Default [`ProducerConfig::transaction_check_queue`]: 2000.
pub const DEFAULT_TRANSACTION_CHECK_QUEUE: usize = 2000;
/// Default [`ProducerConfig::strict_order`]: off.
pub const DEFAULT_STRICT_ORDER: bool = false;
/// Default [`ProducerConfig::transaction_records`]: 10 000.
pub const DEFAULT_TRANSACTION_RECORDS: usize = 10_000;
/// Default [`ProducerConfig::transaction_record_age`]: 1 hour.
pub const DEFAULT_TRANSACTION_RECORD_AGE: Duration = Duration::from_secs(60 * 60);

/// Every producer setting, validated. Build one with [`ProducerConfig::builder`] or a preset.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    pub(super) group: String,
    pub(super) name_servers: Vec<String>,
    pub(super) instance_name: String,
    pub(super) client_ip: Option<IpAddr>,
    pub(super) send_timeout: Duration,
    pub(super) per_attempt_timeout: Option<Duration>,
    pub(super) retries: u32,
    pub(super) async_retries: u32,
    pub(super) retry_codes: Vec<i32>,
    pub(super) retry_another_broker_when_not_store_ok: bool,
    pub(super) max_message_size: usize,
    pub(super) compress_threshold: usize,
    pub(super) compress_level: u32,
    pub(super) default_topic_queue_nums: u32,
    pub(super) create_topic_key: String,
    pub(super) heartbeat_interval: Duration,
    pub(super) route_refresh_interval: Duration,
    pub(super) route_expiry: Duration,
    pub(super) client_api_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) close_on_request_timeout: bool,
    pub(super) tcp_keepalive: Option<Duration>,
    pub(super) max_connection_output_bytes: usize,
    pub(super) busy_poll: Duration,
    pub(super) io_threads: usize,
    pub(super) callback_threads: usize,
    pub(super) backpressure: bool,
    pub(super) max_in_flight: usize,
    pub(super) max_in_flight_bytes: usize,
    pub(super) fault_tolerance: bool,
    pub(super) fault_tables: FaultTables,
    pub(super) routing_strategy: RoutingStrategy,
    pub(super) namespace: Option<String>,
    pub(super) unit_name: Option<String>,
    pub(super) vip_channel: bool,
    pub(super) serialize_type: SerializeType,
    pub(super) auto_batch: bool,
    pub(super) batch_max_delay: Duration,
    pub(super) batch_max_bytes: usize,
    pub(super) batch_total_max_bytes: usize,
    pub(super) stats: bool,
    pub(super) transaction_check_threads: usize,
    pub(super) transaction_check_queue: usize,
    pub(super) access_key: Option<String>,
    pub(super) secret_key: Option<Secret>,
    pub(super) security_token: Option<Secret>,
    pub(super) signature_algorithm: SignatureAlgorithm,
    /// Built from the four above by `build`.
    pub(super) credentials: Option<Credentials>,
    pub(super) topics: Vec<String>,
    pub(super) strict_order: bool,
    pub(super) transaction_records: usize,
    pub(super) transaction_record_age: Duration,
    pub(super) send_hooks: crate::producer::hooks::HookList,
    pub(super) tls: super::tls::TlsSettings,
}

impl ProducerConfig {
    /// The producer group (`producerGroup`): brokers call back the group's producers for
    /// transaction checks. Rules (protocol.md 7.7): 1 to 120 characters of `[%|a-zA-Z0-9_-]`,
    /// not `DEFAULT_PRODUCER` or `CLIENT_INNER_PRODUCER`. No default: given to
    /// [`ProducerConfig::builder`].
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Name server addresses (`namesrvAddr`), `host:port` each (IPv6 as `[addr]:port`); routes
    /// are looked up on them in turn. No default: at least one is required.
    pub fn name_servers(&self) -> &[String] {
        &self.name_servers
    }

    /// Instance name (`instanceName`), part of the client id `ip@instance`. Default
    /// [`DEFAULT_INSTANCE_NAME`], which the producer replaces with a per-process name. No `@`
    /// and no whitespace.
    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// The IP address the client reports (`clientIP`, in the client id and heartbeats).
    /// Default `None`: the producer finds the local address itself.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Total time budget of one send (`sendMsgTimeout`), covering the route lookup and every
    /// attempt. Default [`DEFAULT_SEND_TIMEOUT`] (3 s); 1 ms to [`MAX_DURATION`](super::MAX_DURATION).
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// The most a single attempt may take (`sendMsgMaxTimeoutPerRequest`), within the send
    /// timeout. Default `None` (an attempt may use the whole remaining budget).
    pub fn per_attempt_timeout(&self) -> Option<Duration> {
        self.per_attempt_timeout
    }

    /// Extra attempts of a synchronous send after a retriable failure
    /// (`retryTimesWhenSendFailed`). Default [`DEFAULT_RETRIES`] (2, so 3 attempts); at most
    /// [`MAX_RETRIES`](super::MAX_RETRIES).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Extra attempts of an asynchronous send after a retriable failure
    /// (`retryTimesWhenSendAsyncFailed`). Default [`DEFAULT_ASYNC_RETRIES`] (2); at most
    /// [`MAX_RETRIES`](super::MAX_RETRIES).
    pub fn async_retries(&self) -> u32 {
        self.async_retries
    }

    /// Broker response codes that are retried on another broker (`retryResponseCodes`).
    /// Default [`DEFAULT_RETRY_CODES`](crate::error::DEFAULT_RETRY_CODES) (1, 2, 14, 16, 17, 204, 205, 1500). The success and
    /// "stored" codes 0, 10, 11, 12 are not allowed (see
    /// [`retry_another_broker_when_not_store_ok`](ProducerConfig::retry_another_broker_when_not_store_ok)).
    pub fn retry_codes(&self) -> &[i32] {
        &self.retry_codes
    }

    /// Whether a send answered with a "stored but not OK" status (flush or slave timeout, slave
    /// not available) is retried on another broker (`retryAnotherBrokerWhenNotStoreOK`).
    /// Default false: the status is returned to the caller.
    pub fn retry_another_broker_when_not_store_ok(&self) -> bool {
        self.retry_another_broker_when_not_store_ok
    }

    /// The largest message body (`maxMessageSize`); larger ones are rejected before sending.
    /// Default [`DEFAULT_MAX_MESSAGE_SIZE`] (4 MiB); 1 to [`MAX_MESSAGE_SIZE_LIMIT`](super::MAX_MESSAGE_SIZE_LIMIT).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Bodies of at least this many bytes are zlib-compressed (`compressMsgBodyOverHowmuch`);
    /// never batches. Default [`DEFAULT_COMPRESS_THRESHOLD`] (4096); `usize::MAX` turns
    /// compression off.
    pub fn compress_threshold(&self) -> usize {
        self.compress_threshold
    }

    /// zlib level for compressed bodies (`compressLevel`). Default [`DEFAULT_COMPRESS_LEVEL`]
    /// (5); 0 to 9.
    pub fn compress_level(&self) -> u32 {
        self.compress_level
    }

    /// Queue count asked for when a broker auto-creates a topic from the create-topic key
    /// (`defaultTopicQueueNums`). Default [`DEFAULT_TOPIC_QUEUE_NUMS`] (4); at least 1.
    pub fn default_topic_queue_nums(&self) -> u32 {
        self.default_topic_queue_nums
    }

    /// The template topic for auto-created topics (`createTopicKey`); its route is the fallback
    /// for a topic without one. Default [`DEFAULT_CREATE_TOPIC_KEY`] (`TBW102`); topic rules.
    pub fn create_topic_key(&self) -> &str {
        &self.create_topic_key
    }

    /// How often every broker gets a heartbeat (`heartbeatBrokerInterval`). Default
    /// [`DEFAULT_HEARTBEAT_INTERVAL`] (30 s); [`MIN_SERVICE_INTERVAL`](super::MIN_SERVICE_INTERVAL) to [`MAX_DURATION`](super::MAX_DURATION).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How often the routes of used topics are fetched again (`pollNameServerInterval`).
    /// Default [`DEFAULT_ROUTE_REFRESH_INTERVAL`] (30 s); [`MIN_SERVICE_INTERVAL`](super::MIN_SERVICE_INTERVAL) to
    /// [`MAX_DURATION`](super::MAX_DURATION).
    pub fn route_refresh_interval(&self) -> Duration {
        self.route_refresh_interval
    }

    /// A topic not sent to for this long leaves the route cache and is no longer refreshed (not
    /// in Java, which keeps every topic). Default [`DEFAULT_ROUTE_EXPIRY`] (30 min); 1 s to
    /// [`MAX_ROUTE_EXPIRY`](super::MAX_ROUTE_EXPIRY).
    pub fn route_expiry(&self) -> Duration {
        self.route_expiry
    }

    /// Timeout of the client's own requests: route lookups, heartbeats, unregistering
    /// (`mqClientApiTimeout`). Default [`DEFAULT_CLIENT_API_TIMEOUT`] (3 s); 1 ms to
    /// [`MAX_DURATION`](super::MAX_DURATION).
    pub fn client_api_timeout(&self) -> Duration {
        self.client_api_timeout
    }

    /// Timeout of a TCP connect (`connectTimeoutMillis`). Default [`DEFAULT_CONNECT_TIMEOUT`]
    /// (3 s); 1 ms to [`MAX_DURATION`](super::MAX_DURATION).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether a request that gets no answer in time resets its connection
    /// (`clientCloseSocketIfTimeout`): a broker or name server that stopped answering (a
    /// paused process, dropped packets) loses the connection, the requests pending on it fail
    /// at once (and are retried elsewhere), and what was queued for it is dropped rather than
    /// delivered when it wakes. The next request connects again. Default
    /// [`DEFAULT_CLOSE_ON_REQUEST_TIMEOUT`] (true, as in Java).
    pub fn close_on_request_timeout(&self) -> bool {
        self.close_on_request_timeout
    }

    /// TCP keepalive on every connection: `Some(idle)` sends the first probe after `idle`
    /// without traffic and the next ones `idle` apart, so a peer that vanished is noticed on
    /// an idle connection too; `None` turns it off (Java's default). Default
    /// [`DEFAULT_TCP_KEEPALIVE`] (30 s); 1 s to 32 767 s.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        self.tcp_keepalive
    }

    /// The most bytes queued on one connection and not yet taken by the socket (a peer that
    /// stops reading makes it grow). A send that would go over fails at once with a retriable
    /// connection error naming the broker, and is retried elsewhere like one. Default
    /// [`DEFAULT_MAX_CONNECTION_OUTPUT_BYTES`] (128 MiB); at least
    /// [`max_message_size`](ProducerConfig::max_message_size).
    pub fn max_connection_output_bytes(&self) -> usize {
        self.max_connection_output_bytes
    }

    /// How long a thread blocked in a synchronous send spins on the result before it parks
    /// (Java has no such setting). Default zero: it parks at once, as before. Zero to
    /// [`MAX_BUSY_POLL`](crate::remoting::MAX_BUSY_POLL) (10 ms); env
    /// `ROCKETMQ_BUSY_POLL_MICROS` (microseconds).
    ///
    /// For callers on a core of their own that want the lowest latency: an answer that comes
    /// within the spin is taken without the thread being put to sleep and woken again (one of
    /// a sync send's two thread hand-offs). On shared cores the spin takes CPU from the
    /// threads that produce the answer and can make sends slower; measure before turning it
    /// on. Results, timeouts and errors are the same with it on or off.
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// mio event-loop threads driving the sockets. Default [`DEFAULT_IO_THREADS`] (1); 1 to 64.
    pub fn io_threads(&self) -> usize {
        self.io_threads
    }

    /// Threads running send callbacks and broker-initiated requests (`rocketmq-callback-N`),
    /// and as many internal threads for route lookups and retries of asynchronous sends
    /// (`rocketmq-async-N`), and for asynchronous local transactions (`rocketmq-tx-N`, started
    /// on first use). Default [`DEFAULT_CALLBACK_THREADS`] (4); 1 to 1024.
    pub fn callback_threads(&self) -> usize {
        self.callback_threads
    }

    /// Whether asynchronous sends in flight are bounded (by
    /// [`max_in_flight`](ProducerConfig::max_in_flight) and
    /// [`max_in_flight_bytes`](ProducerConfig::max_in_flight_bytes)); a full producer blocks the
    /// caller up to the send timeout (`enableBackpressureForAsyncMode`, off in Java). Default
    /// [`DEFAULT_BACKPRESSURE`] (on).
    pub fn backpressure(&self) -> bool {
        self.backpressure
    }

    /// The most asynchronous sends in flight (`backPressureForAsyncSendNum`). Default
    /// [`DEFAULT_MAX_IN_FLIGHT`] (1024); 1 to 10 000 000.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The most bytes of asynchronous sends in flight (`backPressureForAsyncSendSize`). Default
    /// [`DEFAULT_MAX_IN_FLIGHT_BYTES`] (100 MiB); with backpressure on, at least
    /// [`max_message_size`](ProducerConfig::max_message_size), so the largest message fits.
    pub fn max_in_flight_bytes(&self) -> usize {
        self.max_in_flight_bytes
    }

    /// Whether brokers are avoided for a while after slow or failed attempts
    /// (`sendLatencyFaultEnable`, off in Java). Default [`DEFAULT_FAULT_TOLERANCE`] (on).
    pub fn fault_tolerance(&self) -> bool {
        self.fault_tolerance
    }

    /// The latency thresholds and not-available durations of fault tolerance
    /// (`latencyMax` / `notAvailableDuration`). Default: the Java 5.1.4+ tables
    /// ([`DEFAULT_LATENCY_MAX`](crate::routing::fault::DEFAULT_LATENCY_MAX), [`DEFAULT_NOT_AVAILABLE_DURATION`](crate::routing::fault::DEFAULT_NOT_AVAILABLE_DURATION)). Same lengths (1 to 64),
    /// thresholds ascending.
    pub fn fault_tables(&self) -> &FaultTables {
        &self.fault_tables
    }

    /// Where the queue search of a send starts. Default [`DEFAULT_ROUTING_STRATEGY`] (round
    /// robin).
    pub fn routing_strategy(&self) -> RoutingStrategy {
        self.routing_strategy
    }

    /// Namespace (`namespace`): topics and the producer group are used as `namespace%name` on
    /// the brokers (send headers, heartbeats, unregister, `PGROUP`, END_TRANSACTION), as the
    /// Java client does: never twice, never for system topics
    /// ([`protocol::namespace`](crate::protocol::namespace)); what the user sees (a
    /// `SendResult`'s queue, check-back messages) has it taken off. Default `None`; 1 to 64
    /// characters of `[a-zA-Z0-9_-]`.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The ACL credentials every request is signed with (`AccessKey`, `Signature`, and
    /// `SecurityToken` when one is set), or `None` (the default: requests are not signed). Set
    /// with [`ProducerConfigBuilder::credentials`](super::ProducerConfigBuilder::credentials)
    /// or `ROCKETMQ_ACCESS_KEY` and `ROCKETMQ_SECRET_KEY`. Their `Debug` never shows the secret
    /// key or the token.
    ///
    /// A transaction producer answers a broker's check-back with an END_TRANSACTION that names
    /// the topic the check named, as the Java client does; brokers name the half topic
    /// (`RMQ_SYS_TRANS_HALF_TOPIC`) there, so an account with per-topic permissions needs `PUB`
    /// on it for commits and rollbacks decided at a check-back.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The access key of [`ProducerConfig::credentials`], if set.
    pub fn access_key(&self) -> Option<&str> {
        self.access_key.as_deref()
    }

    /// The HMAC requests are signed with when credentials are set. Default HMAC-SHA1, as the
    /// Java client and broker.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.signature_algorithm
    }

    /// Unit name (`unitName`), appended to the client id as `ip@instance@unit`. Default `None`;
    /// no `@`, no whitespace.
    pub fn unit_name(&self) -> Option<&str> {
        self.unit_name.as_deref()
    }

    /// The header serialization of every request this producer sends (sends, route lookups,
    /// heartbeats, END_TRANSACTION, UNREGISTER_CLIENT) and of its answers to the servers'
    /// requests: [`SerializeType::Json`] or the binary [`SerializeType::RocketMq`] layout (the
    /// Java client's `rocketmq.serialize.type`). Responses are read in either layout whatever
    /// this says (a server answers in its own configured layout, or in the request's). ACL
    /// signatures cover the ext fields and the body, not the layout, so signing works with
    /// both. Default [`DEFAULT_SERIALIZE_TYPE`] (JSON, as Java).
    pub fn serialize_type(&self) -> SerializeType {
        self.serialize_type
    }

    /// Whether sends go to the broker's VIP port (its port minus 2) (`vipChannelEnabled`).
    /// Default [`DEFAULT_VIP_CHANNEL`] (off).
    pub fn vip_channel(&self) -> bool {
        self.vip_channel
    }

    /// Whether small sends to the same queue are gathered into batches (`autoBatch`).
    /// Default [`DEFAULT_AUTO_BATCH`] (off).
    pub fn auto_batch(&self) -> bool {
        self.auto_batch
    }

    /// The longest a message waits for its auto-batch to fill (`batchMaxDelayMs`). Default
    /// [`DEFAULT_BATCH_MAX_DELAY`] (10 ms); 1 ms to 30 s.
    pub fn batch_max_delay(&self) -> Duration {
        self.batch_max_delay
    }

    /// An auto-batch is sent once it holds this many bytes (`batchMaxBytes`). Default
    /// [`DEFAULT_BATCH_MAX_BYTES`] (32 KiB); 1 byte to 2 MiB.
    pub fn batch_max_bytes(&self) -> usize {
        self.batch_max_bytes
    }

    /// The most bytes waiting in all auto-batches (`totalBatchMaxBytes`). Default
    /// [`DEFAULT_BATCH_TOTAL_MAX_BYTES`] (32 MiB); at least
    /// [`batch_max_bytes`](ProducerConfig::batch_max_bytes).
    pub fn batch_total_max_bytes(&self) -> usize {
        self.batch_total_max_bytes
    }

    /// Whether per-topic and per-broker statistics are kept. Default [`DEFAULT_STATS`] (on).
    pub fn stats(&self) -> bool {
        self.stats
    }

    /// Threads answering the brokers' transaction check-backs (`checkThreadPoolMinSize`).
    /// Default [`DEFAULT_TRANSACTION_CHECK_THREADS`] (1); 1 to 256.
    pub fn transaction_check_threads(&self) -> usize {
        self.transaction_check_threads
    }

    /// Check-backs waiting for a thread before new ones are refused (`checkRequestHoldMax`).
    /// Default [`DEFAULT_TRANSACTION_CHECK_QUEUE`] (2000); 1 to 1 000 000.
    pub fn transaction_check_queue(&self) -> usize {
        self.transaction_check_queue
    }

    /// Topics whose routes are resolved when the producer starts, whose brokers get a
    /// heartbeat at once, and whose routes never expire for lack of use. A transaction
    /// producer restarted after a crash then answers the check-backs of its predecessor's half
    /// messages at once, before its first send (brokers check back only producers that sent
    /// them a heartbeat). A topic whose route cannot be resolved at start is logged and tried
    /// again at every route refresh; it does not fail the start. Default empty (routes are
    /// resolved on first use); each topic follows the topic rules.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Strict per-key order for ordered sends: selector sends
    /// ([`Producer::send_with_selector`](crate::Producer::send_with_selector)) and automatic
    /// sends under [`RoutingStrategy::MessageHash`]. Default [`DEFAULT_STRICT_ORDER`] (off); on
    /// in the [`ordered`](ProducerConfig::ordered) preset.
    ///
    /// On: a send goes to the queue its key maps to in the topic's *reference* layout (the
    /// queue list the producer first saw for the topic, or the last it accepted). If that
    /// queue is gone from the route, not writable, or on a broker the fault table isolates, the
    /// send fails at once with [`Error::OrderViolation`](crate::Error::OrderViolation) (kind
    /// [`ErrorKind::OrderViolation`](crate::ErrorKind::OrderViolation)), naming the queue
    /// and why; it is never retried on another queue. When the queue comes back (the route
    /// lists it writable again, the isolation ends), sends resume on it. A route whose queue
    /// count changed keeps failing the keys whose queues changed until the layout is accepted
    /// with [`Producer::accept_route`](crate::Producer::accept_route).
    ///
    /// Off (the Java client's behaviour): a selector's pick is taken modulo the current queue
    /// count, so when the count changes a key silently moves to another queue; the message-hash
    /// strategy skips isolated brokers (fault tolerance on), moving keys too; and automatic sends
    /// retry on another broker. Order per key then holds only while the route is stable.
    ///
    /// Either way, every route change that changes a topic's queue count is logged (old and
    /// new count) and counted in the topic's
    /// [`queue_count_changes`](crate::producer::health::RouteHealth::queue_count_changes).
    pub fn strict_order(&self) -> bool {
        self.strict_order
    }

    /// How many recent transactions a transaction producer keeps a
    /// [`TransactionRecord`](crate::TransactionRecord) of. Default
    /// [`DEFAULT_TRANSACTION_RECORDS`] (10 000); 0 keeps none; at most 10 000 000. When full,
    /// the oldest record is dropped (counted).
    pub fn transaction_records(&self) -> usize {
        self.transaction_records
    }

    /// How long a transaction record is kept after the transaction began. Default
    /// [`DEFAULT_TRANSACTION_RECORD_AGE`] (1 hour); 1 s to 1 day. Older records are dropped
    /// (counted), resolved or not.
    pub fn transaction_record_age(&self) -> Duration {
        self.transaction_record_age
    }

    /// The send hooks, in the order they run (none by default); see [`crate::hooks`].
    /// Set with [`ProducerConfigBuilder::send_hook`](super::ProducerConfigBuilder::send_hook).
    pub fn send_hooks(&self) -> &[Arc<dyn SendHook>] {
        &self.send_hooks.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::base;

    #[test]
    fn defaults_are_java_defaults() {
        let c = base().build().unwrap();
        assert_eq!(c.group(), "GID_TEST");
        assert_eq!(c.name_servers(), ["127.0.0.1:9876"]);
        assert_eq!(c.instance_name(), "DEFAULT");
        assert_eq!(c.client_ip(), None);
        assert_eq!(c.send_timeout(), Duration::from_secs(3));
        assert_eq!(c.per_attempt_timeout(), None);
        assert_eq!((c.retries(), c.async_retries()), (2, 2));
        assert_eq!(c.retry_codes(), [1, 2, 14, 16, 17, 204, 205, 1500]);
        assert!(!c.retry_another_broker_when_not_store_ok());
        assert_eq!(c.max_message_size(), 4_194_304);
        assert_eq!((c.compress_threshold(), c.compress_level()), (4096, 5));
        assert_eq!(c.default_topic_queue_nums(), 4);
        assert_eq!(c.create_topic_key(), "TBW102");
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(30));
        assert_eq!(c.route_refresh_interval(), Duration::from_secs(30));
        assert_eq!(c.route_expiry(), Duration::from_secs(1800));
        assert_eq!(c.client_api_timeout(), Duration::from_secs(3));
        assert_eq!(c.connect_timeout(), Duration::from_secs(3));
        assert!(c.close_on_request_timeout());
        assert_eq!(c.tcp_keepalive(), Some(Duration::from_secs(30)));
        assert_eq!(c.max_connection_output_bytes(), 128 * 1024 * 1024);
        assert_eq!((c.io_threads(), c.callback_threads()), (1, 4));
        assert!(c.backpressure());
        assert_eq!(c.max_in_flight(), 1024);
        assert_eq!(c.max_in_flight_bytes(), 100 * 1024 * 1024);
        assert!(c.fault_tolerance());
        assert_eq!(c.fault_tables(), &FaultTables::default());
        assert_eq!(
            c.fault_tables().latency_max(),
            [50, 100, 550, 1800, 3000, 5000, 15000].map(Duration::from_millis)
        );
        assert_eq!(
            c.fault_tables().not_available_duration(),
            [0, 0, 2000, 5000, 6000, 10000, 30000].map(Duration::from_millis)
        );
        assert_eq!(c.routing_strategy(), RoutingStrategy::RoundRobin);
        assert_eq!((c.namespace(), c.unit_name()), (None, None));
        assert!(!c.vip_channel() && !c.auto_batch());
        assert_eq!(c.batch_max_delay(), Duration::from_millis(10));
        assert_eq!(c.batch_max_bytes(), 32 * 1024);
        assert_eq!(c.batch_total_max_bytes(), 32 * 1024 * 1024);
        assert!(c.stats());
        assert_eq!(
            (c.transaction_check_threads(), c.transaction_check_queue()),
            (1, 2000)
        );
        // Round trip through to_builder.
        assert_eq!(c.to_builder().build().unwrap(), c);
    }
}
