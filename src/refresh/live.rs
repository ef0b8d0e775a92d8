//! Commands on the live staging database: `verify`, `warm`, `reindex`, `generations`,
//! `rollback`. Each resolves only the sections of restage.yaml it uses
//! ([`super::settings`]) and runs the steps of the check sequence ([`super::checks`]) that
//! apply to it.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName};
use crate::config::Config;
use crate::db::{self, Role};
use crate::error::{Error, Result};
use crate::progress::{Stage, Ui};

use super::settings::{ReindexSettings, TargetSettings, VerifySettings, WarmSettings};
use super::{checks, lock, reindex, verify, warm};

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
        &probe,
        match &expected {
            Some(e) => verify::Counts::Expected(e),
            None => verify::Counts::Unknown,
        },
        settings.jobs,
    )
    .await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if report.passed {
        println!(
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
        for n in &report.notes {
            println!("note: {n}");
        }
    }
    if report.passed {
        Ok(0)
    } else {
        Err(Error::Verify(report.summary()))
    }
}

/// `restage warm`: flush and warm the cache from the live staging database.
pub async fn warm_live(config: &Config, ui: &Ui) -> Result<i32> {
    let settings = WarmSettings::from_config(config, "warm")?;
    let stage = Stage::start(ui, "cache");
    let report = warm::flush_and_warm(&settings.target, &settings.cache).await?;
    stage.done();
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "cache warmed: {} keys removed, {} keys written in {:.2}s ({:.0} keys/s)",
            report.flushed_keys, report.written_keys, report.seconds, report.keys_per_second
        );
    }
    Ok(0)
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
        println!(
            "{}",
            serde_json::json!({ "derived_columns": done.derived_columns, "materialized_views": done.materialized_views, "indexes": indexes })
        );
    } else {
        println!(
            "reindexed {}: {} derived columns recomputed, {} materialized views refreshed, {} indexes rebuilt, statistics updated",
            live.display,
            done.derived_columns.len(),
            done.materialized_views.len(),
            indexes.len()
        );
    }
    Ok(0)
}

/// `restage generations`: the live database and the kept generations.
pub async fn generations(config: &Config, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "generations")?;
    let admin_endpoint = &target.admin;
    let admin = db::connect(admin_endpoint, Role::Target).await?;
    // Repair only with the lock: without it, another run may be inside its swap, where the
    // live database refuses connections on purpose.
    match lock::acquire(&admin, &admin_endpoint.display, &target.database).await {
        Ok(()) => {
            super::generations::repair_live(&admin, &admin_endpoint.display, &target.database)
                .await?;
        }
        Err(Error::Locked(_)) => {
            tracing::info!("another restage run holds the lock; listing only");
        }
        Err(e) => return Err(e),
    }
    let list = super::generations::list(&admin, &admin_endpoint.display, &target.database).await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".to_string())
        );
        return Ok(0);
    }
    if list.is_empty() {
        println!(
            "no staging database {} on {}",
            target.database, admin_endpoint.display
        );
        return Ok(0);
    }
    println!(
        "{:<48}  {:<10}  {:<17}  {:>10}",
        "database", "state", "built", "size"
    );
    for db in &list {
        println!(
            "{:<48}  {:<10}  {:<17}  {:>10}",
            db.name,
            format!("{:?}", db.state).to_lowercase(),
            db.birth.clone().unwrap_or_else(|| "-".into()),
            if db.bytes >= 0 {
                crate::units::human_bytes(db.bytes as u64)
            } else {
                "-".to_string()
            }
        );
    }
    Ok(0)
}

/// `restage rollback [--to NAME]`: swaps a kept generation back in (the newest by default).
pub async fn rollback(config: &Config, args: &RollbackArgs, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "rollback")?;
    let server = target.admin.display.clone();
    let admin = db::connect(&target.admin, Role::Target).await?;
    lock::acquire(&admin, &server, &target.database).await?;
    super::generations::repair_live(&admin, &server, &target.database).await?;
    let list = super::generations::list(&admin, &server, &target.database).await?;
    let mut kept: Vec<&super::generations::DatabaseInfo> = list
        .iter()
        .filter(|d| d.state == super::generations::State::Generation && !d.is_live)
        .collect();
    kept.sort_by(|a, b| b.birth.cmp(&a.birth));
    let chosen = match &args.to {
        Some(name) => kept
            .iter()
            .find(|d| &d.name == name)
            .copied()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{server}: no kept generation named {name} (see `restage generations`)"
                ))
            })?,
        None => kept.first().copied().ok_or_else(|| {
            Error::Usage(format!(
                "{server}: no generation of {} is kept to roll back to",
                target.database
            ))
        })?,
    };
    let birth = chosen.birth.clone().unwrap_or_default();
    // A retired generation refuses connections; the swap re-enables them on the new live one.
    let now = super::generations::timestamp(chrono::Utc::now());
    let outcome = super::generations::swap(
        &admin,
        &server,
        &target.database,
        &chosen.name,
        &birth,
        &now,
    )
    .await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        println!(
            "rolled back: {} is now {}{}",
            chosen.name,
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
