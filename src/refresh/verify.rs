//! Verification of a staging database, before the swap (and as `restage verify` on the live
//! one): no protected source value present, no rule that left its values as they were, every
//! foreign key valid, row counts as planned. A failure is exit 3; during a refresh it leaves
//! the live staging database untouched.
//!
//! **During a refresh, verification runs in the data stream** (issue 13): nothing is read
//! back from the new database. Two checks ride on the row stage ([`super::rows`]):
//!
//! - **The identity check.** For every ruled column (and every path of a `json` rule), the
//!   row stage counts the non-null inputs that carry something and how many of them came out
//!   equal to their input, with the number chance explains, from what the transform declares
//!   in the [`registry`](crate::transform::registry)
//!   ([`TransformDef::chance_unchanged`]): `first_name` from a list of about 3,000 names is
//!   equal by chance about 1 in 3,000 times (counted at
//!   [`COMMON_SPACE_MARGIN`](crate::transform::registry::COMMON_SPACE_MARGIN) times that),
//!   `hash` or `date_shift` never, `choice` 1 in as many values as it lists, `noise` as often
//!   as a value's last digit is coarser than the move, `mask` only for a value with no letter
//!   or digit. More unchanged than chance allows ([`too_many`]) fails the run naming the
//!   column, "N of M unchanged", never a value. Transforms meant to keep part of a value
//!   (`mask`, `regex_replace`, `json`) must also change *something*: a rule that changed no
//!   value of a column, or a `json` path that reached no document, fails the same way, unless
//!   the rule says `may_match_nothing: true`.
//! - **The leak probe.** Before the data stage, source values of the ruled columns and ruled
//!   json paths are sampled ([`sample_source`]) and kept as 64-bit keyed hashes, never the
//!   values; as each batch is written, every text-like output column (text, varchar, xml,
//!   json, jsonb, arrays, uuid, inet, composite and other types in their text form, and
//!   bytea where it decodes as UTF-8) is looked up whole and as runs of consecutive tokens,
//!   case-folded ([`LeakProbe::find`]).
//!
//! `restage verify` has no stream: it reads staging with the same probe and matcher
//! ([`verify`]).
//!
//! What is sampled for the probe is read from the registry, not from a list of names
//! ([`samples_source`]): the source values of rules that write new values whose outputs are
//! not values real data shares. Names, places and listed values (a real "Anna" in a kept note
//! equal to a sampled "Anna" proves nothing), `date_shift` and `noise` (dates and numbers
//! meet by chance) and `regex_replace` (it keeps what its pattern misses, by design) are
//! covered by the identity check instead. Values shorter than [`MIN_LEN`] characters (as
//! normalized: lower case, tokens joined by one space) are not compared. How many matches
//! chance explains is counted from the transform's declared output space ([`leak_threshold`]):
//! a fake `ipv4` equal to a real one in a json document is chance, a kept one is not.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::catalog::{Catalog, QualifiedName, TypeKind};
use crate::copy_text;
use crate::db::{DbError, quote_ident};
use crate::pg_encoding::{TextEncoding, reading_client_encoding};
use crate::rules::BoundRules;
use crate::transform::RuleSpec;
use crate::transform::registry::{ChanceUnchanged, Kept, TransformDef, noise_chance};

/// Values and tokens shorter than this (in characters, normalized) are not compared.
pub const MIN_LEN: usize = 6;
/// Longest source value sampled for the cross-column probe, in bytes. Identifying values
/// (emails, names, phones, SSNs, addresses, IBANs) are far shorter; a longer one (a whole
/// document, a 40 MiB text) is not sampled, so the sample's memory stays bounded
/// (`SAMPLE_PER_COLUMN` × this, at most 40 MiB) whatever the data. Such values are still
/// covered in their own column by the unchanged-value check.
pub const MAX_SAMPLED_BYTES: usize = 4096;
/// Source values sampled per checked column. The chance to catch a leak of a few rows grows
/// with it; memory is about 16 bytes a value.
pub const SAMPLE_PER_COLUMN: u64 = 10_000;
/// The longest run of consecutive tokens a sampled value is looked for as (a value of more
/// tokens is looked for whole).
pub const MAX_RUN: usize = 16;

/// True when the leak probe samples the source values of a column (or json path) ruled by
/// `def`: its rule writes values that carry nothing of the input, or keeps only a few edge
/// characters of it (`mask`), and its outputs are not values real data shares. The other
/// ruled columns are covered by the identity check.
fn samples_source(def: &TransformDef) -> bool {
    let writes_new_values =
        def.replaces_whole_value() || def.keeps_part() == Some(Kept::EdgeCharacters);
    writes_new_values && !def.output_space().shares_real_values()
}

/// True when a column ruled by `def` holds only outputs drawn from the seed, a constant or
/// NULL (equal to a real value only by chance): the probe skips it. Columns that carry copied
/// content — unruled, `keep`, `mask`, `regex_replace`, `json`, `date_shift`, `noise` — are
/// probed.
fn replaces_every_value(def: &TransformDef) -> bool {
    def.replaces_whole_value()
}

/// How many different values the outputs of `def` are drawn from, for telling chance matches
/// of the probe from leaks: its declared output space; infinite when that is unbounded, one
/// value (a constant) or decided by the input.
fn chance_space(def: &TransformDef) -> f64 {
    match def.output_space().distinct_outputs() {
        Some(n) if n > 1.0 => n,
        _ => f64::INFINITY,
    }
}

/// Keyed hashes of sampled source values, with the column each came from: the one matcher of
/// both the stream check and `restage verify`.
pub struct LeakProbe {
    key: (u64, u64),
    hashes: crate::prehashed::DigestMap<u32>,
    /// Bit `k` set: some sampled value has `k` tokens (k ≤ [`MAX_RUN`]).
    runs: u32,
    /// Some sampled value has more than [`MAX_RUN`] tokens.
    long: bool,
    origins: Vec<Origin>,
    /// Columns whose every value was replaced by a rule (see [`replaces_every_value`]): not
    /// scanned.
    replaced: std::collections::HashSet<(QualifiedName, String)>,
}

/// A checked source column.
#[derive(Debug, Clone)]
struct Origin {
    name: String,
    sampled: u64,
    /// How many different values its rule's outputs are drawn from (see [`chance_space`]).
    space: f64,
}

/// How many matches between a staging column and an origin can be chance: with `values`
/// scanned and λ expected by chance, see [`threshold`].
fn leak_threshold(values: u64, origin: &Origin) -> (f64, u64) {
    let lambda = values as f64 * origin.sampled as f64 / origin.space;
    (lambda, threshold(lambda))
}

/// The least count that chance does not explain when λ are expected: 1 when λ < 0.01, else
/// λ + 6√λ + 3 (a Poisson count that far above its mean has odds far below one in a million).
fn threshold(lambda: f64) -> u64 {
    if lambda < 0.01 {
        1
    } else {
        (lambda + 6.0 * lambda.sqrt() + 3.0).ceil() as u64
    }
}

/// True when `unchanged` outputs equal to their input are more than chance explains, with
/// `expected` of them by chance.
pub fn too_many(unchanged: u64, expected: f64) -> bool {
    unchanged >= threshold(expected)
}

impl std::fmt::Debug for LeakProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LeakProbe({} values from {} columns)",
            self.hashes.len(),
            self.origins.len()
        )
    }
}

/// A fast keyed 64-bit mix (the folded 128-bit product of wyhash).
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A value as the matcher sees it: its tokens (maximal runs of letters and digits, lower
/// case), each hashed, so that a run of consecutive tokens (joined by one space) is hashed
/// without building it.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Per token: its keyed hash and its length in characters.
    hashes: Vec<u64>,
    chars: Vec<usize>,
    token: String,
    /// A bytea's decoded text.
    decoded: String,
}

const RUN_BASE: u64 = 0x9E37_79B9_7F4A_7C15;

/// The run of every token of a value so far: its hash, length in characters, tokens.
#[derive(Default)]
struct Run {
    hash: u64,
    len: usize,
    tokens: usize,
}

/// Calls `f` with each token of `text` (a maximal run of letters and digits) and its length
/// in characters, until `f` returns Some. A token is passed as `(bytes, fold)`: all-ASCII
/// text (most text) is read byte by byte and its tokens passed as they stand in `text`, still
/// to be lower-cased (`fold`, see [`LeakProbe::token_hash`]); other text is read char by char
/// into `buffer`, lower-cased there. Both give a token the same hash. The probe is the
/// largest single client-side cost of the demo's anonymized refresh (perf: 14 % of restage's
/// CPU); the byte path reads the events' jsonb payloads about 20 % faster than the char path
/// did (benches/verify.rs: 117 → 143 MiB/s).
fn for_each_token<T>(
    text: &str,
    buffer: &mut String,
    mut f: impl FnMut(&[u8], bool, usize) -> Option<T>,
) -> Option<T> {
    if text.is_ascii() {
        let bytes = text.as_bytes();
        let mut start = None;
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_alphanumeric() {
                start.get_or_insert(i);
            } else if let Some(s) = start.take() {
                let found = f(&bytes[s..i], true, i - s);
                if found.is_some() {
                    return found;
                }
            }
        }
        return start.and_then(|s| f(&bytes[s..], true, bytes.len() - s));
    }
    buffer.clear();
    let mut chars = 0;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                buffer.push(c.to_ascii_lowercase());
            } else {
                buffer.extend(c.to_lowercase());
            }
            chars += 1;
        } else if !buffer.is_empty() {
            let found = f(buffer.as_bytes(), false, chars);
            buffer.clear();
            chars = 0;
            if found.is_some() {
                return found;
            }
        }
    }
    if buffer.is_empty() {
        return None;
    }
    let found = f(buffer.as_bytes(), false, chars);
    buffer.clear();
    found
}

impl LeakProbe {
    fn empty() -> LeakProbe {
        let key = || rand::random::<u64>() | 1;
        LeakProbe {
            key: (key(), key()),
            hashes: Default::default(),
            runs: 0,
            long: false,
            origins: Vec::new(),
            replaced: Default::default(),
        }
    }

    /// A probe holding `values` as the sampled values of one column, `origin`, with a random
    /// key as [`sample_source`]'s: for the benchmarks (benches/verify.rs), which time
    /// [`LeakProbe::find`] without a database, and the unit tests. Values too short to
    /// compare are left out, as sampling leaves them out.
    #[doc(hidden)]
    pub fn of_values<'a>(origin: &str, values: impl IntoIterator<Item = &'a str>) -> LeakProbe {
        let mut probe = LeakProbe::empty();
        probe.origins.push(Origin {
            name: origin.to_string(),
            sampled: 0,
            space: f64::INFINITY,
        });
        let mut scratch = Tokens::default();
        for value in values {
            if probe.insert(value, 0, &mut scratch) {
                probe.origins[0].sampled += 1;
            }
        }
        probe
    }

    /// Sampled values held.
    pub fn values(&self) -> usize {
        self.hashes.len()
    }

    /// The keyed hash of a token in lower case. With `fold`, `token` is ASCII letters and
    /// digits in any case, lower-cased here eight bytes at a time (setting bit 0x20 lowers
    /// `A`–`Z` and leaves `a`–`z` and `0`–`9` as they are): the same hash as its lower-case
    /// bytes without `fold`.
    fn token_hash(&self, token: &[u8], fold: bool) -> u64 {
        const LOWER: u64 = 0x2020_2020_2020_2020;
        let mut h = self.key.0 ^ token.len() as u64;
        for chunk in token.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let mut word = u64::from_le_bytes(word);
            if fold {
                // The chunk's bytes only (the low ones): the padding stays zero.
                word |= LOWER >> (8 * (8 - chunk.len()));
            }
            h = mum(h ^ word, self.key.1);
        }
        mum(h, self.key.0 ^ RUN_BASE)
    }

    /// Splits `text` into tokens (lower case), hashed.
    fn tokenize(&self, text: &str, t: &mut Tokens) {
        t.hashes.clear();
        t.chars.clear();
        let mut token = std::mem::take(&mut t.token);
        for_each_token(text, &mut token, |token, fold, chars| {
            t.hashes.push(self.token_hash(token, fold));
            t.chars.push(chars);
            None::<()>
        });
        t.token = token;
    }

    /// The hash of tokens `i..j` as one run, and its length in characters (tokens joined by
    /// one space).
    fn run(&self, t: &Tokens, i: usize, j: usize) -> (u64, usize) {
        let mut h = 0u64;
        let mut len = j - i - 1;
        for k in i..j {
            h = h.wrapping_mul(RUN_BASE).wrapping_add(t.hashes[k]);
            len += t.chars[k];
        }
        (mum(h ^ (j - i) as u64, self.key.1), len)
    }

    /// Adds a sampled value under origin `index`; false when it is too short to compare.
    fn insert(&mut self, value: &str, index: u32, scratch: &mut Tokens) -> bool {
        self.tokenize(value, scratch);
        let n = scratch.hashes.len();
        if n == 0 {
            return false;
        }
        let (h, len) = self.run(scratch, 0, n);
        if len < MIN_LEN {
            return false;
        }
        if n <= MAX_RUN {
            self.runs |= 1 << n;
        } else {
            self.long = true;
        }
        self.hashes.insert(h, index);
        true
    }

    /// The index of the origin named `name`, added when new with the output space of its
    /// rule's transform (see [`chance_space`]).
    fn origin(&mut self, name: String, def: &TransformDef) -> u32 {
        match self.origins.iter().position(|o| o.name == name) {
            Some(i) => i as u32,
            None => {
                self.origins.push(Origin {
                    name,
                    sampled: 0,
                    space: chance_space(def),
                });
                (self.origins.len() - 1) as u32
            }
        }
    }

    /// The origin (index) of the first protected value found in `text`: the whole text, or
    /// a run of its consecutive tokens, case-folded (so `JANE@CORP.COM`, an address inside a
    /// sentence and `(206) 555-9857` for `206-555-9857` are found).
    ///
    /// Tokens are hashed as they are read and only the last [`MAX_RUN`] are held, so memory
    /// does not grow with the value (a 40 MiB text is millions of tokens: tests/huge_values.rs).
    pub fn find(&self, text: &str, t: &mut Tokens) -> Option<u32> {
        if self.hashes.is_empty() {
            return None;
        }
        // The longest run any sampled value has.
        let longest = ((32 - self.runs.leading_zeros()).saturating_sub(1) as usize).max(1);
        t.hashes.clear();
        t.chars.clear();
        let mut whole = Run::default();
        let mut token = std::mem::take(&mut t.token);
        let found = for_each_token(text, &mut token, |token, fold, chars| {
            self.token_ends(t, self.token_hash(token, fold), chars, longest, &mut whole)
        });
        t.token = token;
        if found.is_some() {
            return found;
        }
        if self.long && whole.tokens > MAX_RUN && whole.len >= MIN_LEN {
            return self
                .hashes
                .get(&mum(whole.hash ^ whole.tokens as u64, self.key.1))
                .copied();
        }
        None
    }

    /// A token of hash `x` and `chars` characters has been read: adds it to the whole
    /// value's run and to the window of the last `longest` tokens, then looks up every run
    /// that ends with it (the same hashes as [`LeakProbe::run`]).
    fn token_ends(
        &self,
        t: &mut Tokens,
        x: u64,
        chars: usize,
        longest: usize,
        whole: &mut Run,
    ) -> Option<u32> {
        whole.hash = whole.hash.wrapping_mul(RUN_BASE).wrapping_add(x);
        whole.len += chars + usize::from(whole.tokens > 0);
        whole.tokens += 1;
        if t.hashes.len() == longest {
            t.hashes.remove(0);
            t.chars.remove(0);
        }
        t.hashes.push(x);
        t.chars.push(chars);
        // Runs ending here, one token longer each step: sum of x_m * B^(end - m).
        let mut h = 0u64;
        let mut power = 1u64;
        let mut len = 0usize;
        for k in 1..=t.hashes.len() {
            let m = t.hashes.len() - k;
            h = h.wrapping_add(t.hashes[m].wrapping_mul(power));
            power = power.wrapping_mul(RUN_BASE);
            len += t.chars[m] + usize::from(k > 1);
            if self.runs & (1 << k) == 0 || len < MIN_LEN {
                continue;
            }
            if let Some(o) = self.hashes.get(&mum(h ^ k as u64, self.key.1)) {
                return Some(*o);
            }
        }
        None
    }

    /// [`LeakProbe::find`] on a value of a column probed `as_` (a bytea as the UTF-8 text
    /// its bytes hold).
    pub fn find_in(&self, as_: ScanAs, value: &str, t: &mut Tokens) -> Option<u32> {
        match as_ {
            ScanAs::Text => self.find(value, t),
            ScanAs::Bytes => {
                let mut decoded = std::mem::take(&mut t.decoded);
                let found = if bytea_text(value, &mut decoded) {
                    self.find(&decoded, t)
                } else {
                    None
                };
                t.decoded = decoded;
                found
            }
        }
    }
}

/// How a column's text is probed: as it reads, or (bytea) as the UTF-8 text its bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanAs {
    Text,
    Bytes,
}

/// How a column of `kind` is probed, None when its values cannot carry a copied text
/// (numbers, dates, booleans, tsvector, enum labels).
pub fn scan_as(kind: &TypeKind) -> Option<ScanAs> {
    match kind {
        TypeKind::Text
        | TypeKind::Json
        | TypeKind::Jsonb
        | TypeKind::Uuid
        | TypeKind::Inet
        | TypeKind::Cidr
        | TypeKind::MacAddr
        | TypeKind::Other(_) => Some(ScanAs::Text),
        TypeKind::Bytea => Some(ScanAs::Bytes),
        _ => None,
    }
}

/// The text a bytea value (`\x…` hex, or an array of them) holds: the UTF-8 runs of its
/// bytes, into `out` (cleared first); false when there is none.
fn bytea_text(value: &str, out: &mut String) -> bool {
    out.clear();
    let mut bytes = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("\\x") {
        rest = &rest[at + 2..];
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        bytes.clear();
        for pair in rest.as_bytes()[..end].chunks_exact(2) {
            let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            bytes.push((digit(pair[0]) << 4) | digit(pair[1]));
        }
        // Text with binary around it (a file, a serialized object): its UTF-8 runs.
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            out.push(' ');
        }
        rest = &rest[end..];
    }
    !out.trim().is_empty()
}

/// Samples the values of every checked ruled column from the source (inside the snapshot).
pub async fn sample_source(
    source: &Client,
    server: &str,
    catalog: &Catalog,
    rules: &BoundRules,
) -> Result<LeakProbe, DbError> {
    let mut probe = LeakProbe::empty();
    for table in catalog.data_tables() {
        let Some(bound) = rules.table(&table.name) else {
            continue;
        };
        for (column, b) in table.copy_columns().zip(&bound.columns) {
            // A column without a transform (no rule, or `keep`) has nothing to check.
            let Some(def) = b.def.filter(|_| b.transform.is_some()) else {
                continue;
            };
            if replaces_every_value(def) {
                probe
                    .replaced
                    .insert((table.name.clone(), column.name.clone()));
            }
            // What to sample: the column's values, or for a `json` rule the values its checked
            // paths reach inside the documents.
            let mut targets: Vec<(String, String, &TransformDef)> = Vec::new();
            let text_like = matches!(
                column.ty.kind,
                TypeKind::Text | TypeKind::Inet | TypeKind::Cidr | TypeKind::Uuid
            );
            let root = catalog.root_of(&table.name);
            if samples_source(def) && text_like {
                let value = if column.ty.array {
                    format!("unnest({})::text", quote_ident(&column.name))
                } else {
                    format!("{}::text", quote_ident(&column.name))
                };
                targets.push((format!("{root}.{}", column.name), value, def));
            }
            if def.holds_rules_by_path()
                && let Some(spec) = &b.spec
            {
                for (path, sql_path, nested) in crate::transform::json::sql_paths(spec) {
                    if !samples_source(nested) {
                        continue;
                    }
                    let value = format!(
                        "jsonb_path_query({}::jsonb, {}) #>> '{{}}'",
                        quote_ident(&column.name),
                        crate::db::quote_literal(&sql_path)
                    );
                    targets.push((format!("{root}.{} {path}", column.name), value, nested));
                }
            }
            for (origin, value, def) in targets {
                let index = probe.origin(origin, def);
                let value = format!(
                    "convert_to({value}, {})",
                    crate::db::quote_literal(reading_client_encoding(&catalog.encoding))
                );
                sample_values(source, server, table, &value, index, &mut probe).await?;
            }
        }
    }
    Ok(probe)
}

/// Samples up to [`SAMPLE_PER_COLUMN`] values of the SQL expression `value` over `table` into
/// the probe, under origin `index`.
async fn sample_values(
    source: &Client,
    server: &str,
    table: &crate::catalog::Table,
    value: &str,
    index: u32,
    probe: &mut LeakProbe,
) -> Result<(), DbError> {
    let rows = crate::plan::estimated_rows(table).max(1);
    let sample = if rows > SAMPLE_PER_COLUMN * 5 {
        let percent = (SAMPLE_PER_COLUMN as f64 * 2.0 * 100.0 / rows as f64).clamp(0.01, 100.0);
        format!(" TABLESAMPLE SYSTEM ({percent:.4})")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT v FROM (SELECT {value} AS v FROM ONLY {}{sample}) s WHERE v IS NOT NULL AND octet_length(v) <= {MAX_SAMPLED_BYTES} LIMIT {SAMPLE_PER_COLUMN}",
        table.name.sql()
    );
    let origin = probe.origins[index as usize].name.clone();
    let found = source
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::new(server, format!("sampling {origin} for the leak check"), e))?;
    let mut text = String::new();
    let mut tokens = Tokens::default();
    for row in found {
        // Bytes (`convert_to`), so a SQL_ASCII value that is not UTF-8 is read as the data
        // stage reads it (see crate::pg_encoding) instead of failing.
        let bytes: Vec<u8> = row.get(0);
        text.clear();
        let _ = TextEncoding::SqlAscii.decode(&bytes, &mut text);
        let v = text.trim();
        // inet prints a host as 10.1.2.3/32 in some forms; compare the address.
        let v = v.strip_suffix("/32").unwrap_or(v);
        if probe.insert(v, index, &mut tokens) {
            probe.origins[index as usize].sampled += 1;
        }
    }
    Ok(())
}

/// What verification found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub passed: bool,
    pub leak_values_checked: usize,
    pub staging_values_scanned: u64,
    /// `staging table.column ← source table.column (n values)`.
    pub leaks: Vec<String>,
    pub foreign_keys_checked: usize,
    pub foreign_key_violations: Vec<String>,
    pub count_mismatches: Vec<String>,
    pub notes: Vec<String>,
    /// Per ruled column and json path: values checked, unchanged, expected by chance,
    /// verdict (the stream's identity check; `restage verify` lists the sampled columns).
    pub columns: Vec<ColumnVerdict>,
}

impl VerifyReport {
    /// Adds what the stream found (leaks, per-column verdicts, notes, counts) to the checks
    /// made after the load.
    pub fn absorb(&mut self, streamed: VerifyReport) {
        self.leak_values_checked = streamed.leak_values_checked;
        self.staging_values_scanned += streamed.staging_values_scanned;
        self.leaks.extend(streamed.leaks);
        self.notes.extend(streamed.notes);
        self.columns = streamed.columns;
        self.passed = self.passed && streamed.passed;
    }

    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.leaks.is_empty() {
            parts.push(format!(
                "protected source values found in staging: {}",
                self.leaks.join("; ")
            ));
        }
        if !self.foreign_key_violations.is_empty() {
            parts.push(format!(
                "foreign keys violated: {}",
                self.foreign_key_violations.join("; ")
            ));
        }
        if !self.count_mismatches.is_empty() {
            parts.push(format!(
                "row counts off plan: {}",
                self.count_mismatches.join("; ")
            ));
        }
        parts.join(" | ")
    }
}

/// How row counts are verified.
#[derive(Debug, Clone, Copy)]
pub enum Counts<'a> {
    /// Count every table and compare with the rows the plan put there.
    Expected(&'a BTreeMap<QualifiedName, u64>),
    /// Already checked while loading: every COPY's row count as the server reported it
    /// equals the rows sent (see `copy.rs`).
    CheckedAtLoad,
    /// No plan is known (a database restage did not build).
    Unknown,
}

/// Scans a staging database: leaks (when `probe` is given: `restage verify`; a refresh
/// probed its rows in the stream, see [`StreamVerifier`]), foreign keys, counts.
pub async fn verify(
    staging: &deadpool_postgres::Pool,
    server: &str,
    probe: Option<&LeakProbe>,
    counts_check: Counts<'_>,
    jobs: usize,
) -> Result<VerifyReport, DbError> {
    let nothing = LeakProbe::empty();
    let scanned = probe.is_some();
    let probe = probe.unwrap_or(&nothing);
    let expected = match counts_check {
        Counts::Expected(e) => Some(e),
        _ => None,
    };
    let client = staging
        .get()
        .await
        .map_err(|e| DbError::other(server, format!("connecting for verification: {e}")))?;
    let mut report = VerifyReport {
        leak_values_checked: probe.values(),
        ..VerifyReport::default()
    };
    if scanned {
        report.columns = probe
            .origins
            .iter()
            .map(|o| ColumnVerdict {
                column: o.name.clone(),
                values_checked: o.sampled,
                verdict: "sampled for the leak probe".into(),
                ..ColumnVerdict::default()
            })
            .collect();
    }

    // One pass per table: its text-like columns (for leaks) and its row count. Without counts
    // to check and nothing to look for (a refresh: its rows were probed and counted in the
    // stream), nothing is read, not even the catalog: only the foreign keys remain.
    let scan_needed = expected.is_some() || probe.values() > 0;
    let catalog = if scan_needed {
        Some(Catalog::read(&client, server).await?)
    } else {
        None
    };
    let tables: Vec<(QualifiedName, Vec<(String, ScanAs)>)> = catalog
        .iter()
        .flat_map(|catalog| catalog.data_tables())
        .map(|t| {
            let cols = t
                .columns
                .iter()
                .filter(|c| !probe.replaced.contains(&(t.name.clone(), c.name.clone())))
                .filter_map(|c| scan_as(&c.ty.kind).map(|a| (c.name.clone(), a)))
                .collect();
            (t.name.clone(), cols)
        })
        .collect();
    // Without counts to check, only tables with text-like columns need reading.
    let tables: Vec<(QualifiedName, Vec<(String, ScanAs)>)> = match expected {
        Some(_) => tables,
        None => tables.into_iter().filter(|(_, c)| !c.is_empty()).collect(),
    };
    let encoding = catalog
        .as_ref()
        .map(|c| c.encoding.as_str())
        .unwrap_or("UTF8");
    let results: Vec<Result<TableScan, DbError>> = futures_util::stream::iter(tables)
        .map(|(table, columns)| {
            let pool = staging.clone();
            let server = server.to_string();
            async move {
                let client = pool.get().await.map_err(|e| {
                    DbError::other(&server, format!("connecting for verification: {e}"))
                })?;
                scan_table(&client, &server, &table, &columns, probe, encoding).await
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    let mut hits: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
    for r in results {
        let scan = r?;
        report.staging_values_scanned += scan.values;
        for (column, origin, n, values) in scan.hits {
            let e = hits.entry((column, origin)).or_default();
            e.0 += n;
            e.1 = e.1.max(values);
        }
        counts.insert(scan.table, scan.rows);
    }
    probe_verdicts(probe, hits, &mut report);

    if let Some(expected) = expected {
        for (table, want) in expected {
            let got = counts.get(table).copied().unwrap_or(0);
            if got != *want {
                report
                    .count_mismatches
                    .push(format!("{table}: {got} rows, {want} planned"));
            }
        }
    } else if matches!(counts_check, Counts::Unknown) {
        report
            .notes
            .push("row counts not checked: this database has no plan recorded by restage".into());
    }

    check_foreign_keys(&client, server, &mut report).await?;
    report.passed = report.leaks.is_empty()
        && report.count_mismatches.is_empty()
        && report.foreign_key_violations.is_empty();
    Ok(report)
}

/// Foreign keys, as the database itself holds them (not as production's catalog listed
/// them): those validated when they were created hold, so only NOT VALID ones are checked,
/// each with one anti-join. One catalog query; constraints are told apart by their table,
/// not by name alone (two tables may each have a constraint of the same name). A key on a
/// partitioned table is checked once, on the parent, which reads every partition.
async fn check_foreign_keys(
    client: &Client,
    server: &str,
    report: &mut VerifyReport,
) -> Result<(), DbError> {
    let fks = client
        .query(
            "SELECT con.conname::text, format('%I.%I', n.nspname, c.relname), con.convalidated,
                    format('%I.%I', rn.nspname, r.relname),
                    ARRAY(SELECT quote_ident(a.attname::text)
                            FROM unnest(con.conkey) WITH ORDINALITY k(attnum, i)
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                           ORDER BY k.i),
                    ARRAY(SELECT quote_ident(a.attname::text)
                            FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
                            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                           ORDER BY k.i)
               FROM pg_constraint con
               JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_class r ON r.oid = con.confrelid
               JOIN pg_namespace rn ON rn.oid = r.relnamespace
              WHERE con.contype = 'f' AND con.conparentid = 0
              ORDER BY 2, 1",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "listing foreign keys", e))?;
    report.foreign_keys_checked = fks.len();
    for fk in fks.iter().filter(|r| !r.get::<_, bool>(2)) {
        let name: String = fk.get(0);
        let table: String = fk.get(1);
        let referenced: String = fk.get(3);
        let columns: Vec<String> = fk.get(4);
        let referenced_columns: Vec<String> = fk.get(5);
        let join: Vec<String> = columns
            .iter()
            .zip(&referenced_columns)
            .map(|(c, r)| format!("p.{r} = c.{c}"))
            .collect();
        let not_null: Vec<String> = columns
            .iter()
            .map(|c| format!("c.{c} IS NOT NULL"))
            .collect();
        // MATCH SIMPLE (the default): a row with any NULL in the key references nothing.
        let sql = format!(
            "SELECT count(*) FROM {table} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {referenced} p WHERE {})",
            not_null.join(" AND "),
            join.join(" AND ")
        );
        let bad: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| {
                DbError::new(server, format!("checking foreign key {name} on {table}"), e)
            })?
            .get(0);
        if bad > 0 {
            report.foreign_key_violations.push(format!(
                "{name} on {table} ({bad} rows; the constraint is NOT VALID, so it was not checked when created)"
            ));
        }
    }
    Ok(())
}

struct TableScan {
    table: QualifiedName,
    rows: u64,
    values: u64,
    /// (`table.column`, origin, matches, values scanned in that column).
    hits: Vec<(String, u32, u64, u64)>,
}

async fn scan_table(
    client: &Client,
    server: &str,
    table: &QualifiedName,
    columns: &[(String, ScanAs)],
    probe: &LeakProbe,
    encoding: &str,
) -> Result<TableScan, DbError> {
    // A SQL_ASCII database's bytes reach us as they are (the server cannot convert them).
    let reading = reading_client_encoding(encoding);
    let encoding_option = if reading == "UTF8" {
        String::new()
    } else {
        format!(" (ENCODING {})", crate::db::quote_literal(reading))
    };
    let select = if columns.is_empty() {
        "1".to_string()
    } else {
        columns
            .iter()
            // COPY prints every type in its text form: no cast needed.
            .map(|(c, _)| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "COPY (SELECT {select} FROM ONLY {}) TO STDOUT{encoding_option}",
        table.sql()
    );
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| DbError::new(server, format!("scanning {table}"), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut rows = 0u64;
    let mut values = 0u64;
    let mut hits: HashMap<(usize, u32), u64> = HashMap::new();
    let mut column_values = vec![0u64; columns.len()];
    let mut text = String::new();
    let mut raw = Vec::new();
    let mut tokens = Tokens::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DbError::new(server, format!("scanning {table}"), e))?;
        rows += 1;
        if columns.is_empty() || probe.values() == 0 {
            continue;
        }
        let line = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
        for (i, field) in copy_text::fields(line).enumerate() {
            if copy_text::is_null(field) {
                continue;
            }
            text.clear();
            raw.clear();
            if copy_text::unescape(field, &mut raw).is_err()
                || TextEncoding::SqlAscii.decode(&raw, &mut text).is_err()
            {
                continue;
            }
            values += 1;
            if let Some(n) = column_values.get_mut(i) {
                *n += 1;
            }
            let as_ = columns.get(i).map_or(ScanAs::Text, |(_, a)| *a);
            if let Some(origin) = probe.find_in(as_, &text, &mut tokens) {
                *hits.entry((i, origin)).or_default() += 1;
            }
        }
    }
    let hits = hits
        .into_iter()
        .map(|((i, origin), n)| {
            (
                format!(
                    "{table}.{}",
                    columns.get(i).map(|(c, _)| c.as_str()).unwrap_or("?")
                ),
                origin,
                n,
                column_values.get(i).copied().unwrap_or(0),
            )
        })
        .collect();
    Ok(TableScan {
        table: table.clone(),
        rows,
        values,
        hits,
    })
}

/// One ruled column's (or json path's) identity check, as the report shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ColumnVerdict {
    /// `table.column`, or `table.column $.path`.
    pub column: String,
    /// The rule's transform.
    pub rule: String,
    /// Non-null values that carry something (a letter or a digit), seen by the rule.
    pub values_checked: u64,
    /// How many of them came out equal to their input.
    pub unchanged: u64,
    /// How many chance explains.
    pub expected_by_chance: f64,
    /// For a rule drawing from listed values: how many inputs were among them (see
    /// [`ALLOW_OWN_VALUES`](crate::transform::registry::ALLOW_OWN_VALUES)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub among_listed: Option<u64>,
    /// `ok`, or what is wrong (never a value).
    pub verdict: String,
    pub failed: bool,
}

/// What the identity check counts for one column or json path.
#[derive(Debug, Clone, Default)]
struct Counted {
    values: u64,
    unchanged: u64,
    expected: f64,
    /// Inputs among the rule's listed values ([`Identity::listed`]).
    among_listed: u64,
}

/// What the rule of a column (or json path) is checked against.
#[derive(Debug, Clone)]
struct Identity {
    rule: String,
    chance: ChanceUnchanged,
    must_change: bool,
    /// The values the rule draws its outputs from, when it lists them
    /// ([`TransformDef::listed_outputs`]): inputs among them are counted.
    listed: Option<Arc<std::collections::HashSet<String>>>,
    /// The column is an array: its rule applies to each element, so the inputs compared
    /// with `listed` are the elements.
    array: bool,
}

#[derive(Debug)]
struct ColumnCheck {
    name: String,
    /// Probed for sampled source values, read so.
    scan: Option<ScanAs>,
    /// The column's rule, when it has one that transforms.
    identity: Option<Identity>,
    /// A `json` rule's paths, by slot (index in `paths` as written), with their rules.
    paths: Vec<(String, Option<Identity>)>,
}

/// The counts of one batch (or all batches) of a table.
#[derive(Debug, Default)]
pub struct Tally {
    identity: Vec<Counted>,
    paths: Vec<Vec<Counted>>,
    scanned: Vec<u64>,
    hits: HashMap<(usize, u32), u64>,
    tokens: Tokens,
    text: String,
    raw: Vec<u8>,
}

/// The stream checks of one table, shared by its jobs and batches (see [`super::rows`]).
#[derive(Debug)]
pub struct TableCheck {
    table: QualifiedName,
    /// The partitioned table it is a partition of, or itself.
    root: QualifiedName,
    probe: Arc<LeakProbe>,
    columns: Vec<ColumnCheck>,
    tally: Mutex<Tally>,
}

/// True when `input` carries something an identity can be seen in: a letter or a digit, and
/// not `infinity` or `NaN` (which transforms keep as they are).
fn carries_something(input: &str) -> bool {
    let t = input.trim();
    t.chars().any(char::is_alphanumeric)
        && !["infinity", "-infinity", "+infinity", "nan"]
            .iter()
            .any(|s| t.eq_ignore_ascii_case(s))
}

fn chance_of(chance: ChanceUnchanged, input: &str) -> f64 {
    match chance {
        ChanceUnchanged::NotApplicable | ChanceUnchanged::Any => 1.0,
        ChanceUnchanged::Each(p) => p,
        ChanceUnchanged::Rounding { percent } => noise_chance(input, percent),
        ChanceUnchanged::NoAlphanumeric => {
            if input.chars().any(char::is_alphanumeric) {
                0.0
            } else {
                1.0
            }
        }
    }
}

fn count(counted: &mut Counted, identity: &Identity, input: &str, output: Option<&str>) {
    if !carries_something(input) {
        return;
    }
    counted.values += 1;
    counted.expected += chance_of(identity.chance, input);
    if output == Some(input) {
        counted.unchanged += 1;
    }
    if let Some(listed) = &identity.listed {
        if identity.array {
            // An array literal the rule could read: its non-null elements, each an input.
            let elements = crate::transform::array::elements(input).unwrap_or_default();
            let among = elements
                .iter()
                .flatten()
                .filter(|e| listed.contains(e.as_str()))
                .count();
            counted.among_listed += among.min(1) as u64;
        } else if listed.contains(input) {
            counted.among_listed += 1;
        }
    }
}

impl TableCheck {
    /// True when some column of the table is probed (a table without rules is then read by
    /// the row stage too).
    pub fn scans(&self) -> bool {
        self.probe.values() > 0 && self.columns.iter().any(|c| c.scan.is_some())
    }

    /// How column `i` is probed, when it is.
    pub fn scan_of(&self, i: usize) -> Option<ScanAs> {
        if self.probe.values() == 0 {
            return None;
        }
        self.columns.get(i).and_then(|c| c.scan)
    }

    /// True when column `i` has inner rules to observe (a `json` rule's paths).
    pub fn observes_paths(&self, i: usize) -> bool {
        self.columns.get(i).is_some_and(|c| !c.paths.is_empty())
    }

    /// Empty counts for one batch.
    pub fn tally(&self) -> Tally {
        Tally {
            identity: vec![Counted::default(); self.columns.len()],
            paths: self
                .columns
                .iter()
                .map(|c| vec![Counted::default(); c.paths.len()])
                .collect(),
            scanned: vec![0; self.columns.len()],
            ..Tally::default()
        }
    }

    /// Counts the value `input` of column `i` and what its rule wrote (None: NULL).
    pub fn identity(&self, tally: &mut Tally, i: usize, input: &str, output: Option<&str>) {
        if let (Some(identity), Some(counted)) = (
            self.columns.get(i).and_then(|c| c.identity.as_ref()),
            tally.identity.get_mut(i),
        ) {
            count(counted, identity, input, output);
        }
    }

    /// Probes the output `text` of column `i` (read as [`TableCheck::scan_of`] says).
    pub fn probe(&self, tally: &mut Tally, i: usize, as_: ScanAs, text: &str) {
        if let Some(n) = tally.scanned.get_mut(i) {
            *n += 1;
        }
        if let Some(origin) = self.probe.find_in(as_, text, &mut tally.tokens) {
            *tally.hits.entry((i, origin)).or_default() += 1;
        }
    }

    /// Probes a field of column `i` as COPY printed it, in `encoding`.
    pub fn probe_field(&self, tally: &mut Tally, i: usize, field: &[u8], encoding: TextEncoding) {
        let Some(as_) = self.scan_of(i) else {
            return;
        };
        if copy_text::is_null(field) {
            return;
        }
        // The scratch buffers leave the tally while the value borrows them.
        let mut text = std::mem::take(&mut tally.text);
        let mut raw = std::mem::take(&mut tally.raw);
        text.clear();
        raw.clear();
        let decoded = if encoding == TextEncoding::Utf8 && memchr::memchr(b'\\', field).is_none() {
            std::str::from_utf8(field).ok()
        } else if copy_text::unescape(field, &mut raw).is_ok()
            && encoding.decode(&raw, &mut text).is_ok()
        {
            Some(text.as_str())
        } else {
            None
        };
        if let Some(value) = decoded {
            self.probe(tally, i, as_, value);
        }
        tally.text = text;
        tally.raw = raw;
    }

    /// An observer of column `i`'s inner rules, counting into `tally`.
    pub fn observer<'a>(&'a self, tally: &'a mut Tally, i: usize) -> PathObserver<'a> {
        PathObserver {
            check: self,
            tally,
            column: i,
        }
    }

    /// Adds a batch's counts.
    pub fn merge(&self, batch: Tally) {
        let Ok(mut all) = self.tally.lock() else {
            return;
        };
        if all.identity.is_empty() {
            *all = self.tally();
        }
        for (a, b) in all.identity.iter_mut().zip(&batch.identity) {
            a.add(b);
        }
        for (a, b) in all.paths.iter_mut().zip(&batch.paths) {
            for (a, b) in a.iter_mut().zip(b) {
                a.add(b);
            }
        }
        for (a, b) in all.scanned.iter_mut().zip(&batch.scanned) {
            *a += b;
        }
        for (k, n) in batch.hits {
            *all.hits.entry(k).or_default() += n;
        }
    }
}

/// Counts what a `json` rule's paths did ([`crate::transform::Observe`]).
pub struct PathObserver<'a> {
    check: &'a TableCheck,
    tally: &'a mut Tally,
    column: usize,
}

impl crate::transform::Observe for PathObserver<'_> {
    fn inner(&mut self, slot: usize, input: Option<&str>, output: Option<&str>) {
        let Some(input) = input else { return };
        let Some((_, Some(identity))) = self
            .check
            .columns
            .get(self.column)
            .and_then(|c| c.paths.get(slot))
        else {
            return;
        };
        if let Some(counted) = self
            .tally
            .paths
            .get_mut(self.column)
            .and_then(|p| p.get_mut(slot))
        {
            count(counted, identity, input, output);
        }
    }
}

/// The identity a rule of `def` (as written: `spec`) is checked against.
fn identity_of(def: &'static TransformDef, spec: &RuleSpec) -> Identity {
    Identity {
        rule: def.name().to_string(),
        chance: def.chance_unchanged(spec),
        // A json rule's paths say whether each must reach something.
        must_change: def.must_change_something(spec) && !def.holds_rules_by_path(),
        listed: def
            .listed_outputs(spec)
            .map(|values| Arc::new(values.into_iter().collect())),
        array: false,
    }
}

/// The paths of a `json` rule, by slot, with their rules' identities (None for `keep` or a
/// rule that does not read).
fn json_paths(spec: &RuleSpec) -> Vec<(String, Option<Identity>)> {
    let Some(serde_yaml::Value::Mapping(map)) = spec.params.get("paths") else {
        return vec![];
    };
    let outer = crate::transform::registry::may_match_nothing(spec);
    map.iter()
        .map(|(path, rule)| {
            let path = path.as_str().unwrap_or("?").to_string();
            let identity = RuleSpec::from_value(rule).ok().and_then(|rule| {
                let def = crate::transform::registry::get(&rule.transform)?;
                if def.passes_through() {
                    return None;
                }
                let mut identity = identity_of(def, &rule);
                // Every path must reach some document, unless it (or the json rule) says
                // it may match nothing.
                identity.must_change =
                    !outer && !crate::transform::registry::may_match_nothing(&rule);
                Some(identity)
            });
            (path, identity)
        })
        .collect()
}

/// The stream checks of a refresh: one [`TableCheck`] per table, and the verdicts after the
/// data stage.
#[derive(Debug)]
pub struct StreamVerifier {
    probe: Arc<LeakProbe>,
    tables: HashMap<QualifiedName, Arc<TableCheck>>,
}

impl StreamVerifier {
    /// The checks of every data table, from the probe sampled before the data stage and the
    /// bound rules.
    pub fn new(probe: LeakProbe, catalog: &Catalog, rules: &BoundRules) -> Arc<StreamVerifier> {
        let probe = Arc::new(probe);
        let mut tables = HashMap::new();
        for table in catalog.data_tables() {
            let bound = rules.table(&table.name);
            let columns = table
                .copy_columns()
                .enumerate()
                .map(|(i, column)| {
                    let b = bound.and_then(|b| b.columns.get(i));
                    let ruled = b.and_then(|b| {
                        let def = b.def?;
                        b.transform.as_ref()?;
                        Some((
                            def,
                            b.spec
                                .clone()
                                .unwrap_or_else(|| RuleSpec::named(def.name())),
                        ))
                    });
                    let replaced = ruled.as_ref().is_some_and(|(d, _)| replaces_every_value(d));
                    ColumnCheck {
                        name: column.name.clone(),
                        scan: if replaced {
                            None
                        } else {
                            scan_as(&column.ty.kind)
                        },
                        identity: ruled.as_ref().map(|(d, s)| {
                            let mut identity = identity_of(d, s);
                            // An enum's values can only be its own labels: no invented
                            // value could be listed, so the count does not apply.
                            if column.ty.kind == TypeKind::Enum {
                                identity.listed = None;
                            }
                            identity.array = column.ty.array;
                            identity
                        }),
                        paths: ruled
                            .as_ref()
                            .filter(|(d, _)| d.holds_rules_by_path())
                            .map(|(_, s)| json_paths(s))
                            .unwrap_or_default(),
                    }
                })
                .collect();
            let check = TableCheck {
                table: table.name.clone(),
                root: catalog.root_of(&table.name),
                probe: probe.clone(),
                columns,
                tally: Mutex::new(Tally::default()),
            };
            tables.insert(table.name.clone(), Arc::new(check));
        }
        Arc::new(StreamVerifier { probe, tables })
    }

    /// The checks of `table`, for its row plans.
    pub fn table(&self, table: &QualifiedName) -> Option<Arc<TableCheck>> {
        self.tables.get(table).cloned()
    }

    /// The verdicts of everything the data stage counted and probed. Foreign keys are
    /// checked after the load ([`verify`]).
    pub fn report(&self) -> VerifyReport {
        let mut report = VerifyReport {
            leak_values_checked: self.probe.values(),
            ..VerifyReport::default()
        };
        let mut hits: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
        let mut judged: BTreeMap<String, Judged> = BTreeMap::new();
        let mut names: Vec<&QualifiedName> = self.tables.keys().collect();
        names.sort();
        for name in names {
            let check = &self.tables[name];
            let Ok(tally) = check.tally.lock() else {
                continue;
            };
            for (i, column) in check.columns.iter().enumerate() {
                // Partitions are judged together, as their root (a json path may reach
                // documents of one partition only).
                let label = format!("{}.{}", check.root, column.name);
                if let Some(identity) = &column.identity {
                    let e = judged.entry(label.clone()).or_insert_with(|| Judged {
                        identity: identity.clone(),
                        counted: Counted::default(),
                        had_documents: false,
                    });
                    if let Some(c) = tally.identity.get(i) {
                        e.counted.add(c);
                    }
                }
                let documents = tally.identity.get(i).map_or(0, |c| c.values);
                for (slot, (path, identity)) in column.paths.iter().enumerate() {
                    let Some(identity) = identity else { continue };
                    let e = judged
                        .entry(format!("{label} {path}"))
                        .or_insert_with(|| Judged {
                            identity: identity.clone(),
                            counted: Counted::default(),
                            had_documents: false,
                        });
                    if let Some(c) = tally.paths.get(i).and_then(|p| p.get(slot)) {
                        e.counted.add(c);
                    }
                    e.had_documents |= documents > 0;
                }
                if let Some(n) = tally.scanned.get(i) {
                    report.staging_values_scanned += n;
                }
            }
            for ((i, origin), n) in &tally.hits {
                let column = format!(
                    "{}.{}",
                    check.table,
                    check.columns.get(*i).map_or("?", |c| c.name.as_str())
                );
                let values = tally.scanned.get(*i).copied().unwrap_or(0);
                let e = hits.entry((column, *origin)).or_default();
                e.0 += n;
                e.1 = e.1.max(values);
            }
        }
        for (label, j) in judged {
            let verdict = judge(
                &label,
                &j.identity,
                &j.counted,
                j.had_documents,
                &mut report.leaks,
            );
            report.columns.push(verdict);
        }
        probe_verdicts(&self.probe, hits, &mut report);
        report.passed = report.leaks.is_empty();
        report
    }
}

/// One column's (or path's) counts over the partitions of its root.
struct Judged {
    identity: Identity,
    counted: Counted,
    had_documents: bool,
}

impl Counted {
    fn add(&mut self, other: &Counted) {
        self.values += other.values;
        self.unchanged += other.unchanged;
        self.expected += other.expected;
        self.among_listed += other.among_listed;
    }
}

/// The verdict of one column or path: more unchanged than chance explains, or (a rule meant
/// to change part of its values) nothing changed, or (a json path) no document reached. The
/// verdict is short (`ok`, `leak`, `changed nothing`, `matched no document`, `no values`);
/// the failure's message, when it failed, is pushed to `leaks`.
fn judge(
    label: &str,
    identity: &Identity,
    c: &Counted,
    had_documents: bool,
    leaks: &mut Vec<String>,
) -> ColumnVerdict {
    let mut v = ColumnVerdict {
        column: label.to_string(),
        rule: identity.rule.clone(),
        values_checked: c.values,
        unchanged: c.unchanged,
        expected_by_chance: c.expected,
        among_listed: identity.listed.as_ref().map(|_| c.among_listed),
        verdict: "ok".into(),
        failed: false,
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let message = if c.values == 0 {
        if identity.must_change && had_documents {
            v.verdict = "matched no document".into();
            Some(format!(
                "{label} ({}): the path matched no document (write `may_match_nothing: true` on its rule if that is expected)",
                identity.rule
            ))
        } else {
            v.verdict = "no values".into();
            None
        }
    } else if identity.must_change && c.unchanged == c.values {
        v.verdict = "changed nothing".into();
        Some(format!(
            "{label} ({}): {} of {} value{} unchanged — the rule changed no value (a pattern that never matches?); write `may_match_nothing: true` on the rule if that is expected",
            identity.rule,
            c.unchanged,
            c.values,
            plural(c.values)
        ))
    } else if too_many(c.unchanged, c.expected) {
        v.verdict = "leak".into();
        Some(format!(
            "{label} ({}): {} of {} value{} unchanged, {:.1} expected by chance",
            identity.rule,
            c.unchanged,
            c.values,
            plural(c.values),
            c.expected
        ))
    } else if identity.listed.is_some()
        && too_many(
            c.among_listed,
            crate::transform::registry::OWN_VALUES_SHARE * c.values as f64,
        )
    {
        // Listed values that are the column's own: each row keeps its value 1 time in as
        // many as listed, which the count of unchanged values cannot tell from chance.
        v.verdict = "draws from its own values".into();
        Some(format!(
            "{label} ({}): {} of {} value{} are among the rule's listed values — it draws staging's values from the column's own, keeping each row's value by chance (list invented values, or write `{}: true` on the rule if shuffling the column's own categories is intended)",
            identity.rule,
            c.among_listed,
            c.values,
            plural(c.values),
            crate::transform::registry::ALLOW_OWN_VALUES
        ))
    } else {
        None
    };
    if let Some(message) = message {
        v.failed = true;
        leaks.push(message);
    }
    v
}

/// The probe's hits, `(staging column, origin) → (matches, values scanned)`, as leaks or
/// notes.
fn probe_verdicts(
    probe: &LeakProbe,
    hits: BTreeMap<(String, u32), (u64, u64)>,
    report: &mut VerifyReport,
) {
    for ((column, origin), (n, values)) in hits {
        let Some(o) = probe.origins.get(origin as usize) else {
            continue;
        };
        let (lambda, threshold) = leak_threshold(values, o);
        let plural = if n == 1 { "" } else { "s" };
        if n >= threshold {
            report
                .leaks
                .push(format!("{column} ← {} ({n} value{plural})", o.name));
        } else {
            report.notes.push(format!(
                "{column}: {n} value{plural} equal to sampled values of {} — chance, not a leak ({lambda:.2} expected among {values} values drawn from about {:.1e})",
                o.name, o.space
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::registry;

    #[test]
    fn chance_matches_in_small_output_spaces_are_not_leaks() {
        assert_eq!(chance_space(&registry::IPV4), 3.5e9);
        assert_eq!(chance_space(&registry::PHONE), 3.6e10);
        assert_eq!(chance_space(&registry::HASH), f64::INFINITY);
        assert_eq!(chance_space(&registry::CONSTANT), f64::INFINITY);
        let ip = Origin {
            name: "p.ip".into(),
            sampled: 1000,
            space: chance_space(&registry::IPV4),
        };
        // 400,000 fake addresses against 1,000 real ones: about 0.11 expected by chance.
        let (lambda, threshold) = leak_threshold(400_000, &ip);
        assert!((0.1..0.13).contains(&lambda), "{lambda}");
        assert_eq!(threshold, 6);
        // A kept address column matches about every sampled value: far above.
        assert!(1000 > leak_threshold(64_000, &ip).1);
        let email = Origin {
            name: "p.email".into(),
            sampled: 1000,
            space: f64::INFINITY,
        };
        assert_eq!(leak_threshold(10_000_000, &email).1, 1);
    }

    fn probe(values: &[&str]) -> LeakProbe {
        let p = LeakProbe::of_values("public.users.email", values.iter().copied());
        assert_eq!(
            p.values(),
            values.len(),
            "every value long enough: {values:?}"
        );
        p
    }

    /// Issue 10 moved these choices from lists of names to the registry's properties without
    /// changing them: the lists as they were, derived now.
    #[test]
    fn choices_are_the_lists_they_replaced() {
        let derived = |f: fn(&TransformDef) -> bool| -> Vec<&str> {
            registry::all()
                .iter()
                .filter(|d| f(d))
                .map(|d| d.name())
                .collect()
        };
        let mut checked = derived(samples_source);
        checked.sort();
        let mut was_checked = vec![
            "email",
            "phone",
            "hash",
            "iban",
            "credit_card",
            "ipv4",
            "ipv6",
            "uuid",
            "street_address",
            "username",
            "mask",
            "constant",
            "set_null",
        ];
        was_checked.sort();
        assert_eq!(checked, was_checked);
        let mut replacing = derived(replaces_every_value);
        replacing.sort();
        let mut was_replacing = vec![
            "email",
            "first_name",
            "last_name",
            "name",
            "phone",
            "hash",
            "iban",
            "credit_card",
            "ipv4",
            "ipv6",
            "uuid",
            "street_address",
            "city",
            "postcode",
            "country",
            "company",
            "username",
            "lorem",
            "choice",
            "constant",
            "set_null",
        ];
        was_replacing.sort();
        assert_eq!(replacing, was_replacing);
        // Issue 13: chance matches are counted from every transform's declared output space.
        for def in registry::all() {
            let declared = def.output_space().distinct_outputs();
            assert_eq!(
                chance_space(def).is_finite(),
                declared.is_some_and(|n| n.is_finite() && n > 1.0),
                "`{}`",
                def.name()
            );
        }
    }

    #[test]
    fn finds_whole_values_and_tokens() {
        let p = probe(&["john.smith@example.com", "123-45-6789"]);
        let mut t = Tokens::default();
        let mut find = |text: &str| p.find(text, &mut t);
        assert_eq!(find("john.smith@example.com"), Some(0));
        assert_eq!(find("contact: <john.smith@example.com>, thanks"), Some(0));
        assert_eq!(find("{\"ssn\": \"123-45-6789\"}"), Some(0));
        assert_eq!(find("jane.doe@example.com"), None);
        assert_eq!(find("SSN XXX-XX-XXXX"), None);
        assert_eq!(find("smith@example.com"), None, "a part is not the value");
    }

    /// Issue 13: the planted shapes — upper case, inside markup, a multi-word address inside
    /// a sentence, a phone written with spaces or parentheses.
    #[test]
    fn finds_values_in_other_shapes() {
        let p = probe(&[
            "nancy.davolio@example.com",
            "12 Main Street",
            "206-555-9857",
            "555-010-9999",
        ]);
        let mut t = Tokens::default();
        let mut find = |text: &str| p.find(text, &mut t);
        assert_eq!(find("NANCY.DAVOLIO@EXAMPLE.COM"), Some(0));
        assert_eq!(
            find("<user><email>Nancy.Davolio@example.com</email></user>"),
            Some(0)
        );
        assert_eq!(find("she moved to 12 main street last year"), Some(0));
        assert_eq!(find("call Nancy at (206) 555-9857 today"), Some(0));
        assert_eq!(find("or 555 010 9999 after six"), Some(0));
        assert_eq!(find("12 Main Avenue"), None);
        assert_eq!(find("call 206 555 9858"), None);
        let mut text = String::new();
        assert!(bytea_text("\\x3c613e4e414e43592e444156", &mut text));
        assert_eq!(text.trim(), "<a>NANCY.DAV");
        let hex: String = "mail: nancy.davolio@example.com\u{0}"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            p.find_in(ScanAs::Bytes, &format!("\\x{hex}"), &mut Tokens::default()),
            Some(0)
        );
        assert_eq!(
            p.find_in(ScanAs::Bytes, "\\xfffe00", &mut Tokens::default()),
            None
        );
    }

    /// All-ASCII text is read byte by byte and lower-cased as it is hashed, other text char
    /// by char into a lower-case buffer: a value sampled from either kind is found in the
    /// other, in any case, tokens of every length across the hash's 8-byte words included.
    #[test]
    fn ascii_and_other_text_find_the_same_values() {
        let p = probe(&[
            "Nancy.Davolio@Example.com",
            "Abcdefghijklmnop123 Q7",
            "Zoë Ångström",
            "ABCDEFGH ijklmnop",
        ]);
        let mut t = Tokens::default();
        let mut find = |text: &str| p.find(text, &mut t);
        // ASCII text (the byte path), then the same with a non-ASCII letter elsewhere (the
        // char path).
        for tail in ["", " — é"] {
            let f = |s: &str| format!("{s}{tail}");
            assert_eq!(
                find(&f("mail NANCY.DAVOLIO@EXAMPLE.COM")),
                Some(0),
                "{tail:?}"
            );
            assert_eq!(find(&f("id abcdefghijklmnop123 q7.")), Some(0), "{tail:?}");
            assert_eq!(find(&f("x=AbCdEfGhIjKlMnOp123_Q7")), Some(0), "{tail:?}");
            assert_eq!(find(&f("abcdefgh IJKLMNOP")), Some(0), "{tail:?}");
            assert_eq!(find(&f("abcdefghijklmnop124 q7")), None, "{tail:?}");
            assert_eq!(find(&f("abcdefgh ijklmnoq")), None, "{tail:?}");
            assert_eq!(find(&f("[ ]{}()'_-+=!?")), None, "{tail:?}");
        }
        assert_eq!(find("ZOË ÅNGSTRÖM"), Some(0));
        assert_eq!(find("zoë ångström"), Some(0));
        assert_eq!(find("zoe angstrom"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn short_values_are_not_compared() {
        let mut p = LeakProbe::empty();
        let mut t = Tokens::default();
        assert!(!p.insert("Anna", 0, &mut t));
        assert!(!p.insert("a b", 0, &mut t));
        assert!(!p.insert("--", 0, &mut t));
        assert!(p.insert("Annabel", 0, &mut t));
    }

    fn identity(def: &'static TransformDef, rule: &str) -> Identity {
        let value: serde_yaml::Value = serde_yaml::from_str(rule).unwrap();
        identity_of(def, &RuleSpec::from_value(&value).unwrap())
    }

    fn judged(identity: &Identity, values: u64, unchanged: u64, expected: f64) -> bool {
        judge(
            "t.c",
            identity,
            &Counted {
                values,
                unchanged,
                expected,
                among_listed: 0,
            },
            true,
            &mut Vec::new(),
        )
        .failed
    }

    /// The identity check's verdicts: chance from the declarations, a rule meant to keep part
    /// of a value that changed nothing, `may_match_nothing`.
    #[test]
    fn identity_verdicts() {
        let email = identity(&registry::EMAIL, "email");
        assert!(!judged(&email, 1000, 0, 0.0));
        assert!(
            judged(&email, 1000, 1, 0.0),
            "one unchanged email is a leak"
        );
        let first = identity(&registry::FIRST_NAME, "first_name");
        let ChanceUnchanged::Each(p) = first.chance else {
            panic!("{:?}", first.chance)
        };
        // 10,000 names drawn from about 3,000 (counted as 300): a few equal by chance.
        assert!(!judged(&first, 10_000, 20, 10_000.0 * p));
        assert!(judged(&first, 10_000, 10_000, 10_000.0 * p));
        let regex = identity(
            &registry::REGEX_REPLACE,
            "{ transform: regex_replace, pattern: x, with: y }",
        );
        assert!(
            !judged(&regex, 1000, 999, 1000.0),
            "most rows without a match"
        );
        assert!(judged(&regex, 1000, 1000, 1000.0), "no row changed");
        let scrubber = identity(
            &registry::REGEX_REPLACE,
            "{ transform: regex_replace, pattern: x, with: y, may_match_nothing: true }",
        );
        assert!(!judged(&scrubber, 1000, 1000, 1000.0));
        let choice = identity(&registry::CHOICE, "{ transform: choice, values: [a, b] }");
        assert_eq!(choice.chance, ChanceUnchanged::Each(0.5));
        let constant = identity(&registry::CONSTANT, "{ transform: constant, value: x }");
        assert_eq!(constant.chance, ChanceUnchanged::NotApplicable);
        let shift = identity(&registry::DATE_SHIFT, "{ transform: date_shift, days: 3 }");
        assert_eq!(shift.chance, ChanceUnchanged::Each(0.0));
        assert!(
            !carries_something("infinity") && !carries_something(" ") && !carries_something("--")
        );
        assert!(carries_something("1980-05-17"));
        // noise: 52000 ± 10 % moves over 10,400 units; 3 ± 10 % cannot move.
        assert!(noise_chance("52000", 10.0) < 1e-3);
        assert_eq!(noise_chance("3", 10.0), 1.0);
        assert!(noise_chance("12.50", 10.0) < 0.01);
    }
}
