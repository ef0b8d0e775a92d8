//! `restage health`: configured checks (postgres, redis, http, disk), thresholds over
//! consecutive runs, the status document, and `--serve` for load balancers.
//!
//! ```text
//! health: (config::health) ──validate──► build (build.rs) ──► checks.rs (probe all,
//!                                                              each with a timeout)
//!                      serve.rs ◄── status.rs (thresholds → document) ──► stdout / exit code
//!     (/health; /metrics from metrics.rs)
//! ```
//!
//! The HTTP client of the http check is [`crate::http`] and the stop signal
//! [`crate::signal`], both shared with `deploy`; nothing here is a utility for other commands.

pub mod build;
pub mod checks;
pub mod metrics;
pub mod serve;
pub mod status;

use std::sync::Arc;

use clap::Args;

use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::progress::Ui;
use crate::signal::Shutdown;
use status::{StatusDocument, Tracker};

/// `restage health`.
#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Repeat the checks every `health.interval`.
    #[arg(long)]
    pub watch: bool,
    /// Serve the status document as `GET /health` (and as Prometheus metrics at `GET /metrics`)
    /// on ADDR (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// With --watch or --serve: stop after N runs (the exit code is the last run's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
}

pub async fn run(config: &Config, args: &HealthArgs, ui: &Ui) -> Result<i32> {
    let section = config
        .file
        .health
        .as_ref()
        .ok_or_else(|| ConfigError::MissingSection {
            file: config.path.clone(),
            section: "health",
            command: "health",
        })?;
    ConfigError::from_problems(build::validate(section, config))?;
    let health = build::build(section, config)?;

    let listener = match &args.serve {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let repeat = args.watch || listener.is_some();
    let mut tracker = Tracker::new(
        health.checks.len(),
        health.healthy_threshold,
        health.unhealthy_threshold,
    );
    let mut shutdown =
        Shutdown::new().map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let mut server: Option<(
        tokio::sync::watch::Sender<Arc<StatusDocument>>,
        tokio::task::JoinHandle<()>,
    )> = None;
    let mut listener = listener;
    let mut runs: u32 = 0;
    let mut previous: Option<Arc<StatusDocument>> = None;
    let code = loop {
        let probes = checks::run_all(&health.checks).await;
        let doc = Arc::new(tracker.document(&health.checks, &probes));
        runs += 1;
        log_changes(previous.as_deref(), &doc);
        if args.watch || listener.is_none() && server.is_none() {
            print(&doc, ui, repeat);
        }
        // The server starts after the first run, so it never answers without a document;
        // connections made meanwhile wait in the listen backlog.
        match (&server, listener.take()) {
            (Some((tx, _)), _) => {
                tx.send_replace(doc.clone());
            }
            (None, Some(l)) => {
                let (tx, rx) = tokio::sync::watch::channel(doc.clone());
                server = Some((tx, tokio::spawn(serve::serve(l, rx))));
            }
            (None, None) => {}
        }
        let code = doc.status.exit_code();
        previous = Some(doc);
        if !repeat || args.count.is_some_and(|n| runs >= n) {
            break code;
        }
        tokio::select! {
            _ = tokio::time::sleep(health.interval) => {}
            signal = shutdown.wait() => {
                tracing::info!(signal, "stopping");
                break code;
            }
        }
    };
    if let Some((_, handle)) = server {
        handle.abort();
    }
    Ok(code)
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::Usage(format!(
                "--serve {addr}: not an address (expected HOST:PORT, e.g. 127.0.0.1:8080)"
            ))
        } else {
            Error::io(format!("--serve {addr}: cannot listen"), e)
        }
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io(format!("--serve {addr}"), e))?;
    tracing::info!(addr = %local, "serving the status document at http://{local}/health and its metrics at /metrics");
    Ok(listener)
}

/// Logs what changed since the last run: the overall status, and each check that flipped.
fn log_changes(previous: Option<&StatusDocument>, doc: &StatusDocument) {
    let Some(previous) = previous else {
        tracing::debug!(status = doc.status.as_str(), "first run");
        return;
    };
    for check in &doc.checks {
        let before = previous.checks.iter().find(|c| c.name == check.name);
        if before.is_some_and(|b| b.healthy != check.healthy) {
            if check.healthy {
                tracing::info!(check = %check.name, "healthy again: {}", check.detail);
            } else {
                tracing::warn!(check = %check.name, "unhealthy: {}", check.detail);
            }
        }
    }
    if previous.status != doc.status {
        tracing::warn!(
            from = previous.status.as_str(),
            to = doc.status.as_str(),
            "status changed"
        );
    }
}

/// The document on stdout: JSON with `--json` (pretty for one run, one line per run when
/// repeating, so the output is JSON Lines), a short table otherwise.
fn print(doc: &StatusDocument, ui: &Ui, repeat: bool) {
    if ui.json {
        let text = if repeat {
            serde_json::to_string(doc)
        } else {
            serde_json::to_string_pretty(doc)
        };
        match text {
            Ok(text) => crate::output::outln!("{text}"),
            Err(e) => tracing::error!("cannot render the status document: {e}"),
        }
        return;
    }
    crate::output::outln!("{} {}", doc.status.as_str(), doc.timestamp);
    let width = doc.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &doc.checks {
        crate::output::outln!(
            "  {:<4}  {:<width$}  {:<8}  {:>6}  {}",
            if c.healthy { "ok" } else { "FAIL" },
            c.name,
            if c.critical { "critical" } else { "" },
            format!("{}ms", c.latency_ms),
            c.detail,
        );
    }
}
