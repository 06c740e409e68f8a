//! The index phase's quantized scan indexes: for each table the plan
//! searches through one, one `CREATE INDEX` over the copied rows (a sort
//! of their 8-bit vectors: 0.22 s for 34,876 rows of 384 dimensions), in
//! a transaction of its own. Its name must be free: an object of that
//! name that is not the scan index is a user's. It is left alone, the
//! report says so, and the table is searched exactly.

use std::time::Instant;

use libsql::Connection;

use super::error::Result;
use super::index_plan::Choices;
use super::report::{IndexState, IndexStatus};
use super::statements;
use crate::connect::pipeline::{Pipeline, Statement};
use crate::db::with_retries;
use crate::scan_index::{self, ScanIndex};
use crate::schema::TargetTable;
use crate::search_plan::TableSearch;

/// Builds the scan index of each table `choices` searches through one,
/// and puts its status in `statuses` in place of the table's DiskANN one.
pub(crate) async fn build(
    conn: &Connection,
    remote: Option<&Pipeline>,
    choices: &Choices,
    statuses: &mut Vec<IndexStatus>,
    max_retries: u32,
) -> Result<()> {
    for (table, (_, search)) in choices {
        let (TableSearch::Scan { .. }, Some(name)) = (search, table.scan_index_name()) else {
            continue;
        };
        let began = Instant::now();
        // Looked up again on every try: a try whose answer was lost may
        // have made it.
        let status = with_retries(max_retries, || create(conn, remote, *table)).await?;
        if status == IndexState::NameTaken {
            with_retries(max_retries, || search_exactly(conn, *table)).await?;
        }
        let entry = IndexStatus {
            table: table.name().to_string(),
            index: name.to_string(),
            status,
            seconds: began.elapsed().as_secs_f64(),
        };
        match statuses.iter_mut().find(|s| s.table == entry.table) {
            Some(s) => *s = entry,
            None => statuses.push(entry),
        }
    }
    Ok(())
}

/// Makes `table`'s scan index where its name is free.
async fn create(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
) -> Result<IndexState> {
    let sql = match scan_index::state(conn, table).await? {
        ScanIndex::Present => return Ok(IndexState::Present),
        ScanIndex::Taken => return Ok(IndexState::NameTaken),
        ScanIndex::Missing => table.scan_index_sql(),
    };
    let Some(sql) = sql else {
        return Ok(IndexState::Exact);
    };
    statements::transaction(conn, remote, vec![Statement::new(sql, vec![])])
        .await
        .map_err(|f| f.in_context(format!("building the scan index of {table}")))?;
    Ok(IndexState::Built)
}

/// Records that `table` is searched exactly.
async fn search_exactly(conn: &Connection, table: TargetTable) -> Result<()> {
    let mut plan = crate::search_plan::read(conn).await?;
    plan.insert(table, TableSearch::Exact);
    crate::search_plan::write(conn, &plan).await?;
    Ok(())
}
