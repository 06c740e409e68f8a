//! Undoing a migration: the legacy table restored from `embeddings_backup`
//! when it was dropped, and the rows this migration wrote removed from the
//! target tables (rows written there by anything else are kept).

use libsql::{Connection, Value};
use serde::Serialize;

use super::backup::{digest, verify_backup_table};
use super::metadata;
use super::write::in_transaction;
use crate::error::{DbContext, Error, Result};
use crate::schema::{
    object_exists, TargetTable, BACKUP_TABLE, CHECKPOINT_TABLE, LEDGER_TABLE, LEGACY_TABLE,
    QUARANTINE_TABLE,
};

/// What a rollback did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackReport {
    /// The legacy table was restored from the backup.
    pub restored_legacy: bool,
    /// Rows removed from each target table.
    pub removed: std::collections::BTreeMap<String, u64>,
    /// Target tables dropped because this migration created them and they
    /// are empty now.
    pub dropped_tables: Vec<String>,
    /// Partial rollback: the checkpoint the copy now resumes after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

async fn restore_legacy(conn: &Connection) -> Result<()> {
    let ctx = || format!("restoring {LEGACY_TABLE} from {BACKUP_TABLE}");
    let expected = verify_backup_table(conn).await?;
    let schema: Vec<String> = metadata::get(conn, metadata::LEGACY_SCHEMA)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or(Error::BackupUnverifiable)?;
    let Some((table_sql, index_sql)) = schema.split_first() else {
        return Err(Error::BackupUnverifiable);
    };
    conn.execute(table_sql, ()).await.db_context(ctx)?;
    conn.execute(
        &format!("INSERT INTO {LEGACY_TABLE} SELECT * FROM {BACKUP_TABLE}"),
        (),
    )
    .await
    .db_context(ctx)?;
    let restored = digest(conn, LEGACY_TABLE).await?;
    if restored != expected {
        return Err(Error::BackupMismatch {
            expected,
            found: restored,
        });
    }
    for sql in index_sql {
        conn.execute(sql, ()).await.db_context(ctx)?;
    }
    Ok(())
}

/// Removes the ledgered rows of every target table (only keys above
/// `after`, when given). Returns the count per table.
async fn remove_ledgered(
    conn: &Connection,
    after: Option<&str>,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut removed = std::collections::BTreeMap::new();
    if !object_exists(conn, LEDGER_TABLE).await? {
        return Ok(removed);
    }
    for table in TargetTable::ALL {
        if !object_exists(conn, table.name()).await? {
            continue;
        }
        let (range, params): (&str, Vec<Value>) = match after {
            Some(a) => (" AND embedding_id > ?2", vec![Value::Text(a.to_string())]),
            None => ("", vec![]),
        };
        let mut all = vec![Value::Text(table.name().to_string())];
        all.extend(params);
        let n = conn
            .execute(
                &format!(
                    "DELETE FROM {t} WHERE embedding_id IN (SELECT embedding_id FROM {LEDGER_TABLE} WHERE target_table = ?1{range})",
                    t = table.name()
                ),
                all,
            )
            .await
            .db_context(|| format!("removing migrated rows from {table}"))?;
        if n > 0 {
            removed.insert(table.name().to_string(), n);
        }
    }
    Ok(removed)
}

async fn count(conn: &Connection, table: &str) -> Result<i64> {
    let mut rows = conn
        .query(&format!("SELECT count(*) FROM {table}"), ())
        .await
        .db_context(|| format!("counting {table}"))?;
    Ok(
        match rows
            .next()
            .await
            .db_context(|| format!("counting {table}"))?
        {
            Some(r) => r.get::<i64>(0).db_context(|| format!("counting {table}"))?,
            None => 0,
        },
    )
}

/// Full rollback, in one transaction.
pub async fn rollback_all(conn: &Connection) -> Result<RollbackReport> {
    in_transaction(conn, "rolling back the migration", async {
        let mut report = RollbackReport::default();
        if !object_exists(conn, LEGACY_TABLE).await? {
            restore_legacy(conn).await?;
            report.restored_legacy = true;
        }
        report.removed = remove_ledgered(conn, None).await?;
        let created: Vec<String> = metadata::get(conn, metadata::CREATED_TABLES)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        for name in created {
            let Some(table) = TargetTable::from_name(&name) else {
                continue;
            };
            if object_exists(conn, table.name()).await? && count(conn, table.name()).await? == 0 {
                conn.execute(&format!("DROP TABLE {}", table.name()), ())
                    .await
                    .db_context(|| format!("dropping the empty {table}"))?;
                report.dropped_tables.push(table.name().to_string());
            }
        }
        // An index build in progress: its triggers, table and progress.
        for table in TargetTable::ALL {
            if let Some(building) = table.indexing_table() {
                for event in ["insert", "update", "delete"] {
                    conn.execute(&format!("DROP TRIGGER IF EXISTS {building}_{event}"), ())
                        .await
                        .db_context(|| format!("dropping the triggers of {building}"))?;
                }
                conn.execute(&format!("DROP TABLE IF EXISTS {building}"), ())
                    .await
                    .db_context(|| format!("dropping {building}"))?;
            }
        }
        for t in [
            CHECKPOINT_TABLE,
            QUARANTINE_TABLE,
            LEDGER_TABLE,
            crate::schema::INDEX_PROGRESS_TABLE,
        ] {
            conn.execute(&format!("DROP TABLE IF EXISTS {t}"), ())
                .await
                .db_context(|| format!("dropping {t}"))?;
        }
        metadata::clear_migration_keys(conn).await?;
        Ok(report)
    })
    .await
}

/// Partial rollback: removes the rows migrated after checkpoint `after` and
/// moves the checkpoint back to it, so the next execute redoes just those.
pub async fn rollback_after(conn: &Connection, after: &str) -> Result<RollbackReport> {
    if !object_exists(conn, LEGACY_TABLE).await? {
        return Err(Error::InvalidOptions(
            "the legacy table was dropped: run a full --rollback (it restores it from the backup) before a partial one".into(),
        ));
    }
    in_transaction(conn, "rolling back after a checkpoint", async {
        let mut report = RollbackReport {
            removed: remove_ledgered(conn, Some(after)).await?,
            checkpoint: Some(after.to_string()),
            ..Default::default()
        };
        let ctx = || "moving the checkpoint back".to_string();
        for t in [LEDGER_TABLE, QUARANTINE_TABLE] {
            if object_exists(conn, t).await? {
                conn.execute(&format!("DELETE FROM {t} WHERE embedding_id > ?1"), [after])
                    .await
                    .db_context(ctx)?;
            }
        }
        if object_exists(conn, CHECKPOINT_TABLE).await? {
            let ledgered = if object_exists(conn, LEDGER_TABLE).await? {
                count(conn, LEDGER_TABLE).await?
            } else {
                0
            };
            conn.execute(
                &format!("UPDATE {CHECKPOINT_TABLE} SET last_embedding_id = ?1, copy_completed_at = NULL, rows_written = ?2 WHERE id = 1 AND (last_embedding_id IS NULL OR last_embedding_id > ?1)"),
                vec![Value::Text(after.to_string()), Value::Integer(ledgered)],
            )
            .await
            .db_context(ctx)?;
        }
        report.dropped_tables.clear();
        Ok(report)
    })
    .await
}
