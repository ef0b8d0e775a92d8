//! `restage.yaml`: what the user wrote, parsed straight into typed structs so every error keeps
//! its line and column, plus the resolution of `${VAR}`, `file:` and `cmd:` values, sizes and
//! durations.
//!
//! Two phases, as with command-line arguments: [`Config::load`] only reads and type-checks the
//! file (no environment, no network). The accessors (`source()`, `target()`, `secret()`, …)
//! resolve values when a command needs that section, so `restage health` never runs the
//! `cmd:` of the refresh secret, and an unset variable is reported only by a command that
//! uses it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::Deserialize;

use crate::secret::{Secret, redact_url};
use crate::yaml::{self, KeyIndex, Location, YamlError};

/// A problem with the configuration: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Yaml(#[from] YamlError),
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{location}: {key}: {message}")]
    Value {
        location: Location,
        key: String,
        message: String,
    },
    #[error("{file}: section `{section}` is missing; `{command}` needs it")]
    MissingSection {
        file: PathBuf,
        section: &'static str,
        command: &'static str,
    },
}

/// The whole file as written. Every section is optional; commands ask for the ones they need.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub source: Option<SourceConfig>,
    pub target: Option<TargetConfig>,
    pub jobs: Option<usize>,
    pub secret: Option<RawValue>,
    pub rules: Option<PathBuf>,
    pub strict: Option<Strictness>,
    pub locale: Option<String>,
    pub sample: Option<SampleConfig>,
    pub search: Option<SearchConfig>,
    pub cache: Option<CacheConfig>,
    pub health: Option<crate::health::HealthConfig>,
    pub deploy: Option<crate::deploy::DeployConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub url: RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub url: RawValue,
    pub database: String,
    #[serde(default = "default_keep")]
    pub keep: u32,
    #[serde(default)]
    pub grants: Vec<String>,
}

fn default_keep() -> u32 {
    1
}

/// How strictly uncovered columns are refused before copying.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    /// Refuse when a column that looks personal has no rule.
    #[default]
    Pii,
    /// Refuse when any column has no rule.
    All,
    /// No check.
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    pub max_storage: Option<Size>,
    #[serde(default)]
    pub tables: BTreeMap<String, SampleSpecConfig>,
    /// What happens to a nullable reference to a row that was not kept: drop the row
    /// (default) or set the reference to NULL. Per foreign key in `foreign_keys`.
    #[serde(default)]
    pub dangling: Option<Dangling>,
    #[serde(default)]
    pub foreign_keys: BTreeMap<String, ForeignKeyPolicy>,
    /// Bound on the memory of the subset's key sets (default 2GiB); past it the run stops
    /// with an error before copying.
    pub max_key_memory: Option<Size>,
}

/// One table's sample spec; the fields combine (a window and a cap, say).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpecConfig {
    pub percent: Option<f64>,
    pub since_days: Option<u32>,
    pub column: Option<String>,
    pub max_rows: Option<u64>,
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dangling {
    /// Drop a row whose reference points at a row that was not kept.
    #[default]
    Drop,
    /// Keep the row and set a nullable reference to NULL.
    SetNull,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyPolicy {
    pub dangling: Dangling,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    #[serde(default = "yes")]
    pub refresh_materialized_views: bool,
    #[serde(default)]
    pub tsvector: Vec<DerivedColumnConfig>,
    /// Indexes rebuilt (REINDEX) after the load, by qualified name.
    #[serde(default)]
    pub reindex: Vec<String>,
    /// What to do with a tsvector column on an anonymized table that has no recompute rule:
    /// refuse (default) or warn.
    #[serde(default)]
    pub unruled_tsvector: Option<UnruledTsvector>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnruledTsvector {
    Refuse,
    Warn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedColumnConfig {
    pub table: String,
    pub column: String,
    pub expression: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub url: Option<RawValue>,
    #[serde(default)]
    pub flush: Vec<String>,
    #[serde(default)]
    pub warm: Vec<WarmConfig>,
    /// Fail the refresh before the swap when Redis cannot be reached.
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmConfig {
    pub query: String,
    pub key: String,
    #[serde(default = "default_warm_value")]
    pub value: String,
    pub ttl: Option<Duration>,
}

fn default_warm_value() -> String {
    "json".to_string()
}

/// A configuration string that may be `${VAR}`-interpolated, `file:/path` or `cmd:...`.
/// Kept raw until a command needs it. Its `Debug` (what a panic message would show) never
/// shows a value that could be a secret written inline: URLs are redacted, `cmd:` lines
/// (whose arguments may carry a token) and plain values are hidden; only `file:` paths and
/// pure `${VAR}` references are shown as written.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RawValue(String);

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0.trim();
        let pure_reference = raw.starts_with("${")
            && raw.ends_with('}')
            && raw[2..raw.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if raw.starts_with("file:") || pure_reference {
            write!(f, "RawValue({raw})")
        } else if raw.starts_with("cmd:") {
            f.write_str("RawValue(cmd:***)")
        } else if raw.contains("://") {
            write!(f, "RawValue({})", redact_url(raw))
        } else {
            f.write_str("RawValue(***)")
        }
    }
}

impl RawValue {
    pub fn new(raw: impl Into<String>) -> Self {
        RawValue(raw.into())
    }

    /// Resolves the value. `key` and `location` name it in errors; the value itself never
    /// appears in an error.
    pub fn resolve(&self, key: &str, location: &Location) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError::Value {
            location: location.clone(),
            key: key.to_string(),
            message,
        };
        let raw = self.0.trim();
        if let Some(path) = raw.strip_prefix("file:") {
            let path = interpolate(path).map_err(&err)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("cannot read secret file {path}: {e}")))?;
            return Ok(Secret::new(text.trim_end_matches(['\n', '\r'])));
        }
        if let Some(command) = raw.strip_prefix("cmd:") {
            return run_secret_command(command.trim()).map_err(err);
        }
        interpolate(raw).map(Secret::new).map_err(err)
    }
}

/// Substitutes `${VAR}` and `${VAR:-default}` from the environment. An unset variable without a
/// default is an error naming it.
pub fn interpolate(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` (expected `${NAME}`)".to_string())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{inner}}}` is not a valid variable reference"));
        }
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs a `cmd:` value (split like a shell would for simple words and quotes, but without a
/// shell) and returns its stdout. Its output is a secret; its stderr is not shown either, since
/// secret managers sometimes echo what they were asked for.
fn run_secret_command(command: &str) -> Result<Secret, String> {
    let words = split_command(command)?;
    let Some((program, args)) = words.split_first() else {
        return Err("`cmd:` is empty".to_string());
    };
    let output = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program}` failed with {} (its output is not shown, it may hold secrets)",
            output.status
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| format!("`{program}` printed something that is not UTF-8"))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Splits a command line into words: whitespace separates, single and double quotes group,
/// backslash escapes outside single quotes. No variables, globs or pipes.
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated single quote in command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch) => word.push(ch),
                            None => return Err("unterminated double quote in command".into()),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated double quote in command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    word.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A byte size: `500MB` (10^6), `2GiB` (2^30), `1024` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a size (examples: 500MB, 2GiB, 1048576)"))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}` (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        Ok(Size((number * factor as f64).round() as u64))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(n) => Ok(Size(n)),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

/// `1.5 GiB`-style rendering for reports.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration: `250ms`, `30s`, `5m`, `1h`, `1h30m`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad = || format!("`{text}` is not a duration (examples: 500ms, 30s, 5m, 1h, 1h30m)");
        if let Ok(secs) = text.parse::<f64>() {
            return Ok(Duration(std::time::Duration::from_secs_f64(secs.max(0.0))));
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = text;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let seconds = match &rest[..unit_len] {
                "ms" => number / 1000.0,
                "s" => number,
                "m" | "min" => number * 60.0,
                "h" => number * 3600.0,
                "d" => number * 86400.0,
                _ => return Err(bad()),
            };
            total += std::time::Duration::from_secs_f64(seconds);
            rest = &rest[unit_len..];
        }
        Ok(Duration(total))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Num(n) => Ok(Duration(std::time::Duration::from_secs_f64(n.max(0.0)))),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A loaded configuration file: the typed content plus what is needed to point at its keys.
#[derive(Debug, Default)]
pub struct Config {
    pub path: PathBuf,
    pub file: ConfigFile,
    index: KeyIndex,
    /// False when the file does not exist and defaults are used (only `demo` allows that).
    pub exists: bool,
}

/// A PostgreSQL server to connect to, with its password kept out of any display.
#[derive(Clone)]
pub struct PgEndpoint {
    pub config: tokio_postgres::Config,
    /// `user@host:port/dbname`, never with a password: what errors and logs show.
    pub display: String,
    /// The TLS mode the user asked for, including modes tokio-postgres does not parse.
    pub tls: crate::db::TlsMode,
}

impl fmt::Debug for PgEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgEndpoint({})", self.display)
    }
}

impl fmt::Display for PgEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl PgEndpoint {
    /// Parses a libpq URL or key=value string. Errors never include the string.
    pub fn parse(raw: &Secret) -> Result<PgEndpoint, String> {
        let (cleaned, tls) = crate::db::TlsMode::extract(raw.expose())?;
        let config = tokio_postgres::Config::from_str(&cleaned).map_err(|e| {
            // Shown (redacted) only when it is a URL: anything else may be a bare secret
            // (a `cmd:` or variable that gave the password instead of the URL).
            let raw = raw.expose().trim();
            if raw.contains("://") {
                format!(
                    "not a valid PostgreSQL connection string ({}): {e}",
                    redact_url(raw)
                )
            } else {
                format!(
                    "not a valid PostgreSQL connection string: {e} (expected postgres://user@host:port/database or key=value pairs; the value is not shown, it may be a secret)"
                )
            }
        })?;
        Ok(PgEndpoint::from_config(config, tls))
    }

    pub fn from_config(config: tokio_postgres::Config, tls: crate::db::TlsMode) -> PgEndpoint {
        let display = describe_pg(&config);
        PgEndpoint {
            config,
            display,
            tls,
        }
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, dbname: &str) -> PgEndpoint {
        let mut config = self.config.clone();
        config.dbname(dbname);
        PgEndpoint::from_config(config, self.tls.clone())
    }

    pub fn dbname(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| self.config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".to_string())
    }

    pub fn host_string(&self) -> String {
        use tokio_postgres::config::Host;
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        }
    }

    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// Same server (host and port) as `other`.
    pub fn same_server(&self, other: &PgEndpoint) -> bool {
        normalize_host(&self.host_string()) == normalize_host(&other.host_string())
            && self.port() == other.port()
    }

    /// libpq environment variables for pg_dump / pg_restore, so that the password travels in
    /// the child's environment, not its command line (which `ps` shows to every user).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host_string()),
            ("PGPORT", self.port().to_string()),
            ("PGDATABASE", self.dbname()),
        ];
        if let Some(user) = self.config.get_user() {
            env.push(("PGUSER", user.to_string()));
        }
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        if let Some(name) = self.config.get_application_name() {
            env.push(("PGAPPNAME", name.to_string()));
        }
        env.push(("PGSSLMODE", self.tls.libpq_sslmode().to_string()));
        if let Some(root) = self.tls.root_cert() {
            env.push(("PGSSLROOTCERT", root.display().to_string()));
        }
        env.push((
            "PGCONNECT_TIMEOUT",
            self.config
                .get_connect_timeout()
                .map(|d| d.as_secs().max(1))
                .unwrap_or(10)
                .to_string(),
        ));
        env
    }
}

fn normalize_host(h: &str) -> String {
    match h {
        "localhost" | "127.0.0.1" | "::1" => "localhost".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn describe_pg(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    if user.is_empty() {
        format!("{host}:{port}/{db}")
    } else {
        format!("{user}@{host}:{port}/{db}")
    }
}

impl Config {
    /// Reads and type-checks `path`. A missing file is allowed (`exists == false`): commands
    /// that need a section then say so.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path: path.to_path_buf(),
                    exists: false,
                    ..Config::default()
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::from_text(&text, path)
    }

    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: ConfigFile = yaml::from_str(text, path)?;
        let config = Config {
            path: path.to_path_buf(),
            index: KeyIndex::parse(text, path),
            file,
            exists: true,
        };
        config.check()?;
        Ok(config)
    }

    /// Pure checks that serde's types cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        if let Some(jobs) = self.file.jobs
            && jobs == 0
        {
            return Err(self.value_error(&["jobs"], "must be at least 1"));
        }
        if let Some(target) = &self.file.target {
            let name = &target.database;
            if name.is_empty() || name.len() > 40 {
                return Err(self.value_error(
                    &["target", "database"],
                    "must be 1 to 40 characters (restage appends __restage_<timestamp>, and PostgreSQL names end at 63)",
                ));
            }
            if name.contains("__restage_") {
                return Err(self.value_error(
                    &["target", "database"],
                    "must not contain `__restage_`, which restage uses for generations",
                ));
            }
        }
        if let Some(sample) = &self.file.sample {
            for (table, spec) in &sample.tables {
                let at = ["sample", "tables", table.as_str()];
                if let Some(p) = spec.percent
                    && !(0.0..=100.0).contains(&p)
                {
                    return Err(self.value_error(&at, "percent must be between 0 and 100"));
                }
                if spec.since_days.is_some() != spec.column.is_some() {
                    return Err(self.value_error(
                        &at,
                        "since_days and column go together (the timestamp column the window applies to)",
                    ));
                }
                if spec.percent.is_none()
                    && spec.since_days.is_none()
                    && spec.max_rows.is_none()
                    && spec.rows.is_none()
                {
                    return Err(self.value_error(
                        &at,
                        "empty sample spec: give percent, since_days + column, max_rows or rows",
                    ));
                }
                if let Some(rows) = spec.rows
                    && rows != 0
                {
                    return Err(self.value_error(
                        &at,
                        "rows only takes 0 (schema only); use max_rows for a cap",
                    ));
                }
            }
        }
        if let Some(cache) = &self.file.cache {
            for (i, w) in cache.warm.iter().enumerate() {
                if !w.key.contains('{') {
                    let idx = i.to_string();
                    return Err(self.value_error(
                        &["cache", "warm", idx.as_str(), "key"],
                        "key template needs at least one {column} placeholder",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The location of the key at `path` in this file.
    pub fn locate(&self, path: &[&str]) -> Location {
        if self.exists {
            self.index.locate(path)
        } else {
            Location {
                file: self.path.clone(),
                line: 1,
                column: 1,
            }
        }
    }

    pub fn value_error(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            location: self.locate(path),
            key: path.join("."),
            message: message.into(),
        }
    }

    fn missing(&self, section: &'static str, command: &'static str) -> ConfigError {
        ConfigError::MissingSection {
            file: self.path.clone(),
            section,
            command,
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn source(&self, command: &'static str) -> Result<PgEndpoint, ConfigError> {
        let source = self
            .file
            .source
            .as_ref()
            .ok_or_else(|| self.missing("source", command))?;
        self.resolve_pg(&source.url, &["source", "url"])
    }

    pub fn target(
        &self,
        command: &'static str,
    ) -> Result<(PgEndpoint, &TargetConfig), ConfigError> {
        let target = self
            .file
            .target
            .as_ref()
            .ok_or_else(|| self.missing("target", command))?;
        Ok((self.resolve_pg(&target.url, &["target", "url"])?, target))
    }

    fn resolve_pg(&self, raw: &RawValue, path: &[&str]) -> Result<PgEndpoint, ConfigError> {
        let at = self.locate(path);
        let url = raw.resolve(&path.join("."), &at)?;
        PgEndpoint::parse(&url).map_err(|message| ConfigError::Value {
            location: at,
            key: path.join("."),
            message,
        })
    }

    /// The pseudonym key. Required for any command that transforms data.
    pub fn secret(&self, command: &'static str) -> Result<Secret, ConfigError> {
        let raw = self
            .file
            .secret
            .as_ref()
            .ok_or_else(|| self.missing("secret", command))?;
        let secret = raw.resolve("secret", &self.locate(&["secret"]))?;
        if secret.expose().len() < 16 {
            return Err(self.value_error(
                &["secret"],
                "must be at least 16 characters: it is the only thing between a pseudonym and its original",
            ));
        }
        Ok(secret)
    }

    pub fn jobs(&self) -> usize {
        self.file.jobs.unwrap_or(4)
    }

    pub fn strictness(&self) -> Strictness {
        self.file.strict.unwrap_or_default()
    }

    pub fn locale(&self) -> &str {
        self.file.locale.as_deref().unwrap_or("en")
    }

    /// The rules path, relative to the config file; `rules/` beside it by default.
    pub fn rules_path(&self) -> PathBuf {
        let rel = self
            .file
            .rules
            .clone()
            .unwrap_or_else(|| PathBuf::from("rules"));
        if rel.is_absolute() {
            rel
        } else {
            self.dir().join(rel)
        }
    }

    /// The Redis URL of the cache section, resolved.
    pub fn cache_url(&self, command: &'static str) -> Result<Option<Secret>, ConfigError> {
        let cache = self
            .file
            .cache
            .as_ref()
            .ok_or_else(|| self.missing("cache", command))?;
        match &cache.url {
            Some(raw) => Ok(Some(
                raw.resolve("cache.url", &self.locate(&["cache", "url"]))?,
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("restage.yaml"))
    }

    #[test]
    fn sizes() {
        assert_eq!("500MB".parse::<Size>().unwrap(), Size(500_000_000));
        assert_eq!("2GiB".parse::<Size>().unwrap(), Size(2 << 30));
        assert_eq!("1.5 KiB".parse::<Size>().unwrap(), Size(1536));
        assert_eq!("1024".parse::<Size>().unwrap(), Size(1024));
        assert!(
            "2 parsecs"
                .parse::<Size>()
                .unwrap_err()
                .contains("unknown size unit")
        );
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<Duration>().unwrap().0;
        assert_eq!(d("30s"), std::time::Duration::from_secs(30));
        assert_eq!(d("5m"), std::time::Duration::from_secs(300));
        assert_eq!(d("1h30m"), std::time::Duration::from_secs(5400));
        assert_eq!(d("250ms"), std::time::Duration::from_millis(250));
        assert_eq!(d("2"), std::time::Duration::from_secs(2));
        assert!("5 fortnights".parse::<Duration>().is_err());
    }

    #[test]
    fn interpolation() {
        // SAFETY: test-local variable names, not read by other tests.
        unsafe { std::env::set_var("RESTAGE_TEST_INTERP_A", "alpha") };
        assert_eq!(
            interpolate("x-${RESTAGE_TEST_INTERP_A}-y").unwrap(),
            "x-alpha-y"
        );
        assert_eq!(
            interpolate("${RESTAGE_TEST_INTERP_UNSET:-fallback}").unwrap(),
            "fallback"
        );
        assert_eq!(
            interpolate("${RESTAGE_TEST_INTERP_UNSET}").unwrap_err(),
            "environment variable RESTAGE_TEST_INTERP_UNSET is not set"
        );
    }

    #[test]
    fn unset_variable_names_key_and_position() {
        let c = load("source:\n  url: ${RESTAGE_TEST_NOPE}\n").unwrap();
        let err = c.source("refresh").unwrap_err().to_string();
        assert_eq!(
            err,
            "restage.yaml:2:3: source.url: environment variable RESTAGE_TEST_NOPE is not set"
        );
    }

    #[test]
    fn unknown_key_suggests() {
        let err = load("source:\n  url: x\ntraget:\n  url: y\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "restage.yaml:3:1: unknown key `traget`, did you mean `target`?"
        );
    }

    #[test]
    fn missing_section_is_named() {
        let c = load("jobs: 2\n").unwrap();
        assert_eq!(
            c.source("refresh").unwrap_err().to_string(),
            "restage.yaml: section `source` is missing; `refresh` needs it"
        );
    }

    #[test]
    fn cmd_values_run_without_shell() {
        let v = RawValue::new("cmd: printf '%s' 'sec ret'");
        let loc = Location {
            file: "x".into(),
            line: 1,
            column: 1,
        };
        assert_eq!(v.resolve("secret", &loc).unwrap().expose(), "sec ret");
        let failing = RawValue::new("cmd:false");
        let err = failing.resolve("secret", &loc).unwrap_err().to_string();
        assert!(err.contains("`false` failed"), "{err}");
    }

    #[test]
    fn pg_endpoint_display_hides_password() {
        let e =
            PgEndpoint::parse(&Secret::new("postgres://alice:pw123@db.example:6543/prod")).unwrap();
        assert_eq!(e.display, "alice@db.example:6543/prod");
        assert!(!format!("{e:?}").contains("pw123"));
        let bad =
            PgEndpoint::parse(&Secret::new("postgres://alice:pw123@db:notaport/x")).unwrap_err();
        assert!(!bad.contains("pw123"), "{bad}");
    }

    #[test]
    fn sample_checks() {
        let err = load("sample:\n  tables:\n    public.users: { percent: 150 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("percent must be between 0 and 100"), "{err}");
        assert!(err.starts_with("restage.yaml:3:5"), "{err}");
    }
}
