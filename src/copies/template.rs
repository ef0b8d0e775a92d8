//! `CREATE DATABASE <copy> TEMPLATE <live>`: a file copy of the live staging database, which
//! PostgreSQL makes only while no other session is connected to the template.
//!
//! How restage gets that instant without locking staging's users out for the copy's length:
//!
//! 1. the run is recorded as "swapping" in the registry first, so if it dies from here on
//!    the next restage command turns connections back on (as after a swap that died,
//!    [`crate::refresh::generations::clean`]);
//! 2. `ALTER DATABASE <live> ALLOW_CONNECTIONS false`: no new session starts on it;
//! 3. the sessions on the live database are ended (`pg_terminate_backend`), and restage
//!    waits until they are gone;
//! 4. `CREATE DATABASE … TEMPLATE <live>` starts on a second session. Its first step takes a
//!    `ShareLock` on the template database, which every new connection to it must pass
//!    (they take `RowExclusiveLock` on it while they start): as soon as `pg_locks` shows that
//!    lock granted, restage runs `ALTER DATABASE <live> ALLOW_CONNECTIONS true`. From then
//!    on a new connection is not refused: it waits (inside its connection attempt) until the
//!    file copy ends, then starts normally;
//! 5. the copy ends; connections are (re-)allowed in every path — success, error, timeout,
//!    SIGINT/SIGTERM.
//!
//! So staging refuses new connections only between steps 2 and 4 (tens of milliseconds:
//! reported as `refused_ms`), new connections wait while the files are copied
//! (`copy_seconds`), and the sessions open at step 3 are ended: a template copy cannot
//! keep them (PostgreSQL refuses a template with another session on it).
//!
//! Every wait (the `ALTER DATABASE` behind another session's lock, the sessions' exit, the
//! template's lock) is bounded by `lock_timeout` in all; a session that comes back (a
//! prepared transaction on the live database, a superuser's half-open connection) makes the
//! copy retry within that time and then give up, naming who was there. A signal cancels the
//! statement in flight.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::{DbError, quote_ident};
use crate::error::Error;
use crate::refresh::generations::enable_connections;
use crate::refresh::lock::RunLock;
use crate::refresh::{pause, registry};
use crate::signal::Shutdown;

/// What the template copy took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Made {
    /// How long the live database refused new connections (steps 2–4).
    pub refused_ms: u64,
    /// How long `CREATE DATABASE` copied (new connections to the live database waited).
    pub copy_seconds: f64,
    /// Sessions on the live database that were ended.
    pub sessions_ended: u64,
    /// Times CREATE DATABASE found a session on the template and was tried again.
    pub retries: u32,
    /// CREATE DATABASE succeeded (even when a signal came as it finished).
    #[serde(skip)]
    pub created: bool,
}

/// Why a step stopped.
enum Stop {
    Signal(&'static str),
    TimedOut(String),
    Db(tokio_postgres::Error),
}

/// The two sessions of the copy: the control session (holds the run lock; runs the
/// `ALTER DATABASE`s and watches) and the creator (runs `CREATE DATABASE`).
pub struct Sessions<'a> {
    pub lock: &'a RunLock,
    pub creator: &'a Client,
}

/// Makes `name` from the live database `live` (oid `live_oid`), owned by `owner` when given.
/// On failure, the error and whether the database was created all the same (a signal that
/// came as CREATE DATABASE finished, connections that could not be turned back on).
pub async fn copy(
    sessions: &Sessions<'_>,
    shutdown: &mut Shutdown,
    name: &str,
    live: &str,
    live_oid: u32,
    owner: Option<&str>,
    timeout: Duration,
) -> Result<Made, (Error, bool)> {
    let lock = sessions.lock;
    let server = lock.server.as_str();
    let early = |e: DbError| (Error::from(e), false);
    let control_pid = pid(&lock.client, server).await.map_err(early)?;
    let creator_pid = pid(sessions.creator, server).await.map_err(early)?;
    registry::set_swapping(&lock.client, server, &lock.run_id, true)
        .await
        .map_err(early)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let mut made = Made::default();
    let mut run = Run {
        sessions,
        shutdown,
        control_pid,
        creator_pid,
        deadline,
    };
    let result = template_copy(&mut run, &mut made, name, live, live_oid, owner).await;
    // Connections back on, in every path.
    let restored = allow(lock, live, timeout).await;
    if restored.is_ok() {
        let _ = registry::set_swapping(&lock.client, server, &lock.run_id, false).await;
    }
    let _ = lock.client.batch_execute("RESET lock_timeout").await;
    let _ = sessions.creator.batch_execute("RESET lock_timeout").await;
    let mut error = match result {
        Ok(()) => {
            return match restored {
                Ok(()) => Ok(made),
                Err(e) => Err((
                    Error::Runtime(format!(
                        "{e}; the live database {live} refuses connections until the next restage command turns them back on"
                    )),
                    true,
                )),
            };
        }
        Err(stop) => run.error(stop, name, live, timeout),
    };
    if let Err(e) = restored {
        tracing::warn!(error = %e, "could not turn connections back on for the live database");
        let note = format!(
            "; the live database {live} refuses connections until the next restage command turns them back on"
        );
        match &mut error {
            Error::Interrupted { outcome, .. } => outcome.push_str(&note),
            Error::Runtime(message) => message.push_str(&note),
            _ => {}
        }
    }
    Err((error, made.created))
}

async fn pid(client: &Client, server: &str) -> Result<i32, DbError> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| DbError::new(server, "starting the copy", e))?
        .get(0))
}

/// Turns connections on for `live` when they are off (bounded by `timeout`).
async fn allow(lock: &RunLock, live: &str, timeout: Duration) -> Result<(), DbError> {
    let client = &lock.client;
    let refused = client
        .query_opt(
            "SELECT NOT datallowconn FROM pg_database WHERE datname::text = $1",
            &[&live],
        )
        .await
        .map_err(|e| DbError::new(&lock.server, "checking the live database", e))?
        .is_some_and(|r| r.get::<_, bool>(0));
    if !refused {
        return Ok(());
    }
    let _ = client
        .batch_execute(&format!(
            "SET lock_timeout = '{}ms'",
            timeout.as_millis().max(1)
        ))
        .await;
    let mut tries = 0;
    loop {
        match enable_connections(client, &lock.server, live).await {
            Err(e) if e.code() == Some(&SqlState::INTERNAL_ERROR) && tries < 10 => tries += 1,
            other => return other,
        }
    }
}

struct Run<'a, 'b> {
    sessions: &'a Sessions<'b>,
    shutdown: &'a mut Shutdown,
    control_pid: i32,
    creator_pid: i32,
    deadline: Instant,
}

impl Run<'_, '_> {
    fn left(&self, what: &str) -> Result<Duration, Stop> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Stop::TimedOut(what.to_string()))
        } else {
            Ok(left)
        }
    }

    /// Sets the server's `lock_timeout` of `client` to what is left.
    async fn arm(&mut self, client: &Client, pid: i32, what: &str) -> Result<(), Stop> {
        let left = self.left(what)?;
        let sql = format!("SET lock_timeout = '{}ms'", left.as_millis().max(1));
        self.run(what, pid, client.batch_execute(&sql)).await
    }

    /// Runs `work` (a statement of the session `pid`); cancels it on a signal.
    async fn run<T>(
        &mut self,
        what: &str,
        pid: i32,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Stop> {
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            done = &mut work => done.map_err(|e| classify(e, what)),
            signal = self.shutdown.wait() => {
                self.cancel(pid).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
                Err(Stop::Signal(signal))
            }
        }
    }

    /// Cancels the statement of the session `pid` from the other session.
    async fn cancel(&self, pid: i32) {
        let other = if pid == self.control_pid {
            self.sessions.creator
        } else {
            &self.sessions.lock.client
        };
        let _ = other.execute("SELECT pg_cancel_backend($1)", &[&pid]).await;
    }

    async fn sleep(&mut self, pid: i32, ms: u64) -> Result<(), Stop> {
        self.run("a pause", pid, async {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
        .await
    }

    /// Who is connected to `database` (pid, user, application, state; never a query).
    async fn who(&self, database: &str) -> String {
        let Ok(rows) = self
            .sessions
            .lock
            .client
            .query(
                "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
                        coalesce(a.state, '')
                   FROM pg_stat_activity a
                  WHERE a.datname::text = $1 AND a.pid <> pg_backend_pid()
                  ORDER BY a.pid LIMIT 5",
                &[&database],
            )
            .await
        else {
            return String::new();
        };
        let mut sessions: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "server pid {} (user {}, application {}, {})",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3)
                )
            })
            .collect();
        if let Ok(row) = self
            .sessions
            .lock
            .client
            .query_one(
                "SELECT count(*) FROM pg_prepared_xacts WHERE database::text = $1",
                &[&database],
            )
            .await
        {
            let prepared: i64 = row.get(0);
            if prepared > 0 {
                sessions.push(format!(
                    "{prepared} prepared transaction(s) (COMMIT PREPARED or ROLLBACK PREPARED them)"
                ));
            }
        }
        sessions.join(", ")
    }

    /// The error a stopped copy ends with.
    fn error(&self, stop: Stop, name: &str, live: &str, timeout: Duration) -> Error {
        let server = &self.sessions.lock.server;
        match stop {
            Stop::Signal(signal) => Error::Interrupted {
                signal,
                outcome: format!("no copy was made; the live database {live} accepts connections"),
            },
            Stop::TimedOut(what) => Error::Runtime(format!(
                "{server}: the copy of {live} as {name} gave up after {} (lock_timeout) waiting for {what}; no copy was made",
                crate::units::format_duration(timeout)
            )),
            Stop::Db(e) => Error::Db(DbError::new(server, format!("copying {live} as {name}"), e)),
        }
    }
}

fn classify(e: tokio_postgres::Error, what: &str) -> Stop {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        Stop::TimedOut(what.to_string())
    } else {
        Stop::Db(e)
    }
}

/// Steps 2–5 of the module doc (connections are turned back on by the caller).
async fn template_copy(
    run: &mut Run<'_, '_>,
    made: &mut Made,
    name: &str,
    live: &str,
    live_oid: u32,
    owner: Option<&str>,
) -> Result<(), Stop> {
    let control = &run.sessions.lock.client;
    let creator = run.sessions.creator;
    let control_pid = run.control_pid;
    let creator_pid = run.creator_pid;
    let mut create = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(name),
        quote_ident(live)
    );
    if let Some(owner) = owner {
        create.push_str(&format!(" OWNER {}", quote_ident(owner)));
    }
    let refuse = format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        quote_ident(live)
    );
    let allow = format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        quote_ident(live)
    );
    loop {
        // 2. No new session on the live database.
        let what = format!("a lock on database {live} (to refuse new connections)");
        let mut concurrent = 0;
        loop {
            run.arm(control, control_pid, &what).await?;
            match run
                .run(&what, control_pid, control.batch_execute(&refuse))
                .await
            {
                Err(Stop::Db(e)) if concurrently_updated(&e, &mut concurrent) => continue,
                other => break other?,
            }
        }
        let refused_at = Instant::now();
        run.run("the testing hook", control_pid, async {
            pause::point("copy").await;
            Ok(())
        })
        .await?;

        // 3. The sessions on it end.
        let what = format!("the sessions on {live} to end");
        let ended = run
            .run(
                &what,
                control_pid,
                control.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname::text = $1 AND pid <> pg_backend_pid()",
                    &[&live],
                ),
            )
            .await?;
        made.sessions_ended += ended.len() as u64;
        loop {
            let left: i64 = run
                .run(
                    &what,
                    control_pid,
                    control.query_one(
                        "SELECT count(*) FROM pg_stat_activity
                          WHERE datname::text = $1 AND pid <> pg_backend_pid()",
                        &[&live],
                    ),
                )
                .await?
                .get(0);
            if left == 0 {
                break;
            }
            if run.left(&what).is_err() {
                let who = run.who(live).await;
                return Err(Stop::TimedOut(format!("{what} ({who})")));
            }
            run.sleep(control_pid, 20).await?;
        }

        // 4. CREATE DATABASE on the creator; connections back on once it holds the template.
        let what = format!("a lock on database {live} (to copy it)");
        run.arm(creator, creator_pid, &what).await?;
        let copy_started = Instant::now();
        let mut creating = std::pin::pin!(creator.batch_execute(&create));
        let mut allowed = false;
        let outcome = loop {
            tokio::select! {
                biased;
                done = &mut creating => break done.map_err(|e| classify(e, &what)),
                signal = run.shutdown.wait() => {
                    run.cancel(creator_pid).await;
                    let late = tokio::time::timeout(Duration::from_secs(5), &mut creating).await;
                    made.created = matches!(late, Ok(Ok(())));
                    return Err(Stop::Signal(signal));
                }
                _ = tokio::time::sleep(Duration::from_millis(10)), if !allowed => {
                    let holds: bool = control
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM pg_locks
                                 WHERE locktype = 'object' AND classid = 'pg_database'::regclass
                                   AND objid = $1 AND pid = $2 AND granted AND mode = 'ShareLock')",
                            &[&live_oid, &creator_pid],
                        )
                        .await
                        .map_err(Stop::Db)?
                        .get(0);
                    if holds {
                        // New connections wait for the copy from here, instead of failing.
                        let mut concurrent = 0;
                        loop {
                            match control.batch_execute(&allow).await {
                                Err(e) if concurrently_updated(&e, &mut concurrent) => continue,
                                other => break other.map_err(Stop::Db)?,
                            }
                        }
                        allowed = true;
                        made.refused_ms += refused_at.elapsed().as_millis() as u64;
                    }
                }
            }
        };
        if !allowed {
            made.refused_ms += refused_at.elapsed().as_millis() as u64;
        }
        match outcome {
            Ok(()) => {
                made.created = true;
                made.copy_seconds = copy_started.elapsed().as_secs_f64();
                return Ok(());
            }
            // A session came back between step 3 and the lock: again, within the deadline.
            Err(Stop::Db(e)) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                let who = run.who(live).await;
                if run.left(&what).is_err() || made.retries >= 20 {
                    return Err(Stop::TimedOut(format!(
                        "{live} to have no other session ({who})"
                    )));
                }
                tracing::warn!(
                    "copy: {live} had another session when the copy started ({who}); trying again"
                );
                made.retries += 1;
            }
            Err(stop) => return Err(stop),
        }
    }
}

/// An ALTER DATABASE that waited for another session's change of the same `pg_database` row
/// fails with an internal error ("tuple concurrently updated") once that session commits:
/// worth another try, up to 10 times.
fn concurrently_updated(e: &tokio_postgres::Error, tries: &mut u32) -> bool {
    *tries += 1;
    e.code() == Some(&SqlState::INTERNAL_ERROR) && *tries <= 10
}
