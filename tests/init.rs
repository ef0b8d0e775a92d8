//! `restage init` (issue 15): a commented restage.yaml, proposed rules and a secret for a
//! source, from which `restage refresh` runs with no edit; existing files are refused
//! without `--force`; the secret is kept; a password in the source URL is not written.

use crate::harness;

#[tokio::test]
async fn init_then_refresh_passes_on_the_demo_database_unedited() {
    let source = harness::unique_name("init");
    harness::generate_demo(&source, "0.2");
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("conf");
    let out_arg = out_dir.to_str().expect("utf-8 path");
    let url = harness::url_for(&source);

    let out = harness::restage()
        .args(["init", "--source", &url, "--out", out_arg])
        .env_remove("PROD_DATABASE_URL")
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let config = out_dir.join("restage.yaml");
    let yaml = std::fs::read_to_string(&config).expect("restage.yaml");
    let rules = std::fs::read_to_string(out_dir.join("rules/proposed.yaml")).expect("rules");
    assert!(
        yaml.starts_with("# restage.yaml, written by `restage init`"),
        "{yaml}"
    );
    assert!(yaml.contains("secret: \"file:"), "{yaml}");
    assert!(
        rules.contains("email: { transform: email, unique: true }"),
        "{rules}"
    );
    let secret = std::fs::read_to_string(out_dir.join("restage.secret")).expect("secret");
    assert_eq!(secret.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("restage.secret"))
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret is readable by others: {mode:o}"
        );
    }

    // Run from anywhere: the paths in restage.yaml do not depend on the working directory.
    let out = harness::restage().config(&config).arg("refresh").run();
    assert_eq!(
        out.code, 0,
        "restage.yaml:\n{yaml}\nrules:\n{rules}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("verification: passed=true"),
        "{}",
        out.stdout
    );
    let staging = format!("{source}_staging");
    assert!(out.stdout.contains(&staging), "{}", out.stdout);

    // A second init refuses and writes nothing; --force replaces and keeps the secret.
    let before = std::fs::read_to_string(&config).expect("restage.yaml");
    let out = harness::restage()
        .args(["init", "--source", &url, "--out", out_arg])
        .run();
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("already exist"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&config).expect("restage.yaml"),
        before
    );
    let out = harness::restage()
        .args(["init", "--force", "--source", &url, "--out", out_arg])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("restage.secret")).expect("secret"),
        secret
    );
    let again = std::fs::read_to_string(out_dir.join("rules/proposed.yaml")).expect("rules");
    assert!(
        again.contains("email: { transform: email, unique: true }"),
        "the old proposals hid what they covered:\n{again}"
    );

    harness::drop_restage_family(&staging).await;
    harness::drop_database_family(&source).await;
}

#[tokio::test]
async fn init_never_writes_a_password_and_needs_a_source() {
    let db = harness::TestDb::create("initpw").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, email text); INSERT INTO t VALUES (1, 'a@example.org');")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out_arg = dir.path().to_str().expect("utf-8 path");
    // Trust authentication ignores the password; the file must not carry it.
    let url = db.url().replacen("postgres@", "postgres:Sup3rS3cretPw@", 1);
    assert!(url.contains("Sup3rS3cretPw"), "{url}");
    let out = harness::restage()
        .args(["init", "--source", &url, "--out", out_arg])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let yaml = std::fs::read_to_string(dir.path().join("restage.yaml")).expect("restage.yaml");
    assert!(!yaml.contains("Sup3rS3cretPw"), "{yaml}");
    assert!(yaml.contains("${PROD_DATABASE_URL}"), "{yaml}");
    assert!(!out.stdout.contains("Sup3rS3cretPw") && !out.stderr.contains("Sup3rS3cretPw"));

    let empty = tempfile::tempdir().expect("tempdir");
    let out = harness::restage()
        .args(["init", "--out", empty.path().to_str().expect("utf-8 path")])
        .env_remove("PROD_DATABASE_URL")
        .run();
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--source"), "{}", out.stderr);
    assert!(
        std::fs::read_dir(empty.path())
            .expect("dir")
            .next()
            .is_none(),
        "nothing written"
    );
}
