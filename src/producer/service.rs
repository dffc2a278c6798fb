//! The `rocketmq-service` thread: periodic route refresh and heartbeats, and the heartbeat
//! a broker gets as soon as a new route names it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::inner::{Inner, RUNNING};
use crate::client::broker;
use crate::protocol::ResponseCode;
use crate::remoting::Completion;

impl Inner {
    /// Heartbeats brokers that have not had one yet (new routes), without blocking.
    pub(super) fn heartbeat_new_brokers(&self) {
        let brokers = self.mapping.broker_addrs_for_heartbeat();
        let fresh: Vec<String> = {
            let mut seen = self.heartbeated.lock();
            brokers
                .into_iter()
                .map(|(_, addr)| addr)
                .filter(|addr| {
                    let new = !seen.contains(addr);
                    if new {
                        seen.push(addr.clone());
                    }
                    new
                })
                .collect()
        };
        for addr in fresh {
            self.heartbeat(&addr);
        }
    }

    pub(super) fn heartbeat(&self, addr: &str) {
        let request =
            broker::heartbeat_request(&self.client_id, std::slice::from_ref(&self.defaults.group));
        let target = addr.to_string();
        self.remoting.invoke_async(
            addr,
            request,
            self.config.client_api_timeout(),
            Completion::Callback(Box::new(move |result| match result {
                Ok(r) if r.code == ResponseCode::SUCCESS => {
                    log::trace!("heartbeat to {target} ok")
                }
                Ok(r) => log::warn!("heartbeat to {target}: code {} {}", r.code, r.remark_str()),
                Err(e) => log::warn!("heartbeat to {target} failed: {e}"),
            })),
        );
    }

    pub(super) fn heartbeat_all(&self) {
        let brokers = self.mapping.broker_addrs_for_heartbeat();
        {
            let mut seen = self.heartbeated.lock();
            seen.clear();
            seen.extend(brokers.iter().map(|(_, a)| a.clone()));
        }
        for (_, addr) in brokers {
            self.heartbeat(&addr);
        }
    }

    /// Resolves the routes of [`ProducerConfig::topics`](crate::ProducerConfig::topics) that
    /// are not cached (their brokers get a heartbeat as the route arrives) and marks the cached
    /// ones used, so they never expire. Failures are logged; the next refresh tries again.
    pub(crate) fn resolve_configured_topics(&self) {
        for topic in self.config.topics() {
            if self.state.load(Ordering::Acquire) != RUNNING {
                return;
            }
            let wire = super::prepare::wire_topic(topic, &self.config);
            if self.mapping.get(&wire, Instant::now()).is_some() {
                continue;
            }
            let deadline = Instant::now() + self.config.client_api_timeout();
            if let Err(e) = self.publish_info(&wire, deadline) {
                log::warn!(
                    "route of configured topic {topic} not resolved (tried again later): {e}"
                );
            }
        }
    }

    pub(super) fn refresh_all_routes(&self) {
        self.resolve_configured_topics();
        let now = Instant::now();
        for topic in self.mapping.expire_unused(now, self.config.route_expiry()) {
            log::debug!("route of unused topic {topic} expired");
        }
        for topic in self.mapping.topics() {
            if self.state.load(Ordering::Acquire) != RUNNING {
                return;
            }
            let deadline = Instant::now() + self.config.client_api_timeout();
            if let Err(e) = self.refresh_route(&topic, deadline) {
                log::warn!("route refresh of {topic} failed, keeping the last good route: {e}");
            }
        }
        self.mapping.clean_offline_brokers();
    }

    pub(super) fn service_loop(self: Arc<Self>, stop: Receiver<()>) {
        let mut next_route = Instant::now() + self.config.route_refresh_interval();
        let mut next_heartbeat = Instant::now() + Duration::from_secs(1);
        loop {
            let wake = next_route.min(next_heartbeat);
            match stop.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let now = Instant::now();
            if now >= next_route {
                self.refresh_all_routes();
                next_route = Instant::now() + self.config.route_refresh_interval();
            }
            if now >= next_heartbeat {
                self.heartbeat_all();
                next_heartbeat = Instant::now() + self.config.heartbeat_interval();
            }
        }
    }
}
