//! The entry points of a run: open the database, check the legacy table,
//! and dispatch to the dry run, the verification, the execute steps or the
//! rollback; a failed run keeps its partial report.

use libsql::Connection;

use super::apply::Rejected;
use super::error::{MigrateError, Result};
use super::lock::MigrationLock;
use super::observer::{NoopObserver, Observer};
use super::options::MigrationOptions;
use super::pass::{Flow, Pass};
use super::report::{MigrationReport, RunMode};
use super::scan::{Layout, RemoteReads};
use super::write::BatchWriter;
use super::{
    backup, capabilities, copy, extra_columns, metadata, online, page_cache, plan, rollback, scan,
    verdict, verify,
};
use crate::connect::Access;
use crate::db::with_retries;
use crate::error::Error;
use crate::schema::{table_columns, COLUMNS, LEGACY_TABLE};

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
    pub error: MigrateError,
}

impl FailedRun {
    fn new(mut report: MigrationReport, error: impl Into<MigrateError>) -> Box<FailedRun> {
        let error = error.into();
        report.failure = Some(error.failure());
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
    // Only a dry run or an execute plans indexes.
    let planning = options.index.mode == super::IndexMode::Planned
        && options.build_vector_index
        && matches!(options.mode(), RunMode::DryRun | RunMode::Execute);
    if planning && options.index.cold_read_rate.is_none() {
        let file = options.local_file.as_ref();
        options.index.cold_read_rate = file.and_then(|f| f.cold_read_rate());
    }
    if options.remote.is_none() && !options.statement_per_request {
        options.remote = db.pipeline.clone();
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
    match crate::db::on_connection(conn, run_on(conn, options, observer, &mut report)).await {
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
            return Err(MigrateError::LegacyDropped {
                at: at.parse().unwrap_or(0),
            });
        }
        return Err(MigrateError::MissingLegacyTable);
    }
    let missing: Vec<String> = COLUMNS
        .iter()
        .filter(|c| **c != "embedding_vector" && !legacy_columns.iter().any(|l| l == *c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MigrateError::LegacyTableShape { missing });
    }
    report.source_has_vector_column = legacy_columns.iter().any(|c| c == "embedding_vector");
    report.extra_columns =
        with_retries(retries, || extra_columns::find(conn, &legacy_columns)).await?;
    report.on_conflict = options.on_conflict;
    // Rows without a key cannot be paged past or found: quarantined by
    // count (they have no id to record), listed by item.
    let (null_keys, shown) =
        with_retries(retries, || scan::null_key_rows(conn, options.listed_limit)).await?;
    let reason = crate::decode::BadRowReason::NullKey;
    for i in 0..null_keys as usize {
        let id = shown.get(i).cloned().unwrap_or_else(|| "NULL".to_string());
        report.add_quarantined(id, reason.code(), reason.to_string());
    }
    report.source_rows = with_retries(retries, || copy::count_after(conn, None)).await?;
    let has_vector = report.source_has_vector_column;
    let layout = with_retries(retries, || Layout::read(conn, has_vector))
        .await?
        .reading_through(options.remote.clone().map(RemoteReads::new));
    let limits = options.limits();
    match report.mode {
        RunMode::DryRun => {
            // A run that builds no vector index has no index to plan (the
            // plan's scratch builds take minutes).
            let fixed = super::index_plan::IndexPlanning {
                mode: super::index_plan::IndexMode::Fixed,
                ..options.index.clone()
            };
            let planning = if options.build_vector_index {
                &options.index
            } else {
                &fixed
            };
            plan::plan(conn, &layout, limits, planning, observer, report).await?
        }
        RunMode::Verify => {
            let mut writer = BatchWriter::new(conn);
            let pass = Pass {
                conn,
                layout: &layout,
                limits,
                writer: &mut writer,
                max_retries: options.max_retries,
                rejected: &mut Rejected::new(),
                observer,
            };
            if verify::verify(pass, verify::Repair::No, report).await? == Flow::Stopped {
                report.interrupted = true;
            } else if verdict::clean_so_far(report) {
                let checks =
                    super::smoke::search_smoke_test(conn, options.index.target_recall).await?;
                verdict::fold_search(report, checks);
            }
            verdict::decide(report);
        }
        RunMode::Execute => {
            // Every refusal before the first write (the lock is one).
            if !report.extra_columns.is_empty() && !options.ignore_extra_columns {
                return Err(MigrateError::ExtraLegacyColumns {
                    columns: report.extra_columns.clone(),
                });
            }
            if options.backup || options.drop_old_table {
                let name =
                    with_retries(retries, || super::execute::backup_table_name(conn, options))
                        .await?;
                with_retries(retries, || backup::check_backup_table(conn, &name)).await?;
            }
            capabilities::require_vector_functions(conn, options.build_vector_index).await?;
            if let Some(path) = &options.backup_file {
                backup::backup_file(conn, path).await?;
                report.backup_file = Some(path.display().to_string());
            }
            let lock = with_retries(options.max_retries, || MigrationLock::acquire(conn)).await?;
            report.lock_taken_over_from = lock.took_over_from.clone();
            let result = super::execute::execute(conn, options, &lock, observer, report).await;
            let released = with_retries(options.max_retries, || lock.release(conn)).await;
            result?;
            released?;
        }
        RunMode::Rollback => unreachable!("handled above"),
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
