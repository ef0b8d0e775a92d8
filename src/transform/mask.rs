//! `mask{keep_first, keep_last, char}`: letters and digits replaced by `char` (default `*`),
//! except the first `keep_first` and last `keep_last` characters. Other characters (blanks,
//! dashes, dots, `@`) stay, so formats survive: `4111-1111-1111-1234` with `keep_last: 4`
//! gives `****-****-****-1234`.
//!
//! A value no longer than `keep_first + keep_last` is masked entirely: keeping it would pass
//! it through unchanged. No randomness: the output depends on the value alone.

use std::sync::Arc;

use super::params::Binder;
use super::{BindError, Output, Transform, TransformError};

#[derive(Debug)]
struct Mask {
    keep_first: usize,
    keep_last: usize,
    with: char,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let keep_first = b.whole_or_default("keep_first")? as usize;
    let keep_last = b.whole_or_default("keep_last")? as usize;
    let with = b.character("char")?;
    b.check_locale()?;
    b.refuse_unique("it keeps parts of the value, so distinct values can get the same mask")?;
    b.fit()?;
    // A mask whose kept ends cover the longest value the column can hold keeps nothing: every
    // value is masked entirely (see `apply`), which is not what its parameters say. Visible
    // from the type alone, so it is refused at load time rather than found by verification.
    if let Some(max_len) = b.column.ty.max_len
        && keep_first + keep_last >= max_len
    {
        return Err(b.bad(
            if keep_last > 0 { "keep_last" } else { "keep_first" },
            format!(
                "leaves nothing to mask: keep_first + keep_last = {} covers every value of {} (at most {max_len} characters), so every value would be masked entirely; keep fewer characters",
                keep_first + keep_last,
                b.column.ty.name
            ),
        ));
    }
    Ok(Arc::new(Mask {
        keep_first,
        keep_last,
        with,
    }))
}

impl Transform for Mask {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        let count = value.chars().count();
        let (first, last) = if self.keep_first + self.keep_last >= count {
            (0, 0)
        } else {
            (self.keep_first, self.keep_last)
        };
        for (i, c) in value.chars().enumerate() {
            if i < first || i >= count - last || !c.is_alphanumeric() {
                out.push(c);
            } else {
                out.push(self.with);
            }
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
    use crate::transform::RuleSpec;

    #[test]
    fn masks_keeping_ends_and_separators() {
        assert_eq!(
            fake_with(
                SECRET,
                "{ transform: mask, keep_last: 4 }",
                "4111-1111-1111-1234"
            ),
            "****-****-****-1234"
        );
        assert_eq!(
            fake_with(
                SECRET,
                "{ transform: mask, keep_first: 1, char: X }",
                "jane@example.com"
            ),
            "jXXX@XXXXXXX.XXX"
        );
        assert_eq!(fake_with(SECRET, "mask", "Zoë Ünal"), "*** ****");
        assert_eq!(
            fake_with(SECRET, "{ transform: mask, char: '#' }", "東京 1"),
            "## #"
        );
        assert_eq!(fake_with(SECRET, "mask", ""), "");
    }

    #[test]
    fn short_values_are_masked_entirely() {
        assert_eq!(
            fake_with(
                SECRET,
                "{ transform: mask, keep_first: 2, keep_last: 2 }",
                "1234"
            ),
            "****"
        );
        assert_eq!(
            fake_with(
                SECRET,
                "{ transform: mask, keep_first: 2, keep_last: 2 }",
                "12345"
            ),
            "12*45"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            bind_err(&spec("{ transform: mask, char: '**' }"), &text_col()),
            "`mask`: parameter `char` must be a single character (got `**`)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: mask, keep_last: -1 }"), &text_col()),
            "`mask`: parameter `keep_last` must be a whole number from 0 to 10000 (got -1)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: mask, unique: true }"), &text_col()),
            "`mask`: parameter `unique` cannot be true for `mask`: it keeps parts of the value, so distinct values can get the same mask"
        );
        assert_eq!(
            bind_err(&spec("{ transform: mask, keep: 1 }"), &text_col()),
            "`mask` takes no parameter `keep` (it takes: char, keep_first, keep_last, locale, unique)"
        );
        let date = ty("date", TypeKind::Date);
        assert_eq!(
            bind_err(&RuleSpec::named("mask"), &col(&date)),
            "`mask` does not fit column type date (it takes text types (text, varchar, char, citext) and arrays of them)"
        );
    }

    /// Kept ends that cover the longest value the type holds are refused at load time:
    /// `char(n)`, `varchar(n)` and arrays of them; shorter keeps and unbounded types bind.
    #[test]
    fn keeps_covering_the_type_are_refused() {
        let bounded = |name: &str, n: usize, array: bool| {
            let mut t = ty(name, TypeKind::Text);
            t.max_len = Some(n);
            t.array = array;
            t
        };
        let char4 = bounded("character(4)", 4, false);
        assert_eq!(
            bind_err(&spec("{ transform: mask, keep_last: 4 }"), &col(&char4)),
            "`mask`: parameter `keep_last` leaves nothing to mask: keep_first + keep_last = 4 covers every value of character(4) (at most 4 characters), so every value would be masked entirely; keep fewer characters"
        );
        let varchar6 = bounded("character varying(6)", 6, false);
        assert!(
            bind_err(
                &spec("{ transform: mask, keep_first: 3, keep_last: 3 }"),
                &col(&varchar6)
            )
            .contains("keep_first + keep_last = 6")
        );
        assert!(
            bind_err(&spec("{ transform: mask, keep_first: 9 }"), &col(&varchar6))
                .contains("parameter `keep_first` leaves nothing to mask")
        );
        let array = bounded("character(2)[]", 2, true);
        assert!(
            bind_err(&spec("{ transform: mask, keep_last: 2 }"), &col(&array))
                .contains("leaves nothing to mask")
        );
        assert!(
            bind_on(
                &spec("{ transform: mask, keep_first: 2, keep_last: 3 }"),
                &varchar6,
                false
            )
            .is_ok()
        );
        assert!(
            bind_on(
                &spec("{ transform: mask, keep_last: 400 }"),
                text_col().ty,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn arrays_and_null() {
        let arr = array_of("text[]", TypeKind::Text);
        let t = bind_on(&spec("{ transform: mask, keep_first: 1 }"), &arr, false).unwrap();
        assert_eq!(
            apply(&*t, r#"{abc,NULL,"d e"}"#).unwrap(),
            r#"{a**,NULL,"d *"}"#
        );
        let mut out = String::new();
        assert_eq!(
            t.apply_null(&mut out).unwrap(),
            crate::transform::Output::Null
        );
    }
}
