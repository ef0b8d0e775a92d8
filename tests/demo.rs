//! `restage demo`, the README's first command, end to end (small scale, own database names).

use crate::harness;

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("demo databases kept for debugging: {}*", self.0);
            return;
        }
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    harness::drop_database_family(&name).await;
                    // The demo warms Redis under `<staging database>:user:`.
                    if let Ok(client) = redis::Client::open(harness::redis_url())
                        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{name}_stg:user:*"))
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> =
                                redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
                        }
                    }
                });
            }
        })
        .join();
    }
}

#[test]
fn demo_refreshes_an_anonymized_staging_database() {
    let source = harness::unique_name("demo");
    let target = format!("{source}_stg");
    let _cleanup = Cleanup(source.clone());
    let out = harness::restage()
        .args([
            "demo",
            "--scale",
            "0.2",
            "--source-db",
            &source,
            "--target-db",
            &target,
        ])
        .run();
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert_eq!(out.code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is live"), "{stdout}");
    assert!(stdout.contains("verification: passed=true"), "{stdout}");
    assert!(
        stdout.contains("cache: flushed_keys=0, written_keys=400"),
        "{stdout}"
    );
    assert!(
        stdout.contains("production:") && stdout.contains("staging:"),
        "{stdout}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prod = harness::connect(&harness::url_for(&source)).await;
        let stg = harness::connect(&harness::url_for(&target)).await;
        let count = |sql: &'static str| {
            let prod = &prod;
            let stg = &stg;
            async move {
                let a: i64 = harness::scalar(prod, sql).await;
                let b: i64 = harness::scalar(stg, sql).await;
                (a, b)
            }
        };
        let (a, b) = count("SELECT count(*) FROM users").await;
        assert_eq!(a, b);
        // No original email, SSN or name survives in the ruled columns.
        let emails: Vec<String> = prod
            .query("SELECT email FROM users", &[])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let leaked: i64 = harness::scalar_with(&stg, "SELECT count(*) FROM users WHERE email = ANY($1)", &[&emails]).await;
        assert_eq!(leaked, 0);
        // Joins on pseudonymized emails still join.
        let joined: i64 = harness::scalar(&stg, "SELECT count(*) FROM orders o JOIN users u ON u.email = o.customer_email AND u.id = o.user_id").await;
        let (orders, _) = count("SELECT count(*) FROM orders").await;
        assert_eq!(joined, orders, "every order's customer_email matches its user's fake email");
    });
}

/// `restage demo --clean` removes what the demo made — its production database, the staging
/// database, generations and control database, its Redis keys — and nothing else: a
/// database of the same name that the demo did not make, another database, other keys stay.
#[test]
fn demo_clean_removes_only_what_the_demo_made() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = harness::unique_name("democlean");
    let target = format!("{source}_stg");
    let _cleanup = Cleanup(source.clone());
    let names = [
        "--source-db",
        source.as_str(),
        "--target-db",
        target.as_str(),
    ];
    let out = harness::restage()
        .args(["demo", "--scale", "0.1"])
        .args(names)
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let bystander = format!("{source}_bystander");
    let redis = redis::Client::open(harness::redis_url()).expect("redis url");
    rt.block_on(async {
        let admin = harness::connect(&harness::admin_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{bystander}\""))
            .await
            .expect("bystander");
        if let Ok(mut conn) = redis.get_multiplexed_async_connection().await {
            let _: () = redis::cmd("SET")
                .arg(format!("{target}:other"))
                .arg("x")
                .query_async(&mut conn)
                .await
                .expect("set");
        }
    });
    let before = rt.block_on(harness::databases_like(&source));
    assert!(before.len() >= 3, "{before:?}");
    // The control database and generations: names restage shortens for long staging names.
    let prefix = harness::generations_prefix(&target);
    let control = prefix.trim_end_matches('_').to_string();
    assert!(
        !rt.block_on(harness::databases_like(&control)).is_empty(),
        "no control database {control}"
    );

    let out = harness::restage()
        .args(["demo", "--clean"])
        .args(names)
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("removed database {source}")),
        "{}",
        out.stdout
    );
    let after = rt.block_on(harness::databases_like(&source));
    assert_eq!(after, vec![bystander.clone()], "{}", out.stdout);
    let left = rt.block_on(harness::databases_like(&control));
    assert!(left.is_empty(), "{left:?}\n{}", out.stdout);
    rt.block_on(async {
        if let Ok(mut conn) = redis.get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{target}:*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            assert_eq!(keys, vec![format!("{target}:other")]);
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("{target}:other"))
                .query_async(&mut conn)
                .await;
        }
    });

    // Databases of those names that the demo did not make are kept, and said to be.
    rt.block_on(async {
        let admin = harness::connect(&harness::admin_url()).await;
        for db in [&source, &target] {
            admin
                .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                .await
                .expect("hand-made");
        }
    });
    let out = harness::restage()
        .args(["--json", "demo", "--clean"])
        .args(names)
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["databases_removed"], serde_json::json!([]), "{doc}");
    assert!(
        doc["kept"].as_array().map(Vec::len).unwrap_or(0) >= 2,
        "{doc}"
    );
    let mut left = rt.block_on(harness::databases_like(&source));
    left.sort();
    let mut expected = vec![source.clone(), bystander, target.clone()];
    expected.sort();
    assert_eq!(left, expected);
}

/// A table whose demo rows are more than one CopyData message holds (`--scale 10`: 80,000
/// orders, about 13 MB, sent in 8 MiB pieces; at `--scale 1000` one message would have been
/// over the server's 1 GB limit, and the load failed with "protocol synchronization was
/// lost"): every row arrives whole, rows cut at a piece boundary included, in the orders (one
/// buffer cut into pieces) and in the events (one COPY fed a piece at a time while the next
/// is generated). The rows are loaded without their foreign keys checked row by row
/// (`session_replication_role = replica`): every key still holds, each re-added (and so
/// validated over all rows) in a transaction rolled back.
#[test]
fn demo_rows_are_loaded_whole_across_copy_pieces() {
    let source = harness::unique_name("demopieces");
    let _cleanup = Cleanup(source.clone());
    harness::generate_demo(&source, "10");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prod = harness::connect(&harness::url_for(&source)).await;
        let orders: i64 = harness::scalar(&prod, "SELECT count(*) FROM orders").await;
        assert_eq!(orders, 80_000);
        let bytes: i64 = harness::scalar(
            &prod,
            "SELECT sum(octet_length(o::text))::bigint FROM orders o",
        )
        .await;
        assert!(bytes > 8 << 20, "orders must span pieces: {bytes} bytes");
        // Whole rows: every field of every order is there and well formed.
        let broken: i64 = harness::scalar(
            &prod,
            "SELECT count(*) FROM orders WHERE customer_email NOT LIKE '%@%'
                OR credit_card !~ '^[0-9]{16}$' OR user_id IS NULL OR created_at IS NULL",
        )
        .await;
        assert_eq!(broken, 0);

        let events: i64 = harness::scalar(&prod, "SELECT count(*) FROM events").await;
        assert_eq!(events, 400_000);
        let bytes: i64 = harness::scalar(
            &prod,
            "SELECT sum(octet_length(e::text))::bigint FROM events e",
        )
        .await;
        assert!(bytes > 2 * (8 << 20), "events must span pieces: {bytes} bytes");
        let broken: i64 = harness::scalar(
            &prod,
            "SELECT count(*) FROM events WHERE kind NOT IN ('login', 'view', 'search', 'purchase', 'logout')
                OR NOT (payload ? 'ip') OR created_at IS NULL",
        )
        .await;
        assert_eq!(broken, 0);

        let keys = prod
            .query(
                "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid)
                   FROM pg_constraint WHERE contype = 'f' AND conparentid = 0",
                &[],
            )
            .await
            .unwrap();
        assert!(keys.len() >= 7, "the demo's foreign keys: {}", keys.len());
        for key in keys {
            let (table, name, def): (String, String, String) = (key.get(0), key.get(1), key.get(2));
            prod.batch_execute(&format!(
                "BEGIN; ALTER TABLE {table} DROP CONSTRAINT {name};
                 ALTER TABLE {table} ADD CONSTRAINT {name} {def}; ROLLBACK"
            ))
            .await
            .unwrap_or_else(|e| panic!("{table}: {name} does not hold: {e:?}"));
        }
    });
}
