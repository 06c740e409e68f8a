//! A batch over the network in one request: the writer queues its
//! statements instead of running them, and sends them at the commit as
//! one transaction ([`crate::connect::pipeline`]), guarded.

use super::super::error::MigrateError;
use super::BatchWriter;
use crate::connect::pipeline::{Failure, Held, Pipeline, Statement};
use crate::db::{classify, ErrorClass};
use libsql::Value;

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
            Some(steps) => {
                steps.push(Statement::new(sql(), params.to_vec()));
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
        self.deferred = Some(Vec::new());
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
        let mut writes = self.deferred.take().unwrap_or_default();
        if let Err(e) = flushed {
            self.reset_pending();
            return Err(Deferred::Failed(e.into()));
        }
        let mut steps = guard;
        let guards = steps.len();
        steps.append(&mut writes);
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
                    Failure::Step { step, .. } if step < guards => Deferred::Guarded,
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
        Ok(self.deferred.replace(Vec::new()).unwrap_or_default())
    }

    /// Commits the deferred batch in `held`: every write deferred since
    /// [`BatchWriter::begin_deferred`] (or the last
    /// [`BatchWriter::take_deferred`]), then `extra`, the lock's refresh
    /// and `COMMIT`, in one request. On a failure nothing of the
    /// transaction is committed (a lost request aside: it may have), and a
    /// transaction that ended on the server ([`Failure::Ended`]) is
    /// [`Deferred::Failed`] with a transient error, to be retried.
    pub(crate) async fn commit_held(
        &mut self,
        held: Held<'_>,
        extra: Vec<Statement>,
    ) -> std::result::Result<(), Deferred> {
        let mut steps = match self.take_deferred().await {
            Ok(steps) => steps,
            Err(e) => {
                self.reset_pending();
                held.rollback().await;
                return Err(Deferred::Failed(e.into()));
            }
        };
        self.deferred = None;
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
                Err(refusal(
                    failure,
                    lock_check,
                    "committing a transaction held under the write lock",
                ))
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
