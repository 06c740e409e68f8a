//! An execute run, step by step: record what is there, create the tables,
//! back up, copy, mirror online changes, build the vector indexes, verify
//! and repair, check search, record the outcome, and drop when asked.

use std::time::Instant;

use libsql::Connection;

use super::apply::{ConflictPolicy, Rejected};
use super::error::{MigrateError, Result};
use super::lock::MigrationLock;
use super::observer::{Observer, Phase};
use super::options::MigrationOptions;
use super::pass::Pass;
use super::report::{Discrepancy, MigrationReport, PhaseTiming};
use super::write::BatchWriter;
use super::{
    backup, copy, finalize, index, metadata, online, outcome, page_cache, prior, smoke, verify,
    write,
};
use crate::db::with_retries;
use crate::error::DbContext;
use crate::schema::{create_target_tables, object_exists, TargetTable, SCHEMA_VERSION};

pub(super) async fn execute(
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
        let mut all = metadata::created_tables(conn).await?;
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
    let layout = with_retries(options.max_retries, || {
        super::scan::Layout::read(conn, has_vector)
    })
    .await?;
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
    // One pass context per phase, over the same writer and refusals.
    macro_rules! pass {
        ($observer:expr) => {
            Pass {
                conn,
                layout: &layout,
                limits: options.limits(),
                writer: &mut writer,
                max_retries: options.max_retries,
                rejected: &mut rejected,
                observer: $observer,
            }
        };
    }
    let copied = copy::copy(pass!(observer), start, &mut appended).await?;
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
        let mirrored = online::catch_up(pass!(observer)).await?;
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
    let indexes_built = report.vector_indexes.iter().any(|i| i.status.is_built());
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
    verify::verify(pass!(&verify_observer), verify::Repair::Yes, report).await?;
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
        let more = online::catch_up(pass!(observer)).await?;
        let last = online::finish(pass!(observer), &also).await?;
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
                                kind: super::report::DiscrepancyKind::Unsettled,
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
            Ok::<_, MigrateError>(())
        })
    })
    .await?;
    if options.drop_old_table {
        if !passed {
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
        let verified = report
            .source_digest
            .clone()
            .ok_or_else(|| MigrateError::DropRefused("no verification digest".into()))?;
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

/// Ends a passed verification with the search smoke test; a table whose
/// index does not find its own rows fails the verification.
pub(super) async fn smoke_test(conn: &Connection, report: &mut MigrationReport) -> Result<()> {
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
                        kind: super::report::DiscrepancyKind::Search,
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
