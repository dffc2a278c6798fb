//! A value alone on its cache line(s).
//!
//! Data written by a sending thread and data written by an I/O thread must not share a cache
//! line: every write by one core takes the line away from the other (false sharing), and on a
//! VM each transfer costs ~100 ns. 128 bytes, as `crossbeam_utils::CachePadded` uses on x86-64
//! and aarch64: the adjacent-line prefetcher pulls lines in pairs.

use std::ops::{Deref, DerefMut};

/// `T` aligned (and so padded) to 128 bytes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Padded<T> {
    /// `value` on its own line.
    pub(crate) const fn new(value: T) -> Self {
        Padded(value)
    }
}

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Padded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Padded;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn two_padded_values_never_share_a_line() {
        let pair = [
            Padded::new(AtomicU64::new(0)),
            Padded::new(AtomicU64::new(0)),
        ];
        let a = &*pair[0] as *const AtomicU64 as usize;
        let b = &*pair[1] as *const AtomicU64 as usize;
        assert_eq!(a % 128, 0);
        assert!(b - a >= 128);
        assert_eq!(std::mem::size_of::<Padded<u8>>(), 128);
    }
}
