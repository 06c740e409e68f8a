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
pub mod backup;
mod capabilities;
pub mod compare;
mod copy;
mod entry;
mod error;
mod estimate;
mod execute;
mod extra_columns;
pub mod finalize;
mod index;
pub mod lock;
pub mod metadata;
pub mod observer;
pub mod online;
mod options;
pub mod outcome;
pub mod page_cache;
mod pass;
mod plan;
pub mod prior;
pub mod report;
pub mod rollback;
pub mod scan;
pub mod smoke;
pub mod status;
mod verify;
mod windows;
pub mod write;

pub use apply::ConflictPolicy;
pub use entry::{
    migrate_embeddings, migrate_embeddings_observed, migrate_embeddings_reported, run_migration,
    run_migration_reported, FailedRun,
};
pub use error::{MigrateError, Result};
pub use observer::{NoopObserver, Observer, Phase};
pub use options::MigrationOptions;
pub use report::{
    Discrepancy, DiscrepancyKind, FailureKind, IndexState, IndexStatus, MigrationReport,
    PhaseTiming, QuarantinedRow, RunFailure, RunMode, TableCount, Verification,
};
pub use status::{migration_status, quarantined_rows, status, MigrationStatus};
