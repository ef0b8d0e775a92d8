//! Column names that look personal: a dictionary of words in English, French, German,
//! Spanish, Portuguese, Italian and Dutch (plus common abbreviations), matched on the word
//! parts of a name, weighed by the column's type.
//!
//! This is the pure classifier strict mode uses ([`classify_name`]); `restage scan` combines
//! it with what the sampled values say.
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

use crate::catalog::TypeKind;

/// What kind of personal data a column (or JSON path) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    FirstName,
    LastName,
    FullName,
    Username,
    StreetAddress,
    City,
    Postcode,
    Country,
    Company,
    BirthDate,
    NationalId,
    Iban,
    CardNumber,
    IpAddress,
    DeviceId,
    Credential,
    Geolocation,
}

impl Category {
    /// The identifier used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::FirstName => "first_name",
            Category::LastName => "last_name",
            Category::FullName => "full_name",
            Category::Username => "username",
            Category::StreetAddress => "street_address",
            Category::City => "city",
            Category::Postcode => "postcode",
            Category::Country => "country",
            Category::Company => "company",
            Category::BirthDate => "birth_date",
            Category::NationalId => "national_id",
            Category::Iban => "iban",
            Category::CardNumber => "card_number",
            Category::IpAddress => "ip_address",
            Category::DeviceId => "device_id",
            Category::Credential => "credential",
            Category::Geolocation => "geolocation",
        }
    }

    /// A short human label, as in "looks like an email address".
    pub fn label(self) -> &'static str {
        match self {
            Category::Email => "email address",
            Category::Phone => "phone number",
            Category::FirstName => "first name",
            Category::LastName => "last name",
            Category::FullName => "person's name",
            Category::Username => "username",
            Category::StreetAddress => "street address",
            Category::City => "city",
            Category::Postcode => "postcode",
            Category::Country => "country or nationality",
            Category::Company => "company or employer",
            Category::BirthDate => "birth date",
            Category::NationalId => "national id",
            Category::Iban => "bank account",
            Category::CardNumber => "card number",
            Category::IpAddress => "IP address",
            Category::DeviceId => "device identifier",
            Category::Credential => "credential",
            Category::Geolocation => "geolocation",
        }
    }

    /// "an email address", "a phone number".
    pub fn with_article(self) -> String {
        let article = match self {
            Category::Email | Category::IpAddress => "an",
            _ => "a",
        };
        format!("{article} {}", self.label())
    }
}

/// How sure a finding is, by its number: high ≥ 0.75, medium ≥ 0.5, low ≥ 0.25. Below low,
/// nothing is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub const HIGH: f32 = 0.75;
    pub const MEDIUM: f32 = 0.5;
    pub const LOW: f32 = 0.25;

    /// The level of a confidence number, None below [`Level::LOW`].
    pub fn of(confidence: f32) -> Option<Level> {
        if confidence >= Level::HIGH {
            Some(Level::High)
        } else if confidence >= Level::MEDIUM {
            Some(Level::Medium)
        } else if confidence >= Level::LOW {
            Some(Level::Low)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

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
    /// The transform a rule would use for a nullable, non-unique column of this type (see
    /// [`super::propose::propose`] for the full rule with parameters).
    pub proposed_transform: &'static str,
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
        proposed_transform: super::propose::default_transform(category, kind),
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

const GENERIC_NAMES: &[&str] = &["name", "names", "nom", "noms", "nombre", "nome", "naam"];

/// Words that make a bare `name` a person's name when next to it.
const PERSON_WORDS: &[&str] = &[
    "full",
    "complete",
    "complet",
    "completo",
    "vollstandiger",
    "voller",
    "volledige",
    "display",
    "real",
    "legal",
    "official",
    "person",
    "persons",
    "people",
    "personal",
    "personne",
    "persona",
    "pessoa",
    "contact",
    "contacto",
    "contato",
    "contatto",
    "customer",
    "customers",
    "client",
    "clients",
    "cliente",
    "kunde",
    "kunden",
    "klant",
    "owner",
    "holder",
    "cardholder",
    "recipient",
    "sender",
    "patient",
    "paciente",
    "employee",
    "staff",
    "member",
    "guest",
    "passenger",
    "traveler",
    "traveller",
    "buyer",
    "seller",
    "driver",
    "beneficiary",
    "billing",
    "shipping",
    "emergency",
    "spouse",
    "parent",
    "guardian",
    "mother",
    "father",
    "author",
    "signer",
    "applicant",
    "candidate",
    "student",
    "teacher",
    "doctor",
    "subscriber",
    "titulaire",
    "destinataire",
    "expediteur",
    "titular",
    "destinatario",
    "remitente",
    "mitarbeiter",
    "medewerker",
    "responsable",
    "usuario",
    "utilisateur",
    "benutzer",
    "gebruiker",
    "utente",
];

/// After the phrase: the column is about the data, not the data (`email_status`).
const META_AFTER: &[&str] = &[
    "id",
    "ids",
    "uuid",
    "guid",
    "count",
    "counts",
    "cnt",
    "counter",
    "total",
    "nb",
    "type",
    "types",
    "kind",
    "status",
    "verified",
    "verification",
    "verify",
    "confirmed",
    "confirmation",
    "confirm",
    "validated",
    "validation",
    "valid",
    "validity",
    "invalid",
    "enabled",
    "disabled",
    "active",
    "flag",
    "flags",
    "is",
    "at",
    "on",
    "date",
    "time",
    "timestamp",
    "ts",
    "datetime",
    "dt",
    "sent",
    "received",
    "opened",
    "clicked",
    "bounced",
    "bounce",
    "bounces",
    "opt",
    "optin",
    "optout",
    "opted",
    "consent",
    "subscribed",
    "unsubscribed",
    "subscription",
    "preference",
    "preferences",
    "pref",
    "prefs",
    "format",
    "template",
    "templates",
    "provider",
    "domain",
    "host",
    "server",
    "subject",
    "body",
    "label",
    "category",
    "source",
    "channel",
    "length",
    "len",
    "policy",
    "changed",
    "updated",
    "modified",
    "created",
    "deleted",
    "reset",
    "expires",
    "expiry",
    "expiration",
    "expired",
    "strength",
    "attempts",
    "attempt",
    "tries",
    "required",
    "mode",
    "version",
    "visible",
    "visibility",
    "hidden",
    "lang",
    "language",
    "locale",
    "prefix",
    "ext",
    "extension",
    "checked",
    "order",
    "sort",
    "index",
    "idx",
    "position",
    "rank",
    "score",
    "limit",
    "max",
    "min",
    "quota",
    "size",
    "error",
    "errors",
    "notify",
    "notification",
    "notifications",
    "alert",
    "alerts",
    "reminder",
    "campaign",
    "group",
    "groups",
    "batch",
    "job",
    "queue",
    "task",
    "sync",
    "synced",
    "import",
    "export",
    "last",
    "bin",
    "brand",
    "network",
    "issuer",
    "exp",
    "month",
    "fingerprint",
    "masked",
    // `mobile_app`, `phone_model`: about the device, not the number.
    "app",
    "apps",
    "device",
    "os",
    "platform",
    "browser",
    "model",
];

/// Meta words that are the natural head of a birth date (`birth_date`, `geburtsdatum`).
const DATE_WORDS: &[&str] = &[
    "date",
    "dt",
    "datum",
    "day",
    "year",
    "jahr",
    "on",
    "at",
    "time",
    "timestamp",
    "ts",
];

/// Just before the phrase: a flag or a count about it (`is_email`, `has_phone`).
const META_BEFORE: &[&str] = &[
    "is", "has", "can", "should", "allow", "allows", "allowed", "needs", "need", "show", "hide",
    "use", "uses", "enable", "disable", "count", "total", "nb", "max", "min", "send", "verify",
    "confirm", "for",
];

/// Dropped before matching, so phrases are written without them.
const PARTICLES: &[&str] = &[
    "of", "the", "de", "du", "des", "d", "di", "da", "do", "dos", "das", "del", "della", "dello",
    "dei", "degli", "van", "von", "der", "den", "het", "la", "le", "el", "los", "las", "l", "y",
];

macro_rules! dict {
    ($( $cat:ident : [ $( ($phrase:literal, $base:literal, $lang:literal) ),* $(,)? ] ),* $(,)?) => {
        &[ $( $( (Some(Category::$cat), $phrase, $base, $lang), )* )* ]
    };
}

type RawEntry = (Option<Category>, &'static str, f32, &'static str);

/// The dictionary, as written: phrases use `_` between words and may keep particles and
/// accents (they are normalized like column names).
const DICTIONARY: &[RawEntry] = dict! {
    Email: [
        ("email", 0.95, "*"), ("e_mail", 0.95, "*"), ("mail", 0.7, "*"),
        ("email_address", 0.95, "en"), ("mail_address", 0.9, "en"), ("email_addr", 0.95, "en"),
        ("courriel", 0.95, "fr"), ("adresse_mail", 0.95, "fr"), ("adresse_email", 0.95, "fr"),
        ("adresse_courriel", 0.95, "fr"), ("mél", 0.6, "fr"),
        ("email_adresse", 0.95, "de"), ("mail_adresse", 0.95, "de"), ("e_mail_adresse", 0.95, "de"),
        ("correo", 0.8, "es"), ("correo_electrónico", 0.95, "es"), ("correo_email", 0.95, "es"),
        ("correio_eletrónico", 0.95, "pt"), ("correio_eletronico", 0.95, "pt"),
        ("endereço_email", 0.95, "pt"), ("correio", 0.6, "pt"),
        ("posta_elettronica", 0.95, "it"), ("indirizzo_email", 0.95, "it"), ("pec", 0.7, "it"),
        ("emailadres", 0.95, "nl"), ("e_mailadres", 0.95, "nl"), ("mailadres", 0.95, "nl"),
    ],
    Phone: [
        ("phone", 0.9, "en"), ("phone_number", 0.95, "en"), ("phone_no", 0.95, "en"),
        ("phone_nr", 0.95, "en"), ("phone_num", 0.95, "en"), ("telephone", 0.9, "*"),
        ("tel", 0.7, "*"), ("tel_no", 0.85, "*"), ("tel_nr", 0.85, "*"), ("tel_num", 0.85, "*"),
        ("mobile", 0.65, "*"), ("mobile_number", 0.9, "en"), ("mobile_phone", 0.9, "en"),
        ("mobile_no", 0.9, "en"), ("cell_phone", 0.9, "en"), ("cell_number", 0.85, "en"),
        ("msisdn", 0.9, "*"), ("fax", 0.6, "*"), ("fax_number", 0.8, "en"),
        ("landline", 0.85, "en"), ("whatsapp", 0.6, "*"),
        ("téléphone", 0.9, "fr"), ("portable", 0.55, "fr"), ("numéro_portable", 0.85, "fr"),
        ("numéro_mobile", 0.85, "fr"), ("tel_portable", 0.85, "fr"), ("tel_fixe", 0.85, "fr"),
        ("telefon", 0.9, "de"), ("telefonnummer", 0.95, "de"), ("handy", 0.7, "de"),
        ("handynummer", 0.9, "de"), ("mobilnummer", 0.9, "de"), ("mobiltelefon", 0.9, "de"),
        ("rufnummer", 0.85, "de"), ("festnetz", 0.8, "de"), ("faxnummer", 0.8, "de"),
        ("mobil", 0.6, "de"),
        ("teléfono", 0.9, "es"), ("móvil", 0.65, "es"), ("celular", 0.8, "es"),
        ("número_móvil", 0.85, "es"), ("número_celular", 0.85, "es"),
        ("telefone", 0.9, "pt"), ("telemóvel", 0.85, "pt"),
        ("telefono", 0.9, "it"), ("cellulare", 0.85, "it"),
        ("telefoon", 0.9, "nl"), ("telefoonnummer", 0.95, "nl"), ("mobiel", 0.65, "nl"),
        ("mobiel_nummer", 0.9, "nl"), ("gsm", 0.65, "nl"),
    ],
    FirstName: [
        ("first_name", 0.95, "en"), ("fname", 0.85, "en"), ("given_name", 0.95, "en"),
        ("forename", 0.95, "en"), ("middle_name", 0.85, "en"), ("christian_name", 0.9, "en"),
        ("name_first", 0.9, "en"), ("name_middle", 0.85, "en"),
        ("prénom", 0.95, "fr"), ("prénoms", 0.95, "fr"),
        ("vorname", 0.95, "de"), ("rufname", 0.8, "de"),
        ("nombre_de_pila", 0.9, "es"), ("primer_nombre", 0.9, "es"),
        ("primeiro_nome", 0.95, "pt"), ("nome_próprio", 0.9, "pt"),
        ("voornaam", 0.95, "nl"), ("voornamen", 0.95, "nl"), ("roepnaam", 0.85, "nl"),
    ],
    LastName: [
        ("last_name", 0.95, "en"), ("lname", 0.85, "en"), ("surname", 0.95, "en"),
        ("family_name", 0.95, "en"), ("maiden_name", 0.9, "en"), ("name_last", 0.9, "en"),
        ("birth_name", 0.9, "en"),
        ("nom_de_famille", 0.95, "fr"), ("nom_naissance", 0.9, "fr"),
        ("nom_de_naissance", 0.9, "fr"), ("nom_usage", 0.9, "fr"), ("nom_marital", 0.9, "fr"),
        ("nom_jeune_fille", 0.9, "fr"),
        ("nachname", 0.95, "de"), ("familienname", 0.95, "de"), ("zuname", 0.9, "de"),
        ("geburtsname", 0.9, "de"),
        ("apellido", 0.9, "es"), ("apellidos", 0.9, "es"), ("primer_apellido", 0.9, "es"),
        ("segundo_apellido", 0.9, "es"),
        ("sobrenome", 0.95, "pt"), ("apelido", 0.6, "pt"),
        ("cognome", 0.95, "it"),
        ("achternaam", 0.95, "nl"), ("familienaam", 0.95, "nl"), ("tussenvoegsel", 0.7, "nl"),
    ],
    FullName: [
        ("full_name", 0.9, "en"), ("display_name", 0.85, "en"), ("real_name", 0.85, "en"),
        ("legal_name", 0.9, "en"), ("account_holder", 0.85, "en"), ("card_holder", 0.85, "en"),
        ("cardholder", 0.85, "en"), ("beneficiary", 0.6, "en"), ("emergency_contact", 0.8, "en"),
        ("nombre_y_apellidos", 0.9, "es"), ("nombre_completo", 0.9, "es"),
        ("nome_completo", 0.9, "pt"), ("nom_complet", 0.9, "fr"),
        ("vollständiger_name", 0.9, "de"), ("volledige_naam", 0.9, "nl"),
        ("name", 0.4, "*"), ("names", 0.4, "*"), ("nom", 0.45, "fr"), ("noms", 0.45, "fr"),
        ("nombre", 0.45, "es"), ("nome", 0.45, "*"), ("naam", 0.45, "nl"),
    ],
    Username: [
        ("username", 0.8, "en"), ("user_name", 0.8, "en"), ("login", 0.55, "*"),
        ("login_name", 0.8, "en"), ("user_login", 0.8, "en"), ("handle", 0.45, "en"),
        ("nickname", 0.75, "en"), ("nick", 0.6, "*"), ("screen_name", 0.8, "en"),
        ("pseudo", 0.7, "fr"), ("pseudonyme", 0.7, "fr"), ("identifiant", 0.4, "fr"),
        ("benutzername", 0.85, "de"), ("nutzername", 0.85, "de"), ("anmeldename", 0.8, "de"),
        ("nombre_de_usuario", 0.85, "es"), ("nome_de_usuário", 0.85, "pt"),
        ("nome_utente", 0.85, "it"), ("gebruikersnaam", 0.85, "nl"),
    ],
    StreetAddress: [
        ("address", 0.85, "en"), ("addr", 0.7, "*"), ("street_address", 0.95, "en"),
        ("street", 0.75, "en"), ("street_name", 0.85, "en"), ("address_line", 0.9, "en"),
        ("postal_address", 0.9, "en"), ("mailing_address", 0.9, "en"),
        ("house_number", 0.75, "en"), ("house_no", 0.75, "en"), ("po_box", 0.7, "en"),
        ("residence", 0.5, "en"),
        ("adresse", 0.85, "*"), ("adresse_postale", 0.95, "fr"), ("rue", 0.7, "fr"),
        ("domicile", 0.7, "fr"),
        ("anschrift", 0.9, "de"), ("straße", 0.8, "de"), ("hausnummer", 0.8, "de"),
        ("wohnadresse", 0.9, "de"),
        ("dirección", 0.85, "es"), ("domicilio", 0.8, "es"), ("calle", 0.7, "es"),
        ("endereço", 0.85, "pt"), ("morada", 0.85, "pt"), ("logradouro", 0.85, "pt"),
        ("rua", 0.6, "pt"),
        ("indirizzo", 0.85, "it"), ("residenza", 0.7, "it"),
        ("adres", 0.85, "nl"), ("straat", 0.75, "nl"), ("straatnaam", 0.85, "nl"),
        ("huisnummer", 0.8, "nl"), ("woonadres", 0.9, "nl"),
    ],
    City: [
        ("city", 0.45, "en"), ("town", 0.45, "en"), ("hometown", 0.6, "en"),
        ("birth_place", 0.8, "en"), ("place_of_birth", 0.8, "en"), ("birthplace", 0.8, "en"),
        ("ville", 0.45, "fr"), ("lieu_de_naissance", 0.8, "fr"), ("ville_de_naissance", 0.8, "fr"),
        ("stadt", 0.45, "de"), ("ort", 0.45, "de"), ("wohnort", 0.7, "de"),
        ("geburtsort", 0.8, "de"),
        ("ciudad", 0.45, "es"), ("localidad", 0.45, "es"), ("lugar_de_nacimiento", 0.8, "es"),
        ("cidade", 0.45, "pt"), ("município", 0.45, "pt"), ("local_de_nascimento", 0.8, "pt"),
        ("naturalidade", 0.7, "pt"),
        ("città", 0.45, "it"), ("comune", 0.4, "it"), ("località", 0.45, "it"),
        ("luogo_di_nascita", 0.8, "it"),
        ("plaats", 0.45, "nl"), ("woonplaats", 0.7, "nl"), ("geboorteplaats", 0.8, "nl"),
    ],
    Postcode: [
        ("zip", 0.45, "en"), ("zipcode", 0.5, "en"), ("zip_code", 0.5, "en"),
        ("postcode", 0.5, "*"), ("postal_code", 0.5, "en"), ("post_code", 0.5, "en"),
        ("code_postal", 0.5, "fr"), ("postleitzahl", 0.5, "de"), ("plz", 0.5, "de"),
        ("código_postal", 0.5, "*"), ("cep", 0.45, "pt"), ("codice_postale", 0.5, "it"),
    ],
    Country: [
        ("country", 0.3, "en"), ("pays", 0.3, "fr"), ("país", 0.3, "*"), ("paese", 0.3, "it"),
        ("nationality", 0.6, "en"), ("citizenship", 0.6, "en"), ("nationalité", 0.6, "fr"),
        ("staatsangehörigkeit", 0.6, "de"), ("nationalität", 0.6, "de"),
        ("nacionalidad", 0.6, "es"), ("nacionalidade", 0.6, "pt"), ("nazionalità", 0.6, "it"),
        ("nationaliteit", 0.6, "nl"),
    ],
    Company: [
        ("company", 0.3, "en"), ("employer", 0.55, "en"), ("employeur", 0.55, "fr"),
        ("entreprise", 0.3, "fr"), ("société", 0.3, "fr"), ("arbeitgeber", 0.55, "de"),
        ("firma", 0.3, "*"), ("empresa", 0.3, "*"), ("empleador", 0.5, "es"),
        ("azienda", 0.3, "it"), ("datore_di_lavoro", 0.55, "it"), ("bedrijf", 0.3, "nl"),
        ("werkgever", 0.55, "nl"),
    ],
    BirthDate: [
        ("birth", 0.85, "en"), ("birthday", 0.9, "en"), ("birth_date", 0.95, "en"),
        ("date_of_birth", 0.95, "en"), ("dob", 0.9, "en"), ("born", 0.6, "en"),
        ("born_on", 0.7, "en"), ("birth_year", 0.8, "en"), ("year_of_birth", 0.8, "en"),
        ("naissance", 0.85, "fr"), ("date_de_naissance", 0.95, "fr"),
        ("anniversaire", 0.6, "fr"),
        ("geburtsdatum", 0.95, "de"), ("geburtstag", 0.9, "de"), ("geburt", 0.85, "de"),
        ("geb_datum", 0.9, "de"), ("gebdat", 0.8, "de"), ("geburtsjahr", 0.8, "de"),
        ("nacimiento", 0.85, "es"), ("fecha_de_nacimiento", 0.95, "es"),
        ("cumpleaños", 0.85, "es"),
        ("nascimento", 0.85, "pt"), ("data_de_nascimento", 0.95, "pt"),
        ("aniversário", 0.6, "pt"),
        ("nascita", 0.85, "it"), ("data_di_nascita", 0.95, "it"), ("compleanno", 0.85, "it"),
        ("geboortedatum", 0.95, "nl"), ("geboorte", 0.85, "nl"), ("verjaardag", 0.85, "nl"),
    ],
    NationalId: [
        ("ssn", 0.95, "en"), ("social_security", 0.9, "en"),
        ("social_security_number", 0.95, "en"), ("sin", 0.5, "en"), ("national_id", 0.9, "en"),
        ("national_number", 0.85, "en"), ("id_number", 0.7, "en"), ("id_card", 0.85, "en"),
        ("identity_card", 0.9, "en"), ("identity_number", 0.85, "en"), ("passport", 0.9, "en"),
        ("passport_number", 0.95, "en"), ("passport_no", 0.95, "en"),
        ("driver_license", 0.9, "en"), ("drivers_license", 0.9, "en"),
        ("driving_licence", 0.9, "en"), ("license_number", 0.6, "en"),
        ("licence_number", 0.6, "en"), ("tax_id", 0.85, "en"), ("tin", 0.45, "en"),
        ("tax_number", 0.85, "en"), ("taxpayer_id", 0.85, "en"), ("nhs_number", 0.9, "en"),
        ("nino", 0.95, "en"), ("ni_number", 0.9, "en"), ("national_insurance", 0.9, "en"),
        ("aadhaar", 0.9, "en"),
        ("nir", 0.95, "fr"), ("insee", 0.7, "fr"), ("numéro_sécu", 0.95, "fr"),
        ("num_secu", 0.9, "fr"), ("sécu", 0.6, "fr"), ("sécurité_sociale", 0.95, "fr"),
        ("nss", 0.8, "*"), ("numéro_fiscal", 0.85, "fr"), ("cni", 0.8, "fr"),
        ("carte_identité", 0.9, "fr"), ("pièce_identité", 0.85, "fr"),
        ("passeport", 0.9, "fr"), ("permis_de_conduire", 0.85, "fr"),
        ("steuer_id", 0.95, "de"), ("steueridentifikationsnummer", 0.95, "de"),
        ("steuernummer", 0.9, "de"), ("idnr", 0.8, "de"), ("personalausweis", 0.9, "de"),
        ("ausweisnummer", 0.9, "de"), ("reisepass", 0.9, "de"),
        ("sozialversicherungsnummer", 0.95, "de"), ("svnr", 0.85, "de"),
        ("rentenversicherungsnummer", 0.9, "de"), ("führerschein", 0.85, "de"),
        ("fuehrerschein", 0.85, "de"),
        ("dni", 0.95, "es"), ("nie", 0.8, "es"), ("nif", 0.85, "*"), ("nuss", 0.8, "es"),
        ("pasaporte", 0.9, "es"), ("documento_de_identidad", 0.9, "es"), ("cédula", 0.9, "es"),
        ("curp", 0.95, "es"), ("rut", 0.8, "es"),
        ("cpf", 0.95, "pt"), ("rg", 0.6, "pt"), ("cnh", 0.8, "pt"),
        ("número_de_contribuinte", 0.85, "pt"), ("passaporte", 0.9, "pt"),
        ("codice_fiscale", 0.95, "it"), ("carta_d_identità", 0.9, "it"),
        ("carta_identità", 0.9, "it"), ("passaporto", 0.9, "it"),
        ("tessera_sanitaria", 0.85, "it"),
        ("bsn", 0.95, "nl"), ("burgerservicenummer", 0.95, "nl"), ("sofinummer", 0.95, "nl"),
        ("paspoort", 0.9, "nl"), ("rijbewijs", 0.85, "nl"), ("identiteitskaart", 0.9, "nl"),
    ],
    Iban: [
        ("iban", 0.95, "*"), ("bank_account", 0.8, "en"), ("bank_account_number", 0.9, "en"),
        ("account_number", 0.5, "en"), ("account_no", 0.5, "en"),
        ("rib", 0.8, "fr"), ("compte_bancaire", 0.85, "fr"), ("numéro_de_compte", 0.7, "fr"),
        ("kontonummer", 0.85, "de"), ("bankverbindung", 0.8, "de"),
        ("cuenta_bancaria", 0.85, "es"), ("número_de_cuenta", 0.7, "es"),
        ("conta_bancária", 0.85, "pt"), ("conto_corrente", 0.8, "it"),
        ("rekeningnummer", 0.85, "nl"),
    ],
    CardNumber: [
        ("credit_card", 0.95, "en"), ("card_number", 0.95, "en"), ("card_no", 0.9, "en"),
        ("card_num", 0.9, "en"), ("cc_number", 0.95, "en"), ("cc_num", 0.9, "en"),
        ("ccnum", 0.9, "en"), ("cc_no", 0.9, "en"), ("pan", 0.5, "en"), ("card", 0.6, "en"),
        ("debit_card", 0.9, "en"), ("payment_card", 0.9, "en"),
        ("carte_bancaire", 0.95, "fr"), ("numéro_de_carte", 0.9, "fr"),
        ("carte_de_crédit", 0.95, "fr"),
        ("kreditkarte", 0.95, "de"), ("kreditkartennummer", 0.95, "de"),
        ("kartennummer", 0.85, "de"),
        ("tarjeta", 0.8, "es"), ("tarjeta_de_crédito", 0.95, "es"),
        ("número_de_tarjeta", 0.9, "es"),
        ("cartão", 0.8, "pt"), ("cartão_de_crédito", 0.95, "pt"), ("número_do_cartão", 0.9, "pt"),
        ("carta_di_credito", 0.95, "it"), ("numero_carta", 0.9, "it"),
        ("creditcard", 0.95, "nl"), ("creditcardnummer", 0.95, "nl"), ("kaartnummer", 0.85, "nl"),
    ],
    IpAddress: [
        ("ip", 0.7, "*"), ("ip_address", 0.95, "en"), ("ip_addr", 0.95, "*"),
        ("ipv4", 0.9, "*"), ("ipv6", 0.9, "*"), ("ipv4_address", 0.95, "en"),
        ("ipv6_address", 0.95, "en"),
        ("remote_addr", 0.85, "en"), ("remote_ip", 0.9, "en"), ("client_ip", 0.9, "en"),
        ("x_forwarded_for", 0.85, "en"), ("forwarded_for", 0.8, "en"),
        ("adresse_ip", 0.95, "fr"), ("ip_adresse", 0.95, "de"), ("dirección_ip", 0.95, "es"),
        ("endereço_ip", 0.95, "pt"), ("indirizzo_ip", 0.95, "it"), ("ip_adres", 0.95, "nl"),
    ],
    DeviceId: [
        ("mac_address", 0.8, "en"), ("mac_addr", 0.8, "en"), ("imei", 0.85, "*"),
        ("advertising_id", 0.8, "en"), ("idfa", 0.85, "*"), ("gaid", 0.8, "*"),
        ("device_fingerprint", 0.6, "en"), ("android_id", 0.7, "en"),
    ],
    Credential: [
        ("password", 0.95, "en"), ("passwd", 0.95, "*"), ("pwd", 0.85, "*"), ("pass", 0.5, "*"),
        ("password_hash", 0.95, "en"), ("hashed_password", 0.95, "en"),
        ("encrypted_password", 0.95, "en"), ("password_digest", 0.95, "en"),
        ("pass_hash", 0.9, "en"), ("secret", 0.6, "en"), ("client_secret", 0.85, "en"),
        ("api_key", 0.8, "en"), ("api_token", 0.8, "en"), ("access_token", 0.8, "en"),
        ("refresh_token", 0.8, "en"), ("auth_token", 0.8, "en"), ("token", 0.5, "en"),
        ("otp_secret", 0.9, "en"), ("totp_secret", 0.9, "en"), ("mfa_secret", 0.9, "en"),
        ("secret_key", 0.8, "en"), ("private_key", 0.85, "en"), ("pin", 0.6, "*"),
        ("pin_code", 0.7, "*"), ("cvv", 0.9, "*"), ("cvc", 0.9, "*"), ("csc", 0.6, "*"),
        ("security_answer", 0.85, "en"), ("secret_answer", 0.85, "en"),
        ("mot_de_passe", 0.95, "fr"), ("mdp", 0.85, "fr"),
        ("passwort", 0.95, "de"), ("kennwort", 0.9, "de"),
        ("contraseña", 0.95, "es"), ("clave", 0.45, "es"),
        ("senha", 0.95, "pt"), ("palavra_passe", 0.95, "pt"),
        ("parola_d_ordine", 0.9, "it"), ("wachtwoord", 0.95, "nl"),
    ],
    Geolocation: [
        ("latitude", 0.45, "*"), ("longitude", 0.45, "*"), ("lat", 0.4, "*"), ("lng", 0.4, "*"),
        ("lon", 0.35, "*"), ("geolocation", 0.5, "en"), ("geo_location", 0.5, "en"),
        ("coordinates", 0.45, "en"), ("gps", 0.5, "*"), ("breitengrad", 0.45, "de"),
        ("längengrad", 0.45, "de"),
    ],
};

/// Words that contain a personal word but are not personal.
const STOP_PHRASES: &[&str] = &[
    "voicemail",
    "automobile",
    "immobile",
    "renaissance",
    "smartphone",
    "iphone",
    "microphone",
    "headphone",
    "earphone",
    "megaphone",
    "saxophone",
    "xylophone",
    "web_address",
    "url_address",
    "memory_address",
    "base_address",
    "contract_address",
    "mail_server",
    "mail_host",
    "mail_merge",
    "gmail",
    "hotmail",
    "hostname",
    "filename",
    "pathname",
    "tablename",
];

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

    #[test]
    fn finding_carries_the_match_and_a_transform() {
        let f = classify_name("courriel", &TypeKind::Text).expect("courriel");
        assert_eq!(f.matched, "courriel");
        assert_eq!(f.proposed_transform, "email");
        assert_eq!(f.level, Level::High);
        let f = classify_name("dob", &TypeKind::Date).expect("dob");
        assert_eq!(f.proposed_transform, "date_shift");
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
}
