//! `restage alerts`: a Prometheus alerting-rules file for restage's metrics, on stdout.
//!
//! Five alerts, each with a severity and a `runbook_url` pointing at its section of
//! docs/operations.md (what it means, what to do):
//!
//! | alert | fires when | severity |
//! |---|---|---|
//! | `RestageStagingStale` | the last successful refresh (or restore) is older than `--stale-after` (26h) | warning |
//! | `RestageRunFailed` | the last run of a command exited non-zero (other than 3) | warning |
//! | `RestageVerificationFailed` | a verification found a leak (or a refresh exited 3) | critical |
//! | `RestageRunSlow` | the last refresh (or restore) took more than `--slow-factor` (2) × its usual duration | warning |
//! | `RestageCacheNotWarmed` | the latest cache warming failed | warning |
//!
//! The expressions use [`crate::metrics::names`], the one list of metric names. A staging
//! database is built by `refresh`, or by `restore` on the staging side of an air-gapped
//! setup: the stale and slow alerts watch both (`BUILDS`). Only the command that built the
//! live database has records there (a swap starts the records afresh), so the two never
//! compete.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::names;
use crate::units::Duration;

/// `restage alerts` options.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertsArgs {
    /// Staging is stale when its last successful refresh is older than this.
    #[arg(long, value_name = "DURATION", default_value = "26h")]
    pub stale_after: Duration,
    /// A refresh is slow when it takes more than this many times its usual duration.
    #[arg(long, value_name = "N", default_value_t = 2.0)]
    pub slow_factor: f64,
    /// The usual duration: the average of the last refreshes over this window, ending a day
    /// ago (so the run being judged is not part of it).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub usual_window: Duration,
    /// Refreshes shorter than this are never called slow (a 20-second run that took 45 is
    /// not worth a page).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub slow_minimum: Duration,
    /// Where docs/operations.md is published; each alert's runbook_url is this with the
    /// alert's section as the fragment.
    #[arg(long, value_name = "URL", default_value = "docs/operations.md")]
    pub runbook_base: String,
}

impl Default for AlertsArgs {
    fn default() -> AlertsArgs {
        AlertsArgs {
            stale_after: Duration(std::time::Duration::from_secs(26 * 3600)),
            slow_factor: 2.0,
            usual_window: Duration(std::time::Duration::from_secs(7 * 86_400)),
            slow_minimum: Duration(std::time::Duration::from_secs(300)),
            runbook_base: "docs/operations.md".to_string(),
        }
    }
}

#[derive(Serialize)]
struct RulesFile {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Rule {
    alert: &'static str,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<&'static str>,
    labels: Labels,
    annotations: Annotations,
}

#[derive(Serialize)]
struct Labels {
    severity: &'static str,
}

#[derive(Serialize)]
struct Annotations {
    summary: String,
    description: String,
    runbook_url: String,
}

/// A duration as PromQL writes it: `26h`, `7d`, `90s`.
fn promql_duration(d: Duration) -> String {
    let secs = d.0.as_secs().max(1);
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The commands that build a staging database, as a PromQL label matcher.
const BUILDS: &str = "command=~\"refresh|restore\"";

/// The rules file.
pub fn rules(args: &AlertsArgs) -> String {
    let runbook = |alert: &str| format!("{}#{}", args.runbook_base, alert.to_lowercase());
    let stale = args.stale_after.0.as_secs().max(1);
    let window = promql_duration(args.usual_window);
    let duration = format!("{}{{{BUILDS}}}", names::LAST_RUN_DURATION);
    let rule =
        |alert: &'static str, severity, expr: String, summary: &str, description: &str| Rule {
            alert,
            expr,
            for_: None,
            labels: Labels { severity },
            annotations: Annotations {
                summary: summary.to_string(),
                description: description.to_string(),
                runbook_url: runbook(alert),
            },
        };
    let rules = vec![
        rule(
            "RestageStagingStale",
            "warning",
            format!("time() - {}{{{BUILDS}}} > {stale}", names::LAST_SUCCESS),
            "staging {{ $labels.database }} is stale",
            &format!(
                "The last successful {{{{ $labels.command }}}} of {{{{ $labels.database }}}} ended {{{{ $value | humanizeDuration }}}} ago (threshold {}).",
                promql_duration(args.stale_after)
            ),
        ),
        rule(
            "RestageRunFailed",
            "warning",
            format!(
                "{exit} != 0 unless {exit} == 3",
                exit = names::LAST_RUN_EXIT_CODE
            ),
            "restage {{ $labels.command }} failed for {{ $labels.database }}",
            "The last `restage {{ $labels.command }}` of {{ $labels.database }} exited {{ $value }} (1 runtime failure, 2 config or rules, 4 another run held the lock). `restage status` shows its last line.",
        ),
        rule(
            "RestageVerificationFailed",
            "critical",
            format!(
                "{leaks} > 0 or {exit} == 3",
                leaks = names::VERIFICATION_LEAKS,
                exit = names::LAST_RUN_EXIT_CODE
            ),
            "restage verification failed for {{ $labels.database }}",
            "The last `restage {{ $labels.command }}` of {{ $labels.database }} found protected source values in staging (a leak) or broken foreign keys. After a refresh, staging was not swapped; after `restage verify`, the leak is in live staging.",
        ),
        rule(
            "RestageRunSlow",
            "warning",
            format!(
                "{duration} > {factor} * avg_over_time({duration}[{window}] offset 1d) and {duration} > {minimum}",
                factor = args.slow_factor,
                minimum = args.slow_minimum.0.as_secs(),
            ),
            "restage {{ $labels.command }} of {{ $labels.database }} was slow",
            &format!(
                "The last {{{{ $labels.command }}}} of {{{{ $labels.database }}}} took {{{{ $value | humanizeDuration }}}}, more than {}x its average over the {window} before.",
                args.slow_factor
            ),
        ),
        rule(
            "RestageCacheNotWarmed",
            "warning",
            format!("{} == 0", names::CACHE_WARMED),
            "the cache of staging {{ $labels.database }} was not warmed",
            "The latest cache warming of {{ $labels.database }} (a refresh's, or `restage warm`) failed: staging apps read a cold or stale cache.",
        ),
    ];
    let file = RulesFile {
        groups: vec![Group {
            name: "restage",
            rules,
        }],
    };
    let yaml = serde_yaml::to_string(&file).unwrap_or_default();
    format!(
        "# Alerting rules for restage's metrics (`restage alerts`, restage {}).\n# What each alert means and what to do: the runbook_url of each rule.\n{yaml}",
        env!("CARGO_PKG_VERSION")
    )
}

/// `restage alerts`: prints the rules file.
pub fn run(args: &AlertsArgs) -> Result<i32> {
    if !(args.slow_factor.is_finite() && args.slow_factor > 0.0) {
        return Err(Error::Usage(format!(
            "--slow-factor {}: must be a number above 0",
            args.slow_factor
        )));
    }
    for (flag, d) in [
        ("--stale-after", args.stale_after),
        ("--usual-window", args.usual_window),
    ] {
        if d.0.as_secs() == 0 {
            return Err(Error::Usage(format!("{flag}: must be at least 1s")));
        }
    }
    crate::output::out!("{}", rules(args));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_use_the_metric_names_and_the_options() {
        let args = AlertsArgs {
            stale_after: "30h".parse().unwrap(),
            runbook_base: "https://wiki.example/ops".into(),
            ..AlertsArgs::default()
        };
        let text = rules(&args);
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let rules = doc["groups"][0]["rules"].as_sequence().unwrap();
        let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "RestageStagingStale",
                "RestageRunFailed",
                "RestageVerificationFailed",
                "RestageRunSlow",
                "RestageCacheNotWarmed"
            ]
        );
        assert_eq!(
            rules[0]["expr"].as_str().unwrap(),
            "time() - restage_last_success_timestamp_seconds{command=~\"refresh|restore\"} > 108000"
        );
        assert_eq!(
            rules[0]["annotations"]["runbook_url"].as_str().unwrap(),
            "https://wiki.example/ops#restagestagingstale"
        );
        for r in rules {
            assert!(r["labels"]["severity"].is_string());
        }
        assert_eq!(promql_duration("7d".parse().unwrap()), "7d");
        assert_eq!(promql_duration("90m".parse().unwrap()), "90m");
        assert_eq!(promql_duration("45s".parse().unwrap()), "45s");
    }
}
