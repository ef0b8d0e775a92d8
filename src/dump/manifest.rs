//! The manifest of an archive (`manifest.json`): what it holds and how to check it. Written
//! last, atomically ([`super::store::Partial::publish`]: a temporary file, fsync, rename,
//! fsync of the folder; one PUT on S3): an archive without one is not complete and nothing
//! reads it.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::refresh::source_database::SourceDatabase;

/// The `format` field of every manifest restage writes: how retention and `restore` know an
/// archive as restage's.
pub const FORMAT: &str = "restage-dump";
/// The layout version; `restore` refuses others.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const SCHEMA: &str = "schema.dump";
pub const DATA: &str = "data";
pub const KEY: &str = "key.age";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub restage_version: String,
    /// The run that wrote it (also the archive's folder name, `restage-<run>`).
    pub run: String,
    pub created_at: String,
    /// The source as the report names it (no password).
    pub source: String,
    pub snapshot: String,
    pub snapshot_at: Option<String>,
    pub rules_digest: Option<String>,
    /// `server_version_num` of the source: `restore` needs a pg_restore at least that new.
    pub server_version: u32,
    /// The source database's encoding, locale and settings: the new database gets them.
    pub database: SourceDatabase,
    /// The schema defines foreign servers (`restore` refuses such an archive: see docs).
    pub foreign_servers: bool,
    pub schema: FileEntry,
    /// `"age"` when the files are encrypted ([`super::crypt`]); their key is `key`.
    #[serde(default)]
    pub encryption: Option<String>,
    /// `key.age`: the archive's key, encrypted to the recipients or the passphrase.
    #[serde(default)]
    pub key: Option<FileEntry>,
    pub sequences: Vec<SequenceEntry>,
    pub tables: Vec<TableEntry>,
    /// The verification of the rows written (always passed: a failed one publishes nothing).
    pub verification: serde_json::Value,
    pub warnings: Vec<String>,
}

/// A file of the archive: its path inside the archive, size and SHA-256 (of the bytes as
/// stored, so a copy can be checked without the key or zstd).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceEntry {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// The columns of the COPY text, in order.
    pub columns: Vec<String>,
    /// The encoding rows are in, when not UTF-8 (COPY's `ENCODING`).
    pub encoding: Option<String>,
    pub rows: u64,
    pub parts: Vec<PartEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartEntry {
    #[serde(flatten)]
    pub file: FileEntry,
    pub rows: u64,
    /// Bytes of COPY text before compression.
    pub text_bytes: u64,
}

impl Manifest {
    /// Every file the manifest names, the schema first.
    pub fn files(&self) -> impl Iterator<Item = (&FileEntry, String)> {
        std::iter::once((&self.schema, "the schema".to_string()))
            .chain(self.key.iter().map(|k| (k, "the key".to_string())))
            .chain(self.tables.iter().flat_map(|t| {
                t.parts.iter().enumerate().map(move |(i, p)| {
                    (
                        &p.file,
                        format!(
                            "part {} of {} of table {}.{}",
                            i + 1,
                            t.parts.len(),
                            t.schema,
                            t.name
                        ),
                    )
                })
            }))
    }
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that counts and hashes what goes through it.
pub struct Hashing<W> {
    pub inner: W,
    hasher: Sha256,
    pub bytes: u64,
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer and the hex SHA-256 of what it was given.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    pub bytes: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The SHA-256 and size of a whole file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut reader = HashingReader::new(std::fs::File::open(path)?);
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(reader.finish())
}

/// fsync of a folder (a rename in it is durable after this).
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

/// Why a folder or prefix is not an archive `restore` can read.
#[derive(Debug)]
pub enum NotAnArchive {
    /// No manifest: not an archive, or one whose dump did not finish (the archive's place).
    Missing(String),
    /// A manifest that does not parse or is not restage's (or of another version): the
    /// manifest's place, why.
    Garbled(String, String),
    /// The manifest's place, why.
    Unreadable(String, String),
}

impl std::fmt::Display for NotAnArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAnArchive::Missing(p) => write!(
                f,
                "{p}: no {MANIFEST}: not a restage archive, or one whose dump did not finish"
            ),
            NotAnArchive::Garbled(p, why) => write!(f, "{p}: not a restage manifest: {why}"),
            NotAnArchive::Unreadable(p, e) => write!(f, "{p}: cannot read it: {e}"),
        }
    }
}

/// Parses the manifest `text` read from `at` (its place, for messages).
pub fn parse(text: &[u8], at: &str) -> Result<Manifest, NotAnArchive> {
    let garbled = |why: String| NotAnArchive::Garbled(at.to_string(), why);
    // The format first, so another program's JSON is named as such.
    let head: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| garbled(e.to_string()))?;
    if head.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(garbled(format!("its \"format\" is not \"{FORMAT}\"")));
    }
    let version = head.get("format_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(garbled(format!(
            "format_version {} (this restage reads {FORMAT_VERSION})",
            version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "missing".into())
        )));
    }
    let manifest: Manifest = serde_json::from_value(head).map_err(|e| garbled(e.to_string()))?;
    for (entry, what) in manifest.files() {
        if !safe_relative(&entry.file) {
            return Err(garbled(format!(
                "{what}: file {:?} is outside the archive",
                entry.file
            )));
        }
    }
    Ok(manifest)
}

/// A path inside the archive: relative, no `..`.
fn safe_relative(file: &str) -> bool {
    let path = Path::new(file);
    !file.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_archive_are_refused() {
        assert!(safe_relative("data/00001.copy.zst"));
        assert!(safe_relative("schema.dump"));
        assert!(!safe_relative("../x"));
        assert!(!safe_relative("/etc/passwd"));
        assert!(!safe_relative("data/../../x"));
        assert!(!safe_relative(""));
    }

    #[test]
    fn a_garbled_or_foreign_manifest_is_named() {
        let e = parse(b"{\"format\": \"other\"}", "m.json").expect_err("not ours");
        assert!(e.to_string().contains("is not \"restage-dump\""), "{e}");
        assert!(e.to_string().starts_with("m.json: "), "{e}");
        assert!(matches!(
            parse(b"{\"format\": \"restage-dump\", \"format_vers", "m.json"),
            Err(NotAnArchive::Garbled(..))
        ));
        let e = parse(
            b"{\"format\": \"restage-dump\", \"format_version\": 99}",
            "m.json",
        )
        .expect_err("newer");
        assert!(e.to_string().contains("format_version 99"), "{e}");
    }
}
