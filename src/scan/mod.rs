//! `restage scan`: finds columns that look like personal data and that no rule covers, by
//! their names ([`crate::pii::names`], in several languages) and by a bounded, read-only
//! sample of their values ([`sample`], judged by [`crate::pii::values`]), including inside
//! json/jsonb documents path by path. It prints what it found with its evidence and a
//! proposed rule; `--write FILE` writes the proposals as a rules file that passes as is
//! ([`propose`], fitted to the schema by [`fit`]). The detectors are `pii`'s, shared with strict mode; scan owns the sampling,
//! the findings and the proposals.
//!
//! ```text
//! catalog + rules ──► columns no rule covers ──► sample (TABLESAMPLE / LIMIT, read-only)
//!                                                   │
//!       table / --json / --write FILE ◄── findings ◄┘ (name + values → confidence)
//! ```
//!
//! Decisions (documented for users in `docs/scan.md`):
//! - Coverage follows the rules loader: a rule on the column, on a partitioned ancestor, or
//!   a wildcard other than `keep` covers a column, and such columns are not even sampled.
//!   An explicit `column: keep` is a decision and is respected. A column only a `"*": keep`
//!   covers is still scanned, and reported when it looks personal with at least medium
//!   confidence ("covered by `*: keep`, but …"): that wildcard is how new columns leak.
//! - A partitioned table is scanned and reported once, under its root, since rules on the
//!   root cover every partition.
//! - Evidence never includes a sampled value, and neither does a JSON path: object keys that
//!   are data (numbers, uuids, emails) become `*`.
//! - Exit code: 0 when the scan ran, whatever it found (findings are output, not failure);
//!   3 with `--fail-on-findings` when something at or above `--min-confidence` was found (the
//!   spec's "verification failed", for CI); 1 and 2 as for every command.
//! - A table that cannot be sampled (permission denied, timeout) is reported on stderr and
//!   judged by column names alone; a lost connection ends the scan.

pub mod findings;
pub mod fit;
pub mod propose;
pub mod sample;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use std::collections::BTreeSet;

use crate::catalog::{Catalog, Constraints, QualifiedName, Table, TableKind};
use crate::config::Config;
use crate::db::{self, Role};
use crate::error::{Error, Result, exit};
use crate::pii::Level;
use crate::progress::{Stage, Ui};
use crate::rules::{RuleSet, WILDCARD};

pub use findings::{Coverage, Finding};
pub use propose::{Proposal, Target, propose};

/// `restage scan`.
#[derive(Debug, Args, Clone)]
pub struct ScanArgs {
    /// Write proposed rules for the findings to FILE (they pass as they are; low findings as comments).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Rows sampled per table for value detection (0: judge by column names only).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sample_rows: usize,
    /// Report only findings at or above this confidence.
    #[arg(long, value_enum, default_value_t = Level::Low, value_name = "LEVEL")]
    pub min_confidence: Level,
    /// Exit with code 3 when anything is found (for CI); otherwise findings exit 0.
    #[arg(long)]
    pub fail_on_findings: bool,
}

use findings::{ColumnFacts, Sampled};
use sample::Probe;

/// Runs `restage scan`; returns the exit code (see the module doc).
pub async fn run(config: &Config, args: &ScanArgs, ui: &Ui) -> Result<i32> {
    let endpoint = config.source("scan")?;
    let rules = load_rules(config)?;
    if let Some(out) = &args.write {
        refuse_to_overwrite_rules(out, &rules)?;
    }
    let Scanned {
        mut found,
        total,
        sampled_tables,
        unsampled,
    } = scan_source(config, &endpoint, &rules, args.sample_rows, ui).await?;

    found.retain(|f| f.level >= args.min_confidence);

    print_findings(&found, ui)?;
    if let Some(out) = &args.write {
        write_rules(out, &found, &endpoint.display, args.sample_rows)?;
    }
    let wildcard = found.iter().filter(|f| f.covered_by.is_some()).count();
    if ui.verbosity >= 0 {
        tracing::info!(
            tables = total,
            sampled = sampled_tables,
            sample_rows = args.sample_rows,
            findings = found.len(),
            kept_by_wildcard = wildcard,
            "scan finished"
        );
    }
    if !unsampled.is_empty() {
        tracing::warn!(tables = %unsampled.join(", "), "not sampled: findings there rest on column names only");
    }
    Ok(if args.fail_on_findings && !found.is_empty() {
        exit::VERIFY
    } else {
        exit::OK
    })
}

/// What one scan of a source found.
pub struct Scanned {
    /// Sorted by table, column and path; fitted to the schema ([`fit`]).
    pub found: Vec<Finding>,
    pub total: usize,
    pub sampled_tables: usize,
    pub unsampled: Vec<String>,
}

/// Scans the source: catalogue, samples, findings, fitted proposals. Read-only.
pub async fn scan_source(
    config: &Config,
    endpoint: &crate::db::PgEndpoint,
    rules: &RuleSet,
    sample_rows: usize,
    ui: &Ui,
) -> Result<Scanned> {
    let client = db::connect(endpoint, Role::Source).await?;
    sample::prepare_session(&client, &endpoint.display).await?;
    let catalog = Catalog::read(&client, &endpoint.display).await?;
    let constraints = Constraints::read(&client, &endpoint.display, &catalog).await?;
    let unique = fit::unique_columns(&catalog, &constraints);
    let exclusion = fit::exclusion_columns(&catalog, &constraints);
    let units = plan(&catalog, rules, &unique);

    let stage = Stage::start(ui, "scan");
    let mut found: Vec<Finding> = Vec::new();
    let mut sampled_tables = 0usize;
    let mut unsampled: Vec<String> = Vec::new();
    let total = units.len();
    for (i, unit) in units.iter().enumerate() {
        stage.message(&format!("{} ({}/{total})", unit.table.name, i + 1));
        let probes: Vec<(&str, Probe)> = unit
            .columns
            .iter()
            .filter_map(|c| {
                let probe = sample::probe_for(&c.column.ty)?;
                Some((c.column.name.as_str(), probe))
            })
            .collect();
        let mut samples: Vec<Option<Sampled>> = vec![None; unit.columns.len()];
        if !probes.is_empty() && sample_rows > 0 {
            match sample::sample_table(
                &client,
                &endpoint.display,
                &unit.table.name,
                unit.only,
                unit.estimated_rows,
                &probes,
                sample_rows,
            )
            .await
            {
                Ok(s) => {
                    sampled_tables += 1;
                    tracing::debug!(table = %unit.table.name, rows = s.rows, method = %s.method, "sampled");
                    // The probes were taken from the columns in order.
                    let mut results = s.columns.into_iter();
                    for (slot, c) in samples.iter_mut().zip(&unit.columns) {
                        if sample::probe_for(&c.column.ty).is_some() {
                            *slot = results.next();
                        }
                    }
                }
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(table = %unit.table.name, "cannot sample, judging by column names only: {e}");
                    unsampled.push(unit.table.name.to_string());
                }
            }
        }
        for (c, sampled) in unit.columns.iter().zip(&samples) {
            let facts = ColumnFacts {
                table: &unit.table.name,
                column: c.column,
                unique: c.unique,
                coverage: c.coverage,
            };
            found.extend(findings::judge(facts, sampled.as_ref()));
        }
    }
    stage.done();

    // Fitted to the schema, so the proposals pass as they are (see `fit`).
    let recomputed: BTreeSet<(QualifiedName, String)> = config
        .file
        .search
        .iter()
        .flat_map(|s| &s.tsvector)
        .filter_map(|d| {
            let t = QualifiedName::parse(&d.table).ok()?;
            Some((catalog.root_of(&t), d.column.clone()))
        })
        .collect();
    let cover = |t: &QualifiedName, c: &str| match catalog.table(t) {
        Some(table) => catalog
            .leaves(&table.name)
            .iter()
            .map(|leaf| coverage(&catalog, rules, leaf, c))
            .max()
            .unwrap_or(Coverage::Uncovered),
        None => Coverage::Covered,
    };
    let schema = fit::Schema {
        catalog: &catalog,
        unique: &unique,
        exclusion: &exclusion,
        coverage: &cover,
        recomputed: &recomputed,
    };
    fit::settle(&mut found, &schema);
    let locale = config.file.locale.as_deref().unwrap_or("en");
    fit::gate(&client, &catalog, &constraints, &mut found, &unique, locale).await;
    fit::foreign_keys(&mut found, &schema);

    found.sort_by(|a, b| (&a.table, &a.column, &a.path).cmp(&(&b.table, &b.column, &b.path)));
    Ok(Scanned {
        found,
        total,
        sampled_tables,
        unsampled,
    })
}

/// The rules as written. The default `rules/` may be missing (a first scan has none); a
/// `rules:` the user named must exist.
fn load_rules(config: &Config) -> Result<RuleSet> {
    let optional = config.file.rules.is_none();
    RuleSet::load(&config.rules_path(), optional).map_err(Error::Rules)
}

/// `--write` onto a loaded rules file would replace rules with proposals for what they did
/// not cover, and the next scan would see even less: refuse.
fn refuse_to_overwrite_rules(out: &Path, rules: &RuleSet) -> Result<()> {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(target) = canonical(out) else {
        return Ok(());
    };
    if rules
        .files
        .iter()
        .any(|f| canonical(f).as_ref() == Some(&target))
    {
        return Err(Error::Usage(format!(
            "{}: is one of the rules files scan reads; write the proposals to a new file and merge them by hand",
            out.display()
        )));
    }
    Ok(())
}

/// A table as scan reads and reports it: an ordinary table, or a partitioned root with its
/// partitions.
struct Unit<'a> {
    table: &'a Table,
    only: bool,
    estimated_rows: f64,
    columns: Vec<UnitColumn<'a>>,
}

struct UnitColumn<'a> {
    column: &'a crate::catalog::Column,
    coverage: Coverage,
    unique: bool,
}

/// The tables to scan and, per column, how the rules cover it. Columns rules cover are left
/// out (and so never read); so are generated columns, which rules cannot target.
fn plan<'a>(
    catalog: &'a Catalog,
    rules: &RuleSet,
    unique: &BTreeSet<(QualifiedName, String)>,
) -> Vec<Unit<'a>> {
    let mut units = Vec::new();
    for table in catalog.tables.values().filter(|t| t.parent.is_none()) {
        let (leaves, only): (Vec<&Table>, bool) = match table.kind {
            TableKind::Ordinary => (vec![table], true),
            TableKind::Partitioned => (catalog.leaves(&table.name), false),
        };
        if leaves.is_empty() {
            continue;
        }
        let estimated_rows = leaves.iter().map(|t| t.estimated_rows.max(0.0)).sum();
        let columns: Vec<UnitColumn<'_>> = table
            .columns
            .iter()
            .filter(|c| !c.generated)
            .filter_map(|c| {
                // The weakest coverage over the partitions: one uncovered partition leaks.
                let coverage = leaves
                    .iter()
                    .map(|leaf| coverage(catalog, rules, leaf, &c.name))
                    .max()
                    .unwrap_or(Coverage::Uncovered);
                (coverage != Coverage::Covered).then(|| UnitColumn {
                    column: c,
                    coverage,
                    // Any unique key that reads it: composite, partial, `lower(name)`.
                    unique: unique.contains(&(table.name.clone(), c.name.clone()))
                        || table
                            .unique_keys
                            .iter()
                            .any(|k| k.len() == 1 && k[0] == c.name),
                })
            })
            .collect();
        if !columns.is_empty() {
            units.push(Unit {
                table,
                only,
                estimated_rows,
                columns,
            });
        }
    }
    units
}

/// How the rules cover `column` of a table that holds rows, as [`RuleSet::bind`] resolves
/// it: a rule naming the column on the table or an ancestor, else the nearest wildcard.
pub fn coverage(catalog: &Catalog, rules: &RuleSet, table: &Table, column: &str) -> Coverage {
    let layers: Vec<_> = catalog
        .lineage(&table.name)
        .into_iter()
        .filter_map(|t| rules.tables.get(&t.name))
        .collect();
    if layers.iter().any(|r| r.columns.contains_key(column)) {
        return Coverage::Covered;
    }
    match layers.iter().find_map(|r| r.columns.get(WILDCARD)) {
        Some(rule) if rule.def().is_some_and(|d| d.passes_through()) => Coverage::WildcardKeep,
        Some(_) => Coverage::Covered,
        None => Coverage::Uncovered,
    }
}

/// The findings on stdout: a JSON array with `--json`, a table otherwise.
fn print_findings(found: &[Finding], ui: &Ui) -> Result<()> {
    let text = if ui.json {
        let mut s = serde_json::to_string_pretty(found)
            .map_err(|e| Error::Runtime(format!("encoding findings as JSON: {e}")))?;
        s.push('\n');
        s
    } else if found.is_empty() {
        "no column outside the rules looks personal\n".to_string()
    } else {
        findings::render_table(found)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => Ok(()),
        // `restage scan | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing findings to stdout", e)),
    }
}

/// Writes the proposed rules to `out`, through a temporary file renamed into place so a
/// failed write never leaves half a rules file in a rules folder.
pub fn write_rules(out: &Path, found: &[Finding], server: &str, sample_rows: usize) -> Result<()> {
    let header = format!(
        "Proposed by `restage scan` from a sample of {server} (up to {} rows per table) at {}.\n\
         Review every rule before use: a sample is not every row, and names can mislead.\n\
         {} finding(s), {} written as rules; the others are comments, with the reason.\n\
         Evidence is counts and column names only, never values.",
        sample_rows,
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        found.len(),
        found.iter().filter(|f| f.written).count()
    );
    let yaml = propose::rules_yaml(found, &header);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = out
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a file name", out.display())))?;
    let tmp = dir.join(format!(
        ".{}.restage-tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, yaml).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("writing {}", out.display()), e)
    })?;
    tracing::info!(file = %out.display(), rules = found.len(), "proposed rules written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnType, QualifiedName, TypeKind};
    use std::collections::BTreeMap;

    fn table(name: &str, kind: TableKind, parent: Option<&str>, columns: &[&str]) -> Table {
        Table {
            name: QualifiedName::new("public", name),
            oid: 0,
            kind,
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    ty: ColumnType::simple("text", TypeKind::Text),
                    not_null: false,
                    generated: false,
                    binary_copy: None,
                })
                .collect(),
            primary_key: vec![],
            unique_keys: vec![vec!["email".into()]],
            parent: parent.map(|p| QualifiedName::new("public", p)),
            estimated_rows: 100.0,
            bytes: 0,
            pages: 0,
        }
    }

    fn catalog(tables: Vec<Table>) -> Catalog {
        Catalog {
            tables: tables
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect::<BTreeMap<_, _>>(),
            foreign_keys: vec![],
            sequences: vec![],
            materialized_views: vec![],
            extensions: vec![],
            server_version: 150000,
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
        }
    }

    fn rules(text: &str) -> RuleSet {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        set.add_file(text, Path::new("r.yaml"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        set
    }

    #[test]
    fn coverage_follows_the_rules() {
        let c = catalog(vec![
            table(
                "users",
                TableKind::Ordinary,
                None,
                &["email", "note", "name"],
            ),
            table("events", TableKind::Partitioned, None, &["ip", "kind"]),
            table(
                "events_1",
                TableKind::Ordinary,
                Some("events"),
                &["ip", "kind"],
            ),
            table(
                "events_2",
                TableKind::Ordinary,
                Some("events"),
                &["ip", "kind"],
            ),
        ]);
        let r = rules(
            "tables:\n  users:\n    email: email\n    name: keep\n    \"*\": keep\n  events_1:\n    ip: ipv4\n",
        );
        let users = &c.tables[&QualifiedName::new("public", "users")];
        assert_eq!(coverage(&c, &r, users, "email"), Coverage::Covered);
        assert_eq!(coverage(&c, &r, users, "name"), Coverage::Covered);
        assert_eq!(coverage(&c, &r, users, "note"), Coverage::WildcardKeep);

        let units = plan(&c, &r, &BTreeSet::new());
        let names: Vec<String> = units.iter().map(|u| u.table.name.to_string()).collect();
        assert_eq!(names, ["public.events", "public.users"]);
        let events = &units[0];
        assert!(!events.only);
        assert_eq!(events.estimated_rows, 200.0);
        // events_2 has no rule for ip: the root is still uncovered.
        let cols: Vec<(&str, Coverage)> = events
            .columns
            .iter()
            .map(|c| (c.column.name.as_str(), c.coverage))
            .collect();
        assert_eq!(
            cols,
            [("ip", Coverage::Uncovered), ("kind", Coverage::Uncovered)]
        );
        let users = &units[1];
        assert!(users.only);
        let cols: Vec<&str> = users
            .columns
            .iter()
            .map(|c| c.column.name.as_str())
            .collect();
        assert_eq!(cols, ["note"]);

        let r = rules("tables:\n  events:\n    \"*\": set_null\n");
        assert!(
            plan(&c, &r, &BTreeSet::new())
                .iter()
                .all(|u| u.table.name.name != "events")
        );
    }

    /// What a name finding proposes (moved here from the classifier's tests when the
    /// classifier became `pii`: the proposal is scan's).
    #[test]
    fn name_finding_proposes_a_transform() {
        let f = crate::pii::classify_name("courriel", &TypeKind::Text).expect("courriel");
        assert_eq!(
            propose::default_transform(f.category, &TypeKind::Text),
            "email"
        );
        let f = crate::pii::classify_name("dob", &TypeKind::Date).expect("dob");
        assert_eq!(
            propose::default_transform(f.category, &TypeKind::Date),
            "date_shift"
        );
    }
}
