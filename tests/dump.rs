//! `restage dump` and `restage restore` (issue 17) against the real PostgreSQL: an archive
//! restored equals a direct refresh of the same source, table by table; a damaged archive
//! fails cleanly with staging unchanged; a dump that fails verification publishes nothing;
//! retention keeps N archives, and only restage's.

use std::path::{Path, PathBuf};

use crate::harness::{self, Setup};

pub(crate) const ALL_TYPES: &str = include_str!("fixtures/all_types.sql");

/// A ruled table beside the fixture: its pseudonyms are seeded by the secret, so a refresh
/// and a dump of the same source write the same values.
pub(crate) const PEOPLE: &str = "
CREATE TABLE people (id serial PRIMARY KEY, email text NOT NULL, city text, note text);
INSERT INTO people (email, city, note)
  SELECT 'person' || g || '@example.com', 'City ' || (g % 7), 'note ' || g
    FROM generate_series(1, 3000) g;
";

pub(crate) const RULES: &str = "tables:\n  public.people:\n    email: email\n";

/// A second config in the setup's folder: the same source, another staging database (so a
/// restore and a direct refresh can be compared), `extra` appended.
pub(crate) fn restore_config(setup: &Setup, database: &str, extra: &str) -> PathBuf {
    let path = setup.dir.path().join(format!("{database}.yaml"));
    let yaml = format!(
        "target:\n  url: {}\n  database: {database}\n  keep: 1\njobs: 2\n{extra}\n",
        harness::admin_url(),
    );
    std::fs::write(&path, yaml).expect("write the restore config");
    path
}

/// The archives (folders) in `dir`, by name, hidden ones too.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn dump(setup: &Setup, to: &Path, extra_args: &[&str]) -> (i32, String, String) {
    setup
        .restage()
        .env("RESTAGE_SPLIT_BYTES", "16384")
        .arg("dump")
        .arg("--to")
        .arg(to)
        .args(extra_args)
        .run()
        .into_parts()
}

fn restore(config: &Path, from: &Path) -> (i32, String, String) {
    harness::restage()
        .config(config)
        .arg("restore")
        .arg("--from")
        .arg(from)
        .run()
        .into_parts()
}

/// The one archive in `dir`.
pub(crate) fn only_archive(dir: &Path) -> PathBuf {
    let names: Vec<String> = entries(dir)
        .into_iter()
        .filter(|n| n.starts_with("restage-"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    dir.join(&names[0])
}

/// Dump → restore equals refresh, table by table (row counts and a SHA-256 of each table's
/// COPY output in a fixed order), with tables split into parts; sequences continue; the
/// manifest says what it holds and no password.
#[tokio::test]
async fn dump_then_restore_equals_a_direct_refresh() {
    let setup = Setup::new("dumpeq", &format!("{ALL_TYPES}\n{PEOPLE}"), "strict: off").await;
    setup.write_rules("people.yaml", RULES);
    let (code, stdout, stderr) = setup
        .restage()
        .env("RESTAGE_SPLIT_BYTES", "16384")
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 0, "refresh\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let refreshed = harness::table_checksums(&setup.staging_url()).await;

    let archives = setup.dir.path().join("archives");
    let (code, stdout, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 0, "dump\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let archive = only_archive(&archives);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archive.join("manifest.json")).expect("the manifest"),
    )
    .expect("the manifest parses");
    assert_eq!(manifest["format"], "restage-dump");
    assert_eq!(manifest["verification"]["passed"], true);
    assert!(
        manifest["rules_digest"].is_string(),
        "{}",
        manifest["rules_digest"]
    );
    let people = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "people")
        .expect("people in the manifest");
    assert_eq!(people["rows"], 3000);
    assert!(
        people["parts"].as_array().expect("parts").len() > 1,
        "a big table is split into parts: {people}"
    );
    let text = std::fs::read_to_string(archive.join("manifest.json")).expect("manifest");
    assert!(!text.contains("person1@example.com"));

    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    let (code, stdout, stderr) = restore(&config, &archives);
    assert_eq!(code, 0, "restore\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is live"), "{stdout}");
    let restored = harness::table_checksums(&harness::url_for(&restored_db)).await;
    harness::assert_same_tables(&refreshed, &restored);
    assert_eq!(restored["public.people"].0, 3000);
    let stg = harness::connect(&harness::url_for(&restored_db)).await;
    let leaked: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM people WHERE email LIKE 'person%@example.com'",
    )
    .await;
    assert_eq!(leaked, 0, "the archive holds the anonymized emails");
    let next: i64 = harness::scalar(&stg, "SELECT nextval('everything_id_seq')").await;
    assert_eq!(next, 504, "sequences continue after the copied values");
    let fk: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated",
    )
    .await;
    assert_eq!(fk, 1, "post-data restored");
    // `restage verify` finds the plan the restore recorded.
    let run = harness::restage().config(&config).arg("verify").run();
    assert!(
        !run.stdout.contains("no plan recorded"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    drop(stg);
    harness::drop_restage_family(&restored_db).await;
}

/// A corrupted, truncated, missing or lengthened part, a missing, garbled or foreign
/// manifest, a corrupted schema: each is exit 1 naming what is wrong, and staging stays as
/// it was — same content, no database left behind.
#[tokio::test]
async fn a_damaged_archive_fails_cleanly_and_staging_stays() {
    let setup = Setup::new("dumpbad", PEOPLE, "strict: off").await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    let (code, _, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 0, "{stderr}");
    let good = only_archive(&archives);
    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    let (code, _, stderr) = restore(&config, &good);
    assert_eq!(code, 0, "{stderr}");
    let url = harness::url_for(&restored_db);
    let before = harness::table_checksums(&url).await;
    let prefix = harness::generations_prefix(&restored_db);
    let databases = harness::databases_like(&prefix).await;

    let part = |dir: &Path| -> PathBuf {
        let mut parts = entries(&dir.join("data"));
        parts.sort();
        dir.join("data").join(&parts[0])
    };
    type Damage = fn(&Path, &Path);
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "corrupted part",
            |_, p| {
                let mut bytes = std::fs::read(p).expect("read");
                let at = bytes.len() / 2;
                bytes[at] ^= 0xff;
                std::fs::write(p, bytes).expect("write");
            },
            "is corrupted",
        ),
        (
            "truncated part",
            |_, p| {
                let bytes = std::fs::read(p).expect("read");
                std::fs::write(p, &bytes[..bytes.len() - 7]).expect("write");
            },
            "is truncated",
        ),
        (
            "lengthened part",
            |_, p| {
                let mut bytes = std::fs::read(p).expect("read");
                bytes.extend_from_slice(b"more");
                std::fs::write(p, bytes).expect("write");
            },
            "bytes where the manifest says",
        ),
        (
            "missing part",
            |_, p| std::fs::remove_file(p).expect("remove"),
            "is missing",
        ),
        (
            "missing manifest",
            |d, _| std::fs::remove_file(d.join("manifest.json")).expect("remove"),
            "no manifest.json",
        ),
        (
            "garbled manifest",
            |d, _| {
                std::fs::write(d.join("manifest.json"), b"{\"format\": \"restage-du").expect("w")
            },
            "not a restage manifest",
        ),
        (
            "foreign manifest",
            |d, _| std::fs::write(d.join("manifest.json"), b"{\"format\": \"other\"}").expect("w"),
            "not a restage manifest",
        ),
        (
            "corrupted schema",
            |d, _| {
                let p = d.join("schema.dump");
                let mut bytes = std::fs::read(&p).expect("read");
                let at = bytes.len() / 2;
                bytes[at] ^= 0xff;
                std::fs::write(p, bytes).expect("write");
            },
            "the schema (schema.dump) is corrupted",
        ),
    ];
    for (name, damage, expected) in cases {
        let copy = setup
            .dir
            .path()
            .join(format!("damaged-{}", name.replace(' ', "-")));
        copy_dir(&good, &copy);
        let p = part(&copy);
        damage(&copy, &p);
        let (code, stdout, stderr) = restore(&config, &copy);
        assert_eq!(code, 1, "{name}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        if name.ends_with("part") {
            assert!(
                stderr.contains(" of table public.people (data/"),
                "{name} names the part: {stderr}"
            );
        }
        assert!(stderr.contains("staging is unchanged"), "{name}: {stderr}");
        assert_eq!(
            harness::table_checksums(&url).await,
            before,
            "{name}: staging unchanged"
        );
        assert_eq!(
            harness::databases_like(&prefix).await,
            databases,
            "{name}: no database left behind"
        );
    }
    harness::drop_restage_family(&restored_db).await;
}

/// A corruption inside the compressed stream is found while streaming, not only by the
/// sizes: the part keeps its size, its bytes change; the COPY is never finished.
#[tokio::test]
async fn a_part_corrupted_in_place_is_caught_while_streaming() {
    let setup = Setup::new("dumpflip", PEOPLE, "strict: off").await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    let (code, _, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 0, "{stderr}");
    let good = only_archive(&archives);
    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    let mut parts = entries(&good.join("data"));
    parts.sort();
    // The first and the last part, the last byte (the end of the zstd frame) and one in the
    // middle (each case is a restore: a few keep the test short).
    let ends = [parts[0].clone(), parts[parts.len() - 1].clone()];
    for name in ends {
        let p = good.join("data").join(&name);
        let original = std::fs::read(&p).expect("read");
        for at in [original.len() / 2, original.len() - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&p, &bytes).expect("write");
            let (code, _, stderr) = restore(&config, &good);
            assert_eq!(code, 1, "{name} byte {at}: {stderr}");
            assert!(
                stderr.contains("is corrupted"),
                "{name} byte {at}: {stderr}"
            );
            assert!(stderr.contains(&name), "{stderr}");
        }
        std::fs::write(&p, &original).expect("restore the part");
    }
    assert!(
        harness::databases_like(&harness::generations_prefix(&restored_db))
            .await
            .is_empty(),
        "no database left behind"
    );
    let staging: Vec<String> = harness::databases_like(&restored_db)
        .await
        .into_iter()
        .filter(|d| d == &restored_db)
        .collect();
    assert!(staging.is_empty(), "staging was never created");
    harness::drop_restage_family(&restored_db).await;
}

/// A dump whose rows hold protected source values (an unruled copy of the email column)
/// fails verification: exit 3, and the destination holds nothing — no archive, no partial
/// folder.
#[tokio::test]
async fn a_dump_that_fails_verification_publishes_nothing() {
    let setup = Setup::new(
        "dumpleak",
        "CREATE TABLE people (id serial PRIMARY KEY, email text, contact text);
         INSERT INTO people (email, contact)
           SELECT 'person' || g || '@example.com', 'write to person' || g || '@example.com'
             FROM generate_series(1, 500) g;",
        "strict: off",
    )
    .await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    let (code, stdout, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("public.people.contact"), "{stderr}");
    assert!(stderr.contains("no archive was published"), "{stderr}");
    assert!(!stderr.contains("person1@example.com"), "{stderr}");
    assert_eq!(entries(&archives), Vec::<String>::new());
}

/// Retention: with `keep: 2`, three dumps leave the two newest; a folder restage did not
/// write stays; `restore --from` the destination takes the newest.
#[tokio::test]
async fn retention_keeps_n_archives_and_only_restages() {
    let setup = Setup::new("dumpkeep", PEOPLE, "strict: off\ndump:\n  keep: 2").await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    std::fs::create_dir_all(archives.join("someone-elses")).expect("mkdir");
    std::fs::write(archives.join("someone-elses/manifest.json"), b"{}").expect("write");
    let mut written = Vec::new();
    for _ in 0..3 {
        let (code, _, stderr) = dump(&setup, &archives, &[]);
        assert_eq!(code, 0, "{stderr}");
        let names = entries(&archives);
        written.push(
            names
                .iter()
                .filter(|n| n.starts_with("restage-"))
                .max()
                .cloned()
                .expect("an archive"),
        );
    }
    let names = entries(&archives);
    assert_eq!(
        names,
        vec![
            written[1].clone(),
            written[2].clone(),
            "someone-elses".to_string()
        ]
    );
    // --keep overrides the config.
    let (code, _, stderr) = dump(&setup, &archives, &["--keep", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        entries(&archives)
            .iter()
            .filter(|n| n.starts_with("restage-"))
            .count(),
        1
    );
    let (code, _, stderr) = dump(&setup, &archives, &["--keep", "0"]);
    assert_eq!(code, 2, "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Encryption at rest: an archive encrypted to an age recipient restores only with its
/// identity (none given: exit 2; another identity: exit 2; a passphrase: exit 2), and then
/// equals the plain one; a passphrase archive opens only with the passphrase. No file of an
/// encrypted archive holds a source or written value in clear.
#[tokio::test]
async fn an_encrypted_archive_restores_only_with_its_key() {
    let mine = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret;
    let setup = Setup::new(
        "dumpage",
        PEOPLE,
        &format!(
            "strict: off\ndump:\n  encryption:\n    recipients: [\"{}\"]",
            mine.to_public()
        ),
    )
    .await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    let (code, _, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 0, "{stderr}");
    let archive = only_archive(&archives);
    for entry in entries(&archive.join("data")) {
        let bytes = std::fs::read(archive.join("data").join(&entry)).expect("part");
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{entry}");
    }
    let schema = std::fs::read(archive.join("schema.dump")).expect("schema");
    assert!(schema.starts_with(b"age-encryption.org/v1"));
    assert!(!schema.windows(6).any(|w| w == b"people"));

    let restored_db = setup.source.sibling("rst");
    let identity_file = setup.dir.path().join("key.txt");
    let key_config = |identity: &str| {
        std::fs::write(&identity_file, identity).expect("write the identity");
        restore_config(
            &setup,
            &restored_db,
            &format!(
                "dump:\n  encryption:\n    identity: file:{}",
                identity_file.display()
            ),
        )
    };
    // No key.
    let plain = restore_config(&setup, &restored_db, "");
    let (code, _, stderr) = restore(&plain, &archives);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the archive is encrypted"), "{stderr}");
    // Another key: exit 2, and its text never printed.
    let wrong = other.to_string();
    let config = key_config(&format!("# another key\n{}\n", wrong.expose_secret()));
    let (code, stdout, stderr) = restore(&config, &archives);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not open it"), "{stderr}");
    assert!(!stderr.contains(wrong.expose_secret()) && !stdout.contains(wrong.expose_secret()));
    // A passphrase where a recipient's identity is needed.
    let config_pass = restore_config(
        &setup,
        &restored_db,
        "dump:\n  encryption:\n    passphrase: a-long-passphrase-here",
    );
    let (code, _, stderr) = restore(&config_pass, &archives);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        harness::databases_like(&harness::generations_prefix(&restored_db))
            .await
            .is_empty(),
        "nothing was created"
    );
    // The right key.
    let right = mine.to_string();
    let config = key_config(right.expose_secret());
    let (code, stdout, stderr) = restore(&config, &archives);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stderr.contains(right.expose_secret()) && !stdout.contains(right.expose_secret()));
    let restored = harness::table_checksums(&harness::url_for(&restored_db)).await;
    assert_eq!(restored["public.people"].0, 3000);

    // The same source, unencrypted: the same tables.
    let plain_archives = setup.dir.path().join("plain");
    setup.write_config("strict: off");
    let (code, _, stderr) = dump(&setup, &plain_archives, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = restore(&plain, &plain_archives);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        harness::table_checksums(&harness::url_for(&restored_db)).await,
        restored
    );

    // A passphrase archive (the passphrase from the environment of the dump only).
    setup.write_config("strict: off\ndump:\n  encryption:\n    passphrase: ${DUMP_PASSPHRASE}");
    let pass_archives = setup.dir.path().join("pass");
    let (code, stdout, stderr) = setup
        .restage()
        .env("DUMP_PASSPHRASE", "correct horse battery staple")
        .arg("dump")
        .arg("--to")
        .arg(&pass_archives)
        .run()
        .into_parts();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("horse") && !stderr.contains("horse"));
    let (code, _, stderr) = restore(&config_pass, &pass_archives);
    assert_eq!(code, 2, "a wrong passphrase: {stderr}");
    assert!(stderr.contains("does not open it"), "{stderr}");
    let config_right = restore_config(
        &setup,
        &restored_db,
        "dump:\n  encryption:\n    passphrase: correct horse battery staple",
    );
    let (code, _, stderr) = restore(&config_right, &pass_archives);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        harness::table_checksums(&harness::url_for(&restored_db)).await,
        restored
    );
    harness::drop_restage_family(&restored_db).await;
}

/// The partial folder of a dump killed mid-way (SIGKILL: no cleanup ran) is removed by the
/// next dump to the same destination, which then completes; the partial folder of a dump
/// that is still running is left alone (its lock is held), and so is a `.partial-*` folder
/// restage did not write (no lock file). The live dump then completes too.
#[tokio::test]
async fn a_killed_dumps_partial_is_removed_by_the_next_dump() {
    let setup = Setup::new("dumpkill", PEOPLE, "strict: off\ndump:\n  keep: 5").await;
    setup.write_rules("people.yaml", RULES);
    let archives = setup.dir.path().join("archives");
    let to = archives.display().to_string();
    let paused = [
        ("RESTAGE_TEST_PAUSE_AT", "dump-data"),
        ("RESTAGE_SPLIT_BYTES", "16384"),
    ];
    let partials = || -> Vec<String> {
        entries(&archives)
            .into_iter()
            .filter(|n| n.starts_with(".partial-"))
            .collect()
    };
    // A dump killed while writing its first part.
    let mut killed = setup.spawn(&["dump", "--to", &to], &paused);
    killed.wait_paused("dump-data");
    let (_, stderr) = killed.kill();
    let dead = partials();
    assert_eq!(dead.len(), 1, "{dead:?}\n{stderr}");
    assert!(archives.join(&dead[0]).join("restage.lock").exists());
    assert!(
        !entries(&archives.join(&dead[0]).join("data")).is_empty(),
        "the killed dump had begun writing parts"
    );
    // Not restage's: a partial-looking folder without restage's lock file.
    let foreign = archives.join(".partial-not-ours");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("file"), b"x").expect("write");
    // A dump that is alive (paused) while another runs.
    let mut live = setup.spawn(&["dump", "--to", &to], &paused);
    live.wait_paused("dump-data");
    // The dump that started after the kill removed the dead run's partial as it began.
    let live_partial: Vec<String> = partials()
        .into_iter()
        .filter(|p| p != ".partial-not-ours")
        .collect();
    assert_eq!(live_partial.len(), 1, "{:?}", partials());
    assert!(
        !live_partial.contains(&dead[0]),
        "the dead run's partial is gone"
    );

    // A third dump while that one is alive: leaves its partial alone.
    let (code, stdout, stderr) = dump(&setup, &archives, &[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("removed the partial archive"), "{stdout}");
    let now = partials();
    assert!(
        !now.contains(&dead[0]),
        "the dead run's partial is gone: {now:?}"
    );
    assert!(
        now.contains(&live_partial[0]),
        "the live run's partial stays: {now:?}"
    );
    assert!(
        foreign.join("file").exists(),
        "a folder restage did not write stays"
    );
    let complete = only_archive(&archives);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(complete.join("manifest.json")).expect("manifest"))
            .expect("parses");
    for t in manifest["tables"].as_array().expect("tables") {
        for p in t["parts"].as_array().expect("parts") {
            let file = complete.join(p["file"].as_str().expect("file"));
            assert_eq!(
                std::fs::metadata(&file).map(|m| m.len()).ok(),
                p["bytes"].as_u64(),
                "{}",
                file.display()
            );
        }
    }
    assert!(!complete.join("restage.lock").exists());

    // The live dump goes on and publishes its own archive.
    live.resume();
    let (code, stdout, stderr) = live.finish(std::time::Duration::from_secs(300));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("removed the partial archive of a dead run") && stdout.contains(&dead[0]),
        "{stdout}"
    );
    assert_eq!(partials(), vec![".partial-not-ours".to_string()]);
    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    let (code, _, stderr) = restore(&config, &archives);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        harness::table_checksums(&harness::url_for(&restored_db)).await["public.people"].0,
        3000
    );
    harness::drop_restage_family(&restored_db).await;
}
