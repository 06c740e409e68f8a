//! recall@10 of a vector index, measured on its own table: rows sampled
//! evenly over the table are searched as the store searches (the index's
//! candidates, with the plan's over-fetch, re-ranked by exact distance)
//! and exactly (every row ranked). Shared by the check that follows an
//! index build ([`super::built_recall`]) and the search check that ends a
//! verification ([`super::smoke`]). The exact answers of all the queries
//! come from one read of the table ([`exact`]).
//!
//! Rows whose vector cosine search cannot rank (zero norm, a norm that
//! underflows or overflows f32: [`crate::decode::cosine_searchable`]) are
//! data, migrated bit for bit, but no search can find them: they are left
//! out of the sample and out of the candidates.

use std::time::Instant;

use libsql::{Connection, Value};

use crate::decode::cosine_searchable;
use crate::error::{DbContext, Result};
use crate::schema::{ScanBits, TargetTable};

mod exact;

/// Hits per search: recall@10.
const K: usize = 10;

/// What the sampled rows ask of the index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Queries {
    /// The row's own vector, the row among the answers: each search must
    /// find its row first (the index holds every row).
    Own,
    /// The row held out: left out of both rankings, so recall is measured
    /// on its neighbours alone, as for a query the table does not hold.
    HeldOut,
}

/// What a search goes through: a DiskANN index (named), or the table's
/// quantized scan index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Via<'a> {
    VectorIndex(&'a str),
    ScanIndex(ScanBits),
}

/// What the searches measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub queries: u64,
    /// Mean recall@10 (a hit as near as the exact tenth counts: ties are
    /// not misses).
    pub recall: f64,
    /// [`Queries::Own`]: searches whose first hit was the row itself (or
    /// an identical vector); the others' embedding_ids in `missed`.
    pub found_first: u64,
    pub missed: Vec<String>,
    /// Mean milliseconds of one search through the index, and the
    /// milliseconds of one exact search (a scan of the table; the truths
    /// are found in one read of the table for all the queries,
    /// [`exact`]).
    pub index_ms: f64,
    pub exact_ms: f64,
}

/// Up to `n` searchable rows (key, vector) spread evenly over the table's
/// rowids (twice as many are fetched, so that a few unsearchable ones do
/// not shrink the sample).
async fn sample(conn: &Connection, table: TargetTable, n: usize) -> Result<Vec<(Value, Vec<u8>)>> {
    let name = table.name();
    let ctx = || format!("sampling {name} to measure its search");
    let sql = format!(
        "WITH n AS (SELECT count(*) AS c FROM {name}) \
         SELECT embedding_id, embedding_vector FROM {name}, n \
         WHERE embedding_vector IS NOT NULL AND rowid % max(1, n.c / ?1) = 0 LIMIT ?1"
    );
    let mut rows = conn.query(&sql, [2 * n as i64]).await.db_context(ctx)?;
    let mut fetched = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        if let Value::Blob(v) = row.get_value(1).db_context(ctx)? {
            if cosine_searchable(&v).is_ok() {
                fetched.push((row.get_value(0).db_context(ctx)?, v));
            }
        }
    }
    Ok(spread(fetched, n))
}

/// At most `n` of `rows`, evenly spread over them.
pub(crate) fn spread<T>(rows: Vec<T>, n: usize) -> Vec<T> {
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

/// Every candidate a search returns (key, vector, distance), best first,
/// `left_out` and unsearchable vectors dropped.
async fn search(
    conn: &Connection,
    sql: &str,
    vector: &[u8],
    left_out: Option<&Value>,
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
        let id = hit.get_value(0).db_context(ctx)?;
        if left_out == Some(&id) {
            continue;
        }
        let vector = hit.get_value(1).db_context(ctx)?;
        if matches!(&vector, Value::Blob(v) if cosine_searchable(v).is_err()) {
            continue;
        }
        out.push((id, vector, distance));
    }
    out.sort_by(|a, b| a.2.total_cmp(&b.2));
    Ok(out)
}

/// Searches `n` rows of `table` through `via` (asked for `overfetch` ×
/// the hits) and exactly.
pub(crate) async fn measure(
    conn: &Connection,
    table: TargetTable,
    via: Via<'_>,
    overfetch: usize,
    n: usize,
    queries: Queries,
) -> Result<Measured> {
    let truths = Truths::read(conn, table, n, queries).await?;
    truths.measure(conn, via, overfetch).await
}

/// The sampled rows of a table and their exact answers: read once, to
/// measure several searches against (a scan index's over-fetch raised,
/// [`super::built_recall`]). Each read is a pass over the whole table:
/// about 7 s at 200,000 rows of 1,536 dimensions.
pub(crate) struct Truths {
    table: TargetTable,
    queries: Queries,
    rows: Vec<(Value, Vec<u8>)>,
    truths: Vec<Vec<(Value, Value, f64)>>,
    /// What one exact search of the table costs, as the store runs it.
    exact_ms: f64,
}

impl Truths {
    /// Up to `n` rows of `table` sampled as `queries`, their exact
    /// answers, and one exact search timed.
    pub(crate) async fn read(
        conn: &Connection,
        table: TargetTable,
        n: usize,
        queries: Queries,
    ) -> Result<Truths> {
        let name = table.name();
        let dimension = table.native_dimension().unwrap_or(0);
        let hits = hits(queries);
        let exact_sql = format!(
            "SELECT embedding_id, embedding_vector, vector_distance_cos(embedding_vector, ?1) AS d \
             FROM {name} WHERE embedding_vector IS NOT NULL AND dimension = {dimension} \
             ORDER BY d NULLS LAST LIMIT {hits}"
        );
        let rows = sample(conn, table, n).await?;
        let held_out = queries == Queries::HeldOut;
        let truths = exact::nearest(conn, table, &rows, K, held_out).await?;
        let mut exact_ms = 0.0;
        if let Some((id, vector)) = rows.first() {
            let began = Instant::now();
            let what = format!("searching {name} exactly");
            search(conn, &exact_sql, vector, held_out.then_some(id), &what).await?;
            exact_ms = began.elapsed().as_secs_f64() * 1000.0;
        }
        Ok(Truths {
            table,
            queries,
            rows,
            truths,
            exact_ms,
        })
    }

    /// The sampled rows searched through `via`, asked for `overfetch` ×
    /// the hits, against their exact answers.
    pub(crate) async fn measure(
        &self,
        conn: &Connection,
        via: Via<'_>,
        overfetch: usize,
    ) -> Result<Measured> {
        let (table, queries) = (self.table, self.queries);
        let name = table.name();
        let fetch = (hits(queries) * overfetch.max(1)).to_string();
        let (index, nearest) = match via {
            Via::VectorIndex(index) => (index, format!("vector_top_k('{index}', ?1, {fetch})")),
            Via::ScanIndex(bits) => (
                table.scan_index_name(bits).unwrap_or_default(),
                table
                    .scan_nearest_sql(bits, "?1", &fetch)
                    .unwrap_or_default(),
            ),
        };
        let by_index = format!(
            "SELECT t.embedding_id, t.embedding_vector, vector_distance_cos(t.embedding_vector, ?1) \
             FROM {nearest} AS v \
             JOIN {name} AS t ON t.rowid = v.id"
        );
        let held_out = queries == Queries::HeldOut;
        let mut out = Measured {
            queries: self.rows.len() as u64,
            recall: 1.0,
            found_first: 0,
            missed: Vec::new(),
            index_ms: 0.0,
            exact_ms: self.exact_ms,
        };
        let (mut recall_sum, mut index_s) = (0.0, 0.0);
        for ((id, vector), truth) in self.rows.iter().zip(&self.truths) {
            let left_out = held_out.then_some(id);
            let began = Instant::now();
            let what = format!("searching {index} to measure its recall");
            let mut found = search(conn, &by_index, vector, left_out, &what).await?;
            index_s += began.elapsed().as_secs_f64();
            found.truncate(K);
            let tenth = truth.last().map_or(f64::INFINITY, |t| t.2);
            let good = found.iter().filter(|h| h.2 <= tenth + 1e-6).count();
            recall_sum += if truth.is_empty() {
                1.0
            } else {
                (good.min(truth.len()) as f64) / truth.len() as f64
            };
            if queries == Queries::Own {
                let first = found.first().is_some_and(|(hit_id, hit_vector, _)| {
                    hit_id == id || *hit_vector == Value::Blob(vector.clone())
                });
                if first {
                    out.found_first += 1;
                } else {
                    out.missed.push(match id {
                        Value::Text(s) => s.clone(),
                        other => format!("{other:?}"),
                    });
                }
            }
        }
        if out.queries > 0 {
            let n = out.queries as f64;
            out.recall = recall_sum / n;
            out.index_ms = index_s * 1000.0 / n;
        }
        Ok(out)
    }
}

/// Hits a search asks for: a held-out row comes back too, and is dropped:
/// one hit more.
fn hits(queries: Queries) -> usize {
    K + usize::from(queries == Queries::HeldOut)
}

/// For tests: `embeddings_384` holding `vectors` (keys `e0`, `e1`, …) in a
/// database file in a new temporary folder (kept while it lives).
#[cfg(test)]
pub(crate) async fn table_384(
    vectors: &[Vec<f32>],
) -> (tempfile::TempDir, libsql::Database, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = libsql::Builder::new_local(dir.path().join("t.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    conn.execute(TargetTable::D384.create_table_sql(), ())
        .await
        .unwrap();
    conn.execute("BEGIN", ()).await.unwrap();
    for (i, v) in vectors.iter().enumerate() {
        conn.execute(
            "INSERT INTO embeddings_384 (embedding_id, item_id, item_type, embedding_data, embedding_vector, model) \
             VALUES (?1, 'i', 't', '[]', ?2, 'm')",
            vec![
                Value::Text(format!("e{i}")),
                Value::Blob(crate::decode::vector_to_le_bytes(v)),
            ],
        )
        .await
        .unwrap();
    }
    conn.execute("COMMIT", ()).await.unwrap();
    (dir, db, conn)
}

#[cfg(test)]
mod tests {
    use super::*;

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
