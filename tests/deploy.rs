//! `restage deploy` end to end (issue 7): the real binary, real HTTP instances that turn
//! unhealthy or slow after an update, a metrics endpoint whose error rate and latency rise
//! with the canary's traffic, and history in a file or in PostgreSQL.
//!
//! Commands under test are `ln -sfn VALUE STATE/NAME` (no shell); the test servers read the
//! symlinks. See `http_harness` for the protocol.

use crate::harness;

use std::path::Path;
use std::time::Duration;

use crate::http_harness::{
    Behaviour, Server, instance, metrics, read_value, restage, version_of, write_config,
    write_value,
};
use serde_json::Value;

/// Gates tuned for tests: fast probes, two in a row decide.
const GATE: &str = "health: { path: /health, timeout: 300ms, interval: 20ms, healthy_threshold: 2, unhealthy_threshold: 2, wait: 5s }";

fn deploy_config(state: &Path, instances: &[&Server], extra: &str) -> String {
    let list: Vec<String> = instances
        .iter()
        .map(|s| format!("\"{}\"", s.instance()))
        .collect();
    format!(
        "deploy:\n  instances: [{}]\n  update: \"ln -sfn {{version}} {}/{{instance_port}}\"\n  {GATE}\n{extra}",
        list.join(", "),
        state.display()
    )
}

/// Every history record, oldest first, as `deploy history --json` shows them.
async fn history(config: &Path) -> Vec<Value> {
    let run = restage(config, &["--json", "deploy", "history", "--limit", "1000"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    run.json().as_array().cloned().unwrap_or_default()
}

fn steps<'a>(record: &'a Value, action: &str) -> Vec<&'a Value> {
    record["steps"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["action"] == action).collect())
        .unwrap_or_default()
}

fn targets(steps: &[&Value]) -> Vec<String> {
    steps
        .iter()
        .map(|s| s["target"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_every_batch_and_records_history() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let fleet = [
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
    ];
    let refs: Vec<&Server> = fleet.iter().collect();
    let config = write_config(
        state,
        &deploy_config(
            state,
            &refs,
            "  rolling: { batch_size: 2, pause: 10ms, max_failure: 0 }\n",
        ),
    );
    let run = restage(
        &config,
        &[
            "deploy",
            "rolling",
            "2.0",
            "--from",
            "1.0",
            "--reason",
            "weekly release",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("rolling deployment of 2.0 succeeded"),
        "{run:?}"
    );
    for server in &fleet {
        assert_eq!(version_of(state, server).as_deref(), Some("2.0"));
    }
    // The file has the in-progress line and the final one; history shows the final one.
    let lines = std::fs::read_to_string(state.join(".restage/deployments.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let records = history(&config).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["strategy"], "rolling");
    assert_eq!(r["from"], "1.0");
    assert_eq!(r["to"], "2.0");
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(r["who"], "tester");
    assert_eq!(r["reason"], "weekly release");
    assert!(r["finished_at"].is_string());
    assert_eq!(steps(r, "update").len(), 4);
    assert_eq!(steps(r, "gate").len(), 4);
    assert_eq!(
        targets(&steps(r, "batch")),
        ["batch 1 of 2", "batch 2 of 2"]
    );
    assert!(
        steps(r, "update")
            .iter()
            .all(|s| s["ok"] == true && s["detail"].as_str().unwrap().starts_with("exit 0 to 2.0"))
    );

    // The next deployment takes its `from` from history.
    let run = restage(&config, &["--json", "deploy", "rolling", "3.0"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["deployment"]["from"], "2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_stops_at_the_failing_batch_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let mut fleet = Vec::new();
    for i in 0..6 {
        let behaviour = if i == 3 {
            Behaviour::UnhealthyOn("2.0".into())
        } else {
            Behaviour::Healthy
        };
        fleet.push(instance(state, behaviour).await);
    }
    let refs: Vec<&Server> = fleet.iter().collect();
    let config = write_config(
        state,
        &deploy_config(
            state,
            &refs,
            "  rolling: { batch_size: 2, max_failure: 0 }\n",
        ),
    );
    let first = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(first.code, 0, "{first:?}");

    let run = restage(&config, &["deploy", "rolling", "2.0"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("rolled back to 1.0"), "{run:?}");
    // Everything the deployment touched is back on 1.0; the last batch was never touched.
    for server in &fleet {
        assert_eq!(version_of(state, server).as_deref(), Some("1.0"));
    }
    let records = history(&config).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    let (deployment, rollback) = (&records[1], &records[2]);
    assert_eq!(deployment["outcome"], "rolled_back");
    let error = deployment["error"].as_str().unwrap();
    assert!(
        error.starts_with("batch 2 of 3: 1 of 6 instance(s) failed"),
        "{error}"
    );
    assert!(
        error.contains(&format!("instance {}", fleet[3].instance())) && error.contains("HTTP 503"),
        "{error}"
    );
    let updated = targets(&steps(deployment, "update"));
    let expected: Vec<String> = fleet[..4].iter().map(Server::instance).collect();
    let mut sorted = updated.clone();
    sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        sorted, expected_sorted,
        "only the first two batches were updated"
    );
    let failed_gate: Vec<&Value> = steps(deployment, "gate")
        .into_iter()
        .filter(|s| s["ok"] == false)
        .collect();
    assert_eq!(failed_gate.len(), 1);
    assert_eq!(failed_gate[0]["target"], fleet[3].instance());

    assert_eq!(rollback["strategy"], "rollback");
    assert_eq!(rollback["outcome"], "succeeded");
    assert_eq!(
        (rollback["from"].as_str(), rollback["to"].as_str()),
        (Some("2.0"), Some("1.0"))
    );
    assert_eq!(rollback["rollback_of"], deployment["id"]);
    assert!(
        rollback["reason"]
            .as_str()
            .unwrap()
            .starts_with("automatic: batch 2 of 3")
    );
    assert_eq!(steps(rollback, "update").len(), 4);
    assert!(
        steps(rollback, "update")
            .iter()
            .all(|s| s["detail"].as_str().unwrap().contains("to 1.0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_fails_its_gate_but_max_failure_tolerates_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let fleet = [
        instance(
            state,
            Behaviour::SlowOn("2.0".into(), Duration::from_secs(2)),
        )
        .await,
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
    ];
    let refs: Vec<&Server> = fleet.iter().collect();
    let config = write_config(
        state,
        &deploy_config(
            state,
            &refs,
            "  rolling: { batch_size: 2, max_failure: 0.25 }\n",
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "rolling", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(
        run.code, 0,
        "1 of 4 failed is within max_failure 0.25: {run:?}"
    );
    let doc = run.json();
    let r = &doc["deployment"];
    assert_eq!(r["outcome"], "succeeded");
    let slow_gate = steps(r, "gate")
        .into_iter()
        .find(|s| s["target"] == fleet[0].instance())
        .unwrap();
    assert_eq!(slow_gate["ok"], false);
    assert!(
        slow_gate["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within 300ms"),
        "{slow_gate}"
    );
    let batch1 = steps(r, "batch")[0]["detail"].as_str().unwrap().to_string();
    assert!(
        batch1.contains("1 of 2 instance(s) failed, 25% of all within max_failure 25%"),
        "{batch1}"
    );
    assert!(doc["rollback"].is_null());

    // With no tolerance, the same slow instance stops the deployment at the first batch.
    let config = write_config(
        state,
        &deploy_config(
            state,
            &refs,
            "  rolling: { batch_size: 2, max_failure: 0 }\n",
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "rolling", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert!(
        doc["deployment"]["error"]
            .as_str()
            .unwrap()
            .starts_with("batch 1 of 2")
    );
    assert_eq!(doc["rollback"]["outcome"], "succeeded");
    // The first batch went back to 1.0; the second was not touched (still 2.0 from before).
    for server in &fleet[..2] {
        assert_eq!(version_of(state, server).as_deref(), Some("1.0"));
    }
    for server in &fleet[2..] {
        assert_eq!(version_of(state, server).as_deref(), Some("2.0"));
    }
}

fn canary_section(
    state: &Path,
    metrics: &Server,
    steps: &str,
    limits: &str,
    extra: &str,
) -> String {
    format!(
        "  canary:\n    steps: {steps}\n    traffic: \"ln -sfn {{percent}} {}/traffic\"\n{extra}    analysis: {{ metrics: \"{}\", {limits}, window: 300ms, interval: 100ms }}\n",
        state.display(),
        metrics.url("/metrics")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_stops_at_the_step_where_the_error_rate_rises() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let fleet = [
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
    ];
    for s in &fleet {
        write_value(state, &s.port().to_string(), "1.0");
    }
    // 1% errors up to 25% of traffic, 20% beyond.
    let prom = metrics(state, |percent| {
        (if percent <= 25 { 0.01 } else { 0.2 }, 0.03)
    })
    .await;
    let refs: Vec<&Server> = fleet.iter().collect();
    let config = write_config(
        state,
        &deploy_config(
            state,
            &refs,
            &canary_section(
                state,
                &prom,
                "[10, 25, 50, 100]",
                "max_error_rate: 0.05",
                "",
            ),
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "canary", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    let r = &doc["deployment"];
    assert_eq!(r["outcome"], "rolled_back");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.starts_with("step 50%: error rate 20% > max_error_rate 5%"),
        "{error}"
    );
    let analyses = steps(r, "analysis");
    assert_eq!(targets(&analyses), ["10%", "25%", "50%"]);
    assert_eq!(
        analyses.iter().map(|s| s["ok"] == true).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert!(
        analyses[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("error rate 1%"),
        "{}",
        analyses[0]
    );
    // Rolled back: no traffic to the canary, canary back on 1.0, the other never touched.
    assert_eq!(read_value(state, "traffic").as_deref(), Some("0"));
    assert_eq!(version_of(state, &fleet[0]).as_deref(), Some("1.0"));
    assert_eq!(version_of(state, &fleet[1]).as_deref(), Some("1.0"));
    assert_eq!(targets(&steps(r, "update")), [fleet[0].instance()]);
    let rollback = &doc["rollback"];
    assert_eq!(rollback["outcome"], "succeeded");
    assert_eq!(targets(&steps(rollback, "traffic")), ["0%"]);
    assert_eq!(history(&config).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_stops_when_p99_latency_from_the_histogram_rises() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let canary = instance(state, Behaviour::Healthy).await;
    // 30 ms up to 10% of traffic, 800 ms beyond; never an error.
    let prom = metrics(state, |percent| {
        (0.0, if percent <= 10 { 0.03 } else { 0.8 })
    })
    .await;
    let config = write_config(
        state,
        &deploy_config(
            state,
            &[&canary],
            &canary_section(
                state,
                &prom,
                "[10, 25, 100]",
                "max_error_rate: 0.05, max_p99_ms: 500",
                "",
            ),
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "canary", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    let error = doc["deployment"]["error"].as_str().unwrap();
    // All observations in the (0.5, 1] bucket: p99 interpolates to 995 ms.
    assert!(
        error.starts_with("step 25%: p99 latency 995ms > max_p99_ms 500"),
        "{error}"
    );
    let analyses = steps(&doc["deployment"], "analysis");
    // 30 ms observations sit in the first bucket (0, 50ms]: p99 interpolates to about 49.5 ms.
    let first = analyses[0]["detail"].as_str().unwrap();
    assert!(
        first.contains("p99 49ms") || first.contains("p99 50ms"),
        "{first}"
    );
    assert_eq!(version_of(state, &canary).as_deref(), Some("1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_promotes_the_other_instances_after_the_last_step() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let fleet = [
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
    ];
    let prom = metrics(state, |_| (0.0, 0.03)).await;
    let refs: Vec<&Server> = fleet.iter().collect();
    let canary_list = format!("    instances: [\"{}\"]\n", fleet[1].instance());
    let config = write_config(
        state,
        &format!(
            "{}  rolling: {{ batch_size: 1 }}\n",
            deploy_config(
                state,
                &refs,
                &canary_section(
                    state,
                    &prom,
                    "[50, 100]",
                    "max_error_rate: 0.05, max_p99_ms: 500",
                    &canary_list
                ),
            )
        ),
    );
    let run = restage(&config, &["--json", "deploy", "canary", "2.0"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let r = &run.json()["deployment"];
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(read_value(state, "traffic").as_deref(), Some("100"));
    for s in &fleet {
        assert_eq!(version_of(state, s).as_deref(), Some("2.0"));
    }
    // The canary first, then the others one by one.
    assert_eq!(
        targets(&steps(r, "update")),
        [
            fleet[1].instance(),
            fleet[0].instance(),
            fleet[2].instance()
        ]
    );
}

fn blue_green_section(state: &Path, blue: &Server, green: &Server) -> String {
    format!(
        "  blue_green:\n    blue: [\"{}\"]\n    green: [\"{}\"]\n    switch: \"ln -sfn {{color}} {}/live\"\n    watch: 300ms\n",
        blue.instance(),
        green.instance(),
        state.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_colours_and_rollback_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let blue = instance(state, Behaviour::Healthy).await;
    let green = instance(state, Behaviour::Healthy).await;
    write_value(state, &blue.port().to_string(), "1.0");
    let config = write_config(
        state,
        &deploy_config(state, &[], &blue_green_section(state, &blue, &green)),
    );
    // Blue serves 1.0; green gets 2.0 and takes the traffic.
    let run = restage(&config, &["deploy", "blue-green", "2.0", "--from", "1.0"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(read_value(state, "live").as_deref(), Some("green"));
    assert_eq!(version_of(state, &green).as_deref(), Some("2.0"));
    assert_eq!(version_of(state, &blue).as_deref(), Some("1.0"));

    // Next time it is blue's turn.
    let run = restage(&config, &["deploy", "blue-green", "3.0"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(read_value(state, "live").as_deref(), Some("blue"));
    assert_eq!(version_of(state, &blue).as_deref(), Some("3.0"));

    // Rolling back to the last good version: green still runs 2.0, so only the switch moves.
    let run = restage(&config, &["deploy", "rollback", "--reason", "3.0 is slow"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(read_value(state, "live").as_deref(), Some("green"));
    assert_eq!(version_of(state, &green).as_deref(), Some("2.0"));
    let records = history(&config).await;
    let colors: Vec<&str> = records
        .iter()
        .map(|r| r["color"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(colors, ["green", "blue", "green"]);
    let last = &records[2];
    assert_eq!(last["strategy"], "rollback");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("3.0"), Some("2.0"))
    );
    assert_eq!(last["reason"], "3.0 is slow");
    assert_eq!(last["rollback_of"], records[1]["id"]);
    assert!(steps(last, "update").is_empty(), "{last}");
    assert_eq!(targets(&steps(last, "switch")), ["green"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_back_when_the_new_colour_fails_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let blue = instance(state, Behaviour::Healthy).await;
    // Healthy while idle (it passes its gate), 503 once it serves.
    let green = instance(state, Behaviour::UnhealthyWhenLive("green".into())).await;
    write_value(state, "live", "blue");
    let config = write_config(
        state,
        &deploy_config(state, &[], &blue_green_section(state, &blue, &green)),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "blue-green", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(read_value(state, "live").as_deref(), Some("blue"));
    let doc = run.json();
    let r = &doc["deployment"];
    assert_eq!(r["outcome"], "rolled_back");
    assert_eq!(r["color"], "blue");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("while watching: last HTTP 503"),
        "{r}"
    );
    assert_eq!(targets(&steps(r, "switch")), ["green"]);
    assert_eq!(steps(r, "watch")[0]["ok"], false);
    let rollback = &doc["rollback"];
    assert_eq!(rollback["outcome"], "succeeded");
    assert_eq!(targets(&steps(rollback, "switch")), ["blue"]);
    assert_eq!(history(&config).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_gate_failure_never_moves_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let blue = instance(state, Behaviour::Healthy).await;
    let green = instance(state, Behaviour::UnhealthyOn("2.0".into())).await;
    write_value(state, "live", "blue");
    let config = write_config(
        state,
        &deploy_config(state, &[], &blue_green_section(state, &blue, &green)),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "blue-green", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["deployment"]["outcome"], "failed");
    assert!(
        doc["deployment"]["error"]
            .as_str()
            .unwrap()
            .ends_with("traffic stayed on blue")
    );
    assert!(steps(&doc["deployment"], "switch").is_empty());
    assert!(doc["rollback"].is_null());
    assert_eq!(read_value(state, "live").as_deref(), Some("blue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let fleet = [
        instance(state, Behaviour::Healthy).await,
        instance(state, Behaviour::Healthy).await,
    ];
    let refs: Vec<&Server> = fleet.iter().collect();
    let config = write_config(state, &deploy_config(state, &refs, ""));
    let none = restage(&config, &["deploy", "rollback"]).await;
    assert_eq!(none.code, 1, "{none:?}");
    assert!(none.stderr.contains("nothing to roll back to"), "{none:?}");
    for v in ["1.0", "2.0"] {
        let run = restage(&config, &["deploy", "rolling", v]).await;
        assert_eq!(run.code, 0, "{run:?}");
    }
    let run = restage(&config, &["deploy", "rollback", "--reason", "bad release"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("rollback to 1.0 succeeded"), "{run:?}");
    for s in &fleet {
        assert_eq!(version_of(state, s).as_deref(), Some("1.0"));
    }
    let records = history(&config).await;
    let last = &records[2];
    assert_eq!(last["strategy"], "rollback");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("2.0"), Some("1.0"))
    );
    assert_eq!(last["reason"], "bad release");
    assert_eq!(last["rollback_of"], records[1]["id"]);
    let listing = restage(&config, &["deploy", "history"]).await;
    assert_eq!(listing.code, 0);
    let lines: Vec<&str> = listing.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listing.stdout);
    assert!(
        lines[2].contains("rollback")
            && lines[2].contains("2.0 -> 1.0")
            && lines[2].contains("reason: bad release"),
        "{}",
        lines[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_in_postgres_creates_its_table_and_hides_the_password() {
    let db = harness::TestDb::create("deploy_history").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let server = instance(state, Behaviour::Healthy).await;
    // Trust authentication ignores the password; it is there to prove it never shows.
    let url = db.url().replacen("postgres@", "postgres:sekrit@", 1);
    assert!(url.contains("sekrit"), "{url}");
    let config = write_config(
        state,
        &deploy_config(state, &[&server], &format!("  history: \"{url}\"\n")),
    );
    let run = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !run.stdout.contains("sekrit") && !run.stderr.contains("sekrit"),
        "{run:?}"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), max(outcome) FILTER (WHERE outcome <> 'in_progress') FROM restage_deployments",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 1));
    assert_eq!(row.get::<_, String>(2), "succeeded");
    let records = history(&config).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["to"], "1.0");
    assert!(!state.join(".restage").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_time_out_and_shell_mode_quotes_values() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let server = instance(state, Behaviour::Healthy).await;
    let config = write_config(
        state,
        &format!(
            "deploy:\n  instances: [\"{}\"]\n  update: \"sleep 5\"\n  command_timeout: 200ms\n  auto_rollback: false\n  {GATE}\n",
            server.instance()
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "rolling", "2.0", "--from", "1.0"],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["deployment"]["outcome"], "failed");
    let update = &steps(&doc["deployment"], "update")[0];
    assert!(
        update["detail"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 200ms"),
        "{update}"
    );
    assert!(doc["rollback"].is_null());

    let config = write_config(
        state,
        &format!(
            "deploy:\n  instances: [\"{}\"]\n  shell: true\n  update: \"echo {{version}} > {}/shell-{{instance_port}} && echo updated {{instance}}\"\n  {GATE}\n",
            server.instance(),
            state.display()
        ),
    );
    let run = restage(
        &config,
        &["--json", "deploy", "rolling", "2.0;touch-nothing"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let written = std::fs::read_to_string(state.join(format!("shell-{}", server.port()))).unwrap();
    assert_eq!(
        written, "2.0;touch-nothing\n",
        "the value stays one quoted word"
    );
    let doc = run.json();
    let update = &steps(&doc["deployment"], "update")[0];
    assert_eq!(update["output"], format!("updated {}", server.instance()));
    // Command output reaches the log too.
    assert!(
        run.stderr
            .contains(&format!("| updated {}", server.instance())),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_problems_exit_2_and_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let config = write_config(state, "health:\n  checks: []\n");
    let run = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("section `deploy` is missing; `deploy` needs it"),
        "{run:?}"
    );

    let config = write_config(
        state,
        "deploy:\n  instances: [\"127.0.0.1:1\"]\n  update: \"restart {verison}\"\n",
    );
    let run = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("restage.yaml:3:3: deploy.update: unknown placeholder `{verison}`, did you mean `{version}`?"),
        "{run:?}"
    );

    let config = write_config(
        state,
        "deploy:\n  instances: [\"127.0.0.1:1\"]\n  update: \"restart {version}\"\n",
    );
    let run = restage(&config, &["deploy", "canary", "1.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("section `deploy.canary` is missing; `deploy canary` needs it"),
        "{run:?}"
    );

    let config = write_config(
        state,
        "deploy:\n  instances: [\"127.0.0.1:1\"]\n  update: \"restart {color}\"\n",
    );
    let run = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("uses `{color}`, which only blue-green deployments have"),
        "{run:?}"
    );

    let config = write_config(
        state,
        "deploy:\n  instances: [\"127.0.0.1:1\"]\n  update: \"migrate {previous_version} {version}\"\n",
    );
    let run = restage(&config, &["deploy", "rolling", "1.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("pass --from VERSION"), "{run:?}");
    // Nothing was recorded for runs refused before they started.
    assert!(!state.join(".restage").exists());
}

/// Whether a process is gone (or a zombie waiting for a reaper, which is as dead).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_deployment_kills_its_commands_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let server = instance(state, Behaviour::Healthy).await;
    // The update leaves a grandchild (`sleep`) whose pid it writes down.
    let config = write_config(
        state,
        &format!(
            "deploy:\n  instances: [\"{}\"]\n  update: \"sh -c 'sleep 30 & echo $! > {}/sleep-pid; wait'\"\n  {GATE}\n",
            server.instance(),
            state.display()
        ),
    );
    let child = harness::restage()
        .config(&config)
        .args(["deploy", "rolling", "2.0", "--from", "1.0"])
        .env("RESTAGE_ACTOR", "tester")
        .default_progress()
        .tokio_command()
        .spawn()
        .unwrap();
    let pid_file = state.join("sleep-pid");
    let mut sleep_pid = None;
    for _ in 0..200 {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            sleep_pid = Some(pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sleep_pid = sleep_pid.expect("the update command never started");
    let restage_pid = child.id().unwrap() as i32;
    // SAFETY: signalling the child process this test started.
    unsafe {
        libc::kill(restage_pid, libc::SIGTERM);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("restage did not stop after SIGTERM")
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("failed: interrupted by SIGTERM"),
        "{stdout}"
    );
    let mut gone = false;
    for _ in 0..40 {
        if process_gone(sleep_pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the update's child process {sleep_pid} outlived the interrupted deployment"
    );
    let records = history(&config).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "failed");
    assert!(
        records[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted by SIGTERM")
    );
}
