//! Anonymization end to end (issue 3): a database whose users, orders and events hold personal
//! data, refreshed with a full rule set. No original value of any ruled column appears
//! anywhere in staging — every text column of every table is searched — while joins on
//! pseudonymized columns still match.

use crate::harness;

use std::collections::HashSet;

use crate::harness::Setup;
use futures_util::StreamExt;

/// Personal values are made distinctive (`Givenname17q`, …) so that a fake value can never be
/// equal to one by chance: any hit is a leak.
const SCHEMA: &str = r#"
CREATE TABLE users (
    id int PRIMARY KEY,
    email text NOT NULL UNIQUE,
    first_name text NOT NULL,
    last_name text NOT NULL,
    phone text,
    ssn text,
    birth_date date,
    notes text,
    profile jsonb,
    nicknames text[],
    signup_ip inet,
    status text NOT NULL
);
INSERT INTO users
SELECT g,
       'person' || g || '.real@corpmail.test',
       'Givenname' || g || 'q',
       'Familyname' || g || 'z',
       '+1-202-555-' || lpad(g::text, 4, '0'),
       lpad(g::text, 3, '0') || '-45-' || lpad((g * 7 % 10000)::text, 4, '0'),
       date '1970-01-01' + g,
       'called person' || g || '.real@corpmail.test about SSN ' || lpad(g::text, 3, '0') || '-45-' || lpad((g * 7 % 10000)::text, 4, '0'),
       jsonb_build_object('email', 'person' || g || '.real@corpmail.test', 'address', jsonb_build_object('street', g || ' Secretstreet' || g || 'w'), 'plan', 'gold'),
       ARRAY['Nick' || g || 'a', 'Nick' || g || 'b'],
       ('10.' || (g / 256) || '.' || (g % 256) || '.7')::inet,
       CASE WHEN g % 2 = 0 THEN 'active' ELSE 'closed' END
FROM generate_series(1, 600) g;

CREATE TABLE orders (
    id int PRIMARY KEY,
    user_id int NOT NULL REFERENCES users (id),
    customer_email text NOT NULL,
    customer_name text NOT NULL,
    card text NOT NULL,
    total numeric(10, 2)
);
INSERT INTO orders SELECT g, 1 + g % 600, 'person' || (1 + g % 600) || '.real@corpmail.test',
       'Givenname' || (1 + g % 600) || 'q Familyname' || (1 + g % 600) || 'z',
       '4' || lpad((g * 7919 % 1000000000000000)::text, 15, '0'), g
  FROM generate_series(1, 2000) g;

CREATE TABLE events (
    id bigint,
    user_id int NOT NULL REFERENCES users (id),
    payload jsonb NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2024-01-01');
CREATE TABLE events_b PARTITION OF events DEFAULT;
INSERT INTO events SELECT g, 1 + g % 600,
       jsonb_build_object('email', 'person' || (1 + g % 600) || '.real@corpmail.test', 'ip', '10.9.' || (g % 250) || '.1', 'kind', 'login'),
       timestamptz '2023-06-01' + g * interval '1 hour'
  FROM generate_series(1, 3000) g;
"#;

const RULES: &str = r#"
tables:
  public.users:
    email: { transform: email, unique: true }
    first_name: first_name
    last_name: last_name
    phone: phone
    ssn: hash
    birth_date: { transform: date_shift, days: 60 }
    notes: { transform: regex_replace, pattern: '\S+@\S+|\d{3}-\d{2}-\d{4}', with: "[redacted]" }
    profile: { transform: json, paths: { "$.email": email, "$.address.street": street_address } }
    nicknames: username
    signup_ip: ipv4
    "*": keep
  public.orders:
    customer_email: email
    customer_name: name
    card: { transform: mask, keep_last: 4 }
    "*": keep
  public.events:
    payload: { transform: json, paths: { "$.email": email, "$.ip": ipv4 } }
    "*": keep
"#;

#[tokio::test]
async fn no_original_value_of_a_ruled_column_reaches_staging() {
    let setup = Setup::new("anon", SCHEMA, "strict: pii").await;
    setup.write_rules("full.yaml", RULES);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // Every original value of every ruled column (and inside ruled json paths).
    let src = setup.source.client().await;
    let mut originals: HashSet<String> = HashSet::new();
    for sql in [
        "SELECT email FROM users",
        "SELECT first_name FROM users",
        "SELECT last_name FROM users",
        "SELECT phone FROM users",
        "SELECT ssn FROM users",
        "SELECT unnest(nicknames) FROM users",
        "SELECT host(signup_ip) FROM users",
        "SELECT profile->'address'->>'street' FROM users",
        "SELECT customer_email FROM orders",
        "SELECT card FROM orders",
        "SELECT payload->>'ip' FROM events",
    ] {
        for row in src.query(sql, &[]).await.unwrap() {
            originals.insert(row.get::<_, String>(0));
        }
    }
    // Multi-word values are searched word by word.
    let words: HashSet<String> = originals
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| w.len() >= 6)
        .collect();
    assert!(words.len() > 4000, "{}", words.len());

    // Every text-like column of every table in staging, as text.
    let stg = setup.staging().await;
    let columns = stg
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), a.attname::text
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_type t ON t.oid = a.atttypid
              WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND (t.typcategory IN ('S', 'U', 'I', 'A') OR t.typname IN ('json', 'jsonb', 'tsvector'))",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.len() >= 15);
    let mut scanned = 0u64;
    for col in columns {
        let table: String = col.get(0);
        let column: String = col.get(1);
        let sql = format!(
            "COPY (SELECT \"{column}\"::text FROM {table} WHERE \"{column}\" IS NOT NULL) TO STDOUT"
        );
        let stream = stg.copy_out(&sql).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            let text = String::from_utf8_lossy(&chunk);
            scanned += 1;
            for token in text.split(|c: char| !(c.is_alphanumeric() || "@.-_+".contains(c))) {
                let token = token.trim_matches('.');
                assert!(
                    !words.contains(token) && !originals.contains(token),
                    "{table}.{column} holds an original value"
                );
            }
        }
    }
    assert!(scanned > 10_000, "{scanned}");

    // Joins on pseudonymized columns still match, as in production.
    let join = "SELECT count(*) FROM orders o JOIN users u ON u.email = o.customer_email";
    let before: i64 = harness::scalar(&src, join).await;
    let after: i64 = harness::scalar(&stg, join).await;
    assert_eq!(before, 2000);
    assert_eq!(
        after, before,
        "orders.customer_email and users.email pseudonymized alike"
    );
    let json_join = "SELECT count(*) FROM events e JOIN users u ON u.email = e.payload->>'email' AND u.id = e.user_id";
    let after: i64 = harness::scalar(&stg, json_join).await;
    assert_eq!(
        after, 3000,
        "emails inside jsonb pseudonymized like the column"
    );
    // Untouched columns are as they were; unique emails stayed unique.
    let statuses: i64 =
        harness::scalar(&stg, "SELECT count(*) FROM users WHERE status = 'active'").await;
    assert_eq!(statuses, 300);
    let last4: i64 = harness::scalar(&stg, "SELECT count(*) FROM orders WHERE card LIKE '%' || right(card, 4) AND card ~ '^\\*+\\d{4}$'").await;
    assert_eq!(last4, 2000);
}

/// Strict mode refuses personal-looking columns without rules, names them, and copies
/// nothing; `--allow-unclassified` lets one run through and says so in the report.
#[tokio::test]
async fn strict_mode_refuses_then_allows() {
    let setup = unruled_customers("strict").await;
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("public.customers.email"), "{stderr}");
    assert!(stderr.contains("public.customers.telefon"), "{stderr}");
    assert!(!stderr.contains("customers.sku"), "{stderr}");
    assert!(
        harness::databases_like(&setup.staging).await.is_empty(),
        "nothing was created"
    );

    let (code, stdout, stderr) = setup.run(&["refresh", "--allow-unclassified"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("copied WITHOUT a rule (--allow-unclassified)"),
        "{stdout}"
    );

    // strict: all refuses every uncovered column.
    strict_all_with_some_rules(&setup);
    let (code, _, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("public.customers.sku (no rule)"),
        "{stderr}"
    );
    assert!(stderr.contains("public.customers.id (no rule)"), "{stderr}");
}

/// Personal-looking columns (email, telefon) and an innocent one (sku), no rules, `strict:
/// pii`: refresh refuses.
async fn unruled_customers(prefix: &str) -> Setup {
    Setup::new(
        prefix,
        "CREATE TABLE customers (id int PRIMARY KEY, email text, telefon text, sku text);
         INSERT INTO customers VALUES (1, 'a@b.c', '123', 'X');",
        "strict: pii",
    )
    .await
}

/// Rules for the personal columns only, under `strict: all`: refresh refuses the others.
fn strict_all_with_some_rules(setup: &Setup) {
    setup.write_config("strict: all");
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.customers:\n    email: email\n    telefon: phone\n",
    );
}

/// Issue 10: validate refuses both configurations strict mode refuses.
#[tokio::test]
async fn validate_refuses_what_strict_mode_refuses() {
    let setup = unruled_customers("strictv").await;
    let pii = setup
        .validate_refuses()
        .map_err(|e| format!("strict: pii: {e}"));
    strict_all_with_some_rules(&setup);
    let all = setup
        .validate_refuses()
        .map_err(|e| format!("strict: all: {e}"));
    let accepted: Vec<String> = [pii, all].into_iter().filter_map(Result::err).collect();
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
}

/// A deliberately leaky rule set — a personal column kept while another column with the same
/// values is pseudonymized — fails verification with exit 3, names the columns, not the
/// values, and leaves staging as it was.
#[tokio::test]
async fn a_leaky_rule_set_fails_verification_with_exit_3() {
    let setup = Setup::new(
        "leaky",
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO users SELECT g, 'leaky' || g || '@corpmail.test' FROM generate_series(1, 200) g;
         CREATE TABLE orders (id int PRIMARY KEY, customer_email text NOT NULL);
         INSERT INTO orders SELECT g, 'leaky' || g || '@corpmail.test' FROM generate_series(1, 200) g;",
        "strict: off",
    )
    .await;
    setup.write_rules(
        "leaky.yaml",
        "tables:\n  public.orders:\n    customer_email: email\n  public.users:\n    email: keep\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("public.users.email ← public.orders.customer_email"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("leaky1@corpmail.test") && !stdout.contains("leaky1@"),
        "no value in the message"
    );
    assert!(
        harness::databases_like(&setup.staging).await.is_empty(),
        "the half-built database was dropped and nothing went live"
    );
}

/// Values inside ruled json paths are sampled too: a copy of them elsewhere is a leak.
#[tokio::test]
async fn a_leak_of_values_from_inside_json_is_caught() {
    let setup = Setup::new(
        "jsonleak",
        "CREATE TABLE docs (id int PRIMARY KEY, payload jsonb NOT NULL);
         INSERT INTO docs SELECT g, jsonb_build_object('contact', jsonb_build_object('email', 'inner' || g || '@corpmail.test'), 'n', g)
           FROM generate_series(1, 300) g;
         CREATE TABLE audit (id int PRIMARY KEY, line text);
         INSERT INTO audit SELECT g, 'mail sent to inner' || g || '@corpmail.test' FROM generate_series(1, 300) g;",
        "strict: off",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.docs:\n    payload: { transform: json, paths: { \"$.contact.email\": email } }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("public.audit.line ← public.docs.payload $.contact.email (300 values)"),
        "{stderr}"
    );
    // With the audit lines ruled too, the same documents pass.
    setup.write_rules(
        "s.yaml",
        "tables:\n  public.audit:\n    line: { transform: regex_replace, pattern: '\\S+@\\S+', with: '[email]' }\n",
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}
