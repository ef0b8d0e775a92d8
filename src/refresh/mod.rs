//! The refresh pipeline, stage by stage, in a fixed order ([`run`] reads as this list):
//!
//! 1. [`settings`] resolved from the config (nothing touched yet); the [`lock`] taken on the
//!    target;
//! 2. plan: the [`checks`] sequence — one read-only exported
//!    [`snapshot`](crate::db::snapshot) of the source, the [`crate::catalog`] read in it, the
//!    rules bound and checked, strict mode, the sampling [`crate::plan`], the staging server's
//!    checks — then the copy jobs ([`prepare`](mod@prepare)); any problem stops the run here,
//!    before anything is created;
//! 3. clean: leftovers of earlier failed runs removed;
//! 4. [`build`](mod@build): a new database created (`building`); [`schema`] pre-data
//!    restored; [`copy`] streams every table through [`rows`]; [`sequences`] set; the
//!    post-load order ([`reindex::post_load`]: derived columns, post-data with the foreign
//!    keys validated, materialized views, indexes, ANALYZE); [`access`] grants; [`verify`]
//!    (no leak, foreign keys);
//! 5. [`generations::swap`]: the new database goes live in one transaction; old generations
//!    beyond `keep` dropped;
//! 6. the cache flushed and [`warm`]ed;
//! 7. the report, assembled from what the stages returned.
//!
//! [`live`] holds the commands that work on the live staging database alone (`verify`,
//! `warm`, `reindex`, `generations`, `rollback`).
//!
//! Until step 5 the live staging database is untouched. Any failure, Ctrl-C or SIGTERM before
//! it drops the half-built database; a SIGKILL leaves it marked `building`, and the next run
//! removes it. The swap itself is never interrupted half-way.

pub mod access;
pub mod build;
pub mod checks;
pub mod copy;
pub mod foreign;
pub mod generations;
pub mod live;
pub mod lock;
pub mod pause;
pub mod prepare;
pub mod reindex;
pub mod rows;
pub mod schema;
pub mod sequences;
pub mod settings;
pub mod source_database;
pub mod verify;
pub mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use tokio_postgres::Client;

use crate::config::Config;
use crate::db::{self, Role};
use crate::error::{Error, Result};
use crate::progress::{Stage, Ui};
use crate::report::{Report, StageTiming, TableReport, Totals};

use self::build::Built;
use self::generations::SwapOutcome;
use self::schema::PgTools;

pub use self::live::{RollbackArgs, generations, reindex_live, rollback, verify_live, warm_live};
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
}

/// `restage refresh`.
pub async fn refresh(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<i32> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let report = match run(config, args, ui).await {
        Ok(report) => report,
        Err(e) => {
            // A failed run replaces the report file too: left in place, last night's success
            // would be what monitoring reads. Best effort: the error is what matters.
            if let Some(path) = &args.report {
                let failed = Report {
                    restage_version: env!("CARGO_PKG_VERSION"),
                    started_at,
                    finished_at: chrono::Utc::now().to_rfc3339(),
                    dry_run: args.dry_run,
                    outcome: format!("failed: {e}"),
                    exit_code: e.exit_code(),
                    ..Report::default()
                };
                if let Err(io) = std::fs::write(path, failed.to_json()) {
                    tracing::warn!(path = %path.display(), error = %io, "could not write the report");
                }
            }
            return Err(e);
        }
    };
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json())
            .map_err(|e| Error::io(format!("writing the report to {}", path.display()), e))?;
    }
    if ui.json {
        println!("{}", report.to_json());
    } else if ui.verbosity >= 0 || args.dry_run {
        print!("{}", report.to_text());
    }
    if report.exit_code != 0 {
        eprintln!("restage: {}", report.outcome);
    }
    Ok(report.exit_code)
}

/// Runs a refresh (or only plans it with `--dry-run`) and returns the report.
pub async fn run(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<Report> {
    let started = Started::now();
    let settings = Settings::from_config(config, "refresh")?;

    if args.dry_run {
        let stage = Stage::start(ui, "plan");
        let prepared = plan(&settings, args.allow_unclassified).await?;
        let planned = Planned::of(&prepared, stage.done().as_secs_f64());
        return Ok(planned_report(&settings, started, planned));
    }

    // The lock first: a second run must stop before it reads or changes anything.
    let admin = db::connect(&settings.target.admin, Role::Target).await?;
    let server = settings.target.admin.display.clone();
    lock::acquire(&admin, &server, &settings.target.database).await?;

    // SIGINT and SIGTERM are handled from here on: before the swap they stop the run and
    // remove what it created; during the swap they wait until it is done.
    let mut shutdown = crate::signal::Shutdown::new()
        .map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let mut signal = std::pin::pin!(shutdown.wait());

    let stage = Stage::start(ui, "plan");
    let (prepared, tools, source_database) = tokio::select! {
        result = plan_on_staging(&admin, &settings, args.allow_unclassified) => result?,
        signal = &mut signal => return Err(Error::Interrupted {
            signal,
            outcome: "nothing was changed".into(),
        }),
    };
    let planned = Planned::of(&prepared, stage.done().as_secs_f64());

    // From here on the target changes.
    let cleaned = clean(&admin, &server, &settings.target.database).await?;
    let birth = generations::timestamp(chrono::Utc::now());
    let building = generations::generation_name(&settings.target.database, &birth);
    let created_and_built = async {
        let locale_warning = generations::create_building(
            &admin,
            &server,
            &building,
            &birth,
            &source_database.locale,
        )
        .await?;
        let mut built =
            build::build(&settings, prepared, &tools, &building, &source_database, ui).await?;
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
        Err(e) => return Err(abandon(&admin, &server, &building, e).await),
    };

    // A required cache must be reachable before staging changes.
    if let Err(e) = require_cache(&settings).await {
        let _ = generations::drop_database(&admin, &server, &building).await;
        return Err(e);
    }
    pause::point("before-swap").await;

    // The swap is not interrupted: a signal that arrives now is acted on after it.
    let swapped = swap(&admin, &settings, &building, &birth, ui).await?;

    let warmed = match &settings.cache {
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

    Ok(refresh_report(
        &settings, started, planned, cleaned, building, built, swapped, warmed,
    ))
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
    tables: Vec<TableReport>,
    sample: Option<serde_json::Value>,
    unclassified: Vec<String>,
    warnings: Vec<String>,
    seconds: f64,
}

impl Planned {
    fn of(prepared: &Prepared, seconds: f64) -> Planned {
        Planned {
            snapshot: prepared.snapshot.id.clone(),
            tables: prepare::planned_tables(prepared),
            sample: prepared
                .plan
                .summary
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            unclassified: prepared.unclassified.clone(),
            warnings: prepared.warnings.clone(),
            seconds,
        }
    }
}

/// What the clean-up of earlier runs did.
struct Cleaned {
    /// The live database refused connections after an interrupted swap, and was repaired.
    repaired_live: bool,
    leftovers_removed: Vec<String>,
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
async fn plan(settings: &Settings, allow_unclassified: bool) -> Result<Prepared> {
    let checked = checks::inspect(settings, allow_unclassified)
        .await?
        .checked()?;
    Ok(Prepared::new(checked, settings))
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

/// Repairs a live database an interrupted swap left refusing connections, and removes what
/// earlier failed runs left.
async fn clean(admin: &Client, server: &str, database: &str) -> Result<Cleaned> {
    let repaired_live = generations::repair_live(admin, server, database).await?;
    let leftovers_removed = generations::drop_leftovers(admin, server, database).await?;
    Ok(Cleaned {
        repaired_live,
        leftovers_removed,
    })
}

/// Removes the half-built database after a failed build; returns the build's error, saying
/// so when the database could not be removed.
async fn abandon(admin: &Client, server: &str, building: &str, mut e: Error) -> Error {
    if let Err(cleanup) = generations::drop_database(admin, server, building).await {
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
async fn require_cache(settings: &Settings) -> Result<()> {
    if let Some(cache) = &settings.cache
        && cache.required
        && let Err(e) = warm::Cache::new(cache.url.clone()).connect().await
    {
        return Err(Error::Runtime(format!(
            "{e}; cache.required is true, so staging was not swapped (unchanged)"
        )));
    }
    Ok(())
}

/// Swaps the new database in, then drops the generations beyond `keep`.
async fn swap(
    admin: &Client,
    settings: &Settings,
    building: &str,
    birth: &str,
    ui: &Ui,
) -> Result<Swapped> {
    let server = &settings.target.admin.display;
    let database = &settings.target.database;
    let stage = Stage::start(ui, "swap");
    let now = generations::timestamp(chrono::Utc::now());
    let outcome = match generations::swap(admin, server, database, building, birth, &now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = generations::drop_database(admin, server, building).await;
            return Err(e.into());
        }
    };
    let seconds = stage.done().as_secs_f64();
    let generations_dropped =
        generations::retain(admin, server, database, settings.target.keep).await?;
    Ok(Swapped {
        outcome,
        seconds,
        generations_dropped,
    })
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
    let tables = merge_measured(planned.tables, built.tables);
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
    let mut outcome = format!("staging database {database} is live ({building} built)");
    let mut exit_code = crate::error::exit::OK;
    let mut cache = None;
    if let Some(warmed) = warmed {
        match warmed.result {
            Ok(w) => cache = serde_json::to_value(&w).ok(),
            Err(e) => {
                cache = Some(serde_json::json!({ "warmed": false, "error": e.to_string() }));
                outcome = format!(
                    "staging database {database} is live, but the cache was NOT warmed: {e}"
                );
                exit_code = crate::error::exit::RUNTIME;
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
        sample: planned.sample,
        unique: built.unique,
        cache,
        unclassified_allowed: planned.unclassified,
        left_out: built.left_out,
        warnings,
        outcome,
        exit_code,
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
    fn a_cache_that_was_not_warmed_is_the_outcome_and_exit_code_1() {
        let config = Config::from_text(
            "source:\n  url: postgres://u@prod.example/app\ntarget:\n  url: postgres://u@staging.example/postgres\n  database: app\n",
            std::path::Path::new("restage.yaml"),
        )
        .expect("the config loads");
        let settings = Settings::from_config(&config, "refresh").expect("and resolves");
        let planned = || Planned {
            snapshot: "00000003-1".into(),
            tables: vec![line("public.users", 0)],
            sample: None,
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
        };
        let swapped = || Swapped {
            outcome: SwapOutcome {
                live_birth: "20250101T000000Z".into(),
                retired_as: None,
                sessions_ended: 0,
            },
            seconds: 0.1,
            generations_dropped: vec![],
        };
        let cleaned = || Cleaned {
            repaired_live: true,
            leftovers_removed: vec![],
        };
        let report = refresh_report(
            &settings,
            Started::now(),
            planned(),
            cleaned(),
            "app__restage_20250101T000000Z".into(),
            built(),
            swapped(),
            Some(Warmed {
                result: Err(Error::Runtime("redis: connection refused".into())),
                seconds: 0.2,
            }),
        );
        assert_eq!(report.exit_code, 1);
        assert_eq!(
            report.outcome,
            "staging database app is live, but the cache was NOT warmed: redis: connection refused"
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
            "app__restage_20250101T000000Z".into(),
            built(),
            swapped(),
            None,
        );
        assert_eq!(report.exit_code, 0);
        assert_eq!(
            report.outcome,
            "staging database app is live (app__restage_20250101T000000Z built)"
        );
        assert!(report.cache.is_none());
    }
}
