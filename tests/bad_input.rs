//! Bad input (issue 6): every mistake a user can make in restage.yaml, the rules or the
//! servers gives one exact message, naming the file:line:col, the key, or the server (never
//! its password), exit code 2 (1 for servers that cannot be reached), and changes nothing —
//! no database is created. Then fuzzing: the config and rules loaders, the YAML key index and
//! the row stage never panic on arbitrary or mutated input; they return errors.
//!
//! The mistakes are one table, [`bad_inputs!`] below. Each entry is a test of `restage
//! refresh` named after it, and each that refresh refuses with exit 2 is also a test of
//! `restage validate` in [`validate_refuses`]: validate must refuse what refresh refuses
//! (issue 10).

use std::path::{Path, PathBuf};

use crate::harness;
use crate::harness::Setup;
use crate::harness::cluster::{Cluster, ClusterOptions};
use crate::harness::proxy::Proxy;
use proptest::prelude::*;

/// A config file in a temp dir, run with `restage refresh`; the staging name is unique so
/// the test can check nothing was created.
struct Bad {
    dir: tempfile::TempDir,
    staging: String,
}

impl Bad {
    fn new() -> Bad {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        Bad {
            dir,
            staging: harness::unique_name("bad"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("restage.yaml")
    }

    /// Writes the config (`{staging}` replaced) and runs `restage <args>`.
    fn run(&self, yaml: &str, args: &[&str]) -> (i32, String, String) {
        std::fs::write(self.path(), yaml.replace("{staging}", &self.staging)).unwrap();
        harness::restage()
            .config(self.path())
            .args(args)
            .run()
            .into_parts()
    }

    /// Runs `refresh` and checks the exit code, the exact last line of stderr, and that
    /// nothing was created.
    async fn refresh_fails(&self, yaml: &str, code: i32, message: &str) -> String {
        let run = self.run(yaml, &["refresh"]);
        assert_refused(
            &run,
            code,
            &message.replace("{file}", &self.file()),
            &self.staging,
        )
        .await;
        run.2
    }

    fn file(&self) -> String {
        self.path().display().to_string()
    }
}

/// What every refusal shows: the exit code, stderr ending with `restage: error: <message>`
/// (one line: the last line is exactly that; several: stderr ends with them, each line
/// prefixed, issue 15), and no database named `staging`.
async fn assert_refused(run: &(i32, String, String), code: i32, message: &str, staging: &str) {
    let (got, out, err) = run;
    assert_eq!(*got, code, "stdout:\n{out}\nstderr:\n{err}");
    let expected = message
        .lines()
        .map(|l| format!("restage: error: {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    if expected.contains('\n') {
        assert!(err.trim_end().ends_with(&expected), "stderr:\n{err}");
    } else {
        assert_eq!(last_line(err), expected, "stderr:\n{err}");
    }
    assert!(
        harness::databases_like(staging).await.is_empty(),
        "bad input created a database"
    );
}

fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// A valid config around `source`/`target` URLs that need not exist (the error comes first).
fn config(source: &str, target: &str, extra: &str) -> String {
    format!(
        "source:\n  url: {source}\ntarget:\n  url: {target}\n  database: {{staging}}\nsecret: test-secret-0123456789abcdef\nstrict: off\n{extra}"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ----- The table of bad inputs -----

/// What a case needs besides its own folder.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Nothing,
    /// A source database made from `schema`: a [`Setup`], whose own restage.yaml has `extra`.
    Source {
        prefix: &'static str,
        schema: &'static str,
        extra: &'static str,
    },
    /// The same, and a TCP proxy in front of the test server.
    SourceBehindProxy {
        prefix: &'static str,
        schema: &'static str,
    },
}

/// The restage.yaml a case runs with.
#[derive(Clone, Copy)]
enum Config {
    /// Written into the case's folder; `{staging}` becomes a name nothing else uses.
    Yaml(fn(&World) -> String),
    /// No file at all.
    Missing,
    /// The source's own (the [`Setup`]'s), with these rules files.
    SourceOwn {
        rules: &'static [(&'static str, &'static str)],
    },
}

/// What must hold of production after the refusal, besides "no staging database".
#[derive(Debug, Clone, Copy)]
enum After {
    Nothing,
    /// The source's table `t` has `rows` rows and no generation of it (`<source>__…`) exists.
    SourceIntact {
        rows: i64,
    },
    /// The source's table `t` has `rows` rows and no other database is named like it:
    /// nothing created, nothing renamed.
    SourceAlone {
        rows: i64,
    },
}

/// One bad input: the world it needs, its config, and how restage refuses it.
#[derive(Clone, Copy)]
struct Case {
    needs: Needs,
    config: Config,
    /// How stderr ends after `restage: error: ` (`{file}`: the config file's path).
    message: fn(&World) -> String,
    /// What stderr must not contain (passwords, a command's output).
    hidden: &'static [&'static str],
    after: After,
}

impl Case {
    fn new(config: Config, message: fn(&World) -> String) -> Case {
        Case {
            needs: Needs::Nothing,
            config,
            message,
            hidden: &[],
            after: After::Nothing,
        }
    }

    fn yaml(config: fn(&World) -> String, message: fn(&World) -> String) -> Case {
        Case::new(Config::Yaml(config), message)
    }

    fn needs(self, needs: Needs) -> Case {
        Case { needs, ..self }
    }

    fn hidden(self, hidden: &'static [&'static str]) -> Case {
        Case { hidden, ..self }
    }

    fn after(self, after: After) -> Case {
        Case { after, ..self }
    }
}

/// What a case was run in: its folder, the source and proxy it needs, the config path.
struct World {
    bad: Bad,
    source: Option<Setup>,
    proxy: Option<Proxy>,
    /// A port where nothing listens.
    port: u16,
    config: PathBuf,
    /// The staging database the config names (it must not be created).
    staging: String,
}

impl World {
    async fn arrange(case: &Case) -> World {
        let bad = Bad::new();
        let (source, proxy) = match case.needs {
            Needs::Nothing => (None, None),
            Needs::Source {
                prefix,
                schema,
                extra,
            } => (Some(Setup::new(prefix, schema, extra).await), None),
            Needs::SourceBehindProxy { prefix, schema } => (
                Some(Setup::new(prefix, schema, "").await),
                Some(Proxy::postgres()),
            ),
        };
        let mut world = World {
            config: bad.path(),
            staging: bad.staging.clone(),
            bad,
            source,
            proxy,
            port: free_port(),
        };
        match case.config {
            Config::Yaml(yaml) => {
                let text = yaml(&world).replace("{staging}", &world.bad.staging);
                std::fs::write(&world.config, text).unwrap();
            }
            Config::Missing => {}
            Config::SourceOwn { rules } => {
                let setup = world.source();
                for (name, text) in rules {
                    setup.write_rules(name, text);
                }
                let (config, staging) = (setup.config_path(), setup.staging.clone());
                world.config = config;
                world.staging = staging;
            }
        }
        world
    }

    fn source(&self) -> &Setup {
        self.source
            .as_ref()
            .expect("the case declares Needs::Source")
    }

    fn proxy_port(&self) -> u16 {
        self.proxy
            .as_ref()
            .expect("the case declares Needs::SourceBehindProxy")
            .port()
    }

    /// A rules file of the source's folder (Config::SourceOwn).
    fn rules_file(&self, name: &str) -> String {
        self.source()
            .dir
            .path()
            .join("rules")
            .join(name)
            .display()
            .to_string()
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        harness::restage()
            .config(&self.config)
            .args(args)
            .run()
            .into_parts()
    }

    fn message(&self, case: &Case) -> String {
        (case.message)(self).replace("{file}", &self.config.display().to_string())
    }
}

/// `restage refresh` refuses the case with `code`: the message, nothing created, nothing
/// hidden shown, production as it was.
async fn refresh_refuses(code: i32, case: Case) {
    let world = World::arrange(&case).await;
    let run = world.run(&["refresh"]);
    assert_refused(&run, code, &world.message(&case), &world.staging).await;
    for hidden in case.hidden {
        assert!(!run.2.contains(hidden), "{}", run.2);
    }
    match case.after {
        After::Nothing => {}
        After::SourceIntact { rows } => {
            let source = &world.source().source;
            let n: i64 = harness::scalar(&source.client().await, "SELECT count(*) FROM t").await;
            assert_eq!(n, rows);
            assert_eq!(
                harness::databases_like(&format!("{}__", source.name)).await,
                Vec::<String>::new()
            );
        }
        After::SourceAlone { rows } => {
            let source = &world.source().source;
            assert_eq!(
                harness::databases_like(&source.name).await,
                vec![source.name.clone()],
                "nothing created, nothing renamed"
            );
            let n: i64 = harness::scalar(&source.client().await, "SELECT count(*) FROM t").await;
            assert_eq!(n, rows);
        }
    }
}

/// `restage validate` refuses (exit 2) a case that `restage refresh` refuses with exit 2,
/// creates nothing, and shows nothing hidden.
async fn assert_validate_refuses(case: Case) {
    let world = World::arrange(&case).await;
    let (code, out, err) = world.run(&["validate"]);
    assert_eq!(
        code,
        2,
        "`restage validate` did not refuse a configuration `restage refresh` refuses (refresh says: {})\nstdout:\n{out}\nstderr:\n{err}",
        world.message(&case)
    );
    for hidden in case.hidden {
        assert!(!err.contains(hidden), "{err}");
    }
    assert!(harness::databases_like(&world.staging).await.is_empty());
}

/// Each `name => case` is a test `name` of `restage refresh`; those under `refused` (exit 2)
/// are also a test `validate_refuses::name` of `restage validate`.
macro_rules! bad_inputs {
    (
        refused: { $( $(#[$r_doc:meta])* $r:ident => $r_case:expr, )* }
        unreachable: { $( $(#[$u_doc:meta])* $u:ident => $u_case:expr, )* }
    ) => {
        $(
            $(#[$r_doc])*
            #[tokio::test]
            async fn $r() {
                refresh_refuses(2, $r_case).await;
            }
        )*
        $(
            $(#[$u_doc])*
            #[tokio::test]
            async fn $u() {
                refresh_refuses(1, $u_case).await;
            }
        )*
        /// Issue 10: `restage validate` exits 2 on every configuration above that makes
        /// `restage refresh` exit 2.
        mod validate_refuses {
            use super::*;
            $(
                #[tokio::test]
                async fn $r() {
                    assert_validate_refuses($r_case).await;
                }
            )*
        }
    };
}

/// A source with one empty table, for the cases that compare the target with it.
const ONE_TABLE: &str = "CREATE TABLE t (id int);";

bad_inputs! {
    refused: {
        // ----- restage.yaml -----
        malformed_yaml_unterminated_quote => Case::yaml(
            |_| "source:\n  url: \"postgres://h/db\ntarget:\n  url: x\n".into(),
            |_| "{file}:5:1: found unexpected end of stream, while scanning a quoted scalar at line 2 column 8".into(),
        ),
        malformed_yaml_bad_indentation => Case::yaml(
            |_| "source:\n  url: x\n   database: y\n".into(),
            |_| "{file}:3:12: mapping values are not allowed in this context".into(),
        ),
        malformed_yaml_tab_indentation => Case::yaml(
            |_| "source:\n\turl: x\n".into(),
            |_| "{file}:2:1: found character that cannot start any token, while scanning for the next token".into(),
        ),
        duplicate_key_points_at_the_second_one => Case::yaml(
            |_| "target:\n  url: postgres://h/postgres\n  database: app\n  url: postgres://h2/postgres\n".into(),
            |_| "{file}:4:3: target: duplicate field `url`".into(),
        ),
        wrong_type_jobs => Case::yaml(
            |_| config("postgres://h/db", "postgres://h/postgres", "jobs: many\n"),
            |_| "{file}:8:7: jobs: invalid type: string \"many\", expected usize".into(),
        ),
        wrong_type_keep => Case::yaml(
            |_| "target:\n  url: postgres://h/postgres\n  database: app\n  keep: -1\n".into(),
            |_| "{file}:4:9: target.keep: invalid type: integer `-1`, expected u32".into(),
        ),
        wrong_type_database_list => Case::yaml(
            |_| "target:\n  url: postgres://h/postgres\n  database: [a, b]\n".into(),
            |_| "{file}:3:13: target.database: invalid type: sequence, expected a string".into(),
        ),
        unknown_top_level_key_suggests => Case::yaml(
            |_| "source:\n  url: postgres://h/db\ntraget:\n  url: postgres://h/postgres\n".into(),
            |_| "{file}:3:1: unknown key `traget`, did you mean `target`?".into(),
        ),
        unknown_nested_key_suggests => Case::yaml(
            |_| "target:\n  url: postgres://h/postgres\n  databse: app\n".into(),
            |_| "{file}:3:3: target: unknown key `databse`, did you mean `database`?".into(),
        ),
        unknown_key_in_a_list_item_suggests => Case::yaml(
            |_| "cache:\n  warm:\n    - query: SELECT 1 AS id\n      kye: \"k:{id}\"\n".into(),
            |_| "{file}:4:7: cache.warm[0]: unknown key `kye`, did you mean `key`?".into(),
        ),
        unknown_key_far_from_any_lists_them => Case::yaml(
            |_| "target:\n  zzzzzz: 1\n".into(),
            |_| "{file}:2:3: target: unknown key `zzzzzz`, expected one of: url, database, keep, grants, adopt, settings".into(),
        ),
        unset_variable_is_named => Case::yaml(
            |_| config("${RESTAGE_TEST_SURELY_UNSET_VAR}", "postgres://h/postgres", ""),
            |_| "{file}:2:3: source.url: environment variable RESTAGE_TEST_SURELY_UNSET_VAR is not set".into(),
        ),
        unreadable_secret_file => Case::yaml(
            |w| format!(
                "source:\n  url: postgres://h/db\ntarget:\n  url: postgres://h/postgres\n  database: {{staging}}\nsecret: file:{}\n",
                w.bad.dir.path().join("no-such-secret").display()
            ),
            |w| format!(
                "{{file}}:6:1: secret: cannot read secret file {}: No such file or directory (os error 2)",
                w.bad.dir.path().join("no-such-secret").display()
            ),
        ),
        secret_file_that_is_a_directory => Case::yaml(
            |w| format!(
                "source:\n  url: postgres://h/db\ntarget:\n  url: postgres://h/postgres\n  database: {{staging}}\nsecret: file:{}\n",
                w.bad.dir.path().display()
            ),
            |w| format!(
                "{{file}}:6:1: secret: cannot read secret file {}: Is a directory (os error 21)",
                w.bad.dir.path().display()
            ),
        ),
        failing_cmd_hides_its_output => Case::yaml(
            |_| "source:\n  url: postgres://h/db\ntarget:\n  url: postgres://h/postgres\n  database: {staging}\nsecret: cmd:sh -c \"echo cmd-output-token-5521; echo cmd-stderr-token-5521 >&2; exit 3\"\n".into(),
            |_| "{file}:6:1: secret: `sh` failed with exit status: 3 (its output is not shown, it may hold secrets)".into(),
        )
        .hidden(&["token-5521"]),
        cmd_that_does_not_exist => Case::yaml(
            |_| "source:\n  url: cmd:restage-no-such-secret-tool --get prod\ntarget:\n  url: postgres://h/postgres\n  database: {staging}\n".into(),
            |_| "{file}:2:3: source.url: cannot run `restage-no-such-secret-tool`: No such file or directory (os error 2)".into(),
        ),
        secret_too_short => Case::yaml(
            |_| "source:\n  url: postgres://h/db\ntarget:\n  url: postgres://h/postgres\n  database: {staging}\nsecret: short-secret\n".into(),
            |_| "{file}:6:1: secret: must be at least 16 characters: it is the only thing between a pseudonym and its original".into(),
        ),
        bad_sslmode => Case::yaml(
            |_| config("postgres://h/db?sslmode=verify-everything", "postgres://h/postgres", ""),
            |_| "{file}:2:3: source.url: unknown sslmode `verify-everything` (use disable, prefer, require, verify-ca or verify-full)".into(),
        ),
        bad_size => Case::yaml(
            |_| config("postgres://h/db", "postgres://h/postgres", "sample:\n  max_storage: 2 parsecs\n"),
            |_| "{file}:9:16: sample.max_storage: unknown size unit `parsecs` in `2 parsecs` (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)".into(),
        ),
        // Issue 19: the long form of max_storage keeps its own keys and their positions.
        bad_max_storage_key => Case::yaml(
            |_| config("postgres://h/db", "postgres://h/postgres", "sample:\n  max_storage: { limit: 2GiB, include_index: true }\n"),
            |_| "{file}:9:31: sample.max_storage: unknown key `include_index`, did you mean `include_indexes`?".into(),
        ),
        bad_max_storage_policy => Case::yaml(
            |_| config("postgres://h/db", "postgres://h/postgres", "sample:\n  max_storage: 2GiB\n  max_storage_policy: rescal\n"),
            |_| "{file}:10:23: sample.max_storage_policy: unknown variant `rescal`, expected one of `rescale`, `fail`, `warn`".into(),
        ),
        bad_duration => Case::yaml(
            |_| config(
                "postgres://h/db",
                "postgres://h/postgres",
                "cache:\n  warm:\n    - { query: SELECT 1 AS id, key: \"k:{id}\", ttl: 5 fortnights }\n",
            ),
            |_| "{file}:10:7: cache.warm[0]: `5 fortnights` is not a duration (examples: 500ms, 30s, 5m, 1h, 1h30m)".into(),
        ),
        missing_config_file => Case::new(
            Config::Missing,
            |_| "{file}: no such file (give one with -c FILE; `restage demo` needs none)".into(),
        ),
        missing_section_is_named => Case::yaml(
            |_| "jobs: 2\n".into(),
            |_| "{file}: section `source` is missing; `refresh` needs it".into(),
        ),

        // ----- Configurations that would damage production or staging -----
        target_database_named_like_the_source_is_refused => Case::yaml(
            |w| format!(
                "source:\n  url: {}\ntarget:\n  url: {}\n  database: {}\n",
                w.source().source.url(),
                harness::admin_url(),
                w.source().source.name
            ),
            |w| format!(
                "{{file}}:5:3: target.database: is the source database ({} on {}@127.0.0.1:5432/{}); restage would replace production",
                w.source().source.name,
                harness::admin_user(),
                w.source().source.name
            ),
        )
        .needs(Needs::Source { prefix: "samedb", schema: ONE_TABLE, extra: "" })
        // The source is untouched: same name, same comment, still accepting connections.
        .after(After::SourceIntact { rows: 0 }),
        /// The same check when the URLs name the server differently (here the source goes
        /// through a proxy, as it could through a host alias, an IP address or a Unix
        /// socket): restage asks the servers, and refuses before creating anything;
        /// production is untouched.
        target_database_is_the_source_under_another_address => Case::yaml(
            |w| format!(
                "source:\n  url: {}\ntarget:\n  url: {}\n  database: {}\nstrict: off\n",
                harness::url_via(w.proxy_port(), &w.source().source.name),
                harness::admin_url(),
                w.source().source.name
            ),
            |w| format!(
                "target.database: {0} is the source database ({1}@127.0.0.1:{2}/{0}), on the same server under another address; restage would replace production (nothing was changed)",
                w.source().source.name,
                harness::admin_user(),
                w.proxy_port()
            ),
        )
        .needs(Needs::SourceBehindProxy {
            prefix: "samealias",
            schema: "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
        })
        .after(After::SourceAlone { rows: 2 }),
        /// And the maintenance connection on the source database, under another address.
        target_url_is_the_source_under_another_address => Case::yaml(
            |w| format!(
                "source:\n  url: {}\ntarget:\n  url: {}\n  database: {{staging}}\nstrict: off\n",
                harness::url_via(w.proxy_port(), &w.source().source.name),
                w.source().source.url(),
            ),
            |w| format!(
                "target.url: connects to the source database ({}), on the same server under another address; use a maintenance database of the staging server, such as postgres (nothing was changed)",
                w.source().source.name
            ),
        )
        .needs(Needs::SourceBehindProxy { prefix: "samealias2", schema: ONE_TABLE }),
        target_url_on_the_source_database_is_refused => Case::yaml(
            |w| format!(
                "source:\n  url: {0}\ntarget:\n  url: {0}\n  database: {{staging}}\n",
                w.source().source.url()
            ),
            |w| format!(
                "{{file}}:4:3: target.url: points at the source database ({}); use a maintenance database of the staging server, such as postgres",
                w.source().source.name
            ),
        )
        .needs(Needs::Source { prefix: "sameurl", schema: ONE_TABLE, extra: "" }),
        target_url_on_the_staging_database_is_refused => Case::yaml(
            |w| format!(
                "source:\n  url: {}\ntarget:\n  url: {}\n  database: {{staging}}\n",
                harness::url_for("postgres"),
                harness::url_for(&w.bad.staging)
            ),
            |w| format!(
                "{{file}}:4:3: target.url: connects to {}, which restage renames; use a maintenance database such as postgres",
                w.bad.staging
            ),
        ),
        target_database_with_the_generation_infix_is_refused => Case::yaml(
            |_| "target:\n  url: postgres://h/postgres\n  database: app__restage_x\n".into(),
            |_| "{file}:3:3: target.database: must not contain `__restage`, which restage uses for generations and its control database".into(),
        ),

        // ----- Rules -----
        /// Rules written for another schema: every table and column that does not exist is
        /// named with its file:line:col, all at once, before anything is created.
        rules_for_another_schema => Case::new(
            Config::SourceOwn {
                rules: &[(
                    "crm.yaml",
                    "tables:\n  public.customers:\n    email: set_null\n  public.users:\n    emial: set_null\n  billing.invoices:\n    total: keep\n",
                )],
            },
            |w| {
                let r = w.rules_file("crm.yaml");
                format!(
                    "{r}:2:3: table public.customers does not exist in the source\n{r}:5:5: public.users.emial: no such column, did you mean `email`?\n{r}:6:3: table billing.invoices does not exist in the source"
                )
            },
        )
        .needs(Needs::Source {
            prefix: "otherschema",
            schema: "CREATE TABLE users (id int PRIMARY KEY, email text);",
            extra: "strict: off",
        }),
        rules_file_with_a_syntax_error => Case::new(
            Config::SourceOwn {
                rules: &[("a.yaml", "tables:\n  public.users:\n    id: {transform: keep\n")],
            },
            |w| format!(
                "{}:4:1: did not find expected ',' or '}}', while parsing a flow mapping at line 3 column 9",
                w.rules_file("a.yaml")
            ),
        )
        .needs(Needs::Source {
            prefix: "rulesyntax",
            schema: "CREATE TABLE users (id int);",
            extra: "strict: off",
        }),
        rules_path_that_does_not_exist => Case::new(
            Config::SourceOwn { rules: &[] },
            |w| format!(
                "{}: no such rules file or folder",
                w.source().dir.path().join("no-such-rules/").display()
            ),
        )
        .needs(Needs::Source {
            prefix: "rulesmissing",
            schema: "CREATE TABLE users (id int);",
            extra: "strict: off\nrules: no-such-rules/",
        }),
    }
    unreachable: {
        /// A closed port: exit 1, the server named, its password nowhere.
        unreachable_source_is_named_without_password => Case::yaml(
            |w| config(
                &format!("postgres://postgres:pw-Unreachable-7731@127.0.0.1:{}/proddb", w.port),
                &harness::admin_url(),
                "",
            ),
            |w| format!(
                "postgres@127.0.0.1:{}/proddb: cannot connect: error connecting to server: Connection refused (os error 111)",
                w.port
            ),
        )
        .hidden(&["pw-Unreachable-7731"]),
        /// The target is contacted first (for the lock): its failure names it.
        unreachable_target_is_named_without_password => Case::yaml(
            |w| config(
                &harness::url_for("postgres"),
                &format!("postgres://admin:pw-Unreachable-8842@127.0.0.1:{}/postgres", w.port),
                "",
            ),
            |w| format!(
                "admin@127.0.0.1:{}/postgres: cannot connect: error connecting to server: Connection refused (os error 111)",
                w.port
            ),
        )
        .hidden(&["pw-Unreachable-8842"]),
    }
}

// ----- Servers that answer badly -----

/// A server that accepts TCP and drops it at once (a proxy refusing): exit 1, named.
#[tokio::test]
async fn refusing_server_is_named() {
    let bad = Bad::new();
    let proxy = Proxy::postgres();
    proxy.refuse(true);
    let (code, out, err) = bad.run(
        &config(
            &harness::url_via(proxy.port(), "proddb"),
            &harness::admin_url(),
            "",
        ),
        &["refresh"],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with(&format!(
            "restage: error: {}@127.0.0.1:{}/proddb: cannot connect: ",
            harness::admin_user(),
            proxy.port()
        )),
        "{line}"
    );
    assert!(harness::databases_like(&bad.staging).await.is_empty());
}

/// A wrong password against a server that checks passwords (a private cluster with
/// scram-sha-256): exit 1, the server named, neither password shown.
#[tokio::test]
async fn wrong_password_is_named_without_password() {
    let cluster = match Cluster::start(ClusterOptions {
        password: Some("Correct-Horse-4417".into()),
        tls: false,
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED wrong_password test: cannot start a private PostgreSQL: {e}");
            return;
        }
    };
    cluster
        .psql("postgres", "CREATE DATABASE prod")
        .expect("create prod");
    cluster
        .psql("prod", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .expect("fill prod");
    let bad = Bad::new();
    let wrong = format!(
        "postgres://postgres:Wrong-Horse-9902@localhost:{}/prod",
        cluster.port
    );
    let err = bad
        .refresh_fails(
            &config(&wrong, &harness::admin_url(), ""),
            1,
            &format!(
                "postgres@localhost:{}/prod: cannot connect: FATAL: password authentication failed for user \"postgres\"",
                cluster.port
            ),
        )
        .await;
    assert!(!err.contains("Wrong-Horse-9902"), "{err}");
    assert!(!err.contains("Correct-Horse-4417"), "{err}");
    // The right password works (a dry run reads the source and creates nothing).
    let right = cluster.url("localhost", "prod", "");
    let (code, out, err) = bad.run(
        &config(&right, &harness::admin_url(), ""),
        &["refresh", "--dry-run"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!format!("{out}{err}").contains("Correct-Horse-4417"));
}

// ----- Fuzzing: never a panic, only errors -----

/// A valid restage.yaml using most sections, with literal values only (no `cmd:`/`file:`,
/// so mutations never run a command or read a file).
const VALID_CONFIG: &str = r#"source:
  url: postgres://app:pw@db.internal:5432/prod?sslmode=require
target:
  url: "host=staging.internal user=admin dbname=postgres sslmode=verify-full sslrootcert=/etc/ca.pem"
  database: app
  keep: 2
  grants: [qa_readonly, "dev team"]
jobs: 4
secret: ${RESTAGE_FUZZ_SECRET:-fuzz-secret-0123456789abcdef}
rules: rules/
strict: pii
locale: en
sample:
  max_storage: 2GiB
  max_key_memory: 512MB
  dangling: set_null
  tables:
    public.users: { percent: 10 }
    public.events: { since_days: 30, column: created_at }
    public.audit_log: { rows: 0 }
    public.page_views: { max_rows: 100000 }
  foreign_keys:
    public.orders.user_id: { dangling: drop }
search:
  refresh_materialized_views: true
  reindex: [public.users_search_idx]
  unruled_tsvector: warn
  tsvector:
    - { table: public.users, column: search, expression: "to_tsvector('simple', first_name)" }
cache:
  url: redis://:pw@127.0.0.1:6379/0
  required: false
  flush: ["user:", "session:"]
  warm:
    - query: SELECT id, email FROM users ORDER BY id LIMIT 10
      key: "user:{id}"
      value: json
      ttl: 1h30m
health:
  interval: 10s
  checks:
    - { name: db, kind: postgres, url: "postgres://h/app", critical: true }
    - { name: api, kind: http, url: http://127.0.0.1:3000/health, expect: 200, timeout: 2s }
"#;

const VALID_RULES: &str = r#"tables:
  public.users:
    email: { transform: email, unique: true }
    first_name: first_name
    ssn: hash
    birth_date: { transform: date_shift, days: 30 }
    notes: { transform: regex_replace, pattern: '\d{3}-\d{2}-\d{4}', with: "XXX-XX-XXXX" }
    profile: { transform: json, paths: { "$.email": email, "$.address.street": street_address } }
    "*": keep
  orders:
    credit_card: { transform: mask, keep_last: 4 }
"#;

/// Text that looks like YAML: keys, indentation, flow collections, quotes, anchors, values
/// restage interprets (`${`, sizes, durations), and arbitrary characters.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: ".to_string()),
        Just("? ".to_string()),
        Just("!!str ".to_string()),
        Just("---\n".to_string()),
        Just("${".to_string()),
        Just("source".to_string()),
        Just("target".to_string()),
        Just("url".to_string()),
        Just("database".to_string()),
        Just("sample".to_string()),
        Just("tables".to_string()),
        Just("cache".to_string()),
        Just("warm".to_string()),
        Just("search".to_string()),
        Just("tsvector".to_string()),
        Just("health".to_string()),
        Just("checks".to_string()),
        Just("2GiB".to_string()),
        Just("1h30m".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        "[a-z_.]{1,8}",
        "[0-9]{1,20}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// One edit of a text: delete a span, insert a token, duplicate, drop or swap lines,
/// re-indent a line.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    DropLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), yamlish()).prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), 1usize..5).prop_map(|(a, n)| Edit::Indent(a, n)),
        any::<usize>().prop_map(Edit::Dedent),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let mut lines: Vec<String> = chars
            .iter()
            .collect::<String>()
            .split('\n')
            .map(str::to_string)
            .collect();
        let n = lines.len().max(1);
        match e {
            Edit::Delete(a, len) => {
                if !chars.is_empty() {
                    let start = a % chars.len();
                    let end = (start + len).min(chars.len());
                    chars.drain(start..end);
                }
                continue;
            }
            Edit::Insert(a, s) => {
                let at = a % (chars.len() + 1);
                chars.splice(at..at, s.chars());
                continue;
            }
            Edit::DuplicateLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::DropLine(i) => {
                lines.remove(i % n);
            }
            Edit::SwapLines(i, j) => lines.swap(i % n, j % n),
            Edit::Indent(i, k) => lines[i % n].insert_str(0, &" ".repeat(*k)),
            Edit::Dedent(i) => {
                let l = &mut lines[i % n];
                let trimmed = l.trim_start().to_string();
                *l = trimmed;
            }
        }
        chars = lines.join("\n").chars().collect();
    }
    chars.into_iter().collect()
}

/// Loads a config and, when it loads, asks it for everything a refresh resolves. Any
/// outcome but a panic is fine.
fn exercise_config(text: &str) {
    let path = Path::new("fuzz/restage.yaml");
    let Ok(config) = restage::config::Config::from_text(text, path) else {
        return;
    };
    // Never run commands or read files from fuzzed text.
    if text.contains("cmd:") || text.contains("file:") {
        return;
    }
    let _ = config.source("refresh");
    let _ = config.target("refresh");
    let _ = config.secret("refresh");
    let _ = config.cache_url("warm");
    let _ = config.jobs();
    let _ = config.strictness();
    let _ = config.locale();
    let _ = config.rules_path();
    let _ = restage::refresh::Settings::from_config(&config, "refresh");
    let _ = restage::refresh::CacheSettings::from_config(&config, "warm");
    let _ = format!("{config:?}");
}

fn exercise_rules(text: &str) {
    let mut set = restage::rules::RuleSet::default();
    let mut errors = Vec::new();
    set.add_file(text, Path::new("fuzz/rules.yaml"), &mut errors);
    let _ = format!("{set:?}");
}

#[test]
fn the_valid_inputs_load() {
    let config = restage::config::Config::from_text(VALID_CONFIG, Path::new("restage.yaml"))
        .expect("VALID_CONFIG loads");
    restage::refresh::Settings::from_config(&config, "refresh").expect("and resolves");
    let mut set = restage::rules::RuleSet::default();
    let mut errors = Vec::new();
    set.add_file(VALID_RULES, Path::new("rules.yaml"), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}

/// Deeply nested input is an error, not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    for open in ["[", "{", "- "] {
        let text = format!("source: {}", open.repeat(20_000));
        assert!(
            restage::config::Config::from_text(&text, Path::new("deep.yaml")).is_err(),
            "{open}"
        );
        exercise_rules(&format!("tables: {}", open.repeat(20_000)));
        let _ = restage::yaml::KeyIndex::parse(&text, Path::new("deep.yaml"));
    }
}

// Case counts: 3,000 + 3,000 config cases, 2,000 + 2,000 rules cases, 3,000 row-stage cases.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn config_loader_never_panics_on_yamlish_text(text in yamlish()) {
        exercise_config(&text);
        let _ = restage::yaml::KeyIndex::parse(&text, Path::new("x.yaml"));
    }

    #[test]
    fn config_loader_never_panics_on_mutated_valid_configs(
        edits in prop::collection::vec(edit(), 1..5)
    ) {
        exercise_config(&apply(VALID_CONFIG, &edits));
    }

    #[test]
    fn row_stage_never_panics_on_arbitrary_copy_data(
        input in prop::collection::vec(
            prop_oneof![Just(b'\t'), Just(b'\n'), Just(b'\\'), Just(b'N'), Just(b'x'), any::<u8>()],
            0..512,
        ),
        columns in 1usize..5,
        ruled in any::<prop::sample::Index>(),
    ) {
        use restage::refresh::rows::{ColumnAction, RowPlan, process_batch};
        let ruled = ruled.index(columns);
        let plan = RowPlan {
            table: restage::catalog::QualifiedName::new("public", "fuzz"),
            columns: (0..columns)
                .map(|i| {
                    if i == ruled {
                        ColumnAction::Transform {
                            column: format!("c{i}"),
                            transform: restage::refresh::reindex::placeholder(i % 2 == 0),
                        }
                    } else {
                        ColumnAction::Pass
                    }
                })
                .collect(),
            filter: None,
            encoding: Default::default(),
            check: None,
        };
        match process_batch(&plan, &input) {
            Ok(out) => prop_assert!(out.rows_out <= out.rows_in),
            Err(e) => prop_assert!(e.to_string().starts_with("public.fuzz")),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rules_loader_never_panics_on_yamlish_text(text in yamlish()) {
        exercise_rules(&text);
    }

    #[test]
    fn rules_loader_never_panics_on_mutated_valid_rules(
        edits in prop::collection::vec(edit(), 1..5)
    ) {
        exercise_rules(&apply(VALID_RULES, &edits));
    }
}
