//! Time estimates for the dry run, from rates measured on this machine:
//! the plan's own read and decode rate, a sample of the real rows written
//! through the real writer into a scratch database, and DiskANN inserts
//! timed per native dimension.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libsql::Value;

use super::compare::ValidRow;
use super::error::Result;
use super::write::BatchWriter;
use crate::error::DbContext;
use crate::schema::{create_target_tables, create_vector_index, TargetTable};

/// Rows kept from the plan for the write measurement.
pub const SAMPLE_ROWS: usize = 256;

/// The bytes a table of `record_bytes` of records takes: B-tree pages are
/// not full, and measured growth is about 15% above the bytes of the
/// records (100,000 mixed rows: 1.15 GiB for 1.0 GiB).
pub(crate) fn with_page_fill(record_bytes: u64) -> u64 {
    record_bytes + record_bytes * 3 / 20
}

/// How long the DiskANN measurement may take per native table.
const INDEX_BUDGET: Duration = Duration::from_millis(400);

async fn scratch() -> Result<super::scratch::Scratch> {
    Ok(super::scratch::open("the estimate").await?)
}

/// Seconds per row to write `sample` through the real batch writer.
pub async fn write_seconds_per_row(sample: Vec<ValidRow>) -> Result<Option<f64>> {
    if sample.is_empty() {
        return Ok(None);
    }
    let s = scratch().await?;
    create_target_tables(&s.conn).await?;
    let n = sample.len();
    let mut writer = BatchWriter::new(&s.conn);
    let began = Instant::now();
    let mut rows = sample.into_iter().peekable();
    while rows.peek().is_some() {
        writer.begin().await?;
        for v in rows.by_ref().take(64) {
            writer.upsert(v.table, v.row, v.vector).await?;
        }
        writer.commit().await?;
    }
    Ok(Some(began.elapsed().as_secs_f64() / n as f64))
}

fn random_vector(dim: usize, seed: &mut u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(dim * 4);
    for _ in 0..dim {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Estimated seconds to build the DiskANN index of each native table that
/// will receive `rows[table]` rows: inserts into an indexed scratch table
/// are timed for a short budget, and the per-row cost is scaled by how
/// DiskANN's search grows (logarithmically with the table).
pub async fn index_seconds(rows: &BTreeMap<TargetTable, u64>) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (&table, &n) in rows {
        let Some(dim) = table.native_dimension() else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let s = scratch().await?;
        s.conn
            .execute(table.create_table_sql(), ())
            .await
            .db_context(|| format!("creating a scratch {table}"))?;
        create_vector_index(&s.conn, table).await?;
        let insert = format!(
            "INSERT INTO {} (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model) VALUES (?1, 'i', 't', '[]', ?2, {dim}, 'm')",
            table.name()
        );
        let mut seed = dim as u64;
        let began = Instant::now();
        let mut done = 0u64;
        while began.elapsed() < INDEX_BUDGET && done < n {
            s.conn
                .execute(
                    &insert,
                    vec![
                        Value::Text(format!("e{done}")),
                        Value::Blob(random_vector(dim, &mut seed)),
                    ],
                )
                .await
                .db_context(|| format!("timing DiskANN inserts into {table}"))?;
            done += 1;
        }
        let per_row = began.elapsed().as_secs_f64() / done.max(1) as f64;
        let growth = ((n as f64).ln() / (done.max(2) as f64).ln()).max(1.0);
        out.insert(table.name().to_string(), per_row * n as f64 * growth);
    }
    Ok(out)
}
