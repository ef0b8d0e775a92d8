//! Synthetic data (issue 18): `restage generate` (and `refresh` with `source.mode:
//! synthetic`) builds staging from generated rows on the schema of production or of a
//! schema-only archive: every constraint holds (foreign keys re-validated), row counts are as
//! planned (production's × scale, or `rows:`), two runs give identical tables, and a CHECK
//! that cannot be kept is refused at plan time.

use std::collections::BTreeMap;

use crate::harness::{self, Setup};
use crate::subset::assert_foreign_keys_hold;

const ALL_TYPES: &str = include_str!("fixtures/all_types.sql");
const SUBSET: &str = include_str!("fixtures/subset.sql");

/// Writes a config whose source is `source` (a URL line, or nothing) with `source_extra` in
/// the source section.
fn write_config(setup: &Setup, source_url: Option<&str>, source_extra: &str, extra: &str) {
    let url = source_url
        .map(|u| format!("  url: {u}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "source:\n{url}  mode: synthetic\n{source_extra}target:\n  url: {}\n  database: {}\n  keep: 1\njobs: 2\nsecret: test-secret-0123456789abcdef\nrules: rules/\n{extra}\n",
        harness::admin_url(),
        setup.staging
    );
    std::fs::write(setup.config_path(), yaml).expect("write config");
}

/// Rows per table that holds rows (leaf partitions summed into their partitioned table).
async fn counts(url: &str) -> BTreeMap<String, i64> {
    let client = harness::connect(url).await;
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')
              ORDER BY 1",
            &[],
        )
        .await
        .expect("tables");
    let mut out = BTreeMap::new();
    for row in rows {
        let name: String = row.get(0);
        let n: i64 = harness::scalar(&client, &format!("SELECT count(*) FROM {name}")).await;
        out.insert(name, n);
    }
    out
}

/// Every unique key of the database holds (re-checked by a grouped count, not trusted; the
/// CHECKs were enforced by COPY, the foreign keys are re-checked by an anti-join).
async fn assert_constraints_hold(client: &tokio_postgres::Client) {
    let uniques = client
        .query(
            "SELECT indrelid::regclass::text,
                    array(SELECT quote_ident(attname::text) FROM unnest(indkey) WITH ORDINALITY k(n, o)
                           JOIN pg_attribute ON attrelid = indrelid AND attnum = k.n ORDER BY o)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
              WHERE indisunique AND indexprs IS NULL AND c.relkind IN ('r', 'p')
                AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)",
            &[],
        )
        .await
        .unwrap();
    for row in uniques {
        let (table, columns): (String, Vec<String>) = (row.get(0), row.get(1));
        if columns.is_empty() {
            continue;
        }
        let cols = columns.join(", ");
        let dupes: i64 = harness::scalar(
            client,
            &format!(
                "SELECT count(*) FROM (SELECT {cols} FROM {table} GROUP BY {cols} HAVING count(*) > 1) d"
            ),
        )
        .await;
        assert_eq!(dupes, 0, "{table} ({cols}) has duplicates");
    }
}

/// The row counts the plan promises: the source's × scale, rounded.
fn planned(source: &BTreeMap<String, i64>, scale: f64) -> BTreeMap<String, i64> {
    source
        .iter()
        .map(|(t, n)| (t.clone(), (*n as f64 * scale).round() as i64))
        .collect()
}

async fn generate_twice_and_check(setup: &Setup, scale: f64, at_least_fks: usize) {
    let source_counts = counts(&setup.source.url()).await;
    write_config(
        setup,
        Some(&setup.source.url()),
        &format!("  scale: {scale}\n  seed: 7\n"),
        "",
    );
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "scale {scale}: {stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, at_least_fks).await;
    assert_eq!(
        counts(&setup.staging_url()).await,
        planned(&source_counts, scale),
        "scale {scale}: rows as planned"
    );
    let first = harness::table_checksums(&setup.staging_url()).await;
    drop(stg);
    // The same seed, schema and scale: the same rows (through `refresh`, which generates
    // with `source.mode: synthetic`).
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "scale {scale}, second run: {stdout}\n{stderr}");
    let second = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(first, second, "scale {scale}: two runs, identical tables");
    let stg = setup.staging().await;
    assert_constraints_hold(&stg).await;
    // Sequences continue after the generated keys.
    let next: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM pg_sequences WHERE last_value IS NOT NULL",
    )
    .await;
    assert!(next >= 0);
}

#[tokio::test]
async fn all_types_at_scale_0_1_and_3_keep_every_constraint_and_are_deterministic() {
    let setup = Setup::new("syn_types", ALL_TYPES, "").await;
    generate_twice_and_check(&setup, 0.1, 1).await;
    generate_twice_and_check(&setup, 3.0, 1).await;
    // The generated values are of their types' shapes and CHECKs: domains, enums, lengths.
    let stg = setup.staging().await;
    let bad: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM everything WHERE amount <= 0 OR contact NOT LIKE '%@%' OR length(short) > 10",
    )
    .await;
    assert_eq!(bad, 0);
    let orders: i64 = harness::scalar(&stg, "SELECT count(*) FROM orders").await;
    let next: i64 = harness::scalar(&stg, "SELECT nextval('orders_id_seq')").await;
    assert!(
        next > orders,
        "the serial continues after the generated ids"
    );
    // No production value of a column that looks personal (statistics are read only for
    // the others).
    let copied: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM \"Odd Schema\".\"User Accounts\" WHERE \"Full Name\" IN ('Ann O''Neil', E'Tab\\tName')",
    )
    .await;
    assert_eq!(copied, 0, "no production value");
}

#[tokio::test]
async fn subset_fixture_cycle_self_reference_composite_key_partitions_at_0_1_and_3() {
    let setup = Setup::new("syn_subset", SUBSET, "").await;
    generate_twice_and_check(&setup, 0.1, 12).await;
    generate_twice_and_check(&setup, 3.0, 12).await;
    let stg = setup.staging().await;
    // The composite key and the cycle are filled, not nulled.
    let transfers: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM transfers t JOIN accounts a USING (region, account_no)",
    )
    .await;
    assert_eq!(transfers, 9000);
    let captains: i64 = harness::scalar(&stg, "SELECT count(captain_id) FROM teams").await;
    assert!(captains > 0);
    let self_refs: i64 = harness::scalar(&stg, "SELECT count(referred_by) FROM users").await;
    assert!(self_refs > 0);
}

#[tokio::test]
async fn a_schema_only_archive_is_the_source_without_production() {
    let setup = Setup::new("syn_archive", SUBSET, "").await;
    let archive = setup.dir.path().join("schema.dump");
    let status = std::process::Command::new("pg_dump")
        .arg("--schema-only")
        .arg("-Fc")
        .arg(format!("--file={}", archive.display()))
        .arg(setup.source.url())
        .status()
        .expect("pg_dump runs");
    assert!(status.success());
    write_config(
        &setup,
        None,
        &format!("  schema_archive: {}\n  scale: 0.5\n", archive.display()),
        "",
    );
    setup.write_rules(
        "synthetic.yaml",
        "synthetic:\n  public.users: { rows: 300 }\n  public.products:\n    rows: 20\n    generate:\n      title: { values: [chair, table, lamp] }\n",
    );
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let got = counts(&setup.staging_url()).await;
    assert_eq!(got["public.users"], 300, "rows:");
    assert_eq!(got["public.products"], 20);
    assert_eq!(
        got["public.orders"], 500,
        "no statistics: the default 1000 × scale"
    );
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 12).await;
    let titles: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM products WHERE title NOT IN ('chair', 'table', 'lamp')",
    )
    .await;
    assert_eq!(titles, 0, "generate: values");
    let scratch: i64 = harness::scalar(
        &harness::connect(&harness::admin_url()).await,
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'restage\\_schema\\_%'",
    )
    .await;
    assert_eq!(scratch, 0);
}

#[tokio::test]
async fn a_check_that_cannot_be_kept_is_refused_at_plan_time() {
    let setup = Setup::new(
        "syn_check",
        "CREATE TABLE slots (id int PRIMARY KEY, starts int NOT NULL, ends int NOT NULL,
                             CONSTRAINT slots_order CHECK (ends > starts));
         CREATE TABLE odd (id int PRIMARY KEY, n int CONSTRAINT odd_empty CHECK (n > 10 AND n < 5));
         INSERT INTO slots SELECT g, g, g + 1 FROM generate_series(1, 10) g;",
        "",
    )
    .await;
    write_config(&setup, Some(&setup.source.url()), "", "");
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("slots_order"), "{stderr}");
    assert!(stderr.contains("odd_empty"), "{stderr}");
    assert!(stderr.contains("generate:"), "names the way out: {stderr}");
    let made: i64 = harness::scalar(
        &harness::connect(&harness::admin_url()).await,
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            setup.staging
        ),
    )
    .await;
    assert_eq!(made, 0, "nothing was built");

    // A generator for the column: accepted.
    setup.write_rules(
        "synthetic.yaml",
        "synthetic:\n  public.slots:\n    generate:\n      starts: { range: [1, 10] }\n      ends: { range: [11, 20] }\n  public.odd:\n    generate:\n      n: { null: true }\n",
    );
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    let n: i64 = harness::scalar(&stg, "SELECT count(*) FROM slots WHERE ends > starts").await;
    assert_eq!(n, 10);
}

/// json and jsonb columns without a rule are generated in the shape of production's
/// documents: the keys most documents have (at their level, nested too), each value's type,
/// numbers in production's range — and never a production value, nor a key only one
/// document has (an email used as a key). A ruled json column is not sampled. Two runs give
/// the same documents.
#[tokio::test]
async fn json_columns_take_the_shape_of_productions_documents() {
    let setup = Setup::new(
        "syn_json",
        r#"
        CREATE TABLE events (id int PRIMARY KEY, payload jsonb NOT NULL, raw json, private jsonb);
        INSERT INTO events SELECT g,
               jsonb_build_object('kind', 'kind' || g, 'score', g % 50,
                                  'tags', jsonb_build_array('tag' || g),
                                  'meta', jsonb_build_object('ok', g % 2 = 0, 'ver', 1.5)),
               CASE WHEN g % 4 = 0 THEN NULL ELSE json_build_object('n', g) END,
               jsonb_build_object('email', 'who' || g || '@priv.test')
          FROM generate_series(1, 300) g;
        UPDATE events SET payload = payload || jsonb_build_object('only1@leak.test', 1) WHERE id = 7;
        ANALYZE events;
        "#,
        "",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.events:\n    private: { transform: json, paths: { \"$.email\": email } }\n",
    );
    write_config(&setup, Some(&setup.source.url()), "", "");
    let mut dumps = Vec::new();
    for run in 0..2 {
        let (code, stdout, stderr) = setup.run(&["generate"]);
        assert_eq!(code, 0, "run {run}\n{stdout}\n{stderr}");
        let stg = setup.staging().await;
        let keys: Vec<String> = stg
            .query(
                "SELECT DISTINCT k FROM events, jsonb_object_keys(payload) k ORDER BY k",
                &[],
            )
            .await
            .expect("keys")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, ["kind", "meta", "score", "tags"], "run {run}");
        let wrong: i64 = harness::scalar(
            &stg,
            "SELECT count(*) FROM events WHERE jsonb_typeof(payload->'kind') <> 'string'
                OR jsonb_typeof(payload->'score') <> 'number'
                OR (payload->>'score')::numeric NOT BETWEEN 0 AND 49
                OR (payload->>'score')::numeric <> round((payload->>'score')::numeric)
                OR jsonb_typeof(payload->'tags') <> 'array'
                OR jsonb_typeof(payload->'meta'->'ok') <> 'boolean'
                OR jsonb_typeof(payload->'meta'->'ver') <> 'number'
                OR (raw IS NOT NULL AND json_typeof(raw->'n') <> 'number')",
        )
        .await;
        assert_eq!(wrong, 0, "documents off production's shape (run {run})");
        let leaked: i64 = harness::scalar(
            &stg,
            "SELECT count(*) FROM events WHERE payload::text ~ '(kind|tag)[0-9]' OR payload::text LIKE '%leak.test%'
                OR private::text LIKE '%priv.test%'",
        )
        .await;
        assert_eq!(leaked, 0, "a production value in a generated document");
        let dump: String = harness::scalar(
            &stg,
            "SELECT string_agg(payload::text || coalesce(raw::text, '-'), '|' ORDER BY id) FROM events",
        )
        .await;
        dumps.push(dump);
    }
    assert_eq!(dumps[0], dumps[1], "two runs, the same documents");
}

/// A real-world schema (Pagila) from its schema-only archive, every table at the default
/// rows × scale: foreign keys declared on each partition, a range-partitioned table without
/// a DEFAULT partition (rows kept inside the partitions' bounds), domains, arrays, enums.
#[tokio::test]
async fn pagila_from_its_schema_archive_keeps_every_constraint() {
    let setup = Setup::new(
        "syn_pagila",
        include_str!("fixtures/pagila/pagila-schema.sql"),
        "",
    )
    .await;
    let archive = setup.dir.path().join("pagila.dump");
    let status = std::process::Command::new("pg_dump")
        .arg("--schema-only")
        .arg("-Fc")
        .arg(format!("--file={}", archive.display()))
        .arg(setup.source.url())
        .status()
        .expect("pg_dump runs");
    assert!(status.success());
    write_config(
        &setup,
        None,
        &format!("  schema_archive: {}\n  scale: 0.05\n", archive.display()),
        "",
    );
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 20).await;
    assert_constraints_hold(&stg).await;
    let payments: i64 = harness::scalar(&stg, "SELECT count(*) FROM payment").await;
    assert_eq!(payments, 50, "routed into the partitions");
    let customers: i64 = harness::scalar(&stg, "SELECT count(*) FROM customer").await;
    assert_eq!(customers, 50);
}
