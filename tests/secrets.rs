//! Secrets (issue 6): database passwords (in URLs and in `${VAR}`s), the pseudonym `secret`,
//! Redis passwords and `cmd:` outputs never appear in what restage prints — logs at every
//! level, errors, the report (text, JSON, file), `--dry-run` output — in what a panic message
//! would show (the `Debug` form of every configuration type), nor on the command line of the
//! tools it runs. Every distinctive value below is grepped for in everything captured.
//!
//! The runs go against a private PostgreSQL cluster that checks passwords (scram-sha-256),
//! so the passwords are really used, by restage and by pg_dump/pg_restore.

use crate::harness;

use std::path::Path;
use std::time::Duration;

use crate::harness::cluster::{Cluster, ClusterOptions};

const DB_PASSWORD: &str = "PgPw-Zq81-Xylophone";
const CMD_SECRET: &str = "CmdSecret-Mv27-Quasar-0123456789";
const REDIS_PASSWORD: &str = "RedisPw-Tk55-Nebula";
const BARE_TOKEN: &str = "BareToken-Hh93-Walrus";
const INLINE_SECRET: &str = "InlineSecret-Rr42-0123456789abcdef";

const ALL: [&str; 5] = [
    DB_PASSWORD,
    CMD_SECRET,
    REDIS_PASSWORD,
    BARE_TOKEN,
    INLINE_SECRET,
];

fn assert_clean(what: &str, text: &str) {
    for s in ALL {
        assert!(!text.contains(s), "{what}: `{s}` leaked:\n{text}");
    }
}

const SCHEMA: &str = "
    CREATE TABLE users (id int PRIMARY KEY, email text, name text);
    INSERT INTO users SELECT g, 'user' || g || '@example.com', 'Name ' || g FROM generate_series(1, 500) g;
    CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users (id), total numeric);
    INSERT INTO orders SELECT g, 1 + g % 500, g FROM generate_series(1, 2000) g;
";

/// An index whose build is slow only in a database restage is building, so pg_restore is
/// still running when the test looks at its command line. On a partitioned table, so that it
/// is left to pg_restore's post-data (plain tables' indexes are built during the copy, on
/// restage's own connections).
const SLOW_INDEX: &str = "
    CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        IF current_database() LIKE '%\\_\\_restage\\_%' THEN PERFORM pg_sleep(0.05); END IF;
        RETURN i;
    END $$;
    CREATE TABLE slow (id int) PARTITION BY RANGE (id);
    CREATE TABLE slow_all PARTITION OF slow FOR VALUES FROM (0) TO (1000);
    INSERT INTO slow SELECT generate_series(1, 100);
    CREATE INDEX slow_idx ON slow (slow_key(id));
";

#[derive(Debug, Clone, Copy)]
enum Broken {
    RulesDoNotFit,
    UnruledPersonalColumn,
    FailingCmd,
}

struct World {
    cluster: Cluster,
    dir: tempfile::TempDir,
    staging: String,
}

impl World {
    /// A password-checking cluster with a source database, and a config that uses every kind
    /// of secret: a password inline in the source URL, one in `${VAR}` for the target, the
    /// pseudonym secret from `cmd:`.
    fn new(extra_schema: &str) -> Option<World> {
        let cluster = match Cluster::start(ClusterOptions {
            password: Some(DB_PASSWORD.into()),
            tls: false,
        }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: cannot start a private PostgreSQL cluster: {e}");
                return None;
            }
        };
        cluster
            .psql("postgres", "CREATE DATABASE prod")
            .expect("create prod");
        cluster
            .psql("prod", &format!("{SCHEMA}{extra_schema}"))
            .expect("fill prod");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(
            dir.path().join("rules").join("users.yaml"),
            "tables:\n  public.users:\n    email: set_null\n    name: keep\n",
        )
        .unwrap();
        let world = World {
            cluster,
            dir,
            staging: "app".to_string(),
        };
        world.write_config("");
        Some(world)
    }

    fn write_config(&self, extra: &str) {
        let yaml = format!(
            "source:\n  url: {}\ntarget:\n  url: postgres://postgres:${{RESTAGE_TEST_TARGET_PW}}@localhost:{}/postgres\n  database: {}\n  keep: 1\njobs: 2\nsecret: cmd:printf %s {CMD_SECRET}\nstrict: pii\n{extra}",
            self.cluster.url("localhost", "prod", ""),
            self.cluster.port,
            self.staging,
        );
        std::fs::write(self.config(), yaml).unwrap();
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("restage.yaml")
    }

    fn rules_file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("rules").join(name)
    }

    /// The configurations `refresh` refuses with exit 2 (each undone by `restore`): rules
    /// for a table the source lacks, strict mode meeting an unruled personal column, a
    /// `cmd:` that prints the secret and fails.
    fn break_it(&self, how: Broken) {
        match how {
            Broken::RulesDoNotFit => std::fs::write(
                self.rules_file("bad.yaml"),
                "tables:\n  public.nope:\n    x: set_null\n",
            )
            .unwrap(),
            Broken::UnruledPersonalColumn => std::fs::write(
                self.rules_file("users.yaml"),
                "tables:\n  public.users:\n    name: keep\n",
            )
            .unwrap(),
            Broken::FailingCmd => {
                let yaml = std::fs::read_to_string(self.config()).unwrap();
                std::fs::write(
                    self.config(),
                    yaml.replace(
                        &format!("cmd:printf %s {CMD_SECRET}"),
                        &format!("cmd:sh -c \"echo {CMD_SECRET}; echo {CMD_SECRET} >&2; exit 7\""),
                    ),
                )
                .unwrap();
            }
        }
    }

    /// Undoes `break_it`.
    fn restore(&self, how: Broken) {
        match how {
            Broken::RulesDoNotFit => std::fs::remove_file(self.rules_file("bad.yaml")).unwrap(),
            Broken::UnruledPersonalColumn => std::fs::write(
                self.rules_file("users.yaml"),
                "tables:\n  public.users:\n    email: set_null\n    name: keep\n",
            )
            .unwrap(),
            Broken::FailingCmd => self.write_config(""),
        }
    }

    /// Runs restage with the target password in the environment; checks everything it
    /// printed; returns (code, stdout, stderr).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut envs = vec![("RESTAGE_TEST_TARGET_PW", DB_PASSWORD)];
        envs.extend_from_slice(env);
        let (code, out, err) = harness::restage()
            .config(self.config())
            .args(args)
            .envs(&envs)
            .run()
            .into_parts();
        assert_clean(&format!("restage {args:?} stdout"), &out);
        assert_clean(&format!("restage {args:?} stderr"), &err);
        (code, out, err)
    }
}

/// Succeeding runs, at every log level, with text, JSON and file reports, a dry run, and the
/// other commands.
#[test]
fn successful_runs_never_show_a_secret() {
    let Some(world) = World::new("") else { return };
    let report = world.dir.path().join("report.json");
    let report_arg = report.to_str().unwrap();

    let (code, out, err) = world.run(&["-v", "refresh", "--dry-run"], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing was changed"), "{out}");

    let (code, out, err) = world.run(&["-vv", "refresh", "--report", report_arg], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_clean("report file", &std::fs::read_to_string(&report).unwrap());

    // Every crate's debug logs (the driver's, rustls', …), not only restage's.
    let (code, out, err) = world.run(&["--json", "refresh"], &[("RESTAGE_LOG", "debug")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("DEBUG"), "debug logging on:\n{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(json["exit_code"], 0);

    for args in [
        &["-v", "generations"][..],
        &["-v", "verify"][..],
        &["-v", "validate"][..],
        &["-v", "--json", "generations"][..],
        &["-v", "rollback"][..],
    ] {
        let (code, out, err) = world.run(args, &[]);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
    }
}

/// Failing runs: a wrong password, an unreachable server, bad rules, a failed `cmd:`, a
/// Redis that refuses the password, an interruption.
#[test]
fn failing_runs_never_show_a_secret() {
    let Some(world) = World::new("") else { return };

    // Wrong target password (through the variable): exit 1, named.
    let (code, _, err) = world.run(
        &["-v", "refresh"],
        &[("RESTAGE_TEST_TARGET_PW", "Wrong-Pw-But-Also-Secret")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("Wrong-Pw-But-Also-Secret"), "{err}");

    // Unreachable source, password inline.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = std::fs::read_to_string(world.config()).unwrap();
    std::fs::write(
        world.config(),
        yaml.replace(
            &format!("localhost:{}/prod", world.cluster.port),
            &format!("127.0.0.1:{port}/prod"),
        ),
    )
    .unwrap();
    let (code, _, err) = world.run(&["-vv", "refresh"], &[]);
    assert_eq!(code, 1, "{err}");
    world.write_config("");

    // Rules that do not fit: exit 2.
    world.break_it(Broken::RulesDoNotFit);
    let (code, _, err) = world.run(&["-vv", "refresh"], &[]);
    assert_eq!(code, 2, "{err}");
    world.restore(Broken::RulesDoNotFit);

    // Strict mode refusing an unruled personal column (its message names the column, not
    // values).
    world.write_config("");
    world.break_it(Broken::UnruledPersonalColumn);
    let (code, _, err) = world.run(&["-v", "refresh"], &[]);
    assert_eq!(code, 2, "{err}");
    world.restore(Broken::UnruledPersonalColumn);

    // A cmd: that prints the secret and then fails.
    world.break_it(Broken::FailingCmd);
    let (code, _, err) = world.run(&["-vv", "refresh"], &[]);
    assert_eq!(code, 2, "{err}");
    world.restore(Broken::FailingCmd);

    // Redis with a password it does not expect: the refresh swaps, the warming fails,
    // exit 5 (live, but); the message names Redis without the password.
    let prefix = harness::redis_prefix("secrets");
    world.write_config(&format!(
        "cache:\n  url: redis://:{REDIS_PASSWORD}@{}/0\n  warm:\n    - {{ query: \"SELECT id, name FROM users\", key: \"{prefix}u:{{id}}\", value: name }}\n",
        harness::redis_host_port()
    ));
    let (code, out, err) = world.run(&["-vv", "refresh"], &[]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(err.contains("cache was NOT warmed"), "{err}");
    assert!(err.contains("redis://:***@"), "{err}");
    let (code, _, err) = world.run(&["-v", "warm"], &[]);
    assert_eq!(code, 1, "{err}");
    world.write_config("");

    // Interrupted mid-data, with trace logging.
    let mut child = harness::restage()
        .config(world.config())
        .args(["-vv", "refresh"])
        .env("RESTAGE_TEST_TARGET_PW", DB_PASSWORD)
        .env("RESTAGE_TEST_PAUSE_AT", "data")
        .spawn();
    child.wait_paused("data");
    child.signal(libc::SIGINT);
    let (code, out, err) = child.finish(Duration::from_secs(300));
    assert_eq!(code, 1, "{err}");
    assert_clean("interrupted stdout", &out);
    assert_clean("interrupted stderr", &err);
}

/// A `cmd:` or variable whose output is not a URL at all (a bare token: the secret manager
/// returned the password instead of the URL) must not be echoed in the error.
#[test]
fn a_secret_in_place_of_a_url_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("restage.yaml");
    for (yaml, command, expected) in secret_in_place_of_a_url() {
        std::fs::write(&config, &yaml).unwrap();
        let (code, out, err) = harness::restage()
            .config(&config)
            .args(["-vv", command])
            .env("RESTAGE_TEST_BARE", BARE_TOKEN)
            .run()
            .into_parts();
        assert_ne!(code, 0);
        assert_clean(&format!("{command} stdout"), &out);
        assert_clean(&format!("{command} stderr"), &err);
        assert!(err.contains(expected), "{command}: {err}");
    }
}

/// Configurations whose `cmd:` or variable gives a bare token where a URL belongs (with
/// `RESTAGE_TEST_BARE` set to it): (config, command, what the error names).
fn secret_in_place_of_a_url() -> [(String, &'static str, &'static str); 3] {
    [
        (
            format!(
                "source:\n  url: cmd:printf %s {BARE_TOKEN}\ntarget:\n  url: postgres://h/postgres\n  database: app\n"
            ),
            "refresh",
            "source.url: not a valid PostgreSQL connection string",
        ),
        (
            "source:\n  url: ${RESTAGE_TEST_BARE}\ntarget:\n  url: postgres://h/postgres\n  database: app\n".to_string(),
            "refresh",
            "source.url: not a valid PostgreSQL connection string",
        ),
        (
            // The live database is reachable (the test server's `postgres`), so the warming
            // gets as far as the Redis URL.
            format!(
                "target:\n  url: {}\n  database: postgres\ncache:\n  url: cmd:printf %s {BARE_TOKEN}\n  warm:\n    - {{ query: SELECT 1 AS id, key: \"k:{{id}}\" }}\n",
                harness::admin_url()
            ),
            "warm",
            "cache.url",
        ),
    ]
}

/// A source URL with the password in it and an unencoded `/` in the password.
fn malformed_url_config() -> String {
    format!(
        "source:\n  url: postgres://app:{DB_PASSWORD}/x@db.internal:notaport/prod\ntarget:\n  url: postgres://h/postgres\n  database: app\n"
    )
}

/// A malformed URL with the password in it (an unencoded `/` in the password) shows no part
/// of its authority (issue 11: libpq reads such a password as a host, port and database, so
/// a redaction that shows those shows the password).
#[test]
fn a_malformed_url_is_shown_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("restage.yaml");
    std::fs::write(&config, malformed_url_config()).unwrap();
    let (code, out, err) = harness::restage()
        .config(&config)
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 2, "{err}");
    assert_clean("stdout", &out);
    assert_clean("stderr", &err);
    assert!(
        err.contains("not a valid PostgreSQL connection string (postgres://***): it holds an `@` after the host (a password with `/` in it must write it as %2F"),
        "{err}"
    );
    assert!(!err.contains("db.internal"), "{err}");
}

/// What a panic message could show: the `Debug` form of every type that holds a
/// configuration, endpoint or secret, including values written inline in the file.
#[test]
fn debug_forms_hold_no_secret() {
    let text = format!(
        "source:\n  url: postgres://u:{DB_PASSWORD}@db/prod\ntarget:\n  url: host=h user=u password={DB_PASSWORD} dbname=postgres\n  database: app\nsecret: {INLINE_SECRET}\ncache:\n  url: redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0\n  warm:\n    - {{ query: SELECT 1 AS id, key: \"k:{{id}}\" }}\nhealth:\n  checks:\n    - {{ name: db, kind: postgres, url: \"postgres://u:{DB_PASSWORD}@db/app\" }}\n"
    );
    let config = restage::config::Config::from_text(&text, Path::new("restage.yaml")).unwrap();
    assert_clean("Config", &format!("{config:?}"));
    assert_clean("Config (pretty)", &format!("{config:#?}"));
    let settings = restage::refresh::Settings::from_config(&config, "refresh").unwrap();
    assert_clean("Settings", &format!("{settings:?}"));
    assert_clean("Settings (pretty)", &format!("{settings:#?}"));
    let source = config.source("refresh").unwrap();
    assert_clean("PgEndpoint", &format!("{source:?} {source}"));
    let secret = config.secret("refresh").unwrap();
    assert_clean("Secret", &format!("{secret:?} {secret}"));
    let cache = restage::refresh::CacheSettings::from_config(&config, "warm").unwrap();
    assert_clean("CacheSettings", &format!("{cache:?}"));
    // Errors that carry a resolved value.
    let bad = restage::config::Config::from_text(
        &format!("source:\n  url: postgres://u:{DB_PASSWORD}@db:notaport/prod\n"),
        Path::new("restage.yaml"),
    )
    .unwrap();
    let err = bad.source("refresh").unwrap_err();
    assert_clean("ConfigError", &format!("{err} {err:?}"));
    let err = restage::error::Error::from(err);
    assert_clean("Error", &format!("{err} {err:?}"));
}

/// pg_dump and pg_restore get the password in their environment, never on their command
/// line (which every user of the machine can read with `ps`).
#[test]
fn tools_get_the_password_in_their_environment_only() {
    let Some(world) = World::new(SLOW_INDEX) else {
        return;
    };
    let mut child = harness::restage()
        .config(world.config())
        .arg("refresh")
        .env("RESTAGE_TEST_TARGET_PW", DB_PASSWORD)
        .env("RESTAGE_TEST_PAUSE_AT", "post-data-restore")
        .spawn();
    child.wait_paused("post-data-restore");
    let restage_pid = child.pid();
    // The children of restage that are pg_restore (still running: the slow index).
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ppid: i32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid != restage_pid {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("pg_restore") {
            continue;
        }
        seen += 1;
        assert_clean("pg_restore command line", &cmdline);
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.contains(&format!("PGPASSWORD={DB_PASSWORD}")),
            "the password travels in the environment"
        );
    }
    assert!(seen >= 1, "pg_restore was running");
    child.signal(libc::SIGTERM);
    let (code, out, err) = child.finish(Duration::from_secs(300));
    assert_eq!(code, 1, "{err}");
    assert_clean("stdout", &out);
    assert_clean("stderr", &err);
    assert!(world.cluster.databases_like("app__restage_").is_empty());
}

/// `restage validate` refuses (exit 2) each configuration of this file that `restage
/// refresh` refuses with exit 2, and shows no secret either (issue 10).
#[test]
fn validate_refuses_what_refresh_refuses() {
    let mut accepted = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("restage.yaml");
    std::fs::write(&config, malformed_url_config()).unwrap();
    let (code, out, err) = harness::restage()
        .config(&config)
        .args(["-vv", "validate"])
        .run()
        .into_parts();
    assert_clean("validate stdout", &out);
    assert_clean("validate stderr", &err);
    if code != 2 {
        accepted.push(format!("malformed source URL: exit {code}\n{out}{err}"));
    }
    // The bare tokens where a source URL belongs: refresh refuses them with exit 2.
    for (yaml, command, _) in secret_in_place_of_a_url() {
        if command != "refresh" {
            continue;
        }
        std::fs::write(&config, &yaml).unwrap();
        let run = |command: &str| {
            let (code, out, err) = harness::restage()
                .config(&config)
                .args(["-vv", command])
                .env("RESTAGE_TEST_BARE", BARE_TOKEN)
                .run()
                .into_parts();
            assert_clean(&format!("{command} stdout"), &out);
            assert_clean(&format!("{command} stderr"), &err);
            (code, format!("{out}{err}"))
        };
        let (code, printed) = run("refresh");
        assert_eq!(code, 2, "refresh: {printed}");
        let (code, printed) = run("validate");
        if code != 2 {
            accepted.push(format!(
                "a bare token as source.url: exit {code}\n{printed}"
            ));
        }
    }

    let Some(world) = World::new("") else { return };
    for how in [
        Broken::RulesDoNotFit,
        Broken::UnruledPersonalColumn,
        Broken::FailingCmd,
    ] {
        world.break_it(how);
        let (code, out, err) = world.run(&["-vv", "validate"], &[]);
        if code != 2 {
            accepted.push(format!("{how:?}: exit {code}\n{out}{err}"));
        }
        world.restore(how);
    }
    assert!(
        accepted.is_empty(),
        "validate did not refuse (exit 2) what refresh refuses:\n{}",
        accepted.join("\n")
    );
}
