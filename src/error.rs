//! The top-level error and its exit code (5, staging live but a later step failed, is a
//! refresh's report rather than an error: see [`exit::LIVE_BUT`]). Every variant names the thing at fault (file, table,
//! column, server); `main` prints it once and exits with [`Error::exit_code`].
//!
//! The cut: this sits above the modules whose errors it wraps (config, db) and below the
//! stages and commands that return it. config, db and the foundations keep their own error
//! types and never import this one, so they can be read and tested without the rest.

use crate::config::ConfigError;
use crate::db::DbError;

/// Exit codes of the spec.
pub mod exit {
    pub const OK: i32 = 0;
    /// Database, network or I/O failure.
    pub const RUNTIME: i32 = 1;
    /// Bad config, rules or usage.
    pub const USAGE: i32 = 2;
    /// Verification failed: a leak, a broken foreign key, counts off plan.
    pub const VERIFY: i32 = 3;
    /// Another restage command holds the lock for that staging database.
    pub const LOCKED: i32 = 4;
    /// Staging went live with the new data, but a step after the swap failed (the cache was
    /// not warmed, old generations were not dropped, the report file could not be written,
    /// a signal came during the swap's commit). Not in the spec's first list (0–4): added
    /// because exit 1 reads as "staging unchanged".
    pub const LIVE_BUT: i32 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Rules that do not load or do not fit the schema; one line per problem (the first
    /// [`crate::yaml::MAX_PROBLEMS_SHOWN`], then a count of the others).
    #[error("{}", crate::yaml::list_problems(.0))]
    Rules(Vec<String>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(String),
    #[error("verification failed: {0}")]
    Verify(String),
    #[error("{0}")]
    Locked(String),
    /// SIGINT or SIGTERM stopped the run; `outcome` says what state it left.
    #[error("interrupted by {signal}: {outcome}")]
    Interrupted {
        signal: &'static str,
        outcome: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one error format of every command (issue 15): each line of the message on stderr as
/// `restage: error: LINE` (a multi-line message, such as the problems of a rules file, has
/// every line prefixed, so `grep 'restage: error'` finds them all). With `--json`, the same
/// also goes to stdout as one document ([`error_document`]).
pub fn print_error(message: &str) {
    print_lines("error", message);
}

/// A warning in the same format: `restage: warning: LINE`.
pub fn print_warning(message: &str) {
    print_lines("warning", message);
}

fn print_lines(level: &str, message: &str) {
    let mut lines = message.lines().filter(|l| !l.trim().is_empty()).peekable();
    if lines.peek().is_none() {
        crate::output::errln!("restage: {level}: (no message)");
    }
    for line in lines {
        crate::output::errln!("restage: {level}: {line}");
    }
}

/// The `--json` form of a failed command, on stdout: `outcome` (`error`), `exit_code`, `kind`
/// (config, rules, usage, database, io, runtime, verification, locked, interrupted),
/// `error` (the message) and `errors` (its lines).
pub fn error_document(kind: &str, exit_code: i32, message: &str) -> serde_json::Value {
    serde_json::json!({
        "outcome": "error",
        "exit_code": exit_code,
        "kind": kind,
        "error": message,
        "errors": message.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
    })
}

/// Prints `err` in the one format, and with `json` its document on stdout.
pub fn report(err: &Error, json: bool) {
    let message = err.to_string();
    print_error(&message);
    if json {
        crate::output::outln!("{}", error_document(err.kind(), err.exit_code(), &message));
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Rules(_) | Error::Usage(_) => exit::USAGE,
            Error::Verify(_) => exit::VERIFY,
            Error::Locked(_) => exit::LOCKED,
            Error::Db(_) | Error::Io { .. } | Error::Runtime(_) | Error::Interrupted { .. } => {
                exit::RUNTIME
            }
        }
    }

    /// What kind of failure, for `--json` documents.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Rules(_) => "rules",
            Error::Usage(_) => "usage",
            Error::Db(_) => "database",
            Error::Io { .. } => "io",
            Error::Runtime(_) => "runtime",
            Error::Verify(_) => "verification",
            Error::Locked(_) => "locked",
            Error::Interrupted { .. } => "interrupted",
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Rules(vec!["x".into()]).exit_code(), 2);
        assert_eq!(Error::Verify("x".into()).exit_code(), 3);
        assert_eq!(Error::Locked("x".into()).exit_code(), 4);
        assert_eq!(Error::Runtime("x".into()).exit_code(), 1);
    }

    #[test]
    fn error_documents_carry_outcome_and_exit_code() {
        let doc = error_document("rules", 2, "a: no such column\nb: no such table\n");
        assert_eq!(doc["outcome"], "error");
        assert_eq!(doc["exit_code"], 2);
        assert_eq!(doc["errors"].as_array().map(Vec::len), Some(2));
    }
}
