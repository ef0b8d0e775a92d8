//! The generation plan: per table (a partitioned table is one unit, its rows routed to its
//! partitions by COPY), its row count and a generator per column, chosen so that every
//! constraint holds by construction:
//!
//! - primary keys and unique keys: one column of each key gets a row-number-derived value
//!   ([`UniqueGen`]); a key made only of foreign-key columns picks distinct parent rows
//!   (the row itself, or a mixed-radix split of it over the parents);
//! - foreign keys: the child's columns are the parent's generated key at a parent row picked
//!   from (seed, foreign key, row) — parents are never read back, any row of any table can be
//!   made alone, and cycles and self-references need nothing special (the constraints are
//!   created and validated after the load, like a refresh's);
//! - NOT NULL, enums, domains, CHECKs that are simple comparisons and IN-lists ([`check`]);
//! - production's statistics where they may be read (`pg_stats`: null fraction, distinct
//!   count, most common values and histogram bounds of columns that do not look personal).
//!
//! Hybrid mode (`source.mode: hybrid`): the tables copied from production are units of the
//! model too, without columns ([`TableModel::copied`]); a generated table's foreign key to
//! one takes its values from a [`KeyPool`] — the keys the copied table actually holds in
//! the new database, read after it was loaded ([`Model::pools`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use super::check::{self, Allowed};
use super::values::{self, UniqueGen, ValueGen, hash, key_of, unit};
use crate::catalog::{Catalog, Column, QualifiedName, TableKind, TypeKind};
use crate::rules::SyntheticTable;

/// Rows of a table when nothing says (a schema archive has no statistics).
pub const DEFAULT_ROWS: u64 = 1000;
/// Null fraction of a nullable column without statistics.
const DEFAULT_NULL_FRACTION: f64 = 0.05;
/// The deepest chain of keys made from keys (a child's key that is its parent's key …).
const MAX_DEPTH: u32 = 32;

/// `pg_stats` of one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnStats {
    pub null_frac: f64,
    pub n_distinct: f64,
    pub most_common: Vec<String>,
    pub most_common_freqs: Vec<f64>,
    pub histogram: Vec<String>,
    /// A json/jsonb column's shape, from sampled documents ([`super::json_shape`]).
    pub json_shape: Option<std::sync::Arc<super::json_shape::Shape>>,
}

/// What the plan is made from.
pub struct Inputs<'a> {
    pub catalog: &'a Catalog,
    pub seed: u64,
    pub scale: f64,
    /// Rows per table before the scale (estimates, or counts of small tables); a table
    /// missing here gets `default_rows`.
    pub base_rows: HashMap<QualifiedName, u64>,
    pub default_rows: u64,
    /// CHECK constraints: (table, constraint name, expression, the columns it reads).
    pub checks: Vec<(QualifiedName, String, String, Vec<String>)>,
    /// Domain CHECKs of columns: (table, column, domain, constraint, expression).
    pub domain_checks: Vec<(QualifiedName, String, String, String, String)>,
    pub stats: HashMap<(QualifiedName, String), ColumnStats>,
    /// The bounds of partitioned tables without a DEFAULT partition, as what their key
    /// column allows: (partitioned table, key column, allowed).
    pub partition_bounds: Vec<(QualifiedName, String, Allowed)>,
    /// `synthetic:` entries of the rules files.
    pub specs: &'a BTreeMap<QualifiedName, SyntheticTable>,
    /// Columns with a rule (their values are that rule's transform of the generated input).
    pub ruled: BTreeSet<(QualifiedName, String)>,
    /// Hybrid mode: the units copied from production, with the rows their plan expects
    /// (caps of one-child-per-parent keys until the real count is known).
    pub copied: BTreeMap<QualifiedName, u64>,
}

/// The keys a copied table holds (hybrid mode), for the generated tables that reference it:
/// the distinct non-NULL values of `columns`, in a fixed order, read from the new database
/// once the copied table is loaded ([`KeyPool::fill`]). Its Debug shows no key.
pub struct KeyPool {
    /// The copied unit.
    pub table: QualifiedName,
    pub columns: Vec<String>,
    /// Row-major: row `r`'s column `i` is at `r * columns.len() + i`.
    values: OnceLock<Vec<String>>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("rows", &self.rows())
            .finish()
    }
}

impl KeyPool {
    fn new(table: QualifiedName, columns: Vec<String>) -> KeyPool {
        KeyPool {
            table,
            columns,
            values: OnceLock::new(),
        }
    }

    /// Sets the keys (row-major); the first call wins.
    pub fn fill(&self, values: Vec<String>) {
        let _ = self.values.set(values);
    }

    pub fn is_filled(&self) -> bool {
        self.values.get().is_some()
    }

    /// Keys held: 0 until filled.
    pub fn rows(&self) -> u64 {
        let width = self.columns.len().max(1);
        self.values.get().map_or(0, |v| (v.len() / width) as u64)
    }

    fn get(&self, row: u64, index: usize) -> Option<&str> {
        let width = self.columns.len();
        let at = usize::try_from(row)
            .ok()?
            .checked_mul(width)?
            .checked_add(index)?;
        self.values.get()?.get(at).map(String::as_str)
    }
}

#[derive(Debug)]
pub struct Model {
    pub tables: Vec<TableModel>,
    pub index: HashMap<QualifiedName, usize>,
    /// Hybrid mode: the keys of copied tables that generated tables reference.
    pub pools: Vec<KeyPool>,
    /// Per table: [`Model::waits_for_pools`].
    waits: Vec<bool>,
    /// What the plan decided that the report should say (capped row counts).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct TableModel {
    pub name: QualifiedName,
    pub partitioned: bool,
    /// Hybrid mode: copied from production, not generated (no columns, no foreign keys
    /// here; its rows are its plan's until its pools are read).
    pub copied: bool,
    pub rows: u64,
    /// Why this many rows, for the report.
    pub reason: String,
    pub columns: Vec<ColumnModel>,
    pub fks: Vec<FkModel>,
}

#[derive(Debug)]
pub struct ColumnModel {
    pub name: String,
    pub key: u64,
    pub source: Gen,
    pub null_frac: f64,
    /// Distinct inputs (production's `n_distinct`), none for as many as rows.
    pub distinct: Option<u64>,
}

#[derive(Debug)]
pub enum Gen {
    Unique(UniqueGen),
    /// Column `index` of foreign key `fk`: the parent's value at the picked row.
    Fk {
        fk: usize,
        index: usize,
    },
    Value(ValueGen),
}

#[derive(Debug)]
pub struct FkModel {
    pub name: String,
    pub parent: usize,
    pub parent_columns: Vec<usize>,
    pub pick: Pick,
    pub null_frac: f64,
    pub key: u64,
    /// Hybrid mode: the parent is copied; its keys come from this pool of [`Model::pools`].
    pub pool: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    /// Any parent row.
    Random,
    /// Parent row = this row (a unique foreign key: one child per parent).
    Same,
    /// Parent row = (row / div) % parent rows (one part of a key made of foreign keys),
    /// where div is the product of the parent rows of the table's earlier `Radix` keys
    /// (`order` 0, 1, …), computed when the row is made: a copied parent's rows are known
    /// only once its pool is read.
    Radix { order: usize },
}

impl Model {
    /// Writes the value of column `c` of table `t` at `row`; false for NULL.
    pub fn value(&self, t: usize, c: usize, row: u64, out: &mut String) -> bool {
        self.value_at(t, c, row, out, 0)
    }

    fn value_at(&self, t: usize, c: usize, row: u64, out: &mut String, depth: u32) -> bool {
        let table = &self.tables[t];
        let column = &table.columns[c];
        match &column.source {
            Gen::Unique(u) => {
                u.write(row, out);
                true
            }
            Gen::Fk { fk, index } => {
                let f = &table.fks[*fk];
                if f.null_frac > 0.0 && unit(hash(f.key, row, 1)) < f.null_frac {
                    return false;
                }
                let parent_rows = self.parent_rows(f);
                if parent_rows == 0 || depth > MAX_DEPTH {
                    return false;
                }
                let parent_row = match f.pick {
                    Pick::Random => hash(f.key, row, 2) % parent_rows,
                    Pick::Same => row % parent_rows,
                    Pick::Radix { order } => (row / self.radix_div(t, order).max(1)) % parent_rows,
                };
                if let Some(p) = f.pool {
                    return match self.pools[p].get(parent_row, *index) {
                        Some(v) => {
                            out.push_str(v);
                            true
                        }
                        None => false,
                    };
                }
                self.value_at(
                    f.parent,
                    f.parent_columns[*index],
                    parent_row,
                    out,
                    depth + 1,
                )
            }
            Gen::Value(v) => {
                if column.null_frac > 0.0 && unit(hash(column.key, row, 1)) < column.null_frac {
                    return false;
                }
                let input = match column.distinct {
                    Some(d) if d > 0 => row % d,
                    _ => row,
                };
                v.write(hash(column.key, input, 0), input, out)
            }
        }
    }

    /// The rows a foreign key picks among: its pool's (a copied parent) or the generated
    /// parent's.
    pub fn parent_rows(&self, f: &FkModel) -> u64 {
        self.parent_rows_at(f, 0)
    }

    fn parent_rows_at(&self, f: &FkModel, depth: u32) -> u64 {
        match f.pool {
            Some(p) => self.pools[p].rows(),
            None => self.rows_at(f.parent, depth + 1),
        }
    }

    /// The divisor of table `t`'s `Radix` key number `order`: the product of the parent
    /// rows of its earlier ones.
    fn radix_div(&self, t: usize, order: usize) -> u64 {
        self.tables[t]
            .fks
            .iter()
            .filter_map(|f| match f.pick {
                Pick::Radix { order: o } if o < order => Some(self.parent_rows(f).max(1)),
                _ => None,
            })
            .fold(1u64, |a, b| a.saturating_mul(b))
    }

    /// The rows table `t` gets: as planned, at most one per parent (or combination of
    /// parents) of a unique foreign key — known only once its pool is read for a copied
    /// parent.
    pub fn rows(&self, t: usize) -> u64 {
        self.rows_at(t, 0)
    }

    fn rows_at(&self, t: usize, depth: u32) -> u64 {
        let table = &self.tables[t];
        if depth > MAX_DEPTH || !self.waits[t] {
            return table.rows;
        }
        let mut rows = table.rows;
        let mut product: Option<u64> = None;
        for f in &table.fks {
            match f.pick {
                Pick::Same => rows = rows.min(self.parent_rows_at(f, depth)),
                Pick::Radix { .. } => {
                    product = Some(
                        product
                            .unwrap_or(1)
                            .saturating_mul(self.parent_rows_at(f, depth)),
                    )
                }
                Pick::Random => {}
            }
        }
        product.map_or(rows, |p| rows.min(p))
    }

    /// True when generated table `t` takes values (or its row count) from a copied table's
    /// keys, directly or through generated parents that do: it is loaded after the copied
    /// tables, once their pools are read.
    pub fn waits_for_pools(&self, t: usize) -> bool {
        self.waits[t]
    }

    /// True when what a copied table's reference remapped onto columns `columns` of
    /// generated table `t` gets depends on a copied table's keys: the row count of `t`, or
    /// the values of those columns (taken, through foreign keys, from a pool).
    pub fn key_waits_for_pools(&self, t: usize, columns: &[usize]) -> bool {
        self.rows_wait(t, 0) || columns.iter().any(|&c| self.value_waits(t, c, 0))
    }

    /// The row count of `t` depends on a pool (a unique foreign key into a copied table, or
    /// into a generated one whose count does).
    fn rows_wait(&self, t: usize, depth: u32) -> bool {
        depth <= MAX_DEPTH
            && self.tables[t].fks.iter().any(|f| {
                !matches!(f.pick, Pick::Random)
                    && (f.pool.is_some() || self.rows_wait(f.parent, depth + 1))
            })
    }

    fn value_waits(&self, t: usize, c: usize, depth: u32) -> bool {
        if depth > MAX_DEPTH {
            return true;
        }
        let Some(column) = self.tables[t].columns.get(c) else {
            return false;
        };
        let Gen::Fk { fk, index } = &column.source else {
            return false;
        };
        let f = &self.tables[t].fks[*fk];
        if f.pool.is_some() || self.rows_wait(f.parent, depth + 1) {
            return true;
        }
        if matches!(f.pick, Pick::Radix { .. })
            && self.tables[t].fks.iter().any(|o| {
                matches!(o.pick, Pick::Radix { .. })
                    && (o.pool.is_some() || self.rows_wait(o.parent, depth + 1))
            })
        {
            return true;
        }
        self.value_waits(f.parent, f.parent_columns[*index], depth + 1)
    }

    /// [`Model::waits_for_pools`] of every table, to a fixed point.
    fn waiting(tables: &[TableModel]) -> Vec<bool> {
        let mut waits = vec![false; tables.len()];
        for _ in 0..=tables.len() {
            let mut changed = false;
            for (t, table) in tables.iter().enumerate() {
                if waits[t] || table.copied {
                    continue;
                }
                if table
                    .fks
                    .iter()
                    .any(|f| f.pool.is_some() || waits[f.parent])
                {
                    waits[t] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        waits
    }

    /// True when the value of column `c` of table `t` is a chain of keys deeper than
    /// [`MAX_DEPTH`] (foreign keys that loop through key columns).
    fn too_deep(&self, t: usize, c: usize) -> bool {
        let (mut t, mut c) = (t, c);
        for _ in 0..=MAX_DEPTH {
            match &self.tables[t].columns[c].source {
                Gen::Fk { fk, index } => {
                    let f = &self.tables[t].fks[*fk];
                    if f.pool.is_some() {
                        return false;
                    }
                    (t, c) = (f.parent, f.parent_columns[*index]);
                }
                _ => return false,
            }
        }
        true
    }
}

/// The units of generation: every table that is not a partition (a partitioned table is one).
pub fn units(catalog: &Catalog) -> Vec<QualifiedName> {
    catalog
        .tables
        .values()
        .filter(|t| t.parent.is_none())
        .map(|t| t.name.clone())
        .collect()
}

/// Plans every table; all problems at once.
pub fn plan(inputs: &Inputs<'_>) -> Result<Model, Vec<String>> {
    let catalog = inputs.catalog;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let names = units(catalog);
    let index: HashMap<QualifiedName, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();

    // Rows: `rows:`, else the base × scale.
    let mut rows: Vec<u64> = Vec::new();
    let mut reasons = Vec::new();
    for name in &names {
        if let Some(&n) = inputs.copied.get(name) {
            rows.push(n);
            reasons.push("copied from production".to_string());
            continue;
        }
        let spec = inputs.specs.get(name);
        let base: u64 = match catalog.table(name) {
            Some(t) if t.kind == TableKind::Partitioned => catalog
                .leaves(name)
                .iter()
                .map(|l| inputs.base_rows.get(&l.name).copied())
                .try_fold(0u64, |sum, r| r.map(|r| sum + r))
                .unwrap_or(inputs.default_rows),
            _ => inputs
                .base_rows
                .get(name)
                .copied()
                .unwrap_or(inputs.default_rows),
        };
        match spec.and_then(|s| s.rows) {
            Some(n) => {
                rows.push(n);
                reasons.push(format!("synthetic: rows {n}"));
            }
            None => {
                let n = (base as f64 * inputs.scale).round() as u64;
                rows.push(n);
                reasons.push(format!("synthetic: {base} × scale {}", inputs.scale));
            }
        }
    }

    // Which foreign keys each unit has.
    let mut fk_lists: Vec<Vec<FkModel>> = names.iter().map(|_| Vec::new()).collect();
    let mut fk_of_column: Vec<HashMap<String, (usize, usize)>> =
        names.iter().map(|_| HashMap::new()).collect();
    let mut seen_fk = BTreeSet::new();
    let mut pools: Vec<KeyPool> = Vec::new();
    for fk in &catalog.foreign_keys {
        let child = catalog.root_of(&fk.table);
        let parent = catalog.root_of(&fk.referenced);
        let (Some(&ci), Some(&pi)) = (index.get(&child), index.get(&parent)) else {
            continue;
        };
        // A copied table's references are the refresh's (or remapped onto generated
        // parents: `super::remap`), not the model's.
        if inputs.copied.contains_key(&child) {
            continue;
        }
        // One key per (columns, parent, parent's columns): the same foreign key declared on
        // every partition (or twice) is kept once.
        if !seen_fk.insert((
            child.clone(),
            fk.columns.clone(),
            parent.clone(),
            fk.referenced_columns.clone(),
        )) {
            continue;
        }
        let Some(parent_table) = catalog.table(&parent) else {
            continue;
        };
        let parent_copy: Vec<&Column> = parent_table.copy_columns().collect();
        let mut parent_columns = Vec::new();
        for pc in &fk.referenced_columns {
            match parent_copy.iter().position(|c| &c.name == pc) {
                Some(i) => parent_columns.push(i),
                None => problems.push(format!(
                    "{child}: foreign key {}: the referenced column {parent}.{pc} is not one COPY writes (generated?)",
                    fk.name
                )),
            }
        }
        if parent_columns.len() != fk.columns.len() {
            continue;
        }
        // A copied parent: its keys as loaded, one pool per (table, columns).
        let pool = inputs.copied.contains_key(&parent).then(|| {
            match pools
                .iter()
                .position(|p| p.table == parent && p.columns == fk.referenced_columns)
            {
                Some(p) => p,
                None => {
                    pools.push(KeyPool::new(parent.clone(), fk.referenced_columns.clone()));
                    pools.len() - 1
                }
            }
        });
        if pool.is_some() {
            parent_columns = (0..fk.columns.len()).collect();
        }
        let fi = fk_lists[ci].len();
        for (k, column) in fk.columns.iter().enumerate() {
            if let Some((other, _)) = fk_of_column[ci].get(column) {
                problems.push(format!(
                    "{child}.{column} is in two foreign keys ({} and {}): generated values can keep only one; give it a `generate:` rule or leave one out",
                    fk_lists[ci][*other].name, fk.name
                ));
                continue;
            }
            fk_of_column[ci].insert(column.clone(), (fi, k));
        }
        let nullable = fk.columns.iter().all(|c| {
            catalog
                .table(&child)
                .and_then(|t| t.column(c))
                .is_some_and(|c| !c.not_null)
        });
        let null_frac = if nullable {
            fk.columns
                .first()
                .and_then(|c| inputs.stats.get(&(child.clone(), c.clone())))
                .map(|s| s.null_frac)
                .unwrap_or(DEFAULT_NULL_FRACTION)
        } else {
            0.0
        };
        fk_lists[ci].push(FkModel {
            name: fk.name.clone(),
            parent: pi,
            parent_columns,
            pick: Pick::Random,
            null_frac,
            key: key_of(&["fk", &inputs.seed.to_string(), &child.to_string(), &fk.name]),
            pool,
        });
    }

    // Checks per column (table checks and domain checks), and the unsupported ones.
    let mut allowed: HashMap<(QualifiedName, String), Allowed> = HashMap::new();
    let mut unsupported: Vec<(QualifiedName, Vec<String>, String, String)> = Vec::new();
    for (table, column, a) in &inputs.partition_bounds {
        merge(
            allowed.entry((table.clone(), column.clone())).or_default(),
            a.clone(),
        );
    }
    for (table, name, expression, columns) in &inputs.checks {
        let unit_name = catalog.root_of(table);
        if inputs.copied.contains_key(&unit_name) {
            continue;
        }
        match check::parse(expression) {
            Ok(per_column) => {
                for (column, a) in per_column {
                    merge(allowed.entry((unit_name.clone(), column)).or_default(), a);
                }
            }
            Err(check::Unsupported(why)) => {
                unsupported.push((
                    unit_name,
                    columns.clone(),
                    name.clone(),
                    format!("{expression}: {why}"),
                ));
            }
        }
    }
    for (table, column, domain, name, expression) in &inputs.domain_checks {
        let unit_name = catalog.root_of(table);
        if inputs.copied.contains_key(&unit_name) {
            continue;
        }
        match check::parse(expression) {
            Ok(per_column) => {
                for (_, a) in per_column {
                    merge(
                        allowed
                            .entry((unit_name.clone(), column.clone()))
                            .or_default(),
                        a,
                    );
                }
            }
            Err(check::Unsupported(why)) => unsupported.push((
                unit_name,
                vec![column.clone()],
                format!("{name} (of domain {domain})"),
                format!("{expression}: {why}"),
            )),
        }
    }
    for (table, columns, name, why) in &unsupported {
        let covered = inputs
            .specs
            .get(table)
            .is_some_and(|s| columns.iter().any(|c| s.generate.contains_key(c)));
        if !covered {
            problems.push(format!(
                "{table}: CHECK constraint {name} cannot be kept by generated values ({why}); give its column{} a generator in a rules file (`synthetic: {{ {table}: {{ generate: {{ {}: {{ values: [...] }} }} }} }}`)",
                if columns.len() == 1 { "" } else { "s" },
                columns.first().map(String::as_str).unwrap_or("column")
            ));
        }
    }

    // Columns.
    let mut tables = Vec::new();
    for (ti, name) in names.iter().enumerate() {
        let Some(table) = catalog.table(name) else {
            continue;
        };
        if inputs.copied.contains_key(name) {
            tables.push(TableModel {
                name: name.clone(),
                partitioned: table.kind == TableKind::Partitioned,
                copied: true,
                rows: rows[ti],
                reason: reasons[ti].clone(),
                columns: Vec::new(),
                fks: Vec::new(),
            });
            continue;
        }
        let spec = inputs.specs.get(name);
        let copy: Vec<&Column> = table.copy_columns().collect();
        let mut gens: Vec<Option<Gen>> = copy.iter().map(|_| None).collect();
        let mut unique_cols = BTreeSet::new();
        let fks = &mut fk_lists[ti];
        // Foreign key columns.
        for (ci, column) in copy.iter().enumerate() {
            if spec.is_some_and(|s| s.generate.contains_key(&column.name)) {
                continue;
            }
            if let Some(&(fk, k)) = fk_of_column[ti].get(&column.name) {
                gens[ci] = Some(Gen::Fk { fk, index: k });
            }
        }
        // Unique keys.
        let mut radix_order = 0usize;
        for key in &table.unique_keys {
            if key.iter().any(|c| unique_cols.contains(c)) {
                continue;
            }
            if key
                .iter()
                .any(|c| spec.is_some_and(|s| s.generate.contains_key(c)))
            {
                // The user's generator: trusted.
                continue;
            }
            let fk_groups: BTreeSet<usize> = key
                .iter()
                .filter_map(|c| fk_of_column[ti].get(c).map(|(f, _)| *f))
                .collect();
            let all_fk = key.iter().all(|c| fk_of_column[ti].contains_key(c));
            // A key that is exactly one foreign key: one child per parent.
            if all_fk && fk_groups.len() == 1 {
                let f = *fk_groups.iter().next().unwrap_or(&0);
                if fks[f].columns_match(key, &fk_of_column[ti]) {
                    fks[f].pick = Pick::Same;
                    fks[f].null_frac = 0.0;
                    key.iter().for_each(|c| {
                        unique_cols.insert(c.clone());
                    });
                    continue;
                }
            }
            // Integers first (a date or timestamp made unique by the row crowds into the
            // first partition of a range), then uuids and text, then the others.
            let candidate = key
                .iter()
                .filter(|c| {
                    !fk_of_column[ti].contains_key(*c)
                        && copy.iter().find(|col| &&col.name == c).is_some_and(|col| {
                            unique_capable(col, allowed.get(&(name.clone(), (*c).clone())))
                        })
                })
                .min_by_key(|c| {
                    copy.iter()
                        .find(|col| &&col.name == c)
                        .map(|col| match col.ty.kind {
                            TypeKind::Int | TypeKind::Numeric | TypeKind::Float => 0,
                            TypeKind::Uuid | TypeKind::Text => 1,
                            _ => 2,
                        })
                        .unwrap_or(3)
                });
            if let Some(c) = candidate {
                unique_cols.insert(c.clone());
                continue;
            }
            if all_fk {
                for f in fk_groups {
                    fks[f].pick = Pick::Radix { order: radix_order };
                    fks[f].null_frac = 0.0;
                    radix_order += 1;
                }
                key.iter().for_each(|c| {
                    unique_cols.insert(c.clone());
                });
                continue;
            }
            problems.push(format!(
                "{name}: unique key ({}) has no column a distinct value can be made for (booleans, enums, IN-lists, arrays); give one a `generate:` rule",
                key.join(", ")
            ));
        }
        let mut columns = Vec::new();
        for (ci, column) in copy.iter().enumerate() {
            let col_key = key_of(&[
                "column",
                &inputs.seed.to_string(),
                &name.to_string(),
                &column.name,
            ]);
            let a = allowed
                .get(&(name.clone(), column.name.clone()))
                .cloned()
                .unwrap_or_default();
            let stats = inputs.stats.get(&(name.clone(), column.name.clone()));
            let ruled = inputs.ruled.contains(&(name.clone(), column.name.clone()));
            let mut null_frac = 0.0;
            let mut distinct = None;
            let made = if let Some((value, at)) = spec.and_then(|s| s.generate.get(&column.name)) {
                match user_gen(value, column) {
                    Ok(g) => Gen::Value(g),
                    Err(e) => {
                        problems.push(format!(
                            "{at}: synthetic.{name}.generate.{}: {e}",
                            column.name
                        ));
                        Gen::Value(ValueGen::Null)
                    }
                }
            } else if let Some(g) = gens[ci].take() {
                g
            } else if unique_cols.contains(&column.name) {
                match unique_gen(name, column, &a, rows[ti], inputs.seed) {
                    Ok(u) => Gen::Unique(u),
                    Err(e) => {
                        problems.push(format!("{name}.{}: {e}", column.name));
                        Gen::Value(ValueGen::Null)
                    }
                }
            } else {
                if !column.not_null && !a.not_null {
                    null_frac = stats.map(|s| s.null_frac).unwrap_or(DEFAULT_NULL_FRACTION);
                }
                if let Some(s) = stats {
                    distinct = match s.n_distinct {
                        d if d > 0.0 => Some(d.round() as u64),
                        d if d < 0.0 => Some(((-d) * rows[ti] as f64).round().max(1.0) as u64),
                        _ => None,
                    };
                }
                let personal =
                    ruled || crate::pii::classify_name(&column.name, &column.ty.kind).is_some();
                match value_gen(column, &a, if personal { None } else { stats }) {
                    Ok(g) => {
                        if matches!(g, ValueGen::Null) && column.not_null {
                            problems.push(format!(
                                "{name}.{}: no generator for type {} and the column is NOT NULL; give it a `generate:` rule",
                                column.name, column.ty.name
                            ));
                        }
                        Gen::Value(g)
                    }
                    Err(e) => {
                        problems.push(format!("{name}.{}: {e}", column.name));
                        Gen::Value(ValueGen::Null)
                    }
                }
            };
            columns.push(ColumnModel {
                name: column.name.clone(),
                key: col_key,
                source: made,
                null_frac,
                distinct,
            });
        }
        for fk in fks.iter() {
            if rows[fk.parent] == 0 && fk.null_frac == 0.0 && rows[ti] > 0 {
                let nullable = fk.columns_nullable(&columns);
                if nullable {
                    continue;
                }
                problems.push(format!(
                    "{name}: foreign key {} references {}, which gets no rows, and its columns are NOT NULL; give {} rows (`rows:`) or {name} `rows: 0`",
                    fk.name, names[fk.parent], names[fk.parent]
                ));
            }
        }
        tables.push(TableModel {
            name: name.clone(),
            partitioned: table.kind == TableKind::Partitioned,
            copied: false,
            rows: rows[ti],
            reason: reasons[ti].clone(),
            columns,
            fks: std::mem::take(fks),
        });
    }
    // Caps: a child with one row per parent (or per combination of parents) gets at most
    // that many rows; parents may be capped too, so until nothing changes.
    for _ in 0..tables.len().max(1) {
        let mut changed = false;
        for t in 0..tables.len() {
            let mut cap: Option<u64> = None;
            let mut product = 1u64;
            let mut radix = false;
            for fk in &tables[t].fks {
                match fk.pick {
                    Pick::Same => {
                        let p = tables[fk.parent].rows;
                        cap = Some(cap.map_or(p, |c| c.min(p)));
                    }
                    Pick::Radix { .. } => {
                        radix = true;
                        product = product.saturating_mul(tables[fk.parent].rows);
                    }
                    Pick::Random => {}
                }
            }
            if radix {
                cap = Some(cap.map_or(product, |c| c.min(product)));
            }
            if let Some(cap) = cap
                && tables[t].rows > cap
            {
                warnings.push(format!(
                    "{}: {} rows planned, {cap} made: its unique key is made of foreign keys, one row per parent (combination)",
                    tables[t].name, tables[t].rows
                ));
                tables[t].rows = cap;
                tables[t]
                    .reason
                    .push_str(&format!(", capped at {cap} by a unique foreign key"));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let waits = Model::waiting(&tables);
    let model = Model {
        tables,
        index,
        pools,
        waits,
        warnings,
    };
    for (t, table) in model.tables.iter().enumerate() {
        for c in 0..table.columns.len() {
            if model.too_deep(t, c) {
                problems.push(format!(
                    "{}.{}: its foreign keys loop through key columns (a key that is its own parent's key): give it a `generate:` rule",
                    table.name, table.columns[c].name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(problems)
    }
}

impl FkModel {
    fn columns_match(&self, key: &[String], of_column: &HashMap<String, (usize, usize)>) -> bool {
        key.len() == self.parent_columns.len()
            && key.iter().all(|c| {
                of_column
                    .get(c)
                    .is_some_and(|(_, k)| *k < self.parent_columns.len())
            })
    }

    fn columns_nullable(&self, _columns: &[ColumnModel]) -> bool {
        self.null_frac > 0.0
    }
}

fn merge(into: &mut Allowed, a: Allowed) {
    if a.lo.is_some() {
        into.lo = a.lo;
    }
    if a.hi.is_some() {
        into.hi = a.hi;
    }
    if let Some(only) = a.only {
        into.only = Some(match into.only.take() {
            Some(before) => before.into_iter().filter(|v| only.contains(v)).collect(),
            None => only,
        });
    }
    into.not.extend(a.not);
    into.like.extend(a.like);
    if a.max_len.is_some() {
        into.max_len = a.max_len;
    }
    if a.min_len.is_some() {
        into.min_len = a.min_len;
    }
    into.not_null |= a.not_null;
}

fn unique_capable(column: &Column, allowed: Option<&Allowed>) -> bool {
    if column.ty.array || allowed.is_some_and(|a| a.only.is_some()) {
        return false;
    }
    matches!(
        column.ty.kind,
        TypeKind::Int
            | TypeKind::Numeric
            | TypeKind::Float
            | TypeKind::Text
            | TypeKind::Uuid
            | TypeKind::Date
            | TypeKind::Timestamp
            | TypeKind::TimestampTz
            | TypeKind::Bytea
            | TypeKind::Inet
    )
}

/// The largest integer a column of this type holds.
fn int_max(column: &Column) -> i64 {
    let name = column.ty.name.as_str();
    if name.starts_with("smallint") {
        i16::MAX as i64
    } else if name.starts_with("integer") || name == "int" || name.starts_with("int4") {
        i32::MAX as i64
    } else {
        i64::MAX
    }
}

/// `numeric(p,s)`: (p, s).
fn numeric_precision(name: &str) -> Option<(u32, u32)> {
    let inner = name.split_once('(')?.1.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn unique_gen(
    table: &QualifiedName,
    column: &Column,
    allowed: &Allowed,
    rows: u64,
    seed: u64,
) -> Result<UniqueGen, String> {
    let too_many = |max: u64| {
        format!(
            "a unique column of type {} holds at most {max} distinct values here, and {rows} rows are planned",
            column.ty.name
        )
    };
    match column.ty.kind {
        TypeKind::Int | TypeKind::Numeric | TypeKind::Float => {
            let (lo, hi) = allowed.int_range();
            let start = lo.unwrap_or(1);
            let mut max = hi.unwrap_or(i64::MAX).min(int_max(column));
            if let Some((p, s)) = numeric_precision(&column.ty.name)
                && p > s
                && p - s < 19
            {
                max = max.min(10i64.pow(p - s) - 1);
            }
            if (max as i128 - start as i128 + 1) < rows as i128 {
                return Err(too_many((max as i128 - start as i128 + 1).max(0) as u64));
            }
            Ok(UniqueGen::Int { start })
        }
        TypeKind::Text => {
            let digits = values::base36(rows.max(1)).len();
            let email = crate::pii::classify_name(&column.name, &column.ty.kind)
                .is_some_and(|f| f.category == crate::pii::Category::Email);
            let max_len = allowed
                .max_len
                .into_iter()
                .chain(column.ty.max_len)
                .min()
                .unwrap_or(usize::MAX);
            let (mut prefix, mut suffix) = if email {
                ("user".to_string(), "@example.com".to_string())
            } else {
                (String::new(), String::new())
            };
            if let Some(pattern) = allowed.like.first() {
                let pieces: Vec<&str> = pattern.split('%').collect();
                prefix = pieces[0].to_string();
                suffix = pieces[1..].join("x");
            }
            if prefix.len() + digits + suffix.len() > max_len {
                if email || !allowed.like.is_empty() {
                    return Err(too_many(36u64.saturating_pow(
                        max_len.saturating_sub(prefix.len() + suffix.len()) as u32,
                    )));
                }
                prefix.clear();
                if digits > max_len {
                    return Err(too_many(36u64.saturating_pow(max_len as u32)));
                }
            }
            let pad = allowed
                .min_len
                .unwrap_or(0)
                .saturating_sub(prefix.len() + suffix.len());
            Ok(UniqueGen::Text {
                prefix,
                suffix,
                pad: pad.max(1),
            })
        }
        TypeKind::Uuid => Ok(UniqueGen::Uuid {
            table: key_of(&[
                "unique-key",
                &seed.to_string(),
                &table.to_string(),
                &column.name,
            ]),
        }),
        TypeKind::Date => {
            let start = allowed
                .text_bounds()
                .0
                .and_then(|t| values::parse_date(&t))
                .unwrap_or_else(|| values::parse_date("2000-01-01").unwrap_or(0));
            Ok(UniqueGen::Date { start })
        }
        TypeKind::Timestamp | TypeKind::TimestampTz => {
            let start = allowed
                .text_bounds()
                .0
                .and_then(|t| values::parse_timestamp(&t))
                .unwrap_or(1_577_836_800);
            Ok(UniqueGen::Timestamp {
                start,
                tz: column.ty.kind == TypeKind::TimestampTz,
            })
        }
        TypeKind::Bytea => Ok(UniqueGen::Bytea),
        TypeKind::Inet => Ok(UniqueGen::Inet),
        _ => Err(format!(
            "a unique column of type {} cannot be generated; give it a `generate:` rule",
            column.ty.name
        )),
    }
}

/// The generator of a column with no rule of its own: CHECKs first, then statistics, then
/// its type (and name).
fn value_gen(
    column: &Column,
    allowed: &Allowed,
    stats: Option<&ColumnStats>,
) -> Result<ValueGen, String> {
    if let Some(choices) = allowed.choices() {
        return if choices.is_empty() {
            Err("no value satisfies its CHECK constraints".into())
        } else {
            Ok(wrap_array(column, ValueGen::Choice(choices)))
        };
    }
    let mut base = type_gen(column, allowed)?;
    let Some(stats) = stats.filter(|_| !column.ty.array && column.ty.kind != TypeKind::Bytea)
    else {
        return Ok(wrap_array(column, base));
    };
    // Documents in production's shape; histogram bounds of documents (their text order) say
    // nothing a generator could use.
    if let Some(shape) = &stats.json_shape {
        base = ValueGen::Shaped(shape.clone());
    }
    let histogram = stats.histogram.len() >= 2 && stats.json_shape.is_none();
    let numeric = matches!(
        column.ty.kind,
        TypeKind::Int | TypeKind::Numeric | TypeKind::Float | TypeKind::Date
    );
    let rest = if histogram {
        ValueGen::Histogram {
            bounds: stats.histogram.clone(),
            numeric,
        }
    } else {
        base
    };
    if stats.most_common.is_empty() || stats.most_common.len() != stats.most_common_freqs.len() {
        return Ok(rest);
    }
    // Frequencies are of all rows; NULLs are decided before.
    let non_null = (1.0 - stats.null_frac).max(1e-9);
    let mut sum = 0.0;
    let cumulative = stats
        .most_common_freqs
        .iter()
        .map(|f| {
            sum += f / non_null;
            sum
        })
        .collect();
    Ok(ValueGen::Common {
        values: stats.most_common.clone(),
        cumulative,
        rest: Box::new(rest),
    })
}

fn wrap_array(column: &Column, element: ValueGen) -> ValueGen {
    if column.ty.array {
        ValueGen::Array(Box::new(element))
    } else {
        element
    }
}

fn type_gen(column: &Column, allowed: &Allowed) -> Result<ValueGen, String> {
    Ok(match &column.ty.kind {
        TypeKind::Int => {
            let (lo, hi) = allowed.int_range();
            let max = int_max(column);
            let lo = lo.unwrap_or(if hi.is_some_and(|h| h < 1) {
                i64::MIN / 2
            } else {
                1
            });
            let hi = hi.unwrap_or(lo.saturating_add(9_999).min(max)).min(max);
            if lo > hi {
                return Err("no integer satisfies its CHECK constraints".into());
            }
            ValueGen::Int { lo, hi }
        }
        TypeKind::Numeric | TypeKind::Float => {
            let scale = match column.ty.kind {
                TypeKind::Numeric => Some(
                    numeric_precision(&column.ty.name)
                        .map(|(_, s)| s)
                        .unwrap_or(2),
                ),
                _ => None,
            };
            let step = scale.map(|s| 10f64.powi(-(s as i32))).unwrap_or(1e-9);
            let (lo, hi) = allowed.real_range(step);
            let mut cap = f64::MAX;
            if let Some((p, s)) = numeric_precision(&column.ty.name) {
                cap = 10f64.powi(p as i32 - s as i32) - step;
            }
            let lo = lo.unwrap_or(0.0);
            let hi = hi.unwrap_or((lo + 1000.0).min(cap)).min(cap);
            if lo > hi {
                return Err("no number satisfies its CHECK constraints".into());
            }
            ValueGen::Real { lo, hi, scale }
        }
        TypeKind::Bool => ValueGen::Bool,
        TypeKind::Date => {
            let (lo, hi) = allowed.text_bounds();
            let lo = lo
                .and_then(|t| values::parse_date(&t))
                .unwrap_or_else(|| values::parse_date("2015-01-01").unwrap_or(0));
            let hi = hi
                .and_then(|t| values::parse_date(&t))
                .map(|h| {
                    if allowed.hi.as_ref().is_some_and(|(_, inc)| !inc) {
                        h - 1
                    } else {
                        h
                    }
                })
                .unwrap_or(lo + 3650);
            ValueGen::Date { lo, hi }
        }
        TypeKind::Timestamp | TypeKind::TimestampTz => {
            let (lo, hi) = allowed.text_bounds();
            let lo = lo
                .and_then(|t| values::parse_timestamp(&t))
                .unwrap_or(1_420_070_400);
            let hi = hi
                .and_then(|t| values::parse_timestamp(&t))
                .map(|h| h - 1)
                .unwrap_or(lo + 10 * 365 * 86_400);
            ValueGen::Timestamp {
                lo,
                hi,
                tz: column.ty.kind == TypeKind::TimestampTz,
            }
        }
        TypeKind::Time => ValueGen::Time,
        TypeKind::Interval => ValueGen::Interval,
        TypeKind::Json | TypeKind::Jsonb => ValueGen::Json,
        TypeKind::Uuid => ValueGen::Uuid,
        TypeKind::Inet => ValueGen::Inet,
        TypeKind::Cidr => ValueGen::Cidr,
        TypeKind::MacAddr => ValueGen::Mac,
        TypeKind::Bytea => ValueGen::Bytea,
        TypeKind::TsVector => ValueGen::TsVector,
        TypeKind::Enum => ValueGen::Choice(column.ty.enum_labels.clone()),
        TypeKind::Text => {
            let max_len = allowed.max_len.into_iter().chain(column.ty.max_len).min();
            ValueGen::Text {
                max_len,
                min_len: allowed.min_len.unwrap_or(0),
                like: allowed.like.clone(),
            }
        }
        TypeKind::Other(_) => ValueGen::Null,
    })
}

/// A `generate:` rule: `{ values: [...] }`, `{ range: [lo, hi] }`, `{ constant: v }`,
/// `{ format: "ORD-{row}" }` or `{ null: true }`.
fn user_gen(value: &serde_yaml::Value, column: &Column) -> Result<ValueGen, String> {
    let map = value
        .as_mapping()
        .ok_or("expected a mapping: values, range, constant, format or null")?;
    if map.len() != 1 {
        return Err("give exactly one of values, range, constant, format, null".into());
    }
    let (k, v) = map.iter().next().ok_or("empty")?;
    // `null:` reads as the YAML null, not as a string.
    let k = if k.is_null() {
        "null"
    } else {
        k.as_str().unwrap_or("")
    };
    let made = match k {
        "values" => {
            let items = v.as_sequence().ok_or("values: expected a list")?;
            if items.is_empty() {
                return Err("values: the list is empty".into());
            }
            ValueGen::Choice(items.iter().map(scalar_text).collect::<Result<_, _>>()?)
        }
        "constant" => ValueGen::Const(scalar_text(v)?),
        "format" => ValueGen::Format(v.as_str().ok_or("format: expected a string")?.to_string()),
        "null" => {
            if column.not_null {
                return Err("null: the column is NOT NULL".into());
            }
            ValueGen::Null
        }
        "range" => {
            let items = v.as_sequence().ok_or("range: expected [low, high]")?;
            let [lo, hi] = items.as_slice() else {
                return Err("range: expected [low, high]".into());
            };
            let (lo, hi) = (scalar_text(lo)?, scalar_text(hi)?);
            match column.ty.kind {
                TypeKind::Int => ValueGen::Int {
                    lo: lo.parse().map_err(|_| "range: not integers")?,
                    hi: hi.parse().map_err(|_| "range: not integers")?,
                },
                TypeKind::Numeric | TypeKind::Float => ValueGen::Real {
                    lo: lo.parse().map_err(|_| "range: not numbers")?,
                    hi: hi.parse().map_err(|_| "range: not numbers")?,
                    scale: numeric_precision(&column.ty.name).map(|(_, s)| s),
                },
                TypeKind::Date => ValueGen::Date {
                    lo: values::parse_date(&lo).ok_or("range: not dates")?,
                    hi: values::parse_date(&hi).ok_or("range: not dates")?,
                },
                TypeKind::Timestamp | TypeKind::TimestampTz => ValueGen::Timestamp {
                    lo: values::parse_timestamp(&lo).ok_or("range: not timestamps")?,
                    hi: values::parse_timestamp(&hi).ok_or("range: not timestamps")?,
                    tz: column.ty.kind == TypeKind::TimestampTz,
                },
                _ => return Err(format!("range: not for type {}", column.ty.name)),
            }
        }
        other => {
            return Err(format!(
                "unknown generator `{other}` (values, range, constant, format, null)"
            ));
        }
    };
    Ok(made)
}

/// A YAML scalar as the text PostgreSQL reads; a mapping or list as JSON (a json template).
fn scalar_text(v: &serde_yaml::Value) -> Result<String, String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => return Err("a value is null (use `null: true`)".into()),
        other => serde_json::to_string(other).map_err(|e| e.to_string())?,
    })
}
