//! The callback pool: named worker threads that run response callbacks, server-request
//! handlers and [`RemotingClient::execute`](super::RemotingClient::execute) tasks, so that no
//! user code ever runs on an I/O thread.
//!
//! Workers stop when every sender of the task queue is gone, after running every task that
//! was queued: a task that was accepted always runs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use parking_lot::RwLock;

use super::guard::{guarded, panic_message, run_callback};
use super::task::{Command, PoolReceiver, ServerRequest, Task};
use super::RequestHandler;
use crate::protocol::codes::ResponseCode;
use crate::protocol::frame::{FLAG_ONEWAY, FLAG_RESPONSE};
use crate::protocol::RemotingCommand;

/// The handler for server-initiated requests, replaceable at run time.
pub(crate) type HandlerSlot = RwLock<Option<Arc<dyn RequestHandler>>>;

/// Spawns `n` workers named `rocketmq-callback-N` on `rx`.
pub(crate) fn spawn_workers(
    n: usize,
    rx: &PoolReceiver,
    handler: &Arc<HandlerSlot>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let rx = rx.clone();
        let handler = handler.clone();
        let spawned = thread::Builder::new()
            .name(format!("rocketmq-callback-{i}"))
            .spawn(move || {
                while let Some(task) = rx.recv() {
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
fn run_task(task: Task, handler: Option<&HandlerSlot>) {
    match task {
        Task::Run(f) => guarded("task", f),
        Task::Respond(callback, result) => run_callback(callback, result),
        Task::Serve(request) => serve(request, handler),
        Task::Job(job) => guarded("task", move || job.run()),
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
