//! What the last verification of an execute run found, kept in the
//! database for `--status`: the conflicts (in `embedding_migration_conflicts`)
//! and a one-line verdict (in `metadata`).

use libsql::{Connection, Value};
use serde::{Deserialize, Serialize};

use super::metadata;
use super::report::MigrationReport;
use super::write::unix_now;
use crate::error::{DbContext, Result};
use crate::schema::{object_exists, CONFLICTS_TABLE, CONFLICTS_TABLE_SQL};

/// The last execute run's verification (JSON in `metadata`).
pub const LAST_VERIFICATION: &str = "embeddings_migration.last_verification";

/// The verdict of the last execute run's verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastVerification {
    /// Unix seconds.
    pub at: i64,
    pub passed: bool,
    /// Rows the migration wrote that still differ from their source (or
    /// rows in a table they do not belong to): what --execute could not fix.
    pub discrepancies: u64,
    /// Target rows the migration does not own in the way of a legacy row.
    pub conflicts: u64,
    /// Legacy rows that cannot be migrated.
    pub quarantined: u64,
}

/// A conflict as `--status` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordedConflict {
    pub embedding_id: String,
    pub table: String,
    pub kind: String,
    pub newer: String,
    pub legacy_fingerprint: String,
    pub target_fingerprint: String,
}

fn text<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn fingerprint_value(hex: &str) -> Value {
    u64::from_str_radix(hex, 16).map_or(Value::Null, |f| Value::Integer(f as i64))
}

/// Records the verification of `report` (inside the caller's transaction):
/// the conflicts it listed replace the earlier record.
pub async fn record(conn: &Connection, report: &MigrationReport) -> Result<()> {
    let Some(v) = &report.verification else {
        return Ok(());
    };
    let ctx = || format!("recording the conflicts in {CONFLICTS_TABLE}");
    if report.conflict_count > 0 || object_exists(conn, CONFLICTS_TABLE).await? {
        conn.execute(CONFLICTS_TABLE_SQL, ())
            .await
            .db_context(ctx)?;
        conn.execute(&format!("DELETE FROM {CONFLICTS_TABLE}"), ())
            .await
            .db_context(ctx)?;
        for c in &report.conflicts {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO {CONFLICTS_TABLE} (embedding_id, target_table, kind, newer, legacy_fingerprint, target_fingerprint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                vec![
                    Value::Text(c.embedding_id.clone()),
                    Value::Text(c.table.clone()),
                    Value::Text(text(&c.kind)),
                    Value::Text(text(&c.newer)),
                    fingerprint_value(&c.legacy_fingerprint),
                    fingerprint_value(&c.target_fingerprint),
                ],
            )
            .await
            .db_context(ctx)?;
        }
    }
    let last = LastVerification {
        at: unix_now(),
        passed: v.passed,
        discrepancies: v.discrepancy_count,
        conflicts: report.conflict_count,
        quarantined: report.quarantined_count,
    };
    metadata::set(
        conn,
        LAST_VERIFICATION,
        &serde_json::to_string(&last).unwrap_or_default(),
    )
    .await
}

/// The last execute run's verification, if one was recorded.
pub async fn last_verification(conn: &Connection) -> Result<Option<LastVerification>> {
    Ok(metadata::get(conn, LAST_VERIFICATION)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Up to `limit` recorded conflicts.
pub async fn conflicts(conn: &Connection, limit: usize) -> Result<Vec<RecordedConflict>> {
    if !object_exists(conn, CONFLICTS_TABLE).await? {
        return Ok(Vec::new());
    }
    let ctx = || format!("reading {CONFLICTS_TABLE}");
    let mut rows = conn
        .query(
            &format!(
                "SELECT embedding_id, target_table, kind, newer, legacy_fingerprint, target_fingerprint FROM {CONFLICTS_TABLE} ORDER BY embedding_id LIMIT ?1"
            ),
            [limit as i64],
        )
        .await
        .db_context(ctx)?;
    let hex = |v: Value| match v {
        Value::Integer(f) => super::report::fingerprint_hex(f),
        _ => String::new(),
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(RecordedConflict {
            embedding_id: crate::decode::row::Key(row.get_value(0).db_context(ctx)?).to_string(),
            table: row.get::<String>(1).db_context(ctx)?,
            kind: row.get::<String>(2).db_context(ctx)?,
            newer: row.get::<String>(3).db_context(ctx)?,
            legacy_fingerprint: hex(row.get_value(4).db_context(ctx)?),
            target_fingerprint: hex(row.get_value(5).db_context(ctx)?),
        });
    }
    Ok(out)
}
