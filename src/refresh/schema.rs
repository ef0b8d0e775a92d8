//! The schema: taken with `pg_dump --schema-only` inside the snapshot (custom format), applied
//! with `pg_restore` in two parts: pre-data (types, tables, functions, views…) before the data,
//! post-data (indexes, constraints, triggers) after it, `jobs` at a time.
//!
//! Plain-format output of current pg_dump contains `\restrict` psql meta-commands, so it is
//! never fed to a SQL connection; pg_restore reads the archive itself.
//!
//! Ownership and privileges of production roles are not copied (`--no-owner --no-acl`): staging
//! has other roles, and grants for the configured ones are applied afterwards. Publications,
//! subscriptions (a subscription in staging would connect to production!), security labels
//! and tablespaces are left out too, and so are user mappings (remote users and passwords)
//! and the foreign servers' options: both are taken out of pg_restore's lists of the archive,
//! pre-data is restored in two parts, and between them restage creates the servers without
//! their options ([`super::foreign`]), so no production host or password is ever written in
//! the new database, not even as a dead row. Triggers are post-data, so none fires during the
//! load.
//!
//! The `_restage` schema of a source is not dumped: it is restage's notes about a database it
//! built (when staging is the source of another refresh), not data, and the new database gets
//! its own. pg_dump locks every table it dumps, like the snapshot's leader: it waits at most
//! `lock_timeout` for a lock (`--lock-wait-timeout`), then fails naming the table.
//!
//! Passwords reach the tools through `PGPASSWORD` in their environment, never on their command
//! line, which any user can read with `ps`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::db::{self, PgEndpoint};
use crate::error::Error;
use crate::secret::scrub;

/// The PostgreSQL client tools used for the schema.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub major: u32,
}

impl PgTools {
    /// Finds pg_dump and pg_restore at least as new as the source server: `RESTAGE_PG_BIN`,
    /// then `PATH`, then `/usr/lib/postgresql/*/bin` (Debian) and `/usr/pgsql-*/bin` (RHEL),
    /// newest first.
    pub async fn find(min_major: u32) -> Result<PgTools, Error> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Ok(dir) = std::env::var("RESTAGE_PG_BIN") {
            dirs.push(PathBuf::from(dir));
        }
        if let Ok(path) = std::env::var("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        let mut versioned: Vec<PathBuf> = Vec::new();
        for pattern_dir in ["/usr/lib/postgresql", "/usr/local/pgsql"] {
            if let Ok(entries) = std::fs::read_dir(pattern_dir) {
                for e in entries.flatten() {
                    versioned.push(e.path().join("bin"));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/usr") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("pgsql-") {
                    versioned.push(e.path().join("bin"));
                }
            }
        }
        versioned.sort();
        versioned.reverse();
        dirs.extend(versioned);

        let mut seen = Vec::new();
        for dir in dirs {
            let pg_dump = dir.join("pg_dump");
            let pg_restore = dir.join("pg_restore");
            if !pg_dump.is_file() || !pg_restore.is_file() {
                continue;
            }
            let Some(major) = tool_major(&pg_dump).await else {
                continue;
            };
            if major >= min_major {
                return Ok(PgTools {
                    pg_dump,
                    pg_restore,
                    major,
                });
            }
            seen.push(format!("{} ({major})", pg_dump.display()));
        }
        Err(Error::Runtime(if seen.is_empty() {
            "pg_dump and pg_restore not found: install the PostgreSQL client tools (Debian: postgresql-client) or set RESTAGE_PG_BIN".to_string()
        } else {
            format!(
                "the source server is PostgreSQL {min_major}, but the pg_dump found is older: {}; install a newer client or set RESTAGE_PG_BIN",
                seen.join(", ")
            )
        }))
    }
}

async fn tool_major(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)"
    let version = text.split_whitespace().nth(2)?;
    version.split('.').next()?.parse().ok()
}

/// A schema archive on disk, removed when dropped, with the lists of its entries to restore.
pub struct SchemaArchive {
    dir: tempfile::TempDir,
    /// How many user mappings the lists leave out.
    pub user_mappings_left_out: usize,
    /// The archive defines foreign servers: pre-data is restored in two parts, around them.
    pub has_servers: bool,
    /// The archive's table of contents (`pg_restore --list`), as read.
    toc: String,
    /// Post-data entries already applied (by [`super::post_data`], per table during the
    /// copy): the post-data restore leaves them out.
    built_early: bool,
    /// Every post-data entry was applied already: the post-data restore has nothing to do.
    post_data_done: bool,
    /// The post-data SQL of the whole list, once read ([`post_data_sql`]).
    post_data_sql: tokio::sync::OnceCell<Option<String>>,
}

/// Which entries of the archive a restore takes (`pg_restore --use-list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Every entry before the first foreign server (in the archive's order, which is an
    /// order its dependencies allow).
    BeforeServers,
    /// The others, without the servers (restage creates them, without their options) and
    /// user mappings.
    AfterServers,
    /// Every entry but the servers and user mappings.
    All,
    /// As `All`, without the post-data entries built during the copy.
    Rest,
}

impl SchemaArchive {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("schema.dump")
    }

    fn list_path(&self, part: Part) -> PathBuf {
        self.dir.path().join(match part {
            Part::BeforeServers => "before-servers.list",
            Part::AfterServers => "after-servers.list",
            Part::All => "all.list",
            Part::Rest => "rest.list",
        })
    }

    /// The archive's table of contents (`pg_restore --list`).
    pub fn toc(&self) -> &str {
        &self.toc
    }

    /// Records that the entries `ids` (dump ids of the table of contents) were applied
    /// already: the post-data restore ([`Section::PostData`]) leaves them out from now on
    /// (`all`: they are the whole post-data section, and the restore does nothing).
    pub fn mark_built(&mut self, ids: &BTreeSet<u64>, all: bool) -> Result<(), Error> {
        self.post_data_done = all;
        let (parts, _, _) = lists(&self.toc);
        let mut rest = String::new();
        for line in parts["all"].lines() {
            if !line.starts_with(';') && entry_id(line).is_some_and(|id| ids.contains(&id)) {
                rest.push(';');
            }
            rest.push_str(line);
            rest.push('\n');
        }
        std::fs::write(self.list_path(Part::Rest), rest)
            .map_err(|e| Error::io("writing the schema's list of the remaining entries", e))?;
        self.built_early = true;
        Ok(())
    }
}

/// The dump id of an entry line of `pg_restore --list` (`<id>; <catalog oid> <oid> …`).
pub(crate) fn entry_id(line: &str) -> Option<u64> {
    line.split_once("; ")
        .and_then(|(id, _)| id.trim().parse::<u64>().ok())
}

/// The type of a line of `pg_restore --list`: an entry line reads `<id>; <catalog oid> <oid>
/// <TYPE> <schema> <name> <owner>` (its TYPE may have spaces); comment lines start with `;`.
fn entry_type_starts(line: &str, kind: &str) -> bool {
    line.split_once("; ")
        .filter(|(id, _)| id.trim().parse::<u64>().is_ok())
        .and_then(|(_, rest)| rest.splitn(3, ' ').nth(2))
        .is_some_and(|entry| entry.starts_with(kind))
}

/// The lists of a table of contents (`pg_restore --list`), as [`Part`] says, each the whole
/// list with the entries it does not take commented out; and how many user mappings and
/// foreign servers there are.
fn lists(toc: &str) -> (BTreeMap<&'static str, String>, usize, usize) {
    let mut out: BTreeMap<&'static str, String> = BTreeMap::new();
    let (mut mappings, mut servers) = (0, 0);
    for line in toc.lines() {
        let mapping = entry_type_starts(line, "USER MAPPING ");
        let server = entry_type_starts(line, "SERVER ");
        mappings += usize::from(mapping);
        servers += usize::from(server);
        let before = servers == 0;
        for (part, takes) in [
            ("before", before && !mapping),
            ("after", !before && !mapping && !server),
            ("all", !mapping && !server),
        ] {
            let list = out.entry(part).or_default();
            if !takes && !line.starts_with(';') {
                list.push(';');
            }
            list.push_str(line);
            list.push('\n');
        }
    }
    (out, mappings, servers)
}

/// Runs pg_dump for the schema inside the snapshot.
pub async fn dump(
    tools: &PgTools,
    source: &PgEndpoint,
    snapshot: &str,
    lock_timeout: std::time::Duration,
) -> Result<SchemaArchive, Error> {
    let dir = tempfile::Builder::new()
        .prefix("restage-schema-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary folder for the schema", e))?;
    let archive = SchemaArchive {
        dir,
        user_mappings_left_out: 0,
        has_servers: false,
        toc: String::new(),
        built_early: false,
        post_data_done: false,
        post_data_sql: tokio::sync::OnceCell::new(),
    };
    let path = archive.path();
    let mut cmd = Command::new(&tools.pg_dump);
    cmd.arg("--schema-only")
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--no-publications")
        .arg("--no-subscriptions")
        .arg("--no-security-labels")
        .arg("--no-tablespaces")
        .arg("--exclude-schema=_restage")
        .arg(format!(
            "--lock-wait-timeout={}",
            lock_timeout.as_millis().max(1)
        ))
        .arg("--file")
        .arg(&path);
    run_tool(
        cmd,
        source,
        "pg_dump (schema)",
        &[("PGOPTIONS", "-c default_transaction_read_only=on")],
        &[],
    )
    .await?;
    write_lists(tools, archive).await
}

/// A schema archive another run wrote (`restage dump`: the file `schema`), copied into a
/// temporary folder, with its lists of entries.
pub async fn load(tools: &PgTools, schema: &Path) -> Result<SchemaArchive, Error> {
    let dir = tempfile::Builder::new()
        .prefix("restage-schema-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary folder for the schema", e))?;
    let archive = SchemaArchive {
        dir,
        user_mappings_left_out: 0,
        has_servers: false,
        toc: String::new(),
        built_early: false,
        post_data_done: false,
        post_data_sql: tokio::sync::OnceCell::new(),
    };
    std::fs::copy(schema, archive.path())
        .map_err(|e| Error::io(format!("copying {}", schema.display()), e))?;
    write_lists(tools, archive).await
}

/// Reads the archive's table of contents and writes the lists of its [`Part`]s.
async fn write_lists(tools: &PgTools, mut archive: SchemaArchive) -> Result<SchemaArchive, Error> {
    let path = archive.path();
    let toc = list_entries(tools, &path).await?;
    let (parts, mappings, servers) = lists(&toc);
    archive.user_mappings_left_out = mappings;
    archive.has_servers = servers > 0;
    archive.toc = toc.clone();
    for (name, part) in [
        ("before", Part::BeforeServers),
        ("after", Part::AfterServers),
        ("all", Part::All),
    ] {
        std::fs::write(archive.list_path(part), &parts[name])
            .map_err(|e| Error::io("writing the schema's lists of entries", e))?;
    }
    Ok(archive)
}

/// `pg_restore --list` of an archive.
async fn list_entries(tools: &PgTools, archive: &Path) -> Result<String, Error> {
    let output = Command::new(&tools.pg_restore)
        .arg("--list")
        .arg(archive)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::io("running pg_restore --list", e))?;
    if !output.status.success() {
        return Err(Error::Runtime(format!(
            "pg_restore --list failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The SQL the post-data restore would run, as one text (`pg_restore --section=post-data -f -`
/// with the same options and the whole list, as [`restore`] of [`Section::PostData`] before
/// any entry is built early): read once per archive, without a connection, and kept — split
/// per entry by [`super::post_data`], and read again by [`restore`] for its attachments. None
/// when the text is not UTF-8 (a database in another encoding: the split is not attempted).
pub async fn post_data_sql<'a>(
    tools: &PgTools,
    archive: &'a SchemaArchive,
) -> Result<Option<&'a str>, Error> {
    let sql = archive
        .post_data_sql
        .get_or_try_init(|| async {
            let output = Command::new(&tools.pg_restore)
                .args(SCHEMA_OPTIONS)
                .arg(format!(
                    "--use-list={}",
                    archive.list_path(Part::All).display()
                ))
                .arg("--section=post-data")
                .arg("--file=-")
                .arg(archive.path())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| Error::io("running pg_restore (post-data SQL)", e))?;
            if !output.status.success() {
                return Err(Error::Runtime(format!(
                    "pg_restore (post-data SQL) failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            Ok(String::from_utf8(output.stdout).ok())
        })
        .await?;
    Ok(sql.as_deref())
}

/// The archive attaches a partitioned index that is itself attached to another (a
/// partitioned table with partitioned partitions). pg_restore runs `INDEX ATTACH` entries in
/// parallel without lock ordering, and two of them in one such chain deadlock: attaching a
/// leaf's index to the middle one validates the middle one and locks the top one, while
/// attaching the middle one to the top one locks them the other way (seen in this project's
/// CI: `deadlock detected` on `ALTER INDEX … ATTACH PARTITION`). Such a post-data section is
/// restored with one job. Single-level partitioning attaches to one parent only and keeps
/// its jobs.
async fn nested_index_attachments(tools: &PgTools, archive: &SchemaArchive) -> Result<bool, Error> {
    Ok(post_data_sql(tools, archive)
        .await?
        .is_some_and(attaches_nested_indexes))
}

/// A name that pg_dump's `ALTER INDEX parent ATTACH PARTITION child;` lines use both as a
/// parent and as a child.
fn attaches_nested_indexes(sql: &str) -> bool {
    let mut parents = std::collections::HashSet::new();
    let mut children = std::collections::HashSet::new();
    for line in sql.lines() {
        let Some(rest) = line.strip_prefix("ALTER INDEX ") else {
            continue;
        };
        let Some((parent, child)) = rest.split_once(" ATTACH PARTITION ") else {
            continue;
        };
        parents.insert(parent.trim().to_string());
        children.insert(child.trim().trim_end_matches(';').trim().to_string());
    }
    parents.iter().any(|p| children.contains(p))
}

/// What every restore of the schema leaves out or does not stop on (owners, grants,
/// publications, subscriptions, security labels, tablespaces).
const SCHEMA_OPTIONS: [&str; 7] = [
    "--no-owner",
    "--no-acl",
    "--no-publications",
    "--no-subscriptions",
    "--no-security-labels",
    "--no-tablespaces",
    "--exit-on-error",
];

/// Which part of the schema to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Pre-data up to the foreign servers (all of it when there are none).
    PreData,
    /// The rest of pre-data, after restage created the servers ([`super::foreign`]).
    PreDataAfterServers,
    PostData,
}

/// Applies one section of the archive to `target` (the database being built).
pub async fn restore(
    tools: &PgTools,
    archive: &SchemaArchive,
    target: &PgEndpoint,
    section: Section,
    jobs: usize,
) -> Result<(), Error> {
    if section == Section::PostData && archive.post_data_done {
        // Built per table during the copy, all of it (no pg_restore to start for nothing).
        return Ok(());
    }
    let mut cmd = Command::new(&tools.pg_restore);
    cmd.args(SCHEMA_OPTIONS)
        .arg(format!(
            "--use-list={}",
            archive
                .list_path(match section {
                    Section::PreData => Part::BeforeServers,
                    Section::PreDataAfterServers => Part::AfterServers,
                    Section::PostData if archive.built_early => Part::Rest,
                    Section::PostData => Part::All,
                })
                .display()
        ))
        .arg(format!("--dbname={}", target.dbname()));
    match section {
        Section::PreData | Section::PreDataAfterServers => {
            cmd.arg("--section=pre-data").arg("--single-transaction");
        }
        Section::PostData => {
            let jobs = if jobs > 1 && nested_index_attachments(tools, archive).await? {
                tracing::debug!(
                    "post-data: partitioned indexes nested in others; restored with one job"
                );
                1
            } else {
                jobs
            };
            cmd.arg("--section=post-data")
                .arg(format!("--jobs={}", jobs.max(1)));
        }
    }
    cmd.arg(archive.path());
    let what = match section {
        Section::PreData => "pg_restore (pre-data: types, tables, functions)",
        Section::PreDataAfterServers => {
            "pg_restore (pre-data after the foreign servers: foreign tables, tables, views)"
        }
        Section::PostData => "pg_restore (post-data: indexes, constraints, triggers)",
    };
    // `post-data` is the first build of the run (it may have been a table's, during the
    // copy); `post-data-restore` is this pg_restore's own.
    let pause: &[&'static str] = if section == Section::PostData {
        &["post-data", "post-data-restore"]
    } else {
        &[]
    };
    run_tool(cmd, target, what, &[], pause).await
}

/// Runs a tool with the endpoint's libpq environment; its stderr becomes the error message,
/// scrubbed of the password. `pause` names testing hook points ([`super::pause`]) reached,
/// in order, while the tool runs.
async fn run_tool(
    mut cmd: Command,
    endpoint: &PgEndpoint,
    what: &str,
    extra_env: &[(&str, &str)],
    pause: &[&'static str],
) -> Result<(), Error> {
    let env = endpoint.libpq_env();
    for (k, v) in &env {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    for point in pause {
        super::pause::point(point).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    let password = env
        .iter()
        .find(|(k, _)| *k == "PGPASSWORD")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    // Without the server errors' row-holding fields, connection strings redacted, and the
    // password itself removed wherever the tool echoed it.
    let stderr = scrub(
        &db::tool_stderr(&String::from_utf8_lossy(&output.stderr)),
        &[password],
    );
    if !output.status.success() {
        let detail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(12)
            .collect();
        return Err(Error::Runtime(format!(
            "{}: {what} failed ({}): {}",
            endpoint.display,
            output.status,
            detail.join(" | ")
        )));
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(tool = what, "{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_index_attachments_are_told_from_single_level_ones() {
        let single = "ALTER INDEX public.events_pkey ATTACH PARTITION public.events_2024_pkey;\n\
            ALTER INDEX public.events_pkey ATTACH PARTITION public.events_2025_pkey;\n";
        assert!(!attaches_nested_indexes(single));
        let nested = "ALTER INDEX public.ledger_eu_key ATTACH PARTITION public.ledger_eu_2024_key;\n\
            ALTER INDEX public.ledger_key ATTACH PARTITION public.ledger_eu_key;\n";
        assert!(attaches_nested_indexes(nested));
        assert!(!attaches_nested_indexes(
            "CREATE INDEX x ON public.t (a);\n"
        ));
    }

    #[test]
    fn servers_and_user_mappings_are_left_out_and_pre_data_splits_around_them() {
        let toc = ";\n; Archive created at 2025-01-01\n;\n\
            214; 3079 16384 EXTENSION - postgres_fdw \n\
            215; 1417 16390 SERVER - prod postgres\n\
            3360; 1418 16391 USER MAPPING - USER MAPPING postgres SERVER prod postgres\n\
            216; 1259 16392 TABLE public USER MAPPING x postgres\n\
            217; 1259 16393 FOREIGN TABLE public remote postgres\n";
        let (parts, mappings, servers) = lists(toc);
        assert_eq!((mappings, servers), (1, 1));
        let taken = |part: &str| -> Vec<String> {
            parts[part]
                .lines()
                .filter(|l| !l.starts_with(';'))
                .map(|l| l.split(';').next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(taken("before"), ["214"]);
        assert_eq!(
            taken("after"),
            ["216", "217"],
            "a table's name is not its type"
        );
        assert_eq!(taken("all"), ["214", "216", "217"]);
        assert_eq!(parts["all"].lines().count(), toc.lines().count());
    }
}
