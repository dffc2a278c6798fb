//! Request-reply: SEND_REPLY_MESSAGE (324) and SEND_REPLY_MESSAGE_V2 (325) store the reply as
//! a send does and push it as PUSH_REPLY_MESSAGE_TO_CLIENT (326) to the connection whose
//! heartbeat registered the reply's `REPLY_TO_CLIENT` client id, as a real broker does
//! (`ReplyMessageProcessor`). The requester's answers to pushes are recorded.

use std::sync::{Arc, Weak};

use super::{now_ms, response, set_property, BrokerCore, Conn};
use crate::message::property;
use crate::protocol::message_codec;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::testing::records::ReplyPush;
use crate::testing::reply::Reply;

/// The push header fields (protocol.md §4.11) and where a send header (V2 or V1) has them.
const HEADER_FIELDS: [(&str, &str, &str); 9] = [
    ("producerGroup", "a", "producerGroup"),
    ("topic", "b", "topic"),
    ("defaultTopic", "c", "defaultTopic"),
    ("defaultTopicQueueNums", "d", "defaultTopicQueueNums"),
    ("sysFlag", "f", "sysFlag"),
    ("bornTimestamp", "g", "bornTimestamp"),
    ("flag", "h", "flag"),
    ("reconsumeTimes", "j", "reconsumeTimes"),
    ("unitMode", "k", "unitMode"),
];

impl BrokerCore {
    /// Remembers which connection heartbeats for `client_id` (where its replies are pushed).
    pub(super) fn register_client_conn(&self, client_id: &str, conn: &Arc<Conn>) {
        let mut store = self.store.lock();
        store
            .client_conns
            .insert(client_id.to_string(), Arc::downgrade(conn));
    }

    /// SEND_REPLY_MESSAGE(_V2): checks, stores like a send, pushes to the requester.
    pub(super) fn handle_send_reply(
        &self,
        conn: &Arc<Conn>,
        request: &mut RemotingCommand,
    ) -> Reply {
        let opaque = request.opaque;
        let fail = |remark: &str| {
            let mut r = response(ResponseCode::SYSTEM_ERROR, opaque, remark);
            r.ext_fields.insert("MSG_REGION", "DefaultRegion");
            r.ext_fields.insert("TRACE_ON", "true");
            Reply::Cmd(r)
        };
        let field = |v2: &str, v1: &str| {
            request
                .ext_fields
                .get(v2)
                .or_else(|| request.ext_fields.get(v1))
                .map(str::to_string)
        };
        let mut properties =
            message_codec::decode_properties(&field("i", "properties").unwrap_or_default());
        let Some(client_id) = properties
            .iter()
            .find(|(k, _)| k == property::REPLY_TO_CLIENT)
            .map(|(_, v)| v.clone())
        else {
            return fail("reply message properties[REPLY_TO_CLIENT] is null");
        };
        let target = self
            .store
            .lock()
            .client_conns
            .get(&client_id)
            .and_then(Weak::upgrade)
            .filter(|c| c.is_alive());
        let Some(target) = target else {
            return fail(&format!(
                "push reply message fail, session of <{client_id}> not found."
            ));
        };
        let header: Vec<(&str, Option<String>)> = HEADER_FIELDS
            .iter()
            .map(|(name, v2, v1)| (*name, field(v2, v1)))
            .collect();
        let body = request.body.clone();
        // Stored as a send is (checks, auto-create, stamps, offsets).
        let stored = self.handle_send(conn, request);
        let queue_id = match &stored {
            Reply::SendOk(ok) => ok.queue_id,
            Reply::Cmd(c) if c.code == ResponseCode::SUCCESS => c
                .ext_fields
                .get("queueId")
                .and_then(|q| q.parse().ok())
                .unwrap_or(0),
            Reply::Cmd(_) => return stored,
        };
        let mut push = RemotingCommand::request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT);
        push.opaque = rand::random::<i32>() & 0x3fff_ffff;
        for (name, value) in header {
            if let Some(v) = value {
                push.ext_fields.insert(name, &v);
            }
        }
        push.ext_fields.insert_int("queueId", queue_id.into());
        set_property(&mut properties, "PUSH_REPLY_TIME", now_ms().to_string());
        let mut props = String::new();
        message_codec::encode_properties(
            properties.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut props,
        );
        push.ext_fields.insert("properties", &props);
        push.ext_fields.insert("bornHost", conn.peer.to_string());
        push.ext_fields
            .insert("storeHost", self.store_addr().to_string());
        push.ext_fields.insert_int("storeTimestamp", now_ms());
        push.body = body;
        let correlation_id = properties
            .iter()
            .find(|(k, _)| k == property::CORRELATION_ID)
            .map(|(_, v)| v.clone());
        self.store.lock().reply_pushes.push(ReplyPush {
            client_id: client_id.clone(),
            correlation_id,
            opaque: push.opaque,
            answer: None,
            answer_remark: None,
        });
        if !target.send(&push) {
            return fail(&format!("push reply message to {client_id}fail."));
        }
        stored
    }

    /// A response from a client: the answer to a reply push, if it is one.
    pub(super) fn on_client_response(&self, response: &RemotingCommand) {
        let mut store = self.store.lock();
        if let Some(p) = store
            .reply_pushes
            .iter_mut()
            .rev()
            .find(|p| p.opaque == response.opaque && p.answer.is_none())
        {
            p.answer = Some(response.code);
            p.answer_remark = response.remark.clone();
        }
    }

    pub(crate) fn reply_pushes(&self) -> Vec<ReplyPush> {
        self.store.lock().reply_pushes.clone()
    }
}
