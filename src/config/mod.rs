//! `restage.yaml`: what the user wrote, and what commands ask of it.
//!
//! Two phases, as with command-line arguments: [`Config::load`] only reads and type-checks the
//! file and runs the pure checks, collecting every problem (no environment, no network). The
//! accessors (`source()`, `target()`, `secret()`, …) resolve values when a command needs that
//! section, so `restage health` never runs the `cmd:` of the refresh secret, and an unset
//! variable is reported only by a command that uses it.
//!
//! ```text
//! file.rs · health.rs · deploy.rs   the schema as written (serde, with positions);
//! sample.rs                         max_storage's two forms, its policy, orphans
//! monitoring.rs                     `metrics:` and `notify:`, with their pure checks
//! load.rs ──► check.rs              read + type-check, then every pure problem at once
//! values.rs                         ${VAR}, file:, cmd: (and the command splitter)
//! accessors.rs                      one section resolved on demand (endpoints from `db`)
//! ```
//!
//! The cut: config knows the file and nothing that runs. It sits above `db` (a URL becomes a
//! [`PgEndpoint`](crate::db::PgEndpoint) there) and the foundations (units, secrets, yaml), and
//! below every command: the `health:` and `deploy:` sections are plain structs here, while
//! building checks and deployment plans from them stays in `health` and `deploy`.

mod accessors;
mod check;
pub mod deploy;
mod file;
pub mod health;
mod load;
pub mod monitoring;
mod sample;
mod values;

use std::path::PathBuf;

pub use deploy::DeployConfig;
pub use file::{
    CacheConfig, ConfigFile, Dangling, DerivedColumnConfig, DumpConfig, DumpEncryptionConfig,
    ForeignKeyPolicy, SampleConfig, SampleSpecConfig, SearchConfig, SettingValue, SourceConfig,
    SourceMode, Strictness, TargetConfig, UnruledTsvector, WarmConfig,
};
pub use health::HealthConfig;
pub use monitoring::{MetricsConfig, NotifyConfig, NotifyEvent, NotifyFormat};
pub use sample::{MaxStorageConfig, MaxStoragePolicy, Orphans};
pub use values::{RawValue, interpolate, split_command};

use crate::yaml::{KeyIndex, Location, YamlError};

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
    /// Several problems, one line each, in the order they were found.
    #[error("{}", lines(.0))]
    Problems(Vec<ConfigError>),
}

fn lines(problems: &[ConfigError]) -> String {
    let shown: Vec<String> = problems
        .iter()
        .take(crate::yaml::MAX_PROBLEMS_SHOWN)
        .map(ToString::to_string)
        .chain(crate::yaml::more_problems(problems.len()))
        .collect();
    shown.join("\n")
}

impl ConfigError {
    /// `Ok` for no problem, the problem itself for one, [`ConfigError::Problems`] for more, so
    /// that a single problem reads the same whether or not others were looked for.
    pub fn from_problems(mut problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Problems(problems)),
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
