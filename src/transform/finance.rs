//! `iban` (a valid ISO 13616 checksum, in the locale's country format) and `credit_card` (a
//! Luhn-valid number with a real network prefix). Both are drawn from the seed and have output
//! spaces far beyond any table, so they take `unique: true`. The check digits come from
//! [`crate::checksum`].

use std::sync::Arc;

use super::locale::Locale;
use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::{BindError, Transform, TransformError};
use crate::checksum;

#[derive(Debug)]
struct Iban {
    country: &'static str,
    /// The BBAN layout: `n` a digit, `a` an upper-case letter, `c` either.
    layout: &'static str,
}

#[derive(Debug)]
struct CreditCard;

pub(crate) fn bind_iban(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    let locale = check(b)?;
    let (country, layout) = iban_format(locale);
    let identity = b.identity(&[("locale", locale.name().to_string())]);
    let keyed = b.keyed(&identity, true)?;
    Ok(Seeded::arc(Iban { country, layout }, keyed, b.max_len()))
}

pub(crate) fn bind_credit_card(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    check(b)?;
    // Card numbers do not depend on the locale: the identity leaves it out, so the same card
    // gets the same fake whatever locale a rule is written with.
    let identity = b.identity(&[]);
    let keyed = b.keyed(&identity, true)?;
    Ok(Seeded::arc(CreditCard, keyed, b.max_len()))
}

/// What binding both checks, in this order: parameters, locale, `unique`, type.
fn check(b: &Binder<'_>) -> Result<Locale, BindError> {
    b.accept()?;
    let locale = b.locale()?;
    b.unique()?;
    b.fit()?;
    Ok(locale)
}

/// The locale's IBAN country and BBAN layout. Japan has no IBAN: it gets the British format.
fn iban_format(locale: Locale) -> (&'static str, &'static str) {
    match locale {
        Locale::En | Locale::Ja => ("GB", "aaaannnnnnnnnnnnnn"),
        Locale::Fr => ("FR", "nnnnnnnnnncccccccccccnn"),
        Locale::De => ("DE", "nnnnnnnnnnnnnnnnnn"),
        Locale::Es => ("ES", "nnnnnnnnnnnnnnnnnnnn"),
        Locale::PtBr => ("BR", "nnnnnnnnnnnnnnnnnnnnnnnac"),
    }
}

impl Generate for Iban {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut bban = String::with_capacity(self.layout.len());
        for slot in self.layout.bytes() {
            let c = match slot {
                b'a' => *draw.pick(LETTERS),
                b'c' => *draw.pick(ALNUM),
                _ => b'0' + draw.below(10) as u8,
            };
            bban.push(c as char);
        }
        // The layout draws only letters and digits, so the check digits always exist.
        let check = checksum::iban_check_digits(self.country, &bban).ok_or_else(|| {
            TransformError::new("an IBAN layout drew a character IBANs cannot hold")
        })?;
        out.push_str(self.country);
        out.push_str(&format!("{check:02}"));
        out.push_str(&bban);
        Ok(())
    }
}

impl Generate for CreditCard {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        _input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        // (prefix, length): Visa, Mastercard (both ranges), American Express, Discover.
        const NETWORKS: &[(&str, usize)] = &[
            ("4", 16),
            ("4", 16),
            ("51", 16),
            ("52", 16),
            ("53", 16),
            ("54", 16),
            ("55", 16),
            ("2221", 16),
            ("34", 15),
            ("37", 15),
            ("6011", 16),
        ];
        let (prefix, len) = *draw.pick(NETWORKS);
        let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        while digits.len() < len - 1 {
            digits.push(draw.below(10) as u8);
        }
        digits.push(checksum::luhn_check_digit(&digits));
        out.extend(digits.iter().map(|d| (b'0' + d) as char));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SECRET, apply, array_of, bind_err, bind_on, col, fake_with, ty};
    use super::*;
    use crate::catalog::TypeKind;
    use crate::transform::{LOCALES, RuleSpec};

    #[test]
    fn ibans_are_valid_in_every_locale() {
        for locale in LOCALES {
            let rule = format!("{{ transform: iban, locale: {locale} }}");
            for i in 0..200 {
                let out = fake_with(SECRET, &rule, &format!("FR76 3000 6000 0112 3456 7890 {i}"));
                assert!(checksum::iban_valid(&out), "{locale}: {out}");
                assert!(
                    out.bytes()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
                    "{out}"
                );
            }
        }
        assert!(fake_with(SECRET, "{ transform: iban, locale: de }", "x").starts_with("DE"));
        assert_eq!(
            fake_with(SECRET, "{ transform: iban, locale: es }", "x").len(),
            24
        );
        assert_eq!(
            fake_with(SECRET, "{ transform: iban, locale: pt_br }", "x").len(),
            29
        );
        assert_eq!(
            fake_with(SECRET, "{ transform: iban, locale: fr }", "x").len(),
            27
        );
    }

    #[test]
    fn cards_are_luhn_valid() {
        for i in 0..500 {
            let out = fake_with(SECRET, "credit_card", &format!("4111-1111-1111-{i:04}"));
            assert!(checksum::luhn_valid(&out), "{out}");
            assert!(out.len() == 15 || out.len() == 16);
        }
        // The locale is not part of a card's identity.
        assert_eq!(
            fake_with(SECRET, "credit_card", "4111"),
            fake_with(SECRET, "{ transform: credit_card, locale: ja }", "4111")
        );
    }

    #[test]
    fn type_fit_null_empty_arrays() {
        let int = ty("bigint", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("credit_card"), &col(&int)),
            "`credit_card` does not fit column type bigint (it takes text types (text, varchar, char, citext) and arrays of them)"
        );
        assert_eq!(
            bind_err(&RuleSpec::named("iban").with("length", 3), &col(&int)),
            "`iban` takes no parameter `length` (it takes: locale, unique)"
        );
        let t = bind_on(&RuleSpec::named("iban"), &ty("text", TypeKind::Text), false).unwrap();
        assert_eq!(apply(&*t, ""), Some(String::new()));
        let arr = array_of("text[]", TypeKind::Text);
        let t = bind_on(&RuleSpec::named("credit_card"), &arr, false).unwrap();
        let out = apply(&*t, "{4111111111111111,NULL}").unwrap();
        let first = out.trim_start_matches('{').split(',').next().unwrap();
        assert!(checksum::luhn_valid(first), "{out}");
        assert!(out.ends_with(",NULL}"));
    }
}
