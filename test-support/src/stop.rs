//! An observer that asks a run to stop, as Ctrl-C does: after a number of
//! committed copy or index batches.

use std::sync::atomic::{AtomicU64, Ordering};

use memory_storage_turso::migration::{Observer, Phase};

/// Asks the run to stop once `after` batches of a phase were committed.
pub struct StopAfter {
    phase: Phase,
    after: u64,
    seen: AtomicU64,
}

impl StopAfter {
    /// Stops after `batches` committed copy batches.
    pub fn batches(batches: u64) -> StopAfter {
        StopAfter {
            phase: Phase::Copy,
            after: batches,
            seen: AtomicU64::new(0),
        }
    }

    /// Stops after `batches` committed batches of the vector-index phase.
    pub fn index_batches(batches: u64) -> StopAfter {
        StopAfter {
            phase: Phase::VectorIndex,
            ..StopAfter::batches(batches)
        }
    }
}

impl Observer for StopAfter {
    fn progress(&self, phase: Phase, _done: u64) {
        if phase == self.phase {
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn stop_requested(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.after
    }
}
