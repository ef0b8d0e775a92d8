//! The declarations: one [`TransformDef`] per transform, in the order of `docs/rules.md`.
//! This is the only place a transform's name is written as a string.
//!
//! Output-space counts are rough and for `en` (see [`OutputSpace`]); where they come from is
//! said next to each.

use super::*;
use crate::transform::{basic, date, fake_text, finance, hash, internet, json, mask, network};
use crate::transform::{number, regex_replace, uuid};

/// What the text transforms take.
const TEXT: Fits = Fits {
    kinds: Some(&[TypeKind::Text]),
    accepts: "text types (text, varchar, char, citext) and arrays of them",
};

/// Inside a JSON document, most rules are bound as on a text column.
const AS_TEXT: NestedType = NestedType {
    type_name: "text",
    kind: TypeKind::Text,
};

/// Every transform, in the order of `docs/rules.md` (and of did-you-mean candidates).
pub(super) static ALL: [&TransformDef; 27] = [
    &KEEP,
    &SET_NULL,
    &CONSTANT,
    &HASH,
    &FIRST_NAME,
    &LAST_NAME,
    &NAME,
    &EMAIL,
    &USERNAME,
    &PHONE,
    &STREET_ADDRESS,
    &CITY,
    &POSTCODE,
    &COUNTRY,
    &COMPANY,
    &IBAN,
    &CREDIT_CARD,
    &IPV4,
    &IPV6,
    &UUID,
    &LOREM,
    &CHOICE,
    &MASK,
    &DATE_SHIFT,
    &NOISE,
    &REGEX_REPLACE,
    &JSON,
];

const fn example(
    rule: &'static str,
    column_type: &'static str,
    input: Option<&'static str>,
) -> Example {
    Example {
        rule,
        column_type,
        input,
    }
}

pub static KEEP: TransformDef = TransformDef {
    name: "keep",
    doc: "copies the value as is; the column is not even decoded",
    params: &[],
    fits: Fits::ANY,
    effect: Effect::PassThrough,
    output_space: OutputSpace::FromInput,
    unchanged: Unchanged::Always,
    secret: SecretUse::Unused,
    elementwise: false,
    in_json: AS_TEXT,
    distinct: Distinct::Identity,
    nulls: Nulls::FromNull,
    examples: &[example("keep", "text", Some("kept as is"))],
    bind: basic::bind_keep,
};

pub static SET_NULL: TransformDef = TransformDef {
    name: "set_null",
    doc: "every value becomes NULL; refused on a NOT NULL column",
    params: &[],
    fits: Fits::ANY,
    effect: Effect::ReplacesWhole,
    output_space: OutputSpace::Fixed,
    unchanged: Unchanged::Never,
    secret: SecretUse::Unused,
    elementwise: false,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::Always,
    examples: &[example("set_null", "text", Some("anything"))],
    bind: basic::bind_set_null,
};

pub static CONSTANT: TransformDef = TransformDef {
    name: "constant",
    doc: "every value, NULL included, becomes `value`",
    params: &[ParamDef {
        name: "value",
        kind: ParamKind::Scalar,
        need: Need::Required,
        doc: "the replacement, in PostgreSQL's text form for the column's type (an array literal such as `'{a,b}'` for an array column)",
    }],
    fits: Fits::ANY,
    effect: Effect::ReplacesWhole,
    output_space: OutputSpace::Fixed,
    unchanged: Unchanged::Possible,
    secret: SecretUse::Unkeyed,
    elementwise: false,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::Never,
    examples: &[
        example(
            "{ transform: constant, value: disabled }",
            "text",
            Some("$2b$12$Kix9"),
        ),
        example("{ transform: constant, value: disabled }", "text", None),
    ],
    bind: basic::bind_constant,
};

pub static HASH: TransformDef = TransformDef {
    name: "hash",
    doc: "the hex of the value's keyed HMAC-SHA256, cut to `length` digits",
    params: &[ParamDef {
        name: "length",
        kind: ParamKind::Whole { min: 1, max: 64 },
        need: Need::Default(DefaultValue::Whole(64)),
        doc: "hex digits kept, 1 to 64",
    }],
    fits: Fits {
        kinds: Some(&[TypeKind::Text, TypeKind::Bytea]),
        accepts: "text types, bytea, and arrays of them",
    },
    effect: Effect::ReplacesWhole,
    // 16^length: 2^256 at the default length (`unique` needs at least 8 digits, 2^32).
    output_space: OutputSpace::Unbounded,
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("hash", "text", Some("123-45-6789")),
        example(
            "{ transform: hash, length: 12 }",
            "text",
            Some("123-45-6789"),
        ),
        example("{ transform: hash, length: 12 }", "bytea", Some("\\x00ff")),
    ],
    bind: hash::bind,
};

pub static FIRST_NAME: TransformDef = TransformDef {
    name: "first_name",
    doc: "a first name of the locale",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // `fake`'s 3,007 English first names (120 German, 1,019 French).
    output_space: OutputSpace::Common { about: 3.0e3 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("first_name", "text", Some("Jane")),
        example(
            "{ transform: first_name, locale: es }",
            "text",
            Some("Jane"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::FirstName),
};

pub static LAST_NAME: TransformDef = TransformDef {
    name: "last_name",
    doc: "a last name of the locale",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // `fake`'s 474 English last names.
    output_space: OutputSpace::Common { about: 474.0 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[example("last_name", "text", Some("Doe"))],
    bind: |b| fake_text::bind(b, fake_text::Kind::LastName),
};

pub static NAME: TransformDef = TransformDef {
    name: "name",
    doc: "a first and a last name, in the locale's order",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // First names × last names.
    output_space: OutputSpace::Common { about: 1.4e6 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("name", "text", Some("Jane Doe")),
        example("{ transform: name, locale: fr }", "text", Some("Jane Doe")),
        example("{ transform: name, locale: de }", "text", Some("Jane Doe")),
        example("{ transform: name, locale: es }", "text", Some("Jane Doe")),
        example(
            "{ transform: name, locale: pt_br }",
            "text",
            Some("Jane Doe"),
        ),
        example("{ transform: name, locale: ja }", "text", Some("Jane Doe")),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Name),
};

pub static EMAIL: TransformDef = TransformDef {
    name: "email",
    doc: "an ASCII address of the locale's names and a drawn number, at a reserved domain",
    params: &[ParamDef {
        name: "domain",
        kind: ParamKind::String,
        need: Need::Optional,
        doc: "the domain of every address (`staging.test`); without it, one of the reserved `example.com`, `example.net`, `example.org`",
    }],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Usernames (below) × 3 reserved domains.
    output_space: OutputSpace::Drawn { about: 1.0e12 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("email", "text", Some("jane.doe@corp.com")),
        example(
            "{ transform: email, unique: true }",
            "text",
            Some("jane.doe@corp.com"),
        ),
        example(
            "{ transform: email, domain: staging.test }",
            "text",
            Some("jane.doe@corp.com"),
        ),
        example(
            "{ transform: email, locale: ja }",
            "text",
            Some("jane.doe@corp.com"),
        ),
        example("email", "character varying(20)", Some("jane.doe@corp.com")),
    ],
    bind: internet::bind_email,
};

pub static USERNAME: TransformDef = TransformDef {
    name: "username",
    doc: "a handle made like an email's local part",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Four shapes of first and last name with a 5- or 6-digit number.
    output_space: OutputSpace::Drawn { about: 4.0e11 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[example("username", "text", Some("jdoe"))],
    bind: internet::bind_username,
};

pub static PHONE: TransformDef = TransformDef {
    name: "phone",
    doc: "a phone number in one of the locale's mobile formats",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Four English formats of 9·10⁹ numbers each.
    output_space: OutputSpace::Drawn { about: 3.6e10 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("phone", "text", Some("+1 555 0100")),
        example(
            "{ transform: phone, locale: fr }",
            "text",
            Some("+1 555 0100"),
        ),
        example(
            "{ transform: phone, locale: de }",
            "text",
            Some("+1 555 0100"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Phone),
};

pub static STREET_ADDRESS: TransformDef = TransformDef {
    name: "street_address",
    doc: "an address line in the locale's shape",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // House numbers up to 99,999 × street names (names × 225 street suffixes): about 8·10¹⁰
    // lines, but not evenly drawn — a third of the numbers have three digits, common names
    // come up more often — so two independent draws meet about as often as in 10⁹ equally
    // likely lines (1 / Σp²). That is what the leak probe must count with: with 8·10¹⁰, one
    // fake address equal to a real one among 20,000 users of the demo (whose addresses are
    // drawn from the same lists) failed the run as a leak.
    output_space: OutputSpace::Drawn { about: 1.0e9 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("street_address", "text", Some("1 Main Street")),
        example(
            "{ transform: street_address, locale: fr }",
            "text",
            Some("1 Main Street"),
        ),
        example(
            "{ transform: street_address, locale: ja }",
            "text",
            Some("1 Main Street"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::StreetAddress),
};

pub static CITY: TransformDef = TransformDef {
    name: "city",
    doc: "a city: real names for fr, de, es, pt_br and ja; built names for en",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Most English built names are a last name and one of 19 suffixes; the real-city lists
    // of the other locales hold about fifty.
    output_space: OutputSpace::Common { about: 1.0e4 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("city", "text", Some("Springfield")),
        example(
            "{ transform: city, locale: es }",
            "text",
            Some("Springfield"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::City),
};

pub static POSTCODE: TransformDef = TransformDef {
    name: "postcode",
    doc: "a postcode in the locale's format",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Five digits (half of the English ones carry a ZIP+4 suffix).
    output_space: OutputSpace::Common { about: 1.0e5 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("postcode", "text", Some("12345")),
        example(
            "{ transform: postcode, locale: pt_br }",
            "text",
            Some("12345"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Postcode),
};

pub static COUNTRY: TransformDef = TransformDef {
    name: "country",
    doc: "a country name in the locale's language",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    output_space: OutputSpace::Common { about: 244.0 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("country", "text", Some("France")),
        example("{ transform: country, locale: de }", "text", Some("France")),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Country),
};

pub static COMPANY: TransformDef = TransformDef {
    name: "company",
    doc: "a company name with the locale's last names and legal forms",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // One or two last names and one of four legal forms.
    output_space: OutputSpace::Common { about: 9.0e5 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("company", "text", Some("Acme Inc")),
        example(
            "{ transform: company, locale: fr }",
            "text",
            Some("Acme Inc"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Company),
};

pub static IBAN: TransformDef = TransformDef {
    name: "iban",
    doc: "an IBAN with a valid checksum, in the locale's country format",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // A British BBAN: 4 letters and 14 digits, about 4.6·10¹⁹.
    output_space: OutputSpace::Unbounded,
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("iban", "text", Some("GB82WEST12345698765432")),
        example(
            "{ transform: iban, locale: de }",
            "text",
            Some("GB82WEST12345698765432"),
        ),
    ],
    bind: finance::bind_iban,
};

pub static CREDIT_CARD: TransformDef = TransformDef {
    name: "credit_card",
    doc: "a Luhn-valid card number with a real network prefix",
    params: &[],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Ten network prefixes, each with 13 to 14 drawn digits.
    output_space: OutputSpace::Drawn { about: 1.0e15 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[example("credit_card", "text", Some("4111111111111111"))],
    bind: finance::bind_credit_card,
};

/// What the address transforms take.
const ADDRESS: Fits = Fits {
    kinds: Some(&[TypeKind::Inet, TypeKind::Cidr, TypeKind::Text]),
    accepts: "inet, cidr and text types",
};

pub static IPV4: TransformDef = TransformDef {
    name: "ipv4",
    doc: "a public-looking unicast IPv4 address; the input's prefix length is kept",
    params: &[],
    fits: ADDRESS,
    effect: Effect::ReplacesWhole,
    // First octet 1–223 without 10 and 127: 221 · 2²⁴ addresses.
    output_space: OutputSpace::Drawn { about: 3.5e9 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[
        example("ipv4", "inet", Some("192.168.1.20")),
        example("ipv4", "inet", Some("10.1.2.3/8")),
        example("ipv4", "cidr", Some("10.20.0.0/16")),
    ],
    bind: |b| network::bind(b, false),
};

pub static IPV6: TransformDef = TransformDef {
    name: "ipv6",
    doc: "an IPv6 address in the documentation prefix 2001:db8::/32",
    params: &[],
    fits: ADDRESS,
    effect: Effect::ReplacesWhole,
    // 96 drawn bits.
    output_space: OutputSpace::Unbounded,
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[example("ipv6", "inet", Some("fe80::1"))],
    bind: |b| network::bind(b, true),
};

pub static UUID: TransformDef = TransformDef {
    name: "uuid",
    doc: "a UUID with the version-4 layout, its 122 free bits from the value's seed",
    params: &[],
    fits: Fits {
        kinds: Some(&[TypeKind::Uuid, TypeKind::Text]),
        accepts: "uuid and text types",
    },
    effect: Effect::ReplacesWhole,
    output_space: OutputSpace::Unbounded,
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::OnRequest,
    nulls: Nulls::FromNull,
    examples: &[example(
        "uuid",
        "uuid",
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    )],
    bind: uuid::bind,
};

pub static LOREM: TransformDef = TransformDef {
    name: "lorem",
    doc: "Latin placeholder text, capitalized, ending with a period",
    params: &[ParamDef {
        name: "words",
        kind: ParamKind::Whole { min: 1, max: 1000 },
        need: Need::Optional,
        doc: "the number of words, 1 to 1000; without it, as many words as the input has (at most 1000)",
    }],
    fits: TEXT,
    effect: Effect::ReplacesWhole,
    // Each word from `fake`'s 249 Latin words.
    output_space: OutputSpace::Common { about: 249.0 },
    unchanged: Unchanged::ByChance,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example("lorem", "text", Some("a private note")),
        example(
            "{ transform: lorem, words: 6 }",
            "text",
            Some("a private note"),
        ),
    ],
    bind: |b| fake_text::bind(b, fake_text::Kind::Lorem),
};

pub static CHOICE: TransformDef = TransformDef {
    name: "choice",
    doc: "one of the listed values, picked by the value's seed",
    params: &[
        ParamDef {
            name: "values",
            kind: ParamKind::Values,
            need: Need::Required,
            doc: "a non-empty list of values",
        },
        ParamDef {
            name: ALLOW_OWN_VALUES,
            kind: ParamKind::Bool,
            need: Need::Optional,
            doc: "`true`: the listed values may be the column's own values (a category shuffled among its own categories; each row keeps its value 1 time in as many as listed). Without it, verification fails a run where more than 1 % of the column's values are listed values",
        },
    ],
    fits: Fits::ANY,
    effect: Effect::ReplacesWhole,
    output_space: OutputSpace::Listed,
    unchanged: Unchanged::Possible,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example(
            "{ transform: choice, values: [bronze, silver, gold] }",
            "text",
            Some("platinum"),
        ),
        example(
            "{ transform: choice, values: [new, open, closed], allow_own_values: true }",
            "text",
            Some("open"),
        ),
    ],
    bind: basic::bind_choice,
};

pub static MASK: TransformDef = TransformDef {
    name: "mask",
    doc: "letters and digits replaced by `char`, except the first and last ones kept",
    params: &[
        ParamDef {
            name: "keep_first",
            kind: ParamKind::Whole {
                min: 0,
                max: 10_000,
            },
            need: Need::Default(DefaultValue::Whole(0)),
            doc: "characters kept at the start",
        },
        ParamDef {
            name: "keep_last",
            kind: ParamKind::Whole {
                min: 0,
                max: 10_000,
            },
            need: Need::Default(DefaultValue::Whole(0)),
            doc: "characters kept at the end",
        },
        ParamDef {
            name: "char",
            kind: ParamKind::Char,
            need: Need::Default(DefaultValue::Char('*')),
            doc: "the masking character",
        },
    ],
    fits: TEXT,
    effect: Effect::KeepsPart(Kept::EdgeCharacters),
    output_space: OutputSpace::FromInput,
    unchanged: Unchanged::Possible,
    secret: SecretUse::Unkeyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example(
            "{ transform: mask, keep_last: 4 }",
            "text",
            Some("4111-1111-1111-1111"),
        ),
        example(
            "{ transform: mask, keep_first: 1, char: x }",
            "text",
            Some("jane@corp.com"),
        ),
        example(
            "{ transform: mask, keep_first: 1 }",
            "character(6)",
            Some("Smith "),
        ),
    ],
    bind: mask::bind,
};

pub static DATE_SHIFT: TransformDef = TransformDef {
    name: "date_shift",
    doc: "a date or timestamp moved by a drawn offset of 1 to `days` days, never zero",
    params: &[ParamDef {
        name: "days",
        kind: ParamKind::Whole {
            min: 1,
            max: 100_000,
        },
        need: Need::Required,
        doc: "the largest shift, 1 to 100000 days",
    }],
    fits: Fits {
        kinds: Some(&[TypeKind::Date, TypeKind::Timestamp, TypeKind::TimestampTz]),
        accepts: "date, timestamp and timestamptz",
    },
    effect: Effect::Shifts,
    output_space: OutputSpace::FromInput,
    unchanged: Unchanged::Never,
    secret: SecretUse::Keyed,
    elementwise: true,
    // Reads ISO dates and timestamps alike.
    in_json: NestedType {
        type_name: "timestamptz",
        kind: TypeKind::TimestampTz,
    },
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example(
            "{ transform: date_shift, days: 30 }",
            "date",
            Some("1980-05-17"),
        ),
        example(
            "{ transform: date_shift, days: 30 }",
            "timestamptz",
            Some("2024-01-31 12:00:00+00"),
        ),
        example(
            "{ transform: date_shift, days: 30 }",
            "date",
            Some("infinity"),
        ),
    ],
    bind: date::bind,
};

pub static NOISE: TransformDef = TransformDef {
    name: "noise",
    doc: "a number moved by up to ±`percent` % of itself",
    params: &[ParamDef {
        name: "percent",
        kind: ParamKind::Positive { max: 100.0 },
        need: Need::Required,
        doc: "the largest change, above 0 and at most 100 (% of the value)",
    }],
    fits: Fits {
        kinds: Some(&[TypeKind::Int, TypeKind::Float, TypeKind::Numeric]),
        accepts: "integer, floating-point and numeric types",
    },
    effect: Effect::Shifts,
    output_space: OutputSpace::FromInput,
    // A small integer can round back to itself.
    unchanged: Unchanged::Possible,
    secret: SecretUse::Keyed,
    elementwise: true,
    in_json: NestedType {
        type_name: "numeric",
        kind: TypeKind::Numeric,
    },
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[
        example(
            "{ transform: noise, percent: 10 }",
            "integer",
            Some("52000"),
        ),
        example(
            "{ transform: noise, percent: 10 }",
            "numeric(10,2)",
            Some("1234.50"),
        ),
        example(
            "{ transform: noise, percent: 10 }",
            "double precision",
            Some("0.125"),
        ),
    ],
    bind: number::bind,
};

pub static REGEX_REPLACE: TransformDef = TransformDef {
    name: "regex_replace",
    doc: "every match of `pattern` replaced by `with`; what does not match is kept",
    params: &[
        ParamDef {
            name: "pattern",
            kind: ParamKind::String,
            need: Need::Required,
            doc: "a regular expression ([`regex` crate syntax](https://docs.rs/regex/latest/regex/#syntax))",
        },
        ParamDef {
            name: "with",
            kind: ParamKind::Scalar,
            need: Need::Required,
            doc: "the replacement: `$1` or `${1}` a group by number, `${name}` by name, `$$` a dollar sign",
        },
    ],
    fits: TEXT,
    effect: Effect::KeepsPart(Kept::Unmatched),
    output_space: OutputSpace::FromInput,
    unchanged: Unchanged::Possible,
    secret: SecretUse::Unkeyed,
    elementwise: true,
    in_json: AS_TEXT,
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[example(
        r"{ transform: regex_replace, pattern: '\d{3}-\d{2}-(\d{4})', with: 'XXX-XX-$1' }",
        "text",
        Some("SSN 123-45-6789, call back"),
    )],
    bind: regex_replace::bind,
};

pub static JSON: TransformDef = TransformDef {
    name: "json",
    doc: "rules applied inside json and jsonb documents, by path",
    params: &[ParamDef {
        name: "paths",
        kind: ParamKind::Paths,
        need: Need::Required,
        doc: "a mapping from path to rule (shorthand or mapping, any transform, `json` included)",
    }],
    fits: Fits {
        kinds: Some(&[TypeKind::Json, TypeKind::Jsonb]),
        accepts: "json and jsonb",
    },
    effect: Effect::KeepsPart(Kept::UnruledPaths),
    output_space: OutputSpace::FromInput,
    unchanged: Unchanged::Possible,
    secret: SecretUse::Nested,
    elementwise: true,
    in_json: NestedType {
        type_name: "jsonb",
        kind: TypeKind::Jsonb,
    },
    distinct: Distinct::Never,
    nulls: Nulls::FromNull,
    examples: &[example(
        r#"{ transform: json, paths: { "$.email": email, "$.phones[*]": phone } }"#,
        "jsonb",
        Some(r#"{"email": "jane@corp.com", "phones": ["555-0100"], "plan": "pro"}"#),
    )],
    bind: json::bind,
};
