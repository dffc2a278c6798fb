//! Ordered messages: every message of one order goes to the same queue, chosen by the order id
//! with Java's `String.hashCode`, so Java and Rust producers agree on the queue.
//!
//! ```text
//! cargo run --release --example ordered_send
//! ```

use std::time::Duration;

use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockBroker;

mod common;
use rocketmq_mio::{Message, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, _broker) = common::name_server(|| {
        let b = MockBroker::start()?;
        b.create_topic("OrderedExample", 8);
        Ok(b)
    })?;
    let producer = Producer::builder("GID_ORDERED_EXAMPLE")
        .name_server(namesrv)
        .start()?;

    for order in ["order-1", "order-2", "order-3"] {
        for step in ["created", "paid", "shipped", "delivered"] {
            let msg = Message::new("OrderedExample", format!("{order} {step}"))
                .with_tags(step)
                .with_keys([order]);
            // No retry to another queue: order matters more than availability here.
            let r = producer.send_with_selector(msg, &MessageHashSelector, order)?;
            println!(
                "{order:8} {step:10} -> {} offset {}",
                r.queue, r.queue_offset
            );
        }
    }
    producer.shutdown(Duration::from_secs(5))?;
    Ok(())
}
