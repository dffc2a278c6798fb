//! Typed custom headers, to and from `extFields` (protocol.md section 4).
//!
//! OWNER: codec helper. Contract (keep these names and shapes; add fields freely):
//!
//! ```text
//! pub trait CommandHeader: Sized {
//!     fn write_to(&self, fields: &mut ExtFields);
//!     fn read_from(fields: &ExtFields) -> Result<Self, CodecError>;   // names the missing field
//! }
//! GetRouteInfoRequestHeader { topic: String, accept_standard_json_only: bool }
//! SendMessageRequestHeader { producer_group, topic, default_topic: String, default_topic_queue_nums: i32,
//!     queue_id: i32, sys_flag: i32, born_timestamp: i64, flag: i32, properties: String,
//!     reconsume_times: Option<i32>, unit_mode: bool, batch: bool, max_reconsume_times: Option<i32>,
//!     broker_name: Option<String> }
//!     + write_v1 / read_v1 (long names, `bname`) and write_v2 / read_v2 (single letters a..n)
//! SendMessageResponseHeader { msg_id: String, queue_id: i32, queue_offset: i64,
//!     transaction_id: Option<String>, batch_uniq_id: Option<String>, recall_handle: Option<String>,
//!     region_id: Option<String> (MSG_REGION), trace_on: Option<bool> (TRACE_ON) }
//! EndTransactionRequestHeader { topic: Option<String>, producer_group: String, tran_state_table_offset: i64,
//!     commit_log_offset: i64, commit_or_rollback: i32, from_transaction_check: bool, msg_id: String,
//!     transaction_id: Option<String>, broker_name: Option<String> /* bname */ }
//! CheckTransactionStateRequestHeader { topic: Option<String>, tran_state_table_offset: i64, commit_log_offset: i64,
//!     msg_id: Option<String>, transaction_id: Option<String>, offset_msg_id: Option<String>, broker_name: Option<String> }
//! UnregisterClientRequestHeader { client_id: String, producer_group: Option<String>, consumer_group: Option<String> }
//! ViewMessageByIdRequestHeader { offset: i64 }
//! GetMaxOffsetRequestHeader { topic: String, queue_id: i32, committed: bool, broker_name: Option<String> }
//! GetMaxOffsetResponseHeader { offset: i64 }
//! CreateTopicRequestHeader { topic, default_topic: String, read_queue_nums, write_queue_nums, perm: i32,
//!     topic_filter_type: String, topic_sys_flag: Option<i32>, order: bool, attributes: Option<String> }
//! ```
