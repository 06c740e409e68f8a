//! The migration engine: the legacy `embeddings` table into the
//! per-dimension tables, in checkpointed batches, verified bit for bit.
//!
//! ```no_run
//! use memory_storage_turso::migration::{migrate_embeddings, MigrationOptions};
//!
//! # async fn run() -> memory_storage_turso::Result<()> {
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
pub mod compare;
mod copy;
mod index;
pub mod observer;
mod plan;
pub mod report;
pub mod row;
pub mod scan;
mod verify;
pub mod write;

use std::time::Instant;

use libsql::Connection;

pub use observer::{NoopObserver, Observer, Phase};
pub use report::{
    Discrepancy, IndexStatus, MigrationReport, PhaseTiming, QuarantinedRow, RunMode, TableCount,
    Verification,
};

use crate::connect::{open, Access};
use crate::error::{DbContext, Error, Result};
use crate::schema::{
    create_target_tables, object_exists, table_columns, TargetTable, COLUMNS, LEGACY_TABLE,
    QUARANTINE_TABLE,
};
use scan::{Layout, Limits};

/// What a run should do.
#[derive(Debug, Clone)]
pub struct MigrationOptions {
    /// Read and report, write nothing.
    pub dry_run: bool,
    /// Only verify (read only).
    pub verify_only: bool,
    /// Copy the legacy table to `embeddings_backup` first (not available yet:
    /// refused rather than ignored).
    pub backup: bool,
    /// Rows per batch transaction.
    pub batch_size: usize,
    /// Drop the legacy table after a verified migration (not available yet:
    /// refused rather than ignored).
    pub drop_old_table: bool,
    /// Build the DiskANN indexes after the copy.
    pub build_vector_index: bool,
    /// Upper bound on the bytes of one batch (a batch of very large vectors
    /// is cut short so memory stays flat).
    pub batch_bytes: usize,
    /// How many quarantined rows and discrepancies the report lists (counts
    /// are always exact).
    pub listed_limit: usize,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            dry_run: false,
            verify_only: false,
            backup: false,
            batch_size: 1000,
            drop_old_table: false,
            build_vector_index: true,
            batch_bytes: 32 << 20,
            listed_limit: 10_000,
        }
    }
}

impl MigrationOptions {
    fn mode(&self) -> RunMode {
        if self.dry_run {
            RunMode::DryRun
        } else if self.verify_only {
            RunMode::Verify
        } else {
            RunMode::Execute
        }
    }

    fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidOptions(
                "the batch size must be at least 1".into(),
            ));
        }
        if self.dry_run && self.verify_only {
            return Err(Error::InvalidOptions(
                "choose one of dry run and verify".into(),
            ));
        }
        if self.backup || self.drop_old_table {
            return Err(Error::InvalidOptions(
                "backup and drop-old-table are not available in this version; nothing was done"
                    .into(),
            ));
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            rows: self.batch_size,
            bytes: self.batch_bytes.max(1),
        }
    }
}

/// Opens the database at `db_url` (a local path, or a `libsql://` URL with
/// `auth_token`) and runs the migration the options ask for.
pub async fn migrate_embeddings(
    db_url: &str,
    auth_token: &str,
    options: MigrationOptions,
) -> Result<MigrationReport> {
    migrate_embeddings_observed(db_url, auth_token, &options, &NoopObserver).await
}

/// [`migrate_embeddings`] with an observer for progress.
pub async fn migrate_embeddings_observed(
    db_url: &str,
    auth_token: &str,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> Result<MigrationReport> {
    options.check()?;
    let access = match options.mode() {
        RunMode::Execute => Access::ReadWrite,
        RunMode::DryRun | RunMode::Verify => Access::ReadOnly,
    };
    let db = open(db_url, auth_token, access).await?;
    run_migration(&db.conn, options, observer).await
}

/// Runs the migration on an open connection.
pub async fn run_migration(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> Result<MigrationReport> {
    options.check()?;
    let legacy_columns = table_columns(conn, LEGACY_TABLE).await?;
    if legacy_columns.is_empty() {
        return Err(Error::MissingLegacyTable);
    }
    let missing: Vec<String> = COLUMNS
        .iter()
        .filter(|c| **c != "embedding_vector" && !legacy_columns.iter().any(|l| l == *c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::LegacyTableShape { missing });
    }
    let mut report = MigrationReport {
        mode: options.mode(),
        source_has_vector_column: legacy_columns.iter().any(|c| c == "embedding_vector"),
        listed_limit: options.listed_limit,
        source_rows: copy::count_after(conn, None).await?,
        ..Default::default()
    };
    let mut layout = layout(conn, report.source_has_vector_column).await?;
    if report.mode == RunMode::Execute {
        // Only after every existing table was found compatible.
        create_target_tables(conn).await?;
        layout = self::layout(conn, report.source_has_vector_column).await?;
    }
    let limits = options.limits();
    match report.mode {
        RunMode::DryRun => plan::plan(conn, &layout, limits, observer, &mut report).await?,
        RunMode::Verify => {
            verify::verify(
                conn,
                &layout,
                limits,
                verify::Repair::No,
                observer,
                &mut report,
            )
            .await?
        }
        RunMode::Execute => execute(conn, &layout, options, observer, &mut report).await?,
    }
    Ok(report)
}

async fn execute(
    conn: &Connection,
    layout: &Layout,
    options: &MigrationOptions,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    let start = write::read_checkpoint(conn).await?;
    report.resumed_from = start.as_ref().map(|k| k.to_string());
    let began = Instant::now();
    let copied = copy::copy(conn, layout, start, options.limits(), observer).await?;
    report.phases.push(PhaseTiming {
        phase: Phase::Copy.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: copied.rows_seen,
    });
    report.migrated = Some(copied.written);
    report.already_migrated = copied.already;
    if copied.interrupted {
        report.interrupted = true;
        return Ok(());
    }
    index::build_indexes(conn, options.build_vector_index, observer, report).await?;
    let indexes_built = report.vector_indexes.iter().any(|i| i.status == "built");
    verify::verify(
        conn,
        layout,
        options.limits(),
        verify::Repair::Yes,
        observer,
        report,
    )
    .await?;
    report.nothing_to_do = report.rows_written() == 0 && !indexes_built;
    Ok(())
}

/// Which tables exist, and that existing target tables have our columns.
async fn layout(conn: &Connection, legacy_has_vector: bool) -> Result<Layout> {
    let mut targets = Vec::new();
    for table in TargetTable::ALL {
        let columns = table_columns(conn, table.name()).await?;
        if columns.is_empty() {
            continue;
        }
        let missing: Vec<String> = COLUMNS
            .iter()
            .filter(|c| !columns.iter().any(|have| have == *c))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Error::IncompatibleTargetTable {
                table: table.name().to_string(),
                missing,
            });
        }
        targets.push(table);
    }
    Ok(Layout {
        legacy_has_vector,
        targets,
        quarantine: object_exists(conn, QUARANTINE_TABLE).await?,
    })
}

/// Rows currently in the quarantine record, oldest reason kept per row.
pub async fn quarantined_rows(conn: &Connection) -> Result<Vec<QuarantinedRow>> {
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
        out.push(QuarantinedRow {
            embedding_id: row::Key(row.get_value(0).db_context(ctx)?).to_string(),
            code: row.get::<String>(1).db_context(ctx)?,
            reason: row.get::<String>(2).db_context(ctx)?,
        });
    }
    Ok(out)
}
