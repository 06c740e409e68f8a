//! The vector-index phase: DiskANN indexes built after the copy, one native
//! table at a time.

use std::time::Instant;

use libsql::Connection;

use super::observer::{Observer, Phase};
use super::report::{IndexStatus, MigrationReport, PhaseTiming};
use crate::error::Result;
use crate::schema::{create_vector_index_with, object_exists, TargetTable, VectorIndexOptions};

/// Builds each missing DiskANN index (or records that it was skipped).
pub async fn build_indexes(
    conn: &Connection,
    build: bool,
    index_options: &VectorIndexOptions,
    observer: &dyn Observer,
    report: &mut MigrationReport,
) -> Result<()> {
    let began = Instant::now();
    let natives: Vec<TargetTable> = TargetTable::ALL
        .into_iter()
        .filter(|t| t.is_native())
        .collect();
    observer.phase_started(Phase::VectorIndex, natives.len() as u64);
    for (done, table) in natives.into_iter().enumerate() {
        let Some(name) = table.vector_index_name() else {
            continue;
        };
        let started = Instant::now();
        let status = if observer.stop_requested() {
            report.interrupted = true;
            "skipped"
        } else if object_exists(conn, name).await? {
            "present"
        } else if !build {
            "skipped"
        } else {
            create_vector_index_with(conn, table, index_options).await?;
            "built"
        };
        report.vector_indexes.push(IndexStatus {
            table: table.name().to_string(),
            index: name.to_string(),
            status: status.to_string(),
            seconds: started.elapsed().as_secs_f64(),
        });
        observer.progress(Phase::VectorIndex, done as u64 + 1);
    }
    observer.phase_finished(Phase::VectorIndex, began.elapsed());
    report.phases.push(PhaseTiming {
        phase: Phase::VectorIndex.name().into(),
        seconds: began.elapsed().as_secs_f64(),
        units: report.vector_indexes.len() as u64,
    });
    Ok(())
}
