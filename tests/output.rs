//! Output habits (issue 15): a closed stdout never makes a command panic (`restage verify |
//! head -1` exits with verify's own code, 50 runs of 50), and every command's errors go to
//! stderr in one format (`restage: error: …` on every line), with `--json` carrying them as
//! a document on stdout (`outcome`, `exit_code`).

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::harness::command::restage_bin;
use crate::harness::{self, Setup};

/// Runs restage with `args` (and `-c config`) with its stdout a pipe whose reading end is
/// already closed: every write to stdout fails with EPIPE. Returns (exit code, stderr).
fn with_closed_stdout(config: Option<&std::path::Path>, args: &[&str]) -> (i32, String) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created by pipe(2) and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut cmd = Command::new(restage_bin());
    if let Some(config) = config {
        cmd.arg("-c").arg(config);
    }
    cmd.args(["--progress", "never"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped());
    let out = cmd.output().expect("run restage");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A refreshed staging database, for the commands that read one.
async fn refreshed(prefix: &str) -> Setup {
    let setup = Setup::new(
        prefix,
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO users SELECT g, 'user' || g || '@corp.example' FROM generate_series(1, 300) g;",
        "strict: off",
    )
    .await;
    setup.write_rules("r.yaml", "tables:\n  public.users:\n    email: email\n");
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{out}\n{err}");
    setup
}

fn assert_no_panic(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what}: {stderr}"
    );
}

/// `restage verify | head -1` and its neighbours: the exit code is the command's own (the
/// one it has with stdout open), never 101, and nothing panics; 50 runs of verify.
#[tokio::test]
async fn a_closed_stdout_never_panics() {
    let setup = refreshed("pipe").await;
    let config = setup.config_path();
    let commands: &[(&[&str], usize)] = &[
        (&["verify"], 50),
        (&["--help"], 50),
        (&["validate", "--preview", "200"], 5),
        (&["--json", "validate"], 5),
        (&["generations"], 5),
        (&["--json", "generations"], 5),
        (&["status"], 5),
        (&["alerts"], 5),
        (&["refresh", "--dry-run"], 3),
        (&["scan"], 3),
        (&["verify", "--help"], 3),
        (&["--version"], 3),
    ];
    for (args, runs) in commands {
        let open = setup.restage().args(args.iter()).run();
        for run in 0..*runs {
            let (code, stderr) = with_closed_stdout(Some(&config), args);
            assert_no_panic(&format!("{args:?} run {run}"), &stderr);
            assert_eq!(
                code, open.code,
                "{args:?} run {run}: exit {code} with a closed stdout, {} with it open\n{stderr}",
                open.code
            );
        }
    }
    // And through a real pipe to `head -1`, as a DBA types it.
    let line = format!(
        "set -o pipefail; '{}' -c '{}' --progress never verify | head -1 >/dev/null",
        restage_bin(),
        config.display()
    );
    for run in 0..10 {
        let out = Command::new("bash")
            .args(["-c", &line])
            .output()
            .expect("bash");
        assert_no_panic(
            &format!("| head -1 run {run}"),
            &String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "| head -1 run {run}");
    }
}

/// Every stderr line a failing command prints is `restage: …`, its error lines
/// `restage: error: …`, nothing is on stdout; with `--json` stdout is one document with
/// `outcome: error` and the process's exit code.
fn assert_one_format(what: &str, code: i32, stdout: &str, stderr: &str) {
    assert_ne!(code, 0, "{what} succeeded:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("restage: error: ")),
        "{what}: no `restage: error:` line:\n{stderr}"
    );
    for line in &lines {
        // Log lines (tracing) are the only others: they carry a level.
        assert!(
            line.starts_with("restage: ")
                || line.contains(" WARN ")
                || line.contains(" INFO ")
                || line.contains(" ERROR "),
            "{what}: a stderr line in another format: `{line}`\n{stderr}"
        );
    }
    assert!(stdout.trim().is_empty(), "{what}: stdout:\n{stdout}");
}

fn assert_json_document(what: &str, code: i32, stdout: &str) {
    let doc: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(doc["outcome"], "error", "{what}: {doc}");
    assert_eq!(doc["exit_code"], code, "{what}: {doc}");
    assert!(
        doc["errors"].as_array().is_some_and(|a| !a.is_empty()),
        "{what}: {doc}"
    );
}

const COMMANDS: &[&[&str]] = &[
    &["refresh"],
    &["refresh", "--dry-run"],
    &["validate"],
    &["scan"],
    &["verify"],
    &["warm"],
    &["reindex"],
    &["generations"],
    &["rollback"],
    &["status"],
    &["health"],
    &["deploy", "history"],
];

/// A missing config file (exit 2), a server that does not answer (exit 1), and a usage
/// mistake clap refuses (exit 2), for every command.
#[test]
fn every_command_reports_errors_in_one_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.yaml");
    let unreachable = dir.path().join("unreachable.yaml");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules");
    std::fs::write(
        &unreachable,
        "source:\n  url: postgres://postgres@127.0.0.1:1/src\ntarget:\n  url: postgres://postgres@127.0.0.1:1/postgres\n  database: nowhere_stg\nsecret: test-secret-0123456789abcdef\nstrict: off\nhealth:\n  checks:\n    - name: db\n      postgres: postgres://postgres@127.0.0.1:1/postgres\ndeploy:\n  history: postgres://postgres@127.0.0.1:1/postgres\n",
    )
    .expect("config");
    for config in [&missing, &unreachable] {
        for args in COMMANDS {
            let what = format!("{args:?} with {}", config.display());
            let (code, out, err) = harness::restage()
                .config(config)
                .args(args.iter())
                .run()
                .into_parts();
            assert_one_format(&what, code, &out, &err);
            let run = harness::restage()
                .config(config)
                .arg("--json")
                .args(args.iter())
                .run();
            assert_eq!(run.code, code, "{what} --json");
            assert_json_document(&format!("{what} --json"), run.code, &run.stdout);
        }
    }
    for args in [
        &["--bogus"][..],
        &["refresh", "--no-such-flag"],
        &["no-such-command"],
        &["demo", "--scale", "0"],
        &["generations", "--pin"],
    ] {
        let what = format!("{args:?}");
        let (code, out, err) = harness::restage().args(args.iter()).run().into_parts();
        assert_eq!(code, 2, "{what}: {err}");
        assert_one_format(&what, code, &out, &err);
        let run = harness::restage().arg("--json").args(args.iter()).run();
        assert_json_document(&format!("{what} --json"), run.code, &run.stdout);
    }
}

/// validate's problems: on stderr, each `restage: error: …`, the valid line on stdout only
/// when valid; `--json` has them in its document with `outcome` and `exit_code`.
#[tokio::test]
async fn validate_problems_are_errors_on_stderr() {
    let setup = Setup::new(
        "outval",
        "CREATE TABLE users (id int PRIMARY KEY, email text);",
        "strict: off",
    )
    .await;
    setup.write_rules(
        "r.yaml",
        "tables:\n  public.users:\n    emial: email\n    email: { transform: emial }\n",
    );
    let (code, out, err) = setup.run(&["validate"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_one_format("validate", code, &out, &err);
    assert!(
        err.contains("restage: error: ") && err.contains("no such column"),
        "{err}"
    );
    let run = setup.restage().args(["--json", "validate"]).run();
    let doc = run.json();
    assert_eq!(doc["outcome"], "error");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["valid"], false);
}

/// The class, not the example: no `print!`/`println!`/`eprint!`/`eprintln!` in src/ outside
/// tests (they panic on a closed pipe); results go through `out!`/`outln!`, messages through
/// `errln!` (src/output.rs).
#[test]
fn no_panicking_print_macros_in_src() {
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("src readable").flatten() {
                stack.push(entry.path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source readable");
        // Unit tests at the end of a file may print.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for mac in ["println!(", "print!(", "eprintln!(", "eprint!("] {
                let bare = line.match_indices(mac).any(|(at, _)| {
                    at == 0
                        || !line.as_bytes()[at - 1].is_ascii_alphanumeric()
                            && line.as_bytes()[at - 1] != b'_'
                });
                if bare {
                    offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use out!/outln!/errln!:\n{}",
        offenders.join("\n")
    );
}

/// `-c other.yaml` with no `secret:`: the message names other.yaml, not restage.yaml.
#[tokio::test]
async fn messages_name_the_config_file_given() {
    let setup = Setup::new(
        "outcfg",
        "CREATE TABLE users (id int PRIMARY KEY, email text);",
        "strict: off",
    )
    .await;
    setup.write_rules("r.yaml", "tables:\n  public.users:\n    email: email\n");
    let yaml = std::fs::read_to_string(setup.config_path()).expect("config");
    let other = setup.dir.path().join("other.yaml");
    let without_secret: String = yaml
        .lines()
        .filter(|l| !l.starts_with("secret:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&other, without_secret).expect("other.yaml");
    for command in ["validate", "refresh"] {
        let (code, out, err) = harness::restage()
            .config(&other)
            .arg(command)
            .run()
            .into_parts();
        assert_eq!(code, 2, "{command}: {out}\n{err}");
        assert!(
            err.contains("other.yaml has no `secret:`"),
            "{command}: {err}"
        );
        assert!(!err.contains("restage.yaml"), "{command}: {err}");
    }
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// `restage completions SHELL` for every shell clap_complete knows: exit 0, a script naming
/// the commands; bash's (and zsh's and fish's, where installed) parse with `-n`.
#[test]
fn completions_are_scripts_the_shells_parse() {
    let dir = tempfile::tempdir().expect("temp dir");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, out, err) = harness::restage()
            .args(["completions", shell])
            .run()
            .into_parts();
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["refresh", "validate", "rollback", "config"] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
        let checker = match shell {
            "bash" | "zsh" | "fish" => shell,
            _ => continue,
        };
        if !has(checker) {
            assert_ne!(shell, "bash", "bash is needed to check the bash completion");
            eprintln!("SKIPPED: {checker} -n (not installed)");
            continue;
        }
        let script = dir.path().join(format!("restage.{shell}"));
        std::fs::write(&script, &out).expect("script");
        let check = Command::new(checker)
            .arg("-n")
            .arg(&script)
            .output()
            .expect("shell");
        assert!(
            check.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let (code, _, err) = harness::restage()
        .args(["completions", "tcsh"])
        .run()
        .into_parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("restage: error: "), "{err}");
}

/// `restage man`: a roff page with `.TH`, the commands and options; `man -l` renders it.
#[test]
fn man_page_renders() {
    let (code, page, err) = harness::restage().arg("man").run().into_parts();
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH restage 1"), "{page}");
    for word in ["refresh", "validate", "completions", "config"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
    if !has("man") {
        eprintln!("SKIPPED: man -l (man not installed)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("restage.1");
    std::fs::write(&file, &page).expect("page");
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("restage") && text.contains("refresh"),
        "{text}"
    );
    assert!(!text.contains(".TH"), "unrendered roff:\n{text}");
}
