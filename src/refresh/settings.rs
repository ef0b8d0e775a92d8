//! What a refresh needs, resolved from `restage.yaml`: endpoints, rules location, strictness,
//! derived columns, cache, sample; and the checks that refuse configurations that could damage
//! production or the live staging database.

use std::path::PathBuf;

use crate::config::{Config, Strictness, UnruledTsvector};
use crate::db::PgEndpoint;
use crate::error::Result;
use crate::secret::Secret;
use crate::transform::Catalogue;

use super::reindex::DerivedColumn;

/// Tables at least this big (heap + TOAST) are split into ctid ranges copied in parallel.
/// `RESTAGE_SPLIT_BYTES` overrides it (tests use a tiny value to exercise splitting).
const DEFAULT_SPLIT_BYTES: u64 = 256 << 20;

/// What a refresh needs, resolved from the config.
#[derive(Debug)]
pub struct Settings {
    pub source: PgEndpoint,
    /// The maintenance connection on the staging server.
    pub admin: PgEndpoint,
    pub database: String,
    pub keep: u32,
    pub grants: Vec<String>,
    pub jobs: usize,
    pub secret: Option<Secret>,
    pub rules_path: PathBuf,
    pub rules_optional: bool,
    pub strict: Strictness,
    pub locale: String,
    pub derived: Vec<DerivedColumn>,
    pub refresh_materialized_views: bool,
    pub reindex: Vec<String>,
    pub unruled_tsvector: UnruledTsvector,
    pub split_bytes: u64,
    pub cache: Option<CacheSettings>,
    pub sample: crate::plan::SampleSettings,
}

/// The `cache:` section, resolved.
#[derive(Debug)]
pub struct CacheSettings {
    pub url: Secret,
    pub flush: Vec<String>,
    pub warm: Vec<crate::config::WarmConfig>,
    pub required: bool,
}

impl CacheSettings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<Option<CacheSettings>> {
        let Some(cache) = &config.file.cache else {
            return Ok(None);
        };
        let url = config
            .cache_url(command)?
            .unwrap_or_else(|| Secret::new("redis://127.0.0.1:6379/0"));
        Ok(Some(CacheSettings {
            url,
            flush: cache.flush.clone(),
            warm: cache.warm.clone(),
            required: cache.required,
        }))
    }
}

impl Settings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<Settings> {
        let source = config.source(command)?;
        let (admin, target) = config.target(command)?;
        let secret = match &config.file.secret {
            Some(_) => Some(config.secret(command)?),
            None => None,
        };
        let mut derived = Vec::new();
        let mut refresh_materialized_views = true;
        let mut reindex = Vec::new();
        let mut unruled_tsvector = UnruledTsvector::Refuse;
        if let Some(search) = &config.file.search {
            unruled_tsvector = search.unruled_tsvector.unwrap_or(UnruledTsvector::Refuse);
            refresh_materialized_views = search.refresh_materialized_views;
            reindex = search.reindex.clone();
            for (i, d) in search.tsvector.iter().enumerate() {
                let idx = i.to_string();
                derived.push(DerivedColumn::from_config(d).map_err(|e| {
                    config.value_error(&["search", "tsvector", idx.as_str(), "table"], e)
                })?);
            }
        }
        Catalogue::check_locale(config.locale())
            .map_err(|message| config.value_error(&["locale"], message))?;
        let split_bytes = std::env::var("RESTAGE_SPLIT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPLIT_BYTES);
        let settings = Settings {
            source,
            admin,
            database: target.database.clone(),
            keep: target.keep,
            grants: target.grants.clone(),
            jobs: config.jobs(),
            secret,
            rules_path: config.rules_path(),
            rules_optional: config.file.rules.is_none(),
            strict: config.strictness(),
            locale: config.locale().to_string(),
            derived,
            refresh_materialized_views,
            reindex,
            unruled_tsvector,
            split_bytes,
            cache: CacheSettings::from_config(config, command)?,
            sample: crate::plan::SampleSettings::from_config(config)?,
        };
        settings.check(config)?;
        Ok(settings)
    }

    /// Refuses configurations that could damage production or the live staging database.
    fn check(&self, config: &Config) -> Result<()> {
        let same_server = self.source.same_server(&self.admin);
        let source_db = self.source.dbname();
        if same_server && source_db == self.database {
            return Err(config
                .value_error(
                    &["target", "database"],
                    format!(
                        "is the source database ({source_db} on {}); restage would replace production",
                        self.source.display
                    ),
                )
                .into());
        }
        if same_server && source_db == self.admin.dbname() {
            return Err(config
                .value_error(
                    &["target", "url"],
                    format!(
                        "points at the source database ({source_db}); use a maintenance database of the staging server, such as postgres"
                    ),
                )
                .into());
        }
        if self.admin.dbname() == self.database
            || self.admin.dbname().starts_with(&format!(
                "{}{}",
                self.database,
                super::generations::INFIX
            ))
        {
            return Err(config
                .value_error(
                    &["target", "url"],
                    format!(
                        "connects to {}, which restage renames; use a maintenance database such as postgres",
                        self.admin.dbname()
                    ),
                )
                .into());
        }
        Ok(())
    }

    pub fn building_endpoint(&self, name: &str) -> PgEndpoint {
        self.admin.with_database(name)
    }
}
