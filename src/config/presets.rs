//! Presets: [`ProducerConfig`] builders tuned for development, production, high throughput,
//! tests and ordered messages.

use std::time::Duration;

use super::{ProducerConfig, ProducerConfigBuilder};
use crate::routing::router::RoutingStrategy;

impl ProducerConfig {
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
    /// instead of landing on another queue, out of order); auto-batching off;
    /// [`strict_order`](ProducerConfig::strict_order) on (a key whose queue is gone fails
    /// instead of moving).
    pub fn ordered(group: impl Into<String>) -> ProducerConfigBuilder {
        ProducerConfig::builder(group)
            .routing_strategy(RoutingStrategy::MessageHash)
            .fault_tolerance(false)
            .retries(0)
            .async_retries(0)
            .auto_batch(false)
            .strict_order(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::setting_of;

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
}
