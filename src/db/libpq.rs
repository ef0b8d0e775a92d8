//! Connection strings as libpq reads them (issue 15): a URL or key=value string, completed with
//! every default libpq applies, in libpq's order (`conninfo_add_defaults`):
//!
//! 1. what the string says;
//! 2. the `service=` (or `PGSERVICE`) entry of `PGSERVICEFILE` or `~/.pg_service.conf`, else of
//!    `PGSYSCONFDIR/pg_service.conf` (default `/etc/postgresql-common`), for what is still unset;
//! 3. the `PG*` environment variables ([`ENV_VARS`]) for what is still unset;
//! 4. libpq's built-in defaults: the Unix socket directory (`/var/run/postgresql` where it
//!    exists, as Debian's libpq is built, else `/tmp`), port 5432, the operating-system user,
//!    a database named like the user, `sslmode=prefer`;
//! 5. no password yet: the first matching line of the password file (`passfile`, `PGPASSFILE`
//!    or `~/.pgpass`), which is ignored, as libpq ignores it, when group or others can read it.
//!
//! TLS files follow libpq too (see [`TlsFiles`]): `sslrootcert` defaults to
//! `~/.postgresql/root.crt` (`system` means the public web roots), `sslcert`/`sslkey` to
//! `~/.postgresql/postgresql.crt`/`.key` when the certificate exists.
//!
//! Why one module of our own: tokio-postgres parses URLs and key=value strings but refuses
//! `service`, `passfile`, `sslcert`, `sslkey` and `sslrootcert`, and reads no environment,
//! service file or password file; the crates that add a service file (`postgres-service`,
//! `pg-client-config`, both small and rarely released) cover neither `.pgpass`'s escapes and
//! permission rule nor the TLS files. The driver still parses and checks every value it knows:
//! the completed parameters are handed to `tokio_postgres::Config::from_str`.
//!
//! Tested against `psql`'s behaviour: tests/libpq.rs runs both with the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::secret::{UrlParts, parse_key_value};

/// The environment variables libpq reads, and the parameter each sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
    ("PGGSSENCMODE", "gssencmode"),
    ("PGCLIENTENCODING", "client_encoding"),
];

/// The parameters tokio-postgres parses itself.
pub const DRIVER_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "options",
    "application_name",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// Where a connection string is completed from: the environment, the home directory and the
/// operating-system user. [`Env::process`] is the real one; tests give their own.
pub struct Env {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
    os_user: Option<String>,
}

impl Env {
    /// This process's environment, `$HOME` (else the passwd entry) and user.
    pub fn process() -> Env {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let (pw_home, pw_user) = passwd_entry();
        let home = vars.get("HOME").map(PathBuf::from).or(pw_home);
        Env {
            vars,
            home,
            os_user: pw_user,
        }
    }

    /// Given variables (HOME among them) and user: for tests.
    pub fn with(vars: &[(&str, &str)], os_user: &str) -> Env {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env {
            home: vars.get("HOME").map(PathBuf::from),
            vars,
            os_user: Some(os_user.to_string()),
        }
    }

    /// A variable, unset when empty (libpq treats an empty value as no value for all the
    /// parameters restage uses).
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }
}

fn passwd_entry() -> (Option<PathBuf>, Option<String>) {
    // SAFETY: getpwuid returns a pointer into static storage or null; both fields are read
    // (copied) at once, before any other call could overwrite them.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return (None, None);
        }
        let field = |p: *const libc::c_char| {
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        (field((*pw).pw_dir).map(PathBuf::from), field((*pw).pw_name))
    }
}

/// A connection string completed as libpq completes it: every parameter with its value, and
/// where the password came from (for messages; never the password itself).
#[derive(Clone, Default)]
pub struct Resolved {
    pub params: BTreeMap<String, String>,
    /// The password file whose line gave the password, when one did.
    pub password_file: Option<PathBuf>,
    /// A note for the log (a password file ignored for its permissions, …).
    pub notes: Vec<String>,
}

/// The parameter names only: values can be secrets.
impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resolved({:?})", self.params.keys().collect::<Vec<_>>())
    }
}

impl Resolved {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The key=value string of the parameters tokio-postgres parses, quoted as libpq quotes.
    pub fn driver_string(&self) -> String {
        self.params
            .iter()
            .filter(|(k, v)| DRIVER_KEYS.contains(&k.as_str()) && !v.is_empty())
            .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The pairs a connection string holds, as libpq splits it: a `postgres://` or
/// `postgresql://` URL (percent-decoded; `%2F…` hosts are socket directories), or key=value
/// pairs. Errors never quote a value.
pub fn split(raw: &str) -> Result<Vec<(String, String)>, String> {
    let raw = raw.trim();
    if let Some(parts) = UrlParts::split(raw) {
        if !matches!(parts.scheme, "postgres" | "postgresql") {
            return Err(format!(
                "the scheme `{}://` is not a PostgreSQL one (use postgresql:// or postgres://)",
                parts.scheme
            ));
        }
        let mut pairs = Vec::new();
        if let Some(userinfo) = parts.userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".to_string(), decode(user)?));
            }
            if let Some(p) = password {
                pairs.push(("password".to_string(), decode(p)?));
            }
        }
        if !parts.hosts.is_empty() {
            let mut hosts = Vec::new();
            let mut ports = Vec::new();
            for entry in parts.hosts.split(',') {
                let (host, port) = split_host_port(entry)?;
                hosts.push(decode(host)?);
                ports.push(decode(port.unwrap_or(""))?);
            }
            if hosts.iter().any(|h| !h.is_empty()) {
                pairs.push(("host".to_string(), hosts.join(",")));
            }
            if ports.iter().any(|p| !p.is_empty()) {
                pairs.push(("port".to_string(), ports.join(",")));
            }
        }
        if let Some(path) = parts.path.filter(|p| !p.is_empty()) {
            pairs.push(("dbname".to_string(), decode(path)?));
        }
        for pair in parts
            .query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let Some((k, v)) = pair.split_once('=') else {
                return Err("a URL parameter without `=`".to_string());
            };
            let (k, v) = (decode(k)?, decode(v)?);
            // libpq's URL-only alias (JDBC's spelling).
            if k == "ssl" && v == "true" {
                pairs.push(("sslmode".to_string(), "require".to_string()));
            } else {
                pairs.push((k, v));
            }
        }
        Ok(pairs)
    } else if raw.contains("://") {
        Err("not a URL libpq reads (expected postgresql://…)".to_string())
    } else {
        parse_key_value(raw)
            .ok_or_else(|| "a parameter without `=`, or a quote that does not end".to_string())
    }
}

/// `host:port`, `[v6]:port`, `host`.
fn split_host_port(entry: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("an IPv6 host without its closing `]`".to_string());
        };
        return Ok((host, after.strip_prefix(':')));
    }
    Ok(match entry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (entry, None),
    })
}

/// Percent-decoding as libpq does it: a `%` must be followed by two hex digits.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let b = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a `%` not followed by two hexadecimal digits")?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoded bytes that are not UTF-8".to_string())
}

/// The socket directory libpq uses when no host is given.
pub fn default_socket_dir() -> &'static str {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

/// Completes `pairs` as libpq does (see the module header). `known` are the parameter names
/// accepted (libpq's); an unknown one is an error the caller words.
pub fn resolve(pairs: Vec<(String, String)>, env: &Env) -> Result<Resolved, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        // A later repetition wins, as in libpq.
        params.insert(k, v);
    }
    let mut resolved = Resolved::default();

    // 2. The service file.
    let service = params
        .get("service")
        .cloned()
        .filter(|s| !s.is_empty())
        .or_else(|| env.var("PGSERVICE").map(str::to_string));
    if let Some(name) = service {
        for (k, v) in service_entry(&name, env)? {
            params.entry(k).or_insert(v);
        }
    }

    // 3. The environment.
    for (var, key) in ENV_VARS {
        if params.get(*key).is_none_or(|v| v.is_empty())
            && let Some(value) = env.var(var)
        {
            params.insert(key.to_string(), value.to_string());
        }
    }

    // 4. Built-in defaults.
    let unset = |p: &BTreeMap<String, String>, k: &str| p.get(k).is_none_or(|v| v.is_empty());
    if unset(&params, "host") && unset(&params, "hostaddr") {
        params.insert("host".into(), default_socket_dir().into());
    }
    if unset(&params, "port") {
        params.insert("port".into(), "5432".into());
    }
    if unset(&params, "user") {
        match &env.os_user {
            Some(u) => {
                params.insert("user".into(), u.clone());
            }
            None => return Err("no user given, and the operating-system user is unknown".into()),
        }
    }
    if unset(&params, "dbname") {
        let user = params.get("user").cloned().unwrap_or_default();
        params.insert("dbname".into(), user);
    }
    if unset(&params, "sslmode") {
        params.insert("sslmode".into(), "prefer".into());
    }

    // 5. The password file.
    if unset(&params, "password") {
        let file = params
            .get("passfile")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.home().map(|h| h.join(".pgpass")));
        if let Some(file) = file {
            let host = params
                .get("host")
                .filter(|h| !h.is_empty())
                .or(params.get("hostaddr"))
                .cloned()
                .unwrap_or_default();
            // One host (the first): restage connects to the first host the list names.
            let host = host.split(',').next().unwrap_or("").to_string();
            let host = if host.is_empty() || host == default_socket_dir() {
                "localhost".to_string()
            } else {
                host
            };
            let port = params["port"]
                .split(',')
                .next()
                .unwrap_or("5432")
                .to_string();
            let port = if port.is_empty() { "5432".into() } else { port };
            match password_from_file(&file, &host, &port, &params["dbname"], &params["user"]) {
                Ok(Some(pw)) => {
                    params.insert("password".into(), pw);
                    resolved.password_file = Some(file);
                }
                Ok(None) => {}
                Err(note) => resolved.notes.push(note),
            }
        }
    }
    resolved.params = params;
    Ok(resolved)
}

/// The entry `[name]` of the user's service file, else of the system's.
fn service_entry(name: &str, env: &Env) -> Result<Vec<(String, String)>, String> {
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".pg_service.conf")));
    let sys_file = PathBuf::from(env.var("PGSYSCONFDIR").unwrap_or("/etc/postgresql-common"))
        .join("pg_service.conf");
    let mut looked = Vec::new();
    for file in user_file.into_iter().chain(std::iter::once(sys_file)) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(file.display().to_string());
                continue;
            }
            Err(e) => return Err(format!("service file {}: {e}", file.display())),
        };
        if let Some(entry) = parse_service_file(&text, name, &file)? {
            return Ok(entry);
        }
        looked.push(file.display().to_string());
    }
    Err(format!(
        "definition of service \"{name}\" not found (looked in {})",
        looked.join(", ")
    ))
}

/// The `key=value` lines of section `[name]`, None when the file has no such section.
/// Lines are trimmed; `#` starts a comment line; a `service=` inside is refused, as libpq
/// refuses nested services.
fn parse_service_file(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, String> {
    let mut in_section = false;
    let mut found = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found && in_section {
                break;
            }
            in_section = section.strip_suffix(']').map(str::trim) == Some(name);
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "syntax error in service file {}, line {}",
                file.display(),
                n + 1
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "service" {
            return Err(format!(
                "nested service specifications not supported in service file {}, line {}",
                file.display(),
                n + 1
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(found.then_some(out))
}

/// The password of the first line of a password file that matches, libpq's rules: fields
/// `host:port:database:user:password`, `*` matches anything, `\` escapes `:` and `\` (an
/// unescaped `:` ends the password), `#` lines are comments. The file is skipped (Err: a note for the log, never its content) when
/// it is not a plain file or group or others can read it, as libpq skips it.
pub fn password_from_file(
    file: &Path,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        return Err(format!(
            "password file \"{}\" is not a plain file",
            file.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less (ignored, as libpq ignores it)",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("password file \"{}\": {e}", file.display()))?;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            return Ok(Some(fields[4].clone()));
        }
    }
    Ok(None)
}

/// A password file line cut at its unescaped `:`, each field unescaped. One difference from
/// libpq, left on purpose: a field written `\*` (an escaped star) is a wildcard here, where
/// libpq matches it only against a literal `*` (no host, port, database or user is `*`).
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    field.push(next);
                }
            }
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            // An unescaped `:` ends the password too; libpq ignores what follows.
            ':' => break,
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The TLS files of a connection, as libpq finds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The roots to check the server against: `sslrootcert`, else `~/.postgresql/root.crt`
    /// (which need not exist: it is only required by `verify-ca`/`verify-full`, and makes
    /// `require`/`prefer` check the chain when it does, as in libpq).
    pub root: RootCert,
    /// The client certificate and key, when the certificate file exists (`sslcert`, else
    /// `~/.postgresql/postgresql.crt`; `sslkey`, else `~/.postgresql/postgresql.key`).
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RootCert {
    /// No file given and no home directory.
    #[default]
    None,
    /// `sslrootcert=system`: the public web roots.
    System,
    /// A file; `explicit` when the string or environment named it.
    File { path: PathBuf, explicit: bool },
}

impl RootCert {
    /// The file to read, when there is one to read: an explicit one always (so a missing one
    /// is an error), the default one only when it exists.
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            RootCert::File { path, explicit } if *explicit || path.exists() => Some(path),
            _ => None,
        }
    }
}

impl TlsFiles {
    pub fn find(resolved: &Resolved, env: &Env) -> TlsFiles {
        let dot = env.home().map(|h| h.join(".postgresql"));
        let root = match resolved.get("sslrootcert") {
            Some("system") => RootCert::System,
            Some(path) => RootCert::File {
                path: PathBuf::from(path),
                explicit: true,
            },
            None => match &dot {
                Some(d) => RootCert::File {
                    path: d.join("root.crt"),
                    explicit: false,
                },
                None => RootCert::None,
            },
        };
        let cert = resolved
            .get("sslcert")
            .map(PathBuf::from)
            .or_else(|| dot.as_ref().map(|d| d.join("postgresql.crt")));
        let key = resolved
            .get("sslkey")
            .map(PathBuf::from)
            .or_else(|| dot.as_ref().map(|d| d.join("postgresql.key")));
        let client = match (cert, key) {
            (Some(c), Some(k)) if c.exists() || resolved.get("sslcert").is_some() => Some((c, k)),
            _ => None,
        };
        TlsFiles { root, client }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn resolve_str(raw: &str, env: &Env) -> Result<Resolved, String> {
        resolve(split(raw)?, env)
    }

    #[test]
    fn urls_split_as_libpq_splits_them() {
        let p = split("postgresql://al%40ce:p%3Aw@h1:5433,[::1]:5434/my%20db?sslmode=require&application_name=x").unwrap();
        assert_eq!(
            p,
            vec![
                ("user".into(), "al@ce".into()),
                ("password".into(), "p:w".into()),
                ("host".into(), "h1,::1".into()),
                ("port".into(), "5433,5434".into()),
                ("dbname".into(), "my db".into()),
                ("sslmode".into(), "require".into()),
                ("application_name".into(), "x".into()),
            ]
        );
        assert_eq!(
            split("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            vec![
                ("host".into(), "/var/run/postgresql".into()),
                ("dbname".into(), "db".into())
            ]
        );
        assert_eq!(
            split("postgresql:///db").unwrap(),
            vec![("dbname".into(), "db".into())]
        );
        assert_eq!(
            split("postgres://h/d?ssl=true").unwrap()[2],
            ("sslmode".into(), "require".into())
        );
        assert!(split("mysql://h/d").is_err());
        assert!(split("postgres://h/d%zz").is_err());
    }

    #[test]
    fn environment_fills_what_the_string_leaves_unset() {
        let env = Env::with(
            &[
                ("PGHOST", "envhost"),
                ("PGPORT", "6000"),
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
                ("PGSSLMODE", "require"),
                ("PGAPPNAME", "app"),
            ],
            "osuser",
        );
        let r = resolve_str("postgresql:///db", &env).unwrap();
        assert_eq!(r.get("host"), Some("envhost"));
        assert_eq!(r.get("port"), Some("6000"));
        assert_eq!(r.get("user"), Some("envuser"));
        assert_eq!(r.get("dbname"), Some("db"));
        assert_eq!(r.get("sslmode"), Some("require"));
        assert_eq!(r.get("application_name"), Some("app"));
        let r = resolve_str("host=h user=u", &env).unwrap();
        assert_eq!(r.get("host"), Some("h"));
        assert_eq!(r.get("dbname"), Some("envdb"));
        // Nothing at all: the socket, 5432, the OS user and a database of that name.
        let r = resolve_str("", &Env::with(&[], "osuser")).unwrap();
        assert_eq!(r.get("host"), Some(default_socket_dir()));
        assert_eq!(r.get("port"), Some("5432"));
        assert_eq!(r.get("user"), Some("osuser"));
        assert_eq!(r.get("dbname"), Some("osuser"));
        assert_eq!(r.get("sslmode"), Some("prefer"));
        // hostaddr alone: no socket default.
        let r = resolve_str("hostaddr=127.0.0.1", &Env::with(&[], "o")).unwrap();
        assert_eq!(r.get("host"), None);
    }

    #[test]
    fn service_files_user_then_system_string_wins() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        std::fs::write(
            &user,
            "# comment\n[prod]\nhost = userhost\nport=7000\n\n[other]\nhost=x\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        std::fs::write(
            dir.path().join("sys/pg_service.conf"),
            "[sysonly]\nhost=syshost\ndbname=sysdb\n[prod]\nhost=never\n",
        )
        .unwrap();
        let sys = dir.path().join("sys");
        let vars = [
            ("PGSERVICEFILE", user.to_str().unwrap()),
            ("PGSYSCONFDIR", sys.to_str().unwrap()),
            ("PGPORT", "9999"),
        ];
        let env = Env::with(&vars, "o");
        let r = resolve_str("service=prod dbname=d", &env).unwrap();
        assert_eq!(r.get("host"), Some("userhost"));
        assert_eq!(r.get("port"), Some("7000"), "the service wins over PGPORT");
        let r = resolve_str("service=prod host=mine", &env).unwrap();
        assert_eq!(
            r.get("host"),
            Some("mine"),
            "the string wins over the service"
        );
        let r = resolve_str("service=sysonly", &env).unwrap();
        assert_eq!(r.get("host"), Some("syshost"));
        assert_eq!(r.get("dbname"), Some("sysdb"));
        let err = resolve_str("service=nope", &env).unwrap_err();
        assert!(
            err.starts_with("definition of service \"nope\" not found"),
            "{err}"
        );
        let mut vars = vars.to_vec();
        vars.push(("PGSERVICE", "prod"));
        let r = resolve_str("postgresql:///d", &Env::with(&vars, "o")).unwrap();
        assert_eq!(r.get("host"), Some("userhost"));
    }

    #[test]
    fn pgpass_matches_escapes_wildcards_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".pgpass");
        std::fs::write(
            &file,
            "# c\nother:*:*:*:no\nh\\:x:5432:db:u:escaped\nh:*:*:u:pw\\:with\\\\colon:rest\nlocalhost:*:*:*:socketpw\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let home = dir.path().to_str().unwrap();
        let env = Env::with(&[("HOME", home)], "u");
        let r = resolve_str("host=h dbname=any", &env).unwrap();
        // An unescaped `:` ends the password, as in libpq.
        assert_eq!(r.get("password"), Some("pw:with\\colon"));
        assert_eq!(r.password_file.as_deref(), Some(file.as_path()));
        let r = resolve_str("host=h:x dbname=db", &env).unwrap();
        assert_eq!(r.get("password"), Some("escaped"));
        // The default socket directory is `localhost` in the file.
        let r = resolve_str("", &env).unwrap();
        assert_eq!(r.get("password"), Some("socketpw"));
        // A password given wins; an unmatched host has none.
        let r = resolve_str("host=h password=given", &env).unwrap();
        assert_eq!(r.get("password"), Some("given"));
        let r = resolve_str("host=nomatch", &env).unwrap();
        assert_eq!(r.get("password"), None);
        // Group-readable: ignored, with a note naming the file (not its content).
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let r = resolve_str("host=h", &env).unwrap();
        assert_eq!(r.get("password"), None);
        assert!(
            r.notes[0].contains("group or world access"),
            "{:?}",
            r.notes
        );
        // Not the file's passwords (its random temporary path may hold any letters).
        for password in ["pw:with", "escaped", "socketpw"] {
            assert!(!r.notes[0].contains(password), "{:?}", r.notes);
        }
        // PGPASSFILE and passfile= point elsewhere.
        let other = dir.path().join("other");
        std::fs::write(&other, "*:*:*:*:fromother\n").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = Env::with(
            &[("HOME", home), ("PGPASSFILE", other.to_str().unwrap())],
            "u",
        );
        assert_eq!(
            resolve_str("host=h", &env).unwrap().get("password"),
            Some("fromother")
        );
    }

    #[test]
    fn tls_files_default_to_dot_postgresql() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let env = Env::with(&[("HOME", home)], "u");
        let r = resolve_str("host=h", &env).unwrap();
        let files = TlsFiles::find(&r, &env);
        assert_eq!(files.client, None);
        assert_eq!(files.root.file(), None, "the default root is optional");
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::write(dir.path().join(".postgresql/postgresql.crt"), "x").unwrap();
        std::fs::write(dir.path().join(".postgresql/root.crt"), "x").unwrap();
        let files = TlsFiles::find(&r, &env);
        assert_eq!(
            files.client,
            Some((
                dir.path().join(".postgresql/postgresql.crt"),
                dir.path().join(".postgresql/postgresql.key")
            ))
        );
        assert_eq!(
            files.root.file(),
            Some(&dir.path().join(".postgresql/root.crt"))
        );
        let r = resolve_str("host=h sslrootcert=system", &env).unwrap();
        assert_eq!(TlsFiles::find(&r, &env).root, RootCert::System);
    }
}
