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

use crate::catalog::QualifiedName;
use crate::copy_text::{self, CopyTextError};
use crate::pg_encoding::TextEncoding;
use crate::plan::filter::RowFilter;
use crate::transform::{Output, Transform};

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
}

impl RowPlan {
    /// True when rows can go through untouched: no transform and no filter.
    pub fn is_passthrough(&self) -> bool {
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

/// The result of one batch.
#[derive(Debug, Default)]
pub struct BatchOut {
    pub data: Vec<u8>,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// Runs the plan over `input` (whole rows, each ending in a newline).
pub fn process_batch(plan: &RowPlan, input: &[u8]) -> Result<BatchOut, RowError> {
    let mut out = BatchOut {
        data: Vec::with_capacity(input.len() + input.len() / 8),
        ..BatchOut::default()
    };
    let mut fields: Vec<&[u8]> = Vec::with_capacity(plan.columns.len());
    let mut decoded = String::new();
    let mut produced = String::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut set_null: Vec<usize> = Vec::new();
    let expected = plan.columns.len();
    let err = |column: Option<&str>, message: String| RowError {
        table: plan.table.clone(),
        column: column.map(str::to_string),
        message,
    };

    for row in copy_text::rows(input) {
        out.rows_in += 1;
        copy_text::split_row(row, expected, &mut fields).map_err(|e| err(None, e.to_string()))?;
        set_null.clear();
        if let Some(filter) = &plan.filter
            && !filter.keep(&fields, &mut set_null)
        {
            continue;
        }
        out.rows_out += 1;
        for (i, (field, action)) in fields.iter().zip(&plan.columns).enumerate() {
            if i > 0 {
                out.data.push(b'\t');
            }
            if set_null.contains(&i) {
                out.data.extend_from_slice(copy_text::NULL);
                continue;
            }
            match action {
                ColumnAction::Pass => out.data.extend_from_slice(field),
                ColumnAction::Transform { column, transform } => {
                    produced.clear();
                    let null = copy_text::is_null(field);
                    let result = if null {
                        transform.apply_null(&mut produced)
                    } else {
                        decoded.clear();
                        if plan.encoding == TextEncoding::Utf8 {
                            copy_text::decode(field, &mut decoded)
                                .map_err(|e: CopyTextError| err(Some(column), e.to_string()))?;
                        } else {
                            raw.clear();
                            copy_text::unescape(field, &mut raw)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                            plan.encoding
                                .decode(&raw, &mut decoded)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                        }
                        transform.apply(&decoded, &mut produced)
                    };
                    match result.map_err(|e| err(Some(column), e.to_string()))? {
                        Output::Value if plan.encoding == TextEncoding::Utf8 => {
                            copy_text::encode(&produced, &mut out.data)
                        }
                        Output::Value => {
                            let input = (!null).then_some(raw.as_slice());
                            let bytes = plan
                                .encoding
                                .encode_like(&produced, input)
                                .map_err(|e| err(Some(column), e.to_string()))?;
                            copy_text::escape(&bytes, &mut out.data)
                        }
                        Output::Null => out.data.extend_from_slice(copy_text::NULL),
                    }
                }
            }
        }
        out.data.push(b'\n');
    }
    Ok(out)
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

    #[test]
    fn wrong_field_count_names_the_table() {
        let err = process_batch(&plan(None), b"1\ta\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "public.t: a row has 2 fields where 3 were expected"
        );
    }
}
