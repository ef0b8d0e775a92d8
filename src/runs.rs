//! What restage's runs leave for the people and systems watching staging: the summary of one
//! run ([`RunSummary`]), the record kept of the last run of each command ([`RunRecord`]),
//! and the state of staging ([`StagingState`]: what is live, since when, from which
//! snapshot and rules, and the last runs). `restage status`, the metrics and the
//! notifications are all made from these, so they cannot disagree.
//!
//! Pure data: `status` reads and writes it on the target server, `ops` builds summaries from
//! what the commands returned. Like the report it is made from, it carries names, counts,
//! times and the outcome message, which restage's errors keep free of values and passwords.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::report::Report;

/// The commands whose runs are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Refresh,
    Rollback,
    Verify,
    Warm,
    /// `restage restore`: staging built from an archive (the staging side of an air-gapped
    /// setup), recorded as a refresh is.
    Restore,
    /// `restage dump`: an archive written (the production side); it has no staging server
    /// to record on, so it is told through the metrics and notifications only.
    Dump,
}

impl Command {
    pub const ALL: [Command; 6] = [
        Command::Refresh,
        Command::Rollback,
        Command::Verify,
        Command::Warm,
        Command::Restore,
        Command::Dump,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Command::Refresh => "refresh",
            Command::Rollback => "rollback",
            Command::Verify => "verify",
            Command::Warm => "warm",
            Command::Restore => "restore",
            Command::Dump => "dump",
        }
    }

    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One run of a command, as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub command: Command,
    /// `target.database`: the staging database the run was about.
    pub database: String,
    /// The staging server's maintenance connection, `user@host:port/db` (never a password).
    pub server: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    pub exit_code: i32,
    /// The run's last line: what staging is now, or the error.
    pub outcome: String,
    /// The generation a refresh built.
    #[serde(default)]
    pub built: Option<String>,
    /// When a database went live in this run (the end of a refresh's swap, a rollback).
    #[serde(default)]
    pub swapped_at: Option<DateTime<Utc>>,
    /// When the source snapshot the run copied was taken.
    #[serde(default)]
    pub snapshot_at: Option<DateTime<Utc>>,
    /// [`crate::rules::RuleSet::digest`] of the rules the run used.
    #[serde(default)]
    pub rules_digest: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageSeconds>,
    #[serde(default)]
    pub tables: Vec<TableCounts>,
    #[serde(default)]
    pub totals: Option<TotalCounts>,
    #[serde(default)]
    pub verification: Option<VerificationCounts>,
    #[serde(default)]
    pub cache: Option<CacheCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSeconds {
    pub stage: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCounts {
    pub table: String,
    pub rows_read: u64,
    pub rows_written: u64,
    /// Heap + TOAST in staging after the load (what `max_storage` budgets); the bytes
    /// written when the size was not measured.
    pub bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalCounts {
    pub tables: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes: u64,
}

/// What a verification counted (`restage verify`, or the refresh's before its swap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationCounts {
    pub passed: bool,
    /// Source values sampled and searched for in staging.
    pub values_checked: u64,
    /// Staging values they were searched among.
    pub staging_values_scanned: u64,
    /// Staging columns where a protected source value was found.
    pub leaks_found: u64,
    pub foreign_keys_checked: u64,
    pub foreign_key_violations: u64,
    pub count_mismatches: u64,
}

impl VerificationCounts {
    /// From the JSON of a verification report (the refresh report's `verification`, or
    /// `restage verify`'s report serialized). Fields it lacks count 0.
    pub fn from_json(v: &serde_json::Value) -> VerificationCounts {
        let n = |key: &str| v.get(key).and_then(|x| x.as_u64()).unwrap_or(0);
        let len = |key: &str| {
            v.get(key)
                .and_then(|x| x.as_array())
                .map_or(0, |a| a.len() as u64)
        };
        VerificationCounts {
            passed: v.get("passed").and_then(|p| p.as_bool()).unwrap_or(false),
            values_checked: n("leak_values_checked"),
            staging_values_scanned: n("staging_values_scanned"),
            leaks_found: len("leaks"),
            foreign_keys_checked: n("foreign_keys_checked"),
            foreign_key_violations: len("foreign_key_violations"),
            count_mismatches: len("count_mismatches"),
        }
    }
}

/// What a cache step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheCounts {
    pub warmed: bool,
    pub keys_written: u64,
    pub keys_flushed: u64,
    pub seconds: f64,
}

impl CacheCounts {
    /// From the JSON of a warm report (`flushed_keys`, `written_keys`, `seconds`), or the
    /// refresh report's `{ "warmed": false, "error": … }` when it was not warmed.
    pub fn from_json(v: &serde_json::Value) -> CacheCounts {
        CacheCounts {
            warmed: v.get("warmed").and_then(|w| w.as_bool()).unwrap_or(true),
            keys_written: v.get("written_keys").and_then(|x| x.as_u64()).unwrap_or(0),
            keys_flushed: v.get("flushed_keys").and_then(|x| x.as_u64()).unwrap_or(0),
            seconds: v.get("seconds").and_then(|x| x.as_f64()).unwrap_or(0.0),
        }
    }
}

/// An RFC 3339 time of the report, or `fallback` when it does not parse.
fn parse_time(text: &str, fallback: DateTime<Utc>) -> DateTime<Utc> {
    parse_instant(text).unwrap_or(fallback)
}

/// An RFC 3339 time of a report (`started_at`, `snapshot_at`), in UTC.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl RunSummary {
    /// A run of `command` that started at `started_at` and ends now with `result`; the
    /// outcome is the error's message for a failure, `success` otherwise (callers say more).
    pub fn new(
        command: Command,
        database: &str,
        server: &str,
        started_at: DateTime<Utc>,
        result: &Result<i32, Error>,
        success: impl Into<String>,
    ) -> RunSummary {
        let finished_at = Utc::now();
        let (exit_code, outcome) = match result {
            Ok(code) => (*code, success.into()),
            Err(e) => (e.exit_code(), e.to_string()),
        };
        RunSummary {
            command,
            database: database.to_string(),
            server: server.to_string(),
            started_at,
            finished_at,
            seconds: (finished_at - started_at).num_milliseconds().max(0) as f64 / 1000.0,
            exit_code,
            outcome,
            built: None,
            swapped_at: None,
            snapshot_at: None,
            rules_digest: None,
            stages: Vec::new(),
            tables: Vec::new(),
            totals: None,
            verification: None,
            cache: None,
        }
    }

    /// A refresh or a restore (`command`), from its report and result. The exit code is the
    /// result's (a report file that could not be written after the swap fails the run); the
    /// outcome is the report's, with that error after it when the report itself said the run
    /// succeeded.
    pub fn of_report(
        command: Command,
        report: &Report,
        result: &Result<i32, Error>,
        database: &str,
        server: &str,
    ) -> RunSummary {
        let now = Utc::now();
        let finished_at = parse_time(&report.finished_at, now);
        let started_at = parse_time(&report.started_at, finished_at);
        let (exit_code, outcome) = match result {
            Ok(code) => (*code, report.outcome.clone()),
            Err(e) if report.exit_code == 0 && report.swap.is_some() => {
                (e.exit_code(), format!("{}; then: {e}", report.outcome))
            }
            Err(e) => (e.exit_code(), format!("failed: {e}")),
        };
        let tables: Vec<TableCounts> = report
            .tables
            .iter()
            .map(|t| TableCounts {
                table: t.table.clone(),
                rows_read: t.rows_read,
                rows_written: t.rows_written,
                bytes: if t.table_bytes > 0 {
                    t.table_bytes
                } else {
                    t.bytes_written
                },
                seconds: t.seconds,
            })
            .collect();
        let swapped = report.swap.is_some();
        RunSummary {
            command,
            database: database.to_string(),
            server: server.to_string(),
            started_at,
            finished_at,
            seconds: if report.seconds > 0.0 {
                report.seconds
            } else {
                (finished_at - started_at).num_milliseconds().max(0) as f64 / 1000.0
            },
            exit_code,
            outcome,
            built: report.built.clone().filter(|_| swapped),
            swapped_at: swapped.then(|| swap_end(report, finished_at)),
            snapshot_at: report.snapshot_at.as_deref().and_then(parse_instant),
            rules_digest: report.rules_digest.clone(),
            stages: report
                .stages
                .iter()
                .map(|s| StageSeconds {
                    stage: s.stage.clone(),
                    seconds: s.seconds,
                })
                .collect(),
            totals: (!tables.is_empty()).then(|| TotalCounts {
                tables: tables.len() as u64,
                rows_read: tables.iter().map(|t| t.rows_read).sum(),
                rows_written: tables.iter().map(|t| t.rows_written).sum(),
                bytes: tables.iter().map(|t| t.bytes).sum(),
            }),
            tables,
            verification: report
                .verification
                .as_ref()
                .map(VerificationCounts::from_json),
            cache: report.cache.as_ref().map(CacheCounts::from_json),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }

    /// Whether `other` is this run, read back: same command and times. (Not `==`: a float
    /// that went through JSON may come back one unit in the last place off.)
    pub fn is_same_run(&self, other: &RunSummary) -> bool {
        self.command == other.command
            && self.started_at == other.started_at
            && self.finished_at == other.finished_at
    }
}

/// The end of a refresh's swap: its finish less the stages after the swap (the cache), which
/// are the only ones that follow it.
fn swap_end(report: &Report, finished_at: DateTime<Utc>) -> DateTime<Utc> {
    let after: f64 = report
        .stages
        .iter()
        .rev()
        .take_while(|s| s.stage != "swap")
        .map(|s| s.seconds)
        .sum();
    if report.stages.iter().any(|s| s.stage == "swap") {
        finished_at - chrono::Duration::milliseconds((after * 1000.0) as i64)
    } else {
        finished_at
    }
}

/// The record kept of a command on a staging database: its last run, when it last
/// succeeded, and how many runs and failures it has had (the counters survive swaps and
/// rollbacks: they follow the staging name, not one generation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub last: RunSummary,
    pub last_success_at: Option<DateTime<Utc>>,
    pub runs: u64,
    pub failures: u64,
}

impl RunRecord {
    /// The record after `run`, given the one before it (if any).
    pub fn after(previous: Option<&RunRecord>, run: &RunSummary) -> RunRecord {
        RunRecord {
            last: run.clone(),
            last_success_at: if run.succeeded() {
                Some(run.finished_at)
            } else {
                previous.and_then(|p| p.last_success_at)
            },
            runs: previous.map_or(0, |p| p.runs) + 1,
            failures: previous.map_or(0, |p| p.failures) + u64::from(!run.succeeded()),
        }
    }
}

/// What built the live database: recorded when a refresh swaps it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltFrom {
    /// The generation's name while it was built (`<database>__restage_<birth>`).
    pub generation: Option<String>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub rules_digest: Option<String>,
    pub restage_version: String,
}

/// The live staging database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// Its name (`target.database`).
    pub name: String,
    /// The name it carries as a generation (`<base>__restage_<birth>`), from restage's
    /// registry, and when it was built.
    pub generation: Option<String>,
    pub built_at: Option<DateTime<Utc>>,
    /// When it went live, and by which command (absent for databases built before restage
    /// recorded it).
    pub since: Option<DateTime<Utc>>,
    pub swapped_in_by: Option<Command>,
    pub built: Option<BuiltFrom>,
    pub bytes: Option<u64>,
}

/// The state of a staging database as its server records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingState {
    pub database: String,
    pub server: String,
    /// None when no database of that name is live.
    pub live: Option<LiveState>,
    /// Generations kept for rollback.
    pub generations_kept: u64,
    pub runs: BTreeMap<Command, RunRecord>,
    /// False when the server could not be read and this holds only what this process knows.
    pub read_from_server: bool,
}

impl StagingState {
    /// What is known without the server: nothing live, no runs.
    pub fn unknown(database: &str, server: &str) -> StagingState {
        StagingState {
            database: database.to_string(),
            server: server.to_string(),
            live: None,
            generations_kept: 0,
            runs: BTreeMap::new(),
            read_from_server: false,
        }
    }

    /// Makes sure `run` is the last run of its command: when the server's records already
    /// have it nothing changes; otherwise (they could not be written) it is applied here.
    pub fn with_run(mut self, run: &RunSummary) -> StagingState {
        let current = self.runs.get(&run.command);
        if current.is_none_or(|r| !r.last.is_same_run(run)) {
            let record = RunRecord::after(current, run);
            self.runs.insert(run.command, record);
        }
        self
    }

    /// The most recent run of any command.
    pub fn last_run(&self) -> Option<&RunSummary> {
        self.runs
            .values()
            .map(|r| &r.last)
            .max_by_key(|r| r.finished_at)
    }

    /// Whether the live cache is warm, from the most recent run that warmed it or tried to
    /// (a refresh with `cache:`, `restage warm`), with that run.
    pub fn cache(&self) -> Option<(&RunSummary, bool)> {
        let refresh = self
            .runs
            .get(&Command::Refresh)
            .map(|r| &r.last)
            .filter(|r| r.cache.is_some());
        let warm = self.runs.get(&Command::Warm).map(|r| &r.last);
        let latest = match (refresh, warm) {
            (Some(a), Some(b)) => Some(if a.finished_at >= b.finished_at { a } else { b }),
            (a, b) => a.or(b),
        }?;
        let warmed = match latest.command {
            Command::Warm => latest.succeeded(),
            _ => latest.cache.as_ref().is_some_and(|c| c.warmed),
        };
        Some((latest, warmed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{StageTiming, TableReport};

    fn report() -> Report {
        Report {
            started_at: "2026-11-26T02:30:00+00:00".into(),
            finished_at: "2026-11-26T02:41:10+00:00".into(),
            seconds: 670.0,
            built: Some("app__restage_20261126T023001Z".into()),
            snapshot_at: Some("2026-11-26T02:30:01.5+00:00".into()),
            tables: vec![TableReport {
                table: "public.users".into(),
                rows_read: 10,
                rows_written: 8,
                bytes_written: 800,
                table_bytes: 8192,
                seconds: 1.5,
                ..TableReport::default()
            }],
            stages: vec![
                StageTiming {
                    stage: "data".into(),
                    seconds: 600.0,
                },
                StageTiming {
                    stage: "swap".into(),
                    seconds: 0.5,
                },
                StageTiming {
                    stage: "cache".into(),
                    seconds: 10.0,
                },
            ],
            verification: Some(serde_json::json!({
                "passed": true, "leak_values_checked": 120, "staging_values_scanned": 900,
                "leaks": [], "foreign_keys_checked": 3, "foreign_key_violations": [], "count_mismatches": []
            })),
            swap: Some(serde_json::json!({ "live_birth": "20261126T023001Z" })),
            cache: Some(
                serde_json::json!({ "flushed_keys": 4, "written_keys": 50, "seconds": 10.0 }),
            ),
            outcome: "staging database app is live (app__restage_20261126T023001Z built)".into(),
            ..Report::default()
        }
    }

    #[test]
    fn a_refresh_summary_takes_what_the_report_measured() {
        let s = RunSummary::of_report(
            Command::Refresh,
            &report(),
            &Ok(0),
            "app",
            "u@h:5432/postgres",
        );
        assert_eq!(s.command, Command::Refresh);
        assert_eq!(s.exit_code, 0);
        assert_eq!(s.seconds, 670.0);
        assert_eq!(s.tables[0].bytes, 8192, "the size in staging");
        assert_eq!(s.totals.as_ref().map(|t| t.rows_written), Some(8));
        let v = s.verification.as_ref().expect("verification");
        assert!(v.passed);
        assert_eq!((v.values_checked, v.leaks_found), (120, 0));
        assert_eq!(
            s.cache.as_ref().map(|c| (c.warmed, c.keys_written)),
            Some((true, 50))
        );
        // Live from the end of the swap: the finish less the cache stage.
        assert_eq!(
            s.swapped_at.map(|t| t.to_rfc3339()),
            Some("2026-11-26T02:41:00+00:00".to_string())
        );
        assert_eq!(s.built.as_deref(), Some("app__restage_20261126T023001Z"));
        assert_eq!(
            s.snapshot_at.map(|t| t.timestamp_millis()),
            Some(1_795_660_201_500)
        );
    }

    #[test]
    fn the_fields_read_from_a_verification_report_exist() {
        // The names VerificationCounts reads are the ones the verification report has.
        let report = crate::refresh::verify::VerifyReport {
            passed: false,
            leak_values_checked: 7,
            staging_values_scanned: 70,
            leaks: vec!["a ← b (1 values)".into(), "c ← d (2 values)".into()],
            foreign_keys_checked: 2,
            foreign_key_violations: vec!["fk".into()],
            count_mismatches: vec![],
            notes: vec![],
            columns: vec![],
        };
        let v = VerificationCounts::from_json(&serde_json::to_value(&report).unwrap());
        assert_eq!(
            (
                v.passed,
                v.values_checked,
                v.staging_values_scanned,
                v.leaks_found
            ),
            (false, 7, 70, 2)
        );
        assert_eq!((v.foreign_keys_checked, v.foreign_key_violations), (2, 1));
        let warm = crate::refresh::warm::WarmReport {
            flushed_keys: 3,
            written_keys: 9,
            seconds: 0.5,
            keys_per_second: 18.0,
            entries: vec![],
        };
        let c = CacheCounts::from_json(&serde_json::to_value(&warm).unwrap());
        assert_eq!((c.warmed, c.keys_flushed, c.keys_written), (true, 3, 9));
    }

    #[test]
    fn a_failed_refresh_keeps_its_error_and_code() {
        let failed = Report {
            started_at: "2026-11-26T02:30:00+00:00".into(),
            finished_at: "2026-11-26T02:31:00+00:00".into(),
            outcome: "failed: verification failed: x".into(),
            exit_code: 3,
            ..Report::default()
        };
        let err = Err(Error::Verify("x".into()));
        let s = RunSummary::of_report(Command::Refresh, &failed, &err, "app", "s");
        assert_eq!(s.exit_code, 3);
        assert_eq!(s.outcome, "failed: verification failed: x");
        assert_eq!(s.seconds, 60.0);
        assert!(s.swapped_at.is_none() && s.built.is_none() && s.totals.is_none());
        // Live, then the report file could not be written: the error follows the outcome.
        let err = Err(Error::Runtime("writing the report".into()));
        let s = RunSummary::of_report(Command::Refresh, &report(), &err, "app", "s");
        assert_eq!(s.exit_code, 1);
        assert!(
            s.outcome.starts_with("staging database app is live"),
            "{}",
            s.outcome
        );
        assert!(
            s.outcome.ends_with("; then: writing the report"),
            "{}",
            s.outcome
        );
        assert!(s.swapped_at.is_some());
    }

    #[test]
    fn records_count_runs_and_keep_the_last_success() {
        let ok = RunSummary::of_report(Command::Refresh, &report(), &Ok(0), "app", "s");
        let mut failed = ok.clone();
        failed.exit_code = 3;
        failed.finished_at += chrono::Duration::days(1);
        let first = RunRecord::after(None, &ok);
        assert_eq!((first.runs, first.failures), (1, 0));
        let second = RunRecord::after(Some(&first), &failed);
        assert_eq!((second.runs, second.failures), (2, 1));
        assert_eq!(second.last_success_at, Some(ok.finished_at));
        assert_eq!(second.last.exit_code, 3);
        // A state that already has the run is left as it is, even when a float of it came
        // back from JSON one unit in the last place off.
        let state = StagingState::unknown("app", "s").with_run(&ok);
        assert_eq!(state.clone().with_run(&ok), state);
        let mut read_back = ok.clone();
        read_back.seconds = f64::from_bits(ok.seconds.to_bits() + 1);
        assert_eq!(
            state.clone().with_run(&read_back).runs[&Command::Refresh].runs,
            1
        );
        assert_eq!(state.with_run(&failed).runs[&Command::Refresh].runs, 2);
    }

    #[test]
    fn the_cache_is_what_the_latest_warming_left() {
        let mut refresh = RunSummary::of_report(Command::Refresh, &report(), &Ok(1), "app", "s");
        refresh.cache = Some(CacheCounts {
            warmed: false,
            keys_written: 0,
            keys_flushed: 0,
            seconds: 0.0,
        });
        let state = StagingState::unknown("app", "s").with_run(&refresh);
        assert_eq!(state.cache().map(|(_, w)| w), Some(false));
        let mut warm = RunSummary::new(Command::Warm, "app", "s", Utc::now(), &Ok(0), "warmed");
        warm.finished_at = refresh.finished_at + chrono::Duration::minutes(5);
        let state = state.with_run(&warm);
        assert_eq!(
            state.cache().map(|(r, w)| (r.command, w)),
            Some((Command::Warm, true))
        );
        assert_eq!(state.last_run().map(|r| r.command), Some(Command::Warm));
    }
}
