//! The stream check's leak probe ([`LeakProbe::find`]): every probed staging value is split
//! into tokens and each run of tokens looked up among the keyed hashes of sampled source
//! values. On the demo's anonymized refresh it was the largest single client-side cost
//! (perf: 14 % of restage's CPU at scale 10), so it is timed here on the values it sees
//! most: the events' jsonb payloads, order statuses and tags, free-text notes, and a text
//! with non-ASCII letters. The probe holds 10,000 sampled emails, 10,000 names and 10,000
//! phone numbers (three columns' worth of `SAMPLE_PER_COLUMN`), and `leak_probe_150k` five
//! times as many (fifteen columns' worth); none of the scanned values
//! matches, as in a run without leaks, so every token of every value is looked up.
//!
//! Run: `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use restage::refresh::verify::{LeakProbe, Tokens};

const VALUES: usize = 1_000;

fn sampled(per_column: u32) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..per_column {
        out.push(format!("person.number{i}@example{}.com", i % 7));
        out.push(format!("Given{} Family{}", i % 997, i / 3));
        out.push(format!("({:03}) 555-{:04}", 200 + i % 700, i));
    }
    out
}

fn scanned(kind: &str) -> Vec<String> {
    (0..VALUES as u32)
        .map(|i| match kind {
            "payload" => format!(
                r#"{{"ip": "10.{}.{}.{}", "email": "f{i:x}.k{}@mailbox.test"}}"#,
                i % 250,
                i % 13,
                i % 7,
                i * 31
            ),
            "status" => ["paid", "shipped", "cancelled", "{express,\"gift wrap\"}"][i as usize % 4]
                .to_string(),
            "notes" => format!(
                "Customer called on {} about order {i}: prefers contact by [redacted], parcel left at the door",
                2000 + i % 25
            ),
            _ => format!("Zoë Ångström-Łukasz {i}, Straße {} in Köln", i % 90),
        })
        .collect()
}

/// Times `probe` on the scanned values of each of `kinds`, in a group named `group`.
fn time_probe(c: &mut Criterion, group: &str, probe: &LeakProbe, kinds: &[&str]) {
    let mut group = c.benchmark_group(group);
    for &kind in kinds {
        let values = scanned(kind);
        let bytes: usize = values.iter().map(String::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut tokens = Tokens::default();
        group.bench_function(kind, |b| {
            b.iter(|| {
                let mut found = 0usize;
                for v in &values {
                    found += usize::from(probe.find(black_box(v), &mut tokens).is_some());
                }
                assert_eq!(found, 0, "no scanned value is a sampled one");
                found
            })
        });
    }
    group.finish();
}

fn probe(c: &mut Criterion) {
    let few = sampled(10_000);
    let probe = LeakProbe::of_values("bench.sampled", few.iter().map(String::as_str));
    time_probe(
        c,
        "leak_probe",
        &probe,
        &["payload", "status", "notes", "non_ascii"],
    );
    // A probe of 150,000 sampled values (fifteen columns' worth): its hash table (about
    // 4 MiB) no longer fits in the L2 cache. A bit filter in front of the table (32 bits a
    // value, asked before each lookup) was tried against it and lost: 278.7 µs without,
    // 292.4 µs with (+5 %), and no change on the 30,000-value probe; hashbrown's miss
    // already costs about one cache line, and so did the filter's.
    let many = sampled(50_000);
    let probe = LeakProbe::of_values("bench.sampled", many.iter().map(String::as_str));
    time_probe(c, "leak_probe_150k", &probe, &["payload"]);
}

criterion_group!(benches, probe);
criterion_main!(benches);
