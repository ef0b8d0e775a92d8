use crate::harness;

#[tokio::test]
async fn creates_and_drops_a_database() {
    let name;
    {
        let db = harness::TestDb::create("selftest").await;
        name = db.name.clone();
        db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .await;
        let n: i64 = harness::scalar(&db.client().await, "SELECT count(*) FROM t").await;
        assert_eq!(n, 1);
    }
    let admin = harness::connect(&harness::admin_url()).await;
    let left: i64 = harness::scalar_with(
        &admin,
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        &[&name],
    )
    .await;
    assert_eq!(left, 0, "the test database is dropped after a passing test");
}
