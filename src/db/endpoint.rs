//! A PostgreSQL server to connect to: [`PgEndpoint`], parsed from a libpq URL or key=value
//! string and completed as libpq completes it ([`super::libpq`]), with its password kept out
//! of every display, and its TLS ([`Tls`]): the mode, including the libpq `sslmode` names
//! `verify-ca` and `verify-full` that tokio-postgres does not parse itself, and the
//! certificate files.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::libpq::{self, Env, RootCert, TlsFiles};
use super::tls;
use crate::secret::{Secret, UrlParts, redact_url};

/// A PostgreSQL server to connect to, with its password kept out of any display.
#[derive(Clone)]
pub struct PgEndpoint {
    pub config: tokio_postgres::Config,
    /// `user@host:port/dbname`, never with a password: what errors and logs show.
    pub display: String,
    /// The TLS mode the user asked for (including modes tokio-postgres does not parse) and
    /// the certificate files libpq would use.
    pub tls: Tls,
    /// The password file that gave the password, when one did (for messages).
    pub password_file: Option<PathBuf>,
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
    /// Parses a libpq URL or key=value string and completes it as libpq does (environment,
    /// service file, password file, defaults: see [`super::libpq`]), from this process's
    /// environment. Errors never include the string's secrets: a URL is shown redacted
    /// ([`redact_url`]), a key=value string not at all (it may be a bare secret: a `cmd:` or
    /// variable that gave the password instead).
    ///
    /// A URL whose `@` cannot be placed ([`UrlParts::ambiguity`]: a password holding an
    /// unencoded `@` or `/`) is refused with no part of its authority shown. Such a URL does
    /// not connect with libpq either (its host part holds the rest of the password); refusing
    /// it keeps that rest out of every error, log line and report, where it would show as a
    /// host name.
    pub fn parse(raw: &Secret) -> Result<PgEndpoint, String> {
        PgEndpoint::parse_with(raw, &Env::process())
    }

    /// [`PgEndpoint::parse`] with a given environment (tests).
    pub fn parse_with(raw: &Secret, env: &Env) -> Result<PgEndpoint, String> {
        let trimmed = raw.expose().trim();
        let is_url = trimmed.contains("://");
        let invalid = |why: String| {
            if is_url {
                format!(
                    "not a valid PostgreSQL connection string ({}): {why}",
                    redact_url(trimmed)
                )
            } else {
                format!(
                    "not a valid PostgreSQL connection string: {why} (expected postgres://user@host:port/database or key=value pairs; the value is not shown, it may be a secret)"
                )
            }
        };
        if let Some(parts) = UrlParts::split(trimmed)
            && let Some(why) = parts.ambiguity()
        {
            return Err(format!(
                "not a valid PostgreSQL connection string ({}): {why}",
                parts.redacted()
            ));
        }
        let pairs = libpq::split(trimmed).map_err(invalid)?;
        if let Some((unknown, _)) = pairs
            .iter()
            .find(|(k, _)| !LIBPQ_KEYWORDS.contains(&k.as_str()))
        {
            return Err(invalid(
                match crate::yaml::did_you_mean(unknown, LIBPQ_KEYWORDS) {
                    Some(near) => format!("unknown parameter `{unknown}`, did you mean `{near}`?"),
                    None => "a parameter name libpq does not know (not shown: it may be a secret)"
                        .into(),
                },
            ));
        }
        let resolved = libpq::resolve(pairs, env).map_err(invalid)?;
        for note in &resolved.notes {
            tracing::warn!("{note}");
        }
        let mode = TlsMode::from_name(resolved.get("sslmode").unwrap_or("prefer"))?;
        if resolved.get("sslpassword").is_some() {
            return Err(invalid(
                "sslpassword (an encrypted client key) is not supported: decrypt the key (`openssl pkey -in KEY -out KEY.plain`) and keep it mode 0600".into(),
            ));
        }
        let mut driver = resolved.driver_string();
        if resolved.get("application_name").is_none()
            && let Some(fallback) = resolved.get("fallback_application_name")
        {
            driver.push_str(&format!(
                " application_name='{}'",
                fallback.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        let config =
            tokio_postgres::Config::from_str(&driver).map_err(|e| invalid(e.to_string()))?;
        let files = TlsFiles::find(&resolved, env);
        let mut endpoint = PgEndpoint::from_config(config, Tls { mode, files });
        endpoint.password_file = resolved.password_file.clone();
        Ok(endpoint)
    }

    pub fn from_config(config: tokio_postgres::Config, tls: Tls) -> PgEndpoint {
        let display = describe_pg(&config);
        PgEndpoint {
            config,
            display,
            tls,
            password_file: None,
        }
    }

    /// Whether the (first) host is a Unix socket directory: libpq uses no TLS there.
    pub fn is_unix_socket(&self) -> bool {
        #[cfg(unix)]
        if let Some(tokio_postgres::config::Host::Unix(_)) = self.config.get_hosts().first() {
            return true;
        }
        false
    }

    /// The sslmode handed to the driver: none over a Unix socket, as in libpq.
    pub fn driver_ssl_mode(&self) -> tokio_postgres::config::SslMode {
        if self.is_unix_socket() {
            tokio_postgres::config::SslMode::Disable
        } else {
            self.tls.mode.driver_mode()
        }
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, dbname: &str) -> PgEndpoint {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let mut endpoint = PgEndpoint::from_config(config, self.tls.clone());
        endpoint.password_file = self.password_file.clone();
        endpoint
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
            None => match self.config.get_hostaddrs().first() {
                Some(addr) => addr.to_string(),
                None => "localhost".to_string(),
            },
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
        if let Some(addr) = self.config.get_hostaddrs().first() {
            env.push(("PGHOSTADDR", addr.to_string()));
        }
        env.push(("PGSSLMODE", self.tls.mode.libpq_sslmode().to_string()));
        match &self.tls.files.root {
            RootCert::System => env.push(("PGSSLROOTCERT", "system".to_string())),
            root => {
                if let Some(file) = root.file() {
                    env.push(("PGSSLROOTCERT", file.display().to_string()));
                }
            }
        }
        if let Some((cert, key)) = &self.tls.files.client {
            env.push(("PGSSLCERT", cert.display().to_string()));
            env.push(("PGSSLKEY", key.display().to_string()));
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
        None => match config.get_hostaddrs().first() {
            Some(addr) => addr.to_string(),
            None => "localhost".to_string(),
        },
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
/// unless a root certificate file is there (`sslrootcert`, or `~/.postgresql/root.crt`): then
/// they check the chain, as libpq does. `verify-ca` checks the chain, `verify-full` the chain
/// and the host name; both need the root file (`sslrootcert=system`: the public web roots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection's TLS: the mode and the files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub mode: TlsMode,
    pub files: TlsFiles,
}

impl TlsMode {
    pub fn from_name(name: &str) -> Result<TlsMode, String> {
        Ok(match name {
            "prefer" | "allow" => TlsMode::Prefer,
            "disable" => TlsMode::Disable,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode `{other}` (use disable, prefer, require, verify-ca or verify-full)"
                ));
            }
        })
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
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

impl Tls {
    pub fn new(mode: TlsMode) -> Tls {
        Tls {
            mode,
            files: TlsFiles::default(),
        }
    }

    /// The rustls connector for this mode and these files.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let verify = matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyFull);
        let roots = match (&self.files.root, verify) {
            (RootCert::System, _) => Some(tls::root_store(None)?),
            (root, _) if root.file().is_some() => Some(tls::root_store(root.file())?),
            (RootCert::File { path, .. }, true) => {
                return Err(format!(
                    "root certificate file \"{}\" does not exist (sslmode={} needs one: give sslrootcert=FILE, use the public roots with sslrootcert=system, or use sslmode=require)",
                    path.display(),
                    self.mode.libpq_sslmode()
                ));
            }
            (RootCert::None, true) => {
                return Err(format!(
                    "sslmode={} needs a root certificate: give sslrootcert=FILE (no home directory for ~/.postgresql/root.crt)",
                    self.mode.libpq_sslmode()
                ));
            }
            (_, false) => None,
        };
        let builder = match roots {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(tls::AcceptAny(provider))),
            Some(roots) => {
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
                if self.mode == TlsMode::VerifyFull {
                    builder.with_webpki_verifier(verifier)
                } else {
                    // verify-ca, and require/prefer with a root file: the chain only.
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(tls::ChainOnly(verifier)))
                }
            }
        };
        let config = match &self.files.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let (chain, key) = tls::client_identity(cert, key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("sslcert {}: {e}", cert.display()))?
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<PgEndpoint, String> {
        PgEndpoint::parse_with(&Secret::new(raw), &Env::with(&[], "osuser"))
    }

    #[test]
    fn tls_mode_from_url_and_key_value() {
        let e = parse(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(e.tls.mode, TlsMode::VerifyFull);
        assert_eq!(
            e.tls.files.root,
            RootCert::File {
                path: PathBuf::from("/tmp/ca.pem"),
                explicit: true
            }
        );
        assert_eq!(e.config.get_application_name(), Some("x"));
        assert_eq!(
            parse("postgres://u@h/db").unwrap().tls.mode,
            TlsMode::Prefer
        );
        assert_eq!(
            parse("host=h sslmode=require dbname=d").unwrap().tls.mode,
            TlsMode::Require
        );
        assert!(parse("host=h sslmode=bogus").is_err());
        // Quoted values stay whole: two spaces, a quote, a backslash, an `sslmode=` inside.
        let e =
            parse("host=h password = 'a  b\\'c\\\\ sslmode=disable' sslmode = verify-ca").unwrap();
        assert_eq!(e.tls.mode, TlsMode::VerifyCa);
        assert_eq!(
            e.config.get_password(),
            Some(&b"a  b'c\\ sslmode=disable"[..])
        );
    }

    /// Issue 15: `postgresql:///db` with PGHOST set connects to PGHOST, and says so.
    #[test]
    fn environment_decides_what_the_string_leaves_out() {
        let env = Env::with(
            &[("PGHOST", "envhost"), ("PGPORT", "6001"), ("PGUSER", "al")],
            "o",
        );
        let e = PgEndpoint::parse_with(&Secret::new("postgresql:///db"), &env).unwrap();
        assert_eq!(e.display, "al@envhost:6001/db");
        let e = PgEndpoint::parse_with(&Secret::new("dbname=db"), &env).unwrap();
        assert_eq!(e.display, "al@envhost:6001/db");
        let e = parse("postgresql://%2Ftmp%2Fsock:5999/db").unwrap();
        assert!(e.is_unix_socket());
        assert_eq!(e.display, "osuser@/tmp/sock:5999/db");
        assert_eq!(
            e.driver_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let e = parse("hostaddr=127.0.0.1 port=5433").unwrap();
        assert_eq!(e.display, "osuser@127.0.0.1:5433/osuser");
    }

    #[test]
    fn unknown_parameters_are_named_only_when_near_a_known_one() {
        let err = parse("host=h sslmdoe=require").unwrap_err();
        assert!(err.contains("did you mean `sslmode`"), "{err}");
        let err = parse("host=h hunter2=x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn verify_modes_need_a_root_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::with(&[("HOME", dir.path().to_str().unwrap())], "o");
        let e = PgEndpoint::parse_with(&Secret::new("host=h sslmode=verify-full"), &env).unwrap();
        let err = e.tls.connector().err().unwrap();
        assert!(
            err.contains(".postgresql/root.crt\" does not exist"),
            "{err}"
        );
        let e = PgEndpoint::parse_with(&Secret::new("host=h sslmode=require"), &env).unwrap();
        assert!(e.tls.connector().is_ok());
        let e = PgEndpoint::parse_with(
            &Secret::new("host=h sslmode=verify-full sslrootcert=system"),
            &env,
        )
        .unwrap();
        assert!(e.tls.connector().is_ok());
        assert!(
            e.libpq_env()
                .contains(&("PGSSLROOTCERT", "system".to_string()))
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
            let err = parse(url).unwrap_err();
            assert!(err.contains("://***): "), "{url}: {err}");
            assert!(
                !err.contains("Pw0rd") && !err.contains("34") && !err.contains("db"),
                "{err}"
            );
        }
        let e = parse("postgresql://user:Pw0rd%40QzX@host/db").unwrap();
        assert_eq!(e.display, "user@host:5432/db");
        assert_eq!(e.config.get_password(), Some(&b"Pw0rd@QzX"[..]));
        let e = parse("postgres://h/db?password=Pw%40rd").unwrap();
        assert_eq!(e.config.get_password(), Some(&b"Pw@rd"[..]));
    }

    #[test]
    fn pg_endpoint_display_hides_password() {
        let e = parse("postgres://alice:pw123@db.example:6543/prod").unwrap();
        assert_eq!(e.display, "alice@db.example:6543/prod");
        assert!(!format!("{e:?}").contains("pw123"));
        let bad = parse("postgres://alice:pw123@db:notaport/x").unwrap_err();
        assert!(!bad.contains("pw123"), "{bad}");
    }
}
