//! Search indexes and derived data, rebuilt from the anonymized rows: configured derived
//! columns (tsvector and others) recomputed, materialized views refreshed in dependency
//! order, named indexes rebuilt, statistics gathered — in the one post-load order
//! ([`post_load`]) that both the refresh (in the new database) and `restage reindex` (in the
//! live one) run.
//!
//! Derived columns are recomputed before the post-data section (no index to maintain during
//! the UPDATE); materialized views after it (their own indexes exist by then). In a refresh,
//! the tables without derived columns may have had their indexes, keys and ANALYZE during
//! the copy already ([`super::post_data`]): the post-data section then restores the rest, and
//! `tables` (what is analyzed here) leaves them out.

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
    if let Database::New {
        tools,
        archive,
        endpoint,
    } = database
    {
        let step = Step::start(ui, "indexes");
        schema::restore(tools, archive, endpoint, schema::Section::PostData, jobs).await?;
        done.stages.push(step.done("schema (post-data)"));
    }
    if search.refresh_materialized_views {
        let step = Step::start(ui, "materialized views");
        done.materialized_views = refresh_materialized_views(client, server).await?;
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

/// Recomputes derived columns, one UPDATE per table (all its derived columns at once), then
/// vacuums the table so the rewritten rows' old versions do not bloat staging: `compact`
/// (during a refresh, before indexes exist) rewrites it with VACUUM FULL, which gives back
/// the space; otherwise (on a live database) a plain VACUUM marks it reusable.
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
        let sets = columns
            .iter()
            .map(|d| format!("{} = ({})", quote_ident(&d.column), d.expression))
            .collect::<Vec<_>>()
            .join(", ");
        client
            .batch_execute(&format!("UPDATE {} SET {sets}", table.sql()))
            .await
            .map_err(|e| {
                DbError::new(server, format!("recomputing derived columns of {table}"), e)
            })?;
        client
            .batch_execute(&format!(
                "VACUUM {}{}",
                if compact { "FULL " } else { "" },
                table.sql()
            ))
            .await
            .map_err(|e| DbError::new(server, format!("vacuuming {table}"), e))?;
        done.extend(columns.iter().map(|d| d.label()));
    }
    Ok(done)
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
) -> Result<Vec<String>, DbError> {
    let mut done = Vec::new();
    for view in materialized_views_in_order(client, server).await? {
        client
            .batch_execute(&format!("REFRESH MATERIALIZED VIEW {}", view.sql()))
            .await
            .map_err(|e| DbError::new(server, format!("refreshing materialized view {view}"), e))?;
        done.push(view.to_string());
    }
    Ok(done)
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
