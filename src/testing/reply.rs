//! What a mock node answers a request with, as handed to the server that writes it: a
//! [`Reply`], either a command or a successful send's response pre-encoded for the hot path.

use crate::protocol::codes::{CLIENT_LANGUAGE, CLIENT_VERSION};
use crate::protocol::frame::{int_digits, write_int, write_json_str};
use crate::protocol::{ExtFields, RemotingCommand, ResponseCode};

/// What a handler answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Cmd(RemotingCommand),
    SendOk(SendOk),
}

impl Reply {
    pub(crate) fn into_command(self) -> RemotingCommand {
        match self {
            Reply::Cmd(c) => c,
            Reply::SendOk(ok) => ok.command(),
        }
    }

    /// Appends the response frame.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), crate::protocol::CodecError> {
        match self {
            Reply::Cmd(c) => c.encode(out),
            Reply::SendOk(ok) => {
                ok.encode(out);
                Ok(())
            }
        }
    }
}

impl From<RemotingCommand> for Reply {
    fn from(c: RemotingCommand) -> Reply {
        Reply::Cmd(c)
    }
}

/// A successful send's response, written straight into the output buffer (the hot path of a
/// pipelined benchmark); [`SendOk::command`] builds the same response as a command.
#[derive(Debug, Clone)]
pub(crate) struct SendOk {
    pub(super) opaque: i32,
    pub(super) msg_ids: String,
    pub(super) queue_id: i32,
    pub(super) queue_offset: i64,
    pub(super) transaction_id: Option<String>,
}

impl SendOk {
    pub(crate) fn command(&self) -> RemotingCommand {
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, self.opaque);
        // In key order, so every insert appends.
        let mut f = ExtFields::with_capacity(6);
        f.insert("MSG_REGION", "DefaultRegion");
        f.insert("TRACE_ON", "true");
        f.insert("msgId", &self.msg_ids);
        f.insert_int("queueId", self.queue_id.into());
        f.insert_int("queueOffset", self.queue_offset);
        if let Some(tx) = &self.transaction_id {
            f.insert("transactionId", tx);
        }
        r.ext_fields = f;
        r
    }

    /// Appends the frame [`SendOk::command`] encodes to (JSON header), byte for byte.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        encode_send_ok(
            out,
            self.opaque,
            &self.msg_ids,
            self.queue_id,
            self.queue_offset,
            self.transaction_id.as_deref(),
        );
    }
}

/// Appends the frame of a successful send's response (JSON header), byte for byte what
/// [`SendOk::command`] encodes to, from borrowed parts (the fast path builds no `SendOk`).
pub(crate) fn encode_send_ok(
    out: &mut Vec<u8>,
    opaque: i32,
    msg_ids: &str,
    queue_id: i32,
    queue_offset: i64,
    transaction_id: Option<&str>,
) {
    encode_send_ok_with(
        out,
        opaque,
        |out| write_json_str(out, msg_ids),
        queue_id,
        queue_offset,
        transaction_id,
        false,
    );
}

/// The constant parts of a send-ok header around the opaque: `},"flag":1,"language":"RUST",
/// "opaque":` and `,"serializeTypeCurrentRPC":"JSON","version":401}`, built once.
fn send_ok_tail() -> &'static (Vec<u8>, Vec<u8>) {
    static TAIL: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    TAIL.get_or_init(|| {
        let mut before = b"},\"flag\":1,\"language\":".to_vec();
        write_json_str(&mut before, CLIENT_LANGUAGE.name());
        before.extend_from_slice(b",\"opaque\":");
        let mut after = b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":".to_vec();
        write_int(&mut after, CLIENT_VERSION.into());
        after.push(b'}');
        (before, after)
    })
}

/// [`encode_send_ok`] with the `msgId` value written by `write_msg_id` (a JSON string, quotes
/// and all): the fast path writes an offset id's hex digits without a look for escapes, and,
/// if `tx_plain`, the transaction id as it is (the caller knows it has nothing to escape: no
/// quote, backslash or control character).
pub(crate) fn encode_send_ok_with(
    out: &mut Vec<u8>,
    opaque: i32,
    write_msg_id: impl FnOnce(&mut Vec<u8>),
    queue_id: i32,
    queue_offset: i64,
    transaction_id: Option<&str>,
    tx_plain: bool,
) {
    let (before_opaque, after_opaque) = send_ok_tail();
    out.reserve(256);
    let start = out.len();
    out.extend_from_slice(
        b"\0\0\0\0\0\0\0\0{\"code\":0,\"extFields\":{\"MSG_REGION\":\"DefaultRegion\",\"TRACE_ON\":\"true\",\"msgId\":",
    );
    write_msg_id(out);
    out.extend_from_slice(b",\"queueId\":\"");
    write_small_int(out, queue_id.into());
    out.extend_from_slice(b"\",\"queueOffset\":\"");
    write_small_int(out, queue_offset);
    out.push(b'"');
    if let Some(tx) = transaction_id {
        if tx_plain {
            out.extend_from_slice(b",\"transactionId\":\"");
            out.extend_from_slice(tx.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(b",\"transactionId\":");
            write_json_str(out, tx);
        }
    }
    out.extend_from_slice(before_opaque);
    write_int(out, opaque.into());
    out.extend_from_slice(after_opaque);
    let header_len = (out.len() - start - 8) as u32;
    let total = header_len + 4;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&header_len.to_be_bytes());
}

/// Appends the frame of a successful send's response with a binary (ROCKETMQ) header, byte for
/// byte what [`SendOk::command`] encodes to with that serialize type: the fixed fields, no
/// remark, then the ext fields in key order (an empty value left out, as the encoder does).
pub(crate) fn encode_send_ok_binary(
    out: &mut Vec<u8>,
    opaque: i32,
    msg_id: &[u8],
    queue_id: i32,
    queue_offset: i64,
    transaction_id: Option<&str>,
) {
    fn field(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        if value.is_empty() {
            return;
        }
        // Keys are constants (short); a value over 4 GiB cannot reach here (frames are far
        // smaller).
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.reserve(192);
    let start = out.len();
    // Length and serialize type + header length, filled in at the end; code 0 (i16), the
    // language byte, the version (i16), opaque, flag 1 (response), remark length 0.
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, CLIENT_LANGUAGE.0]);
    out.extend_from_slice(&(CLIENT_VERSION as i16).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    let map_at = out.len();
    out.extend_from_slice(
        b"\0\0\0\0\0\x0aMSG_REGION\0\0\0\x0dDefaultRegion\0\x08TRACE_ON\0\0\0\x04true",
    );
    field(out, b"msgId", msg_id);
    let mut digits = [0u8; 20];
    field(out, b"queueId", int_text(&mut digits, queue_id.into()));
    field(out, b"queueOffset", int_text(&mut digits, queue_offset));
    if let Some(tx) = transaction_id {
        field(out, b"transactionId", tx.as_bytes());
    }
    let map_len = (out.len() - map_at - 4) as u32;
    out[map_at..map_at + 4].copy_from_slice(&map_len.to_be_bytes());
    let header_len = (out.len() - start - 8) as u32;
    out[start..start + 4].copy_from_slice(&(header_len + 4).to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&(1 << 24 | header_len).to_be_bytes());
}

/// `write_int`, a single digit (a queue id, mostly) without its machinery.
#[inline(always)]
fn write_small_int(out: &mut Vec<u8>, v: i64) {
    match u8::try_from(v) {
        Ok(d @ 0..=9) => out.push(b'0' + d),
        _ => write_int(out, v),
    }
}

/// `v` in decimal, as `write_int` writes it, into `buf`.
fn int_text(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let mut tmp = [0u8; 20];
    let digits = int_digits(&mut tmp, v);
    let mut n = 0;
    if v < 0 {
        buf[0] = b'-';
        n = 1;
    }
    // At most 19 digits with a sign: 20 bytes.
    let len = digits.len().min(20 - n);
    buf[n..n + len].copy_from_slice(&digits[..len]);
    &buf[..n + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_ok_fast_encoding_is_the_generic_encoding() {
        for (tx, ids) in [
            (None, "7F000001000051E10000000000000000,7F00"),
            (Some("7F0000010001FIXTURE0000000001"), "7F000001000051E1"),
            (Some("q\"uo\\te ✓ \u{1}"), "an \"odd\" id\n"),
        ] {
            for (opaque, queue, offset) in [
                (0, 0, 0),
                (i32::MAX, 7, i64::MAX),
                (i32::MIN, i32::MIN, i64::MIN),
                (-5, -1, -9),
                (10, 100, 1_000_000),
            ] {
                let ok = SendOk {
                    opaque,
                    msg_ids: ids.into(),
                    queue_id: queue,
                    queue_offset: offset,
                    transaction_id: tx.map(str::to_string),
                };
                let mut fast = vec![1, 2, 3];
                ok.encode(&mut fast);
                let mut generic = vec![1, 2, 3];
                ok.command().encode(&mut generic).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&generic)
                );
                assert_eq!(fast, generic);
                let mut fast = vec![1, 2, 3];
                encode_send_ok_binary(&mut fast, opaque, ids.as_bytes(), queue, offset, tx);
                let mut generic = vec![1, 2, 3];
                let mut cmd = ok.command();
                cmd.serialize_type = crate::protocol::SerializeType::RocketMq;
                cmd.encode(&mut generic).unwrap();
                assert_eq!(fast, generic, "binary");
            }
        }
        // Empty values are left out, as the encoder leaves them out.
        let ok = SendOk {
            opaque: 1,
            msg_ids: String::new(),
            queue_id: 0,
            queue_offset: 0,
            transaction_id: Some(String::new()),
        };
        let mut fast = vec![];
        encode_send_ok_binary(&mut fast, 1, b"", 0, 0, Some(""));
        let mut cmd = ok.command();
        cmd.serialize_type = crate::protocol::SerializeType::RocketMq;
        assert_eq!(fast, cmd.to_frame().unwrap(), "empty values");
    }
}
