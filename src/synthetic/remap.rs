//! Hybrid mode: the references of copied rows to generated parents, remapped onto the
//! generated parents' keys as the rows go through the row stage (a [`RowFilter`] that wraps
//! the subset's filter, if any, and rewrites the referencing fields).
//!
//! Deterministic: the generated parent is picked by a keyed hash of the reference's fields as
//! production printed them (all columns of a composite key together), so rows that shared a
//! parent in production share one in staging, and two runs pick the same. A reference with a
//! NULL column is left as it is (a NULL reference stays NULL; MATCH SIMPLE does not check a
//! partly NULL one either). The subset's decisions come first: a row the subset drops is
//! dropped, a reference it nulls stays NULL.

use std::sync::Arc;

use super::model::Model;
use super::values::hash;
use crate::copy_text;
use crate::plan::filter::RowFilter;

/// One foreign key of a copied table whose parent is generated.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The constraint, for messages.
    pub name: String,
    /// Positions of the referencing columns in the copied row.
    pub positions: Vec<usize>,
    /// The generated parent (a unit of the model) and its referenced columns (indexes of
    /// its model columns), in the order of `positions`.
    pub parent: usize,
    pub parent_columns: Vec<usize>,
    /// The key of the pick (seed, table, constraint).
    pub key: u64,
}

/// The row filter of a copied table that references generated parents.
#[derive(Debug)]
pub struct Remap {
    /// The subset's filter of the table, when it has one.
    pub inner: Option<Arc<dyn RowFilter>>,
    pub model: Arc<Model>,
    pub references: Vec<Reference>,
}

/// A stable hash of raw fields (FNV-1a, each field ended by a byte no text holds there).
fn fields_hash(fields: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for field in fields {
        for &b in field.iter().chain(std::iter::once(&0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl Remap {
    /// The generated parent row that a reference whose fields are `fields` points at; None
    /// when it holds a NULL (left as it is) or the parent has no rows (nulled).
    pub fn parent_row(&self, reference: &Reference, fields: &[&[u8]]) -> Option<u64> {
        if fields.iter().any(|f| copy_text::is_null(f)) {
            return None;
        }
        let rows = self.model.rows(reference.parent);
        if rows == 0 {
            return None;
        }
        Some(hash(reference.key, fields_hash(fields), 3) % rows)
    }
}

impl RowFilter for Remap {
    fn keep(&self, fields: &[&[u8]], set_null: &mut Vec<usize>) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.keep(fields, set_null))
    }

    fn rewrite(&self, fields: &[&[u8]], out: &mut Vec<(usize, Vec<u8>)>) {
        if let Some(inner) = &self.inner {
            inner.rewrite(fields, out);
        }
        let mut value = String::new();
        let mut key_fields: Vec<&[u8]> = Vec::with_capacity(4);
        for reference in &self.references {
            key_fields.clear();
            for &p in &reference.positions {
                match fields.get(p) {
                    Some(f) => key_fields.push(f),
                    None => break,
                }
            }
            if key_fields.len() != reference.positions.len() {
                continue;
            }
            if key_fields.iter().any(|f| copy_text::is_null(f)) {
                continue;
            }
            let Some(row) = self.parent_row(reference, &key_fields) else {
                // A generated parent with no rows: the (nullable) reference is nulled.
                for &position in &reference.positions {
                    out.push((position, copy_text::NULL.to_vec()));
                }
                continue;
            };
            for (&position, &column) in reference.positions.iter().zip(&reference.parent_columns) {
                value.clear();
                let mut bytes = Vec::with_capacity(16);
                if self.model.value(reference.parent, column, row, &mut value) {
                    copy_text::encode(&value, &mut bytes);
                } else {
                    bytes.extend_from_slice(copy_text::NULL);
                }
                out.push((position, bytes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_fields_hash_alike_and_field_boundaries_count() {
        assert_eq!(fields_hash(&[b"1", b"23"]), fields_hash(&[b"1", b"23"]));
        assert_ne!(fields_hash(&[b"1", b"23"]), fields_hash(&[b"12", b"3"]));
        assert_ne!(fields_hash(&[b"1"]), fields_hash(&[b"2"]));
    }
}
