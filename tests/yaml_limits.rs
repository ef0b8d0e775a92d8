//! YAML resource caps (issue 11): a 100,000-deep document took half a minute to refuse, and a
//! 50 MiB rules file for unknown tables reached 4.6 GiB and printed 900,000 lines. Now the
//! nesting is refused at once at the line that goes too deep, a file over 16 MiB is not read,
//! and a list of problems prints the first 50 and a count of the rest — in `refresh` and in
//! `validate` (text and `--json`) alike.

use std::time::{Duration, Instant};

use crate::harness::Setup;

const SCHEMA: &str = "CREATE TABLE t (id int PRIMARY KEY, note text);";

/// Nesting of the rules file and of restage.yaml: refused quickly, naming the file, line and
/// column.
#[tokio::test]
async fn deep_nesting_is_refused_at_once_naming_the_file() {
    let setup = Setup::new("yaml_deep", SCHEMA, "strict: off").await;
    let depth = 100_000;
    setup.write_rules(
        "deep.yaml",
        &format!("tables: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    );
    let rules = setup.dir.path().join("rules").join("deep.yaml");
    for command in ["validate", "refresh"] {
        let started = Instant::now();
        let (code, out, err) = setup.run(&[command]);
        let took = started.elapsed();
        assert_eq!(code, 2, "{command}\nstdout:\n{out}\nstderr:\n{err}");
        let expected = format!(
            "{}:1:72: nested deeper than 64 levels; restage's files need only a few (is this the right file?)",
            rules.display()
        );
        assert!(
            out.contains(&expected) || err.contains(&expected),
            "{command}: stdout:\n{out}\nstderr:\n{err}"
        );
        // The scan is linear; half a minute was the parsers' quadratic time.
        assert!(took < Duration::from_secs(20), "{command} took {took:?}");
    }

    // The same in restage.yaml itself, as a block of mappings.
    std::fs::remove_file(&rules).unwrap();
    let mut yaml = std::fs::read_to_string(setup.config_path()).unwrap();
    yaml.push_str("cache:\n");
    for i in 1..=100 {
        yaml.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    std::fs::write(setup.config_path(), yaml).unwrap();
    let (code, _, err) = setup.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}:{}:65: nested deeper than 64 levels",
            setup.config_path().display(),
            // The config's own lines come first: `cache:` is level 1.
            std::fs::read_to_string(setup.config_path())
                .unwrap()
                .lines()
                .position(|l| l == "cache:")
                .unwrap()
                + 65
        )),
        "{err}"
    );
}

/// A rules file or restage.yaml over 16 MiB is not read: the error names it and its size.
#[tokio::test]
async fn files_over_16_mib_are_not_read() {
    let setup = Setup::new("yaml_big", SCHEMA, "strict: off").await;
    let rules = setup.dir.path().join("rules").join("big.yaml");
    // Padding in a comment: what the file says does not matter, its size does.
    let mut text = String::from("tables:\n  public.t:\n    note: keep\n");
    text.push_str(&format!("# {}\n", "x".repeat(17 << 20)));
    std::fs::write(&rules, &text).unwrap();
    let (code, out, err) = setup.run(&["validate"]);
    assert_eq!(code, 2, "{out}\n{err}");
    let expected = format!(
        "{}: cannot read: the file is 17.0 MiB, over the limit of 16 MiB for a YAML file restage reads",
        rules.display()
    );
    assert!(
        err.contains(&format!("restage: error: {expected}")),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let (code, _, err) = setup.run(&["refresh"]);
    assert_eq!(code, 2);
    assert!(err.contains(&expected), "{err}");

    std::fs::remove_file(&rules).unwrap();
    let mut yaml = std::fs::read_to_string(setup.config_path()).unwrap();
    yaml.push_str(&format!("# {}\n", "x".repeat(17 << 20)));
    std::fs::write(setup.config_path(), yaml).unwrap();
    let (code, _, err) = setup.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}: cannot read: the file is 17.0 MiB, over the limit",
            setup.config_path().display()
        )),
        "{err}"
    );
}

/// Rules for 5,000 tables the source does not have: 50 problems printed and a count of the
/// other 4,950, on stderr (refresh), stdout (validate) and in `validate --json`.
#[tokio::test]
async fn many_problems_print_the_first_fifty_and_a_count() {
    let setup = Setup::new("yaml_many", SCHEMA, "strict: off").await;
    let mut rules = String::from("tables:\n");
    for i in 0..5_000 {
        rules.push_str(&format!("  public.nope_{i}:\n    note: keep\n"));
    }
    setup.write_rules("many.yaml", &rules);
    let count_line = "... and 4,950 more problems (the first 50 are shown)";

    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{out}\n{err}");
    let listed = err.lines().filter(|l| l.contains("does not exist")).count();
    assert_eq!(listed, 50, "{err}");
    assert!(err.trim_end().ends_with(count_line), "{err}");

    // validate: the same problems, in the one error format on stderr (issue 15).
    let (code, _, out) = setup.run(&["validate"]);
    assert_eq!(code, 2);
    let listed = out.lines().filter(|l| l.contains("does not exist")).count();
    assert_eq!(listed, 50, "{out}");
    assert!(
        out.contains(&format!("restage: error: {count_line}")),
        "{out}"
    );

    let run = setup.restage().args(["--json", "validate"]).run();
    assert_eq!(run.code, 2);
    let doc = run.json();
    assert_eq!(doc["problems"].as_array().map(Vec::len), Some(50), "{doc}");
    assert_eq!(doc["problems_total"], 5_000, "{doc}");
}
