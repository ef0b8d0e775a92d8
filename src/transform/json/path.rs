//! The path language of `json` rules — a JSONPath subset: `$`, `.key`, `."key"`, `["key"]`,
//! `['key']`, `[n]`, `[*]`, `.*` — and how a path reaches the values of a document (lax mode,
//! as PostgreSQL: a member step on an array reaches into each of its objects).

use super::value::Json;
use crate::transform::TransformError;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
    Wildcard,
}

/// Reads a path; the error says what is wrong (the caller prefixes the path).
pub(super) fn parse_path(path: &str) -> Result<Vec<Step>, String> {
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

pub(super) fn visit(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
