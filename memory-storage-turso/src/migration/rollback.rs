//! Undoing a migration: the legacy table restored from its backup when it
//! was dropped, the rows this migration wrote and still owns removed, the
//! rows it displaced put back, and every object it created dropped, so the
//! database is as it was before the first run. Rows the application wrote
//! (or changed) in the new tables since are kept, and listed.

use libsql::{Connection, Value};

use super::backup::{digest, verify_backup_table};
use super::error::{MigrateError, Result};
use super::metadata;
use super::prior;
pub use super::report::RollbackReport;
use super::write::in_transaction;
use crate::decode::row::{EmbeddingRow, Key};
use crate::error::{DbContext, Error};
use crate::schema::{
    object_exists, TargetTable, BACKUP_TABLE, CHECKPOINT_TABLE, DISPLACED_TABLE, LEDGER_TABLE,
    LEGACY_TABLE, LOCK_TABLE, METADATA_TABLE, QUARANTINE_TABLE,
};

/// How many kept rows the rollback report lists.
const LISTED: usize = 1000;
/// Ledger keys looked at per step.
const PAGE: i64 = 500;

/// Re-creates the legacy table from the backup table the migration
/// recorded making (`embeddings_backup` or its `--backup-table`), once that
/// backup is proven intact.
async fn restore_legacy(conn: &Connection) -> Result<()> {
    let Some(backup) = super::backup::recorded_name(conn).await? else {
        return Err(MigrateError::BackupUnverifiable);
    };
    let ctx = || format!("restoring {LEGACY_TABLE} from {backup}");
    let expected = verify_backup_table(conn, &backup).await?;
    let schema: Vec<String> = metadata::get(conn, metadata::LEGACY_SCHEMA)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or(MigrateError::BackupUnverifiable)?;
    let Some((table_sql, index_sql)) = schema.split_first() else {
        return Err(MigrateError::BackupUnverifiable);
    };
    conn.execute(table_sql, ()).await.db_context(ctx)?;
    conn.execute(
        &format!(
            "INSERT INTO {LEGACY_TABLE} SELECT * FROM {}",
            backup.quoted()
        ),
        (),
    )
    .await
    .db_context(ctx)?;
    let restored = digest(conn, LEGACY_TABLE).await?;
    if restored != expected {
        return Err(MigrateError::BackupMismatch {
            expected,
            found: restored,
        });
    }
    for sql in index_sql {
        conn.execute(sql, ()).await.db_context(ctx)?;
    }
    Ok(())
}

async fn count(conn: &Connection, table: &str) -> Result<i64> {
    Ok(crate::db::count(conn, table).await? as i64)
}

/// One page of the rows of `table` that the ledger lists for it, after
/// `after` (and after `from`, a partial rollback's checkpoint), with the
/// fingerprint each was written with.
async fn ledgered_page(
    conn: &Connection,
    table: TargetTable,
    after: Option<&Key>,
) -> Result<Vec<(EmbeddingRow, Option<i64>)>> {
    let name = table.name();
    let ctx = || format!("reading the rows this migration wrote to {name}");
    let (cond, params) = match after {
        Some(k) => (
            " AND embedding_id > ?2",
            vec![Value::Text(name.into()), k.0.clone()],
        ),
        None => ("", vec![Value::Text(name.into())]),
    };
    let sql = format!(
        "SELECT {cols}, (SELECT fingerprint FROM {LEDGER_TABLE} AS l WHERE l.embedding_id = {name}.embedding_id) \
         FROM {name} WHERE embedding_id IN \
         (SELECT embedding_id FROM {LEDGER_TABLE} WHERE target_table = ?1{cond} ORDER BY embedding_id LIMIT {PAGE}) \
         ORDER BY embedding_id",
        cols = crate::decode::row::select_columns("embedding_vector"),
    );
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let fingerprint = match row.get_value(9).db_context(ctx)? {
            Value::Integer(f) => Some(f),
            _ => None,
        };
        out.push((EmbeddingRow::from_row(&row).db_context(ctx)?, fingerprint));
    }
    Ok(out)
}

/// The last ledger key of `table` in the page after `after` (to step on
/// even when the page's rows are gone from the table).
async fn last_ledger_key(
    conn: &Connection,
    table: TargetTable,
    after: Option<&Key>,
) -> Result<Option<Key>> {
    let ctx = || "reading the ledger".to_string();
    let (cond, params) = match after {
        Some(k) => (
            " AND embedding_id > ?2",
            vec![Value::Text(table.name().into()), k.0.clone()],
        ),
        None => ("", vec![Value::Text(table.name().into())]),
    };
    let mut rows = conn
        .query(
            &format!(
                "SELECT max(embedding_id) FROM (SELECT embedding_id FROM {LEDGER_TABLE} \
                 WHERE target_table = ?1{cond} ORDER BY embedding_id LIMIT {PAGE})"
            ),
            params,
        )
        .await
        .db_context(ctx)?;
    Ok(match rows.next().await.db_context(ctx)? {
        Some(r) => match r.get_value(0).db_context(ctx)? {
            Value::Null => None,
            v => Some(Key(v)),
        },
        None => None,
    })
}

/// Removes the rows the ledger lists that are still as the migration
/// wrote them (keys above `from` only, when given); a row the application
/// changed since is kept and listed.
async fn remove_own_rows(
    conn: &Connection,
    from: Option<&Key>,
    report: &mut RollbackReport,
) -> Result<()> {
    if !object_exists(conn, LEDGER_TABLE).await? {
        return Ok(());
    }
    for table in TargetTable::ALL {
        if !object_exists(conn, table.name()).await? {
            continue;
        }
        let mut after = from.cloned();
        loop {
            let Some(last) = last_ledger_key(conn, table, after.as_ref()).await? else {
                break;
            };
            let page = ledgered_page(conn, table, after.as_ref()).await?;
            let mut ours = Vec::new();
            for (row, fingerprint) in page {
                if fingerprint.is_none_or(|f| f == row.fingerprint()) {
                    ours.push(row.key.0);
                } else {
                    report.kept_changed_count += 1;
                    if report.kept_changed.len() < LISTED {
                        report.kept_changed.push(format!("{} ({table})", row.key));
                    }
                }
            }
            if !ours.is_empty() {
                let marks: Vec<String> = (1..=ours.len()).map(|i| format!("?{i}")).collect();
                let n = conn
                    .execute(
                        &format!(
                            "DELETE FROM {} WHERE embedding_id IN ({})",
                            table.name(),
                            marks.join(", ")
                        ),
                        ours,
                    )
                    .await
                    .db_context(|| format!("removing migrated rows from {table}"))?;
                *report.removed.entry(table.name().to_string()).or_default() += n;
            }
            after = Some(last);
        }
    }
    Ok(())
}

/// Puts back the rows `--on-conflict legacy` displaced (keys above `from`
/// only, when given): for each key and table, the version displaced last
/// (the newest write the migration replaced), where no table holds the key
/// now. Returns whether every displaced row was put back.
async fn restore_displaced(
    conn: &Connection,
    from: Option<&Key>,
    report: &mut RollbackReport,
) -> Result<bool> {
    if !object_exists(conn, DISPLACED_TABLE).await? {
        return Ok(true);
    }
    let ctx = || format!("putting back the rows saved in {DISPLACED_TABLE}");
    let (cond, params) = match from {
        Some(k) => (" AND d.embedding_id > ?1", vec![k.0.clone()]),
        None => ("", vec![]),
    };
    let mut rows = conn
        .query(
            &format!(
                "SELECT d.seq, d.target_table, d.embedding_id FROM {DISPLACED_TABLE} AS d \
                 WHERE d.seq = (SELECT max(seq) FROM {DISPLACED_TABLE} AS e \
                 WHERE e.embedding_id = d.embedding_id AND e.target_table = d.target_table){cond} \
                 ORDER BY d.seq"
            ),
            params,
        )
        .await
        .db_context(ctx)?;
    let mut latest = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        latest.push((
            row.get::<i64>(0).db_context(ctx)?,
            row.get::<String>(1).db_context(ctx)?,
            row.get_value(2).db_context(ctx)?,
        ));
    }
    drop(rows);
    let mut all_back = true;
    for (seq, table, key) in latest {
        let Some(table) = TargetTable::from_name(&table) else {
            all_back = false;
            continue;
        };
        let mut held = false;
        for t in TargetTable::ALL {
            if object_exists(conn, t.name()).await? {
                let mut r = conn
                    .query(
                        &format!("SELECT 1 FROM {} WHERE embedding_id = ?1", t.name()),
                        vec![key.clone()],
                    )
                    .await
                    .db_context(ctx)?;
                held |= r.next().await.db_context(ctx)?.is_some();
            }
        }
        if held {
            report.displaced_kept += 1;
            all_back = false;
            continue;
        }
        conn.execute(
            &format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM {DISPLACED_TABLE} WHERE seq = ?1",
                t = table.name(),
                cols = crate::schema::COLUMNS.join(", ")
            ),
            [seq],
        )
        .await
        .db_context(ctx)?;
        report.restored_displaced += 1;
    }
    Ok(all_back)
}

/// Drops what the migration created: target tables that are empty now,
/// indexes and triggers it added to tables that were there before, and its
/// bookkeeping tables (the displaced rows only when all went back).
async fn drop_created(
    conn: &Connection,
    keep_displaced: bool,
    report: &mut RollbackReport,
) -> Result<()> {
    let before = match prior::objects(conn).await? {
        Some(names) => names,
        // A migration begun by an older version: what it says it created.
        None => {
            let mut names = prior::object_names(conn).await?;
            let left = prior::left_by_older_version(conn, &names).await?;
            names.retain(|n| !left.contains(n));
            names
        }
    };
    let now = prior::object_names(conn).await?;
    for table in TargetTable::ALL {
        let name = table.name();
        if before.contains(name) || !now.contains(name) {
            continue;
        }
        if count(conn, name).await? == 0 {
            conn.execute(&format!("DROP TABLE {name}"), ())
                .await
                .db_context(|| format!("dropping the empty {table}"))?;
            report.dropped_tables.push(name.to_string());
        } else {
            report.kept_tables.push(name.to_string());
        }
    }
    let now = prior::object_names(conn).await?;
    for name in prior::own_object_names() {
        if before.contains(&name) || !now.contains(&name) {
            continue;
        }
        let ctx = || format!("dropping {name}");
        let kind = object_kind(conn, &name).await?;
        match kind.as_deref() {
            Some("index") => {
                conn.execute(&format!("DROP INDEX IF EXISTS {name}"), ())
                    .await
                    .db_context(ctx)?;
                report.dropped_objects.push(name);
            }
            Some("trigger") => {
                conn.execute(&format!("DROP TRIGGER IF EXISTS {name}"), ())
                    .await
                    .db_context(ctx)?;
                report.dropped_objects.push(name);
            }
            Some("table")
                if TargetTable::from_name(&name).is_none()
                    && name != LOCK_TABLE
                    && !(keep_displaced && name == DISPLACED_TABLE) =>
            {
                conn.execute(&format!("DROP TABLE IF EXISTS {name}"), ())
                    .await
                    .db_context(ctx)?;
            }
            _ => {}
        }
    }
    // libSQL's record of vector indexes, created with the first one: gone
    // with the last, when it was not there before.
    if !before.contains(VECTOR_META)
        && object_exists(conn, VECTOR_META).await?
        && count(conn, VECTOR_META).await? == 0
    {
        conn.execute(&format!("DROP TABLE {VECTOR_META}"), ())
            .await
            .db_context(|| format!("dropping the empty {VECTOR_META}"))?;
    }
    Ok(())
}

/// The table libSQL creates with the first vector index.
const VECTOR_META: &str = "libsql_vector_meta_shadow";

async fn object_kind(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(crate::db::schema_object(conn, name).await?.map(|o| o.kind))
}

/// Removes the migration's `metadata` keys and puts `schema_version` back
/// as it was; drops `metadata` when the migration created it and it is
/// empty now.
async fn restore_metadata(conn: &Connection) -> Result<()> {
    if !object_exists(conn, METADATA_TABLE).await? {
        return Ok(());
    }
    let had_metadata = prior::objects(conn)
        .await?
        .is_none_or(|names| names.contains(METADATA_TABLE));
    let version = prior::schema_version(conn).await?;
    let recorded = metadata::get(conn, prior::PRIOR_OBJECTS).await?.is_some();
    let ctx = || format!("restoring {METADATA_TABLE}");
    if recorded {
        match version {
            Some(v) => conn
                .execute(
                    &format!("INSERT OR REPLACE INTO {METADATA_TABLE} (key, value, updated_at) VALUES (?1, ?2, ?3)"),
                    vec![
                        Value::Text(metadata::SCHEMA_VERSION.into()),
                        Value::Text(v.value),
                        v.updated_at.map_or(Value::Null, Value::Integer),
                    ],
                )
                .await
                .db_context(ctx)?,
            None => conn
                .execute(
                    &format!("DELETE FROM {METADATA_TABLE} WHERE key = ?1"),
                    [metadata::SCHEMA_VERSION],
                )
                .await
                .db_context(ctx)?,
        };
    }
    conn.execute(
        &format!("DELETE FROM {METADATA_TABLE} WHERE substr(key, 1, length(?1)) = ?1"),
        [metadata::PREFIX],
    )
    .await
    .db_context(ctx)?;
    if !had_metadata && count(conn, METADATA_TABLE).await? == 0 {
        conn.execute(&format!("DROP TABLE {METADATA_TABLE}"), ())
            .await
            .db_context(ctx)?;
    }
    Ok(())
}

/// Whether the database holds anything of a migration to undo.
pub async fn anything_to_undo(conn: &Connection) -> Result<bool> {
    let now = prior::object_names(conn).await?;
    let own = [
        CHECKPOINT_TABLE,
        QUARANTINE_TABLE,
        LEDGER_TABLE,
        DISPLACED_TABLE,
        crate::schema::INDEX_PROGRESS_TABLE,
        crate::schema::CONFLICTS_TABLE,
        super::online::CHANGES_TABLE,
    ];
    if own.iter().any(|t| now.contains(*t)) {
        return Ok(true);
    }
    if !now.contains(LEGACY_TABLE) && now.contains(BACKUP_TABLE) {
        return Ok(true);
    }
    if !now.contains(METADATA_TABLE) {
        return Ok(false);
    }
    let mut rows = conn
        .query(
            &format!(
                "SELECT 1 FROM {METADATA_TABLE} WHERE substr(key, 1, length(?1)) = ?1 LIMIT 1"
            ),
            [metadata::PREFIX],
        )
        .await
        .db_context(|| "looking for the migration's metadata".to_string())?;
    Ok(rows
        .next()
        .await
        .db_context(|| "looking for the migration's metadata".to_string())?
        .is_some())
}

/// Full rollback, in one transaction.
pub async fn rollback_all(conn: &Connection) -> Result<RollbackReport> {
    in_transaction(conn, "rolling back the migration", async {
        let mut report = RollbackReport::default();
        if !object_exists(conn, LEGACY_TABLE).await? {
            restore_legacy(conn).await?;
            report.restored_legacy = true;
        }
        remove_own_rows(conn, None, &mut report).await?;
        let all_back = restore_displaced(conn, None, &mut report).await?;
        drop_created(conn, !all_back, &mut report).await?;
        restore_metadata(conn).await?;
        Ok(report)
    })
    .await
}

/// Drops the lock table once the rollback's lock is released and no one
/// else holds it (the last object a full rollback removes).
pub async fn drop_lock_table(conn: &Connection) -> Result<()> {
    in_transaction(conn, "removing the migration lock table", async {
        if object_exists(conn, LOCK_TABLE).await? && count(conn, LOCK_TABLE).await? == 0 {
            conn.execute(&format!("DROP TABLE {LOCK_TABLE}"), ())
                .await
                .db_context(|| format!("dropping {LOCK_TABLE}"))?;
        }
        Ok(())
    })
    .await
}

/// Partial rollback: removes the rows migrated after checkpoint `after`
/// (those still as the migration wrote them), puts back what it displaced
/// there, and moves the checkpoint back to it, so the next execute redoes
/// just those.
pub async fn rollback_after(conn: &Connection, after: &str) -> Result<RollbackReport> {
    if !object_exists(conn, LEGACY_TABLE).await? {
        return Err(Error::InvalidOptions(
            "the legacy table was dropped: run a full --rollback (it restores it from the backup) before a partial one".into(),
        ).into());
    }
    in_transaction(conn, "rolling back after a checkpoint", async {
        let from = Key(Value::Text(after.to_string()));
        let mut report = RollbackReport {
            checkpoint: Some(after.to_string()),
            ..Default::default()
        };
        remove_own_rows(conn, Some(&from), &mut report).await?;
        restore_displaced(conn, Some(&from), &mut report).await?;
        let ctx = || "moving the checkpoint back".to_string();
        // Displaced rows stay saved: a later run displaces again, and a full
        // rollback puts back the newest version.
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
        Ok(report)
    })
    .await
}
