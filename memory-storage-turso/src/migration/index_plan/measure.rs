//! One candidate index measured on a sample of the user's vectors, in a
//! scratch database file in the system's temporary directory (the user's
//! database is never touched): build time per insert as the graph grows
//! from empty, index bytes per row (its shadow table), search latency, and
//! recall@10 against exact search on held-out queries, for each over-fetch.
//!
//! The scratch is a file, in SQLite's default journal mode and page cache,
//! and its build commits as the index phase's does, because that is what
//! the prediction is of: a DiskANN block outgrows the page cache within a
//! few hundred rows, and each commit journals and syncs every old block
//! its inserts rewrote. Measured in memory in 100-row transactions, the
//! plan predicted 2.3× and 3.5× too little build time.

use std::time::{Duration, Instant};

use libsql::Value;

use super::super::report::Measured;
use super::super::scratch;
use crate::error::{DbContext, Result};
use crate::schema::ScanBits;

/// Hits a search returns (recall@10).
pub(crate) const K: usize = 10;

/// Rows of the first transaction, and the wall time later ones run to:
/// the index phase's on a local file no application writes to.
const FIRST_TXN_ROWS: usize = 100;
fn txn_target() -> Duration {
    super::super::indexing_table::txn_target(true, false)
}

fn blob(v: &[f32]) -> Value {
    Value::Blob(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Cosine distance; a vector without direction ranks last.
fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    crate::decode::cosine_distance(a, b).unwrap_or(f64::INFINITY)
}

/// The exact `K` nearest of `rows` to `q` (indexes into `rows`; of equal
/// distances, the first rows). Selected, not sorted: the plan asks this
/// of every query at every size, and a full sort of the rows for each
/// was a fifth of its time on 100,000 rows.
pub(crate) fn exact_top(rows: &[Vec<f32>], q: &[f32]) -> Vec<usize> {
    let mut d: Vec<(f64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (cosine_distance(r, q), i))
        .collect();
    let order = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if d.len() > K {
        d.select_nth_unstable_by(K, order);
        d.truncate(K);
    }
    d.sort_by(order);
    d.into_iter().map(|(_, i)| i).collect()
}

/// Share of `exact` found in `found`.
pub(crate) fn recall(exact: &[usize], found: &[usize]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    exact.iter().filter(|i| found.contains(i)).count() as f64 / exact.len() as f64
}

/// How a sample's searches are scaled down so that what they find stands
/// for what the table's will (none: searched as the table will be).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scaled {
    /// A DiskANN index's `search_l`, instead of the options' (it changes
    /// searches only, not the graph the inserts build).
    pub search_l: Option<u32>,
    /// A scan's: the sample's rows ÷ the table's. Its recall is measured
    /// over the nearest candidates in quantized distance, `√share` of
    /// those the table's search asks for ([`scaled_candidates`]): a scan
    /// ranks every row, and among `n` rows a true neighbour falls further
    /// down the quantized order than among `s` of them, about `√(n ÷ s)`
    /// times as far on uniform vectors (the test below: 1,000 of 8,000
    /// rows of 384 dimensions, the 1-bit scan, within 0.06 at over-fetch
    /// 8 to 64). Measured with all the candidates instead, 8,749 of 69,999
    /// uniform rows of 384 dimensions predicted 0.951 for the 1-bit scan at
    /// over-fetch 64, and the table needed 512 for 0.981; 25,004 of
    /// 200,031 rows of 1,536 predicted 0.958, and the table found 0.906
    /// at 256. With `share` of them (`n ÷ s` times as far) the test's
    /// sample found 0.32–0.80 for the table's 0.61–0.95. Its search is
    /// still timed with all the candidates (the table's re-ranking reads
    /// them).
    pub scan_share: Option<f64>,
}

/// Builds the index `options` over `rows` (inserted into an indexed table
/// in transactions sized as the index phase's) and measures it with
/// `queries` for each over-fetch in `overfetch`, its searches `scaled`.
/// The scan index's rows store `leading_bytes` before the vector, as the
/// table's.
pub(crate) async fn measure(
    dimension: usize,
    options: &str,
    rows: &[Vec<f32>],
    queries: &[Vec<f32>],
    overfetch: &[u32],
    scaled: Scaled,
    leading_bytes: usize,
) -> Result<Vec<Measured>> {
    if let Some(bits) = ScanBits::from_options(options) {
        let share = scaled.scan_share;
        return measure_scan(
            dimension,
            bits,
            rows,
            queries,
            overfetch,
            leading_bytes,
            share,
        )
        .await;
    }
    let scaled_search_l = scaled.search_l;
    let s = scratch::open("the index plan").await?;
    let conn = &s.conn;
    let ctx = || format!("measuring the index option(s) {options:?}");
    let args = options
        .split(',')
        .filter(|o| !o.is_empty())
        .filter(|o| scaled_search_l.is_none() || !o.starts_with("search_l="))
        .map(String::from)
        .chain(scaled_search_l.map(|l| format!("search_l={l}")))
        .map(|o| format!(", '{o}'"))
        .collect::<String>();
    conn.execute_batch(&format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v F32_BLOB({dimension}));
         CREATE INDEX t_idx ON t(libsql_vector_idx(v{args}));"
    ))
    .await
    .db_context(ctx)?;
    let began = Instant::now();
    let mut txn_began = Instant::now();
    conn.execute("BEGIN", ()).await.db_context(ctx)?;
    for (id, v) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            vec![Value::Integer(id as i64), blob(v)],
        )
        .await
        .db_context(ctx)?;
        if id + 1 == FIRST_TXN_ROWS || txn_began.elapsed() >= txn_target() {
            conn.execute("COMMIT", ()).await.db_context(ctx)?;
            conn.execute("BEGIN", ()).await.db_context(ctx)?;
            txn_began = Instant::now();
        }
    }
    conn.execute("COMMIT", ()).await.db_context(ctx)?;
    let build_ms_per_row = began.elapsed().as_secs_f64() * 1000.0 / rows.len().max(1) as f64;
    let bytes = {
        let mut r = conn
            .query(
                "SELECT coalesce(sum(length(data)), 0) + 16 * count(*) FROM t_idx_shadow",
                (),
            )
            .await
            .db_context(ctx)?;
        match r.next().await.db_context(ctx)? {
            Some(row) => row.get::<i64>(0).db_context(ctx)? as f64,
            None => 0.0,
        }
    };
    let built = Built {
        rows,
        build_ms_per_row,
        bytes,
        scaled_search_l,
        scan_share: None,
    };
    searched(
        conn,
        "SELECT id FROM vector_top_k('t_idx', ?1, ?2)",
        &built,
        queries,
        overfetch,
    )
    .await
}

/// The quantized scan index of `bits` over `rows`, measured as [`measure`]
/// measures a DiskANN setting. Its build is one `CREATE INDEX` over the
/// rows already there, as the index phase's is (an ordinary index: a
/// sort, not a graph). A search reads the `overfetch` × 10 rowids nearest
/// by quantized distance from the index alone and joins their rows, as the store does;
/// their exact distances re-rank them (the nearest `share` of them in
/// quantized distance, for recall, where a share is given: [`Scaled`]). Its bytes are the pages the index
/// added. The rows store `leading_bytes` before the vector, as the
/// table's do: the build reads every row whole, and the join reads past
/// them (on 34,876 rows of 384 dimensions bare rows predicted 0.12 s, the
/// build took 0.24 s).
async fn measure_scan(
    dimension: usize,
    bits: ScanBits,
    rows: &[Vec<f32>],
    queries: &[Vec<f32>],
    overfetch: &[u32],
    leading_bytes: usize,
    share: Option<f64>,
) -> Result<Vec<Measured>> {
    let s = scratch::open("the index plan").await?;
    let conn = &s.conn;
    let ctx = || "measuring a quantized scan index".to_string();
    conn.execute(
        &format!("CREATE TABLE t (id INTEGER PRIMARY KEY, lead TEXT, v F32_BLOB({dimension}))"),
        (),
    )
    .await
    .db_context(ctx)?;
    let lead = "x".repeat(leading_bytes);
    conn.execute("BEGIN", ()).await.db_context(ctx)?;
    for (id, v) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO t (id, lead, v) VALUES (?1, ?2, ?3)",
            vec![
                Value::Integer(id as i64),
                Value::Text(lead.clone()),
                blob(v),
            ],
        )
        .await
        .db_context(ctx)?;
    }
    conn.execute("COMMIT", ()).await.db_context(ctx)?;
    let pages = || async {
        let mut r = conn
            .query(
                "SELECT (SELECT page_count FROM pragma_page_count()) * \
                 (SELECT page_size FROM pragma_page_size())",
                (),
            )
            .await
            .db_context(ctx)?;
        match r.next().await.db_context(ctx)? {
            Some(row) => Ok::<f64, crate::error::Error>(row.get::<i64>(0).db_context(ctx)? as f64),
            None => Ok(0.0),
        }
    };
    let before = pages().await?;
    let began = Instant::now();
    let f = bits.function();
    conn.execute(&format!("CREATE INDEX t_scan ON t({f}(v))"), ())
        .await
        .db_context(ctx)?;
    let build_ms_per_row = began.elapsed().as_secs_f64() * 1000.0 / rows.len().max(1) as f64;
    let bytes = (pages().await? - before).max(0.0);
    let built = Built {
        rows,
        build_ms_per_row,
        bytes,
        scaled_search_l: None,
        scan_share: share,
    };
    // The exact distance read with each candidate's row, as the store's
    // join does; the quantized one after it, which orders the candidates.
    let sql = format!(
        "SELECT t.id, vector_distance_cos(t.v, ?1), c.qd FROM \
         (SELECT rowid AS id, vector_distance_cos({f}(v), {f}(?1)) AS qd \
         FROM t INDEXED BY t_scan ORDER BY qd NULLS LAST LIMIT ?2) AS c \
         JOIN t ON t.id = c.id"
    );
    searched(conn, &sql, &built, queries, overfetch).await
}

/// An index built over `rows` in the scratch, as measured.
struct Built<'a> {
    rows: &'a [Vec<f32>],
    build_ms_per_row: f64,
    bytes: f64,
    scaled_search_l: Option<u32>,
    /// A scan's [`Scaled::scan_share`]: its `sql` answers each
    /// candidate's quantized distance in its third column.
    scan_share: Option<f64>,
}

/// Of a search asking for `fetch` candidates, the nearest in quantized
/// distance that a sample holding `share` of the table's rows re-ranks
/// for recall ([`Scaled::scan_share`]): `fetch × √share`, at least [`K`],
/// at most all.
pub(crate) fn scaled_candidates(fetch: usize, share: f64) -> usize {
    ((fetch as f64 * share.clamp(0.0, 1.0).sqrt()).round() as usize).clamp(K.min(fetch), fetch)
}

/// `built` searched with each of `queries` by `sql` (the query vector as
/// `?1`, the candidates asked for as `?2`; the candidates' ids, which
/// index `built.rows`, in its first column), for each over-fetch. Only the
/// search is timed: the store re-ranks the candidates by their exact
/// distance as it reads them, here in Rust after, as the truth recall is
/// measured against is ranked (a scaled scan's nearest candidates in
/// quantized distance only, [`scaled_candidates`]).
async fn searched(
    conn: &libsql::Connection,
    sql: &str,
    built: &Built<'_>,
    queries: &[Vec<f32>],
    overfetch: &[u32],
) -> Result<Vec<Measured>> {
    let ctx = || "measuring a candidate index's searches".to_string();
    let rows = built.rows;
    // The truth does not change with the over-fetch.
    let truths: Vec<Vec<usize>> = queries.iter().map(|q| exact_top(rows, q)).collect();
    let mut out = Vec::new();
    for &f in overfetch {
        let fetch = K * f as usize;
        let reranked = built
            .scan_share
            .map_or(fetch, |share| scaled_candidates(fetch, share));
        let mut total_recall = 0.0;
        let mut searching = Duration::ZERO;
        for (q, truth) in queries.iter().zip(&truths) {
            let began = Instant::now();
            let mut r = conn
                .query(sql, vec![blob(q), Value::Integer(fetch as i64)])
                .await
                .db_context(ctx)?;
            let mut found = Vec::new();
            while let Some(row) = r.next().await.db_context(ctx)? {
                let id = row.get::<i64>(0).db_context(ctx)? as usize;
                let quantized = match built.scan_share {
                    Some(_) => match row.get_value(2).db_context(ctx)? {
                        Value::Real(d) => d,
                        Value::Integer(d) => d as f64,
                        _ => f64::INFINITY,
                    },
                    None => 0.0,
                };
                found.push((quantized, id));
            }
            searching += began.elapsed();
            if reranked < found.len() {
                // Stable: of equal quantized distances, the order read.
                found.sort_by(|a, b| a.0.total_cmp(&b.0));
                found.truncate(reranked);
            }
            // Each candidate's distance once, then ranked.
            let mut ranked: Vec<(f64, usize)> = found
                .into_iter()
                .map(|(_, i)| (cosine_distance(&rows[i], q), i))
                .collect();
            ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
            let found: Vec<usize> = ranked.into_iter().take(K).map(|(_, i)| i).collect();
            total_recall += recall(truth, &found);
        }
        out.push(Measured {
            rows: rows.len() as u64,
            build_ms_per_row: built.build_ms_per_row,
            bytes_per_row: built.bytes / rows.len().max(1) as f64,
            query_ms: searching.as_secs_f64() * 1000.0 / queries.len().max(1) as f64,
            recall: total_recall / queries.len().max(1) as f64,
            scaled_search_l: built.scaled_search_l,
            reranked: (reranked < fetch).then_some(reranked as u32),
        });
    }
    Ok(out)
}

/// Milliseconds per row of an exact search (a scan ranking every row),
/// on rows that store `leading_bytes` before their vector as the table's
/// do: the scan reads them (an `embedding_data` of 4 KiB before each
/// vector made the search 2.6× slower than on bare vectors).
pub(crate) async fn exact_ms_per_row(
    dimension: usize,
    leading_bytes: usize,
    rows: &[Vec<f32>],
    queries: &[Vec<f32>],
) -> Result<f64> {
    let s = scratch::open("the index plan").await?;
    let conn = &s.conn;
    let ctx = || "measuring an exact search".to_string();
    // The columns the store's exact search reads and filters on, in the
    // target tables' order, the bytes before the vector padded to the
    // table's. Its query, not a bare `ORDER BY` of the distance: on 34,876
    // clustered rows of 384 dimensions the store's query took 185–213 ms,
    // the bare one 124–128 ms; 800 scratch rows predicted 99 ms the bare
    // way, 203 ms this way. (That query also filtered on the distance,
    // which SQLite then computed twice; the store's no longer does.)
    conn.execute(
        &format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, embedding_id TEXT, lead TEXT, \
             dimension INTEGER, embedding_vector F32_BLOB({dimension}))"
        ),
        (),
    )
    .await
    .db_context(ctx)?;
    let lead = "x".repeat(leading_bytes.saturating_sub(8));
    conn.execute("BEGIN", ()).await.db_context(ctx)?;
    for (i, v) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO t (id, embedding_id, lead, dimension, embedding_vector) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                Value::Integer(i as i64),
                Value::Text(format!("{i:08}")),
                Value::Text(lead.clone()),
                Value::Integer(dimension as i64),
                blob(v),
            ],
        )
        .await
        .db_context(ctx)?;
    }
    conn.execute("COMMIT", ()).await.db_context(ctx)?;
    let began = Instant::now();
    for q in queries {
        // As the store searches a table exactly (`store/search.rs`).
        let mut r = conn
            .query(
                "SELECT id, embedding_id, vector_distance_cos(embedding_vector, ?1) AS distance \
                 FROM t WHERE embedding_vector IS NOT NULL AND dimension = ?2 \
                 ORDER BY distance NULLS LAST, embedding_id LIMIT 10",
                vec![blob(q), Value::Integer(dimension as i64)],
            )
            .await
            .db_context(ctx)?;
        while r.next().await.db_context(ctx)?.is_some() {}
    }
    let per_query = began.elapsed().as_secs_f64() * 1000.0 / queries.len().max(1) as f64;
    Ok(per_query / rows.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nearest `K` as a full sort of every row ranks them, ties to the
    /// first rows: what [`exact_top`] selected before it stopped sorting.
    fn sorted_top(rows: &[Vec<f32>], q: &[f32]) -> Vec<usize> {
        let mut d: Vec<(f64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (cosine_distance(r, q), i))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d.into_iter().take(K).map(|(_, i)| i).collect()
    }

    #[test]
    fn the_selected_nearest_are_the_sorted_nearest_ties_and_zero_vectors_included() {
        let mut rng = crate::sample::rng::Rng::new(3);
        for n in [0, 1, K - 1, K, K + 1, 300] {
            let mut rows: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..8).map(|_| rng.signed_unit()).collect())
                .collect();
            // Identical vectors (equal distances) and vectors without a
            // direction (ranked last) among them.
            for i in (0..n).step_by(7) {
                rows[i] = rows[0].clone();
            }
            for i in (3..n).step_by(11) {
                rows[i] = vec![0.0; 8];
            }
            for q in 0..5 {
                let query: Vec<f32> = if q == 0 && n > 0 {
                    rows[0].clone()
                } else {
                    (0..8).map(|_| rng.signed_unit()).collect()
                };
                assert_eq!(
                    exact_top(&rows, &query),
                    sorted_top(&rows, &query),
                    "{n} rows, query {q}"
                );
            }
        }
    }

    #[test]
    fn a_scaled_scan_reranks_its_share_of_the_candidates_at_least_k() {
        assert_eq!(scaled_candidates(640, 1.0 / 8.0), 226);
        assert_eq!(scaled_candidates(640, 1.0 / 64.0), 80);
        assert_eq!(scaled_candidates(80, 1.0 / 256.0), K);
        assert_eq!(scaled_candidates(5, 0.01), 5);
        assert_eq!(scaled_candidates(640, 2.0), 640);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_scan_on_an_eighth_of_the_rows_with_its_scaled_candidates_finds_what_the_table_finds()
    {
        let mut rng = crate::sample::rng::Rng::new(5);
        let all: Vec<Vec<f32>> = (0..8_100)
            .map(|_| (0..384).map(|_| rng.signed_unit()).collect())
            .collect();
        let (table, queries) = all.split_at(8_000);
        let sample = &table[..1_000];
        let scan = ScanBits::Float1Bit.options();
        let over = [8, 16, 32, 64];
        let at = |rows, scaled| measure(384, scan, rows, queries, &over, scaled, 0);
        let on_table = at(table, Scaled::default()).await.unwrap();
        let whole = at(sample, Scaled::default()).await.unwrap();
        let share = Scaled {
            search_l: None,
            scan_share: Some(1.0 / 8.0),
        };
        let scaled = at(sample, share).await.unwrap();
        for (i, f) in over.iter().enumerate() {
            let (t, w, s) = (on_table[i].recall, whole[i].recall, scaled[i].recall);
            let fetch = K * *f as usize;
            assert_eq!(whole[i].reranked, None);
            assert_eq!(
                scaled[i].reranked,
                Some(scaled_candidates(fetch, 0.125) as u32)
            );
            // All the candidates among 1,000 rows find more than as many
            // among 8,000; a share of them finds about what the table's
            // find (measured: 0.609, 0.740, 0.873, 0.949 on the table;
            // 0.797, 0.924, 0.985, 0.999 on the sample with all of them,
            // 0.553, 0.711, 0.868, 0.968 with the share).
            assert!(w > t + 0.04, "over-fetch {f}: table {t}, sample {w}");
            assert!(
                (s - t).abs() < 0.08,
                "over-fetch {f}: table {t}, scaled {s}"
            );
            assert!(
                (s - t).abs() < w - t,
                "over-fetch {f}: table {t}, scaled {s}, sample {w}"
            );
        }
    }
}
