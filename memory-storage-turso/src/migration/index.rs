//! The vector-index phase: DiskANN indexes built after the copy, one native
//! table at a time, resumably and with progress, each in batches beside
//! its table ([`super::indexing_table`]); so too the quantized scan indexes
//! the plan chose where one `CREATE INDEX` would hold the write lock while
//! an application writes (online). The verification that follows compares
//! every row with its source.

use std::time::{Duration, Instant};

use libsql::{Connection, Value};

use super::error::Result;
use super::index_eta;
use super::index_plan::Choices;
use super::indexing_table::{builds, count, discard, may_swap, Builder, Made};
use super::observer::Phase;
use super::pass::Flow;
use super::report::{IndexState, IndexStatus, PhaseTiming};
use super::statements;
use crate::connect::pipeline::{Pipeline, Statement};
use crate::db::with_retries;
use crate::scan_index::{self, ScanIndex};
use crate::schema::{
    object_exists, ScanBits, TargetTable, VectorIndexOptions, INDEX_PROGRESS_TABLE,
};

/// Where the index of `table` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuildState {
    /// On the live table: done.
    Present,
    /// On the indexing table: a build to resume.
    Building,
    /// On another table: a user's index of that name, never taken for
    /// ours (the table is searched exactly).
    Taken,
    Missing,
}

async fn index_state(conn: &Connection, table: TargetTable) -> Result<BuildState> {
    let Some(name) = table.vector_index_name() else {
        return Ok(BuildState::Missing);
    };
    Ok(match crate::db::schema_object(conn, name).await? {
        None => BuildState::Missing,
        Some(o) if o.table == table.name() => BuildState::Present,
        Some(o) if table.indexing_table() == Some(o.table.as_str()) => BuildState::Building,
        Some(_) => BuildState::Taken,
    })
}

/// Builds the index of a table the migration may not replace with one
/// `CREATE INDEX` (one request over the network).
async fn create_in_place(
    conn: &Connection,
    remote: Option<&Pipeline>,
    table: TargetTable,
    options: &VectorIndexOptions,
) -> Result<()> {
    let Some(sql) = options.sql(table) else {
        return Ok(());
    };
    statements::transaction(conn, remote, vec![Statement::new(sql, vec![])])
        .await
        .map_err(|f| f.in_context(format!("building the vector index of {table}")))?;
    Ok(())
}

/// Rows still to index in `table`, for progress totals and the choice of
/// a build in batches: told by the rowids (the copy writes them in
/// sequence; deleted rows make it an overestimate), not counted: a
/// `count(*)` reads the whole table (4.7 s for 560,000 rows of 384
/// dimensions not in the page cache), and in a rollback-journal database
/// a read that long keeps an application's commit waiting as long (an
/// online run measured it: one write failed its 5 s busy timeout).
async fn rows_left(conn: &Connection, table: TargetTable, resuming: bool) -> Result<i64> {
    let last = if resuming {
        count(
            conn,
            &format!("SELECT last_rowid FROM {INDEX_PROGRESS_TABLE} WHERE target_table = ?1"),
            vec![Value::Text(table.name().to_string())],
        )
        .await?
    } else {
        0
    };
    count(
        conn,
        &format!(
            "SELECT coalesce(max(rowid) - max(?1, min(rowid) - 1), 0) FROM {}",
            table.name()
        ),
        vec![Value::Integer(last)],
    )
    .await
}

/// What the index phase did.
pub(crate) struct Indexed {
    pub statuses: Vec<IndexStatus>,
    pub timing: PhaseTiming,
    pub flow: Flow,
}

/// What the phase does for one native table.
enum Job {
    /// Its DiskANN index, standing so.
    Vector(BuildState),
    /// Its scan index of these bits in batches; `true` resumes a build.
    /// (Made in one statement otherwise, after the phase:
    /// [`super::scan_indexes`].)
    Scan(ScanBits, bool),
    /// A stopped DiskANN build the table is no longer planned for: dropped.
    Discard,
}

/// Decides the job of `table` (`buildable`: indexes are built and the
/// table exists). A scan index is built in batches where the table holds
/// more than `scan_batches_above` rows × dimensions (online), where such a
/// build was stopped, and where it replaces a DiskANN build of an earlier
/// plan (an indexing table of the migration's, dropped by the new build). A stopped DiskANN build
/// whose options the table is no longer planned for starts again with
/// the planned ones, or is dropped where the table is planned for none:
/// the index phase follows the plan, not the run that stopped.
async fn job(
    conn: &Connection,
    table: TargetTable,
    choices: &Choices,
    buildable: bool,
    scan_batches_above: Option<u64>,
    max_retries: u32,
) -> Result<Job> {
    let vector = with_retries(max_retries, || index_state(conn, table)).await?;
    let scan = choices.get(&table).and_then(|(_, s)| s.scan_bits());
    if let (true, Some(bits)) = (buildable, scan) {
        let replaces = matches!(vector, BuildState::Building);
        match with_retries(max_retries, || scan_index::state(conn, table, bits)).await? {
            ScanIndex::Building => return Ok(Job::Scan(bits, true)),
            // A DiskANN index already on the table stays (the swap would
            // drop it): the scan index is made beside it in one statement.
            ScanIndex::Missing
                if (replaces || large(conn, table, scan_batches_above, max_retries).await?)
                    && !matches!(vector, BuildState::Present)
                    && with_retries(max_retries, || may_swap(conn, table)).await? =>
            {
                return Ok(Job::Scan(bits, false))
            }
            _ => {}
        }
    }
    // A build stands on the indexing table; dropped or started again only
    // where those objects are the migration's.
    if buildable
        && scan.is_none()
        && vector == BuildState::Building
        && with_retries(max_retries, || may_swap(conn, table)).await?
    {
        match choices.get(&table).map(|(o, _)| *o) {
            Some(None) => return Ok(Job::Discard),
            planned => {
                let options = planned.flatten().unwrap_or_default();
                let made = Made::Vector(&options);
                if !with_retries(max_retries, || builds(conn, table, made)).await? {
                    return Ok(Job::Vector(BuildState::Missing));
                }
            }
        }
    }
    Ok(Job::Vector(vector))
}

/// Whether `table` holds more than `above` rows × dimensions (never, for
/// `None`).
async fn large(
    conn: &Connection,
    table: TargetTable,
    above: Option<u64>,
    max_retries: u32,
) -> Result<bool> {
    let Some(above) = above else {
        return Ok(false);
    };
    let rows = with_retries(max_retries, || rows_left(conn, table, false)).await?;
    let dimension = table.native_dimension().unwrap_or(1) as u64;
    Ok((rows.max(0) as u64).saturating_mul(dimension) > above)
}

/// Builds each missing DiskANN index (or records that it was skipped),
/// and the scan indexes `choices` asks for of tables larger than
/// `scan_batches_above` rows × dimensions (`None`: none).
pub(crate) async fn build_indexes(
    builder: &Builder<'_>,
    build: bool,
    choices: &Choices,
    scan_batches_above: Option<u64>,
) -> Result<Indexed> {
    let (conn, remote, max_retries, observer) = (
        builder.conn,
        builder.remote,
        builder.max_retries,
        builder.observer,
    );
    let began = Instant::now();
    // None: libSQL's defaults (no plan); Some(None): no DiskANN index.
    let options_of = |t: &TargetTable| choices.get(t).map(|(o, _)| *o);
    let mut statuses = Vec::new();
    let mut plan = Vec::new();
    let mut eta_tables = Vec::new();
    let mut total = 0u64;
    // Reads, retried like every step: a remote stream left idle past the
    // server's expiry (sqld: 10 s, say while the index plan was measured
    // locally) is lost at its next request.
    for table in TargetTable::ALL.into_iter().filter(|t| t.is_native()) {
        let buildable =
            build && with_retries(max_retries, || object_exists(conn, table.name())).await?;
        let job = job(
            conn,
            table,
            choices,
            buildable,
            scan_batches_above,
            max_retries,
        )
        .await?;
        let exact = matches!(options_of(&table), Some(None));
        let left = match &job {
            Job::Vector(BuildState::Present | BuildState::Taken) | Job::Discard => 0,
            Job::Vector(BuildState::Missing) if exact => 0,
            _ if !buildable => 0,
            Job::Vector(BuildState::Building) | Job::Scan(_, true) => {
                with_retries(max_retries, || rows_left(conn, table, true)).await?
            }
            Job::Vector(BuildState::Missing) | Job::Scan(_, false) => {
                with_retries(max_retries, || rows_left(conn, table, false)).await?
            }
        };
        total += left.max(0) as u64;
        let start = match &job {
            Job::Vector(BuildState::Building) | Job::Scan(_, true) if left > 0 => {
                (with_retries(max_retries, || rows_left(conn, table, false)).await? - left).max(0)
            }
            _ => 0,
        };
        eta_tables.push(index_eta::Table {
            start: start as u64,
            rows: left.max(0) as u64,
            dimension: table.native_dimension().unwrap_or(1),
        });
        plan.push((table, job));
    }
    let mut eta = index_eta::IndexEta::new(eta_tables);
    observer.phase_started(Phase::VectorIndex, total);
    let mut done = 0u64;
    let mut stopped = false;
    for (position, (table, job)) in plan.into_iter().enumerate() {
        let name = match job {
            Job::Scan(bits, _) => table.scan_index_name(bits),
            _ => table.vector_index_name(),
        };
        let Some(name) = name else {
            continue;
        };
        let started = Instant::now();
        let index_options = &options_of(&table).flatten().unwrap_or_default();
        let mut batch = |n: u64, seconds: f64| {
            done += n;
            eta.batch(position, n, seconds);
            if let Some(left) = eta.seconds_left() {
                observer.time_left(Phase::VectorIndex, Duration::from_secs_f64(left));
            }
            observer.progress(Phase::VectorIndex, done);
        };
        let status = match job {
            Job::Vector(BuildState::Present) => IndexState::Present,
            Job::Vector(BuildState::Taken) => IndexState::NameTaken,
            _ if !build => IndexState::Skipped,
            Job::Vector(BuildState::Missing) if matches!(options_of(&table), Some(None)) => {
                IndexState::Exact
            }
            _ if stopped || observer.stop_requested() => {
                stopped = true;
                IndexState::Stopped
            }
            Job::Vector(BuildState::Missing)
                if !with_retries(max_retries, || may_swap(conn, table)).await? =>
            {
                with_retries(max_retries, || {
                    create_in_place(conn, remote, table, index_options)
                })
                .await?;
                let rows = with_retries(max_retries, || rows_left(conn, table, false))
                    .await?
                    .max(0) as u64;
                batch(rows, started.elapsed().as_secs_f64());
                IndexState::Built
            }
            Job::Vector(state) => {
                let resumed = matches!(state, BuildState::Building);
                builder
                    .build(table, Made::Vector(index_options), resumed, &mut batch)
                    .await?
            }
            Job::Scan(bits, resumed) => {
                builder
                    .build(table, Made::Scan(bits), resumed, &mut batch)
                    .await?
            }
            Job::Discard => {
                with_retries(max_retries, || discard(conn, remote, table)).await?;
                IndexState::Exact
            }
        };
        stopped |= status == IndexState::Stopped;
        statuses.push(IndexStatus {
            table: table.name().to_string(),
            index: name.to_string(),
            status,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    observer.phase_finished(Phase::VectorIndex, began.elapsed());
    Ok(Indexed {
        statuses,
        timing: PhaseTiming {
            phase: Phase::VectorIndex.name().into(),
            seconds: began.elapsed().as_secs_f64(),
            units: done,
        },
        flow: if stopped {
            Flow::Stopped
        } else {
            Flow::Finished
        },
    })
}
