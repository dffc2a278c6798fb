//! The callback pool: named worker threads that run response callbacks, server-request
//! handlers and [`RemotingClient::execute`](super::RemotingClient::execute) tasks, so that no
//! user code ever runs on an I/O thread.
//!
//! Workers stop when every sender of the task channel is gone, after running every task that
//! was queued: a task that was accepted always runs.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;

use super::event_loop::{Command, LoopShared};
use super::{RequestHandler, ResponseCallback};
use crate::error::{Error, Result};
use crate::protocol::codes::ResponseCode;
use crate::protocol::frame::{FLAG_ONEWAY, FLAG_RESPONSE};
use crate::protocol::RemotingCommand;

/// The handler for server-initiated requests, replaceable at run time.
pub(crate) type HandlerSlot = RwLock<Option<Arc<dyn RequestHandler>>>;

/// Work for a callback thread.
pub(crate) enum Task {
    /// An arbitrary task from `execute`.
    Run(Box<dyn FnOnce() + Send + 'static>),
    /// A response callback with its result.
    Respond(ResponseCallback, Result<RemotingCommand>),
    /// A request a peer sent us.
    Serve(ServerRequest),
}

/// A request from a peer, and how to answer it on the same connection.
pub(crate) struct ServerRequest {
    pub(crate) addr: Arc<str>,
    pub(crate) token: usize,
    pub(crate) conn_id: u64,
    pub(crate) request: RemotingCommand,
    pub(crate) reply_to: Arc<LoopShared>,
}

/// A response callback that runs exactly once: with the result when completed, with
/// `Shutdown` when dropped unfinished. It runs on the pool while the pool takes tasks, and on
/// the current thread once the pool is gone.
pub(crate) struct CallbackReply {
    callback: Option<ResponseCallback>,
    pool: Option<Sender<Task>>,
}

impl CallbackReply {
    pub(crate) fn new(callback: ResponseCallback, pool: Option<Sender<Task>>) -> Self {
        CallbackReply {
            callback: Some(callback),
            pool,
        }
    }

    pub(crate) fn complete(mut self, result: Result<RemotingCommand>) {
        self.dispatch(result);
    }

    /// Runs the callback on this thread (a panic is caught and logged).
    pub(crate) fn run_here(mut self, result: Result<RemotingCommand>) {
        if let Some(callback) = self.callback.take() {
            run_task(Task::Respond(callback, result), None);
        }
    }

    fn dispatch(&mut self, result: Result<RemotingCommand>) {
        let Some(callback) = self.callback.take() else {
            return;
        };
        let task = Task::Respond(callback, result);
        let task = match self.pool.take() {
            Some(pool) => match pool.send(task) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => task,
        };
        // The pool is gone: run it here rather than lose it.
        run_task(task, None);
    }
}

impl Drop for CallbackReply {
    fn drop(&mut self) {
        if self.callback.is_some() {
            self.dispatch(Err(Error::Shutdown));
        }
    }
}

/// Spawns `n` workers named `rocketmq-callback-N` on `rx`.
pub(crate) fn spawn_workers(
    n: usize,
    rx: &Receiver<Task>,
    handler: &Arc<HandlerSlot>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let rx = rx.clone();
        let handler = handler.clone();
        let spawned = thread::Builder::new()
            .name(format!("rocketmq-callback-{i}"))
            .spawn(move || {
                while let Ok(task) = rx.recv() {
                    run_task(task, Some(&handler));
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The caller drops its senders; the workers already started then stop.
                return Err(e);
            }
        }
    }
    Ok(threads)
}

/// Runs one task, catching (and logging) a panic so the worker survives it.
pub(crate) fn run_task(task: Task, handler: Option<&HandlerSlot>) {
    match task {
        Task::Run(f) => guarded("task", f),
        Task::Respond(callback, result) => guarded("response callback", move || callback(result)),
        Task::Serve(request) => serve(request, handler),
    }
}

fn guarded<F: FnOnce()>(what: &str, f: F) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        log::error!("a {what} panicked: {}", panic_message(&panic));
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs the handler on a request from a peer and sends its answer back on the same connection.
fn serve(sr: ServerRequest, handler: Option<&HandlerSlot>) {
    let ServerRequest {
        addr,
        token,
        conn_id,
        request,
        reply_to,
    } = sr;
    let oneway = request.is_oneway();
    let opaque = request.opaque;
    let code = request.code;
    let serialize_type = request.serialize_type;
    let handler = handler.and_then(|slot| slot.read().clone());
    let response = match handler {
        Some(h) => match catch_unwind(AssertUnwindSafe(|| h.handle_request(&addr, request))) {
            Ok(response) => response,
            Err(panic) => {
                let why = panic_message(&panic);
                log::error!(
                    "the request handler panicked on request code {code} from {addr}: {why}"
                );
                Some(
                    RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                        .with_remark(format!("request handler panicked: {why}")),
                )
            }
        },
        None => None,
    };
    if oneway {
        if response.is_some() {
            log::debug!("dropping the reply to oneway request code {code} from {addr}");
        }
        return;
    }
    let mut response = response.unwrap_or_else(|| {
        log::debug!("request code {code} from {addr} is not supported");
        let mut r = RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, opaque)
            .with_remark(format!(" request type {code} not supported"));
        r.serialize_type = serialize_type;
        r
    });
    response.opaque = opaque;
    response.flag = (response.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
    let frame = match response.to_frame() {
        Ok(frame) => frame,
        Err(e) => {
            log::error!("cannot encode the reply to request code {code} from {addr}: {e}");
            return;
        }
    };
    if reply_to
        .send(Command::Reply {
            token,
            conn_id,
            frame,
        })
        .is_err()
    {
        log::debug!("client shut down: dropping the reply to request code {code} from {addr}");
    }
}
