//! Route resolution: the publish info of a topic (cached, or fetched from the name servers
//! with the create-topic fallback) and the broker address an attempt goes to.

use std::sync::Arc;
use std::time::Instant;

use super::inner::Inner;
use crate::error::{Error, Result};
use crate::message::MessageQueue;
use crate::protocol::ResponseCode;
use crate::routing::mapping::{TopicBrokerMapping, TopicPublishInfo};

impl Inner {
    /// The publish info of `wire_topic`, fetched from the name servers if it is not cached.
    /// The last good route stays in the cache when a lookup fails.
    pub(crate) fn publish_info(
        &self,
        wire_topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicPublishInfo>> {
        if let Some(info) = self.cached_publish_info(wire_topic, Instant::now()) {
            return Ok(info);
        }
        let fetched = self.refresh_route(wire_topic, deadline);
        match self.mapping.get(wire_topic, Instant::now()) {
            Some(info) if !info.queues().is_empty() => Ok(info),
            _ => Err(match fetched {
                // A refusal stays one: the caller's credentials are the problem, not the route.
                Err(e @ Error::NoPermission { .. }) => e,
                // Already a NoRoute (no name server, or the create-topic fallback failed too):
                // keep its cause.
                Err(Error::NoRoute { reason, source, .. }) => Error::NoRoute {
                    topic: wire_topic.to_string(),
                    reason,
                    source,
                },
                Ok(()) => Error::NoRoute {
                    topic: wire_topic.to_string(),
                    reason: "the route has no writable queue with a master".into(),
                    source: None,
                },
                Err(e) => Error::NoRoute {
                    topic: wire_topic.to_string(),
                    reason: e.to_string(),
                    source: Some(Box::new(e)),
                },
            }),
        }
    }

    /// The cached publish info of `wire_topic` at `now`, when it has queues (no lookup).
    pub(crate) fn cached_publish_info(
        &self,
        wire_topic: &str,
        now: Instant,
    ) -> Option<Arc<TopicPublishInfo>> {
        self.mapping
            .get(wire_topic, now)
            .filter(|info| !info.queues().is_empty())
    }

    /// [`Inner::cached_publish_info`] remembered in `memo` (see
    /// [`TopicBrokerMapping::get_memo`]).
    pub(super) fn cached_publish_info_memo<'m>(
        &self,
        wire_topic: &str,
        memo: &'m mut crate::routing::mapping::TopicMemo,
    ) -> Option<&'m Arc<TopicPublishInfo>> {
        self.mapping
            .get_memo(wire_topic, memo)
            .filter(|info| !info.queues().is_empty())
    }

    /// Fetches the route of `wire_topic` and updates the cache; falls back to the create-topic
    /// key's route (TBW102) when the topic does not exist yet.
    pub(super) fn refresh_route(&self, wire_topic: &str, deadline: Instant) -> Result<()> {
        let api = self.config.client_api_timeout();
        match self
            .namesrv
            .fetch_route(&self.remoting, wire_topic, api, deadline)
        {
            Ok(route) => {
                if self
                    .mapping
                    .update_route(wire_topic, &route, Instant::now())
                {
                    self.note_route(wire_topic);
                    self.heartbeat_new_brokers();
                }
                Ok(())
            }
            Err(e) if e.response_code() == Some(ResponseCode::TOPIC_NOT_EXIST) => {
                if self.mapping.get(wire_topic, Instant::now()).is_some() {
                    // Keep the fallback route we already use.
                    return Ok(());
                }
                let key = self.config.create_topic_key();
                let default = self
                    .namesrv
                    .fetch_route(&self.remoting, key, api, deadline)
                    .map_err(|d| Error::NoRoute {
                        topic: wire_topic.to_string(),
                        reason: format!("{e}; and the route of {key}: {d}"),
                        source: Some(Box::new(d)),
                    })?;
                self.mapping.update_from_default(
                    wire_topic,
                    &default,
                    self.config.default_topic_queue_nums(),
                    Instant::now(),
                );
                self.note_route(wire_topic);
                self.heartbeat_new_brokers();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The address to send to for `broker_name` (the master; the VIP port when configured).
    /// Shared: an attempt clones an `Arc`, it copies no string (unless the VIP channel is on).
    pub(super) fn broker_addr(&self, broker_name: &str) -> Option<Arc<str>> {
        let addr = self.mapping.master_addr_shared(broker_name)?;
        Some(self.channel_addr(addr))
    }

    /// [`Inner::broker_addr`] remembered in `memo`: while the broker address table is at the
    /// version the remembered address was read at, the address of the same broker is the
    /// remembered one (no lookup, no VIP address built again).
    pub(super) fn broker_addr_memo(
        &self,
        broker_name: &Arc<str>,
        memo: &mut AddrMemo,
    ) -> Option<Arc<str>> {
        memo.lookup(&self.mapping, broker_name, |addr| self.channel_addr(addr))
    }

    /// The address requests to the broker at `addr` go to (its VIP channel if configured).
    fn channel_addr(&self, addr: Arc<str>) -> Arc<str> {
        if self.config.vip_channel() {
            if let Some((host, port)) = addr.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    return format!("{host}:{}", port.saturating_sub(2)).into();
                }
            }
        }
        addr
    }

    /// The broker's address; refreshes the topic's route once if it is unknown.
    pub(super) fn broker_addr_or_refresh(
        &self,
        wire_topic: &str,
        queue: &MessageQueue,
        deadline: Instant,
    ) -> Option<Arc<str>> {
        if let Some(addr) = self.broker_addr(queue.broker_name()) {
            return Some(addr);
        }
        let _ = self.refresh_route(wire_topic, deadline);
        self.broker_addr(queue.broker_name())
    }
}

/// A send's memory of the last broker address it looked up ([`Inner::broker_addr_memo`]) and
/// of that address's event-loop target: a send to the same broker as the last one, with no
/// change to the address table since, skips both lookups.
#[derive(Clone, Default)]
pub(super) struct AddrMemo {
    /// The address table's version when `last` was read.
    version: u64,
    /// The broker name and its address (as requests go to it).
    last: Option<(Arc<str>, Arc<str>)>,
    /// The target of the last address encoded for.
    pub(super) target: crate::remoting::TargetMemo,
    /// The statistics recorder of the last broker an attempt was counted on.
    pub(super) stats: crate::producer::stats::BrokerMemo,
}

impl AddrMemo {
    /// Whether it remembers a broker's address.
    #[cfg(test)]
    pub(super) fn remembers_a_broker(&self) -> bool {
        self.last.is_some()
    }

    /// The master address of `broker_name` in `mapping` as `channel` makes it: the
    /// remembered one while it is the same broker and the address table has not changed since.
    // Always inlined: the remembered address (the rule, once per attempt) is a few
    // comparisons, where a call costs as much; the look-up is out of line.
    #[inline(always)]
    fn lookup(
        &mut self,
        mapping: &TopicBrokerMapping,
        broker_name: &Arc<str>,
        channel: impl FnOnce(Arc<str>) -> Arc<str>,
    ) -> Option<Arc<str>> {
        if let Some((broker, addr)) = &self.last {
            if (Arc::ptr_eq(broker, broker_name) || **broker == **broker_name)
                && self.version == mapping.brokers_version()
            {
                return Some(addr.clone());
            }
        }
        self.look_up_again(mapping, broker_name, channel)
    }

    /// [`AddrMemo::lookup`] when the remembered address is not the answer: looked up in
    /// `mapping` and remembered.
    #[inline(never)]
    fn look_up_again(
        &mut self,
        mapping: &TopicBrokerMapping,
        broker_name: &Arc<str>,
        channel: impl FnOnce(Arc<str>) -> Arc<str>,
    ) -> Option<Arc<str>> {
        let (version, addr) = mapping.master_addr_versioned(broker_name);
        let Some(addr) = addr else {
            self.last = None;
            return None;
        };
        let addr = channel(addr);
        self.version = version;
        self.last = Some((broker_name.clone(), addr.clone()));
        Some(addr)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Instant;

    use super::AddrMemo;
    use crate::protocol::route::{BrokerData, QueueData, TopicRouteData};
    use crate::routing::mapping::TopicBrokerMapping;

    fn route(brokers: &[(&str, Option<&str>)]) -> TopicRouteData {
        let mut r = TopicRouteData::default();
        for (name, master) in brokers {
            let mut addrs = BTreeMap::new();
            if let Some(m) = master {
                addrs.insert(0, m.to_string());
            }
            addrs.insert(1, format!("{name}-slave:10911"));
            r.broker_datas.push(BrokerData {
                broker_name: name.to_string(),
                broker_addrs: addrs,
                ..Default::default()
            });
            r.queue_datas.push(QueueData {
                broker_name: name.to_string(),
                read_queue_nums: 2,
                write_queue_nums: 2,
                perm: 6,
                ..Default::default()
            });
        }
        r
    }

    /// The remembered address is the table's at every step: a changed master, a broker gone
    /// from the table, another broker, and back.
    #[test]
    fn memo_follows_the_address_table() {
        let m = TopicBrokerMapping::new();
        let now = Instant::now();
        let a: Arc<str> = Arc::from("broker-a");
        let b: Arc<str> = Arc::from("broker-b");
        let mut memo = AddrMemo::default();
        let look = |memo: &mut AddrMemo, name: &Arc<str>| {
            memo.lookup(&m, name, |addr| addr).map(|a| a.to_string())
        };
        assert_eq!(look(&mut memo, &a), None);
        m.update_route("T", &route(&[("broker-a", Some("10.0.0.1:10911"))]), now);
        for _ in 0..3 {
            assert_eq!(look(&mut memo, &a).as_deref(), Some("10.0.0.1:10911"));
        }
        // The same name in another string is the same broker.
        assert_eq!(
            look(&mut memo, &Arc::from("broker-a")).as_deref(),
            Some("10.0.0.1:10911")
        );
        // The master moves (another topic's route says so).
        m.update_route("U", &route(&[("broker-a", Some("10.0.0.2:10911"))]), now);
        assert_eq!(look(&mut memo, &a).as_deref(), Some("10.0.0.2:10911"));
        // No master any more.
        m.update_route("U", &route(&[("broker-a", None)]), now);
        assert_eq!(look(&mut memo, &a), None);
        m.update_route(
            "U",
            &route(&[
                ("broker-a", Some("10.0.0.3:10911")),
                ("broker-b", Some("10.0.0.4:10911")),
            ]),
            now,
        );
        assert_eq!(look(&mut memo, &a).as_deref(), Some("10.0.0.3:10911"));
        assert_eq!(look(&mut memo, &b).as_deref(), Some("10.0.0.4:10911"));
        assert_eq!(look(&mut memo, &a).as_deref(), Some("10.0.0.3:10911"));
        // Gone from every route: cleaned from the table.
        m.remove("T");
        m.update_route("U", &route(&[("broker-b", Some("10.0.0.4:10911"))]), now);
        assert_eq!(look(&mut memo, &a).as_deref(), Some("10.0.0.3:10911"));
        assert_eq!(m.clean_offline_brokers(), ["broker-a"]);
        assert_eq!(look(&mut memo, &a), None);
        assert_eq!(look(&mut memo, &b).as_deref(), Some("10.0.0.4:10911"));
    }
}
