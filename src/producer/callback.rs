//! [`InlineFnOnce`]: a `FnOnce(A) + Send + 'static` of any type, held without a box when it
//! is small (a user's send callback, carried in its recycled per-send state, so a callback
//! send allocates nothing).
//!
//! # Why `unsafe`, and why it is sound
//!
//! The crate otherwise has no `unsafe` code. A callback's type is the caller's, so holding
//! it in a non-generic per-send state takes type erasure; `Box<dyn FnOnce>` erases it at the
//! price of an allocation per send. Here a closure of at most [`INLINE_BYTES`] bytes and an
//! alignment of at most [`INLINE_ALIGN`] is moved into a byte buffer inside the value
//! instead, beside two functions instantiated for its type: one that moves it out and calls
//! it, one that drops it in place. Larger or more aligned closures are boxed as before.
//!
//! The invariants the unsafe blocks rely on, all set up by [`InlineFnOnce::new`] and kept by
//! this module alone (the fields are private, and nothing hands out a pointer into the
//! buffer):
//!
//! 1. A value in the `Inline` state holds, at offset 0 of `buf`, an initialised closure of
//!    exactly the type `F` that `call` and `drop` were instantiated with. `buf` is aligned to
//!    [`INLINE_ALIGN`] and `F` fits in it with an alignment no larger (checked before the
//!    write), so the pointer is valid and aligned for `F` (a zero-sized `F` too: the pointer
//!    is non-null and aligned).
//! 2. The closure is used at most once: [`InlineFnOnce::call`] first replaces the state with
//!    `Empty` (so `Drop` does nothing), then moves the closure out of its own copy of the
//!    buffer with `ptr::read` and calls it by value (or drops it, when there is no argument). If it panics, the closure was already
//!    moved into the call, and unwinding drops what it owns exactly once; the buffer is
//!    plain bytes (`MaybeUninit`), which have no drop.
//! 3. `Drop` of a value still `Inline` drops the closure in place, once.
//! 4. Moving the value moves the buffer's bytes: a Rust value may always be moved by a
//!    byte copy (no closure can point into itself), and `MaybeUninit` bytes keep the
//!    pointers' provenance when copied.
//! 5. `F: Send + 'static` is required by `new`, so the value is `Send` (which the compiler
//!    derives from the fields: bytes and function pointers) only when the closure is, and it
//!    borrows nothing.
//!
//! The unit tests below check drop counts (called, dropped uncalled, panicking), zero-sized,
//! small, large (boxed) and over-aligned (boxed) closures, and captures with pointers; they
//! are the tests to run under Miri (`cargo +nightly miri test --lib producer::callback`).
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr;

/// Closures up to this size (bytes) are held inline.
pub(crate) const INLINE_BYTES: usize = 64;
/// Closures aligned to at most this are held inline.
pub(crate) const INLINE_ALIGN: usize = 16;

/// The inline buffer: [`INLINE_BYTES`] bytes aligned to [`INLINE_ALIGN`].
#[repr(C, align(16))]
struct Buf([MaybeUninit<u8>; INLINE_BYTES]);

// `INLINE_ALIGN` is the buffer's alignment.
const _: () = assert!(std::mem::align_of::<Buf>() == INLINE_ALIGN);

/// A `FnOnce(A)` run at most once: inline when small (see the module docs), boxed otherwise.
/// Dropped uncalled, it drops the closure.
pub(crate) struct InlineFnOnce<A: 'static> {
    state: State<A>,
}

enum State<A: 'static> {
    Inline {
        buf: Buf,
        /// Moves the closure out of the buffer and calls it with the argument taken out of
        /// the slot (drops it uncalled if the slot is empty). Unsafe: the buffer must hold
        /// an initialised closure of the type this was made for, not used again afterwards.
        call: unsafe fn(*mut Buf, &mut Option<A>),
        /// Drops the closure in place. Unsafe: as `call`.
        drop: unsafe fn(*mut Buf),
    },
    Boxed(Box<dyn FnOnce(A) + Send + 'static>),
    /// Called (or being called).
    Empty,
}

/// # Safety
/// `buf` holds an initialised `F` at offset 0 (invariant 1), never used again after this.
unsafe fn call_inline<F: FnOnce(A), A>(buf: *mut Buf, arg: &mut Option<A>) {
    // SAFETY: the caller's contract: a valid, aligned, initialised `F`, read once.
    let f = unsafe { ptr::read(buf.cast::<F>()) };
    if let Some(arg) = arg.take() {
        f(arg);
    }
}

/// # Safety
/// As [`call_inline`].
unsafe fn drop_inline<F>(buf: *mut Buf) {
    // SAFETY: the caller's contract: a valid, aligned, initialised `F`, dropped once.
    unsafe { ptr::drop_in_place(buf.cast::<F>()) }
}

impl<A: 'static> InlineFnOnce<A> {
    /// Whether a closure of type `F` is held inline (a constant for each `F`).
    pub(crate) const fn fits<F>() -> bool {
        std::mem::size_of::<F>() <= INLINE_BYTES && std::mem::align_of::<F>() <= INLINE_ALIGN
    }

    /// Holds `f`: inline when it fits, boxed otherwise.
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce(A) + Send + 'static,
    {
        if !Self::fits::<F>() {
            return InlineFnOnce {
                state: State::Boxed(Box::new(f)),
            };
        }
        let mut buf = Buf([MaybeUninit::uninit(); INLINE_BYTES]);
        // SAFETY: `F` fits in the buffer and is aligned no more than it (checked above), so
        // the pointer is valid and aligned for a write of `F`; the bytes were uninitialised,
        // nothing is overwritten. This sets up invariant 1 for `call_inline::<F, A>` and
        // `drop_inline::<F>`.
        unsafe { ptr::write(ptr::addr_of_mut!(buf).cast::<F>(), f) };
        InlineFnOnce {
            state: State::Inline {
                buf,
                call: call_inline::<F, A>,
                drop: drop_inline::<F>,
            },
        }
    }

    /// Holds an already boxed closure.
    #[cfg(test)]
    pub(crate) fn boxed(f: Box<dyn FnOnce(A) + Send + 'static>) -> Self {
        InlineFnOnce {
            state: State::Boxed(f),
        }
    }

    /// Whether the closure is held inline (not boxed).
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.state, State::Inline { .. })
    }

    /// Calls the closure with `arg`.
    pub(crate) fn call(self, arg: A) {
        self.call_from(&mut Some(arg));
    }

    /// Calls the closure with the value taken out of `slot` (a large argument is then moved
    /// once, from where it lies into the closure); drops the closure uncalled if `slot` is
    /// empty.
    pub(crate) fn call_from(mut self, slot: &mut Option<A>) {
        // `Empty` first: whatever happens in the call, `Drop` then does nothing (invariant 2).
        match std::mem::replace(&mut self.state, State::Empty) {
            State::Inline { mut buf, call, .. } => {
                // SAFETY: `buf` was moved out of an `Inline` state whose closure had not been
                // used (invariants 1 and 4), and this copy is used once, here; the state left
                // behind is `Empty`, so nothing reads or drops the closure again.
                unsafe { call(ptr::addr_of_mut!(buf), slot) }
            }
            State::Boxed(f) => {
                if let Some(arg) = slot.take() {
                    f(arg);
                }
            }
            State::Empty => {}
        }
    }
}

impl<A: 'static> Drop for InlineFnOnce<A> {
    fn drop(&mut self) {
        if let State::Inline { buf, drop, .. } = &mut self.state {
            // SAFETY: still `Inline`: the closure was never called or moved out (invariants 1
            // to 3); it is dropped once, here, and the value is gone after this.
            unsafe { drop(ptr::addr_of_mut!(*buf)) }
        }
    }
}

impl<A: 'static> std::fmt::Debug for InlineFnOnce<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.state {
            State::Inline { .. } => "inline",
            State::Boxed(_) => "boxed",
            State::Empty => "called",
        };
        f.debug_tuple("InlineFnOnce").field(&how).finish()
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
    fn small_closure_is_inline_and_called_once() {
        let drops = counter();
        let calls = counter();
        let c = Counted(drops.clone());
        let calls2 = calls.clone();
        let f = InlineFnOnce::new(move |x: u64| {
            let _keep = &c;
            calls2.fetch_add(x as usize, Ordering::SeqCst);
        });
        assert!(f.is_inline());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        f.call(7);
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "captures dropped once");
    }

    #[test]
    fn uncalled_closure_is_dropped_once() {
        for size in [0usize, 1, 3] {
            let drops = counter();
            let captures: Vec<Counted> = (0..size).map(|_| Counted(drops.clone())).collect();
            let f = InlineFnOnce::new(move |_: ()| drop(captures));
            assert!(f.is_inline());
            drop(f);
            assert_eq!(drops.load(Ordering::SeqCst), size);
        }
        // Inline captures held by value (not through a Vec).
        let drops = counter();
        let (a, b) = (Counted(drops.clone()), Counted(drops.clone()));
        let f = InlineFnOnce::new(move |_: ()| {
            let _ = (&a, &b);
        });
        assert!(f.is_inline());
        drop(f);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn panicking_closure_drops_its_captures_once() {
        let drops = counter();
        let c = Counted(drops.clone());
        let f = InlineFnOnce::new(move |_: ()| {
            let _keep = &c;
            panic!("callback panics");
        });
        assert!(f.is_inline());
        assert!(catch_unwind(AssertUnwindSafe(|| f.call(()))).is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // Boxed too.
        let drops = counter();
        let c = Counted(drops.clone());
        let big = [7u8; 200];
        let f = InlineFnOnce::new(move |_: ()| {
            let _keep = (&c, big);
            panic!("callback panics");
        });
        assert!(!f.is_inline());
        assert!(catch_unwind(AssertUnwindSafe(|| f.call(()))).is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn zero_sized_closure() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let f = InlineFnOnce::new(|x: usize| {
            CALLS.fetch_add(x, Ordering::SeqCst);
        });
        assert!(f.is_inline());
        f.call(3);
        assert_eq!(CALLS.load(Ordering::SeqCst), 3);
        drop(InlineFnOnce::new(|_: usize| {}));
    }

    #[test]
    fn closures_larger_than_the_buffer_are_boxed() {
        let drops = counter();
        let c = Counted(drops.clone());
        let data: [u64; 16] = std::array::from_fn(|i| i as u64);
        let (tx, rx) = mpsc::channel();
        let f = InlineFnOnce::new(move |x: u64| {
            let _keep = &c;
            tx.send(data.iter().sum::<u64>() + x).unwrap();
        });
        assert!(!f.is_inline());
        f.call(1);
        assert_eq!(rx.recv().unwrap(), 121);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Exactly at the limit: inline.
        static SUM: AtomicUsize = AtomicUsize::new(0);
        let edge = [1u8; INLINE_BYTES];
        let f = InlineFnOnce::new(move |_: ()| {
            SUM.store(edge.iter().map(|&b| b as usize).sum(), Ordering::SeqCst);
        });
        assert!(f.is_inline());
        f.call(());
        assert_eq!(SUM.load(Ordering::SeqCst), INLINE_BYTES);
        // One byte over: boxed.
        let over = [1u8; INLINE_BYTES + 1];
        let f = InlineFnOnce::new(move |_: ()| {
            SUM.store(over.len(), Ordering::SeqCst);
        });
        assert!(!f.is_inline());
        f.call(());
        assert_eq!(SUM.load(Ordering::SeqCst), INLINE_BYTES + 1);
    }

    #[test]
    fn over_aligned_captures_are_boxed_and_stay_aligned() {
        #[repr(align(64))]
        struct Wide(u64, Counted);
        let drops = counter();
        let w = Wide(41, Counted(drops.clone()));
        let (tx, rx) = mpsc::channel();
        let f = InlineFnOnce::new(move |x: u64| {
            let _keep = &w.1;
            let addr = &w as *const Wide as usize;
            tx.send((addr % 64, w.0 + x)).unwrap();
        });
        assert!(!f.is_inline());
        f.call(1);
        assert_eq!(rx.recv().unwrap(), (0, 42));
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // Aligned to the buffer's alignment exactly: inline, and aligned after moves.
        #[repr(align(16))]
        struct Sixteen(u128);
        let s = Sixteen(5);
        let (tx, rx) = mpsc::channel();
        let f = InlineFnOnce::new(move |_: ()| {
            let addr = &s as *const Sixteen as usize;
            tx.send((addr % 16, s.0)).unwrap();
        });
        assert!(f.is_inline());
        let moved = vec![f];
        let f = moved.into_iter().next().unwrap();
        let boxed = Box::new(f);
        (*boxed).call(());
        assert_eq!(rx.recv().unwrap(), (0, 5));
    }

    #[test]
    fn moved_across_threads_and_values() {
        let drops = counter();
        let text = String::from("moved");
        let c = Counted(drops.clone());
        let (tx, rx) = mpsc::channel();
        let f = InlineFnOnce::new(move |suffix: String| {
            let _keep = &c;
            tx.send(format!("{text} {suffix}")).unwrap();
        });
        assert!(f.is_inline());
        let mut slot = [None, None];
        slot[1] = Some(f);
        let f = slot[1].take().unwrap();
        std::thread::spawn(move || f.call("across".into()))
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap(), "moved across");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn call_from_moves_the_argument_or_drops_uncalled() {
        for big in [false, true] {
            let drops = counter();
            let calls = counter();
            let make = |drops: &Arc<AtomicUsize>, calls: &Arc<AtomicUsize>| {
                let (c, calls) = (Counted(drops.clone()), calls.clone());
                let pad = [0u8; 100];
                if big {
                    InlineFnOnce::new(move |arg: Counted| {
                        let _keep = (&c, pad, arg);
                        calls.fetch_add(1, Ordering::SeqCst);
                    })
                } else {
                    InlineFnOnce::new(move |arg: Counted| {
                        let _keep = (&c, arg);
                        calls.fetch_add(1, Ordering::SeqCst);
                    })
                }
            };
            let f = make(&drops, &calls);
            assert_eq!(f.is_inline(), !big);
            let mut slot = Some(Counted(drops.clone()));
            f.call_from(&mut slot);
            assert!(slot.is_none(), "the argument was taken");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(
                drops.load(Ordering::SeqCst),
                2,
                "captures and argument dropped"
            );
            // Empty slot: dropped uncalled, once.
            let f = make(&drops, &calls);
            f.call_from(&mut None);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(drops.load(Ordering::SeqCst), 3);
        }
    }

    #[test]
    fn boxed_constructor_and_debug() {
        let (tx, rx) = mpsc::channel();
        let f = InlineFnOnce::boxed(Box::new(move |x: i32| tx.send(x).unwrap()));
        assert_eq!(format!("{f:?}"), "InlineFnOnce(\"boxed\")");
        f.call(9);
        assert_eq!(rx.recv().unwrap(), 9);
        let g = InlineFnOnce::new(|_: i32| {});
        assert_eq!(format!("{g:?}"), "InlineFnOnce(\"inline\")");
    }
}
