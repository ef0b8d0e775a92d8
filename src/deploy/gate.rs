//! Health gates: an instance passes when `GET http://{instance}{path}` answers as expected
//! `healthy_threshold` times in a row, and fails after `unhealthy_threshold` failures in a
//! row or when `wait` runs out.
//!
//! An instance that has just been restarted refuses connections for a while. Until it first
//! answers, refused connections count only against `wait` (it is starting); once it has
//! answered, every failed probe (an error status, a timeout, a refused connection) counts
//! toward `unhealthy_threshold`. That keeps slow starters from failing a deployment while
//! still failing fast on an instance that comes up broken.

use std::fmt;
use std::time::{Duration, Instant};

use crate::http::{self, Url, judge_response};
use crate::units::format_duration;

/// Largest body a gate probe reads.
const MAX_GATE_BODY: usize = 64 * 1024;

/// A deploy target, `host:port` as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub raw: String,
    pub host: String,
    pub port: u16,
}

impl Instance {
    pub fn parse(raw: &str) -> Result<Instance, String> {
        let trimmed = raw.trim();
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(format!(
                "`{raw}`: write an instance as host:port (the health path is deploy.health.path)"
            ));
        }
        let (host, port) = http::split_host_port(trimmed, 80)?;
        Ok(Instance {
            raw: trimmed.to_string(),
            host,
            port,
        })
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[derive(Debug, Clone)]
pub struct Gate {
    pub path: String,
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub wait: Duration,
    pub expect: Option<u16>,
}

/// One probe's result: whether it passed, whether the instance answered at all, what it said.
struct ProbeResult {
    passed: bool,
    answered: bool,
    detail: String,
}

impl Gate {
    fn url(&self, instance: &Instance) -> Url {
        Url::for_instance(&instance.host, instance.port, &self.path)
    }

    async fn probe(&self, instance: &Instance) -> ProbeResult {
        let url = self.url(instance);
        match tokio::time::timeout(self.timeout, http::get(&url, MAX_GATE_BODY)).await {
            Ok(Ok(response)) => match judge_response(&response, self.expect, None) {
                Ok(detail) => ProbeResult {
                    passed: true,
                    answered: true,
                    detail,
                },
                Err(detail) => ProbeResult {
                    passed: false,
                    answered: true,
                    detail,
                },
            },
            Ok(Err(detail)) => ProbeResult {
                passed: false,
                answered: false,
                detail,
            },
            // A connection accepted but not answered in time: the process is up and slow.
            Err(_) => ProbeResult {
                passed: false,
                answered: true,
                detail: format!("no answer within {}", format_duration(self.timeout)),
            },
        }
    }

    /// Waits until `instance` passes the gate. `Ok` says how it passed; `Err` what failed.
    pub async fn wait_healthy(&self, instance: &Instance) -> Result<String, String> {
        let deadline = Instant::now() + self.wait;
        let mut passes = 0;
        let mut failures = 0;
        let mut answered_once = false;
        loop {
            let probe = self.probe(instance).await;
            answered_once |= probe.answered;
            if probe.passed {
                passes += 1;
                failures = 0;
                if passes >= self.healthy_threshold {
                    return Ok(format!("{} ({} passes in a row)", probe.detail, passes));
                }
            } else {
                passes = 0;
                if answered_once {
                    failures += 1;
                }
                if failures >= self.unhealthy_threshold {
                    return Err(format!(
                        "{} failed health checks in a row on {}{}: last {}",
                        failures, instance, self.path, probe.detail
                    ));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "not healthy within {} on {}{}: last {}",
                    format_duration(self.wait),
                    instance,
                    self.path,
                    probe.detail
                ));
            }
            tokio::time::sleep(self.interval.min(deadline - now)).await;
        }
    }

    /// Watches live instances for `duration`: fails as soon as one has `unhealthy_threshold`
    /// failed probes in a row.
    pub async fn watch(
        &self,
        instances: &[Instance],
        duration: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + duration;
        let mut failures = vec![0u32; instances.len()];
        let mut probes = 0u32;
        loop {
            let results =
                futures_util::future::join_all(instances.iter().map(|i| self.probe(i))).await;
            probes += 1;
            for ((instance, result), count) in instances.iter().zip(results).zip(&mut failures) {
                if result.passed {
                    *count = 0;
                } else {
                    *count += 1;
                    tracing::warn!(%instance, failures = *count, "health probe failed: {}", result.detail);
                    if *count >= self.unhealthy_threshold {
                        return Err(format!(
                            "{} failed health checks in a row on {}{} while watching: last {}",
                            count, instance, self.path, result.detail
                        ));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(format!(
                    "{} instance(s) stayed healthy for {} ({probes} rounds)",
                    instances.len(),
                    format_duration(duration)
                ));
            }
            tokio::time::sleep(self.interval.min(deadline - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_instances() {
        let i = Instance::parse("app-1.internal:8080").unwrap();
        assert_eq!((i.host.as_str(), i.port), ("app-1.internal", 8080));
        assert_eq!(Instance::parse("[::1]:9000").unwrap().host, "::1");
        assert_eq!(Instance::parse("app").unwrap().port, 80);
        assert!(Instance::parse("http://app:80").is_err());
        assert!(Instance::parse("app:http").is_err());
    }

    #[tokio::test]
    async fn refused_connections_fail_only_at_the_wait() {
        // Nothing listens on this port: the gate must give up at `wait`, not at the threshold.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let gate = Gate {
            path: "/health".into(),
            timeout: Duration::from_millis(200),
            interval: Duration::from_millis(20),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
            wait: Duration::from_millis(150),
            expect: None,
        };
        let instance = Instance::parse(&format!("127.0.0.1:{port}")).unwrap();
        let started = Instant::now();
        let err = gate.wait_healthy(&instance).await.unwrap_err();
        assert!(err.starts_with("not healthy within 150ms"), "{err}");
        assert!(err.contains("connection refused"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(140));
    }
}
