//! Connections: one place that opens every PostgreSQL session restage uses, so that the rules
//! for each side hold everywhere. A source session is always read-only; a target session is
//! tuned for bulk loading. TLS follows libpq's `sslmode` names, including `verify-ca` and
//! `verify-full`, which tokio-postgres does not parse itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgEndpoint;

pub mod snapshot;

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

/// TLS as libpq names it. `prefer` and `require` encrypt without checking the certificate
/// (libpq does the same unless a root certificate is given); `verify-ca` checks the chain,
/// `verify-full` the chain and the host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa(Option<PathBuf>),
    VerifyFull(Option<PathBuf>),
}

impl TlsMode {
    /// Takes `sslmode` and `sslrootcert` out of a connection string (URL or key=value) and
    /// returns the string tokio-postgres can parse, with `sslmode` set to what it understands.
    pub fn extract(raw: &str) -> Result<(String, TlsMode), String> {
        let mut mode = None::<String>;
        let mut root = None::<PathBuf>;
        let raw = raw.trim();
        let cleaned = if raw.contains("://") {
            let (base, query) = match raw.split_once('?') {
                Some((b, q)) => (b, q),
                None => (raw, ""),
            };
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("sslmode", v)) => mode = Some(v.to_string()),
                    Some(("sslrootcert", v)) => root = Some(PathBuf::from(percent_decode(v))),
                    _ => kept.push(pair.to_string()),
                }
            }
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            let mut kept = Vec::new();
            for word in raw.split_whitespace() {
                match word.split_once('=') {
                    Some(("sslmode", v)) => mode = Some(v.trim_matches('\'').to_string()),
                    Some(("sslrootcert", v)) => root = Some(PathBuf::from(v.trim_matches('\''))),
                    _ => kept.push(word),
                }
            }
            kept.join(" ")
        };
        let mode = match mode.as_deref() {
            None | Some("prefer") | Some("allow") => TlsMode::Prefer,
            Some("disable") => TlsMode::Disable,
            Some("require") => TlsMode::Require,
            Some("verify-ca") => TlsMode::VerifyCa(root),
            Some("verify-full") => TlsMode::VerifyFull(root),
            Some(other) => {
                return Err(format!(
                    "unknown sslmode `{other}` (use disable, prefer, require, verify-ca or verify-full)"
                ));
            }
        };
        Ok((cleaned, mode))
    }

    fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    pub fn libpq_sslmode(&self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa(_) => "verify-ca",
            TlsMode::VerifyFull(_) => "verify-full",
        }
    }

    pub fn root_cert(&self) -> Option<&PathBuf> {
        match self {
            TlsMode::VerifyCa(Some(p)) | TlsMode::VerifyFull(Some(p)) => Some(p),
            _ => None,
        }
    }

    /// The rustls connector for this mode.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let config = match self {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(tls::AcceptAny(provider)))
                .with_no_client_auth(),
            TlsMode::VerifyCa(root) | TlsMode::VerifyFull(root) => {
                let roots = tls::root_store(root.as_ref())?;
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
                if matches!(self, TlsMode::VerifyCa(_)) {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(tls::ChainOnly(verifier)))
                        .with_no_client_auth()
                } else {
                    builder.with_webpki_verifier(verifier).with_no_client_auth()
                }
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

mod tls {
    use std::path::PathBuf;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    pub fn root_store(path: Option<&PathBuf>) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        match path {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
                let mut reader = std::io::BufReader::new(file);
                for cert in rustls_pemfile::certs(&mut reader) {
                    let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "sslrootcert {} holds no certificate",
                        path.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(roots)
    }

    /// `sslmode=prefer/require`: encrypt, do not authenticate the server (libpq's meaning).
    #[derive(Debug)]
    pub struct AcceptAny(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// `sslmode=verify-ca`: the chain must lead to a trusted root; the name is not checked.
    #[derive(Debug)]
    pub struct ChainOnly(pub Arc<rustls::client::WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                | Err(Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
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
    fn tls_mode_from_url() {
        let (s, m) = TlsMode::extract(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(s, "postgres://u@h/db?application_name=x");
        assert_eq!(m, TlsMode::VerifyFull(Some(PathBuf::from("/tmp/ca.pem"))));
        let (s, m) = TlsMode::extract("postgres://u@h/db").unwrap();
        assert_eq!(s, "postgres://u@h/db");
        assert_eq!(m, TlsMode::Prefer);
    }

    #[test]
    fn tls_mode_from_key_value() {
        let (s, m) = TlsMode::extract("host=h sslmode=require dbname=d").unwrap();
        assert_eq!(s, "host=h dbname=d");
        assert_eq!(m, TlsMode::Require);
        assert!(TlsMode::extract("host=h sslmode=bogus").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("Weird \"Name\""), "\"Weird \"\"Name\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
