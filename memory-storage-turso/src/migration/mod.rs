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
pub mod backup;
mod capabilities;
pub mod compare;
mod copy;
mod estimate;
mod extra_columns;
pub mod finalize;
mod index;
pub mod lock;
pub mod metadata;
pub mod observer;
pub mod online;
pub mod page_cache;
pub mod outcome;
mod plan;
pub mod prior;
pub mod report;
pub mod retry;
pub mod rollback;
pub mod row;
pub mod scan;
pub mod smoke;
pub mod status;
mod verify;
pub mod write;

use std::path::PathBuf;
use std::time::Instant;

use libsql::Connection;

pub use observer::{NoopObserver, Observer, Phase};
pub use report::{
    Discrepancy, DiscrepancyKind, FailureKind, IndexState, IndexStatus, MigrationReport, PhaseTiming, QuarantinedRow,
    RunFailure, RunMode, TableCount, Verification,
};
pub use status::{migration_status, status, MigrationStatus};

use crate::connect::Access;
use crate::error::{DbContext, Error, Result};
use crate::schema::{
    create_target_tables, object_exists, table_columns, TargetTable, COLUMNS, LEDGER_TABLE,
    LEGACY_TABLE, QUARANTINE_TABLE, SCHEMA_VERSION,
};
pub use apply::ConflictPolicy;
use apply::Rejected;
use lock::MigrationLock;
use retry::with_retries;
use scan::{Layout, Limits};
use write::BatchWriter;

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
    /// Options of those indexes (`compress_neighbors`, `max_neighbors`).
    pub vector_index: crate::schema::VectorIndexOptions,
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
            batch_bytes: 8 << 20,
            listed_limit: 10_000,
            max_retries: 5,
            online: false,
            request_timeout: crate::connect::DEFAULT_TIMEOUT,
            on_conflict: ConflictPolicy::Target,
            local_file: None,
        }
    }
}

impl MigrationOptions {
    fn mode(&self) -> RunMode {
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

    fn check(&self) -> Result<()> {
        let invalid = |m: &str| Err(Error::InvalidOptions(m.to_string()));
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
            backup::BackupTableName::parse(name)?;
            if !self.backup && !self.drop_old_table {
                return invalid("--backup-table goes with --backup or --drop-old-table");
            }
        }
        if self.online && !execute {
            return invalid("--online goes with --execute");
        }
        if self.from_checkpoint.is_some() && !self.rollback {
            return invalid("--from-checkpoint goes with --rollback");
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
    migrate_embeddings_reported(db_url, auth_token, options, observer)
        .await
        .map_err(|failed| failed.error)
}

/// A run that failed or was refused, with the report of what it had found
/// and done until then (its `failure` says why).
#[derive(Debug)]
pub struct FailedRun {
    pub report: MigrationReport,
    pub error: Error,
}

impl FailedRun {
    fn new(mut report: MigrationReport, error: Error) -> Box<FailedRun> {
        report.failure = Some(report::RunFailure::of(&error));
        Box::new(FailedRun { report, error })
    }
}

/// [`migrate_embeddings_observed`], keeping the partial report of a run
/// that fails or is refused (so a caller can write it out on every outcome).
pub async fn migrate_embeddings_reported(
    db_url: &str,
    auth_token: &str,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> std::result::Result<MigrationReport, Box<FailedRun>> {
    let empty = || MigrationReport {
        mode: options.mode(),
        listed_limit: options.listed_limit,
        ..Default::default()
    };
    options.check().map_err(|e| FailedRun::new(empty(), e))?;
    let access = match options.mode() {
        RunMode::Execute | RunMode::Rollback => Access::ReadWrite,
        RunMode::DryRun | RunMode::Verify => Access::ReadOnly,
    };
    if options.backup_file.is_some() && crate::connect::is_remote(db_url) {
        return Err(FailedRun::new(empty(), Error::InvalidOptions(
            "--backup-file writes a local copy with VACUUM INTO, which a remote server would write on its own disk; use --backup (a checked copy inside the database) instead".into(),
        )));
    }
    let db = crate::connect::open_with_timeout(db_url, auth_token, access, options.request_timeout)
        .await
        .map_err(|e| FailedRun::new(empty(), e))?;
    let mut options = options.clone();
    if options.local_file.is_none() {
        options.local_file = db.local.clone().map(page_cache::LocalFile::new);
    }
    run_migration_reported(&db.conn, &options, observer).await
}

/// Runs the migration on an open connection.
pub async fn run_migration(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> Result<MigrationReport> {
    run_migration_reported(conn, options, observer)
        .await
        .map_err(|failed| failed.error)
}

/// [`run_migration`], keeping the partial report of a failed run.
pub async fn run_migration_reported(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> std::result::Result<MigrationReport, Box<FailedRun>> {
    let mut report = MigrationReport {
        mode: options.mode(),
        listed_limit: options.listed_limit,
        ..Default::default()
    };
    match retry::on_connection(conn, run_on(conn, options, observer, &mut report)).await {
        Ok(()) => Ok(report),
        Err(e) => Err(FailedRun::new(report, e)),
    }
}

async fn run_on(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    options.check()?;
    if options.mode() == RunMode::Rollback {
        return run_rollback(conn, options, report).await;
    }
    let retries = options.max_retries;
    let legacy_columns = with_retries(retries, || table_columns(conn, LEGACY_TABLE)).await?;
    if legacy_columns.is_empty() {
        if let Some(at) =
            with_retries(retries, || metadata::get(conn, metadata::LEGACY_DROPPED_AT)).await?
        {
            return Err(Error::LegacyDropped {
                at: at.parse().unwrap_or(0),
            });
        }
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
    report.source_has_vector_column = legacy_columns.iter().any(|c| c == "embedding_vector");
    report.extra_columns =
        with_retries(retries, || extra_columns::find(conn, &legacy_columns)).await?;
    report.on_conflict = options.on_conflict;
    // Rows without a key cannot be paged past or found: quarantined by
    // count (they have no id to record), listed by item.
    let (null_keys, shown) = with_retries(retries, || {
        scan::null_key_rows(conn, options.listed_limit)
    })
    .await?;
    let reason = crate::decode::BadRowReason::NullKey;
    for i in 0..null_keys as usize {
        let id = shown.get(i).cloned().unwrap_or_else(|| "NULL".to_string());
        report.add_quarantined(id, reason.code(), reason.to_string());
    }
    report.source_rows = with_retries(retries, || copy::count_after(conn, None)).await?;
    let has_vector = report.source_has_vector_column;
    let layout = with_retries(retries, || layout(conn, has_vector)).await?;
    let limits = options.limits();
    match report.mode {
        RunMode::DryRun => plan::plan(conn, &layout, limits, observer, report).await?,
        RunMode::Verify => {
            let mut writer = BatchWriter::new(conn);
            verify::verify(
                conn,
                &layout,
                limits,
                verify::Repair::No,
                &mut writer,
                options.max_retries,
                &mut Rejected::new(),
                observer,
                report,
            )
            .await?;
            smoke_test(conn, report).await?;
        }
        RunMode::Execute => {
            // Every refusal before the first write (the lock is one).
            if !report.extra_columns.is_empty() && !options.ignore_extra_columns {
                return Err(Error::ExtraLegacyColumns {
                    columns: report.extra_columns.clone(),
                });
            }
            if options.backup || options.drop_old_table {
                let name = with_retries(retries, || backup_table_name(conn, options)).await?;
                with_retries(retries, || backup::check_backup_table(conn, &name)).await?;
            }
            capabilities::require_vector_functions(conn, options.build_vector_index).await?;
            if let Some(path) = &options.backup_file {
                backup::backup_file(conn, path).await?;
                report.backup_file = Some(path.display().to_string());
            }
            let lock = with_retries(options.max_retries, || MigrationLock::acquire(conn)).await?;
            report.lock_taken_over_from = lock.took_over_from.clone();
            let result = execute(conn, options, &lock, observer, report).await;
            let released = with_retries(options.max_retries, || lock.release(conn)).await;
            result?;
            released?;
        }
        RunMode::Rollback => unreachable!("handled above"),
    }
    Ok(())
}

/// Ends a passed verification with the search smoke test; a table whose
/// index does not find its own rows fails the verification.
async fn smoke_test(conn: &Connection, report: &mut MigrationReport) -> Result<()> {
    if !report.verification.as_ref().is_some_and(|v| v.passed) {
        return Ok(());
    }
    report.search_checks = smoke::search_smoke_test(conn).await?;
    let limit = report.listed_limit;
    if let Some(v) = report.verification.as_mut() {
        for c in report.search_checks.iter().filter(|c| !c.passed()) {
            v.passed = false;
            for id in &c.missed {
                v.discrepancy_count += 1;
                if v.discrepancies.len() < limit {
                    v.discrepancies.push(Discrepancy {
                        embedding_id: id.clone(),
                        kind: report::DiscrepancyKind::Search,
                        table: c.table.clone(),
                        detail: format!(
                            "searched with its own vector, this row did not come back first; {} of {} sampled rows of {} did (at least {:.0}% must)",
                            c.found_first,
                            c.sampled,
                            c.table,
                            smoke::MIN_FOUND_SHARE * 100.0
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

async fn run_rollback(
    conn: &Connection,
    options: &MigrationOptions,
    report: &mut MigrationReport,
) -> Result<()> {
    let retries = options.max_retries;
    // Nothing to undo: nothing is written, not even the lock.
    if !with_retries(retries, || rollback::anything_to_undo(conn)).await? {
        report.rollback = Some(rollback::RollbackReport {
            nothing_to_undo: true,
            ..Default::default()
        });
        return Ok(());
    }
    let lock = with_retries(retries, || MigrationLock::acquire(conn)).await?;
    let result = match &options.from_checkpoint {
        Some(after) => with_retries(retries, || rollback::rollback_after(conn, after)).await,
        None => with_retries(retries, || rollback::rollback_all(conn)).await,
    };
    // An online run's triggers go with the rows they were mirroring.
    let result = match result {
        Ok(r) if online::active(conn).await? => {
            with_retries(retries, || online::uninstall(conn)).await?;
            Ok(r)
        }
        other => other,
    };
    let released = with_retries(retries, || lock.release(conn)).await;
    report.lock_taken_over_from = lock.took_over_from.clone();
    let rolled = result?;
    released?;
    if options.from_checkpoint.is_none() {
        with_retries(retries, || rollback::drop_lock_table(conn)).await?;
    }
    report.rollback = Some(rolled);
    Ok(())
}

async fn execute(
    conn: &Connection,
    options: &MigrationOptions,
    lock: &MigrationLock,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    // Before the first write: what the database holds, so a rollback can
    // put it back exactly.
    with_retries(options.max_retries, || prior::record(conn)).await?;
    // Only after every existing table was found compatible.
    let mut created = Vec::new();
    for t in TargetTable::ALL {
        if !object_exists(conn, t.name()).await? {
            created.push(t.name().to_string());
        }
    }
    with_retries(options.max_retries, || create_target_tables(conn)).await?;
    if !created.is_empty() {
        let mut all: Vec<String> = metadata::get(conn, metadata::CREATED_TABLES)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        all.extend(created);
        all.sort();
        all.dedup();
        let all = serde_json::to_string(&all).unwrap_or_default();
        with_retries(options.max_retries, || {
            metadata::set(conn, metadata::CREATED_TABLES, &all)
        })
        .await?;
    }
    if options.online {
        with_retries(options.max_retries, || online::install(conn)).await?;
    }
    if options.on_conflict == ConflictPolicy::Legacy {
        with_retries(options.max_retries, || async {
            conn.execute(crate::schema::DISPLACED_TABLE_SQL, ())
                .await
                .db_context(|| "creating the table of displaced rows".to_string())
                .map(|_| ())
        })
        .await?;
    }
    let has_vector = report.source_has_vector_column;
    let layout = with_retries(options.max_retries, || layout(conn, has_vector)).await?;
    if options.backup {
        let began = Instant::now();
        observer.phase_started(Phase::Backup, report.source_rows);
        let name = backup_table_name(conn, options).await?;
        report.backup =
            Some(with_retries(options.max_retries, || make_or_check_backup(conn, &name)).await?);
        observer.phase_finished(Phase::Backup, began.elapsed());
        report.phases.push(PhaseTiming {
            phase: Phase::Backup.name().into(),
            seconds: began.elapsed().as_secs_f64(),
            units: report.source_rows,
        });
    }
    let start = with_retries(options.max_retries, || write::read_checkpoint(conn)).await?;
    report.resumed_from = start.as_ref().map(|k| k.to_string());
    let mut writer = BatchWriter::new(conn)
        .with_lock(Some(lock.clone()))
        .with_policy(options.on_conflict);
    let mut rejected = Rejected::new();
    let mut appended = page_cache::AppendedPages::watch(options.local_file.as_ref());
    let began = Instant::now();
    let copied = copy::copy(
        conn,
        &layout,
        start,
        options.limits(),
        &mut writer,
        options.max_retries,
        &mut rejected,
        observer,
        &mut appended,
    )
    .await?;
    if !copied.interrupted {
        with_retries(options.max_retries, || {
            crate::schema::create_item_indexes(conn)
        })
        .await?;
    }
    report.phases.push(PhaseTiming {
        phase: Phase::Copy.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: copied.rows_seen,
    });
    report.migrated = Some(copied.written);
    report.already_migrated = copied.already;
    report.removed_stale = copied.removed;
    if copied.interrupted {
        report.interrupted = true;
        return Ok(());
    }
    let online_active = online::active(conn).await?;
    if online_active {
        let mirrored = online::catch_up(
            conn,
            &layout,
            &mut writer,
            options.max_retries,
            &mut rejected,
            observer,
        )
        .await?;
        report.online = Some(online::OnlineReport {
            mirrored,
            ..Default::default()
        });
    }

    index::build_indexes(
        conn,
        options.build_vector_index,
        &options.vector_index,
        options.max_retries,
        observer,
        report,
    )
    .await?;
    if report.interrupted {
        return Ok(());
    }
    let indexes_built = report
        .vector_indexes
        .iter()
        .any(|i| i.status.is_built());
    // Rows before the region: those up to the checkpoint this copy
    // resumed from, which the verification sees first.
    let read_ahead = page_cache::ReadAhead::start(
        appended.into_region(),
        report.source_rows.saturating_sub(copied.rows_seen),
    );
    let verify_observer = page_cache::ReadAheadObserver {
        inner: observer,
        read_ahead: &read_ahead,
    };
    verify::verify(
        conn,
        &layout,
        options.limits(),
        verify::Repair::Yes,
        &mut writer,
        options.max_retries,
        &mut rejected,
        &verify_observer,
        report,
    )
    .await?;
    drop(read_ahead);
    report.migrated_bytes = writer.bytes_per_table();
    report.displaced = writer.displaced;
    if report.interrupted {
        return Ok(());
    }
    report.nothing_to_do = report.rows_written() == 0
        && !indexes_built
        && report
            .verification
            .as_ref()
            .is_some_and(|v| v.repaired == 0);
    // Online: discrepancies can come from the application's writes during
    // the verification; the final check settles them or fails.
    let unsettled = match &report.verification {
        Some(v) if online_active && !v.passed => v.all_keys(),
        Some(v) if online_active && v.passed => Some(Vec::new()),
        _ => None,
    };
    if let Some(also) = unsettled {
        let more = online::catch_up(
            conn,
            &layout,
            &mut writer,
            options.max_retries,
            &mut rejected,
            observer,
        )
        .await?;
        let last = online::finish(
            conn,
            &layout,
            &also,
            &mut writer,
            options.max_retries,
            &mut rejected,
            observer,
        )
        .await?;
        let online = report.online.get_or_insert_with(Default::default);
        online.mirrored += more;
        match last {
            online::Finish::Done(n) => {
                online.final_keys = n;
                online.triggers_removed = true;
                if let Some(v) = report.verification.as_mut() {
                    if !v.passed {
                        v.settled_in_final_check = v.discrepancy_count;
                        v.discrepancy_count = 0;
                        v.discrepancies.clear();
                        v.passed = !report.interrupted;
                    }
                }
            }
            online::Finish::Unsettled(key) => {
                if let Some(v) = report.verification.as_mut() {
                    if v.passed {
                        v.passed = false;
                        let limit = report.listed_limit;
                        v.discrepancy_count += 1;
                        if v.discrepancies.len() < limit {
                            v.discrepancies.push(Discrepancy {
                                embedding_id: key,
                                kind: report::DiscrepancyKind::Unsettled,
                                table: String::new(),
                                detail: "still differs after the final mirror of an online run; the triggers stay".into(),
                            });
                        }
                    }
                }
            }
        }
    }
    smoke_test(conn, report).await?;
    let passed = report.verification.as_ref().is_some_and(|v| v.passed);
    let done: &MigrationReport = report;
    with_retries(options.max_retries, || {
        write::in_transaction(conn, "recording the verification", async {
            outcome::record(conn, done).await?;
            if passed {
                record_completion(conn, done).await?;
            }
            Ok(())
        })
    })
    .await?;
    if options.drop_old_table {
        if !passed {
            let n = report
                .verification
                .as_ref()
                .map_or(0, |v| v.discrepancy_count);
            return Err(Error::DropRefused(format!(
                "verification found {n} discrepancies (listed in the report); fix them and run again"
            )));
        }
        if report.quarantined_count > 0 && !options.allow_quarantined {
            return Err(Error::DropRefused(format!(
                "{} rows are quarantined and exist only in `embeddings`; fix them and run again, \
                 or pass --allow-quarantined (they then live on in the backup table and the quarantine record)",
                report.quarantined_count
            )));
        }
        let holding: Vec<report::ExtraColumn> = report
            .extra_columns
            .iter()
            .filter(|c| c.rows_with_data > 0)
            .cloned()
            .collect();
        if !holding.is_empty() {
            return Err(Error::DropRefused(finalize::extra_columns_refusal(
                &holding,
            )));
        }
        let verified = report
            .source_digest
            .clone()
            .ok_or_else(|| Error::DropRefused("no verification digest".into()))?;
        let backup_table = backup_table_name(conn, options).await?;
        let began = Instant::now();
        observer.phase_started(Phase::Drop, report.source_rows);
        report.dropped_legacy = Some(
            with_retries(options.max_retries, || {
                finalize::drop_legacy(conn, &verified, &backup_table)
            })
            .await?,
        );
        observer.phase_finished(Phase::Drop, began.elapsed());
        report.phases.push(PhaseTiming {
            phase: Phase::Drop.name().into(),
            seconds: began.elapsed().as_secs_f64(),
            units: report.source_rows,
        });
    }
    Ok(())
}

/// The backup table this run uses (see [`MigrationOptions::backup_table`]).
async fn backup_table_name(
    conn: &Connection,
    options: &MigrationOptions,
) -> Result<backup::BackupTableName> {
    backup::resolve_name(conn, options.backup_table.as_deref()).await
}

/// Makes the backup table `name`, or proves the migration's own intact;
/// refuses a table of that name the migration did not make.
async fn make_or_check_backup(
    conn: &Connection,
    name: &backup::BackupTableName,
) -> Result<backup::BackupReport> {
    let report = |status, digest| backup::BackupReport {
        status,
        table: name.to_string(),
        digest,
        file: None,
    };
    if let backup::BackupState::Own(digest) = backup::check_backup_table(conn, name).await? {
        return Ok(report(backup::BackupStatus::Verified, digest));
    }
    // Checked again under the write lock: made only if still missing.
    let digest = write::in_transaction(conn, "making the backup table", async {
        let state = backup::check_backup_table(conn, name).await?;
        backup::make_backup_table(conn, name, &state).await
    })
    .await?;
    Ok(report(backup::BackupStatus::Created, digest))
}

/// Records the completed migration in `metadata`.
async fn record_completion(conn: &Connection, report: &MigrationReport) -> Result<()> {
    let counts: std::collections::BTreeMap<&String, u64> = report
        .verification
        .iter()
        .flat_map(|v| v.tables.iter().map(|(t, c)| (t, c.expected)))
        .collect();
    metadata::set(conn, metadata::COMPLETED_AT, &write::unix_now().to_string()).await?;
    metadata::set(
        conn,
        metadata::ROW_COUNTS,
        &serde_json::to_string(&counts).unwrap_or_default(),
    )
    .await?;
    metadata::set(
        conn,
        metadata::QUARANTINED,
        &report.quarantined_count.to_string(),
    )
    .await?;
    metadata::set(conn, metadata::SCHEMA_VERSION, &SCHEMA_VERSION.to_string()).await
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
        ledger: object_exists(conn, LEDGER_TABLE).await?,
        legacy_unique: scan::legacy_key_is_unique(conn).await?,
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
