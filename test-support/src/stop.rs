//! An observer that asks a run to stop, as Ctrl-C does: after a number of
//! committed copy batches.

use std::sync::atomic::{AtomicU64, Ordering};

use memory_storage_turso::migration::{Observer, Phase};

/// Asks the run to stop once `after` copy batches were committed.
pub struct StopAfter {
    after: u64,
    seen: AtomicU64,
}

impl StopAfter {
    /// Stops after `batches` committed copy batches.
    pub fn batches(batches: u64) -> StopAfter {
        StopAfter {
            after: batches,
            seen: AtomicU64::new(0),
        }
    }
}

impl Observer for StopAfter {
    fn progress(&self, phase: Phase, _done: u64) {
        if phase == Phase::Copy {
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn stop_requested(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.after
    }
}
