//! Personal data, recognised: the detectors that both `restage scan` and strict mode (the
//! refresh's refusal of an unruled personal column) use.
//!
//! ```text
//! names.rs       a column or JSON key name → category + confidence (weighed by the type)
//! word_lists.rs  the dictionary of personal words in seven languages, and the meta words
//! values.rs      sampled values → counts per detector (emails, phones, cards, IBANs, ids)
//! ```
//!
//! The cut: pii is pure (no database, no configuration) and depends only on the catalog's
//! type kinds. It says what a column looks like; what to do about it (findings with
//! evidence, proposed rules) is `scan`'s, and whether to refuse is `refresh`'s.

pub mod names;
pub mod values;
mod word_lists;

use serde::Serialize;

pub use names::{NameFinding, classify_name, personal_name};
pub use values::{DETECTORS, Detector};

/// True for PostgreSQL's `name` type (63 bytes of text), however the catalogue prints it:
/// some schemas keep people's names in it, so it is read and judged like text.
pub fn is_pg_name_type(type_name: &str) -> bool {
    matches!(type_name, "name" | "pg_catalog.name")
}

/// What kind of personal data a column (or JSON path) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    FirstName,
    LastName,
    FullName,
    Username,
    StreetAddress,
    City,
    Postcode,
    Country,
    Company,
    BirthDate,
    NationalId,
    Iban,
    CardNumber,
    IpAddress,
    DeviceId,
    Credential,
    Geolocation,
    /// A person's own web page, profile link or photo path (`website`, `photo_path`).
    Link,
    /// Free text about a person, which holds names no pattern finds (`bio`).
    AboutText,
}

impl Category {
    /// The identifier used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::FirstName => "first_name",
            Category::LastName => "last_name",
            Category::FullName => "full_name",
            Category::Username => "username",
            Category::StreetAddress => "street_address",
            Category::City => "city",
            Category::Postcode => "postcode",
            Category::Country => "country",
            Category::Company => "company",
            Category::BirthDate => "birth_date",
            Category::NationalId => "national_id",
            Category::Iban => "iban",
            Category::CardNumber => "card_number",
            Category::IpAddress => "ip_address",
            Category::DeviceId => "device_id",
            Category::Credential => "credential",
            Category::Geolocation => "geolocation",
            Category::Link => "link",
            Category::AboutText => "about_text",
        }
    }

    /// A short human label, as in "looks like an email address".
    pub fn label(self) -> &'static str {
        match self {
            Category::Email => "email address",
            Category::Phone => "phone number",
            Category::FirstName => "first name",
            Category::LastName => "last name",
            Category::FullName => "person's name",
            Category::Username => "username",
            Category::StreetAddress => "street address",
            Category::City => "city",
            Category::Postcode => "postcode",
            Category::Country => "country or nationality",
            Category::Company => "company or employer",
            Category::BirthDate => "birth date",
            Category::NationalId => "national id",
            Category::Iban => "bank account",
            Category::CardNumber => "card number",
            Category::IpAddress => "IP address",
            Category::DeviceId => "device identifier",
            Category::Credential => "credential",
            Category::Geolocation => "geolocation",
            Category::Link => "personal link or file path",
            Category::AboutText => "free text about a person",
        }
    }

    /// "an email address", "a phone number".
    pub fn with_article(self) -> String {
        let article = match self {
            Category::Email | Category::IpAddress => "an",
            _ => "a",
        };
        format!("{article} {}", self.label())
    }
}

/// How sure a finding is, by its number: high ≥ 0.75, medium ≥ 0.5, low ≥ 0.25. Below low,
/// nothing is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub const HIGH: f32 = 0.75;
    pub const MEDIUM: f32 = 0.5;
    pub const LOW: f32 = 0.25;

    /// The level of a confidence number, None below [`Level::LOW`].
    pub fn of(confidence: f32) -> Option<Level> {
        if confidence >= Level::HIGH {
            Some(Level::High)
        } else if confidence >= Level::MEDIUM {
            Some(Level::Medium)
        } else if confidence >= Level::LOW {
            Some(Level::Low)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}
