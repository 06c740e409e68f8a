//! Reads the copy's rows back into the page cache just ahead of the
//! verification. The verification reads the new rows in key order, the
//! order the copy appended them in, so their pages come in file order; but
//! it reads them a page at a time, from five tables and the legacy table at
//! once, which the kernel's own read-ahead does not recognise: each page
//! dropped during the copy would cost a small synchronous read. The copy's
//! marks say which file offset the verification has reached after so many
//! rows; a thread asks the kernel to read from there a lead ahead, in long
//! runs, and, since the run outgrew memory, to drop what lies well behind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::appended::Region;
use super::sys::{advise, Advice};
use crate::migration::observer::{Observer, Phase};

/// How far ahead of the verification pages are read.
pub const LEAD: u64 = 512 << 20;
/// How far behind the verification pages are dropped (its next window is
/// read before the progress of the current one is reported).
pub const BEHIND: u64 = 128 << 20;
/// Bytes asked for at a time.
const STEP: u64 = 8 << 20;

/// Reads a [`Region`] ahead of the verification, on a thread of its own
/// that ends when this is dropped.
pub struct ReadAhead {
    running: Option<(Arc<Shared>, JoinHandle<()>)>,
    /// Rows the verification sees before the region's first (rows before
    /// the checkpoint the copy resumed from).
    rows_before: u64,
}

struct Shared {
    /// Rows of the region verified.
    rows: AtomicU64,
    stop: AtomicBool,
}

impl ReadAhead {
    /// Reads nothing.
    pub fn none() -> Self {
        ReadAhead {
            running: None,
            rows_before: 0,
        }
    }

    /// Starts reading `region` ahead, if its pages were dropped during the
    /// copy (otherwise they are cached already). The whole region is
    /// dropped first, the B-tree pages kept for the item indexes included:
    /// a cached page in the middle of a range splits the kernel's read of
    /// it into small ones.
    pub fn start(region: Option<Region>, rows_before: u64) -> Self {
        let Some(region) = region.filter(|r| r.dropped && r.marks.len() > 1) else {
            return Self::none();
        };
        let Ok(end) = region.file.metadata().map(|m| m.len()) else {
            return Self::none();
        };
        advise(
            &region.file,
            region.start,
            end.saturating_sub(region.start),
            Advice::DontNeed,
        );
        let shared = Arc::new(Shared {
            rows: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let on_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || read_ahead(&region, end, &on_thread));
        match spawned {
            Ok(handle) => ReadAhead {
                running: Some((shared, handle)),
                rows_before,
            },
            Err(_) => Self::none(),
        }
    }

    /// The verification has seen `rows` rows.
    pub fn verified(&self, rows: u64) {
        if let Some((shared, handle)) = &self.running {
            let rows = rows.saturating_sub(self.rows_before);
            shared.rows.store(rows, Ordering::Relaxed);
            handle.thread().unpark();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some((shared, handle)) = self.running.take() {
            shared.stop.store(true, Ordering::Relaxed);
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// The file offset the copy had reached after `rows` rows, interpolated
/// between its marks.
pub fn offset_at(marks: &[(u64, u64)], rows: u64) -> u64 {
    let i = marks.partition_point(|&(r, _)| r <= rows);
    match (i.checked_sub(1).map(|j| marks[j]), marks.get(i)) {
        (None, None) => 0,
        (None, Some(&(_, at))) => at,
        (Some((_, at)), None) => at,
        (Some((r0, a0)), Some(&(r1, a1))) => {
            a0 + ((a1 - a0) as u128 * (rows - r0) as u128 / (r1 - r0) as u128) as u64
        }
    }
}

fn read_ahead(region: &Region, end: u64, shared: &Shared) {
    let (mut asked, mut dropped) = (region.start, region.start);
    while !shared.stop.load(Ordering::Relaxed) {
        let at = offset_at(&region.marks, shared.rows.load(Ordering::Relaxed));
        let want = at.saturating_add(LEAD).min(end);
        if asked < want {
            let n = STEP.min(want - asked);
            advise(&region.file, asked, n, Advice::WillNeed);
            asked += n;
            continue;
        }
        let behind = at.saturating_sub(BEHIND);
        if behind > dropped {
            advise(&region.file, dropped, behind - dropped, Advice::DontNeed);
            dropped = behind;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Passes the verification's progress to a [`ReadAhead`], and everything
/// to the caller's observer.
pub struct ReadAheadObserver<'a> {
    pub inner: &'a dyn Observer,
    pub read_ahead: &'a ReadAhead,
}

impl Observer for ReadAheadObserver<'_> {
    fn phase_started(&self, phase: Phase, total: u64) {
        self.inner.phase_started(phase, total)
    }
    fn progress(&self, phase: Phase, done: u64) {
        if phase == Phase::Verify {
            self.read_ahead.verified(done);
        }
        self.inner.progress(phase, done)
    }
    fn time_left(&self, phase: Phase, left: Duration) {
        self.inner.time_left(phase, left)
    }
    fn written(&self, per_table: &std::collections::BTreeMap<String, u64>) {
        self.inner.written(per_table)
    }
    fn row_quarantined(&self, embedding_id: &str, reason: &crate::decode::BadRowReason) {
        self.inner.row_quarantined(embedding_id, reason)
    }
    fn phase_finished(&self, phase: Phase, elapsed: Duration) {
        self.inner.phase_finished(phase, elapsed)
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKS: [(u64, u64); 3] = [(0, 1000), (100, 2000), (300, 3000)];

    #[test]
    fn offsets_are_interpolated_between_marks() {
        assert_eq!(offset_at(&MARKS, 0), 1000);
        assert_eq!(offset_at(&MARKS, 50), 1500);
        assert_eq!(offset_at(&MARKS, 100), 2000);
        assert_eq!(offset_at(&MARKS, 200), 2500);
    }

    #[test]
    fn past_the_last_mark_is_the_last_offset() {
        assert_eq!(offset_at(&MARKS, 300), 3000);
        assert_eq!(offset_at(&MARKS, u64::MAX), 3000);
    }

    #[test]
    fn before_the_first_mark_is_the_first_offset() {
        assert_eq!(offset_at(&[(10, 500), (20, 600)], 3), 500);
        assert_eq!(offset_at(&[], 3), 0);
    }
}
