//! The `metadata` key/value table: the migration's completion record, the
//! backup's digest and the legacy schema kept for a rollback.

use libsql::{Connection, Value};

use crate::db::unix_now;
use crate::error::{DbContext, Result};
use crate::schema::{object_exists, METADATA_TABLE, METADATA_TABLE_SQL};

/// When the migration last completed (Unix seconds).
pub const COMPLETED_AT: &str = "embeddings_migration.completed_at";
/// Rows migrated per table, as JSON.
pub const ROW_COUNTS: &str = "embeddings_migration.row_counts";
/// Rows left in quarantine at completion.
pub const QUARANTINED: &str = "embeddings_migration.quarantined";
/// The schema version the database is at.
pub const SCHEMA_VERSION: &str = "schema_version";
/// Rows in `embeddings_backup` when it was made.
pub const BACKUP_ROWS: &str = "embeddings_migration.backup_rows";
/// Checksum of `embeddings_backup` when it was made.
pub const BACKUP_CHECKSUM: &str = "embeddings_migration.backup_checksum";
/// The name of the backup table the migration made (`--backup-table`);
/// absent in a database an older version backed up to `embeddings_backup`.
pub const BACKUP_TABLE_NAME: &str = "embeddings_migration.backup_table";
/// The CREATE statements of the legacy table and its indexes (JSON list).
pub const LEGACY_SCHEMA: &str = "embeddings_migration.legacy_schema";
/// When the legacy table was dropped.
pub const LEGACY_DROPPED_AT: &str = "embeddings_migration.legacy_dropped_at";
/// Target tables this migration created (JSON list), for a rollback.
pub const CREATED_TABLES: &str = "embeddings_migration.created_tables";

/// Prefix of every key the migration owns.
pub const PREFIX: &str = "embeddings_migration.";

/// Sets `key` (creating the table if missing).
pub async fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    let ctx = || format!("recording {key} in {METADATA_TABLE}");
    conn.execute(METADATA_TABLE_SQL, ()).await.db_context(ctx)?;
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {METADATA_TABLE} (key, value, updated_at) VALUES (?1, ?2, ?3)"
        ),
        vec![
            Value::Text(key.to_string()),
            Value::Text(value.to_string()),
            Value::Integer(unix_now()),
        ],
    )
    .await
    .db_context(ctx)?;
    Ok(())
}

/// Removes `key`, if the table and the key exist.
pub async fn remove(conn: &Connection, key: &str) -> Result<()> {
    if !object_exists(conn, METADATA_TABLE).await? {
        return Ok(());
    }
    let ctx = || format!("removing {key} from {METADATA_TABLE}");
    conn.execute(
        &format!("DELETE FROM {METADATA_TABLE} WHERE key = ?1"),
        [key],
    )
    .await
    .db_context(ctx)?;
    Ok(())
}

/// Reads `key`.
pub async fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    if !object_exists(conn, METADATA_TABLE).await? {
        return Ok(None);
    }
    let ctx = || format!("reading {key} from {METADATA_TABLE}");
    let mut rows = conn
        .query(
            &format!("SELECT value FROM {METADATA_TABLE} WHERE key = ?1"),
            [key],
        )
        .await
        .db_context(ctx)?;
    match rows.next().await.db_context(ctx)? {
        Some(row) => Ok(Some(row.get::<String>(0).db_context(ctx)?)),
        None => Ok(None),
    }
}

/// The target tables the migration created ([`CREATED_TABLES`]; empty
/// when none is recorded).
pub async fn created_tables(conn: &Connection) -> Result<Vec<String>> {
    Ok(get(conn, CREATED_TABLES)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}
