//! The `sample:` section of restage.yaml, resolved (table names parsed), and its checks
//! against the source catalog: the tables and columns it names exist and fit.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, QualifiedName, TypeKind};
use crate::config::{Config, ConfigError, Dangling, SampleSpecConfig};

/// Default bound on the memory of key sets.
pub const DEFAULT_MAX_KEY_MEMORY: u64 = 2 << 30;

/// The `sample:` section, checked against the catalog.
#[derive(Debug, Clone, Default)]
pub struct SampleSettings {
    pub max_storage: Option<u64>,
    pub tables: BTreeMap<QualifiedName, SampleSpecConfig>,
    pub dangling: Dangling,
    pub overrides: BTreeMap<String, Dangling>,
    pub max_key_memory: u64,
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
            max_storage: sample.max_storage.map(|s| s.limit.0),
            tables,
            dangling: sample.dangling.unwrap_or_default(),
            overrides: sample
                .foreign_keys
                .iter()
                .filter_map(|(k, v)| v.dangling.map(|d| (k.clone(), d)))
                .collect(),
            max_key_memory: sample
                .max_key_memory
                .map(|s| s.0)
                .unwrap_or(DEFAULT_MAX_KEY_MEMORY),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.max_storage.is_none()
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
