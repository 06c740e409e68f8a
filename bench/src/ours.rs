//! Our migration, run in a child process (the bench binary re-executed as
//! `migrate-bench child --db PATH`) so its peak resident memory is its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use memory_storage_turso::connect::{open, Access};
use memory_storage_turso::migration::LocalFile;
use memory_storage_turso::migration::{run_migration, MigrationOptions, Observer, Phase};
use serde::Deserialize;

/// What the child prints on stdout: the whole report, and its peak memory.
#[derive(Debug, Deserialize)]
struct ChildOutput {
    /// `VmHWM` of the child just before it exits, KiB.
    peak_rss_kib: Option<u64>,
    /// CPU seconds of the child in user space and in the kernel.
    #[serde(default)]
    cpu_user_seconds: f64,
    #[serde(default)]
    cpu_system_seconds: f64,
    /// Copy µs per row over the first and the last tenth of the rows.
    #[serde(default)]
    copy_tenths_us: Option<(f64, f64)>,
    report: ReportView,
}

/// The parts of `MigrationReport` the benchmark reads.
#[derive(Debug, Deserialize)]
struct ReportView {
    source_rows: u64,
    #[serde(default)]
    migrated: Option<BTreeMap<String, u64>>,
    quarantined_count: u64,
    #[serde(default)]
    verification: Option<VerificationView>,
    phases: Vec<PhaseView>,
}

#[derive(Debug, Deserialize)]
struct VerificationView {
    passed: bool,
    rows_checked: u64,
}

#[derive(Debug, Deserialize)]
struct PhaseView {
    phase: String,
    seconds: f64,
}

/// One run of our migration (copy + verify, no vector index).
#[derive(Debug, Clone, Default)]
pub struct Ours {
    /// Rows in the legacy table.
    pub source_rows: u64,
    /// Rows written by the copy.
    pub rows: u64,
    pub copy_seconds: f64,
    pub verify_seconds: f64,
    /// Rows the verification compared.
    pub rows_verified: u64,
    pub verification_passed: bool,
    pub quarantined: u64,
    /// Wall time of the child process, start to exit.
    pub process_seconds: f64,
    /// Peak resident memory of the child, bytes.
    pub peak_rss_bytes: u64,
    /// Where the peak came from (`VmHWM` or `ru_maxrss`).
    pub rss_source: &'static str,
    /// CPU seconds of the child in user space (our code, libSQL, the
    /// decoder) and in the kernel (reads and writes of the file).
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    /// Size of the database file after the run, bytes.
    pub db_bytes: u64,
    /// The copy's µs per row over its first and its last tenth of the rows,
    /// from the batch progress: whether the cost per row grows during a run.
    pub copy_tenths_us: Option<(f64, f64)>,
}

impl Ours {
    /// Copy plus verification, seconds.
    pub fn copy_verify_seconds(&self) -> f64 {
        self.copy_seconds + self.verify_seconds
    }
}

/// The options of the measured run.
/// What `migrate_embeddings` would run on the local file `db`.
fn options(db: &Path) -> MigrationOptions {
    MigrationOptions {
        build_vector_index: false,
        local_file: Some(LocalFile::new(db)),
        ..Default::default()
    }
}

/// When each copy batch finished: (seconds since the copy began, rows done).
#[derive(Default)]
struct CopyClock {
    began: std::sync::Mutex<Option<(Instant, u64)>>,
    marks: std::sync::Mutex<Vec<(f64, u64)>>,
}

impl Observer for CopyClock {
    fn phase_started(&self, phase: Phase, total: u64) {
        if phase == Phase::Copy {
            *self.began.lock().unwrap() = Some((Instant::now(), total));
        }
    }
    fn progress(&self, phase: Phase, done: u64) {
        if phase != Phase::Copy {
            return;
        }
        if let Some((began, _)) = *self.began.lock().unwrap() {
            let at = began.elapsed().as_secs_f64();
            self.marks.lock().unwrap().push((at, done));
        }
    }
}

impl CopyClock {
    /// µs per row over the first and the last tenth of the rows.
    fn tenths(&self) -> Option<(f64, f64)> {
        let total = self.began.lock().unwrap().map(|(_, t)| t)?;
        tenths(&self.marks.lock().unwrap(), total)
    }
}

/// µs per row from the start to the first mark at or past a tenth of
/// `total`, and from the last mark before nine tenths to the end.
pub fn tenths(marks: &[(f64, u64)], total: u64) -> Option<(f64, f64)> {
    let tenth = total / 10;
    if tenth == 0 {
        return None;
    }
    let &(t1, r1) = marks.iter().find(|(_, r)| *r >= tenth)?;
    let &(t9, r9) = marks.iter().rev().find(|(_, r)| *r <= total - tenth)?;
    let &(tn, rn) = marks.last()?;
    if r1 == 0 || rn <= r9 {
        return None;
    }
    Some((t1 * 1e6 / r1 as f64, (tn - t9) * 1e6 / (rn - r9) as f64))
}

/// The child: migrates `db` and prints `{"peak_rss_kib": …, "report": …}`.
pub async fn child_main(db: &Path) -> Result<()> {
    let path = db.to_string_lossy();
    let opened = open(&path, "", Access::ReadWrite)
        .await
        .with_context(|| format!("opening {path}"))?;
    let clock = CopyClock::default();
    let report = run_migration(&opened.conn, &options(db), &clock)
        .await
        .with_context(|| format!("migrating {path}"))?;
    drop(opened);
    let cpu = own_cpu_seconds();
    let out = serde_json::json!({
        "peak_rss_kib": vm_hwm_kib(),
        "cpu_user_seconds": cpu.0,
        "cpu_system_seconds": cpu.1,
        "copy_tenths_us": clock.tenths(),
        "report": report,
    });
    println!("{out}");
    Ok(())
}

/// Peak resident set of this process (`VmHWM` in /proc/self/status), KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds of this process so far: (user, system).
fn own_cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// Largest peak resident set of any waited-for child so far, KiB (Linux).
fn children_max_rss_kib() -> Option<u64> {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    (rc == 0).then(|| u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

/// Runs our migration on `db` in a child process and reads its report.
pub fn run_child(db: &Path) -> Result<Ours> {
    let exe = std::env::current_exe().context("finding the benchmark's own executable")?;
    let began = Instant::now();
    let output = Command::new(&exe)
        .arg("child")
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} child", exe.display()))?;
    let process_seconds = began.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "the migration child failed on {} ({})",
            db.display(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let child: ChildOutput = serde_json::from_str(stdout.trim())
        .with_context(|| format!("reading the child's report: {}", stdout.trim()))?;
    let (peak_kib, rss_source) = match child.peak_rss_kib {
        Some(kib) => (kib, "VmHWM"),
        None => (children_max_rss_kib().unwrap_or(0), "ru_maxrss"),
    };
    let seconds_of = |name: &str| {
        child
            .report
            .phases
            .iter()
            .filter(|p| p.phase == name)
            .map(|p| p.seconds)
            .sum::<f64>()
    };
    let verification = child.report.verification.as_ref();
    Ok(Ours {
        source_rows: child.report.source_rows,
        rows: child
            .report
            .migrated
            .as_ref()
            .map_or(0, |m| m.values().sum()),
        copy_seconds: seconds_of("copy"),
        verify_seconds: seconds_of("verify"),
        rows_verified: verification.map_or(0, |v| v.rows_checked),
        verification_passed: verification.is_some_and(|v| v.passed),
        quarantined: child.report.quarantined_count,
        process_seconds,
        peak_rss_bytes: peak_kib * 1024,
        rss_source,
        cpu_user_seconds: child.cpu_user_seconds,
        cpu_system_seconds: child.cpu_system_seconds,
        db_bytes: std::fs::metadata(db).map_or(0, |m| m.len()),
        copy_tenths_us: child.copy_tenths_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  200 kB\nVmHWM:\t   33512 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(33512));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn parses_the_report_the_library_serializes() {
        let report = memory_storage_turso::migration::MigrationReport {
            source_rows: 7,
            migrated: Some([("embeddings_384".to_string(), 7)].into()),
            phases: vec![memory_storage_turso::migration::PhaseTiming {
                phase: "copy".into(),
                seconds: 1.5,
                units: 7,
            }],
            ..Default::default()
        };
        let text = serde_json::json!({"peak_rss_kib": 10, "report": report}).to_string();
        let child: ChildOutput = serde_json::from_str(&text).unwrap();
        assert_eq!(child.report.source_rows, 7);
        assert_eq!(child.report.phases[0].seconds, 1.5);
        assert_eq!(child.peak_rss_kib, Some(10));
    }
}

#[cfg(test)]
mod tenth_tests {
    use super::tenths;

    #[test]
    fn a_steady_run_has_equal_tenths() {
        let marks: Vec<(f64, u64)> = (1..=100).map(|i| (i as f64, i * 10)).collect();
        let (first, last) = tenths(&marks, 1000).unwrap();
        assert!((first - 1e5).abs() < 1e-6 && (last - 1e5).abs() < 1e-6);
    }

    #[test]
    fn a_run_that_slows_down_shows_it() {
        // Each batch of 10 rows takes as many seconds as its number.
        let mut t = 0.0;
        let marks: Vec<(f64, u64)> = (1..=100)
            .map(|i| {
                t += i as f64;
                (t, i * 10)
            })
            .collect();
        let (first, last) = tenths(&marks, 1000).unwrap();
        assert!(last > 10.0 * first, "{first} {last}");
    }

    #[test]
    fn too_few_rows_give_none() {
        assert_eq!(tenths(&[(1.0, 5)], 5), None);
    }
}
