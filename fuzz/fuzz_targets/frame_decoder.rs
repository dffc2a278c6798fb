//! Arbitrary bytes into the incremental frame decoder, fed in pieces whose sizes come from the
//! input itself. Every frame that decodes must re-encode and decode back to itself; every error
//! must be sticky.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocketmq_mio::protocol::header::SendMessageRequestHeader;
use rocketmq_mio::protocol::{CodecError, ExtFields, FrameDecoder, RemotingCommand, SerializeType};

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

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size for feeding (1..=256); the rest is the stream.
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
                Err(_) => {
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
});
