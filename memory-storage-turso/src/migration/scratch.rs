//! A scratch database file in the system's temporary directory, for the
//! dry run's measurements (the user's database is never written by them).
//! A file rather than `:memory:`: what is measured is what a build on a
//! file costs, its page cache misses, journal and syncs included.

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

/// Opens a new, empty scratch database; `purpose` names it in errors.
pub(crate) async fn open(purpose: &str) -> Result<Scratch> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "migrate-embeddings-scratch-{}-{}-{}",
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
