//! The planner's pure decisions, made from the catalog, the `sample:` section and (once the
//! key pass has read them) the key tables — never from a database:
//!
//! - [`decide`]: the part each table takes (whole, empty, a root with its rule, a follower
//!   of a subsetted parent), which tables need a key table and with which columns, and
//!   whether their key sets fit `sample.max_key_memory` by the catalog's estimates;
//! - [`Subset::key_reads`]: what the key pass reads of each table (the `since_days` window
//!   pushed down, or read as a flag when other tables can pull rows outside it);
//! - [`Subset::fit`]: the fixed point ([`super::keys::solve`]), and every root scaled down by
//!   one factor (binary search) until the plan fits `max_storage`;
//! - [`Subset::assemble`]: the per-table plans with their row filters, and the summary.
//!
//! Tested on in-memory catalogs and key tables, as the subset planner of Greenmask is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::filter::{KeySets, Reference, RowFilter, SubsetFilter};
use super::graph::{Graph, Reason};
use super::keys::{self, KeyHasher, KeyLayout, KeyTable, Part, SampleRule, Solved};
use super::sample::SampleSettings;
use super::{Decision, Plan, SampleSummary, TablePlan, TableSample, estimated_rows};
use crate::catalog::{Catalog, QualifiedName, Table};
use crate::config::{Dangling, SampleSpecConfig};
use crate::db::{quote_ident, quote_literal};
use crate::units::human_bytes;

/// How each logical table takes part.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Whole,
    Empty,
    /// A table with its own sample spec: the rule the solver applies, and the spec in words.
    Root(SampleRule, String),
    /// A table that references a subsetted table: the parent and the foreign key.
    Follows(QualifiedName, String),
}

/// What the planner decided about a sampled run before reading anything.
#[derive(Debug, Clone)]
pub struct Subset {
    pub graph: Graph,
    pub subsetted: BTreeMap<QualifiedName, Reason>,
    /// Every logical table (not a partition) and its part.
    pub roles: BTreeMap<QualifiedName, Role>,
    /// Subsetted tables with `rows: 0`.
    pub empty: Vec<QualifiedName>,
    /// The tables that need a key table, and its columns.
    pub layouts: BTreeMap<QualifiedName, KeyLayout>,
    /// The edges that gate (see [`Graph::gating`]); the others pull.
    pub gating: BTreeSet<usize>,
}

/// What the key pass reads of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    pub table: QualifiedName,
    pub layout: KeyLayout,
    /// A condition that filters the rows read (a root's window, when nothing can pull rows
    /// outside it).
    pub where_sql: Option<String>,
    /// A condition read as a flag per row (a root's window, when other tables may pull rows
    /// outside it).
    pub window_expr: Option<String>,
}

/// The key tables after the solve, read-only for the data pass.
#[derive(Debug)]
pub struct FrozenKeys {
    pub sets: Arc<KeySets>,
    /// Rows the key tables held.
    pub rows: u64,
    /// Memory they held (by [`KeyLayout::bytes_per_row`]).
    pub memory: u64,
}

/// The solved subset, scaled to fit `max_storage`.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The factor every root was scaled by (1 when the plan fits as asked).
    pub factor: f64,
    pub solved: BTreeMap<QualifiedName, Solved>,
    /// Planned (rows, bytes) per logical table.
    pub planned: BTreeMap<QualifiedName, (u64, u64)>,
}

/// The decisions of a run with a `sample:` section, or `None` when every table is copied
/// whole. Refuses (every problem at once) a section that does not fit the catalog, and key
/// sets that would not fit `sample.max_key_memory` by the catalog's row estimates.
pub fn decide(catalog: &Catalog, settings: &SampleSettings) -> Result<Option<Subset>, Vec<String>> {
    if settings.is_empty() {
        return Ok(None);
    }
    let problems = settings.check(catalog);
    if !problems.is_empty() {
        return Err(problems);
    }
    let graph = Graph::from_catalog(catalog, settings.dangling, &settings.overrides);
    let roots: BTreeSet<QualifiedName> = settings.tables.keys().cloned().collect();
    let subsetted = graph.subsetted(&roots);
    let roles = roles(catalog, settings, &subsetted);
    let empty: Vec<QualifiedName> = roles
        .iter()
        .filter(|(_, r)| matches!(r, Role::Empty))
        .map(|(n, _)| n.clone())
        .collect();
    let layouts = layouts(catalog, &graph, &roles, &subsetted);

    // The memory bound, checked against estimates before reading anything.
    let estimate: u64 = layouts
        .iter()
        .map(|(name, l)| logical_rows(catalog, name) * l.bytes_per_row())
        .sum();
    if estimate > settings.max_key_memory {
        return Err(vec![format!(
            "sample: the key sets of this plan would need about {} of memory, over sample.max_key_memory ({}); raise it, or sample fewer or smaller tables",
            human_bytes(estimate),
            human_bytes(settings.max_key_memory)
        )]);
    }
    let gating = graph.gating(&subsetted);
    Ok(Some(Subset {
        graph,
        subsetted,
        roles,
        empty,
        layouts,
        gating,
    }))
}

/// The part of every logical table: its own spec makes it a root (or empty), a reference to
/// a subsetted table makes it follow, anything else is whole.
fn roles(
    catalog: &Catalog,
    settings: &SampleSettings,
    subsetted: &BTreeMap<QualifiedName, Reason>,
) -> BTreeMap<QualifiedName, Role> {
    let mut roles = BTreeMap::new();
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
    roles
}

/// The tables that need a key table — roots, and followers that other subsetted tables
/// reference — and the columns it holds.
fn layouts(
    catalog: &Catalog,
    graph: &Graph,
    roles: &BTreeMap<QualifiedName, Role>,
    subsetted: &BTreeMap<QualifiedName, Reason>,
) -> BTreeMap<QualifiedName, KeyLayout> {
    let mut layouts = BTreeMap::new();
    for (name, role) in roles {
        let needs = match role {
            Role::Root(..) => true,
            Role::Follows(..) => graph.referenced_by_subsetted(name, subsetted),
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
            .outgoing(name, subsetted)
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
    layouts
}

/// True when some root has a `since_days` window, which needs the snapshot's clock.
pub fn needs_clock(settings: &SampleSettings) -> bool {
    settings.tables.values().any(|s| s.since_days.is_some())
}

/// A root's window as SQL, from the snapshot's clock (`now`).
pub fn window_sql(spec: &SampleSpecConfig, now: Option<&str>) -> Option<String> {
    match (&spec.column, spec.since_days, now) {
        (Some(col), Some(days), Some(now)) => Some(format!(
            "{} >= ({}::timestamptz - interval '{days} days')",
            quote_ident(col),
            quote_literal(now)
        )),
        _ => None,
    }
}

impl Subset {
    /// What the key pass reads, per table that needs a key table. Rows outside a root's
    /// window are not read at all, unless another table can pull them.
    pub fn key_reads(&self, settings: &SampleSettings, now: Option<&str>) -> Vec<KeyRead> {
        self.layouts
            .iter()
            .map(|(name, layout)| {
                let referenced = self.graph.referenced_by_subsetted(name, &self.subsetted);
                let window = settings
                    .tables
                    .get(name)
                    .and_then(|spec| window_sql(spec, now));
                let (where_sql, window_expr) = match (window, referenced) {
                    (Some(w), false) => (Some(w), None),
                    (Some(w), true) => (None, Some(w)),
                    (None, _) => (None, None),
                };
                KeyRead {
                    table: name.clone(),
                    layout: layout.clone(),
                    where_sql,
                    window_expr,
                }
            })
            .collect()
    }

    /// The solved key tables, frozen for the data pass (what only the solver needs is
    /// dropped), and what they held, for the report.
    pub fn freeze(
        &self,
        hasher: KeyHasher,
        mut tables: BTreeMap<QualifiedName, KeyTable>,
    ) -> FrozenKeys {
        let rows = tables.values().map(|t| t.rows() as u64).sum();
        let memory = self
            .layouts
            .iter()
            .map(|(name, l)| {
                tables.get(name).map(|t| t.rows() as u64).unwrap_or(0) * l.bytes_per_row()
            })
            .sum();
        for t in tables.values_mut() {
            t.freeze();
        }
        FrozenKeys {
            sets: Arc::new(KeySets {
                hasher,
                tables,
                empty: self.empty.clone(),
            }),
            rows,
            memory,
        }
    }

    /// Solves the subset, then fits `max_storage` by scaling every root down by one factor.
    /// Refuses when even the smallest roots leave the plan over the cap.
    pub fn fit(
        &self,
        catalog: &Catalog,
        max_storage: Option<u64>,
        tables: &mut BTreeMap<QualifiedName, KeyTable>,
    ) -> Result<Fitted, String> {
        let parts: BTreeMap<QualifiedName, Part> = tables
            .keys()
            .map(|n| {
                let part = match self.roles.get(n) {
                    Some(Role::Root(rule, _)) => Part::Root(rule.clone()),
                    _ => Part::Follows,
                };
                (n.clone(), part)
            })
            .collect();
        let solve = |tables: &mut BTreeMap<QualifiedName, KeyTable>, factor: f64| {
            let solved = keys::solve(
                tables,
                &parts,
                &self.graph.edges,
                &self.gating,
                &self.empty,
                factor,
            );
            let planned = self.planned_sizes(catalog, tables, &solved);
            (solved, planned)
        };

        let mut factor = 1.0;
        let (mut solved, mut planned) = solve(tables, factor);
        if let Some(cap) = max_storage
            && total(&planned) > cap
        {
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..14 {
                let mid = (lo + hi) / 2.0;
                let (_, p) = solve(tables, mid);
                if total(&p) > cap {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            factor = lo;
            (solved, planned) = solve(tables, factor);
            if total(&planned) > cap {
                let mut whole: Vec<(&QualifiedName, u64)> = planned
                    .iter()
                    .filter(|(n, _)| matches!(self.roles.get(*n), Some(Role::Whole)))
                    .map(|(n, (_, b))| (n, *b))
                    .collect();
                whole.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
                let names: Vec<String> = whole
                    .iter()
                    .take(3)
                    .map(|(n, b)| format!("{n} ({})", human_bytes(*b)))
                    .collect();
                return Err(format!(
                    "sample.max_storage ({}) cannot be met: the tables copied whole alone need {}; sample them too (largest: {})",
                    human_bytes(cap),
                    human_bytes(total(&planned)),
                    names.join(", ")
                ));
            }
        }
        Ok(Fitted {
            factor,
            solved,
            planned,
        })
    }

    /// Planned (rows, bytes) per logical table. Key tables are exact; a following table
    /// without one is estimated from the share of its parents' rows that are kept.
    fn planned_sizes(
        &self,
        catalog: &Catalog,
        tables: &BTreeMap<QualifiedName, KeyTable>,
        solved: &BTreeMap<QualifiedName, Solved>,
    ) -> BTreeMap<QualifiedName, (u64, u64)> {
        let mut out = BTreeMap::new();
        let fraction = |name: &QualifiedName| -> f64 {
            match (solved.get(name), tables.get(name)) {
                (Some(s), Some(t)) if t.rows() > 0 => s.kept as f64 / t.rows() as f64,
                _ => 1.0,
            }
        };
        for (name, role) in &self.roles {
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
                        for (_, e) in self.graph.outgoing(name, &self.subsetted) {
                            if e.dangling == Dangling::Drop {
                                f *= if self
                                    .roles
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

    /// The plan of every data table (leaf): decision, reason, estimate, row filter and the
    /// condition pushed down to the source; and the sample summary for the report.
    pub fn assemble(
        &self,
        catalog: &Catalog,
        settings: &SampleSettings,
        fitted: &Fitted,
        keys: &FrozenKeys,
        now: Option<&str>,
    ) -> Plan {
        let factor = fitted.factor;
        let mut plan = Plan::default();
        let mut summary = SampleSummary {
            max_storage: settings.max_storage,
            scale: factor,
            key_tables: keys.sets.tables.len(),
            key_rows: keys.rows,
            key_memory_bytes: keys.memory,
            ..SampleSummary::default()
        };
        for (logical, role) in &self.roles {
            let (rows, bytes) = fitted.planned.get(logical).copied().unwrap_or((0, 0));
            let solved_here = fitted.solved.get(logical);
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
                    Role::Root(..) | Role::Follows(..) => {
                        Some(Arc::new(self.leaf_filter(leaf, logical, keys.sets.clone())))
                    }
                    _ => None,
                };
                let source_where = match role {
                    Role::Root(..)
                        if !self.graph.referenced_by_subsetted(logical, &self.subsetted) =>
                    {
                        settings
                            .tables
                            .get(logical)
                            .and_then(|spec| window_sql(spec, now))
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
        summary.planned_bytes = total(&fitted.planned);
        plan.summary = Some(summary);
        plan
    }

    /// The filter of one leaf of a subsetted logical table.
    fn leaf_filter(
        &self,
        leaf: &Table,
        logical: &QualifiedName,
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
        for (i, e) in self.graph.outgoing(logical, &self.subsetted) {
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
                Dangling::Drop if membership.is_none() && self.gating.contains(&i) => gates.push(r),
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

#[cfg(test)]
mod tests {
    //! The planner's decisions on in-memory catalogs and key tables, no database.

    use super::*;
    use crate::catalog::{Column, ColumnType, ForeignKey, TableKind, TypeKind};

    fn q(name: &str) -> QualifiedName {
        QualifiedName::new("public", name)
    }

    fn column(name: &str) -> Column {
        let ty = if name == "created_at" {
            ColumnType::simple("timestamp with time zone", TypeKind::TimestampTz)
        } else {
            ColumnType::simple("integer", TypeKind::Int)
        };
        Column {
            name: name.to_string(),
            ty,
            not_null: false,
            generated: false,
        }
    }

    /// An ordinary table with primary key `id` and `columns` after it.
    fn table(name: &str, columns: &[&str], rows: f64, bytes: u64) -> Table {
        Table {
            name: q(name),
            oid: 0,
            kind: TableKind::Ordinary,
            columns: std::iter::once("id")
                .chain(columns.iter().copied())
                .map(column)
                .collect(),
            primary_key: vec!["id".into()],
            unique_keys: vec![vec!["id".into()]],
            parent: None,
            estimated_rows: rows,
            bytes,
            pages: 1,
        }
    }

    fn fk(table: &str, column: &str, referenced: &str) -> ForeignKey {
        ForeignKey {
            name: format!("{table}_{column}_fkey"),
            table: q(table),
            columns: vec![column.into()],
            referenced: q(referenced),
            referenced_columns: vec!["id".into()],
            nullable: true,
        }
    }

    fn catalog(tables: Vec<Table>, foreign_keys: Vec<ForeignKey>) -> Catalog {
        Catalog {
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            foreign_keys,
            sequences: vec![],
            materialized_views: vec![],
            extensions: vec![],
            server_version: 150000,
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
        }
    }

    /// users ← orders ← order_items → products; users ← events (partitioned in two);
    /// audit_log on its own. 100 bytes a row everywhere.
    fn shop() -> Catalog {
        let mut events = table("events", &["user_id", "created_at"], 0.0, 0);
        events.kind = TableKind::Partitioned;
        let mut events_2024 = table("events_2024", &["user_id", "created_at"], 300.0, 30_000);
        events_2024.parent = Some(q("events"));
        let mut events_2025 = table("events_2025", &["user_id", "created_at"], 100.0, 10_000);
        events_2025.parent = Some(q("events"));
        catalog(
            vec![
                table("users", &[], 1000.0, 100_000),
                table("orders", &["user_id"], 2000.0, 200_000),
                table("order_items", &["order_id", "product_id"], 4000.0, 400_000),
                table("products", &[], 100.0, 10_000),
                table("audit_log", &[], 500.0, 50_000),
                events,
                events_2024,
                events_2025,
            ],
            vec![
                fk("orders", "user_id", "users"),
                fk("order_items", "order_id", "orders"),
                fk("order_items", "product_id", "products"),
                fk("events", "user_id", "users"),
            ],
        )
    }

    fn spec(percent: Option<f64>) -> SampleSpecConfig {
        SampleSpecConfig {
            percent,
            ..SampleSpecConfig::default()
        }
    }

    fn sample(specs: Vec<(&str, SampleSpecConfig)>) -> SampleSettings {
        SampleSettings {
            tables: specs.into_iter().map(|(n, s)| (q(n), s)).collect(),
            max_key_memory: super::super::DEFAULT_MAX_KEY_MEMORY,
            ..SampleSettings::default()
        }
    }

    /// The key table of `users` as the key pass would build it: ids 1..=n hashed by
    /// `hasher`, selection hashes spread evenly so `percent p` chooses ids 1..=n*p/100.
    fn users_keys(
        subset: &Subset,
        hasher: &KeyHasher,
        n: u64,
    ) -> BTreeMap<QualifiedName, KeyTable> {
        let mut t = KeyTable::new(q("users"), &subset.layouts[&q("users")]);
        for i in 1..=n {
            let id = hasher.hash(&[i.to_string().as_bytes()]);
            let select = ((i as f64 - 0.5) / n as f64 * u64::MAX as f64) as u64;
            t.push(id, select, true, &[], &[]);
        }
        BTreeMap::from([(q("users"), t)])
    }

    #[test]
    fn without_a_sample_section_every_table_is_whole() {
        assert!(
            decide(&shop(), &SampleSettings::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn roots_followers_whole_and_empty_tables() {
        let audit = SampleSpecConfig {
            rows: Some(0),
            ..SampleSpecConfig::default()
        };
        let settings = sample(vec![("users", spec(Some(10.0))), ("audit_log", audit)]);
        let subset = decide(&shop(), &settings).unwrap().expect("a subset");
        let role = |n: &str| subset.roles[&q(n)].clone();
        assert!(
            matches!(role("users"), Role::Root(rule, words) if rule.percent == Some(10.0) && words == "percent 10")
        );
        assert_eq!(
            role("orders"),
            Role::Follows(q("users"), "orders_user_id_fkey".into())
        );
        assert_eq!(
            role("order_items"),
            Role::Follows(q("orders"), "order_items_order_id_fkey".into())
        );
        assert_eq!(
            role("events"),
            Role::Follows(q("users"), "events_user_id_fkey".into())
        );
        assert_eq!(
            role("products"),
            Role::Whole,
            "a referenced catalogue stays whole"
        );
        assert_eq!(role("audit_log"), Role::Empty);
        assert_eq!(subset.empty, vec![q("audit_log")]);
        assert!(
            !subset.roles.contains_key(&q("events_2024")),
            "partitions are planned under their partitioned table"
        );
        // Key tables: the root, and the follower other subsetted tables reference.
        let keyed: Vec<&QualifiedName> = subset.layouts.keys().collect();
        assert_eq!(keyed, vec![&q("orders"), &q("users")]);
        let orders = &subset.layouts[&q("orders")];
        assert_eq!(orders.identity, vec!["id"]);
        assert_eq!(orders.outgoing.len(), 1, "its reference to users");
        assert_eq!(orders.outgoing[0].1, vec!["user_id"]);
    }

    #[test]
    fn sample_problems_come_all_at_once() {
        let mut settings = sample(vec![
            ("userz", spec(Some(10.0))),
            ("events_2024", spec(Some(5.0))),
        ]);
        settings
            .overrides
            .insert("orders_user_fkey".into(), Dangling::SetNull);
        let problems = decide(&shop(), &settings).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert_eq!(
            problems[0],
            "sample.tables: public.events_2024 is a partition of public.events; sample the partitioned table"
        );
        assert_eq!(
            problems[1],
            "sample.tables: table public.userz does not exist in the source, did you mean `public.users`?"
        );
        assert_eq!(
            problems[2],
            "sample.foreign_keys: no foreign key named orders_user_fkey, did you mean `orders_user_id_fkey`?"
        );
    }

    #[test]
    fn the_key_memory_bound_is_checked_on_estimates_before_reading() {
        let mut settings = sample(vec![("users", spec(Some(10.0)))]);
        // users (1000 rows × 40 bytes) + orders (2000 × 48): about 136 kB.
        settings.max_key_memory = 100_000;
        let problems = decide(&shop(), &settings).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "sample: the key sets of this plan would need about 132.8 KiB of memory, over sample.max_key_memory (97.7 KiB); raise it, or sample fewer or smaller tables"
            ]
        );
        settings.max_key_memory = 136_000;
        assert!(decide(&shop(), &settings).is_ok());
    }

    #[test]
    fn a_window_is_pushed_down_unless_other_tables_can_pull_rows_outside_it() {
        let window = SampleSpecConfig {
            since_days: Some(30),
            column: Some("created_at".into()),
            ..SampleSpecConfig::default()
        };
        let settings = sample(vec![("events", window.clone())]);
        assert!(needs_clock(&settings));
        let subset = decide(&shop(), &settings).unwrap().expect("a subset");
        let reads = subset.key_reads(&settings, Some("2025-06-01 00:00:00+00"));
        assert_eq!(reads.len(), 1);
        assert_eq!(
            reads[0].where_sql.as_deref(),
            Some("\"created_at\" >= ('2025-06-01 00:00:00+00'::timestamptz - interval '30 days')")
        );
        assert_eq!(reads[0].window_expr, None);

        // A window on users, which orders and events reference: read as a flag instead.
        let mut users = window;
        users.column = Some("created_at".into());
        let mut catalog = shop();
        if let Some(t) = catalog.tables.get_mut(&q("users")) {
            t.columns.push(column("created_at"));
        }
        let settings = sample(vec![("users", users)]);
        let subset = decide(&catalog, &settings).unwrap().expect("a subset");
        let reads = subset.key_reads(&settings, Some("2025-06-01 00:00:00+00"));
        let users = reads
            .iter()
            .find(|r| r.table == q("users"))
            .expect("users read");
        assert_eq!(users.where_sql, None);
        assert!(
            users
                .window_expr
                .as_deref()
                .is_some_and(|w| w.contains("interval '30 days'"))
        );
    }

    #[test]
    fn roots_are_scaled_by_one_factor_to_fit_max_storage() {
        let tiny = catalog(
            vec![
                table("users", &[], 1000.0, 100_000),
                table("products", &[], 100.0, 10_000),
            ],
            vec![],
        );
        let mut settings = sample(vec![("users", spec(Some(100.0)))]);
        settings.max_storage = Some(60_000);
        let subset = decide(&tiny, &settings).unwrap().expect("a subset");
        let hasher = KeyHasher::default();
        let mut tables = users_keys(&subset, &hasher, 1000);
        let fitted = subset
            .fit(&tiny, settings.max_storage, &mut tables)
            .unwrap();
        // products (10 kB, whole) + users at 100 bytes a row: half of users fits.
        assert!(
            (0.49..0.51).contains(&fitted.factor),
            "factor {}",
            fitted.factor
        );
        assert!(total(&fitted.planned) <= 60_000);
        assert_eq!(fitted.planned[&q("products")], (100, 10_000));
        let users = fitted.planned[&q("users")];
        assert_eq!(users.0, fitted.solved[&q("users")].kept);
        assert!((490..=500).contains(&users.0), "{users:?}");

        // Under the whole tables alone, no factor helps.
        let err = subset.fit(&tiny, Some(5_000), &mut tables).unwrap_err();
        assert!(
            err.starts_with(
                "sample.max_storage (4.9 KiB) cannot be met: the tables copied whole alone need"
            ),
            "{err}"
        );
        assert!(
            err.ends_with("(largest: public.products (9.8 KiB))"),
            "{err}"
        );
    }

    #[test]
    fn every_leaf_gets_its_share_its_reason_and_a_filter_that_follows_the_keys() {
        let catalog = shop();
        let settings = sample(vec![("users", spec(Some(10.0)))]);
        let subset = decide(&catalog, &settings).unwrap().expect("a subset");
        let hasher = KeyHasher::default();
        let mut tables = users_keys(&subset, &hasher, 1000);
        // orders: 2000 rows, two per user.
        let mut orders = KeyTable::new(q("orders"), &subset.layouts[&q("orders")]);
        for i in 1..=2000u64 {
            let user = hasher.hash(&[i.div_ceil(2).to_string().as_bytes()]);
            orders.push(
                hasher.hash(&[i.to_string().as_bytes()]),
                0,
                true,
                &[],
                &[user],
            );
        }
        tables.insert(q("orders"), orders);
        let fitted = subset.fit(&catalog, None, &mut tables).unwrap();
        assert_eq!(fitted.factor, 1.0);
        let keys = subset.freeze(hasher.clone(), tables);
        assert_eq!((keys.rows, keys.memory), (3000, 1000 * 40 + 2000 * 48));
        let plan = subset.assemble(&catalog, &settings, &fitted, &keys, None);

        let users = &plan.tables[&q("users")];
        assert_eq!(users.decision, Decision::Subset);
        assert_eq!(users.reason, "root: percent 10; 100 chosen");
        assert_eq!((users.estimated_rows, users.estimated_bytes), (100, 10_000));
        assert_eq!(plan.tables[&q("orders")].estimated_rows, 200);
        assert_eq!(
            plan.tables[&q("order_items")].reason,
            "follows public.orders via order_items_order_id_fkey"
        );
        let products = &plan.tables[&q("products")];
        assert_eq!(
            (products.decision.clone(), products.reason.as_str()),
            (Decision::Whole, "whole")
        );
        assert!(products.filter.is_none());

        // The partitioned events follow users: 10% of 400 rows, shared 3:1 by the leaves.
        assert!(
            !plan.tables.contains_key(&q("events")),
            "only leaves hold rows"
        );
        assert_eq!(plan.tables[&q("events_2024")].estimated_rows, 30);
        assert_eq!(plan.tables[&q("events_2025")].estimated_rows, 10);
        let filter = plan.tables[&q("events_2025")]
            .filter
            .clone()
            .expect("a follower is filtered");
        let mut nulled = Vec::new();
        assert!(
            filter.keep(&[b"1", b"7", b"2025-01-01"], &mut nulled),
            "user 7 is kept"
        );
        assert!(
            !filter.keep(&[b"2", b"999", b"2025-01-01"], &mut nulled),
            "user 999 is not"
        );
        assert!(
            filter.keep(&[b"3", b"\\N", b"2025-01-01"], &mut nulled),
            "no user: kept"
        );
        assert!(nulled.is_empty());

        let summary = plan.summary.expect("a summary");
        assert_eq!(summary.key_tables, 2);
        assert_eq!(summary.planned_bytes, total(&fitted.planned));
        assert_eq!(summary.tables["public.users"].base_rows, Some(100));
    }
}
