//! `restage dump`: refresh's plan stage (snapshot, catalog, rules, strict mode, the sample
//! plan, the copy jobs: [`crate::refresh::plan`]), then an archive instead of a database:
//!
//! 1. the run's area ([`Partial::begin`]): a folder `DIR/.partial-<run>` (partial folders of
//!    dead runs removed first; nothing else in `DIR` is touched until step 5), or the prefix
//!    `s3://bucket/prefix/restage-<run>/`;
//! 2. the schema: pg_dump's custom-format archive, pre- and post-data, as refresh takes it
//!    ([`schema::dump`]);
//! 3. the data: every copy job (a table, or a ctid range of a big one) streamed from the
//!    snapshot through the rules ([`process_shared`]), compressed with zstd into a part
//!    `data/NNNNN.copy.zst`, hashed as it is written, `jobs` parts at once (on S3, uploaded as
//!    it is written: a multipart upload once a part is bigger than one piece); the rows written
//!    are checked as they go by refresh's stream verification ([`verify::sample_source`],
//!    [`verify::StreamVerifier`]: the unchanged-value check of every ruled column and the
//!    leak probe of every text-like output column);
//! 4. the verification: a leak is exit 3 and the run's area is removed (on S3: its unfinished
//!    uploads aborted, the objects it wrote deleted): nothing is published;
//! 5. the manifest written last, atomically ([`Partial::publish`]), the folder fsynced and
//!    renamed to `DIR/restage-<run>` (on S3 the manifest's PUT is the publication);
//! 6. retention: the oldest archives beyond `keep` removed — only those whose manifest says
//!    restage wrote them.
//!
//! Any failure after step 1 (an error, a leak, SIGINT/SIGTERM) removes the run's area and
//! only it.
//!
//! What a dump does not do that a refresh does: `max_storage` (it measures the restored
//! database; a dump has none: a warning says so), the NOT VALID foreign-key check (the
//! restore's verification does it, on the restored data).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::DumpArgs;
use super::crypt::{ArchiveKey, Sealing, Sink};
use super::manifest::{self, FileEntry, Hashing, Manifest, PartEntry, SequenceEntry, TableEntry};
use super::store::{Out, Partial, Pending, Store};
use crate::catalog::QualifiedName;
use crate::config::Config;
use crate::db::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::progress::{Stage, Ui};
use crate::refresh::copy::{BATCH_BYTES, CopyJob};
use crate::refresh::rows::{RowError, process_shared};
use crate::refresh::schema::{self, PgTools};
use crate::refresh::verify::{self, StreamVerifier, VerifyReport};
use crate::refresh::{Settings, sequences, source_database};

/// The zstd level when `dump.level` does not say.
pub const DEFAULT_LEVEL: i32 = 3;
/// Archives kept when `dump.keep` does not say.
pub const DEFAULT_KEEP: u32 = 3;

/// What `restage dump` reports.
#[derive(Debug, serde::Serialize)]
pub struct DumpReport {
    pub archive: String,
    pub source: String,
    pub snapshot: String,
    pub snapshot_at: Option<String>,
    pub tables: usize,
    pub parts: usize,
    pub rows: u64,
    pub text_bytes: u64,
    pub archive_bytes: u64,
    pub seconds: f64,
    pub verification: VerifyReport,
    pub archives_removed: Vec<String>,
    /// Partial folders of dead (killed) dumps removed before this one started.
    pub partials_removed: Vec<String>,
    pub warnings: Vec<String>,
}

impl DumpReport {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "archive {} written: {} tables, {} parts, {} rows, {} bytes of COPY text in {} bytes, {:.1} s\nsource {} snapshot {}{}\nverification passed: {} source values checked against {} values written\n",
            self.archive,
            self.tables,
            self.parts,
            self.rows,
            self.text_bytes,
            self.archive_bytes,
            self.seconds,
            self.source,
            self.snapshot,
            self.snapshot_at
                .as_ref()
                .map(|t| format!(" (taken {t})"))
                .unwrap_or_default(),
            self.verification.leak_values_checked,
            self.verification.staging_values_scanned,
        );
        for removed in &self.archives_removed {
            out.push_str(&format!("removed old archive {removed}\n"));
        }
        for removed in &self.partials_removed {
            out.push_str(&format!(
                "removed the partial archive of a dead run {removed}\n"
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

/// The settings of a dump: refresh's, with `target:` optional (a production-side dump job
/// has no staging server). Without one, the target below is never connected to: the plan
/// stage reads only the source.
fn settings(config: &Config) -> Result<Settings> {
    if config.file.target.is_some() {
        return Settings::from_config(config, "dump");
    }
    let source = config.source("dump")?;
    Ok(Settings {
        target: crate::refresh::settings::TargetSettings {
            admin: source.clone(),
            database: String::new(),
            keep: 0,
            grants: vec![],
            adopt: false,
            lock_timeout: config.lock_timeout(),
            settings: Default::default(),
        },
        source,
        jobs: config.jobs(),
        lock_timeout: config.lock_timeout(),
        rules: crate::refresh::settings::RulesSettings::from_config(config, "dump")?,
        search: crate::refresh::settings::SearchSettings::from_config(config)?,
        split_bytes: crate::refresh::settings::split_bytes(),
        cache: None,
        sample: crate::plan::SampleSettings::from_config(config)?,
        // A dump reads production: `source.mode: synthetic` is `restage generate`'s.
        synthetic: None,
    })
}

/// `restage dump`.
pub async fn run(config: &Config, args: &DumpArgs, ui: &Ui) -> Result<DumpReport> {
    let started = Instant::now();
    let section = config.file.dump.as_ref();
    let location = args
        .to
        .clone()
        .or_else(|| section.and_then(|d| d.destination.clone()))
        .ok_or_else(|| {
            Error::Usage(
                "restage dump: no destination: give --to DIR|s3://bucket/prefix or dump.destination (nothing was changed)"
                    .into(),
            )
        })?;
    let keep = args
        .keep
        .or_else(|| section.and_then(|d| d.keep))
        .unwrap_or(DEFAULT_KEEP);
    if keep == 0 {
        return Err(Error::Usage(
            "dump.keep: 0 would remove the archive just written; at least 1 (nothing was changed)"
                .into(),
        ));
    }
    let level = section.and_then(|d| d.level).unwrap_or(DEFAULT_LEVEL);
    if !(1..=19).contains(&level) {
        return Err(Error::Usage(format!(
            "dump.level: {level} is not a zstd level from 1 to 19 (nothing was changed)"
        )));
    }
    let destination = Store::parse(&location, "the dump's destination")?;
    let settings = settings(config)?;
    let sealing = super::crypt::sealing(config)?;
    let key = sealing.as_ref().map(|_| Arc::new(ArchiveKey::generate()));
    let rules_digest =
        crate::rules::RuleSet::load(&config.rules_path(), config.file.rules.is_none())
            .ok()
            .map(|r| r.digest());
    let mut shutdown = crate::signal::Shutdown::new()
        .map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;

    let stage = Stage::start(ui, "plan");
    let prepared = crate::refresh::plan(&settings, args.allow_unclassified).await?;
    let snapshot_at = crate::refresh::snapshot_time(&prepared)
        .await
        .map(|t| t.to_rfc3339());
    let server_version = prepared.catalog.server_version;
    let source_db = source_database::read(
        prepared.snapshot.leader(),
        &settings.source.display,
        server_version,
    )
    .await?;
    let tools = PgTools::find(server_version / 10000).await?;
    stage.done();
    let mut warnings = prepared.warnings.clone();
    if settings.sample.storage.is_some() {
        warnings.push(
            "sample.max_storage is not applied by dump (it measures the restored database); the sample plan is"
                .into(),
        );
    }

    let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ").to_string();
    let (mut partial, cleaned) = Partial::begin(&destination, &run_id).await?;
    warnings.extend(cleaned.warnings);
    let context = Context {
        settings: &settings,
        prepared: &prepared,
        tools: &tools,
        sealing: sealing.as_ref(),
        key: key.clone(),
        level,
        area: partial.area.clone(),
        ui,
    };
    // A signal stops the parts at their next batch (their uploads aborted), then the area
    // is removed: waited for at most 60 s.
    let stop = Arc::new(AtomicBool::new(false));
    let work = write_archive(&context, stop.clone());
    tokio::pin!(work);
    let written = tokio::select! {
        written = &mut work => written,
        signal = shutdown.wait() => {
            stop.store(true, Ordering::Relaxed);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), &mut work).await;
            Err(Error::Interrupted {
                signal,
                outcome: format!(
                    "nothing was published (the unfinished archive in {} was removed)",
                    destination.display()
                ),
            })
        }
    };
    let (schema_entry, key_entry, has_servers, sequence_values, verification, tables) =
        match written {
            Ok(w) => w,
            Err(e) => {
                partial.discard().await;
                return Err(e);
            }
        };
    if !verification.passed {
        partial.discard().await;
        return Err(Error::Verify(format!(
            "{}; no archive was published (nothing written to {})",
            verification.summary(),
            destination.display()
        )));
    }

    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        restage_version: env!("CARGO_PKG_VERSION").into(),
        run: run_id.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        source: settings.source.display.clone(),
        snapshot: prepared.snapshot.id.clone(),
        snapshot_at: snapshot_at.clone(),
        rules_digest,
        server_version,
        database: source_db,
        foreign_servers: has_servers,
        schema: schema_entry,
        encryption: key.as_ref().map(|_| "age".to_string()),
        key: key_entry,
        sequences: sequence_values
            .iter()
            .map(|s| SequenceEntry {
                schema: s.name.schema.clone(),
                name: s.name.name.clone(),
                last_value: s.last_value,
                is_called: s.is_called,
            })
            .collect(),
        tables,
        verification: serde_json::to_value(&verification).unwrap_or_default(),
        warnings: warnings.clone(),
    };
    // Last: an archive with a manifest is complete.
    let published = match partial.publish(&manifest).await {
        Ok(published) => published,
        Err(e) => {
            partial.discard().await;
            return Err(e);
        }
    };

    let archives_removed = match retain(&destination, keep).await {
        Ok(removed) => removed,
        Err(e) => {
            warnings.push(format!("old archives were not removed: {e}"));
            vec![]
        }
    };
    let parts: usize = manifest.tables.iter().map(|t| t.parts.len()).sum();
    let (text_bytes, archive_bytes) = manifest
        .tables
        .iter()
        .flat_map(|t| &t.parts)
        .fold((0, manifest.schema.bytes), |(t, a), p| {
            (t + p.text_bytes, a + p.file.bytes)
        });
    Ok(DumpReport {
        archive: published.display(),
        source: manifest.source.clone(),
        snapshot: manifest.snapshot.clone(),
        snapshot_at,
        tables: manifest.tables.len(),
        parts,
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        text_bytes,
        archive_bytes,
        seconds: started.elapsed().as_secs_f64(),
        verification,
        archives_removed,
        partials_removed: cleaned.removed,
        warnings,
    })
}

/// What writing the archive needs.
struct Context<'a> {
    settings: &'a Settings,
    prepared: &'a crate::refresh::Prepared,
    tools: &'a PgTools,
    sealing: Option<&'a Sealing>,
    key: Option<Arc<ArchiveKey>>,
    level: i32,
    area: Store,
    ui: &'a Ui,
}

type Written = (
    FileEntry,
    Option<FileEntry>,
    bool,
    Vec<sequences::SequenceValue>,
    VerifyReport,
    Vec<TableEntry>,
);

/// Steps 2 and 3: the schema, the key, the parts, into the run's area; the verification of
/// the rows written.
async fn write_archive(cx: &Context<'_>, stop: Arc<AtomicBool>) -> Result<Written> {
    let (settings, prepared) = (cx.settings, cx.prepared);
    let stage = Stage::start(cx.ui, "schema");
    let archive = schema::dump(
        cx.tools,
        &settings.source,
        &prepared.snapshot.id,
        settings.lock_timeout,
    )
    .await?;
    let schema_entry = write_file(&cx.area, manifest::SCHEMA, cx.key.as_deref(), |sink| {
        std::io::copy(&mut std::fs::File::open(archive.path())?, sink).map(drop)
    })
    .await?;
    let key_entry = match (cx.sealing, &cx.key) {
        (Some(sealing), Some(key)) => {
            let sealed = key.sealed(sealing)?;
            Some(
                write_file(&cx.area, manifest::KEY, None, |sink| {
                    sink.write_all(&sealed)
                })
                .await?,
            )
        }
        _ => None,
    };
    stage.done();

    let sequence_values = sequences::read(
        prepared.snapshot.leader(),
        &settings.source.display,
        &prepared.catalog.sequences,
    )
    .await?;
    let probe = verify::sample_source(
        prepared.snapshot.leader(),
        &settings.source.display,
        &prepared.catalog,
        &prepared.rules,
    )
    .await?;
    let verifier: Arc<StreamVerifier> =
        StreamVerifier::new(probe, &prepared.catalog, &prepared.rules);

    let stage = Stage::start(cx.ui, "data");
    // Each job's row plan takes its table's checks, as refresh's data stage does.
    let jobs: Vec<(usize, CopyJob)> = prepared
        .jobs
        .iter()
        .cloned()
        .map(|mut job| {
            let mut plan = (*job.plan).clone();
            plan.check = verifier.table(&job.table);
            job.plan = Arc::new(plan);
            job
        })
        .enumerate()
        .collect();
    let written = write_parts(
        jobs,
        prepared.snapshot.clone(),
        &cx.area,
        settings.jobs,
        cx.level,
        cx.key.clone(),
        stop,
    )
    .await?;
    stage.done();

    let mut verification = verifier.report();
    let mut tables: Vec<TableEntry> = Vec::new();
    let mut by_name: std::collections::BTreeMap<QualifiedName, usize> = Default::default();
    for (job, part) in written {
        let i = *by_name.entry(job.table.clone()).or_insert_with(|| {
            tables.push(TableEntry {
                schema: job.table.schema.clone(),
                name: job.table.name.clone(),
                columns: job.columns.clone(),
                encoding: job.encoding.clone(),
                rows: 0,
                parts: vec![],
            });
            tables.len() - 1
        });
        tables[i].rows += part.rows;
        tables[i].parts.push(part);
    }
    verification.notes.push(
        "foreign keys are checked by restore (the constraints are validated as they are created)"
            .into(),
    );
    Ok((
        schema_entry,
        key_entry,
        archive.has_servers,
        sequence_values,
        verification,
        tables,
    ))
}

/// Writes a file of the archive (through the archive's key when there is one), made durable
/// (fsynced, or uploaded); returns its entry (size and SHA-256 of the bytes stored).
async fn write_file(
    area: &Store,
    name: &str,
    key: Option<&ArchiveKey>,
    fill: impl FnOnce(&mut Sink<Hashing<Out>>) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let (out, pending) = area.create(name)?;
    let what = area.display_file(name);
    let written = (|| {
        let mut sink = Sink::new(key, Hashing::new(out))?;
        fill(&mut sink)?;
        Ok::<_, std::io::Error>(sink.finish()?.finish())
    })();
    let (out, sha256, bytes) = match written {
        Ok(w) => w,
        Err(e) => {
            pending.abort().await;
            return Err(Error::io(format!("writing {what}"), e));
        }
    };
    pending.complete(out, &what).await?;
    Ok(FileEntry {
        file: name.to_string(),
        bytes,
        sha256,
    })
}

/// Removes the oldest archives restage wrote beyond `keep`; returns where they were.
async fn retain(destination: &Store, keep: u32) -> Result<Vec<String>> {
    let found = destination.archives().await?;
    let beyond = found.len().saturating_sub(keep as usize);
    let mut removed = Vec::new();
    for (_, archive) in found.into_iter().take(beyond) {
        // The manifest first: an archive half removed is no longer taken for one.
        archive.remove(manifest::MANIFEST).await?;
        archive.remove_all().await?;
        removed.push(archive.display());
    }
    Ok(removed)
}

/// One part being written: the compressor over the hashed output, the counts.
struct PartState {
    encoder: zstd::Encoder<'static, Sink<Hashing<Out>>>,
    rows: u64,
    text_bytes: u64,
}

impl PartState {
    /// Transforms and checks one batch (unless the job passes rows through), compresses it.
    fn batch(&mut self, job: &CopyJob, data: Bytes, rows_in: u64) -> Result<(), BatchError> {
        let (pieces, rows_out) = if job.plan.is_passthrough() {
            (vec![data], rows_in)
        } else {
            let out = process_shared(&job.plan, &data)?;
            (out.pieces, out.rows_out)
        };
        let joined;
        let text: &[u8] = if pieces.len() == 1 {
            &pieces[0]
        } else {
            joined = pieces.concat();
            &joined
        };
        self.encoder.write_all(text)?;
        self.text_bytes += text.len() as u64;
        self.rows += rows_out;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("{0}")]
    Row(#[from] RowError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes every job's part, `workers` at once, biggest first; returns each job with its part
/// (the rows were checked by the stream verifier of its row plan). At the first failure (or
/// when `stop` is raised from outside: a signal) the workers stop at their next batch and abandon their part (an S3 upload aborted), so
/// that nothing is left half uploaded; the first error is returned.
async fn write_parts(
    mut jobs: Vec<(usize, CopyJob)>,
    snapshot: Arc<Snapshot>,
    area: &Store,
    workers: usize,
    level: i32,
    key: Option<Arc<ArchiveKey>>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<(CopyJob, PartEntry)>> {
    jobs.sort_by_key(|(_, j)| std::cmp::Reverse(j.estimated_bytes));
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let snapshot = snapshot.clone();
        let area = area.clone();
        let key = key.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(None);
                }
                let Some((i, job)) = queue.lock().await.pop_front() else {
                    break;
                };
                let file = format!("{}/{i:05}.copy.zst", manifest::DATA);
                match write_part(&snapshot, &job, &area, file, level, key.as_deref(), &stop).await {
                    Ok(part) => done.push((job, part)),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok::<_, Option<Error>>(done)
        });
    }
    let mut results = Vec::new();
    let mut first: Option<Error> = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(mut r)) => results.append(&mut r),
            Ok(Err(Some(e))) => {
                stop.store(true, Ordering::Relaxed);
                first.get_or_insert(e);
            }
            Ok(Err(None)) => {}
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first.get_or_insert(Error::Runtime(format!("a dump worker failed: {e}")));
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None if stop.load(Ordering::Relaxed) => Err(Error::Runtime(
            "the dump was stopped before its parts were written".into(),
        )),
        None => Ok(results),
    }
}

/// Streams one job from the snapshot into its part; abandons it (an upload aborted) when it
/// fails or when `stop` is raised by another worker's failure.
async fn write_part(
    snapshot: &Snapshot,
    job: &CopyJob,
    area: &Store,
    file: String,
    level: i32,
    key: Option<&ArchiveKey>,
    stop: &AtomicBool,
) -> Result<PartEntry, Option<Error>> {
    let (out, mut pending) = area.create(&file).map_err(Some)?;
    let what = area.display_file(&file);
    match fill_part(snapshot, job, out, &mut pending, &what, level, key, stop).await {
        Ok((out, rows, text_bytes, sha256, bytes)) => {
            pending.complete(out, &what).await.map_err(Some)?;
            Ok(PartEntry {
                file: FileEntry {
                    file,
                    bytes,
                    sha256,
                },
                rows,
                text_bytes,
            })
        }
        Err(e) => {
            pending.abort().await;
            Err(e)
        }
    }
}

type Filled = (Out, u64, u64, String, u64);

#[allow(clippy::too_many_arguments)]
async fn fill_part(
    snapshot: &Snapshot,
    job: &CopyJob,
    out: Out,
    pending: &mut Pending,
    what: &str,
    level: i32,
    key: Option<&ArchiveKey>,
    stop: &AtomicBool,
) -> Result<Filled, Option<Error>> {
    let label = job.label();
    let server = snapshot.endpoint().display.clone();
    let io_err = |e: std::io::Error| Some(Error::io(format!("writing {what}"), e));
    let session = snapshot.session().await.map_err(|e| Some(Error::from(e)))?;
    let stream = session
        .copy_out(&job.source_sql(false))
        .await
        .map_err(|e| {
            Some(Error::from(crate::db::DbError::new(
                &server,
                format!("reading {label}: starting COPY TO"),
                e,
            )))
        })?;
    let sink = Sink::new(key, Hashing::new(out)).map_err(io_err)?;
    let encoder = zstd::Encoder::new(sink, level).map_err(io_err)?;
    let mut state = Some(PartState {
        encoder,
        rows: 0,
        text_bytes: 0,
    });
    let mut stream = std::pin::pin!(stream);
    let mut buffer = BytesMut::with_capacity(BATCH_BYTES + 64 * 1024);
    let mut rows_in_buffer = 0u64;
    let flush = |state: &mut Option<PartState>, data: Bytes, rows: u64| {
        let mut taken = state.take();
        let job = job.clone();
        let label = job.label();
        async move {
            let result = tokio::task::spawn_blocking(move || {
                let r = match taken.as_mut() {
                    Some(s) => s.batch(&job, data, rows),
                    None => Ok(()),
                };
                (taken, r)
            })
            .await
            .map_err(|e| Error::Runtime(format!("{label}: a dump worker failed: {e}")))?;
            Ok::<_, Error>(result)
        }
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Some(Error::from(crate::db::DbError::new(
                &server,
                format!("reading {label}: reading rows"),
                e,
            )))
        })?;
        rows_in_buffer += 1;
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= BATCH_BYTES {
            let (back, r) = flush(&mut state, buffer.split().freeze(), rows_in_buffer)
                .await
                .map_err(Some)?;
            state = back;
            r.map_err(|e| Some(batch_error(&label, what, e)))?;
            rows_in_buffer = 0;
            pending.drain().await.map_err(Some)?;
            crate::refresh::pause::point("dump-data").await;
            if stop.load(Ordering::Relaxed) {
                return Err(None);
            }
        }
    }
    if !buffer.is_empty() {
        let (back, r) = flush(&mut state, buffer.split().freeze(), rows_in_buffer)
            .await
            .map_err(Some)?;
        state = back;
        r.map_err(|e| Some(batch_error(&label, what, e)))?;
        crate::refresh::pause::point("dump-data").await;
    }
    let Some(state) = state else {
        return Err(Some(Error::Runtime(format!(
            "{label}: the part's writer was lost"
        ))));
    };
    let PartState {
        encoder,
        rows,
        text_bytes,
    } = state;
    let finished = tokio::task::spawn_blocking(move || {
        let hashing = encoder.finish()?.finish()?;
        Ok::<_, std::io::Error>(hashing.finish())
    })
    .await
    .map_err(|e| {
        Some(Error::Runtime(format!(
            "{label}: a dump worker failed: {e}"
        )))
    })?;
    let (out, sha256, bytes) = finished.map_err(io_err)?;
    Ok((out, rows, text_bytes, sha256, bytes))
}

fn batch_error(label: &str, what: &str, e: BatchError) -> Error {
    match e {
        BatchError::Row(e) => Error::Runtime(format!("{label}: {e}")),
        BatchError::Io(e) => Error::io(format!("writing {what}"), e),
    }
}
