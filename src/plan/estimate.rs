//! How many bytes a table will take in staging, given the rows the plan keeps: the model
//! `max_storage` is fitted with. Pure; its inputs are read by [`super::key_pass`].
//!
//! A freshly loaded table is its rows packed into pages, so its size follows the rows' own
//! size far better than their number: a plan that keeps the users with the long profiles
//! keeps more bytes than the same count of short ones. When the cap is set, the key pass
//! measures every row of the tables it reads (the sum of `pg_column_size` of its columns,
//! which reads a TOASTed value's stored size without fetching it), and the model is:
//!
//! ```text
//! bytes(kept) = calibration × variable × weight(kept) / weight(all) + fixed
//! weight(row) = Σ pg_column_size(column) + ROW_OVERHEAD
//!               (+ a pointer and the chunks' overhead for a value stored out of line)
//! variable    = heap + TOAST table + TOAST index of the source, main forks only, less the
//!               TOAST index's meta page
//! fixed       = what an empty table costs (the TOAST index's meta page) and what a loaded
//!               one adds (a visibility map page for the heap, and one for a TOAST table that
//!               holds data: rows are written frozen)
//! ```
//!
//! so page packing, alignment and TOAST chunking are priced at the rate the source shows
//! for that table, and the source's free-space maps (which a fresh load does not have) are
//! left out, and so is the share of dead tuples the statistics report (an updated row's old
//! version is not copied).
//!
//! A table without TOASTed values in the source is measured more exactly: the key pass
//! reads each row's whole tuple size (`pg_column_size` of the row, header and alignment
//! included; cheap when nothing is TOASTed), and the kept tuples are packed into pages
//! ([`tuple_weight`]), whatever free space or dead tuples the source's heap holds. Tables the key pass does not measure take their share of the source by rows.
//! Indexes (`include_indexes`) are priced by rows: the source's index bytes per row, plus a
//! meta page per index. After a load that missed, `calibration` is what the load measured
//! over what the model said, per table (1 before any load).

use std::collections::BTreeMap;

use crate::catalog::{Catalog, QualifiedName};

/// Bytes of a page.
pub const PAGE: u64 = 8192;
/// A heap tuple's header (23 bytes, aligned to 24) and its line pointer (4).
pub const ROW_OVERHEAD: u64 = 28;
/// A page's header.
const PAGE_HEADER: u64 = 24;
/// A tuple's line pointer.
const LINE_POINTER: u64 = 4;

/// One table's storage in the source (a leaf: a partition or an ordinary table).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SourceSize {
    /// The heap's main fork.
    pub heap: u64,
    /// The TOAST table's main fork.
    pub toast: u64,
    /// The TOAST table's index.
    pub toast_index: u64,
    pub has_toast: bool,
    /// The table's own indexes.
    pub indexes: u64,
    pub index_count: u64,
    /// The share of the heap's tuples that are dead (updated or deleted, not vacuumed yet),
    /// from the statistics: their space is not copied.
    pub dead: f64,
    /// The same for the TOAST table.
    pub toast_dead: f64,
}

impl SourceSize {
    /// Heap + TOAST + TOAST index without the dead tuples' share.
    fn live(&self) -> f64 {
        self.heap as f64 * (1.0 - self.dead.clamp(0.0, 1.0))
            + self.toast as f64 * (1.0 - self.toast_dead.clamp(0.0, 1.0))
            + self.toast_index as f64
    }
}

/// Every leaf's [`SourceSize`].
pub type SourceSizes = BTreeMap<QualifiedName, SourceSize>;

/// What the key pass measured of all the rows of a logical table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub rows: u64,
    /// Sum of the rows' weights (see the module header).
    pub weight: u64,
}

/// What the plan keeps of a table: its rows, and their weight when it was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    pub rows: u64,
    pub weight: Option<u64>,
}

/// A table's planned size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Bytes {
    /// Heap + TOAST.
    pub table: u64,
    pub indexes: u64,
}

impl Bytes {
    /// What a cap counts of it.
    pub fn counted(&self, include_indexes: bool) -> u64 {
        if include_indexes {
            self.table + self.indexes
        } else {
            self.table
        }
    }
}

/// The model, for one run.
#[derive(Debug, Clone, Default)]
pub struct Estimator {
    /// The sources' sizes (read only when a cap is set; else the catalog's `pg_table_size`).
    pub sizes: Option<SourceSizes>,
    /// Per logical table, what the key pass measured.
    pub shapes: BTreeMap<QualifiedName, Shape>,
    /// Per logical table, measured over modelled after a load.
    pub calibration: BTreeMap<QualifiedName, f64>,
}

impl Estimator {
    /// The planned size of logical table `name` when the plan keeps `kept` of it.
    pub fn bytes(&self, catalog: &Catalog, name: &QualifiedName, kept: Kept) -> Bytes {
        let shape = self.shapes.get(name);
        let all_rows = shape.map(|s| s.rows).unwrap_or_else(|| {
            catalog
                .leaves(name)
                .iter()
                .map(|t| super::estimated_rows(t))
                .sum()
        });
        let row_share = share(kept.rows, all_rows);
        let weight_share = match (kept.weight, shape) {
            (Some(w), Some(s)) if s.weight > 0 => share(w, s.weight),
            _ => row_share,
        };
        self.price(catalog, name, weight_share, row_share, kept.rows > 0, false)
    }

    /// The planned size of logical table `name` copied whole.
    pub fn whole(&self, catalog: &Catalog, name: &QualifiedName) -> Bytes {
        self.price(catalog, name, 1.0, 1.0, true, true)
    }

    /// `share` of the table's bytes, `row_share` of its index entries; `loaded`: it gets rows;
    /// `whole`: all of them (its indexes are the source's).
    fn price(
        &self,
        catalog: &Catalog,
        name: &QualifiedName,
        share: f64,
        row_share: f64,
        loaded: bool,
        whole: bool,
    ) -> Bytes {
        let leaves = catalog.leaves(name);
        let calibration = self.calibration.get(name).copied().unwrap_or(1.0);
        let Some(sizes) = &self.sizes else {
            let source: u64 = leaves.iter().map(|t| t.bytes).sum();
            return Bytes {
                table: (calibration * source as f64 * share).round() as u64,
                indexes: 0,
            };
        };
        let (mut variable, mut index_pages) = (0.0, 0.0);
        let mut toasted = false;
        for leaf in &leaves {
            let s = sizes.get(&leaf.name).copied().unwrap_or_default();
            let meta = if s.has_toast { PAGE } else { 0 };
            variable += (s.live() - meta as f64).max(0.0);
            toasted |= s.toast > 0;
            if whole {
                index_pages += calibration * s.indexes.saturating_sub(PAGE * s.index_count) as f64
                    / PAGE as f64;
            } else if loaded && s.index_count > 0 {
                // Each index of a loaded table: its share of the source's pages besides the
                // meta page, at least one, half a page lost at its end, and a root page
                // above its leaves once it has more than one.
                let count = s.index_count as f64;
                let each = s.indexes.saturating_sub(PAGE * s.index_count) as f64 * row_share
                    / PAGE as f64
                    / count;
                let root = if each > 1.0 { 1.0 } else { 0.0 };
                index_pages += count * (calibration * each.max(1.0) + 0.5 + root);
            }
        }
        let (fixed, index_fixed) = self.fixed(catalog, name, loaded);
        let variable = match self.shapes.get(name) {
            // Without TOASTed values, the key pass measured whole tuples: the kept ones packed
            // into pages (a page's last tuple fits or waits for the next: half a tuple of
            // space lost per page, and half a page per table at its end), whatever the
            // source's heap holds besides them.
            Some(shape) if !toasted && shape.rows > 0 => {
                if !loaded {
                    0.0
                } else {
                    let average = shape.weight as f64 / shape.rows as f64;
                    let room = (PAGE - PAGE_HEADER) as f64 - average / 2.0;
                    let pages =
                        shape.weight as f64 * share / room.max(1.0) + 0.5 * leaves.len() as f64;
                    pages * PAGE as f64
                }
            }
            _ => variable * share,
        };
        Bytes {
            table: (calibration * variable).round() as u64 + fixed,
            indexes: (index_pages * PAGE as f64).round() as u64 + index_fixed,
        }
    }

    /// What logical table `name` takes whatever rows it holds: the TOAST index's meta page,
    /// and once `loaded`, a visibility map page for the heap and one for a TOAST table that
    /// holds data (rows are written frozen) — and each index's meta page. (table, indexes)
    pub fn fixed(&self, catalog: &Catalog, name: &QualifiedName, loaded: bool) -> (u64, u64) {
        let Some(sizes) = &self.sizes else {
            return (0, 0);
        };
        let (mut table, mut indexes) = (0, 0);
        for leaf in catalog.leaves(name) {
            let s = sizes.get(&leaf.name).copied().unwrap_or_default();
            if s.has_toast {
                table += PAGE;
            }
            if loaded && s.heap > 0 {
                table += PAGE;
                if s.toast > 0 {
                    table += PAGE;
                }
            }
            indexes += PAGE * s.index_count;
        }
        (table, indexes)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).min(1.0)
    }
}

/// The weight of a row of `width` bytes (its columns' `pg_column_size`).
pub fn weight(width: u64) -> u32 {
    (width + ROW_OVERHEAD).min(u32::MAX as u64) as u32
}

/// The weight of a row whose whole tuple takes `length` bytes (`pg_column_size` of the
/// row): the tuple aligned to 8 bytes, and its line pointer — exactly what it takes of a
/// page.
pub fn tuple_weight(length: u64) -> u32 {
    (length.div_ceil(8) * 8 + LINE_POINTER).min(u32::MAX as u64) as u32
}

/// A value stored out of line is cut in chunks of this many bytes.
const TOAST_CHUNK: u64 = 1996;
/// What a TOAST chunk costs besides its data: its tuple's header, line pointer, value id,
/// sequence number and length (40), and its entry in the TOAST index (about 20).
const CHUNK_OVERHEAD: u64 = 60;
/// What stays in the heap of a value stored out of line.
const TOAST_POINTER: u64 = 18;
/// Values stored bigger than this are taken to be out of line (PostgreSQL moves values out
/// of a row longer than about 2 kB, the longest first).
const OUT_OF_LINE: u64 = 2000;

/// The SQL of one column's part of a row's width, for a column expression `column`: its
/// stored size (`pg_column_size`, which reads a TOASTed value's size without fetching it),
/// and for a value stored out of line, what its chunks cost besides their data. NULL: 0.
pub fn column_weight_sql(column: &str) -> String {
    format!(
        "coalesce(CASE WHEN pg_column_size({column}) > {OUT_OF_LINE} \
         THEN pg_column_size({column}) + {TOAST_POINTER} + ceil(pg_column_size({column}) / {TOAST_CHUNK}.0)::int8 * {CHUNK_OVERHEAD} \
         ELSE pg_column_size({column}) END, 0)"
    )
}

/// True when the source holds no TOASTed value of the logical table `name`: the key pass
/// measures its rows' whole tuples, which price it exactly.
pub fn inline(catalog: &Catalog, sizes: &SourceSizes, name: &QualifiedName) -> bool {
    catalog
        .leaves(name)
        .iter()
        .all(|leaf| sizes.get(&leaf.name).is_some_and(|s| s.toast == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Table, TableKind};

    fn q(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    fn catalog(bytes: u64, rows: f64) -> Catalog {
        let t = Table {
            name: q("docs"),
            oid: 0,
            kind: TableKind::Ordinary,
            columns: vec![],
            primary_key: vec![],
            unique_keys: vec![],
            parent: None,
            estimated_rows: rows,
            bytes,
            pages: 1,
        };
        Catalog {
            tables: BTreeMap::from([(t.name.clone(), t)]),
            foreign_keys: vec![],
            sequences: vec![],
            materialized_views: vec![],
            extensions: vec![],
            server_version: 150000,
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
        }
    }

    #[test]
    fn without_measurements_a_table_takes_its_share_of_the_source_by_rows() {
        let e = Estimator::default();
        let b = e.bytes(
            &catalog(100_000, 1000.0),
            &q("docs"),
            Kept {
                rows: 250,
                weight: None,
            },
        );
        assert_eq!(
            b,
            Bytes {
                table: 25_000,
                indexes: 0
            }
        );
    }

    #[test]
    fn measured_rows_are_priced_by_weight_at_the_sources_rate() {
        // 1000 rows: 100 wide ones (weight 10_000 each) and 900 narrow (100 each), stored in
        // 1,090,000 bytes of heap + TOAST (+ the TOAST index's meta page).
        let sizes = SourceSizes::from([(
            q("docs"),
            SourceSize {
                heap: 90_000,
                toast: 992_000,
                toast_index: 8_000 + PAGE,
                has_toast: true,
                indexes: 40_000 + PAGE,
                index_count: 1,
                ..SourceSize::default()
            },
        )]);
        let e = Estimator {
            sizes: Some(sizes),
            shapes: BTreeMap::from([(
                q("docs"),
                Shape {
                    rows: 1000,
                    weight: 1_090_000,
                },
            )]),
            calibration: BTreeMap::new(),
        };
        let cat = catalog(0, 1000.0);
        // The 100 wide rows: 92% of the weight, 10% of the rows.
        let wide = e.bytes(
            &cat,
            &q("docs"),
            Kept {
                rows: 100,
                weight: Some(1_000_000),
            },
        );
        assert_eq!(wide.table, 1_000_000 + 3 * PAGE);
        // 10% of 40 kB of index is under a page: one leaf, half a page at its end, the meta.
        assert_eq!(wide.indexes, PAGE * 5 / 2);
        // The 900 narrow rows.
        let narrow = e.bytes(
            &cat,
            &q("docs"),
            Kept {
                rows: 900,
                weight: Some(90_000),
            },
        );
        assert_eq!(narrow.table, 90_000 + 3 * PAGE);
        // Nothing kept: the empty table still has its TOAST index's meta page, and the index
        // its own.
        let none = e.bytes(
            &cat,
            &q("docs"),
            Kept {
                rows: 0,
                weight: Some(0),
            },
        );
        assert_eq!(
            none,
            Bytes {
                table: PAGE,
                indexes: PAGE
            }
        );
        assert_eq!(none.counted(true), 2 * PAGE);
        assert_eq!(none.counted(false), PAGE);

        // A load that measured 10% more than the model calibrates what grows with the rows.
        let mut e = e;
        e.calibration.insert(q("docs"), 1.1);
        let calibrated = e.bytes(
            &cat,
            &q("docs"),
            Kept {
                rows: 100,
                weight: Some(1_000_000),
            },
        );
        assert_eq!(
            calibrated.table,
            1_100_000 + 3 * PAGE,
            "the fixed pages do not scale"
        );
    }

    #[test]
    fn dead_tuples_and_free_space_are_not_priced() {
        // 1000 rows of weight 100, every one updated once (half the heap's tuples dead).
        let bloated = SourceSize {
            heap: 200 * PAGE,
            dead: 0.5,
            ..SourceSize::default()
        };
        let mut e = Estimator {
            sizes: Some(SourceSizes::from([(q("docs"), bloated)])),
            shapes: BTreeMap::new(),
            calibration: BTreeMap::new(),
        };
        let cat = catalog(0, 1000.0);
        assert_eq!(e.whole(&cat, &q("docs")).table, 100 * PAGE + PAGE);
        // Measured tuples (100 bytes with their line pointers): packed into pages, not the
        // 100 pages the live share of the heap says (free space after a vacuum).
        e.shapes.insert(
            q("docs"),
            Shape {
                rows: 1000,
                weight: 100_000,
            },
        );
        let pages = 100_000.0 / (8168.0 - 50.0) + 0.5;
        assert_eq!(
            e.whole(&cat, &q("docs")).table,
            (pages * PAGE as f64).round() as u64 + PAGE
        );
        assert_eq!(tuple_weight(97), 108);
        assert_eq!(tuple_weight(96), 100);
    }
}
