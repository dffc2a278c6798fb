//! Validation: the limits, and [`ProducerConfigBuilder::build`], which checks every setting and
//! names the one (or the environment variable) that is wrong.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::{ProducerConfig, ProducerConfigBuilder};
use crate::error::{Error, Result};
use crate::protocol::acl::Credentials;
use crate::routing::fault::FaultTables;

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

impl ProducerConfigBuilder {
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
        if let Some(idle) = c.tcp_keepalive {
            // Linux takes at most 32 767 s for TCP_KEEPIDLE / TCP_KEEPINTVL.
            self.check_duration(
                "tcp_keepalive",
                idle,
                Duration::from_secs(1),
                Duration::from_secs(32_767),
            )?;
        }
        self.check_duration(
            "busy_poll",
            c.busy_poll,
            Duration::ZERO,
            crate::remoting::MAX_BUSY_POLL,
        )?;
        if c.max_connection_output_bytes < c.max_message_size {
            return Err(self.err(
                "max_connection_output_bytes",
                format!(
                    "{} is less than max_message_size ({}); a connection could not queue the \
                     largest message behind another",
                    c.max_connection_output_bytes, c.max_message_size
                ),
            ));
        }

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
        c.credentials = self.check_credentials(&c)?;
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
        for topic in &c.topics {
            check_topic(topic).map_err(|r| self.err("topics", r))?;
        }
        let mut seen: Vec<String> = Vec::new();
        c.topics.retain(|t| {
            let new = !seen.contains(t);
            if new {
                seen.push(t.clone());
            }
            new
        });
        self.check_range("transaction_records", c.transaction_records, 0, 10_000_000)?;
        self.check_duration(
            "transaction_record_age",
            c.transaction_record_age,
            Duration::from_secs(1),
            MAX_DURATION,
        )?;
        self.check_tls()?;
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

impl ProducerConfigBuilder {
    /// The credentials of `c`: both keys or neither; a token only with them. No error shows
    /// a secret.
    fn check_credentials(&self, c: &ProducerConfig) -> Result<Option<Credentials>> {
        let (access_key, secret_key) = match (&c.access_key, &c.secret_key) {
            (None, None) => {
                if c.security_token.is_some() {
                    return Err(self.err(
                        "security_token",
                        "a security token needs credentials (an access key and a secret key)",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(self.err(
                    "access_key",
                    "is set without a secret key (credentials need both)",
                ))
            }
            (None, Some(_)) => {
                return Err(self.err(
                    "secret_key",
                    "is set without an access key (credentials need both)",
                ))
            }
            (Some(a), Some(s)) => (a, s),
        };
        if access_key.trim().is_empty() || access_key.len() > 255 {
            return Err(self.err("access_key", "must be 1 to 255 bytes, not blank"));
        }
        if access_key.chars().any(char::is_control) {
            return Err(self.err("access_key", "contains a control character"));
        }
        if secret_key.expose().is_empty() {
            return Err(self.err("secret_key", "is empty"));
        }
        let mut credentials = Credentials::new(access_key.as_str(), secret_key.expose())
            .with_algorithm(c.signature_algorithm);
        if let Some(token) = &c.security_token {
            if token.expose().is_empty() {
                return Err(self.err("security_token", "is empty"));
            }
            credentials = credentials.with_security_token(token.expose());
        }
        Ok(Some(credentials))
    }
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::config::test_support::{base, setting_of};

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
            (base().tcp_keepalive(d(999)), "tcp_keepalive"),
            (base().tcp_keepalive(d(32_768_000)), "tcp_keepalive"),
            (
                base().max_connection_output_bytes(1024),
                "max_connection_output_bytes",
            ),
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
}
