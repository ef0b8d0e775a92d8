//! The swap: a database restage built (or a kept generation, for `rollback`) goes live as
//! `target.database`, and the live one retires under its generation name.
//!
//! 1. `ALTER DATABASE <live> ALLOW_CONNECTIONS false`, so no new session starts on it (this
//!    run is recorded as swapping first, so if it dies from here on, the next command turns
//!    connections back on);
//! 2. the sessions on the live database are ended;
//! 3. in one transaction: the live database renamed to its generation name, the new one to
//!    `target.database`, connections allowed on it, and the registry's records changed to
//!    match ([`super::registry`]): staging apps see the old database or the new one, never
//!    a mix, and the registry never disagrees with the server;
//! 4. COMMIT.
//!
//! Every wait in steps 1–3 is bounded by `lock_timeout` in all (the server's `lock_timeout`
//! is set to what is left before each statement), names what it waits for and who blocks it
//! (another session's uncommitted `GRANT … ON DATABASE`, say), and gives up with staging as
//! it was. A SIGINT or SIGTERM in steps 1–3 cancels the statement, rolls back and turns
//! connections back on: staging unchanged. Only the COMMIT is not interruptible; a signal
//! that arrives during it is acted on after it.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::{DbError, quote_ident};
use crate::error::Error;

use super::generations::{self, Entry, State, enable_connections};
use super::lock::RunLock;
use super::{pause, registry};

/// What a swap did (the report's `swap`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwapOutcome {
    /// The database that is live now (`target.database`).
    pub database: String,
    /// The generation name of the database that went live.
    pub went_live: String,
    /// The generation name the previous live database took, if there was one.
    pub retired_as: Option<String>,
    /// The previous live database was not restage's and was adopted (kept, pinned).
    pub adopted: bool,
    pub sessions_ended: u64,
    /// How long the swap waited for locks and sessions.
    pub waited_seconds: f64,
    /// When it committed, by the server's clock (its transaction's time: the new live
    /// database's `live_from`, the old one's `live_to`).
    pub swapped_at: String,
}

/// How the previous live database leaves.
enum Retiring {
    /// restage's: back to its generation name (or a new one when a database took it).
    Ours { record: String, retired_as: String },
    /// Not restage's, and `--adopt`: kept as a pinned generation under a new name.
    Adopted { oid: u32, retired_as: String },
}

impl Retiring {
    fn retired_as(&self) -> &str {
        match self {
            Retiring::Ours { retired_as, .. } | Retiring::Adopted { retired_as, .. } => retired_as,
        }
    }
}

/// Swaps the database recorded as `incoming` in as `target.database`. `monitor` is another
/// session on the server: it watches the wait and cancels it on a signal.
pub async fn swap<S>(
    lock: &RunLock,
    monitor: &Client,
    incoming: &str,
    adopt: bool,
    lock_timeout: Duration,
    signal: &mut S,
) -> Result<SwapOutcome, Error>
where
    S: Future<Output = &'static str> + Unpin,
{
    let server = lock.server.as_str();
    let database = lock.names.database();
    let inventory = generations::inventory(lock).await?;
    let coming: &Entry = inventory
        .find(incoming)
        .filter(|e| {
            matches!(e.state, State::Generation)
                || e.state == State::Building
                    && e.record.as_ref().is_some_and(|r| r.run_id == lock.run_id)
        })
        .ok_or_else(|| {
            Error::Runtime(format!(
                "{server}: {incoming} is not a generation restage can swap in (see `restage generations`)"
            ))
        })?;
    let coming_name = coming.db.name.clone();
    let retiring = match inventory.live() {
        None => None,
        Some(live) if live.state == State::Live => {
            let record = live.generation_name().to_string();
            let taken: bool = lock
                .client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname::text = $1)",
                    &[&record],
                )
                .await
                .map_err(|e| DbError::new(server, "checking generation names", e))?
                .get(0);
            let retired_as = if taken {
                generations::free_name(lock).await?
            } else {
                record.clone()
            };
            Some(Retiring::Ours { record, retired_as })
        }
        Some(live) if adopt => Some(Retiring::Adopted {
            oid: live.db.oid,
            retired_as: generations::free_name(lock).await?,
        }),
        Some(_) => return Err(generations::not_ours(server, &lock.names)),
    };

    let mut wait = Wait::new(lock, monitor, database, lock_timeout, signal).await?;
    let client = &lock.client;
    let mut sessions_ended = 0;

    // 1. No new sessions on the live database.
    if retiring.is_some() {
        registry::set_swapping(client, server, &lock.run_id, true).await?;
        let what = format!("a lock on database {database} (to refuse new connections)");
        let mut concurrent = 0;
        let refused = loop {
            if let Err(stop) = wait.arm(&what).await {
                break Err(stop);
            }
            let sql = format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                quote_ident(database)
            );
            match wait.run(&what, client.batch_execute(&sql)).await {
                // "tuple concurrently updated": the session that held the row committed its
                // own change. Try again (a few times: another internal error is reported).
                Err(Stop::Db(e)) if concurrently_updated(&e, &mut concurrent) => continue,
                other => break other,
            }
        };
        if let Err(stop) = refused {
            // A statement cancelled as it completed may have turned connections off after
            // all: restore_live looks.
            let error = wait.error(stop, incoming);
            return Err(restore_live(lock, database, lock_timeout, error).await);
        }
    }

    // 2 and 3, interruptible: any stop from here turns connections back on.
    let mut concurrent = 0;
    let renamed = async {
        wait.run("the testing hook", async {
            pause::point("swap").await;
            Ok(())
        })
        .await?;
        if retiring.is_some() {
            sessions_ended += wait.end_sessions(client, database).await?;
        }
        loop {
            match rename(&mut wait, lock, &coming_name, retiring.as_ref()).await {
                Ok(at) => return Ok(at),
                Err(Stop::Db(e)) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                    // A session slipped in (a superuser, or a half-open connection).
                    let _ = client.batch_execute("ROLLBACK").await;
                    sessions_ended += wait.end_sessions(client, database).await?;
                }
                Err(Stop::Db(e)) if concurrently_updated(&e, &mut concurrent) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                Err(stop) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(stop);
                }
            }
        }
    }
    .await;
    let swapped_at = match renamed {
        Ok(at) => at,
        Err(stop) => {
            let error = wait.error(stop, incoming);
            return Err(restore_live(lock, database, lock_timeout, error).await);
        }
    };

    // 4. The point of no return: not interruptible.
    pause::point("commit").await;
    if let Err(e) = client.batch_execute("COMMIT").await {
        let error = DbError::new(
            server,
            format!("swapping {incoming} in as {database}: COMMIT"),
            e,
        );
        return Err(restore_live(lock, database, lock_timeout, error.into()).await);
    }
    let _ = client.batch_execute("RESET lock_timeout").await;
    Ok(SwapOutcome {
        database: database.to_string(),
        went_live: incoming.to_string(),
        retired_as: retiring.as_ref().map(|r| r.retired_as().to_string()),
        adopted: matches!(retiring, Some(Retiring::Adopted { .. })),
        sessions_ended,
        waited_seconds: wait.started.elapsed().as_secs_f64(),
        swapped_at: swapped_at.to_rfc3339(),
    })
}

/// An ALTER DATABASE that waited for another session's change of the same `pg_database` row
/// fails with an internal error ("tuple concurrently updated") once that session commits:
/// worth another try, up to 10 times (counted in `tries`).
fn concurrently_updated(e: &tokio_postgres::Error, tries: &mut u32) -> bool {
    *tries += 1;
    e.code() == Some(&SqlState::INTERNAL_ERROR) && *tries <= 10
}

/// Step 3 up to (not including) the COMMIT, in a transaction this leaves open. Returns the
/// transaction's time.
async fn rename<S>(
    wait: &mut Wait<'_, S>,
    lock: &RunLock,
    coming: &str,
    retiring: Option<&Retiring>,
) -> Result<chrono::DateTime<chrono::Utc>, Stop>
where
    S: Future<Output = &'static str> + Unpin,
{
    let client = &lock.client;
    let database = lock.names.database();
    wait.run("BEGIN", client.batch_execute("BEGIN")).await?;
    let at: chrono::DateTime<chrono::Utc> = wait
        .run(
            "BEGIN",
            client.query_one("SELECT transaction_timestamp()", &[]),
        )
        .await?
        .get(0);
    if let Some(retiring) = retiring {
        let what = format!("a lock on database {database} (to rename it)");
        wait.arm(&what).await?;
        let sql = format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(database),
            quote_ident(retiring.retired_as())
        );
        wait.run(&what, client.batch_execute(&sql)).await?;
        let recorded = match retiring {
            Retiring::Ours { record, retired_as } => {
                registry::retire(client, record, retired_as).await
            }
            Retiring::Adopted { oid, retired_as } => {
                registry::adopt(client, retired_as, *oid, &lock.run_id).await
            }
        };
        recorded.map_err(Stop::Db)?;
    }
    let what = format!("a lock on database {coming} (to rename it to {database})");
    wait.arm(&what).await?;
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} ALLOW_CONNECTIONS true",
        quote_ident(coming),
        quote_ident(database),
        quote_ident(database)
    );
    wait.run(&what, client.batch_execute(&sql)).await?;
    wait.run(
        "the registry",
        registry::go_live(client, coming, &lock.run_id),
    )
    .await?;
    Ok(at)
}

/// After a swap that stopped before its COMMIT: connections back on for the live database
/// when step 1 turned them off, and the run no longer recorded as swapping. When that cannot
/// be done, the error says so: the next restage command repairs it.
async fn restore_live(
    lock: &RunLock,
    database: &str,
    lock_timeout: Duration,
    mut error: Error,
) -> Error {
    let client = &lock.client;
    let server = &lock.server;
    let refused = client
        .query_opt(
            "SELECT NOT datallowconn FROM pg_database WHERE datname::text = $1",
            &[&database],
        )
        .await
        .map(|row| row.is_some_and(|r| r.get::<_, bool>(0)));
    let restored = match refused {
        Ok(false) => Ok(()),
        Ok(true) => {
            let _ = client
                .batch_execute(&format!(
                    "SET lock_timeout = '{}ms'",
                    lock_timeout.as_millis().max(1)
                ))
                .await;
            let enabled = enable_connections(client, server, database).await;
            let _ = client.batch_execute("RESET lock_timeout").await;
            enabled
        }
        Err(e) => Err(DbError::new(server, "checking the live database", e)),
    };
    match restored {
        Ok(()) => {
            let _ = registry::set_swapping(client, server, &lock.run_id, false).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not turn connections back on for the live database");
            let note = format!(
                "; the live database {database} refuses connections until the next restage command turns them back on"
            );
            match &mut error {
                Error::Interrupted { outcome, .. } => outcome.push_str(&note),
                Error::Runtime(message) => message.push_str(&note),
                _ => {}
            }
        }
    }
    error
}

/// Why a wait ended early.
enum Stop {
    Signal(&'static str),
    /// `lock_timeout` ran out waiting for this.
    TimedOut(String),
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Stop {
        Stop::Db(e)
    }
}

/// The swap's waits: their deadline, the signal that ends them, who blocks them.
struct Wait<'a, S> {
    lock: &'a RunLock,
    monitor: &'a Client,
    signal: &'a mut S,
    database: &'a str,
    /// The control session's backend, whose waits are watched.
    pid: i32,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    /// Who blocked the swap last, as said on stderr.
    blockers: String,
    /// What the swap waited for last.
    waiting_for: String,
}

impl<'a, S> Wait<'a, S>
where
    S: Future<Output = &'static str> + Unpin,
{
    async fn new(
        lock: &'a RunLock,
        monitor: &'a Client,
        database: &'a str,
        timeout: Duration,
        signal: &'a mut S,
    ) -> Result<Wait<'a, S>, Error> {
        let pid: i32 = lock
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| DbError::new(&lock.server, "starting the swap", e))?
            .get(0);
        let started = Instant::now();
        Ok(Wait {
            lock,
            monitor,
            signal,
            database,
            pid,
            started,
            deadline: started + timeout,
            timeout,
            blockers: String::new(),
            waiting_for: String::new(),
        })
    }

    /// The server's `lock_timeout` for the next statement: what is left of the swap's.
    async fn arm(&mut self, what: &str) -> Result<(), Stop> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::TimedOut(what.to_string()));
        }
        let sql = format!("SET lock_timeout = '{}ms'", left.as_millis().max(1));
        self.run(what, self.lock.client.batch_execute(&sql)).await
    }

    /// Runs `work` (a statement on the control session, or a pause); says who blocks it while
    /// it waits; cancels it on a signal.
    async fn run<T>(
        &mut self,
        what: &str,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Stop> {
        let mut work = std::pin::pin!(work);
        let second = Duration::from_secs(1);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
        loop {
            tokio::select! {
                biased;
                done = &mut work => {
                    return match done {
                        Ok(v) => Ok(v),
                        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                            Err(Stop::TimedOut(what.to_string()))
                        }
                        Err(e) => Err(Stop::Db(e)),
                    };
                }
                signal = &mut *self.signal => {
                    // Cancel the statement (a session that is idle ignores it), and let it
                    // come back before the session is used again.
                    let _ = self
                        .monitor
                        .execute("SELECT pg_cancel_backend($1)", &[&self.pid])
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
                    return Err(Stop::Signal(signal));
                }
                _ = ticks.tick() => self.watch(what).await,
            }
        }
    }

    /// Says, once per change, who the control session waits for.
    async fn watch(&mut self, what: &str) {
        let Ok(rows) = self
            .monitor
            .query(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
                        coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''),
                        coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), ''),
                        coalesce(a.query, '')
                   FROM pg_stat_activity a
                  WHERE a.pid = ANY (pg_blocking_pids($1))
                  ORDER BY a.pid",
                &[&self.pid],
            )
            .await
        else {
            return;
        };
        let blockers: Vec<String> = rows
            .iter()
            .map(|r| {
                let application: String = r.get(1);
                let application = if application.is_empty() {
                    String::new()
                } else {
                    format!(", application {application}")
                };
                let query: String = r.get(6);
                format!(
                    "server pid {} (user {}, from {}{application}, {}, transaction open since {}, query {})",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4),
                    r.get::<_, String>(5),
                    statement_words(&query)
                )
            })
            .collect();
        let blockers = blockers.join(", ");
        if blockers.is_empty() || (blockers == self.blockers && what == self.waiting_for) {
            return;
        }
        let waited = self.started.elapsed().as_secs();
        tracing::warn!(
            "swap: waiting for {what}, blocked by {blockers}; {waited}s of lock_timeout {} gone, then the swap gives up and staging stays as it is",
            crate::units::format_duration(self.timeout)
        );
        self.blockers = blockers;
        self.waiting_for = what.to_string();
    }

    /// Ends the other sessions on `database` and waits (interruptibly, at most 5 s and what
    /// is left of the deadline) until they are gone; returns how many were ended.
    async fn end_sessions(&mut self, client: &Client, database: &str) -> Result<u64, Stop> {
        let what = format!("the sessions on {database} to end");
        let rows = self
            .run(
                &what,
                client.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&database],
                ),
            )
            .await?;
        let until = (Instant::now() + Duration::from_secs(5)).min(self.deadline);
        while Instant::now() < until {
            let left: i64 = self
                .run(
                    &what,
                    client.query_one(
                        "SELECT count(*) FROM pg_stat_activity
                          WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&database],
                    ),
                )
                .await?
                .get(0);
            if left == 0 {
                break;
            }
            self.run(&what, async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            })
            .await?;
        }
        Ok(rows.len() as u64)
    }

    /// The error a stopped swap ends the command with.
    fn error(&self, stop: Stop, incoming: &str) -> Error {
        let server = &self.lock.server;
        match stop {
            Stop::Signal(signal) => Error::Interrupted {
                signal,
                outcome: "staging is unchanged".into(),
            },
            Stop::TimedOut(what) => {
                let by = if self.blockers.is_empty() {
                    String::new()
                } else {
                    format!(", blocked by {}", self.blockers)
                };
                Error::Runtime(format!(
                    "{server}: the swap of {incoming} in as {} gave up after {} (lock_timeout) waiting for {what}{by}; staging is unchanged",
                    self.database,
                    crate::units::format_duration(self.timeout)
                ))
            }
            Stop::Db(e) => Error::Db(DbError::new(
                server,
                format!("swapping {incoming} in as {}", self.database),
                e,
            )),
        }
    }
}

/// The leading keywords of each statement of `query` (`BEGIN; GRANT CONNECT ON DATABASE`):
/// enough to say what a blocking session does, never a literal it carries (a password, a
/// production value) — a statement's words stop at the first that is not all letters.
fn statement_words(query: &str) -> String {
    let statements: Vec<String> = query
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|statement| {
            statement
                .split_whitespace()
                .take(4)
                .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
                .map(str::to_ascii_uppercase)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|words| !words.is_empty())
        .take(6)
        .collect();
    if statements.is_empty() {
        "unknown".to_string()
    } else {
        statements.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::statement_words;

    #[test]
    fn a_blocker_is_named_by_keywords_only() {
        assert_eq!(
            statement_words("grant connect on database app to qa;"),
            "GRANT CONNECT ON DATABASE"
        );
        assert_eq!(
            statement_words("BEGIN; GRANT CONNECT ON DATABASE app TO qa; SELECT pg_sleep(6)"),
            "BEGIN; GRANT CONNECT ON DATABASE; SELECT"
        );
        assert_eq!(
            statement_words("ALTER ROLE bob PASSWORD 'hunter2'"),
            "ALTER ROLE BOB PASSWORD"
        );
        assert_eq!(
            statement_words("UPDATE users SET email='a@b.c'"),
            "UPDATE USERS SET"
        );
        assert_eq!(statement_words("SELECT 'secret'"), "SELECT");
        assert_eq!(statement_words(""), "unknown");
    }
}
