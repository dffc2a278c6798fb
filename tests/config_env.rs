//! `ProducerConfigBuilder::from_env()` itself, on the process environment (not only
//! `from_env_map`). One test in this binary, so nothing else reads the environment while it
//! is changed.

use std::time::Duration;

use rocketmq_mio::{Error, ProducerConfig};

const VARS: [(&str, &str); 8] = [
    ("ROCKETMQ_NAMESRV_ADDR", "10.0.0.1:9876;10.0.0.2:9876"),
    ("ROCKETMQ_SEND_TIMEOUT_MS", "4500"),
    ("ROCKETMQ_RETRY_CODES", "2,215"),
    ("ROCKETMQ_STRICT_ORDER", "on"),
    ("ROCKETMQ_TOPICS", "orders, payments"),
    ("ROCKETMQ_TRANSACTION_RECORDS", "500"),
    ("ROCKETMQ_TRANSACTION_RECORD_AGE_MS", "60000"),
    ("ROCKETMQ_AUTO_BATCH", "true"),
];

#[test]
fn from_env_reads_the_process_environment() {
    for (k, v) in VARS {
        std::env::set_var(k, v);
    }
    let c = ProducerConfig::builder("GID_ENV")
        .from_env()
        .unwrap()
        .auto_batch(false) // a setter after from_env wins
        .build()
        .unwrap();
    assert_eq!(c.name_servers(), ["10.0.0.1:9876", "10.0.0.2:9876"]);
    assert_eq!(c.send_timeout(), Duration::from_millis(4500));
    assert_eq!(c.retry_codes(), [2, 215]);
    assert!(c.strict_order());
    assert_eq!(c.topics(), ["orders", "payments"]);
    assert_eq!(c.transaction_records(), 500);
    assert_eq!(c.transaction_record_age(), Duration::from_secs(60));
    assert!(!c.auto_batch());

    // A bad value: an error naming the variable, from from_env or from build.
    std::env::set_var("ROCKETMQ_STRICT_ORDER", "maybe");
    match ProducerConfig::builder("GID_ENV").from_env() {
        Err(Error::Config { setting, .. }) => assert_eq!(setting, "ROCKETMQ_STRICT_ORDER"),
        other => panic!("expected a config error, got {other:?}"),
    }
    std::env::set_var("ROCKETMQ_STRICT_ORDER", "off");
    std::env::set_var("ROCKETMQ_TOPICS", "good,bad topic");
    match ProducerConfig::builder("GID_ENV")
        .from_env()
        .unwrap()
        .build()
    {
        Err(Error::Config { setting, .. }) => assert_eq!(setting, "ROCKETMQ_TOPICS"),
        other => panic!("expected a config error, got {other:?}"),
    }
    std::env::set_var("ROCKETMQ_TOPICS", "");
    assert!(
        ProducerConfig::builder("GID_ENV").from_env().is_err(),
        "set but empty"
    );

    for (k, _) in VARS {
        std::env::remove_var(k);
    }
    if std::env::var_os("NAMESRV_ADDR").is_some() {
        return; // Java's variable, set on this machine: it would name a server
    }
    // Nothing set: the defaults, and no name server.
    let err = ProducerConfig::builder("GID_ENV")
        .from_env()
        .unwrap()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("name_servers"), "{err}");
}
