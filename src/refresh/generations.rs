//! Staging generations on the target server: how they are named, what restage knows of each
//! (its [`registry`](super::registry), matched against `pg_database`), the removal of dead
//! runs' leftovers, the creation of the database a refresh builds into, and retention.
//!
//! **Names** ([`super::names`]): `<base>__restage_<YYYYMMDDTHHMMSS>_<microseconds>Z`, the
//! birth time in UTC, until the database goes live as `<database>`; a retired live database
//! takes its name again. A name restage picks is also free on the server and in the registry
//! (a clash moves the birth time on by a microsecond), so back-to-back runs never collide.
//!
//! **What is restage's.** A database is restage's only when the registry holds a record of
//! it with the same oid and name: a name alone proves nothing (an operator may create
//! `app__restage_…` by hand, or rename a generation). Everything else on the server is
//! `unmanaged`: listed, never dropped, never swapped. A record whose database was dropped or
//! renamed by hand is forgotten (restage stops managing a renamed database; it never drops
//! it).
//!
//! **Leftovers.** A `building` record belongs to the run that reserved its name (recorded
//! with its control session's pid and start time). Every run holds the run lock on that
//! session for its whole life ([`super::lock`]), so a run that holds the lock knows every
//! other unfinished run is dead: their `building` databases are leftovers, and only those
//! are dropped (a name reserved by a dead run and never recorded with an oid counts, since
//! restage reserves the name before CREATE DATABASE).
//!
//! **Retention.** Retired generations are ordered by when they were last live, most
//! recent first (then by build time): that is the order of `restage rollback`, and
//! `target.keep` of them are kept. Pinned generations (`restage generations --pin`, and
//! every adopted database until it is unpinned) are never dropped and do not count toward
//! `keep`.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::db::{DbError, quote_ident};
use crate::error::Error;

use super::lock::{self, RunLock};
use super::names::Names;
use super::registry::{self, Known, Origin, Record, RecordState};
use super::settings::TargetSettings;

/// A database on the staging server, as `pg_database` shows it.
#[derive(Debug, Clone)]
pub struct ServerDb {
    pub oid: u32,
    pub name: String,
    pub allow_connections: bool,
    /// Its size, or -1 when it cannot be measured (it refuses connections).
    pub bytes: i64,
    /// Its `COMMENT ON DATABASE` (the operator's; restage writes none on generations).
    pub comment: String,
}

/// What a database of this staging database is, for restage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// `target.database`, built (or adopted) by restage.
    Live,
    /// A retired live database, kept for rollback.
    Generation,
    /// Being built by a run that is alive.
    Building,
    /// Being built by a run that died: the next refresh drops it.
    Leftover,
    /// Not restage's (made or renamed by hand, or the live database restage did not build):
    /// never dropped, never swapped.
    Unmanaged,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Generation => "generation",
            State::Building => "building",
            State::Leftover => "leftover",
            State::Unmanaged => "unmanaged",
        }
    }
}

/// One database of the inventory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub db: ServerDb,
    pub state: State,
    /// restage's record of it (none for an unmanaged database).
    pub record: Option<Record>,
}

impl Entry {
    /// The name a generation carries when it is not live.
    pub fn generation_name(&self) -> &str {
        self.record
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or(&self.db.name)
    }

    pub fn pinned(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.pinned)
    }
}

/// A record whose database is no longer where restage left it.
#[derive(Debug, Clone)]
pub struct Lost {
    pub record: Record,
    /// The database's name now, when it was renamed (none: it was dropped).
    pub renamed_to: Option<String>,
}

impl Lost {
    /// What happened, for a warning.
    pub fn describe(&self, database: &str) -> String {
        let was = match self.record.state {
            RecordState::Live => format!("the live database {database} ({})", self.record.name),
            _ => format!("generation {}", self.record.name),
        };
        match &self.renamed_to {
            Some(to) => format!(
                "{was} was renamed to {to} by hand; restage no longer manages it and never drops it"
            ),
            None => format!("{was} was dropped by hand; restage forgot it"),
        }
    }
}

/// Every database of one staging database on the server, as restage sees it.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub names: Names,
    /// The live database first, then generations in rollback order, then building and
    /// leftover databases, then unmanaged ones.
    pub entries: Vec<Entry>,
    pub lost: Vec<Lost>,
}

impl Inventory {
    /// The database named `target.database`, restage's or not.
    pub fn live(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.db.name == self.names.database())
    }

    /// The kept generations, most recently live first: the order of rollback and retention.
    pub fn generations(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.state == State::Generation)
    }

    /// A database by the name `restage generations` shows (or, for the live one, its
    /// generation name).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.db.name == name).or_else(|| {
            self.entries
                .iter()
                .find(|e| e.record.as_ref().is_some_and(|r| r.name == name))
        })
    }
}

/// Reads the server's databases of this staging database and (`with_registry`: `client` is
/// in the control database) restage's records, in one snapshot, and matches them: a swap
/// committing meanwhile is seen whole or not at all.
pub async fn survey(
    client: &Client,
    server: &str,
    names: &Names,
    with_registry: bool,
) -> Result<Inventory, DbError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| DbError::new(server, "listing staging generations", e))?;
    let read = async {
        let known = if with_registry {
            registry::known(client, server).await?
        } else {
            Vec::new()
        };
        let dbs = server_databases(client, server, names, &known).await?;
        Ok::<_, DbError>(classify(names, dbs, known))
    }
    .await;
    let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    let inventory = read?;
    ended.map_err(|e| DbError::new(server, "listing staging generations", e))?;
    Ok(inventory)
}

async fn server_databases(
    client: &Client,
    server: &str,
    names: &Names,
    known: &[Known],
) -> Result<Vec<ServerDb>, DbError> {
    let oids: Vec<u32> = known.iter().filter_map(|k| k.record.db_oid).collect();
    let recorded: Vec<String> = known.iter().map(|k| k.record.name.clone()).collect();
    let rows = client
        .query(
            "SELECT d.oid, d.datname::text, d.datallowconn,
                    CASE WHEN has_database_privilege(d.oid, 'CONNECT') AND d.datallowconn
                         THEN pg_database_size(d.oid) ELSE -1 END,
                    coalesce(shobj_description(d.oid, 'pg_database'), '')
               FROM pg_database d
              WHERE d.datname::text = $1 OR d.datname::text LIKE $2
                 OR d.oid = ANY($3) OR d.datname::text = ANY($4)",
            &[
                &names.database(),
                &format!("{}%", like_escape(&names.prefix())),
                &oids,
                &recorded,
            ],
        )
        .await
        .map_err(|e| DbError::new(server, "listing staging generations", e))?;
    Ok(rows
        .into_iter()
        .map(|row| ServerDb {
            oid: row.get(0),
            name: row.get(1),
            allow_connections: row.get(2),
            bytes: row.get(3),
            comment: row.get(4),
        })
        .collect())
}

/// The pure half of [`survey`]: which database is which.
fn classify(names: &Names, dbs: Vec<ServerDb>, known: Vec<Known>) -> Inventory {
    let control = names.control();
    let mut claimed = vec![false; dbs.len()];
    let mut entries = Vec::new();
    let mut lost = Vec::new();
    for Known { record, run_alive } in known {
        // Where restage left it: the live one under the live name, the others under theirs.
        let expected = match record.state {
            RecordState::Live => names.database().to_string(),
            _ => record.name.clone(),
        };
        let found = match record.db_oid {
            Some(oid) => dbs.iter().position(|d| d.oid == oid),
            // Reserved, not yet recorded with its oid: only a building database can be so.
            None if record.state == RecordState::Building => {
                dbs.iter().position(|d| d.name == expected)
            }
            None => None,
        };
        match found {
            Some(i) if dbs[i].name == expected && !claimed[i] => {
                claimed[i] = true;
                let state = match record.state {
                    RecordState::Live => State::Live,
                    RecordState::Retired => State::Generation,
                    RecordState::Building if run_alive => State::Building,
                    RecordState::Building => State::Leftover,
                };
                entries.push(Entry {
                    db: dbs[i].clone(),
                    state,
                    record: Some(record),
                });
            }
            Some(i) => lost.push(Lost {
                record,
                renamed_to: Some(dbs[i].name.clone()),
            }),
            None => lost.push(Lost {
                record,
                renamed_to: None,
            }),
        }
    }
    let prefix = names.prefix();
    for (db, claimed) in dbs.into_iter().zip(claimed) {
        // A database renamed out of the family is no longer this staging database's.
        let family = db.name == names.database() || db.name.starts_with(&prefix);
        if !claimed && family && db.name != control {
            entries.push(Entry {
                db,
                state: State::Unmanaged,
                record: None,
            });
        }
    }
    entries.sort_by(|a, b| listing_order(names, a, b));
    Inventory {
        names: names.clone(),
        entries,
        lost,
    }
}

/// The live database, generations most recently live first (then newest built), building
/// and leftover databases, unmanaged ones by name.
fn listing_order(names: &Names, a: &Entry, b: &Entry) -> std::cmp::Ordering {
    let rank = |e: &Entry| match e.state {
        State::Live => 0,
        State::Unmanaged if e.db.name == names.database() => 0,
        State::Generation => 1,
        State::Building | State::Leftover => 2,
        State::Unmanaged => 3,
    };
    rank(a)
        .cmp(&rank(b))
        .then_with(|| match (&a.record, &b.record) {
            (Some(ra), Some(rb)) => {
                // Descending; a missing time (an imported generation never seen live) last.
                rb.live_to
                    .cmp(&ra.live_to)
                    .then_with(|| rb.built_at.cmp(&ra.built_at))
                    .then_with(|| rb.name.cmp(&ra.name))
            }
            _ => a.db.name.cmp(&b.db.name),
        })
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

/// The inventory read without the lock, for the commands that only look (`generations`,
/// `status`): from the control database when there is one, else from `pg_database` alone
/// (nothing restage built is on that server yet, or its control database was dropped).
pub async fn survey_unlocked(
    admin: &Client,
    target: &TargetSettings,
) -> Result<(Inventory, Option<(Client, String)>), Error> {
    let names = Names::of(&target.database);
    let control = lock::read_only(target).await?;
    let inventory = match &control {
        Some((client, control_server)) => survey(client, control_server, &names, true).await?,
        None => survey(admin, &target.admin.display, &names, false).await?,
    };
    Ok((inventory, control))
}

/// The inventory as the run that holds `lock` sees it.
pub async fn inventory(lock: &RunLock) -> Result<Inventory, DbError> {
    survey(&lock.client, &lock.server, &lock.names, true).await
}

/// What [`clean`] did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// The live database refused connections after a swap that died half-way, and was
    /// repaired.
    pub repaired_live: bool,
    pub leftovers_removed: Vec<String>,
    /// Warnings: records forgotten, a live database that refuses connections by hand.
    pub warnings: Vec<String>,
}

/// With the lock held: forgets records of databases dropped or renamed by hand, repairs a
/// live database left refusing connections by a dead run's swap, and (with
/// `drop_leftovers`, only a refresh) drops the databases dead runs were building.
pub async fn clean(lock: &RunLock, drop_leftovers: bool) -> Result<Cleaned, Error> {
    let server = &lock.server;
    let mut cleaned = Cleaned::default();
    let inventory = inventory(lock).await?;
    for lost in &inventory.lost {
        registry::forget(&lock.client, server, &lost.record.name).await?;
        let warning = lost.describe(lock.names.database());
        tracing::warn!("{warning}");
        cleaned.warnings.push(warning);
    }
    // Every other unfinished run is dead: this one holds the lock.
    let dead = registry::dead_runs(&lock.client, server, &lock.run_id).await?;
    let swap_died = dead.iter().any(|r| r.swapping);
    if let Some(live) = inventory.live()
        && !live.db.allow_connections
    {
        if swap_died {
            enable_connections(&lock.client, server, lock.names.database()).await?;
            tracing::warn!(
                database = lock.names.database(),
                "the live staging database refused connections after an interrupted swap; re-enabled"
            );
            cleaned.repaired_live = true;
        } else {
            let warning = format!(
                "the live database {} refuses connections, and no restage swap left it so; restage leaves it as it is (ALTER DATABASE {} ALLOW_CONNECTIONS true turns them back on)",
                lock.names.database(),
                quote_ident(lock.names.database())
            );
            tracing::warn!("{warning}");
            cleaned.warnings.push(warning);
        }
    }
    let dead_ids: Vec<String> = dead.into_iter().map(|r| r.run_id).collect();
    registry::mark_dead(&lock.client, server, &dead_ids).await?;
    if drop_leftovers {
        for entry in &inventory.entries {
            let Some(record) = &entry.record else {
                continue;
            };
            if record.state != RecordState::Building || record.run_id == lock.run_id {
                continue;
            }
            if entry.state == State::Building {
                // Its recorded session is still there although this run holds the lock:
                // not provably dead, so it stays.
                let warning = format!(
                    "{} is being built by run {}, whose session is still connected; left alone",
                    entry.db.name, record.run_id
                );
                tracing::warn!("{warning}");
                cleaned.warnings.push(warning);
                continue;
            }
            drop_database(&lock.client, server, &entry.db.name).await?;
            registry::forget(&lock.client, server, &record.name).await?;
            tracing::info!(database = %entry.db.name, run = %record.run_id, "removed the leftover of a run that died");
            cleaned.leftovers_removed.push(entry.db.name.clone());
        }
    }
    Ok(cleaned)
}

/// Turns connections back on for `database`.
pub async fn enable_connections(
    client: &Client,
    server: &str,
    database: &str,
) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            quote_ident(database)
        ))
        .await
        .map_err(|e| DbError::new(server, format!("re-enabling connections on {database}"), e))
}

pub async fn drop_database(client: &Client, server: &str, name: &str) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| DbError::new(server, format!("dropping database {name}"), e))
}

/// A generation name born now that no database and no record has: for the database a
/// refresh builds, an adopted live database, or a generation whose own name was taken.
pub async fn free_name(lock: &RunLock) -> Result<String, DbError> {
    let mut at = Utc::now();
    loop {
        let name = lock.names.generation(at);
        let taken: bool = lock
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname::text = $1)
                     OR EXISTS (SELECT 1 FROM restage.generations WHERE name = $1)",
                &[&name],
            )
            .await
            .map_err(|e| DbError::new(&lock.server, "choosing a generation name", e))?
            .get(0);
        if !taken {
            return Ok(name);
        }
        at += chrono::Duration::microseconds(1);
    }
}

/// Reserves the name of the database a refresh builds into, before it exists: a run killed
/// right after CREATE DATABASE still leaves a leftover provably its own. Returns the name.
pub async fn reserve_building(
    lock: &RunLock,
    snapshot_at: Option<DateTime<Utc>>,
) -> Result<String, DbError> {
    let name = free_name(lock).await?;
    registry::reserve(&lock.client, &lock.server, &name, &lock.run_id, snapshot_at).await?;
    Ok(name)
}

/// Creates the reserved database `name`, with the source's encoding and locale
/// ([`super::source_database`]), and records its oid; returns the warning of a fallback
/// locale.
pub async fn create_building(
    lock: &RunLock,
    name: &str,
    locale: &super::source_database::DatabaseLocale,
) -> Result<Option<String>, DbError> {
    let warning = create_database(&lock.client, &lock.server, name, locale).await?;
    super::pause::point("created").await;
    registry::created(&lock.client, &lock.server, name).await?;
    Ok(warning)
}

/// CREATE DATABASE with the source's locale, falling back (with a warning) to the staging
/// server's default locale, then to `C`, when the server refuses it.
async fn create_database(
    admin: &Client,
    server: &str,
    name: &str,
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
    Ok(warning)
}

/// Drops a database this run reserved or created (its build failed) and its record.
pub async fn drop_own(lock: &RunLock, name: &str) -> Result<(), DbError> {
    drop_database(&lock.client, &lock.server, name).await?;
    registry::forget(&lock.client, &lock.server, name).await
}

/// Drops the generations beyond `keep` (pinned ones neither count nor go), most recently
/// live kept first. Returns the names dropped.
pub async fn retain(lock: &RunLock, keep: u32) -> Result<Vec<String>, DbError> {
    let inventory = inventory(lock).await?;
    let mut dropped = Vec::new();
    let beyond = inventory
        .generations()
        .filter(|e| !e.pinned())
        .skip(keep as usize);
    for entry in beyond {
        // Still the database restage recorded, right before it goes.
        let now: Option<u32> = lock
            .client
            .query_opt(
                "SELECT oid FROM pg_database WHERE datname::text = $1",
                &[&entry.db.name],
            )
            .await
            .map_err(|e| DbError::new(&lock.server, "checking a generation", e))?
            .map(|r| r.get(0));
        if now != Some(entry.db.oid) {
            continue;
        }
        drop_database(&lock.client, &lock.server, &entry.db.name).await?;
        registry::forget(&lock.client, &lock.server, entry.generation_name()).await?;
        dropped.push(entry.db.name.clone());
    }
    Ok(dropped)
}

/// Step 11 of the check sequence: `target.database`, when it exists, must be a database
/// restage built, or be adopted (`--adopt`, `target.adopt`). Reads only.
pub async fn check_target(admin: &Client, target: &TargetSettings) -> Result<(), Error> {
    let names = Names::of(&target.database);
    let server = &target.admin.display;
    let control = lock::read_only(target).await?;
    let inventory = match &control {
        Some((client, control_server)) => survey(client, control_server, &names, true).await?,
        None => survey(admin, server, &names, false).await?,
    };
    let Some(live) = inventory.live() else {
        return Ok(());
    };
    if live.state == State::Live || target.adopt {
        return Ok(());
    }
    // Before this version first ran here: the marker an earlier version wrote, imported as
    // restage's when the registry is made (see registry::import_legacy).
    if control.is_none() && registry::legacy_live(&live.db.comment) {
        return Ok(());
    }
    Err(not_ours(server, &names))
}

/// The refusal to retire a live database restage did not build.
pub fn not_ours(server: &str, names: &Names) -> Error {
    Error::Usage(format!(
        "target.database: {server}: a database named {} exists and restage did not build it (its control database {} has no record of it); a refresh would retire it. Pass --adopt (or set target.adopt: true) to keep it as a generation, pinned until you unpin it, or rename or drop it yourself (nothing was changed)",
        names.database(),
        names.control()
    ))
}

/// A record as the listing shows it: the `--json` form of `restage generations`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub state: State,
    /// The name it carries when it is not live.
    pub generation_name: Option<String>,
    pub origin: Option<Origin>,
    pub pinned: bool,
    pub built_at: Option<String>,
    pub live_from: Option<String>,
    pub live_to: Option<String>,
    pub snapshot_at: Option<String>,
    pub bytes: i64,
    pub allow_connections: bool,
    pub is_live: bool,
    pub comment: String,
}

impl Listed {
    pub fn of(inventory: &Inventory) -> Vec<Listed> {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        inventory
            .entries
            .iter()
            .map(|e| {
                let r = e.record.as_ref();
                Listed {
                    name: e.db.name.clone(),
                    state: e.state,
                    generation_name: r.map(|r| r.name.clone()),
                    origin: r.map(|r| r.origin),
                    pinned: e.pinned(),
                    built_at: time(r.and_then(|r| r.built_at)),
                    live_from: time(r.and_then(|r| r.live_from)),
                    live_to: time(r.and_then(|r| r.live_to)),
                    snapshot_at: time(r.and_then(|r| r.snapshot_at)),
                    bytes: e.db.bytes,
                    allow_connections: e.db.allow_connections,
                    is_live: e.db.name == inventory.names.database(),
                    comment: e.db.comment.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    fn db(oid: u32, name: &str) -> ServerDb {
        ServerDb {
            oid,
            name: name.into(),
            allow_connections: true,
            bytes: 1,
            comment: String::new(),
        }
    }

    fn record(name: &str, oid: Option<u32>, state: RecordState, live_to: Option<&str>) -> Known {
        Known {
            record: Record {
                name: name.into(),
                db_oid: oid,
                origin: Origin::Built,
                run_id: "r1".into(),
                state,
                built_at: Some(at("2026-01-01T00:00:00Z")),
                snapshot_at: None,
                live_from: None,
                live_to: live_to.map(at),
                pinned: false,
            },
            run_alive: false,
        }
    }

    #[test]
    fn only_recorded_databases_under_their_names_are_restages() {
        let names = Names::of("app");
        let inventory = classify(
            &names,
            vec![
                db(1, "app"),
                db(2, "app__restage_g2"),
                db(3, "app__restage_g3"),
                db(4, "app__restage_by_hand"),
                db(5, "app_renamed"),
                db(6, "app__restage"),
                db(7, "app__restage_half"),
            ],
            vec![
                record("app__restage_g1", Some(1), RecordState::Live, None),
                record(
                    "app__restage_g2",
                    Some(2),
                    RecordState::Retired,
                    Some("2026-01-05T00:00:00Z"),
                ),
                record(
                    "app__restage_g3",
                    Some(3),
                    RecordState::Retired,
                    Some("2026-01-04T00:00:00Z"),
                ),
                record(
                    "app__restage_g0",
                    Some(5),
                    RecordState::Retired,
                    Some("2026-01-01T00:00:00Z"),
                ),
                record("app__restage_gone", Some(99), RecordState::Retired, None),
                record("app__restage_half", None, RecordState::Building, None),
            ],
        );
        let shown: Vec<(&str, State)> = inventory
            .entries
            .iter()
            .map(|e| (e.db.name.as_str(), e.state))
            .collect();
        assert_eq!(
            shown,
            [
                ("app", State::Live),
                // Most recently live first, whatever their names say.
                ("app__restage_g2", State::Generation),
                ("app__restage_g3", State::Generation),
                ("app__restage_half", State::Leftover),
                ("app__restage_by_hand", State::Unmanaged),
            ],
            "the control database is not listed; the renamed one is not restage's"
        );
        let lost: Vec<(&str, Option<&str>)> = inventory
            .lost
            .iter()
            .map(|l| (l.record.name.as_str(), l.renamed_to.as_deref()))
            .collect();
        assert_eq!(
            lost,
            [
                ("app__restage_g0", Some("app_renamed")),
                ("app__restage_gone", None)
            ]
        );
        assert_eq!(
            inventory
                .find("app__restage_g1")
                .map(|e| e.db.name.as_str()),
            Some("app"),
            "the live one is found by its generation name too"
        );
    }

    #[test]
    fn a_live_database_restage_has_no_record_of_is_unmanaged() {
        let names = Names::of("app");
        let inventory = classify(
            &names,
            vec![db(1, "app"), db(2, "app__restage_g2")],
            vec![record("app__restage_g1", Some(7), RecordState::Live, None)],
        );
        assert_eq!(inventory.live().map(|e| e.state), Some(State::Unmanaged));
        assert_eq!(
            inventory.lost.len(),
            1,
            "the record of the live one is lost"
        );
        assert_eq!(inventory.entries[1].state, State::Unmanaged);
    }
}
