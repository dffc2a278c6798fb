//! Transactions on a real RocketMQ broker: PLACE RESERVED FOR THE TRANSACTION PRODUCER
//! (branch `tx`). No test here yet: `TransactionProducer` is not on main.
//!
//! To write (issue 7): commit, rollback, and Unknown resolved by a real check-back, each run only
//! when `ROCKETMQ_INTEROP_NAMESRV` is set (`common::interop::namesrv` prints the skip reason).
//! The brokers started by `scripts/real-broker.sh` set `transactionCheckInterval = 3000` and
//! `transactionTimeout = 2000`, so an unresolved half message is checked back after 2-5 s.
//!
//! What the real broker does (checked with a plain client, see
//! `/work/shared/fixtures/real-broker/`) and how to observe it with `common::interop::Reader`:
//! - the half message is stored in `RMQ_SYS_TRANS_HALF_TOPIC`, queue 0, with `REAL_TOPIC`,
//!   `REAL_QID`, `TRAN_MSG=true`, `PGROUP` and sysFlag 4: `reader.view_result(&half_result)`;
//! - after a commit the message appears in its real topic under the same `UNIQ_KEY`:
//!   `reader.find(topic, &result.msg_id, true, PROMPTLY)`, checked with
//!   `assert_stored_tx(.., sys_flag::TRANSACTION_COMMIT)` (Java brokers set the commit bits);
//! - after a rollback it never appears there: poll `reader.query(..)` past a few check
//!   intervals and expect nothing;
//! - the check-back (CHECK_TRANSACTION_STATE, code 39, oneway) goes to a connection of a
//!   producer of `PGROUP` registered by heartbeat (`reader.producer_connections(addr, group)`
//!   shows it); its `commitLogOffset`/`tranStateTableOffset` are those of a re-stored copy, not
//!   of the original half message.
