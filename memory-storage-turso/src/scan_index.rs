//! The quantized scan index of a native table (see
//! [`TargetTable::scan_index_sql`]): whether the object of its name is
//! that index. The store searches through it only then, and the migration
//! builds it only where its name is free: an object of that name that is
//! anything else is a user's, never taken for the index and never
//! replaced.

use libsql::Connection;

use crate::error::{DbContext, Result};
use crate::schema::TargetTable;

/// What holds the scan index's name of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanIndex {
    /// Nothing.
    Missing,
    /// The scan index itself, on the table, as the migration makes it.
    Present,
    /// Another object: a table, a view, or another index.
    Taken,
}

/// Looks up what holds `table`'s scan index name (`Missing` for a table
/// that has none, `embeddings_other`).
pub async fn state(conn: &Connection, table: TargetTable) -> Result<ScanIndex> {
    let (Some(name), Some(sql)) = (table.scan_index_name(), table.scan_index_sql()) else {
        return Ok(ScanIndex::Missing);
    };
    let ctx = || format!("looking up {name}");
    let mut rows = conn
        .query(
            "SELECT type, tbl_name, sql FROM sqlite_master WHERE name = ?1",
            [name],
        )
        .await
        .db_context(ctx)?;
    let Some(row) = rows.next().await.db_context(ctx)? else {
        return Ok(ScanIndex::Missing);
    };
    let ours = row.get::<String>(0).db_context(ctx)? == "index"
        && row.get::<String>(1).db_context(ctx)? == table.name()
        && row.get::<Option<String>>(2).db_context(ctx)?.as_deref() == Some(sql.as_str());
    Ok(if ours {
        ScanIndex::Present
    } else {
        ScanIndex::Taken
    })
}
