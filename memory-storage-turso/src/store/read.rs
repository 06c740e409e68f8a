//! Reading by key and by item: the per-dimension tables first, then, for
//! rows not migrated yet, the legacy table.

use libsql::{Connection, Value};

use super::rows::{from_legacy, from_target, read_row, select_sql, select_target_sql};
use super::transition::{absent_from, legacy};
use super::types::{Source, StoredEmbedding};
use crate::error::{DbContext, Result};
use crate::schema::{TargetTable, LEGACY_TABLE};

/// One `SELECT` over every per-dimension table, `UNION ALL`, each row
/// tagged with its table's position in [`TargetTable::ALL`].
fn union_sql(filter: &str) -> String {
    TargetTable::ALL
        .iter()
        .enumerate()
        .map(|(slot, t)| {
            format!(
                "SELECT {}, {slot} FROM {} WHERE {filter}",
                select_target_sql(""),
                t.name()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

async fn targets(
    conn: &Connection,
    filter: &str,
    params: Vec<Value>,
) -> Result<Vec<StoredEmbedding>> {
    let ctx = || "reading embeddings".to_string();
    let mut rows = conn
        .query(&union_sql(filter), params)
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let slot = row.get::<i64>(9).db_context(ctx)?;
        let table = usize::try_from(slot)
            .ok()
            .and_then(|i| TargetTable::ALL.get(i).copied())
            .unwrap_or(TargetTable::Other);
        let embedding = from_target(read_row(&row, table.name())?, table)?;
        out.push(StoredEmbedding {
            embedding,
            source: Source::Table(table),
        });
    }
    Ok(out)
}

async fn legacy_rows(
    conn: &Connection,
    filter: &str,
    params: Vec<Value>,
) -> Result<Vec<StoredEmbedding>> {
    let Some(legacy) = legacy(conn).await? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {} FROM {LEGACY_TABLE} AS e WHERE {filter} AND {}",
        select_sql(legacy.vector_col, ""),
        absent_from(&TargetTable::ALL)
    );
    let ctx = || format!("reading embeddings from {LEGACY_TABLE}");
    let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(StoredEmbedding {
            embedding: from_legacy(read_row(&row, LEGACY_TABLE)?)?,
            source: Source::Legacy,
        });
    }
    Ok(out)
}

/// The embedding stored under `embedding_id`, wherever it is.
pub(crate) async fn get_by_id(
    conn: &Connection,
    embedding_id: &str,
) -> Result<Option<StoredEmbedding>> {
    let key = || vec![Value::Text(embedding_id.to_string())];
    if let Some(found) = targets(conn, "embedding_id = ?1", key())
        .await?
        .into_iter()
        .next()
    {
        return Ok(Some(found));
    }
    Ok(legacy_rows(conn, "e.embedding_id = ?1", key())
        .await?
        .into_iter()
        .next())
}

/// Every embedding of an item, oldest first (then by key).
pub(crate) async fn get_by_item(
    conn: &Connection,
    item_id: &str,
    item_type: &str,
) -> Result<Vec<StoredEmbedding>> {
    let params = || {
        vec![
            Value::Text(item_id.to_string()),
            Value::Text(item_type.to_string()),
        ]
    };
    let mut out = targets(conn, "item_id = ?1 AND item_type = ?2", params()).await?;
    out.extend(legacy_rows(conn, "e.item_id = ?1 AND e.item_type = ?2", params()).await?);
    out.sort_by(|a, b| {
        (a.embedding.created_at, &a.embedding.embedding_id)
            .cmp(&(b.embedding.created_at, &b.embedding.embedding_id))
    });
    Ok(out)
}
