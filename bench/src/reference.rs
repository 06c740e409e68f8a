//! The reference: libSQL copying the rows itself, one `INSERT … SELECT` per
//! target table, with `vector32()` turning the JSON text into the vector.
//! It cannot decode compressed payloads, so it copies only the plain rows.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use memory_storage_turso::schema::{create_target_tables, TargetTable, NATIVE_DIMENSIONS};

use crate::legacy;

/// What the reference copied, and how fast.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Rows copied, all tables.
    pub rows: u64,
    /// Seconds of the copy transactions (table creation excluded).
    pub seconds: f64,
}

/// The `INSERT … SELECT` that fills `table` from the legacy table.
pub fn insert_select_sql(table: TargetTable) -> String {
    let filter = match table.native_dimension() {
        Some(n) => format!("dimension = {n}"),
        None => {
            let natives: Vec<String> = NATIVE_DIMENSIONS.iter().map(|n| n.to_string()).collect();
            format!("dimension NOT IN ({})", natives.join(","))
        }
    };
    format!(
        "INSERT INTO {table} (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
         SELECT embedding_id, item_id, item_type, embedding_data, vector32(embedding_data), dimension, model, created_at \
         FROM embeddings WHERE {filter} AND embedding_data NOT LIKE {}",
        legacy::COMPRESSED_LIKE
    )
}

/// Runs the reference copy on the legacy database at `path` (a copy: it is written to).
pub async fn run(path: &Path) -> Result<Reference> {
    let (_db, conn) = legacy::open(path).await?;
    create_target_tables(&conn)
        .await
        .context("creating the target tables for the reference")?;
    let mut result = Reference::default();
    let began = Instant::now();
    for table in TargetTable::ALL {
        let sql = insert_select_sql(table);
        conn.execute("BEGIN", ()).await.context("BEGIN")?;
        let rows = conn
            .execute(&sql, ())
            .await
            .with_context(|| format!("reference copy into {table}"))?;
        conn.execute("COMMIT", ())
            .await
            .with_context(|| format!("committing the reference copy into {table}"))?;
        result.rows += rows;
    }
    result.seconds = began.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_sql_is_the_one_of_the_brief() {
        assert_eq!(
            insert_select_sql(TargetTable::D384),
            "INSERT INTO embeddings_384 (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
             SELECT embedding_id, item_id, item_type, embedding_data, vector32(embedding_data), dimension, model, created_at \
             FROM embeddings WHERE dimension = 384 AND embedding_data NOT LIKE '\\_\\_compressed\\_\\_:%' ESCAPE '\\'"
        );
        assert!(insert_select_sql(TargetTable::Other)
            .contains("FROM embeddings WHERE dimension NOT IN (384,1024,1536,3072) AND"));
    }
}
