//! Telling a database file's B-tree pages from its overflow pages, by the
//! first byte of each page (SQLite's file format: 2, 5, 10 and 13 are the
//! four B-tree page types; an overflow or freelist page starts with a page
//! number, whose first byte is 0 in any file under 64 GiB of 4 KiB pages).
//! A misread page is only cached or dropped wrongly: a later read of it
//! costs a disk read or a page of memory, never a wrong result.

use std::fs::File;

use super::sys::read_at;

/// The database's page size, from its header (`None` if unreadable).
pub(super) fn page_size(file: &File) -> Option<u64> {
    let mut field = [0u8; 2];
    if !read_at(file, &mut field, 16) {
        return None;
    }
    match u16::from_be_bytes(field) {
        1 => Some(65536),
        n if n >= 512 && n.is_power_of_two() => Some(n as u64),
        _ => None,
    }
}

/// Whether a page beginning with `first` is a B-tree page.
pub(super) fn is_btree(first: u8) -> bool {
    matches!(first, 0x02 | 0x05 | 0x0a | 0x0d)
}

/// Walks consecutive pages and yields the ranges to drop: every page but
/// the B-tree ones, while the budget of kept bytes lasts.
#[derive(Debug)]
pub(super) struct Sieve {
    page: u64,
    /// Bytes of B-tree pages that may still be kept.
    pub budget: u64,
    /// Start of the range of pages to drop seen so far.
    run: u64,
    /// The offsets of the pages kept since this was made.
    pub kept: Vec<u64>,
}

impl Sieve {
    /// Starts at byte `from` (a page boundary) of pages of `page` bytes.
    pub fn new(page: u64, from: u64, budget: u64) -> Self {
        Sieve {
            page,
            budget,
            run: from,
            kept: Vec::new(),
        }
    }

    /// Sorts the whole pages of `chunk`, read at byte `at`, calling `drop`
    /// for each range of pages to drop that ends before a kept page.
    pub fn feed(&mut self, at: u64, chunk: &[u8], mut drop: impl FnMut(u64, u64)) {
        for (i, page) in chunk.chunks_exact(self.page as usize).enumerate() {
            if self.budget < self.page || !is_btree(page[0]) {
                continue;
            }
            let offset = at + i as u64 * self.page;
            if offset > self.run {
                drop(self.run, offset - self.run);
            }
            self.budget -= self.page;
            self.run = offset + self.page;
            self.kept.push(offset);
        }
    }

    /// The last range to drop, up to `end`.
    pub fn finish(&mut self, end: u64, mut drop: impl FnMut(u64, u64)) {
        if end > self.run {
            drop(self.run, end - self.run);
        }
        self.run = end;
    }
}

/// The database pages kept cached, by number from a start offset (one bit
/// each: a million-row run keeps about 850,000, 100 KiB of bits).
#[derive(Debug)]
pub(super) struct Kept {
    start: u64,
    page: u64,
    words: Vec<u64>,
}

impl Kept {
    /// Pages of `page` bytes from byte `start` on (a page boundary).
    pub fn new(start: u64, page: u64) -> Self {
        Kept {
            start,
            page: page.max(1),
            words: Vec::new(),
        }
    }

    /// Records the page at `offset` as kept.
    pub fn insert(&mut self, offset: u64) {
        let Some(n) = offset.checked_sub(self.start).map(|d| d / self.page) else {
            return;
        };
        let word = (n / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (n % 64);
    }

    /// Whether a kept page overlaps the bytes `from..to`.
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        if to <= self.start || to <= from {
            return false;
        }
        let first = from.saturating_sub(self.start) / self.page;
        let last = (to - 1 - self.start) / self.page;
        (first..=last).any(|n| {
            self.words
                .get((n / 64) as usize)
                .is_some_and(|w| w & (1 << (n % 64)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    /// Pages of `P` bytes beginning with the given bytes.
    fn pages(firsts: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; firsts.len() * P as usize];
        for (i, b) in firsts.iter().enumerate() {
            v[i * P as usize] = *b;
        }
        v
    }

    fn sieve(firsts: &[u8], budget: u64) -> (Vec<(u64, u64)>, u64) {
        let base = 10 * P;
        let mut sieve = Sieve::new(P, base, budget);
        let mut dropped = Vec::new();
        sieve.feed(base, &pages(firsts), |a, n| dropped.push((a, n)));
        sieve.finish(base + firsts.len() as u64 * P, |a, n| dropped.push((a, n)));
        let dropped = dropped.into_iter().map(|(a, n)| (a - base, n)).collect();
        (dropped, sieve.budget)
    }

    #[test]
    fn only_the_four_btree_page_types_are_btree_pages() {
        let kept: Vec<u8> = (0..=255u8).filter(|b| is_btree(*b)).collect();
        assert_eq!(kept, vec![2, 5, 10, 13]);
    }

    #[test]
    fn overflow_pages_are_dropped_and_btree_pages_kept() {
        // leaf, overflow, overflow, interior, overflow, index leaf
        let (dropped, budget) = sieve(&[13, 0, 0, 5, 0, 10], 100 * P);
        assert_eq!(dropped, vec![(P, 2 * P), (4 * P, P)]);
        assert_eq!(budget, 97 * P);
    }

    #[test]
    fn the_sieve_says_which_pages_it_kept() {
        let base = 10 * P;
        let mut sieve = Sieve::new(P, base, 2 * P);
        sieve.feed(base, &pages(&[0, 13, 0, 5, 13]), |_, _| {});
        assert_eq!(sieve.kept, vec![base + P, base + 3 * P]);
    }

    #[test]
    fn kept_pages_are_told_by_the_bytes_they_cover() {
        let mut kept = Kept::new(10 * P, P);
        kept.insert(10 * P + P);
        kept.insert(10 * P + 100 * P);
        // Before the start: ignored.
        kept.insert(P);
        assert!(!kept.overlaps(0, 10 * P + P));
        assert!(kept.overlaps(10 * P + P, 10 * P + 2 * P));
        assert!(!kept.overlaps(10 * P + 2 * P, 10 * P + 100 * P));
        assert!(kept.overlaps(10 * P + 99 * P, 10 * P + 101 * P));
        // Smaller database pages than the system's: any of them counts.
        let mut small = Kept::new(0, 1024);
        small.insert(3 * 1024);
        assert!(small.overlaps(0, 4096));
        assert!(!small.overlaps(4096, 8192));
    }

    #[test]
    fn once_the_budget_is_spent_everything_is_dropped() {
        let (dropped, budget) = sieve(&[13, 0, 13, 0, 13], 2 * P);
        assert_eq!(dropped, vec![(P, P), (3 * P, 2 * P)]);
        assert_eq!(budget, 0);
        let (dropped, _) = sieve(&[13, 0, 13], 0);
        assert_eq!(dropped, vec![(0, 3 * P)]);
    }

    #[test]
    fn a_range_of_btree_pages_drops_nothing() {
        assert_eq!(sieve(&[13, 13, 2], u64::MAX).0, vec![]);
    }

    #[test]
    fn chunks_fed_one_after_another_give_the_same_ranges() {
        let firsts = [0, 13, 0, 0, 13, 13, 0, 2, 0];
        let (whole, _) = sieve(&firsts, u64::MAX);
        let base = 10 * P;
        let mut sieve = Sieve::new(P, base, u64::MAX);
        let mut dropped = Vec::new();
        for (i, part) in firsts.chunks(2).enumerate() {
            let at = base + 2 * i as u64 * P;
            sieve.feed(at, &pages(part), |a, n| dropped.push((a - base, n)));
        }
        sieve.finish(base + firsts.len() as u64 * P, |a, n| {
            dropped.push((a - base, n))
        });
        assert_eq!(dropped, whole);
    }

    #[test]
    fn the_page_size_is_read_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let mut header = vec![0u8; 100];
        header[16..18].copy_from_slice(&8192u16.to_be_bytes());
        std::fs::write(&path, &header).unwrap();
        assert_eq!(page_size(&File::open(&path).unwrap()), Some(8192));
        header[16..18].copy_from_slice(&1u16.to_be_bytes());
        std::fs::write(&path, &header).unwrap();
        assert_eq!(page_size(&File::open(&path).unwrap()), Some(65536));
        header[16..18].copy_from_slice(&1000u16.to_be_bytes());
        std::fs::write(&path, &header).unwrap();
        assert_eq!(page_size(&File::open(&path).unwrap()), None);
    }
}
