//! Keeps in the kernel's page cache what a large migration reads next.
//!
//! A copy reads the legacy table in key order, which is not the order its
//! rows lie in the file, so every legacy page stays in use until the copy
//! ends; meanwhile the copy appends about 1.3× the legacy table's size.
//! Once the two no longer fit in memory together, the kernel evicts legacy
//! pages the copy still has to read (each then costs a random disk read),
//! and every page the copy appends takes memory the kernel has to reclaim
//! first. So, for a local database file:
//! - the pages the copy appended are dropped from the page cache once they
//!   are durable (after the batch's commit), beyond the first `keep_cached`
//!   bytes, except B-tree pages within a budget: the item indexes are
//!   built from those right after the copy ([`AppendedPages`]);
//! - the verification gets them back just ahead of where it reads
//!   ([`ReadAhead`]).
//!
//! Dropping a clean cached page only means the next read of it goes to the
//! disk, and reading ahead only fills the cache: nothing is lost, and no
//! read returns anything else.

mod appended;
mod pages;
mod read_ahead;
mod sys;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use appended::{AppendedPages, Region};
pub use read_ahead::{offset_at, ReadAhead, ReadAheadObserver, BEHIND, LEAD};

/// Bytes at the end of the file left cached by default: the pages the
/// next batch writes into again (the right edges of the B-trees).
pub const TAIL: u64 = 32 << 20;

/// A local database file the copy appends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    /// Appended bytes kept in the page cache (all, or none: [`LocalFile::new`]).
    pub keep_cached: u64,
    /// Bytes at the end of the file never dropped ([`TAIL`]).
    pub tail: u64,
    /// Bytes of B-tree pages (table and index pages, not the overflow
    /// pages that hold most of a vector) kept cached among those dropped:
    /// [`btree_budget`].
    pub keep_btree: u64,
}

impl LocalFile {
    /// `path`, deciding from its size now whether appended pages stay
    /// cached: see [`fits_in_memory`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let memory = sys::physical_memory();
        let keep_cached = if fits_in_memory(size, memory) {
            u64::MAX
        } else {
            0
        };
        LocalFile {
            path,
            keep_cached,
            tail: TAIL,
            keep_btree: btree_budget(memory),
        }
    }

    /// Bytes per second a vector-index build will read its table from the
    /// disk at, when the table will not be in the page cache: the copy
    /// drops what it appends from a file too large for memory
    /// (`keep_cached` 0), so a `CREATE INDEX` after it reads the table
    /// back from the disk (on a million rows, 15.7 s against 4.3 s cached
    /// for `embeddings_384`). `None` where the table stays cached.
    pub fn cold_read_rate(&self) -> Option<f64> {
        if self.keep_cached > 0 {
            return None;
        }
        cold_read_rate(&self.path, COLD_SAMPLE)
    }
}

/// Bytes [`cold_read_rate`] reads.
const COLD_SAMPLE: u64 = 128 << 20;

/// Bytes per second `path` is read from the disk at, a page of 4 KiB at a
/// time in file order, as SQLite reads a table: `sample` bytes from the
/// middle of the file are dropped from the page cache, then read and
/// timed. Only clean cached pages are dropped, and a read returns the
/// same bytes either way. `None` for a file smaller than twice `sample`,
/// or where the pages cannot be dropped or read.
pub fn cold_read_rate(path: &Path, sample: u64) -> Option<f64> {
    const PAGE: usize = 4096;
    let (file, len) = open(path)?;
    if len < 2 * sample || !cfg!(target_os = "linux") {
        return None;
    }
    let start = (len / 2) / PAGE as u64 * PAGE as u64;
    sys::advise(&file, start, sample, sys::Advice::DontNeed);
    let mut page = vec![0u8; PAGE];
    let began = std::time::Instant::now();
    let mut at = start;
    while at < start + sample {
        if !sys::read_at(&file, &mut page, at) {
            return None;
        }
        at += PAGE as u64;
    }
    let seconds = began.elapsed().as_secs_f64();
    (seconds > 0.0).then(|| sample as f64 / seconds)
}

/// Whether a copy of a `file`-byte database can leave its appended pages
/// cached: the file and what the copy appends (about 1.3× the legacy
/// table, measured) fit in half of the machine's `memory`, the rest being
/// the system's and other programs'. Dropping costs the small run more
/// than it gains (the item indexes and the verification read the rows
/// back from the disk), and gains the large one more than it costs.
pub fn fits_in_memory(file: u64, memory: u64) -> bool {
    file.saturating_mul(23) / 10 <= memory / 2
}

/// B-tree pages kept cached while the rest is dropped: a quarter of the
/// machine's `memory`. The item indexes are built by reading every table's
/// B-tree pages (the first columns of each row), a quarter of what the
/// copy appends; read back from the disk they cost a million-row run about
/// 10 s, cached about 1.4 s (measured).
pub fn btree_budget(memory: u64) -> u64 {
    memory / 4
}

/// The byte range to drop from the page cache: what was appended after
/// `base`, past the first `keep_cached` bytes and short of the last
/// `tail` bytes of a file now `len` bytes long.
pub fn droppable(base: u64, keep_cached: u64, tail: u64, len: u64) -> Option<(u64, u64)> {
    let start = base.saturating_add(keep_cached);
    let end = len.saturating_sub(tail);
    (end > start).then(|| (start, end - start))
}

fn open(path: &Path) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    Some((file, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cold_read_is_timed_only_where_the_file_is_not_kept_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        let rate = cold_read_rate(&path, 1 << 20).expect("an 8 MiB file, 1 MiB read");
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
        assert_eq!(
            cold_read_rate(&path, 5 << 20),
            None,
            "the file is too small"
        );
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 8 << 20]);
        let mut file = LocalFile::new(&path);
        file.keep_cached = u64::MAX;
        assert_eq!(file.cold_read_rate(), None, "its pages stay cached");
    }

    #[test]
    fn a_database_that_fits_twice_over_keeps_its_pages() {
        let gib = 1u64 << 30;
        // The benchmark's 100,000 and 1,000,000 rows on 24 GiB.
        assert!(fits_in_memory(gib, 24 * gib));
        assert!(!fits_in_memory(9 * gib + gib / 2, 24 * gib));
        assert!(!fits_in_memory(u64::MAX, 24 * gib));
    }

    #[test]
    fn a_quarter_of_memory_is_kept_for_btree_pages() {
        let gib = 1u64 << 30;
        // A million-row run's B-tree pages (3.4 GB) fit on 24 GiB.
        assert!(btree_budget(24 * gib) > 3_400_000_000);
        assert_eq!(btree_budget(0), 0);
    }

    #[test]
    fn kept_without_limit_drops_nothing() {
        assert_eq!(droppable(1 << 20, u64::MAX, TAIL, u64::MAX), None);
    }

    #[test]
    fn nothing_is_dropped_within_the_kept_bytes() {
        assert_eq!(droppable(1000, 1 << 30, TAIL, 1000 + (1 << 30)), None);
    }

    #[test]
    fn what_lies_past_the_kept_bytes_and_before_the_tail_is_dropped() {
        let base = 4096;
        let keep = 100 << 20;
        let len = base + keep + (50 << 20) + TAIL;
        assert_eq!(
            droppable(base, keep, TAIL, len),
            Some((base + keep, 50 << 20))
        );
    }

    #[test]
    fn a_file_that_shrank_drops_nothing() {
        assert_eq!(droppable(10 << 30, 0, TAIL, 1 << 20), None);
    }
}
