//! The refresh pipeline, stage by stage, in a fixed order:
//!
//! 1. settings and rules loaded (nothing touched yet); the lock taken on the target;
//! 2. [`snapshot`]: one read-only exported snapshot of the source; the [`crate::catalog`] read in it;
//! 3. rules bound to the catalog, strict mode checked, the sampling [`crate::plan`] made —
//!    any problem stops the run here, before anything is created;
//! 4. leftovers of earlier failed runs removed; a new database created (`building`);
//! 5. [`schema`] pre-data restored; [`copy`] streams every table through [`rows`];
//!    [`sequences`] set; derived columns recomputed ([`reindex`]);
//! 6. [`schema`] post-data (indexes, constraints — foreign keys validated here), materialized
//!    views refreshed, ANALYZE, [`access`] grants;
//! 7. [`generations::swap`]: the new database goes live in one transaction; old generations
//!    beyond `keep` dropped.
//!
//! Until step 7 the live staging database is untouched. Any failure, Ctrl-C or SIGTERM before
//! it drops the half-built database; a SIGKILL leaves it marked `building`, and the next run
//! removes it. The swap itself is never interrupted half-way.

pub mod access;
pub mod copy;
pub mod generations;
pub mod lock;
pub mod pause;
pub mod reindex;
pub mod rows;
pub mod schema;
pub mod sequences;
pub mod snapshot;
pub mod verify;
pub mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName, TypeKind};
use crate::cli::{RefreshArgs, RollbackArgs, ValidateArgs};
use crate::config::{Config, PgEndpoint, Strictness, UnruledTsvector};
use crate::db::{self, DbError, Role};
use crate::error::{Error, Result};
use crate::plan::{Decision, Plan};
use crate::progress::{DataProgress, Stage, Ui};
use crate::report::{Report, TableReport};
use crate::rules::{BoundRules, RuleSet};
use crate::secret::Secret;
use crate::transform::Catalogue;

use self::copy::{CopyJob, JobResult, page_ranges};
use self::reindex::DerivedColumn;
use self::rows::{ColumnAction, RowPlan};
use self::snapshot::Snapshot;

/// Tables at least this big (heap + TOAST) are split into ctid ranges copied in parallel.
/// `RESTAGE_SPLIT_BYTES` overrides it (tests use a tiny value to exercise splitting).
const DEFAULT_SPLIT_BYTES: u64 = 256 << 20;

/// What a refresh needs, resolved from the config.
#[derive(Debug)]
pub struct Settings {
    pub source: PgEndpoint,
    /// The maintenance connection on the staging server.
    pub admin: PgEndpoint,
    pub database: String,
    pub keep: u32,
    pub grants: Vec<String>,
    pub jobs: usize,
    pub secret: Option<Secret>,
    pub rules_path: PathBuf,
    pub rules_optional: bool,
    pub strict: Strictness,
    pub locale: String,
    pub derived: Vec<DerivedColumn>,
    pub refresh_materialized_views: bool,
    pub reindex: Vec<String>,
    pub unruled_tsvector: UnruledTsvector,
    pub split_bytes: u64,
    pub cache: Option<CacheSettings>,
    pub sample: crate::plan::SampleSettings,
}

/// The `cache:` section, resolved.
#[derive(Debug)]
pub struct CacheSettings {
    pub url: Secret,
    pub flush: Vec<String>,
    pub warm: Vec<crate::config::WarmConfig>,
    pub required: bool,
}

impl CacheSettings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<Option<CacheSettings>> {
        let Some(cache) = &config.file.cache else {
            return Ok(None);
        };
        let url = config
            .cache_url(command)?
            .unwrap_or_else(|| Secret::new("redis://127.0.0.1:6379/0"));
        Ok(Some(CacheSettings {
            url,
            flush: cache.flush.clone(),
            warm: cache.warm.clone(),
            required: cache.required,
        }))
    }
}

impl Settings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<Settings> {
        let source = config.source(command)?;
        let (admin, target) = config.target(command)?;
        let secret = match &config.file.secret {
            Some(_) => Some(config.secret(command)?),
            None => None,
        };
        let mut derived = Vec::new();
        let mut refresh_materialized_views = true;
        let mut reindex = Vec::new();
        let mut unruled_tsvector = UnruledTsvector::Refuse;
        if let Some(search) = &config.file.search {
            unruled_tsvector = search.unruled_tsvector.unwrap_or(UnruledTsvector::Refuse);
            refresh_materialized_views = search.refresh_materialized_views;
            reindex = search.reindex.clone();
            for (i, d) in search.tsvector.iter().enumerate() {
                let idx = i.to_string();
                derived.push(DerivedColumn::from_config(d).map_err(|e| {
                    config.value_error(&["search", "tsvector", idx.as_str(), "table"], e)
                })?);
            }
        }
        Catalogue::check_locale(config.locale())
            .map_err(|message| config.value_error(&["locale"], message))?;
        let split_bytes = std::env::var("RESTAGE_SPLIT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPLIT_BYTES);
        let settings = Settings {
            source,
            admin,
            database: target.database.clone(),
            keep: target.keep,
            grants: target.grants.clone(),
            jobs: config.jobs(),
            secret,
            rules_path: config.rules_path(),
            rules_optional: config.file.rules.is_none(),
            strict: config.strictness(),
            locale: config.locale().to_string(),
            derived,
            refresh_materialized_views,
            reindex,
            unruled_tsvector,
            split_bytes,
            cache: CacheSettings::from_config(config, command)?,
            sample: crate::plan::SampleSettings::from_config(config)?,
        };
        settings.check(config)?;
        Ok(settings)
    }

    /// Refuses configurations that could damage production or the live staging database.
    fn check(&self, config: &Config) -> Result<()> {
        let same_server = self.source.same_server(&self.admin);
        let source_db = self.source.dbname();
        if same_server && source_db == self.database {
            return Err(config
                .value_error(
                    &["target", "database"],
                    format!(
                        "is the source database ({source_db} on {}); restage would replace production",
                        self.source.display
                    ),
                )
                .into());
        }
        if same_server && source_db == self.admin.dbname() {
            return Err(config
                .value_error(
                    &["target", "url"],
                    format!(
                        "points at the source database ({source_db}); use a maintenance database of the staging server, such as postgres"
                    ),
                )
                .into());
        }
        if self.admin.dbname() == self.database
            || self
                .admin
                .dbname()
                .starts_with(&format!("{}{}", self.database, generations::INFIX))
        {
            return Err(config
                .value_error(
                    &["target", "url"],
                    format!(
                        "connects to {}, which restage renames; use a maintenance database such as postgres",
                        self.admin.dbname()
                    ),
                )
                .into());
        }
        Ok(())
    }

    pub fn building_endpoint(&self, name: &str) -> PgEndpoint {
        self.admin.with_database(name)
    }
}

/// Everything decided before the target is touched.
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
    settings: &Settings,
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
            let derived = settings
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

/// Loads rules, opens the snapshot, reads the catalog, binds and checks rules, plans.
pub async fn prepare(settings: &Settings, allow_unclassified: bool) -> Result<Prepared> {
    // Every problem at once: those of reading the files, then those of binding what loaded.
    let (rule_set, mut rule_problems) =
        RuleSet::load_partial(&settings.rules_path, settings.rules_optional);
    let snapshot = Arc::new(Snapshot::open(&settings.source).await?);
    let catalog = Catalog::read(snapshot.leader(), &settings.source.display).await?;
    let secret = settings.secret.clone().unwrap_or_default();
    let transforms = Catalogue::new(&secret, &settings.locale);
    let rules = match rule_set.bind(&catalog, &transforms) {
        Ok(rules) if rule_problems.is_empty() => rules,
        Ok(_) => return Err(Error::Rules(rule_problems)),
        Err(errors) => {
            rule_problems.extend(errors);
            return Err(Error::Rules(rule_problems));
        }
    };
    if settings.secret.is_none()
        && settings
            .sample
            .tables
            .values()
            .any(|s| s.percent.is_some() || s.max_rows.is_some())
    {
        return Err(Error::Usage(
            "sample: percent and max_rows choose rows by a keyed hash; restage.yaml needs `secret:`".into(),
        ));
    }
    if settings.secret.is_none() {
        let keyed: Vec<String> = rules
            .tables
            .iter()
            .flat_map(|(t, b)| {
                b.columns
                    .iter()
                    .filter(|c| c.transform.is_some() && c.rule.as_deref() != Some("set_null"))
                    .map(move |c| format!("{t}.{}", c.column))
            })
            .collect();
        if !keyed.is_empty() {
            return Err(Error::Usage(format!(
                "rules transform {} but restage.yaml has no `secret:` (the key of every pseudonym)",
                keyed.join(", ")
            )));
        }
    }
    let derived_problems = check_derived(&catalog, &settings.derived);
    if !derived_problems.is_empty() {
        return Err(Error::Rules(derived_problems));
    }
    let unclassified = strict_check(&catalog, &rules, settings, allow_unclassified)?;
    let leaky = unruled_tsvectors(&catalog, &rules, settings);
    let mut warnings = Vec::new();
    if !leaky.is_empty() {
        match settings.unruled_tsvector {
            UnruledTsvector::Refuse => {
                return Err(Error::Usage(format!("search: {}", leaky.join("; "))));
            }
            UnruledTsvector::Warn => {
                for w in &leaky {
                    tracing::warn!("{w}");
                }
                warnings.extend(leaky);
            }
        }
    }
    let plan = crate::plan::build(
        &catalog,
        &settings.sample,
        &snapshot,
        &secret,
        settings.jobs,
    )
    .await?;
    let jobs = build_jobs(&catalog, &rules, &plan, settings);
    Ok(Prepared {
        snapshot,
        catalog,
        rules,
        plan,
        jobs,
        unclassified,
        warnings,
        transforms,
    })
}

/// Strict mode: refuses (exit 2) when columns that look personal (`pii`) or any columns
/// (`all`) have no rule. With `allow_unclassified`, returns them instead, for the report.
pub fn strict_check(
    catalog: &Catalog,
    rules: &BoundRules,
    settings: &Settings,
    allow_unclassified: bool,
) -> Result<Vec<String>> {
    if settings.strict == Strictness::Off {
        return Ok(vec![]);
    }
    let mut offending = Vec::new();
    for table in catalog.data_tables() {
        let Some(bound) = rules.table(&table.name) else {
            continue;
        };
        // Report partitions under their root: one line per logical table.
        let shown = catalog.root_of(&table.name);
        for (column, b) in table.copy_columns().zip(&bound.columns) {
            if b.rule.is_some() {
                continue;
            }
            let why = match settings.strict {
                Strictness::All => Some("no rule".to_string()),
                Strictness::Pii => crate::scan::personal_name(&column.name)
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
        match settings.strict {
            Strictness::All => "all",
            _ => "pii",
        },
        offending.len(),
        offending.join("\n  ")
    )))
}

/// The transform stage's plan for a table: its bound rules (keep and unruled columns pass).
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
    }
}

/// One job per table, or per ctid range of a big table.
fn build_jobs(
    catalog: &Catalog,
    rules: &BoundRules,
    plan: &Plan,
    settings: &Settings,
) -> Vec<CopyJob> {
    let derived: BTreeMap<(&QualifiedName, &str), ()> = settings
        .derived
        .iter()
        .map(|d| ((&d.table, d.column.as_str()), ()))
        .collect();
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
            },
        };
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
                    estimated_rows: table_plan.estimated_rows / n,
                    estimated_bytes: table_plan.estimated_bytes / n,
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
                estimated_rows: table_plan.estimated_rows,
                estimated_bytes: table_plan.estimated_bytes,
            });
        }
    }
    jobs
}

/// The per-table lines of the report, before anything runs.
fn planned_tables(prepared: &Prepared) -> Vec<TableReport> {
    let mut out = Vec::new();
    for (name, tp) in &prepared.plan.tables {
        let mut rules = BTreeMap::new();
        if let Some(bound) = prepared.rules.table(name) {
            for c in &bound.columns {
                if let Some(rule) = &c.rule
                    && rule != "keep"
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
            estimated_bytes: if tp.decision == Decision::Empty {
                0
            } else {
                tp.estimated_bytes
            },
            ranges: prepared.jobs.iter().filter(|j| &j.table == name).count(),
            rules,
            ..TableReport::default()
        });
    }
    out
}

/// `restage refresh`.
pub async fn refresh(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<i32> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let report = match run(config, args, ui).await {
        Ok(report) => report,
        Err(e) => {
            // A failed run replaces the report file too: left in place, last night's success
            // would be what monitoring reads. Best effort: the error is what matters.
            if let Some(path) = &args.report {
                let failed = Report {
                    restage_version: env!("CARGO_PKG_VERSION"),
                    started_at,
                    finished_at: chrono::Utc::now().to_rfc3339(),
                    dry_run: args.dry_run,
                    outcome: format!("failed: {e}"),
                    exit_code: e.exit_code(),
                    ..Report::default()
                };
                if let Err(io) = std::fs::write(path, failed.to_json()) {
                    tracing::warn!(path = %path.display(), error = %io, "could not write the report");
                }
            }
            return Err(e);
        }
    };
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json())
            .map_err(|e| Error::io(format!("writing the report to {}", path.display()), e))?;
    }
    if ui.json {
        println!("{}", report.to_json());
    } else if ui.verbosity >= 0 || args.dry_run {
        print!("{}", report.to_text());
    }
    if report.exit_code != 0 {
        eprintln!("restage: {}", report.outcome);
    }
    Ok(report.exit_code)
}

/// Runs a refresh (or only plans it with `--dry-run`) and returns the report.
pub async fn run(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<Report> {
    let started = Instant::now();
    let settings = Settings::from_config(config, "refresh")?;
    let mut report = Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at: chrono::Utc::now().to_rfc3339(),
        dry_run: args.dry_run,
        source: settings.source.display.clone(),
        target: settings.admin.display.clone(),
        database: settings.database.clone(),
        ..Report::default()
    };

    if args.dry_run {
        let stage = Stage::start(ui, "plan");
        let prepared = prepare(&settings, args.allow_unclassified).await?;
        report.stage("plan", stage.done().as_secs_f64());
        report.tables = planned_tables(&prepared);
        report.sample = prepared
            .plan
            .summary
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
        report.unclassified_allowed = prepared.unclassified.clone();
        report.warnings.extend(prepared.warnings.clone());
        report.outcome = "plan only: nothing was changed".to_string();
        report.seconds = started.elapsed().as_secs_f64();
        report.finished_at = chrono::Utc::now().to_rfc3339();
        return Ok(report);
    }

    // The lock first: a second run must stop before it reads or changes anything.
    let admin = db::connect(&settings.admin, Role::Target).await?;
    lock::acquire(&admin, &settings.admin.display, &settings.database).await?;

    // SIGINT and SIGTERM are handled from here on: before the swap they stop the run and
    // remove what it created; during the swap they wait until it is done.
    let mut signal = std::pin::pin!(shutdown_signal());

    let stage = Stage::start(ui, "plan");
    let planned = async {
        let prepared = prepare(&settings, args.allow_unclassified).await?;
        check_target_is_not_source(&admin, prepared.snapshot.leader(), &settings).await?;
        preflight(&admin, &settings, &prepared.catalog).await?;
        let tools = schema::PgTools::find(prepared.catalog.server_version / 10000).await?;
        pause::point("plan").await;
        Ok::<_, Error>((prepared, tools))
    };
    let (prepared, tools) = tokio::select! {
        result = planned => result?,
        signal = &mut signal => return Err(Error::Interrupted {
            signal,
            outcome: "nothing was changed".into(),
        }),
    };
    report.stage("plan", stage.done().as_secs_f64());
    report.snapshot = Some(prepared.snapshot.id.clone());
    report.sample = prepared
        .plan
        .summary
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    report.unclassified_allowed = prepared.unclassified.clone();
    report.warnings.extend(prepared.warnings.clone());
    let mut tables = planned_tables(&prepared);

    // From here on the target changes.
    let server = settings.admin.display.clone();
    if generations::repair_live(&admin, &server, &settings.database).await? {
        report.warnings.push(
            "the live database refused connections after an interrupted swap; re-enabled".into(),
        );
    }
    report.leftovers_removed =
        generations::drop_leftovers(&admin, &server, &settings.database).await?;
    let birth = generations::timestamp(chrono::Utc::now());
    let building = generations::generation_name(&settings.database, &birth);
    report.built = Some(building.clone());

    let encoding = prepared.catalog.encoding.clone();
    let collate = prepared.catalog.collate.clone();
    let ctype = prepared.catalog.ctype.clone();
    let created_and_built = async {
        generations::create_building(
            &admin, &server, &building, &birth, &encoding, &collate, &ctype,
        )
        .await?;
        build(&settings, prepared, &tools, &building, ui, &mut report).await
    };
    let outcome = tokio::select! {
        result = created_and_built => result,
        signal = &mut signal => Err(Error::Interrupted {
            signal,
            outcome: "the half-built database was removed, staging is unchanged".into(),
        }),
    };
    if let Err(mut e) = outcome {
        if let Err(cleanup) = generations::drop_database(&admin, &server, &building).await {
            tracing::warn!(error = %cleanup, "could not remove the half-built database; the next run will");
            if let Error::Interrupted { outcome, .. } = &mut e {
                *outcome = format!(
                    "the half-built database {building} could not be removed (the next run removes it), staging is unchanged"
                );
            }
        }
        return Err(e);
    }
    report.stage_tables(&mut tables);
    report.tables = tables;

    // A required cache must be reachable before staging changes.
    if let Some(cache) = &settings.cache
        && cache.required
        && let Err(e) = warm::Cache::new(cache.url.clone()).connect().await
    {
        let _ = generations::drop_database(&admin, &server, &building).await;
        return Err(Error::Runtime(format!(
            "{e}; cache.required is true, so staging was not swapped (unchanged)"
        )));
    }
    pause::point("before-swap").await;

    // The swap is not interrupted: a signal that arrives now is acted on after it.
    let stage = Stage::start(ui, "swap");
    let now = generations::timestamp(chrono::Utc::now());
    match generations::swap(&admin, &server, &settings.database, &building, &birth, &now).await {
        Ok(outcome) => {
            report.swap = serde_json::to_value(&outcome).ok();
        }
        Err(e) => {
            let _ = generations::drop_database(&admin, &server, &building).await;
            return Err(e.into());
        }
    }
    report.stage("swap", stage.done().as_secs_f64());
    report.generations_dropped =
        generations::retain(&admin, &server, &settings.database, settings.keep).await?;

    report.outcome = format!(
        "staging database {} is live ({building} built)",
        settings.database
    );
    if let Some(cache) = &settings.cache {
        let stage = Stage::start(ui, "cache");
        let warmed = tokio::select! {
            result = async {
                pause::point("warm").await;
                warm_cache(&settings, cache).await
            } => result,
            signal = &mut signal => Err(Error::Runtime(format!("interrupted by {signal}"))),
        };
        match warmed {
            Ok(w) => report.cache = serde_json::to_value(&w).ok(),
            Err(e) => {
                report.cache = Some(serde_json::json!({ "warmed": false, "error": e.to_string() }));
                report.outcome = format!(
                    "staging database {} is live, but the cache was NOT warmed: {e}",
                    settings.database
                );
                report.exit_code = crate::error::exit::RUNTIME;
            }
        }
        report.stage("cache", stage.done().as_secs_f64());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.finished_at = chrono::Utc::now().to_rfc3339();
    Ok(report)
}

impl Report {
    /// Moves the per-table results gathered during the build into the planned table lines.
    fn stage_tables(&mut self, tables: &mut [TableReport]) {
        let results = std::mem::take(&mut self.tables);
        let by_name: BTreeMap<String, TableReport> =
            results.into_iter().map(|t| (t.table.clone(), t)).collect();
        for t in tables.iter_mut() {
            if let Some(r) = by_name.get(&t.table) {
                t.rows_read = r.rows_read;
                t.rows_written = r.rows_written;
                t.bytes_read = r.bytes_read;
                t.bytes_written = r.bytes_written;
                t.seconds = r.seconds;
                t.retries = r.retries;
                t.table_bytes = r.table_bytes;
            }
        }
        let mut totals = Report {
            tables: tables.to_vec(),
            ..Report::default()
        };
        totals.compute_totals();
        self.totals = totals.totals;
    }
}

/// Refuses a target that is the source under another address. [`Settings::check`] compares
/// the URLs, which cannot see that a host alias, an IP address, a Unix socket or a proxy lead
/// to the same server; this asks both servers. Two sessions are on the same server when its
/// postmaster started at the same instant (to the microsecond, as an epoch, so the sessions'
/// time zones do not matter). (A replica of the source is another server by this test.)
async fn check_target_is_not_source(
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
        .map_err(|e| DbError::new(&settings.admin.display, "identifying the server", e))?;
    let (source_started, source_db): (String, String) = (s.get(0), s.get(1));
    let (target_started, admin_db): (String, String) = (t.get(0), t.get(1));
    if source_started != target_started {
        return Ok(());
    }
    if source_db == settings.database {
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

/// Checks the target can hold the copy before anything is created: the extensions the
/// source uses are available, the grant roles exist.
pub async fn preflight(admin: &Client, settings: &Settings, catalog: &Catalog) -> Result<()> {
    let server = &settings.admin.display;
    let available: Vec<String> = admin
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .map_err(|e| DbError::new(server, "listing available extensions", e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = catalog
        .extensions
        .iter()
        .filter(|(name, _)| !available.contains(name))
        .map(|(name, version)| format!("{name} {version}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Runtime(format!(
            "{server}: the source uses extensions the staging server does not have: {}; install them on the staging server first (nothing was changed)",
            missing.join(", ")
        )));
    }
    access::check_roles(admin, server, &settings.grants).await
}

/// Builds the new database: schema, data, post-data, derived data, grants. Records results in
/// the report.
async fn build(
    settings: &Settings,
    prepared: Prepared,
    tools: &schema::PgTools,
    building: &str,
    ui: &Ui,
    report: &mut Report,
) -> Result<()> {
    let target = settings.building_endpoint(building);
    let server = settings.admin.display.clone();
    let Prepared {
        snapshot,
        catalog,
        jobs,
        rules: prepared_rules,
        transforms,
        ..
    } = prepared;

    let stage = Stage::start(ui, "schema");
    let archive = schema::dump(tools, &settings.source, &snapshot.id).await?;
    schema::restore(tools, &archive, &target, schema::Section::PreData, 1).await?;
    report.stage("schema (pre-data)", stage.done().as_secs_f64());
    pause::point("pre-data").await;

    let sequence_values = sequences::read(
        snapshot.leader(),
        &settings.source.display,
        &catalog.sequences,
    )
    .await?;

    let pool = db::target_pool(&target, settings.jobs + 1).map_err(Error::Runtime)?;
    let total_bytes: u64 = jobs.iter().map(|j| j.estimated_bytes).sum();
    let data_started = Instant::now();
    let progress = Arc::new(DataProgress::new(ui, jobs.len(), total_bytes));
    let results = copy::run(
        jobs,
        snapshot.clone(),
        pool.clone(),
        server.clone(),
        settings.jobs,
        progress.clone(),
    )
    .await
    .map_err(|e| Error::Runtime(e.to_string()))?;
    if let Ok(progress) = Arc::try_unwrap(progress) {
        progress.finish();
    }
    report.stage("data", data_started.elapsed().as_secs_f64());
    pause::point("data-done").await;
    let stage = Stage::start(ui, "leak sample");
    let probe = verify::sample_source(
        snapshot.leader(),
        &settings.source.display,
        &catalog,
        &prepared_rules,
    )
    .await?;
    report.stage("leak sample", stage.done().as_secs_f64());
    // The source is no longer needed: end the snapshot now rather than hold production's
    // xmin back until the indexes are built.
    drop(snapshot);
    report.tables = aggregate(&results);
    let unique = transforms.unique_stats();
    if unique.sets > 0 {
        report.unique = serde_json::to_value(unique).ok();
    }

    let client = pool
        .get()
        .await
        .map_err(|e| Error::Runtime(format!("{server}: connecting to {building}: {e}")))?;
    sequences::apply(&client, &server, &sequence_values).await?;
    report.sequences_set = sequence_values.len();

    if !settings.derived.is_empty() {
        let stage = Stage::start(ui, "derived columns");
        report.derived_columns_recomputed =
            reindex::recompute_derived(&client, &server, &settings.derived, true).await?;
        report.stage("derived columns", stage.done().as_secs_f64());
    }

    let stage = Stage::start(ui, "indexes");
    schema::restore(
        tools,
        &archive,
        &target,
        schema::Section::PostData,
        settings.jobs,
    )
    .await?;
    report.stage("schema (post-data)", stage.done().as_secs_f64());

    if settings.refresh_materialized_views {
        let stage = Stage::start(ui, "materialized views");
        report.materialized_views_refreshed =
            reindex::refresh_materialized_views(&client, &server).await?;
        report.stage("materialized views", stage.done().as_secs_f64());
    }
    reindex::reindex(&client, &server, &settings.reindex).await?;

    let stage = Stage::start(ui, "analyze");
    let names: Vec<QualifiedName> = catalog.data_tables().map(|t| t.name.clone()).collect();
    reindex::analyze(&pool, &server, &names, settings.jobs).await?;
    report.stage("analyze", stage.done().as_secs_f64());
    let sizes = client
        .query(
            "SELECT format('%s.%s', n.nspname, c.relname), pg_table_size(c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')",
            &[],
        )
        .await
        .map_err(|e| DbError::new(&server, "measuring the new tables", e))?;
    for row in sizes {
        let name: String = row.get(0);
        let bytes: i64 = row.get(1);
        if let Some(t) = report.tables.iter_mut().find(|t| t.table == name) {
            t.table_bytes = bytes.max(0) as u64;
        }
    }

    record_plan(
        &client,
        &server,
        &settings.source.display,
        building,
        &report.tables,
    )
    .await?;
    access::grant(&client, &server, building, &settings.grants).await?;

    pause::point("before-verify").await;
    let stage = Stage::start(ui, "verify");
    // Counts were checked while loading (each COPY's count as the server reported it).
    let verification = verify::verify(
        &pool,
        &server,
        &probe,
        verify::Counts::CheckedAtLoad,
        settings.jobs,
    )
    .await?;
    report.stage("verify", stage.done().as_secs_f64());
    report.verification = serde_json::to_value(&verification).ok();
    if !verification.passed {
        return Err(Error::Verify(format!(
            "{}; staging was not swapped (unchanged)",
            verification.summary()
        )));
    }
    Ok(())
}

/// Flushes and warms the cache from the live staging database.
async fn warm_cache(settings: &Settings, cache: &CacheSettings) -> Result<warm::WarmReport> {
    let live = settings.admin.with_database(&settings.database);
    let client = db::connect(&live, Role::Source).await?;
    warm::run(
        &warm::Cache::new(cache.url.clone()),
        &cache.flush,
        &cache.warm,
        &client,
        &live.display,
    )
    .await
}

/// Records the plan in the new database (schema `_restage`), so `restage verify` can check a
/// live staging database's counts later without the report.
async fn record_plan(
    client: &Client,
    server: &str,
    source: &str,
    building: &str,
    results: &[TableReport],
) -> Result<(), DbError> {
    let mut sql = String::from(
        "CREATE SCHEMA _restage;
         COMMENT ON SCHEMA _restage IS 'written by restage: what this staging database was built from';
         CREATE TABLE _restage.refresh (built text, source text, finished_at timestamptz, restage_version text);
         CREATE TABLE _restage.tables (table_name text PRIMARY KEY, planned_rows bigint NOT NULL);\n",
    );
    sql.push_str(&format!(
        "INSERT INTO _restage.refresh VALUES ({}, {}, now(), {});\n",
        db::quote_literal(building),
        db::quote_literal(source),
        db::quote_literal(env!("CARGO_PKG_VERSION"))
    ));
    for t in results {
        sql.push_str(&format!(
            "INSERT INTO _restage.tables VALUES ({}, {});\n",
            db::quote_literal(&t.table),
            t.rows_written
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "recording the plan in _restage", e))
}

/// Reads the plan recorded by [`record_plan`], if the database has one.
async fn recorded_plan(client: &Client) -> Option<BTreeMap<QualifiedName, u64>> {
    let rows = client
        .query("SELECT table_name, planned_rows FROM _restage.tables", &[])
        .await
        .ok()?;
    Some(
        rows.into_iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let n: i64 = r.get(1);
                QualifiedName::parse(&name)
                    .ok()
                    .map(|q| (q, n.max(0) as u64))
            })
            .collect(),
    )
}

/// Sums job results per table.
fn aggregate(results: &[JobResult]) -> Vec<TableReport> {
    let mut by_table: BTreeMap<String, TableReport> = BTreeMap::new();
    for r in results {
        let t = by_table
            .entry(r.table.to_string())
            .or_insert_with(|| TableReport {
                table: r.table.to_string(),
                ..TableReport::default()
            });
        t.rows_read += r.rows_read;
        t.rows_written += r.rows_written;
        t.bytes_read += r.bytes_read;
        t.bytes_written += r.bytes_written;
        t.seconds = t.seconds.max(r.seconds);
        t.retries += r.retries;
    }
    by_table.into_values().collect()
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => "SIGINT",
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => "SIGTERM",
    }
}

pub async fn validate(config: &Config, args: &ValidateArgs, ui: &Ui) -> Result<i32> {
    crate::validate::run(config, args, ui).await
}

/// `restage verify`: the live staging database against the source, now.
pub async fn verify_live(config: &Config, ui: &Ui) -> Result<i32> {
    let settings = Settings::from_config(config, "verify")?;
    let rule_set =
        RuleSet::load(&settings.rules_path, settings.rules_optional).map_err(Error::Rules)?;
    let source = db::connect(&settings.source, Role::Source).await?;
    let catalog = Catalog::read(&source, &settings.source.display).await?;
    let secret = settings.secret.clone().unwrap_or_default();
    let rules = rule_set
        .bind(&catalog, &Catalogue::new(&secret, &settings.locale))
        .map_err(Error::Rules)?;
    let probe = verify::sample_source(&source, &settings.source.display, &catalog, &rules).await?;
    let live = settings.admin.with_database(&settings.database);
    let pool = db::target_pool(&live, settings.jobs + 1).map_err(Error::Runtime)?;
    let client = pool.get().await.map_err(|e| {
        Error::Runtime(format!(
            "{}: cannot connect to the live staging database: {e}",
            live.display
        ))
    })?;
    let expected = recorded_plan(&client).await;
    let report = verify::verify(
        &pool,
        &live.display,
        &probe,
        match &expected {
            Some(e) => verify::Counts::Expected(e),
            None => verify::Counts::Unknown,
        },
        settings.jobs,
    )
    .await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if report.passed {
        println!(
            "verified {}: {} source values checked against {} staging values, no leak; {} foreign keys valid{}",
            live.display,
            report.leak_values_checked,
            report.staging_values_scanned,
            report.foreign_keys_checked,
            if expected.is_some() {
                "; row counts as planned"
            } else {
                ""
            }
        );
        for n in &report.notes {
            println!("note: {n}");
        }
    }
    if report.passed {
        Ok(0)
    } else {
        Err(Error::Verify(report.summary()))
    }
}

/// `restage warm`: flush and warm the cache from the live staging database.
pub async fn warm_live(config: &Config, ui: &Ui) -> Result<i32> {
    let (admin, target) = config.target("warm")?;
    let cache = CacheSettings::from_config(config, "warm")?.ok_or(
        crate::config::ConfigError::MissingSection {
            file: config.path.clone(),
            section: "cache",
            command: "warm",
        },
    )?;
    let live = admin.with_database(&target.database);
    let client = db::connect(&live, Role::Source).await?;
    let stage = Stage::start(ui, "cache");
    let report = warm::run(
        &warm::Cache::new(cache.url.clone()),
        &cache.flush,
        &cache.warm,
        &client,
        &live.display,
    )
    .await?;
    stage.done();
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "cache warmed: {} keys removed, {} keys written in {:.2}s ({:.0} keys/s)",
            report.flushed_keys, report.written_keys, report.seconds, report.keys_per_second
        );
    }
    Ok(0)
}

/// `restage reindex`: derived columns, materialized views, named indexes, statistics, on the
/// live staging database.
pub async fn reindex_live(config: &Config, ui: &Ui) -> Result<i32> {
    let settings = Settings::from_config(config, "reindex")?;
    let live = settings.admin.with_database(&settings.database);
    let pool = db::target_pool(&live, settings.jobs + 1).map_err(Error::Runtime)?;
    let client = pool.get().await.map_err(|e| {
        Error::Runtime(format!(
            "{}: cannot connect to the live staging database: {e}",
            live.display
        ))
    })?;
    let stage = Stage::start(ui, "reindex");
    let derived =
        reindex::recompute_derived(&client, &live.display, &settings.derived, false).await?;
    let views = if settings.refresh_materialized_views {
        reindex::refresh_materialized_views(&client, &live.display).await?
    } else {
        vec![]
    };
    reindex::reindex(&client, &live.display, &settings.reindex).await?;
    let catalog = Catalog::read(&client, &live.display).await?;
    let names: Vec<QualifiedName> = catalog.data_tables().map(|t| t.name.clone()).collect();
    reindex::analyze(&pool, &live.display, &names, settings.jobs).await?;
    stage.done();
    if ui.json {
        println!(
            "{}",
            serde_json::json!({ "derived_columns": derived, "materialized_views": views, "indexes": settings.reindex })
        );
    } else {
        println!(
            "reindexed {}: {} derived columns recomputed, {} materialized views refreshed, {} indexes rebuilt, statistics updated",
            live.display,
            derived.len(),
            views.len(),
            settings.reindex.len()
        );
    }
    Ok(0)
}

/// `restage generations`: the live database and the kept generations.
pub async fn generations(config: &Config, ui: &Ui) -> Result<i32> {
    let (admin_endpoint, target) = config.target("generations")?;
    let admin = db::connect(&admin_endpoint, Role::Target).await?;
    // Repair only with the lock: without it, another run may be inside its swap, where the
    // live database refuses connections on purpose.
    match lock::acquire(&admin, &admin_endpoint.display, &target.database).await {
        Ok(()) => {
            generations::repair_live(&admin, &admin_endpoint.display, &target.database).await?;
        }
        Err(Error::Locked(_)) => {
            tracing::info!("another restage run holds the lock; listing only");
        }
        Err(e) => return Err(e),
    }
    let list = generations::list(&admin, &admin_endpoint.display, &target.database).await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".to_string())
        );
        return Ok(0);
    }
    if list.is_empty() {
        println!(
            "no staging database {} on {}",
            target.database, admin_endpoint.display
        );
        return Ok(0);
    }
    println!(
        "{:<48}  {:<10}  {:<17}  {:>10}",
        "database", "state", "built", "size"
    );
    for db in &list {
        println!(
            "{:<48}  {:<10}  {:<17}  {:>10}",
            db.name,
            format!("{:?}", db.state).to_lowercase(),
            db.birth.clone().unwrap_or_else(|| "-".into()),
            if db.bytes >= 0 {
                crate::config::human_bytes(db.bytes as u64)
            } else {
                "-".to_string()
            }
        );
    }
    Ok(0)
}

/// `restage rollback [--to NAME]`: swaps a kept generation back in (the newest by default).
pub async fn rollback(config: &Config, args: &RollbackArgs, ui: &Ui) -> Result<i32> {
    let (admin_endpoint, target) = config.target("rollback")?;
    let server = admin_endpoint.display.clone();
    let admin = db::connect(&admin_endpoint, Role::Target).await?;
    lock::acquire(&admin, &server, &target.database).await?;
    generations::repair_live(&admin, &server, &target.database).await?;
    let list = generations::list(&admin, &server, &target.database).await?;
    let mut kept: Vec<&generations::DatabaseInfo> = list
        .iter()
        .filter(|d| d.state == generations::State::Generation && !d.is_live)
        .collect();
    kept.sort_by(|a, b| b.birth.cmp(&a.birth));
    let chosen = match &args.to {
        Some(name) => kept
            .iter()
            .find(|d| &d.name == name)
            .copied()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{server}: no kept generation named {name} (see `restage generations`)"
                ))
            })?,
        None => kept.first().copied().ok_or_else(|| {
            Error::Usage(format!(
                "{server}: no generation of {} is kept to roll back to",
                target.database
            ))
        })?,
    };
    let birth = chosen.birth.clone().unwrap_or_default();
    // A retired generation refuses connections; the swap re-enables them on the new live one.
    let now = generations::timestamp(chrono::Utc::now());
    let outcome = generations::swap(
        &admin,
        &server,
        &target.database,
        &chosen.name,
        &birth,
        &now,
    )
    .await?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        println!(
            "rolled back: {} is now {}{}",
            chosen.name,
            target.database,
            outcome
                .retired_as
                .as_ref()
                .map(|r| format!("; the previous live database is kept as {r}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}
