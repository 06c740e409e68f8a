//! The pages one copy appends to a local file, dropped from the page cache
//! batch by batch once durable, except the B-tree pages the item indexes
//! are built from right after the copy (within a budget).

use std::fs::File;

use super::pages::{page_size, Sieve};
use super::sys::{advise, read_at, Advice};
use super::{droppable, open, LocalFile};

/// Bytes read at a time to sort pages.
const CHUNK: u64 = 1 << 20;

/// A mark is recorded each time the file grew by this much.
const MARK_STEP: u64 = 8 << 20;

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
    file: Option<(File, u64)>,
    keep_cached: u64,
    tail: u64,
    /// End of the range already released.
    released: u64,
    /// The database's page size (0 until read).
    page: u64,
    /// Bytes of B-tree pages that may still be kept cached.
    keep_btree: u64,
    buffer: Vec<u8>,
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
            tail: 0,
            released: 0,
            page: 0,
            keep_btree: 0,
            buffer: Vec::new(),
            marks: Vec::new(),
            last: None,
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
                keep_btree: local.keep_btree,
                ..Self::none()
            },
            None => Self::none(),
        }
    }

    /// Drops the appended pages past what is kept; call after the commit
    /// of the batch that brought the copy to `rows` rows.
    pub fn release(&mut self, rows: u64) {
        let Some((file, base)) = &self.file else {
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
        let Some((start, n)) = droppable(*base, self.keep_cached, self.tail, len) else {
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
    }

    /// What the copy appended, for [`super::ReadAhead`].
    pub fn into_region(mut self) -> Option<Region> {
        let (file, start) = self.file?;
        if let Some(last) = self.last.filter(|l| self.marks.last() != Some(l)) {
            self.marks.push(last);
        }
        Some(Region {
            file,
            start,
            marks: self.marks,
            dropped: self.keep_cached != u64::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::TAIL;
    use super::*;

    fn watch(path: &std::path::Path, keep_btree: u64) -> AppendedPages {
        AppendedPages::watch(Some(&LocalFile {
            path: path.to_path_buf(),
            keep_cached: 0,
            tail: TAIL,
            keep_btree,
        }))
    }

    #[test]
    fn release_only_advances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let mut pages = watch(&path, 0);
        assert_eq!(pages.released, 4096);
        std::fs::write(&path, vec![0u8; 4096 + (TAIL as usize) + 8192]).unwrap();
        pages.release(10);
        assert_eq!(pages.released, 4096 + 8192);
        pages.release(10);
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
        let mut pages = watch(&path, 10 * 4096);
        bytes[4096] = 13;
        bytes[3 * 4096] = 13;
        bytes.resize(4 * 4096 + TAIL as usize, 0);
        std::fs::write(&path, &bytes).unwrap();
        pages.release(3);
        assert_eq!(pages.keep_btree, 8 * 4096);
        assert_eq!(pages.released, 4 * 4096);
    }

    #[test]
    fn marks_follow_the_file_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let mut pages = watch(&path, 0);
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
