//! [`ProducerConfigBuilder`]: the consuming setters, and where each value came from (code or
//! an environment variable) so errors can name it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::settings::*; // ProducerConfig and the DEFAULT_* values
use crate::error::{Error, DEFAULT_RETRY_CODES};
use crate::producer::hooks::SendHook;
use crate::protocol::acl::{Secret, SignatureAlgorithm};
use crate::protocol::SerializeType;
use crate::routing::fault::{FaultTables, DEFAULT_LATENCY_MAX, DEFAULT_NOT_AVAILABLE_DURATION};
use crate::routing::router::RoutingStrategy;

impl ProducerConfig {
    /// A builder with every setting at its default (the Java client's, unless said otherwise)
    /// for producer group `group`. The name server list starts empty and must be set (or read
    /// from the environment) before [`ProducerConfigBuilder::build`].
    pub fn builder(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfigBuilder::new(group.into())
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
}

/// Builds a [`ProducerConfig`]: consuming setters, then [`ProducerConfigBuilder::build`].
///
/// Setters store values as given; `build` checks them all.
#[derive(Debug, Clone)]
pub struct ProducerConfigBuilder {
    pub(super) config: ProducerConfig,
    pub(super) fault_latency_max: Vec<Duration>,
    pub(super) fault_not_available: Vec<Duration>,
    /// (setting, environment variable) for values that came from the environment.
    pub(super) origins: Vec<(&'static str, &'static str)>,
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
                close_on_request_timeout: DEFAULT_CLOSE_ON_REQUEST_TIMEOUT,
                tcp_keepalive: DEFAULT_TCP_KEEPALIVE,
                max_connection_output_bytes: DEFAULT_MAX_CONNECTION_OUTPUT_BYTES,
                busy_poll: Duration::ZERO,
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
                serialize_type: DEFAULT_SERIALIZE_TYPE,
                auto_batch: DEFAULT_AUTO_BATCH,
                batch_max_delay: DEFAULT_BATCH_MAX_DELAY,
                batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
                batch_total_max_bytes: DEFAULT_BATCH_TOTAL_MAX_BYTES,
                stats: DEFAULT_STATS,
                transaction_check_threads: DEFAULT_TRANSACTION_CHECK_THREADS,
                transaction_check_queue: DEFAULT_TRANSACTION_CHECK_QUEUE,
                access_key: None,
                secret_key: None,
                security_token: None,
                signature_algorithm: SignatureAlgorithm::default(),
                credentials: None,
                topics: Vec::new(),
                strict_order: DEFAULT_STRICT_ORDER,
                transaction_records: DEFAULT_TRANSACTION_RECORDS,
                transaction_record_age: DEFAULT_TRANSACTION_RECORD_AGE,
                tls: Default::default(),
                send_hooks: Default::default(),
            },
            fault_latency_max: DEFAULT_LATENCY_MAX.to_vec(),
            fault_not_available: DEFAULT_NOT_AVAILABLE_DURATION.to_vec(),
            origins: Vec::new(),
        }
    }

    /// Forgets that `setting` came from the environment (a setter replaced it).
    pub(super) fn set_by_code(mut self, setting: &str) -> Self {
        self.origins.retain(|(s, _)| *s != setting);
        self
    }

    pub(super) fn set_by_env(&mut self, setting: &'static str, var: &'static str) {
        self.origins.retain(|(s, _)| *s != setting);
        self.origins.push((setting, var));
    }

    /// A config error naming `setting`, or the environment variable its value came from.
    pub(super) fn err(&self, setting: &'static str, reason: impl Into<String>) -> Error {
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

    /// Sets whether a request timeout resets its connection; see
    /// [`ProducerConfig::close_on_request_timeout`].
    pub fn close_on_request_timeout(mut self, on: bool) -> Self {
        self.config.close_on_request_timeout = on;
        self.set_by_code("close_on_request_timeout")
    }

    /// Sets TCP keepalive (`None` turns it off); see [`ProducerConfig::tcp_keepalive`].
    pub fn tcp_keepalive(mut self, idle: impl Into<Option<Duration>>) -> Self {
        self.config.tcp_keepalive = idle.into();
        self.set_by_code("tcp_keepalive")
    }

    /// Sets how long a synchronous send spins on its result before parking; see
    /// [`ProducerConfig::busy_poll`].
    pub fn busy_poll(mut self, spin: Duration) -> Self {
        self.config.busy_poll = spin;
        self.set_by_code("busy_poll")
    }

    /// Sets the cap on a connection's queued output; see
    /// [`ProducerConfig::max_connection_output_bytes`].
    pub fn max_connection_output_bytes(mut self, bytes: usize) -> Self {
        self.config.max_connection_output_bytes = bytes;
        self.set_by_code("max_connection_output_bytes")
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

    /// Signs every request with these ACL credentials; see [`ProducerConfig::credentials`].
    /// The secret key is kept out of `Debug`, logs, statistics, health reports and errors.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.config.access_key = Some(access_key.into());
        self.config.secret_key = Some(Secret::new(secret_key));
        self.set_by_code("access_key").set_by_code("secret_key")
    }

    /// Adds a security token (temporary credentials) to signed requests; needs
    /// [`credentials`](ProducerConfigBuilder::credentials). Kept out of `Debug` like the
    /// secret key.
    pub fn security_token(mut self, token: impl Into<String>) -> Self {
        self.config.security_token = Some(Secret::new(token));
        self.set_by_code("security_token")
    }

    /// Sets the HMAC of signed requests; see [`ProducerConfig::signature_algorithm`].
    pub fn signature_algorithm(mut self, algorithm: SignatureAlgorithm) -> Self {
        self.config.signature_algorithm = algorithm;
        self.set_by_code("signature_algorithm")
    }

    /// Sets the unit name; see [`ProducerConfig::unit_name`].
    pub fn unit_name(mut self, unit: impl Into<String>) -> Self {
        self.config.unit_name = Some(unit.into());
        self.set_by_code("unit_name")
    }

    /// Sets the header serialization of the requests this producer sends (JSON or the binary
    /// ROCKETMQ layout); see [`ProducerConfig::serialize_type`].
    pub fn serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.config.serialize_type = serialize_type;
        self.set_by_code("serialize_type")
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

    /// Sets the topics resolved at start, replacing any set before; see
    /// [`ProducerConfig::topics`].
    pub fn topics<I, T>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.config.topics = topics.into_iter().map(Into::into).collect();
        self.set_by_code("topics")
    }

    /// Turns strict order on or off; see [`ProducerConfig::strict_order`].
    pub fn strict_order(mut self, on: bool) -> Self {
        self.config.strict_order = on;
        self.set_by_code("strict_order")
    }

    /// Sets how many transaction records are kept; see
    /// [`ProducerConfig::transaction_records`].
    pub fn transaction_records(mut self, n: usize) -> Self {
        self.config.transaction_records = n;
        self.set_by_code("transaction_records")
    }

    /// Sets how long transaction records are kept; see
    /// [`ProducerConfig::transaction_record_age`].
    pub fn transaction_record_age(mut self, age: Duration) -> Self {
        self.config.transaction_record_age = age;
        self.set_by_code("transaction_record_age")
    }

    /// Adds a send hook; hooks run in the order they were added. See [`crate::hooks`] for
    /// what they see and where they run. The config's `Debug` output lists their
    /// [names](crate::hooks::SendHook::name).
    pub fn send_hook(mut self, hook: Arc<dyn SendHook>) -> Self {
        self.config.send_hooks.0.push(hook);
        self
    }

    /// Removes every send hook added so far.
    pub fn clear_send_hooks(mut self) -> Self {
        self.config.send_hooks.0.clear();
        self
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::config::test_support::base;

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
            .close_on_request_timeout(false)
            .tcp_keepalive(None)
            .max_connection_output_bytes(64 * 1024 * 1024)
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
        assert!(!c.close_on_request_timeout());
        assert_eq!(c.tcp_keepalive(), None);
        assert_eq!(c.max_connection_output_bytes(), 64 * 1024 * 1024);
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
    fn config_is_clone_debug_send_sync() {
        fn check<T: Clone + std::fmt::Debug + Send + Sync>() {}
        check::<ProducerConfig>();
        check::<ProducerConfigBuilder>();
    }
}
