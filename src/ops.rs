//! The commands that change or check staging — `refresh` (and `generate`, with rows
//! generated: synthetic and hybrid modes), `restore`, `rollback`, `verify`, `warm` — and
//! `dump`, which writes the archive a restore reads, run with what an unattended job must
//! tell afterwards, in this order:
//!
//! 1. the run's summary ([`RunSummary`]), from the report or result the command returned;
//! 2. recorded on the staging server ([`status::record`]); a rollback first carries over
//!    the records of the database it replaces (read before it runs);
//! 3. the state read back ([`status::read`]; only this run when the server cannot be read)
//!    and published as metrics ([`metrics::Sinks`]: textfile, Pushgateway);
//! 4. the notifications sent ([`notify`]).
//!
//! Nothing after the command changes its exit code: each step that fails is logged as a
//! warning and the next one runs. What is checked before the command runs is only what can
//! be known without touching anything — `metrics:` and `notify:` resolve (a bad webhook URL
//! is exit 2 before the refresh starts, not a silent night).
//!
//! A `--dry-run` refresh is none of this: it changes nothing, so it tells nothing.
//!
//! A dump runs on production's side, where there may be no staging server at all (an
//! air-gapped setup): it skips step 2 even when the configuration names a target, and its
//! metrics and notifications name the source database.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::config::Config;
use crate::dump::{self, DumpArgs, RestoreArgs};
use crate::error::Result;
use crate::metrics::Sinks;
use crate::notify::{self, Notifier};
use crate::progress::Ui;
use crate::refresh::settings::TargetSettings;
use crate::refresh::{self, RefreshArgs, RollbackArgs};
use crate::rules::RuleSet;
use crate::runs::{
    CacheCounts, Command, RunRecord, RunSummary, StagingState, TotalCounts, VerificationCounts,
    parse_instant,
};
use crate::status;

/// Where a run is told: the staging server (when `target:` resolves), the metrics sinks,
/// the notifiers.
struct Telling {
    target: Option<TargetSettings>,
    database: String,
    server: String,
    sinks: Option<Sinks>,
    notifiers: Vec<Notifier>,
}

impl Telling {
    fn from_config(config: &Config, command: &'static str) -> Result<Telling> {
        // A target that does not resolve is the command's own error to report; the run is
        // then told without the server.
        let target = TargetSettings::from_config(config, command).ok();
        let database = config
            .file
            .target
            .as_ref()
            .map(|t| t.database.clone())
            .unwrap_or_default();
        let server = target
            .as_ref()
            .map(|t| t.admin.display.clone())
            .unwrap_or_default();
        Ok(Telling {
            sinks: Sinks::from_config(config, &database)?,
            notifiers: Notifier::from_config(config)?,
            target,
            database,
            server,
        })
    }

    /// For a dump: no staging server (a dump never connects to one); the runs are labelled
    /// with `target.database` when the configuration has one (a single file for both
    /// sides), else with the source database's name.
    fn for_dump(config: &Config) -> Result<Telling> {
        let source = config.source("dump").ok();
        let database = match config.file.target.as_ref() {
            Some(t) => t.database.clone(),
            None => source
                .as_ref()
                .and_then(|s| s.config.get_dbname().map(str::to_string))
                .unwrap_or_default(),
        };
        Ok(Telling {
            sinks: Sinks::from_config(config, &database)?,
            notifiers: Notifier::from_config(config)?,
            target: None,
            server: source.map(|s| s.display).unwrap_or_default(),
            database,
        })
    }

    /// The records of the live database before a rollback, to carry over to the generation
    /// it brings back. Empty when they cannot be read.
    async fn before(&self) -> BTreeMap<Command, RunRecord> {
        let Some(target) = &self.target else {
            return BTreeMap::new();
        };
        match status::read(target).await {
            Ok(state) => state.runs,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the run records before the run");
                BTreeMap::new()
            }
        }
    }

    fn summary(
        &self,
        command: Command,
        started_at: chrono::DateTime<Utc>,
        result: &Result<i32>,
        success: impl Into<String>,
    ) -> RunSummary {
        RunSummary::new(
            command,
            &self.database,
            &self.server,
            started_at,
            result,
            success,
        )
    }

    /// Steps 2–4 for `run`. A SIGINT or SIGTERM that arrives meanwhile (a second one, after
    /// a run it interrupted) stops them: an operator who wants the process gone gets it.
    async fn tell(&self, run: &RunSummary, carried: &BTreeMap<Command, RunRecord>) {
        let work = self.tell_all(run, carried);
        match crate::signal::Shutdown::new() {
            Ok(mut shutdown) => tokio::select! {
                () = work => {}
                signal = shutdown.wait() => tracing::warn!(
                    signal,
                    "stopped recording and telling the run: interrupted; the run's outcome is unchanged"
                ),
            },
            Err(_) => work.await,
        }
    }

    async fn tell_all(&self, run: &RunSummary, carried: &BTreeMap<Command, RunRecord>) {
        let state = match &self.target {
            Some(target) => {
                if let Err(e) = status::record(target, run, carried).await {
                    tracing::warn!(
                        error = %e,
                        "could not record the run on the staging server; the run's outcome is unchanged"
                    );
                }
                match status::read(target).await {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the state of staging for the metrics");
                        StagingState::unknown(&self.database, &self.server)
                    }
                }
            }
            None => StagingState::unknown(&self.database, &self.server),
        };
        let state = state.with_run(run);
        if let Some(sinks) = &self.sinks {
            sinks.publish(&state).await;
        }
        notify::notify(&self.notifiers, run).await;
    }
}

/// What a run refuses of `metrics:` and `notify:` before it starts (values that do not
/// resolve, URLs that do not parse, templates with unknown placeholders): for `restage
/// validate`, which refuses what `refresh` refuses.
pub fn check(config: &Config) -> Result<()> {
    Telling::from_config(config, "validate").map(|_| ())
}

/// The digest of the rules the refresh will load (read just before it, from the same
/// files); None when they do not load, which the refresh itself reports.
fn rules_digest(config: &Config) -> Option<String> {
    RuleSet::load(&config.rules_path(), config.file.rules.is_none())
        .ok()
        .map(|rules| rules.digest())
}

/// `restage refresh` (generating rows when `source.mode` says synthetic or hybrid).
pub async fn refresh(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<i32> {
    let generated = crate::synthetic::mode(config) != crate::config::SourceMode::Production;
    built_and_told(config, args, ui, generated).await
}

/// `restage generate`: a refresh whose rows are generated (all of them, or in hybrid mode
/// those of the tables marked `from: synthetic`), told as a refresh is.
pub async fn generate(config: &Config, args: &RefreshArgs, ui: &Ui) -> Result<i32> {
    built_and_told(config, args, ui, true).await
}

/// A refresh (copied or `generated`) with the steps 1–4 of this module after it: one place
/// for every way staging is built from a source.
async fn built_and_told(
    config: &Config,
    args: &RefreshArgs,
    ui: &Ui,
    generated: bool,
) -> Result<i32> {
    if args.dry_run {
        // It tells nothing, but refuses what the run would.
        check(config)?;
        return if generated {
            crate::synthetic::generate(config, args, ui).await
        } else {
            refresh::refresh(config, args, ui).await
        };
    }
    let telling = Telling::from_config(config, "refresh")?;
    let digest = rules_digest(config);
    let finished = if generated {
        crate::synthetic::generate_reported(config, args, ui).await
    } else {
        refresh::refresh_reported(config, args, ui).await
    };
    let mut run = RunSummary::of_report(
        Command::Refresh,
        &finished.report,
        &finished.result,
        &telling.database,
        &telling.server,
    );
    run.rules_digest = digest;
    // Nothing is carried over from the database it replaced: that one now refuses
    // connections, and reading it before the run would put restage's own sessions ahead of
    // the refresh's on the staging server. The new database's records start with this run.
    telling.tell(&run, &BTreeMap::new()).await;
    finished.print_outcome();
    finished.result
}

/// `restage restore`: told as a refresh is (recorded in the database it swapped in, which
/// then shows in `restage status` as built from the archive's snapshot and rules).
pub async fn restore(config: &Config, args: &RestoreArgs, ui: &Ui) -> Result<i32> {
    let telling = Telling::from_config(config, "restore")?;
    let started_at = Utc::now();
    match dump::restore::run(config, args, ui).await {
        Ok(report) => {
            let exit_code = dump::show_restore(&report, args, ui);
            let run = RunSummary::of_report(
                Command::Restore,
                &report,
                &Ok(exit_code),
                &telling.database,
                &telling.server,
            );
            telling.tell(&run, &BTreeMap::new()).await;
            Ok(exit_code)
        }
        Err(e) => {
            let result = Err(e);
            let run = telling.summary(Command::Restore, started_at, &result, "");
            telling.tell(&run, &BTreeMap::new()).await;
            result
        }
    }
}

/// `restage dump`: told through the metrics and notifications (see the module's header).
pub async fn dump(config: &Config, args: &DumpArgs, ui: &Ui) -> Result<i32> {
    let telling = Telling::for_dump(config)?;
    let digest = rules_digest(config);
    let started_at = Utc::now();
    let (result, report) = match dump::write::run(config, args, ui).await {
        Ok(report) => (Ok(0), Some(report)),
        Err(e) => (Err(e), None),
    };
    let written = report
        .as_ref()
        .map(|r| format!("archive {} written", r.archive))
        .unwrap_or_default();
    let mut run = telling.summary(Command::Dump, started_at, &result, written);
    run.rules_digest = digest;
    if let Some(report) = &report {
        dump::show_dump(report, ui);
        run.snapshot_at = report.snapshot_at.as_deref().and_then(parse_instant);
        run.totals = Some(TotalCounts {
            tables: report.tables as u64,
            rows_read: report.rows,
            rows_written: report.rows,
            bytes: report.archive_bytes,
        });
        run.verification = serde_json::to_value(&report.verification)
            .ok()
            .map(|v| VerificationCounts::from_json(&v));
    }
    telling.tell(&run, &BTreeMap::new()).await;
    result
}

/// `restage rollback`.
pub async fn rollback(config: &Config, args: &RollbackArgs, ui: &Ui) -> Result<i32> {
    let telling = Telling::from_config(config, "rollback")?;
    let carried = telling.before().await;
    let started_at = Utc::now();
    let result = refresh::rollback(config, args, ui).await;
    let mut run = telling.summary(
        Command::Rollback,
        started_at,
        &result,
        format!(
            "staging database {} is live again from a kept generation (rolled back)",
            telling.database
        ),
    );
    if result.is_ok() {
        run.swapped_at = Some(run.finished_at);
    }
    telling.tell(&run, &carried).await;
    result
}

/// `restage verify`.
pub async fn verify(config: &Config, ui: &Ui) -> Result<i32> {
    let telling = Telling::from_config(config, "verify")?;
    let started_at = Utc::now();
    let (result, report) = refresh::verify_live_reported(config, ui).await;
    let mut run = telling.summary(
        Command::Verify,
        started_at,
        &result,
        format!("staging database {} verified: no leak", telling.database),
    );
    run.verification = report
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
        .map(|v| VerificationCounts::from_json(&v));
    telling.tell(&run, &BTreeMap::new()).await;
    result
}

/// `restage warm`.
pub async fn warm(config: &Config, ui: &Ui) -> Result<i32> {
    let telling = Telling::from_config(config, "warm")?;
    let started_at = Utc::now();
    let warmed = refresh::warm_live_reported(config, ui).await;
    let cache = match &warmed {
        Ok(report) => serde_json::to_value(report)
            .ok()
            .map(|v| CacheCounts::from_json(&v)),
        // A cache that could not be reached or written is not warm; a config error is no
        // warming at all.
        Err(e) if e.exit_code() == crate::error::exit::RUNTIME => Some(CacheCounts {
            warmed: false,
            keys_written: 0,
            keys_flushed: 0,
            seconds: 0.0,
        }),
        Err(_) => None,
    };
    let result = warmed.map(|_| 0);
    let mut run = telling.summary(
        Command::Warm,
        started_at,
        &result,
        format!("the cache of staging database {} is warm", telling.database),
    );
    run.cache = cache;
    telling.tell(&run, &BTreeMap::new()).await;
    result
}
