//! The brokers' check-backs: CHECK_TRANSACTION_STATE decoded, filtered and queued without
//! blocking, then answered on a check thread with a new END_TRANSACTION.

use std::sync::atomic::Ordering;

use crossbeam_channel::TrySendError;

use super::lifecycle::Core;
use super::listener::guarded;
use super::send::end_request;
use crate::error::Error;
use crate::message::{property, MessageExt};
use crate::producer::hooks::EndMessage;
use crate::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
};
use crate::protocol::message_codec::decode_stored_messages_with;
use crate::protocol::RemotingCommand;

/// A check-back waiting for a check thread.
pub(super) struct CheckJob {
    pub(super) addr: String,
    pub(super) header: CheckTransactionStateRequestHeader,
    pub(super) msg: MessageExt,
}

impl Core {
    /// The CHECK_TRANSACTION_STATE hook, on a callback thread: decode, filter, queue. Never
    /// blocks.
    pub(super) fn on_check(&self, addr: &str, request: RemotingCommand) {
        let header = match CheckTransactionStateRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return self.ignore_check(addr, &format!("bad header: {e}")),
        };
        // The listener gets the body as the producer sent it: inflated, up to the maximum
        // message size.
        let msg = match decode_stored_messages_with(&request.body, Some(self.max_body)) {
            Ok(mut msgs) if !msgs.is_empty() => msgs.swap_remove(0),
            Ok(_) => return self.ignore_check(addr, "no message in the body"),
            Err(e) => return self.ignore_check(addr, &format!("bad body: {e}")),
        };
        if msg.property(property::PRODUCER_GROUP) != Some(self.group.as_str()) {
            let group = msg.property(property::PRODUCER_GROUP).unwrap_or("(none)");
            return self.ignore_check(addr, &format!("group {group} is not ours"));
        }
        let job = CheckJob {
            addr: addr.to_string(),
            header,
            msg,
        };
        let checks = self.checks.read();
        let Some(sender) = checks.as_ref() else {
            return self.ignore_check(addr, "shutting down");
        };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let n = self.stats.check_overflow.fetch_add(1, Ordering::Relaxed) + 1;
                // Logged at powers of two so a flood cannot flood the log.
                if n.is_power_of_two() {
                    log::warn!(
                        "transaction check queue full: dropped the check of {} from {addr} \
                         ({n} dropped so far); the broker will check again",
                        job.msg.msg_id().unwrap_or("?")
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.ignore_check(addr, "shutting down"),
        }
    }

    fn ignore_check(&self, addr: &str, why: &str) {
        self.stats.check_ignored.fetch_add(1, Ordering::Relaxed);
        log::debug!("ignored a transaction check from {addr}: {why}");
    }

    /// Answers one check-back, on a check thread: a new END_TRANSACTION to the address the check
    /// came from, with the check's offsets.
    pub(super) fn run_check(&self, job: CheckJob) {
        let CheckJob {
            addr,
            header,
            mut msg,
        } = job;
        // The listener sees the topic as the user names it, without the namespace.
        if let Some(inner) = self.inner.upgrade() {
            msg.topic = crate::producer::prepare::user_name(&msg.topic, &inner.config);
        }
        let transaction_id = msg
            .msg_id()
            .or(header.transaction_id.as_deref())
            .or(header.msg_id.as_deref())
            .unwrap_or_default()
            .to_string();
        self.records.checked(&transaction_id, &addr);
        let (state, remark) = guarded(
            || self.listener.check_local_transaction(&msg, &transaction_id),
            "checkLocalTransactionState Exception: ",
        );
        self.stats.checked.fetch_add(1, Ordering::Relaxed);
        self.stats.decided(state);
        let msg_id = match msg.msg_id() {
            Some(id) => id.to_string(),
            None => msg.offset_msg_id().to_string(),
        };
        // Kept for the send hooks only (no copy without them).
        let hooked = self.inner.upgrade().is_some_and(|i| i.hooks.is_some());
        let broker_transaction_id = if hooked {
            header.transaction_id.clone()
        } else {
            None
        };
        let end = EndTransactionRequestHeader {
            topic: header.topic,
            producer_group: self.group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: state.end_code(),
            from_transaction_check: true,
            msg_id,
            transaction_id: header.transaction_id,
            broker_name: header.broker_name,
        };
        let inner = self.inner.upgrade();
        let sent = match &inner {
            Some(inner) => inner
                .remoting
                .invoke_oneway(&addr, end_request(&end, remark)),
            None => Err(Error::Shutdown),
        };
        if let Some(hooks) = inner.as_ref().and_then(|i| i.hooks.as_ref()) {
            hooks.end_transaction(
                EndMessage::Stored(&msg),
                &end.msg_id,
                broker_transaction_id.as_deref(),
                Some(&addr),
                state,
                true,
                sent.as_ref().copied(),
            );
        }
        self.records.ended(&transaction_id, state, true, &sent);
        if let Err(e) = sent {
            self.stats.end_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "END_TRANSACTION {state:?} answering the check of {transaction_id} to {addr} \
                 could not be sent: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::{Arc, Weak};

    use parking_lot::{Mutex, RwLock};

    use super::*;
    use crate::message::Message;
    use crate::producer::transaction::counters::Counters;
    use crate::producer::transaction::workers::TxPool;
    use crate::producer::transaction::{
        ListenerResult, LocalTransactionState, TransactionListener,
    };
    use crate::protocol::message_codec::sys_flag;
    use crate::protocol::RequestCode;
    use crossbeam_channel::Receiver;

    struct Fixed(LocalTransactionState);

    impl TransactionListener for Fixed {
        fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
            Ok(self.0)
        }

        fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
            Ok(self.0)
        }
    }

    fn core(queue: usize) -> (Arc<Core>, Receiver<CheckJob>) {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let core = Arc::new(Core {
            group: "GID_OURS".into(),
            max_body: 1000,
            listener: Arc::new(Fixed(LocalTransactionState::CommitMessage)),
            inner: Weak::new(),
            stats: Counters::default(),
            checks: RwLock::new(Some(tx)),
            tx_pool: Mutex::new(TxPool::NotStarted),
            tx_threads: 1,
            records: Arc::new(crate::producer::transaction::RecordTable::new(
                10,
                std::time::Duration::from_secs(60),
            )),
        });
        (core, rx)
    }

    fn check_request(group: Option<&str>) -> RemotingCommand {
        check_request_with(group, b"body".to_vec(), sys_flag::TRANSACTION_PREPARED)
    }

    fn check_request_with(group: Option<&str>, body: Vec<u8>, flag: i32) -> RemotingCommand {
        let mut properties = vec![
            (
                "UNIQ_KEY".to_string(),
                "AC11000100002A9F0000000000000001".to_string(),
            ),
            ("TRAN_MSG".to_string(), "true".to_string()),
        ];
        if let Some(g) = group {
            properties.push(("PGROUP".to_string(), g.to_string()));
        }
        let msg = MessageExt {
            topic: "orders".into(),
            body,
            flag: 0,
            properties,
            queue_id: 1,
            queue_offset: 5,
            commit_log_offset: 4096,
            sys_flag: flag,
            born_timestamp: 1,
            born_host: "127.0.0.1:1234".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        };
        let mut body = Vec::new();
        crate::protocol::message_codec::encode_stored_message(&msg, &mut body).unwrap();
        let mut request =
            RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE).into_oneway();
        CheckTransactionStateRequestHeader {
            topic: Some("orders".into()),
            tran_state_table_offset: 77,
            commit_log_offset: 4096,
            msg_id: Some("AC11000100002A9F0000000000000001".into()),
            transaction_id: Some("AC11000100002A9F0000000000000001".into()),
            offset_msg_id: None,
            broker_name: Some("broker-a".into()),
        }
        .write_to(&mut request.ext_fields);
        request.body = body;
        request
    }

    #[test]
    fn checks_are_filtered_queued_and_overflow_counted() {
        let (core, rx) = core(1);
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OTHER")));
        core.on_check("127.0.0.1:10911", check_request(None));
        let mut garbage = check_request(Some("GID_OURS"));
        garbage.body = vec![0, 0, 0, 9, 1, 2];
        core.on_check("127.0.0.1:10911", garbage);
        let mut no_header = check_request(Some("GID_OURS"));
        no_header.ext_fields = Default::default();
        core.on_check("127.0.0.1:10911", no_header);
        assert_eq!(core.stats.snapshot().check_ignored, 4);
        assert!(rx.is_empty());

        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        let stats = core.stats.snapshot();
        assert_eq!((stats.check_overflow, stats.check_ignored), (1, 4));
        let job = rx.try_recv().unwrap();
        assert_eq!(job.addr, "127.0.0.1:10911");
        assert_eq!(job.header.tran_state_table_offset, 77);
        assert_eq!(job.msg.body, b"body");
        assert!(rx.is_empty());

        // Without a producer (gone), the answer cannot be sent: counted, no panic.
        core.run_check(job);
        let stats = core.stats.snapshot();
        assert_eq!(
            (stats.checked, stats.committed, stats.end_failed),
            (1, 1, 1)
        );

        // After shutdown began, checks are ignored.
        core.checks.write().take();
        core.on_check("127.0.0.1:10911", check_request(Some("GID_OURS")));
        assert_eq!(core.stats.snapshot().check_ignored, 5);
    }

    #[test]
    fn compressed_check_bodies_are_inflated_up_to_the_max_message_size() {
        use std::io::Write as _;
        let zlib = |data: &[u8]| {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let flag =
            sys_flag::TRANSACTION_PREPARED | sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB;
        let (core, rx) = core(4);
        // Exactly the limit (1000 bytes): inflated for the listener.
        let fits = vec![b'a'; 1000];
        core.on_check(
            "127.0.0.1:10911",
            check_request_with(Some("GID_OURS"), zlib(&fits), flag),
        );
        let job = rx.try_recv().unwrap();
        assert_eq!(job.msg.body, fits);
        // One byte over: not handed to the listener, counted and logged as a bad body.
        let over = vec![b'a'; 1001];
        core.on_check(
            "127.0.0.1:10911",
            check_request_with(Some("GID_OURS"), zlib(&over), flag),
        );
        assert!(rx.is_empty());
        assert_eq!(core.stats.snapshot().check_ignored, 1);
    }
}
