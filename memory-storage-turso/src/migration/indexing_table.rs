//! A table's index built in batches beside it, resumably: the index is
//! created on an empty *indexing table* of the same shape, the rows are
//! copied into it in rowid order, a batch per transaction with its progress
//! committed alongside, and triggers mirror any write to the live table
//! meanwhile. When every row is in, one transaction drops the live table
//! and renames the indexing table in its place (rowids kept), so the index
//! ends up exactly as `CREATE INDEX … ON embeddings_N` would have made it.
//!
//! The DiskANN indexes are built so (libSQL builds one over existing rows
//! in one long statement: no progress, and a crash starts it over), and so
//! is a quantized scan index where one `CREATE INDEX` would hold the write
//! lock too long: while an application writes (online), or after sqld
//! rolled it back for a writer that waited 5 s.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use libsql::{Connection, Value};

use super::error::Result;
use super::observer::Observer;
use super::report::IndexState;
use super::statements;
use crate::connect::pipeline::{fail_unless, Failure, Outcome, Pipeline, Statement};
use crate::db::{with_retries, ErrorClass};
use crate::error::DbContext;
use crate::schema::{
    object_exists, ScanBits, TargetTable, VectorIndexOptions, COLUMNS, INDEX_PROGRESS_TABLE,
    INDEX_PROGRESS_TABLE_SQL,
};

/// Rows of the first index-build transaction; later ones are sized to
/// take about the run's transaction target ([`txn_target`]).
/// DiskANN inserts touch many pages each, so a transaction's journal and
/// sync amortize over more rows the longer it is (100-row transactions
/// made the build 1.36× slower than libSQL's `CREATE INDEX`; 1,000-row
/// ones 1.01×), while a crash loses at most one.
const FIRST_INDEX_BATCH: i64 = 100;

/// The wall time an index-build transaction aims at where another writer
/// may be waiting for it: well under the 5 s sqld gives a write
/// transaction before a waiting writer (the application) may have it
/// rolled back, and short for an application writing to a local file
/// during an online run.
const SHARED_INDEX_TXN_TARGET: Duration = Duration::from_secs(2);
/// The wall time an index-build transaction aims at on a local file that
/// no application writes to (not online): what a crash loses at most, and
/// how long the first Ctrl-C waits. Each transaction journals and syncs
/// every page it changes once, and a DiskANN insert rewrites the blocks of
/// dozens of neighbours, all of them old pages after the first commit;
/// while the index is young that is most of it, so with short
/// transactions the cost of a row grows with the index. Measured building
/// 8,000 clustered 1,536-dimension rows with float8 neighbours (one run
/// each): 10 s transactions 21.3 ms a row in all, from 17 to 29 ms a row
/// as the index grew (0.5 to 6.4 MB written a row); 30 s ones 16.9 ms;
/// 60 s ones 16.7 ms; one transaction 16.2 ms. (Earlier, on 35,110 rows
/// of 384 dimensions with libSQL's default options: 2 s transactions
/// 860 s and 184 GB written, 10 s ones 830 s and 122 GB, 755 s with
/// SQLite's default page cache; libSQL's own `CREATE INDEX` 535 s.)
const LOCAL_INDEX_TXN_TARGET: Duration = Duration::from_secs(30);

/// The pause between two index-build transactions on a local file an
/// application writes to (online). SQLite queues no writers: one waiting
/// for the lock polls it, every 100 ms once it has waited a while (the
/// default busy handler's longest sleep), so transactions committed back to
/// back shut it out. Measured before this pause: an application inserting
/// a row every 100 ms with a 5 s busy timeout failed six writes in a row
/// while 29 scan-index batches of about a second each went by. On sqld a
/// waiting writer is queued and takes the lock at the commit.
pub(crate) const LOCAL_ONLINE_PAUSE: Duration = Duration::from_millis(150);

/// The wall time the index phase's transactions aim at.
pub(crate) fn txn_target(local: bool, online: bool) -> Duration {
    if local && !online {
        LOCAL_INDEX_TXN_TARGET
    } else {
        SHARED_INDEX_TXN_TARGET
    }
}

/// Rows × dimensions past which an online run on a local file builds a
/// table's scan index in batches (unless
/// [`super::IndexPlanning::scan_batches_above`] says otherwise): one
/// `CREATE INDEX` of it is expected to hold the write lock longer than an
/// index batch does (about 2 s). It sorted 560,000 rows of 384 dimensions
/// in 3.9 s from a warm page cache (18 ns a row-dimension), 8.6 s cold. A
/// smaller table's scan index is made in one statement even online: in
/// batches it takes five to ten times as long (the table copied beside
/// itself: 38–47 s for those rows), see docs/online-index.md.
///
/// Over the network none is built in batches unless asked: on sqld the
/// batches' checkpoints turned 25 of an application's writes away
/// ("database is locked", at once) where one statement of 3.5 s turned
/// none away; a statement sqld rolls back for a writer that waited 5 s is
/// made again in batches (`scan_indexes`).
pub const SCAN_BATCHES_ABOVE: u64 = 100_000_000;

/// The index a build in batches makes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Made<'a> {
    /// The DiskANN index, with these options.
    Vector(&'a VectorIndexOptions),
    /// The quantized scan index of these bits.
    Scan(ScanBits),
}

impl Made<'_> {
    fn sql_on(self, table: TargetTable, on: &str) -> Option<String> {
        match self {
            Made::Vector(options) => options.sql_on(table, on),
            Made::Scan(bits) => table.scan_index_sql_on(on, bits),
        }
    }

    /// The index's name.
    fn index_name(self, table: TargetTable) -> Option<&'static str> {
        match self {
            Made::Vector(_) => table.vector_index_name(),
            Made::Scan(bits) => table.scan_index_name(bits),
        }
    }

    /// What errors and logs call it.
    fn what(self) -> &'static str {
        match self {
            Made::Vector(_) => "vector index",
            Made::Scan(_) => "scan index",
        }
    }
}

/// Where one build in batches runs.
pub(crate) struct Builder<'a> {
    pub conn: &'a Connection,
    pub remote: Option<&'a Pipeline>,
    pub max_retries: u32,
    /// The wall time a transaction aims at.
    pub txn_target: Duration,
    /// Waited after each committed batch, for writers that poll the lock.
    pub pause: Duration,
    /// Asked between batches.
    pub observer: &'a dyn Observer,
}

impl Builder<'_> {
    /// Builds `made` on `table` in batches (resuming the build its
    /// indexing table holds when `resumed`), calling `batch` with the rows
    /// and seconds of each committed batch, and swaps it in; `Stopped`
    /// when the observer asked to stop first.
    pub(crate) async fn build(
        &self,
        table: TargetTable,
        made: Made<'_>,
        resumed: bool,
        batch: &mut (dyn FnMut(u64, f64) + Send),
    ) -> Result<IndexState> {
        let (conn, remote) = (self.conn, self.remote);
        if !resumed {
            with_retries(self.max_retries, || start_build(conn, remote, table, made)).await?;
        }
        let mut limit = FIRST_INDEX_BATCH;
        loop {
            if self.observer.stop_requested() {
                return Ok(IndexState::Stopped);
            }
            let batch_began = Instant::now();
            let requests_before = remote.map(Pipeline::requests);
            // A transaction the server rolled back because a writer
            // waited for it is tried again with half the rows.
            // (Atomic, not a Cell: the run's future must stay Send.)
            let tried = AtomicI64::new(limit);
            let n = with_retries(self.max_retries, || {
                let (tried, limit) = (&tried, tried.load(Ordering::Relaxed));
                async move {
                    let result = copy_batch(conn, remote, table, made, limit).await;
                    if result.as_ref().is_err_and(|e| e.transaction_timed_out()) {
                        tried.store((limit / 2).max(1), Ordering::Relaxed);
                    }
                    result
                }
            })
            .await?;
            if n == 0 {
                break;
            }
            let seconds = batch_began.elapsed().as_secs_f64();
            let per_row = seconds / n as f64;
            // No floor but one row: where rows are slow (DiskANN inserts
            // on a remote server), the time target rules.
            let sized =
                ((self.txn_target.as_secs_f64() / per_row.max(1e-6)) as i64).clamp(1, 20_000);
            // After a timeout, never larger than what went through.
            let tried = tried.into_inner();
            limit = if tried < limit {
                sized.min(tried)
            } else {
                sized
            };
            tracing::debug!(
                target: "memory_storage_turso::batch",
                phase = made.what(),
                table = table.name(),
                rows = n,
                requests = remote.map(Pipeline::requests).zip(requests_before).map(|(now, before)| now - before),
                millis = batch_began.elapsed().as_millis() as u64,
                "batch committed"
            );
            batch(n, seconds);
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
        with_retries(self.max_retries, || swap(conn, remote, table, made)).await?;
        Ok(if resumed {
            IndexState::ResumedAndBuilt
        } else {
            IndexState::Built
        })
    }
}

pub(crate) async fn count(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<i64> {
    let n = crate::db::query_i64(conn, sql, params, || {
        format!("counting for the index build ({sql})")
    })
    .await?;
    Ok(n.unwrap_or(0))
}

fn column_list() -> String {
    COLUMNS.join(", ")
}

/// Sets up the indexing table, its index, the mirroring triggers and the
/// progress row, in one transaction.
async fn start_build(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    made: Made<'_>,
) -> Result<()> {
    let (Some(building), Some(index_sql)) = (
        table.indexing_table(),
        made.sql_on(table, table.indexing_table().unwrap_or_default()),
    ) else {
        return Ok(());
    };
    let live = table.name();
    let cols = column_list();
    let new_cols: String = COLUMNS
        .iter()
        .map(|c| format!("new.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let plain = |sql: String| Statement::new(sql, vec![]);
    let mut steps = vec![
        plain(format!("DROP TABLE IF EXISTS {building}")),
        plain(table.create_table_sql_named(building)),
        plain(index_sql),
    ];
    for (event, body) in [
        ("INSERT", format!("INSERT OR REPLACE INTO {building} (rowid, {cols}) VALUES (new.rowid, {new_cols});")),
        ("UPDATE", format!("DELETE FROM {building} WHERE rowid = old.rowid; INSERT OR REPLACE INTO {building} (rowid, {cols}) VALUES (new.rowid, {new_cols});")),
        ("DELETE", format!("DELETE FROM {building} WHERE rowid = old.rowid;")),
    ] {
        steps.push(plain(format!(
            "CREATE TRIGGER IF NOT EXISTS {building}_{} AFTER {event} ON {live} BEGIN {body} END",
            event.to_lowercase()
        )));
    }
    steps.push(plain(INDEX_PROGRESS_TABLE_SQL.to_string()));
    steps.push(Statement::new(
        format!("INSERT OR REPLACE INTO {INDEX_PROGRESS_TABLE} (target_table, last_rowid) VALUES (?1, 0)"),
        vec![Value::Text(live.to_string())],
    ));
    statements::transaction(conn, remote, steps)
        .await
        .map_err(|f| f.in_context(format!("starting the {} build of {live}", made.what())))?;
    Ok(())
}

/// Whether the build standing on `table`'s indexing table makes `made`:
/// its index's SQL there is `made`'s (SQLite keeps it without `IF NOT
/// EXISTS`; see [`crate::stored_sql`] for the forms it may take).
pub(crate) async fn builds(conn: &Connection, table: TargetTable, made: Made<'_>) -> Result<bool> {
    let (Some(building), Some(name)) = (table.indexing_table(), made.index_name(table)) else {
        return Ok(false);
    };
    let Some(wanted) = made.sql_on(table, building) else {
        return Ok(false);
    };
    let wanted = wanted.replacen(" IF NOT EXISTS", "", 1);
    Ok(crate::db::schema_object(conn, name)
        .await?
        .is_some_and(|o| {
            o.table == building
                && o.sql
                    .is_some_and(|found| crate::stored_sql::same(&found, &wanted))
        }))
}

/// Drops a stopped build the plan no longer wants: the mirroring
/// triggers, the indexing table (and its index) and the progress row, in
/// one transaction. All of them the migration's own (the build stood on
/// them, which [`may_swap`] allows only for objects this migration made).
pub(crate) async fn discard(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
) -> Result<()> {
    let Some(building) = table.indexing_table() else {
        return Ok(());
    };
    let plain = |sql: String| Statement::new(sql, vec![]);
    let mut steps: Vec<Statement> = ["insert", "update", "delete"]
        .iter()
        .map(|event| plain(format!("DROP TRIGGER IF EXISTS {building}_{event}")))
        .collect();
    steps.push(plain(format!("DROP TABLE IF EXISTS {building}")));
    steps.push(Statement::new(
        format!("DELETE FROM {INDEX_PROGRESS_TABLE} WHERE target_table = ?1"),
        vec![Value::Text(table.name().to_string())],
    ));
    statements::transaction(conn, remote, steps)
        .await
        .map_err(|f| f.in_context(format!("dropping the stopped index build of {table}")))?;
    Ok(())
}

/// The integer in the first column of a statement's first row.
fn first_integer(outcome: Option<&Outcome>) -> Option<i64> {
    match outcome?.rows.first()?.first()? {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// Copies the next batch (the next `limit` rows of the live table after
/// the recorded progress) into the indexing table and moves the progress
/// past it, in one transaction; returns the rows copied.
async fn copy_batch(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    made: Made<'_>,
    limit: i64,
) -> Result<u64> {
    let Some(building) = table.indexing_table() else {
        return Ok(0);
    };
    let live = table.name();
    let cols = column_list();
    let progress = format!("SELECT last_rowid FROM {INDEX_PROGRESS_TABLE} WHERE target_table = ?1");
    let args = || vec![Value::Text(live.to_string()), Value::Integer(limit)];
    let steps = vec![
        Statement::new(progress.clone(), vec![Value::Text(live.to_string())]),
        // A row the triggers already mirrored is newer than this copy: keep it.
        Statement::new(
            format!("INSERT OR IGNORE INTO {building} (rowid, {cols}) SELECT rowid, {cols} FROM {live} WHERE rowid > ({progress}) ORDER BY rowid LIMIT ?2"),
            args(),
        ),
        // The progress moves to the last row of the same window: the
        // limit-th row after it, or the table's last.
        Statement::new(
            format!(
                "UPDATE {INDEX_PROGRESS_TABLE} SET last_rowid = coalesce(\
                 (SELECT rowid FROM {live} WHERE rowid > last_rowid ORDER BY rowid LIMIT 1 OFFSET ?2 - 1), \
                 (SELECT max(rowid) FROM {live} WHERE rowid > last_rowid), last_rowid) \
                 WHERE target_table = ?1"
            ),
            args(),
        ),
        Statement::new(progress, vec![Value::Text(live.to_string())]),
    ];
    let outcomes = statements::transaction(conn, remote, steps)
        .await
        .map_err(|f| f.in_context(format!("building the {} of {live}", made.what())))?;
    let before = first_integer(outcomes.first());
    let after = first_integer(outcomes.get(3));
    Ok(match (before, after) {
        (Some(before), Some(after)) if after > before => outcomes[1].affected.max(1),
        _ => 0,
    })
}

/// Puts the indexing table in the live table's place, in one transaction.
async fn swap(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    made: Made<'_>,
) -> Result<()> {
    let Some(building) = table.indexing_table() else {
        return Ok(());
    };
    let live = table.name();
    let plain = |sql: String| Statement::new(sql, vec![]);
    let steps = vec![
        plain(fail_unless(&format!(
            "(SELECT count(*) FROM {live}) = (SELECT count(*) FROM {building})"
        ))),
        plain(format!("DROP TABLE {live}")),
        plain(format!("ALTER TABLE {building} RENAME TO {live}")),
        plain(table.item_index_sql().to_string()),
        Statement::new(
            format!("DELETE FROM {INDEX_PROGRESS_TABLE} WHERE target_table = ?1"),
            vec![Value::Text(live.to_string())],
        ),
    ];
    match statements::transaction(conn, remote, steps).await {
        Ok(_) => Ok(()),
        Err(Failure::Step { step: 0, error })
            if crate::db::classify(&error) != ErrorClass::Transient =>
        {
            let live_rows = count(conn, &format!("SELECT count(*) FROM {live}"), vec![]).await?;
            let built_rows =
                count(conn, &format!("SELECT count(*) FROM {building}"), vec![]).await?;
            Err(super::MigrateError::DropRefused(format!(
                "the {} build of {live} holds {built_rows} rows but the table has {live_rows}; nothing was swapped", made.what()
            )))
        }
        Err(f) => Err(f
            .in_context(format!("finishing the {} of {live}", made.what()))
            .into()),
    }
}

/// Whether the resumable build may put a new table in `table`'s place:
/// only when this migration created the table and nothing but its own
/// objects hang on it. A table that was there before (the application's,
/// with perhaps columns, indexes or triggers of its own) is never
/// replaced: its index is built in place with one `CREATE INDEX`. So too
/// when an object with the name of the indexing table or of its triggers
/// is there and this migration did not create it: the build drops and
/// makes those anew, and a user's object is never dropped.
pub(crate) async fn may_swap(conn: &Connection, table: TargetTable) -> Result<bool> {
    let before = super::prior::objects(conn).await?;
    let created_tables = super::metadata::created_tables(conn).await?;
    let created_here = |name: &str| match &before {
        Some(before) => !before.contains(name),
        None => created_tables.iter().any(|n| n == name),
    };
    if !created_here(table.name())
        || crate::schema::table_columns(conn, table.name()).await? != COLUMNS
    {
        return Ok(false);
    }
    if let Some(building) = table.indexing_table() {
        let names = ["", "_insert", "_update", "_delete"].map(|s| format!("{building}{s}"));
        for name in names {
            if !created_here(&name) && object_exists(conn, &name).await? {
                return Ok(false);
            }
        }
    }
    let own = super::prior::own_object_names();
    let ctx = || format!("listing the objects on {table}");
    let mut rows = conn
        .query(
            "SELECT name FROM sqlite_master WHERE tbl_name = ?1 AND name <> ?1 AND name NOT LIKE 'sqlite_%'",
            [table.name()],
        )
        .await
        .db_context(ctx)?;
    while let Some(row) = rows.next().await.db_context(ctx)? {
        if !own.contains(&row.get::<String>(0).db_context(ctx)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_file_no_application_writes_to_gets_long_index_transactions() {
        assert_eq!(txn_target(true, false), LOCAL_INDEX_TXN_TARGET);
        for (local, online) in [(true, true), (false, false), (false, true)] {
            assert_eq!(txn_target(local, online), SHARED_INDEX_TXN_TARGET);
        }
        // sqld lets a waiting writer roll back a transaction after 5 s.
        assert!(SHARED_INDEX_TXN_TARGET < Duration::from_secs(5));
        assert!(LOCAL_INDEX_TXN_TARGET > SHARED_INDEX_TXN_TARGET);
    }
}
