//! Starting and stopping a producer: its client id, its threads, the handler of
//! broker-initiated requests, and the shutdown that drains, unregisters and joins.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use super::backpressure::InFlight;
use super::executor::Executor;
use super::inner::{Inner, RUNNING, STOPPED, STOPPING};
use super::{batch, stats};
use crate::client::broker::{self, SendDefaults};
use crate::client::namesrv::NameServers;
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::protocol::message_codec::UniqIdGenerator;
use crate::protocol::{RemotingCommand, RequestCode, ResponseCode};
use crate::remoting::{pair, Completion, Handle, RemotingClient, RemotingConfig, RequestHandler};
use crate::routing::mapping::TopicBrokerMapping;
use crate::routing::router::MessageRouter;

/// How long shutdown waits for UNREGISTER_CLIENT answers when its deadline has passed already
/// (the unregisters are sent at the same time, so this is spent once, not per broker).
pub(crate) const UNREGISTER_GRACE: Duration = Duration::from_millis(200);

/// The first non-loopback local IPv4 address, found by asking the routing table (no packet
/// is sent); loopback if there is none.
fn local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect("10.254.254.254:1")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// Routes broker-initiated requests to the hooks a producer installed; holds the producer
/// weakly so the remoting client does not keep it alive.
struct ServerRequests(std::sync::Weak<Inner>);

impl RequestHandler for ServerRequests {
    fn handle_request(&self, addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let inner = self.0.upgrade()?;
        let hook = inner
            .server_hooks
            .read()
            .iter()
            .find(|(code, _)| *code == request.code)
            .map(|(_, h)| h.clone());
        if let Some(hook) = hook {
            return hook(addr, request);
        }
        match request.code {
            RequestCode::NOTIFY_CONSUMER_IDS_CHANGED => None,
            _ if request.is_oneway() => None,
            code => Some(
                RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, request.opaque)
                    .with_remark(format!(" request type {code} not supported")),
            ),
        }
    }
}

impl Inner {
    pub(super) fn start(config: ProducerConfig) -> Result<Arc<Inner>> {
        let remoting = RemotingClient::new(RemotingConfig {
            io_threads: config.io_threads(),
            callback_threads: config.callback_threads(),
            connect_timeout: config.connect_timeout(),
            credentials: config.credentials().cloned(),
            close_on_request_timeout: config.close_on_request_timeout(),
            tcp_keepalive: config.tcp_keepalive(),
            max_connection_output_bytes: config.max_connection_output_bytes(),
            tls: config.tls_config(),
            busy_poll: config.busy_poll(),
            serialize_type: config.serialize_type(),
            ..RemotingConfig::default()
        })?;
        let ip = match config.client_ip() {
            Some(ip) => ip,
            None => local_ip(),
        };
        let instance = if config.instance_name() == "DEFAULT" {
            // Java: `pid#System.nanoTime()`; any per-process unique suffix serves.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}#{nanos}", std::process::id())
        } else {
            config.instance_name().to_string()
        };
        let mut client_id = format!("{ip}@{instance}");
        if let Some(unit) = config.unit_name().filter(|u| !u.trim().is_empty()) {
            client_id.push('@');
            client_id.push_str(unit);
        }
        let in_flight = if config.backpressure() {
            InFlight::new(Some((config.max_in_flight(), config.max_in_flight_bytes())))
        } else {
            InFlight::new(None)
        };
        let router = MessageRouter::from_config(&config);
        // Bounded: no block to allocate as sends pass (a full one frees on the I/O thread).
        let spent = Arc::new(super::async_send::SpentSends::new());
        let executor = Executor::start(config.callback_threads(), &spent)?;
        let trace = if config.trace() {
            Some(super::trace::Tracer::start(&config)?)
        } else {
            None
        };
        let inner = Arc::new(Inner {
            hooks: super::hooks::HookRunner::with_internal(
                &config,
                trace.iter().map(|t| t.hook()).collect(),
            ),
            namesrv: NameServers::new(config.name_servers().to_vec()),
            ids: UniqIdGenerator::new(ip, std::process::id()),
            defaults: SendDefaults::new(
                super::prepare::wire_group(&config),
                config.create_topic_key().to_string(),
                config.default_topic_queue_nums() as i32,
            ),
            mapping: TopicBrokerMapping::new(),
            router,
            client_id,
            remoting,
            in_flight,
            sync_in_flight: InFlight::new(None),
            state: AtomicU8::new(RUNNING),
            routing_clock_skew_ms: AtomicU64::new(0),
            heartbeated: Mutex::new(Vec::new()),
            service: Mutex::new(None),
            batcher: config
                .auto_batch()
                .then(|| batch::Accumulator::new(&config)),
            server_hooks: RwLock::new(Vec::new()),
            stats: stats::StatsRecorder::new(config.stats()),
            flush: super::flush::FlushTracker::new(),
            order: super::order::OrderBook::default(),
            tx_records: Mutex::new(None),
            executor,
            late: Mutex::new(Some(Vec::new())),
            trace,
            requests: Default::default(),
            spent,
            free_sends: Mutex::new(Some(Vec::with_capacity(super::async_send::FREE_SENDS))),
            sync_memos: super::sync_send::SyncMemos::new(),
            callback_slots: Default::default(),
            config,
        });
        inner
            .remoting
            .set_request_handler(Arc::new(ServerRequests(Arc::downgrade(&inner))));
        inner.install_reply_handler();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let service_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("rocketmq-service".into())
            .spawn(move || service_inner.service_loop(stop_rx))
            .map_err(|e| Error::config("service thread", e.to_string()))?;
        *inner.service.lock() = Some((stop_tx, thread));
        if let Some(acc) = &inner.batcher {
            if let Err(e) = acc.start(&inner) {
                let _ = inner.shutdown(Duration::ZERO);
                return Err(e);
            }
        }
        Ok(inner)
    }

    /// Shuts down within one deadline, `timeout` from now: open batches leave, in-flight sends
    /// get until the deadline, every broker gets UNREGISTER_CLIENT at the same time (waited
    /// for until the deadline, at least [`UNREGISTER_GRACE`]), then the connections close,
    /// failing what is left with `Shutdown`, and the threads are joined. No step waits for a
    /// broker or name server past the deadline: it returns within `timeout` plus
    /// [`UNREGISTER_GRACE`] plus the time to join threads that have nothing left to wait for.
    /// Callback threads still running user code at the deadline are not waited for (they run
    /// what is queued and end by themselves); callbacks that found the pool stopped run on
    /// this thread, at the end.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<()> {
        if self
            .state
            .compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        if let Some(acc) = &self.batcher {
            // Open batches leave now; the wait below covers them.
            acc.close();
        }
        let drained = self.in_flight.wait_idle(deadline) && self.sync_in_flight.wait_idle(deadline);
        if !drained {
            let (n, _) = self.in_flight.current();
            log::warn!("shutdown deadline reached with {n} sends in flight; failing them");
        }
        // Requests still waiting for a reply end now (their permits were waited for above).
        self.requests.close(self);
        // The service thread is told to stop now and joined once the connections are closed:
        // a route lookup it is waiting for then fails at once instead of at its own timeout.
        let service = self.service.lock().take();
        if let Some((stop, _)) = &service {
            let _ = stop.send(());
        }
        self.unregister_all(deadline);
        // A callback stuck in user code does not hold shutdown past its deadline.
        self.remoting
            .shutdown_until(deadline.max(Instant::now() + UNREGISTER_GRACE));
        if let Some((_, thread)) = service {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        // Every request has ended; what the internal threads still hold ends now (with
        // `Shutdown`), then the callbacks that found the pool stopped run here.
        self.executor.shutdown();
        self.run_late_callbacks();
        // Every send has ended and its trace record is queued: the queue leaves, and the trace
        // producer waits for it, until the deadline.
        if let Some(trace) = &self.trace {
            trace.shutdown(deadline);
        }
        // No I/O thread is left to finish a send: free what they left and the senders' spare
        // boxes, for good (each holds this producer).
        self.spent.close();
        self.state.store(STOPPED, Ordering::Release);
        // The free list too, for good: each box in it holds this producer.
        let free = self.free_sends.lock().take();
        drop(free);
        Ok(())
    }

    /// UNREGISTER_CLIENT to every broker at once; waits for the answers until `deadline` (at
    /// least [`UNREGISTER_GRACE`], at most the client API timeout). A broker that does not
    /// answer in time is logged and left: the connection closes next.
    fn unregister_all(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = self
            .config
            .client_api_timeout()
            .min(left.max(UNREGISTER_GRACE));
        let until = Instant::now() + timeout;
        let waiting: Vec<(String, Handle<RemotingCommand>)> = self
            .mapping
            .all_broker_addrs()
            .into_iter()
            .map(|(_, addr)| {
                let request = broker::unregister_request(&self.client_id, &self.defaults.group);
                let (completer, handle) = pair();
                // Its timeout must not reset the connection: the sends still draining on it
                // end with Shutdown when the connections close, not with a connection error.
                self.remoting.invoke_async_keeping_connection(
                    &addr,
                    request,
                    timeout,
                    Completion::Handle(completer),
                );
                (addr, handle)
            })
            .collect();
        // Each also ends by itself at `timeout`; what is not answered by then is failed when
        // the connections close.
        for (addr, mut handle) in waiting {
            match handle.wait_deadline(until) {
                Some(Ok(r)) if r.code == ResponseCode::SUCCESS => {}
                Some(Ok(r)) => {
                    log::warn!("unregister at {addr}: code {} {}", r.code, r.remark_str())
                }
                Some(Err(e)) => log::warn!("unregister at {addr} failed: {e}"),
                None => log::warn!("unregister at {addr}: no answer by the shutdown deadline"),
            }
        }
    }
}
