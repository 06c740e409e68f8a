//! Dropping the pages the copy appended from the kernel's page cache: they
//! really leave it, and the migration stays exact and resumable.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use memory_storage_turso::migration::page_cache::LocalFile;
use memory_storage_turso::migration::{
    run_migration, MigrationOptions, NoopObserver, Observer, Phase,
};

/// Asks the run to stop once `after` copy batches were committed, before
/// anything reads the new rows back.
struct StopAfter {
    after: u64,
    seen: AtomicU64,
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

fn options(path: &Path, keep_cached: u64) -> MigrationOptions {
    MigrationOptions {
        batch_size: 100,
        build_vector_index: false,
        local_file: Some(LocalFile {
            path: path.to_path_buf(),
            keep_cached,
            tail: 0,
        }),
        ..Default::default()
    }
}

/// The share of the pages of `path` from byte `from` on that are in the
/// page cache (`mincore` over a read-only mapping).
fn resident_share(path: &Path, from: u64) -> f64 {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a private read-only mapping of `len` bytes of an open file,
    // unmapped before return; mincore writes one byte per page into `vec`,
    // which has one per page.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
        libc::munmap(map, len);
    }
    let first = (from as usize) / page;
    let tail = &vec[first..];
    tail.iter().filter(|b| **b & 1 == 1).count() as f64 / tail.len().max(1) as f64
}

/// tmpfs keeps files in memory: there is no page cache to leave.
fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statfs fills the struct it is given, from a valid C string.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == libc::TMPFS_MAGIC
    }
}

/// Copies 10 batches of a 1,500-row sample with `keep_cached` and returns
/// the share of the appended pages still cached.
async fn appended_share_cached(keep_cached: u64) -> Option<f64> {
    let (t, _) = TestDb::sample(&small_spec(1500, 7)).await;
    if on_tmpfs(&t.path) {
        eprintln!("SKIPPED: {} is on tmpfs", t.path.display());
        return None;
    }
    let base = std::fs::metadata(&t.path).unwrap().len();
    let stop = StopAfter {
        after: 10,
        seen: AtomicU64::new(0),
    };
    let report = run_migration(&t.conn, &options(&t.path, keep_cached), &stop)
        .await
        .unwrap();
    assert!(report.interrupted);
    let grown = std::fs::metadata(&t.path).unwrap().len() - base;
    assert!(grown > 4 << 20, "the copy appended only {grown} bytes");
    Some(resident_share(&t.path, base))
}

#[tokio::test]
async fn appended_pages_leave_the_page_cache_once_committed() {
    let Some(dropped) = appended_share_cached(0).await else {
        return;
    };
    let Some(kept) = appended_share_cached(u64::MAX).await else {
        return;
    };
    assert!(
        kept > 0.9,
        "kept pages should be cached: {:.0}% are",
        kept * 100.0
    );
    assert!(
        dropped < 0.1,
        "dropped pages should not be cached: {:.0}% are",
        dropped * 100.0
    );
}

#[tokio::test]
async fn a_run_dropping_its_pages_is_exact_and_resumes() {
    let (t, summary) = TestDb::sample(&small_spec(1000, 31)).await;
    let stop = StopAfter {
        after: 3,
        seen: AtomicU64::new(0),
    };
    let first = run_migration(&t.conn, &options(&t.path, 0), &stop)
        .await
        .unwrap();
    assert!(first.interrupted);
    let second = run_migration(&t.conn, &options(&t.path, 0), &NoopObserver)
        .await
        .unwrap();
    assert!(second.resumed_from.is_some());
    assert!(second.verification.as_ref().unwrap().passed);
    assert_eq!(
        first.rows_written() + second.rows_written(),
        1000 - summary.bad.len() as u64
    );
    let bad = bad_ids(&summary);
    assert_eq!(
        assert_migrated_exactly(&t.conn, &bad, true).await,
        1000 - bad.len()
    );
}
