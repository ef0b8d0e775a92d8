//! One restage command at a time per staging database, on the whole server.
//!
//! The lock is a session-level advisory lock taken in the staging database's **control
//! database**, `<base>__restage` (see [`Names`]): advisory locks belong to one database, so a
//! lock taken in whatever maintenance database `target.url` names would not be seen by a
//! second configuration that reaches the server through another one (`/postgres`,
//! `/other`). Every configuration of the same `target.database` derives the same control
//! database, so they all meet there. It is neither `template1` (every CREATE DATABASE
//! without a template copies it, and fails while a session is connected to it) nor the live
//! database (a `CREATE DATABASE … TEMPLATE <live>` copy would fail the same way, and the swap
//! ends every session on it); the role restage runs as owns it (CREATEDB is all it needs),
//! and it works on a server without a `postgres` database.
//!
//! The control database is created on first use (its registry, [`super::registry`], lives
//! there too); a command that created it and recorded nothing in it drops it again on its
//! way out, so a run refused before building leaves nothing behind.
//!
//! `refresh`, `rollback` and `generations --pin/--unpin` take the lock; `generations` takes
//! it only to repair and otherwise lists. A second command exits 4 at once, naming the
//! holder. The lock dies with its session, so a killed run never leaves a stale lock — and
//! a run that holds it knows every other unfinished run is dead.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::{self, DbError, Role, quote_ident, quote_literal};
use crate::error::Error;

use super::names::Names;
use super::registry;
use super::settings::TargetSettings;

/// The lock's first key: "re" in ASCII, so restage's locks are recognisable in `pg_locks`.
const CLASS: i32 = 0x7265;

/// The lock's second key, from the staging database's name (FNV-1a, stable across versions).
fn object_key(database: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in database.bytes() {
        hash ^= b as u32;
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// The two advisory lock keys for a staging database, as restage takes them in its control
/// database ([`control_database`]).
pub fn keys(database: &str) -> (i32, i32) {
    (CLASS, object_key(database))
}

/// The control database of a staging database: where the lock and the registry are.
pub fn control_database(database: &str) -> String {
    Names::of(database).control()
}

/// The lock, held by this command's session in the control database.
pub struct RunLock {
    /// The session that holds the lock; the registry and the swap use it.
    pub client: Client,
    /// The control database's server, as messages name it.
    pub server: String,
    pub names: Names,
    /// This command's id in the registry (and in its `application_name`).
    pub run_id: String,
    /// This command created the control database.
    created_control: bool,
}

/// Takes the lock for `target.database`, creating the control database if it does not
/// exist yet, or fails at once with [`Error::Locked`] naming the holder.
pub async fn acquire(
    admin: &Client,
    target: &TargetSettings,
    command: &'static str,
) -> Result<RunLock, Error> {
    let names = Names::of(&target.database);
    let endpoint = target.admin.with_database(&names.control());
    let (client, created_control) = match db::connect(&endpoint, Role::Target).await {
        Ok(client) => (client, false),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let created = create_control(admin, &target.admin.display, &names).await?;
            (db::connect(&endpoint, Role::Target).await?, created)
        }
        Err(e) => return Err(e.into()),
    };
    take(client, endpoint.display, names, command, created_control).await
}

/// Takes the lock when the control database exists; `None` when it does not (nothing of
/// this staging database is restage's yet).
pub async fn acquire_existing(
    target: &TargetSettings,
    command: &'static str,
) -> Result<Option<RunLock>, Error> {
    let names = Names::of(&target.database);
    let endpoint = target.admin.with_database(&names.control());
    match db::connect(&endpoint, Role::Target).await {
        Ok(client) => Ok(Some(
            take(client, endpoint.display, names, command, false).await?,
        )),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens a session in the control database without the lock, to read the registry; `None`
/// when the control database does not exist.
pub async fn read_only(target: &TargetSettings) -> Result<Option<(Client, String)>, Error> {
    let names = Names::of(&target.database);
    let endpoint = target.admin.with_database(&names.control());
    match db::connect(&endpoint, Role::Target).await {
        Ok(client) => Ok(Some((client, endpoint.display))),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the control database; false when another command created it first.
async fn create_control(admin: &Client, server: &str, names: &Names) -> Result<bool, DbError> {
    let control = names.control();
    // C collation and UTF-8 fit any server encoding; template0, so that a session on
    // template1 does not stop it.
    let create = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
        quote_ident(&control)
    );
    match admin.batch_execute(&create).await {
        Ok(()) => {}
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            return Ok(false);
        }
        Err(e) => {
            return Err(DbError::new(
                server,
                format!("creating restage's control database {control}"),
                e,
            ));
        }
    }
    let comment = format!(
        "restage: the run lock and the generations of staging database {}; dropping it makes restage forget which databases it built (see docs/operations.md)",
        names.database()
    );
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(&control),
            quote_literal(&comment)
        ))
        .await
        .map_err(|e| DbError::new(server, format!("describing {control}"), e))?;
    tracing::info!(database = %control, "created restage's control database");
    Ok(true)
}

async fn take(
    client: Client,
    server: String,
    names: Names,
    command: &'static str,
    created_control: bool,
) -> Result<RunLock, Error> {
    let (class, key) = keys(names.database());
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&class, &key])
        .await
        .map_err(|e| DbError::new(&server, "taking the run lock", e))?
        .get(0);
    if !got {
        let holder = holder(&client, class, key).await;
        return Err(Error::Locked(format!(
            "{server}: another restage command holds the lock for staging database {}{holder}; nothing was changed",
            names.database()
        )));
    }
    let run_id = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let fresh = registry::ensure(&client, &server, &names).await?;
    if fresh {
        for warning in registry::import_legacy(&client, &server, &names, &run_id).await? {
            tracing::warn!("{warning}");
        }
    }
    registry::begin_run(&client, &server, &run_id, command).await?;
    // Name the command in pg_stat_activity (unless the URL chose a name).
    let _ = client
        .batch_execute(&format!(
            "DO $$ BEGIN IF current_setting('application_name') = 'restage' THEN
                 PERFORM set_config('application_name', {}, false); END IF; END $$",
            quote_literal(&format!("restage {command} {run_id}"))
        ))
        .await;
    Ok(RunLock {
        client,
        server,
        names,
        run_id,
        created_control,
    })
}

/// Who holds the lock: ` (refresh, server pid …, …, since …)`, or nothing when it is gone.
async fn holder(client: &Client, class: i32, key: i32) -> String {
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'),
                    a.backend_start
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid::int = $1 AND l.objid::int = $2
              LIMIT 1",
            &[&class, &key],
        )
        .await
        .ok()
        .flatten();
    let Some(row) = row else {
        return String::new();
    };
    let pid: i32 = row.get(0);
    let application: String = row.get(1);
    let from: String = row.get(2);
    let mut since: String = row.get(3);
    let backend_start: chrono::DateTime<chrono::Utc> = row.get(4);
    // The command and when it took the lock, when it recorded itself.
    let mut command = String::new();
    if let Ok(Some(run)) = client
        .query_opt(
            "SELECT command, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"')
               FROM restage.runs WHERE pid = $1 AND backend_start = $2 AND finished_at IS NULL",
            &[&pid, &backend_start],
        )
        .await
    {
        command = format!("{}, ", run.get::<_, String>(0));
        since = run.get(1);
    }
    format!(
        " ({command}server pid {pid}, application_name {application}, from {from}, since {since})"
    )
}

impl RunLock {
    /// Records how the command ended and releases the lock (the session closes). A control
    /// database this command created and recorded nothing in is dropped, through `admin` (a
    /// session elsewhere on the server).
    pub async fn finish(self, admin: Option<&Client>, outcome: &str) {
        if let Err(e) =
            registry::finish_run(&self.client, &self.server, &self.run_id, outcome).await
        {
            tracing::warn!(error = %e, "could not record the end of the run");
        }
        let unused = self.created_control && registry::is_empty(&self.client).await;
        if let (true, Some(admin)) = (unused, admin) {
            // With the lock still held: FORCE ends this command's own session, and a command
            // that connects meanwhile waits for the drop, then finds no control database
            // (one already connected is ended too, and fails): never one that took the lock
            // between a release and the drop.
            let control = self.names.control();
            if let Err(e) = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&control)
                ))
                .await
            {
                tracing::debug!(error = %e, "could not drop the unused control database");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_stable() {
        assert_eq!(super::object_key("app"), super::object_key("app"));
        assert_ne!(super::object_key("app"), super::object_key("app2"));
        assert_eq!(super::control_database("app"), "app__restage");
    }
}
