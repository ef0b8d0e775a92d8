//! `restage demo`: a sample production database with personal data, refreshed end to end.

use crate::cli::DemoArgs;
use crate::error::{Error, Result};
use crate::progress::Ui;

pub async fn run(_args: &DemoArgs, _ui: &Ui) -> Result<()> {
    Err(Error::NotYet("restage demo"))
}
