//! Fake text in a locale, drawn with `fake` from the value's seed: `first_name`, `last_name`,
//! `name`, `phone`, `street_address`, `city`, `postcode`, `country`, `company`, `lorem`.
//!
//! `fake` provides the word lists and most formats; where its data is wrong for a locale
//! (German phone numbers, Japanese cities and postcodes, German and Japanese country lists)
//! [`super::locale`] supplies ours.

use std::sync::Arc;

use fake::Fake;
use fake::faker::address::raw::{BuildingNumber, CityName, CountryName, StreetName};
use fake::faker::company::raw::CompanyName;
use fake::faker::impls::address::CityNameGenFn;
use fake::faker::lorem::raw::Word;
use fake::faker::name::raw::{FirstName, LastName, Name};
use fake::locales::{DE_DE, Data, EN, FR_FR, JA_JP, PT_BR};

use super::locale::{self, Locale, with_locale};
use super::locale_es::Es;
use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::{BindError, Transform, TransformError};

/// Which fake of the family a definition of the registry binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    FirstName,
    LastName,
    Name,
    Phone,
    StreetAddress,
    City,
    Postcode,
    Country,
    Company,
    Lorem,
}

impl Kind {
    /// Why `unique` cannot be promised, for kinds whose output space is small; None when the
    /// space is large enough (or can be widened on retries).
    fn too_few(self) -> Option<&'static str> {
        match self {
            Kind::Phone | Kind::StreetAddress => None,
            Kind::Country => Some("there are only a few hundred countries"),
            Kind::Lorem => Some("lorem text is drawn from a short word list"),
            _ => Some(
                "it draws from lists of a few thousand names at most; use `hash`, `email`, `username` or `uuid` for a unique column",
            ),
        }
    }
}

#[derive(Debug)]
struct FakeText {
    kind: Kind,
    locale: Locale,
    /// `lorem` only: a fixed word count, or None for "as many words as the input".
    words: Option<u32>,
}

/// Binds `kind`; the registry's definition of it says which parameters it takes.
pub(crate) fn bind(b: &Binder<'_>, kind: Kind) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let words = if kind == Kind::Lorem {
        b.whole("words")?.map(|n| n as u32)
    } else {
        None
    };
    let locale = b.locale()?;
    if let Some(why) = kind.too_few() {
        b.refuse_unique(why)?;
    }
    b.fit()?;
    let mut params = vec![("locale", locale.name().to_string())];
    if kind == Kind::Lorem {
        params.push((
            "words",
            words.map_or_else(|| "input".to_string(), |n| n.to_string()),
        ));
    }
    let identity = b.identity(&params);
    let keyed = b.keyed(&identity, kind.too_few().is_none())?;
    Ok(Seeded::arc(
        FakeText {
            kind,
            locale,
            words,
        },
        keyed,
        b.max_len(),
    ))
}

impl Generate for FakeText {
    fn generate(
        &self,
        draw: &mut Draw,
        attempt: u32,
        input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        match self.kind {
            Kind::FirstName => {
                with_locale!(self.locale, l => out.push_str(first_name(l, draw)))
            }
            Kind::LastName => with_locale!(self.locale, l => out.push_str(last_name(l, draw))),
            Kind::Name => with_locale!(self.locale, l => out.push_str(&name(l, draw))),
            Kind::Phone => {
                let format = draw.pick(phone_formats(self.locale));
                draw.numerify(format, out);
            }
            Kind::StreetAddress => street_address(self.locale, draw, attempt, out),
            Kind::City => match self.locale {
                Locale::Fr => out.push_str(draw.pick_str(locale::FR_CITIES)),
                Locale::De => out.push_str(draw.pick_str(locale::DE_CITIES)),
                Locale::PtBr => out.push_str(draw.pick_str(locale::PT_BR_CITIES)),
                Locale::Ja => out.push_str(draw.pick_str(locale::JA_CITIES)),
                other => with_locale!(other, l => out.push_str(&city(l, draw))),
            },
            Kind::Postcode => {
                let format = draw.pick(postcode_formats(self.locale));
                draw.numerify(format, out);
            }
            Kind::Country => match self.locale {
                Locale::De => out.push_str(draw.pick_str(locale::DE_COUNTRIES)),
                Locale::PtBr => out.push_str(draw.pick_str(locale::PT_BR_COUNTRIES)),
                Locale::Ja => out.push_str(draw.pick_str(locale::JA_COUNTRIES)),
                other => with_locale!(other, l => out.push_str(country(l, draw))),
            },
            Kind::Company => match self.locale {
                Locale::Fr => company_from(
                    FR_FR,
                    locale::FR_COMPANY_TPLS,
                    locale::FR_COMPANY_SUFFIXES,
                    draw,
                    out,
                ),
                Locale::De => company_from(
                    DE_DE,
                    locale::DE_COMPANY_TPLS,
                    DE_DE::COMPANY_SUFFIX,
                    draw,
                    out,
                ),
                Locale::PtBr => company_from(
                    PT_BR,
                    locale::PT_BR_COMPANY_TPLS,
                    PT_BR::COMPANY_SUFFIX,
                    draw,
                    out,
                ),
                other => with_locale!(other, l => out.push_str(&company(l, draw))),
            },
            Kind::Lorem => {
                let n = self
                    .words
                    .unwrap_or_else(|| input.split_whitespace().count().clamp(1, 1000) as u32);
                with_locale!(self.locale, l => lorem(l, draw, n, out))
            }
        }
        Ok(())
    }
}

pub(crate) fn first_name<L: Data + Copy>(l: L, draw: &mut Draw) -> &'static str {
    FirstName(l).fake_with_rng::<&str, _>(draw.rng())
}

pub(crate) fn last_name<L: Data + Copy>(l: L, draw: &mut Draw) -> &'static str {
    LastName(l).fake_with_rng::<&str, _>(draw.rng())
}

fn name<L: Data + Copy>(l: L, draw: &mut Draw) -> String {
    Name(l).fake_with_rng::<String, _>(draw.rng())
}

fn city<L: Data + Copy + CityNameGenFn>(l: L, draw: &mut Draw) -> String {
    CityName(l).fake_with_rng::<String, _>(draw.rng())
}

fn country<L: Data + Copy>(l: L, draw: &mut Draw) -> &'static str {
    CountryName(l).fake_with_rng::<&str, _>(draw.rng())
}

fn company<L: Data + Copy>(l: L, draw: &mut Draw) -> String {
    CompanyName(l).fake_with_rng::<String, _>(draw.rng())
}

/// A company name from our templates, with the locale's last names.
fn company_from<L: Data + Copy>(
    l: L,
    templates: &[&'static str],
    suffixes: &[&'static str],
    draw: &mut Draw,
    out: &mut String,
) {
    let template = draw.pick_str(templates);
    let first = last_name(l, draw);
    let second = last_name(l, draw);
    let suffix = draw.pick_str(suffixes);
    out.push_str(
        &template
            .replace("{1}", first)
            .replace("{2}", second)
            .replace("{S}", suffix),
    );
}

fn street_name<L: Data + Copy>(l: L, draw: &mut Draw) -> String {
    StreetName(l).fake_with_rng::<String, _>(draw.rng())
}

fn lorem<L: Data + Copy>(l: L, draw: &mut Draw, words: u32, out: &mut String) {
    for i in 0..words {
        let word = Word(l).fake_with_rng::<&str, _>(draw.rng());
        if i == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(word);
        }
    }
    out.push('.');
}

/// House numbers: the locale's usual range first; on `unique` retries, wider and wider so a
/// clash does not repeat.
fn house_number(draw: &mut Draw, attempt: u32, natural_max: u64) -> u64 {
    if attempt == 0 {
        1 + draw.below(natural_max)
    } else {
        1 + draw.below(natural_max.saturating_mul(10u64.pow(attempt.min(6))))
    }
}

fn street_address(locale: Locale, draw: &mut Draw, attempt: u32, out: &mut String) {
    use std::fmt::Write;
    match locale {
        Locale::En => {
            if attempt == 0 {
                let number = BuildingNumber(EN).fake_with_rng::<String, _>(draw.rng());
                // `fake` may start a number with 0; house numbers do not.
                out.push_str(number.trim_start_matches('0'));
                if out.is_empty() {
                    out.push('1');
                }
            } else {
                let _ = write!(out, "{}", house_number(draw, attempt, 99_999));
            }
            out.push(' ');
            out.push_str(&street_name(EN, draw));
        }
        Locale::Fr => {
            let n = house_number(draw, attempt, 199);
            let _ = write!(out, "{n}, {}", street_name(FR_FR, draw));
        }
        Locale::De => {
            // German streets are one word: "Schröderstraße", "Kuhnallee".
            let mut street = last_name(DE_DE, draw).to_string();
            street.push_str(draw.pick_str(DE_DE::ADDRESS_STREET_SUFFIX));
            let n = house_number(draw, attempt, 199);
            let _ = write!(out, "{street} {n}");
        }
        Locale::Es => {
            let street = street_name(Es, draw);
            let n = house_number(draw, attempt, 199);
            let _ = write!(out, "{street}, {n}");
        }
        Locale::PtBr => {
            let street = street_name(PT_BR, draw);
            let n = house_number(draw, attempt, 2999);
            let _ = write!(out, "{street}, {n}");
        }
        Locale::Ja => {
            // 〇〇町 chōme-ban-gō, the usual shape of a Japanese street address.
            let town = last_name(JA_JP, draw);
            let chome = 1 + draw.below(9);
            let ban = house_number(draw, attempt, 30);
            let go = 1 + draw.below(20);
            let _ = write!(out, "{town}町{chome}-{ban}-{go}");
        }
    }
}

fn phone_formats(locale: Locale) -> &'static [&'static str] {
    match locale {
        Locale::En => EN::PHONE_CELL_NUMBER_FORMATS,
        Locale::Fr => FR_FR::PHONE_CELL_NUMBER_FORMATS,
        Locale::De => locale::DE_PHONES,
        Locale::Es => Es::PHONE_CELL_NUMBER_FORMATS,
        Locale::PtBr => PT_BR::PHONE_CELL_NUMBER_FORMATS,
        Locale::Ja => JA_JP::PHONE_CELL_NUMBER_FORMATS,
    }
}

fn postcode_formats(locale: Locale) -> &'static [&'static str] {
    match locale {
        Locale::En => EN::ADDRESS_POSTCODE_FORMATS,
        Locale::Fr => FR_FR::ADDRESS_POSTCODE_FORMATS,
        Locale::De => DE_DE::ADDRESS_ZIP_FORMATS,
        Locale::Es => Es::ADDRESS_POSTCODE_FORMATS,
        Locale::PtBr => PT_BR::ADDRESS_POSTCODE_FORMATS,
        Locale::Ja => locale::JA_POSTCODES,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        SECRET, apply, array_of, bind_err, bind_on, catalogue, col, fake_with, spec, text_col, ty,
    };
    use super::*;
    use crate::catalog::TypeKind;
    use crate::transform::{Catalogue, LOCALES, RuleSpec};

    const KINDS: &[&str] = &[
        "first_name",
        "last_name",
        "name",
        "phone",
        "street_address",
        "city",
        "postcode",
        "country",
        "company",
        "lorem",
    ];

    #[test]
    fn every_kind_in_every_locale_gives_non_empty_text() {
        for kind in KINDS {
            for locale in LOCALES {
                let rule = format!("{{ transform: {kind}, locale: {locale} }}");
                for input in ["Jane", "Ünïcödé ñame", "山田太郎", "a b c d"] {
                    let out = fake_with(SECRET, &rule, input);
                    assert!(!out.trim().is_empty(), "{kind}/{locale}: empty");
                    assert_ne!(out, input);
                    assert_eq!(out, fake_with(SECRET, &rule, input), "{kind}/{locale}");
                }
            }
        }
    }

    #[test]
    fn null_and_empty_stay() {
        let cat = catalogue(SECRET);
        for kind in KINDS {
            let t = cat.bind(&RuleSpec::named(kind), &text_col()).unwrap();
            let mut out = String::new();
            assert_eq!(
                t.apply_null(&mut out).unwrap(),
                crate::transform::Output::Null
            );
            assert_eq!(apply(&*t, ""), Some(String::new()), "{kind}");
        }
    }

    #[test]
    fn type_fit() {
        let int = ty("integer", TypeKind::Int);
        for kind in KINDS {
            assert_eq!(
                bind_err(&RuleSpec::named(kind), &col(&int)),
                format!(
                    "`{kind}` does not fit column type integer (it takes text types (text, varchar, char, citext) and arrays of them)"
                )
            );
        }
    }

    #[test]
    fn arrays_element_by_element() {
        let arr = array_of("text[]", TypeKind::Text);
        let t = bind_on(&RuleSpec::named("first_name"), &arr, false).unwrap();
        let single = bind_on(
            &RuleSpec::named("first_name"),
            &ty("text", TypeKind::Text),
            false,
        )
        .unwrap();
        let out = apply(&*t, r#"{Ann,NULL,"Bob Jr"}"#).unwrap();
        let expected = format!(
            "{{{},NULL,{}}}",
            quote(&apply(&*single, "Ann").unwrap()),
            quote(&apply(&*single, "Bob Jr").unwrap())
        );
        assert_eq!(out, expected);
    }

    fn quote(s: &str) -> String {
        let mut out = String::new();
        crate::transform::array::push_element(s, &mut out);
        out
    }

    #[test]
    fn varchar_limit_cuts_outputs() {
        let mut short = ty("character varying(5)", TypeKind::Text);
        short.max_len = Some(5);
        let t = bind_on(&RuleSpec::named("company"), &short, false).unwrap();
        for input in ["a", "b", "c", "d"] {
            assert!(apply(&*t, input).unwrap().chars().count() <= 5);
        }
    }

    #[test]
    fn char_padding_does_not_change_the_fake() {
        let mut padded = ty("character(10)", TypeKind::Text);
        padded.max_len = Some(10);
        let t = bind_on(&RuleSpec::named("last_name"), &padded, false).unwrap();
        let plain = bind_on(
            &RuleSpec::named("last_name"),
            &ty("text", TypeKind::Text),
            false,
        )
        .unwrap();
        let mut expected = apply(&*plain, "Smith").unwrap();
        crate::transform::text::truncate_chars(&mut expected, 10);
        assert_eq!(apply(&*t, "Smith     ").unwrap(), expected);
    }

    #[test]
    fn lorem_words() {
        let out = fake_with(
            SECRET,
            "{ transform: lorem, words: 3 }",
            "anything at all here",
        );
        assert_eq!(out.split(' ').count(), 3, "{out}");
        assert!(out.ends_with('.'));
        let out = fake_with(SECRET, "lorem", "four words in here");
        assert_eq!(out.split(' ').count(), 4, "{out}");
        assert_eq!(
            bind_err(&spec("{ transform: lorem, words: 0 }"), &text_col()),
            "`lorem`: parameter `words` must be a whole number from 1 to 1000 (got 0)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: lorem, words: -2 }"), &text_col()),
            "`lorem`: parameter `words` must be a whole number from 1 to 1000 (got -2)"
        );
    }

    #[test]
    fn locale_changes_output_and_is_checked() {
        let en = fake_with(SECRET, "{ transform: name, locale: en }", "x");
        let ja = fake_with(SECRET, "{ transform: name, locale: ja }", "x");
        assert_ne!(en, ja);
        assert!(!ja.is_ascii());
        // Aliases are the same locale, so the same identity.
        assert_eq!(
            ja,
            fake_with(SECRET, "{ transform: name, locale: ja_JP }", "x")
        );
        assert_eq!(
            bind_err(&spec("{ transform: name, locale: xx }"), &text_col()),
            "`name`: parameter `locale` `xx` is not a supported locale (supported: en, fr, de, es, pt_br, ja)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: name, locale: 3 }"), &text_col()),
            "`name`: parameter `locale` must be a locale name (got 3)"
        );
    }

    #[test]
    fn default_locale_comes_from_the_catalogue() {
        let fr = Catalogue::new(&crate::secret::Secret::new(SECRET), "fr");
        let t = fr.bind(&RuleSpec::named("city"), &text_col()).unwrap();
        let explicit = fake_with(SECRET, "{ transform: city, locale: fr }", "Paris");
        assert_eq!(apply(&*t, "Paris").unwrap(), explicit);
        let bad = Catalogue::new(&crate::secret::Secret::new(SECRET), "klingon");
        assert_eq!(
            bad.bind(&RuleSpec::named("city"), &text_col())
                .unwrap_err()
                .to_string(),
            "`city`: parameter `locale` `klingon` is not a supported locale (supported: en, fr, de, es, pt_br, ja) (the default, from the config's `locale`)"
        );
    }

    #[test]
    fn unique_refused_for_small_spaces() {
        for kind in [
            "first_name",
            "last_name",
            "name",
            "city",
            "postcode",
            "company",
        ] {
            assert_eq!(
                bind_err(
                    &spec(&format!("{{ transform: {kind}, unique: true }}")),
                    &text_col()
                ),
                format!(
                    "`{kind}`: parameter `unique` cannot be true for `{kind}`: it draws from lists of a few thousand names at most; use `hash`, `email`, `username` or `uuid` for a unique column"
                )
            );
        }
        assert_eq!(
            bind_err(&spec("{ transform: country, unique: true }"), &text_col()),
            "`country`: parameter `unique` cannot be true for `country`: there are only a few hundred countries"
        );
        assert_eq!(
            bind_err(&spec("{ transform: phone, unique: yes }"), &text_col()),
            "`phone`: parameter `unique` must be true or false (got `yes`)"
        );
        assert!(
            bind_on(
                &spec("{ transform: phone, unique: true }"),
                &ty("text", TypeKind::Text),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_param_lists_accepted_ones() {
        assert_eq!(
            bind_err(&spec("{ transform: first_name, gender: f }"), &text_col()),
            "`first_name` takes no parameter `gender` (it takes: locale, unique)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: lorem, word: 3 }"), &text_col()),
            "`lorem` takes no parameter `word` (it takes: locale, unique, words)"
        );
    }

    #[test]
    fn spanish_uses_our_data() {
        let city = fake_with(SECRET, "{ transform: city, locale: es }", "x");
        assert!(
            crate::transform::locale_es::ES_CITIES.contains(&city.as_str()),
            "{city}"
        );
        let first = fake_with(SECRET, "{ transform: first_name, locale: es }", "x");
        assert!(
            <Es as Data>::NAME_FIRST_NAME.contains(&first.as_str()),
            "{first}"
        );
    }

    #[test]
    fn phones_have_digits_only_where_formats_say() {
        for locale in LOCALES {
            let rule = format!("{{ transform: phone, locale: {locale} }}");
            let out = fake_with(SECRET, &rule, "+1 555 0100");
            assert!(
                out.chars().filter(|c| c.is_ascii_digit()).count() >= 8,
                "{locale}: {out}"
            );
            assert!(
                out.chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c)),
                "{locale}: {out}"
            );
        }
    }
}
