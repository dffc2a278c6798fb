//! Transactional messages: commit, rollback, an unknown outcome resolved by the broker's
//! check-back, `begin`/`commit` from another thread, and the asynchronous handle.
//!
//! With `NAMESRV_ADDR` set (e.g. `127.0.0.1:9876`) it talks to that RocketMQ name server;
//! otherwise it starts an embedded `MockBroker` that checks back every second.
//!
//! ```text
//! cargo run --example transaction_producer
//! NAMESRV_ADDR=127.0.0.1:9876 cargo run --example transaction_producer
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rocketmq_mio::testing::MockBroker;

mod common;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, TransactionListener,
    TransactionProducer,
};

/// A stand-in for the application's database: which orders were written.
#[derive(Default)]
struct Orders {
    written: Mutex<HashMap<String, bool>>,
}

struct OrderListener {
    db: Orders,
}

impl TransactionListener for OrderListener {
    fn execute_local_transaction(
        &self,
        msg: &Message,
        transaction_id: &str,
        arg: &dyn Any,
    ) -> ListenerResult {
        let what = arg.downcast_ref::<&str>().copied().unwrap_or("commit");
        println!(
            "  local transaction {transaction_id} ({}): {what}",
            String::from_utf8_lossy(msg.body())
        );
        match what {
            "commit" => {
                self.db
                    .written
                    .lock()
                    .unwrap()
                    .insert(transaction_id.into(), true);
                Ok(LocalTransactionState::CommitMessage)
            }
            "rollback" => Ok(LocalTransactionState::RollbackMessage),
            _ => {
                // The write happens, but we do not say so now: the broker will ask.
                self.db
                    .written
                    .lock()
                    .unwrap()
                    .insert(transaction_id.into(), true);
                Ok(LocalTransactionState::Unknown)
            }
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt, transaction_id: &str) -> ListenerResult {
        let written = self.db.written.lock().unwrap().get(transaction_id).copied();
        println!(
            "  check-back for {transaction_id} (check #{}): written = {written:?}",
            msg.property("TRANSACTION_CHECK_TIMES").unwrap_or("?")
        );
        Ok(match written {
            Some(true) => LocalTransactionState::CommitMessage,
            _ => LocalTransactionState::RollbackMessage,
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = std::env::var("TOPIC").unwrap_or_else(|_| "TransactionTopic".to_string());
    let (namesrv, embedded) = common::name_server(|| {
        MockBroker::builder()
            .transaction_check_interval(Duration::from_secs(1))
            .start()
    })?;

    let producer = TransactionProducer::builder("GID_TX_EXAMPLE")
        .name_server(namesrv.as_str())
        .send_timeout(Duration::from_secs(5))
        .listener(OrderListener {
            db: Orders::default(),
        })
        .start()?;
    println!(
        "transaction producer {} started",
        producer.producer().client_id()
    );

    // The local transaction runs on this thread, then the decision goes to the broker.
    for (body, what) in [
        ("order-1", "commit"),
        ("order-2", "rollback"),
        ("order-3", "unknown"),
    ] {
        let r = producer.send_message_in_transaction(Message::new(topic.as_str(), body), &what)?;
        println!(
            "sync   {body} -> {:?}, half message at {} offset {}",
            r.local_state, r.send_result.queue, r.send_result.queue_offset
        );
    }

    // Begin here, do the work and commit on another thread (or after an .await).
    let tx = producer.begin(Message::new(topic.as_str(), "order-4"))?;
    let id = tx.transaction_id().to_string();
    std::thread::spawn(move || {
        // ... write order-4 ...
        tx.commit()
    })
    .join()
    .map_err(|_| "the committing thread panicked")??;
    println!("begin  order-4 -> committed from another thread ({id})");

    // Asynchronous: the local transaction runs on a library transaction thread.
    let handle = producer
        .send_message_in_transaction_async(Message::new(topic.as_str(), "order-5"), "commit");
    let r = handle.wait()?;
    println!("async  order-5 -> {:?}", r.local_state);

    // order-3 was left unknown: wait for the broker to check back (a real broker waits ~6 s
    // before the first check and checks every 30-60 s).
    let wait = if embedded.is_some() { 20 } else { 120 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    while producer.transaction_stats().checked == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stats: {:?}", producer.transaction_stats());
    if let Some(broker) = &embedded {
        let bodies: Vec<String> = broker
            .messages(&topic)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        println!("visible on the broker: {bodies:?}");
    }

    producer.shutdown(Duration::from_secs(5))?;
    println!("transaction producer shut down");
    Ok(())
}
