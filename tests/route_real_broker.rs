//! Route parsing against a response captured from a real name server.

use rocketmq_mio::protocol::route::{perm, TopicRouteData};
use rocketmq_mio::protocol::RemotingCommand;

#[test]
fn real_tbw102_route_response() {
    let frame = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/route_response_tbw102.bin"
    ))
    .expect("fixture present");
    assert_eq!(frame.len(), 466);
    let cmd = RemotingCommand::decode(&frame).expect("frame decodes");
    assert!(cmd.is_response());
    assert_eq!(cmd.code, 0);
    assert_eq!(cmd.opaque, 1001);
    let route = TopicRouteData::from_json(&cmd.body).expect("route parses");
    assert_eq!(route.order_topic_conf, None);
    assert!(!route.has_static_queue_mapping);
    assert_eq!(route.queue_datas.len(), 1);
    let qd = &route.queue_datas[0];
    assert_eq!(qd.broker_name, "broker-a");
    assert_eq!((qd.read_queue_nums, qd.write_queue_nums), (8, 8));
    assert_eq!(qd.perm, 7);
    assert!(perm::is_writeable(qd.perm) && perm::is_inherited(qd.perm));
    assert_eq!(qd.topic_sys_flag, 0);
    assert_eq!(route.broker_datas.len(), 1);
    let bd = &route.broker_datas[0];
    assert_eq!(bd.cluster, "DefaultCluster");
    assert_eq!(bd.broker_name, "broker-a");
    assert_eq!(bd.master_addr(), Some("127.0.0.1:20961"));
    assert_eq!(bd.broker_addrs.len(), 1);
    assert_eq!(bd.zone_name, None);
    assert!(!bd.enable_acting_master);

    // Our own encodings of it parse back to the same route.
    assert_eq!(TopicRouteData::from_json(&route.to_json()).unwrap(), route);
    assert_eq!(
        TopicRouteData::from_json(&route.to_legacy_json()).unwrap(),
        route
    );
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

#[test]
fn legacy_4x_fixture() {
    let body = fixture("route_legacy_4x.json");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    let route = TopicRouteData::from_json(&body).unwrap();
    assert_eq!(route.queue_datas.len(), 3);
    assert_eq!(route.broker_datas.len(), 3);
    let a = route.broker_data("broker-a").unwrap();
    assert_eq!(a.master_addr(), Some("172.17.0.3:10911"));
    assert_eq!(a.broker_addrs[&1], "172.17.0.4:10911");
    // broker-c has only a slave.
    assert_eq!(route.broker_data("broker-c").unwrap().master_addr(), None);
    assert_eq!(route.queue_datas[1].write_queue_nums, 8);
}

#[test]
fn standard_5x_fixture() {
    let route = TopicRouteData::from_json(&fixture("route_standard_5x.json")).unwrap();
    let a = route.broker_data("broker-a").unwrap();
    assert_eq!(a.zone_name.as_deref(), Some("zone-é"));
    assert!(!perm::is_writeable(route.queue_datas[1].perm));
}
