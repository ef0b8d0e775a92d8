//! What binding any transform shares: reading and checking parameters against the
//! transform's declaration in the [`registry`](super::registry) (with errors that name them),
//! the general parameters `locale` and `unique`, type fit, and the transform's identity (the
//! canonical form of name and parameters every seed is derived from).

use std::sync::Arc;

use serde_yaml::Value;

use super::key::Domain;
use super::locale::{self, Locale};
use super::registry::{self, DefaultValue, Need, ParamKind, TransformDef};
use super::unique::UniqueSet;
use super::{BindError, Catalogue, ColumnInfo, RuleSpec};
use crate::catalog::TypeKind;

/// Binding one spec to one column.
pub(crate) struct Binder<'a> {
    pub catalogue: &'a Catalogue,
    /// The definition of the transform the spec names.
    pub def: &'static TransformDef,
    pub spec: &'a RuleSpec,
    pub column: &'a ColumnInfo<'a>,
}

/// A transform's identity: its name and canonical parameters, as bytes. Everything a seed
/// depends on besides the secret and the value; two rules with the same identity give the
/// same output for the same input, wherever they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity(Vec<u8>);

impl Identity {
    /// `name` then `\n<param>=<value>` per parameter, in the order given (callers list them
    /// sorted). The encoding is part of the output contract: changing it changes every fake.
    pub fn new(name: &str, params: &[(&str, String)]) -> Identity {
        let mut bytes = name.as_bytes().to_vec();
        for (param, value) in params {
            bytes.push(b'\n');
            bytes.extend_from_slice(param.as_bytes());
            bytes.push(b'=');
            bytes.extend_from_slice(value.as_bytes());
        }
        Identity(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The keyed state a seeded transform needs: its domain, the domain of its retries under
/// `unique`, and the registry slot shared by every column bound with the same identity.
#[derive(Debug)]
pub(crate) struct Keyed {
    pub domain: Domain,
    pub retry: Domain,
    pub unique: Option<Arc<UniqueSet>>,
}

impl<'a> Binder<'a> {
    pub fn new(
        catalogue: &'a Catalogue,
        def: &'static TransformDef,
        spec: &'a RuleSpec,
        column: &'a ColumnInfo<'a>,
    ) -> Binder<'a> {
        Binder {
            catalogue,
            def,
            spec,
            column,
        }
    }

    pub fn name(&self) -> &'static str {
        self.def.name()
    }

    /// The transform's identity with `params` (see [`Identity::new`]).
    pub fn identity(&self, params: &[(&str, String)]) -> Identity {
        Identity::new(self.name(), params)
    }

    pub fn kind(&self) -> &TypeKind {
        &self.column.ty.kind
    }

    /// The character limit of the column (of each element for an array).
    pub fn max_len(&self) -> Option<usize> {
        self.column.ty.max_len
    }

    /// Refuses parameters the transform does not declare, besides the general ones. The error
    /// lists every accepted parameter.
    pub fn accept(&self) -> Result<(), BindError> {
        let own = self.def.params();
        let general = registry::GENERAL;
        for param in self.spec.params.keys() {
            // Checked below: a verification setting, not a parameter of the transform.
            if param == registry::MAY_MATCH_NOTHING {
                continue;
            }
            let declared = |p: &registry::ParamDef| p.name == param.as_str();
            if !own.iter().any(declared) && !general.iter().any(declared) {
                let mut expected: Vec<String> = own
                    .iter()
                    .chain(general.iter())
                    .map(|p| p.name.to_string())
                    .collect();
                expected.sort();
                return Err(BindError::UnknownParam {
                    transform: self.name().to_string(),
                    param: param.clone(),
                    expected,
                });
            }
        }
        if self.boolean(registry::MAY_MATCH_NOTHING)?.is_some()
            && !self.def.may_change_nothing_by_design()
        {
            let keeping: Vec<String> = registry::all()
                .iter()
                .filter(|d| d.may_change_nothing_by_design())
                .map(|d| format!("`{}`", d.name()))
                .collect();
            return Err(self.bad(
                registry::MAY_MATCH_NOTHING,
                format!(
                    "applies only to rules that keep part of a value or move it ({}) and to the rules of `json` paths; this rule replaces every value",
                    keeping.join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub fn bad(&self, param: &str, message: impl Into<String>) -> BindError {
        BindError::BadParam {
            transform: self.name().to_string(),
            param: param.to_string(),
            message: message.into(),
        }
    }

    pub fn missing(&self, param: &str) -> BindError {
        debug_assert!(
            self.def
                .param(param)
                .is_some_and(|p| p.need == Need::Required),
            "`{}` reports `{param}` missing but does not declare it required",
            self.name()
        );
        BindError::MissingParam {
            transform: self.name().to_string(),
            param: param.to_string(),
        }
    }

    /// TypeMismatch unless the column's kind (of each element, for an array) is one the
    /// transform's declaration fits.
    pub fn fit(&self) -> Result<(), BindError> {
        let fits = self.def.fits();
        if fits.kind(self.kind()) {
            Ok(())
        } else {
            Err(BindError::TypeMismatch {
                transform: self.name().to_string(),
                type_name: self.column.ty.name.clone(),
                accepts: fits.accepts.to_string(),
            })
        }
    }

    /// The declared kind of one of the transform's own parameters. A parameter read without
    /// being declared is a mistake of the transform's code, reported as an invalid rule rather
    /// than a panic (the registry's tests bind every transform, so it does not ship).
    fn declared(&self, param: &str) -> Result<&'static registry::ParamDef, BindError> {
        self.def.param(param).ok_or_else(|| {
            BindError::Invalid(format!(
                "`{}` reads parameter `{param}` it does not declare",
                self.name()
            ))
        })
    }

    pub fn get(&self, param: &str) -> Option<&'a Value> {
        self.spec.params.get(param)
    }

    /// A parameter that must be a string.
    pub fn string(&self, param: &str) -> Result<Option<String>, BindError> {
        match self.get(param) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(param, "must be a string")),
        }
    }

    /// A parameter that is a scalar, as text (`value: 0` is the text `0`).
    pub fn scalar(&self, param: &str) -> Result<Option<String>, BindError> {
        match self.get(param) {
            None => Ok(None),
            Some(v) => scalar_text(v)
                .map(Some)
                .ok_or_else(|| self.bad(param, "must be a string, a number or a boolean")),
        }
    }

    /// A whole number in the declared range; the declared default (or None) when left out.
    pub fn whole(&self, param: &str) -> Result<Option<u64>, BindError> {
        let def = self.declared(param)?;
        let ParamKind::Whole { min, max } = def.kind else {
            return Err(self.bad(param, "is not declared as a whole number"));
        };
        let Some(value) = self.get(param) else {
            return Ok(match def.need {
                Need::Default(DefaultValue::Whole(n)) => Some(n),
                _ => None,
            });
        };
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.bad(
                param,
                format!(
                    "must be a whole number from {min} to {max} (got {})",
                    show(value)
                ),
            )),
        }
    }

    /// A whole number of a parameter that declares its default: the value given, or the
    /// default.
    pub fn whole_or_default(&self, param: &str) -> Result<u64, BindError> {
        self.whole(param)?.ok_or_else(|| {
            BindError::Invalid(format!(
                "`{}` reads parameter `{param}` as having a default it does not declare",
                self.name()
            ))
        })
    }

    /// A number in `(0, max]`, `max` as declared.
    pub fn positive(&self, param: &str) -> Result<Option<f64>, BindError> {
        let ParamKind::Positive { max } = self.declared(param)?.kind else {
            return Err(self.bad(param, "is not declared as a positive number"));
        };
        let Some(value) = self.get(param) else {
            return Ok(None);
        };
        match value.as_f64() {
            Some(n) if n > 0.0 && n <= max => Ok(Some(n)),
            _ => Err(self.bad(
                param,
                format!(
                    "must be a number above 0 and at most {max} (got {})",
                    show(value)
                ),
            )),
        }
    }

    /// A single character; the declared default when left out.
    pub fn character(&self, param: &str) -> Result<char, BindError> {
        let def = self.declared(param)?;
        match self.scalar(param)? {
            None => match def.need {
                Need::Default(DefaultValue::Char(c)) => Ok(c),
                _ => Err(self.missing(param)),
            },
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(self.bad(param, format!("must be a single character (got `{s}`)"))),
                }
            }
        }
    }

    pub fn boolean(&self, param: &str) -> Result<Option<bool>, BindError> {
        match self.get(param) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.bad(param, format!("must be true or false (got {})", show(v)))),
        }
    }

    /// The rule's `locale`, or the catalogue's default.
    pub fn locale(&self) -> Result<Locale, BindError> {
        match self.get("locale") {
            Some(Value::String(name)) => {
                Locale::parse(name).ok_or_else(|| self.bad("locale", locale::unsupported(name)))
            }
            Some(v) => Err(self.bad("locale", format!("must be a locale name (got {})", show(v)))),
            None => {
                let name = self.catalogue.default_locale();
                Locale::parse(name).ok_or_else(|| {
                    self.bad(
                        "locale",
                        format!(
                            "{} (the default, from the config's `locale`)",
                            locale::unsupported(name)
                        ),
                    )
                })
            }
        }
    }

    /// Checks the general parameters for a transform whose output does not depend on the
    /// locale: a bad `locale` is still an error.
    pub fn check_locale(&self) -> Result<(), BindError> {
        if self.get("locale").is_some() {
            self.locale()?;
        }
        Ok(())
    }

    pub fn unique(&self) -> Result<bool, BindError> {
        Ok(self.boolean("unique")?.unwrap_or(false))
    }

    /// For transforms that cannot promise distinct outputs: `unique: true` is an error saying
    /// why.
    pub fn refuse_unique(&self, why: &str) -> Result<(), BindError> {
        if self.unique()? {
            Err(self.bad(
                "unique",
                format!("cannot be true for `{}`: {why}", self.name()),
            ))
        } else {
            Ok(())
        }
    }

    /// The keyed state for `identity`. `unique_capable` transforms get the registry slot for
    /// their identity (and turn it on when this rule says `unique: true`); others must have
    /// refused `unique` already.
    pub fn keyed(&self, identity: &Identity, unique_capable: bool) -> Result<Keyed, BindError> {
        let key = &self.catalogue.key;
        let mut retry_identity = identity.as_bytes().to_vec();
        retry_identity.extend_from_slice(b"\nunique-retry");
        let unique = if unique_capable {
            // One slot per identity, whatever the columns' length limits: the set holds final
            // outputs, so a value cut short in a varchar(20) and the same value whole in a text
            // column are simply two strings the same input holds; and users.email (varchar) and
            // orders.email (text) then resolve clashes the same way.
            let slot = self.catalogue.unique_outputs.slot(identity.as_bytes());
            if self.unique()? {
                slot.activate();
            }
            Some(slot)
        } else {
            None
        };
        Ok(Keyed {
            domain: key.domain(identity.as_bytes()),
            retry: key.domain(&retry_identity),
            unique,
        })
    }
}

/// A YAML scalar as text; None for null, sequences and mappings.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

/// A YAML value, shortly, for error messages about the rule (never about data).
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => show(&t.value),
    }
}
