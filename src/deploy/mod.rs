//! `restage deploy`: rolling, canary and blue-green strategies with health gates, automatic
//! rollback, history, and `deploy rollback` to the last good version.
//!
//! ```text
//! deploy: (config::deploy) ──validate (plan.rs)──► Plan ──► strategy (rolling.rs · canary.rs · blue_green.rs)
//!                                              │  deployment.rs: update (command.rs) + gate (gate.rs)
//!                                              │  canary analysis: metrics.rs
//!                                              ▼
//!                                    history.rs (JSON Lines or PostgreSQL) ──► exit code
//! ```
//!
//! Exit codes: 0 the deployment succeeded; 1 it failed (rolled back or not — history and the
//! message say which); 2 bad config or usage.
//!
//! HTTP, durations and the stop signal come from the foundations ([`crate::http`],
//! [`crate::units`], [`crate::signal`]); deploy does not reach into `health`.

pub mod blue_green;
pub mod canary;
pub mod command;
pub mod deployment;
pub mod gate;
pub mod history;
pub mod metrics;
pub mod plan;
pub mod rolling;

use clap::{Args, Subcommand};

use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::progress::Ui;
use crate::signal::Shutdown;
use command::Placeholder;
use deployment::{Color, Deployment};
use history::{History, Outcome, Record};
use plan::Plan;

/// `restage deploy …`.
#[derive(Debug, Subcommand, Clone)]
pub enum DeployCommand {
    /// Update instances in batches, each gated on health.
    Rolling(DeployArgs),
    /// Shift traffic in steps, watching error rate and latency.
    Canary(DeployArgs),
    /// Update the idle colour, gate on health, switch traffic.
    #[command(name = "blue-green")]
    BlueGreen(DeployArgs),
    /// List past deployments and rollbacks.
    History(DeployHistoryArgs),
    /// Return to the last good version.
    Rollback(DeployRollbackArgs),
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// The version to deploy (fills `{version}` in the command templates).
    pub version: String,
    /// Why this deployment happens; recorded in history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The version running now, when history does not know it yet (the first deployment
    /// recorded by restage); rollbacks return to it.
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct DeployHistoryArgs {
    /// Show only the last N entries.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args, Clone)]
pub struct DeployRollbackArgs {
    /// Why; recorded in history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// The strategies of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Rolling,
    Canary,
    BlueGreen,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

/// `to` of a rollback record when history does not know what the service returned to.
pub const UNKNOWN_VERSION: &str = "unknown";

pub async fn run(config: &Config, command: &DeployCommand, ui: &Ui) -> Result<i32> {
    let section = config
        .file
        .deploy
        .as_ref()
        .ok_or_else(|| ConfigError::MissingSection {
            file: config.path.clone(),
            section: "deploy",
            command: "deploy",
        })?;
    let plan = match plan::validate(section, config) {
        Ok(plan) => plan,
        Err(problems) => {
            ConfigError::from_problems(problems)?;
            return Err(Error::Usage("deploy: invalid configuration".to_string()));
        }
    };
    let history = History::from_config(config, section.history.as_ref())?;
    match command {
        DeployCommand::Rolling(args) => {
            deploy(config, &plan, &history, Strategy::Rolling, args, ui).await
        }
        DeployCommand::Canary(args) => {
            deploy(config, &plan, &history, Strategy::Canary, args, ui).await
        }
        DeployCommand::BlueGreen(args) => {
            deploy(config, &plan, &history, Strategy::BlueGreen, args, ui).await
        }
        DeployCommand::History(args) => list(&history, args, ui).await,
        DeployCommand::Rollback(args) => rollback(config, &plan, &history, args, ui).await,
    }
}

/// A version goes into commands, history and logs: one printable word.
fn check_version(version: &str) -> Result<()> {
    if version.is_empty()
        || version.len() > 200
        || version.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "`{version}` is not a version: give one word of at most 200 printable characters"
        )));
    }
    Ok(())
}

/// Checks what depends on the strategy and on history, before anything runs.
fn preflight(
    config: &Config,
    plan: &Plan,
    strategy: Strategy,
    previous: Option<&str>,
) -> Result<()> {
    match strategy {
        Strategy::Rolling if plan.instances.is_empty() => {
            return Err(config
                .value_error(
                    &["deploy", "instances"],
                    "is empty; `deploy rolling` needs at least one instance",
                )
                .into());
        }
        Strategy::Canary if plan.canary.is_none() => {
            return Err(ConfigError::MissingSection {
                file: config.path.clone(),
                section: "deploy.canary",
                command: "deploy canary",
            }
            .into());
        }
        Strategy::BlueGreen if plan.blue_green.is_none() => {
            return Err(ConfigError::MissingSection {
                file: config.path.clone(),
                section: "deploy.blue_green",
                command: "deploy blue-green",
            }
            .into());
        }
        _ => {}
    }
    if strategy != Strategy::BlueGreen && plan.update.uses(Placeholder::Color) {
        return Err(config
            .value_error(
                &["deploy", "update"],
                format!("uses `{{color}}`, which only blue-green deployments have (this is `deploy {}`)", strategy.name()),
            )
            .into());
    }
    if previous.is_none() {
        let mut users = vec![&plan.update];
        if let Some(c) = &plan.canary {
            users.push(&c.traffic);
        }
        if let Some(b) = &plan.blue_green {
            users.push(&b.switch);
        }
        if let Some(t) = users.iter().find(|t| t.uses(Placeholder::PreviousVersion)) {
            return Err(Error::Usage(format!(
                "{} uses `{{previous_version}}` but no previous version is known (history has no succeeded deployment): pass --from VERSION",
                t.key
            )));
        }
    }
    Ok(())
}

async fn deploy(
    config: &Config,
    plan: &Plan,
    history: &History,
    strategy: Strategy,
    args: &DeployArgs,
    ui: &Ui,
) -> Result<i32> {
    check_version(&args.version)?;
    if let Some(from) = &args.from {
        check_version(from)?;
    }
    let records = history.load().await?;
    let previous = args
        .from
        .clone()
        .or_else(|| history::current_version(&records).map(|r| r.to.clone()));
    preflight(config, plan, strategy, previous.as_deref())?;
    if previous.is_none() && plan.auto_rollback {
        tracing::warn!(
            "no previous version is known (no succeeded deployment in {}, no --from): a failure cannot be rolled back to a version",
            history.describe()
        );
    }
    let live = history::live_color(&records)
        .and_then(Color::parse)
        .unwrap_or(Color::Blue);
    let record = start_record(
        strategy.name(),
        previous.clone(),
        &args.version,
        args.reason.clone(),
    );
    history.append(&record).await?;
    tracing::info!(
        strategy = strategy.name(),
        from = previous.as_deref().unwrap_or("-"),
        to = %args.version,
        "deployment started"
    );
    let mut d = Deployment::new(plan, args.version.clone(), previous);
    let mut shutdown =
        Shutdown::new().map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let result = tokio::select! {
        result = async {
            match strategy {
                Strategy::Rolling => {
                    rolling::deploy(
                        &mut d,
                        rolling::RollingRun {
                            instances: &plan.instances,
                            batch_size: plan.rolling.batch_size,
                            max_failure: plan.rolling.max_failure,
                            pause: plan.rolling.pause,
                        },
                    )
                    .await
                }
                Strategy::Canary => canary::deploy(&mut d).await,
                Strategy::BlueGreen => blue_green::deploy(&mut d, live, false).await,
            }
        } => result,
        signal = shutdown.wait() => Err(interrupted(signal)),
    };
    finish(history, record, d, result, ui).await
}

/// The error of a deployment stopped by a signal. Commands in flight are killed (their
/// whole process group); nothing is rolled back: whoever stopped it decides what happens
/// next, e.g. `restage deploy rollback`.
fn interrupted(signal: &str) -> String {
    tracing::warn!(signal, "interrupted: stopping the deployment where it is");
    format!(
        "interrupted by {signal}: stopped where it was and not rolled back (the steps show how far it got; `restage deploy rollback` returns to the last good version)"
    )
}

fn start_record(strategy: &str, from: Option<String>, to: &str, reason: Option<String>) -> Record {
    Record {
        id: history::new_id(strategy),
        who: history::who(),
        started_at: history::now(),
        finished_at: None,
        strategy: strategy.to_string(),
        from,
        to: to.to_string(),
        outcome: Outcome::InProgress,
        reason,
        error: None,
        color: None,
        rollback_of: None,
        steps: Vec::new(),
    }
}

/// Writes the final record (and the automatic rollback's, when one ran), prints the outcome,
/// and returns the exit code.
async fn finish(
    history: &History,
    mut record: Record,
    d: Deployment<'_>,
    result: std::result::Result<String, String>,
    ui: &Ui,
) -> Result<i32> {
    record.finished_at = Some(history::now());
    record.steps = d.steps;
    record.color = d.color.map(|c| c.as_str().to_string());
    let mut rollback_record = None;
    match &result {
        Ok(_) => record.outcome = Outcome::Succeeded,
        Err(error) => {
            record.error = Some(error.clone());
            let rollback_result = d.rollback.as_ref().and_then(|r| r.result.clone());
            record.outcome = match rollback_result {
                Some(Ok(())) => Outcome::RolledBack,
                _ => Outcome::Failed,
            };
            if let Some(rb) = d.rollback {
                let mut r = start_record(
                    "rollback",
                    Some(d.version.clone()),
                    d.previous.as_deref().unwrap_or(UNKNOWN_VERSION),
                    Some(format!("automatic: {error}")),
                );
                if let Some(first) = rb.steps.first() {
                    r.started_at = first.at.clone();
                }
                r.finished_at = Some(history::now());
                r.outcome = match &rb.result {
                    Some(Ok(())) => Outcome::Succeeded,
                    _ => Outcome::Failed,
                };
                r.error = rb.result.and_then(|r| r.err());
                r.color = record.color.clone();
                r.rollback_of = Some(record.id.clone());
                r.steps = rb.steps;
                rollback_record = Some(r);
            }
        }
    }
    let mut write_error = None;
    for r in std::iter::once(&record).chain(rollback_record.as_ref()) {
        if let Err(e) = history.append(r).await {
            write_error = Some(e);
        }
    }
    print_outcome(ui, &record, rollback_record.as_ref(), &result);
    if let Some(e) = write_error {
        return Err(Error::Runtime(format!(
            "the deployment ended ({}) but {} could not be written: {e}",
            record.outcome.as_str(),
            history.describe()
        )));
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

fn print_outcome(
    ui: &Ui,
    record: &Record,
    rollback: Option<&Record>,
    result: &std::result::Result<String, String>,
) {
    if ui.json {
        let doc = serde_json::json!({ "deployment": record, "rollback": rollback });
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => crate::output::outln!("{text}"),
            Err(e) => tracing::error!("cannot render the outcome: {e}"),
        }
        return;
    }
    let what = if record.strategy == "rollback" {
        format!("rollback to {}", record.to)
    } else {
        format!("{} deployment of {}", record.strategy, record.to)
    };
    match result {
        Ok(summary) => crate::output::outln!("{what} succeeded: {summary}"),
        Err(error) => {
            crate::output::outln!("{what} failed: {error}");
            match rollback {
                Some(r) if r.outcome == Outcome::Succeeded => {
                    crate::output::outln!("rolled back to {}", r.to)
                }
                Some(r) => crate::output::outln!(
                    "rollback to {} failed: {}",
                    r.to,
                    r.error.as_deref().unwrap_or("see history")
                ),
                None if record.strategy == "blue-green" && record.color.is_some() => {
                    crate::output::outln!(
                        "not rolled back; {} serves traffic",
                        record.color.as_deref().unwrap_or("?")
                    )
                }
                None => crate::output::outln!("not rolled back"),
            }
        }
    }
}

/// `deploy rollback`: back to the newest succeeded version before the current one. A
/// blue-green service switches back to the other colour; any other goes through a rolling
/// update of every instance (all at once without a `rolling:` section). A failed rollback is
/// not rolled back again: history and the exit code say so.
async fn rollback(
    config: &Config,
    plan: &Plan,
    history: &History,
    args: &DeployRollbackArgs,
    ui: &Ui,
) -> Result<i32> {
    let records = history.load().await?;
    let Some((current, target)) = history::rollback_target(&records) else {
        return Err(Error::Runtime(format!(
            "nothing to roll back to: {} has no succeeded version before the current one",
            history.describe()
        )));
    };
    let version = target.to.clone();
    let previous = current.to.clone();
    let blue_green = current.color.is_some() && plan.blue_green.is_some();
    let strategy = if blue_green {
        Strategy::BlueGreen
    } else {
        Strategy::Rolling
    };
    preflight(config, plan, strategy, Some(&previous))?;
    let live_text = history::live_color(&records);
    let live = live_text.and_then(Color::parse).unwrap_or(Color::Blue);
    // After a blue-green deployment, the colour it left idle still runs its `from`.
    let skip_update = blue_green
        && current.strategy == "blue-green"
        && current.from.as_deref() == Some(version.as_str())
        && live_text == current.color.as_deref();
    let mut record = start_record(
        "rollback",
        Some(previous.clone()),
        &version,
        Some(args.reason.clone().unwrap_or_else(|| "manual".to_string())),
    );
    record.rollback_of = Some(current.id.clone());
    history.append(&record).await?;
    tracing::info!(from = %previous, to = %version, "rollback started");
    let mut d = Deployment::new(plan, version, Some(previous));
    d.may_roll_back = false;
    let mut shutdown =
        Shutdown::new().map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let result = tokio::select! {
        result = async {
            if blue_green {
                blue_green::deploy(&mut d, live, skip_update).await
            } else {
                let batch_size = if plan.rolling_configured {
                    plan.rolling.batch_size
                } else {
                    plan.instances.len()
                };
                rolling::deploy(
                    &mut d,
                    rolling::RollingRun {
                        instances: &plan.instances,
                        batch_size,
                        max_failure: 0.0,
                        pause: plan.rolling.pause,
                    },
                )
                .await
            }
        } => result,
        signal = shutdown.wait() => Err(interrupted(signal)),
    };
    finish(history, record, d, result, ui).await
}

/// `deploy history`: the last entries, oldest first.
async fn list(history: &History, args: &DeployHistoryArgs, ui: &Ui) -> Result<i32> {
    let records = history.load().await?;
    let skip = records.len().saturating_sub(args.limit);
    let shown = &records[skip..];
    if ui.json {
        let text = serde_json::to_string_pretty(shown)
            .map_err(|e| Error::Runtime(format!("cannot render history: {e}")))?;
        crate::output::outln!("{text}");
        return Ok(0);
    }
    if shown.is_empty() {
        crate::output::outln!("no deployments recorded in {}", history.describe());
        return Ok(0);
    }
    for r in shown {
        let versions = format!("{} -> {}", r.from.as_deref().unwrap_or("?"), r.to);
        let mut line = format!(
            "{}  {:<10}  {:<16}  {:<11}  {}",
            r.started_at,
            r.strategy,
            versions,
            r.outcome.as_str(),
            r.who
        );
        if let Some(color) = &r.color {
            line.push_str(&format!("  live={color}"));
        }
        if let Some(reason) = &r.reason {
            line.push_str(&format!("  reason: {reason}"));
        }
        if let Some(error) = &r.error {
            line.push_str(&format!("  error: {error}"));
        }
        crate::output::outln!("{line}");
    }
    Ok(0)
}
