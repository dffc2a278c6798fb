//! Frames: every fixture captured from a real broker decoded whole, split at every byte boundary
//! and packed several to a slice; JSON header decoding rules; decoder limits.

use rocketmq_mio::protocol::frame::{DEFAULT_MAX_FRAME, FLAG_ONEWAY, FLAG_RESPONSE};
use rocketmq_mio::protocol::{
    CodecError, ExtFields, FrameDecoder, LanguageCode, RemotingCommand, SerializeType,
};

/// (file name, bytes, expected code, opaque, flag)
const FIXTURES: &[(&str, &[u8], i32, i32, i32)] = &[
    (
        "check_transaction_request",
        include_bytes!("data/check_transaction_request.bin"),
        39,
        9,
        FLAG_ONEWAY,
    ),
    (
        "heartbeat_request",
        include_bytes!("data/heartbeat_request.bin"),
        34,
        1001,
        0,
    ),
    (
        "heartbeat_response",
        include_bytes!("data/heartbeat_response.bin"),
        0,
        1001,
        FLAG_RESPONSE,
    ),
    (
        "route_request_tbw102",
        include_bytes!("data/route_request_tbw102.bin"),
        105,
        1001,
        0,
    ),
    (
        "route_response_missing_topic",
        include_bytes!("data/route_response_missing_topic.bin"),
        17,
        1002,
        FLAG_RESPONSE,
    ),
    (
        "route_response_tbw102",
        include_bytes!("data/route_response_tbw102.bin"),
        0,
        1001,
        FLAG_RESPONSE,
    ),
    (
        "send_batch_request",
        include_bytes!("data/send_batch_request.bin"),
        320,
        1004,
        0,
    ),
    (
        "send_batch_response",
        include_bytes!("data/send_batch_response.bin"),
        0,
        1004,
        FLAG_RESPONSE,
    ),
    (
        "send_error_response",
        include_bytes!("data/send_error_response.bin"),
        1,
        1005,
        FLAG_RESPONSE,
    ),
    (
        "send_half_request",
        include_bytes!("data/send_half_request.bin"),
        310,
        1006,
        0,
    ),
    (
        "send_half_response",
        include_bytes!("data/send_half_response.bin"),
        0,
        1006,
        FLAG_RESPONSE,
    ),
    (
        "send_v2_request",
        include_bytes!("data/send_v2_request.bin"),
        310,
        1002,
        0,
    ),
    (
        "send_v2_response",
        include_bytes!("data/send_v2_response.bin"),
        0,
        1002,
        FLAG_RESPONSE,
    ),
    (
        "view_message_response",
        include_bytes!("data/view_message_response.bin"),
        0,
        1003,
        FLAG_RESPONSE,
    ),
];

fn decode_all(d: &mut FrameDecoder) -> Vec<RemotingCommand> {
    let mut out = Vec::new();
    while let Some(cmd) = d.next_frame().expect("valid frames") {
        out.push(cmd);
    }
    out
}

#[test]
fn every_fixture_decodes_whole() {
    for &(name, bytes, code, opaque, flag) in FIXTURES {
        let cmd = RemotingCommand::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cmd.code, code, "{name}");
        assert_eq!(cmd.opaque, opaque, "{name}");
        assert_eq!(cmd.flag, flag, "{name}");
        assert_eq!(cmd.serialize_type, SerializeType::Json, "{name}");
        let mut d = FrameDecoder::new();
        d.feed(bytes);
        assert_eq!(decode_all(&mut d), vec![cmd], "{name}");
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn fixture_details() {
    let find = |n: &str| {
        let (_, bytes, ..) = FIXTURES.iter().find(|f| f.0 == n).unwrap();
        RemotingCommand::decode(bytes).unwrap()
    };
    let missing = find("route_response_missing_topic");
    assert_eq!(missing.remark.as_deref(), Some("Topic route was not found"));
    assert!(missing.ext_fields.is_empty());
    assert!(missing.is_response());
    assert_eq!(missing.language, LanguageCode::RUST);
    assert_eq!(missing.version, 474);

    let route_req = find("route_request_tbw102");
    assert_eq!(route_req.remark, None);
    assert_eq!(route_req.language, LanguageCode::JAVA);
    assert_eq!(route_req.version, 453);
    assert_eq!(route_req.ext_fields.get("topic"), Some("TBW102"));
    assert_eq!(
        route_req.ext_fields.get("acceptStandardJsonOnly"),
        Some("true")
    );
    assert!(route_req.body.is_empty());

    let send = find("send_v2_request");
    assert_eq!(send.body, "hello fixture ✓".as_bytes());
    // The JSON escapes \u0001, \u00fc and the surrogate pair \ud834\udd1e decode to one string.
    assert_eq!(
        send.ext_fields.get("i"),
        Some(
            "UNIQ_KEY\u{1}7F0000010001FIXTURE0000000001\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}\
             KEYS\u{1}order-1 order-2\u{2}color\u{1}grün ✓ 𝄞\u{2}"
        )
    );

    let check = find("check_transaction_request");
    assert!(check.is_oneway());
    assert!(!check.is_response());
    assert_eq!(check.ext_fields.get("offsetMsgId"), Some(""));
    assert_eq!(check.body.len(), 709 - 8 - 335);

    let hb = find("heartbeat_request");
    assert!(hb.ext_fields.is_empty());
}

#[test]
fn every_fixture_split_at_every_byte_boundary() {
    for &(name, bytes, ..) in FIXTURES {
        let whole = RemotingCommand::decode(bytes).unwrap();
        for split in 0..=bytes.len() {
            let mut d = FrameDecoder::new();
            d.feed(&bytes[..split]);
            if split < bytes.len() {
                assert_eq!(d.next_frame(), Ok(None), "{name} split at {split}");
            }
            d.feed(&bytes[split..]);
            assert_eq!(
                decode_all(&mut d),
                vec![whole.clone()],
                "{name} split at {split}"
            );
        }
        // And one byte at a time.
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.feed(std::slice::from_ref(b));
            got.extend(decode_all(&mut d));
        }
        assert_eq!(got, vec![whole], "{name} byte by byte");
    }
}

#[test]
fn several_frames_in_one_slice() {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    // Every fixture, then every fixture again re-encoded in the binary layout.
    for &(_, bytes, ..) in FIXTURES {
        stream.extend_from_slice(bytes);
        expected.push(RemotingCommand::decode(bytes).unwrap());
    }
    for &(_, bytes, ..) in FIXTURES {
        let mut cmd = RemotingCommand::decode(bytes).unwrap();
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.encode(&mut stream).unwrap();
        expected.push(RemotingCommand::decode(&cmd.to_frame().unwrap()).unwrap());
    }

    let mut d = FrameDecoder::new();
    d.feed(&stream);
    assert_eq!(decode_all(&mut d), expected);

    // The whole stream split in two at every byte boundary.
    for split in 0..=stream.len() {
        let mut d = FrameDecoder::new();
        d.feed(&stream[..split]);
        let mut got = decode_all(&mut d);
        d.feed(&stream[split..]);
        got.extend(decode_all(&mut d));
        assert_eq!(got.len(), expected.len(), "split at {split}");
        assert!(got == expected, "split at {split}");
    }

    // Odd-sized chunks that straddle frame boundaries.
    for chunk in [3, 7, 64, 333, 1000] {
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            d.feed(piece);
            got.extend(decode_all(&mut d));
        }
        assert!(got == expected, "chunks of {chunk}");
    }
}

/// Empty values are not representable in the binary layout (Java reads a zero length as null).
fn without_empty_values(fields: &ExtFields) -> ExtFields {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn every_fixture_re_encodes_in_both_layouts() {
    for &(name, bytes, ..) in FIXTURES {
        let cmd = RemotingCommand::decode(bytes).unwrap();
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let mut c = cmd.clone();
            c.serialize_type = st;
            let again = RemotingCommand::decode(&c.to_frame().unwrap()).unwrap();
            if st == SerializeType::RocketMq {
                c.ext_fields = without_empty_values(&c.ext_fields);
            }
            assert_eq!(again, c, "{name} {st:?}");
        }
    }
}

fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + header.len() + body.len()) as i32).to_be_bytes());
    f.extend_from_slice(&(header.len() as i32).to_be_bytes());
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(body);
    f
}

fn decode_json(header: &str) -> Result<RemotingCommand, CodecError> {
    RemotingCommand::decode(&json_frame(header, b""))
}

#[test]
fn json_header_any_order_unknown_keys_defaults() {
    let cmd = decode_json(
        r#" { "version" : 401 , "unknown":{"nested":[1,2,{"x":null}],"s":"}\""},
              "opaque":-5, "language":12, "flag":3, "code":310, "extra":true,
              "extFields":{"b":"T","a":"G","n":null,"num":7,"f":1.5e2,"bool":false} } "#,
    )
    .unwrap();
    assert_eq!(cmd.code, 310);
    assert_eq!(cmd.version, 401);
    assert_eq!(cmd.opaque, -5);
    assert_eq!(cmd.flag, 3);
    assert_eq!(cmd.language, LanguageCode::RUST);
    assert_eq!(cmd.remark, None);
    let fields: Vec<(&str, &str)> = cmd.ext_fields.iter().collect();
    // null values are dropped; other scalars keep their JSON text.
    assert_eq!(
        fields,
        vec![
            ("a", "G"),
            ("b", "T"),
            ("bool", "false"),
            ("f", "150.0"),
            ("num", "7")
        ]
    );

    // Only code is required; everything else has Java's defaults.
    let cmd = decode_json(r#"{"code":0}"#).unwrap();
    assert_eq!(cmd.language, LanguageCode::JAVA);
    assert_eq!((cmd.version, cmd.opaque, cmd.flag), (0, 0, 0));
    assert!(cmd.ext_fields.is_empty());
    assert_eq!(
        decode_json(r#"{"flag":1}"#),
        Err(CodecError::MissingField("code"))
    );
    // Unknown language names decode as OTHER.
    let cmd = decode_json(r#"{"code":0,"language":"COBOL"}"#).unwrap();
    assert_eq!(cmd.language, LanguageCode::OTHER);
    // Numbers as strings are accepted, as fastjson does.
    let cmd = decode_json(r#"{"code":"17","opaque":"9"}"#).unwrap();
    assert_eq!((cmd.code, cmd.opaque), (17, 9));
}

#[test]
fn json_header_escapes() {
    let cmd = decode_json(
        r#"{"code":1,"remark":"tab\there \"q\" back\\slash \/ \u00e9 \ud834\udd1e \u0001","extFields":{"k\u0041":"\n"}}"#,
    )
    .unwrap();
    assert_eq!(
        cmd.remark.as_deref(),
        Some("tab\there \"q\" back\\slash / é 𝄞 \u{1}")
    );
    assert_eq!(cmd.ext_fields.get("kA"), Some("\n"));
    // Raw UTF-8 is fine too.
    let cmd = decode_json(r#"{"code":1,"remark":"grün ✓ 𝄞"}"#).unwrap();
    assert_eq!(cmd.remark.as_deref(), Some("grün ✓ 𝄞"));
}

#[test]
fn json_header_errors_are_typed() {
    let bad = [
        "",
        "{",
        "[]",
        "null",
        r#"{"code":1"#,
        r#"{"code":1,}"#,
        r#"{"code":1} x"#,
        r#"{"code":"abc"}"#,
        r#"{"code":2147483648}"#,
        r#"{"code":1.5}"#,
        r#"{"code":1,"opaque":[1]}"#,
        r#"{"code":1,"language":-1}"#,
        r#"{"code":1,"language":300}"#,
        r#"{"code":1,"language":{}}"#,
        r#"{"code":1,"extFields":[]}"#,
        r#"{"code":1,"extFields":"x"}"#,
        r#"{"code":1,"remark":"\ud834"}"#,
        r#"{"code":1,"remark":"\x"}"#,
        r#"{"code":1,"remark":"ctrl"}"#,
        r#"{"code":1,"remark":"unterminated}"#,
        r#"{code:1}"#,
    ];
    for h in bad {
        let h = h.replace("ctrl", "a\u{1}b");
        match decode_json(&h) {
            Err(CodecError::Json(_))
            | Err(CodecError::InvalidField { .. })
            | Err(CodecError::MissingField(_)) => {}
            other => panic!("{h:?} gave {other:?}"),
        }
    }
    // Invalid UTF-8 inside a string.
    let mut f = json_frame(r#"{"code":1,"remark":"xx"}"#, b"");
    let at = f.len() - 3;
    f[at] = 0xFF;
    assert!(matches!(
        RemotingCommand::decode(&f),
        Err(CodecError::Json(_))
    ));
}

#[test]
fn decoder_limits_and_poisoning() {
    let frame = RemotingCommand::request(105).to_frame().unwrap();
    let mut d = FrameDecoder::with_max_frame(frame.len());
    d.feed(&frame);
    d.feed(&frame);
    assert!(d.next_frame().unwrap().is_some());
    assert!(d.next_frame().unwrap().is_some());
    let mut d = FrameDecoder::with_max_frame(frame.len() - 1);
    d.feed(&frame);
    assert!(matches!(
        d.next_frame(),
        Err(CodecError::FrameTooLarge { .. })
    ));
    // Poisoned: the same stream never yields a frame again.
    d.feed(&RemotingCommand::request(1).to_frame().unwrap());
    assert!(d.next_frame().is_err());
    assert_eq!(FrameDecoder::new().max_frame(), DEFAULT_MAX_FRAME);

    // A length under 4 cannot hold the header-length word.
    let mut d = FrameDecoder::new();
    d.feed(&[0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(d.next_frame(), Err(CodecError::FrameTooShort(3)));

    // A broken binary header is typed, not a panic.
    let mut cmd = RemotingCommand::request(10);
    cmd.serialize_type = SerializeType::RocketMq;
    cmd.ext_fields.insert("k", "v");
    let mut f = cmd.to_frame().unwrap();
    let n = f.len();
    f[n - 5] = 0x7F; // value length
    assert!(matches!(
        RemotingCommand::decode(&f),
        Err(CodecError::BinaryHeader(_))
    ));
}
