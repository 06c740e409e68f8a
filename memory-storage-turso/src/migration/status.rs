//! Where a migration stands, read without changing anything.

use std::collections::BTreeMap;

use libsql::{Connection, Value};
use serde::Serialize;

use super::lock::{current_holder, host_name, is_stale, LockHolder};
use super::metadata;
use crate::decode::row::Key;
use crate::error::{DbContext, Result};
use crate::schema::{
    object_exists, ScanBits, TargetTable, CHECKPOINT_TABLE, LEGACY_TABLE, QUARANTINE_TABLE,
};

/// A snapshot of a migration's state.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MigrationStatus {
    /// `not_started`, `in_progress`, `copied`, `completed` or `legacy_dropped`.
    pub state: String,
    /// Rows in the legacy table (`None` when it does not exist).
    pub legacy_rows: Option<u64>,
    /// The last embedding_id the copy committed.
    pub checkpoint: Option<String>,
    /// Rows written by the copy so far (from the checkpoint record).
    pub rows_written: u64,
    /// Legacy rows after the checkpoint.
    pub rows_left: Option<u64>,
    /// When the copy started, was last moved, and reached the end.
    pub started_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub copy_completed_at: Option<i64>,
    /// When a verified migration was recorded as complete.
    pub completed_at: Option<i64>,
    pub legacy_dropped_at: Option<i64>,
    /// Rows in the quarantine record, and per reason.
    pub quarantined: u64,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Rows per existing target table.
    pub target_rows: BTreeMap<String, u64>,
    /// Whether each native table's DiskANN index is on it (a build in
    /// batches under way has it on the indexing table: not yet).
    pub vector_indexes: BTreeMap<String, bool>,
    /// Tables with an index build in batches under way (stopped, or
    /// running elsewhere), and the rows in its indexing table so far.
    pub index_builds: BTreeMap<String, u64>,
    /// Whether each native table has a quantized scan index (of either
    /// quantization).
    pub scan_indexes: BTreeMap<String, bool>,
    /// Rows in `embeddings_backup` when it was made.
    pub backup_rows: Option<u64>,
    /// Who holds the migration lock, and whether that holder is gone.
    pub lock: Option<LockHolder>,
    pub lock_stale: bool,
    /// An online run's triggers are logging changes: this many are waiting
    /// to be mirrored (`None`: no online run under way).
    pub online_changes_pending: Option<u64>,
    /// What the last execute run's verification found.
    pub last_verification: Option<super::outcome::LastVerification>,
    /// Conflicts it recorded (up to [`CONFLICTS_LISTED`]; the count is in
    /// `last_verification`): target rows the migration does not own in
    /// the way of a legacy row, kept.
    pub conflicts: Vec<super::outcome::RecordedConflict>,
    /// Target rows `--on-conflict legacy` saved before replacing them
    /// (`--rollback` puts them back).
    pub displaced_rows: u64,
}

/// Conflicts `--status` lists.
pub const CONFLICTS_LISTED: usize = 20;

async fn one_i64(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Option<i64>> {
    crate::db::query_i64(conn, sql, params, || {
        format!("reading the migration status ({sql})")
    })
    .await
}

/// Reads the state of the migration in `conn`; writes nothing.
pub async fn status(conn: &Connection) -> Result<MigrationStatus> {
    let mut s = MigrationStatus::default();
    let legacy = object_exists(conn, LEGACY_TABLE).await?;
    if legacy {
        s.legacy_rows = one_i64(
            conn,
            &format!("SELECT count(*) FROM {LEGACY_TABLE}"),
            vec![],
        )
        .await?
        .map(|n| n as u64);
    }
    if object_exists(conn, CHECKPOINT_TABLE).await? {
        let ctx = || "reading the checkpoint".to_string();
        let mut rows = conn
            .query(
                &format!("SELECT last_embedding_id, rows_written, started_at, updated_at, copy_completed_at FROM {CHECKPOINT_TABLE} WHERE id = 1"),
                (),
            )
            .await
            .db_context(ctx)?;
        if let Some(row) = rows.next().await.db_context(ctx)? {
            let last = row.get_value(0).db_context(ctx)?;
            let int = |i| match row.get_value(i) {
                Ok(Value::Integer(v)) => Some(v),
                _ => None,
            };
            s.rows_written = int(1).unwrap_or(0).max(0) as u64;
            s.started_at = int(2);
            s.updated_at = int(3);
            s.copy_completed_at = int(4);
            if !matches!(last, Value::Null) {
                s.checkpoint = Some(Key(last.clone()).to_string());
                if legacy {
                    s.rows_left = one_i64(
                        conn,
                        &format!("SELECT count(*) FROM {LEGACY_TABLE} WHERE embedding_id > ?1"),
                        vec![last],
                    )
                    .await?
                    .map(|n| n as u64);
                }
            }
        }
    }
    if s.checkpoint.is_none() {
        s.rows_left = s.legacy_rows;
    }
    if object_exists(conn, QUARANTINE_TABLE).await? {
        let ctx = || "reading the quarantine record".to_string();
        let mut rows = conn
            .query(
                &format!(
                    "SELECT reason_code, count(*) FROM {QUARANTINE_TABLE} GROUP BY reason_code"
                ),
                (),
            )
            .await
            .db_context(ctx)?;
        while let Some(row) = rows.next().await.db_context(ctx)? {
            let n = row.get::<i64>(1).db_context(ctx)?.max(0) as u64;
            s.quarantined += n;
            s.quarantined_by_reason
                .insert(row.get::<String>(0).db_context(ctx)?, n);
        }
    }
    for t in TargetTable::ALL {
        if object_exists(conn, t.name()).await? {
            let n = one_i64(conn, &format!("SELECT count(*) FROM {}", t.name()), vec![]).await?;
            s.target_rows
                .insert(t.name().to_string(), n.unwrap_or(0).max(0) as u64);
        }
        if let Some(index) = t.vector_index_name() {
            let on = crate::db::index_is_on(conn, index, t.name()).await?;
            s.vector_indexes.insert(t.name().to_string(), on);
        }
        if let Some(building) = t.indexing_table() {
            if object_exists(conn, building).await? {
                let n = one_i64(conn, &format!("SELECT count(*) FROM {building}"), vec![]).await?;
                s.index_builds
                    .insert(t.name().to_string(), n.unwrap_or(0).max(0) as u64);
            }
        }
        if t.native_dimension().is_some() {
            let mut present = false;
            for bits in ScanBits::ALL {
                present |= crate::scan_index::state(conn, t, bits).await?
                    == crate::scan_index::ScanIndex::Present;
            }
            s.scan_indexes.insert(t.name().to_string(), present);
        }
    }
    let num = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    s.completed_at = num(metadata::get(conn, metadata::COMPLETED_AT).await?);
    s.legacy_dropped_at = num(metadata::get(conn, metadata::LEGACY_DROPPED_AT).await?);
    s.backup_rows = num(metadata::get(conn, metadata::BACKUP_ROWS).await?).map(|n| n as u64);
    s.lock = current_holder(conn).await?;
    s.lock_stale = s.lock.as_ref().is_some_and(|h| is_stale(h, &host_name()));
    if super::online::active(conn).await? {
        let sql = format!("SELECT count(*) FROM {}", super::online::CHANGES_TABLE);
        s.online_changes_pending =
            Some(one_i64(conn, &sql, vec![]).await?.unwrap_or(0).max(0) as u64);
    }
    s.last_verification = super::outcome::last_verification(conn).await?;
    s.conflicts = super::outcome::conflicts(conn, CONFLICTS_LISTED).await?;
    if object_exists(conn, crate::schema::DISPLACED_TABLE).await? {
        let sql = format!("SELECT count(*) FROM {}", crate::schema::DISPLACED_TABLE);
        s.displaced_rows = one_i64(conn, &sql, vec![]).await?.unwrap_or(0).max(0) as u64;
    }
    s.state = if s.legacy_dropped_at.is_some() && !legacy {
        "legacy_dropped"
    } else if s.completed_at.is_some() && s.rows_left == Some(0) {
        "completed"
    } else if s.copy_completed_at.is_some() && s.rows_left == Some(0) {
        "copied"
    } else if s.checkpoint.is_some() {
        "in_progress"
    } else {
        "not_started"
    }
    .to_string();
    Ok(s)
}

/// Opens `db_url` read-only and reads the migration's status.
pub async fn migration_status(db_url: &str, auth_token: &str) -> Result<MigrationStatus> {
    let db = crate::connect::open(db_url, auth_token, crate::connect::Access::ReadOnly).await?;
    status(&db.conn).await
}

/// Rows currently in the quarantine record, oldest reason kept per row.
pub async fn quarantined_rows(conn: &Connection) -> Result<Vec<super::report::QuarantinedRow>> {
    if !object_exists(conn, QUARANTINE_TABLE).await? {
        return Ok(Vec::new());
    }
    let ctx = || "reading the quarantine record".to_string();
    let mut rows = conn
        .query(
            &format!(
                "SELECT embedding_id, reason_code, reason FROM {QUARANTINE_TABLE} ORDER BY embedding_id"
            ),
            (),
        )
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(super::report::QuarantinedRow {
            embedding_id: crate::decode::row::Key(row.get_value(0).db_context(ctx)?).to_string(),
            code: row.get::<String>(1).db_context(ctx)?,
            reason: row.get::<String>(2).db_context(ctx)?,
        });
    }
    Ok(out)
}
