//! Sends with completion callbacks; callbacks run on the library's callback threads.
//!
//! ```text
//! cargo run --release --example callback_send
//! ```

use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::testing::MockBroker;

mod common;
use rocketmq_mio::{Message, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (namesrv, _broker) = common::name_server(MockBroker::start)?;
    let producer = Producer::builder("GID_CALLBACK_EXAMPLE")
        .name_server(namesrv)
        .start()?;

    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        let tx = tx.clone();
        producer.send_with_callback(
            Message::new("CallbackExample", format!("message {i}")),
            move |result| {
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                let _ = tx.send((i, result, thread));
            },
        );
    }
    drop(tx);
    for (i, result, thread) in rx.iter() {
        match result {
            Ok(r) => println!("#{i} stored at {} (callback on {thread})", r.queue),
            Err(e) => println!("#{i} failed: {e}"),
        }
    }
    producer.shutdown(Duration::from_secs(5))?;
    Ok(())
}
