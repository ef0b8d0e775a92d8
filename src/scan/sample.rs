//! Reading a bounded sample of a production table, read-only, one query per table.
//!
//! - Small tables (estimated at most ten times the sample size): `LIMIT n`. It stops after
//!   n rows; a sequential scan reads no further.
//! - Big tables: `TABLESAMPLE SYSTEM (p) REPEATABLE (0) LIMIT n`, with p sized from the
//!   planner's estimate to give about 3n rows: random pages rather than the oldest ones, and
//!   the same pages on every run of the same data, so scans are comparable. When the estimate
//!   was stale and the sample came back with fewer than n/2 rows, it is read again with
//!   `LIMIT n`.
//! - Only the columns that need it are read, and each is cut on the server: text to 2,000
//!   characters, arrays to their first 50 elements, json documents over 256 kB skipped. A
//!   sample therefore never holds more than a few megabytes, whatever the table.
//! - Rows are streamed and counted one by one; no value outlives its row.
//!
//! The session is the read-only source session of [`crate::db`]; [`prepare_session`] adds a
//! statement timeout (a sample that takes a minute is a plan gone wrong, not a sample) and a
//! lock timeout (never queue behind a migration's exclusive lock on production).

use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::catalog::{ColumnType, QualifiedName, TypeKind};
use crate::db::{DbError, quote_ident};

use super::findings::Sampled;
use crate::pii::values::{JsonTally, Tally};

/// Characters of a text value read; detectors need far less, free text is searched in this.
const TEXT_CHARS: usize = 2000;
/// Elements of an array read.
const ARRAY_ELEMENTS: usize = 50;
/// Bytes of a json document read (as stored, `pg_column_size`).
const JSON_BYTES: usize = 256 * 1024;

/// How a column is read for detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Text,
    TextArray,
    Json,
}

/// The probe for a column type, None for types that hold no personal text (numbers, dates,
/// enums, uuids, bytea, tsvector — names still judge those).
pub fn probe_for(ty: &ColumnType) -> Option<Probe> {
    match (&ty.kind, ty.array) {
        (TypeKind::Text | TypeKind::Inet, false) => Some(Probe::Text),
        (TypeKind::Text | TypeKind::Inet, true) => Some(Probe::TextArray),
        (TypeKind::Json | TypeKind::Jsonb, false) => Some(Probe::Json),
        // `hstore` is read as its text (`"email"=>"…"`): what it holds is found inside.
        (TypeKind::Other(name), false) if is_hstore(name) => Some(Probe::Text),
        // PostgreSQL's `name` type is text of up to 63 bytes.
        (TypeKind::Other(name), false) if crate::pii::is_pg_name_type(name) => Some(Probe::Text),
        _ => None,
    }
}

/// The `hstore` extension's type, however the catalogue prints it.
pub fn is_hstore(type_name: &str) -> bool {
    type_name == "hstore" || type_name.ends_with(".hstore")
}

/// What one table's sample gave.
#[derive(Debug)]
pub struct TableSample {
    pub rows: u64,
    /// Per probed column, in the order asked.
    pub columns: Vec<Sampled>,
    /// `TABLESAMPLE SYSTEM (p)` or `LIMIT`, for logs.
    pub method: String,
}

/// Timeouts for the scan session (see the module doc).
pub async fn prepare_session(client: &Client, server: &str) -> Result<(), DbError> {
    client
        .batch_execute("SET statement_timeout = '60s'; SET lock_timeout = '5s'")
        .await
        .map_err(|e| DbError::new(server, "setting scan timeouts", e))
}

/// The sampling query. `only` reads an ordinary table without its inheritance children
/// (each is scanned on its own); a partitioned table is read whole, through its partitions.
pub fn sample_sql(
    table: &QualifiedName,
    only: bool,
    columns: &[(&str, Probe)],
    rows: usize,
    tablesample_percent: Option<f64>,
) -> String {
    let exprs: Vec<String> = columns
        .iter()
        .map(|(name, probe)| {
            let c = quote_ident(name);
            match probe {
                Probe::Text => format!("left({c}::text, {TEXT_CHARS})"),
                Probe::TextArray => format!(
                    "(SELECT array_agg(left(e, {TEXT_CHARS})) FROM unnest(({c}::text[])[1:{ARRAY_ELEMENTS}]) AS e)"
                ),
                // '' marks a document too big to read (valid JSON is never empty).
                Probe::Json => format!(
                    "CASE WHEN {c} IS NULL THEN NULL WHEN pg_column_size({c}) <= {JSON_BYTES} THEN {c}::text ELSE '' END"
                ),
            }
        })
        .collect();
    let only = if only { "ONLY " } else { "" };
    let sample = match tablesample_percent {
        Some(p) => format!(" TABLESAMPLE SYSTEM ({p:.6}) REPEATABLE (0)"),
        None => String::new(),
    };
    format!(
        "SELECT {} FROM {only}{}{sample} LIMIT {rows}",
        exprs.join(", "),
        table.sql()
    )
}

/// The `TABLESAMPLE` percentage for a table of `estimated_rows`, None when `LIMIT` alone is
/// the better way (small or never analyzed tables).
pub fn tablesample_percent(estimated_rows: f64, rows: usize) -> Option<f64> {
    let wanted = rows as f64;
    // NaN (never analyzed, odd stats) counts as small.
    if estimated_rows.is_nan() || estimated_rows <= 10.0 * wanted {
        return None;
    }
    Some((3.0 * wanted / estimated_rows * 100.0).clamp(0.000_001, 100.0))
}

/// Samples `columns` of `table`.
pub async fn sample_table(
    client: &Client,
    server: &str,
    table: &QualifiedName,
    only: bool,
    estimated_rows: f64,
    columns: &[(&str, Probe)],
    rows: usize,
) -> Result<TableSample, DbError> {
    let percent = tablesample_percent(estimated_rows, rows);
    let sample = read(client, server, table, only, columns, rows, percent).await?;
    if percent.is_some() && (sample.rows as usize) < rows / 2 {
        tracing::debug!(table = %table, rows = sample.rows, "sample came back small, reading with LIMIT");
        return read(client, server, table, only, columns, rows, None).await;
    }
    Ok(sample)
}

async fn read(
    client: &Client,
    server: &str,
    table: &QualifiedName,
    only: bool,
    columns: &[(&str, Probe)],
    rows: usize,
    percent: Option<f64>,
) -> Result<TableSample, DbError> {
    let sql = sample_sql(table, only, columns, rows, percent);
    let context = || format!("sampling {table}");
    let stream = client
        .query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())
        .await
        .map_err(|e| DbError::new(server, context(), e))?;
    pin_mut!(stream);
    let mut out: Vec<Sampled> = columns
        .iter()
        .map(|(_, probe)| match probe {
            Probe::Json => Sampled::Json(JsonTally::default()),
            _ => Sampled::Values(Tally::default()),
        })
        .collect();
    let mut count = 0u64;
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(|e| DbError::new(server, context(), e))?
    {
        count += 1;
        for (i, ((_, probe), sampled)) in columns.iter().zip(out.iter_mut()).enumerate() {
            match (probe, sampled) {
                (Probe::Text, Sampled::Values(t)) => {
                    let v: Option<String> = row
                        .try_get(i)
                        .map_err(|e| DbError::new(server, context(), e))?;
                    if let Some(v) = v {
                        t.observe(&v);
                    }
                }
                (Probe::TextArray, Sampled::Values(t)) => {
                    let v: Option<Vec<Option<String>>> = row
                        .try_get(i)
                        .map_err(|e| DbError::new(server, context(), e))?;
                    for e in v.into_iter().flatten().flatten() {
                        t.observe(&e);
                    }
                }
                (Probe::Json, Sampled::Json(j)) => {
                    let v: Option<String> = row
                        .try_get(i)
                        .map_err(|e| DbError::new(server, context(), e))?;
                    match v {
                        Some(doc) if doc.is_empty() => j.oversized += 1,
                        Some(doc) => j.observe(&doc),
                        None => {}
                    }
                }
                // The vector was built from the same probes.
                _ => {}
            }
        }
    }
    Ok(TableSample {
        rows: count,
        columns: out,
        method: match percent {
            Some(p) => format!("TABLESAMPLE SYSTEM ({p:.4}%)"),
            None => "LIMIT".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_use_limit() {
        assert_eq!(tablesample_percent(-1.0, 1000), None);
        assert_eq!(tablesample_percent(0.0, 1000), None);
        assert_eq!(tablesample_percent(10_000.0, 1000), None);
        let p = tablesample_percent(1_000_000.0, 1000).expect("big table");
        assert!((p - 0.3).abs() < 1e-9, "{p}");
        let tiny = tablesample_percent(1e12, 1000).expect("huge table");
        assert!(tiny > 0.0 && tiny < 0.001, "{tiny}");
        assert_eq!(tablesample_percent(f64::NAN, 1000), None);
    }

    #[test]
    fn sql_reads_only_what_it_needs() {
        let t = QualifiedName::new("public", "Odd \"Name\"");
        let sql = sample_sql(
            &t,
            true,
            &[
                ("notes", Probe::Text),
                ("tags", Probe::TextArray),
                ("data", Probe::Json),
            ],
            1000,
            Some(0.3),
        );
        assert_eq!(
            sql,
            "SELECT left(\"notes\"::text, 2000), \
             (SELECT array_agg(left(e, 2000)) FROM unnest((\"tags\"::text[])[1:50]) AS e), \
             CASE WHEN \"data\" IS NULL THEN NULL WHEN pg_column_size(\"data\") <= 262144 THEN \"data\"::text ELSE '' END \
             FROM ONLY \"public\".\"Odd \"\"Name\"\"\" TABLESAMPLE SYSTEM (0.300000) REPEATABLE (0) LIMIT 1000"
        );
        let sql = sample_sql(&t, false, &[("ip", Probe::Text)], 10, None);
        assert!(
            sql.ends_with("FROM \"public\".\"Odd \"\"Name\"\"\" LIMIT 10"),
            "{sql}"
        );
    }

    #[test]
    fn probes_by_type() {
        let t = |kind, array| ColumnType {
            array,
            ..ColumnType::simple("x", kind)
        };
        assert_eq!(probe_for(&t(TypeKind::Text, false)), Some(Probe::Text));
        assert_eq!(probe_for(&t(TypeKind::Text, true)), Some(Probe::TextArray));
        assert_eq!(probe_for(&t(TypeKind::Inet, false)), Some(Probe::Text));
        assert_eq!(probe_for(&t(TypeKind::Jsonb, false)), Some(Probe::Json));
        assert_eq!(probe_for(&t(TypeKind::Jsonb, true)), None);
        assert_eq!(probe_for(&t(TypeKind::Int, false)), None);
        assert_eq!(probe_for(&t(TypeKind::TimestampTz, false)), None);
        assert_eq!(probe_for(&t(TypeKind::Enum, false)), None);
    }
}
