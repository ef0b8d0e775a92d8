//! `restage restore`: a staging database built from an archive, with refresh's own stages
//! around a different data source:
//!
//! 1. the archive opened (a folder, or an S3 prefix: [`Store`]): its manifest read (missing
//!    or garbled is an error), every file it names present with its recorded size (one
//!    listing: a missing or truncated part is found here, before anything is created), the
//!    schema's SHA-256 checked (an S3 archive's schema is downloaded for pg_restore; parts
//!    are never downloaded whole: they are streamed from their GET into the COPY);
//! 2. the lock, the leftovers of dead runs cleaned, the name reserved, the database created
//!    with the source's encoding and locale ([`generations`]);
//! 3. pre-data ([`schema::restore`]); every part streamed `jobs` at once, decompressed, into
//!    `COPY ... FROM STDIN` (a table of one part in one transaction with `FREEZE`, as
//!    refresh loads it), its SHA-256 computed as it is read and compared before the COPY
//!    is finished, its row count compared with the server's; sequences; the post-load order
//!    ([`reindex::post_load`]: post-data, materialized views, indexes, ANALYZE); the plan
//!    recorded in `_restage` (so `restage verify` checks counts later); grants;
//!    [`verify::verify`]: counts against the manifest, NOT VALID foreign keys (the leak
//!    check was the dump's, on the rows it wrote: the source is not reachable from here);
//! 4. the swap, retention of generations, the cache flushed and warmed: as `refresh`.
//!
//! Any failure before the swap's COMMIT drops the database this run built: staging stays as
//! it was (exit 1; exit 3 for a failed verification).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::RestoreArgs;
use super::crypt::{self, ArchiveKey, Opening};
use super::manifest::{self, HashingReader, Manifest, PartEntry, TableEntry};
use super::store::Store;
use crate::catalog::QualifiedName;
use crate::config::Config;
use crate::db::{self, DbError, Role};
use crate::error::{Error, Result, exit};
use crate::progress::{Stage, Ui};
use crate::refresh::copy::{CopyJob, WRITE_PIECE};
use crate::refresh::lock::{self, RunLock};
use crate::refresh::reindex;
use crate::refresh::rows::RowPlan;
use crate::refresh::schema::{self, PgTools};
use crate::refresh::sequences::{self, SequenceValue};
use crate::refresh::settings::{SearchSettings, TargetSettings};
use crate::refresh::verify;
use crate::refresh::{
    CacheSettings, access, build, foreign, generations, source_database, swap, warm,
};
use crate::report::{Report, StageTiming, TableReport, Totals};
use sha2::Digest;

/// What a restore needs of restage.yaml: `target:`, `search:`, `cache:`, `jobs` — no
/// `source:` (the staging side of an air-gapped setup has none).
struct RestoreSettings {
    target: TargetSettings,
    search: SearchSettings,
    cache: Option<CacheSettings>,
    jobs: usize,
}

/// The archive to restore: `from` itself when it holds a manifest, else the newest archive
/// restage wrote directly inside it.
async fn locate(from: &Store) -> Result<Store> {
    if from.read(manifest::MANIFEST).await?.is_some() {
        return Ok(from.clone());
    }
    if let Store::Dir(dir) = from
        && !dir.is_dir()
    {
        return Err(Error::Usage(format!(
            "--from {}: no such folder (nothing was changed)",
            dir.display()
        )));
    }
    let found = from.archives().await?;
    match found.into_iter().last() {
        Some((_, archive)) => Ok(archive),
        None => Err(Error::Runtime(format!(
            "{}; nor does it hold an archive restage wrote (staging is unchanged)",
            manifest::NotAnArchive::Missing(from.display())
        ))),
    }
}

/// The schema as a local file for pg_restore: the archive's own file, or (S3) a copy
/// downloaded into a temporary folder, removed when dropped.
struct LocalSchema {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Reads the manifest and checks, before anything is created, that every file it names is
/// there with its recorded size, and that the schema's checksum matches (an S3 archive's
/// schema is downloaded for that, and kept for pg_restore).
async fn open(
    store: &Store,
    opening: Option<&Opening>,
) -> Result<(Manifest, Option<Arc<ArchiveKey>>, LocalSchema)> {
    let at = store.display();
    let m = store
        .manifest()
        .await
        .map_err(|e| Error::Runtime(format!("{e} (staging is unchanged)")))?;
    let sizes = store.sizes().await?;
    for (entry, what) in m.files() {
        match sizes.get(&entry.file) {
            Some(&size) if size == entry.bytes => {}
            Some(&size) if size < entry.bytes => {
                return Err(Error::Runtime(format!(
                    "{at}: {what} ({}) is truncated: {size} bytes of {} (staging is unchanged)",
                    entry.file, entry.bytes
                )));
            }
            Some(&size) => {
                return Err(Error::Runtime(format!(
                    "{at}: {what} ({}) has {size} bytes where the manifest says {} (staging is unchanged)",
                    entry.file, entry.bytes
                )));
            }
            None => {
                return Err(Error::Runtime(format!(
                    "{at}: {what} ({}) is missing (staging is unchanged)",
                    entry.file
                )));
            }
        }
    }
    let schema = match store {
        Store::Dir(dir) => LocalSchema {
            path: dir.join(&m.schema.file),
            _temp: None,
        },
        Store::S3(_) => {
            let temp = tempfile::Builder::new()
                .prefix("restage-schema-")
                .tempdir()
                .map_err(|e| Error::io("creating a temporary folder for the schema", e))?;
            let path = temp.path().join(manifest::SCHEMA);
            let reader = store.open(&m.schema.file).await.map_err(|e| {
                Error::io(format!("reading {}", store.display_file(&m.schema.file)), e)
            })?;
            let local = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut reader = reader;
                std::io::copy(&mut reader, &mut std::fs::File::create(&local)?).map(drop)
            })
            .await
            .map_err(|e| Error::Runtime(format!("downloading the schema failed: {e}")))?
            .map_err(|e| Error::io(format!("reading {}", store.display_file(&m.schema.file)), e))?;
            LocalSchema {
                path,
                _temp: Some(temp),
            }
        }
    };
    let (sha, _) = manifest::hash_file(&schema.path)
        .map_err(|e| Error::io(format!("reading {}", schema.path.display()), e))?;
    if sha != m.schema.sha256 {
        return Err(Error::Runtime(format!(
            "{at}: the schema ({}) is corrupted: its SHA-256 is not the manifest's (staging is unchanged)",
            m.schema.file
        )));
    }
    let key = match (&m.encryption, &m.key, opening) {
        (None, _, _) => None,
        (Some(_), None, _) => {
            return Err(Error::Runtime(format!(
                "{at}: the manifest says the archive is encrypted but names no key file (staging is unchanged)"
            )));
        }
        (Some(_), Some(_), None) => {
            return Err(Error::Usage(format!(
                "{at}: the archive is encrypted: restore needs dump.encryption.identity (or passphrase) (nothing was changed)"
            )));
        }
        (Some(_), Some(entry), Some(opening)) => {
            let sealed = store.read(&entry.file).await?.ok_or_else(|| {
                Error::Runtime(format!(
                    "{at}: the key ({}) is missing (staging is unchanged)",
                    entry.file
                ))
            })?;
            if manifest::hex(&sha2::Sha256::digest(&sealed)) != entry.sha256 {
                return Err(Error::Runtime(format!(
                    "{at}: the key ({}) is corrupted: its SHA-256 is not the manifest's (staging is unchanged)",
                    entry.file
                )));
            }
            Some(Arc::new(ArchiveKey::open(&sealed, opening, &at)?))
        }
    };
    if m.foreign_servers {
        return Err(Error::Usage(format!(
            "{at}: the archive's schema defines foreign servers, which restore does not create (they would point at production's network); see docs/dump.md (nothing was changed)"
        )));
    }
    Ok((m, key, schema))
}

/// `restage restore`: the report of a restore that swapped.
pub async fn run(config: &Config, args: &RestoreArgs, ui: &Ui) -> Result<Report> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let clock = Instant::now();
    let from = args
        .from
        .clone()
        .or_else(|| config.file.dump.as_ref().and_then(|d| d.destination.clone()))
        .ok_or_else(|| {
            Error::Usage(
                "restage restore: no archive: give --from DIR|s3://bucket/prefix or dump.destination (nothing was changed)"
                    .into(),
            )
        })?;
    let from = Store::parse(&from, "the archive to restore")?;
    let mut target = TargetSettings::from_config(config, "restore")?;
    target.adopt |= args.adopt;
    target.check(config, None)?;
    let settings = RestoreSettings {
        target,
        search: SearchSettings::from_config(config)?,
        cache: CacheSettings::from_config(config, "restore")?,
        jobs: config.jobs(),
    };
    let stage = Stage::start(ui, "open archive");
    let store = locate(&from).await?;
    let opening = crypt::opening(config)?;
    let (manifest, key, schema) = open(&store, opening.as_ref()).await?;
    let tools = PgTools::find(manifest.server_version / 10000).await?;
    let open_seconds = stage.done().as_secs_f64();

    let admin = db::connect(&settings.target.admin, Role::Target).await?;
    generations::check_target(&admin, &settings.target).await?;
    crate::refresh::access::check_roles(
        &admin,
        &settings.target.admin.display,
        &settings.target.grants,
    )
    .await?;
    let lock = lock::acquire(&admin, &settings.target, "restore").await?;
    let archive = Archive {
        store: &store,
        manifest: &manifest,
        key,
        schema: &schema.path,
    };
    let result = locked(&admin, &lock, &settings, &archive, &tools, ui).await;
    let outcome = match &result {
        Ok(done) => done.outcome.clone(),
        Err(e) => format!("failed: {e}"),
    };
    lock.finish(Some(&admin), &outcome).await;
    let done = result?;
    let mut stages = vec![timing("open archive", open_seconds)];
    stages.extend(done.stages);
    Ok(Report {
        restage_version: env!("CARGO_PKG_VERSION"),
        started_at,
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: clock.elapsed().as_secs_f64(),
        dry_run: false,
        source: format!("{} (archive {})", manifest.source, store.display()),
        target: settings.target.admin.display.clone(),
        database: settings.target.database.clone(),
        built: Some(done.building),
        snapshot: Some(manifest.snapshot.clone()),
        snapshot_at: manifest.snapshot_at.clone(),
        rules_digest: manifest.rules_digest.clone(),
        totals: Totals::of(&done.tables),
        tables: done.tables,
        stages,
        sequences_set: manifest.sequences.len(),
        materialized_views_refreshed: done.post_load.materialized_views,
        derived_columns_recomputed: done.post_load.derived_columns,
        verification: serde_json::to_value(&done.verification).ok(),
        swap: serde_json::to_value(&done.swap).ok(),
        generations_dropped: done.generations_dropped,
        leftovers_removed: done.leftovers_removed,
        cache: done.cache,
        left_out: done.left_out,
        warnings: done.warnings,
        outcome: done.outcome,
        exit_code: done.exit_code,
        ..Report::default()
    })
}

/// The archive being restored: where it is, its manifest, key and schema (a local file).
struct Archive<'a> {
    store: &'a Store,
    manifest: &'a Manifest,
    key: Option<Arc<ArchiveKey>>,
    schema: &'a Path,
}

/// What the locked part of a restore returns for the report.
struct Done {
    building: String,
    tables: Vec<TableReport>,
    stages: Vec<StageTiming>,
    post_load: reindex::PostLoaded,
    verification: verify::VerifyReport,
    swap: swap::SwapOutcome,
    generations_dropped: Vec<String>,
    leftovers_removed: Vec<String>,
    cache: Option<serde_json::Value>,
    left_out: Vec<String>,
    warnings: Vec<String>,
    outcome: String,
    exit_code: i32,
}

fn timing(stage: &str, seconds: f64) -> StageTiming {
    StageTiming {
        stage: stage.to_string(),
        seconds,
    }
}

/// The restore with the lock held: build beside, swap, retain, warm.
async fn locked(
    admin: &Client,
    lock: &RunLock,
    settings: &RestoreSettings,
    archive: &Archive<'_>,
    tools: &PgTools,
    ui: &Ui,
) -> Result<Done> {
    let manifest = archive.manifest;
    let mut shutdown = crate::signal::Shutdown::new()
        .map_err(|e| Error::io("installing the SIGINT and SIGTERM handlers", e))?;
    let mut signal = std::pin::pin!(shutdown.wait());
    let snapshot_at = manifest
        .snapshot_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));

    let cleaned = generations::clean(lock, true).await?;
    let building = generations::reserve_building(lock, snapshot_at).await?;
    let built = async {
        let locale_warning =
            generations::create_building(lock, &building, &manifest.database.locale).await?;
        let mut built = build(settings, archive, tools, &building, ui).await?;
        built.warnings.splice(0..0, locale_warning);
        Ok::<_, Error>(built)
    };
    let built = tokio::select! {
        result = built => result,
        signal = &mut signal => Err(Error::Interrupted {
            signal,
            outcome: "the half-built database was removed, staging is unchanged".into(),
        }),
    };
    let mut built = match built {
        Ok(built) => built,
        Err(e) => return Err(crate::refresh::abandon(lock, &building, e).await),
    };
    if let Err(e) = crate::refresh::require_cache(settings.cache.as_ref()).await {
        return Err(crate::refresh::abandon(lock, &building, e).await);
    }

    let stage = Stage::start(ui, "swap");
    let outcome =
        crate::refresh::swap_built(lock, admin, &building, &settings.target, &mut signal).await?;
    built
        .stages
        .push(timing("swap", stage.done().as_secs_f64()));

    let database = &settings.target.database;
    let mut problems = Vec::new();
    let interrupted = (&mut signal).now_or_never();
    let mut generations_dropped = Vec::new();
    match interrupted {
        None => match generations::retain(lock, settings.target.keep).await {
            Ok(dropped) => generations_dropped = dropped,
            Err(e) => problems.push(format!("the generations beyond keep were not dropped: {e}")),
        },
        Some(signal) => problems.push(format!(
            "the run was interrupted by {signal} after the swap: the generations beyond keep were not dropped (the next run drops them)"
        )),
    }
    let mut cache_report = None;
    if let Some(cache) = &settings.cache {
        let stage = Stage::start(ui, "cache");
        let result = match interrupted {
            Some(signal) => Err(Error::Runtime(format!("interrupted by {signal}"))),
            None => warm::flush_and_warm(&settings.target, cache).await,
        };
        match result {
            Ok(w) => cache_report = serde_json::to_value(&w).ok(),
            Err(e) => {
                cache_report = Some(serde_json::json!({ "warmed": false, "error": e.to_string() }));
                problems.push(format!("the cache was NOT warmed: {e}"));
            }
        }
        built
            .stages
            .push(timing("cache", stage.done().as_secs_f64()));
    }
    let mut warnings = manifest.warnings.clone();
    warnings.extend(built.warnings);
    warnings.extend(cleaned.warnings);
    let (outcome_text, exit_code) = if problems.is_empty() {
        (
            format!("staging database {database} is live ({building} restored from the archive)"),
            exit::OK,
        )
    } else {
        (
            format!(
                "staging database {database} is live, but {}",
                problems.join("; and ")
            ),
            exit::LIVE_BUT,
        )
    };
    Ok(Done {
        building,
        tables: built.tables,
        stages: built.stages,
        post_load: built.post_load,
        verification: built.verification,
        swap: outcome,
        generations_dropped,
        leftovers_removed: cleaned.leftovers_removed,
        cache: cache_report,
        left_out: built.left_out,
        warnings,
        outcome: outcome_text,
        exit_code,
    })
}

/// What building from the archive measured.
struct Built {
    tables: Vec<TableReport>,
    stages: Vec<StageTiming>,
    post_load: reindex::PostLoaded,
    verification: verify::VerifyReport,
    warnings: Vec<String>,
    left_out: Vec<String>,
}

/// Builds the new database `building` (created empty) from the archive and verifies it.
async fn build(
    settings: &RestoreSettings,
    source: &Archive<'_>,
    tools: &PgTools,
    building: &str,
    ui: &Ui,
) -> Result<Built> {
    let (store, manifest) = (source.store, source.manifest);
    let target = settings.target.admin.with_database(building);
    let server = target.display.clone();
    let mut stages = Vec::new();

    let stage = Stage::start(ui, "schema");
    let schema_file = source.schema;
    let archive = match &source.key {
        None => schema::load(tools, schema_file).await?,
        Some(key) => {
            // Decrypted into a folder of its own, removed when done.
            let plain = tempfile::Builder::new()
                .prefix("restage-schema-")
                .tempdir()
                .map_err(|e| Error::io("creating a temporary folder for the schema", e))?;
            let plain_file = plain.path().join(manifest::SCHEMA);
            let decrypted = (|| {
                let mut reader = key.unwrap(std::fs::File::open(schema_file)?)?;
                std::io::copy(&mut reader, &mut std::fs::File::create(&plain_file)?).map(drop)
            })();
            decrypted.map_err(|e| {
                Error::Runtime(format!(
                    "{}: the schema cannot be decrypted: {e} (staging is unchanged)",
                    store.display()
                ))
            })?;
            schema::load(tools, &plain_file).await?
        }
    };
    schema::restore(tools, &archive, &target, schema::Section::PreData, 1).await?;
    let mut left_out = Vec::new();
    if archive.user_mappings_left_out > 0 {
        left_out.push(format!(
            "{} user mapping(s) of production (remote users and passwords)",
            archive.user_mappings_left_out
        ));
    }
    {
        let client = db::connect(&target, Role::Target).await?;
        left_out.extend(foreign::strip_wrapper_options(&client, &server).await?);
    }
    stages.push(timing("schema (pre-data)", stage.done().as_secs_f64()));

    // The build's own session, verification's, and the workers.
    let pool = db::target_pool(&target, settings.jobs + 2).map_err(Error::Runtime)?;
    let stage = Stage::start(ui, "data");
    let tables = load(&pool, &server, source, settings.jobs).await?;
    stages.push(timing("data", stage.done().as_secs_f64()));

    let client = pool
        .get()
        .await
        .map_err(|e| Error::Runtime(format!("{server}: connecting to {building}: {e}")))?;
    let values: Vec<SequenceValue> = manifest
        .sequences
        .iter()
        .map(|s| SequenceValue {
            name: QualifiedName::new(&s.schema, &s.name),
            last_value: s.last_value,
            is_called: s.is_called,
        })
        .collect();
    sequences::apply(&client, &server, &values).await?;

    let names: Vec<QualifiedName> = tables.keys().cloned().collect();
    let post_load = reindex::post_load(
        &pool,
        &client,
        &server,
        reindex::Database::New {
            tools,
            archive: &archive,
            endpoint: &target,
            refreshed_views: &BTreeSet::new(),
        },
        &settings.search,
        &names,
        settings.jobs,
        Some(ui),
    )
    .await?;
    stages.extend(post_load.stages.iter().cloned());
    build::record_plan(&client, &server, &manifest.source, building, &tables).await?;
    access::grant(&client, &server, building, &settings.target.grants).await?;

    let stage = Stage::start(ui, "verify");
    let expected: BTreeMap<QualifiedName, u64> = tables
        .iter()
        .map(|(name, t)| (name.clone(), t.rows_written))
        .collect();
    let verification = verify::verify(
        &pool,
        &server,
        None,
        verify::Counts::Expected(&expected),
        settings.jobs,
    )
    .await?;
    stages.push(timing("verify", stage.done().as_secs_f64()));
    if !verification.passed {
        return Err(Error::Verify(format!(
            "{}; staging was not swapped (unchanged)",
            verification.summary()
        )));
    }
    let mut warnings = foreign::carry_forward(
        &client,
        &server,
        &settings.target.live(),
        &settings.target.database,
    )
    .await?;
    let (settings_left_out, settings_warnings) = source_database::apply_settings(
        &client,
        &server,
        building,
        &manifest.database.settings,
        &settings.target.live(),
        &settings.target.database,
        &settings.target.settings,
    )
    .await?;
    left_out.extend(settings_left_out);
    warnings.extend(settings_warnings);
    Ok(Built {
        tables: tables.into_values().collect(),
        stages,
        post_load,
        verification,
        warnings,
        left_out,
    })
}

/// Loads every part, `jobs` at once; returns each table's line (rows as the server stored
/// them, which equal the manifest's).
async fn load(
    pool: &deadpool_postgres::Pool,
    server: &str,
    archive: &Archive<'_>,
    jobs: usize,
) -> Result<BTreeMap<QualifiedName, TableReport>> {
    let manifest = archive.manifest;
    let mut tables: BTreeMap<QualifiedName, TableReport> = manifest
        .tables
        .iter()
        .map(|t| {
            let name = QualifiedName::new(&t.schema, &t.name);
            let line = TableReport {
                table: name.to_string(),
                ranges: t.parts.len(),
                ..TableReport::default()
            };
            (name, line)
        })
        .collect();
    let mut work = Vec::new();
    for t in &manifest.tables {
        for (i, p) in t.parts.iter().enumerate() {
            work.push((t, i, p));
        }
    }
    // Biggest first, as refresh's copy does.
    work.sort_by_key(|(_, _, p)| std::cmp::Reverse(p.text_bytes));
    let mut running = futures_util::stream::iter(work)
        .map(|(t, i, p)| async move {
            let started = Instant::now();
            let rows = load_part(pool, server, archive, t, i, p).await?;
            Ok::<_, Error>((t, p, rows, started.elapsed().as_secs_f64()))
        })
        .buffer_unordered(jobs.max(1));
    while let Some(done) = running.next().await {
        let (t, p, rows, seconds) = done?;
        if let Some(line) = tables.get_mut(&QualifiedName::new(&t.schema, &t.name)) {
            line.rows_read += rows;
            line.rows_written += rows;
            line.bytes_read += p.file.bytes;
            line.bytes_written += p.text_bytes;
            line.seconds = line.seconds.max(seconds);
        }
    }
    Ok(tables)
}

/// What is wrong with a part, found while reading it.
#[derive(Debug, thiserror::Error)]
enum PartError {
    #[error("is missing")]
    Missing,
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
    #[error("is truncated: {got} bytes of {want}")]
    Truncated { got: u64, want: u64 },
    #[error("has {got} bytes where the manifest says {want}")]
    Longer { got: u64, want: u64 },
    #[error("is corrupted: its SHA-256 is not the manifest's")]
    Checksum,
    #[error("is corrupted: {0}")]
    Decode(std::io::Error),
}

/// Reads a part on a blocking thread: decompressed chunks into `tx`, the file hashed as it
/// is read (to its end even when the receiver stopped, so a COPY that failed on corrupted
/// rows is told apart from a corrupted part).
fn read_part(
    file: Box<dyn Read + Send>,
    part: &PartEntry,
    key: Option<&ArchiveKey>,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), PartError> {
    let mut hashing = HashingReader::new(file);
    let decoded = (|| {
        let source: Box<dyn Read + '_> = match key {
            None => Box::new(&mut hashing),
            Some(key) => Box::new(key.unwrap(&mut hashing)?),
        };
        let mut decoder = zstd::stream::read::Decoder::new(source)?;
        loop {
            let mut buf = vec![0u8; WRITE_PIECE];
            let n = decoder.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if tx.blocking_send(Bytes::from(buf)).is_err() {
                return Ok(());
            }
        }
    })();
    // To the end of the file, whatever the decoder did: the checksum is of the whole file.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(PartError::Io)?;
    let (sha256, bytes) = hashing.finish();
    if bytes < part.file.bytes {
        return Err(PartError::Truncated {
            got: bytes,
            want: part.file.bytes,
        });
    }
    if bytes > part.file.bytes {
        return Err(PartError::Longer {
            got: bytes,
            want: part.file.bytes,
        });
    }
    if sha256 != part.file.sha256 {
        return Err(PartError::Checksum);
    }
    decoded.map_err(PartError::Decode)
}

/// Streams part `index` of `table` into the new database; returns the rows stored.
async fn load_part(
    pool: &deadpool_postgres::Pool,
    server: &str,
    archive: &Archive<'_>,
    table: &TableEntry,
    index: usize,
    part: &PartEntry,
) -> Result<u64> {
    let name = QualifiedName::new(&table.schema, &table.name);
    let what = format!(
        "{}: part {} of {} of table {name} ({})",
        archive.store.display(),
        index + 1,
        table.parts.len(),
        part.file.file
    );
    let whole = table.parts.len() == 1;
    let job = CopyJob {
        table: name.clone(),
        columns: table.columns.clone(),
        plan: Arc::new(RowPlan {
            table: name.clone(),
            columns: vec![],
            filter: None,
            encoding: Default::default(),
            check: None,
        }),
        range: None,
        source_where: None,
        whole_table: whole,
        encoding: table.encoding.clone(),
        estimated_rows: part.rows,
        estimated_bytes: part.text_bytes,
        generated: None,
        binary_fields: None,
    };
    let client = pool
        .get()
        .await
        .map_err(|e| Error::Runtime(format!("{server}: connecting to the new database: {e}")))?;
    let result = copy_part(&client, server, archive, &job, part, &what).await;
    if result.is_err() {
        // Inside a failed transaction or an aborted COPY: never back into the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn copy_part(
    client: &Client,
    server: &str,
    archive: &Archive<'_>,
    job: &CopyJob,
    part: &PartEntry,
    what: &str,
) -> Result<u64> {
    let label = job.label();
    let db_err = |context: &str, e: tokio_postgres::Error| {
        Error::Db(DbError::new(server, format!("{context} {label}"), e))
    };
    // As in a refresh: a whole table truncated and written frozen in one transaction, a
    // small one by a plain COPY (a restore has no retries; a failure drops the database).
    let truncates = job.truncates(1);
    if truncates {
        client
            .batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", job.table.sql()))
            .await
            .map_err(|e| db_err("preparing", e))?;
    }
    let sink = client
        .copy_in::<_, Bytes>(&job.target_sql(truncates, false))
        .await
        .map_err(|e| db_err("starting COPY FROM into", e))?;
    let mut sink = std::pin::pin!(sink);
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let file = match archive.store.open(&part.file.file).await {
        Ok(file) => file,
        Err(e) => {
            let e = match e.kind() {
                std::io::ErrorKind::NotFound => PartError::Missing,
                _ => PartError::Io(e),
            };
            return Err(Error::Runtime(format!(
                "{what} {e}; the database this run built was removed, staging is unchanged"
            )));
        }
    };
    let entry = part.clone();
    let key = archive.key.clone();
    let reader = tokio::task::spawn_blocking(move || read_part(file, &entry, key.as_deref(), tx));
    let mut copy_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = sink.feed(chunk).await {
            copy_error = Some(e);
            break;
        }
    }
    drop(rx);
    let verdict = reader
        .await
        .map_err(|e| Error::Runtime(format!("{what}: its reader failed: {e}")))?;
    // The archive's fault first: a corrupted part can make the COPY fail too.
    if let Err(e) = verdict {
        return Err(Error::Runtime(format!(
            "{what} {e}; the database this run built was removed, staging is unchanged"
        )));
    }
    if let Some(e) = copy_error {
        return Err(db_err("writing rows into", e));
    }
    let stored = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| db_err("finishing COPY FROM into", e))?;
    if stored != part.rows {
        return Err(Error::Runtime(format!(
            "{what}: the server stored {stored} rows where the manifest says {}",
            part.rows
        )));
    }
    if truncates {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| db_err("committing", e))?;
    }
    Ok(stored)
}
