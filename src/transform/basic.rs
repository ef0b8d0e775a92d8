//! The transforms that do not fake anything: `keep`, `set_null`, `constant`, and `choice`
//! (one of the values the rule lists, picked by the value's seed).

use std::sync::Arc;

use serde_yaml::Value;

use super::params::{Binder, scalar_text, show};
use super::seeded::{Draw, Generate, Seeded};
use super::text::check_literal;
use super::{BindError, Output, Transform, TransformError, array};

/// `keep`: the value is copied as is (and never decoded).
#[derive(Debug)]
pub struct Keep;

impl Transform for Keep {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        out.push_str(value);
        Ok(Output::Value)
    }

    fn apply_null(&self, _out: &mut String) -> Result<Output, TransformError> {
        Ok(Output::Null)
    }
}

/// `set_null`: every value becomes NULL.
#[derive(Debug)]
pub struct SetNull;

impl Transform for SetNull {
    fn apply(&self, _value: &str, _out: &mut String) -> Result<Output, TransformError> {
        Ok(Output::Null)
    }
}

/// `keep` takes only the general parameters; `unique` is trivially kept (distinct inputs stay
/// distinct).
pub(crate) fn bind_keep(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.unique()?;
    Ok(Arc::new(Keep))
}

/// `set_null` fits any column that accepts NULL (binding refuses it on a NOT NULL one, by its
/// declared [`Nulls::Always`](super::registry::Nulls)); `unique` holds (NULLs never clash in
/// a unique index, unless it says NULLS NOT DISTINCT, which refresh/constraints.rs checks).
pub(crate) fn bind_set_null(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.unique()?;
    Ok(Arc::new(SetNull))
}

/// `constant`: every value, NULL included, becomes `value`.
#[derive(Debug)]
pub struct Constant {
    value: String,
}

impl Transform for Constant {
    fn apply(&self, _value: &str, out: &mut String) -> Result<Output, TransformError> {
        out.push_str(&self.value);
        Ok(Output::Value)
    }

    fn apply_null(&self, out: &mut String) -> Result<Output, TransformError> {
        out.push_str(&self.value);
        Ok(Output::Value)
    }
}

pub(crate) fn bind_constant(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.refuse_unique("every row gets the same value")?;
    let value = match b.get("value") {
        None => return Err(b.missing("value")),
        Some(Value::Null) => {
            return Err(b.bad("value", "is null; use `set_null` to make values NULL"));
        }
        Some(_) => b.scalar("value")?.unwrap_or_default(),
    };
    check_column_literal(b, "value", &value)?;
    Ok(Arc::new(Constant { value }))
}

/// Checks a literal for the whole column: an array literal with valid elements for an array
/// column, a valid scalar otherwise.
fn check_column_literal(b: &Binder<'_>, param: &str, value: &str) -> Result<(), BindError> {
    if b.column.ty.array {
        let elements = array::elements(value).map_err(|_| {
            b.bad(
                param,
                format!(
                    "`{value}` is not an array literal (the column is {}; write e.g. `{{a,b}}`)",
                    b.column.ty.name
                ),
            )
        })?;
        for element in elements.iter().flatten() {
            check_literal(b.column.ty, element).map_err(|m| b.bad(param, m))?;
        }
        Ok(())
    } else {
        check_literal(b.column.ty, value).map_err(|m| b.bad(param, m))
    }
}

/// `choice`: one of the listed values, picked by the value's seed (so the same input always
/// gets the same choice).
#[derive(Debug)]
struct Choice {
    values: Vec<String>,
}

impl Generate for Choice {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        out.push_str(draw.pick(&self.values).as_str());
        Ok(())
    }
}

pub(crate) fn bind_choice(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.refuse_unique("it has only as many outputs as listed values")?;
    // Read by verification, not by the transform: checked to be a boolean here.
    b.boolean(super::registry::ALLOW_OWN_VALUES)?;
    let values = match b.get("values") {
        None => return Err(b.missing("values")),
        Some(Value::Sequence(items)) if items.is_empty() => {
            return Err(b.bad("values", "is an empty list; list at least one value"));
        }
        Some(Value::Sequence(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let text = scalar_text(item).ok_or_else(|| {
                    b.bad(
                        "values",
                        format!(
                            "must list strings, numbers or booleans (found {})",
                            show(item)
                        ),
                    )
                })?;
                check_literal(b.column.ty, &text).map_err(|m| b.bad("values", m))?;
                values.push(text);
            }
            values
        }
        Some(other) => {
            return Err(b.bad(
                "values",
                format!("must be a list of values (got {})", show(other)),
            ));
        }
    };
    // The list in order is the identity: reordering it is another rule.
    let listed = serde_json::to_string(&values).unwrap_or_default();
    let identity = b.identity(&[("values", listed)]);
    let keyed = b.keyed(&identity, false)?;
    Ok(Seeded::arc(Choice { values }, keyed, None))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{apply, bind_err, bind_on, catalogue, col, text_col};
    use super::*;
    use crate::catalog::{ColumnType, TypeKind};
    use crate::transform::RuleSpec;

    #[test]
    fn keep_and_set_null() {
        let cat = catalogue("s");
        let t = cat
            .bind_rule(&RuleSpec::named("keep"), &text_col())
            .unwrap();
        assert!(t.def.passes_through());
        assert_eq!(apply(&*t.instance, "x"), Some("x".to_string()));
        let t = cat.bind(&RuleSpec::named("set_null"), &text_col()).unwrap();
        assert_eq!(apply(&*t, "x"), None);
        let kept = cat
            .bind_rule(&RuleSpec::named("keep").with("unique", true), &text_col())
            .unwrap();
        assert!(kept.def.passes_through());
    }

    #[test]
    fn set_null_refuses_not_null() {
        let ty = ColumnType::simple("text", TypeKind::Text);
        let err = bind_on(&RuleSpec::named("set_null"), &ty, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`set_null` makes every value NULL, and the column is NOT NULL (by its own constraint or its type text): the load would fail; use `constant` or another transform"
        );
    }

    #[test]
    fn constant_fills_nulls_too_and_fits_any_type() {
        let cat = catalogue("s");
        let spec = RuleSpec::named("constant").with("value", "disabled");
        let t = cat.bind(&spec, &text_col()).unwrap();
        assert_eq!(apply(&*t, "secret"), Some("disabled".to_string()));
        let mut out = String::new();
        assert_eq!(t.apply_null(&mut out).unwrap(), Output::Value);
        assert_eq!(out, "disabled");

        let int = ColumnType::simple("integer", TypeKind::Int);
        let t = bind_on(&RuleSpec::named("constant").with("value", 0), &int, true).unwrap();
        assert_eq!(apply(&*t, "42"), Some("0".to_string()));

        let mut arr = ColumnType::simple("text[]", TypeKind::Text);
        arr.array = true;
        let t = bind_on(
            &RuleSpec::named("constant").with("value", "{a,b}"),
            &arr,
            false,
        )
        .unwrap();
        assert_eq!(apply(&*t, "{x}"), Some("{a,b}".to_string()));
    }

    #[test]
    fn constant_errors() {
        assert_eq!(
            bind_err(&RuleSpec::named("constant"), &text_col()),
            "`constant` needs parameter `value`"
        );
        assert_eq!(
            bind_err(
                &RuleSpec::named("constant").with("value", serde_yaml::Value::Null),
                &text_col()
            ),
            "`constant`: parameter `value` is null; use `set_null` to make values NULL"
        );
        assert_eq!(
            bind_err(
                &RuleSpec::named("constant")
                    .with("value", "x")
                    .with("unique", true),
                &text_col()
            ),
            "`constant`: parameter `unique` cannot be true for `constant`: every row gets the same value"
        );
        let int = ColumnType::simple("integer", TypeKind::Int);
        assert_eq!(
            bind_err(
                &RuleSpec::named("constant").with("value", "none"),
                &col(&int)
            ),
            "`constant`: parameter `value` `none` is not a valid integer value"
        );
        let mut arr = ColumnType::simple("text[]", TypeKind::Text);
        arr.array = true;
        assert_eq!(
            bind_err(&RuleSpec::named("constant").with("value", "a"), &col(&arr)),
            "`constant`: parameter `value` `a` is not an array literal (the column is text[]; write e.g. `{a,b}`)"
        );
        assert_eq!(
            bind_err(
                &RuleSpec::named("constant")
                    .with("value", "x")
                    .with("other", 1),
                &text_col()
            ),
            "`constant` takes no parameter `other` (it takes: locale, unique, value)"
        );
    }

    #[test]
    fn choice_is_deterministic_and_checks_enum_labels() {
        let cat = catalogue("s");
        let spec: RuleSpec = serde_yaml::from_str::<serde_yaml::Value>(
            "{ transform: choice, values: [red, green, blue] }",
        )
        .map(|v| RuleSpec::from_value(&v).unwrap())
        .unwrap();
        let t = cat.bind(&spec, &text_col()).unwrap();
        let a = apply(&*t, "alice").unwrap();
        assert!(["red", "green", "blue"].contains(&a.as_str()));
        assert_eq!(apply(&*t, "alice").unwrap(), a);
        assert_eq!(apply(&*t, ""), Some(String::new()));
        assert_eq!(apply_null_of(&*t), None);

        let mut mood = ColumnType::simple("public.mood", TypeKind::Enum);
        mood.enum_labels = vec!["sad".into(), "ok".into(), "happy".into()];
        assert_eq!(
            bind_err(&spec, &col(&mood)),
            "`choice`: parameter `values` `red` is not a label of enum public.mood (labels: sad, ok, happy)"
        );
        let ok = RuleSpec::named("choice").with(
            "values",
            serde_yaml::Value::Sequence(vec!["ok".into(), "happy".into()]),
        );
        assert!(bind_on(&ok, &mood, true).is_ok());
    }

    #[test]
    fn choice_errors() {
        assert_eq!(
            bind_err(&RuleSpec::named("choice"), &text_col()),
            "`choice` needs parameter `values`"
        );
        assert_eq!(
            bind_err(
                &RuleSpec::named("choice").with("values", serde_yaml::Value::Sequence(vec![])),
                &text_col()
            ),
            "`choice`: parameter `values` is an empty list; list at least one value"
        );
        assert_eq!(
            bind_err(&RuleSpec::named("choice").with("values", "a"), &text_col()),
            "`choice`: parameter `values` must be a list of values (got `a`)"
        );
        assert_eq!(
            bind_err(
                &RuleSpec::named("choice")
                    .with("values", serde_yaml::Value::Sequence(vec!["a".into()]))
                    .with("unique", true),
                &text_col()
            ),
            "`choice`: parameter `unique` cannot be true for `choice`: it has only as many outputs as listed values"
        );
    }

    fn apply_null_of(t: &dyn Transform) -> Option<String> {
        let mut out = String::new();
        match t.apply_null(&mut out).unwrap() {
            Output::Value => Some(out),
            Output::Null => None,
        }
    }
}
