//! The sections of `restage.yaml` the refresh commands use, each resolved on its own (values
//! read, names parsed), so a command resolves only the sections it needs: `reindex` never
//! reads `source:` nor runs the secret's `cmd:`. This is step 1 of the check sequence
//! ([`super::checks`]); it stops at the first section that does not resolve (the later steps
//! need them all), in the order of the table below. Also the checks that refuse a target that
//! is the source by its URL (step 11 asks the servers too) or a database restage renames.
//!
//! | command            | sections                                                  |
//! |--------------------|-----------------------------------------------------------|
//! | refresh, validate  | all: [`Settings`]                                         |
//! | verify             | source, target, rules: [`VerifySettings`]                 |
//! | reindex            | target, search: [`ReindexSettings`]                       |
//! | warm               | target, cache: [`WarmSettings`]                           |
//! | generations, rollback | target: [`TargetSettings`]                             |

use std::path::PathBuf;

use crate::config::{Config, ConfigError, Strictness, UnruledTsvector};
use crate::db::PgEndpoint;
use crate::error::Result;
use crate::plan::SampleSettings;
use crate::secret::Secret;
use crate::transform::Catalogue;

use super::reindex::DerivedColumn;

/// Tables at least this big (heap + TOAST) are split into ctid ranges copied in parallel.
/// `RESTAGE_SPLIT_BYTES` overrides it (tests use a tiny value to exercise splitting).
const DEFAULT_SPLIT_BYTES: u64 = 256 << 20;

/// What a refresh (and `validate`, which checks what a refresh would) needs: every section.
#[derive(Debug)]
pub struct Settings {
    pub source: PgEndpoint,
    pub target: TargetSettings,
    pub jobs: usize,
    /// The longest wait for a lock on a source table (see [`crate::db::snapshot`]).
    pub lock_timeout: std::time::Duration,
    pub rules: RulesSettings,
    pub search: SearchSettings,
    pub split_bytes: u64,
    pub cache: Option<CacheSettings>,
    pub sample: SampleSettings,
    /// Generated data (`restage generate`): replaces the copy jobs of the tables it makes.
    pub synthetic: Option<std::sync::Arc<dyn super::generated::Synthesis>>,
}

/// `target:`, resolved: the staging server and the database restage replaces.
#[derive(Debug)]
pub struct TargetSettings {
    /// The maintenance connection on the staging server.
    pub admin: PgEndpoint,
    pub database: String,
    pub keep: u32,
    pub grants: Vec<String>,
    /// Retire a live database restage did not build (`target.adopt`, `refresh --adopt`).
    pub adopt: bool,
    /// The longest wait of the swap (`lock_timeout`).
    pub lock_timeout: std::time::Duration,
    /// `target.settings`: parameters set on every new database, over the source's and the
    /// live database's; None removes one (see [`super::source_database`]).
    pub settings: std::collections::BTreeMap<String, Option<String>>,
}

/// What binding and checking the rules needs: where they are, the key of every pseudonym
/// (`secret:`, resolved only when the file has one), the default locale, strict mode.
#[derive(Debug)]
pub struct RulesSettings {
    pub secret: Option<Secret>,
    /// The configuration file, as given (`-c other.yaml`), for messages about its keys.
    pub config_file: String,
    pub path: PathBuf,
    /// No `rules:` in the file: a missing default `rules/` folder is not an error.
    pub optional: bool,
    pub strict: Strictness,
    pub locale: String,
}

/// `search:`, resolved: derived columns, materialized views, named indexes.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub derived: Vec<DerivedColumn>,
    pub refresh_materialized_views: bool,
    pub reindex: Vec<String>,
    pub unruled_tsvector: UnruledTsvector,
}

/// The `cache:` section, resolved.
#[derive(Debug)]
pub struct CacheSettings {
    pub url: Secret,
    pub flush: Vec<String>,
    pub warm: Vec<crate::config::WarmConfig>,
    pub required: bool,
}

/// `restage verify`: the source (to sample it), the live staging database, the rules.
#[derive(Debug)]
pub struct VerifySettings {
    pub source: PgEndpoint,
    pub target: TargetSettings,
    pub jobs: usize,
    pub rules: RulesSettings,
}

/// `restage reindex`: the live staging database and `search:`.
#[derive(Debug)]
pub struct ReindexSettings {
    pub target: TargetSettings,
    pub jobs: usize,
    pub search: SearchSettings,
}

/// `restage warm`: the live staging database and `cache:` (required).
#[derive(Debug)]
pub struct WarmSettings {
    pub target: TargetSettings,
    pub cache: CacheSettings,
}

impl Settings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<Settings> {
        Settings::with_source(config, command, config.source(command)?)
    }

    /// The settings of `config` with `source` as the source (a schema archive restored
    /// beside staging, for `restage generate`).
    pub fn with_source(
        config: &Config,
        command: &'static str,
        source: PgEndpoint,
    ) -> Result<Settings> {
        let target = TargetSettings::from_config(config, command)?;
        let rules = RulesSettings::from_config(config, command)?;
        let search = SearchSettings::from_config(config)?;
        let cache = CacheSettings::from_config(config, command)?;
        let sample = SampleSettings::from_config(config)?;
        target.check(config, Some(&source))?;
        Ok(Settings {
            source,
            target,
            jobs: config.jobs(),
            lock_timeout: config.lock_timeout(),
            rules,
            search,
            split_bytes: split_bytes(),
            cache,
            sample,
            synthetic: None,
        })
    }

    pub fn building_endpoint(&self, name: &str) -> PgEndpoint {
        self.target.admin.with_database(name)
    }
}

impl VerifySettings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<VerifySettings> {
        let source = config.source(command)?;
        let target = TargetSettings::from_config(config, command)?;
        let rules = RulesSettings::from_config(config, command)?;
        target.check(config, Some(&source))?;
        Ok(VerifySettings {
            source,
            target,
            jobs: config.jobs(),
            rules,
        })
    }
}

impl ReindexSettings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<ReindexSettings> {
        let target = TargetSettings::from_config(config, command)?;
        let search = SearchSettings::from_config(config)?;
        target.check(config, None)?;
        Ok(ReindexSettings {
            target,
            jobs: config.jobs(),
            search,
        })
    }
}

impl WarmSettings {
    pub fn from_config(config: &Config, command: &'static str) -> Result<WarmSettings> {
        let target = TargetSettings::from_config(config, command)?;
        let cache =
            CacheSettings::from_config(config, command)?.ok_or(ConfigError::MissingSection {
                file: config.path.clone(),
                section: "cache",
                command,
            })?;
        Ok(WarmSettings { target, cache })
    }
}

impl TargetSettings {
    /// Resolves the section alone; the commands that refuse a dangerous target check it
    /// after resolving their other sections (`generations`, `rollback` and `warm` do not).
    pub fn from_config(
        config: &Config,
        command: &'static str,
    ) -> Result<TargetSettings, ConfigError> {
        let (admin, target) = config.target(command)?;
        Ok(TargetSettings {
            admin,
            database: target.database.clone(),
            keep: target.keep,
            grants: target.grants.clone(),
            adopt: target.adopt,
            lock_timeout: config.lock_timeout(),
            settings: target
                .settings
                .iter()
                .map(|(name, value)| (name.clone(), value.as_ref().map(ToString::to_string)))
                .collect(),
        })
    }

    /// The live staging database.
    pub fn live(&self) -> PgEndpoint {
        self.admin.with_database(&self.database)
    }

    /// Refuses a target that could damage production or the live staging database: one that
    /// the URLs show to be the source (for a command that uses the source), or a maintenance
    /// connection to a database restage renames.
    pub(crate) fn check(
        &self,
        config: &Config,
        source: Option<&PgEndpoint>,
    ) -> Result<(), ConfigError> {
        if let Some(source) = source {
            self.check_not_source(config, source)?;
        }
        self.check_not_renamed(config)
    }

    /// Refuses a maintenance connection to a database that restage renames.
    fn check_not_renamed(&self, config: &Config) -> Result<(), ConfigError> {
        let names = super::names::Names::of(&self.database);
        if self.admin.dbname() == self.database || self.admin.dbname().starts_with(&names.prefix())
        {
            return Err(config.value_error(
                &["target", "url"],
                format!(
                    "connects to {}, which restage renames; use a maintenance database such as postgres",
                    self.admin.dbname()
                ),
            ));
        }
        Ok(())
    }

    /// Refuses configurations that could damage production: a target database, or a
    /// maintenance connection, that the URLs show to be the source.
    fn check_not_source(&self, config: &Config, source: &PgEndpoint) -> Result<(), ConfigError> {
        let same_server = source.same_server(&self.admin);
        let source_db = source.dbname();
        if same_server && source_db == self.database {
            return Err(config.value_error(
                &["target", "database"],
                format!(
                    "is the source database ({source_db} on {}); restage would replace production",
                    source.display
                ),
            ));
        }
        if same_server && source_db == self.admin.dbname() {
            return Err(config.value_error(
                &["target", "url"],
                format!(
                    "points at the source database ({source_db}); use a maintenance database of the staging server, such as postgres"
                ),
            ));
        }
        Ok(())
    }
}

impl RulesSettings {
    pub fn from_config(
        config: &Config,
        command: &'static str,
    ) -> Result<RulesSettings, ConfigError> {
        let secret = match &config.file.secret {
            Some(_) => Some(config.secret(command)?),
            None => None,
        };
        Catalogue::check_locale(config.locale())
            .map_err(|message| config.value_error(&["locale"], message))?;
        Ok(RulesSettings {
            secret,
            config_file: config.path.display().to_string(),
            path: config.rules_path(),
            optional: config.file.rules.is_none(),
            strict: config.strictness(),
            locale: config.locale().to_string(),
        })
    }
}

impl SearchSettings {
    pub fn from_config(config: &Config) -> Result<SearchSettings, ConfigError> {
        let mut settings = SearchSettings {
            derived: Vec::new(),
            refresh_materialized_views: true,
            reindex: Vec::new(),
            unruled_tsvector: UnruledTsvector::Refuse,
        };
        if let Some(search) = &config.file.search {
            settings.unruled_tsvector = search.unruled_tsvector.unwrap_or(UnruledTsvector::Refuse);
            settings.refresh_materialized_views = search.refresh_materialized_views;
            settings.reindex = search.reindex.clone();
            for (i, d) in search.tsvector.iter().enumerate() {
                let idx = i.to_string();
                settings
                    .derived
                    .push(DerivedColumn::from_config(d).map_err(|e| {
                        config.value_error(&["search", "tsvector", idx.as_str(), "table"], e)
                    })?);
            }
        }
        Ok(settings)
    }
}

impl CacheSettings {
    pub fn from_config(
        config: &Config,
        command: &'static str,
    ) -> Result<Option<CacheSettings>, ConfigError> {
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

pub(crate) fn split_bytes() -> u64 {
    std::env::var("RESTAGE_SPLIT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SPLIT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::path::Path;

    fn load(text: &str) -> Config {
        Config::from_text(text, Path::new("restage.yaml")).expect("the config loads")
    }

    const TARGET: &str = "target:\n  url: postgres://u@staging.example/postgres\n  database: app\n";

    #[test]
    fn reindex_reads_neither_source_nor_secret() {
        // The secret's command would fail, and there is no source: reindex does not care.
        let config = load(&format!(
            "{TARGET}secret: \"cmd:false\"\nsearch:\n  reindex: [public.users_email_idx]\n"
        ));
        let settings = ReindexSettings::from_config(&config, "reindex").expect("resolves");
        assert_eq!(settings.target.database, "app");
        assert_eq!(settings.search.reindex, vec!["public.users_email_idx"]);
        // …while refresh needs both, and says so.
        let err = Settings::from_config(&config, "refresh")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "restage.yaml: section `source` is missing; `refresh` needs it"
        );
        let with_source = load(&format!(
            "source:\n  url: postgres://u@prod.example/app\n{TARGET}secret: \"cmd:false\"\n"
        ));
        let err = Settings::from_config(&with_source, "refresh")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`false` failed"), "{err}");
        assert!(ReindexSettings::from_config(&with_source, "reindex").is_ok());
    }

    #[test]
    fn sections_resolve_in_order_and_the_target_checks_come_last() {
        // RESTAGE_TEST_SETTINGS_UNSET is never set.
        let config = load(
            "source:\n  url: ${RESTAGE_TEST_SETTINGS_UNSET}\ntarget:\n  url: postgres://u@h/app\n  database: app\nlocale: xx\n",
        );
        let err = Settings::from_config(&config, "refresh")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("restage.yaml:2:3: source.url: environment variable"),
            "{err}"
        );
        // reindex reads no source: the next problem in its sections shows.
        let err = ReindexSettings::from_config(&config, "reindex")
            .unwrap_err()
            .to_string();
        assert!(err.contains("target.url: connects to app"), "{err}");
        let config = load(
            "source:\n  url: postgres://u@h/prod\ntarget:\n  url: postgres://u@h/app\n  database: app\nlocale: xx\n",
        );
        let err = Settings::from_config(&config, "refresh")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("restage.yaml:6:1: locale:"), "{err}");
    }

    #[test]
    fn one_problem_is_returned_as_it_is() {
        let config = load(&format!("{TARGET}jobs: 2\n"));
        let err = Settings::from_config(&config, "refresh").unwrap_err();
        assert!(matches!(
            err,
            Error::Config(ConfigError::MissingSection { .. })
        ));
        assert_eq!(
            err.to_string(),
            "restage.yaml: section `source` is missing; `refresh` needs it"
        );
    }

    #[test]
    fn warm_needs_the_cache_section_and_not_the_source() {
        let config = load(TARGET);
        assert_eq!(
            WarmSettings::from_config(&config, "warm")
                .unwrap_err()
                .to_string(),
            "restage.yaml: section `cache` is missing; `warm` needs it"
        );
        let config = load(&format!("{TARGET}cache:\n  flush: [\"user:\"]\n"));
        let warm = WarmSettings::from_config(&config, "warm").expect("resolves");
        assert_eq!(warm.cache.flush, vec!["user:"]);
    }

    #[test]
    fn verify_refuses_a_target_that_is_the_source() {
        let config = load(
            "source:\n  url: postgres://u@db.example/prod\ntarget:\n  url: postgres://u@db.example/postgres\n  database: prod\n",
        );
        let err = VerifySettings::from_config(&config, "verify")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("restage.yaml:5:3: target.database: is the source database"),
            "{err}"
        );
    }
}
