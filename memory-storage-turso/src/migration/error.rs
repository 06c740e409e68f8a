//! The migration's own errors: the lock, the backup, the drop, the legacy
//! table's shape. Everything below the engine fails with the core
//! [`Error`], which a [`MigrateError`] wraps (`#[from]`), so the
//! dependency runs one way: the engine knows the core error, never the
//! reverse.

use std::path::PathBuf;

use super::report::{ExtraColumn, FailureKind, LockHolder, RunFailure, TableDigest};
use crate::db::{ErrorClass, Transient};
use crate::error::Error;

/// Everything that can stop a migration, a rollback or an automatic
/// migration at start-up. Each message says what happened and, where there
/// is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A failure below the engine: the database, the connection, a row.
    #[error(transparent)]
    Core(#[from] Error),
    /// There is no legacy `embeddings` table to migrate.
    #[error("the database has no `embeddings` table: there is nothing to migrate (was it already migrated and dropped?)")]
    MissingLegacyTable,
    /// The legacy table was dropped by a completed migration.
    #[error("the `embeddings` table was dropped by a completed migration (on {}): there is nothing left to migrate; `--rollback --yes` restores it from `embeddings_backup`", crate::text::utc_date(*at))]
    LegacyDropped { at: i64 },
    /// The legacy table lacks columns the migration needs.
    #[error("the `embeddings` table lacks the column(s) {}: it is not a memory-storage-turso embeddings table", missing.join(", "))]
    LegacyTableShape { missing: Vec<String> },
    /// A target table exists with a different shape; it is never altered.
    #[error("the existing table {table} lacks the column(s) {}; the migration never alters an existing table: rename or fix it, then run again", missing.join(", "))]
    IncompatibleTargetTable { table: String, missing: Vec<String> },
    /// Vector indexes were asked for on a database without libSQL's vector
    /// functions (a plain SQLite server, an old libSQL).
    #[error("this database has no vector functions (vector32, libsql_vector_idx), so the DiskANN indexes cannot be built; nothing was written: run again with --no-vector-index to migrate without them")]
    NoVectorFunctions,
    /// Another live migration holds the lock.
    #[error("another migration is running on this database: {holder}; wait for it to finish (a lock whose process is gone is taken over automatically)")]
    LockHeld { holder: LockHolder },
    /// The lock was taken over by another process during this run.
    #[error("this run lost the migration lock{}; it stopped after its last committed batch", holder.as_ref().map(|h| format!(" to {h}")).unwrap_or_default())]
    LockLost { holder: Option<LockHolder> },
    /// Another process's migration did not finish in time.
    #[error("waited {waited_secs} s for another process's migration ({}) to finish; it is still running: start again later, or raise SchemaOptions::wait_for_migration", holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "holder unknown".into()))]
    MigrationWaitTimedOut {
        holder: Option<LockHolder>,
        waited_secs: u64,
    },
    /// A backup's rows do not match what they must.
    #[error("the backup does not match: expected {} rows with checksum {}, found {} rows with checksum {}; nothing was dropped or restored", expected.rows, expected.checksum, found.rows, found.checksum)]
    BackupMismatch {
        expected: TableDigest,
        found: TableDigest,
    },
    /// There is no backup whose integrity can be proven.
    #[error("no verified `embeddings_backup` exists (or its recorded checksum is missing), so the legacy table cannot be restored by the tool; see the README's manual rollback")]
    BackupUnverifiable,
    /// `--backup-file` names an existing file.
    #[error("{} exists already: the backup file is never overwritten, choose a new path", path.display())]
    BackupFileExists { path: PathBuf },
    /// The backup table's name exists and is not a backup this migration
    /// made and can still verify: it is never replaced or appended to.
    #[error("a table (or other schema object) named `{table}` exists already and is not a backup this migration made and verified, so --backup (or --drop-old-table, which makes one) would overwrite it; nothing was written: choose a new table with --backup-table NAME, or rename `{table}` yourself")]
    BackupTableExists { table: String },
    /// `--backup-table` names a table the tool cannot use.
    #[error("--backup-table {name:?} cannot be used: {reason}; choose a name of ASCII letters, digits and underscores (not starting with a digit, at most 64 characters) that is none of the tool's own tables")]
    BackupTableNameInvalid { name: String, reason: &'static str },
    /// The legacy table changed between verification and drop.
    #[error("the `embeddings` table changed after this run verified it (an application is writing to it); it was not dropped: run --execute --drop-old-table again once writes have stopped")]
    ChangedSinceVerification,
    /// The drop was refused.
    #[error("the `embeddings` table was not dropped: {0}")]
    DropRefused(String),
    /// The legacy table has columns the target tables do not: their values
    /// would not be carried over.
    #[error("the `embeddings` table has column(s) the new tables do not have, whose values would not be carried over: {}; nothing was written: copy what you need out of them, or run again with --ignore-extra-columns to migrate without them", ExtraColumn::list(columns))]
    ExtraLegacyColumns { columns: Vec<ExtraColumn> },
}

impl MigrateError {
    /// Whether this is a refusal: a safety rule stopped the run before an
    /// unsafe step (nothing was lost; the report says what to do).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            MigrateError::DropRefused(_)
                | MigrateError::ChangedSinceVerification
                | MigrateError::BackupFileExists { .. }
                | MigrateError::IncompatibleTargetTable { .. }
                | MigrateError::LockHeld { .. }
                | MigrateError::BackupTableExists { .. }
                | MigrateError::ExtraLegacyColumns { .. }
        )
    }

    /// The failure this error amounts to, for the report.
    pub fn failure(&self) -> RunFailure {
        RunFailure {
            kind: if self.is_refusal() {
                FailureKind::Refused
            } else {
                FailureKind::Failed
            },
            reason: self.to_string(),
        }
    }

    /// Whether the server rolled back the transaction of the failed step
    /// because another writer waited for it (sqld's transaction timeout).
    pub fn transaction_timed_out(&self) -> bool {
        self.core().is_some_and(Error::transaction_timed_out)
    }

    /// The core error underneath, when the failure came from below the
    /// engine.
    pub fn core(&self) -> Option<&Error> {
        match self {
            MigrateError::Core(e) => Some(e),
            _ => None,
        }
    }
}

impl Transient for MigrateError {
    fn class(&self) -> ErrorClass {
        self.core().map_or(ErrorClass::Fatal, Transient::class)
    }

    fn recover(&self) {
        if let Some(e) = self.core() {
            e.recover();
        }
    }

    fn exhausted(self, attempts: u32) -> Self {
        match self {
            MigrateError::Core(e) => MigrateError::Core(e.exhausted(attempts)),
            other => other,
        }
    }
}

/// Result with the migration's [`MigrateError`].
pub type Result<T, E = MigrateError> = std::result::Result<T, E>;
