//! QA copies (issue 17, part B): `restage copy NAME` makes a database identical to live
//! staging by `CREATE DATABASE … TEMPLATE`, refusing staging's new connections only for the
//! copy's start (and never leaving them refused: error, SIGINT, SIGKILL), under the run lock;
//! `restage copies prune` drops only expired copies restage made; bad input changes nothing.
//!
//! What the copy does to staging's users (decided, see src/copies/template.rs): sessions
//! open on the live database when the copy starts are ended (a template copy cannot keep
//! them); new connections are refused only until CREATE DATABASE holds the template, then
//! wait for the file copy and start normally.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Setup};

const SCHEMA: &str = "
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, note text);
INSERT INTO users SELECT g, 'user' || g || '@example.com', repeat('n', g % 50) FROM generate_series(1, 2000) g;
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES users, total numeric);
INSERT INTO orders (user_id, total) SELECT 1 + g % 2000, g * 1.5 FROM generate_series(1, 5000) g;
";

const RULES: &str = "tables:\n  public.users:\n    email: { transform: email, unique: true }\n";

async fn refreshed(prefix: &str) -> Setup {
    let setup = Setup::new(prefix, SCHEMA, "strict: off").await;
    setup.write_rules("r.yaml", RULES);
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "refresh\n{out}\n{err}");
    setup
}

fn ok(run: (i32, String, String), what: &str) -> String {
    let (code, out, err) = run;
    assert_eq!(code, 0, "{what}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn json(run: (i32, String, String), what: &str) -> Value {
    let out = ok(run, what);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}\n{out}"))
}

fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

fn listed(setup: &Setup) -> Vec<Value> {
    json(setup.run(&["--json", "copies"]), "copies")
        .as_array()
        .expect("a list")
        .clone()
}

async fn oid_of(name: &str) -> Option<u32> {
    harness::connect(&harness::admin_url())
        .await
        .query_opt(
            "SELECT oid FROM pg_database WHERE datname::text = $1",
            &[&name],
        )
        .await
        .expect("pg_database")
        .map(|r| r.get(0))
}

async fn allows_connections(name: &str) -> bool {
    harness::scalar_with(
        &harness::connect(&harness::admin_url()).await,
        "SELECT datallowconn FROM pg_database WHERE datname::text = $1",
        &[&name],
    )
    .await
}

/// The control database, where the records are.
async fn control(setup: &Setup) -> tokio_postgres::Client {
    let names = restage::refresh::names::Names::of(&setup.staging);
    harness::connect(&harness::url_for(&names.control())).await
}

async fn expire(setup: &Setup, name: &str) {
    control(setup)
        .await
        .execute(
            "UPDATE restage.copies SET expires_at = now() - interval '1 minute' WHERE name = $1",
            &[&name],
        )
        .await
        .expect("expire a copy");
}

/// A copy of live staging holds the same rows table by table, the live database's own
/// settings, CONNECT for `target.grants`, and the owner's database; listed with its expiry.
#[tokio::test]
async fn a_copy_is_the_live_database_table_by_table() {
    let setup = refreshed("cpsame").await;
    let reader = format!("{}_reader", setup.source.name);
    let owner = format!("{}_owner", setup.source.name);
    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{reader}\"; CREATE ROLE \"{owner}\";
             ALTER DATABASE \"{}\" SET work_mem = '7MB'",
            setup.staging
        ))
        .await
        .expect("roles");
    let yaml = std::fs::read_to_string(setup.config_path()).expect("config");
    std::fs::write(
        setup.config_path(),
        yaml.replacen(
            "  keep: ",
            &format!("  grants: [\"{reader}\"]\n  keep: "),
            1,
        ),
    )
    .expect("config");
    let name = format!("{}_qa", setup.staging);
    let made = json(
        setup.run(&["--json", "copy", &name, "--ttl", "8h", "--owner", &owner]),
        "copy",
    );
    assert_eq!(made["name"], name.as_str());
    assert_eq!(made["from"], setup.staging.as_str());
    assert!(made["bytes"].as_i64().unwrap_or(0) > 0, "{made}");
    assert!(made["refused_ms"].is_u64(), "{made}");

    let live = harness::table_checksums(&setup.staging_url()).await;
    let copy = harness::table_checksums(&harness::url_for(&name)).await;
    assert_eq!(live.len(), 2, "{live:?}");
    assert_eq!(copy, live, "the copy holds the live database's rows");

    let settings: Vec<String> = harness::scalar_with(
        &admin,
        "SELECT coalesce(setconfig, '{}') FROM pg_db_role_setting
          WHERE setrole = 0 AND setdatabase = (SELECT oid FROM pg_database WHERE datname::text = $1)",
        &[&name],
    )
    .await;
    assert!(
        settings.contains(&"work_mem=7MB".to_string()),
        "{settings:?}"
    );
    let row = admin
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text, has_database_privilege($2, oid, 'CONNECT')
               FROM pg_database WHERE datname::text = $1",
            &[&name, &reader],
        )
        .await
        .expect("the copy");
    assert_eq!(row.get::<_, String>(0), owner, "the owner owns the copy");
    assert!(
        row.get::<_, bool>(1),
        "target.grants may connect to the copy"
    );
    let in_copy = harness::connect(&harness::url_for(&name)).await;
    let (can_select, can_update): (bool, bool) = {
        let row = in_copy
            .query_one(
                "SELECT has_table_privilege($1, 'public.users', 'SELECT'),
                        has_table_privilege($2, 'public.users', 'UPDATE')",
                &[&reader, &owner],
            )
            .await
            .expect("privileges");
        (row.get(0), row.get(1))
    };
    assert!(can_select, "target.grants can read the copy");
    assert!(can_update, "the owner can write the copy");
    drop(in_copy);

    let list = listed(&setup);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["state"], "ready");
    assert_eq!(list[0]["owner"], owner.as_str());
    assert!(
        list[0]["expires_at"]
            .as_str()
            .is_some_and(|e| e > list[0]["created_at"].as_str().unwrap_or(""))
    );
    let text = ok(setup.run(&["copies"]), "copies");
    assert!(text.contains(&name) && text.contains("ready"), "{text}");

    // Not a generation: `restage generations` does not list it, and a refresh leaves it.
    let generations = json(setup.run(&["--json", "generations"]), "generations");
    assert!(!generations.to_string().contains(&name), "{generations}");
    ok(setup.run(&["refresh"]), "second refresh");
    assert!(
        oid_of(&name).await.is_some(),
        "a refresh never drops a copy"
    );

    // The test's own sessions on the copy (closed above) end on the server a moment after
    // their sockets close; `copies drop` refuses a copy in use, as it should.
    harness::wait_until_no_sessions(&admin, &name).await;
    ok(setup.run(&["copies", "drop", &name]), "drop");
    assert!(oid_of(&name).await.is_none());
    assert!(listed(&setup).is_empty());
    // The roles hold grants on staging's generations: they can be dropped once those are
    // gone (dropping `setup` drops its databases, and returns when they are). Dropped before,
    // the statement failed and the roles were left behind by every run.
    drop(setup);
    admin
        .batch_execute(&format!("DROP ROLE \"{reader}\"; DROP ROLE \"{owner}\""))
        .await
        .expect("the test's roles are dropped");
}

/// Staging's users: a session open when the copy starts is ended; new connections are
/// refused while the copy holds the live database (the testing hook pauses it there) and
/// work again right after; SIGINT there, and SIGKILL, never leave staging refusing them.
#[tokio::test]
async fn staging_refuses_connections_only_for_the_copys_start() {
    let setup = refreshed("cpsess").await;
    let user = harness::connect(&setup.staging_url()).await;
    let before: i64 = harness::scalar(&user, "SELECT count(*) FROM users").await;

    let name = format!("{}_qa", setup.staging);
    let mut copying = setup.spawn(
        &["--json", "copy", &name],
        &[("RESTAGE_TEST_PAUSE_AT", "copy")],
    );
    copying.wait_paused("copy");
    assert!(!allows_connections(&setup.staging).await);
    let refused = tokio_postgres::connect(&setup.staging_url(), tokio_postgres::NoTls).await;
    assert!(
        refused.is_err(),
        "new connections are refused at the copy's start"
    );
    copying.resume();
    let (code, out, err) = copying.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{out}\n{err}");
    let made: Value = serde_json::from_str(&out).expect("json");
    // The test's session, and any autovacuum worker that was on it.
    assert!(made["sessions_ended"].as_u64() >= Some(1), "{made}");
    assert!(allows_connections(&setup.staging).await);
    assert!(
        user.query_one("SELECT 1", &[]).await.is_err(),
        "the session open at the copy's start was ended"
    );
    let again = harness::connect(&setup.staging_url()).await;
    let after: i64 = harness::scalar(&again, "SELECT count(*) FROM users").await;
    assert_eq!(after, before, "a new connection works right after the copy");

    // SIGINT at the same point: no copy, connections back on, exit 1.
    let second = format!("{}_qb", setup.staging);
    let mut interrupted = setup.spawn(&["copy", &second], &[("RESTAGE_TEST_PAUSE_AT", "copy")]);
    interrupted.wait_paused("copy");
    interrupted.signal(libc::SIGINT);
    let (code, out, err) = interrupted.finish(Duration::from_secs(60));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(last_line(&err).contains("interrupted by SIGINT"), "{err}");
    assert!(allows_connections(&setup.staging).await, "{err}");
    assert!(oid_of(&second).await.is_none());
    let names: Vec<Value> = listed(&setup).iter().map(|c| c["name"].clone()).collect();
    assert_eq!(
        names,
        [Value::from(name.as_str())],
        "no record of the interrupted copy"
    );

    // SIGKILL there: the next restage command turns connections back on; prune forgets
    // the dead copy's reservation.
    let third = format!("{}_qc", setup.staging);
    let mut killed = setup.spawn(&["copy", &third], &[("RESTAGE_TEST_PAUSE_AT", "copy")]);
    killed.wait_paused("copy");
    killed.kill();
    assert!(!allows_connections(&setup.staging).await);
    // The killed run's server session ends a moment after the process: until then the lock
    // is its, and the listing only lists.
    let mut list = listed(&setup);
    for _ in 0..50 {
        if allows_connections(&setup.staging).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        list = listed(&setup);
    }
    assert!(
        allows_connections(&setup.staging).await,
        "`restage copies` repaired it"
    );
    let dead = list
        .iter()
        .find(|c| c["name"] == third.as_str())
        .expect("listed");
    assert_eq!(dead["state"], "leftover", "{list:#?}");
    let pruned = json(setup.run(&["--json", "copies", "prune"]), "prune");
    assert_eq!(pruned["kept"], serde_json::json!([name]), "{pruned}");
    assert_eq!(pruned["forgotten"], serde_json::json!([third]), "{pruned}");
    assert_eq!(pruned["dropped"], serde_json::json!([]), "{pruned}");
    assert_eq!(listed(&setup).len(), 1);
    assert!(oid_of(&third).await.is_none());
}

/// Prune drops expired copies restage made and keeps the rest: an unexpired copy, one with a
/// session (reported, dropped by a later prune), a database made by hand with a copy's kind
/// of name, and a database that took the name of a copy dropped by hand.
#[tokio::test]
async fn prune_drops_only_expired_copies_restage_made() {
    let setup = refreshed("cpprune").await;
    let keep = format!("{}_keep", setup.staging);
    let old = format!("{}_old", setup.staging);
    let busy = format!("{}_busy", setup.staging);
    let replaced = format!("{}_replaced", setup.staging);
    let by_hand = format!("{}_old_byhand", setup.staging);
    for (name, ttl) in [
        (&keep, "8h"),
        (&old, "1h"),
        (&busy, "1h"),
        (&replaced, "1h"),
    ] {
        ok(setup.run(&["copy", name, "--ttl", ttl]), "copy");
    }
    let admin = harness::connect(&harness::admin_url()).await;
    for sql in [
        format!("CREATE DATABASE \"{by_hand}\" TEMPLATE template0"),
        format!("DROP DATABASE \"{replaced}\""),
        format!("CREATE DATABASE \"{replaced}\" TEMPLATE template0"),
    ] {
        admin.batch_execute(&sql).await.expect(&sql);
    }
    for name in [&old, &busy, &replaced] {
        expire(&setup, name).await;
    }
    let session = harness::connect(&harness::url_for(&busy)).await;
    let list = listed(&setup);
    let state = |n: &str| {
        list.iter()
            .find(|c| c["name"] == n)
            .map(|c| c["state"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state(&keep).as_deref(), Some("ready"));
    assert_eq!(state(&old).as_deref(), Some("expired"));
    assert_eq!(state(&replaced).as_deref(), Some("missing"), "{list:#?}");
    assert_eq!(
        state(&by_hand),
        None,
        "a database made by hand is not listed"
    );

    let pruned = json(setup.run(&["--json", "copies", "prune"]), "prune");
    assert_eq!(pruned["dropped"], serde_json::json!([old]), "{pruned}");
    assert_eq!(pruned["kept"], serde_json::json!([keep]), "{pruned}");
    assert_eq!(
        pruned["forgotten"],
        serde_json::json!([replaced]),
        "{pruned}"
    );
    assert_eq!(pruned["skipped"][0]["name"], busy.as_str(), "{pruned}");
    assert!(
        pruned["skipped"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("session")),
        "{pruned}"
    );
    assert!(oid_of(&old).await.is_none());
    for name in [&keep, &busy, &replaced, &by_hand] {
        assert!(oid_of(name).await.is_some(), "{name} was dropped");
    }
    assert_eq!(
        harness::scalar::<i64>(&session, "SELECT count(*) FROM users").await,
        2000,
        "the session on a busy copy is not ended"
    );
    drop(session);
    // Once the session is gone, the next prune drops it.
    let mut dropped = false;
    for _ in 0..50 {
        let pruned = json(setup.run(&["--json", "copies", "prune"]), "prune");
        if pruned["dropped"] == serde_json::json!([busy]) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the busy copy is dropped once its session is gone");
    assert!(oid_of(&replaced).await.is_some() && oid_of(&by_hand).await.is_some());
    // `copies drop` refuses what restage did not make.
    let (code, _, err) = setup.run(&["copies", "drop", &by_hand]);
    assert_eq!(code, 2, "{err}");
    assert!(
        last_line(&err).contains("restage made no copy named"),
        "{err}"
    );
    assert!(oid_of(&by_hand).await.is_some());
    ok(setup.run(&["copies", "drop", &keep]), "drop");
    assert!(listed(&setup).is_empty());
}

/// Bad names, owners and TTLs, a copy before any refresh: exit 2, a clear message, and
/// nothing created, dropped or recorded.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let fresh = Setup::new("cpnone", SCHEMA, "strict: off").await;
    let (code, _, err) = fresh.run(&["copy", &format!("{}_qa", fresh.staging)]);
    assert_eq!(code, 2, "{err}");
    assert!(last_line(&err).contains("restage refresh"), "{err}");
    assert!(oid_of(&format!("{}_qa", fresh.staging)).await.is_none());

    let setup = refreshed("cpbad").await;
    let ok_name = format!("{}_qa", setup.staging);
    let generation = harness::generations_prefix(&setup.staging) + "20261201T000000_000000Z";
    let control = restage::refresh::names::Names::of(&setup.staging).control();
    let long = "x".repeat(64);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["copy".into(), "a b".into()], "is not allowed"),
        (
            vec!["copy".into(), "a\";DROP DATABASE x;--".into()],
            "is not allowed",
        ),
        (vec!["copy".into(), long.clone()], "at most 63"),
        (
            vec!["copy".into(), setup.staging.clone()],
            "live staging database",
        ),
        (vec!["copy".into(), control.clone()], "control database"),
        (vec!["copy".into(), generation.clone()], "generations"),
        (vec!["copy".into(), "postgres".into()], "already exists"),
        (
            vec!["copy".into(), setup.source.name.clone()],
            "already exists",
        ),
        (
            vec![
                "copy".into(),
                ok_name.clone(),
                "--owner".into(),
                "rt_no_such_role_x".into(),
            ],
            "no role named rt_no_such_role_x",
        ),
        (
            vec!["copy".into(), ok_name.clone(), "--ttl".into(), "0".into()],
            "--ttl",
        ),
        (
            vec![
                "copy".into(),
                ok_name.clone(),
                "--ttl".into(),
                "soon".into(),
            ],
            "not a duration",
        ),
        (
            vec![
                "copy".into(),
                ok_name.clone(),
                "--ttl".into(),
                "400d".into(),
            ],
            "90 days",
        ),
    ];
    // The test's databases (source, staging, generations, control database: one prefix),
    // and the server's others by name (other tests create and drop theirs meanwhile).
    let family = || harness::databases_like(&setup.source.name);
    let before = family().await;
    for (args, expected) in &cases {
        let (code, out, err) = setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 2, "{args:?}\n{out}\n{err}");
        let line = last_line(&err);
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(line.contains("nothing was changed"), "{args:?}: {line}");
    }
    assert_eq!(family().await, before, "nothing created or dropped");
    assert!(oid_of("postgres").await.is_some());
    assert!(oid_of(&long[..63]).await.is_none() && oid_of(&ok_name).await.is_none());
    assert!(listed(&setup).is_empty(), "nothing recorded");
    assert!(allows_connections(&setup.staging).await);
}

/// A copy while a refresh holds the run lock exits 4 at once, naming the refresh, and
/// changes nothing; the refresh goes on.
#[tokio::test]
async fn a_copy_during_a_refresh_exits_4() {
    let setup = refreshed("cplock").await;
    let mut refresh = setup.spawn(&["refresh"], &[("RESTAGE_TEST_PAUSE_AT", "data")]);
    refresh.wait_paused("data");
    let name = format!("{}_qa", setup.staging);
    let (code, out, err) = setup.run(&["copy", &name]);
    assert_eq!(code, 4, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.contains("another restage command holds the lock") && line.contains("refresh"),
        "{line}"
    );
    assert!(oid_of(&name).await.is_none());
    assert!(allows_connections(&setup.staging).await);
    // Listing and pruning do not need the lock.
    assert!(listed(&setup).is_empty());
    ok(setup.run(&["copies", "prune"]), "prune during a refresh");
    refresh.resume();
    let (code, out, err) = refresh.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "{out}\n{err}");
    ok(setup.run(&["copy", &name]), "copy after the refresh");
    assert!(oid_of(&name).await.is_some());
}

/// Every wait of the copy is bounded by `lock_timeout`: behind another session's uncommitted
/// `GRANT … ON DATABASE <live>` it gives up, says what it waited for, and leaves staging
/// accepting connections with no copy and no record. A live database someone set to refuse
/// connections by hand is left so, and no copy is made.
#[tokio::test]
async fn a_copy_gives_up_after_lock_timeout_and_changes_nothing() {
    let setup = Setup::new("cpwait", SCHEMA, "strict: off\nlock_timeout: 2s").await;
    ok(setup.run(&["refresh"]), "refresh");
    let blocker = harness::connect(&harness::url_for(&setup.source.name)).await;
    blocker
        .batch_execute(&format!(
            "BEGIN; GRANT CONNECT ON DATABASE \"{}\" TO PUBLIC",
            setup.staging
        ))
        .await
        .expect("hold the live database's row");
    let name = format!("{}_qa", setup.staging);
    let (code, out, err) = setup.run(&["copy", &name]);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.contains("gave up after 2s (lock_timeout) waiting for a lock on database")
            && line.contains("no copy was made"),
        "{line}"
    );
    blocker.batch_execute("COMMIT").await.expect("commit");
    assert!(allows_connections(&setup.staging).await);
    assert!(oid_of(&name).await.is_none());
    assert!(listed(&setup).is_empty());

    let admin = harness::connect(&harness::admin_url()).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
            setup.staging
        ))
        .await
        .expect("refuse by hand");
    let (code, out, err) = setup.run(&["copy", &name]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(last_line(&err).contains("refuses connections"), "{err}");
    assert!(
        !allows_connections(&setup.staging).await,
        "left as the operator set it"
    );
    assert!(oid_of(&name).await.is_none());
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
            setup.staging
        ))
        .await
        .expect("allow again");
    ok(setup.run(&["copy", &name]), "copy");
}
