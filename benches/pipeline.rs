//! The transform stage as the pipeline runs it: batches of COPY text rows through
//! `process_batch`, on one thread and on the rayon pool. Rows look like the demo's `users`
//! table (13 columns, 9 of them ruled by `rules/demo.yaml`), plus the same rows with no rule
//! (fields located, never decoded) for comparison.
//!
//! The group `events` puts the same rows of the demo's events (id, user id, kind, a jsonb
//! payload ruled on two paths, a timestamp) through the row stage in COPY text
//! (`process_shared`) and in COPY's binary format (`process_binary`, issue 14): restage's own
//! side of binary COPY (the servers' side, most of the gain, is in benches/README.md).
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use restage::catalog::{BinaryLayout, ColumnType, QualifiedName, TypeKind};
use restage::copy_binary;
use restage::copy_text::encode;
use restage::refresh::rows::{
    ColumnAction, RowPlan, process_batch, process_binary, process_shared,
};
use restage::secret::Secret;
use restage::transform::{Catalogue, ColumnInfo, RuleSpec};

const ROWS_PER_BATCH: usize = 4_000;
const BATCHES: usize = 16;

/// (column, type, rule or None for pass-through), as in rules/demo.yaml for public.users.
fn columns() -> Vec<(&'static str, TypeKind, Option<&'static str>)> {
    vec![
        ("id", TypeKind::Int, None),
        (
            "email",
            TypeKind::Text,
            Some("{ transform: email, unique: true }"),
        ),
        ("first_name", TypeKind::Text, Some("first_name")),
        ("last_name", TypeKind::Text, Some("last_name")),
        ("phone", TypeKind::Text, Some("phone")),
        (
            "birth_date",
            TypeKind::Date,
            Some("{ transform: date_shift, days: 30 }"),
        ),
        ("ssn", TypeKind::Text, Some("hash")),
        (
            "password_hash",
            TypeKind::Text,
            Some("{ transform: constant, value: disabled }"),
        ),
        ("referred_by", TypeKind::Int, None),
        (
            "notes",
            TypeKind::Text,
            Some(
                r#"{ transform: regex_replace, pattern: '\d[\d\-. ()x]{6,}\d', with: "[redacted]" }"#,
            ),
        ),
        (
            "profile",
            TypeKind::Jsonb,
            Some(
                r#"{ transform: json, paths: { "$.email": email, "$.address.street": street_address, "$.address.city": city } }"#,
            ),
        ),
        ("search", TypeKind::TsVector, None),
        ("created_at", TypeKind::TimestampTz, None),
    ]
}

fn batch(offset: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in offset..offset + ROWS_PER_BATCH {
        let fields = [
            i.to_string(),
            format!("person.number{i}@gmail.com"),
            format!("Firstname{}", i % 977),
            format!("Lastname{}", i % 1013),
            format!("(555) 01{:02}-{:04}", i % 100, i % 10000),
            format!("19{:02}-0{}-1{}", 50 + i % 49, 1 + i % 9, i % 9),
            format!("{:03}-{:02}-{:04}", i % 900, i % 99, i % 9999),
            "$2b$12$abcdefghijklmnopqrstuv".to_string(),
            (i / 2).to_string(),
            if i % 2 == 0 {
                format!(
                    "Verified identity, SSN {:03}-45-{:04} on file",
                    i % 900,
                    i % 9999
                )
            } else {
                "VIP customer".to_string()
            },
            format!(
                r#"{{"email": "person.number{i}@gmail.com", "address": {{"city": "Springfield", "street": "{i} Main Street"}}, "newsletter": true}}"#
            ),
            format!("'firstname{}':1 'lastname{}':2", i % 977, i % 1013),
            "2025-03-01 12:34:56.789+00".to_string(),
        ];
        for (j, f) in fields.iter().enumerate() {
            if j > 0 {
                out.push(b'\t');
            }
            encode(f, &mut out);
        }
        out.push(b'\n');
    }
    out
}

fn plan(ruled: bool) -> Arc<RowPlan> {
    let catalogue = Catalogue::new(&Secret::new("benchmark-secret-0123456789"), "en");
    let columns = columns()
        .into_iter()
        .map(|(name, kind, rule)| match (ruled, rule) {
            (true, Some(yaml)) => ColumnAction::Transform {
                column: name.to_string(),
                transform: bind(&catalogue, yaml, name, kind, false),
            },
            _ => ColumnAction::Pass,
        })
        .collect();
    Arc::new(RowPlan {
        table: QualifiedName::new("public", "users"),
        columns,
        filter: None,
        encoding: Default::default(),
        check: None,
    })
}

fn bench(c: &mut Criterion) {
    let batches: Vec<Vec<u8>> = (0..BATCHES).map(|b| batch(b * ROWS_PER_BATCH)).collect();
    let bytes: usize = batches.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("stage");
    group.sample_size(10);
    for (label, ruled) in [
        ("users, demo rules", true),
        ("users, no rules (fields located only)", false),
    ] {
        let plan = plan(ruled);
        group.throughput(Throughput::Elements(ROWS_PER_BATCH as u64));
        group.bench_function(format!("{label}: one batch, one thread"), |b| {
            b.iter(|| process_batch(&plan, black_box(&batches[0])).expect("batch"))
        });
        group.throughput(Throughput::Elements((ROWS_PER_BATCH * BATCHES) as u64));
        group.bench_function(format!("{label}: {BATCHES} batches, rayon pool"), |b| {
            b.iter(|| {
                batches
                    .par_iter()
                    .map(|batch| {
                        process_batch(&plan, black_box(batch))
                            .expect("batch")
                            .rows_out
                    })
                    .sum::<u64>()
            })
        });
    }
    group.finish();
    let _ = bytes;
}

/// The demo's events rows, in COPY text and in COPY's binary format (the binary batch starts
/// with the header, as a job's first batch does).
fn events(rows: usize) -> (Bytes, Bytes) {
    let mut text = Vec::new();
    let mut binary = copy_binary::SIGNATURE.to_vec();
    binary.extend_from_slice(&[0; 8]);
    for i in 0..rows as i64 {
        let payload = if i % 3 == 0 {
            format!(
                r#"{{"ip": "10.{}.{}.7", "email": "person{i}@example.com"}}"#,
                i % 200,
                i % 250
            )
        } else {
            format!(
                r#"{{"ip": "10.{}.{}.7", "path": "/products/{}"}}"#,
                i % 200,
                i % 250,
                i % 500
            )
        };
        let kind = if i % 3 == 0 { "signup" } else { "view" };
        text.extend_from_slice(
            format!(
                "{i}\t{}\t{kind}\t{payload}\t2025-03-01 12:34:56.789+00\n",
                i / 20
            )
            .as_bytes(),
        );
        binary.extend_from_slice(&copy_binary::field_count(5));
        for field in [
            i.to_be_bytes().to_vec(),
            (i / 20).to_be_bytes().to_vec(),
            kind.as_bytes().to_vec(),
            [&[1u8][..], payload.as_bytes()].concat(),
            (794_061_296_789_000i64 + i).to_be_bytes().to_vec(),
        ] {
            binary.extend_from_slice(&copy_binary::length(field.len()));
            binary.extend_from_slice(&field);
        }
    }
    (Bytes::from(text), Bytes::from(binary))
}

/// The rule `yaml` bound to a column `name` of `kind`.
fn bind(
    catalogue: &Catalogue,
    yaml: &str,
    name: &str,
    kind: TypeKind,
    not_null: bool,
) -> Arc<dyn restage::transform::Transform> {
    let ty = ColumnType::simple(name, kind);
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("bench YAML");
    let spec = RuleSpec::from_value(&value).expect("bench rule");
    catalogue
        .bind(&spec, &ColumnInfo { ty: &ty, not_null })
        .expect("bench rule binds")
}

fn events_plan() -> Arc<RowPlan> {
    let catalogue = Catalogue::new(&Secret::new("benchmark-secret-0123456789"), "en");
    let transform = bind(
        &catalogue,
        r#"{ transform: json, paths: { "$.email": email, "$.ip": ipv4 } }"#,
        "payload",
        TypeKind::Jsonb,
        true,
    );
    Arc::new(RowPlan {
        table: QualifiedName::new("public", "events"),
        columns: vec![
            ColumnAction::Pass,
            ColumnAction::Pass,
            ColumnAction::Pass,
            ColumnAction::Transform {
                column: "payload".into(),
                transform,
            },
            ColumnAction::Pass,
        ],
        filter: None,
        encoding: Default::default(),
        check: None,
    })
}

fn bench_events(c: &mut Criterion) {
    let (text, binary) = events(ROWS_PER_BATCH * 4);
    let plan = events_plan();
    let layouts = [
        BinaryLayout::Opaque,
        BinaryLayout::Opaque,
        BinaryLayout::Text,
        BinaryLayout::Jsonb,
        BinaryLayout::Opaque,
    ];
    let mut group = c.benchmark_group("events");
    group.sample_size(10);
    group.throughput(Throughput::Elements((ROWS_PER_BATCH * 4) as u64));
    group.bench_function("demo rules, COPY text", |b| {
        b.iter(|| process_shared(&plan, black_box(&text)).expect("batch"))
    });
    group.bench_function("demo rules, COPY binary", |b| {
        b.iter(|| process_binary(&plan, &layouts, black_box(&binary)).expect("batch"))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_events);
criterion_main!(benches);
