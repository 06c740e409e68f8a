//! Index builds in batches beside their table, and what a stopped one
//! becomes. The quantized scan index is built so, as the DiskANN indexes
//! are, while an application writes (online), where one `CREATE INDEX`
//! would hold the write lock for as long as it sorts the whole table (22 s
//! for 700,000 rows; sqld rolls it back after 5 s when a writer waits).
//! A stopped build follows the plan of the run that resumes it: the scan
//! index or other DiskANN options replace it, no index drops it. Each on a
//! real libSQL file.

use std::collections::BTreeMap;

use libsql::Connection;
use memory_storage_turso::migration::{
    self, run_migration, Forced, IndexMode, IndexPlanning, IndexState, MigrationOptions,
    MigrationReport, NoopObserver, Observer,
};
use memory_storage_turso::sample::{encode_json, insert_legacy_rows, LegacyRow, SampleSummary};
use memory_storage_turso::scan_index::{self, ScanIndex};
use memory_storage_turso::schema::{ScanBits, TargetTable, VectorIndexOptions};
use memory_storage_turso::store::{EmbeddingStore, SearchMethod};
use test_support::*;

/// `embeddings_384` as `d384`, every other native table searched exactly
/// (no index to build), nothing measured.
fn forced(d384: Option<Forced>) -> IndexPlanning {
    let mut forced: BTreeMap<TargetTable, Forced> =
        [TargetTable::D1024, TargetTable::D1536, TargetTable::D3072]
            .into_iter()
            .map(|t| (t, Forced::Exact))
            .collect();
    if let Some(f) = d384 {
        forced.insert(TargetTable::D384, f);
    }
    IndexPlanning {
        mode: IndexMode::Fixed,
        forced,
        // Online, every scan index in batches, however small its table.
        scan_batches_above: Some(0),
        ..Default::default()
    }
}

fn options(online: bool, index: IndexPlanning) -> MigrationOptions {
    MigrationOptions {
        batch_size: 500,
        online,
        max_retries: 10,
        index,
        ..Default::default()
    }
}

async fn run(
    conn: &Connection,
    options: &MigrationOptions,
    observer: &dyn Observer,
) -> MigrationReport {
    run_migration(conn, options, observer).await.unwrap()
}

/// The status of the index named `index`.
fn status(report: &MigrationReport, index: &str) -> IndexState {
    report
        .vector_indexes
        .iter()
        .find(|i| i.index == index)
        .unwrap_or_else(|| panic!("no status of {index}: {:?}", report.vector_indexes))
        .status
}

/// A 384-dimension legacy row as the application writes it.
fn app_row(id: &str, v: &[f32]) -> LegacyRow {
    LegacyRow {
        embedding_id: id.into(),
        item_id: format!("item-{id}"),
        item_type: "episode".into(),
        embedding_data: encode_json(v),
        embedding_vector: None,
        dimension: v.len() as i64,
        model: "app".into(),
        created_at: 1_760_000_000,
    }
}

/// `embeddings_384`'s scan index of `bits`.
fn scan_name(bits: ScanBits) -> &'static str {
    TargetTable::D384.scan_index_name(bits).unwrap()
}

/// A finished run whose scan index of `embeddings_384` ended `state`:
/// swapped in (on the table, its SQL as SQLite rewrote it at the rename),
/// no DiskANN index, nothing of the build left, every row exact.
async fn assert_scan_index_swapped_in(
    t: &TestDb,
    report: &MigrationReport,
    state: IndexState,
    summary: &SampleSummary,
    bits: ScanBits,
) {
    assert!(!report.interrupted, "{report:?}");
    assert_eq!(status(report, scan_name(bits)), state);
    assert!(report.verification.as_ref().unwrap().passed);
    assert_eq!(
        scan_index::state(&t.conn, TargetTable::D384, bits)
            .await
            .unwrap(),
        ScanIndex::Present
    );
    assert!(!table_exists(&t.conn, "embeddings_384_indexing").await);
    assert!(!table_exists(&t.conn, "idx_embeddings_384_vector").await);
    assert_migrated_exactly(&t.conn, &bad_ids(summary), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn online_the_scan_index_is_built_in_batches_and_a_stopped_build_resumes() {
    // The 1-bit scan index: built and resumed as the 8-bit one is (the
    // other tests here), under its own name.
    let bits = ScanBits::Float1Bit;
    let (t, summary) = TestDb::sample(&small_spec(3000, 71)).await;
    let options = options(true, forced(Some(Forced::Scan(bits))));

    // Stopped after the first batch of the scan index: the build stands
    // beside the table, its index on the indexing table.
    let first = run(&t.conn, &options, &StopAfter::index_batches(1)).await;
    assert!(first.interrupted);
    assert_eq!(status(&first, scan_name(bits)), IndexState::Stopped);
    assert_eq!(
        scan_index::state(&t.conn, TargetTable::D384, bits)
            .await
            .unwrap(),
        ScanIndex::Building
    );
    let built = count(&t.conn, "embeddings_384_indexing").await;
    let rows = count(&t.conn, "embeddings_384").await;
    assert!(
        built > 0 && built < rows,
        "{built} of {rows} rows in the build"
    );

    // The application writes while no run is going: its row reaches the
    // build through the mirroring (the legacy table's, then the live
    // table's).
    let v: Vec<f32> = (0..384).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    insert_legacy_rows(&t.conn, &[app_row("app-row", &v)], true)
        .await
        .unwrap();

    let second = run(&t.conn, &options, &NoopObserver).await;
    assert_scan_index_swapped_in(&t, &second, IndexState::ResumedAndBuilt, &summary, bits).await;
    assert_eq!(count(&t.conn, "embeddings_384").await, rows + 1);

    // The store searches through it, and finds the application's row.
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert_eq!(
        store.search_method(384).await.unwrap(),
        SearchMethod::ScanIndex(scan_name(bits))
    );
    let hits = store.find_similar(&v, None, 5, None).await.unwrap();
    assert_eq!(hits[0].embedding.embedding_id, "app-row");

    // A run again finds it there.
    let again = run(&t.conn, &options, &NoopObserver).await;
    assert_eq!(status(&again, scan_name(bits)), IndexState::Present);
}

/// A sample database of `rows` rows whose run was stopped after the first
/// batch of `embeddings_384`'s DiskANN build (libSQL's default options).
async fn with_a_stopped_diskann_build(rows: usize, seed: u64) -> (TestDb, SampleSummary) {
    let (t, summary) = TestDb::sample(&small_spec(rows, seed)).await;
    let first = run(
        &t.conn,
        &options(false, forced(None)),
        &StopAfter::index_batches(1),
    )
    .await;
    assert!(first.interrupted);
    assert_eq!(
        status(&first, "idx_embeddings_384_vector"),
        IndexState::Stopped
    );
    assert!(table_exists(&t.conn, "embeddings_384_indexing").await);
    (t, summary)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_index_planned_over_a_stopped_diskann_build_replaces_it() {
    let (t, summary) = with_a_stopped_diskann_build(3000, 72).await;

    // Now the scan index: the old build is dropped (the migration's own
    // table), not finished with the old options.
    let second = run(
        &t.conn,
        &options(false, forced(Some(Forced::Scan(ScanBits::Float8)))),
        &NoopObserver,
    )
    .await;
    assert_scan_index_swapped_in(&t, &second, IndexState::Built, &summary, ScanBits::Float8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_removes_a_stopped_scan_build_and_keeps_the_legacy_rows() {
    let (t, _summary) = TestDb::sample(&small_spec(1500, 73)).await;
    let legacy_before = read_table(&t.conn, "embeddings", true).await;
    let options = options(true, forced(Some(Forced::Scan(ScanBits::Float8))));
    let first = run(&t.conn, &options, &StopAfter::index_batches(1)).await;
    assert!(first.interrupted);
    assert!(table_exists(&t.conn, "embeddings_384_indexing").await);
    let rollback = MigrationOptions {
        rollback: true,
        online: false,
        ..options
    };
    run(&t.conn, &rollback, &NoopObserver).await;
    for gone in [
        "embeddings_384",
        "embeddings_384_indexing",
        "embeddings_384_indexing_insert",
        "idx_embeddings_384_scan",
    ] {
        assert!(!table_exists(&t.conn, gone).await, "{gone} is left");
    }
    assert_eq!(read_table(&t.conn, "embeddings", true).await, legacy_before);
}

/// The SQL of `index`, if there.
async fn index_sql(conn: &Connection, index: &str) -> Option<String> {
    let mut rows = conn
        .query("SELECT sql FROM sqlite_master WHERE name = ?1", [index])
        .await
        .unwrap();
    rows.next()
        .await
        .unwrap()
        .map(|r| r.get::<String>(0).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_diskann_build_follows_the_options_of_the_next_run() {
    let (t, summary) = with_a_stopped_diskann_build(800, 74).await;
    let stopped = index_sql(&t.conn, "idx_embeddings_384_vector")
        .await
        .unwrap();
    assert!(!stopped.contains("float8"), "{stopped}");
    // The status says the build is under way, not that the index is there.
    let during = migration::status(&t.conn).await.unwrap();
    assert!(!during.vector_indexes["embeddings_384"]);
    assert!(during.index_builds["embeddings_384"] > 0, "{during:?}");

    // The next run asks for float8 neighbours: the build starts again
    // with them rather than finishing libSQL's defaults.
    let float8 = VectorIndexOptions::parse("compress_neighbors=float8").unwrap();
    let second = run(
        &t.conn,
        &options(false, forced(Some(Forced::Options(float8)))),
        &NoopObserver,
    )
    .await;
    assert!(!second.interrupted, "{second:?}");
    assert_eq!(
        status(&second, "idx_embeddings_384_vector"),
        IndexState::Built
    );
    let built = index_sql(&t.conn, "idx_embeddings_384_vector")
        .await
        .unwrap();
    assert!(built.contains("'compress_neighbors=float8'"), "{built}");
    assert!(built.contains("embeddings_384"), "{built}");
    let after = migration::status(&t.conn).await.unwrap();
    assert!(after.vector_indexes["embeddings_384"]);
    assert!(after.index_builds.is_empty(), "{after:?}");
    assert!(!table_exists(&t.conn, "embeddings_384_indexing").await);
    assert!(second.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_diskann_build_of_a_table_planned_for_no_index_is_dropped() {
    let (t, summary) = with_a_stopped_diskann_build(800, 75).await;

    let second = run(
        &t.conn,
        &options(false, forced(Some(Forced::Exact))),
        &NoopObserver,
    )
    .await;
    assert!(!second.interrupted, "{second:?}");
    assert_eq!(
        status(&second, "idx_embeddings_384_vector"),
        IndexState::Exact
    );
    for gone in [
        "idx_embeddings_384_vector",
        "embeddings_384_indexing",
        "embeddings_384_indexing_insert",
        "embeddings_384_indexing_update",
        "embeddings_384_indexing_delete",
    ] {
        assert!(!table_exists(&t.conn, gone).await, "{gone} is left");
    }
    if table_exists(&t.conn, "embedding_migration_index_progress").await {
        let progress = "SELECT count(*) FROM embedding_migration_index_progress";
        assert_eq!(scalar(&t.conn, progress).await, Some(0));
    }
    assert!(second.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    // The table takes writes (no trigger points at a dropped table).
    t.conn
        .execute(
            "DELETE FROM embeddings_384 WHERE rowid = (SELECT min(rowid) FROM embeddings_384)",
            (),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn online_a_small_tables_scan_index_is_one_statement() {
    let (t, summary) = TestDb::sample(&small_spec(1500, 76)).await;
    let options = options(
        true,
        IndexPlanning {
            scan_batches_above: None,
            ..forced(Some(Forced::Scan(ScanBits::Float8)))
        },
    );
    // No index batch to stop after: the index is made in one statement.
    let done = run(&t.conn, &options, &StopAfter::index_batches(1)).await;
    assert!(!done.interrupted, "{done:?}");
    assert_eq!(status(&done, "idx_embeddings_384_scan"), IndexState::Built);
    let sql = index_sql(&t.conn, "idx_embeddings_384_scan").await.unwrap();
    assert!(
        sql.contains("ON embeddings_384("),
        "made on the table: {sql}"
    );
    assert!(done.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_index_with_the_diskann_indexs_name_is_left_alone() {
    let (t, summary) = TestDb::sample(&small_spec(800, 77)).await;
    t.conn
        .execute_batch(
            "CREATE TABLE mine (note TEXT);
             CREATE INDEX idx_embeddings_384_vector ON mine(note);",
        )
        .await
        .unwrap();
    // Taken for a build under way before: the run failed on the missing
    // indexing table.
    let done = run(&t.conn, &options(false, forced(None)), &NoopObserver).await;
    assert!(!done.interrupted, "{done:?}");
    assert_eq!(
        status(&done, "idx_embeddings_384_vector"),
        IndexState::NameTaken
    );
    assert!(done.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    let sql = index_sql(&t.conn, "idx_embeddings_384_vector")
        .await
        .unwrap();
    assert!(sql.contains("ON mine(note)"), "{sql}");
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert_eq!(store.search_method(384).await.unwrap(), SearchMethod::Scan);
}
