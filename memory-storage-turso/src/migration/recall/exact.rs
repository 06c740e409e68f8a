//! The exact nearest rows of a table to many queries, in one read of the
//! table. Searching it exactly once per query scans the whole table each
//! time: 1.5 s a query at 700,000 rows of 384 dimensions, 64 queries a
//! table in the recall check. One read in pages, each row's distance to
//! every query computed here, costs about one such scan.
//!
//! Distances are computed as libSQL's `vector_distance_cos` computes them
//! for `F32_BLOB`s (f32 sums in element order, the quotient in f64, the
//! result rounded to f32), so they equal, bit for bit, the distances the
//! index's searches are ranked by.

use libsql::{Connection, Value};

use crate::decode::{cosine_searchable, vector_from_le_bytes};
use crate::error::{DbContext, Result};
use crate::schema::TargetTable;

/// Bytes of vectors a page of the table reads at most: well under sqld's
/// 10 MB response cap.
const PAGE_BYTES: usize = 4 << 20;

/// A query: its row's key (left out of its answers where `held_out`) and
/// its vector's bytes.
pub(super) type Query = (Value, Vec<u8>);

/// One exact answer: key, vector bytes, distance.
pub(super) type Hit = (Value, Value, f64);

/// The `k` rows of `table` nearest to each of `queries`, best first, each
/// query's own row left out where `held_out`; rows no cosine search can
/// rank are never answers.
pub(super) async fn nearest(
    conn: &Connection,
    table: TargetTable,
    queries: &[Query],
    k: usize,
    held_out: bool,
) -> Result<Vec<Vec<Hit>>> {
    let dimension = table.native_dimension().unwrap_or(0);
    let page = (PAGE_BYTES / (dimension * 4 + 128)).max(1);
    nearest_in_pages(conn, table, queries, k, held_out, page).await
}

/// [`nearest`], reading `page` rows a request.
async fn nearest_in_pages(
    conn: &Connection,
    table: TargetTable,
    queries: &[Query],
    k: usize,
    held_out: bool,
    page: usize,
) -> Result<Vec<Vec<Hit>>> {
    let name = table.name();
    let dimension = table.native_dimension().unwrap_or(0);
    let mut top = Top::new(queries, dimension, k);
    if top.count == 0 || dimension == 0 || k == 0 {
        return Ok(vec![Vec::new(); queries.len()]);
    }
    let sql = format!(
        "SELECT rowid, embedding_id, embedding_vector FROM {name} \
         WHERE rowid > ?1 AND embedding_vector IS NOT NULL AND dimension = {dimension} \
         ORDER BY rowid LIMIT {page}"
    );
    let ctx = || format!("reading {name} to search it exactly");
    let mut after = i64::MIN;
    let mut row = vec![0f32; dimension];
    loop {
        let mut rows = conn.query(&sql, [after]).await.db_context(ctx)?;
        let mut read = 0;
        while let Some(r) = rows.next().await.db_context(ctx)? {
            read += 1;
            after = r.get::<i64>(0).db_context(ctx)?;
            let Value::Blob(bytes) = r.get_value(2).db_context(ctx)? else {
                continue;
            };
            if bytes.len() != dimension * 4 || cosine_searchable(&bytes).is_err() {
                continue;
            }
            for (x, c) in row.iter_mut().zip(bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            top.offer(
                &row,
                || Ok((r.get_value(1)?, Value::Blob(bytes.clone()))),
                held_out,
            )
            .db_context(ctx)?;
        }
        if read < page {
            break;
        }
    }
    Ok(top.answers)
}

/// The best `k` answers of each query so far.
struct Top<'q> {
    queries: &'q [Query],
    /// Queries held dimension-major: element `i` of query `q` at
    /// `i * count + q`, so one row's dot products with every query run
    /// side by side, each summed in element order.
    by_element: Vec<f32>,
    norms: Vec<f32>,
    count: usize,
    k: usize,
    dots: Vec<f32>,
    answers: Vec<Vec<Hit>>,
}

impl<'q> Top<'q> {
    /// Queries whose vector is not of `dimension` find nothing.
    fn new(queries: &'q [Query], dimension: usize, k: usize) -> Self {
        let count = queries.len();
        let mut by_element = vec![0f32; dimension * count];
        let mut norms = vec![f32::NAN; count];
        for (q, (_, bytes)) in queries.iter().enumerate() {
            let Some(vector) = vector_from_le_bytes(bytes).filter(|v| v.len() == dimension) else {
                continue;
            };
            let mut norm = 0f32;
            for (i, x) in vector.into_iter().enumerate() {
                by_element[i * count + q] = x;
                norm += x * x;
            }
            norms[q] = norm;
        }
        Top {
            queries,
            by_element,
            norms,
            count,
            k,
            dots: vec![0f32; count],
            answers: vec![Vec::with_capacity(k + 1); count],
        }
    }

    /// Ranks `row` for every query; `hit` gives its key and vector when it
    /// is among some query's best.
    fn offer(
        &mut self,
        row: &[f32],
        hit: impl Fn() -> std::result::Result<(Value, Value), libsql::Error>,
        held_out: bool,
    ) -> std::result::Result<(), libsql::Error> {
        self.dots.fill(0.0);
        let mut norm = 0f32;
        for (x, column) in row.iter().zip(self.by_element.chunks_exact(self.count)) {
            norm += x * x;
            for (dot, q) in self.dots.iter_mut().zip(column) {
                *dot += x * q;
            }
        }
        let mut this: Option<(Value, Value)> = None;
        for q in 0..self.count {
            let d = distance(self.dots[q], norm, self.norms[q]);
            let answers = &mut self.answers[q];
            if d.is_nan() || (answers.len() == self.k && d >= answers[self.k - 1].2) {
                continue;
            }
            let (id, vector) = match &this {
                Some(h) => h.clone(),
                None => this.insert(hit()?).clone(),
            };
            if held_out && id == self.queries[q].0 {
                continue;
            }
            let at = answers.partition_point(|a| a.2 <= d);
            answers.insert(at, (id, vector, d));
            answers.truncate(self.k);
        }
        Ok(())
    }
}

/// libSQL's `vectorF32DistanceCos`: `1.0 - dot / sqrt(norm1 * norm2)`
/// with f32 sums, a double quotient, returned as a float.
fn distance(dot: f32, norm_row: f32, norm_query: f32) -> f64 {
    let quotient = f64::from(dot) / f64::from(norm_row * norm_query).sqrt();
    f64::from((1.0 - quotient) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::vector_to_le_bytes;

    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = test_support::rng::Rng(seed);
        (0..n).map(|_| rng.vector(dim)).collect()
    }

    #[test]
    fn each_query_keeps_its_k_nearest_best_first() {
        let rows = vectors(200, 8, 1);
        let queries: Vec<Query> = rows[..5]
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::Integer(i as i64), vector_to_le_bytes(v)))
            .collect();
        for held_out in [false, true] {
            let mut top = Top::new(&queries, 8, 10);
            for (i, r) in rows.iter().enumerate() {
                top.offer(r, || Ok((Value::Integer(i as i64), Value::Null)), held_out)
                    .unwrap();
            }
            for (q, answers) in top.answers.iter().enumerate() {
                let mut all: Vec<(f64, i64)> = rows
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !(held_out && *i == q))
                    .map(|(i, r)| {
                        let d = crate::decode::cosine_distance(r, &rows[q]).unwrap();
                        (d, i as i64)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                let want: Vec<i64> = all[..10].iter().map(|a| a.1).collect();
                let got: Vec<i64> = answers
                    .iter()
                    .map(|a| match a.0 {
                        Value::Integer(i) => i,
                        _ => unreachable!(),
                    })
                    .collect();
                assert_eq!(got, want, "query {q}, held out {held_out}");
                assert!(answers.windows(2).all(|w| w[0].2 <= w[1].2));
                assert_eq!(answers[0].0 == Value::Integer(q as i64), !held_out);
            }
        }
    }

    /// Every answer, in order, with the distance libSQL's own exact search
    /// gives it, bit for bit, across pages and gaps in the rowids.
    #[tokio::test]
    async fn answers_and_distances_are_libsqls_exact_search() {
        let table = TargetTable::D384;
        let mut rows = vectors(300, 384, 7);
        rows[17] = vec![0.0; 384]; // no direction: never an answer
        let (_dir, _db, conn) = super::super::table_384(&rows).await;
        conn.execute("DELETE FROM embeddings_384 WHERE rowid % 9 = 4", ())
            .await
            .unwrap();
        let queries: Vec<Query> = [3, 40, 41, 250, 299]
            .iter()
            .map(|&i| (Value::Text(format!("e{i}")), vector_to_le_bytes(&rows[i])))
            .collect();
        for held_out in [false, true] {
            let got = nearest_in_pages(&conn, table, &queries, 10, held_out, 7)
                .await
                .unwrap();
            for (q, answers) in queries.iter().zip(&got) {
                let mut want = conn
                    .query(
                        "SELECT embedding_id, vector_distance_cos(embedding_vector, ?1) AS d \
                         FROM embeddings_384 WHERE d IS NOT NULL AND embedding_id IS NOT ?2 \
                         ORDER BY d LIMIT 10",
                        vec![
                            Value::Blob(q.1.clone()),
                            if held_out { q.0.clone() } else { Value::Null },
                        ],
                    )
                    .await
                    .unwrap();
                let mut expected = Vec::new();
                while let Some(r) = want.next().await.unwrap() {
                    expected.push((r.get_value(0).unwrap(), r.get::<f64>(1).unwrap().to_bits()));
                }
                let answered: Vec<(Value, u64)> = answers
                    .iter()
                    .map(|a| (a.0.clone(), a.2.to_bits()))
                    .collect();
                assert_eq!(answered, expected, "query {:?}, held out {held_out}", q.0);
            }
        }
    }
}
