//! Transaction state tracking: a bounded table of [`TransactionRecord`]s, one per recent
//! transaction, read with [`TransactionProducer::transaction`] and
//! [`TransactionProducer::in_doubt`], and summed up in the health report.
//!
//! # What is recorded
//!
//! A record is made when a transactional send begins (its `UNIQ_KEY` is the transaction id)
//! and updated as the transaction goes: the half message stored (or the send's error), what
//! the local transaction returned and when, each END_TRANSACTION sent (its state, whether it
//! answered a check-back, whether it could be sent), and the check-backs received.
//!
//! # Bounds
//!
//! The table holds at most [`ProducerConfig::transaction_records`] records, none older than
//! [`ProducerConfig::transaction_record_age`] (age counts from the transaction's start). When
//! full, the oldest record is dropped, resolved or not; drops are counted by cause. A
//! check-back for a transaction not in the table (dropped, or begun by another producer of the
//! group, such as a crashed predecessor) is answered as usual and counted as untracked; it
//! does not make a record, so the memory stays bounded whatever the brokers send.
//!
//! [`ProducerConfig::transaction_records`]: crate::ProducerConfig::transaction_records
//! [`ProducerConfig::transaction_record_age`]: crate::ProducerConfig::transaction_record_age

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::LocalTransactionState;
#[cfg(doc)]
use super::TransactionProducer;
use crate::error::Error;
use crate::message::{Message, MessageQueue, SendResult, SendStatus};

/// Where a recorded transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransactionPhase {
    /// The half message is being sent.
    Sending,
    /// The half message is stored; the local transaction has not decided yet.
    Executing,
    /// The local transaction (or a check-back) said Unknown, and nothing has committed or
    /// rolled back since: the broker will check back. Listed by
    /// [`TransactionProducer::in_doubt`].
    InDoubt,
    /// A commit was sent (from the local transaction or a check-back).
    Committed,
    /// A rollback was sent.
    RolledBack,
    /// The half message was not stored: the send failed.
    Failed,
}

impl TransactionPhase {
    /// `"sending"`, `"executing"`, `"in_doubt"`, `"committed"`, `"rolled_back"` or `"failed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionPhase::Sending => "sending",
            TransactionPhase::Executing => "executing",
            TransactionPhase::InDoubt => "in_doubt",
            TransactionPhase::Committed => "committed",
            TransactionPhase::RolledBack => "rolled_back",
            TransactionPhase::Failed => "failed",
        }
    }
}

/// Where the half message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HalfMessageStored {
    /// The queue (its broker name) the half message went to.
    pub queue: MessageQueue,
    /// Its offset in the queue (the `tranStateTableOffset` of END_TRANSACTION).
    pub queue_offset: i64,
    /// The broker's offset message id.
    pub offset_msg_id: String,
    /// Its commit-log offset, decoded from the offset message id (`None` if that failed).
    pub commit_log_offset: Option<i64>,
    /// The store status the broker answered.
    pub status: SendStatus,
    /// When the answer came.
    pub at: SystemTime,
}

/// One END_TRANSACTION this producer sent (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndTransactionSent {
    /// The decision sent.
    pub state: LocalTransactionState,
    /// Whether it answered a check-back.
    pub from_check: bool,
    /// When.
    pub at: SystemTime,
    /// Why it could not be sent, if it could not (the broker then checks back).
    pub error: Option<String>,
}

/// What this producer knows of one recent transaction, from
/// [`TransactionProducer::transaction`] and [`TransactionProducer::in_doubt`] (a snapshot).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TransactionRecord {
    /// The transaction id: the message's `UNIQ_KEY`, which check-backs name.
    pub transaction_id: String,
    /// The topic, as the caller named it.
    pub topic: String,
    /// The message's keys.
    pub keys: Vec<String>,
    /// When the transactional send began.
    pub begun_at: SystemTime,
    /// Time since then, when the snapshot was taken.
    pub age: Duration,
    /// Where the half message was stored, once it was.
    pub half: Option<HalfMessageStored>,
    /// What the local transaction returned (for [`TransactionProducer::begin`]: the
    /// decision of commit, rollback or end; Unknown when dropped open).
    pub local_state: Option<LocalTransactionState>,
    /// When it returned.
    pub local_state_at: Option<SystemTime>,
    /// The last END_TRANSACTION sent.
    pub end: Option<EndTransactionSent>,
    /// Check-backs received for it.
    pub checks: u32,
    /// When the last one arrived.
    pub last_check_at: Option<SystemTime>,
    /// The broker address the last one came from.
    pub last_check_from: Option<String>,
    /// The last error: the half message's send, the listener's failure or panic, an
    /// END_TRANSACTION that could not be sent.
    pub error: Option<String>,
    /// Where it stands.
    pub phase: TransactionPhase,
}

impl TransactionRecord {
    /// The record as JSON (times in milliseconds since the Unix epoch).
    pub fn to_json(&self) -> Value {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let state = |s: LocalTransactionState| match s {
            LocalTransactionState::CommitMessage => "commit",
            LocalTransactionState::RollbackMessage => "rollback",
            LocalTransactionState::Unknown => "unknown",
        };
        json!({
            "transaction_id": self.transaction_id,
            "topic": self.topic,
            "keys": self.keys,
            "begun_at_ms": ms(self.begun_at),
            "age_ms": u64::try_from(self.age.as_millis()).unwrap_or(u64::MAX),
            "half": self.half.as_ref().map(|h| json!({
                "broker": h.queue.broker_name(),
                "queue_id": h.queue.queue_id(),
                "queue_offset": h.queue_offset,
                "offset_msg_id": h.offset_msg_id,
                "commit_log_offset": h.commit_log_offset,
                "status": format!("{:?}", h.status),
                "at_ms": ms(h.at),
            })),
            "local_state": self.local_state.map(state),
            "local_state_at_ms": self.local_state_at.map(ms),
            "end": self.end.as_ref().map(|e| json!({
                "state": state(e.state),
                "from_check": e.from_check,
                "at_ms": ms(e.at),
                "error": e.error,
            })),
            "checks": self.checks,
            "last_check_at_ms": self.last_check_at.map(ms),
            "last_check_from": self.last_check_from,
            "error": self.error,
            "phase": self.phase.as_str(),
        })
    }

    fn phase_now(&self) -> TransactionPhase {
        if let Some(end) = &self.end {
            match end.state {
                LocalTransactionState::CommitMessage => return TransactionPhase::Committed,
                LocalTransactionState::RollbackMessage => return TransactionPhase::RolledBack,
                LocalTransactionState::Unknown => {}
            }
        }
        if self.local_state == Some(LocalTransactionState::Unknown) || self.end.is_some() {
            return TransactionPhase::InDoubt;
        }
        if self.half.is_some() {
            return TransactionPhase::Executing;
        }
        if self.error.is_some() {
            return TransactionPhase::Failed;
        }
        TransactionPhase::Sending
    }
}

/// The transaction table in the health report (`"transactions"`), for a transaction producer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionTableHealth {
    /// Records held now.
    pub records: usize,
    /// The most records held ([`crate::ProducerConfig::transaction_records`]).
    pub capacity: usize,
    /// Records by phase ([`TransactionPhase::as_str`] names), every phase present.
    pub by_phase: Vec<(TransactionPhase, usize)>,
    /// Age of the oldest in-doubt transaction.
    pub oldest_in_doubt: Option<Duration>,
    /// Records dropped because the table was full (oldest first).
    pub evicted_full: u64,
    /// Records dropped for their age.
    pub evicted_age: u64,
    /// Check-backs for transactions not in the table (dropped, or another producer's).
    pub untracked_checks: u64,
}

impl TransactionTableHealth {
    /// The `transactions` object of the health JSON schema.
    pub fn to_json(&self) -> Value {
        let by_phase: serde_json::Map<String, Value> = self
            .by_phase
            .iter()
            .map(|(p, n)| (p.as_str().to_string(), json!(n)))
            .collect();
        json!({
            "records": self.records,
            "capacity": self.capacity,
            "by_phase": by_phase,
            "oldest_in_doubt_ms": self
                .oldest_in_doubt
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "evicted_full": self.evicted_full,
            "evicted_age": self.evicted_age,
            "untracked_checks": self.untracked_checks,
        })
    }
}

struct Entry {
    began: Instant,
    record: TransactionRecord,
}

#[derive(Default)]
struct Table {
    map: HashMap<String, Entry>,
    /// Transaction ids, oldest first (the eviction order).
    order: VecDeque<String>,
    evicted_full: u64,
    evicted_age: u64,
    untracked_checks: u64,
}

/// The bounded record table of one transaction producer.
pub(crate) struct RecordTable {
    capacity: usize,
    max_age: Duration,
    table: Mutex<Table>,
}

impl std::fmt::Debug for RecordTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordTable")
            .field("capacity", &self.capacity)
            .field("records", &self.table.lock().map.len())
            .finish()
    }
}

impl Table {
    /// Drops records older than `max_age`, oldest first.
    fn expire(&mut self, now: Instant, max_age: Duration) {
        while let Some(id) = self.order.front() {
            let old = self
                .map
                .get(id)
                .map_or(true, |e| now.saturating_duration_since(e.began) > max_age);
            if !old {
                break;
            }
            if let Some(id) = self.order.pop_front() {
                if self.map.remove(&id).is_some() {
                    self.evicted_age += 1;
                }
            }
        }
    }
}

impl RecordTable {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        RecordTable {
            capacity,
            max_age,
            table: Mutex::new(Table::default()),
        }
    }

    /// A transactional send of `half` (its `UNIQ_KEY` set) begins.
    pub(crate) fn begin(&self, id: &str, half: &Message) {
        if self.capacity == 0 {
            return;
        }
        let record = TransactionRecord {
            transaction_id: id.to_string(),
            topic: half.topic().to_string(),
            keys: half.keys().map(str::to_string).collect(),
            begun_at: SystemTime::now(),
            age: Duration::ZERO,
            half: None,
            local_state: None,
            local_state_at: None,
            end: None,
            checks: 0,
            last_check_at: None,
            last_check_from: None,
            error: None,
            phase: TransactionPhase::Sending,
        };
        let now = Instant::now();
        let mut t = self.table.lock();
        t.expire(now, self.max_age);
        if t.map.remove(id).is_some() {
            // The same id again (a caller-set UNIQ_KEY): the new transaction replaces it.
            t.order.retain(|o| o != id);
        }
        while t.map.len() >= self.capacity {
            let Some(oldest) = t.order.pop_front() else {
                break;
            };
            if t.map.remove(&oldest).is_some() {
                t.evicted_full += 1;
            }
        }
        t.map.insert(id.to_string(), Entry { began: now, record });
        t.order.push_back(id.to_string());
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut TransactionRecord)) -> bool {
        let mut t = self.table.lock();
        match t.map.get_mut(id) {
            Some(e) => {
                f(&mut e.record);
                true
            }
            None => false,
        }
    }

    pub(crate) fn stored(&self, id: &str, result: &SendResult) {
        self.update(id, |r| {
            r.half = Some(HalfMessageStored {
                queue: result.queue.clone(),
                queue_offset: result.queue_offset,
                offset_msg_id: result.offset_msg_id.to_string(),
                commit_log_offset: result.offset_id().ok().map(|o| o.commit_log_offset),
                status: result.status,
                at: SystemTime::now(),
            });
        });
    }

    pub(crate) fn failed(&self, id: &str, error: &Error) {
        self.update(id, |r| r.error = Some(error.to_string()));
    }

    /// The local transaction returned `state` (`error`: why it counts as Unknown).
    pub(crate) fn local(&self, id: &str, state: LocalTransactionState, error: Option<&str>) {
        self.update(id, |r| {
            r.local_state = Some(state);
            r.local_state_at = Some(SystemTime::now());
            if let Some(e) = error {
                r.error = Some(e.to_string());
            }
        });
    }

    /// An END_TRANSACTION was sent (or could not be: `sent` is its error).
    pub(crate) fn ended(
        &self,
        id: &str,
        state: LocalTransactionState,
        from_check: bool,
        sent: &crate::error::Result<()>,
    ) {
        self.update(id, |r| {
            let error = sent.as_ref().err().map(Error::to_string);
            if let Some(e) = &error {
                r.error = Some(format!("END_TRANSACTION not sent: {e}"));
            }
            r.end = Some(EndTransactionSent {
                state,
                from_check,
                at: SystemTime::now(),
                error,
            });
        });
    }

    /// A check-back for `id` arrived from `addr`; counted as untracked when `id` is not here.
    pub(crate) fn checked(&self, id: &str, addr: &str) {
        let tracked = self.update(id, |r| {
            r.checks = r.checks.saturating_add(1);
            r.last_check_at = Some(SystemTime::now());
            r.last_check_from = Some(addr.to_string());
        });
        if !tracked {
            self.table.lock().untracked_checks += 1;
        }
    }

    fn snapshot(entry: &Entry, now: Instant) -> TransactionRecord {
        let mut r = entry.record.clone();
        r.age = now.saturating_duration_since(entry.began);
        r.phase = r.phase_now();
        r
    }

    pub(crate) fn get(&self, id: &str) -> Option<TransactionRecord> {
        let now = Instant::now();
        let mut t = self.table.lock();
        t.expire(now, self.max_age);
        t.map.get(id).map(|e| Self::snapshot(e, now))
    }

    /// In-doubt transactions, oldest first.
    pub(crate) fn in_doubt(&self) -> Vec<TransactionRecord> {
        let now = Instant::now();
        let mut t = self.table.lock();
        t.expire(now, self.max_age);
        t.order
            .iter()
            .filter_map(|id| t.map.get(id))
            .map(|e| Self::snapshot(e, now))
            .filter(|r| r.phase == TransactionPhase::InDoubt)
            .collect()
    }

    pub(crate) fn health(&self) -> TransactionTableHealth {
        const PHASES: [TransactionPhase; 6] = [
            TransactionPhase::Sending,
            TransactionPhase::Executing,
            TransactionPhase::InDoubt,
            TransactionPhase::Committed,
            TransactionPhase::RolledBack,
            TransactionPhase::Failed,
        ];
        let now = Instant::now();
        let mut t = self.table.lock();
        t.expire(now, self.max_age);
        let mut counts = [0usize; PHASES.len()];
        let mut oldest_in_doubt = None;
        for id in &t.order {
            let Some(e) = t.map.get(id) else { continue };
            let phase = e.record.phase_now();
            if let Some(i) = PHASES.iter().position(|p| *p == phase) {
                counts[i] += 1;
            }
            if phase == TransactionPhase::InDoubt && oldest_in_doubt.is_none() {
                oldest_in_doubt = Some(now.saturating_duration_since(e.began));
            }
        }
        TransactionTableHealth {
            records: t.map.len(),
            capacity: self.capacity,
            by_phase: PHASES.into_iter().zip(counts).collect(),
            oldest_in_doubt,
            evicted_full: t.evicted_full,
            evicted_age: t.evicted_age,
            untracked_checks: t.untracked_checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message::new("t", "b").with_keys(["k1", "k2"])
    }

    #[test]
    fn capacity_drops_the_oldest_and_counts() {
        let t = RecordTable::new(3, Duration::from_secs(3600));
        for i in 0..5 {
            t.begin(&format!("tx{i}"), &msg());
        }
        assert!(t.get("tx0").is_none() && t.get("tx1").is_none());
        assert_eq!(t.get("tx4").unwrap().keys, ["k1", "k2"]);
        let h = t.health();
        assert_eq!((h.records, h.evicted_full, h.evicted_age), (3, 2, 0));
        t.checked("tx0", "b:1");
        assert_eq!(t.health().untracked_checks, 1);
        // A reused id replaces its record without growing the table.
        t.begin("tx4", &msg());
        assert_eq!(t.health().records, 3);
        assert_eq!(t.table.lock().order.len(), 3);
    }

    #[test]
    fn phases_follow_the_transaction() {
        let t = RecordTable::new(10, Duration::from_secs(3600));
        t.begin("a", &msg());
        assert_eq!(t.get("a").unwrap().phase, TransactionPhase::Sending);
        t.failed("a", &Error::Shutdown);
        assert_eq!(t.get("a").unwrap().phase, TransactionPhase::Failed);
        t.begin("b", &msg());
        t.local("b", LocalTransactionState::Unknown, Some("db down"));
        t.ended("b", LocalTransactionState::Unknown, false, &Ok(()));
        assert_eq!(t.get("b").unwrap().phase, TransactionPhase::InDoubt);
        assert_eq!(t.in_doubt().len(), 1);
        t.checked("b", "broker:1");
        t.ended("b", LocalTransactionState::CommitMessage, true, &Ok(()));
        let b = t.get("b").unwrap();
        assert_eq!(b.phase, TransactionPhase::Committed);
        assert_eq!(b.checks, 1);
        assert!(b.end.unwrap().from_check);
        assert!(t.in_doubt().is_empty());
        assert_eq!(b.error.as_deref(), Some("db down"));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let t = RecordTable::new(0, Duration::from_secs(1));
        t.begin("a", &msg());
        assert!(t.get("a").is_none());
        assert_eq!(t.health().records, 0);
    }

    #[test]
    fn old_records_expire() {
        let t = RecordTable::new(10, Duration::from_secs(60));
        t.begin("old", &msg());
        t.begin("new", &msg());
        // Backdate the first record instead of sleeping.
        if let Some(e) = t.table.lock().map.get_mut("old") {
            e.began = Instant::now()
                .checked_sub(Duration::from_secs(120))
                .unwrap_or(e.began);
        }
        assert!(t.get("old").is_none());
        assert!(t.get("new").is_some());
        assert_eq!(t.health().evicted_age, 1);
    }
}
