//! `sample.max_storage` during the build: the data stage run under the cap, and the cap
//! checked again on what was restored, before anything goes live.
//!
//! - While COPY runs, with `max_storage_policy: fail`, the size of the database being built
//!   is watched (`pg_database_size` counts the files of tables still inside their load
//!   transaction, which `pg_table_size` from another session cannot see): once the loaded data
//!   passes the cap and its tolerance, the load stops there.
//! - After the load, each table's real size (`pg_table_size`: heap + TOAST) is measured, with
//!   the indexes projected from the plan when they count. Over the cap and its tolerance,
//!   the policy applies: `rescale` plans again with the model calibrated by what was
//!   measured (the roots scaled further down, the key pass read again in the same snapshot),
//!   empties the sampled tables and loads them again, at most
//!   [`MAX_RESCALES`](crate::plan::storage::MAX_RESCALES) times; `fail` stops the run;
//!   `warn` goes on and says so.
//! - After the post-load steps (derived columns, indexes), [`check_restored`] measures
//!   again: over the cap then, the source snapshot is already released, so `rescale` cannot
//!   reload any more and the run stops as `fail` does (`warn` goes on and says so).
//!
//! A run that stops here drops the half-built database; staging is unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName};
use crate::config::MaxStoragePolicy;
use crate::db::DbError;
use crate::db::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::plan::storage::{self, MAX_RESCALES, Miss, Rescale, StorageReport};
use crate::plan::{self, Decision, Plan, StorageCap};
use crate::progress::{DataProgress, Ui};
use crate::report::TableReport;
use crate::rules::BoundRules;
use crate::units::human_bytes;

use super::copy::{self, CopyJob, JobResult};
use super::prepare;
use super::settings::Settings;

/// How often the size of the database being built is read while COPY runs.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// What the build needs to load (and reload) the tables.
pub struct Loader<'a> {
    pub settings: &'a Settings,
    pub catalog: &'a Catalog,
    pub rules: &'a BoundRules,
    /// The build's verification in the stream: the jobs of a reload after a rescale take
    /// their table's checks from it, as the first jobs did (see [`super::verify`]).
    pub verifier: &'a Arc<super::verify::StreamVerifier>,
    pub snapshot: &'a Arc<Snapshot>,
    pub pool: &'a deadpool_postgres::Pool,
    /// The staging server, for errors.
    pub server: &'a str,
    pub ui: &'a Ui,
    /// Where each finished job's table is announced (the per-table post-data builds of
    /// [`super::post_data`]); dropped with the loader, which ends those builds' wait.
    pub table_done: Option<tokio::sync::mpsc::UnboundedSender<QualifiedName>>,
}

/// What the data stage loaded.
pub struct Loaded {
    pub results: Vec<JobResult>,
    /// The plan the tables hold in the end, when a rescale replaced the first one.
    pub replanned: Option<Plan>,
    /// The cap's section of the report, when there is a cap.
    pub storage: Option<StorageReport>,
    pub warnings: Vec<String>,
}

impl Loader<'_> {
    /// Runs the copy jobs of `plan` and holds the restored tables to its cap.
    pub async fn load(&self, plan: &Plan, jobs: Vec<CopyJob>) -> Result<Loaded> {
        let Some(storage_plan) = plan.storage else {
            return Ok(Loaded {
                results: self.copy_in_waves(jobs, None).await?,
                replanned: None,
                storage: None,
                warnings: vec![],
            });
        };
        let cap = storage_plan.cap;
        let mut report = StorageReport::planned(&storage_plan);
        let mut warnings = Vec::new();
        let watch = (cap.policy == MaxStoragePolicy::Fail).then_some(&cap);
        let mut results = self.copy_in_waves(jobs, watch.map(|c| (c, plan))).await?;
        let mut replanned: Option<Plan> = None;
        loop {
            let current = replanned.as_ref().unwrap_or(plan);
            let measured = self.measure().await?;
            let (counted, misses) = counted(&cap, current, &measured);
            report.restored_bytes = Some(counted);
            let Err(message) = storage::judge(&cap, counted, &misses) else {
                break;
            };
            match cap.policy {
                MaxStoragePolicy::Fail => {
                    return Err(Error::Runtime(format!(
                        "{message} (max_storage_policy: fail); staging was not swapped (unchanged)"
                    )));
                }
                MaxStoragePolicy::Warn => {
                    report.over = true;
                    let w = format!("{message}; it goes live anyway (max_storage_policy: warn)");
                    tracing::warn!("{w}");
                    warnings.push(w);
                    break;
                }
                MaxStoragePolicy::Rescale if report.rescaled.len() >= MAX_RESCALES => {
                    return Err(Error::Runtime(format!(
                        "{message}, after {} rescales; staging was not swapped (unchanged)",
                        report.rescaled.len()
                    )));
                }
                MaxStoragePolicy::Rescale => {
                    let next = self.replan(current, &measured, counted).await?;
                    let reloaded = self.reload(&next, &mut results).await?;
                    let (before, after) = (
                        current.storage.map(|s| s.factor).unwrap_or(1.0),
                        next.storage.map(|s| s.factor).unwrap_or(1.0),
                    );
                    let w = format!(
                        "{message}; the roots were scaled from {:.1}% to {:.1}% and {reloaded} sampled tables loaded again (max_storage_policy: rescale)",
                        before * 100.0,
                        after * 100.0
                    );
                    tracing::warn!("{w}");
                    warnings.push(w);
                    report.rescaled.push(Rescale {
                        measured_bytes: counted,
                        factor_before: before,
                        factor_after: after,
                        tables_reloaded: reloaded,
                    });
                    report.planned_bytes = next.storage.map(|s| s.planned_bytes).unwrap_or(0);
                    replanned = Some(next);
                }
            }
        }
        Ok(Loaded {
            results,
            replanned,
            storage: Some(report),
            warnings,
        })
    }

    /// The first load. In hybrid mode in two waves: the generated tables that reference
    /// copied ones wait until those are loaded and their keys read (see
    /// [`super::generated`]).
    async fn copy_in_waves(
        &self,
        jobs: Vec<CopyJob>,
        watch: Option<(&StorageCap, &Plan)>,
    ) -> Result<Vec<JobResult>> {
        let Some(synthesis) = &self.settings.synthetic else {
            return self.copy(jobs, watch).await;
        };
        let later = synthesis.load_later();
        if later.is_empty() {
            return self.copy(jobs, watch).await;
        }
        let (second, first): (Vec<CopyJob>, Vec<CopyJob>) =
            jobs.into_iter().partition(|j| later.contains(&j.table));
        let mut results = self.copy(first, watch).await?;
        {
            let client = self.client().await?;
            synthesis.loaded(&client, self.server).await?;
        }
        results.extend(self.copy(second, watch).await?);
        Ok(results)
    }

    /// The copy jobs, all at once; with `watch`, stopped as soon as the database being built
    /// holds more than the cap allows.
    async fn copy(
        &self,
        jobs: Vec<CopyJob>,
        watch: Option<(&StorageCap, &Plan)>,
    ) -> Result<Vec<JobResult>> {
        let total_bytes: u64 = jobs.iter().map(|j| j.estimated_bytes).sum();
        let progress = Arc::new(DataProgress::new(self.ui, jobs.len(), total_bytes));
        let run = copy::run(
            jobs,
            self.snapshot.clone(),
            self.pool.clone(),
            self.server.to_string(),
            self.settings.jobs,
            progress.clone(),
            self.table_done.clone(),
        );
        let results = match watch {
            None => run.await.map_err(|e| Error::Runtime(e.to_string()))?,
            Some((cap, plan)) => {
                let baseline = self.database_size().await?;
                let indexes = projected_indexes(cap, plan);
                tokio::select! {
                    results = run => results.map_err(|e| Error::Runtime(e.to_string()))?,
                    stop = self.watch(cap, baseline, indexes) => return Err(stop),
                }
            }
        };
        if let Ok(progress) = Arc::try_unwrap(progress) {
            progress.finish();
        }
        Ok(results)
    }

    /// Returns (the error to stop with) once the data loaded passes what the cap allows.
    async fn watch(&self, cap: &StorageCap, baseline: u64, indexes: u64) -> Error {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let size = match self.database_size().await {
                Ok(size) => size,
                Err(e) => return e,
            };
            let loaded = size.saturating_sub(baseline) + indexes;
            if loaded > cap.allowed() {
                return Error::Runtime(format!(
                    "sample.max_storage: the database being built held {} ({}) while loading, over the cap of {}; stopped (max_storage_policy: fail); staging was not swapped (unchanged)",
                    human_bytes(loaded),
                    cap.counts(),
                    human_bytes(cap.limit)
                ));
            }
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            Error::Runtime(format!(
                "{}: connecting to the new database: {e}",
                self.server
            ))
        })
    }

    async fn database_size(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(|e| DbError::new(self.server, "measuring the new database", e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Heap + TOAST of every table of the new database, as loaded.
    async fn measure(&self) -> Result<BTreeMap<QualifiedName, u64>> {
        let client = self.client().await?;
        Ok(table_sizes(&client, self.server)
            .await?
            .into_iter()
            .map(|(name, (table, _))| (name, table))
            .collect())
    }

    /// The plan again, fitted with what the load measured.
    async fn replan(
        &self,
        last: &Plan,
        measured: &BTreeMap<QualifiedName, u64>,
        counted: u64,
    ) -> Result<Plan> {
        let secret = self.settings.rules.secret.clone().unwrap_or_default();
        plan::rescale(
            self.catalog,
            &self.settings.sample,
            last,
            measured,
            counted,
            self.snapshot,
            &secret,
            self.settings.jobs,
        )
        .await
    }

    /// Empties the sampled tables and loads them again with `next`; their results replace
    /// the earlier ones. Returns how many tables were loaded again.
    async fn reload(&self, next: &Plan, results: &mut Vec<JobResult>) -> Result<usize> {
        let sampled: BTreeSet<QualifiedName> = next
            .tables
            .values()
            .filter(|t| t.decision == Decision::Subset)
            .map(|t| t.table.clone())
            .collect();
        if sampled.is_empty() {
            return Ok(0);
        }
        let names: Vec<String> = sampled.iter().map(|n| n.sql()).collect();
        self.client()
            .await?
            .batch_execute(&format!("TRUNCATE ONLY {}", names.join(", ")))
            .await
            .map_err(|e| DbError::new(self.server, "emptying the sampled tables", e))?;
        let jobs: Vec<CopyJob> = prepare::copy_jobs(
            self.catalog,
            self.rules,
            Some(self.verifier),
            next,
            self.settings,
        )
        .into_iter()
        .filter(|j| sampled.contains(&j.table))
        .collect();
        let again = self.copy(jobs, None).await?;
        results.retain(|r| !sampled.contains(&r.table));
        results.extend(again);
        Ok(sampled.len())
    }
}

/// The indexes a plan projects, when the cap counts them (they are built after the load).
fn projected_indexes(cap: &StorageCap, plan: &Plan) -> u64 {
    if cap.include_indexes {
        plan.tables.values().map(|t| t.estimated_index_bytes).sum()
    } else {
        0
    }
}

/// What the cap counts of a load (`measured`: heap + TOAST per table), and each planned
/// table's miss.
fn counted(
    cap: &StorageCap,
    plan: &Plan,
    measured: &BTreeMap<QualifiedName, u64>,
) -> (u64, Vec<Miss>) {
    let tables: u64 = plan
        .tables
        .keys()
        .map(|n| measured.get(n).copied().unwrap_or(0))
        .sum();
    let misses = plan
        .tables
        .values()
        .map(|t| Miss {
            table: t.table.to_string(),
            planned: t.estimated_bytes,
            measured: measured.get(&t.table).copied().unwrap_or(0),
        })
        .collect();
    (tables + projected_indexes(cap, plan), misses)
}

/// Heap + TOAST (`pg_table_size`) and indexes (`pg_indexes_size`) of every table of the
/// database `client` is connected to.
pub async fn table_sizes(
    client: &Client,
    server: &str,
) -> Result<BTreeMap<QualifiedName, (u64, u64)>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid), pg_indexes_size(c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "measuring the new tables", e))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let bytes = |i: usize| row.get::<_, i64>(i).max(0) as u64;
            (
                QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                (bytes(2), bytes(3)),
            )
        })
        .collect())
}

/// The cap on the database as it will go live (after the derived columns and the indexes):
/// fills in what was restored. Over the cap and its tolerance, the run stops — the source
/// snapshot is released by now, so there is nothing to rescale with — unless the policy is
/// `warn`, which adds a warning instead.
pub fn check_restored(
    report: &mut StorageReport,
    cap: &StorageCap,
    tables: &[TableReport],
    warnings: &mut Vec<String>,
) -> Result<()> {
    let counted: u64 = tables
        .iter()
        .map(|t| {
            t.table_bytes
                + if cap.include_indexes {
                    t.index_bytes
                } else {
                    0
                }
        })
        .sum();
    report.restored_bytes = Some(counted);
    let counts = |table: u64, indexes: u64| {
        if cap.include_indexes {
            table + indexes
        } else {
            table
        }
    };
    let misses: Vec<Miss> = tables
        .iter()
        .map(|t| Miss {
            table: t.table.clone(),
            planned: counts(t.estimated_bytes, t.estimated_index_bytes),
            measured: counts(t.table_bytes, t.index_bytes),
        })
        .collect();
    let Err(message) = storage::judge(cap, counted, &misses) else {
        return Ok(());
    };
    if cap.policy == MaxStoragePolicy::Warn {
        if !report.over {
            let w = format!("{message}; it goes live anyway (max_storage_policy: warn)");
            tracing::warn!("{w}");
            warnings.push(w);
        }
        report.over = true;
        return Ok(());
    }
    Err(Error::Runtime(format!(
        "{message}, measured after the indexes and derived columns were built (too late to rescale: the source snapshot is released); staging was not swapped (unchanged)"
    )))
}

/// The report's planned lines after a rescale: each table's planned rows, bytes and reason
/// from the plan it was loaded with in the end.
pub fn replan_lines(lines: &mut [TableReport], plan: &Plan) {
    let planned: BTreeMap<String, &crate::plan::TablePlan> = plan
        .tables
        .values()
        .map(|t| (t.table.to_string(), t))
        .collect();
    for line in lines.iter_mut() {
        if let Some(t) = planned.get(&line.table) {
            let empty = t.decision == Decision::Empty;
            line.sample = t.reason.clone();
            line.estimated_rows = if empty { 0 } else { t.estimated_rows };
            line.estimated_bytes = t.estimated_bytes;
            line.estimated_index_bytes = t.estimated_index_bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TablePlan;
    use crate::plan::storage::StoragePlan;

    fn cap(policy: MaxStoragePolicy, include_indexes: bool) -> StorageCap {
        StorageCap {
            limit: 1_000_000,
            include_indexes,
            tolerance: 0.0,
            policy,
        }
    }

    fn line(table: &str, planned: u64, restored: u64, indexes: u64) -> TableReport {
        TableReport {
            table: table.into(),
            estimated_bytes: planned,
            table_bytes: restored,
            index_bytes: indexes,
            ..TableReport::default()
        }
    }

    #[test]
    fn what_goes_live_is_held_to_the_cap() {
        let tables = [
            line("public.a", 500_000, 600_000, 0),
            line("public.b", 300_000, 300_000, 200_000),
        ];
        let plan = StoragePlan {
            cap: cap(MaxStoragePolicy::Rescale, false),
            factor: 1.0,
            planned_bytes: 800_000,
        };
        let mut report = StorageReport::planned(&plan);
        let mut warnings = vec![];
        // Heap + TOAST: 900 kB fits.
        check_restored(&mut report, &plan.cap, &tables, &mut warnings).unwrap();
        assert_eq!(report.restored_bytes, Some(900_000));
        // With the indexes: 1.1 MB does not, and it is too late to rescale.
        let with_indexes = cap(MaxStoragePolicy::Rescale, true);
        let err = check_restored(&mut report, &with_indexes, &tables, &mut warnings).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let text = err.to_string();
        assert!(
            text.starts_with("sample.max_storage: the restored tables take 1.0 MiB (heap + TOAST + indexes), over the cap of 976.6 KiB; bigger than planned: public.b (planned 293.0 KiB, restored 488.3 KiB)"),
            "{text}"
        );
        assert!(
            text.ends_with("staging was not swapped (unchanged)"),
            "{text}"
        );
        // warn goes live, once said.
        let warn = cap(MaxStoragePolicy::Warn, true);
        check_restored(&mut report, &warn, &tables, &mut warnings).unwrap();
        check_restored(&mut report, &warn, &tables, &mut warnings).unwrap();
        assert!(report.over);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn a_load_counts_the_planned_tables_and_the_projected_indexes() {
        let mut plan = Plan::default();
        for (name, bytes, indexes) in [("a", 100, 10), ("b", 200, 20)] {
            let q = QualifiedName::new("public", name);
            plan.tables.insert(
                q.clone(),
                TablePlan {
                    table: q,
                    decision: Decision::Subset,
                    reason: String::new(),
                    estimated_rows: 1,
                    estimated_bytes: bytes,
                    estimated_index_bytes: indexes,
                    filter: None,
                    source_where: None,
                },
            );
        }
        let measured = BTreeMap::from([
            (QualifiedName::new("public", "a"), 150),
            (QualifiedName::new("public", "b"), 200),
            (QualifiedName::new("public", "unplanned"), 9999),
        ]);
        let (n, misses) = counted(&cap(MaxStoragePolicy::Fail, false), &plan, &measured);
        assert_eq!(n, 350);
        assert_eq!(misses[0].measured, 150);
        let (n, _) = counted(&cap(MaxStoragePolicy::Fail, true), &plan, &measured);
        assert_eq!(n, 380);
    }
}
