//! Transactions: half messages held, END_TRANSACTION commits or rolls back, check-backs
//! (CHECK_TRANSACTION_STATE) to the producer group's connections, which heartbeats and
//! unregisters keep.

use std::sync::{Arc, Weak};

use super::{remove_property, response, set_property, BrokerCore, Conn, HALF_TOPIC};
use crate::message::{property, MessageExt};
use crate::protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
    UnregisterClientRequestHeader,
};
use crate::protocol::heartbeat::HeartbeatData;
use crate::protocol::message_codec::{self, sys_flag};
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::testing::records::{EndTransactionRecord, HalfMessage, TransactionState};

impl BrokerCore {
    pub(super) fn handle_end_transaction(&self, request: &RemotingCommand) -> RemotingCommand {
        let opaque = request.opaque;
        let header = match EndTransactionRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => h,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        let mut store = self.store.lock();
        store.end_transactions.push(EndTransactionRecord {
            producer_group: header.producer_group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: header.commit_or_rollback,
            from_transaction_check: header.from_transaction_check,
            msg_id: header.msg_id.clone(),
            transaction_id: header.transaction_id.clone(),
            topic: header.topic.clone(),
            broker_name: header.broker_name.clone(),
            remark: request.remark.clone(),
            oneway: request.is_oneway(),
        });
        if self.settings.slave {
            return response(
                ResponseCode::SLAVE_NOT_AVAILABLE,
                opaque,
                "Transaction message is not available on a slave broker",
            );
        }
        let decision = header.commit_or_rollback;
        if decision != sys_flag::TRANSACTION_COMMIT && decision != sys_flag::TRANSACTION_ROLLBACK {
            // TRANSACTION_NOT_TYPE: logged by a real broker, which then waits for a check.
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        let Some(i) = store
            .halves
            .iter()
            .position(|h| h.msg.commit_log_offset == header.commit_log_offset)
        else {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "Find prepared transaction message failed",
            );
        };
        if store.halves[i].group != header.producer_group {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The producer group wrong",
            );
        }
        if store.halves[i].tran_state_offset != header.tran_state_table_offset {
            return response(
                ResponseCode::SYSTEM_ERROR,
                opaque,
                "The transaction state table offset wrong",
            );
        }
        if store.halves[i].state != TransactionState::Prepared {
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        if decision == sys_flag::TRANSACTION_ROLLBACK {
            store.halves[i].state = TransactionState::RolledBack;
            return response(ResponseCode::SUCCESS, opaque, "");
        }
        store.halves[i].state = TransactionState::Committed;
        // `EndTransactionProcessor.endMessageTransaction`: the real topic and queue, the half's
        // properties without REAL_TOPIC / REAL_QID / TRAN_MSG, the commit bits.
        let mut real = store.halves[i].msg.clone();
        remove_property(&mut real.properties, property::REAL_TOPIC);
        remove_property(&mut real.properties, property::REAL_QUEUE_ID);
        remove_property(&mut real.properties, property::TRANSACTION_PREPARED);
        real.sys_flag = sys_flag::reset_transaction_value(real.sys_flag, decision);
        real.prepared_transaction_offset = header.commit_log_offset;
        real.queue_offset = Self::next_queue_offset(&mut store, &real.topic, real.queue_id);
        self.append(&mut store, real, true);
        store.counters.messages_stored += 1;
        response(ResponseCode::SUCCESS, opaque, "")
    }

    pub(super) fn handle_heartbeat(
        &self,
        conn: &Arc<Conn>,
        request: &RemotingCommand,
    ) -> RemotingCommand {
        let opaque = request.opaque;
        let data = match HeartbeatData::from_json(&request.body) {
            Ok(d) => d,
            Err(e) => return response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        };
        self.register_client_conn(&data.client_id, conn);
        let mut store = self.store.lock();
        store.counters.heartbeats += 1;
        for group in &data.producer_groups {
            let conns = store.groups.entry(group.clone()).or_default();
            conns.retain(|c| c.upgrade().is_some_and(|c| c.is_alive()));
            if !conns
                .iter()
                .any(|c| c.upgrade().is_some_and(|c| c.id == conn.id))
            {
                conns.push(Arc::downgrade(conn));
            }
        }
        let clients = &mut store.counters.clients;
        match clients.iter_mut().find(|(id, _)| *id == data.client_id) {
            Some((_, groups)) => {
                for g in data.producer_groups {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
            None => clients.push((data.client_id, data.producer_groups)),
        }
        // What a 5.x broker (Java or Rust) answers.
        let mut r = response(ResponseCode::SUCCESS, opaque, "");
        r.ext_fields.insert("IS_SUB_CHANGE", "true");
        r.ext_fields.insert("IS_SUPPORT_HEART_BEAT_V2", "true");
        r
    }

    pub(super) fn handle_unregister(
        &self,
        conn: &Conn,
        request: &RemotingCommand,
    ) -> RemotingCommand {
        let opaque = request.opaque;
        match UnregisterClientRequestHeader::read_from(&request.ext_fields) {
            Ok(h) => {
                let mut store = self.store.lock();
                // The group no longer reaches this connection (no more check-backs through it).
                if let Some(group) = &h.producer_group {
                    store.counters.unregistered_groups.push(group.clone());
                    if let Some(conns) = store.groups.get_mut(group) {
                        conns.retain(|c| c.upgrade().is_some_and(|c| c.id != conn.id));
                    }
                }
                store.counters.unregisters += 1;
                store.counters.unregistered.push(h.client_id);
                response(ResponseCode::SUCCESS, opaque, "")
            }
            Err(e) => response(ResponseCode::SYSTEM_ERROR, opaque, &e.to_string()),
        }
    }

    /// Re-appends matching unresolved half messages and sends CHECK_TRANSACTION_STATE for each
    /// to a live connection of its group. `automatic` checks honour the transaction timeout and
    /// the check limit, as the broker's check service does. Returns how many checks went out.
    pub(crate) fn check(&self, matches: &dyn Fn(&MessageExt) -> bool, automatic: bool) -> usize {
        // Sent once the store is unlocked: a client that does not read must not stall the
        // broker's other connections.
        let mut outgoing = Vec::new();
        let mut store = self.store.lock();
        let timeout = self.settings.transaction_timeout;
        let max = self.settings.transaction_check_max;
        let candidates: Vec<usize> = store
            .halves
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.state == TransactionState::Prepared
                    && matches(&h.msg)
                    && (!automatic || (h.stored_at.elapsed() >= timeout && h.checks < max))
            })
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            let group = store.halves[i].group.clone();
            let conn = store.groups.get(&group).and_then(|conns| {
                conns
                    .iter()
                    .filter_map(Weak::upgrade)
                    .find(|c| c.is_alive())
            });
            let Some(conn) = conn else { continue };
            // Like a real broker: count the check on the message and store it again; the check
            // names the new copy.
            let checks = store.halves[i].checks + 1;
            let tran_state_offset = store.half_queue_offset;
            store.half_queue_offset += 1;
            let mut copy = store.halves[i].msg.clone();
            set_property(
                &mut copy.properties,
                property::TRANSACTION_CHECK_TIMES,
                checks.to_string(),
            );
            copy.queue_offset = tran_state_offset;
            let copy = self.append_half(&mut store, copy);
            // The body: the copy with its real topic and queue, without transaction bits.
            let mut view = copy.clone();
            view.sys_flag =
                sys_flag::reset_transaction_value(view.sys_flag, sys_flag::TRANSACTION_NOT_TYPE);
            let mut body = Vec::new();
            if message_codec::encode_stored_message(&view, &mut body).is_err() {
                continue;
            }
            let uniq = copy.msg_id().map(str::to_string);
            let header = CheckTransactionStateRequestHeader {
                topic: Some(HALF_TOPIC.to_string()),
                tran_state_table_offset: tran_state_offset,
                commit_log_offset: copy.commit_log_offset,
                msg_id: uniq.clone(),
                transaction_id: uniq,
                // The RocketMQ-Rust broker sends it empty (a Java broker sends the copy's offset
                // id): a client must not depend on it.
                offset_msg_id: None,
                broker_name: Some(self.name.clone()),
            };
            let half = &mut store.halves[i];
            half.msg = copy;
            half.tran_state_offset = tran_state_offset;
            half.checks = checks;
            let mut request =
                RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE).into_oneway();
            request.opaque = rand::random::<i32>() & 0x3fff_ffff;
            header.write_to(&mut request.ext_fields);
            // The header writer leaves an empty value out; the real broker sends the key.
            request.ext_fields.insert("offsetMsgId", "");
            request.body = body;
            store.counters.checks_sent += 1;
            outgoing.push((conn, request));
        }
        drop(store);
        outgoing
            .into_iter()
            .filter(|(conn, request)| conn.send(request))
            .count()
    }

    pub(crate) fn half_messages(&self) -> Vec<HalfMessage> {
        self.store
            .lock()
            .halves
            .iter()
            .map(|h| HalfMessage {
                message: h.msg.clone(),
                state: h.state,
                producer_group: h.group.clone(),
                tran_state_table_offset: h.tran_state_offset,
                checks: h.checks,
            })
            .collect()
    }

    pub(crate) fn transaction_state(&self, transaction_id: &str) -> Option<TransactionState> {
        self.store
            .lock()
            .halves
            .iter()
            .rev()
            .find(|h| h.msg.msg_id() == Some(transaction_id))
            .map(|h| h.state)
    }
}
