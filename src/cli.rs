//! Command-line interface: global options, the subcommands assembled from the `Args` each
//! command module defines, and dispatch. No logic lives here beyond choosing which command
//! function to call; cli sits above every module and nothing imports it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::alerts::AlertsArgs;
use crate::config::Config;
use crate::demo::DemoArgs;
use crate::deploy::DeployCommand;
use crate::dump::{DumpArgs, RestoreArgs};
use crate::error::{Error, Result};
use crate::health::HealthArgs;
use crate::progress::{ProgressMode, Ui};
use crate::refresh::{GenerationsArgs, RefreshArgs, RollbackArgs};
use crate::scan::ScanArgs;
use crate::validate::ValidateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "restage",
    version,
    about = "Refresh a staging PostgreSQL database from production: read-only snapshot, anonymized, subset, swapped in atomically",
    after_help = "Exit codes: 0 success, 1 runtime failure (staging unchanged), 2 bad config/rules/usage, 3 verification failed, 4 another restage command holds the lock, 5 staging is live but a step after the swap failed."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "restage.yaml",
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// Machine-readable output on stdout (progress and logs stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Less output (repeat for errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// More output (repeat for debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Progress display: bars on a terminal, plain periodic lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProgressArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Refresh staging: snapshot, stream, anonymize, sample, restore, verify, swap, reindex, warm.
    Refresh(RefreshArgs),
    /// Check config and rules against the live source schema, without copying data.
    Validate(ValidateArgs),
    /// Find columns that look like personal data and have no rule.
    Scan(ScanArgs),
    /// Check the current staging database: no leak, foreign keys valid, counts as planned.
    Verify,
    /// Only warm the Redis caches, against the current staging database.
    Warm,
    /// Only rebuild derived search columns and materialized views in the current staging database.
    Reindex,
    /// List the staging generations kept for rollback; pin or unpin one.
    Generations(GenerationsArgs),
    /// Swap staging back to a kept generation (the newest by default).
    Rollback(RollbackArgs),
    /// What is live in staging, since when, from which snapshot and rules; the last runs.
    Status,
    /// Print a Prometheus alerting-rules file for restage's metrics.
    Alerts(AlertsArgs),
    /// Run the configured health checks.
    Health(HealthArgs),
    /// Deploy a version with a strategy, list history, or roll back.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Create a sample production database and refresh a staging database from it.
    Demo(DemoArgs),
    /// Write an anonymized, verified archive of the source (schema, compressed data, manifest).
    Dump(DumpArgs),
    /// Build staging from an archive of `restage dump`: verify, swap, as `refresh` does.
    Restore(RestoreArgs),
}

impl Cli {
    /// Log level from -q/-v: -qq errors, -q warnings, default info, -v debug, -vv trace.
    pub fn verbosity(&self) -> i8 {
        self.verbose as i8 - self.quiet as i8
    }

    fn ui(&self) -> Ui {
        Ui::new(
            self.json,
            self.verbosity(),
            match self.progress {
                ProgressArg::Auto => ProgressMode::Auto,
                ProgressArg::Always => ProgressMode::Always,
                ProgressArg::Never => ProgressMode::Never,
            },
        )
    }
}

/// Runs the command; returns the exit code for a run that finished (health and verify have
/// non-zero codes that are not errors).
pub fn run(cli: Cli) -> Result<i32> {
    let ui = cli.ui();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("restage-io")
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(dispatch(cli, ui))
}

async fn dispatch(cli: Cli, ui: Ui) -> Result<i32> {
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(args, &ui).await.map(|_| 0);
    }
    if let Command::Alerts(args) = &cli.command {
        return crate::alerts::run(args);
    }
    let config = Config::load(&cli.config)?;
    if !config.exists {
        return Err(Error::Usage(format!(
            "{}: no such file (give one with -c FILE; `restage demo` needs none)",
            cli.config.display()
        )));
    }
    match cli.command {
        Command::Refresh(args) => crate::ops::refresh(&config, &args, &ui).await,
        Command::Validate(args) => crate::validate::run(&config, &args, &ui).await,
        Command::Scan(args) => crate::scan::run(&config, &args, &ui).await,
        Command::Verify => crate::ops::verify(&config, &ui).await,
        Command::Warm => crate::ops::warm(&config, &ui).await,
        Command::Reindex => crate::refresh::reindex_live(&config, &ui).await,
        Command::Generations(args) => crate::refresh::generations(&config, &args, &ui).await,
        Command::Rollback(args) => crate::ops::rollback(&config, &args, &ui).await,
        Command::Status => crate::status::run(&config, &ui).await,
        Command::Health(args) => crate::health::run(&config, &args, &ui).await,
        Command::Deploy(cmd) => crate::deploy::run(&config, &cmd, &ui).await,
        Command::Dump(args) => crate::dump::dump(&config, &args, &ui).await,
        Command::Restore(args) => crate::dump::restore(&config, &args, &ui).await,
        Command::Demo(_) | Command::Alerts(_) => unreachable!("handled above"),
    }
}
