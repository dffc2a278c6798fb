//! A cheap hasher for the crate's internal maps keyed by its own strings (topics, broker names
//! and addresses from the configured name servers): the route cache, the fault table, the
//! statistics and the remoting client's targets, all looked up on every send.
//!
//! The standard `HashMap` hasher (SipHash-1-3, randomly keyed) resists hash flooding by keys
//! an attacker chooses; these keys are not chosen by a remote party per request, and the maps
//! hold a handful of entries, so that resistance is not worth its cost on the send path (it
//! was 13 % of the sending thread's instructions). This is the Fx hash (rustc's): a rotate, an
//! xor and a multiply per 8 bytes. Not for anything keyed by untrusted input.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The Fx hash: fast, not keyed, not flooding-resistant (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_strings_hash_equal_and_others_differ() {
        let b = BuildHasherDefault::<FxHasher>::default();
        let h = |s: &str| b.hash_one(s);
        assert_eq!(h("broker-a"), h(&String::from("broker-a")));
        let names = [
            "",
            "a",
            "b",
            "broker-a",
            "broker-b",
            "127.0.0.1:10911",
            "127.0.0.1:10921",
        ];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(h(x), h(y), "{x:?} {y:?}");
            }
        }
        let mut m: FxHashMap<String, i32> = FxHashMap::default();
        m.insert("t".into(), 1);
        assert_eq!(m.get("t"), Some(&1));
    }
}
