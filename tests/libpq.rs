//! Connection strings as libpq reads them (issue 15), against a private cluster that takes TCP
//! clients only over TLS, with scram-sha-256 passwords, and one role (`certuser`) only with a
//! client certificate; the Unix socket is trust. Each form must connect with restage exactly
//! when it connects with `psql` given the same environment (the reference), and restage must
//! say where it connected: `PGHOST`/`PGPORT`/`PGUSER` in place of what the string leaves out,
//! a `service=` entry, a `~/.pgpass` line (ignored when group-readable, as psql ignores it),
//! a URL with a `%2F` socket host, a key=value string, `sslcert`/`sslkey` and the default
//! `~/.postgresql/` files. Every test has its own HOME, PGSERVICEFILE and PGPASSFILE in a
//! temp directory, never the real `~`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::harness;
use crate::harness::cluster::{Cluster, ClusterOptions};

const PASSWORD: &str = "Scr4m-pw-libpq";

/// The environment variables a test sets or clears for both restage and psql, so that the
/// developer's own PG* variables never leak in.
const CLEARED: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
];

fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIPPED: cannot start a private PostgreSQL cluster with TLS: {e}");
            None
        }
    }
}

/// The TLS cluster of the harness, plus: the CA as `ssl_ca_file`, a `certuser` role that may
/// log in over TCP only with a certificate the CA signed, and that certificate.
fn start() -> Result<Cluster, String> {
    let cluster = Cluster::start(ClusterOptions {
        password: Some(PASSWORD.to_string()),
        tls: true,
    })?;
    let dir = &cluster.dir;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=certuser",
    ])?;
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt",
        "-days",
        "2",
        "-extfile",
        "client.ext",
    ])?;
    let hba = dir.join("data/pg_hba.conf");
    let old = std::fs::read_to_string(&hba).map_err(|e| e.to_string())?;
    std::fs::write(
        &hba,
        format!("hostssl all certuser 127.0.0.1/32 cert\nhostssl all certuser ::1/128 cert\n{old}"),
    )
    .map_err(|e| e.to_string())?;
    cluster.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_ca_file = '{}'",
            dir.join("ca.crt").display()
        ),
    )?;
    cluster.psql("postgres", "SELECT pg_reload_conf()")?;
    cluster.psql("postgres", "CREATE ROLE certuser LOGIN SUPERUSER")?;
    Ok(cluster)
}

/// One test's world: a source database, a temp HOME, and the config it writes.
struct World {
    cluster: &'static Cluster,
    source: String,
    staging: String,
    home: tempfile::TempDir,
}

impl World {
    fn new(prefix: &str) -> Option<World> {
        let cluster = cluster()?;
        let source = harness::unique_name(prefix);
        cluster
            .psql("postgres", &format!("CREATE DATABASE {source}"))
            .expect("create source");
        cluster
            .psql(&source, "CREATE TABLE t (id int PRIMARY KEY, v text)")
            .expect("fill source");
        Some(World {
            cluster,
            staging: format!("{source}_stg"),
            source,
            home: tempfile::tempdir().expect("temp home"),
        })
    }

    fn port(&self) -> String {
        self.cluster.port.to_string()
    }

    fn socket_dir(&self) -> String {
        self.cluster.dir.display().to_string()
    }

    fn ca(&self) -> String {
        self.cluster.dir.join("ca.crt").display().to_string()
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> String {
        let path = self.home.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path.display().to_string()
    }

    /// The test's environment: every libpq variable cleared, HOME the temp dir, then `vars`.
    fn env(&self, vars: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        let mut env: Vec<(String, Option<String>)> =
            CLEARED.iter().map(|k| (k.to_string(), None)).collect();
        env.push((
            "HOME".to_string(),
            Some(self.home.path().display().to_string()),
        ));
        for (k, v) in vars {
            env.push((k.to_string(), Some(v.to_string())));
        }
        env
    }

    /// `restage validate` with this source connection string (the target is the cluster's
    /// `postgres` database over the socket): exit code, stderr.
    fn restage(&self, source_url: &str, vars: &[(&str, &str)]) -> (i32, String) {
        let config = self.home.path().join("restage.yaml");
        std::fs::write(
            &config,
            format!(
                "source:\n  url: {}\ntarget:\n  url: \"host={} port={} user=postgres dbname=postgres\"\n  database: {}\nsecret: test-secret-0123456789abcdef\nstrict: off\n",
                serde_json::to_string(source_url).expect("quoted"),
                self.socket_dir(),
                self.port(),
                self.staging
            ),
        )
        .expect("config");
        let mut cmd = harness::restage().config(&config).arg("validate");
        for (k, v) in self.env(vars) {
            cmd = match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let (code, out, err) = cmd.run().into_parts();
        (code, format!("{out}{err}"))
    }

    /// `psql` with the same string and environment: Ok(`user@db`) where it connected.
    fn psql(&self, conninfo: &str, vars: &[(&str, &str)]) -> Result<String, String> {
        let bin = match std::env::var("RESTAGE_TEST_PG_BIN") {
            Ok(dir) => Path::new(&dir).join("psql"),
            Err(_) => "psql".into(),
        };
        let mut cmd = Command::new(bin);
        cmd.args([
            "-X",
            "-w",
            "-At",
            "-c",
            "SELECT current_user || '@' || current_database()",
            conninfo,
        ]);
        for (k, v) in self.env(vars) {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Both connect, psql to `expect` (`user@db`), restage validates; or neither does.
    fn both_connect(&self, conninfo: &str, vars: &[(&str, &str)], expect: &str) {
        let psql = self.psql(conninfo, vars);
        assert_eq!(psql.as_deref(), Ok(expect), "psql with {conninfo} {vars:?}");
        let (code, out) = self.restage(conninfo, vars);
        assert_eq!(code, 0, "restage with {conninfo} {vars:?}:\n{out}");
        assert!(!out.contains(PASSWORD), "{out}");
    }

    fn neither_connects(&self, conninfo: &str, vars: &[(&str, &str)]) -> String {
        assert!(
            self.psql(conninfo, vars).is_err(),
            "psql connected with {conninfo} {vars:?}"
        );
        let (code, out) = self.restage(conninfo, vars);
        assert_eq!(code, 1, "restage with {conninfo} {vars:?}:\n{out}");
        assert!(!out.contains(PASSWORD), "{out}");
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for db in self.cluster.databases_like(&self.source) {
            let _ = self
                .cluster
                .psql("postgres", &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
        }
    }
}

/// `postgresql:///db` and `dbname=db` take host, port, user, password and sslmode from the
/// environment, and the message names PGHOST's server, never localhost:5432.
#[test]
fn environment_variables_fill_the_string() {
    let Some(w) = World::new("lpqenv") else {
        return;
    };
    let port = w.port();
    let vars = [
        ("PGHOST", "localhost"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", PASSWORD),
        ("PGSSLMODE", "require"),
    ];
    let expect = format!("postgres@{}", w.source);
    w.both_connect(&format!("postgresql:///{}", w.source), &vars, &expect);
    w.both_connect(&format!("dbname={}", w.source), &vars, &expect);
    let mut only_db = vars.to_vec();
    only_db.push(("PGDATABASE", w.source.as_str()));
    w.both_connect("connect_timeout=10", &only_db, &expect);
    // The wrong password: both refuse, and restage names the server it tried.
    let bad = [
        ("PGHOST", "localhost"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", "wrong-password-x"),
        ("PGSSLMODE", "require"),
    ];
    let out = w.neither_connects(&format!("postgresql:///{}", w.source), &bad);
    assert!(
        out.contains(&format!("postgres@localhost:{port}/{}", w.source)),
        "{out}"
    );
    assert!(!out.contains("wrong-password-x"), "{out}");
    // sslmode=disable from the environment: the server takes TCP only over TLS.
    let mut plain = vars.to_vec();
    plain[4] = ("PGSSLMODE", "disable");
    w.neither_connects(&format!("postgresql:///{}", w.source), &plain);
}

/// `service=name` from PGSERVICEFILE, and from PGSERVICE; the string wins over the service.
#[test]
fn service_file_entries_connect() {
    let Some(w) = World::new("lpqsvc") else {
        return;
    };
    let file = w.file(
        "svc/pg_service.conf",
        &format!(
            "# restage test\n[src]\nhost=localhost\nport={}\nuser=postgres\npassword={PASSWORD}\nsslmode=require\ndbname={}\n\n[other]\nhost=nowhere.invalid\n",
            w.port(),
            w.source
        ),
        0o600,
    );
    let vars = [("PGSERVICEFILE", file.as_str())];
    let expect = format!("postgres@{}", w.source);
    w.both_connect("service=src", &vars, &expect);
    w.both_connect(
        &format!("postgresql:///{}?service=src", w.source),
        &vars,
        &expect,
    );
    let mut by_env = vars.to_vec();
    by_env.push(("PGSERVICE", "src"));
    w.both_connect("connect_timeout=10", &by_env, &expect);
    // PGSYSCONFDIR's pg_service.conf, when the user's file has no such entry.
    let sys = w.home.path().join("svc").display().to_string();
    w.both_connect("service=src", &[("PGSYSCONFDIR", sys.as_str())], &expect);
    // An unknown service: a usage error (exit 2) naming the service, as psql refuses it.
    assert!(w.psql("service=nope", &vars).is_err());
    let (code, out) = w.restage("service=nope", &vars);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("definition of service \"nope\" not found"),
        "{out}"
    );
}

/// `~/.pgpass` (and PGPASSFILE) give the password, with libpq's escapes and wildcards; a
/// group-readable file is ignored by both.
#[test]
fn pgpass_gives_the_password() {
    let Some(w) = World::new("lpqpass") else {
        return;
    };
    let port = w.port();
    let url = format!(
        "postgresql://postgres@localhost:{port}/{}?sslmode=require",
        w.source
    );
    let expect = format!("postgres@{}", w.source);
    let lines = format!("# comment\nnowhere:*:*:*:nope\nlocalhost:{port}:*:postgres:{PASSWORD}\n");
    w.file(".pgpass", &lines, 0o600);
    w.both_connect(&url, &[], &expect);
    // Wildcards, and an escaped colon in another line's host that must not match.
    w.file(
        ".pgpass",
        &format!("local\\:host:*:*:*:nope\n*:*:*:postgres:{PASSWORD}\n"),
        0o600,
    );
    w.both_connect(&url, &[], &expect);
    // Group-readable: both ignore it, so the password is missing.
    w.file(".pgpass", &lines, 0o644);
    let out = w.neither_connects(&url, &[]);
    assert!(
        out.contains(&format!("postgres@localhost:{port}/")),
        "{out}"
    );
    // PGPASSFILE elsewhere.
    let other = w.file("elsewhere/pass", &lines, 0o600);
    w.both_connect(&url, &[("PGPASSFILE", other.as_str())], &expect);
}

/// Unix sockets: `%2F` in a URL host, `host=/dir` in key=value form, PGHOST=/dir with
/// `postgresql:///db`; no TLS is tried over a socket (libpq's rule).
#[test]
fn unix_sockets_in_every_form() {
    let Some(w) = World::new("lpqsock") else {
        return;
    };
    let dir = w.socket_dir();
    let port = w.port();
    let encoded = dir.replace('/', "%2F");
    let expect = format!("postgres@{}", w.source);
    w.both_connect(
        &format!("postgresql://postgres@{encoded}:{port}/{}", w.source),
        &[],
        &expect,
    );
    w.both_connect(
        &format!("host={dir} port={port} user=postgres dbname={}", w.source),
        &[],
        &expect,
    );
    w.both_connect(
        &format!("postgresql:///{}", w.source),
        &[
            ("PGHOST", dir.as_str()),
            ("PGPORT", port.as_str()),
            ("PGUSER", "postgres"),
        ],
        &expect,
    );
    // The URL's host in brackets-free form with a query for the host (libpq's other way).
    w.both_connect(
        &format!(
            "postgresql:///{}?host={encoded}&port={port}&user=postgres",
            w.source
        ),
        &[],
        &expect,
    );
}

/// Client certificates: `sslcert`/`sslkey` given, and the default `~/.postgresql/` files
/// (postgresql.crt, postgresql.key, root.crt) with verify-full and no file named.
#[test]
fn client_certificates_connect() {
    let Some(w) = World::new("lpqcert") else {
        return;
    };
    let port = w.port();
    let cert = w.cluster.dir.join("client.crt").display().to_string();
    let key_src = std::fs::read_to_string(w.cluster.dir.join("client.key")).expect("key");
    let key = w.file("keys/client.key", &key_src, 0o600);
    let expect = format!("certuser@{}", w.source);
    w.both_connect(
        &format!(
            "host=localhost port={port} user=certuser dbname={} sslmode=verify-full sslrootcert={} sslcert={cert} sslkey={key}",
            w.source,
            w.ca()
        ),
        &[],
        &expect,
    );
    // The same through PGSSLCERT / PGSSLKEY / PGSSLROOTCERT.
    let ca = w.ca();
    w.both_connect(
        &format!(
            "postgresql://certuser@localhost:{port}/{}?sslmode=verify-ca",
            w.source
        ),
        &[
            ("PGSSLCERT", cert.as_str()),
            ("PGSSLKEY", key.as_str()),
            ("PGSSLROOTCERT", ca.as_str()),
        ],
        &expect,
    );
    // Without a certificate, certuser is refused by both.
    w.neither_connects(
        &format!(
            "postgresql://certuser@localhost:{port}/{}?sslmode=require",
            w.source
        ),
        &[],
    );
    // A key others can read: restage refuses it as psql does.
    let loose = w.file("keys/loose.key", &key_src, 0o644);
    let out = w.neither_connects(
        &format!(
            "host=localhost port={port} user=certuser dbname={} sslmode=require sslcert={cert} sslkey={loose}",
            w.source
        ),
        &[],
    );
    assert!(out.contains("has group or world access"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    // The default files: ~/.postgresql/postgresql.crt, postgresql.key and root.crt.
    let crt = std::fs::read_to_string(&cert).expect("cert");
    let root = std::fs::read_to_string(w.ca()).expect("ca");
    w.file(".postgresql/postgresql.crt", &crt, 0o644);
    w.file(".postgresql/postgresql.key", &key_src, 0o600);
    let url = format!(
        "postgresql://certuser@localhost:{port}/{}?sslmode=verify-full",
        w.source
    );
    // verify-full without root.crt: both refuse, restage naming the file it looked for.
    let out = w.neither_connects(&url, &[]);
    assert!(
        out.contains(".postgresql/root.crt\" does not exist"),
        "{out}"
    );
    w.file(".postgresql/root.crt", &root, 0o644);
    w.both_connect(&url, &[], &expect);
}
