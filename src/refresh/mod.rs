//! The refresh pipeline, stage by stage.

use crate::cli::{RefreshArgs, RollbackArgs, ValidateArgs};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::Ui;

pub async fn refresh(_config: &Config, _args: &RefreshArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage refresh"))
}
pub async fn validate(_config: &Config, _args: &ValidateArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage validate"))
}
pub async fn verify_live(_config: &Config, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage verify"))
}
pub async fn warm_live(_config: &Config, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage warm"))
}
pub async fn reindex_live(_config: &Config, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage reindex"))
}
pub async fn generations(_config: &Config, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage generations"))
}
pub async fn rollback(_config: &Config, _args: &RollbackArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage rollback"))
}
