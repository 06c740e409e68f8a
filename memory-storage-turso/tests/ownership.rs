//! The migration owns exactly the rows and objects it wrote: the
//! application's rows in the new tables, its own tables, indexes and
//! metadata are never overwritten, deleted or dropped — not by the copy,
//! not by a re-run, not by a rollback, which puts the database back as it
//! was before the first run.

use std::collections::BTreeMap;

use libsql::Value;
use memory_storage_turso::migration::report::{ConflictKind, Newer};
use memory_storage_turso::migration::{
    run_migration, ConflictPolicy, MigrationOptions, NoopObserver,
};
use memory_storage_turso::sample::{encode_json, vector_bytes};
use memory_storage_turso::schema::TargetTable;
use test_support::*;

fn execute(policy: ConflictPolicy, index: bool) -> MigrationOptions {
    MigrationOptions {
        batch_size: 40,
        build_vector_index: index,
        on_conflict: policy,
        ..Default::default()
    }
}

fn dry_run() -> MigrationOptions {
    MigrationOptions {
        dry_run: true,
        ..Default::default()
    }
}

fn rollback() -> MigrationOptions {
    MigrationOptions {
        rollback: true,
        ..Default::default()
    }
}

/// The application's own row for a legacy key: a newer vector, model and
/// `created_at`, written the way the multi-dimension store writes it.
fn newer_version(legacy: &StoredRow, salt: f32) -> StoredRow {
    let Value::Integer(dim) = legacy[5] else {
        panic!("dimension")
    };
    let v: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.001 + salt).sin()).collect();
    let Value::Integer(created) = legacy[7] else {
        panic!("created_at")
    };
    vec![
        legacy[0].clone(),
        legacy[1].clone(),
        legacy[2].clone(),
        Value::Text(encode_json(&v)),
        Value::Blob(vector_bytes(&v)),
        Value::Integer(dim),
        Value::Text("application-model".into()),
        Value::Integer(created + 1000),
    ]
}

async fn insert(conn: &libsql::Connection, table: &str, row: StoredRow) {
    conn.execute(
        &format!("INSERT INTO {table} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        row,
    )
    .await
    .unwrap();
}

/// A legacy database whose application already wrote some keys to
/// `embeddings_384` (newer versions, and one key of its own), with an index
/// of its own on that table, and a table of its own.
async fn database_with_application_rows() -> (TestDb, Vec<String>, BTreeMap<String, StoredRow>) {
    let (t, summary) = TestDb::sample(&small_spec(300, 21)).await;
    let bad = bad_ids(&summary);
    let legacy = read_table(&t.conn, "embeddings", true).await;
    t.conn
        .execute(TargetTable::D384.create_table_sql(), ())
        .await
        .unwrap();
    t.conn
        .execute(
            "CREATE INDEX application_model ON embeddings_384(model)",
            (),
        )
        .await
        .unwrap();
    t.conn
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('keep me'), (x'00ff');",
        )
        .await
        .unwrap();
    let mut conflicting = Vec::new();
    let mut app_rows = BTreeMap::new();
    for (id, row) in legacy
        .iter()
        .filter(|(id, r)| r[5] == Value::Integer(384) && !bad.contains(*id))
        .take(4)
    {
        let mine = newer_version(row, conflicting.len() as f32);
        insert(&t.conn, "embeddings_384", mine.clone()).await;
        app_rows.insert(id.clone(), mine);
        conflicting.push(id.clone());
    }
    let mut own = newer_version(&legacy[&conflicting[0]], 9.0);
    own[0] = Value::Text("application-only".into());
    insert(&t.conn, "embeddings_384", own.clone()).await;
    app_rows.insert("application-only".into(), own);
    (t, conflicting, app_rows)
}

#[tokio::test]
async fn rows_already_in_the_new_tables_are_never_overwritten_or_removed() {
    let (t, conflicting, app_rows) = database_with_application_rows().await;
    let before = dump_database(&t.conn).await;
    let objects_before = schema_objects(&t.conn).await;

    let plan = run_migration(&t.conn, &dry_run(), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(plan.conflict_count, conflicting.len() as u64);
    for c in &plan.conflicts {
        assert!(conflicting.contains(&c.embedding_id), "{c:?}");
        assert_eq!(c.table, "embeddings_384");
        assert_eq!(c.kind, ConflictKind::NotWrittenByMigration);
        assert_eq!(c.newer, Newer::Target);
        assert_ne!(c.legacy_fingerprint, c.target_fingerprint);
    }
    assert_same_database(&before, &dump_database(&t.conn).await, "after a dry run");

    for run in 0..2 {
        let report = run_migration(
            &t.conn,
            &execute(ConflictPolicy::Target, true),
            &NoopObserver,
        )
        .await
        .unwrap();
        let v = report.verification.as_ref().unwrap();
        assert!(v.passed, "run {run}: {:?}", v.discrepancies);
        assert_eq!(v.repaired, 0, "run {run}");
        assert_eq!(report.conflict_count, conflicting.len() as u64, "run {run}");
        if run == 1 {
            assert_eq!(report.rows_written(), 0);
        }
        let now = read_table(&t.conn, "embeddings_384", true).await;
        for (id, row) in &app_rows {
            assert_eq!(&now[id], row, "run {run}: the application's row {id}");
        }
        assert!(schema_objects(&t.conn)
            .await
            .iter()
            .any(|o| o.starts_with("index application_model ON embeddings_384")));
    }
    assert!(
        memory_storage_turso::schema::object_exists(&t.conn, "idx_embeddings_384_vector")
            .await
            .unwrap(),
        "the vector index was built in place"
    );

    let undone = run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap()
        .rollback
        .unwrap();
    assert!(!undone.nothing_to_undo);
    assert_same_database(&before, &dump_database(&t.conn).await, "after the rollback");
    assert_eq!(schema_objects(&t.conn).await, objects_before);
}

#[tokio::test]
async fn an_application_update_after_the_migration_survives_a_rerun_and_a_rollback() {
    let (t, summary) = TestDb::sample(&small_spec(200, 22)).await;
    let bad = bad_ids(&summary);
    let before = dump_database(&t.conn).await;
    run_migration(
        &t.conn,
        &execute(ConflictPolicy::Target, false),
        &NoopObserver,
    )
    .await
    .unwrap();
    let migrated = read_table(&t.conn, "embeddings_384", true).await;
    let (id, row) = migrated.iter().find(|(id, _)| !bad.contains(*id)).unwrap();
    let updated = newer_version(row, 3.0);
    t.conn
        .execute(
            "DELETE FROM embeddings_384 WHERE embedding_id = ?1",
            [id.as_str()],
        )
        .await
        .unwrap();
    insert(&t.conn, "embeddings_384", updated.clone()).await;

    let rerun = run_migration(
        &t.conn,
        &execute(ConflictPolicy::Target, false),
        &NoopObserver,
    )
    .await
    .unwrap();
    let v = rerun.verification.as_ref().unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_eq!(v.repaired, 0, "the application's write is not 'repaired'");
    assert_eq!(rerun.conflict_count, 1);
    assert_eq!(rerun.conflicts[0].embedding_id, *id);
    assert_eq!(rerun.conflicts[0].kind, ConflictKind::ChangedSinceWritten);
    assert_eq!(
        read_table(&t.conn, "embeddings_384", true).await[id],
        updated
    );

    let undone = run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap()
        .rollback
        .unwrap();
    assert_eq!(undone.kept_changed_count, 1);
    assert!(undone.kept_changed[0].starts_with(id.as_str()));
    assert_eq!(undone.kept_tables, ["embeddings_384"]);
    // Everything is as it was, plus the application's own write.
    let after = dump_database(&t.conn).await;
    assert_eq!(after["embeddings"], before["embeddings"]);
    let rows = read_table(&t.conn, "embeddings_384", true).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[id], updated);
    let mut names: Vec<&String> = after.keys().collect();
    names.retain(|n| *n != "embeddings_384");
    assert_eq!(names, before.keys().collect::<Vec<_>>());
}

#[tokio::test]
async fn on_conflict_legacy_saves_what_it_replaces_and_a_rollback_puts_it_back() {
    let (t, conflicting, app_rows) = database_with_application_rows().await;
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let before = dump_database(&t.conn).await;
    let plan = run_migration(
        &t.conn,
        &MigrationOptions {
            on_conflict: ConflictPolicy::Legacy,
            ..dry_run()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    assert_eq!(plan.conflict_count, conflicting.len() as u64);

    let report = run_migration(
        &t.conn,
        &execute(ConflictPolicy::Legacy, false),
        &NoopObserver,
    )
    .await
    .unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    assert_eq!(report.displaced, conflicting.len() as u64);
    assert_eq!(report.conflict_count, 0, "the legacy rows won");
    let now = read_table(&t.conn, "embeddings_384", true).await;
    for id in &conflicting {
        assert_eq!(now[id][6], legacy[id][6], "the legacy row was written");
        assert_ne!(now[id], app_rows[id]);
    }
    assert_eq!(now["application-only"], app_rows["application-only"]);
    let saved: i64 = {
        let mut r = t
            .conn
            .query("SELECT count(*) FROM embedding_migration_displaced", ())
            .await
            .unwrap();
        r.next().await.unwrap().unwrap().get(0).unwrap()
    };
    assert_eq!(saved, conflicting.len() as i64);

    let undone = run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap()
        .rollback
        .unwrap();
    assert_eq!(undone.restored_displaced, conflicting.len() as u64);
    assert_same_database(&before, &dump_database(&t.conn).await, "after the rollback");
}

#[tokio::test]
async fn null_and_shared_keys_are_quarantined_and_reach_no_table() {
    let t = TestDb::empty().await;
    t.conn
        .execute_batch(
            "CREATE TABLE embeddings (embedding_id TEXT, item_id TEXT, item_type TEXT, \
             embedding_data TEXT, dimension INTEGER, model TEXT, created_at INTEGER)",
        )
        .await
        .unwrap();
    let add = |id: Option<&str>, dim: usize| {
        let v: Vec<f32> = (0..dim).map(|i| i as f32 / 7.0).collect();
        vec![
            id.map_or(Value::Null, |s| Value::Text(s.into())),
            Value::Text("item".into()),
            Value::Text("note".into()),
            Value::Text(encode_json(&v)),
            Value::Integer(dim as i64),
            Value::Text("m".into()),
            Value::Integer(1_700_000_000),
        ]
    };
    let rows = [
        add(Some("a"), 3),
        add(None, 3),
        add(Some("b"), 384),
        add(Some("b"), 3),
        add(Some("b"), 3),
        add(Some("c"), 384),
        add(None, 384),
        add(Some("d"), 5),
    ];
    for row in rows {
        t.conn
            .execute(
                "INSERT INTO embeddings VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                row,
            )
            .await
            .unwrap();
    }
    let legacy_before = dump_database(&t.conn).await["embeddings"].clone();
    let plan = run_migration(&t.conn, &dry_run(), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(plan.quarantined_by_reason["null_embedding_id"], 2);
    assert_eq!(plan.quarantined_by_reason["duplicate_embedding_id"], 1);
    // A batch of two rows cuts the window inside the shared key.
    for batch in [2, 1000] {
        let report = run_migration(
            &t.conn,
            &MigrationOptions {
                batch_size: batch,
                ..execute(ConflictPolicy::Target, false)
            },
            &NoopObserver,
        )
        .await
        .unwrap();
        assert_eq!(report.quarantined_count, 3, "batch {batch}");
        assert_eq!(report.quarantined_by_reason["null_embedding_id"], 2);
        assert_eq!(report.quarantined_by_reason["duplicate_embedding_id"], 1);
        assert!(report.verification.as_ref().unwrap().passed);
        for table in ["embeddings_384", "embeddings_other"] {
            let held = read_table(&t.conn, table, true).await;
            assert!(!held.contains_key("b"), "batch {batch}: b reached {table}");
        }
        assert_eq!(read_table(&t.conn, "embeddings_other", true).await.len(), 2);
        assert_eq!(read_table(&t.conn, "embeddings_384", true).await.len(), 1);
    }
    assert_eq!(dump_database(&t.conn).await["embeddings"], legacy_before);
}

#[tokio::test]
async fn a_rollback_with_nothing_to_undo_writes_nothing() {
    let (t, _) = TestDb::sample(&small_spec(50, 23)).await;
    let before = dump_database(&t.conn).await;
    let objects = schema_objects(&t.conn).await;
    let undone = run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap()
        .rollback
        .unwrap();
    assert!(undone.nothing_to_undo);
    assert_same_database(&before, &dump_database(&t.conn).await, "after the rollback");
    assert_eq!(schema_objects(&t.conn).await, objects);

    // After a full migration and its rollback, a second rollback finds
    // nothing either.
    run_migration(
        &t.conn,
        &execute(ConflictPolicy::Target, true),
        &NoopObserver,
    )
    .await
    .unwrap();
    run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap();
    assert_same_database(&before, &dump_database(&t.conn).await, "after the rollback");
    assert_eq!(schema_objects(&t.conn).await, objects);
    let again = run_migration(&t.conn, &rollback(), &NoopObserver)
        .await
        .unwrap()
        .rollback
        .unwrap();
    assert!(again.nothing_to_undo);
}
