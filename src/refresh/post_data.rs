//! Per-table post-data during the copy (issue 14): as soon as a table's data is in (every
//! job of it done), its indexes, its primary-key, unique, exclusion and separately dumped
//! CHECK constraints and its extended statistics are built, then it is analyzed, on
//! connections of their own, while other tables still copy. What depends on several tables
//! or is cheap (foreign keys, triggers, rules, policies, comments, index attachments) stays
//! in the one post-data restore after the data, as before, which then leaves out what was
//! built here ([`SchemaArchive::mark_built`]).
//!
//! **Materialized views** are refreshed during the copy too, as soon as every table they read
//! is built (and every materialized view they read refreshed), on the session of the
//! server's defaults, beside the keys of the same table — when the refresh cannot differ
//! from one after the copy ([`view_plans`]: only tables and PostgreSQL's own immutable or
//! stable functions; not a sequence, a function of the user's, a volatile one, a table under
//! row security). The others are refreshed after the copy, in dependency order, as before.
//! At scale 100 of the demo this moved the view's refresh (0.9 s) from after the copy to
//! beside its last foreign keys; at scale 1000 the refresh was 40 s of random reads after
//! the copy (benches/README.md, sixth round).
//!
//! **Where the statements come from, and why.** The SQL of the post-data section is read once
//! (`pg_restore --section=post-data -f -`, the same options and list as the restore itself)
//! and split at pg_restore's entry headers (`-- Name: …; Type: …; Schema: …; Owner: …`); each
//! header is matched, in order, to its line of the archive's table of contents, which gives
//! the entry's dump id and its catalog oid in the source; one catalog query in the source
//! snapshot (the archive was dumped in it, so the oids are the same) gives each index's,
//! constraint's and statistics object's table. The statements run are therefore exactly the
//! ones pg_restore would run (names, NOT VALID, deferrability, CLUSTER ON, REPLICA IDENTITY,
//! no owners or tablespaces, as `--no-owner --no-tablespaces` make them), without one
//! pg_restore process per table. Rebuilding them from `pg_get_indexdef` /
//! `pg_get_constraintdef` would have been a second source of truth for what pg_dump already
//! decides. Whenever the split is not certain — a header that matches no entry of the table
//! of contents in order, a psql meta-command inside an entry, a client encoding other than
//! UTF-8, SQL that is not UTF-8 — nothing is built early and the post-data restore does it
//! all, as before.
//!
//! **Which tables.** Ordinary tables outside inheritance trees, and leaf partitions: a leaf's
//! own indexes and keys are entries of their own in the archive (pg_dump creates the parent's
//! with `ON ONLY` and attaches the leaves' with `ALTER INDEX … ATTACH PARTITION`, both left to
//! the post-data restore, after every leaf's), so a leaf is built as soon as its data is in,
//! while its siblings still copy. Not a partitioned parent, nor a table with children (ANALYZE
//! of an inheritance parent reads its children, which may still be copying), nor a child of
//! old-style inheritance; not a leaf whose parent has derived columns (they are recomputed on
//! the whole partitioned table after the copy: its leaves' indexes and statistics come after
//! that); and only when no `max_storage` cap is set (a rescale empties and reloads tables
//! after the first load). The others get all of their post-data after the copy, and are
//! analyzed then.
//!
//! **A big table's indexes on two sessions.** A table's entries go in one round trip on its
//! builder's session — except a table of at least [`SHARED_BUILD_MIN_BYTES`] in the source
//! with two or more plain indexes: its constraints, statistics and the index entries that do
//! more than create an index go first, then its plain `CREATE INDEX`es are shared between
//! that session and a second one of the same builder, at once (two `CREATE INDEX` on one
//! table do not wait for each other; `ADD CONSTRAINT` would: [`shared_units`]), then ANALYZE.
//! Before, the last big table's indexes were built one after another while the other
//! builder sat idle (benches/README.md, seventh round). pg_restore -j shares them the same
//! way. So up to two builds a builder run at once (`2 × jobs` sessions at most), only for
//! big tables. The primary key itself is still built alone: building it as a unique index and
//! attaching it (`ADD CONSTRAINT … USING INDEX`, as pgcopydb does) would mean writing index
//! SQL of our own instead of running pg_restore's.
//!
//! **Derived columns** (`search.tsvector`) are recomputed here too, first, before the table's
//! indexes ([`reindex::recompute_derived`], one table rewrite), on a session of their own
//! with the server's defaults (not pg_restore's settings: an expression is run as the
//! post-load step would run it) — when every derived expression of the table reads only its
//! own row: it is accepted by PostgreSQL as a stored generated column's expression
//! (immutable, no subquery, no other table; [`same_row_expressions`], tried and rolled back on
//! the empty table before the copy). An expression that may read another table (a subquery, a
//! function that is not immutable) must see every table loaded: its table gets its post-data
//! after the copy, its derived columns recomputed in [`reindex::post_load`], as before.
//!
//! **Foreign keys** are added during the copy too, as soon as every table they need is built:
//! the referencing table (a partitioned one: all of its leaves) and the referenced one (its
//! unique index is one of its entries; a partitioned referenced table's is an `ON ONLY`
//! index, built after the copy, so such a key waits too). Adding one validates it against the
//! copied rows, as the post-data restore would. The keys one table's build made ready are
//! added on its connection, in one round trip and one transaction; two builders add keys at
//! once only when their tables are disjoint (keys added at once between the same two tables,
//! in opposite directions, would deadlock on their locks: [`Shared::hold_tables`]). On the
//! 516-table MusicBrainz schema, its 887 keys had been added one at a time, 2.2 ms each, all
//! serialized.
//!
//! A failed statement fails the run (before the swap, the half-built database dropped), as a
//! failed pg_restore does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, Notify, mpsc};
use tokio_postgres::Client;

use crate::catalog::QualifiedName;
use crate::db::{self, DbError, PgEndpoint};
use crate::error::{Error, Result};

use super::reindex::{self, DerivedColumn};
use super::schema::{self, PgTools, SchemaArchive};

/// The entry types built per table.
const PER_TABLE: [&str; 4] = ["INDEX", "CONSTRAINT", "CHECK CONSTRAINT", "STATISTICS"];

/// The entry type of a foreign key, added once the tables it needs are built.
const FOREIGN_KEY: &str = "FK CONSTRAINT";

/// A table at least this big in the source (heap bytes) has its plain indexes built on two
/// sessions at once when it has two or more ([`EarlyPlan::big_tables`]); a smaller one keeps
/// its one round trip (on schemas of hundreds of small tables the round trips were the cost).
const SHARED_BUILD_MIN_BYTES: i64 = 8 << 20;

/// One entry of the post-data SQL, as pg_restore wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// The header line, without `-- Name: `.
    header: String,
    /// The statements of the entry (no header, no blank lines around).
    sql: String,
}

/// The post-data SQL split at its entry headers: what comes before the first one (the session
/// settings) and the entries. None when a line of an entry is a psql meta-command.
fn split(sql: &str) -> Option<(String, Vec<Block>)> {
    let lines: Vec<&str> = sql.lines().collect();
    let is_header = |i: usize| {
        lines[i].starts_with("-- Name: ")
            && i > 0
            && lines[i - 1] == "--"
            && lines.get(i + 1) == Some(&"--")
    };
    let mut preamble = String::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut i = 0;
    let finish = |current: Option<(String, Vec<&str>)>, blocks: &mut Vec<Block>| {
        if let Some((header, body)) = current {
            blocks.push(Block {
                header,
                sql: body.join("\n").trim().to_string(),
            });
        }
    };
    while i < lines.len() {
        let line = lines[i];
        if line == "--" && i + 1 < lines.len() && is_header(i + 1) {
            finish(current.take(), &mut blocks);
            let header = lines[i + 1].trim_start_matches("-- Name: ").to_string();
            current = Some((header, Vec::new()));
            i += 3;
            continue;
        }
        if line == "--"
            && lines.get(i + 1) == Some(&"-- PostgreSQL database dump complete")
            && lines.get(i + 2) == Some(&"--")
        {
            finish(current.take(), &mut blocks);
            i += 3;
            continue;
        }
        match current.as_mut() {
            Some((_, body)) => {
                if line.starts_with('\\') {
                    return None;
                }
                body.push(line);
            }
            None => {
                // Before the first entry: the settings; the comments and psql's
                // `\restrict` lines are not SQL.
                if !line.starts_with("--") && !line.starts_with('\\') && !line.is_empty() {
                    preamble.push_str(line);
                    preamble.push('\n');
                }
            }
        }
        i += 1;
    }
    finish(current.take(), &mut blocks);
    Some((preamble, blocks))
}

/// An entry line of the table of contents: dump id, catalog, oid, and the rest (`TYPE schema
/// name owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TocEntry {
    id: u64,
    catalog: u32,
    oid: u32,
    rest: String,
}

fn toc_entries(toc: &str) -> Vec<TocEntry> {
    toc.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (id, rest) = l.split_once("; ")?;
            let mut parts = rest.splitn(3, ' ');
            Some(TocEntry {
                id: id.trim().parse().ok()?,
                catalog: parts.next()?.parse().ok()?,
                oid: parts.next()?.parse().ok()?,
                rest: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// The entry types a header can be read as: every way of cutting `name; Type: T; Schema: S;
/// Owner: O` (a name can hold `; Type: ` too), as (type, schema, name).
fn readings(header: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (t, _) in header.match_indices("; Type: ") {
        let name = &header[..t];
        let after = &header[t + "; Type: ".len()..];
        for (s, _) in after.match_indices("; Schema: ") {
            let desc = &after[..s];
            let after_schema = &after[s + "; Schema: ".len()..];
            for (o, _) in after_schema.match_indices("; Owner: ") {
                out.push((
                    desc.to_string(),
                    after_schema[..o].to_string(),
                    name.to_string(),
                ));
            }
        }
    }
    out
}

/// Each block's entry of the table of contents, matched in order (pg_restore writes the
/// entries in the list's order). None when a block matches no entry after the previous one.
fn match_toc<'a>(toc: &'a [TocEntry], blocks: &[Block]) -> Option<Vec<(&'a TocEntry, String)>> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut next = 0;
    for block in blocks {
        let readings = readings(&block.header);
        let found = toc[next..].iter().position(|e| {
            readings
                .iter()
                .any(|(desc, schema, name)| e.rest.starts_with(&format!("{desc} {schema} {name} ")))
        })?;
        let entry = &toc[next + found];
        let desc = readings
            .iter()
            .find(|(desc, schema, name)| {
                entry.rest.starts_with(&format!("{desc} {schema} {name} "))
            })
            .map(|(desc, _, _)| desc.clone())?;
        out.push((entry, desc));
        next += found + 1;
    }
    Some(out)
}

/// One statement group built during the copy.
#[derive(Debug, Clone)]
struct Early {
    id: u64,
    /// `INDEX users_email_idx` (for errors).
    label: String,
    sql: String,
}

/// What is built per table during the copy.
#[derive(Debug, Default)]
pub struct EarlyPlan {
    /// The session settings of pg_restore's output, run once on each connection.
    preamble: String,
    /// Per table: its entries in the archive's order.
    entries: BTreeMap<QualifiedName, Vec<Early>>,
    /// The tables built (and analyzed) as soon as their data is in.
    tables: BTreeSet<QualifiedName>,
    /// How many entries the post-data section has in all.
    total: usize,
    /// The derived columns recomputed during the copy, per table (before its entries).
    derived: BTreeMap<QualifiedName, Vec<DerivedColumn>>,
    /// Foreign keys added during the copy, in the archive's order.
    foreign_keys: Vec<ForeignKeyEarly>,
    /// Materialized views refreshed during the copy, by name.
    views: Vec<ViewEarly>,
    /// The tables of at least [`SHARED_BUILD_MIN_BYTES`]: those with two or more plain
    /// indexes get them built on two sessions at once (see [`shared_units`]).
    big_tables: BTreeSet<QualifiedName>,
}

/// A materialized view refreshed during the copy (see [`view_plans`]): as soon as every
/// table it reads is built and every materialized view it reads is refreshed.
#[derive(Debug, Clone)]
struct ViewEarly {
    name: QualifiedName,
    tables: BTreeSet<QualifiedName>,
    views: BTreeSet<QualifiedName>,
}

/// A foreign key added during the copy: its entries (the key, then its comment) and the
/// tables that must be built first.
#[derive(Debug, Clone)]
struct ForeignKeyEarly {
    /// The referencing table (for messages).
    table: QualifiedName,
    entries: Vec<Early>,
    needs: BTreeSet<QualifiedName>,
}

impl EarlyPlan {
    /// The tables built and analyzed during the copy.
    pub fn tables(&self) -> &BTreeSet<QualifiedName> {
        &self.tables
    }

    /// How many post-data entries are built during the copy (at most: a foreign key whose
    /// tables are not all built is left to the post-data restore).
    pub fn entry_count(&self) -> usize {
        self.entries.values().map(Vec::len).sum::<usize>()
            + self
                .foreign_keys
                .iter()
                .map(|k| k.entries.len())
                .sum::<usize>()
    }

    /// How many entries the post-data section has in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Takes the derived columns of the run: those of a table built during the copy are
    /// recomputed there when all of that table's expressions are in `same_row` (the tables
    /// whose expressions read only their own row); a table with another derived column is
    /// left to after the copy, entries and all. Returns the derived columns left for
    /// [`reindex::post_load`].
    pub fn take_derived(
        &mut self,
        derived: &[DerivedColumn],
        same_row: &BTreeSet<QualifiedName>,
    ) -> Vec<DerivedColumn> {
        let mut later = Vec::new();
        for d in derived {
            if !self.tables.contains(&d.table) {
                later.push(d.clone());
            } else if !same_row.contains(&d.table) {
                self.tables.remove(&d.table);
                self.entries.remove(&d.table);
                // Its keys, and the views over it, wait for it: it is never built early.
                self.foreign_keys.retain(|k| !k.needs.contains(&d.table));
                later.push(d.clone());
            }
        }
        for d in derived {
            if self.tables.contains(&d.table) {
                self.derived
                    .entry(d.table.clone())
                    .or_default()
                    .push(d.clone());
            }
        }
        later
    }
}

/// The tables of `derived` whose every derived expression reads only its own row: PostgreSQL
/// accepts it as the expression of a stored generated column of the column's type (tried in a
/// transaction on the new, still empty table, and rolled back). `client` has the server's
/// default settings, as the session that recomputes the columns.
pub async fn same_row_expressions(
    client: &Client,
    server: &str,
    derived: &[DerivedColumn],
) -> Result<BTreeSet<QualifiedName>, DbError> {
    let mut refused = BTreeSet::new();
    let mut tried = BTreeSet::new();
    for d in derived {
        tried.insert(d.table.clone());
        let type_sql: Option<String> = client
            .query_opt(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                  WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped",
                &[&d.table.sql(), &d.column],
            )
            .await
            .map_err(|e| DbError::new(server, format!("reading the type of {}", d.label()), e))?
            .map(|r| r.get(0));
        let Some(type_sql) = type_sql else {
            refused.insert(d.table.clone());
            continue;
        };
        let session =
            |e| DbError::new(server, format!("trying the expression of {}", d.label()), e);
        client.batch_execute("BEGIN").await.map_err(session)?;
        let accepted = client
            .batch_execute(&format!(
                "ALTER TABLE ONLY {} ADD COLUMN restage_same_row_probe {type_sql} \
                 GENERATED ALWAYS AS (({})) STORED",
                d.table.sql(),
                d.expression
            ))
            .await
            .is_ok();
        client.batch_execute("ROLLBACK").await.map_err(session)?;
        if !accepted {
            refused.insert(d.table.clone());
        }
    }
    Ok(tried.difference(&refused).cloned().collect())
}

/// Decides what is built per table during the copy, among `candidates` (the tables that have
/// copy jobs); the derived columns are given to it later ([`EarlyPlan::take_derived`], once
/// the new database's tables exist). None: nothing is (see the module doc).
pub async fn plan(
    tools: &PgTools,
    archive: &SchemaArchive,
    source: &Client,
    source_server: &str,
    candidates: &BTreeSet<QualifiedName>,
    refresh_views: bool,
) -> Result<Option<EarlyPlan>> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let Some(sql) = schema::post_data_sql(tools, archive).await? else {
        return Ok(None);
    };
    let Some((preamble, blocks)) = split(sql) else {
        tracing::debug!("post-data: a psql meta-command inside an entry; built after the copy");
        return Ok(None);
    };
    if preamble
        .lines()
        .any(|l| l.starts_with("SET client_encoding") && !l.contains("'UTF8'"))
    {
        return Ok(None);
    }
    let toc = toc_entries(archive.toc());
    let Some(matched) = match_toc(&toc, &blocks) else {
        tracing::debug!(
            "post-data: an entry header matches no entry of the archive's list; built after the copy"
        );
        return Ok(None);
    };
    let (eligible, big) = eligible_tables(source, source_server, candidates).await?;
    let per_table: Vec<(&TocEntry, &Block, &String)> = matched
        .iter()
        .zip(&blocks)
        .filter(|((_, desc), _)| PER_TABLE.contains(&desc.as_str()))
        .map(|((e, desc), b)| (*e, b, desc))
        .collect();
    let owners = owners(
        source,
        source_server,
        &per_table.iter().map(|(e, _, _)| *e).collect::<Vec<_>>(),
    )
    .await?;
    // What each kind's statement starts with, as pg_dump writes it: a block that does not is
    // not the entry its header says (the split is refused).
    let starts = |desc: &str, sql: &str| match desc {
        "INDEX" => sql.starts_with("CREATE INDEX ") || sql.starts_with("CREATE UNIQUE INDEX "),
        "CONSTRAINT" | "CHECK CONSTRAINT" => sql.starts_with("ALTER TABLE "),
        "STATISTICS" => sql.starts_with("CREATE STATISTICS "),
        _ => false,
    };
    if per_table.iter().any(|(_, b, desc)| !starts(desc, &b.sql)) {
        tracing::debug!("post-data: an entry does not read as its type; built after the copy");
        return Ok(None);
    }
    let mut plan = EarlyPlan {
        preamble,
        entries: BTreeMap::new(),
        tables: eligible.values().cloned().collect(),
        total: blocks.len(),
        derived: BTreeMap::new(),
        foreign_keys: Vec::new(),
        views: if refresh_views {
            view_plans(source, source_server).await?
        } else {
            Vec::new()
        },
        big_tables: big,
    };
    let foreign_keys = foreign_key_tables(
        source,
        source_server,
        &matched
            .iter()
            .filter(|(_, desc)| desc == FOREIGN_KEY)
            .map(|(e, _)| *e)
            .collect::<Vec<_>>(),
    )
    .await?;
    // Entry by entry, in the archive's order; a comment goes with the object just before it
    // (pg_dump writes an object's comment right after it, and pg_restore skips a comment
    // whose object it does not restore itself).
    // Where the last entry went: a table's list, or a foreign key.
    enum Last {
        Table(QualifiedName),
        ForeignKey(usize),
    }
    let mut last_early: Option<Last> = None;
    for ((entry, desc), block) in matched.iter().zip(&blocks) {
        if desc == "COMMENT" {
            if let Some(last) = last_early.take()
                && comments_on_per_table_object(&block.header)
                && block.sql.starts_with("COMMENT ON ")
            {
                let comment = Early {
                    id: entry.id,
                    label: format!(
                        "COMMENT {}",
                        block.header.split("; Type: ").next().unwrap_or("")
                    ),
                    sql: block.sql.clone(),
                };
                match last {
                    Last::Table(table) => plan.entries.entry(table).or_default().push(comment),
                    Last::ForeignKey(i) => plan.foreign_keys[i].entries.push(comment),
                }
            }
            continue;
        }
        last_early = None;
        if desc == FOREIGN_KEY {
            let Some(key) = foreign_keys.get(&entry.oid) else {
                continue;
            };
            // Every table it needs is built during the copy (all of them eligible).
            let needs: Option<BTreeSet<QualifiedName>> = key
                .referencing
                .iter()
                .chain(std::iter::once(&key.referenced))
                .map(|oid| eligible.get(oid).cloned())
                .collect();
            let Some(needs) = needs else {
                continue;
            };
            if !block.sql.starts_with("ALTER TABLE ") {
                continue;
            }
            plan.foreign_keys.push(ForeignKeyEarly {
                table: key.table.clone(),
                entries: vec![Early {
                    id: entry.id,
                    label: format!("foreign key {}", crate::catalog::display_ident(&key.name)),
                    sql: block.sql.clone(),
                }],
                needs,
            });
            last_early = Some(Last::ForeignKey(plan.foreign_keys.len() - 1));
            continue;
        }
        if !PER_TABLE.contains(&desc.as_str()) {
            continue;
        }
        let Some(table) = owners
            .get(&(entry.catalog, entry.oid))
            .and_then(|rel| eligible.get(rel))
        else {
            continue;
        };
        let name = block.header.split("; Type: ").next().unwrap_or("");
        plan.entries.entry(table.clone()).or_default().push(Early {
            id: entry.id,
            label: format!("{desc} {name}"),
            sql: block.sql.clone(),
        });
        last_early = Some(Last::Table(table.clone()));
    }
    Ok(Some(plan))
}

/// A table's entries as one part that runs first, on one session, in the archive's order
/// (constraints, CHECKs, statistics, and any index whose entry does more than create it),
/// and the plain indexes, each with its comments, which can run at once on several sessions.
/// `ADD CONSTRAINT` takes an ACCESS EXCLUSIVE lock on the table, and `CREATE STATISTICS` and
/// `CLUSTER ON` a SHARE UPDATE EXCLUSIVE one, both of which would make a `CREATE INDEX` on
/// another session wait; two `CREATE INDEX` (SHARE locks) do not wait for each other, as
/// pg_restore -j runs them. An index entry that holds another statement (`ALTER TABLE …
/// CLUSTER ON`, `REPLICA IDENTITY`, `ALTER INDEX … SET STATISTICS`) stays in the first part.
fn shared_units(entries: &[Early]) -> (Vec<&Early>, Vec<Vec<&Early>>) {
    let plain = |e: &Early| {
        e.label.starts_with("INDEX ")
            && (e.sql.starts_with("CREATE INDEX ") || e.sql.starts_with("CREATE UNIQUE INDEX "))
            && !e.sql.contains("\nALTER ")
    };
    let mut first = Vec::new();
    let mut units: Vec<Vec<&Early>> = Vec::new();
    // Whether the last entry that was not a comment went to `units`.
    let mut last_plain = false;
    for e in entries {
        if e.label.starts_with("COMMENT ") {
            match units.last_mut() {
                Some(unit) if last_plain => unit.push(e),
                _ => first.push(e),
            }
        } else if plain(e) {
            units.push(vec![e]);
            last_plain = true;
        } else {
            first.push(e);
            last_plain = false;
        }
    }
    (first, units)
}

/// The first object id of a user's or an extension's objects (`FirstNormalObjectId`): the
/// functions, operators and casts below it are PostgreSQL's own.
const FIRST_NORMAL_OID: u32 = 16384;

/// What one dependency of a view's query means for refreshing it during the copy.
#[derive(Debug, Clone)]
enum ViewDep {
    /// Rows of these tables (a partitioned table: its leaves).
    Tables(Vec<QualifiedName>),
    /// A plain view: what it reads in turn.
    View(u32),
    /// Another materialized view: refreshed first.
    MaterializedView(QualifiedName),
    /// Something the refresh may read that the copy does not settle (a sequence, a foreign
    /// table, a table under row security, a function of the user's, a volatile one): the
    /// view is refreshed after the copy.
    Unsettled,
}

/// The materialized views of the source (its snapshot, so the same as the archive's) that
/// can be refreshed during the copy, each with the tables and materialized views it reads,
/// through plain views in between. A refresh during the copy must give the rows a refresh
/// after it would: so a view qualifies only when its query reads nothing but tables (their
/// rows are final once built: derived columns recomputed, sequences do not matter) and
/// materialized views that qualify, and calls only PostgreSQL's own immutable or stable
/// functions and operators, not those that run a query given as text (the `*_xml*` family,
/// `ts_stat`, `ts_rewrite`). Row
/// security is created after the copy (post-data), so a table under it makes the view wait
/// for it. Anything else is refreshed after the copy, as before.
async fn view_plans(source: &Client, server: &str) -> Result<Vec<ViewEarly>, DbError> {
    // Functions PostgreSQL created at initdb are pinned: no dependency is recorded on them, so
    // the functions a query calls are read from its stored tree instead (every call,
    // operator, aggregate and window function names its function's oid there).
    let rows = source
        .query(
            "SELECT r.ev_class, v.relkind = 'm', vn.nspname::text, v.relname::text,
                    d.refclassid::regclass::text, d.refobjid,
                    c.relkind::text, cn.nspname::text, c.relname::text,
                    coalesce(c.relrowsecurity OR c.relforcerowsecurity, false),
                    array(SELECT ln.nspname::text FROM pg_partition_tree(c.oid) t
                            JOIN pg_class l ON l.oid = t.relid
                            JOIN pg_namespace ln ON ln.oid = l.relnamespace
                           WHERE t.isleaf AND c.relkind = 'p' ORDER BY t.relid),
                    array(SELECT l.relname::text FROM pg_partition_tree(c.oid) t
                            JOIN pg_class l ON l.oid = t.relid
                           WHERE t.isleaf AND c.relkind = 'p' ORDER BY t.relid),
                    EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid),
                    EXISTS (SELECT 1
                              FROM regexp_matches(r.ev_action::text,
                                       ':(?:funcid|opfuncid|aggfnoid|winfnoid) (\\d+)', 'g') AS m(f)
                              JOIN pg_proc p ON p.oid = m.f[1]::oid
                             WHERE p.oid >= 16384 OR p.provolatile = 'v'
                                OR p.proname ~ '(xml|^ts_stat$|^ts_rewrite$)')
               FROM pg_rewrite r
               JOIN pg_class v ON v.oid = r.ev_class AND v.relkind IN ('m', 'v')
               JOIN pg_namespace vn ON vn.oid = v.relnamespace
               LEFT JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = r.ev_class)
               LEFT JOIN pg_class c ON d.refclassid = 'pg_class'::regclass AND c.oid = d.refobjid
               LEFT JOIN pg_namespace cn ON cn.oid = c.relnamespace
              WHERE vn.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(|e| DbError::new(server, "reading what the materialized views read", e))?;
    let mut materialized: BTreeMap<QualifiedName, u32> = BTreeMap::new();
    let mut deps: HashMap<u32, Vec<ViewDep>> = HashMap::new();
    for r in rows {
        let view: u32 = r.get(0);
        if r.get::<_, bool>(1) {
            materialized.insert(
                QualifiedName::new(r.get::<_, String>(2), r.get::<_, String>(3)),
                view,
            );
        }
        let view_deps = deps.entry(view).or_default();
        if r.get::<_, bool>(13) {
            view_deps.push(ViewDep::Unsettled);
        }
        // None: the query depends on nothing but PostgreSQL's own objects.
        let Some(catalog) = r.get::<_, Option<String>>(4) else {
            continue;
        };
        let oid: u32 = r.get(5);
        let dep = match catalog.as_str() {
            "pg_class" => {
                let kind: Option<String> = r.get(6);
                let name = || QualifiedName::new(r.get::<_, String>(7), r.get::<_, String>(8));
                let secured: bool = r.get(9);
                let has_children: bool = r.get(12);
                match kind.as_deref() {
                    _ if secured => ViewDep::Unsettled,
                    // A parent of old-style inheritance reads its children, which may still
                    // be copying.
                    Some("r") if has_children => ViewDep::Unsettled,
                    Some("r") => ViewDep::Tables(vec![name()]),
                    Some("p") => {
                        let schemas: Vec<String> = r.get(10);
                        let names: Vec<String> = r.get(11);
                        ViewDep::Tables(
                            schemas
                                .into_iter()
                                .zip(names)
                                .map(|(s, n)| QualifiedName::new(s, n))
                                .collect(),
                        )
                    }
                    Some("v") => ViewDep::View(oid),
                    Some("m") => ViewDep::MaterializedView(name()),
                    _ => ViewDep::Unsettled,
                }
            }
            // The functions themselves are judged from the query's tree (above).
            "pg_proc" | "pg_operator" | "pg_cast" if oid < FIRST_NORMAL_OID => continue,
            "pg_type" | "pg_collation" | "pg_namespace" | "pg_constraint" | "pg_ts_config"
            | "pg_ts_dict" => continue,
            _ => ViewDep::Unsettled,
        };
        view_deps.push(dep);
    }
    let mut out = Vec::new();
    for (name, oid) in materialized {
        let mut view = ViewEarly {
            name,
            tables: BTreeSet::new(),
            views: BTreeSet::new(),
        };
        let mut seen = BTreeSet::new();
        if reads_only_settled(oid, &deps, &mut seen, &mut view) {
            out.push(view);
        }
    }
    Ok(out)
}

/// Adds what the query of `view` reads to `into`, through plain views; false when it reads
/// something unsettled. `seen` breaks cycles (a view's own rule, mutual recursion).
fn reads_only_settled(
    view: u32,
    deps: &HashMap<u32, Vec<ViewDep>>,
    seen: &mut BTreeSet<u32>,
    into: &mut ViewEarly,
) -> bool {
    if !seen.insert(view) {
        return true;
    }
    for dep in deps.get(&view).map(Vec::as_slice).unwrap_or(&[]) {
        match dep {
            ViewDep::Tables(tables) => into.tables.extend(tables.iter().cloned()),
            ViewDep::View(inner) => {
                if !reads_only_settled(*inner, deps, seen, into) {
                    return false;
                }
            }
            ViewDep::MaterializedView(name) => {
                if *name == into.name {
                    return false;
                }
                into.views.insert(name.clone());
            }
            ViewDep::Unsettled => return false,
        }
    }
    true
}

/// A comment entry's header names an index, a constraint or a statistics object (`INDEX
/// "x"; Type: COMMENT; …`, `CONSTRAINT x ON t; Type: COMMENT; …`).
fn comments_on_per_table_object(header: &str) -> bool {
    ["INDEX ", "CONSTRAINT ", "STATISTICS "]
        .iter()
        .any(|kind| header.starts_with(kind))
}

/// A foreign key's tables, by oid.
struct ForeignKeyTables {
    name: String,
    /// The table it is declared on (for messages).
    table: QualifiedName,
    /// The tables whose rows it checks: a partitioned table's leaves, or the table itself.
    referencing: Vec<u32>,
    referenced: u32,
}

/// Per foreign-key constraint oid among `entries`: its name and tables.
async fn foreign_key_tables(
    source: &Client,
    server: &str,
    entries: &[&TocEntry],
) -> Result<HashMap<u32, ForeignKeyTables>, DbError> {
    let oids: Vec<u32> = entries
        .iter()
        .filter(|e| e.catalog == 2606)
        .map(|e| e.oid)
        .collect();
    if oids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = source
        .query(
            "SELECT c.oid, c.confrelid,
                    array(SELECT t.relid::oid FROM pg_partition_tree(c.conrelid) t WHERE t.isleaf),
                    c.conrelid, c.conname::text, n.nspname::text, r.relname::text
               FROM pg_constraint c
               JOIN pg_class r ON r.oid = c.conrelid
               JOIN pg_namespace n ON n.oid = r.relnamespace
              WHERE c.oid = ANY($1) AND c.contype = 'f'",
            &[&oids],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the tables of the foreign keys", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            // pg_partition_tree lists nothing for a table outside partitioning.
            let mut leaves: Vec<u32> = r.get(2);
            if leaves.is_empty() {
                leaves.push(r.get(3));
            }
            (
                r.get::<_, u32>(0),
                ForeignKeyTables {
                    name: r.get(4),
                    table: QualifiedName::new(r.get::<_, String>(5), r.get::<_, String>(6)),
                    referencing: leaves,
                    referenced: r.get(1),
                },
            )
        })
        .collect())
}

/// The candidates that are plain tables or leaf partitions: oid → name; and those of them
/// of at least [`SHARED_BUILD_MIN_BYTES`].
async fn eligible_tables(
    source: &Client,
    server: &str,
    candidates: &BTreeSet<QualifiedName>,
) -> Result<(HashMap<u32, QualifiedName>, BTreeSet<QualifiedName>), DbError> {
    let schemas: Vec<&str> = candidates.iter().map(|t| t.schema.as_str()).collect();
    let names: Vec<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
    let rows = source
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, pg_relation_size(c.oid) >= $3
               FROM unnest($1::text[], $2::text[]) AS u(s, r)
               JOIN pg_namespace n ON n.nspname = u.s
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.r
              WHERE c.relkind = 'r'
                AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
                AND (c.relispartition
                     OR NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid))",
            &[&schemas, &names, &SHARED_BUILD_MIN_BYTES],
        )
        .await
        .map_err(|e| {
            DbError::new(
                server,
                "reading which tables can be indexed during the copy",
                e,
            )
        })?;
    let mut eligible = HashMap::new();
    let mut big = BTreeSet::new();
    for r in rows {
        let name = QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        if r.get::<_, bool>(3) {
            big.insert(name.clone());
        }
        eligible.insert(r.get::<_, u32>(0), name);
    }
    Ok((eligible, big))
}

/// The table of each index, constraint (primary key, unique, exclusion, check) and
/// statistics object among `entries`: (catalog, oid) → table oid.
async fn owners(
    source: &Client,
    server: &str,
    entries: &[&TocEntry],
) -> Result<HashMap<(u32, u32), u32>, DbError> {
    let of = |catalog: u32| -> Vec<u32> {
        entries
            .iter()
            .filter(|e| e.catalog == catalog)
            .map(|e| e.oid)
            .collect()
    };
    let (indexes, constraints, statistics) = (of(1259), of(2606), of(3381));
    let rows = source
        .query(
            "SELECT 1259::oid, indexrelid, indrelid FROM pg_index WHERE indexrelid = ANY($1)
             UNION ALL
             SELECT 2606::oid, oid, conrelid FROM pg_constraint
              WHERE oid = ANY($2) AND contype IN ('p', 'u', 'x', 'c') AND conrelid <> 0
             UNION ALL
             SELECT 3381::oid, oid, stxrelid FROM pg_statistic_ext WHERE oid = ANY($3)",
            &[&indexes, &constraints, &statistics],
        )
        .await
        .map_err(|e| DbError::new(server, "reading the tables of the post-data entries", e))?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.get::<_, u32>(0), r.get::<_, u32>(1)), r.get::<_, u32>(2)))
        .collect())
}

/// What the per-table builds did.
#[derive(Debug, Default)]
pub struct Built {
    /// Tables built and analyzed.
    pub tables: BTreeSet<QualifiedName>,
    /// Seconds the builds took, summed over their connections.
    pub busy_seconds: f64,
    /// The derived columns recomputed (`table.column`).
    pub derived_columns: Vec<String>,
    /// The dump ids of every entry built (for [`SchemaArchive::mark_built`]).
    pub ids: BTreeSet<u64>,
    /// Foreign keys added.
    pub foreign_keys: usize,
    /// Materialized views refreshed.
    pub views: BTreeSet<QualifiedName>,
}

/// The foreign keys waiting for their tables, shared by the builders.
#[derive(Debug, Default)]
struct Waiting {
    /// Tables built so far.
    built: BTreeSet<QualifiedName>,
    /// Foreign keys not yet added (indexes into [`EarlyPlan::foreign_keys`]).
    pending: Vec<usize>,
    /// Materialized views not yet refreshed nor being refreshed (indexes into
    /// [`EarlyPlan::views`]).
    views_pending: Vec<usize>,
    /// Materialized views refreshed so far.
    refreshed: BTreeSet<QualifiedName>,
}

impl Waiting {
    /// `table` is built: the foreign keys that need nothing more, taken out.
    fn built(&mut self, plan: &EarlyPlan, table: QualifiedName) -> Vec<usize> {
        self.built.insert(table);
        let built = &self.built;
        let (ready, pending): (Vec<usize>, Vec<usize>) = self
            .pending
            .iter()
            .partition(|&&i| plan.foreign_keys[i].needs.is_subset(built));
        self.pending = pending;
        ready
    }

    /// The materialized views whose tables are all built and whose materialized views are
    /// all refreshed, taken out (a view being refreshed is in neither list).
    fn ready_views(&mut self, plan: &EarlyPlan) -> Vec<usize> {
        let (built, refreshed) = (&self.built, &self.refreshed);
        let (ready, pending): (Vec<usize>, Vec<usize>) =
            self.views_pending.iter().partition(|&&i| {
                let view = &plan.views[i];
                view.tables.is_subset(built) && view.views.is_subset(refreshed)
            });
        self.views_pending = pending;
        ready
    }
}

/// Builds each table of `plan` once `done` has announced all of its `jobs` (copy jobs per
/// table), `workers` at a time, on connections of their own to `target`; returns when `done`
/// is closed (every copy finished) and every started build is done. The first failure ends
/// it with the error.
pub async fn run(
    plan: &EarlyPlan,
    jobs: HashMap<QualifiedName, usize>,
    mut done: mpsc::UnboundedReceiver<QualifiedName>,
    target: &PgEndpoint,
    server: &str,
    workers: usize,
) -> Result<Built> {
    let run_started = Instant::now();
    let (ready_tx, ready_rx) = mpsc::unbounded_channel::<QualifiedName>();
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    let dispatch = async move {
        let mut left = jobs;
        while let Some(table) = done.recv().await {
            let Some(n) = left.get_mut(&table) else {
                continue;
            };
            *n = n.saturating_sub(1);
            if *n == 0 {
                tracing::debug!(%table, at = format!("{:.2}", run_started.elapsed().as_secs_f64()), "data in");
            }
            if *n == 0 && plan.tables.contains(&table) {
                // The receivers live as long as this future: a send cannot fail here.
                let _ = ready_tx.send(table);
            }
        }
        drop(ready_tx);
        Ok::<(), Error>(())
    };
    let shared = Shared {
        waiting: std::sync::Mutex::new(Waiting {
            built: BTreeSet::new(),
            pending: (0..plan.foreign_keys.len()).collect(),
            views_pending: (0..plan.views.len()).collect(),
            refreshed: BTreeSet::new(),
        }),
        keys_hold: std::sync::Mutex::new(BTreeSet::new()),
        keys_released: Notify::new(),
    };
    let builders = futures_util::future::try_join_all(
        (0..workers.max(1))
            .map(|_| builder(plan, ready_rx.clone(), &shared, target, server, run_started)),
    );
    let ((), results) = futures_util::future::try_join(dispatch, builders).await?;
    let mut built = Built::default();
    for one in results {
        built.tables.extend(one.tables);
        built.busy_seconds += one.seconds;
        built.derived_columns.extend(one.derived);
        built.ids.extend(one.ids);
        built.foreign_keys += one.foreign_keys;
        built.views.extend(one.views);
    }
    Ok(built)
}

/// What the builders share: the foreign keys waiting, and the tables that keys being added
/// hold.
struct Shared {
    waiting: std::sync::Mutex<Waiting>,
    /// Tables some builder is adding foreign keys between. `ADD FOREIGN KEY` takes SHARE ROW
    /// EXCLUSIVE on both of its tables, a lock that conflicts with itself: two keys added at
    /// once that share a table would wait for each other, and in opposite directions
    /// (A → B and B → A) deadlock. Keys whose tables are disjoint run at once.
    keys_hold: std::sync::Mutex<BTreeSet<QualifiedName>>,
    keys_released: Notify,
}

impl Shared {
    /// Waits until none of `tables` is held by another builder's keys, then holds them all
    /// until the guard drops. Every wait ends: a builder takes all of its tables at once or
    /// none (it never holds some while waiting for others), and a holder's statements touch
    /// only tables no other builder's keys hold, so they wait on none of ours; the guard
    /// drops when they end, failed ones included.
    async fn hold_tables(&self, tables: BTreeSet<QualifiedName>) -> HeldTables<'_> {
        loop {
            // Created before the check, so a release between the check and the wait is not
            // missed (`notify_waiters` wakes every `Notified` created before it).
            let released = self.keys_released.notified();
            {
                let mut held = self.keys_hold.lock().unwrap_or_else(|e| e.into_inner());
                if held.is_disjoint(&tables) {
                    held.extend(tables.iter().cloned());
                    return HeldTables {
                        shared: self,
                        tables,
                    };
                }
            }
            released.await;
        }
    }
}

/// Tables held for foreign keys being added; released on drop (an error included).
struct HeldTables<'a> {
    shared: &'a Shared,
    tables: BTreeSet<QualifiedName>,
}

impl Drop for HeldTables<'_> {
    fn drop(&mut self) {
        let mut held = self
            .shared
            .keys_hold
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for table in &self.tables {
            held.remove(table);
        }
        drop(held);
        self.shared.keys_released.notify_waiters();
    }
}

/// One builder's share of the work.
#[derive(Default)]
struct BuilderDone {
    tables: Vec<QualifiedName>,
    seconds: f64,
    derived: Vec<String>,
    ids: Vec<u64>,
    foreign_keys: usize,
    views: Vec<QualifiedName>,
}

/// One connection's share of the builds: tables as they become ready, and the foreign keys
/// the last of their tables made ready.
async fn builder(
    plan: &EarlyPlan,
    ready: Arc<Mutex<mpsc::UnboundedReceiver<QualifiedName>>>,
    shared: &Shared,
    target: &PgEndpoint,
    server: &str,
    run_started: Instant,
) -> Result<BuilderDone> {
    let mut client: Option<Client> = None;
    // The second session of a big table's plain indexes (opened on the first such table).
    let mut helper: Option<Client> = None;
    // The derived columns' session: the server's defaults, not pg_restore's settings.
    let mut plain: Option<Client> = None;
    let mut out = BuilderDone::default();
    let mut busy = 0.0;
    loop {
        let next = ready.lock().await.recv().await;
        let Some(table) = next else { break };
        let started = Instant::now();
        if let Some(derived) = plan.derived.get(&table) {
            let p = match plain.take() {
                Some(p) => p,
                None => db::connect(target, db::Role::Target).await?,
            };
            out.derived
                .extend(reindex::recompute_derived(&p, server, derived, true).await?);
            plain = Some(p);
        }
        let c = match client.take() {
            Some(c) => c,
            None => session(target, server, &plan.preamble).await?,
        };
        let entries = plan.entries.get(&table).map(Vec::as_slice).unwrap_or(&[]);
        let what = |entries: &[&Early]| {
            if entries.is_empty() {
                format!("analyzing {table}")
            } else {
                let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
                format!(
                    "building the indexes and keys of {table} ({}) and analyzing it",
                    labels.join(", ")
                )
            }
        };
        let analyze = format!("ANALYZE {};", table.sql());
        let split = plan
            .big_tables
            .contains(&table)
            .then(|| shared_units(entries))
            .filter(|(_, units)| units.len() >= 2);
        if let Some((first, units)) = split {
            // A big table's plain indexes on two sessions at once, after the rest of its
            // entries (see `shared_units`), then ANALYZE. Not one transaction: a failure
            // fails the run, and the half-built database is dropped.
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            for (i, unit) in units.iter().enumerate() {
                let side = if i % 2 == 0 { &mut mine } else { &mut theirs };
                side.extend(unit.iter().copied());
            }
            let first_sql = joined(&first);
            let (result, ()) = tokio::join!(c.batch_execute(&first_sql), async {
                super::pause::point("post-data").await;
            });
            result.map_err(|e| DbError::new(server, what(&first), e))?;
            let other = match helper.take() {
                Some(h) => h,
                None => session(target, server, &plan.preamble).await?,
            };
            let (mine_sql, theirs_sql) = (joined(&mine), joined(&theirs));
            let (a, b) = tokio::join!(c.batch_execute(&mine_sql), other.batch_execute(&theirs_sql));
            a.map_err(|e| DbError::new(server, what(&mine), e))?;
            b.map_err(|e| DbError::new(server, what(&theirs), e))?;
            helper = Some(other);
            c.batch_execute(&analyze)
                .await
                .map_err(|e| DbError::new(server, what(&[]), e))?;
            tracing::debug!(
                %table,
                indexes = units.len(),
                "plain indexes built on two sessions at once"
            );
        } else {
            // One round trip a table: its entries in the archive's order, then ANALYZE
            // (after the indexes, so that expression indexes get their statistics), in one
            // implicit transaction: a failure leaves none of them.
            let all: Vec<&Early> = entries.iter().collect();
            let sql = format!("{}{analyze}", joined(&all));
            // The testing hook's `post-data` point: the first build started, not finished.
            let (result, ()) = tokio::join!(c.batch_execute(&sql), async {
                if !entries.is_empty() {
                    super::pause::point("post-data").await;
                }
            });
            result.map_err(|e| DbError::new(server, what(&all), e))?;
        }
        tracing::debug!(
            %table,
            entries = entries.len(),
            at = format!("{:.2}", run_started.elapsed().as_secs_f64()),
            seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
            "built during the copy"
        );
        out.ids.extend(entries.iter().map(|e| e.id));
        let keys = match shared.waiting.lock() {
            Ok(mut waiting) => waiting.built(plan, table.clone()),
            // A builder that panicked holding it: its keys are left to the post-data restore.
            Err(_) => Vec::new(),
        };
        out.tables.push(table.clone());
        // The keys this table made ready on its session, and at the same time, on the
        // session of the server's defaults, the materialized views it made ready.
        let add_keys = async {
            if keys.is_empty() {
                return Ok::<_, Error>((Vec::new(), 0));
            }
            // The keys this table made ready, in one round trip and one transaction (on
            // schemas with hundreds of small tables the keys' commits and round trips, not
            // their validation, were most of their cost), holding their tables.
            let keys: Vec<&ForeignKeyEarly> = keys.iter().map(|&i| &plan.foreign_keys[i]).collect();
            let tables: BTreeSet<QualifiedName> =
                keys.iter().flat_map(|k| k.needs.iter().cloned()).collect();
            let mut sql = String::new();
            for entry in keys.iter().flat_map(|k| &k.entries) {
                sql.push_str(&entry.sql);
                sql.push('\n');
            }
            let _held = shared.hold_tables(tables).await;
            let keys_started = Instant::now();
            c.batch_execute(&sql).await.map_err(|e| {
                let labels: Vec<String> = keys
                    .iter()
                    .map(|k| format!("the {} of {}", k.entries[0].label, k.table))
                    .collect();
                DbError::new(
                    server,
                    format!("adding {} (during the copy)", labels.join(", ")),
                    e,
                )
            })?;
            tracing::debug!(
                after = %table,
                keys = keys.len(),
                at = format!("{:.2}", run_started.elapsed().as_secs_f64()),
                seconds = format!("{:.2}", keys_started.elapsed().as_secs_f64()),
                "foreign keys added during the copy"
            );
            let ids: Vec<u64> = keys
                .iter()
                .flat_map(|k| k.entries.iter().map(|e| e.id))
                .collect();
            Ok((ids, keys.len()))
        };
        let refresh = refresh_ready_views(plan, shared, plain.take(), target, server, run_started);
        let ((ids, added), (session, views)) = tokio::try_join!(add_keys, refresh)?;
        out.ids.extend(ids);
        out.foreign_keys += added;
        out.views.extend(views);
        plain = session;
        busy += started.elapsed().as_secs_f64();
        client = Some(c);
    }
    out.seconds = busy;
    Ok(out)
}

/// A session for the per-table builds: pg_restore's settings (`preamble`).
async fn session(target: &PgEndpoint, server: &str, preamble: &str) -> Result<Client> {
    let c = db::connect(target, db::Role::Target).await?;
    c.batch_execute(preamble)
        .await
        .map_err(|e| DbError::new(server, "setting up a session for the per-table indexes", e))?;
    Ok(c)
}

/// The statements of `entries`, one after the other.
fn joined(entries: &[&Early]) -> String {
    let mut sql = String::new();
    for entry in entries {
        sql.push_str(&entry.sql);
        sql.push('\n');
    }
    sql
}

/// Refreshes the materialized views ready now, then those their refresh made ready, on
/// `plain` (a session of the server's defaults, as the refresh after the copy; opened when
/// needed). Returns the session and the views refreshed.
async fn refresh_ready_views(
    plan: &EarlyPlan,
    shared: &Shared,
    mut plain: Option<Client>,
    target: &PgEndpoint,
    server: &str,
    run_started: Instant,
) -> Result<(Option<Client>, Vec<QualifiedName>)> {
    let mut done = Vec::new();
    let mut views = take_ready_views(shared, plan);
    while let Some(i) = views.pop() {
        let view = &plan.views[i].name;
        let p = match plain.take() {
            Some(p) => p,
            None => db::connect(target, db::Role::Target).await?,
        };
        let view_started = Instant::now();
        reindex::refresh_view(&p, server, view).await?;
        plain = Some(p);
        tracing::debug!(
            %view,
            at = format!("{:.2}", run_started.elapsed().as_secs_f64()),
            seconds = format!("{:.2}", view_started.elapsed().as_secs_f64()),
            "materialized view refreshed during the copy"
        );
        if let Ok(mut waiting) = shared.waiting.lock() {
            waiting.refreshed.insert(view.clone());
        }
        done.push(view.clone());
        views.extend(take_ready_views(shared, plan));
    }
    Ok((plain, done))
}

/// The materialized views ready now, taken out of the waiting list (none when a builder
/// panicked holding it: they are left to after the copy).
fn take_ready_views(shared: &Shared, plan: &EarlyPlan) -> Vec<usize> {
    match shared.waiting.lock() {
        Ok(mut waiting) => waiting.ready_views(plan),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\
        --\n-- Name: a b a b_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\n\
        ALTER TABLE ONLY public.\"a b\"\n    ADD CONSTRAINT \"a b_pkey\" PRIMARY KEY (id);\n\n\n\
        --\n-- Name: CONSTRAINT \"a b_pkey\" ON \"a b\"; Type: COMMENT; Schema: public; Owner: -\n--\n\n\
        COMMENT ON CONSTRAINT \"a b_pkey\" ON public.\"a b\" IS '\n--\n-- Name: x; Type: INDEX; Schema: public; Owner: -\n--\n';\n\n\n\
        --\n-- Name: c c_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\n\
        ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_pkey PRIMARY KEY (id);\n\n\
        ALTER TABLE public.c CLUSTER ON c_pkey;\n\n\n\
        --\n-- Name: c c_ab_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -\n--\n\n\
        ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_ab_fkey FOREIGN KEY (ab) REFERENCES public.\"a b\"(id);\n\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n";

    const TOC: &str = ";\n; Archive created at 2026-12-01\n;\n\
        214; 1259 16388 TABLE public a b postgres\n\
        3217; 2606 16394 CONSTRAINT public a b a b_pkey postgres\n\
        3385; 0 0 COMMENT public CONSTRAINT \"a b_pkey\" ON \"a b\" postgres\n\
        3224; 2606 16405 CONSTRAINT public c c_pkey postgres\n\
        3222; 1259 16399 INDEX public x postgres\n\
        3234; 2606 16406 FK CONSTRAINT public c c_ab_fkey postgres\n";

    #[test]
    fn the_post_data_sql_splits_at_its_entry_headers() {
        let (preamble, blocks) = split(SQL).expect("no meta-command inside an entry");
        assert_eq!(
            preamble,
            "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
        );
        // The comment's text holds something that reads like a header: it splits there too,
        // and the matching against the table of contents is what catches it (below).
        let headers: Vec<&str> = blocks.iter().map(|b| b.header.as_str()).collect();
        assert_eq!(
            headers,
            [
                "a b a b_pkey; Type: CONSTRAINT; Schema: public; Owner: -",
                "CONSTRAINT \"a b_pkey\" ON \"a b\"; Type: COMMENT; Schema: public; Owner: -",
                "x; Type: INDEX; Schema: public; Owner: -",
                "c c_pkey; Type: CONSTRAINT; Schema: public; Owner: -",
                "c c_ab_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -",
            ]
        );
        assert_eq!(
            blocks[3].sql,
            "ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_pkey PRIMARY KEY (id);\n\nALTER TABLE public.c CLUSTER ON c_pkey;"
        );
    }

    #[test]
    fn a_header_inside_a_literal_is_caught_by_the_table_of_contents() {
        let (_, blocks) = split(SQL).expect("split");
        let toc = toc_entries(TOC);
        // The fake "x" header would take the INDEX entry that comes after c_pkey in the list,
        // and c_pkey, after it, then matches nothing: the split is refused.
        assert!(match_toc(&toc, &blocks).is_none());
        // Without the fake header, every entry matches its line, in order.
        let honest: Vec<Block> = blocks
            .iter()
            .filter(|b| !b.header.starts_with("x;"))
            .cloned()
            .collect();
        let matched = match_toc(&toc, &honest).expect("matches");
        let got: Vec<(u64, &str)> = matched.iter().map(|(e, d)| (e.id, d.as_str())).collect();
        assert_eq!(
            got,
            [
                (3217, "CONSTRAINT"),
                (3385, "COMMENT"),
                (3224, "CONSTRAINT"),
                (3234, "FK CONSTRAINT")
            ]
        );
        assert_eq!((matched[0].0.catalog, matched[0].0.oid), (2606, 16394));
    }

    #[test]
    fn a_meta_command_inside_an_entry_refuses_the_split() {
        let sql = "--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\n\\connect other\nALTER TABLE t ADD PRIMARY KEY (id);\n";
        assert!(split(sql).is_none());
    }

    /// A big table's entries: constraints, statistics and the index entries that do more
    /// than create an index run first; each plain index, with the comments after it, is a
    /// unit of its own; a comment after a first-part entry stays with it.
    #[test]
    fn plain_indexes_are_units_of_their_own() {
        let e = |label: &str, sql: &str| Early {
            id: 0,
            label: label.to_string(),
            sql: sql.to_string(),
        };
        let entries = [
            e(
                "CONSTRAINT t_pkey",
                "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
            ),
            e(
                "COMMENT CONSTRAINT t_pkey",
                "COMMENT ON CONSTRAINT t_pkey ON public.t IS 'k';",
            ),
            e(
                "INDEX t_a_idx",
                "CREATE INDEX t_a_idx ON public.t USING btree (a);",
            ),
            e(
                "COMMENT INDEX t_a_idx",
                "COMMENT ON INDEX public.t_a_idx IS 'a';",
            ),
            e(
                "INDEX t_b_key",
                "CREATE UNIQUE INDEX t_b_key ON public.t USING btree (b);",
            ),
            e(
                "INDEX t_c_idx",
                "CREATE INDEX t_c_idx ON public.t USING btree (c);\n\nALTER TABLE public.t CLUSTER ON t_c_idx;",
            ),
            e(
                "COMMENT INDEX t_c_idx",
                "COMMENT ON INDEX public.t_c_idx IS 'c';",
            ),
            e(
                "INDEX t_where",
                "CREATE INDEX t_where ON public.t USING btree (d) WHERE (d <> 'x\nALTER y'::text);",
            ),
            e(
                "STATISTICS t_stats",
                "CREATE STATISTICS public.t_stats ON a, b FROM public.t;",
            ),
        ];
        let (first, units) = shared_units(&entries);
        let labels = |v: &[&Early]| v.iter().map(|e| e.label.clone()).collect::<Vec<_>>();
        assert_eq!(
            labels(&first),
            [
                "CONSTRAINT t_pkey",
                "COMMENT CONSTRAINT t_pkey",
                "INDEX t_c_idx",
                "COMMENT INDEX t_c_idx",
                "INDEX t_where",
                "STATISTICS t_stats"
            ]
        );
        let units: Vec<Vec<String>> = units.iter().map(|u| labels(u)).collect();
        assert_eq!(
            units,
            [
                vec!["INDEX t_a_idx", "COMMENT INDEX t_a_idx"],
                vec!["INDEX t_b_key"]
            ]
        );
    }

    #[test]
    fn a_name_holding_the_header_separators_still_reads() {
        let r = readings("we; Type: ird; Type: INDEX; Schema: s; Owner: -");
        assert!(r.contains(&(
            "INDEX".to_string(),
            "s".to_string(),
            "we; Type: ird".to_string()
        )));
    }
}
