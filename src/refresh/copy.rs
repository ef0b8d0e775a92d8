//! The data stage: every table streamed from the source snapshot into the new database.
//!
//! Per job (a table, or a ctid range of a big one): `COPY ... TO STDOUT` on a source session
//! that imported the snapshot, rows gathered into batches, batches transformed on the rayon
//! pool (or passed through as raw bytes when the table has no rule and no filter), results
//! written in order with `COPY ... FROM STDIN` into the target. Between the stages, bounded
//! channels: at most [`IN_FLIGHT`] batches of about [`BATCH_BYTES`] per job exist at once, so
//! memory stays flat whatever the table size.
//!
//! Memory with huge values (issue 11): a row is one COPY message, which the driver holds
//! whole, so a job holds at least its biggest row (its COPY text: a bytea counts twice, in
//! hex). Nothing copies it again: a row of [`BATCH_BYTES`] or more is a batch of its own,
//! passed on as the driver's buffer; the row stage slices its big kept fields out of it and
//! moves its big transformed values ([`super::rows::process_shared`]); the writer hands the
//! driver at most [`WRITE_PIECE`] bytes at a time, so the driver's write buffer stays small.
//! Batches in flight are bounded by bytes ([`IN_FLIGHT_BYTES`]) as well as by count: a
//! batch bigger than that waits for every batch before it to be written. Peak memory per
//! job: about the biggest row (twice, while the next one waits), plus the transformed
//! values of one row's ruled columns, plus a few MB.
//! Rows travel in the source database's encoding on both ends (COPY's `ENCODING` option), byte
//! for byte: neither server converts anything (see [`crate::pg_encoding`]).
//!
//! Binary (issue 14): where it cannot change a value ([`CopyJob::binary`]), both ends speak
//! COPY's binary format instead of text, which spares the servers their text output and
//! input of every kept timestamp, number and jsonb: measured with psql on the demo's
//! 2 M-row `events_2025` (scale 100), `COPY TO` 1.45 → 1.22 s and `COPY FROM` 3.0 → 1.87 s;
//! the keep-only data stage went from 12.3–14.1 s to 9.3–11.1 s. The row stage reads such
//! rows with [`super::rows::process_binary`]. A binary stream's first message also holds its
//! header and its last message is its trailer, not a row: the reader counts one message
//! less.
//!
//! A job that loads a whole table does `TRUNCATE` + `COPY ... FREEZE` in one transaction: rows
//! are written frozen (no vacuum debt in staging), and a failure leaves the table empty.
//! Range jobs of one table run in parallel, so they cannot freeze. A table under
//! [`SMALL_TABLE_BYTES`] is loaded by a plain `COPY` instead, on its first attempt: the
//! `TRUNCATE` that `FREEZE` needs costs about 5 ms a table (a new relation file, the old one
//! unlinked at commit: 1,000 ten-row tables took 5.5–12.8 s through `psql` with it, 1.0 s
//! without, on this project's machine), which is most of a small table's load, while the
//! vacuum debt it saves is a few pages. A failed `COPY` commits nothing, so the table is
//! still empty; its retry truncates first, in a transaction, as a big table's does.
//!
//! Retries: a job whose *source* connection drops (while its session opens, or mid-COPY) is
//! run again on a fresh session that imports the same snapshot (possible while the leader's transaction lives); the target COPY of the
//! failed attempt was aborted, so nothing is doubled. A whole-table job whose *target*
//! connection drops is run again too (its transaction rolled back, and it truncates first).
//! A range job whose target connection drops is not retried: the server may have committed
//! the COPY before the connection died, and retrying could double rows.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_postgres::Client;

use super::rows::{BatchPieces, ColumnAction, RowError, RowPlan, process_binary, process_shared};
use crate::catalog::{BinaryLayout, QualifiedName};
use crate::db::snapshot::Snapshot;
use crate::db::{DbError, quote_ident};
use crate::progress::{DataProgress, TableBar};

/// Target size of one batch handed to the transform stage.
pub const BATCH_BYTES: usize = 1 << 20;
/// Target size of one write when rows pass through untouched.
const PASS_BYTES: usize = 256 << 10;
/// Batches in flight per job (being transformed or waiting to be written).
pub const IN_FLIGHT: usize = 4;
/// Bytes of input in flight per job, at most (one bigger batch goes alone).
pub const IN_FLIGHT_BYTES: usize = IN_FLIGHT * BATCH_BYTES;
/// The most the writer hands the driver at once (COPY data need not end on a row).
pub const WRITE_PIECE: usize = 256 << 10;
/// Attempts per job when a connection drops.
const MAX_ATTEMPTS: u32 = 3;
/// Whole tables smaller than this (heap + TOAST, as planned) are loaded without `TRUNCATE`
/// and `FREEZE` on their first attempt (see the module's header).
pub const SMALL_TABLE_BYTES: u64 = 1 << 20;

/// A page range of a table, for splitting a big table: `[start, end)` pages, open-ended when
/// `end` is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageRange {
    pub start: u64,
    pub end: Option<u64>,
}

/// One unit of work.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub table: QualifiedName,
    /// The columns COPY moves, in order (generated columns excluded).
    pub columns: Vec<String>,
    pub plan: Arc<RowPlan>,
    pub range: Option<PageRange>,
    /// A condition pushed down to the source query (a sampling window), SQL.
    pub source_where: Option<String>,
    /// The job loads the whole target table (no other job writes it): truncate + freeze.
    pub whole_table: bool,
    /// The encoding rows travel in, when it is not UTF-8: the source database's (COPY's
    /// `ENCODING` option on both ends, so neither server converts a byte; the sessions and
    /// their SQL stay UTF-8). See [`crate::pg_encoding`].
    pub encoding: Option<String>,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// Rows made here instead of read from the source (`source.mode: synthetic`): the job's
    /// batches come from this, then take the same path (the row plan, COPY FROM).
    pub generated: Option<Arc<dyn RowSource>>,
    /// How each column's values read in COPY's binary format, when every one can travel in
    /// it ([`Column::binary_copy`]); whether the job's rows do is [`CopyJob::binary`]'s to
    /// say.
    ///
    /// [`Column::binary_copy`]: crate::catalog::Column::binary_copy
    pub binary_fields: Option<Arc<[BinaryLayout]>>,
}

/// A source of generated rows for a [`CopyJob`] (the seam of [`crate::synthetic`]): COPY
/// text rows, in the column order of the job, made in batches. Deterministic: the batch that
/// starts at row `start` is always the same bytes.
pub trait RowSource: Send + Sync + std::fmt::Debug {
    /// How many rows the job writes.
    fn rows(&self) -> u64;
    /// Appends rows `start..` to `out` (COPY text, each ending in `\n`) until `out` holds
    /// about `max_bytes` or the rows run out; returns how many it appended.
    fn fill(&self, start: u64, max_bytes: usize, out: &mut BytesMut) -> Result<u64, String>;
}

impl CopyJob {
    pub fn label(&self) -> String {
        match self.range {
            Some(PageRange { start, end }) => format!(
                "{} [{}..{}]",
                self.table,
                start,
                end.map(|e| e.to_string()).unwrap_or_default()
            ),
            None => self.table.to_string(),
        }
    }

    /// The layouts of the job's columns when its rows travel in COPY's binary format, not
    /// text (see the module's header): rows read from the source, in UTF-8, with no row
    /// filter, of columns that all travel in binary, where every column the row stage reads
    /// (a ruled one, or a probed one) holds its text there ([`BinaryLayout::text`]). [`run`]
    /// clears [`CopyJob::binary_fields`] when the two servers' major versions differ.
    pub fn binary(&self) -> Option<Arc<[BinaryLayout]>> {
        let layouts = self.binary_fields.as_ref()?;
        let plan = &self.plan;
        let readable = |i: usize| layouts.get(i).is_some_and(|l| *l != BinaryLayout::Opaque);
        let read = |i: usize, action: &ColumnAction| match action {
            ColumnAction::Pass => plan.check.as_ref().and_then(|c| c.scan_of(i)).is_some(),
            ColumnAction::Transform { .. } => true,
        };
        let travels = self.generated.is_none()
            && self.encoding.is_none()
            && plan.filter.is_none()
            && layouts.len() == plan.columns.len()
            && plan
                .columns
                .iter()
                .enumerate()
                .all(|(i, action)| !read(i, action) || readable(i));
        travels.then(|| layouts.clone())
    }

    fn column_list(&self) -> String {
        if self.columns.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                self.columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// `COPY ... TO STDOUT`, in text, or in binary with `binary` ([`CopyJob::binary`]).
    pub fn source_sql(&self, binary: bool) -> String {
        let mut conditions = Vec::new();
        if let Some(range) = self.range {
            conditions.push(format!("ctid >= '({},0)'::tid", range.start));
            if let Some(end) = range.end {
                conditions.push(format!("ctid < '({end},0)'::tid"));
            }
        }
        if let Some(w) = &self.source_where {
            conditions.push(format!("({w})"));
        }
        if conditions.is_empty() {
            format!(
                "COPY {}{} TO STDOUT{}",
                self.table.sql(),
                self.column_list(),
                self.options(binary)
            )
        } else {
            let select = if self.columns.is_empty() {
                String::new()
            } else {
                self.columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "COPY (SELECT {select} FROM ONLY {} WHERE {}) TO STDOUT{}",
                self.table.sql(),
                conditions.join(" AND "),
                self.options(binary)
            )
        }
    }

    /// Whether attempt `attempt` loads the table in a transaction of its own that truncates
    /// it first and writes the rows frozen: a whole table's, but a small table's only on a
    /// retry (its first attempt is a plain `COPY`; see the module's header). Generated
    /// tables always do: their planned bytes say nothing of their size.
    pub fn truncates(&self, attempt: u32) -> bool {
        self.whole_table
            && (attempt > 1
                || self.generated.is_some()
                || self.estimated_bytes >= SMALL_TABLE_BYTES)
    }

    /// `COPY ... FROM STDIN`, with `FREEZE` when `freeze` (the caller truncated the table in
    /// the same transaction: [`CopyJob::truncates`]), in binary with `binary`.
    pub fn target_sql(&self, freeze: bool, binary: bool) -> String {
        let mut options = self.option_list(binary);
        if freeze {
            options.insert(0, "FREEZE".to_string());
        }
        format!(
            "COPY {}{} FROM STDIN{}",
            self.table.sql(),
            self.column_list(),
            parenthesized(&options)
        )
    }

    /// COPY's options both ends share: the format, the encoding.
    fn option_list(&self, binary: bool) -> Vec<String> {
        let mut options = Vec::new();
        if binary {
            options.push("FORMAT binary".to_string());
        }
        if let Some(e) = &self.encoding {
            options.push(format!("ENCODING {}", crate::db::quote_literal(e)));
        }
        options
    }

    fn options(&self, binary: bool) -> String {
        parenthesized(&self.option_list(binary))
    }
}

/// ` (a, b)` for a COPY's options, empty for none.
fn parenthesized(options: &[String]) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!(" ({})", options.join(", "))
    }
}

/// What one job did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobResult {
    pub table: QualifiedName,
    pub range: Option<PageRange>,
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    pub retries: u32,
}

/// A failure of the data stage.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading {table}: {source}")]
    Source { table: String, source: DbError },
    #[error("writing {table}: {source}")]
    Target { table: String, source: DbError },
    #[error("{0}")]
    Row(#[from] RowError),
    #[error("{0}")]
    Other(String),
}

impl CopyError {
    fn retryable(&self, job: &CopyJob) -> bool {
        match self {
            CopyError::Source { source, .. } => source.is_connection_lost(),
            CopyError::Target { source, .. } => job.whole_table && source.is_connection_lost(),
            _ => false,
        }
    }
}

/// Runs all jobs with `workers` at once, biggest first. Stops everything at the first
/// failure that cannot be retried. With `done`, each job's table is sent there once the job
/// has committed its rows (a table of several jobs is sent once per job).
pub async fn run(
    mut jobs: Vec<CopyJob>,
    snapshot: Arc<Snapshot>,
    target: deadpool_postgres::Pool,
    target_server: String,
    workers: usize,
    progress: Arc<DataProgress>,
    done: Option<mpsc::UnboundedSender<QualifiedName>>,
) -> Result<Vec<JobResult>, CopyError> {
    jobs.sort_by_key(|j| std::cmp::Reverse(j.estimated_bytes));
    if jobs.iter().any(|j| j.binary_fields.is_some())
        && !same_major_version(&snapshot, &target).await
    {
        for job in &mut jobs {
            job.binary_fields = None;
        }
    }
    // Every worker imports the snapshot before any job starts (all at once, as each would at
    // its first job): from then on the workers hold the snapshot themselves, and a leader lost
    // during the copy does not stop a worker from joining it (tests/faults.rs, the leader cut
    // alone). A session that cannot be opened here is opened by its worker, with its retries.
    let workers = workers.max(1);
    let readers = jobs
        .iter()
        .filter(|j| j.generated.is_none())
        .count()
        .min(workers);
    let mut sessions: Vec<Option<Client>> =
        futures_util::future::join_all((0..readers).map(|_| snapshot.session()))
            .await
            .into_iter()
            .map(|opened| {
                opened
                    .inspect_err(|e| tracing::warn!(error = %e, "opening a source session before the copy failed; its worker opens one again inside the same snapshot"))
                    .ok()
            })
            .collect();
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let source = sessions.pop().flatten();
        let queue = queue.clone();
        let snapshot = snapshot.clone();
        let target = target.clone();
        let server = target_server.clone();
        let progress = progress.clone();
        let done = done.clone();
        set.spawn(
            async move { worker(queue, snapshot, target, server, progress, done, source).await },
        );
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(mut r)) => results.append(&mut r),
            Ok(Err(e)) => {
                // Dropping the other workers aborts their COPYs (an unfinished COPY IN is
                // aborted by the driver) so nothing half-written is committed.
                set.abort_all();
                return Err(e);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                set.abort_all();
                return Err(CopyError::Other(format!("a copy worker failed: {e}")));
            }
        }
    }
    Ok(results)
}

/// True when the target server runs the source's major version, so that rows can travel in
/// binary (PostgreSQL promises binary COPY data to no other version). Asked once a run; a
/// target that cannot be asked is taken as another version (its jobs then fail or succeed
/// in text, on their own connections, with their own errors).
async fn same_major_version(snapshot: &Snapshot, target: &deadpool_postgres::Pool) -> bool {
    let Ok(client) = target.get().await else {
        return false;
    };
    match client.query_one("SHOW server_version_num", &[]).await {
        Ok(row) => {
            let target: Option<i32> = row.get::<_, String>(0).trim().parse().ok();
            target.is_some_and(|t| t / 10000 == snapshot.server_version() / 10000)
        }
        Err(_) => false,
    }
}

async fn worker(
    queue: Arc<Mutex<VecDeque<CopyJob>>>,
    snapshot: Arc<Snapshot>,
    target: deadpool_postgres::Pool,
    target_server: String,
    progress: Arc<DataProgress>,
    done: Option<mpsc::UnboundedSender<QualifiedName>>,
    mut source: Option<Client>,
) -> Result<Vec<JobResult>, CopyError> {
    let mut results = Vec::new();
    loop {
        let Some(job) = queue.lock().await.pop_front() else {
            break;
        };
        let bar = progress.table(&job.label(), job.estimated_rows);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if source.as_ref().is_none_or(|c| c.is_closed()) {
                match snapshot.session().await {
                    Ok(session) => source = Some(session),
                    Err(e) => {
                        let e = CopyError::Source {
                            table: job.label(),
                            source: e,
                        };
                        // A connection lost while opening the session is retried like one
                        // lost mid-COPY; a snapshot that cannot be imported any more is not.
                        if attempt < MAX_ATTEMPTS && e.retryable(&job) && snapshot.is_alive() {
                            tracing::warn!(table = %job.label(), attempt, error = %e, "connection lost opening a source session; trying again inside the same snapshot");
                            tokio::time::sleep(Duration::from_millis(250 * attempt as u64)).await;
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
            let Some(src) = source.as_ref() else { break };
            let started = Instant::now();
            let servers = Servers {
                source: &snapshot.endpoint().display,
                target: &target_server,
            };
            match copy_one(src, &target, servers, &job, attempt, &bar).await {
                Ok(mut r) => {
                    r.seconds = started.elapsed().as_secs_f64();
                    r.retries = attempt - 1;
                    if let Some(done) = &done {
                        // The receiver may be gone (its build failed): the run stops anyway.
                        let _ = done.send(job.table.clone());
                    }
                    results.push(r);
                    break;
                }
                Err(e) if attempt < MAX_ATTEMPTS && e.retryable(&job) && snapshot.is_alive() => {
                    tracing::warn!(table = %job.label(), attempt, error = %e, "connection lost; copying the table again inside the same snapshot");
                    // A fresh source session either way: the old one may be mid-COPY.
                    source = None;
                    tokio::time::sleep(Duration::from_millis(250 * attempt as u64)).await;
                }
                Err(e) => return Err(explain_lock_wait(e, &snapshot, &job).await),
            }
        }
        bar.finish();
    }
    Ok(results)
}

/// A batch on its way to the target: ready bytes, or a transform running on rayon; with its
/// share of the job's [`IN_FLIGHT_BYTES`], given back once it is written.
enum Pending {
    Ready {
        data: Bytes,
        rows: u64,
        _budget: OwnedSemaphorePermit,
    },
    Transforming(
        oneshot::Receiver<Result<BatchPieces, RowError>>,
        OwnedSemaphorePermit,
    ),
}

/// The permits of the in-flight budget (one per KiB) a batch of `len` bytes takes: its size,
/// or the whole budget for a bigger one.
fn budget_share(len: usize) -> u32 {
    (len.div_ceil(1024)).clamp(1, IN_FLIGHT_BYTES / 1024) as u32
}

/// Server names for errors.
#[derive(Clone, Copy)]
struct Servers<'a> {
    source: &'a str,
    target: &'a str,
}

/// A source COPY that waited `lock_timeout` for its table's lock: the session it queued
/// behind is one waiting for ACCESS EXCLUSIVE (restage's leader holds ACCESS SHARE, so no one
/// can hold more): say so, and who.
async fn explain_lock_wait(e: CopyError, snapshot: &Snapshot, job: &CopyJob) -> CopyError {
    let CopyError::Source { source, .. } = &e else {
        return e;
    };
    if source.code() != Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        return e;
    }
    let who = snapshot.conflicts(&job.table.sql()).await;
    let who = if who.is_empty() {
        "a session that wanted an ACCESS EXCLUSIVE lock on it".to_string()
    } else {
        who
    };
    let timeout = snapshot.lock_timeout();
    CopyError::Other(format!(
        "{}: source table {} could not be read within {:?} (lock_timeout): its read queued behind {who}, which itself waits for the lock restage holds on the table until it is copied (a migration? give it a lock_timeout); staging is unchanged",
        snapshot.endpoint().display,
        job.table,
        timeout
    ))
}

async fn copy_one(
    source: &Client,
    target: &deadpool_postgres::Pool,
    servers: Servers<'_>,
    job: &CopyJob,
    attempt: u32,
    bar: &TableBar,
) -> Result<JobResult, CopyError> {
    let client = target.get().await.map_err(|e| CopyError::Target {
        table: job.label(),
        source: match e {
            deadpool_postgres::PoolError::Backend(e) => {
                DbError::new(servers.target, "connecting to the new database", e)
            }
            other => DbError::other(
                servers.target,
                format!("connecting to the new database: {other}"),
            ),
        },
    })?;
    let result = copy_with(source, &client, servers, job, attempt, bar).await;
    if result.is_err() {
        // The session may be inside the job's failed transaction (or an aborted COPY): it
        // must not go back to the pool, where the retry or the next job would get it and
        // fail with "current transaction is aborted". Closing it rolls back on the server.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn copy_with(
    source: &Client,
    client: &Client,
    servers: Servers<'_>,
    job: &CopyJob,
    attempt: u32,
    bar: &TableBar,
) -> Result<JobResult, CopyError> {
    let truncates = job.truncates(attempt);
    let layouts = job.binary();
    let binary = layouts.is_some();
    let label = job.label();
    tracing::debug!(table = %label, format = if binary { "binary" } else { "text" }, "rows travel");
    let target_server = servers.target;
    let tgt_err = |context: &str, e: tokio_postgres::Error| CopyError::Target {
        table: label.clone(),
        source: DbError::new(target_server, context, e),
    };
    let src_err = |context: &str, e: tokio_postgres::Error| CopyError::Source {
        table: label.clone(),
        source: DbError::new(servers.source, context, e),
    };
    // Both ends start at once: a small table's copy is mostly these round trips (issue 14,
    // many small tables), and neither end waits for the other's. A source COPY started for a
    // target that then fails is dropped with the job (the retry takes a fresh session).
    let start_target = async {
        if truncates {
            client
                .batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", job.table.sql()))
                .await
                .map_err(|e| tgt_err("preparing the table", e))?;
        }
        client
            .copy_in::<_, Bytes>(&job.target_sql(truncates, binary))
            .await
            .map_err(|e| tgt_err("starting COPY FROM", e))
    };
    let start_source = async {
        match &job.generated {
            Some(_) => Ok(None),
            None => source
                .copy_out(&job.source_sql(binary))
                .await
                .map(Some)
                .map_err(|e| src_err("starting COPY TO", e)),
        }
    };
    let (sink, stream) = tokio::try_join!(start_target, start_source)?;

    let (tx, mut rx) = mpsc::channel::<Pending>(IN_FLIGHT);
    let passthrough = job.plan.is_passthrough();
    let plan = job.plan.clone();
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES / 1024));

    let reader = async {
        let mut stream = stream.map(Box::pin);
        let mut buffer =
            BytesMut::with_capacity(if passthrough { PASS_BYTES } else { BATCH_BYTES } + 64 * 1024);
        let mut rows_in_buffer = 0u64;
        let mut rows_read = 0u64;
        let mut bytes_read = 0u64;
        let limit = if passthrough { PASS_BYTES } else { BATCH_BYTES };
        // Takes the batch's share of the budget (waiting for earlier batches to be
        // written), then starts it: ready bytes, or a transform on rayon.
        let send = |data: Bytes, rows: u64| {
            let budget = budget.clone();
            let plan = plan.clone();
            let layouts = layouts.clone();
            async move {
                let permit = budget
                    .acquire_many_owned(budget_share(data.len()))
                    .await
                    .map_err(|_| CopyError::Other("the copy's memory budget closed".into()))?;
                Ok::<_, CopyError>(if passthrough {
                    Pending::Ready {
                        data,
                        rows,
                        _budget: permit,
                    }
                } else {
                    let (done, receiver) = oneshot::channel();
                    rayon::spawn(move || {
                        let _ = done.send(match &layouts {
                            Some(layouts) => process_binary(&plan, layouts, &data),
                            None => process_shared(&plan, &data),
                        });
                    });
                    Pending::Transforming(receiver, permit)
                })
            }
        };
        if let Some(generator) = &job.generated {
            let made =
                generated_batches(generator.clone(), limit_of(passthrough), &tx, &send).await;
            drop(tx);
            return made;
        }
        let Some(stream) = stream.as_mut() else {
            return Ok((0, 0));
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| src_err("reading rows", e))?;
            // Each CopyData message of COPY TO is exactly one row (in binary, but for the
            // trailer: see below).
            rows_read += 1;
            bytes_read += chunk.len() as u64;
            if chunk.len() >= limit {
                // A big row is a batch of its own, the driver's buffer as it is: copying it
                // into ours would hold it twice. The rows gathered before it go first.
                if !buffer.is_empty() {
                    let before = send(buffer.split().freeze(), rows_in_buffer).await?;
                    if tx.send(before).await.is_err() {
                        return Ok((rows_read, bytes_read));
                    }
                    rows_in_buffer = 0;
                }
                if tx.send(send(chunk, 1).await?).await.is_err() {
                    return Ok((rows_read, bytes_read));
                }
                continue;
            }
            rows_in_buffer += 1;
            buffer.extend_from_slice(&chunk);
            if buffer.len() >= limit {
                let full = send(buffer.split().freeze(), rows_in_buffer).await?;
                if tx.send(full).await.is_err() {
                    // The writer stopped (and will report why).
                    return Ok((rows_read, bytes_read));
                }
                rows_in_buffer = 0;
            }
        }
        if binary {
            // The last message of a binary COPY is its trailer, not a row (and the first
            // row's message also holds the header). The trailer is 2 bytes, so it is in the
            // buffer.
            rows_read = rows_read.saturating_sub(1);
            rows_in_buffer = rows_in_buffer.saturating_sub(1);
        }
        if !buffer.is_empty() {
            let last = send(buffer.split().freeze(), rows_in_buffer).await?;
            let _ = tx.send(last).await;
        }
        drop(tx);
        Ok::<_, CopyError>((rows_read, bytes_read))
    };

    let writer = async {
        let mut sink = std::pin::pin!(sink);
        let mut rows_written = 0u64;
        let mut bytes_written = 0u64;
        while let Some(pending) = rx.recv().await {
            // The budget's share is held until the batch is written (dropped at the end of
            // the iteration).
            let (pieces, rows_in, rows_out, _budget) = match pending {
                Pending::Ready {
                    data,
                    rows,
                    _budget,
                } => (vec![data], rows, rows, _budget),
                Pending::Transforming(receiver, budget) => {
                    let out = receiver.await.map_err(|_| {
                        CopyError::Other(format!("{label}: a transform worker stopped"))
                    })??;
                    (out.pieces, out.rows_in, out.rows_out, budget)
                }
            };
            let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
            for piece in pieces {
                // At most WRITE_PIECE at a time: the driver copies what it is given into its
                // write buffer.
                let mut at = 0;
                while at < piece.len() {
                    let end = (at + WRITE_PIECE).min(piece.len());
                    sink.feed(piece.slice(at..end))
                        .await
                        .map_err(|e| tgt_err("writing rows", e))?;
                    at = end;
                }
            }
            if len > 0 {
                sink.flush().await.map_err(|e| tgt_err("writing rows", e))?;
            }
            rows_written += rows_out;
            bytes_written += len;
            bar.advance(rows_in, len);
            if len > 0 {
                super::pause::point("data").await;
            }
        }
        let written = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| tgt_err("finishing COPY FROM", e))?;
        // The server's own count of the rows it stored is the count check of the load: a
        // mismatch means rows were lost or doubled on the way, and the run stops here.
        if written != rows_written {
            return Err(CopyError::Other(format!(
                "{label}: the server stored {written} rows where {rows_written} were sent"
            )));
        }
        Ok::<_, CopyError>((rows_written, bytes_written))
    };

    let ((rows_read, bytes_read), (rows_written, bytes_written)) =
        tokio::try_join!(reader, writer)?;
    if truncates {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| tgt_err("committing the table", e))?;
    }
    Ok(JobResult {
        table: job.table.clone(),
        range: job.range,
        rows_read,
        rows_written,
        bytes_read,
        bytes_written,
        seconds: 0.0,
        retries: 0,
    })
}

fn limit_of(passthrough: bool) -> usize {
    if passthrough { PASS_BYTES } else { BATCH_BYTES }
}

/// The reader of a generated job: batches made on the rayon pool, one ahead, sent on like
/// the batches read from the source. Returns the rows and bytes made.
async fn generated_batches<F, Fut>(
    generator: Arc<dyn RowSource>,
    limit: usize,
    tx: &mpsc::Sender<Pending>,
    send: &F,
) -> Result<(u64, u64), CopyError>
where
    F: Fn(Bytes, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Pending, CopyError>>,
{
    let total = generator.rows();
    let make = |start: u64| {
        let generator = generator.clone();
        let (done, receiver) = oneshot::channel();
        rayon::spawn(move || {
            let mut out = BytesMut::with_capacity(limit + 64 * 1024);
            let made = generator
                .fill(start, limit, &mut out)
                .map(|n| (n, out.freeze()));
            let _ = done.send(made);
        });
        receiver
    };
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut next = (total > 0).then(|| make(0));
    while let Some(receiver) = next.take() {
        let (n, data) = receiver
            .await
            .map_err(|_| CopyError::Other("a generator worker stopped".into()))?
            .map_err(CopyError::Other)?;
        if n == 0 {
            break;
        }
        rows += n;
        bytes += data.len() as u64;
        if rows < total {
            next = Some(make(rows));
        }
        if tx.send(send(data, n).await?).await.is_err() {
            break;
        }
    }
    Ok((rows, bytes))
}

/// Splits `pages` into about `parts` ranges; the last one is open-ended so rows on pages added
/// since the size was read are not missed.
pub fn page_ranges(pages: u64, parts: u64) -> Vec<PageRange> {
    let parts = parts.max(1);
    if parts == 1 || pages < parts {
        return vec![PageRange {
            start: 0,
            end: None,
        }];
    }
    let step = pages.div_ceil(parts);
    let mut out = Vec::new();
    let mut start = 0;
    while start + step < pages {
        out.push(PageRange {
            start,
            end: Some(start + step),
        });
        start += step;
    }
    out.push(PageRange { start, end: None });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::rows::ColumnAction;

    #[test]
    fn ranges_cover_everything() {
        assert_eq!(
            page_ranges(10, 1),
            vec![PageRange {
                start: 0,
                end: None
            }]
        );
        let r = page_ranges(100, 4);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            PageRange {
                start: 0,
                end: Some(25)
            }
        );
        assert_eq!(
            r[3],
            PageRange {
                start: 75,
                end: None
            }
        );
        for w in r.windows(2) {
            assert_eq!(w[0].end, Some(w[1].start));
        }
    }

    #[test]
    fn sql_for_jobs() {
        let plan = Arc::new(RowPlan {
            table: QualifiedName::new("public", "T x"),
            columns: vec![ColumnAction::Pass, ColumnAction::Pass],
            filter: None,
            encoding: Default::default(),
            check: None,
        });
        let mut job = CopyJob {
            table: QualifiedName::new("public", "T x"),
            columns: vec!["id".into(), "Name".into()],
            plan,
            range: None,
            source_where: None,
            whole_table: true,
            encoding: None,
            estimated_rows: 0,
            estimated_bytes: 0,
            generated: None,
            binary_fields: None,
        };
        assert_eq!(
            job.source_sql(false),
            "COPY \"public\".\"T x\" (\"id\", \"Name\") TO STDOUT"
        );
        assert_eq!(
            job.target_sql(job.whole_table, false),
            "COPY \"public\".\"T x\" (\"id\", \"Name\") FROM STDIN (FREEZE)"
        );
        job.range = Some(PageRange {
            start: 5,
            end: Some(9),
        });
        job.whole_table = false;
        assert_eq!(
            job.source_sql(false),
            "COPY (SELECT \"id\", \"Name\" FROM ONLY \"public\".\"T x\" WHERE ctid >= '(5,0)'::tid AND ctid < '(9,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            job.target_sql(job.whole_table, false),
            "COPY \"public\".\"T x\" (\"id\", \"Name\") FROM STDIN"
        );
        job.encoding = Some("LATIN1".into());
        assert!(
            job.source_sql(false)
                .ends_with(") TO STDOUT (ENCODING 'LATIN1')")
        );
        assert!(
            job.target_sql(job.whole_table, false)
                .ends_with(" FROM STDIN (ENCODING 'LATIN1')")
        );
        job.whole_table = true;
        assert!(
            job.target_sql(job.whole_table, false)
                .ends_with(" FROM STDIN (FREEZE, ENCODING 'LATIN1')")
        );
    }

    /// Only a whole table truncates (and freezes); a small one only when it is retried; a
    /// generated one always (its planned bytes are no size).
    #[test]
    fn small_tables_truncate_only_on_a_retry() {
        let plan = Arc::new(RowPlan {
            table: QualifiedName::new("public", "t"),
            columns: vec![ColumnAction::Pass],
            filter: None,
            encoding: Default::default(),
            check: None,
        });
        let mut job = CopyJob {
            table: QualifiedName::new("public", "t"),
            columns: vec!["id".into()],
            plan,
            range: None,
            source_where: None,
            whole_table: true,
            encoding: None,
            estimated_rows: 10,
            estimated_bytes: 8192,
            generated: None,
            binary_fields: None,
        };
        assert!(!job.truncates(1));
        assert!(job.truncates(2));
        assert_eq!(
            job.target_sql(job.truncates(1), false),
            "COPY \"public\".\"t\" (\"id\") FROM STDIN"
        );
        job.estimated_bytes = SMALL_TABLE_BYTES;
        assert!(job.truncates(1));
        job.whole_table = false;
        assert!(!job.truncates(1) && !job.truncates(3));
    }
}
