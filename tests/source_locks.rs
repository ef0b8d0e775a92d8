//! The snapshot's blind spot (issue 11): commands that are not MVCC-safe (TRUNCATE, a
//! rewriting ALTER TABLE, DROP, RENAME) issued while restage copies. Every source table is
//! locked ACCESS SHARE before the snapshot is used, held until the run ends, with a bounded
//! wait: either a table is copied whole and consistent, or the run fails naming it, and
//! staging is untouched either way. Also the wait for a table another session holds before
//! the run starts: bounded by `lock_timeout`, reported with the holder, no backend left behind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness;
use crate::harness::Setup;

/// `a` is the biggest table, so with `jobs: 1` it is copied first and the `data` pause point
/// (its first batch written) comes before `b` is read.
const SCHEMA: &str = "
    CREATE TABLE a (id int PRIMARY KEY, pad text);
    INSERT INTO a SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
    CREATE TABLE b (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO b SELECT g, 'row ' || g FROM generate_series(1, 10000) g;
";

const CONFIG: &str = "strict: off\nlock_timeout: 2s";

/// A setup whose config copies one table at a time (the harness writes `jobs: 2`).
async fn one_job(prefix: &str, schema: &str, extra: &str) -> Setup {
    let setup = Setup::new(prefix, schema, extra).await;
    let yaml = std::fs::read_to_string(setup.config_path())
        .expect("config")
        .replace("\njobs: 2\n", "\njobs: 1\n");
    std::fs::write(setup.config_path(), yaml).expect("config");
    setup
}

const PAUSE_AT_DATA: [(&str, &str); 1] = [("RESTAGE_TEST_PAUSE_AT", "data")];

/// The backends restage has on `db` now.
async fn restage_backends(db: &str) -> i64 {
    let admin = harness::connect(&harness::admin_url()).await;
    harness::scalar_with(
        &admin,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'restage'",
        &[&db],
    )
    .await
}

/// Waits (at most `timeout`) until restage has no backend on `db`; the count left.
async fn no_restage_backend_within(db: &str, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = restage_backends(db).await;
        if n == 0 || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `pid` waits for a lock; panics after 30 s.
async fn wait_until_waiting(db: &harness::TestDb, pid: i32) {
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = harness::scalar_with(
            &client,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)",
            &[&pid],
        )
        .await;
        if waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Checksums = BTreeMap<String, (u64, String)>;

/// A live staging database built from the source, and its content.
async fn live(prefix: &str, schema: &str, extra: &str) -> (Setup, Checksums) {
    let setup = one_job(prefix, schema, extra).await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "first refresh\nstdout:\n{out}\nstderr:\n{err}");
    let content = harness::table_checksums(&setup.staging_url()).await;
    // Generation names have a one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (setup, content)
}

/// The live database serves `expected` and no half-built database is left.
async fn staging_untouched(setup: &Setup, expected: &Checksums, what: &str) {
    let now = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(&now, expected, "{what}: the live staging database changed");
    let admin = harness::connect(&harness::admin_url()).await;
    let building: i64 = harness::scalar_with(
        &admin,
        "SELECT count(*) FROM pg_database WHERE datname LIKE $1
            AND shobj_description(oid, 'pg_database') LIKE 'restage:building:%'",
        &[&format!(
            "{}\\_\\_restage\\_%",
            setup.staging.replace('_', "\\_")
        )],
    )
    .await;
    assert_eq!(building, 0, "{what}: a half-built database was left");
}

/// Every table restage reads — partitioned parents and their partitions, inheritance parents
/// and children, a subset root the key pass reads, a schema-only table, a table in a quoted
/// schema — is locked ACCESS SHARE by the run once it has planned (so before the key pass
/// read anything: the lock comes before the snapshot), and the run then goes on.
#[tokio::test]
async fn source_locks_cover_every_table_the_run_reads() {
    let schema = "
        CREATE TABLE users (id int PRIMARY KEY, name text);
        INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;
        CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users (id));
        INSERT INTO orders SELECT g, 1 + g % 100 FROM generate_series(1, 300) g;
        CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        INSERT INTO events SELECT g, date '2024-06-01' + g FROM generate_series(1, 300) g;
        CREATE TABLE base (id int);
        CREATE TABLE child (extra text) INHERITS (base);
        INSERT INTO child VALUES (1, 'x');
        CREATE TABLE audit (id int);
        CREATE SCHEMA \"Odd.Schema\";
        CREATE TABLE \"Odd.Schema\".\"T\" (id int);
    ";
    let setup = Setup::new(
        "lk_cover",
        schema,
        "strict: off\nsample:\n  tables:\n    public.users: { percent: 50 }\n    public.audit: { rows: 0 }",
    )
    .await;
    let mut child = setup.spawn(&["refresh"], &[("RESTAGE_TEST_PAUSE_AT", "plan")]);
    child.wait_paused("plan");
    let source = setup.source.client().await;
    let locked: Vec<String> = source
        .query(
            "SELECT DISTINCT format('%I.%I', n.nspname, c.relname)
               FROM pg_locks l
               JOIN pg_class c ON c.oid = l.relation
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.datname = current_database() AND a.application_name = 'restage'
                AND l.mode = 'AccessShareLock' AND l.granted AND c.relkind IN ('r', 'p')
                AND n.nspname <> 'pg_catalog'
              ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_locks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        locked,
        [
            "\"Odd.Schema\".\"T\"",
            "public.audit",
            "public.base",
            "public.child",
            "public.events",
            "public.events_2024",
            "public.events_2025",
            "public.orders",
            "public.users",
        ]
    );
    child.resume();
    let (code, out, err) = child.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

/// A table held ACCESS EXCLUSIVE (a migration) before the run starts: the run waits at most
/// `lock_timeout`, says while it waits which table and which session (never that session's
/// query), fails (exit 1) naming both, leaves the live staging database as it was, and leaves
/// no backend on the source. The table is a subset root, read by the key pass.
#[tokio::test]
async fn source_locks_a_table_held_before_the_run_fails_within_lock_timeout() {
    let extra = "strict: off\nlock_timeout: 3s\nsample:\n  tables:\n    public.b: { percent: 50 }";
    let (setup, content) = live("lk_held", SCHEMA, extra).await;
    let holder = setup.source.client().await;
    holder
        .batch_execute(
            "SET application_name = 'rt_migration'; BEGIN; LOCK TABLE b IN ACCESS EXCLUSIVE MODE;
             SELECT 'a-value-of-the-migration-42'",
        )
        .await
        .expect("holder");
    let holder_pid: i32 = harness::scalar(&holder, "SELECT pg_backend_pid()").await;

    let started = Instant::now();
    let (code, out, err) = setup.run(&["refresh"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        err.contains("waiting for a lock on source table public.b"),
        "a progress line while it waits:\n{err}"
    );
    assert!(
        err.contains("could not lock source table public.b")
            && err.contains(&format!("pid {holder_pid} holds ACCESS EXCLUSIVE"))
            && err.contains("rt_migration")
            && err.contains("within 3s (lock_timeout)"),
        "the failure names the table and the holder:\n{err}"
    );
    assert!(
        !err.contains("a-value-of-the-migration-42")
            && !out.contains("a-value-of-the-migration-42"),
        "never the holder's query:\n{err}"
    );
    assert_eq!(
        no_restage_backend_within(&setup.source.name, Duration::from_secs(5)).await,
        0,
        "a restage backend was left on the source"
    );
    staging_untouched(&setup, &content, "held before the run").await;
    holder.batch_execute("ROLLBACK").await.expect("release");
}

/// SIGINT while the leader waits for a lock: the run stops at once, and the server stops
/// waiting too (restage cancels the statement), long before `lock_timeout`.
#[tokio::test]
async fn source_locks_an_interrupted_wait_leaves_no_backend_behind() {
    let setup = Setup::new("lk_sigint", SCHEMA, "strict: off\nlock_timeout: 120s").await;
    let holder = setup.source.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("holder");
    let mut child = setup.spawn(&["refresh"], &[]);
    child.wait_for(
        "waiting for a lock on source table public.a",
        Duration::from_secs(60),
    );
    let waiting = restage_backends(&setup.source.name).await;
    assert!(waiting >= 1, "restage waits on the source");
    child.signal(libc::SIGINT);
    let (code, _, err) = child.finish(Duration::from_secs(30));
    assert_ne!(code, 0, "{err}");
    assert_eq!(
        no_restage_backend_within(&setup.source.name, Duration::from_secs(5)).await,
        0,
        "the wait outlived restage:\n{err}"
    );
    assert!(harness::databases_like(&setup.staging).await.is_empty());
    holder.batch_execute("ROLLBACK").await.expect("release");
}

/// A command that needs ACCESS EXCLUSIVE on `b`, issued while restage copies `a`: it waits
/// for restage (which holds ACCESS SHARE on `b` from before the snapshot), and restage's
/// read of `b` queues behind it: the run fails (exit 1) naming `b` and the waiting session,
/// the live staging database is untouched, and the command goes through once restage is
/// gone. Without the lock the command went through at once and `b` was copied empty.
async fn a_command_that_waits_fails_the_run_naming_the_table(prefix: &str, ddl: &str) {
    let (setup, content) = live(prefix, SCHEMA, CONFIG).await;
    let mut child = setup.spawn(&["refresh"], &PAUSE_AT_DATA);
    child.wait_paused("data");

    let ddl_session = setup.source.client().await;
    let ddl_pid: i32 = harness::scalar(&ddl_session, "SELECT pg_backend_pid()").await;
    let sql = format!("BEGIN; {ddl}; COMMIT");
    let ddl_task = tokio::spawn(async move { ddl_session.batch_execute(&sql).await });
    wait_until_waiting(&setup.source, ddl_pid).await;

    child.resume();
    let (code, out, err) = child.finish(Duration::from_secs(300));
    assert_eq!(code, 1, "{ddl}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("source table public.b could not be read within")
            && err.contains(&format!("pid {ddl_pid} waits for ACCESS EXCLUSIVE")),
        "{ddl}: the failure names the table and the session:\n{err}"
    );
    staging_untouched(&setup, &content, ddl).await;
    let done = tokio::time::timeout(Duration::from_secs(30), ddl_task)
        .await
        .unwrap_or_else(|_| panic!("{ddl}: still waiting after restage exited"))
        .expect("task");
    assert!(done.is_ok(), "{ddl}: {done:?}");
}

#[tokio::test]
async fn source_locks_truncate_during_the_copy() {
    a_command_that_waits_fails_the_run_naming_the_table(
        "lk_truncate",
        "TRUNCATE b; INSERT INTO b VALUES (1, 'after the truncate')",
    )
    .await;
}

#[tokio::test]
async fn source_locks_alter_type_during_the_copy() {
    a_command_that_waits_fails_the_run_naming_the_table(
        "lk_alter",
        "ALTER TABLE b ALTER v TYPE varchar(100)",
    )
    .await;
}

#[tokio::test]
async fn source_locks_add_column_with_a_volatile_default_during_the_copy() {
    a_command_that_waits_fails_the_run_naming_the_table(
        "lk_add_col",
        "ALTER TABLE b ADD COLUMN z float8 DEFAULT random()",
    )
    .await;
}

#[tokio::test]
async fn source_locks_drop_during_the_copy() {
    a_command_that_waits_fails_the_run_naming_the_table("lk_drop", "DROP TABLE b").await;
}

#[tokio::test]
async fn source_locks_rename_during_the_copy() {
    a_command_that_waits_fails_the_run_naming_the_table("lk_rename", "ALTER TABLE b RENAME TO b2")
        .await;
}

/// The same commands from a session with its own `lock_timeout` (as careful migrations do):
/// they give up while restage holds the table, and the run copies `b` whole, as it was at
/// the snapshot.
#[tokio::test]
async fn source_locks_a_command_that_gives_up_leaves_the_table_whole() {
    let setup = one_job("lk_gives_up", SCHEMA, CONFIG).await;
    let before = harness::table_checksums(&setup.source.url()).await;
    for ddl in [
        "TRUNCATE b",
        "ALTER TABLE b ALTER v TYPE varchar(100)",
        "ALTER TABLE b ADD COLUMN z float8 DEFAULT random()",
        "DROP TABLE b",
        "ALTER TABLE b RENAME TO b2",
    ] {
        let mut child = setup.spawn(&["refresh"], &PAUSE_AT_DATA);
        child.wait_paused("data");
        let session = setup.source.client().await;
        let refused = session
            .batch_execute(&format!("SET lock_timeout = '300ms'; {ddl}"))
            .await;
        assert!(refused.is_err(), "{ddl}: went through while restage copies");
        child.resume();
        let (code, out, err) = child.finish(Duration::from_secs(300));
        assert_eq!(code, 0, "{ddl}\nstdout:\n{out}\nstderr:\n{err}");
        let staging = harness::table_checksums(&setup.staging_url()).await;
        assert_eq!(
            staging["public.b"], before["public.b"],
            "{ddl}: b copied whole"
        );
        assert_eq!(staging["public.b"].0, 10000);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}
