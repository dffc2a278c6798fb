//! Send hooks (issue 14): every send mode calls `before_send` once and `after_send` once per
//! attempt with the right queue, broker and attempt number; properties added before the send
//! reach the broker; hooks run in order, never on an I/O thread; a panicking hook changes
//! nothing but a counter; a slow or blocking `after_send` of an asynchronous send never holds
//! up its completion; transactions show the half message, its end and check-back ends.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use rocketmq_mio::hooks::{
    AfterSendContext, BeforeSendContext, EndTransactionContext, MessageType, SendHook, SendMode,
};
use rocketmq_mio::protocol::{RequestCode, ResponseCode};
use rocketmq_mio::routing::selector::MessageHashSelector;
use rocketmq_mio::testing::MockBroker;
use rocketmq_mio::{
    ListenerResult, LocalTransactionState, Message, MessageExt, Producer, SendStatus,
    TransactionListener, TransactionProducer,
};

use common::{wait_until, PROMPTLY};

/// What a hook saw, one entry per call.
#[derive(Debug, Clone)]
enum Seen {
    Before {
        thread: Option<String>,
        thread_id: ThreadId,
        mode: SendMode,
        batch: bool,
        topics: Vec<String>,
        ids: Vec<String>,
        kind: MessageType,
    },
    After {
        thread: Option<String>,
        thread_id: ThreadId,
        mode: SendMode,
        batch: bool,
        topic: String,
        wire_topic: String,
        ids: Vec<String>,
        offset_ids: Vec<String>,
        queue_topic: String,
        queue_id: i32,
        broker_name: String,
        addr: String,
        attempt: u32,
        ok: Option<bool>,
        oneway: bool,
        error_code: Option<i32>,
        kind: MessageType,
        group: String,
    },
    End {
        thread: Option<String>,
        msg_id: String,
        topic: String,
        tags: Option<String>,
        keys: Vec<String>,
        addr: Option<String>,
        state: LocalTransactionState,
        from_check: bool,
        stored: bool,
        sent: bool,
    },
}

impl Seen {
    fn thread(&self) -> Option<&str> {
        match self {
            Seen::Before { thread, .. } | Seen::After { thread, .. } | Seen::End { thread, .. } => {
                thread.as_deref()
            }
        }
    }
}

/// Records every call; adds a `hooked-by` property in `before_send`.
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    fn new(name: &'static str) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    fn afters(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s, Seen::After { .. }))
            .collect()
    }

    fn befores(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s, Seen::Before { .. }))
            .collect()
    }

    fn ends(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s, Seen::End { .. }))
            .collect()
    }
}

fn here() -> (Option<String>, ThreadId) {
    let t = std::thread::current();
    (t.name().map(str::to_string), t.id())
}

impl SendHook for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn before_send(&self, ctx: &mut BeforeSendContext<'_>) {
        let (thread, thread_id) = here();
        ctx.set_property("hooked-by", self.name);
        self.seen.lock().unwrap().push(Seen::Before {
            thread,
            thread_id,
            mode: ctx.mode(),
            batch: ctx.is_batch(),
            topics: ctx
                .messages()
                .iter()
                .map(|m| m.topic().to_string())
                .collect(),
            ids: ctx
                .messages()
                .iter()
                .map(|m| m.property("UNIQ_KEY").unwrap_or("").to_string())
                .collect(),
            kind: ctx.message_type(),
        });
    }

    fn after_send(&self, ctx: &AfterSendContext<'_>) {
        let (thread, thread_id) = here();
        self.seen.lock().unwrap().push(Seen::After {
            thread,
            thread_id,
            mode: ctx.mode(),
            batch: ctx.is_batch(),
            topic: ctx.topic().to_string(),
            wire_topic: ctx.wire_topic().to_string(),
            ids: ctx.msg_ids().map(str::to_string).collect(),
            offset_ids: ctx.offset_msg_ids().map(str::to_string).collect(),
            queue_topic: ctx.queue().topic().to_string(),
            queue_id: ctx.queue().queue_id(),
            broker_name: ctx.queue().broker_name().to_string(),
            addr: ctx.broker_addr().to_string(),
            attempt: ctx.attempt(),
            ok: match ctx.result() {
                Ok(Some(r)) => Some(r.status == SendStatus::SendOk),
                Ok(None) => None,
                Err(_) => Some(false),
            },
            oneway: matches!(ctx.result(), Ok(None)),
            error_code: ctx.result().err().and_then(|e| e.response_code()),
            kind: ctx.message_type(),
            group: ctx.group().to_string(),
        });
    }

    fn end_transaction(&self, ctx: &EndTransactionContext<'_>) {
        let (thread, _) = here();
        self.seen.lock().unwrap().push(Seen::End {
            thread,
            msg_id: ctx.msg_id().to_string(),
            topic: ctx.topic().to_string(),
            tags: ctx.tags().map(str::to_string),
            keys: ctx.keys().map(str::to_string).collect(),
            addr: ctx.broker_addr().map(str::to_string),
            state: ctx.state(),
            from_check: ctx.from_check(),
            stored: ctx.stored_message().is_some(),
            sent: ctx.result().is_ok(),
        });
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("watchdog: the operation did not finish in time")
}

fn producer_with(broker: &MockBroker, group: &str, hooks: &[Arc<Recorder>]) -> Producer {
    let mut b = Producer::builder(group)
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10));
    for h in hooks {
        b = b.send_hook(h.clone());
    }
    b.start().expect("producer starts")
}

fn assert_not_io(seen: &[Seen]) {
    for s in seen {
        let name = s.thread().unwrap_or("");
        assert!(
            !name.starts_with("rocketmq-io"),
            "a hook ran on {name}: {s:?}"
        );
    }
}

/// One send of each mode: one `before_send` with the mode, one `after_send` with attempt 1,
/// the queue and broker of the send, on the right thread.
#[test]
fn every_send_mode_calls_before_and_after_with_the_right_fields() {
    let broker = MockBroker::builder().topic("HookModes", 4).start().unwrap();
    let rec = Recorder::new("rec");
    let p = producer_with(&broker, "GID_HOOK_MODES", std::slice::from_ref(&rec));
    let me = std::thread::current().id();
    let queue = p.publish_queues("HookModes").unwrap()[2].clone();
    let msg = |i: usize| Message::new("HookModes", format!("m{i}")).with_tags("t");

    // (name, mode, batch, message count, expected queue id, runs after_send on this thread)
    type Case = (&'static str, SendMode, bool, usize, Option<i32>, bool);
    type Send = Box<dyn Fn(&Producer)>;
    let cases: Vec<(Case, Send)> = vec![
        (("send", SendMode::Sync, false, 1, None, true), {
            Box::new(move |p: &Producer| {
                p.send(msg(0)).unwrap();
            })
        }),
        (
            ("send_to_queue", SendMode::Sync, false, 1, Some(2), true),
            {
                let q = queue.clone();
                Box::new(move |p: &Producer| {
                    p.send_to_queue(msg(1), &q).unwrap();
                })
            },
        ),
        (
            ("send_with_selector", SendMode::Sync, false, 1, None, true),
            {
                Box::new(move |p: &Producer| {
                    p.send_with_selector(msg(2), &MessageHashSelector, "k")
                        .unwrap();
                })
            },
        ),
        (("send_batch", SendMode::Sync, true, 3, None, true), {
            Box::new(move |p: &Producer| {
                p.send_batch(vec![msg(3), msg(4), msg(5)]).unwrap();
            })
        }),
        (("send_oneway", SendMode::Oneway, false, 1, None, true), {
            Box::new(move |p: &Producer| {
                p.send_oneway(msg(6)).unwrap();
            })
        }),
        (
            ("send_batch_oneway", SendMode::Oneway, true, 2, None, true),
            {
                Box::new(move |p: &Producer| {
                    p.send_batch_oneway(vec![msg(7), msg(8)]).unwrap();
                })
            },
        ),
        (("send_async", SendMode::Async, false, 1, None, false), {
            Box::new(move |p: &Producer| {
                p.send_async(msg(9)).wait().unwrap();
            })
        }),
        (
            ("send_with_callback", SendMode::Async, false, 1, None, false),
            {
                Box::new(move |p: &Producer| {
                    let (tx, rx) = mpsc::channel();
                    p.send_with_callback(msg(10), move |r| {
                        let _ = tx.send(r.is_ok());
                    });
                    assert!(rx.recv_timeout(PROMPTLY).unwrap());
                })
            },
        ),
        (
            (
                "send_to_queue_async",
                SendMode::Async,
                false,
                1,
                Some(2),
                false,
            ),
            {
                let q = queue;
                Box::new(move |p: &Producer| {
                    p.send_to_queue_async(msg(11), &q).wait().unwrap();
                })
            },
        ),
        (
            (
                "send_with_selector_async",
                SendMode::Async,
                false,
                1,
                None,
                false,
            ),
            {
                Box::new(move |p: &Producer| {
                    p.send_with_selector_async(msg(12), Arc::new(MessageHashSelector), "k")
                        .wait()
                        .unwrap();
                })
            },
        ),
        (
            ("send_batch_async", SendMode::Async, true, 2, None, false),
            {
                Box::new(move |p: &Producer| {
                    p.send_batch_async(vec![msg(13), msg(14)]).wait().unwrap();
                })
            },
        ),
    ];
    for ((name, mode, batch, count, queue_id, on_caller), send) in cases {
        rec.clear();
        send(&p);
        assert!(
            wait_until(PROMPTLY, || rec.afters().len() == 1),
            "{name}: {:?}",
            rec.seen()
        );
        let seen = rec.seen();
        assert_eq!(seen.len(), 2, "{name}: one before, one after: {seen:?}");
        assert_not_io(&seen);
        let Seen::Before {
            thread_id,
            mode: m,
            batch: b,
            topics,
            ids: before_ids,
            kind,
            ..
        } = &seen[0]
        else {
            panic!("{name}: before first: {seen:?}")
        };
        assert_eq!(*thread_id, me, "{name}: before_send on the caller's thread");
        assert_eq!((*m, *b, topics.len()), (mode, batch, count), "{name}");
        assert_eq!(*kind, MessageType::Normal, "{name}");
        assert!(
            before_ids.iter().all(|id| id.len() == 32),
            "{name}: {before_ids:?}"
        );
        let Seen::After {
            thread,
            thread_id,
            mode: m,
            batch: b,
            topic,
            wire_topic,
            ids,
            offset_ids,
            queue_topic,
            queue_id: qid,
            broker_name,
            addr,
            attempt,
            ok,
            oneway,
            group,
            ..
        } = &seen[1]
        else {
            panic!("{name}: after second: {seen:?}")
        };
        assert_eq!((*m, *b), (mode, batch), "{name}");
        assert_eq!(*attempt, 1, "{name}");
        assert_eq!(addr, &broker.broker_addr(), "{name}");
        assert_eq!(broker_name, broker.broker_name(), "{name}");
        assert_eq!(
            (topic.as_str(), wire_topic.as_str()),
            ("HookModes", "HookModes")
        );
        assert_eq!(queue_topic, "HookModes", "{name}");
        assert_eq!(group, "GID_HOOK_MODES");
        assert_eq!(ids, before_ids, "{name}: the ids before_send saw go out");
        if let Some(q) = queue_id {
            assert_eq!(*qid, q, "{name}");
        }
        if mode == SendMode::Oneway {
            assert!(*oneway && ok.is_none(), "{name}: Ok(None) for oneway");
            assert!(offset_ids.is_empty());
        } else {
            assert_eq!(*ok, Some(true), "{name}");
            assert_eq!(offset_ids.len(), count, "{name}: {offset_ids:?}");
        }
        if on_caller {
            assert_eq!(*thread_id, me, "{name}: after_send on the caller's thread");
        } else {
            let t = thread.as_deref().unwrap_or("");
            assert!(
                t.starts_with("rocketmq-callback"),
                "{name}: after_send on {t}"
            );
        }
    }
    // Every message reached the broker with the hook's property.
    assert!(wait_until(PROMPTLY, || broker.message_count("HookModes") == 15));
    for m in broker.messages("HookModes") {
        assert_eq!(m.property("hooked-by"), Some("rec"), "{m:?}");
    }
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// A retried send shows one `after_send` per attempt, numbered 1 then 2, the first with the
/// broker's error; sync on the caller's thread, async on the callback pool.
#[test]
fn attempt_numbers_count_up_across_a_retry() {
    let broker = MockBroker::builder().topic("HookRetry", 4).start().unwrap();
    let rec = Recorder::new("rec");
    let p = producer_with(&broker, "GID_HOOK_RETRY", std::slice::from_ref(&rec));
    p.publish_queues("HookRetry").unwrap();
    for form in ["sync", "async", "callback"] {
        rec.clear();
        broker.fail_next(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
        let p2 = p.clone();
        let r = within(PROMPTLY, move || {
            let msg = Message::new("HookRetry", form);
            match form {
                "sync" => p2.send(msg),
                "async" => p2.send_async(msg).wait(),
                _ => {
                    let (tx, rx) = mpsc::channel();
                    p2.send_with_callback(msg, move |r| {
                        let _ = tx.send(r);
                    });
                    rx.recv().unwrap()
                }
            }
        });
        assert_eq!(r.expect("the retry succeeds").status, SendStatus::SendOk);
        assert!(
            wait_until(PROMPTLY, || rec.afters().len() == 2),
            "{form}: {:?}",
            rec.seen()
        );
        let afters = rec.afters();
        let attempts: Vec<(u32, Option<bool>, Option<i32>, String)> = afters
            .iter()
            .map(|s| match s {
                Seen::After {
                    attempt,
                    ok,
                    error_code,
                    addr,
                    ..
                } => (*attempt, *ok, *error_code, addr.clone()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            attempts,
            vec![
                (
                    1,
                    Some(false),
                    Some(ResponseCode::SYSTEM_BUSY),
                    broker.broker_addr()
                ),
                (2, Some(true), None, broker.broker_addr()),
            ],
            "{form}"
        );
        assert_eq!(rec.befores().len(), 1, "{form}: before_send once per send");
        assert_not_io(&rec.seen());
    }
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// Hooks run in the order they were registered, in every method; the config's `Debug`
/// lists them by name; the last hook's property wins.
#[test]
fn hooks_run_in_registration_order() {
    let broker = MockBroker::builder().topic("HookOrder", 4).start().unwrap();
    let first: Arc<dyn SendHook> = Recorder::new("first");
    let second: Arc<dyn SendHook> = Recorder::new("second");
    let order = Arc::new(Mutex::new(Vec::new()));
    struct Logging(&'static str, Arc<Mutex<Vec<String>>>);
    impl SendHook for Logging {
        fn name(&self) -> &str {
            self.0
        }
        fn before_send(&self, _: &mut BeforeSendContext<'_>) {
            self.1.lock().unwrap().push(format!("before {}", self.0));
        }
        fn after_send(&self, _: &AfterSendContext<'_>) {
            self.1.lock().unwrap().push(format!("after {}", self.0));
        }
    }
    let p = Producer::builder("GID_HOOK_ORDER")
        .name_server(broker.namesrv_addr())
        .send_hook(Arc::new(Logging("a", order.clone())))
        .send_hook(first)
        .send_hook(Arc::new(Logging("b", order.clone())))
        .send_hook(second)
        .start()
        .unwrap();
    let debug = format!("{:?}", p.config());
    assert!(
        debug.contains(r#"send_hooks: ["a", "first", "b", "second"]"#),
        "{debug}"
    );
    p.send(Message::new("HookOrder", "x")).unwrap();
    p.send_async(Message::new("HookOrder", "y")).wait().unwrap();
    assert!(wait_until(PROMPTLY, || order.lock().unwrap().len() == 8));
    assert_eq!(
        *order.lock().unwrap(),
        ["before a", "before b", "after a", "after b"].repeat(2)
    );
    for m in broker.messages("HookOrder") {
        assert_eq!(m.property("hooked-by"), Some("second"));
    }
    assert_eq!(p.stats().hooks.registered, 4);
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// Panics in any hook method are caught and counted; the other hooks still run and the
/// send's result is the same (sync, async, callback, transaction end).
#[test]
fn a_panicking_hook_changes_nothing_and_is_counted() {
    struct Panicking;
    impl SendHook for Panicking {
        fn before_send(&self, _: &mut BeforeSendContext<'_>) {
            panic!("before");
        }
        fn after_send(&self, _: &AfterSendContext<'_>) {
            panic!("after");
        }
        fn end_transaction(&self, _: &EndTransactionContext<'_>) {
            panic!("end");
        }
    }
    let broker = MockBroker::builder().topic("HookPanic", 4).start().unwrap();
    let rec = Recorder::new("rec");
    let tp = TransactionProducer::builder("GID_HOOK_PANIC")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .send_hook(Arc::new(Panicking))
        .send_hook(rec.clone())
        .listener(Committing)
        .start()
        .unwrap();
    let p = tp.producer().clone();
    let r = p.send(Message::new("HookPanic", "sync")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    let r = p
        .send_async(Message::new("HookPanic", "async"))
        .wait()
        .unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    let (tx, rx) = mpsc::channel();
    p.send_with_callback(Message::new("HookPanic", "cb"), move |r| {
        let _ = tx.send(r.map(|r| r.status));
    });
    assert_eq!(
        rx.recv_timeout(PROMPTLY).unwrap().unwrap(),
        SendStatus::SendOk
    );
    // The invalid message is still refused the same way, before any hook.
    let e = p.send(Message::new("HookPanic", "")).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let t = tp
        .send_message_in_transaction(Message::new("HookPanic", "tx"), &())
        .unwrap();
    assert_eq!(t.local_state, LocalTransactionState::CommitMessage);
    // 4 sends x (before + after) + 1 END_TRANSACTION = 9 panics; the recorder saw it all.
    assert!(
        wait_until(PROMPTLY, || p.stats().hooks.panics == 9),
        "{:?}",
        p.stats().hooks
    );
    assert_eq!(rec.befores().len(), 4);
    assert!(wait_until(PROMPTLY, || rec.afters().len() == 4));
    assert_eq!(rec.ends().len(), 1);
    assert!(wait_until(PROMPTLY, || broker.message_count("HookPanic") == 4));
    assert_eq!(p.stats().to_json()["hooks"]["panics"], 9);
    tp.shutdown(Duration::from_secs(5)).unwrap();
}

struct Committing;

impl TransactionListener for Committing {
    fn execute_local_transaction(&self, _: &Message, _: &str, _: &dyn Any) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
    fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
        Ok(LocalTransactionState::CommitMessage)
    }
}

/// An `after_send` that blocks (on a gate, then on a sync send of the same producer) does not
/// hold up an asynchronous send's completion: the handle completes while the hook is blocked.
#[test]
fn a_blocking_async_after_send_does_not_hold_up_completion() {
    struct Blocking {
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        entered: AtomicBool,
        producer: Mutex<Option<Producer>>,
        inner_sent: AtomicUsize,
    }
    impl SendHook for Blocking {
        fn after_send(&self, ctx: &AfterSendContext<'_>) {
            if ctx.topic() != "HookBlock" {
                return;
            }
            if ctx.mode() == SendMode::Async {
                self.entered.store(true, Ordering::SeqCst);
                let gate = self.gate.lock().unwrap().take();
                if let Some(gate) = gate {
                    let _ = gate.recv_timeout(PROMPTLY);
                }
            }
            let p = self.producer.lock().unwrap().clone();
            if let Some(p) = p {
                if p.send(Message::new("HookBlockInner", "from the hook"))
                    .is_ok()
                {
                    self.inner_sent.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    let broker = MockBroker::start().unwrap();
    let (open, gate) = mpsc::channel();
    let hook = Arc::new(Blocking {
        gate: Mutex::new(Some(gate)),
        entered: AtomicBool::new(false),
        producer: Mutex::new(None),
        inner_sent: AtomicUsize::new(0),
    });
    let p = Producer::builder("GID_HOOK_BLOCK")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .callback_threads(1)
        .send_hook(hook.clone())
        .start()
        .unwrap();
    *hook.producer.lock().unwrap() = Some(p.clone());
    p.send(Message::new("HookBlock", "warm")).unwrap();
    assert_eq!(
        hook.inner_sent.load(Ordering::SeqCst),
        1,
        "sync: the hook ran inline"
    );
    // Asynchronous: the hook blocks on the gate; the handle completes anyway.
    let p2 = p.clone();
    let r = within(PROMPTLY, move || {
        p2.send_async(Message::new("HookBlock", "a")).wait()
    });
    assert_eq!(r.unwrap().status, SendStatus::SendOk);
    assert!(wait_until(PROMPTLY, || hook.entered.load(Ordering::SeqCst)));
    // More asynchronous sends complete while the only callback thread is blocked.
    let p2 = p.clone();
    let r = within(PROMPTLY, move || {
        (0..3)
            .map(|_| p2.send_async(Message::new("HookBlock", "b")).wait())
            .collect::<Vec<_>>()
    });
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    assert_eq!(
        hook.inner_sent.load(Ordering::SeqCst),
        1,
        "the hook is still blocked"
    );
    drop(open);
    // Then the hook's own sync sends (from the callback thread) complete too.
    assert!(wait_until(PROMPTLY, || hook
        .inner_sent
        .load(Ordering::SeqCst)
        == 5));
    // A callback runs after its send's after_send, which blocks on a sync send: both end.
    let (tx, rx) = mpsc::channel();
    p.send_with_callback(Message::new("HookBlock", "cb"), move |r| {
        let _ = tx.send(r.is_ok());
    });
    assert!(rx.recv_timeout(PROMPTLY).expect("watchdog: callback"));
    assert!(wait_until(PROMPTLY, || hook
        .inner_sent
        .load(Ordering::SeqCst)
        == 6));
    hook.producer.lock().unwrap().take();
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// Transactions: the half message (type TransactionHalf), its END_TRANSACTION after the local
/// transaction (sync, async, begin/commit, and a rollback of a half stored with a flush
/// problem, which the async path sends from an I/O thread without hooks), and the check-back's
/// END_TRANSACTION with the stored message.
#[test]
fn transaction_half_end_and_check_back_end_are_seen() {
    struct Deciding;
    impl TransactionListener for Deciding {
        fn execute_local_transaction(&self, msg: &Message, _: &str, _: &dyn Any) -> ListenerResult {
            match std::str::from_utf8(msg.body()) {
                Ok("later") => Ok(LocalTransactionState::Unknown),
                _ => Ok(LocalTransactionState::CommitMessage),
            }
        }
        fn check_local_transaction(&self, _: &MessageExt, _: &str) -> ListenerResult {
            Ok(LocalTransactionState::RollbackMessage)
        }
    }
    let broker = MockBroker::builder().topic("HookTx", 4).start().unwrap();
    let rec = Recorder::new("rec");
    let tp = TransactionProducer::builder("GID_HOOK_TX")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .send_hook(rec.clone())
        .listener(Deciding)
        .start()
        .unwrap();
    let msg = |body: &str| {
        Message::new("HookTx", body.to_string())
            .with_tags("tx")
            .with_keys(["k1", "k2"])
    };
    let me = std::thread::current().id();

    // Sync: half, then commit on this thread.
    let r = tp.send_message_in_transaction(msg("now"), &()).unwrap();
    let ends = rec.ends();
    assert_eq!(ends.len(), 1, "{:?}", rec.seen());
    let Seen::End {
        msg_id,
        topic,
        tags,
        keys,
        addr,
        state,
        from_check,
        stored,
        sent,
        thread,
    } = &ends[0]
    else {
        unreachable!()
    };
    assert_eq!(msg_id, &r.transaction_id);
    assert_eq!(topic, "HookTx");
    assert_eq!(tags.as_deref(), Some("tx"));
    assert_eq!(keys, &["k1", "k2"]);
    assert_eq!(addr.as_deref(), Some(broker.broker_addr().as_str()));
    assert_eq!(*state, LocalTransactionState::CommitMessage);
    assert!(!from_check && !stored && *sent);
    assert_eq!(thread.as_deref(), std::thread::current().name());
    let Seen::Before {
        kind, thread_id, ..
    } = &rec.befores()[0]
    else {
        unreachable!()
    };
    assert_eq!((*kind, *thread_id), (MessageType::TransactionHalf, me));
    let Seen::After { kind, ok, .. } = &rec.afters()[0] else {
        unreachable!()
    };
    assert_eq!((*kind, *ok), (MessageType::TransactionHalf, Some(true)));

    // Async: the end is seen on a transaction thread.
    rec.clear();
    let r = within(PROMPTLY, {
        let tp = tp.clone();
        move || {
            tp.send_message_in_transaction_async(msg("async"), ())
                .wait()
        }
    })
    .unwrap();
    assert!(wait_until(PROMPTLY, || rec.ends().len() == 1
        && rec.afters().len() == 1));
    let Seen::End { msg_id, state, .. } = &rec.ends()[0] else {
        unreachable!()
    };
    assert_eq!(
        (msg_id, *state),
        (&r.transaction_id, LocalTransactionState::CommitMessage)
    );

    // begin + rollback on this thread.
    rec.clear();
    let t = tp.begin(msg("open")).unwrap();
    let id = t.transaction_id().to_string();
    t.rollback().unwrap();
    let Seen::End {
        msg_id,
        state,
        from_check,
        ..
    } = &rec.ends()[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (msg_id, *state, *from_check),
        (&id, LocalTransactionState::RollbackMessage, false)
    );

    // A half stored with FLUSH_DISK_TIMEOUT, async: rolled back at once, seen off the I/O
    // threads.
    rec.clear();
    broker.store_with_status_next(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        1,
    );
    let r = within(PROMPTLY, {
        let tp = tp.clone();
        move || {
            tp.send_message_in_transaction_async(msg("flush"), ())
                .wait()
        }
    })
    .unwrap();
    assert_eq!(r.local_state, LocalTransactionState::RollbackMessage);
    assert!(
        wait_until(PROMPTLY, || rec.ends().len() == 1),
        "{:?}",
        rec.seen()
    );
    assert_not_io(&rec.seen());

    // Unknown, then the broker checks back: the check's END_TRANSACTION is seen with the
    // stored message.
    rec.clear();
    let r = tp.send_message_in_transaction(msg("later"), &()).unwrap();
    assert_eq!(r.local_state, LocalTransactionState::Unknown);
    assert!(wait_until(PROMPTLY, || broker
        .check_transaction(&r.transaction_id)
        > 0));
    assert!(
        wait_until(PROMPTLY, || rec.ends().len() == 2),
        "{:?}",
        rec.seen()
    );
    let Seen::End {
        msg_id,
        topic,
        tags,
        keys,
        addr,
        state,
        from_check,
        stored,
        thread,
        ..
    } = &rec.ends()[1]
    else {
        unreachable!()
    };
    assert_eq!(msg_id, &r.transaction_id);
    assert_eq!((topic.as_str(), tags.as_deref()), ("HookTx", Some("tx")));
    assert_eq!(keys, &["k1", "k2"]);
    assert!(addr.is_some());
    assert_eq!(*state, LocalTransactionState::RollbackMessage);
    assert!(*from_check && *stored);
    assert!(!thread.as_deref().unwrap_or("").starts_with("rocketmq-io"));
    assert_not_io(&rec.seen());
    tp.shutdown(Duration::from_secs(5)).unwrap();
}

/// Auto-batching: each message gets its own `before_send` (its property reaches the broker);
/// the batch attempt's `after_send` shows every message of the batch, from several sends.
#[test]
fn auto_batch_attempts_show_every_message() {
    let broker = MockBroker::builder().topic("HookAuto", 1).start().unwrap();
    let rec = Recorder::new("rec");
    let p = Producer::builder("GID_HOOK_AUTO")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .auto_batch(true)
        .batch_max_delay(Duration::from_secs(1))
        .send_hook(rec.clone())
        .start()
        .unwrap();
    p.publish_queues("HookAuto").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| p.send_async(Message::new("HookAuto", format!("m{i}"))))
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| h.wait().unwrap().msg_id.to_string())
        .collect();
    assert!(wait_until(PROMPTLY, || {
        let seen: usize = rec
            .afters()
            .iter()
            .map(|s| match s {
                Seen::After { ids, .. } => ids.len(),
                _ => 0,
            })
            .sum();
        seen == 4
    }));
    assert_eq!(rec.befores().len(), 4);
    let mut after_ids = Vec::new();
    for s in rec.afters() {
        let Seen::After {
            ids,
            mode,
            batch,
            attempt,
            ok,
            offset_ids,
            ..
        } = s
        else {
            unreachable!()
        };
        assert_eq!((mode, attempt, ok), (SendMode::Async, 1, Some(true)));
        assert_eq!(batch, ids.len() > 1);
        assert_eq!(offset_ids.len(), ids.len());
        after_ids.extend(ids);
    }
    assert!(
        rec.afters().len() < 4,
        "at least two messages went in one batch"
    );
    after_ids.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(after_ids, ids);
    for m in broker.messages("HookAuto") {
        assert_eq!(m.property("hooked-by"), Some("rec"));
    }
    assert_not_io(&rec.seen());
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// A send stored "not OK" and retried on another broker (`retry_another_broker_when_not_store_ok`)
/// shows both attempts: 1 on one broker with the flush status, 2 on the other.
#[test]
fn a_not_store_ok_retry_shows_both_attempts_and_brokers() {
    use rocketmq_mio::testing::MockCluster;
    let cluster = MockCluster::start(2).unwrap();
    cluster.create_topic("HookNotOk", 2);
    let rec = Recorder::new("rec");
    let p = Producer::builder("GID_HOOK_NOT_OK")
        .name_server(cluster.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .retry_another_broker_when_not_store_ok(true)
        .send_hook(rec.clone())
        .start()
        .unwrap();
    for b in cluster.brokers() {
        b.store_with_status_next(
            RequestCode::SEND_MESSAGE_V2,
            ResponseCode::FLUSH_DISK_TIMEOUT,
            1,
        );
    }
    let r = p.send(Message::new("HookNotOk", "x")).unwrap();
    assert_eq!(r.status, SendStatus::FlushDiskTimeout);
    let afters: Vec<(u32, String, Option<bool>)> = rec
        .afters()
        .into_iter()
        .map(|s| match s {
            Seen::After {
                attempt, addr, ok, ..
            } => (attempt, addr, ok),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(afters.len(), 2, "{afters:?}");
    assert_eq!((afters[0].0, afters[1].0), (1, 2));
    assert_eq!((afters[0].2, afters[1].2), (Some(false), Some(false)));
    assert_ne!(
        afters[0].1, afters[1].1,
        "the retry went to the other broker"
    );
    let addrs: Vec<String> = cluster.brokers().iter().map(|b| b.broker_addr()).collect();
    assert!(
        addrs.contains(&afters[0].1) && addrs.contains(&afters[1].1),
        "{addrs:?}"
    );
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// Request-reply goes through the hooks too: each request (sync, async handle, callback) and
/// each reply shows one `before_send` (the request's properties set already, the hook's
/// property reaching the broker) and one `after_send`, never on an I/O thread.
#[test]
fn requests_and_replies_call_the_hooks() {
    let broker = Arc::new(
        MockBroker::builder()
            .topic("HookRequest", 2)
            .start()
            .unwrap(),
    );
    let rec = Recorder::new("rec");
    let p = producer_with(&broker, "GID_HOOK_REQUEST", std::slice::from_ref(&rec));
    let responder = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut replied = 0;
            for i in 0..3 {
                let requests = broker.wait_messages("HookRequest", i + 1, PROMPTLY);
                let Some(request) = requests.get(i) else {
                    break;
                };
                assert_eq!(request.property("hooked-by"), Some("rec"));
                if p.reply(request, b"pong".to_vec()).is_ok() {
                    replied += 1;
                }
            }
            replied
        })
    };
    let timeout = Duration::from_secs(15);
    let p2 = p.clone();
    let replies = within(PROMPTLY * 2, move || {
        let sync = p2.request(Message::new("HookRequest", "sync"), timeout);
        let handle = p2
            .request_async(Message::new("HookRequest", "async"), timeout)
            .wait();
        let (tx, rx) = mpsc::channel();
        p2.request_with_callback(Message::new("HookRequest", "cb"), timeout, move |r| {
            let _ = tx.send(r);
        });
        let cb = rx.recv_timeout(PROMPTLY).expect("callback");
        vec![sync, handle, cb]
    });
    for r in &replies {
        assert_eq!(r.as_ref().expect("a reply").body, b"pong");
    }
    assert_eq!(responder.join().unwrap(), 3);
    // 3 requests + 3 replies.
    assert!(
        wait_until(PROMPTLY, || rec.afters().len() == 6),
        "{:?}",
        rec.seen()
    );
    let befores = rec.befores();
    assert_eq!(befores.len(), 6, "{befores:?}");
    let request_modes: Vec<SendMode> = befores
        .iter()
        .filter_map(|s| match s {
            Seen::Before { topics, mode, .. } if topics[0] == "HookRequest" => Some(*mode),
            _ => None,
        })
        .collect();
    assert_eq!(
        request_modes,
        [SendMode::Sync, SendMode::Async, SendMode::Async]
    );
    let reply_afters = rec
        .afters()
        .into_iter()
        .filter(|s| matches!(s, Seen::After { topic, ok: Some(true), .. } if topic.ends_with("_REPLY_TOPIC")))
        .count();
    assert_eq!(reply_afters, 3, "{:?}", rec.afters());
    assert_not_io(&rec.seen());
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// With hooks the body is sent from the message the hooks keep (not copied): it arrives intact
/// in both header layouts, compressed or not, single or selector-routed, sync and async.
#[test]
fn bodies_sent_from_the_hooked_message_arrive_intact_in_both_layouts() {
    use rocketmq_mio::protocol::frame::SerializeType;
    use rocketmq_mio::protocol::message_codec::sys_flag;
    let broker = MockBroker::builder().topic("HookBody", 2).start().unwrap();
    for layout in [SerializeType::Json, SerializeType::RocketMq] {
        let rec = Recorder::new("rec");
        let p = Producer::builder("GID_HOOK_BODY")
            .name_server(broker.namesrv_addr())
            .send_timeout(Duration::from_secs(10))
            .serialize_type(layout)
            .send_hook(rec.clone())
            .start()
            .unwrap();
        let small = b"small body".to_vec();
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
        for body in [&small, &big] {
            let before = broker.message_count("HookBody");
            p.send(Message::new("HookBody", body.clone())).unwrap();
            p.send_async(Message::new("HookBody", body.clone()))
                .wait()
                .unwrap();
            p.send_with_selector_async(
                Message::new("HookBody", body.clone()),
                Arc::new(MessageHashSelector),
                "k",
            )
            .wait()
            .unwrap();
            let stored = broker.wait_messages("HookBody", before + 3, PROMPTLY);
            for m in &stored[before..] {
                // The mock stores what went on the wire: inflate a compressed body.
                let got = if m.sys_flag & sys_flag::COMPRESSED != 0 {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::ZlibDecoder::new(&m.body[..]),
                        &mut out,
                    )
                    .unwrap();
                    out
                } else {
                    m.body.clone()
                };
                assert!(
                    &got == body,
                    "{layout:?}: body of {} bytes differs",
                    got.len()
                );
                assert_eq!(m.property("hooked-by"), Some("rec"));
            }
        }
        assert!(wait_until(PROMPTLY, || rec.afters().len() == 6));
        p.shutdown(Duration::from_secs(5)).unwrap();
    }
}

/// A hook that makes a synchronous send of its own (to another topic) from `before_send`
/// and from `after_send` of a synchronous send: the inner sends run on the same thread while
/// the outer send holds its thread's memory, so they must go on with a fresh one, never wait
/// for it.
struct Nested {
    producer: Mutex<Option<Producer>>,
    inner_sends: AtomicUsize,
}

impl Nested {
    fn send_inner(&self, topic: &str) {
        if topic == "NestedInner" {
            return;
        }
        let p = self.producer.lock().unwrap().clone();
        if let Some(p) = p {
            p.send(Message::new("NestedInner", "inner")).unwrap();
            self.inner_sends.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl SendHook for Nested {
    fn name(&self) -> &str {
        "nested"
    }

    fn before_send(&self, ctx: &mut BeforeSendContext<'_>) {
        let topic = ctx.message().topic().to_string();
        self.send_inner(&topic);
    }

    fn after_send(&self, ctx: &AfterSendContext<'_>) {
        let topic = ctx.message().topic().to_string();
        self.send_inner(&topic);
    }
}

#[test]
fn a_sync_send_from_a_hook_of_a_sync_send_does_not_wait_for_it() {
    let broker = MockBroker::start().unwrap();
    let hook = Arc::new(Nested {
        producer: Mutex::new(None),
        inner_sends: AtomicUsize::new(0),
    });
    let p = Producer::builder("GID_NESTED")
        .name_server(broker.namesrv_addr())
        .send_timeout(Duration::from_secs(10))
        .send_hook(hook.clone())
        .start()
        .unwrap();
    *hook.producer.lock().unwrap() = Some(p.clone());
    let sender = p.clone();
    within(Duration::from_secs(60), move || {
        for i in 0..3 {
            let r = sender.send(Message::new("NestedOuter", format!("m{i}")));
            assert_eq!(r.unwrap().status, SendStatus::SendOk);
        }
    });
    assert_eq!(hook.inner_sends.load(Ordering::SeqCst), 6);
    hook.producer.lock().unwrap().take();
    p.shutdown(Duration::from_secs(5)).unwrap();
}
