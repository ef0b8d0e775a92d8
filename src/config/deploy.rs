//! The `deploy:` section as written.
//!
//! Only the schema lives here, so that config depends on no command; validating the section
//! into a deployment plan (templates parsed, instances checked) is `deploy::plan`.

use serde::Deserialize;

use super::RawValue;
use crate::units::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// `host:port` of every instance of the service.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Run per instance to move it to `{version}`.
    pub update: String,
    /// Run commands through `sh -c` (values are quoted); off by default.
    #[serde(default)]
    pub shell: bool,
    /// Longest a command may run before it is killed (default 5m).
    pub command_timeout: Option<Duration>,
    /// Roll back when a gate fails (default true).
    #[serde(default = "yes")]
    pub auto_rollback: bool,
    #[serde(default)]
    pub health: GateConfig,
    pub rolling: Option<RollingConfig>,
    pub canary: Option<CanaryConfig>,
    pub blue_green: Option<BlueGreenConfig>,
    /// A JSON Lines file (relative to this file) or a postgres:// URL.
    pub history: Option<RawValue>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    pub path: Option<String>,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub wait: Option<Duration>,
    pub expect: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingConfig {
    pub batch_size: Option<usize>,
    pub pause: Option<Duration>,
    pub max_failure: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// Traffic percentages, increasing.
    pub steps: Vec<u32>,
    /// Sets the canary's share of traffic to `{percent}`.
    pub traffic: String,
    /// The canary instances (default: the first of `deploy.instances`).
    pub instances: Option<Vec<String>>,
    pub analysis: AnalysisConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Prometheus text-format endpoint; may use `{instance}` to scrape each canary.
    pub metrics: String,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub window: Option<Duration>,
    pub interval: Option<Duration>,
    pub requests: Option<String>,
    pub errors: Option<String>,
    pub latency: Option<String>,
    pub min_requests: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueGreenConfig {
    pub blue: Vec<String>,
    pub green: Vec<String>,
    /// Points traffic at `{color}`.
    pub switch: String,
    /// How long the new colour is watched after the switch (default 1m).
    pub watch: Option<Duration>,
}
