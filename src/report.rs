//! The refresh report: per-table rows, bytes, duration, rules and sample decisions, totals,
//! verification and the generation swapped in. Never any personal data.
