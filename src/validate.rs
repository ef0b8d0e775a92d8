//! `restage validate`: runs the check sequence of `restage refresh` ([`refresh::checks`]) —
//! the configuration, the rules against the live source schema, strict mode, `secret:`, the
//! sample plan (including its key pass, as `refresh --dry-run` does: whether `max_storage`
//! can be met depends on the keys), the staging server — without copying data or changing
//! anything. It refuses (exit 2) exactly what a refresh refuses, and reports every problem,
//! not just the first; exit 1 when only the environment is wrong (a server that cannot be
//! reached, extensions the staging server lacks, missing PostgreSQL tools).
//!
//! In synthetic and hybrid mode (`source.mode`) it also plans the generation as the run
//! would — the rules' `synthetic:` entries (`generate:`, `rows:`, `from:`), the CHECK
//! constraints generated values cannot keep, hybrid references that cannot be remapped —
//! and refuses what the run refuses at plan time (exit 2, naming the constraint). Nothing is
//! built; a schema archive is restored into a scratch database on the staging server, as the
//! run does, and dropped.
//!
//! `--preview N` shows N rows of each ruled table as they are in production and as they would
//! reach staging — production values on the DBA's own terminal, which is the point of it.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::copy_text;
use crate::db::{self, Role};
use crate::error::{Error, Result, exit};
use crate::pg_encoding::{TextEncoding, reading_client_encoding};
use crate::progress::Ui;
use crate::refresh::{self, Settings, checks};

/// `restage validate` options.
#[derive(Debug, clap::Args, Clone)]
pub struct ValidateArgs {
    /// Show N sample rows of each ruled table, before and after the rules.
    #[arg(long, value_name = "N")]
    pub preview: Option<usize>,
}

pub async fn run(config: &Config, args: &ValidateArgs, ui: &Ui) -> Result<i32> {
    if crate::synthetic::mode(config) == crate::config::SourceMode::Production {
        let settings = Settings::from_config(config, "validate")?;
        return validate(config, args, ui, &settings, None).await;
    }
    let mut scratch = None;
    let result = match crate::synthetic::resolve_settings(config, "validate", &mut scratch).await {
        Ok((settings, synthesizer)) => {
            validate(config, args, ui, &settings, Some(&synthesizer)).await
        }
        Err(e) => Err(e),
    };
    if let Some(scratch) = scratch {
        scratch.remove().await;
    }
    result
}

async fn validate(
    config: &Config,
    args: &ValidateArgs,
    ui: &Ui,
    settings: &Settings,
    synthesizer: Option<&crate::synthetic::Synthesizer>,
) -> Result<i32> {
    // Step 1: the configuration (resolves values; an unset variable is reported here), done
    // by the caller.

    // Steps 2–10: the rules against the live source schema, and the plan, as refresh checks
    // them (refresh without --allow-unclassified).
    let mut inspection = checks::inspect(settings, false).await?;
    let mut problems = std::mem::take(&mut inspection.problems);
    // The generation's plan, as the run makes it before anything is built.
    if let (Some(synthesizer), Some(rules), Some(plan)) =
        (synthesizer, &inspection.rules, &inspection.plan)
        && problems.is_empty()
    {
        problems.extend(
            synthesizer
                .check_plan(&inspection.snapshot, &inspection.catalog, rules, plan)
                .await?,
        );
    }
    // What refresh refuses of `metrics:` and `notify:` before it starts.
    if let Err(e) = crate::ops::check(config) {
        problems.push(e.to_string());
    }
    let catalog = &inspection.catalog;
    let source = inspection.snapshot.leader();

    // Step 11: the staging server, and the tools. Failures refresh refuses with exit 2 are
    // problems; the others are the environment's.
    let mut environment: Vec<String> = Vec::new();
    let mut staging = match db::connect(&settings.target.admin, Role::Target).await {
        Ok(admin) => checks::check_staging(&admin, source, settings, catalog).await,
        Err(e) => vec![e.into()],
    };
    if let Err(e) = refresh::schema::PgTools::find(catalog.server_version / 10000).await {
        staging.push(e);
    }
    for e in staging {
        if e.exit_code() == exit::USAGE {
            problems.push(e.to_string());
        } else {
            environment.push(e.to_string());
        }
    }

    let tables_ruled = inspection
        .rules
        .as_ref()
        .map(|b| b.tables.values().filter(|t| !t.is_passthrough()).count())
        .unwrap_or(0);
    // The first problems and a count of the others: a rules file written for another
    // database can hold hundreds of thousands (issue 11).
    let problems_total = problems.len();
    let shown_problems = &problems[..problems_total.min(crate::yaml::MAX_PROBLEMS_SHOWN)];
    let code = if !problems.is_empty() {
        exit::USAGE
    } else if !environment.is_empty() {
        exit::RUNTIME
    } else {
        exit::OK
    };
    // Problems and the environment's failures in the one error format on stderr, as every
    // command prints its errors (issue 15); `--json` carries them in its document instead.
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::json!({
                "outcome": if code == exit::OK { "valid" } else { "error" },
                "exit_code": code,
                "valid": problems.is_empty() && environment.is_empty(),
                "problems": shown_problems,
                "problems_total": problems_total,
                "environment": environment,
                "warnings": inspection.warnings,
                "tables": catalog.data_tables().count(),
                "tables_with_rules": tables_ruled,
            })
        );
    } else {
        for w in &inspection.warnings {
            crate::error::print_warning(w);
        }
        for p in shown_problems {
            crate::error::print_error(p);
        }
        if let Some(more) = crate::yaml::more_problems(problems_total) {
            crate::error::print_error(&more);
        }
        for p in &environment {
            crate::error::print_error(p);
        }
        if problems.is_empty() && environment.is_empty() {
            crate::output::outln!(
                "valid: {} tables in {}, {} with rules; staging server {} ready",
                catalog.data_tables().count(),
                settings.source.display,
                tables_ruled,
                settings.target.admin.display
            );
        }
    }

    if let (Some(n), Some(b)) = (args.preview, &inspection.rules)
        && problems.is_empty()
    {
        crate::output::out!("{}", preview(source, catalog, b, n).await?);
    }

    Ok(code)
}

/// N rows of each ruled table, before and after, ruled columns only.
async fn preview(
    source: &tokio_postgres::Client,
    catalog: &Catalog,
    bound: &crate::rules::BoundRules,
    n: usize,
) -> Result<String> {
    use futures_util::StreamExt;
    let mut out = String::new();
    for table in catalog.data_tables() {
        let Some(rules) = bound.table(&table.name) else {
            continue;
        };
        if rules.is_passthrough() {
            continue;
        }
        let mut plan = refresh::row_plan(table, rules);
        // The rows as UTF-8 (the server converts), but a SQL_ASCII database's as they are:
        // the server cannot convert them (see crate::pg_encoding).
        let reading = reading_client_encoding(&catalog.encoding);
        let encoding_option = if reading == "UTF8" {
            String::new()
        } else {
            plan.encoding = TextEncoding::SqlAscii;
            format!(" (ENCODING {})", db::quote_literal(reading))
        };
        let columns: Vec<String> = table
            .copy_columns()
            .map(|c| db::quote_ident(&c.name))
            .collect();
        let sql = format!(
            "COPY (SELECT {} FROM ONLY {} LIMIT {n}) TO STDOUT{encoding_option}",
            columns.join(", "),
            table.name.sql()
        );
        let stream = source
            .copy_out(&sql)
            .await
            .map_err(|e| db::DbError::new("source", format!("previewing {}", table.name), e))?;
        let mut stream = std::pin::pin!(stream);
        let mut input = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| db::DbError::new("source", format!("previewing {}", table.name), e))?;
            input.extend_from_slice(&chunk);
        }
        let plan = Arc::new(plan);
        let output = crate::refresh::rows::process_batch(&plan, &input)
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let ruled: Vec<usize> = rules
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.transform.is_some())
            .map(|(i, _)| i)
            .collect();
        let _ = writeln!(out, "\n{} (first {n} rows, ruled columns)", table.name);
        let before_rows: Vec<&[u8]> = copy_text::rows(&input).collect();
        let after_rows: Vec<&[u8]> = copy_text::rows(&output.data).collect();
        for (b, a) in before_rows.iter().zip(&after_rows) {
            let bf: Vec<&[u8]> = copy_text::fields(b).collect();
            let af: Vec<&[u8]> = copy_text::fields(a).collect();
            for &i in &ruled {
                let name = &rules.columns[i].column;
                let _ = writeln!(
                    out,
                    "  {name:<20} {:<40} → {}",
                    show(bf.get(i).copied()),
                    show(af.get(i).copied())
                );
            }
            let _ = writeln!(out);
        }
    }
    Ok(out)
}

fn show(field: Option<&[u8]>) -> String {
    match field {
        None => "?".to_string(),
        Some(f) if copy_text::is_null(f) => "NULL".to_string(),
        Some(f) => {
            let mut s = String::new();
            let mut bytes = Vec::new();
            if copy_text::unescape(f, &mut bytes).is_err()
                || TextEncoding::SqlAscii.decode(&bytes, &mut s).is_err()
            {
                return "(undecodable)".to_string();
            }
            let mut short: String = s.chars().take(60).collect();
            if s.chars().count() > 60 {
                short.push('…');
            }
            short.replace('\n', "\\n").replace('\t', "\\t")
        }
    }
}
