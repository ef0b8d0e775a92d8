//! The document model of `json` rules and its parser: RFC 8259 as PostgreSQL's json input
//! accepts it, keeping numbers exactly as written (serde would round numbers beyond f64 in the
//! fields no rule touches), key order and duplicate keys (`json` keeps them).

use crate::transform::TransformError;

/// Deeper documents are refused rather than risking the stack of a worker thread.
pub(super) const MAX_DEPTH: usize = 512;

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

pub(super) fn not_json() -> TransformError {
    TransformError::new("a value is not valid JSON")
}

/// Reads a JSON document (RFC 8259, as PostgreSQL's json input accepts it).
pub fn parse(text: &str) -> Result<Json, TransformError> {
    let mut p = Parser::new(text);
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(not_json());
    }
    Ok(value)
}

/// A reader of one document: the tree parser here, and the splicing reader of
/// [`super::splice`], which reads the same grammar without building the tree.
pub(super) struct Parser<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) text: &'a str,
    pub(super) pos: usize,
}

/// The error for a document nested deeper than [`MAX_DEPTH`].
pub(super) fn too_deep() -> TransformError {
    TransformError::new(format!(
        "a JSON value is nested more than {MAX_DEPTH} levels deep"
    ))
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Parser<'a> {
        Parser {
            bytes: text.as_bytes(),
            text,
            pos: 0,
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    pub(super) fn eat(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    pub(super) fn value(&mut self, depth: usize) -> Result<Json, TransformError> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
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
        let (start, end) = self.number_span()?;
        Ok(Json::Number(self.text[start..end].to_string()))
    }

    /// Reads a number; where its text starts and ends.
    pub(super) fn number_span(&mut self) -> Result<(usize, usize), TransformError> {
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
        Ok((start, self.pos))
    }

    /// A string starting at the opening quote, when it holds no escape (nor a control
    /// character, which is invalid): its text between the quotes, the reader past the closing
    /// quote. None, with the reader where it was, when it has an escape (read it with
    /// [`Parser::string`]). Its text is then exactly what [`super::write_json`] writes.
    pub(super) fn plain_string(&mut self) -> Result<Option<&'a str>, TransformError> {
        let start = self.pos + 1;
        let rest = self.bytes.get(start..).ok_or_else(not_json)?;
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(n) if rest[n] == b'"' => {
                let text = &rest[..n];
                if text.iter().any(|&b| b < 0x20) {
                    return Err(not_json());
                }
                self.pos = start + n + 1;
                // The run ends at an ASCII byte, so it is a whole number of characters.
                self.text
                    .get(start..start + n)
                    .map(Some)
                    .ok_or_else(not_json)
            }
            Some(_) => Ok(None),
            None => Err(not_json()),
        }
    }

    /// A string starting at the opening quote.
    pub(super) fn string(&mut self) -> Result<String, TransformError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::json::write_json;

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
}
