//! Writing and deleting: one transaction per call, rows grouped per table
//! into multi-row `INSERT` statements, every vector bound as little-endian
//! f32 bytes and `embedding_data` written as plain JSON.

use std::collections::BTreeMap;

use libsql::{Connection, Value};

use super::transition::legacy;
use super::twins::Twins;
use super::types::{invalid_reason, Embedding};
use crate::db::{in_transaction, with_retries};
use crate::decode::vector_to_le_bytes;
use crate::error::{DbContext, Error, Result};
use crate::schema::{object_exists, TargetTable, COLUMNS, LEDGER_TABLE, LEGACY_TABLE};

/// Rows per `INSERT` statement (8 parameters each, far below SQLite's
/// limit of 32,766).
const ROWS_PER_INSERT: usize = 64;
/// Keys per `DELETE … IN (…)` statement.
const KEYS_PER_DELETE: usize = 500;
/// Retries of a whole write transaction after a busy or locked database.
pub(crate) const WRITE_RETRIES: u32 = 5;

/// `?, ?, …` with `n` placeholders.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `INSERT OR REPLACE INTO table (…) VALUES (…), (…)` for `rows` rows.
fn insert_sql(table: TargetTable, rows: usize) -> String {
    let row = format!("({})", placeholders(COLUMNS.len()));
    format!(
        "INSERT OR REPLACE INTO {} ({}) VALUES {}",
        table.name(),
        COLUMNS.join(", "),
        vec![row; rows].join(", ")
    )
}

/// The eight values of a row, in [`COLUMNS`] order.
fn row_values(e: &Embedding, out: &mut Vec<Value>) {
    // Serializing finite f32 values cannot fail; serde_json writes each as
    // the shortest text that reads back to the same bits.
    let json = serde_json::to_string(&e.vector).unwrap_or_default();
    out.extend([
        Value::Text(e.embedding_id.clone()),
        Value::Text(e.item_id.clone()),
        Value::Text(e.item_type.clone()),
        Value::Text(json),
        Value::Blob(vector_to_le_bytes(&e.vector)),
        Value::Integer(e.dimension() as i64),
        Value::Text(e.model.clone()),
        Value::Integer(e.created_at),
    ]);
}

/// Deletes `keys` from `table` (a name from the schema module); returns the
/// rows deleted.
async fn delete_keys(conn: &Connection, table: &str, keys: &[&str]) -> Result<u64> {
    let mut deleted = 0;
    for chunk in keys.chunks(KEYS_PER_DELETE) {
        let sql = format!(
            "DELETE FROM {table} WHERE embedding_id IN ({})",
            placeholders(chunk.len())
        );
        let params: Vec<Value> = chunk.iter().map(|k| Value::Text(k.to_string())).collect();
        deleted += conn
            .execute(&sql, params)
            .await
            .db_context(|| format!("deleting embeddings from {table}"))?;
    }
    Ok(deleted)
}

/// Removes `keys` from the legacy table and from the migration's ledger,
/// so a migration running later neither copies an older legacy version
/// over a newer write nor deletes a row it did not write.
async fn supersede_legacy(conn: &Connection, keys: &[&str]) -> Result<u64> {
    let mut deleted = 0;
    if legacy(conn).await?.is_some() {
        deleted += delete_keys(conn, LEGACY_TABLE, keys).await?;
    }
    if object_exists(conn, LEDGER_TABLE).await? {
        delete_keys(conn, LEDGER_TABLE, keys).await?;
    }
    Ok(deleted)
}

/// The embeddings to write, one per key (the last one wins), grouped by
/// table; an invalid embedding fails the whole call before anything is
/// written.
fn group(embeddings: &[Embedding]) -> Result<BTreeMap<TargetTable, Vec<&Embedding>>> {
    let mut last: BTreeMap<&str, &Embedding> = BTreeMap::new();
    for e in embeddings {
        if let Some(reason) = invalid_reason(e) {
            return Err(Error::InvalidEmbedding {
                embedding_id: e.embedding_id.clone(),
                reason,
            });
        }
        last.insert(&e.embedding_id, e);
    }
    let mut groups: BTreeMap<TargetTable, Vec<&Embedding>> = BTreeMap::new();
    for e in last.into_values() {
        groups.entry(e.table()).or_default().push(e);
    }
    Ok(groups)
}

async fn write_groups(
    conn: &Connection,
    groups: &BTreeMap<TargetTable, Vec<&Embedding>>,
) -> Result<()> {
    let mut twins = Twins::load(conn).await?;
    // An id stored under a new dimension leaves its old table.
    for table in TargetTable::ALL {
        let elsewhere: Vec<&str> = groups
            .iter()
            .filter(|(t, _)| **t != table)
            .flat_map(|(_, rows)| rows.iter().map(|e| e.embedding_id.as_str()))
            .collect();
        if !elsewhere.is_empty() {
            twins.before_removing(conn, table, &elsewhere).await?;
            delete_keys(conn, table.name(), &elsewhere).await?;
        }
    }
    let all: Vec<&str> = groups
        .values()
        .flat_map(|rows| rows.iter().map(|e| e.embedding_id.as_str()))
        .collect();
    supersede_legacy(conn, &all).await?;
    let mut params = Vec::new();
    for (table, rows) in groups {
        // `INSERT OR REPLACE` deletes the row a key held before.
        let keys: Vec<&str> = rows.iter().map(|e| e.embedding_id.as_str()).collect();
        twins.before_removing(conn, *table, &keys).await?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            params.clear();
            for e in chunk {
                row_values(e, &mut params);
            }
            conn.execute(
                &insert_sql(*table, chunk.len()),
                std::mem::take(&mut params),
            )
            .await
            .db_context(|| format!("storing {} embeddings in {table}", chunk.len()))?;
        }
    }
    twins.save(conn).await
}

/// Stores `embeddings` (any mix of dimensions) in one transaction.
pub(crate) async fn store_batch(conn: &Connection, embeddings: &[Embedding]) -> Result<()> {
    let groups = group(embeddings)?;
    if groups.is_empty() {
        return Ok(());
    }
    with_retries(WRITE_RETRIES, || {
        in_transaction(conn, "storing embeddings", write_groups(conn, &groups))
    })
    .await
}

async fn delete_everywhere(conn: &Connection, embedding_id: &str) -> Result<u64> {
    let mut twins = Twins::load(conn).await?;
    let mut deleted = 0;
    for table in TargetTable::ALL {
        twins.before_removing(conn, table, &[embedding_id]).await?;
        deleted += delete_keys(conn, table.name(), &[embedding_id]).await?;
    }
    deleted += supersede_legacy(conn, &[embedding_id]).await?;
    twins.save(conn).await?;
    Ok(deleted)
}

/// Deletes `embedding_id` from every table that holds it, the legacy
/// table included; returns whether any row was deleted.
pub(crate) async fn delete(conn: &Connection, embedding_id: &str) -> Result<bool> {
    let deleted = with_retries(WRITE_RETRIES, || {
        in_transaction(
            conn,
            "deleting an embedding",
            delete_everywhere(conn, embedding_id),
        )
    })
    .await?;
    Ok(deleted > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_insert_statement_holds_many_rows() {
        let sql = insert_sql(TargetTable::D384, 3);
        assert!(sql.starts_with("INSERT OR REPLACE INTO embeddings_384 (embedding_id, item_id"));
        assert_eq!(sql.matches('?').count(), 24);
        assert_eq!(sql.matches("), (").count(), 2);
    }

    #[test]
    fn the_last_write_of_a_key_wins_and_rows_group_by_table() {
        let e = |id: &str, dim: usize| Embedding::new(id, "i", "t", "m", vec![0.5; dim]);
        let batch = [e("a", 384), e("b", 7), e("a", 1536), e("c", 384)];
        let groups = group(&batch).unwrap();
        let ids = |t| -> Vec<&str> { groups[&t].iter().map(|e| e.embedding_id.as_str()).collect() };
        assert_eq!(ids(TargetTable::D1536), ["a"]);
        assert_eq!(ids(TargetTable::D384), ["c"]);
        assert_eq!(ids(TargetTable::Other), ["b"]);
        let bad = [Embedding::new("x", "i", "t", "m", vec![f32::NAN])];
        assert!(matches!(group(&bad), Err(Error::InvalidEmbedding { .. })));
    }
}
