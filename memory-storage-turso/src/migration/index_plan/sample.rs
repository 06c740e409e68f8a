//! The planner's sample of a table's vectors: a reservoir filled while the
//! dry run reads every row (with a count of identical vectors), or random
//! rows read from a target table before the index phase.

use std::collections::HashSet;

use libsql::{Connection, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::neighbourhoods::{Neighbourhoods, SEEDS};
use crate::error::{DbContext, Result};
use crate::schema::TargetTable;

/// A uniform sample of at most `capacity` vectors out of `seen`.
#[derive(Debug)]
pub(crate) struct Reservoir {
    pub seen: u64,
    pub vectors: Vec<Vec<f32>>,
    /// Bytes the rows store before their vector (`embedding_id`,
    /// `item_id`, `item_type`, `embedding_data`), summed over the rows
    /// offered or sampled: an exact search reads them to reach each
    /// vector.
    pub leading_bytes: u64,
    /// Rows `leading_bytes` was summed over.
    pub leading_rows: u64,
    /// Whole neighbourhoods of the table, when every row is offered or
    /// scanned.
    pub neighbourhoods: Option<Neighbourhoods>,
    capacity: usize,
    state: u64,
    hashes: HashSet<u64>,
}

impl Reservoir {
    pub fn new(capacity: usize) -> Reservoir {
        Reservoir {
            seen: 0,
            vectors: Vec::new(),
            leading_bytes: 0,
            leading_rows: 0,
            neighbourhoods: None,
            capacity,
            state: 0x2545_F491_4F6C_DD1D,
            hashes: HashSet::new(),
        }
    }

    /// A reservoir offered every row of its table, which also collects the
    /// table's neighbourhoods (as many rows as it keeps), seeded by the
    /// first rows.
    pub fn with_neighbourhoods(capacity: usize) -> Reservoir {
        Reservoir {
            neighbourhoods: Some(Neighbourhoods::first_rows(capacity.div_ceil(SEEDS))),
            ..Reservoir::new(capacity)
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The mean bytes a row stores before its vector.
    pub fn mean_leading_bytes(&self) -> usize {
        (self.leading_bytes / self.leading_rows.max(1)) as usize
    }

    /// Offers one row's vector (its little-endian bytes) and the bytes it
    /// stores before it.
    pub fn offer(&mut self, bytes: &[u8], leading_bytes: usize) {
        self.seen += 1;
        self.leading_bytes += leading_bytes as u64;
        self.leading_rows += 1;
        self.hashes.insert(xxh3_64(bytes));
        if let Some(n) = &mut self.neighbourhoods {
            n.offer(bytes);
        }
        let slot = if self.vectors.len() < self.capacity {
            Some(self.vectors.len())
        } else {
            let j = (self.next() % self.seen) as usize;
            (j < self.capacity).then_some(j)
        };
        if let Some(slot) = slot {
            let v = crate::decode::vector_from_le_bytes(bytes).unwrap_or_default();
            if slot == self.vectors.len() {
                self.vectors.push(v);
            } else {
                self.vectors[slot] = v;
            }
        }
    }

    /// Rows whose vector another row of the table holds too (by a 64-bit
    /// hash of the bytes); 0 when the rows were not all offered (a sample
    /// drawn by [`sample_table`] does not count them).
    pub fn identical(&self) -> u64 {
        if self.hashes.is_empty() {
            return 0;
        }
        self.seen - self.hashes.len() as u64
    }
}

/// Up to `n` random rows' vectors of `table` (rows drawn by rowid), and
/// the table's row count; with `scan`, also its neighbourhoods around
/// some of those rows, found by reading every vector of the table once
/// (not over the network: that is the whole table downloaded).
pub(crate) async fn sample_table(
    conn: &Connection,
    table: TargetTable,
    n: usize,
    scan: bool,
) -> Result<Reservoir> {
    let ctx = || format!("sampling the vectors of {table}");
    let name = table.name();
    let mut r = conn
        .query(
            &format!(
                "SELECT count(*), coalesce(min(rowid), 0), coalesce(max(rowid), 0) FROM {name}"
            ),
            (),
        )
        .await
        .db_context(ctx)?;
    let row = r.next().await.db_context(ctx)?;
    let (rows, lo, hi) = match row {
        Some(row) => (
            row.get::<i64>(0).db_context(ctx)?,
            row.get::<i64>(1).db_context(ctx)?,
            row.get::<i64>(2).db_context(ctx)?,
        ),
        None => (0, 0, 0),
    };
    let mut out = Reservoir::new(n);
    let wanted = n.min(rows.max(0) as usize);
    let mut picked = std::collections::BTreeSet::new();
    let span = (hi - lo + 1).max(1) as u64;
    // Bytes, as stored: length() of text counts characters.
    let bytes = ["embedding_id", "item_id", "item_type", "embedding_data"]
        .map(|c| format!("coalesce(length(CAST({c} AS BLOB)), 0)"))
        .join(" + ");
    // Rowids drawn at random; gaps (deleted rows) are drawn again, a
    // bounded number of times.
    for _ in 0..8 {
        if picked.len() >= wanted {
            break;
        }
        let draws: Vec<i64> = (0..(wanted - picked.len()) * 2)
            .map(|_| lo + (out.next() % span) as i64)
            .filter(|r| !picked.contains(r))
            .collect();
        for chunk in draws.chunks(500) {
            let sql = format!(
                "SELECT rowid, embedding_vector, {bytes} FROM {name} WHERE rowid IN ({}) AND embedding_vector IS NOT NULL",
                vec!["?"; chunk.len()].join(", ")
            );
            let params: Vec<Value> = chunk.iter().map(|r| Value::Integer(*r)).collect();
            let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
            while let Some(row) = rows.next().await.db_context(ctx)? {
                let rowid = row.get::<i64>(0).db_context(ctx)?;
                if picked.len() < wanted && picked.insert(rowid) {
                    if let Value::Blob(b) = row.get_value(1).db_context(ctx)? {
                        out.vectors.extend(crate::decode::vector_from_le_bytes(&b));
                    }
                    if let Value::Integer(n) = row.get_value(2).db_context(ctx)? {
                        out.leading_bytes += n.max(0) as u64;
                        out.leading_rows += 1;
                    }
                }
            }
        }
    }
    out.seen = rows.max(0) as u64;
    if scan {
        // Spread over the sample, whose rows come in rowid order within
        // each draw.
        let seeds = crate::migration::recall::spread(out.vectors.clone(), SEEDS);
        let mut near = Neighbourhoods::seeded(seeds, n.div_ceil(SEEDS));
        let mut all = conn
            .query(
                &format!(
                    "SELECT embedding_vector FROM {name} WHERE embedding_vector IS NOT NULL ORDER BY rowid"
                ),
                (),
            )
            .await
            .db_context(ctx)?;
        while let Some(row) = all.next().await.db_context(ctx)? {
            if let Value::Blob(b) = row.get_value(0).db_context(ctx)? {
                near.offer(&b);
            }
        }
        out.neighbourhoods = Some(near);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservoir_keeps_its_capacity_and_counts_identical_vectors() {
        let mut r = Reservoir::new(50);
        for i in 0..1000u32 {
            // Rows 990..999 repeat rows 0..9.
            let x = (i % 990) as f32;
            r.offer(
                &crate::decode::vector_to_le_bytes(&[x, 1.0]),
                100 + 200 * (i % 2) as usize,
            );
        }
        // Every row's leading bytes count, kept in the sample or not.
        assert_eq!(r.mean_leading_bytes(), 200);
        assert_eq!(r.seen, 1000);
        assert_eq!(r.vectors.len(), 50);
        assert_eq!(r.identical(), 10);
        // Uniform: the kept rows come from the whole range, not its start.
        assert!(r.vectors.iter().any(|v| v[0] > 500.0));
        assert_eq!(Reservoir::new(5).identical(), 0);
    }

    #[tokio::test]
    async fn a_sampled_rows_leading_bytes_are_bytes_not_characters() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        conn.execute(TargetTable::D384.create_table_sql(), ())
            .await
            .unwrap();
        // "é" is one character and two bytes; the payload is a blob.
        conn.execute(
            "INSERT INTO embeddings_384 (embedding_id, item_id, item_type, embedding_data, embedding_vector, model) \
             VALUES ('éé', 'é', 't', ?1, ?2, 'm')",
            vec![
                Value::Blob(vec![7u8; 10]),
                Value::Blob(crate::decode::vector_to_le_bytes(&[0.5f32; 384])),
            ],
        )
        .await
        .unwrap();
        let sample = sample_table(&conn, TargetTable::D384, 10, false)
            .await
            .unwrap();
        assert_eq!(sample.vectors.len(), 1);
        assert_eq!(sample.mean_leading_bytes(), 4 + 2 + 1 + 10);
    }
}
