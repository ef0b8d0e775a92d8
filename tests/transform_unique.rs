//! `unique: true` at scale: a million distinct emails must give a million distinct fakes (a
//! unique index on the column never fails), while values that do not clash keep the output a
//! rule without `unique` gives them.
//!
//! Here rather than in the unit tests because it is the slowest test of the catalogue (our
//! crate builds at opt-level 0 in the test profile). Values are transformed from rayon
//! workers, as the pipeline does, so the registry is exercised concurrently. Measured on a
//! 2-core machine shared with other builds: 4 s at load 2, 8 to 10 s at load 6 (6.6 s of CPU).

use std::collections::HashSet;
use std::fmt::Write;
use std::time::Instant;

use rayon::prelude::*;
use restage::catalog::{ColumnType, TypeKind};
use restage::secret::Secret;
use restage::transform::{Catalogue, ColumnInfo, Output, RuleSpec, Transform};

const N: usize = 1_000_000;
const SECRET: &str = "unique-test-secret";

fn input(i: usize, buf: &mut String) {
    buf.clear();
    let _ = write!(buf, "customer{i}@shop.example");
}

fn transform_all(t: &dyn Transform, range: std::ops::Range<usize>) -> Vec<String> {
    let mut value = String::new();
    range
        .map(|i| {
            input(i, &mut value);
            let mut out = String::new();
            assert_eq!(t.apply(&value, &mut out).expect("email"), Output::Value);
            out
        })
        .collect()
}

#[test]
fn a_million_distinct_emails_stay_distinct() {
    let ty = ColumnType::simple("text", TypeKind::Text);
    let column = ColumnInfo {
        ty: &ty,
        not_null: true,
    };
    let catalogue = Catalogue::new(&Secret::new(SECRET), "en");
    let unique = catalogue
        .bind(&RuleSpec::named("email").with("unique", true), &column)
        .expect("bind");

    let started = Instant::now();
    let chunks: Vec<Vec<String>> = (0..N)
        .step_by(10_000)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| transform_all(&*unique, start..(start + 10_000).min(N)))
        .collect();
    let elapsed = started.elapsed();

    let mut seen: HashSet<&str> = HashSet::with_capacity(N);
    for out in chunks.iter().flatten() {
        assert!(seen.insert(out.as_str()), "two inputs got the same output");
    }
    assert_eq!(seen.len(), N);

    let stats = catalogue.unique_stats();
    assert_eq!(stats.values, N as u64);
    // Clashes are rare (the number in the local part makes the space large) but happen at
    // this size; the registry resolved them, and only them.
    assert!(stats.resolved_clashes < 100, "{stats:?}");

    // The same rule without `unique`, in a run of its own, gives the natural outputs: all but
    // the resolved clashes are the same.
    let natural = Catalogue::new(&Secret::new(SECRET), "en")
        .bind(&RuleSpec::named("email"), &column)
        .expect("bind");
    let mut value = String::new();
    let mut out = String::new();
    let mut changed = 0u64;
    for (i, expected) in chunks.iter().flatten().enumerate().step_by(50) {
        input(i, &mut value);
        out.clear();
        natural.apply(&value, &mut out).expect("email");
        if &out != expected {
            changed += 1;
        }
    }
    assert!(
        changed <= stats.resolved_clashes,
        "{changed} values changed"
    );
    eprintln!(
        "{N} unique emails in {elapsed:.2?}; {} clashes resolved; registry {} bytes ({:.1} per value)",
        stats.resolved_clashes,
        stats.bytes,
        stats.bytes as f64 / N as f64
    );
}
