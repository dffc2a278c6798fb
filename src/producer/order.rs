//! Strict order ([`ProducerConfig::strict_order`](crate::ProducerConfig::strict_order)) and
//! the tracking of queue-count changes that every producer does.
//!
//! # Strict order
//!
//! An ordered send maps its key to a queue: a selector's pick, or the message-hash strategy's
//! `hash(key) % n`. Both depend on the queue list, so when a topic's queue count changes, or a
//! broker drops out of the list, the same key silently lands on another queue: the Java
//! client's behaviour, and what this producer does with strict order off.
//!
//! With strict order on, keys are mapped over the topic's *reference layout*: the queue list
//! of the first route the producer used for an ordered send to the topic (or the one accepted
//! with [`Producer::accept_route`](crate::Producer::accept_route)). The queue found there is
//! then checked against the current route: if it is gone, not writable, or on a broker the
//! fault table isolates (with fault tolerance on), the send fails at once with
//! [`Error::OrderViolation`] and goes nowhere else. A later send of the key succeeds once the
//! queue is back. Keys whose queues are unaffected keep going; queues added to the topic are
//! not used by keyed sends until the new layout is accepted.
//!
//! # Queue-count changes
//!
//! Every route update that changes a topic's number of publish queues is logged (warning, with
//! the old and the new count) and counted per topic, shown in the health report's routes. The
//! count survives the route's expiry from the cache.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::inner::Inner;
use super::prepare::Prepared;
use crate::error::{Error, Result};
use crate::message::MessageQueue;
use crate::protocol::route::perm;
use crate::routing::mapping::TopicPublishInfo;
use crate::routing::router::RoutingStrategy;
use crate::routing::selector::MessageHashSelector;

#[derive(Default)]
struct TopicOrder {
    /// The layout keys map over (strict order only).
    reference: Option<Arc<TopicPublishInfo>>,
    /// The queue count of the last route seen.
    last_count: Option<usize>,
    /// Route updates that changed the queue count.
    changes: u64,
    /// The count before the last change.
    previous_count: Option<usize>,
}

/// Per topic (as on the wire): the strict-order reference layout and the queue-count changes.
#[derive(Default)]
pub(crate) struct OrderBook {
    topics: Mutex<HashMap<String, TopicOrder>>,
}

impl std::fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderBook")
            .field("topics", &self.topics.lock().len())
            .finish()
    }
}

/// What the health report shows of a topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TopicOrderView {
    pub(crate) changes: u64,
    pub(crate) previous_count: Option<usize>,
    pub(crate) reference_count: Option<usize>,
}

impl OrderBook {
    /// Records the queue count of a new route; returns `(old, new)` when it changed.
    fn route_seen(&self, topic: &str, count: usize) -> Option<(usize, usize)> {
        let mut topics = self.topics.lock();
        let t = topics.entry(topic.to_string()).or_default();
        let old = t.last_count.replace(count);
        match old {
            Some(old) if old != count => {
                t.changes += 1;
                t.previous_count = Some(old);
                Some((old, count))
            }
            _ => None,
        }
    }

    /// The reference layout of `topic`, set to `current` if there is none yet.
    fn reference(&self, topic: &str, current: &Arc<TopicPublishInfo>) -> Arc<TopicPublishInfo> {
        let mut topics = self.topics.lock();
        let t = topics.entry(topic.to_string()).or_default();
        t.reference.get_or_insert_with(|| current.clone()).clone()
    }

    fn accept(&self, topic: &str, current: &Arc<TopicPublishInfo>) -> Option<usize> {
        let mut topics = self.topics.lock();
        let t = topics.entry(topic.to_string()).or_default();
        t.reference
            .replace(current.clone())
            .map(|old| old.queues().len())
    }

    pub(crate) fn view(&self, topic: &str) -> TopicOrderView {
        let topics = self.topics.lock();
        topics
            .get(topic)
            .map_or_else(TopicOrderView::default, |t| TopicOrderView {
                changes: t.changes,
                previous_count: t.previous_count,
                reference_count: t.reference.as_ref().map(|r| r.queues().len()),
            })
    }
}

/// Why `queue` cannot take messages under `current`, or `None` if it can.
fn why_unusable(queue: &MessageQueue, current: &TopicPublishInfo) -> Option<String> {
    if current.queues().contains(queue) {
        return None;
    }
    let broker = queue.broker_name();
    let route = current.route();
    let Some(qd) = route.queue_datas.iter().find(|qd| qd.broker_name == broker) else {
        return Some(format!("broker {broker} is no longer in the topic's route"));
    };
    if !perm::is_writeable(qd.perm) {
        return Some(format!(
            "broker {broker} does not take writes for the topic (perm {})",
            qd.perm
        ));
    }
    if queue.queue_id() >= qd.write_queue_nums {
        return Some(format!(
            "the queue is gone: broker {broker} has {} write queues now, the key's layout had \
             more (the topic's queue count changed)",
            qd.write_queue_nums
        ));
    }
    if current.route().broker_datas.iter().all(|b| {
        b.broker_name != broker
            || !b
                .broker_addrs
                .contains_key(&crate::protocol::route::MASTER_ID)
    }) {
        return Some(format!("broker {broker} has no master"));
    }
    Some("the queue is not in the topic's current route".into())
}

impl Inner {
    /// The key that strict order maps to a queue for an automatic send, if any: strict order
    /// on, the message-hash strategy, and a message with a key.
    pub(super) fn strict_hash_key<'a>(&self, prepared: &'a Prepared) -> Option<&'a str> {
        if self.config.strict_order() && self.router.strategy() == RoutingStrategy::MessageHash {
            prepared.first_key.as_deref()
        } else {
            None
        }
    }

    /// Strict order: the queue `pick` chooses from the reference layout, if the current route
    /// `info` lets it take messages now; [`Error::OrderViolation`] otherwise.
    pub(super) fn strict_pick(
        &self,
        info: &Arc<TopicPublishInfo>,
        pick: impl FnOnce(&[MessageQueue]) -> Result<usize>,
    ) -> Result<MessageQueue> {
        let reference = self.order.reference(info.topic(), info);
        let queues = reference.queues();
        if queues.is_empty() {
            return Err(Error::NoRoute {
                topic: info.topic().to_string(),
                reason: "the route has no queue".into(),
                source: None,
            });
        }
        let queue = queues[pick(queues)? % queues.len()].clone();
        if let Some(reason) = why_unusable(&queue, info) {
            return Err(Error::OrderViolation { queue, reason });
        }
        let broker = queue.broker_name();
        if self.router.fault_tolerance_enabled()
            && !self.router.fault().is_available(broker, self.routing_now())
        {
            let reason = format!(
                "broker {broker} is isolated by the fault table after failed or slow sends; \
                 the key's sends resume when the isolation ends"
            );
            return Err(Error::OrderViolation { queue, reason });
        }
        Ok(queue)
    }

    /// The strict-order pick of the message-hash strategy for `key`.
    pub(super) fn strict_hash_pick(
        &self,
        info: &Arc<TopicPublishInfo>,
        key: &str,
    ) -> Result<MessageQueue> {
        self.strict_pick(info, |queues| {
            Ok(MessageHashSelector::index_for(key, queues.len()))
        })
    }

    /// After a route update of `wire_topic`: logs and counts a change of its queue count.
    pub(super) fn note_route(&self, wire_topic: &str) {
        let Some(info) = self.mapping.peek(wire_topic) else {
            return;
        };
        if let Some((old, new)) = self.order.route_seen(wire_topic, info.queues().len()) {
            let strict = if self.config.strict_order() {
                "strict order keeps keys on their queues; keys whose queue is gone fail"
            } else {
                "keys of ordered sends may move to other queues"
            };
            log::warn!("topic {wire_topic}: queue count changed from {old} to {new}; {strict}");
        }
    }

    /// Makes the current route of `wire_topic` the strict-order reference layout; returns the
    /// queue count of the layout it replaces.
    pub(super) fn accept_layout(&self, info: &Arc<TopicPublishInfo>) -> Option<usize> {
        let old = self.order.accept(info.topic(), info);
        log::info!(
            "topic {}: strict order now maps keys over {} queues (was {:?})",
            info.topic(),
            info.queues().len(),
            old
        );
        old
    }
}
