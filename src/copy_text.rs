//! PostgreSQL's COPY text format, as `COPY ... TO STDOUT` writes it and `COPY ... FROM STDIN`
//! reads it: one row per line, fields separated by tabs, `\N` for NULL, and backslash escapes
//! for backslash, tab, newline, carriage return (and, on input, `\b \f \v`, octal `\NNN` and
//! hex `\xHH`).
//!
//! Fields of columns without a rule are never decoded: [`fields`] only finds their bounds, and
//! the raw bytes are copied to the output as they came. Only ruled columns go through
//! [`decode`] and [`encode`].

use std::fmt;

/// The NULL marker.
pub const NULL: &[u8] = b"\\N";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyTextError {
    /// A field whose bytes are not UTF-8 after unescaping (the server encoding is not UTF-8
    /// and the client encoding is; should not happen, since sessions use UTF-8).
    NotUtf8,
    /// A row has a different number of fields than the column list.
    FieldCount { expected: usize, found: usize },
    /// A backslash at the very end of a field.
    DanglingBackslash,
}

impl fmt::Display for CopyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyTextError::NotUtf8 => f.write_str("a value is not valid UTF-8"),
            CopyTextError::FieldCount { expected, found } => {
                write!(f, "a row has {found} fields where {expected} were expected")
            }
            CopyTextError::DanglingBackslash => f.write_str("a value ends with a lone backslash"),
        }
    }
}

impl std::error::Error for CopyTextError {}

/// The raw fields of one row (without its newline). Tabs inside values are always escaped, so
/// a plain split on tab bytes is exact.
pub fn fields(row: &[u8]) -> impl Iterator<Item = &[u8]> {
    row.split(|&b| b == b'\t')
}

/// Splits `row` into `out` (cleared first), checking the count.
pub fn split_row<'a>(
    row: &'a [u8],
    expected: usize,
    out: &mut Vec<&'a [u8]>,
) -> Result<(), CopyTextError> {
    out.clear();
    let mut start = 0;
    for pos in memchr::memchr_iter(b'\t', row) {
        out.push(&row[start..pos]);
        start = pos + 1;
    }
    out.push(&row[start..]);
    if out.len() != expected {
        return Err(CopyTextError::FieldCount {
            expected,
            found: out.len(),
        });
    }
    Ok(())
}

/// The rows of a buffer of whole lines (each ending in `\n`).
pub fn rows(buffer: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = buffer.strip_suffix(b"\n").unwrap_or(buffer);
    let empty = body.is_empty() && buffer.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

pub fn is_null(field: &[u8]) -> bool {
    field == NULL
}

/// The value of `field`: the field itself when it holds no escape (no copy), or when its one
/// escape is a leading `\\` (a bytea in hex, `\\x0a1b…`: the value is the field without
/// its first byte); else its decoding in `scratch` (cleared first).
pub fn decode_borrowed<'a>(
    field: &'a [u8],
    scratch: &'a mut String,
) -> Result<&'a str, CopyTextError> {
    match memchr::memchr(b'\\', field) {
        None => return std::str::from_utf8(field).map_err(|_| CopyTextError::NotUtf8),
        Some(0) if field.get(1) == Some(&b'\\') && memchr::memchr(b'\\', &field[2..]).is_none() => {
            return std::str::from_utf8(&field[1..]).map_err(|_| CopyTextError::NotUtf8);
        }
        Some(_) => {}
    }
    scratch.clear();
    decode(field, scratch)?;
    Ok(scratch.as_str())
}

/// True when COPY's text format escapes some character of `value`.
pub fn needs_escape(value: &str) -> bool {
    memchr::memchr3(b'\\', b'\t', b'\n', value.as_bytes()).is_some()
        || memchr::memchr(b'\r', value.as_bytes()).is_some()
}

/// Undoes COPY's escaping: appends the value of `field` to `out`.
pub fn decode(field: &[u8], out: &mut String) -> Result<(), CopyTextError> {
    if memchr::memchr(b'\\', field).is_none() {
        let text = std::str::from_utf8(field).map_err(|_| CopyTextError::NotUtf8)?;
        out.push_str(text);
        return Ok(());
    }
    // Decoded into `out`'s own buffer: a big value is not built aside and then copied.
    let mut bytes = std::mem::take(out).into_bytes();
    let start = bytes.len();
    bytes.reserve(field.len());
    let result = unescape(field, &mut bytes);
    match (result, String::from_utf8(bytes)) {
        (Ok(()), Ok(text)) => {
            *out = text;
            Ok(())
        }
        (result, decoded) => {
            // What was there before stays; the bad value does not.
            let mut bytes = match decoded {
                Ok(text) => text.into_bytes(),
                Err(e) => e.into_bytes(),
            };
            bytes.truncate(start);
            *out = String::from_utf8(bytes).unwrap_or_default();
            result.and(Err(CopyTextError::NotUtf8))
        }
    }
}

/// Undoes COPY's escaping: appends the bytes of the value of `field` to `bytes`, in the
/// session's client encoding (every server encoding is ASCII-safe: a backslash byte is a
/// backslash).
pub fn unescape(field: &[u8], bytes: &mut Vec<u8>) -> Result<(), CopyTextError> {
    if memchr::memchr(b'\\', field).is_none() {
        bytes.extend_from_slice(field);
        return Ok(());
    }
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            bytes.push(b);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&c) = field.get(i) else {
            return Err(CopyTextError::DanglingBackslash);
        };
        i += 1;
        match c {
            b'b' => bytes.push(0x08),
            b'f' => bytes.push(0x0c),
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'v' => bytes.push(0x0b),
            b'0'..=b'7' => {
                let mut value = (c - b'0') as u32;
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                bytes.push((value & 0xff) as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field.get(i).and_then(|&d| (d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    bytes.push(b'x');
                } else {
                    bytes.push(value as u8);
                }
            }
            other => bytes.push(other),
        }
    }
    Ok(())
}

/// Escapes `value` for COPY and appends it to `out`.
pub fn encode(value: &str, out: &mut Vec<u8>) {
    escape(value.as_bytes(), out)
}

/// Escapes the bytes of a value (in the session's client encoding) for COPY and appends them
/// to `out`.
pub fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes
        .iter()
        .any(|&b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(field: &[u8]) -> String {
        let mut s = String::new();
        decode(field, &mut s).unwrap();
        s
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(dec(b"plain"), "plain");
        assert_eq!(dec(b"a\\tb\\nc\\\\d\\re"), "a\tb\nc\\d\re");
        assert_eq!(dec(b"\\101\\x42"), "AB");
        assert_eq!(dec("caf\u{e9}".as_bytes()), "café");
        assert_eq!(dec(b"\\\\x00ff"), "\\x00ff");
    }

    #[test]
    fn splits_rows_and_fields() {
        let buf = b"1\ta\\tb\t\\N\n2\t\t\n";
        let rows: Vec<&[u8]> = rows(buf).collect();
        assert_eq!(rows.len(), 2);
        let mut f = Vec::new();
        split_row(rows[0], 3, &mut f).unwrap();
        assert_eq!(f, vec![&b"1"[..], b"a\\tb", b"\\N"]);
        assert!(is_null(f[2]));
        split_row(rows[1], 3, &mut f).unwrap();
        assert_eq!(f, vec![&b"2"[..], b"", b""]);
        assert!(!is_null(f[1]));
        assert_eq!(
            split_row(rows[1], 2, &mut f),
            Err(CopyTextError::FieldCount {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(super::rows(b"").count(), 0);
        assert_eq!(
            super::rows(b"\n").count(),
            1,
            "one row with one empty field"
        );
    }

    #[test]
    fn borrowed_decoding_copies_only_what_has_escapes() {
        let mut scratch = String::new();
        for field in [
            &b"plain"[..],
            b"\\\\x00ff",
            b"a\\tb",
            b"\\\\x00\\\\",
            b"\\101",
            b"",
        ] {
            let borrowed = decode_borrowed(field, &mut scratch).unwrap().to_string();
            let mut full = String::new();
            decode(field, &mut full).unwrap();
            assert_eq!(borrowed, full, "{:?}", String::from_utf8_lossy(field));
        }
        // No copy for a plain field or a bytea in hex: the value points into the field.
        let field = b"\\\\x00ff";
        let value = decode_borrowed(field, &mut scratch).unwrap();
        assert!(field.as_ptr_range().contains(&value.as_ptr()));
        assert_eq!(
            decode_borrowed(b"abc\\", &mut scratch),
            Err(CopyTextError::DanglingBackslash)
        );
        // A failed decode leaves what `out` held before.
        let mut out = "kept ".to_string();
        assert!(decode(b"\\xff", &mut out).is_err());
        assert_eq!(out, "kept ");
    }

    #[test]
    fn dangling_backslash_is_an_error() {
        let mut s = String::new();
        assert_eq!(
            decode(b"abc\\", &mut s),
            Err(CopyTextError::DanglingBackslash)
        );
    }

    proptest! {
        // Fuzzing the parser (issue 6): 4,000 cases for each property below.
        #![proptest_config(ProptestConfig::with_cases(4000))]

        // Borrowed decoding gives what decoding gives, for any field.
        #[test]
        fn borrowed_decoding_agrees(bytes in proptest::collection::vec(
            prop_oneof![Just(b'\\'), Just(b'x'), Just(b't'), any::<u8>()], 0..48)) {
            let mut scratch = String::new();
            let mut full = String::new();
            let borrowed = decode_borrowed(&bytes, &mut scratch).map(str::to_string);
            prop_assert_eq!(borrowed, decode(&bytes, &mut full).map(|()| full.clone()));
        }

        // Any string survives encode → decode, and encoded output never contains a raw tab
        // or newline (which would split fields or rows).
        #[test]
        fn roundtrip(value in ".*") {
            let mut encoded = Vec::new();
            encode(&value, &mut encoded);
            prop_assert!(!encoded.contains(&b'\t') && !encoded.contains(&b'\n'));
            let mut decoded = String::new();
            decode(&encoded, &mut decoded).unwrap();
            prop_assert_eq!(decoded, value);
        }

        // Arbitrary bytes never panic the decoder.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = String::new();
            let _ = decode(&bytes, &mut s);
        }

        // Escape-heavy input (octal, hex, named escapes, a trailing backslash) never panics;
        // whatever decodes encodes back to something that decodes to the same value.
        #[test]
        fn escapes_never_panic(
            field in r"(\\[0-7]{1,3}|\\x[0-9a-fA-F]{0,3}|\\[btnvfrN\\a-z]|[^\\\t\n]){0,24}\\?"
        ) {
            let mut value = String::new();
            if decode(field.as_bytes(), &mut value).is_ok() {
                let mut encoded = Vec::new();
                encode(&value, &mut encoded);
                let mut again = String::new();
                decode(&encoded, &mut again).unwrap();
                prop_assert_eq!(again, value);
            }
        }

        // Arbitrary buffers split into rows and fields without panicking, for any expected
        // field count; a row either has that many fields or gives FieldCount.
        #[test]
        fn rows_and_fields_never_panic(
            buffer in proptest::collection::vec(
                prop_oneof![Just(b'\t'), Just(b'\n'), Just(b'\\'), Just(b'N'), any::<u8>()],
                0..256,
            ),
            expected in 0usize..6,
        ) {
            let mut fields = Vec::new();
            for row in rows(&buffer) {
                prop_assert!(!row.contains(&b'\n'));
                match split_row(row, expected, &mut fields) {
                    Ok(()) => prop_assert_eq!(fields.len(), expected),
                    Err(CopyTextError::FieldCount { expected: e, found }) => {
                        prop_assert_eq!(e, expected);
                        prop_assert_ne!(found, expected);
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
                for f in &fields {
                    let mut s = String::new();
                    let _ = decode(f, &mut s);
                }
            }
        }

        // A row built from encoded values (None: NULL) splits back into exactly those values.
        #[test]
        fn rows_of_encoded_values_roundtrip(
            values in proptest::collection::vec(proptest::option::of(".*"), 1..6),
            copies in 1usize..4,
        ) {
            let mut buffer = Vec::new();
            for _ in 0..copies {
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        buffer.push(b'\t');
                    }
                    match v {
                        Some(v) => encode(v, &mut buffer),
                        None => buffer.extend_from_slice(NULL),
                    }
                }
                buffer.push(b'\n');
            }
            let mut fields = Vec::new();
            let mut n = 0;
            for row in rows(&buffer) {
                n += 1;
                split_row(row, values.len(), &mut fields).unwrap();
                for (field, expected) in fields.iter().zip(&values) {
                    match expected {
                        None => prop_assert!(is_null(field)),
                        Some(v) => {
                            let mut s = String::new();
                            decode(field, &mut s).unwrap();
                            prop_assert_eq!(&s, v);
                        }
                    }
                }
            }
            prop_assert_eq!(n, copies);
        }
    }
}
