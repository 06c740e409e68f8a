//! How each native table is searched, as the migration planned it and
//! recorded it in `metadata`: exactly (no index: a scan is fast enough),
//! or through its DiskANN index with an over-fetch that the exact distances
//! re-rank. The store reads it on every search; the migration writes it.

use std::collections::BTreeMap;

use libsql::Connection;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::migration::metadata;
use crate::schema::{ScanBits, TargetTable};

/// The `metadata` key holding the plan (JSON: table name → [`TableSearch`]).
pub const SEARCH_PLAN_KEY: &str = "embeddings_migration.search_plan";

/// How one table is searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum TableSearch {
    /// No vector index: every row of the query's dimension is ranked.
    Exact,
    /// The table's DiskANN index, asked for `overfetch` × k candidates,
    /// which exact distances re-rank.
    Index {
        /// The index's options, as given to `libsql_vector_idx`.
        options: String,
        overfetch: u32,
        /// recall@10 the plan predicted at the table's size (`None` for
        /// options that were given, not measured).
        planned_recall: Option<f64>,
        /// recall@10 measured on the built index, held-out rows as queries
        /// (`None` until measured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        measured_recall: Option<f64>,
    },
    /// The table's quantized scan index (`idx_embeddings_N_scan`, or
    /// `…_scan1bit`): the `overfetch` × k rows nearest by quantized
    /// distance, which exact distances re-rank.
    Scan {
        overfetch: u32,
        /// How the index quantizes (8 bits where a plan recorded before
        /// 1-bit scans existed says nothing).
        #[serde(default)]
        bits: ScanBits,
        /// recall@10 the plan predicted at the table's size.
        planned_recall: Option<f64>,
        /// recall@10 measured on the built index (`None` until measured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        measured_recall: Option<f64>,
    },
}

impl TableSearch {
    /// The scan index searched through, if this is a scan.
    pub fn scan_bits(&self) -> Option<ScanBits> {
        match self {
            TableSearch::Scan { bits, .. } => Some(*bits),
            _ => None,
        }
    }

    /// The candidates to ask the index for, for `k` hits.
    pub fn fetch(&self, k: usize) -> usize {
        match self {
            TableSearch::Exact => k,
            TableSearch::Index { overfetch, .. } | TableSearch::Scan { overfetch, .. } => {
                k * (*overfetch).max(1) as usize
            }
        }
    }
}

/// The recorded plan; empty when none was recorded (every index is then
/// searched with an over-fetch of one).
pub async fn read(conn: &Connection) -> Result<BTreeMap<TargetTable, TableSearch>> {
    let Some(text) = metadata::get(conn, SEARCH_PLAN_KEY).await? else {
        return Ok(BTreeMap::new());
    };
    let by_name: BTreeMap<String, TableSearch> = serde_json::from_str(&text).unwrap_or_default();
    Ok(TargetTable::ALL
        .into_iter()
        .filter_map(|t| by_name.get(t.name()).map(|s| (t, s.clone())))
        .collect())
}

/// Records `plan` (inside the caller's transaction, if any).
pub async fn write(conn: &Connection, plan: &BTreeMap<TargetTable, TableSearch>) -> Result<()> {
    let by_name: BTreeMap<&str, &TableSearch> = plan.iter().map(|(t, s)| (t.name(), s)).collect();
    metadata::set(
        conn,
        SEARCH_PLAN_KEY,
        &serde_json::to_string(&by_name).unwrap_or_default(),
    )
    .await
}
