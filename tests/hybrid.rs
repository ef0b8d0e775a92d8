//! Hybrid data (issue 18): `source.mode: hybrid` copies some tables from production through
//! the rules (subsetting included) and generates the ones marked `from: synthetic`; foreign
//! keys between the two kinds hold both ways (generated children point at the copied keys
//! as loaded; copied children are remapped onto generated parents, deterministically, NULLs
//! kept, composite keys as a whole). Also: the bad configurations refused before anything is
//! built, `restage validate` in synthetic and hybrid mode, and the metrics textfile after
//! `restage generate`.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{self, Setup};
use crate::subset::assert_foreign_keys_hold;

const ALL_TYPES: &str = include_str!("fixtures/all_types.sql");
const SUBSET: &str = include_str!("fixtures/subset.sql");

/// Writes a config whose source mode is `mode`, with `extra` appended.
fn write_config(setup: &Setup, mode: &str, extra: &str) {
    let yaml = format!(
        "source:\n  url: {}\n  mode: {mode}\n  seed: 3\ntarget:\n  url: {}\n  database: {}\n  keep: 1\njobs: 2\nsecret: test-secret-0123456789abcdef\nrules: rules/\n{extra}\n",
        setup.source.url(),
        harness::admin_url(),
        setup.staging
    );
    std::fs::write(setup.config_path(), yaml).expect("write config");
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    harness::scalar(client, &format!("SELECT count(*) FROM {table}")).await
}

/// `SELECT key, value` as text pairs.
async fn pairs(client: &tokio_postgres::Client, sql: &str) -> Vec<(String, Option<String>)> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Rows that shared a reference in production share one in staging: the remap is a function
/// of the production key. `key_sql` selects (row identity, reference) in both databases.
async fn assert_remap_is_a_function(
    prod: &tokio_postgres::Client,
    stg: &tokio_postgres::Client,
    key_sql: &str,
) -> usize {
    let before: BTreeMap<String, Option<String>> = pairs(prod, key_sql).await.into_iter().collect();
    let after: BTreeMap<String, Option<String>> = pairs(stg, key_sql).await.into_iter().collect();
    let mut image: BTreeMap<String, String> = BTreeMap::new();
    let mut shared = 0;
    for (row, reference) in &after {
        let Some(Some(original)) = before.get(row) else {
            continue;
        };
        let reference = reference
            .clone()
            .unwrap_or_else(|| panic!("{key_sql}: row {row}: a non-NULL reference became NULL"));
        match image.get(original) {
            Some(seen) => {
                assert_eq!(
                    seen, &reference,
                    "{key_sql}: rows that shared {original} do not share a parent"
                );
                shared += 1;
            }
            None => {
                image.insert(original.clone(), reference);
            }
        }
    }
    for (row, reference) in &after {
        if let Some(None) = before.get(row) {
            assert!(
                reference.is_none(),
                "{key_sql}: row {row}: a NULL reference was filled"
            );
        }
    }
    shared
}

/// The distinct text values of `column` of `table`.
async fn values(client: &tokio_postgres::Client, table: &str, column: &str) -> BTreeSet<String> {
    client
        .query(
            &format!("SELECT DISTINCT {column}::text FROM {table} WHERE {column} IS NOT NULL"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Copied parents (users, products, accounts, teams, subset from users), generated children
/// (orders, order_items, transfers with its composite key, members in the teams ↔ members
/// cycle, the partitioned events): every FK holds, counts as planned, two runs identical,
/// the copied emails anonymized.
#[tokio::test]
async fn hybrid_copied_parents_generated_children_on_the_subset_fixture() {
    let setup = Setup::new("hyb_up", SUBSET, "").await;
    write_config(
        &setup,
        "hybrid",
        "sample:\n  tables:\n    public.users: { percent: 30 }\n",
    );
    setup.write_rules(
        "rules.yaml",
        "tables:\n  public.users:\n    email: { transform: email, unique: true }\n  public.accounts:\n    account_no: keep\nsynthetic:\n  public.orders: { from: synthetic, rows: 900 }\n  public.order_items: { from: synthetic }\n  public.transfers: { from: synthetic, rows: 400 }\n  public.members: { from: synthetic, rows: 250 }\n  public.events: { from: synthetic, rows: 700 }\n  public.shipments: { from: synthetic, rows: 300 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    let prod = setup.source.client().await;
    assert_foreign_keys_hold(&stg, 12).await;
    // Generated: as planned (`rows:`, or production's count × scale 1).
    assert_eq!(count(&stg, "orders").await, 900);
    assert_eq!(count(&stg, "order_items").await, 12000);
    assert_eq!(count(&stg, "transfers").await, 400);
    assert_eq!(count(&stg, "members").await, 250);
    assert_eq!(count(&stg, "events").await, 700);
    assert_eq!(count(&stg, "shipments").await, 300);
    // Copied: users subset, the copied tables that follow them kept valid; whole ones whole.
    let users = count(&stg, "users").await;
    assert!(
        users > 300 && users < 2000,
        "a subset of the 2000 users: {users}"
    );
    assert_eq!(count(&stg, "products").await, 50);
    assert_eq!(count(&stg, "teams").await, 100);
    // Generated children reference copied parents that are there: many of them, not one.
    let referenced: i64 = harness::scalar(&stg, "SELECT count(DISTINCT user_id) FROM orders").await;
    assert!(
        referenced > 100,
        "orders spread over the kept users: {referenced}"
    );
    let composite: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM transfers t JOIN accounts a USING (region, account_no)",
    )
    .await;
    assert_eq!(
        composite, 400,
        "every transfer points at a copied account (both columns)"
    );
    // The cycle: copied teams' captains remapped onto generated members.
    let captains: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM teams t JOIN members m ON m.id = t.captain_id",
    )
    .await;
    assert_eq!(captains, 100);
    // The copied, ruled column is anonymized: no production email in staging.
    let prod_emails = values(&prod, "users", "email").await;
    let stg_emails = values(&stg, "users", "email").await;
    assert!(!stg_emails.is_empty());
    assert!(
        prod_emails.is_disjoint(&stg_emails),
        "a production email reached staging"
    );

    let first = harness::table_checksums(&setup.staging_url()).await;
    drop(stg);
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "second run: {stdout}\n{stderr}");
    let second = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(first, second, "two runs, identical tables");
}

/// Generated parents (users with its self-reference, products, accounts with its composite
/// key, teams in the cycle), copied children remapped onto them: every FK holds, rows that
/// shared a parent share one, NULL references stay NULL, counts as planned, two runs
/// identical, no production email in the generated users.
#[tokio::test]
async fn hybrid_generated_parents_copied_children_on_the_subset_fixture() {
    let setup = Setup::new("hyb_down", SUBSET, "").await;
    write_config(&setup, "hybrid", "");
    // strict: pii (the default) asks no rule of the generated users' email nor of the
    // generated accounts' account_no (the copied transfers' is marked keep).
    setup.write_rules(
        "rules.yaml",
        "tables:\n  public.transfers:\n    account_no: keep\nsynthetic:\n  public.users: { from: synthetic, rows: 400 }\n  public.products: { from: synthetic, rows: 10 }\n  public.accounts: { from: synthetic, rows: 200 }\n  public.teams: { from: synthetic, rows: 20 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    let prod = setup.source.client().await;
    assert_foreign_keys_hold(&stg, 12).await;
    for (table, rows) in [
        ("users", 400),
        ("products", 10),
        ("accounts", 200),
        ("teams", 20),
    ] {
        assert_eq!(count(&stg, table).await, rows, "{table}: rows as planned");
    }
    // Copied tables: every row (no subsetting), none lost to the remap.
    for table in [
        "orders",
        "order_items",
        "shipments",
        "transfers",
        "members",
        "events",
        "audit_log",
        "page_views",
    ] {
        assert_eq!(
            count(&stg, table).await,
            count(&prod, table).await,
            "{table}: copied whole"
        );
    }
    // Deterministic remap, one key and a composite one; NULLs kept.
    let shared =
        assert_remap_is_a_function(&prod, &stg, "SELECT id::text, user_id::text FROM orders").await;
    assert!(shared > 1000, "orders of one user stay together: {shared}");
    assert_remap_is_a_function(&prod, &stg, "SELECT id::text, user_id::text FROM shipments").await;
    assert_remap_is_a_function(&prod, &stg, "SELECT id::text, user_id::text FROM audit_log").await;
    assert_remap_is_a_function(
        &prod,
        &stg,
        "SELECT id::text, format('%s/%s', region, account_no) FROM transfers",
    )
    .await;
    assert_remap_is_a_function(&prod, &stg, "SELECT id::text, team_id::text FROM members").await;
    assert_remap_is_a_function(
        &prod,
        &stg,
        "SELECT format('%s/%s', id, created_at), user_id::text FROM events",
    )
    .await;
    let null_before: i64 = harness::scalar(
        &prod,
        "SELECT count(*) FROM shipments WHERE user_id IS NULL",
    )
    .await;
    let null_after: i64 =
        harness::scalar(&stg, "SELECT count(*) FROM shipments WHERE user_id IS NULL").await;
    assert_eq!(
        null_before, null_after,
        "NULL references stay NULL, no other becomes NULL"
    );
    // The generated parents carry no production value of their personal column.
    let prod_emails = values(&prod, "users", "email").await;
    let stg_emails = values(&stg, "users", "email").await;
    assert!(!stg_emails.is_empty());
    assert!(
        prod_emails.is_disjoint(&stg_emails),
        "a production email in a generated table"
    );
    // The generated self-reference and the copied side of the cycle hold.
    let self_refs: i64 = harness::scalar(&stg, "SELECT count(referred_by) FROM users").await;
    assert!(self_refs > 0);

    let first = harness::table_checksums(&setup.staging_url()).await;
    drop(stg);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "second run: {stdout}\n{stderr}");
    let second = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(first, second, "two runs, identical tables");
}

/// The all-types fixture both ways: a copied `everything` with generated `orders`, then a
/// generated `everything` (and user accounts) with copied `orders` remapped onto it.
#[tokio::test]
async fn hybrid_both_ways_on_the_all_types_fixture() {
    let setup = Setup::new("hyb_types", ALL_TYPES, "").await;
    let prod = setup.source.client().await;
    write_config(&setup, "hybrid", "strict: off\n");
    setup.write_rules(
        "rules.yaml",
        "tables:\n  public.everything:\n    contact: { transform: email }\n    words: { transform: set_null }\n  '\"Odd Schema\".\"User Accounts\"':\n    \"Full Name\": { transform: name }\nsynthetic:\n  public.orders: { from: synthetic, rows: 300 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 1).await;
    assert_eq!(count(&stg, "orders").await, 300);
    assert_eq!(
        count(&stg, "everything").await,
        count(&prod, "everything").await
    );
    let spread: i64 =
        harness::scalar(&stg, "SELECT count(DISTINCT everything_id) FROM orders").await;
    assert!(
        spread > 50,
        "generated orders spread over the copied rows: {spread}"
    );
    let contacts = values(&stg, "everything", "contact").await;
    assert!(!contacts.is_empty());
    assert!(
        values(&prod, "everything", "contact")
            .await
            .is_disjoint(&contacts),
        "the copied, ruled column is anonymized"
    );
    let first = harness::table_checksums(&setup.staging_url()).await;
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "second run: {stdout}\n{stderr}");
    assert_eq!(
        first,
        harness::table_checksums(&setup.staging_url()).await,
        "two runs, identical"
    );
    drop(stg);

    // The reverse.
    setup.write_rules(
        "rules.yaml",
        "synthetic:\n  public.everything: { from: synthetic, rows: 40 }\n  '\"Odd Schema\".\"User Accounts\"': { from: synthetic, rows: 5 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 1).await;
    assert_eq!(count(&stg, "everything").await, 40);
    assert_eq!(count(&stg, "orders").await, count(&prod, "orders").await);
    assert_remap_is_a_function(
        &prod,
        &stg,
        "SELECT id::text, everything_id::text FROM orders",
    )
    .await;
    let names = values(&stg, "\"Odd Schema\".\"User Accounts\"", "\"Full Name\"").await;
    assert!(!names.is_empty());
    assert!(
        values(&prod, "\"Odd Schema\".\"User Accounts\"", "\"Full Name\"")
            .await
            .is_disjoint(&names),
        "no production value in a generated table"
    );
    let first = harness::table_checksums(&setup.staging_url()).await;
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "second run: {stdout}\n{stderr}");
    assert_eq!(
        first,
        harness::table_checksums(&setup.staging_url()).await,
        "two runs, identical"
    );
}

/// Nothing was built for the staging database: no database of its family exists.
async fn assert_nothing_built(setup: &Setup) {
    let admin = harness::connect(&harness::admin_url()).await;
    let made: i64 = harness::scalar(
        &admin,
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{0}' OR datname LIKE '{0}\\_\\_restage\\_%'",
            setup.staging
        ),
    )
    .await;
    assert_eq!(made, 0, "nothing was built for {}", setup.staging);
}

/// The bad configurations of `from:` are exit 2 before anything is built, by `refresh`,
/// `generate` and `validate` alike, each naming what is wrong.
#[tokio::test]
async fn hybrid_bad_configurations_are_refused_before_anything_is_built() {
    let setup = Setup::new("hyb_bad", SUBSET, "").await;
    let cases: [(&str, &str, &str); 5] = [
        (
            "hybrid",
            "synthetic:\n  public.no_such_table: { from: synthetic }\n",
            "no such table",
        ),
        (
            "production",
            "synthetic:\n  public.users: { from: synthetic }\n",
            "only `source.mode: hybrid` takes `from:`",
        ),
        (
            "synthetic",
            "synthetic:\n  public.users: { from: production }\n",
            "only `source.mode: hybrid` takes `from:`",
        ),
        (
            "hybrid",
            "synthetic:\n  public.users: { from: elsewhere }\n",
            "elsewhere",
        ),
        (
            "hybrid",
            "synthetic:\n  public.users: { rows: 10 }\n",
            "copied from production",
        ),
    ];
    for (mode, rules, expected) in cases {
        write_config(&setup, mode, "strict: off\n");
        setup.write_rules("rules.yaml", rules);
        for command in ["refresh", "generate", "validate"] {
            if mode == "production" && command == "generate" {
                // `generate` is synthetic whatever the mode says.
                continue;
            }
            let (code, stdout, stderr) = setup.run(&[command]);
            assert_eq!(code, 2, "{mode} {command} {rules}: {stdout}\n{stderr}");
            assert!(
                stderr.contains(expected),
                "{mode} {command}: names it ({expected}): {stderr}"
            );
        }
        assert_nothing_built(&setup).await;
    }
}

/// `restage validate` in synthetic and hybrid mode plans the generation: a CHECK generated
/// values cannot keep is exit 2 naming the constraint (as the run refuses it), a `generate:`
/// naming a missing column too; with a generator for it, valid. Nothing is built.
#[tokio::test]
async fn validate_plans_the_generation_in_synthetic_and_hybrid_mode() {
    let setup = Setup::new(
        "hyb_validate",
        "CREATE TABLE slots (id int PRIMARY KEY, starts int NOT NULL, ends int NOT NULL,
                             CONSTRAINT slots_order CHECK (ends > starts));
         CREATE TABLE bookings (id int PRIMARY KEY, slot_id int NOT NULL REFERENCES slots (id));
         INSERT INTO slots SELECT g, g, g + 1 FROM generate_series(1, 10) g;
         INSERT INTO bookings SELECT g, 1 + g % 10 FROM generate_series(1, 30) g;",
        "",
    )
    .await;
    for (mode, rules) in [
        ("synthetic", "tables: {}\n"),
        (
            "hybrid",
            "synthetic:\n  public.slots: { from: synthetic }\n",
        ),
    ] {
        write_config(&setup, mode, "");
        setup.write_rules("rules.yaml", rules);
        let (code, stdout, stderr) = setup.run(&["validate"]);
        assert_eq!(code, 2, "{mode}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("slots_order"),
            "{mode}: names the constraint: {stderr}"
        );
        let (code, _, run_stderr) = setup.run(&["refresh"]);
        assert_eq!(code, 2, "{mode}: the run refuses it too");
        assert!(run_stderr.contains("slots_order"), "{run_stderr}");

        let from = if mode == "hybrid" {
            "from: synthetic\n    "
        } else {
            ""
        };
        setup.write_rules(
            "rules.yaml",
            &format!("synthetic:\n  public.slots:\n    {from}generate:\n      starts: {{ range: [1, 10] }}\n      nope: {{ range: [11, 20] }}\n"),
        );
        let (code, stdout, stderr) = setup.run(&["validate"]);
        assert_eq!(code, 2, "{mode}: {stdout}\n{stderr}");
        assert!(stderr.contains("nope: no such column"), "{mode}: {stderr}");

        setup.write_rules(
            "rules.yaml",
            &format!("synthetic:\n  public.slots:\n    {from}generate:\n      starts: {{ range: [1, 10] }}\n      ends: {{ range: [11, 20] }}\n"),
        );
        let (code, stdout, stderr) = setup.run(&["validate"]);
        assert_eq!(
            code, 0,
            "{mode}: valid with a generator: {stdout}\n{stderr}"
        );
        assert_nothing_built(&setup).await;
    }
    // And the hybrid run it validated builds.
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 1).await;
    assert_eq!(count(&stg, "bookings").await, 30);
}

/// After `restage generate` (and a hybrid refresh) the metrics textfile is written, as after
/// a refresh: the same place tells every run.
#[tokio::test]
async fn generate_writes_the_metrics_textfile() {
    let setup = Setup::new("hyb_metrics", SUBSET, "").await;
    let textfile = setup.dir.path().join("metrics").join("restage.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    let extra = format!(
        "strict: off\nmetrics:\n  textfile: {}\n",
        textfile.display()
    );
    write_config(&setup, "synthetic", &extra);
    let (code, stdout, stderr) = setup.run(&["generate"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&textfile).expect("the textfile is written after generate");
    let success = text
        .lines()
        .find(|l| {
            l.starts_with("restage_last_run_success{")
                && l.contains(&format!("database=\"{}\"", setup.staging))
                && l.contains("command=\"refresh\"")
        })
        .unwrap_or_else(|| panic!("no success series:\n{text}"));
    assert!(
        success.ends_with(" 1") || success.ends_with(" 1.0"),
        "{success}"
    );
    assert!(text.contains("restage_runs_total{"), "{text}");
    std::fs::remove_file(&textfile).unwrap();

    write_config(&setup, "hybrid", &extra);
    setup.write_rules(
        "rules.yaml",
        "synthetic:\n  public.orders: { from: synthetic, rows: 10 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let text =
        std::fs::read_to_string(&textfile).expect("the textfile is written after a hybrid refresh");
    assert!(text.contains("restage_runs_total{"), "{text}");
}

/// Subsetting with a generated root: the copied children follow their production parents'
/// sample (as in a refresh), then are remapped onto the generated parents.
#[tokio::test]
async fn hybrid_copied_children_follow_the_sample_of_a_generated_root() {
    let setup = Setup::new("hyb_sample", SUBSET, "").await;
    write_config(
        &setup,
        "hybrid",
        "strict: off\nsample:\n  tables:\n    public.users: { percent: 20 }\n",
    );
    setup.write_rules(
        "rules.yaml",
        "synthetic:\n  public.users: { from: synthetic, rows: 100 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    let prod = setup.source.client().await;
    assert_foreign_keys_hold(&stg, 12).await;
    assert_eq!(count(&stg, "users").await, 100);
    let orders = count(&stg, "orders").await;
    assert!(
        orders > 0 && orders < count(&prod, "orders").await,
        "the orders of the sampled users only: {orders}"
    );
    assert_remap_is_a_function(&prod, &stg, "SELECT id::text, user_id::text FROM orders").await;
}

/// A generated table whose key is taken from a copied one (one row per copied parent),
/// referenced by a copied table: refused at plan time, by the run and by validate, naming
/// the foreign key; nothing is built.
#[tokio::test]
async fn hybrid_a_copied_reference_to_a_key_taken_from_copied_keys_is_refused() {
    let setup = Setup::new(
        "hyb_wait",
        "CREATE TABLE people (id int PRIMARY KEY);
         CREATE TABLE profiles (person_id int PRIMARY KEY REFERENCES people (id), bio text);
         CREATE TABLE notes (id int PRIMARY KEY, profile_id int NOT NULL,
                             CONSTRAINT notes_profile_fkey FOREIGN KEY (profile_id) REFERENCES profiles (person_id));
         INSERT INTO people SELECT g FROM generate_series(1, 20) g;
         INSERT INTO profiles SELECT g, 'bio' FROM generate_series(1, 20) g;
         INSERT INTO notes SELECT g, 1 + g % 20 FROM generate_series(1, 40) g;",
        "",
    )
    .await;
    write_config(&setup, "hybrid", "strict: off\n");
    setup.write_rules(
        "rules.yaml",
        "synthetic:\n  public.profiles: { from: synthetic }\n",
    );
    for command in ["refresh", "validate"] {
        let (code, stdout, stderr) = setup.run(&[command]);
        assert_eq!(code, 2, "{command}: {stdout}\n{stderr}");
        assert!(stderr.contains("notes_profile_fkey"), "{command}: {stderr}");
    }
    assert_nothing_built(&setup).await;
    // Generating the referencing table too is the way out.
    setup.write_rules(
        "rules.yaml",
        "synthetic:\n  public.profiles: { from: synthetic }\n  public.notes: { from: synthetic, rows: 30 }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, 2).await;
    assert_eq!(count(&stg, "profiles").await, 20, "one per copied person");
    assert_eq!(count(&stg, "notes").await, 30);
}
