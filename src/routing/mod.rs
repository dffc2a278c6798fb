//! Routing: the route cache, queue selectors, latency fault tolerance and the router.
//! No I/O here.

pub mod fault;
pub mod mapping;
pub mod router;
pub mod selector;
