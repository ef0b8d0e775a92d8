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
//! keys (`json` keeps them). Output is compact.

use std::fmt::Write;
use std::sync::Arc;

use serde_yaml::Value;

use super::params::{Binder, show};
use super::{BindError, ColumnInfo, Output, RuleSpec, Transform, TransformError};
use crate::catalog::{ColumnType, TypeKind};

/// Deeper documents are refused rather than risking the stack of a worker thread.
const MAX_DEPTH: usize = 512;

/// A JSON value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text, exactly as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in order, duplicates kept.
    Object(Vec<(String, Json)>),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    Wildcard,
}

#[derive(Debug)]
struct PathRule {
    steps: Vec<Step>,
    transform: Arc<dyn Transform>,
}

#[derive(Debug)]
struct JsonPaths {
    rules: Vec<PathRule>,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept(&["paths"])?;
    let outer_locale = b.get("locale").cloned();
    b.check_locale()?;
    b.refuse_unique("it applies to the rules inside `paths`; write `unique: true` there")?;
    b.fit(
        matches!(b.kind(), TypeKind::Json | TypeKind::Jsonb),
        "json and jsonb",
    )?;
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
    for (path, rule) in map {
        let Some(path) = path.as_str() else {
            return Err(b.bad(
                "paths",
                format!("has a path that is not a string: {}", show(path)),
            ));
        };
        let steps = parse_path(path).map_err(|m| b.bad("paths", format!("`{path}` {m}")))?;
        let at = |e: BindError| b.bad("paths", format!("at `{path}`: {e}"));
        let mut spec = RuleSpec::from_value(rule).map_err(at)?;
        // Rules inside inherit the document rule's locale unless they name one.
        if let Some(locale) = &outer_locale {
            spec.params
                .entry("locale".to_string())
                .or_insert_with(|| locale.clone());
        }
        let ty = ColumnType::simple(
            nested_type(&spec.transform).0,
            nested_type(&spec.transform).1,
        );
        let column = ColumnInfo {
            ty: &ty,
            not_null: false,
        };
        let transform = b.catalogue.bind(&spec, &column).map_err(at)?;
        if !transform.is_keep() {
            rules.push(PathRule { steps, transform });
        }
    }
    Ok(Arc::new(JsonPaths { rules }))
}

/// The paths of a `json` rule, each with the name of the transform it applies and the same
/// path in PostgreSQL's SQL/JSON path language (lax mode), so that a caller can read the
/// values a path reaches with `jsonb_path_query` (the leak check samples them this way).
/// Paths that do not parse, and rules that are not mappings, are left out.
pub fn sql_paths(spec: &RuleSpec) -> Vec<(String, String, String)> {
    let Some(Value::Mapping(map)) = spec.params.get("paths") else {
        return vec![];
    };
    let mut out = Vec::new();
    for (path, rule) in map {
        let (Some(path), Ok(rule)) = (path.as_str(), RuleSpec::from_value(rule)) else {
            continue;
        };
        let Ok(steps) = parse_path(path) else {
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
        out.push((path.to_string(), sql, rule.transform));
    }
    out
}

/// The type a rule inside a document is bound as: JSON values are untyped, so each transform
/// gets the column kind it takes (`date_shift` reads ISO dates and timestamps alike).
fn nested_type(transform: &str) -> (&'static str, TypeKind) {
    match transform {
        "noise" => ("numeric", TypeKind::Numeric),
        "date_shift" => ("timestamptz", TypeKind::TimestampTz),
        "json" => ("jsonb", TypeKind::Jsonb),
        _ => ("text", TypeKind::Text),
    }
}

/// Reads a path; the error says what is wrong (the caller prefixes the path).
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let Some(mut rest) = path.trim().strip_prefix('$') else {
        return Err("must start with `$`".to_string());
    };
    let mut steps = Vec::new();
    let unsupported = |at: &str| {
        format!(
            "is not a supported path at `{at}` (after `$`: `.key`, `.\"key\"`, `[\"key\"]`, `[n]`, `[*]`, `.*`)"
        )
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(".*") {
            steps.push(Step::Wildcard);
            rest = after;
        } else if let Some(after) = rest.strip_prefix(".\"") {
            let (key, after) = read_quoted(after, '"').ok_or_else(|| unsupported(rest))?;
            steps.push(Step::Key(key));
            rest = after;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| {
                    c == '.' || c == '[' || c.is_whitespace() || c == '"' || c == '\'' || c == ']'
                })
                .unwrap_or(after.len());
            if end == 0 {
                return Err(unsupported(rest));
            }
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let inner = after.trim_start();
            let (step, after) = if let Some(q) = inner.strip_prefix('"') {
                let (key, after) = read_quoted(q, '"').ok_or_else(|| unsupported(rest))?;
                (Step::Key(key), after)
            } else if let Some(q) = inner.strip_prefix('\'') {
                let (key, after) = read_quoted(q, '\'').ok_or_else(|| unsupported(rest))?;
                (Step::Key(key), after)
            } else if let Some(after) = inner.strip_prefix('*') {
                (Step::Wildcard, after)
            } else {
                let end = inner
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(inner.len());
                let index: usize = inner[..end].parse().map_err(|_| unsupported(rest))?;
                (Step::Index(index), &inner[end..])
            };
            let after = after.trim_start();
            rest = after.strip_prefix(']').ok_or_else(|| unsupported(rest))?;
            steps.push(step);
        } else {
            return Err(unsupported(rest));
        }
    }
    Ok(steps)
}

/// A quoted key up to the closing `quote` (backslash escapes the next character); the key and
/// what follows.
fn read_quoted(text: &str, quote: char) -> Option<(String, &str)> {
    let mut key = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            key.push(chars.next()?.1);
        } else if c == quote {
            return Some((key, &text[i + c.len_utf8()..]));
        } else {
            key.push(c);
        }
    }
    None
}

impl Transform for JsonPaths {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        let mut doc = parse(value)?;
        for rule in &self.rules {
            visit(&mut doc, &rule.steps, &mut |node| {
                transform_node(node, &*rule.transform)
            })?;
        }
        write_json(&doc, out);
        Ok(Output::Value)
    }
}

fn visit(
    node: &mut Json,
    steps: &[Step],
    f: &mut dyn FnMut(&mut Json) -> Result<(), TransformError>,
) -> Result<(), TransformError> {
    let Some((step, rest)) = steps.split_first() else {
        return f(node);
    };
    match (step, node) {
        (Step::Key(key), Json::Object(members)) => {
            for (name, member) in members.iter_mut() {
                if name == key {
                    visit(member, rest, f)?;
                }
            }
        }
        // Lax mode: a member step on an array reaches into each element.
        (Step::Key(_), Json::Array(items)) => {
            for item in items.iter_mut().filter(|i| matches!(i, Json::Object(_))) {
                visit(item, steps, f)?;
            }
        }
        (Step::Index(i), Json::Array(items)) => {
            if let Some(item) = items.get_mut(*i) {
                visit(item, rest, f)?;
            }
        }
        (Step::Wildcard, Json::Array(items)) => {
            for item in items.iter_mut() {
                visit(item, rest, f)?;
            }
        }
        (Step::Wildcard, Json::Object(members)) => {
            for (_, member) in members.iter_mut() {
                visit(member, rest, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn transform_node(node: &mut Json, transform: &dyn Transform) -> Result<(), TransformError> {
    let mut out = String::new();
    let result = match node {
        Json::Null => transform.apply_null(&mut out)?,
        Json::String(s) => transform.apply(s, &mut out)?,
        Json::Number(n) => transform.apply(n, &mut out)?,
        Json::Bool(b) => transform.apply(if *b { "true" } else { "false" }, &mut out)?,
        Json::Array(_) | Json::Object(_) => {
            let mut text = String::new();
            write_json(node, &mut text);
            transform.apply(&text, &mut out)?
        }
    };
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

fn not_json() -> TransformError {
    TransformError::new("a value is not valid JSON")
}

/// Reads a JSON document (RFC 8259, as PostgreSQL's json input accepts it).
pub fn parse(text: &str) -> Result<Json, TransformError> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(not_json());
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, TransformError> {
        if depth > MAX_DEPTH {
            return Err(TransformError::new(format!(
                "a JSON value is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        match self.bytes.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.eat("}") {
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(not_json());
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(":") {
                        return Err(not_json());
                    }
                    self.skip_ws();
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.skip_ws();
                    if self.eat("}") {
                        return Ok(Json::Object(members));
                    }
                    if !self.eat(",") {
                        return Err(not_json());
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat("]") {
                    return Ok(Json::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat("]") {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(",") {
                        return Err(not_json());
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') if self.eat("true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(not_json()),
        }
    }

    fn number(&mut self) -> Result<Json, TransformError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - from
        };
        self.eat("-");
        if self.eat("0") {
            // A leading zero stands alone.
        } else if digits(self) == 0 {
            return Err(not_json());
        }
        if self.eat(".") && digits(self) == 0 {
            return Err(not_json());
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(not_json());
            }
        }
        Ok(Json::Number(self.text[start..self.pos].to_string()))
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, TransformError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run ends at an ASCII byte, so it is a whole number of characters.
            s.push_str(self.text.get(start..self.pos).ok_or_else(not_json)?);
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = *self.bytes.get(self.pos).ok_or_else(not_json)?;
                    self.pos += 1;
                    match escape {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{08}'),
                        b'f' => s.push('\u{0C}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&first) && self.eat("\\u") {
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    char::from_u32(
                                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00),
                                    )
                                } else {
                                    None
                                }
                            } else {
                                char::from_u32(first)
                            };
                            // A lone surrogate has no character: it becomes U+FFFD.
                            s.push(c.unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(not_json()),
                    }
                }
                _ => return Err(not_json()),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, TransformError> {
        let hex = self.text.get(self.pos..self.pos + 4).ok_or_else(not_json)?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| not_json())?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_json());
        }
        self.pos += 4;
        Ok(v)
    }
}

/// Writes `value` as compact JSON.
pub fn write_json(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_json(member, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        SECRET, apply, array_of, bind_err, bind_on, col, fake_with, spec, text_col, ty,
    };
    use super::*;

    fn jsonb() -> ColumnType {
        ty("jsonb", TypeKind::Jsonb)
    }

    fn run(rule: &str, doc: &str) -> String {
        let t = bind_on(&spec(rule), &jsonb(), false).unwrap();
        apply(&*t, doc).unwrap()
    }

    #[test]
    fn parses_and_writes_round_trip() {
        for doc in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"[1.50,-0,1e10,2E-3,12345678901234567890123456789]"#,
            r#""é\n\"x\\ 日本""#,
            r#"{"a":1,"a":2}"#,
            "[]",
            "{}",
        ] {
            let mut out = String::new();
            write_json(&parse(doc).unwrap(), &mut out);
            assert_eq!(out, doc);
        }
        let mut out = String::new();
        write_json(&parse("{ \"k\" : [ 1 , 2 ] }").unwrap(), &mut out);
        assert_eq!(out, r#"{"k":[1,2]}"#);
        let mut out = String::new();
        write_json(&parse(r#""\u00e9\ud83d\ude00\u0001\/""#).unwrap(), &mut out);
        assert_eq!(out, "\"é😀\\u0001/\"");
    }

    #[test]
    fn rejects_invalid_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "01",
            "1.",
            "-",
            "tru",
            "\"a",
            "\"\u{01}\"",
            "{a:1}",
            "[1] 2",
            "\"\\x\"",
            "\"\\u12\"",
            "nul",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().0,
                "a value is not valid JSON",
                "{bad:?}"
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).unwrap_err().0.contains("nested more than"));
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path(r#"$.a["b c"][*][2].*.'x'"#).unwrap_err(),
            "is not a supported path at `.'x'` (after `$`: `.key`, `.\"key\"`, `[\"key\"]`, `[n]`, `[*]`, `.*`)"
        );
        assert_eq!(
            parse_path(r#"$.a["b c"][*][2].*['x']."y.z""#).unwrap(),
            vec![
                Step::Key("a".into()),
                Step::Key("b c".into()),
                Step::Wildcard,
                Step::Index(2),
                Step::Wildcard,
                Step::Key("x".into()),
                Step::Key("y.z".into()),
            ]
        );
        assert_eq!(parse_path("a.b").unwrap_err(), "must start with `$`");
        assert!(parse_path("$..a").is_err());
        assert!(parse_path("$[-1]").is_err());
        assert!(parse_path("$[").is_err());
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
