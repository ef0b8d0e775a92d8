//! Where archives live: a folder, or a prefix of an S3-compatible bucket (`s3://bucket/prefix`).
//!
//! One small enum, [`Store`], so that `dump`, `restore` and retention do not fork: a `Store`
//! is the root of a destination or of one archive, and every operation names a file by its
//! path inside that root (`manifest.json`, `data/00001.copy.zst`). What differs between the
//! two kinds stays here:
//!
//! | | folder | S3 |
//! |---|---|---|
//! | a dump writes into | `DIR/.partial-<run>/`, renamed to `DIR/restage-<run>` when complete | `prefix/restage-<run>/` directly (S3 has no rename) |
//! | complete when | `manifest.json` is there (temporary file, fsync, rename) | `manifest.json` is there (one PUT: atomic per object) |
//! | a part is written | to a file, fsynced | one PUT when small, a multipart upload when bigger than [`part_bytes`] |
//! | a failed run leaves | nothing (its partial folder removed) | nothing: its uploads aborted, the objects it wrote under `restage-<run>/` deleted |
//! | a killed run leaves | `.partial-<run>/`, removed by a later dump ([`Partial::begin`]) | objects under `restage-<run>/` without a manifest, never read (see docs/dump.md) |
//! | a part is read | streamed from the file | streamed from a GET (never downloaded whole first) |
//!
//! S3 credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), else the shared credentials file's profile (`AWS_PROFILE`, else
//! `default`, in `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`), else the object
//! store's own chain (web identity, ECS, instance metadata). Errors name the bucket and key,
//! never a credential.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::sync::mpsc;

use super::manifest::{self, Manifest, NotAnArchive};
use crate::error::{Error, Result};

/// The environment variable that sets the size above which a part is uploaded in pieces of
/// that size (a multipart upload), in bytes; default [`DEFAULT_PART_BYTES`]. S3 wants pieces of
/// at least 5 MiB (the tests lower it, with a local server that accepts smaller ones).
pub const PART_BYTES_VAR: &str = "RESTAGE_S3_PART_BYTES";
pub const DEFAULT_PART_BYTES: usize = 16 * 1024 * 1024;
/// Pieces of one multipart upload in flight at once (per part; parts are `jobs` at once).
const PIECES_IN_FLIGHT: usize = 2;
/// Requests at once when deleting an archive's objects.
const DELETES_IN_FLIGHT: usize = 8;
/// The name of the lock file in a partial folder ([`Partial::begin`]).
pub const LOCK_FILE: &str = "restage.lock";
/// Partial folders are `.partial-<run>`.
pub const PARTIAL_PREFIX: &str = ".partial-";

/// The size of the pieces of a multipart upload.
pub fn part_bytes() -> usize {
    std::env::var(PART_BYTES_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PART_BYTES)
}

/// A folder or an S3 prefix: the root of a destination or of one archive.
#[derive(Clone)]
pub enum Store {
    Dir(PathBuf),
    S3(S3),
}

/// A prefix (possibly empty) of a bucket, and the client that reaches it.
#[derive(Clone)]
pub struct S3 {
    client: Arc<dyn ObjectStore>,
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    prefix: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client: its configuration holds the credentials.
        write!(f, "Store({})", self.display())
    }
}

/// The bucket and prefix of `s3://bucket/prefix`, or why it is not one.
pub fn parse_s3_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
        return Err(format!(
            "{url}: {bucket:?} is not a bucket name (3 to 63 characters: lower-case letters, digits, '-' and '.')"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..")
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "{url}: the prefix {prefix:?} has an empty, '.' or '..' segment"
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl Store {
    /// `s3://bucket/prefix` (credentials from the environment), else a folder.
    pub fn parse(location: &str, what: &str) -> Result<Store> {
        if location.starts_with("s3://") {
            let (bucket, prefix) = parse_s3_url(location)
                .map_err(|e| Error::Usage(format!("{what}: {e} (nothing was changed)")))?;
            let client = s3_client(&bucket)?;
            return Ok(Store::S3(S3 {
                client,
                bucket,
                prefix,
            }));
        }
        if location.contains("://") {
            return Err(Error::Usage(format!(
                "{what}: {location}: only folders and s3:// URLs are archive destinations (nothing was changed)"
            )));
        }
        Ok(Store::Dir(PathBuf::from(location)))
    }

    /// An S3 store over a client made elsewhere (the tests' own).
    pub fn s3_with(client: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Store {
        Store::S3(S3 {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// The folder, or `s3://bucket/prefix`.
    pub fn display(&self) -> String {
        match self {
            Store::Dir(p) => p.display().to_string(),
            Store::S3(s) if s.prefix.is_empty() => format!("s3://{}", s.bucket),
            Store::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }

    /// A file inside, as messages name it (`DIR/file`, `s3://bucket/prefix/file`).
    pub fn display_file(&self, file: &str) -> String {
        match self {
            Store::Dir(p) => p.join(file).display().to_string(),
            Store::S3(_) => format!("{}/{file}", self.display()),
        }
    }

    /// The root `name` inside this one.
    pub fn child(&self, name: &str) -> Store {
        match self {
            Store::Dir(p) => Store::Dir(p.join(name)),
            Store::S3(s) => Store::S3(S3 {
                client: s.client.clone(),
                bucket: s.bucket.clone(),
                prefix: s.key(name),
            }),
        }
    }

    /// The last segment of the root (an archive's `restage-<run>`).
    pub fn name(&self) -> String {
        match self {
            Store::Dir(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Store::S3(s) => s.prefix.rsplit('/').next().unwrap_or_default().to_string(),
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// A whole (small) file: the manifest, the key. None when it does not exist.
    pub async fn read(&self, file: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Dir(p) => match std::fs::read(p.join(file)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Error::io(format!("reading {}", self.display_file(file)), e)),
            },
            Store::S3(s) => {
                let got = match s.client.get(&s.path(file)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(s.error("reading", file, e)),
                };
                let bytes = got.bytes().await.map_err(|e| s.error("reading", file, e))?;
                Ok(Some(bytes.to_vec()))
            }
        }
    }

    /// Every file under the root, by its path inside it, with its size.
    pub async fn sizes(&self) -> Result<BTreeMap<String, u64>> {
        match self {
            Store::Dir(p) => {
                let mut found = BTreeMap::new();
                walk(p, "", &mut found)
                    .map_err(|e| Error::io(format!("listing {}", p.display()), e))?;
                Ok(found)
            }
            Store::S3(s) => {
                let root = ObjectPath::from(s.prefix.as_str());
                let listed: Vec<object_store::ObjectMeta> = s
                    .client
                    .list(Some(&root))
                    .try_collect()
                    .await
                    .map_err(|e| s.error("listing", "", e))?;
                let skip = if s.prefix.is_empty() {
                    0
                } else {
                    s.prefix.len() + 1
                };
                Ok(listed
                    .into_iter()
                    .filter_map(|m| {
                        let key = m.location.to_string();
                        key.get(skip..).map(|rel| (rel.to_string(), m.size))
                    })
                    .collect())
            }
        }
    }

    /// A reader of one file, streamed (a GET's body as it arrives, for S3). A file that does
    /// not exist is an error of kind `NotFound`.
    pub async fn open(&self, file: &str) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            Store::Dir(p) => Ok(Box::new(std::fs::File::open(p.join(file))?)),
            Store::S3(s) => {
                let got = s.client.get(&s.path(file)).await.map_err(|e| {
                    let kind = match e {
                        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
                        _ => std::io::ErrorKind::Other,
                    };
                    std::io::Error::new(kind, s.error("reading", file, e).to_string())
                })?;
                let mut stream = got.into_stream();
                let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
                let what = s.display_key(file);
                tokio::spawn(async move {
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk
                            .map_err(|e| std::io::Error::other(format!("reading {what}: {e}")));
                        let failed = chunk.is_err();
                        if tx.send(chunk).await.is_err() || failed {
                            return;
                        }
                    }
                });
                Ok(Box::new(ChannelReader {
                    rx,
                    current: Bytes::new(),
                }))
            }
        }
    }

    /// A writer of a new file (its folder exists) and what completes it.
    pub fn create(&self, file: &str) -> Result<(Out, Pending)> {
        match self {
            Store::Dir(p) => {
                let path = p.join(file);
                let f = std::fs::File::create(&path)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                Ok((Out::File(f), Pending::File))
            }
            Store::S3(s) => {
                let buffer = Arc::new(Mutex::new(Vec::new()));
                Ok((
                    Out::Memory(buffer.clone()),
                    Pending::S3(Box::new(Upload {
                        store: s.clone(),
                        file: file.to_string(),
                        buffer,
                        held: Vec::new(),
                        multipart: None,
                        piece: part_bytes(),
                    })),
                ))
            }
        }
    }

    /// Writes a whole (small) file: for a folder, atomically (temporary file, fsync, rename,
    /// fsync of the folder); for S3, one PUT (atomic per object).
    pub async fn put(&self, file: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Store::Dir(p) => {
                let temp = p.join(format!(".{file}.tmp"));
                let written = (|| {
                    let mut f = std::fs::File::create(&temp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    std::fs::rename(&temp, p.join(file))
                })();
                written
                    .map_err(|e| Error::io(format!("writing {}", self.display_file(file)), e))?;
                manifest::sync_dir(p)
            }
            Store::S3(s) => s
                .client
                .put(&s.path(file), PutPayload::from(bytes))
                .await
                .map(drop)
                .map_err(|e| s.error("writing", file, e)),
        }
    }

    /// The names of the folders (common prefixes) directly under the root.
    pub async fn children(&self) -> Result<Vec<String>> {
        match self {
            Store::Dir(p) => {
                let mut names = Vec::new();
                let listed = (|| {
                    for entry in std::fs::read_dir(p)? {
                        let entry = entry?;
                        if entry.file_type()?.is_dir() {
                            names.push(entry.file_name().to_string_lossy().into_owned());
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })();
                listed.map_err(|e| Error::io(format!("listing {}", p.display()), e))?;
                Ok(names)
            }
            Store::S3(s) => {
                let root = (!s.prefix.is_empty()).then(|| ObjectPath::from(s.prefix.as_str()));
                let listed = s
                    .client
                    .list_with_delimiter(root.as_ref())
                    .await
                    .map_err(|e| s.error("listing", "", e))?;
                Ok(listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect())
            }
        }
    }

    /// Removes one file (missing is fine).
    pub async fn remove(&self, file: &str) -> Result<()> {
        match self {
            Store::Dir(p) => match std::fs::remove_file(p.join(file)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(
                    format!("removing {}", self.display_file(file)),
                    e,
                )),
            },
            Store::S3(s) => match s.client.delete(&s.path(file)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(s.error("removing", file, e)),
            },
        }
    }

    /// Removes the root and everything under it.
    pub async fn remove_all(&self) -> Result<()> {
        match self {
            Store::Dir(p) => match std::fs::remove_dir_all(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
            },
            Store::S3(_) => {
                let files: Vec<String> = self.sizes().await?.into_keys().collect();
                let mut deleting = futures_util::stream::iter(files)
                    .map(|f| async move { self.remove(&f).await })
                    .buffer_unordered(DELETES_IN_FLIGHT);
                while let Some(done) = deleting.next().await {
                    done?;
                }
                Ok(())
            }
        }
    }

    /// The manifest of the archive at this root.
    pub async fn manifest(&self) -> Result<Manifest, NotAnArchive> {
        let at = self.display();
        match self.read(manifest::MANIFEST).await {
            Ok(Some(text)) => manifest::parse(&text, &self.display_file(manifest::MANIFEST)),
            Ok(None) => Err(NotAnArchive::Missing(at)),
            Err(e) => Err(NotAnArchive::Unreadable(
                self.display_file(manifest::MANIFEST),
                e.to_string(),
            )),
        }
    }

    /// The archives restage wrote directly under this root (a folder or prefix whose manifest
    /// is of [`manifest::FORMAT`]), oldest first (by run, which is a UTC time).
    pub async fn archives(&self) -> Result<Vec<(String, Store)>> {
        let mut found = Vec::new();
        for name in self.children().await? {
            if name.starts_with(PARTIAL_PREFIX) {
                continue;
            }
            let child = self.child(&name);
            if let Ok(m) = child.manifest().await {
                found.push((m.run, child));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

impl S3 {
    fn key(&self, file: &str) -> String {
        if self.prefix.is_empty() {
            file.to_string()
        } else {
            format!("{}/{file}", self.prefix)
        }
    }

    fn path(&self, file: &str) -> ObjectPath {
        ObjectPath::from(self.key(file).as_str())
    }

    fn display_key(&self, file: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(file))
    }

    /// An error of the object store, naming the bucket and key. Its text is the store's,
    /// which carries the request's URL and status, never a credential.
    fn error(&self, doing: &str, file: &str, e: object_store::Error) -> Error {
        let at = if file.is_empty() {
            format!("s3://{}/{}", self.bucket, self.prefix)
        } else {
            self.display_key(file)
        };
        Error::Runtime(format!("{doing} {at}: {}", object_store_message(&e)))
    }
}

/// The object store's message, its cause once.
fn object_store_message(e: &object_store::Error) -> String {
    let text = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut out = text.clone();
    while let Some(s) = source {
        let more = s.to_string();
        if !out.contains(&more) {
            out.push_str(": ");
            out.push_str(&more);
        }
        source = s.source();
    }
    out
}

fn walk(root: &Path, rel: &str, found: &mut BTreeMap<String, u64>) -> std::io::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, found)?;
        } else if kind.is_file() {
            found.insert(path, entry.metadata()?.len());
        }
    }
    Ok(())
}

/// A blocking reader over chunks sent by an async task (an S3 GET's body).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Where the bytes of a file being written go (synchronously, from a blocking thread).
pub enum Out {
    File(std::fs::File),
    /// Taken by [`Pending::drain`] between batches and sent to the upload.
    Memory(Arc<Mutex<Vec<u8>>>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::File(f) => f.write(buf),
            Out::Memory(m) => {
                m.lock()
                    .map_err(|_| std::io::Error::other("the upload buffer was poisoned"))?
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::File(f) => f.flush(),
            Out::Memory(_) => Ok(()),
        }
    }
}

/// What completes a file being written: nothing but an fsync for a folder; the upload for S3.
pub enum Pending {
    File,
    S3(Box<Upload>),
}

/// One object being uploaded: held in memory up to one piece, then a multipart upload.
pub struct Upload {
    store: S3,
    file: String,
    buffer: Arc<Mutex<Vec<u8>>>,
    /// Bytes taken from the buffer and not yet sent (less than one piece).
    held: Vec<u8>,
    multipart: Option<WriteMultipart>,
    piece: usize,
}

impl Upload {
    fn take(&mut self) -> Result<()> {
        let mut buffer = self
            .buffer
            .lock()
            .map_err(|_| Error::Runtime("the upload buffer was poisoned".into()))?;
        self.held.append(&mut buffer);
        Ok(())
    }

    /// Sends what was written since the last call once there is a piece of it (a multipart
    /// upload started for the first); `last`: everything, the upload completed.
    async fn send(&mut self, last: bool) -> Result<()> {
        self.take()?;
        if self.multipart.is_none() {
            if self.held.len() <= self.piece {
                if !last {
                    return Ok(());
                }
                // Small: one PUT.
                let bytes = std::mem::take(&mut self.held);
                return self
                    .store
                    .client
                    .put(&self.store.path(&self.file), PutPayload::from(bytes))
                    .await
                    .map(drop)
                    .map_err(|e| self.store.error("writing", &self.file, e));
            }
            let upload = self
                .store
                .client
                .put_multipart(&self.store.path(&self.file))
                .await
                .map_err(|e| self.store.error("starting the upload of", &self.file, e))?;
            self.multipart = Some(WriteMultipart::new_with_chunk_size(upload, self.piece));
        }
        let Some(multipart) = self.multipart.as_mut() else {
            return Ok(());
        };
        // Bounded: at most PIECES_IN_FLIGHT pieces of this part in flight.
        multipart
            .wait_for_capacity(PIECES_IN_FLIGHT)
            .await
            .map_err(|e| self.store.error("uploading", &self.file, e))?;
        multipart.write(&self.held);
        self.held.clear();
        if last && let Some(multipart) = self.multipart.take() {
            multipart
                .finish()
                .await
                .map(drop)
                .map_err(|e| self.store.error("finishing the upload of", &self.file, e))?;
        }
        Ok(())
    }

    async fn abort(mut self) {
        if let Some(multipart) = self.multipart.take()
            && let Err(e) = multipart.abort().await
        {
            tracing::warn!(object = %self.store.display_key(&self.file), error = %object_store_message(&e), "could not abort an unfinished upload");
        }
    }
}

impl Pending {
    /// Sends what was written since the last call (S3: a piece once there is one).
    pub async fn drain(&mut self) -> Result<()> {
        match self {
            Pending::File => Ok(()),
            Pending::S3(upload) => upload.send(false).await,
        }
    }

    /// Completes the file: fsync, or the last PUT / the multipart upload's completion.
    pub async fn complete(self, out: Out, what: &str) -> Result<()> {
        match (self, out) {
            (Pending::File, Out::File(f)) => tokio::task::spawn_blocking(move || f.sync_all())
                .await
                .map_err(|e| Error::Runtime(format!("{what}: a writer failed: {e}")))?
                .map_err(|e| Error::io(format!("writing {what}"), e)),
            (Pending::S3(mut upload), _) => upload.send(true).await,
            (Pending::File, Out::Memory(_)) => Ok(()),
        }
    }

    /// Abandons the file: a multipart upload is aborted (its pieces discarded by the server).
    pub async fn abort(self) {
        if let Pending::S3(upload) = self {
            upload.abort().await;
        }
    }
}

/// The place a dump writes its archive before it is complete.
///
/// Folder: `DIR/.partial-<run>/`, holding a lock file (`restage.lock`) that this run holds
/// with `flock(2)` for its whole life. The kernel releases the lock when the process ends,
/// however it ends (SIGKILL, a crash, a power cut), so a later dump tells a partial folder of
/// a dead run (its lock can be taken) from one of a live run (it cannot) without trusting
/// pids or clocks, and removes the dead ones — only folders named `.partial-*` that hold
/// restage's lock file: nothing else in the destination is touched. The lock file is locked
/// under a temporary name, then renamed into place, so a folder with `restage.lock` is always
/// locked by its run while the run lives. (flock over NFS is emulated with POSIX locks by
/// Linux' NFS client, which keeps this meaning; on filesystems without locks, nothing is
/// removed and a warning says so.)
///
/// S3: `prefix/restage-<run>/` (no rename on S3); complete once its manifest is there.
pub struct Partial {
    pub area: Store,
    destination: Store,
    final_name: String,
    published: bool,
    /// Held (locked) for the life of the run; closed when dropped.
    _lock: Option<std::fs::File>,
}

/// What [`Partial::begin`] removed or could not.
#[derive(Default)]
pub struct Cleaned {
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
}

impl Partial {
    /// Prepares the run's area in `destination` (created if missing); for a folder, first
    /// removes the partial folders of dead runs.
    pub async fn begin(destination: &Store, run: &str) -> Result<(Partial, Cleaned)> {
        let final_name = format!("restage-{run}");
        match destination {
            Store::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                let cleaned = remove_dead_partials(dir);
                let path = dir.join(format!("{PARTIAL_PREFIX}{run}"));
                std::fs::create_dir_all(path.join(manifest::DATA))
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                let lock = lock_partial(&path).map_err(|e| {
                    Error::io(format!("locking {}", path.join(LOCK_FILE).display()), e)
                })?;
                Ok((
                    Partial {
                        area: Store::Dir(path),
                        destination: destination.clone(),
                        final_name,
                        published: false,
                        _lock: Some(lock),
                    },
                    cleaned,
                ))
            }
            Store::S3(_) => Ok((
                Partial {
                    area: destination.child(&final_name),
                    destination: destination.clone(),
                    final_name,
                    published: false,
                    _lock: None,
                },
                Cleaned::default(),
            )),
        }
    }

    /// Writes the manifest last and makes the archive complete; returns where it is.
    pub async fn publish(&mut self, manifest: &Manifest) -> Result<Store> {
        let text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::Runtime(format!("writing the manifest: {e}")))?;
        match (&self.area, &self.destination) {
            (Store::Dir(path), Store::Dir(dir)) => {
                manifest::sync_dir(&path.join(manifest::DATA))?;
                // The lock file is the run's, not the archive's.
                self.area.remove(LOCK_FILE).await?;
                self.area.put(manifest::MANIFEST, text).await?;
                let published = dir.join(&self.final_name);
                std::fs::rename(path, &published)
                    .map_err(|e| Error::io(format!("publishing {}", published.display()), e))?;
                self.published = true;
                manifest::sync_dir(dir)?;
                Ok(Store::Dir(published))
            }
            _ => {
                self.area.put(manifest::MANIFEST, text).await?;
                self.published = true;
                Ok(self.area.clone())
            }
        }
    }

    /// Removes what this run wrote (its own area only). For S3, the objects under
    /// `restage-<run>/`; its unfinished multipart uploads were aborted by their writers.
    pub async fn discard(mut self) {
        if self.published {
            return;
        }
        self.published = true;
        if let Err(e) = self.area.remove_all().await {
            tracing::warn!(area = %self.area.display(), error = %e, "could not remove the unfinished archive");
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // A folder can be removed here, synchronously (an early return, a panic); S3 needs
        // `discard`, which every failing path of a dump calls.
        if !self.published
            && let Store::Dir(path) = &self.area
            && let Err(e) = std::fs::remove_dir_all(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the unfinished archive");
        }
    }
}

/// Creates `dir/restage.lock` locked: locked under a temporary name, then renamed, so that
/// the file is never seen unlocked under its name while this process lives.
fn lock_partial(dir: &Path) -> std::io::Result<std::fs::File> {
    let temp = dir.join(format!(".{LOCK_FILE}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    flock(&file, false)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    writeln!(
        file,
        "restage dump, pid {} on {}: held with flock(2) while the dump runs",
        std::process::id(),
        host.trim()
    )?;
    std::fs::rename(&temp, dir.join(LOCK_FILE))?;
    Ok(file)
}

/// flock(2) exclusive; `wait: false` fails with `WouldBlock` when another holds it.
fn flock(file: &std::fs::File, wait: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock(2) on a descriptor we own for the call's duration.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Removes `.partial-*` folders of `dir` whose lock file nobody holds (their run is dead).
fn remove_dead_partials(dir: &Path) -> Cleaned {
    let mut cleaned = Cleaned::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return cleaned;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PARTIAL_PREFIX) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        // Only restage's: a folder without the lock file is not proven ours; left alone.
        let Ok(lock) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.join(LOCK_FILE))
        else {
            continue;
        };
        match flock(&lock, false) {
            Ok(()) => match std::fs::remove_dir_all(&path) {
                Ok(()) => cleaned.removed.push(path.display().to_string()),
                Err(e) => cleaned.warnings.push(format!(
                    "the partial archive {} of a dead run was not removed: {e}",
                    path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => cleaned.warnings.push(format!(
                "{}: its lock cannot be tested ({e}): left in place",
                path.display()
            )),
        }
    }
    cleaned
}

/// The S3 client for `bucket`, from the environment (module doc).
fn s3_client(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    let profile_name = env("AWS_PROFILE");
    let keys = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some((id, secret, env("AWS_SESSION_TOKEN"))),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Usage(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: one is set without the other (nothing was changed)"
                    .into(),
            ));
        }
        (None, None) => None,
    };
    let profile = match &keys {
        Some(_) => None,
        None => profile::load(profile_name.as_deref())?,
    };
    let keys = keys.or_else(|| {
        profile.as_ref().and_then(|p| {
            Some((
                p.access_key_id.clone()?,
                p.secret_access_key.clone()?,
                p.session_token.clone(),
            ))
        })
    });
    if let Some((id, secret, token)) = keys {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = token {
            builder = builder.with_token(token);
        }
    } else {
        // The object store's own chain: web identity (AWS_WEB_IDENTITY_TOKEN_FILE,
        // AWS_ROLE_ARN), ECS (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI), instance metadata.
        for (key, value) in std::env::vars() {
            if let Ok(config) = key
                .to_ascii_lowercase()
                .parse::<object_store::aws::AmazonS3ConfigKey>()
                && key.starts_with("AWS_")
                && !matches!(
                    config,
                    object_store::aws::AmazonS3ConfigKey::Bucket
                        | object_store::aws::AmazonS3ConfigKey::Endpoint
                        | object_store::aws::AmazonS3ConfigKey::Region
                        | object_store::aws::AmazonS3ConfigKey::Client(_)
                )
            {
                builder = builder.with_config(config, value);
            }
        }
    }
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| profile.as_ref().and_then(|p| p.region.clone()))
        .unwrap_or_else(|| "us-east-1".into());
    builder = builder.with_region(region);
    if let Some(endpoint) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
        builder = builder.with_endpoint(endpoint);
    }
    let allow_http = env("AWS_ALLOW_HTTP")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    // Bounded waits: a connection in 10 s, a request (a piece, a part's GET) in 10 min, a few
    // retries with backoff within 3 min.
    builder = builder
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(600)),
        )
        .with_retry(object_store::RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(180),
            ..Default::default()
        });
    let store = builder.build().map_err(|e| {
        Error::Usage(format!(
            "s3://{bucket}: cannot set up the S3 client: {} (nothing was changed)",
            object_store_message(&e)
        ))
    })?;
    Ok(Arc::new(store))
}

/// The shared credentials and config files of the AWS tools (`~/.aws/credentials`,
/// `~/.aws/config`): the keys and region of one profile. Only these keys are read
/// (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`, `region`); a profile
/// that assumes a role or uses SSO is not followed (use the environment or the tools'
/// `aws configure export-credentials`).
pub mod profile {
    use std::path::PathBuf;

    use crate::error::{Error, Result};

    #[derive(Debug, Default, PartialEq)]
    pub struct Profile {
        pub access_key_id: Option<String>,
        pub secret_access_key: Option<String>,
        pub session_token: Option<String>,
        pub region: Option<String>,
    }

    /// The `[name]` section of an INI text (`[profile name]` too, as `~/.aws/config` spells
    /// them): its `key = value` lines, lower-cased keys.
    pub fn section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
        let mut found: Option<Vec<(String, String)>> = None;
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let head = head.trim();
                let head = head.strip_prefix("profile ").map(str::trim).unwrap_or(head);
                inside = head == name;
                if inside && found.is_none() {
                    found = Some(Vec::new());
                }
                continue;
            }
            if inside
                && let Some((k, v)) = line.split_once('=')
                && let Some(values) = found.as_mut()
            {
                values.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        found
    }

    fn home() -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }

    /// The profile `name` (or `default` when None) from the files; None when neither file
    /// has it and no profile was asked for by name.
    pub fn load(name: Option<&str>) -> Result<Option<Profile>> {
        let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".aws/credentials")));
        let config = std::env::var_os("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".aws/config")));
        let wanted = name.unwrap_or("default");
        let read = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|text| section(&text, wanted))
        };
        let (keys, settings) = (read(&credentials), read(&config));
        if keys.is_none() && settings.is_none() {
            return match name {
                Some(name) => Err(Error::Usage(format!(
                    "AWS_PROFILE={name}: no such profile in {} or {} (nothing was changed)",
                    credentials
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.aws/credentials".into()),
                    config
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.aws/config".into()),
                ))),
                None => Ok(None),
            };
        }
        let mut profile = Profile::default();
        // The credentials file wins over the config file for the same key, as with the AWS
        // tools.
        for (k, v) in settings
            .into_iter()
            .flatten()
            .chain(keys.into_iter().flatten())
        {
            match k.as_str() {
                "aws_access_key_id" => profile.access_key_id = Some(v),
                "aws_secret_access_key" => profile.secret_access_key = Some(v),
                "aws_session_token" => profile.session_token = Some(v),
                "region" => profile.region = Some(v),
                _ => {}
            }
        }
        Ok(Some(profile))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_profile_is_read_from_either_spelling_of_its_section() {
            let credentials = "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=s1\n\n[staging]\nAWS_ACCESS_KEY_ID = AKIASTAGING\naws_secret_access_key = s2 \naws_session_token = t2\n";
            let config = "[default]\nregion = eu-west-1\n[profile staging]\nregion=eu-central-1\n";
            assert_eq!(
                section(credentials, "staging"),
                Some(vec![
                    ("aws_access_key_id".into(), "AKIASTAGING".into()),
                    ("aws_secret_access_key".into(), "s2".into()),
                    ("aws_session_token".into(), "t2".into()),
                ])
            );
            assert_eq!(
                section(config, "staging"),
                Some(vec![("region".into(), "eu-central-1".into())])
            );
            assert_eq!(section(credentials, "default").map(|s| s.len()), Some(2));
            assert_eq!(section(credentials, "other"), None);
            assert_eq!(section("", "default"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_s3_url("s3://my-bucket/nightly/app/"),
            Ok(("my-bucket".into(), "nightly/app".into()))
        );
        assert_eq!(
            parse_s3_url("s3://my-bucket"),
            Ok(("my-bucket".into(), String::new()))
        );
        assert_eq!(
            parse_s3_url("s3://my-bucket/"),
            Ok(("my-bucket".into(), String::new()))
        );
        for bad in [
            "s3://",
            "s3://ab",
            "s3://My_Bucket/x",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "http://bucket/x",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_partial_folder_is_removed_only_when_its_run_is_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A live run: its lock held by this process through another descriptor.
        let live = dir.path().join(".partial-live");
        std::fs::create_dir_all(&live).expect("mkdir");
        let held = lock_partial(&live).expect("lock");
        // A dead run: the lock file there, nobody holding it.
        let dead = dir.path().join(".partial-dead");
        std::fs::create_dir_all(dead.join("data")).expect("mkdir");
        drop(lock_partial(&dead).expect("lock"));
        // Not restage's: no lock file; and a folder of another name with a lock file.
        let foreign = dir.path().join(".partial-foreign");
        std::fs::create_dir_all(&foreign).expect("mkdir");
        let other = dir.path().join("keep-me");
        std::fs::create_dir_all(&other).expect("mkdir");
        drop(lock_partial(&other).expect("lock"));
        let cleaned = remove_dead_partials(dir.path());
        assert_eq!(cleaned.removed, vec![dead.display().to_string()]);
        assert!(cleaned.warnings.is_empty(), "{:?}", cleaned.warnings);
        assert!(live.exists() && foreign.exists() && other.exists() && !dead.exists());
        drop(held);
        let cleaned = remove_dead_partials(dir.path());
        assert_eq!(cleaned.removed, vec![live.display().to_string()]);
        assert!(foreign.exists() && other.exists());
    }
}
