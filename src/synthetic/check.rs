//! CHECK constraints (of tables and of domains) as generated values must keep them: the
//! expression PostgreSQL prints (`pg_get_constraintdef`) read as a conjunction of simple
//! comparisons of one column with a literal, IN-lists (`= ANY (ARRAY[...])`), `IS NOT NULL`,
//! `LIKE` patterns of literal pieces and `%`, and length limits. Anything else is
//! [`Unsupported`]: the planner names the constraint (unless a `generate:` rule covers it).

use std::collections::BTreeMap;

/// A literal of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Num(f64),
    Text(String),
}

impl Lit {
    pub fn as_text(&self) -> String {
        match self {
            Lit::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Lit::Num(n) => n.to_string(),
            Lit::Text(t) => t.clone(),
        }
    }
}

/// What the constraints of one column allow, all of them together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowed {
    /// Lower bound and whether it is inclusive.
    pub lo: Option<(Lit, bool)>,
    pub hi: Option<(Lit, bool)>,
    /// An IN-list (or `=`): the only values allowed.
    pub only: Option<Vec<String>>,
    pub not: Vec<String>,
    /// LIKE patterns the value must match (literal pieces and `%` only).
    pub like: Vec<String>,
    pub max_len: Option<usize>,
    pub min_len: Option<usize>,
    pub not_null: bool,
}

impl Allowed {
    pub fn is_empty(&self) -> bool {
        *self == Allowed::default()
    }

    /// The values of the IN-list that every other condition allows; an error when none is.
    pub fn choices(&self) -> Option<Vec<String>> {
        let only = self.only.as_ref()?;
        Some(
            only.iter()
                .filter(|v| !self.not.contains(v))
                .filter(|v| self.like.iter().all(|p| like_matches(p, v)))
                .filter(|v| self.in_range(&Lit::Text((*v).clone())))
                .cloned()
                .collect(),
        )
    }

    fn in_range(&self, v: &Lit) -> bool {
        let cmp = |a: &Lit, b: &Lit| -> Option<std::cmp::Ordering> {
            match (a, b) {
                (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y),
                (Lit::Text(x), Lit::Num(y)) => x.parse::<f64>().ok()?.partial_cmp(y),
                (Lit::Num(x), Lit::Text(y)) => x.partial_cmp(&y.parse::<f64>().ok()?),
                (Lit::Text(x), Lit::Text(y)) => Some(x.cmp(y)),
            }
        };
        use std::cmp::Ordering::*;
        if let Some((lo, inclusive)) = &self.lo {
            match cmp(v, lo) {
                Some(Less) => return false,
                Some(Equal) if !inclusive => return false,
                _ => {}
            }
        }
        if let Some((hi, inclusive)) = &self.hi {
            match cmp(v, hi) {
                Some(Greater) => return false,
                Some(Equal) if !inclusive => return false,
                _ => {}
            }
        }
        true
    }

    /// The numeric range `[lo, hi]` for integers (exclusive bounds moved by one).
    pub fn int_range(&self) -> (Option<i64>, Option<i64>) {
        let num = |b: &Option<(Lit, bool)>, up: bool| -> Option<i64> {
            let (lit, inclusive) = b.as_ref()?;
            let n = match lit {
                Lit::Num(n) => *n,
                Lit::Text(t) => t.parse().ok()?,
            };
            Some(if up {
                let c = n.ceil() as i64;
                if !inclusive && c as f64 == n {
                    c + 1
                } else {
                    c
                }
            } else {
                let f = n.floor() as i64;
                if !inclusive && f as f64 == n {
                    f - 1
                } else {
                    f
                }
            })
        };
        (num(&self.lo, true), num(&self.hi, false))
    }

    /// Real bounds (an exclusive bound nudged inward by `step`).
    pub fn real_range(&self, step: f64) -> (Option<f64>, Option<f64>) {
        let num = |b: &Option<(Lit, bool)>, up: bool| -> Option<f64> {
            let (lit, inclusive) = b.as_ref()?;
            let n = match lit {
                Lit::Num(n) => *n,
                Lit::Text(t) => t.parse().ok()?,
            };
            Some(match (inclusive, up) {
                (true, _) => n,
                (false, true) => n + step,
                (false, false) => n - step,
            })
        };
        (num(&self.lo, true), num(&self.hi, false))
    }

    /// Text bounds (dates, timestamps: compared as PostgreSQL literals).
    pub fn text_bounds(&self) -> (Option<String>, Option<String>) {
        let t = |b: &Option<(Lit, bool)>| b.as_ref().map(|(l, _)| l.as_text());
        (t(&self.lo), t(&self.hi))
    }
}

/// A constraint the generator cannot keep by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

/// Parses `expression` (with or without the leading `CHECK`) into what it allows per column;
/// `value_name` is the name a domain's expression uses (`VALUE`), mapped to `""`.
pub fn parse(expression: &str) -> Result<BTreeMap<String, Allowed>, Unsupported> {
    let mut text = expression.trim();
    if let Some(rest) = text.strip_prefix("CHECK") {
        text = rest.trim();
    }
    let text = text.trim_end_matches(" NOT VALID");
    let mut out: BTreeMap<String, Allowed> = BTreeMap::new();
    for atom in split_and(strip_parens(text)) {
        let (column, apply) = parse_atom(strip_parens(atom))
            .ok_or_else(|| Unsupported(format!("`{}` is not a simple comparison", atom.trim())))?;
        apply(out.entry(column).or_default());
    }
    for (column, allowed) in &out {
        if let Some(choices) = allowed.choices()
            && choices.is_empty()
        {
            return Err(Unsupported(format!(
                "no value of {} satisfies it",
                if column.is_empty() { "VALUE" } else { column }
            )));
        }
        let (lo, hi) = allowed.int_range();
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
            && allowed.only.is_none()
        {
            return Err(Unsupported(format!(
                "no value of {} satisfies it (the range is empty)",
                if column.is_empty() { "VALUE" } else { column }
            )));
        }
    }
    Ok(out)
}

type Apply = Box<dyn FnOnce(&mut Allowed)>;

fn parse_atom(atom: &str) -> Option<(String, Apply)> {
    let atom = atom.trim();
    if let Some(col) = atom.strip_suffix(" IS NOT NULL") {
        let column = column_name(col)?;
        return Some((column, Box::new(|a: &mut Allowed| a.not_null = true)));
    }
    // col = ANY (ARRAY[...]) — IN-lists, possibly cast on both sides.
    if let Some(at) = find_top(atom, " = ANY ") {
        let column = column_name(&atom[..at])?;
        let list = strip_parens(atom[at + 7..].trim());
        let list = strip_cast(list);
        let list = strip_parens(list);
        let inner = list.strip_prefix("ARRAY[")?.strip_suffix(']')?;
        let mut values = Vec::new();
        for item in split_top(inner, ',') {
            values.push(literal(item.trim())?.as_text());
        }
        return Some((
            column,
            Box::new(move |a: &mut Allowed| {
                a.only = Some(match a.only.take() {
                    Some(before) => before.into_iter().filter(|v| values.contains(v)).collect(),
                    None => values,
                })
            }),
        ));
    }
    for (op, token) in [
        (">=", " >= "),
        ("<=", " <= "),
        ("<>", " <> "),
        ("!~~", " !~~ "),
        ("~~", " ~~ "),
        (">", " > "),
        ("<", " < "),
        ("=", " = "),
    ] {
        let Some(at) = find_top(atom, token) else {
            continue;
        };
        let (left, right) = (atom[..at].trim(), atom[at + token.len()..].trim());
        // length(col) op n
        if let Some(column) = length_of(left) {
            let n = match literal(right)? {
                Lit::Num(n) => n,
                Lit::Text(_) => return None,
            };
            let n = n as i64;
            let apply: Apply = match op {
                "<=" => Box::new(move |a| a.max_len = Some(n.max(0) as usize)),
                "<" => Box::new(move |a| a.max_len = Some((n - 1).max(0) as usize)),
                ">=" => Box::new(move |a| a.min_len = Some(n.max(0) as usize)),
                ">" => Box::new(move |a| a.min_len = Some((n + 1).max(0) as usize)),
                _ => return None,
            };
            return Some((column, apply));
        }
        let column = column_name(left)?;
        let value = literal(right)?;
        let apply: Apply = match op {
            ">=" => Box::new(move |a| a.lo = Some((value, true))),
            ">" => Box::new(move |a| a.lo = Some((value, false))),
            "<=" => Box::new(move |a| a.hi = Some((value, true))),
            "<" => Box::new(move |a| a.hi = Some((value, false))),
            "<>" => Box::new(move |a| a.not.push(value.as_text())),
            "=" => Box::new(move |a| {
                let v = value.as_text();
                a.only = Some(match a.only.take() {
                    Some(before) => before.into_iter().filter(|x| *x == v).collect(),
                    None => vec![v],
                })
            }),
            "~~" => {
                let Lit::Text(pattern) = value else {
                    return None;
                };
                // Only literal pieces and %: `_` and escapes are not built.
                if pattern.contains('_') || pattern.contains('\\') {
                    return None;
                }
                Box::new(move |a| a.like.push(pattern))
            }
            _ => return None,
        };
        return Some((column, apply));
    }
    None
}

/// `length(col)`, `char_length(col)`, `length((col)::text)`.
fn length_of(text: &str) -> Option<String> {
    let inner = text
        .strip_prefix("length(")
        .or_else(|| text.strip_prefix("char_length("))
        .or_else(|| text.strip_prefix("character_length("))?
        .strip_suffix(')')?;
    column_name(inner)
}

/// A column reference, possibly parenthesized and cast: `amount`, `"Odd Col"`,
/// `(status)::text`, `VALUE` (a domain's, mapped to "").
fn column_name(text: &str) -> Option<String> {
    let text = strip_cast(strip_parens(text.trim()));
    let text = strip_parens(text);
    if text == "VALUE" {
        return Some(String::new());
    }
    if let Some(quoted) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Some(quoted.replace("\"\"", "\""));
    }
    (!text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || !c.is_ascii())
        && !text.starts_with(|c: char| c.is_ascii_digit()))
    .then(|| text.to_string())
}

/// A literal: `0`, `(0)::numeric`, `'abc'::text`, `'2020-01-01'::date`, `(- 5)`.
fn literal(text: &str) -> Option<Lit> {
    let text = strip_parens(strip_cast(strip_parens(text.trim())));
    let text = strip_parens(text);
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'')?;
        return Some(Lit::Text(inner.replace("''", "'")));
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(Lit::Num)
}

/// Removes a trailing `::type` (one or more) outside quotes and parentheses.
fn strip_cast(text: &str) -> &str {
    let mut text = text.trim();
    while let Some(at) = find_top(text, "::") {
        text = text[..at].trim();
    }
    text
}

/// Removes parentheses that enclose the whole text.
fn strip_parens(text: &str) -> &str {
    let mut text = text.trim();
    while text.starts_with('(') && text.ends_with(')') && closes_at_end(text) {
        text = text[1..text.len() - 1].trim();
    }
    text
}

fn closes_at_end(text: &str) -> bool {
    let mut depth = 0i32;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 && i != text.len() - 1 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// The byte offset of `needle` at depth 0, outside quotes.
fn find_top(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' {
            quoted = !quoted;
        } else if !quoted {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                _ => {
                    if depth == 0 && text[i..].starts_with(needle) {
                        return Some(i);
                    }
                }
            }
        }
        i += 1;
    }
    None
}

fn split_top(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The top-level `AND` terms.
fn split_and(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = find_top(rest, " AND ") {
        out.push(&rest[..at]);
        rest = &rest[at + 5..];
    }
    out.push(rest);
    out
}

/// True when `value` matches the LIKE `pattern` of literal pieces and `%`.
pub fn like_matches(pattern: &str, value: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('%').collect();
    let mut at = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if piece.is_empty() {
            continue;
        }
        if i == 0 {
            if !value.starts_with(piece) {
                return false;
            }
            at = piece.len();
        } else if i == pieces.len() - 1 {
            return value.len() >= at + piece.len() && value.ends_with(piece);
        } else {
            match value[at..].find(piece) {
                Some(found) => at += found + piece.len(),
                None => return false,
            }
        }
    }
    pieces.len() > 1 || value == pattern
}

/// A value matching the LIKE `pattern`: its literal pieces with `fill` where `%` is.
pub fn like_value(pattern: &str, fill: &str) -> String {
    pattern.split('%').collect::<Vec<_>>().join(fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_and_in_lists() {
        let a = parse("CHECK (((amount > (0)::numeric) AND (amount <= (1000)::numeric)))").unwrap();
        let amount = &a["amount"];
        assert_eq!(amount.lo, Some((Lit::Num(0.0), false)));
        assert_eq!(amount.int_range(), (Some(1), Some(1000)));
        let s = parse(
            "CHECK (((status)::text = ANY ((ARRAY['new'::character varying, 'done'::character varying])::text[])))",
        )
        .unwrap();
        assert_eq!(s["status"].choices().unwrap(), ["new", "done"]);
        let d = parse("CHECK ((VALUE > 0))").unwrap();
        assert_eq!(d[""].int_range(), (Some(1), None));
        let l = parse("CHECK ((VALUE ~~ '%@%'::text))").unwrap();
        assert_eq!(l[""].like, ["%@%"]);
        assert!(like_matches("%@%", &like_value("%@%", "x")));
        let n = parse("CHECK ((length(code) <= 5) AND (code IS NOT NULL))").unwrap();
        assert_eq!(n["code"].max_len, Some(5));
        let dates = parse("CHECK ((born >= '1900-01-01'::date))").unwrap();
        assert_eq!(dates["born"].text_bounds().0.as_deref(), Some("1900-01-01"));
    }

    #[test]
    fn what_is_not_simple_is_unsupported() {
        assert!(parse("CHECK ((lower(email) = email))").is_err());
        assert!(parse("CHECK (((a > 0) OR (b > 0)))").is_err());
        assert!(parse("CHECK ((ends_at > starts_at))").is_err());
        // Unsatisfiable ones too.
        assert!(parse("CHECK (((n > 10) AND (n < 5)))").is_err());
        assert!(parse("CHECK (((k = 'a'::text) AND (k = 'b'::text)))").is_err());
    }
}
