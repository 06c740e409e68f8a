//! How progress leaves the library: a small observer trait the binaries
//! render (the library itself never prints).

use std::time::{Duration, Instant};

use super::error::Result;
use super::report::PhaseTiming;
use crate::decode::BadRowReason;

/// A phase of a migration run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Copying the legacy table to `embeddings_backup`.
    Backup,
    /// The dry run's read of every row.
    Plan,
    /// Copying legacy rows into the target tables.
    Copy,
    /// Measuring candidate index settings on a sample of the rows.
    IndexPlan,
    /// Building the DiskANN indexes (and the scan indexes built in
    /// batches, online).
    VectorIndex,
    /// Measuring the recall of the indexes built to a plan.
    IndexRecall,
    /// Comparing every migrated row with its source.
    Verify,
    /// Dropping the legacy table (after re-checking it).
    Drop,
}

impl Phase {
    /// Lower-case name, as in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Backup => "backup",
            Phase::Plan => "plan",
            Phase::Copy => "copy",
            Phase::IndexPlan => "index_plan",
            Phase::VectorIndex => "vector_index",
            Phase::IndexRecall => "index_recall",
            Phase::Verify => "verify",
            Phase::Drop => "drop",
        }
    }
}

/// Receives progress events. Every method has an empty default.
pub trait Observer: Send + Sync {
    /// A phase begins; `total` is the number of units (rows, or indexes for
    /// the vector-index phase) it expects to process.
    fn phase_started(&self, _phase: Phase, _total: u64) {}
    /// `done` units of the phase are finished (cumulative).
    fn progress(&self, _phase: Phase, _done: u64) {}
    /// The phase's own estimate of the time it has left, sent before the
    /// `progress` it goes with, where a rate of units per second would
    /// mislead (the vector-index phase: an insert costs more as the index
    /// grows).
    fn time_left(&self, _phase: Phase, _left: Duration) {}
    /// After each committed copy batch: rows written so far, per target
    /// table.
    fn written(&self, _per_table: &std::collections::BTreeMap<String, u64>) {}
    /// A legacy row could not be migrated (reported once per run).
    fn row_quarantined(&self, _embedding_id: &str, _reason: &BadRowReason) {}
    /// A phase ended after `elapsed`.
    fn phase_finished(&self, _phase: Phase, _elapsed: Duration) {}
    /// Asked between batches: `true` ends the run after the batch in flight
    /// is committed, leaving a checkpoint to resume from.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// What a deferred batch would tell the observer, held until it commits.
#[derive(Default)]
pub(crate) struct Withheld(std::sync::Mutex<Vec<(String, BadRowReason)>>);

impl Withheld {
    /// Tells `observer` what was held back (the batch committed).
    pub(crate) fn tell(self, observer: &dyn Observer) {
        for (key, reason) in self.0.into_inner().unwrap_or_default() {
            observer.row_quarantined(&key, &reason);
        }
    }
}

impl Observer for Withheld {
    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        if let Ok(mut held) = self.0.lock() {
            held.push((embedding_id.to_string(), reason.clone()));
        }
    }
}

/// Runs one phase that has no progress of its own between its start and
/// its end (`units` of work, told to `observer`), and times it.
pub(super) async fn timed<T>(
    observer: &dyn Observer,
    phase: Phase,
    units: u64,
    body: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, PhaseTiming)> {
    let began = Instant::now();
    observer.phase_started(phase, units);
    let value = body.await?;
    observer.phase_finished(phase, began.elapsed());
    Ok((
        value,
        PhaseTiming {
            phase: phase.name().into(),
            seconds: began.elapsed().as_secs_f64(),
            units,
        },
    ))
}
