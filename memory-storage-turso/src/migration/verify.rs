//! Verification: every legacy row compared with the target tables, column
//! by column and the vector bit for bit; every target row accounted for.
//! In an execute run, what can be repaired is repaired and looked at again.

use std::time::Instant;

use libsql::Connection;

use xxhash_rust::xxh3::Xxh3;

use super::apply::{apply, needs_writes, with_rejections, Quarantine, Rejected};
use super::backup::{hash_row, TableDigest};
use super::compare::{judge, Finding, Ownership};
use super::copy::joined;
use super::error::{MigrateError, Result};
use super::locked;
use super::observer::{Observer, Phase, Withheld};
use super::pass::{Flow, Pass};
use super::report::{Discrepancy, DiscrepancyKind, MigrationReport, Verification};
use super::scan::{Layout, Limits, ReadAt, RemoteReads, Window};
use super::windows::{WindowWork, Windows};
use super::write::BatchWriter;
use crate::decode::row::Key;
use crate::schema::TargetTable;

/// Whether the verification may write repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Read only (`--verify`, and the dry run).
    No,
    /// Write missing or different rows, then compare the window again.
    Yes,
}

fn names(tables: &[TargetTable]) -> String {
    tables
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds one window's findings to the verification and the report.
fn tally(findings: &[Finding], v: &mut Verification, report: &mut MigrationReport) {
    let limit = report.listed_limit;
    for f in findings {
        match f {
            Finding::Valid(row) if row.is_conflict() => {
                // Not the migration's row: reported, never a failure.
                v.rows_checked += 1;
                for c in row.conflicts() {
                    report.add_conflict(c);
                }
            }
            Finding::Valid(row) => {
                report.note_unsearchable(&row.row.key, row.table, &row.vector);
                v.rows_checked += 1;
                v.tables
                    .entry(row.table.name().to_string())
                    .or_default()
                    .expected += 1;
                if row.in_place.is_some() {
                    v.rows_compared += 1;
                }
                let id = row.row.key.to_string();
                match &row.in_place {
                    None => v.add(
                        limit,
                        &row.row.key,
                        Discrepancy {
                            embedding_id: id.clone(),
                            kind: DiscrepancyKind::Missing,
                            table: row.table.name().into(),
                            detail: format!("the row is not in {}", row.table),
                        },
                    ),
                    Some(cols) if !cols.is_empty() => v.add(
                        limit,
                        &row.row.key,
                        Discrepancy {
                            embedding_id: id.clone(),
                            kind: DiscrepancyKind::Differs,
                            table: row.table.name().into(),
                            detail: format!(
                                "this migration's copy differs from its source in {}",
                                cols.join(", ")
                            ),
                        },
                    ),
                    Some(_) => {}
                }
                if !row.misplaced.is_empty() {
                    v.add(
                        limit,
                        &row.row.key,
                        Discrepancy {
                            embedding_id: id,
                            kind: DiscrepancyKind::Misplaced,
                            table: names(&row.misplaced),
                            detail: format!(
                                "dimension {} belongs in {}, but {} also holds it",
                                row.vector.len() / 4,
                                row.table,
                                names(&row.misplaced)
                            ),
                        },
                    );
                }
            }
            Finding::Bad {
                row,
                reason,
                ours_in,
                ..
            } => {
                v.rows_checked += 1;
                let id = row.key.to_string();
                report.add_quarantined(id.clone(), reason.code(), reason.to_string());
                // A copy the migration does not own is the application's:
                // kept, not a discrepancy.
                if !ours_in.is_empty() {
                    v.add(
                        limit,
                        &row.key,
                        Discrepancy {
                            embedding_id: id,
                            kind: DiscrepancyKind::BadRowInTarget,
                            table: names(ours_in),
                            detail: format!(
                                "the legacy row cannot be migrated ({reason}), yet {} holds this migration's older copy of it (--execute removes it)",
                                names(ours_in)
                            ),
                        },
                    );
                }
            }
            Finding::Orphan { tables, .. } if super::compare::is_application_row(tables) => {
                v.application_rows += 1;
            }
            Finding::Orphan { key, tables } => {
                let list: Vec<TargetTable> = tables.iter().map(|h| h.table).collect();
                let ours = tables.iter().any(|h| h.owner == Ownership::Ours);
                let dims: Vec<String> = tables
                    .iter()
                    .filter(|h| {
                        !matches!(h.row.dimension, libsql::Value::Integer(d) if h.table.holds(d))
                    })
                    .map(|h| {
                        format!(
                            " ({} holds it with a dimension that does not belong there)",
                            h.table
                        )
                    })
                    .collect();
                v.add(
                    limit,
                    key,
                    Discrepancy {
                        embedding_id: key.to_string(),
                        kind: DiscrepancyKind::Orphan,
                        table: names(&list),
                        detail: format!(
                            "{} holds a row with no source row in the legacy table{}{}",
                            names(&list),
                            dims.concat(),
                            if ours {
                                " (this migration wrote it and its legacy row was deleted since: --execute removes it)"
                            } else {
                                " (not written by this migration: left alone)"
                            }
                        ),
                    },
                );
            }
            Finding::Stale { .. } => {}
        }
    }
}

fn target_counts(window: &super::scan::Window) -> Vec<(TargetTable, u64)> {
    window
        .targets
        .iter()
        .map(|(t, rows)| (*t, rows.len() as u64))
        .collect()
}

/// One verified window.
struct Checked {
    upper: Option<Key>,
    /// Legacy rows in the window (rows sharing a key each count).
    legacy_rows: u64,
    counts: Vec<(TargetTable, u64)>,
    findings: Vec<Finding>,
    repaired: u64,
    /// The legacy digest after this window's rows.
    digest: Xxh3,
}

/// A window read, its legacy rows digested, and its judging under way on
/// a blocking thread.
struct Read {
    /// The `data_version` the window was read at.
    read_at: ReadAt,
    legacy_rows: u64,
    upper: Option<Key>,
    counts: Vec<(TargetTable, u64)>,
    digest_before: Xxh3,
    digest_after: Xxh3,
    judging: Option<tokio::task::JoinHandle<Vec<Finding>>>,
}

/// The verification's work on a window: compare, repair where allowed,
/// compare again.
struct VerifyWindows<'a> {
    conn: &'a Connection,
    layout: &'a Layout,
    repair: Repair,
    /// The legacy digest up to the last window worked on.
    digest: Xxh3,
}

impl WindowWork for VerifyWindows<'_> {
    type Read = Read;
    type Done = Checked;

    async fn read(
        &self,
        after: Option<&Key>,
        before: Option<&Read>,
        limits: Limits,
    ) -> Result<Read> {
        let digest = before.map_or(&self.digest, |b| &b.digest_after);
        let (window, read_at) = self
            .layout
            .next_window_versioned(self.conn, after, limits)
            .await?;
        let mut digest_after = digest.clone();
        for r in &window.legacy {
            hash_row(&mut digest_after, r);
        }
        Ok(Read {
            read_at,
            legacy_rows: window.legacy.len() as u64,
            upper: window.upper.clone(),
            counts: target_counts(&window),
            digest_before: digest.clone(),
            digest_after,
            judging: (!window.is_empty())
                .then(|| tokio::task::spawn_blocking(move || judge(window))),
        })
    }

    fn is_end(read: &Read) -> bool {
        read.judging.is_none()
    }

    fn upper(read: &Read) -> Option<&Key> {
        read.upper.as_ref()
    }

    /// Takes a read window's findings, repairs what the pass allows, and
    /// looks at a repaired window again.
    async fn work(&self, pass: Pass<'_, '_>, after: Option<&Key>, read: Read) -> Result<Checked> {
        let Pass {
            conn,
            layout,
            writer,
            rejected,
            observer,
            ..
        } = pass;
        let Read {
            read_at,
            mut legacy_rows,
            upper,
            mut counts,
            digest_before,
            mut digest_after,
            judging,
        } = read;
        let Some(judging) = judging else {
            unreachable!("the end of the table is never worked on")
        };
        let mut findings = with_rejections(joined(judging).await, rejected);
        let mut repaired = 0;
        if self.repair == Repair::Yes && needs_writes(&findings, writer.policy()) {
            let span = (after, upper.as_ref());
            let held = match &layout.remote {
                Some(remote) => {
                    let work = (&mut *writer, &mut *rejected, observer);
                    repair_locked(conn, layout, remote, work, span).await?
                }
                None => None,
            };
            let window = match held {
                Some((applied, window)) => {
                    repaired = applied;
                    window
                }
                None => {
                    writer.begin().await?;
                    // Someone committed since the read: repair from what is
                    // there now, never from the older read.
                    if !read_at.unchanged_on(conn).await? {
                        let window = layout.exact_window(conn, after, upper.as_ref()).await?;
                        findings = with_rejections(judge(window), rejected);
                    }
                    let applied = apply(findings, writer, Quarantine::Missing, observer).await?;
                    writer.commit().await?;
                    repaired = applied.written + applied.removed;
                    layout.exact_window(conn, after, upper.as_ref()).await?
                }
            };
            counts = target_counts(&window);
            legacy_rows = window.legacy.len() as u64;
            digest_after = digest_before;
            for r in &window.legacy {
                hash_row(&mut digest_after, r);
            }
            findings = with_rejections(judge(window), rejected);
        }
        Ok(Checked {
            upper,
            legacy_rows,
            counts,
            findings,
            repaired,
            digest: digest_after,
        })
    }
}

/// A window repaired under the write lock on a remote database's writing
/// stream, in three requests ([`locked`]): `BEGIN IMMEDIATE` and the window
/// read again; the repairs and the window read once more; the lock's
/// refresh and `COMMIT`. Through the `libsql` connection a repair took
/// about twenty. Returns the rows repaired and the window as committed
/// (`None`: made that way after all; nothing of this attempt was kept).
async fn repair_locked(
    conn: &libsql::Connection,
    layout: &Layout,
    remote: &RemoteReads,
    (writer, rejected, observer): (&mut BatchWriter<'_>, &mut Rejected, &dyn Observer),
    (after, upper): (Option<&Key>, Option<&Key>),
) -> Result<Option<(u64, Window)>> {
    let context = "repairing a window under the write lock";
    let reads = || layout.range_statements(after, upper);
    let Some((mut held, window)) =
        locked::begin(remote, layout, reads(), upper.cloned(), context).await?
    else {
        return Ok(None);
    };
    writer.begin_deferred();
    let told = Withheld::default();
    let repaired = async {
        let findings = with_rejections(judge(window), rejected);
        let applied = apply(findings, writer, Quarantine::Missing, &told).await?;
        let writes = writer.take_deferred().await?;
        let after_writes =
            locked::write_and_read(&mut held, layout, writes, reads(), upper.cloned(), context)
                .await?;
        let repaired = applied.written + applied.removed;
        Ok::<_, MigrateError>(after_writes.map(|w| ((repaired, w), Vec::new())))
    }
    .await;
    locked::settle(conn, writer, held, repaired, (told, observer)).await
}

/// Verifies every row, repairing where `repair` allows, and records the
/// result (and the bad rows) in `report`, with a digest of the legacy
/// table as this pass saw it.
pub async fn verify(
    mut pass: Pass<'_, '_>,
    repair: Repair,
    report: &mut MigrationReport,
) -> Result<Flow> {
    let (conn, layout, limits, observer) = (pass.conn, pass.layout, pass.limits, pass.observer);
    let began = Instant::now();
    observer.phase_started(Phase::Verify, report.source_rows);
    let mut v = Verification::default();
    for t in &layout.targets {
        v.tables.entry(t.name().to_string()).or_default();
    }
    if let Some(remote) = &layout.remote {
        remote.start_pass();
    }
    let written_before = pass.writer.written_per_table();
    let mut windows = Windows::new(
        VerifyWindows {
            conn,
            layout,
            repair,
            digest: Xxh3::new(),
        },
        limits,
    );
    let mut digest_rows = 0u64;
    let mut after: Option<Key> = None;
    let mut seen = 0u64;
    let mut flow = Flow::Finished;
    loop {
        if observer.stop_requested() {
            flow = Flow::Stopped;
            break;
        }
        let window_began = Instant::now();
        let Some((checked, attempt)) = windows.next(&mut pass, after.as_ref()).await? else {
            break;
        };
        windows.work.digest = checked.digest.clone();
        v.repaired += checked.repaired;
        let rows = checked
            .findings
            .iter()
            .filter(|f| matches!(f, Finding::Valid(_) | Finding::Bad { .. }))
            .count() as u64;
        seen += rows;
        digest_rows += checked.legacy_rows;
        for (t, n) in checked.counts {
            v.tables.entry(t.name().to_string()).or_default().actual += n;
        }
        let discrepancies_before = v.discrepancy_count;
        tally(&checked.findings, &mut v, report);
        tracing::debug!(
            target: "memory_storage_turso::batch",
            phase = "verify",
            rows,
            rows_done = seen,
            repaired = checked.repaired,
            discrepancies = v.discrepancy_count - discrepancies_before,
            retries = attempt,
            millis = window_began.elapsed().as_millis() as u64,
            "window verified"
        );
        observer.progress(Phase::Verify, seen);
        match checked.upper {
            Some(u) => after = Some(u),
            None => break,
        }
    }
    if repair == Repair::Yes {
        let written = pass.writer.written_per_table();
        for (t, n) in written {
            let before = written_before.get(&t).copied().unwrap_or(0);
            if n > before {
                let migrated = report.migrated.get_or_insert_with(Default::default);
                *migrated.entry(t).or_default() += n - before;
            }
        }
    }
    if layout.remote.is_some() {
        crate::db::renew_idle_stream(conn).await;
    }
    report.verification = Some(v);
    report.source_digest = Some(TableDigest {
        rows: digest_rows,
        checksum: format!("{:032x}", windows.work.digest.digest128()),
    });
    observer.phase_finished(Phase::Verify, began.elapsed());
    report.phases.push(super::report::PhaseTiming {
        phase: Phase::Verify.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: seen,
    });
    Ok(flow)
}
