//! Dropping the pages the copy appended from the kernel's page cache: they
//! really leave it, and the migration stays exact and resumable.

use std::path::Path;

use memory_storage_turso::migration::LocalFile;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use test_support::*;

/// Asks the run to stop once `after` copy batches were committed, before
/// anything reads the new rows back.
fn options(path: &Path, keep_cached: u64, keep_btree: u64) -> MigrationOptions {
    MigrationOptions {
        batch_size: 100,
        build_vector_index: false,
        local_file: Some(LocalFile {
            path: path.to_path_buf(),
            keep_cached,
            tail: 0,
            keep_btree,
        }),
        ..Default::default()
    }
}

/// The system's page size.
fn os_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Whether each page of `path` is in the page cache (`mincore` over a
/// read-only mapping).
fn residency(path: &Path) -> Vec<bool> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(os_page());
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
    vec.iter().map(|b| b & 1 == 1).collect()
}

/// The share of `pages` that are cached.
fn share(pages: &[bool]) -> f64 {
    pages.iter().filter(|r| **r).count() as f64 / pages.len().max(1) as f64
}

/// The share of the pages of `path` from byte `from` on that are cached.
fn resident_share(path: &Path, from: u64) -> f64 {
    share(&residency(path)[from as usize / os_page()..])
}

/// Whether these tests cannot run where the temp dir is: on tmpfs, which
/// keeps files in memory, there is no page cache to leave. That fails the
/// test (a test that passes without running proves nothing) unless
/// `ALLOW_TMPFS_SKIP=1` says the skip is wanted.
fn cannot_run_here(path: &Path) -> bool {
    if !on_tmpfs(path) {
        return false;
    }
    assert!(
        std::env::var_os("ALLOW_TMPFS_SKIP").is_some(),
        "{} is on tmpfs, where the page-cache tests cannot run: point TMPDIR at a disk, or set ALLOW_TMPFS_SKIP=1 to skip them",
        path.display()
    );
    eprintln!("SKIPPED (ALLOW_TMPFS_SKIP): {} is on tmpfs", path.display());
    true
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
    let (t, base) = copy_ten_batches(keep_cached, 0).await?;
    Some(resident_share(&t.path, base))
}

/// Copies 10 batches of a 1,500-row sample; returns the database and its
/// size before the copy (`None` where there is no page cache to watch).
async fn copy_ten_batches(keep_cached: u64, keep_btree: u64) -> Option<(TestDb, u64)> {
    let (t, _) = TestDb::sample(&small_spec(1500, 7)).await;
    if cannot_run_here(&t.path) {
        return None;
    }
    let base = std::fs::metadata(&t.path).unwrap().len();
    let stop = StopAfter::batches(10);
    let report = run_migration(&t.conn, &options(&t.path, keep_cached, keep_btree), &stop)
        .await
        .unwrap();
    assert!(report.interrupted);
    let grown = std::fs::metadata(&t.path).unwrap().len() - base;
    assert!(grown > 4 << 20, "the copy appended only {grown} bytes");
    Some((t, base))
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
    let stop = StopAfter::batches(3);
    // A budget of 16 B-tree pages: some are kept, then all are dropped.
    let first = run_migration(&t.conn, &options(&t.path, 0, 64 << 10), &stop)
        .await
        .unwrap();
    assert!(first.interrupted);
    // The second run's verification reads its rows ahead.
    let second = run_migration(&t.conn, &options(&t.path, 0, 64 << 10), &NoopObserver)
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

#[tokio::test]
async fn btree_pages_stay_cached_while_overflow_pages_leave() {
    let Some((t, base)) = copy_ten_batches(0, u64::MAX).await else {
        return;
    };
    let resident = residency(&t.path);
    // Only now read the file (which caches it) to tell the pages apart.
    let bytes = std::fs::read(&t.path).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert_eq!(page, os_page(), "the test maps database pages to OS pages");
    let (mut btree, mut other) = (Vec::new(), Vec::new());
    for (i, p) in bytes
        .chunks_exact(page)
        .enumerate()
        .skip(base as usize / page)
    {
        match p[0] {
            2 | 5 | 10 | 13 => btree.push(resident[i]),
            _ => other.push(resident[i]),
        }
    }
    assert!(
        btree.len() > 100 && other.len() > 100,
        "{} B-tree and {} other pages: the sample should have both",
        btree.len(),
        other.len()
    );
    assert!(
        share(&btree) > 0.9,
        "B-tree pages should stay cached: {:.0}% are",
        share(&btree) * 100.0
    );
    assert!(
        share(&other) < 0.1,
        "overflow pages should leave the cache: {:.0}% are cached",
        share(&other) * 100.0
    );
}

/// Polls the residency of `path` until `state` says it is done (`Ok`), at
/// most 20 s; otherwise `state` says what is cached where.
fn wait_for(what: &str, state: impl Fn(&[bool]) -> Result<(), String>, path: &Path) {
    let began = std::time::Instant::now();
    loop {
        let Err(cached) = state(&residency(path)) else {
            return;
        };
        assert!(
            began.elapsed() < std::time::Duration::from_secs(20),
            "waited 20 s for {what}: {cached}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_read_ahead_reads_ahead_of_the_verification_and_drops_behind_it() {
    use memory_storage_turso::migration::page_cache::{AppendedPages, ReadAhead, BEHIND};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    if cannot_run_here(dir.path()) {
        return;
    }
    // A "copy" appending 8 MiB per batch of 100 rows, 40 batches, its pages
    // dropped as it goes.
    const STEP: u64 = 8 << 20;
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let mut appended = AppendedPages::watch(Some(&LocalFile {
        path: path.clone(),
        keep_cached: 0,
        tail: 0,
        keep_btree: 0,
    }));
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![1u8; STEP as usize];
        for batch in 1..=40u64 {
            file.write_all(&chunk).unwrap();
            file.sync_data().unwrap();
            appended.release(batch * 100);
        }
    }
    let end = 4096 + 40 * STEP;
    // Waits for the dropping, which runs beside the copy.
    let region = appended.into_region();
    assert!(
        resident_share(&path, 4096) < 0.1,
        "the copy dropped its pages"
    );
    let read_ahead = ReadAhead::start(region, 0);
    let page = os_page() as u64;
    // The verification begins: the next 512 MiB (the whole file) are read.
    let whole = 1..(end / page) as usize;
    wait_for(
        "the pages ahead to be read",
        |r| match share(&r[whole.clone()]) {
            s if s > 0.9 => Ok(()),
            s => Err(format!("{:.0}% of the file is cached", s * 100.0)),
        },
        &path,
    );
    // It has seen 3,000 of the 4,000 rows, so it is at 240 MiB: what lies
    // more than BEHIND behind that is dropped, what lies ahead stays.
    let at = 4096 + 30 * STEP;
    // The verification read those rows before it reported them; reading
    // them here also waits out the kernel's reads still in flight, whose
    // pages are locked and so are not dropped (mincore counts them cached
    // as soon as they are asked for).
    {
        use std::io::Read;
        let file = std::fs::File::open(&path).unwrap();
        let read = std::io::copy(&mut file.take(at), &mut std::io::sink()).unwrap();
        assert_eq!(read, at);
    }
    read_ahead.verified(3000);
    let ahead = (at / page) as usize..(end / page) as usize;
    let behind = 1..((at - BEHIND - STEP) / page) as usize;
    wait_for(
        "the pages behind to be dropped",
        |r| match (share(&r[ahead.clone()]), share(&r[behind.clone()])) {
            (a, b) if a > 0.9 && b < 0.1 => Ok(()),
            (a, b) => Err(format!(
                "{:.0}% ahead and {:.0}% behind are cached",
                a * 100.0,
                b * 100.0
            )),
        },
        &path,
    );
    drop(read_ahead);
}

/// A dropped page the database reads again brings its neighbours back into
/// the cache (the kernel reads ahead of it, megabytes at a time): by the
/// end of the copy they are dropped again, and the B-tree pages kept stay.
#[test]
fn pages_read_back_after_their_drop_are_dropped_again_by_the_end() {
    use memory_storage_turso::migration::page_cache::AppendedPages;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    if cannot_run_here(dir.path()) {
        return;
    }
    let page = os_page();
    let mut header = vec![0u8; page];
    let field = if page == 65536 { 1 } else { page as u16 };
    header[16..18].copy_from_slice(&field.to_be_bytes());
    std::fs::write(&path, &header).unwrap();
    let mut appended = AppendedPages::watch(Some(&LocalFile {
        path: path.clone(),
        keep_cached: 0,
        tail: 0,
        keep_btree: u64::MAX,
    }));
    // Ten batches of 256 pages: every fourth a table leaf, the others
    // overflow pages, written a page at a time as the database does (a
    // longer write may be cached as one larger unit, a "folio", which the
    // kernel drops only whole).
    let btree = |i: usize| i % 4 == 0;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for batch in 0..10 {
            for i in 0..256 {
                let mut bytes = vec![0u8; page];
                bytes[0] = if btree(i) { 13 } else { 0 };
                file.write_all(&bytes).unwrap();
            }
            file.sync_data().unwrap();
            appended.release((batch + 1) * 100);
        }
    }
    let kinds = |r: &[bool]| {
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for (i, cached) in r.iter().enumerate().skip(1) {
            if btree(i - 1) {
                kept.push(*cached);
            } else {
                dropped.push(*cached);
            }
        }
        (share(&kept), share(&dropped))
    };
    wait_for(
        "the overflow pages to be dropped",
        |r| match kinds(r) {
            (k, d) if k > 0.9 && d < 0.1 => Ok(()),
            (k, d) => Err(format!(
                "{:.0}% of B-tree and {:.0}% of overflow pages are cached",
                k * 100.0,
                d * 100.0
            )),
        },
        &path,
    );
    // The database reads the whole file back, as read-ahead does.
    std::fs::read(&path).unwrap();
    assert!(resident_share(&path, page as u64) > 0.9, "the reads cache");
    drop(appended.into_region());
    let (kept, dropped) = kinds(&residency(&path));
    assert!(
        kept > 0.9,
        "B-tree pages should stay cached: {:.0}% are",
        kept * 100.0
    );
    assert!(
        dropped < 0.1,
        "overflow pages read back should leave the cache again: {:.0}% are cached",
        dropped * 100.0
    );
}
