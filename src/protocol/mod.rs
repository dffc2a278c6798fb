//! The RocketMQ remoting wire protocol, sans-IO: no sockets, threads or clocks.
//!
//! - [`frame`]: [`RemotingCommand`], its JSON and binary header layouts, and the incremental
//!   [`FrameDecoder`].
//! - [`codes`]: request, response and language codes, and the version this client sends.
//! - [`header`]: typed custom headers to and from `extFields`.
//! - [`route`]: `TopicRouteData` from standard and legacy (unquoted integer key) JSON.
//! - [`message_codec`]: properties strings, batch bodies, stored messages, message ids.
//! - [`heartbeat`]: the HEART_BEAT body.
//! - [`namespace`]: topic and group names wrapped in (and stripped of) a namespace.
//! - [`acl`]: ACL request signing (`AccessKey`, `Signature`) and the [`acl::Credentials`] it uses.

pub mod acl;
pub mod codes;
pub mod frame;
pub mod header;
pub mod heartbeat;
pub mod message_codec;
pub mod namespace;
pub mod route;

pub use codes::{LanguageCode, RequestCode, ResponseCode};
pub use frame::{CodecError, ExtFields, FrameDecoder, RemotingCommand, SerializeType};
