//! The integration tests, one binary: each file of tests/ is a module of it, so the harness
//! compiles once and the crate links once (not seventeen times).
//!
//! `cargo test --test main refresh::` runs one module; `cargo test --test main
//! validate_refuses` the parity cases of every module. The tests share this process: anything
//! a test changes for a child (environment variables, working directory) goes on the child's
//! command ([`harness::Restage`]), never on the process.

mod harness;
mod http_harness;

mod anonymize;
mod architecture;
mod bad_input;
mod constraints;
mod copies;
mod demo;
mod deploy;
mod dump;
mod dump_s3;
mod faults;
mod fidelity;
mod generations;
mod harness_selftest;
mod health;
mod health_http;
mod huge_values;
mod hybrid;
mod init;
mod libpq;
mod monitoring;
mod output;
mod post_load;
mod redaction;
mod refresh;
mod scan;
mod secrets;
mod sizes;
mod source_locks;
mod subset;
mod synthetic;
mod tls;
mod transform_pg_input;
mod transform_unique;
mod validate;
mod verification;
mod yaml_limits;
