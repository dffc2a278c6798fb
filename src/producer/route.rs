//! Route resolution: the publish info of a topic (cached, or fetched from the name servers
//! with the create-topic fallback) and the broker address an attempt goes to.

use std::sync::Arc;
use std::time::Instant;

use super::inner::Inner;
use crate::error::{Error, Result};
use crate::message::MessageQueue;
use crate::protocol::ResponseCode;
use crate::routing::mapping::TopicPublishInfo;

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
        if self.config.vip_channel() {
            if let Some((host, port)) = addr.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    return Some(format!("{host}:{}", port.saturating_sub(2)).into());
                }
            }
        }
        Some(addr)
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
