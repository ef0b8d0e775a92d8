//! The `health:` section as written. Parameters are flat on each check (`kind` says which
//! apply) so that serde keeps line and column for every error and `deny_unknown_fields`
//! catches typos.
//!
//! Only the schema lives here, so that config depends on no command; validating the section
//! and building runnable checks from it is `health::build`.

use std::path::PathBuf;

use serde::Deserialize;

use super::RawValue;
use crate::units::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between runs with `--watch` or `--serve`.
    pub interval: Option<Duration>,
    /// Default timeout of every check.
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// Consecutive passes before a failing check counts healthy again.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures before a passing check counts unhealthy.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

fn default_healthy_threshold() -> u32 {
    2
}

fn default_unhealthy_threshold() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Postgres,
    Redis,
    Http,
    Disk,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Postgres => "postgres",
            CheckKind::Redis => "redis",
            CheckKind::Http => "http",
            CheckKind::Disk => "disk",
        }
    }
}

/// One check as written. Which keys apply depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub name: String,
    pub kind: CheckKind,
    /// A failing critical check makes the status unhealthy; another one, degraded.
    #[serde(default)]
    pub critical: bool,
    pub timeout: Option<Duration>,
    /// Fail when the check takes longer than this, even if it passed.
    pub max_latency: Option<Duration>,
    /// postgres, redis, http: where to connect (`${VAR}`, `file:`, `cmd:` allowed).
    pub url: Option<RawValue>,
    /// http: the expected status (default: any 2xx).
    pub expect: Option<u16>,
    /// http: a regular expression the body must match.
    pub body: Option<String>,
    /// postgres: on a standby, fail when replay is further behind than this.
    pub max_replication_lag: Option<Duration>,
    /// redis: fail when used memory is above this share of `maxmemory` (when one is set).
    pub max_memory_percent: Option<f64>,
    /// disk: a path on the filesystem to watch.
    pub path: Option<PathBuf>,
    /// disk: fail below this share of free space.
    pub min_free_percent: Option<f64>,
}
