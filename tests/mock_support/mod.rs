//! A plain blocking-socket RocketMQ client for the MockBroker tests: the codec and `std::net`,
//! nothing of the producer or the remoting event loop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rocketmq_mio::protocol::header::{
    CommandHeader, EndTransactionRequestHeader, GetRouteInfoRequestHeader,
    SendMessageRequestHeader, SendMessageResponseHeader,
};
use rocketmq_mio::protocol::heartbeat::HeartbeatData;
use rocketmq_mio::protocol::message_codec::{self, sys_flag};
use rocketmq_mio::protocol::{FrameDecoder, RemotingCommand, RequestCode, ResponseCode};

/// Generous: only a broken mock ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Client {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    opaque: i32,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            stream,
            decoder: FrameDecoder::new(),
            opaque: 0,
        }
    }

    /// Writes `cmd` with the next opaque; returns the opaque.
    pub fn send(&mut self, mut cmd: RemotingCommand) -> i32 {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        self.stream.write_all(&cmd.to_frame().unwrap()).unwrap();
        self.opaque
    }

    /// The next frame, or the error that ended the stream.
    pub fn read(&mut self) -> Result<RemotingCommand, String> {
        let mut buf = [0u8; 8192];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(cmd)) => return Ok(cmd),
                Ok(None) => {}
                Err(e) => return Err(format!("decode: {e}")),
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("eof".into()),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) => return Err(format!("io: {e}")),
            }
        }
    }

    /// Sends `cmd` and reads its response.
    pub fn call(&mut self, cmd: RemotingCommand) -> RemotingCommand {
        let opaque = self.send(cmd);
        let r = self.read().unwrap();
        assert_eq!(r.opaque, opaque);
        assert!(r.is_response());
        r
    }

    /// Heartbeats for `group` as `client_id`.
    pub fn heartbeat(&mut self, client_id: &str, group: &str) -> RemotingCommand {
        let hb = RemotingCommand::request(RequestCode::HEART_BEAT)
            .with_body(HeartbeatData::for_producer(client_id, group).to_json());
        self.call(hb)
    }
}

pub fn route_request(topic: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    GetRouteInfoRequestHeader::new(topic).write_to(&mut req.ext_fields);
    req
}

pub fn send_header(topic: &str, queue: i32, properties: &str) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "GID_MOCK".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: queue,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 7,
        properties: properties.into(),
        reconsume_times: Some(0),
        unit_mode: false,
        batch: false,
        max_reconsume_times: None,
        broker_name: Some("broker-a".into()),
    }
}

pub fn send_v2(topic: &str, queue: i32, properties: &str, body: &[u8]) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
    send_header(topic, queue, properties).write_v2(&mut req.ext_fields);
    req.body = body.to_vec();
    req
}

pub fn props(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    message_codec::encode_properties(pairs.iter().copied(), &mut s);
    s
}

/// Sends a half message of `group` to `topic` queue 0 and returns the response header.
pub fn send_half(
    c: &mut Client,
    topic: &str,
    group: &str,
    uniq: &str,
) -> SendMessageResponseHeader {
    let p = props(&[("UNIQ_KEY", uniq), ("TRAN_MSG", "true"), ("PGROUP", group)]);
    let mut req = send_v2(topic, 0, &p, b"half");
    req.ext_fields
        .insert("f", sys_flag::TRANSACTION_PREPARED.to_string());
    let r = c.call(req);
    assert_eq!(r.code, ResponseCode::SUCCESS, "{}", r.remark_str());
    SendMessageResponseHeader::read_from(&r.ext_fields).unwrap()
}

/// END_TRANSACTION, oneway, as a producer sends it.
pub fn end_tx(
    topic: &str,
    group: &str,
    tran_state: i64,
    commit_offset: i64,
    decision: i32,
    from_check: bool,
    msg_id: &str,
) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::END_TRANSACTION).into_oneway();
    EndTransactionRequestHeader {
        topic: Some(topic.into()),
        producer_group: group.into(),
        tran_state_table_offset: tran_state,
        commit_log_offset: commit_offset,
        commit_or_rollback: decision,
        from_transaction_check: from_check,
        msg_id: msg_id.into(),
        transaction_id: Some(msg_id.into()),
        broker_name: Some("broker-a".into()),
    }
    .write_to(&mut req.ext_fields);
    req
}

/// Polls `cond` until it holds or `deadline` passes.
pub fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// A frame captured from a real broker (`tests/data/`), decoded.
pub fn fixture(name: &str) -> RemotingCommand {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", name]
        .iter()
        .collect();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RemotingCommand::decode(&bytes).unwrap()
}
