//! restage's own state on the staging server: the schema `restage` of the control database
//! `<base>__restage` ([`super::lock`] creates it and holds the run lock in it). An operator's
//! `COMMENT ON DATABASE`, a rename or a database made by hand cannot change it; only SQL
//! against these tables can.
//!
//! - `restage.meta`: the schema version and the staging database this control database is
//!   for (a shortened base shared by two long names is refused, never mixed);
//! - `restage.runs`: one row per command that took the lock — its id, its control session
//!   (pid and backend start, so a run is known alive while that session is), whether it is
//!   inside a swap, when it finished;
//! - `restage.generations`: one row per database restage created or adopted — its generation
//!   name, its oid once created, the run that built it, its state (`building`, `live`,
//!   `retired`), when it was built, from which snapshot time, when it was last live, and
//!   whether it is pinned.
//!
//! The swap updates these rows in the same transaction as its renames ([`super::swap`]), so
//! the registry and `pg_database` never disagree after a crash.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::DbError;
use crate::error::Error;

use super::names::{INFIX, Names};

/// The layout of the tables below; a control database written by a newer restage is
/// refused rather than misread.
const SCHEMA_VERSION: i32 = 1;

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS restage;
COMMENT ON SCHEMA restage IS 'restage: the run lock''s records and the staging generations; see restage generations';
CREATE TABLE IF NOT EXISTS restage.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS restage.runs (
    run_id text PRIMARY KEY,
    command text NOT NULL,
    pid integer NOT NULL,
    backend_start timestamptz NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    swap_started_at timestamptz,
    finished_at timestamptz,
    outcome text
);
CREATE TABLE IF NOT EXISTS restage.generations (
    name text PRIMARY KEY,
    db_oid oid UNIQUE,
    origin text NOT NULL CHECK (origin IN ('built', 'adopted', 'imported')),
    run_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('building', 'live', 'retired')),
    built_at timestamptz,
    snapshot_at timestamptz,
    live_from timestamptz,
    live_to timestamptz,
    pinned boolean NOT NULL DEFAULT false
);
";

/// How a database came to be restage's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A refresh built it.
    Built,
    /// It was `target.database` when restage first swapped (`--adopt`): pinned until
    /// unpinned.
    Adopted,
    /// An earlier restage version built it (its `COMMENT ON DATABASE` marker was read once,
    /// when this registry was made).
    Imported,
}

impl Origin {
    fn parse(word: &str) -> Origin {
        match word {
            "adopted" => Origin::Adopted,
            "imported" => Origin::Imported,
            _ => Origin::Built,
        }
    }
}

/// The state a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Building,
    Live,
    Retired,
}

impl RecordState {
    fn parse(word: &str) -> RecordState {
        match word {
            "live" => RecordState::Live,
            "retired" => RecordState::Retired,
            _ => RecordState::Building,
        }
    }
}

/// One database restage created or adopted.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its generation name (what it is called when not live).
    pub name: String,
    /// Its oid in `pg_database`, once created.
    pub db_oid: Option<u32>,
    pub origin: Origin,
    /// The run that built (or adopted) it.
    pub run_id: String,
    pub state: RecordState,
    pub built_at: Option<DateTime<Utc>>,
    /// When the source snapshot it was built from was taken.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// Its latest period as the live database (`live_to` unset while live).
    pub live_from: Option<DateTime<Utc>>,
    pub live_to: Option<DateTime<Utc>>,
    pub pinned: bool,
}

/// A record, and whether the run that wrote it is still connected.
#[derive(Debug, Clone)]
pub struct Known {
    pub record: Record,
    pub run_alive: bool,
}

/// An unfinished run other than the caller's.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub run_id: String,
    /// It was inside a swap: the live database may refuse connections.
    pub swapping: bool,
}

fn failed(server: &str, what: &str) -> impl FnOnce(tokio_postgres::Error) -> DbError {
    let server = server.to_string();
    let what = what.to_string();
    move |e| DbError::new(server, format!("restage's registry: {what}"), e)
}

/// The tables do not exist (yet): a control database made by a run still starting.
fn is_missing(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME
    )
}

/// Creates the tables when they are missing (with the lock held) and checks this control
/// database is `names`'s. Returns true when the registry was new, in which case the
/// databases earlier restage versions marked are imported ([`import_legacy`]).
pub async fn ensure(client: &Client, server: &str, names: &Names) -> Result<bool, Error> {
    // DDL only when something is missing: a run needs no more than the rights on its tables.
    let complete: bool = client
        .query_one(
            "SELECT to_regclass('restage.meta') IS NOT NULL
                AND to_regclass('restage.runs') IS NOT NULL
                AND to_regclass('restage.generations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(failed(server, "looking for its tables"))?
        .get(0);
    if !complete {
        client
            .batch_execute(DDL)
            .await
            .map_err(failed(server, "creating its tables"))?;
    }
    let rows = client
        .query("SELECT key, value FROM restage.meta", &[])
        .await
        .map_err(failed(server, "reading it"))?;
    let value = |key: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == key)
            .map(|r| r.get::<_, String>(1))
    };
    match value("database") {
        None => {
            client
                .execute(
                    "INSERT INTO restage.meta VALUES ('database', $1), ('schema_version', $2)",
                    &[&names.database(), &SCHEMA_VERSION.to_string()],
                )
                .await
                .map_err(failed(server, "initialising it"))?;
            return Ok(true);
        }
        Some(d) if d != names.database() => {
            return Err(Error::Usage(format!(
                "target.database: {server}: restage's control database {} belongs to staging database {d}, not {} (their shortened names clash); rename one of the two staging databases",
                names.control(),
                names.database()
            )));
        }
        Some(_) => {}
    }
    let version: i32 = value("schema_version")
        .and_then(|v| v.parse().ok())
        .unwrap_or(SCHEMA_VERSION);
    if version > SCHEMA_VERSION {
        return Err(Error::Runtime(format!(
            "{server}: restage's control database {} was written by a newer restage (layout {version}, this one reads {SCHEMA_VERSION}); use that version",
            names.control()
        )));
    }
    Ok(false)
}

/// Every record, with whether its run is alive. Empty when the tables do not exist yet (a
/// control database made by a command still starting). Safe inside a transaction.
pub async fn known(client: &Client, server: &str) -> Result<Vec<Known>, DbError> {
    let present: bool = client
        .query_one(
            "SELECT to_regclass('restage.generations') IS NOT NULL AND to_regclass('restage.runs') IS NOT NULL",
            &[],
        )
        .await
        .map_err(failed(server, "looking for it"))?
        .get(0);
    if !present {
        return Ok(Vec::new());
    }
    let rows = match client
        .query(
            "SELECT g.name, g.db_oid, g.origin, g.run_id, g.state, g.built_at, g.snapshot_at,
                    g.live_from, g.live_to, g.pinned,
                    EXISTS (SELECT 1 FROM restage.runs r
                              JOIN pg_stat_activity a
                                ON a.pid = r.pid AND a.backend_start = r.backend_start
                             WHERE r.run_id = g.run_id AND r.finished_at IS NULL)
               FROM restage.generations g",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(failed(server, "reading the generations")(e)),
    };
    Ok(rows
        .into_iter()
        .map(|row| Known {
            record: Record {
                name: row.get(0),
                db_oid: row.get(1),
                origin: Origin::parse(row.get(2)),
                run_id: row.get(3),
                state: RecordState::parse(row.get(4)),
                built_at: row.get(5),
                snapshot_at: row.get(6),
                live_from: row.get(7),
                live_to: row.get(8),
                pinned: row.get(9),
            },
            run_alive: row.get(10),
        })
        .collect())
}

/// Records this run (its control session is the caller's).
pub async fn begin_run(
    client: &Client,
    server: &str,
    run_id: &str,
    command: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO restage.runs (run_id, command, pid, backend_start)
             SELECT $1, $2, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[&run_id, &command],
        )
        .await
        .map_err(failed(server, "recording the run"))?;
    Ok(())
}

/// Records how this run ended, and forgets runs finished long ago.
pub async fn finish_run(
    client: &Client,
    server: &str,
    run_id: &str,
    outcome: &str,
) -> Result<(), DbError> {
    client
        .batch_execute("DELETE FROM restage.runs WHERE finished_at < now() - interval '90 days'")
        .await
        .map_err(failed(server, "pruning old runs"))?;
    client
        .execute(
            "UPDATE restage.runs SET finished_at = now(), outcome = $2, swap_started_at = NULL
              WHERE run_id = $1",
            &[&run_id, &outcome],
        )
        .await
        .map_err(failed(server, "recording the end of the run"))?;
    Ok(())
}

/// Unfinished runs other than `ours`. Called with the lock held, when each of them is dead.
pub async fn dead_runs(
    client: &Client,
    server: &str,
    ours: &str,
) -> Result<Vec<Unfinished>, DbError> {
    let rows = client
        .query(
            "SELECT run_id, swap_started_at IS NOT NULL FROM restage.runs
              WHERE finished_at IS NULL AND run_id <> $1",
            &[&ours],
        )
        .await
        .map_err(failed(server, "reading unfinished runs"))?;
    Ok(rows
        .into_iter()
        .map(|r| Unfinished {
            run_id: r.get(0),
            swapping: r.get(1),
        })
        .collect())
}

pub async fn mark_dead(client: &Client, server: &str, runs: &[String]) -> Result<(), DbError> {
    if runs.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE restage.runs
                SET finished_at = now(), outcome = 'ended without finishing (killed, or its connection was lost)'
              WHERE run_id = ANY($1)",
            &[&runs],
        )
        .await
        .map_err(failed(server, "recording dead runs"))?;
    Ok(())
}

/// Marks this run as inside a swap (true) or out of it.
pub async fn set_swapping(
    client: &Client,
    server: &str,
    run_id: &str,
    swapping: bool,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE restage.runs SET swap_started_at = CASE WHEN $2 THEN now() END WHERE run_id = $1",
            &[&run_id, &swapping],
        )
        .await
        .map_err(failed(server, "recording the swap"))?;
    Ok(())
}

/// Reserves `name` for the database this run is about to create.
pub async fn reserve(
    client: &Client,
    server: &str,
    name: &str,
    run_id: &str,
    snapshot_at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO restage.generations (name, origin, run_id, state, built_at, snapshot_at)
             VALUES ($1, 'built', $2, 'building', now(), $3)",
            &[&name, &run_id, &snapshot_at],
        )
        .await
        .map_err(failed(server, "reserving a generation name"))?;
    Ok(())
}

/// Records the oid of the database just created under `name`.
pub async fn created(client: &Client, server: &str, name: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE restage.generations
                SET db_oid = (SELECT oid FROM pg_database WHERE datname::text = $1)
              WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(failed(server, "recording a new database"))?;
    Ok(())
}

pub async fn forget(client: &Client, server: &str, name: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM restage.generations WHERE name = $1", &[&name])
        .await
        .map_err(failed(server, "forgetting a database"))?;
    Ok(())
}

/// Pins or unpins the generation `name`; false when there is no such record.
pub async fn set_pinned(
    client: &Client,
    server: &str,
    name: &str,
    pinned: bool,
) -> Result<bool, DbError> {
    let n = client
        .execute(
            "UPDATE restage.generations SET pinned = $2 WHERE name = $1",
            &[&name, &pinned],
        )
        .await
        .map_err(failed(server, "pinning"))?;
    Ok(n == 1)
}

/// Inside the swap's transaction: the live record `name` retires as `retired_as`.
pub async fn retire(
    client: &Client,
    name: &str,
    retired_as: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE restage.generations SET state = 'retired', name = $2, live_to = now()
              WHERE name = $1",
            &[&name, &retired_as],
        )
        .await
        .map(|_| ())
}

/// Inside the swap's transaction: the live database restage did not build becomes an
/// adopted generation named `name`, pinned.
pub async fn adopt(
    client: &Client,
    name: &str,
    oid: u32,
    run_id: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO restage.generations (name, db_oid, origin, run_id, state, live_to, pinned)
             VALUES ($1, $2, 'adopted', $3, 'retired', now(), true)",
            &[&name, &oid, &run_id],
        )
        .await
        .map(|_| ())
}

/// Inside the swap's transaction: the record `name` goes live, and this run's swap is over.
pub async fn go_live(
    client: &Client,
    name: &str,
    run_id: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE restage.generations SET state = 'live', live_from = now(), live_to = NULL
              WHERE name = $1",
            &[&name],
        )
        .await?;
    client
        .execute(
            "UPDATE restage.runs SET swap_started_at = NULL WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .map(|_| ())
}

/// True when the registry has no record: a control database this run created and left
/// unused can go again.
pub async fn is_empty(client: &Client) -> bool {
    client
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM restage.generations)", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(false)
}

/// The markers restage versions before the registry wrote in `COMMENT ON DATABASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Legacy {
    Live,
    Generation,
    Building,
}

fn legacy_marker(comment: &str) -> Option<(Legacy, &str)> {
    let rest = comment.strip_prefix("restage:")?;
    let (word, birth) = rest.split_once(':')?;
    let state = match word {
        "live" => Legacy::Live,
        "generation" => Legacy::Generation,
        "building" => Legacy::Building,
        _ => return None,
    };
    Some((state, birth))
}

/// The comment an earlier version put on the live database it built.
pub fn legacy_live(comment: &str) -> bool {
    matches!(legacy_marker(comment), Some((Legacy::Live, _)))
}

/// When the registry is new: the databases earlier versions built and marked
/// (`restage:live:<birth>` on the live database, `restage:generation:<birth>` on
/// `<database>__restage_<birth>`) become records, so an upgrade needs no `--adopt` and keeps
/// its rollback points. A `building` marker is not imported: an earlier version's run may
/// still be going (its lock was another); it stays for the operator. Returns warnings.
pub async fn import_legacy(
    client: &Client,
    server: &str,
    names: &Names,
    run_id: &str,
) -> Result<Vec<String>, DbError> {
    let database = names.database();
    let old_prefix = format!("{database}{INFIX}");
    let rows = client
        .query(
            "SELECT oid, datname::text, coalesce(shobj_description(oid, 'pg_database'), '')
               FROM pg_database
              WHERE datname::text = $1 OR starts_with(datname::text, $2)
              ORDER BY datname",
            &[&database, &old_prefix],
        )
        .await
        .map_err(failed(server, "reading earlier versions' markers"))?;
    let mut warnings = Vec::new();
    for row in rows {
        let (oid, name, comment): (u32, String, String) = (row.get(0), row.get(1), row.get(2));
        let Some((marker, birth)) = legacy_marker(&comment) else {
            continue;
        };
        let built_at = chrono::NaiveDateTime::parse_from_str(birth, "%Y%m%dT%H%M%SZ")
            .ok()
            .map(|t| t.and_utc());
        let (record_name, state) = match marker {
            Legacy::Live if name == database => {
                let mut n = format!("{old_prefix}{birth}");
                if n.len() > super::names::MAX_NAME_BYTES {
                    n = names.generation(built_at.unwrap_or_else(Utc::now));
                }
                (n, "live")
            }
            Legacy::Generation if name != database => (name.clone(), "retired"),
            Legacy::Building => {
                warnings.push(format!(
                    "{name} is marked building by an earlier restage version; restage cannot prove that run is over and leaves it (drop it by hand when no run is going)"
                ));
                continue;
            }
            _ => continue,
        };
        let inserted = client
            .execute(
                "INSERT INTO restage.generations (name, db_oid, origin, run_id, state, built_at)
                 VALUES ($1, $2, 'imported', $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&record_name, &oid, &run_id, &state, &built_at],
            )
            .await
            .map_err(failed(server, "importing earlier versions' markers"))?;
        if inserted == 1 {
            tracing::info!(database = %name, "imported a database an earlier restage version built");
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_markers_are_read_and_nothing_else() {
        assert_eq!(
            legacy_marker("restage:generation:20261127T162513Z"),
            Some((Legacy::Generation, "20261127T162513Z"))
        );
        assert!(legacy_live("restage:live:20261127T162513Z"));
        assert!(!legacy_live("known good"));
        assert_eq!(legacy_marker("restage:unmarked:x"), None);
        assert_eq!(Origin::parse("adopted"), Origin::Adopted);
        assert_eq!(RecordState::parse("retired"), RecordState::Retired);
    }
}
