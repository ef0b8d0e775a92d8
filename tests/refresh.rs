//! The refresh pipeline end to end against the real PostgreSQL (issue 2).

use crate::harness;

use crate::harness::Setup;

const ALL_TYPES: &str = include_str!("fixtures/all_types.sql");

/// With keep-only rules, every table of staging equals the source, row for row, byte for byte;
/// the objects exist; sequences continue after the copied values; triggers did not fire.
#[tokio::test]
async fn keep_only_refresh_reproduces_every_table() {
    let setup = Setup::new("keep", ALL_TYPES, "strict: off").await;
    // Split big tables into ranges even though they are small, to exercise range jobs.
    let (code, stdout, stderr) = setup
        .restage()
        .env("RESTAGE_SPLIT_BYTES", "16384")
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is live"), "{stdout}");

    let source = harness::table_checksums(&setup.source.url()).await;
    let staging = harness::table_checksums(&setup.staging_url()).await;
    harness::assert_same_tables(&source, &staging);
    assert_eq!(source["public.everything"].0, 503);
    assert_eq!(
        source["public.events_2024"].0
            + source["public.events_2023"].0
            + source["public.events_other"].0,
        1000
    );

    let stg = setup.staging().await;
    // Views and the materialized view exist; the materialized view is populated.
    let n: i64 = harness::scalar(&stg, "SELECT n FROM order_stats").await;
    assert_eq!(n, 100);
    let big: i64 = harness::scalar(&stg, "SELECT count(*) FROM big_orders").await;
    assert!(big > 0);
    // Sequences continue after the copied values.
    let next: i64 = harness::scalar(&stg, "SELECT nextval('everything_id_seq')").await;
    assert_eq!(next, 504);
    let next: i64 = harness::scalar(&stg, "SELECT nextval('standalone_seq')").await;
    assert_eq!(next, 1002);
    let next: i32 =
        harness::scalar(&stg, "INSERT INTO orders (total) VALUES (1) RETURNING id").await;
    assert_eq!(next, 101);
    // The trigger exists after the load (it fired on this insert) ...
    let touched: bool = harness::scalar(
        &stg,
        "SELECT updated_at > now() - interval '1 hour' FROM orders WHERE id = 101",
    )
    .await;
    assert!(touched);
    // ... identity columns of partitioned tables continue too.
    let id: i64 = harness::scalar(
        &stg,
        "INSERT INTO events (happened) VALUES ('2024-05-05') RETURNING id",
    )
    .await;
    assert_eq!(id, 1001);
    // Constraints and indexes were built after the data.
    let fk: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated",
    )
    .await;
    assert_eq!(fk, 1);
    let idx: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_total_idx'",
    )
    .await;
    assert_eq!(idx, 1);
    let comment: Option<String> = harness::scalar(
        &stg,
        "SELECT obj_description('orders'::regclass, 'pg_class')",
    )
    .await;
    assert_eq!(comment.as_deref(), Some("orders of things"));
    // Generated columns are computed by staging.
    let len: Option<i32> =
        harness::scalar(&stg, "SELECT label_len FROM everything WHERE id = 1").await;
    assert_eq!(len, Some(26));
}

/// A second refresh retires the first database as a generation, `keep` limits how many stay,
/// `generations` lists them and `rollback` swaps the previous one back.
#[tokio::test]
async fn generations_swap_keep_and_rollback() {
    let setup = Setup::new(
        "gens",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'first');",
        "strict: off",
    )
    .await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    setup.source.execute("UPDATE t SET v = 'second'").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    let v: String = harness::scalar(&setup.staging().await, "SELECT v FROM t").await;
    assert_eq!(v, "second");

    setup.source.execute("UPDATE t SET v = 'third'").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) = setup.run(&["--json", "generations"]);
    assert_eq!(code, 0, "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    // keep: 1 → the live database and one generation.
    assert_eq!(
        states.iter().filter(|s| **s == "live").count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "generation").count(),
        1,
        "{stdout}"
    );

    let (code, stdout, stderr) = setup.run(&["rollback"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: String = harness::scalar(&setup.staging().await, "SELECT v FROM t").await;
    assert_eq!(v, "second");
}

/// Rows committed on the source after the snapshot was taken never appear in staging.
#[tokio::test]
async fn rows_written_during_the_refresh_stay_out() {
    let setup = Setup::new(
        "consistency",
        "CREATE TABLE big (id bigint PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;
         CREATE TABLE small (id int PRIMARY KEY);
         INSERT INTO small VALUES (1);",
        "strict: off",
    )
    .await;
    let child = setup.restage().arg("refresh").spawn();
    // The building database is created after the snapshot: once it exists, write.
    let building = harness::generations_prefix(&setup.staging);
    let mut seen = false;
    for _ in 0..600 {
        if !harness::databases_like(&building).await.is_empty() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the refresh never created its database");
    setup
        .source
        .execute("INSERT INTO big VALUES (-1, 'late'); INSERT INTO small VALUES (-1); DELETE FROM big WHERE id = 1;")
        .await;
    let (code, _, stderr) = child.finish(harness::command::DEFAULT_TIMEOUT);
    assert_eq!(code, 0, "{stderr}");
    let stg = setup.staging().await;
    let late: i64 = harness::scalar(&stg, "SELECT (SELECT count(*) FROM big WHERE id = -1) + (SELECT count(*) FROM small WHERE id = -1)").await;
    assert_eq!(late, 0, "rows inserted after the snapshot reached staging");
    let first: i64 = harness::scalar(&stg, "SELECT count(*) FROM big WHERE id = 1").await;
    assert_eq!(
        first, 1,
        "a row deleted after the snapshot must still be in staging"
    );
    let total: i64 = harness::scalar(&stg, "SELECT count(*) FROM big").await;
    assert_eq!(total, 300000);
}

/// A session restage opens on the source cannot write, whatever it runs.
#[tokio::test]
async fn source_sessions_are_read_only() {
    let db = harness::TestDb::create("readonly").await;
    db.execute("CREATE TABLE t (id int)").await;
    let endpoint = restage::db::PgEndpoint::parse(&restage::secret::Secret::new(db.url())).unwrap();
    let client = restage::db::connect(&endpoint, restage::db::Role::Source)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE u (id int)",
        "UPDATE t SET id = 2",
        "BEGIN; DELETE FROM t; COMMIT",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
            "{sql}: {err}"
        );
        let _ = client.batch_execute("ROLLBACK").await;
    }
    let n: i64 = harness::scalar(&db.client().await, "SELECT count(*) FROM t").await;
    assert_eq!(n, 0);
}

/// A second refresh while one holds the lock exits 4 at once and changes nothing.
#[tokio::test]
async fn second_refresh_exits_4() {
    let setup = Setup::new("lock", "CREATE TABLE t (id int);", "strict: off").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    // Hold the lock the way a running refresh does: in the control database.
    let control = harness::connect(&harness::url_for(
        &restage::refresh::lock::control_database(&setup.staging),
    ))
    .await;
    let (class, key) = restage::refresh::lock::keys(&setup.staging);
    control
        .query_one("SELECT pg_advisory_lock($1, $2)", &[&class, &key])
        .await
        .unwrap();
    let before = harness::databases_like(&setup.staging).await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("another restage command holds the lock"),
        "{stderr}"
    );
    assert_eq!(
        before,
        harness::databases_like(&setup.staging).await,
        "nothing changed"
    );
}

/// `--dry-run` prints the plan and creates nothing.
#[tokio::test]
async fn dry_run_touches_nothing() {
    let setup = Setup::new(
        "dryrun",
        "CREATE TABLE t (id int PRIMARY KEY, email text); INSERT INTO t VALUES (1, 'a@b.c');",
        "strict: off",
    )
    .await;
    setup.write_rules("r.yaml", "tables:\n  public.t:\n    email: set_null\n");
    let (code, stdout, stderr) = setup.run(&["refresh", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("public.t"), "{stdout}");
    assert!(stdout.contains("email:set_null"), "{stdout}");
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert!(harness::databases_like(&setup.staging).await.is_empty());
}

/// Adds `target.grants: [role]` to the setup's config.
fn grant_to(setup: &Setup, role: &str) {
    let yaml = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        yaml.replace("  keep: 1\n", &format!("  keep: 1\n  grants: [{role}]\n")),
    )
    .unwrap();
}

/// Issue 10: validate refuses grants to a role the staging server does not have, as
/// refresh does.
#[tokio::test]
async fn validate_refuses_grants_to_a_missing_role() {
    let setup = Setup::new("grantsv", "CREATE TABLE t (id int);", "strict: off").await;
    grant_to(&setup, &harness::unique_name("qa"));
    if let Err(e) = setup.validate_refuses() {
        panic!("{e}");
    }
}

/// `target.grants`: the roles get CONNECT on the new database and SELECT on its tables and
/// sequences; production's own privileges are not copied; a role that does not exist stops
/// the run before anything is built.
#[tokio::test]
async fn grants_are_given_to_the_configured_roles_only() {
    let role = harness::unique_name("qa");
    let setup = Setup::new(
        "grants",
        "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a');",
        "strict: off",
    )
    .await;
    let admin = harness::connect(&harness::admin_url()).await;
    // A missing role: refused before anything is created.
    grant_to(&setup, &role);
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "target.grants names roles that do not exist on the staging server: {role}"
        )),
        "{stderr}"
    );
    assert!(harness::databases_like(&setup.staging).await.is_empty());

    admin
        .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
        .await
        .unwrap();
    let (code, _, stderr) = setup.run(&["refresh"]);
    let checks = async {
        assert_eq!(code, 0, "{stderr}");
        let stg = setup.staging().await;
        let row = stg
            .query_one(
                "SELECT has_database_privilege($1, current_database(), 'CONNECT'),
                        has_table_privilege($1, 'public.t', 'SELECT'),
                        has_table_privilege($1, 'public.t', 'INSERT'),
                        has_sequence_privilege($1, 'public.t_id_seq', 'SELECT')",
                &[&role],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "CONNECT");
        assert!(row.get::<_, bool>(1), "SELECT on tables");
        assert!(!row.get::<_, bool>(2), "nothing more");
        assert!(row.get::<_, bool>(3), "SELECT on sequences");
    };
    checks.await;
    // The role can only go once the databases that grant it something are gone.
    harness::drop_database_family(&setup.source.name).await;
    admin
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .await
        .unwrap();
}
