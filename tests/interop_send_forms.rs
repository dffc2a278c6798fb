//! `Message::with_delay` and `send_batch_oneway` against a real RocketMQ name server and broker
//! (RocketMQ-Rust 1.0.0, `scripts/real-broker.sh`). Runs only when `ROCKETMQ_INTEROP_NAMESRV`
//! is set; otherwise each test prints why it is skipped and passes.
//!
//! What the broker does with a timer message (RocketMQ-Rust 1.0.0 `HookUtils`, timer wheel on
//! by default): it reads `TIMER_DELAY_SEC`, else `TIMER_DELAY_MS`, else `TIMER_DELIVER_MS`,
//! stores the message in `rmq_sys_wheel_timer` with `REAL_TOPIC`/`REAL_QID`,
//! `TIMER_ORIGINAL_DELIVER_MS` (its clock + the delay) and `TIMER_OUT_MS` (that time rounded
//! down to the timer precision, 1 s by default), and writes it to the real topic when the
//! wheel reaches `TIMER_OUT_MS`. So delivery comes at the delay's second, not its millisecond.

mod common;

use std::time::Duration;

use common::interop::{self, namesrv, unique_topic, Reader};
use common::PROMPTLY;
use rocketmq_mio::{Message, SendStatus};

fn timer_ms(m: &rocketmq_mio::MessageExt, key: &str) -> i64 {
    m.property(key)
        .unwrap_or_else(|| panic!("{key} missing: {:?}", m.properties))
        .parse()
        .unwrap()
}

#[test]
fn with_delay_is_held_by_the_timer_then_delivered() {
    let Some(ns) = namesrv("with_delay_is_held_by_the_timer_then_delivered") else {
        return;
    };
    let topic = unique_topic("interop-timer");
    let producer = interop::producer("GID_interop_timer", &ns);
    let reader = Reader::new(&ns);
    for (delay, key, value) in [
        (Duration::from_secs(2), "TIMER_DELAY_SEC", "2"),
        (Duration::from_millis(1500), "TIMER_DELAY_MS", "1500"),
    ] {
        let msg = Message::new(&topic, format!("delayed {value}"))
            .with_keys([format!("timer-{value}")])
            .with_delay(delay);
        let r = producer.send(msg).expect("timer send");
        assert_eq!(r.status, SendStatus::SendOk);
        let held = reader.view_result(&r);
        assert_eq!(held.topic, "rmq_sys_wheel_timer", "{:?}", held.properties);
        assert_eq!(held.property("REAL_TOPIC"), Some(topic.as_str()));
        assert_eq!(held.property(key), Some(value));
        let deliver = timer_ms(&held, "TIMER_ORIGINAL_DELIVER_MS");
        let out = timer_ms(&held, "TIMER_OUT_MS");
        let delay_ms = delay.as_millis() as i64;
        // The broker adds the delay to its own clock, read after the producer's born time.
        assert!(
            deliver >= held.born_timestamp + delay_ms - 5,
            "deliver {deliver}"
        );
        assert!(
            out <= deliver && out > deliver - 1000,
            "out {out}, deliver {deliver}"
        );
        let delivered = reader
            .find(&topic, &r.msg_id, true, PROMPTLY)
            .expect("the timer message is delivered to its topic");
        assert_eq!(delivered.body, format!("delayed {value}").into_bytes());
        // Not before the wheel's slot (the delay rounded down to the precision).
        assert!(
            delivered.store_timestamp >= out,
            "delivered at {}, slot {out}",
            delivered.store_timestamp
        );
        assert!(delivered.store_timestamp - held.born_timestamp >= delay_ms - 1000);
    }
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn send_batch_oneway_is_stored() {
    let Some(ns) = namesrv("send_batch_oneway_is_stored") else {
        return;
    };
    let topic = unique_topic("interop-oneway-batch");
    let producer = interop::producer("GID_interop_oneway_batch", &ns);
    let reader = Reader::new(&ns);
    let token = unique_topic("ob");
    let msgs: Vec<Message> = (0..3)
        .map(|i| Message::new(&topic, format!("b{i}")).with_keys([format!("{token}-{i}")]))
        .collect();
    producer.send_batch_oneway(msgs).expect("queued");
    for i in 0..3 {
        let stored = reader
            .find(&topic, &format!("{token}-{i}"), false, PROMPTLY)
            .expect("each message of the oneway batch is stored");
        assert_eq!(stored.body, format!("b{i}").into_bytes());
    }
    producer.shutdown(PROMPTLY).unwrap();
}
