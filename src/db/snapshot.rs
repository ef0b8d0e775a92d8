//! One consistent, read-only view of production for the whole run, and the table locks that
//! keep it true.
//!
//! The leader session opens a REPEATABLE READ READ ONLY transaction and exports its snapshot;
//! every worker session (and pg_dump) imports it, so all tables come from the same instant
//! while many stream at once. The leader's transaction stays open until the run ends: an
//! exported snapshot lives only as long as its transaction. Every session is also read-only
//! by `default_transaction_read_only` (see [`crate::db::Role::Source`]).
//!
//! **Locks (issue 11).** An MVCC snapshot does not survive the commands that are not
//! MVCC-safe: after a `TRUNCATE`, or an `ALTER TABLE` that rewrites the table (a new type, a
//! column with a volatile default), a snapshot taken before it sees the table empty. pg_dump
//! prevents this by holding `ACCESS SHARE` on every table it dumps for the whole dump; restage
//! does the same, and takes the locks *before* the snapshot, so no table can have been
//! rewritten between the two:
//!
//! 1. the leader connects and the caller lists the tables ([`Opening::client`], outside any
//!    transaction);
//! 2. `BEGIN`, then one `LOCK TABLE … IN ACCESS SHARE MODE` of them all — `LOCK` does not fix
//!    a REPEATABLE READ transaction's snapshot — bounded by `lock_timeout` (each lock) and by
//!    a `statement_timeout` of the same length (all of them together);
//! 3. the snapshot is taken and exported once every lock is held; a table dropped or renamed
//!    between 1 and 2 makes the listing start again ([`Locked::Changed`]); one created
//!    between 1 and 2 is locked after ([`Snapshot::lock_late`]) and refused if the snapshot
//!    cannot see it whole;
//! 4. the locks last as long as the leader's transaction: until the snapshot is dropped,
//!    after the last read of the source.
//!
//! While the leader waits, a line every few seconds names the table and the sessions it waits
//! behind — pid, user, `application_name`, state, time in its transaction, the lock it holds
//! or wants; never its query text, which can hold production values — and when the wait ends
//! in a timeout the failure names them the same way.
//!
//! No wait outlives restage: every source session has `lock_timeout` (the server gives up
//! too) and, on PostgreSQL 14 and later, `client_connection_check_interval`, so a backend
//! whose client is gone stops waiting within a second; a leader interrupted while it waits
//! also sends a cancel request.
//!
//! Worker sessions need `ACCESS SHARE` for their `COPY` too. The server grants it at once —
//! the leader holds the same lock — unless another session already waits for `ACCESS
//! EXCLUSIVE` on that table (a migration queued behind the leader): the worker then queues
//! behind it, for at most `lock_timeout` (pg_dump's parallel workers give up at once in this
//! case), and [`Snapshot::conflicts`] says who it waited for.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::db::PgEndpoint;
use crate::db::{self, DbError, Role};

/// A table to lock: its oid, its name as SQL and as printed.
#[derive(Debug, Clone)]
pub struct LockTarget {
    pub oid: u32,
    pub sql: String,
    pub display: String,
}

/// What the sessions of a run need to know of the source, read once by the leader.
#[derive(Debug, Clone)]
struct SourceFacts {
    /// The server's encoding (`SHOW server_encoding`): the one rows travel in, byte for byte
    /// (COPY's `ENCODING`; see [`crate::pg_encoding`]).
    encoding: String,
    /// `server_version_num`.
    version: i32,
}

/// The leader, connected, before its transaction: list the tables, then [`Opening::lock`].
pub struct Opening {
    leader: Client,
    endpoint: PgEndpoint,
    lock_timeout: Duration,
    pid: i32,
    facts: SourceFacts,
}

/// What [`Opening::lock`] found.
pub enum Locked {
    /// Every listed table is locked and the snapshot taken.
    Snapshot(Snapshot),
    /// A listed table no longer exists under its name (dropped or renamed since): list again.
    Changed(Opening),
}

pub struct Snapshot {
    leader: Client,
    pub id: String,
    endpoint: PgEndpoint,
    lock_timeout: Duration,
    pid: i32,
    facts: SourceFacts,
    locked: HashSet<u32>,
}

/// The settings every source session of a run gets: the lock wait bounded, and the wait of a
/// backend whose client went away cut short.
fn session_settings(lock_timeout: Duration, version: i32) -> String {
    let mut sql = format!(
        "SET lock_timeout = '{}ms';",
        lock_timeout.as_millis().max(1)
    );
    if version >= 140000 {
        sql.push_str(" SET client_connection_check_interval = '1s';");
    }
    sql
}

impl Opening {
    /// Connects the leader and sets its session up.
    pub async fn connect(
        endpoint: &PgEndpoint,
        lock_timeout: Duration,
    ) -> Result<Opening, DbError> {
        let leader = db::connect(endpoint, Role::Source).await?;
        let row = leader
            .query_one(
                "SELECT pg_backend_pid(), current_setting('server_encoding'),
                        current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(|e| DbError::new(&endpoint.display, "identifying the session", e))?;
        let facts = SourceFacts {
            encoding: row.get(1),
            version: row.get(2),
        };
        leader
            .batch_execute(&session_settings(lock_timeout, facts.version))
            .await
            .map_err(|e| DbError::new(&endpoint.display, "setting the lock timeout", e))?;
        Ok(Opening {
            leader,
            endpoint: endpoint.clone(),
            lock_timeout,
            pid: row.get(0),
            facts,
        })
    }

    /// The leader, outside any transaction: for listing the tables to lock.
    pub fn client(&self) -> &Client {
        &self.leader
    }

    /// Locks `tables` (ACCESS SHARE), then takes and exports the snapshot.
    pub async fn lock(self, tables: &[LockTarget]) -> Result<Locked, DbError> {
        let server = self.endpoint.display.clone();
        self.leader
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| DbError::new(&server, "starting the snapshot transaction", e))?;
        if let Err(e) = lock_tables(
            &self.leader,
            &self.endpoint,
            self.pid,
            self.lock_timeout,
            tables,
        )
        .await
        {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                self.leader
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| DbError::new(&server, "starting the snapshot again", e))?;
                return Ok(Locked::Changed(self));
            }
            return Err(e);
        }
        let id: String = self
            .leader
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| DbError::new(&server, "exporting the snapshot", e))?
            .get(0);
        Ok(Locked::Snapshot(Snapshot {
            leader: self.leader,
            id,
            endpoint: self.endpoint,
            lock_timeout: self.lock_timeout,
            pid: self.pid,
            facts: self.facts,
            locked: tables.iter().map(|t| t.oid).collect(),
        }))
    }
}

/// `LOCK TABLE` of `tables` on `leader` (inside its transaction), bounded by `timeout` in
/// all, reporting who it waits for while it waits.
async fn lock_tables(
    leader: &Client,
    endpoint: &PgEndpoint,
    pid: i32,
    timeout: Duration,
    tables: &[LockTarget],
) -> Result<(), DbError> {
    if tables.is_empty() {
        return Ok(());
    }
    let server = &endpoint.display;
    let ms = timeout.as_millis().max(1);
    let names: Vec<&str> = tables.iter().map(|t| t.sql.as_str()).collect();
    let sql = format!(
        "SET LOCAL statement_timeout = '{ms}ms'; LOCK TABLE {} IN ACCESS SHARE MODE; SET LOCAL statement_timeout = 0",
        names.join(", ")
    );
    let by_oid: BTreeMap<u32, &str> = tables.iter().map(|t| (t.oid, t.display.as_str())).collect();
    let mut guard = CancelOnDrop::new(leader, endpoint);
    let started = Instant::now();
    let lock = leader.batch_execute(&sql);
    let mut lock = std::pin::pin!(lock);
    let mut watcher: Option<Client> = None;
    let mut next_report = Duration::from_secs(1);
    let result = loop {
        let wait = next_report.saturating_sub(started.elapsed());
        tokio::select! {
            result = &mut lock => break result,
            _ = tokio::time::sleep(wait) => {
                next_report += Duration::from_secs(5);
                if watcher.is_none() {
                    watcher = db::connect(endpoint, Role::Source).await.ok();
                }
                if let Some(w) = &watcher
                    && let Some((oid, holders)) = waiting_for(w, pid).await
                {
                    let table = by_oid.get(&oid).copied().unwrap_or("a source table");
                    tracing::warn!(
                        "waiting for a lock on source table {table}: {}; giving up after {} (lock_timeout)",
                        describe(&holders),
                        seconds(timeout),
                    );
                }
            }
        }
    };
    guard.disarm();
    let Err(e) = result else { return Ok(()) };
    use tokio_postgres::error::SqlState;
    if e.code() != Some(&SqlState::LOCK_NOT_AVAILABLE)
        && e.code() != Some(&SqlState::QUERY_CANCELED)
    {
        return Err(DbError::new(server, "locking the source tables", e));
    }
    // Our request is gone; the sessions in the way are not.
    let watcher = match watcher {
        Some(w) => Some(w),
        None => db::connect(endpoint, Role::Source).await.ok(),
    };
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let found = match &watcher {
        Some(w) => conflicts_on(w, &oids, &[pid]).await,
        None => Vec::new(),
    };
    let mut message = String::new();
    if found.is_empty() {
        message.push_str(&format!(
            "the source tables could not be locked within {} (lock_timeout): another session held or wanted an ACCESS EXCLUSIVE lock on one of them",
            seconds(timeout)
        ));
    } else {
        let mut per_table: BTreeMap<u32, Vec<Holder>> = BTreeMap::new();
        for (oid, h) in found {
            per_table.entry(oid).or_default().push(h);
        }
        let parts: Vec<String> = per_table
            .iter()
            .map(|(oid, holders)| {
                format!(
                    "source table {} ({})",
                    by_oid.get(oid).copied().unwrap_or("?"),
                    describe(holders)
                )
            })
            .collect();
        message.push_str(&format!(
            "could not lock {} within {} (lock_timeout)",
            parts.join("; "),
            seconds(timeout)
        ));
    }
    message.push_str("; nothing was copied, staging is unchanged");
    Err(DbError::other(server, message))
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A session in the way of a lock: what restage may say about it (never its query).
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub state: Option<String>,
    /// Seconds in its current transaction.
    pub in_transaction: Option<f64>,
    /// The lock it holds on the table, or (`granted` false) the one it waits for.
    pub mode: String,
    pub granted: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = self
            .mode
            .strip_suffix("Lock")
            .unwrap_or(&self.mode)
            .chars()
            .fold(String::new(), |mut out, c| {
                if c.is_uppercase() && !out.is_empty() {
                    out.push(' ');
                }
                out.push(c.to_ascii_uppercase());
                out
            });
        let verb = if self.granted { "holds" } else { "waits for" };
        write!(f, "pid {} {verb} {mode}", self.pid)?;
        let mut about = Vec::new();
        if let Some(u) = &self.user {
            about.push(format!("user {u}"));
        }
        if let Some(a) = self.application_name.as_ref().filter(|a| !a.is_empty()) {
            about.push(format!("application_name {a:?}"));
        }
        if let Some(s) = &self.state {
            match self.in_transaction {
                Some(t) => about.push(format!("{s}, in a transaction for {t:.0}s")),
                None => about.push(s.clone()),
            }
        }
        if !about.is_empty() {
            write!(f, " ({})", about.join(", "))?;
        }
        Ok(())
    }
}

fn describe(holders: &[Holder]) -> String {
    let mut parts: Vec<String> = holders.iter().take(5).map(|h| h.to_string()).collect();
    if holders.len() > 5 {
        parts.push(format!("{} more", holders.len() - 5));
    }
    parts.join("; ")
}

const HOLDER_COLUMNS: &str = "a.pid, a.usename::text, a.application_name::text, a.state::text,
        extract(epoch FROM now() - a.xact_start)::float8, l.mode::text, l.granted";

fn holder(row: &tokio_postgres::Row, at: usize) -> Holder {
    Holder {
        pid: row.get(at),
        user: row.get(at + 1),
        application_name: row.get(at + 2),
        state: row.get(at + 3),
        in_transaction: row.get(at + 4),
        mode: row.get(at + 5),
        granted: row.get(at + 6),
    }
}

/// The table `pid` waits to lock, and the sessions in its way; None when it waits for none.
async fn waiting_for(watcher: &Client, pid: i32) -> Option<(u32, Vec<Holder>)> {
    let sql = format!(
        "SELECT w.relation, {HOLDER_COLUMNS}
           FROM (SELECT relation FROM pg_locks
                  WHERE pid = $1 AND NOT granted AND locktype = 'relation' LIMIT 1) w
           JOIN pg_locks l ON l.relation = w.relation AND l.locktype = 'relation'
                          AND l.pid = ANY (pg_blocking_pids($1))
           JOIN pg_stat_activity a ON a.pid = l.pid
          ORDER BY l.granted DESC, a.pid"
    );
    let rows = watcher.query(&sql, &[&pid]).await.ok()?;
    let oid: u32 = rows.first()?.get(0);
    Some((oid, rows.iter().map(|r| holder(r, 1)).collect()))
}

/// The sessions other than `ours` holding or waiting for ACCESS EXCLUSIVE (the one mode that
/// conflicts with ACCESS SHARE) on any of `oids`.
async fn conflicts_on(watcher: &Client, oids: &[u32], ours: &[i32]) -> Vec<(u32, Holder)> {
    let sql = format!(
        "SELECT l.relation, {HOLDER_COLUMNS}
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'relation' AND l.relation = ANY ($1)
            AND l.mode = 'AccessExclusiveLock' AND NOT (l.pid = ANY ($2))
          ORDER BY l.relation, l.granted DESC, a.pid"
    );
    match watcher.query(&sql, &[&oids, &ours]).await {
        Ok(rows) => rows.iter().map(|r| (r.get(0), holder(r, 1))).collect(),
        Err(_) => Vec::new(),
    }
}

/// Sends a cancel request for the leader's statement if dropped while armed: a run
/// interrupted while it waits for a lock leaves no backend waiting.
struct CancelOnDrop {
    token: Option<tokio_postgres::CancelToken>,
    endpoint: PgEndpoint,
}

impl CancelOnDrop {
    fn new(client: &Client, endpoint: &PgEndpoint) -> CancelOnDrop {
        CancelOnDrop {
            token: Some(client.cancel_token()),
            endpoint: endpoint.clone(),
        }
    }

    fn disarm(&mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        // Drop cannot wait, and the process may exit right after: send the request now, on
        // this thread, when the runtime allows blocking it (the binary's multi-threaded one).
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let Ok(connector) = self.endpoint.tls.connector() else {
            return;
        };
        tokio::task::block_in_place(|| {
            let _ = handle.block_on(tokio::time::timeout(
                Duration::from_secs(2),
                token.cancel_query(connector),
            ));
        });
    }
}

impl Snapshot {
    /// Locks the tables of `tables` that were not locked before the snapshot was taken (made
    /// between the listing and the lock), and refuses one the snapshot cannot see whole:
    /// rewritten (truncated, altered) since the snapshot.
    pub async fn lock_late(&mut self, tables: &[LockTarget]) -> Result<(), DbError> {
        let late: Vec<LockTarget> = tables
            .iter()
            .filter(|t| !self.locked.contains(&t.oid))
            .cloned()
            .collect();
        if late.is_empty() {
            return Ok(());
        }
        lock_tables(
            &self.leader,
            &self.endpoint,
            self.pid,
            self.lock_timeout,
            &late,
        )
        .await?;
        self.locked.extend(late.iter().map(|t| t.oid));
        // pg_class as the snapshot sees it against the file the table has now.
        let oids: Vec<u32> = late.iter().map(|t| t.oid).collect();
        let rewritten = self
            .leader
            .query(
                "SELECT oid FROM pg_class
                  WHERE oid = ANY ($1) AND relfilenode <> 0
                    AND relfilenode IS DISTINCT FROM pg_relation_filenode(oid)",
                &[&oids],
            )
            .await
            .map_err(|e| DbError::new(&self.endpoint.display, "checking the late tables", e))?;
        if let Some(row) = rewritten.first() {
            let oid: u32 = row.get(0);
            let name = late
                .iter()
                .find(|t| t.oid == oid)
                .map(|t| t.display.as_str())
                .unwrap_or("?");
            return Err(DbError::other(
                &self.endpoint.display,
                format!(
                    "source table {name} was created and then rewritten (TRUNCATE or ALTER TABLE) while the run started, so the snapshot cannot see it whole; nothing was copied, run again"
                ),
            ));
        }
        Ok(())
    }

    /// The leader session, inside the snapshot (for the catalog and planning queries).
    pub fn leader(&self) -> &Client {
        &self.leader
    }

    pub fn endpoint(&self) -> &PgEndpoint {
        &self.endpoint
    }

    /// The source server's `server_version_num`.
    pub fn server_version(&self) -> i32 {
        self.facts.version
    }

    /// The source database's encoding, as PostgreSQL names it (`UTF8`, `LATIN1`, …).
    pub fn encoding(&self) -> &str {
        &self.facts.encoding
    }

    /// The option that makes a `COPY … TO STDOUT` of this source send its rows in the
    /// source's own encoding, byte for byte: empty for UTF-8 (the sessions' encoding),
    /// ` (ENCODING '…')` otherwise.
    pub fn copy_encoding_option(&self) -> String {
        if self.facts.encoding.eq_ignore_ascii_case("UTF8") {
            String::new()
        } else {
            format!(" (ENCODING {})", db::quote_literal(&self.facts.encoding))
        }
    }

    /// The lock wait of every source session.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// A new read-only session that sees exactly the snapshot.
    pub async fn session(&self) -> Result<Client, DbError> {
        let client = db::connect(&self.endpoint, Role::Source).await?;
        client
            .batch_execute(&format!(
                "{} BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                session_settings(self.lock_timeout, self.facts.version),
                db::quote_literal(&self.id)
            ))
            .await
            .map_err(|e| DbError::new(&self.endpoint.display, "importing the snapshot", e))?;
        Ok(client)
    }

    /// When the snapshot was taken, by the source server's clock: the start of the leader's
    /// transaction, which exported the snapshot as its first statement.
    pub async fn taken_at(&self) -> Result<chrono::DateTime<chrono::Utc>, DbError> {
        self.leader
            .query_one("SELECT transaction_timestamp()", &[])
            .await
            .map(|row| row.get(0))
            .map_err(|e| DbError::new(&self.endpoint.display, "reading the snapshot's time", e))
    }

    /// The sessions other than restage's leader that hold or wait for ACCESS EXCLUSIVE on
    /// `table` (SQL), described for a message; empty when there are none or they cannot be
    /// read.
    pub async fn conflicts(&self, table: &str) -> String {
        let Ok(watcher) = db::connect(&self.endpoint, Role::Source).await else {
            return String::new();
        };
        let Ok(row) = watcher
            .query_one("SELECT to_regclass($1)::oid", &[&table])
            .await
        else {
            return String::new();
        };
        let Some(oid) = row.get::<_, Option<u32>>(0) else {
            return String::new();
        };
        let found: Vec<Holder> = conflicts_on(&watcher, &[oid], &[self.pid])
            .await
            .into_iter()
            .map(|(_, h)| h)
            .collect();
        describe(&found)
    }

    /// True while the leader's transaction (and so the snapshot) is alive.
    pub fn is_alive(&self) -> bool {
        !self.leader.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_described_without_its_query() {
        let h = Holder {
            pid: 4242,
            user: Some("app".into()),
            application_name: Some("migrate".into()),
            state: Some("idle in transaction".into()),
            in_transaction: Some(12.4),
            mode: "AccessExclusiveLock".into(),
            granted: true,
        };
        assert_eq!(
            h.to_string(),
            "pid 4242 holds ACCESS EXCLUSIVE (user app, application_name \"migrate\", idle in transaction, in a transaction for 12s)"
        );
        let w = Holder {
            granted: false,
            user: None,
            state: None,
            application_name: None,
            ..h
        };
        assert_eq!(w.to_string(), "pid 4242 waits for ACCESS EXCLUSIVE");
        assert_eq!(seconds(Duration::from_secs(30)), "30s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1500ms");
    }
}
