//! Notifications: `notify:` entries told when a run fails, succeeds, or both — a JSON
//! document or a Slack-compatible message POSTed to a webhook, or a command template run
//! without a shell with the document on its stdin.
//!
//! What is sent is the run's summary ([`payload`]): command, database, server (no
//! password), outcome, exit code, times, totals, verification and cache counts. Never a value
//! from a table (the outcome message is restage's own, which names columns and servers,
//! never values), never a secret: the webhook URL itself (a Slack URL is a token) shows in
//! logs only as `scheme://host:port/…`.
//!
//! Every notifier runs at once, each bounded by its `timeout` (default 10s). One that fails,
//! times out or answers an error is logged as a warning: it never changes the run's outcome
//! or exit code.

mod command;
pub mod payload;

use std::time::Duration;

use crate::config::{Config, NotifyEvent, NotifyFormat};
use crate::error::{Error, Result};
use crate::http::{self, Url};
use crate::runs::RunSummary;

use self::command::CommandTemplate;

/// The longest a notification may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a webhook's answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// One `notify:` entry, resolved.
#[derive(Debug)]
pub struct Notifier {
    on: Vec<NotifyEvent>,
    target: Target,
    timeout: Duration,
}

#[derive(Debug)]
enum Target {
    Webhook { url: Url, slack: bool },
    Command(CommandTemplate),
}

/// The event a run is.
pub fn event_of(run: &RunSummary) -> NotifyEvent {
    if run.succeeded() {
        NotifyEvent::Success
    } else {
        NotifyEvent::Failure
    }
}

impl Notifier {
    /// Every `notify:` entry; a webhook that does not resolve or parse, or a template with an
    /// unknown placeholder, is a config error before the command runs.
    pub fn from_config(config: &Config) -> Result<Vec<Notifier>> {
        let mut notifiers = Vec::new();
        for (i, entry) in config.file.notify.iter().enumerate() {
            let idx = i.to_string();
            let target = match (entry.effective_format(), &entry.webhook, &entry.command) {
                (NotifyFormat::Command, _, Some(template)) => {
                    let template = CommandTemplate::parse(template).map_err(|message| {
                        Error::Config(config.value_error(&["notify", &idx, "command"], message))
                    })?;
                    Target::Command(template)
                }
                (format, Some(raw), _) => {
                    let key = ["notify", idx.as_str(), "webhook"];
                    let resolved = raw.resolve(&key.join("."), &config.locate(&key))?;
                    let url = Url::parse_secret(resolved.expose())
                        .map_err(|message| Error::Config(config.value_error(&key, message)))?;
                    Target::Webhook {
                        url,
                        slack: format == NotifyFormat::Slack,
                    }
                }
                // The config's own checks refuse the other combinations.
                _ => continue,
            };
            notifiers.push(Notifier {
                on: entry.on.clone(),
                target,
                timeout: entry.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            });
        }
        Ok(notifiers)
    }

    /// Whether this notifier is told of `run`.
    pub fn wants(&self, run: &RunSummary) -> bool {
        self.on.contains(&event_of(run))
    }

    /// What the logs call it: the webhook's origin, or the program.
    pub fn shown(&self) -> String {
        match &self.target {
            Target::Webhook { url, .. } => url.shown_origin(),
            Target::Command(t) => format!("command {}", t.program()),
        }
    }

    /// Tells this notifier of `run`, within its timeout.
    pub async fn send(&self, run: &RunSummary) -> Result<(), String> {
        let document = payload::document(run);
        match &self.target {
            // The command bounds itself: on timeout it kills the command's process group.
            Target::Command(template) => template.run(run, &document, self.timeout).await,
            Target::Webhook { url, slack } => {
                let body = if *slack {
                    payload::slack(run)
                } else {
                    document
                };
                let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                let request = http::Request::with_body("POST", "application/json", &body);
                let response =
                    match tokio::time::timeout(self.timeout, http::send(url, &request, MAX_ANSWER))
                        .await
                    {
                        Ok(response) => response?,
                        Err(_) => {
                            return Err(format!(
                                "no answer within {}",
                                crate::units::format_duration(self.timeout)
                            ));
                        }
                    };
                if (200..300).contains(&response.status) {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", response.status))
                }
            }
        }
    }
}

/// Tells every notifier that wants `run`, all at once. Failures are logged, never returned:
/// they do not change the run's outcome.
pub async fn notify(notifiers: &[Notifier], run: &RunSummary) {
    let sends = notifiers
        .iter()
        .filter(|n| n.wants(run))
        .map(|n| async move {
            match n.send(run).await {
                Ok(()) => tracing::debug!(notifier = %n.shown(), "notified"),
                Err(e) => tracing::warn!(
                    notifier = %n.shown(),
                    error = %e,
                    "notification failed; the run's outcome is unchanged"
                ),
            }
        });
    futures_util::future::join_all(sends).await;
}
