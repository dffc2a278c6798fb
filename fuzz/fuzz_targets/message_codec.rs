//! Arbitrary bytes into the stored-message, batch and heartbeat decoders. What decodes as stored
//! messages must re-encode and decode to the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::message_codec::{
    decode_batch, decode_properties, decode_stored_messages, encode_stored_message, sys_flag,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(msgs) = decode_stored_messages(data) {
        let mut out = Vec::new();
        for m in &msgs {
            if encode_stored_message(m, &mut out).is_err() {
                return;
            }
        }
        let back = decode_stored_messages(&out).expect("re-encoded messages decode");
        assert_eq!(back.len(), msgs.len());
        for (b, m) in back.iter().zip(&msgs) {
            assert_eq!(b.topic, m.topic);
            assert_eq!(b.body, m.body);
            assert_eq!(b.properties, m.properties);
            assert_eq!(b.born_host, m.born_host);
            assert_eq!(b.store_host, m.store_host);
            let v6 = sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6;
            assert_eq!(b.sys_flag & !v6, m.sys_flag & !v6);
        }
    }
    let _ = decode_batch(data);
    let _ = HeartbeatData::from_json(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_properties(s);
    }
});
