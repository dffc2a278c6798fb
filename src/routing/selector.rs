//! Queue selectors: which queue of a topic a message goes to, chosen by the caller's code.
//!
//! A [`QueueSelector`] is what `send_with_selector` takes. Three come with the crate:
//! [`RoundRobinSelector`], [`RandomSelector`] and [`MessageHashSelector`] (Java's
//! `SelectMessageQueueByHash`, so Java and Rust producers put the same key on the same queue).
//! Any closure `Fn(&[MessageQueue], &Message, &str) -> usize + Send + Sync` is a selector too.
//!
//! ```
//! use rocketmq_mio::routing::selector::{MessageHashSelector, QueueSelector};
//! use rocketmq_mio::{Message, MessageQueue};
//!
//! let queues: Vec<MessageQueue> = (0..4).map(|i| MessageQueue::new("orders", "broker-a", i)).collect();
//! let msg = Message::new("orders", "paid");
//! // Java: "order-42".hashCode() = 1234255197; 1234255197 % 4 = 1.
//! assert_eq!(MessageHashSelector.select(&queues, &msg, "order-42"), 1);
//!
//! // A closure: always the last queue.
//! let last = |qs: &[MessageQueue], _: &Message, _: &str| qs.len() - 1;
//! assert_eq!(last.select(&queues, &msg, ""), 3);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::message::{Message, MessageQueue};

/// Chooses the queue for a message among a topic's writable queues.
///
/// `select` returns an index into `queues`; the caller takes it modulo `queues.len()`, so any
/// value is safe. `queues` is never empty when the producer calls it.
///
/// `select` runs on the thread that sends (or on the callback pool for asynchronous sends). It
/// **must not block** and should be cheap: it is called once per send.
pub trait QueueSelector: Send + Sync {
    /// The index of the queue for `msg`; `arg` is the argument given to the send call
    /// (for example an order id).
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &str) -> usize;
}

impl<F> QueueSelector for F
where
    F: Fn(&[MessageQueue], &Message, &str) -> usize + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &str) -> usize {
        self(queues, msg, arg)
    }
}

/// Takes the queues in turn, starting at a random queue.
pub struct RoundRobinSelector {
    next: AtomicUsize,
}

impl RoundRobinSelector {
    /// A selector starting at a random position.
    pub fn new() -> Self {
        RoundRobinSelector::starting_at(rand::thread_rng().gen())
    }

    /// A selector whose first pick is `start` (modulo the queue count).
    pub fn starting_at(start: usize) -> Self {
        RoundRobinSelector {
            next: AtomicUsize::new(start),
        }
    }
}

impl Default for RoundRobinSelector {
    fn default() -> Self {
        RoundRobinSelector::new()
    }
}

impl fmt::Debug for RoundRobinSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobinSelector")
            .field("next", &self.next.load(Ordering::Relaxed))
            .finish()
    }
}

impl QueueSelector for RoundRobinSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, _arg: &str) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        n % queues.len().max(1)
    }
}

/// Picks a queue uniformly at random (Java `SelectMessageQueueByRandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomSelector;

impl QueueSelector for RandomSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, _arg: &str) -> usize {
        if queues.is_empty() {
            return 0;
        }
        rand::thread_rng().gen_range(0..queues.len())
    }
}

/// Picks the queue from the hash of `arg`, exactly as Java's `SelectMessageQueueByHash`:
/// `abs(arg.hashCode() % n)`, with Java `String.hashCode` over UTF-16 code units.
///
/// The same `arg` always maps to the same queue while the queue list is the same, and a Java
/// producer with the same route picks the same queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageHashSelector;

impl MessageHashSelector {
    /// The index Java's `SelectMessageQueueByHash` picks among `n` queues for `arg`
    /// (`0` when `n` is 0).
    pub fn index_for(arg: &str, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Java: `int value = arg.hashCode() % mqs.size(); if (value < 0) value = Math.abs(value);`
        // In i64 the remainder has the same sign and magnitude as Java's int remainder, and its
        // absolute value cannot overflow.
        let value = i64::from(java_hash(arg)) % (n as i64);
        value.unsigned_abs() as usize
    }
}

impl QueueSelector for MessageHashSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, arg: &str) -> usize {
        MessageHashSelector::index_for(arg, queues.len())
    }
}

use crate::protocol::message_codec::java_string_hash_code as java_hash;

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|i| MessageQueue::new("t", "b", i)).collect()
    }

    #[test]
    fn java_hash_matches_java() {
        // Reference values from Java's definition, h = 31*h + c over UTF-16 code units, in i32:
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        // "abc": (97*31 + 98)*31 + 99 = 96354
        assert_eq!(java_hash("abc"), 96354);
        // "hello": the well-known 99162322
        assert_eq!(java_hash("hello"), 99_162_322);
        // "Aa" and "BB" collide in Java: 65*31+97 = 66*31+66 = 2112
        assert_eq!(java_hash("Aa"), 2112);
        assert_eq!(java_hash("BB"), 2112);
        // "order-42": Java prints 1234255197.
        assert_eq!(java_hash("order-42"), 1_234_255_197);
        // A negative one: "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        // Non-ASCII in the BMP: "é" is U+00E9 = 233; "ü" U+00FC = 252 -> "éü" = 233*31+252 = 7475
        assert_eq!(java_hash("éü"), 7475);
        // Outside the BMP: U+1D11E is the surrogate pair D834 DD1E: 55348*31 + 56606 = 1772394
        assert_eq!(java_hash("𝄞"), 1_772_394);
    }

    #[test]
    fn hash_selector_is_java_abs_mod() {
        let qs = queues(4);
        let msg = Message::new("t", "b");
        // 1234255197 % 4 = 1
        assert_eq!(MessageHashSelector.select(&qs, &msg, "order-42"), 1);
        // i32::MIN % 4 = 0 in Java
        assert_eq!(
            MessageHashSelector.select(&qs, &msg, "polygenelubricants"),
            0
        );
        // i32::MIN % 3 = -2 in Java -> abs -> 2
        assert_eq!(MessageHashSelector::index_for("polygenelubricants", 3), 2);
        // "customer-77" hashes to -1772111057 in Java: % 7 = -3 -> abs -> 3.
        assert_eq!(java_hash("customer-77"), -1_772_111_057);
        assert_eq!(MessageHashSelector::index_for("customer-77", 7), 3);
        assert_eq!(MessageHashSelector::index_for("x", 0), 0);
        for k in ["a", "b", "order-1", "order-2", "ключ"] {
            let first = MessageHashSelector.select(&qs, &msg, k);
            for _ in 0..10 {
                assert_eq!(MessageHashSelector.select(&qs, &msg, k), first);
            }
            assert!(first < 4);
        }
    }

    #[test]
    fn round_robin_cycles() {
        let qs = queues(3);
        let msg = Message::new("t", "b");
        let s = RoundRobinSelector::starting_at(2);
        let picks: Vec<usize> = (0..6).map(|_| s.select(&qs, &msg, "")).collect();
        assert_eq!(picks, vec![2, 0, 1, 2, 0, 1]);
        let s = RoundRobinSelector::starting_at(usize::MAX);
        assert_eq!(s.select(&qs, &msg, ""), usize::MAX % 3);
        assert_eq!(s.select(&qs, &msg, ""), 0);
        assert!(RoundRobinSelector::new().select(&qs, &msg, "") < 3);
    }

    #[test]
    fn random_in_range_and_covers() {
        let qs = queues(4);
        let msg = Message::new("t", "b");
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let i = RandomSelector.select(&qs, &msg, "");
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(RandomSelector.select(&[], &msg, ""), 0);
    }

    #[test]
    fn closures_and_trait_objects() {
        let qs = queues(5);
        let msg = Message::new("t", "b").with_keys(["k"]);
        let by_arg = |qs: &[MessageQueue], _: &Message, arg: &str| arg.len() % qs.len();
        let selectors: Vec<Box<dyn QueueSelector>> = vec![
            Box::new(by_arg),
            Box::new(MessageHashSelector),
            Box::new(RoundRobinSelector::starting_at(0)),
        ];
        assert_eq!(selectors[0].select(&qs, &msg, "abc"), 3);
        assert_eq!(selectors[1].select(&qs, &msg, "abc"), 96354 % 5);
        assert_eq!(selectors[2].select(&qs, &msg, "abc"), 0);
    }
}
