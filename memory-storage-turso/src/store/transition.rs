//! The transition: a legacy `embeddings` table that still holds rows the
//! per-dimension tables do not. Reads fall back to it; writes never go there.

use libsql::Connection;

use crate::error::{DbContext, Result};
use crate::schema::{object_exists, table_columns, TargetTable, LEGACY_TABLE, QUARANTINE_TABLE};

/// The legacy table as it exists now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Legacy {
    /// `embedding_vector`, or `NULL` when the table lacks that column.
    pub vector_col: &'static str,
}

/// The legacy table, if it exists.
pub(crate) async fn legacy(conn: &Connection) -> Result<Option<Legacy>> {
    let columns = table_columns(conn, LEGACY_TABLE).await?;
    if columns.is_empty() {
        return Ok(None);
    }
    let vector_col = if columns.iter().any(|c| c == "embedding_vector") {
        "embedding_vector"
    } else {
        "NULL"
    };
    Ok(Some(Legacy { vector_col }))
}

/// `NOT EXISTS` conditions: the legacy row aliased `e` is in none of
/// `tables`.
pub(crate) fn absent_from(tables: &[TargetTable]) -> String {
    tables
        .iter()
        .map(|t| {
            format!(
                "NOT EXISTS (SELECT 1 FROM {} AS t WHERE t.embedding_id = e.embedding_id)",
                t.name()
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The target tables that exist.
pub(crate) async fn existing_targets(conn: &Connection) -> Result<Vec<TargetTable>> {
    let mut out = Vec::new();
    for t in TargetTable::ALL {
        if object_exists(conn, t.name()).await? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Whether the legacy table holds a row that is in no per-dimension table
/// and not in the migration's quarantine record: a row a migration would
/// still copy. Reads only; stops at the first such row.
pub async fn unmigrated_rows_exist(conn: &Connection) -> Result<bool> {
    if legacy(conn).await?.is_none() {
        return Ok(false);
    }
    let mut conds = Vec::new();
    let targets = existing_targets(conn).await?;
    if !targets.is_empty() {
        conds.push(absent_from(&targets));
    }
    if object_exists(conn, QUARANTINE_TABLE).await? {
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM {QUARANTINE_TABLE} AS q WHERE q.embedding_id = e.embedding_id)"
        ));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!("SELECT 1 FROM {LEGACY_TABLE} AS e{filter} LIMIT 1");
    let ctx = || "looking for legacy rows not migrated yet".to_string();
    let mut rows = conn.query(&sql, ()).await.db_context(ctx)?;
    Ok(rows.next().await.db_context(ctx)?.is_some())
}
