//! The pages one copy appends to a local file, dropped from the page cache
//! batch by batch once durable, except the B-tree pages the item indexes
//! are built from right after the copy (within a budget). The dropping
//! (reading the new pages to sort them, and the kernel's work of removing
//! them) runs on a thread of its own, beside the copy's writes.
//!
//! Dropped pages come back: when the database reads one of them again,
//! the kernel reads ahead of it, up to megabytes (`read_ahead_kb`), and
//! more when the pages before it are cached, as the legacy table's are
//! right before the first appended page. So each time the released bytes
//! doubled (from [`SWEEP_STEP`] on), and once more when the copy ends,
//! what was released and is cached again is dropped again, but for the
//! B-tree pages kept.

use std::fs::File;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use super::pages::{page_size, Kept, Sieve};
use super::sys::{advise, cached_runs, os_page, read_at, Advice};
use super::{droppable, open, LocalFile};

/// Bytes read at a time to sort pages (small: the run's memory is flat and
/// under 64 MiB).
const CHUNK: u64 = 128 << 10;

/// A mark is recorded each time the file grew by this much.
const MARK_STEP: u64 = 8 << 20;

/// Released bytes at the first sweep of what came back into the cache;
/// the next sweeps come each time they doubled. A sweep asks the kernel
/// about every released page (measured: 17 ms a cached GB, less for one
/// not cached): over a 13 GB copy the sweeps during it ask about 15.5 GB
/// and the last one 13 GB, 28.5 GB in all.
pub(super) const SWEEP_STEP: u64 = 512 << 20;

/// Where the copy's rows went: the file offsets it had reached after
/// given numbers of rows, for reading them back in the same order.
#[derive(Debug)]
pub struct Region {
    pub(super) file: File,
    /// The file's size when the copy began.
    pub(super) start: u64,
    /// `(rows copied, file size)` after batches, increasing in both.
    pub(super) marks: Vec<(u64, u64)>,
    /// Whether appended pages were dropped (the run outgrew memory).
    pub(super) dropped: bool,
}

/// The pages one run appends to a local file, released batch by batch.
pub struct AppendedPages {
    /// The file and its size when the copy began.
    file: Option<(File, u64)>,
    keep_cached: u64,
    /// Sizes the file reached, to the dropping thread.
    sizes: Option<Sender<u64>>,
    worker: Option<JoinHandle<()>>,
    marks: Vec<(u64, u64)>,
    /// `(rows copied, file size)` after the last batch.
    last: Option<(u64, u64)>,
}

impl AppendedPages {
    /// Nothing to release (a remote or in-memory database).
    pub fn none() -> Self {
        AppendedPages {
            file: None,
            keep_cached: 0,
            sizes: None,
            worker: None,
            marks: Vec::new(),
            last: None,
        }
    }

    /// Watches `local` from its current size on. A file that cannot be
    /// opened, or a thread that cannot start, only leaves the pages alone:
    /// this is an optimization.
    pub fn watch(local: Option<&LocalFile>) -> Self {
        let Some(local) = local else {
            return Self::none();
        };
        let Some((file, base)) = open(&local.path) else {
            return Self::none();
        };
        let mut pages = Self::none();
        pages.keep_cached = local.keep_cached;
        if let Ok(own) = file.try_clone() {
            let mut dropper = Dropper::new(own, base, local);
            let (sizes, received) = channel::<u64>();
            let spawned = std::thread::Builder::new()
                .name("page-dropper".into())
                .spawn(move || {
                    while let Ok(mut len) = received.recv() {
                        // Only the latest size matters.
                        while let Ok(newer) = received.try_recv() {
                            len = newer;
                        }
                        dropper.drop_up_to(len);
                    }
                    dropper.sweep();
                });
            if let Ok(worker) = spawned {
                pages.sizes = Some(sizes);
                pages.worker = Some(worker);
            }
        }
        pages.file = Some((file, base));
        pages
    }

    /// Records where the copy stands and has the appended pages past what
    /// is kept dropped; call after the commit of the batch that brought the
    /// copy to `rows` rows.
    pub fn release(&mut self, rows: u64) {
        let Some((file, _)) = &self.file else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        let len = meta.len();
        self.last = Some((rows, len));
        if self
            .marks
            .last()
            .is_none_or(|&(_, at)| len >= at.saturating_add(MARK_STEP))
        {
            self.marks.push((rows, len));
        }
        if let Some(sizes) = &self.sizes {
            let _ = sizes.send(len);
        }
    }

    /// Waits until every release asked for is done.
    fn settle(&mut self) {
        self.sizes = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    /// What the copy appended, for [`super::ReadAhead`] (once every page
    /// to drop is dropped).
    pub fn into_region(mut self) -> Option<Region> {
        self.settle();
        let (file, start) = self.file.take()?;
        let mut marks = std::mem::take(&mut self.marks);
        if let Some(last) = self.last.filter(|l| marks.last() != Some(l)) {
            marks.push(last);
        }
        Some(Region {
            file,
            start,
            marks,
            dropped: self.keep_cached != u64::MAX,
        })
    }
}

impl Drop for AppendedPages {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Whether to sweep once `released` bytes are released, the last sweep
/// having covered `swept`.
fn sweep_due(swept: u64, released: u64) -> bool {
    released >= swept.saturating_mul(2).max(SWEEP_STEP)
}

/// Drops the pages appended after `base`, past the first `keep_cached`
/// bytes and short of the last `tail` bytes, keeping B-tree pages within
/// `keep_btree` bytes.
struct Dropper {
    file: File,
    base: u64,
    keep_cached: u64,
    tail: u64,
    /// End of the range already released.
    released: u64,
    /// The database's page size (0 until read).
    page: u64,
    /// Bytes of B-tree pages that may still be kept cached.
    keep_btree: u64,
    /// The B-tree pages kept (once the page size is known).
    kept: Option<Kept>,
    /// `released` at the last sweep.
    swept: u64,
    buffer: Vec<u8>,
}

impl Dropper {
    fn new(file: File, base: u64, local: &LocalFile) -> Self {
        Dropper {
            file,
            base,
            keep_cached: local.keep_cached,
            tail: local.tail,
            released: base.saturating_add(local.keep_cached),
            page: 0,
            keep_btree: local.keep_btree,
            kept: None,
            swept: base.saturating_add(local.keep_cached),
            buffer: Vec::new(),
        }
    }

    /// Where the bytes this may drop begin: past the first `keep_cached`
    /// appended after `base`.
    fn start(&self) -> u64 {
        self.base.saturating_add(self.keep_cached)
    }

    /// Drops what is droppable of a file now `len` bytes long, and what
    /// came back since the last sweep if the released range doubled since
    /// (or reached [`SWEEP_STEP`]).
    fn drop_up_to(&mut self, len: u64) {
        self.drop_new(len);
        let start = self.start();
        if sweep_due(
            self.swept.saturating_sub(start),
            self.released.saturating_sub(start),
        ) {
            self.sweep();
        }
    }

    /// Drops what is droppable of a file now `len` bytes long and was not
    /// released before.
    fn drop_new(&mut self, len: u64) {
        let file = &self.file;
        let Some((start, n)) = droppable(self.base, self.keep_cached, self.tail, len) else {
            return;
        };
        // What was released before stays released (the copy does not
        // read its own rows back): only the new part is advised.
        let (from, end) = (start.max(self.released), start + n);
        if end <= from {
            return;
        }
        if self.page == 0 {
            self.page = page_size(file).unwrap_or(u64::MAX);
        }
        let page = self.page;
        if page == u64::MAX || self.keep_btree < page || from % page != 0 {
            advise(file, from, end - from, Advice::DontNeed);
            self.released = end;
            return;
        }
        let end = end - end % page;
        let mut sieve = Sieve::new(page, from, self.keep_btree);
        let chunk = CHUNK.max(page);
        self.buffer.resize(chunk as usize, 0);
        let mut at = from;
        while at < end && sieve.budget >= page {
            let n = chunk.min(end - at);
            let buf = &mut self.buffer[..n as usize];
            if !read_at(file, buf, at) {
                break;
            }
            sieve.feed(at, buf, |a, n| advise(file, a, n, Advice::DontNeed));
            at += n;
        }
        sieve.finish(end, |a, n| advise(file, a, n, Advice::DontNeed));
        self.keep_btree = sieve.budget;
        self.released = end;
        let start = self.start();
        let kept = self.kept.get_or_insert_with(|| Kept::new(start, page));
        for offset in sieve.kept {
            kept.insert(offset);
        }
    }

    /// Drops again the released pages that are cached, but for the kept
    /// B-tree pages.
    fn sweep(&mut self) {
        let start = self.start();
        self.swept = self.released;
        if self.released <= start {
            return;
        }
        let (file, os) = (&self.file, os_page());
        let kept = |at: u64| self.kept.as_ref().is_some_and(|k| k.overlaps(at, at + os));
        // The run of pages to drop seen so far: (start, end).
        let mut run: Option<(u64, u64)> = None;
        for (from, n) in cached_runs(file, start, self.released - start) {
            let mut at = from;
            while at < from + n {
                let page = (at.max(start), (at + os).min(self.released));
                if kept(at) || page.0 >= page.1 {
                    if let Some((a, e)) = run.take() {
                        advise(file, a, e - a, Advice::DontNeed);
                    }
                } else {
                    run = match run {
                        Some((a, e)) if e == page.0 => Some((a, page.1)),
                        Some((a, e)) => {
                            advise(file, a, e - a, Advice::DontNeed);
                            Some(page)
                        }
                        None => Some(page),
                    };
                }
                at += os;
            }
        }
        if let Some((a, e)) = run {
            advise(file, a, e - a, Advice::DontNeed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TAIL;
    use super::*;

    fn local(path: &std::path::Path, keep_btree: u64) -> LocalFile {
        LocalFile {
            path: path.to_path_buf(),
            keep_cached: 0,
            tail: TAIL,
            keep_btree,
        }
    }

    fn dropper(path: &std::path::Path, keep_btree: u64) -> Dropper {
        let (file, base) = open(path).unwrap();
        Dropper::new(file, base, &local(path, keep_btree))
    }

    fn len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn sweeps_come_each_time_the_released_bytes_doubled() {
        let gib = 1u64 << 30;
        assert!(!sweep_due(0, SWEEP_STEP - 1));
        assert!(sweep_due(0, SWEEP_STEP));
        assert!(!sweep_due(SWEEP_STEP, 2 * SWEEP_STEP - 1));
        assert!(sweep_due(SWEEP_STEP, 2 * SWEEP_STEP));
        // A 13 GB copy: 5 sweeps before the last, over 15.5 GB in all.
        let (mut swept, mut scanned, mut sweeps) = (0, 0, 0);
        for released in (0..=13 * gib).step_by(8 << 20) {
            if sweep_due(swept, released) {
                (swept, scanned, sweeps) = (released, scanned + released, sweeps + 1);
            }
        }
        assert_eq!(sweeps, 5);
        assert!(scanned < 16 * gib, "{scanned}");
    }

    #[test]
    fn release_only_advances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let mut pages = dropper(&path, 0);
        assert_eq!(pages.released, 4096);
        std::fs::write(&path, vec![0u8; 4096 + (TAIL as usize) + 8192]).unwrap();
        pages.drop_up_to(len(&path));
        assert_eq!(pages.released, 4096 + 8192);
        pages.drop_up_to(len(&path));
        assert_eq!(pages.released, 4096 + 8192);
    }

    #[test]
    fn kept_btree_pages_are_taken_from_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // A header saying 4096-byte pages, then pages: leaf, overflow, leaf.
        let mut bytes = vec![0u8; 4096 * 4];
        bytes[16..18].copy_from_slice(&4096u16.to_be_bytes());
        std::fs::write(&path, &bytes[..4096]).unwrap();
        let mut pages = dropper(&path, 10 * 4096);
        bytes[4096] = 13;
        bytes[3 * 4096] = 13;
        bytes.resize(4 * 4096 + TAIL as usize, 0);
        std::fs::write(&path, &bytes).unwrap();
        pages.drop_up_to(len(&path));
        assert_eq!(pages.keep_btree, 8 * 4096);
        assert_eq!(pages.released, 4 * 4096);
    }

    #[test]
    fn marks_follow_the_file_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let mut pages = AppendedPages::watch(Some(&local(&path, 0)));
        pages.release(0);
        let grown = 4096 + MARK_STEP as usize;
        std::fs::write(&path, vec![0u8; grown]).unwrap();
        pages.release(100);
        // Grown by less than a step: no new mark.
        std::fs::write(&path, vec![0u8; grown + 2048]).unwrap();
        pages.release(100);
        assert_eq!(pages.marks.len(), 2);
        std::fs::write(&path, vec![0u8; grown + 4096]).unwrap();
        pages.release(101);
        let region = pages.into_region().unwrap();
        assert_eq!(region.start, 4096);
        // The last batch always ends the marks.
        assert_eq!(
            region.marks,
            vec![(0, 4096), (100, grown as u64), (101, grown as u64 + 4096)]
        );
        assert!(region.dropped);
    }
}
