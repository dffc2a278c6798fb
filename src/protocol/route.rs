//! Route data (protocol.md section 6).
//!
//! OWNER: codec helper. Contract:
//!
//! ```text
//! pub mod perm { PRIORITY=8, READ=4, WRITE=2, INHERIT=1; fn is_writeable(i32)->bool; fn is_readable(i32)->bool }
//! pub const MASTER_ID: i64 = 0;
//! #[derive(Debug, Clone, PartialEq, Eq, Default)]
//! pub struct TopicRouteData { pub order_topic_conf: Option<String>, pub queue_datas: Vec<QueueData>,
//!     pub broker_datas: Vec<BrokerData>, pub has_static_queue_mapping: bool }
//! pub struct QueueData { pub broker_name: String, pub read_queue_nums: i32, pub write_queue_nums: i32,
//!     pub perm: i32, pub topic_sys_flag: i32 }
//! pub struct BrokerData { pub cluster: String, pub broker_name: String,
//!     pub broker_addrs: BTreeMap<i64, String>, pub zone_name: Option<String>, pub enable_acting_master: bool }
//! impl BrokerData { pub fn master_addr(&self) -> Option<&str> }
//! impl TopicRouteData {
//!     pub fn from_json(body: &[u8]) -> Result<Self, CodecError>   // standard, then legacy repair
//!     pub fn to_json(&self) -> Vec<u8>                              // standard JSON (quoted keys)
//!     pub fn to_legacy_json(&self) -> Vec<u8>                       // fastjson unquoted integer keys
//!     pub fn normalized(&self) -> TopicRouteData                    // sorted, for change detection
//! }
//! ```
