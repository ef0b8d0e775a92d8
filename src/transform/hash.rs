//! `hash{length}`: the hex of the value's keyed HMAC-SHA256 (its seed), cut to `length` hex
//! digits (1–64, default 64). On `bytea` columns the output is a bytea literal (`\x` and an
//! even number of hex digits).

use std::sync::Arc;

use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::text::push_hex;
use super::{BindError, Transform, TransformError};
use crate::catalog::TypeKind;

/// Below this many hex digits (2³² values) `unique` is refused: retries would run out on
/// tables of ordinary size.
const UNIQUE_MIN_LENGTH: u64 = 8;

#[derive(Debug)]
struct Hash {
    length: usize,
    bytea: bool,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let length = b.whole_or_default("length")?;
    b.check_locale()?;
    if length < UNIQUE_MIN_LENGTH {
        b.refuse_unique(&format!(
            "{length} hex digits are too few distinct values; use a length of at least {UNIQUE_MIN_LENGTH}"
        ))?;
    }
    b.fit()?;
    let bytea = *b.kind() == TypeKind::Bytea;
    // bytea hex takes whole bytes: an odd length is rounded up.
    let length = (if bytea { length + length % 2 } else { length }) as usize;
    let identity = b.identity(&[("length", length.to_string())]);
    let keyed = b.keyed(&identity, length as u64 >= UNIQUE_MIN_LENGTH)?;
    Ok(Seeded::arc(Hash { length, bytea }, keyed, b.max_len()))
}

impl Generate for Hash {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        if self.bytea {
            out.push_str("\\x");
        }
        let length = self.length.min(64);
        // Whole bytes first, then the high digit of the next one for an odd length.
        let seed = draw.seed();
        push_hex(&seed[..length / 2], out);
        if length % 2 == 1 {
            let mut last = String::with_capacity(2);
            push_hex(&seed[length / 2..length / 2 + 1], &mut last);
            out.push_str(&last[..1]);
        }
        Ok(())
    }

    /// A hash is a function of the value, the empty one included.
    fn keeps_empty(&self) -> bool {
        false
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
    fn hex_of_the_requested_length() {
        let full = fake_with(SECRET, "hash", "123-45-6789");
        assert_eq!(full.len(), 64);
        assert!(
            full.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let short = fake_with(SECRET, "{ transform: hash, length: 12 }", "123-45-6789");
        assert_eq!(short.len(), 12);
        assert_ne!(fake_with(SECRET, "hash", ""), "");
        assert_ne!(
            fake_with(SECRET, "hash", "日本"),
            fake_with(SECRET, "hash", "日本語")
        );
    }

    #[test]
    fn bytea_output_is_a_bytea_literal() {
        let bytea = ty("bytea", TypeKind::Bytea);
        let t = bind_on(&spec("{ transform: hash, length: 7 }"), &bytea, false).unwrap();
        let out = apply(&*t, "\\x00ff").unwrap();
        assert!(out.starts_with("\\x"));
        assert_eq!(out.len(), 2 + 8);
    }

    #[test]
    fn errors() {
        assert_eq!(
            bind_err(&spec("{ transform: hash, length: -1 }"), &text_col()),
            "`hash`: parameter `length` must be a whole number from 1 to 64 (got -1)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: hash, length: 65 }"), &text_col()),
            "`hash`: parameter `length` must be a whole number from 1 to 64 (got 65)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: hash, length: '8' }"), &text_col()),
            "`hash`: parameter `length` must be a whole number from 1 to 64 (got `8`)"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: hash, length: 4, unique: true }"),
                &text_col()
            ),
            "`hash`: parameter `unique` cannot be true for `hash`: 4 hex digits are too few distinct values; use a length of at least 8"
        );
        assert_eq!(
            bind_err(&spec("{ transform: hash, size: 4 }"), &text_col()),
            "`hash` takes no parameter `size` (it takes: length, locale, unique)"
        );
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("hash"), &col(&int)),
            "`hash` does not fit column type integer (it takes text types, bytea, and arrays of them)"
        );
    }

    #[test]
    fn arrays_and_null() {
        let arr = array_of("text[]", TypeKind::Text);
        let t = bind_on(&spec("{ transform: hash, length: 8 }"), &arr, false).unwrap();
        let out = apply(&*t, r#"{a,NULL,""}"#).unwrap();
        let parts: Vec<&str> = out
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .collect();
        assert_eq!(
            parts[0],
            fake_with(SECRET, "{ transform: hash, length: 8 }", "a")
        );
        assert_eq!(parts[1], "NULL");
        assert_eq!(
            parts[2],
            fake_with(SECRET, "{ transform: hash, length: 8 }", "")
        );
        let mut out = String::new();
        assert_eq!(
            t.apply_null(&mut out).unwrap(),
            crate::transform::Output::Null
        );
    }
}
