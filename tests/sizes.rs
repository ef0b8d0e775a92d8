//! Size limits that hold on skewed data (issue 19): `sample.max_storage` on a nullable
//! foreign key that is mostly NULL, a parent owning most of its children, TOAST-heavy rows, a
//! partitioned table and a self-reference — the restored size within 10% of the cap and
//! under it, the same rows on a second run, every foreign key valid; orphans sampled (or
//! kept when asked); a load that misses the estimate rescaled, failed or warned about before
//! the swap, never silently live over the cap.

use std::collections::BTreeSet;

use crate::harness::{self, Setup};
use crate::subset::assert_foreign_keys_hold;

const SIZES: &str = include_str!("fixtures/sizes.sql");

/// The fixture's foreign keys: users.referred_by, events (one per partition and the
/// partitioned one's), comments, documents.
const FOREIGN_KEYS: usize = 5;

fn config(sample: &str) -> String {
    format!("strict: off\nsample:\n{sample}")
}

async fn ids(client: &tokio_postgres::Client, sql: &str) -> BTreeSet<i64> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    harness::scalar(client, sql).await
}

/// Runs a refresh that writes its JSON report; returns (exit code, report, stderr).
fn refresh(setup: &Setup) -> (i32, serde_json::Value, String) {
    let path = setup.dir.path().join("report.json");
    let (code, stdout, stderr) = setup.run(&["refresh", "--report", path.to_str().unwrap()]);
    let report = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no report\n{stdout}\n{stderr}"));
    (code, report, format!("{stdout}\n{stderr}"))
}

/// The rows of every sampled table, to compare two runs.
async fn chosen(stg: &tokio_postgres::Client) -> Vec<BTreeSet<i64>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT id FROM users",
        "SELECT id FROM events",
        "SELECT id FROM comments",
        "SELECT id FROM documents",
    ] {
        out.push(ids(stg, sql).await);
    }
    out
}

#[tokio::test]
async fn a_cap_holds_on_skewed_sparse_toasted_and_partitioned_data() {
    let cap: u64 = 4_000_000;
    let setup = Setup::new(
        "sizes",
        SIZES,
        &config(&format!(
            "  max_storage: {cap}\n  tables:\n    public.users: {{ percent: 50 }}\n"
        )),
    )
    .await;

    // The plan shows the cap, its tolerance and the planned size per table.
    let (code, stdout, stderr) = setup.run(&["refresh", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("max_storage 3.8 MiB (heap + TOAST, tolerance 0%, policy rescale): planned"),
        "{stdout}"
    );
    assert!(stdout.contains("planned size"), "{stdout}");
    assert!(stdout.contains("rows referencing none"), "{stdout}");

    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    let storage = &report["storage"];
    let restored = storage["restored_bytes"].as_u64().unwrap();
    let planned = storage["planned_bytes"].as_u64().unwrap();
    assert_eq!(restored, report["totals"]["table_bytes"].as_u64().unwrap());
    assert!(restored <= cap, "over the cap: {restored} > {cap}");
    assert!(
        restored as f64 >= cap as f64 * 0.9,
        "more than 10% under the cap: {restored} for {cap}"
    );
    // The estimate saw the data's shape: planned within 3% of restored, no reload needed.
    let miss = (planned as f64 - restored as f64).abs() / restored as f64;
    assert!(miss < 0.03, "planned {planned}, restored {restored}");
    assert_eq!(storage["rescaled"].as_array().map(Vec::len), Some(0));
    // Planned rows are counted: the subsetted tables hold exactly what was planned.
    for t in report["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        if name.starts_with("public.users")
            || name.starts_with("public.comments")
            || name.starts_with("public.documents")
        {
            assert_eq!(t["estimated_rows"], t["rows_written"], "{name}");
        }
    }

    let stg = setup.staging().await;
    assert_foreign_keys_hold(&stg, FOREIGN_KEYS).await;
    // Events without a user are sampled at the root's rate, not all copied.
    let src = setup.source.client().await;
    let nulls_source = count(&src, "SELECT count(*) FROM events WHERE user_id IS NULL").await;
    let nulls = count(&stg, "SELECT count(*) FROM events WHERE user_id IS NULL").await;
    let rate = report["sample"]["tables"]["public.events"]["orphan_rate"]
        .as_f64()
        .unwrap();
    let expected = nulls_source as f64 * rate;
    assert!(
        (nulls as f64 - expected).abs() < expected * 0.2 + 20.0,
        "{nulls} events without a user kept; {rate} of {nulls_source} expected"
    );
    assert!(rate < 0.5, "the roots were scaled: {rate}");

    // The next run chooses the same rows.
    let first = chosen(&stg).await;
    drop(stg);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (code, again, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        again["storage"]["restored_bytes"],
        report["storage"]["restored_bytes"]
    );
    let stg = setup.staging().await;
    assert_eq!(chosen(&stg).await, first);
}

#[tokio::test]
async fn indexes_count_when_asked() {
    // Users 1 to 10 own most documents: a sample takes each of them whole or not at all, so
    // the plan can only land on steps (4.7 MB, then 6.2 MB here); this cap is above one.
    let cap: u64 = 6_500_000;
    let setup = Setup::new(
        "sizesidx",
        SIZES,
        &config(&format!(
            "  max_storage: {{ limit: {cap}, include_indexes: true }}\n  tables:\n    public.users: {{ percent: 50 }}\n"
        )),
    )
    .await;
    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    let storage = &report["storage"];
    assert_eq!(storage["include_indexes"], true);
    assert_eq!(storage["counts"], "heap + TOAST + indexes");
    let totals = &report["totals"];
    let restored = storage["restored_bytes"].as_u64().unwrap();
    assert_eq!(
        restored,
        totals["table_bytes"].as_u64().unwrap() + totals["index_bytes"].as_u64().unwrap()
    );
    assert!(totals["index_bytes"].as_u64().unwrap() > 0);
    assert!(restored <= cap, "over the cap: {restored} > {cap}");
    assert!(
        restored as f64 >= cap as f64 * 0.9,
        "more than 10% under the cap: {restored} for {cap}"
    );
    assert_foreign_keys_hold(&setup.staging().await, FOREIGN_KEYS).await;
}

#[tokio::test]
async fn orphans_keep_copies_every_row_that_references_nothing() {
    let setup = Setup::new(
        "sizesorph",
        SIZES,
        &config(
            "  tables:\n    public.users: { percent: 10 }\n  foreign_keys:\n    events_user_id_fkey: { orphans: keep }\n",
        ),
    )
    .await;
    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    let src = setup.source.client().await;
    let stg = setup.staging().await;
    let null_events = "SELECT count(*) FROM events WHERE user_id IS NULL";
    let null_documents = "SELECT count(*) FROM documents WHERE user_id IS NULL";
    // events keeps them all (its foreign key says so); documents samples its own at 10%.
    assert_eq!(
        count(&stg, null_events).await,
        count(&src, null_events).await
    );
    let documents = count(&stg, null_documents).await;
    let source_documents = count(&src, null_documents).await;
    assert!(
        documents > 0 && (documents as f64) < source_documents as f64 * 0.25,
        "{documents} of {source_documents}"
    );
    let tables = &report["sample"]["tables"];
    assert!(tables["public.events"]["orphan_rate"].is_null());
    assert!(tables["public.documents"]["orphan_rate"].as_f64().unwrap() < 0.11);
    assert_foreign_keys_hold(&stg, FOREIGN_KEYS).await;
}

/// Rules that make comments ten times bigger than the source says: the estimate misses.
fn lengthen_comments(setup: &Setup) {
    setup.write_rules(
        "comments.yaml",
        "tables:\n  public.comments:\n    body: { transform: lorem, words: 150 }\n",
    );
}

#[tokio::test]
async fn a_load_over_the_cap_is_rescaled_before_the_swap() {
    let cap: u64 = 4_000_000;
    let setup = Setup::new(
        "sizesrescale",
        SIZES,
        &config(&format!(
            "  max_storage: {cap}\n  tables:\n    public.users: {{ percent: 50 }}\n"
        )),
    )
    .await;
    lengthen_comments(&setup);
    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    let storage = &report["storage"];
    let rescaled = storage["rescaled"].as_array().unwrap();
    assert_eq!(rescaled.len(), 1, "{storage}");
    assert!(rescaled[0]["measured_bytes"].as_u64().unwrap() > cap);
    let restored = storage["restored_bytes"].as_u64().unwrap();
    assert!(restored <= cap, "over the cap: {restored} > {cap}");
    assert!(
        rescaled[0]["factor_after"].as_f64().unwrap()
            < rescaled[0]["factor_before"].as_f64().unwrap()
    );
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("max_storage_policy: rescale"),
        "{warnings}"
    );
    assert!(warnings.contains("public.comments (planned"), "{warnings}");
    assert!(
        out.contains("rescaled 1 time after a load over the cap"),
        "{out}"
    );
    // The report's plan is the one the tables hold.
    let comments = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.comments")
        .unwrap();
    assert_eq!(comments["estimated_rows"], comments["rows_written"]);
    assert_foreign_keys_hold(&setup.staging().await, FOREIGN_KEYS).await;
}

#[tokio::test]
async fn a_load_over_the_cap_fails_with_policy_fail_and_staging_is_unchanged() {
    let setup = Setup::new(
        "sizesfail",
        SIZES,
        &config(
            "  max_storage: 4MB\n  max_storage_policy: fail\n  tables:\n    public.users: { percent: 50 }\n",
        ),
    )
    .await;
    lengthen_comments(&setup);
    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sample.max_storage: "), "{out}");
    assert!(
        out.contains("(max_storage_policy: fail); staging was not swapped (unchanged)"),
        "{out}"
    );
    assert_eq!(report["exit_code"], 1);
    assert!(
        harness::databases_like(&setup.staging).await.is_empty(),
        "nothing was left behind"
    );
}

#[tokio::test]
async fn a_load_over_the_cap_goes_live_with_policy_warn_and_says_so() {
    let setup = Setup::new(
        "sizeswarn",
        SIZES,
        &config(
            "  max_storage: { limit: 4MB, tolerance: 5% }\n  max_storage_policy: warn\n  tables:\n    public.users: { percent: 50 }\n",
        ),
    )
    .await;
    lengthen_comments(&setup);
    let (code, report, out) = refresh(&setup);
    assert_eq!(code, 0, "{out}");
    let storage = &report["storage"];
    assert_eq!(storage["over"], true);
    assert_eq!(storage["tolerance_percent"], 5.0);
    assert!(storage["restored_bytes"].as_u64().unwrap() > 4_200_000);
    assert!(out.contains("OVER THE CAP"), "{out}");
    assert!(
        report["warnings"]
            .to_string()
            .contains("it goes live anyway (max_storage_policy: warn)"),
        "{}",
        report["warnings"]
    );
}
