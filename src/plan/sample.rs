//! The `sample:` section of restage.yaml, resolved (table names parsed), and its checks
//! against the source catalog: the tables and columns it names exist and fit.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, QualifiedName, TypeKind};
use crate::config::{Config, ConfigError, Dangling, MaxStoragePolicy, Orphans, SampleSpecConfig};

/// Default bound on the memory of key sets.
pub const DEFAULT_MAX_KEY_MEMORY: u64 = 2 << 30;

/// The `sample:` section, checked against the catalog.
#[derive(Debug, Clone, Default)]
pub struct SampleSettings {
    /// `max_storage`, with its policy.
    pub storage: Option<StorageCap>,
    pub tables: BTreeMap<QualifiedName, SampleSpecConfig>,
    pub dangling: Dangling,
    /// `dangling` per foreign key, where one says.
    pub overrides: BTreeMap<String, Dangling>,
    pub orphans: Orphans,
    /// `orphans` per foreign key, where one says.
    pub orphan_overrides: BTreeMap<String, Orphans>,
    pub max_key_memory: u64,
}

/// `sample.max_storage` and `sample.max_storage_policy`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StorageCap {
    /// Bytes.
    pub limit: u64,
    /// Indexes count too (else heap + TOAST only).
    pub include_indexes: bool,
    /// How far over `limit` the restored data may come out, as a fraction (0.05 for 5%).
    pub tolerance: f64,
    pub policy: MaxStoragePolicy,
}

impl StorageCap {
    /// The most the restored data may take before the policy applies.
    pub fn allowed(&self) -> u64 {
        (self.limit as f64 * (1.0 + self.tolerance)).floor() as u64
    }

    /// What the cap counts, in words.
    pub fn counts(&self) -> &'static str {
        if self.include_indexes {
            "heap + TOAST + indexes"
        } else {
            "heap + TOAST"
        }
    }
}

impl SampleSettings {
    pub fn from_config(config: &Config) -> Result<SampleSettings, ConfigError> {
        let Some(sample) = &config.file.sample else {
            return Ok(SampleSettings::default());
        };
        let mut tables = BTreeMap::new();
        for (name, spec) in &sample.tables {
            let q = QualifiedName::parse(name)
                .map_err(|e| config.value_error(&["sample", "tables", name.as_str()], e))?;
            tables.insert(q, spec.clone());
        }
        Ok(SampleSettings {
            storage: sample.max_storage.map(|cap| StorageCap {
                limit: cap.limit.0,
                include_indexes: cap.include_indexes,
                tolerance: cap.tolerance.fraction(),
                policy: sample.max_storage_policy.unwrap_or_default(),
            }),
            tables,
            dangling: sample.dangling.unwrap_or_default(),
            overrides: sample
                .foreign_keys
                .iter()
                .filter_map(|(k, v)| v.dangling.map(|d| (k.clone(), d)))
                .collect(),
            orphans: sample.orphans.unwrap_or_default(),
            orphan_overrides: sample
                .foreign_keys
                .iter()
                .filter_map(|(k, v)| v.orphans.map(|o| (k.clone(), o)))
                .collect(),
            max_key_memory: sample
                .max_key_memory
                .map(|s| s.0)
                .unwrap_or(DEFAULT_MAX_KEY_MEMORY),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.storage.is_none()
    }

    /// Problems with the section against the source schema, all at once.
    pub fn check(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        let names: Vec<String> = catalog.tables.keys().map(|n| n.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for (name, spec) in &self.tables {
            match catalog.table(name) {
                None => problems.push(format!(
                    "sample.tables: table {name} does not exist in the source{}",
                    crate::yaml::did_you_mean(&name.to_string(), &refs)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                )),
                Some(t) if t.parent.is_some() => problems.push(format!(
                    "sample.tables: {name} is a partition of {}; sample the partitioned table",
                    catalog.root_of(name)
                )),
                Some(t) => {
                    if let Some(col) = &spec.column {
                        match t.column(col) {
                            None => problems.push(format!("sample.tables.{name}: column {col} does not exist")),
                            Some(c)
                                if !matches!(
                                    c.ty.kind,
                                    TypeKind::Date
                                        | TypeKind::Timestamp
                                        | TypeKind::TimestampTz
                                ) || c.ty.array =>
                            {
                                problems.push(format!(
                                    "sample.tables.{name}: since_days needs a date or timestamp column; {col} is {}",
                                    c.ty.name
                                ))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let fk_names: Vec<&str> = catalog
            .foreign_keys
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        for fk in self.orphan_overrides.keys() {
            if !self.overrides.contains_key(fk)
                && !catalog.foreign_keys.iter().any(|f| &f.name == fk)
            {
                problems.push(format!(
                    "sample.foreign_keys: no foreign key named {fk}{}",
                    crate::yaml::did_you_mean(fk, &fk_names)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                ));
            }
        }
        for (fk, policy) in &self.overrides {
            match catalog.foreign_keys.iter().find(|f| &f.name == fk) {
                None => problems.push(format!(
                    "sample.foreign_keys: no foreign key named {fk}{}",
                    crate::yaml::did_you_mean(fk, &fk_names)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                )),
                Some(f) if *policy == Dangling::SetNull && !f.nullable => problems.push(format!(
                    "sample.foreign_keys.{fk}: dangling: set_null, but {}({}) is NOT NULL",
                    f.table,
                    f.columns.join(", ")
                )),
                _ => {}
            }
        }
        problems
    }
}
