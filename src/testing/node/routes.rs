//! Topics and routes: the name server role (GET_ROUTEINFO_BY_TOPIC over the brokers it
//! knows), what a broker contributes to a route, and UPDATE_AND_CREATE_TOPIC.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::send::{valid_topic, NOT_ALLOWED_SEND_TOPICS};
use super::store::TopicConf;
use super::{response, BrokerCore, Node, DEFAULT_TOPIC};
use crate::protocol::header::{CommandHeader, CreateTopicRequestHeader, GetRouteInfoRequestHeader};
use crate::protocol::route::{BrokerData, QueueData, TopicRouteData};
use crate::protocol::{RemotingCommand, ResponseCode};

/// The first request version a name server answers with standard JSON (V4_9_4).
const STANDARD_JSON_VERSION: i32 = 401;

/// The name server role: which brokers' topics make up the routes.
pub(crate) struct NamesrvCore {
    /// Brokers of the cluster (a single MockBroker serves routes to itself instead).
    pub(crate) brokers: Mutex<Vec<(Arc<Node>, bool)>>,
    pub(crate) serve_self: bool,
    /// Always answer routes in the legacy (pre-4.9.4) form with unquoted integer keys.
    pub(crate) legacy_json: AtomicBool,
}

impl BrokerCore {
    /// UPDATE_AND_CREATE_TOPIC (admin): creates or updates the topic; routes change at once.
    pub(super) fn handle_create_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match CreateTopicRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        if !valid_topic(&header.topic) {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
            );
        }
        if header.topic == DEFAULT_TOPIC || NOT_ALLOWED_SEND_TOPICS.contains(&&*header.topic) {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                &format!("The topic[{}] is conflict with system topic.", header.topic),
            );
        }
        self.store.lock().topics.insert(
            header.topic,
            TopicConf {
                read_queues: header.read_queue_nums,
                write_queues: header.write_queue_nums,
                perm: header.perm,
            },
        );
        response(ResponseCode::SUCCESS, opaque, "")
    }

    pub(crate) fn queue_data(&self, topic: &str) -> Option<QueueData> {
        let store = self.store.lock();
        let conf = store.topics.get(topic)?;
        Some(QueueData {
            broker_name: self.name.clone(),
            read_queue_nums: conf.read_queues,
            write_queue_nums: conf.write_queues,
            perm: conf.perm,
            topic_sys_flag: 0,
        })
    }

    pub(crate) fn broker_data(&self) -> Option<BrokerData> {
        let addr = *self.addr.get()?;
        let mut addrs = std::collections::BTreeMap::new();
        addrs.insert(0, addr.to_string());
        if let Some(slave) = self.slave_addr.lock().clone() {
            addrs.insert(1, slave);
        }
        Some(BrokerData {
            cluster: self.cluster.clone(),
            broker_name: self.name.clone(),
            broker_addrs: addrs,
            zone_name: None,
            enable_acting_master: false,
        })
    }
}

impl Node {
    pub(super) fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let ns = self.namesrv.as_ref()?;
        let mut route = TopicRouteData::default();
        let mut add = |b: &BrokerCore| {
            if let (Some(q), Some(bd)) = (b.queue_data(topic), b.broker_data()) {
                route.queue_datas.push(q);
                route.broker_datas.push(bd);
            }
        };
        if ns.serve_self {
            if let Some(b) = &self.broker {
                add(b);
            }
        }
        for (node, in_routes) in ns.brokers.lock().iter() {
            if *in_routes && node.is_running() {
                if let Some(b) = &node.broker {
                    add(b);
                }
            }
        }
        if route.queue_datas.is_empty() {
            None
        } else {
            Some(route)
        }
    }

    pub(super) fn handle_route(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetRouteInfoRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        match self.route(&header.topic) {
            Some(route) => {
                // `ClientRequestProcessor.getRouteInfoByTopic`: standard JSON for 4.9.4+ clients
                // or on request, the legacy form with unquoted integer keys otherwise.
                let legacy = self
                    .namesrv
                    .as_ref()
                    .is_some_and(|ns| ns.legacy_json.load(Ordering::Acquire))
                    || (request.version < STANDARD_JSON_VERSION
                        && !header.accept_standard_json_only);
                let body = if legacy {
                    route.to_legacy_json()
                } else {
                    route.to_json()
                };
                RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body)
            }
            None => response(
                ResponseCode::TOPIC_NOT_EXIST,
                opaque,
                &format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                ),
            ),
        }
    }
}
