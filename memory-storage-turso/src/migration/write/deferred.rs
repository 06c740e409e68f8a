//! A batch over the network in one request: the writer queues its
//! statements instead of running them, and sends them at the commit as
//! one transaction ([`crate::connect::pipeline`]), guarded.

use super::super::error::MigrateError;
use super::{BatchWriter, UPSERT_COLUMNS};
use crate::connect::pipeline::{fail_unless, Failure, Held, Pipeline, Statement};
use crate::db::{classify, ErrorClass};
use crate::schema::{TargetTable, LEGACY_TABLE};
use libsql::Value;

/// A deferred batch's statements, in order.
#[derive(Debug, Default)]
pub(super) struct Queue {
    steps: Vec<Statement>,
    /// Steps that check every row of a chunk copied from the legacy table
    /// found its legacy row: one that fails fails like a guard.
    checks: Vec<usize>,
    /// Rows carry their key and vector only; their other columns are
    /// copied on the server from the legacy row of their key
    /// ([`BatchWriter::copy_columns_from_legacy`]).
    pub(super) from_legacy: bool,
}

impl Queue {
    /// Queues `n` rows for `table`, as `(key, vector)` pairs in `params`,
    /// to take every other column from the legacy row of their key, and
    /// the check that all `n` were written.
    pub(super) fn push_from_legacy(&mut self, table: TargetTable, params: Vec<Value>, n: usize) {
        self.steps
            .push(Statement::new(from_legacy_sql(table.name(), n), params));
        self.checks.push(self.steps.len());
        self.steps.push(Statement::new(
            fail_unless(&format!("changes() = {n}")),
            vec![],
        ));
    }
}

/// `INSERT OR REPLACE INTO {table}` of `rows` rows given as `(key,
/// vector)` pairs, every other column copied from the legacy row of the
/// key. The pairs are the outer loop (`CROSS JOIN` keeps that order), so
/// each row is one lookup in the legacy table's unique index on its key.
fn from_legacy_sql(table: &str, rows: usize) -> String {
    format!(
        "INSERT OR REPLACE INTO {table} ({UPSERT_COLUMNS}) \
         SELECT l.embedding_id, l.item_id, l.item_type, l.embedding_data, v.column2, l.dimension, l.model, l.created_at \
         FROM (VALUES {}) AS v CROSS JOIN {LEGACY_TABLE} AS l ON l.embedding_id = v.column1",
        vec!["(?, ?)"; rows].join(", ")
    )
}

/// How a deferred batch ([`BatchWriter::commit_deferred`]) failed. In
/// every case nothing of it was committed, except possibly with
/// [`Deferred::Failed`] of a lost request (the window is read again).
#[derive(Debug)]
pub enum Deferred {
    /// A guard statement failed: the batch must be made again, the slow way.
    Guarded,
    /// The database refused a row: the slow way names it.
    Refused,
    /// The migration lock is no longer ours.
    LockLost,
    /// Anything else, as the batch's error.
    Failed(MigrateError),
}

impl BatchWriter<'_> {
    /// Queues `sql` when the batch is deferred (and says so).
    pub(super) fn defer(&mut self, sql: impl FnOnce() -> String, params: &[Value]) -> bool {
        match &mut self.deferred {
            Some(queue) => {
                queue.steps.push(Statement::new(sql(), params.to_vec()));
                true
            }
            None => false,
        }
    }

    /// Starts a batch whose statements are sent together, as one
    /// transaction in one request, by [`BatchWriter::commit_deferred`]
    /// (a remote database: one round trip instead of dozens).
    pub fn begin_deferred(&mut self) {
        self.discard_buffers();
        self.reset_pending();
        self.deferred = Some(Queue::default());
    }

    /// The deferred batch's rows take every column but the vector from
    /// the legacy row of their key, copied on the server: a row's request
    /// carries its key and vector only, not its text again (three
    /// quarters of its bytes, for a JSON `embedding_data`). Only for a batch
    /// whose guard holds the legacy table as it was read (nothing else was
    /// committed since), or a held transaction that read them itself
    /// ([`Held`]), when its key is unique
    /// ([`super::super::scan::Layout::legacy_unique`]). A chunk whose rows
    /// did not all find their legacy row fails its check, and the batch
    /// fails like a guard ([`Deferred::Guarded`]).
    pub fn copy_columns_from_legacy(&mut self) {
        if let Some(queue) = &mut self.deferred {
            queue.from_legacy = true;
        }
    }

    /// Sends the deferred batch on the pipeline's stream `stream`: `guard`
    /// first (statements that fail when the batch must not be written),
    /// then every write, the lock's refresh and the commit, in one
    /// request. Where that stream is gone, the batch is not sent
    /// ([`Deferred::Guarded`]): a guard may compare with what was read on
    /// it. On a failure nothing of the batch is committed, and the writer
    /// is ready for another batch.
    pub async fn commit_deferred(
        &mut self,
        pipeline: &Pipeline,
        stream: u64,
        guard: Vec<Statement>,
    ) -> std::result::Result<(), Deferred> {
        let flushed = self.flush().await;
        let Queue {
            steps: mut writes,
            checks,
            ..
        } = self.deferred.take().unwrap_or_default();
        if let Err(e) = flushed {
            self.reset_pending();
            return Err(Deferred::Failed(e.into()));
        }
        let mut steps = guard;
        let guards = steps.len();
        steps.append(&mut writes);
        let checked = |step: usize| step < guards || checks.contains(&(step - guards));
        let lock_check = self.lock.as_ref().map(|lock| {
            steps.extend(lock.refresh_statements());
            steps.len() - 1
        });
        match pipeline.transaction_on(stream, steps).await {
            Ok(_) => {
                self.settle();
                Ok(())
            }
            Err(failure) => {
                self.reset_pending();
                Err(match failure {
                    Failure::StreamChanged => Deferred::Guarded,
                    Failure::Step { step, .. } if checked(step) => Deferred::Guarded,
                    other => refusal(other, lock_check, "writing a batch in one request"),
                })
            }
        }
    }

    /// The statements deferred so far (every buffered row flushed into
    /// them); later writes are deferred again. For a held transaction
    /// ([`Held`]) that reads the rows again after writing them.
    pub(crate) async fn take_deferred(&mut self) -> crate::error::Result<Vec<Statement>> {
        self.flush().await?;
        let queue = self.deferred.replace(Queue::default()).unwrap_or_default();
        debug_assert!(
            queue.checks.is_empty(),
            "a held batch copies nothing from legacy"
        );
        Ok(queue.steps)
    }

    /// Commits the deferred batch in `held`: every write deferred since
    /// [`BatchWriter::begin_deferred`] (or the last
    /// [`BatchWriter::take_deferred`]), then `extra`, the lock's refresh
    /// and `COMMIT`, in one request. On a failure nothing of the
    /// transaction is committed (a lost request aside: it may have), and a
    /// transaction that ended on the server ([`Failure::Ended`]) is
    /// [`Deferred::Failed`] with a transient error, to be retried. Rows
    /// copied from the legacy rows read in the transaction
    /// ([`BatchWriter::copy_columns_from_legacy`]) that did not all find
    /// theirs fail like a guard ([`Deferred::Guarded`]).
    pub(crate) async fn commit_held(
        &mut self,
        held: Held<'_>,
        extra: Vec<Statement>,
    ) -> std::result::Result<(), Deferred> {
        let flushed = self.flush().await;
        let Queue {
            mut steps, checks, ..
        } = self.deferred.take().unwrap_or_default();
        if let Err(e) = flushed {
            self.reset_pending();
            held.rollback().await;
            return Err(Deferred::Failed(e.into()));
        }
        steps.extend(extra);
        let lock_check = self.lock.as_ref().map(|lock| {
            steps.extend(lock.refresh_statements());
            steps.len() - 1
        });
        match held.commit(steps).await {
            Ok(_) => {
                self.settle();
                Ok(())
            }
            Err(failure) => {
                self.reset_pending();
                Err(match failure {
                    Failure::Step { step, .. } if checks.contains(&step) => Deferred::Guarded,
                    other => refusal(
                        other,
                        lock_check,
                        "committing a transaction held under the write lock",
                    ),
                })
            }
        }
    }
}

/// What a failed deferred batch means, its guards aside: the lock lost
/// (step `lock_check` failed), a row refused, or the error.
fn refusal(failure: Failure, lock_check: Option<usize>, context: &str) -> Deferred {
    match failure {
        Failure::Step { step, .. } if Some(step) == lock_check => Deferred::LockLost,
        Failure::Step { error, .. } if classify(&error) == ErrorClass::RowRejected => {
            Deferred::Refused
        }
        other => Deferred::Failed(other.in_context(context).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::row::{EmbeddingRow, Key};
    use crate::schema::create_target_tables;
    use libsql::Connection;

    /// Runs `steps` as the server would, in order; the first failure and
    /// its step.
    async fn run_all(conn: &Connection, steps: &[Statement]) -> Result<(), (usize, libsql::Error)> {
        for (i, s) in steps.iter().enumerate() {
            let mut rows = conn
                .query(&s.sql, s.args.clone())
                .await
                .map_err(|e| (i, e))?;
            while rows.next().await.map_err(|e| (i, e))?.is_some() {}
        }
        Ok(())
    }

    fn legacy_row(key: Value, item: &str, data: Value, created_at: Value) -> EmbeddingRow {
        EmbeddingRow {
            key: Key(key),
            item_id: Value::Text(item.into()),
            item_type: Value::Text("episode".into()),
            embedding_data: data,
            embedding_vector: Value::Null,
            dimension: Value::Integer(2),
            model: Value::Text("m".into()),
            created_at,
            invalid_utf8: 0,
        }
    }

    /// A batch whose rows copy their columns from the legacy table sends
    /// each row's key and vector only; run as queued, every target row
    /// holds its legacy row's values exactly (types included) and the
    /// vector sent; and a chunk whose key lost its legacy row fails the
    /// check after it, which fails the batch like a guard.
    #[tokio::test]
    async fn rows_copied_from_legacy_hold_its_values_and_the_vector_sent() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        conn.execute_batch(&format!(
            "CREATE TABLE {LEGACY_TABLE} (embedding_id TEXT PRIMARY KEY NOT NULL, item_id TEXT NOT NULL, \
             item_type TEXT NOT NULL, embedding_data TEXT NOT NULL, embedding_vector F32_BLOB(384), \
             dimension INTEGER NOT NULL, model TEXT NOT NULL, created_at INTEGER NOT NULL)"
        ))
        .await
        .unwrap();
        create_target_tables(&conn).await.unwrap();
        let rows = [
            legacy_row(
                Value::Text("a".into()),
                "ünï \"q\"",
                Value::Text("[0.1,-0]".into()),
                Value::Integer(7),
            ),
            legacy_row(
                Value::Blob(vec![0, 159, 1]),
                "i2",
                Value::Text("__compressed__:lz4:8\nAAAA".into()),
                Value::Real(1.5),
            ),
            legacy_row(
                Value::Text("c".into()),
                "i3",
                Value::Blob(vec![1, 2]),
                Value::Text("later".into()),
            ),
        ];
        for r in &rows {
            let values: Vec<Value> = r.values().into_iter().cloned().collect();
            conn.execute(
                &format!("INSERT INTO {LEGACY_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                values,
            )
            .await
            .unwrap();
        }
        let vectors: Vec<Vec<u8>> = (0..3u8)
            .map(|i| vec![i, 0x80, 0x7f, 0xff, 0, 0, 0xc0, i])
            .collect();

        let mut writer = BatchWriter::new(&conn);
        writer.begin_deferred();
        writer.copy_columns_from_legacy();
        for (r, v) in rows.iter().zip(&vectors) {
            writer
                .upsert(TargetTable::Other, r.clone(), v.clone())
                .await
                .unwrap();
        }
        writer.flush().await.unwrap();
        let queue = writer.deferred.take().unwrap();
        // The rows' statement carries two values a row: no text of theirs.
        assert_eq!(queue.steps[0].args.len(), 6);
        assert_eq!(queue.checks, vec![1]);
        run_all(&conn, &queue.steps).await.unwrap();

        let mut read = conn
            .query(
                &format!("SELECT {UPSERT_COLUMNS} FROM embeddings_other"),
                (),
            )
            .await
            .unwrap();
        let mut copied = Vec::new();
        while let Some(row) = read.next().await.unwrap() {
            copied.push(
                (0..8)
                    .map(|i| row.get_value(i).unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(copied.len(), 3);
        for (r, v) in rows.iter().zip(&vectors) {
            let mut expected: Vec<Value> = r.values().into_iter().cloned().collect();
            expected[4] = Value::Blob(v.clone());
            let got = copied
                .iter()
                .find(|c| c[0] == r.key.0)
                .unwrap_or_else(|| panic!("{:?} not copied", r.key));
            assert_eq!(got, &expected);
        }

        // A legacy row gone (nothing guards this run): the chunk writes two
        // rows, and the check after it fails.
        conn.execute(
            &format!("DELETE FROM {LEGACY_TABLE} WHERE embedding_id = 'c'"),
            (),
        )
        .await
        .unwrap();
        let (step, _) = run_all(&conn, &queue.steps).await.unwrap_err();
        assert!(queue.checks.contains(&step), "failed at step {step}");
    }
}
