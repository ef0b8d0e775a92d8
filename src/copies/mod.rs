//! QA copies of the live staging database (issue 17): `restage copy NAME [--ttl 8h]
//! [--owner ROLE]`, `restage copies` (list), `restage copies prune` (drop the expired ones),
//! `restage copies drop NAME`.
//!
//! - **The copy** is `CREATE DATABASE NAME TEMPLATE <live>`: a file copy, seconds for GBs
//!   ([`template`] says how restage gets the instant without other sessions it needs).
//! - **The lock**: `copy` takes the staging database's run lock ([`crate::refresh::lock`]),
//!   the one `refresh`, `rollback` and `generations --pin` take, so a copy never runs during
//!   a swap (the template would be renamed under it) nor a swap during a copy; while a
//!   refresh runs, `copy` exits 4 at once naming it. `copies`, `copies prune` and `copies
//!   drop` do not take it: they never touch the live database or a generation, and a prune
//!   from cron never makes a refresh exit 4.
//! - **The records** ([`record`]): in the control database `<base>__restage`, so any machine
//!   lists the same copies; a copy is dropped only when its record holds its name and oid.
//! - **What a copy carries**: everything inside the live database (schemas, data, the
//!   privileges `target.grants` were given on its objects, its `_restage` records) and, as
//!   restage sets them again, its database settings (`ALTER DATABASE … SET`, `ALTER ROLE …
//!   IN DATABASE … SET`) and `CONNECT` for `target.grants` (a template copy carries neither:
//!   they are the database's, not inside it). With `--owner ROLE` the role owns the database
//!   and is granted every privilege on its schemas, tables, sequences and functions; the
//!   objects keep their owner (handing them over would take `REASSIGN OWNED`, which also
//!   hands over every database restage's role owns on the server).

pub mod record;
pub mod template;

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::config::Config;
use crate::db::{self, DbError, Role, quote_ident, quote_literal};
use crate::error::{Error, Result};
use crate::progress::Ui;
use crate::refresh::generations::{self as gens, State};
use crate::refresh::names::{MAX_NAME_BYTES, Names};
use crate::refresh::settings::TargetSettings;
use crate::refresh::{access, lock, source_database};
use crate::signal::Shutdown;

use self::record::{Copy, CopyState};

/// The expiry of a copy when `--ttl` is not given.
pub const DEFAULT_TTL: &str = "24h";
/// The longest `--ttl`: a copy is meant for an afternoon, not a year.
const MAX_TTL: Duration = Duration::from_secs(90 * 86_400);

/// `restage copy` options.
#[derive(Debug, clap::Args, Clone)]
pub struct CopyArgs {
    /// The new database's name (letters, digits, `_` and `-`; at most 63 bytes).
    pub name: String,
    /// How long the copy lives: `restage copies prune` drops it after that (30m, 8h, 2d).
    #[arg(long, default_value = DEFAULT_TTL, value_name = "DURATION")]
    pub ttl: String,
    /// The role that owns the copy (it must exist on the staging server).
    #[arg(long, value_name = "ROLE")]
    pub owner: Option<String>,
}

/// `restage copies` options.
#[derive(Debug, clap::Args, Clone, Default)]
pub struct CopiesArgs {
    #[command(subcommand)]
    pub action: Option<CopiesAction>,
}

#[derive(Debug, clap::Subcommand, Clone)]
pub enum CopiesAction {
    /// Drop the expired copies (and what killed copies left); one with sessions is skipped.
    Prune,
    /// Drop one copy restage made, expired or not.
    Drop {
        /// The copy's name (see `restage copies`).
        name: String,
    },
}

/// A copy's name is usable: not empty, at most 63 bytes (PostgreSQL would cut a longer one
/// silently), letters, digits, `_` and `-` only, and none of the names restage gives the
/// staging database's own databases (the live one, its control database, generations).
pub fn check_name(name: &str, names: &Names) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the name is {} bytes long; PostgreSQL keeps at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "{} is not allowed in a copy's name (letters, digits, _ and - are)",
            describe_char(c)
        ));
    }
    if name == names.database() {
        return Err("it is the live staging database".into());
    }
    if name == names.control() {
        return Err("it is restage's control database".into());
    }
    if name.starts_with(&names.prefix()) {
        return Err(format!(
            "names starting with {} are staging generations'",
            names.prefix()
        ));
    }
    if name.starts_with("pg_") || name == "template0" || name == "template1" {
        return Err("it is a name PostgreSQL reserves".into());
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

/// `--ttl`: a duration over zero and at most 90 days.
pub fn parse_ttl(text: &str) -> std::result::Result<Duration, String> {
    let ttl = text.parse::<crate::units::Duration>()?.0;
    if ttl.is_zero() {
        return Err(format!(
            "`{text}` is no time at all; give one like 8h or 2d"
        ));
    }
    if ttl > MAX_TTL {
        return Err(format!(
            "`{text}` is more than 90 days; a copy is for testing (make a longer-lived database yourself)"
        ));
    }
    Ok(ttl)
}

/// What `restage copy` made (its `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Made {
    pub name: String,
    /// The live database it was copied from, and that database's generation name.
    pub from: String,
    pub from_generation: String,
    pub owner: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub bytes: i64,
    #[serde(flatten)]
    pub template: template::Made,
    pub warnings: Vec<String>,
}

/// `restage copy NAME`.
pub async fn copy(config: &Config, args: &CopyArgs, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "copy")?;
    let names = Names::of(&target.database);
    let name = args.name.as_str();
    check_name(name, &names)
        .map_err(|e| Error::Usage(format!("copy name {name:?}: {e}; nothing was changed")))?;
    let ttl = parse_ttl(&args.ttl)
        .map_err(|e| Error::Usage(format!("--ttl: {e}; nothing was changed")))?;
    let admin = db::connect(&target.admin, Role::Target).await?;
    let server = target.admin.display.clone();
    if let Some(owner) = &args.owner
        && !role_exists(&admin, &server, owner).await?
    {
        return Err(Error::Usage(format!(
            "--owner: {server}: no role named {owner} on the staging server; nothing was changed"
        )));
    }
    access::check_roles(&admin, &server, &target.grants).await?;
    if database_exists(&admin, &server, name).await? {
        return Err(taken(&server, name));
    }
    let Some(lock) = lock::acquire_existing(&target, "copy").await? else {
        return Err(no_live(&server, &target.database));
    };
    let result = make(&admin, &lock, &target, name, args.owner.as_deref(), ttl).await;
    let outcome = match &result {
        Ok(m) => format!("copied {} as {}", m.from, m.name),
        Err(e) => format!("failed: {e}"),
    };
    lock.finish(None, &outcome).await;
    let made = result?;
    for w in &made.warnings {
        tracing::warn!("{w}");
    }
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&made).unwrap_or_default()
        );
    } else {
        crate::output::outln!(
            "copied {} as {} ({}{}) in {:.1}s; it expires at {} (`restage copies prune` drops it then)",
            made.from,
            made.name,
            if made.bytes >= 0 {
                crate::units::human_bytes(made.bytes as u64)
            } else {
                "size unknown".to_string()
            },
            made.owner
                .as_ref()
                .map(|o| format!(", owned by {o}"))
                .unwrap_or_default(),
            made.template.copy_seconds,
            made.expires_at
        );
        crate::output::outln!(
            "{}: new connections were refused for {} ms and waited {:.1}s for the copy; {} session(s) on it were ended",
            made.from,
            made.template.refused_ms,
            made.template.copy_seconds,
            made.template.sessions_ended
        );
    }
    Ok(0)
}

fn taken(server: &str, name: &str) -> Error {
    Error::Usage(format!(
        "{server}: a database named {name} already exists; choose another name (nothing was changed)"
    ))
}

fn no_live(server: &str, database: &str) -> Error {
    Error::Usage(format!(
        "{server}: there is no staging database {database} restage built to copy (run `restage refresh` first); nothing was changed"
    ))
}

async fn role_exists(admin: &Client, server: &str, role: &str) -> Result<bool, DbError> {
    Ok(admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| DbError::new(server, "looking for the owner role", e))?
        .is_some())
}

async fn database_exists(admin: &Client, server: &str, name: &str) -> Result<bool, DbError> {
    Ok(admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname::text = $1",
            &[&name],
        )
        .await
        .map_err(|e| DbError::new(server, "looking for the copy's name", e))?
        .is_some())
}

/// The copy, with the lock held.
async fn make(
    admin: &Client,
    lock: &lock::RunLock,
    target: &TargetSettings,
    name: &str,
    owner: Option<&str>,
    ttl: Duration,
) -> Result<Made> {
    let server = lock.server.clone();
    let mut shutdown =
        Shutdown::new().map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    // A dead swap's or copy's refused connections are turned back on first.
    let cleaned = gens::clean(lock, false).await?;
    let inventory = gens::inventory(lock).await?;
    let live = match inventory.live() {
        Some(live) if live.state == State::Live => live.clone(),
        Some(_) => {
            return Err(Error::Usage(format!(
                "{server}: {} was not built by restage (see `restage generations`); restage copies only the staging database it built. Nothing was changed",
                target.database
            )));
        }
        None => return Err(no_live(&server, &target.database)),
    };
    if !live.db.allow_connections {
        return Err(Error::Runtime(format!(
            "{server}: the live database {} refuses connections (ALTER DATABASE … ALLOW_CONNECTIONS false by hand); restage leaves it so and makes no copy",
            target.database
        )));
    }
    // Under the lock, the name again: a database, a generation's name, a record.
    record::ensure(&lock.client, &server).await?;
    if inventory.find(name).is_some()
        || database_exists(&lock.client, &server, name).await?
        || record::recorded(&lock.client, &server, name).await?
    {
        return Err(taken(&server, name));
    }
    let record = live.record.as_ref();
    let from_generation = live.generation_name().to_string();
    let reservation = record::Reservation {
        name,
        run_id: &lock.run_id,
        owner,
        ttl_seconds: ttl.as_secs_f64(),
        from_generation: &from_generation,
        snapshot_at: record.and_then(|r| r.snapshot_at),
    };
    record::reserve(&lock.client, &server, &reservation).await?;
    let sessions = template::Sessions {
        lock,
        creator: admin,
    };
    let made = template::copy(
        &sessions,
        &mut shutdown,
        name,
        &target.database,
        live.db.oid,
        owner,
        target.lock_timeout,
    )
    .await;
    let made = match made {
        Ok(made) => made,
        Err((e, created)) => return Err(undo(lock, name, e, created).await),
    };
    record::created(&lock.client, &server, name, ttl.as_secs_f64()).await?;
    let finishing = async {
        let mut warnings = cleaned.warnings.clone();
        warnings.extend(finish(admin, lock, target, name, owner).await?);
        record::ready(&lock.client, &server, name).await?;
        Ok::<_, Error>(warnings)
    };
    // A signal that came meanwhile is seen first (the handlers keep it).
    let finished = tokio::select! {
        biased;
        signal = shutdown.wait() => Err(Error::Interrupted {
            signal,
            outcome: "the half-made copy was dropped; the live database accepts connections".into(),
        }),
        done = finishing => done,
    };
    let warnings = match finished {
        Ok(w) => w,
        Err(e) => return Err(undo(lock, name, e, true).await),
    };
    let row = lock
        .client
        .query_one(
            "SELECT to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    coalesce(pg_database_size(c.db_oid), -1)
               FROM restage.copies c WHERE c.name = $1",
            &[&name],
        )
        .await
        .map_err(|e| DbError::new(&server, "reading the copy's record", e))?;
    Ok(Made {
        name: name.to_string(),
        from: target.database.clone(),
        from_generation,
        owner: owner.map(str::to_string),
        created_at: row.get(0),
        expires_at: row.get(1),
        bytes: row.get(2),
        template: made,
        warnings,
    })
}

/// After a failure or a signal: the database this run created (`created`) goes, with its
/// record — only the database its CREATE made (the oid recorded, when it was), never one
/// that took the name otherwise; `error` is returned, with what could not be undone.
async fn undo(lock: &lock::RunLock, name: &str, mut error: Error, created: bool) -> Error {
    let removed = async {
        if created {
            let mine: bool = lock
                .client
                .query_one(
                    "SELECT coalesce((SELECT c.db_oid = d.oid FROM restage.copies c, pg_database d
                                       WHERE c.name = $1 AND d.datname::text = $1
                                         AND c.db_oid IS NOT NULL), true)",
                    &[&name],
                )
                .await
                .map_err(|e| DbError::new(&lock.server, "checking the half-made copy", e))?
                .get(0);
            if mine {
                gens::drop_database(&lock.client, &lock.server, name).await?;
            }
        }
        record::forget(&lock.client, &lock.server, name).await
    }
    .await;
    if let Err(e) = removed {
        let note =
            format!("; {name} could not be removed ({e}): `restage copies prune` removes it");
        match &mut error {
            Error::Interrupted { outcome, .. } => outcome.push_str(&note),
            Error::Runtime(message) => message.push_str(&note),
            _ => tracing::warn!("{}", note.trim_start_matches("; ")),
        }
    }
    error
}

/// The database settings, grants, owner's privileges and comment of the new copy; returns
/// warnings (settings the server refused, a comment it would not take).
async fn finish(
    admin: &Client,
    lock: &lock::RunLock,
    target: &TargetSettings,
    name: &str,
    owner: Option<&str>,
) -> Result<Vec<String>> {
    let server = &target.admin.display;
    let mut warnings = Vec::new();
    // The live database's own settings: a template copy does not carry them.
    let settings =
        source_database::settings_of(admin, server, "$1::text::name", &[&target.database]).await?;
    let mut refused = Vec::new();
    for s in &settings {
        if let Err(e) = admin.batch_execute(&s.sql(name)).await {
            refused.push(format!("{}: {}", s.label(), db::describe(&e)));
        }
    }
    if !refused.is_empty() {
        warnings.push(format!(
            "database settings the staging server refused on {name} (not set): {}",
            refused.join("; ")
        ));
    }
    let endpoint = target.admin.with_database(name);
    let copy = db::connect(&endpoint, Role::Target).await?;
    access::grant(&copy, &endpoint.display, name, &target.grants).await?;
    if let Some(owner) = owner {
        grant_owner(&copy, &endpoint.display, owner).await?;
    }
    let expires: String = lock
        .client
        .query_one(
            "SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"')
               FROM restage.copies WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(|e| DbError::new(&lock.server, "reading the copy's expiry", e))?
        .get(0);
    let comment = format!(
        "restage: a QA copy of {} (restage copy), expires {expires}; restage copies prune drops it then",
        target.database
    );
    if let Err(e) = admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(name),
            quote_literal(&comment)
        ))
        .await
    {
        warnings.push(format!(
            "{name}: the comment was not set: {}",
            db::describe(&e)
        ));
    }
    Ok(warnings)
}

/// `--owner`: every privilege on the copy's schemas, tables, sequences and functions.
async fn grant_owner(copy: &Client, server: &str, owner: &str) -> Result<(), DbError> {
    let schemas: Vec<String> = copy
        .query(
            "SELECT nspname::text FROM pg_namespace
              WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                AND nspname NOT LIKE 'pg\\_temp%' AND nspname NOT LIKE 'pg\\_toast\\_temp%'",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "listing schemas for the owner", e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let role = quote_ident(owner);
    let mut sql = String::new();
    for schema in &schemas {
        let schema = quote_ident(schema);
        sql.push_str(&format!(
            "GRANT ALL ON SCHEMA {schema} TO {role};
             GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role};
             GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
             GRANT ALL ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};\n"
        ));
    }
    copy.batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, format!("granting {owner} the copy's objects"), e))
}

/// What `restage copies prune` did (its `--json`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Pruned {
    pub dropped: Vec<String>,
    /// Copies kept although expired, and why (sessions connected).
    pub skipped: Vec<Skipped>,
    /// Records of copies dropped or renamed by hand, forgotten (a renamed one is never dropped).
    pub forgotten: Vec<String>,
    /// Copies not expired, kept.
    pub kept: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// `restage copies [prune | drop NAME]`.
pub async fn copies(config: &Config, args: &CopiesArgs, ui: &Ui) -> Result<i32> {
    let target = TargetSettings::from_config(config, "copies")?;
    let admin = db::connect(&target.admin, Role::Target).await?;
    repair_live(&admin, &target).await;
    let control = lock::read_only(&target).await?;
    let listed = match &control {
        Some((client, server)) => record::list(client, server).await?,
        None => Vec::new(),
    };
    match &args.action {
        None => {
            if ui.json {
                crate::output::outln!(
                    "{}",
                    serde_json::to_string_pretty(&listed).unwrap_or_else(|_| "[]".into())
                );
            } else if listed.is_empty() {
                crate::output::outln!(
                    "no copies of {} on {}",
                    target.database,
                    target.admin.display
                );
            } else {
                crate::output::out!("{}", listing_text(&listed));
            }
            Ok(0)
        }
        Some(CopiesAction::Prune) => {
            let mut pruned = Pruned::default();
            if let Some((client, server)) = &control {
                for copy in &listed {
                    prune_one(client, server, copy, &mut pruned).await?;
                }
            }
            if ui.json {
                crate::output::outln!(
                    "{}",
                    serde_json::to_string_pretty(&pruned).unwrap_or_default()
                );
            } else {
                for name in &pruned.dropped {
                    crate::output::outln!("dropped {name}");
                }
                for s in &pruned.skipped {
                    crate::output::outln!("skipped {}: {}", s.name, s.reason);
                }
                for name in &pruned.forgotten {
                    crate::output::outln!(
                        "forgot {name} (dropped or renamed by hand; never dropped by restage)"
                    );
                }
                crate::output::outln!(
                    "{} dropped, {} skipped, {} kept (not expired)",
                    pruned.dropped.len(),
                    pruned.skipped.len(),
                    pruned.kept.len()
                );
            }
            Ok(0)
        }
        Some(CopiesAction::Drop { name }) => {
            let server = &target.admin.display;
            let not_ours = || {
                Error::Usage(format!(
                    "{server}: restage made no copy named {name} (see `restage copies`); it drops only its own. Nothing was changed"
                ))
            };
            let (Some((client, control_server)), Some(copy)) =
                (&control, listed.iter().find(|c| &c.name == name))
            else {
                return Err(not_ours());
            };
            match copy.state {
                CopyState::Creating => {
                    return Err(Error::Runtime(format!(
                        "{server}: {name} is being made by a restage copy that is still running; nothing was changed"
                    )));
                }
                CopyState::Missing => {
                    record::forget(client, control_server, name).await?;
                    return Err(Error::Usage(format!(
                        "{server}: the copy {name} was dropped or renamed by hand; restage forgot it and dropped nothing"
                    )));
                }
                _ => {}
            }
            if let DropOutcome::Left(reason) = drop_copy(client, control_server, copy).await? {
                return Err(Error::Runtime(format!(
                    "{server}: {name} was not dropped: {reason}"
                )));
            }
            if ui.json {
                crate::output::outln!("{}", serde_json::json!({ "dropped": name }));
            } else {
                crate::output::outln!("dropped {name}");
            }
            Ok(0)
        }
    }
}

/// A live database left refusing connections by a copy or swap that died is repaired, as
/// `restage generations` does (with the lock, when it is free).
async fn repair_live(admin: &Client, target: &TargetSettings) {
    let refused = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname::text = $1 AND NOT datallowconn",
            &[&target.database],
        )
        .await
        .map(|r| r.is_some())
        .unwrap_or(false);
    if !refused {
        return;
    }
    if let Ok(Some(lock)) = lock::acquire_existing(target, "copies").await {
        if let Err(e) = gens::clean(&lock, false).await {
            tracing::warn!(error = %e, "could not repair the live staging database");
        }
        lock.finish(None, "repaired").await;
    }
}

async fn prune_one(
    client: &Client,
    server: &str,
    copy: &Copy,
    pruned: &mut Pruned,
) -> Result<(), DbError> {
    match copy.state {
        CopyState::Ready | CopyState::Creating => pruned.kept.push(copy.name.clone()),
        CopyState::Missing => {
            record::forget(client, server, &copy.name).await?;
            pruned.forgotten.push(copy.name.clone());
        }
        CopyState::Expired | CopyState::Leftover => match drop_copy(client, server, copy).await? {
            DropOutcome::Dropped => pruned.dropped.push(copy.name.clone()),
            DropOutcome::Gone => pruned.forgotten.push(copy.name.clone()),
            DropOutcome::Left(reason) => pruned.skipped.push(Skipped {
                name: copy.name.clone(),
                reason,
            }),
        },
    }
    Ok(())
}

/// What [`drop_copy`] did.
enum DropOutcome {
    Dropped,
    /// There was no database to drop (a killed copy's reservation): the record is forgotten.
    Gone,
    /// Left, and why.
    Left(String),
}

/// Drops a copy restage made: only the database its record names with that oid, never one
/// with sessions (`DROP DATABASE` without FORCE).
async fn drop_copy(client: &Client, server: &str, copy: &Copy) -> Result<DropOutcome, DbError> {
    let now: Option<u32> = client
        .query_opt(
            "SELECT oid FROM pg_database WHERE datname::text = $1",
            &[&copy.name],
        )
        .await
        .map_err(|e| DbError::new(server, "checking a copy", e))?
        .map(|r| r.get(0));
    match (now, copy.oid) {
        (None, _) => {
            // A leftover whose CREATE never happened, or a copy dropped meanwhile.
            record::forget(client, server, &copy.name).await?;
            return Ok(DropOutcome::Gone);
        }
        (Some(now), Some(recorded)) if now == recorded => {}
        _ => {
            return Ok(DropOutcome::Left(
                "the database of that name is not the one restage made; left alone".into(),
            ));
        }
    }
    if copy.sessions > 0 {
        return Ok(DropOutcome::Left(format!(
            "{} session(s) connected to it",
            copy.sessions
        )));
    }
    match client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&copy.name)
        ))
        .await
    {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
            return Ok(DropOutcome::Left("a session connected to it".into()));
        }
        Err(e) => return Err(DbError::new(server, format!("dropping {}", copy.name), e)),
    }
    record::forget(client, server, &copy.name).await?;
    tracing::info!(database = %copy.name, "dropped a copy");
    Ok(DropOutcome::Dropped)
}

/// The text form of `restage copies`.
fn listing_text(listed: &[Copy]) -> String {
    let rows: Vec<[String; 7]> = listed
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.state.word().to_string(),
                c.owner.clone().unwrap_or_else(|| "-".into()),
                c.created_at.clone(),
                c.expires_at.clone(),
                c.sessions.to_string(),
                if c.bytes >= 0 {
                    crate::units::human_bytes(c.bytes as u64)
                } else {
                    "-".to_string()
                },
            ]
        })
        .collect();
    let header = [
        "copy", "state", "owner", "created", "expires", "sessions", "size",
    ];
    crate::output::text_table(header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_touched() {
        let names = Names::of("app");
        assert_eq!(check_name("qa_alice", &names), Ok(()));
        assert_eq!(check_name("qa-bob-2", &names), Ok(()));
        assert_eq!(check_name("été", &names), Ok(()));
        assert!(check_name("", &names).is_err());
        assert!(check_name(&"x".repeat(64), &names).is_err());
        assert_eq!(check_name(&"x".repeat(63), &names), Ok(()));
        // 63 bytes, not characters: 32 two-byte characters are 64.
        assert!(check_name(&"é".repeat(32), &names).is_err());
        for bad in ["a b", "a\"b", "a;b", "a'b", "a\0b", "a\nb", "a.b", "a/b"] {
            assert!(check_name(bad, &names).is_err(), "{bad:?}");
        }
        assert!(check_name("app", &names).is_err(), "the live database");
        assert!(
            check_name("app__restage", &names).is_err(),
            "the control database"
        );
        assert!(check_name("app__restage_20261201T000000_000000Z", &names).is_err());
        assert!(check_name("pg_copy", &names).is_err());
        assert!(check_name("template1", &names).is_err());
        assert!(
            check_name("app_qa", &names).is_ok(),
            "a sibling name is fine"
        );
        let nul = check_name("a\0b", &names).unwrap_err();
        assert!(nul.contains("U+0000"), "{nul}");
    }

    #[test]
    fn ttls_are_positive_and_bounded() {
        assert_eq!(parse_ttl("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_ttl(DEFAULT_TTL), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("-1h").is_err());
        assert!(parse_ttl("91d").is_err());
        assert!(parse_ttl("").is_err());
    }
}
