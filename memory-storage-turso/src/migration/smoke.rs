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

pub use super::report::SearchCheck;
use crate::decode::cosine_searchable;
use crate::error::{DbContext, Result};
use crate::schema::{object_exists, TargetTable};

/// Rows sampled per table.
pub const SAMPLE: usize = 16;
/// Candidates asked of the index per search.
const CANDIDATES: usize = 10;

/// Runs the smoke test on every native table that has its vector index.
pub async fn search_smoke_test(conn: &Connection) -> Result<Vec<SearchCheck>> {
    let mut out = Vec::new();
    for table in TargetTable::ALL {
        let Some(index) = table.vector_index_name() else {
            continue;
        };
        if !object_exists(conn, index).await? {
            continue;
        }
        out.push(check_table(conn, table, index).await?);
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

/// The best of the index's candidates `(embedding_id, vector, distance)`
/// by exact cosine distance, as the store ranks them (a NULL distance is
/// no match), leaving out vectors cosine search cannot rank: their
/// distances are NaN or infinite and would sort before every real match.
fn best(candidates: Vec<(Value, Value, Value)>) -> Option<(Value, Value)> {
    let mut best: Option<(f64, Value, Value)> = None;
    for (id, vector, distance) in candidates {
        let distance = match distance {
            Value::Real(d) => d,
            Value::Integer(d) => d as f64,
            _ => continue,
        };
        if matches!(&vector, Value::Blob(v) if cosine_searchable(v).is_err()) {
            continue;
        }
        if best.as_ref().is_none_or(|(d, _, _)| distance < *d) {
            best = Some((distance, id, vector));
        }
    }
    best.map(|(_, id, vector)| (id, vector))
}

async fn check_table(conn: &Connection, table: TargetTable, index: &str) -> Result<SearchCheck> {
    let name = table.name();
    let ctx = || format!("searching {index} in the search smoke test");
    // As the store searches: the index's candidates, ranked by exact cosine
    // distance (with compressed neighbours the index's own order is only
    // approximate), in `best`.
    let sql = format!(
        "SELECT t.embedding_id, t.embedding_vector, vector_distance_cos(t.embedding_vector, ?1) \
         FROM vector_top_k('{index}', ?1, {CANDIDATES}) AS v \
         JOIN {name} AS t ON t.rowid = v.id"
    );
    let rows = sample(conn, table).await?;
    let mut check = SearchCheck {
        table: name.to_string(),
        sampled: rows.len() as u64,
        found_first: 0,
        missed: Vec::new(),
    };
    for (id, vector) in rows {
        let mut hits = conn
            .query(&sql, [Value::Blob(vector.clone())])
            .await
            .db_context(ctx)?;
        let mut candidates = Vec::new();
        while let Some(hit) = hits.next().await.db_context(ctx)? {
            candidates.push((
                hit.get_value(0).db_context(ctx)?,
                hit.get_value(1).db_context(ctx)?,
                hit.get_value(2).db_context(ctx)?,
            ));
        }
        let found = match best(candidates) {
            Some((hit_id, hit_vector)) => hit_id == id || hit_vector == Value::Blob(vector),
            None => false,
        };
        if found {
            check.found_first += 1;
        } else {
            check.missed.push(match id {
                Value::Text(s) => s,
                other => format!("{other:?}"),
            });
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sampled: u64, found_first: u64) -> SearchCheck {
        SearchCheck {
            table: "embeddings_384".into(),
            sampled,
            found_first,
            missed: Vec::new(),
        }
    }

    #[test]
    fn a_working_index_may_miss_a_few_a_broken_one_fails() {
        assert!(check(16, 16).passed() && check(16, 16).all_found());
        assert!(check(16, 13).passed() && !check(16, 13).all_found());
        assert!(!check(16, 12).passed());
        assert!(!check(16, 0).passed());
        assert!(check(0, 0).passed(), "an empty table has nothing to miss");
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

    fn blob(v: &[f32]) -> Value {
        Value::Blob(crate::decode::vector_to_le_bytes(v))
    }

    fn id(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn best_skips_null_distances_and_unrankable_vectors() {
        let candidates = vec![
            // A zero vector: libSQL's distance is NaN, returned as NULL.
            (id("zero"), blob(&[0.0, 0.0]), Value::Null),
            // Tiny components: the distance is -inf, it would sort first.
            (
                id("tiny"),
                blob(&[1e-30, 1e-30]),
                Value::Real(f64::NEG_INFINITY),
            ),
            (id("far"), blob(&[0.0, 1.0]), Value::Real(1.0)),
            (id("near"), blob(&[1.0, 0.1]), Value::Real(0.005)),
            (id("tie"), blob(&[1.0, 0.1]), Value::Real(0.005)),
        ];
        assert_eq!(best(candidates), Some((id("near"), blob(&[1.0, 0.1]))));
        assert_eq!(best(vec![(id("zero"), blob(&[0.0]), Value::Null)]), None);
        assert_eq!(best(Vec::new()), None);
    }
}
