//! The build stage: the new database, from the prepared plan to a verified copy — pre-data
//! schema, the data streamed through the rules (held to `max_storage`: [`storage`]), the
//! leak sample of the source, sequences, the post-load order ([`reindex::post_load`]), table
//! sizes (checked against `max_storage` again), the plan recorded in `_restage`, grants,
//! verification. It returns what it measured; the caller puts it in the report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use tokio_postgres::Client;

use crate::catalog::QualifiedName;
use crate::db::{self, DbError};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::plan::storage::StorageReport;
use crate::progress::{Stage, Ui};
use crate::report::{StageTiming, TableReport};

use super::copy::JobResult;
use super::prepare::Prepared;
use super::reindex::{self, PostLoaded};
use super::schema::{self, PgTools};
use super::settings::{SearchSettings, Settings};
use super::source_database::{self, SourceDatabase};
use super::verify::{self, VerifyReport};
use super::{access, foreign, pause, post_data, sequences, storage};

/// What the build measured in the new database.
pub struct Built {
    /// Per table: rows and bytes read and written, time, retries, size in staging.
    pub tables: Vec<TableReport>,
    /// The build's stages in order, with their durations.
    pub stages: Vec<StageTiming>,
    pub sequences_set: usize,
    pub post_load: PostLoaded,
    /// What `unique: true` held, when any column asked for it.
    pub unique: Option<serde_json::Value>,
    /// Passed: a verification that failed stops the build with an error.
    pub verification: VerifyReport,
    /// `max_storage`: planned, restored, rescales.
    pub storage: Option<StorageReport>,
    /// The plan the tables hold, when a rescale replaced the first one.
    pub replanned: Option<Plan>,
    /// What the report should say about the new database (a fallback locale, settings the
    /// server refused, what could not be carried from the live database, a rescale).
    pub warnings: Vec<String>,
    /// What production has that the new database deliberately did not get, by name.
    pub left_out: Vec<String>,
}

/// Builds the new database `building` (created empty) and verifies it.
pub async fn build(
    settings: &Settings,
    prepared: Prepared,
    tools: &PgTools,
    building: &str,
    source_database: &SourceDatabase,
    ui: &Ui,
) -> Result<Built> {
    let target = settings.building_endpoint(building);
    // Errors of the build name the database being built, not the maintenance database.
    let server = target.display.clone();
    let Prepared {
        snapshot,
        catalog,
        jobs,
        rules: prepared_rules,
        transforms,
        plan,
        ..
    } = prepared;
    let mut stages = Vec::new();

    // The leak probe's sample of the source, before the data stage: the rows are checked as
    // they go through (the identity check and the probe, see verify.rs), and nothing is read
    // back from the new database. It reads production in the snapshot while pre-data is
    // restored into the new database (pg_restore, another server session), so it costs only
    // what it takes longer than pre-data: that wait is its stage timing.
    // Generated data (`source.mode: synthetic`) holds no production value to look for and no
    // production input a rule could leave unchanged: no rule's source is sampled or checked.
    // In hybrid mode the copied tables' rules are (the generated tables' were taken out of
    // the bound rules when their jobs were made).
    let no_rules = crate::rules::BoundRules::default();
    let checked_rules = if settings
        .synthetic
        .as_ref()
        .is_some_and(|s| !s.copies_production())
    {
        &no_rules
    } else {
        &prepared_rules
    };
    let sample = verify::sample_source(
        snapshot.leader(),
        &settings.source.display,
        &catalog,
        checked_rules,
    );
    // Which tables get their indexes, keys and ANALYZE as soon as their data is in, while
    // the others still copy ([`post_data`]): not with a `max_storage` cap (a rescale empties
    // and reloads tables); a table with derived columns only when their expressions read
    // its own row alone (they are recomputed first; tried once the tables exist). The split
    // of the post-data SQL reads the archive and the source's catalog beside the pre-data
    // restore, before the `pre-data` pause point: after it, only the copy workers read the
    // source.
    let mut jobs_per_table: HashMap<QualifiedName, usize> = HashMap::new();
    for job in &jobs {
        *jobs_per_table.entry(job.table.clone()).or_default() += 1;
    }
    let pre_data = async {
        let stage = Stage::start(ui, "schema");
        let archive =
            schema::dump(tools, &settings.source, &snapshot.id, settings.lock_timeout).await?;
        let split = async {
            let started = Instant::now();
            if plan.storage.is_some() {
                return Ok((None, 0.0));
            }
            // A leaf partition of a table with derived columns waits for them (they are
            // recomputed on the partitioned table, after the copy).
            let derived: BTreeSet<&QualifiedName> =
                settings.search.derived.iter().map(|d| &d.table).collect();
            let candidates: BTreeSet<QualifiedName> = jobs_per_table
                .keys()
                .filter(|t| {
                    !catalog
                        .lineage(t)
                        .iter()
                        .skip(1)
                        .any(|ancestor| derived.contains(&ancestor.name))
                })
                .cloned()
                .collect();
            let early = post_data::plan(
                tools,
                &archive,
                snapshot.leader(),
                &settings.source.display,
                &candidates,
                settings.search.refresh_materialized_views,
            )
            .await?;
            Ok::<_, Error>((early, started.elapsed().as_secs_f64()))
        };
        let (restored, split) = tokio::join!(
            schema::restore(tools, &archive, &target, schema::Section::PreData, 1),
            split
        );
        restored?;
        let (mut early, split_seconds) = split?;
        let mut left_out = Vec::new();
        if archive.user_mappings_left_out > 0 {
            left_out.push(format!(
                "{} user mapping(s) of production (remote users and passwords)",
                archive.user_mappings_left_out
            ));
        }
        if archive.has_servers {
            let servers =
                foreign::read_servers(snapshot.leader(), &settings.source.display).await?;
            let client = db::connect(&target, db::Role::Target).await?;
            left_out.extend(foreign::create_servers(&client, &server, &servers).await?);
            drop(client);
            schema::restore(
                tools,
                &archive,
                &target,
                schema::Section::PreDataAfterServers,
                1,
            )
            .await?;
        }
        // The derived columns recomputed after the copy: all of them without per-table
        // builds; else those whose expressions are not of their own row, tried now that every
        // table exists (some are created only after the foreign servers).
        let mut derived_later = settings.search.derived.clone();
        {
            let client = db::connect(&target, db::Role::Target).await?;
            left_out.extend(foreign::strip_wrapper_options(&client, &server).await?);
            if let Some(early) = early.as_mut()
                && !derived_later.is_empty()
            {
                let same_row =
                    post_data::same_row_expressions(&client, &server, &settings.search.derived)
                        .await?;
                derived_later = early.take_derived(&settings.search.derived, &same_row);
            }
        }
        let seconds = stage.done().as_secs_f64();
        pause::point("pre-data").await;
        Ok::<_, Error>((
            archive,
            left_out,
            seconds,
            early,
            split_seconds,
            derived_later,
        ))
    };
    let started = Instant::now();
    let (probe, pre_data) = tokio::join!(sample, pre_data);
    let (archive, mut left_out, pre_data_seconds, early, split_seconds, derived_later) = pre_data?;
    let probe = probe?;
    stages.push(timing("schema (pre-data)", pre_data_seconds));
    // What the sample added to the wall time: its wait after pre-data was done.
    stages.push(timing(
        "leak sample",
        (started.elapsed().as_secs_f64() - pre_data_seconds).max(0.0),
    ));

    let mut archive = archive;
    if plan.storage.is_none() {
        stages.push(timing(
            "post-data split per table (beside pre-data)",
            split_seconds,
        ));
    }

    let sequence_values = sequences::read(
        snapshot.leader(),
        &settings.source.display,
        &catalog.sequences,
    )
    .await?;

    let verifier = verify::StreamVerifier::new(probe, &catalog, checked_rules);
    // The jobs were planned before: their row plans take their table's checks now (a reload
    // after a rescale plans its jobs from the rules, which hold the verifier).
    let jobs: Vec<_> = jobs
        .into_iter()
        .map(|mut job| {
            let mut plan = (*job.plan).clone();
            plan.check = verifier.table(&job.table);
            job.plan = std::sync::Arc::new(plan);
            job
        })
        .collect();

    // One connection more than the copy workers: the size watch of `max_storage`.
    let pool = db::target_pool(&target, settings.jobs + 1).map_err(Error::Runtime)?;
    let data_started = Instant::now();
    let (table_done, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let load = async {
        let loader = storage::Loader {
            settings,
            catalog: &catalog,
            rules: &prepared_rules,
            verifier: &verifier,
            snapshot: &snapshot,
            pool: &pool,
            server: &server,
            ui,
            table_done: early.as_ref().map(|_| table_done),
        };
        let loaded = loader.load(&plan, jobs).await;
        // The loader (and with it the announcements' sender) is dropped here: the builds
        // below stop waiting for more tables.
        drop(loader);
        loaded.map(|l| (l, Instant::now()))
    };
    let builds = async {
        match &early {
            Some(early) => post_data::run(
                early,
                jobs_per_table,
                done_rx,
                &target,
                &server,
                settings.jobs,
            )
            .await
            .map(Some),
            None => Ok(None),
        }
    };
    // The first failure of either ends both (the copies aborted, the builds' sessions
    // closed); the half-built database is dropped by the caller.
    let ((loaded, data_done), built_early) = tokio::try_join!(load, builds)?;
    let results = loaded.results;
    let mut warnings = loaded.warnings;
    let mut storage_report = loaded.storage;
    stages.push(timing(
        "data",
        data_done.duration_since(data_started).as_secs_f64(),
    ));
    let mut analyzed_early = BTreeSet::new();
    let mut derived_early = Vec::new();
    let mut views_early = BTreeSet::new();
    if let (Some(early), Some(built)) = (&early, built_early) {
        // Reported as what they are: time spent on other connections while the copy ran
        // (overlapped with "data", not added to it), and the wait after the last table.
        stages.push(timing(
            &format!(
                "indexes + analyze, {} tables, {} foreign keys{} (during copy)",
                built.tables.len(),
                built.foreign_keys,
                match built.views.len() {
                    0 => String::new(),
                    n => format!(", {n} materialized views"),
                }
            ),
            built.busy_seconds,
        ));
        stages.push(timing(
            "indexes (after copy)",
            data_done.elapsed().as_secs_f64(),
        ));
        archive.mark_built(&built.ids, built.ids.len() == early.total())?;
        tracing::debug!(
            tables = built.tables.len(),
            foreign_keys = built.foreign_keys,
            entries = built.ids.len(),
            planned = early.entry_count(),
            "post-data built per table during the copy"
        );
        analyzed_early = built.tables;
        derived_early = built.derived_columns;
        views_early = built.views;
    }
    pause::point("data-done").await;
    // What the stream counted: a leak or a rule that changed nothing fails the run now,
    // before the indexes are built (the new database is dropped; live staging unchanged).
    let stage = Stage::start(ui, "verify (stream)");
    let streamed = verifier.report();
    stages.push(timing("verify (stream)", stage.done().as_secs_f64()));
    if !streamed.passed {
        return Err(Error::Verify(format!(
            "{}; staging was not swapped (unchanged)",
            streamed.summary()
        )));
    }
    // The source is no longer needed: end the snapshot now rather than hold production's
    // xmin back until the indexes are built.
    drop(snapshot);
    let mut measured = aggregate(&results);
    let unique = transforms.unique_stats();
    let unique = (unique.sets > 0)
        .then(|| serde_json::to_value(unique).ok())
        .flatten();

    let client = pool
        .get()
        .await
        .map_err(|e| Error::Runtime(format!("{server}: connecting to {building}: {e}")))?;
    sequences::apply(&client, &server, &sequence_values).await?;
    if settings.synthetic.is_some() {
        sequences::set_from_data(&client, &server).await?;
    }

    // The tables analyzed with their indexes during the copy are not analyzed again.
    let names: Vec<QualifiedName> = catalog
        .data_tables()
        .map(|t| t.name.clone())
        .filter(|t| !analyzed_early.contains(t))
        .collect();
    // The derived columns not recomputed during the copy are, first thing after it.
    let search = SearchSettings {
        derived: derived_later,
        ..settings.search.clone()
    };
    let mut post_load = reindex::post_load(
        &pool,
        &client,
        &server,
        reindex::Database::New {
            tools,
            archive: &archive,
            endpoint: &target,
            refreshed_views: &views_early,
        },
        &search,
        &names,
        settings.jobs,
        Some(ui),
    )
    .await?;
    post_load.derived_columns.extend(derived_early);
    post_load.derived_columns.sort();
    stages.extend(post_load.stages.iter().cloned());
    measure_sizes(&client, &server, &mut measured).await?;
    if let (Some(report), Some(cap)) = (storage_report.as_mut(), &settings.sample.storage) {
        let mut planned: Vec<TableReport> = measured.values().cloned().collect();
        storage::replan_lines(&mut planned, loaded.replanned.as_ref().unwrap_or(&plan));
        storage::check_restored(report, cap, &planned, &mut warnings)?;
    }

    record_plan(
        &client,
        &server,
        &settings.source.display,
        building,
        &measured,
    )
    .await?;
    let tables: Vec<TableReport> = measured.into_values().collect();
    access::grant(&client, &server, building, &settings.target.grants).await?;

    pause::point("before-verify").await;
    let stage = Stage::start(ui, "verify");
    // Counts were checked while loading (each COPY's count as the server reported it), leaks
    // in the stream: the foreign keys remain.
    let mut verification = verify::verify(
        &pool,
        &server,
        None,
        verify::Counts::CheckedAtLoad,
        settings.jobs,
    )
    .await?;
    verification.absorb(streamed);
    stages.push(timing("verify", stage.done().as_secs_f64()));
    if !verification.passed {
        return Err(Error::Verify(format!(
            "{}; staging was not swapped (unchanged)",
            verification.summary()
        )));
    }
    // Last, so that no setting of the source (a statement_timeout, a read-only default) acts
    // on the build's own sessions.
    warnings.extend(
        foreign::carry_forward(
            &client,
            &server,
            &settings.target.live(),
            &settings.target.database,
        )
        .await?,
    );
    let (settings_left_out, settings_warnings) = source_database::apply_settings(
        &client,
        &server,
        building,
        &source_database.settings,
        &settings.target.live(),
        &settings.target.database,
        &settings.target.settings,
    )
    .await?;
    left_out.extend(settings_left_out);
    warnings.extend(settings_warnings);
    Ok(Built {
        tables,
        stages,
        sequences_set: sequence_values.len(),
        post_load,
        unique,
        verification,
        storage: storage_report,
        replanned: loaded.replanned,
        warnings,
        left_out,
    })
}

fn timing(stage: &str, seconds: f64) -> StageTiming {
    StageTiming {
        stage: stage.to_string(),
        seconds,
    }
}

/// Each table's size in staging: heap + TOAST (what `max_storage` budgets) and indexes.
async fn measure_sizes(
    client: &Client,
    server: &str,
    tables: &mut BTreeMap<QualifiedName, TableReport>,
) -> Result<()> {
    for (name, (table, indexes)) in storage::table_sizes(client, server).await? {
        if let Some(t) = tables.get_mut(&name) {
            t.table_bytes = table;
            t.index_bytes = indexes;
        }
    }
    Ok(())
}

/// Records the plan in the new database (schema `_restage`), so `restage verify` can check a
/// live staging database's counts later without the report. Tables are rows of (schema,
/// name): two tables never share a row however their names look printed.
pub(crate) async fn record_plan(
    client: &Client,
    server: &str,
    source: &str,
    building: &str,
    results: &BTreeMap<QualifiedName, TableReport>,
) -> Result<(), DbError> {
    let mut sql = String::from(
        "CREATE SCHEMA _restage;
         COMMENT ON SCHEMA _restage IS 'written by restage: what this staging database was built from';
         CREATE TABLE _restage.refresh (built text, source text, finished_at timestamptz, restage_version text);
         CREATE TABLE _restage.tables (schema_name text NOT NULL, table_name text NOT NULL,
                                       planned_rows bigint NOT NULL,
                                       PRIMARY KEY (schema_name, table_name));\n",
    );
    sql.push_str(&format!(
        "INSERT INTO _restage.refresh VALUES ({}, {}, now(), {});\n",
        db::quote_literal(building),
        db::quote_literal(source),
        db::quote_literal(env!("CARGO_PKG_VERSION"))
    ));
    for (name, t) in results {
        sql.push_str(&format!(
            "INSERT INTO _restage.tables VALUES ({}, {}, {});\n",
            db::quote_literal(&name.schema),
            db::quote_literal(&name.name),
            t.rows_written
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "recording the plan in _restage", e))
}

/// Sums job results per table, keyed by the table's identity (schema, name).
fn aggregate(results: &[JobResult]) -> BTreeMap<QualifiedName, TableReport> {
    let mut by_table: BTreeMap<QualifiedName, TableReport> = BTreeMap::new();
    for r in results {
        let t = by_table
            .entry(r.table.clone())
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
    by_table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(table: &str, rows: u64, seconds: f64, retries: u32) -> JobResult {
        JobResult {
            table: QualifiedName::new("public", table),
            range: None,
            rows_read: rows,
            rows_written: rows / 2,
            bytes_read: rows * 10,
            bytes_written: rows * 5,
            seconds,
            retries,
        }
    }

    #[test]
    fn ranges_of_a_table_add_up_and_the_slowest_is_its_time() {
        let tables = aggregate(&[
            job("users", 100, 2.0, 0),
            job("events", 10, 1.0, 0),
            job("users", 50, 3.5, 1),
        ]);
        assert_eq!(tables.len(), 2);
        let users = &tables[&QualifiedName::new("public", "users")];
        assert_eq!(users.table, "public.users");
        assert_eq!(
            (users.rows_read, users.rows_written, users.bytes_read),
            (150, 75, 1500)
        );
        assert_eq!(users.seconds, 3.5);
        assert_eq!(users.retries, 1);
        assert_eq!(
            tables[&QualifiedName::new("public", "events")].table,
            "public.events"
        );
    }

    /// Issue 11: two tables whose unquoted names read the same are two lines.
    #[test]
    fn tables_whose_names_print_alike_unquoted_stay_apart() {
        let mut a = job("x", 10, 1.0, 0);
        a.table = QualifiedName::new("a", "b.c");
        let mut b = job("x", 20, 1.0, 0);
        b.table = QualifiedName::new("a.b", "c");
        let tables = aggregate(&[a, b]);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[&QualifiedName::new("a", "b.c")].rows_read, 10);
        assert_eq!(tables[&QualifiedName::new("a.b", "c")].rows_read, 20);
        let printed: Vec<&str> = tables.values().map(|t| t.table.as_str()).collect();
        assert_eq!(printed, ["a.\"b.c\"", "\"a.b\".c"]);
    }
}
