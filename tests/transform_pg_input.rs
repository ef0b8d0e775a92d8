//! Transform outputs against a real PostgreSQL: every output must be accepted by the column
//! type's input function (what COPY FROM will do with it), and values PostgreSQL prints
//! (arrays with quoting and NULLs, jsonb, dates with BC and zones, extreme numbers) must be
//! read correctly. Casts only: no database is created.

use crate::harness;

use restage::catalog::{ColumnType, TypeKind};
use restage::secret::Secret;
use restage::transform::{Catalogue, ColumnInfo, Output, RuleSpec};
use tokio_postgres::Client;

fn rule(yaml: &str) -> RuleSpec {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("test YAML");
    RuleSpec::from_value(&value).expect("test rule")
}

/// A column type as the catalog would read it from `pg_type`: kind, array, length limit.
fn column(pg_type: &str) -> ColumnType {
    let array = pg_type.ends_with("[]");
    let base = pg_type.trim_end_matches("[]");
    let kind = match base {
        "text" => TypeKind::Text,
        t if t.starts_with("character") => TypeKind::Text,
        "smallint" | "integer" | "bigint" => TypeKind::Int,
        "real" | "double precision" => TypeKind::Float,
        t if t.starts_with("numeric") || t == "money" => TypeKind::Numeric,
        "date" => TypeKind::Date,
        "timestamp" => TypeKind::Timestamp,
        "timestamptz" => TypeKind::TimestampTz,
        "json" => TypeKind::Json,
        "jsonb" => TypeKind::Jsonb,
        "uuid" => TypeKind::Uuid,
        "inet" => TypeKind::Inet,
        "cidr" => TypeKind::Cidr,
        "bytea" => TypeKind::Bytea,
        other => panic!("no kind for {other}"),
    };
    let is_text = kind == TypeKind::Text;
    let mut ty = ColumnType::simple(pg_type, kind);
    ty.array = array;
    ty.max_len = base
        .split_once('(')
        .filter(|_| is_text)
        .and_then(|(_, n)| n.trim_end_matches(')').parse().ok());
    ty
}

/// What PostgreSQL prints for each row of `query` (one text column).
async fn printed(client: &Client, query: &str) -> Vec<String> {
    client
        .query(query, &[])
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

/// Transforms every input with `rule` on a `pg_type` column and checks PostgreSQL accepts
/// each output as that type. Returns the outputs.
async fn check(client: &Client, rule_yaml: &str, pg_type: &str, inputs: &[String]) -> Vec<String> {
    let catalogue = Catalogue::new(&Secret::new("pg-input-test-secret"), "en");
    let ty = column(pg_type);
    let t = catalogue
        .bind(
            &rule(rule_yaml),
            &ColumnInfo {
                ty: &ty,
                not_null: false,
            },
        )
        .unwrap_or_else(|e| panic!("{rule_yaml} on {pg_type}: {e}"));
    let mut outputs = Vec::new();
    for input in inputs {
        let mut out = String::new();
        match t.apply(input, &mut out) {
            Ok(Output::Value) => {}
            Ok(Output::Null) => continue,
            Err(e) => panic!("{rule_yaml} on {pg_type}: {input:?}: {e}"),
        }
        let sql = format!("SELECT $1::text::{pg_type}::text");
        if let Err(e) = client.query_one(&sql, &[&out]).await {
            panic!("{rule_yaml} on {pg_type}: PostgreSQL refuses {out:?} (from {input:?}): {e}");
        }
        outputs.push(out);
    }
    outputs
}

const TEXT_ARRAYS: &str = r#"SELECT a::text FROM (VALUES
    (ARRAY['plain', 'a b', NULL, '', 'NULL', 'q"uote', 'back\slash', '{x}', 'é 日本', 'tab	in', ' lead', 'trail '])
  , (ARRAY[]::text[])
  , ('{{a,b},{c,NULL}}'::text[])
  , ('[0:2]={x,y,z}'::text[])
  , ('[1:1][-1:0]={{"p q",r}}'::text[])
) v(a)"#;

#[tokio::test]
async fn text_transforms_on_text_types_and_arrays() {
    let client = harness::connect(&harness::admin_url()).await;
    let scalars = printed(
        &client,
        "SELECT unnest(ARRAY['Jane Doe', 'jane@corp.com', '', 'Zoë Ünal-Ørsted', '山田 太郎', '4111-1111-1111-1111', 'x'])",
    )
    .await;
    let arrays = printed(&client, TEXT_ARRAYS).await;
    let rules = [
        "hash",
        "{ transform: hash, length: 10 }",
        "first_name",
        "last_name",
        "name",
        "email",
        "username",
        "phone",
        "street_address",
        "city",
        "postcode",
        "country",
        "company",
        "iban",
        "credit_card",
        "ipv4",
        "ipv6",
        "uuid",
        "lorem",
        "{ transform: lorem, words: 40 }",
        "{ transform: choice, values: [a, 'b c', 'NULL', '\"q\"'] }",
        "{ transform: mask, keep_last: 2 }",
        r#"{ transform: regex_replace, pattern: '\w', with: '\' }"#,
        "{ transform: name, locale: ja }",
        "{ transform: street_address, locale: fr }",
        "{ transform: company, locale: pt_br }",
        "{ transform: email, locale: es }",
    ];
    for rule in rules {
        for pg_type in ["text", "character varying(12)", "character(8)"] {
            check(&client, rule, pg_type, &scalars).await;
        }
        for pg_type in ["text[]", "character varying(6)[]"] {
            check(&client, rule, pg_type, &arrays).await;
        }
    }
    for pg_type in [
        "text",
        "integer",
        "jsonb",
        "uuid",
        "date",
        "text[]",
        "integer[]",
    ] {
        let value = match pg_type {
            "text" => "redacted",
            "integer" => "0",
            "jsonb" => "{}",
            "uuid" => "00000000-0000-0000-0000-000000000000",
            "date" => "2000-01-01",
            "text[]" => "{a,\"b c\",NULL}",
            _ => "{1,2}",
        };
        let yaml = format!("{{ transform: constant, value: '{value}' }}");
        check(&client, &yaml, pg_type, &scalars).await;
    }
}

#[tokio::test]
async fn arrays_read_as_postgresql_prints_them() {
    // An identity rule (a pattern that never matches) through the element-wise path must give
    // back exactly what PostgreSQL printed.
    let client = harness::connect(&harness::admin_url()).await;
    let arrays = printed(&client, TEXT_ARRAYS).await;
    let outputs = check(
        &client,
        r#"{ transform: regex_replace, pattern: 'x\A', with: 'y' }"#,
        "text[]",
        &arrays,
    )
    .await;
    for (input, output) in arrays.iter().zip(&outputs) {
        let reprinted: String =
            harness::scalar_with(&client, "SELECT $1::text::text[]::text", &[output]).await;
        assert_eq!(&reprinted, input);
    }
}

#[tokio::test]
async fn network_and_uuid_types() {
    let client = harness::connect(&harness::admin_url()).await;
    let inets = printed(
        &client,
        "SELECT unnest(ARRAY['10.1.2.3/8'::inet, '192.168.7.1', '::1', '2001:db8::1/64', '0.0.0.0/0'])::text",
    )
    .await;
    let cidrs = printed(
        &client,
        "SELECT unnest(ARRAY['10.0.0.0/8'::cidr, '192.168.7.1/32', '2001:db8::/32', '::/0', '1.2.3.0/24'])::text",
    )
    .await;
    for rule in ["ipv4", "ipv6", "{ transform: ipv4, unique: true }"] {
        check(&client, rule, "inet", &inets).await;
        check(&client, rule, "cidr", &cidrs).await;
    }
    let arr = printed(
        &client,
        "SELECT ARRAY['1.2.3.4'::inet, NULL, '::2/120']::text",
    )
    .await;
    check(&client, "ipv4", "inet[]", &arr).await;
    let uuids = printed(
        &client,
        "SELECT gen_random_uuid()::text FROM generate_series(1, 20)",
    )
    .await;
    check(&client, "uuid", "uuid", &uuids).await;
    check(
        &client,
        "{ transform: hash, length: 9 }",
        "bytea",
        &printed(&client, r"SELECT '\x00ff10'::bytea::text").await,
    )
    .await;
}

#[tokio::test]
async fn dates_in_every_printed_form() {
    let client = harness::connect(&harness::admin_url()).await;
    client
        .batch_execute("SET DateStyle = 'ISO, MDY'; SET TimeZone = 'Asia/Kolkata'")
        .await
        .expect("set");
    let dates = printed(
        &client,
        "SELECT unnest(ARRAY['2024-01-31'::date, '2024-02-29', '0044-03-15 BC', '4714-11-24 BC', 'infinity', '-infinity', '262000-01-01'])::text",
    )
    .await;
    let timestamps = printed(
        &client,
        "SELECT unnest(ARRAY['2024-01-31 12:00:00'::timestamp, '2024-01-31 23:59:59.999999', '0001-01-01 00:00:00 BC', 'infinity'])::text",
    )
    .await;
    let timestamptzs = printed(
        &client,
        "SELECT unnest(ARRAY['2024-01-31 12:00:00+00'::timestamptz, '1900-01-01 00:00:00+00', '2024-06-30 23:59:59.5+02', '-infinity'])::text",
    )
    .await;
    assert!(timestamptzs[0].ends_with("+05:30"), "{timestamptzs:?}");
    assert!(timestamptzs[1].contains("+05:21:10"), "{timestamptzs:?}");
    for days in [1, 30, 3650] {
        let rule = format!("{{ transform: date_shift, days: {days} }}");
        check(&client, &rule, "date", &dates).await;
        check(&client, &rule, "timestamp", &timestamps).await;
        check(&client, &rule, "timestamptz", &timestamptzs).await;
    }
    let arr = printed(
        &client,
        "SELECT ARRAY['2024-01-31'::date, NULL, 'infinity']::text",
    )
    .await;
    check(
        &client,
        "{ transform: date_shift, days: 3 }",
        "date[]",
        &arr,
    )
    .await;
}

#[tokio::test]
async fn numbers_at_their_limits() {
    let client = harness::connect(&harness::admin_url()).await;
    let cases: &[(&str, &str)] = &[
        (
            "smallint",
            "SELECT unnest(ARRAY[32767, -32768, 0, 100]::smallint[])::text",
        ),
        (
            "integer",
            "SELECT unnest(ARRAY[2147483647, -2147483648, 42]::integer[])::text",
        ),
        (
            "bigint",
            "SELECT unnest(ARRAY[9223372036854775807, -9223372036854775808, 7]::bigint[])::text",
        ),
        (
            "real",
            "SELECT unnest(ARRAY[3.4028235e38, -3.4028235e38, 1.5, 'NaN', 'Infinity', 1e-30]::real[])::text",
        ),
        (
            "double precision",
            "SELECT unnest(ARRAY[1.7976931348623157e308, 5e-324, -2.5, 'NaN', '-Infinity']::float8[])::text",
        ),
        (
            "numeric",
            "SELECT unnest(ARRAY[0.001, 123456789012345678901234567890.123, -42, 'NaN', 1e-20]::numeric[])::text",
        ),
        (
            "numeric(5,2)",
            "SELECT unnest(ARRAY[999.99, -999.99, 0.01, 12.5]::numeric(5,2)[])::text",
        ),
        (
            "money",
            "SELECT unnest(ARRAY['92233720368547758.07'::money, '-92233720368547758.08', '1234.56', '0'])::text",
        ),
    ];
    for (pg_type, query) in cases {
        let inputs = printed(&client, query).await;
        for percent in [1, 10, 100] {
            let rule = format!("{{ transform: noise, percent: {percent} }}");
            check(&client, &rule, pg_type, &inputs).await;
        }
    }
    let arr = printed(&client, "SELECT '{{1,2},{3,NULL}}'::integer[]::text").await;
    check(
        &client,
        "{ transform: noise, percent: 5 }",
        "integer[]",
        &arr,
    )
    .await;
}

#[tokio::test]
async fn json_documents() {
    let client = harness::connect(&harness::admin_url()).await;
    let docs = printed(
        &client,
        r#"SELECT unnest(ARRAY[
            '{"email": "jane@corp.com", "n": 12345678901234567890.5, "nested": {"phone": "555"}, "list": [{"email": "a@b.c"}, 2]}'::jsonb,
            '[]', '"just a string"', 'null', '{"email": null, "e\"scape": "\u00e9\n"}'
        ])::text"#,
    )
    .await;
    let rule = r#"{ transform: json, paths: { "$.email": email, "$.nested.phone": phone, "$.list.email": { transform: hash, length: 8 }, "$.n": { transform: noise, percent: 5 } } }"#;
    for pg_type in ["json", "jsonb"] {
        check(&client, rule, pg_type, &docs).await;
    }
    // A path that matches nothing leaves the document equal (as jsonb) to the original.
    let outputs = check(
        &client,
        r#"{ transform: json, paths: { "$.absent": email } }"#,
        "jsonb",
        &docs,
    )
    .await;
    for (input, output) in docs.iter().zip(&outputs) {
        let same: bool = harness::scalar_with(
            &client,
            "SELECT $1::text::jsonb = $2::text::jsonb",
            &[input, output],
        )
        .await;
        assert!(same, "{input} → {output}");
    }
    let arr = printed(
        &client,
        r#"SELECT ARRAY['{"email": "x@y.z"}'::jsonb, NULL]::text"#,
    )
    .await;
    check(
        &client,
        r#"{ transform: json, paths: { "$.email": email } }"#,
        "jsonb[]",
        &arr,
    )
    .await;
}
