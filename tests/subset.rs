//! Subsetting (issue 4): sampled refreshes keep every foreign key valid, respect the limits,
//! and choose the same rows on the next run.

use crate::harness;

use std::collections::BTreeSet;

use crate::harness::Setup;

const SUBSET: &str = include_str!("fixtures/subset.sql");

const SAMPLE: &str = "strict: off
sample:
  tables:
    public.users: { percent: 10 }
    public.teams: { percent: 50 }
    public.events: { since_days: 30, column: created_at }
    public.page_views: { max_rows: 100 }
    public.audit_log: { rows: 0 }
  foreign_keys:
    shipments_user_id_fkey: { dangling: set_null }
";

async fn ids(client: &tokio_postgres::Client, sql: &str) -> BTreeSet<i64> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    harness::scalar(client, &format!("SELECT count(*) FROM {table}")).await
}

/// Every foreign key of the database holds: checked with an anti-join per constraint, not
/// just trusted from the catalog.
pub(crate) async fn assert_foreign_keys_hold(client: &tokio_postgres::Client, at_least: usize) {
    let fks = client
        .query(
            "SELECT conname::text, conrelid::regclass::text, confrelid::regclass::text, convalidated,
                    array(SELECT attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o)
                           JOIN pg_attribute ON attrelid = conrelid AND attnum = k.n ORDER BY o),
                    array(SELECT attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o)
                           JOIN pg_attribute ON attrelid = confrelid AND attnum = k.n ORDER BY o)
               FROM pg_constraint WHERE contype = 'f' AND conparentid = 0",
            &[],
        )
        .await
        .unwrap();
    assert!(
        fks.len() >= at_least,
        "all constraints exist: {}",
        fks.len()
    );
    for fk in fks {
        let name: String = fk.get(0);
        let child: String = fk.get(1);
        let parent: String = fk.get(2);
        let validated: bool = fk.get(3);
        let cols: Vec<String> = fk.get(4);
        let pcols: Vec<String> = fk.get(5);
        assert!(validated, "{name} was created and validated after the load");
        let join: Vec<String> = cols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect();
        let not_null: Vec<String> = cols.iter().map(|c| format!("c.{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT count(*) FROM {child} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {})",
            not_null.join(" AND "),
            join.join(" AND ")
        );
        let bad: i64 = harness::scalar(client, &sql).await;
        assert_eq!(bad, 0, "{name}: {bad} rows reference missing rows");
    }
}

#[tokio::test]
async fn sampled_refresh_keeps_foreign_keys_and_limits_and_is_stable() {
    let setup = Setup::new("subset", SUBSET, SAMPLE).await;

    // The plan, without touching anything.
    let (code, stdout, stderr) = setup.run(&["refresh", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("follows public.users via orders_user_id_fkey"),
        "{stdout}"
    );
    assert!(stdout.contains("root: percent 10"), "{stdout}");
    assert!(stdout.contains("schema only (rows: 0)"), "{stdout}");
    assert!(stdout.contains("whole"), "{stdout}");

    let report_path = setup.dir.path().join("report.json");
    let (code, stdout, stderr) = setup.run(&["refresh", "--report", report_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let users = &report["sample"]["tables"]["public.users"];
    let base = users["base_rows"].as_u64().unwrap();
    assert!(
        (150..=250).contains(&base),
        "10% of 2000 users chosen: {base}"
    );

    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 12).await;

    // Limits.
    let kept_users = count(&stg, "users").await as u64;
    assert_eq!(
        kept_users,
        base + users["pulled_rows"].as_u64().unwrap(),
        "chosen + pulled"
    );
    assert!(kept_users < 2000);
    assert_eq!(count(&stg, "page_views").await, 100, "max_rows");
    assert_eq!(count(&stg, "audit_log").await, 0, "rows: 0");
    assert_eq!(
        count(&stg, "products").await,
        50,
        "a referenced catalogue stays whole"
    );
    let old_events: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM events WHERE created_at < now() - interval '30 days'",
    )
    .await;
    assert_eq!(old_events, 0, "since_days window");
    assert!(count(&stg, "events").await > 0);
    let teams = count(&stg, "teams").await;
    assert!((30..=100).contains(&teams), "teams: {teams}");
    // Orders follow users: every kept order belongs to a kept user, and all of a kept user's
    // orders are kept.
    let src = setup.source.client().await;
    let kept_user_ids = ids(&stg, "SELECT id FROM users").await;
    let mut expected_orders = BTreeSet::new();
    for row in src
        .query("SELECT id, user_id FROM orders", &[])
        .await
        .unwrap()
    {
        let (id, user): (i64, i64) = (row.get(0), row.get(1));
        if kept_user_ids.contains(&user) {
            expected_orders.insert(id);
        }
    }
    assert_eq!(ids(&stg, "SELECT id FROM orders").await, expected_orders);
    // set_null: shipments whose user was not kept keep their row with user_id NULL.
    let nulled: i64 =
        harness::scalar(&stg, "SELECT count(*) FROM shipments WHERE user_id IS NULL").await;
    assert!(nulled > 0, "the set_null policy nulled dangling references");

    // The next run chooses the same rows.
    let first_users = kept_user_ids;
    let first_orders = ids(&stg, "SELECT id FROM orders").await;
    drop(stg);
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    let stg = setup.staging().await;
    assert_eq!(ids(&stg, "SELECT id FROM users").await, first_users);
    assert_eq!(ids(&stg, "SELECT id FROM orders").await, first_orders);
}

/// Sample specs naming a table that does not exist, a text column for `since_days`, and
/// `set_null` on a NOT NULL foreign key: refresh refuses.
async fn bad_sample_specs(prefix: &str) -> Setup {
    Setup::new(
        prefix,
        "CREATE TABLE t (id int PRIMARY KEY, note text, at timestamptz);
         CREATE TABLE c (id int PRIMARY KEY, t_id int NOT NULL REFERENCES t (id));",
        "strict: off
sample:
  tables:
    public.tt: { percent: 10 }
    public.t: { since_days: 3, column: note }
  foreign_keys:
    c_t_id_fkey: { dangling: set_null }
",
    )
    .await
}

#[tokio::test]
async fn bad_sample_specs_are_errors_before_anything_is_copied() {
    let setup = bad_sample_specs("subsetbad").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "sample.tables: table public.tt does not exist in the source, did you mean `public.t`?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("since_days needs a date or timestamp column; note is text"),
        "{stderr}"
    );
    assert!(
        stderr.contains("c_t_id_fkey: dangling: set_null, but public.c(t_id) is NOT NULL"),
        "{stderr}"
    );
}

/// Issue 10: validate refuses them too.
#[tokio::test]
async fn validate_refuses_bad_sample_specs() {
    let setup = bad_sample_specs("subsetbadv").await;
    if let Err(e) = setup.validate_refuses() {
        panic!("{e}");
    }
}

/// `max_storage` on the demo database: the roots are scaled down until the plan fits, and the
/// restored tables land within 10% of the cap.
#[tokio::test]
async fn max_storage_is_honoured_on_the_demo_database() {
    let setup = Setup::new("maxstorage", "", "strict: off").await;
    let client = setup.source.client().await;
    restage::demo::generate(&client, "test", 1.0).await.unwrap();
    let total: i64 = harness::scalar(&client, "SELECT sum(pg_table_size(c.oid))::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname = 'public'").await;
    let cap = total as u64 * 4 / 10;
    setup.write_config(&format!(
        "strict: off\nsample:\n  max_storage: {cap}\n  tables:\n    public.users: {{ percent: 100 }}\n"
    ));
    let report_path = setup.dir.path().join("report.json");
    let (code, stdout, stderr) = setup.run(&["refresh", "--report", report_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let actual = report["totals"]["table_bytes"].as_u64().unwrap();
    let scale = report["sample"]["scale"].as_f64().unwrap();
    assert!(scale < 1.0, "the roots were scaled down: {scale}");
    let ratio = actual as f64 / cap as f64;
    assert!(
        (0.9..=1.0).contains(&ratio),
        "restored {actual} bytes for a cap of {cap} ({ratio:.3}); source {total}"
    );
    assert_foreign_keys_hold(&setup.staging().await, 7).await;
    eprintln!("max_storage: cap {cap}, restored {actual} ({ratio:.3}), scale {scale:.4}");
}
