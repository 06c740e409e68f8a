//! The multi-dimension schema: table DDL, index DDL, the migration's own
//! bookkeeping tables, and the one routing function dimension → table.
//!
//! SQL identifiers used anywhere in the crate come from here, never from
//! input.

use libsql::Connection;
use serde::{Deserialize, Serialize};

use crate::error::{DbContext, Result};

/// The legacy single-table store.
pub const LEGACY_TABLE: &str = "embeddings";

/// The dimensions that get a native `F32_BLOB(N)` table and a DiskANN index.
pub const NATIVE_DIMENSIONS: [usize; 4] = [384, 1024, 1536, 3072];

/// The columns every embedding table has, in the order the migration reads
/// and writes them.
pub use crate::decode::row::COLUMNS;

/// How a quantized scan index holds each vector: 8 bits a dimension
/// (`vector8`, scaled to the vector's own range) or its signs alone
/// (`vector1bit`; libSQL's cosine distance of two such is their Hamming
/// distance). One bit reads an eighth of the bytes a search, and so
/// searches several times faster, but ranks coarser: it needs a larger
/// over-fetch for the same recall, which the plan measures.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ScanBits {
    #[default]
    Float8,
    Float1Bit,
}

impl ScanBits {
    pub const ALL: [ScanBits; 2] = [ScanBits::Float8, ScanBits::Float1Bit];

    /// libSQL's function that quantizes a vector so.
    pub fn function(self) -> &'static str {
        match self {
            ScanBits::Float8 => "vector8",
            ScanBits::Float1Bit => "vector1bit",
        }
    }

    /// The index plan's options text of this scan index (`scan`,
    /// `scan1bit`), as `--index-options` takes it.
    pub fn options(self) -> &'static str {
        match self {
            ScanBits::Float8 => "scan",
            ScanBits::Float1Bit => "scan1bit",
        }
    }

    /// The scan index an options text names, if it names one.
    pub fn from_options(options: &str) -> Option<ScanBits> {
        ScanBits::ALL.into_iter().find(|b| b.options() == options)
    }
}

/// One of the five target tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TargetTable {
    /// `embeddings_384`
    D384,
    /// `embeddings_1024`
    D1024,
    /// `embeddings_1536`
    D1536,
    /// `embeddings_3072`
    D3072,
    /// `embeddings_other`, plain BLOB vectors of any other dimension.
    Other,
}

macro_rules! native_table_sql {
    ($n:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS embeddings_",
            $n,
            " (\n",
            "    embedding_id TEXT PRIMARY KEY NOT NULL,\n",
            "    item_id TEXT NOT NULL,\n",
            "    item_type TEXT NOT NULL,\n",
            "    embedding_data TEXT NOT NULL,\n",
            "    embedding_vector F32_BLOB(",
            $n,
            "),\n",
            "    dimension INTEGER NOT NULL DEFAULT ",
            $n,
            ",\n",
            "    model TEXT NOT NULL,\n",
            "    created_at INTEGER NOT NULL DEFAULT (strftime('%s','now'))\n",
            ")"
        )
    };
}

const OTHER_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embeddings_other (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    item_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    embedding_data TEXT NOT NULL,
    embedding_vector BLOB,
    dimension INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s','now'))
)";

macro_rules! item_index_sql {
    ($n:literal) => {
        concat!(
            "CREATE INDEX IF NOT EXISTS idx_embeddings_",
            $n,
            "_item ON embeddings_",
            $n,
            "(item_id, item_type)"
        )
    };
}

macro_rules! vector_index_sql {
    ($n:literal) => {
        concat!(
            "CREATE INDEX IF NOT EXISTS idx_embeddings_",
            $n,
            "_vector ON embeddings_",
            $n,
            "(libsql_vector_idx(embedding_vector))"
        )
    };
}

impl TargetTable {
    /// Every target table, in routing order.
    pub const ALL: [TargetTable; 5] = [
        TargetTable::D384,
        TargetTable::D1024,
        TargetTable::D1536,
        TargetTable::D3072,
        TargetTable::Other,
    ];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            TargetTable::D384 => "embeddings_384",
            TargetTable::D1024 => "embeddings_1024",
            TargetTable::D1536 => "embeddings_1536",
            TargetTable::D3072 => "embeddings_3072",
            TargetTable::Other => "embeddings_other",
        }
    }

    /// Looks a table up by its name.
    pub fn from_name(name: &str) -> Option<TargetTable> {
        TargetTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the table has a native `F32_BLOB(N)` column and a DiskANN index.
    pub fn is_native(self) -> bool {
        self.native_dimension().is_some()
    }

    /// N for `embeddings_N`; `None` for `embeddings_other`.
    pub fn native_dimension(self) -> Option<usize> {
        match self {
            TargetTable::D384 => Some(384),
            TargetTable::D1024 => Some(1024),
            TargetTable::D1536 => Some(1536),
            TargetTable::D3072 => Some(3072),
            TargetTable::Other => None,
        }
    }

    /// Whether a row of `dimension` belongs in this table.
    pub fn holds(self, dimension: i64) -> bool {
        usize::try_from(dimension).is_ok_and(|d| d > 0 && route(d) == self)
    }

    /// The table a resumable vector-index build fills (it becomes this
    /// table when the build completes); `None` for `embeddings_other`.
    pub fn indexing_table(self) -> Option<&'static str> {
        match self {
            TargetTable::D384 => Some("embeddings_384_indexing"),
            TargetTable::D1024 => Some("embeddings_1024_indexing"),
            TargetTable::D1536 => Some("embeddings_1536_indexing"),
            TargetTable::D3072 => Some("embeddings_3072_indexing"),
            TargetTable::Other => None,
        }
    }

    /// This table's `CREATE TABLE` under another name (the indexing table).
    pub fn create_table_sql_named(self, name: &str) -> String {
        self.create_table_sql().replacen(
            &format!("IF NOT EXISTS {} (", self.name()),
            &format!("IF NOT EXISTS {name} ("),
            1,
        )
    }

    /// `CREATE TABLE IF NOT EXISTS` for this table.
    pub fn create_table_sql(self) -> &'static str {
        match self {
            TargetTable::D384 => native_table_sql!("384"),
            TargetTable::D1024 => native_table_sql!("1024"),
            TargetTable::D1536 => native_table_sql!("1536"),
            TargetTable::D3072 => native_table_sql!("3072"),
            TargetTable::Other => OTHER_TABLE_SQL,
        }
    }

    /// `CREATE INDEX IF NOT EXISTS idx_embeddings_<N|other>_item …`.
    pub fn item_index_sql(self) -> &'static str {
        match self {
            TargetTable::D384 => item_index_sql!("384"),
            TargetTable::D1024 => item_index_sql!("1024"),
            TargetTable::D1536 => item_index_sql!("1536"),
            TargetTable::D3072 => item_index_sql!("3072"),
            TargetTable::Other => item_index_sql!("other"),
        }
    }

    /// The DiskANN index's name; `None` for `embeddings_other`.
    pub fn vector_index_name(self) -> Option<&'static str> {
        match self {
            TargetTable::D384 => Some("idx_embeddings_384_vector"),
            TargetTable::D1024 => Some("idx_embeddings_1024_vector"),
            TargetTable::D1536 => Some("idx_embeddings_1536_vector"),
            TargetTable::D3072 => Some("idx_embeddings_3072_vector"),
            TargetTable::Other => None,
        }
    }

    /// The quantized scan index's name (an ordinary index of the vector
    /// quantized to `bits`, see [`TargetTable::scan_index_sql`]); `None`
    /// for `embeddings_other`. Each quantization has its own name, so an
    /// index of one is never taken for the other.
    pub fn scan_index_name(self, bits: ScanBits) -> Option<&'static str> {
        Some(match (self, bits) {
            (TargetTable::D384, ScanBits::Float8) => "idx_embeddings_384_scan",
            (TargetTable::D1024, ScanBits::Float8) => "idx_embeddings_1024_scan",
            (TargetTable::D1536, ScanBits::Float8) => "idx_embeddings_1536_scan",
            (TargetTable::D3072, ScanBits::Float8) => "idx_embeddings_3072_scan",
            (TargetTable::D384, ScanBits::Float1Bit) => "idx_embeddings_384_scan1bit",
            (TargetTable::D1024, ScanBits::Float1Bit) => "idx_embeddings_1024_scan1bit",
            (TargetTable::D1536, ScanBits::Float1Bit) => "idx_embeddings_1536_scan1bit",
            (TargetTable::D3072, ScanBits::Float1Bit) => "idx_embeddings_3072_scan1bit",
            (TargetTable::Other, _) => return None,
        })
    }

    /// `CREATE INDEX idx_embeddings_N_scan ON embeddings_N(vector8(embedding_vector))`
    /// (`vector1bit` and `…_scan1bit` for [`ScanBits::Float1Bit`]):
    /// libSQL's quantizing functions are deterministic, so SQLite indexes
    /// them and keeps them in step on every write; a scan of it reads the
    /// quantized vectors and rowids only, never the rows (about ten to a
    /// page at 384 dimensions and 8 bits, against one row in two pages). No
    /// `IF NOT EXISTS`: an object of that name that is not this index must
    /// not pass for it.
    pub fn scan_index_sql(self, bits: ScanBits) -> Option<String> {
        self.scan_index_sql_on(self.name(), bits)
    }

    /// The scan index of this table (its name), created on the table named
    /// `on`: the table itself, or the indexing table of a build in batches.
    pub fn scan_index_sql_on(self, on: &str, bits: ScanBits) -> Option<String> {
        self.scan_index_name(bits).map(|name| {
            format!(
                "CREATE INDEX {name} ON {on}({}(embedding_vector))",
                bits.function()
            )
        })
    }

    /// A subquery of the `limit` rowids (as `id`) nearest to the vector
    /// `query` by quantized distance, read from the scan index alone (the
    /// distance in `ORDER BY` only: the index holds that expression);
    /// exact distances re-rank them. `query` and `limit` are SQL
    /// (parameters or literals).
    pub fn scan_nearest_sql(self, bits: ScanBits, query: &str, limit: &str) -> Option<String> {
        self.scan_index_name(bits).map(|index| {
            let f = bits.function();
            format!(
                "(SELECT rowid AS id FROM {} INDEXED BY {index} \
                 ORDER BY vector_distance_cos({f}(embedding_vector), {f}({query})) \
                 NULLS LAST LIMIT {limit})",
                self.name()
            )
        })
    }

    /// `CREATE INDEX IF NOT EXISTS idx_embeddings_N_vector … libsql_vector_idx(…)`.
    pub fn vector_index_sql(self) -> Option<&'static str> {
        match self {
            TargetTable::D384 => Some(vector_index_sql!("384")),
            TargetTable::D1024 => Some(vector_index_sql!("1024")),
            TargetTable::D1536 => Some(vector_index_sql!("1536")),
            TargetTable::D3072 => Some(vector_index_sql!("3072")),
            TargetTable::Other => None,
        }
    }
}

impl std::fmt::Display for TargetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The routing function: which table a vector of `dimension` lives in.
/// Every part of the crate routes through here.
pub fn route(dimension: usize) -> TargetTable {
    match dimension {
        384 => TargetTable::D384,
        1024 => TargetTable::D1024,
        1536 => TargetTable::D1536,
        3072 => TargetTable::D3072,
        _ => TargetTable::Other,
    }
}

/// The design's name for [`route`]: `(table name, native vector support)`.
pub fn get_table_for_dimension(dimension: usize) -> (&'static str, bool) {
    let table = route(dimension);
    (table.name(), table.is_native())
}

/// The single-row checkpoint of the copy: the last `embedding_id` done, in
/// key order. Written in the same transaction as the batch it describes.
/// `last_embedding_id` has no declared type so the key keeps its exact value.
pub const CHECKPOINT_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_embedding_id,
    rows_written INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    copy_completed_at INTEGER
)";

/// Legacy rows that cannot be migrated, with the reason. They stay in the
/// legacy table; this record lets a later run and a later operator see them.
pub const QUARANTINE_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_quarantine (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
)";

/// The keys of every row this migration wrote, where, and the row's
/// fingerprint as written ([`crate::decode::row::fingerprint`]): the
/// migration owns exactly the rows listed here whose fingerprint still
/// matches. A rollback removes only those, and a row the application
/// changed since is never overwritten or deleted. (A NULL fingerprint comes
/// from a ledger written before fingerprints were kept: trusted as ours.)
pub const LEDGER_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_ledger (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    target_table TEXT NOT NULL,
    fingerprint INTEGER
) WITHOUT ROWID";

/// Target rows that `--on-conflict legacy` replaced with the legacy row,
/// saved in the transaction that replaced them, so `--rollback` puts them
/// back. Value columns have no declared type: each keeps its exact value.
pub const DISPLACED_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_displaced (
    seq INTEGER PRIMARY KEY,
    target_table TEXT NOT NULL,
    embedding_id NOT NULL,
    item_id,
    item_type,
    embedding_data,
    embedding_vector,
    dimension,
    model,
    created_at,
    displaced_at INTEGER NOT NULL
)";

/// The conflicts the last verification found: target rows this migration
/// does not own (or that changed since it wrote them) holding a key of the
/// legacy table with other values. Rewritten by every execute run, read by
/// `--status`.
pub const CONFLICTS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_conflicts (
    embedding_id NOT NULL,
    target_table TEXT NOT NULL,
    kind TEXT NOT NULL,
    newer TEXT NOT NULL,
    legacy_fingerprint INTEGER,
    target_fingerprint INTEGER,
    PRIMARY KEY (embedding_id, target_table)
) WITHOUT ROWID";

/// One row naming the process that runs the migration now.
pub const LOCK_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS embedding_migration_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
)";

/// The store's key/value table (created if missing, same shape as the one
/// legacy databases may already have).
pub const METADATA_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS metadata (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER
)";

/// Progress of resumable vector-index builds: the last rowid copied into
/// each indexing table.
pub const INDEX_PROGRESS_TABLE_SQL: &str =
    "CREATE TABLE IF NOT EXISTS embedding_migration_index_progress (
    target_table TEXT PRIMARY KEY NOT NULL,
    last_rowid INTEGER NOT NULL
)";

/// Name of the table of displaced target rows.
pub const DISPLACED_TABLE: &str = "embedding_migration_displaced";
/// Name of the table of conflicts found by the last verification.
pub const CONFLICTS_TABLE: &str = "embedding_migration_conflicts";

/// Name of the index-build progress table.
pub const INDEX_PROGRESS_TABLE: &str = "embedding_migration_index_progress";

/// Name of the ledger table.
pub const LEDGER_TABLE: &str = "embedding_migration_ledger";
/// Name of the lock table.
pub const LOCK_TABLE: &str = "embedding_migration_lock";
/// Name of the metadata table.
pub const METADATA_TABLE: &str = "metadata";
/// The copy of the legacy table made by `--backup`.
pub const BACKUP_TABLE: &str = "embeddings_backup";
/// The schema version a migrated database is at (1 is the single legacy
/// table, 2 the per-dimension tables).
pub const SCHEMA_VERSION: i64 = 2;

/// Name of the checkpoint table.
pub const CHECKPOINT_TABLE: &str = "embedding_migration_checkpoint";
/// Name of the quarantine table.
pub const QUARANTINE_TABLE: &str = "embedding_migration_quarantine";

/// Creates every target table that is missing (never alters one that
/// exists), and the migration's bookkeeping tables. The item indexes come
/// after the bulk copy ([`create_item_indexes`]): built from the loaded
/// rows they cost a sort, where maintaining them row by row costs a random
/// b-tree insert each, which grows with the table. Vector indexes are left
/// to the vector-index phase.
pub async fn create_target_tables(conn: &Connection) -> Result<()> {
    for table in TargetTable::ALL {
        conn.execute(table.create_table_sql(), ())
            .await
            .db_context(|| format!("creating table {table}"))?;
    }
    for sql in [CHECKPOINT_TABLE_SQL, QUARANTINE_TABLE_SQL, LEDGER_TABLE_SQL] {
        conn.execute(sql, ())
            .await
            .db_context(|| "creating the migration bookkeeping tables".to_string())?;
    }
    // A ledger written before fingerprints were kept gains the column; its
    // rows keep NULL (trusted as the migration's own).
    if !table_columns(conn, LEDGER_TABLE)
        .await?
        .iter()
        .any(|c| c == "fingerprint")
    {
        conn.execute(
            &format!("ALTER TABLE {LEDGER_TABLE} ADD COLUMN fingerprint INTEGER"),
            (),
        )
        .await
        .db_context(|| "adding the fingerprint column to the ledger".to_string())?;
    }
    Ok(())
}

/// Creates the item index of every target table where it is missing.
pub async fn create_item_indexes(conn: &Connection) -> Result<()> {
    for table in TargetTable::ALL {
        conn.execute(table.item_index_sql(), ())
            .await
            .db_context(|| format!("creating the item index of {table}"))?;
    }
    Ok(())
}

/// How DiskANN stores neighbour vectors (libSQL's `compress_neighbors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NeighborCompression {
    Float1Bit,
    Float8,
    Float16,
    FloatB16,
    Float32,
}

impl NeighborCompression {
    /// libSQL's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NeighborCompression::Float1Bit => "float1bit",
            NeighborCompression::Float8 => "float8",
            NeighborCompression::Float16 => "float16",
            NeighborCompression::FloatB16 => "floatb16",
            NeighborCompression::Float32 => "float32",
        }
    }

    /// Parses libSQL's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            NeighborCompression::Float1Bit,
            NeighborCompression::Float8,
            NeighborCompression::Float16,
            NeighborCompression::FloatB16,
            NeighborCompression::Float32,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// Options of the DiskANN indexes, passed through to `libsql_vector_idx`.
/// Typed, so nothing from input reaches the SQL text unchecked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VectorIndexOptions {
    /// `compress_neighbors=…`; libSQL's default keeps full vectors.
    pub compress_neighbors: Option<NeighborCompression>,
    /// `max_neighbors=…`; libSQL's default depends on the dimension.
    pub max_neighbors: Option<u32>,
    /// `search_l=…`: the candidate list of a search (libSQL's default is
    /// 200). Smaller is faster at some cost in recall (BENCHMARKS.md).
    pub search_l: Option<u32>,
}

impl VectorIndexOptions {
    /// The options as `libsql_vector_idx` takes them, comma-separated
    /// (`compress_neighbors=float8,max_neighbors=32`; empty: the defaults).
    pub fn options_string(&self) -> String {
        let mut out = Vec::new();
        if let Some(c) = self.compress_neighbors {
            out.push(format!("compress_neighbors={}", c.as_str()));
        }
        if let Some(n) = self.max_neighbors {
            out.push(format!("max_neighbors={n}"));
        }
        if let Some(n) = self.search_l {
            out.push(format!("search_l={n}"));
        }
        out.join(",")
    }

    /// Parses [`VectorIndexOptions::options_string`]'s form (`default` or
    /// an empty text: libSQL's defaults).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut o = VectorIndexOptions::default();
        for part in s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "default")
        {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
            let number = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| format!("{key} takes a number from 1 to 10000, not {value:?}"))
            };
            match key {
                "compress_neighbors" => {
                    o.compress_neighbors = Some(NeighborCompression::parse(value).ok_or_else(
                        || format!("compress_neighbors is one of float1bit, float8, float16, floatb16, float32, not {value:?}"),
                    )?)
                }
                "max_neighbors" => o.max_neighbors = Some(number()?),
                "search_l" => o.search_l = Some(number()?),
                _ => return Err(format!("unknown index option {key:?} (compress_neighbors, max_neighbors, search_l)")),
            }
        }
        Ok(o)
    }

    /// The index's `CREATE INDEX` for `table` with these options.
    pub fn sql(&self, table: TargetTable) -> Option<String> {
        self.sql_on(table, table.name())
    }

    /// The index of `table` (its name), created on the table named `on`
    /// (the indexing table of a resumable build).
    pub fn sql_on(&self, table: TargetTable, on: &str) -> Option<String> {
        let name = table.vector_index_name()?;
        let mut args = String::from("embedding_vector");
        if let Some(c) = self.compress_neighbors {
            args.push_str(&format!(", 'compress_neighbors={}'", c.as_str()));
        }
        if let Some(n) = self.max_neighbors {
            args.push_str(&format!(", 'max_neighbors={n}'"));
        }
        if let Some(n) = self.search_l {
            args.push_str(&format!(", 'search_l={n}'"));
        }
        Some(format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {on}(libsql_vector_idx({args}))"
        ))
    }
}

/// Builds the DiskANN index of one native table if it is missing, with
/// libSQL's default options.
pub async fn create_vector_index(conn: &Connection, table: TargetTable) -> Result<()> {
    create_vector_index_with(conn, table, &VectorIndexOptions::default()).await
}

/// Builds the DiskANN index of one native table if it is missing.
pub async fn create_vector_index_with(
    conn: &Connection,
    table: TargetTable,
    options: &VectorIndexOptions,
) -> Result<()> {
    if let Some(sql) = options.sql(table) {
        conn.execute(&sql, ())
            .await
            .db_context(|| format!("building the vector index of {table}"))?;
    }
    Ok(())
}

pub use crate::db::{object_exists, table_columns};

/// The log of changed keys. `embedding_id` has no declared type so a key
/// keeps its exact value; the rowid grows with every change (the triggers
/// `INSERT OR REPLACE`), so a key changed again after it was read is told
/// apart from the change that was mirrored.
pub const CHANGES_TABLE: &str = "embedding_migration_changes";

/// The online mode's triggers on the legacy table, by name.
pub const TRIGGERS: [&str; 3] = [
    "embedding_migration_on_insert",
    "embedding_migration_on_update",
    "embedding_migration_on_delete",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_dimensions_route_to_their_own_table() {
        for dim in NATIVE_DIMENSIONS {
            let table = route(dim);
            assert_eq!(table.native_dimension(), Some(dim));
            assert_eq!(table.name(), format!("embeddings_{dim}"));
            assert!(table.is_native());
        }
    }

    #[test]
    fn every_other_dimension_goes_to_embeddings_other() {
        for dim in [1, 2, 383, 385, 512, 768, 1023, 1025, 2048, 3071, 3073, 4096] {
            assert_eq!(route(dim), TargetTable::Other, "dimension {dim}");
            assert_eq!(get_table_for_dimension(dim), ("embeddings_other", false));
        }
    }

    #[test]
    fn holds_rejects_non_positive_and_foreign_dimensions() {
        assert!(TargetTable::D384.holds(384));
        assert!(!TargetTable::D384.holds(385));
        assert!(TargetTable::Other.holds(768));
        assert!(!TargetTable::Other.holds(0));
        assert!(!TargetTable::Other.holds(-384));
        assert!(!TargetTable::Other.holds(1536));
    }

    #[test]
    fn ddl_names_match_the_design() {
        assert!(TargetTable::D1536
            .create_table_sql()
            .contains("embedding_vector F32_BLOB(1536)"));
        assert!(TargetTable::D1536
            .create_table_sql()
            .contains("dimension INTEGER NOT NULL DEFAULT 1536"));
        assert!(TargetTable::Other
            .create_table_sql()
            .contains("embedding_vector BLOB,"));
        assert_eq!(
            TargetTable::D3072.vector_index_sql(),
            Some("CREATE INDEX IF NOT EXISTS idx_embeddings_3072_vector ON embeddings_3072(libsql_vector_idx(embedding_vector))")
        );
        assert_eq!(
            TargetTable::Other.item_index_sql(),
            "CREATE INDEX IF NOT EXISTS idx_embeddings_other_item ON embeddings_other(item_id, item_type)"
        );
        assert_eq!(TargetTable::Other.vector_index_sql(), None);
        for t in TargetTable::ALL {
            assert_eq!(TargetTable::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn the_indexing_table_has_the_same_columns_under_its_own_name() {
        let sql = TargetTable::D1024.create_table_sql_named("embeddings_1024_indexing");
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS embeddings_1024_indexing ("));
        assert!(sql.contains("embedding_vector F32_BLOB(1024)"));
        assert_eq!(TargetTable::Other.indexing_table(), None);
    }

    #[test]
    fn index_options_reach_the_sql_typed() {
        let default = VectorIndexOptions::default();
        assert_eq!(
            default.sql(TargetTable::D384).as_deref(),
            TargetTable::D384.vector_index_sql()
        );
        let o = VectorIndexOptions {
            compress_neighbors: NeighborCompression::parse("float8"),
            max_neighbors: Some(32),
            search_l: Some(40),
        };
        assert_eq!(
            o.sql(TargetTable::D1536).unwrap(),
            "CREATE INDEX IF NOT EXISTS idx_embeddings_1536_vector ON embeddings_1536(libsql_vector_idx(embedding_vector, 'compress_neighbors=float8', 'max_neighbors=32', 'search_l=40'))"
        );
        assert_eq!(o.sql(TargetTable::Other), None);
        assert_eq!(NeighborCompression::parse("float9"), None);
    }

    #[tokio::test]
    async fn created_tables_have_the_design_columns_and_indexes() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        create_target_tables(&conn).await.unwrap();
        create_target_tables(&conn).await.unwrap(); // idempotent
        create_item_indexes(&conn).await.unwrap();
        for t in TargetTable::ALL {
            assert_eq!(table_columns(&conn, t.name()).await.unwrap(), COLUMNS);
            let item = format!("idx_{}_item", t.name());
            assert!(object_exists(&conn, &item).await.unwrap(), "{item}");
        }
        create_vector_index(&conn, TargetTable::D384).await.unwrap();
        assert!(object_exists(&conn, "idx_embeddings_384_vector")
            .await
            .unwrap());
        assert!(!object_exists(&conn, "idx_embeddings_1024_vector")
            .await
            .unwrap());
    }
}
