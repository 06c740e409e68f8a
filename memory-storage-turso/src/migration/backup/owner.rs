//! Whose the backup table is. The migration replaces or reads back only a
//! backup it made itself: its name and digest are recorded in `metadata`
//! and the table still holds exactly that digest. Any other object of that
//! name is the user's and is never touched.

use libsql::Connection;

use super::name::BackupTableName;
use super::{digest_backup, recorded_digest, TableDigest};
use crate::error::DbContext;
use crate::migration::error::{MigrateError, Result};
use crate::migration::metadata;
use crate::schema::{table_columns, COLUMNS};

/// What [`check_backup_table`] found under the backup table's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupState {
    /// Nothing of that name: the migration may create the table.
    Missing,
    /// The migration's own backup, still holding the digest it recorded.
    Own(TableDigest),
}

/// The backup table the migration recorded making, if any. A database
/// backed up by an older version records a digest but no name: its backup
/// is `embeddings_backup`.
pub async fn recorded_name(conn: &Connection) -> Result<Option<BackupTableName>> {
    match metadata::get(conn, metadata::BACKUP_TABLE_NAME).await? {
        // A recorded name that does not parse is not used in SQL.
        Some(name) => Ok(BackupTableName::parse(&name).ok()),
        None if recorded_digest(conn).await?.is_some() => Ok(Some(BackupTableName::default())),
        None => Ok(None),
    }
}

/// The backup table a run uses: the one `--backup-table` names, else the
/// one the migration recorded, else `embeddings_backup`.
pub async fn resolve_name(conn: &Connection, explicit: Option<&str>) -> Result<BackupTableName> {
    if let Some(name) = explicit {
        return BackupTableName::parse(name);
    }
    Ok(recorded_name(conn).await?.unwrap_or_default())
}

/// The type of the schema object named `name` (ASCII case ignored, as
/// SQLite does), if there is one.
async fn object_type(conn: &Connection, name: &BackupTableName) -> Result<Option<String>> {
    let ctx = || format!("looking up {name} in the schema");
    let mut rows = conn
        .query(
            "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
            [name.as_str()],
        )
        .await
        .db_context(ctx)?;
    match rows.next().await.db_context(ctx)? {
        Some(row) => Ok(Some(row.get::<String>(0).db_context(ctx)?)),
        None => Ok(None),
    }
}

/// Reads (never writes) what the backup table's name holds, and refuses
/// anything that is not free or the migration's own intact backup:
/// [`MigrateError::BackupTableExists`] for an object the migration did not make,
/// [`MigrateError::BackupMismatch`] for its own backup changed since.
pub async fn check_backup_table(conn: &Connection, name: &BackupTableName) -> Result<BackupState> {
    let Some(kind) = object_type(conn, name).await? else {
        return Ok(BackupState::Missing);
    };
    let not_ours = || MigrateError::BackupTableExists {
        table: name.to_string(),
    };
    let ours = recorded_name(conn)
        .await?
        .is_some_and(|recorded| recorded.same_table(name));
    let Some(expected) = recorded_digest(conn).await?.filter(|_| ours) else {
        return Err(not_ours());
    };
    // Same name, other shape: a table the user made after ours was gone.
    let columns = table_columns(conn, name.as_str()).await?;
    let legacy_shaped = COLUMNS
        .iter()
        .filter(|c| **c != "embedding_vector")
        .all(|c| columns.iter().any(|have| have.eq_ignore_ascii_case(c)));
    if kind != "table" || !legacy_shaped {
        return Err(not_ours());
    }
    let found = digest_backup(conn, name).await?;
    if found != expected {
        return Err(MigrateError::BackupMismatch { expected, found });
    }
    Ok(BackupState::Own(found))
}
