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
