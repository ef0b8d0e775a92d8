//! `restage health`: checks with thresholds and the status document. (Owned by issue 7.)

/// The `health:` section of restage.yaml.
pub type HealthConfig = serde_yaml::Value;

use crate::cli::HealthArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::Ui;

pub async fn run(_config: &Config, _args: &HealthArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage health"))
}
