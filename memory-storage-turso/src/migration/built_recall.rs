//! After a planned index is built: its recall measured on its own table,
//! and what the run does when it falls clearly short of the target.
//!
//! The plan predicts recall from samples an eighth of the table's size at
//! most. On dense data a built index finds far fewer true neighbours than
//! its sample did: 0.663 at 70,000 clustered rows of 384 dimensions,
//! against 0.999 predicted. Nor is another setting a reliable way up:
//! on such data (20,000 rows around 57 centres) float8 with 32 neighbours
//! measured 0.60 where float1bit measured 0.70, a wider search
//! (`search_l=800`) raised float1bit to 0.82 at nine times the query time,
//! and over-fetch or repeated searches by 0.02–0.05
//! (`docs/index-plan-bench.md`). Over-fetch cannot do more: libSQL ranks
//! every node a search visits by the node's own full vector, so more
//! candidates are more of the nodes it visited, not others (over-fetch 1
//! to 64 on 10,068 clustered rows: 0.21–0.36, no trend). A rebuild costs
//! as much as the build, so
//! the run does not gamble on one: it measures and records what it
//! measured. Where the index is clearly short and an exact search, which
//! misses nothing, is fast enough, the index is dropped (this run built
//! it) and the table is searched exactly; else the index stays, the
//! fastest search the table has, and the report says by how much it
//! missed and what an exact search would cost.
//!
//! A scan index is the exception: it ranks every row by its quantized
//! distance, so more candidates are more of the truly nearest rows, and
//! nothing is rebuilt to ask for them. A scan short of the target is
//! measured again with its over-fetch doubled, up to [`SCAN_RAISES`]
//! times, while that raises its recall and its search stays within the
//! exact search's fallback; the over-fetch that measured best is
//! recorded. A 1-bit scan still clearly short, where an exact search is
//! too slow to take its place, gives way to the 8-bit scan
//! ([`RecallOutcome::GaveWay`]): its index is dropped, the 8-bit scan is
//! recorded in its place, and the run builds and measures that one
//! ([`gave_way`]). The 1-bit scan ranks by signs alone, and on uniform
//! vectors its recall falls with the table's size faster than the plan
//! predicts: on 1,000,000 rows of the realistic mix the plan's 1-bit scan
//! of `embeddings_1536` (200,031 rows, predicted 0.958) measured 0.906
//! with its over-fetch raised to 256 (147 ms a search), where the 8-bit
//! scan had measured 1.000 in 113 ms. Both build in seconds.

use std::collections::BTreeMap;

use libsql::Connection;

use super::error::Result;
use super::index_plan::{forced_scan_overfetch, IndexPlanning, EXACT_FALLBACK};
use super::recall::{self, Queries, Via};
use super::report::{BuiltRecall, IndexState, IndexStatus, RecallOutcome};
use crate::db::{in_transaction, with_retries};
use crate::error::DbContext;
use crate::schema::{ScanBits, TargetTable};
use crate::search_plan::TableSearch;

/// Held-out rows searched per table: 640 true neighbours measure recall to
/// about ±0.01 (their exact answers come from one read of the table, and
/// the raises of a scan's over-fetch are measured against them).
const QUERIES: usize = 64;

/// Times a scan index short of the target has its over-fetch doubled. On
/// 100,000 rows of the realistic mix (uniform vectors) the plan's 1-bit
/// scan of `embeddings_384` at over-fetch 64, predicted 0.951, needed 256
/// to measure 0.945 on the table (45 ms a search).
const SCAN_RAISES: u32 = 3;

/// How far below the target a measured recall may fall and still count as
/// meeting it: the measure's noise, not a shortfall.
const SHORT_BY: f64 = 0.03;

/// What to do with an index that measured `recall`, an exact search of its
/// table taking `exact_ms`.
fn outcome(recall: f64, exact_ms: f64, planning: &IndexPlanning) -> RecallOutcome {
    if recall >= planning.target_recall - SHORT_BY {
        RecallOutcome::Met
    } else if exact_ms <= EXACT_FALLBACK * planning.max_query_ms {
        RecallOutcome::SearchedExactly
    } else {
        RecallOutcome::BelowTarget
    }
}

/// Records `plan`, dropping `index` first if given, in one transaction.
async fn record(
    conn: &Connection,
    plan: &BTreeMap<TargetTable, TableSearch>,
    drop_index: Option<&str>,
) -> Result<()> {
    in_transaction(conn, "recording a measured index recall", async {
        if let Some(index) = drop_index {
            conn.execute(&format!("DROP INDEX IF EXISTS {index}"), ())
                .await
                .db_context(|| format!("dropping {index}, short of the recall target"))?;
        }
        crate::search_plan::write(conn, plan).await?;
        Ok(())
    })
    .await
}

/// The tables whose 1-bit scan gave way to the 8-bit scan in `checked`:
/// the run builds and measures their 8-bit scans next.
pub(crate) fn gave_way(checked: &[BuiltRecall]) -> Vec<TargetTable> {
    checked
        .iter()
        .filter(|c| c.outcome == RecallOutcome::GaveWay)
        .filter_map(|c| TargetTable::from_name(&c.table))
        .collect()
}

/// Measures each index this run built under a plan that predicted its
/// recall (options forced or fixed, not measured, are left to the
/// verification's search check; `only`: these tables' alone), records the
/// measure, and replaces an index clearly short of the target by an exact
/// search where that is fast enough (its status then reads "exact
/// search"), or a 1-bit scan by the 8-bit scan where it is not.
pub(crate) async fn check_built(
    conn: &Connection,
    statuses: &mut [IndexStatus],
    planning: &IndexPlanning,
    max_retries: u32,
    only: Option<&[TargetTable]>,
) -> Result<Vec<BuiltRecall>> {
    let mut plan = with_retries(max_retries, || crate::search_plan::read(conn)).await?;
    let mut out = Vec::new();
    for status in statuses.iter_mut().filter(|s| s.status.is_built()) {
        let Some(table) = TargetTable::from_name(&status.table) else {
            continue;
        };
        if only.is_some_and(|only| !only.contains(&table)) {
            continue;
        }
        let index = status.index.clone();
        let (options, overfetch, predicted, via) = match plan.get(&table).cloned() {
            Some(TableSearch::Index {
                options,
                overfetch,
                planned_recall: Some(predicted),
                ..
            }) => (options, overfetch, predicted, Via::VectorIndex(&index)),
            Some(TableSearch::Scan {
                overfetch,
                bits,
                planned_recall: Some(predicted),
                ..
            }) => (
                bits.options().to_string(),
                overfetch,
                predicted,
                Via::ScanIndex(bits),
            ),
            _ => continue,
        };
        // The exact answers read once: each raise searches the same rows.
        let truths = with_retries(max_retries, || {
            recall::Truths::read(conn, table, QUERIES, Queries::HeldOut)
        })
        .await?;
        let truths = &truths;
        let measure = |overfetch: u32| {
            with_retries(max_retries, move || {
                truths.measure(conn, via, overfetch as usize)
            })
        };
        let planned_overfetch = overfetch;
        let mut m = measure(overfetch).await?;
        let mut overfetch = overfetch;
        if let Via::ScanIndex(_) = via {
            for _ in 0..SCAN_RAISES {
                // The target itself, not within the measure's noise: a
                // raise costs no build.
                if m.recall >= planning.target_recall {
                    break;
                }
                let more = measure(overfetch * 2).await?;
                if more.recall <= m.recall || more.index_ms > EXACT_FALLBACK * planning.max_query_ms
                {
                    break;
                }
                (m, overfetch) = (more, overfetch * 2);
            }
        }
        let mut outcome = outcome(m.recall, m.exact_ms, planning);
        if outcome == RecallOutcome::BelowTarget && via == Via::ScanIndex(ScanBits::Float1Bit) {
            outcome = RecallOutcome::GaveWay;
        }
        let search = match (outcome, via) {
            (RecallOutcome::SearchedExactly, _) => TableSearch::Exact,
            // Measured next, against the target itself.
            (RecallOutcome::GaveWay, _) => TableSearch::Scan {
                overfetch: forced_scan_overfetch(ScanBits::Float8),
                bits: ScanBits::Float8,
                planned_recall: Some(planning.target_recall),
                measured_recall: None,
            },
            (_, Via::ScanIndex(bits)) => TableSearch::Scan {
                overfetch,
                bits,
                planned_recall: Some(predicted),
                measured_recall: Some(m.recall),
            },
            _ => TableSearch::Index {
                options: options.clone(),
                overfetch,
                planned_recall: Some(predicted),
                measured_recall: Some(m.recall),
            },
        };
        plan.insert(table, search);
        let drop_index = matches!(
            outcome,
            RecallOutcome::SearchedExactly | RecallOutcome::GaveWay
        )
        .then_some(index.as_str());
        with_retries(max_retries, || record(conn, &plan, drop_index)).await?;
        if drop_index.is_some() {
            // Until the 8-bit scan that takes a 1-bit one's place is built.
            status.status = IndexState::Exact;
        }
        out.push(BuiltRecall {
            table: table.name().to_string(),
            options,
            overfetch,
            planned_overfetch,
            queries: m.queries,
            target_recall: planning.target_recall,
            predicted_recall: predicted,
            measured_recall: m.recall,
            index_query_ms: m.index_ms,
            exact_query_ms: m.exact_ms,
            outcome,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_index_gives_way_to_an_exact_search_only_when_that_is_fast_enough() {
        let planning = IndexPlanning::default(); // 0.95, 50 ms
        assert_eq!(outcome(0.96, 900.0, &planning), RecallOutcome::Met);
        assert_eq!(
            outcome(0.93, 900.0, &planning),
            RecallOutcome::Met,
            "within the measure's noise"
        );
        assert_eq!(
            outcome(0.66, 150.0, &planning),
            RecallOutcome::SearchedExactly
        );
        assert_eq!(outcome(0.66, 900.0, &planning), RecallOutcome::BelowTarget);
    }

    /// A table of `rows` random unit vectors of 384 dimensions, its index
    /// made with `options`, recorded as planned with a recall of 0.99.
    async fn indexed_table(
        rows: usize,
        options: &str,
    ) -> (tempfile::TempDir, libsql::Database, Connection) {
        let table = TargetTable::D384;
        let mut rng = test_support::rng::Rng(11);
        let vectors: Vec<Vec<f32>> = (0..rows).map(|_| rng.vector(384)).collect();
        let (dir, db, conn) = super::super::recall::table_384(&vectors).await;
        let quoted: Vec<String> = options.split(',').map(|o| format!(", '{o}'")).collect();
        conn.execute(
            &format!(
                "CREATE INDEX {} ON embeddings_384 (libsql_vector_idx(embedding_vector, 'metric=cosine'{}))",
                table.vector_index_name().unwrap(),
                quoted.concat()
            ),
            (),
        )
        .await
        .unwrap();
        let plan = BTreeMap::from([(
            table,
            TableSearch::Index {
                options: options.to_string(),
                overfetch: 1,
                planned_recall: Some(0.99),
                measured_recall: None,
            },
        )]);
        crate::search_plan::write(&conn, &plan).await.unwrap();
        (dir, db, conn)
    }

    fn built() -> Vec<IndexStatus> {
        vec![IndexStatus {
            table: "embeddings_384".into(),
            index: "idx_embeddings_384_vector".into(),
            status: IndexState::Built,
            seconds: 1.0,
        }]
    }

    /// A graph of four neighbours per node searched with a beam of one:
    /// far below any plan.
    const POOR: &str = "compress_neighbors=float1bit,max_neighbors=4,search_l=1";

    #[tokio::test]
    async fn an_index_far_below_its_plan_gives_way_to_an_exact_search_that_is_fast_enough() {
        let (_dir, _db, conn) = indexed_table(600, POOR).await;
        let mut statuses = built();
        let planning = IndexPlanning::default();
        let checked = check_built(&conn, &mut statuses, &planning, 0, None)
            .await
            .unwrap();
        assert_eq!(checked.len(), 1);
        let c = &checked[0];
        assert!(c.measured_recall < 0.7, "measured {}", c.measured_recall);
        assert_eq!(c.queries, QUERIES as u64);
        assert_eq!(c.outcome, RecallOutcome::SearchedExactly);
        assert_eq!(statuses[0].status, IndexState::Exact);
        assert!(
            !crate::schema::object_exists(&conn, "idx_embeddings_384_vector")
                .await
                .unwrap()
        );
        let plan = crate::search_plan::read(&conn).await.unwrap();
        assert_eq!(plan.get(&TargetTable::D384), Some(&TableSearch::Exact));
    }

    #[tokio::test]
    async fn an_index_below_its_plan_stays_when_an_exact_search_is_too_slow_and_its_measure_is_recorded(
    ) {
        let (_dir, _db, conn) = indexed_table(600, POOR).await;
        let mut statuses = built();
        let planning = IndexPlanning {
            max_query_ms: 0.0001,
            ..Default::default()
        };
        let checked = check_built(&conn, &mut statuses, &planning, 0, None)
            .await
            .unwrap();
        let c = &checked[0];
        assert_eq!(c.outcome, RecallOutcome::BelowTarget);
        assert_eq!(statuses[0].status, IndexState::Built);
        assert!(
            crate::schema::object_exists(&conn, "idx_embeddings_384_vector")
                .await
                .unwrap()
        );
        let plan = crate::search_plan::read(&conn).await.unwrap();
        let Some(TableSearch::Index {
            planned_recall,
            measured_recall,
            ..
        }) = plan.get(&TargetTable::D384)
        else {
            panic!("the index's plan is gone: {plan:?}");
        };
        assert_eq!(*planned_recall, Some(0.99));
        assert_eq!(*measured_recall, Some(c.measured_recall));
        // The verification's search check now holds the index to what it
        // measured, not to what was predicted.
        let checks = crate::migration::smoke::search_smoke_test(&conn, 0.95)
            .await
            .unwrap();
        assert!(
            (checks[0].recall_floor - (c.measured_recall - super::super::report::RECALL_MARGIN))
                .abs()
                < 1e-9
        );
    }

    #[tokio::test]
    async fn an_index_that_meets_its_target_is_kept_with_its_measure() {
        let (_dir, _db, conn) = indexed_table(300, "compress_neighbors=float8").await;
        let mut statuses = built();
        let checked = check_built(&conn, &mut statuses, &IndexPlanning::default(), 0, None)
            .await
            .unwrap();
        let c = &checked[0];
        assert!(c.measured_recall >= 0.95, "measured {}", c.measured_recall);
        assert_eq!(c.outcome, RecallOutcome::Met);
        assert_eq!(statuses[0].status, IndexState::Built);
    }

    #[tokio::test]
    async fn indexes_not_planned_or_not_built_by_this_run_are_not_measured() {
        let (_dir, _db, conn) = indexed_table(50, POOR).await;
        let mut present = built();
        present[0].status = IndexState::Present;
        let planning = IndexPlanning::default();
        assert!(check_built(&conn, &mut present, &planning, 0, None)
            .await
            .unwrap()
            .is_empty());
        let forced = BTreeMap::from([(
            TargetTable::D384,
            TableSearch::Index {
                options: POOR.into(),
                overfetch: 1,
                planned_recall: None,
                measured_recall: None,
            },
        )]);
        crate::search_plan::write(&conn, &forced).await.unwrap();
        assert!(check_built(&conn, &mut built(), &planning, 0, None)
            .await
            .unwrap()
            .is_empty());
    }
}
