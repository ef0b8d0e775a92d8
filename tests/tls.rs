//! TLS (issue 6) against a private PostgreSQL cluster that serves a certificate for
//! `localhost` signed by a CA the test made, and accepts TCP clients only over TLS (so a
//! refresh that succeeds proves that every connection — restage's own and pg_dump's and
//! pg_restore's — was encrypted).
//!
//! `sslmode=require` works; `verify-full` with the CA works; `verify-ca` with the CA works
//! whatever the host name; `verify-full` with the wrong host name, without the CA or with
//! another CA fails with a message naming the server and the certificate problem; `disable`
//! is refused by the server. Both the source and the target connection are checked.

use crate::harness;

use std::sync::OnceLock;

use crate::harness::cluster::{Cluster, ClusterOptions};

/// One cluster for the whole file (stopped by its watchdog when the tests end).
fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| {
        Cluster::start(ClusterOptions {
            password: None,
            tls: true,
        })
    }) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIPPED: cannot start a private PostgreSQL cluster with TLS: {e}");
            None
        }
    }
}

/// A source database in the cluster and a temp dir for the config.
struct Tls {
    cluster: &'static Cluster,
    source: String,
    staging: String,
    dir: tempfile::TempDir,
}

impl Tls {
    fn new(prefix: &str) -> Option<Tls> {
        let cluster = cluster()?;
        let source = harness::unique_name(prefix);
        cluster
            .psql("postgres", &format!("CREATE DATABASE {source}"))
            .expect("create source");
        cluster
            .psql(
                &source,
                "CREATE TABLE t (id int PRIMARY KEY, v text);
                 INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
                 CREATE INDEX t_v_idx ON t (v);",
            )
            .expect("fill source");
        Some(Tls {
            cluster,
            staging: format!("{source}_stg"),
            source,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn ca(&self) -> String {
        self.cluster.ca.as_ref().unwrap().display().to_string()
    }

    fn other_ca(&self) -> String {
        self.cluster
            .other_ca
            .as_ref()
            .unwrap()
            .display()
            .to_string()
    }

    /// Runs `restage refresh` with these source and target URLs (host, query string each).
    fn refresh(&self, source: (&str, &str), target: (&str, &str)) -> (i32, String, String) {
        let config = self.dir.path().join("restage.yaml");
        std::fs::write(
            &config,
            format!(
                "source:\n  url: {}\ntarget:\n  url: {}\n  database: {}\nsecret: test-secret-0123456789abcdef\nstrict: off\n",
                self.cluster.url(source.0, &self.source, source.1),
                self.cluster.url(target.0, "postgres", target.1),
                self.staging
            ),
        )
        .unwrap();
        harness::restage()
            .config(&config)
            .arg("refresh")
            .run()
            .into_parts()
    }

    fn staging_rows(&self) -> String {
        self.cluster
            .psql(
                &self.staging,
                "SELECT count(*) || ':' || sum(length(v)) FROM t",
            )
            .expect("staging readable")
    }

    fn source_rows(&self) -> String {
        self.cluster
            .psql(
                &self.source,
                "SELECT count(*) || ':' || sum(length(v)) FROM t",
            )
            .expect("source readable")
    }

    fn created_nothing(&self) -> bool {
        self.cluster.databases_like(&self.staging).is_empty()
    }

    fn server(&self, host: &str, db: &str) -> String {
        format!("postgres@{host}:{}/{db}", self.cluster.port)
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        for db in self.cluster.databases_like(&self.source) {
            let _ = self
                .cluster
                .psql("postgres", &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
        }
    }
}

fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[test]
fn require_encrypts_every_connection() {
    let Some(t) = Tls::new("tlsreq") else { return };
    let (code, out, err) = t.refresh(
        ("localhost", "sslmode=require"),
        ("localhost", "sslmode=require"),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(t.staging_rows(), t.source_rows());
}

/// While a refresh streams, the server shows every restage session as TLS.
#[test]
fn the_server_sees_tls_sessions() {
    let Some(t) = Tls::new("tlssess") else { return };
    let config = t.dir.path().join("restage.yaml");
    std::fs::write(
        &config,
        format!(
            "source:\n  url: {}\ntarget:\n  url: {}\n  database: {}\nsecret: test-secret-0123456789abcdef\nstrict: off\n",
            t.cluster.url("localhost", &t.source, "sslmode=require"),
            t.cluster.url("localhost", "postgres", "sslmode=require"),
            t.staging
        ),
    )
    .unwrap();
    let mut child = harness::restage()
        .config(&config)
        .arg("refresh")
        .env("RESTAGE_TEST_PAUSE_AT", "data")
        .spawn();
    child.wait_paused("data");
    let sessions = t
        .cluster
        .psql(
            "postgres",
            "SELECT count(*) || ' ' || bool_and(s.ssl) || ' ' || min(s.version)
               FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'restage'",
        )
        .unwrap();
    let parts: Vec<&str> = sessions.split_whitespace().collect();
    assert!(
        parts[0].parse::<u32>().unwrap() >= 3,
        "leader, worker, target: {sessions}"
    );
    assert_eq!(parts[1], "true", "every restage session is TLS: {sessions}");
    assert!(parts[2].starts_with("TLSv1."), "{sessions}");
    child.resume();
    let (code, out, err) = child.finish(std::time::Duration::from_secs(300));
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn verify_full_with_the_ca_works() {
    let Some(t) = Tls::new("tlsfull") else { return };
    let q = format!("sslmode=verify-full&sslrootcert={}", t.ca());
    let (code, out, err) = t.refresh(("localhost", &q), ("localhost", &q));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(t.staging_rows(), t.source_rows());
}

#[test]
fn verify_full_in_key_value_form_works() {
    let Some(t) = Tls::new("tlskv") else { return };
    let config = t.dir.path().join("restage.yaml");
    std::fs::write(
        &config,
        format!(
            "source:\n  url: \"host=localhost port={port} user=postgres dbname={src} sslmode=verify-full sslrootcert={ca}\"\ntarget:\n  url: \"host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}\"\n  database: {stg}\nsecret: test-secret-0123456789abcdef\nstrict: off\n",
            port = t.cluster.port,
            src = t.source,
            stg = t.staging,
            ca = t.ca()
        ),
    )
    .unwrap();
    let (code, out, err) = harness::restage()
        .config(&config)
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(t.staging_rows(), t.source_rows());
}

/// verify-ca checks the chain only: connecting by IP address works.
#[test]
fn verify_ca_with_the_ca_ignores_the_host_name() {
    let Some(t) = Tls::new("tlsca") else { return };
    let q = format!("sslmode=verify-ca&sslrootcert={}", t.ca());
    let (code, out, err) = t.refresh(("127.0.0.1", &q), ("127.0.0.1", &q));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(t.staging_rows(), t.source_rows());
}

/// The certificate is for `localhost`; connecting to 127.0.0.1 with verify-full fails, on
/// the source as on the target, naming the server and the reason.
#[test]
fn verify_full_with_the_wrong_host_name_fails() {
    let Some(t) = Tls::new("tlshost") else { return };
    let q = format!("sslmode=verify-full&sslrootcert={}", t.ca());
    // The source.
    let (code, out, err) = t.refresh(("127.0.0.1", &q), ("localhost", &q));
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        last_line(&err),
        format!(
            "restage: error: {}: cannot connect: error performing TLS handshake: invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"localhost\")",
            t.server("127.0.0.1", &t.source)
        )
    );
    assert!(t.created_nothing());
    // The target (contacted first, for the lock).
    let (code, out, err) = t.refresh(("localhost", &q), ("127.0.0.1", &q));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        last_line(&err).starts_with(&format!(
            "restage: error: {}: cannot connect: error performing TLS handshake: invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
            t.server("127.0.0.1", "postgres")
        )),
        "{err}"
    );
    assert!(t.created_nothing());
}

/// With the public roots (`sslrootcert=system`) or another CA, the chain does not verify.
/// (Without any `sslrootcert`, libpq's `~/.postgresql/root.crt` is needed: tests/libpq.rs.)
#[test]
fn verify_full_without_the_right_ca_fails() {
    let Some(t) = Tls::new("tlsnoca") else { return };
    let good = format!("sslmode=verify-full&sslrootcert={}", t.ca());
    for bad in [
        "sslmode=verify-full&sslrootcert=system".to_string(),
        format!("sslmode=verify-full&sslrootcert={}", t.other_ca()),
    ] {
        let (code, out, err) = t.refresh(("localhost", &good), ("localhost", &bad));
        assert_eq!(code, 1, "{bad}\n{out}\n{err}");
        assert_eq!(
            last_line(&err),
            format!(
                "restage: error: {}: cannot connect: error performing TLS handshake: invalid peer certificate: UnknownIssuer",
                t.server("localhost", "postgres")
            ),
            "{bad}"
        );
        let (code, out, err) = t.refresh(("localhost", &bad), ("localhost", &good));
        assert_eq!(code, 1, "{bad}\n{out}\n{err}");
        assert!(
            last_line(&err).starts_with(&format!(
                "restage: error: {}: cannot connect: error performing TLS handshake: invalid peer certificate: UnknownIssuer",
                t.server("localhost", &t.source)
            )),
            "{bad}: {err}"
        );
        assert!(t.created_nothing());
    }
}

#[test]
fn a_missing_root_certificate_file_is_named() {
    let Some(t) = Tls::new("tlsmissing") else {
        return;
    };
    let q = "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let (code, out, err) = t.refresh(("localhost", "sslmode=require"), ("localhost", q));
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        last_line(&err),
        format!(
            "restage: error: {}: cannot read sslrootcert /nonexistent/ca.pem: No such file or directory (os error 2)",
            t.server("localhost", "postgres")
        )
    );
}

/// The server takes only TLS: sslmode=disable is refused, and says why.
#[test]
fn disable_is_refused_by_a_tls_only_server() {
    let Some(t) = Tls::new("tlsoff") else { return };
    let (code, out, err) = t.refresh(
        ("localhost", "sslmode=require"),
        ("localhost", "sslmode=disable"),
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with(&format!(
            "restage: error: {}: cannot connect: FATAL: no pg_hba.conf entry for host",
            t.server("localhost", "postgres")
        )),
        "{line}"
    );
    assert!(line.contains("no encryption"), "{line}");
}
