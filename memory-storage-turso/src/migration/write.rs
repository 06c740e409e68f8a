//! The one place that writes migrated rows: a transaction per batch, with
//! prepared statements reused across batches.
//!
//! Rows are buffered per target table and written as multi-row `INSERT`
//! statements of up to [`CHUNK_ROWS`] rows (or [`CHUNK_BYTES`]): a batch is a
//! handful of statements, which is what keeps a remote database, where every
//! statement is a round trip, fast. Every other write flushes the buffers
//! first, so statements still reach the database in the order they were
//! asked for.

use libsql::{Connection, Statement, Value};

use super::error::MigrateError;
use super::lock::MigrationLock;
use crate::db::{classify, ErrorClass};
use crate::decode::row::{EmbeddingRow, Key};
use crate::decode::BadRowReason;
use crate::error::{DbContext, Result};
use crate::schema::{
    TargetTable, CHECKPOINT_TABLE, DISPLACED_TABLE, LEDGER_TABLE, QUARANTINE_TABLE,
};

mod deferred;
pub use deferred::Deferred;
use deferred::Queue;

pub(crate) use crate::db::in_transaction;
pub use crate::db::unix_now;

/// Most rows in one multi-row `INSERT` (8 parameters each, far below
/// SQLite's limit of 32,766).
pub const CHUNK_ROWS: usize = 250;
/// A table's buffer is written once it holds this many bytes.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Columns of a target row, in [`UPSERT_COLUMNS`] order.
const COLUMNS: usize = 8;
/// Columns of a ledger entry: key, table, fingerprint.
const LEDGER_COLUMNS: usize = 3;
const UPSERT_COLUMNS: &str =
    "embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at";

/// Rows waiting to be written to one target table.
#[derive(Default)]
struct Buffer {
    /// `COLUMNS` values per row.
    params: Vec<Value>,
    keys: Vec<Key>,
    bytes: usize,
}

/// `INSERT OR REPLACE INTO {table} (…) VALUES (?, …), … ` for `rows` rows.
fn multi_row_sql(table: &str, columns: &str, per_row: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; per_row].join(", "));
    format!(
        "INSERT OR REPLACE INTO {table} ({columns}) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Writes batches into the target tables, the quarantine record and the
/// checkpoint. Every write happens between [`BatchWriter::begin`] and
/// [`BatchWriter::commit`].
pub struct BatchWriter<'c> {
    conn: &'c Connection,
    /// Single-row upserts (used to find the row a chunk was refused for).
    upserts: [Option<Statement>; 5],
    /// Full-chunk upserts, and the ledger's.
    chunk_upserts: [Option<Statement>; 5],
    chunk_ledger: Option<Statement>,
    buffers: [Buffer; 5],
    /// `(embedding_id, target table, fingerprint)` waiting for the ledger.
    ledger_buffer: Vec<Value>,
    deletes: [Option<Statement>; 5],
    quarantine: Option<Statement>,
    unquarantine: Option<Statement>,
    ledger_remove: Option<Statement>,
    displace: Option<Statement>,
    lock: Option<MigrationLock>,
    /// Whether a row the migration does not own may be replaced (after
    /// it is saved): the one switch between the two conflict policies.
    policy: super::report::ConflictPolicy,
    /// Rows written to each target table by committed batches.
    pub written: [u64; 5],
    /// Rows written to each target table by the batch in flight.
    pending: [u64; 5],
    /// Bytes (all columns) written to each table by committed batches, and
    /// by the batch in flight.
    bytes: [u64; 5],
    pending_bytes: [u64; 5],
    in_batch: u64,
    /// Rows saved and replaced (`--on-conflict legacy`) by committed
    /// batches, and by the batch in flight.
    pub displaced: u64,
    pending_displaced: u64,
    /// Statements of a batch sent as one request at its commit
    /// ([`BatchWriter::begin_deferred`]), instead of one by one.
    deferred: Option<Queue>,
}

fn slot(table: TargetTable) -> usize {
    TargetTable::ALL
        .iter()
        .position(|t| *t == table)
        .unwrap_or(4)
}

async fn run(stmt: &Statement, params: Vec<Value>, what: impl Fn() -> String) -> Result<()> {
    let result = stmt.execute(params).await;
    // libSQL's local statement keeps its state after a step: reset it so the
    // next bind takes effect.
    stmt.reset();
    result.map(|_| ()).db_context(what)
}

impl<'c> BatchWriter<'c> {
    /// A writer on `conn`; statements are prepared on first use.
    pub fn new(conn: &'c Connection) -> Self {
        BatchWriter {
            conn,
            upserts: Default::default(),
            chunk_upserts: Default::default(),
            chunk_ledger: None,
            buffers: Default::default(),
            ledger_buffer: Vec::new(),
            deletes: Default::default(),
            quarantine: None,
            unquarantine: None,
            ledger_remove: None,
            displace: None,
            lock: None,
            policy: Default::default(),
            written: [0; 5],
            pending: [0; 5],
            bytes: [0; 5],
            pending_bytes: [0; 5],
            in_batch: 0,
            displaced: 0,
            pending_displaced: 0,
            deferred: None,
        }
    }

    fn reset_pending(&mut self) {
        self.in_batch = 0;
        self.pending = [0; 5];
        self.pending_bytes = [0; 5];
        self.pending_displaced = 0;
    }

    /// Counts the batch just committed.
    fn settle(&mut self) {
        for (total, n) in self.written.iter_mut().zip(self.pending) {
            *total += n;
        }
        for (total, n) in self.bytes.iter_mut().zip(self.pending_bytes) {
            *total += n;
        }
        self.pending = [0; 5];
        self.pending_bytes = [0; 5];
        self.displaced += std::mem::take(&mut self.pending_displaced);
    }

    /// Starts a batch: `BEGIN IMMEDIATE`, so a second writer waits or fails
    /// here rather than half way through.
    pub async fn begin(&mut self) -> Result<()> {
        self.discard_buffers();
        self.reset_pending();
        self.deferred = None;
        self.conn
            .execute("BEGIN IMMEDIATE", ())
            .await
            .db_context(|| "starting a batch transaction".to_string())?;
        Ok(())
    }

    /// Refreshes `lock` with every commit, and stops if it was lost.
    pub fn with_lock(mut self, lock: Option<MigrationLock>) -> Self {
        self.lock = lock;
        self
    }

    /// Sets what wins a conflict (default: the target row).
    pub fn with_policy(mut self, policy: super::report::ConflictPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What wins a conflict in this run.
    pub fn policy(&self) -> super::report::ConflictPolicy {
        self.policy
    }

    /// Commits the batch (refreshing the lock in it first).
    pub async fn commit(&mut self) -> Result<(), MigrateError> {
        self.flush().await?;
        if let Some(lock) = &self.lock {
            lock.refresh(self.conn).await?;
        }
        self.conn
            .execute("COMMIT", ())
            .await
            .db_context(|| "committing a batch".to_string())?;
        self.settle();
        Ok(())
    }

    /// Rolls back the batch in flight (used when a write failed).
    pub async fn rollback(&mut self) {
        self.discard_buffers();
        self.deferred = None;
        self.pending_displaced = 0;
        self.pending = [0; 5];
        self.pending_bytes = [0; 5];
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute("ROLLBACK", ()).await;
        }
    }

    /// Rows written per target table since the writer was made.
    pub fn written_per_table(&self) -> std::collections::BTreeMap<String, u64> {
        TargetTable::ALL
            .iter()
            .zip(self.written)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.name().to_string(), n))
            .collect()
    }

    /// Bytes written per target table by committed batches.
    pub fn bytes_per_table(&self) -> std::collections::BTreeMap<String, u64> {
        TargetTable::ALL
            .iter()
            .zip(self.bytes)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.name().to_string(), n))
            .collect()
    }

    async fn prepared<'s>(
        conn: &Connection,
        cache: &'s mut Option<Statement>,
        sql: impl FnOnce() -> String,
    ) -> Result<&'s Statement> {
        if cache.is_none() {
            let sql = sql();
            let stmt = conn
                .prepare(&sql)
                .await
                .db_context(|| format!("preparing {sql}"))?;
            *cache = Some(stmt);
        }
        Ok(cache.as_ref().expect("statement was just prepared"))
    }

    /// Writes one row into `table`, every column carried over as stored and
    /// the vector bound as little-endian f32 bytes (never as text). The row
    /// is buffered: it reaches the database with its table's next chunk, at
    /// the latest when the batch commits.
    pub async fn upsert(
        &mut self,
        table: TargetTable,
        row: EmbeddingRow,
        vector: Vec<u8>,
    ) -> Result<()> {
        let i = slot(table);
        let size = row.size() + vector.len();
        let key = row.key.clone();
        let fingerprint = row.fingerprint_with_vector(&vector);
        self.ledger_buffer.extend([
            key.0.clone(),
            Value::Text(table.name().to_string()),
            Value::Integer(fingerprint),
        ]);
        let buffer = &mut self.buffers[i];
        if self.deferred.as_ref().is_some_and(|q| q.from_legacy) {
            buffer.params.extend([row.key.0, Value::Blob(vector)]);
        } else {
            buffer.params.extend([
                row.key.0,
                row.item_id,
                row.item_type,
                row.embedding_data,
                Value::Blob(vector),
                row.dimension,
                row.model,
                row.created_at,
            ]);
        }
        buffer.keys.push(key);
        buffer.bytes += size;
        self.pending[i] += 1;
        self.pending_bytes[i] += size as u64;
        self.in_batch += 1;
        if buffer.keys.len() >= CHUNK_ROWS || buffer.bytes >= CHUNK_BYTES {
            self.flush_table(i).await?;
        }
        Ok(())
    }

    /// Writes every buffered row and ledger entry.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        for i in 0..TargetTable::ALL.len() {
            self.flush_table(i).await?;
        }
        self.flush_ledger().await
    }

    fn discard_buffers(&mut self) {
        self.buffers = Default::default();
        self.ledger_buffer.clear();
    }

    /// Writes the rows buffered for table `i` as one statement.
    async fn flush_table(&mut self, i: usize) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffers[i]);
        let n = buffer.keys.len();
        if n == 0 {
            return Ok(());
        }
        let table = TargetTable::ALL[i];
        if let Some(queue) = self.deferred.as_mut().filter(|q| q.from_legacy) {
            queue.push_from_legacy(table, buffer.params, n);
            return Ok(());
        }
        let sql = || multi_row_sql(table.name(), UPSERT_COLUMNS, COLUMNS, n);
        if self.defer(sql, &buffer.params) {
            return Ok(());
        }
        // A full chunk reuses its prepared statement; a partial one is run
        // directly (over a remote connection a prepare is a round trip).
        let result = if n == CHUNK_ROWS {
            let stmt = Self::prepared(self.conn, &mut self.chunk_upserts[i], sql).await?;
            let result = stmt.execute(buffer.params.clone()).await.map(|_| ());
            stmt.reset();
            result
        } else {
            self.conn
                .execute(&sql(), buffer.params.clone())
                .await
                .map(|_| ())
        };
        match result {
            Ok(_) => Ok(()),
            // A statement that fails changes nothing: write the rows one at a
            // time to name the one the database refused.
            Err(source) if classify(&source) == ErrorClass::RowRejected => {
                self.find_rejected(table, buffer, source).await
            }
            Err(source) => Err(source).db_context(|| {
                format!(
                    "writing {n} embeddings ({} to {}) to {table}",
                    buffer.keys[0],
                    buffer.keys[n - 1]
                )
            }),
        }
    }

    /// Writes `buffer`'s rows one by one and returns the refusal of the
    /// first row the database refuses (the caller rolls the batch back).
    async fn find_rejected(
        &mut self,
        table: TargetTable,
        buffer: Buffer,
        chunk_error: libsql::Error,
    ) -> Result<()> {
        let stmt = Self::prepared(self.conn, &mut self.upserts[slot(table)], || {
            multi_row_sql(table.name(), UPSERT_COLUMNS, COLUMNS, 1)
        })
        .await?;
        for (key, params) in buffer.keys.into_iter().zip(buffer.params.chunks(COLUMNS)) {
            let result = stmt.execute(params.to_vec()).await;
            stmt.reset();
            match result {
                Ok(_) => {}
                Err(source) if classify(&source) == ErrorClass::RowRejected => {
                    return Err(crate::Error::RowRejected {
                        embedding_id: key.to_string(),
                        key: Box::new(key),
                        table: table.name().to_string(),
                        source,
                    });
                }
                Err(source) => {
                    return Err(source).db_context(|| format!("writing embedding {key} to {table}"))
                }
            }
        }
        Err(chunk_error).db_context(|| {
            format!("writing to {table}: the database refused a chunk but none of its rows alone")
        })
    }

    /// Writes the buffered ledger entries, in chunks.
    async fn flush_ledger(&mut self) -> Result<()> {
        let entries = std::mem::take(&mut self.ledger_buffer);
        for chunk in entries.chunks(LEDGER_COLUMNS * CHUNK_ROWS) {
            let n = chunk.len() / LEDGER_COLUMNS;
            let sql = || {
                multi_row_sql(
                    LEDGER_TABLE,
                    "embedding_id, target_table, fingerprint",
                    LEDGER_COLUMNS,
                    n,
                )
            };
            if self.defer(sql, chunk) {
                continue;
            }
            let result = if n == CHUNK_ROWS {
                let stmt = Self::prepared(self.conn, &mut self.chunk_ledger, sql).await?;
                let result = stmt.execute(chunk.to_vec()).await.map(|_| ());
                stmt.reset();
                result
            } else {
                self.conn.execute(&sql(), chunk.to_vec()).await.map(|_| ())
            };
            result.db_context(|| format!("recording {n} embeddings in the ledger"))?;
        }
        Ok(())
    }

    /// Removes `key` from `table` (a copy in the wrong table).
    pub async fn delete(&mut self, table: TargetTable, key: &Key) -> Result<()> {
        self.flush().await?;
        if self.defer(
            || format!("DELETE FROM {} WHERE embedding_id = ?1", table.name()),
            std::slice::from_ref(&key.0),
        ) {
            self.defer(
                || format!("DELETE FROM {LEDGER_TABLE} WHERE embedding_id = ?1 AND (?2 IS NULL OR target_table = ?2)"),
                &[key.0.clone(), Value::Text(table.name().to_string())],
            );
            return Ok(());
        }
        let stmt = Self::prepared(self.conn, &mut self.deletes[slot(table)], || {
            format!("DELETE FROM {} WHERE embedding_id = ?1", table.name())
        })
        .await?;
        run(stmt, vec![key.0.clone()], || {
            format!("removing embedding {key} from {table}")
        })
        .await?;
        let stmt = Self::prepared(self.conn, &mut self.ledger_remove, || {
            format!("DELETE FROM {LEDGER_TABLE} WHERE embedding_id = ?1 AND (?2 IS NULL OR target_table = ?2)")
        })
        .await?;
        run(
            stmt,
            vec![key.0.clone(), Value::Text(table.name().to_string())],
            || format!("updating the ledger for {key}"),
        )
        .await
    }

    /// Saves a target row the migration is about to replace or remove
    /// (`--on-conflict legacy`) in the displaced-rows table, in the batch's
    /// transaction, so a rollback can put it back.
    pub async fn displace(&mut self, table: TargetTable, row: &EmbeddingRow) -> Result<()> {
        self.flush().await?;
        let sql = || {
            format!(
                "INSERT INTO {DISPLACED_TABLE} (target_table, embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at, displaced_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            )
        };
        let params = vec![
            Value::Text(table.name().to_string()),
            row.key.0.clone(),
            row.item_id.clone(),
            row.item_type.clone(),
            row.embedding_data.clone(),
            row.embedding_vector.clone(),
            row.dimension.clone(),
            row.model.clone(),
            row.created_at.clone(),
            Value::Integer(unix_now()),
        ];
        if !self.defer(sql, &params) {
            let stmt = Self::prepared(self.conn, &mut self.displace, sql).await?;
            run(stmt, params, || {
                format!("saving the displaced row {} of {table}", row.key)
            })
            .await?;
        }
        self.pending_displaced += 1;
        Ok(())
    }

    /// Drops a key from the ledger (no table holds it any more).
    pub async fn forget(&mut self, key: &Key) -> Result<()> {
        self.flush().await?;
        if self.defer(
            || format!("DELETE FROM {LEDGER_TABLE} WHERE embedding_id = ?1 AND (?2 IS NULL OR target_table = ?2)"),
            &[key.0.clone(), Value::Null],
        ) {
            return Ok(());
        }
        let stmt = Self::prepared(self.conn, &mut self.ledger_remove, || {
            format!("DELETE FROM {LEDGER_TABLE} WHERE embedding_id = ?1 AND (?2 IS NULL OR target_table = ?2)")
        })
        .await?;
        run(stmt, vec![key.0.clone(), Value::Null], || {
            format!("updating the ledger for {key}")
        })
        .await
    }

    /// Records a bad row in the quarantine record (replacing an older reason).
    pub async fn quarantine(&mut self, key: &Key, reason: &BadRowReason) -> Result<()> {
        self.flush().await?;
        let sql = || {
            format!("INSERT OR REPLACE INTO {QUARANTINE_TABLE} (embedding_id, reason_code, reason, recorded_at) VALUES (?1, ?2, ?3, ?4)")
        };
        let params = vec![
            key.0.clone(),
            Value::Text(reason.code().to_string()),
            Value::Text(reason.to_string()),
            Value::Integer(unix_now()),
        ];
        if self.defer(sql, &params) {
            return Ok(());
        }
        let stmt = Self::prepared(self.conn, &mut self.quarantine, sql).await?;
        run(stmt, params, || format!("quarantining embedding {key}")).await
    }

    /// Removes a key from the quarantine record (its row is now good or gone).
    pub async fn unquarantine(&mut self, key: &Key) -> Result<()> {
        self.flush().await?;
        if self.defer(
            || format!("DELETE FROM {QUARANTINE_TABLE} WHERE embedding_id = ?1"),
            std::slice::from_ref(&key.0),
        ) {
            return Ok(());
        }
        let stmt = Self::prepared(self.conn, &mut self.unquarantine, || {
            format!("DELETE FROM {QUARANTINE_TABLE} WHERE embedding_id = ?1")
        })
        .await?;
        run(stmt, vec![key.0.clone()], || {
            format!("clearing the quarantine entry of {key}")
        })
        .await
    }

    /// Marks the copy as having reached the end of the legacy table, in
    /// the batch's transaction (the last window's batch): as
    /// [`mark_copy_completed`], without a request of its own.
    pub async fn complete_copy(&mut self) -> Result<()> {
        self.flush().await?;
        let params = vec![Value::Integer(unix_now())];
        self.defer_or_run(copy_completed_sql(), params, "marking the copy complete")
            .await
    }

    /// Queues `sql` in a deferred batch, or runs it now.
    async fn defer_or_run(&mut self, sql: String, params: Vec<Value>, what: &str) -> Result<()> {
        if self.defer(|| sql.clone(), &params) {
            return Ok(());
        }
        self.conn
            .execute(&sql, params)
            .await
            .db_context(|| what.to_string())?;
        Ok(())
    }

    /// Moves the checkpoint to `last`, in the batch's transaction.
    pub async fn checkpoint(&mut self, last: &Key) -> Result<()> {
        self.flush().await?;
        let sql = format!(
            "INSERT INTO {CHECKPOINT_TABLE} (id, last_embedding_id, rows_written, started_at, updated_at) VALUES (1, ?1, ?2, ?3, ?3) \
             ON CONFLICT(id) DO UPDATE SET last_embedding_id = excluded.last_embedding_id, \
             rows_written = rows_written + excluded.rows_written, updated_at = excluded.updated_at"
        );
        let params = vec![
            last.0.clone(),
            Value::Integer(self.in_batch as i64),
            Value::Integer(unix_now()),
        ];
        self.defer_or_run(sql, params, "moving the checkpoint")
            .await
    }
}

/// The checkpoint as stored: the last key done, if any.
pub async fn read_checkpoint(conn: &Connection) -> Result<Option<Key>> {
    let ctx = || "reading the checkpoint".to_string();
    let mut rows = conn
        .query(
            &format!("SELECT last_embedding_id FROM {CHECKPOINT_TABLE} WHERE id = 1"),
            (),
        )
        .await
        .db_context(ctx)?;
    match rows.next().await.db_context(ctx)? {
        Some(row) => match row.get_value(0).db_context(ctx)? {
            Value::Null => Ok(None),
            v => Ok(Some(Key(v))),
        },
        None => Ok(None),
    }
}

fn copy_completed_sql() -> String {
    format!("UPDATE {CHECKPOINT_TABLE} SET copy_completed_at = ?1 WHERE id = 1")
}

/// Marks the copy as having reached the end of the legacy table.
pub async fn mark_copy_completed(conn: &Connection) -> Result<()> {
    conn.execute(&copy_completed_sql(), [unix_now()])
        .await
        .db_context(|| "marking the copy complete".to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::row::Key;
    use crate::schema::create_target_tables;

    #[test]
    fn multi_row_statements_have_one_group_of_placeholders_per_row() {
        assert_eq!(
            multi_row_sql("t", "a, b", 2, 3),
            "INSERT OR REPLACE INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }

    fn row(id: &str, dim: i64) -> EmbeddingRow {
        EmbeddingRow {
            key: Key(Value::Text(id.to_string())),
            item_id: Value::Text(format!("item-{id}")),
            item_type: Value::Text("doc".into()),
            embedding_data: Value::Text("[]".into()),
            embedding_vector: Value::Null,
            dimension: Value::Integer(dim),
            model: Value::Text("m".into()),
            created_at: Value::Integer(1),
            invalid_utf8: 0,
        }
    }

    async fn count(conn: &Connection, sql: &str) -> i64 {
        let mut rows = conn.query(sql, ()).await.expect("query");
        let row = rows.next().await.expect("step").expect("a row");
        row.get::<i64>(0).expect("count")
    }

    /// Rows of a batch reach their tables and the ledger only through
    /// chunks, and all of them do by the commit, whatever the chunk
    /// boundaries; a rollback forgets what was buffered.
    #[tokio::test]
    async fn buffered_rows_are_all_written_by_the_commit() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        create_target_tables(&conn).await.expect("tables");
        let mut writer = BatchWriter::new(&conn);
        writer.begin().await.expect("begin");
        let n = CHUNK_ROWS + 7;
        for i in 0..n {
            writer
                .upsert(TargetTable::Other, row(&format!("{i:05}"), 3), vec![0; 12])
                .await
                .expect("upsert");
        }
        // One full chunk went out when the buffer filled; 7 rows wait.
        assert_eq!(
            count(&conn, "SELECT count(*) FROM embeddings_other").await,
            CHUNK_ROWS as i64
        );
        writer.commit().await.expect("commit");
        assert_eq!(
            count(&conn, "SELECT count(*) FROM embeddings_other").await,
            n as i64
        );
        assert_eq!(
            count(&conn, &format!("SELECT count(*) FROM {LEDGER_TABLE}")).await,
            n as i64
        );
        assert_eq!(writer.written_per_table()["embeddings_other"], n as u64);

        writer.begin().await.expect("begin");
        writer
            .upsert(TargetTable::Other, row("zzz", 3), vec![0; 12])
            .await
            .expect("upsert");
        writer.rollback().await;
        writer.begin().await.expect("begin");
        writer.commit().await.expect("commit");
        assert_eq!(
            count(&conn, "SELECT count(*) FROM embeddings_other").await,
            n as i64
        );
    }
}
