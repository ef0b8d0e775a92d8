//! The refresh report: per table rows read and written, bytes, duration, rules applied and
//! sample decisions; totals; stage timings; the verification result; the generation swapped
//! in. Text on a terminal, JSON with `--json` or `--report FILE`.
//!
//! It never carries personal data: only names, counts, sizes and durations. The refresh
//! assembles it from what its stages returned; this module owns its shape and its text form.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::units::human_bytes;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub restage_version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub dry_run: bool,
    pub source: String,
    pub target: String,
    pub database: String,
    /// The database built by this run (its name while it was being built).
    pub built: Option<String>,
    pub snapshot: Option<String>,
    /// When the source snapshot was taken (the source server's clock, RFC 3339): the instant
    /// of production that staging shows.
    pub snapshot_at: Option<String>,
    /// The digest of the rules the data went through ([`crate::rules::RuleSet::digest`]):
    /// a restore's, from its archive's manifest (a refresh's is taken by `ops` from the
    /// rules it loads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_digest: Option<String>,
    pub tables: Vec<TableReport>,
    pub totals: Totals,
    pub stages: Vec<StageTiming>,
    pub sequences_set: usize,
    pub materialized_views_refreshed: Vec<String>,
    pub derived_columns_recomputed: Vec<String>,
    pub verification: Option<serde_json::Value>,
    pub swap: Option<serde_json::Value>,
    pub generations_dropped: Vec<String>,
    pub leftovers_removed: Vec<String>,
    pub sample: Option<serde_json::Value>,
    /// `sample.max_storage`: the cap, its tolerance and policy, planned and restored, the
    /// rescales.
    pub storage: Option<serde_json::Value>,
    /// What `unique: true` held: distinct values, clashes resolved, memory.
    pub unique: Option<serde_json::Value>,
    pub cache: Option<serde_json::Value>,
    /// Columns copied without a rule because of `--allow-unclassified`.
    pub unclassified_allowed: Vec<String>,
    /// What production has that the new database deliberately did not get (connection data,
    /// custom settings), by name, never a value; see the README's "What reaches staging".
    pub left_out: Vec<String>,
    pub warnings: Vec<String>,
    pub outcome: String,
    /// The exit code of the run: 0, or 5 when staging went live but a step after the swap
    /// failed (the outcome says which).
    pub exit_code: i32,
    /// The run's id in restage's registry (and in its `application_name`).
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    /// Column → transform, for ruled columns.
    pub rules: BTreeMap<String, String>,
    /// How the rows were chosen: `whole`, or the sample decision.
    pub sample: String,
    pub ranges: usize,
    pub retries: u32,
    /// Planned rows (the sample's, or the catalog's estimate for a whole table).
    pub estimated_rows: u64,
    /// Planned heap + TOAST.
    pub estimated_bytes: u64,
    /// Planned indexes (with `max_storage`).
    pub estimated_index_bytes: u64,
    /// Heap + TOAST of the table in staging after the load (`pg_table_size`), what
    /// `max_storage` budgets.
    pub table_bytes: u64,
    /// Its indexes in staging (`pg_indexes_size`), which `max_storage` counts with
    /// `include_indexes`.
    pub index_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub tables: usize,
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Sum of `table_bytes`.
    pub table_bytes: u64,
    /// Sum of `index_bytes`.
    pub index_bytes: u64,
    /// Sums of the planned rows and bytes.
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
}

impl Totals {
    pub fn of(tables: &[TableReport]) -> Totals {
        Totals {
            tables: tables.len(),
            rows_read: tables.iter().map(|t| t.rows_read).sum(),
            rows_written: tables.iter().map(|t| t.rows_written).sum(),
            bytes_read: tables.iter().map(|t| t.bytes_read).sum(),
            bytes_written: tables.iter().map(|t| t.bytes_written).sum(),
            table_bytes: tables.iter().map(|t| t.table_bytes).sum(),
            index_bytes: tables.iter().map(|t| t.index_bytes).sum(),
            estimated_rows: tables.iter().map(|t| t.estimated_rows).sum(),
            estimated_bytes: tables.iter().map(|t| t.estimated_bytes).sum(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The human form: a table per table, then stages and outcome.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "restage {} {} → {} ({})",
            if self.dry_run { "plan" } else { "refresh" },
            self.source,
            self.database,
            self.target
        );
        let width = self
            .tables
            .iter()
            .map(|t| t.table.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        if self.dry_run {
            let _ = writeln!(
                out,
                "\n{:<width$}  {:>12}  {:>12}  {:<28}  rules",
                "table", "planned rows", "planned size", "rows taken"
            );
            for t in &self.tables {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>12}  {:>12}  {:<28}  {}",
                    t.table,
                    t.estimated_rows,
                    human_bytes(t.estimated_bytes),
                    t.sample,
                    rules_text(&t.rules)
                );
            }
        } else {
            let _ = writeln!(
                out,
                "\n{:<width$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>10}  {:>8}  rules",
                "table",
                "rows read",
                "planned rows",
                "rows written",
                "planned size",
                "size",
                "seconds"
            );
            for t in &self.tables {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>10}  {:>8.2}  {}",
                    t.table,
                    t.rows_read,
                    t.estimated_rows,
                    t.rows_written,
                    human_bytes(t.estimated_bytes),
                    human_bytes(t.table_bytes.max(t.bytes_written)),
                    t.seconds,
                    rules_text(&t.rules)
                );
            }
            let _ = writeln!(
                out,
                "{:<width$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>10}",
                format!("total ({} tables)", self.totals.tables),
                self.totals.rows_read,
                self.totals.estimated_rows,
                self.totals.rows_written,
                human_bytes(self.totals.estimated_bytes),
                human_bytes(self.totals.table_bytes.max(self.totals.bytes_written))
            );
        }
        if let Some(storage) = &self.storage {
            let _ = writeln!(out, "{}", storage_text(storage));
        }
        if !self.stages.is_empty() {
            let _ = writeln!(out, "\nstages:");
            for s in &self.stages {
                let _ = writeln!(out, "  {:<22} {:>8.2}s", s.stage, s.seconds);
            }
        }
        if let Some(v) = &self.verification {
            let _ = writeln!(out, "\nverification: {}", summarize(v));
            out.push_str(&verification_columns(v));
        }
        if let Some(s) = &self.swap {
            let _ = writeln!(out, "swap: {}", summarize(s));
        }
        if let Some(c) = &self.cache {
            let _ = writeln!(out, "cache: {}", summarize(c));
        }
        for name in &self.leftovers_removed {
            let _ = writeln!(out, "removed leftover of an earlier run: {name}");
        }
        for name in &self.generations_dropped {
            let _ = writeln!(out, "dropped old generation: {name}");
        }
        if !self.unclassified_allowed.is_empty() {
            let _ = writeln!(
                out,
                "copied WITHOUT a rule (--allow-unclassified): {}",
                self.unclassified_allowed.join(", ")
            );
        }
        for l in &self.left_out {
            let _ = writeln!(out, "left out: {l}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let _ = writeln!(out, "\n{} in {:.1}s", self.outcome, self.seconds);
        out
    }
}

/// The identity check's lines, one per ruled column and json path: values checked,
/// unchanged, expected by chance, verdict (issue 13). Never a value.
fn verification_columns(v: &serde_json::Value) -> String {
    let Some(columns) = v.get("columns").and_then(|c| c.as_array()) else {
        return String::new();
    };
    if columns.is_empty() {
        return String::new();
    }
    let width = columns
        .iter()
        .filter_map(|c| c.get("column").and_then(|n| n.as_str()))
        .map(str::len)
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "  {:<width$}  {:<14}  {:>10}  {:>10}  {:>10}  verdict\n",
        "column", "rule", "checked", "unchanged", "by chance"
    );
    for c in columns {
        let text = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<width$}  {:<14}  {:>10}  {:>10}  {:>10.1}  {}",
            text("column"),
            text("rule"),
            n("values_checked"),
            n("unchanged"),
            c.get("expected_by_chance")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0),
            text("verdict")
        );
    }
    out
}

/// The cap's line: `max_storage 4.0 MiB (heap + TOAST, tolerance 0%, policy rescale):
/// planned 3.8 MiB, restored 3.9 MiB`, and the rescales.
fn storage_text(storage: &serde_json::Value) -> String {
    let bytes = |key: &str| storage.get(key).and_then(|v| v.as_u64());
    let text = |key: &str| storage.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let mut out = format!(
        "max_storage {} ({}, tolerance {}%, policy {}): planned {}",
        human_bytes(bytes("limit").unwrap_or(0)),
        text("counts"),
        crate::units::format_percent(
            storage
                .get("tolerance_percent")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
        ),
        text("policy"),
        human_bytes(bytes("planned_bytes").unwrap_or(0)),
    );
    if let Some(restored) = bytes("restored_bytes") {
        out.push_str(&format!(", restored {}", human_bytes(restored)));
    }
    let rescales = storage
        .get("rescaled")
        .and_then(|v| v.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    if rescales > 0 {
        out.push_str(&format!(
            " (rescaled {rescales} time{} after a load over the cap)",
            if rescales == 1 { "" } else { "s" }
        ));
    }
    if storage.get("over").and_then(|v| v.as_bool()) == Some(true) {
        out.push_str(" — OVER THE CAP");
    }
    out
}

fn rules_text(rules: &BTreeMap<String, String>) -> String {
    if rules.is_empty() {
        "-".to_string()
    } else {
        rules
            .iter()
            .map(|(c, t)| format!("{c}:{t}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One line from a JSON object: its scalar fields as `key=value`.
fn summarize(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                serde_json::Value::Number(n) if n.is_f64() => {
                    format!("{k}={:.2}", n.as_f64().unwrap_or_default())
                }
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
