//! `format: command`: a command template run without a shell. The template is split into
//! words like a `cmd:` value (quotes group; no pipes, globs or variables) and placeholders
//! are filled inside each word, so a value never becomes two arguments. The run's JSON
//! document is written to the command's stdin.
//!
//! Placeholders: `{command}`, `{event}` (`success`, `failure`), `{exit_code}`, `{outcome}`,
//! `{database}`, `{server}`, `{generation}`, `{seconds}`; `{{` and `}}` are literal braces.
//!
//! The command runs in its own process group; on timeout (or when restage stops waiting for
//! it) the group is killed. Its output is
//! not shown (at debug level, its last line of stderr is).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::NotifyEvent;
use crate::runs::RunSummary;

const PLACEHOLDERS: [&str; 8] = [
    "command",
    "event",
    "exit_code",
    "outcome",
    "database",
    "server",
    "generation",
    "seconds",
];

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Value(&'static str),
}

/// A parsed template: words of pieces.
#[derive(Debug, Clone)]
pub struct CommandTemplate {
    words: Vec<Vec<Piece>>,
}

impl CommandTemplate {
    pub fn parse(template: &str) -> Result<CommandTemplate, String> {
        let words = crate::config::split_command(template)?;
        if words.is_empty() {
            return Err("the command is empty".to_string());
        }
        let words = words
            .iter()
            .map(|w| parse_word(w))
            .collect::<Result<Vec<_>, _>>()?;
        if !matches!(words[0].as_slice(), [Piece::Text(_)]) {
            return Err("the program (the first word) cannot be a placeholder".to_string());
        }
        Ok(CommandTemplate { words })
    }

    pub fn program(&self) -> &str {
        match self.words[0].as_slice() {
            [Piece::Text(p)] => p,
            _ => "",
        }
    }

    /// The argument vector for `run`.
    pub fn render(&self, run: &RunSummary) -> Vec<String> {
        let value = |name: &str| -> String {
            match name {
                "command" => run.command.name().to_string(),
                "event" => match super::event_of(run) {
                    NotifyEvent::Success => "success".to_string(),
                    NotifyEvent::Failure => "failure".to_string(),
                },
                "exit_code" => run.exit_code.to_string(),
                "outcome" => run.outcome.clone(),
                "database" => run.database.clone(),
                "server" => run.server.clone(),
                "generation" => run.built.clone().unwrap_or_default(),
                "seconds" => format!("{:.1}", run.seconds),
                _ => String::new(),
            }
        };
        self.words
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.clone(),
                        Piece::Value(name) => value(name),
                    })
                    .collect()
            })
            .collect()
    }

    /// Runs the command with `document` on its stdin; kills its process group after
    /// `timeout`.
    pub async fn run(
        &self,
        summary: &RunSummary,
        document: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(), String> {
        let argv = self.render(summary);
        let program = &argv[0];
        let mut child = tokio::process::Command::new(program)
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run `{program}`: {e}"))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        // Whatever ends this function — timeout, a signal that drops it — the command's
        // whole process group goes with it (a `sh -c` has children of its own).
        let _group = GroupGuard(pid);
        let input = serde_json::to_vec(document).unwrap_or_default();
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let finished = async {
            if let Some(stdin) = stdin.as_mut() {
                // A command that does not read its stdin is fine: a closed pipe is not an error.
                let _ = stdin.write_all(&input).await;
            }
            drop(stdin.take());
            let mut errors = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.take(64 * 1024).read_to_end(&mut errors).await;
            }
            (child.wait().await, errors)
        };
        match tokio::time::timeout(timeout, finished).await {
            Ok((Ok(status), errors)) if status.success() => {
                let _ = errors;
                Ok(())
            }
            Ok((Ok(status), errors)) => {
                let text = String::from_utf8_lossy(&errors);
                if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                    tracing::debug!(program = %program, stderr = %last, "notify command failed");
                }
                Err(format!("`{program}` exited with {status}"))
            }
            Ok((Err(e), _)) => Err(format!("waiting for `{program}`: {e}")),
            Err(_) => Err(format!(
                "`{program}` did not finish within {}; killed",
                crate::units::format_duration(timeout)
            )),
        }
    }
}

/// Kills a process group when dropped (a finished command's group is usually gone then).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: signalling the process group `run` created for its command; a group
            // that no longer exists makes kill fail harmlessly.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// `text{name}more` → pieces; `{{` and `}}` are literal braces.
fn parse_word(word: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return Err(format!("unclosed `{{` in `{word}`")),
                    }
                }
                let Some(known) = PLACEHOLDERS.iter().find(|p| **p == name) else {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(known));
            }
            '}' => {
                return Err(format!(
                    "a lone `}}` in `{word}` (write `}}}}` for a brace)"
                ));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::Command;

    fn run(exit: i32) -> RunSummary {
        let result = if exit == 0 {
            Ok(0)
        } else {
            Err(crate::error::Error::Runtime("db down; `rm -rf /`".into()))
        };
        RunSummary::new(
            Command::Refresh,
            "app",
            "u@h:5432/postgres",
            chrono::Utc::now(),
            &result,
            "live",
        )
    }

    #[test]
    fn values_fill_words_and_never_split_them() {
        let t = CommandTemplate::parse(
            "page --title 'restage {command} {event}' --code={exit_code} {outcome} {{x}}",
        )
        .unwrap();
        assert_eq!(t.program(), "page");
        assert_eq!(
            t.render(&run(1)),
            [
                "page",
                "--title",
                "restage refresh failure",
                "--code=1",
                "db down; `rm -rf /`",
                "{x}"
            ]
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(
            CommandTemplate::parse("page {nope}")
                .unwrap_err()
                .contains("unknown placeholder {nope}")
        );
        assert!(
            CommandTemplate::parse("{command} x")
                .unwrap_err()
                .contains("cannot be a placeholder")
        );
        assert!(
            CommandTemplate::parse("page {command")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(CommandTemplate::parse("   ").unwrap_err().contains("empty"));
    }

    #[tokio::test]
    async fn the_document_goes_to_stdin_and_a_slow_command_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("doc.json");
        let t =
            CommandTemplate::parse(&format!("sh -c 'cat > {}' {{event}}", out.display())).unwrap();
        let doc = serde_json::json!({ "event": "success" });
        t.run(&run(0), &doc, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"event\":\"success\"}"
        );
        let slow = CommandTemplate::parse("sleep 30").unwrap();
        let started = std::time::Instant::now();
        let err = slow
            .run(&run(0), &doc, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.contains("did not finish within 300ms; killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let failing = CommandTemplate::parse("false").unwrap();
        assert!(
            failing
                .run(&run(0), &doc, Duration::from_secs(5))
                .await
                .unwrap_err()
                .contains("exited with")
        );
        let missing = CommandTemplate::parse("/nonexistent/notify").unwrap();
        assert!(
            missing
                .run(&run(0), &doc, Duration::from_secs(5))
                .await
                .unwrap_err()
                .contains("cannot run")
        );
    }
}
