//! `restage dump --to s3://…` and `restage restore --from s3://…` (issue 17) against a real
//! local S3 server (moto, started per test, its own bucket per test): dump → restore equals a
//! direct refresh, table by table, with parts uploaded in pieces (multipart); a corrupted, a
//! missing part, a missing manifest fail cleanly with staging unchanged and name the bucket
//! and key; an encrypted archive restores only with its key; retention removes only the
//! oldest archives restage wrote; a dump that fails verification leaves no object at all.
//! No output ever holds the secret key.

use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::dump::{ALL_TYPES, PEOPLE, RULES, restore_config};
use crate::harness::s3::{Moto, SECRET_KEY};
use crate::harness::{self, Setup};

/// Every key in the bucket, sorted.
async fn keys(client: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut found: Vec<String> = client
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    found.sort();
    found
}

async fn get(client: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    client
        .get(&ObjectPath::from(key))
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .bytes()
        .await
        .expect("body")
        .to_vec()
}

async fn put(client: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    client
        .put(&ObjectPath::from(key), bytes.into())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// The archives (`prefix/restage-*/`) that have a manifest, sorted.
async fn archives(client: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    keys(client)
        .await
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix(&format!("{prefix}/"))
                .and_then(|rest| rest.strip_suffix("/manifest.json"))
                .filter(|name| name.starts_with("restage-"))
                .map(str::to_string)
        })
        .collect()
}

fn assert_no_secret(out: &str) {
    assert!(
        !out.contains(SECRET_KEY),
        "the secret key was printed:\n{out}"
    );
}

fn dump(setup: &Setup, moto: &Moto, to: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let (code, stdout, stderr) = setup
        .restage()
        .envs(
            &moto
                .env()
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .env("RESTAGE_SPLIT_BYTES", "16384")
        .envs(env)
        .arg("dump")
        .arg("--to")
        .arg(to)
        .run()
        .into_parts();
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    (code, stdout, stderr)
}

fn restore(config: &Path, moto: &Moto, from: &str) -> (i32, String, String) {
    let (code, stdout, stderr) = harness::restage()
        .config(config)
        .envs(
            &moto
                .env()
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .arg("restore")
        .arg("--from")
        .arg(from)
        .run()
        .into_parts();
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    (code, stdout, stderr)
}

/// Dump to S3 → restore from S3 equals a direct refresh, table by table (row counts and the
/// SHA-256 of each table's COPY output in a fixed order). Parts bigger than one piece went up
/// as multipart uploads (their ETag says so); restore streams them back.
#[tokio::test]
async fn s3_dump_then_restore_equals_a_direct_refresh() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket("rs-eq");
    let client = moto.client(&bucket);
    let setup = Setup::new("s3eq", &format!("{ALL_TYPES}\n{PEOPLE}"), "strict: off").await;
    setup.write_rules("people.yaml", RULES);
    let (code, stdout, stderr) = setup
        .restage()
        .env("RESTAGE_SPLIT_BYTES", "16384")
        .arg("refresh")
        .run()
        .into_parts();
    assert_eq!(code, 0, "refresh\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let refreshed = harness::table_checksums(&setup.staging_url()).await;

    let to = format!("s3://{bucket}/nightly/app");
    let (code, stdout, stderr) = dump(&setup, &moto, &to, &[("RESTAGE_S3_PART_BYTES", "1024")]);
    assert_eq!(code, 0, "dump\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let names = archives(&client, "nightly/app").await;
    assert_eq!(names.len(), 1, "{:?}", keys(&client).await);
    assert!(stdout.contains(&format!("{to}/{}", names[0])), "{stdout}");
    let root = format!("nightly/app/{}", names[0]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&client, &format!("{root}/manifest.json")).await)
            .expect("the manifest parses");
    assert_eq!(manifest["format"], "restage-dump");
    assert_eq!(manifest["verification"]["passed"], true);
    // Every file the manifest names is there with its size; some went up in pieces.
    let mut multipart = 0;
    let mut files = vec![manifest["schema"].clone()];
    for t in manifest["tables"].as_array().expect("tables") {
        files.extend(t["parts"].as_array().expect("parts").iter().cloned());
    }
    for f in &files {
        let key = format!("{root}/{}", f["file"].as_str().expect("file"));
        let meta = client
            .head(&ObjectPath::from(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(Some(meta.size), f["bytes"].as_u64(), "{key}");
        if meta.e_tag.as_deref().is_some_and(|t| t.contains('-')) {
            multipart += 1;
        }
    }
    assert!(multipart > 0, "no part was a multipart upload");
    // Nothing but the archive in the bucket: no partial, no temporary object.
    assert!(
        keys(&client).await.iter().all(|k| k.starts_with(&root)),
        "{:?}",
        keys(&client).await
    );

    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    // The destination: restore takes the newest archive in it.
    let (code, stdout, stderr) = restore(&config, &moto, &to);
    assert_eq!(code, 0, "restore\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is live"), "{stdout}");
    let restored = harness::table_checksums(&harness::url_for(&restored_db)).await;
    harness::assert_same_tables(&refreshed, &restored);
    assert_eq!(restored["public.people"].0, 3000);
    // The archive itself, by its full name, and the same from `dump.destination`.
    let (code, _, stderr) = restore(&config, &moto, &format!("{to}/{}", names[0]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        harness::table_checksums(&harness::url_for(&restored_db)).await,
        restored
    );
    harness::drop_restage_family(&restored_db).await;
}

/// Copies every object under `from/` to `to/`.
async fn copy_prefix(client: &Arc<dyn ObjectStore>, from: &str, to: &str) {
    for key in keys(client).await {
        if let Some(rest) = key.strip_prefix(&format!("{from}/")) {
            let bytes = get(client, &key).await;
            put(client, &format!("{to}/{rest}"), bytes).await;
        }
    }
}

/// A corrupted part (same size, one byte changed: found while streaming), a missing part, a
/// missing manifest, a truncated part, a corrupted schema: each is exit 1 naming the
/// s3://bucket/key at fault, and staging stays as it was — same content, no database left
/// behind.
#[tokio::test]
async fn s3_a_damaged_archive_fails_cleanly_and_staging_stays() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket("rs-bad");
    let client = moto.client(&bucket);
    let setup = Setup::new("s3bad", PEOPLE, "strict: off").await;
    setup.write_rules("people.yaml", RULES);
    let to = format!("s3://{bucket}/a");
    let (code, _, stderr) = dump(&setup, &moto, &to, &[]);
    assert_eq!(code, 0, "{stderr}");
    let good = format!("a/{}", archives(&client, "a").await[0]);
    let restored_db = setup.source.sibling("rst");
    let config = restore_config(&setup, &restored_db, "");
    let (code, _, stderr) = restore(&config, &moto, &to);
    assert_eq!(code, 0, "{stderr}");
    let url = harness::url_for(&restored_db);
    let before = harness::table_checksums(&url).await;
    let prefix = harness::generations_prefix(&restored_db);
    let databases = harness::databases_like(&prefix).await;
    let first_part = keys(&client)
        .await
        .into_iter()
        .find(|k| k.starts_with(&format!("{good}/data/")))
        .and_then(|k| k.rsplit('/').next().map(str::to_string))
        .expect("a part");

    // (case, the object damaged, what is done to it, what the message says)
    #[derive(Clone, Copy)]
    enum Damage {
        Flip,
        Truncate,
        Remove,
    }
    let cases = [
        (
            "corrupted part",
            format!("data/{first_part}"),
            Damage::Flip,
            "is corrupted",
        ),
        (
            "truncated part",
            format!("data/{first_part}"),
            Damage::Truncate,
            "is truncated",
        ),
        (
            "missing part",
            format!("data/{first_part}"),
            Damage::Remove,
            "is missing",
        ),
        (
            "missing manifest",
            "manifest.json".to_string(),
            Damage::Remove,
            "no manifest.json",
        ),
        (
            "corrupted schema",
            "schema.dump".to_string(),
            Damage::Flip,
            "the schema (schema.dump) is corrupted",
        ),
    ];
    for (i, (name, file, damage, expected)) in cases.iter().enumerate() {
        let copy = format!("damaged-{i}");
        copy_prefix(&client, &good, &copy).await;
        let key = format!("{copy}/{file}");
        match damage {
            Damage::Flip => {
                let mut bytes = get(&client, &key).await;
                let at = bytes.len() / 2;
                bytes[at] ^= 0x01;
                put(&client, &key, bytes).await;
            }
            Damage::Truncate => {
                let bytes = get(&client, &key).await;
                put(&client, &key, bytes[..bytes.len() - 7].to_vec()).await;
            }
            Damage::Remove => client
                .delete(&ObjectPath::from(key.as_str()))
                .await
                .expect("delete"),
        }
        let from = format!("s3://{bucket}/{copy}");
        let (code, stdout, stderr) = restore(&config, &moto, &from);
        assert_eq!(code, 1, "{name}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            stderr.contains(&from),
            "{name} names the bucket and prefix: {stderr}"
        );
        if name.ends_with("part") {
            assert!(
                stderr.contains(&format!("of table public.people ({file})")),
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
    // An empty prefix, a bucket that does not exist: clean errors naming them.
    let (code, _, stderr) = restore(&config, &moto, &format!("s3://{bucket}/nothing-here"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("s3://{bucket}/nothing-here: no manifest.json")),
        "{stderr}"
    );
    let (code, _, stderr) = restore(&config, &moto, "s3://no-such-bucket-restage/x");
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket-restage/x"), "{stderr}");
    assert_eq!(harness::table_checksums(&url).await, before);
    harness::drop_restage_family(&restored_db).await;
}

/// An archive encrypted to an age recipient, on S3, restores only with its identity: none
/// given, another one, a passphrase: exit 2, nothing created; the right one: the data. No
/// object of the archive but the manifest holds a value in clear.
#[tokio::test]
async fn s3_an_encrypted_archive_restores_only_with_its_key() {
    use age::secrecy::ExposeSecret;
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket("rs-age");
    let client = moto.client(&bucket);
    let mine = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    let setup = Setup::new(
        "s3age",
        PEOPLE,
        &format!(
            "strict: off\ndump:\n  encryption:\n    recipients: [\"{}\"]",
            mine.to_public()
        ),
    )
    .await;
    setup.write_rules("people.yaml", RULES);
    let to = format!("s3://{bucket}/enc");
    let (code, _, stderr) = dump(&setup, &moto, &to, &[]);
    assert_eq!(code, 0, "{stderr}");
    for key in keys(&client).await {
        if key.ends_with("manifest.json") {
            continue;
        }
        let bytes = get(&client, &key).await;
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{key}");
        assert!(!bytes.windows(6).any(|w| w == b"person"), "{key}");
    }

    let restored_db = setup.source.sibling("rst");
    let identity_file = setup.dir.path().join("key.txt");
    let with_identity = |identity: &str| {
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
    let plain = restore_config(&setup, &restored_db, "");
    let (code, _, stderr) = restore(&plain, &moto, &to);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the archive is encrypted"), "{stderr}");
    let wrong = other.to_string();
    let config = with_identity(wrong.expose_secret());
    let (code, stdout, stderr) = restore(&config, &moto, &to);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not open it"), "{stderr}");
    assert!(!stderr.contains(wrong.expose_secret()) && !stdout.contains(wrong.expose_secret()));
    let pass = restore_config(
        &setup,
        &restored_db,
        "dump:\n  encryption:\n    passphrase: a-long-passphrase-here",
    );
    let (code, _, stderr) = restore(&pass, &moto, &to);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        harness::databases_like(&harness::generations_prefix(&restored_db))
            .await
            .is_empty(),
        "nothing was created"
    );
    let right = mine.to_string();
    let config = with_identity(right.expose_secret());
    let (code, stdout, stderr) = restore(&config, &moto, &to);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stderr.contains(right.expose_secret()) && !stdout.contains(right.expose_secret()));
    let restored = harness::table_checksums(&harness::url_for(&restored_db)).await;
    assert_eq!(restored["public.people"].0, 3000);
    let stg = harness::connect(&harness::url_for(&restored_db)).await;
    let leaked: i64 = harness::scalar(
        &stg,
        "SELECT count(*) FROM people WHERE email LIKE 'person%@example.com'",
    )
    .await;
    assert_eq!(leaked, 0);
    drop(stg);
    harness::drop_restage_family(&restored_db).await;
}

/// Retention on S3: with `keep: 2`, three dumps leave the two newest archives; what restage
/// did not write stays — another program's folder with a manifest, a loose object, and a
/// `restage-…/` prefix without a manifest (a killed run's: not proven complete, never
/// taken for an archive, never removed by retention).
#[tokio::test]
async fn s3_retention_removes_only_the_oldest_of_restages_archives() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket("rs-keep");
    let client = moto.client(&bucket);
    let setup = Setup::new("s3keep", PEOPLE, "strict: off\ndump:\n  keep: 2").await;
    setup.write_rules("people.yaml", RULES);
    let foreign = [
        "n/someone-elses/manifest.json",
        "n/notes.txt",
        "n/restage-19990101T000000000000Z/data/00000.copy.zst",
        "elsewhere/restage-19990101T000000000000Z/manifest.json",
    ];
    for key in foreign {
        put(&client, key, b"{}".to_vec()).await;
    }
    let to = format!("s3://{bucket}/n");
    let mut written = Vec::new();
    for _ in 0..3 {
        let (code, stdout, stderr) = dump(&setup, &moto, &to, &[]);
        assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
        written.push(
            archives(&client, "n")
                .await
                .last()
                .cloned()
                .expect("an archive"),
        );
    }
    assert_eq!(archives(&client, "n").await, written[1..].to_vec());
    let all = keys(&client).await;
    assert!(
        !all.iter()
            .any(|k| k.starts_with(&format!("n/{}/", written[0]))),
        "the oldest archive is gone entirely: {all:?}"
    );
    for key in foreign {
        assert!(
            all.iter().any(|k| k == key),
            "{key} was left alone: {all:?}"
        );
    }
    // --keep overrides the config.
    let (code, _, stderr) = dump(&setup, &moto, &to, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = setup
        .restage()
        .envs(
            &moto
                .env()
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .args(["dump", "--to", &to, "--keep", "1"])
        .run()
        .into_parts();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(archives(&client, "n").await.len(), 1);
}

/// A dump whose rows hold protected source values fails verification: exit 3, and the
/// bucket holds nothing at all afterwards — no manifest, no part, no schema (the run removed
/// what it had uploaded). A destination bucket that does not exist is a clean error naming
/// it, without the credentials.
#[tokio::test]
async fn s3_a_dump_that_fails_verification_leaves_nothing() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket("rs-leak");
    let client = moto.client(&bucket);
    let setup = Setup::new(
        "s3leak",
        "CREATE TABLE people (id serial PRIMARY KEY, email text, contact text);
         INSERT INTO people (email, contact)
           SELECT 'person' || g || '@example.com', 'write to person' || g || '@example.com'
             FROM generate_series(1, 500) g;",
        "strict: off",
    )
    .await;
    setup.write_rules("people.yaml", RULES);
    let to = format!("s3://{bucket}/leaky");
    let (code, stdout, stderr) = dump(&setup, &moto, &to, &[("RESTAGE_S3_PART_BYTES", "1024")]);
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("public.people.contact"), "{stderr}");
    assert!(stderr.contains("no archive was published"), "{stderr}");
    assert!(stderr.contains(&to), "{stderr}");
    assert!(!stderr.contains("person1@example.com"), "{stderr}");
    assert_eq!(keys(&client).await, Vec::<String>::new());

    let (code, _, stderr) = dump(&setup, &moto, "s3://no-such-bucket-restage/x", &[]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("s3://no-such-bucket-restage/x/restage-"),
        "{stderr}"
    );
}
