//! The logic of a mock node: one type, [`Node`], a broker, a name server or both, and how it
//! turns a request into an [`Action`]. Network-free; [`super::server`] feeds it requests. The
//! broker's work is split by what it handles: [`store`] (what is kept), [`send`] (and
//! [`fast`], its fast path for plain sends, answered from the frame's bytes), [`query`],
//! [`transaction`], [`reply_push`] (request-reply), [`routes`] (and the name server role),
//! [`fault`] (scripted faults).

mod fast;
mod fault;
mod query;
mod reply_push;
mod routes;
mod send;
mod store;
mod transaction;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub(crate) use fast::FrameScratch;
pub(crate) use fault::{Fault, Faults};
pub(crate) use routes::NamesrvCore;
pub(crate) use store::TopicConf;

use super::acl::MockAcl;
use super::reply::Reply;
use super::server::{Action, Conn, Dispatch, Server};
use crate::message::property;
use crate::protocol::message_codec;
use crate::protocol::route::perm;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode, SerializeType};
use send::STAMPS;
use store::Store;

/// The topic real brokers auto-create topics from.
pub(crate) const DEFAULT_TOPIC: &str = "TBW102";
/// Queues of TBW102 (broker default `defaultTopicQueueNums`).
pub(crate) const DEFAULT_TOPIC_QUEUES: i32 = 8;
/// Largest body a broker accepts (`maxMessageSize`).
pub(crate) const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Where a real broker keeps half messages (queue 0).
pub(crate) const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";

/// Settings of the broker role.
#[derive(Debug, Clone)]
pub(crate) struct BrokerSettings {
    pub(crate) auto_create: bool,
    pub(crate) keep_messages: bool,
    pub(crate) slave: bool,
    pub(crate) transaction_timeout: Duration,
    pub(crate) transaction_check_max: u32,
}

/// The broker role of a node.
pub(crate) struct BrokerCore {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) settings: BrokerSettings,
    pub(crate) store: Mutex<Store>,
    /// Set once the server is bound.
    pub(crate) addr: OnceLock<SocketAddr>,
    /// The stamps appended to a stored properties string.
    stamp_suffix: String,
    /// The address of a slave listed in routes as id 1, if any.
    pub(crate) slave_addr: Mutex<Option<String>>,
}

/// A mock node: a broker, a name server, or both on one port.
pub(crate) struct Node {
    pub(crate) broker: Option<BrokerCore>,
    pub(crate) namesrv: Option<NamesrvCore>,
    pub(crate) server: Mutex<Option<Arc<Server>>>,
    pub(crate) faults: Mutex<Faults>,
    /// Fast path: false while no fault is scripted.
    pub(crate) any_fault: AtomicBool,
    /// Requests received per code.
    pub(crate) received: RequestCounts,
    /// Of those, the ones with a binary (ROCKETMQ) header, per code.
    pub(crate) received_binary: RequestCounts,
    /// ACL verification, when on.
    pub(crate) acl: Option<MockAcl>,
    /// Requests refused by the ACL, per code.
    pub(crate) acl_refused: RequestCounts,
}

/// Requests received per code: lock-free for the codes a client sends (below 1024).
pub(crate) struct RequestCounts {
    low: Box<[AtomicU64]>,
    other: Mutex<HashMap<i32, u64>>,
}

impl RequestCounts {
    fn new() -> Self {
        RequestCounts {
            low: (0..1024).map(|_| AtomicU64::new(0)).collect(),
            other: Mutex::new(HashMap::new()),
        }
    }

    fn add(&self, code: i32) {
        match usize::try_from(code).ok().and_then(|i| self.low.get(i)) {
            Some(slot) => {
                slot.fetch_add(1, Ordering::Relaxed);
            }
            None => *self.other.lock().entry(code).or_insert(0) += 1,
        }
    }

    pub(crate) fn get(&self, code: i32) -> u64 {
        match usize::try_from(code).ok().and_then(|i| self.low.get(i)) {
            Some(slot) => slot.load(Ordering::Relaxed),
            None => self.other.lock().get(&code).copied().unwrap_or(0),
        }
    }

    pub(crate) fn snapshot(&self) -> HashMap<i32, u64> {
        let mut all = self.other.lock().clone();
        for (code, slot) in self.low.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            if n > 0 {
                all.insert(code as i32, n);
            }
        }
        all
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn response(code: i32, opaque: i32, remark: &str) -> RemotingCommand {
    let mut r = RemotingCommand::response(code, opaque);
    if !remark.is_empty() {
        r.remark = Some(remark.to_string());
    }
    r
}

pub(super) fn set_property(props: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    match props.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => props.push((key.to_string(), value)),
    }
}

pub(super) fn remove_property(props: &mut Vec<(String, String)>, key: &str) {
    props.retain(|(k, _)| k != key);
}

impl BrokerCore {
    pub(crate) fn new(name: &str, settings: BrokerSettings) -> Self {
        let mut store = Store::default();
        if settings.auto_create {
            store.topics.insert(
                DEFAULT_TOPIC.to_string(),
                TopicConf {
                    read_queues: DEFAULT_TOPIC_QUEUES,
                    write_queues: DEFAULT_TOPIC_QUEUES,
                    perm: perm::READ | perm::WRITE | perm::INHERIT,
                },
            );
        }
        let cluster = "DefaultCluster".to_string();
        let mut stamp_suffix = String::new();
        message_codec::encode_properties(
            std::iter::once((property::CLUSTER, cluster.as_str())).chain(STAMPS),
            &mut stamp_suffix,
        );
        BrokerCore {
            name: name.to_string(),
            cluster,
            settings,
            store: Mutex::new(store),
            addr: OnceLock::new(),
            stamp_suffix,
            slave_addr: Mutex::new(None),
        }
    }

    pub(super) fn store_addr(&self) -> SocketAddr {
        self.addr
            .get()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn dispatch_broker(&self, conn: &Arc<Conn>, request: &mut RemotingCommand) -> Option<Reply> {
        let r = match request.code {
            RequestCode::SEND_MESSAGE
            | RequestCode::SEND_MESSAGE_V2
            | RequestCode::SEND_BATCH_MESSAGE => return Some(self.handle_send(conn, request)),
            RequestCode::SEND_REPLY_MESSAGE | RequestCode::SEND_REPLY_MESSAGE_V2 => {
                return Some(self.handle_send_reply(conn, request))
            }
            RequestCode::HEART_BEAT => self.handle_heartbeat(conn, request),
            RequestCode::UNREGISTER_CLIENT => self.handle_unregister(conn, request),
            RequestCode::END_TRANSACTION => self.handle_end_transaction(request),
            RequestCode::VIEW_MESSAGE_BY_ID => self.handle_view(request),
            RequestCode::QUERY_MESSAGE => self.handle_query(request),
            RequestCode::GET_MAX_OFFSET => self.handle_max_offset(request),
            RequestCode::UPDATE_AND_CREATE_TOPIC => self.handle_create_topic(request),
            _ => return None,
        };
        Some(Reply::Cmd(r))
    }
}

impl Node {
    pub(crate) fn new(broker: Option<BrokerCore>, namesrv: Option<NamesrvCore>) -> Node {
        Node {
            broker,
            namesrv,
            server: Mutex::new(None),
            faults: Mutex::new(Faults::default()),
            any_fault: AtomicBool::new(false),
            received: RequestCounts::new(),
            received_binary: RequestCounts::new(),
            acl: None,
            acl_refused: RequestCounts::new(),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.server.lock().as_ref().is_some_and(|s| s.is_running())
    }

    fn count(&self, code: i32, st: SerializeType) {
        self.received.add(code);
        if st == SerializeType::RocketMq {
            self.received_binary.add(code);
        }
    }

    /// The answer to a request, fault-free.
    fn handle(&self, conn: &Arc<Conn>, request: &mut RemotingCommand) -> Reply {
        let reply = if request.code == RequestCode::GET_ROUTEINFO_BY_TOPIC && self.namesrv.is_some()
        {
            Some(Reply::Cmd(self.handle_route(request)))
        } else {
            self.broker
                .as_ref()
                .and_then(|b| b.dispatch_broker(conn, request))
        };
        reply.unwrap_or_else(|| {
            Reply::Cmd(response(
                ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
                request.opaque,
                &format!(" request type {} not supported", request.code),
            ))
        })
    }
}

/// A reply in the header format `st`.
fn in_format(reply: Reply, st: SerializeType) -> Reply {
    match (reply, st) {
        (r @ Reply::SendOk(_), SerializeType::Json) => r,
        (r, st) => {
            let mut c = r.into_command();
            c.serialize_type = st;
            Reply::Cmd(c)
        }
    }
}

impl Dispatch for Node {
    fn dispatch_frame(
        &self,
        conn: &Arc<Conn>,
        frame: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut FrameScratch,
    ) -> bool {
        self.send_fast(conn, frame, out, scratch)
    }

    fn dispatch(&self, conn: &Arc<Conn>, mut request: RemotingCommand) -> Action {
        if request.is_response() {
            if let Some(b) = &self.broker {
                b.on_client_response(&request);
            }
            return Action::Silent;
        }
        self.count(request.code, request.serialize_type);
        let oneway = request.is_oneway();
        // A real server answers in the request's header format.
        let st = request.serialize_type;
        // Err: the black hole.
        let Ok(fault) = self.next_fault(request.code) else {
            return Action::Silent;
        };
        let delay = match &fault {
            Some(Fault::Fail(code, remark)) => {
                let r = response(*code, request.opaque, remark);
                return if oneway {
                    Action::Silent
                } else {
                    Action::Reply(in_format(r.into(), st))
                };
            }
            Some(Fault::Malformed) => return Action::Malformed,
            Some(Fault::Close) => return Action::Close,
            Some(Fault::Reset) => {
                let r = self.handle(conn, &mut request);
                return Action::ResetMidFrame(in_format(r, st));
            }
            Some(Fault::Delay(d)) => Some(*d),
            Some(Fault::Status(_) | Fault::UnreadableHeader) | None => None,
        };
        if let Some(Err(remark)) = self.acl.as_ref().map(|acl| acl.check(&request)) {
            self.acl_refused.add(request.code);
            if oneway {
                return Action::Silent;
            }
            let r = response(ResponseCode::NO_PERMISSION, request.opaque, &remark);
            return Action::Reply(in_format(r.into(), st));
        }
        let mut reply = self.handle(conn, &mut request);
        if oneway {
            return Action::Silent;
        }
        if let Some(Fault::Status(code)) = fault {
            // What a SYNC_FLUSH / SYNC_MASTER broker answers: the usual fields, another code.
            let mut c = reply.into_command();
            if c.code == ResponseCode::SUCCESS {
                c.code = code;
            }
            reply = Reply::Cmd(c);
        }
        if let Some(Fault::UnreadableHeader) = fault {
            let mut c = reply.into_command();
            c.ext_fields.insert("queueId", "not-a-number");
            reply = Reply::Cmd(c);
        }
        let reply = in_format(reply, st);
        match delay {
            Some(d) => Action::Delayed(reply, d),
            None => Action::Reply(reply),
        }
    }
}
