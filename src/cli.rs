//! Command-line interface: global options, subcommands, and dispatch. No logic lives here
//! beyond choosing which stage function to call.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::{ProgressMode, Ui};
use crate::refresh::{RefreshArgs, RollbackArgs};
use crate::validate::ValidateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "restage",
    version,
    about = "Refresh a staging PostgreSQL database from production: read-only snapshot, anonymized, subset, swapped in atomically",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 bad config/rules/usage, 3 verification failed, 4 another refresh holds the lock."
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
    /// List the staging generations kept for rollback.
    Generations,
    /// Swap staging back to a kept generation (the newest by default).
    Rollback(RollbackArgs),
    /// Run the configured health checks.
    Health(HealthArgs),
    /// Deploy a version with a strategy, list history, or roll back.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Create a sample production database and refresh a staging database from it.
    Demo(DemoArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ScanArgs {
    /// Write proposed rules for the findings to FILE (loads as is).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Rows sampled per table for value detection (0: judge by column names only).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sample_rows: usize,
    /// Report only findings at or above this confidence.
    #[arg(long, value_enum, default_value_t = crate::scan::Level::Low, value_name = "LEVEL")]
    pub min_confidence: crate::scan::Level,
    /// Exit with code 3 when anything is found (for CI); otherwise findings exit 0.
    #[arg(long)]
    pub fail_on_findings: bool,
}

#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Repeat the checks every `health.interval`.
    #[arg(long)]
    pub watch: bool,
    /// Serve the status document as `GET /health` on ADDR (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// With --watch or --serve: stop after N runs (the exit code is the last run's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
}

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

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Size of the sample production database (1 = about 2,000 users; rows scale linearly).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Name of the sample production database.
    #[arg(long, default_value = "restage_demo_prod")]
    pub source_db: String,
    /// Name of the staging database the demo refreshes.
    #[arg(long, default_value = "restage_demo_staging")]
    pub target_db: String,
    /// Only create the sample production database (for benchmarks and experiments).
    #[arg(long)]
    pub generate_only: bool,
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
    let config = Config::load(&cli.config)?;
    if !config.exists {
        return Err(Error::Usage(format!(
            "{}: no such file (give one with -c FILE; `restage demo` needs none)",
            cli.config.display()
        )));
    }
    match cli.command {
        Command::Refresh(args) => crate::refresh::refresh(&config, &args, &ui).await,
        Command::Validate(args) => crate::validate::run(&config, &args, &ui).await,
        Command::Scan(args) => crate::scan::run(&config, &args, &ui).await,
        Command::Verify => crate::refresh::verify_live(&config, &ui).await,
        Command::Warm => crate::refresh::warm_live(&config, &ui).await,
        Command::Reindex => crate::refresh::reindex_live(&config, &ui).await,
        Command::Generations => crate::refresh::generations(&config, &ui).await,
        Command::Rollback(args) => crate::refresh::rollback(&config, &args, &ui).await,
        Command::Health(args) => crate::health::run(&config, &args, &ui).await,
        Command::Deploy(cmd) => crate::deploy::run(&config, &cmd, &ui).await,
        Command::Demo(_) => unreachable!("handled above"),
    }
}
