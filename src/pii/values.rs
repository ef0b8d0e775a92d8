//! Sampled values that look personal: emails, phone numbers, card numbers (Luhn and issuer
//! prefix), IBANs (mod-97), IPv4/IPv6 addresses and national ids with their checks (US SSN,
//! FR NIR key, DE Steuer-ID check digit, ES DNI/NIE letter, UK NINO prefix rules, BR CPF check
//! digits), as a whole value or inside free text, and inside JSON documents path by path.
//!
//! Nothing here keeps a value: a [`Tally`] holds counts only, so a finding can say "38/40
//! sampled values are email addresses" and nothing more.
//!
//! Checksums separate real identifiers from numbers of the same shape, but one random number
//! in ten passes Luhn. So each checksum detector also counts the values that have its shape:
//! when many have the shape and fewer than half pass, the column holds some other kind of
//! number (order numbers, ids) and the detector is not reported (see [`Tally::suppressed`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use super::Category;

/// A kind of personal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Email,
    Phone,
    Card,
    Iban,
    Ipv4,
    Ipv6,
    UsSsn,
    FrNir,
    DeTaxId,
    EsDni,
    UkNino,
    BrCpf,
}

pub const DETECTORS: [Detector; 12] = [
    Detector::Email,
    Detector::Phone,
    Detector::Card,
    Detector::Iban,
    Detector::Ipv4,
    Detector::Ipv6,
    Detector::UsSsn,
    Detector::FrNir,
    Detector::DeTaxId,
    Detector::EsDni,
    Detector::UkNino,
    Detector::BrCpf,
];

const N: usize = DETECTORS.len();

impl Detector {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn category(self) -> Category {
        match self {
            Detector::Email => Category::Email,
            Detector::Phone => Category::Phone,
            Detector::Card => Category::CardNumber,
            Detector::Iban => Category::Iban,
            Detector::Ipv4 | Detector::Ipv6 => Category::IpAddress,
            Detector::UsSsn
            | Detector::FrNir
            | Detector::DeTaxId
            | Detector::EsDni
            | Detector::UkNino
            | Detector::BrCpf => Category::NationalId,
        }
    }

    /// What the values are, in the plural, for evidence lines.
    pub fn plural(self) -> &'static str {
        match self {
            Detector::Email => "email addresses",
            Detector::Phone => "phone numbers",
            Detector::Card => "card numbers (Luhn-valid)",
            Detector::Iban => "IBANs (mod-97 valid)",
            Detector::Ipv4 => "IPv4 addresses",
            Detector::Ipv6 => "IPv6 addresses",
            Detector::UsSsn => "US social security numbers",
            Detector::FrNir => "French NIR numbers (key valid)",
            Detector::DeTaxId => "German tax ids (check digit valid)",
            Detector::EsDni => "Spanish DNI/NIE numbers (letter valid)",
            Detector::UkNino => "UK national insurance numbers",
            Detector::BrCpf => "Brazilian CPF numbers (check digits valid)",
        }
    }

    /// How often a value this detector accepts really is that kind of data. Phones and
    /// IPv4 addresses have no checksum and share their shape with other numbers.
    pub fn precision(self) -> f32 {
        match self {
            Detector::Email | Detector::Iban => 0.95,
            Detector::FrNir | Detector::EsDni => 0.9,
            Detector::Card | Detector::Ipv6 | Detector::UsSsn => 0.85,
            Detector::UkNino | Detector::BrCpf => 0.85,
            Detector::Ipv4 => 0.8,
            Detector::DeTaxId | Detector::Phone => 0.75,
        }
    }

    /// Detectors whose shape is common among other numbers, checked by a checksum.
    pub fn has_checksum(self) -> bool {
        matches!(
            self,
            Detector::Card
                | Detector::Iban
                | Detector::FrNir
                | Detector::DeTaxId
                | Detector::EsDni
                | Detector::BrCpf
        )
    }

    /// A regular expression that finds candidates in free text. It is also what a proposed
    /// `regex_replace` rule uses, so it leans towards matching too much.
    pub fn pattern(self) -> &'static str {
        match self {
            Detector::Email => r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
            // International and trunk-prefixed shapes (`+44 20 7946 0958`, `(555) 123-4567`,
            // `06 12 34 56 78`), then the North American grouping without a prefix
            // (`743.672.6133`, `1-555-123-4567`, `555 123 4567`); either with an extension.
            Detector::Phone => {
                r"(?:(?:\+|\b0|\()[0-9 ()./-]{6,22}[0-9]|\b(?:1[-. ])?[0-9]{3}[-. ][0-9]{3}[-. ][0-9]{4}\b)(?: ?(?:x|ext\.? ?)[0-9]{1,6}\b)?"
            }
            Detector::Card => r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
            Detector::Iban => r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
            Detector::Ipv4 => r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
            Detector::Ipv6 => r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f.]{1,15}",
            Detector::UsSsn => r"\b[0-9]{3}(?:-[0-9]{2}-| [0-9]{2} )[0-9]{4}\b",
            Detector::FrNir => {
                r"\b[1-478] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b"
            }
            Detector::DeTaxId => r"\b[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}\b",
            Detector::EsDni => r"\b[0-9XYZ][0-9]{7}[ -]?[A-Z]\b",
            Detector::UkNino => r"\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
            Detector::BrCpf => r"\b[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}\b",
        }
    }

    /// Does the whole value have this detector's shape, and does it pass its checks?
    pub fn check(self, value: &str) -> Check {
        match self {
            Detector::Email => Check::plain(is_email(value)),
            Detector::Phone => Check::plain(is_phone(value)),
            Detector::Card => checked(card_digits(value), |d| is_card_digits(&d)),
            Detector::Iban => checked(iban_shape(value), |s| crate::checksum::iban_valid(&s)),
            Detector::Ipv4 => Check::plain(is_ipv4(value)),
            Detector::Ipv6 => Check::plain(is_ipv6(value)),
            Detector::UsSsn => Check::plain(is_us_ssn(value)),
            Detector::FrNir => checked(nir_shape(value), |s| nir_key_valid(&s)),
            Detector::DeTaxId => checked(de_tax_id_shape(value), |d| de_tax_id_valid(&d)),
            Detector::EsDni => checked(dni_shape(value), |s| dni_letter_valid(&s)),
            Detector::UkNino => Check::plain(is_uk_nino(value)),
            Detector::BrCpf => checked(cpf_digits(value), |d| cpf_valid(&d)),
        }
    }

    fn regex(self) -> &'static Regex {
        &PATTERNS[self.index()]
    }
}

/// The result of checking one value against one detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// It has the detector's shape (for checksum detectors; equal to `valid` otherwise).
    pub shape: bool,
    pub valid: bool,
}

impl Check {
    fn plain(valid: bool) -> Check {
        Check {
            shape: valid,
            valid,
        }
    }
}

fn checked<T>(shape: Option<T>, valid: impl FnOnce(T) -> bool) -> Check {
    match shape {
        Some(s) => Check {
            shape: true,
            valid: valid(s),
        },
        None => Check {
            shape: false,
            valid: false,
        },
    }
}

static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    DETECTORS
        .iter()
        .map(|d| {
            // The patterns are constants checked by a unit test; an invalid one would be a bug
            // in this file, not in the data.
            Regex::new(d.pattern()).unwrap_or_else(|e| panic!("pattern of {d:?}: {e}"))
        })
        .collect()
});

/// The North American grouping written without a prefix (`743.672.6133`, `1-555-123-4567`),
/// which prose uses as often as the prefixed shapes: 3-3-4 digits, one separator kind.
static NANP: LazyLock<Regex> = LazyLock::new(|| {
    // A constant checked by a unit test.
    Regex::new(r"^(?:1[-. ])?[0-9]{3}([-. ])[0-9]{3}[-. ][0-9]{4}(?: ?(?:x|ext\.? ?)[0-9]{1,6})?$")
        .unwrap_or_else(|e| panic!("NANP pattern: {e}"))
});

/// Whole values longer than this are free text: only searched inside.
const MAX_WHOLE_LEN: usize = 256;

/// Counts for one column (or one JSON path): how many values were seen and how many each
/// detector matched. Never the values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Non-null, non-blank values seen (array elements for arrays, leaves for JSON paths).
    pub values: u32,
    /// Values that are, as a whole, of each detector's kind.
    pub whole: [u32; N],
    /// Values that contain one inside free text (and are not one as a whole).
    pub within: [u32; N],
    /// Values that have the shape of a checksum detector, valid or not.
    pub shape: [u32; N],
}

impl Tally {
    /// Looks at one value and counts what it is.
    pub fn observe(&mut self, value: &str) {
        let value = value.trim();
        // Blank strings are "no value", like NULL: counting them would dilute the shares.
        if value.is_empty() {
            return;
        }
        self.values += 1;
        let mut found = [false; N];
        if value.len() <= MAX_WHOLE_LEN {
            for d in DETECTORS {
                if d == Detector::Phone {
                    continue;
                }
                let check = d.check(value);
                if check.shape {
                    self.shape[d.index()] += 1;
                }
                found[d.index()] = check.valid;
            }
            // A phone number is what is left: an SSN, an IP or a tax id has the shape of one.
            if !found.iter().any(|&f| f) && is_phone(value) {
                found[Detector::Phone.index()] = true;
            }
        }
        if found.iter().any(|&f| f) {
            for d in DETECTORS {
                if found[d.index()] {
                    self.whole[d.index()] += 1;
                }
            }
            return;
        }
        for d in find_within(value) {
            self.within[d.index()] += 1;
        }
    }

    /// Values a detector matched, as a whole or inside.
    pub fn matched(&self, d: Detector) -> u32 {
        self.whole[d.index()] + self.within[d.index()]
    }

    /// True when the values have a checksum detector's shape but mostly fail its check: they
    /// are other numbers, and the few that pass do so by chance.
    pub fn suppressed(&self, d: Detector) -> bool {
        let shape = self.shape[d.index()];
        d.has_checksum() && shape >= 5 && (self.whole[d.index()] as f32) < 0.5 * shape as f32
    }

    pub fn merge(&mut self, other: &Tally) {
        self.values += other.values;
        for i in 0..N {
            self.whole[i] += other.whole[i];
            self.within[i] += other.within[i];
            self.shape[i] += other.shape[i];
        }
    }
}

/// The detectors with at least one valid match inside `text`.
pub fn find_within(text: &str) -> Vec<Detector> {
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    let mut out = Vec::new();
    // Where the other detectors matched: the digits of an IBAN or a card are no phone.
    let mut taken: Vec<(usize, usize)> = Vec::new();
    // Phone last, so it sees what the others took.
    let order = DETECTORS
        .iter()
        .copied()
        .filter(|d| *d != Detector::Phone)
        .chain([Detector::Phone]);
    for d in order {
        // Cheap filters first: most free text has no `@` and many have no digits.
        let possible = match d {
            Detector::Email => text.contains('@'),
            Detector::Ipv6 => text.contains(':'),
            _ => has_digit,
        };
        if !possible {
            continue;
        }
        let mut hit = false;
        for m in d.regex().find_iter(text) {
            let candidate = m.as_str().trim_end_matches(['.', '-', ' ', '/', '(']);
            let valid = match d {
                // In prose, a phone number needs its prefix: bare digit groups are more often
                // order numbers, amounts or dates.
                Detector::Phone => {
                    (candidate.starts_with(['+', '0', '(']) || NANP.is_match(candidate))
                        && !taken.iter().any(|&(s, e)| m.start() < e && s < m.end())
                        && is_phone(candidate)
                }
                // The pattern may run on into the next capitalized word: try the exact length
                // the country's IBAN has.
                Detector::Iban => iban_in(candidate),
                _ => d.check(candidate).valid,
            };
            if valid {
                hit = true;
                taken.push((m.start(), m.end()));
            }
        }
        if hit {
            out.push(d);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// Emails

/// A plain email address (ASCII, as RFC 5321 mailboxes are in practice).
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let tld = labels[labels.len() - 1];
    labels_ok
        && (tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
            || tld.starts_with("xn--"))
}

// ---------------------------------------------------------------------------------------
// Phones

/// A phone number as people write them: international (`+33 6 12 34 56 78`,
/// `0044 20 7946 0958`), national with a trunk prefix (`06 12 34 56 78`, `030 1234567`), or
/// grouped without one (`(555) 123-4567`, `612 345 678`), with an optional extension.
///
/// Plain digit strings without a prefix are not phones: they are far more often ids.
pub fn is_phone(s: &str) -> bool {
    let s = strip_extension(s.trim());
    if s.is_empty() || s.len() > 32 {
        return false;
    }
    let mut digits = String::new();
    let mut groups: Vec<usize> = Vec::new();
    let mut in_group = false;
    let (mut open, mut close) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '0'..='9' => {
                digits.push(c);
                if in_group {
                    if let Some(last) = groups.last_mut() {
                        *last += 1;
                    }
                } else {
                    groups.push(1);
                    in_group = true;
                }
                continue;
            }
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '/' => {}
            '(' => open += 1,
            ')' => close += 1,
            _ => return false,
        }
        in_group = false;
    }
    if open != close || open > 1 {
        return false;
    }
    let d = digits.len();
    if digits.bytes().all(|b| b == b'0') {
        return false;
    }
    let separated = groups.len() > 1;
    let last_group = groups.last().copied().unwrap_or(0);
    // Phone numbers are never written ending in a lone digit; ISBNs are (`0-306-40615-2`).
    if separated && last_group < 2 {
        return false;
    }
    if s.starts_with('+') {
        (8..=15).contains(&d) && !digits.starts_with('0')
    } else if let Some(rest) = digits.strip_prefix("00") {
        (8..=15).contains(&rest.len()) && !rest.starts_with('0')
    } else if digits.starts_with('0') {
        // Nine digits in two groups is a ZIP+4 (`02134-5678`), not `0 800 123 456`.
        (10..=12).contains(&d) || (d == 9 && groups.len() >= 3)
    } else {
        // Without a prefix, a trailing pair after a dot reads as an amount (`1 234 567.89`);
        // two groups read as a ZIP+4 (`30610-0447`) or a split id far more often than a phone.
        (3..=5).contains(&groups.len()) && (9..=11).contains(&d) && last_group >= 3
    }
}

/// `… ext. 123`, `… x123`, `… #123`.
fn strip_extension(s: &str) -> &str {
    let lower = s.to_ascii_lowercase();
    for marker in [" ext.", " ext", " x", "#", ";ext="] {
        if let Some(pos) = lower.rfind(marker) {
            let tail = lower[pos + marker.len()..].trim();
            if !tail.is_empty() && tail.len() <= 6 && tail.bytes().all(|b| b.is_ascii_digit()) {
                return s[..pos].trim_end();
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Card numbers

/// The digits of a value shaped like a card number: 13 to 19 digits, grouped by spaces or
/// dashes or not at all.
fn card_digits(s: &str) -> Option<String> {
    let s = s.trim();
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut digits = String::with_capacity(19);
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' => {}
            _ => return None,
        }
    }
    (13..=19).contains(&digits.len()).then_some(digits)
}

/// A card number: shaped like one, an issuer prefix with its lengths, and the Luhn check.
pub fn is_card_number(s: &str) -> bool {
    card_digits(s).is_some_and(|d| is_card_digits(&d))
}

fn is_card_digits(digits: &str) -> bool {
    issuer_accepts(digits) && crate::checksum::luhn_valid(digits)
}

/// Issuer prefixes and the lengths their cards have (Visa, Mastercard, Amex, Discover,
/// Diners, JCB, UnionPay, Maestro).
fn issuer_accepts(digits: &str) -> bool {
    let len = digits.len();
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    match digits.as_bytes().first() {
        Some(b'4') => matches!(len, 13 | 16 | 19),
        Some(b'5') => match prefix(2) {
            Some(51..=55) => len == 16,
            Some(50 | 56..=59) => (13..=19).contains(&len),
            _ => false,
        },
        Some(b'2') => matches!(prefix(4), Some(2221..=2720)) && len == 16,
        Some(b'3') => match prefix(2) {
            Some(34 | 37) => len == 15,
            Some(36 | 38 | 39) => (14..=19).contains(&len),
            Some(30) => matches!(prefix(3), Some(300..=305)) && (14..=19).contains(&len),
            Some(35) => matches!(prefix(4), Some(3528..=3589)) && (16..=19).contains(&len),
            _ => false,
        },
        Some(b'6') => (13..=19).contains(&len),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// IBAN

/// IBAN lengths by country (ISO 13616 registry).
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22), ("CY", 28),
    ("CZ", 24), ("DE", 22), ("DK", 18), ("DO", 28), ("EE", 20), ("EG", 29), ("ES", 24),
    ("FI", 18), ("FO", 18), ("FR", 27), ("GB", 22), ("GE", 22), ("GI", 23), ("GL", 18),
    ("GR", 27), ("GT", 28), ("HR", 21), ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23),
    ("IS", 26), ("IT", 27), ("JO", 30), ("KW", 30), ("KZ", 20), ("LB", 28), ("LC", 32),
    ("LI", 21), ("LT", 20), ("LU", 20), ("LV", 21), ("MC", 27), ("MD", 24), ("ME", 22),
    ("MK", 19), ("MR", 27), ("MT", 31), ("MU", 30), ("NL", 18), ("NO", 15), ("PK", 24),
    ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22), ("SA", 24),
    ("SC", 31), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27), ("ST", 25), ("SV", 28),
    ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20),
];

fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, n)| *n)
}

/// The compact form of a value shaped like an IBAN: a known country, two check digits, and
/// the country's length of letters and digits (spaces allowed between groups).
fn iban_shape(s: &str) -> Option<String> {
    let compact: String = s.trim().chars().filter(|c| *c != ' ').collect();
    let compact = compact.to_ascii_uppercase();
    let country = compact.get(..2)?;
    let len = iban_length(country)?;
    let ok = compact.len() == len
        && compact.bytes().skip(2).take(2).all(|b| b.is_ascii_digit())
        && compact.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(compact)
}

/// An IBAN with a valid mod-97 checksum.
pub fn is_iban(s: &str) -> bool {
    iban_shape(s).is_some_and(|c| crate::checksum::iban_valid(&c))
}

/// An IBAN at the start of `candidate` (which may run on into following text).
fn iban_in(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| *c != ' ').collect();
    let Some(len) = compact.get(..2).and_then(iban_length) else {
        return false;
    };
    compact.get(..len).is_some_and(is_iban)
}

// ---------------------------------------------------------------------------------------
// IP addresses

/// An IPv4 address, optionally with a prefix length as PostgreSQL's `inet` prints it.
pub fn is_ipv4(s: &str) -> bool {
    let s = s.trim();
    let addr = match s.split_once('/') {
        Some((a, len)) if len.parse::<u8>().is_ok_and(|l| l <= 32) => a,
        Some(_) => return false,
        None => s,
    };
    Ipv4Addr::from_str(addr).is_ok()
}

/// An IPv6 address, optionally with a zone (`%eth0`) or a prefix length.
pub fn is_ipv6(s: &str) -> bool {
    let s = s.trim();
    if !s.contains(':') {
        return false;
    }
    let s = match s.split_once('/') {
        Some((a, len)) if len.parse::<u8>().is_ok_and(|l| l <= 128) => a,
        Some(_) => return false,
        None => s,
    };
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    Ipv6Addr::from_str(s).is_ok()
}

// ---------------------------------------------------------------------------------------
// National ids

/// A US social security number written `123-45-6789`, with the SSA's never-issued ranges
/// excluded (area 000, 666, 900-999; group 00; serial 0000). Nine bare digits are too common
/// to count.
pub fn is_us_ssn(s: &str) -> bool {
    let b = s.trim().as_bytes();
    // `123-45-6789`, or `123 45 6789`: one separator kind.
    if b.len() != 11 || b[3] != b[6] || !matches!(b[3], b'-' | b' ') {
        return false;
    }
    let part = |r: std::ops::Range<usize>| -> Option<u32> {
        let p = &b[r];
        p.iter()
            .all(u8::is_ascii_digit)
            .then(|| p.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    match (part(0..3), part(4..6), part(7..11)) {
        (Some(area), Some(group), Some(serial)) => {
            area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
        }
        _ => false,
    }
}

/// The compact form of a value shaped like a French NIR (sécurité sociale number): sex
/// (1, 2, or 3/4/7/8 for provisional numbers), year, month, département (2A/2B for Corsica),
/// commune, order, 2-digit key. Spaces allowed.
fn nir_shape(s: &str) -> Option<String> {
    let compact: String = s
        .trim()
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    let b = compact.as_bytes();
    if b.len() != 15 || !b"123478".contains(&b[0]) {
        return None;
    }
    let digits_at = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let dept_ok = digits_at(5..7) || &b[5..7] == b"2A" || &b[5..7] == b"2B";
    if !(digits_at(0..5) && dept_ok && digits_at(7..15)) {
        return None;
    }
    let month: u32 = compact[3..5].parse().ok()?;
    let month_ok = (1..=12).contains(&month) || (20..=42).contains(&month) || month >= 50;
    month_ok.then_some(compact)
}

/// The NIR key: 97 minus the 13-digit number mod 97 (2A counts as 19, 2B as 18).
fn nir_key_valid(compact: &str) -> bool {
    let body = compact[..13].replace("2A", "19").replace("2B", "18");
    match (body.parse::<u64>(), compact[13..].parse::<u64>()) {
        (Ok(n), Ok(key)) => 97 - n % 97 == key,
        _ => false,
    }
}

/// A French NIR with a valid key.
pub fn is_fr_nir(s: &str) -> bool {
    nir_shape(s).is_some_and(|c| nir_key_valid(&c))
}

/// Eleven digits not starting with 0 (spaces allowed): the shape of a German Steuer-ID.
fn de_tax_id_shape(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.chars().all(|c| c.is_ascii_digit() || c == ' ') {
        return None;
    }
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    (digits.len() == 11 && digits[0] != 0).then_some(digits)
}

/// The Steuer-ID rules: in the first ten digits exactly one digit appears twice or three
/// times and no other repeats; the eleventh is the ISO 7064 MOD 11,10 check digit.
fn de_tax_id_valid(d: &[u8]) -> bool {
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[usize::from(x)] += 1;
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if repeated.len() != 1 || repeated[0] > 3 {
        return false;
    }
    let mut product: u32 = 10;
    for &x in &d[..10] {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = match 11 - product {
        10 => 0,
        c => c,
    };
    check == u32::from(d[10])
}

/// A German Steuer-ID (steuerliche Identifikationsnummer) with a valid check digit.
pub fn is_de_tax_id(s: &str) -> bool {
    de_tax_id_shape(s).is_some_and(|d| de_tax_id_valid(&d))
}

/// A value shaped like a Spanish DNI (8 digits and a letter) or NIE (X/Y/Z, 7 digits and a
/// letter), as `12345678Z`, `12345678-Z` or `12345678 Z`; returned as the number and letter.
fn dni_shape(s: &str) -> Option<(u32, char)> {
    let compact: String = s
        .trim()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    if compact.len() != 9 {
        return None;
    }
    let letter = compact.chars().last()?;
    if !letter.is_ascii_uppercase() {
        return None;
    }
    let body = &compact[..8];
    let number = match body.as_bytes()[0] {
        b'X' => format!("0{}", &body[1..]),
        b'Y' => format!("1{}", &body[1..]),
        b'Z' => format!("2{}", &body[1..]),
        _ => body.to_string(),
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, letter))
}

fn dni_letter_valid(&(number, letter): &(u32, char)) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    char::from(LETTERS[(number % 23) as usize]) == letter
}

/// A Spanish DNI or NIE with a valid check letter.
pub fn is_es_dni(s: &str) -> bool {
    dni_shape(s).is_some_and(|d| dni_letter_valid(&d))
}

/// A UK National Insurance number: two prefix letters (D, F, I, Q, U, V never used; O not
/// second; BG, GB, KN, NK, NT, TN, ZZ never allocated), six digits, a suffix A-D.
pub fn is_uk_nino(s: &str) -> bool {
    let compact: String = s
        .trim()
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    let b = compact.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let (first, second) = (b[0], b[1]);
    let letters_ok = first.is_ascii_uppercase()
        && second.is_ascii_uppercase()
        && !b"DFIQUV".contains(&first)
        && !b"DFIOQUV".contains(&second)
        && !["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&&compact[..2]);
    letters_ok && b[2..8].iter().all(u8::is_ascii_digit) && (b'A'..=b'D').contains(&b[8])
}

/// The 11 digits of a value shaped like a Brazilian CPF: `123.456.789-09` or 11 bare digits.
fn cpf_digits(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let b = s.as_bytes();
    let formatted = b.len() == 14 && b[3] == b'.' && b[7] == b'.' && b[11] == b'-';
    let bare = b.len() == 11;
    if !(formatted || bare) {
        return None;
    }
    let digits: Vec<u8> = b
        .iter()
        .filter(|c| **c != b'.' && **c != b'-')
        .map(|c| c.wrapping_sub(b'0'))
        .collect();
    (digits.len() == 11 && digits.iter().all(|d| *d <= 9)).then_some(digits)
}

/// The two CPF check digits (mod 11, weights 10..2 then 11..2); all-equal digits are invalid.
fn cpf_valid(d: &[u8]) -> bool {
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let check = |n: usize| -> u8 {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, x)| u32::from(*x) * (n as u32 + 1 - i as u32))
            .sum();
        match (sum * 10) % 11 {
            10 => 0,
            r => r as u8,
        }
    };
    check(9) == d[9] && check(10) == d[10]
}

/// A Brazilian CPF with valid check digits.
pub fn is_br_cpf(s: &str) -> bool {
    cpf_digits(s).is_some_and(|d| cpf_valid(&d))
}

// ---------------------------------------------------------------------------------------
// JSON

/// Distinct paths kept per column: documents with generated keys would grow without end.
const MAX_PATHS: usize = 1000;
const MAX_DEPTH: usize = 64;

/// What was seen at one JSON path.
#[derive(Debug, Clone, Default)]
pub struct PathTally {
    pub tally: Tally,
    /// The last two object keys on the path (parent, last), for name evidence.
    pub keys: (Option<String>, Option<String>),
    pub strings: u32,
    pub numbers: u32,
    pub bools: u32,
}

/// What was seen in one json/jsonb column: documents, and per path what the leaves were.
#[derive(Debug, Clone, Default)]
pub struct JsonTally {
    pub documents: u32,
    /// Values that did not parse (a `json` column holds valid JSON, so this stays 0).
    pub invalid: u32,
    /// Documents too big to read in a sample (left out, counted).
    pub oversized: u32,
    pub paths: BTreeMap<String, PathTally>,
    /// Paths not recorded after [`MAX_PATHS`].
    pub dropped_paths: u32,
}

impl JsonTally {
    /// Parses one document and tallies its leaves by path.
    pub fn observe(&mut self, text: &str) {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(doc) => {
                self.documents += 1;
                let mut keys = Vec::new();
                self.walk(&doc, &mut String::from("$"), &mut keys, 0);
            }
            Err(_) => self.invalid += 1,
        }
    }

    fn walk(
        &mut self,
        value: &serde_json::Value,
        path: &mut String,
        keys: &mut Vec<String>,
        depth: usize,
    ) {
        use serde_json::Value;
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let len = path.len();
                    let key = path_key(key);
                    push_key(path, &key);
                    let named = key != "*";
                    if named {
                        keys.push(key);
                    }
                    self.walk(child, path, keys, depth + 1);
                    if named {
                        keys.pop();
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                let len = path.len();
                path.push_str("[*]");
                for item in items {
                    self.walk(item, path, keys, depth + 1);
                }
                path.truncate(len);
            }
            leaf => {
                // A document that is a bare string is tallied at `$`.
                let Some(entry) = self.entry(path, keys) else {
                    return;
                };
                match leaf {
                    Value::String(s) => {
                        entry.strings += 1;
                        entry.tally.observe(s);
                    }
                    Value::Number(n) => {
                        entry.numbers += 1;
                        // Card numbers, CPFs and tax ids are sometimes stored as numbers.
                        if n.is_u64() {
                            entry.tally.observe(&n.to_string());
                        } else {
                            entry.tally.values += 1;
                        }
                    }
                    Value::Bool(_) => entry.bools += 1,
                    _ => {}
                }
            }
        }
    }

    fn entry(&mut self, path: &str, keys: &[String]) -> Option<&mut PathTally> {
        if !self.paths.contains_key(path) {
            if self.paths.len() >= MAX_PATHS {
                self.dropped_paths += 1;
                return None;
            }
            let last = keys.last().cloned();
            let parent = keys.len().checked_sub(2).and_then(|i| keys.get(i)).cloned();
            self.paths.insert(
                path.to_string(),
                PathTally {
                    keys: (parent, last),
                    ..PathTally::default()
                },
            );
        }
        self.paths.get_mut(path)
    }
}

/// An object key as it appears in a path. Keys that are data rather than names (numbers,
/// uuids, hashes, and anything that is itself personal, like an email used as a key) become
/// `*`: a path must never carry a value, and a rule must cover every such key.
fn path_key(key: &str) -> String {
    let k = key.trim();
    let hexish = k.len() >= 16 && k.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let numeric = !k.is_empty() && k.chars().all(|c| c.is_ascii_digit());
    // Any `@` in a key is more likely an address than a name.
    let personal = k.contains('@') || DETECTORS.iter().any(|d| d.check(k).valid);
    if k.is_empty() || k.len() > 64 || hexish || numeric || personal {
        "*".to_string()
    } else {
        key.to_string()
    }
}

/// Appends `.key`, or `['key']` when the key is not a plain identifier.
fn push_key(path: &mut String, key: &str) {
    let plain = key == "*"
        || (key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("['");
        for c in key.chars() {
            if c == '\'' || c == '\\' {
                path.push('\\');
            }
            path.push(c);
        }
        path.push_str("']");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        for d in DETECTORS {
            assert!(Regex::new(d.pattern()).is_ok(), "{d:?}");
        }
        assert_eq!(PATTERNS.len(), N);
        for (i, d) in DETECTORS.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "alice@example.com",
            "a.b+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "  bob@example.org ",
            "x@xn--80ak6aa92e.com",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "not an email",
            "a@b",
            "@example.com",
            "alice@",
            "alice@@example.com",
            "alice@example..com",
            "alice@-example.com",
            "a b@example.com",
            ".alice@example.com",
            "alice@example.c0m",
            "alice@example",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for ok in [
            "+33 6 12 34 56 78",
            "+33612345678",
            "+1 (555) 123-4567",
            "+49 30 1234567",
            "+44 20 7946 0958 ext. 123",
            "0044 20 7946 0958",
            "0612345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "030 12345678",
            "030/1234567",
            "0 800 123 456",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "1-555-123-4567",
            "612 345 678",
            "+34 612 345 678",
            "+55 11 91234-5678",
        ] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in [
            "12345678",
            "123456789012",
            "4111111111111111",
            "2024-01-15",
            "192.168.1.1",
            "1 234 567.89",
            "+1",
            "+0 123 456 789",
            "hello",
            "123",
            "12/25",
            "000-000-0000",
            "06 12 34 56 78 or later",
            "0-306-40615-2",
            "978-3-16-148410-0",
            "01.02.2024",
            "550e8400-e29b-41d4-a716-446655440000",
            "75001",
            "30610-0447",
            "02134-5678",
            "12345 6789",
            "1234 567890",
        ] {
            assert!(!is_phone(bad), "{bad}");
        }
    }

    #[test]
    fn luhn_and_cards() {
        assert!(crate::checksum::luhn_valid("79927398713"));
        assert!(!crate::checksum::luhn_valid("79927398710"));
        assert!(!crate::checksum::luhn_valid(""));
        assert!(!crate::checksum::luhn_valid("12a4"));
        for ok in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "4012888888881881",
        ] {
            assert!(is_card_number(ok), "{ok}");
        }
        for bad in [
            "4111111111111112",           // Luhn fails
            "1234567812345670",           // Luhn passes, no issuer starts with 1
            "5105105105105",              // Mastercard prefix, wrong length
            "411111111111",               // too short
            "4111 1111 1111 1111 1111 1", // too long
            "41111111a1111111",
            "",
        ] {
            assert!(!is_card_number(bad), "{bad}");
        }
    }

    #[test]
    fn ibans() {
        for ok in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "ES9121000418450200051332",
            "BE68539007547034",
            "gb82west12345698765432",
        ] {
            assert!(is_iban(ok), "{ok}");
        }
        for bad in [
            "DE89370400440532013001", // checksum
            "GB82WEST1234569876543",  // length for GB
            "XX82WEST12345698765432", // no such country
            "DE8937040044053201300A", // checksum with a letter
            "DE89-3704-0044-0532-0130-00",
            "",
        ] {
            assert!(!is_iban(bad), "{bad}");
        }
    }

    #[test]
    fn ip_addresses() {
        for ok in ["192.168.0.1", "10.0.0.1/8", "8.8.8.8", "255.255.255.255"] {
            assert!(is_ipv4(ok), "{ok}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "a.b.c.d",
            "1.2.3.4/33",
            "",
        ] {
            assert!(!is_ipv4(bad), "{bad}");
        }
        for ok in [
            "2001:db8::1",
            "::1",
            "fe80::1%eth0",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::/32",
            "::ffff:192.0.2.1",
        ] {
            assert!(is_ipv6(ok), "{ok}");
        }
        for bad in [
            "10:30:00",
            "aa:bb:cc:dd:ee:ff",
            "12:34",
            "2001:db8::g",
            "1.2.3.4",
        ] {
            assert!(!is_ipv6(bad), "{bad}");
        }
    }

    #[test]
    fn us_ssn() {
        assert!(is_us_ssn("123-45-6789"));
        assert!(is_us_ssn("899-99-9999"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "123-456-789",
            "12a-45-6789",
        ] {
            assert!(!is_us_ssn(bad), "{bad}");
        }
    }

    /// Builds a NIR with its key, to test on numbers that are not published examples.
    fn with_nir_key(body: &str) -> String {
        let n: u64 = body
            .replace("2A", "19")
            .replace("2B", "18")
            .parse()
            .expect("digits");
        format!("{body}{:02}", 97 - n % 97)
    }

    #[test]
    fn fr_nir() {
        assert!(is_fr_nir("2 55 08 14 168 025 38"));
        assert!(is_fr_nir(&with_nir_key("1850578006084")));
        assert!(is_fr_nir(&with_nir_key("2690299341732")));
        let corsica = with_nir_key("185052A006084");
        assert!(is_fr_nir(&corsica), "{corsica}");
        assert!(!is_fr_nir("2 55 08 14 168 025 39"), "wrong key");
        assert!(!is_fr_nir("5 55 08 14 168 025 38"), "sex digit 5");
        assert!(!is_fr_nir("2 55 13 14 168 025 38"), "month 13");
        assert!(!is_fr_nir("2 55 08 14 168 025"), "too short");
    }

    #[test]
    fn de_tax_id() {
        for ok in [
            "86095742719",
            "47036892816",
            "65929970489",
            "57549285017",
            "25768131411",
        ] {
            assert!(is_de_tax_id(ok), "{ok}");
        }
        assert!(is_de_tax_id("86 095 742 719"));
        for bad in [
            "86095742718", // check digit
            "06095742719", // leading zero
            "12345678903", // no repeated digit
            "11111111116", // one digit far too often
            "8609574271",  // too short
        ] {
            assert!(!is_de_tax_id(bad), "{bad}");
        }
    }

    #[test]
    fn es_dni() {
        for ok in [
            "12345678Z",
            "12345678-Z",
            "12345678 z",
            "X1234567L",
            "Y1234567X",
            "Z1234567R",
        ] {
            assert!(is_es_dni(ok), "{ok}");
        }
        for bad in [
            "12345678A",
            "X1234567A",
            "1234567Z",
            "A1234567L",
            "123456789",
        ] {
            assert!(!is_es_dni(bad), "{bad}");
        }
    }

    #[test]
    fn uk_nino() {
        for ok in ["AB123456C", "AB 12 34 56 C", "ce123456a", "JG103759A"] {
            assert!(is_uk_nino(ok), "{ok}");
        }
        for bad in [
            "QQ123456C", // Q first
            "AO123456C", // O second
            "BG123456A", // never allocated
            "AB123456E", // suffix
            "AB12345C",  // short
            "A1123456C",
        ] {
            assert!(!is_uk_nino(bad), "{bad}");
        }
    }

    #[test]
    fn br_cpf() {
        for ok in ["529.982.247-25", "52998224725", "111.444.777-35"] {
            assert!(is_br_cpf(ok), "{ok}");
        }
        for bad in [
            "529.982.247-24",
            "52998224726",
            "111.111.111-11",
            "529.982.24725",
            "5299822472",
        ] {
            assert!(!is_br_cpf(bad), "{bad}");
        }
    }

    #[test]
    fn finds_values_inside_text() {
        let found = find_within("Call me at +33 6 12 34 56 78 or write to jo@example.com.");
        assert!(found.contains(&Detector::Email), "{found:?}");
        assert!(found.contains(&Detector::Phone), "{found:?}");
        let found = find_within("card 4111 1111 1111 1111 exp 12/27");
        assert_eq!(found, vec![Detector::Card]);
        let found = find_within("pay to DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX");
        assert_eq!(found, vec![Detector::Iban]);
        let found = find_within("ssn 123-45-6789 on file");
        assert_eq!(found, vec![Detector::UsSsn]);
        let found = find_within("from 192.168.10.4 at 10:30:00");
        assert_eq!(found, vec![Detector::Ipv4]);
        assert!(find_within("order 12345 shipped on 2024-01-15, total 1 234.50").is_empty());
        assert!(find_within("nothing to see here").is_empty());
    }

    /// Every common phone shape is found inside prose, and the pattern a proposed
    /// `regex_replace` uses removes all of it (extension included).
    #[test]
    fn phones_inside_text_in_every_common_shape() {
        let pattern = Regex::new(Detector::Phone.pattern()).expect("pattern");
        for phone in [
            "743.672.6133",
            "743-672-6133",
            "743 672 6133",
            "(743) 672-6133",
            "1-743-672-6133",
            "743.672.6133 x1234",
            "(743) 672-6133 x12",
            "+44 20 7946 0958",
            "+33 6 12 34 56 78",
            "0044 20 7946 0958",
            "06 12 34 56 78",
        ] {
            let text = format!("Prefers phone contact: {phone}, evenings");
            assert_eq!(find_within(&text), vec![Detector::Phone], "{phone}");
            let redacted = pattern.replace_all(&text, "[redacted]");
            assert_eq!(
                redacted, "Prefers phone contact: [redacted], evenings",
                "{phone}"
            );
        }
    }

    /// Numbers of other kinds written in prose are not phones: ZIP+4, ISBNs, order numbers,
    /// timestamps, version strings, dates, amounts, SSNs.
    #[test]
    fn look_alikes_inside_text_are_not_phones() {
        for text in [
            "ship to 30610-0447 please",
            "ISBN 978-3-16-148410-0 and 0-306-40615-2",
            "order 20240115-0042 shipped",
            "at 2024-01-15 10:30:00 UTC",
            "upgraded to 12.4.1 then 1.22.333",
            "total 1 234 567.89 EUR",
            "barcode 4006381333931",
            "ssn 123-45-6789 on file",
        ] {
            assert!(
                !find_within(text).contains(&Detector::Phone),
                "{text}: {:?}",
                find_within(text)
            );
        }
        let mut zips = Tally::default();
        for z in ["30610-0447", "90210", "10001-1234", "02134-5678", "73301"] {
            zips.observe(z);
        }
        assert_eq!(zips.matched(Detector::Phone), 0);
    }

    #[test]
    fn ssns_with_spaces() {
        assert!(is_us_ssn("123 45 6789"));
        assert!(!is_us_ssn("123-45 6789"));
        assert_eq!(find_within("ssn 123 45 6789 noted"), vec![Detector::UsSsn]);
    }

    #[test]
    fn tally_counts_whole_and_within() {
        let mut t = Tally::default();
        for v in [
            "a@example.com",
            "b@example.com",
            "write to c@example.com",
            "",
            "  ",
            "plain",
        ] {
            t.observe(v);
        }
        assert_eq!(t.values, 4, "blank strings are not values");
        assert_eq!(t.whole[Detector::Email.index()], 2);
        assert_eq!(t.within[Detector::Email.index()], 1);
        assert_eq!(t.matched(Detector::Email), 3);
    }

    #[test]
    fn ssn_is_not_also_a_phone() {
        let mut t = Tally::default();
        t.observe("123-45-6789");
        assert_eq!(t.whole[Detector::UsSsn.index()], 1);
        assert_eq!(t.whole[Detector::Phone.index()], 0);
    }

    #[test]
    fn random_numbers_of_card_shape_are_suppressed() {
        let mut t = Tally::default();
        // Consecutive 16-digit numbers: one in ten passes Luhn by chance.
        for i in 0..100u64 {
            t.observe(&(4_000_000_000_000_000 + i * 37).to_string());
        }
        let passed = t.whole[Detector::Card.index()];
        assert!(passed > 0 && passed < 30, "{passed}");
        assert!(t.suppressed(Detector::Card));

        let mut cards = Tally::default();
        for c in ["4111111111111111", "5555555555554444", "378282246310005"]
            .iter()
            .cycle()
            .take(30)
        {
            cards.observe(c);
        }
        assert_eq!(cards.whole[Detector::Card.index()], 30);
        assert!(!cards.suppressed(Detector::Card));
    }

    #[test]
    fn json_paths() {
        let mut j = JsonTally::default();
        j.observe(r#"{"contact": {"email": "a@example.com", "phone": "+33 6 12 34 56 78"}, "plan": "pro", "tags": ["x", "y@example.com"], "n": 3}"#);
        j.observe(r#"{"contact": {"email": "b@example.com"}, "items": [{"name": "Widget"}], "weird key": "c@example.com"}"#);
        j.observe("not json");
        j.observe(r#""d@example.com""#);
        assert_eq!(j.documents, 3);
        assert_eq!(j.paths["$"].tally.whole[Detector::Email.index()], 1);
        assert_eq!(j.invalid, 1);
        let email = &j.paths["$.contact.email"];
        assert_eq!(email.tally.values, 2);
        assert_eq!(email.tally.whole[Detector::Email.index()], 2);
        assert_eq!(email.keys, (Some("contact".into()), Some("email".into())));
        assert_eq!(
            j.paths["$.contact.phone"].tally.whole[Detector::Phone.index()],
            1
        );
        assert_eq!(j.paths["$.plan"].tally.matched(Detector::Email), 0);
        assert_eq!(j.paths["$.tags[*]"].tally.values, 2);
        assert!(j.paths.contains_key("$.items[*].name"));
        assert!(
            j.paths.contains_key("$['weird key']"),
            "{:?}",
            j.paths.keys()
        );
        assert_eq!(j.paths["$.n"].numbers, 1);
    }

    #[test]
    fn json_keys_that_are_data_become_wildcards() {
        let mut j = JsonTally::default();
        j.observe(
            r#"{"bob@example.com": {"score": 1}, "12345": {"x": "y"}, "6f1c2a9e4b7d8c3f": 1}"#,
        );
        let keys: Vec<&String> = j.paths.keys().collect();
        assert!(j.paths.contains_key("$.*.score"), "{keys:?}");
        assert!(j.paths.contains_key("$.*.x"), "{keys:?}");
        assert!(keys.iter().all(|k| !k.contains("bob")), "{keys:?}");
    }
}
