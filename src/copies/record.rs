//! What restage knows of its QA copies: the table `restage.copies` of the staging database's
//! control database (`<base>__restage`, next to the generations' registry,
//! [`crate::refresh::registry`]), so `restage copies` and `restage copies prune` read the same
//! records from any machine, and a database is a copy of restage's only when a record holds
//! its name **and** its oid (a name alone proves nothing: `qa_alice` made by hand is never
//! dropped).
//!
//! A copy's name is reserved (state `creating`, with the run that makes it) before its
//! `CREATE DATABASE`, and its oid recorded right after (state `ready`, with its expiry): a
//! copy killed half-way leaves a record whose run is dead, and prune removes what it left.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::db::DbError;

const DDL: &str = "
CREATE TABLE IF NOT EXISTS restage.copies (
    name text PRIMARY KEY,
    db_oid oid UNIQUE,
    run_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('creating', 'ready')),
    owner text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    from_generation text,
    snapshot_at timestamptz
);
COMMENT ON TABLE restage.copies IS 'restage: the QA copies of the live staging database (restage copy); restage copies prune drops the expired ones';
";

fn failed(server: &str, what: &str) -> impl FnOnce(tokio_postgres::Error) -> DbError {
    let server = server.to_string();
    let what = what.to_string();
    move |e| DbError::new(server, format!("restage's registry of copies: {what}"), e)
}

/// Creates the table when it is missing (with the run lock held; a run needs only the
/// rights on it once it exists).
pub async fn ensure(client: &Client, server: &str) -> Result<(), DbError> {
    if present(client, server).await? {
        return Ok(());
    }
    client
        .batch_execute(DDL)
        .await
        .map_err(failed(server, "creating its table"))
}

/// Whether the table exists (a control database no copy was made from has none).
pub async fn present(client: &Client, server: &str) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT to_regclass('restage.copies') IS NOT NULL", &[])
        .await
        .map_err(failed(server, "looking for it"))?
        .get(0))
}

/// Whether a record holds `name`.
pub async fn recorded(client: &Client, server: &str, name: &str) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM restage.copies WHERE name = $1)",
            &[&name],
        )
        .await
        .map_err(failed(server, "looking for a name"))?
        .get(0))
}

/// A copy about to be made.
pub struct Reservation<'a> {
    pub name: &'a str,
    pub run_id: &'a str,
    pub owner: Option<&'a str>,
    pub ttl_seconds: f64,
    /// The generation name of the live database it is made from, and its source snapshot.
    pub from_generation: &'a str,
    pub snapshot_at: Option<DateTime<Utc>>,
}

/// Reserves the name of the copy this run is about to create.
pub async fn reserve(client: &Client, server: &str, r: &Reservation<'_>) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO restage.copies (name, run_id, state, owner, expires_at, from_generation, snapshot_at)
             VALUES ($1, $2, 'creating', $3, now() + make_interval(secs => $4), $5, $6)",
            &[&r.name, &r.run_id, &r.owner, &r.ttl_seconds, &r.from_generation, &r.snapshot_at],
        )
        .await
        .map_err(failed(server, "reserving a name"))?;
    Ok(())
}

/// Records the oid of the database just created under `name`; its expiry counts from now.
pub async fn created(
    client: &Client,
    server: &str,
    name: &str,
    ttl_seconds: f64,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE restage.copies
                SET db_oid = (SELECT oid FROM pg_database WHERE datname::text = $1),
                    created_at = now(), expires_at = now() + make_interval(secs => $2)
              WHERE name = $1",
            &[&name, &ttl_seconds],
        )
        .await
        .map_err(failed(server, "recording a new copy"))?;
    Ok(())
}

/// The copy is complete (owner, grants and settings applied).
pub async fn ready(client: &Client, server: &str, name: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE restage.copies SET state = 'ready' WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(failed(server, "recording a copy ready"))?;
    Ok(())
}

pub async fn forget(client: &Client, server: &str, name: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM restage.copies WHERE name = $1", &[&name])
        .await
        .map_err(failed(server, "forgetting a copy"))?;
    Ok(())
}

/// Where a recorded copy stands, as the listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    /// Complete, not expired.
    Ready,
    /// Complete, past its expiry: `restage copies prune` drops it.
    Expired,
    /// Being made by a run that is alive.
    Creating,
    /// Being made by a run that died: prune drops what it left.
    Leftover,
    /// Its database was dropped or renamed by hand: prune forgets the record, never drops
    /// the renamed database.
    Missing,
}

impl CopyState {
    pub fn word(self) -> &'static str {
        match self {
            CopyState::Ready => "ready",
            CopyState::Expired => "expired",
            CopyState::Creating => "creating",
            CopyState::Leftover => "leftover",
            CopyState::Missing => "missing",
        }
    }
}

/// One copy, with its database as `pg_database` shows it now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
    pub name: String,
    pub state: CopyState,
    pub owner: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// The generation that was live when the copy was made, and its source snapshot.
    pub from_generation: Option<String>,
    pub snapshot_at: Option<String>,
    /// Its size, or -1 when it cannot be measured.
    pub bytes: i64,
    /// Sessions connected to it now.
    pub sessions: i64,
    /// Its oid, when the database is there under its name.
    #[serde(skip)]
    pub oid: Option<u32>,
}

/// Every record, matched against `pg_database` (by oid and name; a reserved name without
/// an oid yet, by name) and `pg_stat_activity`. Empty when no copy was ever made.
pub async fn list(client: &Client, server: &str) -> Result<Vec<Copy>, DbError> {
    if !present(client, server).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT c.name, c.state, c.owner,
                    to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    c.expires_at <= now(),
                    c.from_generation,
                    to_char(c.snapshot_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    d.oid,
                    CASE WHEN d.oid IS NOT NULL AND d.datallowconn
                              AND has_database_privilege(d.oid, 'CONNECT')
                         THEN pg_database_size(d.oid) ELSE -1 END,
                    (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid),
                    EXISTS (SELECT 1 FROM restage.runs r
                              JOIN pg_stat_activity a
                                ON a.pid = r.pid AND a.backend_start = r.backend_start
                             WHERE r.run_id = c.run_id AND r.finished_at IS NULL)
               FROM restage.copies c
               LEFT JOIN pg_database d
                 ON d.datname::text = c.name AND (d.oid = c.db_oid OR c.db_oid IS NULL)
              ORDER BY c.created_at, c.name",
            &[],
        )
        .await
        .map_err(failed(server, "reading it"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let ready = row.get::<_, String>(1) == "ready";
            let expired: bool = row.get(5);
            let oid: Option<u32> = row.get(8);
            let run_alive: bool = row.get(11);
            let state = if ready {
                match oid {
                    Some(_) if expired => CopyState::Expired,
                    Some(_) => CopyState::Ready,
                    None => CopyState::Missing,
                }
            } else if run_alive {
                CopyState::Creating
            } else {
                CopyState::Leftover
            };
            Copy {
                name: row.get(0),
                state,
                owner: row.get(2),
                created_at: row.get(3),
                expires_at: row.get(4),
                from_generation: row.get(6),
                snapshot_at: row.get(7),
                oid,
                bytes: row.get(9),
                sessions: row.get(10),
            }
        })
        .collect())
}
