//! Deployment history: one record per deployment and per rollback, appended to a JSON Lines
//! file (default `.restage/deployments.jsonl` beside the config file) or a PostgreSQL table
//! (`restage_deployments`, created if missing).
//!
//! Each deployment is appended twice: as `in_progress` when it starts, then with its outcome,
//! under the same id. Readers keep the last record per id, so a deployment whose process was
//! killed still shows, as `in_progress`, instead of vanishing.
//!
//! "The last good version" is the `to` of the newest `succeeded` record: deployments and
//! rollbacks alike, since a successful rollback also leaves a known-good version running.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::db::{self, PgEndpoint, Role};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    /// Failed, and the rollback that followed succeeded.
    RolledBack,
    /// Failed, and not (fully) rolled back.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing a strategy did: an update, a gate, a traffic step, an analysis, a switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub at: String,
    pub action: String,
    /// The instance, colour or percent it applied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub ok: bool,
    pub detail: String,
    /// For commands: the last lines of their output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub who: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// `rolling`, `canary`, `blue-green` or `rollback`.
    pub strategy: String,
    pub from: Option<String>,
    pub to: String,
    pub outcome: Outcome,
    /// Why it ran: `--reason`, or for an automatic rollback the failure that caused it.
    #[serde(default)]
    pub reason: Option<String>,
    /// What failed, when something did.
    #[serde(default)]
    pub error: Option<String>,
    /// Blue-green: the colour that serves traffic after this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// For a rollback: the id of the deployment it undid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// The current time as history writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Who deploys: `$RESTAGE_ACTOR` (a CI job sets it to the person or pipeline), else `$USER`.
pub fn who() -> String {
    who_from(|name| std::env::var(name).ok())
}

fn who_from(var: impl Fn(&str) -> Option<String>) -> String {
    ["RESTAGE_ACTOR", "USER"]
        .iter()
        .find_map(|name| var(name).filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// A fresh id: start time and strategy, plus a random suffix so two runs in the same
/// millisecond stay apart.
pub fn new_id(strategy: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    format!("{stamp}-{strategy}-{:04x}", rand::random::<u16>())
}

/// Records in order, the last one per id kept (at the position of its first appearance).
pub fn latest_per_id(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    let mut index = std::collections::HashMap::new();
    for r in records {
        match index.get(&r.id) {
            Some(&i) => out[i] = r,
            None => {
                index.insert(r.id.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// The version running now as far as history knows: the newest succeeded record's `to`.
pub fn current_version(records: &[Record]) -> Option<&Record> {
    records.iter().rev().find(|r| good(r))
}

/// A succeeded record whose version is known (a blue-green switch-back without a known
/// previous version records `unknown`, which is not a version to return to).
fn good(r: &Record) -> bool {
    r.outcome == Outcome::Succeeded && r.to != crate::deploy::UNKNOWN_VERSION
}

/// What `deploy rollback` returns to: the newest succeeded record before the current one
/// whose version differs from it.
pub fn rollback_target(records: &[Record]) -> Option<(&Record, &Record)> {
    let current = current_version(records)?;
    let target = records
        .iter()
        .rev()
        .filter(|r| good(r))
        .find(|r| r.to != current.to)?;
    Some((current, target))
}

/// The live blue-green colour: the newest record that says one, whatever its outcome (a
/// failed deployment that switched back still says which colour serves).
pub fn live_color(records: &[Record]) -> Option<&str> {
    records.iter().rev().find_map(|r| r.color.as_deref())
}

/// Where history lives.
pub enum History {
    File(PathBuf),
    /// Boxed: an endpoint is large next to a path.
    Postgres(Box<PgEndpoint>),
}

const TABLE: &str = "restage_deployments";

impl History {
    /// From `deploy.history` (resolving `${VAR}` and friends): a `postgres://` or
    /// `postgresql://` URL, or a path relative to the config file.
    pub fn from_config(
        config: &Config,
        raw: Option<&crate::config::RawValue>,
    ) -> Result<History, ConfigError> {
        let Some(raw) = raw else {
            return Ok(History::File(
                config.dir().join(".restage/deployments.jsonl"),
            ));
        };
        let path = ["deploy", "history"];
        let value = raw.resolve("deploy.history", &config.locate(&path))?;
        let text = value.expose().trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let endpoint = PgEndpoint::parse(&value).map_err(|m| config.value_error(&path, m))?;
            return Ok(History::Postgres(Box::new(endpoint)));
        }
        if text.is_empty() {
            return Err(
                config.value_error(&path, "is empty (give a file path or a postgres:// URL)")
            );
        }
        let file = PathBuf::from(text);
        Ok(History::File(if file.is_absolute() {
            file
        } else {
            config.dir().join(file)
        }))
    }

    pub fn describe(&self) -> String {
        match self {
            History::File(p) => p.display().to_string(),
            History::Postgres(e) => format!("{} table {TABLE}", e.display),
        }
    }

    /// Every record, the last one per id, oldest first.
    pub async fn load(&self) -> Result<Vec<Record>> {
        let records = match self {
            History::File(path) => {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => {
                        return Err(Error::io(
                            format!("reading deployment history {}", path.display()),
                            e,
                        ));
                    }
                };
                let mut records = Vec::new();
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Record>(line) {
                        Ok(r) => records.push(r),
                        // A line cut short by a crash must not hide all of history.
                        Err(e) => tracing::warn!(
                            "{}:{}: skipping a line that is not a deployment record: {e}",
                            path.display(),
                            i + 1
                        ),
                    }
                }
                records
            }
            History::Postgres(endpoint) => {
                let client = db::connect(endpoint, Role::Target).await?;
                ensure_table(&client, endpoint).await?;
                let rows = client
                    .query(
                        &format!("SELECT record::text FROM {TABLE} ORDER BY seq"),
                        &[],
                    )
                    .await
                    .map_err(|e| {
                        db::DbError::new(&endpoint.display, format!("reading {TABLE}"), e)
                    })?;
                let mut records = Vec::new();
                for row in rows {
                    let text: String = row.get(0);
                    match serde_json::from_str::<Record>(&text) {
                        Ok(r) => records.push(r),
                        Err(e) => tracing::warn!(
                            "{TABLE}: skipping a row that is not a deployment record: {e}"
                        ),
                    }
                }
                records
            }
        };
        Ok(latest_per_id(records))
    }

    /// Appends one record (one line, or one row).
    pub async fn append(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_string(record)
            .map_err(|e| Error::Runtime(format!("cannot encode the history record: {e}")))?;
        match self {
            History::File(path) => {
                let io = |e| Error::io(format!("writing deployment history {}", path.display()), e);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                // One write per record: with O_APPEND, concurrent writers do not interleave lines.
                file.write_all(format!("{json}\n").as_bytes()).map_err(io)?;
                file.sync_data().map_err(io)?;
            }
            History::Postgres(endpoint) => {
                let client = db::connect(endpoint, Role::Target).await?;
                ensure_table(&client, endpoint).await?;
                client
                    .execute(
                        &format!(
                            "INSERT INTO {TABLE} (id, started_at, who, strategy, from_version, to_version, outcome, record)
                             VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8::text::jsonb)"
                        ),
                        &[
                            &record.id,
                            &record.started_at,
                            &record.who,
                            &record.strategy,
                            &record.from,
                            &record.to,
                            &record.outcome.as_str(),
                            &json,
                        ],
                    )
                    .await
                    .map_err(|e| db::DbError::new(&endpoint.display, format!("writing {TABLE}"), e))?;
            }
        }
        Ok(())
    }
}

async fn ensure_table(client: &tokio_postgres::Client, endpoint: &PgEndpoint) -> Result<()> {
    // The record is the source of truth; the other columns are there to query by.
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                 seq bigserial PRIMARY KEY,
                 id text NOT NULL,
                 started_at timestamptz NOT NULL,
                 who text NOT NULL,
                 strategy text NOT NULL,
                 from_version text,
                 to_version text NOT NULL,
                 outcome text NOT NULL,
                 recorded_at timestamptz NOT NULL DEFAULT now(),
                 record jsonb NOT NULL
             )"
        ))
        .await
        .map_err(|e| db::DbError::new(&endpoint.display, format!("creating {TABLE}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, to: &str, outcome: Outcome, color: Option<&str>) -> Record {
        Record {
            id: id.into(),
            who: "t".into(),
            started_at: now(),
            finished_at: None,
            strategy: "rolling".into(),
            from: None,
            to: to.into(),
            outcome,
            reason: None,
            error: None,
            color: color.map(str::to_string),
            rollback_of: None,
            steps: vec![],
        }
    }

    #[test]
    fn last_record_per_id_wins() {
        let records = latest_per_id(vec![
            rec("a", "1", Outcome::InProgress, None),
            rec("b", "2", Outcome::InProgress, None),
            rec("a", "1", Outcome::Succeeded, None),
        ]);
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].id.as_str(), records[0].outcome),
            ("a", Outcome::Succeeded)
        );
        assert_eq!(records[1].outcome, Outcome::InProgress);
    }

    #[test]
    fn current_and_rollback_versions() {
        let records = vec![
            rec("1", "1.0", Outcome::Succeeded, Some("blue")),
            rec("2", "2.0", Outcome::Succeeded, Some("green")),
            rec("3", "3.0", Outcome::RolledBack, Some("blue")),
            rec("4", "2.0", Outcome::Succeeded, None),
        ];
        assert_eq!(current_version(&records).unwrap().to, "2.0");
        let (current, target) = rollback_target(&records).unwrap();
        assert_eq!((current.to.as_str(), target.to.as_str()), ("2.0", "1.0"));
        assert_eq!(live_color(&records), Some("blue"));
        assert!(rollback_target(&records[..1]).is_none());
        assert!(current_version(&[]).is_none());
    }

    #[test]
    fn who_prefers_restage_actor_then_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            who_from(env(&[("RESTAGE_ACTOR", "ci-bot"), ("USER", "alice")])),
            "ci-bot"
        );
        assert_eq!(
            who_from(env(&[("RESTAGE_ACTOR", " "), ("USER", "alice")])),
            "alice"
        );
        assert_eq!(who_from(env(&[])), "unknown");
    }
}
