//! The planner's pure decisions, made from the catalog, the `sample:` section and (once the
//! key pass has read them) the key tables — never from a database:
//!
//! - [`decide`]: the part each table takes (whole, empty, a root with its rule, a follower
//!   of a subsetted parent), which tables need a key table and with which columns, which
//!   followers are tallied (with `max_storage`), how their orphans are chosen, and whether
//!   the key sets fit `sample.max_key_memory` by the catalog's estimates;
//! - [`Subset::key_reads`]: what the key pass reads of each table (the `since_days` window
//!   pushed down, or read as a flag when other tables can pull rows outside it or the rows
//!   are measured);
//! - [`Subset::fit`]: the fixed point ([`super::keys::solve`]), and every root scaled down by
//!   one factor (binary search) until the plan fits `max_storage`, priced by
//!   [`super::estimate`];
//! - [`Subset::assemble`]: the per-table plans with their row filters, and the summary.
//!
//! Tested on in-memory catalogs and key tables, as the subset planner of Greenmask is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::estimate::{Bytes, Estimator, Kept, Shape, SourceSizes};
use super::filter::{KeySets, OrphanSample, Reference, RowFilter, SubsetFilter};
use super::graph::{Graph, Reason};
use super::keys::{self, KeyHasher, KeyLayout, KeyTable, Part, SampleRule, Selector, Solved};
use super::sample::{SampleSettings, StorageCap};
use super::storage::StoragePlan;
use super::tally::{self, Tally};
use super::{Decision, Plan, SampleSummary, TablePlan, TableSample, estimated_rows};
use crate::catalog::{Catalog, QualifiedName, Table};
use crate::config::{Dangling, Orphans, SampleSpecConfig};
use crate::db::{quote_ident, quote_literal};
use crate::units::{format_percent, human_bytes};

/// The share of `max_storage` a plan aims at, leaving room for what the model cannot see
/// (what the rules do to values' lengths, a page more here and there): aiming at the cap
/// itself would send half of the runs over it, into a reload.
pub const HEADROOM: f64 = 0.03;

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
    /// Following tables without a key table, and what a tally of them reads (identity and
    /// gating references; no `referenced`); read when `measure`.
    pub tallies: BTreeMap<QualifiedName, KeyLayout>,
    /// The key pass measures rows (their weights, the tallies): `max_storage` is set.
    pub measure: bool,
    /// Per following table, the tables whose rate its orphans take (the lowest): the
    /// non-empty parents of its deciding references.
    pub orphan_parents: BTreeMap<QualifiedName, Vec<QualifiedName>>,
    /// Following tables whose orphans are all kept (`orphans: keep` on one of their deciding
    /// references).
    pub orphans_kept: BTreeSet<QualifiedName>,
}

/// How the key pass reads a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Into a key table.
    Keys,
    /// Into a [`Tally`]: identity (orphans only) and references.
    Tally,
}

/// What the key pass reads of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    pub table: QualifiedName,
    pub kind: ReadKind,
    pub layout: KeyLayout,
    /// A condition that filters the rows read (a root's window, when nothing can pull rows
    /// outside it).
    pub where_sql: Option<String>,
    /// A condition read as a flag per row (a root's window, when other tables may pull rows
    /// outside it).
    pub window_expr: Option<String>,
    /// How each row's weight is measured; `None`: rows are not measured.
    pub width: Option<Width>,
}

/// How the key pass measures a row (see [`super::estimate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Width {
    /// The stored size of the whole tuple (`pg_column_size` of the row): exact, for a table
    /// whose values are all inline (the source has no TOASTed value in it).
    Tuple,
    /// The sum of these columns' stored sizes (a TOASTed value's without fetching it).
    Columns(Vec<String>),
}

/// What the key pass read: key tables and tallies.
#[derive(Debug, Default)]
pub struct KeyPass {
    pub tables: BTreeMap<QualifiedName, KeyTable>,
    pub tallies: BTreeMap<QualifiedName, Tally>,
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

/// A logical table's planned rows and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub rows: u64,
    pub bytes: Bytes,
    /// Of the rows, orphans (counted: tallied tables only).
    pub orphans: Option<u64>,
}

/// The solved subset, scaled to fit `max_storage`.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The factor every root was scaled by (1 when the plan fits as asked).
    pub factor: f64,
    pub solved: BTreeMap<QualifiedName, Solved>,
    /// Planned rows and bytes per logical table.
    pub planned: BTreeMap<QualifiedName, Planned>,
    /// The rate orphans are sampled at, per following table that samples them.
    pub orphan_rates: BTreeMap<QualifiedName, f64>,
    /// What `max_storage` counts of the plan (0 without it).
    pub counted: u64,
}

/// What prices a plan: the model ([`Estimator`]: the sources' sizes and the load's
/// calibration; the shapes come from the key pass), and the highest factor allowed (1, or
/// below the factor of a load that missed).
#[derive(Debug, Clone)]
pub struct Sizing {
    pub sizes: Option<SourceSizes>,
    pub calibration: BTreeMap<QualifiedName, f64>,
    pub ceiling: f64,
}

impl Default for Sizing {
    fn default() -> Sizing {
        Sizing {
            sizes: None,
            calibration: BTreeMap::new(),
            ceiling: 1.0,
        }
    }
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
    let graph = Graph::from_catalog(
        catalog,
        settings.dangling,
        &settings.overrides,
        settings.orphans,
        &settings.orphan_overrides,
    );
    let roots: BTreeSet<QualifiedName> = settings.tables.keys().cloned().collect();
    let subsetted = graph.subsetted(&roots);
    let roles = roles(catalog, settings, &subsetted);
    let empty: Vec<QualifiedName> = roles
        .iter()
        .filter(|(_, r)| matches!(r, Role::Empty))
        .map(|(n, _)| n.clone())
        .collect();
    let layouts = layouts(catalog, &graph, &roles, &subsetted);
    let gating = graph.gating(&subsetted);
    let measure = settings.storage.is_some();
    let tallies = tallies(
        catalog, &graph, &roles, &subsetted, &layouts, &gating, &empty,
    );

    // The memory bound, checked against estimates before reading anything.
    let weight_bytes = if measure { 4 } else { 0 };
    let mut estimate: u64 = layouts
        .iter()
        .map(|(name, l)| logical_rows(catalog, name) * (l.bytes_per_row() + weight_bytes))
        .sum();
    if measure {
        estimate += tallies
            .iter()
            .map(|(name, l)| logical_rows(catalog, name) * tally::bytes_per_row(l.outgoing.len()))
            .sum::<u64>();
    }
    if estimate > settings.max_key_memory {
        return Err(vec![format!(
            "sample: the key sets of this plan would need about {} of memory, over sample.max_key_memory ({}); raise it, or sample fewer or smaller tables",
            human_bytes(estimate),
            human_bytes(settings.max_key_memory)
        )]);
    }
    let (orphan_parents, orphans_kept) = orphaning(&graph, &roles, &subsetted, &gating, &empty);
    Ok(Some(Subset {
        graph,
        subsetted,
        roles,
        empty,
        layouts,
        gating,
        tallies,
        measure,
        orphan_parents,
        orphans_kept,
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

/// The edges that decide whether a row of `table` is kept: its `drop` references that gate,
/// or point at a `rows: 0` table. A row whose deciding references are all NULL is an orphan.
fn deciding_edges<'a>(
    graph: &'a Graph,
    table: &'a QualifiedName,
    subsetted: &'a BTreeMap<QualifiedName, Reason>,
    gating: &'a BTreeSet<usize>,
    empty: &'a [QualifiedName],
) -> impl Iterator<Item = (usize, &'a super::graph::Edge)> {
    graph.outgoing(table, subsetted).filter(move |(i, e)| {
        e.dangling == Dangling::Drop && (gating.contains(i) || empty.contains(&e.parent))
    })
}

/// Following tables without a key table, with what a tally reads: the identity (for the
/// selection hash of orphans) and the deciding references.
fn tallies(
    catalog: &Catalog,
    graph: &Graph,
    roles: &BTreeMap<QualifiedName, Role>,
    subsetted: &BTreeMap<QualifiedName, Reason>,
    layouts: &BTreeMap<QualifiedName, KeyLayout>,
    gating: &BTreeSet<usize>,
    empty: &[QualifiedName],
) -> BTreeMap<QualifiedName, KeyLayout> {
    let mut out = BTreeMap::new();
    for (name, role) in roles {
        if !matches!(role, Role::Follows(..)) || layouts.contains_key(name) {
            continue;
        }
        let Some(table) = catalog.table(name) else {
            continue;
        };
        let outgoing: Vec<(usize, Vec<String>)> =
            deciding_edges(graph, name, subsetted, gating, empty)
                .map(|(i, e)| (i, e.child_columns.clone()))
                .collect();
        if outgoing.is_empty() {
            // Only set_null references: every row is kept, nothing to count.
            continue;
        }
        out.insert(
            name.clone(),
            KeyLayout {
                identity: identity_columns(table),
                referenced: vec![],
                outgoing,
            },
        );
    }
    out
}

/// Per following table: the tables whose rate its orphans take, and whether it keeps them.
fn orphaning(
    graph: &Graph,
    roles: &BTreeMap<QualifiedName, Role>,
    subsetted: &BTreeMap<QualifiedName, Reason>,
    gating: &BTreeSet<usize>,
    empty: &[QualifiedName],
) -> (
    BTreeMap<QualifiedName, Vec<QualifiedName>>,
    BTreeSet<QualifiedName>,
) {
    let mut parents = BTreeMap::new();
    let mut kept = BTreeSet::new();
    for (name, role) in roles {
        if !matches!(role, Role::Follows(..)) {
            continue;
        }
        let mut these = Vec::new();
        for (_, e) in deciding_edges(graph, name, subsetted, gating, empty) {
            if e.orphans == Orphans::Keep {
                kept.insert(name.clone());
            }
            if !empty.contains(&e.parent) && !these.contains(&e.parent) {
                these.push(e.parent.clone());
            }
        }
        parents.insert(name.clone(), these);
    }
    (parents, kept)
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
    /// What the key pass reads, per table that needs a key table, and per tallied table when
    /// rows are measured. Rows outside a root's window are not read at all, unless another
    /// table can pull them or every row is measured.
    pub fn key_reads(
        &self,
        catalog: &Catalog,
        settings: &SampleSettings,
        sizes: Option<&SourceSizes>,
        now: Option<&str>,
    ) -> Vec<KeyRead> {
        let widths = |name: &QualifiedName| -> Option<Width> {
            if !self.measure {
                return None;
            }
            let inline = sizes.is_some_and(|sizes| super::estimate::inline(catalog, sizes, name));
            Some(if inline {
                Width::Tuple
            } else {
                Width::Columns(
                    catalog
                        .table(name)
                        .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
                        .unwrap_or_default(),
                )
            })
        };
        let mut reads: Vec<KeyRead> = self
            .layouts
            .iter()
            .map(|(name, layout)| {
                let flag =
                    self.measure || self.graph.referenced_by_subsetted(name, &self.subsetted);
                let window = settings
                    .tables
                    .get(name)
                    .and_then(|spec| window_sql(spec, now));
                let (where_sql, window_expr) = match (window, flag) {
                    (Some(w), false) => (Some(w), None),
                    (Some(w), true) => (None, Some(w)),
                    (None, _) => (None, None),
                };
                KeyRead {
                    table: name.clone(),
                    kind: ReadKind::Keys,
                    layout: layout.clone(),
                    where_sql,
                    window_expr,
                    width: widths(name),
                }
            })
            .collect();
        if self.measure {
            reads.extend(self.tallies.iter().map(|(name, layout)| KeyRead {
                table: name.clone(),
                kind: ReadKind::Tally,
                layout: layout.clone(),
                where_sql: None,
                window_expr: None,
                width: widths(name),
            }));
        }
        reads
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

    /// The model that prices this plan: `sizing`, with the shapes the key pass measured.
    fn estimator(&self, pass: &KeyPass, sizing: &Sizing) -> Estimator {
        let mut shapes = BTreeMap::new();
        for (name, t) in &pass.tables {
            if let Some(weight) = t.weight() {
                shapes.insert(
                    name.clone(),
                    Shape {
                        rows: t.rows() as u64,
                        weight,
                    },
                );
            }
        }
        for (name, t) in &pass.tallies {
            shapes.insert(
                name.clone(),
                Shape {
                    rows: t.rows() as u64,
                    weight: t.weight(),
                },
            );
        }
        Estimator {
            sizes: sizing.sizes.clone(),
            shapes,
            calibration: sizing.calibration.clone(),
        }
    }

    /// The rate orphans are sampled at, per following table (roots at the share their rule
    /// chooses at `factor`; a follower at the lowest rate of the tables it follows).
    fn orphan_rates(
        &self,
        tables: &BTreeMap<QualifiedName, KeyTable>,
        factor: f64,
    ) -> BTreeMap<QualifiedName, f64> {
        let mut rates: BTreeMap<QualifiedName, f64> = BTreeMap::new();
        for (name, role) in &self.roles {
            if let (Role::Root(rule, _), Some(t)) = (role, tables.get(name)) {
                rates.insert(name.clone(), keys::root_rate(t, rule, factor));
            }
        }
        // Followers take the lowest rate of their parents; through chains and cycles the
        // rates only go down, so this ends.
        let mut followers: BTreeMap<QualifiedName, f64> = self
            .orphan_parents
            .keys()
            .map(|n| (n.clone(), 1.0))
            .collect();
        loop {
            let mut changed = false;
            for (name, parents) in &self.orphan_parents {
                let lowest = parents
                    .iter()
                    .filter_map(|p| rates.get(p).or_else(|| followers.get(p)).copied())
                    .fold(1.0f64, f64::min);
                if let Some(r) = followers.get_mut(name)
                    && lowest < *r
                {
                    *r = lowest;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        followers
            .into_iter()
            .filter(|(n, _)| !self.orphans_kept.contains(n))
            .collect()
    }

    /// Solves the subset, then fits `max_storage` by scaling every root down by one factor
    /// (at most `sizing.ceiling`) until the plan fits [`HEADROOM`] under the cap. Refuses when
    /// even the smallest roots leave the plan over the cap.
    pub fn fit(
        &self,
        catalog: &Catalog,
        cap: Option<&StorageCap>,
        pass: &mut KeyPass,
        sizing: &Sizing,
    ) -> Result<Fitted, String> {
        let parts: BTreeMap<QualifiedName, Part> = pass
            .tables
            .keys()
            .map(|n| {
                let part = match self.roles.get(n) {
                    Some(Role::Root(rule, _)) => Part::Root(rule.clone()),
                    _ => Part::Follows,
                };
                (n.clone(), part)
            })
            .collect();
        let estimator = self.estimator(pass, sizing);
        let include_indexes = cap.is_some_and(|c| c.include_indexes);
        let solve = |pass: &mut KeyPass, factor: f64| -> Fitted {
            let orphan_rates = self.orphan_rates(&pass.tables, factor);
            let thresholds = orphan_rates
                .iter()
                .map(|(n, r)| (n.clone(), keys::rate_threshold(*r)))
                .collect();
            let solved = keys::solve(
                &mut pass.tables,
                &parts,
                &self.graph.edges,
                &self.gating,
                &self.empty,
                factor,
                &thresholds,
            );
            let planned = self.planned_sizes(catalog, pass, &solved, &orphan_rates, &estimator);
            let counted = planned
                .values()
                .map(|p| p.bytes.counted(include_indexes))
                .sum();
            Fitted {
                factor,
                solved,
                planned,
                orphan_rates,
                counted,
            }
        };

        let ceiling = sizing.ceiling.clamp(0.0, 1.0);
        let fitted = solve(pass, ceiling);
        let Some(cap) = cap else {
            return Ok(fitted);
        };
        let target = (cap.limit as f64 * (1.0 - HEADROOM)) as u64;
        if fitted.counted <= target {
            return Ok(fitted);
        }
        let (mut lo, mut hi) = (0.0f64, ceiling);
        for _ in 0..16 {
            let mid = (lo + hi) / 2.0;
            if solve(pass, mid).counted > target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let fitted = solve(pass, lo);
        if fitted.counted > cap.limit {
            let mut whole: Vec<(&QualifiedName, u64)> = fitted
                .planned
                .iter()
                .filter(|(n, _)| matches!(self.roles.get(*n), Some(Role::Whole)))
                .map(|(n, p)| (n, p.bytes.counted(include_indexes)))
                .collect();
            whole.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
            let names: Vec<String> = whole
                .iter()
                .take(3)
                .map(|(n, b)| format!("{n} ({})", human_bytes(*b)))
                .collect();
            return Err(format!(
                "sample.max_storage ({}) cannot be met: the tables copied whole alone need {}; sample them too (largest: {})",
                human_bytes(cap.limit),
                human_bytes(fitted.counted),
                names.join(", ")
            ));
        }
        Ok(fitted)
    }

    /// Planned rows and bytes per logical table. Key tables and tallies are counted; a
    /// following table without either is estimated from the share of its parents' rows that
    /// are kept (its orphans are sampled at that rate too, so NULL references do not skew it).
    fn planned_sizes(
        &self,
        catalog: &Catalog,
        pass: &KeyPass,
        solved: &BTreeMap<QualifiedName, Solved>,
        orphan_rates: &BTreeMap<QualifiedName, f64>,
        estimator: &Estimator,
    ) -> BTreeMap<QualifiedName, Planned> {
        let tables = &pass.tables;
        let mut out = BTreeMap::new();
        let fraction = |name: &QualifiedName| -> f64 {
            match (solved.get(name), tables.get(name)) {
                (Some(s), Some(t)) if t.rows() > 0 => s.kept as f64 / t.rows() as f64,
                _ => 1.0,
            }
        };
        let parent_kept = |edge: usize, key: u64| -> bool {
            let e = &self.graph.edges[edge];
            if self.empty.contains(&e.parent) {
                return false;
            }
            tables
                .get(&e.parent)
                .is_none_or(|t| t.is_kept(&e.parent_columns, key))
        };
        for (name, role) in &self.roles {
            let rows_all = logical_rows(catalog, name);
            let mut orphans = None;
            if matches!(role, Role::Whole) {
                out.insert(
                    name.clone(),
                    Planned {
                        rows: rows_all,
                        bytes: estimator.whole(catalog, name),
                        orphans: None,
                    },
                );
                continue;
            }
            let kept = match role {
                Role::Empty => Kept::default(),
                _ => match (solved.get(name), tables.get(name), pass.tallies.get(name)) {
                    (Some(s), Some(t), _) => Kept {
                        rows: s.kept,
                        weight: t.kept_weight(),
                    },
                    (_, _, Some(tally)) => {
                        let threshold = orphan_rates.get(name).map(|r| keys::rate_threshold(*r));
                        let c = tally.count(parent_kept, threshold);
                        orphans = Some(c.orphans);
                        Kept {
                            rows: c.rows,
                            weight: Some(c.weight),
                        }
                    }
                    _ => {
                        let mut f = 1.0;
                        for (_, e) in self.graph.outgoing(name, &self.subsetted) {
                            if e.dangling == Dangling::Drop {
                                f *= if self.empty.contains(&e.parent) {
                                    0.0
                                } else {
                                    fraction(&e.parent)
                                };
                            }
                        }
                        Kept {
                            rows: (rows_all as f64 * f).round() as u64,
                            weight: None,
                        }
                    }
                },
            };
            let bytes = estimator.bytes(catalog, name, kept);
            out.insert(
                name.clone(),
                Planned {
                    rows: kept.rows,
                    bytes,
                    orphans,
                },
            );
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
        selector: &Selector,
        now: Option<&str>,
    ) -> Plan {
        let factor = fitted.factor;
        let mut plan = Plan::default();
        let mut summary = SampleSummary {
            max_storage: settings.storage.map(|c| c.limit),
            scale: factor,
            key_tables: keys.sets.tables.len(),
            key_rows: keys.rows,
            key_memory_bytes: keys.memory,
            estimate: if self.measure { "measured" } else { "catalog" }.to_string(),
            ..SampleSummary::default()
        };
        for (logical, role) in &self.roles {
            let planned = fitted.planned.get(logical).copied().unwrap_or_default();
            let solved_here = fitted.solved.get(logical);
            let orphan_rate = fitted.orphan_rates.get(logical).copied();
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
                Role::Follows(parent, fk) => {
                    let nullable = deciding_edges(
                        &self.graph,
                        logical,
                        &self.subsetted,
                        &self.gating,
                        &self.empty,
                    )
                    .any(|(_, e)| e.nullable);
                    match orphan_rate {
                        Some(rate) if nullable && rate < 1.0 => format!(
                            "follows {parent} via {fk}; rows referencing none: {}%",
                            format_percent(rate * 100.0)
                        ),
                        _ => format!("follows {parent} via {fk}"),
                    }
                }
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
                    planned_rows: planned.rows,
                    planned_bytes: planned.bytes.table,
                    planned_index_bytes: planned.bytes.indexes,
                    orphan_rate,
                    planned_orphans: planned.orphans,
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
                    Role::Root(..) | Role::Follows(..) => Some(Arc::new(self.leaf_filter(
                        leaf,
                        logical,
                        keys.sets.clone(),
                        orphan_rate.map(|r| (selector, keys::rate_threshold(r))),
                    ))),
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
                let portion = |n: u64| (n as f64 * share).round() as u64;
                plan.tables.insert(
                    leaf.name.clone(),
                    TablePlan {
                        table: leaf.name.clone(),
                        decision,
                        reason: scaled.clone(),
                        estimated_rows: portion(planned.rows),
                        estimated_bytes: portion(planned.bytes.table),
                        estimated_index_bytes: portion(planned.bytes.indexes),
                        filter,
                        source_where,
                    },
                );
            }
        }
        summary.planned_bytes = fitted.planned.values().map(|p| p.bytes.table).sum();
        plan.storage = settings.storage.map(|cap| StoragePlan {
            cap,
            factor,
            planned_bytes: fitted
                .planned
                .values()
                .map(|p| p.bytes.counted(cap.include_indexes))
                .sum(),
        });
        plan.summary = Some(summary);
        plan
    }

    /// The filter of one leaf of a subsetted logical table. `orphans`: the selector and the
    /// threshold its orphans are sampled at, when they are.
    fn leaf_filter(
        &self,
        leaf: &Table,
        logical: &QualifiedName,
        keys: Arc<KeySets>,
        orphans: Option<(&Selector, u64)>,
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
        // A table with a key table had its orphans chosen by the solve; one without a tally
        // layout has no gates, so no orphans.
        let orphans = match (orphans, &membership, self.tallies.get(logical)) {
            (Some((selector, threshold)), None, Some(layout)) => Some(OrphanSample {
                selector: selector.clone(),
                table: logical.clone(),
                identity: positions(&layout.identity),
                threshold,
            }),
            _ => None,
        };
        SubsetFilter {
            keys,
            membership,
            gates,
            set_null,
            orphans,
        }
    }
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
            binary_copy: None,
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

    fn selector() -> Selector {
        Selector::new(
            crate::transform::key::Key::new(b"decide-test-secret-0123").domain(b"restage-sample"),
        )
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
        let reads = subset.key_reads(&shop(), &settings, None, Some("2025-06-01 00:00:00+00"));
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
        let reads = subset.key_reads(&catalog, &settings, None, Some("2025-06-01 00:00:00+00"));
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

    fn cap(limit: u64) -> StorageCap {
        StorageCap {
            limit,
            include_indexes: false,
            tolerance: 0.0,
            policy: crate::config::MaxStoragePolicy::Rescale,
        }
    }

    fn keyed(tables: BTreeMap<QualifiedName, KeyTable>) -> KeyPass {
        KeyPass {
            tables,
            tallies: BTreeMap::new(),
        }
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
        settings.storage = Some(cap(60_000));
        let subset = decide(&tiny, &settings).unwrap().expect("a subset");
        let hasher = KeyHasher::default();
        let mut pass = keyed(users_keys(&subset, &hasher, 1000));
        let fitted = subset
            .fit(
                &tiny,
                settings.storage.as_ref(),
                &mut pass,
                &Sizing::default(),
            )
            .unwrap();
        // products (10 kB, whole) + users at 100 bytes a row: 48.2 kB of users fits 97% of
        // the cap.
        assert!(
            (0.47..0.49).contains(&fitted.factor),
            "factor {}",
            fitted.factor
        );
        assert!(fitted.counted <= 60_000 * 97 / 100, "{}", fitted.counted);
        assert!(fitted.counted >= 60_000 * 95 / 100, "{}", fitted.counted);
        assert_eq!(fitted.planned[&q("products")].rows, 100);
        assert_eq!(fitted.planned[&q("products")].bytes.table, 10_000);
        let users = fitted.planned[&q("users")];
        assert_eq!(users.rows, fitted.solved[&q("users")].kept);
        assert!((470..=485).contains(&users.rows), "{users:?}");

        // Under the whole tables alone, no factor helps.
        let err = subset
            .fit(&tiny, Some(&cap(5_000)), &mut pass, &Sizing::default())
            .unwrap_err();
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

        // A rescale's ceiling and calibration: users measured at twice the model.
        let sizing = Sizing {
            sizes: None,
            calibration: BTreeMap::from([(q("users"), 2.0)]),
            ceiling: 0.4,
        };
        let again = subset
            .fit(&tiny, settings.storage.as_ref(), &mut pass, &sizing)
            .unwrap();
        assert!(
            again.factor < 0.25,
            "half of the last fit: {}",
            again.factor
        );
        assert!(again.counted <= 60_000 * 97 / 100);
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
        let mut pass = keyed(tables);
        let fitted = subset
            .fit(&catalog, None, &mut pass, &Sizing::default())
            .unwrap();
        assert_eq!(fitted.factor, 1.0);
        let keys = subset.freeze(hasher.clone(), pass.tables);
        assert_eq!((keys.rows, keys.memory), (3000, 1000 * 40 + 2000 * 48));
        let plan = subset.assemble(&catalog, &settings, &fitted, &keys, &selector(), None);

        let users = &plan.tables[&q("users")];
        assert_eq!(users.decision, Decision::Subset);
        assert_eq!(users.reason, "root: percent 10; 100 chosen");
        assert_eq!((users.estimated_rows, users.estimated_bytes), (100, 10_000));
        assert_eq!(plan.tables[&q("orders")].estimated_rows, 200);
        // A nullable reference: rows without an order are sampled at the root's 10%.
        assert_eq!(
            plan.tables[&q("order_items")].reason,
            "follows public.orders via order_items_order_id_fkey; rows referencing none: 10%"
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
        // No user: sampled at users' rate by the keyed hash of the event's id.
        let rate = fitted.orphan_rates[&q("events")];
        assert!((0.099..=0.101).contains(&rate), "{rate}");
        let orphans: Vec<u64> = (1..=2000u64)
            .filter(|id| {
                filter.keep(
                    &[id.to_string().as_bytes(), b"\\N", b"2025-01-01"],
                    &mut nulled,
                )
            })
            .collect();
        assert!((150..=250).contains(&orphans.len()), "{}", orphans.len());
        for id in &orphans {
            let text = id.to_string();
            assert!(
                selector().select(&q("events"), &[text.as_bytes()]) <= keys::rate_threshold(rate),
                "the keyed hash chose {id}"
            );
        }
        assert!(nulled.is_empty());

        let summary = plan.summary.expect("a summary");
        assert_eq!(summary.key_tables, 2);
        assert_eq!(
            summary.planned_bytes,
            fitted.planned.values().map(|p| p.bytes.table).sum::<u64>()
        );
        assert_eq!(summary.tables["public.users"].base_rows, Some(100));
    }

    /// users (1000 rows) ← events (10,000 rows, `user_id` nullable): 60% of the events have
    /// no user, 30% belong to user 1 (a skewed parent) and are wide, the rest spread over
    /// users 2 to 1000.
    fn skewed() -> Catalog {
        catalog(
            vec![
                table("users", &[], 1000.0, 128_000),
                table("events", &["user_id"], 10_000.0, 3_400_000),
            ],
            vec![fk("events", "user_id", "users")],
        )
    }

    /// The user of event `id` (1-based), and its weight.
    fn event(id: u64) -> (Option<u64>, u32) {
        match id % 10 {
            0..=5 => (None, 128),
            6..=8 => (Some(1), 1028),
            _ => (Some(2 + id % 999), 128),
        }
    }

    /// The key pass of [`skewed`]: users' key table (weights measured) and events' tally.
    fn skewed_pass(subset: &Subset, hasher: &KeyHasher) -> KeyPass {
        let mut tables = users_keys(subset, hasher, 1000);
        if let Some(users) = tables.get_mut(&q("users")) {
            for _ in 0..1000 {
                users.weigh(128);
            }
        }
        let layout = &subset.tallies[&q("events")];
        let mut tally = Tally::new(
            q("events"),
            layout.outgoing.iter().map(|(e, _)| *e).collect(),
        );
        for id in 1..=10_000u64 {
            let (user, w) = event(id);
            let refs = [user
                .map(|u| hasher.hash(&[u.to_string().as_bytes()]))
                .unwrap_or(keys::NULL)];
            let text = id.to_string();
            let select = if Tally::is_orphan(&refs) {
                selector().select(&q("events"), &[text.as_bytes()])
            } else {
                0
            };
            tally.push(&refs, select, w);
        }
        KeyPass {
            tables,
            tallies: BTreeMap::from([(q("events"), tally)]),
        }
    }

    fn skewed_sizes() -> SourceSizes {
        use super::super::estimate::SourceSize;
        SourceSizes::from([
            (
                q("users"),
                SourceSize {
                    heap: 128_000,
                    ..SourceSize::default()
                },
            ),
            (
                q("events"),
                SourceSize {
                    heap: 3_400_000,
                    indexes: 200_000 + 8192,
                    index_count: 1,
                    ..SourceSize::default()
                },
            ),
        ])
    }

    /// Runs every event through the plan's filter, as the data pass would: the rows kept.
    fn filtered_events(plan: &Plan) -> u64 {
        let filter = plan.tables[&q("events")].filter.clone().expect("a filter");
        let mut nulled = Vec::new();
        (1..=10_000u64)
            .filter(|id| {
                let user = event(*id).0.map(|u| u.to_string()).unwrap_or("\\N".into());
                filter.keep(&[id.to_string().as_bytes(), user.as_bytes()], &mut nulled)
            })
            .count() as u64
    }

    #[test]
    fn counted_plans_see_null_references_a_skewed_parent_and_wide_rows() {
        let catalog = skewed();
        let mut settings = sample(vec![("users", spec(Some(10.0)))]);
        settings.storage = Some(cap(10 << 20));
        let subset = decide(&catalog, &settings).unwrap().expect("a subset");
        assert!(subset.measure);
        assert_eq!(subset.tallies[&q("events")].identity, vec!["id"]);
        assert_eq!(subset.tallies[&q("events")].outgoing.len(), 1);
        // The key pass reads the tally too, and the rows' sizes.
        let reads = subset.key_reads(&catalog, &settings, None, None);
        let events = reads.iter().find(|r| r.table == q("events")).expect("read");
        assert_eq!(events.kind, ReadKind::Tally);
        assert_eq!(
            events.width,
            Some(Width::Columns(vec!["id".into(), "user_id".into()]))
        );
        // Nothing TOASTed in the source: whole tuples are measured.
        let reads = subset.key_reads(&catalog, &settings, Some(&skewed_sizes()), None);
        assert!(reads.iter().all(|r| r.width == Some(Width::Tuple)));

        let hasher = KeyHasher::default();
        let mut pass = skewed_pass(&subset, &hasher);
        let sizing = Sizing {
            sizes: Some(skewed_sizes()),
            ..Sizing::default()
        };
        let fitted = subset
            .fit(&catalog, settings.storage.as_ref(), &mut pass, &sizing)
            .unwrap();
        assert_eq!(fitted.factor, 1.0);
        let events = fitted.planned[&q("events")];
        // User 1 (chosen: it has the smallest selection hash) brings its 3,000 events; about
        // 10% of the 1,000 spread ones and of the 6,000 orphans follow. The catalog's share
        // would have said 1,000.
        assert!((3600..=3800).contains(&events.rows), "{events:?}");
        let orphans = events.orphans.expect("counted");
        assert!((500..=700).contains(&orphans), "{orphans}");
        // Bytes by weight: the wide rows of user 1 are most of them, packed into pages.
        let weight_kept = 3000 * 1028 + (events.rows - 3000) * 128;
        let room = 8168.0 - (3000.0 * 1028.0 + 7000.0 * 128.0) / 10_000.0 / 2.0;
        let expected = (weight_kept as f64 / room + 0.5) * 8192.0 + 8192.0;
        assert!(
            (events.bytes.table as f64 - expected).abs() < 2.0,
            "{} vs {expected}",
            events.bytes.table
        );
        // The data pass keeps exactly the rows the plan counted.
        let keys = subset.freeze(hasher, pass.tables);
        let plan = subset.assemble(&catalog, &settings, &fitted, &keys, &selector(), None);
        assert_eq!(filtered_events(&plan), events.rows);
        assert_eq!(plan.tables[&q("events")].estimated_rows, events.rows);
        let summary = plan.summary.expect("a summary");
        assert_eq!(summary.estimate, "measured");
        assert_eq!(
            summary.tables["public.events"].planned_orphans,
            Some(orphans)
        );
        let storage = plan.storage.expect("a cap");
        assert_eq!(storage.planned_bytes, fitted.counted);
    }

    #[test]
    fn a_cap_on_skewed_data_is_met_and_the_filter_agrees_with_the_count() {
        let catalog = skewed();
        let mut settings = sample(vec![("users", spec(Some(50.0)))]);
        // users at 50% and their events take about 3.8 MB (3.1 MB of it the wide events of
        // user 1, which any sample that keeps user 1 keeps); cap at 3.7 MB, indexes counted.
        let mut c = cap(3_700_000);
        c.include_indexes = true;
        settings.storage = Some(c);
        let subset = decide(&catalog, &settings).unwrap().expect("a subset");
        let hasher = KeyHasher::default();
        let mut pass = skewed_pass(&subset, &hasher);
        let sizing = Sizing {
            sizes: Some(skewed_sizes()),
            ..Sizing::default()
        };
        let fitted = subset
            .fit(&catalog, settings.storage.as_ref(), &mut pass, &sizing)
            .unwrap();
        assert!(fitted.factor < 1.0);
        assert!(fitted.counted <= 3_589_000, "{}", fitted.counted);
        assert!(fitted.counted >= 3_330_000, "{}", fitted.counted);
        let with_indexes: u64 = fitted
            .planned
            .values()
            .map(|p| p.bytes.table + p.bytes.indexes)
            .sum();
        assert_eq!(with_indexes, fitted.counted, "indexes count");
        let rows = fitted.planned[&q("events")].rows;
        let keys = subset.freeze(hasher, pass.tables);
        let plan = subset.assemble(&catalog, &settings, &fitted, &keys, &selector(), None);
        assert_eq!(filtered_events(&plan), rows);
    }

    #[test]
    fn orphans_keep_keeps_every_row_that_follows_nothing() {
        let catalog = skewed();
        let mut settings = sample(vec![("users", spec(Some(10.0)))]);
        settings.storage = Some(cap(10 << 20));
        settings
            .orphan_overrides
            .insert("events_user_id_fkey".into(), Orphans::Keep);
        let subset = decide(&catalog, &settings).unwrap().expect("a subset");
        assert!(subset.orphans_kept.contains(&q("events")));
        let hasher = KeyHasher::default();
        let mut pass = skewed_pass(&subset, &hasher);
        let fitted = subset
            .fit(
                &catalog,
                settings.storage.as_ref(),
                &mut pass,
                &Sizing::default(),
            )
            .unwrap();
        assert!(!fitted.orphan_rates.contains_key(&q("events")));
        let events = fitted.planned[&q("events")];
        assert_eq!(events.orphans, Some(6000));
        let keys = subset.freeze(hasher, pass.tables);
        let plan = subset.assemble(&catalog, &settings, &fitted, &keys, &selector(), None);
        assert_eq!(filtered_events(&plan), events.rows);
        assert_eq!(
            plan.tables[&q("events")].reason,
            "follows public.users via events_user_id_fkey"
        );
    }

    #[test]
    fn measuring_counts_tallies_and_weights_against_the_key_memory() {
        let mut settings = sample(vec![("users", spec(Some(10.0)))]);
        settings.max_key_memory = 60_000;
        // users (1000 × 40) only: fits.
        assert!(decide(&skewed(), &settings).is_ok());
        // With a cap: users (1000 × 44) and events' tally (10,000 × 12).
        settings.storage = Some(cap(1 << 20));
        let problems = decide(&skewed(), &settings).unwrap_err();
        assert!(
            problems[0].contains("about 160.2 KiB of memory"),
            "{problems:?}"
        );
    }
}
