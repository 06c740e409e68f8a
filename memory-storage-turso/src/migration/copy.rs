//! The copy phase: windows from the checkpoint to the end of the legacy
//! table, one transaction per batch, the checkpoint moved in the same
//! transaction as the rows it describes.

use std::collections::BTreeMap;
use std::time::Instant;

use libsql::Connection;

use super::apply::{apply, with_rejections, Quarantine, Rejected};
use super::compare::judge;
use super::error::MigrateError;
use super::error::Result;
use super::locked;
use super::observer::{Observer, Phase, Withheld};
use super::pass::{Flow, Pass};
use super::scan::{Layout, Limits, ReadAt, RemoteReads};
use super::windows::{WindowWork, Windows};
use super::write::{mark_copy_completed, BatchWriter, Deferred};
use crate::connect::pipeline::{fail_unless, Statement};
use crate::decode::row::Key;
use crate::schema::LEGACY_TABLE;

/// What the copy phase did.
#[derive(Debug)]
pub struct CopyOutcome {
    pub written: BTreeMap<String, u64>,
    pub already: BTreeMap<String, u64>,
    pub removed: u64,
    pub rows_seen: u64,
    pub flow: Flow,
    pub seconds: f64,
}

/// Legacy rows after `after`, for progress totals.
pub async fn count_after(conn: &Connection, after: Option<&Key>) -> Result<u64> {
    let what = || format!("counting the rows of {LEGACY_TABLE}");
    let (sql, args) = count_after_sql(after);
    let n = crate::db::query_i64(conn, &sql, args, what).await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

fn count_after_sql(after: Option<&Key>) -> (String, Vec<libsql::Value>) {
    match after {
        Some(k) => (
            format!("SELECT count(*) FROM {LEGACY_TABLE} WHERE embedding_id > ?1"),
            vec![k.0.clone()],
        ),
        None => (format!("SELECT count(*) FROM {LEGACY_TABLE}"), vec![]),
    }
}

/// [`count_after`] for the copy's progress: over the network in one
/// request on the reading stream, with retries, so it goes beside the
/// first window instead of two round trips before it.
async fn count_to_copy(
    conn: &Connection,
    layout: &Layout,
    after: Option<&Key>,
    max_retries: u32,
) -> Result<u64> {
    let Some(remote) = &layout.remote else {
        return count_after(conn, after).await;
    };
    let what = format!("counting the rows of {LEGACY_TABLE}");
    let n = crate::db::with_retries(max_retries, || {
        let (sql, args) = count_after_sql(after);
        remote.query_i64(Statement::new(sql, args), &what)
    })
    .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// One window: read, judge, write, move the checkpoint, commit.
pub(crate) struct Step {
    upper: Option<Key>,
    rows: u64,
    already: BTreeMap<&'static str, u64>,
    removed: u64,
    /// The window was read again in the batch's transaction: something
    /// was committed since it was read, or a row was refused.
    read_again: bool,
    /// The batch (the last window's) also marked the copy complete.
    completed: bool,
}

/// A window read, its judging (decoding and comparing) under way on a
/// blocking thread, so the previous window is written meanwhile.
pub(crate) struct Judging {
    /// The `data_version` the window was read at (a remote writing
    /// stream's: the batch then goes in one request, guarded by it).
    read_at: ReadAt,
    upper: Option<Key>,
    checkpoint: Option<Key>,
    rows: u64,
    empty: bool,
    findings: tokio::task::JoinHandle<Vec<super::compare::Finding>>,
}

/// The copy's work on a window: write what it lacks, move the checkpoint.
pub(crate) struct CopyWindows<'a> {
    conn: &'a Connection,
    layout: &'a Layout,
}

impl WindowWork for CopyWindows<'_> {
    type Read = Judging;
    type Done = Step;

    async fn read(
        &self,
        after: Option<&Key>,
        _before: Option<&Judging>,
        limits: Limits,
    ) -> Result<Judging> {
        let (window, read_at) = self
            .layout
            .next_window_versioned(self.conn, after, limits)
            .await?;
        let upper = window.upper.clone();
        let checkpoint = upper
            .clone()
            .or_else(|| window.legacy.last().map(|r| r.key.clone()));
        Ok(Judging {
            read_at,
            upper,
            checkpoint,
            rows: window.legacy.len() as u64,
            empty: window.is_empty(),
            findings: tokio::task::spawn_blocking(move || judge(window)),
        })
    }

    fn is_end(read: &Judging) -> bool {
        read.empty
    }

    fn upper(read: &Judging) -> Option<&Key> {
        read.upper.as_ref()
    }

    /// Remote: the next window is read on the reading stream while a batch
    /// is written on the writing one, once the guard they share is known
    /// (so it was read before either).
    fn read_alongside(&self) -> bool {
        self.layout
            .remote
            .as_ref()
            .is_some_and(RemoteReads::has_guard)
    }

    /// A window read under a guard that a batch since found changed would
    /// fail its own: it is read again first.
    fn still_current(&self, read: &Judging) -> bool {
        match (&self.layout.remote, read.read_at) {
            (Some(remote), ReadAt::Remote(seen)) => remote.guard_holds(seen),
            _ => true,
        }
    }

    /// Writes a judged window and moves the checkpoint, in one
    /// transaction. If another connection committed since the window was
    /// read, the window is read and judged again inside the transaction,
    /// so an older row never overwrites a newer write.
    async fn work(&self, pass: Pass<'_, '_>, after: Option<&Key>, read: Judging) -> Result<Step> {
        let Pass {
            conn,
            layout,
            writer,
            rejected,
            observer,
            ..
        } = pass;
        let findings = joined(read.findings).await;
        let findings = match (&layout.remote, read.read_at) {
            (Some(remote), ReadAt::Remote(seen)) => {
                // One request: the batch, guarded by the stream's
                // data_version, as one transaction. If another connection
                // committed since the window was read, or a row is
                // refused, it is made again the slow way below.
                writer.begin_deferred();
                if layout.legacy_unique {
                    // The guard holds the legacy rows as read: each row's
                    // other columns are copied there on the server.
                    writer.copy_columns_from_legacy();
                }
                // Quarantined rows are told once the batch is committed.
                let told = Withheld::default();
                let applied = apply(
                    with_rejections(findings, rejected),
                    writer,
                    Quarantine::Always,
                    &told,
                )
                .await?;
                if let Some(k) = &read.checkpoint {
                    writer.checkpoint(k).await?;
                }
                // The last window's batch marks the copy complete: no
                // request of its own after it.
                let completed = read.upper.is_none();
                if completed {
                    writer.complete_copy().await?;
                }
                let guard = Statement::new(
                    fail_unless("(SELECT data_version FROM pragma_data_version) = ?1"),
                    vec![libsql::Value::Integer(seen.data_version)],
                );
                let sent = writer
                    .commit_deferred(&remote.pipeline, seen.stream, vec![guard])
                    .await;
                if sent.is_err() {
                    // Whatever follows commits on another connection, or
                    // the stream is gone: windows read the guard again.
                    remote.forget_guard();
                }
                match sent {
                    Ok(()) => {
                        told.tell(observer);
                        return Ok(Step {
                            upper: read.upper,
                            rows: read.rows,
                            already: applied.already,
                            removed: applied.removed,
                            read_again: false,
                            completed,
                        });
                    }
                    Err(Deferred::Guarded) => {
                        let work = (&mut *writer, &mut *rejected, observer);
                        let span = (after, read.upper.as_ref(), read.checkpoint.as_ref());
                        let again = read_again_locked(conn, layout, remote, work, span, read.rows);
                        if let Some(step) = again.await? {
                            return Ok(step);
                        }
                        None
                    }
                    Err(Deferred::Refused) => None,
                    Err(Deferred::LockLost) => {
                        return Err(MigrateError::LockLost {
                            holder: super::lock::current_holder(conn).await?,
                        })
                    }
                    Err(Deferred::Failed(e)) => return Err(e),
                }
            }
            _ => Some(findings),
        };
        writer.begin().await?;
        let (findings, read_again) = match findings {
            Some(f) if read.read_at.unchanged_on(conn).await? => (f, false),
            _ => {
                let window = layout
                    .exact_window(conn, after, read.upper.as_ref())
                    .await?;
                (judge(window), true)
            }
        };
        let findings = with_rejections(findings, rejected);
        let applied = apply(findings, writer, Quarantine::Always, observer).await?;
        if let Some(k) = &read.checkpoint {
            writer.checkpoint(k).await?;
        }
        writer.commit().await?;
        Ok(Step {
            upper: read.upper,
            rows: read.rows,
            already: applied.already,
            removed: applied.removed,
            read_again,
            completed: false,
        })
    }
}

/// A batch whose guard failed (another connection committed since its
/// window was read), made again under the write lock on the writing
/// stream in two requests ([`crate::connect::pipeline::Held`]): `BEGIN
/// IMMEDIATE` and the window read again; then the writes, the checkpoint,
/// the lock's refresh and `COMMIT`. Made through the `libsql` connection
/// instead, it took a request per statement: with an application writing
/// through the whole copy, nearly every batch, 6–10× slower. `None`: made
/// the slow way after all (a row refused, which that way names; an answer
/// too large for the server); nothing of this attempt was kept.
async fn read_again_locked(
    conn: &Connection,
    layout: &Layout,
    remote: &RemoteReads,
    (writer, rejected, observer): (&mut BatchWriter<'_>, &mut Rejected, &dyn Observer),
    (after, upper, checkpoint): (Option<&Key>, Option<&Key>, Option<&Key>),
    rows: u64,
) -> Result<Option<Step>> {
    let reads = layout.range_statements(after, upper);
    let context = "reading a window again under the write lock";
    let Some((held, window)) =
        locked::begin(remote, layout, reads, upper.cloned(), context).await?
    else {
        return Ok(None);
    };
    writer.begin_deferred();
    if layout.legacy_unique {
        // The window was read in this transaction, under the write lock.
        writer.copy_columns_from_legacy();
    }
    let told = Withheld::default();
    let prepared = async {
        let findings = with_rejections(judge(window), rejected);
        let applied = apply(findings, writer, Quarantine::Always, &told).await?;
        if let Some(k) = checkpoint {
            writer.checkpoint(k).await?;
        }
        Ok::<_, MigrateError>(Some((applied, Vec::new())))
    }
    .await;
    let settled = locked::settle(conn, writer, held, prepared, (told, observer));
    let Some(applied) = settled.await? else {
        return Ok(None);
    };
    Ok(Some(Step {
        upper: upper.cloned(),
        rows,
        already: applied.already,
        removed: applied.removed,
        read_again: true,
        completed: false,
    }))
}

/// A judging thread's findings (its panic, if it panicked, goes on here).
pub(crate) async fn joined<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Copies every legacy row after `start` into its target table.
pub async fn copy(
    mut pass: Pass<'_, '_>,
    start: Option<Key>,
    appended: &mut super::page_cache::AppendedPages,
) -> Result<CopyOutcome> {
    let (conn, layout, limits, max_retries, observer) = (
        pass.conn,
        pass.layout,
        pass.limits,
        pass.max_retries,
        pass.observer,
    );
    let began = Instant::now();
    let mut outcome = CopyOutcome {
        written: BTreeMap::new(),
        already: BTreeMap::new(),
        removed: 0,
        rows_seen: 0,
        flow: Flow::Finished,
        seconds: 0.0,
    };
    if let Some(remote) = &layout.remote {
        remote.start_pass();
    }
    let mut after = start;
    let mut windows = Windows::new(CopyWindows { conn, layout }, limits);
    // Requests to a remote server's pipeline, counted per batch.
    let requests = || layout.remote.as_ref().map(|r| r.pipeline.requests());
    let mut requests_before = requests();
    // Over the network the count goes beside the first window (a local
    // count is quick, and the connection is the windows' own).
    let counting = count_to_copy(conn, layout, after.as_ref(), max_retries);
    let (total, mut first) = match layout.remote.is_some() && !observer.stop_requested() {
        true => {
            let batch_began = Instant::now();
            let (total, first) = tokio::join!(counting, windows.next(&mut pass, after.as_ref()));
            (total?, Some((first, batch_began)))
        }
        false => (counting.await?, None),
    };
    observer.phase_started(Phase::Copy, total);
    let mut completed = false;
    loop {
        let (next, batch_began) = match first.take() {
            Some(first) => first,
            None => {
                if observer.stop_requested() {
                    outcome.flow = Flow::Stopped;
                    break;
                }
                let batch_began = Instant::now();
                (windows.next(&mut pass, after.as_ref()).await, batch_began)
            }
        };
        let Some((step, attempt)) = next? else {
            break;
        };
        for (table, n) in step.already {
            *outcome.already.entry(table.to_string()).or_default() += n;
        }
        outcome.removed += step.removed;
        outcome.rows_seen += step.rows;
        appended.release(outcome.rows_seen);
        let written = pass.writer.written_per_table();
        let requests_now = requests();
        let batch_requests = requests_now
            .zip(requests_before)
            .map(|(now, before)| now - before);
        requests_before = requests_now;
        tracing::debug!(
            target: "memory_storage_turso::batch",
            phase = "copy",
            rows = step.rows,
            rows_done = outcome.rows_seen,
            rows_total = total,
            written = written.values().sum::<u64>(),
            removed = step.removed,
            retries = attempt,
            requests = batch_requests,
            read_again = step.read_again,
            checkpoint = %step.upper.as_ref().map(|k| crate::text::shown(&k.to_string()).into_owned()).unwrap_or_else(|| "end".into()),
            millis = batch_began.elapsed().as_millis() as u64,
            "batch committed"
        );
        observer.written(&written);
        observer.progress(Phase::Copy, outcome.rows_seen);
        completed = step.completed;
        match step.upper {
            Some(u) => after = Some(u),
            None => break,
        }
    }
    if layout.remote.is_some() {
        crate::db::renew_idle_stream(conn).await;
    }
    if outcome.flow == Flow::Finished && !completed {
        crate::db::with_retries(max_retries, || mark_copy_completed(conn)).await?;
    }
    outcome.written = pass.writer.written_per_table();
    outcome.seconds = began.elapsed().as_secs_f64();
    observer.phase_finished(Phase::Copy, began.elapsed());
    Ok(outcome)
}
