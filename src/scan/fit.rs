//! Proposals that pass as they are: after the findings are judged column by column, the
//! proposals are fitted to the schema around them, so that `scan --write` followed by
//! `refresh` loads, passes strict mode and passes verification without an edit.
//!
//! - **Unique keys** (primary keys, unique constraints and indexes, composite, partial and
//!   expression ones such as `UNIQUE (lower(name))`): every column a key reads gets a rule
//!   with `unique: true`, or a keyed `hash` with `unique: true` when its transform cannot
//!   promise distinct outputs ([`unique_columns`], used when the findings are judged).
//!   A column in an exclusion constraint gets no rule (its operators cannot be reasoned
//!   about): it is listed as a comment.
//! - **Foreign keys**: both sides of every foreign key get the same rule, the referenced
//!   column's, with `unique` set by each side's own keys; a side without a finding gets one
//!   that says why ([`settle`]).
//! - **Strict mode**: it judges names alone. A column of a ruled table whose name it would
//!   refuse unruled gets its finding written even when low (or `keep`, with the reason, when
//!   its type cannot hold what its name says: `emailed_at timestamptz`).
//! - **tsvector columns** on a table with rules would carry the original words: `set_null`
//!   (or the empty tsvector when NOT NULL), with a comment on `search.tsvector`, unless
//!   restage.yaml already recomputes them.
//! - **Lengths, domains and CHECKs** ([`gate`]): a proposal for a `char(n)`/`varchar(n)`
//!   column, a column of a domain with a CHECK, or a column a table CHECK reads, is tried
//!   on up to [`GATE_ROWS`] sampled values: transformed (in memory, with a throw-away key),
//!   measured against n, then cast to the column's type and put to the table's CHECKs in
//!   one read-only query on the source (nothing is written). The first of the proposal, a
//!   keyed `hash` cut to n, and NULL (or a constant of the type) that passes is written;
//!   when none does, the finding is listed as a comment saying why. So `country` on a
//!   `char(2)` is not written (it would give `Wa`), and a zip domain with a CHECK never gets
//!   `phone`. Known gap: CHECKs of a partitioned table are put to the cast only.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::catalog::{Catalog, Column, Constraints, IndexKind, QualifiedName, TableKind, TypeKind};
use crate::db::quote_ident;
use crate::pii::{Category, Level, classify_name, personal_name};
use crate::secret::Secret;
use crate::transform::registry;
use crate::transform::{Catalogue, ColumnInfo, Output};

use super::findings::{Coverage, Finding};
use super::propose::{self, Param, Proposal, Target};

/// Values a proposal is tried on by [`gate`].
pub const GATE_ROWS: usize = 200;

type Key = (QualifiedName, String);

/// The columns every unique key (plain or expression, partial or not) reads, under the
/// table scan reports them on (a partition's under its root).
pub fn unique_columns(catalog: &Catalog, constraints: &Constraints) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for index in constraints
        .unique
        .iter()
        .filter(|i| i.kind != IndexKind::Exclusion)
    {
        let root = catalog.root_of(&index.table);
        for c in index.columns.iter().chain(&index.expression_columns) {
            out.insert((root.clone(), c.clone()));
        }
    }
    out
}

/// The columns an exclusion constraint reads.
pub fn exclusion_columns(catalog: &Catalog, constraints: &Constraints) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for index in constraints
        .unique
        .iter()
        .filter(|i| i.kind == IndexKind::Exclusion)
    {
        let root = catalog.root_of(&index.table);
        for c in index.columns.iter().chain(&index.expression_columns) {
            out.insert((root.clone(), c.clone()));
        }
    }
    out
}

/// What [`settle`] needs to know about the schema and the rules already written.
pub struct Schema<'a> {
    pub catalog: &'a Catalog,
    pub unique: &'a BTreeSet<Key>,
    pub exclusion: &'a BTreeSet<Key>,
    /// The coverage of a column by the rules already written (root table, column).
    pub coverage: &'a dyn Fn(&QualifiedName, &str) -> Coverage,
    /// tsvector columns restage.yaml recomputes (`search.tsvector`).
    pub recomputed: &'a BTreeSet<Key>,
}

impl Schema<'_> {
    fn column(&self, table: &QualifiedName, column: &str) -> Option<&Column> {
        self.catalog.table(table)?.column(column)
    }

    fn is_unique(&self, table: &QualifiedName, column: &str) -> bool {
        self.unique.contains(&(table.clone(), column.to_string()))
    }

    fn uncovered(&self, table: &QualifiedName, column: &str) -> bool {
        (self.coverage)(table, column) != Coverage::Covered
    }
}

fn whole_index(found: &[Finding]) -> BTreeMap<Key, usize> {
    found
        .iter()
        .enumerate()
        .filter(|(_, f)| f.path.is_none())
        .map(|(i, f)| ((f.table.clone(), f.column.clone()), i))
        .collect()
}

fn new_finding(
    table: &QualifiedName,
    column: &str,
    category: Category,
    confidence: f32,
    evidence: Vec<String>,
    proposed: Proposal,
) -> Finding {
    Finding {
        table: table.clone(),
        column: column.to_string(),
        path: None,
        category,
        confidence,
        level: Level::of(confidence).unwrap_or(Level::Low),
        evidence,
        proposed,
        covered_by: None,
        written: true,
        not_written: None,
    }
}

/// Fits the findings to the keys, foreign keys, strict mode and tsvectors of the schema (see
/// the module doc). Pure: the catalogue and the constraints were read before.
pub fn settle(found: &mut Vec<Finding>, schema: &Schema<'_>) {
    // Exclusion constraints: no rule can be shown to keep them.
    for f in found.iter_mut().filter(|f| f.path.is_none() && f.written) {
        if schema
            .exclusion
            .contains(&(f.table.clone(), f.column.clone()))
        {
            f.written = false;
            f.not_written = Some(
                "the column is in an exclusion constraint, which a rule would break: keep it, or rule it by hand"
                    .to_string(),
            );
        }
    }
    foreign_keys(found, schema);
    tsvectors(found, schema);
    strict_demands(found, schema);
}

/// Both sides of a foreign key ruled alike, to a fixed point (chains of keys).
pub fn foreign_keys(found: &mut Vec<Finding>, schema: &Schema<'_>) {
    let catalog = schema.catalog;
    for _round in 0..8 {
        let mut changed = false;
        for fk in &catalog.foreign_keys {
            let from = catalog.root_of(&fk.table);
            let to = catalog.root_of(&fk.referenced);
            for (c, rc) in fk.columns.iter().zip(&fk.referenced_columns) {
                let index = whole_index(found);
                let here = index
                    .get(&(from.clone(), c.clone()))
                    .filter(|&&i| found[i].written)
                    .copied();
                let there = index
                    .get(&(to.clone(), rc.clone()))
                    .filter(|&&i| found[i].written)
                    .copied();
                // The rule that decides: the referenced column's, else the referencing one's.
                let (source, target_key) = match (there, here) {
                    (Some(t), _) => (t, (from.clone(), c.clone())),
                    (None, Some(h)) => (h, (to.clone(), rc.clone())),
                    (None, None) => continue,
                };
                let (tt, tc) = &target_key;
                if !schema.uncovered(tt, tc) {
                    continue;
                }
                let Some(col) = schema.column(tt, tc) else {
                    continue;
                };
                let wanted = propose::with_unique(
                    &found[source].proposed,
                    schema.is_unique(tt, tc),
                    col.ty.max_len,
                );
                let same = |p: &Proposal| {
                    let strip = |p: &Proposal| propose::with_unique(p, false, None);
                    strip(p) == strip(&wanted)
                };
                let line = format!(
                    "foreign key {}: ruled like {}.{}, so that joins still join",
                    fk.name, found[source].table, found[source].column
                );
                match index.get(&target_key).copied() {
                    Some(i) if found[i].written && same(&found[i].proposed) => {}
                    Some(i) => {
                        let f = &mut found[i];
                        f.proposed = wanted;
                        f.written = true;
                        f.not_written = None;
                        f.evidence.push(line);
                        changed = true;
                    }
                    None => {
                        let s = &found[source];
                        let f = new_finding(tt, tc, s.category, s.confidence, vec![line], wanted);
                        found.push(f);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Tables that get at least one rule that changes values.
fn ruled_tables(found: &[Finding]) -> BTreeSet<QualifiedName> {
    found
        .iter()
        .filter(|f| f.written && f.proposed.transform != registry::KEEP.name())
        .map(|f| f.table.clone())
        .collect()
}

fn tsvectors(found: &mut Vec<Finding>, schema: &Schema<'_>) {
    let index = whole_index(found);
    for table in ruled_tables(found) {
        let Some(t) = schema.catalog.table(&table) else {
            continue;
        };
        for col in t.columns.iter().filter(|c| !c.generated) {
            let key = (table.clone(), col.name.clone());
            if col.ty.kind != TypeKind::TsVector
                || schema.recomputed.contains(&key)
                || index.contains_key(&key)
                || !schema.uncovered(&table, &col.name)
            {
                continue;
            }
            let proposed = if col.not_null {
                Proposal::of(&registry::CONSTANT).with_param("value", Param::Str(String::new()))
            } else {
                Proposal::of(&registry::SET_NULL)
            };
            found.push(new_finding(
                &table,
                &col.name,
                Category::FullName,
                Level::MEDIUM,
                vec![
                    "a tsvector on a table with rules carries the original words into staging".to_string(),
                    "to keep search working, recompute it instead in restage.yaml's search.tsvector (and remove this rule)".to_string(),
                ],
                proposed,
            ));
        }
    }
}

/// Strict mode refuses, on any table, an unruled column whose name looks personal: such
/// a column gets its finding written, or `keep` when no finding exists.
fn strict_demands(found: &mut Vec<Finding>, schema: &Schema<'_>) {
    let index = whole_index(found);
    // Strict mode judges every table the rules bind, which is every table.
    let tables: Vec<QualifiedName> = schema
        .catalog
        .tables
        .values()
        .filter(|t| t.parent.is_none())
        .map(|t| t.name.clone())
        .collect();
    for table in tables {
        let Some(t) = schema.catalog.table(&table) else {
            continue;
        };
        for col in t.columns.iter().filter(|c| !c.generated) {
            if !schema.uncovered(&table, &col.name) || matches!(col.ty.kind, TypeKind::Bool) {
                continue;
            }
            let Some(label) = personal_name(&col.name) else {
                continue;
            };
            let why = format!(
                "strict mode refuses `{}` unruled (it reads names alone: it looks like {label})",
                col.name
            );
            match index.get(&(table.clone(), col.name.clone())) {
                Some(&i) if found[i].written => {}
                Some(&i) => {
                    let f = &mut found[i];
                    // Left unwritten for a reason that is not its confidence: keep it
                    // explicitly, so the reason stays visible and strict mode passes.
                    if f.not_written
                        .as_deref()
                        .is_some_and(|r| !r.starts_with("low"))
                    {
                        let reason = f.not_written.take().unwrap_or_default();
                        f.evidence
                            .push(format!("{why}; `keep` written instead: {reason}"));
                        f.proposed = Proposal::of(&registry::KEEP);
                    } else {
                        f.evidence.push(why);
                        f.not_written = None;
                    }
                    f.written = true;
                }
                None => {
                    let category = classify_name(&col.name, &TypeKind::Text)
                        .map(|n| n.category)
                        .unwrap_or(Category::FullName);
                    let mut evidence = vec![why];
                    evidence.push(format!(
                        "its type ({}) or its values say otherwise: `keep` says it was looked at",
                        col.ty.name
                    ));
                    found.push(new_finding(
                        &table,
                        &col.name,
                        category,
                        Level::LOW,
                        evidence,
                        Proposal::of(&registry::KEEP),
                    ));
                }
            }
        }
    }
}

/// What a column's constraints are, for [`gate`].
struct Concerns<'a> {
    table_checks: Vec<&'a str>,
    domain: bool,
}

/// Tries every written whole-column proposal whose column has a length, a domain CHECK or
/// a table CHECK on a sample of its values, and replaces or comments out what fails (see the
/// module doc). Only reads the source.
pub async fn gate(
    client: &Client,
    catalog: &Catalog,
    constraints: &Constraints,
    found: &mut [Finding],
    unique: &BTreeSet<Key>,
    locale: &str,
) {
    // A throw-away key: outputs have the shapes of the run's, not its values.
    let transforms = Catalogue::new(&Secret::new("restage-scan-fit-test-key"), locale);
    // Unwritten (low) findings too: a commented rule must also pass once uncommented.
    for f in found.iter_mut().filter(|f| {
        f.path.is_none()
            && (f.written
                || f.not_written
                    .as_deref()
                    .is_some_and(|r| r.starts_with("low")))
    }) {
        let d = f.proposed.transform;
        if d == registry::KEEP.name() || d == registry::SET_NULL.name() {
            continue;
        }
        let Some(table) = catalog.table(&f.table) else {
            continue;
        };
        let Some(col) = table.column(&f.column) else {
            continue;
        };
        if col.ty.array {
            continue;
        }
        let leaves: Vec<&QualifiedName> = catalog
            .leaves(&table.name)
            .iter()
            .map(|t| &t.name)
            .collect();
        let concerns = Concerns {
            table_checks: constraints
                .checks
                .iter()
                .filter(|c| {
                    (c.table == table.name || leaves.contains(&&c.table))
                        && c.columns.iter().any(|x| x == &col.name)
                })
                .map(|c| c.expression.as_str())
                .collect(),
            domain: constraints.domain_checks.iter().any(|c| {
                (c.table == table.name || leaves.contains(&&c.table)) && c.column == col.name
            }),
        };
        if col.ty.max_len.is_none() && concerns.table_checks.is_empty() && !concerns.domain {
            continue;
        }
        tracing::debug!(table = %table.name, column = %col.name, "trying the proposal on a sample");
        let ordinary = table.kind == TableKind::Ordinary;
        let sample = match sample(client, &table.name, &col.name, ordinary).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(table = %table.name, column = %col.name, "cannot try the proposal on a sample: {e}");
                continue;
            }
        };
        let is_unique = unique.contains(&(f.table.clone(), f.column.clone()));
        let target = Target {
            ty: &col.ty,
            not_null: col.not_null,
            unique: is_unique,
        };
        let mut candidates = vec![f.proposed.clone()];
        if col.ty.kind == TypeKind::Text {
            let hash = Proposal::of(&registry::HASH);
            let hash = match col.ty.max_len {
                Some(n) if n < 64 => hash.with_param("length", Param::Int(n as i64)),
                _ => hash,
            };
            candidates.push(propose::with_unique(&hash, is_unique, col.ty.max_len));
        }
        if !is_unique || !col.not_null {
            candidates.push(propose::fallback(target));
        }
        let mut first_failure: Option<String> = None;
        let mut chosen = None;
        for candidate in candidates {
            match try_on(
                client,
                &transforms,
                table,
                col,
                &concerns,
                ordinary,
                &sample,
                &candidate,
            )
            .await
            {
                Ok(()) => {
                    chosen = Some(candidate);
                    break;
                }
                Err(why) => {
                    first_failure.get_or_insert(format!("`{}` {why}", candidate.to_yaml_flow()));
                }
            }
        }
        match chosen {
            Some(c) if c == f.proposed => {}
            Some(c) => {
                if let Some(why) = first_failure {
                    f.evidence
                        .push(format!("{why}; `{}` passes", c.to_yaml_flow()));
                }
                f.proposed = c;
            }
            None => {
                let why = first_failure.unwrap_or_else(|| "no rule passes".to_string());
                f.not_written = Some(match f.not_written.take() {
                    Some(low) if !f.written => format!("{low}; and {why}"),
                    _ => why,
                });
                f.written = false;
            }
        }
    }
}

/// Up to [`GATE_ROWS`] non-null values of the column, with their ctid on ordinary tables.
async fn sample(
    client: &Client,
    table: &QualifiedName,
    column: &str,
    ordinary: bool,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let c = quote_ident(column);
    let (only, id) = if ordinary {
        ("ONLY ", "ctid::text")
    } else {
        ("", "''")
    };
    let sql = format!(
        "SELECT {id}, {c}::text FROM {only}{} WHERE {c} IS NOT NULL LIMIT {GATE_ROWS}",
        table.sql()
    );
    let stream = client
        .query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())
        .await?;
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(row) = stream.try_next().await? {
        out.push((row.try_get(0)?, row.try_get(1)?));
    }
    Ok(out)
}

/// `Ok` when `candidate` binds on the column and its outputs for the sample fit the length,
/// the type (its domain's CHECKs) and the table's CHECKs; the reason otherwise (never a
/// value).
#[allow(clippy::too_many_arguments)]
async fn try_on(
    client: &Client,
    transforms: &Catalogue,
    table: &crate::catalog::Table,
    col: &Column,
    concerns: &Concerns<'_>,
    ordinary: bool,
    sample: &[(String, String)],
    candidate: &Proposal,
) -> Result<(), String> {
    // Bound on the type without its length: transforms cut their outputs to `varchar(n)`
    // (`country` on a `char(2)` gives `Wa`), and a cut value is no fit.
    let unbounded = crate::catalog::ColumnType {
        max_len: None,
        ..col.ty.clone()
    };
    let info = ColumnInfo {
        ty: &unbounded,
        not_null: col.not_null,
    };
    let bound = transforms
        .bind(&candidate.to_rule_spec(), &info)
        .map_err(|e| format!("does not bind: {e}"))?;
    let mut ids = Vec::with_capacity(sample.len());
    let mut outs: Vec<Option<String>> = Vec::with_capacity(sample.len());
    for (id, value) in sample {
        let mut out = String::new();
        match bound.apply(value, &mut out) {
            Ok(Output::Value) => {
                if let Some(n) = col.ty.max_len
                    && out.chars().count() > n
                {
                    return Err(format!(
                        "gives values longer than the column's {n} characters ({}): they would be cut",
                        col.ty.name
                    ));
                }
                outs.push(Some(out));
            }
            Ok(Output::Null) => outs.push(None),
            Err(e) => return Err(format!("fails on a sampled value: {e}")),
        }
        ids.push(id.clone());
    }
    if outs.is_empty() || (!concerns.domain && concerns.table_checks.is_empty()) {
        return Ok(());
    }
    let ty = &col.ty.name;
    let c = quote_ident(&col.name);
    let sql = if ordinary && !concerns.table_checks.is_empty() {
        let others: Vec<String> = table
            .columns
            .iter()
            .filter(|x| x.name != col.name)
            .map(|x| format!("t.{}", quote_ident(&x.name)))
            .chain([format!("u.v::{ty} AS {c}")])
            .collect();
        let checks: Vec<String> = concerns
            .table_checks
            .iter()
            .map(|e| format!("({e})"))
            .collect();
        format!(
            "SELECT count(*) FROM (SELECT {} FROM ONLY {} AS t JOIN unnest($1::text[]::tid[], $2::text[]) AS u(id, v) ON t.ctid = u.id) AS s WHERE NOT COALESCE({}, true)",
            others.join(", "),
            table.name.sql(),
            checks.join(" AND ")
        )
    } else {
        "SELECT count(*) FROM unnest($1::text[], $2::text[]) AS u(id, v) WHERE u.v IS NOT NULL AND (u.v::TYPE) IS NULL"
            .replace("TYPE", ty)
    };
    match client.query_one(sql.as_str(), &[&ids, &outs]).await {
        Ok(row) => {
            let broken: i64 = row.try_get(0).unwrap_or(0);
            if broken > 0 {
                Err(format!(
                    "breaks a CHECK of {} on {broken} of {} sampled rows",
                    table.name,
                    outs.len()
                ))
            } else {
                Ok(())
            }
        }
        // A domain's CHECK (or the type's input) refused an output. The server's message
        // can quote the value: only its class is said.
        Err(e) => Err(format!(
            "is refused by the column's type {ty} (its domain's CHECK or its input syntax{})",
            e.code()
                .map(|c| format!(", SQLSTATE {}", c.code()))
                .unwrap_or_default()
        )),
    }
}
