//! After the load (issue 5): derived search columns rebuilt from anonymized data, materialized
//! views refreshed from it, Redis flushed by prefix and warmed with exactly the expected keys.

use crate::harness;

use crate::harness::Setup;
use redis::AsyncCommands;

const SCHEMA: &str = "
CREATE TABLE users (
    id int PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text NOT NULL,
    search tsvector
);
INSERT INTO users SELECT g, 'Realfirst' || g, 'Reallast' || g, 'real' || g || '@corpmail.test', NULL FROM generate_series(1, 300) g;
UPDATE users SET search = to_tsvector('simple', first_name || ' ' || last_name);
CREATE INDEX users_search ON users USING gin (search);
CREATE MATERIALIZED VIEW user_emails AS SELECT id, email, upper(last_name) AS shout FROM users;
CREATE MATERIALIZED VIEW email_domains AS SELECT split_part(email, '@', 2) AS domain, count(*) FROM user_emails GROUP BY 1;
";

const RULES: &str = "tables:\n  public.users:\n    first_name: first_name\n    last_name: last_name\n    email: email\n    \"*\": keep\n";

#[tokio::test]
async fn tsvector_and_materialized_views_are_rebuilt_from_anonymized_data() {
    let setup = Setup::new(
        "search",
        SCHEMA,
        "strict: pii
search:
  tsvector:
    - { table: public.users, column: search, expression: \"to_tsvector('simple', first_name || ' ' || last_name)\" }",
    )
    .await;
    setup.write_rules("r.yaml", RULES);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stg = setup.staging().await;
    let leaked: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM users WHERE search::text ~* 'real(first|last)'",
    )
    .await;
    assert_eq!(leaked, 0, "no original name in the tsvector");
    let matches: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM users WHERE search @@ to_tsquery('simple', lower(first_name))",
    )
    .await;
    assert_eq!(
        matches, 300,
        "the tsvector holds the fake names and the index answers"
    );
    let leaked: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM user_emails WHERE email LIKE '%corpmail%' OR shout LIKE 'REALLAST%'",
    )
    .await;
    assert_eq!(
        leaked, 0,
        "the materialized view shows only anonymized values"
    );
    let domains: Vec<String> = stg
        .query("SELECT domain FROM email_domains", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !domains.is_empty() && domains.iter().all(|d| d.starts_with("example.")),
        "{domains:?}"
    );

    // `restage reindex` alone, against the live database.
    let (code, stdout, stderr) = setup.run(&["reindex"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("1 derived columns recomputed, 2 materialized views refreshed"),
        "{stdout}"
    );
}

/// A derived expression that fails on the copied rows fails the run, naming the table, and
/// changes nothing: live staging keeps the previous refresh, no half-built database is left.
/// Both ways a column is recomputed: during the copy (an expression of its own row) and after
/// it (an expression through a STABLE function, which may read other tables).
#[tokio::test]
async fn a_derived_expression_that_fails_leaves_staging_as_it_was() {
    let schema = "
        CREATE FUNCTION strict_label(t text) RETURNS text LANGUAGE plpgsql STABLE AS $$
          BEGIN IF t LIKE '%13' THEN RAISE EXCEPTION 'no label for %', t; END IF; RETURN t; END $$;
        CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, n int, label text);
        INSERT INTO notes SELECT g, 'note ' || g, NULL, NULL FROM generate_series(1, 50) g;
    ";
    let ok = "strict: off
search:
  tsvector:
    - { table: public.notes, column: n, expression: \"length(body)\" }";
    let setup = Setup::new("derived_fail", schema, ok).await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let generations = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    for (expression, column) in [
        // Its own row only: recomputed during the copy.
        ("(split_part(body, ' ', 1))::int", "n"),
        // Through a STABLE function: after the copy.
        ("strict_label(body)", "label"),
    ] {
        setup.write_config(&format!(
            "strict: off
search:
  tsvector:
    - {{ table: public.notes, column: {column}, expression: \"{expression}\" }}"
        ));
        let (code, out, err) = setup.run(&["refresh"]);
        assert_ne!(code, 0, "{expression}: {out}\n{err}");
        assert!(
            err.contains("recomputing derived columns of public.notes"),
            "{expression}: {err}"
        );
        let stg = setup.staging().await;
        let kept: i64 = harness::scalar(
            &stg,
            "SELECT count(*) FROM notes WHERE n = length(body) AND label IS NULL",
        )
        .await;
        assert_eq!(
            kept, 50,
            "{expression}: live staging is the previous refresh"
        );
        assert_eq!(
            harness::databases_like(&harness::generations_prefix(&setup.staging)).await,
            generations,
            "{expression}: no database left behind"
        );
    }
}

/// Anonymized columns and a tsvector of them without a recompute rule: refresh refuses.
async fn tsvector_without_a_recompute_rule(prefix: &str) -> Setup {
    let setup = Setup::new(prefix, SCHEMA, "strict: pii").await;
    setup.write_rules("r.yaml", RULES);
    setup
}

#[tokio::test]
async fn a_tsvector_without_a_recompute_rule_is_refused() {
    let setup = tsvector_without_a_recompute_rule("tsv").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("public.users.search is a tsvector on a table with anonymized columns"),
        "{stderr}"
    );
    // …or only warned about when asked.
    setup.write_config("strict: pii\nsearch:\n  unruled_tsvector: warn\n");
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("warning: public.users.search is a tsvector"),
        "{stdout}"
    );
}

/// Issue 10: validate refuses it too.
#[tokio::test]
async fn validate_refuses_a_tsvector_without_a_recompute_rule() {
    let setup = tsvector_without_a_recompute_rule("tsvv").await;
    if let Err(e) = setup.validate_refuses() {
        panic!("{e}");
    }
}

#[tokio::test]
async fn cache_flush_removes_only_given_prefixes_and_warm_writes_expected_keys() {
    let setup = Setup::new("warm", SCHEMA, "").await;
    let p = harness::redis_prefix("warm");
    let other = harness::redis_prefix("other");
    let redis_url = harness::redis_url();
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Stale keys under the flushed prefix, and someone else's keys.
    for i in 0..50 {
        let _: () = conn.set(format!("{p}user:stale{i}"), "old").await.unwrap();
        let _: () = conn
            .set(format!("{other}user:{i}"), "keep me")
            .await
            .unwrap();
    }
    let _: () = conn
        .set(format!("{p}unrelated"), "keep me too")
        .await
        .unwrap();
    setup.write_config(&format!(
        "strict: pii
search:
  tsvector:
    - {{ table: public.users, column: search, expression: \"to_tsvector('simple', first_name || ' ' || last_name)\" }}
cache:
  url: {redis_url}
  flush: [\"{p}user:\"]
  warm:
    - query: SELECT id, email, first_name FROM users ORDER BY id
      key: \"{p}user:{{id}}\"
      value: json
      ttl: 1h
    - query: SELECT id, email FROM users WHERE id <= 10
      key: \"{p}h:{{id}}\"
      value: hash
    - query: SELECT id, email FROM users WHERE id <= 5
      key: \"{p}email:{{id}}\"
      value: email
      ttl: 30s"
    ));
    setup.write_rules("r.yaml", RULES);
    let (code, stdout, stderr) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["cache"]["flushed_keys"], 50);
    assert_eq!(report["cache"]["written_keys"], 315);

    let keys: Vec<String> = conn.keys(format!("{p}*")).await.unwrap();
    assert_eq!(
        keys.len(),
        300 + 10 + 5 + 1,
        "exactly the warmed keys and the unrelated one"
    );
    let others: Vec<String> = conn.keys(format!("{other}*")).await.unwrap();
    assert_eq!(others.len(), 50, "other prefixes survive");
    let json: String = conn.get(format!("{p}user:7")).await.unwrap();
    let row: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(row["id"], 7);
    assert!(
        row["email"].as_str().unwrap().contains("@example."),
        "anonymized: {row}"
    );
    let ttl: i64 = conn.ttl(format!("{p}user:7")).await.unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    let ttl: i64 = conn.ttl(format!("{p}h:3")).await.unwrap();
    assert_eq!(ttl, -1, "no ttl configured");
    let hash: std::collections::HashMap<String, String> =
        conn.hgetall(format!("{p}h:3")).await.unwrap();
    assert_eq!(hash["id"], "3");
    let email: String = conn.get(format!("{p}email:2")).await.unwrap();
    assert!(email.contains("@example."), "{email}");
    let ttl: i64 = conn.ttl(format!("{p}email:2")).await.unwrap();
    assert!((1..=30).contains(&ttl), "{ttl}");

    // `restage warm` alone does it again.
    let (code, stdout, stderr) = setup.run(&["warm"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("315 keys written"), "{stdout}");

    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&others)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Redis down: the refresh still swaps (the data is the point) but exits 5 (live, but) and says the cache
/// was not warmed; with `cache.required: true` it fails before the swap.
#[tokio::test]
async fn redis_down_swaps_and_exits_5_unless_required() {
    let setup = Setup::new(
        "nocache",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        "",
    )
    .await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache =
        format!("strict: off\ncache:\n  url: redis://127.0.0.1:{port}/0\n  flush: [\"x:\"]\n");
    setup.write_config(&cache);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("is live, but the cache was NOT warmed"),
        "{stderr}"
    );
    let n: i64 = harness::scalar(&setup.staging().await, "SELECT count(*) FROM t").await;
    assert_eq!(n, 1, "staging was swapped in");

    setup.source.execute("INSERT INTO t VALUES (2)").await;
    setup.write_config(&format!("{cache}  required: true\n"));
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cache.required is true, so staging was not swapped"),
        "{stderr}"
    );
    let n: i64 = harness::scalar(&setup.staging().await, "SELECT count(*) FROM t").await;
    assert_eq!(n, 1, "staging unchanged");
}

/// `restage verify` on the live staging database: passes after a refresh, fails with exit 3
/// naming the column once a production value is written into staging, and notices rows that
/// went missing against the recorded plan.
#[tokio::test]
async fn verify_checks_the_live_staging_database() {
    let setup = Setup::new(
        "verifylive",
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, note text);
         INSERT INTO users SELECT g, 'live' || g || '@corpmail.test', 'x' FROM generate_series(1, 100) g;",
        "strict: pii",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.users:\n    email: email\n    \"*\": keep\n",
    );
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = setup.run(&["verify"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no leak") && stdout.contains("row counts as planned"),
        "{stdout}"
    );

    let stg = setup.staging().await;
    stg.batch_execute("UPDATE users SET note = 'contact live42@corpmail.test' WHERE id = 1")
        .await
        .unwrap();
    let (code, _, stderr) = setup.run(&["verify"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("public.users.note ← public.users.email (1 value)"),
        "{stderr}"
    );
    assert!(!stderr.contains("live42"), "{stderr}");

    stg.batch_execute("UPDATE users SET note = 'x'; DELETE FROM users WHERE id > 90")
        .await
        .unwrap();
    let (code, _, stderr) = setup.run(&["verify"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("public.users: 90 rows, 100 planned"),
        "{stderr}"
    );
}
