//! The index phase's quantized scan indexes: for each table the plan
//! searches through one, one `CREATE INDEX` over the copied rows (a sort
//! of their quantized vectors (8 bits): 0.22 s for 34,876 rows of 384 dimensions, 22 s
//! for 700,000), in a transaction of its own, unless the vector-index
//! phase built it in batches (online). Its name must be free: an object of
//! that name that is not the scan index is a user's. It is left alone, the
//! report says so, and the table is searched exactly.
//!
//! sqld rolls a write transaction back when another writer has waited for
//! it 5 s: one `CREATE INDEX` over a large table, while an application
//! writes, would be rolled back on every try. A try so rolled back is
//! made again in batches beside the table ([`super::indexing_table`]).

use std::time::Instant;

use libsql::Connection;

use super::error::Result;
use super::index_plan::Choices;
use super::indexing_table::{may_swap, Builder, Made};
use super::report::{IndexState, IndexStatus};
use super::statements;
use crate::connect::pipeline::{Pipeline, Statement};
use crate::db::with_retries;
use crate::scan_index::{self, ScanIndex};
use crate::schema::{ScanBits, TargetTable};
use crate::search_plan::TableSearch;

/// Builds the scan index of each table `choices` searches through one
/// (where the vector-index phase did not), and puts its status in
/// `statuses` in place of the table's DiskANN one.
pub(crate) async fn build(
    builder: &Builder<'_>,
    choices: &Choices,
    statuses: &mut Vec<IndexStatus>,
) -> Result<()> {
    let (conn, remote, max_retries) = (builder.conn, builder.remote, builder.max_retries);
    for (table, (_, search)) in choices {
        let Some(bits) = search.scan_bits() else {
            continue;
        };
        let Some(name) = table.scan_index_name(bits) else {
            continue;
        };
        if statuses.iter().any(|s| s.index == name) {
            continue;
        }
        let began = Instant::now();
        // Looked up again on every try: a try whose answer was lost may
        // have made it.
        let status = match with_retries(max_retries, || create(conn, remote, *table, bits)).await? {
            Try::Done(status) => status,
            // Rolled back for a writer that waited: in batches instead,
            // where the table may be swapped.
            Try::TimedOut if with_retries(max_retries, || may_swap(conn, *table)).await? => {
                builder
                    .build(*table, Made::Scan(bits), false, &mut |_, _| {})
                    .await?
            }
            Try::TimedOut => {
                with_retries(max_retries, || create_or_fail(conn, remote, *table, bits)).await?
            }
        };
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

/// What one try at a scan index found or did.
enum Try {
    Done(IndexState),
    /// The server rolled it back for a writer that waited.
    TimedOut,
}

/// Makes `table`'s scan index of `bits` where its name is free, in one
/// statement.
async fn create(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    bits: ScanBits,
) -> Result<Try> {
    match create_or_fail(conn, remote, table, bits).await {
        Err(e) if e.transaction_timed_out() => Ok(Try::TimedOut),
        other => other.map(Try::Done),
    }
}

/// [`create`], failing where the server rolled it back.
async fn create_or_fail(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    bits: ScanBits,
) -> Result<IndexState> {
    let sql = match scan_index::state(conn, table, bits).await? {
        ScanIndex::Present => return Ok(IndexState::Present),
        ScanIndex::Taken => return Ok(IndexState::NameTaken),
        // The vector-index phase resumes a build in batches; it is
        // here only where that phase stopped first.
        ScanIndex::Building => return Ok(IndexState::Stopped),
        ScanIndex::Missing => table.scan_index_sql(bits),
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
