//! [`ProducerConfig`]: every producer setting, its default, its validation, environment
//! variables and presets.
//!
//! Build one with [`ProducerConfig::builder`] (Java client defaults) or a preset
//! ([`ProducerConfig::development`], [`production`](ProducerConfig::production),
//! [`high_throughput`](ProducerConfig::high_throughput), [`testing`](ProducerConfig::testing),
//! [`ordered`](ProducerConfig::ordered)), change what you need with the consuming setters
//! (times are [`Duration`](std::time::Duration)s), optionally read the environment with
//! [`ProducerConfigBuilder::from_env`], and call [`ProducerConfigBuilder::build`], which checks
//! every value. Invalid values are errors ([`Error::Config`](crate::Error::Config)) that name
//! the setting, or the environment variable the value came from. Nothing is silently ignored or
//! clamped.
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
//! | `ROCKETMQ_CLOSE_ON_REQUEST_TIMEOUT` | [`close_on_request_timeout`](ProducerConfig::close_on_request_timeout) |
//! | `ROCKETMQ_TCP_KEEPALIVE_MS` | [`tcp_keepalive`](ProducerConfig::tcp_keepalive), `0` turns it off |
//! | `ROCKETMQ_MAX_CONNECTION_OUTPUT_BYTES` | [`max_connection_output_bytes`](ProducerConfig::max_connection_output_bytes) |
//! | `ROCKETMQ_BUSY_POLL_MICROS` | [`busy_poll`](ProducerConfig::busy_poll), microseconds (`0`: off) |
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
//! | `ROCKETMQ_ACCESS_KEY`, `ROCKETMQ_SECRET_KEY` | [`credentials`](ProducerConfig::credentials) (ACL signing; both or neither) |
//! | `ROCKETMQ_SECURITY_TOKEN` | the security token of [`credentials`](ProducerConfig::credentials) |
//! | `ROCKETMQ_SIGNATURE_ALGORITHM` | [`signature_algorithm`](ProducerConfig::signature_algorithm): `HmacSHA1`, `HmacSHA256` |
//! | `ROCKETMQ_VIP_CHANNEL` | [`vip_channel`](ProducerConfig::vip_channel) |
//! | `ROCKETMQ_SERIALIZE_TYPE` | [`serialize_type`](ProducerConfig::serialize_type): `JSON` or `ROCKETMQ`, any case (Java's `rocketmq.serialize.type`) |
//! | `ROCKETMQ_AUTO_BATCH` | [`auto_batch`](ProducerConfig::auto_batch) |
//! | `ROCKETMQ_BATCH_MAX_DELAY_MS` | [`batch_max_delay`](ProducerConfig::batch_max_delay) |
//! | `ROCKETMQ_BATCH_MAX_BYTES` | [`batch_max_bytes`](ProducerConfig::batch_max_bytes) |
//! | `ROCKETMQ_BATCH_TOTAL_MAX_BYTES` | [`batch_total_max_bytes`](ProducerConfig::batch_total_max_bytes) |
//! | `ROCKETMQ_STATS` | [`stats`](ProducerConfig::stats) |
//! | `ROCKETMQ_TRANSACTION_CHECK_THREADS` | [`transaction_check_threads`](ProducerConfig::transaction_check_threads) |
//! | `ROCKETMQ_TRANSACTION_CHECK_QUEUE` | [`transaction_check_queue`](ProducerConfig::transaction_check_queue) |
//! | `ROCKETMQ_TOPICS` | [`topics`](ProducerConfig::topics), e.g. `orders,payments` |
//! | `ROCKETMQ_STRICT_ORDER` | [`strict_order`](ProducerConfig::strict_order) |
//! | `ROCKETMQ_TRANSACTION_RECORDS` | [`transaction_records`](ProducerConfig::transaction_records) |
//! | `ROCKETMQ_TRANSACTION_RECORD_AGE_MS` | [`transaction_record_age`](ProducerConfig::transaction_record_age) |
//! | `ROCKETMQ_TLS` | [`tls`](ProducerConfig::tls) (crate feature `tls`) |
//! | `ROCKETMQ_TLS_CA_FILE` | [`tls_ca_file`](ProducerConfig::tls_ca_file) (unset: the system roots) |
//! | `ROCKETMQ_TLS_SERVER_NAME` | [`tls_server_name`](ProducerConfig::tls_server_name) |
//! | `ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING` | [`tls_insecure_skip_verify_for_testing`](ProducerConfig::tls_insecure_skip_verify_for_testing) |
//! | `ROCKETMQ_TLS_CLIENT_CERT` | [`tls_client_cert`](ProducerConfig::tls_client_cert) |
//! | `ROCKETMQ_TLS_CLIENT_KEY` | [`tls_client_key`](ProducerConfig::tls_client_key) |
//!
//! `from_env` also logs a warning for any other `ROCKETMQ_*` variable except `ROCKETMQ_HOME`
//! (probably a typo; other tools share the prefix, so it is not an error).

mod builder;
mod env;
mod presets;
mod router;
mod settings;
mod tls;
mod validate;

pub use builder::ProducerConfigBuilder;
pub use env::ENV_VARS;
pub use settings::{
    ProducerConfig, DEFAULT_ASYNC_RETRIES, DEFAULT_AUTO_BATCH, DEFAULT_BACKPRESSURE,
    DEFAULT_BATCH_MAX_BYTES, DEFAULT_BATCH_MAX_DELAY, DEFAULT_BATCH_TOTAL_MAX_BYTES,
    DEFAULT_CALLBACK_THREADS, DEFAULT_CLIENT_API_TIMEOUT, DEFAULT_CLOSE_ON_REQUEST_TIMEOUT,
    DEFAULT_COMPRESS_LEVEL, DEFAULT_COMPRESS_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CREATE_TOPIC_KEY, DEFAULT_FAULT_TOLERANCE, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_INSTANCE_NAME, DEFAULT_IO_THREADS, DEFAULT_MAX_CONNECTION_OUTPUT_BYTES,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RETRIES,
    DEFAULT_RETRY_ANOTHER_BROKER_WHEN_NOT_STORE_OK, DEFAULT_ROUTE_EXPIRY,
    DEFAULT_ROUTE_REFRESH_INTERVAL, DEFAULT_ROUTING_STRATEGY, DEFAULT_SEND_TIMEOUT,
    DEFAULT_SERIALIZE_TYPE, DEFAULT_STATS, DEFAULT_STRICT_ORDER, DEFAULT_TCP_KEEPALIVE,
    DEFAULT_TOPIC_QUEUE_NUMS, DEFAULT_TRANSACTION_CHECK_QUEUE, DEFAULT_TRANSACTION_CHECK_THREADS,
    DEFAULT_TRANSACTION_RECORDS, DEFAULT_TRANSACTION_RECORD_AGE, DEFAULT_VIP_CHANNEL,
};
pub use validate::{
    MAX_DURATION, MAX_GROUP_LEN, MAX_MESSAGE_SIZE_LIMIT, MAX_RETRIES, MAX_ROUTE_EXPIRY,
    MAX_TOPIC_LEN, MIN_SERVICE_INTERVAL, RESERVED_GROUPS,
};

#[cfg(test)]
mod test_support {
    use super::{ProducerConfig, ProducerConfigBuilder};
    use crate::error::Error;

    pub(super) fn base() -> ProducerConfigBuilder {
        ProducerConfig::builder("GID_TEST").name_server("127.0.0.1:9876")
    }

    pub(super) fn setting_of(e: Error) -> String {
        match e {
            Error::Config { setting, .. } => setting,
            other => panic!("not a config error: {other:?}"),
        }
    }
}
