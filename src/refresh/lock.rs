//! One refresh per staging database at a time: a session-level advisory lock on the target's
//! maintenance connection. A killed process's session ends and the lock goes with it, so a
//! crash never leaves a stale lock behind.

use tokio_postgres::Client;

use crate::db::DbError;
use crate::error::Error;

/// The lock's first key: "re" in ASCII, so restage's locks are recognisable in `pg_locks`.
const CLASS: i32 = 0x7265;

/// The lock's second key, from the staging database's name (FNV-1a, stable across versions).
fn object_key(database: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in database.bytes() {
        hash ^= b as u32;
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// The two advisory lock keys for a staging database, as restage takes them.
pub fn keys(database: &str) -> (i32, i32) {
    (CLASS, object_key(database))
}

/// Takes the lock or fails at once with [`Error::Locked`] naming the holder.
pub async fn acquire(admin: &Client, server: &str, database: &str) -> Result<(), Error> {
    let key = object_key(database);
    let got: bool = admin
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&CLASS, &key])
        .await
        .map_err(|e| DbError::new(server, "taking the refresh lock", e))?
        .get(0);
    if got {
        return Ok(());
    }
    let holder = admin
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), a.backend_start::text,
                    coalesce(host(a.client_addr), 'local')
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.classid::int = $1 AND l.objid::int = $2
                AND l.granted
              LIMIT 1",
            &[&CLASS, &key],
        )
        .await
        .ok()
        .flatten();
    let who = match holder {
        Some(row) => format!(
            " (server pid {}, {} from {}, connected since {})",
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(3),
            row.get::<_, String>(2)
        ),
        None => String::new(),
    };
    Err(Error::Locked(format!(
        "{server}: another restage run holds the lock for staging database {database}{who}; nothing was changed"
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_stable() {
        assert_eq!(super::object_key("app"), super::object_key("app"));
        assert_ne!(super::object_key("app"), super::object_key("app2"));
    }
}
