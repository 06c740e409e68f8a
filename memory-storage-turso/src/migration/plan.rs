//! The dry run: every legacy row read, decoded and compared with the target
//! tables, nothing written.

use super::error::Result;
use std::time::Instant;

use libsql::Connection;

use std::collections::BTreeMap;

use super::compare::{judge, Finding};
use super::index_plan::{self, IndexMode, IndexPlanning, Reservoir};
use super::observer::{Observer, Phase};
use super::report::{MigrationReport, PhaseTiming};
use super::scan::{Layout, Limits};
use crate::decode::row::{value_size, Key};
use crate::schema::TargetTable;

/// Bytes a DiskANN index takes per row of a native table with libSQL's
/// default index options: each node block holds the vector and its
/// neighbours' vectors.
fn vector_index_bytes(table: TargetTable) -> u64 {
    match table.native_dimension() {
        Some(d) => d as u64 * 4 * DISKANN_BYTES_PER_VECTOR_BYTE,
        None => 0,
    }
}

/// How many bytes libSQL's DiskANN index stores per byte of vector, with
/// default options. Measured with `PRAGMA page_count` around `CREATE INDEX`
/// on 2,000 rows of 384, 600 of 1536 and 300 of 3072 dimensions: 53.4,
/// 52.3 and 52.2 (and 17.5 with `compress_neighbors=float8`).
const DISKANN_BYTES_PER_VECTOR_BYTE: u64 = 53;

/// Page and record overhead per row and per index entry (measured on
/// SQLite's b-tree format: cell headers, rowids, page slack).
const ROW_OVERHEAD: u64 = 48;

fn estimate(v: &super::compare::ValidRow) -> u64 {
    let r = &v.row;
    let key = value_size(&r.key.0) as u64;
    let row = key
        + value_size(&r.item_id) as u64
        + value_size(&r.item_type) as u64
        + value_size(&r.embedding_data) as u64
        + v.vector.len() as u64
        + value_size(&r.model) as u64
        + 16;
    let pk_index = key + 8;
    let item_index = value_size(&r.item_id) as u64 + value_size(&r.item_type) as u64 + 8;
    row + pk_index + item_index + 3 * ROW_OVERHEAD
}

/// Bytes a row stores before its vector in its target table.
fn leading_bytes(r: &crate::decode::row::EmbeddingRow) -> usize {
    value_size(&r.key.0)
        + value_size(&r.item_id)
        + value_size(&r.item_type)
        + value_size(&r.embedding_data)
}

/// Reads every row and fills the report's plan.
pub async fn plan(
    conn: &Connection,
    layout: &Layout,
    limits: Limits,
    planning: &IndexPlanning,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    let began = Instant::now();
    observer.phase_started(Phase::Plan, report.source_rows);
    let mut planned = std::collections::BTreeMap::new();
    for t in TargetTable::ALL {
        planned.insert(t.name().to_string(), 0u64);
    }
    let mut sample: Vec<super::compare::ValidRow> = Vec::new();
    let mut native_rows: std::collections::BTreeMap<TargetTable, u64> = Default::default();
    let mut extra = 0u64;
    let mut index_extra = 0u64;
    let mut seen = 0u64;
    // The index planner's sample of each native table: what the table will
    // hold (rows already there included).
    let planned_mode = planning.mode == IndexMode::Planned;
    let mut reservoirs: BTreeMap<TargetTable, Reservoir> = BTreeMap::new();
    let mut after: Option<Key> = None;
    loop {
        if observer.stop_requested() {
            // Stopped by the operator: what was read is reported, the
            // index plan is not made.
            report.interrupted = true;
            break;
        }
        let window = layout.next_window(conn, after.as_ref(), limits).await?;
        if window.is_empty() {
            break;
        }
        let upper = window.upper.clone();
        for finding in judge(window) {
            match finding {
                Finding::Valid(v) if v.is_conflict() => {
                    seen += 1;
                    for c in v.conflicts() {
                        report.add_conflict(c);
                    }
                    // The target row wins unless `--on-conflict legacy`.
                    if report.on_conflict == super::apply::ConflictPolicy::Legacy {
                        *planned.entry(v.table.name().to_string()).or_default() += 1;
                    }
                }
                Finding::Valid(v) => {
                    seen += 1;
                    report.note_unsearchable(&v.row.key, v.table, &v.vector);
                    if planned_mode && v.table.is_native() {
                        let dimension = v.table.native_dimension().unwrap_or(0);
                        reservoirs
                            .entry(v.table)
                            .or_insert_with(|| {
                                Reservoir::with_neighbourhoods(index_plan::reservoir_size(
                                    planning, dimension,
                                ))
                            })
                            .offer(&v.vector, leading_bytes(&v.row));
                    }
                    if v.is_done() {
                        *report
                            .already_migrated
                            .entry(v.table.name().to_string())
                            .or_default() += 1;
                    } else {
                        *planned.entry(v.table.name().to_string()).or_default() += 1;
                        if v.in_place.is_none() {
                            extra += estimate(&v);
                            index_extra += vector_index_bytes(v.table);
                        }
                        *native_rows.entry(v.table).or_default() += 1;
                        if sample.len() < super::estimate::SAMPLE_ROWS {
                            sample.push(v);
                        }
                    }
                }
                Finding::Bad { row, reason, .. } => {
                    seen += 1;
                    observer.row_quarantined(&row.key.to_string(), &reason);
                    report.add_quarantined(row.key.to_string(), reason.code(), reason.to_string());
                }
                Finding::Orphan { .. } | Finding::Stale { .. } => {}
            }
        }
        observer.progress(Phase::Plan, seen);
        match upper {
            Some(u) => after = Some(u),
            None => break,
        }
    }
    let read_secs = began.elapsed().as_secs_f64();
    let to_copy: u64 = planned.values().sum();
    if to_copy > 0 {
        if let Some(per_row) = super::estimate::write_seconds_per_row(sample).await? {
            report.estimated_copy_seconds = Some(read_secs + per_row * to_copy as f64);
        }
        report.estimated_index_seconds = Some(super::estimate::index_seconds(&native_rows).await?);
    }
    report.planned = Some(planned);
    if planned_mode && !report.interrupted {
        let began = Instant::now();
        observer.phase_started(Phase::IndexPlan, reservoirs.len() as u64);
        report.index_plan = index_plan::plan(reservoirs, planning, observer).await?;
        // Stopped by the operator: no plan, and the run says so.
        report.interrupted |= report.index_plan.is_none();
        observer.phase_finished(Phase::IndexPlan, began.elapsed());
    }
    if layout.remote.is_some() {
        // Idle through the pipeline's reads and the local plan.
        crate::db::renew_idle_stream(conn).await;
    }
    report.estimated_extra_bytes = Some(super::estimate::with_page_fill(extra));
    report.estimated_vector_index_bytes = Some(index_extra);
    observer.phase_finished(Phase::Plan, began.elapsed());
    report.phases.push(PhaseTiming {
        phase: Phase::Plan.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: seen,
    });
    Ok(())
}
