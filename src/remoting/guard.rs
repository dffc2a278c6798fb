//! Running code that may panic on a library thread: a panic is caught and logged, never
//! unwound into an event loop or a callback worker.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::OnResponse;
use crate::error::Result;
use crate::protocol::RemotingCommand;

/// Runs a response callback with its result (a panic is caught and logged).
pub(crate) fn run_callback(callback: Box<dyn OnResponse>, result: Result<RemotingCommand>) {
    guarded("response callback", move || callback.on_response(result));
}

/// [`run_callback`] for a response that arrived with a read at `arrival`.
#[inline(always)] // the response is moved once, not copied per call
pub(crate) fn run_callback_at(
    callback: Box<dyn OnResponse>,
    result: Result<RemotingCommand>,
    arrival: &super::Arrival,
) {
    guarded("response callback", move || {
        callback.on_response_at(result, arrival)
    });
}

/// Runs `f`, catching (and logging) a panic; `what` names it in the log.
#[inline(always)] // `f` may hold a response: not copied into one more call
pub(crate) fn guarded<F: FnOnce()>(what: &str, f: F) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        log::error!("a {what} panicked: {}", panic_message(&panic));
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}
