//! Command templates (`update`, `traffic`, `switch`) and running them.
//!
//! A template is parsed when the config loads: an unknown placeholder, or one that has no
//! value in that command (`{percent}` in `update`), is a config error with its position.
//!
//! Without a shell (the default) the template is split into words first (quotes group, no
//! globs, no pipes) and placeholders are filled inside each word, so a value can never become
//! two arguments or a second command. With `shell: true` the text goes to `sh -c`, and each
//! value is single-quoted before it is inserted, for the same reason.
//!
//! A command runs in its own process group with stdin closed and a timeout; on timeout the
//! whole group is killed (a `sh -c` or an `ssh` may have children). Its output goes to the
//! log at info, line by line, and its tail is kept for history.

use std::fmt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::units::format_duration;

/// The placeholders a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    Instance,
    InstanceHost,
    InstancePort,
    Version,
    Percent,
    Color,
    PreviousVersion,
}

impl Placeholder {
    pub const ALL: [Placeholder; 7] = [
        Placeholder::Instance,
        Placeholder::InstanceHost,
        Placeholder::InstancePort,
        Placeholder::Version,
        Placeholder::Percent,
        Placeholder::Color,
        Placeholder::PreviousVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Instance => "instance",
            Placeholder::InstanceHost => "instance_host",
            Placeholder::InstancePort => "instance_port",
            Placeholder::Version => "version",
            Placeholder::Percent => "percent",
            Placeholder::Color => "color",
            Placeholder::PreviousVersion => "previous_version",
        }
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Value(Placeholder),
}

/// Parses `{name}` placeholders in `text`; `{{` and `}}` are literal braces.
fn parse_segments(text: &str, allowed: &[Placeholder]) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => {
                            return Err(format!(
                                "unclosed `{{{name}` (write `{{{{` for a literal brace)"
                            ));
                        }
                    }
                }
                let placeholder = Placeholder::from_name(name.trim()).ok_or_else(|| {
                    let names: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
                    match crate::yaml::did_you_mean(name.trim(), &names) {
                        Some(best) => {
                            format!("unknown placeholder `{{{name}}}`, did you mean `{{{best}}}`?")
                        }
                        None => format!(
                            "unknown placeholder `{{{name}}}` (known: {})",
                            allowed
                                .iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                })?;
                if !allowed.contains(&placeholder) {
                    return Err(format!(
                        "`{placeholder}` has no value here (available: {})",
                        allowed
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Value(placeholder));
            }
            '}' => return Err("stray `}` (write `}}` for a literal brace)".to_string()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Values for the placeholders of one command run.
#[derive(Debug, Clone, Default)]
pub struct Vars(Vec<(Placeholder, String)>);

impl Vars {
    pub fn new() -> Vars {
        Vars(Vec::new())
    }

    pub fn set(mut self, p: Placeholder, value: impl Into<String>) -> Vars {
        self.0.retain(|(q, _)| *q != p);
        self.0.push((p, value.into()));
        self
    }

    /// These values plus `other`'s (which win).
    pub fn merge(mut self, other: Vars) -> Vars {
        for (p, v) in other.0 {
            self = self.set(p, v);
        }
        self
    }

    pub fn get(&self, p: Placeholder) -> Option<&str> {
        self.0
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, v)| v.as_str())
    }
}

fn render_segments(segments: &[Segment], vars: &Vars, quote: bool) -> Result<String, Placeholder> {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Literal(text) => out.push_str(text),
            Segment::Value(p) => {
                let value = vars.get(*p).ok_or(*p)?;
                if quote {
                    out.push_str(&shell_quote(value));
                } else {
                    out.push_str(value);
                }
            }
        }
    }
    Ok(out)
}

/// `'value'` for `sh`, with embedded single quotes as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// A URL or other text with placeholders (the metrics URL), not a command.
#[derive(Debug, Clone)]
pub struct TextTemplate {
    segments: Vec<Segment>,
}

impl TextTemplate {
    pub fn parse(text: &str, allowed: &[Placeholder]) -> Result<TextTemplate, String> {
        Ok(TextTemplate {
            segments: parse_segments(text, allowed)?,
        })
    }

    pub fn uses(&self, p: Placeholder) -> bool {
        self.segments.contains(&Segment::Value(p))
    }

    pub fn render(&self, vars: &Vars) -> Result<String, String> {
        render_segments(&self.segments, vars, false).map_err(|p| format!("`{p}` has no value here"))
    }
}

/// A parsed command template.
#[derive(Debug, Clone)]
pub struct CommandTemplate {
    /// The config key it came from (`deploy.update`), for messages.
    pub key: String,
    raw: String,
    shell: bool,
    /// Without a shell: the words, each a list of segments. With a shell: one "word".
    words: Vec<Vec<Segment>>,
}

impl CommandTemplate {
    pub fn parse(
        key: &str,
        raw: &str,
        shell: bool,
        allowed: &[Placeholder],
    ) -> Result<CommandTemplate, String> {
        let words = if shell {
            vec![parse_segments(raw, allowed)?]
        } else {
            let words = crate::config::split_command(raw)?;
            if words.is_empty() {
                return Err("the command is empty".to_string());
            }
            words
                .iter()
                .map(|w| parse_segments(w, allowed))
                .collect::<Result<Vec<_>, _>>()?
        };
        if shell && raw.trim().is_empty() {
            return Err("the command is empty".to_string());
        }
        Ok(CommandTemplate {
            key: key.to_string(),
            raw: raw.to_string(),
            shell,
            words,
        })
    }

    pub fn uses(&self, p: Placeholder) -> bool {
        self.words.iter().any(|w| w.contains(&Segment::Value(p)))
    }

    /// The program and arguments for these values.
    pub fn render(&self, vars: &Vars) -> Result<Vec<String>, String> {
        let missing = |p: Placeholder| format!("{}: `{p}` has no value in this run", self.key);
        if self.shell {
            let script = render_segments(&self.words[0], vars, true).map_err(missing)?;
            return Ok(vec!["sh".to_string(), "-c".to_string(), script]);
        }
        self.words
            .iter()
            .map(|w| render_segments(w, vars, false).map_err(missing))
            .collect()
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// What a command run produced.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    pub success: bool,
    /// `exit 0`, `exit 3`, `killed by signal 9`, `timed out after 5m`, `cannot start: …`.
    pub status: String,
    /// The last lines of stdout and stderr, interleaved as they came.
    pub output: String,
    pub duration: Duration,
}

/// Lines of output kept for history.
const TAIL_LINES: usize = 20;

/// Runs `argv` with a timeout. `label` names it in the log (`update 10.0.0.1:8080`).
pub async fn run(argv: &[String], timeout: Duration, label: &str) -> CommandOutcome {
    let started = Instant::now();
    let Some((program, args)) = argv.split_first() else {
        return CommandOutcome {
            success: false,
            status: "cannot start: empty command".to_string(),
            output: String::new(),
            duration: Duration::ZERO,
        };
    };
    tracing::info!(command = label, "running {}", display_argv(argv));
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let status = format!("cannot start `{program}`: {e}");
            tracing::warn!(command = label, "{status}");
            return CommandOutcome {
                success: false,
                status,
                output: String::new(),
                duration: started.elapsed(),
            };
        }
    };
    // Kills the whole group if this future is dropped before the child is reaped (a deploy
    // interrupted by Ctrl-C): the child is in its own group, so the terminal's SIGINT does
    // not reach it, and kill_on_drop alone would miss its children.
    let mut guard = GroupGuard(child.id());
    let tail = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let readers = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, label, tail.clone())),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, label, tail.clone())),
    ];
    let (success, status) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => (status.success(), describe_status(status)),
        Ok(Err(e)) => (false, format!("waiting for it failed: {e}")),
        Err(_) => {
            kill_group(&mut child).await;
            (
                false,
                format!("timed out after {}", format_duration(timeout)),
            )
        }
    };
    guard.0 = None;
    for reader in readers.into_iter().flatten() {
        // Output readers end when the pipes close; a grandchild that escaped the process
        // group could hold them open, so do not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    }
    let output = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<String>>().join("\n"))
        .unwrap_or_default();
    let duration = started.elapsed();
    if success {
        tracing::info!(
            command = label,
            seconds = format!("{:.2}", duration.as_secs_f64()),
            "{status}"
        );
    } else {
        tracing::warn!(command = label, "failed: {status}");
    }
    CommandOutcome {
        success,
        status,
        output,
        duration,
    }
}

fn spawn_reader<R>(
    stream: R,
    label: &str,
    tail: Arc<Mutex<std::collections::VecDeque<String>>>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let label = label.to_string();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = redact_credentials(line.trim_end());
                    tracing::info!(command = %label, "| {line}");
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == TAIL_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            }
        }
    })
}

/// Hides `user:password@` in any URL a command prints, before it reaches logs or history.
pub fn redact_credentials(line: &str) -> String {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match RE
        .get_or_init(|| regex::Regex::new(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s/]*@").ok())
    {
        Some(re) => re.replace_all(line, "$1:***@").into_owned(),
        None => line.to_string(),
    }
}

/// The process group of a running command, killed on drop unless cleared.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid);
        }
    }
}

#[cfg(unix)]
fn signal_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for this
    // child (process_group(0) made its pid the group id); no memory is involved.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn signal_group(_pid: u32) {}

async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        signal_group(pid);
    }
    let _ = child.kill().await;
}

fn describe_status(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

/// The command as a user would type it, for logs.
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%{}".contains(c))
            {
                a.clone()
            } else {
                shell_quote(a)
            }
        })
        .map(|a| redact_credentials(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &[Placeholder] = &[
        Placeholder::Instance,
        Placeholder::InstanceHost,
        Placeholder::InstancePort,
        Placeholder::Version,
        Placeholder::PreviousVersion,
        Placeholder::Color,
    ];

    #[test]
    fn parses_and_renders_without_shell() {
        let t = CommandTemplate::parse(
            "deploy.update",
            "ssh {instance_host} 'sudo systemctl restart app@{version}' {{x}}",
            false,
            UPDATE,
        )
        .unwrap();
        let vars = Vars::new()
            .set(Placeholder::InstanceHost, "app-1")
            .set(Placeholder::Version, "1.2; rm -rf /");
        assert_eq!(
            t.render(&vars).unwrap(),
            vec![
                "ssh",
                "app-1",
                "sudo systemctl restart app@1.2; rm -rf /",
                "{x}"
            ]
        );
        assert!(t.uses(Placeholder::Version));
        assert!(!t.uses(Placeholder::Color));
    }

    #[test]
    fn shell_mode_quotes_values() {
        let t = CommandTemplate::parse("k", "echo {version} > /tmp/v", true, UPDATE).unwrap();
        let argv = t
            .render(&Vars::new().set(Placeholder::Version, "it's $(x)"))
            .unwrap();
        assert_eq!(argv, vec!["sh", "-c", "echo 'it'\\''s $(x)' > /tmp/v"]);
    }

    #[test]
    fn unknown_or_unavailable_placeholders_are_errors() {
        let err = CommandTemplate::parse("k", "x {verison}", false, UPDATE).unwrap_err();
        assert_eq!(
            err,
            "unknown placeholder `{verison}`, did you mean `{version}`?"
        );
        let err = CommandTemplate::parse("k", "x {percent}", false, UPDATE).unwrap_err();
        assert!(err.starts_with("`{percent}` has no value here"), "{err}");
        assert!(CommandTemplate::parse("k", "x {version", false, UPDATE).is_err());
        assert!(CommandTemplate::parse("k", "  ", false, UPDATE).is_err());
        let t =
            CommandTemplate::parse("deploy.update", "x {previous_version}", false, UPDATE).unwrap();
        assert!(
            t.render(&Vars::new())
                .unwrap_err()
                .contains("`{previous_version}` has no value")
        );
    }

    #[test]
    fn redacts_urls_with_passwords() {
        assert_eq!(
            redact_credentials("connecting to postgres://app:hunter2@db:5432/x ok"),
            "connecting to postgres://app:***@db:5432/x ok"
        );
        assert_eq!(
            redact_credentials("http://host:80/path"),
            "http://host:80/path"
        );
    }

    #[tokio::test]
    async fn runs_captures_and_times_out() {
        let argv = |s: &str| crate::config::split_command(s).unwrap();
        let ok = run(
            &argv("sh -c 'echo one; echo two >&2'"),
            Duration::from_secs(5),
            "t",
        )
        .await;
        assert!(ok.success, "{ok:?}");
        assert_eq!(ok.status, "exit 0");
        assert!(
            ok.output.contains("one") && ok.output.contains("two"),
            "{ok:?}"
        );
        let failed = run(&argv("sh -c 'exit 3'"), Duration::from_secs(5), "t").await;
        assert_eq!((failed.success, failed.status.as_str()), (false, "exit 3"));
        let slow = run(
            &argv("sh -c 'sleep 5; echo late'"),
            Duration::from_millis(200),
            "t",
        )
        .await;
        assert!(!slow.success);
        assert_eq!(slow.status, "timed out after 200ms");
        assert!(slow.duration < Duration::from_secs(4), "{slow:?}");
        let missing = run(&argv("/no/such/program"), Duration::from_secs(1), "t").await;
        assert!(
            missing
                .status
                .starts_with("cannot start `/no/such/program`"),
            "{missing:?}"
        );
    }
}
