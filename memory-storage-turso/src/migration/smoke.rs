//! The search smoke test that ends a verification: for a sample of rows in
//! each native table with a vector index, a search with the row's own
//! vector (the index's top 10, ranked by exact cosine distance, as the store
//! searches) must return that row first (or one with a bit-identical
//! vector). It proves the indexes answer, not just that they exist.
//!
//! Rows whose vector cosine search cannot rank (zero norm, a norm that
//! underflows or overflows f32: [`crate::decode::cosine_searchable`]) are
//! data, migrated bit for bit, but no search can find them: they are left
//! out of the sample and out of the candidates, so they never fail the test.

use libsql::{Connection, Value};

pub use super::report::{SearchCheck, RECALL_MARGIN};
use crate::decode::cosine_searchable;
use crate::error::{DbContext, Result};
use crate::schema::{object_exists, TargetTable};
use crate::search_plan::TableSearch;

/// Rows sampled per table.
pub const SAMPLE: usize = 16;
/// Candidates asked of the index per search.
const CANDIDATES: usize = 10;

/// Runs the search check on every native table that has its vector index:
/// its recall must not fall clearly below the plan's (or, for options not
/// measured, below `target_recall`).
pub async fn search_smoke_test(conn: &Connection, target_recall: f64) -> Result<Vec<SearchCheck>> {
    let plan = crate::search_plan::read(conn).await?;
    let mut out = Vec::new();
    for table in TargetTable::ALL {
        let Some(index) = table.vector_index_name() else {
            continue;
        };
        if !object_exists(conn, index).await? {
            continue;
        }
        let (overfetch, planned) = match plan.get(&table) {
            Some(TableSearch::Index {
                overfetch,
                planned_recall,
                ..
            }) => ((*overfetch).max(1) as usize, *planned_recall),
            _ => (1, None),
        };
        let floor = planned.unwrap_or(target_recall).min(1.0) - RECALL_MARGIN;
        out.push(check_table(conn, table, index, overfetch, planned, floor).await?);
    }
    Ok(out)
}

/// Rows fetched per table before the unsearchable ones are left out, so
/// that a few of them do not shrink the sample.
const FETCHED: usize = 2 * SAMPLE;

/// Up to `SAMPLE` searchable rows spread evenly over the table's rowids.
async fn sample(conn: &Connection, table: TargetTable) -> Result<Vec<(Value, Vec<u8>)>> {
    let name = table.name();
    let ctx = || format!("sampling {name} for the search smoke test");
    let sql = format!(
        "WITH n AS (SELECT count(*) AS c FROM {name}) \
         SELECT embedding_id, embedding_vector FROM {name}, n \
         WHERE embedding_vector IS NOT NULL AND rowid % max(1, n.c / ?1) = 0 LIMIT ?1"
    );
    let mut rows = conn.query(&sql, [FETCHED as i64]).await.db_context(ctx)?;
    let mut fetched = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        if let Value::Blob(v) = row.get_value(1).db_context(ctx)? {
            if cosine_searchable(&v).is_ok() {
                fetched.push((row.get_value(0).db_context(ctx)?, v));
            }
        }
    }
    Ok(spread(fetched, SAMPLE))
}

/// At most `n` of `rows`, evenly spread over them.
fn spread<T>(rows: Vec<T>, n: usize) -> Vec<T> {
    let len = rows.len();
    if len <= n {
        return rows;
    }
    rows.into_iter()
        .enumerate()
        .filter(|(i, _)| i * n / len != (i + 1) * n / len)
        .map(|(_, r)| r)
        .collect()
}

/// The distance of every candidate an index search returns, with its key
/// and vector, best first.
async fn search(
    conn: &Connection,
    sql: &str,
    vector: &[u8],
    what: &str,
) -> Result<Vec<(Value, Value, f64)>> {
    let ctx = || what.to_string();
    let mut hits = conn
        .query(sql, [Value::Blob(vector.to_vec())])
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(hit) = hits.next().await.db_context(ctx)? {
        let distance = match hit.get_value(2).db_context(ctx)? {
            Value::Real(d) => d,
            Value::Integer(d) => d as f64,
            _ => continue,
        };
        let vector = hit.get_value(1).db_context(ctx)?;
        if matches!(&vector, Value::Blob(v) if cosine_searchable(v).is_err()) {
            continue;
        }
        out.push((hit.get_value(0).db_context(ctx)?, vector, distance));
    }
    out.sort_by(|a, b| a.2.total_cmp(&b.2));
    Ok(out)
}

async fn check_table(
    conn: &Connection,
    table: TargetTable,
    index: &str,
    overfetch: usize,
    planned_recall: Option<f64>,
    recall_floor: f64,
) -> Result<SearchCheck> {
    let name = table.name();
    let dimension = table.native_dimension().unwrap_or(0);
    // As the store searches: the index's candidates (with the plan's
    // over-fetch), ranked by exact cosine distance.
    let by_index = format!(
        "SELECT t.embedding_id, t.embedding_vector, vector_distance_cos(t.embedding_vector, ?1) \
         FROM vector_top_k('{index}', ?1, {}) AS v \
         JOIN {name} AS t ON t.rowid = v.id",
        CANDIDATES * overfetch
    );
    // The truth: every row ranked.
    let exact = format!(
        "SELECT embedding_id, embedding_vector, vector_distance_cos(embedding_vector, ?1) AS d \
         FROM {name} WHERE embedding_vector IS NOT NULL AND dimension = {dimension} \
         AND d IS NOT NULL ORDER BY d LIMIT {CANDIDATES}"
    );
    let rows = sample(conn, table).await?;
    let mut check = SearchCheck {
        table: name.to_string(),
        sampled: rows.len() as u64,
        found_first: 0,
        missed: Vec::new(),
        recall: 1.0,
        planned_recall,
        recall_floor,
    };
    let mut recall_sum = 0.0;
    for (id, vector) in rows {
        let what = format!("searching {index} in the search check");
        let mut found = search(conn, &by_index, &vector, &what).await?;
        found.truncate(CANDIDATES);
        let truth = search(conn, &exact, &vector, &format!("searching {name} exactly")).await?;
        // A hit as near as the exact tenth is as good as it: ties (identical
        // vectors) are not misses.
        let tenth = truth.last().map_or(f64::INFINITY, |t| t.2);
        let good = found.iter().filter(|h| h.2 <= tenth + 1e-6).count();
        recall_sum += if truth.is_empty() {
            1.0
        } else {
            (good.min(truth.len()) as f64) / truth.len() as f64
        };
        let first = found.first().is_some_and(|(hit_id, hit_vector, _)| {
            *hit_id == id || *hit_vector == Value::Blob(vector.clone())
        });
        if first {
            check.found_first += 1;
        } else {
            check.missed.push(match id {
                Value::Text(s) => s,
                other => format!("{other:?}"),
            });
        }
    }
    if check.sampled > 0 {
        check.recall = recall_sum / check.sampled as f64;
    }
    Ok(check)
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

    #[test]
    fn spread_keeps_n_rows_evenly() {
        assert_eq!(
            spread((0..32).collect(), 16),
            (0..16).map(|i| 2 * i + 1).collect::<Vec<_>>()
        );
        assert_eq!(spread((0..5).collect(), 16), vec![0, 1, 2, 3, 4]);
        let picked = spread((0..29).collect::<Vec<usize>>(), 16);
        assert_eq!(picked.len(), 16);
        assert!(picked.windows(2).all(|w| w[1] - w[0] <= 2));
    }
}
