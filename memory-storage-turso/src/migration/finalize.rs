//! The destructive end of a migration: dropping the legacy table, only
//! after this run verified every row, and only with a verified backup, all
//! inside one write transaction so nothing can change in between.

use libsql::Connection;

use super::backup::{check_backup_table, digest, make_backup_table, BackupState};
use super::backup::{BackupTableName, TableDigest};
use super::error::{MigrateError, Result};
use super::metadata;
pub use super::report::DropReport;
use super::report::ExtraColumn;
use super::write::{in_transaction, unix_now};
use crate::error::DbContext;
use crate::schema::{table_columns, LEGACY_TABLE};

/// Why a drop is refused while extra legacy columns hold data.
pub fn extra_columns_refusal(holding: &[ExtraColumn]) -> String {
    format!(
        "{} of `embeddings` are not carried to the new tables (--ignore-extra-columns), and dropping the table would lose their values: copy what you need out of them (or set them to NULL), then run again",
        ExtraColumn::list(holding)
    )
}

/// Drops `embeddings`. `verified` is the digest of the legacy table taken
/// by this run's passing verification: the table must still hold exactly
/// that (checked under the write lock), its columns the new tables lack
/// must hold no value, and the backup table `backup` must hold it too
/// (made here when missing, re-made when it is the migration's own and
/// stale; a table of that name the migration did not make is refused).
pub async fn drop_legacy(
    conn: &Connection,
    verified: &TableDigest,
    backup: &BackupTableName,
) -> Result<DropReport> {
    let ctx = || format!("dropping {LEGACY_TABLE}");
    in_transaction(conn, "dropping the legacy table", async {
        let now = digest(conn, LEGACY_TABLE).await?;
        if &now != verified {
            return Err(MigrateError::ChangedSinceVerification);
        }
        let columns = table_columns(conn, LEGACY_TABLE).await?;
        let holding: Vec<ExtraColumn> = super::extra_columns::find(conn, &columns)
            .await?
            .into_iter()
            .filter(|c| c.rows_with_data > 0)
            .collect();
        if !holding.is_empty() {
            return Err(MigrateError::DropRefused(extra_columns_refusal(&holding)));
        }
        let state = check_backup_table(conn, backup).await?;
        let (digest, refreshed) = match &state {
            BackupState::Own(held) if held == verified => (held.clone(), false),
            _ => (make_backup_table(conn, backup, &state).await?, true),
        };
        conn.execute(&format!("DROP TABLE {LEGACY_TABLE}"), ())
            .await
            .db_context(ctx)?;
        metadata::set(conn, metadata::LEGACY_DROPPED_AT, &unix_now().to_string()).await?;
        Ok(DropReport {
            backup_table: backup.to_string(),
            backup: digest,
            backup_refreshed: refreshed,
        })
    })
    .await
}
