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
//! `max_storage` caps the restored table data (heap + TOAST, and indexes with
//! `include_indexes`). With it, the key pass also counts the following tables that need no
//! key table ([`tally`]) and measures every row it reads, so the plan's rows are counted and
//! its bytes priced by the rows' own size ([`estimate`]); when the plan is over the cap,
//! every root's sample is scaled down by the same factor (binary search) until it fits,
//! [`decide::HEADROOM`] under it. The refresh measures what it loaded and, when that is over
//! the cap anyway, applies `max_storage_policy` ([`storage`]); a rescale plans again
//! ([`rescale`]) with the model calibrated by that load. The report shows planned and
//! restored.
//!
//! Rows of a following table that reference nothing in the tables it follows (NULL) are
//! sampled at the rate of the root it follows, by the same keyed hash, unless `orphans:
//! keep`.

pub mod decide;
pub mod estimate;
pub mod filter;
pub mod graph;
pub mod key_pass;
pub mod keys;
pub mod sample;
pub mod storage;
pub mod tally;

use std::collections::BTreeMap;
use std::sync::Arc;

use self::decide::{Sizing, Subset};
use self::filter::RowFilter;
use self::keys::{KeyHasher, Selector};
use self::storage::StoragePlan;
use crate::catalog::{Catalog, QualifiedName, Table};
use crate::db::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::secret::Secret;

pub use self::decide::decide;
pub use self::sample::{DEFAULT_MAX_KEY_MEMORY, SampleSettings, StorageCap};

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
    /// Heap + TOAST.
    pub estimated_bytes: u64,
    /// Its indexes (estimated only with `max_storage`).
    pub estimated_index_bytes: u64,
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
    /// What `max_storage` counts of the plan, when it is set.
    pub storage: Option<StoragePlan>,
    /// What planning again after a load that missed needs (with `max_storage`).
    pub replan: Option<Arc<Replan>>,
}

/// The decisions and the model of a plan with `max_storage`, kept for [`rescale`].
#[derive(Debug)]
pub struct Replan {
    pub subset: Subset,
    pub sizing: Sizing,
    pub factor: f64,
    /// The snapshot's clock the windows were measured from.
    pub now: Option<String>,
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
    /// How the planned sizes were made: `measured` (rows counted and measured by the key
    /// pass, with `max_storage`) or `catalog` (the source catalog's sizes and row estimates).
    pub estimate: String,
    pub tables: BTreeMap<String, TableSample>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableSample {
    pub reason: String,
    pub base_rows: Option<u64>,
    pub pulled_rows: Option<u64>,
    pub planned_rows: u64,
    pub planned_bytes: u64,
    pub planned_index_bytes: u64,
    /// The rate its orphans (rows whose references to what it follows are NULL) are sampled
    /// at; absent when they are kept, or it follows nothing.
    pub orphan_rate: Option<f64>,
    /// Of the planned rows, orphans (counted only for tallied tables).
    pub planned_orphans: Option<u64>,
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
                        estimated_index_bytes: 0,
                        filter: None,
                        source_where: None,
                    },
                )
            })
            .collect();
        Plan {
            tables,
            ..Plan::default()
        }
    }
}

/// Makes the plan from the decisions ([`decide()`]; `None`: every table whole): reads the key
/// columns inside the snapshot (and the sources' sizes, with `max_storage`), solves, fits
/// `max_storage`, builds the row filters.
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
    let sizes = if subset.measure {
        Some(key_pass::read_sizes(snapshot, catalog).await?)
    } else {
        None
    };
    let sizing = Sizing {
        sizes,
        ..Sizing::default()
    };
    let context = Context {
        catalog,
        settings,
        snapshot,
        secret,
        jobs,
    };
    plan(&context, subset, sizing, now, Error::Usage).await
}

/// What every planning needs besides the decisions and the model.
struct Context<'a> {
    catalog: &'a Catalog,
    settings: &'a SampleSettings,
    snapshot: &'a Snapshot,
    secret: &'a Secret,
    jobs: usize,
}

/// Plans again after a load that came out over `max_storage`: the model calibrated by what
/// the load measured per table (`measured`: heap + TOAST of each leaf), the roots below the
/// last factor, the key pass read again in the same snapshot. A plan that cannot fit any more
/// is a runtime failure (the configuration was fine; this data does not fit).
#[allow(clippy::too_many_arguments)]
pub async fn rescale(
    catalog: &Catalog,
    settings: &SampleSettings,
    last: &Plan,
    measured: &BTreeMap<QualifiedName, u64>,
    counted: u64,
    snapshot: &Snapshot,
    secret: &Secret,
    jobs: usize,
) -> Result<Plan> {
    let (Some(replan), Some(cap)) = (&last.replan, &settings.storage) else {
        return Err(Error::Runtime(
            "sample.max_storage: a plan without a cap cannot be rescaled".into(),
        ));
    };
    let planned: BTreeMap<QualifiedName, u64> = last
        .tables
        .iter()
        .map(|(n, t)| (n.clone(), t.estimated_bytes))
        .collect();
    let model = estimate::Estimator {
        sizes: replan.sizing.sizes.clone(),
        ..estimate::Estimator::default()
    };
    let calibration = storage::calibrate(
        catalog,
        &planned,
        measured,
        |name| model.fixed(catalog, name, true).0,
        &replan.sizing.calibration,
    );
    // Below the last factor by at least the share the load was over, so each rescale makes
    // progress even where the calibration sees nothing to learn.
    let over = cap.allowed() as f64 / counted.max(1) as f64;
    let sizing = Sizing {
        sizes: replan.sizing.sizes.clone(),
        calibration,
        ceiling: replan.factor * over.min(0.99),
    };
    let context = Context {
        catalog,
        settings,
        snapshot,
        secret,
        jobs,
    };
    plan(
        &context,
        &replan.subset,
        sizing,
        replan.now.clone(),
        Error::Runtime,
    )
    .await
}

/// The key pass, the fit and the assembly; `cannot_fit` makes the error of a cap that cannot
/// be met.
async fn plan(
    context: &Context<'_>,
    subset: &Subset,
    sizing: Sizing,
    now: Option<String>,
    cannot_fit: fn(String) -> Error,
) -> Result<Plan> {
    let Context {
        catalog,
        settings,
        snapshot,
        secret,
        jobs,
    } = *context;
    let hasher = KeyHasher::default();
    let key = crate::transform::key::Key::new(secret.expose().as_bytes());
    let selector = Selector::new(key.domain(b"restage-sample"));
    let mut pass = key_pass::read_keys(
        subset.key_reads(catalog, settings, sizing.sizes.as_ref(), now.as_deref()),
        snapshot,
        &hasher,
        &selector,
        settings.max_key_memory,
        jobs,
    )
    .await?;
    let fitted = subset
        .fit(catalog, settings.storage.as_ref(), &mut pass, &sizing)
        .map_err(cannot_fit)?;
    let keys = subset.freeze(hasher, pass.tables);
    let mut plan = subset.assemble(catalog, settings, &fitted, &keys, &selector, now.as_deref());
    if settings.storage.is_some() {
        plan.replan = Some(Arc::new(Replan {
            subset: subset.clone(),
            sizing,
            factor: fitted.factor,
            now,
        }));
    }
    Ok(plan)
}
