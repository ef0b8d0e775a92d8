//! `json{paths}`: rules applied inside `json` and `jsonb` documents, by path.
//!
//! `paths` maps a path to a rule (any rule, shorthand or mapping, `json` included). Paths are
//! a JSONPath subset: `$` (the whole document), `.key` or `."key"` or `["key"]` (a member),
//! `[n]` (an array element), `[*]` or `.*` (every element or member). As in PostgreSQL's lax
//! mode, a member step on an array applies to each of its elements, so `$.addresses.street`
//! reaches the street of every address. Paths that match nothing do nothing.
//!
//! A matched string is transformed as text and stays a string. A number or boolean is given
//! to the rule as its JSON text and stays a number or boolean when the output reads as one
//! (`noise` on a number), a string otherwise (`hash` on a number). An object or array is given
//! as JSON text and replaced by the output when it is an object or array, a string otherwise.
//! A `null` goes through the rule's NULL handling (`constant` fills it, others keep it).
//!
//! Documents are read with a parser of our own that keeps numbers exactly as written (serde
//! would round numbers beyond f64 in the fields no rule touches) and key order and duplicate
//! keys (`json` keeps them). Output is compact. Where no value is both the end of one path
//! and on the way of another (nearly always), the rules are applied while the document is read
//! once ([`splice`]), without building its tree.
//!
//! The folder holds one concern per file: [`value`] (the document model and its parser),
//! [`write`] (compact output), [`path`] (the path language and how a path reaches values),
//! [`splice`] (the rules applied in one reading),
//! [`sql`] (the same paths in PostgreSQL's SQL/JSON path language, for the leak check); this
//! file binds the rule and applies it.

mod path;
mod splice;
mod sql;
mod value;
mod write;

use std::sync::Arc;

use serde_yaml::Value;

use super::params::{Binder, show};
use super::registry;
use super::{BindError, ColumnInfo, Observe, Output, RuleSpec, Transform, TransformError};
use path::{Step, parse_path, visit};

pub use sql::sql_paths;
pub use value::{Json, parse};
pub use write::write_json;

#[derive(Debug)]
struct PathRule {
    /// Its index in `paths` as written (what [`super::Observe::inner`] reports).
    slot: usize,
    steps: Vec<Step>,
    transform: Arc<dyn Transform>,
}

#[derive(Debug)]
struct JsonPaths {
    rules: Vec<PathRule>,
    /// The paths can be applied in one reading of the document ([`splice::splices`]);
    /// otherwise the document is parsed into a tree and the rules applied one by one.
    splice: bool,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let outer_locale = b.get("locale").cloned();
    b.check_locale()?;
    b.refuse_unique("it applies to the rules inside `paths`; write `unique: true` there")?;
    b.fit()?;
    let map = match b.get("paths") {
        None => return Err(b.missing("paths")),
        Some(Value::Mapping(map)) if map.is_empty() => {
            return Err(b.bad("paths", "is empty; map at least one path to a rule"));
        }
        Some(Value::Mapping(map)) => map,
        Some(other) => {
            return Err(b.bad(
                "paths",
                format!(
                    "must map paths to rules, e.g. {{ \"$.email\": email }} (got {})",
                    show(other)
                ),
            ));
        }
    };
    let mut rules = Vec::with_capacity(map.len());
    for (slot, (path, rule)) in map.iter().enumerate() {
        let Some(path) = path.as_str() else {
            return Err(b.bad(
                "paths",
                format!("has a path that is not a string: {}", show(path)),
            ));
        };
        let steps = parse_path(path).map_err(|m| b.bad("paths", format!("`{path}` {m}")))?;
        let at = |e: BindError| b.bad("paths", format!("at `{path}`: {e}"));
        let mut spec = RuleSpec::from_value(rule).map_err(at)?;
        // Said of the path (it may reach no document), for verification: any rule takes it.
        match spec.params.remove(registry::MAY_MATCH_NOTHING) {
            None | Some(Value::Bool(_)) => {}
            Some(other) => {
                return Err(at(BindError::BadParam {
                    transform: spec.transform.clone(),
                    param: registry::MAY_MATCH_NOTHING.to_string(),
                    message: format!("must be true or false (got {})", show(&other)),
                }));
            }
        }
        // Rules inside inherit the document rule's locale unless they name one.
        if let Some(locale) = &outer_locale {
            spec.params
                .entry("locale".to_string())
                .or_insert_with(|| locale.clone());
        }
        // JSON values are untyped: each transform is bound as on the column type its
        // declaration gives for values inside a document (`date_shift` reads ISO dates and
        // timestamps alike).
        let def =
            registry::get(&spec.transform).ok_or_else(|| at(registry::unknown(&spec.transform)))?;
        let ty = def.json_value_type();
        let column = ColumnInfo {
            ty: &ty,
            not_null: false,
        };
        let bound = b.catalogue.bind_rule(&spec, &column).map_err(at)?;
        if !bound.def.passes_through() {
            rules.push(PathRule {
                slot,
                steps,
                transform: bound.instance,
            });
        }
    }
    let splice = splice::splices(&rules);
    Ok(Arc::new(JsonPaths { rules, splice }))
}

impl Transform for JsonPaths {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        self.apply_observed(value, out, &mut ())
    }

    fn apply_observed(
        &self,
        value: &str,
        out: &mut String,
        observe: &mut dyn Observe,
    ) -> Result<Output, TransformError> {
        if self.splice {
            splice::apply(&self.rules, value, out, observe)?;
            return Ok(Output::Value);
        }
        let mut doc = parse(value)?;
        for rule in &self.rules {
            visit(&mut doc, &rule.steps, &mut |node| {
                transform_node(node, &*rule.transform, rule.slot, observe)
            })?;
        }
        write_json(&doc, out);
        Ok(Output::Value)
    }
}

/// Nobody observes.
impl Observe for () {
    fn inner(&mut self, _: usize, _: Option<&str>, _: Option<&str>) {}
}

fn transform_node(
    node: &mut Json,
    transform: &dyn Transform,
    slot: usize,
    observe: &mut dyn Observe,
) -> Result<(), TransformError> {
    let mut out = String::new();
    let mut text = String::new();
    let (input, result) = match node {
        Json::Null => (None, transform.apply_null(&mut out)?),
        Json::String(s) => (Some(s.as_str()), transform.apply(s, &mut out)?),
        Json::Number(n) => (Some(n.as_str()), transform.apply(n, &mut out)?),
        Json::Bool(b) => {
            let t = if *b { "true" } else { "false" };
            (Some(t), transform.apply(t, &mut out)?)
        }
        Json::Array(_) | Json::Object(_) => {
            write_json(node, &mut text);
            (Some(text.as_str()), transform.apply(&text, &mut out)?)
        }
    };
    observe.inner(
        slot,
        input,
        (result == Output::Value).then_some(out.as_str()),
    );
    let new = match result {
        Output::Null => Json::Null,
        Output::Value => match node {
            Json::String(_) => Json::String(out),
            Json::Number(_) => match parse(&out) {
                Ok(Json::Number(n)) => Json::Number(n),
                _ => Json::String(out),
            },
            Json::Bool(_) => match out.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                _ => Json::String(out),
            },
            Json::Array(_) | Json::Object(_) => match parse(&out) {
                Ok(container @ (Json::Array(_) | Json::Object(_))) => container,
                _ => Json::String(out),
            },
            Json::Null => parse(&out).unwrap_or(Json::String(out)),
        },
    };
    *node = new;
    Ok(())
}

/// An inner rule bound as `json` binds the rules of its paths, for the tests of the readers.
#[cfg(test)]
mod tests_support {
    use std::sync::Arc;

    use super::super::tests::{bind_on, spec};
    use crate::transform::{Transform, registry};

    pub(super) fn inner_rule(yaml: &str) -> Arc<dyn Transform> {
        let rule = spec(yaml);
        let def = registry::get(&rule.transform).expect("test transform");
        bind_on(&rule, &def.json_value_type(), false).expect("test rule binds")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        SECRET, apply, array_of, bind_err, bind_on, col, fake_with, spec, text_col, ty,
    };
    use super::*;
    use crate::catalog::{ColumnType, TypeKind};

    fn jsonb() -> ColumnType {
        ty("jsonb", TypeKind::Jsonb)
    }

    fn run(rule: &str, doc: &str) -> String {
        let t = bind_on(&spec(rule), &jsonb(), false).unwrap();
        apply(&*t, doc).unwrap()
    }

    #[test]
    fn nested_rules_by_path() {
        let rule = r#"{ transform: json, paths: { "$.email": email, "$.address.street": street_address, "$.tags[*]": { transform: hash, length: 8 }, "$.age": { transform: noise, percent: 10 } } }"#;
        let doc = r#"{"email":"jane@corp.com","address":{"street":"1 Main St","zip":"12345"},"tags":["a","b"],"age":40,"keep":1.50}"#;
        let out = parse(&run(rule, doc)).unwrap();
        let Json::Object(m) = out else { panic!() };
        assert_eq!(
            m[0].1,
            Json::String(fake_with(SECRET, "email", "jane@corp.com"))
        );
        let Json::Object(addr) = &m[1].1 else {
            panic!()
        };
        assert_eq!(
            addr[0].1,
            Json::String(fake_with(SECRET, "street_address", "1 Main St"))
        );
        assert_eq!(addr[1].1, Json::String("12345".into()));
        assert_eq!(
            m[2].1,
            Json::Array(vec![
                Json::String(fake_with(SECRET, "{ transform: hash, length: 8 }", "a")),
                Json::String(fake_with(SECRET, "{ transform: hash, length: 8 }", "b")),
            ])
        );
        let Json::Number(age) = &m[3].1 else {
            panic!("{:?}", m[3].1)
        };
        let age: f64 = age.parse().unwrap();
        assert!((36.0..=44.0).contains(&age));
        assert_eq!(m[4].1, Json::Number("1.50".into()));
    }

    #[test]
    fn value_kinds() {
        // A number hashed becomes a string; null stays null unless a constant fills it.
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.n": { transform: hash, length: 4 } } }"#,
                r#"{"n":12}"#
            ),
            format!(
                r#"{{"n":"{}"}}"#,
                fake_with(SECRET, "{ transform: hash, length: 4 }", "12")
            )
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.n": email } }"#,
                r#"{"n":null}"#
            ),
            r#"{"n":null}"#
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.n": { transform: constant, value: "0" } } }"#,
                r#"{"n":null}"#
            ),
            r#"{"n":0}"#
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.n": set_null } }"#,
                r#"{"n":{"x":1}}"#
            ),
            r#"{"n":null}"#
        );
        assert_eq!(
            run(r#"{ transform: json, paths: { "$": set_null } }"#, r#"[1]"#),
            "null"
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.b": { transform: choice, values: [true] } } }"#,
                r#"{"b":false}"#
            ),
            r#"{"b":true}"#
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.missing": email } }"#,
                r#"{"a":"x"}"#
            ),
            r#"{"a":"x"}"#
        );
        assert_eq!(
            run(
                r#"{ transform: json, paths: { "$.a": keep } }"#,
                r#"{"a":"x"}"#
            ),
            r#"{"a":"x"}"#
        );
    }

    #[test]
    fn lax_member_steps_reach_into_arrays_and_duplicates() {
        let rule = r#"{ transform: json, paths: { "$.people.name": { transform: mask } } }"#;
        assert_eq!(
            run(rule, r#"{"people":[{"name":"Ann"},{"name":"Bob"},3]}"#),
            r#"{"people":[{"name":"***"},{"name":"***"},3]}"#
        );
        let rule = r#"{ transform: json, paths: { "$.a": mask } }"#;
        assert_eq!(
            run(rule, r#"{"a":"xy","a":"zw"}"#),
            r#"{"a":"**","a":"**"}"#
        );
    }

    #[test]
    fn nested_json_and_dates() {
        let rule = r#"{ transform: json, paths: { "$.inner": { transform: json, paths: { "$.e": mask } }, "$.born": { transform: date_shift, days: 1 } } }"#;
        let out = run(rule, r#"{"inner":{"e":"ab","f":1},"born":"2000-01-01"}"#);
        assert!(
            out.starts_with(r#"{"inner":{"e":"**","f":1},"born":""#),
            "{out}"
        );
        assert!(
            out.contains("1999-12-31") || out.contains("2000-01-02"),
            "{out}"
        );
    }

    #[test]
    fn locale_is_inherited() {
        let out = run(
            r#"{ transform: json, locale: ja, paths: { "$.n": name } }"#,
            r#"{"n":"x"}"#,
        );
        let expected = fake_with(SECRET, "{ transform: name, locale: ja }", "x");
        assert_eq!(out, format!(r#"{{"n":"{expected}"}}"#));
    }

    #[test]
    fn errors_name_the_path() {
        let j = jsonb();
        assert_eq!(
            bind_err(&spec("json"), &col(&j)),
            "`json` needs parameter `paths`"
        );
        assert_eq!(
            bind_err(
                &spec(r#"{ transform: json, paths: { "$.e": emial } }"#),
                &col(&j)
            ),
            "`json`: parameter `paths` at `$.e`: unknown transform `emial`, did you mean `email`?"
        );
        assert_eq!(
            bind_err(
                &spec(r#"{ transform: json, paths: { "$.e": { transform: hash, length: 0 } } }"#),
                &col(&j)
            ),
            "`json`: parameter `paths` at `$.e`: `hash`: parameter `length` must be a whole number from 1 to 64 (got 0)"
        );
        assert_eq!(
            bind_err(
                &spec(r#"{ transform: json, paths: { "e": email } }"#),
                &col(&j)
            ),
            "`json`: parameter `paths` `e` must start with `$`"
        );
        assert_eq!(
            bind_err(&spec(r#"{ transform: json, paths: [a] }"#), &col(&j)),
            "`json`: parameter `paths` must map paths to rules, e.g. { \"$.email\": email } (got a list)"
        );
        assert_eq!(
            bind_err(&spec(r#"{ transform: json, paths: {} }"#), &col(&j)),
            "`json`: parameter `paths` is empty; map at least one path to a rule"
        );
        assert_eq!(
            bind_err(
                &spec(r#"{ transform: json, paths: { "$.e": email } }"#),
                &text_col()
            ),
            "`json` does not fit column type text (it takes json and jsonb)"
        );
        assert_eq!(
            bind_err(
                &spec(r#"{ transform: json, unique: true, paths: { "$.e": email } }"#),
                &col(&j)
            ),
            "`json`: parameter `unique` cannot be true for `json`: it applies to the rules inside `paths`; write `unique: true` there"
        );
    }

    #[test]
    fn bad_documents_are_errors_null_stays_and_arrays_of_json() {
        let t = bind_on(
            &spec(r#"{ transform: json, paths: { "$.e": email } }"#),
            &jsonb(),
            false,
        )
        .unwrap();
        let mut out = String::new();
        assert_eq!(
            t.apply("{\"e\": \"secret@x.com\"", &mut out).unwrap_err().0,
            "a value is not valid JSON"
        );
        let mut out = String::new();
        assert_eq!(t.apply_null(&mut out).unwrap(), Output::Null);
        let arr = array_of("jsonb[]", TypeKind::Jsonb);
        let t = bind_on(
            &spec(r#"{ transform: json, paths: { "$.e": mask } }"#),
            &arr,
            false,
        )
        .unwrap();
        assert_eq!(
            apply(&*t, r#"{"{\"e\": \"ab\"}",NULL}"#).unwrap(),
            r#"{"{\"e\":\"**\"}",NULL}"#
        );
    }
}
