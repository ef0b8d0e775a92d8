//! The transform hot path: values per second on one core, per family. Each benchmark binds a
//! rule once and applies it to 1,000 distinct values (reusing the output buffer, as the
//! pipeline's workers do); criterion reports the throughput in values per second.
//!
//! Run: `cargo bench --bench transforms -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use restage::catalog::{ColumnType, TypeKind};
use restage::secret::Secret;
use restage::transform::{Catalogue, ColumnInfo, RuleSpec, Transform};

const VALUES: usize = 1_000;

fn rule(yaml: &str) -> RuleSpec {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("bench YAML");
    RuleSpec::from_value(&value).expect("bench rule")
}

fn bind(catalogue: &Catalogue, yaml: &str, ty: &ColumnType) -> Arc<dyn Transform> {
    catalogue
        .bind(
            &rule(yaml),
            &ColumnInfo {
                ty,
                not_null: false,
            },
        )
        .expect("bench rule binds")
}

fn column(name: &str, kind: TypeKind, array: bool) -> ColumnType {
    let mut ty = ColumnType::simple(name, kind);
    ty.array = array;
    ty
}

/// One benchmark: `rule` on a `ty` column over `values`.
fn bench(
    c: &mut Criterion,
    catalogue: &Catalogue,
    name: &str,
    yaml: &str,
    ty: &ColumnType,
    values: &[String],
) {
    let t = bind(catalogue, yaml, ty);
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function(name, |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            for v in values {
                out.clear();
                black_box(t.apply(black_box(v), &mut out).expect("bench value"));
            }
        })
    });
    group.finish();
}

fn transforms(c: &mut Criterion) {
    let catalogue = Catalogue::new(&Secret::new("bench-secret-0123456789"), "en");
    let text = column("text", TypeKind::Text, false);
    let emails: Vec<String> = (0..VALUES)
        .map(|i| format!("customer.{i}@shop.example"))
        .collect();
    let names: Vec<String> = (0..VALUES).map(|i| format!("Person {i}")).collect();
    let cards: Vec<String> = (0..VALUES)
        .map(|i| format!("4111-1111-{:04}-{:04}", i / 100, i))
        .collect();
    let notes: Vec<String> = (0..VALUES)
        .map(|i| format!("call 555-{:02}-{:04} about order {i}", i % 100, i))
        .collect();

    bench(c, &catalogue, "hash", "hash", &text, &emails);
    bench(c, &catalogue, "first_name", "first_name", &text, &names);
    bench(c, &catalogue, "name", "name", &text, &names);
    bench(
        c,
        &catalogue,
        "name_ja",
        "{ transform: name, locale: ja }",
        &text,
        &names,
    );
    bench(
        c,
        &catalogue,
        "street_address",
        "street_address",
        &text,
        &names,
    );
    bench(c, &catalogue, "email", "email", &text, &emails);
    // The same 1,000 values every iteration: after the first, each is found in the registry.
    bench(
        c,
        &catalogue,
        "email_unique",
        "{ transform: email, unique: true }",
        &text,
        &emails,
    );
    bench(c, &catalogue, "uuid", "uuid", &text, &emails);
    bench(
        c,
        &catalogue,
        "mask",
        "{ transform: mask, keep_last: 4 }",
        &text,
        &cards,
    );
    let dates: Vec<String> = (0..VALUES)
        .map(|i| format!("19{:02}-{:02}-{:02}", i % 100, 1 + i % 12, 1 + i % 28))
        .collect();
    bench(
        c,
        &catalogue,
        "date_shift_date",
        "{ transform: date_shift, days: 30 }",
        &column("date", TypeKind::Date, false),
        &dates,
    );
    let stamps: Vec<String> = (0..VALUES)
        .map(|i| {
            format!(
                "2024-{:02}-{:02} 12:{:02}:00.123+00",
                1 + i % 12,
                1 + i % 28,
                i % 60
            )
        })
        .collect();
    bench(
        c,
        &catalogue,
        "date_shift_timestamptz",
        "{ transform: date_shift, days: 30 }",
        &column("timestamp with time zone", TypeKind::TimestampTz, false),
        &stamps,
    );
    let ints: Vec<String> = (0..VALUES).map(|i| (i * 1_337).to_string()).collect();
    bench(
        c,
        &catalogue,
        "noise_integer",
        "{ transform: noise, percent: 10 }",
        &column("integer", TypeKind::Int, false),
        &ints,
    );
    let amounts: Vec<String> = (0..VALUES).map(|i| format!("{i}.{:02}", i % 100)).collect();
    bench(
        c,
        &catalogue,
        "noise_numeric",
        "{ transform: noise, percent: 10 }",
        &column("numeric(12,2)", TypeKind::Numeric, false),
        &amounts,
    );
    bench(
        c,
        &catalogue,
        "regex_replace",
        r#"{ transform: regex_replace, pattern: '\d{3}-\d{2}-(\d{4})', with: 'XXX-XX-$1' }"#,
        &text,
        &notes,
    );
    let docs: Vec<String> = (0..VALUES)
        .map(|i| {
            format!(
                r#"{{"email": "user{i}@corp.com", "name": "User {i}", "address": {{"street": "{i} Main St", "zip": "12345"}}, "tags": ["a", "b"], "score": {i}.5}}"#
            )
        })
        .collect();
    bench(
        c,
        &catalogue,
        "json_paths",
        r#"{ transform: json, paths: { "$.email": email, "$.name": name, "$.address.street": street_address } }"#,
        &column("jsonb", TypeKind::Jsonb, false),
        &docs,
    );
    let arrays: Vec<String> = (0..VALUES)
        .map(|i| format!(r#"{{"a{i}@x.com","b {i}@y.org",NULL,c{i}@z.net}}"#))
        .collect();
    bench(
        c,
        &catalogue,
        "array_email_4_elements",
        "email",
        &column("text[]", TypeKind::Text, true),
        &arrays,
    );
}

criterion_group!(benches, transforms);
criterion_main!(benches);
