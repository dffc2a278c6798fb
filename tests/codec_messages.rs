//! Message encodings against the real broker's bytes: stored messages (VIEW_MESSAGE_BY_ID and
//! the check-back body), batch bodies, offset ids; Java `String.hashCode`; `UNIQ_KEY` ids.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rocketmq_mio::message::property;
use rocketmq_mio::protocol::header::SendMessageRequestHeader;
use rocketmq_mio::protocol::message_codec::*;
use rocketmq_mio::protocol::RemotingCommand;
use rocketmq_mio::{Message, MessageExt, OffsetMessageId};

fn fixture(bytes: &[u8]) -> RemotingCommand {
    RemotingCommand::decode(bytes).unwrap()
}

fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn viewed_message_is_what_was_sent() {
    let sent = fixture(include_bytes!("data/send_v2_request.bin"));
    let header = SendMessageRequestHeader::read_v2(&sent.ext_fields).unwrap();
    let sent_props = decode_properties(&header.properties);
    assert_eq!(
        sent_props,
        props(&[
            ("UNIQ_KEY", "7F0000010001FIXTURE0000000001"),
            ("WAIT", "true"),
            ("TAGS", "TagA"),
            ("KEYS", "order-1 order-2"),
            ("color", "grün ✓ 𝄞"),
        ])
    );

    let view = fixture(include_bytes!("data/view_message_response.bin"));
    let msgs = decode_stored_messages(&view.body).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.topic, header.topic);
    assert_eq!(m.topic, "FixtureTopic");
    assert_eq!(m.body, sent.body);
    assert_eq!(m.body, "hello fixture ✓".as_bytes());
    assert_eq!(m.tags(), Some("TagA"));
    assert_eq!(m.keys().collect::<Vec<_>>(), ["order-1", "order-2"]);
    assert_eq!(m.msg_id(), Some("7F0000010001FIXTURE0000000001"));
    // Every property that was sent is stored with its value; the broker adds its own.
    for (k, v) in &sent_props {
        assert_eq!(m.property(k), Some(v.as_str()), "{k}");
    }
    assert_eq!(m.property(property::CLUSTER), Some("DefaultCluster"));
    assert_eq!(m.property(property::MSG_REGION), Some("DefaultRegion"));
    assert_eq!(m.property(property::TRACE_ON), Some("true"));
    assert_eq!(m.properties.len(), sent_props.len() + 3);

    assert_eq!(m.queue_id, header.queue_id);
    assert_eq!(m.flag, header.flag);
    assert_eq!(m.sys_flag, header.sys_flag);
    assert_eq!(m.born_timestamp, header.born_timestamp);
    assert_eq!(m.queue_offset, 0);
    assert_eq!(m.commit_log_offset, 0);
    assert_eq!(m.reconsume_times, 0);
    assert_eq!(m.prepared_transaction_offset, 0);
    assert_eq!(m.body_crc, body_crc32(&m.body));
    assert_eq!(m.body_crc, 0x6E6F_1529);
    assert_eq!(
        m.born_host,
        "127.0.0.1:58992".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        m.store_host,
        "127.0.0.1:20961".parse::<SocketAddr>().unwrap()
    );
    assert!(m.store_timestamp >= m.born_timestamp);

    // The broker's offset id of the message is the one the send response carried.
    let resp = fixture(include_bytes!("data/send_v2_response.bin"));
    let offset_id = resp.ext_fields.get("msgId").unwrap();
    assert_eq!(m.offset_msg_id().to_string(), offset_id);
}

#[test]
fn stored_message_re_encodes_byte_for_byte() {
    let view = fixture(include_bytes!("data/view_message_response.bin"));
    let check = fixture(include_bytes!("data/check_transaction_request.bin"));
    for body in [&view.body, &check.body] {
        let msgs = decode_stored_messages(body).unwrap();
        let mut out = Vec::new();
        for m in &msgs {
            encode_stored_message(m, &mut out).unwrap();
        }
        assert_eq!(&out, body);
    }
}

#[test]
fn check_back_body_is_the_half_message() {
    let check = fixture(include_bytes!("data/check_transaction_request.bin"));
    let half_req = fixture(include_bytes!("data/send_half_request.bin"));
    let half_resp = fixture(include_bytes!("data/send_half_response.bin"));
    let msgs = decode_stored_messages(&check.body).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.body, half_req.body);
    assert_eq!(m.body, b"half");
    // The broker resets the topic to the real one and keeps it in REAL_TOPIC.
    assert_eq!(m.topic, "FixtureTxTopic");
    assert_eq!(m.property(property::REAL_TOPIC), Some("FixtureTxTopic"));
    assert_eq!(m.property(property::REAL_QUEUE_ID), Some("0"));
    assert_eq!(m.property(property::PRODUCER_GROUP), Some("FIXTURE_GROUP"));
    assert_eq!(m.property(property::TRANSACTION_PREPARED), Some("true"));
    assert_eq!(m.property(property::TRANSACTION_CHECK_TIMES), Some("1"));
    assert_eq!(
        m.msg_id(),
        half_resp.ext_fields.get("transactionId"),
        "UNIQ_KEY is the transaction id"
    );
    // The broker stores half messages with the transaction bits cleared (Java's
    // TransactionalMessageBridge does the same); TRAN_MSG says what it is.
    assert_eq!(
        sys_flag::transaction_value(m.sys_flag),
        sys_flag::TRANSACTION_NOT_TYPE
    );
    // The check header's offsets point at the re-stored copy, which is what the record says.
    assert_eq!(
        m.commit_log_offset.to_string(),
        check.ext_fields.get("commitLogOffset").unwrap()
    );
    assert_eq!(m.commit_log_offset, 1326);
    assert_eq!(m.body_crc, body_crc32(b"half"));
}

fn sample_ext(born: &str, store: &str, topic: &str) -> MessageExt {
    let mut m =
        decode_stored_messages(&fixture(include_bytes!("data/view_message_response.bin")).body)
            .unwrap()
            .remove(0);
    m.born_host = born.parse().unwrap();
    m.store_host = store.parse().unwrap();
    m.topic = topic.into();
    m.body = vec![7; 300];
    m.body_crc = body_crc32(&m.body);
    m.commit_log_offset = 1 << 33;
    m.queue_offset = 12;
    m
}

#[test]
fn stored_messages_ipv6_v2_and_several_records() {
    let long_topic = "T".repeat(200);
    let cases = [
        sample_ext("127.0.0.1:1", "10.0.0.2:10911", "a"),
        sample_ext("[fe80::1]:5000", "10.0.0.2:10911", "b"),
        sample_ext("127.0.0.1:1", "[2001:db8::7]:10911", "c"),
        sample_ext("[::1]:1", "[2001:db8::7]:10911", &long_topic),
    ];
    let mut body = Vec::new();
    for m in &cases {
        encode_stored_message(m, &mut body).unwrap();
    }
    let back = decode_stored_messages(&body).unwrap();
    assert_eq!(back.len(), cases.len());
    for (b, m) in back.iter().zip(&cases) {
        let mut expected = m.clone();
        expected.sys_flag = m.sys_flag
            | if m.born_host.is_ipv6() {
                sys_flag::BORNHOST_V6
            } else {
                0
            }
            | if m.store_host.is_ipv6() {
                sys_flag::STOREHOST_V6
            } else {
                0
            };
        assert_eq!(b, &expected);
    }
    // Offset ids of an IPv6 store host are 56 hex digits.
    assert_eq!(back[2].offset_msg_id().to_string().len(), 56);
    // The long topic used the V2 magic (2-byte topic length).
    let last_start = body.len() - {
        let mut one = Vec::new();
        encode_stored_message(&cases[3], &mut one).unwrap();
        one.len()
    };
    assert_eq!(
        &body[last_start + 4..last_start + 8],
        &MESSAGE_MAGIC_CODE_V2.to_be_bytes()
    );
}

#[test]
fn stored_message_garbage_is_an_error() {
    let view = fixture(include_bytes!("data/view_message_response.bin"));
    let body = &view.body;
    // Every truncation fails cleanly (except the empty body: no records).
    assert_eq!(decode_stored_messages(&[]).unwrap(), vec![]);
    for n in 1..body.len() {
        assert!(decode_stored_messages(&body[..n]).is_err(), "cut at {n}");
    }
    // Wrong magic.
    let mut b = body.clone();
    b[4] = 0;
    assert!(decode_stored_messages(&b).is_err());
    // A TOTALSIZE that disagrees with the fields.
    let mut b = body.clone();
    b.push(0);
    b[3] += 1;
    assert!(decode_stored_messages(&b).is_err());
    // Negative body length.
    let mut b = body.clone();
    b[84] = 0xFF;
    assert!(decode_stored_messages(&b).is_err());
}

#[test]
fn batch_body_matches_the_real_request() {
    let req = fixture(include_bytes!("data/send_batch_request.bin"));
    let entries = decode_batch(&req.body).unwrap();
    assert_eq!(entries.len(), 3);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.flag, 0);
        assert_eq!(e.body, format!("batch-{i}").as_bytes());
        assert_eq!(
            e.properties,
            props(&[
                ("UNIQ_KEY", &format!("7F0000010001FIXTUREB00000000{i}")),
                ("WAIT", "true")
            ])
        );
    }
    // The same messages encode to the same bytes.
    let msgs: Vec<Message> = (0..3)
        .map(|i| {
            Message::new("FixtureTopic", format!("batch-{i}"))
                .with_property("UNIQ_KEY", format!("7F0000010001FIXTUREB00000000{i}"))
                .with_property("WAIT", "true")
        })
        .collect();
    let mut out = Vec::new();
    encode_batch(&msgs, &mut out).unwrap();
    assert_eq!(out, req.body);

    // Flags, empty properties and binary bodies survive.
    let odd = [
        Message::new("t", vec![0u8, 255, 1]).with_flag(-3),
        Message::new("t", "x")
            .with_tags("a")
            .with_keys(["k1", "k2"]),
    ];
    let mut out = Vec::new();
    encode_batch(&odd, &mut out).unwrap();
    let back = decode_batch(&out).unwrap();
    assert_eq!(back[0].flag, -3);
    assert_eq!(back[0].body, [0, 255, 1]);
    assert!(back[0].properties.is_empty());
    assert_eq!(
        back[1].properties,
        props(&[("TAGS", "a"), ("KEYS", "k1 k2")])
    );
    let first_len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
    for n in 1..out.len() {
        if n == first_len {
            assert_eq!(decode_batch(&out[..n]).unwrap().len(), 1);
        } else {
            assert!(decode_batch(&out[..n]).is_err(), "cut at {n}");
        }
    }
    // Properties over 32767 bytes cannot be encoded; nothing is written.
    let big = [Message::new("t", "x").with_property("p", "v".repeat(40_000))];
    let mut out = vec![1, 2];
    assert!(encode_batch(&big, &mut out).is_err());
    assert_eq!(out, [1, 2]);
}

#[test]
fn offset_msg_id_of_real_ids() {
    let resp = fixture(include_bytes!("data/send_v2_response.bin"));
    let id = OffsetMessageId::parse(resp.ext_fields.get("msgId").unwrap()).unwrap();
    assert_eq!(
        id.store_host,
        "127.0.0.1:20961".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(id.commit_log_offset, 0);

    let half = fixture(include_bytes!("data/send_half_response.bin"));
    let id = OffsetMessageId::parse(half.ext_fields.get("msgId").unwrap()).unwrap();
    assert_eq!(id.commit_log_offset, 0x3D0);
    assert_eq!(id.to_string(), "7F000001000051E100000000000003D0");

    let batch = fixture(include_bytes!("data/send_batch_response.bin"));
    let offsets: Vec<i64> = batch
        .ext_fields
        .get("msgId")
        .unwrap()
        .split(',')
        .map(|s| OffsetMessageId::parse(s).unwrap().commit_log_offset)
        .collect();
    assert_eq!(offsets, [0x11B, 0x202, 0x2E9]);
    // 0x11B - 0 = 283 bytes: the size of the first stored message, the one viewed.
    let view = fixture(include_bytes!("data/view_message_response.bin"));
    assert_eq!(view.body.len(), 0x11B);
}

/// Reference values from Java's definition, `s[0]*31^(n-1) + s[1]*31^(n-2) + ... + s[n-1]` over
/// UTF-16 code units, in 32-bit two's complement.
#[test]
fn java_string_hash_code_reference_values() {
    // Empty string: the empty sum.
    assert_eq!(java_string_hash_code(""), 0);
    // 'a' = 97.
    assert_eq!(java_string_hash_code("a"), 97);
    // 'a'*31 + 'b' = 97*31 + 98 = 3007 + 98 = 3105.
    assert_eq!(java_string_hash_code("ab"), 3105);
    // "hello": 104 -> 104*31+101 = 3325 -> 3325*31+108 = 103183 -> 103183*31+108 = 3198781
    //          -> 3198781*31+111 = 99162322.
    assert_eq!(java_string_hash_code("hello"), 99_162_322);
    // Non-ASCII in the BMP: 'ü' is U+00FC = 252, one code unit.
    assert_eq!(java_string_hash_code("ü"), 252);
    // "grün": 103 -> 103*31+114 = 3307 -> 3307*31+252 = 102769 -> 102769*31+110 = 3185949.
    assert_eq!(java_string_hash_code("grün"), 3_185_949);
    // '✓' U+2713 = 10003 (3 bytes of UTF-8, one UTF-16 unit).
    assert_eq!(java_string_hash_code("✓"), 10_003);
    // "日本": U+65E5 = 26085, U+672C = 26412: 26085*31 + 26412 = 808635 + 26412 = 835047.
    assert_eq!(java_string_hash_code("日本"), 835_047);
    // Outside the BMP: '𝄞' U+1D11E is the surrogate pair D834 DD1E = 55348, 56606:
    // 55348*31 + 56606 = 1715788 + 56606 = 1772394 (not 0x1D11E = 119070).
    assert_eq!(java_string_hash_code("𝄞"), 1_772_394);
    // "a𝄞": 97*31^2 + 55348*31 + 56606 = 93217 + 1715788 + 56606 = 1865611.
    assert_eq!(java_string_hash_code("a𝄞"), 1_865_611);
    // Overflow wraps: "order-1":
    //   'o' 111 -> 111; 'r' 114 -> 3555; 'd' 100 -> 110305; 'e' 101 -> 3419556;
    //   'r' 114 -> 106006350; '-' 45 -> 106006350*31+45 = 3286196895, which is
    //   3286196895 - 2^32 = -1008770401 as an int; '1' 49 -> -1008770401*31+49 = -31271882382,
    //   + 8*2^32 = 3087855986, - 2^32 = -1207111310.
    assert_eq!(java_string_hash_code("order-1"), -1_207_111_310);
    // The well-known Java string whose hashCode is Integer.MIN_VALUE.
    assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
}

fn hex_field(id: &str, range: std::ops::Range<usize>) -> u64 {
    u64::from_str_radix(&id[range], 16).unwrap()
}

const NOV_2023: i64 = 1_698_796_800_000; // 2023-11-01T00:00:00Z

#[test]
fn uniq_key_layout() {
    let ip: IpAddr = "192.168.1.5".parse().unwrap();
    let g = UniqIdGenerator::with_hash(ip, 0x0001_3039, 0x1B6D_3586);
    assert_eq!(g.prefix(), "C0A8010530391B6D3586");
    let now = NOV_2023 + 3 * 86_400_000 + 1234; // Nov 4th, 00:00:01.234
    let id = g.next_id(now);
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    assert_eq!(hex_field(&id, 0..8), 0xC0A8_0105, "ip");
    assert_eq!(hex_field(&id, 8..12), 0x3039, "pid truncated to 16 bits");
    assert_eq!(hex_field(&id, 12..20), 0x1B6D_3586, "hash");
    assert_eq!(
        hex_field(&id, 20..28),
        3 * 86_400_000 + 1234,
        "ms since the start of the month"
    );
    assert_eq!(hex_field(&id, 28..32), 0, "counter starts at 0");
    let id2 = g.next_id(now);
    assert_eq!(&id2[..28], &id[..28]);
    assert_eq!(hex_field(&id2, 28..32), 1);

    // A new month starts the time field again (2023-12-01T00:00:00.005Z).
    let dec = g.next_id(NOV_2023 + 30 * 86_400_000 + 5);
    assert_eq!(hex_field(&dec, 20..28), 5);

    // write_id appends.
    let mut s = String::from("x");
    g.write_id(now, &mut s);
    assert_eq!(s.len(), 33);

    // IPv6: 16 address bytes, 56 characters.
    let g6 = UniqIdGenerator::with_hash("2001:db8::1".parse().unwrap(), 7, -1);
    let id6 = g6.next_id(now);
    assert_eq!(id6.len(), 56);
    assert_eq!(&id6[..32], "20010DB8000000000000000000000001");
    assert_eq!(&id6[32..44], "0007FFFFFFFF");
    assert_eq!(hex_field(&id6, 44..52), 3 * 86_400_000 + 1234);

    // The counter wraps at 16 bits.
    let g = UniqIdGenerator::with_hash(ip, 1, 2);
    for _ in 0..65_535 {
        g.next_id(now);
    }
    assert_eq!(&g.next_id(now)[28..], "FFFF");
    assert_eq!(&g.next_id(now)[28..], "0000");
}

#[test]
fn uniq_keys_are_unique_over_a_million() {
    let g = UniqIdGenerator::new("10.1.2.3".parse().unwrap(), std::process::id());
    let mut seen = HashSet::with_capacity(1_000_000);
    let mut id = String::with_capacity(32);
    // A million ids at 1000 per millisecond (fewer than 65536 per ms, the counter's period),
    // across a month boundary.
    let start = NOV_2023 + 30 * 86_400_000 - 500;
    for i in 0..1_000_000i64 {
        id.clear();
        g.write_id(start + i / 1000, &mut id);
        assert_eq!(id.len(), 32);
        // 16 bytes fit a u128 exactly.
        assert!(seen.insert(u128::from_str_radix(&id, 16).unwrap()), "{id}");
    }
    assert_eq!(seen.len(), 1_000_000);
}

#[test]
fn uniq_keys_unique_across_threads() {
    let g = Arc::new(UniqIdGenerator::with_hash(
        "10.1.2.3".parse().unwrap(),
        1,
        2,
    ));
    // 4 threads x 16000 ids at one fixed instant: only the shared atomic counter separates them.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let g = Arc::clone(&g);
            std::thread::spawn(move || (0..16_000).map(|_| g.next_id(NOV_2023)).collect::<Vec<_>>())
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        for id in h.join().unwrap() {
            assert!(seen.insert(id));
        }
    }
    assert_eq!(seen.len(), 64_000);
}

#[test]
fn generator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<UniqIdGenerator>();
}

#[test]
fn sys_flag_helpers() {
    assert_eq!(
        sys_flag::reset_transaction_value(
            sys_flag::TRANSACTION_PREPARED | 0x301,
            sys_flag::TRANSACTION_COMMIT
        ),
        sys_flag::TRANSACTION_COMMIT | 0x301
    );
    assert_eq!(
        sys_flag::transaction_value(0x30D),
        sys_flag::TRANSACTION_ROLLBACK
    );
    assert_eq!(sys_flag::compression_type(0x301), 3);
    assert_eq!(sys_flag::compression_type(0x1), 0);
}

#[test]
fn message_properties_string_is_the_send_header_value() {
    let msg = Message::new("t", "b")
        .with_property("UNIQ_KEY", "U")
        .with_tags("TagA");
    assert_eq!(
        message_properties_string(&msg),
        "UNIQ_KEY\u{1}U\u{2}TAGS\u{1}TagA\u{2}"
    );
}
