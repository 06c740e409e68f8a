//! A batch over the network in one request: the writer queues its
//! statements instead of running them, and sends them at the commit as
//! one transaction ([`crate::connect::pipeline`]), guarded.

use super::super::error::MigrateError;
use super::BatchWriter;
use crate::connect::pipeline::{Failure, Pipeline, Statement};
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
                    Failure::Step { step, .. } if Some(step) == lock_check => Deferred::LockLost,
                    Failure::Step { error, .. } if classify(&error) == ErrorClass::RowRejected => {
                        Deferred::Refused
                    }
                    other => {
                        Deferred::Failed(other.in_context("writing a batch in one request").into())
                    }
                })
            }
        }
    }
}
