//! Nightly operations end to end (issue 16): the metrics textfile and the Pushgateway push
//! of real refreshes, parsed back with a Prometheus text parser; `restage status` from the
//! staging server; webhooks and command notifications received by local servers; dead
//! notifiers that change nothing; `restage alerts` checked and unit-tested by promtool.
//!
//! promtool (Debian package `prometheus`): a test that needs it skips with a loud message
//! only when it is absent and `RESTAGE_REQUIRE_TOOLS` is unset; `.ci/run` sets it, so CI
//! never skips.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Setup};
use crate::http_harness::{self, closed_port, received, recorder};

const SCHEMA: &str = "
    CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, plan text);
    INSERT INTO users SELECT g, 'person' || g || '@example.org', 'free' FROM generate_series(1, 40) g;
    CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users, total numeric);
    INSERT INTO orders SELECT g, 1 + g % 40, g FROM generate_series(1, 100) g;";

const RULES: &str = "tables:\n  public.users:\n    email: email\n";

/// A source with personal emails, the rules that replace them, and `extra` config.
async fn setup(prefix: &str) -> Setup {
    let setup = Setup::new(prefix, SCHEMA, "strict: off").await;
    setup.write_rules("users.yaml", RULES);
    setup
}

/// Writes the config with `extra`, the source reached directly or (`dead_source`) at a port
/// where nothing listens, which fails the run with exit 1 before anything is touched.
fn configure(setup: &Setup, extra: &str, dead_source: bool) {
    // One dead port for the whole process, so two failed runs fail alike.
    static DEAD: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let source = if dead_source {
        harness::url_via(*DEAD.get_or_init(closed_port), "nowhere")
    } else {
        setup.source.url()
    };
    setup.write_config_urls(
        &source,
        &harness::admin_url(),
        &format!("strict: off\n{extra}"),
    );
}

async fn restage(setup: &Setup, args: &[&str]) -> harness::command::Output {
    setup.restage().args(args).run_async().await
}

/// One sample of a scrape: its value, by name and (a subset of) its labels.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("Prometheus text that parses"))
    }

    fn read(path: &Path) -> Scrape {
        Scrape::parse(&std::fs::read_to_string(path).expect("the metrics textfile"))
    }

    fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(HashMap<String, String>, f64)> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                };
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (labels, value)
            })
            .collect()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let all = self.all(name, labels);
        assert_eq!(all.len(), 1, "one {name}{labels:?}, found {all:?}");
        all[0].1
    }

    fn kind(&self, name: &str) -> &'static str {
        match self
            .0
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| &s.value)
        {
            Some(prometheus_parse::Value::Counter(_)) => "counter",
            Some(prometheus_parse::Value::Gauge(_)) => "gauge",
            Some(_) => "other",
            None => "absent",
        }
    }
}

/// promtool, or None when it is absent and the tests may skip (loudly).
fn promtool() -> Option<&'static str> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var_os("RESTAGE_REQUIRE_TOOLS").is_some() {
        panic!("promtool is required (RESTAGE_REQUIRE_TOOLS is set): apt-get install prometheus");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: promtool is not installed (apt-get install prometheus); the promtool checks of this test did not run !!!!!!!!\n"
    );
    None
}

/// Runs `program args` with `input` on its stdin: (success, stdout + stderr).
fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A refresh writes the textfile with the expected series and values; `restage status`
/// says the same from the server; `verify` adds its series without removing the refresh's;
/// a failed refresh keeps the last success and counts the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_refresh_writes_its_metrics_and_status() {
    let setup = setup("mon_file").await;
    let textfile = setup.dir.path().join("textfile").join("restage.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    let extra = format!("metrics:\n  textfile: {}\n", textfile.display());
    configure(&setup, &extra, false);
    let db = setup.staging.as_str();

    let before = now();
    let run = restage(&setup, &["refresh"]).await;
    let after = now();
    assert_eq!(run.code, 0, "{run:?}");
    let m = Scrape::read(&textfile);
    let refresh = [("database", db), ("command", "refresh")];
    assert_eq!(m.value("restage_last_run_success", &refresh), 1.0);
    assert_eq!(m.value("restage_last_run_exit_code", &refresh), 0.0);
    assert_eq!(m.value("restage_runs_total", &refresh), 1.0);
    assert_eq!(m.value("restage_run_failures_total", &refresh), 0.0);
    assert_eq!(m.kind("restage_runs_total"), "counter");
    assert_eq!(m.kind("restage_last_run_success"), "gauge");
    let (start, end) = (
        m.value("restage_last_run_start_timestamp_seconds", &refresh),
        m.value("restage_last_run_end_timestamp_seconds", &refresh),
    );
    assert!(
        before - 1.0 <= start && start <= end && end <= after + 1.0,
        "{start} {end}"
    );
    assert_eq!(
        m.value("restage_last_success_timestamp_seconds", &refresh),
        end
    );
    let duration = m.value("restage_last_run_duration_seconds", &refresh);
    assert!(
        duration > 0.0 && duration <= after - before + 1.0,
        "{duration}"
    );
    for table in ["public.users", "public.orders"] {
        let t = [("database", db), ("table", table)];
        let rows = if table == "public.users" { 40.0 } else { 100.0 };
        assert_eq!(m.value("restage_table_rows_written", &t), rows, "{table}");
        assert_eq!(m.value("restage_table_rows_read", &t), rows, "{table}");
        assert!(m.value("restage_table_bytes", &t) >= 8192.0, "{table}");
        assert!(m.value("restage_table_duration_seconds", &t) >= 0.0);
    }
    assert_eq!(m.value("restage_last_run_rows_written", &refresh), 140.0);
    for stage in ["plan", "data", "verify", "swap"] {
        let mut l = refresh.to_vec();
        l.push(("stage", stage));
        assert!(
            m.value("restage_stage_duration_seconds", &l) >= 0.0,
            "{stage}"
        );
    }
    assert_eq!(m.value("restage_verification_passed", &refresh), 1.0);
    assert!(m.value("restage_verification_values_checked", &refresh) >= 40.0);
    assert_eq!(m.value("restage_verification_leaks", &refresh), 0.0);
    assert_eq!(
        m.value("restage_state_read_from_server", &[("database", db)]),
        1.0
    );
    assert_eq!(
        m.value("restage_generations_kept", &[("database", db)]),
        0.0
    );
    let live = m.all("restage_live_info", &[("database", db)]);
    assert_eq!(live.len(), 1, "{live:?}");
    let generation = live[0].0["generation"].clone();
    let digest = live[0].0["rules_digest"].clone();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let snapshot = m.value(
        "restage_live_snapshot_timestamp_seconds",
        &[("database", db)],
    );
    assert!(before - 1.0 <= snapshot && snapshot <= end, "{snapshot}");
    let since = m.value("restage_live_since_timestamp_seconds", &[("database", db)]);
    assert!(snapshot <= since && since <= end, "{since}");
    assert!(m.value("restage_live_bytes", &[("database", db)]) > 0.0);
    // The generation in the metrics is the one the server lists as live.
    let gens = restage(&setup, &["--json", "generations"]).await.json();
    let live_generation = gens
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["is_live"] == true)
        .map(|d| d["generation_name"].as_str().unwrap().to_string());
    assert_eq!(live_generation.as_deref(), Some(generation.as_str()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&textfile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");
        let names: Vec<_> = std::fs::read_dir(textfile.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["restage.prom"], "no temporary file left behind");
    }
    if let Some(promtool) = promtool() {
        let text = std::fs::read(&textfile).unwrap();
        let (ok, said) = run_with_stdin(promtool, &["check", "metrics"], &text);
        assert!(ok, "promtool check metrics: {said}");
    }

    // `restage status` reads the same from the server.
    let status = restage(&setup, &["--json", "status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let doc = status.json();
    assert_eq!(doc["database"], db);
    assert_eq!(doc["live"]["generation"], generation.as_str());
    assert_eq!(doc["live"]["swapped_in_by"], "refresh");
    assert_eq!(doc["live"]["built"]["rules_digest"], digest.as_str());
    assert!(doc["live"]["built"]["snapshot_at"].is_string(), "{doc}");
    assert_eq!(doc["runs"]["refresh"]["last"]["exit_code"], 0);
    assert_eq!(doc["runs"]["refresh"]["runs"], 1);
    let line = restage(&setup, &["status"]).await;
    assert_eq!(line.code, 0, "{line:?}");
    assert_eq!(line.stdout.lines().count(), 1, "{line:?}");
    assert!(
        line.stdout.contains(&format!("generation {generation}")),
        "{line:?}"
    );
    assert!(
        line.stdout.contains(&format!("rules {}", &digest[..19])),
        "{line:?}"
    );
    assert!(
        line.stdout.contains("; last refresh succeeded "),
        "{line:?}"
    );

    // `restage verify` adds its series; the refresh's stay.
    let run = restage(&setup, &["verify"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let m = Scrape::read(&textfile);
    let verify = [("database", db), ("command", "verify")];
    assert_eq!(m.value("restage_last_run_success", &verify), 1.0);
    assert!(m.value("restage_verification_values_checked", &verify) >= 40.0);
    assert_eq!(
        m.value("restage_last_run_end_timestamp_seconds", &refresh),
        end
    );
    assert_eq!(m.all("restage_table_rows_written", &[]).len(), 2);

    // A failed night: the failure is counted, the last success and what is live stay.
    configure(&setup, &extra, true);
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let m = Scrape::read(&textfile);
    assert_eq!(m.value("restage_last_run_success", &refresh), 0.0);
    assert_eq!(m.value("restage_last_run_exit_code", &refresh), 1.0);
    assert_eq!(m.value("restage_runs_total", &refresh), 2.0);
    assert_eq!(m.value("restage_run_failures_total", &refresh), 1.0);
    assert_eq!(
        m.value("restage_last_success_timestamp_seconds", &refresh),
        end
    );
    assert_eq!(
        m.all("restage_live_info", &[("database", db)])[0].0["generation"],
        generation
    );
    assert!(
        m.all("restage_table_rows_written", &[]).is_empty(),
        "the failed run loaded no table"
    );
    let line = restage(&setup, &["status"]).await;
    assert!(line.stdout.contains("; last refresh FAILED "), "{line:?}");
    assert!(line.stdout.contains("(exit 1): failed: "), "{line:?}");
}

/// The records follow the staging name across a rollback: after refresh, refresh, rollback,
/// the status shows the second refresh as the last one, the rollback recorded, and the
/// rolled-back generation live with what built it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_rollback_keeps_the_run_records() {
    let setup = setup("mon_rollback").await;
    configure(&setup, "", false);
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let first = restage(&setup, &["--json", "status"]).await.json();
    // Generation names have a one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let second = restage(&setup, &["--json", "status"]).await.json();
    let run = restage(&setup, &["rollback"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = restage(&setup, &["--json", "status"]).await.json();
    assert_eq!(
        doc["live"]["generation"], first["live"]["generation"],
        "{doc}"
    );
    assert_eq!(doc["live"]["swapped_in_by"], "rollback", "{doc}");
    assert_eq!(
        doc["live"]["built"], first["live"]["built"],
        "what built the generation comes back with it"
    );
    // The last refresh is the second one (carried over), not the one that built this
    // generation.
    assert_eq!(doc["runs"]["refresh"], second["runs"]["refresh"], "{doc}");
    assert_ne!(doc["runs"]["refresh"], first["runs"]["refresh"]);
    assert_eq!(doc["runs"]["rollback"]["last"]["exit_code"], 0, "{doc}");
    assert_eq!(doc["generations_kept"], 1, "{doc}");
    let line = restage(&setup, &["status"]).await.stdout;
    assert!(line.contains(" by a rollback, "), "{line}");
    assert!(line.contains("; then rollback succeeded "), "{line}");
}

/// A push reaches the Pushgateway once per run, grouped by job and instance; a dead one
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_push_reaches_the_gateway_grouped_by_job_and_instance() {
    let setup = setup("mon_push").await;
    let (gateway, log) = recorder(200, Duration::ZERO).await;
    configure(
        &setup,
        &format!(
            "metrics:\n  pushgateway: {}\n  timeout: 5s\n",
            gateway.url("")
        ),
        false,
    );
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let pushes = received(&log);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let push = &pushes[0];
    assert_eq!(push.method, "PUT");
    assert_eq!(
        push.path,
        format!("/metrics/job/restage/instance/{}", setup.staging)
    );
    assert_eq!(
        push.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = Scrape::parse(&push.body);
    let refresh = [("database", setup.staging.as_str()), ("command", "refresh")];
    assert_eq!(m.value("restage_last_run_success", &refresh), 1.0);
    assert_eq!(m.value("restage_runs_total", &refresh), 1.0);

    // Another job and instance name; a value that is not a URL word goes base64url-encoded.
    configure(
        &setup,
        &format!(
            "metrics:\n  pushgateway: {}\n  job: nightly\n  instance: eu/staging\n",
            gateway.url("/prefix/")
        ),
        false,
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let pushes = received(&log);
    assert_eq!(pushes.len(), 2);
    assert_eq!(
        pushes[1].path,
        "/prefix/metrics/job/nightly/instance@base64/ZXUvc3RhZ2luZw=="
    );
    let m = Scrape::parse(&pushes[1].body);
    assert_eq!(m.value("restage_last_run_success", &refresh), 1.0);
    // The second refresh swapped a new database in: its records start with it.
    assert_eq!(m.value("restage_runs_total", &refresh), 1.0);

    // A Pushgateway that is not there, or answers 500: logged, the run is what it was.
    for url in [format!("http://127.0.0.1:{}", closed_port()), {
        let (failing, _) = recorder(500, Duration::ZERO).await;
        let url = failing.url("");
        std::mem::forget(failing);
        url
    }] {
        configure(&setup, &format!("metrics:\n  pushgateway: {url}\n"), false);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let run = restage(&setup, &["refresh"]).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("is live"), "{run:?}");
        assert!(run.stderr.contains("could not push the metrics"), "{run:?}");
    }
}

/// Each webhook gets one JSON document per configured event and nothing on the others; the
/// command gets the document on its stdin; nothing personal or secret is in any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_webhooks_receive_one_document_per_configured_event() {
    let setup = setup("mon_notify").await;
    let (on_failure, failures) = recorder(200, Duration::ZERO).await;
    let (on_success, successes) = recorder(204, Duration::ZERO).await;
    let (on_both, both) = recorder(200, Duration::ZERO).await;
    let out = setup.dir.path().join("notified");
    std::fs::create_dir_all(&out).unwrap();
    let extra = format!(
        "notify:\n  - {{ on: [failure], webhook: '{}' }}\n  - {{ on: [success], webhook: '{}', format: slack }}\n  - {{ on: [failure, success], webhook: '{}', format: json }}\n  - {{ on: [failure, success], command: \"sh -c 'cat > \\\"$0\\\"' {}/{{command}}-{{event}}-{{exit_code}}.json\" }}\n",
        on_failure.url("/hooks/failure"),
        on_success.url("/services/T000/B000/XXXX"),
        on_both.url("/both"),
        out.display()
    );
    configure(&setup, &extra, false);
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(received(&failures).is_empty(), "told of a success");
    let slack = received(&successes);
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert_eq!(slack[0].method, "POST");
    assert_eq!(slack[0].path, "/services/T000/B000/XXXX");
    assert_eq!(slack[0].content_type.as_deref(), Some("application/json"));
    let message = slack[0].json();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with(":white_check_mark: restage refresh succeeded on ")
            && text.contains(&setup.staging),
        "{text}"
    );
    assert_eq!(message["attachments"][0]["color"], "good");
    let docs = received(&both);
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = docs[0].json();
    assert_eq!(doc["event"], "success");
    assert_eq!(doc["command"], "refresh");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["database"], setup.staging.as_str());
    assert_eq!(doc["totals"]["rows_written"], 140);
    assert_eq!(doc["verification"]["passed"], true);
    assert!(doc.get("tables").is_none(), "{doc}");
    let from_command: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("refresh-success-0.json")).expect("the command ran"),
    )
    .unwrap();
    assert_eq!(from_command, doc, "the command gets the same document");
    for body in [&slack[0].body, &docs[0].body] {
        assert!(!body.contains("@example.org"), "a source value: {body}");
        assert!(
            !body.contains("test-secret-0123456789abcdef"),
            "the secret: {body}"
        );
    }

    // A failed night: the failure hooks get it, the success hook does not.
    configure(&setup, &extra, true);
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let failed = received(&failures);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let doc = failed[0].json();
    assert_eq!(doc["event"], "failure");
    assert_eq!(doc["exit_code"], 1);
    let outcome = doc["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("failed: ") && outcome.contains("127.0.0.1:"),
        "{outcome}"
    );
    assert_eq!(received(&successes).len(), 1, "not told of a failure");
    assert_eq!(received(&both).len(), 2);
    assert_eq!(received(&both)[1].json(), doc);
    assert!(out.join("refresh-failure-1.json").exists());
}

/// Notifiers that are down, hang or cannot run change nothing: the same exit codes, the
/// same output, within their timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_dead_webhook_changes_nothing() {
    let setup = setup("mon_dead").await;
    let (slow, slow_log) = recorder(200, Duration::from_secs(30)).await;
    let extra = format!(
        "notify:\n  - {{ on: [failure, success], webhook: 'http://127.0.0.1:{}/x' }}\n  - {{ on: [failure, success], webhook: '{}', timeout: 1s }}\n  - {{ on: [failure, success], command: /nonexistent/pager }}\n  - {{ on: [failure, success], command: 'sleep 30', timeout: 1s }}\n",
        closed_port(),
        slow.url("/slow"),
    );
    configure(&setup, &extra, false);
    let started = std::time::Instant::now();
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("is live"), "{run:?}");
    let warnings = run.stderr.matches("notification failed").count();
    assert_eq!(warnings, 4, "{}", run.stderr);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    assert!(run.stderr.contains("no answer within 1s"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot run `/nonexistent/pager`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`sleep` did not finish within 1s; killed"),
        "{}",
        run.stderr
    );
    assert_eq!(received(&slow_log).len(), 1, "the slow hook was called");
    // The webhook's path (a token in a Slack URL) is not logged.
    assert!(!run.stderr.contains("/slow"), "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the notifiers ran at once"
    );

    configure(&setup, "", true);
    let without = restage(&setup, &["refresh"]).await;
    configure(&setup, &extra, true);
    let with = restage(&setup, &["refresh"]).await;
    assert_eq!((without.code, with.code), (1, 1), "{with:?}");
    let last = |s: &str| {
        s.lines()
            .rfind(|l| l.starts_with("restage: error:"))
            .map(str::to_string)
    };
    assert_eq!(last(&with.stderr), last(&without.stderr));
    assert_eq!(with.stdout, without.stdout);

    // A webhook URL that is not one is a config error before anything runs (exit 2), named
    // by its key and never shown.
    configure(
        &setup,
        "notify:\n  - { webhook: 'ftp://hooks.example/T0/secret-token' }\n",
        false,
    );
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("notify.0.webhook"), "{run:?}");
    assert!(!run.stderr.contains("secret-token"), "{run:?}");
    setup.validate_refuses().unwrap();
    configure(
        &setup,
        "notify:\n  - { webhook: 'T0-secret-token' }\n",
        false,
    );
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("notify.0.webhook: the URL is not an http:// or https:// URL"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("secret-token"), "{run:?}");
    setup.validate_refuses().unwrap();
    // So does a Pushgateway URL that does not resolve, and validate refuses it too.
    configure(
        &setup,
        "metrics:\n  pushgateway: ${RESTAGE_TEST_UNSET_GATEWAY}\n",
        false,
    );
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "metrics.pushgateway: environment variable RESTAGE_TEST_UNSET_GATEWAY is not set"
        ),
        "{run:?}"
    );
    setup.validate_refuses().unwrap();
}

/// `restage alerts` passes `promtool check rules`; `promtool test rules` proves the stale
/// alert fires and clears (for a refreshed and for a restored staging database, never for
/// an old `verify`), and the failed and slow ones fire on sample series.
#[tokio::test]
async fn monitoring_alert_rules_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let run = harness::restage()
        .args([
            "alerts",
            "--runbook-base",
            "https://docs.example/operations.md",
        ])
        .run_async()
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    for bad in [["--slow-factor", "0"], ["--stale-after", "0s"]] {
        let refused = harness::restage().arg("alerts").args(bad).run_async().await;
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(refused.stdout.is_empty(), "{refused:?}");
    }
    let rules = dir.path().join("restage-rules.yml");
    std::fs::write(&rules, &run.stdout).unwrap();
    let Some(promtool) = promtool() else {
        return;
    };
    let check = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 5 rules found"));

    // Hourly samples from t=0. The last success stays at 0 until a refresh succeeds at 29h.
    // A refresh that failed from 30h to 32h. Nightly durations: ~600s, then 1800s at day 9.
    let tests = r#"rule_files: [restage-rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1h
    input_series:
      - series: 'restage_last_success_timestamp_seconds{database="app",command="refresh"}'
        values: '0x28 104400x10'
      - series: 'restage_last_success_timestamp_seconds{database="airgap",command="restore"}'
        values: '0x28 104400x10'
      - series: 'restage_last_success_timestamp_seconds{database="app",command="verify"}'
        values: '0x38'
    alert_rule_test:
      - { eval_time: 25h, alertname: RestageStagingStale, exp_alerts: [] }
      - eval_time: 27h
        alertname: RestageStagingStale
        exp_alerts:
          - exp_labels: { severity: warning, database: app, command: refresh }
            exp_annotations:
              summary: staging app is stale
              description: The last successful refresh of app ended 1d 3h 0m 0s ago (threshold 26h).
              runbook_url: https://docs.example/operations.md#restagestagingstale
          - exp_labels: { severity: warning, database: airgap, command: restore }
            exp_annotations:
              summary: staging airgap is stale
              description: The last successful restore of airgap ended 1d 3h 0m 0s ago (threshold 26h).
              runbook_url: https://docs.example/operations.md#restagestagingstale
      - { eval_time: 30h, alertname: RestageStagingStale, exp_alerts: [] }
  - interval: 1h
    input_series:
      - series: 'restage_last_run_exit_code{database="app",command="refresh"}'
        values: '0x29 1x2 0x5'
      - series: 'restage_last_run_exit_code{database="app",command="verify"}'
        values: '3x36'
    alert_rule_test:
      - { eval_time: 29h, alertname: RestageRunFailed, exp_alerts: [] }
      - eval_time: 31h
        alertname: RestageRunFailed
        exp_alerts:
          - exp_labels: { severity: warning, database: app, command: refresh }
            exp_annotations:
              summary: restage refresh failed for app
              description: The last `restage refresh` of app exited 1 (1 runtime failure, 2 config or rules, 4 another run held the lock). `restage status` shows its last line.
              runbook_url: https://docs.example/operations.md#restagerunfailed
      - { eval_time: 34h, alertname: RestageRunFailed, exp_alerts: [] }
      - eval_time: 34h
        alertname: RestageVerificationFailed
        exp_alerts:
          - exp_labels: { severity: critical, database: app, command: verify }
            exp_annotations:
              summary: restage verification failed for app
              description: The last `restage verify` of app found protected source values in staging (a leak) or broken foreign keys. After a refresh, staging was not swapped; after `restage verify`, the leak is in live staging.
              runbook_url: https://docs.example/operations.md#restageverificationfailed
  - interval: 1d
    input_series:
      - series: 'restage_last_run_duration_seconds{database="app",command="refresh"}'
        values: '600 610 590 600 605 595 600 600 600 1800 1800 600 600'
      - series: 'restage_cache_warmed{database="app"}'
        values: '1 1 1 1 1 1 1 1 1 1 1 1 0'
    alert_rule_test:
      - { eval_time: 8d, alertname: RestageRunSlow, exp_alerts: [] }
      - eval_time: 9d
        alertname: RestageRunSlow
        exp_alerts:
          - exp_labels: { severity: warning, database: app, command: refresh }
            exp_annotations:
              summary: restage refresh of app was slow
              description: The last refresh of app took 30m 0s, more than 2x its average over the 7d before.
              runbook_url: https://docs.example/operations.md#restagerunslow
      - { eval_time: 11d, alertname: RestageRunSlow, exp_alerts: [] }
      - { eval_time: 11d, alertname: RestageCacheNotWarmed, exp_alerts: [] }
      - eval_time: 12d
        alertname: RestageCacheNotWarmed
        exp_alerts:
          - exp_labels: { severity: warning, database: app }
            exp_annotations:
              summary: the cache of staging app was not warmed
              description: 'The latest cache warming of app (a refresh''s, or `restage warm`) failed: staging apps read a cold or stale cache.'
              runbook_url: https://docs.example/operations.md#restagecachenotwarmed
"#;
    let test_file = dir.path().join("restage-rules.test.yml");
    std::fs::write(&test_file, tests).unwrap();
    let test = std::process::Command::new(promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "restage-rules.test.yml"])
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// `health --serve` answers `/metrics` in the Prometheus format: the status document as
/// series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_health_serves_metrics() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let config = http_harness::write_config(
        dir.path(),
        &format!(
            "health:\n  interval: 100ms\n  checks:\n    - {{ name: staging-db, kind: postgres, url: \"{}\", critical: true }}\n    - {{ name: api, kind: http, url: \"http://127.0.0.1:{}/\" }}\n",
            harness::admin_url(),
            closed_port()
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
    let got = http_harness::get(&addr, "/metrics").await.unwrap();
    child.kill().await.unwrap();
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(
        got.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = Scrape::parse(&got.body);
    assert_eq!(
        m.value("restage_health_status", &[("status", "degraded")]),
        1.0
    );
    assert_eq!(
        m.value("restage_health_status", &[("status", "healthy")]),
        0.0
    );
    assert_eq!(
        m.value(
            "restage_health_check_healthy",
            &[("check", "staging-db"), ("critical", "true")]
        ),
        1.0
    );
    assert_eq!(
        m.value("restage_health_check_healthy", &[("check", "api")]),
        0.0
    );
    assert!(
        m.value(
            "restage_health_check_latency_seconds",
            &[("check", "staging-db")]
        ) >= 0.0
    );
    let at = m.value("restage_health_timestamp_seconds", &[]);
    assert!((now() - at).abs() < 60.0, "{at}");
}

/// A signal while the run is being told (a notification that hangs) ends the process at
/// once, with the run's own exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_signal_stops_the_telling() {
    let setup = setup("mon_signal").await;
    let started = setup.dir.path().join("notifier-started");
    configure(
        &setup,
        &format!(
            "notify:\n  - {{ on: [success], command: \"sh -c 'echo $$ > {}; sleep 60'\", timeout: 120s }}\n",
            started.display()
        ),
        false,
    );
    let child = setup.restage().arg("refresh").spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::fs::read_to_string(&started).map_or(true, |p| !p.ends_with('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "the notifier never started: {}",
            child.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signalled = std::time::Instant::now();
    child.signal(libc::SIGTERM);
    let (code, out, err) = child.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "the refresh succeeded: {out}\n{err}");
    assert!(out.contains("is live"), "{out}");
    assert!(
        err.contains("stopped recording and telling the run: interrupted"),
        "{err}"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "it did not wait for the notifier"
    );
    // The notifier's process group (the shell and its sleep) went with it.
    let pid: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        // SAFETY: signal 0 only asks whether the group still exists.
        if unsafe { libc::kill(-pid, 0) } != 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the notifier's process group {pid} is still running");
}

/// A refresh and `restage warm` set the cache series: warmed with its keys, or not warmed
/// when Redis is down (what `RestageCacheNotWarmed` fires on), whichever ran last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_cache_warming_sets_the_cache_series() {
    let setup = setup("mon_cache").await;
    let textfile = setup.dir.path().join("restage.prom");
    let prefix = harness::redis_prefix("mon_cache");
    let cache = |url: &str| {
        format!(
            "metrics:\n  textfile: {}\ncache:\n  url: {url}\n  flush: [\"{prefix}\"]\n  warm:\n    - {{ query: 'SELECT id, plan FROM users ORDER BY id', key: \"{prefix}user:{{id}}\", value: plan, ttl: 5m }}\n",
            textfile.display()
        )
    };
    configure(&setup, &cache(&harness::redis_url()), false);
    let run = restage(&setup, &["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let db = [("database", setup.staging.as_str())];
    let m = Scrape::read(&textfile);
    assert_eq!(m.value("restage_cache_warmed", &db), 1.0);
    assert_eq!(m.value("restage_cache_keys_warmed", &db), 40.0);
    let mut stage = vec![("database", setup.staging.as_str()), ("command", "refresh")];
    stage.push(("stage", "cache"));
    assert!(m.value("restage_stage_duration_seconds", &stage) >= 0.0);

    // `restage warm` against a Redis that is not there: exit 1, the cache is not warm.
    let dead = format!("redis://127.0.0.1:{}/0", closed_port());
    configure(&setup, &cache(&dead), false);
    let run = restage(&setup, &["warm"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let m = Scrape::read(&textfile);
    assert_eq!(m.value("restage_cache_warmed", &db), 0.0);
    let warm = [("database", setup.staging.as_str()), ("command", "warm")];
    assert_eq!(m.value("restage_last_run_exit_code", &warm), 1.0);

    // It warms again: the latest warming is what counts.
    configure(&setup, &cache(&harness::redis_url()), false);
    let run = restage(&setup, &["warm"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let m = Scrape::read(&textfile);
    assert_eq!(m.value("restage_cache_warmed", &db), 1.0);
    assert_eq!(m.value("restage_cache_keys_warmed", &db), 40.0);
    assert_eq!(m.value("restage_last_run_success", &warm), 1.0);

    // The test's keys go with it.
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 40);
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The air-gapped pair is told like a refresh: `restage dump` (production's side) writes its
/// metrics without touching any staging server; `restage restore` (staging's side) records
/// itself in the database it swapped in — `restage status` says it went live by a restore,
/// with the archive's snapshot and rules — and publishes the per-table series; a restore
/// that fails is counted as a failure, the last success kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_dump_and_restore_are_recorded_and_told() {
    let setup = setup("mon_dump").await;
    let dump_metrics = setup.dir.path().join("dump.prom");
    configure(
        &setup,
        &format!("metrics:\n  textfile: {}\n", dump_metrics.display()),
        false,
    );
    let archives = setup.dir.path().join("archives");
    let dumped = setup
        .restage()
        .arg("dump")
        .arg("--to")
        .arg(&archives)
        .run_async()
        .await;
    assert_eq!(dumped.code, 0, "{dumped:?}");
    let db = setup.staging.as_str();
    let m = Scrape::read(&dump_metrics);
    let dump = [("database", db), ("command", "dump")];
    assert_eq!(m.value("restage_last_run_success", &dump), 1.0);
    assert_eq!(m.value("restage_last_run_exit_code", &dump), 0.0);
    assert_eq!(m.value("restage_last_run_rows_written", &dump), 140.0);
    assert_eq!(m.value("restage_verification_passed", &dump), 1.0);
    assert!(m.value("restage_verification_values_checked", &dump) >= 40.0);
    // It read no staging server: only this run is known, and nothing is live by it.
    assert_eq!(
        m.value("restage_state_read_from_server", &[("database", db)]),
        0.0
    );
    assert!(m.all("restage_live_info", &[]).is_empty());
    assert!(
        harness::databases_like(db).await.is_empty(),
        "a dump creates no staging database"
    );
    let archive = crate::dump::only_archive(&archives);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(archive.join("manifest.json")).unwrap()).unwrap();
    let digest = manifest["rules_digest"].as_str().expect("a rules digest");

    // Staging's side: its own config (no source, no secret, no rules).
    let restored = setup.source.sibling("rst");
    let restore_metrics = setup.dir.path().join("restore.prom");
    let config = crate::dump::restore_config(
        &setup,
        &restored,
        &format!("metrics:\n  textfile: {}", restore_metrics.display()),
    );
    let restore = |from: std::path::PathBuf| {
        let config = config.clone();
        async move {
            harness::restage()
                .config(&config)
                .arg("restore")
                .arg("--from")
                .arg(from)
                .run_async()
                .await
        }
    };
    let run = restore(archives.clone()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let m = Scrape::read(&restore_metrics);
    let rst = [("database", restored.as_str()), ("command", "restore")];
    assert_eq!(m.value("restage_last_run_success", &rst), 1.0);
    assert_eq!(m.value("restage_runs_total", &rst), 1.0);
    assert_eq!(m.value("restage_last_run_rows_written", &rst), 140.0);
    for (table, rows) in [("public.users", 40.0), ("public.orders", 100.0)] {
        let t = [("database", restored.as_str()), ("table", table)];
        assert_eq!(m.value("restage_table_rows_written", &t), rows, "{table}");
    }
    let live = m.all("restage_live_info", &[("database", restored.as_str())]);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].0["rules_digest"], digest);
    assert_eq!(
        m.value(
            "restage_state_read_from_server",
            &[("database", restored.as_str())]
        ),
        1.0
    );
    let status = harness::restage()
        .config(&config)
        .args(["--json", "status"])
        .run_async()
        .await;
    assert_eq!(status.code, 0, "{status:?}");
    let doc = status.json();
    assert_eq!(doc["live"]["swapped_in_by"], "restore", "{doc}");
    assert_eq!(doc["live"]["built"]["rules_digest"], digest, "{doc}");
    assert_eq!(
        doc["live"]["built"]["snapshot_at"]
            .as_str()
            .map(|t| t.get(..19)),
        manifest["snapshot_at"].as_str().map(|t| t.get(..19)),
        "{doc}"
    );
    assert_eq!(doc["runs"]["restore"]["last"]["exit_code"], 0, "{doc}");
    let success = doc["runs"]["restore"]["last_success_at"].clone();

    // A restore that fails (no archive there): recorded in the live database, counted.
    let failed = restore(setup.dir.path().join("no-such-archive")).await;
    assert_ne!(failed.code, 0, "{failed:?}");
    let doc = harness::restage()
        .config(&config)
        .args(["--json", "status"])
        .run_async()
        .await
        .json();
    assert_eq!(doc["runs"]["restore"]["runs"], 2, "{doc}");
    assert_eq!(doc["runs"]["restore"]["failures"], 1, "{doc}");
    assert_eq!(doc["runs"]["restore"]["last_success_at"], success, "{doc}");
    assert_eq!(doc["live"]["swapped_in_by"], "restore", "{doc}");
    let m = Scrape::read(&restore_metrics);
    assert_eq!(m.value("restage_last_run_success", &rst), 0.0);
    assert_eq!(
        m.value("restage_last_run_exit_code", &rst),
        f64::from(failed.code)
    );
}
