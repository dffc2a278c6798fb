//! The main job: sends messages in every mode and prints what the broker answered.
//!
//! With `NAMESRV_ADDR` set (e.g. `127.0.0.1:9876`) it talks to that RocketMQ name server;
//! otherwise it starts an embedded `MockBroker` and sends to it.
//!
//! ```text
//! cargo run --release --example quickstart
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run --release --example quickstart
//! ```

use std::sync::mpsc;
use std::time::Duration;

use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = std::env::var("TOPIC").unwrap_or_else(|_| "QuickstartTopic".to_string());
    // The embedded broker stays alive for the whole run when no name server is given.
    let (namesrv, _embedded) = common::name_server(MockBroker::start)?;

    let producer = Producer::builder("GID_QUICKSTART")
        .name_server(namesrv.as_str())
        .send_timeout(Duration::from_secs(5))
        .start()?;
    println!("producer {} started", producer.client_id());

    // Synchronous: blocks until the broker stored it.
    let msg = Message::new(topic.as_str(), "hello, sync")
        .with_tags("sync")
        .with_keys(["order-1"]);
    let r = producer.send(msg)?;
    println!(
        "sync      -> {:?} {} at {} offset {}",
        r.status, r.msg_id, r.queue, r.queue_offset
    );

    // Asynchronous with a handle: wait on it (or .await it on any executor).
    let handles: Vec<_> = (0..5)
        .map(|i| producer.send_async(Message::new(topic.as_str(), format!("hello, async {i}"))))
        .collect();
    for h in handles {
        let r = h.wait()?;
        println!("async     -> {:?} {} at {}", r.status, r.msg_id, r.queue);
    }

    // With a callback, which runs on a library callback thread.
    let (tx, rx) = mpsc::channel();
    producer.send_with_callback(
        Message::new(topic.as_str(), "hello, callback"),
        move |res| {
            let _ = tx.send(res);
        },
    );
    let r = rx.recv_timeout(Duration::from_secs(10))??;
    println!("callback  -> {:?} {} at {}", r.status, r.msg_id, r.queue);

    // Oneway: no answer expected.
    producer.send_oneway(Message::new(topic.as_str(), "hello, oneway"))?;
    println!("oneway    -> queued");

    // Ordered: the same key always lands on the same queue.
    for step in ["created", "paid", "shipped"] {
        let msg = Message::new(topic.as_str(), format!("order-42 {step}")).with_tags(step);
        let r = producer.send_with_selector(msg, &MessageHashSelector, "order-42")?;
        println!(
            "ordered   -> {step:8} at {} offset {}",
            r.queue, r.queue_offset
        );
    }

    // A batch: one request, one result listing every message.
    let batch = (0..3)
        .map(|i| Message::new(topic.as_str(), format!("batch {i}")))
        .collect();
    let r = producer.send_batch(batch)?;
    println!(
        "batch     -> {:?} ids {} at {}",
        r.status, r.msg_id, r.queue
    );

    // What the producer did: counts, latency percentiles, per-broker health.
    println!("\n{}", producer.stats());
    println!("health: {:#}", producer.health().to_json());

    producer.shutdown(Duration::from_secs(5))?;
    println!("producer shut down");
    Ok(())
}
