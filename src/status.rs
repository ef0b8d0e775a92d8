//! `restage status`, and the records it reads: the state of staging kept on the staging
//! server itself, in the live database's `_restage` schema, so any machine that can reach
//! the server can tell what is live, since when, from which snapshot and rules, and how the
//! last runs ended.
//!
//! Two tables, created by the first run that records (restage writes only into databases it
//! built, which already hold `_restage`; it never creates the schema in someone's database):
//!
//! - `_restage.live`, one row: when this database went live, by which command (`refresh`,
//!   `restore`, `rollback`), and what built it (generation, snapshot time, rules digest).
//!   Written by the refresh or restore that swaps it in; a rollback updates `since` and
//!   keeps `built`.
//! - `_restage.runs`, a row per command (`refresh`, `restore`, `rollback`, `verify`,
//!   `warm`): its last run's summary (JSON), when it last succeeded, how many runs and
//!   failures since this database was built. A rollback carries the records of the database it replaces over
//!   to the generation it brings back (newer ones win), so the rolled-back database does not
//!   show a week-old "last refresh". A refresh that swaps a new database in starts the new
//!   one's records with itself (the one it replaced refuses connections from then on):
//!   the counters restart there, which Prometheus reads as a counter reset.
//!
//! A failed run records itself in the live database it left unchanged. A run whose target
//! cannot be reached, or a first run with nothing live, records nothing there (the exit
//! code, the metrics file and the notifications still say it); that is logged, and never
//! changes the run's outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::config::Config;
use crate::db::{self, DbError, Role};
use crate::error::{Error, Result};
use crate::progress::Ui;
use crate::refresh::generations::{self, State};
use crate::refresh::settings::TargetSettings;
use crate::runs::{BuiltFrom, Command, LiveState, RunRecord, RunSummary, StagingState};

/// The longest reading or recording the state may take: it runs after the command, which
/// must not hang on it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The tables, created when a run first records.
const CREATE_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS _restage.runs (
        command text PRIMARY KEY,
        finished_at timestamptz NOT NULL,
        exit_code integer NOT NULL,
        last_success_at timestamptz,
        runs bigint NOT NULL,
        failures bigint NOT NULL,
        summary jsonb NOT NULL
    );
    CREATE TABLE IF NOT EXISTS _restage.live (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        since timestamptz NOT NULL,
        swapped_in_by text NOT NULL,
        built jsonb
    );";

/// `restage status`: one line (or the state as JSON) from the target server. Exit 0 when
/// the server answered, whatever it says; 1 when it could not be read.
pub async fn run(config: &Config, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "status")?;
    let state = read(&target).await?;
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&state).unwrap_or_else(|_| "{}".to_string())
        );
    } else {
        crate::output::outln!("{}", line(&state, Utc::now()));
    }
    Ok(0)
}

/// Reads the state of `target.database` on its server.
pub async fn read(target: &TargetSettings) -> Result<StagingState> {
    let server = target.admin.display.clone();
    match tokio::time::timeout(TIMEOUT, read_state(target)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Runtime(format!(
            "{server}: reading the state of {} timed out after {}s",
            target.database,
            TIMEOUT.as_secs()
        ))),
    }
}

async fn read_state(target: &TargetSettings) -> Result<StagingState> {
    let server = target.admin.display.clone();
    let admin = db::connect(&target.admin, Role::Target).await?;
    let (inventory, _control) = generations::survey_unlocked(&admin, target).await?;
    drop(admin);
    let mut state = StagingState::unknown(&target.database, &server);
    state.read_from_server = true;
    state.generations_kept = inventory.generations().count() as u64;
    let Some(info) = inventory.live().filter(|e| e.state == State::Live) else {
        return Ok(state);
    };
    let record = info.record.as_ref();
    let mut live = LiveState {
        name: info.db.name.clone(),
        generation: record.map(|r| r.name.clone()),
        built_at: record.and_then(|r| r.built_at),
        since: None,
        swapped_in_by: None,
        built: None,
        bytes: u64::try_from(info.db.bytes).ok(),
    };
    if info.db.allow_connections {
        let endpoint = target.live();
        let client = db::connect(&endpoint, Role::Target).await?;
        read_live(&client, &endpoint.display, &mut live, &mut state.runs).await?;
    }
    state.live = Some(live);
    Ok(state)
}

/// What the live database records of itself and of the runs.
async fn read_live(
    client: &Client,
    server: &str,
    live: &mut LiveState,
    runs: &mut BTreeMap<Command, RunRecord>,
) -> Result<(), DbError> {
    let row = client
        .query_one(
            "SELECT to_regclass('_restage.live') IS NOT NULL, to_regclass('_restage.runs') IS NOT NULL,
                    to_regclass('_restage.refresh') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading _restage", e))?;
    let (has_live, has_runs, has_refresh): (bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2));
    if has_live
        && let Some(row) = client
            .query_opt("SELECT since, swapped_in_by, built FROM _restage.live", &[])
            .await
            .map_err(|e| DbError::new(server, "reading _restage.live", e))?
    {
        live.since = row.get(0);
        live.swapped_in_by = Command::from_name(row.get::<_, &str>(1));
        live.built = row
            .get::<_, Option<serde_json::Value>>(2)
            .and_then(|v| serde_json::from_value(v).ok());
    }
    if live.built.is_none() && has_refresh {
        // Databases built before `_restage.live` existed: what the build recorded.
        if let Some(row) = client
            .query_opt(
                "SELECT built, restage_version FROM _restage.refresh LIMIT 1",
                &[],
            )
            .await
            .map_err(|e| DbError::new(server, "reading _restage.refresh", e))?
        {
            live.built = Some(BuiltFrom {
                generation: row.get(0),
                snapshot_at: None,
                rules_digest: None,
                restage_version: row.get::<_, Option<String>>(1).unwrap_or_default(),
            });
        }
    }
    if has_runs {
        *runs = read_runs(client, server).await?;
    }
    Ok(())
}

async fn read_runs(client: &Client, server: &str) -> Result<BTreeMap<Command, RunRecord>, DbError> {
    let rows = client
        .query(
            "SELECT command, summary, last_success_at, runs, failures FROM _restage.runs",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading _restage.runs", e))?;
    let mut runs = BTreeMap::new();
    for row in rows {
        let name: String = row.get(0);
        let Some(command) = Command::from_name(&name) else {
            continue;
        };
        // A summary another version wrote and this one cannot read is skipped, not fatal.
        match serde_json::from_value::<RunSummary>(row.get(1)) {
            Ok(last) => {
                runs.insert(
                    command,
                    RunRecord {
                        last,
                        last_success_at: row.get(2),
                        runs: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                        failures: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                    },
                );
            }
            Err(e) => tracing::debug!(command = %name, error = %e, "skipping a run record"),
        }
    }
    Ok(runs)
}

/// Records `run` in the live database: first the records `carried` from the database that
/// was live before the run (kept where newer), then the run itself; when the run swapped a
/// database in, when and how. Returns false when there was nowhere to record it (nothing
/// live, or a live database restage did not build).
pub async fn record(
    target: &TargetSettings,
    run: &RunSummary,
    carried: &BTreeMap<Command, RunRecord>,
) -> Result<bool> {
    let server = target.admin.display.clone();
    match tokio::time::timeout(TIMEOUT, record_run(target, run, carried)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Runtime(format!(
            "{server}: recording the run in {} timed out after {}s",
            target.database,
            TIMEOUT.as_secs()
        ))),
    }
}

async fn record_run(
    target: &TargetSettings,
    run: &RunSummary,
    carried: &BTreeMap<Command, RunRecord>,
) -> Result<bool> {
    let admin = db::connect(&target.admin, Role::Target).await?;
    let (inventory, _control) = generations::survey_unlocked(&admin, target).await?;
    drop(admin);
    let live_accepts = inventory
        .live()
        .is_some_and(|e| e.state == State::Live && e.db.allow_connections);
    if !live_accepts {
        return Ok(false);
    }
    let endpoint = target.live();
    let server = endpoint.display.clone();
    let mut client = db::connect(&endpoint, Role::Target).await?;
    let ours: bool = client
        .query_one("SELECT to_regnamespace('_restage') IS NOT NULL", &[])
        .await
        .map_err(|e| DbError::new(&server, "looking for _restage", e))?
        .get(0);
    if !ours {
        return Ok(false);
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| DbError::new(&server, "recording the run", e))?;
    let fail = |what: &'static str| {
        let server = server.clone();
        move |e: tokio_postgres::Error| DbError::new(server, what, e)
    };
    // Two commands recording at once must not race on CREATE TABLE IF NOT EXISTS.
    tx.batch_execute("SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock(29285, 1)")
        .await
        .map_err(fail("locking _restage"))?;
    tx.batch_execute(CREATE_TABLES)
        .await
        .map_err(fail("creating the _restage run tables"))?;
    for record in carried.values() {
        upsert(&tx, record, true)
            .await
            .map_err(fail("carrying the run records over"))?;
    }
    let previous = tx
        .query_opt(
            "SELECT summary, last_success_at, runs, failures FROM _restage.runs WHERE command = $1 FOR UPDATE",
            &[&run.command.name()],
        )
        .await
        .map_err(fail("reading _restage.runs"))?
        .and_then(|row| {
            Some(RunRecord {
                last: serde_json::from_value(row.get(0)).ok()?,
                last_success_at: row.get(1),
                runs: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                failures: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            })
        });
    let record = RunRecord::after(previous.as_ref(), run);
    upsert(&tx, &record, false)
        .await
        .map_err(fail("recording the run"))?;
    if let Some(since) = run.swapped_at {
        record_live(&tx, run, since)
            .await
            .map_err(fail("recording what is live"))?;
    }
    tx.commit().await.map_err(fail("recording the run"))?;
    Ok(true)
}

/// Writes a command's record; with `only_if_newer`, keeps a newer one already there.
async fn upsert(
    tx: &tokio_postgres::Transaction<'_>,
    record: &RunRecord,
    only_if_newer: bool,
) -> Result<(), tokio_postgres::Error> {
    let summary = serde_json::to_value(&record.last).unwrap_or(serde_json::Value::Null);
    let sql = format!(
        "INSERT INTO _restage.runs (command, finished_at, exit_code, last_success_at, runs, failures, summary)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (command) DO UPDATE SET finished_at = EXCLUDED.finished_at,
             exit_code = EXCLUDED.exit_code, last_success_at = EXCLUDED.last_success_at,
             runs = EXCLUDED.runs, failures = EXCLUDED.failures, summary = EXCLUDED.summary
         {}",
        if only_if_newer {
            "WHERE _restage.runs.finished_at < EXCLUDED.finished_at"
        } else {
            ""
        }
    );
    tx.execute(
        &sql,
        &[
            &record.last.command.name(),
            &record.last.finished_at,
            &record.last.exit_code,
            &record.last_success_at,
            &i64::try_from(record.runs).unwrap_or(i64::MAX),
            &i64::try_from(record.failures).unwrap_or(i64::MAX),
            &summary,
        ],
    )
    .await
    .map(|_| ())
}

/// A refresh records what built the database it swapped in; a rollback only when and how
/// (what built the generation it brought back is already there).
async fn record_live(
    tx: &tokio_postgres::Transaction<'_>,
    run: &RunSummary,
    since: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let by = run.command.name();
    match run.command {
        Command::Refresh | Command::Restore => {
            let built = BuiltFrom {
                generation: run.built.clone(),
                snapshot_at: run.snapshot_at,
                rules_digest: run.rules_digest.clone(),
                restage_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let built = serde_json::to_value(&built).unwrap_or(serde_json::Value::Null);
            tx.execute(
                "INSERT INTO _restage.live (since, swapped_in_by, built) VALUES ($1, $2, $3)
                 ON CONFLICT (singleton) DO UPDATE SET since = EXCLUDED.since,
                     swapped_in_by = EXCLUDED.swapped_in_by, built = EXCLUDED.built",
                &[&since, &by, &built],
            )
            .await?;
        }
        _ => {
            tx.execute(
                "INSERT INTO _restage.live (since, swapped_in_by) VALUES ($1, $2)
                 ON CONFLICT (singleton) DO UPDATE SET since = EXCLUDED.since,
                     swapped_in_by = EXCLUDED.swapped_in_by",
                &[&since, &by],
            )
            .await?;
        }
    }
    Ok(())
}

/// `2026-11-26 02:41:07 UTC`.
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3h 12m ago`, `2d 4h ago`.
fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h ago")
    } else if h > 0 {
        format!("{h}h {m}m ago")
    } else if m > 0 {
        format!("{m}m ago")
    } else {
        format!("{secs}s ago")
    }
}

/// The one line of `restage status`: what is live and the last refresh (and the latest run,
/// when another command ran after it).
pub fn line(state: &StagingState, now: DateTime<Utc>) -> String {
    let mut out = format!("staging {} on {}: ", state.database, state.server);
    match &state.live {
        None => out.push_str("nothing is live"),
        Some(live) => {
            out.push_str("live");
            match (live.since, live.swapped_in_by) {
                (Some(since), by) => {
                    out.push_str(&format!(" since {} ({})", when(since), ago(since, now)));
                    match by {
                        Some(Command::Rollback) => out.push_str(" by a rollback"),
                        Some(Command::Restore) => out.push_str(" by a restore"),
                        _ => {}
                    }
                }
                (None, _) => {
                    if let Some(built) = live.built_at {
                        out.push_str(&format!(" (built {}, {})", when(built), ago(built, now)));
                    }
                }
            }
            if let Some(generation) = &live.generation {
                out.push_str(&format!(", generation {generation}"));
            }
            let built = live.built.as_ref();
            match built.and_then(|b| b.snapshot_at) {
                Some(t) => out.push_str(&format!(", source snapshot {}", when(t))),
                None => out.push_str(", source snapshot unknown"),
            }
            match built.and_then(|b| b.rules_digest.as_deref()) {
                Some(d) => out.push_str(&format!(", rules {}", short_digest(d))),
                None => out.push_str(", rules digest unknown"),
            }
        }
    }
    // What builds this staging database: refresh, or restore on the staging side of an
    // air-gapped setup (the one whose record it holds; a swap starts the records afresh).
    let builder = if !state.runs.contains_key(&Command::Refresh)
        && (state.runs.contains_key(&Command::Restore)
            || state.live.as_ref().and_then(|l| l.swapped_in_by) == Some(Command::Restore))
    {
        Command::Restore
    } else {
        Command::Refresh
    };
    let refresh = state.runs.get(&builder).map(|r| &r.last);
    match refresh {
        Some(run) => out.push_str(&format!("; last {} {}", builder.name(), run_words(run))),
        None => out.push_str(&format!("; no {} recorded", builder.name())),
    }
    if let Some(latest) = state.last_run()
        && latest.command != builder
        && refresh.is_none_or(|r| latest.finished_at > r.finished_at)
    {
        out.push_str(&format!(
            "; then {} {}",
            latest.command.name(),
            run_words(latest)
        ));
    }
    out
}

/// `succeeded 2026-11-26 02:41:07 UTC` or `failed 2026-… (exit 3): <the error>`.
fn run_words(run: &RunSummary) -> String {
    if run.succeeded() {
        format!("succeeded {}", when(run.finished_at))
    } else {
        format!(
            "FAILED {} (exit {}): {}",
            when(run.finished_at),
            run.exit_code,
            run.outcome.lines().next().unwrap_or("")
        )
    }
}

/// `sha256:1a2b3c4d5e6f`: enough of the digest to compare two at a glance.
fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |colon| colon + 13);
    digest.get(..end).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run(command: Command, finished: &str, exit_code: i32, outcome: &str) -> RunSummary {
        let mut r = RunSummary::new(
            command,
            "app",
            "u@db:5432/postgres",
            at(finished),
            &Ok(0),
            outcome,
        );
        r.finished_at = at(finished);
        r.exit_code = exit_code;
        r
    }

    #[test]
    fn one_line_says_what_is_live_and_how_the_last_runs_ended() {
        let now = at("2026-11-27T06:00:00Z");
        let mut state = StagingState::unknown("app", "u@db:5432/postgres");
        assert_eq!(
            line(&state, now),
            "staging app on u@db:5432/postgres: nothing is live; no refresh recorded"
        );
        state.live = Some(LiveState {
            name: "app".into(),
            generation: Some("app__restage_20261126T023001_000000Z".into()),
            built_at: Some(at("2026-11-26T02:30:01Z")),
            since: Some(at("2026-11-26T02:41:00Z")),
            swapped_in_by: Some(Command::Refresh),
            built: Some(BuiltFrom {
                generation: Some("app__restage_20261126T023001Z".into()),
                snapshot_at: Some(at("2026-11-26T02:30:02Z")),
                rules_digest: Some(format!("sha256:{}", "ab".repeat(32))),
                restage_version: "0.1.0".into(),
            }),
            bytes: None,
        });
        state = state
            .with_run(&run(
                Command::Refresh,
                "2026-11-27T02:35:00Z",
                3,
                "failed: verification failed: x\nmore",
            ))
            .with_run(&run(Command::Verify, "2026-11-27T05:00:00Z", 0, "verified"));
        assert_eq!(
            line(&state, now),
            "staging app on u@db:5432/postgres: live since 2026-11-26 02:41:00 UTC (1d 3h ago), generation app__restage_20261126T023001_000000Z, source snapshot 2026-11-26 02:30:02 UTC, rules sha256:abababababab; last refresh FAILED 2026-11-27 02:35:00 UTC (exit 3): failed: verification failed: x; then verify succeeded 2026-11-27 05:00:00 UTC"
        );
    }

    /// Staging built by `restore` (an air-gapped setup) says so, and its last restore, not
    /// "no refresh recorded".
    #[test]
    fn a_restored_staging_says_it_went_live_by_a_restore() {
        let now = at("2026-11-27T06:00:00Z");
        let mut state = StagingState::unknown("app", "u@db:5432/postgres");
        state.live = Some(LiveState {
            name: "app".into(),
            generation: None,
            built_at: None,
            since: Some(at("2026-11-27T04:10:00Z")),
            swapped_in_by: Some(Command::Restore),
            built: None,
            bytes: None,
        });
        state = state.with_run(&run(Command::Restore, "2026-11-27T04:10:05Z", 0, "live"));
        assert_eq!(
            line(&state, now),
            "staging app on u@db:5432/postgres: live since 2026-11-27 04:10:00 UTC (1h 50m ago) by a restore, source snapshot unknown, rules digest unknown; last restore succeeded 2026-11-27 04:10:05 UTC"
        );
        // A refresh recorded later (the site went back to refreshing) is what the line shows.
        state = state.with_run(&run(
            Command::Refresh,
            "2026-11-27T05:00:00Z",
            1,
            "failed: x",
        ));
        assert!(
            line(&state, now)
                .ends_with("; last refresh FAILED 2026-11-27 05:00:00 UTC (exit 1): failed: x"),
            "{}",
            line(&state, now)
        );
    }

    #[test]
    fn ages_read_in_the_largest_units() {
        let now = at("2026-11-27T06:00:00Z");
        assert_eq!(ago(at("2026-11-27T05:59:30Z"), now), "30s ago");
        assert_eq!(ago(at("2026-11-27T05:30:00Z"), now), "30m ago");
        assert_eq!(ago(at("2026-11-27T02:45:00Z"), now), "3h 15m ago");
        assert_eq!(ago(at("2026-11-24T01:00:00Z"), now), "3d 5h ago");
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
    }
}
