//! Text helpers shared by the transforms: cutting to a column's length limit, the blank
//! padding of `char(n)`, folding names to ASCII for emails, and checking that a literal the
//! user wrote (`constant`, `choice`) is one PostgreSQL will accept for the column.

use std::sync::Arc;

use super::{Output, Transform, TransformError};
use crate::catalog::{ColumnType, TypeKind};

/// Cuts `s` to at most `max` characters (never inside a character). `varchar(n)` and
/// `char(n)` count characters, so this is exactly what keeps a value loadable.
pub(crate) fn truncate_chars(s: &mut String, max: usize) {
    if let Some((end, _)) = s.char_indices().nth(max) {
        s.truncate(end);
    }
}

/// True for `char(n)` (bpchar): PostgreSQL prints its values padded with blanks, which carry
/// nothing and must not change the fake.
pub(crate) fn is_blank_padded(ty: &ColumnType) -> bool {
    ty.kind == TypeKind::Text
        && (ty.name.starts_with("character(")
            || ty.name == "character"
            || ty.name == "character[]"
            || ty.name.starts_with("bpchar"))
}

/// Strips the trailing blanks of `char(n)` values before the inner transform sees them, so
/// `'ab  '` in a `char(4)` and `'ab'` in a `text` column get the same fake.
#[derive(Debug)]
pub(crate) struct TrimPadding {
    inner: Arc<dyn Transform>,
}

impl TrimPadding {
    pub fn new(inner: Arc<dyn Transform>) -> TrimPadding {
        TrimPadding { inner }
    }
}

impl Transform for TrimPadding {
    fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
        self.inner.apply(value.trim_end_matches(' '), out)
    }

    fn apply_null(&self, out: &mut String) -> Result<Output, TransformError> {
        self.inner.apply_null(out)
    }
}

/// Appends `name` lower-cased and folded to ASCII letters and digits (accents dropped,
/// `ß` → `ss`, `æ` → `ae`; anything else left out), for email local parts and usernames.
pub(crate) fn push_ascii_folded(name: &str, out: &mut String) {
    for c in name.chars() {
        let c = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            c.to_lowercase().next().unwrap_or(c)
        };
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => out.push('a'),
            'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => out.push('c'),
            'ď' | 'đ' => out.push('d'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => out.push('e'),
            'ğ' | 'ģ' => out.push('g'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => out.push('i'),
            'ķ' => out.push('k'),
            'ł' | 'ĺ' | 'ļ' | 'ľ' => out.push('l'),
            'ñ' | 'ń' | 'ň' | 'ņ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'ŕ' | 'ř' => out.push('r'),
            'ś' | 'š' | 'ş' | 'ș' => out.push('s'),
            'ť' | 'ţ' | 'ț' => out.push('t'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ð' => out.push('d'),
            _ => {}
        }
    }
}

/// Appends `bytes` in lower-case hex (a table lookup: `write!` per byte is the slowest part
/// of `hash` otherwise).
pub(crate) fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

/// Checks that `text` is a value PostgreSQL accepts for a column of `ty`'s element kind, as
/// far as that can be known without a server. Returns a message for a BadParam.
pub(crate) fn check_literal(ty: &ColumnType, text: &str) -> Result<(), String> {
    let ok = match &ty.kind {
        TypeKind::Text => {
            if let Some(max) = ty.max_len {
                let len = text.chars().count();
                if len > max && !is_blank_padded_excess(ty, text, max) {
                    return Err(format!(
                        "`{text}` is {len} characters, longer than the column's limit of {max}"
                    ));
                }
            }
            true
        }
        TypeKind::Int => text.trim().parse::<i64>().is_ok(),
        TypeKind::Float => {
            let t = text.trim();
            t.parse::<f64>().is_ok()
                || ["nan", "infinity", "-infinity", "inf", "-inf"]
                    .contains(&t.to_ascii_lowercase().as_str())
        }
        TypeKind::Numeric => {
            let t = text.trim();
            t.parse::<f64>().is_ok_and(|f| f.is_finite())
                || ["nan", "infinity", "-infinity"].contains(&t.to_ascii_lowercase().as_str())
                || (ty.name == "money" && !t.is_empty())
        }
        TypeKind::Bool => matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "t" | "f" | "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
        ),
        TypeKind::Uuid => super::uuid::parse_uuid(text).is_some(),
        TypeKind::Json | TypeKind::Jsonb => super::json::parse(text).is_ok(),
        TypeKind::Enum => {
            if ty.enum_labels.iter().any(|l| l == text) {
                true
            } else {
                return Err(format!(
                    "`{text}` is not a label of enum {} (labels: {})",
                    ty.name.trim_end_matches("[]"),
                    ty.enum_labels.join(", ")
                ));
            }
        }
        TypeKind::Inet | TypeKind::Cidr => {
            let addr = text.split('/').next().unwrap_or("");
            addr.parse::<std::net::IpAddr>().is_ok()
        }
        // Dates, times, intervals, bytea, tsvector and other types have too many input forms
        // to check here; PostgreSQL checks them when `validate` previews the rule.
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{text}` is not a valid {} value", ty.name))
    }
}

/// `char(n)` accepts longer input when the excess is blanks.
fn is_blank_padded_excess(ty: &ColumnType, text: &str, max: usize) -> bool {
    is_blank_padded(ty) && text.chars().skip(max).all(|c| c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        let mut s = "héllo wörld".to_string();
        truncate_chars(&mut s, 7);
        assert_eq!(s, "héllo w");
        let mut s = "日本語".to_string();
        truncate_chars(&mut s, 2);
        assert_eq!(s, "日本");
        let mut s = "ab".to_string();
        truncate_chars(&mut s, 5);
        assert_eq!(s, "ab");
        truncate_chars(&mut s, 0);
        assert_eq!(s, "");
    }

    #[test]
    fn folds_names_to_ascii() {
        let mut out = String::new();
        for name in [
            "Ángel",
            "Müller-Lüdenscheidt",
            "O'Connor",
            "Strauß",
            "Æsa",
            "山田",
        ] {
            push_ascii_folded(name, &mut out);
            out.push('|');
        }
        assert_eq!(out, "angel|mullerludenscheidt|oconnor|strauss|aesa||");
    }

    #[test]
    fn hex() {
        let mut out = String::new();
        push_hex(&[0x00, 0x0f, 0xa5, 0xff], &mut out);
        assert_eq!(out, "000fa5ff");
    }

    #[test]
    fn blank_padded_types() {
        let mut ty = ColumnType::simple("character(10)", TypeKind::Text);
        assert!(is_blank_padded(&ty));
        ty.name = "character varying(10)".into();
        assert!(!is_blank_padded(&ty));
        ty.name = "character(3)[]".into();
        assert!(is_blank_padded(&ty));
    }

    #[test]
    fn checks_literals() {
        let int = ColumnType::simple("integer", TypeKind::Int);
        assert!(check_literal(&int, "42").is_ok());
        assert_eq!(
            check_literal(&int, "x").unwrap_err(),
            "`x` is not a valid integer value"
        );
        let mut mood = ColumnType::simple("public.mood", TypeKind::Enum);
        mood.enum_labels = vec!["sad".into(), "ok".into()];
        assert!(check_literal(&mood, "ok").is_ok());
        assert_eq!(
            check_literal(&mood, "happy").unwrap_err(),
            "`happy` is not a label of enum public.mood (labels: sad, ok)"
        );
        let mut short = ColumnType::simple("character varying(3)", TypeKind::Text);
        short.max_len = Some(3);
        assert_eq!(
            check_literal(&short, "abcd").unwrap_err(),
            "`abcd` is 4 characters, longer than the column's limit of 3"
        );
        assert!(check_literal(&short, "abç").is_ok());
    }
}
