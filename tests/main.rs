//! The integration tests, one binary: each file of tests/ is a module of it, so the harness
//! compiles once and the crate links once (not seventeen times).
//!
//! `cargo test --test main refresh::` runs one module. The tests share this process: what a
//! test changes for a child (environment variables, working directory) goes on the child's
//! command, never on the process (`std::env::set_var` would reach every test running at the
//! same time).

mod harness;
mod http_harness;

mod anonymize;
mod bad_input;
mod demo;
mod deploy;
mod faults;
mod harness_selftest;
mod health;
mod post_load;
mod refresh;
mod scan;
mod secrets;
mod subset;
mod tls;
mod transform_pg_input;
mod transform_unique;
mod validate;
