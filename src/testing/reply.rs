//! What a mock node answers a request with, as handed to the server that writes it: a
//! [`Reply`], either a command or a successful send's response pre-encoded for the hot path.

use crate::protocol::codes::{CLIENT_LANGUAGE, CLIENT_VERSION};
use crate::protocol::frame::{write_int, write_json_str};
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
/// and all): the fast path writes an offset id's hex digits without a look for escapes.
pub(crate) fn encode_send_ok_with(
    out: &mut Vec<u8>,
    opaque: i32,
    write_msg_id: impl FnOnce(&mut Vec<u8>),
    queue_id: i32,
    queue_offset: i64,
    transaction_id: Option<&str>,
) {
    let (before_opaque, after_opaque) = send_ok_tail();
    out.reserve(256);
    let start = out.len();
    out.extend_from_slice(
        b"\0\0\0\0\0\0\0\0{\"code\":0,\"extFields\":{\"MSG_REGION\":\"DefaultRegion\",\"TRACE_ON\":\"true\",\"msgId\":",
    );
    write_msg_id(out);
    out.extend_from_slice(b",\"queueId\":\"");
    write_int(out, queue_id.into());
    out.extend_from_slice(b"\",\"queueOffset\":\"");
    write_int(out, queue_offset);
    out.push(b'"');
    if let Some(tx) = transaction_id {
        out.extend_from_slice(b",\"transactionId\":");
        write_json_str(out, tx);
    }
    out.extend_from_slice(before_opaque);
    write_int(out, opaque.into());
    out.extend_from_slice(after_opaque);
    let header_len = (out.len() - start - 8) as u32;
    let total = header_len + 4;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&header_len.to_be_bytes());
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
            }
        }
    }
}
