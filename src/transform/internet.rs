//! `email` and `username`: ASCII identities built from a locale's names and a number drawn
//! from the seed.
//!
//! The number is what makes the output space large (names alone collide constantly: a million
//! users share a few million first.last pairs), so that `unique: true` rarely has to step in;
//! when it does, retries draw longer numbers. Emails use the reserved `example.com`,
//! `example.net` and `example.org` domains unless the rule names one, so staging can never
//! mail a real person.

use std::fmt::Write;
use std::sync::Arc;

use fake::locales::{DE_DE, EN, FR_FR, PT_BR};

use super::fake_text::{first_name, last_name};
use super::locale::{self, Locale};
use super::locale_es::Es;
use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::text::push_ascii_folded;
use super::{BindError, Transform, TransformError};

const RESERVED_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

#[derive(Debug)]
struct Email {
    locale: Locale,
    /// The rule's domain, or None for the reserved ones.
    domain: Option<String>,
    max_len: Option<usize>,
}

#[derive(Debug)]
struct Username {
    locale: Locale,
}

pub(crate) fn bind_email(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    bind(b, true)
}

pub(crate) fn bind_username(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    bind(b, false)
}

fn bind(b: &Binder<'_>, is_email: bool) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let domain = if is_email {
        match b.string("domain")? {
            Some(d) => Some(check_domain(b, &d)?),
            None => None,
        }
    } else {
        None
    };
    let locale = b.locale()?;
    b.unique()?;
    b.fit()?;
    let mut params = vec![];
    if is_email {
        params.push(("domain", domain.clone().unwrap_or_default()));
    }
    params.push(("locale", locale.name().to_string()));
    let identity = b.identity(&params);
    let keyed = b.keyed(&identity, true)?;
    if is_email {
        Ok(Seeded::arc(
            Email {
                locale,
                domain,
                max_len: b.max_len(),
            },
            keyed,
            b.max_len(),
        ))
    } else {
        Ok(Seeded::arc(Username { locale }, keyed, b.max_len()))
    }
}

fn check_domain(b: &Binder<'_>, domain: &str) -> Result<String, BindError> {
    let domain = domain.trim().trim_start_matches('@');
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    if valid {
        Ok(domain.to_ascii_lowercase())
    } else {
        Err(b.bad(
            "domain",
            format!("`{domain}` is not a domain name (write e.g. `example.com`)"),
        ))
    }
}

/// Appends an ASCII first and last name of the locale (romanized for Japanese), each folded
/// to lower-case letters and digits.
fn ascii_names(locale: Locale, draw: &mut Draw, first: &mut String, last: &mut String) {
    match locale {
        Locale::Ja => {
            first.push_str(draw.pick_str(locale::JA_ROMAJI_FIRST));
            last.push_str(draw.pick_str(locale::JA_ROMAJI_LAST));
        }
        Locale::En => push_names(EN, draw, first, last),
        Locale::Fr => push_names(FR_FR, draw, first, last),
        Locale::De => push_names(DE_DE, draw, first, last),
        Locale::Es => push_names(Es, draw, first, last),
        Locale::PtBr => push_names(PT_BR, draw, first, last),
    }
    // A name with no Latin letter at all folds to nothing: fall back to English names.
    if first.is_empty() {
        push_ascii_folded(first_name(EN, draw), first);
    }
    if last.is_empty() {
        push_ascii_folded(last_name(EN, draw), last);
    }
}

fn push_names<L: fake::locales::Data + Copy>(
    l: L,
    draw: &mut Draw,
    first: &mut String,
    last: &mut String,
) {
    push_ascii_folded(first_name(l, draw), first);
    push_ascii_folded(last_name(l, draw), last);
}

/// The number that widens the space: up to `digits` digits naturally, one more per `unique`
/// retry (capped at 12).
fn number(draw: &mut Draw, digits: u32, attempt: u32) -> u64 {
    draw.below(10u64.pow((digits + attempt).min(12)))
}

/// A local part: one of a few usual shapes of name plus number. The shape with only an
/// initial has far fewer names, so it gets a longer number: every shape then has about the
/// same room, and clashes stay rare (a few per million values with English names).
fn push_handle(draw: &mut Draw, attempt: u32, first: &str, last: &str, out: &mut String) {
    let shape = draw.below(4);
    let n = number(draw, if shape == 3 { 6 } else { 5 }, attempt);
    match shape {
        0 => {
            let _ = write!(out, "{first}.{last}{n}");
        }
        1 => {
            let _ = write!(out, "{first}{last}{n}");
        }
        2 => {
            let _ = write!(out, "{first}_{last}{n}");
        }
        _ => {
            let initial = first.chars().next().unwrap_or('x');
            let _ = write!(out, "{initial}{last}{n}");
        }
    }
}

impl Generate for Email {
    fn generate(
        &self,
        draw: &mut Draw,
        attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let mut first = String::new();
        let mut last = String::new();
        ascii_names(self.locale, draw, &mut first, &mut last);
        let domain = match &self.domain {
            Some(d) => d.as_str(),
            None => draw.pick(RESERVED_DOMAINS),
        };
        let mut local = String::new();
        push_handle(draw, attempt, &first, &last, &mut local);
        if let Some(max) = self.max_len {
            // Shorten the name part, never the number or the domain, so a short column still
            // gets a valid and (for `unique`) distinct address. Below that, the plain cut of
            // the seeded instance applies.
            let room = max.saturating_sub(domain.len() + 1);
            if local.len() > room {
                let digits =
                    local.len() - local.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                if room > digits {
                    let keep = room - digits;
                    let number_part = local[local.len() - digits..].to_string();
                    local.truncate(keep);
                    local = local.trim_end_matches(['.', '_']).to_string();
                    local.push_str(&number_part);
                }
            }
        }
        out.push_str(&local);
        out.push('@');
        out.push_str(domain);
        Ok(())
    }
}

impl Generate for Username {
    fn generate(
        &self,
        draw: &mut Draw,
        attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let mut first = String::new();
        let mut last = String::new();
        ascii_names(self.locale, draw, &mut first, &mut last);
        push_handle(draw, attempt, &first, &last, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::tests::{
        SECRET, apply, array_of, bind_err, bind_on, catalogue, col, fake_with, spec, text_col, ty,
    };
    use crate::catalog::TypeKind;
    use crate::transform::{LOCALES, RuleSpec};

    /// A plain check of the address shape: local@domain, ASCII, no blanks.
    pub(crate) fn looks_like_email(s: &str) -> bool {
        let Some((local, domain)) = s.split_once('@') else {
            return false;
        };
        !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && domain.contains('.')
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    }

    #[test]
    fn emails_parse_in_every_locale() {
        for locale in LOCALES {
            let rule = format!("{{ transform: email, locale: {locale} }}");
            for input in ["jane@corp.com", "山田@例え.jp", "ñ@x.es", "x"] {
                let out = fake_with(SECRET, &rule, input);
                assert!(looks_like_email(&out), "{locale}: {out}");
                let domain = out.split('@').nth(1).unwrap();
                assert!(super::RESERVED_DOMAINS.contains(&domain), "{out}");
            }
        }
    }

    #[test]
    fn email_domain_param() {
        let out = fake_with(
            SECRET,
            "{ transform: email, domain: Staging.Test }",
            "a@b.c",
        );
        assert!(out.ends_with("@staging.test"), "{out}");
        assert_eq!(
            bind_err(
                &spec("{ transform: email, domain: 'not a domain' }"),
                &text_col()
            ),
            "`email`: parameter `domain` `not a domain` is not a domain name (write e.g. `example.com`)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: email, domain: 3 }"), &text_col()),
            "`email`: parameter `domain` must be a string"
        );
        assert_eq!(
            bind_err(&spec("{ transform: email, domian: x.com }"), &text_col()),
            "`email` takes no parameter `domian` (it takes: domain, locale, unique)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: username, domain: x.com }"), &text_col()),
            "`username` takes no parameter `domain` (it takes: locale, unique)"
        );
    }

    #[test]
    fn email_type_fit_null_empty_arrays() {
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("email"), &col(&int)),
            "`email` does not fit column type integer (it takes text types (text, varchar, char, citext) and arrays of them)"
        );
        let cat = catalogue(SECRET);
        let t = cat.bind(&RuleSpec::named("email"), &text_col()).unwrap();
        assert_eq!(apply(&*t, ""), Some(String::new()));
        let mut out = String::new();
        assert_eq!(
            t.apply_null(&mut out).unwrap(),
            crate::transform::Output::Null
        );
        let arr = array_of("character varying(200)[]", TypeKind::Text);
        let t = bind_on(&RuleSpec::named("email"), &arr, false).unwrap();
        let out = apply(&*t, "{a@x.com,NULL,b@y.org}").unwrap();
        let inner = out.trim_start_matches('{').trim_end_matches('}');
        let parts: Vec<&str> = inner.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert!(looks_like_email(parts[0]) && parts[1] == "NULL" && looks_like_email(parts[2]));
    }

    #[test]
    fn short_columns_keep_valid_addresses() {
        let mut short = ty("character varying(24)", TypeKind::Text);
        short.max_len = Some(24);
        let t = bind_on(&RuleSpec::named("email"), &short, false).unwrap();
        for i in 0..200 {
            let out = apply(&*t, &format!("user{i}@corp.com")).unwrap();
            assert!(out.chars().count() <= 24, "{out}");
            assert!(looks_like_email(&out), "{out}");
        }
    }

    #[test]
    fn usernames_are_ascii_handles() {
        for locale in LOCALES {
            let rule = format!("{{ transform: username, locale: {locale} }}");
            let out = fake_with(SECRET, &rule, "jdoe");
            assert!(
                out.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_'),
                "{locale}: {out}"
            );
        }
    }

    #[test]
    fn unique_emails_in_a_small_space_stay_distinct() {
        // A 20-character column squeezes the name part: many natural clashes for the
        // registry to resolve.
        let mut short = ty("character varying(20)", TypeKind::Text);
        short.max_len = Some(20);
        let cat = catalogue(SECRET);
        let t = cat
            .bind(&spec("{ transform: email, unique: true }"), &col(&short))
            .unwrap();
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let out = apply(&*t, &format!("u{i}")).unwrap();
            assert!(seen.insert(out), "duplicate output");
        }
        assert_eq!(cat.unique_stats().values, 20_000);
    }

    #[test]
    fn unique_does_not_change_outputs_without_clashes() {
        // users.email { email, unique: true } and orders.customer_email: email.
        let cat = catalogue(SECRET);
        let unique = cat
            .bind(&spec("{ transform: email, unique: true }"), &text_col())
            .unwrap();
        let plain = cat.bind(&RuleSpec::named("email"), &text_col()).unwrap();
        let other_run = catalogue(SECRET)
            .bind(&RuleSpec::named("email"), &text_col())
            .unwrap();
        for i in 0..2000 {
            let v = format!("person{i}@corp.example");
            let u = apply(&*unique, &v).unwrap();
            assert_eq!(apply(&*plain, &v).unwrap(), u);
            assert_eq!(apply(&*other_run, &v).unwrap(), u);
        }
    }
}
