//! What a notification carries: the run summary as one JSON document (`format: json`, and a
//! command's stdin), or a Slack-compatible message (`format: slack`: `text` plus one
//! attachment, which Slack, Mattermost and Rocket.Chat all read).
//!
//! The document is the summary without its per-table list (a chat message is no place for
//! 500 tables; the report and the metrics have them), with `event` first.

use serde_json::{Map, Value, json};

use crate::config::NotifyEvent;
use crate::runs::RunSummary;
use crate::units::human_bytes;

/// The JSON document of a run.
pub fn document(run: &RunSummary) -> Value {
    let mut out = Map::new();
    let event = match super::event_of(run) {
        NotifyEvent::Success => "success",
        NotifyEvent::Failure => "failure",
    };
    out.insert("event".into(), json!(event));
    out.insert("restage_version".into(), json!(env!("CARGO_PKG_VERSION")));
    if let Ok(Value::Object(summary)) = serde_json::to_value(run) {
        for (key, value) in summary {
            if key != "tables" {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}

/// `&`, `<` and `>` are Slack's control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack-compatible message of a run.
pub fn slack(run: &RunSummary) -> Value {
    let ok = run.succeeded();
    let text = format!(
        "{} restage {} {} on {} (exit {}): {}",
        if ok { ":white_check_mark:" } else { ":x:" },
        run.command.name(),
        if ok { "succeeded" } else { "FAILED" },
        run.database,
        run.exit_code,
        run.outcome.lines().next().unwrap_or("")
    );
    let mut fields = vec![
        json!({ "title": "database", "value": slack_escape(&run.database), "short": true }),
        json!({ "title": "server", "value": slack_escape(&run.server), "short": true }),
        json!({ "title": "duration", "value": format!("{:.1}s", run.seconds), "short": true }),
    ];
    if let Some(t) = &run.totals {
        fields.push(json!({
            "title": "copied",
            "value": format!("{} tables, {} rows, {}", t.tables, t.rows_written, human_bytes(t.bytes)),
            "short": true
        }));
    }
    if let Some(v) = &run.verification {
        fields.push(json!({
            "title": "verification",
            "value": format!(
                "{}: {} values checked, {} leaks, {} foreign key violations",
                if v.passed { "passed" } else { "FAILED" },
                v.values_checked,
                v.leaks_found,
                v.foreign_key_violations
            ),
            "short": false
        }));
    }
    if let Some(c) = &run.cache {
        fields.push(json!({
            "title": "cache",
            "value": if c.warmed { format!("{} keys warmed", c.keys_written) } else { "NOT warmed".to_string() },
            "short": true
        }));
    }
    json!({
        "text": slack_escape(&text),
        "attachments": [{
            "color": if ok { "good" } else { "danger" },
            "fallback": slack_escape(&text),
            "fields": fields,
            "footer": format!("restage {}", env!("CARGO_PKG_VERSION")),
            "ts": run.finished_at.timestamp(),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{Command, TableCounts};

    #[test]
    fn the_document_is_the_summary_without_tables() {
        let mut run = RunSummary::new(
            Command::Refresh,
            "app",
            "u@h:5432/postgres",
            chrono::Utc::now(),
            &Err(crate::error::Error::Verify("a <leak> & more".into())),
            "",
        );
        run.tables = vec![TableCounts {
            table: "public.users".into(),
            rows_read: 1,
            rows_written: 1,
            bytes: 1,
            seconds: 0.1,
        }];
        let doc = document(&run);
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&keys[..3], ["event", "restage_version", "command"]);
        assert!(!keys.contains(&"tables"));
        assert_eq!(doc["event"], "failure");
        assert_eq!(doc["exit_code"], 3);
        let slack = slack(&run);
        assert_eq!(
            slack["text"],
            ":x: restage refresh FAILED on app (exit 3): verification failed: a &lt;leak&gt; &amp; more"
        );
        assert_eq!(slack["attachments"][0]["color"], "danger");
    }
}
