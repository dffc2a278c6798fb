//! The state a producer shares with its background tasks: [`Inner`], its run states and the
//! clocks it reads.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use super::async_send::AsyncSend;
use super::backpressure::InFlight;
use super::executor::Executor;
use super::flush::FlushTracker;
use super::{batch, stats};
use crate::client::broker::SendDefaults;
use crate::client::namesrv::NameServers;
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::message::IdStr;
use crate::protocol::message_codec::UniqIdGenerator;
use crate::protocol::RemotingCommand;
use crate::remoting::RemotingClient;
use crate::routing::mapping::TopicBrokerMapping;
use crate::routing::router::MessageRouter;

pub(super) const RUNNING: u8 = 0;
pub(super) const STOPPING: u8 = 1;
pub(super) const STOPPED: u8 = 2;

/// A handler for broker-initiated requests of one code (the transaction producer installs the
/// CHECK_TRANSACTION_STATE one).
pub(crate) type ServerRequestHook =
    Arc<dyn Fn(&str, RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// User code to run once (a callback with its result).
pub(super) type UserTask = Box<dyn FnOnce() + Send + 'static>;

/// Everything a producer shares with its background tasks.
pub(crate) struct Inner {
    pub(crate) config: ProducerConfig,
    pub(crate) remoting: RemotingClient,
    pub(crate) mapping: TopicBrokerMapping,
    pub(crate) router: MessageRouter,
    pub(crate) client_id: String,
    pub(super) namesrv: NameServers,
    pub(super) ids: UniqIdGenerator,
    pub(super) defaults: SendDefaults,
    /// Asynchronous sends (bounded when backpressure is on).
    pub(super) in_flight: Arc<InFlight>,
    /// Synchronous sends (unbounded; shutdown waits for them too).
    pub(super) sync_in_flight: Arc<InFlight>,
    pub(super) state: AtomicU8,
    /// Added to `Instant::now()` for routing decisions (tests move time forward with it).
    pub(super) routing_clock_skew_ms: AtomicU64,
    /// Broker addresses that got a heartbeat already.
    pub(super) heartbeated: Mutex<Vec<String>>,
    pub(super) service: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// The auto-batch accumulator, when auto-batching is on.
    pub(super) batcher: Option<Arc<batch::Accumulator>>,
    /// Handlers of broker-initiated requests, by request code.
    pub(crate) server_hooks: RwLock<Vec<(i32, ServerRequestHook)>>,
    /// Counters and histograms (no-ops when statistics are off).
    pub(crate) stats: stats::StatsRecorder,
    /// A transaction producer's record table (for the health report).
    pub(crate) tx_records: Mutex<Option<Arc<super::transaction::RecordTable>>>,
    /// Strict-order layouts and queue-count changes, per topic.
    pub(super) order: super::order::OrderBook,
    /// Sends not ended yet, by generation, for [`Producer::flush`](super::Producer::flush).
    pub(super) flush: Arc<FlushTracker>,
    /// Finished asynchronous sends, dropped by the next sender or an internal thread (soon:
    /// a burst schedules one job) rather than by the I/O thread that finished them: their
    /// memory was allocated on the sending side, and freeing it elsewhere keeps the
    /// allocator's cross-thread locking off the I/O thread.
    pub(super) spent: Arc<super::async_send::SpentSends>,
    /// Boxes of finished asynchronous sends, emptied, for the next ones (no allocation per
    /// send); `None` once shutdown has emptied it for good (each holds this `Inner`).
    #[allow(clippy::vec_box)] // the boxes are what is reused
    pub(super) free_sends: Mutex<Option<Vec<Box<AsyncSend>>>>,
    /// Broker address memories and completions of synchronous sends, one per calling thread
    /// ([`super::sync_send::SyncMemos`]).
    pub(super) sync_memos: super::sync_send::SyncMemos,
    /// Empty boxes of called send callbacks, by closure type, for the next ones (no
    /// allocation per callback send; see [`super::callback`]).
    pub(super) callback_slots: super::callback::SlotPool,
    /// The `rocketmq-async-N` threads: route lookups and retries of asynchronous sends,
    /// freeing finished ones. They never run user code.
    pub(super) executor: Executor,
    /// User callbacks that ended after the callback pool stopped (late in a shutdown): run
    /// by the thread calling shutdown. `None` once shutdown has run them.
    pub(super) late: Mutex<Option<Vec<UserTask>>>,
    /// Message trace, when [`ProducerConfig::trace`] is on.
    pub(crate) trace: Option<Arc<super::trace::Tracer>>,
    /// Request-reply: the correlation table of pending requests.
    pub(super) requests: super::request::Requests,
    /// The send hooks; `None` when none is registered (the send path's one branch).
    pub(crate) hooks: Option<Arc<super::hooks::HookRunner>>,
}

/// The clock used for born timestamps and ids.
pub(crate) fn now_ms() -> i64 {
    wall_ms(SystemTime::now())
}

/// Epoch milliseconds of `now` (0 before the epoch). The millisecond of the last time this
/// thread converted is remembered as its bounds, `[from, until)`: a time within them is that
/// millisecond, known with two comparisons instead of a subtraction and a division (the
/// sends of one millisecond share it). Always the value the subtraction gives.
fn wall_ms(now: SystemTime) -> i64 {
    thread_local! {
        static LAST: Cell<Option<(SystemTime, SystemTime, i64)>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        if let Some((from, until, ms)) = last.get() {
            if from <= now && now < until {
                return ms;
            }
        }
        let ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let from = u64::try_from(ms)
            .ok()
            .filter(|&ms| ms > 0)
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
        if let Some(from) = from {
            if let Some(until) = from.checked_add(Duration::from_millis(1)) {
                last.set(Some((from, until, ms)));
            }
        }
        ms
    })
}

impl Inner {
    /// The clock the fault table and the router see: real time plus a skew that tests can
    /// advance instead of sleeping.
    pub(crate) fn routing_now(&self) -> Instant {
        self.routing_at(Instant::now())
    }

    /// [`Inner::routing_now`] at `now` (an `Instant::now()` the caller already read).
    pub(crate) fn routing_at(&self, now: Instant) -> Instant {
        match self.routing_clock_skew_ms.load(Ordering::Relaxed) {
            0 => now, // no skew set (the rule): no clock addition
            skew => now + Duration::from_millis(skew),
        }
    }

    pub(super) fn check_running(&self) -> Result<()> {
        if self.state.load(Ordering::Acquire) == RUNNING {
            Ok(())
        } else {
            Err(Error::Shutdown)
        }
    }

    /// A fresh `UNIQ_KEY` (inline: no allocation).
    pub(crate) fn new_msg_id(&self) -> IdStr {
        self.new_msg_id_at(now_ms())
    }

    /// [`Inner::new_msg_id`] at `wall_ms`, the wall clock (epoch ms) the caller read.
    pub(crate) fn new_msg_id_at(&self, wall_ms: i64) -> IdStr {
        self.ids.next_id_str(wall_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered millisecond gives what the subtraction gives: for times within one
    /// millisecond, at its bounds, in other milliseconds in any order, and before the epoch.
    #[test]
    fn wall_ms_is_the_subtraction() {
        use rand::{Rng, SeedableRng};
        let reference = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let base = UNIX_EPOCH + Duration::from_millis(1_795_468_920_976);
        let mut t = base;
        for i in 0..50_000 {
            t = match rng.gen_range(0..8) {
                0 => t + Duration::from_nanos(rng.gen_range(0..2_000_000)),
                1 => t
                    .checked_sub(Duration::from_nanos(rng.gen_range(0..2_000_000)))
                    .unwrap(),
                // A millisecond's bounds: its first nanosecond and the one before it.
                2 => UNIX_EPOCH + Duration::from_millis(rng.gen_range(0..3_000_000_000_000)),
                3 => (UNIX_EPOCH + Duration::from_millis(rng.gen_range(1..3_000_000_000_000)))
                    .checked_sub(Duration::from_nanos(1))
                    .unwrap(),
                4 => UNIX_EPOCH - Duration::from_nanos(rng.gen_range(0..5_000_000)),
                5 => UNIX_EPOCH + Duration::from_nanos(rng.gen_range(0..5_000_000)),
                6 => base,
                _ => t,
            };
            assert_eq!(wall_ms(t), reference(t), "{i}: {t:?}");
        }
        let now = SystemTime::now();
        assert_eq!(wall_ms(now), reference(now));
    }
}
