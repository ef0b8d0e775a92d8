//! Sequences: their values are read on the source and set on the new database after the data,
//! so inserts in staging continue after the copied rows. (pg_dump's `SEQUENCE SET` belongs
//! to the data section, which restage replaces with its own copy.)

use tokio_postgres::Client;

use crate::catalog::QualifiedName;
use crate::db::{DbError, quote_literal};

#[derive(Debug, Clone)]
pub struct SequenceValue {
    pub name: QualifiedName,
    pub last_value: i64,
    pub is_called: bool,
}

/// Reads every sequence's state. Sequences are not transactional, so this is the value at
/// reading time, which is never behind the snapshot's rows.
pub async fn read(
    source: &Client,
    server: &str,
    names: &[QualifiedName],
) -> Result<Vec<SequenceValue>, DbError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let row = source
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", name.sql()),
                &[],
            )
            .await
            .map_err(|e| DbError::new(server, format!("reading sequence {name}"), e))?;
        out.push(SequenceValue {
            name: name.clone(),
            last_value: row.get(0),
            is_called: row.get(1),
        });
    }
    Ok(out)
}

/// Sets the values on the target, in one round trip.
pub async fn apply(target: &Client, server: &str, values: &[SequenceValue]) -> Result<(), DbError> {
    if values.is_empty() {
        return Ok(());
    }
    let sql: String = values
        .iter()
        .map(|v| {
            format!(
                "SELECT pg_catalog.setval({}, {}, {});",
                quote_literal(&v.name.sql()),
                v.last_value,
                v.is_called
            )
        })
        .collect();
    target
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "setting sequences", e))
}

/// Sets every sequence owned by a column (serial, identity) past the largest value of its
/// column, for generated data (production's values may be behind the generated keys).
pub async fn set_from_data(target: &Client, server: &str) -> Result<(), DbError> {
    let owned = target
        .query(
            "SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname),
                    quote_ident(a.attname)
               FROM pg_depend d
               JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_class t ON t.oid = d.refobjid
               JOIN pg_namespace tn ON tn.oid = t.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i') AND NOT t.relispartition",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the owned sequences", e))?;
    let sql: String = owned
        .iter()
        .map(|row| {
            let (sequence, table, column): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            format!(
                "SELECT pg_catalog.setval({}, max({column})::bigint) FROM {table} HAVING max({column}) IS NOT NULL;",
                quote_literal(&sequence)
            )
        })
        .collect();
    if sql.is_empty() {
        return Ok(());
    }
    target
        .batch_execute(&sql)
        .await
        .map_err(|e| DbError::new(server, "setting sequences after the generated keys", e))
}
