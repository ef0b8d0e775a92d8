//! The sampling planner: which rows of each table reach staging.
//!
//! From the `sample:` section of restage.yaml, the foreign-key [`graph`] and `max_storage`,
//! it decides per table: the whole table, nothing (`rows: 0`), or a subset in which every
//! foreign key still holds. Tables with a spec are *roots*; tables that reference subsetted
//! tables *follow* them; all others are copied whole.
//!
//! It works in one narrow pass over the key columns of the tables that need it (roots, and
//! tables that other subsetted tables reference), inside the same snapshot as the data, then
//! solves the subset in memory ([`keys::solve`]); the data pass filters rows with the result
//! ([`filter`]). Nothing is written to production: no temporary tables, no functions.
//!
//! `max_storage` caps the restored table data (heap + TOAST): bytes per row are estimated from
//! the source catalog, and when the plan is over the cap, every root's sample is scaled down
//! by the same factor (binary search) until it fits. The report shows planned and actual.

pub mod filter;
pub mod graph;
pub mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;

use self::filter::{KeySets, Reference, SubsetFilter};
use self::graph::{Graph, Reason};
use self::keys::{KeyHasher, KeyLayout, KeyTable, Part, SampleRule, Selector, Solved};
use crate::catalog::{Catalog, QualifiedName, Table};
use crate::config::{Config, Dangling, SampleSpecConfig};
use crate::db::{DbError, quote_ident};
use crate::error::{Error, Result};
use crate::refresh::rows::RowFilter;
use crate::refresh::snapshot::Snapshot;
use crate::secret::Secret;

/// Default bound on the memory of key sets.
pub const DEFAULT_MAX_KEY_MEMORY: u64 = 2 << 30;

/// How a table's rows are chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// Every row.
    Whole,
    /// No row (`rows: 0`): the table exists in staging, empty.
    Empty,
    /// A subset.
    Subset,
}

/// The plan for one table that holds rows.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub decision: Decision,
    /// Why, in words: `whole`, `root: percent 10 (…)`, `follows public.users via fk`.
    pub reason: String,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// Row filter applied in the transform stage.
    pub filter: Option<Arc<dyn RowFilter>>,
    /// Condition pushed down to the source query.
    pub source_where: Option<String>,
}

/// The plan for every table that holds rows, and the sample summary for the report.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tables: BTreeMap<QualifiedName, TablePlan>,
    pub summary: Option<SampleSummary>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SampleSummary {
    pub max_storage: Option<u64>,
    /// The factor roots were scaled by to fit `max_storage` (1 when they fit as asked).
    pub scale: f64,
    pub planned_bytes: u64,
    pub key_tables: usize,
    pub key_rows: u64,
    pub key_memory_bytes: u64,
    pub tables: BTreeMap<String, TableSample>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableSample {
    pub reason: String,
    pub base_rows: Option<u64>,
    pub pulled_rows: Option<u64>,
    pub planned_rows: u64,
    pub planned_bytes: u64,
}

/// The planner's row estimate for a table, never negative (-1 means never analyzed: guess
/// from the size at ~100 bytes a row).
pub fn estimated_rows(table: &Table) -> u64 {
    if table.estimated_rows >= 0.0 {
        table.estimated_rows as u64
    } else {
        table.bytes / 100
    }
}

/// The `sample:` section, checked against the catalog.
#[derive(Debug, Clone, Default)]
pub struct SampleSettings {
    pub max_storage: Option<u64>,
    pub tables: BTreeMap<QualifiedName, SampleSpecConfig>,
    pub dangling: Dangling,
    pub overrides: BTreeMap<String, Dangling>,
    pub max_key_memory: u64,
}

impl SampleSettings {
    pub fn from_config(config: &Config) -> Result<SampleSettings> {
        let Some(sample) = &config.file.sample else {
            return Ok(SampleSettings::default());
        };
        let mut tables = BTreeMap::new();
        for (name, spec) in &sample.tables {
            let q = QualifiedName::parse(name)
                .map_err(|e| config.value_error(&["sample", "tables", name.as_str()], e))?;
            tables.insert(q, spec.clone());
        }
        Ok(SampleSettings {
            max_storage: sample.max_storage.map(|s| s.0),
            tables,
            dangling: sample.dangling.unwrap_or_default(),
            overrides: sample
                .foreign_keys
                .iter()
                .map(|(k, v)| (k.clone(), v.dangling))
                .collect(),
            max_key_memory: sample
                .max_key_memory
                .map(|s| s.0)
                .unwrap_or(DEFAULT_MAX_KEY_MEMORY),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.max_storage.is_none()
    }

    /// Problems with the section against the source schema, all at once.
    pub fn check(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        let names: Vec<String> = catalog.tables.keys().map(|n| n.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for (name, spec) in &self.tables {
            match catalog.table(name) {
                None => problems.push(format!(
                    "sample.tables: table {name} does not exist in the source{}",
                    crate::yaml::did_you_mean(&name.to_string(), &refs)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                )),
                Some(t) if t.parent.is_some() => problems.push(format!(
                    "sample.tables: {name} is a partition of {}; sample the partitioned table",
                    catalog.root_of(name)
                )),
                Some(t) => {
                    if let Some(col) = &spec.column {
                        match t.column(col) {
                            None => problems.push(format!("sample.tables.{name}: column {col} does not exist")),
                            Some(c)
                                if !matches!(
                                    c.ty.kind,
                                    crate::catalog::TypeKind::Date
                                        | crate::catalog::TypeKind::Timestamp
                                        | crate::catalog::TypeKind::TimestampTz
                                ) || c.ty.array =>
                            {
                                problems.push(format!(
                                    "sample.tables.{name}: since_days needs a date or timestamp column; {col} is {}",
                                    c.ty.name
                                ))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let fk_names: Vec<&str> = catalog
            .foreign_keys
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        for (fk, policy) in &self.overrides {
            match catalog.foreign_keys.iter().find(|f| &f.name == fk) {
                None => problems.push(format!(
                    "sample.foreign_keys: no foreign key named {fk}{}",
                    crate::yaml::did_you_mean(fk, &fk_names)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                )),
                Some(f) if *policy == Dangling::SetNull && !f.nullable => problems.push(format!(
                    "sample.foreign_keys.{fk}: dangling: set_null, but {}({}) is NOT NULL",
                    f.table,
                    f.columns.join(", ")
                )),
                _ => {}
            }
        }
        problems
    }
}

impl Plan {
    /// Every table whole: the plan without a `sample:` section.
    pub fn whole(catalog: &Catalog) -> Plan {
        let tables = catalog
            .data_tables()
            .map(|t| {
                (
                    t.name.clone(),
                    TablePlan {
                        table: t.name.clone(),
                        decision: Decision::Whole,
                        reason: "whole".to_string(),
                        estimated_rows: estimated_rows(t),
                        estimated_bytes: t.bytes,
                        filter: None,
                        source_where: None,
                    },
                )
            })
            .collect();
        Plan {
            tables,
            summary: None,
        }
    }
}

/// How each logical table takes part.
#[derive(Debug, Clone)]
enum Role {
    Whole,
    Empty,
    Root(SampleRule, String),
    Follows(QualifiedName, String),
}

/// Makes the plan: decides, reads key columns inside the snapshot, solves, fits
/// `max_storage`, builds the row filters.
pub async fn build(
    catalog: &Catalog,
    settings: &SampleSettings,
    snapshot: &Snapshot,
    secret: &Secret,
    jobs: usize,
) -> Result<Plan> {
    if settings.is_empty() {
        return Ok(Plan::whole(catalog));
    }
    let problems = settings.check(catalog);
    if !problems.is_empty() {
        return Err(Error::Rules(problems));
    }
    let graph = Graph::from_catalog(catalog, settings.dangling, &settings.overrides);
    let roots: BTreeSet<QualifiedName> = settings.tables.keys().cloned().collect();
    let subsetted = graph.subsetted(&roots);

    // The window cutoff, once, from the snapshot's clock.
    let cutoff: Option<String> = if settings.tables.values().any(|s| s.since_days.is_some()) {
        let row = snapshot
            .leader()
            .query_one("SELECT now()::text", &[])
            .await
            .map_err(|e| DbError::new(&snapshot.endpoint().display, "reading the clock", e))?;
        Some(row.get(0))
    } else {
        None
    };
    let window_sql = |spec: &SampleSpecConfig| -> Option<String> {
        match (&spec.column, spec.since_days, &cutoff) {
            (Some(col), Some(days), Some(now)) => Some(format!(
                "{} >= ({}::timestamptz - interval '{days} days')",
                quote_ident(col),
                crate::db::quote_literal(now)
            )),
            _ => None,
        }
    };

    // Roles of logical tables.
    let mut roles: BTreeMap<QualifiedName, Role> = BTreeMap::new();
    for name in logical_tables(catalog) {
        let role = match (settings.tables.get(&name), subsetted.get(&name)) {
            (Some(spec), _) if spec.rows == Some(0) => Role::Empty,
            (Some(spec), _) => Role::Root(
                SampleRule {
                    percent: spec.percent,
                    window: spec.since_days.is_some(),
                    max_rows: spec.max_rows,
                    empty: false,
                },
                describe_spec(spec),
            ),
            (None, Some(Reason::Follows { parent, fk })) => {
                Role::Follows(parent.clone(), fk.clone())
            }
            _ => Role::Whole,
        };
        roles.insert(name, role);
    }
    let empty: Vec<QualifiedName> = roles
        .iter()
        .filter(|(_, r)| matches!(r, Role::Empty))
        .map(|(n, _)| n.clone())
        .collect();

    // Which tables need a key table, and their layouts.
    let mut layouts: BTreeMap<QualifiedName, KeyLayout> = BTreeMap::new();
    for (name, role) in &roles {
        let needs = match role {
            Role::Root(..) => true,
            Role::Follows(..) => graph.referenced_by_subsetted(name, &subsetted),
            _ => false,
        };
        if !needs {
            continue;
        }
        let Some(table) = catalog.table(name) else {
            continue;
        };
        let identity = identity_columns(table);
        let mut referenced: Vec<Vec<String>> = Vec::new();
        for e in graph
            .edges
            .iter()
            .filter(|e| &e.parent == name && subsetted.contains_key(&e.child))
        {
            if e.parent_columns != identity && !referenced.contains(&e.parent_columns) {
                referenced.push(e.parent_columns.clone());
            }
        }
        let outgoing = graph
            .outgoing(name, &subsetted)
            .map(|(i, e)| (i, e.child_columns.clone()))
            .collect();
        layouts.insert(
            name.clone(),
            KeyLayout {
                identity,
                referenced,
                outgoing,
            },
        );
    }

    // The memory bound, checked against estimates before reading anything.
    let estimate: u64 = layouts
        .iter()
        .map(|(name, l)| {
            logical_rows(catalog, name)
                * (keys::BYTES_PER_ROW
                    + keys::BYTES_PER_REFERENCE * (l.outgoing.len() + l.referenced.len()) as u64)
        })
        .sum();
    if estimate > settings.max_key_memory {
        return Err(Error::Usage(format!(
            "sample: the key sets of this plan would need about {} of memory, over sample.max_key_memory ({}); raise it, or sample fewer or smaller tables",
            crate::units::human_bytes(estimate),
            crate::units::human_bytes(settings.max_key_memory)
        )));
    }

    // The key pass.
    let hasher = KeyHasher::default();
    let key = crate::transform::key::Key::new(secret.expose().as_bytes());
    let selector = Selector::new(key.domain(b"restage-sample"));
    let passes = layouts.iter().map(|(name, layout)| {
        let spec = settings.tables.get(name);
        // Rows outside a root's window can be kept only when another table can pull them.
        let referenced = graph.referenced_by_subsetted(name, &subsetted);
        let window = spec.and_then(&window_sql);
        let (where_sql, window_expr) = match (window, referenced) {
            (Some(w), false) => (Some(w), None),
            (Some(w), true) => (None, Some(w)),
            (None, _) => (None, None),
        };
        let hasher = hasher.clone();
        let selector = selector.clone();
        let name = name.clone();
        let layout = layout.clone();
        async move {
            let client = snapshot.session().await?;
            key_pass(
                &client,
                &snapshot.endpoint().display,
                &name,
                &layout,
                where_sql,
                window_expr,
                &hasher,
                &selector,
                settings.max_key_memory,
            )
            .await
        }
    });
    let results: Vec<Result<KeyTable>> = futures_util::stream::iter(passes)
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut tables: BTreeMap<QualifiedName, KeyTable> = BTreeMap::new();
    for r in results {
        let t = r?;
        tables.insert(t.name.clone(), t);
    }
    let key_rows: u64 = tables.values().map(|t| t.rows() as u64).sum();

    let parts: BTreeMap<QualifiedName, Part> = tables
        .keys()
        .map(|n| {
            let part = match &roles[n] {
                Role::Root(rule, _) => Part::Root(rule.clone()),
                _ => Part::Follows,
            };
            (n.clone(), part)
        })
        .collect();

    let gating = graph.gating(&subsetted);

    // Solve, then fit max_storage by scaling every root down by one factor.
    let mut factor = 1.0;
    let mut solved = keys::solve(&mut tables, &parts, &graph.edges, &gating, &empty, factor);
    let mut planned = planned_sizes(catalog, &roles, &tables, &solved, &graph, &subsetted);
    if let Some(cap) = settings.max_storage
        && total(&planned) > cap
    {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..14 {
            let mid = (lo + hi) / 2.0;
            let s = keys::solve(&mut tables, &parts, &graph.edges, &gating, &empty, mid);
            let p = planned_sizes(catalog, &roles, &tables, &s, &graph, &subsetted);
            if total(&p) > cap {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        factor = lo;
        solved = keys::solve(&mut tables, &parts, &graph.edges, &gating, &empty, factor);
        planned = planned_sizes(catalog, &roles, &tables, &solved, &graph, &subsetted);
        if total(&planned) > cap {
            let mut whole: Vec<(&QualifiedName, u64)> = planned
                .iter()
                .filter(|(n, _)| matches!(roles.get(*n), Some(Role::Whole)))
                .map(|(n, (_, b))| (n, *b))
                .collect();
            whole.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
            let names: Vec<String> = whole
                .iter()
                .take(3)
                .map(|(n, b)| format!("{n} ({})", crate::units::human_bytes(*b)))
                .collect();
            return Err(Error::Usage(format!(
                "sample.max_storage ({}) cannot be met: the tables copied whole alone need {}; sample them too (largest: {})",
                crate::units::human_bytes(cap),
                crate::units::human_bytes(total(&planned)),
                names.join(", ")
            )));
        }
    }

    let key_memory: u64 = layouts
        .iter()
        .map(|(name, l)| {
            tables.get(name).map(|t| t.rows() as u64).unwrap_or(0)
                * (keys::BYTES_PER_ROW
                    + keys::BYTES_PER_REFERENCE * (l.outgoing.len() + l.referenced.len()) as u64)
        })
        .sum();
    for t in tables.values_mut() {
        t.freeze();
    }
    let key_sets = Arc::new(KeySets {
        hasher,
        tables,
        empty: empty.clone(),
    });

    // Per data table (leaf): decision, filter, estimate.
    let mut plan = Plan::default();
    let mut summary = SampleSummary {
        max_storage: settings.max_storage,
        scale: factor,
        key_tables: key_sets.tables.len(),
        key_rows,
        key_memory_bytes: key_memory,
        ..SampleSummary::default()
    };
    for (logical, role) in &roles {
        let (rows, bytes) = planned.get(logical).copied().unwrap_or((0, 0));
        let solved_here = solved.get(logical);
        let reason = match role {
            Role::Whole => "whole".to_string(),
            Role::Empty => "schema only (rows: 0)".to_string(),
            Role::Root(_, spec) => match solved_here {
                Some(s) if s.pulled > 0 => format!(
                    "root: {spec}; {} chosen + {} referenced by kept rows",
                    s.base, s.pulled
                ),
                Some(s) => format!("root: {spec}; {} chosen", s.base),
                None => format!("root: {spec}"),
            },
            Role::Follows(parent, fk) => format!("follows {parent} via {fk}"),
        };
        let scaled = if factor < 1.0 && matches!(role, Role::Root(..)) {
            format!(
                "{reason} (scaled to {:.1}% to fit max_storage)",
                factor * 100.0
            )
        } else {
            reason
        };
        summary.tables.insert(
            logical.to_string(),
            TableSample {
                reason: scaled.clone(),
                base_rows: solved_here.map(|s| s.base),
                pulled_rows: solved_here.map(|s| s.pulled),
                planned_rows: rows,
                planned_bytes: bytes,
            },
        );
        let leaves = catalog.leaves(logical);
        let logical_est = logical_rows(catalog, logical).max(1);
        for leaf in leaves {
            let share = estimated_rows(leaf) as f64 / logical_est as f64;
            let decision = match role {
                Role::Whole => Decision::Whole,
                Role::Empty => Decision::Empty,
                _ => Decision::Subset,
            };
            let filter: Option<Arc<dyn RowFilter>> = match role {
                Role::Root(..) | Role::Follows(..) => Some(Arc::new(leaf_filter(
                    leaf,
                    logical,
                    &graph,
                    &subsetted,
                    &gating,
                    key_sets.clone(),
                ))),
                _ => None,
            };
            let source_where = match role {
                Role::Root(..) if !graph.referenced_by_subsetted(logical, &subsetted) => {
                    settings.tables.get(logical).and_then(&window_sql)
                }
                _ => None,
            };
            plan.tables.insert(
                leaf.name.clone(),
                TablePlan {
                    table: leaf.name.clone(),
                    decision,
                    reason: scaled.clone(),
                    estimated_rows: (rows as f64 * share).round() as u64,
                    estimated_bytes: (bytes as f64 * share).round() as u64,
                    filter,
                    source_where,
                },
            );
        }
    }
    summary.planned_bytes = total(&planned);
    plan.summary = Some(summary);
    Ok(plan)
}

fn total(planned: &BTreeMap<QualifiedName, (u64, u64)>) -> u64 {
    planned.values().map(|(_, b)| *b).sum()
}

/// Ordinary tables that are not partitions, and partitioned tables: the graph's nodes.
fn logical_tables(catalog: &Catalog) -> Vec<QualifiedName> {
    catalog
        .tables
        .values()
        .filter(|t| t.parent.is_none())
        .map(|t| t.name.clone())
        .collect()
}

/// Estimated rows of a logical table (its leaves').
fn logical_rows(catalog: &Catalog, name: &QualifiedName) -> u64 {
    catalog.leaves(name).iter().map(|t| estimated_rows(t)).sum()
}

fn logical_bytes(catalog: &Catalog, name: &QualifiedName) -> u64 {
    catalog.leaves(name).iter().map(|t| t.bytes).sum()
}

/// The identity of a row: the primary key, or every copied column when there is none.
fn identity_columns(table: &Table) -> Vec<String> {
    if table.primary_key.is_empty() {
        table.copy_columns().map(|c| c.name.clone()).collect()
    } else {
        table.primary_key.clone()
    }
}

fn describe_spec(spec: &SampleSpecConfig) -> String {
    let mut parts = Vec::new();
    if let Some(p) = spec.percent {
        parts.push(format!("percent {p}"));
    }
    if let (Some(d), Some(c)) = (spec.since_days, &spec.column) {
        parts.push(format!("since_days {d} on {c}"));
    }
    if let Some(m) = spec.max_rows {
        parts.push(format!("max_rows {m}"));
    }
    parts.join(", ")
}

/// Planned (rows, bytes) per logical table. Key tables are exact; a following table without
/// one is estimated from the share of its parents' rows that are kept.
fn planned_sizes(
    catalog: &Catalog,
    roles: &BTreeMap<QualifiedName, Role>,
    tables: &BTreeMap<QualifiedName, KeyTable>,
    solved: &BTreeMap<QualifiedName, Solved>,
    graph: &Graph,
    subsetted: &BTreeMap<QualifiedName, Reason>,
) -> BTreeMap<QualifiedName, (u64, u64)> {
    let mut out = BTreeMap::new();
    let fraction = |name: &QualifiedName| -> f64 {
        match (solved.get(name), tables.get(name)) {
            (Some(s), Some(t)) if t.rows() > 0 => s.kept as f64 / t.rows() as f64,
            _ => 1.0,
        }
    };
    for (name, role) in roles {
        let rows_all = logical_rows(catalog, name);
        let bytes_all = logical_bytes(catalog, name);
        let per_row = if rows_all > 0 {
            bytes_all as f64 / rows_all as f64
        } else {
            0.0
        };
        let rows = match role {
            Role::Whole => rows_all,
            Role::Empty => 0,
            _ => match solved.get(name) {
                Some(s) => s.kept,
                None => {
                    let mut f = 1.0;
                    for (_, e) in graph.outgoing(name, subsetted) {
                        if e.dangling == Dangling::Drop {
                            f *= if roles
                                .get(&e.parent)
                                .is_some_and(|r| matches!(r, Role::Empty))
                            {
                                0.0
                            } else {
                                fraction(&e.parent)
                            };
                        }
                    }
                    (rows_all as f64 * f).round() as u64
                }
            },
        };
        let bytes = if matches!(role, Role::Whole) {
            bytes_all
        } else {
            (rows as f64 * per_row).round() as u64
        };
        out.insert(name.clone(), (rows, bytes));
    }
    out
}

/// The filter of one leaf of a subsetted logical table.
fn leaf_filter(
    leaf: &Table,
    logical: &QualifiedName,
    graph: &Graph,
    subsetted: &BTreeMap<QualifiedName, Reason>,
    gating: &BTreeSet<usize>,
    keys: Arc<KeySets>,
) -> SubsetFilter {
    let columns: Vec<&str> = leaf.copy_columns().map(|c| c.name.as_str()).collect();
    let positions = |names: &[String]| -> Vec<usize> {
        names
            .iter()
            .filter_map(|n| columns.iter().position(|c| c == n))
            .collect()
    };
    let membership = keys
        .tables
        .get(logical)
        .map(|t| (logical.clone(), positions(&t.identity)));
    let mut gates = Vec::new();
    let mut set_null = Vec::new();
    for (i, e) in graph.outgoing(logical, subsetted) {
        let r = Reference {
            parent: e.parent.clone(),
            parent_columns: e.parent_columns.clone(),
            positions: positions(&e.child_columns),
        };
        if r.positions.len() != e.child_columns.len() {
            continue;
        }
        match e.dangling {
            Dangling::SetNull => set_null.push(r),
            // A table with its own key table was solved with its gates already.
            Dangling::Drop if membership.is_none() && gating.contains(&i) => gates.push(r),
            Dangling::Drop => {}
        }
    }
    SubsetFilter {
        keys,
        membership,
        gates,
        set_null,
    }
}

/// Reads the key columns of one logical table (all its partitions) and builds its key table.
#[allow(clippy::too_many_arguments)]
async fn key_pass(
    client: &tokio_postgres::Client,
    server: &str,
    name: &QualifiedName,
    layout: &KeyLayout,
    where_sql: Option<String>,
    window_expr: Option<String>,
    hasher: &KeyHasher,
    selector: &Selector,
    max_memory: u64,
) -> Result<KeyTable> {
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
    let window_at = window_expr.as_ref().map(|w| {
        select.push(format!("({w})"));
        select.len() - 1
    });
    let sql = format!(
        "COPY (SELECT {} FROM {}{}) TO STDOUT",
        select.join(", "),
        name.sql(),
        where_sql.map(|w| format!(" WHERE {w}")).unwrap_or_default()
    );
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| DbError::new(server, format!("reading the keys of {name}"), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut table = KeyTable::new(name.clone(), layout);
    let per_row = keys::BYTES_PER_ROW
        + keys::BYTES_PER_REFERENCE * (layout.outgoing.len() + layout.referenced.len()) as u64;
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
                crate::units::human_bytes(max_memory),
                table.rows()
            )));
        }
    }
    Ok(table)
}
