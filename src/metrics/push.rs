//! Pushing to a Pushgateway: `PUT <base>/metrics/job/<job>/instance/<instance>` with the
//! whole state, so the group holds exactly the latest picture (a PUT replaces the group).
//!
//! The grouping key is `job` (default `restage`) and `instance` (default `target.database`):
//! one group per staging database, whatever machine or pod ran the command — a CronJob's
//! pod names change every night, and the group must not. A label value that is not a plain
//! URL word (a `/`, a space, a quote) goes in the path base64url-encoded
//! (`instance@base64/…`), as the Pushgateway documents.

use std::time::Duration;

use base64::Engine;

use crate::config::{Config, MetricsConfig, RawValue};
use crate::error::{Error, Result};
use crate::http::{self, Url};

/// The longest a push may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read (the Pushgateway answers with a short message).
const MAX_ANSWER: usize = 64 * 1024;

/// A Pushgateway and the group restage pushes to.
#[derive(Debug)]
pub struct Pushgateway {
    url: Url,
    timeout: Duration,
}

impl Pushgateway {
    pub fn from_config(
        config: &Config,
        metrics: &MetricsConfig,
        raw: &RawValue,
        database: &str,
    ) -> Result<Pushgateway> {
        let at = config.locate(&["metrics", "pushgateway"]);
        let base = raw.resolve("metrics.pushgateway", &at)?;
        let base = Url::parse_secret(base.expose()).map_err(|message| {
            Error::Config(config.value_error(&["metrics", "pushgateway"], message))
        })?;
        let job = metrics.job.as_deref().unwrap_or("restage");
        let instance = metrics.instance.as_deref().unwrap_or(database);
        Ok(Pushgateway {
            url: group_url(&base, job, instance),
            timeout: metrics.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
        })
    }

    /// The group's URL for messages, without its query (which may hold a token).
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        url.target = url.target.split('?').next().unwrap_or("").to_string();
        url.to_string()
    }

    /// PUTs `text` to the group, within the timeout.
    pub async fn push(&self, text: &str) -> Result<(), String> {
        let request = http::Request::with_body(
            "PUT",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            text.as_bytes(),
        );
        let response =
            match tokio::time::timeout(self.timeout, http::send(&self.url, &request, MAX_ANSWER))
                .await
            {
                Ok(r) => r?,
                Err(_) => {
                    return Err(format!(
                        "no answer within {}",
                        crate::units::format_duration(self.timeout)
                    ));
                }
            };
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            let answer = response.body_text();
            Err(format!(
                "HTTP {}: {}",
                response.status,
                answer.lines().next().unwrap_or("").trim()
            ))
        }
    }
}

/// `<base>/metrics/job/<job>/instance/<instance>`, each value as a path segment; the base's
/// query (an authenticating proxy's token) is kept.
fn group_url(base: &Url, job: &str, instance: &str) -> Url {
    let mut url = base.clone();
    let (path, query) = match url.target.split_once('?') {
        Some((path, query)) => (path.to_string(), format!("?{query}")),
        None => (url.target.clone(), String::new()),
    };
    url.target = format!(
        "{}/metrics/{}/{}{query}",
        path.trim_end_matches('/'),
        segment("job", job),
        segment("instance", instance)
    );
    url
}

/// `label/value`, or `label@base64/<base64url>` for a value that is not a plain URL word
/// (`label@base64/=` for an empty one, as the Pushgateway wants it).
fn segment(label: &str, value: &str) -> String {
    if value.is_empty() {
        return format!("{label}@base64/=");
    }
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
    if plain {
        format!("{label}/{value}")
    } else {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(value.as_bytes());
        format!("{label}@base64/{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_job_and_instance_in_the_path() {
        let base = Url::parse("http://pushgateway:9091").unwrap();
        assert_eq!(
            group_url(&base, "restage", "app").to_string(),
            "http://pushgateway:9091/metrics/job/restage/instance/app"
        );
        let base = Url::parse("https://gw.example/prefix/").unwrap();
        assert_eq!(
            group_url(&base, "restage", "a/b c").to_string(),
            "https://gw.example:443/prefix/metrics/job/restage/instance@base64/YS9iIGM="
        );
        assert_eq!(segment("instance", ""), "instance@base64/=");
        let base = Url::parse("http://gw:9091/?token=abc").unwrap();
        let gateway = Pushgateway {
            url: group_url(&base, "restage", "app"),
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(
            gateway.url.to_string(),
            "http://gw:9091/metrics/job/restage/instance/app?token=abc"
        );
        assert_eq!(
            gateway.shown(),
            "http://gw:9091/metrics/job/restage/instance/app"
        );
    }
}
