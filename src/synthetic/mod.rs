//! Synthetic data (`source.mode: synthetic`, `restage generate`): the schema comes from
//! production (or from a schema-only `pg_dump -Fc` archive, `source.schema_archive`, with no
//! connection to production at all); every row is generated.
//!
//! It is the refresh pipeline: the refresh plans as usual (snapshot, catalog, rules bound),
//! then this module's [`Synthesizer`] (through the seam [`crate::refresh::generated`])
//! replaces the copy jobs with generated ones — [`model`] decides the row counts and a
//! generator per column, [`source::TableRows`] makes the COPY text in batches on the rayon
//! pool — and the refresh goes on: pre-data, COPY in through the rules (a ruled column's
//! value is its transform of the generated input), sequences set past the generated keys,
//! post-data with the foreign keys validated, verification (no production value to look
//! for: the leak sample is empty), swap, generations, warm.
//!
//! Deterministic: a value is a function of (seed, table, column, row), so the same seed,
//! schema and scale give the same rows, whatever `jobs` says.
//!
//! With a schema archive the archive is restored into a scratch database on the staging
//! server (`restage_schema_<pid>`, dropped at the end), which the run then reads as its source:
//! no statistics there, so row counts are `rows:` or [`model::DEFAULT_ROWS`] × scale.
//!
//! Hybrid mode (`source.mode: hybrid`): the tables a rules file marks `from: synthetic` are
//! generated, every other one is copied as a refresh copies it (rules, subsetting, strict
//! mode, the leak probe and the identity check: the same pipeline). Foreign keys between the
//! two kinds:
//!
//! - a generated table's reference to a copied one takes the copied keys *as loaded in the
//!   new database*: such generated tables are loaded in a second wave, after the copied
//!   tables, once their keys were read ([`Synthesis::loaded`]). Read from the new database
//!   rather than from the production snapshot because that is the only place where what was
//!   copied is exact: the subset's filter, `dangling: drop`/`set_null`, and rules on key
//!   columns all decide in the row stage which keys exist in staging, and reading them back
//!   needs no second implementation of any of it.
//! - a copied table's reference to a generated one is remapped in the row stage
//!   ([`remap`]): the same production key gives the same generated parent (a composite key
//!   as a whole), NULL stays NULL.
//!
//! A generated table's key that is itself taken from a copied table, referenced by a copied
//! table, is refused at plan time (the copied table would have to wait for itself).

pub mod check;
pub mod json_shape;
pub mod model;
pub mod remap;
pub mod source;
pub mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use crate::catalog::{Catalog, Constraints, QualifiedName, TableKind, TypeKind};
use crate::config::{Config, SourceMode, Strictness};
use crate::db::{self, DbError, PgEndpoint, Role, quote_ident};
use crate::error::{Error, Result};
use crate::plan::{Decision, TablePlan};
use crate::progress::Ui;
use crate::refresh::copy::CopyJob;
use crate::refresh::generated::Synthesis;
use crate::refresh::rows::{ColumnAction, RowPlan};
use crate::refresh::{Finished, RefreshArgs, Settings};
use crate::rules::{DataFrom, SyntheticTable};

use self::model::{ColumnStats, Gen, Inputs};

/// Tables up to this many pages are counted (exact) rather than estimated.
const COUNT_PAGES: u64 = 12_800;

/// `restage generate` options (those of `restage refresh`).
pub type GenerateArgs = RefreshArgs;

/// What the generation takes from the config and the rules.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub scale: f64,
    /// Read `pg_stats` and count small tables (not with a schema archive).
    pub read_production: bool,
    pub default_rows: u64,
    pub specs: BTreeMap<QualifiedName, SyntheticTable>,
    /// Derived columns (`search.tsvector`): recomputed after the load.
    pub derived: BTreeSet<(QualifiedName, String)>,
    /// Hybrid mode: only the tables marked `from: synthetic` are generated.
    pub hybrid: bool,
}

/// The [`Synthesis`] of `restage generate`.
#[derive(Debug)]
pub struct Synthesizer {
    pub options: Options,
    /// The model of the run, once planned (hybrid: its pools are filled between the waves).
    model: Mutex<Option<Arc<model::Model>>>,
    /// The generated tables of the second wave.
    later: Mutex<BTreeSet<QualifiedName>>,
}

impl Synthesizer {
    pub fn new(options: Options) -> Synthesizer {
        Synthesizer {
            options,
            model: Mutex::new(None),
            later: Mutex::new(BTreeSet::new()),
        }
    }

    /// The tables (units) generated in hybrid mode: those marked `from: synthetic`.
    fn hybrid_generated(&self) -> BTreeSet<QualifiedName> {
        self.options
            .specs
            .iter()
            .filter(|(_, s)| s.from == Some(DataFrom::Synthetic))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// `restage generate` (and `restage refresh` with `source.mode: synthetic`).
pub async fn generate(config: &Config, args: &GenerateArgs, ui: &Ui) -> Result<i32> {
    let finished = generate_reported(config, args, ui).await;
    finished.print_outcome();
    finished.result
}

/// The source section's mode, `production` when there is none.
pub fn mode(config: &Config) -> SourceMode {
    config
        .file
        .source
        .as_ref()
        .map(|s| s.mode)
        .unwrap_or_default()
}

/// [`generate`], returning the report with the result.
pub async fn generate_reported(config: &Config, args: &GenerateArgs, ui: &Ui) -> Finished {
    let mut scratch = None;
    let settings = resolve_settings(config, "generate", &mut scratch)
        .await
        .map(|(settings, _)| settings);
    let finished = crate::refresh::refresh_reported_with(settings, args, ui).await;
    if let Some(scratch) = scratch {
        scratch.remove().await;
    }
    finished
}

/// The scratch database a schema archive was restored into; [`Scratch::remove`] drops it.
pub struct Scratch {
    admin: PgEndpoint,
    name: String,
}

impl Scratch {
    /// Drops the scratch database (a failure is a warning: the run's outcome stands).
    pub async fn remove(self) {
        if let Err(e) = drop_database(&self.admin, &self.name).await {
            tracing::warn!(database = %self.name, error = %e, "could not drop the scratch database of the schema archive");
        }
    }
}

/// The refresh settings of a generation (synthetic or hybrid) for `command`, with its
/// synthesizer. With a schema archive, the archive is restored first and `scratch` names the
/// database it went into — set as soon as it exists, so the caller drops it whatever happens
/// next.
pub async fn resolve_settings(
    config: &Config,
    command: &'static str,
    scratch: &mut Option<Scratch>,
) -> Result<(Settings, Arc<Synthesizer>)> {
    let archive = config
        .file
        .source
        .as_ref()
        .and_then(|s| s.schema_archive.clone())
        .map(|p| resolve(config, &p));
    let settings = match &archive {
        Some(path) if mode(config) != SourceMode::Hybrid => {
            let (admin, target) = config.target(command)?;
            let name = format!("restage_schema_{}", std::process::id());
            let endpoint = restore_archive(&admin, path, &name, &target.database).await?;
            *scratch = Some(Scratch {
                admin,
                name: name.clone(),
            });
            Settings::with_source(config, command, endpoint)?
        }
        _ => Settings::from_config(config, command)?,
    };
    prepare_settings(config, settings, archive.is_none())
}

/// The refresh settings of a generation: the synthesizer, no sampling, no strict mode (no
/// production value is copied).
fn prepare_settings(
    config: &Config,
    mut settings: Settings,
    read_production: bool,
) -> Result<(Settings, Arc<Synthesizer>)> {
    let source = config.file.source.as_ref();
    let scale = source.and_then(|s| s.scale).unwrap_or(1.0);
    if !(scale.is_finite() && scale >= 0.0) {
        return Err(Error::Usage(format!(
            "source.scale: {scale} is not a factor ≥ 0"
        )));
    }
    let hybrid = mode(config) == SourceMode::Hybrid;
    let (rule_set, mut problems) = crate::refresh::checks::read_rules(&settings.rules);
    if hybrid {
        problems.extend(hybrid_problems(config, &settings, &rule_set));
    } else {
        problems.extend(rule_set.misplaced_from("synthetic"));
    }
    if !problems.is_empty() {
        return Err(crate::refresh::checks::problems_error(problems));
    }
    let derived = settings
        .search
        .derived
        .iter()
        .map(|d| (d.table.clone(), d.column.clone()))
        .collect();
    let synthesizer = Arc::new(Synthesizer::new(Options {
        seed: source.and_then(|s| s.seed).unwrap_or(0),
        scale,
        read_production,
        default_rows: model::DEFAULT_ROWS,
        specs: rule_set.synthetic,
        derived,
        hybrid,
    }));
    settings.synthetic = Some(synthesizer.clone());
    // Hybrid mode copies production tables as a refresh does: sampling and strict mode stay
    // (strict mode asks no rule of the generated tables: `Synthesis::generated_tables`).
    if !hybrid {
        settings.sample = crate::plan::SampleSettings::default();
        settings.rules.strict = Strictness::Off;
    }
    Ok((settings, synthesizer))
}

/// What hybrid mode refuses of the config and the rules before anything is read: no
/// production to copy from (a schema archive), a storage cap (its rescale reloads sampled
/// tables from production, generated ones included), `rows:` or `generate:` on a table that
/// is copied.
fn hybrid_problems(
    config: &Config,
    settings: &Settings,
    rule_set: &crate::rules::RuleSet,
) -> Vec<String> {
    let mut problems = Vec::new();
    if config
        .file
        .source
        .as_ref()
        .is_some_and(|s| s.schema_archive.is_some())
    {
        problems.push(
            "source.schema_archive: hybrid mode copies tables from production and needs source.url, not a schema archive (use mode: synthetic; nothing was changed)"
                .to_string(),
        );
    }
    if settings.sample.storage.is_some() {
        problems.push(
            "sample.max_storage: not supported with source.mode: hybrid yet (a rescale would reload the sampled tables from production, generated ones included); give roots a percent or rows instead (nothing was changed)"
                .to_string(),
        );
    }
    for (name, spec) in &rule_set.synthetic {
        if spec.from == Some(DataFrom::Synthetic) {
            continue;
        }
        if spec.rows.is_some() || !spec.generate.is_empty() {
            problems.push(format!(
                "{}: synthetic.{name}: rows: and generate: are for generated tables, and {name} is copied from production (add `from: synthetic` to generate it)",
                spec.location
            ));
        }
    }
    problems
}

fn resolve(config: &Config, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    config
        .path
        .parent()
        .map(|d| d.join(path))
        .unwrap_or_else(|| path.to_path_buf())
}

/// Restores the schema-only archive `path` into a new database `name` on the staging
/// server; its endpoint.
async fn restore_archive(
    admin: &PgEndpoint,
    path: &Path,
    name: &str,
    database: &str,
) -> Result<PgEndpoint> {
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "source.schema_archive: {}: no such file (nothing was changed)",
            path.display()
        )));
    }
    if name == database {
        return Err(Error::Usage(
            "the scratch database would be the target".into(),
        ));
    }
    let client = db::connect(admin, Role::Target).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'",
            quote_ident(name)
        ),
    ] {
        client.batch_execute(&sql).await.map_err(|e| {
            DbError::new(
                &admin.display,
                "creating the scratch database of the schema archive",
                e,
            )
        })?;
    }
    let endpoint = admin.with_database(name);
    let tools = crate::refresh::schema::PgTools::find(0).await?;
    let mut cmd = tokio::process::Command::new(&tools.pg_restore);
    cmd.arg("--no-owner")
        .arg("--no-acl")
        .arg("--exit-on-error")
        .arg("--schema-only")
        .arg(format!("--dbname={}", endpoint.dbname()))
        .arg(path);
    for (k, v) in endpoint.libpq_env() {
        cmd.env(k, v);
    }
    let output = cmd
        .output()
        .await
        .map_err(|e| Error::io("running pg_restore for the schema archive", e))?;
    if !output.status.success() {
        let _ = drop_database(admin, name).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Usage(format!(
            "source.schema_archive: {}: pg_restore failed (is it a `pg_dump --schema-only -Fc` archive?): {}",
            path.display(),
            stderr.lines().take(5).collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(endpoint)
}

async fn drop_database(admin: &PgEndpoint, name: &str) -> Result<()> {
    let client = db::connect(admin, Role::Target).await?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| DbError::new(&admin.display, "dropping the scratch database", e))?;
    Ok(())
}

impl Synthesis for Synthesizer {
    fn prepare<'a>(
        &'a self,
        prepared: &'a mut crate::refresh::Prepared,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.prepare_jobs(prepared).await })
    }

    fn copies_production(&self) -> bool {
        self.options.hybrid
    }

    fn generated_tables(&self) -> BTreeSet<QualifiedName> {
        if self.options.hybrid {
            self.hybrid_generated()
        } else {
            BTreeSet::new()
        }
    }

    fn load_later(&self) -> BTreeSet<QualifiedName> {
        self.later.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn loaded<'a>(
        &'a self,
        client: &'a tokio_postgres::Client,
        server: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let model = self.model.lock().ok().and_then(|m| m.clone());
            match model {
                Some(model) => read_pools(&model, client, server).await,
                None => Ok(()),
            }
        })
    }
}

/// Reads the keys of the copied tables that generated ones reference, from the new database
/// (after the copied tables were loaded), into the model's pools; then refuses a NOT NULL
/// reference to a copied table that holds no row.
async fn read_pools(
    model: &model::Model,
    client: &tokio_postgres::Client,
    server: &str,
) -> Result<()> {
    for pool in &model.pools {
        let columns: Vec<String> = pool.columns.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM (SELECT DISTINCT {} FROM {} WHERE {}) k ORDER BY {}",
            columns
                .iter()
                .map(|c| format!("k.{c}::text"))
                .collect::<Vec<_>>()
                .join(", "),
            columns.join(", "),
            pool.table.sql(),
            columns
                .iter()
                .map(|c| format!("{c} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND "),
            columns
                .iter()
                .map(|c| format!("k.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = client.query(&sql, &[]).await.map_err(|e| {
            DbError::new(
                server,
                format!(
                    "reading the keys ({}) of the copied table {} for the generated tables that reference it",
                    pool.columns.join(", "),
                    pool.table
                ),
                e,
            )
        })?;
        let mut values = Vec::with_capacity(rows.len() * columns.len());
        for row in rows {
            for i in 0..columns.len() {
                values.push(row.get::<_, String>(i));
            }
        }
        pool.fill(values);
    }
    let mut problems = Vec::new();
    for (t, table) in model.tables.iter().enumerate() {
        if table.copied || model.rows(t) == 0 {
            continue;
        }
        for fk in &table.fks {
            if let Some(p) = fk.pool
                && model.pools[p].rows() == 0
                && fk.null_frac == 0.0
            {
                problems.push(format!(
                    "{}: foreign key {} references the copied table {}, which holds no row in staging, and its columns are NOT NULL; give {} `rows: 0` or copy rows of {}",
                    table.name, fk.name, model.pools[p].table, table.name, model.pools[p].table
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Runtime(format!(
            "{}; staging was not swapped (unchanged)",
            problems.join("; ")
        )))
    }
}

impl Synthesizer {
    /// The generation's model in the run's snapshot, or every problem of it (unknown tables
    /// and columns of `synthetic:`, CHECKs that cannot be kept, keys that cannot be made).
    async fn plan_model(
        &self,
        snapshot: &crate::db::snapshot::Snapshot,
        catalog: &Catalog,
        rules: &crate::rules::BoundRules,
        plan: &crate::plan::Plan,
    ) -> Result<std::result::Result<model::Model, Vec<String>>> {
        let server = snapshot.endpoint().display.clone();
        let leader = snapshot.leader();
        let mut problems = self.check_specs(catalog);
        // Hybrid mode: the units copied from production, with the rows their plan expects.
        let mut copied = BTreeMap::new();
        if self.options.hybrid {
            let generated = self.hybrid_generated();
            for unit in model::units(catalog) {
                if generated.contains(&unit) {
                    continue;
                }
                let holders: Vec<QualifiedName> = match catalog.table(&unit) {
                    Some(t) if t.kind == TableKind::Partitioned => catalog
                        .leaves(&unit)
                        .iter()
                        .map(|l| l.name.clone())
                        .collect(),
                    _ => vec![unit.clone()],
                };
                let rows = holders
                    .iter()
                    .filter_map(|h| plan.tables.get(h))
                    .map(|p| p.estimated_rows)
                    .sum();
                copied.insert(unit, rows);
            }
        }
        let constraints = Constraints::read(leader, &server, catalog).await?;
        let checks = constraints
            .checks
            .iter()
            .map(|c| {
                (
                    c.table.clone(),
                    c.name.clone(),
                    c.expression.clone(),
                    c.columns.clone(),
                )
            })
            .collect();
        let domain_checks = read_domain_checks(leader, &server, &constraints).await?;
        let mut ruled = BTreeSet::new();
        for (name, bound) in &rules.tables {
            let root = catalog.root_of(name);
            for c in bound.ruled_columns() {
                ruled.insert((root.clone(), c.column.clone()));
            }
        }
        let (stats, base_rows) = if self.options.read_production {
            let mut stats = read_stats(leader, &server).await?;
            for (column, shape) in read_json_shapes(leader, &server, catalog, &ruled).await? {
                stats.entry(column).or_default().json_shape = Some(Arc::new(shape));
            }
            (stats, count_rows(leader, &server, catalog).await?)
        } else {
            (HashMap::new(), HashMap::new())
        };
        let partition_bounds = read_partition_bounds(leader, &server, catalog).await?;
        let inputs = Inputs {
            partition_bounds,
            catalog,
            seed: self.options.seed,
            scale: self.options.scale,
            base_rows,
            default_rows: self.options.default_rows,
            checks,
            domain_checks,
            stats,
            specs: &self.options.specs,
            ruled,
            copied,
        };
        Ok(match model::plan(&inputs) {
            Ok(m) if problems.is_empty() => Ok(m),
            Ok(_) => Err(problems),
            Err(found) => {
                problems.extend(found);
                Err(problems)
            }
        })
    }

    /// What `restage validate` refuses of a generation (synthetic or hybrid), without
    /// building: the problems the run would stop with at plan time.
    pub async fn check_plan(
        &self,
        snapshot: &crate::db::snapshot::Snapshot,
        catalog: &Catalog,
        rules: &crate::rules::BoundRules,
        plan: &crate::plan::Plan,
    ) -> Result<Vec<String>> {
        let model = match self.plan_model(snapshot, catalog, rules, plan).await? {
            Ok(m) => Arc::new(m),
            Err(problems) => return Ok(problems),
        };
        let mut problems = Vec::new();
        if self.options.hybrid {
            for table in catalog.data_tables() {
                let root = catalog.root_of(&table.name);
                if model
                    .index
                    .get(&root)
                    .is_some_and(|&t| model.tables[t].copied)
                {
                    let columns: Vec<String> =
                        table.copy_columns().map(|c| c.name.clone()).collect();
                    self.references(&table.name, &columns, catalog, &model, &mut problems);
                }
            }
        }
        problems.sort();
        problems.dedup();
        Ok(problems)
    }

    async fn prepare_jobs(&self, prepared: &mut crate::refresh::Prepared) -> Result<()> {
        let catalog = &prepared.catalog;
        let model = match self
            .plan_model(&prepared.snapshot, catalog, &prepared.rules, &prepared.plan)
            .await?
        {
            Ok(m) => Arc::new(m),
            Err(problems) => return Err(crate::refresh::checks::problems_error(problems)),
        };
        let mut jobs = self.jobs(prepared, &model);
        if self.options.hybrid {
            // The copied tables' jobs as the refresh planned them, their references to
            // generated tables remapped.
            let mut copied_jobs = Vec::new();
            let mut problems = Vec::new();
            for job in std::mem::take(&mut prepared.jobs) {
                let root = catalog.root_of(&job.table);
                if model
                    .index
                    .get(&root)
                    .is_some_and(|&t| !model.tables[t].copied)
                {
                    continue;
                }
                copied_jobs.push(self.remapped(job, catalog, &model, &mut problems));
            }
            if !problems.is_empty() {
                problems.sort();
                problems.dedup();
                return Err(crate::refresh::checks::problems_error(problems));
            }
            copied_jobs.append(&mut jobs);
            jobs = copied_jobs;
            // The second wave: generated tables whose values come from copied keys.
            let later: BTreeSet<QualifiedName> = model
                .tables
                .iter()
                .enumerate()
                .filter(|(t, table)| !table.copied && model.waits_for_pools(*t))
                .map(|(_, table)| table.name.clone())
                .collect();
            if let Ok(mut l) = self.later.lock() {
                *l = later;
            }
            // The generated tables' rules were bound into their jobs; out of the bound rules,
            // verification samples and checks only the copied tables' (their generated
            // inputs are not production values).
            for table in model.tables.iter().filter(|t| !t.copied) {
                prepared.rules.tables.remove(&table.name);
                for leaf in catalog.leaves(&table.name) {
                    prepared.rules.tables.remove(&leaf.name);
                }
            }
        } else {
            prepared.plan.summary = None;
            prepared.plan.storage = None;
            prepared.plan.replan = None;
        }
        prepared.jobs = jobs;
        if let Ok(mut m) = self.model.lock() {
            *m = Some(model.clone());
        }
        // The plan's lines: one per generated table (a partitioned one as a whole).
        for table in model.tables.iter().filter(|t| !t.copied) {
            if table.partitioned {
                for leaf in catalog.leaves(&table.name) {
                    prepared.plan.tables.remove(&leaf.name);
                }
            }
            prepared.plan.tables.insert(
                table.name.clone(),
                TablePlan {
                    table: table.name.clone(),
                    decision: if table.rows == 0 {
                        Decision::Empty
                    } else {
                        Decision::Whole
                    },
                    reason: table.reason.clone(),
                    estimated_rows: table.rows,
                    estimated_bytes: table.rows * 64,
                    estimated_index_bytes: 0,
                    filter: None,
                    source_where: None,
                },
            );
        }
        prepared.warnings.extend(model.warnings.iter().cloned());
        Ok(())
    }

    /// A copied table's job with its references to generated tables remapped onto their
    /// keys ([`remap`]); problems for references that cannot be.
    fn remapped(
        &self,
        mut job: CopyJob,
        catalog: &Catalog,
        model: &Arc<model::Model>,
        problems: &mut Vec<String>,
    ) -> CopyJob {
        let references = self.references(&job.table, &job.columns, catalog, model, problems);
        if references.is_empty() {
            return job;
        }
        let mut plan = (*job.plan).clone();
        plan.filter = Some(Arc::new(remap::Remap {
            inner: plan.filter.take(),
            model: model.clone(),
            references,
        }));
        job.plan = Arc::new(plan);
        job
    }

    /// The references of copied table `table` (whose COPY moves `columns`) to generated
    /// tables; problems for those that cannot be remapped.
    fn references(
        &self,
        table: &QualifiedName,
        columns: &[String],
        catalog: &Catalog,
        model: &model::Model,
        problems: &mut Vec<String>,
    ) -> Vec<remap::Reference> {
        let root = catalog.root_of(table);
        let mut references = Vec::new();
        let mut seen = BTreeSet::new();
        for fk in &catalog.foreign_keys {
            if catalog.root_of(&fk.table) != root {
                continue;
            }
            let parent = catalog.root_of(&fk.referenced);
            let Some(&pt) = model.index.get(&parent) else {
                continue;
            };
            let parent_model = &model.tables[pt];
            if parent_model.copied
                || !seen.insert((
                    fk.columns.clone(),
                    parent.clone(),
                    fk.referenced_columns.clone(),
                ))
            {
                continue;
            }
            let positions: Option<Vec<usize>> = fk
                .columns
                .iter()
                .map(|c| columns.iter().position(|j| j == c))
                .collect();
            let parent_columns: Option<Vec<usize>> = fk
                .referenced_columns
                .iter()
                .map(|c| parent_model.columns.iter().position(|m| &m.name == c))
                .collect();
            let (Some(positions), Some(parent_columns)) = (positions, parent_columns) else {
                problems.push(format!(
                    "{root}: foreign key {} to the generated table {parent}: its columns are not all ones COPY writes",
                    fk.name
                ));
                continue;
            };
            if model.key_waits_for_pools(pt, &parent_columns) {
                problems.push(format!(
                    "{root}: foreign key {} references the generated table {parent}, whose key (or row count) is taken from a copied table's keys: not supported for a copied child (it would wait for keys loaded after it); generate {root} too (`from: synthetic`), or copy {parent}",
                    fk.name
                ));
                continue;
            }
            let nullable = fk.columns.iter().all(|c| {
                catalog
                    .table(table)
                    .and_then(|t| t.column(c))
                    .is_some_and(|c| !c.not_null)
            });
            if parent_model.rows == 0 && !nullable {
                problems.push(format!(
                    "{root}: foreign key {} references the generated table {parent}, which gets no rows, and its columns are NOT NULL; give {parent} rows (`rows:`)",
                    fk.name
                ));
                continue;
            }
            references.push(remap::Reference {
                name: fk.name.clone(),
                positions,
                parent: pt,
                parent_columns,
                key: values::key_of(&[
                    "remap",
                    &self.options.seed.to_string(),
                    &root.to_string(),
                    &fk.name,
                ]),
            });
        }
        references
    }

    /// `synthetic:` entries naming tables or columns that do not exist.
    fn check_specs(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, spec) in &self.options.specs {
            let Some(table) = catalog.table(name) else {
                problems.push(format!(
                    "{}: synthetic.{name}: no such table",
                    spec.location
                ));
                continue;
            };
            if table.parent.is_some() {
                problems.push(format!(
                    "{}: synthetic.{name}: a partition; give rows and generators to its partitioned table {}",
                    spec.location,
                    catalog.root_of(name)
                ));
            }
            for (column, (_, at)) in &spec.generate {
                if table.column(column).is_none() {
                    problems.push(format!(
                        "{at}: synthetic.{name}.generate.{column}: no such column"
                    ));
                }
            }
        }
        problems
    }

    /// One generated job per table (a partitioned table's rows routed by the server).
    fn jobs(&self, prepared: &crate::refresh::Prepared, model: &Arc<model::Model>) -> Vec<CopyJob> {
        let catalog = &prepared.catalog;
        let encoding = crate::refresh::prepare::copy_encoding(&catalog.encoding);
        let mut jobs = Vec::new();
        for (t, table_model) in model.tables.iter().enumerate() {
            let Some(table) = catalog.table(&table_model.name) else {
                continue;
            };
            if table_model.rows == 0 || table_model.copied {
                continue;
            }
            // The bound rules by column name: the table's own, or a partition's.
            let mut bound: HashMap<&str, &crate::rules::BoundColumn> = HashMap::new();
            let holders: Vec<QualifiedName> = if table.kind == TableKind::Partitioned {
                catalog
                    .leaves(&table.name)
                    .iter()
                    .map(|l| l.name.clone())
                    .collect()
            } else {
                vec![table.name.clone()]
            };
            for holder in &holders {
                if let Some(b) = prepared.rules.table(holder) {
                    for c in &b.columns {
                        bound.entry(c.column.as_str()).or_insert(c);
                    }
                }
            }
            let columns: Vec<ColumnAction> = table
                .copy_columns()
                .zip(&table_model.columns)
                .map(|(column, generated)| {
                    if self
                        .options
                        .derived
                        .contains(&(table.name.clone(), column.name.clone()))
                    {
                        return ColumnAction::Transform {
                            column: column.name.clone(),
                            transform: crate::refresh::reindex::placeholder(column.not_null),
                        };
                    }
                    if let Some(transform) = bound
                        .get(column.name.as_str())
                        .and_then(|b| b.transform.clone())
                    {
                        return ColumnAction::Transform {
                            column: column.name.clone(),
                            transform,
                        };
                    }
                    // A column whose name looks personal gets the transform a scan would
                    // propose, fed the generated input: an email looks like one.
                    if matches!(generated.source, Gen::Value(_))
                        && let Some(finding) =
                            crate::pii::classify_name(&column.name, &column.ty.kind)
                    {
                        let name = crate::scan::propose::default_transform(
                            finding.category,
                            &column.ty.kind,
                        );
                        let spec = crate::transform::RuleSpec::named(name);
                        let info = crate::transform::ColumnInfo {
                            ty: &column.ty,
                            not_null: column.not_null,
                        };
                        if let Ok(transform) = prepared.transforms.bind(&spec, &info) {
                            return ColumnAction::Transform {
                                column: column.name.clone(),
                                transform,
                            };
                        }
                    }
                    ColumnAction::Pass
                })
                .collect();
            let plan = RowPlan {
                table: table.name.clone(),
                columns,
                filter: None,
                encoding: crate::pg_encoding::TextEncoding::of(&catalog.encoding),
                check: None,
            };
            jobs.push(CopyJob {
                table: table.name.clone(),
                columns: table.copy_columns().map(|c| c.name.clone()).collect(),
                plan: Arc::new(plan),
                range: None,
                source_where: None,
                // A partitioned table can be neither truncated alone nor loaded frozen.
                whole_table: table.kind != TableKind::Partitioned,
                encoding: encoding.clone(),
                estimated_rows: table_model.rows,
                estimated_bytes: table_model.rows * 64,
                generated: Some(Arc::new(source::TableRows::new(model.clone(), t))),
                binary_fields: None,
            });
        }
        jobs
    }
}

/// The expressions of the domain CHECKs the catalog found on columns.
async fn read_domain_checks(
    client: &tokio_postgres::Client,
    server: &str,
    constraints: &Constraints,
) -> Result<Vec<(QualifiedName, String, String, String, String)>> {
    if constraints.domain_checks.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT n.nspname::text, t.typname::text, c.conname::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
               JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE c.contype = 'c'",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading domain constraints", e))?;
    let mut by_name: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
    for row in rows {
        let (schema, domain, name, def): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        by_name.entry(name).or_default().push((schema, domain, def));
    }
    let mut out = Vec::new();
    for d in &constraints.domain_checks {
        let Some(candidates) = by_name.get(&d.constraint) else {
            continue;
        };
        let found = candidates
            .iter()
            .find(|(schema, domain, _)| {
                d.domain == *domain
                    || d.domain == format!("{schema}.{domain}")
                    || d.domain.ends_with(&format!(".{domain}"))
                    || d.domain.trim_matches('"') == domain
            })
            .or(candidates.first());
        if let Some((_, _, def)) = found {
            out.push((
                d.table.clone(),
                d.column.clone(),
                d.domain.clone(),
                d.constraint.clone(),
                def.clone(),
            ));
        }
    }
    Ok(out)
}

/// What the partitions of each partitioned table (without a DEFAULT partition) allow its key
/// column, when the key is one column: the range from the lowest FROM to the highest TO
/// (gaps between partitions are not seen), or the union of the IN-lists.
async fn read_partition_bounds(
    client: &tokio_postgres::Client,
    server: &str,
    catalog: &Catalog,
) -> Result<Vec<(QualifiedName, String, check::Allowed)>> {
    let rows = client
        .query(
            "SELECT pn.nspname::text, p.relname::text, pg_get_partkeydef(p.oid),
                    array_agg(pg_get_expr(c.relpartbound, c.oid))
               FROM pg_class p JOIN pg_namespace pn ON pn.oid = p.relnamespace
               JOIN pg_inherits i ON i.inhparent = p.oid
               JOIN pg_class c ON c.oid = i.inhrelid
              WHERE p.relkind = 'p'
              GROUP BY 1, 2, 3",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading partition bounds", e))?;
    let mut out = Vec::new();
    for row in rows {
        let name = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let key: String = row.get(2);
        let bounds: Vec<String> = row.get(3);
        if catalog.table(&name).is_none() || bounds.iter().any(|b| b == "DEFAULT") {
            continue;
        }
        if let Some((column, allowed)) = partition_allowed(&key, &bounds) {
            out.push((name, column, allowed));
        }
    }
    Ok(out)
}

/// `RANGE (col)` / `LIST (col)` with the partitions' `FOR VALUES …`: what `col` may hold.
fn partition_allowed(key: &str, bounds: &[String]) -> Option<(String, check::Allowed)> {
    let (kind, rest) = key.split_once(' ')?;
    let column = rest.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    if column.contains(',') || column.contains('(') {
        return None;
    }
    let column = column.trim_matches('"').to_string();
    let literal = |text: &str| -> Option<String> {
        let text = text.trim();
        match text.strip_prefix('\'') {
            Some(quoted) => Some(quoted.strip_suffix('\'')?.replace("''", "'")),
            None => (text != "MINVALUE" && text != "MAXVALUE").then(|| text.to_string()),
        }
    };
    let mut allowed = check::Allowed::default();
    match kind {
        "RANGE" => {
            let (mut lo, mut hi): (Option<String>, Option<String>) = (None, None);
            let mut unbounded = (false, false);
            for b in bounds {
                let inner = b.strip_prefix("FOR VALUES FROM (")?;
                let (from, to) = inner.split_once(") TO (")?;
                let to = to.strip_suffix(')')?;
                match literal(from) {
                    Some(f) => lo = Some(min_value(lo, f, true)),
                    None => unbounded.0 = true,
                }
                match literal(to) {
                    Some(t) => hi = Some(min_value(hi, t, false)),
                    None => unbounded.1 = true,
                }
            }
            if !unbounded.0 {
                allowed.lo = lo.map(|l| (check::Lit::Text(l), true));
            }
            if !unbounded.1 {
                allowed.hi = hi.map(|h| (check::Lit::Text(h), false));
            }
        }
        "LIST" => {
            let mut values = Vec::new();
            for b in bounds {
                let inner = b.strip_prefix("FOR VALUES IN (")?.strip_suffix(')')?;
                for item in inner.split(", ") {
                    values.extend(literal(item));
                }
            }
            allowed.only = Some(values);
        }
        _ => return None,
    }
    Some((column, allowed))
}

/// The lower (`lowest`) or higher of two bounds of one partition key, compared as numbers
/// when both are, else as text (dates and timestamps in ISO order).
fn min_value(current: Option<String>, candidate: String, lowest: bool) -> String {
    let Some(current) = current else {
        return candidate;
    };
    let less = match (current.parse::<f64>(), candidate.parse::<f64>()) {
        (Ok(a), Ok(b)) => b < a,
        _ => candidate < current,
    };
    if less == lowest { candidate } else { current }
}

/// The shapes of the json and jsonb columns without a rule, from a sample of their
/// documents in the snapshot (see [`json_shape`]: keys, types and sizes, never values).
async fn read_json_shapes(
    client: &tokio_postgres::Client,
    server: &str,
    catalog: &Catalog,
    ruled: &BTreeSet<(QualifiedName, String)>,
) -> Result<Vec<((QualifiedName, String), json_shape::Shape)>> {
    let mut shapes = Vec::new();
    for unit in model::units(catalog) {
        let Some(table) = catalog.table(&unit) else {
            continue;
        };
        for column in &table.columns {
            let json = matches!(column.ty.kind, TypeKind::Json | TypeKind::Jsonb);
            if !json || column.ty.array || ruled.contains(&(unit.clone(), column.name.clone())) {
                continue;
            }
            let sql = format!(
                "SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT {n}",
                c = quote_ident(&column.name),
                t = unit.sql(),
                n = json_shape::SAMPLE_DOCUMENTS
            );
            let rows = client.query(sql.as_str(), &[]).await.map_err(|e| {
                DbError::new(
                    server,
                    format!("sampling the documents of {unit}.{}", column.name),
                    e,
                )
            })?;
            let documents: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            if let Some(shape) = json_shape::Shape::learn(documents.iter().map(String::as_str)) {
                shapes.push(((unit.clone(), column.name.clone()), shape));
            }
        }
    }
    Ok(shapes)
}

/// `pg_stats` of every column the session may read (the view shows only those).
async fn read_stats(
    client: &tokio_postgres::Client,
    server: &str,
) -> Result<HashMap<(QualifiedName, String), ColumnStats>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text, attname::text, null_frac::float8,
                    n_distinct::float8, most_common_vals::text,
                    most_common_freqs::float8[], histogram_bounds::text
               FROM pg_stats
              WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
              ORDER BY inherited DESC",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading pg_stats", e))?;
    let mut out = HashMap::new();
    for row in rows {
        let key = (
            QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            row.get::<_, String>(2),
        );
        if out.contains_key(&key) {
            continue;
        }
        let mcv: Option<String> = row.get(5);
        let freqs: Option<Vec<f64>> = row.get(6);
        let hist: Option<String> = row.get(7);
        out.insert(
            key,
            ColumnStats {
                null_frac: row.get::<_, Option<f64>>(3).unwrap_or(0.0),
                n_distinct: row.get::<_, Option<f64>>(4).unwrap_or(0.0),
                most_common: mcv.as_deref().and_then(parse_array).unwrap_or_default(),
                most_common_freqs: freqs.unwrap_or_default(),
                histogram: hist.as_deref().and_then(parse_array).unwrap_or_default(),
                json_shape: None,
            },
        );
    }
    Ok(out)
}

/// Rows of every table that holds rows: counted when small, else the planner's estimate.
async fn count_rows(
    client: &tokio_postgres::Client,
    server: &str,
    catalog: &Catalog,
) -> Result<HashMap<QualifiedName, u64>> {
    let mut out = HashMap::new();
    for table in catalog.data_tables() {
        let n = if table.pages <= COUNT_PAGES {
            let row = client
                .query_one(
                    &format!("SELECT count(*) FROM ONLY {}", table.name.sql()),
                    &[],
                )
                .await
                .map_err(|e| {
                    DbError::new(server, format!("counting the rows of {}", table.name), e)
                })?;
            row.get::<_, i64>(0).max(0) as u64
        } else {
            table.estimated_rows.max(0.0) as u64
        };
        out.insert(table.name.clone(), n);
    }
    Ok(out)
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`); NULLs left out.
pub fn parse_array(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
            // Up to the separator.
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
                item.push(c);
            }
            if item.starts_with('{') {
                // A multi-dimensional array: not used.
                return None;
            }
        }
        if quoted || item != "NULL" {
            out.push(item);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_bounds() {
        let (column, a) = partition_allowed(
            "RANGE (payment_date)",
            &[
                "FOR VALUES FROM ('2022-02-01 00:00:00+00') TO ('2022-03-01 00:00:00+00')".into(),
                "FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00')".into(),
            ],
        )
        .unwrap();
        assert_eq!(column, "payment_date");
        let (lo, hi) = a.text_bounds();
        assert_eq!(lo.as_deref(), Some("2022-01-01 00:00:00+00"));
        assert_eq!(hi.as_deref(), Some("2022-03-01 00:00:00+00"));
        let (_, a) = partition_allowed(
            "RANGE (n)",
            &[
                "FOR VALUES FROM (1) TO (10)".into(),
                "FOR VALUES FROM (10) TO (MAXVALUE)".into(),
            ],
        )
        .unwrap();
        assert_eq!(a.int_range(), (Some(1), None));
        let (_, a) = partition_allowed(
            "LIST (region)",
            &[
                "FOR VALUES IN ('eu', 'us')".into(),
                "FOR VALUES IN ('ap')".into(),
            ],
        )
        .unwrap();
        assert_eq!(a.only.unwrap(), ["eu", "us", "ap"]);
    }

    #[test]
    fn array_literals() {
        assert_eq!(
            parse_array(r#"{a,"b c","d\"e",NULL,"NULL"}"#).unwrap(),
            ["a", "b c", "d\"e", "NULL"]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<String>::new());
    }
}
