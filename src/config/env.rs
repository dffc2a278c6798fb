//! Environment variables: [`ProducerConfigBuilder::from_env`] and the parsing of each value.

use std::net::IpAddr;
use std::time::Duration;

use super::ProducerConfigBuilder;
use crate::error::{Error, Result};
use crate::protocol::acl::{Secret, SignatureAlgorithm};
use crate::protocol::SerializeType;
use crate::routing::router::RoutingStrategy;

/// Every environment variable [`ProducerConfigBuilder::from_env`] reads.
pub const ENV_VARS: [&str; 59] = [
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
    "ROCKETMQ_CLOSE_ON_REQUEST_TIMEOUT",
    "ROCKETMQ_TCP_KEEPALIVE_MS",
    "ROCKETMQ_MAX_CONNECTION_OUTPUT_BYTES",
    "ROCKETMQ_BUSY_POLL_MICROS",
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
    "ROCKETMQ_SERIALIZE_TYPE",
    "ROCKETMQ_AUTO_BATCH",
    "ROCKETMQ_BATCH_MAX_DELAY_MS",
    "ROCKETMQ_BATCH_MAX_BYTES",
    "ROCKETMQ_BATCH_TOTAL_MAX_BYTES",
    "ROCKETMQ_STATS",
    "ROCKETMQ_TRANSACTION_CHECK_THREADS",
    "ROCKETMQ_TRANSACTION_CHECK_QUEUE",
    "ROCKETMQ_ACCESS_KEY",
    "ROCKETMQ_SECRET_KEY",
    "ROCKETMQ_SECURITY_TOKEN",
    "ROCKETMQ_SIGNATURE_ALGORITHM",
    "ROCKETMQ_TOPICS",
    "ROCKETMQ_STRICT_ORDER",
    "ROCKETMQ_TRANSACTION_RECORDS",
    "ROCKETMQ_TRANSACTION_RECORD_AGE_MS",
    // TLS (config/tls.rs: TLS_ENV_VARS)
    "ROCKETMQ_TLS",
    "ROCKETMQ_TLS_CA_FILE",
    "ROCKETMQ_TLS_SERVER_NAME",
    "ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING",
    "ROCKETMQ_TLS_CLIENT_CERT",
    "ROCKETMQ_TLS_CLIENT_KEY",
];

impl ProducerConfigBuilder {
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
            "ROCKETMQ_CLOSE_ON_REQUEST_TIMEOUT",
            "close_on_request_timeout",
            close_on_request_timeout,
            parse_bool
        );
        env_value!(
            "ROCKETMQ_TCP_KEEPALIVE_MS",
            "tcp_keepalive",
            tcp_keepalive,
            // 0 turns keepalive off.
            |var, v| parse_ms(var, v).map(|d| Some(d).filter(|d| !d.is_zero()))
        );
        env_value!(
            "ROCKETMQ_MAX_CONNECTION_OUTPUT_BYTES",
            "max_connection_output_bytes",
            max_connection_output_bytes,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_BUSY_POLL_MICROS",
            "busy_poll",
            busy_poll,
            parse_micros
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
        env_value!("ROCKETMQ_ACCESS_KEY", "access_key", access_key, |var, v| {
            parse_string(var, v).map(Some)
        });
        env_value!("ROCKETMQ_SECRET_KEY", "secret_key", secret_key, |var, v| {
            parse_string(var, v).map(|s| Some(Secret::new(s)))
        });
        env_value!(
            "ROCKETMQ_SECURITY_TOKEN",
            "security_token",
            security_token,
            |var, v| parse_string(var, v).map(|s| Some(Secret::new(s)))
        );
        env_value!(
            "ROCKETMQ_SIGNATURE_ALGORITHM",
            "signature_algorithm",
            signature_algorithm,
            |var, v: &str| {
                SignatureAlgorithm::from_name(v).ok_or_else(|| {
                    Error::config(var, format!("{v:?} is not one of HmacSHA1, HmacSHA256"))
                })
            }
        );
        env_value!("ROCKETMQ_UNIT_NAME", "unit_name", unit_name, |var, v| {
            parse_string(var, v).map(Some)
        });
        env_value!(
            "ROCKETMQ_VIP_CHANNEL",
            "vip_channel",
            vip_channel,
            parse_bool
        );
        env_value!(
            "ROCKETMQ_SERIALIZE_TYPE",
            "serialize_type",
            serialize_type,
            |var, v: &str| {
                v.parse::<SerializeType>()
                    .map_err(|_| Error::config(var, format!("{v:?} is not one of JSON, ROCKETMQ")))
            }
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
        env_value!("ROCKETMQ_TOPICS", "topics", topics, parse_topics);
        env_value!(
            "ROCKETMQ_STRICT_ORDER",
            "strict_order",
            strict_order,
            parse_bool
        );
        env_value!(
            "ROCKETMQ_TRANSACTION_RECORDS",
            "transaction_records",
            transaction_records,
            parse_num::<usize>
        );
        env_value!(
            "ROCKETMQ_TRANSACTION_RECORD_AGE_MS",
            "transaction_record_age",
            transaction_record_age,
            parse_ms
        );
        self.tls_from_env(&get)?;
        Ok(self)
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

fn parse_micros(var: &'static str, v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .map(Duration::from_micros)
        .map_err(|_| Error::config(var, format!("{v:?} is not a whole number of microseconds")))
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

fn parse_topics(_var: &'static str, v: &str) -> Result<Vec<String>> {
    Ok(v.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect())
}

fn parse_ms_list(var: &'static str, v: &str) -> Result<Vec<Duration>> {
    Ok(parse_list::<u64>(var, v)?
        .into_iter()
        .map(Duration::from_millis)
        .collect())
}

pub(super) fn parse_bool(var: &'static str, v: &str) -> Result<bool> {
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
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::config::test_support::{base, setting_of};
    use crate::config::ProducerConfig;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
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
            ("ROCKETMQ_CLOSE_ON_REQUEST_TIMEOUT", "off"),
            ("ROCKETMQ_TCP_KEEPALIVE_MS", "0"),
            ("ROCKETMQ_MAX_CONNECTION_OUTPUT_BYTES", "8388608"),
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
            ("ROCKETMQ_SERIALIZE_TYPE", "rocketmq"),
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
        assert!(!c.close_on_request_timeout());
        assert_eq!(c.tcp_keepalive(), None);
        assert_eq!(c.max_connection_output_bytes(), 8 * 1024 * 1024);
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
        assert_eq!(c.serialize_type(), SerializeType::RocketMq);
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
    fn busy_poll_from_code_and_env_validated() {
        let c = base().build().unwrap();
        assert_eq!(c.busy_poll(), Duration::ZERO, "off by default");
        let c = base()
            .from_env_map(env(&[("ROCKETMQ_BUSY_POLL_MICROS", "250")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.busy_poll(), Duration::from_micros(250));
        let c = base().busy_poll(Duration::from_millis(10)).build().unwrap();
        assert_eq!(c.busy_poll(), Duration::from_millis(10));
        // Over 10 ms, from code or the environment; not a number.
        let err = base()
            .busy_poll(Duration::from_micros(10_001))
            .build()
            .unwrap_err();
        assert_eq!(setting_of(err), "busy_poll");
        let err = base()
            .from_env_map(env(&[("ROCKETMQ_BUSY_POLL_MICROS", "10001")]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(setting_of(err), "ROCKETMQ_BUSY_POLL_MICROS");
        let err = base()
            .from_env_map(env(&[("ROCKETMQ_BUSY_POLL_MICROS", "5us")]))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(setting_of(err), "ROCKETMQ_BUSY_POLL_MICROS");
    }

    #[test]
    fn env_credentials_and_no_secret_in_errors_or_debug() {
        let c = base()
            .from_env_map(env(&[
                ("ROCKETMQ_ACCESS_KEY", "ak-env"),
                ("ROCKETMQ_SECRET_KEY", "sk-env-zq9"),
                ("ROCKETMQ_SECURITY_TOKEN", "tok-env-zq9"),
                ("ROCKETMQ_SIGNATURE_ALGORITHM", "HmacSHA256"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        let creds = c.credentials().expect("credentials from the environment");
        assert_eq!(creds.access_key(), "ak-env");
        assert_eq!(creds.secret_key().expose(), "sk-env-zq9");
        assert_eq!(
            creds.security_token().map(|t| t.expose()),
            Some("tok-env-zq9")
        );
        assert_eq!(creds.algorithm(), SignatureAlgorithm::HmacSha256);
        assert_eq!(c.access_key(), Some("ak-env"));
        let shown = format!("{c:?} {:?}", c.to_builder());
        assert!(shown.contains("ak-env"), "{shown}");
        assert!(!shown.contains("zq9"), "{shown}");
        // Code wins over the environment when called after it.
        let c = base()
            .from_env_map(env(&[
                ("ROCKETMQ_ACCESS_KEY", "a"),
                ("ROCKETMQ_SECRET_KEY", "b"),
            ]))
            .unwrap()
            .credentials("code-ak", "code-sk")
            .build()
            .unwrap();
        assert_eq!(c.credentials().unwrap().access_key(), "code-ak");
        // Half a pair, a token alone, a bad algorithm: errors that name the variable and
        // never show the secret.
        for (vars, var) in [
            (
                vec![("ROCKETMQ_SECRET_KEY", "lonely-zq9")],
                "ROCKETMQ_SECRET_KEY",
            ),
            (vec![("ROCKETMQ_ACCESS_KEY", "ak")], "ROCKETMQ_ACCESS_KEY"),
            (
                vec![("ROCKETMQ_SECURITY_TOKEN", "tok-zq9")],
                "ROCKETMQ_SECURITY_TOKEN",
            ),
        ] {
            let err = base()
                .from_env_map(env(&vars))
                .unwrap()
                .build()
                .unwrap_err();
            assert!(!err.to_string().contains("zq9"), "{err}");
            assert_eq!(setting_of(err), var);
        }
        let err = base()
            .from_env_map(env(&[("ROCKETMQ_SIGNATURE_ALGORITHM", "md5")]))
            .unwrap_err();
        assert_eq!(setting_of(err), "ROCKETMQ_SIGNATURE_ALGORITHM");
        // By code: the setting is named.
        let err = base().security_token("t").build().unwrap_err();
        assert_eq!(setting_of(err), "security_token");
        let err = base().credentials(" ", "sk").build().unwrap_err();
        assert_eq!(setting_of(err), "access_key");
        let err = base().credentials("ak", "").build().unwrap_err();
        assert_eq!(setting_of(err), "secret_key");
        assert!(base().build().unwrap().credentials().is_none());
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
        let cases: [(&str, &str); 16] = [
            ("ROCKETMQ_SEND_TIMEOUT_MS", "3s"),
            ("ROCKETMQ_SERIALIZE_TYPE", "binary"),
            ("ROCKETMQ_SERIALIZE_TYPE", ""),
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
}
