//! Keeps the legacy table in the kernel's page cache while the copy writes.
//!
//! A copy reads the legacy table in key order, which is not the order its
//! rows lie in the file, so every legacy page stays in use until the copy
//! ends; meanwhile the copy appends about 1.3× the legacy table's size.
//! Once the two no longer fit in memory together, the kernel evicts legacy
//! pages the copy still has to read (each then costs a random disk read),
//! and every page the copy appends takes memory the kernel has to reclaim
//! first. So, for a local database file, the pages the copy appended are
//! dropped from the page cache once they are durable (after the batch's
//! commit), beyond the first `keep_cached` bytes: those stay, because the
//! verification reads them back right after. Dropping a clean cached page
//! only means the next read of it goes to the disk: nothing is lost.

use std::fs::File;
use std::path::{Path, PathBuf};

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
}

impl LocalFile {
    /// `path`, deciding from its size now whether appended pages stay
    /// cached: see [`fits_in_memory`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let keep_cached = if fits_in_memory(size, physical_memory()) {
            u64::MAX
        } else {
            0
        };
        LocalFile {
            path,
            keep_cached,
            tail: TAIL,
        }
    }
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

/// The byte range to drop from the page cache: what was appended after
/// `base`, past the first `keep_cached` bytes and short of the last
/// `tail` bytes of a file now `len` bytes long.
pub fn droppable(base: u64, keep_cached: u64, tail: u64, len: u64) -> Option<(u64, u64)> {
    let start = base.saturating_add(keep_cached);
    let end = len.saturating_sub(tail);
    (end > start).then(|| (start, end - start))
}

/// The pages one run appends to a local file, released batch by batch.
pub struct AppendedPages {
    file: Option<(File, u64)>,
    keep_cached: u64,
    tail: u64,
    /// End of the range already released.
    released: u64,
}

impl AppendedPages {
    /// Nothing to release (a remote or in-memory database).
    pub fn none() -> Self {
        AppendedPages {
            file: None,
            keep_cached: 0,
            tail: 0,
            released: 0,
        }
    }

    /// Watches `local` from its current size on. A file that cannot be
    /// opened is only left alone: this is an optimization.
    pub fn watch(local: Option<&LocalFile>) -> Self {
        let Some(local) = local else {
            return Self::none();
        };
        match open(&local.path) {
            Some((file, base)) => AppendedPages {
                file: Some((file, base)),
                keep_cached: local.keep_cached,
                tail: local.tail,
                released: base.saturating_add(local.keep_cached),
            },
            None => Self::none(),
        }
    }

    /// Drops the appended pages past what is kept; call after a commit.
    pub fn release(&mut self) {
        let Some((file, base)) = &self.file else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        if let Some((start, len)) = droppable(*base, self.keep_cached, self.tail, meta.len()) {
            // What was released before stays released (the copy does not
            // read its own rows back): only the new part is advised.
            let (from, end) = (start.max(self.released), start + len);
            if end > from {
                advise_dont_need(file, from, end - from);
                self.released = end;
            }
        }
    }
}

fn open(path: &Path) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    Some((file, len))
}

#[cfg(target_os = "linux")]
fn advise_dont_need(file: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: posix_fadvise reads no memory of ours; the descriptor is
    // open for as long as `file` lives. Its result is advisory and ignored.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_dont_need(_file: &File, _offset: u64, _len: u64) {}

#[cfg(unix)]
fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        u64::MAX
    }
}

#[cfg(not(unix))]
fn physical_memory() -> u64 {
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_fits_twice_over_keeps_its_pages() {
        let gib = 1u64 << 30;
        // The benchmark's 100,000 and 1,000,000 rows on 24 GiB.
        assert!(fits_in_memory(gib, 24 * gib));
        assert!(!fits_in_memory(9 * gib + gib / 2, 24 * gib));
        assert!(!fits_in_memory(u64::MAX, 24 * gib));
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

    #[test]
    fn release_only_advances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let mut pages = AppendedPages::watch(Some(&LocalFile {
            path: path.clone(),
            keep_cached: 0,
            tail: TAIL,
        }));
        assert_eq!(pages.released, 4096);
        std::fs::write(&path, vec![0u8; 4096 + (TAIL as usize) + 8192]).unwrap();
        pages.release();
        assert_eq!(pages.released, 4096 + 8192);
        pages.release();
        assert_eq!(pages.released, 4096 + 8192);
    }
}
