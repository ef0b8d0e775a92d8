//! `restage validate`: checks the configuration, then the rules against the live source
//! schema, then the environment (the staging server, the tools), without copying data.
//! Every problem is reported, not just the first; exit 2 when config or rules are wrong,
//! 1 when only the environment is.
//!
//! `--preview N` shows N rows of each ruled table as they are in production and as they would
//! reach staging — production values on the DBA's own terminal, which is the point of it.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::cli::ValidateArgs;
use crate::config::Config;
use crate::copy_text;
use crate::db::{self, Role};
use crate::error::{Error, Result, exit};
use crate::progress::Ui;
use crate::refresh::{self, Settings};
use crate::rules::RuleSet;
use crate::transform::Catalogue;

pub async fn run(config: &Config, args: &ValidateArgs, ui: &Ui) -> Result<i32> {
    let mut problems: Vec<String> = Vec::new();
    let mut environment: Vec<String> = Vec::new();

    // 1. Configuration (resolves values; an unset variable is reported here).
    let settings = Settings::from_config(config, "validate")?;

    // 2. Rules, parsed.
    let (rule_set, load_problems) =
        RuleSet::load_partial(&settings.rules_path, settings.rules_optional);
    problems.extend(load_problems);
    let rule_set = Some(rule_set);

    // 3. Against the live source schema.
    let source = db::connect(&settings.source, Role::Source).await?;
    let catalog = Catalog::read(&source, &settings.source.display).await?;
    let secret = settings.secret.clone().unwrap_or_default();
    let transforms = Catalogue::new(&secret, &settings.locale);
    let mut bound = None;
    if let Some(set) = &rule_set {
        match set.bind(&catalog, &transforms) {
            Ok(b) => bound = Some(b),
            Err(errors) => problems.extend(errors),
        }
    }
    problems.extend(refresh::check_derived(&catalog, &settings.derived));
    if let Some(b) = &bound {
        if let Err(e) = refresh::strict_check(&catalog, b, &settings, false) {
            problems.push(e.to_string());
        }
        problems.extend(
            refresh::unruled_tsvectors(&catalog, b, &settings)
                .into_iter()
                .map(|w| format!("search: {w}")),
        );
    }

    // 4. The environment: staging server, extensions, roles, tools.
    match db::connect(&settings.admin, Role::Target).await {
        Ok(admin) => {
            if let Err(e) = refresh::preflight(&admin, &settings, &catalog).await {
                environment.push(e.to_string());
            }
        }
        Err(e) => environment.push(e.to_string()),
    }
    if let Err(e) = refresh::schema::PgTools::find(catalog.server_version / 10000).await {
        environment.push(e.to_string());
    }

    let tables_ruled = bound
        .as_ref()
        .map(|b| b.tables.values().filter(|t| !t.is_passthrough()).count())
        .unwrap_or(0);
    if ui.json {
        println!(
            "{}",
            serde_json::json!({
                "valid": problems.is_empty() && environment.is_empty(),
                "problems": problems,
                "environment": environment,
                "tables": catalog.data_tables().count(),
                "tables_with_rules": tables_ruled,
            })
        );
    } else {
        for p in &problems {
            println!("error: {p}");
        }
        for p in &environment {
            println!("environment: {p}");
        }
        if problems.is_empty() && environment.is_empty() {
            println!(
                "valid: {} tables in {}, {} with rules; staging server {} ready",
                catalog.data_tables().count(),
                settings.source.display,
                tables_ruled,
                settings.admin.display
            );
        }
    }

    if let (Some(n), Some(b)) = (args.preview, &bound)
        && problems.is_empty()
    {
        print!("{}", preview(&source, &catalog, b, n).await?);
    }

    Ok(if !problems.is_empty() {
        exit::USAGE
    } else if !environment.is_empty() {
        exit::RUNTIME
    } else {
        exit::OK
    })
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
        let plan = refresh::row_plan(table, rules);
        let columns: Vec<String> = table
            .copy_columns()
            .map(|c| db::quote_ident(&c.name))
            .collect();
        let sql = format!(
            "COPY (SELECT {} FROM ONLY {} LIMIT {n}) TO STDOUT",
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
            if copy_text::decode(f, &mut s).is_err() {
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
