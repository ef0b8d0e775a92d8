//! Column names that look personal: a dictionary of words in English, French, German,
//! Spanish, Portuguese, Italian and Dutch (plus common abbreviations), matched on the word
//! parts of a name, weighed by the column's type.
//!
//! This is the pure classifier strict mode uses ([`classify_name`]); `restage scan` combines
//! it with what the sampled values say. The word lists are in `word_lists.rs`.
//!
//! How a name is read:
//! 1. Split into words: `snake_case`, `camelCase`, `kebab-case`, `PascalCase`, accents folded
//!    (`prénom` → `prenom`, `Straße` → `strasse`), particles dropped (`date_of_birth` →
//!    `date birth`, `mot_de_passe` → `mot passe`).
//! 2. Find dictionary phrases of one to three words, longest first; a single word also
//!    matches without trailing digits (`address1`), in the plural (`emails`), or as the end of
//!    an unsplit compound (`customeremail`, only for long, unambiguous words).
//! 3. Keep the rightmost phrase: English and German put the head noun last
//!    (`shipping_address_city` is a city), and so do most schemas in other languages.
//! 4. Reject names that describe personal data instead of holding it: a meta word after the
//!    phrase (`email_status`, `phone_type`, `address_id`, `password_changed_at`) or a flag
//!    word before it (`is_email`, `has_phone`).
//! 5. Weigh by type: `emailed_at timestamptz` and `tel_count integer` are not emails or
//!    phones; `birth_date date` is a birth date, `birth_date text` a little less surely.
//!
//! A bare `name` (or `nom`, `nombre`, `nome`, `naam`) is a person's name only next to a word
//! about a person (`customer_name`, `nom_client`); `product_name` and `name_en` are not; a
//! bare `name` alone is a low-confidence finding.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;

use super::word_lists::{
    DATE_WORDS, DICTIONARY, GENERIC_NAMES, META_AFTER, META_BEFORE, PARTICLES, PERSON_WORDS,
    STOP_PHRASES,
};
use super::{Category, Level};
use crate::catalog::TypeKind;

/// Why a column name looks personal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameFinding {
    pub category: Category,
    /// 0..1, already weighed by the column's type.
    pub confidence: f32,
    pub level: Level,
    /// The dictionary phrase that matched, as written there (`courriel`, `date_of_birth`).
    pub matched: &'static str,
    /// Its language: `en`, `fr`, `de`, `es`, `pt`, `it`, `nl`, or `*` for words shared by
    /// several.
    pub lang: &'static str,
}

/// Classifies a column name, weighed by the kind of its values (the element kind for an
/// array). None when the name does not look personal, or looks personal but cannot hold that
/// data with this type (`emailed_at timestamptz`, `tel_count integer`).
pub fn classify_name(column: &str, kind: &TypeKind) -> Option<NameFinding> {
    let words = words(column);
    let (entry, weight) = best_match(&words)?;
    let category = entry.category?;
    let type_weight = type_weight(category, kind)?;
    let confidence = round2(entry.base * weight * type_weight);
    let level = Level::of(confidence)?;
    Some(NameFinding {
        category,
        confidence,
        level,
        matched: entry.phrase,
        lang: entry.lang,
    })
}

/// The category label when `column`, as a text column, looks personal with at least medium
/// confidence. Kept for callers that have no type at hand; strict mode should prefer
/// [`classify_name`] with the column's kind, which also rejects `emailed_at timestamptz`.
pub fn personal_name(column: &str) -> Option<&'static str> {
    classify_name(column, &TypeKind::Text)
        .filter(|f| f.level >= Level::Medium)
        .map(|f| f.category.label())
}

pub(crate) fn round2(x: f32) -> f32 {
    (x.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

/// How well a category fits a type: None when it cannot hold that data at all.
fn type_weight(category: Category, kind: &TypeKind) -> Option<f32> {
    use Category::*;
    use TypeKind as K;
    let text = match category {
        Geolocation => 0.8,
        BirthDate => 0.9,
        _ => 1.0,
    };
    match kind {
        K::Text => Some(text),
        // A json column named `address` holds an address somewhere inside; without paths the
        // rule can only replace the whole document, so say it less surely.
        K::Json | K::Jsonb => Some(0.7),
        K::Date | K::Timestamp | K::TimestampTz => (category == BirthDate).then_some(1.0),
        // Numbers: a birth year, a zip code or an id stored as a number, coordinates.
        K::Int => match category {
            BirthDate => Some(0.7),
            Postcode | NationalId | CardNumber => Some(0.8),
            _ => None,
        },
        K::Numeric => match category {
            NationalId | CardNumber => Some(0.8),
            Geolocation => Some(1.0),
            _ => None,
        },
        K::Float => (category == Geolocation).then_some(1.0),
        K::Inet => (category == IpAddress).then_some(1.0),
        K::MacAddr => (category == DeviceId).then_some(1.0),
        K::Uuid => (category == DeviceId).then_some(0.9),
        K::Bytea => (category == Credential).then_some(1.0),
        K::Enum => (category == Country).then_some(0.8),
        // PostgreSQL's `name` type (63 bytes of text) holds people's names in some schemas.
        K::Other(name) if super::is_pg_name_type(name) => Some(text),
        K::Other(name) => {
            let name = name.to_ascii_lowercase();
            let spatial = ["point", "geometry", "geography"]
                .iter()
                .any(|s| name.ends_with(s));
            (category == Geolocation && spatial).then_some(0.9)
        }
        K::Bool | K::Time | K::Interval | K::Cidr | K::TsVector => None,
    }
}

/// One dictionary entry. `category: None` is a stop phrase: it looks like a personal word
/// but is not (`voicemail`, `smartphone`, `web_address`).
#[derive(Debug)]
pub(crate) struct Entry {
    phrase: &'static str,
    category: Option<Category>,
    base: f32,
    lang: &'static str,
    /// `name`, `nom`, `nombre`, `nome`, `naam`: a person's name only next to a person word.
    generic_name: bool,
}

struct Dictionary {
    /// Normalized phrase (words joined by `_`) and its concatenation, to the entry.
    phrases: HashMap<String, Entry>,
    /// Entries that may end a compound, longest first.
    compounds: Vec<(String, &'static str)>,
}

static DICT: LazyLock<Dictionary> = LazyLock::new(build_dictionary);

fn build_dictionary() -> Dictionary {
    let mut phrases: HashMap<String, Entry> = HashMap::new();
    let mut compounds = Vec::new();
    let stops = STOP_PHRASES.iter().map(|p| (None, *p, 1.0, "*"));
    for (category, phrase, base, lang) in DICTIONARY.iter().copied().chain(stops) {
        let norm = normalize_phrase(phrase);
        let concat = norm.replace('_', "");
        let generic_name = GENERIC_NAMES.contains(&norm.as_str());
        // Long, distinctive words may end an unsplit compound (`customeremail`). Short ones
        // (`tel`, `mail`, `name`) would match inside unrelated words.
        // Stop words take part too, so `myvoicemail` ends with `voicemail` before `email`.
        let compound = concat.len() >= 5 && (category.is_none() || (base >= 0.6 && !generic_name));
        let make = || Entry {
            phrase,
            category,
            base,
            lang,
            generic_name,
        };
        if compound {
            compounds.push((concat.clone(), phrase));
        }
        // First entry for a phrase wins; one spelled the same in another language
        // (`telefono` in Spanish and Italian) makes it shared.
        for key in [norm.clone(), concat.clone()] {
            match phrases.get_mut(&key) {
                Some(existing) => {
                    if existing.category == category && existing.lang != lang {
                        existing.lang = "*";
                    }
                }
                None => {
                    phrases.insert(key, make());
                }
            }
        }
    }
    compounds.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    compounds.dedup_by(|a, b| a.0 == b.0);
    Dictionary { phrases, compounds }
}

fn normalize_phrase(phrase: &str) -> String {
    words(phrase).join("_")
}

/// The words of a column name: split at non-alphanumerics and at case changes, lowercased,
/// accents folded, particles dropped.
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut current, &mut out);
            continue;
        }
        if c.is_uppercase() && !current.is_empty() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // `billingAddress` → billing|Address; `HTTPServer` → HTTP|Server.
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                flush(&mut current, &mut out);
            }
        }
        for lower in c.to_lowercase() {
            fold_into(lower, &mut current);
        }
    }
    flush(&mut current, &mut out);
    // `IPv4` splits like `HTTPServer` into `i` + `pv4`; put it back together.
    let mut merged: Vec<String> = Vec::with_capacity(out.len());
    for word in out {
        match merged.last_mut() {
            Some(last) if last == "i" && (word.starts_with("pv4") || word.starts_with("pv6")) => {
                last.push_str(&word);
            }
            _ => merged.push(word),
        }
    }
    merged
}

fn flush(current: &mut String, out: &mut Vec<String>) {
    if !current.is_empty() {
        let word = std::mem::take(current);
        if !PARTICLES.contains(&word.as_str()) {
            out.push(word);
        }
    }
}

/// Folds the accented letters of the dictionary's languages to ASCII.
fn fold_into(c: char, out: &mut String) {
    let folded = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'ç' => "c",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        other => {
            out.push(other);
            return;
        }
    };
    out.push_str(folded);
}

struct Match {
    start: usize,
    end: usize,
    entry: &'static Entry,
    weight: f32,
}

/// The rightmost dictionary phrase in `words` that survives the meta-word checks, with the
/// weight of how it matched (1 for a whole word, less for a compound ending).
fn best_match(words: &[String]) -> Option<(&'static Entry, f32)> {
    let dict: &'static Dictionary = &DICT;
    let mut matches: Vec<Match> = Vec::new();
    for start in 0..words.len() {
        for len in (1..=3.min(words.len() - start)).rev() {
            let slice = &words[start..start + len];
            let found = if len == 1 {
                lookup_word(dict, &slice[0])
            } else {
                let joined = slice.join("_");
                dict.phrases
                    .get(&joined)
                    .or_else(|| dict.phrases.get(&slice.concat()))
                    .map(|e| (e, 1.0))
            };
            if let Some((entry, weight)) = found {
                matches.push(Match {
                    start,
                    end: start + len,
                    entry,
                    weight,
                });
                break;
            }
        }
    }
    // A match inside a longer one does not count (`email` inside `email_address`).
    let covering: Vec<(usize, usize)> = matches.iter().map(|m| (m.start, m.end)).collect();
    matches.retain(|m| {
        !covering
            .iter()
            .any(|&(s, e)| s <= m.start && e >= m.end && (e - s) > (m.end - m.start))
    });
    let chosen = matches.iter().max_by_key(|m| (m.end, m.end - m.start))?;
    let category = chosen.entry.category?;

    // `is_email`, `has_phone`: a flag about the data.
    if chosen.start > 0 && META_BEFORE.contains(&words[chosen.start - 1].as_str()) {
        return None;
    }
    // `email_status`, `address_id`, `password_changed_at`: about the data, not the data.
    let after = &words[chosen.end..];
    let meta_after = after.iter().any(|w| {
        // `card_last4` is `card last`.
        let w = w.trim_end_matches(|c: char| c.is_ascii_digit());
        META_AFTER.contains(&w) && !(category == Category::BirthDate && DATE_WORDS.contains(&w))
    });
    if meta_after {
        return None;
    }

    if chosen.entry.generic_name {
        let neighbours = [
            chosen.start.checked_sub(1).map(|i| words[i].as_str()),
            words.get(chosen.end).map(String::as_str),
        ];
        if neighbours
            .iter()
            .flatten()
            .any(|w| PERSON_WORDS.contains(w))
        {
            return Some((person_name_entry(), 1.0));
        }
        // `product_name`, `name_en`, `file_name`: the name of something else.
        if neighbours.iter().flatten().next().is_some() {
            return None;
        }
    }
    Some((chosen.entry, chosen.weight))
}

/// `customer_name`, `nom_client`: a name next to a person word.
fn person_name_entry() -> &'static Entry {
    static ENTRY: Entry = Entry {
        phrase: "<person>_name",
        category: Some(Category::FullName),
        base: 0.85,
        lang: "*",
        generic_name: false,
    };
    &ENTRY
}

/// One word: as is, without trailing digits (`address2`), in the singular (`emails`), or as
/// the end of an unsplit compound (`customeremail`, `billingaddress`).
fn lookup_word(dict: &'static Dictionary, word: &str) -> Option<(&'static Entry, f32)> {
    let exact = |w: &str| dict.phrases.get(w);
    if let Some(e) = exact(word) {
        return Some((e, 1.0));
    }
    let trimmed = word.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() >= 2 && trimmed != word {
        if let Some(e) = exact(trimmed) {
            return Some((e, 1.0));
        }
    }
    let word = trimmed;
    if word.len() > 3 {
        for suffix in ["es", "s"] {
            if let Some(stem) = word.strip_suffix(suffix) {
                if let Some(e) = exact(stem) {
                    return Some((e, 0.95));
                }
            }
        }
    }
    // Longest first, so a stop word ending the same way wins (`myvoicemail` is no email).
    for (compound, _) in &dict.compounds {
        if word.len() >= compound.len() + 2 && word.ends_with(compound.as_str()) {
            return dict.phrases.get(compound).map(|e| (e, 0.85));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str) -> Option<Category> {
        classify_name(name, &TypeKind::Text).map(|f| f.category)
    }

    fn cat_of(name: &str, kind: TypeKind) -> Option<Category> {
        classify_name(name, &kind).map(|f| f.category)
    }

    #[test]
    fn splits_words() {
        assert_eq!(words("customer_email"), ["customer", "email"]);
        assert_eq!(words("billingAddress"), ["billing", "address"]);
        assert_eq!(words("HTTPServerName"), ["http", "server", "name"]);
        assert_eq!(words("Prénom"), ["prenom"]);
        assert_eq!(words("Straße"), ["strasse"]);
        assert_eq!(words("date_of_birth"), ["date", "birth"]);
        assert_eq!(words("mot-de-passe"), ["mot", "passe"]);
        assert_eq!(words("address2"), ["address2"]);
        assert_eq!(words("eMail"), ["e", "mail"]);
    }

    #[test]
    fn english_names() {
        use Category::*;
        for (name, want) in [
            ("email", Email),
            ("customer_email", Email),
            ("customerEmail", Email),
            ("customeremail", Email),
            ("EMail", Email),
            ("e_mail", Email),
            ("email_address", Email),
            ("emails", Email),
            ("phone", Phone),
            ("phone_number", Phone),
            ("mobilePhone", Phone),
            ("tel", Phone),
            ("first_name", FirstName),
            ("firstName", FirstName),
            ("fname", FirstName),
            ("surname", LastName),
            ("lname", LastName),
            ("full_name", FullName),
            ("customer_name", FullName),
            ("billingAddress", StreetAddress),
            ("address_line1", StreetAddress),
            ("addr", StreetAddress),
            ("zip", Postcode),
            ("shipping_address_city", City),
            ("dob", BirthDate),
            ("date_of_birth", BirthDate),
            ("ssn", NationalId),
            ("passport_number", NationalId),
            ("iban", Iban),
            ("credit_card", CardNumber),
            ("cc_number", CardNumber),
            ("ip_address", IpAddress),
            ("last_login_ip", IpAddress),
            ("IPv4Address", IpAddress),
            ("password", Credential),
            ("password_hash", Credential),
            ("username", Username),
            ("mac_address", DeviceId),
        ] {
            assert_eq!(cat(name), Some(want), "{name}");
        }
    }

    #[test]
    fn other_languages() {
        use Category::*;
        for (name, want, lang) in [
            ("courriel", Email, "fr"),
            ("adresse_email", Email, "fr"),
            ("prenom", FirstName, "fr"),
            ("prénom", FirstName, "fr"),
            ("nom_de_famille", LastName, "fr"),
            ("telephone", Phone, "*"),
            ("date_naissance", BirthDate, "fr"),
            ("mot_de_passe", Credential, "fr"),
            ("numero_secu", NationalId, "fr"),
            ("telefon", Phone, "de"),
            ("Telefonnummer", Phone, "de"),
            ("vorname", FirstName, "de"),
            ("nachname", LastName, "de"),
            ("geburtsdatum", BirthDate, "de"),
            ("strasse", StreetAddress, "de"),
            ("Straße", StreetAddress, "de"),
            ("email_adresse", Email, "de"),
            ("steuer_id", NationalId, "de"),
            ("correo_electronico", Email, "es"),
            ("telefono", Phone, "*"),
            ("apellidos", LastName, "es"),
            ("fecha_de_nacimiento", BirthDate, "es"),
            ("direccion", StreetAddress, "es"),
            ("dni", NationalId, "es"),
            ("contraseña", Credential, "es"),
            ("telefone", Phone, "pt"),
            ("sobrenome", LastName, "pt"),
            ("data_nascimento", BirthDate, "pt"),
            ("endereco", StreetAddress, "pt"),
            ("cpf", NationalId, "pt"),
            ("senha", Credential, "pt"),
            ("cognome", LastName, "it"),
            ("indirizzo", StreetAddress, "it"),
            ("codice_fiscale", NationalId, "it"),
            ("data_di_nascita", BirthDate, "it"),
            ("voornaam", FirstName, "nl"),
            ("achternaam", LastName, "nl"),
            ("telefoonnummer", Phone, "nl"),
            ("woonplaats", City, "nl"),
            ("wachtwoord", Credential, "nl"),
            ("bsn", NationalId, "nl"),
        ] {
            let f = classify_name(name, &TypeKind::Text)
                .unwrap_or_else(|| panic!("{name} should be classified"));
            assert_eq!(f.category, want, "{name}");
            assert_eq!(f.lang, lang, "{name}");
        }
    }

    #[test]
    fn innocent_names() {
        for name in [
            "id",
            "status",
            "sku",
            "created_at",
            "updated_at",
            "amount",
            "product_name",
            "name_en",
            "file_name",
            "filename",
            "hostname",
            "email_status",
            "email_verified",
            "email_template",
            "phone_type",
            "address_id",
            "password_changed_at",
            "password_reset_at",
            "is_email",
            "has_phone",
            "voicemail",
            "smartphone",
            "web_address",
            "emailed",
            "telemetry",
            "description",
            "title",
            "notes",
            "ref",
            "data",
            "c3",
            "card_type",
            "card_brand",
            "card_last4",
            "token_expires_at",
            "automobile",
            "renaissance",
            "myvoicemail",
            "hotel",
            "mail_template",
            "otp_required_for_login",
            "mobile_app",
            "phone_model",
            "reset_password_sent_at",
            "sign_in_count",
            "order_number",
            "company_name",
            "stripe_customer_id",
            "user_agent",
        ] {
            assert_eq!(cat(name), None, "{name}");
        }
    }

    #[test]
    fn weighs_by_type() {
        use Category::*;
        assert_eq!(cat_of("emailed_at", TypeKind::TimestampTz), None);
        assert_eq!(cat_of("email_sent_at", TypeKind::TimestampTz), None);
        assert_eq!(cat_of("tel_count", TypeKind::Int), None);
        assert_eq!(cat_of("phone", TypeKind::Int), None);
        assert_eq!(cat_of("email", TypeKind::Bool), None);
        assert_eq!(cat_of("birth_date", TypeKind::Date), Some(BirthDate));
        assert_eq!(cat_of("ip", TypeKind::Inet), Some(IpAddress));
        assert_eq!(cat_of("ssn", TypeKind::Int), Some(NationalId));
        assert_eq!(cat_of("latitude", TypeKind::Float), Some(Geolocation));
        assert_eq!(cat_of("password", TypeKind::Bytea), Some(Credential));
        let date = classify_name("birth_date", &TypeKind::Date).map(|f| f.confidence);
        let text = classify_name("birth_date", &TypeKind::Text).map(|f| f.confidence);
        assert!(date > text, "{date:?} {text:?}");
    }

    #[test]
    fn generic_words_stay_low() {
        // Low findings are reported by scan but never make strict mode refuse.
        for name in [
            "handle",
            "identifiant_produit",
            "clave_producto",
            "tin",
            "name",
            "city",
        ] {
            let level = classify_name(name, &TypeKind::Text).map(|f| f.level);
            assert!(
                level.is_none() || level == Some(Level::Low),
                "{name}: {level:?}"
            );
        }
        // French `nombre` is a count: an integer, or next to what it counts.
        assert_eq!(cat_of("nombre", TypeKind::Int), None);
        assert_eq!(cat("nombre_articles"), None);
    }

    #[test]
    fn articles() {
        assert_eq!(Category::Email.with_article(), "an email address");
        assert_eq!(Category::Username.with_article(), "a username");
        assert_eq!(Category::IpAddress.with_article(), "an IP address");
    }

    #[test]
    fn bare_name_is_low() {
        let f = classify_name("name", &TypeKind::Text).expect("name");
        assert_eq!(f.category, Category::FullName);
        assert_eq!(f.level, Level::Low);
        let f = classify_name("nom_client", &TypeKind::Text).expect("nom_client");
        assert_eq!(f.category, Category::FullName);
        assert_eq!(f.level, Level::High);
    }

    /// The transform scan proposes for these findings is tested beside the proposals
    /// (`scan::tests::name_finding_proposes_a_transform`): proposing is scan's, not pii's.
    #[test]
    fn finding_carries_the_match() {
        let f = classify_name("courriel", &TypeKind::Text).expect("courriel");
        assert_eq!(f.matched, "courriel");
        assert_eq!(f.level, Level::High);
        assert!(classify_name("dob", &TypeKind::Date).is_some());
    }

    #[test]
    fn personal_name_wrapper() {
        assert_eq!(personal_name("customer_email"), Some("email address"));
        assert_eq!(personal_name("prenom"), Some("first name"));
        assert_eq!(personal_name("status"), None);
        // Low-confidence names are left to `restage scan`.
        assert_eq!(personal_name("name"), None);
        assert_eq!(personal_name("country"), None);
    }

    #[test]
    fn levels() {
        assert_eq!(Level::of(0.9), Some(Level::High));
        assert_eq!(Level::of(0.75), Some(Level::High));
        assert_eq!(Level::of(0.6), Some(Level::Medium));
        assert_eq!(Level::of(0.3), Some(Level::Low));
        assert_eq!(Level::of(0.1), None);
    }

    #[test]
    fn dictionary_phrases_classify_as_their_category() {
        // Every phrase in the dictionary, used as a column name, gives its own category:
        // guards against a later entry being shadowed by an earlier one with another meaning.
        for (category, phrase, _, _) in DICTIONARY {
            let words = words(phrase);
            if GENERIC_NAMES.contains(&words.join("_").as_str()) {
                continue;
            }
            let got = best_match(&words).and_then(|(e, _)| e.category);
            assert_eq!(got, *category, "{phrase}");
        }
    }

    /// Issue 15's recall: links and photo paths, prose about a person, a ship-to name, and
    /// PostgreSQL's `name` type; the lookup-table `name` stays low.
    #[test]
    fn links_about_text_ship_names_and_the_name_type() {
        assert_eq!(cat("website"), Some(Category::Link));
        assert_eq!(cat("photo_path"), Some(Category::Link));
        assert_eq!(cat("avatar_url"), Some(Category::Link));
        assert_eq!(cat("bio"), Some(Category::AboutText));
        assert_eq!(cat("biography"), Some(Category::AboutText));
        assert_eq!(cat("ship_name"), Some(Category::FullName));
        assert_eq!(
            cat_of("contact_name", TypeKind::Other("name".into())),
            cat("contact_name")
        );
        assert!(cat_of("person_name", TypeKind::Other("name".into())).is_some());
        let bare = classify_name("name", &TypeKind::Text).map(|f| f.level);
        assert_eq!(bare, Some(Level::Low));
        assert_eq!(cat("image_url"), None);
        assert_eq!(cat("filename"), None);
    }
}
