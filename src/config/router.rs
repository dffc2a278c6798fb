//! [`MessageRouter::from_config`]: the router a [`ProducerConfig`] describes. It is defined here
//! rather than in [`crate::routing`] so that routing knows nothing of the configuration: the
//! dependency goes one way, config -> routing.

use super::ProducerConfig;
use crate::routing::fault::LatencyFaultTolerance;
use crate::routing::router::MessageRouter;

impl MessageRouter {
    /// The router a producer with `config` uses: its routing strategy, fault tables and fault
    /// tolerance switch.
    pub fn from_config(config: &ProducerConfig) -> Self {
        MessageRouter::new(
            config.routing_strategy(),
            LatencyFaultTolerance::new(config.fault_tables().clone()),
            config.fault_tolerance(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::base;
    use crate::routing::router::RoutingStrategy;

    #[test]
    fn from_config_carries_strategy_and_fault_tolerance() {
        let config = base().build().unwrap();
        let router = MessageRouter::from_config(&config);
        assert_eq!(router.strategy(), RoutingStrategy::RoundRobin);
        assert!(router.fault_tolerance_enabled());
        let config = base()
            .routing_strategy(RoutingStrategy::MessageHash)
            .fault_tolerance(false)
            .build()
            .unwrap();
        let router = MessageRouter::from_config(&config);
        assert_eq!(router.strategy(), RoutingStrategy::MessageHash);
        assert!(!router.fault_tolerance_enabled());
    }
}
