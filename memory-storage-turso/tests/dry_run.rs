//! The dry run reads everything, writes nothing, and predicts the execute.

use memory_storage_turso::migration::{
    migrate_embeddings, run_migration, MigrationOptions, NoopObserver, RunMode,
};
use test_support::*;

fn dry() -> MigrationOptions {
    MigrationOptions {
        dry_run: true,
        batch_size: 100,
        ..Default::default()
    }
}

#[tokio::test]
async fn dry_run_leaves_the_file_byte_identical_and_predicts_the_copy() {
    let (t, summary) = TestDb::sample(&small_spec(1500, 21)).await;
    let url = t.url();
    let before = file_bytes(&t.path);
    let report = migrate_embeddings(&url, "", dry()).await.unwrap();
    assert_eq!(
        file_bytes(&t.path),
        before,
        "the dry run changed the database file"
    );
    assert_eq!(report.mode, RunMode::DryRun);
    assert!(report.migrated.is_none());
    let planned = report.planned.clone().unwrap();
    for (dim, n) in &summary.valid_per_dimension {
        assert_eq!(planned[expected_table(*dim as usize)], *n as u64);
    }
    assert_eq!(report.quarantined_count, summary.bad.len() as u64);
    let mut listed: Vec<String> = report
        .quarantined
        .iter()
        .map(|q| q.embedding_id.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, bad_ids(&summary));
    assert!(report.quarantined.iter().all(|q| !q.reason.is_empty()));
    let extra = report.estimated_extra_bytes.unwrap();
    assert!(
        extra > summary.bytes_of_vectors,
        "the estimate covers at least the vectors"
    );
    // No table was created by the dry run.
    assert!(
        !memory_storage_turso::schema::object_exists(&t.conn, "embeddings_384")
            .await
            .unwrap()
    );

    // The execute writes exactly what the plan said, and the file grows
    // by about what it estimated.
    let size_before = std::fs::metadata(&t.path).unwrap().len();
    let exec = run_migration(
        &t.conn,
        &MigrationOptions {
            build_vector_index: false,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    let migrated = exec.migrated.unwrap();
    let growth = std::fs::metadata(&t.path).unwrap().len() - size_before;
    let ratio = extra as f64 / growth as f64;
    assert!(
        (0.85..1.5).contains(&ratio),
        "estimated {extra} bytes, grew {growth}"
    );
    for (table, n) in planned.iter().filter(|(_, n)| **n > 0) {
        assert_eq!(migrated[table], *n, "{table}");
    }
}

#[tokio::test]
async fn dry_run_after_a_partial_run_counts_what_is_already_migrated() {
    let (t, summary) = TestDb::sample(&small_spec(900, 4)).await;
    run_migration(
        &t.conn,
        &MigrationOptions {
            build_vector_index: false,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    t.conn
        .execute("DELETE FROM embeddings_1536", ())
        .await
        .unwrap();
    let report = run_migration(&t.conn, &dry(), &NoopObserver).await.unwrap();
    let planned = report.planned.unwrap();
    let n1536 = summary.valid_per_dimension[&1536] as u64;
    assert_eq!(planned["embeddings_1536"], n1536);
    assert_eq!(planned["embeddings_384"], 0);
    assert_eq!(
        report.already_migrated["embeddings_384"],
        summary.valid_per_dimension[&384] as u64
    );
}
