//! restage refreshes a staging PostgreSQL database from production, safely and fast.
//!
//! ```text
//! snapshot production ──► stream every table ──► anonymize columns ──► sample / subset
//!     (read-only, one          (COPY, parallel,       (rules, rayon        (FK-consistent,
//!      exported snapshot)       bounded memory)        workers)             size limits)
//!                                                         │
//! swap staging atomically ◄── verify (no leaks, FKs) ◄── restore into a new database
//!     (old kept for rollback)                             (schema, data, indexes)
//!             │
//!             └──► rebuild search indexes ──► warm Redis caches ──► report
//! ```
//!
//! One module owns one stage; [`refresh`] runs the stages in order. Configuration flows in
//! two phases: [`config`] and [`rules`] read what the user wrote; binding against the
//! [`catalog`] of the source turns it into a plan that the pipeline executes.

pub mod catalog;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod copy_text;
pub mod db;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod health;
pub mod plan;
pub mod prehashed;
pub mod progress;
pub mod refresh;
pub mod report;
pub mod rules;
pub mod scan;
pub mod secret;
pub mod transform;
pub mod validate;
pub mod yaml;

pub use error::{Error, Result};
