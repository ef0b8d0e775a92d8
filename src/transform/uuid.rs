//! `uuid`: a version-4-shaped UUID made of the value's seed, on `uuid` and text columns. 122
//! drawn bits: distinct inputs practically never clash, and `unique` makes sure.

use std::sync::Arc;

use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::text::push_hex;
use super::{BindError, Transform, TransformError};

#[derive(Debug)]
struct Uuid;

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.unique()?;
    b.fit()?;
    let keyed = b.keyed(&b.identity(&[]), true)?;
    Ok(Seeded::arc(Uuid, keyed, b.max_len()))
}

impl Generate for Uuid {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&draw.seed()[16..32]);
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            push_hex(&[*byte], out);
        }
        Ok(())
    }
}

/// The 16 bytes of a UUID in any form PostgreSQL's `uuid_in` accepts (hyphens anywhere between
/// digit pairs, optional braces), or None.
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let hex: Vec<u8> = t
        .bytes()
        .filter(|&b| b != b'-')
        .map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect::<Option<Vec<u8>>>()?;
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = pair[0] << 4 | pair[1];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SECRET, apply, array_of, bind_err, bind_on, col, fake_with, ty};
    use super::*;
    use crate::catalog::TypeKind;
    use crate::transform::RuleSpec;

    #[test]
    fn uuids_parse_and_are_v4() {
        for i in 0..200 {
            let out = fake_with(
                SECRET,
                "uuid",
                &format!("{i:08}-0000-4000-8000-000000000000"),
            );
            let bytes = parse_uuid(&out).unwrap_or_else(|| panic!("{out}"));
            assert_eq!(out.len(), 36);
            assert_eq!(bytes[6] >> 4, 4);
            assert_eq!(bytes[8] >> 6, 2);
            assert_eq!(out, out.to_lowercase());
        }
    }

    #[test]
    fn parses_uuid_forms() {
        assert!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_some());
        assert!(parse_uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11}").is_some());
        assert!(parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").is_some());
        assert!(parse_uuid("a0eebc99").is_none());
        assert!(parse_uuid("g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_none());
    }

    #[test]
    fn type_fit_null_and_arrays() {
        let uuid = ty("uuid", TypeKind::Uuid);
        let t = bind_on(&RuleSpec::named("uuid"), &uuid, true).unwrap();
        let mut out = String::new();
        assert_eq!(
            t.apply_null(&mut out).unwrap(),
            crate::transform::Output::Null
        );
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("uuid"), &col(&int)),
            "`uuid` does not fit column type integer (it takes uuid and text types)"
        );
        let arr = array_of("uuid[]", TypeKind::Uuid);
        let t = bind_on(&RuleSpec::named("uuid"), &arr, false).unwrap();
        let out = apply(&*t, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}").unwrap();
        let first = out.trim_start_matches('{').split(',').next().unwrap();
        assert!(
            parse_uuid(first).is_some() && out.ends_with(",NULL}"),
            "{out}"
        );
    }
}
