//! OWNER: mock broker helper. MockBroker / MockCluster.
