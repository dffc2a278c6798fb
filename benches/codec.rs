//! Encoding and decoding a SEND_MESSAGE_V2 frame with a 128-byte body, as the send path does.
//!
//! `cargo bench --bench codec`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use rocketmq_mio::protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use rocketmq_mio::protocol::message_codec::{encode_properties, UniqIdGenerator};
use rocketmq_mio::protocol::{
    ExtFields, FrameDecoder, RemotingCommand, RequestCode, SerializeType,
};

fn header(properties: String) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "bench_producer_group".into(),
        topic: "BenchTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_795_468_920_976,
        flag: 0,
        properties,
        reconsume_times: Some(0),
        unit_mode: false,
        batch: false,
        max_reconsume_times: None,
        broker_name: Some("broker-a".into()),
    }
}

fn properties() -> String {
    let ids = UniqIdGenerator::with_hash("10.0.0.7".parse().unwrap(), 4711, 0x1B6D_3586);
    let id = ids.next_id(1_795_468_920_976);
    let mut p = String::new();
    encode_properties(
        [
            ("UNIQ_KEY", id.as_str()),
            ("WAIT", "true"),
            ("TAGS", "TagA"),
            ("KEYS", "order-1 order-2"),
        ],
        &mut p,
    );
    p
}

fn request(st: SerializeType) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2).with_body(vec![b'x'; 128]);
    cmd.opaque = 12345;
    cmd.serialize_type = st;
    header(properties()).write_v2(&mut cmd.ext_fields);
    cmd
}

fn response() -> RemotingCommand {
    let mut cmd = RemotingCommand::response(0, 12345);
    SendMessageResponseHeader {
        msg_id: "7F000001000051E10000000000012C4A".into(),
        queue_id: 3,
        queue_offset: 4242,
        transaction_id: Some("0A0000071267 1B6D3586 05265C00 0001".replace(' ', "")),
        region_id: Some("DefaultRegion".into()),
        trace_on: Some(true),
        ..Default::default()
    }
    .write_to(&mut cmd.ext_fields);
    cmd
}

fn bench_send_v2(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_v2_128b");
    for (name, st) in [
        ("json", SerializeType::Json),
        ("binary", SerializeType::RocketMq),
    ] {
        let cmd = request(st);
        let frame = cmd.to_frame().unwrap();
        let mut out = Vec::with_capacity(1024);

        g.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&cmd).encode(&mut out).unwrap();
                black_box(out.len())
            })
        });
        g.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| RemotingCommand::decode(black_box(&frame)).unwrap())
        });
        g.bench_function(format!("{name}/encode+decode"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&cmd).encode(&mut out).unwrap();
                RemotingCommand::decode(black_box(&out)).unwrap()
            })
        });
    }

    // What a send does: build the V2 header from the message, then encode.
    let props = properties();
    let body = vec![b'x'; 128];
    let mut out = Vec::with_capacity(1024);
    g.bench_function("json/header+encode", |b| {
        b.iter(|| {
            let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
            let mut fields = ExtFields::with_capacity(16);
            header(black_box(&props).clone()).write_v2(&mut fields);
            cmd.ext_fields = fields;
            cmd.body = black_box(&body).clone();
            out.clear();
            cmd.encode(&mut out).unwrap();
            black_box(out.len())
        })
    });

    // What comes back: the response, decoded through the incremental decoder and read typed.
    let resp = response().to_frame().unwrap();
    let mut d = FrameDecoder::new();
    g.bench_function("json/response decode+read", |b| {
        b.iter(|| {
            d.feed(black_box(&resp));
            let cmd = d.next_frame().unwrap().unwrap();
            SendMessageResponseHeader::read_from(&cmd.ext_fields).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_send_v2
}
criterion_main!(benches);
