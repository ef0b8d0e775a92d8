//! Row filters of the data pass: the [`RowFilter`] contract the transform stage calls, and the
//! subset's filter, which decides from a row's raw COPY fields whether it reaches staging,
//! using the key sets the planner solved.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::keys::{KeyHasher, KeyTable, NULL, Selector};
use crate::catalog::QualifiedName;

/// Decides whether a row is kept, from its raw fields (subsetting). Fields are undecoded
/// COPY text, which is what key sets are built from too. Called from any thread, for rows
/// in any order.
pub trait RowFilter: Send + Sync + std::fmt::Debug {
    /// Returns false to drop the row. May push column indexes into `set_null` (a kept row
    /// whose nullable reference points at a row that was not kept).
    fn keep(&self, fields: &[&[u8]], set_null: &mut Vec<usize>) -> bool;

    /// Fields to write in place of a kept row's own, by position, as COPY text (escaped):
    /// hybrid mode's references to generated parents, remapped onto their keys. Called after
    /// [`RowFilter::keep`] kept the row; a field it nulled stays NULL. Default: none.
    fn rewrite(&self, _fields: &[&[u8]], _out: &mut Vec<(usize, Vec<u8>)>) {}
}

/// The solved key tables of a run, read-only during the data pass.
#[derive(Debug, Default)]
pub struct KeySets {
    pub hasher: KeyHasher,
    pub tables: BTreeMap<QualifiedName, KeyTable>,
    /// Subsetted tables with `rows: 0`.
    pub empty: Vec<QualifiedName>,
}

impl KeySets {
    /// Is the row of `table` whose `columns` hash to `key` in staging? Tables without a key
    /// table are whole (true), empty ones are empty (false).
    fn parent_kept(&self, table: &QualifiedName, columns: &[String], key: u64) -> bool {
        if self.empty.contains(table) {
            return false;
        }
        match self.tables.get(table) {
            Some(t) => t.is_kept(columns, key),
            None => true,
        }
    }
}

/// A reference checked in the data pass.
#[derive(Debug, Clone)]
pub struct Reference {
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    /// Positions of the referencing columns in the row.
    pub positions: Vec<usize>,
}

/// The filter of a table: membership in its own key table (roots and referenced tables), and
/// its references (gated ones drop the row, set_null ones are nulled).
#[derive(Debug)]
pub struct SubsetFilter {
    pub keys: Arc<KeySets>,
    /// The table's own key table and the positions of its identity columns, when it has one.
    pub membership: Option<(QualifiedName, Vec<usize>)>,
    /// References that drop the row when they point at a row that is not kept.
    pub gates: Vec<Reference>,
    /// References nulled when they point at a row that is not kept.
    pub set_null: Vec<Reference>,
    /// How a row whose `gates` are all NULL (it follows nothing) is chosen; `None`: kept.
    pub orphans: Option<OrphanSample>,
}

/// Orphans of a table without a key table, sampled by the keyed selection hash of their
/// identity — the hash the key pass gives the same rows, so planned and loaded agree.
#[derive(Debug)]
pub struct OrphanSample {
    pub selector: Selector,
    /// The logical table (the hash's domain).
    pub table: QualifiedName,
    /// Positions of the identity columns in the row.
    pub identity: Vec<usize>,
    /// The selection hash at or under which an orphan is kept.
    pub threshold: u64,
}

impl OrphanSample {
    fn keeps(&self, fields: &[&[u8]]) -> bool {
        let identity: Vec<&[u8]> = self
            .identity
            .iter()
            .filter_map(|&p| fields.get(p).copied())
            .collect();
        self.selector.select(&self.table, &identity) <= self.threshold
    }
}

impl SubsetFilter {
    fn key(&self, fields: &[&[u8]], positions: &[usize]) -> u64 {
        let mut key_fields: Vec<&[u8]> = Vec::with_capacity(positions.len());
        for &p in positions {
            match fields.get(p) {
                Some(f) => key_fields.push(f),
                None => return NULL,
            }
        }
        self.keys.hasher.hash(&key_fields)
    }
}

impl RowFilter for SubsetFilter {
    fn keep(&self, fields: &[&[u8]], set_null: &mut Vec<usize>) -> bool {
        if let Some((table, positions)) = &self.membership {
            let id = self.key(fields, positions);
            let kept = self
                .keys
                .tables
                .get(table)
                .is_some_and(|t| t.is_kept_id(id));
            if !kept {
                return false;
            }
        }
        let mut follows = false;
        for gate in &self.gates {
            let v = self.key(fields, &gate.positions);
            if v != NULL {
                follows = true;
                if !self.keys.parent_kept(&gate.parent, &gate.parent_columns, v) {
                    return false;
                }
            }
        }
        if !follows
            && !self.gates.is_empty()
            && let Some(orphans) = &self.orphans
            && !orphans.keeps(fields)
        {
            return false;
        }
        for r in &self.set_null {
            let v = self.key(fields, &r.positions);
            if v != NULL && !self.keys.parent_kept(&r.parent, &r.parent_columns, v) {
                set_null.extend_from_slice(&r.positions);
            }
        }
        true
    }
}
