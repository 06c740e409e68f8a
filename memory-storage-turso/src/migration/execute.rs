//! An execute run, step by step: record what is there, create the tables,
//! back up, copy, mirror online changes, build the vector indexes, verify
//! and repair, check search, record the outcome, and drop when asked.

use libsql::Connection;

use super::apply::{ConflictPolicy, Rejected};
use super::error::{MigrateError, Result};
use super::lock::MigrationLock;
use super::observer::{timed, Observer, Phase};
use super::options::MigrationOptions;
use super::pass::{Flow, Pass};
use super::report::{MigrationReport, PhaseTiming};
use super::write::BatchWriter;
use super::{
    backup, copy, finalize, index_phase, metadata, online, outcome, page_cache, prior, smoke,
    verdict, verify, write,
};
use crate::db::with_retries;
use crate::error::DbContext;
use crate::schema::{create_target_tables, object_exists, TargetTable, SCHEMA_VERSION};

/// Runs every step of an execute run in order. Each step returns what it
/// did; this function folds it into the report, and [`verdict::decide`]
/// alone says whether the verification passed.
pub(super) async fn execute(
    conn: &Connection,
    options: &MigrationOptions,
    lock: &MigrationLock,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    let retries = options.max_retries;
    prepare(conn, options).await?;
    let has_vector = report.source_has_vector_column;
    let layout = with_retries(retries, || super::scan::Layout::read(conn, has_vector))
        .await?
        .reading_through(options.remote.clone().map(super::scan::RemoteReads::new));
    if options.backup {
        let (backup, timing) = timed(observer, Phase::Backup, report.source_rows, async {
            let name = backup_table_name(conn, options).await?;
            with_retries(retries, || make_or_check_backup(conn, &name)).await
        })
        .await?;
        report.backup = Some(backup);
        report.phases.push(timing);
    }

    let start = with_retries(retries, || write::read_checkpoint(conn)).await?;
    report.resumed_from = start.as_ref().map(|k| k.to_string());
    let mut writer = BatchWriter::new(conn)
        .with_lock(Some(lock.clone()))
        .with_policy(options.on_conflict);
    let mut rejected = Rejected::new();
    let mut appended = page_cache::AppendedPages::watch(options.local_file.as_ref());
    // One pass context per phase, over the same writer and refusals.
    macro_rules! pass {
        ($observer:expr) => {
            Pass {
                conn,
                layout: &layout,
                limits: options.limits(),
                writer: &mut writer,
                max_retries: retries,
                rejected: &mut rejected,
                observer: $observer,
            }
        };
    }

    // Copy.
    let copied = copy::copy(pass!(observer), start, &mut appended).await?;
    report.phases.push(PhaseTiming {
        phase: Phase::Copy.name().into(),
        seconds: copied.seconds,
        units: copied.rows_seen,
    });
    report.migrated = Some(copied.written.clone());
    report.already_migrated = copied.already.clone();
    report.removed_stale = copied.removed;
    if copied.flow == Flow::Stopped {
        return stop(report);
    }
    with_retries(retries, || crate::schema::create_item_indexes(conn)).await?;

    // Online: what the application changed during the copy.
    let online_active = online::active(conn).await?;
    if online_active {
        let mirrored = online::catch_up(pass!(observer)).await?;
        report.online = Some(online::OnlineReport {
            mirrored,
            ..Default::default()
        });
    }

    // Vector indexes: planned (or fixed) per table, built, and measured.
    let Some(indexes_built) =
        index_phase::run(conn, options, online_active, observer, report).await?
    else {
        return stop(report);
    };

    // Verification and repair, the legacy pages the copy appended read
    // ahead (rows before them: those up to the checkpoint this copy
    // resumed from, which the verification sees first).
    let read_ahead = page_cache::ReadAhead::start(
        appended.into_region(),
        report.source_rows.saturating_sub(copied.rows_seen),
    );
    let verify_observer = page_cache::ReadAheadObserver {
        inner: observer,
        read_ahead: &read_ahead,
    };
    let verified = verify::verify(pass!(&verify_observer), verify::Repair::Yes, report).await?;
    drop(read_ahead);
    report.migrated_bytes = writer.bytes_per_table();
    report.displaced = writer.displaced;
    if verified == Flow::Stopped {
        return stop(report);
    }
    report.nothing_to_do = report.rows_written() == 0
        && !indexes_built
        && report
            .verification
            .as_ref()
            .is_some_and(|v| v.repaired == 0);

    // Online: discrepancies can come from the application's writes during
    // the verification; the final mirror settles them or names one.
    if online_active {
        let unsettled = if verdict::clean_so_far(report) {
            Some(Vec::new())
        } else {
            report.verification.as_ref().and_then(|v| v.all_keys())
        };
        if let Some(also) = unsettled {
            let more = online::catch_up(pass!(observer)).await?;
            let finish = online::finish(pass!(observer), &also).await?;
            let online = report.online.get_or_insert_with(Default::default);
            online.mirrored += more;
            if let online::Finish::Done(n) = finish {
                online.final_keys = n;
                online.triggers_removed = true;
            }
            verdict::fold_settlement(report, &finish);
        }
    }

    // Search: each index finds its own rows.
    if verdict::clean_so_far(report) {
        let checks = smoke::search_smoke_test(conn, options.index.target_recall).await?;
        verdict::fold_search(report, checks);
    }

    let passed = verdict::decide(report);
    record(conn, retries, report, passed).await?;
    if options.drop_old_table {
        refuse_unsafe_drop(report, options)?;
        let verified = report
            .source_digest
            .clone()
            .ok_or_else(|| MigrateError::DropRefused("no verification digest".into()))?;
        let backup_table = backup_table_name(conn, options).await?;
        let (dropped, timing) = timed(observer, Phase::Drop, report.source_rows, async {
            with_retries(retries, || {
                finalize::drop_legacy(conn, &verified, &backup_table)
            })
            .await
        })
        .await?;
        report.dropped_legacy = Some(dropped);
        report.phases.push(timing);
    }
    Ok(())
}

/// Ends the run where the observer asked it to stop: everything before is
/// committed, and an interrupted verification cannot pass.
fn stop(report: &mut MigrationReport) -> Result<()> {
    report.interrupted = true;
    verdict::decide(report);
    Ok(())
}

/// Before the first copy: what the database holds (so a rollback can put
/// it back exactly), then the target tables, the online triggers and the
/// table of displaced rows. Runs only after every existing table was found
/// compatible.
async fn prepare(conn: &Connection, options: &MigrationOptions) -> Result<()> {
    let retries = options.max_retries;
    with_retries(retries, || prior::record(conn)).await?;
    let mut created = Vec::new();
    for t in TargetTable::ALL {
        if !object_exists(conn, t.name()).await? {
            created.push(t.name().to_string());
        }
    }
    with_retries(retries, || create_target_tables(conn)).await?;
    if !created.is_empty() {
        let mut all = metadata::created_tables(conn).await?;
        all.extend(created);
        all.sort();
        all.dedup();
        let all = serde_json::to_string(&all).unwrap_or_default();
        with_retries(retries, || {
            metadata::set(conn, metadata::CREATED_TABLES, &all)
        })
        .await?;
    }
    if options.online {
        with_retries(retries, || online::install(conn)).await?;
    }
    if options.on_conflict == ConflictPolicy::Legacy {
        with_retries(retries, || async {
            conn.execute(crate::schema::DISPLACED_TABLE_SQL, ())
                .await
                .db_context(|| "creating the table of displaced rows".to_string())
                .map(|_| ())
        })
        .await?;
    }
    Ok(())
}

/// Records the verification (and, when it passed, the completion) in one
/// transaction.
async fn record(
    conn: &Connection,
    retries: u32,
    report: &MigrationReport,
    passed: bool,
) -> Result<()> {
    with_retries(retries, || {
        write::in_transaction(conn, "recording the verification", async {
            outcome::record(conn, report).await?;
            if passed {
                record_completion(conn, report).await?;
            }
            Ok::<_, MigrateError>(())
        })
    })
    .await
}

/// Refuses `--drop-old-table` unless the verification passed, no row is
/// only in the legacy table (quarantined, unless allowed) and no extra
/// column holds data.
fn refuse_unsafe_drop(report: &MigrationReport, options: &MigrationOptions) -> Result<()> {
    if !report.verification.as_ref().is_some_and(|v| v.passed) {
        let n = report
            .verification
            .as_ref()
            .map_or(0, |v| v.discrepancy_count);
        return Err(MigrateError::DropRefused(format!(
            "verification found {n} discrepancies (listed in the report); fix them and run again"
        )));
    }
    if report.quarantined_count > 0 && !options.allow_quarantined {
        return Err(MigrateError::DropRefused(format!(
            "{} rows are quarantined and exist only in `embeddings`; fix them and run again, \
             or pass --allow-quarantined (they then live on in the backup table and the quarantine record)",
            report.quarantined_count
        )));
    }
    let holding: Vec<super::report::ExtraColumn> = report
        .extra_columns
        .iter()
        .filter(|c| c.rows_with_data > 0)
        .cloned()
        .collect();
    if !holding.is_empty() {
        return Err(MigrateError::DropRefused(finalize::extra_columns_refusal(
            &holding,
        )));
    }
    Ok(())
}

/// The backup table this run uses (see [`MigrationOptions::backup_table`]).
pub(super) async fn backup_table_name(
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
    Ok(metadata::set(conn, metadata::SCHEMA_VERSION, &SCHEMA_VERSION.to_string()).await?)
}
