//! The file schema: `restage.yaml` as written, parsed straight into these structs so that
//! every error keeps its line and column and `deny_unknown_fields` catches typos.
//!
//! What the user wrote, nothing resolved: values that may be `${VAR}`, `file:` or `cmd:` stay
//! [`RawValue`]s until a command asks for them (see `accessors.rs`). The `health:` and
//! `deploy:` sections have their own files beside this one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::deploy::DeployConfig;
use super::health::HealthConfig;
use super::monitoring::{MetricsConfig, NotifyConfig};
use super::sample::{MaxStorageConfig, MaxStoragePolicy, Orphans};
use super::values::RawValue;
use crate::units::{Duration, Size};

/// `lock_timeout` when the file does not say: long enough for a migration's short lock or a
/// slow commit, short enough that a nightly run blocked by a stuck session fails the same
/// night with a message instead of hanging until morning.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The whole file as written. Every section is optional; commands ask for the ones they need.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub source: Option<SourceConfig>,
    pub target: Option<TargetConfig>,
    pub jobs: Option<usize>,
    /// The longest wait for a lock: on a source table (before the snapshot is used), or for
    /// the swap on the target. Default [`DEFAULT_LOCK_TIMEOUT`].
    pub lock_timeout: Option<Duration>,
    pub secret: Option<RawValue>,
    pub rules: Option<PathBuf>,
    pub strict: Option<Strictness>,
    pub locale: Option<String>,
    pub sample: Option<SampleConfig>,
    pub search: Option<SearchConfig>,
    pub cache: Option<CacheConfig>,
    pub health: Option<HealthConfig>,
    pub deploy: Option<DeployConfig>,
    /// Each run's metrics: a textfile for node_exporter and/or a Pushgateway.
    pub metrics: Option<MetricsConfig>,
    /// Who is told when a run fails or succeeds.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// `restage dump` / `restage restore`: where archives go and how many are kept.
    pub dump: Option<DumpConfig>,
}

/// The `dump:` section (issue 17): the archives of `restage dump`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpConfig {
    /// Where archives are written (`--to` overrides it) and restored from (`--from`): a
    /// folder, or `s3://bucket/prefix` (docs/dump.md).
    pub destination: Option<String>,
    /// Archives kept in the destination after a successful dump (default 3).
    pub keep: Option<u32>,
    /// zstd level of the data parts (1–19, default 3).
    pub level: Option<i32>,
    /// Encryption at rest with age (docs/dump.md).
    pub encryption: Option<DumpEncryptionConfig>,
}

/// `dump.encryption`: a dump encrypts to `recipients` (age public keys) or `passphrase`; a
/// restore opens with `identity` (an age identity file's text, e.g. `file:/etc/…/key.txt`)
/// or `passphrase`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpEncryptionConfig {
    #[serde(default)]
    pub recipients: Vec<String>,
    pub passphrase: Option<RawValue>,
    pub identity: Option<RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Required, except with `mode: synthetic` and a `schema_archive` (no production at all).
    #[serde(default)]
    pub url: Option<RawValue>,
    /// Where the rows come from: production through the rules (default), generated
    /// (`synthetic`), or per table (`hybrid`). See `src/synthetic`.
    #[serde(default)]
    pub mode: SourceMode,
    /// Synthetic row counts: production's estimate × `scale` (default 1.0).
    pub scale: Option<f64>,
    /// The seed of generated values (default 0): same seed, schema and scale, same rows.
    pub seed: Option<u64>,
    /// A `pg_dump --schema-only -Fc` archive to take the schema from instead of production.
    pub schema_archive: Option<PathBuf>,
}

/// `source.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    #[default]
    Production,
    Synthetic,
    Hybrid,
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
    /// Let the first refresh retire a `database` restage did not build (kept as a generation,
    /// pinned until unpinned), as `restage refresh --adopt` does for one run.
    #[serde(default)]
    pub adopt: bool,
    /// Parameters set on the new database (`ALTER DATABASE … SET`), over the source's and
    /// the live staging database's own; `~` removes one the source sets.
    #[serde(default)]
    pub settings: BTreeMap<String, Option<SettingValue>>,
}

/// A value of `target.settings`: any YAML scalar, written as PostgreSQL reads it (`64MB`,
/// `0`, `on`, `"app, public"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Text(s) => f.write_str(s),
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::Float(x) => write!(f, "{x}"),
            SettingValue::Bool(b) => f.write_str(if *b { "on" } else { "off" }),
        }
    }
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
    /// The cap on the restored tables: a size, or `{ limit, include_indexes, tolerance }`.
    pub max_storage: Option<MaxStorageConfig>,
    /// What happens when the restored data comes out over `max_storage` anyway (default
    /// `rescale`).
    pub max_storage_policy: Option<MaxStoragePolicy>,
    #[serde(default)]
    pub tables: BTreeMap<String, SampleSpecConfig>,
    /// What happens to a nullable reference to a row that was not kept: drop the row
    /// (default) or set the reference to NULL. Per foreign key in `foreign_keys`.
    #[serde(default)]
    pub dangling: Option<Dangling>,
    /// Rows of a following table that reference nothing in the tables it follows (NULL):
    /// sampled at the root's rate (default) or all kept. Per foreign key in `foreign_keys`.
    pub orphans: Option<Orphans>,
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
    pub dangling: Option<Dangling>,
    pub orphans: Option<Orphans>,
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
