//! The floor: the design's row-at-a-time approach. Every row read with
//! `SELECT *`, its JSON parsed into `Vec<f32>`, written back as decimal text
//! through `vector32(?)`, one autocommitted `INSERT OR REPLACE` per row.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use libsql::Value;
use memory_storage_turso::schema::{create_target_tables, route};

use crate::legacy;

/// What the floor did, and how fast.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    /// Rows inserted (the plain ones among those read).
    pub rows: u64,
    /// Rows read but skipped because their payload is compressed.
    pub skipped_compressed: u64,
    pub seconds: f64,
}

/// The vector as the design wrote it: decimal text, `[0.1,0.2,…]`.
pub fn vector_text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Runs the floor over the first `limit` rows of the legacy database at
/// `path` (a copy: it is written to).
pub async fn run(path: &Path, limit: usize) -> Result<Floor> {
    let (_db, conn) = legacy::open(path).await?;
    create_target_tables(&conn)
        .await
        .context("creating the target tables for the floor")?;
    let mut floor = Floor::default();
    let began = Instant::now();
    let mut rows = conn
        .query("SELECT * FROM embeddings LIMIT ?1", [limit as i64])
        .await
        .context("reading the legacy rows for the floor")?;
    let column = |name: &str| {
        (0..rows.column_count())
            .find(|&i| rows.column_name(i) == Some(name))
            .ok_or_else(|| anyhow!("the legacy table has no column {name}"))
    };
    let cols = [
        column("embedding_id")?,
        column("item_id")?,
        column("item_type")?,
        column("embedding_data")?,
        column("dimension")?,
        column("model")?,
        column("created_at")?,
    ];
    while let Some(row) = rows.next().await.context("reading a legacy row")? {
        let values = cols
            .iter()
            .map(|&i| row.get_value(i))
            .collect::<libsql::Result<Vec<Value>>>()
            .context("reading a legacy row's columns")?;
        let Value::Text(data) = &values[3] else {
            continue;
        };
        if data.starts_with("__compressed__:") {
            floor.skipped_compressed += 1;
            continue;
        }
        let vector: Vec<f32> = serde_json::from_str(data).context("parsing embedding_data")?;
        let table = route(vector.len());
        let sql = format!(
            "INSERT OR REPLACE INTO {table} (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
             VALUES (?1, ?2, ?3, ?4, vector32(?5), ?6, ?7, ?8)"
        );
        let [id, item, kind, data, dimension, model, created] =
            <[Value; 7]>::try_from(values).map_err(|_| anyhow!("seven columns expected"))?;
        let params = vec![
            id,
            item,
            kind,
            data,
            Value::Text(vector_text(&vector)),
            dimension,
            model,
            created,
        ];
        conn.execute(&sql, params)
            .await
            .with_context(|| format!("floor insert into {table}"))?;
        floor.rows += 1;
    }
    floor.seconds = began.elapsed().as_secs_f64();
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_written_as_shortest_decimal_text() {
        assert_eq!(vector_text(&[0.5, -1.0, 0.1]), "[0.5,-1,0.1]");
        assert_eq!(vector_text(&[]), "[]");
    }
}
