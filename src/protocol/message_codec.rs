//! Message encodings (protocol.md sections 7-9).
//!
//! OWNER: codec helper. Contract:
//!
//! ```text
//! pub mod sys_flag { COMPRESSED=0x1, MULTI_TAGS=0x2, TRANSACTION_NOT_TYPE=0, TRANSACTION_PREPARED=0x4,
//!     TRANSACTION_COMMIT=0x8, TRANSACTION_ROLLBACK=0xC, BORNHOST_V6=0x10, STOREHOST_V6=0x20,
//!     COMPRESSION_ZLIB=0x300, COMPRESSION_TYPE_MASK=0x700; fn transaction_value(i32)->i32 }
//! pub const NAME_VALUE_SEPARATOR: char = '\u{1}'; pub const PROPERTY_SEPARATOR: char = '\u{2}';
//! pub fn encode_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut String);
//! pub fn decode_properties(s: &str) -> Vec<(String, String)>;
//! pub fn encode_batch<'a>(messages: impl IntoIterator<Item = &'a Message>, out: &mut Vec<u8>);   // flag, body, properties per message
//! pub struct BatchEntry { pub flag: i32, pub body: Vec<u8>, pub properties: Vec<(String, String)> }
//! pub fn decode_batch(body: &[u8]) -> Result<Vec<BatchEntry>, CodecError>;
//! pub fn decode_stored_messages(body: &[u8]) -> Result<Vec<MessageExt>, CodecError>;   // V1 and V2 magic, IPv4/IPv6, loops
//! pub fn encode_stored_message(msg: &MessageExt, out: &mut Vec<u8>);                  // V1 magic, CRC computed
//! pub struct UniqIdGenerator; impl UniqIdGenerator { pub fn new(ip: IpAddr, pid: u32) -> Self;
//!     pub fn next_id(&self) -> String; pub fn write_next(&self, out: &mut String) }
//!     (MessageClientIDSetter layout; `now` taken from SystemTime is the only clock: pass it in,
//!      e.g. next_id_at(epoch_ms), keep protocol free of clocks and make `next_id` live outside or take time)
//! pub fn java_string_hash_code(s: &str) -> i32;   // over UTF-16 code units
//! ```
