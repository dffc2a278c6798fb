//! Batches: several messages of one topic in one request, one result listing every id.
//!
//! ```text
//! cargo run --release --example batch_send
//! ```

use std::time::Duration;

use rocketmq_mio::testing::MockBroker;

mod common;
use rocketmq_mio::{Message, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, _broker) = common::name_server(MockBroker::start)?;
    let producer = Producer::builder("GID_BATCH_EXAMPLE")
        .name_server(namesrv)
        .start()?;

    let batch: Vec<Message> = (0..32)
        .map(|i| Message::new("BatchExample", format!("item {i}")).with_tags("bulk"))
        .collect();
    let r = producer.send_batch(batch)?;
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    println!(
        "{} messages stored in one request at {} offsets {}..{}",
        ids.len(),
        r.queue,
        r.queue_offset,
        r.queue_offset + ids.len() as i64 - 1
    );

    // A batch is checked before anything is sent: one topic, no delay, no transactions.
    let mixed = vec![
        Message::new("BatchExample", "a"),
        Message::new("Other", "b"),
    ];
    match producer.send_batch(mixed) {
        Err(e) => println!("refused as expected: {e}"),
        Ok(_) => println!("unexpected: a mixed batch was sent"),
    }
    producer.shutdown(Duration::from_secs(5))?;
    Ok(())
}
