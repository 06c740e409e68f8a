//! `find_similar`: the native DiskANN index through `vector_top_k` where it
//! exists, brute force with `vector_distance_cos` elsewhere, and — during a
//! transition — the legacy rows not migrated yet, decoded and ranked here.
//!
//! Both database paths run in two phases: first the candidates' `rowid`,
//! key, `item_type` and distance only, then the full rows of the (at most
//! `k`) survivors, so a search never reads the vectors and payloads of rows
//! it drops.

use std::collections::HashMap;

use libsql::{Connection, Value};

use super::rows::{from_legacy, from_target, read_row, select_sql, select_target_sql};
use super::transition::{absent_from, legacy};
use super::twins;
use super::types::{Embedding, SimilarEmbedding, Source};
use crate::decode::vector_to_le_bytes;
use crate::error::{DbContext, Error, Result};
use crate::schema::{route, ScanBits, TargetTable, LEGACY_TABLE};
use crate::search_plan::TableSearch;

/// With an `item_type` filter the index is first asked for this many times
/// `k` candidates (at least `k + OVERFETCH_MIN`). When fewer than `k`
/// survive the filter and the index has more, the next round asks for
/// enough to expect `2k` survivors at the share that survived so far
/// (between 2× and 16× more candidates).
pub const OVERFETCH: usize = 8;
/// Smallest over-fetch margin with a filter.
pub const OVERFETCH_MIN: usize = 16;
/// Past this many candidates a filtered search scans the table instead: a
/// rare `item_type` is found faster, and exactly, by brute force. It does
/// so too when the index returns fewer candidates than asked.
pub const MAX_INDEX_CANDIDATES: usize = 4096;

/// What to search for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'q> {
    pub vector: &'q [f32],
    pub item_type: Option<&'q str>,
    pub k: usize,
    pub min_similarity: Option<f32>,
}

impl Query<'_> {
    fn check(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidQuery(m));
        if self.vector.is_empty() {
            return invalid("the query vector is empty".into());
        }
        if let Some(i) = self.vector.iter().position(|x| !x.is_finite()) {
            return invalid(format!(
                "element {i} of the query vector is NaN or infinite"
            ));
        }
        if self.vector.iter().all(|x| *x == 0.0) {
            return invalid("the query vector is all zeros: it has no cosine similarity".into());
        }
        if self.min_similarity.is_some_and(|m| !m.is_finite()) {
            return invalid("min_similarity must be a finite number".into());
        }
        Ok(())
    }

    /// Largest cosine distance a hit may have.
    fn max_distance(&self) -> f64 {
        self.min_similarity
            .map_or(f64::INFINITY, |m| 1.0 - f64::from(m))
    }

    fn keeps(&self, item_type: &Value, distance: f64) -> bool {
        let type_ok = match self.item_type {
            Some(want) => matches!(item_type, Value::Text(t) if t == want),
            None => true,
        };
        type_ok && distance <= self.max_distance()
    }
}

/// A candidate of the first phase.
#[derive(Debug, Clone)]
struct Candidate {
    rowid: i64,
    embedding_id: Value,
    item_type: Value,
    distance: f64,
}

fn by_distance(a: &(f64, String), b: &(f64, String)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1))
}

fn key_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => crate::decode::row::Key(other.clone()).to_string(),
    }
}

async fn candidates(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<Candidate>> {
    let ctx = || "searching for similar embeddings".to_string();
    let mut rows = conn.query(sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let distance = match row.get_value(3).db_context(ctx)? {
            Value::Real(d) => d,
            Value::Integer(d) => d as f64,
            _ => continue, // NULL: a zero vector has no cosine distance
        };
        out.push(Candidate {
            rowid: row.get::<i64>(0).db_context(ctx)?,
            embedding_id: row.get_value(1).db_context(ctx)?,
            item_type: row.get_value(2).db_context(ctx)?,
            distance,
        });
    }
    Ok(out)
}

/// Whether `table` has its quantized scan index of `bits` (an object of
/// that name that is anything else is a user's, and never searched
/// through).
pub(crate) async fn has_scan_index(
    conn: &Connection,
    table: TargetTable,
    bits: ScanBits,
) -> Result<bool> {
    Ok(crate::scan_index::state(conn, table, bits).await? == crate::scan_index::ScanIndex::Present)
}

/// Whether `table` has its DiskANN index (on the table itself, not on the
/// twin of a vector-index build in progress).
pub(crate) async fn has_vector_index(conn: &Connection, table: TargetTable) -> Result<bool> {
    match table.vector_index_name() {
        Some(index) => crate::db::index_is_on(conn, index, table.name()).await,
        None => Ok(false),
    }
}

/// Rows per `rowid IN (…)` read of the hits.
const ROWS_PER_FETCH: usize = 500;

/// How a table is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SearchMethod {
    /// `vector_top_k` over this DiskANN index.
    VectorIndex(&'static str),
    /// A scan of this quantized index: the nearest by quantized distance,
    /// re-ranked exactly.
    ScanIndex(&'static str),
    /// `vector_distance_cos` over every row of the query's dimension.
    Scan,
}

/// How `table` is searched now: as the migration's search plan says
/// (exactly, or through the index with an over-fetch), else through its
/// index when it has one. Returns the method and the over-fetch.
pub(crate) async fn method(conn: &Connection, table: TargetTable) -> Result<(SearchMethod, usize)> {
    let planned = crate::search_plan::read(conn).await?.remove(&table);
    if planned == Some(TableSearch::Exact) {
        return Ok((SearchMethod::Scan, 1));
    }
    let overfetch = planned.as_ref().map_or(1, |p| p.fetch(1));
    if let Some(TableSearch::Scan { bits, .. }) = planned {
        // Without its index (not built, or dropped), exactly.
        return Ok(match table.scan_index_name(bits) {
            Some(name) if has_scan_index(conn, table, bits).await? => {
                (SearchMethod::ScanIndex(name), overfetch)
            }
            _ => (SearchMethod::Scan, 1),
        });
    }
    Ok(match table.vector_index_name() {
        Some(name) if has_vector_index(conn, table).await? => {
            (SearchMethod::VectorIndex(name), overfetch)
        }
        _ => (SearchMethod::Scan, 1),
    })
}

/// Candidates from the index: `fetch` nearest by DiskANN (or by quantized
/// distance through a scan index), exact distances.
async fn index_candidates(
    conn: &Connection,
    table: TargetTable,
    method: SearchMethod,
    query: &[u8],
    fetch: usize,
) -> Result<Vec<Candidate>> {
    let nearest = match method {
        SearchMethod::VectorIndex(index) => format!("vector_top_k('{index}', vector32(?1), ?2)"),
        // The distance in `ORDER BY` only: the index holds that
        // expression, so the scan reads the index and never the rows.
        SearchMethod::ScanIndex(index) => {
            let bits = ScanBits::ALL
                .into_iter()
                .find(|b| table.scan_index_name(*b) == Some(index));
            match bits.and_then(|b| table.scan_nearest_sql(b, "?1", "?2")) {
                Some(sql) => sql,
                None => return Ok(Vec::new()),
            }
        }
        SearchMethod::Scan => return Ok(Vec::new()),
    };
    let sql = format!(
        "SELECT t.rowid, t.embedding_id, t.item_type, \
         vector_distance_cos(t.embedding_vector, vector32(?1)) \
         FROM {nearest} AS v \
         JOIN {} AS t ON t.rowid = v.id",
        table.name()
    );
    candidates(
        conn,
        &sql,
        vec![Value::Blob(query.to_vec()), Value::Integer(fetch as i64)],
    )
    .await
}

/// The rows of `table` that hold a vector identical to one deleted from
/// it, which the index may no longer reach (see [`twins`]), exactly.
async fn twin_candidates(
    conn: &Connection,
    table: TargetTable,
    query: &[u8],
) -> Result<Vec<Candidate>> {
    let keys = twins::listed(conn, table).await?;
    let mut out = Vec::new();
    for chunk in keys.chunks(ROWS_PER_FETCH) {
        let sql = format!(
            "SELECT rowid, embedding_id, item_type, \
             vector_distance_cos(embedding_vector, vector32(?1)) \
             FROM {} WHERE embedding_vector IS NOT NULL AND embedding_id IN ({})",
            table.name(),
            vec!["?"; chunk.len()].join(", ")
        );
        let mut params = vec![Value::Blob(query.to_vec())];
        params.extend(chunk.iter().map(|k| Value::Text(k.clone())));
        out.extend(candidates(conn, &sql, params).await?);
    }
    Ok(out)
}

/// Candidates by brute force: every row of the query's dimension (and
/// type), ranked by `vector_distance_cos`, the best `k` kept.
///
/// The distance is named only in the ranking: SQLite computes an alias
/// named in `WHERE` once more there. So a vector cosine search cannot rank
/// (a zero vector's distance is NULL) sorts last and is dropped here, as
/// is a hit past `min_similarity`: the best `k` by distance, less those,
/// are the best `k` that pass. On 34,876 rows of 384 dimensions, 30
/// queries three times over: 120 ms a query against 147 ms with the
/// distance filtered in `WHERE`.
async fn scan_candidates(
    conn: &Connection,
    table: TargetTable,
    query: &Query<'_>,
    bytes: &[u8],
) -> Result<Vec<Candidate>> {
    let mut params = vec![
        Value::Blob(bytes.to_vec()),
        Value::Integer(query.vector.len() as i64),
        Value::Integer(query.k as i64),
    ];
    let mut filter = String::new();
    if let Some(t) = query.item_type {
        filter.push_str(" AND item_type = ?4");
        params.push(Value::Text(t.to_string()));
    }
    let sql = format!(
        "SELECT rowid, embedding_id, item_type, \
         vector_distance_cos(embedding_vector, vector32(?1)) AS distance \
         FROM {} WHERE embedding_vector IS NOT NULL AND dimension = ?2{filter} \
         ORDER BY distance NULLS LAST, embedding_id LIMIT ?3",
        table.name()
    );
    let mut found = candidates(conn, &sql, params).await?;
    found.retain(|c| c.distance <= query.max_distance());
    Ok(found)
}

/// The surviving candidates of `table`, best first, at most `k`: through
/// the index with adaptive over-fetch, or by brute force.
async fn table_candidates(
    conn: &Connection,
    table: TargetTable,
    query: &Query<'_>,
) -> Result<Vec<Candidate>> {
    let bytes = vector_to_le_bytes(query.vector);
    let (via, overfetch) = match method(conn, table).await? {
        (SearchMethod::Scan, _) => return scan_candidates(conn, table, query, &bytes).await,
        found => found,
    };
    // The plan's over-fetch: candidates the exact distances re-rank.
    let mut fetch = match query.item_type {
        Some(_) => (query.k * OVERFETCH.max(overfetch)).max(query.k + OVERFETCH_MIN),
        None => query.k * overfetch,
    };
    // libsql#2197 is DiskANN's: an ordinary index loses no row.
    let twins = match via {
        SearchMethod::VectorIndex(_) => twin_candidates(conn, table, &bytes).await?,
        _ => Vec::new(),
    };
    loop {
        let mut found = index_candidates(conn, table, via, &bytes, fetch).await?;
        let ran_out = found.len() < fetch;
        for t in &twins {
            if found.iter().all(|c| c.rowid != t.rowid) {
                found.push(t.clone());
            }
        }
        let farthest = found.iter().map(|c| c.distance).fold(0.0, f64::max);
        let mut kept: Vec<Candidate> = found
            .into_iter()
            .filter(|c| query.keeps(&c.item_type, c.distance))
            .collect();
        let done =
            kept.len() >= query.k || query.item_type.is_none() || farthest > query.max_distance();
        if done {
            kept.sort_by(|a, b| {
                by_distance(
                    &(a.distance, key_text(&a.embedding_id)),
                    &(b.distance, key_text(&b.embedding_id)),
                )
            });
            kept.truncate(query.k);
            return Ok(kept);
        }
        // Too few survived the filter. An index that returned fewer
        // candidates than asked has no more to give (DiskANN may not reach
        // every row even then): the table is small next to `fetch`, so a
        // scan is cheap, and exact.
        fetch = next_fetch(fetch, kept.len(), query.k);
        if ran_out || fetch > MAX_INDEX_CANDIDATES {
            return scan_candidates(conn, table, query, &bytes).await;
        }
    }
}

/// The candidates to ask for after `fetch` gave only `kept` survivors.
fn next_fetch(fetch: usize, kept: usize, k: usize) -> usize {
    let factor = (2 * k).div_ceil(kept.max(1)).clamp(2, 16);
    fetch.saturating_mul(factor)
}

/// The full rows of the candidates, in the candidates' order.
async fn fetch_rows(
    conn: &Connection,
    table: TargetTable,
    found: Vec<Candidate>,
) -> Result<Vec<SimilarEmbedding>> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let ctx = || format!("reading search hits from {table}");
    let mut by_rowid: HashMap<i64, Embedding> = HashMap::new();
    for chunk in found.chunks(ROWS_PER_FETCH) {
        let sql = format!(
            "SELECT {} FROM {} WHERE rowid IN ({})",
            select_target_sql("rowid"),
            table.name(),
            vec!["?"; chunk.len()].join(", ")
        );
        let params: Vec<Value> = chunk.iter().map(|c| Value::Integer(c.rowid)).collect();
        let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
        while let Some(row) = rows.next().await.db_context(ctx)? {
            let rowid = row.get::<i64>(9).db_context(ctx)?;
            by_rowid.insert(rowid, from_target(read_row(&row, table.name())?, table)?);
        }
    }
    Ok(found
        .into_iter()
        .filter_map(|c| {
            // A row deleted (or replaced under a new rowid) between the two
            // steps is simply not a hit.
            let embedding = by_rowid
                .remove(&c.rowid)
                .filter(|e| e.embedding_id == key_text(&c.embedding_id))?;
            Some(SimilarEmbedding {
                embedding,
                similarity: 1.0 - c.distance,
                source: Source::Table(table),
            })
        })
        .collect())
}

/// Legacy rows of the query's dimension that no per-dimension table holds,
/// ranked here. Rows the migration would quarantine are skipped.
async fn legacy_hits(conn: &Connection, query: &Query<'_>) -> Result<Vec<SimilarEmbedding>> {
    let Some(legacy) = legacy(conn).await? else {
        return Ok(Vec::new());
    };
    let mut params = vec![Value::Integer(query.vector.len() as i64)];
    let mut filter = String::new();
    if let Some(t) = query.item_type {
        filter.push_str(" AND e.item_type = ?2");
        params.push(Value::Text(t.to_string()));
    }
    let sql = format!(
        "SELECT {} FROM {LEGACY_TABLE} AS e WHERE e.dimension = ?1{filter} AND {}",
        select_sql(legacy.vector_col, ""),
        absent_from(&TargetTable::ALL)
    );
    let ctx = || format!("searching the rows of {LEGACY_TABLE} not migrated yet");
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut hits = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let Ok(embedding) = from_legacy(read_row(&row, LEGACY_TABLE)?) else {
            continue;
        };
        let Some(distance) = crate::decode::cosine_distance(&embedding.vector, query.vector) else {
            continue;
        };
        if distance <= query.max_distance() {
            hits.push(SimilarEmbedding {
                embedding,
                similarity: 1.0 - distance,
                source: Source::Legacy,
            });
        }
    }
    Ok(hits)
}

/// The `k` stored embeddings most similar to the query, best first.
pub(crate) async fn find_similar(
    conn: &Connection,
    query: &Query<'_>,
    include_legacy: bool,
) -> Result<Vec<SimilarEmbedding>> {
    query.check()?;
    if query.k == 0 {
        return Ok(Vec::new());
    }
    let table = route(query.vector.len());
    let found = table_candidates(conn, table, query).await?;
    let mut hits = fetch_rows(conn, table, found).await?;
    if include_legacy {
        hits.extend(legacy_hits(conn, query).await?);
        hits.sort_by(|a, b| {
            by_distance(
                &(1.0 - a.similarity, a.embedding.embedding_id.clone()),
                &(1.0 - b.similarity, b.embedding.embedding_id.clone()),
            )
        });
        hits.truncate(query.k);
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_fetch_grows_with_the_share_filtered_out() {
        assert_eq!(next_fetch(80, 5, 10), 320); // a 16th survived: 4×
        assert_eq!(next_fetch(80, 9, 10), 240); // just short: at least 2×… 3×
        assert_eq!(next_fetch(80, 0, 10), 1280); // none: 16×
        assert_eq!(next_fetch(80, 1, 1), 160);
    }

    #[test]
    fn bad_queries_are_refused() {
        let q = |v: &'static [f32]| Query {
            vector: v,
            item_type: None,
            k: 3,
            min_similarity: None,
        };
        for v in [&[][..], &[0.0, 0.0][..], &[1.0, f32::NAN][..]] {
            assert!(matches!(q(v).check(), Err(Error::InvalidQuery(_))), "{v:?}");
        }
        assert!(q(&[1.0, 0.0]).check().is_ok());
    }
}
