//! The verdict of a run, decided in one place from what its steps found:
//! the verification's discrepancies, how an online run's final mirror
//! ended, the search check, and whether every row was covered. The steps
//! report; only [`decide`] writes `passed`.

use super::online::Finish;
use super::report::{Discrepancy, DiscrepancyKind, MigrationReport, SearchCheck};

/// Whether nothing is wrong so far: the later checks (the online
/// settlement, the search check) build on a clean verification only.
pub(crate) fn clean_so_far(report: &MigrationReport) -> bool {
    !report.interrupted
        && report
            .verification
            .as_ref()
            .is_some_and(|v| v.discrepancy_count == 0)
}

/// Folds the end of an online run's final mirror into the verification:
/// settled, the discrepancies the application's writes caused are
/// resolved; unsettled, the key that still differs is one more.
pub(crate) fn fold_settlement(report: &mut MigrationReport, finish: &Finish) {
    let clean = clean_so_far(report);
    let limit = report.listed_limit;
    let Some(v) = report.verification.as_mut() else {
        return;
    };
    match finish {
        Finish::Done(_) => {
            v.settled_in_final_check += v.discrepancy_count;
            v.discrepancy_count = 0;
            v.discrepancies.clear();
        }
        Finish::Unsettled(key) if clean => {
            v.discrepancy_count += 1;
            if v.discrepancies.len() < limit {
                v.discrepancies.push(Discrepancy {
                    embedding_id: key.clone(),
                    kind: DiscrepancyKind::Unsettled,
                    table: String::new(),
                    detail:
                        "still differs after the final mirror of an online run; the triggers stay"
                            .into(),
                });
            }
        }
        // Already failing: its discrepancies say enough.
        Finish::Unsettled(_) => {}
    }
}

/// Folds the search check into the report: a table whose index finds
/// clearly fewer true neighbours than planned is a discrepancy.
pub(crate) fn fold_search(report: &mut MigrationReport, checks: Vec<SearchCheck>) {
    let limit = report.listed_limit;
    if let Some(v) = report.verification.as_mut() {
        for c in checks.iter().filter(|c| !c.passed()) {
            v.discrepancy_count += 1;
            if v.discrepancies.len() < limit {
                v.discrepancies.push(Discrepancy {
                    embedding_id: String::new(),
                    kind: DiscrepancyKind::Search,
                    table: c.table.clone(),
                    detail: format!(
                        "the vector index finds {:.0}% of the true 10 nearest rows over {} sampled searches, below {:.0}%{}: rebuild it with other options (--index-options)",
                        c.recall * 100.0,
                        c.sampled,
                        c.recall_floor * 100.0,
                        c.planned_recall
                            .map(|p| format!(" (planned {:.0}%)", p * 100.0))
                            .unwrap_or_default()
                    ),
                });
            }
        }
    }
    report.search_checks = checks;
}

/// Decides whether the verification passed: every row was covered (the
/// run was not interrupted) and nothing is left that differs. Returns the
/// verdict.
pub(crate) fn decide(report: &mut MigrationReport) -> bool {
    let passed = clean_so_far(report);
    if let Some(v) = report.verification.as_mut() {
        v.passed = passed;
    }
    passed
}
