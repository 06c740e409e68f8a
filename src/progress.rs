//! Progress as log lines: one line per phase start and end, and a line
//! every few seconds in between (never an escape code).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use memory_storage_turso::decode::BadRowReason;
use memory_storage_turso::migration::{Observer, Phase};

/// Renders progress events as `tracing` lines.
pub struct LogProgress {
    every: Duration,
    state: Mutex<State>,
}

struct State {
    total: u64,
    started: Instant,
    last: Instant,
}

impl LogProgress {
    /// A line at most every `every`.
    pub fn new(every: Duration) -> Self {
        let now = Instant::now();
        LogProgress {
            every,
            state: Mutex::new(State {
                total: 0,
                started: now,
                last: now,
            }),
        }
    }
}

fn unit(phase: Phase) -> &'static str {
    if phase == Phase::VectorIndex {
        "indexes"
    } else {
        "rows"
    }
}

impl Observer for LogProgress {
    fn phase_started(&self, phase: Phase, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.total = total;
            s.started = Instant::now();
            s.last = s.started;
        }
        tracing::info!("{}: {} {} to go", phase.name(), total, unit(phase));
    }

    fn progress(&self, phase: Phase, done: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.last.elapsed() < self.every {
            return;
        }
        s.last = Instant::now();
        let secs = s.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 && s.total > done {
            format!(", about {:.0} s left", (s.total - done) as f64 / rate)
        } else {
            String::new()
        };
        tracing::info!(
            "{}: {done}/{} {} ({rate:.0}/s{eta})",
            phase.name(),
            s.total,
            unit(phase)
        );
    }

    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        tracing::warn!("not migrated: {embedding_id}: {reason}");
    }

    fn phase_finished(&self, phase: Phase, elapsed: Duration) {
        tracing::info!(
            "{}: finished in {:.1} s",
            phase.name(),
            elapsed.as_secs_f64()
        );
    }
}
