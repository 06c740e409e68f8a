//! The human summary of a [`MigrationReport`].
//!
//! Every id and every value that comes from the database goes through
//! [`shown`]: a terminal never receives its control characters or bidi
//! overrides (the JSON report keeps them exact).

use std::fmt::Write;

use memory_storage_turso::migration::{FailureKind, MigrationReport, RunMode};
use memory_storage_turso::schema::TargetTable;
use memory_storage_turso::text::shown;

/// How many bad rows and discrepancies the summary lists.
const SHOWN: usize = 20;

/// Whether the summary lists the quarantined rows one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Listed (the first [`SHOWN`] of them): the one list of the run.
    #[default]
    Listed,
    /// Counted only, because an earlier summary on the same screen (the
    /// demo's dry run) listed the same rows.
    ListedAbove,
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn get(map: Option<&std::collections::BTreeMap<String, u64>>, table: TargetTable) -> u64 {
    map.and_then(|m| m.get(table.name()).copied()).unwrap_or(0)
}

fn rollback_summary(report: &MigrationReport, location: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Rollback of {}", shown(location));
    if let Some(r) = &report.rollback {
        if r.nothing_to_undo {
            let _ = writeln!(
                out,
                "  nothing to undo: no migration has written to this database (nothing was written)"
            );
            return out;
        }
        if r.restored_legacy {
            let _ = writeln!(
                out,
                "  restored `embeddings` from `embeddings_backup` (checksum verified)"
            );
        }
        let total: u64 = r.removed.values().sum();
        let _ = writeln!(
            out,
            "  removed {total} migrated row(s) from the target tables"
        );
        for (table, n) in &r.removed {
            let _ = writeln!(out, "    {:<18} {n:>10}", shown(table));
        }
        if r.restored_displaced > 0 {
            let _ = writeln!(
                out,
                "  put back {} row(s) that --on-conflict legacy had replaced",
                r.restored_displaced
            );
        }
        if r.displaced_kept > 0 {
            let _ = writeln!(
                out,
                "  {} replaced row(s) not put back: the application has written those ids since (its rows are kept; the older ones stay in embedding_migration_displaced)",
                r.displaced_kept
            );
        }
        if r.kept_changed_count > 0 {
            let _ = writeln!(
                out,
                "  kept {} row(s) the migration wrote that the application changed since:",
                r.kept_changed_count
            );
            for id in r.kept_changed.iter().take(SHOWN) {
                let _ = writeln!(out, "    {}", shown(id));
            }
        }
        for t in &r.kept_tables {
            let _ = writeln!(
                out,
                "  kept the table {} (this migration created it; it now holds the application's rows)",
                shown(t)
            );
        }
        if !r.dropped_objects.is_empty() {
            let _ = writeln!(
                out,
                "  dropped what the migration had added to tables that were there before: {}",
                shown(&r.dropped_objects.join(", "))
            );
        }
        for t in &r.dropped_tables {
            let _ = writeln!(
                out,
                "  dropped the empty table {} (this migration created it)",
                shown(t)
            );
        }
        match &r.checkpoint {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "\n  The checkpoint is back at {}: --execute redoes the rows after it.",
                    shown(c)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "\n  The database is as it was before the migration (`embeddings_backup`, if any, is kept: drop it yourself once you no longer need it)."
                );
            }
        }
    }
    out
}

/// The summary printed at the end of a run (or of a refused one), with
/// the quarantined rows listed.
pub fn summary(report: &MigrationReport, location: &str) -> String {
    summary_with(report, location, BadRows::Listed)
}

/// [`summary`], listing the quarantined rows or only counting them.
pub fn summary_with(report: &MigrationReport, location: &str, bad_rows: BadRows) -> String {
    let mut out = String::new();
    let location = shown(location);
    let _ = match report.mode {
        RunMode::Rollback => return rollback_summary(report, &location),
        RunMode::DryRun => writeln!(out, "Dry run of {location} (nothing was written)"),
        RunMode::Execute => writeln!(out, "Migration of {location}"),
        RunMode::Verify => writeln!(out, "Verification of {location} (nothing was written)"),
    };
    if let Some(h) = &report.lock_taken_over_from {
        let _ = writeln!(
            out,
            "  took over the lock of a migration that is gone: {}",
            shown(&h.to_string())
        );
    }
    if let Some(file) = &report.backup_file {
        let _ = writeln!(out, "  whole-database copy written to {}", shown(file));
    }
    if let Some(b) = &report.backup {
        let _ = writeln!(
            out,
            "  {} {}: {} rows, checksum {}",
            shown(&b.table),
            b.status,
            b.digest.rows,
            b.digest.checksum
        );
    }
    if !report.extra_columns.is_empty() {
        let _ = writeln!(
            out,
            "  not carried to the new tables (columns they lack): {}",
            shown(&memory_storage_turso::migration::report::ExtraColumn::list(
                &report.extra_columns
            ))
        );
    }
    let _ = writeln!(
        out,
        "  legacy rows: {} (embedding_vector column: {})",
        report.source_rows,
        if report.source_has_vector_column {
            "yes"
        } else {
            "no"
        }
    );
    if let Some(from) = &report.resumed_from {
        let _ = writeln!(out, "  resumed after checkpoint {}", shown(from));
    }
    let verification = report.verification.as_ref();
    let _ = writeln!(
        out,
        "\n  {:<18} {:>10} {:>10} {:>10} {:>10}",
        "table",
        if report.mode == RunMode::DryRun {
            "to copy"
        } else {
            "written"
        },
        "already",
        "expected",
        "holds"
    );
    for table in TargetTable::ALL {
        let written = match report.mode {
            RunMode::DryRun => get(report.planned.as_ref(), table),
            _ => get(report.migrated.as_ref(), table),
        };
        let counts = verification.and_then(|v| v.tables.get(table.name()));
        let written_bytes = report.migrated_bytes.get(table.name()).copied();
        let _ = writeln!(
            out,
            "  {:<18} {:>10} {:>10} {:>10} {:>10} {:>10}",
            table.name(),
            written,
            get(Some(&report.already_migrated), table),
            counts.map_or("-".into(), |c| c.expected.to_string()),
            counts.map_or("-".into(), |c| c.actual.to_string()),
            written_bytes.map_or(String::new(), bytes),
        );
    }
    let _ = writeln!(out);
    for phase in &report.phases {
        // The index plan and the recall check count tables, not rows.
        let of_tables = [
            memory_storage_turso::migration::Phase::IndexPlan.name(),
            memory_storage_turso::migration::Phase::IndexRecall.name(),
        ]
        .contains(&phase.phase.as_str());
        let (unit, rate) = if of_tables {
            ("table(s)", String::new())
        } else if phase.seconds > 0.0 && phase.units > 0 {
            (
                "rows",
                format!(" ({:.0} rows/s)", phase.units as f64 / phase.seconds),
            )
        } else {
            ("rows", String::new())
        };
        let _ = writeln!(
            out,
            "  {:<13} {:>8.1} s, {} {unit}{rate}",
            phase.phase, phase.seconds, phase.units
        );
    }
    for index in &report.vector_indexes {
        let _ = writeln!(
            out,
            "  vector index {:<27} {}{}",
            index.index,
            index.status,
            match index.status {
                s if s.is_built() => format!(" in {:.1} s", index.seconds),
                memory_storage_turso::migration::IndexState::NameTaken => {
                    " (an object of that name is not this index: left alone; the table is searched exactly)"
                        .to_string()
                }
                _ => String::new(),
            }
        );
    }
    out.push_str(&built_recall_lines(&report.built_recall));
    if let Some(copy) = report.estimated_copy_seconds {
        let _ = writeln!(
            out,
            "  estimated copy time: {} (measured read rate, sample written to a scratch database)",
            duration(copy)
        );
    }
    if let Some(index) = report
        .estimated_index_seconds
        .as_ref()
        .filter(|_| report.index_plan.is_none())
    {
        let total: f64 = index.values().sum();
        if total > 0.0 {
            let parts: Vec<String> = index
                .iter()
                .map(|(t, s)| format!("{t} {}", duration(*s)))
                .collect();
            let _ = writeln!(
                out,
                "  estimated vector index time: {} ({}; rough: timed DiskANN inserts, scaled)",
                duration(total),
                parts.join(", ")
            );
        }
    }
    if let Some(plan) = &report.index_plan {
        out.push_str(&index_plan_lines(plan));
    }
    if let Some(extra) = report.estimated_extra_bytes {
        let index = match &report.index_plan {
            Some(plan) => plan.totals().1,
            None => report.estimated_vector_index_bytes.unwrap_or(0),
        };
        let _ = writeln!(
            out,
            "  estimated extra disk space: {} for the rows, plus {} for the vector indexes (0 with --no-vector-index)",
            bytes(extra),
            bytes(index)
        );
    }
    if report.quarantined_count > 0 {
        let _ = writeln!(
            out,
            "\n  {} row(s) cannot be migrated; they stay in `embeddings`{}:",
            report.quarantined_count,
            if report.mode == RunMode::Execute {
                " and are recorded in embedding_migration_quarantine"
            } else {
                ""
            }
        );
        for (code, n) in &report.quarantined_by_reason {
            let _ = writeln!(out, "    {n:>6} {}", shown(code));
        }
        match bad_rows {
            BadRows::Listed => {
                for row in report.quarantined.iter().take(SHOWN) {
                    let _ = writeln!(
                        out,
                        "    {}: {}",
                        shown(&row.embedding_id),
                        shown(&row.reason)
                    );
                }
                let listed = report.quarantined.len().min(SHOWN) as u64;
                if report.quarantined_count > listed {
                    let _ = writeln!(
                        out,
                        "    … and {} more (--report-json FILE lists them all)",
                        report.quarantined_count - listed
                    );
                }
            }
            BadRows::ListedAbove => {
                let _ = writeln!(out, "    (the rows listed above)");
            }
        }
    }
    if report.unsearchable_count > 0 {
        let _ = writeln!(
            out,
            "\n  {} row(s) hold vectors that cosine search cannot rank (listed in the report), {} bit for bit",
            report.unsearchable_count,
            if report.mode == RunMode::DryRun {
                "to be migrated"
            } else {
                "migrated"
            }
        );
    }
    if let Some(v) = verification {
        let _ = writeln!(out);
        if v.passed {
            let _ = writeln!(
                out,
                "  verification passed: {} migrated rows compared with their legacy rows column by column, vectors bit for bit{}",
                v.rows_compared,
                if v.repaired > 0 {
                    format!(" ({} repaired first)", v.repaired)
                } else {
                    String::new()
                }
            );
        } else {
            let _ = writeln!(
                out,
                "  verification FAILED: {} discrepancies",
                v.discrepancy_count
            );
            for d in v.discrepancies.iter().take(SHOWN) {
                let _ = writeln!(
                    out,
                    "    {} [{}] {}: {}",
                    shown(&d.embedding_id),
                    d.kind,
                    shown(&d.table),
                    shown(&d.detail)
                );
            }
            let listed = v.discrepancies.len().min(SHOWN) as u64;
            if v.discrepancy_count > listed {
                let _ = writeln!(
                    out,
                    "    … and {} more (the --report-json FILE report lists more of them)",
                    v.discrepancy_count - listed
                );
            }
        }
    }
    if report.conflict_count > 0 {
        let _ = writeln!(
            out,
            "\n  {} conflict(s): a row of the new tables that this migration did not write (or that changed since it wrote it) holds the id with other values; the target row was kept, nothing was overwritten (--on-conflict legacy writes the legacy row, saving the target row first):",
            report.conflict_count
        );
        for c in report.conflicts.iter().take(SHOWN) {
            let _ = writeln!(
                out,
                "    {} [{}] {}, newer: {}, fingerprints legacy {} / target {}",
                shown(&c.embedding_id),
                c.table,
                match c.kind {
                    memory_storage_turso::migration::report::ConflictKind::ChangedSinceWritten =>
                        "changed by the application since the migration wrote it",
                    memory_storage_turso::migration::report::ConflictKind::NotWrittenByMigration =>
                        "not written by the migration",
                },
                serde_json::to_value(c.newer)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                c.legacy_fingerprint,
                c.target_fingerprint
            );
        }
        if report.conflict_count as usize > SHOWN {
            let _ = writeln!(
                out,
                "    … and {} more (--report-json FILE lists them all)",
                report.conflict_count as usize - SHOWN
            );
        }
    }
    if report.displaced > 0 {
        let _ = writeln!(
            out,
            "  saved {} row(s) this migration did not own in embedding_migration_displaced and wrote the legacy row in their place (--on-conflict legacy); --rollback puts them back",
            report.displaced
        );
    }
    if let Some(v) = verification.filter(|v| v.application_rows > 0) {
        let _ = writeln!(
            out,
            "  {} row(s) of the new tables have no legacy row and were written by the application, not by this migration: left alone",
            v.application_rows
        );
    }
    if !report.search_checks.is_empty() {
        let _ = writeln!(
            out,
            "  search check (recall@10 against exact search, sampled rows as queries):"
        );
        for c in &report.search_checks {
            let planned = c
                .planned_recall
                .map(|p| format!(", planned {:.0}%", p * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}: {:.0}% over {} searches{planned}{}",
                c.table,
                c.recall * 100.0,
                c.sampled,
                if c.passed() {
                    String::new()
                } else {
                    format!(" - BELOW {:.0}%", c.recall_floor * 100.0)
                }
            );
        }
    }
    if let Some(o) = &report.online {
        let _ = writeln!(
            out,
            "  online: mirrored {} change(s) the application made during the run, {} in the final check{}",
            o.mirrored,
            o.final_keys,
            if o.triggers_removed {
                "; triggers removed: the application must now write to the new tables"
            } else {
                "; the triggers stay until a run finishes (run --execute --online again)"
            }
        );
        if let Some(v) = verification.filter(|v| v.settled_in_final_check > 0) {
            let _ = writeln!(
                out,
                "  {} row(s) changed while being verified were checked again in the final transaction and match",
                v.settled_in_final_check
            );
        }
    }
    if report.removed_stale > 0 {
        let _ = writeln!(
            out,
            "  removed {} migrated row(s) whose legacy row was deleted or went bad since",
            report.removed_stale
        );
    }
    if let Some(d) = &report.dropped_legacy {
        let _ = writeln!(
            out,
            "\n  dropped `embeddings` after verifying every row; its {} rows are in {} (checksum {}{})",
            d.backup.rows,
            shown(&d.backup_table),
            d.backup.checksum,
            if d.backup_refreshed { ", made now" } else { "" }
        );
    }
    let _ = writeln!(out, "\n  {}", next_step(report));
    out
}

fn next_step(report: &MigrationReport) -> &'static str {
    match report.failure.as_ref().map(|f| f.kind) {
        Some(FailureKind::Refused) => {
            return "Refused: a safety rule stopped the run before an unsafe step (the reason follows); \
                    what it found and did until then is above.";
        }
        Some(FailureKind::Failed) => {
            return "Failed: the run stopped at the error that follows; what it committed until then is above.";
        }
        None => {}
    }
    match report.mode {
        RunMode::Rollback => "",
        RunMode::Execute if report.dropped_legacy.is_some() => {
            "Done: migrated, verified, legacy table dropped. `--rollback` undoes it all."
        }
        RunMode::DryRun if report.interrupted => {
            "Stopped before the dry run finished: what it read until then is above, without an index plan; run it again for the whole plan."
        }
        RunMode::DryRun => "Next: run with --execute to migrate (it resumes if stopped).",
        RunMode::Verify if report.verification.as_ref().is_some_and(|v| v.passed) => {
            "Every migrated row matches its source."
        }
        RunMode::Verify => "Next: run --execute to repair what differs, then --verify again.",
        RunMode::Execute if report.interrupted => {
            "Stopped after a committed batch: run --execute again to resume from the checkpoint."
        }
        RunMode::Execute if report.nothing_to_do => {
            "Nothing to do: the migration was already complete; every row was verified again."
        }
        RunMode::Execute if report.verification.as_ref().is_some_and(|v| !v.passed) => {
            "Verification found discrepancies this run could not repair (listed above): inspect and fix them; running --execute again alone will not change them."
        }
        RunMode::Execute if report.quarantined_count > 0 => {
            "Done. Fix the rows listed above in `embeddings`, then run --execute again to migrate them."
        }
        RunMode::Execute => "Done: every row migrated and verified.",
    }
}

fn when(t: Option<i64>) -> String {
    match t {
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let ago = now - t;
            format!(
                "{} ({} ago)",
                memory_storage_turso::text::utc_date(t),
                duration(ago.max(0) as f64)
            )
        }
        None => "-".to_string(),
    }
}

/// The index plan, a table per line: the pick with what it predicts, and
/// libSQL's default options beside it.
/// What each index built to a plan measured, and what the run did where
/// it fell short.
fn built_recall_lines(checked: &[memory_storage_turso::migration::report::BuiltRecall]) -> String {
    use memory_storage_turso::migration::report::RecallOutcome;
    let mut out = String::new();
    let Some(first) = checked.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "  recall@10 of the built indexes, measured ({} held-out rows as queries; the plan's prediction beside it):",
        first.queries
    );
    for c in checked {
        let verdict = match c.outcome {
            RecallOutcome::Met => String::new(),
            RecallOutcome::SearchedExactly => format!(
                " - short of the {:.0}% target: index dropped, the table is searched exactly ({:.1} ms a search)",
                c.target_recall * 100.0,
                c.exact_query_ms
            ),
            RecallOutcome::BelowTarget => format!(
                " - BELOW the {:.0}% target; kept: an exact search takes {:.0} ms (--index-options {}=none searches exactly)",
                c.target_recall * 100.0,
                c.exact_query_ms,
                c.table
            ),
            RecallOutcome::GaveWay => format!(
                " - BELOW the {:.0}% target, an exact search taking {:.0} ms: dropped for the 8-bit scan (next line)",
                c.target_recall * 100.0,
                c.exact_query_ms
            ),
        };
        let raised = if c.overfetch != c.planned_overfetch {
            format!(
                ", over-fetch raised from {} to {}",
                c.planned_overfetch, c.overfetch
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {} ({}): {:.1}% measured, {:.1}% predicted, {:.1} ms a search{raised}{verdict}",
            c.table,
            options_label(&c.options),
            c.measured_recall * 100.0,
            c.predicted_recall * 100.0,
            c.index_query_ms
        );
    }
    out
}

/// A setting of the index plan in words.
fn options_label(options: &str) -> &str {
    use memory_storage_turso::schema::ScanBits;
    match (options, ScanBits::from_options(options)) {
        ("", _) => "libSQL's defaults",
        (_, Some(ScanBits::Float8)) => "quantized scan index (8-bit vectors, re-ranked exactly)",
        (_, Some(ScanBits::Float1Bit)) => "quantized scan index (1-bit vectors, re-ranked exactly)",
        (other, None) => other,
    }
}

fn index_plan_lines(plan: &memory_storage_turso::migration::report::IndexPlan) -> String {
    use memory_storage_turso::migration::report::{Candidate, Pick};
    let mut out = String::new();
    let predicted = |c: &Candidate| {
        let p = &c.predicted;
        format!(
            "build {}, {}, recall@10 {}{:.0}%, {:.1} ms a search",
            duration(p.build_seconds),
            bytes(p.index_bytes),
            if c.recall_at_most { "at most " } else { "" },
            p.recall * 100.0,
            p.query_ms
        )
    };
    let _ = writeln!(
        out,
        "  index plan (measured on samples of the rows; target recall@10 {:.0}%, a search within {} ms): {} to build in all",
        plan.target_recall * 100.0,
        plan.max_query_ms,
        duration(plan.totals().0)
    );
    if let Some(rate) = plan.cold_read_rate {
        let _ = writeln!(
            out,
            "    (each build reads its table from the disk: the database does not fit in memory; read at {:.0} MB/s, measured)",
            rate / 1e6
        );
    }
    for t in &plan.tables {
        let identical = if t.identical_vectors > 0 {
            format!(
                ", {} rows share their vector with another",
                t.identical_vectors
            )
        } else {
            String::new()
        };
        let what = match &t.pick {
            Pick::Exact { predicted_query_ms } => {
                format!("no index: exact search, {predicted_query_ms:.1} ms a search")
            }
            Pick::ExactForRecall { predicted_query_ms } => format!(
                "no index: exact search, {predicted_query_ms:.1} ms a search (above the \
                 latency target: no index setting is predicted to reach the recall target \
                 on these vectors; --index-options TABLE=OPTS builds one anyway)"
            ),
            Pick::ForcedExact => "no index (--index-options)".to_string(),
            Pick::Forced { options } => {
                format!("{} (--index-options, not measured)", options_label(options))
            }
            Pick::Index {
                candidate,
                meets_targets,
            } => {
                let c = &t.candidates[*candidate];
                format!(
                    "{}, over-fetch {}: {}{}",
                    options_label(&c.options),
                    c.overfetch,
                    predicted(c),
                    if *meets_targets {
                        ""
                    } else if c.predicted.recall >= plan.target_recall {
                        " (above the latency target: no setting is predicted to meet both \
                         targets, and this search is the fastest that reaches the recall)"
                    } else {
                        " (the best measured; below the target)"
                    }
                )
            }
        };
        let _ = writeln!(out, "    {} ({} rows{identical}): {what}", t.table, t.rows);
        if let Some(d) = t.default_candidate {
            let c = &t.candidates[d];
            let _ = writeln!(
                out,
                "      libSQL's defaults would be: {}{}",
                predicted(c),
                match (c.measured.as_slice(), &c.neighbourhoods) {
                    ([small, large], None) => format!(
                        " (from samples of {} and {} rows only, not checked on a larger one)",
                        small.rows, large.rows
                    ),
                    ([small, large], Some(near)) => format!(
                        " (from samples of {} and {} rows; recall from {}whole neighbourhoods of {} rows)",
                        small.rows,
                        large.rows,
                        if c.recall_at_most { "a part of the " } else { "" },
                        near.rows
                    ),
                    _ => String::new(),
                }
            );
        }
    }
    out
}

/// The human view of `--status`.
pub fn status_summary(
    s: &memory_storage_turso::migration::MigrationStatus,
    location: &str,
) -> String {
    let mut out = String::new();
    let state = match s.state.as_str() {
        "not_started" => "not started".into(),
        "in_progress" => "in progress (resumable with --execute)".into(),
        "copied" => match &s.last_verification {
            Some(v) if !v.passed => format!(
                "copied; the last run's verification found {} discrepancies it could not repair (its report lists them): fix those, then run --execute",
                v.discrepancies
            )
            .into(),
            _ => "copied, not yet verified complete (run --execute)".into(),
        },
        "completed" => "completed and verified".into(),
        "legacy_dropped" => "completed; the legacy table was dropped".into(),
        other => shown(other),
    };
    let _ = writeln!(out, "Migration status of {}: {state}", shown(location));
    let _ = writeln!(
        out,
        "  legacy rows:       {}",
        s.legacy_rows
            .map_or("- (no `embeddings` table)".into(), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "  checkpoint:        {}",
        s.checkpoint.as_deref().map_or("-".into(), shown)
    );
    let _ = writeln!(out, "  rows written:      {}", s.rows_written);
    let _ = writeln!(
        out,
        "  rows left:         {}",
        s.rows_left.map_or("-".into(), |n| n.to_string())
    );
    let _ = writeln!(out, "  started:           {}", when(s.started_at));
    let _ = writeln!(out, "  last batch:        {}", when(s.updated_at));
    let _ = writeln!(out, "  completed:         {}", when(s.completed_at));
    if s.legacy_dropped_at.is_some() {
        let _ = writeln!(out, "  legacy dropped:    {}", when(s.legacy_dropped_at));
    }
    if let Some(n) = s.backup_rows {
        let _ = writeln!(out, "  embeddings_backup: {n} rows");
    }
    let _ = writeln!(out, "  quarantined rows:  {}", s.quarantined);
    for (code, n) in &s.quarantined_by_reason {
        let _ = writeln!(out, "    {n:>8} {}", shown(code));
    }
    match &s.lock {
        Some(h) if s.lock_stale => {
            let _ = writeln!(
                out,
                "  lock:              held by {}, which is gone (the next run takes it over)",
                shown(&h.to_string())
            );
        }
        Some(h) => {
            let _ = writeln!(
                out,
                "  lock:              held by {}",
                shown(&h.to_string())
            );
        }
        None => {
            let _ = writeln!(out, "  lock:              free");
        }
    }
    if let Some(v) = &s.last_verification {
        let _ = writeln!(
            out,
            "  last verification: {} ({}; {} discrepancies, {} conflicts, {} quarantined)",
            if v.passed { "passed" } else { "FAILED" },
            when(Some(v.at)),
            v.discrepancies,
            v.conflicts,
            v.quarantined
        );
    }
    if !s.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "  conflicts (rows of the new tables the migration does not own, kept):"
        );
        for c in &s.conflicts {
            let _ = writeln!(
                out,
                "    {} [{}] {}, newer: {}, fingerprints legacy {} / target {}",
                shown(&c.embedding_id),
                c.table,
                c.kind,
                c.newer,
                c.legacy_fingerprint,
                c.target_fingerprint
            );
        }
    }
    if s.displaced_rows > 0 {
        let _ = writeln!(
            out,
            "  displaced rows:    {} saved by --on-conflict legacy (--rollback puts them back)",
            s.displaced_rows
        );
    }
    if let Some(n) = s.online_changes_pending {
        let _ = writeln!(
            out,
            "  online:            triggers on `embeddings` are logging changes ({n} waiting to be mirrored)"
        );
    }
    if !s.target_rows.is_empty() {
        let _ = writeln!(out, "\n  {:<18} {:>10}  vector index", "table", "rows");
        for (t, n) in &s.target_rows {
            let building = s
                .index_builds
                .get(t)
                .map(|n| format!("building ({n} rows in)"));
            let index = match (s.vector_indexes.get(t), s.scan_indexes.get(t)) {
                (Some(true), _) => "yes",
                (_, Some(true)) => "scan index",
                _ if building.is_some() => building.as_deref().unwrap_or_default(),
                (Some(false), _) => "no",
                _ => "-",
            };
            let _ = writeln!(out, "  {:<18} {n:>10}  {index}", shown(t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_storage_turso::migration::{
        MigrationStatus, QuarantinedRow, RunFailure, Verification,
    };

    const ID: &str = "\u{1b}[31mred\nforged\u{202e}";
    const SHOWN_ID: &str = r"\u{1b}[31mred\nforged\u{202e}";

    fn passed() -> Verification {
        let mut v = Verification::default();
        v.passed = true;
        v
    }

    fn with_bad_row() -> MigrationReport {
        MigrationReport {
            mode: RunMode::Execute,
            source_rows: 3,
            quarantined: vec![QuarantinedRow {
                embedding_id: ID.into(),
                code: "invalid_json".into(),
                reason: "bad \u{9b}data".into(),
            }],
            quarantined_count: 1,
            quarantined_by_reason: [("invalid_json".to_string(), 1)].into(),
            verification: Some(passed()),
            ..Default::default()
        }
    }

    #[test]
    fn ids_and_reasons_are_escaped() {
        let text = summary(&with_bad_row(), "db");
        assert!(
            text.contains(&format!("    {SHOWN_ID}: bad \\u{{9b}}data\n")),
            "{text}"
        );
        assert!(!text.contains(['\u{1b}', '\u{202e}', '\u{9b}']), "{text:?}");
    }

    #[test]
    fn rows_listed_above_are_counted_not_listed() {
        let text = summary_with(&with_bad_row(), "db", BadRows::ListedAbove);
        assert!(text.contains("1 row(s) cannot be migrated"), "{text}");
        assert!(text.contains("(the rows listed above)"), "{text}");
        assert!(!text.contains("forged"), "{text}");
    }

    #[test]
    fn a_refused_run_says_so_instead_of_done() {
        let mut report = with_bad_row();
        report.failure = Some(RunFailure {
            kind: FailureKind::Refused,
            reason: "the `embeddings` table was not dropped".into(),
        });
        let text = summary(&report, "db");
        assert!(text.contains("Refused:"), "{text}");
        assert!(!text.contains("Done"), "{text}");
        assert!(text.contains(SHOWN_ID), "the rows are still listed: {text}");
    }

    #[test]
    fn the_status_escapes_what_the_tables_hold() {
        let status = MigrationStatus {
            state: "weird\u{1b}]0;x\u{7}".into(),
            checkpoint: Some(ID.into()),
            quarantined_by_reason: [("code\r".to_string(), 2)].into(),
            target_rows: [("t\u{2066}".to_string(), 1)].into(),
            ..Default::default()
        };
        let text = status_summary(&status, "db");
        assert!(
            text.contains(&format!("checkpoint:        {SHOWN_ID}")),
            "{text}"
        );
        assert!(text.contains(r"weird\u{1b}]0;x\u{7}"), "{text}");
        assert!(text.contains(r"code\r"), "{text}");
        assert!(text.contains(r"t\u{2066}"), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(!text.contains('\u{2066}'), "{text:?}");
    }

    #[test]
    fn a_built_index_short_of_its_target_says_by_how_much_and_what_was_done() {
        use memory_storage_turso::migration::report::{BuiltRecall, RecallOutcome};
        let measured = |table: &str, recall: f64, outcome| BuiltRecall {
            table: table.into(),
            options: "compress_neighbors=float1bit,max_neighbors=32".into(),
            overfetch: 1,
            planned_overfetch: 1,
            queries: 64,
            target_recall: 0.95,
            predicted_recall: 0.999,
            measured_recall: recall,
            index_query_ms: 10.2,
            exact_query_ms: 460.0,
            outcome,
        };
        let mut report = with_bad_row();
        report.built_recall = vec![
            measured("embeddings_384", 0.663, RecallOutcome::BelowTarget),
            measured("embeddings_1536", 0.71, RecallOutcome::SearchedExactly),
            measured("embeddings_1024", 0.97, RecallOutcome::Met),
        ];
        let text = summary(&report, "db");
        assert!(text.contains("64 held-out rows as queries"), "{text}");
        assert!(
            text.contains("embeddings_384 (compress_neighbors=float1bit,max_neighbors=32): 66.3% measured, 99.9% predicted, 10.2 ms a search - BELOW the 95% target; kept: an exact search takes 460 ms (--index-options embeddings_384=none searches exactly)"),
            "{text}"
        );
        assert!(
            text.contains("embeddings_1536 (compress_neighbors=float1bit,max_neighbors=32): 71.0% measured, 99.9% predicted, 10.2 ms a search - short of the 95% target: index dropped, the table is searched exactly (460.0 ms a search)"),
            "{text}"
        );
        assert!(
            text.contains("embeddings_1024 (compress_neighbors=float1bit,max_neighbors=32): 97.0% measured, 99.9% predicted, 10.2 ms a search\n"),
            "{text}"
        );
    }

    #[test]
    fn the_defaults_line_says_when_it_was_not_checked_on_a_larger_sample() {
        use memory_storage_turso::migration::report::{
            Candidate, IndexPlan, Measured, Pick, Prediction, TablePlan,
        };
        let measured = |rows, scaled_search_l| Measured {
            rows,
            build_ms_per_row: 1.0,
            bytes_per_row: 100.0,
            query_ms: 1.0,
            recall: 0.99,
            scaled_search_l,
            reranked: None,
        };
        let candidate = |options: &str, measured| Candidate {
            options: options.into(),
            overfetch: 1,
            measured,
            neighbourhoods: None,
            recall_at_most: false,
            predicted: Prediction {
                build_seconds: 60.0,
                index_bytes: 1 << 20,
                query_ms: 2.0,
                recall: 0.96,
            },
        };
        let table = |default: Candidate| TablePlan {
            table: "embeddings_384".into(),
            rows: 10_000,
            identical_vectors: 0,
            exact_ms_per_row: 0.01,
            candidates: vec![
                candidate(
                    "compress_neighbors=float8",
                    vec![
                        measured(150, None),
                        measured(300, None),
                        measured(1250, Some(25)),
                    ],
                ),
                default,
            ],
            default_candidate: Some(1),
            pick: Pick::Index {
                candidate: 0,
                meets_targets: true,
            },
        };
        let plan = |default| IndexPlan {
            target_recall: 0.95,
            max_query_ms: 20.0,
            tables: vec![table(default)],
            cold_read_rate: None,
        };
        let two = index_plan_lines(&plan(candidate(
            "",
            vec![measured(150, None), measured(300, None)],
        )));
        assert!(
            two.contains("(from samples of 150 and 300 rows only, not checked on a larger one)"),
            "{two}"
        );
        let three = index_plan_lines(&plan(candidate(
            "",
            vec![
                measured(150, None),
                measured(300, None),
                measured(1250, Some(25)),
            ],
        )));
        assert!(three.contains("libSQL's defaults would be: "), "{three}");
        assert!(!three.contains("not checked"), "{three}");
        // Ruled out by whole neighbourhoods, with no uniform third size.
        let mut ruled_out = candidate("", vec![measured(150, None), measured(300, None)]);
        ruled_out.neighbourhoods = Some(measured(1250, Some(25)));
        let near = index_plan_lines(&plan(ruled_out));
        assert!(
            near.contains(
                "(from samples of 150 and 300 rows; recall from whole neighbourhoods of 1250 rows)"
            ),
            "{near}"
        );
        assert!(near.contains("recall@10 96%"), "{near}");
        // Ruled out by a part of them: its recall is an upper bound.
        let mut ruled_out = candidate("", vec![measured(150, None), measured(300, None)]);
        ruled_out.neighbourhoods = Some(measured(310, Some(25)));
        ruled_out.recall_at_most = true;
        let part = index_plan_lines(&plan(ruled_out));
        assert!(
            part.contains(
                "recall@10 at most 96%, 2.0 ms a search (from samples of 150 and 300 rows; \
                 recall from a part of the whole neighbourhoods of 310 rows)"
            ),
            "{part}"
        );
    }
}
