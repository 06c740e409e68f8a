//! The result of a run, for people (rendered by the binaries) and for
//! scripts (serialized as JSON).

use std::collections::BTreeMap;

use serde::Serialize;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Read everything, wrote nothing.
    #[default]
    DryRun,
    /// Copied, indexed and verified.
    Execute,
    /// Verified only.
    Verify,
    /// Undid a migration.
    Rollback,
}

/// Everything a run found and did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MigrationReport {
    pub mode: RunMode,
    /// Rows in the legacy table when the run started.
    pub source_rows: u64,
    /// Whether the legacy table has an `embedding_vector` column.
    pub source_has_vector_column: bool,
    /// Columns of the legacy table the target tables do not have: their
    /// values are not carried over (`--execute` needs
    /// `--ignore-extra-columns`; the drop is refused while they hold data).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_columns: Vec<ExtraColumn>,
    /// Dry run: rows that would be written, per target table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<BTreeMap<String, u64>>,
    /// Execute: rows written by this run, per target table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrated: Option<BTreeMap<String, u64>>,
    /// Rows found already migrated (identical in their table), per table.
    pub already_migrated: BTreeMap<String, u64>,
    /// Legacy rows that cannot be migrated; they stay in the legacy table.
    /// At most `listed_limit` entries; `quarantined_count` is exact.
    pub quarantined: Vec<QuarantinedRow>,
    pub quarantined_count: u64,
    /// Quarantined rows per reason code.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Valid legacy rows whose vector cosine search cannot rank (zero norm,
    /// or a norm that underflows or overflows f32). Migrated bit for bit like
    /// any row, left out of the search smoke test. At most `listed_limit`
    /// entries; `unsearchable_count` is exact.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsearchable: Vec<UnsearchableRow>,
    #[serde(skip_serializing_if = "is_zero")]
    pub unsearchable_count: u64,
    /// Dry run: estimated extra disk space of the copied rows (tables and
    /// their item and key indexes), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_extra_bytes: Option<u64>,
    /// Dry run: estimated size of the DiskANN indexes over the copied rows
    /// (default index options), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_vector_index_bytes: Option<u64>,
    /// Dry run: estimated seconds of the copy (measured read rate, plus a
    /// sample of the rows written through the real writer to a scratch
    /// database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_copy_seconds: Option<f64>,
    /// Dry run: estimated seconds to build each DiskANN index (timed inserts
    /// into an indexed scratch table, scaled logarithmically).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_index_seconds: Option<BTreeMap<String, f64>>,
    /// The index plan (dry run, and an execute run that planned): per
    /// native table, the candidates measured on its rows and the pick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_plan: Option<IndexPlan>,
    /// Execute: bytes written per target table (all columns).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub migrated_bytes: BTreeMap<String, u64>,
    /// The checkpoint the copy resumed from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// The vector-index phase, per native table.
    pub vector_indexes: Vec<IndexStatus>,
    /// The verification (execute and verify runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Time spent per phase.
    pub phases: Vec<PhaseTiming>,
    /// Execute found nothing to write: the migration was already complete.
    pub nothing_to_do: bool,
    /// The run was asked to stop and did so after a committed batch.
    pub interrupted: bool,
    /// Rows this migration had written whose legacy row was deleted (or went
    /// bad) since, removed from the target tables.
    pub removed_stale: u64,
    /// Digest of the legacy table as the verification read it.
    #[serde(skip_serializing_if = "Option::is_none", rename = "source_checksum")]
    pub source_digest: Option<TableDigest>,
    /// The `embeddings_backup` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupReport>,
    /// The `--backup-file` copy of the whole database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file: Option<String>,
    /// The legacy table was dropped (after verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_legacy: Option<DropReport>,
    /// The recall each planned index measured once built, and what the run
    /// did where it fell short.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub built_recall: Vec<BuiltRecall>,
    /// The search smoke test that ends a verification (tables with a
    /// vector index only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search_checks: Vec<SearchCheck>,
    /// What the online mode (triggers on the legacy table) did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineReport>,
    /// What a rollback did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    /// A stale lock this run took over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_taken_over_from: Option<LockHolder>,
    /// How many entries the lists above hold at most.
    pub listed_limit: usize,
    /// Conflicts: target rows the migration does not own that hold a key of
    /// the legacy table with other values (at most `listed_limit` listed;
    /// `conflict_count` is exact). The target row was kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    pub conflict_count: u64,
    /// What wins a conflict in this run.
    pub on_conflict: ConflictPolicy,
    /// Target rows this run saved in `embedding_migration_displaced` and
    /// replaced with their legacy row (`--on-conflict legacy`).
    #[serde(skip_serializing_if = "is_zero")]
    pub displaced: u64,
    /// Set when the run failed or was refused: what it had done until then
    /// is in the fields above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
}

/// A target row the migration does not own holding a key of the legacy
/// table with other values. Never overwritten or deleted unless
/// `--on-conflict legacy`; never a verification failure.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Conflict {
    pub embedding_id: String,
    /// The table holding the row in the way.
    pub table: String,
    pub kind: ConflictKind,
    /// Which side is newer by `created_at`.
    pub newer: Newer,
    /// Fingerprint of the legacy row as the migration would write it, and
    /// of the target row as it is (hex XXH3-64 over the eight columns).
    pub legacy_fingerprint: String,
    pub target_fingerprint: String,
    /// The columns that differ (empty when the row sits in another table).
    pub differs_in: Vec<String>,
}

/// Why a target row is not the migration's.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The migration never wrote it: it was there before the first run, or
    /// the application wrote it.
    NotWrittenByMigration,
    /// The migration wrote it, and it changed since (the application wrote
    /// over it).
    ChangedSinceWritten,
}

/// Which side of a conflict is newer by `created_at`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Newer {
    Legacy,
    Target,
    Same,
    /// A `created_at` is not an integer.
    Unknown,
}

impl Newer {
    /// Compares two `created_at` values.
    pub fn of(legacy: Option<i64>, target: Option<i64>) -> Newer {
        match (legacy, target) {
            (Some(l), Some(t)) if l > t => Newer::Legacy,
            (Some(l), Some(t)) if l < t => Newer::Target,
            (Some(_), Some(_)) => Newer::Same,
            _ => Newer::Unknown,
        }
    }
}

/// A fingerprint as the report shows it.
pub fn fingerprint_hex(f: i64) -> String {
    format!("{:016x}", f as u64)
}

/// Why a run did not finish.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunFailure {
    pub kind: FailureKind,
    /// The error, as one sentence.
    pub reason: String,
}

/// Whether the run was refused (a safety rule said no, nothing unsafe was
/// done) or failed (an error stopped it).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Refused,
    Failed,
}

impl MigrationReport {
    /// Whether the run ended clean: not interrupted, nothing quarantined,
    /// and (where it ran) verification passed.
    pub fn is_clean(&self) -> bool {
        self.failure.is_none()
            && !self.interrupted
            && self.quarantined_count == 0
            && self.verification.as_ref().is_none_or(|v| v.passed)
    }

    /// Total rows written by this run.
    pub fn rows_written(&self) -> u64 {
        self.migrated.as_ref().map_or(0, |m| m.values().sum())
    }

    pub(crate) fn add_conflict(&mut self, c: Conflict) {
        self.conflict_count += 1;
        if self.conflicts.len() < self.listed_limit {
            self.conflicts.push(c);
        }
    }

    pub(crate) fn add_quarantined(&mut self, embedding_id: String, code: &str, reason: String) {
        self.quarantined_count += 1;
        *self
            .quarantined_by_reason
            .entry(code.to_string())
            .or_default() += 1;
        if self.quarantined.len() < self.listed_limit {
            self.quarantined.push(QuarantinedRow {
                embedding_id,
                code: code.to_string(),
                reason,
            });
        }
    }
}

impl MigrationReport {
    /// Lists the row if cosine search cannot rank its vector (no-op for
    /// every other row).
    pub(crate) fn note_unsearchable(
        &mut self,
        key: &crate::decode::row::Key,
        table: crate::schema::TargetTable,
        vector: &[u8],
    ) {
        let Err(reason) = crate::decode::cosine_searchable(vector) else {
            return;
        };
        self.unsearchable_count += 1;
        if self.unsearchable.len() < self.listed_limit {
            self.unsearchable.push(UnsearchableRow {
                embedding_id: key.to_string(),
                table: table.name().to_string(),
                reason,
            });
        }
    }
}

/// A valid row whose vector cosine search cannot rank: migrated bit for bit,
/// never found by a search.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnsearchableRow {
    pub embedding_id: String,
    /// The table the row belongs in.
    pub table: String,
    pub reason: crate::decode::Unsearchable,
}

/// A column of the legacy table that the target tables do not have.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExtraColumn {
    /// The column's name, as the legacy table declares it.
    pub name: String,
    /// Rows holding a non-NULL value in it.
    pub rows_with_data: u64,
}

impl ExtraColumn {
    /// `` `a` (3 rows with a value), `b` (no values) ``, for messages.
    pub fn list(columns: &[ExtraColumn]) -> String {
        columns
            .iter()
            .map(|c| match c.rows_with_data {
                0 => format!("`{}` (no values)", c.name),
                1 => format!("`{}` (1 row with a value)", c.name),
                n => format!("`{}` ({n} rows with a value)", c.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One legacy row that was not migrated, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantinedRow {
    pub embedding_id: String,
    /// Stable short code, e.g. `dimension_mismatch`.
    pub code: String,
    /// One sentence for the operator.
    pub reason: String,
}

/// The result of comparing every migrated row with its source.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Verification {
    /// No discrepancy anywhere.
    pub passed: bool,
    /// Legacy rows looked at (bad ones included).
    pub rows_checked: u64,
    /// Legacy rows compared column by column with a copy in their table.
    pub rows_compared: u64,
    /// Expected (from the source) and actual row counts per target table.
    pub tables: BTreeMap<String, TableCount>,
    /// At most `listed_limit` entries; `discrepancy_count` is exact.
    pub discrepancies: Vec<Discrepancy>,
    pub discrepancy_count: u64,
    /// Rows this run repaired while verifying (execute only).
    pub repaired: u64,
    /// Rows of the target tables with no legacy row that this migration did
    /// not write, each in the table of its dimension: the application's own
    /// rows (written through the store during the transition). Left alone,
    /// not discrepancies.
    pub application_rows: u64,
    /// Online runs: discrepancies on rows the application changed while
    /// they were being verified, each checked again and found settled in
    /// the final transaction (they are no longer listed above).
    #[serde(skip_serializing_if = "is_zero")]
    pub settled_in_final_check: u64,
    /// The keys of the discrepancies (up to [`KEYS_KEPT`]), for the final
    /// check of an online run.
    #[serde(skip)]
    pub(crate) keys: Vec<crate::decode::row::Key>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Discrepancy keys kept for an online run's final check.
pub(crate) const KEYS_KEPT: usize = 100_000;

impl Verification {
    pub(crate) fn add(&mut self, limit: usize, key: &crate::decode::row::Key, d: Discrepancy) {
        self.discrepancy_count += 1;
        if self.keys.len() < KEYS_KEPT {
            self.keys.push(key.clone());
        }
        if self.discrepancies.len() < limit {
            self.discrepancies.push(d);
        }
    }

    /// Every discrepancy's key, when all were kept.
    pub(crate) fn all_keys(&self) -> Option<Vec<crate::decode::row::Key>> {
        (self.keys.len() as u64 == self.discrepancy_count).then(|| {
            let mut keys = self.keys.clone();
            keys.sort();
            keys.dedup();
            keys
        })
    }
}

/// Row counts of one target table.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct TableCount {
    /// Valid legacy rows that belong in this table.
    pub expected: u64,
    /// Rows the table holds.
    pub actual: u64,
}

/// Display as the serialized (snake_case) name, and compare with it, so a
/// closed set reads and tests like the strings it replaced.
macro_rules! named_enum {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name, as serialized.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
pub(crate) use named_enum;

mod index_plan;
mod phases;
pub use index_plan::{
    BuiltRecall, Candidate, IndexPlan, Measured, Pick, Prediction, RecallOutcome, TablePlan,
};
pub use phases::*;

/// What kind of difference a verification found.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// A valid legacy row is not in its table.
    Missing,
    /// The migration's copy differs from its source.
    Differs,
    /// The migration's copy also sits in a table it does not belong to.
    Misplaced,
    /// A target row with no legacy row that does not belong where it is.
    Orphan,
    /// A bad legacy row that still has the migration's older copy.
    BadRowInTarget,
    /// The search check did not find a sampled row.
    Search,
    /// An online run's final check found the row still different.
    Unsettled,
}

named_enum!(DiscrepancyKind {
    Missing => "missing",
    Differs => "differs",
    Misplaced => "misplaced",
    Orphan => "orphan",
    BadRowInTarget => "bad_row_in_target",
    Search => "search",
    Unsettled => "unsettled",
});

/// Where the vector index of a native table stands after a run.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum IndexState {
    /// Built by this run.
    #[serde(rename = "built")]
    Built,
    /// A build an earlier run began, finished by this one.
    #[serde(rename = "resumed and built")]
    ResumedAndBuilt,
    /// It was there already.
    #[serde(rename = "present")]
    Present,
    /// Not asked for (`--no-vector-index`).
    #[serde(rename = "skipped")]
    Skipped,
    /// None planned: the table is small enough to search exactly.
    #[serde(rename = "exact search")]
    Exact,
    /// The run was asked to stop before it was built.
    #[serde(rename = "stopped")]
    Stopped,
    /// Not built: an object of the index's name is there and is not it (a
    /// user's, left alone); the table is searched exactly.
    #[serde(rename = "name taken")]
    NameTaken,
}

named_enum!(IndexState {
    Built => "built",
    ResumedAndBuilt => "resumed and built",
    Present => "present",
    Skipped => "skipped",
    Exact => "exact search",
    Stopped => "stopped",
    NameTaken => "name taken",
});

impl IndexState {
    /// Whether this run built the index.
    pub fn is_built(self) -> bool {
        matches!(self, IndexState::Built | IndexState::ResumedAndBuilt)
    }
}

/// One difference between the source and the target tables.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Discrepancy {
    pub embedding_id: String,
    pub kind: DiscrepancyKind,
    /// The table concerned.
    pub table: String,
    pub detail: String,
}

/// The vector index of one native table.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub table: String,
    pub index: String,
    pub status: IndexState,
    pub seconds: f64,
}

/// Time spent in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    pub phase: String,
    pub seconds: f64,
    /// Rows (or indexes) processed.
    pub units: u64,
}
