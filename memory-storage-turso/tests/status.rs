//! `status` tells where a migration stands without changing anything; the
//! dry run's time estimates come from measurements.

use memory_storage_turso::migration::{
    migration_status, run_migration, status, MigrationOptions, NoopObserver,
};
use test_support::*;

fn execute() -> MigrationOptions {
    MigrationOptions {
        batch_size: 100,
        build_vector_index: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn status_follows_a_migration_from_start_to_drop_and_writes_nothing() {
    let (t, summary) = TestDb::sample(&small_spec(500, 8)).await;
    let before = file_bytes(&t.path);
    let s = migration_status(&t.url(), "").await.unwrap();
    assert_eq!(file_bytes(&t.path), before, "status wrote to the database");
    assert_eq!(s.state, "not_started");
    assert_eq!(s.legacy_rows, Some(500));
    assert_eq!(s.rows_left, Some(500));
    assert!(s.lock.is_none());

    let stopped = run_migration(&t.conn, &execute(), &StopAfter::batches(1))
        .await
        .unwrap();
    assert!(stopped.interrupted);
    let s = status(&t.conn).await.unwrap();
    assert_eq!(s.state, "in_progress");
    assert_eq!(s.rows_left, Some(400));
    assert!(s.checkpoint.is_some());
    assert!(s.lock.is_none(), "the lock is released after a stop");

    run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap();
    let s = status(&t.conn).await.unwrap();
    assert_eq!(s.state, "completed");
    assert_eq!(s.rows_left, Some(0));
    assert_eq!(s.quarantined, summary.bad.len() as u64);
    assert_eq!(
        s.target_rows.values().sum::<u64>(),
        500 - summary.bad.len() as u64
    );
    assert_eq!(s.vector_indexes.get("embeddings_384"), Some(&false));
    assert_eq!(s.scan_indexes.get("embeddings_384"), Some(&false));

    run_migration(
        &t.conn,
        &MigrationOptions {
            drop_old_table: true,
            allow_quarantined: true,
            ..execute()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    let s = status(&t.conn).await.unwrap();
    assert_eq!(s.state, "legacy_dropped");
    assert_eq!(s.legacy_rows, None);
    assert_eq!(s.backup_rows, Some(500));
}

#[tokio::test]
async fn the_dry_run_estimates_copy_and_index_time_from_measurements() {
    let (t, summary) = TestDb::sample(&small_spec(400, 12)).await;
    let before = file_bytes(&t.path);
    let report = memory_storage_turso::migration::migrate_embeddings(
        &t.url(),
        "",
        MigrationOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(file_bytes(&t.path), before);
    let copy = report.estimated_copy_seconds.unwrap();
    assert!(copy > 0.0 && copy < 60.0, "{copy}");
    let index = report.estimated_index_seconds.unwrap();
    for dim in [384i64, 1536] {
        assert!(summary.valid_per_dimension[&dim] > 0);
        let name = format!("embeddings_{dim}");
        assert!(index[&name] > 0.0, "{name}: {index:?}");
    }
    assert!(!index.contains_key("embeddings_other"));
}
