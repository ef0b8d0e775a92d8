//! The refresh pipeline, stage by stage, in a fixed order ([`run`] reads as this list):
//!
//! 1. [`settings`] resolved from the config (nothing touched yet); the [`lock`] taken on the
//!    target;
//! 2. plan: the [`checks`] sequence — one read-only exported
//!    [`snapshot`](crate::db::snapshot) of the source, the [`crate::catalog`] read in it, the
//!    rules bound and checked, strict mode, the sampling [`crate::plan`], the staging server's
//!    checks — then the copy jobs ([`prepare`](mod@prepare)); any problem stops the run here,
//!    before anything is created;
//! 3. clean: leftovers of runs that died removed ([`generations::clean`]);
//! 4. [`build`](mod@build): a new database created (`building`, its name reserved in the
//!    [`registry`] first); [`schema`] pre-data restored; [`copy`] streams every table
//!    through [`rows`], held to `max_storage` ([`storage`]: measured, rescaled and
//!    reloaded, or stopped), each plain table's indexes, keys and ANALYZE built as soon as
//!    its data is in, while others still copy ([`post_data`]); [`sequences`] set; the
//!    post-load order ([`reindex::post_load`]: derived columns, post-data with the foreign
//!    keys validated, materialized views, indexes, ANALYZE); [`access`] grants; [`verify`]
//!    (no leak, foreign keys);
//! 5. [`swap`](mod@swap): the new database goes live in one transaction (a bounded,
//!    interruptible wait for locks first); old generations beyond `keep` dropped
//!    ([`generations::retain`]);
//! 6. the cache flushed and [`warm`]ed;
//! 7. the report, assembled from what the stages returned.
//!
//! The [`lock`] (in the staging database's control database, with the [`registry`]) is
//! taken before step 2 and held to the end.
//!
//! [`live`] holds the commands that work on the live staging database alone (`verify`,
//! `warm`, `reindex`, `generations`, `rollback`).
//!
//! Until step 5 commits the live staging database is untouched. Any failure, Ctrl-C or
//! SIGTERM before that drops the database this run built; a SIGKILL leaves it recorded as
//! `building` by a dead run, and the next refresh removes it. Only the swap's COMMIT is not
//! interruptible. A failure after it (the cache, retention, the report file) is exit 5:
//! staging is live, but.

pub mod access;
pub mod build;
pub mod checks;
pub mod constraints;
pub mod copy;
pub mod foreign;
pub mod generated;
pub mod generations;
pub mod live;
pub mod lock;
pub mod names;
pub mod pause;
pub mod post_data;
pub mod prepare;
pub mod registry;
pub mod reindex;
pub mod rows;
pub mod schema;
pub mod sequences;
pub mod settings;
pub mod source_database;
pub mod storage;
pub mod swap;
pub mod verify;
pub mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use tokio_postgres::Client;

use futures_util::FutureExt;

use crate::config::Config;
use crate::db::{self, Role};
use crate::error::{Error, Result, exit};
use crate::progress::{Stage, Ui};
use crate::report::{Report, StageTiming, TableReport, Totals};

use self::build::Built;
use self::generations::Cleaned;
use self::lock::RunLock;
use self::schema::PgTools;
use self::swap::SwapOutcome;

pub use self::live::{
    GenerationsArgs, RollbackArgs, generations, reindex_live, rollback, verify_live,
    verify_live_reported, warm_live, warm_live_reported,
};
pub use self::prepare::{Prepared, row_plan};
pub use self::settings::{CacheSettings, Settings};

/// `restage refresh` options.
#[derive(Debug, clap::Args, Default, Clone)]
pub struct RefreshArgs {
    /// Print the plan (tables, rules, sample sizes, estimated bytes) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Copy columns that look personal but have no rule, for this run only (said in the report).
    #[arg(long)]
    pub allow_unclassified: bool,
    /// Let this run retire a `target.database` restage did not build: it is kept as a
    /// generation, pinned until `restage generations --unpin` (see `target.adopt`).
    #[arg(long)]
    pub adopt: bool,
}

/// `restage refresh`.
pub async fn refresh(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<i32> {
    let finished = refresh_reported(config, args, ui).await;
    finished.print_outcome();
    finished.result
}

/// What `restage refresh` ended with: its report (a failed run's short one too) and its exit
/// code or error, for what is told of the run afterwards (metrics, notifications).
pub struct Finished {
    pub report: Report,
    pub result: Result<i32>,
}

impl Finished {
    /// The last line of a run that finished with a non-zero exit code of its own (staging
    /// live, but …); an error is printed by `main`. Last, after whatever is logged of the run
    /// afterwards, so it stays the last line of stderr.
    pub fn print_outcome(&self) {
        if matches!(self.result, Ok(code) if code != 0) {
            crate::output::errln!("restage: {}", self.report.outcome);
        }
    }
}

/// `restage refresh`, returning the report with the result; the caller prints the outcome
/// ([`Finished::print_outcome`]).
pub async fn refresh_reported(config: &Config, args: &RefreshArgs, ui: &Ui) -> Finished {
    refresh_reported_with(Settings::from_config(config, "refresh"), args, ui).await
}

/// [`refresh_reported`] with settings resolved by the caller (`restage generate` gives a
/// [`generated::Synthesis`] and, with a schema archive, its own source).
pub async fn refresh_reported_with(
    settings: Result<Settings>,
    args: &RefreshArgs,
    ui: &Ui,
) -> Finished {
    let started_at = chrono::Utc::now().to_rfc3339();
    let failed_report = |e: &Error| Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at: started_at.clone(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        dry_run: args.dry_run,
        outcome: format!("failed: {e}"),
        exit_code: e.exit_code(),
        ..Report::default()
    };
    // A report path that cannot be written is the command line's mistake: found before
    // anything is done, not after staging went live.
    if let Some(path) = &args.report
        && let Err(e) = check_report_path(path)
    {
        return Finished {
            report: failed_report(&e),
            result: Err(e),
        };
    }
    let mut report = match match settings {
        Ok(settings) => run_settings(settings, args, ui).await,
        Err(e) => Err(e),
    } {
        Ok(report) => report,
        Err(e) => {
            // A failed run replaces the report file too: left in place, last night's success
            // would be what monitoring reads. Best effort: the error is what matters.
            let failed = failed_report(&e);
            if let Some(path) = &args.report
                && let Err(io) = std::fs::write(path, failed.to_json())
            {
                tracing::warn!(path = %path.display(), error = %io, "could not write the report");
            }
            return Finished {
                report: failed,
                result: Err(e),
            };
        }
    };
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        if report.built.is_none() {
            return Finished {
                report,
                result: Err(Error::io(
                    format!("writing the report to {}", path.display()),
                    e,
                )),
            };
        }
        live_but(
            &mut report,
            format!("the report could not be written to {}: {e}", path.display()),
        );
    }
    if ui.json {
        crate::output::outln!("{}", report.to_json());
    } else if ui.verbosity >= 0 || args.dry_run {
        crate::output::out!("{}", report.to_text());
    }
    let result = Ok(report.exit_code);
    Finished { report, result }
}

/// Opens (creating it when missing, never truncating it) the report file: exit 2 when it
/// cannot be, with nothing done.
fn check_report_path(path: &std::path::Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| {
            Error::Usage(format!(
                "--report {}: cannot write it: {e} (nothing was changed)",
                path.display()
            ))
        })
}

/// Staging is live, but `problem`: exit 5, with every such problem in the outcome.
fn live_but(report: &mut Report, problem: String) {
    if report.exit_code == exit::LIVE_BUT {
        report.outcome.push_str(&format!("; and {problem}"));
    } else {
        report.outcome = format!(
            "staging database {} is live, but {problem}",
            report.database
        );
        report.exit_code = exit::LIVE_BUT;
    }
}

/// Runs a refresh (or only plans it with `--dry-run`) and returns the report.
pub async fn run(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<Report> {
    run_settings(Settings::from_config(config, "refresh")?, args, ui).await
}

/// [`run`] with the settings resolved.
pub async fn run_settings(mut settings: Settings, args: &RefreshArgs, ui: &Ui) -> Result<Report> {
    let started = Started::now();
    settings.target.adopt |= args.adopt;

    if args.dry_run {
        let stage = Stage::start(ui, "plan");
        let prepared = plan(&settings, args.allow_unclassified).await?;
        let planned = Planned::of(&prepared, stage.done().as_secs_f64());
        return Ok(planned_report(&settings, started, planned));
    }

    // The lock first: a second run must stop before it reads or changes anything.
    let admin = db::connect(&settings.target.admin, Role::Target).await?;
    let lock = lock::acquire(&admin, &settings.target, "refresh").await?;
    let result = locked(&admin, &lock, &settings, args, ui, started).await;
    let outcome = match &result {
        Ok(report) => report.outcome.clone(),
        Err(e) => format!("failed: {e}"),
    };
    lock.finish(Some(&admin), &outcome).await;
    result
}

/// The refresh, with the lock held.
async fn locked(
    admin: &Client,
    lock: &RunLock,
    settings: &Settings,
    args: &RefreshArgs,
    ui: &Ui,
    started: Started,
) -> Result<Report> {
    // SIGINT and SIGTERM are handled from here on: until the swap's COMMIT they stop the run
    // and remove what it created; after it, the run ends as soon as it can (exit 5).
    let mut shutdown = crate::signal::Shutdown::new()
        .map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let mut signal = std::pin::pin!(shutdown.wait());

    let stage = Stage::start(ui, "plan");
    let (prepared, tools, source_database) = tokio::select! {
        result = plan_on_staging(admin, settings, args.allow_unclassified) => result?,
        signal = &mut signal => return Err(Error::Interrupted {
            signal,
            outcome: "nothing was changed".into(),
        }),
    };
    // The snapshot's time, read once: the registry records it with the generation, the
    // report and the run records carry it.
    let snapshot_at = snapshot_time(&prepared).await;
    let mut planned = Planned::of(&prepared, stage.done().as_secs_f64());
    planned.snapshot_at = snapshot_at.map(|t| t.to_rfc3339());

    // From here on the target changes.
    let cleaned = generations::clean(lock, true).await?;
    let building = generations::reserve_building(lock, snapshot_at).await?;
    let created_and_built = async {
        let locale_warning =
            generations::create_building(lock, &building, &source_database.locale).await?;
        let mut built =
            build::build(settings, prepared, &tools, &building, &source_database, ui).await?;
        built.warnings.splice(0..0, locale_warning);
        Ok::<_, Error>(built)
    };
    let built = tokio::select! {
        result = created_and_built => result,
        signal = &mut signal => Err(Error::Interrupted {
            signal,
            outcome: "the half-built database was removed, staging is unchanged".into(),
        }),
    };
    let built = match built {
        Ok(built) => built,
        Err(e) => return Err(abandon(lock, &building, e).await),
    };

    // A required cache must be reachable before staging changes.
    if let Err(e) = require_cache(settings.cache.as_ref()).await {
        return Err(abandon(lock, &building, e).await);
    }
    pause::point("before-swap").await;

    let stage = Stage::start(ui, "swap");
    let outcome = swap_built(lock, admin, &building, &settings.target, &mut signal).await?;
    let swap_seconds = stage.done().as_secs_f64();

    // Staging is live. A signal that came during the COMMIT is acted on now.
    let mut after = AfterSwap::default();
    if let Some(signal) = (&mut signal).now_or_never() {
        after.interrupted = Some(signal);
    }
    let mut generations_dropped = Vec::new();
    match after.interrupted {
        None => match generations::retain(lock, settings.target.keep).await {
            Ok(dropped) => generations_dropped = dropped,
            Err(e) => after
                .problems
                .push(format!("the generations beyond keep were not dropped: {e}")),
        },
        Some(signal) => after.problems.push(format!(
            "the run was interrupted by {signal} after the swap: the generations beyond keep were not dropped (the next refresh drops them)"
        )),
    }
    let swapped = Swapped {
        outcome,
        seconds: swap_seconds,
        generations_dropped,
    };

    let warmed = match &settings.cache {
        Some(_) if after.interrupted.is_some() => Some(Warmed {
            result: Err(Error::Runtime(format!(
                "interrupted by {}",
                after.interrupted.unwrap_or("a signal")
            ))),
            seconds: 0.0,
        }),
        Some(cache) => {
            let stage = Stage::start(ui, "cache");
            let result = tokio::select! {
                result = async {
                    pause::point("warm").await;
                    warm::flush_and_warm(&settings.target, cache).await
                } => result,
                signal = &mut signal => Err(Error::Runtime(format!("interrupted by {signal}"))),
            };
            Some(Warmed {
                result,
                seconds: stage.done().as_secs_f64(),
            })
        }
        None => None,
    };

    let mut report = refresh_report(
        settings, started, planned, cleaned, building, built, swapped, warmed,
    );
    report.run_id = Some(lock.run_id.clone());
    for problem in after.problems {
        live_but(&mut report, problem);
    }
    Ok(report)
}

/// What went wrong after the swap (staging is live: exit 5).
#[derive(Default)]
struct AfterSwap {
    /// A signal that arrived during the COMMIT.
    interrupted: Option<&'static str>,
    problems: Vec<String>,
}

/// When the source snapshot was taken (the start of its transaction).
pub(crate) async fn snapshot_time(prepared: &Prepared) -> Option<chrono::DateTime<chrono::Utc>> {
    prepared.snapshot.taken_at().await.ok()
}

/// When the run started, for the report.
struct Started {
    at: String,
    clock: Instant,
}

impl Started {
    fn now() -> Started {
        Started {
            at: chrono::Utc::now().to_rfc3339(),
            clock: Instant::now(),
        }
    }
}

/// What the report takes from the plan stage.
struct Planned {
    snapshot: String,
    /// When the snapshot was taken (RFC 3339), when the source could say.
    snapshot_at: Option<String>,
    tables: Vec<TableReport>,
    sample: Option<serde_json::Value>,
    /// `max_storage` as planned.
    storage: Option<serde_json::Value>,
    unclassified: Vec<String>,
    warnings: Vec<String>,
    seconds: f64,
}

impl Planned {
    fn of(prepared: &Prepared, seconds: f64) -> Planned {
        Planned {
            snapshot: prepared.snapshot.id.clone(),
            snapshot_at: None,
            tables: prepare::planned_tables(prepared),
            sample: prepared
                .plan
                .summary
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            storage: prepared.plan.storage.as_ref().and_then(|s| {
                serde_json::to_value(crate::plan::storage::StorageReport::planned(s)).ok()
            }),
            unclassified: prepared.unclassified.clone(),
            warnings: prepared.warnings.clone(),
            seconds,
        }
    }
}

/// What the swap did.
struct Swapped {
    outcome: SwapOutcome,
    seconds: f64,
    generations_dropped: Vec<String>,
}

/// What the cache step did: the warm report, or why the cache was not warmed.
struct Warmed {
    result: Result<warm::WarmReport>,
    seconds: f64,
}

/// The plan stage: the check sequence's steps 2–10 and the copy jobs.
pub(crate) async fn plan(settings: &Settings, allow_unclassified: bool) -> Result<Prepared> {
    let checked = checks::inspect(settings, allow_unclassified)
        .await?
        .checked()?;
    let mut prepared = Prepared::new(checked, settings);
    if let Some(synthesis) = &settings.synthetic {
        synthesis.prepare(&mut prepared).await?;
    }
    Ok(prepared)
}

/// The plan stage of a run that builds: also the staging server's checks (step 11), the
/// PostgreSQL tools, and what the new database takes from the source database.
async fn plan_on_staging(
    admin: &Client,
    settings: &Settings,
    allow_unclassified: bool,
) -> Result<(Prepared, PgTools, source_database::SourceDatabase)> {
    let prepared = plan(settings, allow_unclassified).await?;
    let source_database = source_database::read(
        prepared.snapshot.leader(),
        &settings.source.display,
        prepared.catalog.server_version,
    )
    .await?;
    let staging = checks::check_staging(
        admin,
        prepared.snapshot.leader(),
        settings,
        &prepared.catalog,
    )
    .await;
    if let Some(e) = staging.into_iter().next() {
        return Err(e);
    }
    let tools = PgTools::find(prepared.catalog.server_version / 10000).await?;
    pause::point("plan").await;
    Ok((prepared, tools, source_database))
}

/// Removes the database this run reserved or built, after a failure; returns the failure,
/// saying so when the database could not be removed.
/// Swaps `building` in (see [`swap::swap`]); when the swap fails, the database this run
/// built is removed ([`abandon`]) and the error says so. `refresh` and `restore` end with it.
pub(crate) async fn swap_built<S>(
    lock: &RunLock,
    admin: &Client,
    building: &str,
    target: &settings::TargetSettings,
    signal: &mut S,
) -> Result<SwapOutcome>
where
    S: std::future::Future<Output = &'static str> + Unpin,
{
    match swap::swap(
        lock,
        admin,
        building,
        target.adopt,
        target.lock_timeout,
        signal,
    )
    .await
    {
        Ok(outcome) => Ok(outcome),
        Err(mut e) => {
            if let Error::Interrupted { outcome, .. } = &mut e {
                *outcome = "the database this run built was removed, staging is unchanged".into();
            } else if let Error::Runtime(message) = &mut e {
                message.push_str("; the database this run built was removed");
            }
            Err(abandon(lock, building, e).await)
        }
    }
}

pub(crate) async fn abandon(lock: &RunLock, building: &str, mut e: Error) -> Error {
    if let Err(cleanup) = generations::drop_own(lock, building).await {
        tracing::warn!(error = %cleanup, "could not remove the half-built database; the next run will");
        if let Error::Interrupted { outcome, .. } = &mut e {
            *outcome = format!(
                "the half-built database {building} could not be removed (the next run removes it), staging is unchanged"
            );
        }
    }
    e
}

/// With `cache.required`, the cache must answer before staging changes.
pub(crate) async fn require_cache(cache: Option<&CacheSettings>) -> Result<()> {
    if let Some(cache) = cache
        && cache.required
        && let Err(e) = warm::Cache::new(cache.url.clone()).connect().await
    {
        return Err(Error::Runtime(format!(
            "{e}; cache.required is true, so staging was not swapped (unchanged)"
        )));
    }
    Ok(())
}

/// The report of `--dry-run`.
fn planned_report(settings: &Settings, started: Started, planned: Planned) -> Report {
    Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at: started.at,
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: started.clock.elapsed().as_secs_f64(),
        dry_run: true,
        source: settings.source.display.clone(),
        target: settings.target.admin.display.clone(),
        database: settings.target.database.clone(),
        tables: planned.tables,
        stages: vec![stage_timing("plan", planned.seconds)],
        sample: planned.sample,
        storage: planned.storage,
        unclassified_allowed: planned.unclassified,
        warnings: planned.warnings,
        outcome: "plan only: nothing was changed".to_string(),
        ..Report::default()
    }
}

/// The report of a refresh that swapped, from what each stage returned.
#[allow(clippy::too_many_arguments)]
fn refresh_report(
    settings: &Settings,
    started: Started,
    planned: Planned,
    cleaned: Cleaned,
    building: String,
    built: Built,
    swapped: Swapped,
    warmed: Option<Warmed>,
) -> Report {
    let database = &settings.target.database;
    let mut planned_tables = planned.tables;
    let mut sample = planned.sample;
    if let Some(plan) = &built.replanned {
        // A rescale: the plan the tables hold is the last one.
        storage::replan_lines(&mut planned_tables, plan);
        sample = plan
            .summary
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
    }
    let tables = merge_measured(planned_tables, built.tables);
    let mut stages = vec![stage_timing("plan", planned.seconds)];
    stages.extend(built.stages);
    stages.push(stage_timing("swap", swapped.seconds));
    let mut warnings = planned.warnings;
    warnings.extend(built.warnings);
    if cleaned.repaired_live {
        warnings.push(
            "the live database refused connections after an interrupted swap; re-enabled".into(),
        );
    }
    warnings.extend(cleaned.warnings);
    let mut outcome = format!("staging database {database} is live ({building} built)");
    let mut exit_code = exit::OK;
    let mut cache = None;
    if let Some(warmed) = warmed {
        match warmed.result {
            Ok(w) => cache = serde_json::to_value(&w).ok(),
            Err(e) => {
                cache = Some(serde_json::json!({ "warmed": false, "error": e.to_string() }));
                outcome = format!(
                    "staging database {database} is live, but the cache was NOT warmed: {e}"
                );
                exit_code = exit::LIVE_BUT;
            }
        }
        stages.push(stage_timing("cache", warmed.seconds));
    }
    Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at: started.at,
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: started.clock.elapsed().as_secs_f64(),
        dry_run: false,
        source: settings.source.display.clone(),
        target: settings.target.admin.display.clone(),
        database: database.clone(),
        built: Some(building),
        snapshot: Some(planned.snapshot),
        snapshot_at: planned.snapshot_at,
        totals: Totals::of(&tables),
        tables,
        stages,
        sequences_set: built.sequences_set,
        materialized_views_refreshed: built.post_load.materialized_views,
        derived_columns_recomputed: built.post_load.derived_columns,
        verification: serde_json::to_value(&built.verification).ok(),
        swap: serde_json::to_value(&swapped.outcome).ok(),
        generations_dropped: swapped.generations_dropped,
        leftovers_removed: cleaned.leftovers_removed,
        sample,
        storage: built
            .storage
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok()),
        unique: built.unique,
        cache,
        unclassified_allowed: planned.unclassified,
        left_out: built.left_out,
        warnings,
        outcome,
        exit_code,
        ..Report::default()
    }
}

fn stage_timing(stage: &str, seconds: f64) -> StageTiming {
    StageTiming {
        stage: stage.to_string(),
        seconds,
    }
}

/// The planned table lines with what the build measured of each (tables the plan did not
/// name are not reported).
fn merge_measured(mut planned: Vec<TableReport>, measured: Vec<TableReport>) -> Vec<TableReport> {
    let measured: BTreeMap<String, TableReport> =
        measured.into_iter().map(|t| (t.table.clone(), t)).collect();
    for t in planned.iter_mut() {
        if let Some(r) = measured.get(&t.table) {
            t.rows_read = r.rows_read;
            t.rows_written = r.rows_written;
            t.bytes_read = r.bytes_read;
            t.bytes_written = r.bytes_written;
            t.seconds = r.seconds;
            t.retries = r.retries;
            t.table_bytes = r.table_bytes;
            t.index_bytes = r.index_bytes;
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(table: &str, rows_written: u64) -> TableReport {
        TableReport {
            table: table.to_string(),
            rows_written,
            ..TableReport::default()
        }
    }

    #[test]
    fn measured_results_fill_the_planned_lines_only() {
        let mut planned = line("public.users", 0);
        planned.sample = "root: percent 10".into();
        planned.rules.insert("email".into(), "its rule".into());
        let mut measured = line("public.users", 42);
        measured.table_bytes = 8192;
        let tables = merge_measured(
            vec![planned, line("public.empty", 0)],
            vec![measured, line("public.unplanned", 7)],
        );
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].rows_written, 42);
        assert_eq!(tables[0].table_bytes, 8192);
        assert_eq!(
            tables[0].sample, "root: percent 10",
            "the plan's words stay"
        );
        assert_eq!(tables[0].rules.len(), 1);
        assert_eq!(tables[1].table, "public.empty");
        assert_eq!(Totals::of(&tables).rows_written, 42);
    }

    #[test]
    fn a_cache_that_was_not_warmed_is_the_outcome_and_exit_code_5() {
        let config = Config::from_text(
            "source:\n  url: postgres://u@prod.example/app\ntarget:\n  url: postgres://u@staging.example/postgres\n  database: app\n",
            std::path::Path::new("restage.yaml"),
        )
        .expect("the config loads");
        let settings = Settings::from_config(&config, "refresh").expect("and resolves");
        let planned = || Planned {
            snapshot: "00000003-1".into(),
            snapshot_at: None,
            tables: vec![line("public.users", 0)],
            sample: None,
            storage: None,
            unclassified: vec![],
            warnings: vec!["a warning".into()],
            seconds: 0.5,
        };
        let built = || Built {
            tables: vec![line("public.users", 3)],
            stages: vec![stage_timing("data", 1.0)],
            sequences_set: 2,
            post_load: reindex::PostLoaded::default(),
            unique: None,
            warnings: vec![],
            left_out: vec![],
            verification: verify::VerifyReport {
                passed: true,
                ..verify::VerifyReport::default()
            },
            storage: None,
            replanned: None,
        };
        let swapped = || Swapped {
            outcome: SwapOutcome {
                database: "app".into(),
                went_live: "app__restage_20250101T000000_000001Z".into(),
                retired_as: None,
                adopted: false,
                sessions_ended: 0,
                waited_seconds: 0.0,
                swapped_at: "2025-01-01T00:00:01+00:00".into(),
            },
            seconds: 0.1,
            generations_dropped: vec![],
        };
        let cleaned = || Cleaned {
            repaired_live: true,
            leftovers_removed: vec![],
            warnings: vec![],
        };
        let report = refresh_report(
            &settings,
            Started::now(),
            planned(),
            cleaned(),
            "app__restage_20250101T000000_000001Z".into(),
            built(),
            swapped(),
            Some(Warmed {
                result: Err(Error::Runtime("redis: connection refused".into())),
                seconds: 0.2,
            }),
        );
        assert_eq!(report.exit_code, 5);
        assert_eq!(
            report.outcome,
            "staging database app is live, but the cache was NOT warmed: redis: connection refused"
        );
        // A second problem after the swap joins the first; the code stays 5.
        let mut twice = report.clone();
        live_but(
            &mut twice,
            "the report could not be written to /x: denied".into(),
        );
        assert_eq!(twice.exit_code, 5);
        assert!(
            twice
                .outcome
                .ends_with("connection refused; and the report could not be written to /x: denied"),
            "{}",
            twice.outcome
        );
        let stages: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(stages, ["plan", "data", "swap", "cache"]);
        assert_eq!(report.warnings.len(), 2, "the plan's, then the repair's");
        assert_eq!(report.totals.rows_written, 3);

        let report = refresh_report(
            &settings,
            Started::now(),
            planned(),
            cleaned(),
            "app__restage_20250101T000000_000001Z".into(),
            built(),
            swapped(),
            None,
        );
        assert_eq!(report.exit_code, 0);
        assert_eq!(
            report.outcome,
            "staging database app is live (app__restage_20250101T000000_000001Z built)"
        );
        assert!(report.cache.is_none());
    }
}
