//! What a mock broker shows a test of what it stored and received: stored and half messages,
//! transaction states, END_TRANSACTION records and counters. Plain data, filled by the node.

use std::collections::HashMap;

use crate::message::MessageExt;
use crate::protocol::RequestCode;

/// A message as the mock stores it: a [`MessageExt`] with the fields a real broker's stored
/// record has (topic, queue id and offset, commit-log offset, body, flag, properties, sysFlag,
/// born and store time and host), and accessors for tags, keys, properties, the client id
/// ([`MessageExt::msg_id`], the `UNIQ_KEY`) and the offset id ([`MessageExt::offset_msg_id`]).
pub type StoredMessage = MessageExt;

/// A reply the broker pushed to a requester (PUSH_REPLY_MESSAGE_TO_CLIENT) on a
/// SEND_REPLY_MESSAGE(_V2), and how the requester answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyPush {
    /// The `REPLY_TO_CLIENT` it went to.
    pub client_id: String,
    /// The reply's `CORRELATION_ID`.
    pub correlation_id: Option<String>,
    /// The push's opaque (the answer must echo it).
    pub opaque: i32,
    /// The response code the requester answered with; `None` until it answers.
    pub answer: Option<i32>,
    /// The remark of that answer.
    pub answer_remark: Option<String>,
}

/// Where a half message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// Waiting for END_TRANSACTION or a check-back.
    Prepared,
    /// Committed: the real message is visible.
    Committed,
    /// Rolled back: never visible.
    RolledBack,
}

/// A half (prepared) message the broker holds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HalfMessage {
    /// The latest half record (the original, or the copy stored by the last check), shown with
    /// its real topic and queue; `queue_offset` and `commit_log_offset` are what an
    /// END_TRANSACTION must carry. On the broker's wire (VIEW_MESSAGE_BY_ID) it sits in
    /// `RMQ_SYS_TRANS_HALF_TOPIC`, queue 0.
    pub message: MessageExt,
    /// Where it stands.
    pub state: TransactionState,
    /// The `PGROUP` it belongs to.
    pub producer_group: String,
    /// Its offset in the half queue (what END_TRANSACTION must echo).
    pub tran_state_table_offset: i64,
    /// How many check-backs were sent for it.
    pub checks: u32,
}

/// An END_TRANSACTION the broker received, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndTransactionRecord {
    /// `producerGroup`.
    pub producer_group: String,
    /// `tranStateTableOffset`.
    pub tran_state_table_offset: i64,
    /// `commitLogOffset`.
    pub commit_log_offset: i64,
    /// `commitOrRollback`: 8 commit, 12 rollback, 0 unknown.
    pub commit_or_rollback: i32,
    /// `fromTransactionCheck`.
    pub from_transaction_check: bool,
    /// `msgId`.
    pub msg_id: String,
    /// `transactionId`.
    pub transaction_id: Option<String>,
    /// `topic`.
    pub topic: Option<String>,
    /// `bname`.
    pub broker_name: Option<String>,
    /// The command's remark.
    pub remark: Option<String>,
    /// Whether it came oneway.
    pub oneway: bool,
}

/// What a mock node received and did.
#[derive(Debug, Clone, Default)]
pub struct MockCounters {
    pub(super) received: HashMap<i32, u64>,
    pub(super) received_binary: HashMap<i32, u64>,
    pub(super) acl_refused: HashMap<i32, u64>,
    pub(super) heartbeats: u64,
    pub(super) unregisters: u64,
    pub(super) unregistered: Vec<String>,
    pub(super) messages_stored: u64,
    pub(super) half_messages: u64,
    pub(super) checks_sent: u64,
    pub(super) end_transactions: u64,
    pub(super) connections: u64,
    pub(super) clients: Vec<(String, Vec<String>)>,
    pub(super) send_groups: Vec<String>,
    pub(super) unregistered_groups: Vec<String>,
}

impl MockCounters {
    /// Requests received with `code` whose header was in the binary ROCKETMQ layout
    /// (serialize type 1); the rest of [`MockCounters::received`] came as JSON.
    pub fn received_binary(&self, code: i32) -> u64 {
        self.received_binary.get(&code).copied().unwrap_or(0)
    }

    /// Requests received with `code` (faulted and black-holed ones included).
    pub fn received(&self, code: i32) -> u64 {
        self.received.get(&code).copied().unwrap_or(0)
    }

    /// Requests with `code` that the ACL refused (see [`MockBrokerBuilder::acl`](super::MockBrokerBuilder::acl)).
    pub fn acl_refusals(&self, code: i32) -> u64 {
        self.acl_refused.get(&code).copied().unwrap_or(0)
    }

    /// Requests the ACL refused, all codes together.
    pub fn acl_refusals_total(&self) -> u64 {
        self.acl_refused.values().sum()
    }

    /// Requests received, all codes together.
    pub fn requests(&self) -> u64 {
        self.received.values().sum()
    }

    /// Send requests received (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE), faulted
    /// ones included: retries show here.
    pub fn sends(&self) -> u64 {
        self.received(RequestCode::SEND_MESSAGE)
            + self.received(RequestCode::SEND_MESSAGE_V2)
            + self.received(RequestCode::SEND_BATCH_MESSAGE)
    }

    /// Route requests received (GET_ROUTEINFO_BY_TOPIC).
    pub fn route_requests(&self) -> u64 {
        self.received(RequestCode::GET_ROUTEINFO_BY_TOPIC)
    }

    /// Heartbeats handled.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats
    }

    /// UNREGISTER_CLIENT requests handled.
    pub fn unregisters(&self) -> u64 {
        self.unregisters
    }

    /// Client ids that unregistered, in order.
    pub fn unregistered_clients(&self) -> &[String] {
        &self.unregistered
    }

    /// Messages stored (visible ones; each message of a batch counts).
    pub fn messages_stored(&self) -> u64 {
        self.messages_stored
    }

    /// Half messages received.
    pub fn half_messages(&self) -> u64 {
        self.half_messages
    }

    /// CHECK_TRANSACTION_STATE requests sent.
    pub fn checks_sent(&self) -> u64 {
        self.checks_sent
    }

    /// END_TRANSACTION requests handled (see
    /// [`MockBroker::end_transactions`](super::MockBroker::end_transactions) for each one).
    pub fn end_transactions(&self) -> u64 {
        self.end_transactions
    }

    /// Connections accepted since start (reconnects show here).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Clients seen in heartbeats: (client id, producer groups).
    pub fn clients(&self) -> &[(String, Vec<String>)] {
        &self.clients
    }

    /// The producer groups named in UNREGISTER_CLIENT requests, one entry a request.
    pub fn unregistered_groups(&self) -> &[String] {
        &self.unregistered_groups
    }

    /// The producer groups named in send headers, each once, in the order first seen.
    pub fn send_groups(&self) -> &[String] {
        &self.send_groups
    }
}
