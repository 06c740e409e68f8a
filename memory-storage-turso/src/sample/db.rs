//! The legacy `embeddings` table: its DDL, batched inserts of [`LegacyRow`]s and
//! a whole generated database.

use libsql::Value;

use super::{generate_rows, LegacyRow, SampleSpec, SampleSummary};

/// DDL of the legacy table with the `embedding_vector` column (the later generations).
const CREATE_LEGACY_WITH_VECTOR: &str = "CREATE TABLE IF NOT EXISTS embeddings (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    item_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    embedding_data TEXT NOT NULL,
    embedding_vector F32_BLOB(384),
    dimension INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
)";

/// DDL of the legacy table without the `embedding_vector` column (older files).
const CREATE_LEGACY_WITHOUT_VECTOR: &str = "CREATE TABLE IF NOT EXISTS embeddings (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    item_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    embedding_data TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
)";

/// The legacy item index.
const CREATE_LEGACY_ITEM_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS idx_embeddings_item ON embeddings(item_id, item_type)";

const INSERT_LEGACY_WITH_VECTOR: &str = "INSERT INTO embeddings \
    (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const INSERT_LEGACY_WITHOUT_VECTOR: &str = "INSERT INTO embeddings \
    (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Rows per transaction when inserting.
const INSERT_BATCH: usize = 1000;

/// Creates the legacy table exactly as `LEGACY-FORMATS.md` shows (with `embedding_vector
/// F32_BLOB(384)` when `with_vector_column`, else without that column), plus `idx_embeddings_item`.
pub async fn create_legacy_table(
    conn: &libsql::Connection,
    with_vector_column: bool,
) -> Result<(), libsql::Error> {
    let ddl = if with_vector_column {
        CREATE_LEGACY_WITH_VECTOR
    } else {
        CREATE_LEGACY_WITHOUT_VECTOR
    };
    conn.execute(ddl, ()).await?;
    conn.execute(CREATE_LEGACY_ITEM_INDEX, ()).await?;
    Ok(())
}

/// One prepared `INSERT` reused across batches.
struct LegacyInserter {
    stmt: libsql::Statement,
    with_vector_column: bool,
}

impl LegacyInserter {
    async fn new(conn: &libsql::Connection, with_vector_column: bool) -> libsql::Result<Self> {
        let sql = if with_vector_column {
            INSERT_LEGACY_WITH_VECTOR
        } else {
            INSERT_LEGACY_WITHOUT_VECTOR
        };
        Ok(Self {
            stmt: conn.prepare(sql).await?,
            with_vector_column,
        })
    }

    fn params(&self, row: &LegacyRow) -> Vec<Value> {
        let mut p = Vec::with_capacity(8);
        p.push(Value::Text(row.embedding_id.clone()));
        p.push(Value::Text(row.item_id.clone()));
        p.push(Value::Text(row.item_type.clone()));
        p.push(Value::Text(row.embedding_data.clone()));
        if self.with_vector_column {
            p.push(match &row.embedding_vector {
                Some(bytes) => Value::Blob(bytes.clone()),
                None => Value::Null,
            });
        }
        p.push(Value::Integer(row.dimension));
        p.push(Value::Text(row.model.clone()));
        p.push(Value::Integer(row.created_at));
        p
    }

    /// Inserts `rows` in transactions of [`INSERT_BATCH`], rolling back the open one on error.
    async fn insert(&self, conn: &libsql::Connection, rows: &[LegacyRow]) -> libsql::Result<()> {
        for chunk in rows.chunks(INSERT_BATCH) {
            conn.execute("BEGIN", ()).await?;
            if let Err(e) = self.insert_chunk(chunk).await {
                self.stmt.reset();
                // The insert error is the one worth reporting.
                let _ = conn.execute("ROLLBACK", ()).await;
                return Err(e);
            }
            if let Err(e) = conn.execute("COMMIT", ()).await {
                let _ = conn.execute("ROLLBACK", ()).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn insert_chunk(&self, chunk: &[LegacyRow]) -> libsql::Result<()> {
        for row in chunk {
            self.stmt.execute(self.params(row)).await?;
            // libsql's local statement does not reset itself after a step.
            self.stmt.reset();
        }
        Ok(())
    }
}

/// Inserts rows in transactions of 1000 with one reused prepared statement, every value bound as
/// its native type (the vector as a BLOB, never through text).
///
/// When the table has no vector column (`with_vector_column == false`), `embedding_vector` is
/// ignored. Call it outside any open transaction: it opens its own, and a failed batch is rolled
/// back (earlier batches stay committed).
pub async fn insert_legacy_rows(
    conn: &libsql::Connection,
    rows: &[LegacyRow],
    with_vector_column: bool,
) -> Result<(), libsql::Error> {
    LegacyInserter::new(conn, with_vector_column)
        .await?
        .insert(conn, rows)
        .await
}

/// Creates the legacy table and fills it from [`generate_rows`], in batches of 1000 rows
/// (memory stays flat for a million rows).
pub async fn generate_legacy_database(
    conn: &libsql::Connection,
    spec: &SampleSpec,
) -> Result<SampleSummary, libsql::Error> {
    create_legacy_table(conn, spec.with_vector_column).await?;
    let inserter = LegacyInserter::new(conn, spec.with_vector_column).await?;
    let mut summary = SampleSummary::default();
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    let mut rows = generate_rows(spec).peekable();
    while rows.peek().is_some() {
        batch.clear();
        for (row, bad) in rows.by_ref().take(INSERT_BATCH) {
            summary.record(&row, bad);
            batch.push(row);
        }
        inserter.insert(conn, &batch).await?;
    }
    Ok(summary.finish())
}
