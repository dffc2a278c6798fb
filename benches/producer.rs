//! The producer's hot paths: building a send frame, picking a queue, one synchronous send round
//! trip and a pipelined burst of asynchronous sends against an in-process MockBroker.
//!
//! `cargo bench --bench producer` (sample sizes are small: the machine has two cores). The
//! frame decode side and the header codecs are in `benches/codec.rs`; whole-system throughput
//! against a raw-socket ceiling is `examples/bench.rs`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use rocketmq_mio::protocol::header::SendMessageRequestHeader;
use rocketmq_mio::protocol::message_codec::encode_properties;
use rocketmq_mio::protocol::route::TopicRouteData;
use rocketmq_mio::protocol::{RemotingCommand, RequestCode};
use rocketmq_mio::routing::mapping::TopicPublishInfo;
use rocketmq_mio::routing::router::MessageRouter;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{Message, Producer, ProducerConfig};

fn frame_encode(c: &mut Criterion) {
    let mut properties = String::new();
    encode_properties(
        [
            ("UNIQ_KEY", "7F000001125B1B6D358600000000002A"),
            ("WAIT", "true"),
        ],
        &mut properties,
    );
    let header = SendMessageRequestHeader {
        producer_group: "GID_BENCH".into(),
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
    };
    let body = vec![b'x'; 128];
    let mut out = Vec::with_capacity(1024);
    c.bench_function("frame_encode/send_v2_128B", |b| {
        b.iter(|| {
            let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
            header.write_v2(&mut cmd.ext_fields);
            cmd.body.extend_from_slice(&body);
            cmd.opaque = 42;
            out.clear();
            cmd.encode(&mut out).unwrap();
            black_box(out.len())
        })
    });
}

fn route_selection(c: &mut Criterion) {
    let route = TopicRouteData::from_json(include_bytes!("../tests/data/route_standard_5x.json"))
        .expect("route parses");
    let info = TopicPublishInfo::from_route("BenchTopic", &route, Instant::now());
    let router = MessageRouter::from_config(
        &ProducerConfig::builder("GID_BENCH")
            .name_server("127.0.0.1:9876")
            .build()
            .expect("valid"),
    );
    let now = Instant::now();
    c.bench_function("route_selection/round_robin", |b| {
        b.iter(|| black_box(router.select_queue(&info, None, None, now)))
    });
    c.bench_function("route_selection/retry_avoiding_broker", |b| {
        b.iter(|| black_box(router.select_queue(&info, None, Some("broker-a"), now)))
    });
}

fn producer(broker: &MockBroker) -> Producer {
    let p = Producer::builder("GID_CRITERION")
        .name_server(broker.namesrv_addr())
        .start()
        .expect("producer starts");
    p.send(Message::new("BenchTopic", "warm"))
        .expect("route and connection");
    p
}

fn round_trips(c: &mut Criterion) {
    let broker = MockBroker::builder()
        .keep_messages(false)
        .start()
        .expect("broker starts");
    let p = producer(&broker);
    let msg = Message::new("BenchTopic", vec![b'x'; 128]);
    let mut group = c.benchmark_group("mock_broker");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("sync_send_round_trip_128B", |b| {
        b.iter_batched(
            || msg.clone(),
            |m| p.send(m).expect("sent"),
            BatchSize::SmallInput,
        )
    });
    const BURST: usize = 256;
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("async_burst_256x128B", |b| {
        b.iter_batched(
            || vec![msg.clone(); BURST],
            |msgs| {
                let handles: Vec<_> = msgs.into_iter().map(|m| p.send_async(m)).collect();
                for h in handles {
                    h.wait().expect("sent");
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    p.shutdown(Duration::from_secs(5)).expect("shuts down");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = frame_encode, route_selection, round_trips
}
criterion_main!(benches);
