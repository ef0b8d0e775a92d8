//! Metrics of restage's runs in the Prometheus text format (0.0.4, encoded by the official
//! `prometheus-client` crate), for node_exporter's textfile collector ([`textfile`]) and a
//! Pushgateway ([`push`]).
//!
//! The metrics are a rendering of [`StagingState`] — what is live and the record of the last
//! run of each command, as the staging server keeps it — so every run writes the whole
//! picture: `restage verify` does not wipe the refresh's series, and a failed night still
//! says when staging last succeeded. When the server cannot be read, the state holds only
//! this run (and `restage_state_read_from_server` is 0).
//!
//! [`names`] is the one list of metric names; the alert rules (`crate::alerts`) are written
//! against it. Every series carries `database` (`target.database`), so several staging
//! databases can share one node_exporter or Pushgateway; run series carry `command`
//! (`refresh`, `rollback`, `verify`, `warm`). Per-table series carry `table`: four per table
//! of the last refresh, so a 500-table schema adds 2,000 series — fine for Prometheus, and
//! `metrics.tables: false` leaves them out. Times are Unix timestamps (`time() - x` is an
//! age in PromQL); everything else is a gauge of the last run, except the two run counters.

pub mod push;
pub mod textfile;

use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::error::Result;
use crate::runs::{Command, StagingState};

/// The metric names, as exposed (counters with their `_total`).
pub mod names {
    pub const LAST_RUN_START: &str = "restage_last_run_start_timestamp_seconds";
    pub const LAST_RUN_END: &str = "restage_last_run_end_timestamp_seconds";
    pub const LAST_RUN_DURATION: &str = "restage_last_run_duration_seconds";
    pub const LAST_RUN_EXIT_CODE: &str = "restage_last_run_exit_code";
    pub const LAST_RUN_SUCCESS: &str = "restage_last_run_success";
    pub const LAST_SUCCESS: &str = "restage_last_success_timestamp_seconds";
    pub const RUNS: &str = "restage_runs_total";
    pub const RUN_FAILURES: &str = "restage_run_failures_total";
    pub const STAGE_DURATION: &str = "restage_stage_duration_seconds";
    pub const ROWS_WRITTEN: &str = "restage_last_run_rows_written";
    pub const BYTES: &str = "restage_last_run_bytes";
    pub const TABLE_ROWS_READ: &str = "restage_table_rows_read";
    pub const TABLE_ROWS_WRITTEN: &str = "restage_table_rows_written";
    pub const TABLE_BYTES: &str = "restage_table_bytes";
    pub const TABLE_DURATION: &str = "restage_table_duration_seconds";
    pub const VERIFICATION_PASSED: &str = "restage_verification_passed";
    pub const VERIFICATION_VALUES_CHECKED: &str = "restage_verification_values_checked";
    pub const VERIFICATION_LEAKS: &str = "restage_verification_leaks";
    pub const VERIFICATION_FK_VIOLATIONS: &str = "restage_verification_foreign_key_violations";
    pub const LIVE_INFO: &str = "restage_live_info";
    pub const LIVE_SINCE: &str = "restage_live_since_timestamp_seconds";
    pub const LIVE_BUILT: &str = "restage_live_built_timestamp_seconds";
    pub const LIVE_SNAPSHOT: &str = "restage_live_snapshot_timestamp_seconds";
    pub const LIVE_BYTES: &str = "restage_live_bytes";
    pub const GENERATIONS_KEPT: &str = "restage_generations_kept";
    pub const CACHE_WARMED: &str = "restage_cache_warmed";
    pub const CACHE_WARMED_AT: &str = "restage_cache_warmed_timestamp_seconds";
    pub const CACHE_KEYS_WARMED: &str = "restage_cache_keys_warmed";
    pub const CACHE_KEYS_FLUSHED: &str = "restage_cache_keys_flushed";
    pub const STATE_READ: &str = "restage_state_read_from_server";
}

/// `metrics:`, resolved: where the metrics of each run go.
#[derive(Debug)]
pub struct Sinks {
    pub textfile: Option<std::path::PathBuf>,
    pub pushgateway: Option<push::Pushgateway>,
    /// Per-table series.
    pub tables: bool,
}

impl Sinks {
    /// The sinks of `metrics:` (None without the section). A URL that does not resolve or
    /// parse is a config error, before the command runs.
    pub fn from_config(config: &Config, database: &str) -> Result<Option<Sinks>> {
        let Some(metrics) = &config.file.metrics else {
            return Ok(None);
        };
        let pushgateway = match &metrics.pushgateway {
            Some(raw) => Some(push::Pushgateway::from_config(
                config, metrics, raw, database,
            )?),
            None => None,
        };
        Ok(Some(Sinks {
            textfile: config.metrics_textfile(),
            pushgateway,
            tables: metrics.tables,
        }))
    }

    /// Writes and pushes `state`. Failures are logged; they never change the run's outcome.
    pub async fn publish(&self, state: &StagingState) {
        let text = render(state, self.tables);
        if let Some(path) = &self.textfile {
            match textfile::write(path, &text) {
                Ok(()) => tracing::debug!(path = %path.display(), "metrics written"),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "could not write the metrics textfile; the run's outcome is unchanged"
                ),
            }
        }
        if let Some(gateway) = &self.pushgateway {
            match gateway.push(&text).await {
                Ok(()) => tracing::debug!(pushgateway = %gateway.shown(), "metrics pushed"),
                Err(e) => tracing::warn!(
                    pushgateway = %gateway.shown(),
                    error = %e,
                    "could not push the metrics; the run's outcome is unchanged"
                ),
            }
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family and its series, before encoding.
struct Metric {
    name: &'static str,
    help: &'static str,
    counter: bool,
    series: Vec<(Labels, f64)>,
}

/// The families in the order they are written; families without series are left out.
#[derive(Default)]
struct Metrics(Vec<Metric>);

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &'static str) -> usize {
        self.0.push(Metric {
            name,
            help,
            counter: false,
            series: Vec::new(),
        });
        self.0.len() - 1
    }

    fn counter(&mut self, name: &'static str, help: &'static str) -> usize {
        let i = self.gauge(name, help);
        self.0[i].counter = true;
        i
    }

    fn set(&mut self, family: usize, labels: Labels, value: f64) {
        self.0[family].series.push((labels, value));
    }

    fn encode(self) -> String {
        let mut registry = Registry::default();
        for metric in self.0.into_iter().filter(|m| !m.series.is_empty()) {
            if metric.counter {
                let family = Family::<Labels, Counter<u64>>::default();
                for (labels, value) in &metric.series {
                    family.get_or_create(labels).inc_by(*value as u64);
                }
                // The encoder appends `_total` to a counter's name.
                let name = metric.name.strip_suffix("_total").unwrap_or(metric.name);
                registry.register(name, metric.help, family);
            } else {
                let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                for (labels, value) in &metric.series {
                    family.get_or_create(labels).set(*value);
                }
                registry.register(metric.name, metric.help, family);
            }
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        text
    }
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The state as Prometheus text.
pub fn render(state: &StagingState, per_table: bool) -> String {
    use names::*;
    let db = || ("database", state.database.clone());
    let mut m = Metrics::default();

    let start = m.gauge(LAST_RUN_START, "When the last run of the command started");
    let end = m.gauge(LAST_RUN_END, "When the last run of the command ended");
    let duration = m.gauge(
        LAST_RUN_DURATION,
        "How long the last run of the command took",
    );
    let exit_code = m.gauge(
        LAST_RUN_EXIT_CODE,
        "Exit code of the last run: 0 ok, 1 runtime failure, 2 config, 3 verification, 4 locked",
    );
    let success = m.gauge(
        LAST_RUN_SUCCESS,
        "1 when the last run of the command exited 0",
    );
    let last_success = m.gauge(LAST_SUCCESS, "When the command last succeeded");
    let runs = m.counter(
        RUNS,
        "Runs of the command recorded for this staging database",
    );
    let failures = m.counter(RUN_FAILURES, "Runs of the command that exited non-zero");
    let stage = m.gauge(STAGE_DURATION, "Duration of each stage of the last run");
    let rows = m.gauge(ROWS_WRITTEN, "Rows written by the last run");
    let bytes = m.gauge(
        BYTES,
        "Size in staging (heap and TOAST) of the tables the last run loaded",
    );
    let table_rows_read = m.gauge(
        TABLE_ROWS_READ,
        "Rows read from the source, per table, by the last refresh",
    );
    let table_rows = m.gauge(
        TABLE_ROWS_WRITTEN,
        "Rows written to staging, per table, by the last refresh",
    );
    let table_bytes = m.gauge(
        TABLE_BYTES,
        "Size in staging (heap and TOAST), per table, after the last refresh",
    );
    let table_duration = m.gauge(TABLE_DURATION, "Copy time per table in the last refresh");
    let passed = m.gauge(
        VERIFICATION_PASSED,
        "1 when the last verification of the command passed",
    );
    let checked = m.gauge(
        VERIFICATION_VALUES_CHECKED,
        "Source values searched for in staging by the last verification",
    );
    let leaks = m.gauge(
        VERIFICATION_LEAKS,
        "Staging columns where the last verification found a protected source value",
    );
    let fk = m.gauge(
        VERIFICATION_FK_VIOLATIONS,
        "Foreign keys the last verification found violated",
    );

    for (command, record) in &state.runs {
        let run = &record.last;
        let labels = || vec![db(), ("command", command.name().to_string())];
        m.set(start, labels(), seconds(run.started_at));
        m.set(end, labels(), seconds(run.finished_at));
        m.set(duration, labels(), run.seconds);
        m.set(exit_code, labels(), f64::from(run.exit_code));
        m.set(success, labels(), f64::from(u8::from(run.succeeded())));
        if let Some(t) = record.last_success_at {
            m.set(last_success, labels(), seconds(t));
        }
        m.set(runs, labels(), record.runs as f64);
        m.set(failures, labels(), record.failures as f64);
        for s in &run.stages {
            let mut l = labels();
            l.push(("stage", s.stage.clone()));
            m.set(stage, l, s.seconds);
        }
        if let Some(t) = &run.totals {
            m.set(rows, labels(), t.rows_written as f64);
            m.set(bytes, labels(), t.bytes as f64);
        }
        if per_table && matches!(command, Command::Refresh | Command::Restore) {
            for t in &run.tables {
                let l = || vec![db(), ("table", t.table.clone())];
                m.set(table_rows_read, l(), t.rows_read as f64);
                m.set(table_rows, l(), t.rows_written as f64);
                m.set(table_bytes, l(), t.bytes as f64);
                m.set(table_duration, l(), t.seconds);
            }
        }
        if let Some(v) = &run.verification {
            m.set(passed, labels(), f64::from(u8::from(v.passed)));
            m.set(checked, labels(), v.values_checked as f64);
            m.set(leaks, labels(), v.leaks_found as f64);
            m.set(fk, labels(), v.foreign_key_violations as f64);
        }
    }

    let info = m.gauge(
        LIVE_INFO,
        "The live staging database: its generation and the digest of the rules that built it",
    );
    let since = m.gauge(LIVE_SINCE, "When the live staging database went live");
    let built = m.gauge(LIVE_BUILT, "When the live staging database was built");
    let snapshot = m.gauge(
        LIVE_SNAPSHOT,
        "When the source snapshot the live staging database was copied from was taken",
    );
    let live_bytes = m.gauge(LIVE_BYTES, "Size of the live staging database");
    let kept = m.gauge(GENERATIONS_KEPT, "Generations kept for rollback");
    if let Some(live) = &state.live {
        let digest = live
            .built
            .as_ref()
            .and_then(|b| b.rules_digest.clone())
            .unwrap_or_default();
        m.set(
            info,
            vec![
                db(),
                ("generation", live.generation.clone().unwrap_or_default()),
                ("rules_digest", digest),
            ],
            1.0,
        );
        if let Some(t) = live.since {
            m.set(since, vec![db()], seconds(t));
        }
        if let Some(t) = live.built_at {
            m.set(built, vec![db()], seconds(t));
        }
        if let Some(t) = live.built.as_ref().and_then(|b| b.snapshot_at) {
            m.set(snapshot, vec![db()], seconds(t));
        }
        if let Some(b) = live.bytes {
            m.set(live_bytes, vec![db()], b as f64);
        }
    }
    if state.read_from_server {
        m.set(kept, vec![db()], state.generations_kept as f64);
    }

    let warmed = m.gauge(
        CACHE_WARMED,
        "1 when the latest cache warming (a refresh's or restage warm) succeeded, 0 when it failed",
    );
    let warmed_at = m.gauge(CACHE_WARMED_AT, "When the latest cache warming ended");
    let keys = m.gauge(CACHE_KEYS_WARMED, "Keys the latest cache warming wrote");
    let flushed = m.gauge(
        CACHE_KEYS_FLUSHED,
        "Keys the latest cache warming removed first",
    );
    if let Some((run, ok)) = state.cache() {
        m.set(warmed, vec![db()], f64::from(u8::from(ok)));
        m.set(warmed_at, vec![db()], seconds(run.finished_at));
        if let Some(c) = &run.cache {
            m.set(keys, vec![db()], c.keys_written as f64);
            m.set(flushed, vec![db()], c.keys_flushed as f64);
        }
    }

    let read = m.gauge(STATE_READ, "1 when these metrics include the state read from the staging server, 0 when it could not be read (only the last run is known)");
    m.set(
        read,
        vec![db()],
        f64::from(u8::from(state.read_from_server)),
    );
    m.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{RunSummary, TableCounts, TotalCounts, VerificationCounts};

    fn summary(exit_code: i32) -> RunSummary {
        let mut run = RunSummary::new(
            Command::Refresh,
            "app",
            "u@h:5432/postgres",
            DateTime::from_timestamp(1_795_660_200, 0).unwrap(),
            &Ok(exit_code),
            "live",
        );
        run.finished_at = DateTime::from_timestamp(1_795_660_870, 0).unwrap();
        run.seconds = 670.0;
        run.tables = vec![TableCounts {
            table: "public.\"Odd \\ name\"".into(),
            rows_read: 10,
            rows_written: 8,
            bytes: 8192,
            seconds: 1.5,
        }];
        run.totals = Some(TotalCounts {
            tables: 1,
            rows_read: 10,
            rows_written: 8,
            bytes: 8192,
        });
        run.verification = Some(VerificationCounts {
            passed: true,
            values_checked: 120,
            staging_values_scanned: 900,
            leaks_found: 0,
            foreign_keys_checked: 1,
            foreign_key_violations: 0,
            count_mismatches: 0,
        });
        run
    }

    #[test]
    fn a_state_renders_as_prometheus_text() {
        let state = StagingState::unknown("app", "s").with_run(&summary(0));
        let text = render(&state, true);
        assert!(
            text.contains("# TYPE restage_runs_total counter\nrestage_runs_total{database=\"app\",command=\"refresh\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("restage_last_run_end_timestamp_seconds{database=\"app\",command=\"refresh\"} 1795660870.0\n"),
            "{text}"
        );
        assert!(
            text.contains("restage_table_rows_written{database=\"app\",table=\"public.\\\"Odd \\\\ name\\\"\"} 8.0\n"),
            "label values are escaped: {text}"
        );
        assert!(
            text.contains("restage_state_read_from_server{database=\"app\"} 0.0"),
            "{text}"
        );
        // Families without series are left out entirely.
        assert!(!text.contains("restage_live_info"), "{text}");
        assert!(
            !text.contains("# EOF"),
            "the 0.0.4 format has no EOF marker"
        );
        assert!(
            !render(&state, false).contains("restage_table_"),
            "metrics.tables: false"
        );
    }
}
