//! `max_storage` after the plan: what the plan counts against the cap, how a load's measured
//! sizes are judged against it (with its tolerance), what a load that missed teaches the
//! model (the calibration of a rescale), and the report's `storage` section. Pure; the
//! refresh measures, this decides.

use std::collections::BTreeMap;

use super::sample::StorageCap;
use crate::catalog::{Catalog, QualifiedName};
use crate::config::MaxStoragePolicy;
use crate::units::{format_percent, human_bytes};

/// Reloads after a miss before a rescaling run gives up.
pub const MAX_RESCALES: usize = 2;

/// What a plan with a cap counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoragePlan {
    pub cap: StorageCap,
    /// The factor the roots were scaled by.
    pub factor: f64,
    /// What the cap counts of the plan (heap + TOAST, and indexes when they count).
    pub planned_bytes: u64,
}

/// The report's `storage` section: the cap, the plan, and (after a load) what was restored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StorageReport {
    pub limit: u64,
    pub tolerance_percent: f64,
    /// The most the restored data may take before the policy applies.
    pub allowed: u64,
    pub include_indexes: bool,
    /// What the cap counts, in words.
    pub counts: &'static str,
    pub policy: MaxStoragePolicy,
    /// What the cap counts of the plan.
    pub planned_bytes: u64,
    /// What the cap counts of the restored database (none before a load).
    pub restored_bytes: Option<u64>,
    /// The restored data is over `allowed` (it went live so only with `policy: warn`).
    pub over: bool,
    /// The rescales of this run, in order.
    pub rescaled: Vec<Rescale>,
}

/// One rescale after a load that missed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rescale {
    /// What the load measured (with projected indexes when they count).
    pub measured_bytes: u64,
    pub factor_before: f64,
    pub factor_after: f64,
    /// The sampled tables reloaded.
    pub tables_reloaded: usize,
}

impl StorageReport {
    /// The section before anything is loaded.
    pub fn planned(plan: &StoragePlan) -> StorageReport {
        let cap = plan.cap;
        StorageReport {
            limit: cap.limit,
            tolerance_percent: cap.tolerance * 100.0,
            allowed: cap.allowed(),
            include_indexes: cap.include_indexes,
            counts: cap.counts(),
            policy: cap.policy,
            planned_bytes: plan.planned_bytes,
            restored_bytes: None,
            over: false,
            rescaled: vec![],
        }
    }

    /// `max_storage 4.0 MiB (heap + TOAST, tolerance 0%, policy rescale)`.
    pub fn describe(&self) -> String {
        format!(
            "max_storage {} ({}, tolerance {}%, policy {})",
            human_bytes(self.limit),
            self.counts,
            format_percent(self.tolerance_percent),
            self.policy.name()
        )
    }
}

/// A table that came out bigger than planned, for the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub table: String,
    pub planned: u64,
    pub measured: u64,
}

/// Whether what a load measured fits the cap; `Err` says by how much it does not, naming
/// the tables that missed their plan the most.
pub fn judge(cap: &StorageCap, measured: u64, misses: &[Miss]) -> Result<(), String> {
    if measured <= cap.allowed() {
        return Ok(());
    }
    // A table a page or a few percent over its plan is no news; the ones that missed are.
    let mut worst: Vec<&Miss> = misses
        .iter()
        .filter(|m| m.measured as f64 > m.planned as f64 * 1.05 + super::estimate::PAGE as f64)
        .collect();
    worst.sort_by_key(|m| std::cmp::Reverse(m.measured - m.planned));
    let named: Vec<String> = worst
        .iter()
        .take(3)
        .map(|m| {
            format!(
                "{} (planned {}, restored {})",
                m.table,
                human_bytes(m.planned),
                human_bytes(m.measured)
            )
        })
        .collect();
    Err(format!(
        "sample.max_storage: the restored tables take {} ({}), over the cap of {}{}{}",
        human_bytes(measured),
        cap.counts(),
        human_bytes(cap.limit),
        if cap.tolerance > 0.0 {
            format!(" + {}%", format_percent(cap.tolerance * 100.0))
        } else {
            String::new()
        },
        if named.is_empty() {
            String::new()
        } else {
            format!("; bigger than planned: {}", named.join(", "))
        }
    ))
}

/// Per logical table, what a load measured over what the plan said (leaves added up), for
/// the next plan: `previous` calibration times this load's ratio, both without the
/// table's `fixed` bytes (pages any table of it takes, which do not grow with its rows).
/// Tables with nothing planned or measured beyond those keep their calibration.
pub fn calibrate(
    catalog: &Catalog,
    planned: &BTreeMap<QualifiedName, u64>,
    measured: &BTreeMap<QualifiedName, u64>,
    fixed: impl Fn(&QualifiedName) -> u64,
    previous: &BTreeMap<QualifiedName, f64>,
) -> BTreeMap<QualifiedName, f64> {
    let mut sums: BTreeMap<QualifiedName, (u64, u64)> = BTreeMap::new();
    for (leaf, p) in planned {
        let m = measured.get(leaf).copied().unwrap_or(0);
        let e = sums.entry(catalog.root_of(leaf)).or_default();
        e.0 += p;
        e.1 += m;
    }
    let mut out = previous.clone();
    for (logical, (p, m)) in sums {
        let f = fixed(&logical);
        if p > f && m > f {
            let before = previous.get(&logical).copied().unwrap_or(1.0);
            out.insert(logical, before * (m - f) as f64 / (p - f) as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(tolerance: f64) -> StorageCap {
        StorageCap {
            limit: 4 << 20,
            include_indexes: false,
            tolerance,
            policy: MaxStoragePolicy::Rescale,
        }
    }

    fn q(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    #[test]
    fn the_tolerance_is_what_the_cap_allows_over_it() {
        assert_eq!(cap(0.0).allowed(), 4 << 20);
        assert!(judge(&cap(0.0), 4 << 20, &[]).is_ok());
        assert!(judge(&cap(0.05), (4 << 20) + 100_000, &[]).is_ok());
        let misses = [
            Miss {
                table: "public.events".into(),
                planned: 1 << 20,
                measured: 3 << 20,
            },
            Miss {
                table: "public.users".into(),
                planned: 1 << 20,
                measured: 1 << 19,
            },
        ];
        let err = judge(&cap(0.05), 5 << 20, &misses).unwrap_err();
        assert_eq!(
            err,
            "sample.max_storage: the restored tables take 5.0 MiB (heap + TOAST), over the cap of 4.0 MiB + 5%; bigger than planned: public.events (planned 1.0 MiB, restored 3.0 MiB)"
        );
        let report = StorageReport::planned(&StoragePlan {
            cap: cap(0.0),
            factor: 1.0,
            planned_bytes: 3 << 20,
        });
        assert_eq!(
            report.describe(),
            "max_storage 4.0 MiB (heap + TOAST, tolerance 0%, policy rescale)"
        );
    }

    #[test]
    fn a_miss_calibrates_the_logical_table_of_its_leaves() {
        let t = |name: &str, parent: Option<&str>| crate::catalog::Table {
            name: q(name),
            oid: 0,
            kind: crate::catalog::TableKind::Ordinary,
            columns: vec![],
            primary_key: vec![],
            unique_keys: vec![],
            parent: parent.map(q),
            estimated_rows: 0.0,
            bytes: 0,
            pages: 0,
        };
        let mut events = t("events", None);
        events.kind = crate::catalog::TableKind::Partitioned;
        let catalog = Catalog {
            tables: [
                events,
                t("events_a", Some("events")),
                t("events_b", Some("events")),
                t("users", None),
            ]
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect(),
            foreign_keys: vec![],
            sequences: vec![],
            materialized_views: vec![],
            extensions: vec![],
            server_version: 150000,
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
        };
        let planned = BTreeMap::from([(q("events_a"), 110), (q("events_b"), 110), (q("users"), 0)]);
        let measured = BTreeMap::from([
            (q("events_a"), 160),
            (q("events_b"), 160),
            (q("users"), 8192),
        ]);
        let previous = BTreeMap::from([(q("events"), 2.0)]);
        // 20 bytes of events do not grow with its rows: 200 planned, 300 measured.
        let fixed = |n: &QualifiedName| if n == &q("events") { 20 } else { 0 };
        let c = calibrate(&catalog, &planned, &measured, fixed, &previous);
        assert_eq!(c[&q("events")], 3.0);
        assert!(
            !c.contains_key(&q("users")),
            "planned at 0: nothing to learn"
        );
    }
}
