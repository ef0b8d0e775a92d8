//! The refresh pipeline, stage by stage, in a fixed order:
//!
//! 1. [`settings`] resolved from the config (nothing touched yet); the [`lock`] taken on the
//!    target;
//! 2. [`snapshot`]: one read-only exported snapshot of the source; the [`crate::catalog`] read in it;
//! 3. [`prepare`](mod@prepare): rules bound to the catalog, strict mode checked, the sampling
//!    [`crate::plan`] made, copy jobs built — any problem stops the run here, before anything
//!    is created;
//! 4. leftovers of earlier failed runs removed; a new database created (`building`);
//! 5. [`schema`] pre-data restored; [`copy`] streams every table through [`rows`];
//!    [`sequences`] set; derived columns recomputed ([`reindex`]);
//! 6. [`schema`] post-data (indexes, constraints — foreign keys validated here), materialized
//!    views refreshed, ANALYZE, [`access`] grants, [`verify`] (no leak, foreign keys);
//! 7. [`generations::swap`]: the new database goes live in one transaction; old generations
//!    beyond `keep` dropped; then the cache is flushed and [`warm`]ed.
//!
//! [`live`] holds the commands that work on the live staging database alone (`verify`,
//! `warm`, `reindex`, `generations`, `rollback`).
//!
//! Until step 7 the live staging database is untouched. Any failure, Ctrl-C or SIGTERM before
//! it drops the half-built database; a SIGKILL leaves it marked `building`, and the next run
//! removes it. The swap itself is never interrupted half-way.

pub mod access;
pub mod copy;
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
pub mod snapshot;
pub mod verify;
pub mod warm;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::Client;

use crate::catalog::QualifiedName;
use crate::cli::RefreshArgs;
use crate::config::Config;
use crate::db::{self, DbError, Role};
use crate::error::{Error, Result};
use crate::progress::{DataProgress, Stage, Ui};
use crate::report::{Report, TableReport};

use self::copy::JobResult;

pub use self::live::{generations, reindex_live, rollback, verify_live, warm_live};
pub use self::prepare::{
    Prepared, check_derived, preflight, prepare, row_plan, strict_check, unruled_tsvectors,
};
use self::prepare::{check_target_is_not_source, planned_tables};
pub use self::settings::{CacheSettings, Settings};

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
    let started = Instant::now();
    let settings = Settings::from_config(config, "refresh")?;
    let mut report = Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at: chrono::Utc::now().to_rfc3339(),
        dry_run: args.dry_run,
        source: settings.source.display.clone(),
        target: settings.admin.display.clone(),
        database: settings.database.clone(),
        ..Report::default()
    };

    if args.dry_run {
        let stage = Stage::start(ui, "plan");
        let prepared = prepare(&settings, args.allow_unclassified).await?;
        report.stage("plan", stage.done().as_secs_f64());
        report.tables = planned_tables(&prepared);
        report.sample = prepared
            .plan
            .summary
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
        report.unclassified_allowed = prepared.unclassified.clone();
        report.warnings.extend(prepared.warnings.clone());
        report.outcome = "plan only: nothing was changed".to_string();
        report.seconds = started.elapsed().as_secs_f64();
        report.finished_at = chrono::Utc::now().to_rfc3339();
        return Ok(report);
    }

    // The lock first: a second run must stop before it reads or changes anything.
    let admin = db::connect(&settings.admin, Role::Target).await?;
    lock::acquire(&admin, &settings.admin.display, &settings.database).await?;

    // SIGINT and SIGTERM are handled from here on: before the swap they stop the run and
    // remove what it created; during the swap they wait until it is done.
    let mut signal = std::pin::pin!(shutdown_signal());

    let stage = Stage::start(ui, "plan");
    let planned = async {
        let prepared = prepare(&settings, args.allow_unclassified).await?;
        check_target_is_not_source(&admin, prepared.snapshot.leader(), &settings).await?;
        preflight(&admin, &settings, &prepared.catalog).await?;
        let tools = schema::PgTools::find(prepared.catalog.server_version / 10000).await?;
        pause::point("plan").await;
        Ok::<_, Error>((prepared, tools))
    };
    let (prepared, tools) = tokio::select! {
        result = planned => result?,
        signal = &mut signal => return Err(Error::Interrupted {
            signal,
            outcome: "nothing was changed".into(),
        }),
    };
    report.stage("plan", stage.done().as_secs_f64());
    report.snapshot = Some(prepared.snapshot.id.clone());
    report.sample = prepared
        .plan
        .summary
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    report.unclassified_allowed = prepared.unclassified.clone();
    report.warnings.extend(prepared.warnings.clone());
    let tables = planned_tables(&prepared);

    // From here on the target changes.
    let server = settings.admin.display.clone();
    if generations::repair_live(&admin, &server, &settings.database).await? {
        report.warnings.push(
            "the live database refused connections after an interrupted swap; re-enabled".into(),
        );
    }
    report.leftovers_removed =
        generations::drop_leftovers(&admin, &server, &settings.database).await?;
    let birth = generations::timestamp(chrono::Utc::now());
    let building = generations::generation_name(&settings.database, &birth);
    report.built = Some(building.clone());

    let encoding = prepared.catalog.encoding.clone();
    let collate = prepared.catalog.collate.clone();
    let ctype = prepared.catalog.ctype.clone();
    let created_and_built = async {
        generations::create_building(
            &admin, &server, &building, &birth, &encoding, &collate, &ctype,
        )
        .await?;
        build(&settings, prepared, &tools, &building, ui, &mut report).await
    };
    let outcome = tokio::select! {
        result = created_and_built => result,
        signal = &mut signal => Err(Error::Interrupted {
            signal,
            outcome: "the half-built database was removed, staging is unchanged".into(),
        }),
    };
    if let Err(mut e) = outcome {
        if let Err(cleanup) = generations::drop_database(&admin, &server, &building).await {
            tracing::warn!(error = %cleanup, "could not remove the half-built database; the next run will");
            if let Error::Interrupted { outcome, .. } = &mut e {
                *outcome = format!(
                    "the half-built database {building} could not be removed (the next run removes it), staging is unchanged"
                );
            }
        }
        return Err(e);
    }
    report.merge_measured(tables);

    // A required cache must be reachable before staging changes.
    if let Some(cache) = &settings.cache
        && cache.required
        && let Err(e) = warm::Cache::new(cache.url.clone()).connect().await
    {
        let _ = generations::drop_database(&admin, &server, &building).await;
        return Err(Error::Runtime(format!(
            "{e}; cache.required is true, so staging was not swapped (unchanged)"
        )));
    }
    pause::point("before-swap").await;

    // The swap is not interrupted: a signal that arrives now is acted on after it.
    let stage = Stage::start(ui, "swap");
    let now = generations::timestamp(chrono::Utc::now());
    match generations::swap(&admin, &server, &settings.database, &building, &birth, &now).await {
        Ok(outcome) => {
            report.swap = serde_json::to_value(&outcome).ok();
        }
        Err(e) => {
            let _ = generations::drop_database(&admin, &server, &building).await;
            return Err(e.into());
        }
    }
    report.stage("swap", stage.done().as_secs_f64());
    report.generations_dropped =
        generations::retain(&admin, &server, &settings.database, settings.keep).await?;

    report.outcome = format!(
        "staging database {} is live ({building} built)",
        settings.database
    );
    if let Some(cache) = &settings.cache {
        let stage = Stage::start(ui, "cache");
        let warmed = tokio::select! {
            result = async {
                pause::point("warm").await;
                warm_cache(&settings, cache).await
            } => result,
            signal = &mut signal => Err(Error::Runtime(format!("interrupted by {signal}"))),
        };
        match warmed {
            Ok(w) => report.cache = serde_json::to_value(&w).ok(),
            Err(e) => {
                report.cache = Some(serde_json::json!({ "warmed": false, "error": e.to_string() }));
                report.outcome = format!(
                    "staging database {} is live, but the cache was NOT warmed: {e}",
                    settings.database
                );
                report.exit_code = crate::error::exit::RUNTIME;
            }
        }
        report.stage("cache", stage.done().as_secs_f64());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.finished_at = chrono::Utc::now().to_rfc3339();
    Ok(report)
}

impl Report {
    /// Moves the per-table results the build measured (kept in `self.tables` meanwhile) into
    /// the planned table lines, which become the report's tables.
    fn merge_measured(&mut self, mut planned: Vec<TableReport>) {
        let measured: BTreeMap<String, TableReport> = std::mem::take(&mut self.tables)
            .into_iter()
            .map(|t| (t.table.clone(), t))
            .collect();
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
        self.tables = planned;
        self.compute_totals();
    }
}

/// Builds the new database: schema, data, post-data, derived data, grants. Records results in
/// the report.
async fn build(
    settings: &Settings,
    prepared: Prepared,
    tools: &schema::PgTools,
    building: &str,
    ui: &Ui,
    report: &mut Report,
) -> Result<()> {
    let target = settings.building_endpoint(building);
    let server = settings.admin.display.clone();
    let Prepared {
        snapshot,
        catalog,
        jobs,
        rules: prepared_rules,
        transforms,
        ..
    } = prepared;

    let stage = Stage::start(ui, "schema");
    let archive = schema::dump(tools, &settings.source, &snapshot.id).await?;
    schema::restore(tools, &archive, &target, schema::Section::PreData, 1).await?;
    report.stage("schema (pre-data)", stage.done().as_secs_f64());
    pause::point("pre-data").await;

    let sequence_values = sequences::read(
        snapshot.leader(),
        &settings.source.display,
        &catalog.sequences,
    )
    .await?;

    let pool = db::target_pool(&target, settings.jobs + 1).map_err(Error::Runtime)?;
    let total_bytes: u64 = jobs.iter().map(|j| j.estimated_bytes).sum();
    let data_started = Instant::now();
    let progress = Arc::new(DataProgress::new(ui, jobs.len(), total_bytes));
    let results = copy::run(
        jobs,
        snapshot.clone(),
        pool.clone(),
        server.clone(),
        settings.jobs,
        progress.clone(),
    )
    .await
    .map_err(|e| Error::Runtime(e.to_string()))?;
    if let Ok(progress) = Arc::try_unwrap(progress) {
        progress.finish();
    }
    report.stage("data", data_started.elapsed().as_secs_f64());
    pause::point("data-done").await;
    let stage = Stage::start(ui, "leak sample");
    let probe = verify::sample_source(
        snapshot.leader(),
        &settings.source.display,
        &catalog,
        &prepared_rules,
    )
    .await?;
    report.stage("leak sample", stage.done().as_secs_f64());
    // The source is no longer needed: end the snapshot now rather than hold production's
    // xmin back until the indexes are built.
    drop(snapshot);
    report.tables = aggregate(&results);
    let unique = transforms.unique_stats();
    if unique.sets > 0 {
        report.unique = serde_json::to_value(unique).ok();
    }

    let client = pool
        .get()
        .await
        .map_err(|e| Error::Runtime(format!("{server}: connecting to {building}: {e}")))?;
    sequences::apply(&client, &server, &sequence_values).await?;
    report.sequences_set = sequence_values.len();

    if !settings.derived.is_empty() {
        let stage = Stage::start(ui, "derived columns");
        report.derived_columns_recomputed =
            reindex::recompute_derived(&client, &server, &settings.derived, true).await?;
        report.stage("derived columns", stage.done().as_secs_f64());
    }

    let stage = Stage::start(ui, "indexes");
    schema::restore(
        tools,
        &archive,
        &target,
        schema::Section::PostData,
        settings.jobs,
    )
    .await?;
    report.stage("schema (post-data)", stage.done().as_secs_f64());

    if settings.refresh_materialized_views {
        let stage = Stage::start(ui, "materialized views");
        report.materialized_views_refreshed =
            reindex::refresh_materialized_views(&client, &server).await?;
        report.stage("materialized views", stage.done().as_secs_f64());
    }
    reindex::reindex(&client, &server, &settings.reindex).await?;

    let stage = Stage::start(ui, "analyze");
    let names: Vec<QualifiedName> = catalog.data_tables().map(|t| t.name.clone()).collect();
    reindex::analyze(&pool, &server, &names, settings.jobs).await?;
    report.stage("analyze", stage.done().as_secs_f64());
    let sizes = client
        .query(
            "SELECT format('%s.%s', n.nspname, c.relname), pg_table_size(c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')",
            &[],
        )
        .await
        .map_err(|e| DbError::new(&server, "measuring the new tables", e))?;
    for row in sizes {
        let name: String = row.get(0);
        let bytes: i64 = row.get(1);
        if let Some(t) = report.tables.iter_mut().find(|t| t.table == name) {
            t.table_bytes = bytes.max(0) as u64;
        }
    }

    record_plan(
        &client,
        &server,
        &settings.source.display,
        building,
        &report.tables,
    )
    .await?;
    access::grant(&client, &server, building, &settings.grants).await?;

    pause::point("before-verify").await;
    let stage = Stage::start(ui, "verify");
    // Counts were checked while loading (each COPY's count as the server reported it).
    let verification = verify::verify(
        &pool,
        &server,
        &probe,
        verify::Counts::CheckedAtLoad,
        settings.jobs,
    )
    .await?;
    report.stage("verify", stage.done().as_secs_f64());
    report.verification = serde_json::to_value(&verification).ok();
    if !verification.passed {
        return Err(Error::Verify(format!(
            "{}; staging was not swapped (unchanged)",
            verification.summary()
        )));
    }
    Ok(())
}

/// Flushes and warms the cache from the live staging database.
async fn warm_cache(settings: &Settings, cache: &CacheSettings) -> Result<warm::WarmReport> {
    let live = settings.admin.with_database(&settings.database);
    let client = db::connect(&live, Role::Source).await?;
    warm::run(
        &warm::Cache::new(cache.url.clone()),
        &cache.flush,
        &cache.warm,
        &client,
        &live.display,
    )
    .await
}

/// Records the plan in the new database (schema `_restage`), so `restage verify` can check a
/// live staging database's counts later without the report.
async fn record_plan(
    client: &Client,
    server: &str,
    source: &str,
    building: &str,
    results: &[TableReport],
) -> Result<(), DbError> {
    let mut sql = String::from(
        "CREATE SCHEMA _restage;
         COMMENT ON SCHEMA _restage IS 'written by restage: what this staging database was built from';
         CREATE TABLE _restage.refresh (built text, source text, finished_at timestamptz, restage_version text);
         CREATE TABLE _restage.tables (table_name text PRIMARY KEY, planned_rows bigint NOT NULL);\n",
    );
    sql.push_str(&format!(
        "INSERT INTO _restage.refresh VALUES ({}, {}, now(), {});\n",
        db::quote_literal(building),
        db::quote_literal(source),
        db::quote_literal(env!("CARGO_PKG_VERSION"))
    ));
    for t in results {
        sql.push_str(&format!(
            "INSERT INTO _restage.tables VALUES ({}, {});\n",
            db::quote_literal(&t.table),
            t.rows_written
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "recording the plan in _restage", e))
}

/// Sums job results per table.
fn aggregate(results: &[JobResult]) -> Vec<TableReport> {
    let mut by_table: BTreeMap<String, TableReport> = BTreeMap::new();
    for r in results {
        let t = by_table
            .entry(r.table.to_string())
            .or_insert_with(|| TableReport {
                table: r.table.to_string(),
                ..TableReport::default()
            });
        t.rows_read += r.rows_read;
        t.rows_written += r.rows_written;
        t.bytes_read += r.bytes_read;
        t.bytes_written += r.bytes_written;
        t.seconds = t.seconds.max(r.seconds);
        t.retries += r.retries;
    }
    by_table.into_values().collect()
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => "SIGINT",
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => "SIGTERM",
    }
}
