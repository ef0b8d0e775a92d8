//! The sampling planner: which rows of each table reach staging.
//!
//! From the `sample:` section of restage.yaml ([`sample`]), the foreign-key [`graph`] and
//! `max_storage`, it decides per table: the whole table, nothing (`rows: 0`), or a subset in
//! which every foreign key still holds. Tables with a spec are *roots*; tables that reference
//! subsetted tables *follow* them; all others are copied whole.
//!
//! Two halves. The decisions are pure ([`decide`](mod@decide)): the part of each table, the key tables it
//! needs, the memory bound, the fixed point ([`keys::solve`]), the scaling to `max_storage`,
//! the row filters ([`filter`]). The I/O is one narrow pass over the key columns of the
//! tables that need it (roots, and tables that other subsetted tables reference), inside the
//! same snapshot as the data ([`key_pass`]). Nothing is written to production: no temporary
//! tables, no functions.
//!
//! `max_storage` caps the restored table data (heap + TOAST): bytes per row are estimated from
//! the source catalog, and when the plan is over the cap, every root's sample is scaled down
//! by the same factor (binary search) until it fits. The report shows planned and actual.

pub mod decide;
pub mod filter;
pub mod graph;
pub mod key_pass;
pub mod keys;
pub mod sample;

use std::collections::BTreeMap;
use std::sync::Arc;

use self::decide::Subset;
use self::filter::RowFilter;
use self::keys::{KeyHasher, Selector};
use crate::catalog::{Catalog, QualifiedName, Table};
use crate::db::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::secret::Secret;

pub use self::decide::decide;
pub use self::sample::{DEFAULT_MAX_KEY_MEMORY, SampleSettings};

/// How a table's rows are chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// Every row.
    Whole,
    /// No row (`rows: 0`): the table exists in staging, empty.
    Empty,
    /// A subset.
    Subset,
}

/// The plan for one table that holds rows.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub decision: Decision,
    /// Why, in words: `whole`, `root: percent 10 (…)`, `follows public.users via fk`.
    pub reason: String,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// Row filter applied in the transform stage.
    pub filter: Option<Arc<dyn RowFilter>>,
    /// Condition pushed down to the source query.
    pub source_where: Option<String>,
}

/// The plan for every table that holds rows, and the sample summary for the report.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tables: BTreeMap<QualifiedName, TablePlan>,
    pub summary: Option<SampleSummary>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SampleSummary {
    pub max_storage: Option<u64>,
    /// The factor roots were scaled by to fit `max_storage` (1 when they fit as asked).
    pub scale: f64,
    pub planned_bytes: u64,
    pub key_tables: usize,
    pub key_rows: u64,
    pub key_memory_bytes: u64,
    pub tables: BTreeMap<String, TableSample>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableSample {
    pub reason: String,
    pub base_rows: Option<u64>,
    pub pulled_rows: Option<u64>,
    pub planned_rows: u64,
    pub planned_bytes: u64,
}

/// The planner's row estimate for a table, never negative (-1 means never analyzed: guess
/// from the size at ~100 bytes a row).
pub fn estimated_rows(table: &Table) -> u64 {
    if table.estimated_rows >= 0.0 {
        table.estimated_rows as u64
    } else {
        table.bytes / 100
    }
}

impl Plan {
    /// Every table whole: the plan without a `sample:` section.
    pub fn whole(catalog: &Catalog) -> Plan {
        let tables = catalog
            .data_tables()
            .map(|t| {
                (
                    t.name.clone(),
                    TablePlan {
                        table: t.name.clone(),
                        decision: Decision::Whole,
                        reason: "whole".to_string(),
                        estimated_rows: estimated_rows(t),
                        estimated_bytes: t.bytes,
                        filter: None,
                        source_where: None,
                    },
                )
            })
            .collect();
        Plan {
            tables,
            summary: None,
        }
    }
}

/// Makes the plan from the decisions ([`decide()`]; `None`: every table whole): reads the key
/// columns inside the snapshot, solves, fits `max_storage`, builds the row filters.
pub async fn build(
    catalog: &Catalog,
    settings: &SampleSettings,
    subset: Option<&Subset>,
    snapshot: &Snapshot,
    secret: &Secret,
    jobs: usize,
) -> Result<Plan> {
    let Some(subset) = subset else {
        return Ok(Plan::whole(catalog));
    };
    // The window cutoff, once, from the snapshot's clock.
    let now = if decide::needs_clock(settings) {
        Some(key_pass::read_clock(snapshot).await?)
    } else {
        None
    };
    let hasher = KeyHasher::default();
    let key = crate::transform::key::Key::new(secret.expose().as_bytes());
    let selector = Selector::new(key.domain(b"restage-sample"));
    let mut tables = key_pass::read_keys(
        subset.key_reads(settings, now.as_deref()),
        snapshot,
        &hasher,
        &selector,
        settings.max_key_memory,
        jobs,
    )
    .await?;
    let fitted = subset
        .fit(catalog, settings.max_storage, &mut tables)
        .map_err(Error::Usage)?;
    let keys = subset.freeze(hasher, tables);
    Ok(subset.assemble(catalog, settings, &fitted, &keys, now.as_deref()))
}
