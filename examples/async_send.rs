//! Asynchronous sends: many in flight, each handle waited on (or awaited).
//!
//! ```text
//! cargo run --release --example async_send            # embedded MockBroker
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run --release --example async_send
//! ```

use std::time::{Duration, Instant};

use rocketmq_mio::testing::MockBroker;

mod common;
use rocketmq_mio::{Message, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, _broker) = common::name_server(MockBroker::start)?;
    let producer = Producer::builder("GID_ASYNC_EXAMPLE")
        .name_server(namesrv)
        .start()?;

    let started = Instant::now();
    let handles: Vec<_> = (0..10_000)
        .map(|i| producer.send_async(Message::new("AsyncExample", format!("message {i}"))))
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.wait() {
            Ok(_) => ok += 1,
            Err(e) => eprintln!("send failed: {e}"),
        }
    }
    println!("{ok} messages stored in {:?}", started.elapsed());

    // A handle is also a Future: await it on any executor.
    let result = futures_lite::future::block_on(
        producer.send_async(Message::new("AsyncExample", "awaited")),
    )?;
    println!("awaited: {} at {}", result.msg_id, result.queue);

    producer.shutdown(Duration::from_secs(5))?;
    Ok(())
}
