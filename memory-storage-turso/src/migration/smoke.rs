//! The search smoke test that ends a verification: for a sample of rows in
//! each native table with a vector index (or the scan index its plan
//! searches through), a search with the row's own
//! vector (the index's top 10, ranked by exact cosine distance, as the store
//! searches) must return that row first (or one with a bit-identical
//! vector). It proves the indexes answer, not just that they exist.
//!
//! Rows no cosine search can rank are left out ([`super::recall`]), so
//! they never fail the test.

use libsql::Connection;

use super::recall::{self, Queries, Via};
pub use super::report::{SearchCheck, RECALL_MARGIN};
use crate::error::Result;
use crate::scan_index::{self, ScanIndex};
use crate::schema::TargetTable;
use crate::search_plan::TableSearch;

/// Rows sampled per table.
pub const SAMPLE: usize = 16;

/// Runs the search check on every native table that has its vector index
/// (or its planned scan index):
/// its recall must not fall clearly below the plan's (or, for options not
/// measured, below `target_recall`).
pub async fn search_smoke_test(conn: &Connection, target_recall: f64) -> Result<Vec<SearchCheck>> {
    let plan = crate::search_plan::read(conn).await?;
    let mut out = Vec::new();
    for table in TargetTable::ALL {
        let (via, overfetch, planned) = match plan.get(&table) {
            // What the built index measured, where it was measured.
            Some(TableSearch::Scan {
                overfetch,
                bits,
                planned_recall,
                measured_recall,
            }) if scan_index::state(conn, table, *bits).await? == ScanIndex::Present => (
                Some(Via::ScanIndex(*bits)),
                (*overfetch).max(1) as usize,
                measured_recall.or(*planned_recall),
            ),
            Some(TableSearch::Index {
                overfetch,
                planned_recall,
                measured_recall,
                ..
            }) => (
                vector_index(conn, table).await?,
                (*overfetch).max(1) as usize,
                measured_recall.or(*planned_recall),
            ),
            _ => (vector_index(conn, table).await?, 1, None),
        };
        let Some(via) = via else {
            continue;
        };
        let floor = planned.unwrap_or(target_recall).min(1.0) - RECALL_MARGIN;
        out.push(check_table(conn, table, via, overfetch, planned, floor).await?);
    }
    Ok(out)
}

/// The table's DiskANN index, where it has one: an index of that name on
/// the table itself (one on another table is a user's, or a build's under
/// way, and never searched).
async fn vector_index(conn: &Connection, table: TargetTable) -> Result<Option<Via<'static>>> {
    Ok(match table.vector_index_name() {
        Some(index) if crate::db::index_is_on(conn, index, table.name()).await? => {
            Some(Via::VectorIndex(index))
        }
        _ => None,
    })
}

async fn check_table(
    conn: &Connection,
    table: TargetTable,
    via: Via<'_>,
    overfetch: usize,
    planned_recall: Option<f64>,
    recall_floor: f64,
) -> Result<SearchCheck> {
    let m = recall::measure(conn, table, via, overfetch, SAMPLE, Queries::Own).await?;
    Ok(SearchCheck {
        table: table.name().to_string(),
        sampled: m.queries,
        found_first: m.found_first,
        missed: m.missed,
        recall: m.recall,
        planned_recall,
        recall_floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sampled: u64, recall: f64, planned: f64) -> SearchCheck {
        SearchCheck {
            table: "embeddings_384".into(),
            sampled,
            found_first: sampled,
            missed: Vec::new(),
            recall,
            planned_recall: Some(planned),
            recall_floor: planned - RECALL_MARGIN,
        }
    }

    #[test]
    fn an_index_may_fall_a_little_below_its_plan_not_clearly() {
        assert!(check(16, 0.97, 0.97).passed());
        assert!(check(16, 0.90, 0.97).passed());
        assert!(!check(16, 0.80, 0.97).passed());
        assert!(!check(16, 0.0, 0.97).passed());
        assert!(
            check(0, 0.0, 0.97).passed(),
            "an empty table has nothing to miss"
        );
    }
}
