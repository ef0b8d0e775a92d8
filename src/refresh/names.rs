//! The names restage gives the databases of one staging database: generations
//! (`<base>__restage_<YYYYMMDDTHHMMSS>_<microseconds>Z`) and the control database
//! (`<base>__restage`, see [`super::lock`]).
//!
//! `<base>` is `target.database` when it is at most 30 bytes, otherwise its first 21 bytes
//! (cut at a character boundary), `_` and 8 hex digits of its SHA-256: so every name fits in
//! PostgreSQL's 63 bytes (beyond which the server silently cuts a name, and two would
//! become one), the same database always gets the same names, and two long ones never
//! share them. Messages always name `target.database` itself.

use chrono::{DateTime, Utc};
use sha2::Digest;

/// Between the base and the birth time of every generation name.
pub const INFIX: &str = "__restage_";
/// The control database's name is the base and this.
pub const CONTROL_SUFFIX: &str = "__restage";
/// PostgreSQL's longest name (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;
/// The birth time in a name: `20261201T140000_123456Z`.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S_%6fZ";
const STAMP_BYTES: usize = "20261201T140000_123456Z".len();
/// The longest `target.database` used as the base as it is.
pub const MAX_BASE_BYTES: usize = MAX_NAME_BYTES - INFIX.len() - STAMP_BYTES;
/// Hex digits of the hash that ends a shortened base.
const HASH_HEX: usize = 8;

/// The names restage uses for one staging database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    database: String,
    base: String,
}

impl Names {
    pub fn of(database: &str) -> Names {
        Names {
            database: database.to_string(),
            base: shorten(database),
        }
    }

    /// `target.database`: the live staging database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `target.database`, or its shortened form when it is too long for generation names.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The control database: the run lock and the registry ([`super::lock`]).
    pub fn control(&self) -> String {
        format!("{}{CONTROL_SUFFIX}", self.base)
    }

    /// What every generation name starts with.
    pub fn prefix(&self) -> String {
        format!("{}{INFIX}", self.base)
    }

    /// The generation name for a database born at `at`.
    pub fn generation(&self, at: DateTime<Utc>) -> String {
        format!("{}{}", self.prefix(), at.format(STAMP_FORMAT))
    }
}

/// The base of the names of `database` (see the module doc).
fn shorten(database: &str) -> String {
    if database.len() <= MAX_BASE_BYTES {
        return database.to_string();
    }
    let mut cut = MAX_BASE_BYTES - 1 - HASH_HEX;
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = sha2::Sha256::digest(database.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}_{hash}", &database[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn names_carry_microseconds_and_fit_in_63_bytes() {
        let names = Names::of("app");
        assert_eq!(names.control(), "app__restage");
        assert_eq!(
            names.generation(at("2026-11-27T16:25:13.000042Z")),
            "app__restage_20261127T162513_000042Z"
        );
        let thirty = "a".repeat(MAX_BASE_BYTES);
        assert_eq!(MAX_BASE_BYTES, 30);
        let n = Names::of(&thirty);
        assert_eq!(n.base(), thirty, "30 bytes are kept as they are");
        assert_eq!(n.generation(Utc::now()).len(), 63);
    }

    #[test]
    fn long_names_are_shortened_deterministically_and_apart() {
        let long = "customer_analytics_warehouse_staging_eu_west";
        let a = Names::of(long);
        let b = Names::of(&format!("{long}2"));
        assert_eq!(a, Names::of(long), "the same every time");
        assert_ne!(a.base(), b.base(), "two long names never share a base");
        assert!(
            a.base().starts_with("customer_analytics_wa_"),
            "{}",
            a.base()
        );
        assert_eq!(a.base().len(), MAX_BASE_BYTES);
        let g = a.generation(Utc::now());
        assert!(g.len() <= MAX_NAME_BYTES, "{g}");
        assert_eq!(a.database(), long, "messages name the real database");
        // Multi-byte characters are never cut in half.
        let accented = "é".repeat(40);
        let c = Names::of(&accented);
        assert!(c.base().len() <= MAX_BASE_BYTES);
        assert!(c.generation(Utc::now()).len() <= MAX_NAME_BYTES);
        assert!(Names::of(&"x".repeat(63)).control().len() <= MAX_NAME_BYTES);
    }
}
