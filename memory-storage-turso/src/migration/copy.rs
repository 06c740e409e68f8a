//! The copy phase: windows from the checkpoint to the end of the legacy
//! table, one transaction per batch, the checkpoint moved in the same
//! transaction as the rows it describes.

use std::collections::BTreeMap;
use std::time::Instant;

use libsql::Connection;

use super::apply::{after_failure, apply, with_rejections, Quarantine};
use super::compare::judge;
use super::observer::Phase;
use super::pass::Pass;
use super::row::Key;
use super::scan::{Layout, Limits};
use super::write::{data_version, mark_copy_completed};
use crate::error::Result;
use crate::schema::LEGACY_TABLE;

/// What the copy phase did.
#[derive(Debug, Default)]
pub struct CopyOutcome {
    pub written: BTreeMap<String, u64>,
    pub already: BTreeMap<String, u64>,
    pub removed: u64,
    pub rows_seen: u64,
    pub interrupted: bool,
    pub seconds: f64,
}

/// Legacy rows after `after`, for progress totals.
pub async fn count_after(conn: &Connection, after: Option<&Key>) -> Result<u64> {
    let what = || format!("counting the rows of {LEGACY_TABLE}");
    let n = match after {
        Some(k) => {
            let sql = format!("SELECT count(*) FROM {LEGACY_TABLE} WHERE embedding_id > ?1");
            crate::db::query_i64(conn, &sql, vec![k.0.clone()], what).await?
        }
        None => {
            let sql = format!("SELECT count(*) FROM {LEGACY_TABLE}");
            crate::db::query_i64(conn, &sql, vec![], what).await?
        }
    };
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// One window: read, judge, write, move the checkpoint, commit.
struct Step {
    upper: Option<Key>,
    rows: u64,
    already: BTreeMap<&'static str, u64>,
    removed: u64,
}

/// A window read and judged, ready to be written.
struct Judged {
    /// `data_version` before the window was read.
    data_version: i64,
    upper: Option<Key>,
    checkpoint: Option<Key>,
    rows: u64,
    findings: Vec<super::compare::Finding>,
    empty: bool,
}

/// Judges (decodes and compares) a window on a blocking thread, so the
/// caller can write the previous window meanwhile.
fn judge_in_background(
    window: super::scan::Window,
    data_version: i64,
) -> tokio::task::JoinHandle<Judged> {
    tokio::task::spawn_blocking(move || {
        let empty = window.is_empty();
        let upper = window.upper.clone();
        let checkpoint = upper
            .clone()
            .or_else(|| window.legacy.last().map(|r| r.key.clone()));
        let rows = window.legacy.len() as u64;
        Judged {
            data_version,
            upper,
            checkpoint,
            rows,
            findings: judge(window),
            empty,
        }
    })
}

async fn joined(handle: tokio::task::JoinHandle<Judged>) -> Judged {
    match handle.await {
        Ok(j) => j,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Reads the window after `after` (its `data_version` first).
async fn read_window(
    conn: &Connection,
    layout: &Layout,
    after: Option<&Key>,
    limits: Limits,
) -> Result<(super::scan::Window, i64)> {
    let version = data_version(conn).await?;
    Ok((layout.next_window(conn, after, limits).await?, version))
}

/// Writes a judged window and moves the checkpoint, in one transaction. If
/// another connection committed since the window was read, the window is
/// read and judged again inside the transaction, so an older row never
/// overwrites a newer write.
async fn write_judged(pass: Pass<'_, '_>, after: Option<&Key>, judged: Judged) -> Result<Step> {
    let Pass {
        conn,
        layout,
        writer,
        rejected,
        observer,
        ..
    } = pass;
    writer.begin().await?;
    let findings = if data_version(conn).await? == judged.data_version {
        judged.findings
    } else {
        let window = layout
            .exact_window(conn, after, judged.upper.as_ref())
            .await?;
        judge(window)
    };
    let findings = with_rejections(findings, rejected);
    let applied = apply(findings, writer, Quarantine::Always, observer).await?;
    if let Some(k) = &judged.checkpoint {
        writer.checkpoint(k).await?;
    }
    writer.commit().await?;
    Ok(Step {
        upper: judged.upper,
        rows: judged.rows,
        already: applied.already,
        removed: applied.removed,
    })
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
    let total = count_after(conn, start.as_ref()).await?;
    observer.phase_started(Phase::Copy, total);
    let mut outcome = CopyOutcome::default();
    let mut after = start;
    let mut ahead: Option<tokio::task::JoinHandle<Judged>> = None;
    loop {
        if observer.stop_requested() {
            outcome.interrupted = true;
            break;
        }
        let batch_began = Instant::now();
        let mut attempt = 0;
        let step = loop {
            let judged = match ahead.take() {
                Some(handle) => joined(handle).await,
                None => match read_window(conn, layout, after.as_ref(), limits).await {
                    Ok((window, version)) => joined(judge_in_background(window, version)).await,
                    Err(e) => {
                        after_failure(e, &mut attempt, max_retries, pass.rejected).await?;
                        continue;
                    }
                },
            };
            if judged.empty {
                break None;
            }
            // Read the next window now and judge it while this one is
            // written (the ranges are disjoint, so the order is safe). A
            // failed read is simply not prefetched: the next turn reads
            // again, with retries.
            if let Some(upper) = &judged.upper {
                if let Ok((window, version)) = read_window(conn, layout, Some(upper), limits).await
                {
                    ahead = Some(judge_in_background(window, version));
                }
            }
            match write_judged(pass.reborrow(), after.as_ref(), judged).await {
                Ok(step) => break Some(step),
                Err(e) => {
                    pass.writer.rollback().await;
                    ahead = None;
                    after_failure(e, &mut attempt, max_retries, pass.rejected).await?;
                }
            }
        };
        let Some(step) = step else {
            break;
        };
        for (table, n) in step.already {
            *outcome.already.entry(table.to_string()).or_default() += n;
        }
        outcome.removed += step.removed;
        outcome.rows_seen += step.rows;
        appended.release(outcome.rows_seen);
        let written = pass.writer.written_per_table();
        tracing::debug!(
            target: "memory_storage_turso::batch",
            phase = "copy",
            rows = step.rows,
            rows_done = outcome.rows_seen,
            rows_total = total,
            written = written.values().sum::<u64>(),
            removed = step.removed,
            retries = attempt,
            checkpoint = %step.upper.as_ref().map(|k| crate::text::shown(&k.to_string()).into_owned()).unwrap_or_else(|| "end".into()),
            millis = batch_began.elapsed().as_millis() as u64,
            "batch committed"
        );
        observer.written(&written);
        observer.progress(Phase::Copy, outcome.rows_seen);
        match step.upper {
            Some(u) => after = Some(u),
            None => break,
        }
    }
    if !outcome.interrupted {
        super::retry::with_retries(max_retries, || mark_copy_completed(conn)).await?;
    }
    outcome.written = pass.writer.written_per_table();
    outcome.seconds = began.elapsed().as_secs_f64();
    observer.phase_finished(Phase::Copy, began.elapsed());
    Ok(outcome)
}
