//! The transform catalogue: what a rule does to a column's values.
//!
//! A transform has three lives, as in Greenmask: a *definition* (name and parameters, parsed
//! from the rules file into a [`RuleSpec`]), a *binding* to one column ([`Catalogue::bind`]:
//! checks parameters and the column's type once, precomputes everything), and an *instance*
//! called per value ([`Transform::apply`]).
//!
//! The scheduler may call an instance from any rayon thread, on any value, in any order:
//! instances hold no per-row state. Values arrive and leave in PostgreSQL's text form (what
//! `COPY ... TO STDOUT` prints for the column, after COPY's own escaping is undone).
//!
//! Determinism: every output is a function of (secret, transform name, its parameters, input
//! value). All randomness comes from [`key`], which derives a seed from those with
//! HMAC-SHA256; nothing reads the clock or the OS random source. The one exception is
//! documented in [`unique`]: when two inputs of a `unique: true` rule would get the same
//! output, which one keeps it depends on which the run saw first.
//!
//! This file holds the trait, the rule spec, the errors and the dispatch by name; each family
//! of transforms lives in its own file, and [`params`] holds what binding them shares.

pub mod array;
mod basic;
mod date;
mod fake_text;
mod finance;
mod hash;
mod internet;
pub mod json;
pub mod key;
pub mod locale;
mod locale_es;
mod mask;
mod network;
mod number;
mod params;
mod regex_replace;
mod seeded;
mod text;
pub mod unique;
mod uuid;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::catalog::{ColumnType, TypeKind};
use crate::secret::Secret;

pub use basic::{Keep, SetNull};
pub use finance::{iban_is_valid, luhn_is_valid};
pub use locale::{LOCALES, Locale};
pub use unique::UniqueStats;

use params::Binder;

/// What an instance produced for one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `out` holds the new value.
    Value,
    /// The value becomes NULL (`out` is ignored).
    Null,
}

/// A failure on one value. It never carries the value itself (that would put personal data in
/// an error message); the pipeline adds the table and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

impl TransformError {
    pub(crate) fn new(message: impl Into<String>) -> TransformError {
        TransformError(message.into())
    }
}

/// A transform bound to one column.
pub trait Transform: Send + Sync + fmt::Debug {
    /// Writes the replacement of `value` into `out` (empty on entry).
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError>;

    /// What a NULL becomes. NULL stays NULL, except for transforms that say otherwise
    /// (`constant`).
    fn apply_null(&self, _out: &mut String) -> Result<Output, TransformError> {
        Ok(Output::Null)
    }

    /// True for `keep`: the pipeline then does not decode the column at all.
    fn is_keep(&self) -> bool {
        false
    }
}

/// A rule as written: the transform's name and its parameters (including the general ones,
/// `unique` and `locale`). `email` and `{ transform: email }` give the same spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub transform: String,
    pub params: BTreeMap<String, serde_yaml::Value>,
}

impl RuleSpec {
    pub fn named(transform: &str) -> RuleSpec {
        RuleSpec {
            transform: transform.to_string(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter (for building specs in code and tests).
    pub fn with(mut self, param: &str, value: impl Into<serde_yaml::Value>) -> RuleSpec {
        self.params.insert(param.to_string(), value.into());
        self
    }

    /// Reads a spec from YAML: a string (the transform's name) or a mapping with `transform`.
    pub fn from_value(value: &serde_yaml::Value) -> Result<RuleSpec, BindError> {
        use serde_yaml::Value;
        match value {
            Value::String(name) => Ok(RuleSpec::named(name)),
            Value::Mapping(map) => {
                let mut transform = None;
                let mut params = BTreeMap::new();
                for (k, v) in map {
                    let Some(k) = k.as_str() else {
                        return Err(BindError::Invalid("parameter names must be strings".into()));
                    };
                    if k == "transform" {
                        match v.as_str() {
                            Some(name) => transform = Some(name.to_string()),
                            None => {
                                return Err(BindError::BadParam {
                                    transform: "?".into(),
                                    param: "transform".into(),
                                    message: "must be the transform's name".into(),
                                });
                            }
                        }
                    } else {
                        params.insert(k.to_string(), v.clone());
                    }
                }
                match transform {
                    Some(transform) => Ok(RuleSpec { transform, params }),
                    None => Err(BindError::Invalid(
                        "a rule needs `transform: <name>` (or just the name as a string)".into(),
                    )),
                }
            }
            Value::Null => Err(BindError::Invalid(
                "empty rule; use `keep` to copy a column as is".into(),
            )),
            _ => Err(BindError::Invalid(
                "a rule is a transform name or a mapping with `transform`".into(),
            )),
        }
    }
}

/// Why a rule cannot be bound to its column. Variants name the parameter at fault so the rules
/// loader can point at its line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BindError {
    #[error("unknown transform `{name}`{}", suggestion.as_ref().map(|s| format!(", did you mean `{s}`?")).unwrap_or_default())]
    UnknownTransform {
        name: String,
        suggestion: Option<String>,
    },
    #[error("`{transform}` takes no parameter `{param}`{}", expected_list(.expected))]
    UnknownParam {
        transform: String,
        param: String,
        expected: Vec<String>,
    },
    #[error("`{transform}` needs parameter `{param}`")]
    MissingParam { transform: String, param: String },
    #[error("`{transform}`: parameter `{param}` {message}")]
    BadParam {
        transform: String,
        param: String,
        message: String,
    },
    #[error("`{transform}` does not fit column type {type_name} (it takes {accepts})")]
    TypeMismatch {
        transform: String,
        type_name: String,
        accepts: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn expected_list(expected: &[String]) -> String {
    if expected.is_empty() {
        " (it takes no parameters)".to_string()
    } else {
        format!(" (it takes: {})", expected.join(", "))
    }
}

impl BindError {
    /// The parameter the error is about, for locating it in the file.
    pub fn param(&self) -> Option<&str> {
        match self {
            BindError::UnknownParam { param, .. }
            | BindError::MissingParam { param, .. }
            | BindError::BadParam { param, .. } => Some(param),
            _ => None,
        }
    }
}

/// The column a rule is bound to: its type, and whether it may hold NULL.
#[derive(Debug, Clone)]
pub struct ColumnInfo<'a> {
    pub ty: &'a ColumnType,
    pub not_null: bool,
}

/// Binds rules to columns for one run: holds the key and the state shared between the
/// instances of one run (the registry behind `unique: true`).
#[derive(Debug)]
pub struct Catalogue {
    key: Arc<key::Key>,
    default_locale: String,
    registry: Arc<unique::Registry>,
}

/// Every transform name, for did-you-mean and documentation checks.
pub const NAMES: &[&str] = &[
    "keep",
    "set_null",
    "constant",
    "hash",
    "first_name",
    "last_name",
    "name",
    "email",
    "username",
    "phone",
    "street_address",
    "city",
    "postcode",
    "country",
    "company",
    "iban",
    "credit_card",
    "ipv4",
    "ipv6",
    "uuid",
    "lorem",
    "choice",
    "mask",
    "date_shift",
    "noise",
    "regex_replace",
    "json",
];

impl Catalogue {
    /// A catalogue for one run. `default_locale` is used by rules without `locale`; an
    /// unsupported one is reported when a rule that needs it is bound (see
    /// [`Catalogue::check_locale`] to validate it up front).
    pub fn new(secret: &Secret, default_locale: &str) -> Catalogue {
        Catalogue {
            key: Arc::new(key::Key::new(secret.expose().as_bytes())),
            default_locale: default_locale.to_string(),
            registry: Arc::new(unique::Registry::default()),
        }
    }

    pub fn default_locale(&self) -> &str {
        &self.default_locale
    }

    /// Checks a locale name (for validating the config's `locale:`); the error lists the
    /// supported ones.
    pub fn check_locale(name: &str) -> Result<Locale, String> {
        Locale::parse(name).ok_or_else(|| locale::unsupported_message(name))
    }

    /// How much the `unique: true` registry holds so far (for the report).
    pub fn unique_stats(&self) -> UniqueStats {
        self.registry.stats()
    }

    /// Binds `spec` to a column: checks the transform exists, its parameters, and that it fits
    /// the column's type; returns the instance to call per value.
    pub fn bind(
        &self,
        spec: &RuleSpec,
        column: &ColumnInfo<'_>,
    ) -> Result<Arc<dyn Transform>, BindError> {
        let b = Binder::new(self, spec, column);
        // Whole-value transforms: they never look inside an array, so they are not wrapped.
        match spec.transform.as_str() {
            "keep" => return basic::bind_keep(&b),
            "set_null" => return basic::bind_set_null(&b),
            "constant" => return basic::bind_constant(&b),
            _ => {}
        }
        let scalar: Arc<dyn Transform> = match spec.transform.as_str() {
            "hash" => hash::bind(&b)?,
            "first_name" | "last_name" | "name" | "phone" | "street_address" | "city"
            | "postcode" | "country" | "company" | "lorem" => fake_text::bind(&b)?,
            "email" | "username" => internet::bind(&b)?,
            "iban" | "credit_card" => finance::bind(&b)?,
            "ipv4" | "ipv6" => network::bind(&b)?,
            "uuid" => uuid::bind(&b)?,
            "choice" => basic::bind_choice(&b)?,
            "mask" => mask::bind(&b)?,
            "date_shift" => date::bind(&b)?,
            "noise" => number::bind(&b)?,
            "regex_replace" => regex_replace::bind(&b)?,
            "json" => json::bind(&b)?,
            other => {
                return Err(BindError::UnknownTransform {
                    name: other.to_string(),
                    suggestion: crate::yaml::did_you_mean(other, NAMES).map(str::to_string),
                });
            }
        };
        let scalar = if text::is_blank_padded(column.ty) {
            Arc::new(text::TrimPadding::new(scalar)) as Arc<dyn Transform>
        } else {
            scalar
        };
        Ok(if column.ty.array {
            Arc::new(array::ElementWise::new(scalar))
        } else {
            scalar
        })
    }
}

/// True when the type holds text the text-like transforms can produce.
pub fn is_text_like(kind: &TypeKind) -> bool {
    matches!(kind, TypeKind::Text)
}
