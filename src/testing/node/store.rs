//! The broker's store: topics, the commit log of visible records, queue offsets, half
//! messages, and how a record is appended (its offsets and stored length).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::{now_ms, BrokerCore, HALF_TOPIC};
use crate::message::MessageExt;
use crate::protocol::message_codec;
use crate::protocol::route::perm;
use crate::testing::records::{EndTransactionRecord, MockCounters, TransactionState};
use crate::testing::server::Conn;

/// A topic's configuration on a broker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicConf {
    pub(crate) read_queues: i32,
    pub(crate) write_queues: i32,
    pub(crate) perm: i32,
}

impl TopicConf {
    pub(crate) fn rw(queues: i32) -> TopicConf {
        TopicConf {
            read_queues: queues,
            write_queues: queues,
            perm: perm::READ | perm::WRITE,
        }
    }
}

/// A visible stored message, compact: properties stay encoded until a test reads them back.
pub(super) struct Record {
    pub(super) topic: Arc<str>,
    pub(super) body: Vec<u8>,
    pub(super) flag: i32,
    /// Encoded as stored (`name \u0001 value \u0002`...), broker stamps included.
    pub(super) properties: String,
    pub(super) queue_id: i32,
    pub(super) queue_offset: i64,
    pub(super) commit_log_offset: i64,
    pub(super) sys_flag: i32,
    pub(super) born_timestamp: i64,
    pub(super) born_host: SocketAddr,
    pub(super) store_timestamp: i64,
    pub(super) reconsume_times: i32,
    pub(super) prepared_transaction_offset: i64,
}

impl Record {
    fn from_message(msg: MessageExt) -> Record {
        let mut properties = String::new();
        message_codec::encode_properties(
            msg.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut properties,
        );
        Record {
            topic: msg.topic.into(),
            body: msg.body,
            flag: msg.flag,
            properties,
            queue_id: msg.queue_id,
            queue_offset: msg.queue_offset,
            commit_log_offset: msg.commit_log_offset,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            born_host: msg.born_host,
            store_timestamp: msg.store_timestamp,
            reconsume_times: msg.reconsume_times,
            prepared_transaction_offset: msg.prepared_transaction_offset,
        }
    }

    pub(super) fn to_message(&self, store_host: SocketAddr) -> MessageExt {
        MessageExt {
            topic: self.topic.to_string(),
            body: self.body.clone(),
            flag: self.flag,
            properties: message_codec::decode_properties(&self.properties),
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            commit_log_offset: self.commit_log_offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body_crc: message_codec::body_crc32(&self.body),
        }
    }
}

/// Where a record's variable parts start in the stored layout: everything but the body, topic
/// and properties (IPv4 hosts; 12 more bytes per IPv6 host).
const STORED_FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2;

pub(super) fn stored_len_of(
    born: &SocketAddr,
    store: &SocketAddr,
    body: usize,
    topic: usize,
    props: usize,
) -> i64 {
    let v6 = |a: &SocketAddr| if a.is_ipv4() { 0 } else { 12 };
    (STORED_FIXED_LEN + v6(born) + v6(store) + body + topic + props) as i64
}

/// A half message and where it stands.
pub(super) struct Half {
    /// The latest half record (the original or the copy of the last check), with its real topic
    /// and queue.
    pub(super) msg: MessageExt,
    pub(super) tran_state_offset: i64,
    pub(super) group: String,
    pub(super) state: TransactionState,
    pub(super) checks: u32,
    /// When the original was stored (checks wait for `transaction_timeout` after it).
    pub(super) stored_at: Instant,
}

/// A cheap hasher for the store's maps, keyed by topic names and queue ids that tests and the
/// bench choose (not an attacker): FxHash's multiply-rotate over 8 bytes at a time, where
/// SipHash cost the send path three hashes per message.
#[derive(Default, Clone, Copy)]
pub(crate) struct StoreHasher(u64);

impl std::hash::Hasher for StoreHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(last) ^ rest.len() as u64).wrapping_mul(K);
    }

    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map of the store with [`StoreHasher`].
pub(crate) type StoreMap<K, V> = HashMap<K, V, BuildHasherDefault<StoreHasher>>;

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) topics: StoreMap<String, TopicConf>,
    /// Every visible message, in arrival order (unless messages are not kept), which is also
    /// commit-log order: VIEW_MESSAGE_BY_ID finds a record by binary search.
    pub(super) log: Vec<Record>,
    /// Topic names shared by stored records.
    pub(super) names: StoreMap<String, Arc<str>>,
    /// Next offset per topic and queue.
    pub(super) queue_offsets: StoreMap<String, StoreMap<i32, i64>>,
    pub(super) next_commit_offset: i64,
    pub(super) halves: Vec<Half>,
    /// Every half record (originals and check copies) by commit-log offset, as a real broker
    /// keeps them: in the half topic, queue 0.
    pub(super) half_records: HashMap<i64, MessageExt>,
    pub(super) half_queue_offset: i64,
    pub(crate) end_transactions: Vec<EndTransactionRecord>,
    pub(crate) counters: MockCounters,
    /// Producer group -> connections that heartbeat for it.
    pub(super) groups: HashMap<String, Vec<Weak<Conn>>>,
    /// Client id -> the connection its last heartbeat came on (where replies are pushed).
    pub(super) client_conns: HashMap<String, Weak<Conn>>,
    /// Replies pushed to requesters, with their answers.
    pub(super) reply_pushes: Vec<crate::testing::records::ReplyPush>,
}

/// The size of `msg` in the stored layout (V1 magic), which is how far it moves the
/// commit-log offset (protocol.md 9.5).
fn stored_len(msg: &MessageExt) -> i64 {
    let props: usize = msg
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    stored_len_of(
        &msg.born_host,
        &msg.store_host,
        msg.body.len(),
        msg.topic.len(),
        props,
    )
}

impl BrokerCore {
    /// Takes the next commit-log offset for a record of `len` bytes.
    pub(super) fn next_commit_offset(store: &mut Store, len: i64) -> i64 {
        let at = store.next_commit_offset;
        store.next_commit_offset += len;
        at
    }

    /// Keeps a visible record for readers (unless messages are not kept).
    pub(super) fn keep(&self, store: &mut Store, record: Record) {
        if self.settings.keep_messages {
            store.log.push(record);
        }
    }

    /// Gives `msg` the next commit-log offset and its store fields; visible messages are kept
    /// for readers. Returns the message as stored. (The path of half records and committed
    /// messages; plain sends take a faster one.)
    pub(super) fn append(
        &self,
        store: &mut Store,
        mut msg: MessageExt,
        visible: bool,
    ) -> MessageExt {
        msg.store_host = self.store_addr();
        msg.store_timestamp = now_ms();
        msg.body_crc = message_codec::body_crc32(&msg.body);
        msg.commit_log_offset = Self::next_commit_offset(store, stored_len(&msg));
        if visible {
            self.keep(store, Record::from_message(msg.clone()));
        }
        msg
    }

    /// Appends a half record: the commit log holds it in the half topic, queue 0, with its real
    /// topic and queue in `REAL_TOPIC` / `REAL_QID`. Returns it with its real topic and queue.
    pub(super) fn append_half(&self, store: &mut Store, msg: MessageExt) -> MessageExt {
        let mut record = msg;
        let (topic, queue) = (record.topic.clone(), record.queue_id);
        record.topic = HALF_TOPIC.to_string();
        record.queue_id = 0;
        let mut record = self.append(store, record, false);
        store
            .half_records
            .insert(record.commit_log_offset, record.clone());
        record.topic = topic;
        record.queue_id = queue;
        record
    }

    pub(super) fn next_queue_offset(store: &mut Store, topic: &str, queue: i32) -> i64 {
        let offsets = match store.queue_offsets.get_mut(topic) {
            Some(o) => o,
            None => store.queue_offsets.entry(topic.to_string()).or_default(),
        };
        let slot = offsets.entry(queue).or_insert(0);
        let v = *slot;
        *slot += 1;
        v
    }

    /// The shared name of a topic, for stored records.
    pub(super) fn topic_name(store: &mut Store, topic: &str) -> Arc<str> {
        match store.names.get(topic) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = topic.into();
                store.names.insert(topic.to_string(), name.clone());
                name
            }
        }
    }

    pub(crate) fn messages(&self, topic: &str) -> Vec<MessageExt> {
        let host = self.store_addr();
        self.store
            .lock()
            .log
            .iter()
            .filter(|r| *r.topic == *topic)
            .map(|r| r.to_message(host))
            .collect()
    }

    pub(crate) fn message_count(&self, topic: &str) -> usize {
        self.store
            .lock()
            .log
            .iter()
            .filter(|r| *r.topic == *topic)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message_codec::sys_flag;

    #[test]
    fn stored_length_is_the_encoded_length() {
        let msg = MessageExt {
            topic: "TopicA".into(),
            body: vec![7; 100],
            flag: 3,
            properties: vec![("UNIQ_KEY".into(), "ü".into()), ("K".into(), "v".into())],
            queue_id: 1,
            queue_offset: 2,
            commit_log_offset: 3,
            sys_flag: 0,
            born_timestamp: 4,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 5,
            store_host: "[::1]:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        };
        let mut msg = msg;
        msg.sys_flag = sys_flag::STOREHOST_V6;
        let mut out = Vec::new();
        message_codec::encode_stored_message(&msg, &mut out).unwrap();
        assert_eq!(stored_len(&msg), out.len() as i64);
        let record = Record::from_message(msg.clone());
        let back = record.to_message(msg.store_host);
        assert_eq!(back.properties, msg.properties);
        assert_eq!(back.body_crc, message_codec::body_crc32(&msg.body));
    }
}
