//! Memory with huge values (issue 11): one row holding a 300 MB text and a 300 MB bytea was
//! copied exactly, at 3.0 GiB peak RSS. The row is one COPY message the driver holds whole
//! (its text form: the bytea twice over, in hex); nothing else may copy it. Here with 40 MiB
//! values, the refresh's own peak RSS (the child's, from wait4) stays within four times the
//! largest value, for a kept table (the raw pipe) and a ruled one, and the row arrives exact.
//! A memory bound, not a timing: it holds on a busy machine.

use crate::harness;
use crate::harness::Setup;

/// The size of each of the row's two values.
const VALUE: usize = 40 << 20;

fn schema() -> String {
    format!(
        "CREATE TABLE big (id int PRIMARY KEY, t text, b bytea);
         INSERT INTO big SELECT g, 'small ' || g, decode('00ff', 'hex') FROM generate_series(2, 500) g;
         INSERT INTO big VALUES (1, repeat('x', {VALUE}), decode(repeat('ab', {VALUE}), 'hex'));
         INSERT INTO big SELECT g, 'after ' || g, decode('0a0b', 'hex') FROM generate_series(501, 1000) g;"
    )
}

/// Runs `restage -q refresh` with `setup`'s config under GNU time: (exit code, stderr, peak
/// resident set of restage in bytes).
///
/// Not this process's own `wait4`: Linux carries the peak RSS of the process image that
/// `exec` replaces into the new program's `ru_maxrss`, so a child spawned straight from this
/// test binary reports at least the test binary's own peak — hundreds of MiB while the whole
/// suite runs in it (this test failed that way under full-suite load, passing alone). GNU time
/// is a small process: the restage it forks starts from a few MiB.
fn refresh_with_peak_rss(setup: &Setup) -> (i32, String, u64) {
    let err_path = setup.dir.path().join("stderr.txt");
    let rss_path = setup.dir.path().join("maxrss.txt");
    let inner = setup.restage().args(["-q", "refresh"]).command();
    let mut command = std::process::Command::new("/usr/bin/time");
    command
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_path)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        command.current_dir(dir);
    }
    let status = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .status()
        .expect("run restage under /usr/bin/time (Debian package time)");
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let kib: u64 = std::fs::read_to_string(&rss_path)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time; stderr:\n{stderr}"));
    (status.code().unwrap_or(-1), stderr, kib * 1024)
}

#[test]
fn a_huge_row_is_copied_exactly_within_four_times_its_largest_value() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = rt.block_on(Setup::new("huge", &schema(), "strict: off"));
    let limit = 4 * VALUE as u64;
    let source = rt.block_on(async {
        let client = setup.source.client().await;
        harness::scalar::<String>(
            &client,
            "SELECT md5(string_agg(id || ':' || md5(t) || md5(b), ',' ORDER BY id)) FROM big",
        )
        .await
    });
    for (case, rules) in [
        (
            "kept (raw pipe)",
            "tables:\n  public.big:\n    \"*\": keep\n",
        ),
        (
            "ruled (both huge columns transformed)",
            "tables:\n  public.big:\n    t: hash\n    b: hash\n",
        ),
    ] {
        setup.write_rules("r.yaml", rules);
        let (code, stderr, peak) = refresh_with_peak_rss(&setup);
        assert_eq!(code, 0, "{case}: {stderr}");
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        eprintln!(
            "{case}: peak RSS {:.0} MiB for {:.0} MiB values ({:.2}×)",
            mib(peak),
            mib(VALUE as u64),
            peak as f64 / VALUE as f64
        );
        assert!(
            peak <= limit,
            "{case}: peak RSS {:.0} MiB, over 4 × {:.0} MiB",
            mib(peak),
            mib(VALUE as u64)
        );
        let staging = rt.block_on(async {
            let client = setup.staging().await;
            let rows: i64 = harness::scalar(&client, "SELECT count(*) FROM big").await;
            assert_eq!(rows, 1000, "{case}");
            if case.starts_with("kept") {
                Some(
                    harness::scalar::<String>(
                        &client,
                        "SELECT md5(string_agg(id || ':' || md5(t) || md5(b), ',' ORDER BY id)) FROM big",
                    )
                    .await,
                )
            } else {
                let hashed: i64 = harness::scalar(
                    &client,
                    "SELECT count(*) FROM big WHERE length(t) = 64 AND length(b) = 32",
                )
                .await;
                assert_eq!(hashed, 1000, "{case}: every value replaced by its hash");
                None
            }
        });
        if let Some(staging) = staging {
            assert_eq!(staging, source, "{case}: the table arrived exact");
        }
    }
}
