//! Request-reply on the embedded MockBroker: a requester asks, a responder thread answers.
//!
//! `cargo run --example request_reply`
//!
//! A real responder is a consumer of the request topic; here the mock hands the stored
//! requests over (`MockBroker::wait_messages`).

use std::sync::Arc;
use std::time::Duration;

use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Arc::new(MockBroker::start()?);
    let requester = Producer::builder("GID_RPC_CLIENT")
        .name_server(broker.namesrv_addr())
        .start()?;
    let responder = Producer::builder("GID_RPC_SERVER")
        .name_server(broker.namesrv_addr())
        .start()?;

    let b = broker.clone();
    let server = std::thread::spawn(move || {
        for i in 0..3 {
            let requests = b.wait_messages("quotes", i + 1, Duration::from_secs(10));
            let request = &requests[i];
            let answer = format!("{} = {}", String::from_utf8_lossy(&request.body), 100 + i);
            responder.reply(request, answer).expect("reply sent");
        }
    });

    let timeout = Duration::from_secs(5);
    let reply = requester.request(Message::new("quotes", "AAPL"), timeout)?;
    println!("sync:     {}", String::from_utf8_lossy(&reply.body));
    let handle = requester.request_async(Message::new("quotes", "MSFT"), timeout);
    println!(
        "async:    {}",
        String::from_utf8_lossy(&handle.wait()?.body)
    );
    let (tx, rx) = std::sync::mpsc::channel();
    requester.request_with_callback(Message::new("quotes", "GOOG"), timeout, move |r| {
        let _ = tx.send(r.map(|m| String::from_utf8_lossy(&m.body).into_owned()));
    });
    println!("callback: {}", rx.recv_timeout(timeout * 2)??);

    // Nobody answers this one: it ends with a timeout at its deadline.
    let late = requester.request(Message::new("nobody-home", "?"), Duration::from_millis(300));
    println!("no reply: {}", late.unwrap_err());

    server.join().expect("responder");
    println!(
        "replies stored: {}",
        broker.message_count("DefaultCluster_REPLY_TOPIC")
    );
    println!("{:?}", requester.stats().requests);
    requester.shutdown(Duration::from_secs(5))?;
    Ok(())
}
