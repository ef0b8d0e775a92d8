//! Peak memory of the `unique: true` registry: N distinct emails (default 50 million) through
//! `{ transform: email, unique: true }` on the rayon pool, as the pipeline applies it; prints
//! the time, the registry's figures and the process's peak RSS (`VmHWM`). Not a criterion
//! bench: one pass, measured whole.
//!
//! Run: `cargo bench --bench unique_memory -- 50000000`, or for `/usr/bin/time -v`, build with
//! `cargo bench --bench unique_memory --no-run` and run the binary it names.

use std::fmt::Write;
use std::time::Instant;

use rayon::prelude::*;
use restage::catalog::{ColumnType, TypeKind};
use restage::secret::Secret;
use restage::transform::{Catalogue, ColumnInfo, RuleSpec};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(50_000_000);
    let ty = ColumnType::simple("text", TypeKind::Text);
    let column = ColumnInfo {
        ty: &ty,
        not_null: true,
    };
    let catalogue = Catalogue::new(&Secret::new("bench-secret-0123456789"), "en");
    let unique = catalogue
        .bind(&RuleSpec::named("email").with("unique", true), &column)
        .expect("bind");
    let started = Instant::now();
    const CHUNK: usize = 100_000;
    let bytes: usize = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut value = String::new();
            let mut out = String::new();
            let mut total = 0;
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                value.clear();
                let _ = write!(value, "customer{i}@shop.example");
                out.clear();
                unique.apply(&value, &mut out).expect("email");
                total += out.len();
            }
            total
        })
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let stats = catalogue.unique_stats();
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "{n} distinct emails in {seconds:.1} s ({:.0} ns a value on the pool; {bytes} bytes out)",
        seconds * 1e9 / n as f64
    );
    println!(
        "registry: {} values held (distinct outputs), {} clashes resolved, {:.1} MiB in memory, \
         {:.1} MiB spilled",
        stats.values,
        stats.resolved_clashes,
        stats.bytes as f64 / 1048576.0,
        stats.disk_bytes as f64 / 1048576.0
    );
    println!("peak RSS (VmHWM): {hwm}");
    assert_eq!(stats.values, n as u64, "every input holds its own output");
}
