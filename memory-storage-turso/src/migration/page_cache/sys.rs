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
