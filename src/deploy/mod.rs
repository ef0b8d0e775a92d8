//! `restage deploy`: rolling, canary and blue-green strategies with health gates, history and
//! rollback. (Owned by issue 7.)

/// The `deploy:` section of restage.yaml.
pub type DeployConfig = serde_yaml::Value;

use crate::cli::DeployCommand;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::Ui;

pub async fn run(_config: &Config, _command: &DeployCommand, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage deploy"))
}
