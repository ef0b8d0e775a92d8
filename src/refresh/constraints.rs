//! The rules against the source's constraints, at load time (issue 11): what a rule would
//! break in staging is refused before anything is copied (exit 2, in `validate` too), naming
//! the constraint and the rule — instead of failing after the whole copy, at an index build
//! or a foreign key, with a production value in PostgreSQL's DETAIL.
//!
//! From the catalogue alone ([`check_rules`], pure):
//! - **unique indexes** (primary keys, unique constraints and indexes, partial and expression
//!   ones): a ruled key column needs distinct outputs for distinct inputs — `keep`, or a rule
//!   with `unique: true` ([`Distinct`]); `set_null` is fine (NULLs never clash) unless the
//!   index says `NULLS NOT DISTINCT`. A composite key also holds when it contains another
//!   unique key whose columns all keep their distinctness (`UNIQUE (id, name)` with `id` the
//!   kept primary key). A partial index needs the same of its key, and its `WHERE` columns
//!   kept (a ruled one would change which rows it covers). An expression index
//!   (`UNIQUE (lower(name))`) holds for kept columns; for a rule with `unique: true`, distinct
//!   outputs can still give equal expressions, so it is tested on a sample (below); any other
//!   rule is refused.
//! - **exclusion constraints** compare with operators restage cannot reason about: a ruled
//!   column in one must be kept (or `set_null`: NULLs never conflict).
//! - **foreign keys**: each column and the column it references must be ruled alike — both
//!   kept, or the same transform with the same parameters (`unique` aside: a rule's unique
//!   set is shared by every column with its identity) on columns of the same type (a
//!   `varchar(20)` cuts an output a `text` keeps whole). A referencing column may be
//!   `set_null` (a NULL reference holds), but for `MATCH FULL` only with all its columns.
//!   Checked pair by pair, so composite keys and chains across tables are covered.
//! - **NOT NULL** is refused at binding, by the transform's declared [`Nulls`], on the
//!   column's own NOT NULL and its domain's ([`crate::catalog::Column::not_null`]).
//!
//! From a sample ([`check_samples`]): a CHECK constraint can say anything, so instead of
//! guessing from its text, the rules' outputs are put to it. For each table with a ruled
//! column that a table CHECK reads, that is of a domain with a CHECK (itself, through other
//! domains, or as an array's elements), or that an expression unique index reads, up to
//! [`SAMPLE_ROWS`] rows are read inside the snapshot, transformed by the data path's own
//! [`process_batch`], and sent back to the source as parameters of one read-only query (in a
//! savepoint of a session that imported the snapshot; nothing is written): the values are
//! cast to the columns' types (which applies every domain constraint), every table CHECK is
//! evaluated, and every expression index's expressions are counted for duplicates. A failure
//! names the constraint and the rule. This is evidence, not proof: a sample that passes does
//! not promise every row will, and a late failure is still reported without values (see
//! [`crate::db::describe`]). An empty table cannot fail, and is not read.
//!
//! Known gap: a generated column is computed by staging from the ruled columns it reads; a
//! unique index or foreign key on it is not traced back to them here (it fails at load,
//! naming the constraint, without values).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::catalog::{Catalog, Constraints, IndexKind, QualifiedName, Table, UniqueIndex};
use crate::copy_text;
use crate::db::snapshot::Snapshot;
use crate::db::{self, DbError, quote_ident};
use crate::error::Result;
use crate::rules::{BoundColumn, BoundRules};
use crate::transform::registry::{self, Distinct, Nulls};
use crate::transform::{Catalogue, ColumnInfo};

use super::rows::{ColumnAction, RowPlan, process_batch};
use super::settings::RulesSettings;

/// Rows of a table the sampled test reads, at most.
pub const SAMPLE_ROWS: usize = 1000;

/// What a column's rule does to the distinctness of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Copied as is (no rule, or `keep`).
    Kept,
    /// Every value becomes NULL.
    Nulled,
    /// Distinct inputs give distinct outputs (`unique: true`).
    Distinct,
    /// Two inputs can give one output.
    Clashing,
}

fn fate(column: &BoundColumn) -> Fate {
    match column.def {
        None => Fate::Kept,
        Some(def) if def.passes_through() => Fate::Kept,
        Some(def) if def.nulls() == Nulls::Always => Fate::Nulled,
        Some(_) if column.says_unique() => Fate::Distinct,
        Some(_) => Fate::Clashing,
    }
}

/// The bound column `name` of the data table `table`.
fn bound<'a>(rules: &'a BoundRules, table: &QualifiedName, name: &str) -> Option<&'a BoundColumn> {
    rules
        .table(table)?
        .columns
        .iter()
        .find(|c| c.column == name)
}

/// `` `hash` `` or `` `{ transform: hash, length: 12 }` ``-like: the rule's transform name, as
/// the report labels it.
fn rule_name(column: &BoundColumn) -> String {
    format!(
        "`{}`",
        column.rule.as_deref().unwrap_or(registry::KEEP.name())
    )
}

/// The transforms that promise distinct outputs with `unique: true`, for advice.
fn unique_capable() -> String {
    registry::all()
        .iter()
        .filter(|d| d.distinct() == Distinct::OnRequest)
        .map(|d| d.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks what the catalogue alone decides: unique indexes and exclusion constraints (the
/// expression tests of rules with `unique: true` aside, see [`check_samples`]) and foreign
/// keys. Every problem, each naming the constraint and the rule (with its place).
pub fn check_rules(
    catalog: &Catalog,
    constraints: &Constraints,
    rules: &BoundRules,
    default_locale: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for index in &constraints.unique {
        for leaf in catalog.leaves(&index.table) {
            check_index(constraints, rules, index, leaf, &mut problems);
        }
    }
    for fk in &catalog.foreign_keys {
        check_foreign_key(
            catalog,
            constraints,
            rules,
            fk,
            default_locale,
            &mut problems,
        );
    }
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

fn check_index(
    constraints: &Constraints,
    rules: &BoundRules,
    index: &UniqueIndex,
    leaf: &Table,
    problems: &mut Vec<String>,
) {
    let column = |name: &str| bound(rules, &leaf.name, name);
    let what = index.describe();
    if index.kind == IndexKind::Exclusion {
        for name in index.columns.iter().chain(&index.expression_columns) {
            if let Some(c) = column(name)
                && !matches!(fate(c), Fate::Kept | Fate::Nulled)
            {
                problems.push(format!(
                    "{}{}.{name}: {what} compares the column with its operators, and {} changes its values: the constraint could fail in staging; keep the column (or set it NULL)",
                    c.at(),
                    leaf.name,
                    rule_name(c)
                ));
            }
        }
        return;
    }
    if let Some(predicate) = &index.predicate {
        for name in &index.predicate_columns {
            if let Some(c) = column(name)
                && fate(c) != Fate::Kept
            {
                problems.push(format!(
                    "{}{}.{name}: {what} is partial (WHERE {predicate}), and {} changes the column its WHERE reads: the rows it covers would change in staging and could clash; keep the column",
                    c.at(),
                    leaf.name,
                    rule_name(c)
                ));
            }
        }
    }
    let clashing: Vec<&BoundColumn> = index
        .columns
        .iter()
        .filter_map(|name| column(name))
        .filter(|c| match fate(c) {
            Fate::Clashing => true,
            Fate::Nulled => index.nulls_not_distinct,
            Fate::Kept | Fate::Distinct => false,
        })
        .collect();
    if !clashing.is_empty() && !implied_by_a_kept_key(constraints, rules, index, leaf) {
        for c in clashing {
            let advice = match c.def.map(|d| (d.distinct(), d.nulls())) {
                Some((_, Nulls::Always)) => format!(
                    "the index counts NULLs as equal (NULLS NOT DISTINCT); rule the column with a transform that takes `unique: true` ({})",
                    unique_capable()
                ),
                Some((Distinct::OnRequest, _)) => "add `unique: true` to the rule".to_string(),
                _ => format!(
                    "rule it with a transform that takes `unique: true` ({}), or keep it",
                    unique_capable()
                ),
            };
            problems.push(format!(
                "{}{}.{}: {} can give two rows the same value, and {what} needs them distinct: the index would fail to build in staging; {advice}",
                c.at(),
                leaf.name,
                c.column,
                rule_name(c)
            ));
        }
    }
    for name in &index.expression_columns {
        if let Some(c) = column(name)
            && matches!(fate(c), Fate::Clashing | Fate::Nulled)
        {
            problems.push(format!(
                "{}{}.{name}: {what} is on an expression of the column, and {} can give two rows values whose expression is equal: the index would fail to build in staging; keep the column, or rule it with `unique: true` (then a sample of its outputs is tested against the expression)",
                c.at(),
                leaf.name,
                rule_name(c)
            ));
        }
    }
}

/// True when `index` holds because its columns contain those of another unique key (plain,
/// not partial) that the rules keep distinct: `UNIQUE (id, name)` with `id` kept.
fn implied_by_a_kept_key(
    constraints: &Constraints,
    rules: &BoundRules,
    index: &UniqueIndex,
    leaf: &Table,
) -> bool {
    if index.nulls_not_distinct || index.is_expression() {
        return false;
    }
    let columns: BTreeSet<&String> = index.columns.iter().collect();
    constraints.unique.iter().any(|other| {
        other.table == index.table
            && other.index != index.index
            && other.kind != IndexKind::Exclusion
            && other.predicate.is_none()
            && !other.is_expression()
            && !other.columns.is_empty()
            && other.columns.iter().all(|c| columns.contains(c))
            && other.columns.iter().all(|name| {
                bound(rules, &leaf.name, name)
                    .is_none_or(|c| matches!(fate(c), Fate::Kept | Fate::Distinct))
            })
    })
}

/// What one side of a foreign key's column pair becomes.
#[derive(Debug, PartialEq)]
enum Side {
    Kept,
    Nulled,
    Ruled {
        transform: &'static str,
        /// The parameters but `unique`, with the locale made explicit.
        params: BTreeMap<String, serde_yaml::Value>,
        /// What cuts or splits an output: the length limit and whether it is an array.
        max_len: Option<usize>,
        array: bool,
    },
}

fn side(column: &BoundColumn, table: &Table, default_locale: &str) -> Side {
    match fate(column) {
        Fate::Kept => Side::Kept,
        Fate::Nulled => Side::Nulled,
        Fate::Distinct | Fate::Clashing => {
            let mut params = column
                .spec
                .as_ref()
                .map(|s| s.params.clone())
                .unwrap_or_default();
            params.remove("unique");
            params
                .entry("locale".to_string())
                .or_insert_with(|| default_locale.into());
            let ty = table.column(&column.column).map(|c| &c.ty);
            Side::Ruled {
                transform: column
                    .def
                    .map(|d| d.name())
                    .unwrap_or(registry::KEEP.name()),
                params,
                max_len: ty.and_then(|t| t.max_len),
                array: ty.is_some_and(|t| t.array),
            }
        }
    }
}

fn check_foreign_key(
    catalog: &Catalog,
    constraints: &Constraints,
    rules: &BoundRules,
    fk: &crate::catalog::ForeignKey,
    default_locale: &str,
    problems: &mut Vec<String>,
) {
    let full = constraints
        .match_full
        .contains(&(fk.table.clone(), fk.name.clone()));
    let from = catalog.leaves(&fk.table);
    let to = catalog.leaves(&fk.referenced);
    // MATCH FULL: a row's key is all NULL or all set; set_null on some of its columns only
    // makes it neither.
    let nulled: Vec<bool> = fk
        .columns
        .iter()
        .map(|c| {
            from.iter()
                .filter_map(|t| bound(rules, &t.name, c))
                .any(|b| fate(b) == Fate::Nulled)
        })
        .collect();
    for (column, referenced) in fk.columns.iter().zip(&fk.referenced_columns) {
        for source in &from {
            let Some(here) = bound(rules, &source.name, column) else {
                continue;
            };
            let mine = side(here, source, default_locale);
            if mine == Side::Nulled {
                if full && !nulled.iter().all(|n| *n) {
                    problems.push(format!(
                        "{}{}.{column}: foreign key {} is MATCH FULL, and {} makes only some of its columns NULL: its rows would have keys neither all NULL nor all set; set all of ({}) NULL or none",
                        here.at(),
                        source.name,
                        quote_ident(&fk.name),
                        rule_name(here),
                        fk.columns.join(", ")
                    ));
                }
                continue;
            }
            for target in &to {
                let Some(there) = bound(rules, &target.name, referenced) else {
                    continue;
                };
                let theirs = side(there, target, default_locale);
                if mine == theirs {
                    continue;
                }
                let describe = |s: &Side, c: &BoundColumn| match s {
                    Side::Kept => "is kept as it is".to_string(),
                    Side::Nulled => format!("is made NULL by {}", rule_name(c)),
                    Side::Ruled { .. } => format!("is ruled {}", rule_name(c)),
                };
                let why = match (&mine, &theirs) {
                    (
                        Side::Ruled {
                            transform: a,
                            params: pa,
                            ..
                        },
                        Side::Ruled {
                            transform: b,
                            params: pb,
                            ..
                        },
                    ) if a == b && pa == pb => {
                        let ty = |t: &Table, c: &str| {
                            t.column(c).map(|c| c.ty.name.clone()).unwrap_or_default()
                        };
                        format!(
                            "both are ruled {}, but their types ({}, {}) cut or split the outputs differently",
                            rule_name(here),
                            ty(source, column),
                            ty(target, referenced)
                        )
                    }
                    _ => format!(
                        "the column {} and the one it references {}",
                        describe(&mine, here),
                        describe(&theirs, there)
                    ),
                };
                // Point at the rule that is written; the other side may have none.
                let at = if here.location.is_some() {
                    here.at()
                } else {
                    there.at()
                };
                problems.push(format!(
                    "{at}{}.{column}: foreign key {} references {}.{referenced}, and {why}: the references would not match in staging; rule both columns alike (the same transform and parameters)",
                    source.name,
                    quote_ident(&fk.name),
                    target.name,
                ));
            }
        }
    }
}

/// One table's sampled test: the columns it reads and what it evaluates.
struct SampleTest<'a> {
    table: &'a Table,
    /// The columns read, in the table's order.
    columns: Vec<&'a str>,
    checks: Vec<&'a crate::catalog::CheckConstraint>,
    domains: Vec<&'a crate::catalog::DomainCheck>,
    indexes: Vec<&'a UniqueIndex>,
}

/// The sampled tests the rules call for (see the module doc).
fn sample_tests<'a>(
    catalog: &'a Catalog,
    constraints: &'a Constraints,
    rules: &BoundRules,
) -> Vec<SampleTest<'a>> {
    let ruled =
        |t: &QualifiedName, c: &str| bound(rules, t, c).is_some_and(|b| fate(b) != Fate::Kept);
    let mut tests = Vec::new();
    for table in catalog.data_tables() {
        let lineage: Vec<&QualifiedName> = catalog
            .lineage(&table.name)
            .iter()
            .map(|t| &t.name)
            .collect();
        let checks: Vec<_> = constraints
            .checks
            .iter()
            .filter(|c| {
                c.table == table.name && c.columns.iter().any(|col| ruled(&table.name, col))
            })
            .collect();
        let domains: Vec<_> = constraints
            .domain_checks
            .iter()
            .filter(|d| d.table == table.name && ruled(&table.name, &d.column))
            .collect();
        let indexes: Vec<_> = constraints
            .unique
            .iter()
            .filter(|i| {
                lineage.contains(&&i.table)
                    && i.kind != IndexKind::Exclusion
                    && i.is_expression()
                    && i.expression_columns.iter().any(|c| ruled(&table.name, c))
                    && i.expression_columns.iter().all(|c| {
                        bound(rules, &table.name, c)
                            .is_none_or(|b| matches!(fate(b), Fate::Kept | Fate::Distinct))
                    })
            })
            .collect();
        if checks.is_empty() && domains.is_empty() && indexes.is_empty() {
            continue;
        }
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        for c in &checks {
            wanted.extend(c.columns.iter().map(String::as_str));
        }
        for d in &domains {
            wanted.insert(&d.column);
        }
        for i in &indexes {
            wanted.extend(i.columns.iter().map(String::as_str));
            wanted.extend(i.expression_columns.iter().map(String::as_str));
            wanted.extend(i.predicate_columns.iter().map(String::as_str));
        }
        // Generated columns are computed by staging; the test cannot compute them here.
        let columns: Vec<&str> = table
            .copy_columns()
            .map(|c| c.name.as_str())
            .filter(|c| wanted.contains(c))
            .collect();
        let readable = |cols: &[String]| cols.iter().all(|c| columns.contains(&c.as_str()));
        tests.push(SampleTest {
            table,
            checks: checks
                .into_iter()
                .filter(|c| readable(&c.columns))
                .collect(),
            domains,
            indexes: indexes
                .into_iter()
                .filter(|i| {
                    readable(&i.columns)
                        && readable(&i.expression_columns)
                        && readable(&i.predicate_columns)
                })
                .collect(),
            columns,
        });
    }
    tests
}

/// Puts a sample of the rules' outputs to the CHECK constraints (of tables and domains) and
/// to the expression unique indexes they reach, in the source, read-only (see the module
/// doc). Returns the problems and the warnings (a test that could not run).
pub async fn check_samples(
    snapshot: &Snapshot,
    catalog: &Catalog,
    constraints: &Constraints,
    rules: &BoundRules,
    settings: &RulesSettings,
) -> Result<(Vec<String>, Vec<String>)> {
    let tests = sample_tests(catalog, constraints, rules);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if tests.is_empty() {
        return Ok((problems, warnings));
    }
    let server = &snapshot.endpoint().display;
    let session = snapshot.session().await?;
    // Bound afresh: the run's catalogue holds the `unique: true` registry, which a test must
    // not fill.
    let transforms = Catalogue::new(
        &settings.secret.clone().unwrap_or_default(),
        &settings.locale,
    );
    for test in tests {
        run_test(
            &session,
            server,
            &transforms,
            rules,
            &test,
            &mut problems,
            &mut warnings,
        )
        .await?;
    }
    Ok((problems, warnings))
}

async fn run_test(
    session: &Client,
    server: &str,
    transforms: &Catalogue,
    rules: &BoundRules,
    test: &SampleTest<'_>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let table = test.table;
    let err = |context: String| {
        let server = server.to_string();
        move |e| DbError::new(server, context, e)
    };
    // The sample, as COPY prints it, through the data path's own row stage.
    let list: Vec<String> = test.columns.iter().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "COPY (SELECT {} FROM ONLY {} LIMIT {SAMPLE_ROWS}) TO STDOUT",
        list.join(", "),
        table.name.sql()
    );
    let context = format!("sampling {} to test its constraints", table.name);
    let stream = session.copy_out(&sql).await.map_err(err(context.clone()))?;
    let mut stream = std::pin::pin!(stream);
    let mut input = Vec::new();
    while let Some(chunk) = stream.next().await {
        input.extend_from_slice(&chunk.map_err(err(context.clone()))?);
    }
    if input.is_empty() {
        return Ok(());
    }
    let mut actions = Vec::new();
    for name in &test.columns {
        let action = match (bound(rules, &table.name, name), table.column(name)) {
            (Some(b), Some(col)) if b.transform.is_some() => match &b.spec {
                Some(spec) => match transforms.bind(
                    spec,
                    &ColumnInfo {
                        ty: &col.ty,
                        not_null: col.not_null,
                    },
                ) {
                    Ok(transform) => ColumnAction::Transform {
                        column: name.to_string(),
                        transform,
                    },
                    // It bound for the run; a failure here is not the constraint's to report.
                    Err(_) => return Ok(()),
                },
                None => ColumnAction::Pass,
            },
            _ => ColumnAction::Pass,
        };
        actions.push(action);
    }
    // The sample comes through this session, which reads UTF-8 (the server converts).
    let plan = RowPlan {
        table: table.name.clone(),
        columns: actions,
        filter: None,
        encoding: crate::pg_encoding::TextEncoding::Utf8,
        check: None,
    };
    let output = match process_batch(&Arc::new(plan), &input) {
        Ok(out) => out,
        Err(e) => {
            problems.push(format!(
                "{e} (while testing the rules' outputs on a sample)"
            ));
            return Ok(());
        }
    };
    let mut values: Vec<Vec<Option<String>>> = vec![Vec::new(); test.columns.len()];
    let mut fields = Vec::new();
    for row in copy_text::rows(&output.data) {
        if copy_text::split_row(row, test.columns.len(), &mut fields).is_err() {
            return Ok(());
        }
        for (i, field) in fields.iter().enumerate() {
            values[i].push(if copy_text::is_null(field) {
                None
            } else {
                let mut s = String::new();
                if copy_text::decode(field, &mut s).is_err() {
                    return Ok(());
                }
                Some(s)
            });
        }
    }
    let rows = values.first().map(Vec::len).unwrap_or(0);

    // Each column of a domain with a CHECK first, on its own: a failing cast stops its
    // query, and every such column gets its say.
    let mut domain_failed = false;
    let domain_columns: BTreeSet<&str> = test.domains.iter().map(|d| d.column.as_str()).collect();
    for column in domain_columns {
        let Some(i) = test.columns.iter().position(|c| *c == column) else {
            continue;
        };
        let ty = table
            .column(column)
            .map(|c| c.ty.name.as_str())
            .unwrap_or("text");
        let query = format!("SELECT count(v::{ty}) FROM unnest($1::text[]) AS u(v)");
        match in_savepoint(session, &query, &[&values[i]]).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                domain_failed = true;
                let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
                let domain = test
                    .domains
                    .iter()
                    .find(|d| d.column == column && d.constraint == constraint)
                    .map(|d| d.domain.as_str());
                let Some(b) = bound(rules, &table.name, column) else {
                    continue;
                };
                let class = e
                    .code()
                    .map(|c| c.code().get(..2).unwrap_or("").to_string());
                match (class.as_deref(), domain) {
                    (Some("23"), Some(domain)) => problems.push(format!(
                        "{}{}.{column}: the outputs of {} break check constraint {} of domain {domain} (tested on {rows} rows of the source, read-only): the load would fail in staging; rule the column with a transform whose outputs the domain accepts, or keep it",
                        b.at(),
                        table.name,
                        rule_name(b),
                        quote_ident(constraint)
                    )),
                    (Some("22" | "23"), _) => problems.push(format!(
                        "{}{}.{column}: the outputs of {} are not all valid values of type {ty} ({}; tested on {rows} rows of the source, read-only): the load would fail in staging",
                        b.at(),
                        table.name,
                        rule_name(b),
                        db::describe(&e)
                    )),
                    _ => warnings.push(format!(
                        "{}.{column}: the rule's outputs could not be tested against its domain: {}",
                        table.name,
                        db::describe(&e)
                    )),
                }
            }
            Err(e) => return Err(DbError::new(server, context.clone(), e).into()),
        }
    }
    if domain_failed {
        return Ok(());
    }

    // The query: the values cast to the columns' types (every domain constraint applies),
    // then each CHECK's violations and each expression index's rows and distinct keys.
    let casts: Vec<String> = test
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ty = table
                .column(name)
                .map(|c| c.ty.name.as_str())
                .unwrap_or("text");
            format!("u.v{i}::{ty} AS {}", quote_ident(name))
        })
        .collect();
    let arrays: Vec<String> = (1..=test.columns.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..test.columns.len()).map(|i| format!("v{i}")).collect();
    let mut measures = vec!["count(t.*)".to_string()];
    for check in &test.checks {
        measures.push(format!(
            "count(*) FILTER (WHERE NOT ({}))",
            check.expression
        ));
    }
    for index in &test.indexes {
        let key = format!("ROW({})", index.key_parts.join(", "));
        let filter = match &index.predicate {
            Some(p) => format!("({p}) AND {key} IS NOT NULL"),
            None => format!("{key} IS NOT NULL"),
        };
        measures.push(format!("count(*) FILTER (WHERE {filter})"));
        measures.push(format!("count(DISTINCT {key}) FILTER (WHERE {filter})"));
    }
    let query = format!(
        "WITH t AS MATERIALIZED (SELECT {} FROM unnest({}) AS u({}))
         SELECT ARRAY[{}]::int8[] FROM t",
        casts.join(", "),
        arrays.join(", "),
        names.join(", "),
        measures.join(", ")
    );
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let result = in_savepoint(session, &query, &params)
        .await
        .map_err(err(context.clone()))?;
    // Where the first ruled column's rule is, then `table.column…: the outputs of `rule`…`
    // for the ruled columns among `cols`.
    let ruled_list = |cols: Vec<&str>| -> (String, String) {
        let ruled: Vec<&BoundColumn> = cols
            .into_iter()
            .filter_map(|c| bound(rules, &table.name, c))
            .filter(|b| fate(b) != Fate::Kept)
            .collect();
        let at = ruled.first().map(|b| b.at()).unwrap_or_default();
        let columns: Vec<String> = ruled
            .iter()
            .map(|b| format!("{}.{}", table.name, b.column))
            .collect();
        let names: Vec<String> = ruled.iter().map(|b| rule_name(b)).collect();
        (
            at,
            format!(
                "{}: the outputs of {}",
                columns.join(", "),
                names.join(", ")
            ),
        )
    };
    let counts: Vec<i64> = match result {
        Ok(row) => row.get(0),
        Err(e) => {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            match code.get(..2) {
                Some("22" | "23") => {
                    let (at, which) = ruled_list(test.columns.clone());
                    problems.push(format!(
                        "{at}{which} are not all valid values of the columns' types ({}; tested on {rows} rows of the source, read-only): the load would fail in staging",
                        db::describe(&e)
                    ));
                }
                _ => warnings.push(format!(
                    "{}: the rules' outputs could not be tested against its constraints: {}",
                    table.name,
                    db::describe(&e)
                )),
            }
            return Ok(());
        }
    };
    let mut at = 1;
    for check in &test.checks {
        let broken = counts.get(at).copied().unwrap_or(0);
        at += 1;
        if broken > 0 {
            let (at, which) = ruled_list(check.columns.iter().map(String::as_str).collect());
            problems.push(format!(
                "{at}{which} break check constraint {} ({}) on {broken} of {rows} rows sampled from the source (read-only): the load would fail in staging; rule the column with a transform whose outputs the constraint accepts, or keep it",
                quote_ident(&check.name),
                check.expression
            ));
        }
    }
    for index in &test.indexes {
        let keys = counts.get(at).copied().unwrap_or(0);
        let distinct = counts.get(at + 1).copied().unwrap_or(0);
        at += 2;
        if distinct < keys {
            let (at, which) = ruled_list(
                index
                    .expression_columns
                    .iter()
                    .map(String::as_str)
                    .collect(),
            );
            problems.push(format!(
                "{at}{which} are distinct (`unique: true`), but {} of {keys} rows sampled from the source (read-only) already share their ({}) with another, and {} needs it distinct: the index would fail to build in staging; keep the column, or rule it so that the expression stays distinct",
                keys - distinct,
                index.key_parts.join(", "),
                index.describe()
            ));
        }
    }
    Ok(())
}

/// Runs `query` in a savepoint of the session's transaction (the snapshot's), so a failure
/// leaves the transaction usable: the server's error inside, a failure of the savepoint
/// itself outside.
async fn in_savepoint(
    session: &Client,
    query: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Result<tokio_postgres::Row, tokio_postgres::Error>, tokio_postgres::Error> {
    session
        .batch_execute("SAVEPOINT restage_constraint_test")
        .await?;
    let result = session.query_one(query, params).await;
    session
        .batch_execute(if result.is_ok() {
            "RELEASE SAVEPOINT restage_constraint_test"
        } else {
            "ROLLBACK TO SAVEPOINT restage_constraint_test"
        })
        .await?;
    Ok(result)
}
