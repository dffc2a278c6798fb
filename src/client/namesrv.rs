//! Route lookups across the name server list, with rotation on failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::protocol::header::{CommandHeader, GetRouteInfoRequestHeader};
use crate::protocol::route::TopicRouteData;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::remoting::RemotingClient;

/// The name servers of one producer; lookups start at a rotating index and move on to the
/// next address when one fails.
#[derive(Debug)]
pub(crate) struct NameServers {
    addrs: Vec<String>,
    next: AtomicUsize,
    /// The outcome of the last lookups at each address (same order as `addrs`).
    outcomes: Vec<Mutex<LookupOutcome>>,
}

/// What the route lookups at one name server came to, for health reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct LookupOutcome {
    /// When it last answered (any response code: it was reached).
    pub(crate) last_answer: Option<Instant>,
    /// When it last could not be reached, and why.
    pub(crate) last_failure: Option<(Instant, String)>,
    /// Failed lookups since its last answer.
    pub(crate) consecutive_failures: u32,
}

impl NameServers {
    pub(crate) fn new(addrs: Vec<String>) -> Self {
        let start = if addrs.is_empty() {
            0
        } else {
            rand::random::<usize>() % addrs.len()
        };
        NameServers {
            outcomes: addrs.iter().map(|_| Mutex::default()).collect(),
            addrs,
            next: AtomicUsize::new(start),
        }
    }

    /// Every name server with the outcome of its last lookups.
    pub(crate) fn outcomes(&self) -> Vec<(String, LookupOutcome)> {
        self.addrs
            .iter()
            .zip(&self.outcomes)
            .map(|(a, o)| (a.clone(), o.lock().clone()))
            .collect()
    }

    fn record(&self, i: usize, failure: Option<&Error>) {
        let Some(outcome) = self.outcomes.get(i) else {
            return;
        };
        let mut o = outcome.lock();
        match failure {
            None => {
                o.last_answer = Some(Instant::now());
                o.consecutive_failures = 0;
            }
            Some(e) => {
                o.last_failure = Some((Instant::now(), e.to_string()));
                o.consecutive_failures = o.consecutive_failures.saturating_add(1);
            }
        }
    }

    /// Fetches the route of `topic`. A definitive answer (`TOPIC_NOT_EXIST`) from one name
    /// server ends the lookup; connection errors and timeouts move on to the next one, until
    /// `deadline`. Each request waits at most `per_request`.
    pub(crate) fn fetch_route(
        &self,
        remoting: &RemotingClient,
        topic: &str,
        per_request: Duration,
        deadline: Instant,
    ) -> Result<TopicRouteData> {
        if self.addrs.is_empty() {
            return Err(Error::NoRoute {
                topic: topic.to_string(),
                reason: "no name server is configured".into(),
                source: None,
            });
        }
        let mut last = None;
        for _ in 0..self.addrs.len() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let i = self.next.load(Ordering::Relaxed) % self.addrs.len();
            let addr = &self.addrs[i];
            let mut request = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
            GetRouteInfoRequestHeader {
                topic: topic.to_string(),
                accept_standard_json_only: true,
            }
            .write_to(&mut request.ext_fields);
            let timeout = per_request.min(deadline - now);
            let result = remoting.invoke_sync(addr, request, timeout);
            self.record(i, result.as_ref().err());
            match result {
                Ok(response) if response.code == ResponseCode::SUCCESS => {
                    return TopicRouteData::from_json(&response.body).map_err(|e| {
                        // The last good route stays cached; say where the bad one came from.
                        log::error!("route of {topic} from name server {addr} refused: {e}");
                        e.into()
                    });
                }
                Ok(response) => {
                    return Err(Error::from_response(response.code, response.remark, addr));
                }
                Err(e) => {
                    log::warn!("route lookup of {topic} at name server {addr} failed: {e}");
                    // Rotate: the next lookup starts at the next server.
                    let _ = self.next.compare_exchange(
                        i,
                        (i + 1) % self.addrs.len(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::Timeout {
            addr: String::new(),
            after: per_request,
            last: None,
        }))
    }
}
