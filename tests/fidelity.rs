//! A faithful copy (issue 11): staging is what production was, and nothing more — the
//! database's own settings and those of its roles, every encoding byte for byte, ICU
//! collations, no production credentials, a staging database usable as a source, tables
//! identified by (schema, name); and `pg_dump --schema-only` of source and staging differ only
//! in what the README lists as left out.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::harness;
use crate::harness::cluster::{Cluster, ClusterOptions};
use crate::harness::{Setup, TestDb};

/// The report of a `--json` run.
fn report(out: &str, err: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}\nstderr:\n{err}"))
}

/// The names of a report's stages, in order.
fn stage_names(report: &serde_json::Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or("").to_string())
        .collect()
}

/// (id, bytes as stored) of a text column's values that are not NULL, in the database's own
/// encoding.
async fn stored_bytes(
    client: &tokio_postgres::Client,
    table: &str,
    column: &str,
) -> Vec<(i32, Vec<u8>)> {
    client
        .query(
            &format!(
                "SELECT id, convert_to({column}, current_setting('server_encoding')) FROM {table}
                  WHERE {column} IS NOT NULL ORDER BY id"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{table}.{column}: {e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A role for one test (roles belong to the server): created now, dropped by the guard.
struct TestRole(String);

impl TestRole {
    async fn create(prefix: &str) -> TestRole {
        let name = harness::unique_name(prefix);
        let admin = harness::connect(&harness::admin_url()).await;
        admin
            .batch_execute(&format!("CREATE ROLE \"{name}\""))
            .await
            .expect("create role");
        TestRole(name)
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let admin = harness::connect(&harness::admin_url()).await;
                    let _ = admin
                        .batch_execute(&format!("DROP ROLE IF EXISTS \"{name}\""))
                        .await;
                });
            }
        })
        .join();
    }
}

/// The settings stored for database `db`: (role or "", `name=value`), in order.
async fn stored_settings(db: &str) -> Vec<(String, String)> {
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .query(
            "SELECT coalesce(r.rolname::text, ''), c.entry
               FROM pg_db_role_setting s
               LEFT JOIN pg_roles r ON r.oid = s.setrole
               CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY c(entry, n)
              WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)
              ORDER BY 1, c.n",
            &[&db],
        )
        .await
        .expect("settings")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The source's `ALTER DATABASE … SET search_path` reaches staging, so the application's
/// trigger that relies on it works there; so does a role's setting in the database; a custom
/// parameter (which can hold an application's secret) does not, and the report says so by
/// name, never by value. On `main` the trigger failed with `relation "artist_meta" does not
/// exist`.
#[tokio::test]
async fn fidelity_database_and_role_settings_reach_staging() {
    let role = TestRole::create("fid_role").await;
    let source = TestDb::create("fid_sets").await;
    let schema = format!(
        "CREATE SCHEMA app;
         CREATE TABLE app.artist_meta (artist_id int, note text);
         CREATE TABLE public.artist (id int PRIMARY KEY, name text);
         CREATE FUNCTION public.artist_touch() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO artist_meta VALUES (NEW.id, 'created'); RETURN NEW; END $$;
         CREATE TRIGGER artist_touch AFTER INSERT ON public.artist
             FOR EACH ROW EXECUTE FUNCTION artist_touch();
         SET search_path = app, public;
         INSERT INTO artist VALUES (1, 'one');
         ALTER DATABASE \"{db}\" SET search_path = app, public;
         ALTER DATABASE \"{db}\" SET \"app.jwt_secret\" = 'prod-jwt-secret-value';
         ALTER ROLE \"{role}\" IN DATABASE \"{db}\" SET work_mem = '3MB';",
        db = source.name,
        role = role.0
    );
    let setup = Setup::with_source(source, &schema, "strict: off").await;
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        !out.contains("prod-jwt-secret-value") && !err.contains("prod-jwt-secret-value"),
        "a custom setting's value was printed"
    );
    let report = report(&out, &err);
    let left_out = report["left_out"].to_string();
    assert!(left_out.contains("app.jwt_secret"), "{left_out}");

    let staging = setup.staging().await;
    let path: String = harness::scalar(&staging, "SHOW search_path").await;
    assert_eq!(path, "app, public");
    staging
        .batch_execute("INSERT INTO artist VALUES (2, 'two')")
        .await
        .expect("the application's trigger works in staging");
    let meta: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM app.artist_meta WHERE artist_id = 2",
    )
    .await;
    assert_eq!(meta, 1);
    assert_eq!(
        stored_settings(&setup.staging).await,
        [
            (String::new(), "search_path=app, public".to_string()),
            (role.0.clone(), "work_mem=3MB".to_string()),
        ]
    );
}

/// A source on another server, with a role the staging server does not have: the role's
/// setting in the database is skipped and named in the report's warnings; the database's own
/// settings still arrive.
#[tokio::test]
async fn fidelity_settings_of_a_role_staging_lacks_are_skipped_and_named() {
    let cluster = match Cluster::start(ClusterOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: cannot start a private PostgreSQL cluster: {e}");
            return;
        }
    };
    let role = harness::unique_name("only_in_prod");
    cluster
        .psql("postgres", "CREATE DATABASE prod")
        .expect("create prod");
    cluster
        .psql(
            "prod",
            &format!(
                "CREATE ROLE \"{role}\"; CREATE TABLE t (id int PRIMARY KEY);
                 ALTER DATABASE prod SET work_mem = '9MB';
                 ALTER ROLE \"{role}\" IN DATABASE prod SET work_mem = '5MB';"
            ),
        )
        .expect("fill prod");
    // The staging database lives on the shared server, beside a database of this test (which
    // takes it along when it is dropped).
    let anchor = TestDb::create("fid_roles").await;
    let staging = anchor.sibling("stg");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("restage.yaml");
    std::fs::write(
        &config,
        format!(
            "source:\n  url: {}\ntarget:\n  url: {}\n  database: {staging}\nstrict: off\n",
            cluster.url("localhost", "prod", ""),
            harness::admin_url()
        ),
    )
    .expect("config");
    let (code, out, err) = harness::restage()
        .config(&config)
        .args(["--json", "refresh"])
        .run()
        .into_parts();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let warnings = report(&out, &err)["warnings"].to_string();
    assert!(
        warnings.contains("source settings of roles the staging server does not have were skipped")
            && warnings.contains(&role),
        "{warnings}"
    );
    assert!(!warnings.contains("5MB"), "never the value: {warnings}");
    assert_eq!(
        stored_settings(&staging).await,
        [(String::new(), "work_mem=9MB".to_string())]
    );
}

/// What an operator set on the live staging database is carried to the new live database;
/// a source setting that changed arrives (restage's own earlier value is no operator's);
/// `target.settings` wins over both; and a setting restage put there goes when its reason
/// goes.
#[tokio::test]
async fn fidelity_an_operators_setting_on_staging_survives_the_next_refresh() {
    let source = TestDb::create("fid_oper").await;
    let schema = format!(
        "CREATE SCHEMA app; CREATE SCHEMA app2; CREATE TABLE t (id int PRIMARY KEY);
         ALTER DATABASE \"{}\" SET search_path = app, public;",
        source.name
    );
    let setup = Setup::with_source(source, &schema, "strict: off").await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "first\nstdout:\n{out}\nstderr:\n{err}");

    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET work_mem = '77MB'",
            setup.staging
        ))
        .await
        .expect("operator's setting");
    setup
        .source
        .execute(&format!(
            "ALTER DATABASE \"{}\" SET search_path = app2, app, public",
            setup.source.name
        ))
        .await;
    // target.settings belongs under the `target:` that write_config writes.
    let yaml = std::fs::read_to_string(setup.config_path())
        .expect("config")
        .replace(
            "  keep: 1\n",
            "  keep: 1\n  settings:\n    statement_timeout: 123s\n",
        );
    std::fs::write(setup.config_path(), yaml).expect("config");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "second\nstdout:\n{out}\nstderr:\n{err}");
    let settings: BTreeMap<String, String> = stored_settings(&setup.staging)
        .await
        .into_iter()
        .map(|(_, e)| {
            let (k, v) = e.split_once('=').expect("name=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        settings["work_mem"], "77MB",
        "the operator's setting: {settings:?}"
    );
    assert_eq!(
        settings["search_path"], "app2, app, public",
        "the source's new one"
    );
    assert_eq!(settings["statement_timeout"], "123s", "target.settings");

    // Without target.settings, what it set goes; the operator's stays.
    setup.write_config("strict: off");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "third\nstdout:\n{out}\nstderr:\n{err}");
    let settings: Vec<String> = stored_settings(&setup.staging)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        settings,
        ["search_path=app2, app, public", "work_mem=77MB"],
        "{settings:?}"
    );
}

/// `target.settings` the staging server does not take are refused before anything is built,
/// by `validate` as by `refresh` (exit 2), each named.
#[tokio::test]
async fn fidelity_validate_refuses_target_settings_the_server_does_not_take() {
    let setup = Setup::new("fid_badset", "CREATE TABLE t (id int);", "strict: off").await;
    let yaml = std::fs::read_to_string(setup.config_path())
        .expect("config")
        .replace(
            "  keep: 1\n",
            "  keep: 1\n  settings:\n    no_such_parameter: 1\n    work_mem: banana\n    shared_buffers: 1GB\n",
        );
    std::fs::write(setup.config_path(), yaml).expect("config");
    let (code, out, err) = setup.run(&["validate"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    let all = format!("{out}{err}");
    for expected in [
        "target.settings.no_such_parameter: the staging server has no such parameter",
        "target.settings.work_mem:",
        "target.settings.shared_buffers: is set for the whole server",
    ] {
        assert!(all.contains(expected), "{expected}:\n{all}");
    }
    let (code, _, err) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{err}");
    assert!(harness::databases_like(&setup.staging).await.is_empty());
}

/// Foreign servers reach staging without their options, user mappings not at all (not even
/// as dead rows in the catalog's files), foreign tables keep theirs; nothing of them is
/// printed. Then what an operator gives staging's servers (options, a user mapping) is
/// carried to the next generation.
#[tokio::test]
async fn fidelity_production_connection_data_never_reaches_staging() {
    let schema = "
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER prod_reports FOREIGN DATA WRAPPER postgres_fdw
            OPTIONS (host 'reports.prod.example', dbname 'reports', port '5432');
        CREATE USER MAPPING FOR postgres SERVER prod_reports
            OPTIONS (user 'reporter', password 'Prod-Passw0rd-Fdw');
        CREATE USER MAPPING FOR PUBLIC SERVER prod_reports
            OPTIONS (user 'anyone', password 'Prod-Public-Pw');
        CREATE FOREIGN TABLE remote_sales (id int, amount numeric)
            SERVER prod_reports OPTIONS (schema_name 'public', table_name 'sales');
        CREATE TABLE local_t (id int PRIMARY KEY);
        INSERT INTO local_t SELECT generate_series(1, 10);
    ";
    let setup = Setup::new("fid_fdw", schema, "strict: off").await;
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for secret in [
        "Prod-Passw0rd-Fdw",
        "Prod-Public-Pw",
        "reports.prod.example",
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} printed"
        );
    }
    let left_out = report(&out, &err)["left_out"].to_string();
    assert!(left_out.contains("2 user mapping(s)"), "{left_out}");
    assert!(
        left_out.contains("the options of foreign server prod_reports (")
            && ["host", "dbname", "port"]
                .iter()
                .all(|o| left_out.contains(o)),
        "{left_out}"
    );

    let staging = setup.staging().await;
    let options: Option<Vec<String>> = harness::scalar(
        &staging,
        "SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'prod_reports'",
    )
    .await;
    assert_eq!(options, None);
    let mappings: i64 = harness::scalar(&staging, "SELECT count(*) FROM pg_user_mappings").await;
    assert_eq!(mappings, 0);
    let table_options: Vec<String> = harness::scalar(
        &staging,
        "SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'remote_sales'::regclass",
    )
    .await;
    assert_eq!(table_options, ["schema_name=public", "table_name=sales"]);
    // Not even in the files: the raw tuples of the catalogs, dead ones included.
    let raw = |catalog: &str, needle: &str| {
        format!(
            "SELECT count(*) FROM generate_series(0, pg_relation_size('{catalog}') / 8192 - 1) p,
                    LATERAL heap_page_items(get_raw_page('{catalog}', p::int)) h
              WHERE position(convert_to('{needle}', 'UTF8') IN h.t_data) > 0"
        )
    };
    staging
        .batch_execute("CREATE EXTENSION pageinspect")
        .await
        .expect("pageinspect");
    setup.source.execute("CREATE EXTENSION pageinspect").await;
    let source = setup.source.client().await;
    let in_source: i64 =
        harness::scalar(&source, &raw("pg_foreign_server", "reports.prod.example")).await;
    assert_eq!(in_source, 1, "the probe finds the host in the source");
    for (catalog, needle) in [
        ("pg_foreign_server", "reports.prod.example"),
        ("pg_user_mapping", "Prod-Passw0rd-Fdw"),
        ("pg_user_mapping", "Prod-Public-Pw"),
    ] {
        let found: i64 = harness::scalar(&staging, &raw(catalog, needle)).await;
        assert_eq!(found, 0, "{needle} in the files of {catalog} in staging");
    }

    // Staging's own configuration of the server, carried to the next generation.
    staging
        .batch_execute(
            "ALTER SERVER prod_reports OPTIONS (ADD host 'reports.stg.example', ADD dbname 'reports_stg');
             CREATE USER MAPPING FOR postgres SERVER prod_reports OPTIONS (user 'stg', password 'stg-pw');",
        )
        .await
        .expect("operator configures staging");
    drop(staging);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "second\nstdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("stg-pw") && !err.contains("stg-pw"));
    let staging = setup.staging().await;
    let options: Vec<String> = harness::scalar(
        &staging,
        "SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'prod_reports'",
    )
    .await;
    assert_eq!(options, ["host=reports.stg.example", "dbname=reports_stg"]);
    let mapping: Vec<String> = harness::scalar(
        &staging,
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = 'prod_reports' AND usename = 'postgres'",
    )
    .await;
    assert_eq!(mapping, ["user=stg", "password=stg-pw"]);
}

/// A LATIN1 source with an ICU locale: the new database has the same encoding, locale and
/// provider; an unruled column's bytes arrive exactly; ruled columns are transformed as text
/// (a mask keeps the last letters, `ß` included, stored as LATIN1); an ICU collation column
/// sorts as in the source.
#[tokio::test]
async fn fidelity_a_latin1_source_with_an_icu_locale_copies_byte_exact() {
    let source = TestDb::create_with(
        "fid_latin1",
        "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en'",
    )
    .await;
    let schema = r"
        CREATE COLLATION de_phone (provider = icu, locale = 'de-u-co-phonebk');
        CREATE TABLE people (id int PRIMARY KEY, kept text, masked text, hashed text,
                             sorted text COLLATE de_phone);
        INSERT INTO people VALUES
            (1, E'M\xfcller \xe9\xe8 \xff\x80', E'Wei\xdf', E'Jos\xe9', E'\xc4pfel'),
            (2, E'Stra\xdfe\ttab', E'G\xf6the', 'plain', 'Zebra'),
            (3, 'ascii', NULL, NULL, 'Apfel'),
            (4, E'\xe6\xf8\xe5', 'ab', 'x', E'Ofen');
    ";
    let setup = Setup::with_source(source, schema, "strict: off").await;
    setup.write_rules(
        "people.yaml",
        "tables:\n  public.people:\n    masked: { transform: mask, keep_last: 2 }\n    hashed: hash\n",
    );
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    let admin = harness::connect(&harness::admin_url()).await;
    let row = admin
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text,
                    datlocprovider::text, daticulocale::text
               FROM pg_database WHERE datname = $1",
            &[&setup.staging],
        )
        .await
        .expect("staging database");
    let locale: (String, String, String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(
        locale,
        (
            "LATIN1".into(),
            "C".into(),
            "C".into(),
            "i".into(),
            Some("en".into())
        )
    );

    let src = setup.source.client().await;
    let stg = setup.staging().await;
    assert_eq!(
        stored_bytes(&stg, "people", "kept").await,
        stored_bytes(&src, "people", "kept").await,
        "unruled bytes arrive exactly"
    );
    let masked = stored_bytes(&stg, "people", "masked").await;
    assert_eq!(masked[0], (1, b"**i\xdf".to_vec()));
    assert_eq!(masked[1], (2, b"***he".to_vec()));
    assert_eq!(masked.len(), 3, "NULL stays NULL: {masked:?}");
    let hashed = stored_bytes(&stg, "people", "hashed").await;
    assert!(
        hashed
            .iter()
            .all(|(_, h)| h.is_ascii() && h.as_slice() != b"x")
    );
    let order = "SELECT array_agg(id ORDER BY sorted, id) FROM people";
    let src_order: Vec<i32> = harness::scalar(&src, order).await;
    let stg_order: Vec<i32> = harness::scalar(&stg, order).await;
    assert_eq!(stg_order, src_order);
    let collation: String = harness::scalar(
        &stg,
        "SELECT c.collname::text || ' ' || c.collprovider::text || ' ' || c.colliculocale
           FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
          WHERE a.attrelid = 'people'::regclass AND a.attname = 'sorted'",
    )
    .await;
    assert_eq!(collation, "de_phone i de-u-co-phonebk");
}

/// A SQL_ASCII source holding Latin-1 bytes (and some UTF-8): pg_dump copies it, and so does
/// restage, byte for byte, into a SQL_ASCII database; a ruled value is read as Latin-1 when it
/// is not UTF-8, and its mask stored as it was read. On `main` it failed mid-build with
/// `invalid byte sequence for encoding "UTF8"`.
#[tokio::test]
async fn fidelity_a_sql_ascii_source_holding_latin1_bytes_copies_byte_exact() {
    let source = TestDb::create_with(
        "fid_ascii",
        "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
    )
    .await;
    let schema = r"
        CREATE TABLE people (id int PRIMARY KEY, kept text, masked text, note text);
        INSERT INTO people VALUES
            (1, E'M\xfcller \xe9\xff', E'Wei\xdf', E'Stra\xdfe 12'),
            (2, E'G\xc3\xb6the (UTF-8)', E'G\xc3\xb6the', 'plain'),
            (3, E'\x01\x7f\x80\xfe', 'abc', NULL);
    ";
    let setup = Setup::with_source(source, schema, "strict: off").await;
    setup.write_rules(
        "people.yaml",
        "tables:\n  public.people:\n    masked: { transform: mask, keep_last: 2 }\n    note: { transform: regex_replace, pattern: '[0-9]+', with: 'N' }\n",
    );
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let admin = harness::connect(&harness::admin_url()).await;
    let encoding: String = harness::scalar_with(
        &admin,
        "SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = $1",
        &[&setup.staging],
    )
    .await;
    assert_eq!(encoding, "SQL_ASCII");
    let src = setup.source.client().await;
    let stg = setup.staging().await;
    assert_eq!(
        stored_bytes(&stg, "people", "kept").await,
        stored_bytes(&src, "people", "kept").await
    );
    let masked = stored_bytes(&stg, "people", "masked").await;
    assert_eq!(
        masked[0],
        (1, b"**i\xdf".to_vec()),
        "Latin-1 in, Latin-1 out"
    );
    assert_eq!(masked[1], (2, "***he".as_bytes().to_vec()));
    let note = stored_bytes(&stg, "people", "note").await;
    assert_eq!(
        note[0],
        (1, b"Stra\xdfe N".to_vec()),
        "kept text keeps its bytes"
    );
    // validate --preview reads the source the same way.
    let (code, out, err) = setup.run(&["validate", "--preview", "3"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Weiß") && out.contains("**iß"), "{out}");
}

/// A fake value the source's encoding cannot hold (a Japanese name in a LATIN1 database) is
/// a clear failure naming the table, the column and the encoding — never a corrupted value —
/// and nothing is left behind.
#[tokio::test]
async fn fidelity_a_fake_value_the_encoding_cannot_hold_fails_naming_the_column() {
    let source =
        TestDb::create_with("fid_unrep", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'").await;
    let schema = r"
        CREATE TABLE people (id int PRIMARY KEY, nick text);
        INSERT INTO people SELECT g, E'n\xe9' || g FROM generate_series(1, 50) g;
    ";
    let setup = Setup::with_source(source, schema, "strict: off").await;
    setup.write_rules(
        "people.yaml",
        "tables:\n  public.people:\n    nick: { transform: name, locale: ja }\n",
    );
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("public.people.nick") && err.contains("LATIN1"),
        "{err}"
    );
    assert!(harness::databases_like(&setup.staging).await.is_empty());
}

/// A database restage built can be the source of another refresh (staging → dev): its
/// `_restage` schema is restage's notes, not data, and is not copied (dev gets its own). On
/// `main` it failed after the whole build with `schema "_restage" already exists`.
#[tokio::test]
async fn fidelity_a_staging_database_can_be_the_source_of_another_refresh() {
    let setup = Setup::new(
        "fid_chain",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;",
        "strict: off",
    )
    .await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "staging\nstdout:\n{out}\nstderr:\n{err}");
    let dev = setup.source.sibling("dev");
    let dev_config = setup.dir.path().join("dev.yaml");
    std::fs::write(
        &dev_config,
        format!(
            "source:\n  url: {}\ntarget:\n  url: {}\n  database: {dev}\njobs: 2\nstrict: off\nrules: rules\n",
            setup.staging_url(),
            harness::admin_url()
        ),
    )
    .expect("dev config");
    let (code, out, err) = harness::restage()
        .config(&dev_config)
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 0, "dev from staging\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        harness::table_checksums(&harness::url_for(&dev)).await,
        harness::table_checksums(&setup.staging_url()).await
    );
    let dev_client = harness::connect(&harness::url_for(&dev)).await;
    let built_from: String =
        harness::scalar(&dev_client, "SELECT source FROM _restage.refresh").await;
    assert!(built_from.contains(&setup.staging), "{built_from}");
    let refreshes: i64 =
        harness::scalar(&dev_client, "SELECT count(*) FROM _restage.refresh").await;
    assert_eq!(refreshes, 1, "dev's own notes only");
}

/// `a."b.c"` and `"a.b".c` are two tables: two lines of the report with their own counts, two
/// rows of `_restage.tables`, each checked by `restage verify`; names are printed as
/// PostgreSQL quotes them. On `main` they were merged.
#[tokio::test]
async fn fidelity_tables_whose_names_read_alike_stay_two_tables() {
    let schema = r#"
        CREATE SCHEMA a; CREATE SCHEMA "a.b";
        CREATE TABLE a."b.c" (id int PRIMARY KEY); INSERT INTO a."b.c" SELECT generate_series(1, 5);
        CREATE TABLE "a.b".c (id int PRIMARY KEY); INSERT INTO "a.b".c SELECT generate_series(1, 7);
    "#;
    let setup = Setup::new("fid_names", schema, "strict: off").await;
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&out, &err);
    let tables: BTreeMap<String, u64> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap_or_default().to_string(),
                t["rows_written"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        tables,
        BTreeMap::from([("a.\"b.c\"".to_string(), 5), ("\"a.b\".c".to_string(), 7)])
    );
    assert_eq!(report["totals"]["rows_written"], 12);
    let staging = setup.staging().await;
    let recorded: Vec<(String, String, i64)> = staging
        .query(
            "SELECT schema_name, table_name, planned_rows FROM _restage.tables ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("_restage.tables")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        recorded,
        [("a".into(), "b.c".into(), 5), ("a.b".into(), "c".into(), 7)]
    );
    staging
        .batch_execute(r#"DELETE FROM "a.b".c WHERE id = 1"#)
        .await
        .expect("delete");
    let (code, out, err) = setup.run(&["verify"]);
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("\"a.b\".c: 6 rows, 7 planned"), "{all}");
    assert!(!all.contains("a.\"b.c\":"), "{all}");
}

// ----- The Must-show comparison -----

/// pg_dump of a database's schema, as restage's documented left-outs would make both sides
/// equal: `--create` (so database settings and locale are compared), no owners or privileges,
/// publications, subscriptions, security labels, tablespaces, nor the `_restage` schema.
/// Read as UTF-8, or byte for byte when it is not (a LATIN1 database's dump).
fn schema_dump(db: &str) -> String {
    let output = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--create",
            "--no-owner",
            "--no-acl",
            "--no-publications",
            "--no-subscriptions",
            "--no-security-labels",
            "--no-tablespaces",
            "--exclude-schema=_restage",
            "--dbname",
            &harness::url_for(db),
        ])
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump {db}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match String::from_utf8(output.stdout) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    }
}

/// The entries of a plain dump: each starts at its `-- Name: …; Type: …` header.
fn entries(dump: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![String::new()];
    let lines: Vec<&str> = dump.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let starts_entry =
            *line == "--" && lines.get(i + 1).is_some_and(|l| l.starts_with("-- Name: "));
        if starts_entry {
            out.push(String::new());
        }
        let current = out.last_mut().expect("an entry");
        current.push_str(line);
        current.push('\n');
    }
    out
}

fn entry_type(entry: &str) -> &str {
    entry
        .lines()
        .find_map(|l| l.strip_prefix("-- Name: "))
        .and_then(|l| l.split("; Type: ").nth(1))
        .and_then(|l| l.split(';').next())
        .unwrap_or("")
}

/// Both sides: the random `\restrict` keys of pg_dump, the database's name, and blank lines
/// (which carry nothing, and whose number around a left-out entry is pg_dump's layout).
fn common(dump: &str, db: &str) -> String {
    dump.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .map(|l| l.replace(db, "DB"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An entry taken out: only the session settings pg_dump writes at its end, for the entries
/// that follow, stay.
fn without(entry: &str) -> String {
    entry
        .lines()
        .filter(|l| l.starts_with("SET "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn is_database_comment(entry: &str) -> bool {
    entry_type(entry) == "COMMENT" && entry.contains("COMMENT ON DATABASE ")
}

/// The entry pg_dump writes for the `public` schema when its owner is not the default one
/// (`-- *not* creating schema`): owners are not copied, so staging's is the default.
fn is_public_schema_owner(entry: &str) -> bool {
    entry_type(entry) == "SCHEMA"
        && entry.contains("-- Name: public; Type: SCHEMA")
        && entry.contains("-- *not* creating schema, since initdb creates it")
}

/// The source's dump without what the README lists as left out: user mappings, the options
/// of foreign servers, custom parameters of the database, owners (the `public` schema's
/// entry); and the database's comment (restage keeps its marker there).
fn source_as_documented(dump: &str) -> String {
    entries(dump)
        .into_iter()
        .map(|e| {
            if entry_type(&e) == "USER MAPPING"
                || is_database_comment(&e)
                || is_public_schema_owner(&e)
            {
                without(&e)
            } else {
                e
            }
        })
        .map(|e| match entry_type(&e) {
            "SERVER" => match (e.find(" OPTIONS (\n"), e.rfind("\n);")) {
                (Some(start), Some(end)) if start < end => {
                    format!("{};{}", &e[..start], &e[end + 3..])
                }
                _ => e,
            },
            "DATABASE PROPERTIES" => e
                .lines()
                .filter(|l| {
                    !(l.starts_with("ALTER DATABASE ") && l.contains(" SET \"") && l.contains('.'))
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            _ => e,
        })
        .collect()
}

/// Staging's dump: only its database comment (restage's marker) goes.
fn staging_as_documented(dump: &str) -> String {
    entries(dump)
        .into_iter()
        .map(|e| {
            if is_database_comment(&e) {
                without(&e)
            } else {
                e
            }
        })
        .collect()
}

/// The Must-show of issue 11: a refresh of a schema with per-database and per-role settings,
/// foreign servers, user mappings, a non-UTF-8 encoding and an ICU collation (and the usual
/// objects): `pg_dump --schema-only --create` of source and staging differ only in what the
/// README lists as deliberately left out.
#[tokio::test]
async fn fidelity_the_schema_of_staging_is_the_source_schema_but_for_what_the_docs_leave_out() {
    let role = TestRole::create("fid_must_role").await;
    let source = TestDb::create_with(
        "fid_must",
        "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en'",
    )
    .await;
    let schema = r#"
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER prod_link FOREIGN DATA WRAPPER postgres_fdw
            OPTIONS (host 'prod.example', dbname 'app', port '5433', fetch_size '500');
        CREATE USER MAPPING FOR postgres SERVER prod_link OPTIONS (user 'u', password 'Must-Show-Pw');
        CREATE USER MAPPING FOR "ROLE" SERVER prod_link OPTIONS (user 'r', password 'Must-Show-Pw2');
        CREATE FOREIGN TABLE remote_orders (id int, total numeric) SERVER prod_link
            OPTIONS (schema_name 'public', table_name 'orders');
        CREATE COLLATION de_phone (provider = icu, locale = 'de-u-co-phonebk');
        CREATE SCHEMA app;
        CREATE TYPE app.mood AS ENUM (E'gl\xfccklich', E'm\xfcde');
        CREATE DOMAIN app.postcode AS text CHECK (VALUE ~ '^[0-9]{5}$');
        CREATE TABLE app.customer (
            id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text COLLATE de_phone NOT NULL,
            city text DEFAULT E'M\xfcnchen',
            mood app.mood,
            zip app.postcode,
            name_upper text GENERATED ALWAYS AS (upper(name)) STORED
        );
        COMMENT ON TABLE app.customer IS E'Kunden (gro\xdfe Tabelle)';
        COMMENT ON COLUMN app.customer.city IS E'Stadt, z. B. K\xf6ln';
        CREATE INDEX customer_name_idx ON app.customer (name COLLATE de_phone);
        CREATE TABLE app.orders (id serial, customer_id int REFERENCES app.customer (id),
                                 placed date NOT NULL, total numeric(10, 2) CHECK (total >= 0),
                                 PRIMARY KEY (id, placed))
            PARTITION BY RANGE (placed);
        CREATE TABLE app.orders_2024 PARTITION OF app.orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE app.orders_rest PARTITION OF app.orders DEFAULT;
        CREATE TABLE app.audit (at timestamptz DEFAULT now(), what text);
        CREATE FUNCTION app.audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO audit (what) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
        CREATE TRIGGER orders_audit AFTER INSERT ON app.orders_2024 FOR EACH ROW EXECUTE FUNCTION app.audit_order();
        CREATE VIEW app.big_orders AS SELECT * FROM app.orders WHERE total > 100;
        CREATE MATERIALIZED VIEW app.order_totals AS SELECT customer_id, sum(total) AS total FROM app.orders GROUP BY 1;
        CREATE SEQUENCE app.invoice_no START 1000;
        CREATE PUBLICATION everything FOR ALL TABLES;
        INSERT INTO app.customer (name, mood, zip) VALUES (E'J\xfcrgen', E'm\xfcde', '80331'), ('Anna', NULL, NULL);
        SET search_path = app, public;
        INSERT INTO app.orders (customer_id, placed, total) VALUES (1, '2024-03-01', 150), (2, '2025-01-02', 20);
        ALTER DATABASE "DB" SET search_path = app, public;
        ALTER DATABASE "DB" SET work_mem = '12MB';
        ALTER DATABASE "DB" SET "app.api_key" = 'Must-Show-Key';
        ALTER ROLE "ROLE" IN DATABASE "DB" SET statement_timeout = '42s';
    "#
    .replace("\"DB\"", &format!("\"{}\"", source.name))
    .replace("\"ROLE\"", &format!("\"{}\"", role.0));
    let setup = Setup::with_source(source, &schema, "strict: off").await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for secret in ["Must-Show-Pw", "Must-Show-Key", "prod.example"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} printed"
        );
    }

    // What is compared holds what the case is about.
    let staging_dump = assert_staging_schema_is_sources(
        &setup,
        &[
            "ENCODING = 'LATIN1' LOCALE_PROVIDER = icu LOCALE = 'C' ICU_LOCALE = 'en'",
            "CREATE COLLATION public.de_phone (provider = icu, locale = 'de-u-co-phonebk');",
            "ALTER DATABASE DB SET search_path TO 'app', 'public';",
            &format!(
                "ALTER ROLE {} IN DATABASE DB SET statement_timeout TO '42s';",
                role.0
            ),
            "CREATE SERVER prod_link FOREIGN DATA WRAPPER postgres_fdw",
            "OPTIONS (\n    schema_name 'public',\n    table_name 'orders'\n);",
            "M\u{fc}nchen",
        ],
    );
    for absent in ["USER MAPPING", "Must-Show", "prod.example", "app.api_key"] {
        assert!(
            !staging_dump.contains(absent),
            "staging's dump has {absent}"
        );
    }
}

/// Staging's schema dump (database names replaced), after checking that it holds each of
/// `present` (what the case is about) and is the source's but for what the README leaves out.
fn assert_staging_schema_is_sources(setup: &Setup, present: &[&str]) -> String {
    let source_dump = common(&schema_dump(&setup.source.name), &setup.source.name);
    let staging_dump = common(&schema_dump(&setup.staging), &setup.staging);
    for present in present {
        assert!(
            staging_dump.contains(present),
            "staging's dump lacks {present}:\n{staging_dump}"
        );
    }
    assert_same_schema(
        &source_as_documented(&source_dump),
        &staging_as_documented(&staging_dump),
    );
    staging_dump
}

/// A database's foreign-key constraint rows, and how many of them are not validated.
async fn foreign_key_counts(client: &tokio_postgres::Client) -> (i64, i64) {
    (
        harness::scalar(
            client,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
        )
        .await,
        harness::scalar(
            client,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated",
        )
        .await,
    )
}

/// Fails with the first differing lines.
fn assert_same_schema(expected: &str, actual: &str) {
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(20)
            .map(|(i, (a, b))| format!("line {}:\n  source:  {a}\n  staging: {b}", i + 1))
            .collect();
        panic!(
            "the schemas differ beyond what the README leaves out ({} vs {} lines):\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// A real-world schema (Pagila, tests/fixtures/pagila): the refresh reproduces it exactly,
/// schema and rows.
#[tokio::test]
async fn fidelity_a_refresh_of_pagila_is_faithful() {
    let schema = format!(
        "{}
         SET search_path = public;
         INSERT INTO language (name) VALUES ('English'), (E'T\\u00fcrk\\u00e7e');
         INSERT INTO actor (first_name, last_name) VALUES ('PENELOPE', 'GUINESS'), ('NICK', 'WAHLBERG');
         INSERT INTO category (name) VALUES ('Action'), ('Animation');
         INSERT INTO country (country) VALUES ('Afghanistan'), (E'T\\u00fcrkiye');",
        include_str!("fixtures/pagila/pagila-schema.sql")
    );
    let setup = Setup::new("fid_pagila", &schema, "strict: off").await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        harness::table_checksums(&setup.staging_url()).await,
        harness::table_checksums(&setup.source.url()).await
    );
    assert_staging_schema_is_sources(
        &setup,
        &[
            "CREATE DOMAIN public.\"bıgınt\" AS bigint;",
            "PARTITION BY RANGE (payment_date)",
        ],
    );
}

/// Issue 14: a big table's plain indexes are built on two sessions at once (as pg_restore -j
/// builds them), after its constraints, statistics and the index entries that do more than
/// create an index (CLUSTER ON, SET STATISTICS); a small table keeps its one round trip. The
/// schema is the source's all the same — comments on the shared indexes, unique, partial and
/// expression indexes, the clustered index, the statistics target — every index valid, the
/// rows the same, and the table analyzed after its last index.
#[tokio::test]
async fn a_big_tables_plain_indexes_build_on_two_sessions_and_are_the_sources() {
    let schema = r#"
        CREATE TABLE wide (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c int, d date,
                           CONSTRAINT wide_c_check CHECK (c >= 0));
        CREATE INDEX wide_a_idx ON wide (a);
        COMMENT ON INDEX wide_a_idx IS 'by a';
        CREATE UNIQUE INDEX wide_b_key ON wide (b);
        CREATE INDEX wide_c_partial ON wide (c) WHERE c > 100;
        CREATE INDEX "Wide lower b" ON wide (lower(b)) WITH (fillfactor = 80);
        COMMENT ON INDEX "Wide lower b" IS 'case-insensitive';
        CREATE INDEX wide_d_idx ON wide (d);
        ALTER INDEX "Wide lower b" ALTER COLUMN 1 SET STATISTICS 300;
        CREATE INDEX wide_ad_idx ON wide (a, d);
        ALTER TABLE wide CLUSTER ON wide_ad_idx;
        CREATE STATISTICS wide_stats (dependencies) ON a, c FROM wide;
        INSERT INTO wide SELECT g, g % 1000, 'row number ' || g || ' of the wide table', g % 500,
                                '2024-01-01'::date + g % 365
                           FROM generate_series(1, 150000) g;
        CREATE TABLE small (id int PRIMARY KEY, a int, b text);
        CREATE INDEX small_a_idx ON small (a);
        CREATE INDEX small_b_idx ON small (b);
        INSERT INTO small SELECT g, g, 's' || g FROM generate_series(1, 100) g;
    "#;
    let setup = Setup::new("fid_shared", schema, "strict: off").await;
    let source = setup.source.client().await;
    let heap: i64 = harness::scalar(&source, "SELECT pg_relation_size('wide')").await;
    assert!(
        heap >= 8 << 20,
        "the test table is big enough to be shared: {heap} bytes"
    );
    let (code, out, err) = setup.run(&["-vv", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // wide_a_idx, wide_b_key, wide_c_partial and wide_d_idx; "Wide lower b" (SET
    // STATISTICS) and wide_ad_idx (CLUSTER ON) go with the constraints first.
    let shared: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("plain indexes built on two sessions at once"))
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}\n{err}");
    assert!(
        shared[0].contains("table=public.wide") && shared[0].contains("indexes=4"),
        "{shared:?}"
    );
    assert_eq!(
        harness::table_checksums(&setup.staging_url()).await,
        harness::table_checksums(&setup.source.url()).await
    );
    assert_staging_schema_is_sources(
        &setup,
        &[
            "COMMENT ON INDEX public.wide_a_idx IS 'by a';",
            "CREATE UNIQUE INDEX wide_b_key ON public.wide USING btree (b);",
            "CREATE INDEX wide_c_partial ON public.wide USING btree (c) WHERE (c > 100);",
            "COMMENT ON INDEX public.\"Wide lower b\" IS 'case-insensitive';",
            "ALTER INDEX public.\"Wide lower b\" ALTER COLUMN 1 SET STATISTICS 300;",
            "ALTER TABLE public.wide CLUSTER ON wide_ad_idx;",
            "CREATE STATISTICS public.wide_stats (dependencies) ON a, c FROM public.wide;",
        ],
    );
    let staging = harness::connect(&setup.staging_url()).await;
    let invalid: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          WHERE c.relname IN ('wide', 'small') AND NOT (i.indisvalid AND i.indisready)",
    )
    .await;
    assert_eq!(invalid, 0);
    let indexes: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          WHERE c.relname = 'wide'",
    )
    .await;
    assert_eq!(indexes, 7);
    // Analyzed after its last index: the expression index has its statistics.
    let expression_stats: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_stats WHERE tablename = 'Wide lower b'",
    )
    .await;
    assert_eq!(expression_stats, 1);
}

/// Issue 14: a plain table's indexes, keys and ANALYZE are built as soon as its data is in,
/// while other tables still copy (refresh/post_data.rs), from exactly pg_restore's statements;
/// a leaf partition too (its parent's index and the attachment after the data); an
/// inheritance tree gets its after the data, as before; a table with a derived column of its
/// own row gets it recomputed first. The schema of staging is the source's all the same — names, NOT VALID,
/// deferrability, exclusion, CLUSTER ON, REPLICA IDENTITY, fillfactor, a column's statistics
/// target, extended statistics, comments on constraints and indexes — and every table is
/// analyzed, the expression index with its statistics.
#[tokio::test]
async fn fidelity_indexes_and_keys_built_during_the_copy_are_the_sources() {
    let schema = r#"
        CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL, w int, code text NOT NULL,
                               CONSTRAINT accounts_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED,
                               CONSTRAINT accounts_w_excl EXCLUDE USING btree (w WITH =));
        COMMENT ON CONSTRAINT accounts_pkey ON accounts IS 'the key';
        CREATE UNIQUE INDEX accounts_code_idx ON accounts (code);
        ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_code_idx;
        CREATE INDEX "Accounts lower email" ON accounts (lower(email)) WITH (fillfactor = 70);
        ALTER INDEX "Accounts lower email" ALTER COLUMN 1 SET STATISTICS 500;
        COMMENT ON INDEX "Accounts lower email" IS 'case-insensitive lookups';
        CREATE INDEX accounts_partial_idx ON accounts (w) WHERE w > 10;
        ALTER TABLE accounts CLUSTER ON accounts_pkey;
        CREATE STATISTICS accounts_stats (dependencies) ON w, code FROM accounts;
        CREATE TABLE notes (id int, account_id int, body text, search tsvector);
        ALTER TABLE notes ADD CONSTRAINT notes_pkey PRIMARY KEY (id);
        ALTER TABLE notes ADD CONSTRAINT notes_account_fkey FOREIGN KEY (account_id)
            REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED;
        CREATE INDEX notes_search_idx ON notes USING gin (search);
        CREATE TABLE tags (id int PRIMARY KEY, label text, parent_id int REFERENCES tags);
        ALTER TABLE tags ADD CONSTRAINT tags_label_check CHECK (label <> '') NOT VALID;
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER tags_touch BEFORE UPDATE ON tags FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE TABLE events (id int, at date NOT NULL, account_id int REFERENCES accounts,
                             PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE INDEX events_at_idx ON events (at);
        CREATE TABLE ledger (id int, region text NOT NULL, at date NOT NULL, amount int,
                             PRIMARY KEY (id, region, at), UNIQUE (region, id, at))
            PARTITION BY LIST (region);
        CREATE TABLE ledger_eu PARTITION OF ledger FOR VALUES IN ('eu') PARTITION BY RANGE (at);
        CREATE TABLE ledger_eu_2024 PARTITION OF ledger_eu FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE ledger_us PARTITION OF ledger FOR VALUES IN ('us');
        CREATE INDEX ledger_amount_idx ON ledger (amount);
        CREATE INDEX ledger_us_at_idx ON ledger_us (at) WHERE amount > 10;
        INSERT INTO ledger SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,
                                  '2024-05-01'::date + g % 30, g FROM generate_series(1, 200) g;
        CREATE TABLE refs_ledger (id int PRIMARY KEY, lid int, region text, at date,
                                  FOREIGN KEY (lid, region, at) REFERENCES ledger);
        INSERT INTO refs_ledger SELECT id, id, region, at FROM ledger;
        CREATE TABLE base (id int PRIMARY KEY, kind text);
        CREATE TABLE derived_child (extra text) INHERITS (base);
        ALTER TABLE derived_child ADD PRIMARY KEY (id);
        CREATE MATERIALIZED VIEW account_count AS SELECT count(*) AS n FROM accounts;
        CREATE UNIQUE INDEX account_count_idx ON account_count (n);
        INSERT INTO accounts SELECT g, 'user' || g || '@example.com', g, 'c' || g FROM generate_series(1, 300) g;
        INSERT INTO notes SELECT g, 1 + g % 300, 'note ' || g, NULL FROM generate_series(1, 500) g;
        INSERT INTO tags SELECT g, 'tag' || g, nullif(g - 1, 0) FROM generate_series(1, 20) g;
        CREATE TABLE ping (id int PRIMARY KEY, pong_id int);
        CREATE TABLE pong (id int PRIMARY KEY, ping_id int REFERENCES ping);
        ALTER TABLE ping ADD CONSTRAINT ping_pong_fkey FOREIGN KEY (pong_id) REFERENCES pong
            DEFERRABLE INITIALLY DEFERRED;
        COMMENT ON CONSTRAINT ping_pong_fkey ON ping IS 'one half of a cycle';
        BEGIN;
        INSERT INTO ping SELECT g, 21 - g FROM generate_series(1, 20) g;
        INSERT INTO pong SELECT g, 21 - g FROM generate_series(1, 20) g;
        COMMIT;
        INSERT INTO events SELECT g, '2024-02-01'::date + g % 200, 1 + g % 300 FROM generate_series(1, 100) g;
        INSERT INTO base SELECT g, 'b' FROM generate_series(1, 10) g;
        INSERT INTO derived_child SELECT g, 'c', 'x' FROM generate_series(11, 20) g;
    "#;
    let setup = Setup::new(
        "fid_early",
        schema,
        "strict: off
search:
  tsvector:
    - { table: public.notes, column: search, expression: \"to_tsvector('simple', body)\" }",
    )
    .await;
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&out, &err);
    // accounts, tags, notes (its derived column recomputed first), ping, pong, refs_ledger
    // and the leaves events_2024, ledger_eu_2024 and ledger_us are built during the copy; the
    // partitioned events, ledger and ledger_eu (their indexes ON ONLY, the leaves' attached),
    // base and derived_child (inheritance) after it. Foreign keys during the copy: notes and
    // events (all of its leaves) to accounts, tags to itself, the ping-pong cycle; after it:
    // refs_ledger's to the partitioned ledger (whose key is an ON ONLY index). The
    // materialized view over accounts is refreshed during the copy too.
    let stages = stage_names(&report);
    assert!(
        stages.iter().any(|s| s
            == "indexes + analyze, 9 tables, 5 foreign keys, 1 materialized views (during copy)"),
        "{stages:?}"
    );
    assert!(
        stages.iter().any(|s| s == "schema (post-data)"),
        "{stages:?}"
    );

    assert_staging_schema_is_sources(
        &setup,
        &[
            "ADD CONSTRAINT accounts_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED;",
            "ADD CONSTRAINT accounts_w_excl EXCLUDE USING btree (w WITH =);",
            "ALTER TABLE ONLY public.accounts REPLICA IDENTITY USING INDEX accounts_code_idx;",
            "ALTER TABLE public.accounts CLUSTER ON accounts_pkey;",
            "WITH (fillfactor='70')",
            "ALTER INDEX public.\"Accounts lower email\" ALTER COLUMN 1 SET STATISTICS 500;",
            "COMMENT ON CONSTRAINT accounts_pkey ON public.accounts IS 'the key';",
            "CREATE STATISTICS public.accounts_stats (dependencies) ON w, code FROM public.accounts;",
            "ADD CONSTRAINT tags_label_check CHECK ((label <> ''::text)) NOT VALID;",
            "ALTER INDEX public.events_at_idx ATTACH PARTITION public.events_2024_at_idx;",
            "ALTER INDEX public.ledger_eu_amount_idx ATTACH PARTITION public.ledger_eu_2024_amount_idx;",
            "ALTER INDEX public.ledger_pkey ATTACH PARTITION public.ledger_us_pkey;",
            "CREATE INDEX ledger_us_at_idx ON public.ledger_us USING btree (at) WHERE (amount > 10);",
        ],
    );

    let staging = setup.staging().await;
    let not_analyzed: Vec<String> = staging
        .query(
            "SELECT relname::text FROM pg_stat_user_tables
              WHERE schemaname = 'public' AND last_analyze IS NULL
                AND relname NOT IN ('events', 'ledger', 'ledger_eu', 'account_count')
              ORDER BY 1",
            &[],
        )
        .await
        .expect("analyzed tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(not_analyzed.is_empty(), "not analyzed: {not_analyzed:?}");
    // Every partitioned index got all of its leaves' attached: none is left invalid.
    let invalid: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_index WHERE NOT indisvalid",
    )
    .await;
    assert_eq!(invalid, 0, "an index left invalid");
    let foreign_keys = foreign_key_counts(&staging).await;
    // As many as in the source (a key on a partitioned table, or to one, has a row per
    // partition), every one validated.
    let source = setup.source.client().await;
    let in_source: i64 = harness::scalar(
        &source,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
    )
    .await;
    assert_eq!(
        foreign_keys,
        (in_source, 0),
        "(foreign keys, not validated)"
    );
    // ANALYZE ran after the expression index existed: its expression has statistics.
    let expression_stats: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_stats WHERE tablename = 'Accounts lower email'",
    )
    .await;
    assert_eq!(expression_stats, 1);
    let dependencies: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_stats_ext WHERE statistics_name = 'accounts_stats' AND dependencies IS NOT NULL",
    )
    .await;
    assert_eq!(dependencies, 1, "the extended statistics were gathered");
    let searchable: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM notes WHERE search @@ to_tsquery('simple', 'note')",
    )
    .await;
    assert_eq!(searchable, 500, "the derived column was recomputed");
}

/// Derived columns are recomputed in one table rewrite (`ALTER COLUMN … TYPE … USING`), as
/// soon as the table's data is in when the expression reads only its own row; the staging
/// schema is the source's all the same. The neighbours, each with its own table: the column's
/// storage, compression, statistics target, collation, default, NOT NULL and comment (reset
/// by a type change, put back); a view over the column and a generated column computed from
/// it (the rewrite is refused: `UPDATE` then `VACUUM FULL`); an expression that reads another
/// table through a STABLE function (recomputed after every table is in, so it sees them all);
/// a partitioned table (after the copy); two derived columns on one table. A foreign server
/// makes pg_restore create the tables after it, in a second pre-data pass: the expressions are
/// tried once every table exists.
#[tokio::test]
async fn fidelity_derived_columns_are_recomputed_in_one_rewrite_and_keep_the_schema() {
    let schema = r#"
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'elsewhere.example');
        CREATE TABLE labels (id int PRIMARY KEY, label text NOT NULL);
        CREATE FUNCTION label_of(int) RETURNS text LANGUAGE sql STABLE
            AS $$ SELECT label FROM public.labels WHERE id = $1 $$;
        CREATE TABLE docs (id int PRIMARY KEY, title text, body text,
                           search tsvector NOT NULL DEFAULT ''::tsvector,
                           sort_key text COLLATE "C");
        ALTER TABLE docs ALTER COLUMN search SET STORAGE MAIN;
        ALTER TABLE docs ALTER COLUMN search SET STATISTICS 321;
        ALTER TABLE docs ALTER COLUMN sort_key SET COMPRESSION pglz;
        COMMENT ON COLUMN docs.search IS 'rebuilt nightly';
        CREATE INDEX docs_search_idx ON docs USING gin (search);
        CREATE TABLE viewed (id int PRIMARY KEY, body text, search tsvector);
        CREATE VIEW viewed_search AS SELECT id, search FROM viewed;
        CREATE TABLE measured (id int PRIMARY KEY, body text, search tsvector,
                               words int GENERATED ALWAYS AS (length(search)) STORED);
        CREATE TABLE tagged (id int PRIMARY KEY, label_id int REFERENCES labels, tag text);
        CREATE TABLE parts (id int, at date NOT NULL, body text, search tsvector,
                            PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE parts_2024 PARTITION OF parts FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO labels SELECT g, 'label' || g FROM generate_series(1, 20000) g;
        INSERT INTO docs SELECT g, 'title ' || g, 'body ' || g, to_tsvector('simple', 'production words'), 'k' || g
            FROM generate_series(1, 3000) g;
        INSERT INTO viewed SELECT g, 'seen ' || g, NULL FROM generate_series(1, 200) g;
        INSERT INTO measured SELECT g, 'one two ' || g, NULL FROM generate_series(1, 200) g;
        INSERT INTO tagged SELECT g, 20001 - g, 'stale' FROM generate_series(1, 500) g;
        INSERT INTO parts SELECT g, '2024-03-01'::date + g % 100, 'part ' || g, NULL FROM generate_series(1, 300) g;
    "#;
    let setup = Setup::new(
        "fid_derived",
        schema,
        "strict: off
search:
  tsvector:
    - { table: public.docs, column: search, expression: \"to_tsvector('simple', coalesce(title, '') || ' ' || body)\" }
    - { table: public.docs, column: sort_key, expression: \"upper(title)\" }
    - { table: public.viewed, column: search, expression: \"to_tsvector('simple', body)\" }
    - { table: public.measured, column: search, expression: \"to_tsvector('simple', body)\" }
    - { table: public.tagged, column: tag, expression: \"label_of(label_id)\" }
    - { table: public.parts, column: search, expression: \"to_tsvector('simple', body)\" }",
    )
    .await;
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&out, &err);
    let recomputed: Vec<&str> = report["derived_columns_recomputed"]
        .as_array()
        .expect("derived_columns_recomputed")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        recomputed,
        [
            "public.docs.search",
            "public.docs.sort_key",
            "public.measured.search",
            "public.parts.search",
            "public.tagged.tag",
            "public.viewed.search"
        ]
    );
    // docs, viewed, measured and labels during the copy; tagged (its expression reads
    // labels) and parts (partitioned) after it.
    let stages = stage_names(&report);
    assert!(
        stages
            .iter()
            .any(|s| s == "indexes + analyze, 4 tables, 0 foreign keys (during copy)"),
        "{stages:?}"
    );
    assert!(stages.iter().any(|s| s == "derived columns"), "{stages:?}");

    assert_staging_schema_is_sources(
        &setup,
        &[
            "ALTER TABLE ONLY public.docs ALTER COLUMN search SET STATISTICS 321;",
            "ALTER TABLE ONLY public.docs ALTER COLUMN search SET STORAGE MAIN;",
            "ALTER TABLE ONLY public.docs ALTER COLUMN sort_key SET COMPRESSION pglz;",
            "COMMENT ON COLUMN public.docs.search IS 'rebuilt nightly';",
            "sort_key text COLLATE pg_catalog.\"C\"",
        ],
    );

    let staging = setup.staging().await;
    for (sql, expected, what) in [
        (
            "SELECT count(*) FROM docs WHERE search @@ to_tsquery('simple', 'title & body')",
            3000,
            "docs.search from each row",
        ),
        (
            "SELECT count(*) FROM docs WHERE search @@ to_tsquery('simple', 'production')",
            0,
            "no production word left in docs.search",
        ),
        (
            "SELECT count(*) FROM docs WHERE sort_key = upper(title)",
            3000,
            "docs.sort_key",
        ),
        (
            "SELECT count(*) FROM viewed_search WHERE search @@ to_tsquery('simple', 'seen')",
            200,
            "viewed.search, through its view",
        ),
        (
            "SELECT count(*) FROM measured WHERE words = 3",
            200,
            "measured.words, generated from the recomputed search",
        ),
        (
            "SELECT count(*) FROM tagged t JOIN labels l ON l.id = t.label_id WHERE t.tag = l.label",
            500,
            "tagged.tag, read from labels once it was loaded",
        ),
        (
            "SELECT count(*) FROM parts WHERE search @@ to_tsquery('simple', 'part')",
            300,
            "parts.search, in its partition",
        ),
    ] {
        let got: i64 = harness::scalar(&staging, sql).await;
        assert_eq!(got, expected, "{what}: {sql}");
    }
    // Compact: docs is no bigger than a fresh copy of its rows (an UPDATE without a rewrite
    // would leave every old row version in it, about twice the size).
    staging
        .batch_execute("CREATE TABLE docs_fresh AS SELECT * FROM docs")
        .await
        .expect("a fresh copy of docs");
    let (size, fresh): (i64, i64) = (
        harness::scalar(&staging, "SELECT pg_relation_size('docs')").await,
        harness::scalar(&staging, "SELECT pg_relation_size('docs_fresh')").await,
    );
    assert!(
        size * 10 <= fresh * 12,
        "docs takes {size} bytes, a fresh copy of its rows {fresh}"
    );
}

/// Foreign keys in a web, added during the copy by four builders at once: a ring in both
/// directions (every table is on both sides of a cycle with each neighbour), self-references,
/// long chords and several keys between the same two tables. Keys whose tables are disjoint
/// are added at once, the others wait (a deadlock between two keys added in opposite
/// directions would fail the run after `deadlock_timeout`); every key ends up in staging,
/// validated, the schema the source's.
#[tokio::test]
async fn fidelity_a_web_of_foreign_keys_is_added_during_the_copy_by_several_builders() {
    const N: usize = 40;
    let mut schema = String::new();
    for i in 0..N {
        schema.push_str(&format!(
            "CREATE TABLE t{i:02} (id int PRIMARY KEY, next int, prev int, chord int, me int, alt int);\n"
        ));
    }
    for i in 0..N {
        let next = (i + 1) % N;
        let prev = (i + N - 1) % N;
        let chord = (i * 7 + 3) % N;
        schema.push_str(&format!(
            "ALTER TABLE t{i:02} ADD FOREIGN KEY (next) REFERENCES t{next:02},
                 ADD FOREIGN KEY (prev) REFERENCES t{prev:02},
                 ADD FOREIGN KEY (chord) REFERENCES t{chord:02},
                 ADD FOREIGN KEY (me) REFERENCES t{i:02},
                 ADD CONSTRAINT t{i:02}_alt_fkey FOREIGN KEY (alt) REFERENCES t{next:02}
                     DEFERRABLE INITIALLY DEFERRED;\n"
        ));
    }
    // Rows first without references, then every reference set: the keys are checked.
    for i in 0..N {
        schema.push_str(&format!(
            "INSERT INTO t{i:02} (id) SELECT g FROM generate_series(1, 30) g;\n"
        ));
    }
    for i in 0..N {
        schema.push_str(&format!(
            "UPDATE t{i:02} SET next = 1 + id % 30, prev = 1 + (id + 1) % 30, chord = id,
                 me = 1 + (id + 2) % 30, alt = CASE WHEN id % 3 = 0 THEN NULL ELSE id END;\n"
        ));
    }
    let setup = Setup::new("fid_fkweb", &schema, "strict: off").await;
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        config.replace("jobs: 2\n", "jobs: 4\n"),
    )
    .expect("config");
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&out, &err);
    let stages = stage_names(&report);
    let expected = format!(
        "indexes + analyze, {N} tables, {} foreign keys (during copy)",
        N * 5
    );
    assert!(stages.contains(&expected), "{stages:?}");
    assert_staging_schema_is_sources(
        &setup,
        &[
            "ADD CONSTRAINT t00_alt_fkey FOREIGN KEY (alt) REFERENCES public.t01(id) DEFERRABLE INITIALLY DEFERRED;",
        ],
    );
    let staging = setup.staging().await;
    let keys = foreign_key_counts(&staging).await;
    assert_eq!(keys, ((N * 5) as i64, 0), "(foreign keys, not validated)");
}

/// Materialized views are refreshed during the copy (issue 14) as soon as every table they
/// read is built, through plain views, over partitions and over other materialized views —
/// and only when the refresh cannot differ from one after the copy: a view that reads a
/// sequence (its value is set after the copy), a function of the user's, a volatile function,
/// a table under row security (created after the copy), a query given as text
/// (`query_to_xml`), a volatile call inside a plain view, or a view that waits, waits. Every
/// view holds in staging what it holds in the source; with `refresh_materialized_views:
/// false` none is refreshed, during the copy or after it.
#[tokio::test]
async fn materialized_views_refresh_during_the_copy_only_when_nothing_else_decides_them() {
    let schema = r#"
        CREATE TABLE accounts (id int PRIMARY KEY, region text NOT NULL);
        CREATE TABLE orders (id int PRIMARY KEY, account int NOT NULL REFERENCES accounts (id), total int NOT NULL);
        CREATE TABLE measures (at date NOT NULL, v int NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE measures_a PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
        CREATE TABLE measures_b PARTITION OF measures FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
        CREATE TABLE secured (id int PRIMARY KEY, owner text NOT NULL);
        ALTER TABLE secured ENABLE ROW LEVEL SECURITY;
        CREATE SEQUENCE tick;
        INSERT INTO accounts SELECT g, 'r' || g % 3 FROM generate_series(1, 30) g;
        INSERT INTO orders SELECT g, 1 + g % 30, g % 100 FROM generate_series(1, 600) g;
        INSERT INTO measures SELECT '2024-01-01'::date + g % 360, g FROM generate_series(1, 1000) g;
        INSERT INTO secured SELECT g, 'o' || g FROM generate_series(1, 7) g;
        SELECT setval('tick', 42);
        CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM orders';
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 50;
        -- During the copy: through a view; over it; over partitions.
        CREATE MATERIALIZED VIEW per_account AS
            SELECT a.id, a.region, count(o.id) AS n, coalesce(sum(o.total), 0) AS s
              FROM accounts a LEFT JOIN big_orders o ON o.account = a.id GROUP BY a.id, a.region;
        CREATE MATERIALIZED VIEW per_region AS SELECT region, sum(s) AS s FROM per_account GROUP BY region;
        CREATE MATERIALIZED VIEW per_month AS
            SELECT date_trunc('month', at::timestamp) AS m, sum(v) AS v FROM measures GROUP BY 1;
        -- After the copy.
        CREATE MATERIALIZED VIEW with_sequence AS SELECT last_value FROM tick;
        CREATE MATERIALIZED VIEW with_function AS SELECT order_count() AS n;
        CREATE MATERIALIZED VIEW over_waiting AS SELECT n + 1 AS n FROM with_function;
        CREATE MATERIALIZED VIEW with_volatile AS SELECT count(*) AS n FROM orders WHERE random() >= 0;
        CREATE MATERIALIZED VIEW over_secured AS SELECT count(*) AS n FROM secured;
        -- A query given as text, which records no dependency at all; a volatile call inside a
        -- plain view.
        CREATE MATERIALIZED VIEW with_xml AS
            SELECT query_to_xml('SELECT count(*) AS n FROM public.orders', false, false, '')::text AS x;
        CREATE VIEW sampled_orders AS SELECT * FROM orders WHERE random() >= 0;
        CREATE MATERIALIZED VIEW over_volatile_view AS SELECT count(*) AS n FROM sampled_orders;
    "#;
    let setup = Setup::new("fid_mviews", schema, "strict: off").await;
    let (code, out, err) = setup.run(&["-vv", "--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Which ones were refreshed during the copy, by name (the debug line of each).
    for view in ["per_account", "per_region", "per_month"] {
        assert!(
            err.contains(&format!(
                "materialized view refreshed during the copy view=public.{view}"
            )),
            "{view} during the copy:\n{err}"
        );
    }
    for view in [
        "with_sequence",
        "with_function",
        "over_waiting",
        "with_volatile",
        "over_secured",
        "with_xml",
        "over_volatile_view",
    ] {
        assert!(
            !err.contains(&format!("view=public.{view} ")),
            "{view} waits for the copy:\n{err}"
        );
    }
    let stages = stage_names(&report(&out, &err));
    assert!(
        stages.contains(
            &"indexes + analyze, 5 tables, 1 foreign keys, 3 materialized views (during copy)"
                .to_string()
        ),
        "{stages:?}"
    );
    let views = [
        (
            "per_account",
            "SELECT id, region, n, s FROM per_account ORDER BY id",
        ),
        (
            "per_region",
            "SELECT region, s FROM per_region ORDER BY region",
        ),
        ("per_month", "SELECT m::text, v FROM per_month ORDER BY m"),
        ("with_sequence", "SELECT last_value FROM with_sequence"),
        ("with_function", "SELECT n FROM with_function"),
        ("over_waiting", "SELECT n FROM over_waiting"),
        ("with_volatile", "SELECT n FROM with_volatile"),
        ("over_secured", "SELECT n FROM over_secured"),
        ("with_xml", "SELECT x FROM with_xml"),
        ("over_volatile_view", "SELECT n FROM over_volatile_view"),
    ];
    let source = setup.source.client().await;
    let staging = setup.staging().await;
    let text = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<Option<String>>> {
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    };
    for (view, sql) in views {
        let want = text(source.simple_query(sql).await.expect("source view"));
        let got = text(staging.simple_query(sql).await.expect("staging view"));
        assert!(!want.is_empty(), "{view}");
        assert_eq!(
            got, want,
            "{view} in staging holds what it holds in the source"
        );
    }
    let sequence: String = staging
        .query_one("SELECT last_value::text FROM with_sequence", &[])
        .await
        .expect("with_sequence")
        .get(0);
    assert_eq!(sequence, "42", "refreshed after the sequences are set");
    drop(staging);

    // Refreshing turned off: nothing is refreshed, during the copy or after it.
    let config = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        format!("{config}search:\n  refresh_materialized_views: false\n"),
    )
    .expect("config");
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let stages = stage_names(&report(&out, &err));
    assert!(
        stages.contains(&"indexes + analyze, 5 tables, 1 foreign keys (during copy)".to_string()),
        "{stages:?}"
    );
    let staging = setup.staging().await;
    let populated: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM pg_class WHERE relkind = 'm' AND relispopulated",
    )
    .await;
    assert_eq!(populated, 0, "no view refreshed");
}

/// The format each copy job's rows travelled in, from `-vv` output: (table label, format);
/// a range job's label is its table's name followed by ` [start..end]`.
fn travel_formats(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter(|l| l.contains("rows travel"))
        .map(|l| {
            let field = |name: &str| {
                l.split(&format!("{name}="))
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("{name} in {l}"))
                    .trim_matches('"')
                    .to_string()
            };
            (field("table"), field("format"))
        })
        .collect()
}

/// The formats of `table`'s jobs (one per page range of a split table) in `formats`.
fn formats_of<'a>(formats: &'a [(String, String)], table: &str) -> Vec<&'a str> {
    formats
        .iter()
        .filter(|(t, _)| t == table || t.starts_with(&format!("{table} [")))
        .map(|(_, f)| f.as_str())
        .collect()
}

/// Issue 14: a table whose rows pass through untouched and whose columns' types all have a
/// binary COPY format that holds the value itself travels in binary (the servers' text output
/// and input are most of a plain copy's CPU); everything else travels in text, as before.
/// Either way staging holds the source's values. The neighbours: every type on the allowlist
/// with its edge values (NULL, infinities, NaN, -0, empty and NULL-holding and
/// multi-dimensional arrays, empty and unbounded ranges, bytes that need escaping in text),
/// user enums and domains, an empty table, a table split into page ranges; and what must stay
/// in text: an array of an enum and a composite (their binary values hold type OIDs the new
/// database does not share), `regclass` (an OID naming another object there), `xml`.
#[tokio::test]
async fn fidelity_untouched_tables_of_binary_safe_types_travel_in_binary_and_stay_equal() {
    let schema = r#"
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN positive AS int CHECK (VALUE > 0);
        CREATE DOMAIN small_ints AS int[];
        CREATE TYPE pair AS (a int, b text);
        CREATE TABLE every_type (
            id int PRIMARY KEY, b bool, raw bytea, ch "char", nm name, i2 int2, i4 int4, i8 int8,
            f4 float4, f8 float8, num numeric, num_scaled numeric(10, 2), cash money, o oid,
            t text, vc varchar(5), fixed char(4), d date, tm time, tmz timetz, ts timestamp,
            tsz timestamptz, iv interval, u uuid, js json, jb jsonb, ip inet, net cidr,
            mac macaddr, mac8 macaddr8, bits bit(4), vbits varbit, tv tsvector, tq tsquery,
            lsn pg_lsn, pt point, ln line, seg lseg, bx box, pth path, poly polygon, circ circle,
            r4 int4range, r8 int8range, rn numrange, rd daterange, rts tsrange, rtsz tstzrange,
            mr4 int4multirange, mrd datemultirange, texts text[], ints int[], grid int[][],
            stamps timestamptz[], m mood, pos positive, few small_ints);
        INSERT INTO every_type VALUES
          (1, true, '\x00ff5c0a09'::bytea, 'x', 'a name', -32768, -2147483648,
           -9223372036854775808, '-0', 'NaN', 'NaN', 12345678.91, '-12.34', 4294967295,
           E'tab\there\nnew line \\ back slash ünïcödé 🐘', 'abc', 'ab', '4713-01-01 BC',
           '24:00:00', '23:59:59.999999+14:59', 'infinity', '-infinity',
           '-178000000 years 1 day -00:00:00.000001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
           '{"b": 1,   "a": [1, 2.50, null], "b": 2}', '{"k": "v\u00e9", "n": 1.0e3, "z": [true, null]}',
           '2001:db8::1/64', '10.1.0.0/16', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
           B'1010', B'110011001100110', 'a fat:1A cat:2B sat', 'fat & (rat | !cat)',
           '16/B374D848', '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '((2,2),(0,0))',
           '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', '<(1,1),5>', 'empty', '(,)',
           '[1.5,2.25)', '[2024-01-01,infinity)', '(,2024-01-01 00:00:00)',
           '["2024-01-01 00:00:00+00",)', '{[1,3),[5,7)}', '{}', '{"", NULL, "a,b", "q\"uote"}',
           '{}', '{{1,2},{3,NULL}}', '{infinity,-infinity,"2024-02-29 12:00:00+00"}', 'happy',
           7, '{1,NULL,3}'),
          (2, false, '', ' ', '', 32767, 2147483647, 9223372036854775807, 'Infinity',
           '-Infinity', '-Infinity', -0.5, '0', 0, '', '', '', '2024-02-29', '00:00', '00:00+00',
           '2000-01-01 00:00:00.000001', '1999-12-31 23:59:59.999999+00', '0', gen_random_uuid(),
           'null', '[]', '0.0.0.0/0', '0.0.0.0/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00',
           B'0000', B'', '', 'x', '0/0', '(0,0)', '{0,1,0}', '[(0,0),(0,1)]', '((0,0),(0,0))',
           '((0,0))', '((0,0))', '<(0,0),0>', '[1,1]', '(1,)', 'empty', 'empty', 'empty', 'empty',
           '{}', '{empty}', '{"one"}', '{-1}', '{}', '{}', 'sad', 1, '{}'),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE empty_binary (id int8, at timestamptz, doc jsonb);
        CREATE TABLE split_binary (id int8, at timestamptz, doc jsonb, amount numeric, blob bytea);
        INSERT INTO split_binary
             SELECT g, '2024-01-01'::timestamptz + g * interval '1 minute',
                    jsonb_build_object('n', g, 'tag', 'row ' || g), g * 1.01, int8send(g)
               FROM generate_series(1, 20000) g;
        CREATE TABLE moods (id int, seen mood[]);
        INSERT INTO moods VALUES (1, '{sad,happy}'), (2, NULL), (3, '{}');
        CREATE TABLE pairs (id int, p pair);
        INSERT INTO pairs VALUES (1, ROW(1, 'one')), (2, NULL), (3, ROW(NULL, 'x y'));
        CREATE TABLE named (id int, rel regclass, types regtype[]);
        INSERT INTO named VALUES (1, 'every_type', '{int4,mood}'), (2, 'moods', NULL);
        CREATE TABLE docs (id int, x xml);
        INSERT INTO docs VALUES (1, '<a b="1">text &amp; more</a>'), (2, NULL);
    "#;
    let setup = Setup::new("fid_binary", schema, "strict: off").await;
    // Split tables over 300 kB into page ranges: split_binary is about 2 MB.
    let (code, out, err) = setup.run_env(&["-vv", "refresh"], &[("RESTAGE_SPLIT_BYTES", "300000")]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let formats = travel_formats(&err);
    let format_of = |table: &str| formats_of(&formats, table);
    for table in ["every_type", "empty_binary"] {
        assert_eq!(
            format_of(&format!("public.{table}")),
            ["binary"],
            "{table}: {formats:?}"
        );
    }
    let ranges = format_of("public.split_binary");
    assert!(
        ranges.len() > 1 && ranges.iter().all(|f| *f == "binary"),
        "split_binary in binary ranges: {formats:?}"
    );
    for table in ["moods", "pairs", "named", "docs"] {
        assert_eq!(
            format_of(&format!("public.{table}")),
            ["text"],
            "{table}: {formats:?}"
        );
    }
    harness::assert_same_tables(
        &harness::table_checksums(&setup.source.url()).await,
        &harness::table_checksums(&setup.staging_url()).await,
    );
    // The report counts rows as the server stored them (a binary COPY's header and trailer
    // are not rows).
    let staging = setup.staging().await;
    let split: i64 = harness::scalar(&staging, "SELECT count(*) FROM split_binary").await;
    assert_eq!(split, 20000);
    let names: String = harness::scalar(
        &staging,
        "SELECT string_agg(rel::text || ' ' || coalesce(types::text, '-'), '; ' ORDER BY id) FROM named",
    )
    .await;
    assert_eq!(names, "every_type {integer,mood}; moods -");

    // With rules, the row stage reads the ruled and the probed columns: a table travels in
    // binary when each of those holds its text there (text, varchar, char(n), json, jsonb,
    // an enum); one that must read a uuid, an inet or a date (or a bytea) travels in text.
    let schema = r#"
        CREATE TYPE tier AS ENUM ('free', 'paid');
        CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, code char(6), nick varchar(30),
                             level tier, doc jsonb, raw json, at timestamptz NOT NULL, score numeric);
        INSERT INTO people SELECT g, 'person' || g || '@example.test', 'c' || g, E'nick\t' || g,
               'paid', jsonb_build_object('email', 'person' || g || '@example.test', 'n', g, 'deep', jsonb_build_object('k', 'v')),
               '{"keep":  "as written"}', '2024-01-01'::timestamptz + g * interval '1 hour', g / 3.0
          FROM generate_series(1, 300) g;
        CREATE TABLE kept (id int PRIMARY KEY, body text, at timestamptz);
        INSERT INTO kept SELECT g, 'nothing personal ' || g, now() FROM generate_series(1, 50) g;
        CREATE TABLE tokens (id int PRIMARY KEY, token uuid, seen inet);
        INSERT INTO tokens SELECT g, gen_random_uuid(), '10.0.0.1' FROM generate_series(1, 20) g;
        CREATE TABLE births (id int PRIMARY KEY, born date);
        INSERT INTO births SELECT g, '1990-01-01'::date + g FROM generate_series(1, 20) g;
    "#;
    let setup = Setup::new("fid_binrules", schema, "strict: off\nrules: rules").await;
    setup.write_rules(
        "r.yaml",
        r#"tables:
  public.people:
    email: email
    code: { transform: constant, value: "xxxxxx" }
    nick: first_name
    level: { transform: constant, value: free }
    doc: { transform: json, paths: { "$.email": email } }
    "*": keep
  public.births:
    born: { transform: date_shift, days: 10 }
"#,
    );
    let (code, out, err) = setup.run(&["-vv", "refresh"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let formats = travel_formats(&err);
    let format_of = |table: &str| formats_of(&formats, table);
    for table in ["people", "kept"] {
        assert_eq!(
            format_of(&format!("public.{table}")),
            ["binary"],
            "{table}\n{err}"
        );
    }
    for table in ["tokens", "births"] {
        assert_eq!(
            format_of(&format!("public.{table}")),
            ["text"],
            "{table}\n{err}"
        );
    }
    let source = setup.source.client().await;
    let staging = setup.staging().await;
    // The kept columns are the source's; the ruled ones are rewritten, jsonb around its path.
    let kept =
        "SELECT string_agg(concat_ws('|', id, raw::text, at, score), ',' ORDER BY id) FROM people";
    let source_kept: String = harness::scalar(&source, kept).await;
    assert_eq!(harness::scalar::<String>(&staging, kept).await, source_kept);
    let unchanged: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM people WHERE email LIKE 'person%@example.test' OR code <> 'xxxxxx'
             OR nick LIKE 'nick%' OR level <> 'free' OR doc->>'email' LIKE 'person%'
             OR doc->'n' IS NULL OR doc->'deep'->>'k' <> 'v'",
    )
    .await;
    assert_eq!(unchanged, 0);
    let rows: i64 = harness::scalar(&staging, "SELECT count(*) FROM people").await;
    assert_eq!(rows, 300);
    let mut expected = harness::table_checksums(&setup.source.url()).await;
    let mut got = harness::table_checksums(&setup.staging_url()).await;
    for ruled in ["public.people", "public.births"] {
        assert_eq!(
            expected.remove(ruled).map(|e| e.0),
            got.remove(ruled).map(|g| g.0)
        );
    }
    harness::assert_same_tables(&expected, &got);
}
