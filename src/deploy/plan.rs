//! The `deploy:` section (its schema is [`crate::config::deploy`]) validated into a [`Plan`].
//!
//! Validation is pure (no network, no commands, no environment) and reports every problem at
//! once, each at its position: templates are parsed here, so an unknown placeholder fails at
//! load, before anything runs. Only `deploy.history` is resolved later (it may read
//! `${VAR}`), by [`History::from_config`](crate::deploy::history::History::from_config).

use std::time::Duration as StdDuration;

use crate::config::deploy::{CanaryConfig, DeployConfig};
use crate::config::{Config, ConfigError};
use crate::deploy::command::{CommandTemplate, Placeholder, TextTemplate, Vars};
use crate::deploy::gate::{Gate, Instance};
use crate::deploy::metrics::{Queries, Selector};
use crate::http::Url;
use crate::units::Duration;

pub const DEFAULT_COMMAND_TIMEOUT: StdDuration = StdDuration::from_secs(300);

/// The validated `deploy:` section: what the strategies run.
pub struct Plan {
    pub instances: Vec<Instance>,
    pub update: CommandTemplate,
    pub command_timeout: StdDuration,
    pub auto_rollback: bool,
    pub gate: Gate,
    pub rolling: Rolling,
    /// Whether `rolling:` was written (a rollback uses all instances at once otherwise).
    pub rolling_configured: bool,
    pub canary: Option<Canary>,
    pub blue_green: Option<BlueGreen>,
}

#[derive(Debug, Clone)]
pub struct Rolling {
    pub batch_size: usize,
    pub pause: StdDuration,
    pub max_failure: f64,
}

pub struct Canary {
    pub steps: Vec<u32>,
    pub traffic: CommandTemplate,
    pub instances: Vec<Instance>,
    pub analysis: Analysis,
}

pub struct Analysis {
    pub metrics: TextTemplate,
    pub queries: Queries,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub window: StdDuration,
    pub interval: StdDuration,
    pub min_requests: u64,
}

pub struct BlueGreen {
    pub blue: Vec<Instance>,
    pub green: Vec<Instance>,
    pub switch: CommandTemplate,
    pub watch: StdDuration,
}

const UPDATE_VARS: &[Placeholder] = &[
    Placeholder::Instance,
    Placeholder::InstanceHost,
    Placeholder::InstancePort,
    Placeholder::Version,
    Placeholder::PreviousVersion,
    Placeholder::Color,
];
const TRAFFIC_VARS: &[Placeholder] = &[
    Placeholder::Percent,
    Placeholder::Version,
    Placeholder::PreviousVersion,
];
const SWITCH_VARS: &[Placeholder] = &[
    Placeholder::Color,
    Placeholder::Version,
    Placeholder::PreviousVersion,
];
const METRICS_VARS: &[Placeholder] = &[
    Placeholder::Instance,
    Placeholder::InstanceHost,
    Placeholder::InstancePort,
];

/// Collects problems, each at the position of its key.
struct Problems<'a> {
    config: &'a Config,
    list: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, path: &[&str], message: impl Into<String>) {
        self.list.push(self.config.value_error(path, message));
    }

    fn template(
        &mut self,
        path: &[&str],
        raw: &str,
        shell: bool,
        vars: &[Placeholder],
    ) -> Option<CommandTemplate> {
        match CommandTemplate::parse(&path.join("."), raw, shell, vars) {
            Ok(t) => Some(t),
            Err(e) => {
                self.add(path, e);
                None
            }
        }
    }

    fn instances(&mut self, path: &[&str], raw: &[String]) -> Vec<Instance> {
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            match Instance::parse(r) {
                Ok(inst) if out.contains(&inst) => {
                    let idx = i.to_string();
                    let mut p = path.to_vec();
                    p.push(&idx);
                    self.add(&p, format!("`{r}` is listed twice"));
                }
                Ok(inst) => out.push(inst),
                Err(e) => {
                    let idx = i.to_string();
                    let mut p = path.to_vec();
                    p.push(&idx);
                    self.add(&p, e);
                }
            }
        }
        out
    }

    fn positive(&mut self, path: &[&str], d: Option<Duration>) {
        if let Some(d) = d
            && d.0.is_zero()
        {
            self.add(path, "must be more than 0");
        }
    }
}

fn dur(d: Option<Duration>, default: StdDuration) -> StdDuration {
    d.map(|d| d.0).unwrap_or(default)
}

/// Checks everything that can be checked without the environment; returns the plan or every
/// problem found.
pub fn validate(section: &DeployConfig, config: &Config) -> Result<Plan, Vec<ConfigError>> {
    let mut p = Problems {
        config,
        list: Vec::new(),
    };
    let instances = p.instances(&["deploy", "instances"], &section.instances);
    let update = p.template(
        &["deploy", "update"],
        &section.update,
        section.shell,
        UPDATE_VARS,
    );
    p.positive(&["deploy", "command_timeout"], section.command_timeout);

    let h = &section.health;
    for (key, v) in [
        ("healthy_threshold", h.healthy_threshold),
        ("unhealthy_threshold", h.unhealthy_threshold),
    ] {
        if v == Some(0) {
            p.add(&["deploy", "health", key], "must be at least 1");
        }
    }
    for (key, v) in [
        ("timeout", h.timeout),
        ("interval", h.interval),
        ("wait", h.wait),
    ] {
        p.positive(&["deploy", "health", key], v);
    }
    let path = h.path.clone().unwrap_or_else(|| "/health".to_string());
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace()) {
        p.add(
            &["deploy", "health", "path"],
            format!("`{path}` must start with / and have no spaces"),
        );
    }
    if let Some(code) = h.expect
        && !(100..=599).contains(&code)
    {
        p.add(
            &["deploy", "health", "expect"],
            format!("{code} is not an HTTP status code"),
        );
    }
    let gate = Gate {
        path,
        timeout: dur(h.timeout, StdDuration::from_secs(2)),
        interval: dur(h.interval, StdDuration::from_secs(1)),
        healthy_threshold: h.healthy_threshold.unwrap_or(2).max(1),
        unhealthy_threshold: h.unhealthy_threshold.unwrap_or(3).max(1),
        wait: dur(h.wait, StdDuration::from_secs(120)),
        expect: h.expect,
    };

    let r = section.rolling.as_ref();
    let rolling = Rolling {
        batch_size: r.and_then(|r| r.batch_size).unwrap_or(1),
        pause: dur(r.and_then(|r| r.pause), StdDuration::ZERO),
        max_failure: r.and_then(|r| r.max_failure).unwrap_or(0.0),
    };
    if rolling.batch_size == 0 {
        p.add(&["deploy", "rolling", "batch_size"], "must be at least 1");
    }
    if !(0.0..=1.0).contains(&rolling.max_failure) {
        p.add(
            &["deploy", "rolling", "max_failure"],
            format!("{} is not a ratio between 0 and 1", rolling.max_failure),
        );
    }

    let canary = section
        .canary
        .as_ref()
        .and_then(|c| validate_canary(&mut p, c, section.shell, &instances));
    let blue_green = section.blue_green.as_ref().and_then(|b| {
        let blue = p.instances(&["deploy", "blue_green", "blue"], &b.blue);
        let green = p.instances(&["deploy", "blue_green", "green"], &b.green);
        if blue.is_empty() {
            p.add(
                &["deploy", "blue_green", "blue"],
                "needs at least one instance",
            );
        }
        if green.is_empty() {
            p.add(
                &["deploy", "blue_green", "green"],
                "needs at least one instance",
            );
        }
        if let Some(shared) = blue.iter().find(|i| green.contains(i)) {
            p.add(
                &["deploy", "blue_green", "green"],
                format!("`{shared}` is in both colours"),
            );
        }
        p.positive(&["deploy", "blue_green", "watch"], b.watch);
        let switch = p.template(
            &["deploy", "blue_green", "switch"],
            &b.switch,
            section.shell,
            SWITCH_VARS,
        )?;
        Some(BlueGreen {
            blue,
            green,
            switch,
            watch: dur(b.watch, StdDuration::from_secs(60)),
        })
    });

    match (update, p.list.is_empty()) {
        (Some(update), true) => Ok(Plan {
            instances,
            update,
            command_timeout: dur(section.command_timeout, DEFAULT_COMMAND_TIMEOUT),
            auto_rollback: section.auto_rollback,
            gate,
            rolling,
            rolling_configured: section.rolling.is_some(),
            canary,
            blue_green,
        }),
        _ => Err(p.list),
    }
}

fn validate_canary(
    p: &mut Problems<'_>,
    c: &CanaryConfig,
    shell: bool,
    instances: &[Instance],
) -> Option<Canary> {
    let at = |k: &'static str| ["deploy", "canary", k];
    if c.steps.is_empty() {
        p.add(&at("steps"), "needs at least one traffic percentage");
    }
    for w in c.steps.windows(2) {
        if w[1] <= w[0] {
            p.add(
                &at("steps"),
                format!("must increase ({} then {})", w[0], w[1]),
            );
        }
    }
    if let Some(bad) = c.steps.iter().find(|s| **s == 0 || **s > 100) {
        p.add(
            &at("steps"),
            format!("{bad} is not a percentage between 1 and 100"),
        );
    }
    let traffic = p.template(&at("traffic"), &c.traffic, shell, TRAFFIC_VARS);
    let canary_instances = match &c.instances {
        Some(list) => {
            let parsed = p.instances(&at("instances"), list);
            if parsed.is_empty() {
                p.add(&at("instances"), "needs at least one instance");
            }
            parsed
        }
        None => match instances.first() {
            Some(first) => vec![first.clone()],
            None => {
                p.add(
                    &at("steps"),
                    "the canary needs canary.instances or deploy.instances",
                );
                Vec::new()
            }
        },
    };
    let a = &c.analysis;
    let an = |k: &'static str| ["deploy", "canary", "analysis", k];
    let metrics = match TextTemplate::parse(&a.metrics, METRICS_VARS) {
        Ok(t) => {
            // Check the URL shape now, with the first canary's values where it has placeholders.
            let sample = canary_instances.first().map(vars_for).unwrap_or_default();
            if let Ok(url) = t.render(&sample)
                && let Err(e) = Url::parse(&url)
            {
                p.add(&an("metrics"), e);
            }
            Some(t)
        }
        Err(e) => {
            p.add(&an("metrics"), e);
            None
        }
    };
    if a.max_error_rate.is_none() && a.max_p99_ms.is_none() {
        p.add(
            &["deploy", "canary", "analysis"],
            "give max_error_rate, max_p99_ms or both",
        );
    }
    if let Some(r) = a.max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        p.add(
            &an("max_error_rate"),
            format!("{r} is not a ratio between 0 and 1 (0.05 is 5%)"),
        );
    }
    if let Some(ms) = a.max_p99_ms
        && ms <= 0.0
    {
        p.add(&an("max_p99_ms"), "must be more than 0");
    }
    p.positive(&an("window"), a.window);
    p.positive(&an("interval"), a.interval);
    let mut selector =
        |key: &'static str, value: &Option<String>, default: &str| -> Option<Selector> {
            match value.as_deref().unwrap_or(default).parse::<Selector>() {
                Ok(s) => Some(s),
                Err(e) => {
                    p.add(&an(key), e);
                    None
                }
            }
        };
    let requests = selector("requests", &a.requests, "http_requests_total");
    let errors = selector("errors", &a.errors, r#"http_requests_total{code=~"5.."}"#);
    let latency = selector("latency", &a.latency, "http_request_duration_seconds");
    let window = dur(a.window, StdDuration::from_secs(120));
    Some(Canary {
        steps: c.steps.clone(),
        traffic: traffic?,
        instances: canary_instances,
        analysis: Analysis {
            metrics: metrics?,
            queries: Queries {
                requests: requests?,
                errors: errors?,
                latency: latency?,
            },
            max_error_rate: a.max_error_rate,
            max_p99_ms: a.max_p99_ms,
            window,
            interval: dur(a.interval, StdDuration::from_secs(10)).min(window),
            min_requests: a.min_requests.unwrap_or(0),
        },
    })
}

/// The values of `{instance}`, `{instance_host}`, `{instance_port}`.
pub fn vars_for(instance: &Instance) -> Vars {
    Vars::new()
        .set(Placeholder::Instance, instance.raw.clone())
        .set(Placeholder::InstanceHost, instance.host.clone())
        .set(Placeholder::InstancePort, instance.port.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let config = Config::from_text(yaml, Path::new("restage.yaml")).unwrap();
        match validate(config.file.deploy.as_ref().unwrap(), &config) {
            Ok(_) => vec![],
            Err(list) => list.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn full_example_of_the_spec_validates() {
        let p = problems(
            r#"deploy:
  instances: ["app-1.internal:8080", "app-2.internal:8080", "app-3.internal:8080"]
  update: "ssh {instance_host} sudo systemctl restart app@{version}"
  health: { path: /health, timeout: 2s, healthy_threshold: 2, unhealthy_threshold: 3, wait: 2m }
  rolling: { batch_size: 2, pause: 10s, max_failure: 0.2 }
  canary:
    steps: [5, 25, 50, 100]
    traffic: "lbctl weight app {percent}"
    analysis: { metrics: http://127.0.0.1:9090/metrics, max_error_rate: 0.05, max_p99_ms: 1000, window: 2m }
  blue_green:
    blue: ["app-1.internal:8080"]
    green: ["app-4.internal:8080"]
    switch: "lbctl point app {color}"
  history: .restage/deployments.jsonl
"#,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn every_problem_at_its_position() {
        let p = problems(
            "deploy:\n  instances: [a:1, a:1, 'b:x']\n  update: restart {versoin}\n  rolling: { max_failure: 2 }\n  canary:\n    steps: [50, 10]\n    traffic: lb {color}\n    analysis: { metrics: 'ftp://x' }\n",
        );
        let has = |needle: &str| p.iter().any(|e| e.contains(needle));
        assert!(
            has(
                "restage.yaml:3:3: deploy.update: unknown placeholder `{versoin}`, did you mean `{version}`?"
            ),
            "{p:?}"
        );
        assert!(has("listed twice"), "{p:?}");
        assert!(has("`x` is not a port number"), "{p:?}");
        assert!(has("2 is not a ratio"), "{p:?}");
        assert!(has("must increase (50 then 10)"), "{p:?}");
        assert!(
            has("deploy.canary.traffic: `{color}` has no value here"),
            "{p:?}"
        );
        assert!(has("unsupported URL scheme `ftp`"), "{p:?}");
        assert!(has("give max_error_rate, max_p99_ms or both"), "{p:?}");
    }
}
