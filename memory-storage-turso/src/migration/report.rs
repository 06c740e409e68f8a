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
    pub source_digest: Option<super::backup::TableDigest>,
    /// The `embeddings_backup` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupReport>,
    /// The `--backup-file` copy of the whole database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file: Option<String>,
    /// The legacy table was dropped (after verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_legacy: Option<super::finalize::DropReport>,
    /// The search smoke test that ends a verification (tables with a
    /// vector index only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search_checks: Vec<super::smoke::SearchCheck>,
    /// What the online mode (triggers on the legacy table) did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<super::online::OnlineReport>,
    /// What a rollback did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<super::rollback::RollbackReport>,
    /// A stale lock this run took over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_taken_over_from: Option<super::lock::LockHolder>,
    /// How many entries the lists above hold at most.
    pub listed_limit: usize,
}

impl MigrationReport {
    /// Whether the run ended clean: not interrupted, nothing quarantined,
    /// and (where it ran) verification passed.
    pub fn is_clean(&self) -> bool {
        !self.interrupted
            && self.quarantined_count == 0
            && self.verification.as_ref().is_none_or(|v| v.passed)
    }

    /// Total rows written by this run.
    pub fn rows_written(&self) -> u64 {
        self.migrated.as_ref().map_or(0, |m| m.values().sum())
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
    /// Legacy rows compared.
    pub rows_checked: u64,
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
    pub(crate) keys: Vec<super::row::Key>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Discrepancy keys kept for an online run's final check.
pub(crate) const KEYS_KEPT: usize = 100_000;

impl Verification {
    pub(crate) fn add(&mut self, limit: usize, key: &super::row::Key, d: Discrepancy) {
        self.discrepancy_count += 1;
        if self.keys.len() < KEYS_KEPT {
            self.keys.push(key.clone());
        }
        if self.discrepancies.len() < limit {
            self.discrepancies.push(d);
        }
    }

    /// Every discrepancy's key, when all were kept.
    pub(crate) fn all_keys(&self) -> Option<Vec<super::row::Key>> {
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

/// One difference between the source and the target tables.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Discrepancy {
    pub embedding_id: String,
    /// `missing`, `differs`, `misplaced`, `orphan` or `bad_row_in_target`.
    pub kind: String,
    /// The table concerned.
    pub table: String,
    pub detail: String,
}

/// The vector index of one native table.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub table: String,
    pub index: String,
    /// `built`, `present` or `skipped`.
    pub status: String,
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
