//! Differential: the fast JSON header reader must agree with the `serde_json::Value` reader on
//! every input it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rocketmq_mio::protocol::frame::json_header_differential(data);
});
