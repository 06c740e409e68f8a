//! The safety net around a migration: the backup table and file, the
//! verified drop of the legacy table, and full and partial rollbacks that
//! give back exactly what was there before.

use std::collections::{BTreeMap, BTreeSet};

use libsql::{Builder, Connection, Value};
use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{digest, legacy_schema};
use memory_storage_turso::migration::{
    run_migration, MigrationOptions, MigrationReport, NoopObserver,
};
use memory_storage_turso::schema::{object_exists, table_columns};
use test_support::*;

/// The migration's bookkeeping tables (a full rollback removes them).
const BOOKKEEPING: [&str; 3] = [
    "embedding_migration_checkpoint",
    "embedding_migration_quarantine",
    "embedding_migration_ledger",
];

fn execute() -> MigrationOptions {
    MigrationOptions {
        batch_size: 50,
        build_vector_index: false,
        ..Default::default()
    }
}

fn with_backup() -> MigrationOptions {
    MigrationOptions {
        backup: true,
        ..execute()
    }
}

fn drop_old(allow_quarantined: bool) -> MigrationOptions {
    MigrationOptions {
        drop_old_table: true,
        allow_quarantined,
        ..execute()
    }
}

fn rollback(from_checkpoint: Option<&str>) -> MigrationOptions {
    MigrationOptions {
        rollback: true,
        from_checkpoint: from_checkpoint.map(str::to_string),
        ..Default::default()
    }
}

async fn run(
    conn: &Connection,
    options: MigrationOptions,
) -> Result<MigrationReport, MigrateError> {
    run_migration(conn, &options, &NoopObserver).await
}

async fn exists(conn: &Connection, name: &str) -> bool {
    object_exists(conn, name).await.unwrap()
}

/// The `metadata` keys a migration records, as the database holds them
/// (a contract with the application, so spelled out here).
mod metadata {
    pub const COMPLETED_AT: &str = "embeddings_migration.completed_at";
    pub const ROW_COUNTS: &str = "embeddings_migration.row_counts";
    pub const QUARANTINED: &str = "embeddings_migration.quarantined";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const LEGACY_DROPPED_AT: &str = "embeddings_migration.legacy_dropped_at";
    pub const CREATED_TABLES: &str = "embeddings_migration.created_tables";
}

/// The value of a `metadata` key, read with plain SQL.
async fn meta(conn: &Connection, key: &str) -> Option<String> {
    let mut rows = conn
        .query("SELECT value FROM metadata WHERE key = ?1", [key])
        .await
        .ok()?;
    rows.next().await.ok()??.get::<String>(0).ok()
}

/// Every row of every target table that exists, keyed by (table, id).
async fn target_rows(conn: &Connection) -> BTreeMap<(String, String), StoredRow> {
    let mut out = BTreeMap::new();
    for table in TARGETS {
        if !exists(conn, table).await {
            continue;
        }
        for (id, row) in read_table(conn, table, true).await {
            out.insert((table.to_string(), id), row);
        }
    }
    out
}

/// The good legacy rows of a sample.
fn good_rows(summary: &memory_storage_turso::sample::SampleSummary) -> u64 {
    (summary.total_rows - summary.bad.len()) as u64
}

#[tokio::test]
async fn the_backup_table_holds_every_legacy_row_and_is_proven_on_every_run() {
    let (t, _) = TestDb::sample(&small_spec(300, 41)).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;

    let report = run(&t.conn, with_backup()).await.unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    assert!(exists(&t.conn, "embeddings_backup").await);
    assert_eq!(
        table_columns(&t.conn, "embeddings_backup").await.unwrap(),
        table_columns(&t.conn, "embeddings").await.unwrap()
    );
    assert_eq!(read_table(&t.conn, "embeddings_backup", true).await, legacy);
    let backup = report.backup.as_ref().unwrap();
    assert_eq!(backup.status, "created");
    assert_eq!(backup.digest.rows, 300);
    let of_backup = digest(&t.conn, "embeddings_backup").await.unwrap();
    assert_eq!(backup.digest, of_backup);
    assert_eq!(digest(&t.conn, "embeddings").await.unwrap(), of_backup);

    let again = run(&t.conn, with_backup()).await.unwrap();
    let backup = again.backup.as_ref().unwrap();
    assert_eq!(backup.status, "verified");
    assert_eq!(backup.digest, of_backup);

    let victim = legacy.keys().nth(17).unwrap();
    t.conn
        .execute(
            "UPDATE embeddings_backup SET model = 'tampered-model' WHERE embedding_id = ?1",
            [victim.as_str()],
        )
        .await
        .unwrap();
    let err = run(&t.conn, with_backup()).await.unwrap_err();
    let MigrateError::BackupMismatch { expected, found } = &err else {
        panic!("expected a backup mismatch, got {err}")
    };
    assert_eq!(expected, &of_backup);
    assert_eq!(found.rows, 300);
    assert_ne!(found.checksum, of_backup.checksum);
    assert_eq!(
        found,
        &digest(&t.conn, "embeddings_backup").await.unwrap(),
        "the report names what the backup holds now"
    );
}

#[tokio::test]
async fn the_backup_file_is_a_whole_database_and_is_never_overwritten() {
    let (t, _) = TestDb::sample(&small_spec(200, 43)).await;
    let path = t.dir.path().join("before-migration.db");
    let options = MigrationOptions {
        backup_file: Some(path.clone()),
        ..execute()
    };
    let report = run(&t.conn, options.clone()).await.unwrap();
    assert_eq!(report.backup_file.as_deref(), path.to_str());
    assert!(path.exists());
    {
        let copy = Builder::new_local(&path).build().await.unwrap();
        let conn = copy.connect().unwrap();
        assert_eq!(count(&conn, "embeddings").await, 200);
        assert_eq!(
            read_table(&conn, "embeddings", true).await,
            read_table(&t.conn, "embeddings", true).await
        );
    }

    let before = file_bytes(&path);
    let err = run(&t.conn, options).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::BackupFileExists { path: p } if *p == path),
        "{err}"
    );
    assert_eq!(file_bytes(&path), before, "the existing file was changed");
    let next = run(&t.conn, execute()).await.unwrap();
    assert!(
        next.verification.unwrap().passed,
        "the refused run released its lock"
    );
}

#[tokio::test]
async fn the_drop_is_refused_while_rows_are_quarantined_unless_allowed() {
    let (t, summary) = TestDb::sample(&small_spec(300, 47)).await;
    assert!(!summary.bad.is_empty());
    let legacy = read_table(&t.conn, "embeddings", true).await;

    let err = run(&t.conn, drop_old(false)).await.unwrap_err();
    assert!(matches!(err, MigrateError::DropRefused(_)), "{err}");
    assert!(err.to_string().contains("--allow-quarantined"), "{err}");
    assert_eq!(read_table(&t.conn, "embeddings", true).await, legacy);

    let report = run(&t.conn, drop_old(true)).await.unwrap();
    assert!(!exists(&t.conn, "embeddings").await);
    assert_eq!(read_table(&t.conn, "embeddings_backup", true).await, legacy);
    let dropped = report.dropped_legacy.as_ref().unwrap();
    assert_eq!(dropped.backup.rows, 300);
    assert!(
        dropped.backup_refreshed,
        "no --backup was asked for: the drop made one"
    );
    assert_eq!(
        report.source_digest.as_ref(),
        Some(&dropped.backup),
        "the verification digested the rows the backup holds"
    );
    let in_targets: i64 = {
        let mut n = 0;
        for table in TARGETS {
            n += count(&t.conn, table).await;
        }
        n
    };
    assert_eq!(in_targets as u64, good_rows(&summary));

    assert!(meta(&t.conn, metadata::COMPLETED_AT).await.is_some());
    let dropped_at = meta(&t.conn, metadata::LEGACY_DROPPED_AT).await.unwrap();
    assert_eq!(
        meta(&t.conn, metadata::SCHEMA_VERSION).await.as_deref(),
        Some("2")
    );

    let err = run(&t.conn, execute()).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::LegacyDropped { at } if at.to_string() == dropped_at),
        "{err}"
    );
}

#[tokio::test]
async fn a_clean_table_is_dropped_without_allow_quarantined() {
    let mut spec = small_spec(200, 71);
    spec.bad_rows = 0;
    let (t, _) = TestDb::sample(&spec).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;

    let report = run(&t.conn, drop_old(false)).await.unwrap();
    assert_eq!(report.quarantined_count, 0);
    assert!(report.dropped_legacy.is_some());
    assert!(!exists(&t.conn, "embeddings").await);
    assert_eq!(read_table(&t.conn, "embeddings_backup", true).await, legacy);
}

#[tokio::test]
async fn a_full_rollback_removes_only_what_the_migration_wrote() {
    let (t, _) = TestDb::sample(&small_spec(300, 53)).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let legacy_digest = digest(&t.conn, "embeddings").await.unwrap();

    let report = run(&t.conn, execute()).await.unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    // An application writes to the new table before the rollback.
    t.conn
        .execute(
            "INSERT INTO embeddings_384 SELECT 'application-row', item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at FROM embeddings_384 LIMIT 1",
            (),
        )
        .await
        .unwrap();
    let app_row = read_table(&t.conn, "embeddings_384", true).await["application-row"].clone();

    let rolled = run(&t.conn, rollback(None)).await.unwrap();
    let r = rolled.rollback.as_ref().unwrap();
    assert!(!r.restored_legacy);
    assert_eq!(r.removed.values().sum::<u64>(), report.rows_written());
    assert_eq!(
        read_table(&t.conn, "embeddings_384", true).await,
        BTreeMap::from([("application-row".to_string(), app_row)]),
        "the application's row is kept, the migrated rows are gone"
    );
    let emptied: BTreeSet<&str> = TARGETS
        .into_iter()
        .filter(|t| *t != "embeddings_384")
        .collect();
    for table in &emptied {
        assert!(!exists(&t.conn, table).await, "{table} was not dropped");
    }
    assert_eq!(
        r.dropped_tables
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        emptied
    );
    for table in BOOKKEEPING {
        assert!(!exists(&t.conn, table).await, "{table} was not dropped");
    }
    assert_eq!(meta(&t.conn, metadata::COMPLETED_AT).await, None);
    assert_eq!(meta(&t.conn, metadata::CREATED_TABLES).await, None);
    assert_eq!(digest(&t.conn, "embeddings").await.unwrap(), legacy_digest);
    assert_eq!(read_table(&t.conn, "embeddings", true).await, legacy);
}

#[tokio::test]
async fn a_full_rollback_after_the_drop_restores_the_legacy_table_exactly() {
    let (t, summary) = TestDb::sample(&small_spec(300, 59)).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let legacy_digest = digest(&t.conn, "embeddings").await.unwrap();
    let schema = legacy_schema(&t.conn).await.unwrap();

    let options = MigrationOptions {
        backup: true,
        ..drop_old(true)
    };
    let report = run(&t.conn, options).await.unwrap();
    let dropped = report.dropped_legacy.as_ref().unwrap();
    assert!(
        !dropped.backup_refreshed,
        "the backup made before the copy still held every row"
    );
    assert!(!exists(&t.conn, "embeddings").await);

    let rolled = run(&t.conn, rollback(None)).await.unwrap();
    let r = rolled.rollback.as_ref().unwrap();
    assert!(r.restored_legacy);
    assert_eq!(read_table(&t.conn, "embeddings", true).await, legacy);
    assert_eq!(digest(&t.conn, "embeddings").await.unwrap(), legacy_digest);
    assert!(exists(&t.conn, "idx_embeddings_item").await);
    assert_eq!(legacy_schema(&t.conn).await.unwrap(), schema);
    for table in TARGETS.into_iter().chain(BOOKKEEPING) {
        assert!(!exists(&t.conn, table).await, "{table} was not dropped");
    }
    assert_eq!(meta(&t.conn, metadata::LEGACY_DROPPED_AT).await, None);

    let again = run(&t.conn, execute()).await.unwrap();
    assert_eq!(again.rows_written(), good_rows(&summary));
    assert!(again.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test]
async fn a_partial_rollback_undoes_only_the_rows_after_its_checkpoint() {
    let (t, summary) = TestDb::sample(&small_spec(400, 61)).await;
    let bad = bad_ids(&summary);
    run(&t.conn, execute()).await.unwrap();
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let k = legacy.keys().nth(199).unwrap().clone();
    let good_after_k = legacy
        .keys()
        .filter(|id| **id > k && !bad.contains(id))
        .count() as u64;
    assert!(good_after_k > 0);
    let before = target_rows(&t.conn).await;
    let kept: BTreeMap<_, _> = before.into_iter().filter(|((_, id), _)| *id <= k).collect();
    assert!(!kept.is_empty());

    let report = run(&t.conn, rollback(Some(&k))).await.unwrap();
    let r = report.rollback.as_ref().unwrap();
    assert_eq!(r.checkpoint.as_deref(), Some(k.as_str()));
    assert_eq!(r.removed.values().sum::<u64>(), good_after_k);
    assert_eq!(
        target_rows(&t.conn).await,
        kept,
        "rows after {k} are gone, rows up to it untouched"
    );
    let mut rows = t
        .conn
        .query(
            "SELECT last_embedding_id FROM embedding_migration_checkpoint WHERE id = 1",
            (),
        )
        .await
        .unwrap();
    let checkpoint = rows.next().await.unwrap().unwrap().get_value(0).unwrap();
    assert_eq!(checkpoint, Value::Text(k.clone()));
    drop(rows);

    let again = run(&t.conn, execute()).await.unwrap();
    assert_eq!(again.resumed_from.as_deref(), Some(k.as_str()));
    assert_eq!(again.rows_written(), good_after_k);
    assert!(again.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad, true).await;
}

#[tokio::test]
async fn a_completed_migration_is_recorded_in_metadata() {
    let (t, summary) = TestDb::sample(&small_spec(300, 67)).await;
    let report = run(&t.conn, execute()).await.unwrap();
    assert!(report.verification.as_ref().unwrap().passed);

    let counts: BTreeMap<String, u64> =
        serde_json::from_str(&meta(&t.conn, metadata::ROW_COUNTS).await.unwrap()).unwrap();
    assert_eq!(counts.values().sum::<u64>(), good_rows(&summary));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (dim, n) in &summary.valid_per_dimension {
        *expected
            .entry(expected_table(*dim as usize).to_string())
            .or_default() += *n as u64;
    }
    assert_eq!(counts, expected);
    assert_eq!(
        meta(&t.conn, metadata::QUARANTINED).await,
        Some(summary.bad.len().to_string())
    );
    assert_eq!(
        meta(&t.conn, metadata::SCHEMA_VERSION).await.as_deref(),
        Some("2")
    );
    let completed: i64 = meta(&t.conn, metadata::COMPLETED_AT)
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(completed > 1_700_000_000, "{completed}");
}
