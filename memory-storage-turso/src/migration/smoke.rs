//! The search smoke test that ends a verification: for a sample of rows in
//! each native table with a vector index, a search with the row's own
//! vector (the index's top 10, ranked by exact cosine distance, as the store
//! searches) must return that row first (or one with a bit-identical
//! vector). It proves the indexes answer, not just that they exist.

use libsql::{Connection, Value};
use serde::Serialize;

use crate::error::{DbContext, Result};
use crate::schema::{object_exists, TargetTable};

/// Rows sampled per table.
pub const SAMPLE: usize = 16;
/// Candidates asked of the index per search.
const CANDIDATES: usize = 10;

/// The smoke test of one table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SearchCheck {
    pub table: String,
    /// Rows searched for.
    pub sampled: u64,
    /// Searches whose first hit was the row itself (or an identical vector).
    pub found_first: u64,
    /// The embedding_ids whose search did not find them first.
    pub missed: Vec<String>,
}

/// Share of the sampled rows that must come back first. The index is
/// approximate, and lossy options (`compress_neighbors`, few neighbours)
/// make it miss now and then; a broken index (empty, on the wrong column,
/// a failed swap) misses nearly every row.
pub const MIN_FOUND_SHARE: f64 = 0.8;

impl SearchCheck {
    /// Every sampled row came back first.
    pub fn all_found(&self) -> bool {
        self.found_first == self.sampled
    }

    /// Enough sampled rows came back first for the index to be working.
    pub fn passed(&self) -> bool {
        self.sampled == 0 || self.found_first as f64 >= MIN_FOUND_SHARE * self.sampled as f64
    }
}

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

/// Up to `SAMPLE` rows spread evenly over the table's rowids.
async fn sample(conn: &Connection, table: TargetTable) -> Result<Vec<(Value, Vec<u8>)>> {
    let name = table.name();
    let ctx = || format!("sampling {name} for the search smoke test");
    let sql = format!(
        "WITH n AS (SELECT count(*) AS c FROM {name}) \
         SELECT embedding_id, embedding_vector FROM {name}, n \
         WHERE embedding_vector IS NOT NULL AND rowid % max(1, n.c / ?1) = 0 LIMIT ?1"
    );
    let mut rows = conn.query(&sql, [SAMPLE as i64]).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        if let Value::Blob(v) = row.get_value(1).db_context(ctx)? {
            out.push((row.get_value(0).db_context(ctx)?, v));
        }
    }
    Ok(out)
}

async fn check_table(conn: &Connection, table: TargetTable, index: &str) -> Result<SearchCheck> {
    let name = table.name();
    let ctx = || format!("searching {index} in the search smoke test");
    // As the store searches: the index's candidates, ranked by exact cosine
    // distance (with compressed neighbours the index's own order is only
    // approximate).
    let sql = format!(
        "SELECT t.embedding_id, t.embedding_vector FROM vector_top_k('{index}', ?1, {CANDIDATES}) AS v \
         JOIN {name} AS t ON t.rowid = v.id \
         ORDER BY vector_distance_cos(t.embedding_vector, ?1) LIMIT 1"
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
        let found = match hits.next().await.db_context(ctx)? {
            Some(hit) => {
                hit.get_value(0).db_context(ctx)? == id
                    || hit.get_value(1).db_context(ctx)? == Value::Blob(vector)
            }
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
}
