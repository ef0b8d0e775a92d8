//! Tallies: what the key pass keeps of a following table that needs no key table (no
//! subsetted table references it), so that its planned rows are counted, not guessed from
//! its parents' share. Read only when `max_storage` is set.
//!
//! Per row, only the hashes of its references to the tables it follows, and its weight (see
//! [`super::estimate`]); a row whose references are all NULL (an *orphan*) keeps its
//! selection hash instead, because it is sampled at the root's rate. Counting a plan is then
//! exact whatever the data's shape: a few parents owning most of the rows, mostly-NULL
//! references, wide rows under some parents only. About 8 bytes per reference and 4 per row.

use super::keys::NULL;
use crate::catalog::QualifiedName;

/// Memory per row of a tally, for the `max_key_memory` bound: the weight, and 8 bytes per
/// reference (an orphan's selection hash takes the place of its references).
pub fn bytes_per_row(references: usize) -> u64 {
    4 + 8 * references.max(1) as u64
}

/// The tally of one logical table.
#[derive(Debug, Default)]
pub struct Tally {
    pub name: QualifiedName,
    /// The graph's edge index of each reference, in the order the rows hold them.
    pub edges: Vec<usize>,
    /// References of the rows that have one, `edges.len()` per row.
    refs: Vec<u64>,
    weights: Vec<u32>,
    /// Orphans: (selection hash, weight).
    orphans: Vec<(u64, u32)>,
}

/// What a plan keeps of a tallied table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub rows: u64,
    pub weight: u64,
    /// Of them, orphans.
    pub orphans: u64,
}

impl Tally {
    pub fn new(name: QualifiedName, edges: Vec<usize>) -> Tally {
        Tally {
            name,
            edges,
            ..Tally::default()
        }
    }

    pub fn rows(&self) -> usize {
        self.weights.len() + self.orphans.len()
    }

    /// True when a row with these references is an orphan (and its selection hash is needed).
    pub fn is_orphan(references: &[u64]) -> bool {
        !references.is_empty() && references.iter().all(|r| *r == NULL)
    }

    /// Adds a row: its references (following `edges`), its selection hash (read only for an
    /// orphan), its weight.
    pub fn push(&mut self, references: &[u64], select: u64, weight: u32) {
        if Self::is_orphan(references) {
            self.orphans.push((select, weight));
        } else {
            self.refs.extend_from_slice(references);
            self.weights.push(weight);
        }
    }

    /// Counts the rows a plan keeps: a row with references is kept when every one that is not
    /// NULL points at a kept row (`kept(edge, hash)`); an orphan when its selection hash is
    /// at most `orphans` (`None`: every orphan is kept).
    pub fn count(&self, kept: impl Fn(usize, u64) -> bool, orphans: Option<u64>) -> Count {
        let mut out = Count::default();
        let n = self.edges.len().max(1);
        for (row, weight) in self.weights.iter().enumerate() {
            let refs = &self.refs[row * n..(row + 1) * n];
            let ok = refs
                .iter()
                .zip(&self.edges)
                .all(|(&h, &edge)| h == NULL || kept(edge, h));
            if ok {
                out.rows += 1;
                out.weight += *weight as u64;
            }
        }
        for &(select, weight) in &self.orphans {
            if orphans.is_none_or(|t| select <= t) {
                out.rows += 1;
                out.orphans += 1;
                out.weight += weight as u64;
            }
        }
        out
    }

    /// Sum of every row's weight.
    pub fn weight(&self) -> u64 {
        self.weights.iter().map(|w| *w as u64).sum::<u64>()
            + self.orphans.iter().map(|(_, w)| *w as u64).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_parents_and_sample_the_orphans() {
        // events → users (edge 0): user 1 owns three events, user 2 one; two events have no
        // user, with selection hashes 10 and 90.
        let mut t = Tally::new(QualifiedName::new("public", "events"), vec![0]);
        for _ in 0..3 {
            t.push(&[1], 0, 100);
        }
        t.push(&[2], 0, 100);
        t.push(&[NULL], 10, 50);
        t.push(&[NULL], 90, 50);
        assert_eq!(t.rows(), 6);
        assert_eq!(t.weight(), 500);
        // User 1 kept (the skewed parent), user 2 not; orphans under 50.
        let c = t.count(|_, h| h == 1, Some(50));
        assert_eq!(
            c,
            Count {
                rows: 4,
                weight: 350,
                orphans: 1
            }
        );
        // orphans: keep.
        assert_eq!(t.count(|_, h| h == 2, None).rows, 3);
    }
}
