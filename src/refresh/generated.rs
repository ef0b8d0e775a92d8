//! The seam of generated data (`source.mode: synthetic | hybrid`, [`crate::synthetic`]): a
//! [`Synthesis`] given to the refresh through [`super::Settings::synthetic`] replaces the
//! copy jobs of the tables it generates, after the plan and before anything is created; the
//! jobs then carry a [`super::copy::RowSource`] in place of the source's `COPY TO`. The rest
//! of the pipeline is the refresh's: pre-data, COPY in, sequences (set from the generated
//! keys, [`super::sequences::set_from_data`]), post-data with the foreign keys validated,
//! verification, swap, generations, reindex, warm.

use futures_util::future::BoxFuture;

use super::prepare::Prepared;
use crate::error::Result;

/// Replaces the copy jobs of the tables it generates (and the plan's lines of them).
pub trait Synthesis: Send + Sync + std::fmt::Debug {
    fn prepare<'a>(&'a self, prepared: &'a mut Prepared) -> BoxFuture<'a, Result<()>>;
}
