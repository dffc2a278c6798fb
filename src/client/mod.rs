//! Request/response level: name server lookups and broker requests, on top of the remoting
//! client. No state of the producer's lives here.

pub(crate) mod broker;
pub(crate) mod namesrv;
