//! Windowed, keyset-paged reading of the legacy table beside the target
//! tables: the one merge every pass (plan, copy, verify) is built on.
//!
//! A window is a key range `(after, upper]` read completely from every
//! table, so memory stays bounded by the page size whatever the table size,
//! and writes made for one window never disturb the reading of the next.

use libsql::{Connection, Value};

mod remote;
pub(crate) use remote::too_large;
pub use remote::RemoteReads;

use super::error::{MigrateError, Result};
use crate::decode::row::{EmbeddingRow, Key};
use crate::error::DbContext;
use crate::schema::{
    object_exists, table_columns, TargetTable, COLUMNS, LEDGER_TABLE, LEGACY_TABLE,
    QUARANTINE_TABLE,
};

/// What exists in the database, decided once per run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The legacy table has an `embedding_vector` column.
    pub legacy_has_vector: bool,
    /// Target tables that exist.
    pub targets: Vec<TargetTable>,
    /// The quarantine record exists.
    pub quarantine: bool,
    /// The ledger of migrated rows exists.
    pub ledger: bool,
    /// The legacy table's `embedding_id` is declared unique (a primary key
    /// or a unique index): no two rows can share a key. Without it a
    /// window cut at a key also reads that key's other rows.
    pub legacy_unique: bool,
    /// A remote database's windows are read in one request each.
    pub remote: Option<RemoteReads>,
}

/// One entry of the ledger: a key this migration wrote, where, and the
/// row's fingerprint as written (`None` in a ledger older than
/// fingerprints).
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub key: Key,
    pub table: String,
    pub fingerprint: Option<i64>,
}

impl Layout {
    /// Which tables exist, and that existing target tables have our
    /// columns (never altered: an incompatible one stops the run).
    pub async fn read(conn: &Connection, legacy_has_vector: bool) -> Result<Layout> {
        let mut targets = Vec::new();
        for table in TargetTable::ALL {
            let columns = table_columns(conn, table.name()).await?;
            if columns.is_empty() {
                continue;
            }
            let missing: Vec<String> = COLUMNS
                .iter()
                .filter(|c| !columns.iter().any(|have| have == *c))
                .map(|c| c.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(MigrateError::IncompatibleTargetTable {
                    table: table.name().to_string(),
                    missing,
                });
            }
            targets.push(table);
        }
        Ok(Layout {
            legacy_has_vector,
            targets,
            quarantine: object_exists(conn, QUARANTINE_TABLE).await?,
            ledger: object_exists(conn, LEDGER_TABLE).await?,
            legacy_unique: legacy_key_is_unique(conn).await?,
            remote: None,
        })
    }

    /// The same layout, its windows read through `remote` when given.
    pub fn reading_through(mut self, remote: Option<RemoteReads>) -> Self {
        self.remote = remote;
        self
    }
}

/// The `data_version` a window was read at, and on which stream: only a
/// value of the same stream compares (another connection's commit moves it,
/// the stream's own do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAt {
    /// The migration's connection.
    Connection(i64),
    /// The remote pipeline's writing stream, read before the window.
    Remote(crate::connect::pipeline::Observed),
}

impl ReadAt {
    /// Whether nothing was committed on another connection since the
    /// window was read, judged on `conn` (never, for a remote read).
    pub(crate) async fn unchanged_on(self, conn: &Connection) -> Result<bool> {
        Ok(match self {
            ReadAt::Connection(v) => crate::db::data_version(conn).await? == v,
            ReadAt::Remote(_) => false,
        })
    }
}

/// Page limits of one window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows per table per window.
    pub rows: usize,
    /// Bytes per table per window (the row that crosses it is kept).
    pub bytes: usize,
}

/// Every row of every table whose key is in `(after, upper]`.
#[derive(Debug, Default)]
pub struct Window {
    pub legacy: Vec<EmbeddingRow>,
    pub targets: Vec<(TargetTable, Vec<EmbeddingRow>)>,
    pub quarantined: Vec<Key>,
    /// Keys this migration wrote, with the table it wrote them to.
    pub ledger: Vec<LedgerEntry>,
    /// `None`: the window reaches the end of every table.
    pub upper: Option<Key>,
}

impl Window {
    /// Whether the window holds no row at all.
    pub fn is_empty(&self) -> bool {
        self.legacy.is_empty()
            && self.quarantined.is_empty()
            && self.ledger.is_empty()
            && self.targets.iter().all(|(_, rows)| rows.is_empty())
    }
}

/// Which keys a read covers.
#[derive(Clone, Copy)]
enum Span<'k> {
    /// The key range `(after, upper]`.
    Range(Option<&'k Key>, Option<&'k Key>),
    /// Exactly these keys.
    Keys(&'k [Key]),
}

impl Span<'_> {
    fn clause(&self) -> (String, Vec<Value>) {
        match *self {
            Span::Range(after, upper) => range_clause(after, upper),
            Span::Keys(keys) => {
                let marks: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
                (
                    format!(" WHERE embedding_id IN ({})", marks.join(", ")),
                    keys.iter().map(|k| k.0.clone()).collect(),
                )
            }
        }
    }
}

/// `WHERE` clause and parameters for the key range `(after, upper]`.
fn range_clause(after: Option<&Key>, upper: Option<&Key>) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    match after {
        Some(a) => {
            params.push(a.0.clone());
            conds.push(format!("embedding_id > ?{}", params.len()));
        }
        // A NULL key cannot be paged past: such rows are counted apart
        // (they are quarantined by the run, never read by a window).
        None => conds.push("embedding_id IS NOT NULL".to_string()),
    }
    if let Some(u) = upper {
        params.push(u.0.clone());
        conds.push(format!("embedding_id <= ?{}", params.len()));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (clause, params)
}

/// Reads `(after, upper]` of one table, at most `limits` (when given).
/// Returns the rows and whether the read stopped at a limit.
pub(crate) async fn read_rows(
    conn: &Connection,
    table: &str,
    vector_col: &str,
    after: Option<&Key>,
    upper: Option<&Key>,
    limits: Option<Limits>,
) -> Result<(Vec<EmbeddingRow>, bool)> {
    read_span(conn, table, vector_col, Span::Range(after, upper), limits).await
}

async fn read_span(
    conn: &Connection,
    table: &str,
    vector_col: &str,
    span: Span<'_>,
    limits: Option<Limits>,
) -> Result<(Vec<EmbeddingRow>, bool)> {
    let (clause, mut params) = span.clause();
    let mut sql = format!(
        "SELECT {} FROM {table}{clause} ORDER BY embedding_id",
        crate::decode::row::select_columns(vector_col)
    );
    if let Some(l) = limits {
        params.push(Value::Integer(l.rows as i64));
        sql.push_str(&format!(" LIMIT ?{}", params.len()));
    }
    let ctx = || format!("reading {table}");
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let row = readable(EmbeddingRow::from_row(&row).db_context(ctx)?, table)?;
        bytes += row.size();
        out.push(row);
        if let Some(l) = limits {
            if out.len() >= l.rows || bytes >= l.bytes {
                return Ok((out, true));
            }
        }
    }
    Ok((out, false))
}

/// `row`, unless its key is not valid text (it could not be paged past).
fn readable(row: EmbeddingRow, table: &str) -> Result<EmbeddingRow> {
    if row.invalid_utf8 & 1 != 0 {
        return Err(crate::Error::UnreadableKey {
            table: table.to_string(),
            lossy: row.key.to_string(),
        }
        .into());
    }
    Ok(row)
}

async fn read_quarantined(conn: &Connection, span: Span<'_>) -> Result<Vec<Key>> {
    let (clause, params) = span.clause();
    let sql = format!("SELECT embedding_id FROM {QUARANTINE_TABLE}{clause} ORDER BY embedding_id");
    let ctx = || "reading the quarantine record".to_string();
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(Key(row.get_value(0).db_context(ctx)?));
    }
    Ok(out)
}

async fn read_ledger(conn: &Connection, span: Span<'_>) -> Result<Vec<LedgerEntry>> {
    let (clause, params) = span.clause();
    let sql = format!(
        "SELECT embedding_id, target_table, fingerprint FROM {LEDGER_TABLE}{clause} ORDER BY embedding_id"
    );
    let ctx = || "reading the ledger of migrated rows".to_string();
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(LedgerEntry {
            key: Key(row.get_value(0).db_context(ctx)?),
            table: row.get::<String>(1).db_context(ctx)?,
            fingerprint: match row.get_value(2).db_context(ctx)? {
                Value::Integer(f) => Some(f),
                _ => None,
            },
        });
    }
    Ok(out)
}

/// The legacy rows that have no key (`embedding_id IS NULL`): how many,
/// and up to `limit` of them shown by item (they have no id to name).
pub async fn null_key_rows(conn: &Connection, limit: usize) -> Result<(u64, Vec<String>)> {
    let ctx = || format!("looking for rows of {LEGACY_TABLE} without an embedding_id");
    let mut rows = conn
        .query(
            &format!("SELECT count(*) FROM {LEGACY_TABLE} WHERE embedding_id IS NULL"),
            (),
        )
        .await
        .db_context(ctx)?;
    let n = match rows.next().await.db_context(ctx)? {
        Some(r) => r.get::<i64>(0).db_context(ctx)?.max(0) as u64,
        None => 0,
    };
    if n == 0 {
        return Ok((0, Vec::new()));
    }
    let mut rows = conn
        .query(
            &format!(
                "SELECT quote(item_id), quote(item_type) FROM {LEGACY_TABLE} WHERE embedding_id IS NULL LIMIT ?1"
            ),
            [limit as i64],
        )
        .await
        .db_context(ctx)?;
    let mut shown = Vec::new();
    while let Some(r) = rows.next().await.db_context(ctx)? {
        shown.push(format!(
            "NULL (item_id {}, item_type {})",
            r.get::<String>(0).unwrap_or_default(),
            r.get::<String>(1).unwrap_or_default()
        ));
    }
    Ok((n, shown))
}

/// Whether `embedding_id` alone is declared unique in the legacy table,
/// over all of its rows (a partial unique index leaves the rows outside
/// it free to share a key).
pub async fn legacy_key_is_unique(conn: &Connection) -> Result<bool> {
    let ctx = || format!("reading the indexes of {LEGACY_TABLE}");
    let mut rows = conn
        .query(
            &format!(
                "SELECT 1 FROM pragma_index_list('{LEGACY_TABLE}') AS l \
                 WHERE l.\"unique\" = 1 AND l.partial = 0 \
                 AND (SELECT count(*) FROM pragma_index_info(l.name)) = 1 \
                 AND (SELECT name FROM pragma_index_info(l.name)) = 'embedding_id'"
            ),
            (),
        )
        .await
        .db_context(ctx)?;
    Ok(rows.next().await.db_context(ctx)?.is_some())
}

fn trim(rows: &mut Vec<EmbeddingRow>, upper: &Option<Key>) {
    if let Some(u) = upper {
        let keep = rows.partition_point(|r| &r.key <= u);
        rows.truncate(keep);
    }
}

impl Layout {
    fn legacy_vector_col(&self) -> &'static str {
        if self.legacy_has_vector {
            "embedding_vector"
        } else {
            "NULL"
        }
    }

    /// Reads the next window after `after`, bounded by `limits` per table.
    pub async fn next_window(
        &self,
        conn: &Connection,
        after: Option<&Key>,
        limits: Limits,
    ) -> Result<Window> {
        match &self.remote {
            Some(remote) => Ok(self.next_window_remote(remote, after, limits).await?.0),
            None => self.next_window_local(conn, after, limits).await,
        }
    }

    /// [`Layout::next_window`], and the `data_version` it was read at: the
    /// connection's, read just before, or the remote pipeline stream's.
    pub(crate) async fn next_window_versioned(
        &self,
        conn: &Connection,
        after: Option<&Key>,
        limits: Limits,
    ) -> Result<(Window, ReadAt)> {
        if let Some(remote) = &self.remote {
            let (window, guard) = self.next_window_remote(remote, after, limits).await?;
            return Ok((window, ReadAt::Remote(guard)));
        }
        let version = crate::db::data_version(conn).await?;
        let window = self.next_window_local(conn, after, limits).await?;
        Ok((window, ReadAt::Connection(version)))
    }

    async fn next_window_local(
        &self,
        conn: &Connection,
        after: Option<&Key>,
        limits: Limits,
    ) -> Result<Window> {
        let (mut legacy, cut) = read_rows(
            conn,
            LEGACY_TABLE,
            self.legacy_vector_col(),
            after,
            None,
            Some(limits),
        )
        .await?;
        let mut upper = if cut {
            legacy.last().map(|r| r.key.clone())
        } else {
            None
        };
        // Without a unique key, the rows that share the last key may go on
        // past the page: read them all, so a window never splits a key.
        if let (false, Some(u)) = (self.legacy_unique, upper.as_ref()) {
            let keep = legacy.partition_point(|r| &r.key < u);
            legacy.truncate(keep);
            let (same, _) = read_span(
                conn,
                LEGACY_TABLE,
                self.legacy_vector_col(),
                Span::Keys(std::slice::from_ref(u)),
                None,
            )
            .await?;
            legacy.extend(same);
        }
        let mut targets = Vec::with_capacity(self.targets.len());
        for &table in &self.targets {
            let (rows, cut) = read_rows(
                conn,
                table.name(),
                "embedding_vector",
                after,
                upper.as_ref(),
                Some(limits),
            )
            .await?;
            if cut {
                if let Some(last) = rows.last() {
                    if upper.as_ref().is_none_or(|u| &last.key < u) {
                        upper = Some(last.key.clone());
                    }
                }
            }
            targets.push((table, rows));
        }
        trim(&mut legacy, &upper);
        for (_, rows) in &mut targets {
            trim(rows, &upper);
        }
        let span = Span::Range(after, upper.as_ref());
        let quarantined = if self.quarantine {
            read_quarantined(conn, span).await?
        } else {
            Vec::new()
        };
        let ledger = if self.ledger {
            read_ledger(conn, span).await?
        } else {
            Vec::new()
        };
        Ok(Window {
            legacy,
            targets,
            quarantined,
            ledger,
            upper,
        })
    }

    /// Reads exactly `(after, upper]` with no page limit: used to look at a
    /// window again right after writing to it.
    pub async fn exact_window(
        &self,
        conn: &Connection,
        after: Option<&Key>,
        upper: Option<&Key>,
    ) -> Result<Window> {
        let mut window = self.read_all(conn, Span::Range(after, upper)).await?;
        window.upper = upper.cloned();
        Ok(window)
    }

    /// Reads every row of every table whose key is one of `keys` (at most
    /// a few hundred: they are bound parameters).
    pub async fn keys_window(&self, conn: &Connection, keys: &[Key]) -> Result<Window> {
        if keys.is_empty() {
            return Ok(Window::default());
        }
        self.read_all(conn, Span::Keys(keys)).await
    }

    async fn read_all(&self, conn: &Connection, span: Span<'_>) -> Result<Window> {
        let (legacy, _) =
            read_span(conn, LEGACY_TABLE, self.legacy_vector_col(), span, None).await?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for &table in &self.targets {
            let (rows, _) = read_span(conn, table.name(), "embedding_vector", span, None).await?;
            targets.push((table, rows));
        }
        let quarantined = if self.quarantine {
            read_quarantined(conn, span).await?
        } else {
            Vec::new()
        };
        let ledger = if self.ledger {
            read_ledger(conn, span).await?
        } else {
            Vec::new()
        };
        Ok(Window {
            legacy,
            targets,
            quarantined,
            ledger,
            upper: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key counts as unique through a primary key or a unique index
    /// on it alone, over the whole table; not through a partial one, one
    /// over two columns, or none.
    #[tokio::test]
    async fn the_legacy_key_is_unique_only_when_every_row_is_held_to_it() {
        let cases = [
            ("embedding_id TEXT PRIMARY KEY, item_id TEXT", "", true),
            (
                "embedding_id TEXT, item_id TEXT",
                "CREATE UNIQUE INDEX u ON embeddings(embedding_id)",
                true,
            ),
            (
                "embedding_id TEXT, item_id TEXT",
                "CREATE UNIQUE INDEX u ON embeddings(embedding_id) WHERE item_id IS NOT NULL",
                false,
            ),
            (
                "embedding_id TEXT, item_id TEXT",
                "CREATE UNIQUE INDEX u ON embeddings(embedding_id, item_id)",
                false,
            ),
            (
                "embedding_id TEXT, item_id TEXT",
                "CREATE INDEX u ON embeddings(embedding_id)",
                false,
            ),
        ];
        for (columns, index, unique) in cases {
            let t = test_support::TestDb::empty().await;
            t.conn
                .execute_batch(&format!("CREATE TABLE {LEGACY_TABLE} ({columns}); {index}"))
                .await
                .unwrap();
            assert_eq!(
                legacy_key_is_unique(&t.conn).await.unwrap(),
                unique,
                "{columns}; {index}"
            );
        }
    }
}
