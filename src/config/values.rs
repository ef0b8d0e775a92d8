//! Values that are resolved only when a command needs them: `${VAR}` and `${VAR:-default}`
//! from the environment, `file:/path` (a secret file), and `cmd:...` (a secret manager's
//! command, run without a shell). One place knows how a value becomes a [`Secret`], and that
//! the value itself never appears in an error.

use std::fmt;
use std::process::Command;

use serde::Deserialize;

use super::ConfigError;
use crate::secret::{Secret, redact_url};
use crate::yaml::Location;

/// A configuration string that may be `${VAR}`-interpolated, `file:/path` or `cmd:...`.
/// Kept raw until a command needs it. Its `Debug` (what a panic message would show) never
/// shows a value that could be a secret written inline: URLs are redacted, `cmd:` lines
/// (whose arguments may carry a token) and plain values are hidden; only `file:` paths and
/// pure `${VAR}` references are shown as written.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RawValue(String);

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0.trim();
        let pure_reference = raw.starts_with("${")
            && raw.ends_with('}')
            && raw[2..raw.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if raw.starts_with("file:") || pure_reference {
            write!(f, "RawValue({raw})")
        } else if raw.starts_with("cmd:") {
            f.write_str("RawValue(cmd:***)")
        } else if raw.contains("://") {
            write!(f, "RawValue({})", redact_url(raw))
        } else {
            f.write_str("RawValue(***)")
        }
    }
}

impl RawValue {
    pub fn new(raw: impl Into<String>) -> Self {
        RawValue(raw.into())
    }

    /// Resolves the value. `key` and `location` name it in errors; the value itself never
    /// appears in an error.
    pub fn resolve(&self, key: &str, location: &Location) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError::Value {
            location: location.clone(),
            key: key.to_string(),
            message,
        };
        let raw = self.0.trim();
        if let Some(path) = raw.strip_prefix("file:") {
            let path = interpolate(path).map_err(&err)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("cannot read secret file {path}: {e}")))?;
            return Ok(Secret::new(text.trim_end_matches(['\n', '\r'])));
        }
        if let Some(command) = raw.strip_prefix("cmd:") {
            return run_secret_command(command.trim()).map_err(err);
        }
        interpolate(raw).map(Secret::new).map_err(err)
    }
}

/// Substitutes `${VAR}` and `${VAR:-default}` from the environment. An unset variable without a
/// default is an error naming it.
pub fn interpolate(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` (expected `${NAME}`)".to_string())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{inner}}}` is not a valid variable reference"));
        }
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs a `cmd:` value (split like a shell would for simple words and quotes, but without a
/// shell) and returns its stdout. Its output is a secret; its stderr is not shown either, since
/// secret managers sometimes echo what they were asked for.
fn run_secret_command(command: &str) -> Result<Secret, String> {
    let words = split_command(command)?;
    let Some((program, args)) = words.split_first() else {
        return Err("`cmd:` is empty".to_string());
    };
    let output = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program}` failed with {} (its output is not shown, it may hold secrets)",
            output.status
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| format!("`{program}` printed something that is not UTF-8"))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Splits a command line into words as a POSIX shell does, with the `shell-words` crate
/// (issue 15: the splitter the ecosystem relies on, rather than ours): blanks separate,
/// single quotes keep everything, double quotes keep everything but `\$`, `\``, `\"`, `\\`
/// and `\newline`, a backslash outside quotes escapes the next character, and an unquoted `#`
/// at the start of a word begins a comment. No variables, globs, pipes or redirections: the
/// words are run as they are, without a shell.
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    shell_words::split(command)
        .map_err(|_| "unterminated quote in command (a `'` or `\"` is not closed)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        // SAFETY: test-local variable names, not read by other tests.
        unsafe { std::env::set_var("RESTAGE_TEST_INTERP_A", "alpha") };
        assert_eq!(
            interpolate("x-${RESTAGE_TEST_INTERP_A}-y").unwrap(),
            "x-alpha-y"
        );
        assert_eq!(
            interpolate("${RESTAGE_TEST_INTERP_UNSET:-fallback}").unwrap(),
            "fallback"
        );
        assert_eq!(
            interpolate("${RESTAGE_TEST_INTERP_UNSET}").unwrap_err(),
            "environment variable RESTAGE_TEST_INTERP_UNSET is not set"
        );
    }

    #[test]
    fn commands_split_like_a_posix_shell() {
        let split = |s: &str| split_command(s).unwrap();
        assert_eq!(split("  a  b\tc\n d "), ["a", "b", "c", "d"]);
        assert_eq!(split("printf '%s' 'sec ret'"), ["printf", "%s", "sec ret"]);
        assert_eq!(split("a'b c'\"d e\"f"), ["ab cd ef"]);
        assert_eq!(split("say \"it's\" 'a \"b\"'"), ["say", "it's", "a \"b\""]);
        // In double quotes a backslash escapes only $ ` " \ (as in sh); elsewhere anything.
        assert_eq!(split(r#""a\"b\\c\d\$e""#), [r#"a"b\c\d$e"#]);
        assert_eq!(split(r"a\ b\'c"), ["a b'c"]);
        assert_eq!(split("'' \"\""), ["", ""]);
        assert_eq!(split("run # a comment"), ["run"]);
        assert_eq!(split("run a#b"), ["run", "a#b"]);
        assert!(split("").is_empty() && split("  \t").is_empty());
        for bad in ["'open", "\"open", "a \"b 'c\" 'd"] {
            let err = split_command(bad).unwrap_err();
            assert!(err.contains("unterminated quote"), "{bad}: {err}");
        }
    }

    #[test]
    fn cmd_values_run_without_shell() {
        let v = RawValue::new("cmd: printf '%s' 'sec ret'");
        let loc = Location {
            file: "x".into(),
            line: 1,
            column: 1,
        };
        assert_eq!(v.resolve("secret", &loc).unwrap().expose(), "sec ret");
        let failing = RawValue::new("cmd:false");
        let err = failing.resolve("secret", &loc).unwrap_err().to_string();
        assert!(err.contains("`false` failed"), "{err}");
    }
}
