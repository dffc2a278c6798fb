//! The route cache: topic -> publishable queues, and broker name -> addresses.
//!
//! [`TopicBrokerMapping`] holds one [`TopicPublishInfo`] per topic behind a `parking_lot::RwLock`.
//! A publish info is built **once per route change** (protocol.md 6.4): the queue list is sorted by
//! broker name, keeps only writable queues of brokers that have a master (id 0), and is then read
//! by every send with a short read lock and an `Arc` clone. The cache never calls the network:
//! the producer fetches routes and hands them in with [`TopicBrokerMapping::update_route`]. When a
//! refresh fails the caller simply does not call it, so the last good route stays.
//!
//! ```
//! use std::time::Instant;
//! use rocketmq_mio::protocol::route::TopicRouteData;
//! use rocketmq_mio::routing::mapping::TopicBrokerMapping;
//!
//! let route = TopicRouteData::from_json(br#"{"queueDatas":[{"brokerName":"broker-a","perm":6,
//!     "readQueueNums":2,"writeQueueNums":2}],"brokerDatas":[{"brokerName":"broker-a",
//!     "cluster":"c","brokerAddrs":{"0":"10.0.0.1:10911"}}]}"#).unwrap();
//! let mapping = TopicBrokerMapping::new();
//! let now = Instant::now();
//! assert!(mapping.update_route("orders", &route, now));
//! assert!(!mapping.update_route("orders", &route, now)); // unchanged
//! let info = mapping.get("orders", now).unwrap();
//! assert_eq!(info.queues().len(), 2);
//! assert_eq!(mapping.master_addr("broker-a").as_deref(), Some("10.0.0.1:10911"));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::FxHashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rand::Rng;

use crate::message::MessageQueue;
use crate::protocol::route::{perm, TopicRouteData, MASTER_ID};

/// The publishable queues of one topic, built once from a route.
pub struct TopicPublishInfo {
    topic: Arc<str>,
    queues: Vec<MessageQueue>,
    brokers: Vec<Arc<str>>,
    route: TopicRouteData,
    order_topic: bool,
    static_topic: bool,
    from_default: bool,
    fetched_at: Instant,
    next_queue: AtomicUsize,
}

impl TopicPublishInfo {
    /// Builds the queue list of `topic` from `route` (Java `topicRouteData2TopicPublishInfo`,
    /// protocol.md 6.4), fetched at `fetched_at`:
    ///
    /// 1. a non-empty `orderTopicConf` (`"brokerA:4;brokerB:4"`) gives queues `0..count` of each
    ///    broker in that order, and marks an order topic (perm and master are not checked, as in
    ///    Java; malformed items are skipped);
    /// 2. otherwise a static topic (non-empty `topicQueueMappingByBroker`) is **refused**: no
    ///    queues, and [`TopicPublishInfo::is_static_topic`] is true (logical queues are not
    ///    implemented);
    /// 3. otherwise, queue datas sorted by broker name; for each writable one whose broker has a
    ///    master (id 0), queues `0..writeQueueNums`.
    ///
    /// A route over the queue limits ([`TopicRouteData::check_limits`]) gets no queues.
    ///
    /// The stored route is [`TopicRouteData::normalized`].
    pub fn from_route(topic: &str, route: &TopicRouteData, fetched_at: Instant) -> Self {
        Self::build(topic.into(), route.normalized(), false, fetched_at)
    }

    fn build(
        topic: Arc<str>,
        route: TopicRouteData,
        from_default: bool,
        fetched_at: Instant,
    ) -> Self {
        let mut queues = Vec::new();
        let mut order_topic = false;
        let mut static_topic = false;
        // A route over the queue limits gets no queues rather than a huge allocation (the
        // mapping never installs one; this guards a publish info built directly).
        let within_limits = match route.check_limits() {
            Ok(()) => true,
            Err(e) => {
                log::error!("topic {topic}: {e}");
                false
            }
        };
        let order_conf = route
            .order_topic_conf
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if !within_limits {
            // No queues.
        } else if let Some(conf) = order_conf {
            order_topic = true;
            for item in conf.split(';').filter(|i| !i.trim().is_empty()) {
                let Some((broker, count)) = item.split_once(':') else {
                    log::warn!("topic {topic}: malformed orderTopicConf item {item:?} skipped");
                    continue;
                };
                let Ok(count) = count.trim().parse::<i32>() else {
                    log::warn!("topic {topic}: malformed orderTopicConf item {item:?} skipped");
                    continue;
                };
                let broker: Arc<str> = broker.trim().into();
                for id in 0..count.max(0) {
                    queues.push(MessageQueue::new(topic.clone(), broker.clone(), id));
                }
            }
        } else if route.has_static_queue_mapping {
            static_topic = true;
        } else {
            // `route` is normalized: queue datas are sorted by broker name.
            for qd in &route.queue_datas {
                if !perm::is_writeable(qd.perm) {
                    continue;
                }
                let has_master = route
                    .broker_data(&qd.broker_name)
                    .is_some_and(|bd| bd.broker_addrs.contains_key(&MASTER_ID));
                if !has_master {
                    continue;
                }
                let broker: Arc<str> = qd.broker_name.as_str().into();
                for id in 0..qd.write_queue_nums.max(0) {
                    queues.push(MessageQueue::new(topic.clone(), broker.clone(), id));
                }
            }
        }
        let mut brokers: Vec<Arc<str>> = Vec::new();
        for q in &queues {
            if !brokers.iter().any(|b| **b == *q.broker_name()) {
                brokers.push(q.broker_name_arc().clone());
            }
        }
        TopicPublishInfo {
            topic,
            queues,
            brokers,
            route,
            order_topic,
            static_topic,
            from_default,
            fetched_at,
            next_queue: AtomicUsize::new(rand::thread_rng().gen()),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The publishable queues, in selection order.
    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }

    /// The (normalized) route the queues were built from.
    pub fn route(&self) -> &TopicRouteData {
        &self.route
    }

    /// Whether the route came with an `orderTopicConf` (an order topic).
    pub fn is_order_topic(&self) -> bool {
        self.order_topic
    }

    /// Whether the route is a 5.x static topic, which this client refuses (no queues).
    pub fn is_static_topic(&self) -> bool {
        self.static_topic
    }

    /// Whether the queues come from the auto-create fallback (the `TBW102` route) rather than the
    /// topic's own route.
    pub fn is_from_default(&self) -> bool {
        self.from_default
    }

    /// When the route these queues were built from was installed.
    pub fn fetched_at(&self) -> Instant {
        self.fetched_at
    }

    /// Whether there is at least one queue to send to (Java `TopicPublishInfo.ok()`).
    pub fn is_ok(&self) -> bool {
        !self.queues.is_empty()
    }

    /// The distinct broker names of the queues, in queue order.
    pub fn broker_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.brokers.iter().map(|b| &**b)
    }

    /// The distinct brokers of the queues, in queue order (the queues share these names).
    pub(crate) fn broker_arcs(&self) -> &[Arc<str>] {
        &self.brokers
    }

    /// The next value of this topic's round-robin counter (it starts at a random value, as
    /// Java's `sendWhichQueue`).
    pub fn next_queue_index(&self) -> usize {
        self.next_queue.fetch_add(1, Ordering::Relaxed)
    }
}

impl fmt::Debug for TopicPublishInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicPublishInfo")
            .field("topic", &self.topic)
            .field("queues", &self.queues)
            .field("order_topic", &self.order_topic)
            .field("static_topic", &self.static_topic)
            .field("from_default", &self.from_default)
            .field("fetched_at", &self.fetched_at)
            .finish_non_exhaustive()
    }
}

struct Entry {
    info: Arc<TopicPublishInfo>,
    /// Milliseconds since the mapping's base instant, of the last `get`, or of the last
    /// expiry sweep that found `used` set.
    last_used_ms: AtomicU64,
    /// Set by uses through [`TopicBrokerMapping::get_memo`] (shared with the memos): such a
    /// use reads no clock; the next [`TopicBrokerMapping::expire_unused`] counts it as made
    /// then (and clears the flag).
    used: Arc<AtomicBool>,
}

/// A caller's memory of the last topic it looked up ([`TopicBrokerMapping::get_memo`]): its
/// publish info and its use flag, at the version of the topic table they were read at.
#[derive(Clone, Default)]
pub(crate) struct TopicMemo {
    /// The topic table's version when `entry` was read.
    version: u64,
    entry: Option<(Arc<TopicPublishInfo>, Arc<AtomicBool>)>,
}

/// The route cache of a client: topic -> [`TopicPublishInfo`], and broker name -> {id -> address}.
///
/// `Send + Sync`; reads take a short read lock and clone an `Arc`.
pub struct TopicBrokerMapping {
    base: Instant,
    topics: RwLock<FxHashMap<String, Entry>>,
    brokers: RwLock<FxHashMap<String, BrokerAddrs>>,
    /// Bumped (under the write lock of `brokers`) whenever the address table changes: an
    /// address looked up at one version is still the table's while the version is the same.
    brokers_version: AtomicU64,
    /// Bumped (under the write lock of `topics`) whenever a topic's publish info is replaced
    /// or a topic removed: an entry read at one version is still the table's while the
    /// version is the same.
    topics_version: AtomicU64,
}

/// The addresses of one broker name, and its master's shared (handed out per attempt without
/// copying it).
#[derive(Debug)]
struct BrokerAddrs {
    addrs: BTreeMap<i64, String>,
    master: Option<Arc<str>>,
}

impl BrokerAddrs {
    fn new(addrs: BTreeMap<i64, String>) -> Self {
        let master = addrs.get(&MASTER_ID).map(|a| Arc::from(a.as_str()));
        BrokerAddrs { addrs, master }
    }
}

impl Default for TopicBrokerMapping {
    fn default() -> Self {
        TopicBrokerMapping::new()
    }
}

impl fmt::Debug for TopicBrokerMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicBrokerMapping")
            .field("topics", &self.topics())
            .field("brokers", &*self.brokers.read())
            .finish()
    }
}

impl TopicBrokerMapping {
    /// An empty cache. Last-use times are kept as milliseconds since the moment it is created;
    /// `now` arguments earlier than that count as that moment.
    pub fn new() -> Self {
        TopicBrokerMapping {
            base: Instant::now(),
            topics: RwLock::new(FxHashMap::default()),
            brokers: RwLock::new(FxHashMap::default()),
            brokers_version: AtomicU64::new(0),
            topics_version: AtomicU64::new(0),
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// The publish info of `topic`, recording `now` as its last use.
    pub fn get(&self, topic: &str, now: Instant) -> Option<Arc<TopicPublishInfo>> {
        let topics = self.topics.read();
        let entry = topics.get(topic)?;
        entry
            .last_used_ms
            .fetch_max(self.millis(now), Ordering::Relaxed);
        Some(entry.info.clone())
    }

    /// [`TopicBrokerMapping::get`] remembered in `memo`: while no topic's publish info has
    /// been replaced or removed since `memo` read it, the same topic is answered from `memo`
    /// (lent, not cloned), without the table's lock or a hash of the name. The use is
    /// recorded without a clock: it sets the topic's use flag (when not set: one read
    /// otherwise), which the next [`TopicBrokerMapping::expire_unused`] counts as a use at
    /// its own `now`.
    // Always inlined: a hit (the rule, once per attempt) is a few comparisons, where a call
    // costs as much; the table's look-up is out of line.
    #[inline(always)]
    pub(crate) fn get_memo<'m>(
        &self,
        topic: &str,
        memo: &'m mut TopicMemo,
    ) -> Option<&'m Arc<TopicPublishInfo>> {
        let hit = match &memo.entry {
            Some((info, _)) => {
                memo.version == self.topics_version.load(Ordering::Acquire) && info.topic() == topic
            }
            None => false,
        };
        if !hit {
            self.fill_memo(topic, memo);
        }
        let (info, used) = memo.entry.as_ref()?;
        if !used.load(Ordering::Relaxed) {
            used.store(true, Ordering::Relaxed);
        }
        Some(info)
    }

    /// Fills `memo` for `topic` from the table (empties it when `topic` is not cached).
    #[inline(never)]
    fn fill_memo(&self, topic: &str, memo: &mut TopicMemo) {
        let topics = self.topics.read();
        // Read under the lock: the version bumps only under the write lock.
        let version = self.topics_version.load(Ordering::Acquire);
        let Some(entry) = topics.get(topic) else {
            memo.entry = None;
            return;
        };
        memo.version = version;
        memo.entry = Some((entry.info.clone(), entry.used.clone()));
    }

    /// The publish info of `topic`, without recording a use (for the refresh service).
    pub fn peek(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        self.topics.read().get(topic).map(|e| e.info.clone())
    }

    /// Whether `topic` is cached.
    pub fn contains(&self, topic: &str) -> bool {
        self.topics.read().contains_key(topic)
    }

    /// Installs a route fetched for `topic` at `now`. Returns whether anything changed: the
    /// publish info is rebuilt only when the normalized route differs from the cached one (or the
    /// cached one came from the auto-create fallback). The broker address table is updated from
    /// the route either way. A route over the queue limits
    /// ([`TopicRouteData::check_limits`]) is refused (logged, `false`): nothing changes and the
    /// last good route stays.
    pub fn update_route(&self, topic: &str, route: &TopicRouteData, now: Instant) -> bool {
        self.install(topic, route.normalized(), false, now)
    }

    /// Installs the auto-create fallback for `topic` (protocol.md 6.5): `default_route` is the
    /// route of the create-topic key (`TBW102`); every queue data's read and write queue counts
    /// become `min(default_topic_queue_nums, readQueueNums)`, and the queues are built for
    /// `topic`. Returns whether anything changed.
    pub fn update_from_default(
        &self,
        topic: &str,
        default_route: &TopicRouteData,
        default_topic_queue_nums: u32,
        now: Instant,
    ) -> bool {
        let wanted = i32::try_from(default_topic_queue_nums).unwrap_or(i32::MAX);
        let mut route = default_route.normalized();
        for qd in &mut route.queue_datas {
            let n = wanted.min(qd.read_queue_nums);
            qd.read_queue_nums = n;
            qd.write_queue_nums = n;
        }
        self.install(topic, route, true, now)
    }

    fn install(
        &self,
        topic: &str,
        normalized: TopicRouteData,
        from_default: bool,
        now: Instant,
    ) -> bool {
        if let Err(e) = normalized.check_limits() {
            // Refused whole (broker addresses included): the last good route stays.
            log::error!("topic {topic}: {e}; keeping the last good route");
            return false;
        }
        self.update_brokers(&normalized);
        let unchanged = self
            .topics
            .read()
            .get(topic)
            .is_some_and(|e| e.info.from_default == from_default && e.info.route == normalized);
        if unchanged {
            return false;
        }
        // Built outside the lock; swapped in under the write lock.
        let info = Arc::new(TopicPublishInfo::build(
            topic.into(),
            normalized,
            from_default,
            now,
        ));
        let now_ms = self.millis(now);
        let mut topics = self.topics.write();
        match topics.get_mut(topic) {
            Some(entry) => entry.info = info,
            None => {
                topics.insert(
                    topic.to_owned(),
                    Entry {
                        info,
                        last_used_ms: AtomicU64::new(now_ms),
                        used: Arc::new(AtomicBool::new(false)),
                    },
                );
            }
        }
        self.topics_version.fetch_add(1, Ordering::Release);
        true
    }

    fn update_brokers(&self, route: &TopicRouteData) {
        if route.broker_datas.is_empty() {
            return;
        }
        let mut brokers = self.brokers.write();
        for bd in &route.broker_datas {
            if brokers.get(&bd.broker_name).map(|b| &b.addrs) != Some(&bd.broker_addrs) {
                brokers.insert(
                    bd.broker_name.clone(),
                    BrokerAddrs::new(bd.broker_addrs.clone()),
                );
                self.brokers_version.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Removes `topic`, returning its publish info.
    pub fn remove(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        let mut topics = self.topics.write();
        let removed = topics.remove(topic).map(|e| e.info);
        if removed.is_some() {
            self.topics_version.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// The cached topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.topics.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// How many topics are cached.
    pub fn len(&self) -> usize {
        self.topics.read().len()
    }

    /// Whether no topic is cached.
    pub fn is_empty(&self) -> bool {
        self.topics.read().is_empty()
    }

    /// Removes the topics not used for more than `max_idle` before `now`; returns their names,
    /// sorted. A topic counts as used when its route was first installed, at each
    /// [`TopicBrokerMapping::get`], and (to the precision of these sweeps) at each look-up
    /// through a sender's memo (the producer's sending path): a topic used through a memo
    /// since the last sweep counts as used at this one's `now`. So a topic sent to only
    /// through memos expires at
    /// the first sweep that finds it unused for more than `max_idle` since the first sweep
    /// after its last use: at most one sweep interval later than its exact last use would
    /// say, never earlier.
    pub fn expire_unused(&self, now: Instant, max_idle: Duration) -> Vec<String> {
        let now_ms = self.millis(now);
        let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
        let is_idle = |e: &Entry| {
            if e.used.swap(false, Ordering::Relaxed) {
                e.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
            }
            now_ms.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) > max_idle_ms
        };
        if !self.topics.read().values().any(is_idle) {
            return Vec::new();
        }
        let mut removed = Vec::new();
        let mut topics = self.topics.write();
        topics.retain(|name, e| {
            let idle = is_idle(e);
            if idle {
                removed.push(name.clone());
            }
            !idle
        });
        if !removed.is_empty() {
            self.topics_version.fetch_add(1, Ordering::Release);
        }
        drop(topics);
        removed.sort();
        removed
    }

    /// The master address (broker id 0) of `broker_name`.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.broker_addr(broker_name, MASTER_ID)
    }

    /// The address of broker `id` of `broker_name`.
    pub fn broker_addr(&self, broker_name: &str, id: i64) -> Option<String> {
        self.brokers
            .read()
            .get(broker_name)?
            .addrs
            .get(&id)
            .cloned()
    }

    /// The master address of `broker_name`, shared (no copy: what every send attempt asks).
    pub(crate) fn master_addr_shared(&self, broker_name: &str) -> Option<Arc<str>> {
        self.brokers.read().get(broker_name)?.master.clone()
    }

    /// The version of the broker address table: it changes whenever the table does, so an
    /// address read at a version (see [`TopicBrokerMapping::master_addr_versioned`]) may be
    /// used again, without a lookup, while this returns the same.
    pub(crate) fn brokers_version(&self) -> u64 {
        self.brokers_version.load(Ordering::Acquire)
    }

    /// [`TopicBrokerMapping::master_addr_shared`] with the version of the table it was read
    /// from.
    pub(crate) fn master_addr_versioned(&self, broker_name: &str) -> (u64, Option<Arc<str>>) {
        let brokers = self.brokers.read();
        // Changed only under the write lock: this is the version of what is read here.
        let version = self.brokers_version.load(Ordering::Acquire);
        let addr = brokers.get(broker_name).and_then(|b| b.master.clone());
        (version, addr)
    }

    /// The name of the broker that has `addr` (master or slave).
    pub fn broker_name_of(&self, addr: &str) -> Option<String> {
        self.brokers
            .read()
            .iter()
            .find(|(_, b)| b.addrs.values().any(|a| a == addr))
            .map(|(name, _)| name.clone())
    }

    /// `(broker name, master address)` of every broker with a master, sorted by name: where a
    /// producer sends heartbeats (Java skips slaves when the client has no consumers).
    pub fn broker_addrs_for_heartbeat(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .brokers
            .read()
            .iter()
            .filter_map(|(name, b)| {
                b.addrs
                    .get(&MASTER_ID)
                    .map(|addr| (name.clone(), addr.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// `(broker name, address)` of every master and slave, sorted by name then broker id: where
    /// UNREGISTER_CLIENT goes on shutdown.
    pub fn all_broker_addrs(&self) -> Vec<(String, String)> {
        let brokers = self.brokers.read();
        let mut names: Vec<&String> = brokers.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            for addr in brokers[name].addrs.values() {
                out.push((name.clone(), addr.clone()));
            }
        }
        out
    }

    /// Removes from the address table every broker that appears in no cached route (Java
    /// `cleanOfflineBroker`); returns the names removed, sorted.
    pub fn clean_offline_brokers(&self) -> Vec<String> {
        let live: BTreeSet<String> = self
            .topics
            .read()
            .values()
            .flat_map(|e| e.info.route.broker_datas.iter())
            .map(|bd| bd.broker_name.clone())
            .collect();
        let mut removed = Vec::new();
        let mut brokers = self.brokers.write();
        brokers.retain(|name, _| {
            let keep = live.contains(name);
            if !keep {
                removed.push(name.clone());
            }
            keep
        });
        if !removed.is_empty() {
            self.brokers_version.fetch_add(1, Ordering::Release);
        }
        drop(brokers);
        removed.sort();
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::route::{BrokerData, QueueData};

    fn qd(name: &str, read: i32, write: i32, perm: i32) -> QueueData {
        QueueData {
            broker_name: name.into(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_sys_flag: 0,
        }
    }

    fn bd(name: &str, addrs: &[(i64, &str)]) -> BrokerData {
        BrokerData {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_addrs: addrs.iter().map(|(i, a)| (*i, a.to_string())).collect(),
            zone_name: None,
            enable_acting_master: false,
        }
    }

    fn route() -> TopicRouteData {
        TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![
                qd("broker-c", 4, 2, 6),
                qd("broker-a", 4, 3, 6),
                qd("broker-ro", 4, 4, 4),         // read-only: skipped
                qd("broker-slave-only", 4, 4, 6), // no master: skipped
                qd("broker-missing", 4, 4, 6),    // no broker data: skipped
                qd("broker-b", 4, 0, 6),          // no write queues
            ],
            broker_datas: vec![
                bd("broker-a", &[(0, "a:1"), (1, "a2:1")]),
                bd("broker-b", &[(0, "b:1")]),
                bd("broker-c", &[(0, "c:1")]),
                bd("broker-ro", &[(0, "ro:1")]),
                bd("broker-slave-only", &[(1, "s:1")]),
            ],
            has_static_queue_mapping: false,
        }
    }

    fn names(info: &TopicPublishInfo) -> Vec<String> {
        info.queues().iter().map(|q| q.to_string()).collect()
    }

    #[test]
    fn publish_queues_sorted_writable_master_only() {
        let info = TopicPublishInfo::from_route("t", &route(), Instant::now());
        assert_eq!(
            names(&info),
            [
                "t@broker-a#0",
                "t@broker-a#1",
                "t@broker-a#2",
                "t@broker-c#0",
                "t@broker-c#1"
            ]
        );
        assert!(info.is_ok() && !info.is_order_topic() && !info.is_static_topic());
        assert_eq!(
            info.broker_names().collect::<Vec<_>>(),
            ["broker-a", "broker-c"]
        );
        let a = info.next_queue_index();
        assert_eq!(info.next_queue_index(), a.wrapping_add(1));
    }

    #[test]
    fn order_topic_conf() {
        let mut r = route();
        r.order_topic_conf = Some("broker-z:2;bad;broker-a:x;broker-b:1; ".into());
        let info = TopicPublishInfo::from_route("t", &r, Instant::now());
        assert!(info.is_order_topic());
        assert_eq!(
            names(&info),
            ["t@broker-z#0", "t@broker-z#1", "t@broker-b#0"]
        );
        r.order_topic_conf = Some("  ".into());
        assert!(!TopicPublishInfo::from_route("t", &r, Instant::now()).is_order_topic());
    }

    #[test]
    fn static_topic_refused() {
        let mut r = route();
        r.has_static_queue_mapping = true;
        let info = TopicPublishInfo::from_route("t", &r, Instant::now());
        assert!(info.is_static_topic() && !info.is_ok());
        // orderTopicConf wins over the static mapping, as in Java.
        r.order_topic_conf = Some("broker-a:1".into());
        let info = TopicPublishInfo::from_route("t", &r, Instant::now());
        assert!(!info.is_static_topic() && info.is_ok());
    }

    /// A memo answers what `get` answers, through route changes, removals, expiry and
    /// other topics, and records its uses for expiry as `get` does.
    #[test]
    fn get_memo_agrees_with_get() {
        let m = TopicBrokerMapping::new();
        let t0 = m.base;
        let mut memo = TopicMemo::default();
        let mut other = route();
        other.queue_datas.retain(|q| q.broker_name == "broker-a");
        let same = |memo: &mut TopicMemo, topic: &str, at: Instant| {
            let memoed = m.get_memo(topic, memo);
            let got = m.get(topic, at);
            match (memoed, got) {
                (Some(a), Some(b)) => assert!(Arc::ptr_eq(a, &b), "{topic}"),
                (None, None) => {}
                (a, b) => panic!("{topic}: memo {a:?}, get {b:?}"),
            }
        };
        same(&mut memo, "T", t0);
        assert!(m.update_route("T", &route(), t0));
        same(&mut memo, "T", t0);
        same(&mut memo, "T", t0);
        assert!(m.update_route("T", &other, t0)); // replaced: the memo sees the new one
        same(&mut memo, "T", t0);
        assert!(m.update_route("U", &route(), t0));
        same(&mut memo, "U", t0);
        same(&mut memo, "T", t0);
        same(&mut memo, "T", t0);
        m.remove("T");
        same(&mut memo, "T", t0);
        assert!(m.update_route("T", &route(), t0));
        same(&mut memo, "T", t0);
        // Uses through the memo alone keep the topic from expiring.
        let minute = Duration::from_secs(60);
        for i in 1..=3 {
            assert!(m.get_memo("T", &mut memo).is_some());
            let gone = m.expire_unused(t0 + minute * i, minute * 2);
            assert!(!gone.contains(&"T".to_string()));
        }
        // Both used (U through `same`) since the last sweep: both count as used at the
        // next one, and go at the first sweep more than the idle time after it.
        same(&mut memo, "U", t0);
        assert!(m.get_memo("T", &mut memo).is_some());
        assert!(m.expire_unused(t0 + minute * 6, minute * 2).is_empty());
        assert!(m.expire_unused(t0 + minute * 8, minute * 2).is_empty());
        assert_eq!(m.expire_unused(t0 + minute * 9, minute * 2), vec!["T", "U"]);
        same(&mut memo, "T", t0);
        same(&mut memo, "U", t0);
    }

    /// A use through a memo reads no clock: the next expiry sweep counts it as made at its
    /// own `now`. A topic used through memos between every two sweeps never expires, even
    /// at the shortest expiry (1 s); once its uses stop it goes at the first sweep more than
    /// the expiry after the last sweep that saw a use, never earlier.
    #[test]
    fn memo_uses_count_at_the_next_sweep() {
        let m = TopicBrokerMapping::new();
        let t0 = m.base;
        let ms = Duration::from_millis(1);
        let expiry = Duration::from_secs(1);
        let sweep_every = ms * 20;
        assert!(m.update_route("T", &route(), t0));
        assert!(m.update_route("Idle", &route(), t0));
        let mut memo = TopicMemo::default();
        // Used through the memo between every two sweeps for 5 s: never expires.
        let mut t = t0;
        let mut memo_uses = 0;
        while t < t0 + Duration::from_secs(5) {
            for _ in 0..3 {
                assert!(m.get_memo("T", &mut memo).is_some());
                memo_uses += 1;
            }
            t += sweep_every;
            let gone = m.expire_unused(t, expiry);
            assert!(
                !gone.contains(&"T".to_string()),
                "T expired at {:?}",
                t - t0
            );
        }
        assert!(memo_uses > 100);
        // The idle one went after its expiry, not before.
        assert!(!m.contains("Idle"));
        let last_sweep_with_use = t;
        // No more uses: kept through the expiry after that sweep, gone at the first after it.
        let mut at = last_sweep_with_use;
        loop {
            at += sweep_every;
            let gone = m.expire_unused(at, expiry);
            if gone == ["T"] {
                break;
            }
            assert!(gone.is_empty());
            assert!(at <= last_sweep_with_use + expiry, "T kept too long");
        }
        assert!(at > last_sweep_with_use + expiry, "T expired early");
        assert!(at <= last_sweep_with_use + expiry + sweep_every);
        // The memo sees it gone; a new route is found again.
        assert!(m.get_memo("T", &mut memo).is_none());
        assert!(m.update_route("T", &route(), at));
        assert!(m.get_memo("T", &mut memo).is_some());
    }

    #[test]
    fn update_detects_changes_and_keeps_last_good() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        assert!(m.get("t", t0).is_none());
        assert!(m.update_route("t", &route(), t0));
        let first = m.get("t", t0).unwrap();
        // Same route in another order: unchanged, same Arc.
        let mut shuffled = route();
        shuffled.queue_datas.reverse();
        shuffled.broker_datas.reverse();
        assert!(!m.update_route("t", &shuffled, t0 + Duration::from_secs(1)));
        assert!(Arc::ptr_eq(&first, &m.get("t", t0).unwrap()));
        // A broker leaves: changed, rebuilt.
        let mut smaller = route();
        smaller.queue_datas.retain(|q| q.broker_name != "broker-c");
        smaller.broker_datas.retain(|b| b.broker_name != "broker-c");
        let t1 = t0 + Duration::from_secs(30);
        assert!(m.update_route("t", &smaller, t1));
        let second = m.get("t", t1).unwrap();
        assert_eq!(second.broker_names().collect::<Vec<_>>(), ["broker-a"]);
        assert_eq!(second.fetched_at(), t1);
        // A failed refresh means no call: the last good route stays.
        assert!(Arc::ptr_eq(&second, &m.peek("t").unwrap()));
        assert_eq!(m.topics(), ["t"]);
        assert!(m.contains("t") && m.len() == 1 && !m.is_empty());
    }

    #[test]
    fn over_limit_route_is_refused_and_the_last_good_one_kept() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        assert!(m.update_route("t", &route(), t0));
        let good = m.get("t", t0).unwrap();
        // Over the limit but cheap to build, so that the unfixed code fails the test instead
        // of aborting the process.
        let mut huge = route();
        huge.queue_datas[1].write_queue_nums = 100_000;
        assert!(!m.update_route("t", &huge, t0));
        assert!(Arc::ptr_eq(&good, &m.get("t", t0).unwrap()));
        let mut ordered = route();
        ordered.order_topic_conf = Some("broker-a:100000".into());
        assert!(!m.update_route("t", &ordered, t0));
        assert!(Arc::ptr_eq(&good, &m.get("t", t0).unwrap()));
        // The auto-create fallback from an over-limit template is refused too.
        assert!(!m.update_from_default("u", &ordered, 4, t0));
        assert!(m.get("u", t0).is_none());
        // A publish info built directly from such a route has no queues.
        let info = TopicPublishInfo::from_route("t", &huge, t0);
        assert!(!info.is_ok());
        // The broker table is not touched by a refused route either.
        let mut moved = huge.clone();
        moved.broker_datas[0] = bd("broker-a", &[(0, "elsewhere:1")]);
        assert!(!m.update_route("t", &moved, t0));
        assert_eq!(m.master_addr("broker-a").as_deref(), Some("a:1"));
    }

    #[test]
    fn a_route_of_2_pow_31_queues_is_refused_without_allocating() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        assert!(m.update_route("t", &route(), t0));
        let mut huge = route();
        huge.queue_datas[1].write_queue_nums = i32::MAX;
        assert!(!m.update_route("t", &huge, t0));
        assert_eq!(m.get("t", t0).unwrap().queues().len(), 5);
        let mut ordered = route();
        ordered.order_topic_conf = Some(format!("broker-a:{}", i32::MAX));
        assert!(!m.update_route("t", &ordered, t0));
        assert!(!TopicPublishInfo::from_route("t", &ordered, t0).is_ok());
        assert_eq!(m.get("t", t0).unwrap().queues().len(), 5);
    }

    #[test]
    fn broker_tables() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        m.update_route("t", &route(), t0);
        assert_eq!(m.master_addr("broker-a").as_deref(), Some("a:1"));
        assert_eq!(m.broker_addr("broker-a", 1).as_deref(), Some("a2:1"));
        assert_eq!(m.master_addr("broker-slave-only"), None);
        assert_eq!(m.master_addr("nope"), None);
        assert_eq!(m.broker_name_of("a2:1").as_deref(), Some("broker-a"));
        let hb: Vec<(String, String)> = m.broker_addrs_for_heartbeat();
        let hb: Vec<(&str, &str)> = hb.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            hb,
            [
                ("broker-a", "a:1"),
                ("broker-b", "b:1"),
                ("broker-c", "c:1"),
                ("broker-ro", "ro:1")
            ]
        );
        let all = m.all_broker_addrs();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], ("broker-a".to_string(), "a:1".to_string()));
        assert_eq!(all[1], ("broker-a".to_string(), "a2:1".to_string()));
        // A new master address replaces the old.
        let mut moved = route();
        moved.broker_datas[0] = bd("broker-a", &[(0, "a-new:1")]);
        m.update_route("t", &moved, t0);
        assert_eq!(m.master_addr("broker-a").as_deref(), Some("a-new:1"));
    }

    #[test]
    fn clean_offline_brokers_after_route_change() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        m.update_route("t", &route(), t0);
        let other = TopicRouteData {
            queue_datas: vec![qd("broker-x", 1, 1, 6)],
            broker_datas: vec![bd("broker-x", &[(0, "x:1")])],
            ..TopicRouteData::default()
        };
        m.update_route("u", &other, t0);
        assert!(m.clean_offline_brokers().is_empty());
        let mut smaller = route();
        smaller.broker_datas.retain(|b| b.broker_name == "broker-a");
        m.update_route("t", &smaller, t0);
        assert_eq!(
            m.clean_offline_brokers(),
            ["broker-b", "broker-c", "broker-ro", "broker-slave-only"]
        );
        assert_eq!(m.master_addr("broker-a").as_deref(), Some("a:1"));
        assert_eq!(m.master_addr("broker-x").as_deref(), Some("x:1"));
        m.remove("u");
        assert_eq!(m.clean_offline_brokers(), ["broker-x"]);
    }

    #[test]
    fn default_route_fallback() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        let tbw102 = TopicRouteData {
            queue_datas: vec![qd("broker-a", 8, 8, 7), qd("broker-b", 2, 2, 7)],
            broker_datas: vec![bd("broker-a", &[(0, "a:1")]), bd("broker-b", &[(0, "b:1")])],
            ..TopicRouteData::default()
        };
        assert!(m.update_from_default("new-topic", &tbw102, 4, t0));
        let info = m.get("new-topic", t0).unwrap();
        assert!(info.is_from_default());
        assert_eq!(
            names(&info),
            [
                "new-topic@broker-a#0",
                "new-topic@broker-a#1",
                "new-topic@broker-a#2",
                "new-topic@broker-a#3",
                "new-topic@broker-b#0",
                "new-topic@broker-b#1"
            ]
        );
        assert_eq!(info.route().queue_datas[0].read_queue_nums, 4);
        assert_eq!(m.master_addr("broker-b").as_deref(), Some("b:1"));
        assert!(!m.update_from_default("new-topic", &tbw102, 4, t0));
        // The topic's own route, once it exists, replaces the fallback even if identical.
        let own = m.get("new-topic", t0).unwrap().route().clone();
        assert!(m.update_route("new-topic", &own, t0));
        assert!(!m.get("new-topic", t0).unwrap().is_from_default());
    }

    #[test]
    fn expiry_of_unused_topics() {
        let m = TopicBrokerMapping::new();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        m.update_route("a", &route(), t0);
        m.update_route("b", &route(), t0);
        m.update_route("c", &route(), t0 + s * 50);
        let _ = m.get("a", t0 + s * 90);
        // peek does not count as use.
        let _ = m.peek("b");
        assert!(m.expire_unused(t0 + s * 60, s * 60).is_empty());
        assert_eq!(m.expire_unused(t0 + s * 100, s * 60), ["b"]);
        assert_eq!(m.topics(), ["a", "c"]);
        // An update does not refresh the use time, but does not reset it either.
        m.update_route("a", &TopicRouteData::default(), t0 + s * 100);
        assert_eq!(m.expire_unused(t0 + s * 151, s * 60), ["a", "c"]);
        assert!(m.is_empty());
    }

    #[test]
    fn concurrent_readers_and_writer() {
        let m = Arc::new(TopicBrokerMapping::new());
        let t0 = Instant::now();
        m.update_route("t", &route(), t0);
        let mut smaller = route();
        smaller.queue_datas.truncate(1);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let info = m.get("t", t0).unwrap();
                        let n = info.queues().len();
                        assert!(n == 5 || n == 2, "{n}");
                    }
                })
            })
            .collect();
        let full = route();
        for i in 0..200 {
            let r = if i % 2 == 0 { &smaller } else { &full };
            m.update_route("t", r, t0);
        }
        for r in readers {
            r.join().unwrap();
        }
    }
}
