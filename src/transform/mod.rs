//! The transform catalogue: what a rule does to a column's values.
//!
//! Every transform is declared once in [`registry`]: its name, parameters, the column types
//! it fits, the properties other stages ask about, and its constructor. This file holds what
//! the transforms share: the instance trait, the rule spec as written, the binding errors,
//! and the [`Catalogue`] that binds a rule to a column for one run. Each family of transforms
//! lives in its own file, and [`params`] holds what binding them shares.
//!
//! A transform has three lives, as in Greenmask: a *definition* ([`registry::TransformDef`],
//! static data), a *binding* to one column ([`Catalogue::bind`]: checks parameters and the
//! column's type once, precomputes everything), and an *instance* called per value
//! ([`Transform::apply`]).
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
pub mod registry;
mod seeded;
mod text;
pub mod unique;
mod uuid;

#[cfg(test)]
mod name_guard;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::catalog::ColumnType;
use crate::secret::Secret;

pub use basic::{Keep, SetNull};
pub use locale::{LOCALES, Locale};
pub use registry::TransformDef;
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

/// A transform bound to one column: the instance its definition's constructor made.
///
/// The scheduler may call it from any rayon thread, on any value, in any order, as often as it
/// likes: an instance holds no per-row state, and its output depends on the secret, the bound
/// rule and the value alone (see the [`registry`] for the one shared state, `unique: true`).
pub trait Transform: Send + Sync + fmt::Debug {
    /// Writes the replacement of `value` into `out` (empty on entry).
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError>;

    /// What a NULL becomes. NULL stays NULL, except for transforms that say otherwise
    /// (`constant`).
    fn apply_null(&self, _out: &mut String) -> Result<Output, TransformError> {
        Ok(Output::Null)
    }

    /// [`Transform::apply`], telling `observe` about the values the rules *inside* the value
    /// met (a `json` rule's paths): what verification's identity check counts per path (see
    /// `refresh::verify`). Transforms without inner rules just apply.
    fn apply_observed(
        &self,
        value: &str,
        out: &mut String,
        _observe: &mut dyn Observe,
    ) -> Result<Output, TransformError> {
        self.apply(value, out)
    }
}

/// What a rule inside a value (a `json` rule's path) did, for verification.
pub trait Observe {
    /// The inner rule at `slot` (its index in the rule's `paths`, as written) met the value
    /// `input` (None for a JSON `null`) and wrote `output` (None for NULL).
    fn inner(&mut self, slot: usize, input: Option<&str>, output: Option<&str>);
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
/// instances of one run (the registry of outputs behind `unique: true`).
#[derive(Debug)]
pub struct Catalogue {
    key: Arc<key::Key>,
    default_locale: String,
    unique_outputs: Arc<unique::Registry>,
}

/// A rule bound to one column: the transform's definition and the instance to call per value.
#[derive(Debug, Clone)]
pub struct BoundRule {
    pub def: &'static TransformDef,
    pub instance: Arc<dyn Transform>,
}

impl Catalogue {
    /// A catalogue for one run. `default_locale` is used by rules without `locale`; an
    /// unsupported one is reported when a rule that needs it is bound (see
    /// [`Catalogue::check_locale`] to validate it up front).
    pub fn new(secret: &Secret, default_locale: &str) -> Catalogue {
        Catalogue {
            key: Arc::new(key::Key::new(secret.expose().as_bytes())),
            default_locale: default_locale.to_string(),
            unique_outputs: Arc::new(unique::Registry::default()),
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
        self.unique_outputs.stats()
    }

    /// Binds `spec` to a column: checks the transform exists, its parameters, and that it fits
    /// the column's type; returns the instance to call per value.
    pub fn bind(
        &self,
        spec: &RuleSpec,
        column: &ColumnInfo<'_>,
    ) -> Result<Arc<dyn Transform>, BindError> {
        self.bind_rule(spec, column).map(|bound| bound.instance)
    }

    /// [`Catalogue::bind`], with the definition of the transform the rule names.
    pub fn bind_rule(
        &self,
        spec: &RuleSpec,
        column: &ColumnInfo<'_>,
    ) -> Result<BoundRule, BindError> {
        let def =
            registry::get(&spec.transform).ok_or_else(|| registry::unknown(&spec.transform))?;
        let b = Binder::new(self, def, spec, column);
        let scalar = (def.constructor())(&b)?;
        // After the constructor, so a wrong parameter is reported first, as before.
        if def.nulls() == registry::Nulls::Always && column.not_null {
            return Err(BindError::Invalid(format!(
                "`{}` makes every value NULL, and the column is NOT NULL (by its own constraint or its type {}): the load would fail; use `constant` or another transform",
                def.name(),
                column.ty.name
            )));
        }
        // Whole-value transforms never look inside an array, nor at `char(n)` padding.
        if !def.elementwise() {
            return Ok(BoundRule {
                def,
                instance: scalar,
            });
        }
        let scalar = if text::is_blank_padded(column.ty) {
            Arc::new(text::TrimPadding::new(scalar)) as Arc<dyn Transform>
        } else {
            scalar
        };
        let instance = if column.ty.array {
            Arc::new(array::ElementWise::new(scalar))
        } else {
            scalar
        };
        Ok(BoundRule { def, instance })
    }
}
