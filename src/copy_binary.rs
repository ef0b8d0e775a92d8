//! PostgreSQL's COPY binary format, as `COPY ... TO STDOUT (FORMAT binary)` writes it and
//! `COPY ... FROM STDIN (FORMAT binary)` reads it: a header (a signature, flags, an extension
//! area), then per row a 16-bit field count and, per field, a 32-bit length (-1 for NULL)
//! and that many bytes of the type's binary value, then a trailer (a count of -1). All
//! integers are big-endian.
//!
//! Why restage reads it (issue 14): the servers' text output and input of timestamps,
//! numbers and jsonb are most of a plain copy's CPU, and a binary field needs no unescaping.
//! Which columns may travel in it is [`crate::catalog::BinaryLayout`]'s to say; this module
//! only walks the bytes. The data stage hands it batches of whole CopyData messages: the
//! header sits in front of the first row of a job's first batch, and the trailer is the last
//! message of its last batch.

use std::fmt;

/// The first 11 bytes of a binary COPY stream.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The bytes of a NULL field (a length of -1).
pub const NULL: [u8; 4] = (-1i32).to_be_bytes();

/// The trailer: a field count of -1.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyBinaryError {
    /// The bytes end inside a row or the header.
    Truncated,
    /// A row has a different number of fields than the column list.
    FieldCount { expected: usize, found: i16 },
    /// A field length below -1.
    BadLength(i32),
    /// Bytes after the trailer.
    AfterTrailer,
}

impl fmt::Display for CopyBinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyBinaryError::Truncated => f.write_str("binary COPY data ends inside a row"),
            CopyBinaryError::FieldCount { expected, found } => {
                write!(f, "a row has {found} fields where {expected} were expected")
            }
            CopyBinaryError::BadLength(n) => write!(f, "a field has the length {n}"),
            CopyBinaryError::AfterTrailer => {
                f.write_str("binary COPY data goes on after its trailer")
            }
        }
    }
}

impl std::error::Error for CopyBinaryError {}

/// A piece of a batch, in order: the header, a row, or the trailer.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// The header, whole (to write again as it is).
    Header(&'a [u8]),
    /// A row's fields (None: NULL), in `fields`.
    Row,
    Trailer,
}

/// Reads a batch of whole messages of a binary COPY stream, piece by piece.
pub struct Reader<'a> {
    input: &'a [u8],
    at: usize,
    expected: usize,
    ended: bool,
}

impl<'a> Reader<'a> {
    /// A reader of `input`, whose rows have `expected` fields each.
    pub fn new(input: &'a [u8], expected: usize) -> Reader<'a> {
        Reader {
            input,
            at: 0,
            expected,
            ended: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CopyBinaryError> {
        let end = self.at.checked_add(n).ok_or(CopyBinaryError::Truncated)?;
        let bytes = self
            .input
            .get(self.at..end)
            .ok_or(CopyBinaryError::Truncated)?;
        self.at = end;
        Ok(bytes)
    }

    fn int32(&mut self) -> Result<i32, CopyBinaryError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next piece, None at the end of the batch; a row's fields are put in `fields`
    /// (cleared first). A header is only looked for at the start of the batch (a row's
    /// field count cannot read as the signature: it would be 20,551 fields).
    pub fn next(
        &mut self,
        fields: &mut Vec<Option<&'a [u8]>>,
    ) -> Result<Option<Piece<'a>>, CopyBinaryError> {
        if self.at >= self.input.len() {
            return Ok(None);
        }
        if self.ended {
            return Err(CopyBinaryError::AfterTrailer);
        }
        if self.at == 0 && self.input.starts_with(SIGNATURE) {
            self.take(SIGNATURE.len() + 4)?;
            let extension = self.int32()?;
            let extension =
                usize::try_from(extension).map_err(|_| CopyBinaryError::BadLength(extension))?;
            self.take(extension)?;
            return Ok(Some(Piece::Header(&self.input[..self.at])));
        }
        let count = self.take(2)?;
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            self.ended = true;
            return Ok(Some(Piece::Trailer));
        }
        if usize::try_from(count).ok() != Some(self.expected) {
            return Err(CopyBinaryError::FieldCount {
                expected: self.expected,
                found: count,
            });
        }
        fields.clear();
        for _ in 0..self.expected {
            let len = self.int32()?;
            fields.push(match len {
                -1 => None,
                n if n < -1 => return Err(CopyBinaryError::BadLength(n)),
                n => Some(self.take(n as usize)?),
            });
        }
        Ok(Some(Piece::Row))
    }
}

/// The field count that starts a row of `fields` fields.
pub fn field_count(fields: usize) -> [u8; 2] {
    (fields as i16).to_be_bytes()
}

/// The length that starts a field of `len` bytes. PostgreSQL's values are below 1 GB, so
/// the length fits.
pub fn length(len: usize) -> [u8; 4] {
    (len as i32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&0i32.to_be_bytes());
        h.extend_from_slice(&0i32.to_be_bytes());
        h
    }

    fn row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut r = field_count(fields.len()).to_vec();
        for f in fields {
            match f {
                None => r.extend_from_slice(&NULL),
                Some(b) => {
                    r.extend_from_slice(&length(b.len()));
                    r.extend_from_slice(b);
                }
            }
        }
        r
    }

    fn read(input: &[u8], expected: usize) -> Result<Vec<String>, CopyBinaryError> {
        let mut reader = Reader::new(input, expected);
        let mut fields = Vec::new();
        let mut seen = Vec::new();
        while let Some(piece) = reader.next(&mut fields)? {
            seen.push(match piece {
                Piece::Header(h) => format!("header {}", h.len()),
                Piece::Row => format!("{fields:?}"),
                Piece::Trailer => "trailer".into(),
            });
        }
        Ok(seen)
    }

    #[test]
    fn reads_header_rows_nulls_and_trailer() {
        let mut input = header();
        input.extend(row(&[Some(b"ab"), None, Some(b"")]));
        input.extend(row(&[None, None, None]));
        input.extend(TRAILER);
        assert_eq!(
            read(&input, 3).unwrap(),
            [
                "header 19",
                "[Some([97, 98]), None, Some([])]",
                "[None, None, None]",
                "trailer"
            ]
        );
        // A later batch: rows only; an empty table: header and trailer.
        assert_eq!(read(&row(&[Some(b"x")]), 1).unwrap(), ["[Some([120])]"]);
        let mut empty = header();
        empty.extend(TRAILER);
        assert_eq!(read(&empty, 5).unwrap(), ["header 19", "trailer"]);
    }

    #[test]
    fn a_header_extension_is_skipped_with_the_header() {
        let mut input = SIGNATURE.to_vec();
        input.extend_from_slice(&0i32.to_be_bytes());
        input.extend_from_slice(&3i32.to_be_bytes());
        input.extend_from_slice(b"ext");
        input.extend(row(&[Some(b"v")]));
        assert_eq!(read(&input, 1).unwrap(), ["header 22", "[Some([118])]"]);
    }

    #[test]
    fn damaged_data_is_an_error_not_a_panic() {
        let full = row(&[Some(b"abcdef"), Some(b"gh")]);
        for cut in 1..full.len() {
            assert_eq!(
                read(&full[..cut], 2),
                Err(CopyBinaryError::Truncated),
                "cut {cut}"
            );
        }
        assert_eq!(
            read(&full, 3),
            Err(CopyBinaryError::FieldCount {
                expected: 3,
                found: 2
            })
        );
        let mut bad = field_count(1).to_vec();
        bad.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(read(&bad, 1), Err(CopyBinaryError::BadLength(-7)));
        let mut after = TRAILER.to_vec();
        after.extend(row(&[None]));
        assert_eq!(read(&after, 1), Err(CopyBinaryError::AfterTrailer));
    }
}
