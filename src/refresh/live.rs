//! Commands on the live staging database: `verify`, `warm`, `reindex`, `generations`
//! (`--pin`, `--unpin`), `rollback`. Each resolves only the sections of restage.yaml it uses
//! ([`super::settings`]) and runs the steps of the check sequence ([`super::checks`]) that
//! apply to it.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName};
use crate::config::Config;
use crate::db::{self, Role};
use crate::error::{Error, Result};
use crate::progress::{Stage, Ui};

use super::generations as gens;
use super::generations::{Listed, State};
use super::settings::{ReindexSettings, TargetSettings, VerifySettings, WarmSettings};
use super::{checks, lock, registry, reindex, swap, verify, warm};

/// `restage rollback` options.
#[derive(Debug, clap::Args, Clone)]
pub struct RollbackArgs {
    /// The generation to swap back to (see `restage generations`).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
}

/// Reads the plan the refresh recorded in `_restage`, if the database has one: rows of
/// (schema, name), or, in a database built before issue 11, one `schema.name` text per table.
async fn recorded_plan(client: &Client) -> Option<BTreeMap<QualifiedName, u64>> {
    if let Ok(rows) = client
        .query(
            "SELECT schema_name, table_name, planned_rows FROM _restage.tables",
            &[],
        )
        .await
    {
        return Some(
            rows.into_iter()
                .map(|r| {
                    let n: i64 = r.get(2);
                    (
                        QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                        n.max(0) as u64,
                    )
                })
                .collect(),
        );
    }
    let rows = client
        .query("SELECT table_name, planned_rows FROM _restage.tables", &[])
        .await
        .ok()?;
    Some(
        rows.into_iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let n: i64 = r.get(1);
                QualifiedName::parse(&name)
                    .ok()
                    .map(|q| (q, n.max(0) as u64))
            })
            .collect(),
    )
}

/// `restage verify`: the live staging database against the source, now.
pub async fn verify_live(config: &Config, ui: &Ui) -> Result<i32> {
    verify_live_reported(config, ui).await.0
}

/// `restage verify`, returning with its result the verification report when one was made (a
/// failed verification's too): what the run's metrics count.
pub async fn verify_live_reported(
    config: &Config,
    ui: &Ui,
) -> (Result<i32>, Option<verify::VerifyReport>) {
    match verify_report(config, ui).await {
        Ok(report) if report.passed => (Ok(0), Some(report)),
        Ok(report) => (Err(Error::Verify(report.summary())), Some(report)),
        Err(e) => (Err(e), None),
    }
}

/// Verifies the live staging database and prints what passed; the report either way.
async fn verify_report(config: &Config, ui: &Ui) -> Result<verify::VerifyReport> {
    let settings = VerifySettings::from_config(config, "verify")?;
    let source = db::connect(&settings.source, Role::Source).await?;
    let (catalog, rules) =
        checks::inspect_rules(&source, &settings.source.display, &settings.rules).await?;
    let probe = verify::sample_source(&source, &settings.source.display, &catalog, &rules).await?;
    let live = settings.target.live();
    let pool = db::target_pool(&live, settings.jobs + 1).map_err(Error::Runtime)?;
    let client = pool.get().await.map_err(|e| {
        Error::Runtime(format!(
            "{}: cannot connect to the live staging database: {e}",
            live.display
        ))
    })?;
    let expected = recorded_plan(&client).await;
    let report = verify::verify(
        &pool,
        &live.display,
        Some(&probe),
        match &expected {
            Some(e) => verify::Counts::Expected(e),
            None => verify::Counts::Unknown,
        },
        settings.jobs,
    )
    .await?;
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if report.passed {
        crate::output::outln!(
            "verified {}: {} source values checked against {} staging values, no leak; {} foreign keys valid{}",
            live.display,
            report.leak_values_checked,
            report.staging_values_scanned,
            report.foreign_keys_checked,
            if expected.is_some() {
                "; row counts as planned"
            } else {
                ""
            }
        );
        // A few staging values equal to sampled source values by chance (short names,
        // small numbers drawn from a small space) are expected, and alarm people when
        // listed on every run: one explained line, the list at -v (issue 15).
        let (chance, other): (Vec<&String>, Vec<&String>) = report
            .notes
            .iter()
            .partition(|n| n.contains("chance, not a leak"));
        for n in other {
            crate::output::outln!("note: {n}");
        }
        if ui.verbosity >= 1 {
            for n in &chance {
                crate::output::outln!("note: {n}");
            }
        } else if !chance.is_empty() {
            crate::output::outln!(
                "note: {} column{} hold a few values equal to sampled source values, fewer than a leak would give (a fake value can equal a real one by chance); -v lists them",
                chance.len(),
                if chance.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(report)
}

/// `restage warm`: flush and warm the cache from the live staging database.
pub async fn warm_live(config: &Config, ui: &Ui) -> Result<i32> {
    warm_live_reported(config, ui).await.map(|_| 0)
}

/// `restage warm`, returning what it flushed and wrote (for the run's metrics).
pub async fn warm_live_reported(config: &Config, ui: &Ui) -> Result<warm::WarmReport> {
    let settings = WarmSettings::from_config(config, "warm")?;
    let stage = Stage::start(ui, "cache");
    let report = warm::flush_and_warm(&settings.target, &settings.cache).await?;
    stage.done();
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        crate::output::outln!(
            "cache warmed: {} keys removed, {} keys written in {:.2}s ({:.0} keys/s)",
            report.flushed_keys,
            report.written_keys,
            report.seconds,
            report.keys_per_second
        );
    }
    Ok(report)
}

/// `restage reindex`: derived columns, materialized views, named indexes, statistics, on the
/// live staging database.
pub async fn reindex_live(config: &Config, ui: &Ui) -> Result<i32> {
    let settings = ReindexSettings::from_config(config, "reindex")?;
    let live = settings.target.live();
    let pool = db::target_pool(&live, settings.jobs + 1).map_err(Error::Runtime)?;
    let client = pool.get().await.map_err(|e| {
        Error::Runtime(format!(
            "{}: cannot connect to the live staging database: {e}",
            live.display
        ))
    })?;
    let stage = Stage::start(ui, "reindex");
    // The tables to analyze; the post-load steps create none and drop none.
    let catalog = Catalog::read(&client, &live.display).await?;
    let names: Vec<QualifiedName> = catalog.data_tables().map(|t| t.name.clone()).collect();
    let done = reindex::post_load(
        &pool,
        &client,
        &live.display,
        reindex::Database::Live,
        &settings.search,
        &names,
        settings.jobs,
        None,
    )
    .await?;
    stage.done();
    let indexes = &settings.search.reindex;
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::json!({ "derived_columns": done.derived_columns, "materialized_views": done.materialized_views, "indexes": indexes })
        );
    } else {
        crate::output::outln!(
            "reindexed {}: {} derived columns recomputed, {} materialized views refreshed, {} indexes rebuilt, statistics updated",
            live.display,
            done.derived_columns.len(),
            done.materialized_views.len(),
            indexes.len()
        );
    }
    Ok(0)
}

/// `restage generations` options.
#[derive(Debug, clap::Args, Clone, Default)]
pub struct GenerationsArgs {
    /// Pin a generation (or the live database): retention never drops it, and it does not
    /// count toward `target.keep`.
    #[arg(long, value_name = "NAME", conflicts_with = "unpin")]
    pub pin: Option<String>,
    /// Unpin a generation: retention treats it as any other again.
    #[arg(long, value_name = "NAME")]
    pub unpin: Option<String>,
}

/// `restage generations`: the live database, the kept generations (in rollback order),
/// databases being built or left by dead runs, and databases restage does not manage.
/// `--pin` / `--unpin` change a generation, with the lock.
pub async fn generations(config: &Config, args: &GenerationsArgs, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "generations")?;
    if let Some(name) = &args.pin {
        return pin(&target, name, true, ui).await;
    }
    if let Some(name) = &args.unpin {
        return pin(&target, name, false, ui).await;
    }
    let admin = db::connect(&target.admin, Role::Target).await?;
    let server = &target.admin.display;
    // Listing reads without the lock (a listing never makes a refresh exit 4); only
    // something to repair (a live database refusing connections, a record of a database
    // dropped or renamed by hand) takes it, and when it is held the listing is as read.
    let (mut inventory, control) = gens::survey_unlocked(&admin, &target).await?;
    let repair = !inventory.lost.is_empty()
        || inventory
            .live()
            .is_some_and(|live| live.state == State::Live && !live.db.allow_connections);
    if control.is_some() && repair {
        match lock::acquire_existing(&target, "generations").await {
            Ok(Some(lock)) => {
                let cleaned = gens::clean(&lock, false).await;
                let listed = gens::inventory(&lock).await;
                lock.finish(None, "listed the generations").await;
                cleaned?;
                inventory = listed?;
            }
            Ok(None) => {}
            Err(Error::Locked(_)) => {
                tracing::info!("another restage command holds the lock; listing only");
            }
            Err(e) => return Err(e),
        }
    }
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&Listed::of(&inventory))
                .unwrap_or_else(|_| "[]".to_string())
        );
        return Ok(0);
    }
    if inventory.entries.is_empty() {
        crate::output::outln!("no staging database {} on {server}", target.database);
        return Ok(0);
    }
    crate::output::out!("{}", listing_text(&Listed::of(&inventory)));
    Ok(0)
}

/// The text form of `restage generations`.
fn listing_text(listed: &[Listed]) -> String {
    let time = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string()
            })
    };
    let rows: Vec<[String; 7]> = listed
        .iter()
        .map(|l| {
            let live = match (time(&l.live_from), time(&l.live_to)) {
                (Some(from), None) if l.state == State::Live => format!("{from} – now"),
                (from, Some(to)) => format!("{} – {to}", from.unwrap_or_else(|| "?".into())),
                _ => "-".to_string(),
            };
            [
                l.name.clone(),
                l.state.word().to_string(),
                time(&l.built_at).unwrap_or_else(|| "-".into()),
                live,
                if l.pinned { "pinned" } else { "-" }.to_string(),
                time(&l.snapshot_at).unwrap_or_else(|| "-".into()),
                if l.bytes >= 0 {
                    crate::units::human_bytes(l.bytes as u64)
                } else {
                    "-".to_string()
                },
            ]
        })
        .collect();
    let header = [
        "database", "state", "built", "live", "pinned", "snapshot", "size",
    ];
    crate::output::text_table(header, &rows)
}

/// `restage generations --pin NAME` / `--unpin NAME`.
async fn pin(target: &TargetSettings, name: &str, pinned: bool, ui: &Ui) -> Result<i32> {
    let command = if pinned { "pin" } else { "unpin" };
    let server = target.admin.display.clone();
    let no_such = || {
        Error::Usage(format!(
            "{server}: no generation of {} named {name} (see `restage generations`)",
            target.database
        ))
    };
    let Some(lock) = lock::acquire_existing(target, command).await? else {
        return Err(no_such());
    };
    let result = async {
        let inventory = gens::inventory(&lock).await?;
        let entry = inventory.find(name).ok_or_else(no_such)?;
        let Some(record) = &entry.record else {
            return Err(Error::Usage(format!(
                "{server}: {name} is not a database restage built or adopted; restage never drops it"
            )));
        };
        if !registry::set_pinned(&lock.client, &lock.server, &record.name, pinned).await? {
            return Err(no_such());
        }
        Ok(entry.db.name.clone())
    }
    .await;
    let outcome = match &result {
        Ok(shown) => format!("{command}ned {shown}"),
        Err(e) => format!("failed: {e}"),
    };
    lock.finish(None, &outcome).await;
    let shown = result?;
    if ui.json {
        crate::output::outln!("{}", serde_json::json!({ "name": shown, "pinned": pinned }));
    } else if pinned {
        crate::output::outln!(
            "pinned {shown}: retention never drops it (`restage generations --unpin {shown}` undoes it)"
        );
    } else {
        crate::output::outln!("unpinned {shown}: it counts toward target.keep again");
    }
    Ok(0)
}

/// `restage rollback [--to NAME]`: swaps a kept generation back in — by default the one that
/// was live most recently.
pub async fn rollback(config: &Config, args: &RollbackArgs, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "rollback")?;
    let admin = db::connect(&target.admin, Role::Target).await?;
    let Some(lock) = lock::acquire_existing(&target, "rollback").await? else {
        return Err(Error::Usage(format!(
            "{}: no generation of {} is kept to roll back to",
            target.admin.display, target.database
        )));
    };
    let result = rolled_back(&admin, &lock, &target, args).await;
    let outcome = match &result {
        Ok(o) => format!("rolled back to {}", o.went_live),
        Err(e) => format!("failed: {e}"),
    };
    lock.finish(None, &outcome).await;
    let outcome = result?;
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        crate::output::outln!(
            "rolled back: {} is now {}{}",
            outcome.went_live,
            target.database,
            outcome
                .retired_as
                .as_ref()
                .map(|r| format!("; the previous live database is kept as {r}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

async fn rolled_back(
    admin: &tokio_postgres::Client,
    lock: &lock::RunLock,
    target: &TargetSettings,
    args: &RollbackArgs,
) -> Result<swap::SwapOutcome> {
    let server = &target.admin.display;
    let mut shutdown = crate::signal::Shutdown::new()
        .map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let mut signal = std::pin::pin!(shutdown.wait());
    gens::clean(lock, false).await?;
    let inventory = gens::inventory(lock).await?;
    let chosen = match &args.to {
        Some(name) => inventory
            .generations()
            .find(|e| &e.db.name == name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{server}: no kept generation named {name} (see `restage generations`)"
                ))
            })?,
        None => inventory.generations().next().ok_or_else(|| {
            Error::Usage(format!(
                "{server}: no generation of {} is kept to roll back to",
                target.database
            ))
        })?,
    };
    let incoming = chosen.generation_name().to_string();
    swap::swap(
        lock,
        admin,
        &incoming,
        target.adopt,
        target.lock_timeout,
        &mut signal,
    )
    .await
}
