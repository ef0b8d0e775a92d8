//! The `metrics:` and `notify:` sections as written, and their pure checks. Resolving the
//! URLs (`${VAR}`, `file:`, `cmd:`) and building the sinks and notifiers from them is
//! `metrics` and `notify`'s, when a command that reports runs.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError, RawValue};
use crate::units::Duration;

/// `metrics:` — where each run's metrics go. Both destinations are optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A `.prom` file for node_exporter's textfile collector, written atomically after each
    /// run (relative paths are relative to restage.yaml).
    pub textfile: Option<PathBuf>,
    /// A Pushgateway's base URL (`http://pushgateway:9091`), pushed to after each run.
    pub pushgateway: Option<RawValue>,
    /// The Pushgateway `job` label (default `restage`).
    pub job: Option<String>,
    /// The Pushgateway `instance` label (default: `target.database`).
    pub instance: Option<String>,
    /// The longest a push may take (default 10s).
    pub timeout: Option<Duration>,
    /// Per-table series (four per table of the last refresh); `false` for schemas with
    /// thousands of tables.
    #[serde(default = "yes")]
    pub tables: bool,
}

fn yes() -> bool {
    true
}

/// When a notifier is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// The run exited non-zero.
    Failure,
    /// The run exited 0.
    Success,
}

/// The shape of what a notifier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// The run summary as a JSON document, POSTed to `webhook`.
    Json,
    /// A Slack-compatible message (`text` and an attachment), POSTed to `webhook`.
    Slack,
    /// `command` run without a shell, the JSON document on its stdin.
    Command,
}

/// One entry of `notify:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Which outcomes are told (default `[failure]`).
    #[serde(default = "default_on")]
    pub on: Vec<NotifyEvent>,
    /// Where `json` and `slack` documents are POSTed (`${VAR}`, `file:`, `cmd:` allowed: a
    /// webhook URL is a secret).
    pub webhook: Option<RawValue>,
    /// A command template for `format: command`; placeholders as in docs/operations.md.
    pub command: Option<String>,
    /// `json` (default with `webhook`), `slack`, or `command` (implied by `command`).
    pub format: Option<NotifyFormat>,
    /// The longest one notification may take (default 10s).
    pub timeout: Option<Duration>,
}

fn default_on() -> Vec<NotifyEvent> {
    vec![NotifyEvent::Failure]
}

impl NotifyConfig {
    /// The format this entry sends: the one written, else what its keys imply.
    pub fn effective_format(&self) -> NotifyFormat {
        match (self.format, &self.command) {
            (Some(f), _) => f,
            (None, Some(_)) => NotifyFormat::Command,
            (None, None) => NotifyFormat::Json,
        }
    }
}

impl Config {
    /// The textfile of `metrics.textfile`, relative to the config file.
    pub fn metrics_textfile(&self) -> Option<PathBuf> {
        let path = self.file.metrics.as_ref()?.textfile.clone()?;
        Some(if path.is_absolute() {
            path
        } else {
            self.dir().join(path)
        })
    }

    /// The pure checks of `metrics:` and `notify:`.
    pub(super) fn check_monitoring(&self, problems: &mut Vec<ConfigError>) {
        if let Some(metrics) = &self.file.metrics {
            if let Some(path) = &metrics.textfile
                && path.extension().and_then(|e| e.to_str()) != Some("prom")
            {
                problems.push(self.value_error(
                    &["metrics", "textfile"],
                    "must end in .prom (node_exporter's textfile collector reads only *.prom files)",
                ));
            }
            for (key, value) in [("job", &metrics.job), ("instance", &metrics.instance)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    problems.push(self.value_error(&["metrics", key], "must not be empty"));
                }
            }
            if metrics.timeout.is_some_and(|t| t.0.is_zero()) {
                problems.push(self.value_error(&["metrics", "timeout"], "must be more than 0s"));
            }
        }
        for (i, entry) in self.file.notify.iter().enumerate() {
            let idx = i.to_string();
            let at = |key: &'static str| -> Vec<&str> {
                if key.is_empty() {
                    vec!["notify", idx.as_str()]
                } else {
                    vec!["notify", idx.as_str(), key]
                }
            };
            if entry.on.is_empty() {
                problems.push(
                    self.value_error(&at("on"), "must name at least one of failure, success"),
                );
            }
            if entry.timeout.is_some_and(|t| t.0.is_zero()) {
                problems.push(self.value_error(&at("timeout"), "must be more than 0s"));
            }
            match (entry.effective_format(), &entry.webhook, &entry.command) {
                (_, Some(_), Some(_)) => problems.push(self.value_error(
                    &at(""),
                    "give either webhook (format json or slack) or command, not both",
                )),
                (NotifyFormat::Command, Some(_), None) => problems.push(self.value_error(
                    &at("format"),
                    "format command needs `command:` (a command template), not `webhook:`",
                )),
                (NotifyFormat::Json | NotifyFormat::Slack, None, Some(_)) => {
                    problems.push(self.value_error(
                        &at("format"),
                        "format json and slack POST to `webhook:`; a command takes format command",
                    ))
                }
                (_, None, None) => problems.push(
                    self.value_error(&at(""), "give webhook (format json or slack) or command"),
                ),
                _ => {}
            }
            if let Some(command) = &entry.command
                && command.trim().is_empty()
            {
                problems.push(self.value_error(&at("command"), "must not be empty"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("/etc/restage/restage.yaml"))
    }

    #[test]
    fn the_spec_example_loads() {
        let config = load(
            "metrics:\n  textfile: textfile/restage.prom\n  pushgateway: http://pushgateway:9091\nnotify:\n  - { on: [failure], webhook: https://hooks.example/x, format: slack }\n  - { on: [failure, success], command: 'page {command} {exit_code}' }\n",
        )
        .expect("loads");
        assert_eq!(
            config.metrics_textfile(),
            Some(PathBuf::from("/etc/restage/textfile/restage.prom"))
        );
        let metrics = config.file.metrics.as_ref().expect("metrics");
        assert!(metrics.tables, "per-table series by default");
        assert_eq!(config.file.notify.len(), 2);
        assert_eq!(
            config.file.notify[0].effective_format(),
            NotifyFormat::Slack
        );
        assert_eq!(
            config.file.notify[1].effective_format(),
            NotifyFormat::Command
        );
        assert_eq!(
            config.file.notify[1].on,
            [NotifyEvent::Failure, NotifyEvent::Success]
        );
    }

    #[test]
    fn a_notifier_is_told_failures_by_default() {
        let config = load("notify:\n  - { webhook: http://127.0.0.1:1/x }\n").expect("loads");
        assert_eq!(config.file.notify[0].on, [NotifyEvent::Failure]);
        assert_eq!(config.file.notify[0].effective_format(), NotifyFormat::Json);
    }

    #[test]
    fn every_problem_is_named_at_its_key() {
        let err = load(
            "metrics:\n  textfile: /tmp/restage.txt\n  instance: ''\nnotify:\n  - { on: [], webhook: http://x/ }\n  - { webhook: http://x/, command: echo }\n  - { format: command, webhook: http://x/ }\n  - { format: slack, command: echo }\n  - { on: [success] }\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 7, "{err}");
        assert!(
            lines[0].contains("metrics.textfile: must end in .prom"),
            "{err}"
        );
        assert!(
            lines[1].contains("metrics.instance: must not be empty"),
            "{err}"
        );
        assert!(
            lines[2].contains("notify.0.on: must name at least one"),
            "{err}"
        );
        assert!(lines[3].contains("notify.1: give either webhook"), "{err}");
        assert!(
            lines[4].contains("notify.2.format: format command needs"),
            "{err}"
        );
        assert!(
            lines[5].contains("notify.3.format: format json and slack"),
            "{err}"
        );
        assert!(lines[6].contains("notify.4: give webhook"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("metrics:\n  textfiel: /x.prom\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `textfiel`"), "{err}");
        let err = load("notify:\n  - { webhook: http://x/, fromat: slack }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `fromat`"), "{err}");
    }
}
