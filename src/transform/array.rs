//! PostgreSQL array literals (`{a,"b c",NULL}`, `{{1,2},{3,4}}`, `[0:1]={a,b}`), read and
//! written as `array_in` and `array_out` do, and [`ElementWise`], which applies a transform to
//! every element of an array column.
//!
//! The structure (nesting, dimension decoration) is copied; only elements change. Elements are
//! decoded (quotes and backslash escapes removed, unquoted `NULL` is NULL) before the inner
//! transform sees them, and re-quoted after.

use std::sync::Arc;

use super::{Output, Transform, TransformError};

/// Applies the inner transform to each element; NULL elements go through `apply_null`.
#[derive(Debug)]
pub struct ElementWise {
    inner: Arc<dyn Transform>,
}

impl ElementWise {
    pub fn new(inner: Arc<dyn Transform>) -> ElementWise {
        ElementWise { inner }
    }
}

impl Transform for ElementWise {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        map_elements(value, out, |element, buf| match element {
            Some(e) => self.inner.apply(e, buf),
            None => self.inner.apply_null(buf),
        })?;
        Ok(Output::Value)
    }
}

fn malformed() -> TransformError {
    TransformError::new("a value is not a valid array literal")
}

/// PostgreSQL's `array_isspace`.
fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}')
}

/// Reads `literal` and writes it to `out` with every element replaced by what `f` makes of
/// it. `f` gets the decoded element (None for NULL) and an empty buffer to write the new
/// element into; `Output::Null` makes the element NULL.
pub fn map_elements<F>(literal: &str, out: &mut String, mut f: F) -> Result<(), TransformError>
where
    F: FnMut(Option<&str>, &mut String) -> Result<Output, TransformError>,
{
    let mut cur = Cursor::new(literal);
    cur.skip_space();
    if cur.peek() == Some('[') {
        // Dimension decoration: copied as is (it carries bounds, not data).
        let start = cur.pos;
        loop {
            match cur.bump() {
                Some('=') => break,
                Some(c) if c.is_ascii_digit() || "[]:+-".contains(c) || is_array_space(c) => {}
                _ => return Err(malformed()),
            }
        }
        out.push_str(literal[start..cur.pos].trim());
        cur.skip_space();
    }
    if cur.bump() != Some('{') {
        return Err(malformed());
    }
    out.push('{');

    #[derive(PartialEq)]
    enum Expect {
        ItemOrClose,
        Item,
        DelimOrClose,
    }
    let mut depth = 1usize;
    let mut expect = Expect::ItemOrClose;
    let mut element = String::new();
    let mut replaced = String::new();
    while depth > 0 {
        cur.skip_space();
        let Some(c) = cur.peek() else {
            return Err(malformed());
        };
        match (&expect, c) {
            (Expect::ItemOrClose | Expect::Item, '{') => {
                cur.bump();
                out.push('{');
                depth += 1;
                expect = Expect::ItemOrClose;
            }
            (Expect::ItemOrClose | Expect::DelimOrClose, '}') => {
                cur.bump();
                out.push('}');
                depth -= 1;
                expect = Expect::DelimOrClose;
            }
            (Expect::DelimOrClose, ',') => {
                cur.bump();
                out.push(',');
                expect = Expect::Item;
            }
            (Expect::ItemOrClose | Expect::Item, c) if c != ',' && c != '}' => {
                element.clear();
                let is_null = read_element(&mut cur, &mut element)?;
                replaced.clear();
                let result = if is_null {
                    f(None, &mut replaced)?
                } else {
                    f(Some(&element), &mut replaced)?
                };
                match result {
                    Output::Null => out.push_str("NULL"),
                    Output::Value => push_element(&replaced, out),
                }
                expect = Expect::DelimOrClose;
            }
            _ => return Err(malformed()),
        }
    }
    cur.skip_space();
    if cur.peek().is_some() {
        return Err(malformed());
    }
    Ok(())
}

/// Reads one element into `into`; true when it is an unquoted NULL.
fn read_element(cur: &mut Cursor<'_>, into: &mut String) -> Result<bool, TransformError> {
    if cur.peek() == Some('"') {
        cur.bump();
        loop {
            match cur.bump() {
                Some('"') => return Ok(false),
                Some('\\') => into.push(cur.bump().ok_or_else(malformed)?),
                Some(c) => into.push(c),
                None => return Err(malformed()),
            }
        }
    }
    // Unquoted: up to a delimiter; trailing blanks dropped unless escaped.
    let mut escaped = false;
    let mut keep_len = 0;
    loop {
        match cur.peek() {
            Some(',') | Some('}') => break,
            Some('{') | Some('"') | None => return Err(malformed()),
            Some('\\') => {
                cur.bump();
                into.push(cur.bump().ok_or_else(malformed)?);
                escaped = true;
                keep_len = into.len();
            }
            Some(c) => {
                cur.bump();
                into.push(c);
                if !is_array_space(c) {
                    keep_len = into.len();
                }
            }
        }
    }
    into.truncate(keep_len);
    Ok(!escaped && into.eq_ignore_ascii_case("NULL"))
}

/// Appends an element as `array_out` writes it: quoted when empty, `NULL`-like, or holding a
/// delimiter, brace, quote, backslash or blank.
pub fn push_element(element: &str, out: &mut String) {
    let needs_quotes = element.is_empty()
        || element.eq_ignore_ascii_case("NULL")
        || element
            .chars()
            .any(|c| matches!(c, '"' | '\\' | '{' | '}' | ',') || is_array_space(c));
    if !needs_quotes {
        out.push_str(element);
        return;
    }
    out.push('"');
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Checks a literal and returns its elements (None for NULL), for validating `constant`
/// values on array columns and for verification's count of a `choice`'s listed inputs.
pub fn elements(literal: &str) -> Result<Vec<Option<String>>, TransformError> {
    let mut found = Vec::new();
    let mut sink = String::new();
    map_elements(literal, &mut sink, |e, _| {
        found.push(e.map(str::to_string));
        Ok(Output::Null)
    })?;
    Ok(found)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_array_space) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases every element, NULL → `nil`.
    fn upper(literal: &str) -> Result<String, TransformError> {
        let mut out = String::new();
        map_elements(literal, &mut out, |e, buf| match e {
            Some(e) => {
                buf.push_str(&e.to_uppercase());
                Ok(Output::Value)
            }
            None => {
                buf.push_str("nil");
                Ok(Output::Value)
            }
        })?;
        Ok(out)
    }

    #[test]
    fn simple_quoted_null_and_empty() {
        assert_eq!(upper("{a,b}").unwrap(), "{A,B}");
        assert_eq!(upper("{}").unwrap(), "{}");
        assert_eq!(upper("{a,NULL,null}").unwrap(), "{A,nil,nil}");
        assert_eq!(upper(r#"{"NULL"}"#).unwrap(), r#"{"NULL"}"#);
        assert_eq!(upper(r#"{"a b","c,d",""}"#).unwrap(), r#"{"A B","C,D",""}"#);
        assert_eq!(
            upper(r#"{"q\"uote","back\\slash"}"#).unwrap(),
            r#"{"Q\"UOTE","BACK\\SLASH"}"#
        );
    }

    #[test]
    fn escapes_and_blanks_in_unquoted_elements() {
        assert_eq!(upper(r"{a\,b}").unwrap(), r#"{"A,B"}"#);
        assert_eq!(upper("{ a , b c }").unwrap(), r#"{A,"B C"}"#);
        assert_eq!(upper(r"{a\ }").unwrap(), r#"{"A "}"#);
        assert_eq!(upper(r"{N\ULL}").unwrap(), r#"{"NULL"}"#);
    }

    #[test]
    fn nested_and_decorated() {
        assert_eq!(upper("{{a,b},{c,d}}").unwrap(), "{{A,B},{C,D}}");
        assert_eq!(upper("[0:1]={a,b}").unwrap(), "[0:1]={A,B}");
        assert_eq!(
            upper("[1:2][-1:0]={{a,b},{c,d}}").unwrap(),
            "[1:2][-1:0]={{A,B},{C,D}}"
        );
        assert_eq!(upper("{{},{}}").unwrap(), "{{},{}}");
    }

    #[test]
    fn non_ascii() {
        assert_eq!(upper("{é,\"日本 語\"}").unwrap(), "{É,\"日本 語\"}");
    }

    #[test]
    fn malformed_literals_are_errors_without_the_value() {
        for bad in [
            "", "a", "{", "{a", "{a,}", "{,a}", "{a}}", "{a} x", r#"{"a}"#, r"{a\", "{a\"b}",
            "[1:2]{a}", "[x]={a}", "{{a}", "{a{b}}",
        ] {
            let err = upper(bad).unwrap_err();
            assert_eq!(err.0, "a value is not a valid array literal", "{bad:?}");
        }
    }

    #[test]
    fn elements_lists_them() {
        assert_eq!(
            elements(r#"{a,NULL,"b c"}"#).unwrap(),
            vec![Some("a".to_string()), None, Some("b c".to_string())]
        );
    }

    #[test]
    fn quoting_matches_array_out() {
        let mut out = String::new();
        for e in ["plain", "", "null", "a b", "a\tb", "{x}", "x\"y", "é"] {
            push_element(e, &mut out);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"\"|\"null\"|\"a b\"|\"a\tb\"|\"{x}\"|\"x\\\"y\"|é|"
        );
    }
}
