//! The status document and the thresholds that turn probes into counted states.
//!
//! Thresholds smooth flapping over consecutive runs (`--watch`, `--serve`): a healthy check
//! counts unhealthy only after `unhealthy_threshold` consecutive failures, and an unhealthy
//! one healthy again only after `healthy_threshold` consecutive passes. The first run has no
//! history, so its probes count as they are: a one-shot `restage health` reports what it saw,
//! and a watcher does not call a dead database healthy for its first few intervals.

use serde::Serialize;

use crate::health::checks::Probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// The exit code of the spec: 0 healthy, 1 degraded or unhealthy.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Healthy => 0,
            Status::Degraded | Status::Unhealthy => 1,
        }
    }
}

/// One check in the document.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub healthy: bool,
    pub critical: bool,
    pub latency_ms: u64,
    pub detail: String,
}

/// The status document of the spec (`--json`, `GET /health`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusDocument {
    pub status: Status,
    pub timestamp: String,
    pub checks: Vec<CheckStatus>,
}

impl StatusDocument {
    /// Unhealthy when a critical check fails, degraded when another one does.
    pub fn new(checks: Vec<CheckStatus>) -> StatusDocument {
        let status = if checks.iter().any(|c| !c.healthy && c.critical) {
            Status::Unhealthy
        } else if checks.iter().any(|c| !c.healthy) {
            Status::Degraded
        } else {
            Status::Healthy
        };
        StatusDocument {
            status,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            checks,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct CheckState {
    /// `None` until the first probe.
    healthy: Option<bool>,
    passes: u32,
    failures: u32,
}

/// Counted state of each check across runs.
#[derive(Debug)]
pub struct Tracker {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    states: Vec<CheckState>,
}

impl Tracker {
    pub fn new(checks: usize, healthy_threshold: u32, unhealthy_threshold: u32) -> Tracker {
        Tracker {
            healthy_threshold: healthy_threshold.max(1),
            unhealthy_threshold: unhealthy_threshold.max(1),
            states: vec![CheckState::default(); checks],
        }
    }

    /// Records the probe of check `i`; returns whether the check counts healthy and, when that
    /// differs from the probe, a note saying how far the threshold is.
    pub fn observe(&mut self, i: usize, passed: bool) -> (bool, Option<String>) {
        let (healthy_threshold, unhealthy_threshold) =
            (self.healthy_threshold, self.unhealthy_threshold);
        let Some(state) = self.states.get_mut(i) else {
            return (passed, None);
        };
        if passed {
            state.passes += 1;
            state.failures = 0;
        } else {
            state.failures += 1;
            state.passes = 0;
        }
        let healthy = match state.healthy {
            None => passed,
            Some(true) => state.failures < unhealthy_threshold,
            Some(false) => state.passes >= healthy_threshold,
        };
        state.healthy = Some(healthy);
        let note = match (healthy, passed) {
            (true, false) => Some(format!(
                "failure {} of {} before unhealthy",
                state.failures, unhealthy_threshold
            )),
            (false, true) => Some(format!(
                "pass {} of {} before healthy again",
                state.passes, healthy_threshold
            )),
            _ => None,
        };
        (healthy, note)
    }

    /// The document for one run of `probes` (in check order).
    pub fn document(
        &mut self,
        checks: &[crate::health::build::BuiltCheck],
        probes: &[Probe],
    ) -> StatusDocument {
        let statuses = checks
            .iter()
            .zip(probes)
            .enumerate()
            .map(|(i, (check, probe))| {
                let (healthy, note) = self.observe(i, probe.passed);
                let detail = match note {
                    Some(note) => format!("{} ({note})", probe.detail),
                    None => probe.detail.clone(),
                };
                CheckStatus {
                    name: check.check.name().to_string(),
                    healthy,
                    critical: check.critical,
                    latency_ms: probe.latency.as_millis() as u64,
                    detail,
                }
            })
            .collect();
        StatusDocument::new(statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, healthy: bool, critical: bool) -> CheckStatus {
        CheckStatus {
            name: name.into(),
            healthy,
            critical,
            latency_ms: 1,
            detail: String::new(),
        }
    }

    #[test]
    fn status_follows_criticality() {
        let doc = StatusDocument::new(vec![check("a", true, true), check("b", true, false)]);
        assert_eq!(doc.status, Status::Healthy);
        let doc = StatusDocument::new(vec![check("a", true, true), check("b", false, false)]);
        assert_eq!(doc.status, Status::Degraded);
        let doc = StatusDocument::new(vec![check("a", false, true), check("b", true, false)]);
        assert_eq!(doc.status, Status::Unhealthy);
        assert_eq!(doc.status.exit_code(), 1);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["status"], "unhealthy");
        let keys: Vec<&str> = json["checks"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["name", "healthy", "critical", "latency_ms", "detail"]
        );
    }

    #[test]
    fn thresholds_smooth_flapping() {
        let mut t = Tracker::new(1, 2, 3);
        // First probe counts as is.
        assert_eq!(t.observe(0, true), (true, None));
        // Two failures are tolerated, the third flips.
        assert!(t.observe(0, false).0);
        let (healthy, note) = t.observe(0, false);
        assert!(healthy);
        assert_eq!(note.as_deref(), Some("failure 2 of 3 before unhealthy"));
        assert_eq!(t.observe(0, false), (false, None));
        // One pass is not enough to come back; two are.
        let (healthy, note) = t.observe(0, true);
        assert!(!healthy);
        assert_eq!(note.as_deref(), Some("pass 1 of 2 before healthy again"));
        assert_eq!(t.observe(0, true), (true, None));
        // A failure in between resets the count of passes.
        let mut t = Tracker::new(1, 2, 1);
        assert!(!t.observe(0, false).0);
        assert!(!t.observe(0, true).0);
        assert!(!t.observe(0, false).0);
        assert!(!t.observe(0, true).0);
        assert!(t.observe(0, true).0);
    }

    #[test]
    fn first_failure_counts_at_once() {
        let mut t = Tracker::new(1, 2, 3);
        assert_eq!(t.observe(0, false), (false, None));
    }
}
