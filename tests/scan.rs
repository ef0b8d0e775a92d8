//! `restage scan` against a real PostgreSQL (issue 3): personal data behind innocent column
//! names, in json documents and in partitions is found; innocent columns are not; the
//! proposed rules load with `RuleSet::load` and cover every finding; no sampled value ever
//! appears in the output.

use crate::harness::{self, Output};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use restage::catalog::QualifiedName;
use restage::rules::RuleSet;

const CARDS: &str =
    "'4111111111111111','5555555555554444','378282246310005','6011111111111117','4012888888881881'";
const IBANS: &str = "'DE89370400440532013000','GB82WEST12345698765432','FR1420041010050500013M02606','NL91ABNA0417164300','ES9121000418450200051332'";

/// Values the output must never contain: each is (part of) a sampled value.
const SAMPLED: &[&str] = &[
    "@example.org",
    "person1@",
    "4111111111111111",
    "5555555555554444",
    "DE89370400440532013000",
    "GB82WEST",
    "+49 30",
    "Camille",
    "10.1.0.",
];

fn schema() -> String {
    format!(
        "
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    email text UNIQUE,              -- personal by name and by value
    prenom text,                    -- French first name, by name
    telefon text,                   -- German phone, by name and by value
    geburtsdatum date,              -- German birth date, by name (dates are not sampled)
    notes text,                     -- innocent name, emails inside free text
    ref text,                       -- innocent name, card numbers
    c3 text,                        -- innocent name, IBANs
    data jsonb,                     -- innocent name, $.contact.email inside
    status text NOT NULL,           -- innocent
    sku text,                       -- innocent
    created_at timestamptz NOT NULL DEFAULT now(),  -- innocent
    emailed_at timestamptz,         -- `email` in the name, but a timestamp
    tel_count int,                  -- `tel` in the name, but a count
    order_no text,                  -- 16 digits starting with 4, Luhn-valid by chance 1 in 10
    tags text[]                     -- innocent array
);
INSERT INTO customers (id, email, prenom, telefon, geburtsdatum, notes, ref, c3, data, status,
                       sku, emailed_at, tel_count, order_no, tags)
SELECT i,
       'person' || i || '@example.org',
       (ARRAY['Camille','Lukas','Lucía','João','Giulia','Daan'])[1 + i % 6],
       '+49 30 ' || (1000000 + i),
       date '1970-01-01' + i * 37,
       CASE WHEN i % 3 = 0 THEN 'asked for a call back, write to note' || i || '@example.org'
            ELSE 'called, all fine' END,
       (ARRAY[{CARDS}])[1 + i % 5],
       (ARRAY[{IBANS}])[1 + i % 5],
       jsonb_build_object('contact', jsonb_build_object('email', 'json' || i || '@example.org'),
                          'plan', (ARRAY['free','pro'])[1 + i % 2], 'visits', i),
       (ARRAY['active','closed','pending'])[1 + i % 3],
       'SKU-' || lpad(i::text, 5, '0'),
       now() - i * interval '1 day',
       i % 4,
       (4000000000000000 + i * 37)::text,
       ARRAY['vip', 'newsletter']
  FROM generate_series(1, 200) i;

-- Ruled: email explicitly, everything else kept by a wildcard; `note` holds emails.
CREATE TABLE ruled (id int PRIMARY KEY, email text, note text, label text);
INSERT INTO ruled SELECT i, 'r' || i || '@example.org', 'contact: kept' || i || '@example.org',
                         'L' || i FROM generate_series(1, 50) i;

-- Partitioned: IP addresses behind an innocent name, reported once on the parent.
CREATE TABLE events (id int NOT NULL, src inet, payload text) PARTITION BY RANGE (id);
CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (100);
CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (100) TO (1000);
INSERT INTO events SELECT i, ('10.1.' || (i / 250) || '.' || (i % 250))::inet, 'ok'
  FROM generate_series(0, 299) i;

ANALYZE;
"
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

fn setup(db: &harness::TestDb) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    std::fs::create_dir(root.join("rules")).expect("rules dir");
    std::fs::write(
        root.join("rules/base.yaml"),
        "tables:\n  public.ruled:\n    email: email\n    \"*\": keep\n",
    )
    .expect("rules");
    let config = root.join("restage.yaml");
    let url = serde_json::to_string(&db.url()).expect("url");
    std::fs::write(&config, format!("source:\n  url: {url}\nrules: rules\n")).expect("config");
    Setup {
        _dir: dir,
        root,
        config,
    }
}

fn scan(config: &Path, args: &[&str]) -> Output {
    harness::restage()
        .config(config)
        .arg("scan")
        .args(args)
        .run()
}

fn text(out: &Output) -> (String, String) {
    (out.stdout.clone(), out.stderr.clone())
}

fn assert_no_sampled_value(what: &str, s: &str) {
    for v in SAMPLED {
        assert!(!s.contains(v), "{what} contains sampled value {v:?}:\n{s}");
    }
}

#[tokio::test]
async fn finds_personal_data_and_writes_rules_that_cover_it() {
    let db = harness::TestDb::create("scan").await;
    db.execute(&schema()).await;
    let s = setup(&db);
    let proposed = s.root.join("proposed.yaml");

    let out = scan(
        &s.config,
        &["--json", "--write", proposed.to_str().expect("utf-8 path")],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let got: BTreeSet<(String, String, String)> = findings
        .iter()
        .map(|f| {
            let column = match f["path"].as_str() {
                Some(p) => format!("{} {p}", f["column"].as_str().unwrap_or("")),
                None => f["column"].as_str().unwrap_or("").to_string(),
            };
            (
                f["table"].as_str().unwrap_or("").to_string(),
                column,
                f["category"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("public.customers", "email", "email"),
        ("public.customers", "prenom", "first_name"),
        ("public.customers", "telefon", "phone"),
        ("public.customers", "geburtsdatum", "birth_date"),
        ("public.customers", "notes", "email"),
        ("public.customers", "ref", "card_number"),
        ("public.customers", "c3", "iban"),
        ("public.customers", "data $.contact.email", "email"),
        ("public.events", "src", "ip_address"),
        ("public.ruled", "note", "email"),
    ]
    .iter()
    .map(|(t, c, k)| (t.to_string(), c.to_string(), k.to_string()))
    .collect();
    assert_eq!(got, want, "findings:\n{stdout}");

    let find = |column: &str| {
        findings
            .iter()
            .find(|f| f["column"] == column)
            .unwrap_or_else(|| panic!("no finding for {column}"))
    };
    // Innocent names: found by their values alone.
    assert_eq!(find("notes")["proposed"]["transform"], "regex_replace");
    assert_eq!(
        find("notes")["evidence"][0],
        "66/200 sampled values contain email addresses"
    );
    assert_eq!(find("ref")["proposed"], "credit_card");
    assert_eq!(find("ref")["level"], "high");
    assert_eq!(find("c3")["proposed"], "iban");
    assert_eq!(find("data")["proposed"], "email");
    assert_eq!(find("src")["proposed"], "ipv4");
    // Names and values together.
    assert_eq!(
        find("email")["proposed"],
        serde_json::json!({"transform": "email", "unique": true})
    );
    assert_eq!(find("email")["level"], "high");
    assert_eq!(
        find("geburtsdatum")["proposed"],
        serde_json::json!({"transform": "date_shift", "days": 30})
    );
    // A wildcard keep that lets emails through is reported as such.
    assert_eq!(find("note")["covered_by"], "*: keep");
    assert!(
        findings
            .iter()
            .filter(|f| f["column"] != "note")
            .all(|f| f["covered_by"].is_null())
    );

    // Nothing sampled is ever printed or written.
    let written = std::fs::read_to_string(&proposed).expect("proposed rules written");
    assert_no_sampled_value("stdout", &stdout);
    assert_no_sampled_value("stderr", &stderr);
    assert_no_sampled_value("proposed rules", &written);

    // The proposed rules load as is, and cover every finding with the proposed transform.
    let set = RuleSet::load(&proposed, false)
        .unwrap_or_else(|e| panic!("proposed rules do not load: {e:?}\n{written}"));
    for f in &findings {
        let table = QualifiedName::parse(f["table"].as_str().unwrap_or("")).expect("table");
        let column = f["column"].as_str().unwrap_or("");
        let rule = set
            .tables
            .get(&table)
            .and_then(|t| t.columns.get(column))
            .unwrap_or_else(|| panic!("no rule for {table}.{column}:\n{written}"));
        match f["path"].as_str() {
            Some(path) => {
                assert_eq!(rule.spec.transform, "json");
                let paths = rule.spec.params["paths"].as_mapping().expect("paths");
                assert!(
                    paths.contains_key(path),
                    "{path} not in json rule:\n{written}"
                );
            }
            None => {
                let want = f["proposed"]
                    .as_str()
                    .or_else(|| f["proposed"]["transform"].as_str())
                    .unwrap_or("");
                assert_eq!(rule.spec.transform, want, "{column}:\n{written}");
            }
        }
    }

    // Text mode and --fail-on-findings: a table on stdout, exit 3.
    let out = scan(&s.config, &["--fail-on-findings"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.starts_with("COLUMN"), "{stdout}");
    assert!(
        stdout.contains("public.customers.data $.contact.email"),
        "{stdout}"
    );
    assert!(stdout.contains("covered by `*: keep`, but"), "{stdout}");
    assert_no_sampled_value("text output", &stdout);
    for innocent in [
        "status",
        "sku",
        "created_at",
        "emailed_at",
        "tel_count",
        "order_no",
        "tags",
    ] {
        assert!(
            !stdout.contains(&format!("public.customers.{innocent} ")),
            "{innocent} reported:\n{stdout}"
        );
    }

    // With the proposals among the rules, nothing is left to find.
    std::fs::copy(&proposed, s.root.join("rules/proposed.yaml")).expect("copy proposals");
    let out = scan(&s.config, &["--json", "--fail-on-findings"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.trim(), "[]");

    // And scan will not overwrite a rules file it reads.
    let inside = s.root.join("rules/proposed.yaml");
    let out = scan(
        &s.config,
        &["--write", inside.to_str().expect("utf-8 path")],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.code, 2, "{stderr}");
    assert!(stderr.contains("is one of the rules files"), "{stderr}");
}

#[tokio::test]
async fn big_tables_are_sampled_not_read() {
    let db = harness::TestDb::create("scan_big").await;
    db.execute(
        "CREATE TABLE misc (id int, val text);
         INSERT INTO misc SELECT i, 'user' || i || '@example.org' FROM generate_series(1, 50000) i;
         ANALYZE misc;",
    )
    .await;
    let s = setup(&db);
    let out = scan(&s.config, &["--json", "--sample-rows", "100"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(findings.len(), 1, "{stdout}");
    let evidence = findings[0]["evidence"][0].as_str().unwrap_or("");
    // At most --sample-rows values were looked at, out of 50,000.
    let (seen, total) = evidence
        .split_once(' ')
        .and_then(|(counts, _)| counts.split_once('/'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .unwrap_or_else(|| panic!("unexpected evidence {evidence:?}"));
    assert_eq!(seen, total, "{evidence}");
    assert!(total > 0 && total <= 100, "{evidence}");
    assert_no_sampled_value("stdout", &stdout);

    // Names only: --sample-rows 0 reads no row.
    let out = scan(&s.config, &["--json", "--sample-rows", "0"]);
    let (stdout, _) = text(&out);
    assert_eq!(stdout.trim(), "[]", "`val` says nothing by its name");
}

// ---------------------------------------------------------------------------------------
// Issue 15: proposals that pass as they are. `scan --write` then `refresh`, unedited, in
// strict mode (the default), with verification.

const SCAN_FIT: &str = include_str!("fixtures/scan_fit.sql");

/// `scan --write rules/proposed.yaml`, then `refresh`: both exit 0 and verification passes.
/// Returns the proposals as written.
pub(crate) fn scan_write_then_refresh(config: &Path, rules_dir: &Path) -> String {
    std::fs::create_dir_all(rules_dir).expect("rules dir");
    let proposed = rules_dir.join("proposed.yaml");
    let out = scan(config, &["--write", proposed.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "scan:\n{}\n{}", out.stdout, out.stderr);
    let yaml = std::fs::read_to_string(&proposed).expect("proposals written");
    let out = harness::restage().config(config).arg("refresh").run();
    assert_eq!(
        out.code, 0,
        "refresh with the proposals as written:\n{yaml}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("verification: passed=true"),
        "{}",
        out.stdout
    );
    yaml
}

fn proposals(yaml: &str) -> RuleSet {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    set.add_file(yaml, Path::new("proposed.yaml"), &mut errors);
    assert!(errors.is_empty(), "{errors:?}\n{yaml}");
    set
}

fn rule_of<'a>(set: &'a RuleSet, table: &str, column: &str) -> Option<&'a str> {
    set.tables
        .get(&QualifiedName::new("public", table))
        .and_then(|t| t.columns.get(column))
        .map(|r| r.spec.transform.as_str())
}

fn says_unique(set: &RuleSet, table: &str, column: &str) -> bool {
    set.tables
        .get(&QualifiedName::new("public", table))
        .and_then(|t| t.columns.get(column))
        .and_then(|r| r.spec.params.get("unique"))
        .and_then(|v| v.as_bool())
        == Some(true)
}

#[tokio::test]
async fn proposals_fit_constraints_and_look_alikes_and_pass_a_refresh() {
    let setup = harness::Setup::new("scanfit", SCAN_FIT, "").await;
    let yaml = scan_write_then_refresh(&setup.config_path(), &setup.dir.path().join("rules"));
    let set = proposals(&yaml);

    // Lookup-table names are labels: listed as comments, never rules.
    assert!(rule_of(&set, "languages", "name").is_none(), "{yaml}");
    assert!(rule_of(&set, "genres", "name").is_none(), "{yaml}");
    assert!(yaml.contains("#   # name: name"), "{yaml}");
    // Zip codes (a domain with a CHECK, a table CHECK, ZIP+4) are never phones.
    for (table, column) in [
        ("people", "zip"),
        ("people", "postcode"),
        ("subscriptions", "zip"),
    ] {
        assert_ne!(
            rule_of(&set, table, column),
            Some("phone"),
            "{table}.{column}\n{yaml}"
        );
        assert!(
            !yaml.contains(&format!("{column}: phone")),
            "{table}.{column}\n{yaml}"
        );
    }
    assert_eq!(
        rule_of(&set, "people", "postcode"),
        Some("postcode"),
        "{yaml}"
    );
    // `country` on a char(2) would be cut to `Wa`: not proposed, even as a comment.
    assert!(!yaml.contains("country: country"), "{yaml}");
    assert_ne!(rule_of(&set, "people", "country"), Some("country"));
    // Unique keys, plain and lower(), get distinct outputs.
    for (table, column) in [
        ("people", "email"),
        ("people", "full_name"),
        ("people", "username"),
        ("customers", "customer_name"),
    ] {
        assert!(says_unique(&set, table, column), "{table}.{column}\n{yaml}");
    }
    // Both sides of the foreign key on email are ruled alike.
    assert_eq!(
        rule_of(&set, "subscriptions", "person_email"),
        Some("email")
    );
    // Dotted phones and emails in notes; an hstore of emails and phones.
    assert_eq!(rule_of(&set, "people", "notes"), Some("regex_replace"));
    assert_eq!(rule_of(&set, "people", "contact"), Some("set_null"));
    // Look-alikes: order numbers, ISBNs, timestamps and versions as text, barcodes.
    for column in [
        "order_no",
        "isbn",
        "logged_at",
        "app_version",
        "barcode",
        "plan",
    ] {
        assert!(
            rule_of(&set, "people", column).is_none() && !yaml.contains(&format!(" {column}:")),
            "{column}\n{yaml}"
        );
    }

    // Recall: links, photo paths, prose about a person, ship-to names, the `name` type.
    assert_eq!(rule_of(&set, "profiles", "website"), Some("hash"), "{yaml}");
    assert_eq!(
        rule_of(&set, "profiles", "photo_path"),
        Some("hash"),
        "{yaml}"
    );
    assert_eq!(rule_of(&set, "profiles", "bio"), Some("lorem"), "{yaml}");
    assert_eq!(
        rule_of(&set, "shipments", "ship_name"),
        Some("name"),
        "{yaml}"
    );
    assert!(
        rule_of(&set, "shipments", "recipient_name").is_some(),
        "{yaml}"
    );

    let stg = setup.staging().await;
    let dotted: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM people WHERE notes ~ '[0-9]{3}\\.672\\.[0-9]{4}'",
    )
    .await;
    assert_eq!(dotted, 0, "dotted phones left in notes");
    let redacted: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM people WHERE notes LIKE '%[redacted]%'",
    )
    .await;
    assert!(redacted >= 150, "{redacted}");
}

/// Every other fixture of the suite: the proposals, as written, refresh in strict mode and
/// pass verification.
#[tokio::test]
async fn proposals_pass_on_every_fixture() {
    let pagila = format!(
        "{}
         SET search_path = public;
         INSERT INTO language (name) VALUES ('English'), ('French');
         INSERT INTO actor (first_name, last_name) VALUES ('PENELOPE', 'GUINESS'), ('NICK', 'WAHLBERG');
         INSERT INTO category (name) VALUES ('Action'), ('Animation');
         INSERT INTO country (country) VALUES ('Afghanistan'), ('France');",
        include_str!("fixtures/pagila/pagila-schema.sql")
    );
    for (name, sql) in [
        (
            "all_types",
            include_str!("fixtures/all_types.sql").to_string(),
        ),
        ("sizes", include_str!("fixtures/sizes.sql").to_string()),
        ("subset", include_str!("fixtures/subset.sql").to_string()),
        ("pagila", pagila),
    ] {
        let setup = harness::Setup::new(&format!("scanfx_{name}"), &sql, "").await;
        let yaml = scan_write_then_refresh(&setup.config_path(), &setup.dir.path().join("rules"));
        assert!(yaml.starts_with("# Proposed by `restage scan`"), "{name}");
    }
}

/// The demo database (`restage demo --generate-only`): the proposals pass unedited, and the
/// fix that used to hide in a comment of rules/demo.yaml (phones written `743.672.6133` in
/// the notes) is in the proposal.
#[tokio::test]
async fn proposals_pass_on_the_demo_database() {
    let source = harness::unique_name("scandemo");
    let staging = format!("{source}_stg");
    harness::generate_demo(&source, "0.2");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("restage.yaml");
    std::fs::write(
        &config,
        format!(
            "source:\n  url: {}\ntarget:\n  url: {}\n  database: {staging}\nsecret: test-secret-0123456789abcdef\n",
            harness::url_for(&source),
            harness::admin_url()
        ),
    )
    .expect("config");
    let yaml = scan_write_then_refresh(&config, &dir.path().join("rules"));
    let set = proposals(&yaml);
    assert_ne!(
        rule_of(&set, "addresses", "postcode"),
        Some("phone"),
        "{yaml}"
    );
    assert_eq!(rule_of(&set, "users", "notes"), Some("regex_replace"));
    assert_eq!(rule_of(&set, "users", "search"), Some("set_null"));
    assert!(!yaml.contains("country: country"), "{yaml}");
    let stg = harness::connect(&harness::url_for(&staging)).await;
    let phones: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM users WHERE notes ~ '[0-9]{3}[-. )]+[0-9]{3}[-. ][0-9]{4}'",
    )
    .await;
    assert_eq!(phones, 0, "phone numbers left in notes");
    drop(stg);
    harness::drop_database_family(&source).await;
}
