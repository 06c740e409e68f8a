//! A scratch database file in the system's temporary directory, for the
//! dry run's measurements (the user's database is never written by them).
//! A file rather than `:memory:`: what is measured is what a build on a
//! file costs, its page cache misses, journal and syncs included.
//!
//! A scratch is removed when it is dropped. A process ended at once (a
//! second Ctrl-C, SIGTERM) removes its own first
//! ([`remove_this_process_scratch`]); one killed outright leaves its
//! scratch behind, and the next process to open a scratch on the machine
//! removes it (its folder names the process, which is gone).

use libsql::{Builder, Connection};

use crate::error::{DbContext, Result};

/// The scratch database; its folder is removed when this is dropped.
pub(crate) struct Scratch {
    dir: std::path::PathBuf,
    pub conn: Connection,
    _db: libsql::Database,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What every scratch folder's name starts with, before the process id.
const PREFIX: &str = "migrate-embeddings-scratch-";

/// The scratch folders in the temporary directory, with the id of the
/// process that made each.
fn scratch_folders() -> Vec<(std::path::PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let pid = name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()?;
            Some((e.path(), pid))
        })
        .collect()
}

/// Set once this process is ending: no new scratch is opened.
static ENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Passes of [`remove_this_process_scratch`] that found nothing left,
/// and the pause between passes. The plan's build goes on in another
/// thread while the process ends: a journal it created while a pass was
/// removing its folder leaves the folder behind (its removal then fails:
/// not empty), and a scratch being opened as the process began to end
/// appears after the first pass. A CI run saw one left so.
const CLEAN_PASSES: u32 = 2;
const BETWEEN_PASSES: std::time::Duration = std::time::Duration::from_millis(20);

/// Removes every scratch database this process made, for a process about
/// to end without unwinding (a second Ctrl-C, SIGTERM). Opens no new one
/// from then on, and removes again until passes in a row find none (at
/// most a second).
pub fn remove_this_process_scratch() {
    ENDING.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut clean = 0;
    for _ in 0..50 {
        if remove_scratch_of(std::process::id()) {
            clean = 0;
        } else {
            clean += 1;
            if clean == CLEAN_PASSES {
                return;
            }
        }
        std::thread::sleep(BETWEEN_PASSES);
    }
}

/// Removes the scratch folders of `process`; whether there were any.
fn remove_scratch_of(process: u32) -> bool {
    let mut found = false;
    for (dir, pid) in scratch_folders() {
        if pid == process {
            found = true;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    found
}

/// A scratch folder nothing wrote to for this long, its process gone, is
/// abandoned (a process in another PID namespace sharing the temporary
/// directory is not in `/proc`, but its live scratch is written to all
/// the time).
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// When `dir` or anything in it was last written.
fn last_written(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).ok()?.modified().ok()?;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    Some(newest)
}

/// Removes the scratch folders of processes that are gone (killed before
/// they could remove them), once nothing has written to them for
/// [`ABANDONED_AFTER`]. Where the system does not say which processes run
/// (no `/proc`), nothing is removed.
fn remove_abandoned() {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    for (dir, pid) in scratch_folders() {
        let idle = last_written(&dir)
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|idle| idle >= ABANDONED_AFTER);
        if idle && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens a new, empty scratch database; `purpose` names it in errors.
pub(crate) async fn open(purpose: &str) -> Result<Scratch> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Once a process: a plan opens a scratch for every build.
    static CLEARED: std::sync::Once = std::sync::Once::new();
    CLEARED.call_once(remove_abandoned);
    if ENDING.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(crate::error::Error::Database {
            context: format!("opening a scratch database for {purpose}"),
            source: libsql::Error::Misuse("the process is ending".into()),
        });
    }
    let dir = std::env::temp_dir().join(format!(
        "{PREFIX}{}-{}-{}",
        std::process::id(),
        super::write::unix_now(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("scratch.db");
    let ctx = || format!("opening a scratch database for {purpose}");
    let db = Builder::new_local(&path).build().await.db_context(ctx)?;
    let conn = db.connect().db_context(ctx)?;
    Ok(Scratch { dir, conn, _db: db })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// A scratch folder as a process `pid` leaves it, last written `ago`.
    fn left_behind(pid: u32, ago: Duration) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{PREFIX}{pid}-1-0"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join("scratch.db")).unwrap();
        let then = SystemTime::now() - ago;
        file.set_modified(then).unwrap();
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(then)
            .unwrap();
        dir
    }

    /// A process id no process has: above Linux's largest.
    const GONE: u32 = 4_194_304 + 17;

    #[tokio::test]
    async fn a_scratch_its_process_left_long_ago_is_removed_and_no_other() {
        let abandoned = left_behind(GONE, Duration::from_secs(3600));
        let recent = left_behind(GONE + 1, Duration::from_secs(60));
        let live = left_behind(std::process::id(), Duration::from_secs(3600));
        // What the first scratch a process opens does (other tests in this
        // process may have opened theirs already).
        remove_abandoned();
        let opened = open("a test").await.unwrap();
        assert!(opened.dir.exists());
        assert!(!abandoned.exists(), "the abandoned scratch is still there");
        assert!(
            recent.exists(),
            "a scratch written a minute ago was removed"
        );
        assert!(live.exists(), "a live process's scratch was removed");
        drop(opened);
        let _ = std::fs::remove_dir_all(live);
        // A process ending at once removes its own, and only its own (not
        // this test's: other tests in this process use theirs).
        let ending = left_behind(GONE + 2, Duration::ZERO);
        remove_scratch_of(GONE + 2);
        assert!(!ending.exists());
        assert!(recent.exists());
        let _ = std::fs::remove_dir_all(recent);
    }
}
