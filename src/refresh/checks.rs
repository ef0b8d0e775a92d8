//! The one check sequence. Every command that checks configuration runs it, as far as the
//! sections it uses go, so `restage validate` refuses exactly what `restage refresh` refuses
//! (exit 2). The steps, in order:
//!
//! 1. the sections of restage.yaml the command uses, resolved ([`super::settings`]); the
//!    first that does not resolve stops the sequence (the others need it);
//! 2. the rules files read;
//! 3. the source catalog read (inside the run's snapshot, for commands that copy; every table
//!    locked before the snapshot is taken, with a bounded wait: [`crate::db::snapshot`]);
//! 4. the rules bound to the catalog (which refuses a transform that makes values NULL on a
//!    NOT NULL column, its domain's NOT NULL included), then put to the source's constraints
//!    ([`super::constraints`]): unique indexes of every kind and exclusion constraints,
//!    foreign keys whose two sides are ruled differently (from the catalog); CHECK
//!    constraints of tables and domains, and expression unique indexes under `unique: true`
//!    rules (on a sample of the rules' outputs, read-only in the snapshot);
//!
//! and for the commands that copy (`refresh`, its `--dry-run`, `validate`):
//!
//! 5. `secret:`: percent and max_rows samples, and keyed transforms, need one;
//! 6. derived columns (`search.tsvector`) name existing columns;
//! 7. strict mode: columns that look personal (or all columns) have rules;
//! 8. tsvectors that would carry production words are refused, or warned about;
//! 9. the `sample:` section against the catalog, and the key sets' memory by estimate;
//! 10. the plan: the key pass, and whether `max_storage` can be met;
//! 11. the staging server: not the source under another address, the source's extensions
//!     available, the grant roles present, `target.database` one restage built or adopts
//!     ([`check_staging`]), `target.settings` it takes; the PostgreSQL tools.
//!
//! Steps 2–9 collect every problem they find, and a user sees them all at once: a step that
//! needs an earlier one's result (the bound rules) is skipped when it is missing, the others
//! still run. Planning (10) runs only when 2–9 found nothing.
//!
//! | command  | steps                                                                    |
//! |----------|--------------------------------------------------------------------------|
//! | refresh  | 1–11: stops after 1, after 2–9 with all their problems, at 10, at 11      |
//! | validate | 1–11: after problems in 2–10 it still checks 11, and reports every one    |
//! | verify   | 1–4 (source, target, rules)                                              |
//! | reindex  | 1 (target, search)                                                       |
//! | warm     | 1 (target, cache)                                                        |

use std::sync::Arc;

use tokio_postgres::Client;

use crate::catalog::{Catalog, Constraints};
use crate::config::UnruledTsvector;
use crate::db::snapshot::{Locked, Opening, Snapshot};
use crate::error::{Error, Result, exit};
use crate::plan::{self, Plan};
use crate::rules::{BoundRules, RuleSet};
use crate::transform::Catalogue;

use super::constraints;
use super::prepare::{
    check_derived, check_target_is_not_source, preflight, secret_problems, strict_check,
    unruled_tsvectors,
};
use super::settings::{RulesSettings, Settings};

/// What steps 2–10 found, for a command that copies or says whether it could.
pub struct Inspection {
    pub snapshot: Arc<Snapshot>,
    pub catalog: Catalog,
    /// The bound transform catalogue (its `unique` registry fills during the data stage).
    pub transforms: Catalogue,
    /// The rules, when they loaded and bound.
    pub rules: Option<BoundRules>,
    /// The plan, when every earlier step passed and planning did too.
    pub plan: Option<Plan>,
    /// Columns copied without a rule because of `--allow-unclassified`.
    pub unclassified: Vec<String>,
    pub warnings: Vec<String>,
    /// Every problem found (exit 2), in the order of the steps.
    pub problems: Vec<String>,
}

/// What steps 2–10 decided when nothing was wrong.
pub struct Checked {
    pub snapshot: Arc<Snapshot>,
    pub catalog: Catalog,
    pub transforms: Catalogue,
    pub rules: BoundRules,
    pub plan: Plan,
    pub unclassified: Vec<String>,
    pub warnings: Vec<String>,
}

/// The problems as one error (exit 2), one line each (the first
/// [`crate::yaml::MAX_PROBLEMS_SHOWN`], then a count of the others).
pub fn problems_error(problems: Vec<String>) -> Error {
    Error::Usage(crate::yaml::list_problems(&problems))
}

/// Steps 2 and 4: the rules read and bound to the catalog. Every problem of both (the
/// rules that did load are bound, so their problems show too).
pub fn bind_rules(
    rule_set: RuleSet,
    mut problems: Vec<String>,
    rules: &RulesSettings,
    catalog: &Catalog,
) -> (Option<BoundRules>, Catalogue, Vec<String>) {
    let secret = rules.secret.clone().unwrap_or_default();
    let transforms = Catalogue::new(&secret, &rules.locale);
    let bound = match rule_set.bind(catalog, &transforms) {
        Ok(bound) if problems.is_empty() => Some(bound),
        Ok(_) => None,
        Err(errors) => {
            problems.extend(errors);
            None
        }
    };
    (bound, transforms, problems)
}

/// Step 2.
pub fn read_rules(rules: &RulesSettings) -> (RuleSet, Vec<String>) {
    RuleSet::load_partial(&rules.path, rules.optional)
}

/// What steps 5–9 found.
pub struct CopyChecks {
    /// Every problem, in the order of the steps.
    pub problems: Vec<String>,
    pub unclassified: Vec<String>,
    pub warnings: Vec<String>,
    pub subset: Option<plan::decide::Subset>,
}

/// Steps 5–9, pure: what a copy of the source would break, given the catalog and the rules
/// (when they bound): the problems, the columns strict mode let through with
/// `allow_unclassified`, the warnings, and the planner's decisions when the sample section
/// passed.
pub fn check_copy(
    settings: &Settings,
    catalog: &Catalog,
    rules: Option<&BoundRules>,
    allow_unclassified: bool,
) -> CopyChecks {
    let mut checks = CopyChecks {
        problems: secret_problems(settings, rules),
        unclassified: Vec::new(),
        warnings: Vec::new(),
        subset: None,
    };
    checks
        .problems
        .extend(check_derived(catalog, &settings.search.derived));
    if let Some(rules) = rules {
        let generated = settings
            .synthetic
            .as_ref()
            .map(|s| s.generated_tables())
            .unwrap_or_default();
        match strict_check(
            catalog,
            rules,
            settings.rules.strict,
            allow_unclassified,
            &generated,
        ) {
            Ok(unclassified) => checks.unclassified = unclassified,
            Err(e) => checks.problems.push(e.to_string()),
        }
        let leaky = unruled_tsvectors(catalog, rules, &settings.search);
        if !leaky.is_empty() {
            match settings.search.unruled_tsvector {
                UnruledTsvector::Refuse => {
                    checks
                        .problems
                        .push(format!("search: {}", leaky.join("; ")));
                }
                UnruledTsvector::Warn => {
                    for w in &leaky {
                        tracing::warn!("{w}");
                    }
                    checks.warnings.extend(leaky);
                }
            }
        }
    }
    match plan::decide(catalog, &settings.sample) {
        Ok(subset) => checks.subset = subset,
        Err(problems) => checks.problems.extend(problems),
    }
    checks
}

/// Steps 2–10 for a command that copies the source (refresh) or checks that it could
/// (validate): opens the run's snapshot and reads the catalog in it.
pub async fn inspect(settings: &Settings, allow_unclassified: bool) -> Result<Inspection> {
    let (rule_set, mut read_problems) = read_rules(&settings.rules);
    if settings.synthetic.is_none() {
        read_problems.extend(rule_set.misplaced_from("production"));
    }
    let (snapshot, catalog) = open_snapshot(settings).await?;
    let snapshot = Arc::new(snapshot);
    let (rules, transforms, mut problems) =
        bind_rules(rule_set, read_problems, &settings.rules, &catalog);
    let mut warnings = Vec::new();
    if let Some(bound) = &rules {
        let (found, warned) = check_constraints(&snapshot, &catalog, bound, settings).await?;
        problems.extend(found);
        warnings.extend(warned);
    }
    let copy = check_copy(settings, &catalog, rules.as_ref(), allow_unclassified);
    problems.extend(copy.problems);
    warnings.extend(copy.warnings);
    let mut plan = None;
    if problems.is_empty() {
        let secret = settings.rules.secret.clone().unwrap_or_default();
        match plan::build(
            &catalog,
            &settings.sample,
            copy.subset.as_ref(),
            &snapshot,
            &secret,
            settings.jobs,
        )
        .await
        {
            Ok(p) => plan = Some(p),
            Err(e) if e.exit_code() == exit::USAGE => problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(Inspection {
        snapshot,
        catalog,
        transforms,
        rules,
        plan,
        unclassified: copy.unclassified,
        warnings,
        problems,
    })
}

/// Step 4, second half: the bound rules against the source's constraints, read in the snapshot: what
/// the catalog decides, then what a sample of the rules' outputs shows. The problems, and
/// the warnings of tests that could not run.
pub async fn check_constraints(
    snapshot: &Snapshot,
    catalog: &Catalog,
    rules: &BoundRules,
    settings: &Settings,
) -> Result<(Vec<String>, Vec<String>)> {
    let constraints =
        Constraints::read(snapshot.leader(), &settings.source.display, catalog).await?;
    let mut problems =
        constraints::check_rules(catalog, &constraints, rules, &settings.rules.locale);
    let (sampled, warnings) =
        constraints::check_samples(snapshot, catalog, &constraints, rules, &settings.rules).await?;
    problems.extend(sampled);
    Ok((problems, warnings))
}

/// Step 3: the run's snapshot with every table of the source locked before it was taken (see
/// [`crate::db::snapshot`]), and the catalog read in it.
async fn open_snapshot(settings: &Settings) -> Result<(Snapshot, Catalog)> {
    let server = &settings.source.display;
    let mut opening = Opening::connect(&settings.source, settings.lock_timeout).await?;
    // A table dropped or renamed between the listing and the lock: list again, a few times.
    for _ in 0..5 {
        let targets = Catalog::list_lock_targets(opening.client(), server).await?;
        match opening.lock(&targets).await? {
            Locked::Snapshot(mut snapshot) => {
                let catalog = Catalog::read(snapshot.leader(), server).await?;
                snapshot.lock_late(&catalog.lock_targets()).await?;
                return Ok((snapshot, catalog));
            }
            Locked::Changed(again) => opening = again,
        }
    }
    Err(Error::Runtime(format!(
        "{server}: tables of the source were dropped or renamed each time restage listed them to lock them; nothing was copied, run again"
    )))
}

impl Inspection {
    /// Everything steps 2–10 decided, or every problem they found as one error.
    pub fn checked(self) -> Result<Checked> {
        match (self.rules, self.plan) {
            (Some(rules), Some(plan)) if self.problems.is_empty() => Ok(Checked {
                snapshot: self.snapshot,
                catalog: self.catalog,
                transforms: self.transforms,
                rules,
                plan,
                unclassified: self.unclassified,
                warnings: self.warnings,
            }),
            _ => Err(problems_error(self.problems)),
        }
    }
}

/// Steps 2–4 for a command that only needs the rules bound (verify), against `client`'s
/// catalog: the catalog and the rules, or every problem as one error.
pub async fn inspect_rules(
    client: &Client,
    server: &str,
    rules: &RulesSettings,
) -> Result<(Catalog, BoundRules)> {
    let (rule_set, read_problems) = read_rules(rules);
    let catalog = Catalog::read(client, server).await?;
    match bind_rules(rule_set, read_problems, rules, &catalog) {
        (Some(bound), _, problems) if problems.is_empty() => Ok((catalog, bound)),
        (_, _, problems) => Err(Error::Rules(problems)),
    }
}

/// Step 11: the staging server can take the copy — it is not the source under another
/// address, it has the source's extensions, the grant roles exist, the live database is
/// restage's (or adopted). Every failure, in that
/// order (empty: ready); a failure's exit code says whether it is the configuration's (2)
/// or the environment's (1).
pub async fn check_staging(
    admin: &Client,
    source: &Client,
    settings: &Settings,
    catalog: &Catalog,
) -> Vec<Error> {
    let mut failures = Vec::new();
    if let Err(e) = check_target_is_not_source(admin, source, settings).await {
        failures.push(e);
    }
    if let Err(e) = preflight(admin, settings, catalog).await {
        failures.push(e);
    }
    if let Err(e) = super::generations::check_target(admin, &settings.target).await {
        failures.push(e);
    }
    match super::source_database::check_target_settings(
        admin,
        &settings.target.admin.display,
        &settings.target.settings,
    )
    .await
    {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => failures.push(problems_error(problems)),
        Err(e) => failures.push(e),
    }
    failures
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::{Column, ColumnType, QualifiedName, Table, TableKind, TypeKind};
    use crate::config::Config;

    fn catalog() -> Catalog {
        let column = |name: &str, kind: TypeKind| Column {
            name: name.to_string(),
            ty: ColumnType::simple(&format!("{kind:?}").to_lowercase(), kind),
            not_null: false,
            generated: false,
            binary_copy: None,
        };
        let users = Table {
            name: QualifiedName::new("public", "users"),
            oid: 1,
            kind: TableKind::Ordinary,
            columns: vec![
                column("id", TypeKind::Int),
                column("email", TypeKind::Text),
                column("note", TypeKind::Text),
                column("search", TypeKind::TsVector),
            ],
            primary_key: vec!["id".into()],
            unique_keys: vec![vec!["id".into()]],
            parent: None,
            estimated_rows: 100.0,
            bytes: 10_000,
            pages: 2,
        };
        Catalog {
            tables: BTreeMap::from([(users.name.clone(), users)]),
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

    /// The settings of `yaml` (source and target added) and the rules of `rules`, bound.
    fn run(yaml: &str, rules: &str) -> (CopyChecks, Vec<String>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("rules.yaml"), rules).expect("rules written");
        let text = format!(
            "source:\n  url: postgres://u@prod.example/app\ntarget:\n  url: postgres://u@staging.example/postgres\n  database: app\nrules: rules.yaml\n{yaml}"
        );
        let config =
            Config::from_text(&text, &dir.path().join("restage.yaml")).expect("config loads");
        let settings = Settings::from_config(&config, "validate").expect("settings resolve");
        let catalog = catalog();
        let (set, read) = read_rules(&settings.rules);
        let (bound, _, bind_problems) = bind_rules(set, read, &settings.rules, &catalog);
        (
            check_copy(&settings, &catalog, bound.as_ref(), false),
            bind_problems,
        )
    }

    #[test]
    fn secret_and_sample_problems_are_all_reported() {
        // No secret: the keyed transform and the percent sample both need one; strict pii
        // finds `email` without a rule too; the tsvector would carry production words.
        let (checks, bind) = run(
            "strict: pii\nsample:\n  tables:\n    public.users: { percent: 10 }\n",
            "tables:\n  public.users:\n    note: hash\n",
        );
        assert!(bind.is_empty(), "{bind:?}");
        let p = &checks.problems;
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].starts_with("sample: percent and max_rows"), "{p:#?}");
        assert!(
            p[1].starts_with("rules transform public.users.note but ")
                && p[1].contains("/restage.yaml has no `secret:`"),
            "{p:#?}"
        );
        assert!(
            p[2].starts_with("strict: pii: 1 column(s) have no rule"),
            "{p:#?}"
        );
        assert!(
            p[3].starts_with("search: public.users.search is a tsvector"),
            "{p:#?}"
        );
        assert!(checks.subset.is_some(), "the sample section itself is fine");
    }

    #[test]
    fn checks_that_need_no_rules_run_when_binding_fails() {
        let (checks, bind) = run(
            "strict: all\nsearch:\n  tsvector:\n    - { table: public.users, column: nope, expression: x }\nsample:\n  tables:\n    public.userz: { percent: 10 }\n",
            "tables:\n  public.users:\n    emial: set_null\n",
        );
        assert_eq!(bind.len(), 1, "{bind:?}");
        assert!(
            bind[0].contains("public.users.emial: no such column"),
            "{bind:?}"
        );
        let p = &checks.problems;
        // Strict mode and the tsvector check need bound rules; the others do not.
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("sample: percent and max_rows"), "{p:#?}");
        assert_eq!(p[1], "search.tsvector: public.users.nope: no such column");
        assert!(
            p[2].starts_with("sample.tables: table public.userz does not exist in the source"),
            "{p:#?}"
        );
    }

    #[test]
    fn a_warned_tsvector_is_no_problem() {
        let (checks, _) = run(
            "secret: test-secret-0123456789abcdef\nstrict: off\nsearch:\n  unruled_tsvector: warn\n",
            "tables:\n  public.users:\n    email: email\n",
        );
        assert!(checks.problems.is_empty(), "{:#?}", checks.problems);
        assert_eq!(checks.warnings.len(), 1);
        assert!(
            checks.subset.is_none(),
            "no sample section: every table whole"
        );
    }
}
