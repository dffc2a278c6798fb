//! The send hook that turns attempts and transaction ends into trace records (Java's
//! `SendMessageTraceHookImpl` and `EndTransactionTraceHookImpl`). It only builds the record and
//! offers it to the tracer's queue: it never blocks and never sends.

use std::sync::Arc;

use super::codec::{
    write_end, write_pub, EndFields, PubFields, TraceMessageType, DEFAULT_REGION, NULL_TEXT,
};
use super::Tracer;
use crate::hooks::{AfterSendContext, EndTransactionContext, MessageType, SendHook};
use crate::message::{property, Message, SendStatus};
use crate::producer::inner::now_ms;
use crate::producer::transaction::LocalTransactionState;

/// Message trace as a send hook; runs after the user's hooks.
pub(crate) struct TraceHook(pub(crate) Arc<Tracer>);

fn or_null(v: Option<&str>) -> &str {
    v.unwrap_or(NULL_TEXT)
}

/// Room for a typical record, so encoding it allocates once.
const RECORD_CAPACITY: usize = 256;

fn msg_type(msg: &Message) -> TraceMessageType {
    match MessageType::of(msg) {
        MessageType::TransactionHalf => TraceMessageType::TransactionHalf,
        MessageType::Delay => TraceMessageType::Delay,
        _ => TraceMessageType::Normal,
    }
}

/// Java's `LocalTransactionState` names.
fn state_name(state: LocalTransactionState) -> &'static str {
    match state {
        LocalTransactionState::CommitMessage => "COMMIT_MESSAGE",
        LocalTransactionState::RollbackMessage => "ROLLBACK_MESSAGE",
        LocalTransactionState::Unknown => "UNKNOW",
    }
}

impl SendHook for TraceHook {
    fn name(&self) -> &str {
        "message-trace"
    }

    fn after_send(&self, ctx: &AfterSendContext<'_>) {
        let tracer = &self.0;
        if tracer.skips(ctx.topic()) {
            return;
        }
        // As Java: only attempts with a result are traced, and only when the broker traces.
        let (region, success) = match ctx.result() {
            Ok(Some(r)) => {
                if !r.trace_on {
                    return;
                }
                (
                    r.region_id.as_deref().unwrap_or(DEFAULT_REGION),
                    r.status == SendStatus::SendOk,
                )
            }
            // Oneway: written, no answer.
            Ok(None) => (DEFAULT_REGION, true),
            Err(_) => return,
        };
        let cost = i64::try_from(ctx.latency().as_millis()).unwrap_or(i64::MAX);
        let timestamp = now_ms().saturating_sub(cost);
        let mut offsets = ctx.offset_msg_ids();
        for (msg, id) in ctx.messages().iter().zip(ctx.msg_ids()) {
            let mut record = String::with_capacity(RECORD_CAPACITY);
            write_pub(
                &mut record,
                &PubFields {
                    timestamp_ms: timestamp,
                    region_id: region,
                    group: tracer.group(),
                    topic: msg.topic(),
                    msg_id: id,
                    tags: or_null(msg.tags()),
                    keys: or_null(msg.property(property::KEYS)),
                    store_host: ctx.broker_addr(),
                    body_length: msg.body().len() as i64,
                    cost_time_ms: cost,
                    msg_type: msg_type(msg),
                    offset_msg_id: offsets.next().unwrap_or(""),
                    success,
                },
            );
            tracer.append(record);
        }
    }

    fn end_transaction(&self, ctx: &EndTransactionContext<'_>) {
        let tracer = &self.0;
        // Recorded once the END_TRANSACTION went out (Java records it just before sending).
        if tracer.skips(ctx.topic()) || ctx.result().is_err() {
            return;
        }
        let region = ctx
            .property(property::MSG_REGION)
            .filter(|r| !r.is_empty())
            .unwrap_or(DEFAULT_REGION);
        let mut record = String::with_capacity(RECORD_CAPACITY);
        write_end(
            &mut record,
            &EndFields {
                timestamp_ms: now_ms(),
                region_id: region,
                group: tracer.group(),
                topic: ctx.topic(),
                msg_id: ctx.msg_id(),
                tags: or_null(ctx.tags()),
                keys: or_null(ctx.property(property::KEYS)),
                store_host: or_null(ctx.broker_addr()),
                msg_type: TraceMessageType::TransactionCommit,
                // Java's `Message.getTransactionId()`: the client id the listener saw.
                transaction_id: ctx.msg_id(),
                transaction_state: state_name(ctx.state()),
                from_transaction_check: ctx.from_check(),
            },
        );
        tracer.append(record);
    }
}
