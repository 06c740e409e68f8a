//! The machine's own cost of writing bytes to a file: the baseline that tells
//! the scaling run's per-row growth that comes from the kernel and the disk
//! apart from growth that comes from the migration.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

/// SQLite's page size in the databases we write: the size of each write.
const PAGE: usize = 4096;

/// How long to wait before writing. Memory freed by deleting the previous
/// database is handed back to the hypervisor by the guest kernel's free page
/// reporting after about two seconds; a write right after the delete would
/// reuse those pages and look cheaper than the migration's writes were.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Seconds to write `bytes` into a fresh file in `dir` as `PAGE`-sized
/// writes, then `fsync` it: the same bytes a migration added to its database,
/// written with nothing else to do, after waiting `settle`. The file is
/// removed afterwards.
pub fn write_seconds(dir: &Path, bytes: u64, settle: std::time::Duration) -> Result<f64> {
    std::thread::sleep(settle);
    let path = dir.join("write-baseline.bin");
    let page = vec![0x5au8; PAGE];
    let began = Instant::now();
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(PAGE as u64) as usize;
        file.write_all(&page[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    let seconds = began.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_bytes_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seconds = write_seconds(dir.path(), 3 * PAGE as u64 + 7, std::time::Duration::ZERO)
            .expect("baseline");
        assert!(seconds > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
    }
}
