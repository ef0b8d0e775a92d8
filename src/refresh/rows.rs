//! The transform stage: a batch of COPY text rows in, a batch out, run on the rayon pool.
//!
//! A batch is whole rows as the source printed them. For each row, fields are located (tab
//! positions) but only ruled columns are decoded, transformed and encoded again; every other
//! field is copied byte for byte. A row filter (subsetting; the [`RowFilter`] contract belongs
//! to the planner) may drop the row or null some of its references. The output buffer is
//! reused across rows, and the caller may call [`process_batch`] from any thread, for batches
//! in any order.
//!
//! Rows arrive in the source database's encoding (see [`crate::pg_encoding`]): a ruled value
//! is decoded from it for the transform, and the transform's output encoded back into it.

use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::{BinaryLayout, QualifiedName};
use crate::copy_binary::{self, Piece};
use crate::copy_text::{self, CopyTextError};
use crate::pg_encoding::TextEncoding;
use crate::plan::filter::RowFilter;
use crate::transform::{Output, Transform};

use super::verify::{TableCheck, Tally};

/// What happens to one column.
#[derive(Debug, Clone)]
pub enum ColumnAction {
    /// Copied as is, never decoded.
    Pass,
    /// Decoded, transformed, encoded.
    Transform {
        column: String,
        transform: Arc<dyn Transform>,
    },
}

/// Everything the stage needs for one table.
#[derive(Debug, Clone)]
pub struct RowPlan {
    pub table: QualifiedName,
    pub columns: Vec<ColumnAction>,
    pub filter: Option<Arc<dyn RowFilter>>,
    /// The encoding of the rows (the source database's).
    pub encoding: TextEncoding,
    /// Verification in the stream (see [`super::verify`]): the identity check of the ruled
    /// columns and the leak probe of the text-like output columns, counted as each batch
    /// goes through. None: nothing is checked (a rule's trial in `validate`, the key pass).
    pub check: Option<Arc<TableCheck>>,
}

impl RowPlan {
    /// True when rows can go through untouched: no transform, no filter, nothing to probe.
    pub fn is_passthrough(&self) -> bool {
        self.filter.is_none()
            && self.columns.iter().all(|c| matches!(c, ColumnAction::Pass))
            && self.check.as_ref().is_none_or(|c| !c.scans())
    }

    /// True when the rows are only read (probed), never changed.
    fn only_probes(&self) -> bool {
        self.filter.is_none() && self.columns.iter().all(|c| matches!(c, ColumnAction::Pass))
    }
}

/// A failure in the stage, naming the table and column, never the value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{table}{}: {message}", column.as_ref().map(|c| format!(".{c}")).unwrap_or_default())]
pub struct RowError {
    pub table: QualifiedName,
    pub column: Option<String>,
    pub message: String,
}

/// The result of one batch, as one buffer.
#[derive(Debug, Default)]
pub struct BatchOut {
    pub data: Vec<u8>,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// The result of one batch, in pieces to write in order: the output of [`process_shared`],
/// whose big fields are not copied (see there).
#[derive(Debug, Default)]
pub struct BatchPieces {
    pub pieces: Vec<Bytes>,
    pub rows_in: u64,
    pub rows_out: u64,
}

impl BatchPieces {
    /// The bytes of every piece.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.iter().all(Bytes::is_empty)
    }
}

/// A field or value at least this big is not copied into the output buffer: a kept field
/// becomes a slice of the input, a transformed value that needs no escaping is moved. Below
/// it, copying is cheaper than a piece.
pub const BIG_FIELD: usize = 64 << 10;

/// Runs the plan over `input` (whole rows, each ending in a newline), into one buffer.
pub fn process_batch(plan: &RowPlan, input: &[u8]) -> Result<BatchOut, RowError> {
    if plan.only_probes() {
        let rows = probe_rows(plan, input)?;
        return Ok(BatchOut {
            data: input.to_vec(),
            rows_in: rows,
            rows_out: rows,
        });
    }
    let mut out = Pieces::new(None, input.len());
    let (rows_in, rows_out) = process_rows(plan, input, &mut out)?;
    let mut pieces = out.finish();
    // Usually one piece, made from a Vec: turned back into it without a copy.
    let data = if pieces.len() == 1 {
        Vec::from(pieces.remove(0))
    } else {
        let mut data = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
        for piece in &pieces {
            data.extend_from_slice(piece);
        }
        data
    };
    Ok(BatchOut {
        data,
        rows_in,
        rows_out,
    })
}

/// Runs the plan over `input`, without copying its big fields (issue 11: one row holding a
/// 300 MB text and a 300 MB bytea took 3.0 GiB). A kept field of [`BIG_FIELD`] bytes or more
/// is a zero-copy slice of `input`; a transformed value that big and free of characters COPY
/// escapes is moved into its piece; a field without escapes reaches its transform borrowed
/// from `input`. So a batch costs its input, the transformed values of its ruled columns,
/// and small buffers.
pub fn process_shared(plan: &RowPlan, input: &Bytes) -> Result<BatchPieces, RowError> {
    if plan.only_probes() {
        let rows = probe_rows(plan, input)?;
        return Ok(BatchPieces {
            pieces: vec![input.clone()],
            rows_in: rows,
            rows_out: rows,
        });
    }
    let mut out = Pieces::new(Some(input), input.len());
    let (rows_in, rows_out) = process_rows(plan, input, &mut out)?;
    Ok(BatchPieces {
        pieces: out.finish(),
        rows_in,
        rows_out,
    })
}

/// [`process_shared`] for rows in COPY's binary format ([`crate::copy_binary`]), whose columns
/// read as `layouts` say (the caller checked that every column the stage reads holds its
/// text: [`super::copy::CopyJob::binary`]). The same rules and checks, through the same
/// [`Rule`]; what differs is only how a field is found and written: by its length, never
/// escaped. The header and the trailer are written again as they came.
pub fn process_binary(
    plan: &RowPlan,
    layouts: &[BinaryLayout],
    input: &Bytes,
) -> Result<BatchPieces, RowError> {
    let err = |column: Option<&str>, message: String| RowError {
        table: plan.table.clone(),
        column: column.map(str::to_string),
        message,
    };
    if plan.only_probes() {
        let rows = probe_binary_rows(plan, layouts, input)?;
        return Ok(BatchPieces {
            pieces: vec![input.clone()],
            rows_in: rows,
            rows_out: rows,
        });
    }
    let check = plan.check.as_deref();
    let mut tally = check.map(TableCheck::tally);
    let mut out = Pieces::new(Some(input), input.len());
    let mut reader = copy_binary::Reader::new(input, plan.columns.len());
    let mut fields: Vec<Option<&[u8]>> = Vec::with_capacity(plan.columns.len());
    let mut produced = String::new();
    let mut rows = 0u64;
    while let Some(piece) = reader
        .next(&mut fields)
        .map_err(|e| err(None, e.to_string()))?
    {
        match piece {
            Piece::Header(header) => {
                out.push(header);
                continue;
            }
            Piece::Trailer => {
                out.push(&copy_binary::TRAILER);
                continue;
            }
            Piece::Row => {
                rows += 1;
                out.push(&copy_binary::field_count(fields.len()));
            }
        }
        for (i, (field, action)) in fields.iter().zip(&plan.columns).enumerate() {
            let layout = layouts.get(i).copied().unwrap_or(BinaryLayout::Opaque);
            match action {
                ColumnAction::Pass => {
                    if let (Some(check), Some(tally)) = (check, tally.as_mut()) {
                        probe_binary_field(check, tally, i, layout, *field);
                    }
                    match field {
                        None => out.push(&copy_binary::NULL),
                        Some(bytes) => {
                            out.push(&copy_binary::length(bytes.len()));
                            out.field(bytes);
                        }
                    }
                }
                ColumnAction::Transform { column, transform } => {
                    produced.clear();
                    let value = match field {
                        None => None,
                        Some(bytes) => Some(layout.text(bytes).ok_or_else(|| {
                            err(Some(column), CopyTextError::NotUtf8.to_string())
                        })?),
                    };
                    let result = Rule::new(check, i, transform)
                        .apply(value, tally.as_mut(), &mut produced)
                        .map_err(|e| err(Some(column), e))?;
                    match result {
                        Output::Value => {
                            let prefix = layout.prefix();
                            out.push(&copy_binary::length(prefix.len() + produced.len()));
                            out.push(prefix);
                            out.unescaped(&mut produced);
                        }
                        Output::Null => out.push(&copy_binary::NULL),
                    }
                    // A big value's buffer is not kept for the next row.
                    if produced.capacity() >= BIG_FIELD {
                        produced = String::new();
                    }
                }
            }
        }
    }
    if let (Some(check), Some(tally)) = (check, tally) {
        check.merge(tally);
    }
    Ok(BatchPieces {
        pieces: out.finish(),
        rows_in: rows,
        rows_out: rows,
    })
}

/// Probes field `i` of a binary row (None: NULL, not probed), laid out as `layout`.
fn probe_binary_field(
    check: &TableCheck,
    tally: &mut Tally,
    i: usize,
    layout: BinaryLayout,
    field: Option<&[u8]>,
) {
    if let Some(as_) = check.scan_of(i)
        && let Some(text) = field.and_then(|bytes| layout.text(bytes))
    {
        check.probe(tally, i, as_, text);
    }
}

/// [`probe_rows`] for rows in COPY's binary format: read, not rewritten. Returns their count.
fn probe_binary_rows(
    plan: &RowPlan,
    layouts: &[BinaryLayout],
    input: &[u8],
) -> Result<u64, RowError> {
    let mut reader = copy_binary::Reader::new(input, plan.columns.len());
    let mut fields: Vec<Option<&[u8]>> = Vec::with_capacity(plan.columns.len());
    let check = plan.check.as_deref();
    let mut tally = check.map(TableCheck::tally);
    let mut rows = 0u64;
    while let Some(piece) = reader.next(&mut fields).map_err(|e| RowError {
        table: plan.table.clone(),
        column: None,
        message: e.to_string(),
    })? {
        if piece != Piece::Row {
            continue;
        }
        rows += 1;
        if let (Some(check), Some(tally)) = (check, tally.as_mut()) {
            for (i, field) in fields.iter().enumerate() {
                let layout = layouts.get(i).copied().unwrap_or(BinaryLayout::Opaque);
                probe_binary_field(check, tally, i, layout, *field);
            }
        }
    }
    if let (Some(check), Some(tally)) = (check, tally) {
        check.merge(tally);
    }
    Ok(rows)
}

/// The output of a batch as it is built: small bytes gathered in `current`, big ones as
/// pieces of their own.
struct Pieces<'a> {
    input: Option<&'a Bytes>,
    pieces: Vec<Bytes>,
    current: Vec<u8>,
}

impl<'a> Pieces<'a> {
    fn new(input: Option<&'a Bytes>, input_len: usize) -> Pieces<'a> {
        Pieces {
            input,
            pieces: Vec::new(),
            // Room for the usual growth of small rows; big fields do not come here.
            current: Vec::with_capacity((input_len + input_len / 8).min(2 << 20)),
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let capacity = self.current.capacity();
            let full = std::mem::replace(
                &mut self.current,
                Vec::with_capacity(capacity.min(64 << 10)),
            );
            self.pieces.push(Bytes::from(full));
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
    }

    fn byte(&mut self, byte: u8) {
        self.current.push(byte);
    }

    /// A field as it came: a slice of the input when it is big (and the input is shared).
    fn field(&mut self, field: &[u8]) {
        match self.input {
            Some(input) if field.len() >= BIG_FIELD => {
                self.flush();
                self.pieces.push(input.slice_ref(field));
            }
            _ => self.push(field),
        }
    }

    /// A transformed value, escaped for COPY; a big one without characters to escape is
    /// moved (and `value` left empty).
    fn value(&mut self, value: &mut String) {
        if value.len() >= BIG_FIELD && !copy_text::needs_escape(value) {
            self.flush();
            self.pieces
                .push(Bytes::from(std::mem::take(value).into_bytes()));
        } else {
            copy_text::encode(value, &mut self.current);
        }
    }

    /// A transformed value as it is, unescaped (COPY's binary format); a big one is moved
    /// (and `value` left empty).
    fn unescaped(&mut self, value: &mut String) {
        if value.len() >= BIG_FIELD {
            self.flush();
            self.pieces
                .push(Bytes::from(std::mem::take(value).into_bytes()));
        } else {
            self.push(value.as_bytes());
        }
    }

    /// Bytes of a value in the source's encoding, escaped for COPY.
    fn escaped(&mut self, bytes: &[u8]) {
        copy_text::escape(bytes, &mut self.current);
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        self.pieces
    }
}

/// A table with nothing to transform whose rows are probed (see [`super::verify`]): the
/// rows are read, not rewritten. Returns their count.
fn probe_rows(plan: &RowPlan, input: &[u8]) -> Result<u64, RowError> {
    let mut rows = 0u64;
    let Some(check) = plan.check.as_deref() else {
        return Ok(copy_text::rows(input).count() as u64);
    };
    let mut tally = check.tally();
    let mut fields: Vec<&[u8]> = Vec::with_capacity(plan.columns.len());
    for row in copy_text::rows(input) {
        rows += 1;
        copy_text::split_row(row, plan.columns.len(), &mut fields).map_err(|e| RowError {
            table: plan.table.clone(),
            column: None,
            message: e.to_string(),
        })?;
        for (i, field) in fields.iter().enumerate() {
            check.probe_field(&mut tally, i, field, plan.encoding);
        }
    }
    check.merge(tally);
    Ok(rows)
}

/// A ruled column of a row, with the checks that ride along: the one place that applies a
/// rule, for text and binary rows alike.
struct Rule<'a> {
    check: Option<&'a TableCheck>,
    i: usize,
    transform: &'a Arc<dyn Transform>,
}

impl<'a> Rule<'a> {
    fn new(check: Option<&'a TableCheck>, i: usize, transform: &'a Arc<dyn Transform>) -> Self {
        Rule {
            check,
            i,
            transform,
        }
    }

    /// Applies the rule to `value` (None: NULL) into `produced`, counting the identity check
    /// and probing the output when the table is checked.
    fn apply(
        &self,
        value: Option<&str>,
        tally: Option<&mut Tally>,
        produced: &mut String,
    ) -> Result<Output, String> {
        let mut tally = self.check.and(tally);
        let result = match (value, self.check, tally.as_deref_mut()) {
            (None, _, _) => self.transform.apply_null(produced),
            (Some(value), Some(check), Some(tally)) => {
                let result = if check.observes_paths(self.i) {
                    let mut observer = check.observer(tally, self.i);
                    self.transform
                        .apply_observed(value, produced, &mut observer)
                } else {
                    self.transform.apply(value, produced)
                };
                // Before the value is written (a big one is moved out).
                let output = matches!(result, Ok(Output::Value)).then_some(produced.as_str());
                check.identity(tally, self.i, value, output);
                result
            }
            (Some(value), _, _) => self.transform.apply(value, produced),
        };
        let result = result.map_err(|e| e.to_string())?;
        if let (Some(check), Some(tally), Output::Value) = (self.check, tally, result)
            && let Some(as_) = check.scan_of(self.i)
        {
            check.probe(tally, self.i, as_, produced);
        }
        Ok(result)
    }
}

/// The row stage itself, once, for both outputs: (rows in, rows out).
fn process_rows(
    plan: &RowPlan,
    input: &[u8],
    out: &mut Pieces<'_>,
) -> Result<(u64, u64), RowError> {
    let mut rows_in = 0u64;
    let mut rows_out = 0u64;
    let mut fields: Vec<&[u8]> = Vec::with_capacity(plan.columns.len());
    let mut decoded = String::new();
    let mut produced = String::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut set_null: Vec<usize> = Vec::new();
    let mut rewritten: Vec<(usize, Vec<u8>)> = Vec::new();
    let expected = plan.columns.len();
    let err = |column: Option<&str>, message: String| RowError {
        table: plan.table.clone(),
        column: column.map(str::to_string),
        message,
    };
    let check = plan.check.as_deref();
    let mut tally = check.map(TableCheck::tally);

    for row in copy_text::rows(input) {
        rows_in += 1;
        copy_text::split_row(row, expected, &mut fields).map_err(|e| err(None, e.to_string()))?;
        set_null.clear();
        rewritten.clear();
        if let Some(filter) = &plan.filter {
            if !filter.keep(&fields, &mut set_null) {
                continue;
            }
            filter.rewrite(&fields, &mut rewritten);
        }
        rows_out += 1;
        for (i, (field, action)) in fields.iter().zip(&plan.columns).enumerate() {
            if i > 0 {
                out.byte(b'\t');
            }
            if set_null.contains(&i) {
                out.push(copy_text::NULL);
                continue;
            }
            // A reference remapped onto a generated parent (hybrid mode): no production
            // value, nothing to transform or probe.
            if let Some((_, value)) = rewritten.iter().find(|(p, _)| *p == i) {
                out.push(value);
                continue;
            }
            match action {
                ColumnAction::Pass => {
                    if let (Some(check), Some(tally)) = (check, tally.as_mut()) {
                        check.probe_field(tally, i, field, plan.encoding);
                    }
                    out.field(field)
                }
                ColumnAction::Transform { column, transform } => {
                    produced.clear();
                    let null = copy_text::is_null(field);
                    let value = if null {
                        None
                    } else {
                        decoded.clear();
                        Some(if plan.encoding == TextEncoding::Utf8 {
                            copy_text::decode_borrowed(field, &mut decoded)
                                .map_err(|e: CopyTextError| err(Some(column), e.to_string()))?
                        } else {
                            raw.clear();
                            copy_text::unescape(field, &mut raw)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                            plan.encoding
                                .decode(&raw, &mut decoded)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                            decoded.as_str()
                        })
                    };
                    let result = Rule::new(check, i, transform)
                        .apply(value, tally.as_mut(), &mut produced)
                        .map_err(|e| err(Some(column), e))?;
                    match result {
                        Output::Value if plan.encoding == TextEncoding::Utf8 => {
                            out.value(&mut produced)
                        }
                        Output::Value => {
                            let input = (!null).then_some(raw.as_slice());
                            let bytes = plan
                                .encoding
                                .encode_like(&produced, input)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                            out.escaped(&bytes)
                        }
                        Output::Null => out.push(copy_text::NULL),
                    }
                    // A big value's buffers are not kept for the next row.
                    if decoded.capacity() >= BIG_FIELD {
                        decoded = String::new();
                    }
                    if raw.capacity() >= BIG_FIELD {
                        raw = Vec::new();
                    }
                    if produced.capacity() >= BIG_FIELD {
                        produced = String::new();
                    }
                }
            }
        }
        out.byte(b'\n');
    }
    if let (Some(check), Some(tally)) = (check, tally) {
        check.merge(tally);
    }
    Ok((rows_in, rows_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{SetNull, TransformError};

    #[derive(Debug)]
    struct Upper;
    impl Transform for Upper {
        fn apply(&self, value: &str, out: &mut String) -> Result<Output, TransformError> {
            out.push_str(&value.to_uppercase());
            Ok(Output::Value)
        }
    }

    #[derive(Debug)]
    struct DropOdd;
    impl RowFilter for DropOdd {
        fn keep(&self, fields: &[&[u8]], set_null: &mut Vec<usize>) -> bool {
            let id: i64 = std::str::from_utf8(fields[0]).unwrap().parse().unwrap();
            if id == 4 {
                set_null.push(1);
            }
            id % 2 == 0
        }
    }

    fn plan(filter: Option<Arc<dyn RowFilter>>) -> RowPlan {
        RowPlan {
            table: QualifiedName::new("public", "t"),
            columns: vec![
                ColumnAction::Pass,
                ColumnAction::Transform {
                    column: "name".into(),
                    transform: Arc::new(Upper),
                },
                ColumnAction::Transform {
                    column: "secret".into(),
                    transform: Arc::new(SetNull),
                },
            ],
            filter,
            encoding: TextEncoding::Utf8,
            check: None,
        }
    }

    #[test]
    fn transforms_only_ruled_columns() {
        let input = b"1\tjos\\te\tx\n2\t\\N\ty\n3\tcaf\xc3\xa9\\\\\tz\n";
        let out = process_batch(&plan(None), input).unwrap();
        assert_eq!(out.rows_in, 3);
        assert_eq!(out.rows_out, 3);
        assert_eq!(
            String::from_utf8(out.data).unwrap(),
            "1\tJOS\\tE\t\\N\n2\t\\N\t\\N\n3\tCAFÉ\\\\\t\\N\n"
        );
    }

    #[test]
    fn filter_drops_and_nulls() {
        let input = b"1\ta\tx\n2\tb\ty\n4\tc\tz\n";
        let out = process_batch(&plan(Some(Arc::new(DropOdd))), input).unwrap();
        assert_eq!(out.rows_in, 3);
        assert_eq!(out.rows_out, 2);
        assert_eq!(
            String::from_utf8(out.data).unwrap(),
            "2\tB\t\\N\n4\t\\N\t\\N\n"
        );
    }

    /// The shared path writes the same bytes, with its big kept fields as slices of the
    /// input (no copy) and its big transformed values moved.
    #[test]
    fn shared_output_equals_the_buffered_one_and_does_not_copy_big_fields() {
        let big = "y".repeat(BIG_FIELD + 10);
        let input = Bytes::from(format!("1\t{big}\tx\n2\tj\\to\t\\N\n3\t{big}\t{big}\n"));
        let plan = plan(None);
        let shared = process_shared(&plan, &input).unwrap();
        let joined: Vec<u8> = shared.pieces.iter().flat_map(|p| p.to_vec()).collect();
        assert_eq!(joined, process_batch(&plan, &input).unwrap().data);
        assert_eq!((shared.rows_in, shared.rows_out), (3, 3));
        assert_eq!(shared.len(), joined.len());
        // The big field of row 1 is a slice of the input: same memory.
        let range = input.as_ptr_range();
        let sliced = shared
            .pieces
            .iter()
            .filter(|p| p.len() >= BIG_FIELD && range.contains(&p.as_ptr()))
            .count();
        assert_eq!(sliced, 0, "ruled columns are transformed, not sliced");
        let pass_plan = RowPlan {
            table: QualifiedName::new("public", "t"),
            columns: vec![ColumnAction::Pass, ColumnAction::Pass, ColumnAction::Pass],
            filter: Some(Arc::new(DropOdd)),
            encoding: TextEncoding::Utf8,
            check: None,
        };
        let input = Bytes::from(format!("2\t{big}\tx\n3\ta\tb\n4\tc\t{big}\n"));
        let shared = process_shared(&pass_plan, &input).unwrap();
        let sliced = shared
            .pieces
            .iter()
            .filter(|p| p.len() >= BIG_FIELD && range_of(&input).contains(&p.as_ptr()))
            .count();
        assert_eq!(
            sliced, 2,
            "the big fields of rows 2 and 4 are slices (row 3 is dropped)"
        );
        let joined: Vec<u8> = shared.pieces.iter().flat_map(|p| p.to_vec()).collect();
        assert_eq!(joined, process_batch(&pass_plan, &input).unwrap().data);
    }

    fn range_of(b: &Bytes) -> std::ops::Range<*const u8> {
        b.as_ptr_range()
    }

    /// Issue 11: a LATIN1 source's bytes are decoded for the transform and its output
    /// encoded back; untouched fields keep their bytes; SQL_ASCII bytes that are not UTF-8
    /// are read as Latin-1; a character the encoding lacks fails naming the column.
    #[test]
    fn ruled_values_travel_in_the_source_encoding() {
        let mut latin1 = plan(None);
        latin1.encoding = TextEncoding::of("LATIN1");
        let out = process_batch(&latin1, b"\xff\tcaf\xe9\tx\n").unwrap();
        assert_eq!(out.data, b"\xff\tCAF\xc9\t\\N\n");

        let mut ascii = plan(None);
        ascii.encoding = TextEncoding::of("SQL_ASCII");
        let out = process_batch(&ascii, b"1\tcaf\xe9\tx\n").unwrap();
        assert_eq!(
            out.data, b"1\tCAF\xc9\t\\N\n",
            "stored as its input was read"
        );
        let out = process_batch(&ascii, "1\tcafé\tx\n".as_bytes()).unwrap();
        assert_eq!(out.data, "1\tCAFÉ\t\\N\n".as_bytes());

        #[derive(Debug)]
        struct Japanese;
        impl Transform for Japanese {
            fn apply(&self, _: &str, out: &mut String) -> Result<Output, TransformError> {
                out.push_str("日本");
                Ok(Output::Value)
            }
        }
        latin1.columns[1] = ColumnAction::Transform {
            column: "name".into(),
            transform: Arc::new(Japanese),
        };
        let err = process_batch(&latin1, b"1\ta\tx\n").unwrap_err();
        assert_eq!(err.column.as_deref(), Some("name"));
        assert!(err.message.contains("LATIN1"), "{}", err.message);
    }

    /// Issue 14: rows in COPY's binary format go through the same rules as text rows and
    /// come out as the same values: a kept opaque field byte for byte, a text field and a
    /// jsonb field (its version byte kept) transformed, NULLs, a value with the characters
    /// text COPY escapes, the header and trailer written again; a big value is moved, not
    /// copied.
    #[test]
    fn binary_rows_get_the_values_text_rows_get() {
        fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
            match value {
                None => out.extend_from_slice(&copy_binary::NULL),
                Some(v) => {
                    out.extend_from_slice(&copy_binary::length(v.len()));
                    out.extend_from_slice(v);
                }
            }
        }
        let big = "b".repeat(BIG_FIELD + 1);
        // (id as int4 bytes, name, doc as jsonb)
        let rows: Vec<(i32, Option<&str>, Option<&str>)> = vec![
            (1, Some("jos\te\nline"), Some("{\"a\": 1}")),
            (2, None, None),
            (3, Some("caf\u{e9}"), Some(big.as_str())),
        ];
        let mut binary = copy_binary::SIGNATURE.to_vec();
        binary.extend_from_slice(&[0; 8]);
        let mut text = Vec::new();
        for (id, name, doc) in &rows {
            binary.extend_from_slice(&copy_binary::field_count(3));
            field(&mut binary, Some(&id.to_be_bytes()));
            field(&mut binary, name.map(str::as_bytes));
            let jsonb = doc.map(|d| [&[1u8][..], d.as_bytes()].concat());
            field(&mut binary, jsonb.as_deref());
            text.extend_from_slice(id.to_string().as_bytes());
            for value in [name, doc] {
                text.push(b'\t');
                match value {
                    None => text.extend_from_slice(copy_text::NULL),
                    Some(v) => copy_text::encode(v, &mut text),
                }
            }
            text.push(b'\n');
        }
        binary.extend_from_slice(&copy_binary::TRAILER);
        let mut plan = plan(None);
        plan.columns[2] = ColumnAction::Transform {
            column: "doc".into(),
            transform: Arc::new(Upper),
        };
        let layouts = [
            BinaryLayout::Opaque,
            BinaryLayout::Text,
            BinaryLayout::Jsonb,
        ];
        let input = Bytes::from(binary);
        let out = process_binary(&plan, &layouts, &input).unwrap();
        assert_eq!((out.rows_in, out.rows_out), (3, 3));
        assert!(
            out.pieces.iter().any(|p| p.len() == BIG_FIELD + 1),
            "the big value is a piece of its own"
        );
        let joined: Vec<u8> = out.pieces.iter().flat_map(|p| p.to_vec()).collect();
        let mut reader = copy_binary::Reader::new(&joined, 3);
        let mut fields = Vec::new();
        let mut values = Vec::new();
        let mut pieces = Vec::new();
        while let Some(piece) = reader.next(&mut fields).unwrap() {
            if piece == Piece::Row {
                let id = i32::from_be_bytes(fields[0].unwrap().try_into().unwrap());
                let name = fields[1].map(|b| BinaryLayout::Text.text(b).unwrap().to_string());
                let doc = fields[2].map(|b| BinaryLayout::Jsonb.text(b).unwrap().to_string());
                values.push((id.to_string(), name, doc));
            }
            pieces.push(match piece {
                Piece::Header(h) => format!("header {}", h.len()),
                Piece::Row => "row".into(),
                Piece::Trailer => "trailer".into(),
            });
        }
        assert_eq!(pieces, ["header 19", "row", "row", "row", "trailer"]);
        // The text path, decoded the same way.
        let text_out = process_batch(&plan, &text).unwrap();
        let mut expected = Vec::new();
        for row in copy_text::rows(&text_out.data) {
            let f: Vec<&[u8]> = copy_text::fields(row).collect();
            let value = |b: &[u8]| {
                (!copy_text::is_null(b)).then(|| {
                    let mut s = String::new();
                    copy_text::decode(b, &mut s).unwrap();
                    s
                })
            };
            expected.push((value(f[0]).unwrap(), value(f[1]), value(f[2])));
        }
        assert_eq!(values, expected);
        assert_eq!(values[0].1.as_deref(), Some("JOS\tE\nLINE"));
        assert_eq!(values[1], ("2".to_string(), None, None));
    }

    /// Damaged binary data is an error that names the table, never a panic.
    #[test]
    fn damaged_binary_rows_name_the_table() {
        let mut input = copy_binary::field_count(3).to_vec();
        input.extend_from_slice(&copy_binary::length(10));
        input.extend_from_slice(b"short");
        let layouts = [BinaryLayout::Opaque, BinaryLayout::Text, BinaryLayout::Text];
        let err = process_binary(&plan(None), &layouts, &Bytes::from(input)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "public.t: binary COPY data ends inside a row"
        );
    }

    #[test]
    fn wrong_field_count_names_the_table() {
        let err = process_batch(&plan(None), b"1\ta\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "public.t: a row has 2 fields where 3 were expected"
        );
    }
}
