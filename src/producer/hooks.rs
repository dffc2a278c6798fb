//! Send hooks: user code that sees every send, attempt and transaction end, like the Java
//! client's `SendMessageHook` and `EndTransactionHook` (one trait here, with default no-op
//! methods).
//!
//! Register any number of [`SendHook`]s with
//! [`ProducerConfigBuilder::send_hook`](crate::ProducerConfigBuilder::send_hook); they run in
//! registration order.
//!
//! # What runs when
//!
//! - [`SendHook::before_send`]: once per send (not per attempt), after each message passed
//!   validation and before it is encoded, so properties it adds go on the wire (retries reuse
//!   the encoded message). It sees every message of a batch. A message that auto-batching
//!   takes gets its own `before_send`, before it joins a batch. What it adds is validated
//!   again with the rest of the send (batch rules too); a send refused then calls no
//!   `after_send`.
//! - [`SendHook::after_send`]: once per attempt that reached the point of choosing a queue and
//!   a broker: the queue, the broker address, the attempt number (1 for the first, counting
//!   up across retries), the attempt's latency and its result. Failures before any attempt
//!   (an invalid message, no route, backpressure, shutdown) call no hook. An auto-batch
//!   attempt shows every message of the batch, whichever sends they came from. A oneway send
//!   has one attempt whose result is `Ok(None)` once the request is queued for the socket
//!   (there is no answer to show).
//! - [`SendHook::end_transaction`]: once per END_TRANSACTION a transaction producer sends:
//!   after the local transaction (or [`Transaction::commit`](crate::transaction::Transaction)
//!   and friends), and after each broker check-back
//!   ([`EndTransactionContext::from_check`]).
//!
//! # Threads
//!
//! Hooks never run on an I/O thread (`rocketmq-io-N`), and no library progress waits for
//! them:
//!
//! - synchronous sends (`send`, `send_to_queue`, `send_with_selector`, `send_batch`,
//!   `send_oneway`, `send_in_transaction`, `request`, `reply`, ...) run every hook on the
//!   calling thread, before the call returns;
//! - asynchronous sends (handles and callbacks, `request_async` and `request_with_callback`,
//!   and sends that auto-batching takes, sync or
//!   not) run `before_send` on the calling thread, before the message is encoded, and every
//!   `after_send` on the callback pool (`rocketmq-callback-N`): it is queued when the attempt
//!   ends, and neither the send's completion nor its retry waits for it. A handle may
//!   therefore complete before the last attempt's `after_send` ran. A callback
//!   ([`Producer::send_with_callback`](crate::Producer::send_with_callback)) runs right
//!   after its send's last `after_send`, in the same task on the same callback thread (so a
//!   hook that blocks delays that callback, not the send). Hook tasks do not hold in-flight
//!   room: hooks slower than the sends queue up on the callback pool;
//! - `end_transaction` runs on the thread that sent the END_TRANSACTION: the calling thread,
//!   a transaction thread, or a check-back thread, never an I/O thread.
//!
//! A hook must be quick: it delays the synchronous caller it runs on, and the callback pool
//! it shares with user callbacks. It may send (a hook that sends with the same producer sees
//! its own sends, so guard against recursion).
//!
//! # Panics
//!
//! A panicking hook is caught and logged, counted in
//! [`ProducerStats::hooks`](crate::ProducerStats), and changes nothing else: the other hooks
//! still run, and the send's result is the same.
//!
//! # Cost
//!
//! With no hook registered the send path pays one branch per send: nothing is allocated or
//! copied for hooks. With hooks, the messages are kept (the caller's message, not a copy of
//! its body, where the send path allows it) until the last `after_send` has run, and each
//! asynchronous attempt queues one task on the callback pool.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use rocketmq_mio::hooks::{AfterSendContext, BeforeSendContext, SendHook};
//!
//! #[derive(Default)]
//! struct Counting(AtomicU64);
//!
//! impl SendHook for Counting {
//!     fn name(&self) -> &str {
//!         "counting"
//!     }
//!     fn before_send(&self, ctx: &mut BeforeSendContext<'_>) {
//!         ctx.set_property("sent-by", "billing");
//!     }
//!     fn after_send(&self, ctx: &AfterSendContext<'_>) {
//!         if ctx.result().is_ok() {
//!             self.0.fetch_add(ctx.messages().len() as u64, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! let hook = Arc::new(Counting::default());
//! let builder = rocketmq_mio::Producer::builder("GID_BILLING")
//!     .name_server("127.0.0.1:9876")
//!     .send_hook(hook.clone());
//! assert!(format!("{builder:?}").contains("counting"));
//! ```

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::ProducerConfig;
use crate::error::Error;
use crate::message::{property, Message, MessageExt, MessageQueue, SendResult};
use crate::producer::prepare::{self, check_message, Prepared};
use crate::producer::transaction::LocalTransactionState;
use crate::producer::Inner;

/// User code that sees sends, their attempts and transaction ends. Every method has a no-op
/// default; see the [module docs](self) for when and where each one runs.
pub trait SendHook: Send + Sync + 'static {
    /// A name for logs and for the config's `Debug` output (the type name by default).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Runs once per send, before its message(s) are encoded: it may read them and add or
    /// replace properties ([`BeforeSendContext::set_property`]). What it adds is checked like
    /// the caller's own properties: a property the send refuses fails the send with
    /// [`Error::InvalidMessage`], and no `after_send` runs.
    fn before_send(&self, ctx: &mut BeforeSendContext<'_>) {
        let _ = ctx;
    }

    /// Runs once per attempt, with the attempt's queue, broker, number, latency and result.
    fn after_send(&self, ctx: &AfterSendContext<'_>) {
        let _ = ctx;
    }

    /// Runs once per END_TRANSACTION sent (or that failed to be sent) by a transaction
    /// producer.
    fn end_transaction(&self, ctx: &EndTransactionContext<'_>) {
        let _ = ctx;
    }
}

/// How a send was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendMode {
    /// The caller blocks for the result (`send`, `send_batch`, `send_in_transaction`, ...).
    Sync,
    /// A handle or a callback gets the result (`send_async`, `send_with_callback`, ...). The
    /// `after_send` of an auto-batch shows `Async` too, whichever calls its messages came
    /// from (their `before_send` shows the mode of their call).
    Async,
    /// No answer is waited for (`send_oneway`, `send_batch_oneway`).
    Oneway,
}

/// What kind of message a send carries (Java's `MessageType`, as trace records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// A plain message (batches too).
    Normal,
    /// The half message of a transaction (`TRAN_MSG=true`).
    TransactionHalf,
    /// A delayed or timed message (a delay level, or a timer property).
    Delay,
}

impl MessageType {
    /// The type of `msg` by its properties.
    pub fn of(msg: &Message) -> MessageType {
        if msg
            .property(property::TRANSACTION_PREPARED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            MessageType::TransactionHalf
        } else if msg.property(property::DELAY_TIME_LEVEL).is_some()
            || msg.property(property::TIMER_DELIVER_MS).is_some()
            || msg.property(property::TIMER_DELAY_SEC).is_some()
            || msg.property(property::TIMER_DELAY_MS).is_some()
        {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }
}

/// The producer a hook runs for.
#[derive(Debug)]
pub(crate) struct HookEnv {
    pub(crate) group: String,
    pub(crate) namespace: Option<String>,
}

/// What [`SendHook::before_send`] sees: the message(s) of one send, before encoding.
pub struct BeforeSendContext<'a> {
    pub(crate) env: &'a HookEnv,
    pub(crate) messages: &'a mut [Message],
    pub(crate) mode: SendMode,
    pub(crate) batch: bool,
}

impl<'a> BeforeSendContext<'a> {
    /// The messages of the send: one, unless it is a batch. Each has its client message id
    /// (`UNIQ_KEY`, [`property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX`]) set already. Topics are as
    /// the caller names them (without the namespace).
    pub fn messages(&self) -> &[Message] {
        self.messages
    }

    /// The first (usually the only) message of the send.
    pub fn message(&self) -> &Message {
        // Never empty: an empty batch is refused before any hook runs.
        &self.messages[0]
    }

    /// Adds (or replaces) a property on every message of the send.
    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        for msg in self.messages.iter_mut() {
            msg.set_property(key.clone(), value.clone());
        }
    }

    /// Adds (or replaces) a property on message `index` of the send; `false` if there is no
    /// such message.
    pub fn set_message_property(
        &mut self,
        index: usize,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> bool {
        match self.messages.get_mut(index) {
            Some(msg) => {
                msg.set_property(key, value);
                true
            }
            None => false,
        }
    }

    /// How the send was made.
    pub fn mode(&self) -> SendMode {
        self.mode
    }

    /// Whether the send is a batch (explicit; auto-batching shows single messages here).
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The type of the (first) message.
    pub fn message_type(&self) -> MessageType {
        MessageType::of(self.message())
    }

    /// The producer group, without the namespace.
    pub fn group(&self) -> &str {
        &self.env.group
    }

    /// The namespace, if one is configured.
    pub fn namespace(&self) -> Option<&str> {
        self.env.namespace.as_deref()
    }
}

impl fmt::Debug for BeforeSendContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeforeSendContext")
            .field("messages", &self.messages.len())
            .field("mode", &self.mode)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// What [`SendHook::after_send`] sees: one attempt of a send and how it ended.
pub struct AfterSendContext<'a> {
    pub(crate) env: &'a HookEnv,
    pub(crate) messages: &'a [Message],
    pub(crate) wire_topic: &'a str,
    pub(crate) queue: &'a MessageQueue,
    pub(crate) broker_addr: &'a str,
    pub(crate) attempt: u32,
    pub(crate) latency: Duration,
    pub(crate) result: Result<Option<&'a SendResult>, &'a Error>,
    pub(crate) mode: SendMode,
    pub(crate) batch: bool,
}

impl<'a> AfterSendContext<'a> {
    /// The messages the attempt carried, as `before_send` left them: one, unless it is a
    /// batch (an auto-batch shows the messages of every send it holds). Each has its client
    /// message id (`UNIQ_KEY`) set. Bodies are as the caller gave them (not compressed).
    pub fn messages(&self) -> &'a [Message] {
        self.messages
    }

    /// The first (usually the only) message.
    pub fn message(&self) -> &'a Message {
        // Never empty: an attempt always carries at least one message.
        &self.messages[0]
    }

    /// The client message ids (`UNIQ_KEY`), one per message, in order.
    pub fn msg_ids(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.messages.iter().map(|m| {
            m.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                .unwrap_or("")
        })
    }

    /// The broker's offset message ids, one per message, in order (a batch result lists
    /// them comma-separated); empty unless the attempt has a result.
    pub fn offset_msg_ids(&self) -> impl Iterator<Item = &'a str> + 'a {
        let ids = match self.result {
            Ok(Some(r)) => r.offset_msg_id.as_str(),
            _ => "",
        };
        ids.split(',').filter(|s| !s.is_empty())
    }

    /// The topic as the caller names it (without the namespace).
    pub fn topic(&self) -> &'a str {
        self.message().topic()
    }

    /// The topic on the wire (with the namespace, if any).
    pub fn wire_topic(&self) -> &'a str {
        self.wire_topic
    }

    /// The queue of the attempt.
    pub fn queue(&self) -> &'a MessageQueue {
        self.queue
    }

    /// The address of the broker the attempt went to (the store host).
    pub fn broker_addr(&self) -> &'a str {
        self.broker_addr
    }

    /// The attempt number: 1 for the first attempt, one more for each retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How long the attempt took, from just before its request was encoded to its end
    /// (response, timeout or error); for a oneway send, until the request was queued.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The attempt's result: the broker's answer, `Ok(None)` for a oneway send once it was
    /// queued, or the error.
    pub fn result(&self) -> Result<Option<&'a SendResult>, &'a Error> {
        self.result
    }

    /// The region id from the broker's answer, if it sent one.
    pub fn region_id(&self) -> Option<&'a str> {
        match self.result {
            Ok(Some(r)) => r.region_id.as_deref(),
            _ => None,
        }
    }

    /// How the send was made.
    pub fn mode(&self) -> SendMode {
        self.mode
    }

    /// Whether the attempt carried a batch (explicit or auto-batch).
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The type of the (first) message.
    pub fn message_type(&self) -> MessageType {
        MessageType::of(self.message())
    }

    /// The producer group, without the namespace.
    pub fn group(&self) -> &'a str {
        &self.env.group
    }

    /// The namespace, if one is configured.
    pub fn namespace(&self) -> Option<&'a str> {
        self.env.namespace.as_deref()
    }
}

impl fmt::Debug for AfterSendContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterSendContext")
            .field("messages", &self.messages.len())
            .field("queue", self.queue)
            .field("broker_addr", &self.broker_addr)
            .field("attempt", &self.attempt)
            .field("latency", &self.latency)
            .field("result", &self.result)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The message an END_TRANSACTION is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndMessage<'a> {
    /// The half message as this producer sent it (after the local transaction).
    Sent(&'a Message),
    /// The half message as the broker stored it (a check-back).
    Stored(&'a MessageExt),
}

/// What [`SendHook::end_transaction`] sees: one END_TRANSACTION.
pub struct EndTransactionContext<'a> {
    pub(crate) env: &'a HookEnv,
    pub(crate) message: EndMessage<'a>,
    pub(crate) msg_id: &'a str,
    pub(crate) transaction_id: Option<&'a str>,
    pub(crate) broker_addr: Option<&'a str>,
    pub(crate) state: LocalTransactionState,
    pub(crate) from_check: bool,
    pub(crate) result: Result<(), &'a Error>,
}

impl<'a> EndTransactionContext<'a> {
    /// The half message as this producer sent it; `None` for a check-back (see
    /// [`EndTransactionContext::stored_message`]).
    pub fn message(&self) -> Option<&'a Message> {
        match self.message {
            EndMessage::Sent(m) => Some(m),
            EndMessage::Stored(_) => None,
        }
    }

    /// The half message as the broker stored it, for a check-back; `None` otherwise.
    pub fn stored_message(&self) -> Option<&'a MessageExt> {
        match self.message {
            EndMessage::Stored(m) => Some(m),
            EndMessage::Sent(_) => None,
        }
    }

    /// The topic as the caller names it (without the namespace).
    pub fn topic(&self) -> &'a str {
        match self.message {
            EndMessage::Sent(m) => m.topic(),
            EndMessage::Stored(m) => &m.topic,
        }
    }

    /// A property of the half message.
    pub fn property(&self, key: &str) -> Option<&'a str> {
        match self.message {
            EndMessage::Sent(m) => m.property(key),
            EndMessage::Stored(m) => m.property(key),
        }
    }

    /// The tag of the half message.
    pub fn tags(&self) -> Option<&'a str> {
        self.property(property::TAGS)
    }

    /// The business keys of the half message.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.property(property::KEYS)
            .unwrap_or("")
            .split(property::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }

    /// The half message's client id (`UNIQ_KEY`): the transaction id the listener saw.
    pub fn msg_id(&self) -> &'a str {
        self.msg_id
    }

    /// The transaction id the broker gave the half message, if it gave one.
    pub fn transaction_id(&self) -> Option<&'a str> {
        self.transaction_id
    }

    /// The address the END_TRANSACTION went to; `None` if no address was known.
    pub fn broker_addr(&self) -> Option<&'a str> {
        self.broker_addr
    }

    /// The decision sent: commit, rollback or unknown.
    pub fn state(&self) -> LocalTransactionState {
        self.state
    }

    /// Whether this END_TRANSACTION answers a broker's check-back.
    pub fn from_check(&self) -> bool {
        self.from_check
    }

    /// Whether the END_TRANSACTION was queued for the socket (it is oneway: there is no
    /// answer). On an error the broker checks back later.
    pub fn result(&self) -> Result<(), &'a Error> {
        self.result
    }

    /// The producer group, without the namespace.
    pub fn group(&self) -> &'a str {
        &self.env.group
    }

    /// The namespace, if one is configured.
    pub fn namespace(&self) -> Option<&'a str> {
        self.env.namespace.as_deref()
    }
}

impl fmt::Debug for EndTransactionContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndTransactionContext")
            .field("msg_id", &self.msg_id)
            .field("transaction_id", &self.transaction_id)
            .field("broker_addr", &self.broker_addr)
            .field("state", &self.state)
            .field("from_check", &self.from_check)
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

/// The hooks of a config: `Debug` prints their names, equality is identity.
#[derive(Clone, Default)]
pub(crate) struct HookList(pub(crate) Vec<Arc<dyn SendHook>>);

impl fmt::Debug for HookList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|h| h.name()))
            .finish()
    }
}

impl PartialEq for HookList {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)))
    }
}

/// Runs a producer's hooks, catching and counting their panics. A producer without hooks
/// has none (`Option<Arc<HookRunner>>` is `None`), so the send path pays one branch.
pub(crate) struct HookRunner {
    hooks: Vec<Arc<dyn SendHook>>,
    pub(crate) env: HookEnv,
    panics: AtomicU64,
}

impl fmt::Debug for HookRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookRunner")
            .field("hooks", &HookList(self.hooks.clone()))
            .field("panics", &self.panics())
            .finish()
    }
}

impl HookRunner {
    /// The runner of `config`'s hooks; `None` when it has none.
    pub(crate) fn new(config: &ProducerConfig) -> Option<Arc<HookRunner>> {
        if config.send_hooks().is_empty() {
            return None;
        }
        Some(Arc::new(HookRunner {
            hooks: config.send_hooks().to_vec(),
            env: HookEnv {
                group: config.group().to_string(),
                namespace: config.namespace().map(str::to_string),
            },
            panics: AtomicU64::new(0),
        }))
    }

    /// The runner of `config`'s hooks followed by the library's own (message trace's), which
    /// run after the user's; `None` when there are none at all.
    pub(crate) fn with_internal(
        config: &ProducerConfig,
        internal: Vec<Arc<dyn SendHook>>,
    ) -> Option<Arc<HookRunner>> {
        if internal.is_empty() {
            return HookRunner::new(config);
        }
        let mut hooks = config.send_hooks().to_vec();
        hooks.extend(internal);
        Some(Arc::new(HookRunner {
            hooks,
            env: HookEnv {
                group: config.group().to_string(),
                namespace: config.namespace().map(str::to_string),
            },
            panics: AtomicU64::new(0),
        }))
    }

    /// Hook calls that panicked.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// How many hooks run.
    pub(crate) fn len(&self) -> usize {
        self.hooks.len()
    }

    fn each(&self, what: &str, mut call: impl FnMut(&dyn SendHook)) {
        for hook in &self.hooks {
            if catch_unwind(AssertUnwindSafe(|| call(hook.as_ref()))).is_err() {
                let n = self.panics.fetch_add(1, Ordering::Relaxed) + 1;
                log::error!(
                    "send hook {} panicked in {what} ({n} hook panics so far); ignored",
                    hook.name()
                );
            }
        }
    }

    /// Gives every message its `UNIQ_KEY` (so hooks see the id that goes on the wire), then
    /// runs `before_send`.
    pub(crate) fn before(
        &self,
        messages: &mut [Message],
        mode: SendMode,
        batch: bool,
        mut new_id: impl FnMut() -> String,
    ) {
        for msg in messages.iter_mut() {
            if msg
                .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                .is_none()
            {
                msg.set_property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, new_id());
            }
        }
        if messages.is_empty() {
            return;
        }
        let mut ctx = BeforeSendContext {
            env: &self.env,
            messages,
            mode,
            batch,
        };
        self.each("before_send", |h| h.before_send(&mut ctx));
    }

    /// Runs `after_send` (here: the caller decides the thread).
    pub(crate) fn after(&self, ctx: &AfterSendContext<'_>) {
        if ctx.messages.is_empty() {
            return;
        }
        self.each("after_send", |h| h.after_send(ctx));
    }

    /// Runs `end_transaction` (here: the caller decides the thread, never an I/O thread).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn end_transaction(
        &self,
        message: EndMessage<'_>,
        msg_id: &str,
        transaction_id: Option<&str>,
        broker_addr: Option<&str>,
        state: LocalTransactionState,
        from_check: bool,
        result: Result<(), &Error>,
    ) {
        let ctx = EndTransactionContext {
            env: &self.env,
            message,
            msg_id,
            transaction_id,
            broker_addr,
            state,
            from_check,
            result,
        };
        self.each("end_transaction", |h| h.end_transaction(&ctx));
    }
}

/// The message(s) of one send as its hooks see them, shared by the hook tasks of its attempts.
#[derive(Debug)]
pub(crate) struct Hooked {
    pub(crate) messages: Vec<Message>,
    pub(crate) wire_topic: String,
    pub(crate) mode: SendMode,
    pub(crate) batch: bool,
}

/// One attempt's `after_send`, to run on the callback pool (asynchronous sends).
pub(crate) struct AfterTask {
    runner: Arc<HookRunner>,
    hooked: Arc<Hooked>,
    queue: MessageQueue,
    addr: String,
    attempt: u32,
    latency: Duration,
}

impl AfterTask {
    /// Runs the hooks with the attempt's `result`.
    pub(crate) fn run(&self, result: Result<Option<&SendResult>, &Error>) {
        run_after(
            &self.runner,
            &self.hooked,
            &self.queue,
            &self.addr,
            self.attempt,
            self.latency,
            result,
        );
    }

    /// Runs the hooks with a copy of `result` on the callback pool; nothing waits for it.
    pub(crate) fn spawn(self, inner: &Inner, result: Result<&SendResult, &Error>) {
        let copy = match result {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(e.duplicate()),
        };
        inner.run_user(Box::new(move || {
            self.run(copy.as_ref().map(Some));
        }));
    }
}

fn run_after(
    runner: &HookRunner,
    hooked: &Hooked,
    queue: &MessageQueue,
    addr: &str,
    attempt: u32,
    latency: Duration,
    result: Result<Option<&SendResult>, &Error>,
) {
    runner.after(&AfterSendContext {
        env: &runner.env,
        messages: &hooked.messages,
        wire_topic: &hooked.wire_topic,
        queue,
        broker_addr: addr,
        attempt,
        latency,
        result,
        mode: hooked.mode,
        batch: hooked.batch,
    });
}

impl Inner {
    /// `before_send` for the message(s) of a send, on this thread; with no hook, nothing.
    /// The messages are validated first, so hooks see only messages the send accepts.
    #[inline]
    pub(crate) fn hook_before(
        &self,
        msgs: &mut [Message],
        mode: SendMode,
        batch: bool,
    ) -> crate::error::Result<()> {
        match &self.hooks {
            None => Ok(()),
            Some(runner) => {
                for msg in msgs.iter() {
                    check_message(msg, &self.config)?;
                }
                runner.before(msgs, mode, batch, || self.new_msg_id().to_string());
                Ok(())
            }
        }
    }

    /// Prepares a single message; with hooks, keeps it for them. `for_selector`: the caller's
    /// message must stay readable until a selector has run.
    pub(crate) fn prepare_msg(
        &self,
        msg: Message,
        for_selector: bool,
        mode: SendMode,
    ) -> crate::error::Result<Prepared> {
        let ids = || self.new_msg_id();
        match &self.hooks {
            None if for_selector => prepare::prepare_for_selector(msg, &self.config, ids),
            None => prepare::prepare_single(msg, &self.config, ids),
            Some(_) => prepare::prepare_single_hooked(msg, &self.config, ids, mode),
        }
    }

    /// [`Inner::prepare_msg`] into `out`, which must be vacant (the send that carries it:
    /// without hooks, the message is prepared right there, not moved), with the wall clock
    /// (epoch ms) the caller read: a new `UNIQ_KEY` is made for that time. `topic_checked`:
    /// the message's topic is known to pass the topic check (the same name passed it before).
    pub(crate) fn prepare_msg_into_at(
        &self,
        msg: Message,
        for_selector: bool,
        mode: SendMode,
        out: &mut Prepared,
        wall_ms: i64,
        topic_checked: bool,
    ) -> crate::error::Result<()> {
        let ids = || self.new_msg_id_at(wall_ms);
        match &self.hooks {
            None => {
                let checked = topic_checked;
                prepare::prepare_one_into(msg, &self.config, ids, for_selector, checked, out)
            }
            Some(_) => {
                *out = prepare::prepare_single_hooked(msg, &self.config, ids, mode)?;
                Ok(())
            }
        }
    }

    /// Prepares a batch; with hooks, keeps its messages for them.
    pub(crate) fn prepare_msgs(
        &self,
        msgs: Vec<Message>,
        mode: SendMode,
    ) -> crate::error::Result<Prepared> {
        let ids = || self.new_msg_id();
        match &self.hooks {
            None => prepare::prepare_batch(msgs, &self.config, ids),
            Some(_) => prepare::prepare_batch_hooked(msgs, &self.config, ids, mode),
        }
    }

    /// `after_send` of a synchronous attempt, on this thread.
    #[inline]
    pub(crate) fn hook_after(
        &self,
        prepared: &Prepared,
        queue: &MessageQueue,
        addr: &str,
        attempt: u32,
        latency: Duration,
        result: Result<Option<&SendResult>, &Error>,
    ) {
        if let (Some(runner), Some(hooked)) = (&self.hooks, &prepared.hooked) {
            run_after(runner, hooked, queue, addr, attempt, latency, result);
        }
    }

    /// `after_send` of an asynchronous attempt, to run on the callback pool.
    // Inlined: with no hook registered (the rule) this is one test, with no call and no
    // arguments to pass; the task is built out of line.
    #[inline(always)]
    pub(crate) fn after_task(
        &self,
        prepared: &Prepared,
        queue: &MessageQueue,
        addr: &str,
        attempt: u32,
        latency: Duration,
    ) -> Option<AfterTask> {
        let runner = self.hooks.as_ref()?;
        after_task_hooked(runner, prepared, queue, addr, attempt, latency)
    }
}

/// [`Inner::after_task`] with hooks registered.
#[inline(never)]
fn after_task_hooked(
    runner: &Arc<HookRunner>,
    prepared: &Prepared,
    queue: &MessageQueue,
    addr: &str,
    attempt: u32,
    latency: Duration,
) -> Option<AfterTask> {
    let hooked = prepared.hooked.as_ref()?;
    Some(AfterTask {
        runner: runner.clone(),
        hooked: hooked.clone(),
        queue: queue.clone(),
        addr: addr.to_string(),
        attempt,
        latency,
    })
}
