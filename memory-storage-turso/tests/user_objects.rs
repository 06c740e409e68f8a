//! Nothing the migration did not write is overwritten, deleted or dropped:
//! a user's table that has the backup's name, legacy columns the new
//! tables do not have, and the state of the database before the first
//! write (the `--backup-file` copy).

use libsql::{Builder, Connection, Value};
use memory_storage_turso::migration::report::ExtraColumn;
use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{
    run_migration, run_migration_reported, FailureKind, MigrationOptions, MigrationReport,
    NoopObserver,
};
use memory_storage_turso::schema::object_exists;
use test_support::*;

fn execute() -> MigrationOptions {
    MigrationOptions {
        batch_size: 40,
        build_vector_index: false,
        ..Default::default()
    }
}

fn with_backup(table: Option<&str>) -> MigrationOptions {
    MigrationOptions {
        backup: true,
        backup_table: table.map(str::to_string),
        ..execute()
    }
}

fn drop_old() -> MigrationOptions {
    MigrationOptions {
        drop_old_table: true,
        ..execute()
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

/// A legacy database without bad rows (so the drop needs no flag).
async fn clean_sample(rows: usize, seed: u64) -> TestDb {
    let mut spec = small_spec(rows, seed);
    spec.bad_rows = 0;
    TestDb::sample(&spec).await.0
}

/// Every schema object: type, name, table and SQL, by name.
async fn schema(conn: &Connection) -> Vec<Vec<Value>> {
    all_rows(
        conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
    )
    .await
}

async fn all_rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut rows = conn.query(sql, ()).await.unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        let n = row.column_count();
        out.push((0..n).map(|i| row.get_value(i).unwrap()).collect());
    }
    out
}

fn names(schema: &[Vec<Value>]) -> Vec<String> {
    schema
        .iter()
        .map(|r| match &r[1] {
            Value::Text(s) => s.clone(),
            other => panic!("name {other:?}"),
        })
        .collect()
}

/// The user's own `embeddings_backup`: other columns, other rows.
async fn make_users_table(conn: &Connection) -> Vec<Vec<Value>> {
    conn.execute(
        "CREATE TABLE embeddings_backup (id INTEGER PRIMARY KEY, note TEXT NOT NULL, score REAL, raw BLOB)",
        (),
    )
    .await
    .unwrap();
    for i in 0..25i64 {
        conn.execute(
            "INSERT INTO embeddings_backup (id, note, score, raw) VALUES (?1, ?2, ?3, ?4)",
            vec![
                Value::Integer(i),
                Value::Text(format!("the user's row {i}")),
                Value::Real(i as f64 / 7.0),
                Value::Blob(vec![i as u8; 5]),
            ],
        )
        .await
        .unwrap();
    }
    users_rows(conn).await
}

async fn users_rows(conn: &Connection) -> Vec<Vec<Value>> {
    all_rows(conn, "SELECT * FROM embeddings_backup ORDER BY id").await
}

#[tokio::test]
async fn a_users_embeddings_backup_is_never_touched_and_another_name_is_used() {
    let t = clean_sample(200, 83).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let users = make_users_table(&t.conn).await;
    assert_eq!(users.len(), 25);
    let before = schema(&t.conn).await;

    // --backup, and --drop-old-table (which makes a backup): refused
    // before the run writes anything.
    for options in [with_backup(None), drop_old()] {
        let err = run(&t.conn, options).await.unwrap_err();
        assert!(
            matches!(&err, MigrateError::BackupTableExists { table } if table == "embeddings_backup"),
            "{err}"
        );
        assert!(err.is_refusal());
        assert!(err.to_string().contains("--backup-table NAME"), "{err}");
        assert_eq!(users_rows(&t.conn).await, users, "the user's table changed");
        assert_eq!(
            schema(&t.conn).await,
            before,
            "the refused run created or changed a schema object"
        );
    }
    for target in TARGETS {
        assert!(!exists(&t.conn, target).await, "{target} was created");
    }
    assert!(!exists(&t.conn, "embedding_migration_lock").await);
    assert!(!exists(&t.conn, "metadata").await);

    // A name of the tool's own is refused as such, before anything too.
    let err = run(&t.conn, with_backup(Some("embeddings_384")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::BackupTableNameInvalid { name, .. } if name == "embeddings_384"),
        "{err}"
    );
    assert_eq!(schema(&t.conn).await, before);

    // Another name: the run goes through, the user's table untouched.
    let report = run(&t.conn, with_backup(Some("my_backup"))).await.unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    let backup = report.backup.as_ref().unwrap();
    assert_eq!(backup.status, "created");
    assert_eq!(backup.table, "my_backup");
    assert_eq!(backup.digest.rows, 200);
    assert_eq!(read_table(&t.conn, "my_backup", true).await, legacy);
    assert_eq!(users_rows(&t.conn).await, users);
    assert_eq!(
        scalar_text(
            &t.conn,
            "SELECT value FROM metadata WHERE key = 'embeddings_migration.backup_table'"
        )
        .await
        .as_deref(),
        Some("my_backup")
    );

    // Again, naming it or not: the recorded backup is proven, not remade.
    for name in [Some("my_backup"), Some("MY_BACKUP"), None] {
        let again = run(&t.conn, with_backup(name)).await.unwrap();
        let b = again.backup.as_ref().unwrap();
        assert_eq!(b.status, "verified", "{name:?}");
        assert_eq!(&b.digest, &backup.digest);
    }
    assert_eq!(users_rows(&t.conn).await, users);

    // The drop uses the recorded backup, which already holds every row.
    let dropped = run(&t.conn, drop_old()).await.unwrap();
    let d = dropped.dropped_legacy.as_ref().unwrap();
    assert_eq!(d.backup_table, "my_backup");
    assert!(!d.backup_refreshed);
    assert_eq!(&d.backup, &backup.digest);
    assert!(!exists(&t.conn, "embeddings").await);
    assert_eq!(read_table(&t.conn, "my_backup", true).await, legacy);
    assert_eq!(users_rows(&t.conn).await, users);

    // The rollback restores `embeddings` from `my_backup`.
    let rolled = run(
        &t.conn,
        MigrationOptions {
            rollback: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(rolled.rollback.as_ref().unwrap().restored_legacy);
    assert_eq!(read_table(&t.conn, "embeddings", true).await, legacy);
    assert_eq!(users_rows(&t.conn).await, users);
    for target in TARGETS {
        assert!(!exists(&t.conn, target).await, "{target} was kept");
    }
}

/// A user's table with the name of an index build's working table
/// (`embeddings_384_indexing`) is never dropped: that table's index is
/// built in place instead, and the run ends verified.
#[tokio::test]
async fn a_users_table_named_like_the_index_build_is_never_dropped() {
    let t = clean_sample(120, 29).await;
    t.conn
        .execute(
            "CREATE TABLE embeddings_384_indexing (id INTEGER PRIMARY KEY, note TEXT)",
            (),
        )
        .await
        .unwrap();
    t.conn
        .execute(
            "INSERT INTO embeddings_384_indexing (note) VALUES ('the user''s'), ('rows')",
            (),
        )
        .await
        .unwrap();
    let sql = "SELECT * FROM embeddings_384_indexing ORDER BY id";
    let users = all_rows(&t.conn, sql).await;
    let options = MigrationOptions {
        build_vector_index: true,
        ..execute()
    };
    let report = run(&t.conn, options).await.unwrap();
    assert!(report.verification.unwrap().passed);
    assert_eq!(
        all_rows(&t.conn, sql).await,
        users,
        "the user's table changed"
    );
    let on: Vec<Vec<Value>> = all_rows(
        &t.conn,
        "SELECT tbl_name FROM sqlite_master WHERE name = 'idx_embeddings_384_vector'",
    )
    .await;
    assert_eq!(on, vec![vec![Value::Text("embeddings_384".into())]]);
}

/// The same table survives the rollback of a run by an older version,
/// which kept no record of what was there before: only a build in
/// progress (its progress row) says the working table is the migration's.
#[tokio::test]
async fn a_users_table_named_like_the_index_build_survives_rolling_back_an_older_run() {
    let t = clean_sample(120, 31).await;
    for sql in [
        "CREATE TABLE embeddings_1024_indexing (id INTEGER PRIMARY KEY, note TEXT)",
        "INSERT INTO embeddings_1024_indexing (note) VALUES ('kept')",
    ] {
        t.conn.execute(sql, ()).await.unwrap();
    }
    let sql = "SELECT * FROM embeddings_1024_indexing ORDER BY id";
    let users = all_rows(&t.conn, sql).await;
    run(&t.conn, execute()).await.unwrap();
    // What an older version's run leaves: no record of the objects before.
    let erased = t
        .conn
        .execute(
            "DELETE FROM metadata WHERE key IN ('embeddings_migration.prior_objects', 'embeddings_migration.prior_schema_version')",
            (),
        )
        .await
        .unwrap();
    assert_eq!(erased, 2);
    let options = MigrationOptions {
        rollback: true,
        ..execute()
    };
    let rolled = run(&t.conn, options).await.unwrap();
    assert!(rolled.rollback.is_some());
    assert!(!exists(&t.conn, "embeddings_384").await, "not rolled back");
    assert_eq!(
        all_rows(&t.conn, sql).await,
        users,
        "the user's table changed"
    );
}

#[tokio::test]
async fn a_users_index_named_like_the_scan_index_survives_rolling_back_an_older_run() {
    let t = clean_sample(120, 37).await;
    t.conn
        .execute(
            "CREATE INDEX idx_embeddings_384_scan ON embeddings (model)",
            (),
        )
        .await
        .unwrap();
    run(&t.conn, execute()).await.unwrap();
    // What an older version's run leaves: no record of the objects before.
    t.conn
        .execute(
            "DELETE FROM metadata WHERE key IN ('embeddings_migration.prior_objects', 'embeddings_migration.prior_schema_version')",
            (),
        )
        .await
        .unwrap();
    let options = MigrationOptions {
        rollback: true,
        ..execute()
    };
    let rolled = run(&t.conn, options).await.unwrap();
    assert!(rolled.rollback.is_some());
    assert!(!exists(&t.conn, "embeddings_384").await, "not rolled back");
    assert!(
        exists(&t.conn, "idx_embeddings_384_scan").await,
        "the user's index was dropped"
    );
}

#[tokio::test]
async fn the_migrations_own_stale_backup_is_refreshed_by_the_drop() {
    let t = clean_sample(120, 97).await;
    let first = run(&t.conn, with_backup(Some("kept_rows"))).await.unwrap();
    let made = first.backup.unwrap().digest;
    // The application changes a legacy row after the backup was made.
    t.conn
        .execute(
            "UPDATE embeddings SET model = 'changed-later' WHERE embedding_id = (SELECT min(embedding_id) FROM embeddings)",
            (),
        )
        .await
        .unwrap();
    let legacy = read_table(&t.conn, "embeddings", true).await;

    let report = run(&t.conn, drop_old()).await.unwrap();
    let d = report.dropped_legacy.as_ref().unwrap();
    assert_eq!(d.backup_table, "kept_rows");
    assert!(d.backup_refreshed, "the stale backup (ours) was remade");
    assert_ne!(d.backup, made);
    assert_eq!(read_table(&t.conn, "kept_rows", true).await, legacy);
    assert!(!exists(&t.conn, "embeddings_backup").await);
}

#[tokio::test]
async fn extra_legacy_columns_stop_the_run_and_then_the_drop() {
    let t = clean_sample(200, 89).await;
    for sql in [
        "ALTER TABLE embeddings ADD COLUMN note TEXT",
        "ALTER TABLE embeddings ADD COLUMN \"spare \"\"col\" INTEGER",
        "UPDATE embeddings SET note = 'keep me: ' || embedding_id WHERE rowid % 9 = 0",
    ] {
        t.conn.execute(sql, ()).await.unwrap();
    }
    let notes_sql = "SELECT embedding_id, note FROM embeddings ORDER BY embedding_id";
    let notes = all_rows(&t.conn, notes_sql).await;
    let with_note = notes.iter().filter(|r| r[1] != Value::Null).count() as u64;
    assert!(with_note > 10, "{with_note}");
    let expected = vec![
        ExtraColumn {
            name: "note".into(),
            rows_with_data: with_note,
        },
        ExtraColumn {
            name: "spare \"col".into(),
            rows_with_data: 0,
        },
    ];

    let dry = run(
        &t.conn,
        MigrationOptions {
            dry_run: true,
            ..execute()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.extra_columns, expected);
    let json = serde_json::to_value(&dry).unwrap();
    assert_eq!(json["extra_columns"][0]["name"], "note");
    assert_eq!(json["extra_columns"][0]["rows_with_data"], with_note);

    let before = schema(&t.conn).await;
    let failed = run_migration_reported(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap_err();
    let MigrateError::ExtraLegacyColumns { columns } = &failed.error else {
        panic!("expected extra columns, got {}", failed.error)
    };
    assert_eq!(columns, &expected);
    let message = failed.error.to_string();
    assert!(
        message.contains(&format!("`note` ({with_note} rows with a value)")),
        "{message}"
    );
    assert!(message.contains("--ignore-extra-columns"), "{message}");
    assert_eq!(
        failed.report.failure.as_ref().unwrap().kind,
        FailureKind::Refused
    );
    assert_eq!(failed.report.extra_columns, expected);
    assert_eq!(schema(&t.conn).await, before, "the refused run wrote");
    assert!(names(&before)
        .iter()
        .all(|n| !n.starts_with("embedding_migration_") && !TARGETS.contains(&n.as_str())));

    let ignore = MigrationOptions {
        ignore_extra_columns: true,
        ..execute()
    };
    let report = run(&t.conn, ignore.clone()).await.unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    assert_eq!(report.extra_columns, expected);
    assert_migrated_exactly(&t.conn, &[], true).await;

    let err = run(
        &t.conn,
        MigrationOptions {
            drop_old_table: true,
            ..ignore.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MigrateError::DropRefused(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("`note` ({with_note} rows with a value)")),
        "{message}"
    );
    assert!(!message.contains("spare"), "{message}");
    assert!(exists(&t.conn, "embeddings").await);
    assert_eq!(all_rows(&t.conn, notes_sql).await, notes);

    // Once the column holds nothing, the drop goes through (an empty extra
    // column does not stop it).
    t.conn
        .execute("UPDATE embeddings SET note = NULL", ())
        .await
        .unwrap();
    let report = run(
        &t.conn,
        MigrationOptions {
            drop_old_table: true,
            ..ignore
        },
    )
    .await
    .unwrap();
    assert!(report.dropped_legacy.is_some());
    assert!(!exists(&t.conn, "embeddings").await);
}

#[tokio::test]
async fn the_backup_file_is_taken_before_the_first_write() {
    let t = clean_sample(150, 101).await;
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let before = schema(&t.conn).await;

    // An existing file: refused, and nothing was written to the database.
    let taken = t.dir.path().join("taken.db");
    std::fs::write(&taken, b"not mine to overwrite").unwrap();
    let err = run(
        &t.conn,
        MigrationOptions {
            backup_file: Some(taken.clone()),
            ..with_backup(None)
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, MigrateError::BackupFileExists { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&taken).unwrap(), b"not mine to overwrite");
    assert_eq!(schema(&t.conn).await, before, "the refused run wrote");

    let path = t.dir.path().join("before.db");
    let report = run(
        &t.conn,
        MigrationOptions {
            backup_file: Some(path.clone()),
            ..with_backup(None)
        },
    )
    .await
    .unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    assert!(exists(&t.conn, "embeddings_backup").await);
    assert!(exists(&t.conn, "embedding_migration_checkpoint").await);

    let copy = Builder::new_local(&path).build().await.unwrap();
    let conn = copy.connect().unwrap();
    let in_copy = schema(&conn).await;
    for name in names(&in_copy) {
        assert!(
            !TARGETS.contains(&name.as_str()),
            "the copy holds the target table {name}"
        );
        assert!(
            !name.starts_with("embedding_migration_"),
            "the copy holds the bookkeeping table {name}"
        );
        assert!(
            name != "embeddings_backup" && name != "metadata",
            "the copy holds {name}"
        );
    }
    assert_eq!(in_copy, before, "the copy is the database before the run");
    assert_eq!(read_table(&conn, "embeddings", true).await, legacy);
}
