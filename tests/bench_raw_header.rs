//! The bench's raw client reads response headers with `examples/raw_header`: its unit tests run
//! here (`cargo test` does not run an example's own tests).

#[allow(dead_code)]
#[path = "../examples/raw_header/mod.rs"]
mod raw_header;
