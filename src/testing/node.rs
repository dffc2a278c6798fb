//! The logic of a mock node: the broker's store and request handling, the name server's routes,
//! transactions and scripted faults. Network-free; [`super::server`] feeds it requests.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::server::{Action, Conn, Dispatch, Server};
use super::{EndTransactionRecord, HalfMessage, MockCounters, TransactionState};
use crate::message::{property, MessageExt, OffsetMessageId};
use crate::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
    GetMaxOffsetRequestHeader, GetRouteInfoRequestHeader, SendMessageRequestHeader,
    UnregisterClientRequestHeader, ViewMessageByIdRequestHeader,
};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::message_codec::{self, sys_flag};
use crate::protocol::route::{perm, BrokerData, QueueData, TopicRouteData};
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};

/// The topic real brokers auto-create topics from.
pub(crate) const DEFAULT_TOPIC: &str = "TBW102";
/// Queues of TBW102 (broker default `defaultTopicQueueNums`).
pub(crate) const DEFAULT_TOPIC_QUEUES: i32 = 8;
/// Largest body a broker accepts (`maxMessageSize`).
pub(crate) const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicConf {
    pub(crate) queues: i32,
    pub(crate) perm: i32,
}

/// A scripted fault for the next request of a code.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Fail(i32, String),
    /// Handle the request, then answer with this code (FLUSH_DISK_TIMEOUT and friends: the
    /// message is stored, the status says it is not safe yet).
    Status(i32),
    Delay(Duration),
    Reset,
    Malformed,
    Close,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) next: HashMap<i32, VecDeque<Fault>>,
    pub(crate) standing_delay: HashMap<i32, Duration>,
    pub(crate) black_hole: bool,
}

struct Half {
    msg: MessageExt,
    tran_state_offset: i64,
    group: String,
    state: TransactionState,
    checks: u32,
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) topics: HashMap<String, TopicConf>,
    /// Every visible message, in arrival order.
    log: Vec<MessageExt>,
    /// Commit-log offset -> index in `log`.
    by_offset: HashMap<i64, usize>,
    /// Next offset per topic and queue.
    queue_offsets: HashMap<String, HashMap<i32, i64>>,
    next_commit_offset: i64,
    halves: Vec<Half>,
    half_queue_offset: i64,
    pub(crate) end_transactions: Vec<EndTransactionRecord>,
    pub(crate) counters: MockCounters,
    /// Producer group -> connections that heartbeat for it.
    groups: HashMap<String, Vec<Weak<Conn>>>,
}

/// The broker role of a node.
pub(crate) struct BrokerCore {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) auto_create: bool,
    /// Whether visible messages are kept for [`super::MockBroker::messages`] (offsets and
    /// counters advance either way).
    pub(crate) keep_messages: bool,
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Faults>,
    /// Set once the server is bound.
    pub(crate) addr: Mutex<Option<SocketAddr>>,
    /// The address of a slave listed in routes as id 1, if any.
    pub(crate) slave_addr: Mutex<Option<String>>,
}

/// The name server role: which brokers' topics make up the routes.
pub(crate) struct NamesrvCore {
    /// Brokers of the cluster (a single MockBroker serves routes to itself instead).
    pub(crate) brokers: Mutex<Vec<(Arc<Node>, bool)>>,
    pub(crate) serve_self: bool,
}

/// A mock node: a broker, a name server, or both on one port.
pub(crate) struct Node {
    pub(crate) broker: Option<BrokerCore>,
    pub(crate) namesrv: Option<NamesrvCore>,
    pub(crate) server: Mutex<Option<Arc<Server>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn response(code: i32, opaque: i32, remark: &str) -> RemotingCommand {
    let mut r = RemotingCommand::response(code, opaque);
    if !remark.is_empty() {
        r.remark = Some(remark.to_string());
    }
    r
}

/// The size of `msg` in the stored layout (V1 magic), which is how far it moves the
/// commit-log offset (protocol.md 9.5).
fn stored_len(msg: &MessageExt) -> i64 {
    let host = |a: &SocketAddr| if a.is_ipv4() { 8 } else { 20 };
    let props: usize = msg
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let fixed = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 4 + 8;
    (fixed
        + host(&msg.born_host)
        + host(&msg.store_host)
        + 4
        + msg.body.len()
        + 1
        + msg.topic.len()
        + 2
        + props) as i64
}

/// Topic names a real broker accepts.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 127
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
}

impl BrokerCore {
    pub(crate) fn new(name: &str, auto_create: bool) -> Self {
        let mut store = Store::default();
        if auto_create {
            store.topics.insert(
                DEFAULT_TOPIC.to_string(),
                TopicConf {
                    queues: DEFAULT_TOPIC_QUEUES,
                    perm: perm::READ | perm::WRITE | perm::INHERIT,
                },
            );
        }
        BrokerCore {
            name: name.to_string(),
            cluster: "DefaultCluster".to_string(),
            auto_create,
            keep_messages: true,
            store: Mutex::new(store),
            faults: Mutex::new(Faults::default()),
            addr: Mutex::new(None),
            slave_addr: Mutex::new(None),
        }
    }

    fn store_addr(&self) -> SocketAddr {
        self.addr
            .lock()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn offset_id(&self, offset: i64) -> String {
        OffsetMessageId {
            store_host: self.store_addr(),
            commit_log_offset: offset,
        }
        .to_string()
    }

    /// Gives `msg` the next commit-log offset and its store fields; `visible` messages go into
    /// the log readers see. Returns the commit-log offset.
    fn append(&self, store: &mut Store, mut msg: MessageExt, visible: bool) -> MessageExt {
        msg.commit_log_offset = store.next_commit_offset;
        msg.store_host = self.store_addr();
        msg.store_timestamp = now_ms();
        msg.body_crc = message_codec::body_crc32(&msg.body);
        store.next_commit_offset += stored_len(&msg);
        if visible && self.keep_messages {
            store
                .by_offset
                .insert(msg.commit_log_offset, store.log.len());
            store.log.push(msg.clone());
        }
        msg
    }

    fn next_queue_offset(store: &mut Store, topic: &str, queue: i32) -> i64 {
        let offsets = match store.queue_offsets.get_mut(topic) {
            Some(o) => o,
            None => store.queue_offsets.entry(topic.to_string()).or_default(),
        };
        let slot = offsets.entry(queue).or_insert(0);
        let v = *slot;
        *slot += 1;
        v
    }

    /// The topic's config, auto-creating it from TBW102 when allowed.
    fn topic_for_send(
        &self,
        store: &mut Store,
        header: &SendMessageRequestHeader,
    ) -> Result<TopicConf, (i32, String)> {
        if let Some(conf) = store.topics.get(&header.topic) {
            return Ok(*conf);
        }
        let template = store.topics.get(&header.default_topic).copied();
        match template {
            Some(t) if self.auto_create && perm::is_inherited(t.perm) => {
                let conf = TopicConf {
                    queues: header.default_topic_queue_nums.clamp(1, t.queues),
                    perm: t.perm & !perm::INHERIT,
                };
                store.topics.insert(header.topic.clone(), conf);
                Ok(conf)
            }
            _ => Err((
                ResponseCode::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", header.topic),
            )),
        }
    }

    fn check_send(
        &self,
        store: &mut Store,
        header: &SendMessageRequestHeader,
        body_len: usize,
    ) -> Result<TopicConf, (i32, String)> {
        if !valid_topic(&header.topic) {
            return Err((
                ResponseCode::SYSTEM_ERROR,
                "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
                    .into(),
            ));
        }
        if body_len > MAX_MESSAGE_SIZE {
            return Err((
                ResponseCode::MESSAGE_ILLEGAL,
                format!("the message body size over max value, MAX: {MAX_MESSAGE_SIZE}"),
            ));
        }
        let conf = self.topic_for_send(store, header)?;
        if !perm::is_writeable(conf.perm) {
            return Err((
                ResponseCode::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", header.topic),
            ));
        }
        // SYSTEM_ERROR, as Java's `msgCheck` and the RocketMQ-Rust broker answer (checked on the
        // wire), not INVALID_PARAMETER.
        if header.queue_id >= conf.queues {
            return Err((
                ResponseCode::SYSTEM_ERROR,
                format!(
                    "request queueId[{}] is illegal, topic {} has {} queues",
                    header.queue_id, header.topic, conf.queues
                ),
            ));
        }
        Ok(conf)
    }

    fn base_message(
        header: &SendMessageRequestHeader,
        queue_id: i32,
        body: Vec<u8>,
        flag: i32,
        properties: Vec<(String, String)>,
        born_host: SocketAddr,
    ) -> MessageExt {
        MessageExt {
            topic: header.topic.clone(),
            body,
            flag,
            properties,
            queue_id,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: header.sys_flag,
            born_timestamp: header.born_timestamp,
            born_host,
            store_timestamp: 0,
            store_host: born_host,
            reconsume_times: header.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
            body_crc: 0,
        }
    }

    /// Adds the properties a real broker stamps on every stored message (`CLUSTER`,
    /// `MSG_REGION`, `TRACE_ON`) and checks the stored properties against the commit log's
    /// 32 767-byte limit, which therefore includes them (as on a real broker).
    fn stamp(&self, properties: &mut Vec<(String, String)>) -> Result<(), (i32, String)> {
        properties.push((property::CLUSTER.into(), self.cluster.clone()));
        properties.push((property::MSG_REGION.into(), "DefaultRegion".into()));
        properties.push((property::TRACE_ON.into(), "true".into()));
        let len: usize = properties.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if len > i16::MAX as usize {
            return Err((
                ResponseCode::MESSAGE_ILLEGAL,
                "Message validation failed. Check body length (<4MB) and properties size (<32KB)."
                    .into(),
            ));
        }
        Ok(())
    }

    fn send_response(
        &self,
        opaque: i32,
        msg_ids: &str,
        queue_id: i32,
        queue_offset: i64,
        transaction_id: Option<&str>,
    ) -> RemotingCommand {
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        r.ext_fields.insert("msgId", msg_ids);
        r.ext_fields.insert("queueId", queue_id.to_string());
        r.ext_fields.insert("queueOffset", queue_offset.to_string());
        if let Some(tx) = transaction_id {
            r.ext_fields.insert("transactionId", tx);
        }
        r.ext_fields.insert("MSG_REGION", "DefaultRegion");
        r.ext_fields.insert("TRACE_ON", "true");
        r
    }

    fn handle_send(&self, conn: &Conn, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match if request.code == RequestCode::SEND_MESSAGE {
            SendMessageRequestHeader::read_v1(&request.ext_fields)
        } else {
            SendMessageRequestHeader::read_v2(&request.ext_fields)
        } {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        let conf = match self.check_send(&mut store, &header, request.body.len()) {
            Ok(c) => c,
            Err((code, remark)) => return response(code, opaque, &remark),
        };
        let queue_id = if header.queue_id < 0 {
            rand::random::<u32>() as i32 % conf.queues
        } else {
            header.queue_id
        };
        if request.code == RequestCode::SEND_BATCH_MESSAGE {
            let entries = match message_codec::decode_batch(&request.body) {
                Ok(e) if !e.is_empty() => e,
                Ok(_) => return response(ResponseCode::MESSAGE_ILLEGAL, opaque, "empty batch"),
                Err(e) => return response(ResponseCode::MESSAGE_ILLEGAL, opaque, &e.to_string()),
            };
            let mut entries = entries;
            for entry in &mut entries {
                if let Err((code, remark)) = self.stamp(&mut entry.properties) {
                    return response(code, opaque, &remark);
                }
            }
            let mut ids = Vec::with_capacity(entries.len());
            let mut first_offset = None;
            for entry in entries {
                let mut msg = Self::base_message(
                    &header,
                    queue_id,
                    entry.body,
                    entry.flag,
                    entry.properties,
                    conn.peer,
                );
                msg.queue_offset = Self::next_queue_offset(&mut store, &header.topic, queue_id);
                first_offset.get_or_insert(msg.queue_offset);
                let stored = self.append(&mut store, msg, true);
                ids.push(self.offset_id(stored.commit_log_offset));
            }
            store.counters.messages_stored += ids.len() as u64;
            return self.send_response(
                opaque,
                &ids.join(","),
                queue_id,
                first_offset.unwrap_or(0),
                None,
            );
        }
        let mut properties = message_codec::decode_properties(&header.properties);
        if let Err((code, remark)) = self.stamp(&mut properties) {
            return response(code, opaque, &remark);
        }
        let uniq = properties
            .iter()
            .find(|(k, _)| k == property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .map(|(_, v)| v.clone());
        let transactional = properties
            .iter()
            .any(|(k, v)| k == property::TRANSACTION_PREPARED && v.eq_ignore_ascii_case("true"));
        let msg = Self::base_message(
            &header,
            queue_id,
            request.body.clone(),
            header.flag,
            properties,
            conn.peer,
        );
        if transactional {
            let group = msg
                .property(property::PRODUCER_GROUP)
                .unwrap_or_default()
                .to_string();
            let tran_state_offset = store.half_queue_offset;
            store.half_queue_offset += 1;
            let mut half = msg;
            half.queue_offset = tran_state_offset;
            let half = self.append(&mut store, half, false);
            let id = self.offset_id(half.commit_log_offset);
            store.halves.push(Half {
                msg: half,
                tran_state_offset,
                group,
                state: TransactionState::Prepared,
                checks: 0,
            });
            store.counters.half_messages += 1;
            return self.send_response(opaque, &id, queue_id, tran_state_offset, uniq.as_deref());
        }
        let mut msg = msg;
        msg.queue_offset = Self::next_queue_offset(&mut store, &header.topic, queue_id);
        let stored = self.append(&mut store, msg, true);
        store.counters.messages_stored += 1;
        let id = self.offset_id(stored.commit_log_offset);
        self.send_response(opaque, &id, queue_id, stored.queue_offset, uniq.as_deref())
    }

    fn handle_end_transaction(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match EndTransactionRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        store.end_transactions.push(EndTransactionRecord {
            producer_group: header.producer_group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: header.commit_or_rollback,
            from_transaction_check: header.from_transaction_check,
            msg_id: header.msg_id.clone(),
            transaction_id: header.transaction_id.clone(),
            topic: header.topic.clone(),
            broker_name: header.broker_name.clone(),
            remark: request.remark.clone(),
            oneway: request.is_oneway(),
        });
        let decision = header.commit_or_rollback;
        if decision != sys_flag::TRANSACTION_COMMIT && decision != sys_flag::TRANSACTION_ROLLBACK {
            // TRANSACTION_NOT_TYPE: logged by a real broker, which then waits for a check.
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        let Some(i) = store
            .halves
            .iter()
            .position(|h| h.msg.commit_log_offset == header.commit_log_offset)
        else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "Find prepared transaction message failed",
            );
        };
        if store.halves[i].group != header.producer_group {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The producer group wrong",
            );
        }
        if store.halves[i].tran_state_offset != header.tran_state_table_offset {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The transaction state table offset wrong",
            );
        }
        if store.halves[i].state != TransactionState::Prepared {
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        if decision == sys_flag::TRANSACTION_ROLLBACK {
            store.halves[i].state = TransactionState::RolledBack;
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        store.halves[i].state = TransactionState::Committed;
        let mut real = store.halves[i].msg.clone();
        real.properties
            .retain(|(k, _)| k != property::TRANSACTION_PREPARED);
        real.sys_flag = sys_flag::reset_transaction_value(real.sys_flag, decision);
        real.prepared_transaction_offset = header.commit_log_offset;
        real.queue_offset = Self::next_queue_offset(&mut store, &real.topic, real.queue_id);
        self.append(&mut store, real, true);
        store.counters.messages_stored += 1;
        response(ResponseCode::SUCCESS, opaque, "")
    }

    fn handle_heartbeat(&self, conn: &Arc<Conn>, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let data = match HeartbeatData::from_json(&request.body) {
            Ok(d) => d,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        store.counters.heartbeats += 1;
        for group in &data.producer_groups {
            let conns = store.groups.entry(group.clone()).or_default();
            conns.retain(|c| c.upgrade().is_some_and(|c| c.is_alive()));
            if !conns
                .iter()
                .any(|c| c.upgrade().is_some_and(|c| c.id == conn.id))
            {
                conns.push(Arc::downgrade(conn));
            }
        }
        let clients = &mut store.counters.clients;
        match clients.iter_mut().find(|(id, _)| *id == data.client_id) {
            Some((_, groups)) => {
                for g in data.producer_groups {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
            None => clients.push((data.client_id, data.producer_groups)),
        }
        response(ResponseCode::SUCCESS, opaque, "")
    }

    fn handle_unregister(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        match UnregisterClientRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => {
                let mut store = self.store.lock();
                store.counters.unregisters += 1;
                store.counters.unregistered.push(h.client_id);
                response(ResponseCode::SUCCESS, opaque, "")
            }
            Err(e) => response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        }
    }

    fn handle_view(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match ViewMessageByIdRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let msg = store
            .by_offset
            .get(&header.offset)
            .map(|&i| &store.log[i])
            .or_else(|| {
                store
                    .halves
                    .iter()
                    .map(|h| &h.msg)
                    .find(|m| m.commit_log_offset == header.offset)
            });
        let Some(msg) = msg else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                &format!("can not find message by the offset, {}", header.offset),
            );
        };
        let mut body = Vec::new();
        if let Err(e) = message_codec::encode_stored_message(msg, &mut body) {
            return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string());
        }
        RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body)
    }

    fn handle_max_offset(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetMaxOffsetRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let offset = store
            .queue_offsets
            .get(&header.topic)
            .and_then(|q| q.get(&header.queue_id))
            .copied()
            .unwrap_or(0);
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        r.ext_fields.insert("offset", offset.to_string());
        r
    }

    /// Re-appends a half message and sends CHECK_TRANSACTION_STATE for it to a connection of
    /// its group. Returns whether a check went out.
    pub(crate) fn check(&self, matches: &dyn Fn(&MessageExt) -> bool) -> usize {
        let mut sent = 0;
        let mut store = self.store.lock();
        let candidates: Vec<usize> = store
            .halves
            .iter()
            .enumerate()
            .filter(|(_, h)| h.state == TransactionState::Prepared && matches(&h.msg))
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            let group = store.halves[i].group.clone();
            let conn = store.groups.get(&group).and_then(|conns| {
                conns
                    .iter()
                    .filter_map(Weak::upgrade)
                    .find(|c| c.is_alive())
            });
            let Some(conn) = conn else { continue };
            // Like a real broker: store the half message again; the check names the new copy.
            let tran_state_offset = store.half_queue_offset;
            store.half_queue_offset += 1;
            let mut copy = store.halves[i].msg.clone();
            copy.queue_offset = tran_state_offset;
            let copy = self.append(&mut store, copy, false);
            let checks = store.halves[i].checks + 1;
            let offset_id = self.offset_id(copy.commit_log_offset);
            let uniq = copy.msg_id().map(str::to_string);
            let mut view = copy.clone();
            view.properties
                .retain(|(k, _)| k != property::TRANSACTION_CHECK_TIMES);
            view.properties
                .push((property::TRANSACTION_CHECK_TIMES.into(), checks.to_string()));
            let mut body = Vec::new();
            if message_codec::encode_stored_message(&view, &mut body).is_err() {
                continue;
            }
            store.halves[i] = Half {
                msg: copy.clone(),
                tran_state_offset,
                group,
                state: TransactionState::Prepared,
                checks,
            };
            let header = CheckTransactionStateRequestHeader {
                topic: Some(copy.topic.clone()),
                tran_state_table_offset: tran_state_offset,
                commit_log_offset: copy.commit_log_offset,
                msg_id: uniq.clone(),
                transaction_id: uniq,
                offset_msg_id: Some(offset_id),
                broker_name: Some(self.name.clone()),
            };
            let mut request =
                RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE).into_oneway();
            request.opaque = rand::random::<i32>() & 0x3fff_ffff;
            header.write_to(&mut request.ext_fields);
            request.body = body;
            store.counters.checks_sent += 1;
            if conn.send(&request) {
                sent += 1;
            }
        }
        sent
    }

    pub(crate) fn half_messages(&self) -> Vec<HalfMessage> {
        self.store
            .lock()
            .halves
            .iter()
            .map(|h| HalfMessage {
                message: h.msg.clone(),
                state: h.state,
                producer_group: h.group.clone(),
                tran_state_table_offset: h.tran_state_offset,
                checks: h.checks,
            })
            .collect()
    }

    pub(crate) fn messages(&self, topic: &str) -> Vec<MessageExt> {
        self.store
            .lock()
            .log
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    pub(crate) fn queue_data(&self, topic: &str) -> Option<QueueData> {
        let store = self.store.lock();
        let conf = store.topics.get(topic)?;
        Some(QueueData {
            broker_name: self.name.clone(),
            read_queue_nums: conf.queues,
            write_queue_nums: conf.queues,
            perm: conf.perm,
            topic_sys_flag: 0,
        })
    }

    pub(crate) fn broker_data(&self) -> Option<BrokerData> {
        let addr = (*self.addr.lock())?;
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

    /// Takes the next scripted fault for `code`.
    fn next_fault(&self, code: i32) -> Option<Fault> {
        let mut faults = self.faults.lock();
        if let Some(f) = faults.next.get_mut(&code).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        faults.standing_delay.get(&code).map(|d| Fault::Delay(*d))
    }

    fn dispatch_broker(
        &self,
        conn: &Arc<Conn>,
        request: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        let r = match request.code {
            RequestCode::SEND_MESSAGE
            | RequestCode::SEND_MESSAGE_V2
            | RequestCode::SEND_BATCH_MESSAGE => self.handle_send(conn, request),
            RequestCode::HEART_BEAT => self.handle_heartbeat(conn, request),
            RequestCode::UNREGISTER_CLIENT => self.handle_unregister(request),
            RequestCode::END_TRANSACTION => self.handle_end_transaction(request),
            RequestCode::VIEW_MESSAGE_BY_ID => self.handle_view(request),
            RequestCode::GET_MAX_OFFSET => self.handle_max_offset(request),
            _ => return None,
        };
        Some(r)
    }
}

impl Node {
    fn route(&self, topic: &str) -> Option<TopicRouteData> {
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
            let running = node.server.lock().as_ref().is_some_and(|s| s.is_running());
            if *in_routes && running {
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

    fn handle_route(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetRouteInfoRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        match self.route(&header.topic) {
            Some(route) => {
                RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(route.to_json())
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

    fn count(&self, code: i32) {
        if let Some(b) = &self.broker {
            *b.store.lock().counters.received.entry(code).or_insert(0) += 1;
        }
    }
}

impl Dispatch for Node {
    fn dispatch(&self, conn: &Arc<Conn>, request: RemotingCommand) -> Action {
        if request.is_response() {
            return Action::Silent;
        }
        self.count(request.code);
        let oneway = request.is_oneway();
        let mut delay = None;
        let mut status = None;
        if let Some(b) = &self.broker {
            if b.faults.lock().black_hole {
                return Action::Silent;
            }
            match b.next_fault(request.code) {
                Some(Fault::Fail(code, remark)) => {
                    return Action::Reply(response(code, request.opaque, &remark))
                }
                Some(Fault::Malformed) => return Action::Malformed,
                Some(Fault::Close) => return Action::Close,
                Some(Fault::Reset) => {
                    let r = b.dispatch_broker(conn, &request).unwrap_or_else(|| {
                        response(ResponseCode::SYSTEM_ERROR, request.opaque, "")
                    });
                    return Action::ResetMidFrame(r);
                }
                Some(Fault::Delay(d)) => delay = Some(d),
                Some(Fault::Status(code)) => status = Some(code),
                None => {}
            }
        }
        let reply = if request.code == RequestCode::GET_ROUTEINFO_BY_TOPIC && self.namesrv.is_some()
        {
            Some(self.handle_route(&request))
        } else {
            self.broker
                .as_ref()
                .and_then(|b| b.dispatch_broker(conn, &request))
        };
        let mut reply = reply.unwrap_or_else(|| {
            response(
                ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
                request.opaque,
                &format!(" request type {} not supported", request.code),
            )
        });
        if oneway {
            return Action::Silent;
        }
        if let (Some(code), ResponseCode::SUCCESS) = (status, reply.code) {
            reply.code = code;
        }
        match delay {
            Some(d) => Action::Delayed(reply, d),
            None => Action::Reply(reply),
        }
    }
}
