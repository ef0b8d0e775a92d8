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
//! Memory does not grow with the rows: a set is split into [`PARTS`] parts by bits of the
//! digest; each part keeps at most [`MEM_ENTRIES`] claims in a hash table, and when that is
//! full it spills them, sorted, into one run in an unnamed temporary file of its own (merged
//! with the run it had: the file is rewritten, so a part's disk use is its size, not its
//! history). A claim looks in the table, then asks the run's in-memory Bloom filter (10 bits
//! a claim), and only on a "maybe" reads one 4 KiB block of the run (located by in-memory
//! fences, the first digest of each block) with one `pread`. The answers are exactly those of
//! an unbounded table: spilling changes where a claim is kept, never what a claim returns.
//!
//! What is guaranteed, and what it costs, is written in `docs/rules.md` ("unique"):
//! - distinct inputs give distinct outputs within a run, across all columns sharing the
//!   identity (exact, unless two inputs' 128-bit tags collide: about n²/2¹²⁹);
//! - a value whose natural output clashes with nobody's keeps it, so joins on pseudonymized
//!   values keep working between unique and non-unique columns with the same rule;
//! - the only order dependence: of two inputs with the same natural output, the one the run
//!   sees first keeps it, and the other gets a re-derived one;
//! - memory: at most `PARTS × MEM_ENTRIES` table entries a set (about 50 MiB), plus 1.25
//!   bytes of Bloom filter and 0.05 bytes of fences a spilled claim; disk: 24 bytes a spilled
//!   claim, in the temporary directory (`TMPDIR`, default `/tmp`), freed when the run ends
//!   (the files have no name, so even `kill -9` leaves nothing behind).

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hasher;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use crate::prehashed::DigestMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Parts of a set: enough that rayon workers rarely wait on each other, and that one part's
/// spill (a rewrite of its run) stays small.
const PARTS: usize = 256;

/// Claims a part keeps in memory before it spills them to its run. 7,000 keeps the table at
/// 8,192 buckets (hashbrown fills them to 7/8): 200 KiB a part, 50 MiB a set.
pub(crate) const MEM_ENTRIES: usize = 7_000;

/// Bytes of one claim on disk: the digest, then the tag.
const ENTRY: usize = 24;

/// Claims in one block of a run: one `pread` of 4,080 bytes.
const BLOCK: usize = 170;

/// Bloom filter bits per spilled claim (about 1 % false positives, each one a needless read).
const BLOOM_BITS: usize = 10;

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
    /// Memory the sets take: their tables (capacity times the entry size), and the Bloom
    /// filters and fences of what they spilled.
    pub bytes: u64,
    /// Bytes the sets spilled to their temporary files.
    pub disk_bytes: u64,
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
            for part in set.parts.iter() {
                let part = lock(part);
                stats.values += (part.mem.len() + part.run.as_ref().map_or(0, |r| r.len)) as u64;
                // hashbrown keeps 1/8 of its buckets free (capacity is 7/8 of them), and has
                // one control byte per bucket besides the entry.
                let buckets = (part.mem.capacity() as u64).div_ceil(7) * 8;
                stats.bytes += buckets * (ENTRY as u64 + 1);
                if let Some(run) = &part.run {
                    stats.bytes += (run.bloom.len() * 64 + run.fences.len() * 8) as u64;
                    stats.disk_bytes += (run.len * ENTRY) as u64;
                }
            }
        }
        stats
    }
}

/// One part of a set: the claims in memory (output digest → input tag), and the run they
/// spilled to.
#[derive(Default)]
struct Part {
    mem: DigestMap<[u64; 2]>,
    run: Option<Run>,
}

/// Spilled claims of a part, sorted by digest, in an unnamed temporary file.
struct Run {
    file: File,
    /// Claims in the file.
    len: usize,
    /// The first digest of each block.
    fences: Vec<u64>,
    /// A blocked Bloom filter of the digests: 512-bit blocks, six bits a digest.
    bloom: Vec<[u64; 8]>,
}

/// Outputs claimed under one identity.
pub struct UniqueSet {
    active: AtomicBool,
    resolved: AtomicU64,
    parts: Box<[Mutex<Part>]>,
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
            parts: (0..PARTS).map(|_| Mutex::new(Part::default())).collect(),
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

    /// Claims `output` (a digest) for `input` (a tag). The error is an I/O error of the
    /// temporary file (a full disk), already worded for the user.
    pub(crate) fn claim(&self, output: u64, input: [u64; 2]) -> Result<Claim, String> {
        self.claim_with(output, input, MEM_ENTRIES)
    }

    fn claim_with(&self, output: u64, input: [u64; 2], cap: usize) -> Result<Claim, String> {
        // Bits 32..40 pick the part: the map hashes with the low bits (bucket) and the top
        // seven (control byte), which must stay varied within a part.
        let index = ((output >> 32) as usize) % PARTS;
        let mut part = lock(&self.parts[index]);
        let holder = match part.mem.get(&output) {
            Some(holder) => Some(*holder),
            None => match &part.run {
                Some(run) => run.get(output).map_err(io_error)?,
                None => None,
            },
        };
        match holder {
            Some(holder) if holder == input => Ok(Claim::Same),
            Some(_) => Ok(Claim::Taken),
            None => {
                part.mem.insert(output, input);
                if part.mem.len() >= cap {
                    part.spill().map_err(io_error)?;
                }
                Ok(Claim::New)
            }
        }
    }

    pub(crate) fn note_resolved_clash(&self) {
        self.resolved.fetch_add(1, Ordering::Relaxed);
    }
}

fn io_error(e: std::io::Error) -> String {
    format!(
        "unique: the registry could not spill to the temporary directory ({}): {e}",
        std::env::temp_dir().display()
    )
}

impl Part {
    /// Moves the table's claims into the run: merges them (sorted) with the run's into a new
    /// temporary file, which replaces the old one. The table keeps its allocation.
    fn spill(&mut self) -> std::io::Result<()> {
        let mut fresh: Vec<(u64, [u64; 2])> = self.mem.drain().collect();
        fresh.sort_unstable_by_key(|(digest, _)| *digest);
        let old_len = self.run.as_ref().map_or(0, |r| r.len);
        let len = old_len + fresh.len();
        let file = tempfile::tempfile()?;
        let mut out = BufWriter::with_capacity(1 << 16, &file);
        let mut fences = Vec::with_capacity(len.div_ceil(BLOCK));
        let mut bloom = vec![[0u64; 8]; (len * BLOOM_BITS).div_ceil(512)];
        let mut written = 0usize;
        let mut emit = |digest: u64, tag: [u64; 2]| -> std::io::Result<()> {
            if written % BLOCK == 0 {
                fences.push(digest);
            }
            bloom_insert(&mut bloom, digest);
            let mut entry = [0u8; ENTRY];
            entry[0..8].copy_from_slice(&digest.to_le_bytes());
            entry[8..16].copy_from_slice(&tag[0].to_le_bytes());
            entry[16..24].copy_from_slice(&tag[1].to_le_bytes());
            written += 1;
            out.write_all(&entry)
        };
        let mut fresh = fresh.into_iter().peekable();
        if let Some(run) = &self.run {
            let mut chunk = vec![0u8; BLOCK * ENTRY * 16];
            let mut done = 0usize;
            while done < run.len {
                let n = (run.len - done).min(BLOCK * 16);
                let bytes = &mut chunk[..n * ENTRY];
                run.file.read_exact_at(bytes, (done * ENTRY) as u64)?;
                for entry in bytes.chunks_exact(ENTRY) {
                    let (digest, tag) = decode(entry);
                    while let Some(&(d, t)) = fresh.peek().filter(|(d, _)| *d < digest) {
                        emit(d, t)?;
                        fresh.next();
                    }
                    emit(digest, tag)?;
                }
                done += n;
            }
        }
        for (d, t) in fresh {
            emit(d, t)?;
        }
        out.flush()?;
        drop(out);
        self.run = Some(Run {
            file,
            len,
            fences,
            bloom,
        });
        Ok(())
    }
}

impl Run {
    /// The tag that holds `digest` in this run, if any.
    fn get(&self, digest: u64) -> std::io::Result<Option<[u64; 2]>> {
        if !bloom_contains(&self.bloom, digest) {
            return Ok(None);
        }
        let block = match self.fences.partition_point(|&first| first <= digest) {
            0 => return Ok(None),
            n => n - 1,
        };
        let start = block * BLOCK;
        let n = (self.len - start).min(BLOCK);
        let mut buf = [0u8; BLOCK * ENTRY];
        let bytes = &mut buf[..n * ENTRY];
        self.file.read_exact_at(bytes, (start * ENTRY) as u64)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (d, tag) = decode(&bytes[mid * ENTRY..(mid + 1) * ENTRY]);
            match d.cmp(&digest) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(tag)),
            }
        }
        Ok(None)
    }
}

fn decode(entry: &[u8]) -> (u64, [u64; 2]) {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&entry[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    (word(0), [word(1), word(2)])
}

/// The block and the six bit positions of `digest` in a blocked Bloom filter of `blocks`
/// blocks. The digest is remixed first: the part index took some of its bits.
fn bloom_bits(blocks: usize, digest: u64) -> (usize, [u32; 6]) {
    let mut h = digest ^ (digest >> 31);
    h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    let block = ((u128::from(h) * blocks as u128) >> 64) as usize;
    let mut g = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    g ^= g >> 32;
    let mut bits = [0u32; 6];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = ((g >> (i * 9)) & 511) as u32;
    }
    (block, bits)
}

fn bloom_insert(bloom: &mut [[u64; 8]], digest: u64) {
    let (block, bits) = bloom_bits(bloom.len(), digest);
    for bit in bits {
        bloom[block][(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

fn bloom_contains(bloom: &[[u64; 8]], digest: u64) -> bool {
    if bloom.is_empty() {
        return false;
    }
    let (block, bits) = bloom_bits(bloom.len(), digest);
    bits.iter()
        .all(|bit| bloom[block][(bit / 64) as usize] & (1 << (bit % 64)) != 0)
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
        assert_eq!(set.claim(1, [1, 1]), Ok(Claim::New));
        assert_eq!(set.claim(1, [1, 1]), Ok(Claim::Same));
        assert_eq!(set.claim(1, [2, 2]), Ok(Claim::Taken));
        assert_eq!(set.claim(u64::MAX, [2, 2]), Ok(Claim::New));
    }

    /// A spilling set answers every claim as an unbounded map does: random claims, many of
    /// them repeated (Same) or by another input (Taken), with parts that spill every few
    /// claims, so most answers come from runs merged many times.
    #[test]
    fn a_spilling_set_answers_as_an_unbounded_map() {
        let set = UniqueSet::new();
        let mut model: HashMap<u64, [u64; 2]> = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut digests = Vec::new();
        for i in 0..60_000u64 {
            let r = next();
            // A fresh digest most of the time; else an old one, claimed again by its holder
            // or by another input. Digests spread over all parts, and a few land in one part.
            let digest = match r % 10 {
                0..=5 => r.rotate_left(17),
                6 | 7 if !digests.is_empty() => digests[(r >> 8) as usize % digests.len()],
                8 => (r & 0xFFFF_FFFF) | (7 << 32),
                _ => r ^ i,
            };
            digests.push(digest);
            let input = if r % 3 == 0 {
                [r, 1]
            } else {
                model.get(&digest).copied().unwrap_or([i, 2])
            };
            let expected = match model.get(&digest) {
                Some(holder) if *holder == input => Claim::Same,
                Some(_) => Claim::Taken,
                None => {
                    model.insert(digest, input);
                    Claim::New
                }
            };
            assert_eq!(set.claim_with(digest, input, 37), Ok(expected), "claim {i}");
        }
        let spilled: usize = set
            .parts
            .iter()
            .map(|p| lock(p).run.as_ref().map_or(0, |r| r.len))
            .sum();
        assert!(spilled > model.len() / 2, "the runs were exercised");
        // Everything is still there, and still answers Same for its holder.
        for (digest, holder) in &model {
            assert_eq!(set.claim_with(*digest, *holder, 37), Ok(Claim::Same));
            assert_eq!(
                set.claim_with(*digest, [holder[0] ^ 1, holder[1]], 37),
                Ok(Claim::Taken)
            );
        }
    }

    #[test]
    fn bloom_has_no_false_negatives() {
        let mut bloom = vec![[0u64; 8]; 20];
        let digests: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for &d in &digests {
            bloom_insert(&mut bloom, d);
        }
        assert!(digests.iter().all(|&d| bloom_contains(&bloom, d)));
        let false_positives = (5000..15_000u64)
            .filter(|i| bloom_contains(&bloom, i.wrapping_mul(0xD6E8_FEB8_6659_FD93)))
            .count();
        assert!(false_positives < 500, "{false_positives} false positives");
        assert!(!bloom_contains(&[], 1));
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
        assert_eq!(a.claim(7, [0, 1]), Ok(Claim::New));
        let stats = registry.stats();
        assert_eq!(stats.sets, 1);
        assert_eq!(stats.values, 1);
        assert!(stats.bytes > 0);
        assert_eq!(stats.disk_bytes, 0);
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
