//! The accessors: each resolves one section when a command asks for it, so `restage health`
//! never runs the `cmd:` of the refresh secret, and an unset variable is reported only by a
//! command that uses it. A missing section names the command that needs it.

use std::path::PathBuf;

use super::{Config, ConfigError, RawValue, Strictness, TargetConfig};
use crate::db::PgEndpoint;
use crate::secret::Secret;

impl Config {
    pub fn source(&self, command: &'static str) -> Result<PgEndpoint, ConfigError> {
        let source = self
            .file
            .source
            .as_ref()
            .ok_or_else(|| self.missing("source", command))?;
        let url = source.url.as_ref().ok_or_else(|| ConfigError::Value {
            location: self.locate(&["source"]),
            key: "source.url".into(),
            message: "missing (only `mode: synthetic` with a `schema_archive` needs no source)"
                .into(),
        })?;
        self.resolve_pg(url, &["source", "url"])
    }

    pub fn target(
        &self,
        command: &'static str,
    ) -> Result<(PgEndpoint, &TargetConfig), ConfigError> {
        let target = self
            .file
            .target
            .as_ref()
            .ok_or_else(|| self.missing("target", command))?;
        Ok((self.resolve_pg(&target.url, &["target", "url"])?, target))
    }

    fn resolve_pg(&self, raw: &RawValue, path: &[&str]) -> Result<PgEndpoint, ConfigError> {
        let at = self.locate(path);
        let url = raw.resolve(&path.join("."), &at)?;
        PgEndpoint::parse(&url).map_err(|message| ConfigError::Value {
            location: at,
            key: path.join("."),
            message,
        })
    }

    /// The pseudonym key. Required for any command that transforms data.
    pub fn secret(&self, command: &'static str) -> Result<Secret, ConfigError> {
        let raw = self
            .file
            .secret
            .as_ref()
            .ok_or_else(|| self.missing("secret", command))?;
        let secret = raw.resolve("secret", &self.locate(&["secret"]))?;
        if secret.expose().len() < 16 {
            return Err(self.value_error(
                &["secret"],
                "must be at least 16 characters: it is the only thing between a pseudonym and its original",
            ));
        }
        Ok(secret)
    }

    pub fn jobs(&self) -> usize {
        self.file.jobs.unwrap_or(4)
    }

    /// The longest wait for a lock (source tables, the swap).
    pub fn lock_timeout(&self) -> std::time::Duration {
        self.file
            .lock_timeout
            .map(|d| d.0)
            .unwrap_or(super::file::DEFAULT_LOCK_TIMEOUT)
    }

    pub fn strictness(&self) -> Strictness {
        self.file.strict.unwrap_or_default()
    }

    pub fn locale(&self) -> &str {
        self.file.locale.as_deref().unwrap_or("en")
    }

    /// The rules path, relative to the config file; `rules/` beside it by default.
    pub fn rules_path(&self) -> PathBuf {
        let rel = self
            .file
            .rules
            .clone()
            .unwrap_or_else(|| PathBuf::from("rules"));
        if rel.is_absolute() {
            rel
        } else {
            self.dir().join(rel)
        }
    }

    /// The Redis URL of the cache section, resolved.
    pub fn cache_url(&self, command: &'static str) -> Result<Option<Secret>, ConfigError> {
        let cache = self
            .file
            .cache
            .as_ref()
            .ok_or_else(|| self.missing("cache", command))?;
        match &cache.url {
            Some(raw) => Ok(Some(
                raw.resolve("cache.url", &self.locate(&["cache", "url"]))?,
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("restage.yaml"))
    }

    #[test]
    fn unset_variable_names_key_and_position() {
        let c = load("source:\n  url: ${RESTAGE_TEST_NOPE}\n").unwrap();
        let err = c.source("refresh").unwrap_err().to_string();
        assert_eq!(
            err,
            "restage.yaml:2:3: source.url: environment variable RESTAGE_TEST_NOPE is not set"
        );
    }

    #[test]
    fn missing_section_is_named() {
        let c = load("jobs: 2\n").unwrap();
        assert_eq!(
            c.source("refresh").unwrap_err().to_string(),
            "restage.yaml: section `source` is missing; `refresh` needs it"
        );
    }
}
