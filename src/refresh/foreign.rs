//! Foreign servers and user mappings: production's connection data never reaches staging
//! (issue 11).
//!
//! - **User mappings** (remote users, passwords) are never restored: [`super::schema`] takes
//!   them out of pg_restore's lists.
//! - **Foreign servers** are created by restage, without their options (`host`, `port`,
//!   `dbname`, and whatever a wrapper takes — some take a password), between the two parts of
//!   pre-data ([`super::schema::Section`]): foreign tables need them, and no production value
//!   is ever written in the new database's catalog, not even as a dead row. Their comments
//!   come from the archive. Foreign tables keep their options (the remote table's name).
//! - **Foreign-data wrappers** defined outside an extension lose their options after
//!   pre-data (rare; the wrappers of extensions have none).
//! - **Staging's own**: the options of the live staging database's foreign servers and its
//!   user mappings — what an operator set there — are carried to the new database by server
//!   name, so staging's servers keep pointing where staging wants, refresh after refresh.
//!
//! The report lists what was left out, by name, never a value.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::db::{DbError, PgEndpoint, Role, quote_ident, quote_literal};
use crate::error::{Error, Result};

/// `name=value` option entries as `OPTIONS ([ADD ]name 'value', …)`: with ADD for an ALTER,
/// without for a CREATE.
fn options_sql(options: &[String], add: bool) -> String {
    let items: Vec<String> = options
        .iter()
        .filter_map(|o| o.split_once('='))
        .map(|(k, v)| {
            format!(
                "{}{} {}",
                if add { "ADD " } else { "" },
                quote_ident(k),
                quote_literal(v)
            )
        })
        .collect();
    format!("OPTIONS ({})", items.join(", "))
}

/// Option names of `name=value` entries.
fn names(options: &[String]) -> Vec<String> {
    options
        .iter()
        .map(|o| o.split_once('=').map(|(k, _)| k).unwrap_or(o).to_string())
        .collect()
}

/// A foreign server of the source, as staging gets it: no options.
#[derive(Debug, Clone)]
pub struct ServerDef {
    pub name: String,
    pub wrapper: String,
    pub server_type: Option<String>,
    pub version: Option<String>,
    /// The names of the options production gives it (left out).
    pub option_names: Vec<String>,
}

/// The source's foreign servers (on a session inside the snapshot).
pub async fn read_servers(source: &Client, server: &str) -> Result<Vec<ServerDef>, DbError> {
    let rows = source
        .query(
            "SELECT s.srvname::text, w.fdwname::text, s.srvtype, s.srvversion,
                    coalesce(s.srvoptions, '{}')
               FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the foreign servers", e))?;
    Ok(rows
        .iter()
        .map(|r| ServerDef {
            name: r.get(0),
            wrapper: r.get(1),
            server_type: r.get(2),
            version: r.get(3),
            option_names: names(&r.get::<_, Vec<String>>(4)),
        })
        .collect())
}

/// Creates the servers in the new database (on its session `client`), without options.
/// Returns what was left out, for the report.
pub async fn create_servers(
    client: &Client,
    server: &str,
    defs: &[ServerDef],
) -> Result<Vec<String>> {
    let mut left_out = Vec::new();
    for def in defs {
        let mut sql = format!("CREATE SERVER {}", quote_ident(&def.name));
        if let Some(t) = &def.server_type {
            sql.push_str(&format!(" TYPE {}", quote_literal(t)));
        }
        if let Some(v) = &def.version {
            sql.push_str(&format!(" VERSION {}", quote_literal(v)));
        }
        sql.push_str(&format!(
            " FOREIGN DATA WRAPPER {}",
            quote_ident(&def.wrapper)
        ));
        client.batch_execute(&sql).await.map_err(|e| {
            DbError::new(server, format!("creating foreign server {}", def.name), e)
        })?;
        if !def.option_names.is_empty() {
            left_out.push(format!(
                "the options of foreign server {} ({})",
                def.name,
                def.option_names.join(", ")
            ));
        }
    }
    Ok(left_out)
}

/// Drops the options of the foreign-data wrappers the archive created with some (not those of
/// extensions, which have none). Returns what was left out.
pub async fn strip_wrapper_options(client: &Client, server: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT fdwname::text, fdwoptions FROM pg_foreign_data_wrapper
              WHERE fdwoptions IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "listing the foreign-data wrappers", e))?;
    let mut left_out = Vec::new();
    for row in &rows {
        let name: String = row.get(0);
        let option_names = names(&row.get::<_, Vec<String>>(1));
        let drops: Vec<String> = option_names
            .iter()
            .map(|o| format!("DROP {}", quote_ident(o)))
            .collect();
        client
            .batch_execute(&format!(
                "ALTER FOREIGN DATA WRAPPER {} OPTIONS ({})",
                quote_ident(&name),
                drops.join(", ")
            ))
            .await
            .map_err(|e| {
                DbError::new(
                    server,
                    format!("removing the options of foreign-data wrapper {name}"),
                    e,
                )
            })?;
        left_out.push(format!(
            "the options of foreign-data wrapper {name} ({})",
            option_names.join(", ")
        ));
    }
    Ok(left_out)
}

/// Staging's own server options and user mappings, read on the live staging database.
#[derive(Debug, Default)]
struct LiveOwn {
    servers: BTreeMap<String, Vec<String>>,
    /// (server, role or `public`, options; None when restage may not read them).
    mappings: Vec<(String, String, Option<Vec<String>>)>,
}

async fn read_live(live: &PgEndpoint) -> Result<LiveOwn> {
    let client = crate::db::connect(live, Role::Target).await?;
    let server = &live.display;
    let mut own = LiveOwn::default();
    for row in client
        .query(
            "SELECT srvname::text, srvoptions FROM pg_foreign_server WHERE srvoptions IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the live database's foreign servers", e))?
    {
        own.servers.insert(row.get(0), row.get(1));
    }
    for row in client
        .query(
            "SELECT srvname::text, usename::text, umoptions FROM pg_user_mappings ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the live database's user mappings", e))?
    {
        own.mappings.push((row.get(0), row.get(1), row.get(2)));
    }
    Ok(own)
}

/// Carries the live staging database's server options and user mappings to the new
/// database (on its session `client`). Returns warnings for the report (by name).
pub async fn carry_forward(
    client: &Client,
    server: &str,
    live: &PgEndpoint,
    live_name: &str,
) -> Result<Vec<String>> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1::text::name AND datallowconn",
            &[&live_name],
        )
        .await
        .map_err(|e| DbError::new(server, "looking for the live database", e))?
        .is_some();
    let has_servers = !client
        .query("SELECT 1 FROM pg_foreign_server LIMIT 1", &[])
        .await
        .map_err(|e| DbError::new(server, "listing the foreign servers", e))?
        .is_empty();
    if !exists || !has_servers {
        return Ok(Vec::new());
    }
    let own = read_live(live).await.map_err(|e| {
        Error::Runtime(format!(
            "{e}: reading staging's own foreign server options and user mappings (to carry them to the new database)"
        ))
    })?;
    let present: Vec<String> = client
        .query("SELECT srvname::text FROM pg_foreign_server", &[])
        .await
        .map_err(|e| DbError::new(server, "listing the foreign servers", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut warnings = Vec::new();
    let mut gone = Vec::new();
    for (name, options) in &own.servers {
        if !present.contains(name) {
            gone.push(name.clone());
            continue;
        }
        if let Err(e) = client
            .batch_execute(&format!(
                "ALTER SERVER {} {}",
                quote_ident(name),
                options_sql(options, true)
            ))
            .await
        {
            warnings.push(format!(
                "the options of foreign server {name} on the live staging database could not be carried to the new one: {}",
                crate::db::describe(&e)
            ));
        }
    }
    for (srv, role, options) in &own.mappings {
        if !present.contains(srv) {
            gone.push(srv.clone());
            continue;
        }
        let who = if role == "public" {
            "PUBLIC".to_string()
        } else {
            quote_ident(role)
        };
        let options = match options {
            Some(o) if !o.is_empty() => format!(" {}", options_sql(o, false)),
            Some(_) => String::new(),
            None => {
                warnings.push(format!(
                    "the user mapping of {role} for server {srv} on the live staging database was not carried: restage may not read its options"
                ));
                continue;
            }
        };
        if let Err(e) = client
            .batch_execute(&format!(
                "CREATE USER MAPPING FOR {who} SERVER {}{options}",
                quote_ident(srv)
            ))
            .await
        {
            warnings.push(format!(
                "the user mapping of {role} for server {srv} on the live staging database could not be carried to the new one: {}",
                crate::db::describe(&e)
            ));
        }
    }
    gone.sort();
    gone.dedup();
    if !gone.is_empty() {
        warnings.push(format!(
            "foreign servers of the live staging database that the source no longer has (their options and user mappings were not carried): {}",
            gone.join(", ")
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_added_quoted_and_named_without_values() {
        let options = vec!["host=stg-db".to_string(), "password=a'b=c".to_string()];
        assert_eq!(
            options_sql(&options, true),
            "OPTIONS (ADD \"host\" 'stg-db', ADD \"password\" 'a''b=c')"
        );
        assert_eq!(
            options_sql(&options, false),
            "OPTIONS (\"host\" 'stg-db', \"password\" 'a''b=c')"
        );
        assert_eq!(names(&options), ["host", "password"]);
    }
}
