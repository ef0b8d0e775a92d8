//! Maps keyed by 64-bit digests (key sets, leak probes, the unique registry). The keys are
//! hashes already, so the map uses them as they are instead of hashing them again with
//! SipHash, which showed in profiles of the data and verification stages.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map from a digest to `V`.
pub type DigestMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// A set of digests.
pub type DigestSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The identity hasher for digests.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
