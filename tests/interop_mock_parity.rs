//! MockBroker answers as the real broker does where the interop tests (`interop_send.rs`) found
//! a difference; the same read-back checks run against it, always (no real broker needed).

mod common;

use common::interop::{assert_stored, Reader};
use common::PROMPTLY;
use rocketmq_mio::protocol::message_codec::sys_flag;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, MessageQueue, ProducerConfig};

fn producer(broker: &MockBroker) -> rocketmq_mio::Producer {
    ProducerConfig::testing("GID_parity")
        .name_server(broker.namesrv_addr())
        .start()
        .expect("producer")
}

#[test]
fn stored_messages_read_back_as_from_the_real_broker() {
    let broker = MockBroker::start().unwrap();
    let producer = producer(&broker);
    let reader = Reader::new(&broker.namesrv_addr());
    let msg = Message::new("parity", "body ✓ 𝄞")
        .with_tags("标签")
        .with_keys(["k1", "ключ"])
        .with_property("grüße", "grün ✓ 𝄞")
        .with_flag(-5);
    let r = producer.send(msg.clone()).unwrap();
    let stored = reader.view_result(&r);
    assert_stored(&stored, &msg, &r.msg_id);
    // The real broker stamps these on every stored message.
    assert_eq!(stored.property("MSG_REGION"), Some("DefaultRegion"));
    assert_eq!(stored.property("TRACE_ON"), Some("true"));

    let big: Vec<u8> = (0..2000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let msg = Message::new("parity", big);
    let r = producer.send(msg.clone()).unwrap();
    let stored = reader.view_result(&r);
    assert_eq!(
        stored.sys_flag,
        sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB
    );
    assert_stored(&stored, &msg, &r.msg_id);

    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new("parity", format!("b{i}")).with_tags("T"))
        .collect();
    let r = producer.send_batch(batch.clone()).unwrap();
    for (i, id) in r.offset_msg_id.split(',').enumerate() {
        let stored = reader
            .view(&rocketmq_mio::OffsetMessageId::parse(id).unwrap())
            .unwrap();
        assert_stored(&stored, &batch[i], r.msg_id.split(',').nth(i).unwrap());
        assert_eq!(stored.property("TRACE_ON"), Some("true"));
    }
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn queue_out_of_range_is_a_system_error() {
    let broker = MockBroker::start().unwrap();
    broker.create_topic("parity-q", 2);
    let producer = producer(&broker);
    let bad = MessageQueue::new("parity-q", broker.broker_name(), 9);
    let e = producer
        .send_to_queue(Message::new("parity-q", "b"), &bad)
        .expect_err("queue 9 of 2");
    assert_eq!(e.response_code(), Some(1), "{e:?}");
    assert!(e.to_string().contains("queueId[9] is illegal"), "{e}");
    producer.shutdown(PROMPTLY).unwrap();
}

#[test]
fn properties_limit_counts_the_broker_stamp() {
    let broker = MockBroker::start().unwrap();
    let producer = producer(&broker);
    let reader = Reader::new(&broker.namesrv_addr());
    let msg = Message::new("parity-p", "b").with_property("big", "v".repeat(32_000));
    let r = producer.send(msg.clone()).unwrap();
    assert_stored(&reader.view_result(&r), &msg, &r.msg_id);
    let e = producer
        .send(Message::new("parity-p", "b").with_property("big", "v".repeat(32_700)))
        .expect_err("over 32 767 bytes once stamped");
    assert_eq!(e.response_code(), Some(13), "{e:?}");
    producer.shutdown(PROMPTLY).unwrap();
}
