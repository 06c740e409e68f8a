//! The one place that writes migrated rows: a transaction per batch, with
//! prepared statements reused across batches.

use libsql::{Connection, Statement, Value};

use super::lock::MigrationLock;
use super::retry::{classify, ErrorClass};
use super::row::{EmbeddingRow, Key};
use crate::decode::BadRowReason;
use crate::error::{DbContext, Result};
use crate::schema::{TargetTable, CHECKPOINT_TABLE, LEDGER_TABLE, QUARANTINE_TABLE};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes batches into the target tables, the quarantine record and the
/// checkpoint. Every write happens between [`BatchWriter::begin`] and
/// [`BatchWriter::commit`].
pub struct BatchWriter<'c> {
    conn: &'c Connection,
    upserts: [Option<Statement>; 5],
    deletes: [Option<Statement>; 5],
    quarantine: Option<Statement>,
    unquarantine: Option<Statement>,
    ledger_add: Option<Statement>,
    ledger_remove: Option<Statement>,
    lock: Option<MigrationLock>,
    /// Rows written to each target table by committed batches.
    pub written: [u64; 5],
    /// Rows written to each target table by the batch in flight.
    pending: [u64; 5],
    /// Bytes (all columns) written to each table by committed batches, and
    /// by the batch in flight.
    bytes: [u64; 5],
    pending_bytes: [u64; 5],
    in_batch: u64,
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
            deletes: Default::default(),
            quarantine: None,
            unquarantine: None,
            ledger_add: None,
            ledger_remove: None,
            lock: None,
            written: [0; 5],
            pending: [0; 5],
            bytes: [0; 5],
            pending_bytes: [0; 5],
            in_batch: 0,
        }
    }

    /// Starts a batch: `BEGIN IMMEDIATE`, so a second writer waits or fails
    /// here rather than half way through.
    pub async fn begin(&mut self) -> Result<()> {
        self.in_batch = 0;
        self.pending = [0; 5];
        self.pending_bytes = [0; 5];
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

    /// Commits the batch (refreshing the lock in it first).
    pub async fn commit(&mut self) -> Result<()> {
        if let Some(lock) = &self.lock {
            lock.refresh(self.conn).await?;
        }
        self.conn
            .execute("COMMIT", ())
            .await
            .db_context(|| "committing a batch".to_string())?;
        for (total, n) in self.written.iter_mut().zip(self.pending) {
            *total += n;
        }
        for (total, n) in self.bytes.iter_mut().zip(self.pending_bytes) {
            *total += n;
        }
        self.pending = [0; 5];
        self.pending_bytes = [0; 5];
        Ok(())
    }

    /// Rolls back the batch in flight (used when a write failed).
    pub async fn rollback(&mut self) {
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

    /// Rows written in the current batch.
    pub fn batch_rows(&self) -> u64 {
        self.in_batch
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
    /// the vector bound as little-endian f32 bytes (never as text).
    pub async fn upsert(
        &mut self,
        table: TargetTable,
        row: EmbeddingRow,
        vector: Vec<u8>,
    ) -> Result<()> {
        let stmt = Self::prepared(self.conn, &mut self.upserts[slot(table)], || {
            format!(
                "INSERT OR REPLACE INTO {} (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                table.name()
            )
        })
        .await?;
        let key = row.key.clone();
        let size = (row.size() + vector.len()) as u64;
        let params = vec![
            row.key.0,
            row.item_id,
            row.item_type,
            row.embedding_data,
            Value::Blob(vector),
            row.dimension,
            row.model,
            row.created_at,
        ];
        let result = stmt.execute(params).await;
        stmt.reset();
        if let Err(source) = result {
            if classify(&source) == ErrorClass::RowRejected {
                return Err(crate::Error::RowRejected {
                    embedding_id: key.to_string(),
                    key: Box::new(key),
                    table: table.name().to_string(),
                    source,
                });
            }
            return Err(source).db_context(|| format!("writing embedding {key} to {table}"));
        }
        let stmt = Self::prepared(self.conn, &mut self.ledger_add, || {
            format!("INSERT OR REPLACE INTO {LEDGER_TABLE} (embedding_id, target_table) VALUES (?1, ?2)")
        })
        .await?;
        run(
            stmt,
            vec![key.0.clone(), Value::Text(table.name().to_string())],
            || format!("recording embedding {key} in the ledger"),
        )
        .await?;
        self.pending[slot(table)] += 1;
        self.pending_bytes[slot(table)] += size;
        self.in_batch += 1;
        Ok(())
    }

    /// Removes `key` from `table` (a copy in the wrong table).
    pub async fn delete(&mut self, table: TargetTable, key: &Key) -> Result<()> {
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

    /// Drops a key from the ledger (no table holds it any more).
    pub async fn forget(&mut self, key: &Key) -> Result<()> {
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
        let stmt = Self::prepared(self.conn, &mut self.quarantine, || {
            format!("INSERT OR REPLACE INTO {QUARANTINE_TABLE} (embedding_id, reason_code, reason, recorded_at) VALUES (?1, ?2, ?3, ?4)")
        })
        .await?;
        let params = vec![
            key.0.clone(),
            Value::Text(reason.code().to_string()),
            Value::Text(reason.to_string()),
            Value::Integer(unix_now()),
        ];
        run(stmt, params, || format!("quarantining embedding {key}")).await
    }

    /// Removes a key from the quarantine record (its row is now good or gone).
    pub async fn unquarantine(&mut self, key: &Key) -> Result<()> {
        let stmt = Self::prepared(self.conn, &mut self.unquarantine, || {
            format!("DELETE FROM {QUARANTINE_TABLE} WHERE embedding_id = ?1")
        })
        .await?;
        run(stmt, vec![key.0.clone()], || {
            format!("clearing the quarantine entry of {key}")
        })
        .await
    }

    /// Moves the checkpoint to `last`, in the batch's transaction.
    pub async fn checkpoint(&mut self, last: &Key) -> Result<()> {
        let now = unix_now();
        self.conn
            .execute(
                &format!(
                    "INSERT INTO {CHECKPOINT_TABLE} (id, last_embedding_id, rows_written, started_at, updated_at) VALUES (1, ?1, ?2, ?3, ?3) \
                     ON CONFLICT(id) DO UPDATE SET last_embedding_id = excluded.last_embedding_id, \
                     rows_written = rows_written + excluded.rows_written, updated_at = excluded.updated_at"
                ),
                vec![last.0.clone(), Value::Integer(self.in_batch as i64), Value::Integer(now)],
            )
            .await
            .db_context(|| "moving the checkpoint".to_string())?;
        Ok(())
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

/// Marks the copy as having reached the end of the legacy table.
pub async fn mark_copy_completed(conn: &Connection) -> Result<()> {
    conn.execute(
        &format!("UPDATE {CHECKPOINT_TABLE} SET copy_completed_at = ?1 WHERE id = 1"),
        [unix_now()],
    )
    .await
    .db_context(|| "marking the copy complete".to_string())?;
    Ok(())
}

/// Runs `body` inside `BEGIN IMMEDIATE` … `COMMIT`, rolling back when it
/// fails.
pub(crate) async fn in_transaction<T>(
    conn: &Connection,
    what: &'static str,
    body: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    conn.execute("BEGIN IMMEDIATE", ())
        .await
        .db_context(|| what.to_string())?;
    match body.await {
        Ok(v) => {
            conn.execute("COMMIT", ())
                .await
                .db_context(|| what.to_string())?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK", ()).await;
            Err(e)
        }
    }
}
