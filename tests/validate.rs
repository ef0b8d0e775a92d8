//! `restage validate` (issue 3): every problem of the rules against the live schema at once,
//! each with file, line and column; exit 2; `--preview` shows rows before and after.

use crate::harness;

use crate::harness::Setup;

const SCHEMA: &str = "
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, born date, age int, note text);
INSERT INTO users VALUES (1, 'preview1@corpmail.test', '1980-05-17', 44, 'hello'),
                         (2, 'preview2@corpmail.test', '1990-01-02', 34, NULL);
";

#[test]
fn every_load_time_error_is_reported_at_once_with_its_position() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = rt.block_on(Setup::new("validate", SCHEMA, "strict: off"));
    setup.write_rules(
        "a.yaml",
        "tables:
  public.users:
    email: emial
    born: { transform: date_shift, days: 30, weeks: 2 }
    age: email
    note: { transform: regex_replace, pattern: 'x' }
    nope: keep
    id: { transform: hash, length: -3 }
  public.userz:
    x: keep
",
    );
    setup.write_rules("b.yaml", "tables:\n  public.users:\n    email: email\n");
    let (code, stdout, stderr) = setup.run(&["validate"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let out = format!("{stdout}{stderr}");
    for expected in [
        "b.yaml:3:5: public.users.email: two rules for one column (the other is at",
        "a.yaml:3:5: public.users.email: unknown transform `emial`, did you mean `email`?",
        "a.yaml:4:46: public.users.born: `date_shift` takes no parameter `weeks`",
        "a.yaml:5:5: public.users.age: `email` does not fit column type integer",
        "a.yaml:6:5: public.users.note: `regex_replace` needs parameter `with`",
        "a.yaml:8:28: public.users.id: `hash`: parameter `length`",
        "a.yaml:7:5: public.users.nope: no such column",
        "a.yaml:9:3: table public.userz does not exist in the source",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    // Nothing was created.
    assert!(
        rt.block_on(harness::databases_like(&setup.staging))
            .is_empty()
    );
}

#[test]
fn valid_rules_pass_and_preview_shows_before_and_after() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = rt.block_on(Setup::new("preview", SCHEMA, "strict: pii"));
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.users:\n    email: email\n    born: { transform: date_shift, days: 30 }\n    \"*\": keep\n",
    );
    let (code, stdout, stderr) = setup.run(&["validate", "--preview", "2"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("valid: 1 tables"), "{stdout}");
    assert!(
        stdout.contains("public.users (first 2 rows, ruled columns)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("preview1@corpmail.test"),
        "the DBA sees production on the left: {stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("preview1@corpmail.test"))
        .unwrap();
    assert!(line.contains("→") && line.contains("@example."), "{line}");
    let (code, stdout, _) = setup.run(&["--json", "validate"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["tables_with_rules"], 1);
}
