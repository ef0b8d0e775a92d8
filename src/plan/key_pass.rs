//! The planner's only I/O: the snapshot's clock (for `since_days` windows), the sources'
//! sizes (for `max_storage`), and the key pass — one narrow COPY per table that needs a key
//! table (or, with `max_storage`, a tally), reading only its key columns and, when rows are
//! measured, the stored size of each row (`pg_column_size` of its columns, which does not
//! fetch TOASTed values), inside the run's snapshot, `jobs` tables at a time. Nothing is
//! written to production.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use super::decide::{KeyPass, KeyRead, ReadKind, Width};
use super::estimate::{SourceSize, SourceSizes, column_weight_sql, tuple_weight, weight};
use super::keys::{KeyHasher, KeyTable, Selector};
use super::tally::{self, Tally};
use crate::catalog::{Catalog, QualifiedName};
use crate::db::snapshot::Snapshot;
use crate::db::{DbError, quote_ident};
use crate::error::{Error, Result};
use crate::units::human_bytes;

/// The alias of the table read, for its whole row.
const ROW: &str = "restage_row";

/// The snapshot's `now()`, which every window is measured from.
pub async fn read_clock(snapshot: &Snapshot) -> Result<String> {
    let row = snapshot
        .leader()
        .query_one("SELECT now()::text", &[])
        .await
        .map_err(|e| DbError::new(&snapshot.endpoint().display, "reading the clock", e))?;
    Ok(row.get(0))
}

/// The storage of every table that holds rows: heap, TOAST table and its index (main forks:
/// a fresh load has no free-space map), the table's indexes, and the share of dead tuples
/// the statistics count.
pub async fn read_sizes(snapshot: &Snapshot, catalog: &Catalog) -> Result<SourceSizes> {
    let oids: Vec<u32> = catalog.data_tables().map(|t| t.oid).collect();
    let rows = snapshot
        .leader()
        .query(
            "SELECT c.oid, pg_relation_size(c.oid)::int8,
                    coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)::int8,
                    coalesce(pg_indexes_size(nullif(c.reltoastrelid, 0)), 0)::int8,
                    c.reltoastrelid <> 0,
                    pg_indexes_size(c.oid)::int8,
                    (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)::int8,
                    pg_stat_get_live_tuples(c.oid)::float8, pg_stat_get_dead_tuples(c.oid)::float8,
                    coalesce(pg_stat_get_live_tuples(nullif(c.reltoastrelid, 0)), 0)::float8,
                    coalesce(pg_stat_get_dead_tuples(nullif(c.reltoastrelid, 0)), 0)::float8
               FROM pg_class c WHERE c.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| DbError::new(&snapshot.endpoint().display, "reading table sizes", e))?;
    let by_oid: BTreeMap<u32, &QualifiedName> =
        catalog.data_tables().map(|t| (t.oid, &t.name)).collect();
    let mut sizes = SourceSizes::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let bytes = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        let dead = |live: usize| {
            let (l, d): (f64, f64) = (row.get(live), row.get(live + 1));
            if l + d > 0.0 { d / (l + d) } else { 0.0 }
        };
        if let Some(name) = by_oid.get(&oid) {
            sizes.insert(
                (*name).clone(),
                SourceSize {
                    heap: bytes(1),
                    toast: bytes(2),
                    toast_index: bytes(3),
                    has_toast: row.get(4),
                    indexes: bytes(5),
                    index_count: bytes(6),
                    dead: dead(7),
                    toast_dead: dead(9),
                },
            );
        }
    }
    Ok(sizes)
}

/// What one read built.
enum Read {
    Keys(KeyTable),
    Tally(Tally),
}

/// Reads every key table and tally, `jobs` at a time, each in its own session inside the
/// snapshot.
pub async fn read_keys(
    reads: Vec<KeyRead>,
    snapshot: &Snapshot,
    hasher: &KeyHasher,
    selector: &Selector,
    max_memory: u64,
    jobs: usize,
) -> Result<KeyPass> {
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
    let results: Vec<Result<Read>> = futures_util::stream::iter(passes)
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut pass = KeyPass::default();
    for r in results {
        match r? {
            Read::Keys(t) => {
                pass.tables.insert(t.name.clone(), t);
            }
            Read::Tally(t) => {
                pass.tallies.insert(t.name.clone(), t);
            }
        }
    }
    Ok(pass)
}

/// Reads the key columns of one logical table (all its partitions) and builds its key table
/// or its tally.
async fn key_pass(
    client: &tokio_postgres::Client,
    server: &str,
    encoding_option: &str,
    read: &KeyRead,
    hasher: &KeyHasher,
    selector: &Selector,
    max_memory: u64,
) -> Result<Read> {
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
    let width_at = read.width.as_ref().map(|width| {
        select.push(match width {
            Width::Tuple => format!("pg_column_size({ROW}.*)::int8"),
            Width::Columns(columns) => {
                let sizes: Vec<String> = columns
                    .iter()
                    .map(|c| column_weight_sql(&quote_ident(c)))
                    .collect();
                format!("({})::int8", sizes.join(" + "))
            }
        });
        select.len() - 1
    });
    // In the source's encoding, as the data stage reads the rows: keys hash the same bytes.
    let sql = format!(
        "COPY (SELECT {} FROM {} {ROW}{}) TO STDOUT{encoding_option}",
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
    let mut tallied = Tally::new(
        name.clone(),
        layout.outgoing.iter().map(|(e, _)| *e).collect(),
    );
    let per_row = match read.kind {
        ReadKind::Keys => layout.bytes_per_row() + if width_at.is_some() { 4 } else { 0 },
        ReadKind::Tally => tally::bytes_per_row(layout.outgoing.len()),
    };
    let mut rows = 0u64;
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
        referenced.clear();
        for &(s, e) in &spans[1..1 + layout.referenced.len()] {
            referenced.push(hasher.hash(&fields[s..e]));
        }
        references.clear();
        for &(s, e) in &spans[1 + layout.referenced.len()..] {
            references.push(hasher.hash(&fields[s..e]));
        }
        let row_weight = match width_at.and_then(|i| fields.get(i)) {
            Some(f) => {
                let width = std::str::from_utf8(f)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::Runtime(format!("{name}: key pass: a row size that is not a number"))
                    })?;
                Some(match &read.width {
                    Some(Width::Tuple) => tuple_weight(width),
                    _ => weight(width),
                })
            }
            None => None,
        };
        match read.kind {
            ReadKind::Keys => {
                let id = hasher.hash(identity);
                let chosen = selector.select(name, identity);
                let in_window = window_at.is_none_or(|i| fields.get(i).is_some_and(|f| *f == b"t"));
                table.push(id, chosen, in_window, &referenced, &references);
                if let Some(w) = row_weight {
                    table.weigh(w);
                }
            }
            ReadKind::Tally => {
                // Only an orphan needs its selection hash.
                let chosen = if Tally::is_orphan(&references) {
                    selector.select(name, identity)
                } else {
                    0
                };
                tallied.push(&references, chosen, row_weight.unwrap_or(0));
            }
        }
        rows += 1;
        if rows * per_row > max_memory {
            return Err(Error::Usage(format!(
                "sample: the key set of {name} passed sample.max_key_memory ({}) at {rows} rows; raise it, or sample fewer tables",
                human_bytes(max_memory),
            )));
        }
    }
    Ok(match read.kind {
        ReadKind::Keys => Read::Keys(table),
        ReadKind::Tally => Read::Tally(tallied),
    })
}
