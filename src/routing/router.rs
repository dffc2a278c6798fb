//! [`MessageRouter`]: picks the queue for each send attempt from a topic's publish info.
//!
//! It combines a [`RoutingStrategy`] (where to start looking) with the latency fault tolerance of
//! [`crate::routing::fault`] (which brokers to skip), as Java 5.1.4+ does (protocol.md 11.3):
//!
//! 1. **Start index** by strategy: [`RoutingStrategy::RoundRobin`] takes the topic's counter
//!    (which starts at a random value); [`RoutingStrategy::Random`] a random index;
//!    [`RoutingStrategy::MessageHash`] Java's `abs(hashCode(key) % n)` of the message's first key
//!    (round robin for messages without keys). On a retry, round robin starts at a random index,
//!    as Java resets its counter.
//! 2. **Scan** the queues from the start index, wrapping around, and take the first queue that
//!    passes, trying these filters in turn:
//!    1. (latency awareness, round robin and random only) broker available, not the last broker,
//!       and not *slow*. A broker is slow when its latency EWMA (of attempts that did not isolate
//!       it) is above both [`SLOW_FLOOR`] and [`SLOW_FACTOR`] times the lowest EWMA among the
//!       topic's other candidates. Only EWMAs updated within [`SLOW_MEMORY`] count, so a slow
//!       broker gets traffic again after that long, and is measured anew (no starvation);
//!    2. broker available (not isolated) and not the last broker;
//!    3. broker reachable and not the last broker;
//!    4. not the last broker;
//!    5. the queue at the start index (the only broker is the last one: better than nothing).
//!
//! With fault tolerance off only steps 4 and 5 apply: a retry still avoids the broker that just
//! failed when the topic has another one. Fault data is recorded either way, so the health
//! snapshot ([`MessageRouter::health`]) is always available.
//!
//! `last_broker` is the broker of the previous attempt of the same send (`None` on the first
//! attempt). The router does no I/O and takes `now` from the caller.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;
use crate::message::MessageQueue;
use crate::routing::fault::{
    BrokerFaultInfo, FaultHandles, FaultLookup, HandleLookup, LatencyFaultTolerance,
};
use crate::routing::mapping::TopicPublishInfo;
use crate::routing::selector::MessageHashSelector;

/// A broker is *slow* when its latency EWMA is above `SLOW_FACTOR` times the lowest EWMA among
/// the topic's available brokers (and above [`SLOW_FLOOR`]).
pub const SLOW_FACTOR: f64 = 2.0;

/// How long a latency EWMA counts for latency awareness after its last sample.
pub const SLOW_MEMORY: Duration = Duration::from_secs(10);

/// Latency EWMAs under this are never slow, however they compare (the first row of the Java
/// tables: under 100 ms a broker is never isolated either).
pub const SLOW_FLOOR: Duration = Duration::from_millis(100);

/// Where a send's queue search starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutingStrategy {
    /// The topic's queues in turn (Java's default).
    #[default]
    RoundRobin,
    /// A random queue.
    Random,
    /// The queue Java's `SelectMessageQueueByHash` picks for the message's first key, so the same
    /// key lands on the same queue while the route and broker health are stable. Messages
    /// without keys go round robin.
    MessageHash,
}

impl RoutingStrategy {
    /// The name used in configuration: `round_robin`, `random` or `message_hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingStrategy::RoundRobin => "round_robin",
            RoutingStrategy::Random => "random",
            RoutingStrategy::MessageHash => "message_hash",
        }
    }
}

impl fmt::Display for RoutingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoutingStrategy {
    type Err = Error;

    /// Parses `round_robin`, `random` or `message_hash` (any case; `-` for `_` and no separator
    /// are accepted, and `hash` for `message_hash`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        match norm.as_str() {
            "roundrobin" => Ok(RoutingStrategy::RoundRobin),
            "random" => Ok(RoutingStrategy::Random),
            "messagehash" | "hash" => Ok(RoutingStrategy::MessageHash),
            _ => Err(Error::config(
                "routing_strategy",
                format!("{s:?} is not one of round_robin, random, message_hash"),
            )),
        }
    }
}

/// Strategy plus fault tolerance plus latency awareness. `Send + Sync`; one per producer.
#[derive(Debug)]
pub struct MessageRouter {
    strategy: RoutingStrategy,
    fault: LatencyFaultTolerance,
    fault_tolerance: bool,
    latency_aware: bool,
}

impl Default for MessageRouter {
    /// Round robin, fault tolerance on with the Java 5.1.4+ tables, latency awareness on.
    fn default() -> Self {
        MessageRouter::new(
            RoutingStrategy::default(),
            LatencyFaultTolerance::default(),
            true,
        )
    }
}

impl MessageRouter {
    /// A router. `fault` keeps the per-broker data; with `fault_tolerance` false it is still
    /// recorded (for [`MessageRouter::health`]) but not used to avoid brokers. Latency awareness
    /// is on; it only acts when fault tolerance is on.
    pub fn new(
        strategy: RoutingStrategy,
        fault: LatencyFaultTolerance,
        fault_tolerance: bool,
    ) -> Self {
        MessageRouter {
            strategy,
            fault,
            fault_tolerance,
            latency_aware: true,
        }
    }

    /// Turns latency awareness (skipping slow brokers while faster ones are available) on or off.
    pub fn with_latency_awareness(mut self, on: bool) -> Self {
        self.latency_aware = on;
        self
    }

    /// The strategy.
    pub fn strategy(&self) -> RoutingStrategy {
        self.strategy
    }

    /// Whether isolated brokers are avoided.
    pub fn fault_tolerance_enabled(&self) -> bool {
        self.fault_tolerance
    }

    /// Whether slow brokers are avoided while faster ones are available.
    pub fn latency_awareness_enabled(&self) -> bool {
        self.latency_aware
    }

    /// The fault table.
    pub fn fault(&self) -> &LatencyFaultTolerance {
        &self.fault
    }

    /// Reports a send attempt on `broker`; see [`LatencyFaultTolerance::update`].
    pub fn update_fault(
        &self,
        broker: &str,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        self.fault
            .update(broker, latency, isolation, reachable, now);
    }

    /// Stores the last error seen on `broker`, for the health snapshot.
    pub fn record_error(&self, broker: &str, error: impl Into<String>) {
        self.fault.record_error(broker, error);
    }

    /// Per-broker health at `now`, sorted by broker name.
    pub fn health(&self, now: Instant) -> Vec<BrokerFaultInfo> {
        self.fault.snapshot(now)
    }

    /// The queue for the next attempt of a send, or `None` when the topic has no queues.
    /// `hash_key` is the message's first business key (the message-hash strategy routes on it).
    /// `last_broker` is the previous attempt's broker (`None` on the first attempt). See the
    /// module docs for the rules.
    pub fn select_queue(
        &self,
        info: &TopicPublishInfo,
        hash_key: Option<&str>,
        last_broker: Option<&str>,
        now: Instant,
    ) -> Option<MessageQueue> {
        let (start, hashed) = self.start(info, hash_key, last_broker)?;
        let chosen = if self.fault_tolerance {
            self.fault.with_view(|view| {
                let mut view = *view;
                self.choose(info, start, hashed, last_broker, now, &mut view)
            })
        } else {
            scan(info.queues(), start, |q| {
                last_broker != Some(q.broker_name())
            })
        };
        Some(chosen.unwrap_or_else(|| info.queues()[start].clone()))
    }

    /// [`MessageRouter::select_queue`] reading the fault table through a sender's remembered
    /// entries (`handles`, kept across its sends): the same choice, without a look-up by name
    /// per broker checked.
    // Inlined into its one sending-path caller: one call layer less per send.
    #[inline]
    pub(crate) fn select_queue_with(
        &self,
        info: &TopicPublishInfo,
        hash_key: Option<&str>,
        last_broker: Option<&str>,
        now: Instant,
        handles: &mut FaultHandles,
    ) -> Option<MessageQueue> {
        let (start, hashed) = self.start(info, hash_key, last_broker)?;
        let chosen = if self.fault_tolerance {
            let mut lookup = HandleLookup {
                fault: &self.fault,
                handles,
            };
            self.choose(info, start, hashed, last_broker, now, &mut lookup)
        } else {
            scan(info.queues(), start, |q| {
                last_broker != Some(q.broker_name())
            })
        };
        Some(chosen.unwrap_or_else(|| info.queues()[start].clone()))
    }

    /// Where the scan starts, and whether that is the message key's queue; `None` when the
    /// topic has no queues.
    // Always inlined: a few instructions, once per attempt, where a call costs as much.
    #[inline(always)]
    fn start(
        &self,
        info: &TopicPublishInfo,
        hash_key: Option<&str>,
        last_broker: Option<&str>,
    ) -> Option<(usize, bool)> {
        let n = info.queues().len();
        if n == 0 {
            return None;
        }
        let retry = last_broker.is_some();
        let random = || rand::thread_rng().gen_range(0..n);
        Some(match self.strategy {
            RoutingStrategy::RoundRobin if retry => (random(), false),
            RoutingStrategy::RoundRobin => (info.next_queue_index() % n, false),
            RoutingStrategy::Random => (random(), false),
            RoutingStrategy::MessageHash => match hash_key {
                Some(key) => (MessageHashSelector::index_for(key, n), true),
                None if retry => (random(), false),
                None => (info.next_queue_index() % n, false),
            },
        })
    }

    /// The fault-aware scan from `start` (fault tolerance on; see the module docs), or `None`
    /// when only the queue at `start` is left.
    fn choose(
        &self,
        info: &TopicPublishInfo,
        start: usize,
        hashed: bool,
        last_broker: Option<&str>,
        now: Instant,
        faults: &mut impl FaultLookup,
    ) -> Option<MessageQueue> {
        let queues = info.queues();
        let not_last = |q: &MessageQueue| last_broker != Some(q.broker_name());
        if faults.is_empty() {
            return scan(queues, start, not_last);
        }
        if self.latency_aware && !hashed {
            if let Some(limit) = slow_limit(faults, info, last_broker, now) {
                let fast = |q: &MessageQueue| {
                    let b = q.broker_name_arc();
                    not_last(q)
                        && faults.is_available(b, now)
                        && faults
                            .fresh_ewma_secs(b, now, SLOW_MEMORY)
                            .map_or(true, |e| e <= limit)
                };
                if let Some(q) = scan(queues, start, fast) {
                    return Some(q);
                }
            }
        }
        if let Some(q) = scan(queues, start, |q| {
            not_last(q) && faults.is_available(q.broker_name_arc(), now)
        }) {
            return Some(q);
        }
        if let Some(q) = scan(queues, start, |q| {
            not_last(q) && faults.is_reachable(q.broker_name_arc())
        }) {
            return Some(q);
        }
        scan(queues, start, not_last)
    }
}

/// The first queue from `start` (wrapping around) that `accept` takes.
fn scan(
    queues: &[MessageQueue],
    start: usize,
    mut accept: impl FnMut(&MessageQueue) -> bool,
) -> Option<MessageQueue> {
    let n = queues.len();
    (0..n)
        .map(|i| &queues[(start + i) % n])
        .find(|q| accept(q))
        .cloned()
}

/// The EWMA (seconds) above which a broker of `info` counts as slow now, or `None` when no
/// broker is slow by that rule (fewer than two measured candidates).
fn slow_limit(
    faults: &mut impl FaultLookup,
    info: &TopicPublishInfo,
    last_broker: Option<&str>,
    now: Instant,
) -> Option<f64> {
    let brokers = info.broker_arcs();
    if brokers.len() < 2 {
        return None; // fewer than two candidates, measured or not: no look-up needed
    }
    let mut min = f64::INFINITY;
    let mut max = 0.0f64;
    let mut measured = 0;
    for broker in brokers {
        if Some(&**broker) == last_broker || !faults.is_available(broker, now) {
            continue;
        }
        if let Some(e) = faults.fresh_ewma_secs(broker, now, SLOW_MEMORY) {
            min = min.min(e);
            max = max.max(e);
            measured += 1;
        }
    }
    if measured < 2 {
        return None;
    }
    let limit = (min * SLOW_FACTOR).max(SLOW_FLOOR.as_secs_f64());
    (max > limit).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::protocol::route::{BrokerData, QueueData, TopicRouteData};

    const MS: Duration = Duration::from_millis(1);

    fn info(brokers: &[&str], queues_each: i32) -> TopicPublishInfo {
        let route = TopicRouteData {
            queue_datas: brokers
                .iter()
                .map(|b| QueueData {
                    broker_name: b.to_string(),
                    read_queue_nums: queues_each,
                    write_queue_nums: queues_each,
                    perm: 6,
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas: brokers
                .iter()
                .map(|b| BrokerData {
                    cluster: "c".into(),
                    broker_name: b.to_string(),
                    broker_addrs: [(0, format!("{b}:10911"))].into_iter().collect(),
                    zone_name: None,
                    enable_acting_master: false,
                })
                .collect(),
            ..TopicRouteData::default()
        };
        TopicPublishInfo::from_route("t", &route, Instant::now())
    }

    fn router(strategy: RoutingStrategy, fault_tolerance: bool) -> MessageRouter {
        MessageRouter::new(strategy, LatencyFaultTolerance::default(), fault_tolerance)
    }

    fn pick(r: &MessageRouter, i: &TopicPublishInfo, last: Option<&str>, now: Instant) -> String {
        r.select_queue(i, None, last, now)
            .unwrap()
            .broker_name()
            .to_string()
    }

    #[test]
    fn isolated_broker_avoided_until_isolation_ends() {
        let r = router(RoutingStrategy::RoundRobin, true);
        let i = info(&["a", "b"], 2);
        let t0 = Instant::now();
        // b is measured and fast; a's 3 s attempt isolates it for 6 s.
        r.update_fault("b", MS * 20, false, true, t0);
        r.update_fault("a", MS * 3000, false, true, t0);
        for step in 0..100u32 {
            let now = t0 + MS * (step * 59); // up to 5841 ms: still isolated (6000 ms)
            assert_eq!(pick(&r, &i, None, now), "b", "at {step}");
        }
        let later = t0 + MS * 6000;
        let picks: Vec<String> = (0..4).map(|_| pick(&r, &i, None, later)).collect();
        assert!(picks.iter().any(|b| b == "a"), "{picks:?}");
        assert!(picks.iter().any(|b| b == "b"), "{picks:?}");
    }

    #[test]
    fn retry_avoids_last_broker() {
        for (strategy, ft) in [
            (RoutingStrategy::RoundRobin, true),
            (RoutingStrategy::RoundRobin, false),
            (RoutingStrategy::Random, true),
            (RoutingStrategy::MessageHash, true),
            (RoutingStrategy::MessageHash, false),
        ] {
            let r = router(strategy, ft);
            let i = info(&["a", "b", "c"], 4);
            let now = Instant::now();
            for k in 0..200 {
                let msg = Message::new("t", "b").with_keys([format!("key-{k}")]);
                let q = r
                    .select_queue(&i, msg.keys().next(), Some("a"), now)
                    .unwrap();
                assert_ne!(q.broker_name(), "a", "{strategy:?} ft={ft}");
            }
        }
    }

    #[test]
    fn single_broker_fallback() {
        let r = router(RoutingStrategy::RoundRobin, true);
        let i = info(&["a"], 2);
        let t0 = Instant::now();
        r.update_fault("a", MS * 10, true, false, t0);
        assert!(!r.fault().is_available("a", t0));
        let q = r.select_queue(&i, None, Some("a"), t0).unwrap();
        assert_eq!(q.broker_name(), "a");
        assert_eq!(pick(&r, &i, None, t0), "a");
        // No queues: None.
        let empty = info(&[], 2);
        assert!(r.select_queue(&empty, None, None, t0).is_none());
    }

    #[test]
    fn reachable_preferred_over_unreachable_when_all_isolated() {
        let r = router(RoutingStrategy::RoundRobin, true);
        let i = info(&["a", "b", "c"], 1);
        let t0 = Instant::now();
        r.update_fault("a", MS * 10, true, false, t0); // isolated, unreachable
        r.update_fault("b", MS * 3000, false, true, t0); // isolated, reachable
        r.update_fault("c", MS * 10, true, false, t0); // isolated, unreachable
        for _ in 0..20 {
            assert_eq!(pick(&r, &i, None, t0 + MS), "b");
        }
        // Retrying after b failed: b is excluded, any other is taken.
        let other = pick(&r, &i, Some("b"), t0 + MS);
        assert_ne!(other, "b");
    }

    #[test]
    fn fault_tolerance_off_ignores_isolation_but_records_health() {
        let r = router(RoutingStrategy::RoundRobin, false);
        let i = info(&["a", "b"], 1);
        let t0 = Instant::now();
        r.update_fault("a", MS * 3000, false, true, t0);
        r.record_error("a", "slow");
        let picks: Vec<String> = (0..4).map(|_| pick(&r, &i, None, t0)).collect();
        assert_eq!(picks.iter().filter(|b| *b == "a").count(), 2, "{picks:?}");
        let health = r.health(t0);
        assert_eq!(health.len(), 1);
        assert!(!health[0].available);
        assert_eq!(health[0].last_error.as_deref(), Some("slow"));
    }

    #[test]
    fn round_robin_cycles_through_queues() {
        let r = router(RoutingStrategy::RoundRobin, true);
        let i = info(&["a", "b"], 2);
        let now = Instant::now();
        let msg = Message::new("t", "b");
        let first = r.select_queue(&i, msg.keys().next(), None, now).unwrap();
        let pos = i.queues().iter().position(|q| *q == first).unwrap();
        for k in 1..9 {
            let q = r.select_queue(&i, msg.keys().next(), None, now).unwrap();
            assert_eq!(q, i.queues()[(pos + k) % 4]);
        }
    }

    #[test]
    fn message_hash_uses_first_key() {
        let r = router(RoutingStrategy::MessageHash, true);
        let i = info(&["a", "b"], 4);
        let now = Instant::now();
        for key in ["order-1", "order-2", "customer-77", "ключ"] {
            let msg = Message::new("t", "b").with_keys([key, "second"]);
            let expected = &i.queues()[MessageHashSelector::index_for(key, 8)];
            for _ in 0..5 {
                assert_eq!(
                    &r.select_queue(&i, msg.keys().next(), None, now).unwrap(),
                    expected
                );
            }
        }
        // "customer-77": Java hashCode -1772111057 % 8 = -1 -> 1 -> broker a, queue 1.
        let msg = Message::new("t", "b").with_keys(["customer-77"]);
        assert_eq!(
            r.select_queue(&i, msg.keys().next(), None, now)
                .unwrap()
                .to_string(),
            "t@a#1"
        );
        // No key: round robin.
        let msg = Message::new("t", "b");
        let a = r.select_queue(&i, msg.keys().next(), None, now).unwrap();
        let b = r.select_queue(&i, msg.keys().next(), None, now).unwrap();
        let pa = i.queues().iter().position(|q| *q == a).unwrap();
        assert_eq!(b, i.queues()[(pa + 1) % 8]);
        // The hashed broker isolated: the next available queue after it.
        r.update_fault("a", MS * 10, true, false, now);
        let msg = Message::new("t", "b").with_keys(["customer-77"]);
        assert_eq!(
            r.select_queue(&i, msg.keys().next(), None, now)
                .unwrap()
                .to_string(),
            "t@b#0"
        );
    }

    #[test]
    fn latency_awareness_prefers_faster_available_broker() {
        let i = info(&["a", "b"], 2);
        let t0 = Instant::now();
        let aware = router(RoutingStrategy::RoundRobin, true);
        let plain = router(RoutingStrategy::RoundRobin, true).with_latency_awareness(false);
        for r in [&aware, &plain] {
            // 400 ms: slow, but under 550 ms so never isolated.
            r.update_fault("a", MS * 400, false, true, t0);
            r.update_fault("b", MS * 20, false, true, t0);
        }
        for _ in 0..20 {
            assert_eq!(pick(&aware, &i, None, t0), "b");
        }
        let picks: Vec<String> = (0..4).map(|_| pick(&plain, &i, None, t0)).collect();
        assert_eq!(picks.iter().filter(|b| *b == "a").count(), 2);
        // Both under the floor: no preference.
        let r = router(RoutingStrategy::RoundRobin, true);
        r.update_fault("a", MS * 90, false, true, t0);
        r.update_fault("b", MS * 5, false, true, t0);
        let picks: Vec<String> = (0..4).map(|_| pick(&r, &i, None, t0)).collect();
        assert_eq!(picks.iter().filter(|b| *b == "a").count(), 2);
        // On a retry from the fast broker, the slow one is still taken.
        assert_eq!(pick(&aware, &i, Some("b"), t0), "a");
        // No starvation: once its EWMA is older than SLOW_MEMORY, the slow broker gets traffic
        // again (while the fast one keeps being measured).
        let later = t0 + SLOW_MEMORY + MS;
        aware.update_fault("b", MS * 20, false, true, later);
        let picks: Vec<String> = (0..4).map(|_| pick(&aware, &i, None, later)).collect();
        assert_eq!(picks.iter().filter(|b| *b == "a").count(), 2, "{picks:?}");
        // A new slow sample makes it avoided again.
        aware.update_fault("a", MS * 400, false, true, later);
        for _ in 0..8 {
            assert_eq!(pick(&aware, &i, None, later), "b");
        }
    }

    #[test]
    fn strategy_parsing() {
        for (s, want) in [
            ("round_robin", RoutingStrategy::RoundRobin),
            ("RoundRobin", RoutingStrategy::RoundRobin),
            ("round-robin", RoutingStrategy::RoundRobin),
            ("RANDOM", RoutingStrategy::Random),
            ("message_hash", RoutingStrategy::MessageHash),
            ("hash", RoutingStrategy::MessageHash),
        ] {
            assert_eq!(s.parse::<RoutingStrategy>().unwrap(), want, "{s}");
        }
        let e = "sticky".parse::<RoutingStrategy>().unwrap_err();
        assert!(matches!(e, Error::Config { ref setting, .. } if setting == "routing_strategy"));
        for s in [
            RoutingStrategy::RoundRobin,
            RoutingStrategy::Random,
            RoutingStrategy::MessageHash,
        ] {
            assert_eq!(s.to_string().parse::<RoutingStrategy>().unwrap(), s);
        }
    }

    /// The scan through a sender's remembered entries chooses as the scan by name, on random
    /// tables that change between choices (updates of every kind, removals, retains, brokers
    /// never reported), for every start, strategy flag, last broker and time.
    #[test]
    fn handles_choose_as_the_view() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let names = ["a", "b", "c", "d"];
        let mut compared = 0u32;
        for round in 0..60 {
            let r = MessageRouter::new(
                RoutingStrategy::RoundRobin,
                LatencyFaultTolerance::default(),
                true,
            )
            .with_latency_awareness(round % 3 != 0);
            let t0 = Instant::now();
            let brokers = &names[..rng.gen_range(1..=names.len())];
            let i = info(brokers, rng.gen_range(1..4));
            let mut handles = FaultHandles::default();
            for _ in 0..40 {
                // Change the table.
                for _ in 0..rng.gen_range(0..4) {
                    let b = names[rng.gen_range(0..names.len())];
                    match rng.gen_range(0..10) {
                        0 => r.fault().remove(b),
                        1 => r.fault().retain(|n| n != b),
                        2 => r.fault().mark_reachable(b),
                        _ => {
                            let latency = MS * [5, 40, 90, 300, 700, 2000][rng.gen_range(0..6)];
                            let at = t0 + MS * rng.gen_range(0..20_000);
                            let isolation = rng.gen_bool(0.2);
                            let reachable = rng.gen_bool(0.7);
                            r.update_fault(b, latency, isolation, reachable, at);
                        }
                    }
                }
                let now = t0 + MS * rng.gen_range(0..40_000);
                let lasts: Vec<Option<&str>> = std::iter::once(None)
                    .chain(brokers.iter().map(|b| Some(*b)))
                    .collect();
                for start in 0..i.queues().len() {
                    for hashed in [false, true] {
                        for last in &lasts {
                            let by_name = r.fault.with_view(|view| {
                                r.choose(&i, start, hashed, *last, now, &mut { *view })
                            });
                            let mut lookup = HandleLookup {
                                fault: &r.fault,
                                handles: &mut handles,
                            };
                            let by_handle = r.choose(&i, start, hashed, *last, now, &mut lookup);
                            assert_eq!(by_name, by_handle, "round {round} start {start}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    #[test]
    fn router_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<MessageRouter>();
    }
}
