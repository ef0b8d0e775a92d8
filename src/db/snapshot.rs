//! One consistent, read-only view of production for the whole run.
//!
//! The leader session opens a REPEATABLE READ READ ONLY transaction and exports its snapshot;
//! every worker session (and pg_dump) imports it, so all tables come from the same instant
//! while many stream at once. The leader's transaction stays open until the run ends: an
//! exported snapshot lives only as long as its transaction. Every session is also read-only
//! by `default_transaction_read_only` (see [`crate::db::Role::Source`]).

use tokio_postgres::Client;

use crate::db::PgEndpoint;
use crate::db::{self, DbError, Role};

pub struct Snapshot {
    leader: Client,
    pub id: String,
    endpoint: PgEndpoint,
}

impl Snapshot {
    pub async fn open(endpoint: &PgEndpoint) -> Result<Snapshot, DbError> {
        let leader = db::connect(endpoint, Role::Source).await?;
        leader
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| DbError::new(&endpoint.display, "starting the snapshot transaction", e))?;
        let id: String = leader
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| DbError::new(&endpoint.display, "exporting the snapshot", e))?
            .get(0);
        Ok(Snapshot {
            leader,
            id,
            endpoint: endpoint.clone(),
        })
    }

    /// The leader session, inside the snapshot (for the catalog and planning queries).
    pub fn leader(&self) -> &Client {
        &self.leader
    }

    pub fn endpoint(&self) -> &PgEndpoint {
        &self.endpoint
    }

    /// A new read-only session that sees exactly the snapshot.
    pub async fn session(&self) -> Result<Client, DbError> {
        let client = db::connect(&self.endpoint, Role::Source).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                db::quote_literal(&self.id)
            ))
            .await
            .map_err(|e| DbError::new(&self.endpoint.display, "importing the snapshot", e))?;
        Ok(client)
    }

    /// When the snapshot was taken, by the source server's clock: the start of the leader's
    /// transaction, which exported the snapshot as its first statement.
    pub async fn taken_at(&self) -> Result<chrono::DateTime<chrono::Utc>, DbError> {
        self.leader
            .query_one("SELECT transaction_timestamp()", &[])
            .await
            .map(|row| row.get(0))
            .map_err(|e| DbError::new(&self.endpoint.display, "reading the snapshot's time", e))
    }

    /// True while the leader's transaction (and so the snapshot) is alive.
    pub fn is_alive(&self) -> bool {
        !self.leader.is_closed()
    }
}
