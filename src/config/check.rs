//! The pure checks of the file that serde's types cannot express (ranges, fields that go
//! together, names restage reserves). No environment, no network, no commands.
//!
//! Every problem is collected and reported at once, one line each, prefixed with the
//! `file:line:column` of the key at fault, as the rules loader and the `health:` and
//! `deploy:` validations do: fixing a file should not take one run per mistake.

use super::{Config, ConfigError};

impl Config {
    /// Every problem of the loaded file, in file order of the sections; `Ok` when none.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(jobs) = self.file.jobs
            && jobs == 0
        {
            problems.push(self.value_error(&["jobs"], "must be at least 1"));
        }
        if let Some(timeout) = self.file.lock_timeout
            && timeout.0.is_zero()
        {
            problems.push(self.value_error(
                &["lock_timeout"],
                "must be more than 0s (a wait without an end is what it prevents)",
            ));
        }
        if let Some(target) = &self.file.target {
            let name = &target.database;
            if name.is_empty() || name.len() > 63 {
                problems.push(self.value_error(
                    &["target", "database"],
                    "must be 1 to 63 bytes (PostgreSQL's longest name; restage shortens the names of generations itself)",
                ));
            }
            for setting in target.settings.keys() {
                if !is_parameter_name(setting) {
                    problems.push(self.value_error(
                        &["target", "settings", setting.as_str()],
                        "is not a parameter name (letters, digits and _, parts joined by dots: work_mem, app.tenant)",
                    ));
                }
            }
            if name.contains("__restage") {
                problems.push(self.value_error(
                    &["target", "database"],
                    "must not contain `__restage`, which restage uses for generations and its control database",
                ));
            }
        }
        if let Some(sample) = &self.file.sample {
            problems.extend(self.check_storage(sample));
            for (table, spec) in &sample.tables {
                let at = ["sample", "tables", table.as_str()];
                if let Some(p) = spec.percent
                    && !(0.0..=100.0).contains(&p)
                {
                    problems.push(self.value_error(&at, "percent must be between 0 and 100"));
                }
                if spec.since_days.is_some() != spec.column.is_some() {
                    problems.push(self.value_error(
                        &at,
                        "since_days and column go together (the timestamp column the window applies to)",
                    ));
                }
                if spec.percent.is_none()
                    && spec.since_days.is_none()
                    && spec.max_rows.is_none()
                    && spec.rows.is_none()
                {
                    problems.push(self.value_error(
                        &at,
                        "empty sample spec: give percent, since_days + column, max_rows or rows",
                    ));
                }
                if let Some(rows) = spec.rows
                    && rows != 0
                {
                    problems.push(self.value_error(
                        &at,
                        "rows only takes 0 (schema only); use max_rows for a cap",
                    ));
                }
            }
        }
        if let Some(cache) = &self.file.cache {
            for (i, prefix) in cache.flush.iter().enumerate() {
                if prefix.is_empty() {
                    let idx = i.to_string();
                    problems.push(self.value_error(
                        &["cache", "flush", idx.as_str()],
                        "an empty prefix would remove every key of the Redis database; name the prefixes to remove",
                    ));
                }
            }
            for (i, w) in cache.warm.iter().enumerate() {
                if !w.key.contains('{') {
                    let idx = i.to_string();
                    problems.push(self.value_error(
                        &["cache", "warm", idx.as_str(), "key"],
                        "key template needs at least one {column} placeholder",
                    ));
                }
            }
        }
        self.check_monitoring(&mut problems);
        ConfigError::from_problems(problems)
    }

    /// `max_storage` and the per-foreign-key policies of the `sample:` section.
    fn check_storage(&self, sample: &super::SampleConfig) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if let Some(cap) = &sample.max_storage {
            if cap.limit.0 == 0 {
                problems.push(self.value_error(
                    &["sample", "max_storage"],
                    "must be more than 0 (rows: 0 on a table empties it)",
                ));
            }
            if !(0.0..=100.0).contains(&cap.tolerance.0) {
                problems.push(self.value_error(
                    &["sample", "max_storage"],
                    "tolerance must be between 0% and 100%",
                ));
            }
        }
        for (fk, policy) in &sample.foreign_keys {
            if policy.dangling.is_none() && policy.orphans.is_none() {
                problems.push(self.value_error(
                    &["sample", "foreign_keys", fk.as_str()],
                    "give dangling (drop or set_null), orphans (sample or keep), or both",
                ));
            }
        }
        problems
    }
}

/// A run-time parameter's name as `ALTER DATABASE … SET` takes it: an identifier, or
/// identifiers joined by dots (a custom or an extension's parameter).
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("restage.yaml"))
    }

    #[test]
    fn sample_checks() {
        let err = load("sample:\n  tables:\n    public.users: { percent: 150 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("percent must be between 0 and 100"), "{err}");
        assert!(err.starts_with("restage.yaml:3:5"), "{err}");
    }

    #[test]
    fn reports_every_problem_each_at_its_key() {
        let err = load(
            "jobs: 0\ntarget:\n  url: x\n  database: a__restage_b\nsample:\n  tables:\n    public.users: { percent: 150, since_days: 3 }\ncache:\n  flush: [\"user:\", \"\"]\n  warm:\n    - { query: SELECT 1, key: fixed }\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "restage.yaml:1:1: jobs: must be at least 1",
                "restage.yaml:4:3: target.database: must not contain `__restage`, which restage uses for generations and its control database",
                "restage.yaml:7:5: sample.tables.public.users: percent must be between 0 and 100",
                "restage.yaml:7:5: sample.tables.public.users: since_days and column go together (the timestamp column the window applies to)",
                "restage.yaml:9:3: cache.flush.1: an empty prefix would remove every key of the Redis database; name the prefixes to remove",
                "restage.yaml:11:26: cache.warm.0.key: key template needs at least one {column} placeholder",
            ],
            "{err}"
        );
    }

    #[test]
    fn storage_checks() {
        let err = load(
            "sample:\n  max_storage: { limit: 0, tolerance: 150% }\n  foreign_keys:\n    a_fkey: {}\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "restage.yaml:2:3: sample.max_storage: must be more than 0 (rows: 0 on a table empties it)",
                "restage.yaml:2:3: sample.max_storage: tolerance must be between 0% and 100%",
                "restage.yaml:4:5: sample.foreign_keys.a_fkey: give dangling (drop or set_null), orphans (sample or keep), or both",
            ],
            "{err}"
        );
        assert!(
            load("sample:\n  max_storage: { limit: 2GiB, include_indexes: true, tolerance: 5% }\n  max_storage_policy: fail\n  orphans: keep\n  foreign_keys:\n    a_fkey: { orphans: sample }\n")
                .is_ok()
        );
    }

    #[test]
    fn target_settings_take_any_scalar_and_refuse_names_that_are_not_parameters() {
        let config = load(
            "target:\n  url: x\n  database: app\n  settings:\n    work_mem: 64MB\n    statement_timeout: 0\n    jit: false\n    app.tenant: staging\n    default_transaction_read_only: ~\n",
        )
        .expect("loads");
        let target = config.file.target.as_ref().expect("target");
        let shown: Vec<(String, Option<String>)> = target
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_string())))
            .collect();
        assert_eq!(
            shown,
            [
                ("app.tenant".to_string(), Some("staging".to_string())),
                ("default_transaction_read_only".to_string(), None),
                ("jit".to_string(), Some("off".to_string())),
                ("statement_timeout".to_string(), Some("0".to_string())),
                ("work_mem".to_string(), Some("64MB".to_string())),
            ]
        );
        let err = load("target:\n  url: x\n  database: app\n  settings:\n    \"work mem\": 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target.settings.work mem: is not a parameter name"),
            "{err}"
        );
    }

    #[test]
    fn one_problem_reads_as_before() {
        let err = load("jobs: 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Value { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "restage.yaml:1:1: jobs: must be at least 1"
        );
    }
}
