//! The status document as Prometheus metrics (`GET /metrics` of `--serve`), encoded by the
//! official `prometheus-client` crate in the text format 0.0.4. Series: the overall status
//! as a state set (one series per status, 1 for the current one), and per check whether it
//! counts healthy and its latency; check names are labels (a handful per config).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::health::status::{Status, StatusDocument};

type Labels = Vec<(&'static str, String)>;

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The document as Prometheus text.
pub fn render(doc: &StatusDocument) -> String {
    let gauge = Family::<Labels, Gauge<f64, AtomicU64>>::default;
    let status = gauge();
    for s in [Status::Healthy, Status::Degraded, Status::Unhealthy] {
        status
            .get_or_create(&vec![("status", s.as_str().to_string())])
            .set(f64::from(u8::from(doc.status == s)));
    }
    let healthy = gauge();
    let latency = gauge();
    for c in &doc.checks {
        healthy
            .get_or_create(&vec![
                ("check", c.name.clone()),
                ("critical", c.critical.to_string()),
            ])
            .set(f64::from(u8::from(c.healthy)));
        latency
            .get_or_create(&vec![("check", c.name.clone())])
            .set(c.latency_ms as f64 / 1000.0);
    }
    let mut registry = Registry::default();
    registry.register(
        "restage_health_status",
        "1 for the current status of the health checks (healthy, degraded, unhealthy)",
        status,
    );
    if !doc.checks.is_empty() {
        registry.register(
            "restage_health_check_healthy",
            "1 when the check counts healthy (after the thresholds)",
            healthy,
        );
        registry.register(
            "restage_health_check_latency_seconds",
            "How long the check's last probe took",
            latency,
        );
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&doc.timestamp) {
        let at = Gauge::<f64, AtomicU64>::default();
        at.set(t.timestamp_millis() as f64 / 1000.0);
        registry.register(
            "restage_health_timestamp_seconds",
            "When the checks last ran",
            at,
        );
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        tracing::warn!(error = %e, "encoding the health metrics failed");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::status::CheckStatus;

    #[test]
    fn the_document_as_series() {
        let doc = StatusDocument::new(vec![CheckStatus {
            name: "cache".into(),
            healthy: false,
            critical: false,
            latency_ms: 1500,
            detail: "connection refused".into(),
        }]);
        let text = render(&doc);
        assert!(
            text.contains("restage_health_status{status=\"degraded\"} 1.0\n"),
            "{text}"
        );
        assert!(
            text.contains("restage_health_status{status=\"healthy\"} 0.0\n"),
            "{text}"
        );
        assert!(
            text.contains("restage_health_check_healthy{check=\"cache\",critical=\"false\"} 0.0\n"),
            "{text}"
        );
        assert!(
            text.contains("restage_health_check_latency_seconds{check=\"cache\"} 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE restage_health_timestamp_seconds gauge"),
            "{text}"
        );
        assert!(
            !text.contains("connection refused"),
            "details are not metrics"
        );
    }
}
