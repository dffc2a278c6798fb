//! The transactional send path after the half message is built: running the local
//! transaction (or rolling back a half message stored with a flush or slave problem) and
//! sending the decision as END_TRANSACTION, synchronously or on a transaction thread.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::lifecycle::Core;
use super::listener::guarded;
use super::workers::TxJob;
use super::{ListenerResult, LocalTransactionState, TransactionProducer, TransactionSendResult};
use crate::error::{Error, Result};
use crate::message::{property, IdStr, Message, SendResult, SendStatus};
use crate::producer::backpressure::Permit;
use crate::producer::hooks::EndMessage;
use crate::producer::{prepare, Inner};
use crate::protocol::frame::CodecError;
use crate::protocol::header::{CommandHeader, EndTransactionRequestHeader};
use crate::protocol::{RemotingCommand, RequestCode};
use crate::remoting::Completer;

/// What END_TRANSACTION needs about a half message, from its send result.
#[derive(Debug, Clone)]
pub(super) struct EndTarget {
    pub(super) broker_name: String,
    /// The topic on the wire.
    pub(super) topic: String,
    pub(super) tran_state_table_offset: i64,
    pub(super) commit_log_offset: std::result::Result<i64, CodecError>,
    /// The `UNIQ_KEY`.
    pub(super) msg_id: String,
    /// From the send response (5.x brokers).
    pub(super) transaction_id: Option<String>,
}

impl EndTarget {
    pub(super) fn new(result: &SendResult, wire_topic: String) -> Self {
        EndTarget {
            broker_name: result.queue.broker_name().to_string(),
            topic: wire_topic,
            tran_state_table_offset: result.queue_offset,
            commit_log_offset: result.offset_id().map(|id| id.commit_log_offset),
            msg_id: result.msg_id.to_string(),
            transaction_id: result.transaction_id.as_ref().map(IdStr::to_string),
        }
    }
}

impl TransactionProducer {
    /// The half message (and its topic on the wire): `TRAN_MSG`, `PGROUP`, a `UNIQ_KEY` set
    /// now so the listener sees it, no delay level.
    pub(super) fn half_message(&self, mut msg: Message) -> Result<(Message, String)> {
        let inner = self.owner.producer.inner();
        prepare::check_message(&msg, &inner.config)?;
        msg.remove_property(property::DELAY_TIME_LEVEL);
        msg.set_property(property::TRANSACTION_PREPARED, "true");
        msg.set_property(property::PRODUCER_GROUP, self.owner.core.group.as_str());
        if msg
            .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .is_none()
        {
            msg.set_property(
                property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
                inner.new_msg_id().to_string(),
            );
        }
        let wire_topic = prepare::wire_topic(msg.topic(), &inner.config);
        Ok((msg, wire_topic))
    }
}

impl Core {
    /// Runs a local transaction (unless the half message was not stored cleanly) and sends its
    /// decision.
    pub(super) fn settle(
        &self,
        inner: &Inner,
        view: &mut Message,
        result: SendResult,
        wire_topic: String,
        run: impl FnOnce(&Message, &str) -> ListenerResult,
    ) -> TransactionSendResult {
        let target = EndTarget::new(&result, wire_topic);
        let transaction_id = result.msg_id.to_string();
        let (state, remark) = if result.status == SendStatus::SendOk {
            if let Some(id) = &result.transaction_id {
                view.set_property(property::TRANSACTION_ID, id.as_str());
            }
            let (state, remark) = guarded(
                || run(view, &transaction_id),
                "executeLocalTransactionBranch exception: ",
            );
            self.records
                .local(&transaction_id, state, remark.as_deref());
            (state, remark)
        } else {
            self.records.local(
                &transaction_id,
                LocalTransactionState::RollbackMessage,
                Some("the half message was not stored cleanly: rolled back"),
            );
            log::warn!(
                "half message {} stored with {:?}: rolling it back",
                result.msg_id,
                result.status
            );
            (LocalTransactionState::RollbackMessage, None)
        };
        // A failure is logged and counted; the broker checks back.
        let _ = self.end(inner, &target, state, remark, Some(view));
        TransactionSendResult {
            send_result: result,
            transaction_id,
            local_state: state,
        }
    }

    /// Counts `state` and sends it (END_TRANSACTION, oneway, not from a check); a failure is
    /// logged and counted. `half`: the half message, for the send hooks (on this thread,
    /// which is never an I/O thread).
    pub(super) fn end(
        &self,
        inner: &Inner,
        target: &EndTarget,
        state: LocalTransactionState,
        remark: Option<String>,
        half: Option<&Message>,
    ) -> Result<()> {
        self.stats.decided(state);
        let addr = inner.mapping.master_addr(&target.broker_name);
        let sent = self.send_end(inner, addr.as_deref(), target, state, remark);
        if let (Some(hooks), Some(half)) = (&inner.hooks, half) {
            hooks.end_transaction(
                EndMessage::Sent(half),
                &target.msg_id,
                target.transaction_id.as_deref(),
                addr.as_deref(),
                state,
                false,
                sent.as_ref().copied(),
            );
        }
        self.records.ended(&target.msg_id, state, false, &sent);
        if let Err(e) = &sent {
            self.stats.end_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "END_TRANSACTION {state:?} for {} could not be sent ({e}); the broker will check back",
                target.msg_id
            );
        }
        sent
    }

    fn send_end(
        &self,
        inner: &Inner,
        addr: Option<&str>,
        target: &EndTarget,
        state: LocalTransactionState,
        remark: Option<String>,
    ) -> Result<()> {
        let commit_log_offset = target.commit_log_offset.clone().map_err(Error::Protocol)?;
        let addr = addr.ok_or_else(|| Error::NoRoute {
            topic: target.topic.clone(),
            reason: format!("no master address for broker {}", target.broker_name),
            source: None,
        })?;
        let header = EndTransactionRequestHeader {
            topic: Some(target.topic.clone()),
            producer_group: self.group.clone(),
            tran_state_table_offset: target.tran_state_table_offset,
            commit_log_offset,
            commit_or_rollback: state.end_code(),
            from_transaction_check: false,
            msg_id: target.msg_id.clone(),
            transaction_id: target.transaction_id.clone(),
            broker_name: Some(target.broker_name.clone()),
        };
        inner
            .remoting
            .invoke_oneway(addr, end_request(&header, remark))
    }
}

pub(super) fn end_request(
    header: &EndTransactionRequestHeader,
    remark: Option<String>,
) -> RemotingCommand {
    let mut request = RemotingCommand::request(RequestCode::END_TRANSACTION);
    header.write_to(&mut request.ext_fields);
    request.remark = remark;
    request
}

/// An asynchronous transactional send between its half message and its handle.
pub(super) struct AsyncTransaction<A> {
    pub(super) core: Arc<Core>,
    pub(super) inner: Arc<Inner>,
    pub(super) view: Message,
    pub(super) wire_topic: String,
    pub(super) arg: A,
    pub(super) completer: Completer<TransactionSendResult>,
    pub(super) _permit: Permit,
}

impl<A: Any + Send> AsyncTransaction<A> {
    /// The half message's send ended (where its result is known: an I/O thread, usually).
    /// Quick and never blocking: the local transaction goes to a transaction thread.
    pub(super) fn on_sent(self, result: Result<SendResult>) {
        let id = self
            .view
            .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .unwrap_or_default()
            .to_string();
        let result = match result {
            Ok(r) => {
                self.core.records.stored(&id, &r);
                r
            }
            Err(e) => {
                self.core.records.failed(&id, &e);
                self.completer.complete(Err(e));
                return;
            }
        };
        if result.status != SendStatus::SendOk && self.inner.hooks.is_none() {
            // Rolled back without running the listener: no need for a transaction thread
            // (unless send hooks must see the END_TRANSACTION: never on an I/O thread).
            return self.settle(result);
        }
        let core = self.core.clone();
        let mut slot = Some((self, result));
        let job: TxJob = Box::new(move || {
            if let Some((tx, result)) = slot.take() {
                tx.settle(result);
            }
        });
        if let Err(e) = core.submit(job) {
            // Shutdown closed the pool: the job (and its completer) was dropped, which ends the
            // handle with Shutdown; the broker resolves the half message by checking back.
            core.stats.unknown.fetch_add(1, Ordering::Relaxed);
            log::warn!("an asynchronous local transaction could not run: {e}");
        }
    }

    pub(super) fn settle(mut self, result: SendResult) {
        let core = self.core.clone();
        let arg = &self.arg;
        let r = core.settle(
            &self.inner,
            &mut self.view,
            result,
            std::mem::take(&mut self.wire_topic),
            |m, id| core.listener.execute_local_transaction(m, id, arg),
        );
        self.completer.complete(Ok(r));
    }
}
