//! The shared instance of every transform whose output is drawn from a seed: it derives the
//! seed of a value, lets the family's generator draw from it, cuts the output to the column's
//! limit, and, under `unique`, claims the output in the run's registry (re-deriving with a
//! counter when another input holds it).

use std::fmt;
use std::sync::Arc;

use fake::rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::key::Domain;
use super::params::Keyed;
use super::text::truncate_chars;
use super::unique::{Claim, UniqueSet, input_tag, output_digest};
use super::{Output, Transform, TransformError};

/// How many outputs one input may try under `unique` before giving up. A generator with a
/// large output space almost never needs a second one; many attempts mean the space (or the
/// column's length limit) is too small for the column's distinct values.
pub(crate) const MAX_ATTEMPTS: u32 = 64;

/// The random source of one value: a ChaCha8 stream seeded with the value's HMAC seed. The
/// stream algorithm is fixed (rand_chacha's ChaCha8), so outputs do not change with the
/// platform.
pub(crate) struct Draw {
    seed: [u8; 32],
    rng: ChaCha8Rng,
}

impl Draw {
    pub fn new(seed: [u8; 32]) -> Draw {
        Draw {
            seed,
            rng: ChaCha8Rng::from_seed(seed),
        }
    }

    /// The seed itself (the HMAC of the value), for transforms that print it (`hash`, `uuid`).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The stream, for `fake` generators.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        self.rng.random_range(0..n)
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `items` (not empty).
    pub fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len() as u64) as usize]
    }

    /// Replaces `#` with a digit and `^` with a non-zero digit; other characters are copied.
    pub fn numerify(&mut self, format: &str, out: &mut String) {
        for c in format.chars() {
            match c {
                '#' => out.push((b'0' + self.below(10) as u8) as char),
                '^' => out.push((b'1' + self.below(9) as u8) as char),
                c => out.push(c),
            }
        }
    }
}

/// A family's generator: writes the fake for one seed.
pub(crate) trait Generate: Send + Sync + fmt::Debug + 'static {
    /// Writes the output for `draw` into `out` (empty on entry). `attempt` is 0 for the
    /// natural output and counts retries under `unique`: a generator may widen its space with
    /// it (longer numbers) so a retry is less likely to clash again. `input` is there for
    /// generators whose output keeps part of the input's shape (a network prefix, a date's
    /// format); it must never be copied to the output.
    fn generate(
        &self,
        draw: &mut Draw,
        attempt: u32,
        input: &str,
        out: &mut String,
    ) -> Result<(), TransformError>;

    /// True when an empty string stays empty: it carries nothing, and a fake in its place
    /// would turn "no email" into an email. `hash` says false: it hashes everything.
    fn keeps_empty(&self) -> bool {
        true
    }
}

/// A seeded transform bound to a column.
pub(crate) struct Seeded<G> {
    generator: G,
    domain: Domain,
    retry: Domain,
    max_len: Option<usize>,
    unique: Option<Arc<UniqueSet>>,
}

impl<G: fmt::Debug> fmt::Debug for Seeded<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seeded")
            .field("generator", &self.generator)
            .field("max_len", &self.max_len)
            .field("unique", &self.unique.as_ref().map(|u| u.is_active()))
            .finish()
    }
}

impl<G: Generate> Seeded<G> {
    pub fn new(generator: G, keyed: Keyed, max_len: Option<usize>) -> Seeded<G> {
        Seeded {
            generator,
            domain: keyed.domain,
            retry: keyed.retry,
            max_len,
            unique: keyed.unique,
        }
    }

    /// Packs `new` into the trait object the catalogue hands out.
    pub fn arc(generator: G, keyed: Keyed, max_len: Option<usize>) -> Arc<dyn Transform> {
        Arc::new(Seeded::new(generator, keyed, max_len))
    }

    fn produce(
        &self,
        seed: [u8; 32],
        attempt: u32,
        value: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let mut draw = Draw::new(seed);
        self.generator.generate(&mut draw, attempt, value, out)?;
        if let Some(max) = self.max_len {
            truncate_chars(out, max);
        }
        Ok(())
    }

    /// Claims `out` for this input; on a clash, re-derives with a counter until an output is
    /// free or already this input's. Same input, same sequence of candidates: an input that
    /// comes back finds its own claim at the same step.
    fn claim(
        &self,
        set: &UniqueSet,
        seed: &[u8; 32],
        value: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let tag = input_tag(seed);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                out.clear();
                let retry_seed = self.retry.seed_with_counter(attempt, value.as_bytes());
                self.produce(retry_seed, attempt, value, out)?;
            }
            let claim = set.claim(output_digest(out), tag);
            match claim.map_err(TransformError::new)? {
                Claim::New | Claim::Same => {
                    if attempt > 0 {
                        set.note_resolved_clash();
                    }
                    return Ok(());
                }
                Claim::Taken => continue,
            }
        }
        out.clear();
        Err(TransformError::new(format!(
            "unique: no free value after {MAX_ATTEMPTS} attempts; the transform's output space \
             (or the column's length limit) is too small for this many distinct values"
        )))
    }
}

impl<G: Generate> Transform for Seeded<G> {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        if value.is_empty() && self.generator.keeps_empty() {
            return Ok(Output::Value);
        }
        let seed = self.domain.seed(value.as_bytes());
        self.produce(seed, 0, value, out)?;
        if let Some(set) = self.unique.as_deref().filter(|set| set.is_active()) {
            self.claim(set, &seed, value, out)?;
        }
        Ok(Output::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_a_function_of_the_seed() {
        let mut a = Draw::new([1; 32]);
        let mut b = Draw::new([1; 32]);
        let mut c = Draw::new([2; 32]);
        let xs: Vec<u64> = (0..8).map(|_| a.below(1000)).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.below(1000)).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.below(1000)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert_eq!(a.below(1), 0);
        assert_eq!(a.below(0), 0);
    }

    #[test]
    fn numerify_fills_digits() {
        let mut d = Draw::new([3; 32]);
        let mut out = String::new();
        d.numerify("^##-x#", &mut out);
        assert_eq!(out.len(), 6);
        let bytes = out.as_bytes();
        assert!((b'1'..=b'9').contains(&bytes[0]));
        assert!(
            bytes[1].is_ascii_digit() && bytes[2].is_ascii_digit() && bytes[5].is_ascii_digit()
        );
        assert_eq!(&out[3..5], "-x");
    }
}
