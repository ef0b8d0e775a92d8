//! `restage init`: a first configuration for a source database, ready to edit and ready to
//! run. It writes, in `--out DIR` (default: the current directory):
//!
//! - `restage.yaml`, commented: the source as given, a target on the same server (its
//!   maintenance database `postgres`, staging database `<source database>_staging`), the
//!   secret, `rules: rules/`, `strict: pii`, and the optional sections as comments;
//! - `rules/proposed.yaml`: what `restage scan` proposes for the source, fitted to its
//!   schema (see [`crate::scan::fit`]): the proposals that pass are rules, the others
//!   comments with the reason;
//! - `restage.secret`: the key of every pseudonym (64 hex characters from the OS's random
//!   source, mode 0600), which `restage.yaml` reads with `file:`. An existing one is kept,
//!   even with `--force`: a new key would change every pseudonym.
//!
//! Decisions:
//! - A source URL holding a password is not written into restage.yaml: the file says
//!   `${PROD_DATABASE_URL}` and `${STAGING_ADMIN_URL}` instead (set them, or use
//!   `~/.pgpass`). One without a password is written as given, and the target is the same
//!   server's `postgres` database, so `restage init` then `restage refresh` runs unedited.
//! - Existing files are never overwritten without `--force` (nothing is written then); with
//!   it, the old `rules/proposed.yaml` is set aside before the scan so it does not hide
//!   what it covered.
//! - The source is only read: the scan's read-only session, as `restage scan`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::Config;
use crate::db::PgEndpoint;
use crate::error::{Error, Result, exit};
use crate::progress::Ui;
use crate::rules::RuleSet;
use crate::secret::Secret;

/// `restage init`.
#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    /// The production database to read (libpq URL or key=value string); default: $PROD_DATABASE_URL.
    #[arg(
        long,
        value_name = "URL",
        env = "PROD_DATABASE_URL",
        hide_env_values = true
    )]
    pub source: Option<String>,
    /// Where to write restage.yaml, rules/proposed.yaml and restage.secret.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Replace an existing restage.yaml and rules/proposed.yaml (restage.secret is kept).
    #[arg(long)]
    pub force: bool,
    /// Rows sampled per table for the scan.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sample_rows: usize,
}

/// The files `restage init` writes in `out`.
pub struct Files {
    pub config: PathBuf,
    pub rules_dir: PathBuf,
    pub rules: PathBuf,
    pub secret: PathBuf,
}

impl Files {
    pub fn in_dir(out: &Path) -> Files {
        Files {
            config: out.join("restage.yaml"),
            rules_dir: out.join("rules"),
            rules: out.join("rules").join("proposed.yaml"),
            secret: out.join("restage.secret"),
        }
    }
}

/// Runs `restage init`.
pub async fn run(args: &InitArgs, ui: &Ui) -> Result<i32> {
    let source = args.source.clone().ok_or_else(|| {
        Error::Usage(
            "restage init needs the source: --source URL (or PROD_DATABASE_URL in the environment)"
                .to_string(),
        )
    })?;
    let endpoint = PgEndpoint::parse(&Secret::new(source.clone()))
        .map_err(|e| Error::Usage(format!("--source: {e}")))?;
    let files = Files::in_dir(&args.out);
    if !args.force {
        let existing: Vec<String> = [&files.config, &files.rules]
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Usage(format!(
                "{} already exist(s); nothing written (pass --force to replace them; restage.secret is always kept)",
                existing.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(&files.rules_dir)
        .map_err(|e| Error::io(format!("creating {}", files.rules_dir.display()), e))?;
    let secret_path = ensure_secret(&files.secret)?;

    let yaml = config_yaml(&source, &endpoint, &secret_path);
    // Loaded through the same loader as every command, from a temporary file beside the
    // final one (rules: resolves relative to it).
    let tmp = args
        .out
        .join(format!(".restage.yaml.init-{}", std::process::id()));
    std::fs::write(&tmp, &yaml).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    let result = scan_and_write(&tmp, &endpoint, &files, args, ui).await;
    match result {
        Ok(()) => std::fs::rename(&tmp, &files.config).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("writing {}", files.config.display()), e)
        })?,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    if ui.verbosity >= 0 {
        crate::output::outln!(
            "wrote {} and {} (secret in {})\nnext: restage -c {} validate --preview 5, then refresh --dry-run, then refresh",
            files.config.display(),
            files.rules.display(),
            files.secret.display(),
            files.config.display()
        );
    }
    Ok(exit::OK)
}

/// The scan, with the source as given (restage.yaml may name it by `${PROD_DATABASE_URL}`).
async fn scan_and_write(
    config_path: &Path,
    endpoint: &PgEndpoint,
    files: &Files,
    args: &InitArgs,
    ui: &Ui,
) -> Result<()> {
    let config = Config::load(config_path)?;
    // The previous proposals would cover what they proposed for: set aside first.
    if args.force && files.rules.exists() {
        std::fs::remove_file(&files.rules)
            .map_err(|e| Error::io(format!("removing {}", files.rules.display()), e))?;
    }
    let rules = RuleSet::load(&config.rules_path(), false).map_err(Error::Rules)?;
    let scanned = crate::scan::scan_source(&config, endpoint, &rules, args.sample_rows, ui).await?;
    crate::scan::write_rules(
        &files.rules,
        &scanned.found,
        &endpoint.display,
        args.sample_rows,
    )?;
    Ok(())
}

/// The secret file: kept when it exists, else 32 random bytes in hex, readable by its owner
/// only. Returns its absolute path (what `file:` reads, wherever restage runs from).
fn ensure_secret(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(path, &format!("{hex}\n"))?;
    }
    std::fs::canonicalize(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A double-quoted YAML scalar (JSON's string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// libpq's key=value quoting: single quotes, with `\` and `'` escaped.
fn kv(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// The maintenance database of the source's server, as a key=value string without a
/// password (libpq's environment and `~/.pgpass` supply one).
fn target_url(endpoint: &PgEndpoint) -> String {
    use tokio_postgres::config::Host;
    let c = &endpoint.config;
    let mut parts = Vec::new();
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(format!("host={}", kv(&hosts.join(","))));
    }
    let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        parts.push(format!("port={}", ports.join(",")));
    }
    if let Some(user) = c.get_user() {
        parts.push(format!("user={}", kv(user)));
    }
    parts.push("dbname=postgres".to_string());
    parts.join(" ")
}

/// restage.yaml for `source`.
pub fn config_yaml(source: &str, endpoint: &PgEndpoint, secret: &Path) -> String {
    let c = &endpoint.config;
    let has_password = c.get_password().is_some();
    let dbname = c.get_dbname().or(c.get_user()).unwrap_or("app").to_string();
    let (source_line, target_line) = if has_password {
        (
            "${PROD_DATABASE_URL}   # the URL given holds a password: it is not written here"
                .to_string(),
            "${STAGING_ADMIN_URL}   # a maintenance database (postgres) on the staging server"
                .to_string(),
        )
    } else {
        (
            format!("{}   # read-only, in one snapshot", quoted(source)),
            format!(
                "{}   # the same server's maintenance database; move staging elsewhere here",
                quoted(&target_url(endpoint))
            ),
        )
    };
    format!(
        r#"# restage.yaml, written by `restage init` for {display}.
# Every key is explained in the README ("Configuration"). Check it, then:
#   restage validate --preview 5     # what refresh would refuse, and five rows before/after
#   restage refresh --dry-run        # the plan, touching nothing
#   restage refresh
source:
  url: {source_line}
target:
  url: {target_line}
  database: {staging}   # the database staging apps use; replaced atomically
  keep: 1               # previous generations kept for rollback
# The key of every pseudonym: same input, same fake, every night. It was made by `restage
# init` (32 random bytes, hex) and is read from this file, never logged. To keep it out of
# the repository, move it to your secret store and write `secret: ${{RESTAGE_SECRET}}` (make
# one with `openssl rand -hex 32`); changing it changes every pseudonym.
secret: {secret}
rules: rules/           # rules/proposed.yaml is what `restage scan` proposed: review it
strict: pii             # a column whose name looks personal must have a rule
# jobs: 4
# lock_timeout: 30s
# locale: en
# sample:
#   tables:
#     public.users: {{ percent: 10 }}
# search:
#   tsvector:
#     - {{ table: public.users, column: search, expression: "to_tsvector('simple', name)" }}
# cache:
#   url: redis://127.0.0.1:6379/0
#   flush: ["user:"]
"#,
        display = endpoint.display,
        staging = quoted(&format!("{dbname}_staging")),
        secret = quoted(&format!("file:{}", secret.display())),
    )
}
