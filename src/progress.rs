//! Progress for people: bars on a terminal ([`crate::bars`]), plain log
//! lines every few seconds elsewhere (CI, a log file, `nohup`), nothing
//! with `--quiet`. Every variant honours Ctrl-C through the stop flag and
//! logs each quarantined row once for `--log-file`; on the terminal the
//! live display only counts bad rows, and the final summary lists them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memory_storage_turso::decode::BadRowReason;
use memory_storage_turso::migration::{Observer, Phase};

use crate::args::GlobalArgs;

/// An observer the command can close when the run ends.
pub trait Progress: Observer {
    /// Clears whatever the progress display left on the terminal.
    fn finish(&self) {}
}

/// Logs a quarantined row once, as a structured event for the `--log-file`
/// (with the exact id). Its target, [`QUARANTINE_TARGET`], is kept off
/// stderr: the summary lists the bad rows, once.
pub fn log_quarantined(embedding_id: &str, reason: &BadRowReason) {
    tracing::debug!(
        target: QUARANTINE_TARGET,
        embedding_id,
        code = reason.code(),
        reason = %reason,
        "row not migrated"
    );
}

/// The `tracing` target of [`log_quarantined`]'s events.
pub const QUARANTINE_TARGET: &str = "migrate_embeddings_cli::quarantine";

/// Whether progress bars will be drawn for these flags.
pub fn bars_wanted(global: &GlobalArgs) -> bool {
    !global.quiet && std::io::stderr().is_terminal() && std::env::var_os("NO_PROGRESS").is_none()
}

/// The progress display for these flags.
pub fn observer_for(global: &GlobalArgs, db: &str, stop: Arc<AtomicBool>) -> Box<dyn Progress> {
    if global.quiet {
        Box::new(Quiet { stop })
    } else if bars_wanted(global) {
        Box::new(crate::bars::Bars::new(db, stop))
    } else {
        Box::new(LogProgress::new(Duration::from_secs(2), stop))
    }
}

/// `--quiet`: nothing on the terminal.
pub struct Quiet {
    stop: Arc<AtomicBool>,
}

impl Observer for Quiet {
    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        log_quarantined(embedding_id, reason);
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Progress for Quiet {}

/// Renders progress events as `tracing` lines (info: none with `-q`).
pub struct LogProgress {
    every: Duration,
    stop: Arc<AtomicBool>,
    /// Rows quarantined so far: the lines count them, the summary lists them.
    quarantined: AtomicU64,
    /// `quarantined` when the last phase finished.
    quarantined_before: AtomicU64,
    state: Mutex<State>,
}

struct State {
    total: u64,
    /// The time left the phase said last, and when.
    told: Option<(Instant, Duration)>,
    started: Instant,
    last: Instant,
}

impl LogProgress {
    /// A line at most every `every`.
    pub fn new(every: Duration, stop: Arc<AtomicBool>) -> Self {
        let now = Instant::now();
        LogProgress {
            every,
            stop,
            quarantined: AtomicU64::new(0),
            quarantined_before: AtomicU64::new(0),
            state: Mutex::new(State {
                total: 0,
                told: None,
                started: now,
                last: now,
            }),
        }
    }
}

/// What a phase counts: the index plan and the recall check go table by
/// table, the others row by row.
fn unit(phase: Phase) -> &'static str {
    match phase {
        Phase::IndexPlan | Phase::IndexRecall => "tables",
        _ => "rows",
    }
}

/// `N/s, ` for a phase counted in rows; nothing for one counted in
/// tables, which takes minutes a table ("0/s" says nothing).
fn per_second(phase: Phase, rate: f64) -> String {
    match unit(phase) {
        "rows" => format!("{rate:.0}/s, "),
        _ => String::new(),
    }
}

impl LogProgress {
    /// `, N row(s) quarantined` when the phase in flight quarantined any
    /// (`finished`: and it ends now).
    fn quarantined_in_phase(&self, finished: bool) -> String {
        let now = self.quarantined.load(Ordering::Relaxed);
        let before = if finished {
            self.quarantined_before.swap(now, Ordering::Relaxed)
        } else {
            self.quarantined_before.load(Ordering::Relaxed)
        };
        match now.saturating_sub(before) {
            0 => String::new(),
            n => format!(", {n} row(s) quarantined (the summary lists them)"),
        }
    }
}

impl Observer for LogProgress {
    fn phase_started(&self, phase: Phase, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.total = total;
            s.told = None;
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
        let eta = if let Some((at, left)) = s.told.filter(|_| s.total > done) {
            let left = left.saturating_sub(at.elapsed()).as_secs_f64();
            format!(", about {left:.0} s left")
        } else if rate > 0.0 && s.total > done {
            format!(", about {:.0} s left", (s.total - done) as f64 / rate)
        } else {
            String::new()
        };
        tracing::info!(
            "{}: {done}/{} {} ({}{:.0} s elapsed{eta}){}",
            phase.name(),
            s.total,
            unit(phase),
            per_second(phase, rate),
            secs,
            self.quarantined_in_phase(false)
        );
    }

    fn time_left(&self, _phase: Phase, left: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.told = Some((Instant::now(), left));
        }
    }

    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        log_quarantined(embedding_id, reason);
    }

    fn phase_finished(&self, phase: Phase, elapsed: Duration) {
        tracing::info!(
            "{}: finished in {:.1} s{}",
            phase.name(),
            elapsed.as_secs_f64(),
            self.quarantined_in_phase(true)
        );
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Progress for LogProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_by_table_phases_count_tables() {
        assert_eq!(unit(Phase::IndexPlan), "tables");
        assert_eq!(unit(Phase::IndexRecall), "tables");
        assert_eq!(unit(Phase::VectorIndex), "rows");
        assert_eq!(unit(Phase::Copy), "rows");
        assert_eq!(per_second(Phase::Copy, 2500.4), "2500/s, ");
        assert_eq!(per_second(Phase::IndexPlan, 0.003), "");
    }
}
