//! The destructive end of a migration: dropping the legacy table, only
//! after this run verified every row, and only with a verified backup, all
//! inside one write transaction so nothing can change in between.

use libsql::Connection;

use super::backup::{digest, make_backup_table, recorded_digest, TableDigest};
use super::metadata;
use super::write::{in_transaction, unix_now};
use crate::error::{DbContext, Error, Result};
use crate::schema::{object_exists, BACKUP_TABLE, LEGACY_TABLE};

/// How the legacy table was dropped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DropReport {
    /// The backup that holds every legacy row.
    pub backup: TableDigest,
    /// Whether the backup had to be (re)made inside the drop transaction.
    pub backup_refreshed: bool,
}

/// Drops `embeddings`. `verified` is the digest of the legacy table taken
/// by this run's passing verification: the table must still hold exactly
/// that (checked under the write lock), and `embeddings_backup` must hold
/// it too (remade here when it does not).
pub async fn drop_legacy(conn: &Connection, verified: &TableDigest) -> Result<DropReport> {
    let ctx = || format!("dropping {LEGACY_TABLE}");
    in_transaction(conn, "dropping the legacy table", async {
        let now = digest(conn, LEGACY_TABLE).await?;
        if &now != verified {
            return Err(Error::ChangedSinceVerification);
        }
        let recorded = recorded_digest(conn).await?;
        let mut refreshed = false;
        let backup = if recorded.as_ref() == Some(verified)
            && object_exists(conn, BACKUP_TABLE).await?
            && digest(conn, BACKUP_TABLE).await? == *verified
        {
            verified.clone()
        } else {
            refreshed = true;
            make_backup_table(conn).await?
        };
        conn.execute(&format!("DROP TABLE {LEGACY_TABLE}"), ())
            .await
            .db_context(ctx)?;
        metadata::set(conn, metadata::LEGACY_DROPPED_AT, &unix_now().to_string()).await?;
        Ok(DropReport {
            backup,
            backup_refreshed: refreshed,
        })
    })
    .await
}
