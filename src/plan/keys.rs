//! Key sets and the fixed point that makes a subset consistent.
//!
//! A *key table* holds, for every row of a subsetted table that needs one (roots, and tables
//! other subsetted tables reference), only hashes: its identity (primary key, or the whole row
//! when there is none), its selection hash (keyed with the secret: the same rows are chosen
//! every night), and the values of its references to subsetted parents. About 40 bytes per
//! row, plus 8 per reference; see [`BYTES_PER_ROW`].
//!
//! [`solve`] iterates to a fixed point:
//! - a row is a candidate when its table's own spec chooses it (its *base*; every row of a
//!   table without a spec);
//! - a candidate is kept when every *gating* reference it holds is NULL or points at a kept
//!   row (see [`super::graph::Graph::gating`]: a table follows the tables it references);
//! - a kept row's other references *pull* the rows they point at into their tables, even
//!   when those tables were sampled smaller (a self-reference, the way back around a cycle),
//!   and so does any reference of a pulled row; a table with `rows: 0` never grows: a
//!   reference to it drops the row, or is nulled;
//! - references with the `set_null` policy neither gate nor pull: they are nulled when the
//!   row they point at is not kept;
//! - a row of a following table whose gating references are all NULL follows nothing (an
//!   *orphan*): it is a candidate when its selection hash is under its table's orphan
//!   threshold (the rate of the root it follows; see [`root_rate`]), unless its orphans are
//!   kept (`orphans: keep`).
//!
//! Sets only grow once the base is chosen, so the iteration ends; cycles and self-references
//! need nothing special.
//!
//! Hashes are 64-bit. Two different keys with the same hash (about 1 in 10^12 for ten
//! million keys) would make one row look kept; the foreign keys are validated when staging's
//! constraints are created, so such a case fails the run loudly, never silently.

use std::collections::{BTreeMap, BTreeSet};

use crate::prehashed::DigestMap;
use std::hash::{BuildHasher, RandomState};

use super::graph::Edge;
use crate::catalog::QualifiedName;
use crate::config::Dangling;
use crate::transform::key::Domain;

/// Memory per row of a key table, for the bound: the identity index entry (~19 bytes with
/// hashbrown's overhead), the selection hash (8), flags (3), rounded up.
pub const BYTES_PER_ROW: u64 = 40;
/// Extra memory per row for each reference to a subsetted parent.
pub const BYTES_PER_REFERENCE: u64 = 8;

/// The hash of a NULL reference.
pub const NULL: u64 = 0;

/// Hashes key fields (raw COPY text) for key sets. One per run; never 0.
#[derive(Debug, Clone, Default)]
pub struct KeyHasher {
    state: RandomState,
}

impl KeyHasher {
    /// The hash of a key made of `fields`, or [`NULL`] when any is NULL (MATCH SIMPLE: such a
    /// reference is not checked by PostgreSQL either).
    pub fn hash(&self, fields: &[&[u8]]) -> u64 {
        if fields.iter().any(|f| crate::copy_text::is_null(f)) {
            return NULL;
        }
        let mut joined = Vec::with_capacity(fields.iter().map(|f| f.len() + 1).sum());
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                joined.push(b'\t');
            }
            joined.extend_from_slice(f);
        }
        self.state.hash_one(&joined).max(1)
    }
}

/// Keyed selection hashes: the same identity in the same table gets the same hash with the
/// same secret, so `percent` and `max_rows` choose the same rows every run.
#[derive(Debug, Clone)]
pub struct Selector {
    domain: Domain,
}

impl Selector {
    pub fn new(domain: Domain) -> Selector {
        Selector { domain }
    }

    pub fn select(&self, table: &QualifiedName, identity: &[&[u8]]) -> u64 {
        let mut input = Vec::new();
        input.extend_from_slice(table.to_string().as_bytes());
        for f in identity {
            input.push(0);
            input.extend_from_slice(f);
        }
        let seed = self.domain.seed(&input);
        u64::from_be_bytes([
            seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7],
        ])
    }
}

/// A table's own sample rule, as the planner applies it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleRule {
    pub percent: Option<f64>,
    /// The key pass reports whether each row is inside the `since_days` window.
    pub window: bool,
    pub max_rows: Option<u64>,
    pub empty: bool,
}

/// What a key table's columns are, in the order the key pass reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLayout {
    pub identity: Vec<String>,
    /// Other column sets that subsetted tables reference (unique keys that are not the identity).
    pub referenced: Vec<Vec<String>>,
    /// References to subsetted parents: (edge index, columns).
    pub outgoing: Vec<(usize, Vec<String>)>,
}

impl KeyLayout {
    /// Memory per row of a key table with this layout, for the `max_key_memory` bound.
    pub fn bytes_per_row(&self) -> u64 {
        BYTES_PER_ROW + BYTES_PER_REFERENCE * (self.outgoing.len() + self.referenced.len()) as u64
    }
}

/// The key table of one logical table.
#[derive(Debug, Default)]
pub struct KeyTable {
    pub name: QualifiedName,
    pub identity: Vec<String>,
    id_index: DigestMap<u32>,
    ref_index: BTreeMap<Vec<String>, DigestMap<u32>>,
    select: Vec<u64>,
    in_window: Vec<bool>,
    outgoing: Vec<(usize, Vec<u64>)>,
    /// Each row's weight ([`super::estimate`]), when the key pass measured them.
    weights: Vec<u32>,
    pub kept: Vec<bool>,
    pub base: Vec<bool>,
}

impl KeyTable {
    pub fn new(name: QualifiedName, layout: &KeyLayout) -> KeyTable {
        KeyTable {
            name,
            identity: layout.identity.clone(),
            ref_index: layout
                .referenced
                .iter()
                .map(|cols| (cols.clone(), DigestMap::default()))
                .collect(),
            outgoing: layout
                .outgoing
                .iter()
                .map(|(e, _)| (*e, Vec::new()))
                .collect(),
            ..KeyTable::default()
        }
    }

    pub fn rows(&self) -> usize {
        self.select.len()
    }

    /// Adds a row. `referenced` follows `layout.referenced`, `references` follows
    /// `layout.outgoing`.
    pub fn push(
        &mut self,
        id: u64,
        select: u64,
        in_window: bool,
        referenced: &[u64],
        references: &[u64],
    ) {
        let row = self.select.len() as u32;
        self.id_index.insert(id, row);
        for ((_, index), &h) in self.ref_index.iter_mut().zip(referenced) {
            if h != NULL {
                index.insert(h, row);
            }
        }
        for ((_, values), &h) in self.outgoing.iter_mut().zip(references) {
            values.push(h);
        }
        self.select.push(select);
        self.in_window.push(in_window);
    }

    /// Records the weight of the row pushed last.
    pub fn weigh(&mut self, weight: u32) {
        self.weights.push(weight);
    }

    /// Sum of the weights of every row, when they were measured.
    pub fn weight(&self) -> Option<u64> {
        self.measured()
            .then(|| self.weights.iter().map(|w| *w as u64).sum())
    }

    /// Sum of the weights of the kept rows, when they were measured.
    pub fn kept_weight(&self) -> Option<u64> {
        self.measured().then(|| {
            self.weights
                .iter()
                .zip(&self.kept)
                .filter(|(_, k)| **k)
                .map(|(w, _)| *w as u64)
                .sum()
        })
    }

    fn measured(&self) -> bool {
        self.weights.len() == self.rows() && !self.weights.is_empty()
    }

    /// The row whose `columns` hash to `key`.
    fn find(&self, columns: &[String], key: u64) -> Option<u32> {
        if columns == self.identity.as_slice() {
            self.id_index.get(&key).copied()
        } else {
            self.ref_index
                .get(columns)
                .and_then(|i| i.get(&key))
                .copied()
        }
    }

    /// Is the row with `columns` = `key` kept?
    pub fn is_kept(&self, columns: &[String], key: u64) -> bool {
        self.find(columns, key)
            .is_some_and(|r| self.kept.get(r as usize).copied().unwrap_or(false))
    }

    /// Is the row with this identity hash kept?
    pub fn is_kept_id(&self, id: u64) -> bool {
        self.id_index
            .get(&id)
            .is_some_and(|&r| self.kept.get(r as usize).copied().unwrap_or(false))
    }

    pub fn kept_count(&self) -> u64 {
        self.kept.iter().filter(|k| **k).count() as u64
    }

    pub fn base_count(&self) -> u64 {
        self.base.iter().filter(|k| **k).count() as u64
    }

    /// Drops what only the solver needs, keeping the lookups the data pass uses.
    pub fn freeze(&mut self) {
        self.select = Vec::new();
        self.in_window = Vec::new();
        self.outgoing = Vec::new();
        self.weights = Vec::new();
        self.base = Vec::new();
        self.id_index.shrink_to_fit();
    }

    /// The base selection of `rule` scaled by `factor` (max_storage).
    fn choose(&self, rule: &SampleRule, factor: f64) -> Vec<bool> {
        if rule.empty {
            return vec![false; self.rows()];
        }
        let threshold = rule.percent.map(|p| threshold(p * factor));
        let mut chosen: Vec<bool> = (0..self.rows())
            .map(|i| {
                (!rule.window || self.in_window[i]) && threshold.is_none_or(|t| self.select[i] <= t)
            })
            .collect();
        // A percent spec already scales; a table with only a cap (or a window) scales its cap.
        let cap = match (rule.max_rows, rule.percent) {
            (Some(m), Some(_)) => Some(m),
            (Some(m), None) => Some(((m as f64) * factor).ceil() as u64),
            (None, None) if factor < 1.0 => {
                let n = chosen.iter().filter(|c| **c).count() as f64;
                Some((n * factor).ceil() as u64)
            }
            (None, _) => None,
        };
        if let Some(cap) = cap {
            let mut candidates: Vec<(u64, usize)> = chosen
                .iter()
                .enumerate()
                .filter(|(_, c)| **c)
                .map(|(i, _)| (self.select[i], i))
                .collect();
            if candidates.len() as u64 > cap {
                let cap = cap as usize;
                if cap == 0 {
                    candidates.clear();
                } else {
                    candidates.select_nth_unstable(cap - 1);
                    candidates.truncate(cap);
                }
                chosen = vec![false; self.rows()];
                for (_, i) in candidates {
                    chosen[i] = true;
                }
            }
        }
        chosen
    }
}

/// The share of its rows a root's own rule chooses at `factor` (1 for a table without rows):
/// the rate its followers' orphans are sampled at.
pub fn root_rate(table: &KeyTable, rule: &SampleRule, factor: f64) -> f64 {
    if table.rows() == 0 {
        return 1.0;
    }
    let chosen = table.choose(rule, factor).iter().filter(|c| **c).count();
    chosen as f64 / table.rows() as f64
}

/// The selection hash under which a row is sampled at `rate` (a share, 0 to 1).
pub fn rate_threshold(rate: f64) -> u64 {
    threshold(rate * 100.0)
}

/// The selection hash under which a row is in a `percent` sample.
pub fn threshold(percent: f64) -> u64 {
    let p = (percent / 100.0).clamp(0.0, 1.0);
    if p >= 1.0 {
        u64::MAX
    } else {
        (p * u64::MAX as f64) as u64
    }
}

/// How one table takes part in the solve.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Root(SampleRule),
    Follows,
}

/// Per-table outcome of the solve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Solved {
    pub base: u64,
    pub kept: u64,
    pub pulled: u64,
}

/// True when a row's references that decide whether it is kept (the `drop` ones that gate,
/// or point at a `rows: 0` table) are all NULL, and it has at least one.
fn is_orphan(
    table: &KeyTable,
    row: usize,
    edges: &[Edge],
    gating: &BTreeSet<usize>,
    empty: &[QualifiedName],
) -> bool {
    let mut deciding = table
        .outgoing
        .iter()
        .filter(|(edge, _)| {
            let e = &edges[*edge];
            e.dangling == Dangling::Drop && (gating.contains(edge) || empty.contains(&e.parent))
        })
        .peekable();
    deciding.peek().is_some() && deciding.all(|(_, values)| values[row] == NULL)
}

/// Runs the fixed point over the key tables. `gating` lists the edges that gate (the others
/// pull); `empty` the subsetted tables with `rows: 0` (they have no key table, never grow);
/// `orphans` the threshold under which an orphan of a following table is a candidate (a
/// following table not named keeps its orphans).
pub fn solve(
    tables: &mut BTreeMap<QualifiedName, KeyTable>,
    parts: &BTreeMap<QualifiedName, Part>,
    edges: &[Edge],
    gating: &BTreeSet<usize>,
    empty: &[QualifiedName],
    factor: f64,
    orphans: &BTreeMap<QualifiedName, u64>,
) -> BTreeMap<QualifiedName, Solved> {
    let mut candidates: BTreeMap<QualifiedName, Vec<bool>> = BTreeMap::new();
    for (name, table) in tables.iter_mut() {
        let base = match (parts.get(name), orphans.get(name)) {
            (Some(Part::Root(rule)), _) => table.choose(rule, factor),
            (_, Some(&threshold)) => (0..table.rows())
                .map(|row| {
                    table.select[row] <= threshold || !is_orphan(table, row, edges, gating, empty)
                })
                .collect(),
            _ => vec![true; table.rows()],
        };
        table.base = match parts.get(name) {
            Some(Part::Root(_)) => base.clone(),
            _ => vec![false; table.rows()],
        };
        table.kept = vec![false; table.rows()];
        candidates.insert(name.clone(), base);
    }

    let names: Vec<QualifiedName> = tables.keys().cloned().collect();
    loop {
        let mut changed = false;
        // Gate: candidates whose gating references all point at kept rows.
        for name in &names {
            let Some(table) = tables.get(name) else {
                continue;
            };
            let candidate = &candidates[name];
            let mut newly = Vec::new();
            for row in 0..table.rows() {
                if table.kept[row] || !candidate[row] {
                    continue;
                }
                let ok = table.outgoing.iter().all(|(edge, values)| {
                    let v = values[row];
                    if v == NULL {
                        return true;
                    }
                    let e = &edges[*edge];
                    if e.dangling == Dangling::Drop && empty.contains(&e.parent) {
                        return false;
                    }
                    if !gating.contains(edge) {
                        return true;
                    }
                    match tables.get(&e.parent) {
                        Some(parent) => parent.is_kept(&e.parent_columns, v),
                        // A parent without a key table is not subsetted: all its rows exist.
                        None => true,
                    }
                });
                if ok {
                    newly.push(row);
                }
            }
            if !newly.is_empty() {
                changed = true;
                if let Some(table) = tables.get_mut(name) {
                    for row in newly {
                        table.kept[row] = true;
                    }
                }
            }
        }
        // Pull: a kept row's references bring the rows they point at.
        let mut pulls: Vec<(QualifiedName, u32)> = Vec::new();
        for name in &names {
            let Some(table) = tables.get(name) else {
                continue;
            };
            for (edge, values) in &table.outgoing {
                let e = &edges[*edge];
                if e.dangling == Dangling::SetNull || empty.contains(&e.parent) {
                    continue;
                }
                let Some(parent) = tables.get(&e.parent) else {
                    continue;
                };
                for (row, &v) in values.iter().enumerate() {
                    if v == NULL || !table.kept[row] {
                        continue;
                    }
                    if let Some(target) = parent.find(&e.parent_columns, v)
                        && !parent.kept[target as usize]
                    {
                        pulls.push((e.parent.clone(), target));
                    }
                }
            }
        }
        for (name, row) in pulls {
            if let Some(t) = tables.get_mut(&name)
                && !t.kept[row as usize]
            {
                t.kept[row as usize] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    tables
        .iter()
        .map(|(name, t)| {
            let candidate = &candidates[name];
            // Rows the table's own choice (spec and gates) kept; with `pulled`, all it keeps.
            let base = match parts.get(name) {
                Some(Part::Root(_)) => t
                    .kept
                    .iter()
                    .zip(candidate)
                    .filter(|(k, c)| **k && **c)
                    .count() as u64,
                _ => 0,
            };
            // Kept rows that their table's own choice (spec and gates) did not select.
            let pulled = match parts.get(name) {
                Some(Part::Root(_)) => t
                    .kept
                    .iter()
                    .zip(candidate)
                    .filter(|(k, c)| **k && !**c)
                    .count() as u64,
                _ => 0,
            };
            (
                name.clone(),
                Solved {
                    base,
                    kept: t.kept_count(),
                    pulled,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    fn edge(child: &str, cols: &str, parent: &str, dangling: Dangling) -> Edge {
        Edge {
            fk: format!("{child}_{cols}_fkey"),
            child: q(child),
            declared_on: q(child),
            child_columns: vec![cols.into()],
            parent: q(parent),
            parent_columns: vec!["id".into()],
            nullable: true,
            dangling,
            orphans: crate::config::Orphans::Sample,
        }
    }

    fn id() -> Vec<String> {
        vec!["id".into()]
    }

    /// A key table with rows 1..=n; `refs[i]` are each row's references (0 = NULL), and the
    /// selection hash makes row i chosen by `percent` exactly when i <= n * percent.
    fn table(name: &str, n: u64, outgoing: Vec<(usize, Vec<u64>)>) -> KeyTable {
        let layout = KeyLayout {
            identity: id(),
            referenced: vec![],
            outgoing: outgoing
                .iter()
                .map(|(e, _)| (*e, vec!["x".to_string()]))
                .collect(),
        };
        let mut t = KeyTable::new(q(name), &layout);
        for i in 1..=n {
            let refs: Vec<u64> = outgoing.iter().map(|(_, v)| v[(i - 1) as usize]).collect();
            let select = ((i as f64 - 0.5) / n as f64 * u64::MAX as f64) as u64;
            t.push(i, select, true, &[], &refs);
        }
        t
    }

    fn root(percent: f64) -> Part {
        Part::Root(SampleRule {
            percent: Some(percent),
            ..SampleRule::default()
        })
    }

    #[test]
    fn chain_children_follow_parents() {
        // users (10 rows, 30%) ← orders (6 rows)
        let edges = vec![edge("orders", "user_id", "users", Dangling::Drop)];
        let mut tables = BTreeMap::new();
        tables.insert(q("users"), table("users", 10, vec![]));
        tables.insert(
            q("orders"),
            table("orders", 6, vec![(0, vec![1, 2, 3, 4, 9, NULL])]),
        );
        let parts = BTreeMap::from([(q("users"), root(30.0)), (q("orders"), Part::Follows)]);
        let solved = solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::from([0]),
            &[],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(solved[&q("users")].kept, 3);
        // orders of users 1..3, and the one with a NULL reference.
        assert_eq!(
            tables[&q("orders")].kept,
            vec![true, true, true, false, false, true]
        );
    }

    #[test]
    fn self_reference_pulls_referrers() {
        // users.referred_by: 1 → 5, 2 → 6, 6 → 7; 20% of 10 keeps 1 and 2.
        let edges = vec![edge("users", "referred_by", "users", Dangling::Drop)];
        let refs = vec![5, 6, NULL, NULL, NULL, 7, NULL, NULL, NULL, NULL];
        let mut tables = BTreeMap::from([(q("users"), table("users", 10, vec![(0, refs)]))]);
        let parts = BTreeMap::from([(q("users"), root(20.0))]);
        let solved = solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::new(),
            &[],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(
            solved[&q("users")],
            Solved {
                base: 2,
                kept: 5,
                pulled: 3
            }
        );
        let kept: Vec<u64> = (1..=10)
            .filter(|i| tables[&q("users")].kept[(*i - 1) as usize])
            .collect();
        assert_eq!(kept, vec![1, 2, 5, 6, 7]);
    }

    #[test]
    fn two_table_cycle_reaches_a_fixed_point() {
        // a.b_id → b, b.a_id → a; a is the root (first 2 of 4).
        let edges = vec![
            edge("a", "b_id", "b", Dangling::Drop),
            edge("b", "a_id", "a", Dangling::Drop),
        ];
        let mut tables = BTreeMap::new();
        tables.insert(q("a"), table("a", 4, vec![(0, vec![3, 1, 2, 4])]));
        tables.insert(q("b"), table("b", 4, vec![(1, vec![1, 3, 4, NULL])]));
        let parts = BTreeMap::from([(q("a"), root(50.0)), (q("b"), Part::Follows)]);
        solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::from([1]),
            &[],
            1.0,
            &BTreeMap::new(),
        );
        // Every kept row's reference points at a kept row.
        for (name, other, edge) in [(q("a"), q("b"), 0usize), (q("b"), q("a"), 1usize)] {
            let t = &tables[&name];
            let values = &t.outgoing.iter().find(|(e, _)| *e == edge).unwrap().1;
            for (row, v) in values.iter().enumerate() {
                if t.kept[row] && *v != NULL {
                    assert!(tables[&other].is_kept(&id(), *v), "{name} row {row} → {v}");
                }
            }
        }
    }

    #[test]
    fn a_root_follows_its_parents_too() {
        // events (a window root) referencing users (10%): kept events are in the window and
        // belong to kept users; users does not grow.
        let edges = vec![edge("events", "user_id", "users", Dangling::Drop)];
        let mut tables = BTreeMap::new();
        tables.insert(q("users"), table("users", 10, vec![]));
        let mut events = table("events", 4, vec![(0, vec![1, 1, 9, 9])]);
        events.in_window = vec![true, false, true, false];
        tables.insert(q("events"), events);
        let window = Part::Root(SampleRule {
            window: true,
            ..SampleRule::default()
        });
        let parts = BTreeMap::from([(q("users"), root(10.0)), (q("events"), window)]);
        let solved = solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::from([0]),
            &[],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(tables[&q("events")].kept, vec![true, false, false, false]);
        assert_eq!(solved[&q("users")].kept, 1);
    }

    #[test]
    fn orphans_of_a_follower_are_sampled_at_the_roots_rate() {
        // users (10 rows, 30%) ← orders (10 rows): the first six have no user; selection
        // hashes spread evenly, so a threshold at 30% takes orders 1 to 3.
        let edges = vec![edge("orders", "user_id", "users", Dangling::Drop)];
        let mut tables = BTreeMap::new();
        tables.insert(q("users"), table("users", 10, vec![]));
        let refs = vec![NULL, NULL, NULL, NULL, NULL, NULL, 1, 2, 9, 10];
        tables.insert(q("orders"), table("orders", 10, vec![(0, refs)]));
        let parts = BTreeMap::from([(q("users"), root(30.0)), (q("orders"), Part::Follows)]);
        let rule = SampleRule {
            percent: Some(30.0),
            ..SampleRule::default()
        };
        let rate = root_rate(&tables[&q("users")], &rule, 1.0);
        assert!((rate - 0.3).abs() < 1e-9, "{rate}");
        let orphans = BTreeMap::from([(q("orders"), rate_threshold(rate))]);
        let gating = BTreeSet::from([0]);
        solve(&mut tables, &parts, &edges, &gating, &[], 1.0, &orphans);
        // Users 1 to 3 are kept: orders 7 and 8 follow them; of the orphans, 1 to 3.
        assert_eq!(
            tables[&q("orders")].kept,
            vec![
                true, true, true, false, false, false, true, true, false, false
            ]
        );
        // Without a threshold (orphans: keep) every orphan is kept.
        solve(
            &mut tables,
            &parts,
            &edges,
            &gating,
            &[],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(tables[&q("orders")].kept_count(), 8);
        // The same rows on every solve.
        solve(&mut tables, &parts, &edges, &gating, &[], 1.0, &orphans);
        assert_eq!(tables[&q("orders")].kept_count(), 5);
    }

    #[test]
    fn weights_of_the_kept_rows_add_up() {
        let mut t = table("t", 4, vec![]);
        assert_eq!(t.weight(), None, "not measured");
        let mut measured = KeyTable::new(
            q("t"),
            &KeyLayout {
                identity: id(),
                referenced: vec![],
                outgoing: vec![],
            },
        );
        for (i, w) in [10u32, 20, 30, 40].iter().enumerate() {
            measured.push(i as u64 + 1, 0, true, &[], &[]);
            measured.weigh(*w);
        }
        measured.kept = vec![true, false, true, false];
        assert_eq!(measured.weight(), Some(100));
        assert_eq!(measured.kept_weight(), Some(40));
        t.kept = vec![true; 4];
        assert_eq!(t.kept_weight(), None);
    }

    #[test]
    fn set_null_neither_gates_nor_pulls() {
        let edges = vec![edge("orders", "user_id", "users", Dangling::SetNull)];
        let mut tables = BTreeMap::new();
        tables.insert(q("users"), table("users", 10, vec![]));
        tables.insert(q("orders"), table("orders", 3, vec![(0, vec![1, 9, 10])]));
        let parts = BTreeMap::from([(q("users"), root(10.0)), (q("orders"), Part::Follows)]);
        let solved = solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::new(),
            &[],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(solved[&q("users")].kept, 1);
        assert_eq!(solved[&q("orders")].kept, 3);
    }

    #[test]
    fn empty_tables_never_grow() {
        let edges = vec![edge("events", "audit_id", "audit", Dangling::Drop)];
        let mut tables = BTreeMap::from([(
            q("events"),
            table("events", 4, vec![(0, vec![1, NULL, 2, NULL])]),
        )]);
        let parts = BTreeMap::from([(q("events"), root(100.0))]);
        solve(
            &mut tables,
            &parts,
            &edges,
            &BTreeSet::new(),
            &[q("audit")],
            1.0,
            &BTreeMap::new(),
        );
        assert_eq!(tables[&q("events")].kept, vec![false, true, false, true]);
    }

    #[test]
    fn max_rows_takes_the_smallest_selection_hashes_and_scales() {
        let mut t = table("t", 100, vec![]);
        let rule = SampleRule {
            max_rows: Some(10),
            ..SampleRule::default()
        };
        let chosen = t.choose(&rule, 1.0);
        assert_eq!(chosen.iter().filter(|c| **c).count(), 10);
        assert!(chosen[..10].iter().all(|c| *c), "the ten smallest hashes");
        assert_eq!(t.choose(&rule, 0.5).iter().filter(|c| **c).count(), 5);
        t.in_window = (0..100).map(|i| i >= 50).collect();
        let rule = SampleRule {
            window: true,
            ..SampleRule::default()
        };
        assert_eq!(t.choose(&rule, 1.0).iter().filter(|c| **c).count(), 50);
        assert_eq!(t.choose(&rule, 0.2).iter().filter(|c| **c).count(), 10);
    }

    #[test]
    fn percent_is_deterministic_with_the_secret() {
        let key = crate::transform::key::Key::new(b"secret-one-0123456789");
        let s = Selector::new(key.domain(b"restage-sample"));
        let t = q("users");
        assert_eq!(s.select(&t, &[b"42"]), s.select(&t, &[b"42"]));
        assert_ne!(s.select(&t, &[b"42"]), s.select(&t, &[b"43"]));
        let other = Selector::new(
            crate::transform::key::Key::new(b"secret-two-0123456789").domain(b"restage-sample"),
        );
        assert_ne!(s.select(&t, &[b"42"]), other.select(&t, &[b"42"]));
        // About 10% of keys fall under the 10% threshold.
        let n = (0..10_000)
            .filter(|i| s.select(&t, &[i.to_string().as_bytes()]) <= threshold(10.0))
            .count();
        assert!((800..1200).contains(&n), "{n}");
    }
}
