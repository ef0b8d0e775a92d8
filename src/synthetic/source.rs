//! The generated rows of one table, as the copy stage takes them ([`RowSource`]).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::model::Model;
use crate::refresh::copy::RowSource;

/// Rows of table `table` of the model, as COPY text.
#[derive(Debug)]
pub struct TableRows {
    model: Arc<Model>,
    table: usize,
}

impl TableRows {
    pub fn new(model: Arc<Model>, table: usize) -> TableRows {
        TableRows { model, table }
    }
}

impl RowSource for TableRows {
    fn rows(&self) -> u64 {
        self.model.rows(self.table)
    }

    fn fill(&self, start: u64, max_bytes: usize, out: &mut BytesMut) -> Result<u64, String> {
        let table = &self.model.tables[self.table];
        let rows = self.model.rows(self.table);
        let mut value = String::with_capacity(64);
        let mut escaped = Vec::with_capacity(64);
        let mut row = start;
        while row < rows && out.len() < max_bytes {
            for c in 0..table.columns.len() {
                if c > 0 {
                    out.put_u8(b'\t');
                }
                value.clear();
                if self.model.value(self.table, c, row, &mut value) {
                    escaped.clear();
                    crate::copy_text::encode(&value, &mut escaped);
                    out.extend_from_slice(&escaped);
                } else {
                    out.extend_from_slice(b"\\N");
                }
            }
            out.put_u8(b'\n');
            row += 1;
        }
        Ok(row - start)
    }
}
