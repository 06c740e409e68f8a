//! `--demo`: a sample legacy database in a temporary directory, then dry
//! run, execute and verify on it, so a newcomer sees the whole job. The
//! planted bad rows are listed once, by the dry run; the later summaries
//! count them.

use anyhow::Context;
use memory_storage_turso::sample::{generate_legacy_database, BadKind, SampleSpec};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::args::{GlobalArgs, MigrateArgs};
use crate::command::{emit, exit_status, run_on};
use crate::render::BadRows;

/// Builds the sample and runs the three steps; returns the exit status of
/// the last one.
pub async fn run(
    rows: usize,
    global: &GlobalArgs,
    base: &MigrateArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u8> {
    let dir = tempfile::tempdir().context("creating a temporary directory for the demo")?;
    let path = dir.path().join("legacy-memory.db");
    let path_str = path.to_string_lossy().to_string();
    let mut spec = SampleSpec::realistic(rows, 42);
    // One of each kind of bad row the migration must report.
    spec.bad_rows = spec.bad_rows.max(BadKind::ALL.len()).min(rows);
    {
        let db = libsql::Builder::new_local(&path)
            .build()
            .await
            .context("creating the demo database")?;
        let conn = db.connect().context("opening the demo database")?;
        tracing::info!("demo: writing {rows} legacy rows to {path_str}");
        let summary = generate_legacy_database(&conn, &spec)
            .await
            .context("filling the demo database")?;
        emit(&format!(
            "Demo: a legacy database with {} rows ({} of them bad on purpose) at {path_str}\n",
            summary.total_rows,
            summary.bad.len()
        ))?;
    }
    let step = |execute: bool, verify: bool| MigrateArgs {
        db: Some(path_str.clone()),
        execute,
        verify,
        // DiskANN builds take minutes on tens of thousands of rows: the demo
        // shows the copy and verification, and says how to build them.
        no_vector_index: true,
        ..base.clone()
    };
    let dry = GlobalArgs {
        dry_run: true,
        ..global.clone()
    };
    emit(&format!("$ migrate_embeddings --db {path_str} --dry-run\n"))?;
    run_on(
        &path_str,
        &dry,
        &step(false, false),
        stop.clone(),
        BadRows::Listed,
    )
    .await?;
    emit(&format!(
        "\n$ migrate_embeddings --db {path_str} --execute --no-vector-index\n"
    ))?;
    let copied = run_on(
        &path_str,
        global,
        &step(true, false),
        stop.clone(),
        BadRows::ListedAbove,
    )
    .await?;
    if copied.interrupted {
        return Ok(exit_status(&copied));
    }
    emit(&format!(
        "\n$ migrate_embeddings --db {path_str} --verify\n"
    ))?;
    let report = run_on(
        &path_str,
        global,
        &step(false, true),
        stop,
        BadRows::ListedAbove,
    )
    .await?;
    emit(
        "\nThe demo database is deleted now. The bad rows above are planted on purpose (exit status 3 \
         means: done, but some rows need a person). On a real database, drop --no-vector-index to \
         build the DiskANN indexes after the copy.\n"
    )?;
    Ok(exit_status(&report))
}
