//! Seeded random input into every decoder: 100,000 random byte strings and 10,000 mutated valid
//! frames. No panic; every outcome is a frame or a typed error; every frame that decodes
//! re-encodes to itself.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use rocketmq_mio::protocol::header::{CommandHeader, SendMessageRequestHeader};
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::message_codec::{decode_batch, decode_stored_messages};
use rocketmq_mio::protocol::{CodecError, ExtFields, FrameDecoder, RemotingCommand, SerializeType};

const RANDOM_INPUTS: usize = 100_000;
const MUTATED_FRAMES: usize = 10_000;
const MAX_FRAME: usize = 64 * 1024;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("data/check_transaction_request.bin"),
    include_bytes!("data/heartbeat_request.bin"),
    include_bytes!("data/heartbeat_response.bin"),
    include_bytes!("data/route_request_tbw102.bin"),
    include_bytes!("data/route_response_missing_topic.bin"),
    include_bytes!("data/route_response_tbw102.bin"),
    include_bytes!("data/send_batch_request.bin"),
    include_bytes!("data/send_batch_response.bin"),
    include_bytes!("data/send_error_response.bin"),
    include_bytes!("data/send_half_request.bin"),
    include_bytes!("data/send_half_response.bin"),
    include_bytes!("data/send_v2_request.bin"),
    include_bytes!("data/send_v2_response.bin"),
    include_bytes!("data/view_message_response.bin"),
];

/// Checks a decoded command: it re-encodes, and decodes back to itself.
fn check_round_trip(cmd: &RemotingCommand) {
    let frame = match cmd.to_frame() {
        Ok(f) => f,
        Err(CodecError::HeaderTooLarge(_)) => return,
        Err(e) => panic!("re-encoding failed: {e}"),
    };
    let back = RemotingCommand::decode(&frame).expect("a re-encoded frame decodes");
    let mut expected = cmd.clone();
    if cmd.serialize_type == SerializeType::RocketMq {
        // The binary layout cannot carry empty keys or values.
        expected.ext_fields = cmd
            .ext_fields
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<ExtFields>();
    }
    assert_eq!(back, expected);
}

/// Feeds `input` to a decoder in pieces of random size; drains it. Returns the frames decoded.
fn feed(input: &[u8], rng: &mut StdRng) -> usize {
    let mut d = FrameDecoder::with_max_frame(MAX_FRAME);
    let mut frames = 0;
    let mut rest = input;
    let mut failed = false;
    while !rest.is_empty() && !failed {
        let n = rng.gen_range(1..=rest.len());
        d.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.next_frame() {
                Ok(Some(cmd)) => {
                    frames += 1;
                    check_round_trip(&cmd);
                    // Typed readers on whatever the frame carries: errors are fine, panics not.
                    let _ = SendMessageRequestHeader::read_any(&cmd.ext_fields);
                    let _ = SendMessageRequestHeader::read_from(&cmd.ext_fields);
                    let _ = decode_stored_messages(&cmd.body);
                    let _ = decode_batch(&cmd.body);
                    let _ = HeartbeatData::from_json(&cmd.body);
                }
                Ok(None) => break,
                Err(_) => {
                    // Poisoned: every later call fails too.
                    assert!(d.next_frame().is_err());
                    failed = true;
                    break;
                }
            }
        }
    }
    // The one-shot decoder agrees with the first frame's fate.
    let _ = RemotingCommand::decode(input);
    frames
}

/// A random JSON-ish string: characters, escapes (some broken), non-ASCII.
fn random_json_string(rng: &mut StdRng, out: &mut String) {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        " ",
        "\\\"",
        "\\\\",
        "\\n",
        "\\u0001",
        "\\u00e9",
        "\\ud834\\udd1e",
        "\\ud834",
        "\\x",
        "\\/",
        "ü",
        "✓",
        "𝄞",
        "\u{1}",
        "\u{2}",
        "\n",
    ];
    out.push('"');
    for _ in 0..rng.gen_range(0..6) {
        out.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
    }
    if rng.gen_range(0..20) != 0 {
        out.push('"');
    }
}

/// A random JSON-ish value, nested at most `depth` deep.
fn random_json_value(rng: &mut StdRng, depth: u32, out: &mut String) {
    const KEYS: &[&str] = &[
        "code",
        "language",
        "version",
        "opaque",
        "flag",
        "remark",
        "extFields",
        "serializeTypeCurrentRPC",
        "a",
        "b",
        "queueId",
        "",
    ];
    match rng.gen_range(0..if depth == 0 { 6 } else { 8 }) {
        0 => out.push_str(["null", "true", "false"][rng.gen_range(0..3)]),
        1 | 2 => {
            let n: i64 = match rng.gen_range(0..4) {
                0 => rng.gen_range(-3..400),
                1 => rng.gen(),
                2 => rng.gen::<i32>().into(),
                _ => rng.gen_range(0..14),
            };
            out.push_str(&n.to_string());
            if rng.gen_range(0..10) == 0 {
                out.push_str([".5", "e3", "E-2", "-", "."][rng.gen_range(0..5)]);
            }
        }
        3..=5 => {
            if rng.gen_range(0..4) == 0 {
                out.push_str(
                    ["\"JAVA\"", "\"RUST\"", "\"JSON\"", "\"COBOL\""][rng.gen_range(0..4)],
                );
            } else {
                random_json_string(rng, out);
            }
        }
        6 => {
            out.push('[');
            for i in 0..rng.gen_range(0..4) {
                if i > 0 {
                    out.push(',');
                }
                random_json_value(rng, depth - 1, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..rng.gen_range(0..6) {
                if i > 0 {
                    out.push(',');
                }
                if rng.gen_range(0..6) == 0 {
                    random_json_string(rng, out);
                } else {
                    out.push('"');
                    out.push_str(KEYS[rng.gen_range(0..KEYS.len())]);
                    out.push('"');
                }
                out.push_str([":", " : ", ":"][rng.gen_range(0..3)]);
                random_json_value(rng, depth - 1, out);
            }
            if rng.gen_range(0..20) != 0 {
                out.push('}');
            }
        }
    }
}

/// A random input biased towards looking like a frame: a plausible length prefix, a known
/// serialize type, JSON-ish or binary-ish header bytes.
fn random_input(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..10) {
        0 => rng.gen_range(0..8),
        1..=7 => rng.gen_range(0..128),
        _ => rng.gen_range(0..1024),
    };
    match rng.gen_range(0..4) {
        // Pure noise.
        0 => (0..len).map(|_| rng.gen::<u8>()).collect(),
        // A JSON-ish header object (often valid, often not) and a random body.
        1 | 2 => {
            let mut h = String::from("{\"code\":");
            if rng.gen_range(0..10) == 0 {
                h.clear();
                random_json_value(rng, 3, &mut h);
            } else {
                random_json_value(rng, 0, &mut h);
                for _ in 0..rng.gen_range(0..8) {
                    h.push(',');
                    let mut obj = String::new();
                    random_json_value(rng, 3, &mut obj);
                    // Splice the members of a random object in.
                    h.push_str(obj.trim_start_matches('{').trim_end_matches('}'));
                }
                h.push('}');
            }
            let body_len = rng.gen_range(0..16);
            let mut out = Vec::new();
            out.extend_from_slice(&((4 + h.len() + body_len) as i32).to_be_bytes());
            out.extend_from_slice(&(h.len() as u32).to_be_bytes());
            out.extend_from_slice(h.as_bytes());
            out.extend((0..body_len).map(|_| rng.gen::<u8>()));
            out
        }
        // A structured binary header, its lengths sometimes off.
        _ if rng.gen_bool(0.5) => {
            let mut h = Vec::new();
            h.extend_from_slice(&rng.gen::<i16>().to_be_bytes());
            h.push(rng.gen_range(0..16));
            h.extend_from_slice(&rng.gen::<i16>().to_be_bytes());
            h.extend_from_slice(&rng.gen::<i32>().to_be_bytes());
            h.extend_from_slice(&rng.gen_range(0..4i32).to_be_bytes());
            let text = |rng: &mut StdRng| -> Vec<u8> {
                let mut s = String::new();
                for _ in 0..rng.gen_range(0..5) {
                    s.push_str(["a", "é", "𝄞", "\u{1}", "\"", ""][rng.gen_range(0..6)]);
                }
                let mut b = s.into_bytes();
                if rng.gen_range(0..30) == 0 {
                    b.push(0xFF);
                }
                b
            };
            let off = |rng: &mut StdRng| -> i32 {
                if rng.gen_range(0..25) == 0 {
                    rng.gen_range(-2..3)
                } else {
                    0
                }
            };
            let remark = text(rng);
            h.extend_from_slice(&(remark.len() as i32 + off(rng)).to_be_bytes());
            h.extend_from_slice(&remark);
            let mut map = Vec::new();
            for _ in 0..rng.gen_range(0..5) {
                let (k, v) = (text(rng), text(rng));
                map.extend_from_slice(&(k.len() as i16 + off(rng) as i16).to_be_bytes());
                map.extend_from_slice(&k);
                map.extend_from_slice(&(v.len() as i32 + off(rng)).to_be_bytes());
                map.extend_from_slice(&v);
            }
            h.extend_from_slice(&(map.len() as i32 + off(rng)).to_be_bytes());
            h.extend_from_slice(&map);
            let mut out = Vec::new();
            out.extend_from_slice(&((4 + h.len()) as i32).to_be_bytes());
            out.extend_from_slice(&((1 << 24) | h.len() as u32).to_be_bytes());
            out.extend_from_slice(&h);
            out
        }
        // Binary-ish header: small numbers, random lengths.
        _ => {
            let noise: Vec<u8> = (0..len)
                .map(|_| match rng.gen_range(0..4) {
                    0 => rng.gen(),
                    1 => 0,
                    2 => rng.gen_range(0..8),
                    _ => rng.gen_range(b'a'..=b'z'),
                })
                .collect();
            let header_len = rng.gen_range(0..=noise.len()) as u32;
            let mut out = Vec::new();
            out.extend_from_slice(&((4 + noise.len()) as i32).to_be_bytes());
            out.extend_from_slice(&((1 << 24) | header_len).to_be_bytes());
            out.extend_from_slice(&noise);
            out
        }
    }
}

#[test]
fn random_byte_strings() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let mut frames = 0;
    for _ in 0..RANDOM_INPUTS {
        let input = random_input(&mut rng);
        frames += feed(&input, &mut rng);
        let _ = decode_stored_messages(&input);
        let _ = decode_batch(&input);
        let _ = HeartbeatData::from_json(&input);
    }
    eprintln!("{frames} frames decoded from {RANDOM_INPUTS} random inputs");
    // The generator does reach valid frames, not only early errors.
    assert!(frames > RANDOM_INPUTS / 20, "only {frames} frames decoded");
}

fn valid_frames(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = FIXTURES.iter().map(|f| f.to_vec()).collect();
    for f in FIXTURES {
        let mut cmd = RemotingCommand::decode(f).unwrap();
        cmd.serialize_type = SerializeType::RocketMq;
        frames.push(cmd.to_frame().unwrap());
    }
    let mut cmd = RemotingCommand::request(310).with_body(vec![7u8; 128]);
    cmd.remark = Some("r\u{1}é".into());
    SendMessageRequestHeader {
        producer_group: "g".into(),
        topic: "t".into(),
        default_topic: "TBW102".into(),
        properties: "A\u{1}b\u{2}".into(),
        born_timestamp: rng.gen(),
        ..Default::default()
    }
    .write_v2(&mut cmd.ext_fields);
    frames.push(cmd.to_frame().unwrap());
    cmd.serialize_type = SerializeType::RocketMq;
    frames.push(cmd.to_frame().unwrap());
    frames
}

fn mutate(frame: &mut Vec<u8>, rng: &mut StdRng) {
    const INTERESTING: &[u8] = &[0, 1, 0x7F, 0x80, 0xFF, b'"', b'\\', b'{', b'}', b':', b','];
    for _ in 0..rng.gen_range(1..=8) {
        if frame.is_empty() {
            frame.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..frame.len());
        match rng.gen_range(0..7) {
            0 => frame[at] ^= 1 << rng.gen_range(0..8),
            1 => frame[at] = INTERESTING[rng.gen_range(0..INTERESTING.len())],
            2 => frame[at] = rng.gen(),
            3 => frame.insert(at, rng.gen()),
            4 => {
                frame.remove(at);
            }
            5 => frame.truncate(at),
            _ => {
                let end = rng.gen_range(at..frame.len().min(at + 16));
                let piece = frame[at..=end].to_vec();
                let to = rng.gen_range(0..frame.len());
                frame.splice(to..to, piece);
            }
        }
    }
}

#[test]
fn mutated_valid_frames() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0002);
    let frames = valid_frames(&mut rng);
    let (mut decoded, mut failed) = (0, 0);
    for i in 0..MUTATED_FRAMES {
        let mut f = frames[i % frames.len()].clone();
        mutate(&mut f, &mut rng);
        // Sometimes keep the length prefix consistent so the header parser gets the mutation.
        if rng.gen_bool(0.5) && f.len() >= 4 {
            let n = (f.len() - 4) as i32;
            f[..4].copy_from_slice(&n.to_be_bytes());
        }
        // Follow it with a valid frame: after a failure the decoder must stay failed.
        f.extend_from_slice(&frames[0]);
        match feed(&f, &mut rng) {
            0 => failed += 1,
            _ => decoded += 1,
        }
    }
    eprintln!("{decoded} mutated frames decoded, {failed} failed");
    assert!(
        decoded > 100 && failed > 100,
        "{decoded} decoded, {failed} failed"
    );
}

#[test]
fn mutated_stored_message_bodies() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0003);
    let bodies: Vec<Vec<u8>> = [FIXTURES[0], FIXTURES[13], FIXTURES[6]]
        .iter()
        .map(|f| RemotingCommand::decode(f).unwrap().body)
        .collect();
    for i in 0..MUTATED_FRAMES {
        let mut b = bodies[i % bodies.len()].clone();
        mutate(&mut b, &mut rng);
        let _ = decode_stored_messages(&b);
        let _ = decode_batch(&b);
    }
}
