//! PostgreSQL's server encodings, as restage's transforms meet them (issue 11).
//!
//! The data stage copies every table in the source database's own encoding (COPY's `ENCODING`
//! option on both ends; pg_dump sets `client_encoding` to it): no conversion on either server,
//! so every byte arrives as it was stored, whatever the encoding (a `SQL_ASCII` database
//! holding Latin-1 bytes, a `WIN1252` one holding bytes Windows-1252 leaves undefined). The
//! sessions themselves stay UTF-8, so the SQL they send (names with non-ASCII letters) means
//! what it says. Untouched columns are never decoded. Transforms work on text, so the value of a ruled column is decoded here from
//! the source encoding into a Rust string, transformed, and encoded back:
//!
//! - `UTF8`: as it is.
//! - `SQL_ASCII` (the server checks nothing and converts nothing): bytes that are valid UTF-8
//!   are read as UTF-8, any other value as Latin-1 (one byte, one character), so a transform
//!   never fails on input; what a transform writes is stored the way its input was read
//!   (Latin-1 for a Latin-1 value, when it fits; UTF-8 otherwise), so a column of a legacy
//!   Latin-1 database keeps its bytes' meaning.
//! - `LATIN1`…`LATIN10`, `ISO_8859_5`…`8`, `WIN866`, `WIN874`, `WIN1250`…`WIN1258`, `KOI8R`,
//!   `KOI8U`, `EUC_JP`, `EUC_KR`, `EUC_CN`: decoded and encoded with the tables of
//!   `encoding_rs` (the WHATWG encodings; `LATIN1` and `LATIN5` by their ISO definitions,
//!   which WHATWG replaces with the Windows code pages). A byte an encoding leaves undefined is
//!   read as U+FFFD. A character a transform writes that the encoding lacks (a Japanese fake
//!   name into a `LATIN1` database) fails the table with a message naming the column and the
//!   encoding, never the value.
//! - `EUC_TW`, `EUC_JIS_2004`, `MULE_INTERNAL`: no decoder; a ruled value that is plain ASCII
//!   is transformed, any other fails the table the same way.
//!
//! A foundation: no restage imports.

use std::borrow::Cow;

/// How the bytes of a text value in one server encoding become a string and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    #[default]
    Utf8,
    SqlAscii,
    /// ISO 8859-1: byte n is U+00nn.
    Latin1,
    /// ISO 8859-9: Latin-1 with six Turkish letters.
    Latin5,
    /// One of `encoding_rs`'s encodings, with PostgreSQL's name for it.
    Table(&'static str, &'static encoding_rs::Encoding),
    /// An encoding restage has no decoder for (its PostgreSQL name): ASCII only.
    AsciiOnly(&'static str),
}

/// A transform wrote a character the encoding cannot store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrepresentable {
    pub encoding: &'static str,
}

impl std::fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a value holds a character the database encoding {} cannot store (choose a locale of that script for this rule)",
            self.encoding
        )
    }
}

impl std::error::Error for Unrepresentable {}

/// The six places where ISO 8859-9 differs from ISO 8859-1.
const LATIN5_DIFFERENCES: [(u8, char); 6] = [
    (0xD0, 'Ğ'),
    (0xDD, 'İ'),
    (0xDE, 'Ş'),
    (0xF0, 'ğ'),
    (0xFD, 'ı'),
    (0xFE, 'ş'),
];

impl TextEncoding {
    /// The encoding of a database, by the name PostgreSQL gives it
    /// (`pg_encoding_to_char(encoding)`, `SHOW server_encoding`).
    pub fn of(server_encoding: &str) -> TextEncoding {
        use encoding_rs as e;
        let upper = server_encoding.to_ascii_uppercase();
        let table = |name: &'static str, t: &'static e::Encoding| TextEncoding::Table(name, t);
        match upper.as_str() {
            "UTF8" | "UNICODE" => TextEncoding::Utf8,
            "SQL_ASCII" => TextEncoding::SqlAscii,
            "LATIN1" => TextEncoding::Latin1,
            "LATIN5" => TextEncoding::Latin5,
            "LATIN2" => table("LATIN2", e::ISO_8859_2),
            "LATIN3" => table("LATIN3", e::ISO_8859_3),
            "LATIN4" => table("LATIN4", e::ISO_8859_4),
            "LATIN6" => table("LATIN6", e::ISO_8859_10),
            "LATIN7" => table("LATIN7", e::ISO_8859_13),
            "LATIN8" => table("LATIN8", e::ISO_8859_14),
            "LATIN9" => table("LATIN9", e::ISO_8859_15),
            "LATIN10" => table("LATIN10", e::ISO_8859_16),
            "ISO_8859_5" => table("ISO_8859_5", e::ISO_8859_5),
            "ISO_8859_6" => table("ISO_8859_6", e::ISO_8859_6),
            "ISO_8859_7" => table("ISO_8859_7", e::ISO_8859_7),
            "ISO_8859_8" => table("ISO_8859_8", e::ISO_8859_8),
            "WIN866" => table("WIN866", e::IBM866),
            "WIN874" => table("WIN874", e::WINDOWS_874),
            "WIN1250" => table("WIN1250", e::WINDOWS_1250),
            "WIN1251" => table("WIN1251", e::WINDOWS_1251),
            "WIN1252" => table("WIN1252", e::WINDOWS_1252),
            "WIN1253" => table("WIN1253", e::WINDOWS_1253),
            "WIN1254" => table("WIN1254", e::WINDOWS_1254),
            "WIN1255" => table("WIN1255", e::WINDOWS_1255),
            "WIN1256" => table("WIN1256", e::WINDOWS_1256),
            "WIN1257" => table("WIN1257", e::WINDOWS_1257),
            "WIN1258" => table("WIN1258", e::WINDOWS_1258),
            "KOI8R" | "KOI8" => table("KOI8R", e::KOI8_R),
            "KOI8U" => table("KOI8U", e::KOI8_U),
            "EUC_JP" => table("EUC_JP", e::EUC_JP),
            "EUC_KR" => table("EUC_KR", e::EUC_KR),
            "EUC_CN" => table("EUC_CN", e::GBK),
            "EUC_TW" => TextEncoding::AsciiOnly("EUC_TW"),
            "EUC_JIS_2004" => TextEncoding::AsciiOnly("EUC_JIS_2004"),
            "MULE_INTERNAL" => TextEncoding::AsciiOnly("MULE_INTERNAL"),
            // Every server encoding is named above; a future one is read as ASCII only.
            _ => TextEncoding::AsciiOnly("an encoding unknown to restage"),
        }
    }

    /// The PostgreSQL name (for `SET client_encoding` and messages).
    pub fn name(&self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF8",
            TextEncoding::SqlAscii => "SQL_ASCII",
            TextEncoding::Latin1 => "LATIN1",
            TextEncoding::Latin5 => "LATIN5",
            TextEncoding::Table(name, _) => name,
            TextEncoding::AsciiOnly(name) => name,
        }
    }

    /// Appends the text of `bytes` (a value in this encoding) to `out`. Fails only for an
    /// encoding without a decoder and a value that is not ASCII.
    pub fn decode(&self, bytes: &[u8], out: &mut String) -> Result<(), Unrepresentable> {
        match self {
            TextEncoding::Utf8 | TextEncoding::SqlAscii => match std::str::from_utf8(bytes) {
                Ok(text) => out.push_str(text),
                // UTF8 databases hold valid UTF-8 only (the server checks), so this is a
                // SQL_ASCII value: Latin-1.
                Err(_) => out.extend(bytes.iter().map(|&b| b as char)),
            },
            TextEncoding::Latin1 => out.extend(bytes.iter().map(|&b| b as char)),
            TextEncoding::Latin5 => out.extend(bytes.iter().map(|&b| {
                LATIN5_DIFFERENCES
                    .iter()
                    .find(|(byte, _)| *byte == b)
                    .map(|(_, c)| *c)
                    .unwrap_or(b as char)
            })),
            TextEncoding::Table(_, t) => {
                let (text, _) = t.decode_without_bom_handling(bytes);
                out.push_str(&text);
            }
            TextEncoding::AsciiOnly(name) => {
                if !bytes.is_ascii() {
                    return Err(Unrepresentable { encoding: name });
                }
                // ASCII is UTF-8.
                out.extend(bytes.iter().map(|&b| b as char));
            }
        }
        Ok(())
    }

    /// What a transform wrote for the value `input` (its bytes as stored), as bytes of this
    /// encoding: for `SQL_ASCII`, Latin-1 when the input was read as Latin-1 and the output
    /// fits, UTF-8 otherwise; for the others, [`TextEncoding::encode`].
    pub fn encode_like<'a>(
        &self,
        text: &'a str,
        input: Option<&[u8]>,
    ) -> Result<Cow<'a, [u8]>, Unrepresentable> {
        if *self == TextEncoding::SqlAscii
            && let Some(input) = input
            && std::str::from_utf8(input).is_err()
            && let Ok(latin1) = TextEncoding::Latin1.encode(text)
        {
            return Ok(latin1);
        }
        self.encode(text)
    }

    /// `text` as bytes of this encoding: borrowed when they are its UTF-8 bytes.
    pub fn encode<'a>(&self, text: &'a str) -> Result<Cow<'a, [u8]>, Unrepresentable> {
        let fail = || Unrepresentable {
            encoding: self.name(),
        };
        match self {
            TextEncoding::Utf8 | TextEncoding::SqlAscii => Ok(Cow::Borrowed(text.as_bytes())),
            _ if text.is_ascii() => Ok(Cow::Borrowed(text.as_bytes())),
            TextEncoding::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| fail()))
                .collect::<Result<Vec<u8>, _>>()
                .map(Cow::Owned),
            TextEncoding::Latin5 => text
                .chars()
                .map(|c| {
                    if let Some((byte, _)) = LATIN5_DIFFERENCES.iter().find(|(_, ch)| *ch == c) {
                        return Ok(*byte);
                    }
                    let code = u32::from(c);
                    let replaced = LATIN5_DIFFERENCES
                        .iter()
                        .any(|(byte, _)| u32::from(*byte) == code);
                    match u8::try_from(code) {
                        Ok(b) if !replaced => Ok(b),
                        _ => Err(fail()),
                    }
                })
                .collect::<Result<Vec<u8>, _>>()
                .map(Cow::Owned),
            TextEncoding::Table(_, t) => {
                let mut encoder = t.new_encoder();
                let capacity = encoder
                    .max_buffer_length_from_utf8_without_replacement(text.len())
                    .ok_or_else(fail)?;
                let mut out = vec![0u8; capacity];
                let (result, _, written) =
                    encoder.encode_from_utf8_without_replacement(text, &mut out, true);
                match result {
                    encoding_rs::EncoderResult::InputEmpty => {
                        out.truncate(written);
                        Ok(Cow::Owned(out))
                    }
                    _ => Err(fail()),
                }
            }
            TextEncoding::AsciiOnly(_) => Err(fail()),
        }
    }
}

/// The encoding to read a database's text values in, in Rust (a COPY's `ENCODING`, a
/// `convert_to`): `UTF8`, so the server converts, except for a `SQL_ASCII` database, which
/// the server cannot convert from — then `SQL_ASCII`, and the bytes are read by
/// [`TextEncoding::SqlAscii`]'s rule.
pub fn reading_client_encoding(server_encoding: &str) -> &'static str {
    if server_encoding.eq_ignore_ascii_case("SQL_ASCII") {
        "SQL_ASCII"
    } else {
        "UTF8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(encoding: &str, text: &str, bytes: &[u8]) {
        let e = TextEncoding::of(encoding);
        let mut decoded = String::new();
        e.decode(bytes, &mut decoded).unwrap();
        assert_eq!(decoded, text, "{encoding} decodes");
        assert_eq!(
            e.encode(text).unwrap().as_ref(),
            bytes,
            "{encoding} encodes"
        );
    }

    #[test]
    fn single_byte_encodings_by_their_iso_definitions() {
        round_trip("LATIN1", "café ÿ\u{80}", b"caf\xe9 \xff\x80");
        round_trip("LATIN5", "Işık ğ é", b"I\xfe\xfdk \xf0 \xe9");
        round_trip("LATIN9", "€uro", b"\xa4uro");
        round_trip("WIN1252", "€ “x”", b"\x80 \x93x\x94");
        round_trip("WIN1251", "Жук", b"\xc6\xf3\xea");
        round_trip("KOI8R", "Жук", b"\xf6\xd5\xcb");
        round_trip("EUC_JP", "日本", b"\xc6\xfc\xcb\xdc");
        round_trip("UTF8", "日本", "日本".as_bytes());
    }

    #[test]
    fn sql_ascii_reads_utf8_when_it_is_and_latin1_otherwise() {
        let e = TextEncoding::of("SQL_ASCII");
        let mut s = String::new();
        e.decode("café".as_bytes(), &mut s).unwrap();
        assert_eq!(s, "café");
        s.clear();
        e.decode(b"caf\xe9", &mut s).unwrap();
        assert_eq!(s, "café");
        assert_eq!(e.encode("café").unwrap().as_ref(), "café".as_bytes());
        // An output is stored as its input was read.
        let latin1_input: &[u8] = b"Wei\xdf";
        assert_eq!(
            e.encode_like("**iß", Some(latin1_input)).unwrap().as_ref(),
            b"**i\xdf"
        );
        assert_eq!(
            e.encode_like("日本", Some(latin1_input)).unwrap().as_ref(),
            "日本".as_bytes()
        );
        assert_eq!(
            e.encode_like("**iß", Some("Weiß".as_bytes()))
                .unwrap()
                .as_ref(),
            "**iß".as_bytes()
        );
        assert_eq!(e.encode_like("ß", None).unwrap().as_ref(), "ß".as_bytes());
    }

    #[test]
    fn characters_an_encoding_lacks_are_refused_not_replaced() {
        let err = TextEncoding::of("LATIN1").encode("日本").unwrap_err();
        assert_eq!(err.encoding, "LATIN1");
        assert!(
            TextEncoding::of("LATIN5").encode("Ý").is_err(),
            "0xDD is İ in LATIN5"
        );
        assert!(TextEncoding::of("WIN1251").encode("é").is_err());
        let tw = TextEncoding::of("EUC_TW");
        let mut s = String::new();
        tw.decode(b"abc", &mut s).unwrap();
        assert_eq!(s, "abc");
        assert!(tw.decode(b"\xa4\xa1", &mut s).is_err());
        assert_eq!(tw.encode("abc").unwrap().as_ref(), b"abc");
    }

    #[test]
    fn reading_sessions_use_utf8_but_for_sql_ascii() {
        assert_eq!(reading_client_encoding("LATIN1"), "UTF8");
        assert_eq!(reading_client_encoding("SQL_ASCII"), "SQL_ASCII");
    }
}
