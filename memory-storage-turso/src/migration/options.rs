//! What a run should do: the options of a migration, checked together.

use std::path::PathBuf;

use super::error::MigrateError;
use super::page_cache;
use super::report::RunMode;
use super::scan::Limits;
use super::ConflictPolicy;
use crate::error::{Error, Result};

/// What a run should do.
#[derive(Debug, Clone)]
pub struct MigrationOptions {
    /// Read and report, write nothing.
    pub dry_run: bool,
    /// Only verify (read only).
    pub verify_only: bool,
    /// Copy the legacy table to the backup table (verified by count and
    /// checksum) before any target row is written.
    pub backup: bool,
    /// The backup table of `backup` and `drop_old_table`; `None`: the one
    /// the migration recorded making, else `embeddings_backup`. A table of
    /// that name the migration did not make is never replaced: the run is
    /// refused before it writes anything.
    pub backup_table: Option<String>,
    /// Also write a consistent copy of the whole local database here
    /// (`VACUUM INTO`) before the run's first write; never overwrites a file.
    pub backup_file: Option<PathBuf>,
    /// Migrate although the legacy table has columns the target tables do
    /// not (their values are not carried over; the drop is still refused
    /// while they hold any).
    pub ignore_extra_columns: bool,
    /// Rows per batch transaction.
    pub batch_size: usize,
    /// Drop the legacy table once this run verified every row (a verified
    /// `embeddings_backup` is made first if missing).
    pub drop_old_table: bool,
    /// Let the drop proceed although rows are quarantined.
    pub allow_quarantined: bool,
    /// Undo the migration instead of running it.
    pub rollback: bool,
    /// With `rollback`: only undo what was migrated after this checkpoint.
    pub from_checkpoint: Option<String>,
    /// Build the DiskANN indexes after the copy.
    pub build_vector_index: bool,
    /// Options of those indexes (`compress_neighbors`, `max_neighbors`)
    /// when they are fixed (`index.mode`).
    pub vector_index: crate::schema::VectorIndexOptions,
    /// Fixed options, or an index plan measured on the rows, per table.
    pub index: super::index_plan::IndexPlanning,
    /// Upper bound on the bytes of one batch (a batch of very large vectors
    /// is cut short so memory stays flat).
    pub batch_bytes: usize,
    /// How many quarantined rows and discrepancies the report lists (counts
    /// are always exact).
    pub listed_limit: usize,
    /// Retries of a batch after a transient error.
    pub max_retries: u32,
    /// Keep the legacy table writable: triggers log every change an
    /// application makes during the run, the engine mirrors those rows, and
    /// the triggers are removed in the transaction of the final check.
    pub online: bool,
    /// Remote databases: how long the server may stay silent while an
    /// answer is awaited before the request counts as lost and is retried.
    pub request_timeout: std::time::Duration,
    /// What wins when a target row the migration does not own holds a key
    /// of the legacy table with other values (default: the target row).
    pub on_conflict: ConflictPolicy,
    /// The database file when it is local: the copy then drops the pages
    /// it appended from the kernel's page cache once they are durable
    /// ([`page_cache`]), so the legacy table stays cached. Set by
    /// [`migrate_embeddings`] for a local database.
    pub local_file: Option<page_cache::LocalFile>,
    /// A remote database's Hrana pipeline: windows are then read, and
    /// batches written, in one request each. Set by
    /// [`migrate_embeddings`] for a remote database.
    pub remote: Option<crate::connect::pipeline::Pipeline>,
    /// Remote databases: send every statement as a request of its own, as
    /// the `libsql` client does, instead of a window or a batch per
    /// request (slower; for a server that does not take Hrana batches).
    pub statement_per_request: bool,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            dry_run: false,
            verify_only: false,
            backup: false,
            backup_table: None,
            backup_file: None,
            ignore_extra_columns: false,
            batch_size: 1000,
            drop_old_table: false,
            allow_quarantined: false,
            rollback: false,
            from_checkpoint: None,
            build_vector_index: true,
            vector_index: Default::default(),
            index: Default::default(),
            batch_bytes: 8 << 20,
            listed_limit: 10_000,
            max_retries: 5,
            online: false,
            request_timeout: crate::connect::DEFAULT_TIMEOUT,
            on_conflict: ConflictPolicy::Target,
            local_file: None,
            remote: None,
            statement_per_request: false,
        }
    }
}

impl MigrationOptions {
    pub(crate) fn mode(&self) -> RunMode {
        if self.rollback {
            RunMode::Rollback
        } else if self.dry_run {
            RunMode::DryRun
        } else if self.verify_only {
            RunMode::Verify
        } else {
            RunMode::Execute
        }
    }

    pub(crate) fn check(&self) -> Result<(), MigrateError> {
        let invalid = |m: &str| Err(Error::InvalidOptions(m.to_string()).into());
        if self.batch_size == 0 {
            return invalid("the batch size must be at least 1");
        }
        if [self.dry_run, self.verify_only, self.rollback]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
        {
            return invalid("choose one of dry run, verify and rollback");
        }
        let execute = self.mode() == RunMode::Execute;
        if (self.drop_old_table || self.backup_file.is_some()) && !execute {
            return invalid("--drop-old-table and --backup-file go with --execute");
        }
        if self.allow_quarantined && !self.drop_old_table {
            return invalid("--allow-quarantined goes with --drop-old-table");
        }
        if let Some(name) = &self.backup_table {
            super::backup::BackupTableName::parse(name)?;
            if !self.backup && !self.drop_old_table {
                return invalid("--backup-table goes with --backup or --drop-old-table");
            }
        }
        if !(0.0..=1.0).contains(&self.index.target_recall) {
            return invalid("--target-recall is a share between 0 and 1");
        }
        if self.online && !execute {
            return invalid("--online goes with --execute");
        }
        if self.from_checkpoint.is_some() && !self.rollback {
            return invalid("--from-checkpoint goes with --rollback");
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            rows: self.batch_size,
            bytes: self.batch_bytes.max(1),
        }
    }
}
