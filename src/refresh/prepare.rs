//! Everything decided before the target is touched: the checks of the rules and the
//! configuration against the catalog (`secret:`, derived columns, strict mode, tsvectors —
//! the steps of [`super::checks`], which runs them in order), the copy jobs and the report's
//! planned table lines, and the checks of the staging server (not the source, extensions,
//! roles).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName, TypeKind};
use crate::config::Strictness;
use crate::db::DbError;
use crate::db::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::pg_encoding::TextEncoding;
use crate::plan::{Decision, Plan};
use crate::report::TableReport;
use crate::rules::BoundRules;
use crate::transform::Catalogue;

use super::checks::Checked;
use super::copy::{CopyJob, page_ranges};
use super::reindex::DerivedColumn;
use super::rows::{ColumnAction, RowPlan};
use super::settings::{SearchSettings, Settings};
use super::{access, reindex};

/// Everything decided before the target is touched: what the checks decided, and the jobs.
pub struct Prepared {
    pub snapshot: Arc<Snapshot>,
    pub catalog: Catalog,
    pub rules: BoundRules,
    pub plan: Plan,
    pub jobs: Vec<CopyJob>,
    pub unclassified: Vec<String>,
    pub warnings: Vec<String>,
    /// The bound transform catalogue (its `unique` registry fills during the data stage).
    pub transforms: Catalogue,
}

impl Prepared {
    /// The copy jobs of what the checks decided.
    pub fn new(checked: Checked, settings: &Settings) -> Prepared {
        let jobs = copy_jobs(
            &checked.catalog,
            &checked.rules,
            None,
            &checked.plan,
            settings,
        );
        Prepared {
            snapshot: checked.snapshot,
            catalog: checked.catalog,
            rules: checked.rules,
            plan: checked.plan,
            jobs,
            unclassified: checked.unclassified,
            warnings: checked.warnings,
            transforms: checked.transforms,
        }
    }
}

/// Derived columns (`search.tsvector`) must name existing tables and columns.
pub fn check_derived(catalog: &Catalog, derived: &[DerivedColumn]) -> Vec<String> {
    let mut problems = Vec::new();
    for d in derived {
        match catalog.table(&d.table) {
            None => problems.push(format!(
                "search.tsvector: table {} does not exist in the source",
                d.table
            )),
            Some(t) => match t.column(&d.column) {
                None => problems.push(format!("search.tsvector: {}: no such column", d.label())),
                Some(c) if c.generated => problems.push(format!(
                    "search.tsvector: {} is a generated column; staging computes it already",
                    d.label()
                )),
                Some(_) => {}
            },
        }
    }
    problems
}

/// tsvector columns that would carry production words into staging: on a table with
/// anonymized columns, with neither a rule of their own nor a recompute in `search.tsvector`.
pub fn unruled_tsvectors(
    catalog: &Catalog,
    rules: &BoundRules,
    search: &SearchSettings,
) -> Vec<String> {
    let mut out = Vec::new();
    for table in catalog.data_tables() {
        let Some(bound) = rules.table(&table.name) else {
            continue;
        };
        if bound.is_passthrough() {
            continue;
        }
        let root = catalog.root_of(&table.name);
        for (column, b) in table.copy_columns().zip(&bound.columns) {
            if column.ty.kind != TypeKind::TsVector || b.transform.is_some() {
                continue;
            }
            let derived = search
                .derived
                .iter()
                .any(|d| (d.table == table.name || d.table == root) && d.column == column.name);
            if !derived {
                out.push(format!(
                    "{root}.{} is a tsvector on a table with anonymized columns and would carry the original words into staging; add it to search.tsvector (recomputed from the anonymized columns) or give it a rule (set_null)",
                    column.name
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `secret:` keys every pseudonym and the sample's selection: percent and max_rows samples,
/// and transforms other than the ones that keep nothing of the value, need it.
pub fn secret_problems(settings: &Settings, rules: Option<&BoundRules>) -> Vec<String> {
    let mut problems = Vec::new();
    if settings.rules.secret.is_none()
        && settings
            .sample
            .tables
            .values()
            .any(|s| s.percent.is_some() || s.max_rows.is_some())
    {
        problems.push(format!(
            "sample: percent and max_rows choose rows by a keyed hash; {} needs `secret:`",
            settings.rules.config_file
        ));
    }
    if let (None, Some(rules)) = (&settings.rules.secret, rules) {
        let keyed: Vec<String> = rules
            .tables
            .iter()
            .flat_map(|(t, b)| {
                b.columns
                    .iter()
                    .filter(|c| c.transform.is_some() && c.def.is_some_and(|d| d.requires_secret()))
                    .map(move |c| format!("{t}.{}", c.column))
            })
            .collect();
        if !keyed.is_empty() {
            problems.push(format!(
                "rules transform {} but {} has no `secret:` (the key of every pseudonym)",
                keyed.join(", "),
                settings.rules.config_file
            ));
        }
    }
    problems
}

/// Strict mode: refuses (exit 2) when columns that look personal (`pii`) or any columns
/// (`all`) have no rule. With `allow_unclassified`, returns them instead, for the report.
pub fn strict_check(
    catalog: &Catalog,
    rules: &BoundRules,
    strict: Strictness,
    allow_unclassified: bool,
    generated: &std::collections::BTreeSet<QualifiedName>,
) -> Result<Vec<String>> {
    if strict == Strictness::Off {
        return Ok(vec![]);
    }
    let mut offending = Vec::new();
    for table in catalog.data_tables() {
        let Some(bound) = rules.table(&table.name) else {
            continue;
        };
        // Generated rows (hybrid mode) hold no production value.
        if generated.contains(&catalog.root_of(&table.name)) {
            continue;
        }
        // Report partitions under their root: one line per logical table.
        let shown = catalog.root_of(&table.name);
        for (column, b) in table.copy_columns().zip(&bound.columns) {
            if b.rule.is_some() {
                continue;
            }
            let why = match strict {
                Strictness::All => Some("no rule".to_string()),
                Strictness::Pii => crate::pii::personal_name(&column.name)
                    .filter(|_| !matches!(column.ty.kind, TypeKind::Bool))
                    .map(|w| format!("looks like {w}")),
                Strictness::Off => None,
            };
            if let Some(why) = why {
                offending.push(format!("{shown}.{} ({why})", column.name));
            }
        }
    }
    offending.sort();
    offending.dedup();
    if offending.is_empty() || allow_unclassified {
        return Ok(offending);
    }
    Err(Error::Usage(format!(
        "strict: {}: {} column(s) have no rule:\n  {}\nadd rules (restage scan --write proposes them), or mark them `keep`, or pass --allow-unclassified for one run",
        match strict {
            Strictness::All => "all",
            _ => "pii",
        },
        offending.len(),
        offending.join("\n  ")
    )))
}

/// The transform stage's plan for a table: its bound rules (keep and unruled columns pass),
/// for rows in UTF-8 (a session whose server converts them).
pub fn row_plan(table: &crate::catalog::Table, bound: &crate::rules::BoundTable) -> RowPlan {
    RowPlan {
        table: table.name.clone(),
        columns: bound
            .columns
            .iter()
            .map(|b| match &b.transform {
                Some(t) => ColumnAction::Transform {
                    column: b.column.clone(),
                    transform: t.clone(),
                },
                None => ColumnAction::Pass,
            })
            .collect(),
        filter: None,
        encoding: TextEncoding::Utf8,
        check: None,
    }
}

/// One job per table, or per ctid range of a big table (the build's reload after a rescale
/// takes those of the sampled tables).
pub(crate) fn copy_jobs(
    catalog: &Catalog,
    rules: &BoundRules,
    verifier: Option<&super::verify::StreamVerifier>,
    plan: &Plan,
    settings: &Settings,
) -> Vec<CopyJob> {
    let derived: BTreeMap<(&QualifiedName, &str), ()> = settings
        .search
        .derived
        .iter()
        .map(|d| ((&d.table, d.column.as_str()), ()))
        .collect();
    let copy_encoding = copy_encoding(&catalog.encoding);
    let mut jobs = Vec::new();
    for table in catalog.data_tables() {
        let Some(table_plan) = plan.tables.get(&table.name) else {
            continue;
        };
        if table_plan.decision == Decision::Empty {
            continue;
        }
        let root = catalog.root_of(&table.name);
        let mut plan = match rules.table(&table.name) {
            Some(bound) => row_plan(table, bound),
            None => RowPlan {
                table: table.name.clone(),
                columns: table.copy_columns().map(|_| ColumnAction::Pass).collect(),
                filter: None,
                encoding: TextEncoding::Utf8,
                check: None,
            },
        };
        // Verification in the stream, when the build set it up (see refresh::verify).
        plan.check = verifier.and_then(|v| v.table(&table.name));
        // The data stage's sessions speak the source's encoding (see crate::pg_encoding).
        plan.encoding = TextEncoding::of(&catalog.encoding);
        // A derived column is recomputed after the load: its original content (the
        // production words of a tsvector) never reaches staging.
        for (action, column) in plan.columns.iter_mut().zip(table.copy_columns()) {
            if derived.contains_key(&(&table.name, column.name.as_str()))
                || derived.contains_key(&(&root, column.name.as_str()))
            {
                *action = ColumnAction::Transform {
                    column: column.name.clone(),
                    transform: reindex::placeholder(column.not_null),
                };
            }
        }
        plan.filter = table_plan.filter.clone();
        let row_plan = Arc::new(plan);
        let column_names: Vec<String> = table.copy_columns().map(|c| c.name.clone()).collect();
        let binary_fields: Option<Arc<[crate::catalog::BinaryLayout]>> =
            table.copy_columns().map(|c| c.binary_copy).collect();
        let split = table.bytes >= settings.split_bytes
            && settings.jobs > 1
            && catalog.server_version >= 140000
            && table.pages > 1;
        let ranges = if split {
            // Aim for ranges of about split_bytes / 2, at most two per worker.
            let parts = (table.bytes / (settings.split_bytes / 2).max(1))
                .clamp(2, settings.jobs as u64 * 2);
            page_ranges(table.pages, parts)
        } else {
            vec![]
        };
        if ranges.len() > 1 {
            let n = ranges.len() as u64;
            for range in ranges {
                jobs.push(CopyJob {
                    table: table.name.clone(),
                    columns: column_names.clone(),
                    plan: row_plan.clone(),
                    range: Some(range),
                    source_where: table_plan.source_where.clone(),
                    whole_table: false,
                    encoding: copy_encoding.clone(),
                    estimated_rows: table_plan.estimated_rows / n,
                    estimated_bytes: table_plan.estimated_bytes / n,
                    generated: None,
                    binary_fields: binary_fields.clone(),
                });
            }
        } else {
            jobs.push(CopyJob {
                table: table.name.clone(),
                columns: column_names,
                plan: row_plan,
                range: None,
                source_where: table_plan.source_where.clone(),
                whole_table: true,
                encoding: copy_encoding.clone(),
                estimated_rows: table_plan.estimated_rows,
                estimated_bytes: table_plan.estimated_bytes,
                generated: None,
                binary_fields,
            });
        }
    }
    jobs
}

/// COPY's `ENCODING` for the rows of a source database in `encoding`: none for UTF-8 (the
/// sessions' own), the database's own otherwise (see [`crate::pg_encoding`]).
pub fn copy_encoding(encoding: &str) -> Option<String> {
    (!encoding.eq_ignore_ascii_case("UTF8")).then(|| encoding.to_string())
}

/// The per-table lines of the report, before anything runs.
pub(crate) fn planned_tables(prepared: &Prepared) -> Vec<TableReport> {
    let mut out = Vec::new();
    for (name, tp) in &prepared.plan.tables {
        let mut rules = BTreeMap::new();
        if let Some(bound) = prepared.rules.table(name) {
            for c in &bound.columns {
                if let Some(rule) = &c.rule
                    && c.def.is_some_and(|d| !d.passes_through())
                {
                    rules.insert(c.column.clone(), rule.clone());
                }
            }
        }
        out.push(TableReport {
            table: name.to_string(),
            sample: tp.reason.clone(),
            estimated_rows: if tp.decision == Decision::Empty {
                0
            } else {
                tp.estimated_rows
            },
            // An empty table still takes a page or so: planned as restored.
            estimated_bytes: tp.estimated_bytes,
            estimated_index_bytes: tp.estimated_index_bytes,
            ranges: prepared.jobs.iter().filter(|j| &j.table == name).count(),
            rules,
            ..TableReport::default()
        });
    }
    out
}

/// Refuses a target that is the source under another address. [`Settings::from_config`]
/// compares the URLs, which cannot see that a host alias, an IP address, a Unix socket or a
/// proxy lead to the same server; this asks both servers. Two sessions are on the same server when its
/// postmaster started at the same instant (to the microsecond, as an epoch, so the sessions'
/// time zones do not matter). (A replica of the source is another server by this test.)
pub(crate) async fn check_target_is_not_source(
    admin: &Client,
    source: &Client,
    settings: &Settings,
) -> Result<()> {
    const WHO: &str =
        "SELECT extract(epoch FROM pg_postmaster_start_time())::text, current_database()::text";
    let s = source
        .query_one(WHO, &[])
        .await
        .map_err(|e| DbError::new(&settings.source.display, "identifying the server", e))?;
    let t = admin
        .query_one(WHO, &[])
        .await
        .map_err(|e| DbError::new(&settings.target.admin.display, "identifying the server", e))?;
    let (source_started, source_db): (String, String) = (s.get(0), s.get(1));
    let (target_started, admin_db): (String, String) = (t.get(0), t.get(1));
    if source_started != target_started {
        return Ok(());
    }
    if source_db == settings.target.database {
        return Err(Error::Usage(format!(
            "target.database: {source_db} is the source database ({}), on the same server under another address; restage would replace production (nothing was changed)",
            settings.source.display
        )));
    }
    if source_db == admin_db {
        return Err(Error::Usage(format!(
            "target.url: connects to the source database ({source_db}), on the same server under another address; use a maintenance database of the staging server, such as postgres (nothing was changed)"
        )));
    }
    Ok(())
}

/// The source's extensions (name and version) that the target cannot install.
fn missing_extensions(source: &[(String, String)], available: &[String]) -> Vec<String> {
    source
        .iter()
        .filter(|(name, _)| !available.contains(name))
        .map(|(name, version)| format!("{name} {version}"))
        .collect()
}

/// Checks the target can hold the copy before anything is created: the extensions the
/// source uses are available, the grant roles exist.
pub async fn preflight(admin: &Client, settings: &Settings, catalog: &Catalog) -> Result<()> {
    let server = &settings.target.admin.display;
    let available: Vec<String> = admin
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .map_err(|e| DbError::new(server, "listing available extensions", e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let missing = missing_extensions(&catalog.extensions, &available);
    if !missing.is_empty() {
        return Err(Error::Runtime(format!(
            "{server}: the source uses extensions the staging server does not have: {}; install them on the staging server first (nothing was changed)",
            missing.join(", ")
        )));
    }
    access::check_roles(admin, server, &settings.target.grants).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_the_target_lacks_are_named_with_their_version() {
        let source = vec![
            ("plpgsql".to_string(), "1.0".to_string()),
            ("postgis".to_string(), "3.4.2".to_string()),
            ("citext".to_string(), "1.6".to_string()),
        ];
        let available = vec!["plpgsql".to_string(), "citext".to_string()];
        assert_eq!(
            missing_extensions(&source, &available),
            vec!["postgis 3.4.2"]
        );
        assert!(missing_extensions(&source[..1], &available).is_empty());
    }
}
