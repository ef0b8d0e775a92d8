//! Verification that trusts no rule (issue 13): the identity check of every ruled column and
//! json path in the data stream, and the leak probe of every text-like output column, with
//! the source values in other shapes (upper case, inside xml or bytea, multi-word inside a
//! sentence, a phone written with spaces or parentheses). A failure is exit 3 (or 2 when the
//! mistake shows at load time), names the column, prints no value, and leaves live staging
//! as it was.

use crate::harness::{self, Setup};

/// People whose values are distinctive, so a test can search its output for them.
const PEOPLE: &str = r#"
CREATE TABLE people (
    id int PRIMARY KEY,
    email text NOT NULL,
    ssn text NOT NULL,
    city text NOT NULL,
    salary int NOT NULL,
    profile jsonb NOT NULL
);
INSERT INTO people
SELECT g,
       'person' || g || '.vfy@corpmail.test',
       lpad(g::text, 3, '0') || '-45-' || lpad((g * 7 % 10000)::text, 4, '0'),
       'Cityville' || g,
       30000 + g * 37,
       jsonb_build_object('email', 'inner' || g || '.vfy@corpmail.test', 'plan', 'gold')
FROM generate_series(1, 300) g;
"#;

const GOOD: &str = r#"
tables:
  public.people:
    email: email
    ssn: { transform: regex_replace, pattern: '\d{3}-\d{2}-\d{4}', with: 'XXX-XX-XXXX' }
    city: city
    salary: { transform: noise, percent: 10 }
    profile: { transform: json, paths: { "$.email": email } }
"#;

/// The good rules with the rule of `column` replaced by `rule`.
fn with_rule(column: &str, rule: &str) -> String {
    GOOD.lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{column}:")) {
                format!("    {column}: {rule}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The source values no output may show.
fn assert_no_value(out: &str) {
    for v in [
        "person1.vfy@",
        "001-45-0007",
        "Cityville1",
        "inner1.vfy@",
        "30037",
    ] {
        assert!(!out.contains(v), "a value ({v}) in the output:\n{out}");
    }
}

/// Live staging still holds what the good run made: anonymized values only.
async fn assert_live_unchanged(setup: &Setup, built: &str) {
    let staging = setup.staging().await;
    let db: String = harness::scalar(&staging, "SELECT current_database()::text").await;
    assert_eq!(db, setup.staging);
    let n: i64 = harness::scalar(
        &staging,
        "SELECT count(*) FROM people WHERE email LIKE '%.vfy@corpmail.test' OR ssn ~ '^\\d{3}-45-' OR city LIKE 'Cityville%'",
    )
    .await;
    assert_eq!(n, 0, "live staging holds source values");
    let marker: String = harness::scalar(&staging, "SELECT min(email) FROM people").await;
    assert_eq!(marker, built, "live staging is the one the good run built");
}

/// For each transform family, parameters that leave values unchanged: exit 3 naming the
/// column (and path), "N of M unchanged", no value printed, live staging unchanged. Where
/// the mistake shows at load time (`date_shift` of 0 days, `noise` of 0 %), exit 2.
#[tokio::test]
async fn rules_that_leave_values_unchanged_fail_before_the_swap() {
    let setup = Setup::new("vfyid", PEOPLE, "strict: off").await;
    setup.write_rules("r.yaml", GOOD);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let staging = setup.staging().await;
    let built: String = harness::scalar(&staging, "SELECT min(email) FROM people").await;
    drop(staging);

    let cases: &[(&str, &str, &str)] = &[
        // An SSN rule written for 123456789 on data stored as 123-45-6789.
        (
            "ssn",
            r"{ transform: regex_replace, pattern: '^\d{9}$', with: 'XXXXXXXXX' }",
            "public.people.ssn (regex_replace): 300 of 300 values unchanged",
        ),
        // A regex on city that never matches.
        (
            "city",
            r"{ transform: regex_replace, pattern: '\d{5}', with: '#' }",
            "public.people.city (regex_replace): 300 of 300 values unchanged",
        ),
        // A json path that matches no document.
        (
            "profile",
            r#"{ transform: json, paths: { "$.mail": email } }"#,
            "public.people.profile $.mail (email): the path matched no document",
        ),
        // Noise too small to move any value.
        (
            "salary",
            "{ transform: noise, percent: 0.0001 }",
            "public.people.salary (noise): 300 of 300 values unchanged",
        ),
        // A mask that keeps every letter and digit it can: a value its ends cover is masked
        // whole, so nothing stays; but one that changes nothing is refused all the same.
        (
            "ssn",
            "{ transform: mask, keep_first: 3, keep_last: 4, char: '-' }",
            "",
        ),
    ];
    for (column, rule, expected) in cases {
        setup.write_rules("r.yaml", &with_rule(column, rule));
        let (code, stdout, stderr) = setup.run(&["refresh"]);
        let out = format!("{stdout}\n{stderr}");
        if expected.is_empty() {
            // `mask` keeping 3 + 4 of `123-45-6789` masks the middle digits: a change.
            assert_eq!(code, 0, "{column}: {rule}\n{out}");
            continue;
        }
        assert_eq!(code, 3, "{column}: {rule}\n{out}");
        assert!(stderr.contains(expected), "{column}: {rule}\n{out}");
        assert!(stderr.contains("staging was not swapped"), "{out}");
        assert_no_value(&out);
        assert_live_unchanged(&setup, &built).await;
    }
    // The mask run went live; back to the good rules' staging for the load-time cases.
    setup.write_rules("r.yaml", GOOD);
    let (code, ..) = setup.run(&["refresh"]);
    assert_eq!(code, 0);
    let staging = setup.staging().await;
    let built: String = harness::scalar(&staging, "SELECT min(email) FROM people").await;
    drop(staging);

    for (column, rule, param) in [
        ("city", "{ transform: date_shift, days: 0 }", "days"),
        ("salary", "{ transform: noise, percent: 0 }", "percent"),
        (
            "email",
            "{ transform: email, may_match_nothing: true }",
            "may_match_nothing",
        ),
        (
            "ssn",
            r"{ transform: regex_replace, pattern: x, with: y, may_match_nothing: maybe }",
            "may_match_nothing",
        ),
    ] {
        setup.write_rules("r.yaml", &with_rule(column, rule));
        let (code, stdout, stderr) = setup.run(&["refresh"]);
        let out = format!("{stdout}\n{stderr}");
        assert_eq!(code, 2, "{rule}\n{out}");
        assert!(out.contains(column) && out.contains(param), "{rule}\n{out}");
        assert_no_value(&out);
        assert_live_unchanged(&setup, &built).await;
    }

    // A free-text scrubber that may find nothing tonight says so, and passes.
    setup.write_rules(
        "r.yaml",
        &with_rule(
            "city",
            r"{ transform: regex_replace, pattern: '\d{3}-\d{2}-\d{4}', with: 'X', may_match_nothing: true }",
        ),
    );
    let (code, stdout, stderr) = setup.run(&["refresh", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

/// The report: per ruled column and json path, values checked, unchanged, expected by
/// chance, verdict — in text and in `--json`.
#[tokio::test]
async fn the_report_shows_each_ruled_column() {
    let setup = Setup::new("vfyrep", PEOPLE, "strict: off").await;
    setup.write_rules("r.yaml", GOOD);
    let (code, stdout, stderr) = setup.run(&["refresh", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    let columns = report["verification"]["columns"]
        .as_array()
        .expect("columns");
    let find = |name: &str| {
        columns
            .iter()
            .find(|c| c["column"] == name)
            .unwrap_or_else(|| panic!("{name} in {columns:?}"))
    };
    let email = find("public.people.email");
    assert_eq!(email["values_checked"], 300);
    assert_eq!(email["unchanged"], 0);
    assert_eq!(email["verdict"], "ok");
    let path = find("public.people.profile $.email");
    assert_eq!(path["values_checked"], 300);
    let ssn = find("public.people.ssn");
    assert_eq!(ssn["rule"], "regex_replace");
    assert!(ssn["expected_by_chance"].as_f64().unwrap() >= 0.0);
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("public.people.city") && stdout.contains("unchanged"),
        "{stdout}"
    );
    assert_no_value(&stdout);
}

/// Legitimate rules raise no false alarm, over repeated runs: a regex on free text where
/// most rows have no match, name and place transforms on small columns, `date_shift`,
/// `ipv4` on 1 M rows, `unique` emails, a json path that reaches documents of one partition
/// only (partitions are judged together).
#[tokio::test]
async fn legitimate_rules_raise_no_false_alarm() {
    let setup = Setup::new(
        "vfyok",
        r#"
        CREATE TABLE notes (id int PRIMARY KEY, body text);
        INSERT INTO notes SELECT g, CASE WHEN g % 10 = 0
            THEN 'customer gave SSN ' || lpad(g::text, 3, '0') || '-12-3456 on the phone'
            ELSE 'customer asked about the invoice of ' || g END
          FROM generate_series(1, 2000) g;
        CREATE TABLE small (id int PRIMARY KEY, first_name text, last_name text, country text, city text, born date);
        INSERT INTO small SELECT g, (ARRAY['James','Mary','John','Anna','Lee'])[1 + g % 5],
               (ARRAY['Smith','Lee','Brown'])[1 + g % 3], (ARRAY['France','Peru'])[1 + g % 2],
               'Paris', date '1980-01-01' + g
          FROM generate_series(1, 12) g;
        CREATE TABLE hits (id int PRIMARY KEY, ip inet NOT NULL, email text NOT NULL);
        INSERT INTO hits SELECT g, ('10.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256))::inet,
               'u' || g || '@corp.test'
          FROM generate_series(1, 1000000) g;
        CREATE TABLE ev (id int, at date NOT NULL, doc jsonb NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_old PARTITION OF ev FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');
        CREATE TABLE ev_new PARTITION OF ev DEFAULT;
        INSERT INTO ev SELECT g, date '2019-12-01' + g,
               CASE WHEN g > 40 THEN jsonb_build_object('ip', '10.1.2.' || g % 250) ELSE '{"kind": "x"}' END
          FROM generate_series(1, 100) g;
        "#,
        "strict: off",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        r#"
tables:
  public.notes:
    body: { transform: regex_replace, pattern: '\d{3}-\d{2}-\d{4}', with: 'XXX-XX-XXXX' }
  public.small:
    first_name: first_name
    last_name: last_name
    country: country
    city: city
    born: { transform: date_shift, days: 30 }
  public.hits:
    ip: ipv4
    email: { transform: email, unique: true }
  public.ev:
    doc: { transform: json, paths: { "$.ip": ipv4 } }
"#,
    );
    for run in 0..2 {
        let (code, stdout, stderr) = setup.run(&["refresh"]);
        assert_eq!(code, 0, "run {run}\n{stdout}\n{stderr}");
    }
}

/// One planted shape: `plant` (SQL over the source, after `people` exists) copies a ruled
/// column's values into a kept column in another shape; the refresh fails with exit 3
/// naming that column, with no value in the output.
async fn planted(prefix: &str, plant: &str, rules: &str, leak: &str, value: &str) {
    let setup = Setup::new(
        prefix,
        &format!(
            r#"
            CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, phone text NOT NULL, address text NOT NULL);
            INSERT INTO users SELECT g, 'Nancy' || g || '.Davolio@corpmail.test',
                   '206-555-' || lpad(g::text, 4, '0'), g || ' Elmgrove Road'
              FROM generate_series(1, 200) g;
            {plant}
            "#
        ),
        "strict: off",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        &format!(
            "tables:\n  public.users:\n    email: email\n    phone: phone\n    address: street_address\n{rules}"
        ),
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    let out = format!("{stdout}\n{stderr}");
    assert_eq!(code, 3, "{out}");
    assert!(stderr.contains(leak), "{out}");
    assert!(!out.contains(value), "a value in the output:\n{out}");
    assert!(
        harness::databases_like(&setup.staging).await.is_empty(),
        "nothing went live"
    );
}

#[tokio::test]
async fn an_email_in_upper_case_is_caught() {
    planted(
        "vfyupper",
        "CREATE TABLE contacts (id int PRIMARY KEY, line text);
         INSERT INTO contacts SELECT id, upper(email) FROM users;",
        "",
        "public.contacts.line ← public.users.email",
        "DAVOLIO@",
    )
    .await;
}

/// Issue 14: a table of int, timestamptz, varchar and jsonb travels in COPY's binary format,
/// where the probe reads the jsonb's text after its version byte: a copied email is caught
/// there as in text.
#[tokio::test]
async fn an_email_inside_a_kept_jsonb_document_read_in_binary_is_caught() {
    planted(
        "vfyjsonb",
        "CREATE TABLE activity (id int PRIMARY KEY, at timestamptz, label varchar(20), doc jsonb);
         INSERT INTO activity SELECT id, now(), 'login', jsonb_build_object('who', jsonb_build_object('contact', email)) FROM users;",
        "",
        "public.activity.doc ← public.users.email",
        "Davolio@",
    )
    .await;
}

#[tokio::test]
async fn an_email_inside_xml_is_caught() {
    planted(
        "vfyxml",
        "CREATE TABLE docs (id int PRIMARY KEY, doc xml);
         INSERT INTO docs SELECT id, xmlelement(name contact, xmlelement(name email, email)) FROM users;",
        "",
        "public.docs.doc ← public.users.email",
        "Davolio@",
    )
    .await;
}

#[tokio::test]
async fn an_email_inside_bytea_is_caught() {
    planted(
        "vfybytea",
        "CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
         INSERT INTO blobs SELECT id, '\\x00ff'::bytea || convert_to('from: ' || email, 'UTF8') FROM users;",
        "",
        "public.blobs.data ← public.users.email",
        "Davolio@",
    )
    .await;
}

#[tokio::test]
async fn a_multi_word_address_inside_a_sentence_is_caught() {
    planted(
        "vfyaddr",
        "CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO notes SELECT id, 'she moved to ' || address || ' last spring' FROM users;",
        "",
        "public.notes.body ← public.users.address",
        "Elmgrove",
    )
    .await;
}

#[tokio::test]
async fn a_spaced_or_parenthesised_phone_inside_a_sentence_is_caught() {
    planted(
        "vfyphone",
        "CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO notes SELECT id, CASE WHEN id % 2 = 0
             THEN 'call Nancy at (206) 555-' || lpad(id::text, 4, '0') || ' today'
             ELSE 'or 206 555 ' || lpad(id::text, 4, '0') || ' after six' END FROM users;",
        "",
        "public.notes.body ← public.users.phone (200 values)",
        "555-0001",
    )
    .await;
}

/// A `choice` whose listed values are the column's own (all of them, or one of several), in
/// a column, in array elements and in a json path: exit 3 naming the column, no value
/// printed, live staging unchanged. Invented values that meet a real one now and then pass;
/// `allow_own_values: true` says shuffling the column's own categories is intended (and must
/// be a boolean). A mask whose kept ends cover a `char(n)` is refused at load time (exit 2).
#[tokio::test]
async fn a_choice_of_the_columns_own_values_fails() {
    let setup = Setup::new(
        "vfychoice",
        r#"
        CREATE TABLE members (
            id int PRIMARY KEY,
            tier text NOT NULL,
            tags text[] NOT NULL,
            prefs jsonb NOT NULL,
            company text NOT NULL,
            code char(4) NOT NULL
        );
        INSERT INTO members SELECT g,
               (ARRAY['bronzetier', 'silvertier', 'goldtier'])[1 + g % 3],
               ARRAY[(ARRAY['redtag', 'bluetag'])[1 + g % 2]],
               jsonb_build_object('color', (ARRAY['redcolor', 'bluecolor', 'greencolor'])[1 + g % 3]),
               CASE WHEN g % 500 = 0 THEN 'Acme Corp' ELSE 'Company ' || g END,
               lpad((g % 10000)::text, 4, '0')
          FROM generate_series(1, 3000) g;
        "#,
        "strict: off",
    )
    .await;
    let rules = |tier: &str, tags: &str, color: &str, code: &str| {
        format!(
            r#"
tables:
  public.members:
    tier: {tier}
    tags: {tags}
    prefs: {{ transform: json, paths: {{ "$.color": {color} }} }}
    company: {{ transform: choice, values: [Acme Corp, Globex, Initech] }}
    code: {code}
"#
        )
    };
    let good = rules(
        "{ transform: choice, values: [tin, lead, zinc] }",
        "{ transform: choice, values: [alpha, beta] }",
        "{ transform: choice, values: [mauve, teal] }",
        "{ transform: mask, keep_last: 2 }",
    );
    setup.write_rules("r.yaml", &good);
    // Invented values: 'Acme Corp' is a real company of 6 rows in 3,000, below 1 %.
    let (code, stdout, stderr) = setup.run(&["refresh", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    let company = report["verification"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["column"] == "public.members.company")
        .expect("company verdict")
        .clone();
    assert_eq!(company["among_listed"], 6, "{company}");
    assert_eq!(company["verdict"], "ok", "{company}");

    let own = "{ transform: choice, values: [bronzetier, silvertier, goldtier] }";
    let one_own = "{ transform: choice, values: [goldtier, platinum, diamond] }";
    let cases = [
        (
            rules(
                own,
                "{ transform: choice, values: [alpha, beta] }",
                "{ transform: choice, values: [mauve, teal] }",
                "{ transform: mask, keep_last: 2 }",
            ),
            "public.members.tier (choice): 3000 of 3000 values are among the rule's listed values",
        ),
        (
            rules(
                one_own,
                "{ transform: choice, values: [alpha, beta] }",
                "{ transform: choice, values: [mauve, teal] }",
                "{ transform: mask, keep_last: 2 }",
            ),
            "public.members.tier (choice): 1000 of 3000 values are among the rule's listed values",
        ),
        (
            rules(
                "{ transform: choice, values: [tin, lead, zinc] }",
                "{ transform: choice, values: [bluetag, redtag] }",
                "{ transform: choice, values: [mauve, teal] }",
                "{ transform: mask, keep_last: 2 }",
            ),
            "public.members.tags (choice): 3000 of 3000 values are among the rule's listed values",
        ),
        (
            rules(
                "{ transform: choice, values: [tin, lead, zinc] }",
                "{ transform: choice, values: [alpha, beta] }",
                "{ transform: choice, values: [greencolor, redcolor, bluecolor] }",
                "{ transform: mask, keep_last: 2 }",
            ),
            "public.members.prefs $.color (choice): 3000 of 3000 values are among the rule's listed values",
        ),
    ];
    for (rules, expected) in &cases {
        setup.write_rules("r.yaml", rules);
        let (code, stdout, stderr) = setup.run(&["refresh"]);
        let out = format!("{stdout}\n{stderr}");
        assert_eq!(code, 3, "{rules}\n{out}");
        assert!(stderr.contains(expected), "{expected}\n{out}");
        assert!(stderr.contains("allow_own_values: true"), "{out}");
        assert!(stderr.contains("staging was not swapped"), "{out}");
        for value in [
            "bronzetier",
            "silvertier",
            "goldtier",
            "redtag",
            "bluetag",
            "redcolor",
            "greencolor",
            "Company 1",
            "0001",
        ] {
            assert!(
                !out.contains(value),
                "a value ({value}) in the output:\n{out}"
            );
        }
        let staging = setup.staging().await;
        let n: i64 = harness::scalar(
            &staging,
            "SELECT count(*) FROM members WHERE tier LIKE '%tier' OR tags::text LIKE '%tag%' OR prefs->>'color' LIKE '%color'",
        )
        .await;
        assert_eq!(n, 0, "live staging changed: {rules}");
    }

    // Intended: the column's own categories shuffled.
    setup.write_rules(
        "r.yaml",
        &rules(
            "{ transform: choice, values: [bronzetier, silvertier, goldtier], allow_own_values: true }",
            "{ transform: choice, values: [alpha, beta] }",
            "{ transform: choice, values: [mauve, teal] }",
            "{ transform: mask, keep_last: 2 }",
        ),
    );
    let (code, stdout, stderr) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // Load-time mistakes: exit 2, nothing built.
    for (tier, code_rule, expected) in [
        (
            "{ transform: choice, values: [tin], allow_own_values: maybe }",
            "{ transform: mask, keep_last: 2 }",
            "allow_own_values",
        ),
        (
            "{ transform: choice, values: [tin] }",
            "{ transform: mask, keep_last: 4 }",
            "covers every value of character(4)",
        ),
    ] {
        setup.write_rules(
            "r.yaml",
            &rules(
                tier,
                "{ transform: choice, values: [alpha, beta] }",
                "{ transform: choice, values: [mauve, teal] }",
                code_rule,
            ),
        );
        let (code, stdout, stderr) = setup.run(&["refresh"]);
        assert_eq!(code, 2, "{tier} {code_rule}\n{stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("members"), "{stderr}");
    }
}
