//! The results of a run, the targets they are held to, and their Markdown.

use std::collections::BTreeMap;

use crate::floor::Floor;
use crate::index::IndexBench;
use crate::machine::Machine;
use crate::ours::Ours;
use crate::reference::Reference;

/// Copy rows/s must reach this multiple of the reference's.
pub const COPY_TARGET: f64 = 3.0;
/// Copy + verify rows/s must reach this multiple of the reference's.
pub const COPY_VERIFY_TARGET: f64 = 2.0;
/// A million rows migrated and verified within this many seconds.
pub const MILLION_TARGET_SECONDS: f64 = 300.0;
/// Peak resident memory of our runs below this.
pub const RSS_TARGET_BYTES: u64 = 64 << 20;
/// Our index phase within this multiple of libSQL's `CREATE INDEX`.
pub const INDEX_TARGET: f64 = 1.1;
/// Linear in rows: our per-row copy cost, measured against the reference's
/// per-row cost at the same size on an identical copy (the machine's own
/// scaling), varies by at most this factor across the scaling sizes.
pub const LINEAR_TARGET: f64 = 1.5;

/// One size of the scaling run.
#[derive(Debug, Clone, Default)]
pub struct ScaleRun {
    /// Size of the legacy file, bytes.
    pub legacy_bytes: u64,
    pub ours: Ours,
    /// Seconds the machine takes to write, as plain 4 KiB writes to a fresh
    /// file, the bytes our run added to the database.
    pub write_seconds: f64,
    /// libSQL's own copy of the plain rows, on an identical copy.
    pub reference: Reference,
}

impl ScaleRun {
    /// Bytes our run added to the database.
    pub fn grown_bytes(&self) -> u64 {
        self.ours.db_bytes.saturating_sub(self.legacy_bytes)
    }

    /// Copy + verify, µs per row.
    pub fn micros_per_row(&self) -> f64 {
        per_row(self.ours.copy_verify_seconds(), self.ours.rows)
    }

    /// Our copy's µs per row ÷ the reference's µs per row at this size.
    pub fn copy_to_reference(&self) -> Option<f64> {
        let ours = per_row(self.ours.copy_seconds, self.ours.rows);
        let reference = per_row(self.reference.seconds, self.reference.rows);
        (ours > 0.0 && reference > 0.0).then(|| ours / reference)
    }
}

fn per_row(seconds: f64, rows: u64) -> f64 {
    if rows > 0 {
        seconds * 1e6 / rows as f64
    } else {
        0.0
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The command that reproduces the run.
    pub command: String,
    /// Whether the binary was built with optimizations (`--release`).
    pub optimized: bool,
    pub machine: Machine,
    pub seed: u64,
    /// Rows of the main legacy database, and valid rows per dimension.
    pub rows: u64,
    pub per_dimension: BTreeMap<i64, usize>,
    /// Size of the main legacy file, bytes.
    pub legacy_bytes: u64,
    /// Rows of the main legacy database whose payload is compressed.
    pub compressed: u64,
    pub reference: Reference,
    pub ours: Ours,
    pub floor: Floor,
    pub index: IndexBench,
    pub scaling: Vec<ScaleRun>,
    /// The search benchmark (`--search-rows 0`: not run).
    pub search: Option<crate::search::SearchBench>,
    /// The remote benchmark (no `--latencies`: not run).
    pub remote: Option<crate::remote::RemoteBench>,
    /// The plot's link from the report, and the font it was drawn with
    /// (`None`: drawn without text).
    pub plot: Option<(String, Option<String>)>,
}

/// How a target came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    NotRun,
}

impl Verdict {
    fn of(ok: bool) -> Self {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotRun => "not run",
        }
    }
}

/// One target, what was measured, and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub measured: String,
    pub verdict: Verdict,
}

/// Rows per second (0 when no time passed).
pub fn rate(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

impl Results {
    /// Rows/s of the reference.
    pub fn reference_rate(&self) -> f64 {
        rate(self.reference.rows, self.reference.seconds)
    }

    /// `rate ÷ reference rate`.
    pub fn ratio(&self, rate: f64) -> f64 {
        let r = self.reference_rate();
        if r > 0.0 {
            rate / r
        } else {
            0.0
        }
    }

    /// Our copy rows/s and copy + verify rows/s.
    pub fn our_rates(&self) -> (f64, f64) {
        (
            rate(self.ours.rows, self.ours.copy_seconds),
            rate(self.ours.rows, self.ours.copy_verify_seconds()),
        )
    }

    /// The targets, each with its verdict.
    pub fn targets(&self) -> Vec<Target> {
        let (copy, copy_verify) = self.our_rates();
        let copy = self.ratio(copy);
        let copy_verify = self.ratio(copy_verify);
        let million = self
            .scaling
            .iter()
            .find(|s| s.ours.source_rows == 1_000_000);
        let peak = self
            .scaling
            .iter()
            .map(|s| s.ours.peak_rss_bytes)
            .chain([self.ours.peak_rss_bytes])
            .max()
            .unwrap_or(0);
        let relative: Vec<f64> = self
            .scaling
            .iter()
            .filter_map(ScaleRun::copy_to_reference)
            .collect();
        let spread = (relative.len() >= 2).then(|| {
            relative.iter().cloned().fold(0.0, f64::max)
                / relative.iter().cloned().fold(f64::INFINITY, f64::min)
        });
        let index = self.index.ratio();
        vec![
            Target {
                name: format!("copy ≥ {COPY_TARGET}× reference rows/s"),
                measured: format!("{copy:.2}×"),
                verdict: Verdict::of(copy >= COPY_TARGET),
            },
            Target {
                name: format!("copy + verify ≥ {COPY_VERIFY_TARGET}× reference rows/s"),
                measured: format!("{copy_verify:.2}×"),
                verdict: Verdict::of(copy_verify >= COPY_VERIFY_TARGET),
            },
            match million {
                Some(m) => Target {
                    name: format!(
                        "1,000,000 rows migrated + verified < {MILLION_TARGET_SECONDS} s"
                    ),
                    measured: format!("{:.1} s", m.ours.copy_verify_seconds()),
                    verdict: Verdict::of(m.ours.copy_verify_seconds() < MILLION_TARGET_SECONDS),
                },
                None => Target {
                    name: format!(
                        "1,000,000 rows migrated + verified < {MILLION_TARGET_SECONDS} s"
                    ),
                    measured: "1,000,000 was not in --scaling".into(),
                    verdict: Verdict::NotRun,
                },
            },
            Target {
                name: format!(
                    "peak RSS < {} MiB (largest of our runs)",
                    RSS_TARGET_BYTES >> 20
                ),
                measured: mib(peak),
                verdict: Verdict::of(peak > 0 && peak < RSS_TARGET_BYTES),
            },
            match index {
                Some(ratio) => Target {
                    name: format!("index phase ≤ {INDEX_TARGET}× libSQL `CREATE INDEX`"),
                    measured: format!("{ratio:.2}×"),
                    verdict: Verdict::of(ratio <= INDEX_TARGET),
                },
                None => Target {
                    name: format!("index phase ≤ {INDEX_TARGET}× libSQL `CREATE INDEX`"),
                    measured: "no measurement".into(),
                    verdict: Verdict::NotRun,
                },
            },
            Target {
                name: format!(
                    "time linear in rows: our copy's per-row cost ÷ libSQL's on the same rows within {LINEAR_TARGET}× across sizes"
                ),
                measured: match spread {
                    Some(s) => format!(
                        "{s:.2}× ({} at {})",
                        relative
                            .iter()
                            .map(|c| format!("{c:.2}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        self.scaling
                            .iter()
                            .filter(|r| r.copy_to_reference().is_some())
                            .map(|r| thousands(r.ours.source_rows as f64))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "fewer than 2 --scaling sizes".into(),
                },
                verdict: spread.map_or(Verdict::NotRun, |s| Verdict::of(s <= LINEAR_TARGET)),
            },
        ]
    }
}

/// A whole number with thousands separators.
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn mbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

mod markdown;

#[cfg(test)]
mod tests;
