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
//! and tablespaces are left out too. Triggers are post-data, so none fires during the load.
//!
//! Passwords reach the tools through `PGPASSWORD` in their environment, never on their command
//! line, which any user can read with `ps`.

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

/// A schema archive on disk, removed when dropped.
pub struct SchemaArchive {
    dir: tempfile::TempDir,
}

impl SchemaArchive {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("schema.dump")
    }
}

/// Runs pg_dump for the schema inside the snapshot.
pub async fn dump(
    tools: &PgTools,
    source: &PgEndpoint,
    snapshot: &str,
) -> Result<SchemaArchive, Error> {
    let dir = tempfile::Builder::new()
        .prefix("restage-schema-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary folder for the schema", e))?;
    let archive = SchemaArchive { dir };
    let path = archive.path();
    let mut cmd = Command::new(&tools.pg_dump);
    cmd.arg("--schema-only")
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--no-publications")
        .arg("--no-subscriptions")
        .arg("--no-security-labels")
        .arg("--no-tablespaces")
        .arg("--file")
        .arg(&path);
    run_tool(
        cmd,
        source,
        "pg_dump (schema)",
        &[("PGOPTIONS", "-c default_transaction_read_only=on")],
        None,
    )
    .await?;
    Ok(archive)
}

/// Which part of the schema to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    PreData,
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
    let mut cmd = Command::new(&tools.pg_restore);
    cmd.arg("--no-owner")
        .arg("--no-acl")
        .arg("--no-publications")
        .arg("--no-subscriptions")
        .arg("--no-security-labels")
        .arg("--no-tablespaces")
        .arg("--exit-on-error")
        .arg(format!("--dbname={}", target.dbname()));
    match section {
        Section::PreData => {
            cmd.arg("--section=pre-data").arg("--single-transaction");
        }
        Section::PostData => {
            cmd.arg("--section=post-data")
                .arg(format!("--jobs={}", jobs.max(1)));
        }
    }
    cmd.arg(archive.path());
    let what = match section {
        Section::PreData => "pg_restore (pre-data: types, tables, functions)",
        Section::PostData => "pg_restore (post-data: indexes, constraints, triggers)",
    };
    let pause = (section == Section::PostData).then_some("post-data");
    run_tool(cmd, target, what, &[], pause).await
}

/// Runs a tool with the endpoint's libpq environment; its stderr becomes the error message,
/// scrubbed of the password. `pause` names a testing hook point ([`super::pause`]) reached
/// while the tool runs.
async fn run_tool(
    mut cmd: Command,
    endpoint: &PgEndpoint,
    what: &str,
    extra_env: &[(&str, &str)],
    pause: Option<&'static str>,
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
    if let Some(point) = pause {
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
