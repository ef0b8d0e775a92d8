//! Rules: `rules/*.yaml` → a [`RuleSet`] (what was written, with where), then
//! [`RuleSet::bind`] against the source [`Catalog`] → [`BoundRules`] (a transform instance per
//! column of every table that holds rows).
//!
//! Every problem is an error at load time, before anything is copied, and all of them are
//! reported at once, each with its file, line and column: a table or column that does not
//! exist, an unknown transform or parameter, a transform that does not fit the column's type,
//! two rules for one column.
//!
//! What a transform is — its name, parameters, the types it fits, its properties — is the
//! [`registry`](crate::transform::registry)'s: a rule as written holds the name the user wrote
//! ([`RuleSpec`]); [`Rule::def`] and [`BoundColumn::def`] give other stages the definition to
//! ask about.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::catalog::{Catalog, QualifiedName, Table, TypeKind};
use crate::transform::{
    BindError, Catalogue, ColumnInfo, RuleSpec, Transform, TransformDef, registry,
};
use crate::yaml::{self, KeyIndex, Location};

/// The wildcard column key: a rule for every column not named.
pub const WILDCARD: &str = "*";

/// The most a rules folder's files may hold together (each file is capped at
/// [`yaml::MAX_FILE_BYTES`] too).
pub const MAX_RULES_BYTES: u64 = 64 << 20;

/// Problems past this many get no did-you-mean: a hint compares a name with every table or
/// column of the source, and only the first [`yaml::MAX_PROBLEMS_SHOWN`] problems are printed.
const HINTED_PROBLEMS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    tables: BTreeMap<String, Option<BTreeMap<String, serde_yaml::Value>>>,
    /// Synthetic data (`source.mode: synthetic | hybrid`), per table: see [`SyntheticTable`].
    #[serde(default)]
    synthetic: BTreeMap<String, SyntheticTableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyntheticTableFile {
    rows: Option<u64>,
    from: Option<DataFrom>,
    #[serde(default)]
    generate: BTreeMap<String, serde_yaml::Value>,
}

/// Where a table's rows come from in `mode: hybrid` (`from:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFrom {
    Synthetic,
    Production,
}

/// A table's `synthetic:` entry in a rules file: a row count (`rows:`, over production's
/// estimate × scale), where its rows come from in hybrid mode (`from:`), and column
/// generators (`generate:`, read by [`crate::synthetic`]), each with where it is written.
#[derive(Debug, Clone)]
pub struct SyntheticTable {
    pub location: Location,
    pub rows: Option<u64>,
    pub from: Option<DataFrom>,
    pub generate: BTreeMap<String, (serde_yaml::Value, Location)>,
}

/// One rule as written, with where.
#[derive(Debug, Clone)]
pub struct Rule {
    pub spec: RuleSpec,
    pub location: Location,
    /// Where each parameter is, for errors about it.
    pub param_locations: BTreeMap<String, Location>,
}

impl Rule {
    /// The definition of the transform the rule names; None for a name the registry does not
    /// know (binding reports it).
    pub fn def(&self) -> Option<&'static TransformDef> {
        registry::get(&self.spec.transform)
    }
}

/// Rules of one table as written.
#[derive(Debug, Clone)]
pub struct TableRuleSet {
    pub location: Location,
    pub columns: BTreeMap<String, Rule>,
}

/// All rules files, merged.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub tables: BTreeMap<QualifiedName, TableRuleSet>,
    /// The `synthetic:` sections, merged (one entry per table across files).
    pub synthetic: BTreeMap<QualifiedName, SyntheticTable>,
    pub files: Vec<PathBuf>,
}

/// A rule bound to a column, ready for the data path.
#[derive(Debug, Clone)]
pub struct BoundColumn {
    /// The column's name.
    pub column: String,
    /// The transform to run, or None to pass the value through untouched (no rule, or `keep`).
    pub transform: Option<Arc<dyn Transform>>,
    /// The definition of the rule's transform, None when no rule covers the column: what
    /// other stages ask about the rule (does it replace the whole value, does it need the
    /// secret...).
    pub def: Option<&'static TransformDef>,
    /// The transform's name as written (`keep` for wildcard keeps), None when no rule covers
    /// it: the report's label. Ask [`BoundColumn::def`] about the transform, not this.
    pub rule: Option<String>,
    /// The rule as written, when one covers the column.
    pub spec: Option<RuleSpec>,
    /// Where that rule is written (a `*` rule's own place for the columns it covers).
    pub location: Option<Location>,
}

impl BoundColumn {
    /// True when the rule says `unique: true` (binding accepted it, so the transform keeps
    /// the promise: distinct inputs, distinct outputs).
    pub fn says_unique(&self) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.params.get("unique"))
            .and_then(serde_yaml::Value::as_bool)
            .unwrap_or(false)
    }

    /// `file:line:col: ` of the rule, for messages about it.
    pub fn at(&self) -> String {
        self.location
            .as_ref()
            .map(|l| format!("{l}: "))
            .unwrap_or_default()
    }
}

/// The rules of one table that holds rows, aligned with [`Table::copy_columns`].
#[derive(Debug, Clone)]
pub struct BoundTable {
    pub columns: Vec<BoundColumn>,
}

impl BoundTable {
    /// True when no column is transformed: the table can be piped as raw COPY bytes.
    pub fn is_passthrough(&self) -> bool {
        self.columns.iter().all(|c| c.transform.is_none())
    }

    pub fn ruled_columns(&self) -> impl Iterator<Item = &BoundColumn> {
        self.columns.iter().filter(|c| c.transform.is_some())
    }
}

/// Rules bound to every table that holds rows (tables without rules get all-None entries).
#[derive(Debug, Clone, Default)]
pub struct BoundRules {
    pub tables: HashMap<QualifiedName, BoundTable>,
}

impl BoundRules {
    pub fn table(&self, name: &QualifiedName) -> Option<&BoundTable> {
        self.tables.get(name)
    }
}

impl RuleSet {
    /// `from:` entries in a source mode other than hybrid (`mode` names it): one problem
    /// each, naming where it is written.
    pub fn misplaced_from(&self, mode: &str) -> Vec<String> {
        self.synthetic
            .iter()
            .filter(|(_, spec)| spec.from.is_some())
            .map(|(name, spec)| {
                format!(
                    "{}: synthetic.{name}.from: only `source.mode: hybrid` takes `from:` (source.mode is {mode}; nothing was changed)",
                    spec.location
                )
            })
            .collect()
    }

    /// Loads a rules file, or every `*.yaml` / `*.yml` file of a folder (sorted by name).
    /// A path that does not exist gives an empty rule set when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<RuleSet, Vec<String>> {
        let (set, errors) = RuleSet::load_partial(path, optional);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Like [`RuleSet::load`], but returns what did load along with the problems, so that a
    /// caller can bind the rest and report every problem at once.
    pub fn load_partial(path: &Path, optional: bool) -> (RuleSet, Vec<String>) {
        let mut set = RuleSet::default();
        let files = if path.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) => {
                    return (
                        set,
                        vec![format!("{}: cannot read rules folder: {e}", path.display())],
                    );
                }
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml") | Some("yml")
                        )
                })
                .collect();
            files.sort();
            files
        } else if path.exists() {
            vec![path.to_path_buf()]
        } else if optional {
            return (set, vec![]);
        } else {
            return (
                set,
                vec![format!("{}: no such rules file or folder", path.display())],
            );
        };
        let mut errors = Vec::new();
        let mut total = 0u64;
        for file in files {
            match yaml::read_file(&file) {
                Ok(text) => {
                    total += text.len() as u64;
                    if total > MAX_RULES_BYTES {
                        errors.push(format!(
                            "{}: the rules files together are over {} MiB; not read from this one on",
                            file.display(),
                            MAX_RULES_BYTES >> 20
                        ));
                        break;
                    }
                    set.add_file(&text, &file, &mut errors)
                }
                Err(e) => errors.push(format!("{}: cannot read: {e}", file.display())),
            }
        }
        (set, errors)
    }

    /// Parses one file's text into the set; problems go to `errors`.
    pub fn add_file(&mut self, text: &str, file: &Path, errors: &mut Vec<String>) {
        let parsed: RulesFile = match yaml::from_str(text, file) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e.to_string());
                return;
            }
        };
        let index = KeyIndex::parse(text, file);
        self.files.push(file.to_path_buf());
        for (table_key, spec) in parsed.synthetic {
            let loc = index.locate(&["synthetic", &table_key]);
            let name = match QualifiedName::parse(&table_key) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(format!("{loc}: {e}"));
                    continue;
                }
            };
            if let Some(previous) = self.synthetic.get(&name) {
                errors.push(format!(
                    "{loc}: synthetic.{name}: given twice (the other is at {})",
                    previous.location
                ));
                continue;
            }
            let generate = spec
                .generate
                .into_iter()
                .map(|(column, value)| {
                    let at = index.locate(&["synthetic", &table_key, "generate", &column]);
                    (column, (value, at))
                })
                .collect();
            self.synthetic.insert(
                name,
                SyntheticTable {
                    location: loc,
                    rows: spec.rows,
                    from: spec.from,
                    generate,
                },
            );
        }
        for (table_key, columns) in parsed.tables {
            let table_loc = index.locate(&["tables", &table_key]);
            let name = match QualifiedName::parse(&table_key) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(format!("{table_loc}: {e}"));
                    continue;
                }
            };
            let entry = self
                .tables
                .entry(name.clone())
                .or_insert_with(|| TableRuleSet {
                    location: table_loc.clone(),
                    columns: BTreeMap::new(),
                });
            for (column, value) in columns.unwrap_or_default() {
                let loc = index.locate(&["tables", &table_key, &column]);
                let spec = match RuleSpec::from_value(&value) {
                    Ok(spec) => spec,
                    Err(e) => {
                        errors.push(format!("{loc}: {name}.{column}: {e}"));
                        continue;
                    }
                };
                if let Some(previous) = entry.columns.get(&column) {
                    errors.push(format!(
                        "{loc}: {name}.{column}: two rules for one column (the other is at {})",
                        previous.location
                    ));
                    continue;
                }
                let param_locations = spec
                    .params
                    .keys()
                    .map(|p| (p.clone(), index.locate(&["tables", &table_key, &column, p])))
                    .collect();
                entry.columns.insert(
                    column,
                    Rule {
                        spec,
                        location: loc,
                        param_locations,
                    },
                );
            }
        }
    }

    /// The rules written for `table` itself or inherited from a partitioned ancestor.
    fn rules_for<'a>(
        &'a self,
        catalog: &'a Catalog,
        table: &QualifiedName,
    ) -> Vec<(&'a QualifiedName, &'a TableRuleSet)> {
        catalog
            .lineage(table)
            .into_iter()
            .filter_map(|t| self.tables.get_key_value(&t.name))
            .collect()
    }

    /// Binds every rule to its column. Collects all problems.
    pub fn bind(
        &self,
        catalog: &Catalog,
        transforms: &Catalogue,
    ) -> Result<BoundRules, Vec<String>> {
        let mut errors = Vec::new();

        // Tables and columns that do not exist, wherever they are written.
        let table_names: Vec<String> = catalog.tables.keys().map(|n| n.to_string()).collect();
        let table_refs: Vec<&str> = table_names.iter().map(String::as_str).collect();
        for (name, rules) in &self.tables {
            let Some(table) = catalog.table(name) else {
                let hint = if errors.len() < HINTED_PROBLEMS {
                    yaml::did_you_mean(&name.to_string(), &table_refs)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                errors.push(format!(
                    "{}: table {name} does not exist in the source{hint}",
                    rules.location
                ));
                continue;
            };
            let column_names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            for (column, rule) in &rules.columns {
                if column == WILDCARD {
                    continue;
                }
                match table.column(column) {
                    None => {
                        let hint = if errors.len() < HINTED_PROBLEMS {
                            yaml::did_you_mean(column, &column_names)
                                .map(|s| format!(", did you mean `{s}`?"))
                                .unwrap_or_default()
                        } else {
                            String::new()
                        };
                        errors.push(format!(
                            "{}: {name}.{column}: no such column{hint}",
                            rule.location
                        ));
                    }
                    Some(c) if c.generated && !rule.def().is_some_and(|d| d.passes_through()) => {
                        errors.push(format!(
                            "{}: {name}.{column}: is a generated column, recomputed from the others in staging; rule the columns it is computed from",
                            rule.location
                        ));
                    }
                    _ => {}
                }
            }
        }

        let mut bound = BoundRules::default();
        for table in catalog.data_tables() {
            let layers = self.rules_for(catalog, &table.name);
            let mut columns = Vec::new();
            for column in table.copy_columns() {
                columns.push(self.bind_column(
                    table,
                    &column.name,
                    &layers,
                    transforms,
                    &mut errors,
                ));
            }
            bound
                .tables
                .insert(table.name.clone(), BoundTable { columns });
        }
        if errors.is_empty() {
            Ok(bound)
        } else {
            errors.sort();
            errors.dedup();
            Err(errors)
        }
    }

    fn bind_column(
        &self,
        table: &Table,
        column: &str,
        layers: &[(&QualifiedName, &TableRuleSet)],
        transforms: &Catalogue,
        errors: &mut Vec<String>,
    ) -> BoundColumn {
        let unbound = BoundColumn {
            column: column.to_string(),
            transform: None,
            def: None,
            rule: None,
            spec: None,
            location: None,
        };
        // The nearest layer with a rule for this column wins over wildcards anywhere; two
        // layers naming the same column is an error (a partition masked unlike its siblings is
        // almost always a mistake).
        let explicit: Vec<(&QualifiedName, &Rule)> = layers
            .iter()
            .filter_map(|(n, r)| r.columns.get(column).map(|rule| (*n, rule)))
            .collect();
        if explicit.len() > 1 {
            errors.push(format!(
                "{}: {}.{column}: two rules for one column (also at {}, on {})",
                explicit[0].1.location, explicit[0].0, explicit[1].1.location, explicit[1].0
            ));
            return unbound;
        }
        let (owner, rule, via_wildcard) = match explicit.first() {
            Some((owner, rule)) => (*owner, *rule, false),
            None => match layers
                .iter()
                .find_map(|(n, r)| r.columns.get(WILDCARD).map(|rule| (*n, rule)))
            {
                Some((owner, rule)) => (owner, rule, true),
                None => return unbound,
            },
        };
        let Some(col) = table.column(column) else {
            return unbound;
        };
        let info = ColumnInfo {
            ty: &col.ty,
            not_null: col.not_null,
        };
        match transforms.bind_rule(&rule.spec, &info) {
            Ok(bound) => BoundColumn {
                column: column.to_string(),
                // `keep` is not even decoded: the data path copies the column's bytes.
                transform: if bound.def.passes_through() {
                    None
                } else {
                    Some(bound.instance)
                },
                def: Some(bound.def),
                rule: Some(rule.spec.transform.clone()),
                spec: Some(rule.spec.clone()),
                location: Some(rule.location.clone()),
            },
            Err(e) => {
                let at = e
                    .param()
                    .and_then(|p| rule.param_locations.get(p))
                    .unwrap_or(&rule.location);
                let which = if via_wildcard {
                    format!("{}.{column} (via `*` on {owner})", table.name)
                } else {
                    format!("{owner}.{column}")
                };
                errors.push(format!(
                    "{at}: {which}: {}",
                    describe_bind_error(&e, &col.ty.kind)
                ));
                unbound
            }
        }
    }
}

fn describe_bind_error(e: &BindError, _kind: &TypeKind) -> String {
    e.to_string()
}

/// The rules digest: `sha256:` and the hex SHA-256 of the rule set's canonical form (every
/// table, column, transform and parameter, sorted; JSON), so two runs with the same rules
/// give the same digest whatever the files' layout, comments or order, and any change of a
/// rule changes it. It says which rules built a staging database (`restage status`, the
/// metrics); it holds no secret (the `secret:` is not part of the rules).
impl RuleSet {
    pub fn digest(&self) -> String {
        use sha2::Digest;
        fn sorted(value: serde_json::Value) -> serde_json::Value {
            match value {
                serde_json::Value::Object(map) => {
                    let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    serde_json::Value::Object(
                        entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                    )
                }
                serde_json::Value::Array(items) => {
                    serde_json::Value::Array(items.into_iter().map(sorted).collect())
                }
                other => other,
            }
        }
        let tables: BTreeMap<String, BTreeMap<&str, serde_json::Value>> = self
            .tables
            .iter()
            .map(|(name, table)| {
                let columns = table
                    .columns
                    .iter()
                    .map(|(column, rule)| {
                        let params = serde_json::to_value(&rule.spec.params)
                            .map(sorted)
                            .unwrap_or(serde_json::Value::Null);
                        (
                            column.as_str(),
                            serde_json::json!({ "transform": rule.spec.transform, "params": params }),
                        )
                    })
                    .collect();
                (name.to_string(), columns)
            })
            .collect();
        let canonical = serde_json::to_vec(&tables).unwrap_or_default();
        let hash = sha2::Sha256::digest(&canonical);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (RuleSet, Vec<String>) {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        set.add_file(text, Path::new("rules/a.yaml"), &mut errors);
        (set, errors)
    }

    #[test]
    fn shorthand_and_mapping() {
        let (set, errors) = parse(
            "tables:\n  public.users:\n    email: { transform: email, unique: true }\n    first_name: first_name\n    \"*\": keep\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let users = &set.tables[&QualifiedName::new("public", "users")];
        assert_eq!(users.columns["first_name"].spec.transform, "first_name");
        assert_eq!(users.columns["email"].spec.transform, "email");
        assert!(users.columns["email"].spec.params.contains_key("unique"));
        assert_eq!(users.columns["email"].location.line, 3);
        assert_eq!(users.columns["email"].param_locations["unique"].line, 3);
        assert!(users.columns.contains_key("*"));
    }

    #[test]
    fn duplicate_column_across_files() {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        set.add_file(
            "tables:\n  users:\n    email: email\n",
            Path::new("a.yaml"),
            &mut errors,
        );
        set.add_file(
            "tables:\n  public.users:\n    email: hash\n",
            Path::new("b.yaml"),
            &mut errors,
        );
        assert_eq!(
            errors,
            vec![
                "b.yaml:3:5: public.users.email: two rules for one column (the other is at a.yaml:3:5)"
            ]
        );
    }

    #[test]
    fn rule_without_transform() {
        let (_, errors) = parse("tables:\n  t:\n    c: { unique: true }\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("rules/a.yaml:3:5: public.t.c: a rule needs `transform"),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let (_, errors) = parse("tabels:\n  t:\n    c: keep\n");
        assert_eq!(
            errors,
            vec!["rules/a.yaml:1:1: unknown key `tabels`, did you mean `tables`?"]
        );
    }

    #[test]
    fn the_digest_follows_the_rules_not_the_files() {
        let digest = |text: &str| parse(text).0.digest();
        let a = digest(
            "tables:\n  public.users:\n    email: { transform: email, unique: true }\n    name: name\n",
        );
        // Same rules, other order, other spelling, a comment: same digest.
        let b = digest(
            "# people\ntables:\n  users:\n    name: { transform: name }\n    email: { unique: true, transform: email }\n",
        );
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        // Any change of a rule changes it.
        assert_ne!(
            a,
            digest("tables:\n  public.users:\n    email: { transform: email }\n    name: name\n")
        );
        assert_ne!(
            a,
            digest(
                "tables:\n  public.users:\n    email: { transform: email, unique: true }\n    name: first_name\n"
            )
        );
        assert_ne!(a, RuleSet::default().digest());
    }
}
