//! The quantized scan index of a native table, of either quantization
//! (see [`TargetTable::scan_index_sql`]): whether the object of its name
//! is that index. The store searches through it only then, and the migration
//! builds it only where its name is free: an object of that name that is
//! anything else is a user's, never taken for the index and never
//! replaced.

use libsql::Connection;

use crate::error::Result;
use crate::schema::{ScanBits, TargetTable};

/// What holds the scan index's name of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanIndex {
    /// Nothing.
    Missing,
    /// The scan index itself, on the table, as the migration makes it.
    Present,
    /// The scan index on the table's indexing table: a build in batches
    /// (the migration's) not yet swapped in.
    Building,
    /// Another object: a table, a view, or another index.
    Taken,
}

/// Looks up what holds the name of `table`'s scan index quantized to
/// `bits` (`Missing` for a table that has none, `embeddings_other`).
pub async fn state(conn: &Connection, table: TargetTable, bits: ScanBits) -> Result<ScanIndex> {
    let Some(name) = table.scan_index_name(bits) else {
        return Ok(ScanIndex::Missing);
    };
    let Some(crate::db::SchemaObject {
        kind,
        table: on,
        sql: found,
    }) = crate::db::schema_object(conn, name).await?
    else {
        return Ok(ScanIndex::Missing);
    };
    if kind != "index" {
        return Ok(ScanIndex::Taken);
    }
    // Our SQL on `on_table`, in any form it is kept in: built in batches
    // the index stood on the indexing table, renamed since to the table's
    // name (which SQLite writes back quoted).
    let ours_on = |on_table: &str| {
        let ours = table.scan_index_sql_on(on_table, bits);
        ours.zip(found.as_deref())
            .is_some_and(|(ours, found)| crate::stored_sql::same(found, &ours))
    };
    let building = table.indexing_table();
    Ok(if on == table.name() && ours_on(table.name()) {
        ScanIndex::Present
    } else if building.is_some_and(|b| b == on && ours_on(b)) {
        ScanIndex::Building
    } else {
        ScanIndex::Taken
    })
}
