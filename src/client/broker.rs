//! Broker requests: send, heartbeat, unregister; and the mapping of send responses.

use crate::error::{Error, Result};
use crate::message::{MessageQueue, SendResult, SendStatus};
use crate::producer::prepare::Prepared;
use crate::protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader,
    UnregisterClientRequestHeader,
};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::{RemotingCommand, RequestCode};

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
    let code = if prepared.batch {
        RequestCode::SEND_BATCH_MESSAGE
    } else {
        RequestCode::SEND_MESSAGE_V2
    };
    let mut request = RemotingCommand::request(code);
    let header = SendMessageRequestHeader {
        producer_group: defaults.group.clone(),
        topic: prepared.wire_topic.clone(),
        default_topic: defaults.create_topic_key.clone(),
        default_topic_queue_nums: defaults.default_topic_queue_nums,
        queue_id: queue.queue_id(),
        sys_flag: prepared.sys_flag,
        born_timestamp,
        flag: prepared.flag,
        properties: prepared.properties.clone(),
        reconsume_times: Some(0),
        unit_mode: false,
        batch: prepared.batch,
        max_reconsume_times: None,
        broker_name: Some(queue.broker_name().to_string()),
    };
    header.write_v2(&mut request.ext_fields);
    request.body = prepared.body.clone();
    request
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
        return Err(Error::Broker {
            code: response.code,
            remark: response.remark.unwrap_or_default(),
            addr: addr.to_string(),
        });
    };
    let header = SendMessageResponseHeader::read_from(&response.ext_fields)?;
    let msg_id = match &header.batch_uniq_id {
        Some(id) if prepared.batch && !id.is_empty() => id.clone(),
        _ => prepared.msg_id.clone(),
    };
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id: header.msg_id,
        queue: MessageQueue::new(
            prepared.topic.as_str(),
            queue.broker_name_arc().clone(),
            header.queue_id,
        ),
        queue_offset: header.queue_offset,
        transaction_id: header.transaction_id,
        region_id: header.region_id,
        trace_on: header.trace_on.unwrap_or(true),
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
