//! What the new database takes from the source database itself, as `pg_dump --create` would
//! carry it (issue 11): its encoding and locale, and its settings.
//!
//! **Encoding and locale.** The new database is created from `template0` with the source's
//! `ENCODING`, `LC_COLLATE`, `LC_CTYPE` and, where the source uses one, its locale provider
//! (`ICU_LOCALE`, PostgreSQL 15+; the builtin provider, 17+). When the staging server cannot
//! create that (it lacks the locale, or is older), the database gets the source's encoding
//! with the server's default locale, else with `C`, and the report says so: text sorts
//! differently from production then.
//!
//! **Settings.** The source's `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET`
//! are applied to the new database, after the build (so a `statement_timeout` or a
//! `default_transaction_read_only` does not stop the load), in this order, a later one winning
//! for the same role and parameter:
//!
//! 1. the source's, except custom parameters (a name with a dot, `app.jwt_secret`: they can
//!    carry an application's secrets) and those of roles the staging server does not have —
//!    both named in the report, never with their values;
//! 2. the live staging database's own: what an operator set on it (anything restage did not
//!    put there, which `_restage.settings` records), carried to the new live database;
//! 3. `target.settings` from restage.yaml (database-wide; `~` removes a parameter).
//!
//! So an operator's setting on staging survives every refresh, and a source setting that
//! changes reaches staging at the next one. Global role settings (`ALTER ROLE … SET` without
//! a database) belong to the server, not to a database, and are not copied.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use crate::db::{DbError, PgEndpoint, Role, quote_ident, quote_literal};
use crate::error::{Error, Result};

/// How a database's locale is provided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LocaleProvider {
    Libc,
    /// ICU, with the database's ICU locale.
    Icu(String),
    /// PostgreSQL 17's builtin provider, with its locale.
    Builtin(String),
}

/// The encoding and locale of the source database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseLocale {
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub provider: LocaleProvider,
}

/// One stored setting: of the whole database (`role` None) or of a role in it, as PostgreSQL
/// keeps it (`pg_db_role_setting`: `name=value`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DbSetting {
    pub role: Option<String>,
    pub name: String,
    pub value: String,
}

impl DbSetting {
    fn parse(role: Option<String>, entry: &str) -> Option<DbSetting> {
        let (name, value) = entry.split_once('=')?;
        Some(DbSetting {
            role,
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    fn key(&self) -> (Option<String>, String) {
        (self.role.clone(), self.name.clone())
    }

    /// `ALTER DATABASE` or `ALTER ROLE … IN DATABASE` of this setting on `database`.
    pub fn sql(&self, database: &str) -> String {
        let set = format!(
            "SET {} TO {}",
            quote_ident(&self.name),
            value_sql(&self.name, &self.value)
        );
        match &self.role {
            None => format!("ALTER DATABASE {} {set}", quote_ident(database)),
            Some(role) => format!(
                "ALTER ROLE {} IN DATABASE {} {set}",
                quote_ident(role),
                quote_ident(database)
            ),
        }
    }

    /// How the setting is named in a message (never with its value).
    pub fn label(&self) -> String {
        match &self.role {
            None => self.name.clone(),
            Some(role) => format!("{} (role {role})", self.name),
        }
    }
}

/// What the source database gives the new one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceDatabase {
    pub locale: DatabaseLocale,
    pub settings: Vec<DbSetting>,
}

/// The parameters whose value is a list of names, each quoted on its own (pg_dump's
/// `variable_is_guc_list_quote`): a single literal would be one name.
const LIST_PARAMETERS: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// The value of a stored setting as `SET … TO` takes it back.
fn value_sql(name: &str, value: &str) -> String {
    if LIST_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) {
        let items = split_list(value);
        if items.is_empty() {
            return "''".to_string();
        }
        items
            .iter()
            .map(|i| quote_literal(i))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        quote_literal(value)
    }
}

/// Splits a stored list value (`"$user", public`) into its names, as PostgreSQL's
/// `SplitGUCList` does: comma-separated, whitespace trimmed, double quotes removed (a doubled
/// quote inside is one).
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        out.push(item);
        if chars.next() != Some(',') {
            break;
        }
    }
    out
}

/// Reads the source database's locale and settings (on any source session).
pub async fn read(
    source: &Client,
    server: &str,
    server_version: u32,
) -> Result<SourceDatabase, DbError> {
    let provider = if server_version >= 170000 {
        "datlocprovider::text, datlocale::text"
    } else if server_version >= 150000 {
        "datlocprovider::text, daticulocale::text"
    } else {
        "'c'::text, NULL::text"
    };
    let row = source
        .query_one(
            &format!(
                "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, {provider}
                   FROM pg_database WHERE datname = current_database()"
            ),
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the database's locale", e))?;
    let locale_name: Option<String> = row.get(4);
    let provider = match (row.get::<_, String>(3).as_str(), locale_name) {
        ("i", Some(l)) => LocaleProvider::Icu(l),
        ("b", Some(l)) => LocaleProvider::Builtin(l),
        _ => LocaleProvider::Libc,
    };
    let locale = DatabaseLocale {
        encoding: row.get(0),
        collate: row.get(1),
        ctype: row.get(2),
        provider,
    };
    let settings = settings_of(source, server, "current_database()", &[]).await?;
    Ok(SourceDatabase { locale, settings })
}

/// The stored settings of a database (an SQL expression for its name), in their order. A
/// name parameter is taken as text and made a `name` as PostgreSQL makes an identifier (cut
/// at 63 bytes), so it finds the database an over-long name made.
pub async fn settings_of(
    client: &Client,
    server: &str,
    database_sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<DbSetting>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT r.rolname::text, c.entry
                   FROM pg_db_role_setting s
                   LEFT JOIN pg_roles r ON r.oid = s.setrole
                   CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY c(entry, n)
                  WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = {database_sql})
                    AND (s.setrole = 0 OR r.oid IS NOT NULL)
                  ORDER BY s.setrole <> 0, r.rolname, c.n"
            ),
            params,
        )
        .await
        .map_err(|e| DbError::new(server, "reading database settings", e))?;
    Ok(rows
        .iter()
        .filter_map(|r| DbSetting::parse(r.get(0), r.get::<_, &str>(1)))
        .collect())
}

impl DatabaseLocale {
    /// `CREATE DATABASE` statements for `name`, best first: the source's exact locale, then
    /// its encoding with the server's default locale, then with `C` (which every encoding
    /// takes); each with the warning it costs.
    pub fn create_statements(&self, name: &str) -> Vec<(String, Option<String>)> {
        let base = format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {}",
            quote_ident(name),
            quote_literal(&self.encoding)
        );
        let mut exact = format!(
            "{base} LC_COLLATE {} LC_CTYPE {}",
            quote_literal(&self.collate),
            quote_literal(&self.ctype)
        );
        let described = match &self.provider {
            LocaleProvider::Libc => {
                format!("LC_COLLATE {}, LC_CTYPE {}", self.collate, self.ctype)
            }
            LocaleProvider::Icu(locale) => {
                exact.push_str(&format!(
                    " LOCALE_PROVIDER icu ICU_LOCALE {}",
                    quote_literal(locale)
                ));
                format!(
                    "ICU locale {locale}, LC_COLLATE {}, LC_CTYPE {}",
                    self.collate, self.ctype
                )
            }
            LocaleProvider::Builtin(locale) => {
                exact.push_str(&format!(
                    " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                    quote_literal(locale)
                ));
                format!("builtin locale {locale}")
            }
        };
        let warning = |instead: &str| {
            format!(
                "the staging server cannot create a database with the source's locale ({described}); the new database has the encoding {} with {instead}, so text sorts and compares differently from production",
                self.encoding
            )
        };
        vec![
            (exact, None),
            (base.clone(), Some(warning("the server's default locale"))),
            (
                format!("{base} LC_COLLATE 'C' LC_CTYPE 'C'"),
                Some(warning("the C locale")),
            ),
        ]
    }
}

/// True when creating a database failed because of its locale (not a locale on this server,
/// not compatible with the encoding, a provider this server lacks): the next statement of
/// [`DatabaseLocale::create_statements`] may work.
pub fn is_locale_refusal(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::INVALID_PARAMETER_VALUE
            || *c == SqlState::WRONG_OBJECT_TYPE
            || *c == SqlState::FEATURE_NOT_SUPPORTED
            || *c == SqlState::SYNTAX_ERROR
            || *c == SqlState::INVALID_TEXT_REPRESENTATION
    )
}

/// The settings the new database gets, and which of them restage owns (records), from the
/// three layers of the module doc.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SettingsPlan {
    /// In order of application.
    pub apply: Vec<DbSetting>,
    /// (role, name) of the settings that came from the source or `target.settings`, not from
    /// an operator of staging.
    pub owned: BTreeSet<(Option<String>, String)>,
    /// Source settings deliberately not copied (custom parameters), by name.
    pub left_out: Vec<String>,
    pub warnings: Vec<String>,
}

/// Merges the layers (pure): the source's settings (`roles` the staging server has), the
/// live staging database's with those restage recorded there, and `target.settings`.
pub fn plan_settings(
    source: &[DbSetting],
    roles: &BTreeSet<String>,
    live: &[DbSetting],
    recorded: &[DbSetting],
    target: &BTreeMap<String, Option<String>>,
) -> SettingsPlan {
    let mut merged: BTreeMap<(Option<String>, String), DbSetting> = BTreeMap::new();
    let mut order: Vec<(Option<String>, String)> = Vec::new();
    let mut put = |s: DbSetting, merged: &mut BTreeMap<_, _>| {
        let key = s.key();
        if !order.contains(&key) {
            order.push(key.clone());
        }
        merged.insert(key, s);
    };
    let mut owned = BTreeSet::new();
    let mut custom = Vec::new();
    let mut missing_roles = BTreeSet::new();
    for s in source {
        if s.name.contains('.') {
            custom.push(s.label());
            continue;
        }
        if let Some(role) = &s.role
            && !roles.contains(role)
        {
            missing_roles.insert(role.clone());
            continue;
        }
        owned.insert(s.key());
        put(s.clone(), &mut merged);
    }
    for s in live {
        if recorded.contains(s) {
            continue;
        }
        owned.remove(&s.key());
        put(s.clone(), &mut merged);
    }
    for (name, value) in target {
        let key = (None, name.clone());
        match value {
            Some(value) => {
                owned.insert(key);
                put(
                    DbSetting {
                        role: None,
                        name: name.clone(),
                        value: value.clone(),
                    },
                    &mut merged,
                );
            }
            None => {
                owned.remove(&key);
                merged.remove(&key);
            }
        }
    }
    let mut warnings = Vec::new();
    let mut left_out = Vec::new();
    if !custom.is_empty() {
        left_out.push(format!(
            "custom parameters of the source database: {} (they can carry an application's secrets; set staging's own in target.settings)",
            custom.join(", ")
        ));
    }
    if !missing_roles.is_empty() {
        warnings.push(format!(
            "source settings of roles the staging server does not have were skipped: {}",
            missing_roles.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let apply = order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .collect();
    SettingsPlan {
        apply,
        owned,
        left_out,
        warnings,
    }
}

/// Applies the settings to the new database `building` (from its own session `client`),
/// after the build, and records in `_restage.settings` those restage owns, as stored. Returns
/// what was left out and the warnings, for the report. The live database is read on `live`
/// (when there is one).
pub async fn apply_settings(
    client: &Client,
    server: &str,
    building: &str,
    source: &[DbSetting],
    live: &PgEndpoint,
    live_name: &str,
    target: &BTreeMap<String, Option<String>>,
) -> Result<(Vec<String>, Vec<String>)> {
    let roles: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(|e| DbError::new(server, "listing roles", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (live_settings, recorded) = live_own_settings(client, server, live, live_name).await?;
    let plan = plan_settings(source, &roles, &live_settings, &recorded, target);
    let mut warnings = plan.warnings;
    let mut failed = Vec::new();
    for s in &plan.apply {
        if let Err(e) = client.batch_execute(&s.sql(building)).await {
            let from_config = s.role.is_none() && target.contains_key(&s.name);
            if from_config {
                return Err(DbError::new(
                    server,
                    format!("applying target.settings.{} to {building}", s.name),
                    e,
                )
                .into());
            }
            failed.push(format!("{}: {}", s.label(), crate::db::describe(&e)));
        }
    }
    if !failed.is_empty() {
        warnings.push(format!(
            "database settings the staging server refused (not set): {}",
            failed.join("; ")
        ));
    }
    // What is stored now, of what restage owns: next time, anything else on the live database
    // is an operator's.
    let stored = settings_of(client, server, "$1::text::name", &[&building]).await?;
    let mut sql = String::from(
        "CREATE TABLE _restage.settings (role_name text, setting text NOT NULL);
         COMMENT ON TABLE _restage.settings IS 'the database settings restage applied (from the source and target.settings); any other setting of this database is an operator''s, carried to the next generation';\n",
    );
    for s in stored.iter().filter(|s| plan.owned.contains(&s.key())) {
        sql.push_str(&format!(
            "INSERT INTO _restage.settings VALUES ({}, {});\n",
            s.role
                .as_deref()
                .map(quote_literal)
                .unwrap_or_else(|| "NULL".into()),
            quote_literal(&format!("{}={}", s.name, s.value))
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "recording the settings in _restage", e))?;
    Ok((plan.left_out, warnings))
}

/// The live staging database's settings and the ones restage recorded there (none when it
/// has no `_restage.settings`: built before issue 11, or not by restage — then every setting
/// on it is an operator's). Both empty when there is no live database.
async fn live_own_settings(
    client: &Client,
    server: &str,
    live: &PgEndpoint,
    live_name: &str,
) -> Result<(Vec<DbSetting>, Vec<DbSetting>)> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1::text::name AND datallowconn",
            &[&live_name],
        )
        .await
        .map_err(|e| DbError::new(server, "looking for the live database", e))?
        .is_some();
    if !exists {
        return Ok((Vec::new(), Vec::new()));
    }
    let settings = settings_of(client, server, "$1::text::name", &[&live_name]).await?;
    let recorded = match crate::db::connect(live, Role::Target).await {
        Ok(live_client) => match live_client
            .query("SELECT role_name, setting FROM _restage.settings", &[])
            .await
        {
            Ok(rows) => rows
                .iter()
                .filter_map(|r| DbSetting::parse(r.get(0), r.get::<_, &str>(1)))
                .collect(),
            Err(_) => Vec::new(),
        },
        Err(e) => {
            return Err(Error::Runtime(format!(
                "{e}: reading the live staging database's own settings (to carry them to the new one)"
            )));
        }
    };
    Ok((settings, recorded))
}

/// Step 11 of the check sequence for `target.settings`: each parameter exists on the staging
/// server (or is a custom one), can be set per database, and takes its value. Problems, one
/// line each (exit 2).
pub async fn check_target_settings(
    admin: &Client,
    server: &str,
    target: &BTreeMap<String, Option<String>>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (name, value) in target {
        let at = format!("target.settings.{name}");
        let context: Option<String> = admin
            .query_opt(
                "SELECT context FROM pg_settings WHERE name = lower($1)",
                &[name],
            )
            .await
            .map_err(|e| DbError::new(server, "reading the server's parameters", e))?
            .map(|r| r.get(0));
        let context = match context {
            Some(c) => c,
            None if name.contains('.') => continue,
            None => {
                problems.push(format!("{at}: the staging server has no such parameter"));
                continue;
            }
        };
        if matches!(context.as_str(), "internal" | "postmaster" | "sighup") {
            problems.push(format!(
                "{at}: is set for the whole server ({context}), not per database"
            ));
            continue;
        }
        let Some(value) = value else { continue };
        if !matches!(context.as_str(), "user" | "superuser") {
            // Set at connection start (backend): only the server can check the value then.
            continue;
        }
        admin
            .batch_execute("BEGIN")
            .await
            .map_err(|e| DbError::new(server, "checking target.settings", e))?;
        let checked = admin
            .query_one("SELECT set_config($1, $2, true)", &[name, value])
            .await;
        let _ = admin.batch_execute("ROLLBACK").await;
        if let Err(e) = checked {
            problems.push(format!("{at}: {}", crate::db::describe(&e)));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(role: Option<&str>, name: &str, value: &str) -> DbSetting {
        DbSetting {
            role: role.map(str::to_string),
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn list_values_are_quoted_name_by_name() {
        assert_eq!(split_list("\"$user\", public"), ["$user", "public"]);
        assert_eq!(
            split_list("app,  \"My \"\"S\"\"\" , x"),
            ["app", "My \"S\"", "x"]
        );
        assert!(split_list("").is_empty());
        assert_eq!(
            s(None, "search_path", "app, public").sql("db"),
            "ALTER DATABASE \"db\" SET \"search_path\" TO 'app', 'public'"
        );
        assert_eq!(
            s(Some("qa"), "work_mem", "64MB").sql("db"),
            "ALTER ROLE \"qa\" IN DATABASE \"db\" SET \"work_mem\" TO '64MB'"
        );
        assert_eq!(
            s(None, "DateStyle", "ISO, DMY").sql("db"),
            "ALTER DATABASE \"db\" SET \"DateStyle\" TO 'ISO, DMY'",
            "not a list of names: one literal"
        );
    }

    #[test]
    fn operators_win_over_the_source_and_target_settings_over_both() {
        let source = vec![
            s(None, "search_path", "app, public"),
            s(None, "work_mem", "4MB"),
            s(None, "app.jwt_secret", "x"),
            s(Some("app"), "statement_timeout", "5s"),
            s(Some("gone"), "work_mem", "1MB"),
            s(None, "default_transaction_read_only", "on"),
        ];
        let roles = BTreeSet::from(["app".to_string()]);
        // On live staging: what restage applied last time (recorded), an operator's change
        // of work_mem, and an operator's own parameter.
        let live = vec![
            s(None, "search_path", "old, public"),
            s(None, "work_mem", "256MB"),
            s(None, "log_min_duration_statement", "100ms"),
        ];
        let recorded = vec![
            s(None, "search_path", "old, public"),
            s(None, "work_mem", "4MB"),
        ];
        let target = BTreeMap::from([
            ("jit".to_string(), Some("off".to_string())),
            ("default_transaction_read_only".to_string(), None),
        ]);
        let plan = plan_settings(&source, &roles, &live, &recorded, &target);
        assert_eq!(
            plan.apply,
            [
                s(None, "search_path", "app, public"),
                s(None, "work_mem", "256MB"),
                s(Some("app"), "statement_timeout", "5s"),
                s(None, "log_min_duration_statement", "100ms"),
                s(None, "jit", "off"),
            ]
        );
        let owned: Vec<_> = plan
            .owned
            .iter()
            .map(|(r, n)| (r.as_deref(), n.as_str()))
            .collect();
        assert_eq!(
            owned,
            [
                (None, "jit"),
                (None, "search_path"),
                (Some("app"), "statement_timeout")
            ]
        );
        assert_eq!(plan.left_out.len(), 1, "{:?}", plan.left_out);
        assert!(
            plan.left_out[0].contains("app.jwt_secret"),
            "{:?}",
            plan.left_out
        );
        assert!(!plan.left_out[0].contains("=x"), "never the value");
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].ends_with("gone"), "{:?}", plan.warnings);
    }

    #[test]
    fn the_locale_falls_back_with_a_warning() {
        let locale = DatabaseLocale {
            encoding: "LATIN1".into(),
            collate: "de_DE".into(),
            ctype: "de_DE".into(),
            provider: LocaleProvider::Icu("de".into()),
        };
        let statements = locale.create_statements("x");
        assert_eq!(
            statements[0],
            (
                "CREATE DATABASE \"x\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'de_DE' LC_CTYPE 'de_DE' LOCALE_PROVIDER icu ICU_LOCALE 'de'".to_string(),
                None
            )
        );
        assert_eq!(
            statements[2].0,
            "CREATE DATABASE \"x\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        );
        assert!(
            statements[1]
                .1
                .as_deref()
                .is_some_and(|w| w.contains("ICU locale de"))
        );
    }
}
