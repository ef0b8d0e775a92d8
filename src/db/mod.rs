//! Connections: one place that opens every PostgreSQL session restage uses, so that the rules
//! for each side hold everywhere. A source session is always read-only; a target session is
//! tuned for bulk loading.
//!
//! ```text
//! endpoint.rs   PgEndpoint (a server, its password kept out of every display) + Tls
//! libpq.rs      connection strings completed as libpq does (PG*, service, .pgpass, defaults)
//! tls.rs        the rustls verifiers behind libpq's sslmode names, client certificates
//! mod.rs        Role, session settings, connect, the target pool, DbError, SQL quoting
//! ```
//!
//! The cut: db depends on no other restage module but the foundations. A configuration value
//! becomes a [`PgEndpoint`] through [`PgEndpoint::parse`], which `config` calls; db never
//! reads the configuration.

mod endpoint;
pub mod libpq;
pub mod snapshot;
mod tls;

use std::time::Duration;

use tokio_postgres::Client;

use crate::secret::redact_text;

pub use endpoint::{PgEndpoint, Tls, TlsMode};

/// What a session is for; decides its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Production: `default_transaction_read_only=on`, so even a bug cannot write; row
    /// security off, so a policy cannot silently hide rows (the query fails instead); no
    /// idle-in-transaction or statement timeout, so the snapshot outlives a long table.
    Source,
    /// The staging server (maintenance connection or the database being built).
    Target,
}

/// A connection failure or a failed statement, naming the server (never its password).
#[derive(Debug)]
pub struct DbError {
    pub server: String,
    pub context: String,
    pub source: Option<tokio_postgres::Error>,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {}: {}", self.server, self.context, describe(source)),
            None => write!(f, "{}: {}", self.server, self.context),
        }
    }
}

impl std::error::Error for DbError {}

impl DbError {
    pub fn new(
        server: impl Into<String>,
        context: impl Into<String>,
        source: tokio_postgres::Error,
    ) -> Self {
        DbError {
            server: server.into(),
            context: context.into(),
            source: Some(source),
        }
    }

    /// A failure on that server that is not a driver error (a TLS setup problem, a check).
    pub fn other(server: impl Into<String>, context: impl Into<String>) -> Self {
        DbError {
            server: server.into(),
            context: context.into(),
            source: None,
        }
    }

    /// The SQLSTATE, when the server sent one.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.source.as_ref().and_then(|s| s.code())
    }

    /// The connection is gone (network cut, server restart, killed backend): the kind of
    /// failure a retry on a new connection can fix.
    pub fn is_connection_lost(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match &self.source {
            Some(e) => {
                e.is_closed()
                    || e.as_db_error().is_none() && e.code().is_none()
                    || matches!(
                        e.code(),
                        Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                            || *c == SqlState::CRASH_SHUTDOWN
                            || *c == SqlState::CONNECTION_FAILURE
                            || *c == SqlState::CONNECTION_EXCEPTION
                    )
            }
            None => false,
        }
    }
}

/// A driver error as one line: the server's message with the fields that cannot hold row
/// values, or the driver's own description (connection refused, closed, …). Printed once,
/// not as a chain; connection strings in it are redacted ([`redact_text`]).
///
/// **No production value in a message (issue 11).** A server error's DETAIL, CONTEXT and HINT
/// can quote rows (`Key (customer_id)=(ALFKI) is not present in table "customers"`, COPY's
/// `line 1, column email: "jane@…"`, a deadlock's queries), and for some classes the message
/// itself quotes the value (`invalid input syntax for type integer: "…"`). What is shown is
/// decided by the SQLSTATE class and the field, never by the text:
/// - CONTEXT (`where_`) is never shown;
/// - DETAIL and HINT only for the classes that describe the server, a session or the schema
///   ([`SCHEMA_CLASSES`]: connection, authentication, privileges and names, resources, locks
///   and objects in use, operator intervention);
/// - the message is replaced by what its SQLSTATE means for the classes whose messages quote
///   values ([`VALUE_CLASSES`]: data exceptions, errors raised by functions and triggers);
/// - in their place, the row-free fields the server sends: the constraint, the table, the
///   column and the type involved.
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => describe_server_error(db),
        None => {
            let text = err.to_string();
            // Walk to the root cause for I/O errors ("Connection refused"), which the
            // top-level Display omits.
            let mut cause = std::error::Error::source(err);
            let mut last = None;
            while let Some(c) = cause {
                last = Some(c.to_string());
                cause = c.source();
            }
            redact_text(&match last {
                Some(root) if !text.contains(&root) => format!("{text}: {root}"),
                _ => text,
            })
        }
    }
}

/// SQLSTATE classes whose DETAIL and HINT describe the server, a session or the schema, never
/// rows: 08 connection, 0A unsupported feature, 28 authorization, 2B dependent objects, 3D
/// database, 3F schema, 42 syntax and access rules, 53 resources, 54 program limits, 55 object
/// state (locks, objects in use), 57 operator intervention, 58 system errors, F0 config files.
pub const SCHEMA_CLASSES: &[&str] = &[
    "08", "0A", "28", "2B", "3D", "3F", "42", "53", "54", "55", "57", "58", "F0",
];

/// SQLSTATE classes whose message itself can quote a value: 22 data exceptions, 38 and 39
/// external routines, 2F SQL routines, P0 PL/pgSQL (`RAISE` with the row's fields).
pub const VALUE_CLASSES: &[&str] = &["22", "2F", "38", "39", "P0"];

/// One server error, shown by class and field (see [`describe`]).
pub fn describe_server_error(db: &tokio_postgres::error::DbError) -> String {
    let code = db.code().code();
    let class = code.get(..2).unwrap_or("");
    let mut out = if VALUE_CLASSES.contains(&class) {
        format!(
            "{}: {} (SQLSTATE {code}; the server's message is not shown: it can hold a value)",
            db.severity(),
            meaning(code)
        )
    } else {
        format!("{}: {}", db.severity(), redact_text(db.message()))
    };
    let mut facts = Vec::new();
    if let Some(constraint) = db.constraint() {
        facts.push(format!("constraint {}", quote_ident(constraint)));
    }
    match (db.schema(), db.table()) {
        (Some(schema), Some(table)) => facts.push(format!(
            "table {}.{}",
            quote_ident(schema),
            quote_ident(table)
        )),
        (None, Some(table)) => facts.push(format!("table {}", quote_ident(table))),
        _ => {}
    }
    if let Some(column) = db.column() {
        facts.push(format!("column {}", quote_ident(column)));
    }
    if let Some(datatype) = db.datatype() {
        facts.push(format!("type {datatype}"));
    }
    if !facts.is_empty() {
        out.push_str(&format!(" [{}]", facts.join(", ")));
    }
    if SCHEMA_CLASSES.contains(&class) {
        if let Some(detail) = db.detail() {
            out.push_str(&format!(" ({})", redact_text(detail)));
        }
        if let Some(hint) = db.hint() {
            out.push_str(&format!("; hint: {}", redact_text(hint)));
        }
    }
    out
}

/// What a SQLSTATE of [`VALUE_CLASSES`] means, in place of the server's message.
fn meaning(code: &str) -> &'static str {
    match code {
        "22001" => "a value is too long for its column's type",
        "22003" => "a number is out of range for its type",
        "22004" => "a NULL is not allowed here",
        "22007" | "22008" => "a date or time is not valid or out of range",
        "22012" => "division by zero",
        "22021" => "a value holds bytes that are not valid in the encoding",
        "22023" => "an invalid parameter value",
        "22026" => "a value does not have the length its type requires",
        "2202E" => "an array subscript is out of range",
        "22P02" => "a value is not valid input for its type",
        "22P03" => "a value in binary form is not valid for its type",
        "22P04" => "the COPY data is not in the format it says",
        "22P05" => "a character cannot be represented in the encoding",
        "P0001" => "an error raised by a function or trigger (RAISE)",
        _ => match code.get(..2) {
            Some("22") => "a data exception",
            Some("P0") => "an error in a PL/pgSQL function or trigger",
            _ => "an error in a function",
        },
    }
}

/// A tool's stderr (pg_dump, pg_restore) without the fields of server errors that can hold
/// rows. libpq prints a server error as `ERROR:  message`, then `DETAIL:`, `HINT:`, `QUERY:`
/// and `CONTEXT:` lines; those fields, and the lines that continue them (a value can hold a
/// newline), are left out up to the tool's next line of its own (`pg_restore: …`,
/// `Command was: …`). The tool does not say the SQLSTATE, so the message line itself is
/// kept: the failures of the post-data section (a unique index, a foreign key, a constraint)
/// have messages that name objects, not values. Connection strings are redacted.
pub fn tool_stderr(text: &str) -> String {
    const FIELDS: &[&str] = &["DETAIL:", "HINT:", "QUERY:", "CONTEXT:", "LINE "];
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if FIELDS.iter().any(|f| trimmed.starts_with(f)) {
            skipping = true;
            continue;
        }
        if ["pg_restore:", "pg_dump:", "pg_dumpall:", "Command was:"]
            .iter()
            .any(|p| line.starts_with(p))
        {
            skipping = false;
        }
        if !skipping {
            out.push(redact_text(line));
        }
    }
    out.join("\n")
}

/// The driver config for a session of `role` on `endpoint`.
pub fn session_config(endpoint: &PgEndpoint, role: Role) -> tokio_postgres::Config {
    let mut config = endpoint.config.clone();
    config.ssl_mode(endpoint.driver_ssl_mode());
    if config.get_application_name().is_none() {
        config.application_name("restage");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    // Fixed output and input formats on both sides, so values travel as text exactly (and
    // transforms that parse dates, intervals or money see one format): ISO dates, UTC,
    // C money, floats that round-trip.
    const FORMATS: &str = "-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c TimeZone=UTC -c lc_monetary=C -c extra_float_digits=3";
    let user_options = config.get_options().unwrap_or("").to_string();
    let ours = match role {
        Role::Source => {
            "-c default_transaction_read_only=on -c row_security=off -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0"
        }
        Role::Target => {
            "-c synchronous_commit=off -c statement_timeout=0 -c idle_in_transaction_session_timeout=0"
        }
    };
    config.options(format!("{user_options} {FORMATS} {ours}").trim());
    config
}

/// Opens one session. Its connection task runs on the tokio runtime until the client drops.
pub async fn connect(endpoint: &PgEndpoint, role: Role) -> Result<Client, DbError> {
    let config = session_config(endpoint, role);
    let connector = endpoint
        .tls
        .connector()
        .map_err(|message| DbError::other(&endpoint.display, message))?;
    let (client, connection) = config
        .connect(connector)
        .await
        .map_err(|e| DbError::new(&endpoint.display, "cannot connect", e))?;
    let server = endpoint.display.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(server = %server, error = %describe(&e), "connection closed");
        }
    });
    Ok(client)
}

/// A pool of target sessions (deadpool), for stages that run many short statements or COPYs
/// against the database being built.
pub fn target_pool(endpoint: &PgEndpoint, size: usize) -> Result<deadpool_postgres::Pool, String> {
    let config = session_config(endpoint, Role::Target);
    let connector = endpoint.tls.connector()?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        connector,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| format!("{}: cannot build connection pool: {e}", endpoint.display))
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL (standard_conforming_strings on).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
#[cfg(test)]
mod tests {
    use super::*;

    /// pg_restore's report of a failed post-data statement, as libpq prints the server's
    /// error: the DETAIL (with the row's key) and CONTEXT fields go, continuation lines with
    /// them; the tool's own lines and the command stay; connection strings are redacted.
    #[test]
    fn tool_stderr_keeps_no_row_holding_field() {
        let stderr = "pg_restore: error: could not execute query: ERROR:  insert or update on table \"orders\" violates foreign key constraint \"orders_customer_id_fkey\"
DETAIL:  Key (customer_id)=(ALFKI) is not present in table \"customers\".
Command was: ALTER TABLE ONLY public.orders
    ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(customer_id);
pg_restore: error: could not execute query: ERROR:  could not create unique index \"users_email_key\"
DETAIL:  Key (email)=(jane@corp.example
with a newline) is duplicated.
CONTEXT:  parallel worker
Command was: CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email);
pg_dump: error: connection to postgresql://u:Pw0rd@h/db failed
pg_restore: warning: errors ignored on restore: 2";
        let shown = tool_stderr(stderr);
        for value in [
            "ALFKI",
            "jane@corp",
            "with a newline",
            "parallel worker",
            "Pw0rd",
        ] {
            assert!(!shown.contains(value), "{value}:\n{shown}");
        }
        for kept in [
            "violates foreign key constraint \"orders_customer_id_fkey\"",
            "Command was: ALTER TABLE ONLY public.orders",
            "    ADD CONSTRAINT orders_customer_id_fkey",
            "could not create unique index \"users_email_key\"",
            "Command was: CREATE UNIQUE INDEX users_email_key",
            "pg_dump: error: connection to postgresql://u:***@h/db failed",
            "pg_restore: warning: errors ignored on restore: 2",
        ] {
            assert!(shown.contains(kept), "{kept}:\n{shown}");
        }
    }

    #[test]
    fn value_classes_and_schema_classes_do_not_overlap() {
        for class in VALUE_CLASSES {
            assert!(!SCHEMA_CLASSES.contains(class), "{class}");
        }
        assert_eq!(meaning("22P02"), "a value is not valid input for its type");
        assert_eq!(meaning("22999"), "a data exception");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("Weird \"Name\""), "\"Weird \"\"Name\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
