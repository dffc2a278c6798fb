//! Broker requests: send, heartbeat, unregister; and the mapping of send responses.

use crate::error::{Error, Result};
use crate::message::{IdStr, MessageQueue, SendResult, SendStatus};
use crate::producer::prepare::Prepared;
use crate::protocol::acl::{Credentials, SignatureText};
use crate::protocol::codes::{CLIENT_LANGUAGE, CLIENT_VERSION};
use crate::protocol::frame::{int_digits, write_int, write_json_str, MAX_HEADER_LEN};
use crate::protocol::header::{
    CommandHeader, SendMessageRequestHeader, UnregisterClientRequestHeader,
};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::{CodecError, RemotingCommand, RequestCode, SerializeType};
use crate::remoting::FrameSpec;

/// The parts of a send request that come from the producer's settings.
#[derive(Debug, Clone)]
pub(crate) struct SendDefaults {
    pub(crate) group: String,
    pub(crate) create_topic_key: String,
    pub(crate) default_topic_queue_nums: i32,
}

/// Builds the SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) request of one attempt.
pub(crate) fn send_request(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
) -> RemotingCommand {
    let mut request = RemotingCommand::request(prepared.request_code());
    let header = SendMessageRequestHeader {
        producer_group: defaults.group.clone(),
        topic: prepared.wire_topic().to_string(),
        default_topic: defaults.create_topic_key.clone(),
        default_topic_queue_nums: defaults.default_topic_queue_nums,
        queue_id: queue.queue_id(),
        sys_flag: prepared.sys_flag,
        born_timestamp,
        flag: prepared.flag,
        properties: prepared.properties.as_str().to_string(),
        reconsume_times: Some(0),
        unit_mode: false,
        batch: prepared.batch,
        max_reconsume_times: None,
        broker_name: Some(queue.broker_name().to_string()),
    };
    header.write_v2(&mut request.ext_fields);
    request.body = prepared.wire_body().to_vec();
    request
}

/// Appends the whole SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) frame of one attempt to `out`:
/// byte for byte what [`send_request`] encodes to, but written straight from `prepared`, with
/// no intermediate command, header strings or body copy. A binary-header client goes through
/// [`send_request`].
///
/// With credentials in `spec`, the request is signed as [`Credentials::sign`] would sign the
/// command: the signature is computed from the values this function writes (in key order),
/// then `AccessKey`, `SecurityToken` and `Signature` are written before `a`.
pub(crate) fn encode_send_frame(
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
    spec: FrameSpec<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    if spec.serialize_type != SerializeType::Json {
        let mut request = send_request(prepared, queue, defaults, born_timestamp);
        request.opaque = spec.opaque;
        request.flag = spec.flag;
        request.serialize_type = spec.serialize_type;
        if let Some(credentials) = spec.credentials {
            credentials.sign(&mut request.ext_fields, &request.body);
        }
        return request.encode(out).map_err(Error::from);
    }
    let code = prepared.request_code();
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    // The keys in the order RemotingCommand's JSON header writes them (sorted, as fastjson).
    out.extend_from_slice(b"{\"code\":");
    write_int(out, code.into());
    out.extend_from_slice(b",\"extFields\":{");
    if let Some(credentials) = spec.credentials {
        let signature = send_signature(credentials, prepared, queue, defaults, born_timestamp);
        out.extend_from_slice(b"\"AccessKey\":");
        write_json_str(out, credentials.access_key());
        if let Some(token) = credentials.security_token() {
            out.extend_from_slice(b",\"SecurityToken\":");
            write_json_str(out, token.expose());
        }
        out.extend_from_slice(b",\"Signature\":");
        write_json_str(out, signature.as_str());
        out.push(b',');
    }
    out.extend_from_slice(b"\"a\":");
    write_json_str(out, &defaults.group);
    out.extend_from_slice(b",\"b\":");
    write_json_str(out, prepared.wire_topic());
    out.extend_from_slice(b",\"c\":");
    write_json_str(out, &defaults.create_topic_key);
    for (key, v) in [
        (
            &b",\"d\":\""[..],
            i64::from(defaults.default_topic_queue_nums),
        ),
        (b"\",\"e\":\"", queue.queue_id().into()),
        (b"\",\"f\":\"", prepared.sys_flag.into()),
        (b"\",\"g\":\"", born_timestamp),
        (b"\",\"h\":\"", prepared.flag.into()),
    ] {
        out.extend_from_slice(key);
        write_int(out, v);
    }
    out.extend_from_slice(b"\",\"i\":");
    write_json_str(out, prepared.properties.as_str());
    out.extend_from_slice(b",\"j\":\"0\",\"k\":\"false\",\"m\":");
    out.extend_from_slice(if prepared.batch {
        b"\"true\""
    } else {
        b"\"false\""
    });
    if !queue.broker_name().is_empty() {
        out.extend_from_slice(b",\"n\":");
        write_json_str(out, queue.broker_name());
    }
    out.extend_from_slice(b"},\"flag\":");
    write_int(out, spec.flag.into());
    out.extend_from_slice(b",\"language\":");
    write_json_str(out, CLIENT_LANGUAGE.name());
    out.extend_from_slice(b",\"opaque\":");
    write_int(out, spec.opaque.into());
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    write_int(out, CLIENT_VERSION.into());
    out.push(b'}');
    let header_len = out.len() - start - 8;
    if header_len > MAX_HEADER_LEN {
        out.truncate(start);
        return Err(Error::Protocol(CodecError::HeaderTooLarge(header_len)));
    }
    out.extend_from_slice(prepared.wire_body());
    let total = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&(header_len as u32).to_be_bytes());
    Ok(())
}

/// The signature of the send request [`encode_send_frame`] writes: the values of its ext
/// fields in key order (`AccessKey`, `SecurityToken`, then `a` to `n`), then the body, as
/// [`send_request`] signed by [`Credentials::sign`] would have it.
fn send_signature(
    credentials: &Credentials,
    prepared: &Prepared,
    queue: &MessageQueue,
    defaults: &SendDefaults,
    born_timestamp: i64,
) -> SignatureText {
    let mut signer = credentials.signer();
    signer.update(credentials.access_key().as_bytes());
    if let Some(token) = credentials.security_token() {
        signer.update(token.expose().as_bytes());
    }
    signer.update(defaults.group.as_bytes());
    signer.update(prepared.wire_topic().as_bytes());
    signer.update(defaults.create_topic_key.as_bytes());
    let mut buf = [0u8; 20];
    for v in [
        i64::from(defaults.default_topic_queue_nums),
        queue.queue_id().into(),
        prepared.sys_flag.into(),
        born_timestamp,
        prepared.flag.into(),
    ] {
        if v < 0 {
            signer.update(b"-");
        }
        signer.update(int_digits(&mut buf, v));
    }
    signer.update(prepared.properties.as_str().as_bytes());
    signer.update(b"0"); // j: reconsume times
    signer.update(b"false"); // k: unit mode
    signer.update(if prepared.batch { b"true" } else { b"false" }); // m: batch
    signer.update(queue.broker_name().as_bytes()); // n (nothing when empty and left out)
    signer.update(prepared.wire_body());
    signer.finish()
}

/// Maps a send response: the four "stored" codes become a [`SendResult`], anything else a
/// [`Error::Broker`].
pub(crate) fn send_result(
    response: RemotingCommand,
    prepared: &Prepared,
    queue: &MessageQueue,
    addr: &str,
) -> Result<SendResult> {
    let Some(status) = SendStatus::from_response_code(response.code) else {
        return Err(Error::from_response(response.code, response.remark, addr));
    };
    // The fields of a `SendMessageResponseHeader`, read in place: the ids go straight into
    // inline `IdStr`s, so building the result allocates nothing.
    let fields = &response.ext_fields;
    let offset_msg_id = IdStr::new(fields.required("msgId")?);
    let queue_id = fields.required_i32("queueId")?;
    let queue_offset = fields.required_i64("queueOffset")?;
    let present = |key: &str| fields.get(key).filter(|v| !v.is_empty());
    let msg_id = match present("batchUniqId") {
        Some(id) if prepared.batch => IdStr::new(id),
        _ => IdStr::new(&prepared.msg_id),
    };
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id,
        // The queue sent to is the queue stored in, unless the broker picked another one (or
        // a namespace makes the names differ): then a new one.
        queue: if queue.queue_id() == queue_id && queue.topic() == prepared.topic {
            queue.clone()
        } else {
            MessageQueue::new(
                prepared.topic.as_str(),
                queue.broker_name_arc().clone(),
                queue_id,
            )
        },
        queue_offset,
        transaction_id: present("transactionId").map(IdStr::new),
        region_id: present("MSG_REGION").map(IdStr::new),
        trace_on: fields.optional_bool("TRACE_ON").unwrap_or(true),
    })
}

/// The HEART_BEAT request for `client_id` with these producer groups.
pub(crate) fn heartbeat_request(client_id: &str, groups: &[String]) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.to_string(),
        producer_groups: groups.to_vec(),
        consumer_groups: Vec::new(),
    };
    RemotingCommand::request(RequestCode::HEART_BEAT).with_body(data.to_json())
}

/// The UNREGISTER_CLIENT request for one producer group.
pub(crate) fn unregister_request(client_id: &str, group: &str) -> RemotingCommand {
    let mut request = RemotingCommand::request(RequestCode::UNREGISTER_CLIENT);
    UnregisterClientRequestHeader {
        client_id: client_id.to_string(),
        producer_group: Some(group.to_string()),
        consumer_group: None,
    }
    .write_to(&mut request.ext_fields);
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProducerConfig;
    use crate::message::Message;
    use crate::producer::prepare;
    use crate::protocol::frame::FLAG_ONEWAY;

    fn defaults() -> SendDefaults {
        SendDefaults {
            group: "GID_\"quoted\"_✓".into(),
            create_topic_key: "TBW102".into(),
            default_topic_queue_nums: 4,
        }
    }

    /// The direct encoder writes exactly the bytes the command path writes.
    #[test]
    fn direct_frame_equals_the_command_frame() {
        let config = ProducerConfig::builder("g")
            .name_server("127.0.0.1:9876")
            .build()
            .unwrap();
        let single = Message::new("T_1", vec![0u8, 1, 2, 255])
            .with_tags("a\"b\\c")
            .with_keys(["k1", "k2"])
            .with_property("p", "grün ✓ 𝄞 \u{7}\n");
        let mut id = 0;
        let mut next = || {
            id += 1;
            crate::message::IdStr::from(format!("ID{id}"))
        };
        let prepared = [
            prepare::prepare_single(single.clone(), &config, &mut next).unwrap(),
            prepare::prepare_single(Message::new("T", vec![b'x'; 5000]), &config, &mut next)
                .unwrap(),
            prepare::prepare_batch(vec![single.clone(), single], &config, &mut next).unwrap(),
        ];
        let queues = [
            MessageQueue::new("T", "broker-a", 3),
            MessageQueue::new("T", "", -1),
            MessageQueue::new("T", "b\"x", i32::MAX),
        ];
        let creds = [
            None,
            Some(Credentials::new("ak", "sk")),
            Some(
                Credentials::new("ak\"✓", "sk-2")
                    .with_security_token("tok")
                    .with_algorithm(crate::protocol::acl::SignatureAlgorithm::HmacSha256),
            ),
        ];
        for p in &prepared {
            for q in &queues {
                for (opaque, flag) in [(0, 0), (-7, FLAG_ONEWAY), (i32::MAX, 0)] {
                    for c in &creds {
                        let born = 1_795_468_920_976;
                        let mut expected = send_request(p, q, &defaults(), born);
                        expected.opaque = opaque;
                        expected.flag = flag;
                        if let Some(c) = c {
                            c.sign(&mut expected.ext_fields, &expected.body);
                        }
                        let expected_cmd = expected.clone();
                        let expected = expected.to_frame().unwrap();
                        let mut got = vec![9u8; 3]; // appends after what is there
                        let spec = FrameSpec {
                            opaque,
                            flag,
                            serialize_type: SerializeType::Json,
                            credentials: c.as_ref(),
                        };
                        encode_send_frame(p, q, &defaults(), born, spec, &mut got).unwrap();
                        assert_eq!(&got[..3], &[9, 9, 9]);
                        assert_eq!(
                            String::from_utf8_lossy(&got[3..]),
                            String::from_utf8_lossy(&expected)
                        );
                        assert_eq!(got[3..], expected[..]);
                        // The binary layout goes through the command, signed the same way.
                        let spec = FrameSpec {
                            serialize_type: SerializeType::RocketMq,
                            ..spec
                        };
                        let mut bin = Vec::new();
                        encode_send_frame(p, q, &defaults(), born, spec, &mut bin).unwrap();
                        let decoded = RemotingCommand::decode(&bin).unwrap();
                        assert_eq!(decoded.serialize_type, SerializeType::RocketMq);
                        assert_eq!((decoded.opaque, decoded.flag), (opaque, flag));
                        assert_eq!(decoded.body, p.wire_body());
                        assert_eq!(
                            decoded.ext_fields.get(crate::protocol::acl::SIGNATURE),
                            expected_cmd.ext_fields.get(crate::protocol::acl::SIGNATURE)
                        );
                        // What a broker checks: the decoded fields and body verify.
                        if let Some(c) = c {
                            for cmd in [&decoded, &RemotingCommand::decode(&got[3..]).unwrap()] {
                                let sig = crate::protocol::acl::signature(
                                    c.algorithm(),
                                    c.secret_key().expose(),
                                    cmd.ext_fields.iter(),
                                    &cmd.body,
                                );
                                assert_eq!(
                                    cmd.ext_fields.get(crate::protocol::acl::SIGNATURE),
                                    Some(sig.as_str())
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
