//! Connections: one place that opens every PostgreSQL session restage uses, so that the rules
//! for each side hold everywhere. A source session is always read-only; a target session is
//! tuned for bulk loading.
//!
//! ```text
//! endpoint.rs   PgEndpoint (a server, its password kept out of every display) + TlsMode
//! tls.rs        the rustls verifiers behind libpq's sslmode names
//! mod.rs        Role, session settings, connect, the target pool, DbError, SQL quoting
//! ```
//!
//! The cut: db depends on no other restage module but the foundations. A configuration value
//! becomes a [`PgEndpoint`] through [`PgEndpoint::parse`], which `config` calls; db never
//! reads the configuration.

mod endpoint;
pub mod snapshot;
mod tls;

use std::time::Duration;

use tokio_postgres::Client;

pub use endpoint::{PgEndpoint, TlsMode};

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

/// A driver error as one line: the server's message with its detail and hint, or the
/// driver's own description (connection refused, closed, …). Printed once, not as a chain.
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut out = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                out.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                out.push_str(&format!("; hint: {hint}"));
            }
            out
        }
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
            match last {
                Some(root) if !text.contains(&root) => format!("{text}: {root}"),
                _ => text,
            }
        }
    }
}

/// The driver config for a session of `role` on `endpoint`.
pub fn session_config(endpoint: &PgEndpoint, role: Role) -> tokio_postgres::Config {
    let mut config = endpoint.config.clone();
    config.ssl_mode(endpoint.tls.driver_mode());
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

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("Weird \"Name\""), "\"Weird \"\"Name\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
