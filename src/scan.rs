//! `restage scan`: finds columns that look like personal data and have no rule.

use crate::cli::ScanArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::Ui;

pub async fn run(_config: &Config, _args: &ScanArgs, _ui: &Ui) -> Result<i32> {
    Err(Error::NotYet("restage scan"))
}

/// Why a column name looks personal, when it does.
pub fn personal_name(column: &str) -> Option<&'static str> {
    let lower = column.to_ascii_lowercase();
    const WORDS: &[(&str, &str)] = &[
        ("email", "email"),
        ("mail", "email"),
        ("phone", "phone"),
        ("first_name", "first name"),
        ("last_name", "last name"),
        ("address", "address"),
        ("ssn", "national id"),
        ("birth", "birth date"),
        ("password", "password"),
        ("iban", "IBAN"),
        ("card", "card number"),
    ];
    WORDS
        .iter()
        .find(|(w, _)| lower.contains(w))
        .map(|(_, why)| *why)
}
