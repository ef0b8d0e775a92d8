//! A PostgreSQL server to connect to: [`PgEndpoint`], parsed from a libpq URL or key=value
//! string, with its password kept out of every display, and the TLS mode the user asked for
//! ([`TlsMode`]), including the libpq `sslmode` names `verify-ca` and `verify-full`, which
//! tokio-postgres does not parse itself.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls;
use crate::secret::{Secret, UrlParts, parse_key_value, redact_url};

/// A PostgreSQL server to connect to, with its password kept out of any display.
#[derive(Clone)]
pub struct PgEndpoint {
    pub config: tokio_postgres::Config,
    /// `user@host:port/dbname`, never with a password: what errors and logs show.
    pub display: String,
    /// The TLS mode the user asked for, including modes tokio-postgres does not parse.
    pub tls: TlsMode,
}

impl fmt::Debug for PgEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgEndpoint({})", self.display)
    }
}

impl fmt::Display for PgEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl PgEndpoint {
    /// Parses a libpq URL or key=value string, as libpq parses it. Errors never include the
    /// string's secrets: a URL is shown redacted ([`redact_url`]), a key=value string not at
    /// all (it may be a bare secret: a `cmd:` or variable that gave the password instead).
    ///
    /// A URL whose `@` cannot be placed ([`UrlParts::ambiguity`]: a password holding an
    /// unencoded `@` or `/`) is refused with no part of its authority shown. Such a URL does
    /// not connect with libpq either (its host part holds the rest of the password); refusing
    /// it keeps that rest out of every error, log line and report, where it would show as a
    /// host name. Once those are refused, tokio-postgres (which takes the first `@` anywhere)
    /// and libpq (the first before any `/`) read every URL alike.
    pub fn parse(raw: &Secret) -> Result<PgEndpoint, String> {
        let trimmed = raw.expose().trim();
        if let Some(parts) = UrlParts::split(trimmed)
            && let Some(why) = parts.ambiguity()
        {
            return Err(format!(
                "not a valid PostgreSQL connection string ({}): {why}",
                parts.redacted()
            ));
        }
        let (cleaned, tls) = TlsMode::extract(raw.expose())?;
        let config = tokio_postgres::Config::from_str(&cleaned).map_err(|e| {
            if trimmed.contains("://") {
                format!(
                    "not a valid PostgreSQL connection string ({}): {}",
                    redact_url(trimmed),
                    shown_parse_error(trimmed, &e)
                )
            } else {
                format!(
                    "not a valid PostgreSQL connection string: {} (expected postgres://user@host:port/database or key=value pairs; the value is not shown, it may be a secret)",
                    shown_parse_error(trimmed, &e)
                )
            }
        })?;
        Ok(PgEndpoint::from_config(config, tls))
    }

    pub fn from_config(config: tokio_postgres::Config, tls: TlsMode) -> PgEndpoint {
        let display = describe_pg(&config);
        PgEndpoint {
            config,
            display,
            tls,
        }
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, dbname: &str) -> PgEndpoint {
        let mut config = self.config.clone();
        config.dbname(dbname);
        PgEndpoint::from_config(config, self.tls.clone())
    }

    pub fn dbname(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| self.config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".to_string())
    }

    pub fn host_string(&self) -> String {
        use tokio_postgres::config::Host;
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        }
    }

    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// Same server (host and port) as `other`.
    pub fn same_server(&self, other: &PgEndpoint) -> bool {
        normalize_host(&self.host_string()) == normalize_host(&other.host_string())
            && self.port() == other.port()
    }

    /// libpq environment variables for pg_dump / pg_restore, so that the password travels in
    /// the child's environment, not its command line (which `ps` shows to every user).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host_string()),
            ("PGPORT", self.port().to_string()),
            ("PGDATABASE", self.dbname()),
        ];
        if let Some(user) = self.config.get_user() {
            env.push(("PGUSER", user.to_string()));
        }
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        if let Some(name) = self.config.get_application_name() {
            env.push(("PGAPPNAME", name.to_string()));
        }
        env.push(("PGSSLMODE", self.tls.libpq_sslmode().to_string()));
        if let Some(root) = self.tls.root_cert() {
            env.push(("PGSSLROOTCERT", root.display().to_string()));
        }
        env.push((
            "PGCONNECT_TIMEOUT",
            self.config
                .get_connect_timeout()
                .map(|d| d.as_secs().max(1))
                .unwrap_or(10)
                .to_string(),
        ));
        env
    }
}

/// libpq's connection parameters (PostgreSQL 15 and 16), for telling a mistyped parameter
/// name from a value written where a name should be.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "sslcertmode",
    "require_auth",
];

/// The driver's parse error, when it can be shown: it names a parameter the string holds,
/// and a name that is no libpq parameter may be a secret written in its place (`hunter2=x`),
/// so then only what kind of mistake it is.
fn shown_parse_error(raw: &str, e: &tokio_postgres::Error) -> String {
    let keys: Vec<String> = match UrlParts::split(raw) {
        Some(parts) => parts
            .query
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_string()))
            .collect(),
        None => parse_key_value(raw)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    };
    match keys.iter().find(|k| !LIBPQ_KEYWORDS.contains(&k.as_str())) {
        Some(unknown) => match crate::yaml::did_you_mean(unknown, LIBPQ_KEYWORDS) {
            Some(near) => format!("unknown parameter `{unknown}`, did you mean `{near}`?"),
            None => "a parameter name libpq does not know (not shown: it may be a secret)".into(),
        },
        None if parse_key_value(raw).is_none() && !raw.contains("://") => {
            "a parameter without `=`, or a quote that does not end".to_string()
        }
        None => e.to_string(),
    }
}

fn normalize_host(h: &str) -> String {
    match h {
        "localhost" | "127.0.0.1" | "::1" => "localhost".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn describe_pg(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    if user.is_empty() {
        format!("{host}:{port}/{db}")
    } else {
        format!("{user}@{host}:{port}/{db}")
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
            // Split as libpq splits it (quotes, backslashes, spaces around `=`), and written
            // back quoted, so a quoted value with spaces or an `sslmode=` inside it stays
            // whole. One libpq refuses is passed on as it is, for the driver to refuse.
            match parse_key_value(raw) {
                Some(pairs) => {
                    let mut kept = Vec::new();
                    for (key, value) in pairs {
                        match key.as_str() {
                            "sslmode" => mode = Some(value),
                            "sslrootcert" => root = Some(PathBuf::from(value)),
                            _ => kept.push(format!(
                                "{key}='{}'",
                                value.replace('\\', "\\\\").replace('\'', "\\'")
                            )),
                        }
                    }
                    kept.join(" ")
                }
                None => raw.to_string(),
            }
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

    pub(super) fn driver_mode(&self) -> tokio_postgres::config::SslMode {
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
        assert_eq!(s, "host='h' dbname='d'");
        assert_eq!(m, TlsMode::Require);
        assert!(TlsMode::extract("host=h sslmode=bogus").is_err());
        // Quoted values stay whole: two spaces, a quote, a backslash, an `sslmode=` inside.
        let (s, m) = TlsMode::extract(
            "host=h password = 'a  b\\'c\\\\ sslmode=disable' sslmode = verify-ca",
        )
        .unwrap();
        assert_eq!(m, TlsMode::VerifyCa(None));
        let config = tokio_postgres::Config::from_str(&s).unwrap();
        assert_eq!(
            config.get_password(),
            Some(&b"a  b'c\\ sslmode=disable"[..])
        );
    }

    /// Issue 11: what tokio-postgres and libpq would read differently, or what would put a
    /// piece of a password in the display, is refused, showing nothing of the authority.
    #[test]
    fn urls_whose_at_sign_cannot_be_placed_are_refused() {
        for url in [
            "postgresql://user:Pw0rd@QzX81kLmZ@host/db",
            "postgres://u:12/34@h/db",
            "postgres://h/db@x",
        ] {
            let err = PgEndpoint::parse(&Secret::new(url)).unwrap_err();
            assert!(err.contains("://***): "), "{url}: {err}");
            assert!(
                !err.contains("Pw0rd") && !err.contains("34") && !err.contains("db"),
                "{err}"
            );
        }
        let e = PgEndpoint::parse(&Secret::new("postgresql://user:Pw0rd%40QzX@host/db")).unwrap();
        assert_eq!(e.display, "user@host:5432/db");
        assert_eq!(e.config.get_password(), Some(&b"Pw0rd@QzX"[..]));
        let e = PgEndpoint::parse(&Secret::new("postgres://h/db?password=Pw%40rd")).unwrap();
        assert_eq!(e.config.get_password(), Some(&b"Pw@rd"[..]));
    }

    #[test]
    fn pg_endpoint_display_hides_password() {
        let e =
            PgEndpoint::parse(&Secret::new("postgres://alice:pw123@db.example:6543/prod")).unwrap();
        assert_eq!(e.display, "alice@db.example:6543/prod");
        assert!(!format!("{e:?}").contains("pw123"));
        let bad =
            PgEndpoint::parse(&Secret::new("postgres://alice:pw123@db:notaport/x")).unwrap_err();
        assert!(!bad.contains("pw123"), "{bad}");
    }
}
