//! One migration at a time: a lock row in the database naming its holder
//! (host, pid, start time), refreshed with every batch, taken over when its
//! holder is gone.

use libsql::{Connection, Value};

use super::error::{MigrateError, Result};
pub use super::report::LockHolder;
use crate::db::{in_transaction, unix_now};
use crate::error::DbContext;
use crate::schema::{LOCK_TABLE, LOCK_TABLE_SQL};

/// A lock not refreshed for this long is stale even when its holder runs
/// on another host (a batch refreshes it every few seconds at most).
pub const STALE_AFTER_SECS: i64 = 120;

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn process_alive(pid: i64) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // unknown: rely on the heartbeat
    }
}

/// Whether a holder's lock can be taken over: its process is gone (same
/// host), or it has not refreshed the lock for [`STALE_AFTER_SECS`].
pub fn is_stale(holder: &LockHolder, host: &str) -> bool {
    let silent = unix_now() - holder.heartbeat_at > STALE_AFTER_SECS;
    let gone = holder.host == host && !process_alive(holder.pid);
    silent || gone
}

/// Reads the current holder, if any.
pub async fn current_holder(conn: &Connection) -> crate::Result<Option<LockHolder>> {
    if !crate::schema::object_exists(conn, LOCK_TABLE).await? {
        return Ok(None);
    }
    let ctx = || "reading the migration lock".to_string();
    let mut rows = conn
        .query(
            &format!("SELECT host, pid, started_at, heartbeat_at FROM {LOCK_TABLE} WHERE id = 1"),
            (),
        )
        .await
        .db_context(ctx)?;
    let Some(row) = rows.next().await.db_context(ctx)? else {
        return Ok(None);
    };
    Ok(Some(LockHolder {
        host: row.get::<String>(0).db_context(ctx)?,
        pid: row.get::<i64>(1).db_context(ctx)?,
        started_at: row.get::<i64>(2).db_context(ctx)?,
        heartbeat_at: row.get::<i64>(3).db_context(ctx)?,
    }))
}

/// The lock this run holds.
#[derive(Debug, Clone)]
pub struct MigrationLock {
    pub host: String,
    pub pid: i64,
    pub started_at: i64,
    /// The stale holder this run took the lock over from, if any.
    pub took_over_from: Option<LockHolder>,
}

impl MigrationLock {
    /// Takes the lock, in one write transaction: fails with
    /// [`MigrateError::LockHeld`] naming the holder while another live migration
    /// holds it; takes over a stale one.
    pub async fn acquire(conn: &Connection) -> Result<MigrationLock> {
        let ctx = || "taking the migration lock".to_string();
        conn.execute(LOCK_TABLE_SQL, ()).await.db_context(ctx)?;
        in_transaction(conn, "taking the migration lock", async {
            let host = host_name();
            let holder = current_holder(conn).await?;
            if let Some(h) = &holder {
                if !is_stale(h, &host) {
                    return Err(MigrateError::LockHeld { holder: h.clone() });
                }
            }
            let now = unix_now();
            let pid = i64::from(std::process::id());
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO {LOCK_TABLE} (id, host, pid, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3, ?3)"
                ),
                vec![Value::Text(host.clone()), Value::Integer(pid), Value::Integer(now)],
            )
            .await
            .db_context(ctx)?;
            Ok(MigrationLock {
                host,
                pid,
                started_at: now,
                took_over_from: holder,
            })
        })
        .await
    }

    /// Refreshes the heartbeat (call inside a batch transaction) and checks
    /// that the lock is still ours.
    pub async fn refresh(&self, conn: &Connection) -> Result<()> {
        let ctx = || "refreshing the migration lock".to_string();
        let changed = conn
            .execute(
                &format!("UPDATE {LOCK_TABLE} SET heartbeat_at = ?1 WHERE id = 1 AND host = ?2 AND pid = ?3 AND started_at = ?4"),
                vec![
                    Value::Integer(unix_now()),
                    Value::Text(self.host.clone()),
                    Value::Integer(self.pid),
                    Value::Integer(self.started_at),
                ],
            )
            .await
            .db_context(ctx)?;
        if changed == 0 {
            return Err(MigrateError::LockLost {
                holder: current_holder(conn).await?,
            });
        }
        Ok(())
    }

    /// [`MigrationLock::refresh`] as statements of a deferred batch: the
    /// update, then a statement that fails unless it changed the row.
    pub(crate) fn refresh_statements(&self) -> [crate::connect::pipeline::Statement; 2] {
        use crate::connect::pipeline::{fail_unless, Statement};
        [
            Statement::new(
                format!("UPDATE {LOCK_TABLE} SET heartbeat_at = ?1 WHERE id = 1 AND host = ?2 AND pid = ?3 AND started_at = ?4"),
                vec![
                    Value::Integer(unix_now()),
                    Value::Text(self.host.clone()),
                    Value::Integer(self.pid),
                    Value::Integer(self.started_at),
                ],
            ),
            Statement::new(fail_unless("changes() = 1"), vec![]),
        ]
    }

    /// Releases the lock if it is still ours.
    pub async fn release(&self, conn: &Connection) -> Result<()> {
        conn.execute(
            &format!("DELETE FROM {LOCK_TABLE} WHERE id = 1 AND host = ?1 AND pid = ?2 AND started_at = ?3"),
            vec![
                Value::Text(self.host.clone()),
                Value::Integer(self.pid),
                Value::Integer(self.started_at),
            ],
        )
        .await
        .db_context(|| "releasing the migration lock".to_string())?;
        Ok(())
    }
}
