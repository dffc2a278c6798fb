//! [`PooledFnOnce`]: a `FnOnce(A) + Send + 'static` of any type, held in a box that is reused
//! for the next closure of the same type (a user's send callback, carried in its recycled
//! per-send state, so a steady-state callback send allocates nothing), in safe code.
//!
//! A callback's type is the caller's, so holding it in a non-generic per-send state takes
//! type erasure, and `Box<dyn FnOnce>` erases it at the price of an allocation per send. Here
//! the closure goes into a `Box<Slot<F>>` (`Slot<F>` is an `Option<F>`), held as a
//! `Box<dyn` [`CallSlot`]`>`; calling takes the closure out of the slot, and the empty box
//! goes back to a [`SlotPool`] (one per producer), upcast to `Box<dyn Any + Send>` and keyed
//! by the [`TypeId`] of the slot inside it. The next send of a closure of that type takes it
//! back out (`Box<dyn Any>::downcast`) and fills it: one short lock and a hash lookup each
//! way instead of an allocation and a free.
//!
//! - Zero-sized closures are boxed as `Box<dyn FnOnce>` (a box of a zero-sized value does
//!   not allocate) and never touch the pool.
//! - The pool is bounded: at most [`POOLED_TYPES`] closure types (generic code with many
//!   closure types cannot grow it without bound; closures of further types are boxed per
//!   send), and per type at most [`SLOTS_PER_TYPE`] boxes and [`SLOT_BYTES_PER_TYPE`] bytes
//!   (a closure larger than that is boxed per send). Boxes past the bounds are freed.
//! - A closure runs at most once and drops its captures exactly once: called (they drop as
//!   it returns, or as a panic unwinds through it: it was moved out of its slot first), or
//!   dropped uncalled with its holder (shutdown, a dropped pool job). Only empty slots are
//!   ever in the pool, and the pool's lock is never held while user code runs or is dropped.

use std::any::{Any, TypeId};
use std::collections::hash_map::Entry;

use parking_lot::Mutex;

use crate::hash::FxHashMap;

/// Most closure types whose boxes a [`SlotPool`] keeps.
pub(crate) const POOLED_TYPES: usize = 64;
/// Most boxes a [`SlotPool`] keeps per closure type (the most callback sends one producer
/// keeps in flight by default, and its free list of send states).
pub(crate) const SLOTS_PER_TYPE: usize = 1024;
/// Most bytes of boxes a [`SlotPool`] keeps per closure type.
pub(crate) const SLOT_BYTES_PER_TYPE: usize = 256 * 1024;

/// A closure's box: `Some` until it is called.
struct Slot<F>(Option<F>);

/// A [`Slot`] with its closure's type erased.
trait CallSlot<A>: Any + Send {
    /// Takes the closure out and calls it with the argument taken out of `arg` (drops it
    /// uncalled if `arg` is empty). Does nothing once the slot is empty.
    fn call(&mut self, arg: &mut Option<A>);
}

impl<A: 'static, F: FnOnce(A) + Send + 'static> CallSlot<A> for Slot<F> {
    fn call(&mut self, arg: &mut Option<A>) {
        // Out of the slot first: whatever the call does (a panic too), the slot is empty.
        if let Some(f) = self.0.take() {
            if let Some(arg) = arg.take() {
                f(arg);
            }
        }
    }
}

/// Empty closure boxes for reuse, by closure type (see the module docs).
#[derive(Default)]
pub(crate) struct SlotPool {
    lists: Mutex<FxHashMap<TypeId, Vec<Box<dyn Any + Send>>>>,
}

impl SlotPool {
    /// An empty box for a closure of type `F`, if one is kept.
    fn take<F: Send + 'static>(&self) -> Option<Box<Slot<F>>> {
        let spare = self.lists.lock().get_mut(&TypeId::of::<Slot<F>>())?.pop()?;
        // Always `Ok`: the list is keyed by the type of the slots in it.
        spare.downcast::<Slot<F>>().ok()
    }

    /// Keeps an empty box for the next closure of its type, within the bounds.
    fn give_back(&self, slot: Box<dyn Any + Send>) {
        // The type of the slot in the box (`slot.type_id()` would be the box's own).
        let key = (*slot).type_id();
        let size = std::mem::size_of_val(&*slot).max(1);
        let most = SLOTS_PER_TYPE.min(SLOT_BYTES_PER_TYPE / size);
        let mut lists = self.lists.lock();
        let types = lists.len();
        let refused = match lists.entry(key) {
            Entry::Occupied(mut list) if list.get().len() < most => {
                list.get_mut().push(slot);
                None
            }
            Entry::Vacant(vacant) if types < POOLED_TYPES && most > 0 => {
                let mut list = Vec::with_capacity(16.min(most));
                list.push(slot);
                vacant.insert(list);
                None
            }
            _ => Some(slot),
        };
        drop(lists);
        // Freed outside the lock (an empty slot: no user code runs).
        drop(refused);
    }

    /// Closure types kept, and boxes kept in all.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let lists = self.lists.lock();
        (lists.len(), lists.values().map(Vec::len).sum())
    }
}

impl std::fmt::Debug for SlotPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists = self.lists.lock();
        f.debug_struct("SlotPool")
            .field("types", &lists.len())
            .field("boxes", &lists.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

/// A `FnOnce(A)` run at most once, in a box reused through a [`SlotPool`] (see the module
/// docs). Dropped uncalled, it drops the closure.
pub(crate) struct PooledFnOnce<A: 'static> {
    held: Held<A>,
}

enum Held<A: 'static> {
    /// In a (possibly reused) slot.
    Slot(Box<dyn CallSlot<A>>),
    /// Zero-sized, or given boxed: a box that holds no memory of the pool's.
    Boxed(Box<dyn FnOnce(A) + Send + 'static>),
}

impl<A: 'static> PooledFnOnce<A> {
    /// Holds `f`, in a box taken from `pool` when it keeps one for `F`.
    pub(crate) fn new<F>(f: F, pool: &SlotPool) -> Self
    where
        F: FnOnce(A) + Send + 'static,
    {
        if std::mem::size_of::<F>() == 0 {
            // Does not allocate.
            return PooledFnOnce {
                held: Held::Boxed(Box::new(f)),
            };
        }
        let slot = match pool.take::<F>() {
            Some(mut slot) => {
                slot.0 = Some(f);
                slot
            }
            None => Box::new(Slot(Some(f))),
        };
        PooledFnOnce {
            held: Held::Slot(slot),
        }
    }

    /// Holds an already boxed closure.
    #[cfg(test)]
    pub(crate) fn boxed(f: Box<dyn FnOnce(A) + Send + 'static>) -> Self {
        PooledFnOnce {
            held: Held::Boxed(f),
        }
    }

    /// Whether the closure is in a slot that goes back to the pool once called.
    #[cfg(test)]
    pub(crate) fn is_slot(&self) -> bool {
        matches!(self.held, Held::Slot(_))
    }

    /// The address of the slot's box (to see it reused).
    #[cfg(test)]
    fn slot_addr(&self) -> Option<usize> {
        match &self.held {
            Held::Slot(slot) => Some(&**slot as *const dyn CallSlot<A> as *const u8 as usize),
            Held::Boxed(_) => None,
        }
    }

    /// Calls the closure with `arg`; its box goes back to `pool`, if given.
    pub(crate) fn call(self, arg: A, pool: Option<&SlotPool>) {
        self.call_from(&mut Some(arg), pool);
    }

    /// Calls the closure with the value taken out of `arg` (a large argument is then moved
    /// once, from where it lies into the closure); drops the closure uncalled if `arg` is
    /// empty. The empty box goes back to `pool`, if given (not if the closure panics: the
    /// box is freed as the panic unwinds).
    pub(crate) fn call_from(self, arg: &mut Option<A>, pool: Option<&SlotPool>) {
        match self.held {
            Held::Slot(mut slot) => {
                slot.call(arg);
                if let Some(pool) = pool {
                    pool.give_back(slot);
                }
            }
            Held::Boxed(f) => {
                if let Some(arg) = arg.take() {
                    f(arg);
                }
            }
        }
    }
}

impl<A: 'static> std::fmt::Debug for PooledFnOnce<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.held {
            Held::Slot(_) => "slot",
            Held::Boxed(_) => "boxed",
        };
        f.debug_tuple("PooledFnOnce").field(&how).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    use super::*;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[test]
    fn small_closure_is_called_once_and_its_box_reused() {
        let pool = SlotPool::default();
        let drops = counter();
        let calls = counter();
        let make = |n: u64| {
            let c = Counted(drops.clone());
            let calls = calls.clone();
            PooledFnOnce::new(
                move |x: u64| {
                    let _keep = &c;
                    calls.fetch_add((x * n) as usize, Ordering::SeqCst);
                },
                &pool,
            )
        };
        let f = make(1);
        assert!(f.is_slot());
        let first = f.slot_addr();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        f.call(7, Some(&pool));
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "captures dropped once");
        assert_eq!(pool.counts(), (1, 1), "the empty box is kept");
        // The next closure of that type gets the same box.
        let g = make(2);
        assert_eq!(g.slot_addr(), first, "box reused");
        assert_eq!(pool.counts(), (1, 0));
        g.call(5, Some(&pool));
        assert_eq!(calls.load(Ordering::SeqCst), 17);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(pool.counts(), (1, 1));
    }

    #[test]
    fn uncalled_closure_is_dropped_once() {
        let pool = SlotPool::default();
        for size in [0usize, 1, 3] {
            let drops = counter();
            let captures: Vec<Counted> = (0..size).map(|_| Counted(drops.clone())).collect();
            let f = PooledFnOnce::new(move |_: ()| drop(captures), &pool);
            assert!(f.is_slot());
            drop(f);
            assert_eq!(drops.load(Ordering::SeqCst), size);
        }
        // Captures held by value (not through a Vec), in a reused box.
        let make = |drops: &Arc<AtomicUsize>| {
            let (a, b) = (Counted(drops.clone()), Counted(drops.clone()));
            PooledFnOnce::new(
                move |_: ()| {
                    let _ = (&a, &b);
                },
                &pool,
            )
        };
        let drops = counter();
        make(&drops).call((), Some(&pool));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let f = make(&drops);
        assert_eq!(pool.counts().1, 0, "from the pool");
        drop(f);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
        // Dropped uncalled through `call_from` with no argument: once, and the box is kept.
        let f = make(&drops);
        f.call_from(&mut None, Some(&pool));
        assert_eq!(drops.load(Ordering::SeqCst), 6);
        assert_eq!(pool.counts().1, 1);
    }

    #[test]
    fn panicking_closure_drops_its_captures_once() {
        for big in [false, true] {
            let pool = SlotPool::default();
            let drops = counter();
            let c = Counted(drops.clone());
            let pad = [7u8; 200];
            let f = if big {
                PooledFnOnce::new(
                    move |_: ()| {
                        let _keep = (&c, pad);
                        panic!("callback panics");
                    },
                    &pool,
                )
            } else {
                PooledFnOnce::new(
                    move |_: ()| {
                        let _keep = &c;
                        panic!("callback panics");
                    },
                    &pool,
                )
            };
            assert!(f.is_slot());
            assert!(catch_unwind(AssertUnwindSafe(|| f.call((), Some(&pool)))).is_err());
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert_eq!(pool.counts(), (0, 0), "the box was freed by the unwinding");
        }
    }

    #[test]
    fn zero_sized_closure() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let pool = SlotPool::default();
        let f = PooledFnOnce::new(
            |x: usize| {
                CALLS.fetch_add(x, Ordering::SeqCst);
            },
            &pool,
        );
        assert!(!f.is_slot(), "a zero-sized closure needs no slot");
        f.call(3, Some(&pool));
        assert_eq!(CALLS.load(Ordering::SeqCst), 3);
        drop(PooledFnOnce::new(|_: usize| {}, &pool));
        assert_eq!(pool.counts(), (0, 0), "the pool is not used");
    }

    #[test]
    fn closures_of_every_size_run_once_and_reuse_their_boxes() {
        fn round<const N: usize>(pool: &SlotPool) {
            let drops = counter();
            let (tx, rx) = mpsc::channel();
            let make = |seed: u8| {
                let c = Counted(drops.clone());
                let data = [seed; N];
                let tx = tx.clone();
                PooledFnOnce::new(
                    move |x: usize| {
                        let _keep = &c;
                        tx.send(data.iter().map(|&b| b as usize).sum::<usize>() + x)
                            .unwrap();
                    },
                    pool,
                )
            };
            let f = make(1);
            let addr = f.slot_addr();
            f.call(1, Some(pool));
            assert_eq!(rx.recv().unwrap(), N + 1);
            let g = make(2);
            assert_eq!(g.slot_addr(), addr, "box of {N} bytes reused");
            g.call(0, Some(pool));
            assert_eq!(rx.recv().unwrap(), 2 * N);
            assert_eq!(drops.load(Ordering::SeqCst), 2);
        }
        let pool = SlotPool::default();
        round::<1>(&pool);
        round::<63>(&pool);
        round::<64>(&pool);
        round::<65>(&pool);
        round::<1000>(&pool);
        round::<5000>(&pool);
        assert_eq!(pool.counts(), (6, 6));
    }

    #[test]
    fn over_aligned_captures_stay_aligned() {
        #[repr(align(64))]
        struct Wide(u64, Counted);
        let pool = SlotPool::default();
        let drops = counter();
        let (tx, rx) = mpsc::channel();
        for i in 0..3u64 {
            let w = Wide(41 + i, Counted(drops.clone()));
            let tx = tx.clone();
            let f = PooledFnOnce::new(
                move |x: u64| {
                    let _keep = &w.1;
                    let addr = &w as *const Wide as usize;
                    tx.send((addr % 64, w.0 + x)).unwrap();
                },
                &pool,
            );
            f.call(1, Some(&pool));
            assert_eq!(rx.recv().unwrap(), (0, 42 + i));
        }
        assert_eq!(drops.load(Ordering::SeqCst), 3);

        #[repr(align(16))]
        struct Sixteen(u128);
        let s = Sixteen(5);
        let (tx, rx) = mpsc::channel();
        let f = PooledFnOnce::new(
            move |_: ()| {
                let addr = &s as *const Sixteen as usize;
                tx.send((addr % 16, s.0)).unwrap();
            },
            &pool,
        );
        let moved = vec![f];
        let f = moved.into_iter().next().unwrap();
        let boxed = Box::new(f);
        (*boxed).call((), Some(&pool));
        assert_eq!(rx.recv().unwrap(), (0, 5));
    }

    #[test]
    fn moved_across_threads_and_values() {
        let pool = Arc::new(SlotPool::default());
        let drops = counter();
        let text = String::from("moved");
        let c = Counted(drops.clone());
        let (tx, rx) = mpsc::channel();
        let f = PooledFnOnce::new(
            move |suffix: String| {
                let _keep = &c;
                tx.send(format!("{text} {suffix}")).unwrap();
            },
            &pool,
        );
        let mut slot = [None, None];
        slot[1] = Some(f);
        let f = slot[1].take().unwrap();
        let p = pool.clone();
        std::thread::spawn(move || f.call("across".into(), Some(&p)))
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap(), "moved across");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.counts(), (1, 1), "given back from the other thread");
    }

    #[test]
    fn call_from_moves_the_argument_or_drops_uncalled() {
        for big in [false, true] {
            let pool = SlotPool::default();
            let drops = counter();
            let calls = counter();
            let make = |drops: &Arc<AtomicUsize>, calls: &Arc<AtomicUsize>| {
                let (c, calls) = (Counted(drops.clone()), calls.clone());
                let pad = [0u8; 100];
                if big {
                    PooledFnOnce::new(
                        move |arg: Counted| {
                            let _keep = (&c, pad, arg);
                            calls.fetch_add(1, Ordering::SeqCst);
                        },
                        &pool,
                    )
                } else {
                    PooledFnOnce::new(
                        move |arg: Counted| {
                            let _keep = (&c, arg);
                            calls.fetch_add(1, Ordering::SeqCst);
                        },
                        &pool,
                    )
                }
            };
            let f = make(&drops, &calls);
            let mut slot = Some(Counted(drops.clone()));
            f.call_from(&mut slot, Some(&pool));
            assert!(slot.is_none(), "the argument was taken");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(
                drops.load(Ordering::SeqCst),
                2,
                "captures and argument dropped"
            );
            // Empty argument: dropped uncalled, once.
            let f = make(&drops, &calls);
            f.call_from(&mut None, None);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(drops.load(Ordering::SeqCst), 3);
        }
    }

    #[test]
    fn the_pool_is_bounded() {
        // Per type: at most `SLOTS_PER_TYPE` boxes.
        let pool = SlotPool::default();
        let n = SLOTS_PER_TYPE + 10;
        let fs: Vec<_> = (0..n)
            .map(|i| PooledFnOnce::new(move |x: usize| assert_eq!(x, i), &pool))
            .collect();
        for (i, f) in fs.into_iter().enumerate() {
            f.call(i, Some(&pool));
        }
        assert_eq!(pool.counts(), (1, SLOTS_PER_TYPE));
        // Per type: at most `SLOT_BYTES_PER_TYPE` bytes.
        fn sized<const N: usize>(pool: &SlotPool, count: usize) {
            let fs: Vec<_> = (0..count)
                .map(|_| {
                    let data = [1u8; N];
                    PooledFnOnce::new(move |_: ()| assert_eq!(data[N - 1], 1), pool)
                })
                .collect();
            for f in fs {
                f.call((), Some(pool));
            }
        }
        let pool = SlotPool::default();
        sized::<4096>(&pool, 100);
        // Slots of 4,097 bytes (the closure and the `Option`'s flag).
        assert_eq!(pool.counts(), (1, SLOT_BYTES_PER_TYPE / 4097));
        // A closure larger than that: never kept (on a thread with room for its copies).
        let pool = Arc::new(SlotPool::default());
        let p = pool.clone();
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || sized::<{ SLOT_BYTES_PER_TYPE + 8 }>(&p, 2))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(pool.counts(), (0, 0));

        // At most `POOLED_TYPES` types: closures of further types are not kept.
        fn typed<const N: usize>(pool: &SlotPool) {
            let n = N; // captured: not zero-sized
            let f = PooledFnOnce::new(move |x: usize| assert_eq!(x, n), pool);
            f.call(N, Some(pool));
        }
        macro_rules! many {
            ($pool:expr; $($n:literal)*) => { $(typed::<$n>($pool);)* };
        }
        let pool = SlotPool::default();
        many!(&pool; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27
            28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55
            56 57 58 59 60 61 62 63 64 65 66 67 68 69);
        assert_eq!(pool.counts(), (POOLED_TYPES, POOLED_TYPES));
        // A kept type still gets its box back (taken, then given back).
        typed::<5>(&pool);
        assert_eq!(pool.counts(), (POOLED_TYPES, POOLED_TYPES));
    }

    #[test]
    fn boxed_constructor_and_debug() {
        let pool = SlotPool::default();
        let (tx, rx) = mpsc::channel();
        let f = PooledFnOnce::boxed(Box::new(move |x: i32| tx.send(x).unwrap()));
        assert_eq!(format!("{f:?}"), "PooledFnOnce(\"boxed\")");
        f.call(9, Some(&pool));
        assert_eq!(rx.recv().unwrap(), 9);
        let n = 3;
        let g = PooledFnOnce::new(move |x: i32| assert_eq!(x, n), &pool);
        assert_eq!(format!("{g:?}"), "PooledFnOnce(\"slot\")");
        g.call(3, Some(&pool));
        assert_eq!(format!("{pool:?}"), "SlotPool { types: 1, boxes: 1 }");
    }
}
