//! Staging generations on the target server: naming, markers, cleanup, the atomic swap and
//! rollback.
//!
//! Every database restage creates is named `<database>__restage_<YYYYMMDDTHHMMSSZ>` (its
//! birth time) until it goes live as `<database>`; a retired live database takes its birth
//! name again. Each carries a marker in `COMMENT ON DATABASE`:
//!
//! - `restage:building:<birth>` while it is loaded — anything still marked so when a refresh
//!   starts (with the lock held) is the leftover of a failed or killed run, and is dropped;
//! - `restage:live:<birth>` once swapped in;
//! - `restage:generation:<birth>` once retired, kept for rollback (`target.keep` of them).
//!
//! A database with the prefix and no marker is a leftover too (killed between CREATE DATABASE
//! and COMMENT): only restage makes such names, and `target.database` may not contain the
//! prefix.
//!
//! The swap: `ALLOW_CONNECTIONS false` on the live database, end its sessions, then both
//! renames and both markers in one transaction (PostgreSQL renames databases
//! transactionally), then allow connections again. Staging apps see the old database or the
//! new one, never a mix. If the process dies between the first step and the commit, the live
//! database is intact but refuses connections; the next restage command on that target
//! (refresh, generations, rollback) turns connections back on before anything else — with
//! the lock held, so never behind the back of a swap that is still running.

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio_postgres::Client;

use crate::db::{DbError, quote_ident, quote_literal};

pub const INFIX: &str = "__restage_";
const TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The birth timestamp of a new generation.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format(TIMESTAMP_FORMAT).to_string()
}

pub fn generation_name(database: &str, birth: &str) -> String {
    format!("{database}{INFIX}{birth}")
}

/// The state a marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Building,
    Live,
    Generation,
    /// Has the prefix but no marker: a leftover.
    Unmarked,
}

pub fn marker(state: State, birth: &str) -> String {
    let word = match state {
        State::Building => "building",
        State::Live => "live",
        State::Generation => "generation",
        State::Unmarked => "unmarked",
    };
    format!("restage:{word}:{birth}")
}

fn parse_marker(comment: &str) -> Option<(State, String)> {
    let rest = comment.strip_prefix("restage:")?;
    let (word, birth) = rest.split_once(':')?;
    let state = match word {
        "building" => State::Building,
        "live" => State::Live,
        "generation" => State::Generation,
        _ => return None,
    };
    Some((state, birth.to_string()))
}

/// A database of this target: the live one or one with the restage prefix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseInfo {
    pub name: String,
    pub state: State,
    /// Birth timestamp (from the marker, else from the name).
    pub birth: Option<String>,
    pub bytes: i64,
    pub allow_connections: bool,
    pub is_live: bool,
}

impl DatabaseInfo {
    pub fn birth_time(&self) -> Option<DateTime<Utc>> {
        let b = self.birth.as_deref()?;
        NaiveDateTime::parse_from_str(b, TIMESTAMP_FORMAT)
            .ok()
            .map(|t| t.and_utc())
    }
}

/// Lists the live database and every `<database>__restage_*` database on the server.
pub async fn list(
    admin: &Client,
    server: &str,
    database: &str,
) -> Result<Vec<DatabaseInfo>, DbError> {
    let pattern = format!("{}%", like_escape(&format!("{database}{INFIX}")));
    let rows = admin
        .query(
            "SELECT d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), ''),
                    CASE WHEN has_database_privilege(d.oid, 'CONNECT') AND d.datallowconn
                         THEN pg_database_size(d.oid) ELSE -1 END,
                    d.datallowconn
               FROM pg_database d
              WHERE d.datname = $1 OR d.datname LIKE $2
              ORDER BY d.datname",
            &[&database, &pattern],
        )
        .await
        .map_err(|e| DbError::new(server, "listing staging generations", e))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let name: String = row.get(0);
            let comment: String = row.get(1);
            let is_live = name == database;
            let (state, birth) = match parse_marker(&comment) {
                Some((s, b)) => (s, Some(b)),
                None if is_live => (State::Live, None),
                None => (
                    State::Unmarked,
                    name.strip_prefix(&format!("{database}{INFIX}"))
                        .map(str::to_string),
                ),
            };
            DatabaseInfo {
                name,
                state,
                birth,
                bytes: row.get(2),
                allow_connections: row.get(3),
                is_live,
            }
        })
        .collect())
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

/// Turns connections back on for a live database left refusing them by a swap that died
/// half-way. Returns true when it had to.
pub async fn repair_live(admin: &Client, server: &str, database: &str) -> Result<bool, DbError> {
    let row = admin
        .query_opt(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| DbError::new(server, "checking the live database", e))?;
    if let Some(row) = row
        && !row.get::<_, bool>(0)
    {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                quote_ident(database)
            ))
            .await
            .map_err(|e| DbError::new(server, "re-enabling connections on the live database", e))?;
        tracing::warn!(
            database,
            "the live staging database refused connections after an interrupted swap; re-enabled"
        );
        return Ok(true);
    }
    Ok(false)
}

/// Drops leftovers of failed or killed runs (building or unmarked). Call with the lock held.
pub async fn drop_leftovers(
    admin: &Client,
    server: &str,
    database: &str,
) -> Result<Vec<String>, DbError> {
    let mut dropped = Vec::new();
    for db in list(admin, server, database).await? {
        if !db.is_live && matches!(db.state, State::Building | State::Unmarked) {
            drop_database(admin, server, &db.name).await?;
            tracing::info!(database = %db.name, "removed the leftover of an earlier run");
            dropped.push(db.name);
        }
    }
    Ok(dropped)
}

pub async fn drop_database(admin: &Client, server: &str, name: &str) -> Result<(), DbError> {
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| DbError::new(server, format!("dropping database {name}"), e))
}

/// Creates the database a refresh builds into, marked as building, with the source's
/// encoding and locale ([`super::source_database`]); returns the warning of a fallback locale.
pub async fn create_building(
    admin: &Client,
    server: &str,
    name: &str,
    birth: &str,
    locale: &super::source_database::DatabaseLocale,
) -> Result<Option<String>, DbError> {
    let mut warning = None;
    let statements = locale.create_statements(name);
    let last = statements.len() - 1;
    for (i, (create, fallback)) in statements.into_iter().enumerate() {
        match admin.batch_execute(&create).await {
            Ok(()) => {
                warning = fallback;
                break;
            }
            Err(e) if i < last && super::source_database::is_locale_refusal(&e) => {
                tracing::debug!(error = %crate::db::describe(&e), "creating the database with this locale failed; trying the next");
            }
            Err(e) => return Err(DbError::new(server, format!("creating database {name}"), e)),
        }
    }
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    super::pause::point("created").await;
    set_marker(admin, server, name, State::Building, birth).await?;
    Ok(warning)
}

async fn set_marker(
    admin: &Client,
    server: &str,
    name: &str,
    state: State,
    birth: &str,
) -> Result<(), DbError> {
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(name),
            quote_literal(&marker(state, birth))
        ))
        .await
        .map_err(|e| DbError::new(server, format!("marking database {name}"), e))
}

/// What a swap did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwapOutcome {
    /// The database that is live now (always `<database>`), and its birth.
    pub live_birth: String,
    /// The generation name the previous live database got, if there was one.
    pub retired_as: Option<String>,
    pub sessions_ended: u64,
}

/// Swaps `incoming` (a generation or a freshly built database) in as `database`, retiring the
/// current live database under its birth name. `now` names a live database restage did not
/// create.
pub async fn swap(
    admin: &Client,
    server: &str,
    database: &str,
    incoming: &str,
    incoming_birth: &str,
    now: &str,
) -> Result<SwapOutcome, DbError> {
    let ctx = |what: &str| format!("swapping {incoming} in as {database}: {what}");
    let live = list(admin, server, database)
        .await?
        .into_iter()
        .find(|d| d.is_live);
    let mut sessions_ended = 0;
    let mut retired_as = None;
    if let Some(live) = &live {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                quote_ident(database)
            ))
            .await
            .map_err(|e| DbError::new(server, ctx("refusing new connections"), e))?;
        // From here on, any failure must turn connections back on before returning.
        let result = async {
            super::pause::point("swap").await;
            sessions_ended = end_sessions(admin, server, database).await?;
            let birth = live.birth.clone().unwrap_or_else(|| now.to_string());
            let mut retired = generation_name(database, &birth);
            if list(admin, server, database)
                .await?
                .iter()
                .any(|d| d.name == retired)
            {
                retired = generation_name(database, now);
            }
            let retired_birth = retired
                .strip_prefix(&format!("{database}{INFIX}"))
                .unwrap_or(now)
                .to_string();
            let sql = format!(
                "BEGIN;
                 ALTER DATABASE {live} RENAME TO {retired};
                 COMMENT ON DATABASE {retired} IS {retired_marker};
                 ALTER DATABASE {incoming} RENAME TO {live};
                 COMMENT ON DATABASE {live} IS {live_marker};
                 ALTER DATABASE {live} ALLOW_CONNECTIONS true;
                 COMMIT;",
                live = quote_ident(database),
                retired = quote_ident(&retired),
                retired_marker = quote_literal(&marker(State::Generation, &retired_birth)),
                incoming = quote_ident(incoming),
                live_marker = quote_literal(&marker(State::Live, incoming_birth)),
            );
            // A session may slip in between ending sessions and the rename (a superuser can
            // still connect, or a connection was half-open); end sessions and try again.
            let mut attempt = 0;
            loop {
                match admin.batch_execute(&sql).await {
                    Ok(()) => break,
                    Err(e)
                        if attempt < 5
                            && e.code()
                                == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                    {
                        let _ = admin.batch_execute("ROLLBACK").await;
                        attempt += 1;
                        sessions_ended += end_sessions(admin, server, database).await?;
                        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        let _ = admin.batch_execute("ROLLBACK").await;
                        return Err(DbError::new(server, ctx("renaming"), e));
                    }
                }
            }
            retired_as = Some(retired);
            Ok::<(), DbError>(())
        }
        .await;
        if let Err(e) = result {
            let _ = repair_live(admin, server, database).await;
            return Err(e);
        }
    } else {
        let sql = format!(
            "BEGIN;
             ALTER DATABASE {incoming} RENAME TO {live};
             COMMENT ON DATABASE {live} IS {live_marker};
             ALTER DATABASE {live} ALLOW_CONNECTIONS true;
             COMMIT;",
            live = quote_ident(database),
            incoming = quote_ident(incoming),
            live_marker = quote_literal(&marker(State::Live, incoming_birth)),
        );
        if let Err(e) = admin.batch_execute(&sql).await {
            let _ = admin.batch_execute("ROLLBACK").await;
            return Err(DbError::new(server, ctx("renaming"), e));
        }
    }
    Ok(SwapOutcome {
        live_birth: incoming_birth.to_string(),
        retired_as,
        sessions_ended,
    })
}

/// Ends every other session on `database`; returns how many.
async fn end_sessions(admin: &Client, server: &str, database: &str) -> Result<u64, DbError> {
    let rows = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .await
        .map_err(|e| DbError::new(server, format!("ending sessions on {database}"), e))?;
    // Termination is asynchronous: wait (briefly) until the sessions are gone.
    for _ in 0..50 {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .map_err(|e| DbError::new(server, format!("ending sessions on {database}"), e))?
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(rows.len() as u64)
}

/// Drops the oldest generations beyond `keep`. Returns the names dropped.
pub async fn retain(
    admin: &Client,
    server: &str,
    database: &str,
    keep: u32,
) -> Result<Vec<String>, DbError> {
    let mut generations: Vec<DatabaseInfo> = list(admin, server, database)
        .await?
        .into_iter()
        .filter(|d| d.state == State::Generation && !d.is_live)
        .collect();
    // Newest first, by birth timestamp (which sorts as text).
    generations.sort_by(|a, b| b.birth.cmp(&a.birth));
    let mut dropped = Vec::new();
    for old in generations.into_iter().skip(keep as usize) {
        drop_database(admin, server, &old.name).await?;
        dropped.push(old.name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_markers() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T16:25:13Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(t), "20261127T162513Z");
        assert_eq!(
            generation_name("app", "20261127T162513Z"),
            "app__restage_20261127T162513Z"
        );
        assert_eq!(marker(State::Building, "X"), "restage:building:X");
        assert_eq!(
            parse_marker("restage:generation:X"),
            Some((State::Generation, "X".into()))
        );
        assert_eq!(parse_marker("something else"), None);
    }
}
