//! What each phase reports: plain data, below the phases that fill it, so
//! the report and the phases never import each other.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::unix_now;

/// What wins when a target row the migration does not own holds a key of
/// the legacy table with other values (a conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The target row: it is the application's newer write; the legacy
    /// row counts as settled by it. Nothing is written for the key.
    #[default]
    Target,
    /// The legacy row: the target row is saved in the migration's own
    /// table first (so `--rollback` puts it back), then overwritten.
    Legacy,
}

/// Row count and order-sensitive checksum of a table's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    pub rows: u64,
    /// XXH3-128 over every column of every row, in key order, hex.
    pub checksum: String,
}

/// What the backup step did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    /// Made by this run.
    Created,
    /// An earlier backup of the migration's, proven still intact.
    Verified,
}

super::named_enum!(BackupStatus {
    Created => "created",
    Verified => "verified",
});

/// What the backup step did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub status: BackupStatus,
    /// The backup table.
    pub table: String,
    pub digest: TableDigest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// How the legacy table was dropped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DropReport {
    /// The backup table that holds every legacy row.
    pub backup_table: String,
    /// The backup that holds every legacy row.
    pub backup: TableDigest,
    /// Whether the backup had to be (re)made inside the drop transaction.
    pub backup_refreshed: bool,
}

/// Who holds (or held) the migration lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on host {} (started at Unix time {}, last seen {} s ago)",
            self.pid,
            self.host,
            self.started_at,
            (unix_now() - self.heartbeat_at).max(0)
        )
    }
}

/// What the online mode did in this run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OnlineReport {
    /// Changed keys mirrored while the migration ran.
    pub mirrored: u64,
    /// Changed keys mirrored and re-verified in the final transaction.
    pub final_keys: u64,
    /// The triggers were removed (the migration is complete; the
    /// application now writes to the target tables).
    pub triggers_removed: bool,
}

/// What a rollback did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackReport {
    /// There was no migration to undo: nothing was written.
    pub nothing_to_undo: bool,
    /// The legacy table was restored from the backup.
    pub restored_legacy: bool,
    /// Rows removed from each target table (the migration's own, unchanged
    /// since it wrote them).
    pub removed: BTreeMap<String, u64>,
    /// Rows the migration wrote that the application changed since: kept
    /// (at most `listed` ids; the count is exact).
    pub kept_changed: Vec<String>,
    pub kept_changed_count: u64,
    /// Rows `--on-conflict legacy` had displaced, put back.
    pub restored_displaced: u64,
    /// Displaced rows whose place the application has written since: the
    /// application's row is kept, and so is `embedding_migration_displaced`
    /// with the older rows.
    pub displaced_kept: u64,
    /// Target tables dropped because this migration created them and they
    /// are empty now.
    pub dropped_tables: Vec<String>,
    /// Target tables this migration created that hold the application's
    /// rows: kept.
    pub kept_tables: Vec<String>,
    /// Indexes and triggers this migration created on tables that were
    /// there before, dropped.
    pub dropped_objects: Vec<String>,
    /// Partial rollback: the checkpoint the copy now resumes after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// The search check of one table: sampled rows searched as the store
/// searches (the index's candidates re-ranked by exact distance), their
/// recall@10 measured against an exact search.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchCheck {
    pub table: String,
    /// Rows searched for.
    pub sampled: u64,
    /// Searches whose first hit was the row itself (or an identical vector).
    pub found_first: u64,
    /// The embedding_ids whose search did not find them first.
    pub missed: Vec<String>,
    /// recall@10 against an exact search, over the sampled queries (a hit
    /// as near as the exact tenth counts: ties are not misses).
    pub recall: f64,
    /// recall@10 the plan predicted (`None`: options not measured).
    pub planned_recall: Option<f64>,
    /// The recall below which the check fails: clearly below the plan
    /// (or below the target, for options that were not measured).
    pub recall_floor: f64,
}

/// How far below its planned recall an index may measure before the check
/// fails: the sample of queries is small, so the measure is noisy.
pub const RECALL_MARGIN: f64 = 0.1;

impl SearchCheck {
    /// Every sampled row came back first.
    pub fn all_found(&self) -> bool {
        self.found_first == self.sampled
    }

    /// The index searches as well as planned (within the margin).
    pub fn passed(&self) -> bool {
        self.sampled == 0 || self.recall >= self.recall_floor
    }
}
