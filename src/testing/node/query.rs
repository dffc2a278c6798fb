//! Reading the store back: VIEW_MESSAGE_BY_ID, QUERY_MESSAGE and GET_MAX_OFFSET.

use super::{now_ms, response, BrokerCore};
use crate::protocol::header::{
    CommandHeader, GetMaxOffsetRequestHeader, ViewMessageByIdRequestHeader,
};
use crate::protocol::message_codec;
use crate::protocol::{RemotingCommand, ResponseCode};

impl BrokerCore {
    pub(super) fn handle_view(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match ViewMessageByIdRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let msg = store
            .log
            .binary_search_by_key(&header.offset, |r| r.commit_log_offset)
            .ok()
            .map(|i| store.log[i].to_message(self.store_addr()))
            .or_else(|| store.half_records.get(&header.offset).cloned());
        drop(store);
        let Some(msg) = msg else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                &format!("can not find message by the offset, {}", header.offset),
            );
        };
        let mut body = Vec::new();
        if let Err(e) = message_codec::encode_stored_message(&msg, &mut body) {
            return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string());
        }
        RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body)
    }

    /// QUERY_MESSAGE: stored messages of a topic by `UNIQ_KEY` (`_UNIQUE_KEY_QUERY=true`) or by
    /// one of their `KEYS`, within a store-time range.
    pub(super) fn handle_query(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let f = &request.ext_fields;
        let parsed = (|| {
            Ok::<_, crate::protocol::CodecError>((
                f.required("topic")?.to_string(),
                f.required("key")?.to_string(),
                f.required_i32("maxNum")?,
                f.required_i64("beginTimestamp")?,
                f.required_i64("endTimestamp")?,
            ))
        })();
        let (topic, key, max, begin, end) = match parsed {
            Ok(p) => p,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let unique = f.optional_bool("_UNIQUE_KEY_QUERY").unwrap_or(false);
        let store = self.store.lock();
        let mut body = Vec::new();
        let mut found = 0;
        let hits = store
            .log
            .iter()
            .filter(|r| *r.topic == *topic && (begin..=end).contains(&r.store_timestamp))
            .map(|r| r.to_message(self.store_addr()))
            .filter(|m| {
                if unique {
                    m.msg_id() == Some(key.as_str())
                } else {
                    m.keys().any(|k| k == key)
                }
            });
        for m in hits {
            if found >= max.max(1) {
                break;
            }
            if let Err(e) = message_codec::encode_stored_message(&m, &mut body) {
                return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string());
            }
            found += 1;
        }
        if found == 0 {
            return response(
                ResponseCode::QUERY_NOT_FOUND,
                opaque,
                "can not find message, maybe time range not correct",
            );
        }
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque).with_body(body);
        r.ext_fields
            .insert("indexLastUpdateTimestamp", now_ms().to_string());
        r.ext_fields.insert(
            "indexLastUpdatePhyoffset",
            store.next_commit_offset.to_string(),
        );
        r
    }

    pub(super) fn handle_max_offset(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match GetMaxOffsetRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let store = self.store.lock();
        let offset = store
            .queue_offsets
            .get(&header.topic)
            .and_then(|q| q.get(&header.queue_id))
            .copied()
            .unwrap_or(0);
        let mut r = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        r.ext_fields.insert("offset", offset.to_string());
        r
    }
}
