//! Command-line interface: global options, the subcommands assembled from the `Args` each
//! command module defines, and dispatch. No logic lives here beyond choosing which command
//! function to call; cli sits above every module and nothing imports it.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::alerts::AlertsArgs;
use crate::config::Config;
use crate::copies::{CopiesArgs, CopyArgs};
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
    /// Build staging from generated rows: the schema of production (or of
    /// `source.schema_archive`), no production row (see `source.mode: synthetic`).
    Generate(RefreshArgs),
    /// Check config and rules against the live source schema, without copying data.
    Validate(ValidateArgs),
    /// Find columns that look like personal data and have no rule.
    Scan(ScanArgs),
    /// Write a commented restage.yaml and proposed rules for a source database, ready to run.
    Init(crate::init::InitArgs),
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
    /// Make a private copy of the live staging database (CREATE DATABASE … TEMPLATE), with an expiry.
    Copy(CopyArgs),
    /// List the copies `restage copy` made; `prune` drops the expired ones, `drop NAME` one.
    Copies(CopiesArgs),
    /// Print a Prometheus alerting-rules file for restage's metrics.
    Alerts(AlertsArgs),
    /// Run the configured health checks.
    Health(HealthArgs),
    /// Deploy a version with a strategy, list history, or roll back.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Create a sample production database and refresh a staging database from it.
    Demo(DemoArgs),
    /// Print a shell completion script: `restage completions bash > /etc/bash_completion.d/restage`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `restage man > restage.1; man -l restage.1`.
    Man,
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

/// What a command line clap refuses ends with: `--help` and `--version` print (a closed
/// pipe is no failure) and exit 0; a usage mistake is printed in the one error format
/// ([`crate::error::print_error`]), with its `--json` document when `--json` was given, and
/// exits 2. Returns the exit code.
pub fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let text = e.render().to_string();
            if e.use_stderr() {
                crate::output::errln!("{}", text.trim_end());
                crate::error::exit::USAGE
            } else {
                crate::output::outln!("{}", text.trim_end());
                crate::error::exit::OK
            }
        }
        _ => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            crate::error::print_error(text);
            if std::env::args().any(|a| a == "--json") {
                crate::output::outln!(
                    "{}",
                    crate::error::error_document("usage", crate::error::exit::USAGE, text)
                );
            }
            crate::error::exit::USAGE
        }
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
    if let Command::Init(args) = &cli.command {
        return crate::init::run(args, &ui).await;
    }
    if let Command::Completions { shell } = &cli.command {
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "restage", &mut script);
        crate::output::out!("{}", String::from_utf8_lossy(&script));
        return Ok(0);
    }
    if let Command::Man = &cli.command {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .map_err(|e| Error::io("rendering the man page", e))?;
        crate::output::out!("{}", String::from_utf8_lossy(&page));
        return Ok(0);
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
        Command::Generate(args) => crate::ops::generate(&config, &args, &ui).await,
        Command::Validate(args) => crate::validate::run(&config, &args, &ui).await,
        Command::Scan(args) => crate::scan::run(&config, &args, &ui).await,
        Command::Verify => crate::ops::verify(&config, &ui).await,
        Command::Warm => crate::ops::warm(&config, &ui).await,
        Command::Reindex => crate::refresh::reindex_live(&config, &ui).await,
        Command::Generations(args) => crate::refresh::generations(&config, &args, &ui).await,
        Command::Rollback(args) => crate::ops::rollback(&config, &args, &ui).await,
        Command::Status => crate::status::run(&config, &ui).await,
        Command::Copy(args) => crate::copies::copy(&config, &args, &ui).await,
        Command::Copies(args) => crate::copies::copies(&config, &args, &ui).await,
        Command::Health(args) => crate::health::run(&config, &args, &ui).await,
        Command::Deploy(cmd) => crate::deploy::run(&config, &cmd, &ui).await,
        Command::Dump(args) => crate::ops::dump(&config, &args, &ui).await,
        Command::Restore(args) => crate::ops::restore(&config, &args, &ui).await,
        Command::Demo(_)
        | Command::Alerts(_)
        | Command::Init(_)
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled above")
        }
    }
}
