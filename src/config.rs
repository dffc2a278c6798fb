//! OWNER: routing helper. ProducerConfig.
