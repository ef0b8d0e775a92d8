//! The paths of a `json` rule in PostgreSQL's SQL/JSON path language (lax mode), so that a
//! caller can read the values a path reaches with `jsonb_path_query` (the leak check samples
//! them this way).

use std::fmt::Write;

use serde_yaml::Value;

use super::path::{Step, parse_path};
use crate::transform::RuleSpec;
use crate::transform::registry::{self, TransformDef};

/// The paths of a `json` rule: each as written, the same path in PostgreSQL's SQL/JSON path
/// language (lax mode), and the definition of the transform its rule applies. Paths that do
/// not parse, rules that are not rules, and rules naming no transform of the registry are left
/// out (binding refuses all three, so a bound rule has none).
pub fn sql_paths(spec: &RuleSpec) -> Vec<(String, String, &'static TransformDef)> {
    let Some(Value::Mapping(map)) = spec.params.get("paths") else {
        return vec![];
    };
    let mut out = Vec::new();
    for (path, rule) in map {
        let (Some(path), Ok(rule)) = (path.as_str(), RuleSpec::from_value(rule)) else {
            continue;
        };
        let (Ok(steps), Some(def)) = (parse_path(path), registry::get(&rule.transform)) else {
            continue;
        };
        let mut sql = String::from("lax $");
        for step in &steps {
            match step {
                Step::Key(key) => {
                    sql.push_str(".\"");
                    for c in key.chars() {
                        if c == '"' || c == '\\' {
                            sql.push('\\');
                        }
                        sql.push(c);
                    }
                    sql.push('"');
                }
                Step::Index(i) => {
                    let _ = write!(sql, "[{i}]");
                }
                Step::Wildcard => sql.push_str("[*]"),
            }
        }
        out.push((path.to_string(), sql, def));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::spec;

    #[test]
    fn paths_in_sql_json_with_their_transforms() {
        let rule = spec(
            r#"{ transform: json, paths: { "$.contact.email": email, "$['a \"b'][2].*": { transform: hash, length: 8 }, "$.x": emial, "x": email } }"#,
        );
        let paths = sql_paths(&rule);
        let shown: Vec<(&str, &str, &str)> = paths
            .iter()
            .map(|(path, sql, def)| (path.as_str(), sql.as_str(), def.name()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("$.contact.email", r#"lax $."contact"."email""#, "email"),
                (r#"$['a "b'][2].*"#, r#"lax $."a \"b"[2][*]"#, "hash"),
            ]
        );
        assert!(sql_paths(&spec("email")).is_empty());
    }
}
