//! A write transaction held open on one stream across a few requests, for
//! work that reads, decides on the client and writes under one write lock
//! (the online mirror's: read the rows of the keys an application changed,
//! judge them, write, read them again). One request per step instead of
//! one per statement: over an 80 ms round trip the online mirror's final
//! transaction took about forty requests, near sqld's 5 s limit for a
//! transaction another writer waits on.
//!
//! Every request after the first runs only inside the transaction: its
//! first step runs only if the stream is not in autocommit (sqld, having
//! timed out a transaction while another writer waited, runs the stream's
//! next statements in autocommit: they would land outside it), each next
//! step only if the one before succeeded, and a `ROLLBACK` ends the
//! request when a step failed, so a failed request leaves no transaction
//! holding the write lock. The [`Held`] keeps the stream to itself for its
//! life: nothing else of the pipeline's runs inside the transaction.

use libsql_hrana::proto;
use tokio::sync::MutexGuard;

use super::{
    collect, committed, ok, step, step_error, Failure, Outcome, Pipeline, Statement, Stream,
};

/// A write transaction open on a pipeline's stream
/// ([`Pipeline::begin_held`]). Dropped while open, it leaves its stream
/// behind; the server rolls the transaction back when it expires the
/// stream, or when another writer has waited for it past its limit.
/// Another request on the same pipeline (or a clone of it) waits until
/// it is committed, rolled back or dropped: made by its holder, that
/// request would wait forever.
pub struct Held<'p> {
    pipeline: &'p Pipeline,
    stream: MutexGuard<'p, Stream>,
    /// The stream it is open on.
    id: u64,
    open: bool,
}

impl Pipeline {
    /// `BEGIN IMMEDIATE` and `statements` in one request, each statement
    /// only if the one before succeeded. The transaction stays open (the
    /// write lock held) for the [`Held`]'s next requests; if anything
    /// failed it was rolled back in the same request.
    pub async fn begin_held(
        &self,
        statements: Vec<Statement>,
    ) -> Result<(Held<'_>, Vec<Outcome>), Failure> {
        let mut stream = self.inner.stream.lock().await;
        let n = statements.len();
        let mut steps = vec![step(Statement::new("BEGIN IMMEDIATE", vec![]), false, None)];
        for (i, s) in statements.into_iter().enumerate() {
            steps.push(step(s, true, Some(ok(i))));
        }
        steps.push(rollback_unless(ok(n)));
        let (results, errors, id) = self.batch_on(&mut stream, steps, None).await?;
        if let Some(Some(e)) = errors.first() {
            return Err(Failure::Step {
                step: 0,
                error: step_error(e, "BEGIN IMMEDIATE"),
            });
        }
        let outcomes = collect(results, errors, 1, n)?;
        Ok((
            Held {
                pipeline: self,
                stream,
                id,
                open: true,
            },
            outcomes,
        ))
    }
}

impl Held<'_> {
    /// Runs `statements` in the transaction, in one request. On any
    /// failure the transaction is over (rolled back, or left to the server
    /// with its stream if the request was lost): nothing of it commits.
    pub async fn run(&mut self, statements: Vec<Statement>) -> Result<Vec<Outcome>, Failure> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let n = statements.len();
        let mut steps = self.inside(statements);
        steps.push(rollback_unless(ok(n - 1)));
        let (results, errors) = self.send(steps).await?;
        if ended(&results, &errors) {
            self.open = false;
            return Err(Failure::Ended);
        }
        let outcomes = collect(results, errors, 0, n);
        if outcomes.is_err() {
            self.open = false;
        }
        outcomes
    }

    /// Runs `statements` and commits, in one request. Succeeds only if the
    /// `COMMIT` did; a lost request may or may not have committed.
    pub async fn commit(mut self, statements: Vec<Statement>) -> Result<Vec<Outcome>, Failure> {
        let n = statements.len();
        let mut statements = statements;
        statements.push(Statement::new("COMMIT", vec![]));
        let mut steps = self.inside(statements);
        // The COMMIT does not ask for rows.
        if let Some(commit) = steps.last_mut() {
            commit.stmt.want_rows = Some(false);
        }
        steps.push(rollback_unless(ok(n)));
        let (results, errors) = self.send(steps).await?;
        self.open = false;
        if ended(&results, &errors) {
            return Err(Failure::Ended);
        }
        committed(results, errors, 0, n)
    }

    /// Rolls the transaction back (where its stream is still there to ask).
    pub async fn rollback(mut self) {
        if self.open {
            let steps = vec![step(
                Statement::new("ROLLBACK", vec![]),
                false,
                Some(in_transaction()),
            )];
            let _ = self.send(steps).await;
            self.open = false;
        }
    }

    /// The steps of `statements` inside the transaction: the first only if
    /// it is still open, each next only if the one before succeeded.
    fn inside(&self, statements: Vec<Statement>) -> Vec<proto::BatchStep> {
        statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let condition = match i {
                    0 => in_transaction(),
                    _ => ok(i - 1),
                };
                step(s, true, Some(condition))
            })
            .collect()
    }

    /// Sends `steps` on the transaction's stream; a lost request ends it.
    async fn send(
        &mut self,
        steps: Vec<proto::BatchStep>,
    ) -> Result<(Vec<Option<proto::StmtResult>>, Vec<Option<proto::Error>>), Failure> {
        if !self.open {
            return Err(Failure::Ended);
        }
        match self
            .pipeline
            .batch_on(&mut self.stream, steps, Some(self.id))
            .await
        {
            Ok((results, errors, _)) => Ok((results, errors)),
            Err(failure) => {
                self.open = false;
                Err(failure)
            }
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.open {
            // Its transaction must not be found by the next request.
            self.stream.baton = None;
        }
    }
}

/// True while the stream is inside a transaction.
fn in_transaction() -> proto::BatchCond {
    proto::BatchCond::Not {
        cond: Box::new(proto::BatchCond::IsAutocommit {}),
    }
}

/// `ROLLBACK`, run only if `cond` does not hold.
fn rollback_unless(cond: proto::BatchCond) -> proto::BatchStep {
    step(
        Statement::new("ROLLBACK", vec![]),
        false,
        Some(proto::BatchCond::Not {
            cond: Box::new(cond),
        }),
    )
}

/// Whether the request's first step was skipped: the transaction had
/// ended before it arrived.
fn ended(results: &[Option<proto::StmtResult>], errors: &[Option<proto::Error>]) -> bool {
    matches!(results.first(), Some(None)) && matches!(errors.first(), Some(None) | None)
}
