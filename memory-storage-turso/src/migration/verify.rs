//! Verification: every legacy row compared with the target tables, column
//! by column and the vector bit for bit; every target row accounted for.
//! In an execute run, what can be repaired is repaired and looked at again.

use std::time::Instant;

use libsql::Connection;

use super::apply::{apply, needs_writes, Quarantine};
use super::compare::{judge, Finding};
use super::observer::{Observer, Phase};
use super::report::{Discrepancy, MigrationReport, Verification};
use super::row::Key;
use super::scan::{Layout, Limits};
use super::write::BatchWriter;
use crate::error::Result;
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
            Finding::Valid(row) => {
                v.rows_checked += 1;
                v.tables
                    .entry(row.table.name().to_string())
                    .or_default()
                    .expected += 1;
                let id = row.row.key.to_string();
                match &row.in_place {
                    None => v.add(
                        limit,
                        Discrepancy {
                            embedding_id: id.clone(),
                            kind: "missing".into(),
                            table: row.table.name().into(),
                            detail: format!("the row is not in {}", row.table),
                        },
                    ),
                    Some(cols) if !cols.is_empty() => v.add(
                        limit,
                        Discrepancy {
                            embedding_id: id.clone(),
                            kind: "differs".into(),
                            table: row.table.name().into(),
                            detail: format!("differs from its source in {}", cols.join(", ")),
                        },
                    ),
                    Some(_) => {}
                }
                if !row.misplaced.is_empty() {
                    v.add(
                        limit,
                        Discrepancy {
                            embedding_id: id,
                            kind: "misplaced".into(),
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
                in_targets,
                ..
            } => {
                v.rows_checked += 1;
                let id = row.key.to_string();
                report.add_quarantined(id.clone(), reason.code(), reason.to_string());
                if !in_targets.is_empty() {
                    v.add(
                        limit,
                        Discrepancy {
                            embedding_id: id,
                            kind: "bad_row_in_target".into(),
                            table: names(in_targets),
                            detail: format!(
                                "the legacy row cannot be migrated ({reason}), yet {} holds a copy of it",
                                names(in_targets)
                            ),
                        },
                    );
                }
            }
            Finding::Orphan { key, tables } => {
                let list: Vec<TargetTable> = tables.iter().map(|(t, _)| *t).collect();
                let dims: Vec<String> = tables
                    .iter()
                    .filter(
                        |(t, r)| !matches!(r.dimension, libsql::Value::Integer(d) if t.holds(d)),
                    )
                    .map(|(t, _)| {
                        format!(" ({t} holds it with a dimension that does not belong there)")
                    })
                    .collect();
                v.add(
                    limit,
                    Discrepancy {
                        embedding_id: key.to_string(),
                        kind: "orphan".into(),
                        table: names(&list),
                        detail: format!(
                            "{} holds a row with no source row in the legacy table{}",
                            names(&list),
                            dims.concat()
                        ),
                    },
                );
            }
            Finding::StaleQuarantine { .. } => {}
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

/// Verifies every row, repairing where `repair` allows, and records the
/// result (and the bad rows) in `report`.
pub async fn verify(
    conn: &Connection,
    layout: &Layout,
    limits: Limits,
    repair: Repair,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    let began = Instant::now();
    observer.phase_started(Phase::Verify, report.source_rows);
    let mut v = Verification::default();
    for t in &layout.targets {
        v.tables.entry(t.name().to_string()).or_default();
    }
    let mut writer = BatchWriter::new(conn);
    let mut after: Option<Key> = None;
    let mut seen = 0u64;
    loop {
        let window = layout.next_window(conn, after.as_ref(), limits).await?;
        if window.is_empty() {
            break;
        }
        let upper = window.upper.clone();
        let mut counts = target_counts(&window);
        let mut findings = judge(window);
        if repair == Repair::Yes && needs_writes(&findings) {
            writer.begin().await?;
            let result = async {
                let applied = apply(findings, &mut writer, Quarantine::Missing, observer).await?;
                writer.commit().await?;
                Ok::<_, crate::Error>(applied)
            }
            .await;
            match result {
                Ok(applied) => v.repaired += applied.written,
                Err(e) => {
                    writer.rollback().await;
                    return Err(e);
                }
            }
            let window = layout
                .exact_window(conn, after.as_ref(), upper.as_ref())
                .await?;
            counts = target_counts(&window);
            findings = judge(window);
        }
        seen += findings
            .iter()
            .filter(|f| matches!(f, Finding::Valid(_) | Finding::Bad { .. }))
            .count() as u64;
        for (t, n) in counts {
            v.tables.entry(t.name().to_string()).or_default().actual += n;
        }
        tally(&findings, &mut v, report);
        observer.progress(Phase::Verify, seen);
        match upper {
            Some(u) => after = Some(u),
            None => break,
        }
    }
    if repair == Repair::Yes {
        let written = writer.written_per_table();
        if !written.is_empty() {
            let migrated = report.migrated.get_or_insert_with(Default::default);
            for (t, n) in written {
                *migrated.entry(t).or_default() += n;
            }
        }
    }
    v.passed = v.discrepancy_count == 0;
    report.verification = Some(v);
    observer.phase_finished(Phase::Verify, began.elapsed());
    report.phases.push(super::report::PhaseTiming {
        phase: Phase::Verify.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: seen,
    });
    Ok(())
}
