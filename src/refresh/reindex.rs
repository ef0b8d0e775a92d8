//! Search indexes and derived data, rebuilt from the anonymized rows: configured derived
//! columns (tsvector and others) recomputed, materialized views refreshed in dependency
//! order, named indexes rebuilt, statistics gathered — in the one post-load order
//! ([`post_load`]) that both the refresh (in the new database) and `restage reindex` (in the
//! live one) run.
//!
//! Derived columns are recomputed before the post-data section (no index to maintain during
//! the rewrite); materialized views after it (their own indexes exist by then). In a refresh,
//! tables may have had their derived columns (when their expressions read only their own
//! row), indexes, keys and ANALYZE during the copy already ([`super::post_data`], with
//! [`recompute_derived`]): `search` then holds only the other derived columns, the post-data
//! section restores the rest, and `tables` (what is analyzed here) leaves them out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::catalog::QualifiedName;
use crate::config::DerivedColumnConfig;
use crate::db::PgEndpoint;
use crate::db::{DbError, quote_ident};
use crate::error::Result;
use crate::progress::{Stage, Ui};
use crate::report::StageTiming;
use crate::transform::{Output, Transform, TransformError};

use super::schema::{self, PgTools, SchemaArchive};
use super::settings::SearchSettings;

/// Where the post-load steps run.
pub enum Database<'a> {
    /// The database being built: derived columns are compacted (VACUUM FULL: no index exists
    /// yet), and the schema's post-data section (indexes, constraints) follows them.
    New {
        tools: &'a PgTools,
        archive: &'a SchemaArchive,
        endpoint: &'a PgEndpoint,
        /// Materialized views already refreshed during the copy: not refreshed again.
        refreshed_views: &'a BTreeSet<QualifiedName>,
    },
    /// The live staging database: its indexes exist; a plain VACUUM follows the updates.
    Live,
}

/// What the post-load steps did, and how long each took (for the report).
#[derive(Debug, Default)]
pub struct PostLoaded {
    pub derived_columns: Vec<String>,
    pub materialized_views: Vec<String>,
    pub stages: Vec<StageTiming>,
}

/// The post-load order, once: derived columns recomputed; in a new database, the post-data
/// section; materialized views refreshed; named indexes rebuilt; statistics gathered for
/// `tables`. With `ui`, each step shows as a stage of its own.
#[allow(clippy::too_many_arguments)]
pub async fn post_load(
    pool: &deadpool_postgres::Pool,
    client: &Client,
    server: &str,
    database: Database<'_>,
    search: &SearchSettings,
    tables: &[QualifiedName],
    jobs: usize,
    ui: Option<&Ui>,
) -> Result<PostLoaded> {
    let mut done = PostLoaded::default();
    let compact = matches!(database, Database::New { .. });
    if !search.derived.is_empty() {
        let step = Step::start(ui, "derived columns");
        done.derived_columns = recompute_derived(client, server, &search.derived, compact).await?;
        done.stages.push(step.done("derived columns"));
    }
    let mut refreshed_early = &BTreeSet::new();
    if let Database::New {
        tools,
        archive,
        endpoint,
        refreshed_views,
    } = database
    {
        refreshed_early = refreshed_views;
        let step = Step::start(ui, "indexes");
        schema::restore(tools, archive, endpoint, schema::Section::PostData, jobs).await?;
        done.stages.push(step.done("schema (post-data)"));
    }
    if search.refresh_materialized_views {
        let step = Step::start(ui, "materialized views");
        done.materialized_views =
            refresh_materialized_views(client, server, refreshed_early).await?;
        done.stages.push(step.done("materialized views"));
    }
    reindex(client, server, &search.reindex).await?;
    let step = Step::start(ui, "analyze");
    analyze(pool, server, tables, jobs).await?;
    done.stages.push(step.done("analyze"));
    Ok(done)
}

/// One timed post-load step, shown as a stage when there is a `ui`.
struct Step {
    stage: Option<Stage>,
    started: Instant,
}

impl Step {
    fn start(ui: Option<&Ui>, shown_as: &str) -> Step {
        Step {
            stage: ui.map(|ui| Stage::start(ui, shown_as)),
            started: Instant::now(),
        }
    }

    /// The step's timing, under its name in the report.
    fn done(self, reported_as: &str) -> StageTiming {
        let elapsed = match self.stage {
            Some(stage) => stage.done(),
            None => self.started.elapsed(),
        };
        StageTiming {
            stage: reported_as.to_string(),
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// A derived column to recompute: `UPDATE table SET column = expression`.
#[derive(Debug, Clone)]
pub struct DerivedColumn {
    pub table: QualifiedName,
    pub column: String,
    pub expression: String,
}

impl DerivedColumn {
    pub fn from_config(c: &DerivedColumnConfig) -> Result<DerivedColumn, String> {
        Ok(DerivedColumn {
            table: QualifiedName::parse(&c.table)?,
            column: c.column.clone(),
            expression: c.expression.clone(),
        })
    }

    pub fn label(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// What a derived column holds during the load, before it is recomputed: NULL, or for a
/// NOT NULL column the empty value (an empty tsvector, an empty string), so the original
/// content never reaches staging, not even for a moment.
#[derive(Debug)]
pub struct Placeholder {
    not_null: bool,
}

impl Transform for Placeholder {
    fn apply(&self, _value: &str, out: &mut String) -> Result<Output, TransformError> {
        self.apply_null(out)
    }

    fn apply_null(&self, _out: &mut String) -> Result<Output, TransformError> {
        Ok(if self.not_null {
            Output::Value
        } else {
            Output::Null
        })
    }
}

pub fn placeholder(not_null: bool) -> Arc<dyn Transform> {
    Arc::new(Placeholder { not_null })
}

/// Recomputes derived columns, table by table (all of a table's derived columns at once).
///
/// `compact` (during a refresh, before the table's indexes exist): one table rewrite,
/// `ALTER TABLE … ALTER COLUMN c TYPE <its own type> USING (expression)`, which computes the
/// expressions from each row's old values as `UPDATE … SET c = (expression)` does and writes
/// a compact table once. Measured on a 1 M-row table (tsvector of two names, psql, a quiet
/// machine): 5.1 s, against 8.7 s for `UPDATE` (7.2 s) then `VACUUM FULL` (1.5 s). Where
/// that statement would not give the same table — a view, rule, policy or generated column
/// uses the column (PostgreSQL refuses), the table has partitions, a parent or children, or a
/// column attribute differs afterwards that is not put back (storage, compression and
/// statistics target are, since the type change resets them) — it is rolled back and the
/// table gets `UPDATE` then `VACUUM FULL`, as before. Otherwise (on a live database, whose indexes exist): `UPDATE` then a
/// plain VACUUM, which marks the old row versions reusable.
pub async fn recompute_derived(
    client: &Client,
    server: &str,
    derived: &[DerivedColumn],
    compact: bool,
) -> Result<Vec<String>, DbError> {
    let mut by_table: BTreeMap<&QualifiedName, Vec<&DerivedColumn>> = BTreeMap::new();
    for d in derived {
        by_table.entry(&d.table).or_default().push(d);
    }
    let mut done = Vec::new();
    for (table, columns) in by_table {
        let rewritten = compact && rewrite_with_derived(client, server, table, &columns).await?;
        if !rewritten {
            update_derived(client, server, table, &columns, compact).await?;
        }
        tracing::debug!(
            %table,
            how = if rewritten { "one rewrite" } else { "UPDATE, then VACUUM" },
            "derived columns recomputed"
        );
        done.extend(columns.iter().map(|d| d.label()));
    }
    Ok(done)
}

/// `UPDATE table SET … ; VACUUM [FULL] table`.
async fn update_derived(
    client: &Client,
    server: &str,
    table: &QualifiedName,
    columns: &[&DerivedColumn],
    compact: bool,
) -> Result<(), DbError> {
    let sets = columns
        .iter()
        .map(|d| format!("{} = ({})", quote_ident(&d.column), d.expression))
        .collect::<Vec<_>>()
        .join(", ");
    client
        .batch_execute(&format!("UPDATE {} SET {sets}", table.sql()))
        .await
        .map_err(|e| DbError::new(server, format!("recomputing derived columns of {table}"), e))?;
    client
        .batch_execute(&format!(
            "VACUUM {}{}",
            if compact { "FULL " } else { "" },
            table.sql()
        ))
        .await
        .map_err(|e| DbError::new(server, format!("vacuuming {table}"), e))?;
    Ok(())
}

/// Every attribute of every column of a table that `ALTER COLUMN … TYPE` could change, as
/// text, in column order (on PostgreSQL 13, which has no `attcompression`, the query fails
/// and the `UPDATE` path is taken); and whether the table stands alone (no partitions,
/// parent or children, to which the statement would recurse). A `pg_attver` entry of `attoptions` is
/// not compared: some builds of PostgreSQL (this project's CI machine's among them) keep a
/// per-column version counter there that any change of the column moves; it is not dumped.
const COLUMN_ATTRIBUTES: &str = "
    SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
           coalesce(quote_ident(cn.nspname) || '.' || quote_ident(co.collname), ''),
           a.attstorage::text, a.attcompression::text, coalesce(a.attstattarget, -1)::int4,
           concat_ws('|', a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated,
                     a.attacl::text,
                     array(SELECT o FROM unnest(a.attoptions) o
                            WHERE o NOT LIKE 'pg\\_attver=%')::text,
                     a.attfdwoptions::text,
                     pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum)),
           c.relkind = 'r' AND NOT c.relispartition
             AND NOT EXISTS (SELECT 1 FROM pg_inherits i
                              WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
      FROM pg_class c
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_collation co ON co.oid = a.attcollation
      LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
     WHERE c.oid = $1::text::regclass
     ORDER BY a.attnum";

/// One column's attributes, as [`COLUMN_ATTRIBUTES`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnAttributes {
    name: String,
    type_sql: String,
    collation_sql: String,
    storage: String,
    compression: String,
    statistics: i32,
    rest: String,
}

async fn column_attributes(
    client: &Client,
    table: &QualifiedName,
) -> Result<(Vec<ColumnAttributes>, bool), tokio_postgres::Error> {
    let rows = client.query(COLUMN_ATTRIBUTES, &[&table.sql()]).await?;
    let alone = rows.first().is_some_and(|r| r.get::<_, bool>(7));
    let columns = rows
        .iter()
        .map(|r| ColumnAttributes {
            name: r.get(0),
            type_sql: r.get(1),
            collation_sql: r.get(2),
            storage: r.get(3),
            compression: r.get(4),
            statistics: r.get(5),
            rest: r.get(6),
        })
        .collect();
    Ok((columns, alone))
}

/// The statement that gives a column back what the type change reset.
fn restore_attributes(before: &ColumnAttributes, after: &ColumnAttributes) -> Vec<String> {
    let column = quote_ident(&before.name);
    let mut out = Vec::new();
    if before.storage != after.storage {
        let storage = match before.storage.as_str() {
            "p" => "PLAIN",
            "e" => "EXTERNAL",
            "m" => "MAIN",
            _ => "EXTENDED",
        };
        out.push(format!("ALTER COLUMN {column} SET STORAGE {storage}"));
    }
    if before.compression != after.compression {
        let compression = match before.compression.as_str() {
            "p" => "pglz",
            "l" => "lz4",
            _ => "default",
        };
        out.push(format!(
            "ALTER COLUMN {column} SET COMPRESSION {compression}"
        ));
    }
    if before.statistics != after.statistics {
        out.push(format!(
            "ALTER COLUMN {column} SET STATISTICS {}",
            before.statistics
        ));
    }
    out
}

/// The one-rewrite recompute (see [`recompute_derived`]), in a transaction of its own: true
/// when it was done and committed; false when it was rolled back, nothing changed, for the
/// `UPDATE` path. An error is returned only for the session itself (the rollback failing).
async fn rewrite_with_derived(
    client: &Client,
    server: &str,
    table: &QualifiedName,
    columns: &[&DerivedColumn],
) -> Result<bool, DbError> {
    let session = |e| DbError::new(server, format!("recomputing derived columns of {table}"), e);
    client.batch_execute("BEGIN").await.map_err(session)?;
    let outcome = async {
        let (before, alone) = column_attributes(client, table).await?;
        if !alone {
            return Ok::<_, tokio_postgres::Error>(false);
        }
        let mut changes = Vec::new();
        for d in columns {
            let Some(c) = before.iter().find(|c| c.name == d.column) else {
                return Ok(false);
            };
            let collate = if c.collation_sql.is_empty() {
                String::new()
            } else {
                format!(" COLLATE {}", c.collation_sql)
            };
            changes.push(format!(
                "ALTER COLUMN {} TYPE {}{collate} USING ({})",
                quote_ident(&d.column),
                c.type_sql,
                d.expression
            ));
        }
        let alter = format!("ALTER TABLE ONLY {} {}", table.sql(), changes.join(", "));
        if let Err(e) = client.batch_execute(&alter).await {
            tracing::debug!(%table, error = %e, "derived columns: one rewrite refused");
            return Ok(false);
        }
        let (after, _) = column_attributes(client, table).await?;
        if after.len() != before.len() {
            return Ok(false);
        }
        let restores: Vec<String> = before
            .iter()
            .zip(&after)
            .flat_map(|(b, a)| restore_attributes(b, a))
            .collect();
        if !restores.is_empty() {
            client
                .batch_execute(&format!(
                    "ALTER TABLE ONLY {} {}",
                    table.sql(),
                    restores.join(", ")
                ))
                .await?;
        }
        let (again, _) = column_attributes(client, table).await?;
        Ok(again == before)
    }
    .await;
    match outcome {
        Ok(true) => {
            client.batch_execute("COMMIT").await.map_err(session)?;
            Ok(true)
        }
        Ok(false) | Err(_) => {
            client.batch_execute("ROLLBACK").await.map_err(session)?;
            Ok(false)
        }
    }
}

/// Materialized views of the database in dependency order (a view over another comes after
/// it, also through plain views in between).
pub async fn materialized_views_in_order(
    client: &Client,
    server: &str,
) -> Result<Vec<QualifiedName>, DbError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('m', 'v')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "listing materialized views", e))?;
    let mut names: HashMap<u32, (QualifiedName, bool)> = HashMap::new();
    for r in rows {
        names.insert(
            r.get(0),
            (
                QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                r.get::<_, String>(3) == "m",
            ),
        );
    }
    let edges = client
        .query(
            "SELECT DISTINCT r.ev_class, d.refobjid
               FROM pg_rewrite r
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                               AND d.refclassid = 'pg_class'::regclass
              WHERE d.refobjid <> r.ev_class",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading view dependencies", e))?;
    let mut depends: HashMap<u32, BTreeSet<u32>> = HashMap::new();
    for e in edges {
        let from: u32 = e.get(0);
        let to: u32 = e.get(1);
        if names.contains_key(&from) && names.contains_key(&to) {
            depends.entry(from).or_default().insert(to);
        }
    }
    // Depth-first post-order over views and matviews; emit matviews only.
    let mut order = Vec::new();
    let mut state: HashMap<u32, u8> = HashMap::new();
    let mut oids: Vec<u32> = names.keys().copied().collect();
    oids.sort_by_key(|o| names[o].0.clone());
    fn visit(
        oid: u32,
        depends: &HashMap<u32, BTreeSet<u32>>,
        state: &mut HashMap<u32, u8>,
        order: &mut Vec<u32>,
    ) {
        if state.get(&oid).copied().unwrap_or(0) != 0 {
            return;
        }
        state.insert(oid, 1);
        if let Some(deps) = depends.get(&oid) {
            for &d in deps {
                visit(d, depends, state, order);
            }
        }
        state.insert(oid, 2);
        order.push(oid);
    }
    for oid in oids {
        visit(oid, &depends, &mut state, &mut order);
    }
    Ok(order
        .into_iter()
        .filter_map(|o| names.get(&o).filter(|(_, m)| *m).map(|(n, _)| n.clone()))
        .collect())
}

/// Refreshes every materialized view, in dependency order.
pub async fn refresh_materialized_views(
    client: &Client,
    server: &str,
    refreshed: &BTreeSet<QualifiedName>,
) -> Result<Vec<String>, DbError> {
    let mut done = Vec::new();
    for view in materialized_views_in_order(client, server).await? {
        if refreshed.contains(&view) {
            done.push(view.to_string());
            continue;
        }
        refresh_view(client, server, &view).await?;
        done.push(view.to_string());
    }
    Ok(done)
}

/// Refreshes one materialized view (after the copy, or during it: [`super::post_data`]).
pub async fn refresh_view(
    client: &Client,
    server: &str,
    view: &QualifiedName,
) -> Result<(), DbError> {
    client
        .batch_execute(&format!("REFRESH MATERIALIZED VIEW {}", view.sql()))
        .await
        .map_err(|e| DbError::new(server, format!("refreshing materialized view {view}"), e))
}

/// Rebuilds the named indexes.
pub async fn reindex(client: &Client, server: &str, indexes: &[String]) -> Result<(), DbError> {
    for index in indexes {
        let name = QualifiedName::parse(index)
            .map_err(|e| DbError::other(server, format!("search.reindex: {e}")))?;
        client
            .batch_execute(&format!("REINDEX INDEX {}", name.sql()))
            .await
            .map_err(|e| DbError::new(server, format!("rebuilding index {index}"), e))?;
    }
    Ok(())
}

/// ANALYZE every table, `jobs` at a time.
pub async fn analyze(
    pool: &deadpool_postgres::Pool,
    server: &str,
    tables: &[QualifiedName],
    jobs: usize,
) -> Result<(), DbError> {
    let results: Vec<Result<(), DbError>> = futures_util::stream::iter(tables.iter().cloned())
        .map(|table| {
            let pool = pool.clone();
            let server = server.to_string();
            async move {
                let client = pool.get().await.map_err(|e| {
                    DbError::other(&server, format!("connecting to analyze {table}: {e}"))
                })?;
                client
                    .batch_execute(&format!("ANALYZE {}", table.sql()))
                    .await
                    .map_err(|e| DbError::new(&server, format!("analyzing {table}"), e))
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
