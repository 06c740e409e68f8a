//! Work under a write lock held on a remote database's writing stream
//! ([`Held`]), in a few requests instead of one per statement: a copy
//! batch read again after its guard failed, a verification window
//! repaired, a turn of the online mirror. What they share: the window
//! read with `BEGIN IMMEDIATE`, writes sent with the reads that check
//! them, the commit with the lock's refresh, and what the work would tell
//! the observer told once it is committed. Where this way cannot go —
//! a row the database refuses (the statement-by-statement way names it),
//! an answer too large for the server — each answers `None`: nothing of
//! the attempt is kept, and the caller makes it through the `libsql`
//! connection.

use libsql::Connection;

use super::error::{MigrateError, Result};
use super::observer::{Observer, Withheld};
use super::scan::{too_large, Layout, RemoteReads, Window};
use super::write::{BatchWriter, Deferred};
use crate::connect::pipeline::{Failure, Held, Statement};
use crate::db::{classify, ErrorClass};
use crate::decode::row::Key;

/// `BEGIN IMMEDIATE` and `reads` (a window's statements, of
/// [`Layout::keys_statements`] or [`Layout::range_statements`]) in one
/// request on the writing stream: the transaction, left open, and the
/// window read in it (`upper` as given).
pub(crate) async fn begin<'r>(
    remote: &'r RemoteReads,
    layout: &Layout,
    reads: Vec<Statement>,
    upper: Option<Key>,
    context: &str,
) -> Result<Option<(Held<'r>, Window)>> {
    let (held, answers) = match remote.pipeline.begin_held(reads).await {
        Ok(began) => began,
        Err(Failure::Step { error, .. }) | Err(Failure::Request(error)) if too_large(&error) => {
            return Ok(None)
        }
        Err(failure) => return Err(failure.in_context(context).into()),
    };
    match layout.window_of(answers, upper) {
        Ok(window) => Ok(Some((held, window))),
        Err(e) => {
            held.rollback().await;
            Err(e)
        }
    }
}

/// `writes`, then `reads`, in one request of the transaction: the window
/// the reads found after the writes.
pub(crate) async fn write_and_read(
    held: &mut Held<'_>,
    layout: &Layout,
    writes: Vec<Statement>,
    reads: Vec<Statement>,
    upper: Option<Key>,
    context: &str,
) -> Result<Option<Window>> {
    let n = writes.len();
    let mut statements = writes;
    statements.extend(reads);
    match held.run(statements).await {
        Ok(mut answers) => Ok(Some(layout.window_of(answers.split_off(n), upper)?)),
        Err(Failure::Step { error, .. }) | Err(Failure::Request(error)) if too_large(&error) => {
            Ok(None)
        }
        Err(Failure::Step { step, error })
            if step < n && classify(&error) == ErrorClass::RowRejected =>
        {
            Ok(None)
        }
        Err(failure) => Err(failure.in_context(context).into()),
    }
}

/// Ends `held` after the work `prepared` in it. `Some((value, extra))`:
/// commits it with the writer's deferred writes and `extra`, then tells
/// `observer` what `told` held back, and answers `Some(value)`; `None`,
/// or an error, rolls it back. `None`: nothing of it was kept.
pub(crate) async fn settle<T>(
    conn: &Connection,
    writer: &mut BatchWriter<'_>,
    held: Held<'_>,
    prepared: Result<Option<(T, Vec<Statement>)>>,
    (told, observer): (Withheld, &dyn Observer),
) -> Result<Option<T>> {
    let (value, extra) = match prepared {
        Ok(Some(ready)) => ready,
        other => {
            held.rollback().await;
            return other.map(|_| None);
        }
    };
    if commit(conn, writer, held, extra).await?.is_none() {
        return Ok(None);
    }
    told.tell(observer);
    Ok(Some(value))
}

/// Commits `held` with the writer's deferred writes, then `extra`
/// ([`BatchWriter::commit_held`]): `Some` when committed.
async fn commit(
    conn: &Connection,
    writer: &mut BatchWriter<'_>,
    held: Held<'_>,
    extra: Vec<Statement>,
) -> Result<Option<()>> {
    match writer.commit_held(held, extra).await {
        Ok(()) => Ok(Some(())),
        Err(Deferred::Refused | Deferred::Guarded) => Ok(None),
        Err(Deferred::LockLost) => Err(MigrateError::LockLost {
            holder: super::lock::current_holder(conn).await?,
        }),
        Err(Deferred::Failed(e)) => Err(e),
    }
}
