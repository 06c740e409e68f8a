//! The index phase of an execute run: the plan (or the fixed options),
//! the DiskANN and scan indexes built, what each built index finds
//! measured on its own table, and a 1-bit scan clearly short replaced by
//! the 8-bit scan ([`built_recall`]).

use std::time::Duration;

use libsql::Connection;

use super::error::Result;
use super::index_plan::Choices;
use super::observer::{timed, Observer, Phase};
use super::options::MigrationOptions;
use super::pass::Flow;
use super::report::{BuiltRecall, IndexState, IndexStatus, MigrationReport, PhaseTiming};
use super::{built_recall, index, index_plan, indexing_table, scan_indexes};
use crate::db::with_retries;

/// Plans, builds and measures the vector indexes, into `report`. Returns
/// whether this run built any (`None`: the run was stopped).
pub(super) async fn run(
    conn: &Connection,
    options: &MigrationOptions,
    online_active: bool,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<Option<bool>> {
    let Some(choices) = plan(conn, options, observer, report).await? else {
        return Ok(None);
    };
    let builds = Builds {
        builder: indexing_table::Builder {
            conn,
            remote: options.remote.as_ref(),
            max_retries: options.max_retries,
            txn_target: indexing_table::txn_target(options.local_file.is_some(), online_active),
            pause: if options.remote.is_none() && online_active {
                indexing_table::LOCAL_ONLINE_PAUSE
            } else {
                Duration::ZERO
            },
            observer,
        },
        build: options.build_vector_index,
        // Online, one `CREATE INDEX` of a large table's scan index would
        // hold the write lock the application waits for as long as it
        // sorts the whole table.
        scan_batches_above: match (online_active, options.index.scan_batches_above) {
            (false, _) => None,
            (true, Some(above)) => Some(above),
            (true, None) => options
                .remote
                .is_none()
                .then_some(indexing_table::SCAN_BATCHES_ABOVE),
        },
    };
    let mut indexed = builds.of(&choices).await?;
    if options.remote.is_some() {
        // Idle while the index batches went through the pipeline.
        crate::db::renew_idle_stream(conn).await;
    }
    let built = indexed
        .statuses
        .iter()
        .filter(|i| i.status.is_built())
        .count() as u64;
    let mut stopped = indexed.flow == Flow::Stopped;
    report.phases.push(indexed.timing);
    if !stopped && built > 0 {
        // What the built indexes really find, recorded instead of what
        // the plan predicted.
        let statuses = &mut indexed.statuses;
        let ((checked, flow), timing) = timed(
            observer,
            Phase::IndexRecall,
            built,
            check(conn, options, &builds, &choices, statuses),
        )
        .await?;
        report.built_recall = checked;
        report.phases.push(timing);
        stopped = flow == Flow::Stopped;
    }
    report.vector_indexes = indexed.statuses;
    Ok((!stopped).then_some(built > 0))
}

/// The plan's choices per table (none without vector indexes), the plan
/// in `report` (`None`: stopped while planning, nothing recorded).
async fn plan(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<Option<Choices>> {
    if !options.build_vector_index {
        return Ok(Some(Choices::default()));
    }
    let began = std::time::Instant::now();
    let planned = with_retries(options.max_retries, || {
        index_plan::for_run(
            conn,
            &options.index,
            options.vector_index,
            options.remote.is_none(),
            observer,
        )
    })
    .await?;
    if options.remote.is_some() {
        // Idle through a plan measured locally.
        crate::db::renew_idle_stream(conn).await;
    }
    let Some((plan, choices)) = planned else {
        // Nothing recorded: the next run plans again.
        return Ok(None);
    };
    if let Some(p) = &plan {
        report.phases.push(PhaseTiming {
            phase: Phase::IndexPlan.name().into(),
            seconds: began.elapsed().as_secs_f64(),
            units: p.tables.len() as u64,
        });
    }
    report.index_plan = plan;
    Ok(Some(choices))
}

/// Measures the indexes this run built; a 1-bit scan clearly short has
/// the 8-bit scan recorded in its place, built and measured (its status
/// in `statuses` replaced).
async fn check(
    conn: &Connection,
    options: &MigrationOptions,
    builds: &Builds<'_>,
    choices: &Choices,
    statuses: &mut [IndexStatus],
) -> Result<(Vec<BuiltRecall>, Flow)> {
    let retries = options.max_retries;
    let mut checked =
        built_recall::check_built(conn, statuses, &options.index, retries, None).await?;
    let gave_way = built_recall::gave_way(&checked);
    if gave_way.is_empty() {
        return Ok((checked, Flow::Finished));
    }
    let recorded = with_retries(retries, || crate::search_plan::read(conn)).await?;
    let mut finer = choices.clone();
    for table in &gave_way {
        if let Some(search) = recorded.get(table) {
            finer.insert(*table, (None, search.clone()));
        }
    }
    let again = builds.of(&finer).await?;
    for status in again.statuses {
        if gave_way.iter().any(|t| t.name() == status.table) {
            if let Some(s) = statuses.iter_mut().find(|s| s.table == status.table) {
                *s = status;
            }
        }
    }
    checked.extend(
        built_recall::check_built(conn, statuses, &options.index, retries, Some(&gave_way)).await?,
    );
    Ok((checked, again.flow))
}

/// How this run builds indexes.
struct Builds<'a> {
    builder: indexing_table::Builder<'a>,
    build: bool,
    scan_batches_above: Option<u64>,
}

impl Builds<'_> {
    async fn of(&self, choices: &Choices) -> Result<index::Indexed> {
        build_indexes(&self.builder, self.build, choices, self.scan_batches_above).await
    }
}

/// The index phase for `choices`: DiskANN indexes and the scan indexes
/// made in batches, then the scan indexes made in one statement.
async fn build_indexes(
    builder: &indexing_table::Builder<'_>,
    build: bool,
    choices: &index_plan::Choices,
    scan_batches_above: Option<u64>,
) -> Result<index::Indexed> {
    let mut indexed = index::build_indexes(builder, build, choices, scan_batches_above).await?;
    if indexed.flow != Flow::Stopped {
        let began = std::time::Instant::now();
        scan_indexes::build(builder, choices, &mut indexed.statuses).await?;
        if indexed
            .statuses
            .iter()
            .any(|s| s.status == IndexState::Stopped)
        {
            indexed.flow = Flow::Stopped;
        }
        indexed.timing.seconds += began.elapsed().as_secs_f64();
    }
    Ok(indexed)
}
