//! Replays the saved fuzz inputs under `tests/data/fuzz/<target>/` through the same calls as the
//! cargo-fuzz targets in `fuzz/fuzz_targets/<target>.rs`, on stable and without libFuzzer.
//!
//! Each directory holds `regression_*` inputs, which made the target fail before a library fix
//! (each has a test of its own below), and a few small `corpus_*` entries from a fuzzing run. Every input must decode to a value or a typed `CodecError`,
//! never panic, and keep the invariants the fuzz target asserts.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rocketmq_mio::protocol::header::SendMessageRequestHeader;
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::message_codec::{
    decode_batch, decode_properties, decode_stored_messages, encode_stored_message, sys_flag,
};
use rocketmq_mio::protocol::{
    CodecError, ExtFields, FrameDecoder, LanguageCode, RemotingCommand, SerializeType,
};

/// The files of `tests/data/fuzz/<target>/`, sorted by name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// Runs `check` on every input of `target`; fails naming every input that panicked.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let mut failed = Vec::new();
    let files = inputs(target);
    for (name, data) in &files {
        if catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
            failed.push(name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic: {failed:?}"
    );
    eprintln!("{target}: {} inputs replayed", files.len());
}

/// As `fuzz/fuzz_targets/frame_decoder.rs`.
fn check_round_trip(cmd: &RemotingCommand) {
    let frame = match cmd.to_frame() {
        Ok(f) => f,
        Err(CodecError::HeaderTooLarge(_)) => return,
        Err(e) => panic!("re-encoding failed: {e}"),
    };
    let back = RemotingCommand::decode(&frame).expect("a re-encoded frame decodes");
    let mut expected = cmd.clone();
    if cmd.serialize_type == SerializeType::RocketMq {
        expected.ext_fields = cmd
            .ext_fields
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<ExtFields>();
    }
    assert_eq!(back, expected);
}

/// As `fuzz/fuzz_targets/frame_decoder.rs`: the first byte is the feeding chunk size - 1.
fn frame_decoder(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = chunk as usize + 1;
    let mut d = FrameDecoder::with_max_frame(1 << 20);
    let mut failed = false;
    for piece in stream.chunks(chunk) {
        d.feed(piece);
        loop {
            match d.next_frame() {
                Ok(Some(cmd)) => {
                    assert!(!failed);
                    check_round_trip(&cmd);
                    let _ = SendMessageRequestHeader::read_any(&cmd.ext_fields);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            assert!(d.next_frame().is_err(), "errors are sticky");
            break;
        }
    }
    let _ = RemotingCommand::decode(stream);
}

/// As `fuzz/fuzz_targets/json_header.rs`, and the header inside a JSON frame through the public
/// decoder.
fn json_header(data: &[u8]) {
    rocketmq_mio::protocol::frame::json_header_differential(data);
    let mut frame = Vec::with_capacity(data.len() + 8);
    frame.extend_from_slice(&(data.len() as u32 + 4).to_be_bytes());
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(data);
    if let Ok(cmd) = RemotingCommand::decode(&frame) {
        check_round_trip(&cmd);
    }
}

/// As `fuzz/fuzz_targets/message_codec.rs`.
fn message_codec(data: &[u8]) {
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
}

#[test]
fn frame_decoder_inputs() {
    replay("frame_decoder", frame_decoder);
}

#[test]
fn json_header_inputs() {
    replay("json_header", json_header);
}

#[test]
fn message_codec_inputs() {
    replay("message_codec", message_codec);
}

/// `regression_binary_dup_key_compaction`: a binary header whose keys come unsorted, with a
/// repeated key replacing a long value. Building the map compacted its value buffer while ranges
/// into the old buffer were still to be placed: the next value read sliced out of bounds (or, in
/// bounds, read the wrong bytes). Every value must be the one sent, the later duplicate winning.
#[test]
fn binary_header_duplicate_keys_keep_their_values() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz/frame_decoder/regression_binary_dup_key_compaction"),
    )
    .unwrap();
    let cmd = RemotingCommand::decode(&data[1..]).unwrap();
    assert_eq!(cmd.serialize_type, SerializeType::RocketMq);
    let fields: Vec<_> = cmd.ext_fields.iter().collect();
    assert_eq!(fields, [("a", "1"), ("b", "2"), ("c", "3")]);
}

/// `regression_numeric_language_without_name`: a JSON header may give the language as a number.
/// One without a name decoded as that raw code, which a JSON header can only write back as
/// `"OTHER"`: the frame did not survive re-encoding. It decodes as OTHER, like an unknown name.
#[test]
fn json_numeric_language_without_a_name_is_other() {
    let header = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz/json_header/regression_numeric_language_without_name"),
    )
    .unwrap();
    let mut frame = (header.len() as u32 + 4).to_be_bytes().to_vec();
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&header);
    let cmd = RemotingCommand::decode(&frame).unwrap();
    assert_eq!(cmd.language, LanguageCode::OTHER);
    check_round_trip(&cmd);
}
