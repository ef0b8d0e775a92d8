//! Test harness shared by the database tests: a fresh PostgreSQL database per test (dropped on
//! success, kept on failure for debugging, stale ones from earlier runs removed), a unique Redis
//! key prefix per test, one builder for running the `restage` binary ([`restage`]), and
//! [`scalar`] for the one value of a query.
//!
//! A module of the one test binary (tests/main.rs); test modules `use crate::harness`.
#![allow(dead_code)]

pub mod command;
pub mod proxy;
pub mod s3;

pub use command::{Output, Restage, generate_demo, restage};

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls};

/// The maintenance URL of the test server: `RESTAGE_TEST_PG`, or the local trust-auth server.
pub fn admin_url() -> String {
    std::env::var("RESTAGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The Redis URL for tests: `RESTAGE_TEST_REDIS`, or the local server.
pub fn redis_url() -> String {
    std::env::var("RESTAGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
}

/// `admin_url` with another database.
pub fn url_for(db: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(pos) if admin[..pos].contains("://") && pos > admin.find("://").unwrap_or(0) + 2 => {
            let (base, rest) = admin.split_at(pos);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{db}{query}")
        }
        _ => format!("{admin} dbname={db}"),
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to test server: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
static CLEANUP: Once = Once::new();

/// A name no other test (in this or another process) uses: prefix, pid, counter, time.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "rt_{prefix}_{}_{n}_{:x}",
        std::process::id(),
        nanos % 0xfffff
    )
}

/// Seconds since the epoch, recorded on each test database so later runs can drop stale ones.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drops test databases (and their restage generations) left by runs more than two hours
/// old: a failed test keeps its database for debugging, but not forever.
async fn cleanup_stale(admin: &Client) {
    let rows = admin
        .query(
            "SELECT d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), '')
               FROM pg_database d WHERE d.datname LIKE 'rt\\_%'",
            &[],
        )
        .await
        .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(7200);
    for row in rows {
        let name: String = row.get(0);
        let comment: String = row.get(1);
        let created = comment
            .strip_prefix("restage-test created ")
            .and_then(|s| s.trim().parse::<u64>().ok());
        // Generations of test databases carry restage's own comment; judge them by their base.
        let stale = match created {
            Some(t) => t < cutoff,
            None => false,
        };
        if stale {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// A database made for one test. Dropped (with every `<name>__restage_*` generation) when the
/// test passes; kept when it panics, with its name printed.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// Creates an empty database named after `prefix`.
    pub async fn create(prefix: &str) -> TestDb {
        TestDb::create_with(prefix, "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'").await
    }

    /// Creates an empty database named after `prefix` from `template0` with `options` (the
    /// encoding and locale clauses of CREATE DATABASE: `ENCODING 'LATIN1' LC_COLLATE 'C' …`).
    pub async fn create_with(prefix: &str, options: &str) -> TestDb {
        let admin = connect(&admin_url()).await;
        let first = !CLEANUP.is_completed();
        CLEANUP.call_once(|| {});
        if first {
            cleanup_stale(&admin).await;
        }
        let name = unique_name(prefix);
        // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 {options}"
            ))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e:?}"));
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE \"{name}\" IS 'restage-test created {}'",
                now_secs()
            ))
            .await
            .unwrap_or_else(|e| panic!("commenting test database {name}: {e:?}"));
        TestDb { name }
    }

    /// A name for a database the test expects restage to create (not created here), dropped
    /// with this one.
    pub fn sibling(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.name)
    }

    pub fn url(&self) -> String {
        url_for(&self.name)
    }

    pub async fn client(&self) -> Client {
        connect(&self.url()).await
    }

    pub async fn execute(&self, sql: &str) {
        let client = self.client().await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("in {}: {e}\n{sql}", self.name));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database kept for debugging: {}", self.name);
            return;
        }
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a small runtime of our own on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(drop_database_family(&name));
            }
        })
        .join();
    }
}

/// What the names of restage's generations of `staging` start with (`<staging>__restage_`,
/// or its shortened form for a long name: the tests' names often are).
pub fn generations_prefix(staging: &str) -> String {
    restage::refresh::names::Names::of(staging).prefix()
}

/// Drops the databases restage made for `staging` (its generations and control database),
/// for a test whose staging database is not `<source>_stg`; the live one goes with the
/// source's family when its name starts with the source's.
pub async fn drop_restage_family(staging: &str) {
    let admin = connect(&admin_url()).await;
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&restage_family_pattern(staging)],
        )
        .await
        .unwrap_or_default();
    for row in rows {
        let db: String = row.get(0);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await;
    }
}

/// `LIKE` pattern of every database of `staging`'s family that restage makes: generations and
/// the control database.
fn restage_family_pattern(staging: &str) -> String {
    let base = restage::refresh::names::Names::of(staging)
        .base()
        .to_string();
    format!("{}\\_\\_restage%", base.replace('_', "\\_"))
}

/// Drops `name` and every database whose name starts with `name` followed by `_` (siblings
/// and restage generations), and the generations and control database of the staging
/// sibling (`<name>_stg`) and of every sibling that exists (`<name>_rst`, `<name>_dev`, …),
/// whose names restage shortens when they are long (`<first 21 bytes>_<hash>__restage`),
/// so they do not start with `name`.
pub async fn drop_database_family(name: &str) {
    let admin = connect(&admin_url()).await;
    let pattern = format!("{}%", name.replace('_', "\\_"));
    let members: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let mut patterns = vec![pattern, restage_family_pattern(&format!("{name}_stg"))];
    patterns.extend(members.iter().map(|m| restage_family_pattern(m)));
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE ANY($1)",
            &[&patterns],
        )
        .await
        .unwrap_or_default();
    for row in rows {
        let db: String = row.get(0);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await;
    }
}

/// A unique Redis key prefix for one test, e.g. `rt_warm_1234_0_ab:`.
pub fn redis_prefix(prefix: &str) -> String {
    format!("{}:", unique_name(prefix))
}

/// The one value of a query without parameters (first row, first column); panics with the
/// query when it fails or returns no row.
pub async fn scalar<T>(client: &Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    scalar_with(client, sql, &[]).await
}

/// Waits, up to 10 s, until no session is connected to database `name`, and panics if one
/// still is: a dropped client's session ends on the server a moment after its socket
/// closes, and commands that refuse a database in use (`copies drop`) would meet it.
pub async fn wait_until_no_sessions(admin: &Client, name: &str) {
    for _ in 0..200 {
        let n: i64 = scalar_with(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await;
        if n == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("sessions still connected to {name} after 10 s");
}

/// [`scalar`] with parameters.
pub async fn scalar_with<T>(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A source database, a staging database name, a config and a rules folder in a temp dir:
/// what a refresh test needs.
pub struct Setup {
    pub source: TestDb,
    /// The name of the staging database restage builds (`target.database`).
    pub staging: String,
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// Creates the source from `schema_sql` and writes `restage.yaml` with `extra` appended
    /// (YAML: strict, rules, sample, …). The secret is fixed.
    pub async fn new(prefix: &str, schema_sql: &str, extra: &str) -> Setup {
        Setup::with_source(TestDb::create(prefix).await, schema_sql, extra).await
    }

    /// [`Setup::new`] with a source database the test made (another encoding or locale).
    pub async fn with_source(source: TestDb, schema_sql: &str, extra: &str) -> Setup {
        source.execute(schema_sql).await;
        let staging = source.sibling("stg");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
        let setup = Setup {
            source,
            staging,
            dir,
        };
        setup.write_config(extra);
        setup
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("restage.yaml")
    }

    pub fn write_config(&self, extra: &str) {
        let yaml = format!(
            "source:\n  url: {}\ntarget:\n  url: {}\n  database: {}\n  keep: 1\njobs: 2\nsecret: test-secret-0123456789abcdef\n{extra}\n",
            self.source.url(),
            admin_url(),
            self.staging
        );
        std::fs::write(self.config_path(), yaml).expect("write config");
    }

    pub fn write_rules(&self, name: &str, yaml: &str) {
        std::fs::write(self.dir.path().join("rules").join(name), yaml).expect("write rules");
    }

    /// A `restage -c <this config>` run to add arguments to.
    pub fn restage(&self) -> Restage {
        restage().config(self.config_path())
    }

    /// Runs `restage <args>` with this config; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.restage().args(args).run().into_parts()
    }

    /// Issue 10: `restage validate` must refuse (exit 2) what `restage refresh` refuses with
    /// exit 2. Ok when it does; otherwise what it printed, so a test can try several
    /// configurations and report every one it accepts.
    pub fn validate_refuses(&self) -> Result<(), String> {
        let run = self.restage().arg("validate").run();
        if run.code == 2 {
            Ok(())
        } else {
            Err(format!(
                "validate exited {} (refresh exits 2)\nstdout:\n{}\nstderr:\n{}",
                run.code, run.stdout, run.stderr
            ))
        }
    }

    pub fn staging_url(&self) -> String {
        url_for(&self.staging)
    }

    pub async fn staging(&self) -> Client {
        connect(&self.staging_url()).await
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The staging database and its generations are siblings of the source: dropping the
        // source's family removes them (TestDb's own Drop does it).
    }
}

/// Asserts that two [`table_checksums`] hold the same tables, each with the same row count
/// and content.
pub fn assert_same_tables(
    expected: &std::collections::BTreeMap<String, (u64, String)>,
    got: &std::collections::BTreeMap<String, (u64, String)>,
) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "same tables"
    );
    for (table, (rows, sum)) in expected {
        let (grows, gsum) = &got[table];
        assert_eq!(rows, grows, "{table}: row count");
        assert_eq!(sum, gsum, "{table}: content");
    }
}

/// Every ordinary table (and leaf partition) of a database: row count and a SHA-256 of its
/// COPY output in a fixed order (rows sorted by their text form).
pub async fn table_checksums(url: &str) -> std::collections::BTreeMap<String, (u64, String)> {
    use futures_util::StreamExt;
    use sha2::Digest;
    let client = connect(url).await;
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), format('%I', c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')
              ORDER BY 1",
            &[],
        )
        .await
        .expect("list tables");
    let mut out = std::collections::BTreeMap::new();
    for row in tables {
        let name: String = row.get(0);
        let alias: String = row.get(1);
        let sql = format!("COPY (SELECT * FROM ONLY {name} ORDER BY {alias}::text) TO STDOUT");
        let stream = client.copy_out(&sql).await.expect("copy out");
        let mut stream = std::pin::pin!(stream);
        let mut hasher = sha2::Sha256::new();
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("copy chunk");
            hasher.update(&chunk);
            rows += 1;
        }
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.insert(name, (rows, digest));
    }
    out
}

// ----- Additions for the fault, bad-input, secrets and TLS tests (issue 6). -----

pub mod cluster;

/// `host:port` of the test PostgreSQL server (from `admin_url`).
pub fn admin_host_port() -> String {
    use std::str::FromStr;
    let config = tokio_postgres::Config::from_str(&admin_url()).expect("RESTAGE_TEST_PG parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// The user of `admin_url` (postgres by default).
pub fn admin_user() -> String {
    use std::str::FromStr;
    tokio_postgres::Config::from_str(&admin_url())
        .ok()
        .and_then(|c| c.get_user().map(str::to_string))
        .unwrap_or_else(|| "postgres".to_string())
}

/// `host:port` of the test Redis (from `redis_url`).
pub fn redis_host_port() -> String {
    let url = redis_url();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let host_port = rest.split('/').next().unwrap_or("127.0.0.1:6379");
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:6379")
    }
}

/// A URL for database `db` of the test server reached through a local port (a proxy).
pub fn url_via(port: u16, db: &str) -> String {
    format!("postgres://{}@127.0.0.1:{port}/{db}", admin_user())
}

/// Every database whose name starts with `prefix`, sorted.
pub async fn databases_like(prefix: &str) -> Vec<String> {
    let admin = connect(&admin_url()).await;
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&pattern],
        )
        .await
        .expect("list databases")
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

impl Setup {
    /// Writes `restage.yaml` with other source and target URLs (a proxy, a private server).
    pub fn write_config_urls(&self, source_url: &str, target_url: &str, extra: &str) {
        let yaml = format!(
            "source:\n  url: {source_url}\ntarget:\n  url: {target_url}\n  database: {}\n  keep: 1\njobs: 2\nsecret: test-secret-0123456789abcdef\n{extra}\n",
            self.staging
        );
        std::fs::write(self.config_path(), yaml).expect("write config");
    }

    /// Runs `restage <args>` with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        self.restage().args(args).envs(env).run().into_parts()
    }

    /// Starts `restage <args>` as a child process with extra environment variables.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        self.restage().args(args).envs(env).spawn()
    }
}

/// A restage child process ([`Restage::spawn`]) whose stderr is read as it comes, so a test
/// can wait for a line (`paused at data`) and then kill it, signal it or let it go on.
pub struct Running {
    child: std::process::Child,
    stderr: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Collects the output of a child started with stdout and stderr piped.
    pub(crate) fn new(mut child: std::process::Child) -> Running {
        use std::io::Read;
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new((
            std::sync::Mutex::new(String::new()),
            std::sync::Condvar::new(),
        ));
        let shared = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (text, cond) = &*shared;
                        text.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                        cond.notify_all();
                    }
                }
            }
        });
        Running {
            child,
            stderr,
            stdout: Some(stdout),
            stderr_thread: Some(stderr_thread),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the child wrote on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until stderr contains `needle`; panics (with the stderr) on timeout or when the
    /// child exits first.
    pub fn wait_for(&mut self, needle: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let (text, cond) = &*self.stderr;
        let mut guard = text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if guard.contains(needle) {
                return;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                panic!("timed out waiting for `{needle}` on restage's stderr:\n{guard}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader a moment to collect the last output.
                drop(guard);
                std::thread::sleep(std::time::Duration::from_millis(200));
                panic!(
                    "restage exited ({status}) before `{needle}` appeared; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
            let wait = (deadline - now).min(std::time::Duration::from_millis(200));
            guard = cond
                .wait_timeout(guard, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for `restage: paused at <point>` (the testing hook).
    pub fn wait_paused(&mut self, point: &str) {
        self.wait_for(
            &format!("restage: paused at {point} "),
            std::time::Duration::from_secs(180),
        );
    }

    /// Sends a signal (SIGINT, SIGTERM, SIGUSR1…).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the pid of our own child.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Lets a paused run go on (SIGUSR1).
    pub fn resume(&self) {
        self.signal(libc::SIGUSR1);
    }

    /// SIGKILL, then reaps the child; returns what it printed.
    pub fn kill(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (_, out, err) = self.collect(-9);
        (out, err)
    }

    /// Waits for the child to exit (at most `timeout`, then SIGKILL and panic); returns
    /// (exit code, stdout, stderr). A child killed by a signal gives -signal.
    pub fn finish(mut self, timeout: std::time::Duration) -> (i32, String, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return self.collect(command::exit_code(status));
                }
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let (_, out, err) = self.collect(-9);
                    panic!("restage did not finish in {timeout:?}; stdout:\n{out}\nstderr:\n{err}");
                }
            }
        }
    }

    fn collect(&mut self, code: i32) -> (i32, String, String) {
        let out = self
            .stdout
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        (code, out, self.stderr_so_far())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Never leave a restage child behind a failed test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
