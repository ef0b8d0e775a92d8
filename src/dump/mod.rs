//! Anonymized archives (issue 17): `restage dump` writes the refresh pipeline's output to a
//! folder instead of a database ([`write`]); `restage restore` builds a staging database
//! from one, with refresh's build-beside, verification, swap, generations and cache steps
//! ([`restore`]). The layout and its checks are in [`manifest`] and docs/dump.md; where
//! archives live (a folder or an S3 prefix) is [`store`].
//!
//! Exit codes: a dump whose verification finds a leak is 3 (nothing published); an archive
//! that cannot be restored as it is — no manifest, a garbled one, a part missing, truncated
//! or corrupted — is 1 (a runtime failure: staging unchanged), like any failure of the build.

pub mod crypt;
pub mod manifest;
pub mod restore;
pub mod store;
pub mod write;

use std::path::PathBuf;

use crate::progress::Ui;
use crate::report::Report;

/// `restage dump` options.
#[derive(Debug, clap::Args, Default, Clone)]
pub struct DumpArgs {
    /// Where the archive is written: a folder, or `s3://bucket/prefix` (credentials from the
    /// AWS environment variables or profile; see docs/dump.md). Default: `dump.destination`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub to: Option<String>,
    /// Archives kept in the destination after this one (default: `dump.keep`, else 3).
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Copy columns that look personal but have no rule, for this run only.
    #[arg(long)]
    pub allow_unclassified: bool,
}

/// `restage restore` options.
#[derive(Debug, clap::Args, Default, Clone)]
pub struct RestoreArgs {
    /// An archive (a folder or `s3://bucket/prefix/restage-…`), or a destination holding
    /// archives (the newest is restored). Default: `dump.destination`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Let this run retire a `target.database` restage did not build (see `refresh --adopt`).
    #[arg(long)]
    pub adopt: bool,
}

/// Prints what `restage dump` wrote (the report, as text or JSON). The run itself is
/// [`write::run`], told by `ops::dump`.
pub fn show_dump(report: &write::DumpReport, ui: &Ui) {
    if ui.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else if ui.verbosity >= 0 {
        crate::output::out!("{}", report.to_text());
    }
}

/// Writes and prints what `restage restore` did (the report to `--report`, as text or JSON)
/// and returns its exit code. The run itself is [`restore::run`], told by `ops::restore`.
pub fn show_restore(report: &Report, args: &RestoreArgs, ui: &Ui) -> i32 {
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        tracing::warn!(path = %path.display(), error = %e, "could not write the report");
    }
    if ui.json {
        crate::output::outln!("{}", report.to_json());
    } else if ui.verbosity >= 0 {
        crate::output::out!("{}", report.to_text());
    }
    if report.exit_code != 0 {
        crate::output::errln!("restage: {}", report.outcome);
    }
    report.exit_code
}
