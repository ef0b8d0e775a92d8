//! The seam of generated data (`source.mode: synthetic | hybrid`, [`crate::synthetic`]): a
//! [`Synthesis`] given to the refresh through [`super::Settings::synthetic`] replaces the
//! copy jobs of the tables it generates, after the plan and before anything is created; the
//! jobs then carry a [`super::copy::RowSource`] in place of the source's `COPY TO`. The rest
//! of the pipeline is the refresh's: pre-data, COPY in, sequences (set from the generated
//! keys, [`super::sequences::set_from_data`]), post-data with the foreign keys validated,
//! verification, swap, generations, reindex, warm.
//!
//! In hybrid mode some tables are copied as a refresh copies them (their rules checked and
//! verified: [`Synthesis::copies_production`]) and the data stage runs in two waves: the
//! generated tables that reference copied ones ([`Synthesis::load_later`]) are loaded once
//! the others are, after [`Synthesis::loaded`] has read the copied keys they point at from
//! the new database.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use tokio_postgres::Client;

use super::prepare::Prepared;
use crate::catalog::QualifiedName;
use crate::error::Result;

/// Replaces the copy jobs of the tables it generates (and the plan's lines of them).
pub trait Synthesis: Send + Sync + std::fmt::Debug {
    fn prepare<'a>(&'a self, prepared: &'a mut Prepared) -> BoxFuture<'a, Result<()>>;

    /// True when some tables are copied from production (hybrid mode): the rules of those
    /// are sampled and verified as in a refresh.
    fn copies_production(&self) -> bool {
        false
    }

    /// The tables (units: a partitioned table stands for its partitions) whose rows are
    /// generated, as the config says before anything is read; strict mode asks no rule of
    /// them.
    fn generated_tables(&self) -> BTreeSet<QualifiedName> {
        BTreeSet::new()
    }

    /// The tables to load after all others (after [`Synthesis::prepare`]).
    fn load_later(&self) -> BTreeSet<QualifiedName> {
        BTreeSet::new()
    }

    /// Called between the two waves with a session on the new database.
    fn loaded<'a>(&'a self, _client: &'a Client, _server: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
