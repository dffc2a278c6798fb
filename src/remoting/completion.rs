//! A one-shot completion: a thread can wait on it, a task can await it.
//!
//! [`pair`] makes a [`Completer`] (the side that finishes a request) and a [`Handle`] (the side
//! that waits). The completer stores the value, wakes a blocked thread by unparking it and a
//! task through its [`Waker`], whichever waits. Dropping a completer without completing it
//! ends the request with [`Error::Shutdown`], so no handle can hang.
//!
//! A blocked thread waits with [`std::thread::park`], not on a condition variable: the waiter
//! leaves its [`Thread`] in the slot (under the lock) before it parks, the completer takes it
//! (under the same lock, as it stores the value) and unparks it after unlocking. One atomic
//! swap and one futex wake on the completing side, one futex wait on the waiting side, and no
//! re-locking of a mutex on wake-up (a condition variable's wait re-takes its mutex). A park
//! may return early (spuriously, or on an unpark meant for an earlier wait of the thread), so
//! the waiter parks until the `ready` flag says the value is there.
//!
//! The send path uses `pooled_pair`: the shared state of a completion whose handle is gone
//! after it completed goes to a small pool of the thread that dropped the handle (usually the
//! thread that sends next), and the next pair made there reuses it once its completer is gone
//! too (`Arc::get_mut`: nobody else can see it). A steady stream of sends then allocates no
//! completion at all.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::message::SendResult;
use crate::protocol::RemotingCommand;

/// Makes a connected completer and handle.
pub fn pair<T>() -> (Completer<T>, Handle<T>) {
    let shared = new_shared();
    (
        Completer {
            shared: Some(shared.clone()),
        },
        Handle {
            shared: Some(shared),
            recycle: None,
        },
    )
}

fn new_shared<T>() -> Arc<Shared<T>> {
    Arc::new(Shared {
        slot: Mutex::new(Slot {
            state: State::Pending,
            waker: None,
            thread: None,
            arrived: None,
        }),
        ready: AtomicBool::new(false),
    })
}

/// Spent completions a thread keeps for reuse, at most this many per value type.
const POOL_CAP: usize = 256;

type Pool<T> = RefCell<VecDeque<Arc<Shared<T>>>>;

thread_local! {
    static SEND_RESULTS: Pool<SendResult> = const { RefCell::new(VecDeque::new()) };
    static COMMANDS: Pool<RemotingCommand> = const { RefCell::new(VecDeque::new()) };
}

/// A value type whose completions are pooled per thread ([`pooled_pair`]).
pub(crate) trait Pooled: Sized + 'static {
    /// Runs `f` on this thread's pool; `None` while the thread is being torn down (or the
    /// pool is in use further up the stack).
    fn with_pool<R>(f: impl FnOnce(&mut VecDeque<Arc<Shared<Self>>>) -> R) -> Option<R>;
}

// Always inlined: with `pool` a constant at each use, the thread-local is reached directly,
// not through a call to its accessor.
#[inline(always)]
fn with<T, R>(
    pool: &'static std::thread::LocalKey<Pool<T>>,
    f: impl FnOnce(&mut VecDeque<Arc<Shared<T>>>) -> R,
) -> Option<R> {
    pool.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
        .ok()
        .flatten()
}

impl Pooled for SendResult {
    // Always inlined: a call per take and per put of a send's completion otherwise.
    #[inline(always)]
    fn with_pool<R>(f: impl FnOnce(&mut VecDeque<Arc<Shared<Self>>>) -> R) -> Option<R> {
        with(&SEND_RESULTS, f)
    }
}

impl Pooled for RemotingCommand {
    fn with_pool<R>(f: impl FnOnce(&mut VecDeque<Arc<Shared<Self>>>) -> R) -> Option<R> {
        with(&COMMANDS, f)
    }
}

/// [`pair`], reusing a spent completion of this thread's pool when one is free (see the
/// module docs); the handle returns its completion to the pool of the thread that drops it.
pub(crate) fn pooled_pair<T: Pooled>() -> (Completer<T>, Handle<T>) {
    let shared = from_pool();
    (
        Completer {
            shared: Some(shared.clone()),
        },
        Handle {
            shared: Some(shared),
            recycle: Some(recycle::<T>),
        },
    )
}

/// A spent completion of this thread's pool, reset, or a new one.
fn from_pool<T: Pooled>() -> Arc<Shared<T>> {
    let reused = T::with_pool(|pool| {
        // The oldest first: its completer is long gone. One that is still shared (its
        // completer not dropped yet) goes back to the end.
        let mut shared = pool.pop_front()?;
        match Arc::get_mut(&mut shared) {
            Some(unique) => {
                unique.reset();
                Some(shared)
            }
            None => {
                pool.push_back(shared);
                None
            }
        }
    })
    .flatten();
    reused.unwrap_or_else(new_shared)
}

/// A completion that one waiter reuses wait after wait, kept by the waiter (a synchronous
/// sender's, with its broker address memory): no pool round trip and no thread-local access
/// per wait. Its completer drops its reference before it wakes the waiter, so the completion
/// is unshared (reusable) once the waiter has its value; one still shared when the next
/// completer is asked for (a spinning waiter was quicker than the completer's drop) goes to
/// this thread's pool ([`pooled_pair`]) and a pooled one is taken instead.
pub(crate) struct Reusable<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> Default for Reusable<T> {
    fn default() -> Self {
        Reusable { shared: None }
    }
}

impl<T> fmt::Debug for Reusable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reusable").finish_non_exhaustive()
    }
}

impl<T: Pooled> Reusable<T> {
    /// The completer of the next wait ([`Reusable::wait_spinning`]): the kept completion,
    /// reset, when nobody else holds it.
    pub(crate) fn completer(&mut self) -> Completer<T> {
        if let Some(shared) = &mut self.shared {
            if let Some(unique) = Arc::get_mut(shared) {
                unique.reset();
                return Completer {
                    shared: Some(shared.clone()),
                };
            }
        }
        if let Some(old) = self.shared.take() {
            recycle(old);
        }
        let shared = from_pool();
        self.shared = Some(shared.clone());
        Completer {
            shared: Some(shared),
        }
    }

    /// Blocks until the value of the last completer's completion is there, spinning up to
    /// `spin` first ([`Handle::wait_spinning`]). Its value taken already (or no completer
    /// asked for): an error, as [`Handle::wait`] gives for a taken value.
    #[cfg(test)]
    pub(crate) fn wait_spinning(&mut self, spin: Duration) -> Result<T> {
        self.wait_spinning_at(spin, &mut None)
    }

    /// [`Reusable::wait_spinning`], also telling when the value arrived if its completer
    /// said ([`Completer::complete_at`]: a response's read on its I/O thread); `arrived` is
    /// left as it is otherwise.
    #[inline]
    pub(crate) fn wait_spinning_at(
        &mut self,
        spin: Duration,
        arrived: &mut Option<Instant>,
    ) -> Result<T> {
        match &self.shared {
            Some(shared) => {
                shared.spin(spin);
                shared.wait_parked(arrived)
            }
            None => Err(already_taken()),
        }
    }
}

/// Puts a handle's completion into this thread's pool, if it completed: a pending one is
/// dropped (no longer shared by the handle), so that its completer sees it abandoned
/// ([`Completer::is_abandoned`]). Moved in, not cloned: no count taken and none dropped.
fn recycle<T: Pooled>(shared: Arc<Shared<T>>) {
    // `ready` is set (under the lock) with the value, so it says whether the state has left
    // `Pending` without taking the lock.
    if !shared.ready.load(Ordering::Acquire) {
        return;
    }
    T::with_pool(|pool| {
        if pool.len() < POOL_CAP {
            pool.push_back(shared);
        }
    });
}

/// The state a completer and its handle share.
pub(crate) struct Shared<T> {
    slot: Mutex<Slot<T>>,
    /// Set (under the lock) once the value is there: what a spinning or parked waiter
    /// watches ([`Handle::wait_spinning`], [`Handle::block_until`]) without taking the lock.
    ready: AtomicBool,
}

impl<T> Shared<T> {
    /// Back to a new completion's state (drops a result nobody took: a handle dropped
    /// unread).
    fn reset(&mut self) {
        let slot = self.slot.get_mut();
        slot.state = State::Pending;
        slot.waker = None;
        slot.thread = None;
        slot.arrived = None;
        *self.ready.get_mut() = false;
    }

    /// Spins up to `spin` on the `ready` flag (see [`Handle::wait_spinning`]).
    fn spin(&self, spin: Duration) {
        if !spin.is_zero() && !self.ready.load(Ordering::Acquire) {
            let start = Instant::now();
            'spin: loop {
                // The clock is read once per 64 looks.
                for _ in 0..64 {
                    if self.ready.load(Ordering::Acquire) {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
                if start.elapsed() >= spin {
                    break;
                }
            }
        }
    }

    /// Takes the value, parking until it is there: [`Shared::wait_forever`] for a waiter
    /// that has just spun (a synchronous sender's, [`Reusable::wait_spinning`]). The flag is
    /// looked at first (a value there already is taken with one lock), a pending state is
    /// only looked at under the lock (not moved out and back), and the thread is registered
    /// under that lock as in [`Shared::block_until`]: the completer stores the value and
    /// takes the thread under the same lock, so either this look sees the value or the
    /// completer sees the thread and unparks it (no lost wake-up). A park that returns early
    /// is looked at and parked again, as in `block_until`. `arrived`: when the value arrived,
    /// if its completer said ([`Completer::complete_at`]).
    // Always inlined: called from two waits (a handle's and a synchronous sender's), LLVM
    // would otherwise call it out of line, with the value copied through its return.
    #[inline(always)]
    fn wait_parked(&self, arrived: &mut Option<Instant>) -> Result<T> {
        if !self.ready.load(Ordering::Acquire) {
            let mut slot = self.slot.lock();
            if matches!(slot.state, State::Pending) {
                slot.thread = this_thread();
                // A thread that cannot be unparked (see `this_thread`) looks every `POLL`.
                let polling = slot.thread.is_none();
                drop(slot);
                while !self.ready.load(Ordering::Acquire) {
                    if polling {
                        std::thread::park_timeout(POLL);
                    } else {
                        std::thread::park();
                    }
                }
            }
        }
        let mut slot = self.slot.lock();
        if slot.arrived.is_some() {
            *arrived = slot.arrived;
        }
        match std::mem::replace(&mut slot.state, State::Taken) {
            State::Done(v) => v,
            State::Taken => Err(already_taken()),
            State::Pending => {
                // Not reached: `ready` is only set with the value, and only cleared by a
                // reset, which needs the completion unshared. Waited for as before.
                slot.state = State::Pending;
                drop(slot);
                self.wait_forever()
            }
        }
    }

    /// Takes the value, parking until it is there.
    fn wait_forever(&self) -> Result<T> {
        loop {
            // `None` only past a deadline, and there is none.
            if let Some(v) = self.block_until(None) {
                return v;
            }
        }
    }

    /// Takes the result, parking this thread until it is there or `deadline` (`None`: no
    /// deadline) has passed; `None` if it is not there by then.
    fn block_until(&self, deadline: Option<Instant>) -> Option<Result<T>> {
        // Whether this thread cannot be unparked (see `this_thread`): it then looks every
        // `POLL`.
        let mut polling;
        loop {
            {
                let mut slot = self.slot.lock();
                match std::mem::replace(&mut slot.state, State::Taken) {
                    State::Done(v) => return Some(v),
                    State::Taken => return Some(Err(already_taken())),
                    State::Pending => slot.state = State::Pending,
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    // Gone before the value came: nobody is to be unparked.
                    slot.thread = None;
                    return None;
                }
                // Left under the lock while pending: the completer, which stores the value
                // under the same lock, finds it and unparks this thread.
                slot.thread = this_thread();
                polling = slot.thread.is_none();
            }
            // Parked until the value is there (an early return from `park` is looked at and
            // parked again) or the deadline has passed; then the lock is taken again above.
            while !self.ready.load(Ordering::Acquire) {
                let limit = if polling { Some(POLL) } else { None };
                match (deadline, limit) {
                    (None, None) => std::thread::park(),
                    (None, Some(poll)) => std::thread::park_timeout(poll),
                    (Some(d), limit) => {
                        let now = Instant::now();
                        if now >= d {
                            break;
                        }
                        let left = d - now;
                        std::thread::park_timeout(limit.map_or(left, |poll| poll.min(left)));
                    }
                }
            }
        }
    }
}

/// A completion locked while pending ([`Shared::lock_pending`]).
pub(crate) struct PendingSlot<'a, T> {
    shared: &'a Shared<T>,
    slot: parking_lot::MutexGuard<'a, Slot<T>>,
}

/// Who waits on a completion just completed, to wake once its lock is released ([`wake`]).
pub(crate) struct Waiters(Option<Waker>, Option<Thread>);

impl<T> Shared<T> {
    /// Locks the completion if it is pending (`None`: it has its value already).
    #[inline(always)]
    pub(crate) fn lock_pending(&self) -> Option<PendingSlot<'_, T>> {
        let slot = self.slot.lock();
        matches!(slot.state, State::Pending).then_some(PendingSlot { shared: self, slot })
    }
}

impl<T> PendingSlot<'_, T> {
    /// Stores the value and unlocks; the waiters are to be woken with [`wake`].
    #[inline(always)]
    pub(crate) fn store(mut self, value: Result<T>) -> Waiters {
        // Pending, so nothing to drop (see `Completer::complete`).
        std::mem::forget(std::mem::replace(&mut self.slot.state, State::Done(value)));
        self.shared.ready.store(true, Ordering::Release);
        Waiters(self.slot.waker.take(), self.slot.thread.take())
    }
}

struct Slot<T> {
    state: State<T>,
    waker: Option<Waker>,
    /// The thread parked (or about to park) on the value; the completer unparks it.
    thread: Option<Thread>,
    /// When the value arrived, if its completer said ([`Completer::complete_at`]).
    arrived: Option<Instant>,
}

enum State<T> {
    Pending,
    Done(Result<T>),
    Taken,
}

/// The finishing side of a completion. Completes at most once; dropping it unfinished
/// completes the handle with [`Error::Shutdown`].
pub struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> Completer<T> {
    /// Completes the handle with `value`. Returns `false` if it was already complete.
    // Inlined, and the value stored right here rather than handed to `finish`: every call a
    // large value is passed down is a copy of it, so it goes from the caller's hands straight
    // into the slot.
    #[inline(always)]
    pub fn complete(self, value: Result<T>) -> bool {
        self.complete_arrived(value, None)
    }

    /// [`Completer::complete`] with a value that arrived at `at` (a response's read on its
    /// I/O thread): a synchronous sender's wait hands that time on, for its attempt's end
    /// (no clock read of its own; see `Reusable::wait_spinning_at`).
    #[inline(always)]
    pub(crate) fn complete_at(self, value: Result<T>, at: Instant) -> bool {
        self.complete_arrived(value, Some(at))
    }

    #[inline(always)]
    fn complete_arrived(mut self, value: Result<T>, at: Option<Instant>) -> bool {
        let shared = self.shared.take();
        // Emptied: its `Drop` would have nothing to do (forgetting it spares the call).
        std::mem::forget(self);
        let Some(shared) = shared else {
            return false;
        };
        let (waker, thread) = {
            let mut slot = shared.slot.lock();
            if !matches!(slot.state, State::Pending) {
                return false;
            }
            // Pending has nothing to drop: replacing it without a drop in between lets the
            // value be copied straight into the slot (an assignment builds it aside first,
            // for the drop of the old state).
            std::mem::forget(std::mem::replace(&mut slot.state, State::Done(value)));
            if at.is_some() {
                slot.arrived = at;
            }
            shared.ready.store(true, Ordering::Release);
            (slot.waker.take(), slot.thread.take())
        };
        wake(shared, Waiters(waker, thread));
        true
    }

    /// The shared completion, for a caller that locks it and stores the value itself
    /// ([`Shared::lock_pending`], [`PendingSlot::store`], then [`wake`]): a large value is
    /// then copied from the caller's hands straight into the slot once the lock is held,
    /// with no call in between to make the compiler copy it aside first. `None` if the
    /// completer is spent. Whoever takes it must complete it: a completion dropped pending
    /// is not ended with `Shutdown` as a dropped completer is.
    #[inline(always)]
    pub(crate) fn into_shared(mut self) -> Option<Arc<Shared<T>>> {
        let shared = self.shared.take();
        // Emptied: its `Drop` would have nothing to do.
        std::mem::forget(self);
        shared
    }

    /// Whether the handle was dropped, so nobody will look at the value.
    pub fn is_abandoned(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| Arc::strong_count(s) == 1)
    }
}

/// Stores `value` unless the completion has one, and wakes the waiter ([`Completer::complete`]
/// does the same inline).
fn finish<T>(shared: Arc<Shared<T>>, value: Result<T>) -> bool {
    let (waker, thread) = {
        let mut slot = shared.slot.lock();
        if !matches!(slot.state, State::Pending) {
            return false;
        }
        slot.state = State::Done(value);
        shared.ready.store(true, Ordering::Release);
        (slot.waker.take(), slot.thread.take())
    };
    wake(shared, Waiters(waker, thread));
    true
}

/// Wakes whoever waits on a completion just completed ([`PendingSlot::store`]), after
/// dropping the completing side's reference.
#[inline(always)]
pub(crate) fn wake<T>(shared: Arc<Shared<T>>, waiters: Waiters) {
    let Waiters(waker, thread) = waiters;
    // This side's reference goes before the waiter is woken: a woken waiter then holds the
    // only one, and can reuse the completion at once ([`Reusable`]).
    drop(shared);
    // Outside the lock: the woken thread then takes it at once, uncontended. Only the handle
    // waits (it is not `Clone`, and waiting takes it by value or `&mut`), so one thread at
    // most; with nobody parked (a spinning waiter, a task) there is nothing to do.
    if let Some(t) = thread {
        t.unpark();
    }
    // Wake the task outside the lock: its poll takes the same lock.
    if let Some(w) = waker {
        w.wake();
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            finish(shared, Err(Error::Shutdown));
        }
    }
}

impl<T> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer").finish_non_exhaustive()
    }
}

/// The waiting side of a completion: [`Handle::wait`] blocks a thread; `.await` suspends a task
/// on any executor.
#[must_use = "dropping the handle discards the result"]
pub struct Handle<T> {
    /// `Some` until the handle is dropped: its drop moves it to the pool (no count taken on
    /// it there and none dropped; see [`Handle::shared`]).
    shared: Option<Arc<Shared<T>>>,
    /// Where the completion goes when the handle is dropped ([`pooled_pair`]).
    recycle: Option<fn(Arc<Shared<T>>)>,
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        if let Some(recycle) = self.recycle {
            if let Some(shared) = self.shared.take() {
                recycle(shared);
            }
        }
    }
}

impl<T> Handle<T> {
    /// The completion. Always there: only the handle's drop takes it out, and nothing
    /// looks at it after that.
    #[inline(always)]
    fn shared(&self) -> &Arc<Shared<T>> {
        match &self.shared {
            Some(shared) => shared,
            None => unreachable!("a handle's completion is taken out only by its drop"),
        }
    }

    /// A handle that is already complete.
    pub fn ready(value: Result<T>) -> Self {
        let (c, h) = pair();
        c.complete(value);
        h
    }

    /// Blocks until the result is there.
    pub fn wait(mut self) -> Result<T> {
        self.wait_deadline_forever()
    }

    /// [`Handle::wait`], spinning up to `spin` on the result before parking the thread: on
    /// a core of its own, a result that comes within `spin` is then taken without the
    /// thread being put to sleep and woken (two scheduler hand-offs). `Duration::ZERO` is
    /// `wait`. The spin only watches a flag; the result, the error and the wait are
    /// `wait`'s.
    pub fn wait_spinning(self, spin: Duration) -> Result<T> {
        self.shared().spin(spin);
        self.wait()
    }

    /// Blocks up to `timeout`. `None` if the result is not there yet; the handle stays usable.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<T>> {
        self.wait_deadline(Instant::now() + timeout)
    }

    /// Blocks until `deadline`. `None` if the result is not there yet; the handle stays usable.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<T>> {
        self.block_until(Some(deadline))
    }

    /// [`Shared::block_until`].
    fn block_until(&mut self, deadline: Option<Instant>) -> Option<Result<T>> {
        self.shared().block_until(deadline)
    }

    /// Whether the result is there (or was taken).
    pub fn is_done(&self) -> bool {
        !matches!(self.shared().slot.lock().state, State::Pending)
    }

    /// Takes the result if it is there, without blocking.
    pub fn try_take(&mut self) -> Option<Result<T>> {
        self.wait_deadline(Instant::now())
    }

    /// Maps the eventual value (lazily, on the waiting side).
    pub fn map<U, F>(self, f: F) -> Mapped<T, F>
    where
        F: FnOnce(Result<T>) -> Result<U>,
    {
        Mapped {
            inner: self,
            f: Some(f),
        }
    }
}

fn already_taken() -> Error {
    Error::User("the result of this handle was already taken".into())
}

impl<T> Future for Handle<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut slot = self.shared().slot.lock();
        match std::mem::replace(&mut slot.state, State::Taken) {
            State::Done(v) => Poll::Ready(v),
            State::Taken => Poll::Ready(Err(already_taken())),
            State::Pending => {
                slot.state = State::Pending;
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("done", &self.is_done())
            .finish()
    }
}

/// A [`Handle`] whose value is mapped when taken.
#[must_use = "dropping the handle discards the result"]
pub struct Mapped<T, F> {
    inner: Handle<T>,
    f: Option<F>,
}

impl<T, U, F: FnOnce(Result<T>) -> Result<U>> Mapped<T, F> {
    /// Blocks until the result is there.
    pub fn wait(mut self) -> Result<U> {
        let v = self.inner.wait_deadline_forever();
        self.apply(v)
    }

    fn apply(&mut self, v: Result<T>) -> Result<U> {
        match self.f.take() {
            Some(f) => f(v),
            None => Err(already_taken()),
        }
    }
}

impl<T> Handle<T> {
    /// Takes the value, parking until it is there ([`Shared::wait_parked`]: the thread is
    /// registered once and the value moved out of the slot straight into the return value,
    /// not through `block_until`'s `Option` and loop).
    #[inline]
    fn wait_deadline_forever(&mut self) -> Result<T> {
        self.shared().wait_parked(&mut None)
    }
}

/// How often a thread that cannot be unparked looks at the value (see `this_thread`).
const POLL: Duration = Duration::from_millis(1);

/// This thread's handle, to be unparked by a completer. `None` only on a thread whose
/// runtime data is gone (`std::thread::current` panics then: code run by a thread-local's
/// destructor late in the thread's exit); its waits then poll every [`POLL`].
fn this_thread() -> Option<Thread> {
    std::panic::catch_unwind(std::thread::current).ok()
}

impl<T, U, F: FnOnce(Result<T>) -> Result<U> + Unpin> Future for Mapped<T, F> {
    type Output = Result<U>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<U>> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(v) => Poll::Ready(self.apply(v)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T, F> fmt::Debug for Mapped<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapped")
            .field("inner", &self.inner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wait_gets_value_from_other_thread() {
        let (c, h) = pair::<u32>();
        let t = std::thread::spawn(move || c.complete(Ok(7)));
        assert_eq!(h.wait().unwrap(), 7);
        assert!(t.join().unwrap());
    }

    /// Completing by hand (lock, store, wake: the asynchronous send's way) ends the handle
    /// as `complete` does: a parked waiter and a task are woken, the value is there once, and
    /// a completion that has its value is not locked as pending again.
    #[test]
    fn a_value_stored_by_hand_ends_the_handle_as_complete_does() {
        let (c, h) = pair::<u32>();
        let waiter = std::thread::spawn(move || h.wait());
        // Let the waiter park (it does not matter if it has not yet: it finds the value).
        std::thread::sleep(Duration::from_millis(20));
        let shared = c.into_shared().unwrap();
        let waiters = shared.lock_pending().map(|slot| slot.store(Ok(5))).unwrap();
        assert!(
            shared.lock_pending().is_none(),
            "has its value: not pending"
        );
        wake(shared, waiters);
        assert_eq!(waiter.join().unwrap().unwrap(), 5);

        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let (c, mut h) = pair::<u32>();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        let shared = c.into_shared().unwrap();
        let waiters = shared.lock_pending().map(|slot| slot.store(Ok(6))).unwrap();
        wake(shared, waiters);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut h).poll(&mut cx) {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 6),
            Poll::Pending => panic!("stored value not seen"),
        }
    }

    #[test]
    fn dropped_completer_is_shutdown() {
        let (c, h) = pair::<u32>();
        drop(c);
        assert!(h.wait().unwrap_err().is_shutdown());
    }

    #[test]
    fn wait_timeout_expires_then_succeeds() {
        let (c, mut h) = pair::<u32>();
        assert!(h.wait_timeout(Duration::from_millis(10)).is_none());
        assert!(!h.is_done());
        c.complete(Ok(1));
        assert!(h.is_done());
        assert_eq!(h.wait_timeout(Duration::ZERO).unwrap().unwrap(), 1);
    }

    #[test]
    fn poll_pending_one_wake_ready() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let (c, mut h) = pair::<u32>();
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        c.complete(Ok(5));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut h).poll(&mut cx) {
            Poll::Ready(Ok(5)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn block_on_and_map() {
        let (c, h) = pair::<u32>();
        std::thread::spawn(move || c.complete(Ok(20)));
        let v = futures_lite::future::block_on(h.map(|r| r.map(|v| v * 2))).unwrap();
        assert_eq!(v, 40);
    }

    fn pooled_len() -> usize {
        RemotingCommand::with_pool(|p| p.len()).unwrap()
    }

    /// A spent completion is reused by the next pair of the thread, reset: pending, no
    /// stale value, waits and completes as a new one.
    #[test]
    fn pooled_pairs_reuse_spent_completions() {
        RemotingCommand::with_pool(VecDeque::clear);
        let (c, h) = pooled_pair::<RemotingCommand>();
        let first = Arc::as_ptr(h.shared());
        c.complete(Ok(RemotingCommand::response(0, 0)));
        assert_eq!(h.wait().unwrap().code, 0);
        assert_eq!(pooled_len(), 1);
        for code in 1..5 {
            let (c, h) = pooled_pair::<RemotingCommand>();
            assert_eq!(Arc::as_ptr(h.shared()), first, "reused");
            assert!(!h.is_done());
            let t = std::thread::spawn(move || c.complete(Ok(RemotingCommand::response(code, 0))));
            assert_eq!(h.wait().unwrap().code, code);
            assert!(t.join().unwrap());
        }
        // Dropped unread after completing: pooled, and the stale value goes at reuse.
        let (c, h) = pooled_pair::<RemotingCommand>();
        c.complete(Ok(RemotingCommand::response(9, 0)));
        drop(h);
        let (c, mut h) = pooled_pair::<RemotingCommand>();
        assert_eq!(Arc::as_ptr(h.shared()), first);
        assert!(h.try_take().is_none(), "no stale value");
        drop(c);
        assert!(h
            .wait_timeout(Duration::ZERO)
            .unwrap()
            .unwrap_err()
            .is_shutdown());
    }

    /// A handle dropped before its completion ends is not pooled: the completer sees it
    /// abandoned, and a completion still shared is never handed out again.
    #[test]
    fn pending_or_shared_completions_are_not_reused() {
        RemotingCommand::with_pool(VecDeque::clear);
        let (c, h) = pooled_pair::<RemotingCommand>();
        drop(h);
        assert!(c.is_abandoned());
        assert_eq!(pooled_len(), 0);
        // Completed and waited, but its completer not dropped yet: the next pair is new.
        let (c, h) = pooled_pair::<RemotingCommand>();
        let held = Arc::clone(c.shared.as_ref().unwrap());
        c.complete(Ok(RemotingCommand::response(1, 0)));
        h.wait().unwrap();
        let (_c2, h2) = pooled_pair::<RemotingCommand>();
        assert!(!Arc::ptr_eq(h2.shared(), &held));
        drop(held);
    }

    /// Runs `f` on a thread and gives its value, failing (not hanging) after 10 s.
    fn watchdog<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a waiter hung")
    }

    /// Waits until a thread is parked (or about to park) on `shared`'s value.
    fn until_parked<T>(shared: &Shared<T>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.slot.lock().thread.is_none() {
            assert!(Instant::now() < deadline, "the waiter never parked");
            std::thread::yield_now();
        }
    }

    /// A waiter parked on the value is woken by the completer on another thread, in every
    /// blocking form; an early unpark (spurious, or meant for an earlier wait) does not end a
    /// wait without the value.
    #[test]
    fn parked_waiters_are_woken_and_early_unparks_are_ignored() {
        for (form, early_unparks) in [(0, false), (1, false), (0, true), (1, true), (2, false)] {
            let (c, mut h) = pooled_pair::<RemotingCommand>();
            let shared = h.shared().clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let waiter = std::thread::spawn(move || {
                let _ = tx.send(std::thread::current());
                match form {
                    0 => h.wait(),
                    1 => h.wait_timeout(Duration::from_secs(60)).unwrap(),
                    _ => futures_lite::future::block_on(h.map(|r| r)),
                }
            });
            let waiter_thread = rx.recv().unwrap();
            if form != 2 {
                until_parked(&shared);
            }
            if early_unparks {
                for _ in 0..100 {
                    waiter_thread.unpark();
                }
                // Still parked on the value, not gone with a wrong one.
                until_parked(&shared);
                assert!(!waiter.is_finished());
            }
            drop(shared);
            c.complete(Ok(RemotingCommand::response(form, 0)));
            let code = watchdog(move || waiter.join().unwrap().unwrap().code);
            assert_eq!(code, form);
        }
    }

    /// A wait that times out leaves nobody to unpark; the handle then waits again and gets
    /// the value, and the next completion of the same thread is not ended by a stale unpark.
    #[test]
    fn timed_out_waits_unregister_and_later_waits_get_the_value() {
        watchdog(|| {
            let (c, mut h) = pair::<u32>();
            assert!(h.wait_timeout(Duration::from_millis(5)).is_none());
            assert!(h.shared().slot.lock().thread.is_none(), "unregistered");
            let t = std::thread::spawn(move || c.complete(Ok(3)));
            assert_eq!(h.wait().unwrap(), 3);
            t.join().unwrap();
            // Many rounds through one thread's pool, completed on another thread: each
            // waiter gets its own value, whatever unparks were left over from the last.
            for code in 0..2_000 {
                let (c, h) = pooled_pair::<RemotingCommand>();
                let t = std::thread::spawn(move || {
                    c.complete(Ok(RemotingCommand::response(code, 0)));
                });
                assert_eq!(h.wait().unwrap().code, code);
                t.join().unwrap();
            }
        });
    }

    /// The completer's reference is gone when it wakes the waiter: a woken waiter holds the
    /// only one (so a [`Reusable`] completion can be reused at once).
    #[test]
    fn completers_let_go_before_waking() {
        struct Counting(Mutex<Option<std::sync::Weak<Shared<u32>>>>, AtomicUsize);
        impl Wake for Counting {
            fn wake(self: Arc<Self>) {
                let count = self.0.lock().as_ref().map_or(0, |w| w.strong_count());
                self.1.store(count, Ordering::SeqCst);
            }
        }
        for complete in [true, false] {
            let counting = Arc::new(Counting(Mutex::new(None), AtomicUsize::new(99)));
            let waker = Waker::from(counting.clone());
            let (c, mut h) = pair::<u32>();
            *counting.0.lock() = Some(Arc::downgrade(h.shared()));
            assert!(Pin::new(&mut h)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            if complete {
                c.complete(Ok(1));
            } else {
                drop(c);
            }
            assert_eq!(
                counting.1.load(Ordering::SeqCst),
                1,
                "only the handle's left"
            );
        }
    }

    /// A kept completion is reused wait after wait (the same one while nobody else holds
    /// it), each wait getting its own value from another thread; one still shared goes to the
    /// pool and another is used; a wait with no completer is an error, not a hang.
    #[test]
    fn reusable_completions_are_reused_and_each_wait_gets_its_value() {
        watchdog(|| {
            let mut reuse = Reusable::<RemotingCommand>::default();
            assert!(reuse.wait_spinning(Duration::ZERO).is_err());
            let c = reuse.completer();
            c.complete(Ok(RemotingCommand::response(0, 0)));
            assert_eq!(reuse.wait_spinning(Duration::ZERO).unwrap().code, 0);
            assert!(reuse.wait_spinning(Duration::ZERO).is_err(), "taken");
            let first = Arc::as_ptr(reuse.shared.as_ref().unwrap());
            // A spare in this thread's pool: the kept completion is reused without it.
            RemotingCommand::with_pool(VecDeque::clear);
            let spare = new_shared::<RemotingCommand>();
            RemotingCommand::with_pool(|p| p.push_back(spare.clone()));
            drop(spare);
            for code in 1..2_000 {
                let c = reuse.completer();
                assert!(!c.is_abandoned());
                let t = std::thread::spawn(move || {
                    c.complete(Ok(RemotingCommand::response(code, 0)));
                });
                let spin = Duration::from_micros(u64::from(code % 2 == 0) * 50);
                assert_eq!(reuse.wait_spinning(spin).unwrap().code, code);
                t.join().unwrap();
                // The completer is gone (joined): the same completion again, reset.
                assert_eq!(Arc::as_ptr(reuse.shared.as_ref().unwrap()), first);
            }
            assert_eq!(pooled_len(), 1, "the pool untouched");
            // Still shared when the next completer is asked for: another one, pending.
            let c = reuse.completer();
            let held = Arc::clone(c.shared.as_ref().unwrap());
            c.complete(Ok(RemotingCommand::response(7, 0)));
            assert_eq!(reuse.wait_spinning(Duration::ZERO).unwrap().code, 7);
            let c = reuse.completer();
            assert!(!Arc::ptr_eq(c.shared.as_ref().unwrap(), &held));
            assert!(!reuse.shared.as_ref().unwrap().ready.load(Ordering::Acquire));
            drop(c);
            assert!(reuse
                .wait_spinning(Duration::ZERO)
                .unwrap_err()
                .is_shutdown());
        });
    }

    /// A synchronous sender's wait ([`Reusable::wait_spinning`], [`Shared::wait_parked`])
    /// against a completer on another thread that completes as the waiter arrives: before
    /// its first look, between its look and its park, or while it is parked, round after
    /// round on the same kept completion. Every wait gets its own value, none hangs (the
    /// watchdog fails the test instead); a value there already is taken without parking,
    /// and a taken one is an error.
    #[test]
    fn sync_waits_racing_their_completion_get_their_value() {
        watchdog(|| {
            let mut reuse = Reusable::<RemotingCommand>::default();
            // There before the wait: taken at once; a second wait finds it taken.
            reuse
                .completer()
                .complete(Ok(RemotingCommand::response(1, 0)));
            assert_eq!(reuse.wait_spinning(Duration::ZERO).unwrap().code, 1);
            assert!(reuse.wait_spinning(Duration::ZERO).is_err(), "taken");
            // One completing thread, handed each completer as the waiter starts its wait.
            let (tx, rx) = std::sync::mpsc::channel::<(Completer<RemotingCommand>, i32, u32)>();
            let completing = std::thread::spawn(move || {
                for (c, code, delay) in rx {
                    for _ in 0..delay {
                        std::hint::spin_loop();
                    }
                    c.complete(Ok(RemotingCommand::response(code, 0)));
                }
            });
            for round in 0..20_000i32 {
                let c = reuse.completer();
                // From no delay (completed before the waiter looks) to a few thousand spins
                // (completed after it parked), and everything in between.
                let delay = (round as u32 * 37) % 4_000;
                tx.send((c, round, delay)).unwrap();
                let spin = Duration::from_micros(u64::from(round % 3 == 0) * 5);
                assert_eq!(reuse.wait_spinning(spin).unwrap().code, round);
            }
            drop(tx);
            completing.join().unwrap();
            // A dropped completer still ends the wait (with `Shutdown`).
            drop(reuse.completer());
            assert!(reuse
                .wait_spinning(Duration::ZERO)
                .unwrap_err()
                .is_shutdown());
        });
    }

    /// A handle's `wait` (and a mapped handle's) racing its completion on another thread
    /// gets its value every time, whether it was there before the wait, came while the
    /// waiter registered, or came after it parked; a dropped completer ends it with
    /// `Shutdown`, a completion through the slot's lock (`lock_pending`) wakes it too.
    #[test]
    fn handle_waits_racing_their_completion_get_their_value() {
        fn err(round: u32) -> Error {
            Error::Broker {
                code: round as i32,
                remark: String::new(),
                addr: String::new(),
            }
        }
        watchdog(|| {
            let (tx, rx) = std::sync::mpsc::channel::<(Completer<SendResult>, u32, u32)>();
            let completing = std::thread::spawn(move || {
                for (c, round, delay) in rx {
                    for _ in 0..delay {
                        std::hint::spin_loop();
                    }
                    match round % 4 {
                        0 => drop(c),
                        1 => {
                            let shared = c.into_shared().unwrap();
                            let waiters = shared.lock_pending().unwrap().store(Err(err(round)));
                            wake(shared, waiters);
                        }
                        _ => assert!(c.complete(Err(err(round)))),
                    }
                }
            });
            for round in 0..8_000u32 {
                let (c, h) = pooled_pair::<SendResult>();
                let delay = (round * 37) % 4_000;
                tx.send((c, round, delay)).unwrap();
                let v = if round % 3 == 0 {
                    h.map(|r| r).wait()
                } else {
                    h.wait()
                };
                match v {
                    Err(e) if round % 4 == 0 => assert!(e.is_shutdown()),
                    Err(Error::Broker { code, .. }) => assert_eq!(code, round as i32),
                    other => panic!("round {round}: {other:?}"),
                }
            }
            drop(tx);
            completing.join().unwrap();
        });
    }

    /// A value completed with its arrival time hands that time to the kept completion's
    /// wait; one completed without (or a wait on the reused completion after it) leaves the
    /// caller's `arrived` as it was: a time is never carried over to the next wait.
    #[test]
    fn arrival_times_reach_the_sync_wait_and_do_not_outlive_it() {
        watchdog(|| {
            let mut reuse = Reusable::<RemotingCommand>::default();
            let at = Instant::now();
            let c = reuse.completer();
            let t =
                std::thread::spawn(move || c.complete_at(Ok(RemotingCommand::response(1, 0)), at));
            let mut arrived = None;
            let v = reuse.wait_spinning_at(Duration::ZERO, &mut arrived);
            assert_eq!(v.unwrap().code, 1);
            assert_eq!(arrived, Some(at));
            assert!(t.join().unwrap());
            // The same completion again, completed without a time: none comes out.
            let first = Arc::as_ptr(reuse.shared.as_ref().unwrap());
            let c = reuse.completer();
            assert_eq!(Arc::as_ptr(reuse.shared.as_ref().unwrap()), first, "reused");
            c.complete(Ok(RemotingCommand::response(2, 0)));
            let mut arrived = None;
            assert_eq!(
                reuse
                    .wait_spinning_at(Duration::ZERO, &mut arrived)
                    .unwrap()
                    .code,
                2
            );
            assert_eq!(arrived, None);
            // A dropped completer (shutdown) has no arrival either.
            drop(reuse.completer());
            let mut arrived = None;
            assert!(reuse
                .wait_spinning_at(Duration::ZERO, &mut arrived)
                .unwrap_err()
                .is_shutdown());
            assert_eq!(arrived, None);
        });
    }

    #[test]
    fn completes_once() {
        let (c, h) = pair::<u32>();
        assert!(c.complete(Ok(1)));
        assert_eq!(h.wait().unwrap(), 1);
    }
}
