//! Generations, the run lock, rollback, retention and the exit codes after the swap
//! (issue 12): rollback points are never lost, a database restage did not build is never
//! dropped, one command at a time per staging database on the whole server, no wait without
//! an end, and exit codes that say what state staging is in.
//!
//! Every case runs the real binary against the real PostgreSQL (and Redis), and checks the
//! server itself (`pg_database`, oids, data), not only what restage prints.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, Setup};

const SCHEMA: &str =
    "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t VALUES (1, 'v0');";

/// `target.keep` of the setup's config.
fn set_keep(setup: &Setup, keep: u32) {
    let yaml = std::fs::read_to_string(setup.config_path()).expect("config");
    let line = yaml
        .lines()
        .find(|l| l.starts_with("  keep: "))
        .expect("a keep line")
        .to_string();
    std::fs::write(
        setup.config_path(),
        yaml.replace(&line, &format!("  keep: {keep}")),
    )
    .expect("config written");
}

/// Adds lines under `target:`.
fn add_to_target(setup: &Setup, lines: &str) {
    let yaml = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        yaml.replacen("  keep: ", &format!("{lines}  keep: "), 1),
    )
    .expect("config written");
}

fn ok(run: (i32, String, String), what: &str) -> String {
    let (code, out, err) = run;
    assert_eq!(code, 0, "{what}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// `restage generations --json` with `config`.
fn listed_with(config: &std::path::Path) -> Vec<Value> {
    let run = harness::restage()
        .config(config)
        .args(["--json", "generations"])
        .run();
    assert_eq!(run.code, 0, "generations\n{}\n{}", run.stdout, run.stderr);
    run.json().as_array().expect("a list").clone()
}

fn listed(setup: &Setup) -> Vec<Value> {
    listed_with(&setup.config_path())
}

/// The names listed in `state`.
fn in_state(list: &[Value], state: &str) -> Vec<String> {
    list.iter()
        .filter(|d| d["state"] == state)
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {list:#?}"))
}

async fn oid_of(name: &str) -> Option<u32> {
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .query_opt("SELECT oid FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("pg_database")
        .map(|r| r.get(0))
}

async fn exists(name: &str) -> bool {
    oid_of(name).await.is_some()
}

async fn comment_of(name: &str) -> Option<String> {
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("the database")
        .get(0)
}

/// A database made by hand (an operator's), with `sql` run in it.
async fn create_by_hand(name: &str, sql: &str) {
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
        .await
        .expect("create by hand");
    if !sql.is_empty() {
        harness::connect(&harness::url_for(name))
            .await
            .batch_execute(sql)
            .await
            .expect("fill by hand");
    }
}

async fn live_value(setup: &Setup) -> String {
    harness::scalar(&setup.staging().await, "SELECT v FROM t").await
}

async fn set_value(setup: &Setup, v: &str) {
    setup
        .source
        .execute(&format!("UPDATE t SET v = '{v}'"))
        .await;
}

/// The generation name of the live database (what it will be called when it retires).
fn live_generation_name(list: &[Value], staging: &str) -> String {
    entry(list, staging)["generation_name"]
        .as_str()
        .expect("the live database is restage's")
        .to_string()
}

/// Issue 12: a database restage did not build is never dropped. The first refresh onto it
/// refuses (exit 2, and validate refuses too); with `--adopt` it is kept as a pinned
/// generation — same oid, same data — even with `keep: 0`, in that run and later ones,
/// until it is unpinned.
#[tokio::test]
async fn a_database_restage_did_not_build_is_refused_then_adopted_pinned() {
    let setup = Setup::new("adopt", SCHEMA, "strict: off").await;
    set_keep(&setup, 0);
    create_by_hand(
        &setup.staging,
        "CREATE TABLE precious (id int); INSERT INTO precious VALUES (42);",
    )
    .await;
    let oid = oid_of(&setup.staging).await;

    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 2, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.contains(&format!(
            "a database named {} exists and restage did not build it",
            setup.staging
        )) && line.contains("--adopt")
            && line.ends_with("(nothing was changed)"),
        "{line}"
    );
    assert_eq!(oid_of(&setup.staging).await, oid, "untouched");
    assert!(
        harness::databases_like(&harness::generations_prefix(&setup.staging))
            .await
            .is_empty(),
        "nothing built"
    );
    assert!(
        !exists(&restage::refresh::lock::control_database(&setup.staging)).await,
        "a refused first run leaves no control database behind"
    );
    if let Err(e) = setup.validate_refuses() {
        panic!("{e}");
    }

    let report: Value =
        serde_json::from_str(&ok(setup.run(&["--json", "refresh", "--adopt"]), "adopt"))
            .expect("report");
    assert_eq!(report["swap"]["adopted"], true, "{report:#}");
    let adopted = report["swap"]["retired_as"]
        .as_str()
        .expect("retired as a generation")
        .to_string();
    assert_eq!(oid_of(&adopted).await, oid, "the same database, renamed");
    assert!(report["generations_dropped"].as_array().unwrap().is_empty());
    let list = listed(&setup);
    let e = entry(&list, &adopted);
    assert_eq!(e["state"], "generation");
    assert_eq!(e["origin"], "adopted");
    assert_eq!(e["pinned"], true);

    // keep: 0, later runs: still there, still pinned.
    ok(setup.run(&["refresh"]), "second refresh");
    ok(setup.run(&["refresh"]), "third refresh");
    assert_eq!(oid_of(&adopted).await, oid);
    let list = listed(&setup);
    assert_eq!(in_state(&list, "generation"), vec![adopted.clone()]);

    // Unpinned, it is a generation like any other: keep 0 drops it.
    ok(setup.run(&["generations", "--unpin", &adopted]), "unpin");
    ok(setup.run(&["refresh"]), "refresh after unpin");
    assert!(!exists(&adopted).await, "dropped once unpinned");
}

/// `target.adopt: true` in the file adopts as `--adopt` does; the adopted database keeps
/// its data (connected to after a rollback).
#[tokio::test]
async fn target_adopt_in_the_config_adopts_and_rollback_brings_it_back() {
    let setup = Setup::new("adoptcfg", SCHEMA, "strict: off").await;
    add_to_target(&setup, "  adopt: true\n");
    create_by_hand(
        &setup.staging,
        "CREATE TABLE precious (id int); INSERT INTO precious VALUES (7);",
    )
    .await;
    ok(setup.run(&["refresh"]), "refresh with target.adopt");
    assert_eq!(live_value(&setup).await, "v0");
    ok(setup.run(&["rollback"]), "rollback to the adopted database");
    let n: i32 = harness::scalar(&setup.staging().await, "SELECT id FROM precious").await;
    assert_eq!(n, 7);
}

/// Issue 12: an operator's `COMMENT ON DATABASE` on a generation (or the live one) neither
/// removes its protection nor makes it a leftover; restage leaves the comment as it is.
#[tokio::test]
async fn an_operators_comment_changes_nothing_and_is_kept() {
    let setup = Setup::new("comment", SCHEMA, "strict: off").await;
    set_keep(&setup, 2);
    ok(setup.run(&["refresh"]), "first");
    set_value(&setup, "v1").await;
    ok(setup.run(&["refresh"]), "second");
    let list = listed(&setup);
    let first = in_state(&list, "generation");
    assert_eq!(first.len(), 1, "{list:#?}");
    let first = first[0].clone();
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{first}\" IS 'known good'; COMMENT ON DATABASE \"{}\" IS 'what QA uses'",
            setup.staging
        ))
        .await
        .unwrap();
    set_value(&setup, "v2").await;
    let report: Value =
        serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), "third")).unwrap();
    assert!(
        report["leftovers_removed"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert!(exists(&first).await, "the commented generation is kept");
    assert_eq!(comment_of(&first).await.as_deref(), Some("known good"));
    let list = listed(&setup);
    assert_eq!(entry(&list, &first)["state"], "generation");
    // The live one retired with its comment, which restage did not touch either.
    let retired = report["swap"]["retired_as"].as_str().unwrap().to_string();
    assert_eq!(comment_of(&retired).await.as_deref(), Some("what QA uses"));

    ok(setup.run(&["rollback", "--to", &first]), "rollback to it");
    assert_eq!(live_value(&setup).await, "v0");
    assert_eq!(
        comment_of(&setup.staging).await.as_deref(),
        Some("known good")
    );
}

/// Issue 12: back-to-back refreshes of a small database never collide on a name, never
/// fail, and never drop the generation they keep.
#[tokio::test]
async fn back_to_back_refreshes_never_collide() {
    let setup = Setup::new("b2b", SCHEMA, "strict: off").await;
    set_keep(&setup, 2);
    let mut built = BTreeSet::new();
    for i in 1..=8 {
        set_value(&setup, &format!("v{i}")).await;
        let report: Value =
            serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), "refresh")).unwrap();
        let name = report["built"].as_str().unwrap().to_string();
        assert!(built.insert(name.clone()), "{name} built twice");
    }
    let list = listed(&setup);
    assert_eq!(in_state(&list, "live"), vec![setup.staging.clone()]);
    let kept = in_state(&list, "generation");
    assert_eq!(kept.len(), 2, "{list:#?}");
    for name in &kept {
        assert!(built.contains(name) && exists(name).await, "{name}");
    }
    assert_eq!(live_value(&setup).await, "v8");
    ok(setup.run(&["rollback", "--to", &kept[1]]), "rollback");
    assert_eq!(live_value(&setup).await, "v6");
}

/// Issue 12: a long `target.database` (here 54 bytes) gets shortened generation names that
/// fit in 63 bytes and never collide, and every message names a database that exists.
#[tokio::test]
async fn a_long_database_name_gets_names_that_fit_and_never_collide() {
    let mut setup = Setup::new("longname", SCHEMA, "strict: off").await;
    let long = format!("{}_staging_database_with_a_long_name", setup.source.name);
    setup.staging = long.chars().take(54).collect();
    setup.write_config("strict: off");
    let check_names = |list: &[Value]| {
        for d in list {
            let name = d["name"].as_str().unwrap();
            assert!(name.len() <= 63, "{name}");
        }
    };

    let first: Value =
        serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), "first")).unwrap();
    let a = first["built"].as_str().unwrap().to_string();
    assert!(a.len() <= 63, "{a}");
    set_value(&setup, "v1").await;
    ok(setup.run(&["refresh"]), "second");
    let list = listed(&setup);
    check_names(&list);
    for d in &list {
        assert!(exists(d["name"].as_str().unwrap()).await, "{d}");
    }
    let out = ok(setup.run(&["rollback"]), "rollback");
    // "rolled back: A is now <long>; the previous live database is kept as B"
    let kept = out
        .trim()
        .rsplit(" kept as ")
        .next()
        .expect("the retired name")
        .to_string();
    assert!(
        out.contains(&format!("rolled back: {a} is now {}", setup.staging)),
        "{out}"
    );
    assert!(
        exists(&kept).await,
        "the message names a real database: {out}"
    );
    assert_eq!(live_value(&setup).await, "v0");
    set_value(&setup, "v2").await;
    ok(setup.run(&["refresh"]), "third");
    let list = listed(&setup);
    check_names(&list);
    // keep 1: the database the last refresh replaced (A, rolled back to) is the one kept.
    assert_eq!(in_state(&list, "generation"), vec![a.clone()]);
    assert!(!exists(&kept).await);
    harness::drop_restage_family(&setup.staging).await;
}

/// Issue 12: a run drops only what restage built. A generation renamed by hand, and a
/// database an operator made with restage's naming, survive `keep: 0`, listed as unmanaged;
/// the renaming is said once.
#[tokio::test]
async fn a_run_drops_only_databases_restage_built() {
    let setup = Setup::new("onlyours", SCHEMA, "strict: off").await;
    ok(setup.run(&["refresh"]), "first");
    ok(setup.run(&["refresh"]), "second");
    let gens = in_state(&listed(&setup), "generation");
    assert_eq!(gens.len(), 1);
    let prefix = harness::generations_prefix(&setup.staging);
    let renamed = format!("{prefix}kept_by_hand");
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" RENAME TO \"{renamed}\"",
            gens[0]
        ))
        .await
        .unwrap();
    let imitation = format!("{prefix}20200101T000000_000000Z");
    create_by_hand(&imitation, "CREATE TABLE mine (id int);").await;

    set_keep(&setup, 0);
    let report: Value =
        serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), "keep 0")).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains(&format!("was renamed to {renamed} by hand")),
        "{warnings}"
    );
    ok(setup.run(&["refresh"]), "keep 0 again");
    assert!(exists(&renamed).await);
    assert!(exists(&imitation).await);
    let list = listed(&setup);
    let mut unmanaged = in_state(&list, "unmanaged");
    unmanaged.sort();
    let mut expected = vec![renamed.clone(), imitation.clone()];
    expected.sort();
    assert_eq!(unmanaged, expected);
    assert!(in_state(&list, "generation").is_empty(), "keep 0");
    // Neither can be rolled back to or pinned.
    let (code, _, err) = setup.run(&["rollback", "--to", &imitation]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = setup.run(&["generations", "--pin", &imitation]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a database restage built"), "{err}");
}

/// Issue 12: retention and rollback follow what was live, most recent first. keep 1: G1, G2,
/// G3; roll back to G2; refresh G4: G2 (what G4 replaced) is kept, G3 dropped, and the next
/// rollback goes to G2.
#[tokio::test]
async fn rollback_then_refresh_keeps_what_was_live() {
    let setup = Setup::new("order", SCHEMA, "strict: off").await;
    let mut gen_names = Vec::new();
    for v in ["g1", "g2", "g3"] {
        set_value(&setup, v).await;
        let report: Value =
            serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), v)).unwrap();
        gen_names.push(report["built"].as_str().unwrap().to_string());
    }
    let (g2, g3) = (gen_names[1].clone(), gen_names[2].clone());
    ok(setup.run(&["rollback"]), "rollback");
    assert_eq!(live_value(&setup).await, "g2");
    let list = listed(&setup);
    assert_eq!(live_generation_name(&list, &setup.staging), g2);
    assert_eq!(in_state(&list, "generation"), vec![g3.clone()]);

    set_value(&setup, "g4").await;
    ok(setup.run(&["refresh"]), "g4");
    let list = listed(&setup);
    assert_eq!(in_state(&list, "generation"), vec![g2.clone()], "{list:#?}");
    assert!(!exists(&g3).await, "the bad one went");
    let g2_entry = entry(&list, &g2);
    assert!(g2_entry["live_from"].is_string() && g2_entry["live_to"].is_string());
    ok(setup.run(&["rollback"]), "rollback again");
    assert_eq!(live_value(&setup).await, "g2");
}

/// Issue 12: pinned generations are never dropped by retention and do not count toward
/// `keep`; one can be rolled back to, and stays pinned when it retires again; the live
/// database can be pinned by its name; unknown names are exit 2.
#[tokio::test]
async fn pinned_generations_survive_keep_0_and_do_not_count() {
    let setup = Setup::new("pins", SCHEMA, "strict: off").await;
    ok(setup.run(&["refresh"]), "first");
    set_value(&setup, "v1").await;
    ok(setup.run(&["refresh"]), "second");
    let first = in_state(&listed(&setup), "generation")[0].clone();
    let out = ok(setup.run(&["generations", "--pin", &first]), "pin");
    assert!(out.contains(&format!("pinned {first}")), "{out}");
    let (code, _, err) = setup.run(&["generations", "--pin", "no_such_generation"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no generation of"), "{err}");

    set_keep(&setup, 1);
    for v in ["v2", "v3"] {
        set_value(&setup, v).await;
        ok(setup.run(&["refresh"]), v);
    }
    let list = listed(&setup);
    let gens = in_state(&list, "generation");
    assert_eq!(gens.len(), 2, "the pinned one and one kept: {list:#?}");
    assert!(gens.contains(&first));
    set_keep(&setup, 0);
    ok(setup.run(&["refresh"]), "keep 0");
    assert_eq!(in_state(&listed(&setup), "generation"), vec![first.clone()]);

    // Rolled back to, pinned and live; retired again, still pinned and kept.
    ok(
        setup.run(&["rollback", "--to", &first]),
        "rollback to the pinned",
    );
    assert_eq!(live_value(&setup).await, "v0");
    let list = listed(&setup);
    assert_eq!(entry(&list, &setup.staging)["pinned"], true);
    ok(setup.run(&["refresh"]), "refresh over the pinned live one");
    let list = listed(&setup);
    assert_eq!(in_state(&list, "generation"), vec![first.clone()]);
    assert_eq!(entry(&list, &first)["pinned"], true);

    // The live database, pinned by its name.
    ok(
        setup.run(&["generations", "--pin", &setup.staging]),
        "pin the live one",
    );
    let live_gen = live_generation_name(&listed(&setup), &setup.staging);
    ok(setup.run(&["refresh"]), "refresh");
    let gens = in_state(&listed(&setup), "generation");
    assert!(
        gens.contains(&live_gen) && gens.contains(&first),
        "{gens:?}"
    );
}

/// Issue 12: the run lock covers the staging database on the whole server: a second
/// configuration that reaches it through another maintenance database waits for nothing and
/// changes nothing — refresh, rollback and pin exit 4 naming the holder — while listing
/// still works.
#[tokio::test]
async fn the_lock_covers_the_staging_database_whatever_the_maintenance_database() {
    let setup = Setup::new("lockscope", SCHEMA, "strict: off").await;
    ok(setup.run(&["refresh"]), "first");
    ok(setup.run(&["refresh"]), "second");
    let maintenance = harness::TestDb::create("lockmaint").await;
    let other = setup.dir.path().join("other.yaml");
    let yaml = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        &other,
        yaml.replace(&harness::admin_url(), &maintenance.url()),
    )
    .unwrap();
    assert_ne!(yaml, std::fs::read_to_string(&other).unwrap());
    let generation = in_state(&listed(&setup), "generation")[0].clone();

    let mut first = setup.spawn(&["refresh"], &[("RESTAGE_TEST_PAUSE_AT", "data")]);
    first.wait_paused("data");
    let before = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    for args in [
        &["refresh"][..],
        &["rollback"][..],
        &["generations", "--pin", &generation][..],
    ] {
        let run = harness::restage().config(&other).args(args).run();
        assert_eq!(run.code, 4, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        let line = last_line(&run.stderr);
        assert!(
            line.contains("another restage command holds the lock")
                && line.contains("refresh, server pid ")
                && line.contains("application_name restage refresh ")
                && line.contains(" since "),
            "{args:?}: {line}"
        );
        assert!(line.ends_with("nothing was changed"), "{line}");
    }
    assert_eq!(
        harness::databases_like(&harness::generations_prefix(&setup.staging)).await,
        before,
        "the other configuration created and dropped nothing"
    );
    let list = listed_with(&other);
    assert_eq!(in_state(&list, "building").len(), 1, "{list:#?}");
    assert_eq!(entry(&list, &generation)["pinned"], false);
    first.resume();
    let (code, out, err) = first.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A session holding an uncommitted `GRANT CONNECT ON DATABASE <live>`: the lock the swap's
/// first step needs.
async fn hold_the_live_database(setup: &Setup) -> (tokio_postgres::Client, i32) {
    let blocker = harness::connect(&harness::url_for(&setup.source.name)).await;
    let pid: i32 = harness::scalar(&blocker, "SELECT pg_backend_pid()").await;
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE \"{}\" TO PUBLIC",
            setup.staging
        ))
        .await
        .unwrap();
    (blocker, pid)
}

/// The live database serves `value` and accepts connections; nothing this run built is
/// left.
async fn staging_unchanged(setup: &Setup, value: &str, before: &[String]) {
    assert_eq!(live_value(setup).await, value);
    assert_eq!(
        harness::databases_like(&harness::generations_prefix(&setup.staging)).await,
        before,
        "the database the run built was removed"
    );
    let list = listed(setup);
    assert!(entry(&list, &setup.staging)["allow_connections"] == true);
    assert!(in_state(&list, "building").is_empty() && in_state(&list, "leftover").is_empty());
}

/// Issue 12: the swap waits at most `lock_timeout`, says what it waits for and who blocks it
/// (an uncommitted GRANT in another session), then gives up with staging as it was.
#[tokio::test]
async fn the_swap_waits_a_bounded_time_and_names_who_blocks_it() {
    let setup = Setup::new("swapwait", SCHEMA, "strict: off\nlock_timeout: 3s").await;
    ok(setup.run(&["refresh"]), "first");
    set_value(&setup, "v1").await;
    let before = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    let (blocker, blocker_pid) = hold_the_live_database(&setup).await;
    let started = Instant::now();
    let (code, out, err) = setup.run(&["refresh"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "swap: waiting for a lock on database {} (to refuse new connections), blocked by server pid {blocker_pid} ("
        , setup.staging)),
        "{err}"
    );
    assert!(
        err.contains("idle in transaction") && err.contains("query GRANT CONNECT ON DATABASE)"),
        "{err}"
    );
    let line = last_line(&err);
    assert!(
        line.contains("gave up after 3s (lock_timeout)")
            && line.contains(&format!("blocked by server pid {blocker_pid}"))
            && line.ends_with("staging is unchanged; the database this run built was removed"),
        "{line}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    staging_unchanged(&setup, "v0", &before).await;
    ok(setup.run(&["refresh"]), "once the blocker is gone");
    assert_eq!(live_value(&setup).await, "v1");
}

/// Issue 12: a SIGTERM while the swap waits ends the run at once, staging unchanged.
#[tokio::test]
async fn sigterm_while_the_swap_waits_ends_the_run() {
    let setup = Setup::new("swapterm", SCHEMA, "strict: off\nlock_timeout: 5m").await;
    ok(setup.run(&["refresh"]), "first");
    set_value(&setup, "v1").await;
    let before = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    let (blocker, _) = hold_the_live_database(&setup).await;
    let mut child = setup.restage().arg("refresh").spawn();
    child.wait_for("swap: waiting for", Duration::from_secs(180));
    let signalled = Instant::now();
    child.signal(libc::SIGTERM);
    let (code, out, err) = child.finish(Duration::from_secs(120));
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "ended at once"
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        last_line(&err),
        "restage: error: interrupted by SIGTERM: the database this run built was removed, staging is unchanged"
    );
    // The cancelled statement does not wait on in the server.
    let admin = harness::connect(&harness::admin_url()).await;
    let waiting: i64 = harness::scalar(
        &admin,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER DATABASE%ALLOW_CONNECTIONS%'",
    )
    .await;
    assert_eq!(waiting, 0);
    blocker.batch_execute("ROLLBACK").await.unwrap();
    staging_unchanged(&setup, "v0", &before).await;
}

/// Issue 12: a `--report` path that cannot be written is exit 2 before anything is built; a
/// report that fails only after the swap is exit 5, "live, but", in `--json` too.
#[tokio::test]
async fn the_report_path_is_checked_first_and_a_late_failure_is_exit_5() {
    let setup = Setup::new("report", SCHEMA, "strict: off").await;
    ok(setup.run(&["refresh"]), "first");
    set_value(&setup, "v1").await;
    let before = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    let missing = setup.dir.path().join("no/such/dir/report.json");
    let (code, out, err) = setup.run(&["refresh", "--report", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        last_line(&err).starts_with(&format!(
            "restage: error: --report {}: cannot write it: ",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(
        harness::databases_like(&harness::generations_prefix(&setup.staging)).await,
        before
    );
    assert_eq!(live_value(&setup).await, "v0");

    // /dev/full opens, then refuses every write: the failure comes after the swap.
    let (code, out, err) = setup.run(&["--json", "refresh", "--report", "/dev/full"]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert_eq!(live_value(&setup).await, "v1", "staging is live");
    let expected = format!(
        "staging database {} is live, but the report could not be written to /dev/full: ",
        setup.staging
    );
    assert!(
        last_line(&err).starts_with(&format!("restage: {expected}")),
        "{err}"
    );
    let report: Value = serde_json::from_str(&out).expect("the report on stdout");
    assert_eq!(report["exit_code"], 5);
    assert!(
        report["outcome"].as_str().unwrap().starts_with(&expected),
        "{report:#}"
    );
}

/// Issue 12: `cache.flush: [""]` (which would flush every key) is a configuration error,
/// exit 2, before anything is built — for refresh and for warm.
#[tokio::test]
async fn an_empty_flush_prefix_is_refused_before_anything() {
    let setup = Setup::new("flushempty", SCHEMA, "strict: off").await;
    ok(setup.run(&["refresh"]), "first");
    let before = harness::databases_like(&harness::generations_prefix(&setup.staging)).await;
    setup.write_config(&format!(
        "strict: off\ncache:\n  url: {}\n  flush: [\"\"]\n",
        harness::redis_url()
    ));
    for command in ["refresh", "warm"] {
        let (code, out, err) = setup.run(&[command]);
        assert_eq!(code, 2, "{command}\n{out}\n{err}");
        assert!(
            last_line(&err).ends_with(
                "cache.flush.0: an empty prefix would remove every key of the Redis database; name the prefixes to remove"
            ),
            "{err}"
        );
    }
    assert_eq!(
        harness::databases_like(&harness::generations_prefix(&setup.staging)).await,
        before
    );
}

/// Issue 12: a key under a flush prefix that is not UTF-8 is flushed like any other; the
/// flush does not stop at it.
#[tokio::test]
async fn keys_that_are_not_utf8_are_flushed() {
    let setup = Setup::new("flushbytes", SCHEMA, "strict: off").await;
    let prefix = harness::redis_prefix("flushbytes");
    setup.write_config(&format!(
        "strict: off\ncache:\n  url: {}\n  flush: [\"{prefix}\"]\n  warm:\n    - {{ query: \"SELECT id, v FROM t\", key: \"{prefix}t:{{id}}\", value: v }}\n",
        harness::redis_url()
    ));
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut bad = prefix.as_bytes().to_vec();
    bad.extend_from_slice(b"\xff\xfe\x00stale");
    let mut plain = prefix.as_bytes().to_vec();
    plain.extend_from_slice(b"stale");
    for key in [&bad, &plain] {
        let _: () = redis::cmd("SET")
            .arg(key.as_slice())
            .arg("old")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let report: Value =
        serde_json::from_str(&ok(setup.run(&["--json", "refresh"]), "refresh")).unwrap();
    assert_eq!(report["exit_code"], 0, "{report:#}");
    assert_eq!(report["cache"]["flushed_keys"], 2, "{report:#}");
    for key in [&bad, &plain] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(key.as_slice())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "flushed");
    }
    let v: String = redis::cmd("GET")
        .arg(format!("{prefix}t:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "v0");
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}t:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Databases an earlier restage version built (marked in `COMMENT ON DATABASE`) are
/// imported when the registry is made: no `--adopt` needed, and the rollback point is kept.
#[tokio::test]
async fn databases_an_earlier_version_marked_are_imported() {
    let setup = Setup::new("legacy", SCHEMA, "strict: off").await;
    create_by_hand(
        &setup.staging,
        "CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'old live');",
    )
    .await;
    let old_generation = format!("{}__restage_20250101T000000Z", setup.staging);
    create_by_hand(&old_generation, "").await;
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{}\" IS 'restage:live:20250102T000000Z';
             COMMENT ON DATABASE \"{old_generation}\" IS 'restage:generation:20250101T000000Z';
             ALTER DATABASE \"{old_generation}\" ALLOW_CONNECTIONS false",
            setup.staging
        ))
        .await
        .unwrap();
    set_keep(&setup, 2);
    ok(setup.run(&["refresh"]), "first refresh of this version");
    let list = listed(&setup);
    let gens = in_state(&list, "generation");
    assert_eq!(
        gens,
        vec![
            format!("{}__restage_20250102T000000Z", setup.staging),
            old_generation.clone()
        ],
        "the old live one (most recently live) first: {list:#?}"
    );
    assert_eq!(entry(&list, &old_generation)["origin"], "imported");
    ok(setup.run(&["rollback"]), "rollback");
    assert_eq!(live_value(&setup).await, "old live");
}

// ----- The stress test (issue 12, "Must show"). -----

/// One command run by the stress test, and what it swapped.
#[derive(Debug, Clone)]
struct Op {
    thread: usize,
    command: &'static str,
    code: i32,
    /// When its swap committed, by the server's clock.
    swapped_at: Option<chrono::DateTime<chrono::Utc>>,
    went_live: Option<String>,
    retired_as: Option<String>,
}

fn swapped_at(swap: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    swap["swapped_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// What docs/operations.md says `restage generations` shows at any moment: exactly one live
/// database; at most one being built (one command at a time); no leftover (no run dies);
/// at most keep + 1 unpinned generations (the extra one only between a swap and its
/// retention); the operator's database, unmanaged, always there.
fn check_listing(list: &[Value], staging: &str, keep: usize, operator: &str) {
    let live: Vec<&Value> = list.iter().filter(|d| d["state"] == "live").collect();
    assert_eq!(live.len(), 1, "{list:#?}");
    assert_eq!(live[0]["name"], staging);
    assert!(
        in_state(list, "building").len() <= 1,
        "two builds at once: {list:#?}"
    );
    assert!(in_state(list, "leftover").is_empty(), "{list:#?}");
    let unpinned = list
        .iter()
        .filter(|d| d["state"] == "generation" && d["pinned"] == false)
        .count();
    assert!(unpinned <= keep + 1, "{list:#?}");
    assert_eq!(entry(list, operator)["state"], "unmanaged");
}

/// Issue 12: 200 back-to-back refreshes of a small database with `keep: 2`, interleaved with
/// rollbacks, from two configurations on two maintenance databases running at once. Every
/// command succeeds or is refused cleanly (exit 0 or 4); the swaps form one chain (each
/// retires what the one before put live: never two at once); `restage generations` always
/// shows what the docs say; a database no run created is never dropped.
#[test]
fn two_configurations_200_refreshes_and_rollbacks_stay_consistent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = rt.block_on(Setup::new("stress", SCHEMA, "strict: off"));
    let maintenance = rt.block_on(harness::TestDb::create("stressmaint"));
    set_keep(&setup, 2);
    let yaml = std::fs::read_to_string(setup.config_path()).unwrap();
    let other = setup.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        yaml.replace(&harness::admin_url(), &maintenance.url()),
    )
    .unwrap();
    let configs = [setup.config_path(), other];
    let operator = format!(
        "{}19990101T000000_000000Z",
        harness::generations_prefix(&setup.staging)
    );
    let started = Instant::now();

    // Two refreshes first (so a rollback always has a generation), then the operator's
    // database that looks like a generation.
    let mut ops = Vec::new();
    for _ in 0..2 {
        let run = harness::restage()
            .config(&configs[0])
            .args(["--json", "refresh"])
            .run();
        assert_eq!(run.code, 0, "{}", run.stderr);
        let report = run.json();
        ops.push(Op {
            thread: 0,
            command: "refresh",
            code: 0,
            swapped_at: swapped_at(&report["swap"]),
            went_live: report["swap"]["went_live"].as_str().map(str::to_string),
            retired_as: report["swap"]["retired_as"].as_str().map(str::to_string),
        });
    }
    rt.block_on(create_by_hand(&operator, ""));
    let operator_oid = rt.block_on(oid_of(&operator));

    const REFRESHES_PER_THREAD: usize = 99;
    let threads: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(thread, config)| {
            let config = config.clone();
            let staging = setup.staging.clone();
            let operator = operator.clone();
            std::thread::spawn(move || {
                let mut ops = Vec::new();
                for i in 0..REFRESHES_PER_THREAD {
                    let mut commands = vec!["refresh"];
                    if i % 5 == 4 {
                        commands.push("rollback");
                    }
                    for command in commands {
                        let run = harness::restage()
                            .config(&config)
                            .args(["--json", command])
                            .run();
                        assert!(
                            run.code == 0 || run.code == 4,
                            "{command} exited {}\n{}\n{}",
                            run.code,
                            run.stdout,
                            run.stderr
                        );
                        let (swapped, went_live, retired_as) = if run.code == 0 {
                            let json = run.json();
                            let swap = if command == "refresh" {
                                json["swap"].clone()
                            } else {
                                json
                            };
                            (
                                swapped_at(&swap),
                                swap["went_live"].as_str().map(str::to_string),
                                swap["retired_as"].as_str().map(str::to_string),
                            )
                        } else {
                            assert!(
                                run.stderr
                                    .contains("another restage command holds the lock"),
                                "{}",
                                run.stderr
                            );
                            (None, None, None)
                        };
                        ops.push(Op {
                            thread,
                            command,
                            code: run.code,
                            swapped_at: swapped,
                            went_live,
                            retired_as,
                        });
                        check_listing(&listed_with(&config), &staging, 2, &operator);
                    }
                }
                ops
            })
        })
        .collect();
    for t in threads {
        ops.extend(t.join().expect("a stress thread"));
    }
    let seconds = started.elapsed().as_secs_f64();

    // The swaps form one chain, in the order they committed.
    let mut done: Vec<&Op> = ops.iter().filter(|o| o.code == 0).collect();
    assert!(done.iter().all(|o| o.swapped_at.is_some()));
    done.sort_by_key(|o| o.swapped_at);
    for pair in done.windows(2) {
        assert_eq!(
            pair[1].retired_as, pair[0].went_live,
            "{:?} did not retire what {:?} put live",
            pair[1], pair[0]
        );
    }
    let refreshes = ops.iter().filter(|o| o.command == "refresh").count();
    assert_eq!(refreshes, 2 + 2 * REFRESHES_PER_THREAD);
    let succeeded = done.iter().filter(|o| o.command == "refresh").count();
    let rolled_back = done.iter().filter(|o| o.command == "rollback").count();
    assert!(
        succeeded >= 20 && rolled_back >= 1,
        "{succeeded} refreshes, {rolled_back} rollbacks"
    );
    for thread in 0..2 {
        assert!(
            done.iter()
                .any(|o| o.thread == thread && o.command == "refresh"),
            "both configurations got to refresh"
        );
    }

    // Quiet now: exactly what the docs say, and the operator's database untouched.
    let list = listed_with(&configs[1]);
    check_listing(&list, &setup.staging, 2, &operator);
    assert_eq!(in_state(&list, "generation").len(), 2, "{list:#?}");
    assert!(in_state(&list, "building").is_empty());
    assert_eq!(rt.block_on(oid_of(&operator)), operator_oid);
    let on_server = rt.block_on(harness::databases_like(&harness::generations_prefix(
        &setup.staging,
    )));
    assert_eq!(
        on_server.len(),
        3,
        "two generations and the operator's: {on_server:?}"
    );
    eprintln!(
        "stress: {refreshes} refreshes ({succeeded} swapped), {} rollbacks ({rolled_back} swapped) in {seconds:.1}s",
        ops.iter().filter(|o| o.command == "rollback").count()
    );
}
