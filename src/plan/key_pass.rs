//! The planner's only I/O: the snapshot's clock (for `since_days` windows), and the key pass —
//! one narrow COPY per table that needs a key table, reading only its key columns, inside
//! the run's snapshot, `jobs` tables at a time. Nothing is written to production.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use super::decide::KeyRead;
use super::keys::{KeyHasher, KeyTable, Selector};
use crate::catalog::QualifiedName;
use crate::db::snapshot::Snapshot;
use crate::db::{DbError, quote_ident};
use crate::error::{Error, Result};
use crate::units::human_bytes;

/// The snapshot's `now()`, which every window is measured from.
pub async fn read_clock(snapshot: &Snapshot) -> Result<String> {
    let row = snapshot
        .leader()
        .query_one("SELECT now()::text", &[])
        .await
        .map_err(|e| DbError::new(&snapshot.endpoint().display, "reading the clock", e))?;
    Ok(row.get(0))
}

/// Reads every key table, `jobs` at a time, each in its own session inside the snapshot.
pub async fn read_keys(
    reads: Vec<KeyRead>,
    snapshot: &Snapshot,
    hasher: &KeyHasher,
    selector: &Selector,
    max_memory: u64,
    jobs: usize,
) -> Result<BTreeMap<QualifiedName, KeyTable>> {
    let passes = reads.into_iter().map(|read| {
        let hasher = hasher.clone();
        let selector = selector.clone();
        async move {
            let client = snapshot.session().await?;
            key_pass(
                &client,
                &snapshot.endpoint().display,
                &snapshot.copy_encoding_option(),
                &read,
                &hasher,
                &selector,
                max_memory,
            )
            .await
        }
    });
    let results: Vec<Result<KeyTable>> = futures_util::stream::iter(passes)
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut tables = BTreeMap::new();
    for r in results {
        let t = r?;
        tables.insert(t.name.clone(), t);
    }
    Ok(tables)
}

/// Reads the key columns of one logical table (all its partitions) and builds its key table.
async fn key_pass(
    client: &tokio_postgres::Client,
    server: &str,
    encoding_option: &str,
    read: &KeyRead,
    hasher: &KeyHasher,
    selector: &Selector,
    max_memory: u64,
) -> Result<KeyTable> {
    let name = &read.table;
    let layout = &read.layout;
    // Column list: identity, referenced sets, outgoing references, then the window flag.
    let mut select: Vec<String> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut push_cols = |cols: &[String], select: &mut Vec<String>| {
        let start = select.len();
        select.extend(cols.iter().map(|c| quote_ident(c)));
        spans.push((start, select.len()));
    };
    push_cols(&layout.identity, &mut select);
    for r in &layout.referenced {
        push_cols(r, &mut select);
    }
    for (_, cols) in &layout.outgoing {
        push_cols(cols, &mut select);
    }
    let window_at = read.window_expr.as_ref().map(|w| {
        select.push(format!("({w})"));
        select.len() - 1
    });
    // In the source's encoding, as the data stage reads the rows: keys hash the same bytes.
    let sql = format!(
        "COPY (SELECT {} FROM {}{}) TO STDOUT{encoding_option}",
        select.join(", "),
        name.sql(),
        read.where_sql
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default()
    );
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| DbError::new(server, format!("reading the keys of {name}"), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut table = KeyTable::new(name.clone(), layout);
    let per_row = layout.bytes_per_row();
    let mut referenced = Vec::with_capacity(layout.referenced.len());
    let mut references = Vec::with_capacity(layout.outgoing.len());
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| DbError::new(server, format!("reading the keys of {name}"), e))?;
        let line = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
        let mut fields: Vec<&[u8]> = Vec::with_capacity(select.len());
        crate::copy_text::split_row(line, select.len(), &mut fields)
            .map_err(|e| Error::Runtime(format!("{name}: key pass: {e}")))?;
        let (s, e) = spans[0];
        let identity = &fields[s..e];
        let id = hasher.hash(identity);
        let chosen = selector.select(name, identity);
        referenced.clear();
        for &(s, e) in &spans[1..1 + layout.referenced.len()] {
            referenced.push(hasher.hash(&fields[s..e]));
        }
        references.clear();
        for &(s, e) in &spans[1 + layout.referenced.len()..] {
            references.push(hasher.hash(&fields[s..e]));
        }
        let in_window = window_at.is_none_or(|i| fields.get(i).is_some_and(|f| *f == b"t"));
        table.push(id, chosen, in_window, &referenced, &references);
        if table.rows() as u64 * per_row > max_memory {
            return Err(Error::Usage(format!(
                "sample: the key set of {name} passed sample.max_key_memory ({}) at {} rows; raise it, or sample fewer tables",
                human_bytes(max_memory),
                table.rows()
            )));
        }
    }
    Ok(table)
}
