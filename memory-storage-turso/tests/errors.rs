//! Inputs that are not a legacy store: one clear error, nothing created.

use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{
    migrate_embeddings, run_migration, MigrationOptions, NoopObserver,
};
use memory_storage_turso::Error;
use test_support::*;

#[tokio::test]
async fn a_missing_file_is_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    for options in [
        MigrationOptions::default(),
        MigrationOptions {
            dry_run: true,
            ..Default::default()
        },
    ] {
        let err = migrate_embeddings(path.to_str().unwrap(), "", options)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MigrateError::Core(Error::DatabaseNotFound { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("nope.db"));
        assert!(!path.exists(), "the database file was created");
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, b"these are my notes, not a database, and long enough to matter......................................................................").unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = migrate_embeddings(path.to_str().unwrap(), "", MigrationOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::NotADatabase { .. })),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn a_database_without_the_legacy_table_is_reported_and_left_alone() {
    let t = TestDb::empty().await;
    t.conn.execute("CREATE TABLE other (x)", ()).await.unwrap();
    let err = run_migration(&t.conn, &MigrationOptions::default(), &NoopObserver)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::MissingLegacyTable), "{err}");
    assert!(
        !memory_storage_turso::schema::object_exists(&t.conn, "embeddings_384")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_incompatible_existing_target_table_is_never_altered() {
    let (t, _) = TestDb::sample(&small_spec(50, 1)).await;
    t.conn
        .execute(
            "CREATE TABLE embeddings_384 (embedding_id TEXT PRIMARY KEY, vec BLOB)",
            (),
        )
        .await
        .unwrap();
    let err = run_migration(&t.conn, &MigrationOptions::default(), &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::IncompatibleTargetTable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("embeddings_384"));
    let cols = memory_storage_turso::schema::table_columns(&t.conn, "embeddings_384")
        .await
        .unwrap();
    assert_eq!(cols, ["embedding_id", "vec"]);
}

#[tokio::test]
async fn contradictory_options_are_refused_before_anything_is_touched() {
    let (t, _) = TestDb::sample(&small_spec(20, 1)).await;
    for options in [
        MigrationOptions {
            dry_run: true,
            drop_old_table: true,
            ..Default::default()
        },
        MigrationOptions {
            verify_only: true,
            rollback: true,
            ..Default::default()
        },
        MigrationOptions {
            from_checkpoint: Some("a".into()),
            ..Default::default()
        },
        MigrationOptions {
            allow_quarantined: true,
            ..Default::default()
        },
        MigrationOptions {
            batch_size: 0,
            ..Default::default()
        },
    ] {
        let err = run_migration(&t.conn, &options, &NoopObserver)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MigrateError::Core(Error::InvalidOptions(_))),
            "{err}"
        );
    }
    assert!(
        !memory_storage_turso::schema::object_exists(&t.conn, "embeddings_384")
            .await
            .unwrap()
    );
}
