//! Progress bars on a terminal (indicatif): one bar per phase with rows
//! done / total, rows per second, elapsed and ETA, and below them a status
//! line with the rows per target table, the process's memory, the
//! database's growth and how many rows were quarantined (the summary lists
//! them). Finished bars stay on screen; the status line goes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState,
    ProgressStyle,
};
use memory_storage_turso::connect::is_remote;
use memory_storage_turso::decode::BadRowReason;
use memory_storage_turso::migration::{Observer, Phase};
use memory_storage_turso::schema::TargetTable;

use crate::progress::{log_quarantined, Progress};

/// How often the status line's memory and file size are read again.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// Shown in the status line once Ctrl-C was pressed.
const STOPPING: &str = "stopping after the batch in flight…";

/// The terminal progress display.
pub struct Bars {
    stop: Arc<AtomicBool>,
    multi: MultiProgress,
    /// The local database file, whose growth is shown (none for a URL).
    file: Option<PathBuf>,
    /// Its size (with its `-wal`) when the run began.
    initial_size: Option<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Phase bars, in the order the phases started, each with the time
    /// left its phase said last.
    phases: Vec<(Phase, ProgressBar, Told)>,
    /// The status line, made when the first phase starts.
    status: Option<ProgressBar>,
    written: BTreeMap<String, u64>,
    /// Rows quarantined so far: counted here, listed by the summary.
    quarantined: u64,
    last_status: Option<Instant>,
}

impl Bars {
    /// Bars for a run on `db` (a local path or a remote URL), drawn on
    /// stderr; `stop` is the Ctrl-C flag.
    pub fn new(db: &str, stop: Arc<AtomicBool>) -> Self {
        let file = (!is_remote(db)).then(|| PathBuf::from(db.strip_prefix("file:").unwrap_or(db)));
        let initial_size = file.as_deref().and_then(file_size);
        Bars {
            stop,
            multi: shared_multi().clone(),
            file,
            initial_size,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Redraws the status line (at most every [`STATUS_EVERY`] unless
    /// `force`).
    fn update_status(&self, state: &mut State, force: bool) {
        let Some(status) = &state.status else { return };
        if !force
            && state
                .last_status
                .is_some_and(|t| t.elapsed() < STATUS_EVERY)
        {
            return;
        }
        state.last_status = Some(Instant::now());
        // Short facts first: a narrow terminal cuts the table list.
        let mut parts = Vec::new();
        if let Some(rss) = resident_memory() {
            parts.push(format!("memory {}", HumanBytes(rss)));
        }
        if let (Some(before), Some(now)) =
            (self.initial_size, self.file.as_deref().and_then(file_size))
        {
            let sign = if now >= before { '+' } else { '-' };
            parts.push(format!(
                "database {sign}{}",
                HumanBytes(now.abs_diff(before))
            ));
        }
        if !state.written.is_empty() {
            // In routing order (384, 1024, … other), then anything else.
            let known = TargetTable::ALL.map(TargetTable::name);
            let rows = known
                .iter()
                .filter_map(|t| state.written.get_key_value(*t))
                .chain(
                    state
                        .written
                        .iter()
                        .filter(|(t, _)| !known.contains(&t.as_str())),
                );
            let mut written = String::from("written");
            for (table, n) in rows {
                let short = table.strip_prefix("embeddings_").unwrap_or(table);
                let _ = write!(written, " {short}:{n}");
            }
            parts.push(written);
        }
        if state.quarantined > 0 {
            parts.push(format!("quarantined {}", state.quarantined));
        }
        let line = parts.join(" · ");
        status.set_message(line);
    }
}

/// Size of a local database file plus its write-ahead log.
fn file_size(path: &std::path::Path) -> Option<u64> {
    let main = std::fs::metadata(path).ok()?.len();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Some(main + std::fs::metadata(wal).map_or(0, |m| m.len()))
}

/// The process's resident memory (Linux; `None` elsewhere).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The one display every bar draws into; log lines written through
/// [`BarsAwareStderr`] pause it, so they never tear the bars.
pub fn shared_multi() -> &'static MultiProgress {
    static MULTI: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A `tracing` writer for stderr that suspends the bars while it writes.
#[derive(Clone, Copy, Default)]
pub struct BarsAwareStderr;

impl std::io::Write for BarsAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        shared_multi().suspend(|| std::io::stderr().write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BarsAwareStderr {
    type Writer = BarsAwareStderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

fn unit(_phase: Phase) -> &'static str {
    "rows"
}

/// Running and finished bars share this layout; the text either side of
/// the bar has a fixed width, so every bar starts and ends in the same
/// columns and the bar takes what the terminal has left.
const RUNNING: &str = "{prefix:>12.bold} [{wide_bar:.cyan/blue}] {count:>18} · {tail:<30}";
const FINISHED: &str = "{prefix:>12.bold} [{wide_bar:.green}] {count:>18} · {msg:<30}";

/// The time left a phase said, and when: counted down between its words.
type Told = Arc<Mutex<Option<(Instant, Duration)>>>;

fn eta(s: &ProgressState, told: &Told) -> Duration {
    match told.lock().ok().and_then(|t| *t) {
        Some((at, left)) => left.saturating_sub(at.elapsed()),
        None => s.eta(),
    }
}

fn bar_style(phase: Phase, template: &str, told: Told) -> ProgressStyle {
    let unit = unit(phase);
    ProgressStyle::with_template(template)
        .expect("the bar templates are valid")
        .with_key(
            "count",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/{} {unit}", s.pos(), s.len().unwrap_or(0));
            },
        )
        .with_key(
            "tail",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(
                    w,
                    "{:.0}/s · {:#} · ETA {:#}",
                    s.per_sec(),
                    HumanDuration(s.elapsed()),
                    HumanDuration(eta(s, &told))
                );
            },
        )
        .progress_chars("=> ")
}

/// The status line; it reads the stop flag at every tick, so Ctrl-C shows
/// at once even while a long statement runs.
fn status_style(stop: Arc<AtomicBool>) -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.dim} {stopping:.yellow}{wide_msg}")
        .expect("the status line template is valid")
        .with_key(
            "stopping",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                if stop.load(Ordering::SeqCst) {
                    let _ = write!(w, "{STOPPING}  ");
                }
            },
        )
}

impl Observer for Bars {
    fn phase_started(&self, phase: Phase, total: u64) {
        let mut state = self.state();
        let status = match &state.status {
            Some(s) => s.clone(),
            None => {
                let s = self
                    .multi
                    .add(ProgressBar::new_spinner().with_style(status_style(self.stop.clone())));
                s.enable_steady_tick(Duration::from_millis(200));
                state.status = Some(s.clone());
                s
            }
        };
        let told = Told::default();
        let bar = self.multi.insert_before(
            &status,
            ProgressBar::new(total)
                .with_style(bar_style(phase, RUNNING, told.clone()))
                .with_prefix(phase.name()),
        );
        bar.tick();
        state.phases.retain(|(p, _, _)| *p != phase);
        state.phases.push((phase, bar, told));
        self.update_status(&mut state, true);
    }

    fn progress(&self, phase: Phase, done: u64) {
        let mut state = self.state();
        if let Some((_, bar, _)) = state.phases.iter().find(|(p, _, _)| *p == phase) {
            bar.set_position(done);
        }
        self.update_status(&mut state, false);
    }

    fn time_left(&self, phase: Phase, left: Duration) {
        let state = self.state();
        if let Some((_, _, told)) = state.phases.iter().find(|(p, _, _)| *p == phase) {
            if let Ok(mut t) = told.lock() {
                *t = Some((Instant::now(), left));
            }
        }
    }

    fn written(&self, per_table: &BTreeMap<String, u64>) {
        let mut state = self.state();
        state.written.clone_from(per_table);
        self.update_status(&mut state, false);
    }

    fn row_quarantined(&self, embedding_id: &str, reason: &BadRowReason) {
        // Counted on the status line and logged for --log-file: the summary
        // lists bad rows, once, and a line here would tear the bars.
        log_quarantined(embedding_id, reason);
        let mut state = self.state();
        state.quarantined += 1;
        self.update_status(&mut state, false);
    }

    fn phase_finished(&self, phase: Phase, elapsed: Duration) {
        let mut state = self.state();
        let Some((_, bar, _)) = state.phases.iter().find(|(p, _, _)| *p == phase) else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        // Backup and drop are one statement each: no progress in between.
        if matches!(phase, Phase::Backup | Phase::Drop) {
            bar.set_position(bar.length().unwrap_or(0));
        }
        let full = bar.length().is_some_and(|len| bar.position() >= len);
        let mut msg = if full || !self.stop.load(Ordering::SeqCst) {
            format!("done in {secs:.1} s")
        } else {
            format!("stopped after {secs:.1} s")
        };
        if phase != Phase::VectorIndex && secs > 0.0 && bar.position() > 0 {
            let _ = write!(msg, " · {:.0}/s", bar.position() as f64 / secs);
        }
        bar.set_style(bar_style(phase, FINISHED, Told::default()));
        // `abandon` keeps the position: a stopped copy must not show 100%.
        bar.abandon_with_message(msg);
        self.update_status(&mut state, true);
    }

    fn stop_requested(&self) -> bool {
        let stop = self.stop.load(Ordering::SeqCst);
        if stop {
            if let Some(status) = &self.state().status {
                status.tick();
            }
        }
        stop
    }
}

impl Progress for Bars {
    fn finish(&self) {
        let mut state = self.state();
        if let Some(status) = state.status.take() {
            status.finish_and_clear();
            self.multi.remove(&status);
        }
        // A phase cut short by an error keeps its bar where it stopped.
        for (_, bar, _) in &state.phases {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
