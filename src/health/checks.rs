//! The catalogue of health checks: postgres, redis, http, disk.
//!
//! A [`Check`] probes once and says what it saw, in one line. The runner ([`run_all`]) owns
//! what is common: the timeout, the latency, `max_latency`, running all checks at once.
//! Details never contain a password: connection targets are shown as `user@host:port/db` or
//! `host:port`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::db::{self, PgEndpoint, Role};
use crate::http::{self, Url, judge_response};
use crate::secret::{Secret, redact_url};
use crate::units::{format_duration, format_percent, human_bytes};

/// Largest body an http check reads.
const MAX_HEALTH_BODY: usize = 1024 * 1024;

/// One kind of check, bound to its target.
pub trait Check: Send + Sync {
    fn name(&self) -> &str;
    /// What it probes, for logs (never with a password).
    fn target(&self) -> String;
    /// Probes once: `Ok(detail)` when healthy, `Err(detail)` saying what failed. The runner
    /// bounds the time; a check need not.
    fn probe(&self) -> BoxFuture<'_, Result<String, String>>;
}

/// The result of one probe, before thresholds.
#[derive(Debug, Clone)]
pub struct Probe {
    pub passed: bool,
    pub latency: Duration,
    pub detail: String,
}

/// Runs every check concurrently, each within its timeout.
pub async fn run_all(checks: &[crate::health::build::BuiltCheck]) -> Vec<Probe> {
    let futures = checks.iter().map(|c| async move {
        let started = Instant::now();
        let outcome = tokio::time::timeout(c.timeout, c.check.probe()).await;
        let latency = started.elapsed();
        let (passed, detail) = match outcome {
            Ok(Ok(detail)) => match c.max_latency {
                Some(max) if latency > max => (
                    false,
                    format!(
                        "{detail}, but took {} > {}",
                        format_duration(latency),
                        format_duration(max)
                    ),
                ),
                _ => (true, detail),
            },
            Ok(Err(detail)) => (false, detail),
            Err(_) => (
                false,
                format!(
                    "no answer within {} from {}",
                    format_duration(c.timeout),
                    c.check.target()
                ),
            ),
        };
        tracing::debug!(
            check = c.check.name(),
            passed,
            latency_ms = latency.as_millis() as u64,
            "{detail}"
        );
        Probe {
            passed,
            latency,
            detail,
        }
    });
    futures_util::future::join_all(futures).await
}

// ---------------------------------------------------------------------------------------
// postgres

/// Connects read-only (`Role::Source`: a health check must never write), runs `SELECT 1`,
/// reads the server version, and on a standby the replication lag.
pub struct PostgresCheck {
    name: String,
    endpoint: PgEndpoint,
    max_lag: Option<Duration>,
}

impl PostgresCheck {
    pub fn new(name: &str, endpoint: PgEndpoint, max_lag: Option<Duration>) -> Self {
        PostgresCheck {
            name: name.to_string(),
            endpoint,
            max_lag,
        }
    }

    async fn run(&self) -> Result<String, String> {
        let client = db::connect(&self.endpoint, Role::Source)
            .await
            .map_err(|e| match e.source.as_ref().and_then(io_error) {
                Some(io) => http::describe_connect_error(
                    io,
                    &format!("{}:{}", self.endpoint.host_string(), self.endpoint.port()),
                ),
                None => e.to_string(),
            })?;
        let fail = |context: &str, e: tokio_postgres::Error| {
            format!("{}: {context}: {}", self.endpoint.display, db::describe(&e))
        };
        let row = client
            .query_one(
                "SELECT 1, current_setting('server_version'), pg_is_in_recovery()",
                &[],
            )
            .await
            .map_err(|e| fail("SELECT 1", e))?;
        let version: String = row.get(1);
        let standby: bool = row.get(2);
        if !standby {
            return Ok(format!("PostgreSQL {version}, primary"));
        }
        // On a standby that has replayed all it received, the lag is 0 even when no
        // transaction happened for a while; otherwise it is the age of the last replayed one.
        let lag_row = client
            .query_one(
                "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
                             ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8",
                &[],
            )
            .await
            .map_err(|e| fail("reading replication lag", e))?;
        let lag = Duration::from_secs_f64(lag_row.get::<_, f64>(0).max(0.0));
        let detail = format!(
            "PostgreSQL {version}, standby, replication lag {}",
            format_duration(lag)
        );
        match self.max_lag {
            Some(max) if lag > max => Err(format!(
                "{detail} > {} on {}",
                format_duration(max),
                self.endpoint.display
            )),
            _ => Ok(detail),
        }
    }
}

/// The I/O error at the root of a driver error, if any (connection refused, reset, …).
fn io_error(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

impl Check for PostgresCheck {
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> String {
        self.endpoint.display.clone()
    }
    fn probe(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.run())
    }
}

// ---------------------------------------------------------------------------------------
// redis

/// PING, then `INFO memory`: used memory, and its share of `maxmemory` when one is set.
pub struct RedisCheck {
    name: String,
    client: redis::Client,
    /// `host:port` (or the socket path), for details.
    display: String,
    max_memory_percent: Option<f64>,
}

impl RedisCheck {
    pub fn new(name: &str, url: &Secret, max_memory_percent: Option<f64>) -> Result<Self, String> {
        let client = redis::Client::open(url.expose()).map_err(|e| {
            format!(
                "not a valid Redis URL ({}): {}",
                redact_url(url.expose()),
                e.category()
            )
        })?;
        let display = match &client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => redact_url(&other.to_string()),
        };
        Ok(RedisCheck {
            name: name.to_string(),
            client,
            display,
            max_memory_percent,
        })
    }

    async fn run(&self) -> Result<String, String> {
        let describe = |context: &str, e: redis::RedisError| {
            if e.is_connection_refusal() {
                format!("connection refused to {}", self.display)
            } else {
                format!("{}: {context}: {e}", self.display)
            }
        };
        let mut conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| describe("cannot connect", e))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| describe("PING", e))?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .map_err(|e| describe("INFO memory", e))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let used: u64 = field("used_memory")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let max: u64 = field("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
        let used_text = human_bytes(used);
        if max == 0 {
            return Ok(format!("{pong}, used memory {used_text} (no maxmemory)"));
        }
        let percent = used as f64 * 100.0 / max as f64;
        let detail = format!(
            "{pong}, used memory {used_text}, {}% of maxmemory {}",
            format_percent(percent),
            human_bytes(max)
        );
        match self.max_memory_percent {
            Some(limit) if percent > limit => Err(format!(
                "{}: used memory {}% of maxmemory > {}%",
                self.display,
                format_percent(percent),
                format_percent(limit)
            )),
            _ => Ok(detail),
        }
    }
}

impl Check for RedisCheck {
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> String {
        self.display.clone()
    }
    fn probe(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.run())
    }
}

// ---------------------------------------------------------------------------------------
// http

/// GET the URL; pass on the expected status (any 2xx by default) and, when given, a body
/// that matches the regular expression.
pub struct HttpCheck {
    name: String,
    url: Url,
    expect: Option<u16>,
    body: Option<regex::Regex>,
}

impl HttpCheck {
    pub fn new(name: &str, url: Url, expect: Option<u16>, body: Option<regex::Regex>) -> Self {
        HttpCheck {
            name: name.to_string(),
            url,
            expect,
            body,
        }
    }

    async fn run(&self) -> Result<String, String> {
        let response = http::get(&self.url, MAX_HEALTH_BODY).await?;
        judge_response(&response, self.expect, self.body.as_ref())
            .map_err(|e| format!("{e} from {}", self.url))
    }
}

impl Check for HttpCheck {
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> String {
        self.url.to_string()
    }
    fn probe(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.run())
    }
}

// ---------------------------------------------------------------------------------------
// disk

/// Free space on the filesystem holding `path`, as `df` counts it (space available to
/// unprivileged users, over used + available).
pub struct DiskCheck {
    name: String,
    path: PathBuf,
    min_free_percent: f64,
}

impl DiskCheck {
    pub fn new(name: &str, path: PathBuf, min_free_percent: f64) -> Self {
        DiskCheck {
            name: name.to_string(),
            path,
            min_free_percent,
        }
    }

    async fn run(&self) -> Result<String, String> {
        let path = self.path.clone();
        // statvfs can block on a hung network filesystem: keep it off the async workers, so
        // the timeout still answers.
        let usage = tokio::task::spawn_blocking(move || disk_usage(&path))
            .await
            .map_err(|e| format!("disk check task failed: {e}"))?
            .map_err(|e| format!("cannot stat {}: {e}", self.path.display()))?;
        let detail = format!(
            "{}% free on {} ({} available of {})",
            format_percent(usage.free_percent),
            self.path.display(),
            human_bytes(usage.available),
            human_bytes(usage.total)
        );
        if usage.free_percent < self.min_free_percent {
            Err(format!(
                "{}% free < {}% on {} ({} available of {})",
                format_percent(usage.free_percent),
                format_percent(self.min_free_percent),
                self.path.display(),
                human_bytes(usage.available),
                human_bytes(usage.total)
            ))
        } else {
            Ok(detail)
        }
    }
}

struct DiskUsage {
    free_percent: f64,
    available: u64,
    total: u64,
}

fn disk_usage(path: &std::path::Path) -> std::io::Result<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statvfs only writes into the struct we pass; an all-zero statvfs is a valid
    // value of that plain C struct, and c_path is a NUL-terminated string that outlives the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = stat.f_frsize as u64;
    let blocks = stat.f_blocks as u64;
    let free = stat.f_bfree as u64;
    let avail = stat.f_bavail as u64;
    let used = blocks.saturating_sub(free);
    let usable = used + avail;
    let free_percent = if usable == 0 {
        100.0
    } else {
        avail as f64 * 100.0 / usable as f64
    };
    Ok(DiskUsage {
        free_percent,
        available: avail * frsize,
        total: blocks * frsize,
    })
}

impl Check for DiskCheck {
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> String {
        self.path.display().to_string()
    }
    fn probe(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disk_of_root_and_missing_path() {
        let ok = DiskCheck::new("d", PathBuf::from("/"), 0.0)
            .run()
            .await
            .unwrap();
        assert!(ok.contains("% free on /"), "{ok}");
        let err = DiskCheck::new("d", PathBuf::from("/"), 100.5)
            .run()
            .await
            .unwrap_err();
        assert!(err.contains("% free < 100.5% on /"), "{err}");
        let err = DiskCheck::new("d", PathBuf::from("/no/such/dir"), 1.0)
            .run()
            .await
            .unwrap_err();
        assert!(err.starts_with("cannot stat /no/such/dir"), "{err}");
    }
}
