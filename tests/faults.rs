//! Faults (issue 6): a refresh killed at every stage, interrupted by SIGINT/SIGTERM, cut off
//! from PostgreSQL or Redis mid-stream, or run twice at once. After each, the live staging
//! database serves the old data, and the next refresh cleans up and succeeds.
//!
//! Kill points are made deterministic by the testing hook `RESTAGE_TEST_PAUSE_AT` (see
//! `src/refresh/pause.rs`): the child says `paused at <point>` on stderr and waits for SIGUSR1;
//! the test then kills it, signals it, or cuts its connections (through the TCP proxy of the
//! harness) and resumes it.

use crate::harness;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::Setup;
use crate::harness::proxy::Proxy;

/// Two tables, one big enough that a paused COPY is really mid-stream (about 12 MB: far more
/// than the batches in flight), an index and a foreign key for post-data.
const SCHEMA: &str = "
    CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO t SELECT g, 'old' FROM generate_series(1, 100) g;
    CREATE TABLE big (id bigint PRIMARY KEY, t_id int REFERENCES t (id), pad text);
    INSERT INTO big SELECT g, 1 + g % 100, repeat(md5(g::text), 6) FROM generate_series(1, 60000) g;
    CREATE INDEX big_pad_idx ON big (pad);
";

/// An index whose build takes a few seconds, but only in a database restage is building
/// (the source and the live staging database are not slowed): so a kill lands while
/// pg_restore is inside CREATE INDEX.
const SLOW_INDEX: &str = "
    CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        IF current_database() LIKE '%\\_\\_restage\\_%' THEN PERFORM pg_sleep(0.1); END IF;
        RETURN i;
    END $$;
    CREATE TABLE slow (id int);
    INSERT INTO slow SELECT generate_series(1, 100);
    CREATE INDEX slow_idx ON slow (slow_key(id));
";

const FAST_KEY: &str = "
    CREATE OR REPLACE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN RETURN i; END $$;
";

const LONG: Duration = Duration::from_secs(300);

fn pause(point: &str) -> (&'static str, String) {
    ("RESTAGE_TEST_PAUSE_AT", point.to_string())
}

/// A setup whose staging database is live with the old data, and whose source then changed.
async fn live_with_old_data(prefix: &str, schema: &str) -> (Setup, Checksums) {
    let setup = Setup::new(prefix, schema, "strict: off").await;
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "first refresh\nstdout:\n{out}\nstderr:\n{err}");
    let old = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(old["public.t"].0, 100);
    setup.source.execute("UPDATE t SET v = 'new'").await;
    (setup, old)
}

type Checksums = BTreeMap<String, (u64, String)>;

/// The `<staging>__restage_*` databases now.
async fn restage_databases(setup: &Setup) -> Vec<String> {
    harness::databases_like(&harness::generations_prefix(&setup.staging)).await
}

/// The states `restage generations --json` shows, by database.
fn listed_states(setup: &Setup) -> BTreeMap<String, String> {
    let (code, out, err) = setup.run(&["--json", "generations"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("generations --json");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_string(),
                d["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The live database serves exactly `old`.
async fn assert_serves(setup: &Setup, expected: &Checksums, what: &str) {
    let now = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(&now, expected, "{what}: the live staging database changed");
}

/// The next refresh removes `leftovers`, succeeds, and staging equals the source.
async fn next_refresh_cleans_up(setup: &Setup, leftovers: &[String]) -> serde_json::Value {
    let (code, out, err) = setup.run(&["--json", "refresh"]);
    assert_eq!(code, 0, "next refresh\nstdout:\n{out}\nstderr:\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("report is JSON");
    let removed: Vec<String> = report["leftovers_removed"]
        .as_array()
        .expect("leftovers_removed")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    for l in leftovers {
        assert!(removed.contains(l), "{l} not removed: {removed:?}");
    }
    for l in leftovers {
        assert!(
            !restage_databases(setup).await.contains(l),
            "{l} still exists"
        );
    }
    let source = harness::table_checksums(&setup.source.url()).await;
    let staging = harness::table_checksums(&setup.staging_url()).await;
    assert_eq!(
        source, staging,
        "staging equals the source after the next refresh"
    );
    // Nothing building or left over is listed.
    let states = listed_states(setup);
    assert!(
        states.values().all(|s| s == "live" || s == "generation"),
        "{states:?}"
    );
    report
}

/// SIGKILL at `point`; the live database still serves the old data; the leftover (if the
/// run got as far as creating one) is removed by the next refresh, which succeeds.
async fn kill_at(prefix: &str, point: &str, schema: &str, env: &[(&str, &str)]) {
    let (setup, old) = live_with_old_data(prefix, schema).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause(point);
    let mut envs = vec![(k, v.as_str())];
    envs.extend_from_slice(env);
    let mut child = setup.spawn(&["refresh"], &envs);
    child.wait_paused(point);
    child.kill();
    let leftovers: Vec<String> = restage_databases(&setup)
        .await
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    if point == "plan" {
        assert!(
            leftovers.is_empty(),
            "nothing is created before the plan is done"
        );
    } else {
        assert_eq!(leftovers.len(), 1, "one half-built database: {leftovers:?}");
    }
    assert_serves(&setup, &old, point).await;
    next_refresh_cleans_up(&setup, &leftovers).await;
}

#[tokio::test]
async fn sigkill_after_the_plan_changes_nothing() {
    kill_at("kplan", "plan", SCHEMA, &[]).await;
}

#[tokio::test]
async fn sigkill_between_create_and_recording_leaves_a_provable_leftover() {
    kill_at("kcreated", "created", SCHEMA, &[]).await;
}

#[tokio::test]
async fn sigkill_after_pre_data() {
    kill_at("kpre", "pre-data", SCHEMA, &[]).await;
}

#[tokio::test]
async fn sigkill_mid_data() {
    // Range jobs too, so several COPYs are open at the kill.
    kill_at(
        "kdata",
        "data",
        SCHEMA,
        &[("RESTAGE_SPLIT_BYTES", "1000000")],
    )
    .await;
}

#[tokio::test]
async fn sigkill_after_data_before_post_data() {
    kill_at("kdatadone", "data-done", SCHEMA, &[]).await;
}

#[tokio::test]
async fn sigkill_before_verify() {
    kill_at("kverify", "before-verify", SCHEMA, &[]).await;
}

#[tokio::test]
async fn sigkill_right_before_the_swap() {
    kill_at("kswap0", "before-swap", SCHEMA, &[]).await;
}

/// Killed while pg_restore builds an index: the orphaned pg_restore may still be working on
/// the half-built database; the next run drops it anyway (ending its sessions).
#[tokio::test]
async fn sigkill_during_post_data() {
    let schema = format!("{SCHEMA}{SLOW_INDEX}");
    let (setup, old) = live_with_old_data("kpost", &schema).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("post-data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("post-data");
    // pg_restore is inside CREATE INDEX on the new database.
    let admin = harness::connect(&harness::admin_url()).await;
    let pattern = format!(
        "{}%",
        harness::generations_prefix(&setup.staging).replace('_', "\\_")
    );
    let mut building_index = false;
    for _ in 0..600 {
        let n: i64 = harness::scalar_with(&admin, "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1 AND query ILIKE 'CREATE INDEX slow_idx%'", &[&pattern]).await;
        if n > 0 {
            building_index = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(building_index, "pg_restore never started the slow index");
    child.kill();
    let leftovers: Vec<String> = restage_databases(&setup)
        .await
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert_serves(&setup, &old, "post-data").await;
    setup.source.execute(FAST_KEY).await;
    next_refresh_cleans_up(&setup, &leftovers).await;
}

/// Killed inside the swap, after `ALLOW_CONNECTIONS false` and before the renames: the live
/// database is intact but refuses connections (documented); the next restage command turns
/// them back on, the old data is served, and the next refresh succeeds.
#[tokio::test]
async fn sigkill_inside_the_swap() {
    let (setup, old) = live_with_old_data("kswap", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("swap");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("swap");
    child.kill();
    let admin = harness::connect(&harness::admin_url()).await;
    let allow: bool = harness::scalar_with(
        &admin,
        "SELECT datallowconn FROM pg_database WHERE datname = $1",
        &[&setup.staging],
    )
    .await;
    assert!(
        !allow,
        "the live database refuses connections after a kill inside the swap"
    );
    // The registry still records it as the live one (the renames were not committed).
    let control = harness::connect(&harness::url_for(
        &restage::refresh::lock::control_database(&setup.staging),
    ))
    .await;
    let state: String = harness::scalar_with(
        &control,
        "SELECT state FROM restage.generations
          WHERE db_oid = (SELECT oid FROM pg_database WHERE datname = $1)",
        &[&setup.staging],
    )
    .await;
    assert_eq!(state, "live", "still the live one");
    let err = tokio_postgres::connect(&setup.staging_url(), tokio_postgres::NoTls)
        .await
        .err()
        .expect("connections refused");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(
        message.contains("is not currently accepting connections"),
        "{err:?}"
    );
    let leftovers: Vec<String> = restage_databases(&setup)
        .await
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // Any restage command on the target repairs it first; the old data is live.
    let (code, out, err) = setup.run(&["generations"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("re-enabled"), "{err}");
    assert_serves(&setup, &old, "after repair").await;

    next_refresh_cleans_up(&setup, &leftovers).await;
}

/// Same kill, but the next command is the refresh itself: it repairs, says so, and succeeds;
/// the generation it retires is the old data.
#[tokio::test]
async fn next_refresh_repairs_a_swap_killed_half_way() {
    let (setup, old) = live_with_old_data("kswap2", SCHEMA).await;
    let (k, v) = pause("swap");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("swap");
    child.kill();
    let report = next_refresh_cleans_up(&setup, &[]).await;
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("re-enabled"), "{warnings}");
    assert!(
        report["swap"]["retired_as"].as_str().is_some(),
        "the old live database was retired: {report}"
    );
    // Rolling back brings exactly the data that was live before the kill.
    let (code, out, err) = setup.run(&["rollback"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_serves(&setup, &old, "rolled back").await;
}

/// The last line of stderr that is not empty.
fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// COPYs restage opened on the source database, still running.
async fn copies_on(db: &str) -> i64 {
    let admin = harness::connect(&harness::admin_url()).await;
    harness::scalar_with(
        &admin,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'COPY%' AND pid <> pg_backend_pid()",
        &[&db],
    )
    .await
}

/// Ctrl-C mid-data: the open COPYs are aborted, the half-built database dropped, exit 1 with
/// one line that says so; staging unchanged.
#[tokio::test]
async fn sigint_mid_data_stops_cleanly() {
    let (setup, old) = live_with_old_data("intdata", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    assert!(
        copies_on(&setup.source.name).await > 0,
        "a COPY is open on the source"
    );
    child.signal(libc::SIGINT);
    let (code, _, err) = child.finish(LONG);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        last_line(&err),
        "restage: error: interrupted by SIGINT: the half-built database was removed, staging is unchanged"
    );
    assert_eq!(
        restage_databases(&setup).await,
        before,
        "the half-built database is gone"
    );
    // The source COPYs ended with the process (their sessions close asynchronously).
    let mut left = copies_on(&setup.source.name).await;
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = copies_on(&setup.source.name).await;
    }
    assert_eq!(left, 0, "no COPY left running on the source");
    assert_serves(&setup, &old, "SIGINT").await;
    next_refresh_cleans_up(&setup, &[]).await;
}

/// SIGTERM while pg_restore builds indexes: pg_restore is stopped with restage, the
/// half-built database dropped.
#[tokio::test]
async fn sigterm_during_post_data_stops_cleanly() {
    let (setup, old) = live_with_old_data("termpost", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("post-data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("post-data");
    child.signal(libc::SIGTERM);
    let (code, _, err) = child.finish(LONG);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        last_line(&err),
        "restage: error: interrupted by SIGTERM: the half-built database was removed, staging is unchanged"
    );
    assert_eq!(restage_databases(&setup).await, before);
    assert_serves(&setup, &old, "SIGTERM").await;
}

/// SIGTERM before anything is created: nothing to clean, and it says so.
#[tokio::test]
async fn sigterm_while_planning_changes_nothing() {
    let (setup, old) = live_with_old_data("termplan", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("plan");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("plan");
    child.signal(libc::SIGTERM);
    let (code, _, err) = child.finish(LONG);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        last_line(&err),
        "restage: error: interrupted by SIGTERM: nothing was changed"
    );
    assert_eq!(restage_databases(&setup).await, before);
    assert_serves(&setup, &old, "SIGTERM while planning").await;
}

/// Issue 12: a signal inside the swap, before its COMMIT (the live database already refusing
/// connections), ends the run: rolled back, connections back on, the built database
/// removed, staging unchanged.
#[tokio::test]
async fn sigterm_inside_the_swap_before_the_commit_leaves_staging_unchanged() {
    let (setup, old) = live_with_old_data("termswap", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("swap");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("swap");
    child.signal(libc::SIGTERM);
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        last_line(&err),
        "restage: error: interrupted by SIGTERM: the database this run built was removed, staging is unchanged"
    );
    assert_eq!(restage_databases(&setup).await, before);
    assert_serves(&setup, &old, "SIGTERM inside the swap").await;
    let admin = harness::connect(&harness::admin_url()).await;
    let allow: bool = harness::scalar_with(
        &admin,
        "SELECT datallowconn FROM pg_database WHERE datname = $1",
        &[&setup.staging],
    )
    .await;
    assert!(allow, "connections are allowed again on the live database");
    next_refresh_cleans_up(&setup, &[]).await;
}

/// Issue 12: only the COMMIT of the swap is not interruptible: a signal that arrives during
/// it is acted on after it — staging is live with the new data, the run stops there and
/// says so (exit 5), and the next refresh drops what retention did not.
#[tokio::test]
async fn sigterm_during_the_commit_waits_for_it_then_stops() {
    let (setup, _old) = live_with_old_data("termcommit", SCHEMA).await;
    let (k, v) = pause("commit");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("commit");
    child.signal(libc::SIGTERM);
    // Still there, still paused before the COMMIT.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!child.stderr_so_far().contains("interrupted"));
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        last_line(&err).starts_with(&format!(
            "restage: staging database {} is live, but the run was interrupted by SIGTERM after the swap",
            setup.staging
        )),
        "{err}"
    );
    let source = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(source, harness::table_checksums(&setup.staging_url()).await);
}

/// Two real refreshes at once: the second exits 4 at once and touches nothing; the first
/// finishes.
#[tokio::test]
async fn concurrent_refresh_exits_4_and_touches_nothing() {
    let (setup, _old) = live_with_old_data("conc", SCHEMA).await;
    let (k, v) = pause("data");
    let mut first = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    first.wait_paused("data");
    let during = restage_databases(&setup).await;
    // The first run waits for SIGUSR1: the second one finishing at all shows it did not wait.
    let second = setup.spawn(&["refresh"], &[]);
    let (code, out, err) = second.finish(Duration::from_secs(120));
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        last_line(&err).contains("another restage command holds the lock"),
        "{err}"
    );
    assert!(last_line(&err).contains("nothing was changed"), "{err}");
    assert_eq!(
        restage_databases(&setup).await,
        during,
        "the second run created or dropped nothing"
    );
    first.resume();
    let (code, out, err) = first.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    let source = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(source, harness::table_checksums(&setup.staging_url()).await);
}

// ----- Dropped connections (through the harness's TCP proxy). -----

/// A setup whose source and target URLs go through proxies.
async fn behind_proxies(prefix: &str, extra: &str) -> (Setup, Checksums, Proxy, Proxy) {
    let (setup, old) = live_with_old_data(prefix, SCHEMA).await;
    let source = Proxy::postgres();
    let target = Proxy::postgres();
    setup.write_config_urls(
        &harness::url_via(source.port(), &setup.source.name),
        &harness::url_via(target.port(), "postgres"),
        &format!("strict: off\n{extra}"),
    );
    (setup, old, source, target)
}

fn total_retries(report: &serde_json::Value) -> u64 {
    report["tables"]
        .as_array()
        .map(|ts| ts.iter().map(|t| t["retries"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// The source connections of the copy workers drop mid-stream: each table is copied again
/// on a fresh session inside the same snapshot, and the result is complete and exact.
#[tokio::test]
async fn source_worker_connections_cut_mid_stream_are_retried() {
    let (setup, _old, source, _target) = behind_proxies("cutsrc", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["--json", "refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    // Connection 0 is the snapshot leader: keep it, cut every other one (the workers').
    let cut = source.cut_from(1);
    assert!(cut >= 1, "worker connections were open");
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    // A worker cut mid-COPY copies its table again; one cut while it was still opening its
    // session (joining the snapshot) opens it again: both are retries inside the same
    // snapshot, and which one a worker meets depends on where it was at the pause (a loaded
    // machine's CI run met the second).
    assert!(
        err.contains("copying the table again inside the same snapshot")
            || err.contains("opening a source session; trying again inside the same snapshot"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(total_retries(&report) >= 1, "{out}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// A copy worker that cannot open its source session (the connection drops while it
/// connects) tries again, inside the same snapshot.
#[tokio::test]
async fn a_worker_session_that_cannot_connect_is_retried() {
    let (setup, _old, source, _target) = behind_proxies("sessretry", "").await;
    let (k, v) = pause("pre-data");
    let mut child = setup.spawn(&["--json", "refresh"], &[(k, v.as_str())]);
    child.wait_paused("pre-data");
    // The next source connection is the first worker's session.
    source.refuse_next(1);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("opening a source session"), "{err}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// The same with the big table split into ctid ranges: a range whose source drops is copied
/// again too (its target COPY was aborted, nothing was committed), and nothing is doubled.
#[tokio::test]
async fn source_cut_during_range_jobs_is_retried() {
    let (setup, _old, source, _target) = behind_proxies("cutsrcrange", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(
        &["--json", "refresh"],
        &[(k, v.as_str()), ("RESTAGE_SPLIT_BYTES", "1000000")],
    );
    child.wait_paused("data");
    assert!(source.cut_from(1) >= 1);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(total_retries(&report) >= 1, "{out}");
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.big")
        .unwrap();
    assert!(big["ranges"].as_u64().unwrap() > 1, "range jobs: {big}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// The target connections of the copy workers drop mid-stream (whole-table jobs): each
/// table is loaded again (its transaction was rolled back), complete and exact.
#[tokio::test]
async fn target_connections_cut_mid_stream_are_retried_for_whole_tables() {
    let (setup, _old, _source, target) = behind_proxies("cuttgt", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["--json", "refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    // Connection 0 is the maintenance connection, 1 the control database's that holds the
    // lock: keep them.
    let cut = target.cut_from(2);
    assert!(cut >= 1, "COPY connections were open");
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(total_retries(&report) >= 1, "{out}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// Range jobs are not retried after a target drop (the COPY may have committed): the run
/// fails naming the server and the table, and staging is untouched.
#[tokio::test]
async fn target_cut_during_a_range_job_fails_cleanly() {
    let (setup, old, _source, target) = behind_proxies("cutrange", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(
        &["refresh"],
        &[(k, v.as_str()), ("RESTAGE_SPLIT_BYTES", "1000000")],
    );
    child.wait_paused("data");
    let before = restage_databases(&setup).await;
    assert!(target.cut_from(2) >= 1);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with("restage: error: writing public.big ["),
        "{line}"
    );
    assert!(
        line.contains(&format!("postgres@127.0.0.1:{}/", target.port())),
        "names the server: {line}"
    );
    assert_eq!(
        restage_databases(&setup).await.len(),
        before.len() - 1,
        "half-built one dropped"
    );
    assert_serves(&setup, &old, "range job cut").await;
}

/// The snapshot leader dies with the workers: the snapshot is gone, so no retry can be
/// consistent; the run fails naming the source server and the table; staging untouched.
#[tokio::test]
async fn source_leader_cut_fails_cleanly() {
    let (setup, old, source, _target) = behind_proxies("cutleader", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    let before = restage_databases(&setup).await;
    assert!(source.cut_all() >= 2);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(line.contains("public."), "names the table: {line}");
    assert!(
        line.contains(&format!(
            "127.0.0.1:{}/{}",
            source.port(),
            setup.source.name
        )),
        "names the source server: {line}"
    );
    assert_eq!(restage_databases(&setup).await.len(), before.len() - 1);
    assert_serves(&setup, &old, "leader cut").await;
}

/// Only the leader dies, after every worker imported the snapshot: the workers keep their
/// own copy of it, so the data is still one consistent snapshot. Without rules nothing needs
/// the leader afterwards, and the run finishes, exact.
#[tokio::test]
async fn source_leader_alone_cut_after_import_still_consistent() {
    let (setup, _old, source, _target) = behind_proxies("cutleader1", "").await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    assert_eq!(source.cut(0), 1);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// The leader dies before the workers imported the snapshot: no session can join it any
/// more, and a copy from another instant would be inconsistent; the run fails cleanly naming
/// the source server and the table; staging untouched.
#[tokio::test]
async fn source_leader_cut_before_workers_import_fails_cleanly() {
    let (setup, old, source, _target) = behind_proxies("cutleader2", "").await;
    let (k, v) = pause("pre-data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("pre-data");
    let before = restage_databases(&setup).await;
    assert_eq!(source.cut(0), 1);
    // Wait until the server has ended the leader's session (and so the exported snapshot).
    let admin = harness::connect(&harness::admin_url()).await;
    harness::wait_until_no_sessions(&admin, &setup.source.name).await;
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with("restage: error: reading public."),
        "names the table: {line}"
    );
    assert!(
        line.contains(&format!(
            "postgres@127.0.0.1:{}/{}: importing the snapshot",
            source.port(),
            setup.source.name
        )),
        "names the source server: {line}"
    );
    assert_eq!(restage_databases(&setup).await.len(), before.len() - 1);
    assert_serves(&setup, &old, "leader cut").await;
}

/// The control database's connection (the lock's) drops mid-run: nothing can be swapped;
/// exit 1; staging untouched; the next run removes the leftover (its run is provably dead:
/// the lock is free).
#[tokio::test]
async fn target_lock_connection_cut_fails_cleanly() {
    let (setup, old, _source, target) = behind_proxies("cutadmin", "").await;
    let before = restage_databases(&setup).await;
    let (k, v) = pause("data");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("data");
    assert_eq!(target.cut(1), 1);
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.contains(&format!(
            "postgres@127.0.0.1:{}/{}",
            target.port(),
            restage::refresh::lock::control_database(&setup.staging)
        )),
        "names the server: {line}"
    );
    assert_serves(&setup, &old, "maintenance connection cut").await;
    let leftovers: Vec<String> = restage_databases(&setup)
        .await
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    setup.write_config("strict: off");
    next_refresh_cleans_up(&setup, &leftovers).await;
}

// ----- Redis during warming. -----

fn cache_section(redis_port: u16, prefix: &str, required: bool) -> String {
    format!(
        "cache:\n  url: redis://127.0.0.1:{redis_port}/0\n  required: {required}\n  flush: [\"{prefix}\"]\n  warm:\n    - query: SELECT id, v FROM t ORDER BY id\n      key: \"{prefix}t:{{id}}\"\n      value: v\n      ttl: 10m\n"
    )
}

async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn redis_cleanup(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if keys.is_empty() {
        return;
    }
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Through the proxy, warming works (the baseline of the next tests).
#[tokio::test]
async fn cache_is_warmed_through_the_proxy() {
    let (setup, _old) = live_with_old_data("warmok", SCHEMA).await;
    let redis = Proxy::redis();
    let prefix = harness::redis_prefix("warmok");
    setup.write_config(&format!(
        "strict: off\n{}",
        cache_section(redis.port(), &prefix, true)
    ));
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(redis_keys(&prefix).await.len(), 100);
    redis_cleanup(&prefix).await;
}

/// Redis down (not required): staging is still swapped, exit 5 (live, but), and it says the
/// cache was not warmed.
#[tokio::test]
async fn redis_down_still_swaps_and_exits_5() {
    let (setup, _old) = live_with_old_data("warmdown", SCHEMA).await;
    let redis = Proxy::redis();
    redis.refuse(true);
    let prefix = harness::redis_prefix("warmdown");
    setup.write_config(&format!(
        "strict: off\n{}",
        cache_section(redis.port(), &prefix, false)
    ));
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 5, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with(&format!(
            "restage: staging database {} is live, but the cache was NOT warmed: redis://127.0.0.1:{}/0: cannot connect to Redis",
            setup.staging,
            redis.port()
        )),
        "{line}"
    );
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(
        src,
        harness::table_checksums(&setup.staging_url()).await,
        "swapped"
    );
    assert!(redis_keys(&prefix).await.is_empty());
}

/// Redis dies between the swap and the warming: the same, exit 5, cache not warmed.
#[tokio::test]
async fn redis_cut_before_warming_exits_5() {
    let (setup, _old) = live_with_old_data("warmcut", SCHEMA).await;
    let redis = Proxy::redis();
    let prefix = harness::redis_prefix("warmcut");
    setup.write_config(&format!(
        "strict: off\n{}",
        cache_section(redis.port(), &prefix, true)
    ));
    let (k, v) = pause("warm");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("warm");
    redis.refuse(true);
    redis.cut_all();
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        last_line(&err).contains("is live, but the cache was NOT warmed"),
        "{err}"
    );
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(
        src,
        harness::table_checksums(&setup.staging_url()).await,
        "swapped"
    );
    redis_cleanup(&prefix).await;
}

/// `cache.required: true` and Redis down: the run stops before the swap; staging unchanged.
#[tokio::test]
async fn redis_required_and_down_fails_before_the_swap() {
    let (setup, old) = live_with_old_data("warmreq", SCHEMA).await;
    let before = restage_databases(&setup).await;
    let redis = Proxy::redis();
    redis.refuse(true);
    let prefix = harness::redis_prefix("warmreq");
    setup.write_config(&format!(
        "strict: off\n{}",
        cache_section(redis.port(), &prefix, true)
    ));
    let (code, out, err) = setup.run(&["refresh"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let line = last_line(&err);
    assert!(
        line.starts_with(&format!(
            "restage: error: redis://127.0.0.1:{}/0: cannot connect to Redis",
            redis.port()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("cache.required is true, so staging was not swapped (unchanged)"),
        "{line}"
    );
    assert_eq!(
        restage_databases(&setup).await,
        before,
        "the built database was dropped"
    );
    assert_serves(&setup, &old, "cache required").await;
}

/// A failed night replaces the report file (monitoring must not read last night's success),
/// with the exit code and the one-line reason.
#[tokio::test]
async fn a_failed_run_replaces_the_report_file() {
    let (setup, old) = live_with_old_data("failreport", SCHEMA).await;
    let report = setup.dir.path().join("report.json");
    let report_arg = report.to_str().unwrap();
    let (code, out, err) = setup.run(&["refresh", "--report", report_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    let ok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(ok["exit_code"], 0);

    let (k, v) = pause("data");
    let mut child = setup.spawn(&["refresh", "--report", report_arg], &[(k, v.as_str())]);
    child.wait_paused("data");
    child.signal(libc::SIGTERM);
    let (code, _, err) = child.finish(LONG);
    assert_eq!(code, 1, "{err}");
    let failed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(
        failed["outcome"],
        "failed: interrupted by SIGTERM: the half-built database was removed, staging is unchanged"
    );
    assert!(
        failed["finished_at"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // The previous refresh of this test is live, unchanged by the failed one.
    let _ = old;
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}

/// `restage generations` while another run is inside its swap (the live database refusing
/// connections on purpose) lists without "repairing" it behind the swap's back; and a
/// rollback exits 4 like a second refresh.
#[tokio::test]
async fn other_commands_leave_a_running_swap_alone() {
    let (setup, _old) = live_with_old_data("swapalone", SCHEMA).await;
    let (k, v) = pause("swap");
    let mut child = setup.spawn(&["refresh"], &[(k, v.as_str())]);
    child.wait_paused("swap");
    let (code, out, err) = setup.run(&["generations"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("re-enabled"), "{err}");
    let admin = harness::connect(&harness::admin_url()).await;
    let allow: bool = harness::scalar_with(
        &admin,
        "SELECT datallowconn FROM pg_database WHERE datname = $1",
        &[&setup.staging],
    )
    .await;
    assert!(!allow, "the swap in progress was left alone");
    let (code, out, err) = setup.run(&["rollback"]);
    assert_eq!(code, 4, "{out}\n{err}");
    child.resume();
    let (code, out, err) = child.finish(LONG);
    assert_eq!(code, 0, "{out}\n{err}");
    let src = harness::table_checksums(&setup.source.url()).await;
    assert_eq!(src, harness::table_checksums(&setup.staging_url()).await);
}
