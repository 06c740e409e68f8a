//! The migration engine: the legacy `embeddings` table into the
//! per-dimension tables, in checkpointed batches, verified bit for bit.
//!
//! ```no_run
//! use memory_storage_turso::migration::{migrate_embeddings, MigrationOptions};
//!
//! # async fn run() -> memory_storage_turso::migration::Result<()> {
//! let report = migrate_embeddings(
//!     "memory.db",
//!     "",
//!     MigrationOptions { dry_run: false, batch_size: 1000, ..Default::default() },
//! )
//! .await?;
//! println!("migrated: {:?}", report.migrated);
//! # Ok(()) }
//! ```

mod apply;
pub(crate) mod backup;
mod built_recall;
mod capabilities;
pub(crate) mod compare;
mod copy;
mod entry;
mod error;
mod estimate;
mod execute;
mod extra_columns;
pub(crate) mod finalize;
mod index;
mod index_eta;
mod index_phase;
mod index_plan;
mod indexing_table;
pub(crate) mod lock;
mod locked;
pub(crate) mod metadata;
pub(crate) mod observer;
pub(crate) mod online;
mod options;
pub(crate) mod outcome;
pub mod page_cache;
mod pass;
mod plan;
pub(crate) mod prior;
mod recall;
pub mod report;
pub(crate) mod rollback;
pub(crate) mod scan;
mod scan_indexes;
mod scratch;
pub(crate) mod smoke;
mod statements;
pub(crate) mod status;
mod verdict;
mod verify;
mod windows;
pub(crate) mod write;

pub use apply::ConflictPolicy;
pub use backup::{digest, legacy_schema, BackupTableName};
pub use entry::{
    migrate_embeddings, migrate_embeddings_observed, migrate_embeddings_reported, run_migration,
    run_migration_reported, FailedRun,
};
pub use error::{MigrateError, Result};
pub use index_plan::{Forced, IndexMode, IndexPlanning};
pub use lock::{host_name, MigrationLock, STALE_AFTER_SECS};
pub use observer::{NoopObserver, Observer, Phase};
pub use options::MigrationOptions;
pub use page_cache::LocalFile;
pub use report::{
    Discrepancy, DiscrepancyKind, FailureKind, IndexState, IndexStatus, MigrationReport,
    PhaseTiming, QuarantinedRow, RunFailure, RunMode, TableCount, Verification,
};
pub use scratch::remove_this_process_scratch;
pub use status::{migration_status, quarantined_rows, status, MigrationStatus};
