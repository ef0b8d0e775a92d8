//! The source schema as restage needs it, read once inside the snapshot: tables and their
//! partitions, columns with their types, keys, foreign keys, sequences, sizes. The `_restage`
//! schema (restage's own notes in a staging database) is never part of it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tokio_postgres::Client;

use crate::db::snapshot::LockTarget;
use crate::db::{DbError, quote_ident};

/// The relations the catalog holds as tables, as a condition on `pg_class c` joined with
/// `pg_namespace n`: ordinary and partitioned tables outside the system schemas, restage's
/// own `_restage` and extensions. The tables the run copies, plans and locks.
const TABLE_SCOPE: &str = "c.relkind IN ('r', 'p')
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')
                    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.classid = 'pg_class'::regclass
                                       AND d.objid = c.oid AND d.deptype = 'e')";

/// A table's identity: (schema, name). Printed as PostgreSQL's `quote_ident` would write
/// each part (`public.users`, `a."b.c"`, `"a.b".c`, `public."Order"`), so two different
/// tables never print the same and any key made of the printed form is a key of the pair;
/// [`QualifiedName::parse`] reads the printed form back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `schema.table`, `table` (schema `public`), and double-quoted parts
    /// (`"My Schema"."Weird.Table"`).
    pub fn parse(text: &str) -> Result<QualifiedName, String> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.trim().chars().peekable();
        let mut quoted_part = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    quoted_part = true;
                    loop {
                        match chars.next() {
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                current.push('"');
                            }
                            Some('"') => break,
                            Some(ch) => current.push(ch),
                            None => {
                                return Err(format!("unterminated quote in table name `{text}`"));
                            }
                        }
                    }
                }
                '.' => {
                    parts.push(std::mem::take(&mut current));
                    quoted_part = false;
                }
                c => current.push(c),
            }
        }
        let _ = quoted_part;
        parts.push(current);
        match parts.as_slice() {
            [name] if !name.is_empty() => Ok(QualifiedName::new("public", name.clone())),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Ok(QualifiedName::new(schema.clone(), name.clone()))
            }
            _ => Err(format!(
                "`{text}` is not a table name (expected schema.table)"
            )),
        }
    }

    /// The quoted SQL form.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// An identifier as PostgreSQL's `quote_ident` prints it: as it is when it is all lower-case
/// letters, digits and underscores, starts with a letter or underscore and is not a keyword
/// PostgreSQL reserves in any way; double-quoted (inner quotes doubled) otherwise.
pub fn display_ident(name: &str) -> std::borrow::Cow<'_, str> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && NON_UNRESERVED_KEYWORDS.binary_search(&name).is_err();
    if plain {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(quote_ident(name))
    }
}

/// PostgreSQL 15's keywords that are not unreserved (reserved, column-name and type/function
/// keywords: `SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'`), which
/// `quote_ident` quotes; sorted. A test compares [`display_ident`] with the server's own
/// `quote_ident` for every keyword.
#[rustfmt::skip]
const NON_UNRESERVED_KEYWORDS: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast",
    "char", "character", "check", "coalesce", "collate", "collation", "column", "concurrently",
    "constraint", "create", "cross", "current_catalog", "current_date", "current_role",
    "current_schema", "current_time", "current_timestamp", "current_user", "dec", "decimal",
    "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists",
    "extract", "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant",
    "greatest", "group", "grouping", "having", "ilike", "in", "initially", "inner", "inout",
    "int", "integer", "intersect", "interval", "into", "is", "isnull", "join", "lateral",
    "leading", "least", "left", "like", "limit", "localtime", "localtimestamp", "national",
    "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif", "numeric",
    "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing",
    "position", "precision", "primary", "real", "references", "returning", "right", "row",
    "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric",
    "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim",
    "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose",
    "when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
    "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
];

/// What kind of values a column holds, by its base type (domains resolved).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TypeKind {
    Text,
    Int,
    Float,
    Numeric,
    Bool,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    Interval,
    Json,
    Jsonb,
    Uuid,
    Inet,
    Cidr,
    MacAddr,
    Bytea,
    TsVector,
    Enum,
    Other(String),
}

/// A column's type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnType {
    /// As PostgreSQL prints it (`character varying(20)`, `text[]`, `public.mood`).
    pub name: String,
    /// The kind of the values, or of the elements for an array.
    pub kind: TypeKind,
    pub array: bool,
    /// The length limit of `varchar(n)` / `char(n)` (of each element for an array).
    pub max_len: Option<usize>,
    /// The labels of an enum type, in order.
    pub enum_labels: Vec<String>,
}

impl ColumnType {
    /// A plain type, for tests and generated schemas.
    pub fn simple(name: &str, kind: TypeKind) -> ColumnType {
        ColumnType {
            name: name.to_string(),
            kind,
            array: false,
            max_len: None,
            enum_labels: vec![],
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// The column refuses NULL: its own NOT NULL, or a NOT NULL domain it is of.
    pub not_null: bool,
    /// A generated column: left out of COPY, recomputed by the target.
    pub generated: bool,
    /// Its values can travel in COPY's binary format from one database to another of the
    /// same server version and come out equal, laid out so (see [`travels_in_binary`]);
    /// None: they travel in text.
    pub binary_copy: Option<BinaryLayout>,
}

/// How a value reads in COPY's binary format, for the row stage: whether a rule can take and
/// give its text there (see [`crate::copy_binary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BinaryLayout {
    /// The value's text itself, in the database's encoding: `text`, `varchar`, `char(n)`,
    /// `name`, `json`, an enum's label.
    Text,
    /// `jsonb`: a version byte (1), then the value's text.
    Jsonb,
    /// Anything else: passed on untouched, never read.
    Opaque,
}

impl BinaryLayout {
    /// The jsonb format version PostgreSQL writes and reads.
    pub const JSONB_VERSION: u8 = 1;

    /// The text of a value laid out so, None for [`BinaryLayout::Opaque`] or bytes that are
    /// not that layout.
    pub fn text(self, value: &[u8]) -> Option<&str> {
        let text = match self {
            BinaryLayout::Text => value,
            BinaryLayout::Jsonb => value.strip_prefix(&[Self::JSONB_VERSION])?,
            BinaryLayout::Opaque => return None,
        };
        std::str::from_utf8(text).ok()
    }

    /// The bytes that go before a value's text in this layout.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            BinaryLayout::Jsonb => &[Self::JSONB_VERSION],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TableKind {
    /// A table with rows of its own (including a leaf partition).
    Ordinary,
    /// A partitioned table: no rows of its own; its leaves are copied.
    Partitioned,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Table {
    pub name: QualifiedName,
    pub oid: u32,
    pub kind: TableKind,
    pub columns: Vec<Column>,
    /// Primary key column names, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Column sets of unique constraints and unique indexes (including the primary key).
    pub unique_keys: Vec<Vec<String>>,
    /// For a partition: its direct parent.
    pub parent: Option<QualifiedName>,
    /// The planner's row estimate (`reltuples`; -1 when never analyzed).
    pub estimated_rows: f64,
    /// Heap + TOAST bytes (`pg_table_size`), what `max_storage` budgets.
    pub bytes: u64,
    /// Heap pages now (`pg_relation_size`, not the planner's estimate), for splitting a big
    /// table into ctid ranges.
    pub pages: u64,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns that COPY moves (generated ones are computed by the target).
    pub fn copy_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ForeignKey {
    pub name: String,
    pub table: QualifiedName,
    pub columns: Vec<String>,
    pub referenced: QualifiedName,
    pub referenced_columns: Vec<String>,
    /// Every referencing column accepts NULL (so a dangling reference can be nulled).
    pub nullable: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Catalog {
    /// Ordinary and partitioned tables, by name.
    pub tables: BTreeMap<QualifiedName, Table>,
    pub foreign_keys: Vec<ForeignKey>,
    pub sequences: Vec<QualifiedName>,
    pub materialized_views: Vec<QualifiedName>,
    /// Installed extensions with their versions.
    pub extensions: Vec<(String, String)>,
    /// `server_version_num`, e.g. 150004.
    pub server_version: u32,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
}

impl Catalog {
    pub fn table(&self, name: &QualifiedName) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Tables that hold rows (ordinary tables and leaf partitions).
    pub fn data_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables
            .values()
            .filter(|t| t.kind == TableKind::Ordinary)
    }

    /// The table and its ancestors, nearest first (a leaf partition, its parent, …).
    pub fn lineage(&self, name: &QualifiedName) -> Vec<&Table> {
        let mut out = Vec::new();
        let mut current = self.tables.get(name);
        while let Some(table) = current {
            out.push(table);
            current = table.parent.as_ref().and_then(|p| self.tables.get(p));
            if out.len() > 64 {
                break;
            }
        }
        out
    }

    /// The topmost ancestor of a partition (the table itself when it is not a partition).
    pub fn root_of(&self, name: &QualifiedName) -> QualifiedName {
        self.lineage(name)
            .last()
            .map(|t| t.name.clone())
            .unwrap_or_else(|| name.clone())
    }

    /// Leaf partitions under a partitioned table (the table itself when ordinary).
    pub fn leaves(&self, name: &QualifiedName) -> Vec<&Table> {
        self.data_tables()
            .filter(|t| self.lineage(&t.name).iter().any(|a| &a.name == name))
            .collect()
    }

    /// Every table of the catalog's scope as the snapshot must lock it, read outside the
    /// snapshot (before it is taken: see [`crate::db::snapshot`]).
    pub async fn list_lock_targets(
        client: &Client,
        server: &str,
    ) -> Result<Vec<LockTarget>, DbError> {
        let rows = client
            .query(
                &format!(
                    "SELECT c.oid, n.nspname::text, c.relname::text
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE {TABLE_SCOPE}
                      ORDER BY n.nspname, c.relname"
                ),
                &[],
            )
            .await
            .map_err(|e| DbError::new(server, "listing the tables to lock", e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let name = QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2));
                LockTarget {
                    oid: r.get(0),
                    sql: name.sql(),
                    display: name.to_string(),
                }
            })
            .collect())
    }

    /// The catalog's tables as lock targets (see [`Catalog::list_lock_targets`]).
    pub fn lock_targets(&self) -> Vec<LockTarget> {
        self.tables
            .values()
            .map(|t| LockTarget {
                oid: t.oid,
                sql: t.name.sql(),
                display: t.name.to_string(),
            })
            .collect()
    }

    /// Reads the catalog. Run inside the snapshot transaction so it matches the data.
    pub async fn read(client: &Client, server: &str) -> Result<Catalog, DbError> {
        let q = |context: &'static str| {
            let server = server.to_string();
            move |e| DbError::new(server.clone(), context, e)
        };

        let version: String = client
            .query_one("SHOW server_version_num", &[])
            .await
            .map_err(q("reading server version"))?
            .get(0);
        let server_version = version.trim().parse().unwrap_or(0);

        let db = client
            .query_one(
                "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text
                   FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(q("reading database settings"))?;

        // Types: enough to resolve domains and arrays to a base kind.
        let type_rows = client
            .query(
                "SELECT t.oid, t.typname::text, n.nspname::text, t.typtype::text, t.typbasetype,
                        t.typelem, t.typcategory::text, t.typtypmod, t.typnotnull
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                  WHERE t.oid IN (SELECT atttypid FROM pg_attribute WHERE attnum > 0)
                     OR t.typtype IN ('d', 'e')
                     OR t.oid IN (SELECT typbasetype FROM pg_type WHERE typtype = 'd')
                     OR t.oid IN (SELECT typelem FROM pg_type WHERE oid IN
                                   (SELECT atttypid FROM pg_attribute WHERE attnum > 0
                                    UNION SELECT typbasetype FROM pg_type WHERE typtype = 'd'))",
                &[],
            )
            .await
            .map_err(q("reading types"))?;
        let mut types: HashMap<u32, RawType> = HashMap::new();
        for row in type_rows {
            types.insert(
                row.get(0),
                RawType {
                    name: row.get(1),
                    schema: row.get(2),
                    typtype: row.get(3),
                    base: row.get(4),
                    elem: row.get(5),
                    category: row.get(6),
                    typmod: row.get(7),
                    not_null: row.get(8),
                },
            );
        }
        let mut enum_labels: HashMap<u32, Vec<String>> = HashMap::new();
        for row in client
            .query(
                "SELECT enumtypid, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder",
                &[],
            )
            .await
            .map_err(q("reading enums"))?
        {
            enum_labels.entry(row.get(0)).or_default().push(row.get(1));
        }

        let table_rows = client
            .query(
                &format!(
                    "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                        c.reltuples::float8, pg_table_size(c.oid)::int8,
                        (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8,
                        (SELECT pn.nspname::text FROM pg_inherits i
                           JOIN pg_class pc ON pc.oid = i.inhparent
                           JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                          WHERE i.inhrelid = c.oid AND c.relispartition),
                        (SELECT pc.relname::text FROM pg_inherits i
                           JOIN pg_class pc ON pc.oid = i.inhparent
                          WHERE i.inhrelid = c.oid AND c.relispartition)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE {TABLE_SCOPE}"
                ),
                &[],
            )
            .await
            .map_err(q("reading tables"))?;

        let column_rows = client
            .query(
                "SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod,
                        format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated <> ''
                   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attrelid, a.attnum",
                &[],
            )
            .await
            .map_err(q("reading columns"))?;
        let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
        for row in column_rows {
            let rel: u32 = row.get(0);
            let type_oid: u32 = row.get(2);
            let typmod: i32 = row.get(3);
            let printed: String = row.get(4);
            columns.entry(rel).or_default().push(Column {
                name: row.get(1),
                ty: resolve_type(type_oid, typmod, printed, &types, &enum_labels),
                not_null: row.get::<_, bool>(5) || domain_not_null(type_oid, &types),
                generated: row.get(6),
                binary_copy: travels_in_binary(type_oid, &types),
            });
        }

        // Keys: primary key and unique column sets, by attribute names.
        let key_rows = client
            .query(
                "SELECT i.indrelid, i.indisprimary,
                        array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                              ORDER BY k.ord)
                   FROM pg_index i
                  WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                    AND NOT (0 = ANY (i.indkey::int2[]))",
                &[],
            )
            .await
            .map_err(q("reading keys"))?;
        let mut primary: HashMap<u32, Vec<String>> = HashMap::new();
        let mut uniques: HashMap<u32, Vec<Vec<String>>> = HashMap::new();
        for row in key_rows {
            let rel: u32 = row.get(0);
            let cols: Vec<String> = row.get(2);
            if row.get::<_, bool>(1) {
                primary.insert(rel, cols.clone());
            }
            uniques.entry(rel).or_default().push(cols);
        }
        // A partitioned table's primary key is an index on the parent only; partitions have
        // their own. Either way each table gets its own entry above.

        let mut tables = BTreeMap::new();
        for row in table_rows {
            let oid: u32 = row.get(0);
            let name = QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2));
            let relkind: String = row.get(3);
            let parent = match (
                row.get::<_, Option<String>>(7),
                row.get::<_, Option<String>>(8),
            ) {
                (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
                _ => None,
            };
            tables.insert(
                name.clone(),
                Table {
                    name,
                    oid,
                    kind: if relkind == "p" {
                        TableKind::Partitioned
                    } else {
                        TableKind::Ordinary
                    },
                    columns: columns.remove(&oid).unwrap_or_default(),
                    primary_key: primary.remove(&oid).unwrap_or_default(),
                    unique_keys: uniques.remove(&oid).unwrap_or_default(),
                    parent,
                    estimated_rows: row.get(4),
                    bytes: row.get::<_, i64>(5).max(0) as u64,
                    pages: row.get::<_, i64>(6).max(0) as u64,
                },
            );
        }

        // Foreign keys declared by the user (not the per-partition clones PostgreSQL makes).
        let fk_rows = client
            .query(
                "SELECT con.conname::text, n.nspname::text, c.relname::text,
                        rn.nspname::text, rc.relname::text,
                        array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                              ORDER BY k.ord),
                        array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                              ORDER BY k.ord),
                        NOT EXISTS (SELECT 1 FROM unnest(con.conkey) k(attnum)
                                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                                     WHERE a.attnotnull)
                   FROM pg_constraint con
                   JOIN pg_class c ON c.oid = con.conrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_class rc ON rc.oid = con.confrelid
                   JOIN pg_namespace rn ON rn.oid = rc.relnamespace
                  WHERE con.contype = 'f' AND con.conparentid = 0
                  ORDER BY 2, 3, 1",
                &[],
            )
            .await
            .map_err(q("reading foreign keys"))?;
        let foreign_keys = fk_rows
            .into_iter()
            .map(|row| ForeignKey {
                name: row.get(0),
                table: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                referenced: QualifiedName::new(row.get::<_, String>(3), row.get::<_, String>(4)),
                columns: row.get(5),
                referenced_columns: row.get(6),
                nullable: row.get(7),
            })
            .collect();

        let names = |relkind: &'static str| {
            let sql = format!(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind = '{relkind}'
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_restage')
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.classid = 'pg_class'::regclass
                                       AND d.objid = c.oid AND d.deptype = 'e')
                  ORDER BY 1, 2"
            );
            async move {
                client.query(&sql, &[]).await.map(|rows| {
                    rows.into_iter()
                        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
                        .collect::<Vec<_>>()
                })
            }
        };
        let sequences = names("S").await.map_err(q("reading sequences"))?;
        let materialized_views = names("m").await.map_err(q("reading materialized views"))?;

        let extensions = client
            .query(
                "SELECT extname::text, extversion::text FROM pg_extension ORDER BY 1",
                &[],
            )
            .await
            .map_err(q("reading extensions"))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();

        Ok(Catalog {
            tables,
            foreign_keys,
            sequences,
            materialized_views,
            extensions,
            server_version,
            encoding: db.get(0),
            collate: db.get(1),
            ctype: db.get(2),
        })
    }
}

struct RawType {
    name: String,
    schema: String,
    typtype: String,
    base: u32,
    elem: u32,
    category: String,
    typmod: i32,
    /// A domain declared NOT NULL.
    not_null: bool,
}

/// True when the type is a domain that refuses NULL, itself or through the domains it is
/// over (a domain over an array is not followed into its elements: NULL elements are not
/// the column's NULL).
fn domain_not_null(oid: u32, types: &HashMap<u32, RawType>) -> bool {
    let mut oid = oid;
    for _ in 0..16 {
        match types.get(&oid) {
            Some(t) if t.typtype == "d" => {
                if t.not_null {
                    return true;
                }
                oid = t.base;
            }
            _ => return false,
        }
    }
    false
}

/// PostgreSQL's own types whose binary COPY format (their send and receive functions) holds
/// the value itself, so that a value copied in binary from one database into another of the
/// same server version is the value copied in text (issue 14: the server's text output and
/// input of timestamps, numerics and jsonb are most of a plain copy's CPU; binary took
/// `COPY events_2025` from 4.5 to 3.1 server CPU-seconds, out and in, on the demo at scale
/// 100). An allowlist on purpose: left out are the types whose binary value is an OID that
/// names an object (the `reg*` types: in another database it names another one, or none),
/// `xml` (its receive function honours the document's own encoding declaration, its text
/// input does not), the types with no binary I/O or whose receive function refuses values
/// (`aclitem`, `gtsvector`, `pg_node_tree`, the `pg_*` statistics types), and every type
/// not listed; those tables travel in text.
const BINARY_COPY_TYPES: &[&str] = &[
    "bool",
    "bytea",
    "char",
    "name",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "money",
    "oid",
    "text",
    "varchar",
    "bpchar",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "bit",
    "varbit",
    "tsvector",
    "tsquery",
    "pg_lsn",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "datemultirange",
    "tsmultirange",
    "tstzmultirange",
];

/// How values of type `oid` travel in COPY's binary format between two databases of one
/// server version (see [`BINARY_COPY_TYPES`]), None when they cannot: one of those types, an
/// array of one, a user enum (its binary value is its label), or a domain over any of these
/// (its receive function checks the domain's constraints, as text input does). Not an array
/// of a user type or a composite: their binary values hold their element and field types'
/// OIDs, which differ in the new database.
fn travels_in_binary(oid: u32, types: &HashMap<u32, RawType>) -> Option<BinaryLayout> {
    let builtin =
        |t: &RawType| t.schema == "pg_catalog" && BINARY_COPY_TYPES.contains(&t.name.as_str());
    let mut oid = oid;
    // Domains may nest; bound the walk as resolve_type does.
    for _ in 0..16 {
        let t = types.get(&oid)?;
        match t.typtype.as_str() {
            "d" => oid = t.base,
            "e" => return Some(BinaryLayout::Text),
            _ if t.category == "A" && t.elem != 0 => {
                let element = types.get(&t.elem)?;
                return (t.schema == "pg_catalog" && builtin(element))
                    .then_some(BinaryLayout::Opaque);
            }
            _ if !builtin(t) => return None,
            _ => {
                return Some(match t.name.as_str() {
                    "text" | "varchar" | "bpchar" | "name" | "json" => BinaryLayout::Text,
                    "jsonb" => BinaryLayout::Jsonb,
                    _ => BinaryLayout::Opaque,
                });
            }
        }
    }
    None
}

/// Resolves a column's type to a kind: follows domains to their base type and arrays to their
/// element type.
fn resolve_type(
    oid: u32,
    typmod: i32,
    printed: String,
    types: &HashMap<u32, RawType>,
    enum_labels: &HashMap<u32, Vec<String>>,
) -> ColumnType {
    let mut oid = oid;
    let mut typmod = typmod;
    let mut array = false;
    // Domains may nest, and a domain may be over an array; bound the walk.
    for _ in 0..16 {
        let Some(t) = types.get(&oid) else { break };
        if t.typtype == "d" {
            if typmod < 0 {
                typmod = t.typmod;
            }
            oid = t.base;
            continue;
        }
        if t.category == "A" && t.elem != 0 && !array {
            array = true;
            oid = t.elem;
            continue;
        }
        break;
    }
    let (kind, labels) = match types.get(&oid) {
        Some(t) if t.typtype == "e" => (
            TypeKind::Enum,
            enum_labels.get(&oid).cloned().unwrap_or_default(),
        ),
        Some(t) => (kind_of(t), vec![]),
        None => (TypeKind::Other(printed.clone()), vec![]),
    };
    let max_len = match kind {
        TypeKind::Text if typmod > 4 => Some((typmod - 4) as usize),
        _ => None,
    };
    ColumnType {
        name: printed,
        kind,
        array,
        max_len,
        enum_labels: labels,
    }
}

fn kind_of(t: &RawType) -> TypeKind {
    if t.schema == "pg_catalog" {
        return match t.name.as_str() {
            "text" | "varchar" | "bpchar" | "name" | "char" => TypeKind::Text,
            "int2" | "int4" | "int8" | "oid" => TypeKind::Int,
            "float4" | "float8" => TypeKind::Float,
            "numeric" | "money" => TypeKind::Numeric,
            "bool" => TypeKind::Bool,
            "date" => TypeKind::Date,
            "timestamp" => TypeKind::Timestamp,
            "timestamptz" => TypeKind::TimestampTz,
            "time" | "timetz" => TypeKind::Time,
            "interval" => TypeKind::Interval,
            "json" => TypeKind::Json,
            "jsonb" => TypeKind::Jsonb,
            "uuid" => TypeKind::Uuid,
            "inet" => TypeKind::Inet,
            "cidr" => TypeKind::Cidr,
            "macaddr" | "macaddr8" => TypeKind::MacAddr,
            "bytea" => TypeKind::Bytea,
            "tsvector" => TypeKind::TsVector,
            other => TypeKind::Other(other.to_string()),
        };
    }
    // Extension string types (citext) are category S.
    if t.category == "S" {
        TypeKind::Text
    } else {
        TypeKind::Other(format!("{}.{}", t.schema, t.name))
    }
}

/// The constraints a copy must keep, read in the snapshot for the load-time checks of the
/// rules (refresh/constraints.rs): unique indexes of every kind (primary keys, unique
/// constraints and indexes, partial and expression ones, exclusion constraints), the CHECK
/// constraints of tables and of the domains their columns are of, and which foreign keys
/// match FULL. Only names, columns and the expressions PostgreSQL prints: never a row.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    pub unique: Vec<UniqueIndex>,
    pub checks: Vec<CheckConstraint>,
    pub domain_checks: Vec<DomainCheck>,
    /// The foreign keys declared `MATCH FULL`, by table and name.
    pub match_full: std::collections::BTreeSet<(QualifiedName, String)>,
}

/// What kind of constraint a unique index backs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    PrimaryKey,
    /// A unique constraint or a unique index.
    Unique,
    /// An exclusion constraint (`EXCLUDE USING gist (room WITH =, during WITH &&)`).
    Exclusion,
}

/// A unique index (or the index of an exclusion constraint) of a table or a partitioned table.
#[derive(Debug, Clone)]
pub struct UniqueIndex {
    pub table: QualifiedName,
    pub index: String,
    /// The constraint it backs (primary key, unique or exclusion constraint), if any.
    pub constraint: Option<String>,
    pub kind: IndexKind,
    /// The key's plain columns, in order (INCLUDE columns left out).
    pub columns: Vec<String>,
    /// Every key part as PostgreSQL prints it: a column's name or an expression.
    pub key_parts: Vec<String>,
    /// The columns the key's expressions read.
    pub expression_columns: Vec<String>,
    /// A partial index's WHERE, as printed, and the columns it reads.
    pub predicate: Option<String>,
    pub predicate_columns: Vec<String>,
    /// `NULLS NOT DISTINCT` (PostgreSQL 15): NULLs clash like values.
    pub nulls_not_distinct: bool,
}

impl UniqueIndex {
    /// `primary key users_pkey`, `unique index users_lower_name_idx`, … for messages.
    pub fn describe(&self) -> String {
        let (kind, name) = match (&self.kind, &self.constraint) {
            (IndexKind::PrimaryKey, Some(c)) => ("primary key", c),
            (IndexKind::Exclusion, Some(c)) => ("exclusion constraint", c),
            (_, Some(c)) => ("unique constraint", c),
            (_, None) => ("unique index", &self.index),
        };
        format!(
            "{kind} {} ({})",
            quote_ident(name),
            self.key_parts.join(", ")
        )
    }

    pub fn is_expression(&self) -> bool {
        !self.expression_columns.is_empty()
    }
}

/// A table's CHECK constraint.
#[derive(Debug, Clone)]
pub struct CheckConstraint {
    pub table: QualifiedName,
    pub name: String,
    /// The columns its expression reads.
    pub columns: Vec<String>,
    /// The expression as PostgreSQL prints it (`(zip ~ '^[0-9]{5}$'::text)`).
    pub expression: String,
}

/// A CHECK constraint of a domain a column is of (directly, through other domains, or as the
/// element type of an array).
#[derive(Debug, Clone)]
pub struct DomainCheck {
    pub table: QualifiedName,
    pub column: String,
    pub domain: String,
    pub constraint: String,
}

impl Constraints {
    /// Reads them for the tables of `catalog`. Run inside the snapshot, like [`Catalog::read`].
    pub async fn read(
        client: &Client,
        server: &str,
        catalog: &Catalog,
    ) -> Result<Constraints, DbError> {
        let q = |context: &'static str| {
            let server = server.to_string();
            move |e| DbError::new(server.clone(), context, e)
        };
        let by_oid: HashMap<u32, &QualifiedName> =
            catalog.tables.values().map(|t| (t.oid, &t.name)).collect();
        // The columns a stored expression reads: its Var nodes' attribute numbers.
        let vars = |tree: &str| {
            format!(
                "array(SELECT DISTINCT a.attname::text
                         FROM regexp_matches({tree}::text, ':varattno ([0-9]+)', 'g') m(n)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = m.n[1]::int2
                        ORDER BY 1)"
            )
        };
        let nulls_not_distinct = if catalog.server_version >= 150000 {
            "i.indnullsnotdistinct"
        } else {
            "false"
        };
        let sql = format!(
            "SELECT i.indrelid, ic.relname::text, con.conname::text, i.indisprimary, i.indisexclusion,
                    array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                          WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
                    array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                            FROM generate_series(1, i.indnkeyatts::int) k ORDER BY k),
                    {}, pg_get_expr(i.indpred, i.indrelid, true), {}, {nulls_not_distinct}
               FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                                          AND con.contype IN ('p', 'u', 'x')
              WHERE (i.indisunique OR i.indisexclusion) AND NOT ic.relispartition
              ORDER BY 1, 2",
            vars("i.indexprs"),
            vars("i.indpred"),
        );
        let mut unique = Vec::new();
        for row in client
            .query(&sql, &[])
            .await
            .map_err(q("reading unique indexes"))?
        {
            let Some(table) = by_oid.get(&row.get::<_, u32>(0)) else {
                continue;
            };
            unique.push(UniqueIndex {
                table: (*table).clone(),
                index: row.get(1),
                constraint: row.get(2),
                kind: if row.get::<_, bool>(3) {
                    IndexKind::PrimaryKey
                } else if row.get::<_, bool>(4) {
                    IndexKind::Exclusion
                } else {
                    IndexKind::Unique
                },
                columns: row.get(5),
                key_parts: row.get(6),
                expression_columns: row.get(7),
                predicate: row.get(8),
                predicate_columns: row.get(9),
                nulls_not_distinct: row.get(10),
            });
        }

        let mut checks = Vec::new();
        for row in client
            .query(
                "SELECT con.conrelid, con.conname::text,
                        array(SELECT a.attname::text FROM unnest(con.conkey) k(attnum)
                               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                              ORDER BY 1),
                        pg_get_expr(con.conbin, con.conrelid, true)
                   FROM pg_constraint con
                  WHERE con.contype = 'c' AND con.conrelid <> 0
                  ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(q("reading check constraints"))?
        {
            let Some(table) = by_oid.get(&row.get::<_, u32>(0)) else {
                continue;
            };
            checks.push(CheckConstraint {
                table: (*table).clone(),
                name: row.get(1),
                columns: row.get(2),
                expression: row.get(3),
            });
        }

        let mut domain_checks = Vec::new();
        for row in client
            .query(
                "WITH RECURSIVE chain(attrelid, attname, typid, depth) AS (
                     SELECT a.attrelid, a.attname::text, a.atttypid, 0
                       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                      WHERE a.attnum > 0 AND NOT a.attisdropped
                        AND (t.typtype = 'd' OR t.typelem <> 0)
                        AND a.attrelid IN (SELECT c.oid FROM pg_class c WHERE c.relkind IN ('r', 'p'))
                     UNION ALL
                     SELECT ch.attrelid, ch.attname,
                            CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END,
                            ch.depth + 1
                       FROM chain ch JOIN pg_type t ON t.oid = ch.typid
                      WHERE (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0))
                        AND ch.depth < 16
                 )
                 SELECT ch.attrelid, ch.attname, format_type(con.contypid, NULL), con.conname::text
                   FROM chain ch
                   JOIN pg_constraint con ON con.contypid = ch.typid AND con.contype = 'c'
                  ORDER BY 1, 2, 4",
                &[],
            )
            .await
            .map_err(q("reading domain constraints"))?
        {
            let Some(table) = by_oid.get(&row.get::<_, u32>(0)) else {
                continue;
            };
            domain_checks.push(DomainCheck {
                table: (*table).clone(),
                column: row.get(1),
                domain: row.get(2),
                constraint: row.get(3),
            });
        }

        let mut match_full = std::collections::BTreeSet::new();
        for row in client
            .query(
                "SELECT con.conrelid, con.conname::text FROM pg_constraint con
                  WHERE con.contype = 'f' AND con.confmatchtype = 'f' AND con.conparentid = 0",
                &[],
            )
            .await
            .map_err(q("reading foreign key match types"))?
        {
            if let Some(table) = by_oid.get(&row.get::<_, u32>(0)) {
                match_full.insert(((*table).clone(), row.get(1)));
            }
        }
        Ok(Constraints {
            unique,
            checks,
            domain_checks,
            match_full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_names() {
        assert_eq!(
            QualifiedName::parse("public.users").unwrap(),
            QualifiedName::new("public", "users")
        );
        assert_eq!(
            QualifiedName::parse("users").unwrap(),
            QualifiedName::new("public", "users")
        );
        assert_eq!(
            QualifiedName::parse("\"My Schema\".\"Odd.Name\"\"x\"").unwrap(),
            QualifiedName::new("My Schema", "Odd.Name\"x")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
        assert_eq!(
            QualifiedName::new("My Schema", "t").sql(),
            "\"My Schema\".\"t\""
        );
    }

    /// Issue 11: `a."b.c"` and `"a.b".c` are two tables and print as two names, each read
    /// back as itself.
    #[test]
    fn names_print_as_quote_ident_does_and_parse_back() {
        let cases = [
            (QualifiedName::new("public", "users"), "public.users"),
            (QualifiedName::new("a", "b.c"), "a.\"b.c\""),
            (QualifiedName::new("a.b", "c"), "\"a.b\".c"),
            (QualifiedName::new("public", "Order"), "public.\"Order\""),
            (QualifiedName::new("public", "order"), "public.\"order\""),
            (QualifiedName::new("s", "t\"x"), "s.\"t\"\"x\""),
            (QualifiedName::new("s", "1st"), "s.\"1st\""),
            (QualifiedName::new("s", "_x1"), "s._x1"),
            (QualifiedName::new("s", "café"), "s.\"café\""),
        ];
        for (name, printed) in cases {
            assert_eq!(name.to_string(), printed);
            assert_eq!(QualifiedName::parse(printed).unwrap(), name, "{printed}");
        }
        let mut sorted = NON_UNRESERVED_KEYWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            sorted, NON_UNRESERVED_KEYWORDS,
            "binary search needs them sorted"
        );
    }
}
