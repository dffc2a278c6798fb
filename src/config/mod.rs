//! [`ProducerConfig`]: every producer setting, its default, its validation, environment
//! variables and presets.
//!
//! Build one with [`ProducerConfig::builder`] (Java client defaults) or a preset
//! ([`ProducerConfig::development`], [`production`](ProducerConfig::production),
//! [`high_throughput`](ProducerConfig::high_throughput), [`testing`](ProducerConfig::testing),
//! [`ordered`](ProducerConfig::ordered)), change what you need with the consuming setters
//! (times are [`Duration`]s), optionally read the environment with
//! [`ProducerConfigBuilder::from_env`], and call [`ProducerConfigBuilder::build`], which checks
//! every value. Invalid values are errors ([`Error::Config`]) that name the setting, or the
//! environment variable the value came from. Nothing is silently ignored or clamped.
//!
//! ```
//! use std::time::Duration;
//! use rocketmq_mio::config::ProducerConfig;
//!
//! let config = ProducerConfig::builder("GID_ORDERS")
//!     .name_server("10.0.0.1:9876;10.0.0.2:9876")
//!     .send_timeout(Duration::from_secs(5))
//!     .retries(3)
//!     .build()
//!     .unwrap();
//! assert_eq!(config.name_servers(), ["10.0.0.1:9876", "10.0.0.2:9876"]);
//! assert_eq!(config.max_message_size(), 4 * 1024 * 1024);
//!
//! let err = ProducerConfig::builder("GID_ORDERS")
//!     .name_server("10.0.0.1:9876")
//!     .compress_level(12)
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "invalid setting compress_level: must be 0..=9, got 12");
//! ```
//!
//! # Environment variables
//!
//! [`ProducerConfigBuilder::from_env`] reads these; each one that is set replaces the value set
//! so far (setters called afterwards win over it). An unset variable changes nothing; a set but
//! empty or unparsable one is an error naming the variable. Durations are whole milliseconds,
//! sizes whole bytes, booleans `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), lists are
//! comma-separated.
//!
//! | variable | setting |
//! | --- | --- |
//! | `ROCKETMQ_NAMESRV_ADDR`, else `NAMESRV_ADDR` (Java's) | [`name_servers`](ProducerConfig::name_servers), `"a:9876;b:9876"` |
//! | `ROCKETMQ_PRODUCER_GROUP` | [`group`](ProducerConfig::group) |
//! | `ROCKETMQ_INSTANCE_NAME` | [`instance_name`](ProducerConfig::instance_name) |
//! | `ROCKETMQ_CLIENT_IP` | [`client_ip`](ProducerConfig::client_ip) |
//! | `ROCKETMQ_SEND_TIMEOUT_MS` | [`send_timeout`](ProducerConfig::send_timeout) |
//! | `ROCKETMQ_PER_ATTEMPT_TIMEOUT_MS` | [`per_attempt_timeout`](ProducerConfig::per_attempt_timeout) |
//! | `ROCKETMQ_RETRIES` | [`retries`](ProducerConfig::retries) |
//! | `ROCKETMQ_ASYNC_RETRIES` | [`async_retries`](ProducerConfig::async_retries) |
//! | `ROCKETMQ_RETRY_CODES` | [`retry_codes`](ProducerConfig::retry_codes), e.g. `1,2,14` |
//! | `ROCKETMQ_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK` | [`retry_another_broker_when_not_store_ok`](ProducerConfig::retry_another_broker_when_not_store_ok) |
//! | `ROCKETMQ_MAX_MESSAGE_SIZE` | [`max_message_size`](ProducerConfig::max_message_size) |
//! | `ROCKETMQ_COMPRESS_THRESHOLD` | [`compress_threshold`](ProducerConfig::compress_threshold) |
//! | `ROCKETMQ_COMPRESS_LEVEL` | [`compress_level`](ProducerConfig::compress_level) |
//! | `ROCKETMQ_DEFAULT_TOPIC_QUEUE_NUMS` | [`default_topic_queue_nums`](ProducerConfig::default_topic_queue_nums) |
//! | `ROCKETMQ_CREATE_TOPIC_KEY` | [`create_topic_key`](ProducerConfig::create_topic_key) |
//! | `ROCKETMQ_HEARTBEAT_INTERVAL_MS` | [`heartbeat_interval`](ProducerConfig::heartbeat_interval) |
//! | `ROCKETMQ_ROUTE_REFRESH_INTERVAL_MS` | [`route_refresh_interval`](ProducerConfig::route_refresh_interval) |
//! | `ROCKETMQ_ROUTE_EXPIRY_MS` | [`route_expiry`](ProducerConfig::route_expiry) |
//! | `ROCKETMQ_CLIENT_API_TIMEOUT_MS` | [`client_api_timeout`](ProducerConfig::client_api_timeout) |
//! | `ROCKETMQ_CONNECT_TIMEOUT_MS` | [`connect_timeout`](ProducerConfig::connect_timeout) |
//! | `ROCKETMQ_IO_THREADS` | [`io_threads`](ProducerConfig::io_threads) |
//! | `ROCKETMQ_CALLBACK_THREADS` | [`callback_threads`](ProducerConfig::callback_threads) |
//! | `ROCKETMQ_BACKPRESSURE` | [`backpressure`](ProducerConfig::backpressure) |
//! | `ROCKETMQ_MAX_IN_FLIGHT` | [`max_in_flight`](ProducerConfig::max_in_flight) |
//! | `ROCKETMQ_MAX_IN_FLIGHT_BYTES` | [`max_in_flight_bytes`](ProducerConfig::max_in_flight_bytes) |
//! | `ROCKETMQ_FAULT_TOLERANCE` | [`fault_tolerance`](ProducerConfig::fault_tolerance) |
//! | `ROCKETMQ_FAULT_LATENCY_MAX_MS` | latency thresholds of [`fault_tables`](ProducerConfig::fault_tables), e.g. `50,100,550,1800,3000,5000,15000` |
//! | `ROCKETMQ_FAULT_NOT_AVAILABLE_MS` | not-available durations of [`fault_tables`](ProducerConfig::fault_tables), e.g. `0,0,2000,5000,6000,10000,30000` |
//! | `ROCKETMQ_ROUTING_STRATEGY` | [`routing_strategy`](ProducerConfig::routing_strategy): `round_robin`, `random`, `message_hash` |
//! | `ROCKETMQ_NAMESPACE` | [`namespace`](ProducerConfig::namespace) |
//! | `ROCKETMQ_UNIT_NAME` | [`unit_name`](ProducerConfig::unit_name) |
//! | `ROCKETMQ_VIP_CHANNEL` | [`vip_channel`](ProducerConfig::vip_channel) |
//! | `ROCKETMQ_AUTO_BATCH` | [`auto_batch`](ProducerConfig::auto_batch) |
//! | `ROCKETMQ_BATCH_MAX_DELAY_MS` | [`batch_max_delay`](ProducerConfig::batch_max_delay) |
//! | `ROCKETMQ_BATCH_MAX_BYTES` | [`batch_max_bytes`](ProducerConfig::batch_max_bytes) |
//! | `ROCKETMQ_BATCH_TOTAL_MAX_BYTES` | [`batch_total_max_bytes`](ProducerConfig::batch_total_max_bytes) |
//! | `ROCKETMQ_STATS` | [`stats`](ProducerConfig::stats) |
//! | `ROCKETMQ_TRANSACTION_CHECK_THREADS` | [`transaction_check_threads`](ProducerConfig::transaction_check_threads) |
//! | `ROCKETMQ_TRANSACTION_CHECK_QUEUE` | [`transaction_check_queue`](ProducerConfig::transaction_check_queue) |
//!
//! `from_env` also logs a warning for any other `ROCKETMQ_*` variable except `ROCKETMQ_HOME`
//! (probably a typo; other tools share the prefix, so it is not an error).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::error::{Error, Result, DEFAULT_RETRY_CODES};
use crate::routing::fault::{FaultTables, DEFAULT_LATENCY_MAX, DEFAULT_NOT_AVAILABLE_DURATION};
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

/// The largest [`ProducerConfig::max_message_size`]: 15 MiB (frames are limited to 16 MiB and
/// the header needs room).
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 15 * 1024 * 1024;
/// The most retries (sync or async) a producer may be configured with.
pub const MAX_RETRIES: u32 = 64;
/// The longest timeout or interval accepted (one day).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest [`ProducerConfig::route_expiry`] accepted (one year).
pub const MAX_ROUTE_EXPIRY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The shortest heartbeat or route-refresh interval accepted: 10 ms.
pub const MIN_SERVICE_INTERVAL: Duration = Duration::from_millis(10);
/// The longest producer group name (protocol.md 7.7).
pub const MAX_GROUP_LEN: usize = 120;
/// The longest topic name, for the create-topic key (protocol.md 7.7).
pub const MAX_TOPIC_LEN: usize = 127;
/// Group names a producer may not use.
pub const RESERVED_GROUPS: [&str; 2] = ["DEFAULT_PRODUCER", "CLIENT_INNER_PRODUCER"];

/// Every environment variable [`ProducerConfigBuilder::from_env`] reads.
pub const ENV_VARS: [&str; 40] = [
    "ROCKETMQ_NAMESRV_ADDR",
    "NAMESRV_ADDR",
    "ROCKETMQ_PRODUCER_GROUP",
    "ROCKETMQ_INSTANCE_NAME",
    "ROCKETMQ_CLIENT_IP",
    "ROCKETMQ_SEND_TIMEOUT_MS",
    "ROCKETMQ_PER_ATTEMPT_TIMEOUT_MS",
    "ROCKETMQ_RETRIES",
    "ROCKETMQ_ASYNC_RETRIES",
    "ROCKETMQ_RETRY_CODES",
    "ROCKETMQ_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK",
    "ROCKETMQ_MAX_MESSAGE_SIZE",
    "ROCKETMQ_COMPRESS_THRESHOLD",
    "ROCKETMQ_COMPRESS_LEVEL",
    "ROCKETMQ_DEFAULT_TOPIC_QUEUE_NUMS",
    "ROCKETMQ_CREATE_TOPIC_KEY",
    "ROCKETMQ_HEARTBEAT_INTERVAL_MS",
    "ROCKETMQ_ROUTE_REFRESH_INTERVAL_MS",
    "ROCKETMQ_ROUTE_EXPIRY_MS",
    "ROCKETMQ_CLIENT_API_TIMEOUT_MS",
    "ROCKETMQ_CONNECT_TIMEOUT_MS",
    "ROCKETMQ_IO_THREADS",
    "ROCKETMQ_CALLBACK_THREADS",
    "ROCKETMQ_BACKPRESSURE",
    "ROCKETMQ_MAX_IN_FLIGHT",
    "ROCKETMQ_MAX_IN_FLIGHT_BYTES",
    "ROCKETMQ_FAULT_TOLERANCE",
    "ROCKETMQ_FAULT_LATENCY_MAX_MS",
    "ROCKETMQ_FAULT_NOT_AVAILABLE_MS",
    "ROCKETMQ_ROUTING_STRATEGY",
    "ROCKETMQ_NAMESPACE",
    "ROCKETMQ_UNIT_NAME",
    "ROCKETMQ_VIP_CHANNEL",
    "ROCKETMQ_AUTO_BATCH",
    "ROCKETMQ_BATCH_MAX_DELAY_MS",
    "ROCKETMQ_BATCH_MAX_BYTES",
    "ROCKETMQ_BATCH_TOTAL_MAX_BYTES",
    "ROCKETMQ_STATS",
    "ROCKETMQ_TRANSACTION_CHECK_THREADS",
    "ROCKETMQ_TRANSACTION_CHECK_QUEUE",
];

/// Every producer setting, validated. Build one with [`ProducerConfig::builder`] or a preset.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    group: String,
    name_servers: Vec<String>,
    instance_name: String,
    client_ip: Option<IpAddr>,
    send_timeout: Duration,
    per_attempt_timeout: Option<Duration>,
    retries: u32,
    async_retries: u32,
    retry_codes: Vec<i32>,
    retry_another_broker_when_not_store_ok: bool,
    max_message_size: usize,
    compress_threshold: usize,
    compress_level: u32,
    default_topic_queue_nums: u32,
    create_topic_key: String,
    heartbeat_interval: Duration,
    route_refresh_interval: Duration,
    route_expiry: Duration,
    client_api_timeout: Duration,
    connect_timeout: Duration,
    io_threads: usize,
    callback_threads: usize,
    backpressure: bool,
    max_in_flight: usize,
    max_in_flight_bytes: usize,
    fault_tolerance: bool,
    fault_tables: FaultTables,
    routing_strategy: RoutingStrategy,
    namespace: Option<String>,
    unit_name: Option<String>,
    vip_channel: bool,
    auto_batch: bool,
    batch_max_delay: Duration,
    batch_max_bytes: usize,
    batch_total_max_bytes: usize,
    stats: bool,
    transaction_check_threads: usize,
    transaction_check_queue: usize,
}

impl ProducerConfig {
    /// A builder with every setting at its default (the Java client's, unless said otherwise)
    /// for producer group `group`. The name server list starts empty and must be set (or read
    /// from the environment) before [`ProducerConfigBuilder::build`].
    pub fn builder(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfigBuilder::new(group.into())
    }

    /// Preset for a developer's machine: one local broker, a debugger, `mqadmin` at hand.
    ///
    /// From the defaults: name server `127.0.0.1:9876` (replace it with
    /// [`name_server`](ProducerConfigBuilder::name_server) or the environment); send timeout
    /// 10 s (a paused process or a slow first auto-create does not fail sends); fault tolerance
    /// off (a single broker is not isolated after a breakpoint); route refresh every 5 s (topics
    /// changed with `mqadmin` show up quickly); one I/O and one callback thread.
    pub fn development(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .name_server("127.0.0.1:9876")
            .send_timeout(Duration::from_secs(10))
            .fault_tolerance(false)
            .route_refresh_interval(Duration::from_secs(5))
            .io_threads(1)
            .callback_threads(1)
    }

    /// Preset for production: the Java defaults plus a cap per attempt.
    ///
    /// From the defaults: per-attempt timeout 1 s, so a broker that stops answering costs one
    /// third of the 3 s budget and the retries (2) still get their turn on other brokers; two
    /// I/O threads. Fault tolerance, backpressure (1024 sends / 100 MiB) and statistics stay on.
    pub fn production(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .per_attempt_timeout(Duration::from_secs(1))
            .io_threads(2)
    }

    /// Preset for many small messages per second.
    ///
    /// From the defaults: auto-batching on (10 ms delay, 256 KiB per batch, 64 MiB buffered);
    /// up to 10 000 asynchronous sends and 256 MiB in flight (Java 5.1-5.3's bound); two I/O
    /// threads and eight callback threads.
    pub fn high_throughput(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .auto_batch(true)
            .batch_max_delay(Duration::from_millis(10))
            .batch_max_bytes(256 * 1024)
            .batch_total_max_bytes(64 * 1024 * 1024)
            .max_in_flight(10_000)
            .max_in_flight_bytes(256 * 1024 * 1024)
            .io_threads(2)
            .callback_threads(8)
    }

    /// Preset for automated tests against a mock or a throwaway broker on a loaded machine.
    ///
    /// From the defaults: send and client-API timeouts 5 s (generous for a busy CI machine);
    /// connect timeout 2 s; heartbeat and route refresh every second (route changes show up
    /// quickly); fault tolerance off (queue choice is plain round robin, so tests are
    /// deterministic); one I/O and two callback threads. The name server is left for the test to
    /// set.
    pub fn testing(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .send_timeout(Duration::from_secs(5))
            .client_api_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .heartbeat_interval(Duration::from_secs(1))
            .route_refresh_interval(Duration::from_secs(1))
            .fault_tolerance(false)
            .io_threads(1)
            .callback_threads(2)
    }

    /// Preset for ordered messages.
    ///
    /// From the defaults: routing strategy [`RoutingStrategy::MessageHash`] (a message's first key
    /// picks its queue, as Java's `SelectMessageQueueByHash`); fault tolerance off (a slow broker
    /// does not move keys to other queues); no retries, sync or async (a failed send is reported
    /// instead of landing on another queue, out of order); auto-batching off.
    pub fn ordered(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .routing_strategy(RoutingStrategy::MessageHash)
            .fault_tolerance(false)
            .retries(0)
            .async_retries(0)
            .auto_batch(false)
    }

    /// A builder holding these settings, to derive another configuration.
    pub fn to_builder(&self) -> ProducerConfigBuilder {
        ProducerConfigBuilder {
            fault_latency_max: self.fault_tables.latency_max().to_vec(),
            fault_not_available: self.fault_tables.not_available_duration().to_vec(),
            config: self.clone(),
            origins: Vec::new(),
        }
    }

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
    /// attempt. Default [`DEFAULT_SEND_TIMEOUT`] (3 s); 1 ms to [`MAX_DURATION`].
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
    /// [`MAX_RETRIES`].
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Extra attempts of an asynchronous send after a retriable failure
    /// (`retryTimesWhenSendAsyncFailed`). Default [`DEFAULT_ASYNC_RETRIES`] (2); at most
    /// [`MAX_RETRIES`].
    pub fn async_retries(&self) -> u32 {
        self.async_retries
    }

    /// Broker response codes that are retried on another broker (`retryResponseCodes`).
    /// Default [`DEFAULT_RETRY_CODES`] (1, 2, 14, 16, 17, 204, 205, 1500). The success and
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
    /// Default [`DEFAULT_MAX_MESSAGE_SIZE`] (4 MiB); 1 to [`MAX_MESSAGE_SIZE_LIMIT`].
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
    /// [`DEFAULT_HEARTBEAT_INTERVAL`] (30 s); [`MIN_SERVICE_INTERVAL`] to [`MAX_DURATION`].
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How often the routes of used topics are fetched again (`pollNameServerInterval`).
    /// Default [`DEFAULT_ROUTE_REFRESH_INTERVAL`] (30 s); [`MIN_SERVICE_INTERVAL`] to
    /// [`MAX_DURATION`].
    pub fn route_refresh_interval(&self) -> Duration {
        self.route_refresh_interval
    }

    /// A topic not sent to for this long leaves the route cache and is no longer refreshed (not
    /// in Java, which keeps every topic). Default [`DEFAULT_ROUTE_EXPIRY`] (30 min); 1 s to
    /// [`MAX_ROUTE_EXPIRY`].
    pub fn route_expiry(&self) -> Duration {
        self.route_expiry
    }

    /// Timeout of the client's own requests: route lookups, heartbeats, unregistering
    /// (`mqClientApiTimeout`). Default [`DEFAULT_CLIENT_API_TIMEOUT`] (3 s); 1 ms to
    /// [`MAX_DURATION`].
    pub fn client_api_timeout(&self) -> Duration {
        self.client_api_timeout
    }

    /// Timeout of a TCP connect (`connectTimeoutMillis`). Default [`DEFAULT_CONNECT_TIMEOUT`]
    /// (3 s); 1 ms to [`MAX_DURATION`].
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// mio event-loop threads driving the sockets. Default [`DEFAULT_IO_THREADS`] (1); 1 to 64.
    pub fn io_threads(&self) -> usize {
        self.io_threads
    }

    /// Threads running send callbacks and asynchronous retries. Default
    /// [`DEFAULT_CALLBACK_THREADS`] (4); 1 to 1024.
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
    /// ([`DEFAULT_LATENCY_MAX`], [`DEFAULT_NOT_AVAILABLE_DURATION`]). Same lengths (1 to 64),
    /// thresholds ascending.
    pub fn fault_tables(&self) -> &FaultTables {
        &self.fault_tables
    }

    /// Where the queue search of a send starts. Default [`DEFAULT_ROUTING_STRATEGY`] (round
    /// robin).
    pub fn routing_strategy(&self) -> RoutingStrategy {
        self.routing_strategy
    }

    /// Namespace (`namespace`): topics and the group are used as `namespace%name` on the
    /// brokers. Default `None`; 1 to 64 characters of `[a-zA-Z0-9_-]`.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Unit name (`unitName`), appended to the client id as `ip@instance@unit`. Default `None`;
    /// no `@`, no whitespace.
    pub fn unit_name(&self) -> Option<&str> {
        self.unit_name.as_deref()
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
}

/// Builds a [`ProducerConfig`]: consuming setters, then [`ProducerConfigBuilder::build`].
///
/// Setters store values as given; `build` checks them all.
#[derive(Debug, Clone)]
pub struct ProducerConfigBuilder {
    config: ProducerConfig,
    fault_latency_max: Vec<Duration>,
    fault_not_available: Vec<Duration>,
    /// (setting, environment variable) for values that came from the environment.
    origins: Vec<(&'static str, &'static str)>,
}

impl ProducerConfigBuilder {
    fn new(group: String) -> Self {
        ProducerConfigBuilder {
            config: ProducerConfig {
                group,
                name_servers: Vec::new(),
                instance_name: DEFAULT_INSTANCE_NAME.to_owned(),
                client_ip: None,
                send_timeout: DEFAULT_SEND_TIMEOUT,
                per_attempt_timeout: None,
                retries: DEFAULT_RETRIES,
                async_retries: DEFAULT_ASYNC_RETRIES,
                retry_codes: DEFAULT_RETRY_CODES.to_vec(),
                retry_another_broker_when_not_store_ok:
                    DEFAULT_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK,
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
                compress_level: DEFAULT_COMPRESS_LEVEL,
                default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
                create_topic_key: DEFAULT_CREATE_TOPIC_KEY.to_owned(),
                heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
                route_refresh_interval: DEFAULT_ROUTE_REFRESH_INTERVAL,
                route_expiry: DEFAULT_ROUTE_EXPIRY,
                client_api_timeout: DEFAULT_CLIENT_API_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                io_threads: DEFAULT_IO_THREADS,
                callback_threads: DEFAULT_CALLBACK_THREADS,
                backpressure: DEFAULT_BACKPRESSURE,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
                fault_tolerance: DEFAULT_FAULT_TOLERANCE,
                fault_tables: FaultTables::default(),
                routing_strategy: DEFAULT_ROUTING_STRATEGY,
                namespace: None,
                unit_name: None,
                vip_channel: DEFAULT_VIP_CHANNEL,
                auto_batch: DEFAULT_AUTO_BATCH,
                batch_max_delay: DEFAULT_BATCH_MAX_DELAY,
                batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
                batch_total_max_bytes: DEFAULT_BATCH_TOTAL_MAX_BYTES,
                stats: DEFAULT_STATS,
                transaction_check_threads: DEFAULT_TRANSACTION_CHECK_THREADS,
                transaction_check_queue: DEFAULT_TRANSACTION_CHECK_QUEUE,
            },
            fault_latency_max: DEFAULT_LATENCY_MAX.to_vec(),
            fault_not_available: DEFAULT_NOT_AVAILABLE_DURATION.to_vec(),
            origins: Vec::new(),
        }
    }

    /// Forgets that `setting` came from the environment (a setter replaced it).
    fn set_by_code(mut self, setting: &str) -> Self {
        self.origins.retain(|(s, _)| *s != setting);
        self
    }

    fn set_by_env(&mut self, setting: &'static str, var: &'static str) {
        self.origins.retain(|(s, _)| *s != setting);
        self.origins.push((setting, var));
    }

    /// A config error naming `setting`, or the environment variable its value came from.
    fn err(&self, setting: &'static str, reason: impl Into<String>) -> Error {
        let name = self
            .origins
            .iter()
            .find(|(s, _)| *s == setting)
            .map_or(setting, |(_, var)| *var);
        Error::config(name, reason)
    }

    /// Sets the producer group; see [`ProducerConfig::group`].
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.config.group = group.into();
        self.set_by_code("group")
    }

    /// Sets the name servers from a list such as `"10.0.0.1:9876;10.0.0.2:9876"` (`;` as Java,
    /// `,` also accepted), replacing any set before; see [`ProducerConfig::name_servers`].
    /// Checked by `build`.
    pub fn name_server(mut self, addrs: impl Into<String>) -> Self {
        self.config.name_servers = vec![addrs.into()];
        self.set_by_code("name_servers")
    }

    /// Adds name servers (one address or a `;`-separated list) to those set before.
    pub fn add_name_server(mut self, addr: impl Into<String>) -> Self {
        self.config.name_servers.push(addr.into());
        self.set_by_code("name_servers")
    }

    /// Sets the name servers, replacing any set before.
    pub fn name_servers<I, S>(mut self, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.name_servers = addrs.into_iter().map(Into::into).collect();
        self.set_by_code("name_servers")
    }

    /// Sets the instance name; see [`ProducerConfig::instance_name`].
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.config.instance_name = name.into();
        self.set_by_code("instance_name")
    }

    /// Sets (or with `None` clears) the client IP; see [`ProducerConfig::client_ip`].
    pub fn client_ip(mut self, ip: impl Into<Option<IpAddr>>) -> Self {
        self.config.client_ip = ip.into();
        self.set_by_code("client_ip")
    }

    /// Sets the send timeout; see [`ProducerConfig::send_timeout`].
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self.set_by_code("send_timeout")
    }

    /// Sets (or with `None` clears) the per-attempt cap; see
    /// [`ProducerConfig::per_attempt_timeout`].
    pub fn per_attempt_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.per_attempt_timeout = timeout.into();
        self.set_by_code("per_attempt_timeout")
    }

    /// Sets the synchronous retries; see [`ProducerConfig::retries`].
    pub fn retries(mut self, retries: u32) -> Self {
        self.config.retries = retries;
        self.set_by_code("retries")
    }

    /// Sets the asynchronous retries; see [`ProducerConfig::async_retries`].
    pub fn async_retries(mut self, retries: u32) -> Self {
        self.config.async_retries = retries;
        self.set_by_code("async_retries")
    }

    /// Replaces the retried response codes; see [`ProducerConfig::retry_codes`].
    pub fn retry_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.config.retry_codes = codes.into_iter().collect();
        self.set_by_code("retry_codes")
    }

    /// Adds a retried response code (Java `addRetryResponseCode`).
    pub fn add_retry_code(mut self, code: i32) -> Self {
        self.config.retry_codes.push(code);
        self.set_by_code("retry_codes")
    }

    /// See [`ProducerConfig::retry_another_broker_when_not_store_ok`].
    pub fn retry_another_broker_when_not_store_ok(mut self, on: bool) -> Self {
        self.config.retry_another_broker_when_not_store_ok = on;
        self.set_by_code("retry_another_broker_when_not_store_ok")
    }

    /// Sets the largest body; see [`ProducerConfig::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self.set_by_code("max_message_size")
    }

    /// Sets the compression threshold; see [`ProducerConfig::compress_threshold`].
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.config.compress_threshold = bytes;
        self.set_by_code("compress_threshold")
    }

    /// Sets the zlib level; see [`ProducerConfig::compress_level`].
    pub fn compress_level(mut self, level: u32) -> Self {
        self.config.compress_level = level;
        self.set_by_code("compress_level")
    }

    /// Sets the auto-create queue count; see [`ProducerConfig::default_topic_queue_nums`].
    pub fn default_topic_queue_nums(mut self, n: u32) -> Self {
        self.config.default_topic_queue_nums = n;
        self.set_by_code("default_topic_queue_nums")
    }

    /// Sets the create-topic key; see [`ProducerConfig::create_topic_key`].
    pub fn create_topic_key(mut self, topic: impl Into<String>) -> Self {
        self.config.create_topic_key = topic.into();
        self.set_by_code("create_topic_key")
    }

    /// Sets the heartbeat interval; see [`ProducerConfig::heartbeat_interval`].
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.set_by_code("heartbeat_interval")
    }

    /// Sets the route refresh interval; see [`ProducerConfig::route_refresh_interval`].
    pub fn route_refresh_interval(mut self, interval: Duration) -> Self {
        self.config.route_refresh_interval = interval;
        self.set_by_code("route_refresh_interval")
    }

    /// Sets the expiry of unused topics; see [`ProducerConfig::route_expiry`].
    pub fn route_expiry(mut self, idle: Duration) -> Self {
        self.config.route_expiry = idle;
        self.set_by_code("route_expiry")
    }

    /// Sets the client API timeout; see [`ProducerConfig::client_api_timeout`].
    pub fn client_api_timeout(mut self, timeout: Duration) -> Self {
        self.config.client_api_timeout = timeout;
        self.set_by_code("client_api_timeout")
    }

    /// Sets the connect timeout; see [`ProducerConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self.set_by_code("connect_timeout")
    }

    /// Sets the I/O thread count; see [`ProducerConfig::io_threads`].
    pub fn io_threads(mut self, n: usize) -> Self {
        self.config.io_threads = n;
        self.set_by_code("io_threads")
    }

    /// Sets the callback thread count; see [`ProducerConfig::callback_threads`].
    pub fn callback_threads(mut self, n: usize) -> Self {
        self.config.callback_threads = n;
        self.set_by_code("callback_threads")
    }

    /// Turns backpressure on or off; see [`ProducerConfig::backpressure`].
    pub fn backpressure(mut self, on: bool) -> Self {
        self.config.backpressure = on;
        self.set_by_code("backpressure")
    }

    /// Sets the in-flight send bound; see [`ProducerConfig::max_in_flight`].
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self.set_by_code("max_in_flight")
    }

    /// Sets the in-flight byte bound; see [`ProducerConfig::max_in_flight_bytes`].
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.config.max_in_flight_bytes = bytes;
        self.set_by_code("max_in_flight_bytes")
    }

    /// Turns fault tolerance on or off; see [`ProducerConfig::fault_tolerance`].
    pub fn fault_tolerance(mut self, on: bool) -> Self {
        self.config.fault_tolerance = on;
        self.set_by_code("fault_tolerance")
    }

    /// Sets the fault tolerance tables; see [`ProducerConfig::fault_tables`]. Checked by
    /// `build`.
    pub fn fault_tables(
        mut self,
        latency_max: impl IntoIterator<Item = Duration>,
        not_available_duration: impl IntoIterator<Item = Duration>,
    ) -> Self {
        self.fault_latency_max = latency_max.into_iter().collect();
        self.fault_not_available = not_available_duration.into_iter().collect();
        self.set_by_code("fault_latency_max")
            .set_by_code("fault_not_available_duration")
    }

    /// Sets the routing strategy; see [`ProducerConfig::routing_strategy`].
    pub fn routing_strategy(mut self, strategy: RoutingStrategy) -> Self {
        self.config.routing_strategy = strategy;
        self.set_by_code("routing_strategy")
    }

    /// Sets the namespace; see [`ProducerConfig::namespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self.set_by_code("namespace")
    }

    /// Sets the unit name; see [`ProducerConfig::unit_name`].
    pub fn unit_name(mut self, unit: impl Into<String>) -> Self {
        self.config.unit_name = Some(unit.into());
        self.set_by_code("unit_name")
    }

    /// Turns the VIP channel on or off; see [`ProducerConfig::vip_channel`].
    pub fn vip_channel(mut self, on: bool) -> Self {
        self.config.vip_channel = on;
        self.set_by_code("vip_channel")
    }

    /// Turns auto-batching on or off; see [`ProducerConfig::auto_batch`].
    pub fn auto_batch(mut self, on: bool) -> Self {
        self.config.auto_batch = on;
        self.set_by_code("auto_batch")
    }

    /// Sets the auto-batch delay; see [`ProducerConfig::batch_max_delay`].
    pub fn batch_max_delay(mut self, delay: Duration) -> Self {
        self.config.batch_max_delay = delay;
        self.set_by_code("batch_max_delay")
    }

    /// Sets the auto-batch size; see [`ProducerConfig::batch_max_bytes`].
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.config.batch_max_bytes = bytes;
        self.set_by_code("batch_max_bytes")
    }

    /// Sets the auto-batch total; see [`ProducerConfig::batch_total_max_bytes`].
    pub fn batch_total_max_bytes(mut self, bytes: usize) -> Self {
        self.config.batch_total_max_bytes = bytes;
        self.set_by_code("batch_total_max_bytes")
    }

    /// Turns statistics on or off; see [`ProducerConfig::stats`].
    pub fn stats(mut self, on: bool) -> Self {
        self.config.stats = on;
        self.set_by_code("stats")
    }

    /// Sets the check-back threads; see [`ProducerConfig::transaction_check_threads`].
    pub fn transaction_check_threads(mut self, n: usize) -> Self {
        self.config.transaction_check_threads = n;
        self.set_by_code("transaction_check_threads")
    }

    /// Sets the check-back queue; see [`ProducerConfig::transaction_check_queue`].
    pub fn transaction_check_queue(mut self, n: usize) -> Self {
        self.config.transaction_check_queue = n;
        self.set_by_code("transaction_check_queue")
    }

    /// Reads the `ROCKETMQ_*` variables (and `NAMESRV_ADDR`) listed in the [module
    /// docs](crate::config) from the process environment. Each variable that is set replaces the
    /// value set so far.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable, when one is set but empty, not valid Unicode, or
    /// unparsable. Range checks happen in [`build`](ProducerConfigBuilder::build), whose errors
    /// also name the variable a bad value came from.
    pub fn from_env(self) -> Result<Self> {
        for var in ENV_VARS {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(var) {
                return Err(Error::config(var, "is not valid Unicode"));
            }
        }
        for (key, _) in std::env::vars_os() {
            if let Some(key) = key.to_str() {
                if key.starts_with("ROCKETMQ_")
                    && key != "ROCKETMQ_HOME"
                    && !ENV_VARS.contains(&key)
                {
                    log::warn!("unknown environment variable {key} ignored by ProducerConfig");
                }
            }
        }
        self.from_env_map(|var| std::env::var(var).ok())
    }

    /// Like [`from_env`](ProducerConfigBuilder::from_env), reading variables through `lookup`
    /// instead of the process environment (for tests, or another source of settings).
    pub fn from_env_map(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |var: &'static str| -> Result<Option<String>> {
            match lookup(var) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Err(Error::config(var, "is set but empty")),
                Some(v) => Ok(Some(v.trim().to_owned())),
            }
        };
        let namesrv = match get("ROCKETMQ_NAMESRV_ADDR")? {
            Some(v) => Some(("ROCKETMQ_NAMESRV_ADDR", v)),
            None => get("NAMESRV_ADDR")?.map(|v| ("NAMESRV_ADDR", v)),
        };
        if let Some((var, v)) = namesrv {
            self.config.name_servers = vec![v];
            self.set_by_env("name_servers", var);
        }
        macro_rules! env_value {
            ($var:literal, $setting:literal, $field:ident, $parse:expr) => {
                if let Some(v) = get($var)? {
                    self.config.$field = $parse($var, &v)?;
                    self.set_by_env($setting, $var);
                }
            };
        }
        env_value!("ROCKETMQ_PRODUCER_GROUP", "group", group, parse_string);
        env_value!(
            "ROCKETMQ_INSTANCE_NAME",
            "instance_name",
            instance_name,
            parse_string
        );
        env_value!("ROCKETMQ_CLIENT_IP", "client_ip", client_ip, |var, v| {
            parse_ip(var, v).map(Some)
        });
        env_value!(
            "ROCKETMQ_SEND_TIMEOUT_MS",
            "send_timeout",
            send_timeout,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_PER_ATTEMPT_TIMEOUT_MS",
            "per_attempt_timeout",
            per_attempt_timeout,
            |var, v| parse_ms(var, v).map(Some)
        );
        env_value!("ROCKETMQ_RETRIES", "retries", retries, parse_num::<u32>);
        env_value!(
            "ROCKETMQ_ASYNC_RETRIES",
            "async_retries",
            async_retries,
            parse_num::<u32>
        );
        env_value!(
            "ROCKETMQ_RETRY_CODES",
            "retry_codes",
            retry_codes,
            parse_list::<i32>
        );
        env_value!(
            "ROCKETMQ_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK",
            "retry_another_broker_when_not_store_ok",
            retry_another_broker_when_not_store_ok,
            parse_bool
        );
        env_value!(
            "ROCKETMQ_MAX_MESSAGE_SIZE",
            "max_message_size",
            max_message_size,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_COMPRESS_THRESHOLD",
            "compress_threshold",
            compress_threshold,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_COMPRESS_LEVEL",
            "compress_level",
            compress_level,
            parse_num::<u32>
        );
        env_value!(
            "ROCKETMQ_DEFAULT_TOPIC_QUEUE_NUMS",
            "default_topic_queue_nums",
            default_topic_queue_nums,
            parse_num::<u32>
        );
        env_value!(
            "ROCKETMQ_CREATE_TOPIC_KEY",
            "create_topic_key",
            create_topic_key,
            parse_string
        );
        env_value!(
            "ROCKETMQ_HEARTBEAT_INTERVAL_MS",
            "heartbeat_interval",
            heartbeat_interval,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_ROUTE_REFRESH_INTERVAL_MS",
            "route_refresh_interval",
            route_refresh_interval,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_ROUTE_EXPIRY_MS",
            "route_expiry",
            route_expiry,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_CLIENT_API_TIMEOUT_MS",
            "client_api_timeout",
            client_api_timeout,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_CONNECT_TIMEOUT_MS",
            "connect_timeout",
            connect_timeout,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_IO_THREADS",
            "io_threads",
            io_threads,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_CALLBACK_THREADS",
            "callback_threads",
            callback_threads,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_BACKPRESSURE",
            "backpressure",
            backpressure,
            parse_bool
        );
        env_value!(
            "ROCKETMQ_MAX_IN_FLIGHT",
            "max_in_flight",
            max_in_flight,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_MAX_IN_FLIGHT_BYTES",
            "max_in_flight_bytes",
            max_in_flight_bytes,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_FAULT_TOLERANCE",
            "fault_tolerance",
            fault_tolerance,
            parse_bool
        );
        if let Some(v) = get("ROCKETMQ_FAULT_LATENCY_MAX_MS")? {
            self.fault_latency_max = parse_ms_list("ROCKETMQ_FAULT_LATENCY_MAX_MS", &v)?;
            self.set_by_env("fault_latency_max", "ROCKETMQ_FAULT_LATENCY_MAX_MS");
        }
        if let Some(v) = get("ROCKETMQ_FAULT_NOT_AVAILABLE_MS")? {
            self.fault_not_available = parse_ms_list("ROCKETMQ_FAULT_NOT_AVAILABLE_MS", &v)?;
            self.set_by_env(
                "fault_not_available_duration",
                "ROCKETMQ_FAULT_NOT_AVAILABLE_MS",
            );
        }
        env_value!(
            "ROCKETMQ_ROUTING_STRATEGY",
            "routing_strategy",
            routing_strategy,
            |var, v: &str| {
                v.parse::<RoutingStrategy>().map_err(|_| {
                    Error::config(
                        var,
                        format!("{v:?} is not one of round_robin, random, message_hash"),
                    )
                })
            }
        );
        env_value!("ROCKETMQ_NAMESPACE", "namespace", namespace, |var, v| {
            parse_string(var, v).map(Some)
        });
        env_value!("ROCKETMQ_UNIT_NAME", "unit_name", unit_name, |var, v| {
            parse_string(var, v).map(Some)
        });
        env_value!(
            "ROCKETMQ_VIP_CHANNEL",
            "vip_channel",
            vip_channel,
            parse_bool
        );
        env_value!("ROCKETMQ_AUTO_BATCH", "auto_batch", auto_batch, parse_bool);
        env_value!(
            "ROCKETMQ_BATCH_MAX_DELAY_MS",
            "batch_max_delay",
            batch_max_delay,
            parse_ms
        );
        env_value!(
            "ROCKETMQ_BATCH_MAX_BYTES",
            "batch_max_bytes",
            batch_max_bytes,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_BATCH_TOTAL_MAX_BYTES",
            "batch_total_max_bytes",
            batch_total_max_bytes,
            parse_num::<usize>
        );
        env_value!("ROCKETMQ_STATS", "stats", stats, parse_bool);
        env_value!(
            "ROCKETMQ_TRANSACTION_CHECK_THREADS",
            "transaction_check_threads",
            transaction_check_threads,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_TRANSACTION_CHECK_QUEUE",
            "transaction_check_queue",
            transaction_check_queue,
            parse_num::<usize>
        );
        Ok(self)
    }

    /// Checks every setting and returns the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid setting, naming it (or the environment variable
    /// its value came from) and saying what is wrong.
    pub fn build(self) -> Result<ProducerConfig> {
        let mut c = self.config.clone();

        check_group(&c.group).map_err(|r| self.err("group", r))?;

        let mut servers: Vec<String> = Vec::new();
        for entry in &c.name_servers {
            for addr in entry.split([';', ',']).map(str::trim) {
                if addr.is_empty() {
                    continue;
                }
                check_addr(addr).map_err(|r| self.err("name_servers", r))?;
                if !servers.iter().any(|s| s == addr) {
                    servers.push(addr.to_owned());
                }
            }
        }
        if servers.is_empty() {
            return Err(self.err(
                "name_servers",
                "no name server address; set one with name_server(..), \
                 ROCKETMQ_NAMESRV_ADDR or NAMESRV_ADDR",
            ));
        }
        c.name_servers = servers;

        check_client_name(&c.instance_name).map_err(|r| self.err("instance_name", r))?;
        if let Some(ip) = c.client_ip {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(self.err("client_ip", format!("{ip} is not a unicast address")));
            }
        }

        let ms = Duration::from_millis(1);
        self.check_duration("send_timeout", c.send_timeout, ms, MAX_DURATION)?;
        if let Some(t) = c.per_attempt_timeout {
            self.check_duration("per_attempt_timeout", t, ms, MAX_DURATION)?;
        }
        self.check_range("retries", c.retries, 0, MAX_RETRIES)?;
        self.check_range("async_retries", c.async_retries, 0, MAX_RETRIES)?;
        for code in &c.retry_codes {
            if matches!(code, 0 | 10 | 11 | 12) {
                return Err(self.err(
                    "retry_codes",
                    format!(
                        "{code} means the message was stored and cannot be retried \
                         (see retry_another_broker_when_not_store_ok)"
                    ),
                ));
            }
        }
        let mut seen = Vec::with_capacity(c.retry_codes.len());
        c.retry_codes.retain(|code| {
            let new = !seen.contains(code);
            seen.push(*code);
            new
        });

        self.check_range(
            "max_message_size",
            c.max_message_size,
            1,
            MAX_MESSAGE_SIZE_LIMIT,
        )?;
        self.check_range("compress_level", c.compress_level, 0, 9)?;
        self.check_range(
            "default_topic_queue_nums",
            c.default_topic_queue_nums,
            1,
            i32::MAX as u32,
        )?;
        check_topic(&c.create_topic_key).map_err(|r| self.err("create_topic_key", r))?;

        self.check_duration(
            "heartbeat_interval",
            c.heartbeat_interval,
            MIN_SERVICE_INTERVAL,
            MAX_DURATION,
        )?;
        self.check_duration(
            "route_refresh_interval",
            c.route_refresh_interval,
            MIN_SERVICE_INTERVAL,
            MAX_DURATION,
        )?;
        self.check_duration(
            "route_expiry",
            c.route_expiry,
            Duration::from_secs(1),
            MAX_ROUTE_EXPIRY,
        )?;
        self.check_duration("client_api_timeout", c.client_api_timeout, ms, MAX_DURATION)?;
        self.check_duration("connect_timeout", c.connect_timeout, ms, MAX_DURATION)?;

        self.check_range("io_threads", c.io_threads, 1, 64)?;
        self.check_range("callback_threads", c.callback_threads, 1, 1024)?;
        self.check_range("max_in_flight", c.max_in_flight, 1, 10_000_000)?;
        if c.backpressure && c.max_in_flight_bytes < c.max_message_size {
            return Err(self.err(
                "max_in_flight_bytes",
                format!(
                    "{} is less than max_message_size ({}); the largest message would never fit",
                    c.max_in_flight_bytes, c.max_message_size
                ),
            ));
        }
        if c.max_in_flight_bytes == 0 {
            return Err(self.err("max_in_flight_bytes", "must be at least 1"));
        }

        c.fault_tables = match FaultTables::new(
            self.fault_latency_max.clone(),
            self.fault_not_available.clone(),
        ) {
            Ok(t) => t,
            Err(Error::Config { setting, reason }) => {
                let setting = if setting == "fault_latency_max" {
                    "fault_latency_max"
                } else {
                    "fault_not_available_duration"
                };
                return Err(self.err(setting, reason));
            }
            Err(other) => return Err(other),
        };

        if let Some(ns) = &c.namespace {
            check_namespace(ns).map_err(|r| self.err("namespace", r))?;
        }
        if let Some(unit) = &c.unit_name {
            check_client_name(unit).map_err(|r| self.err("unit_name", r))?;
        }

        self.check_duration(
            "batch_max_delay",
            c.batch_max_delay,
            ms,
            Duration::from_secs(30),
        )?;
        self.check_range("batch_max_bytes", c.batch_max_bytes, 1, 2 * 1024 * 1024)?;
        if c.batch_total_max_bytes < c.batch_max_bytes {
            return Err(self.err(
                "batch_total_max_bytes",
                format!(
                    "{} is less than batch_max_bytes ({})",
                    c.batch_total_max_bytes, c.batch_max_bytes
                ),
            ));
        }
        self.check_range(
            "transaction_check_threads",
            c.transaction_check_threads,
            1,
            256,
        )?;
        self.check_range(
            "transaction_check_queue",
            c.transaction_check_queue,
            1,
            1_000_000,
        )?;
        Ok(c)
    }

    fn check_range<T: PartialOrd + std::fmt::Display>(
        &self,
        setting: &'static str,
        value: T,
        min: T,
        max: T,
    ) -> Result<()> {
        if value < min || value > max {
            return Err(self.err(setting, format!("must be {min}..={max}, got {value}")));
        }
        Ok(())
    }

    fn check_duration(
        &self,
        setting: &'static str,
        value: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<()> {
        if value < min || value > max {
            return Err(self.err(
                setting,
                format!("must be {min:?} to {max:?}, got {value:?}"),
            ));
        }
        Ok(())
    }
}

fn resource_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')
}

/// Producer group rules (protocol.md 7.7).
fn check_group(group: &str) -> std::result::Result<(), String> {
    if group.trim().is_empty() {
        return Err("must not be blank".into());
    }
    if group.chars().count() > MAX_GROUP_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_GROUP_LEN} are allowed",
            group.chars().count()
        ));
    }
    if let Some(c) = group.chars().find(|c| !resource_char(*c)) {
        return Err(format!(
            "{group:?} contains {c:?}; only [%|a-zA-Z0-9_-] are allowed"
        ));
    }
    if RESERVED_GROUPS.contains(&group) {
        return Err(format!("{group} is reserved"));
    }
    Ok(())
}

/// Topic rules (protocol.md 7.7), for the create-topic key.
fn check_topic(topic: &str) -> std::result::Result<(), String> {
    if topic.trim().is_empty() {
        return Err("must not be blank".into());
    }
    if topic.chars().count() > MAX_TOPIC_LEN {
        return Err(format!("is longer than {MAX_TOPIC_LEN} characters"));
    }
    if let Some(c) = topic.chars().find(|c| !resource_char(*c)) {
        return Err(format!(
            "{topic:?} contains {c:?}; only [%|a-zA-Z0-9_-] are allowed"
        ));
    }
    Ok(())
}

fn check_namespace(ns: &str) -> std::result::Result<(), String> {
    if ns.is_empty() || ns.len() > 64 {
        return Err(format!("must be 1 to 64 characters, got {}", ns.len()));
    }
    if let Some(c) = ns
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        return Err(format!(
            "{ns:?} contains {c:?}; only [a-zA-Z0-9_-] are allowed"
        ));
    }
    Ok(())
}

/// Instance and unit names: part of the client id `ip@instance@unit`.
fn check_client_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("must be 1 to 255 bytes, got {}", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '@' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} contains {c:?}; '@', whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// `host:port`, `ip:port` or `[ipv6]:port`.
fn check_addr(addr: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("{addr:?} is not host:port ({why})"));
    if addr.contains("://") {
        return bad("no scheme; write host:port");
    }
    let port = if let Some(rest) = addr.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once("]:") else {
            return bad("IPv6 addresses are written [addr]:port");
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return bad("bad IPv6 address");
        }
        port
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return bad("missing port");
        };
        if host.contains(':') {
            return bad("IPv6 addresses are written [addr]:port");
        }
        if host.is_empty() {
            return bad("missing host");
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return bad("bad character in host");
        }
        port
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => bad("port must be 1..=65535"),
    }
}

fn parse_string(_var: &'static str, v: &str) -> Result<String> {
    Ok(v.to_owned())
}

fn parse_num<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| Error::config(var, format!("{v:?} is not a valid whole number")))
}

fn parse_ms(var: &'static str, v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| Error::config(var, format!("{v:?} is not a whole number of milliseconds")))
}

fn parse_list<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<Vec<T>> {
    v.split(',')
        .map(|item| {
            item.trim().parse().map_err(|_| {
                Error::config(
                    var,
                    format!("{item:?} in {v:?} is not a valid whole number"),
                )
            })
        })
        .collect()
}

fn parse_ms_list(var: &'static str, v: &str) -> Result<Vec<Duration>> {
    Ok(parse_list::<u64>(var, v)?
        .into_iter()
        .map(Duration::from_millis)
        .collect())
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            var,
            format!("{v:?} is not a boolean (true/false, 1/0, yes/no, on/off)"),
        )),
    }
}

fn parse_ip(var: &'static str, v: &str) -> Result<IpAddr> {
    v.parse()
        .map_err(|_| Error::config(var, format!("{v:?} is not an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> ProducerConfigBuilder {
        ProducerConfig::builder("GID_TEST").name_server("127.0.0.1:9876")
    }

    fn setting_of(e: Error) -> String {
        match e {
            Error::Config { setting, .. } => setting,
            other => panic!("not a config error: {other:?}"),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

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

    #[test]
    fn setters_set() {
        let c = base()
            .name_servers(["a:1", "b:2"])
            .add_name_server("c:3;d:4")
            .instance_name("inst-1")
            .client_ip("10.1.2.3".parse::<IpAddr>().unwrap())
            .send_timeout(Duration::from_millis(1500))
            .per_attempt_timeout(Duration::from_millis(500))
            .retries(5)
            .async_retries(1)
            .retry_codes([2, 14])
            .add_retry_code(215)
            .retry_another_broker_when_not_store_ok(true)
            .max_message_size(1024)
            .compress_threshold(usize::MAX)
            .compress_level(9)
            .default_topic_queue_nums(8)
            .create_topic_key("MY_TEMPLATE")
            .heartbeat_interval(Duration::from_secs(10))
            .route_refresh_interval(Duration::from_secs(5))
            .route_expiry(Duration::from_secs(60))
            .client_api_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(250))
            .io_threads(3)
            .callback_threads(7)
            .backpressure(false)
            .max_in_flight(10)
            .max_in_flight_bytes(100)
            .fault_tolerance(false)
            .fault_tables([Duration::from_millis(100)], [Duration::from_millis(1000)])
            .routing_strategy(RoutingStrategy::Random)
            .namespace("ns-1")
            .unit_name("unit1")
            .vip_channel(true)
            .auto_batch(true)
            .batch_max_delay(Duration::from_millis(2))
            .batch_max_bytes(1000)
            .batch_total_max_bytes(5000)
            .stats(false)
            .transaction_check_threads(4)
            .transaction_check_queue(10)
            .build()
            .unwrap();
        assert_eq!(c.name_servers(), ["a:1", "b:2", "c:3", "d:4"]);
        assert_eq!(c.instance_name(), "inst-1");
        assert_eq!(c.client_ip(), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(c.send_timeout(), Duration::from_millis(1500));
        assert_eq!(c.per_attempt_timeout(), Some(Duration::from_millis(500)));
        assert_eq!((c.retries(), c.async_retries()), (5, 1));
        assert_eq!(c.retry_codes(), [2, 14, 215]);
        assert!(c.retry_another_broker_when_not_store_ok());
        assert_eq!(c.max_message_size(), 1024);
        assert_eq!(c.compress_threshold(), usize::MAX);
        assert_eq!(c.compress_level(), 9);
        assert_eq!(c.default_topic_queue_nums(), 8);
        assert_eq!(c.create_topic_key(), "MY_TEMPLATE");
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(10));
        assert_eq!(c.route_refresh_interval(), Duration::from_secs(5));
        assert_eq!(c.route_expiry(), Duration::from_secs(60));
        assert_eq!(c.client_api_timeout(), Duration::from_secs(1));
        assert_eq!(c.connect_timeout(), Duration::from_millis(250));
        assert_eq!((c.io_threads(), c.callback_threads()), (3, 7));
        assert!(!c.backpressure());
        assert_eq!((c.max_in_flight(), c.max_in_flight_bytes()), (10, 100));
        assert!(!c.fault_tolerance());
        assert_eq!(c.fault_tables().latency_max(), [Duration::from_millis(100)]);
        assert_eq!(c.routing_strategy(), RoutingStrategy::Random);
        assert_eq!(c.namespace(), Some("ns-1"));
        assert_eq!(c.unit_name(), Some("unit1"));
        assert!(c.vip_channel() && c.auto_batch() && !c.stats());
        assert_eq!(c.batch_max_delay(), Duration::from_millis(2));
        assert_eq!(
            (c.batch_max_bytes(), c.batch_total_max_bytes()),
            (1000, 5000)
        );
        assert_eq!(
            (c.transaction_check_threads(), c.transaction_check_queue()),
            (4, 10)
        );
        // Clearing optional values.
        let c = c
            .to_builder()
            .per_attempt_timeout(None)
            .client_ip(None)
            .build()
            .unwrap();
        assert_eq!((c.per_attempt_timeout(), c.client_ip()), (None, None));
    }

    #[test]
    fn presets() {
        let d = ProducerConfig::development("GID_DEV").build().unwrap();
        assert_eq!(d.name_servers(), ["127.0.0.1:9876"]);
        assert_eq!(d.send_timeout(), Duration::from_secs(10));
        assert!(!d.fault_tolerance());
        assert_eq!(d.route_refresh_interval(), Duration::from_secs(5));
        assert_eq!((d.io_threads(), d.callback_threads()), (1, 1));
        let d = ProducerConfig::development("GID_DEV")
            .name_server("10.0.0.9:9876")
            .build()
            .unwrap();
        assert_eq!(d.name_servers(), ["10.0.0.9:9876"]);

        let p = ProducerConfig::production("GID_P")
            .name_server("ns:9876")
            .build()
            .unwrap();
        assert_eq!(p.per_attempt_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(p.send_timeout(), Duration::from_secs(3));
        assert!(p.fault_tolerance() && p.backpressure() && p.stats());
        assert_eq!(p.io_threads(), 2);

        let h = ProducerConfig::high_throughput("GID_H")
            .name_server("ns:9876")
            .build()
            .unwrap();
        assert!(h.auto_batch());
        assert_eq!(h.batch_max_bytes(), 256 * 1024);
        assert_eq!(h.batch_total_max_bytes(), 64 * 1024 * 1024);
        assert_eq!(h.max_in_flight(), 10_000);
        assert_eq!(h.max_in_flight_bytes(), 256 * 1024 * 1024);
        assert_eq!((h.io_threads(), h.callback_threads()), (2, 8));

        let t = ProducerConfig::testing("GID_T")
            .name_server("127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(t.send_timeout(), Duration::from_secs(5));
        assert_eq!(t.heartbeat_interval(), Duration::from_secs(1));
        assert_eq!(t.route_refresh_interval(), Duration::from_secs(1));
        assert!(!t.fault_tolerance());
        // The testing preset has no name server of its own.
        let e = ProducerConfig::testing("GID_T").build().unwrap_err();
        assert_eq!(setting_of(e), "name_servers");

        let o = ProducerConfig::ordered("GID_O")
            .name_server("ns:9876")
            .build()
            .unwrap();
        assert_eq!(o.routing_strategy(), RoutingStrategy::MessageHash);
        assert!(!o.fault_tolerance() && !o.auto_batch());
        assert_eq!((o.retries(), o.async_retries()), (0, 0));
    }

    #[test]
    fn validation_names_the_setting() {
        let d = Duration::from_millis;
        let cases: Vec<(ProducerConfigBuilder, &str)> = vec![
            (base().group(""), "group"),
            (base().group("bad group"), "group"),
            (base().group("x".repeat(121)), "group"),
            (base().group("DEFAULT_PRODUCER"), "group"),
            (base().group("CLIENT_INNER_PRODUCER"), "group"),
            (base().name_server(""), "name_servers"),
            (base().name_server(";;"), "name_servers"),
            (base().name_server("localhost"), "name_servers"),
            (base().name_server("localhost:0"), "name_servers"),
            (base().name_server("localhost:70000"), "name_servers"),
            (base().name_server(":9876"), "name_servers"),
            (base().name_server("::1:9876"), "name_servers"),
            (base().name_server("[zz]:9876"), "name_servers"),
            (base().name_server("http://ns:9876"), "name_servers"),
            (base().name_server("a:1;b"), "name_servers"),
            (base().instance_name(""), "instance_name"),
            (base().instance_name("a@b"), "instance_name"),
            (base().instance_name("a b"), "instance_name"),
            (
                base().client_ip("0.0.0.0".parse::<IpAddr>().unwrap()),
                "client_ip",
            ),
            (base().send_timeout(Duration::ZERO), "send_timeout"),
            (base().send_timeout(MAX_DURATION + d(1)), "send_timeout"),
            (
                base().per_attempt_timeout(Duration::ZERO),
                "per_attempt_timeout",
            ),
            (base().retries(65), "retries"),
            (base().async_retries(1000), "async_retries"),
            (base().add_retry_code(0), "retry_codes"),
            (base().retry_codes([2, 10]), "retry_codes"),
            (base().max_message_size(0), "max_message_size"),
            (
                base().max_message_size(MAX_MESSAGE_SIZE_LIMIT + 1),
                "max_message_size",
            ),
            (base().compress_level(10), "compress_level"),
            (
                base().default_topic_queue_nums(0),
                "default_topic_queue_nums",
            ),
            (base().create_topic_key("bad key"), "create_topic_key"),
            (base().create_topic_key(""), "create_topic_key"),
            (base().heartbeat_interval(d(9)), "heartbeat_interval"),
            (
                base().route_refresh_interval(d(0)),
                "route_refresh_interval",
            ),
            (base().route_expiry(d(999)), "route_expiry"),
            (base().client_api_timeout(d(0)), "client_api_timeout"),
            (base().connect_timeout(d(0)), "connect_timeout"),
            (base().io_threads(0), "io_threads"),
            (base().io_threads(65), "io_threads"),
            (base().callback_threads(0), "callback_threads"),
            (base().max_in_flight(0), "max_in_flight"),
            (base().max_in_flight_bytes(1024), "max_in_flight_bytes"),
            (
                base().backpressure(false).max_in_flight_bytes(0),
                "max_in_flight_bytes",
            ),
            (base().fault_tables([], []), "fault_latency_max"),
            (
                base().fault_tables([d(2), d(1)], [d(0), d(0)]),
                "fault_latency_max",
            ),
            (
                base().fault_tables([d(1)], [d(0), d(0)]),
                "fault_not_available_duration",
            ),
            (base().namespace(""), "namespace"),
            (base().namespace("a%b"), "namespace"),
            (base().unit_name("u@1"), "unit_name"),
            (base().batch_max_delay(d(0)), "batch_max_delay"),
            (base().batch_max_delay(d(30_001)), "batch_max_delay"),
            (base().batch_max_bytes(0), "batch_max_bytes"),
            (
                base().batch_max_bytes(2 * 1024 * 1024 + 1),
                "batch_max_bytes",
            ),
            (
                base().batch_max_bytes(1000).batch_total_max_bytes(999),
                "batch_total_max_bytes",
            ),
            (
                base().transaction_check_threads(0),
                "transaction_check_threads",
            ),
            (base().transaction_check_queue(0), "transaction_check_queue"),
        ];
        for (builder, setting) in cases {
            let debug = format!("{builder:?}");
            let err = builder.build().expect_err(setting);
            assert!(err.to_string().contains(setting), "{err}");
            assert_eq!(setting_of(err), setting, "{debug}");
        }
        // Accepted edge values.
        base()
            .name_server("[::1]:9876; my-host.example.com:10911 ,10.0.0.1:1")
            .retries(64)
            .compress_level(0)
            .group("%RETRY%|x_y-z")
            .backpressure(false)
            .max_in_flight_bytes(1)
            .build()
            .unwrap();
        let c = base()
            .name_server("a:1;a:1;b:2;")
            .retry_codes([2, 2, 14])
            .build()
            .unwrap();
        assert_eq!(c.name_servers(), ["a:1", "b:2"]);
        assert_eq!(c.retry_codes(), [2, 14]);
    }

    #[test]
    fn env_parsing_valid() {
        let vars = env(&[
            ("ROCKETMQ_NAMESRV_ADDR", "10.0.0.1:9876;10.0.0.2:9876"),
            ("NAMESRV_ADDR", "ignored:1"),
            ("ROCKETMQ_PRODUCER_GROUP", "GID_ENV"),
            ("ROCKETMQ_INSTANCE_NAME", "env-inst"),
            ("ROCKETMQ_CLIENT_IP", "192.168.1.5"),
            ("ROCKETMQ_SEND_TIMEOUT_MS", "4500"),
            ("ROCKETMQ_PER_ATTEMPT_TIMEOUT_MS", "1500"),
            ("ROCKETMQ_RETRIES", "4"),
            ("ROCKETMQ_ASYNC_RETRIES", "3"),
            ("ROCKETMQ_RETRY_CODES", "1, 2,215"),
            ("ROCKETMQ_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK", "yes"),
            ("ROCKETMQ_MAX_MESSAGE_SIZE", "1048576"),
            ("ROCKETMQ_COMPRESS_THRESHOLD", "8192"),
            ("ROCKETMQ_COMPRESS_LEVEL", "9"),
            ("ROCKETMQ_DEFAULT_TOPIC_QUEUE_NUMS", "16"),
            ("ROCKETMQ_CREATE_TOPIC_KEY", "TPL"),
            ("ROCKETMQ_HEARTBEAT_INTERVAL_MS", "15000"),
            ("ROCKETMQ_ROUTE_REFRESH_INTERVAL_MS", "20000"),
            ("ROCKETMQ_ROUTE_EXPIRY_MS", "60000"),
            ("ROCKETMQ_CLIENT_API_TIMEOUT_MS", "2000"),
            ("ROCKETMQ_CONNECT_TIMEOUT_MS", "1000"),
            ("ROCKETMQ_IO_THREADS", "2"),
            ("ROCKETMQ_CALLBACK_THREADS", "6"),
            ("ROCKETMQ_BACKPRESSURE", "off"),
            ("ROCKETMQ_MAX_IN_FLIGHT", "50"),
            ("ROCKETMQ_MAX_IN_FLIGHT_BYTES", "2000000"),
            ("ROCKETMQ_FAULT_TOLERANCE", "FALSE"),
            ("ROCKETMQ_FAULT_LATENCY_MAX_MS", "100,1000"),
            ("ROCKETMQ_FAULT_NOT_AVAILABLE_MS", "0,5000"),
            ("ROCKETMQ_ROUTING_STRATEGY", "message_hash"),
            ("ROCKETMQ_NAMESPACE", "prod"),
            ("ROCKETMQ_UNIT_NAME", "u1"),
            ("ROCKETMQ_VIP_CHANNEL", "1"),
            ("ROCKETMQ_AUTO_BATCH", "true"),
            ("ROCKETMQ_BATCH_MAX_DELAY_MS", "5"),
            ("ROCKETMQ_BATCH_MAX_BYTES", "65536"),
            ("ROCKETMQ_BATCH_TOTAL_MAX_BYTES", "1048576"),
            ("ROCKETMQ_STATS", "no"),
            ("ROCKETMQ_TRANSACTION_CHECK_THREADS", "3"),
            ("ROCKETMQ_TRANSACTION_CHECK_QUEUE", "100"),
        ]);
        let c = ProducerConfig::builder("GID_CODE")
            .from_env_map(vars)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.name_servers(), ["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(c.group(), "GID_ENV");
        assert_eq!(c.instance_name(), "env-inst");
        assert_eq!(c.client_ip(), Some("192.168.1.5".parse().unwrap()));
        assert_eq!(c.send_timeout(), Duration::from_millis(4500));
        assert_eq!(c.per_attempt_timeout(), Some(Duration::from_millis(1500)));
        assert_eq!((c.retries(), c.async_retries()), (4, 3));
        assert_eq!(c.retry_codes(), [1, 2, 215]);
        assert!(c.retry_another_broker_when_not_store_ok());
        assert_eq!(c.max_message_size(), 1_048_576);
        assert_eq!((c.compress_threshold(), c.compress_level()), (8192, 9));
        assert_eq!(c.default_topic_queue_nums(), 16);
        assert_eq!(c.create_topic_key(), "TPL");
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(15));
        assert_eq!(c.route_refresh_interval(), Duration::from_secs(20));
        assert_eq!(c.route_expiry(), Duration::from_secs(60));
        assert_eq!(c.client_api_timeout(), Duration::from_secs(2));
        assert_eq!(c.connect_timeout(), Duration::from_secs(1));
        assert_eq!((c.io_threads(), c.callback_threads()), (2, 6));
        assert!(!c.backpressure());
        assert_eq!(
            (c.max_in_flight(), c.max_in_flight_bytes()),
            (50, 2_000_000)
        );
        assert!(!c.fault_tolerance());
        assert_eq!(
            c.fault_tables()
                .not_available_for(Duration::from_millis(1000)),
            Duration::from_secs(5)
        );
        assert_eq!(c.routing_strategy(), RoutingStrategy::MessageHash);
        assert_eq!((c.namespace(), c.unit_name()), (Some("prod"), Some("u1")));
        assert!(c.vip_channel() && c.auto_batch() && !c.stats());
        assert_eq!(c.batch_max_delay(), Duration::from_millis(5));
        assert_eq!(
            (c.batch_max_bytes(), c.batch_total_max_bytes()),
            (65536, 1_048_576)
        );
        assert_eq!(
            (c.transaction_check_threads(), c.transaction_check_queue()),
            (3, 100)
        );
    }

    #[test]
    fn env_precedence() {
        // NAMESRV_ADDR, as Java, when ROCKETMQ_NAMESRV_ADDR is unset.
        let c = ProducerConfig::builder("G")
            .from_env_map(env(&[("NAMESRV_ADDR", "ns1:9876")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.name_servers(), ["ns1:9876"]);
        // The environment replaces earlier setters; later setters replace the environment.
        let b = ProducerConfig::builder("G")
            .name_server("code:1")
            .retries(1)
            .from_env_map(env(&[("NAMESRV_ADDR", "env:2"), ("ROCKETMQ_RETRIES", "7")]))
            .unwrap();
        let c = b.clone().build().unwrap();
        assert_eq!((c.name_servers()[0].as_str(), c.retries()), ("env:2", 7));
        let c = b.retries(3).build().unwrap();
        assert_eq!(c.retries(), 3);
        // No variables: nothing changes.
        let c = base().from_env_map(|_| None).unwrap().build().unwrap();
        assert_eq!(c, base().build().unwrap());
    }

    #[test]
    fn env_errors_name_the_variable() {
        let cases: [(&str, &str); 14] = [
            ("ROCKETMQ_SEND_TIMEOUT_MS", "3s"),
            ("ROCKETMQ_SEND_TIMEOUT_MS", "-1"),
            ("ROCKETMQ_RETRIES", "two"),
            ("ROCKETMQ_RETRY_CODES", "1,,2"),
            ("ROCKETMQ_BACKPRESSURE", "maybe"),
            ("ROCKETMQ_CLIENT_IP", "host.local"),
            ("ROCKETMQ_ROUTING_STRATEGY", "sticky"),
            ("ROCKETMQ_FAULT_LATENCY_MAX_MS", "50,x"),
            ("ROCKETMQ_MAX_MESSAGE_SIZE", "4MiB"),
            ("ROCKETMQ_NAMESPACE", ""),
            ("ROCKETMQ_NAMESRV_ADDR", "  "),
            ("NAMESRV_ADDR", ""),
            ("ROCKETMQ_COMPRESS_LEVEL", "99999999999"),
            ("ROCKETMQ_STATS", "tru"),
        ];
        for (var, value) in cases {
            let err = base().from_env_map(env(&[(var, value)])).expect_err(var);
            assert_eq!(setting_of(err), var, "{var}={value:?}");
        }
        // Values that parse but are out of range: build names the variable.
        let cases: [(&str, &str); 6] = [
            ("ROCKETMQ_COMPRESS_LEVEL", "12"),
            ("ROCKETMQ_NAMESRV_ADDR", "no-port"),
            ("ROCKETMQ_PRODUCER_GROUP", "DEFAULT_PRODUCER"),
            ("ROCKETMQ_FAULT_NOT_AVAILABLE_MS", "1,2"),
            ("ROCKETMQ_IO_THREADS", "0"),
            ("ROCKETMQ_SEND_TIMEOUT_MS", "0"),
        ];
        for (var, value) in cases {
            let err = base()
                .from_env_map(env(&[(var, value)]))
                .unwrap()
                .build()
                .expect_err(var);
            assert_eq!(setting_of(err), var, "{var}={value:?}");
        }
        // A setter after the environment takes the blame back.
        let err = base()
            .from_env_map(env(&[("ROCKETMQ_COMPRESS_LEVEL", "3")]))
            .unwrap()
            .compress_level(10)
            .build()
            .unwrap_err();
        assert_eq!(setting_of(err), "compress_level");
    }

    #[test]
    fn config_is_clone_debug_send_sync() {
        fn check<T: Clone + std::fmt::Debug + Send + Sync>() {}
        check::<ProducerConfig>();
        check::<ProducerConfigBuilder>();
    }
}
