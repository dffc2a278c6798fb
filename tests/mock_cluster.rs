//! MockCluster from a plain socket client: one name server, several brokers, slaves, and
//! routes that follow brokers stopping, restarting and being taken out.

mod mock_support;

use mock_support::{props, route_request, send_v2, Client};
use rocketmq_mio::protocol::route::TopicRouteData;
use rocketmq_mio::protocol::ResponseCode;
use rocketmq_mio::testing::MockCluster;

/// The route of `topic`: (broker name, write queues, addresses) sorted by name; empty when the
/// name server has none.
fn route(c: &mut Client, topic: &str) -> Vec<(String, i32, Vec<String>)> {
    let r = c.call(route_request(topic));
    if r.code == ResponseCode::TOPIC_NOT_EXIST {
        return Vec::new();
    }
    assert_eq!(r.code, ResponseCode::SUCCESS);
    let data = TopicRouteData::from_json(&r.body).unwrap();
    let mut out: Vec<_> = data
        .queue_datas
        .iter()
        .map(|q| {
            let b = data.broker_data(&q.broker_name).expect("broker data");
            (
                q.broker_name.clone(),
                q.write_queue_nums,
                b.broker_addrs.values().cloned().collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn names(c: &mut Client, topic: &str) -> Vec<String> {
    route(c, topic).into_iter().map(|(n, ..)| n).collect()
}

#[test]
fn topics_across_brokers_and_route_changes() {
    let cluster = MockCluster::builder()
        .brokers(3)
        .topic("All", 4)
        .topic_on("Some", 2, &[0, 2])
        .start()
        .unwrap();
    assert_eq!(cluster.brokers().len(), 3);
    assert_eq!(cluster.broker(2).broker_name(), "broker-c");
    assert!(cluster.broker_named("broker-b").is_some());
    let mut c = Client::connect(&cluster.namesrv_addr());
    let all = route(&mut c, "All");
    assert_eq!(all.len(), 3);
    for (i, (name, queues, addrs)) in all.iter().enumerate() {
        assert_eq!(name, cluster.broker(i).broker_name());
        assert_eq!(*queues, 4);
        assert_eq!(addrs, &[cluster.broker(i).broker_addr()]);
    }
    assert_eq!(names(&mut c, "Some"), ["broker-a", "broker-c"]);
    // TBW102 is on every broker; a topic nobody has is unknown.
    assert_eq!(names(&mut c, "TBW102").len(), 3);
    assert!(names(&mut c, "Nobody").is_empty());
    // The name server is not a broker.
    assert_eq!(
        c.call(send_v2("All", 0, "", b"x")).code,
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );

    // Queues change on every broker at once; a broker can be taken out and put back.
    cluster.set_queues("All", 6);
    assert!(route(&mut c, "All").iter().all(|(_, q, _)| *q == 6));
    cluster.remove_broker_from_routes(1);
    assert_eq!(names(&mut c, "All"), ["broker-a", "broker-c"]);
    cluster.restore_broker_in_routes(1);
    assert_eq!(names(&mut c, "All").len(), 3);

    // A stopped broker leaves the routes; restarted, it is back on the same address.
    let addr = cluster.broker(0).broker_addr();
    cluster.broker(0).stop();
    assert_eq!(names(&mut c, "All"), ["broker-b", "broker-c"]);
    assert_eq!(names(&mut c, "Some"), ["broker-c"]);
    cluster.broker(0).restart().unwrap();
    assert_eq!(cluster.broker(0).broker_addr(), addr);
    assert_eq!(names(&mut c, "Some"), ["broker-a", "broker-c"]);

    // A topic removed everywhere disappears.
    cluster.remove_topic("Some");
    assert!(names(&mut c, "Some").is_empty());
}

#[test]
fn sends_land_on_the_broker_they_are_sent_to() {
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("Spread", 2);
    for (i, b) in cluster.brokers().iter().enumerate() {
        let mut c = Client::connect(&b.broker_addr());
        for j in 0..=i {
            let p = props(&[("UNIQ_KEY", &format!("S-{i}-{j}"))]);
            assert_eq!(c.call(send_v2("Spread", 1, &p, b"x")).code, 0);
        }
    }
    assert_eq!(cluster.broker(0).message_count("Spread"), 1);
    assert_eq!(cluster.broker(1).message_count("Spread"), 2);
    assert_eq!(cluster.message_count("Spread"), 3);
    let ids: Vec<_> = cluster
        .messages("Spread")
        .iter()
        .map(|m| m.msg_id().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["S-0-0", "S-1-0", "S-1-1"]);
    // Queue offsets are per broker.
    assert_eq!(cluster.broker(1).messages("Spread")[1].queue_offset, 1);
    assert_eq!(cluster.broker(0).messages("Spread")[0].queue_offset, 0);
}

#[test]
fn slaves_are_listed_and_refuse_sends() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .slaves(true)
        .topic("Ms", 1)
        .start()
        .unwrap();
    assert_eq!(cluster.slaves().len(), 2);
    let mut c = Client::connect(&cluster.namesrv_addr());
    for (i, (name, _, addrs)) in route(&mut c, "Ms").iter().enumerate() {
        assert_eq!(name, cluster.broker(i).broker_name());
        assert_eq!(
            addrs,
            &[
                cluster.broker(i).broker_addr(),
                cluster.slaves()[i].broker_addr()
            ],
            "master (id 0) and slave (id 1)"
        );
        assert_eq!(cluster.slaves()[i].broker_name(), name);
    }
    let mut s = Client::connect(&cluster.slaves()[0].broker_addr());
    let r = s.call(send_v2("Ms", 0, "", b"x"));
    assert_eq!(r.code, ResponseCode::SERVICE_NOT_AVAILABLE);
    assert!(r.remark_str().contains("slave"), "{}", r.remark_str());
    assert_eq!(cluster.message_count("Ms"), 0);
}

#[test]
fn name_server_restarts_and_legacy_json() {
    let cluster = MockCluster::start(1).unwrap();
    cluster.create_topic("L", 1);
    let addr = cluster.namesrv_addr();
    cluster.stop_namesrv();
    assert!(!cluster.namesrv().is_running());
    assert!(std::net::TcpStream::connect(&addr).is_err());
    cluster.restart_namesrv().unwrap();
    assert_eq!(cluster.namesrv_addr(), addr);
    let mut c = Client::connect(&addr);
    assert_eq!(names(&mut c, "L"), ["broker-a"]);
    cluster.namesrv().legacy_route_json(true);
    let body = c.call(route_request("L")).body;
    assert!(String::from_utf8_lossy(&body).contains("{0:\""));
    assert!(TopicRouteData::from_json(&body).is_ok());
}

#[test]
fn without_auto_create_only_configured_topics_exist() {
    let cluster = MockCluster::builder()
        .auto_create_topics(false)
        .topic("Known", 2)
        .start()
        .unwrap();
    let mut c = Client::connect(&cluster.namesrv_addr());
    assert!(names(&mut c, "TBW102").is_empty());
    assert_eq!(names(&mut c, "Known").len(), 2);
    let mut b = Client::connect(&cluster.broker(0).broker_addr());
    assert_eq!(
        b.call(send_v2("Unknown", 0, "", b"x")).code,
        ResponseCode::TOPIC_NOT_EXIST
    );
}
