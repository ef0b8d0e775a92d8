//! `regex_replace{pattern, with}`: every match of `pattern` (the `regex` crate's syntax)
//! replaced by `with`, where `$1`, `${name}` refer to groups and `$$` is a dollar sign. What
//! does not match is kept: the pattern says what is personal. No randomness.

use std::sync::Arc;

use regex::Regex;

use super::params::Binder;
use super::text::truncate_chars;
use super::{BindError, Output, Transform, TransformError};

#[derive(Debug)]
struct RegexReplace {
    pattern: Regex,
    with: String,
    max_len: Option<usize>,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let pattern = b.string("pattern")?.ok_or_else(|| b.missing("pattern"))?;
    let with = b.scalar("with")?.ok_or_else(|| b.missing("with"))?;
    let pattern = Regex::new(&pattern).map_err(|e| {
        b.bad(
            "pattern",
            format!("is not a valid regular expression: {}", regex_reason(&e)),
        )
    })?;
    b.check_locale()?;
    b.refuse_unique("the parts of a value the pattern does not match are kept as they are")?;
    b.fit()?;
    Ok(Arc::new(RegexReplace {
        pattern,
        with,
        max_len: b.max_len(),
    }))
}

/// The last line of the regex crate's message (the reason; the lines before draw the pattern
/// with a caret, which does not fit on one line).
fn regex_reason(e: &regex::Error) -> String {
    let message = e.to_string();
    let last = message.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

impl Transform for RegexReplace {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        out.push_str(&self.pattern.replace_all(value, self.with.as_str()));
        if let Some(max) = self.max_len {
            truncate_chars(out, max);
        }
        Ok(Output::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        SECRET, apply, array_of, bind_err, bind_on, col, fake_with, spec, text_col, ty,
    };
    use crate::catalog::TypeKind;

    #[test]
    fn replaces_with_groups() {
        let rule =
            r#"{ transform: regex_replace, pattern: '\d{3}-\d{2}-(\d{4})', with: "XXX-XX-$1" }"#;
        assert_eq!(
            fake_with(SECRET, rule, "ssn 123-45-6789 and 987-65-4321"),
            "ssn XXX-XX-6789 and XXX-XX-4321"
        );
        assert_eq!(
            fake_with(SECRET, rule, "nothing here, é"),
            "nothing here, é"
        );
        assert_eq!(fake_with(SECRET, rule, ""), "");
        let named = r#"{ transform: regex_replace, pattern: '(?P<user>\w+)@\S+', with: "${user}@example.com" }"#;
        assert_eq!(
            fake_with(SECRET, named, "mail bob@corp.io now"),
            "mail bob@example.com now"
        );
    }

    #[test]
    fn output_is_cut_to_the_column() {
        let mut short = ty("character varying(6)", TypeKind::Text);
        short.max_len = Some(6);
        let t = bind_on(
            &spec("{ transform: regex_replace, pattern: 'a', with: 'ééé' }"),
            &short,
            false,
        )
        .unwrap();
        assert_eq!(apply(&*t, "aaa").unwrap(), "éééééé");
    }

    #[test]
    fn errors() {
        assert_eq!(
            bind_err(&spec("{ transform: regex_replace, with: x }"), &text_col()),
            "`regex_replace` needs parameter `pattern`"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: regex_replace, pattern: x }"),
                &text_col()
            ),
            "`regex_replace` needs parameter `with`"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: regex_replace, pattern: '(a', with: x }"),
                &text_col()
            ),
            "`regex_replace`: parameter `pattern` is not a valid regular expression: unclosed group"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: regex_replace, pattern: a, with: x, replace: y }"),
                &text_col()
            ),
            "`regex_replace` takes no parameter `replace` (it takes: locale, pattern, unique, with)"
        );
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(
                &spec("{ transform: regex_replace, pattern: a, with: x }"),
                &col(&int)
            ),
            "`regex_replace` does not fit column type integer (it takes text types (text, varchar, char, citext) and arrays of them)"
        );
    }

    #[test]
    fn arrays_and_null() {
        let arr = array_of("text[]", TypeKind::Text);
        let t = bind_on(
            &spec(r#"{ transform: regex_replace, pattern: '\d', with: '#' }"#),
            &arr,
            false,
        )
        .unwrap();
        assert_eq!(
            apply(&*t, r#"{a1,NULL,"2 b"}"#).unwrap(),
            r##"{a#,NULL,"# b"}"##
        );
        let mut out = String::new();
        assert_eq!(
            t.apply_null(&mut out).unwrap(),
            crate::transform::Output::Null
        );
    }
}
