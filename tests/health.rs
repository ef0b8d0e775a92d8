//! `restage health` end to end: the real binary against the local PostgreSQL and Redis, real
//! HTTP servers, and ports where nothing listens (issue 7).

use crate::{harness, http_harness};

use std::time::Duration;

use crate::http_harness::{Reply, closed_port, restage, scripted, serve, write_config};
use serde_json::Value;

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_up_is_healthy_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let api = serve(|_| Reply::ok().body("{\"status\":\"ok\"}")).await;
    let config = write_config(
        dir.path(),
        &format!(
            r#"health:
  timeout: 5s
  checks:
    - {{ name: staging-db, kind: postgres, url: "{pg}", critical: true }}
    - {{ name: cache, kind: redis, url: "{redis}" }}
    - {{ name: api, kind: http, url: "{api}", expect: 200, body: '"status":"ok"', timeout: 2s }}
    - {{ name: disk, kind: disk, path: {disk}, min_free_percent: 0 }}
"#,
            pg = harness::admin_url(),
            redis = harness::redis_url(),
            api = api.url("/health"),
            disk = dir.path().display(),
        ),
    );
    let run = restage(&config, &["--json", "health"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "healthy", "{doc}");
    assert!(
        doc["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{doc}"
    );
    for name in ["staging-db", "cache", "api", "disk"] {
        let c = check(&doc, name);
        assert_eq!(c["healthy"], true, "{c}");
        assert!(c["latency_ms"].is_u64(), "{c}");
    }
    assert_eq!(check(&doc, "staging-db")["critical"], true);
    assert_eq!(check(&doc, "cache")["critical"], false);
    let pg = check(&doc, "staging-db")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pg.starts_with("PostgreSQL 15") && pg.ends_with("primary"),
        "{pg}"
    );
    assert!(
        check(&doc, "cache")["detail"]
            .as_str()
            .unwrap()
            .starts_with("PONG")
    );
    assert_eq!(check(&doc, "api")["detail"], "HTTP 200");
    // The exact keys of the spec, in its order.
    let keys: Vec<&str> = doc["checks"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["name", "healthy", "critical", "latency_ms", "detail"]
    );

    // Without --json: a table on stdout, same exit code.
    let text = restage(&config, &["health"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.starts_with("healthy "), "{}", text.stdout);
    assert!(text.stdout.contains("staging-db"), "{}", text.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_critical_database_is_unhealthy_without_leaking_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let config = write_config(
        dir.path(),
        &format!(
            r#"health:
  checks:
    - {{ name: primary, kind: postgres, url: "postgres://app:hunter2@127.0.0.1:{port}/app", critical: true, timeout: 3s }}
    - {{ name: cache, kind: redis, url: "{redis}" }}
"#,
            redis = harness::redis_url()
        ),
    );
    let run = restage(&config, &["--json", "health"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "unhealthy");
    let primary = check(&doc, "primary");
    assert_eq!(primary["healthy"], false);
    assert_eq!(
        primary["detail"],
        format!("connection refused to 127.0.0.1:{port}")
    );
    assert_eq!(check(&doc, "cache")["healthy"], true);
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_non_critical_checks_are_degraded_and_say_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let down = serve(|_| Reply::status(503)).await;
    let wrong_body = serve(|_| Reply::ok().body("{\"status\":\"starting\"}")).await;
    let slow = serve(|_| Reply::ok().delayed(Duration::from_secs(3))).await;
    let redis_port = closed_port();
    let config = write_config(
        dir.path(),
        &format!(
            r#"health:
  checks:
    - {{ name: db, kind: postgres, url: "{pg}", critical: true }}
    - {{ name: cache, kind: redis, url: "redis://:s3cret@127.0.0.1:{redis_port}/0" }}
    - {{ name: down, kind: http, url: "{down}" }}
    - {{ name: body, kind: http, url: "{wrong_body}", body: '"status":"ok"' }}
    - {{ name: slow, kind: http, url: "{slow}", timeout: 200ms }}
    - {{ name: disk, kind: disk, path: /, min_free_percent: 100 }}
"#,
            pg = harness::admin_url(),
            down = down.url("/health"),
            wrong_body = wrong_body.url("/health"),
            slow = slow.url("/health"),
        ),
    );
    let run = restage(&config, &["--json", "health"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "degraded", "{doc}");
    assert_eq!(check(&doc, "db")["healthy"], true);
    let detail = |name: &str| check(&doc, name)["detail"].as_str().unwrap().to_string();
    assert_eq!(
        detail("cache"),
        format!("connection refused to 127.0.0.1:{redis_port}")
    );
    assert_eq!(
        detail("down"),
        format!("HTTP 503 from {}", down.url("/health"))
    );
    assert!(
        detail("body").contains("does not match"),
        "{}",
        detail("body")
    );
    assert!(
        detail("slow").starts_with("no answer within 200ms"),
        "{}",
        detail("slow")
    );
    assert!(
        detail("disk").contains("% free < 100% on /"),
        "{}",
        detail("disk")
    );
    let slow_latency = check(&doc, "slow")["latency_ms"].as_u64().unwrap();
    assert!((150..2500).contains(&slow_latency), "{slow_latency}");
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_counts_consecutive_runs_before_changing_state() {
    let dir = tempfile::tempdir().unwrap();
    // One request per run: pass, then three failures, then passes.
    let api = scripted(vec![200, 503, 503, 503, 200, 200]).await;
    let config = write_config(
        dir.path(),
        &format!(
            r#"health:
  interval: 50ms
  healthy_threshold: 2
  unhealthy_threshold: 2
  checks:
    - {{ name: api, kind: http, url: "{}", critical: true }}
"#,
            api.url("/health")
        ),
    );
    let run = restage(&config, &["--json", "health", "--watch", "--count", "6"]).await;
    let docs: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let statuses: Vec<&str> = docs.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "healthy",
            "healthy",
            "unhealthy",
            "unhealthy",
            "unhealthy",
            "healthy"
        ],
        "{run:?}"
    );
    assert!(
        docs[1]["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(failure 1 of 2 before unhealthy)")
    );
    assert!(
        docs[4]["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(pass 1 of 2 before healthy again)")
    );
    // The exit code is the last run's.
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(api.requests.load(std::sync::atomic::Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_get_health_for_a_load_balancer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let api = serve(move |_| {
        Reply::status(if flag.load(Ordering::SeqCst) {
            200
        } else {
            503
        })
    })
    .await;
    let config = write_config(
        dir.path(),
        &format!(
            r#"health:
  interval: 50ms
  healthy_threshold: 1
  unhealthy_threshold: 1
  checks:
    - {{ name: api, kind: http, url: "{}", critical: true }}
"#,
            api.url("/health")
        ),
    );
    let mut child = harness::restage()
        .config(&config)
        .args(["health", "--serve", "127.0.0.1:0"])
        .default_progress()
        .tokio_command()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let re = regex::Regex::new(r"http://(127\.0\.0\.1:\d+)/health").unwrap();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(m) = re.captures(&line) {
                return m[1].to_string();
            }
        }
        panic!("restage health --serve exited without serving");
    })
    .await
    .expect("restage health --serve did not say where it listens");

    let got = http_harness::get(&addr, "/health").await.unwrap();
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.header("content-type"), Some("application/health+json"));
    let doc: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(doc["status"], "healthy");
    assert_eq!(doc["checks"][0]["name"], "api");

    assert_eq!(
        http_harness::get(&addr, "/other").await.unwrap().status,
        404
    );

    // The API goes down: within a few intervals the load balancer sees 503.
    up.store(false, Ordering::SeqCst);
    let mut last = None;
    for _ in 0..100 {
        let got = http_harness::get(&addr, "/health").await.unwrap();
        if got.status == 503 {
            last = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = last.expect("/health never turned 503 after the API went down");
    let doc: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(doc["status"], "unhealthy");
    assert_eq!(
        doc["checks"][0]["detail"],
        format!("HTTP 503 from {}", api.url("/health"))
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_problems_exit_2_and_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "jobs: 2\n");
    let run = restage(&config, &["health"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("section `health` is missing; `health` needs it"),
        "{run:?}"
    );

    let config = write_config(
        dir.path(),
        "health:\n  checks:\n    - { name: api, kind: http, url: 'http://127.0.0.1:1/', expekt: 200 }\n",
    );
    let run = restage(&config, &["health"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("restage.yaml:3:"), "{run:?}");
    assert!(run.stderr.contains("did you mean `expect`?"), "{run:?}");

    // Several problems are reported together.
    let config = write_config(
        dir.path(),
        "health:\n  checks:\n    - { name: a, kind: postgres }\n    - { name: d, kind: disk, path: /, min_free_percent: 120 }\n",
    );
    let run = restage(&config, &["health"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("restage.yaml:3:") && run.stderr.contains("needs `url`"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("120 is not between 0 and 100"),
        "{run:?}"
    );
}
