//! Who may use the new database: production's owners and privileges are not copied (staging
//! has other roles); the roles in `target.grants` get CONNECT on the database, USAGE on its
//! schemas and SELECT on its tables and sequences.

use tokio_postgres::Client;

use crate::db::{DbError, quote_ident};
use crate::error::Error;

/// Fails before anything is built when a configured role does not exist on the target.
pub async fn check_roles(admin: &Client, server: &str, roles: &[String]) -> Result<(), Error> {
    let mut missing = Vec::new();
    for role in roles {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
            .await
            .map_err(|e| DbError::new(server, "checking grant roles", e))?
            .is_some();
        if !exists {
            missing.push(role.clone());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{server}: target.grants names roles that do not exist on the staging server: {}",
            missing.join(", ")
        )))
    }
}

/// Grants on the new database (connected to it).
pub async fn grant(
    client: &Client,
    server: &str,
    database: &str,
    roles: &[String],
) -> Result<(), DbError> {
    if roles.is_empty() {
        return Ok(());
    }
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace
              WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                AND nspname NOT LIKE 'pg\\_temp%' AND nspname NOT LIKE 'pg\\_toast\\_temp%'",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "listing schemas for grants", e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut sql = String::new();
    for role in roles {
        let role = quote_ident(role);
        sql.push_str(&format!(
            "GRANT CONNECT ON DATABASE {} TO {role};\n",
            quote_ident(database)
        ));
        for schema in &schemas {
            let schema = quote_ident(schema);
            sql.push_str(&format!(
                "GRANT USAGE ON SCHEMA {schema} TO {role};
                 GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};
                 GRANT SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};\n"
            ));
        }
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "granting access to the configured roles", e))
}
