//! The HEART_BEAT body (protocol.md section 5).
//!
//! OWNER: codec helper. Contract:
//!
//! ```text
//! pub struct HeartbeatData { pub client_id: String, pub producer_groups: Vec<String>, pub consumer_groups: Vec<String> }
//! impl HeartbeatData { pub fn to_json(&self) -> Vec<u8>; pub fn from_json(body: &[u8]) -> Result<Self, CodecError>; }
//! ```
