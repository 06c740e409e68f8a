//! `--demo`: a sample legacy database in a temporary directory, then dry
//! run, execute and verify on it, so a newcomer sees the whole job. The
//! planted bad rows are listed once, by the dry run; the later summaries
//! count them.
//!
//! The demo exits 0 when everything happened as planned: the rows it planted
//! as bad, and only those, were quarantined, and everything else passed. It
//! exits 3 when something it did not plant showed up (a row quarantined that
//! was not planted, a planted row migrated, a discrepancy), 1 on a failure.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use memory_storage_turso::migration::MigrationReport;
use memory_storage_turso::sample::{generate_legacy_database, BadKind, SampleSpec};
use memory_storage_turso::text::shown;

use crate::args::{GlobalArgs, MigrateArgs};
use crate::command::{emit, run_on};
use crate::render::BadRows;
use crate::{EXIT_ATTENTION, EXIT_INTERRUPTED, EXIT_OK};

/// How many unplanned ids a line of the closing note names.
const NAMED: usize = 5;

/// Builds the sample and runs the three steps; exits 0 if they went as
/// planned (see the module documentation). `invoked_as` spells the binary
/// in the commands shown (`migrate_embeddings`,
/// `memory-cli migrate-embeddings`).
pub async fn run(
    invoked_as: &str,
    rows: usize,
    global: &GlobalArgs,
    base: &MigrateArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u8> {
    let dir = tempfile::tempdir().context("creating a temporary directory for the demo")?;
    let path = dir.path().join("legacy-memory.db");
    let path_str = path.to_string_lossy().to_string();
    let mut spec = SampleSpec::realistic(rows, 42);
    // One of each kind of bad row the migration must report.
    spec.bad_rows = spec.bad_rows.max(BadKind::ALL.len()).min(rows);
    let planted: BTreeSet<String> = {
        let db = libsql::Builder::new_local(&path)
            .build()
            .await
            .context("creating the demo database")?;
        let conn = db.connect().context("opening the demo database")?;
        tracing::info!("demo: writing {rows} legacy rows to {path_str}");
        let summary = generate_legacy_database(&conn, &spec)
            .await
            .context("filling the demo database")?;
        emit(&format!(
            "Demo: a legacy database with {} rows ({} of them bad on purpose) at {path_str}\n",
            summary.total_rows,
            summary.bad.len()
        ))?;
        summary.bad.into_iter().map(|(id, _)| id).collect()
    };
    let step = |dry_run: bool, execute: bool, verify: bool| MigrateArgs {
        dry_run,
        execute,
        verify,
        // DiskANN builds take minutes on tens of thousands of rows: the demo
        // shows the copy and verification, and says how to build them.
        no_vector_index: true,
        ..base.clone()
    };
    let steps = [
        ("dry run", "--dry-run", step(true, false, false)),
        (
            "execute",
            "--execute --no-vector-index",
            step(false, true, false),
        ),
        ("verify", "--verify", step(false, false, true)),
    ];
    let mut unplanned = Vec::new();
    for (i, (name, flags, args)) in steps.iter().enumerate() {
        // The dry run lists the bad rows; the later summaries count them.
        let bad_rows = if i == 0 {
            BadRows::Listed
        } else {
            BadRows::ListedAbove
        };
        emit(&format!(
            "{}$ {invoked_as} --db {path_str} {flags}\n",
            if i == 0 { "" } else { "\n" }
        ))?;
        // A local file: no token.
        let report = run_on(&path_str, "", global, args, stop.clone(), bad_rows).await?;
        if report.interrupted {
            return Ok(EXIT_INTERRUPTED);
        }
        unplanned.extend(off_plan(name, &report, &planted));
    }
    let (note, code) = closing_note(planted.len(), &unplanned);
    emit(&note)?;
    Ok(code)
}

/// What went otherwise than planned in one step of the demo: a failure, a
/// verification that found discrepancies, rows quarantined that were not
/// planted, planted rows that were not quarantined. Empty when the step went
/// as planned.
fn off_plan(step: &str, report: &MigrationReport, planted: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(failure) = &report.failure {
        found.push(format!("{step}: {}", shown(&failure.reason)));
    }
    if let Some(v) = report.verification.as_ref().filter(|v| !v.passed) {
        found.push(format!(
            "{step}: verification found {} discrepancies",
            v.discrepancy_count
        ));
    }
    let strangers: Vec<&str> = report
        .quarantined
        .iter()
        .map(|q| q.embedding_id.as_str())
        .filter(|id| !planted.contains(*id))
        .collect();
    if !strangers.is_empty() {
        found.push(format!(
            "{step}: {} row(s) quarantined that were not planted as bad ({})",
            strangers.len(),
            named(&strangers)
        ));
    }
    let quarantined: BTreeSet<&str> = report
        .quarantined
        .iter()
        .map(|q| q.embedding_id.as_str())
        .collect();
    // The report lists at most `listed_limit` rows: the count is exact.
    let all_listed = report.quarantined.len() as u64 == report.quarantined_count;
    let missed: Vec<&str> = planted
        .iter()
        .map(String::as_str)
        .filter(|id| all_listed && !quarantined.contains(id))
        .collect();
    if !missed.is_empty() {
        found.push(format!(
            "{step}: {} row(s) planted as bad were not quarantined ({})",
            missed.len(),
            named(&missed)
        ));
    } else if strangers.is_empty() && report.quarantined_count != planted.len() as u64 {
        found.push(format!(
            "{step}: {} row(s) quarantined, {} planted as bad",
            report.quarantined_count,
            planted.len()
        ));
    }
    found
}

/// The first few of `ids`, shown safely.
fn named(ids: &[&str]) -> String {
    let mut text = ids
        .iter()
        .take(NAMED)
        .map(|id| shown(id).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > NAMED {
        text.push_str(&format!(", … and {} more", ids.len() - NAMED));
    }
    text
}

/// What the demo says last, and its exit status: 0 when nothing happened
/// but what was planted, 3 otherwise.
fn closing_note(planted: usize, unplanned: &[String]) -> (String, u8) {
    const ON_YOUR_OWN: &str = "On your own database, quarantined rows make the run exit 3: \
done, but some rows need a person (fix them in `embeddings`, then run --execute again to \
migrate them); so do verification discrepancies.";
    const AFTER: &str = "The demo database is deleted now. On a real database, drop \
--no-vector-index to build, after the copy, the vector indexes planned on your own rows \
(DiskANN, a quantized scan index, or none where an exact search is fast enough).";
    if unplanned.is_empty() {
        let note = format!(
            "\nAs planned: the {planted} row(s) planted as bad, and no other, were quarantined; \
every other row was migrated and verified. So the demo exits 0.\n{ON_YOUR_OWN}\n{AFTER}\n"
        );
        (note, EXIT_OK)
    } else {
        let mut note = String::from("\nNot as planned, so the demo exits 3:\n");
        for line in unplanned {
            note.push_str(&format!("  - {line}\n"));
        }
        note.push_str(&format!(
            "(Planted as bad: {planted} row(s), which alone would be quarantined.)\n{ON_YOUR_OWN}\n{AFTER}\n"
        ));
        (note, EXIT_ATTENTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_storage_turso::migration::{QuarantinedRow, Verification};

    fn report(quarantined: &[&str], passed: bool) -> MigrationReport {
        let mut verification = Verification::default();
        verification.passed = passed;
        verification.discrepancy_count = u64::from(!passed);
        MigrationReport {
            quarantined: quarantined
                .iter()
                .map(|id| QuarantinedRow {
                    embedding_id: id.to_string(),
                    code: "invalid_json".into(),
                    reason: "embedding_data is not valid JSON".into(),
                })
                .collect(),
            quarantined_count: quarantined.len() as u64,
            verification: Some(verification),
            ..Default::default()
        }
    }

    fn planted() -> BTreeSet<String> {
        ["a", "b"].into_iter().map(String::from).collect()
    }

    #[test]
    fn the_planted_rows_quarantined_are_the_plan() {
        assert_eq!(
            off_plan("execute", &report(&["b", "a"], true), &planted()),
            Vec::<String>::new()
        );
        let (note, code) = closing_note(2, &[]);
        assert_eq!(code, EXIT_OK);
        assert!(
            note.contains("quarantined rows make the run exit 3"),
            "{note}"
        );
    }

    #[test]
    fn anything_else_is_off_plan_and_exits_3() {
        let stranger = off_plan("execute", &report(&["a", "b", "c"], true), &planted());
        assert_eq!(stranger.len(), 1, "{stranger:?}");
        assert!(stranger[0].contains("not planted") && stranger[0].contains('c'));
        let missed = off_plan("verify", &report(&["a"], true), &planted());
        assert_eq!(missed.len(), 1, "{missed:?}");
        assert!(missed[0].contains("were not quarantined") && missed[0].contains('b'));
        let failed = off_plan("verify", &report(&["a", "b"], false), &planted());
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("discrepancies"));
        let (note, code) = closing_note(2, &failed);
        assert_eq!(code, EXIT_ATTENTION);
        assert!(note.contains("Not as planned") && note.contains("discrepancies"));
    }

    #[test]
    fn a_count_beyond_the_listed_rows_is_checked_too() {
        let mut r = report(&["a", "b"], true);
        r.quarantined_count = 3;
        assert_eq!(off_plan("dry run", &r, &planted()).len(), 1);
    }
}
