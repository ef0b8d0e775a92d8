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

// Foundations: depend on no other module of the crate.
pub mod checksum;
pub mod copy_binary;
pub mod copy_text;
pub mod http;
pub mod output;
pub mod pg_encoding;
pub mod prehashed;
pub mod secret;
pub mod signal;
pub mod units;
pub mod yaml;

// Connections (db), then what the user wrote (config, which resolves into db's endpoints).
pub mod db;

pub mod config;

pub mod catalog;
pub mod rules;
pub mod transform;

pub mod error;

pub mod pii;
pub mod plan;
pub mod progress;
pub mod report;
pub mod runs;

pub mod refresh;

// What runs tell the outside: the state on the staging server, metrics, notifications,
// alert rules; then the commands run with them.
pub mod alerts;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod status;

// Commands, then the command line that assembles them.
pub mod copies;
pub mod demo;
pub mod deploy;
pub mod dump;
pub mod health;
pub mod init;
pub mod scan;
pub mod synthetic;
pub mod validate;

pub mod cli;

pub use error::{Error, Result};
