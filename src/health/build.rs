//! From the `health:` section (its schema is [`crate::config::health`]) to runnable checks:
//! [`validate`] is pure and says every problem at once (which keys do not belong to a kind,
//! bad ranges, duplicate names); [`build`] then resolves URLs into [`Check`]s.

use std::time::Duration as StdDuration;

use crate::config::health::{CheckKind, HealthConfig};
use crate::config::{Config, ConfigError};
use crate::db::PgEndpoint;
use crate::health::checks::{Check, DiskCheck, HttpCheck, PostgresCheck, RedisCheck};
use crate::http::Url;

/// Per-check timeout when neither the check nor the section gives one.
pub const DEFAULT_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// Time between runs with `--watch` / `--serve` when `interval` is not given.
pub const DEFAULT_INTERVAL: StdDuration = StdDuration::from_secs(10);

/// A check ready to run, with what the runner needs around it.
pub struct BuiltCheck {
    pub check: Box<dyn Check>,
    pub critical: bool,
    pub timeout: StdDuration,
    pub max_latency: Option<StdDuration>,
}

/// The built section.
pub struct Health {
    pub checks: Vec<BuiltCheck>,
    pub interval: StdDuration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// Pure checks (no environment, no network): every problem, each with its position.
pub fn validate(section: &HealthConfig, config: &Config) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    if section.checks.is_empty() {
        problems.push(config.value_error(
            &["health", "checks"],
            "no checks configured (give at least one of kind postgres, redis, http or disk)",
        ));
    }
    for (key, value) in [
        ("healthy_threshold", section.healthy_threshold),
        ("unhealthy_threshold", section.unhealthy_threshold),
    ] {
        if value == 0 {
            problems.push(config.value_error(&["health", key], "must be at least 1"));
        }
    }
    if let Some(interval) = section.interval
        && interval.0.is_zero()
    {
        problems.push(config.value_error(&["health", "interval"], "must be more than 0"));
    }
    if let Some(timeout) = section.timeout
        && timeout.0.is_zero()
    {
        problems.push(config.value_error(&["health", "timeout"], "must be more than 0"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, check) in section.checks.iter().enumerate() {
        let idx = i.to_string();
        let at = |key: &str| ["health", "checks", idx.as_str(), key].map(str::to_string);
        let mut err = |key: &str, message: String| {
            let path = at(key);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            problems.push(config.value_error(&path, message));
        };
        if check.name.trim().is_empty() {
            err("name", "must not be empty".to_string());
        } else if !seen.insert(check.name.as_str()) {
            err(
                "name",
                format!(
                    "`{}` is used by another check; names must be unique",
                    check.name
                ),
            );
        }
        let kind = check.kind;
        // Which optional keys belong to which kinds.
        let given: [(&str, bool, &[CheckKind]); 7] = [
            (
                "url",
                check.url.is_some(),
                &[CheckKind::Postgres, CheckKind::Redis, CheckKind::Http],
            ),
            ("expect", check.expect.is_some(), &[CheckKind::Http]),
            ("body", check.body.is_some(), &[CheckKind::Http]),
            (
                "max_replication_lag",
                check.max_replication_lag.is_some(),
                &[CheckKind::Postgres],
            ),
            (
                "max_memory_percent",
                check.max_memory_percent.is_some(),
                &[CheckKind::Redis],
            ),
            ("path", check.path.is_some(), &[CheckKind::Disk]),
            (
                "min_free_percent",
                check.min_free_percent.is_some(),
                &[CheckKind::Disk],
            ),
        ];
        for (key, present, kinds) in given {
            if present && !kinds.contains(&kind) {
                err(key, format!("does not apply to a {} check", kind.name()));
            }
        }
        match kind {
            CheckKind::Postgres | CheckKind::Redis | CheckKind::Http if check.url.is_none() => {
                err("kind", format!("a {} check needs `url`", kind.name()));
            }
            CheckKind::Disk => {
                if check.path.is_none() {
                    err("kind", "a disk check needs `path`".to_string());
                }
                if check.min_free_percent.is_none() {
                    err("kind", "a disk check needs `min_free_percent`".to_string());
                }
            }
            _ => {}
        }
        if let Some(p) = check.min_free_percent
            && !(0.0..=100.0).contains(&p)
        {
            err("min_free_percent", format!("{p} is not between 0 and 100"));
        }
        if let Some(p) = check.max_memory_percent
            && !(0.0..=100.0).contains(&p)
        {
            err(
                "max_memory_percent",
                format!("{p} is not between 0 and 100"),
            );
        }
        if let Some(code) = check.expect
            && !(100..=599).contains(&code)
        {
            err("expect", format!("{code} is not an HTTP status code"));
        }
        if let Some(body) = &check.body
            && let Err(e) = regex::Regex::new(body)
        {
            err("body", format!("not a valid regular expression: {e}"));
        }
        if let Some(t) = check.timeout
            && t.0.is_zero()
        {
            err("timeout", "must be more than 0".to_string());
        }
    }
    problems
}

/// Resolves URLs and builds the checks. Call after [`validate`] passed.
pub fn build(section: &HealthConfig, config: &Config) -> Result<Health, ConfigError> {
    let default_timeout = section.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let mut checks = Vec::with_capacity(section.checks.len());
    for (i, c) in section.checks.iter().enumerate() {
        let idx = i.to_string();
        let url_path = ["health", "checks", idx.as_str(), "url"];
        let resolve_url = || -> Result<crate::secret::Secret, ConfigError> {
            let raw = c
                .url
                .as_ref()
                .ok_or_else(|| config.value_error(&url_path, "missing"))?;
            raw.resolve(&url_path.join("."), &config.locate(&url_path))
        };
        let check: Box<dyn Check> = match c.kind {
            CheckKind::Postgres => {
                let url = resolve_url()?;
                let endpoint = PgEndpoint::parse(&url)
                    .map_err(|message| config.value_error(&url_path, message))?;
                Box::new(PostgresCheck::new(
                    &c.name,
                    endpoint,
                    c.max_replication_lag.map(|d| d.0),
                ))
            }
            CheckKind::Redis => {
                let url = resolve_url()?;
                Box::new(
                    RedisCheck::new(&c.name, &url, c.max_memory_percent)
                        .map_err(|message| config.value_error(&url_path, message))?,
                )
            }
            CheckKind::Http => {
                let url = resolve_url()?;
                let url = Url::parse(url.expose())
                    .map_err(|message| config.value_error(&url_path, message))?;
                let body = match &c.body {
                    Some(b) => Some(regex::Regex::new(b).map_err(|e| {
                        config.value_error(
                            &["health", "checks", idx.as_str(), "body"],
                            format!("not a valid regular expression: {e}"),
                        )
                    })?),
                    None => None,
                };
                Box::new(HttpCheck::new(&c.name, url, c.expect, body))
            }
            CheckKind::Disk => {
                let path = c.path.clone().unwrap_or_default();
                let path = if path.is_relative() {
                    config.dir().join(path)
                } else {
                    path
                };
                Box::new(DiskCheck::new(
                    &c.name,
                    path,
                    c.min_free_percent.unwrap_or(0.0),
                ))
            }
        };
        checks.push(BuiltCheck {
            check,
            critical: c.critical,
            timeout: c.timeout.map(|d| d.0).unwrap_or(default_timeout),
            max_latency: c.max_latency.map(|d| d.0),
        });
    }
    Ok(Health {
        checks,
        interval: section.interval.map(|d| d.0).unwrap_or(DEFAULT_INTERVAL),
        healthy_threshold: section.healthy_threshold,
        unhealthy_threshold: section.unhealthy_threshold,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let config = Config::from_text(yaml, Path::new("restage.yaml")).unwrap();
        config
            .file
            .health
            .as_ref()
            .map(|section| validate(section, &config))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let p = problems(
            "health:\n  checks:\n    - { name: db, kind: postgres }\n    - { name: db, kind: disk, path: /, min_free_percent: 150, expect: 200 }\n",
        );
        assert!(
            p.iter()
                .any(|e| e.starts_with("restage.yaml:3:") && e.contains("needs `url`")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|e| e.contains("names must be unique")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|e| e.contains("150 is not between 0 and 100")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|e| e.contains("expect") && e.contains("does not apply to a disk check")),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_check_key_suggests() {
        let err = Config::from_text(
            "health:\n  checks:\n    - { name: a, kind: http, url: 'http://x/', expekt: 200 }\n",
            Path::new("restage.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown key `expekt`, did you mean `expect`?"),
            "{err}"
        );
        assert!(err.starts_with("restage.yaml:3:"), "{err}");
    }

    #[test]
    fn valid_section_has_no_problems() {
        let p = problems(
            "health:\n  interval: 1s\n  checks:\n    - { name: api, kind: http, url: 'http://127.0.0.1:1/', expect: 200, body: ok, timeout: 2s }\n    - { name: disk, kind: disk, path: /, min_free_percent: 15 }\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }
}
