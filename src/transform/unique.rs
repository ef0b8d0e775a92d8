//! The run-wide registry behind `unique: true`: distinct inputs get distinct outputs, so a
//! unique index on the column never fails, without changing the output of any value that does
//! not clash.
//!
//! How: generators have a large natural output space (emails carry a number, hashes are
//! long), so clashes are rare. Every seeded transform bound with a given identity (name and
//! canonical parameters) shares one [`UniqueSet`]; once any rule with
//! that identity says `unique: true`, every column with that identity claims its outputs in
//! it. A claim maps a 64-bit digest of the output to a 128-bit tag of the input (taken from
//! the value's keyed seed). When a different input already holds the output, the seeded
//! instance re-derives from a counter-keyed seed until it finds a free output or one this same
//! input already holds; the sequence of candidates depends only on the input, so an input that
//! comes back (a repeated value, another column with the same rule) gets the same output.
//!
//! What is guaranteed, and what it costs, is written in `docs/rules.md` ("unique"):
//! - distinct inputs give distinct outputs within a run, across all columns sharing the
//!   identity (exact, unless two inputs' 128-bit tags collide: about n²/2¹²⁹);
//! - a value whose natural output clashes with nobody's keeps it, so joins on pseudonymized
//!   values keep working between unique and non-unique columns with the same rule;
//! - the only order dependence: of two inputs with the same natural output, the one the run
//!   sees first keeps it, and the other gets a re-derived one;
//! - memory: 25 bytes per bucket (entry and control byte) in hash tables 44–87% full, so
//!   30–60 bytes per distinct value.

use std::collections::HashMap;
use std::hash::Hasher;

use crate::prehashed::DigestMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shards of a set: enough that rayon workers rarely wait on each other.
const SHARDS: usize = 64;

/// The registry of one run: a set per identity.
#[derive(Default)]
pub struct Registry {
    sets: Mutex<HashMap<Vec<u8>, Arc<UniqueSet>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the registry holds, for the run's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UniqueStats {
    /// Identities with `unique: true` somewhere.
    pub sets: usize,
    /// Distinct outputs held, over all sets.
    pub values: u64,
    /// Inputs that got a re-derived output because their natural one was taken.
    pub resolved_clashes: u64,
    /// Memory the sets' tables take (their capacity times the entry size).
    pub bytes: u64,
}

impl Registry {
    /// The set for `key`, created (inactive) on first use.
    pub(crate) fn slot(&self, key: &[u8]) -> Arc<UniqueSet> {
        let mut sets = lock(&self.sets);
        sets.entry(key.to_vec())
            .or_insert_with(|| Arc::new(UniqueSet::new()))
            .clone()
    }

    pub fn stats(&self) -> UniqueStats {
        let sets = lock(&self.sets);
        let mut stats = UniqueStats::default();
        for set in sets.values().filter(|s| s.is_active()) {
            stats.sets += 1;
            stats.resolved_clashes += set.resolved.load(Ordering::Relaxed);
            for shard in set.shards.iter() {
                let shard = lock(shard);
                stats.values += shard.len() as u64;
                // hashbrown keeps 1/8 of its buckets free (capacity is 7/8 of them), and has
                // one control byte per bucket besides the entry.
                let buckets = (shard.capacity() as u64).div_ceil(7) * 8;
                stats.bytes += buckets * (ENTRY_BYTES + 1);
            }
        }
        stats
    }
}

const ENTRY_BYTES: u64 = (size_of::<u64>() + size_of::<[u64; 2]>()) as u64;

/// One shard of a set: output digest → input tag.
type Shard = Mutex<DigestMap<[u64; 2]>>;

/// Outputs claimed under one identity.
pub struct UniqueSet {
    active: AtomicBool,
    resolved: AtomicU64,
    shards: Box<[Shard]>,
}

impl fmt::Debug for UniqueSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UniqueSet")
            .field("active", &self.is_active())
            .finish()
    }
}

/// The result of claiming an output for an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Nobody held it; now this input does.
    New,
    /// This input already held it.
    Same,
    /// Another input holds it.
    Taken,
}

impl UniqueSet {
    fn new() -> UniqueSet {
        UniqueSet {
            active: AtomicBool::new(false),
            resolved: AtomicU64::new(0),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    /// Turns the set on: done at bind time by a rule with `unique: true`, before any value is
    /// transformed, so every instance sees the final state.
    pub(crate) fn activate(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn claim(&self, output: u64, input: [u64; 2]) -> Claim {
        // Bits 32..38 pick the shard: the map hashes with the low bits (bucket) and the top
        // seven (control byte), which must stay varied within a shard.
        let shard = ((output >> 32) as usize) % SHARDS;
        let mut map = lock(&self.shards[shard]);
        match map.get(&output) {
            Some(holder) if *holder == input => Claim::Same,
            Some(_) => Claim::Taken,
            None => {
                map.insert(output, input);
                Claim::New
            }
        }
    }

    pub(crate) fn note_resolved_clash(&self) {
        self.resolved.fetch_add(1, Ordering::Relaxed);
    }
}

/// The 128-bit tag of an input: the first half of its keyed seed. Distinct inputs have
/// distinct seeds (HMAC-SHA256), so tags collide only by chance: n²/2¹²⁹ for n inputs.
pub(crate) fn input_tag(seed: &[u8; 32]) -> [u64; 2] {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&seed[0..8]);
    b.copy_from_slice(&seed[8..16]);
    [u64::from_le_bytes(a), u64::from_le_bytes(b)]
}

/// A 64-bit digest of an output. Two equal outputs always have the same digest; two different
/// outputs with the same digest only cost a needless retry, never a duplicate.
pub(crate) fn output_digest(output: &str) -> u64 {
    // SipHash-1-3 with fixed keys: the digest lives in memory for one run only.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(output.as_bytes());
    hasher.finish()
}

/// Locks a mutex; a poisoned one (a panic while it was held, which nothing here can cause)
/// still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims() {
        let set = UniqueSet::new();
        assert_eq!(set.claim(1, [1, 1]), Claim::New);
        assert_eq!(set.claim(1, [1, 1]), Claim::Same);
        assert_eq!(set.claim(1, [2, 2]), Claim::Taken);
        assert_eq!(set.claim(u64::MAX, [2, 2]), Claim::New);
    }

    #[test]
    fn slots_are_shared_by_key_and_inactive_until_asked() {
        let registry = Registry::default();
        let a = registry.slot(b"email");
        let b = registry.slot(b"email");
        let c = registry.slot(b"hash");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(!a.is_active());
        b.activate();
        assert!(a.is_active());
        a.claim(7, [0, 1]);
        let stats = registry.stats();
        assert_eq!(stats.sets, 1);
        assert_eq!(stats.values, 1);
        assert!(stats.bytes > 0);
    }

    #[test]
    fn digests_are_stable_within_a_process() {
        assert_eq!(
            output_digest("a@example.com"),
            output_digest("a@example.com")
        );
        assert_ne!(
            output_digest("a@example.com"),
            output_digest("b@example.com")
        );
    }
}
