//! The system calls behind the page cache's management: advice to the
//! kernel (ignored where unsupported: it never changes what a read returns)
//! and the machine's memory.

use std::fs::File;

/// What to tell the kernel about a byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Advice {
    /// Drop the range's clean cached pages.
    DontNeed,
    /// Start reading the range into the cache now, without waiting.
    WillNeed,
}

#[cfg(target_os = "linux")]
pub(super) fn advise(file: &File, offset: u64, len: u64, advice: Advice) {
    use std::os::unix::io::AsRawFd;
    let advice = match advice {
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
        Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
    };
    // SAFETY: posix_fadvise reads no memory of ours; the descriptor is
    // open for as long as `file` lives. Its result is advisory and ignored.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            advice,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn advise(_file: &File, _offset: u64, _len: u64, _advice: Advice) {}

/// The system's page size (4096 where unknown).
#[cfg(unix)]
pub(super) fn os_page() -> u64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    }
}

#[cfg(not(unix))]
pub(super) fn os_page() -> u64 {
    4096
}

/// The byte ranges of `file` within `offset..offset + len` whose pages
/// are in the page cache, in order and at [`os_page`] boundaries (none
/// where this cannot be told). Nothing is read: a read-only mapping of
/// the range, 1 GiB at a time, is asked which of its pages are resident.
#[cfg(target_os = "linux")]
pub(super) fn cached_runs(file: &File, offset: u64, len: u64) -> Vec<(u64, u64)> {
    use std::os::unix::io::AsRawFd;
    const AT_ONCE: u64 = 1 << 30;
    let page = os_page();
    let end = offset.saturating_add(len);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut resident = Vec::new();
    let mut at = offset - offset % page;
    while at < end {
        let n = AT_ONCE.min(end - at);
        resident.clear();
        resident.resize(n.div_ceil(page) as usize, 0u8);
        // SAFETY: a private read-only mapping of `n` bytes of an open file
        // at a page-aligned offset, never accessed (so never faulted, even
        // past the file's end) and unmapped before the next; mincore
        // writes one byte per page into `resident`, which has one per page.
        let asked = unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                n as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                at as libc::off_t,
            );
            if map == libc::MAP_FAILED {
                return runs;
            }
            let asked = libc::mincore(map, n as usize, resident.as_mut_ptr());
            libc::munmap(map, n as usize);
            asked
        };
        if asked != 0 {
            return runs;
        }
        for (i, r) in resident.iter().enumerate() {
            if r & 1 == 0 {
                continue;
            }
            let from = at + i as u64 * page;
            match runs.last_mut() {
                Some((a, l)) if *a + *l == from => *l += page,
                _ => runs.push((from, page)),
            }
        }
        at += n;
    }
    runs
}

#[cfg(not(target_os = "linux"))]
pub(super) fn cached_runs(_file: &File, _offset: u64, _len: u64) -> Vec<(u64, u64)> {
    Vec::new()
}

/// Reads `buf.len()` bytes at `offset`; `false` if it could not.
#[cfg(unix)]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> bool {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).is_ok()
}

#[cfg(not(unix))]
pub(super) fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> bool {
    false
}

/// The machine's physical memory in bytes (`u64::MAX` if unknown).
#[cfg(unix)]
pub(super) fn physical_memory() -> u64 {
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
pub(super) fn physical_memory() -> u64 {
    u64::MAX
}
