//! The whole job on a mixed legacy database: execute, verify, re-run, and
//! later changes to the legacy table picked up by the next run.

use libsql::Value;
use memory_storage_turso::migration::report::ConflictKind;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver, RunMode};
use memory_storage_turso::sample::{encode_json, insert_legacy_rows, LegacyRow};
use test_support::*;

fn execute(batch: usize) -> MigrationOptions {
    MigrationOptions {
        batch_size: batch,
        build_vector_index: false,
        ..Default::default()
    }
}

fn verify_only() -> MigrationOptions {
    MigrationOptions {
        verify_only: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_row_migrates_bit_exact_and_a_rerun_does_nothing() {
    let (t, summary) = TestDb::sample(&small_spec(3000, 7)).await;
    let report = run_migration(&t.conn, &execute(128), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(report.mode, RunMode::Execute);
    assert_eq!(report.source_rows, 3000);
    let good = 3000 - summary.bad.len() as u64;
    assert_eq!(report.rows_written(), good);
    assert_eq!(report.quarantined_count, summary.bad.len() as u64);
    let v = report.verification.as_ref().unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_eq!(v.rows_checked, 3000);
    for (dim, n) in &summary.valid_per_dimension {
        let table = expected_table(*dim as usize);
        assert_eq!(
            report.migrated.as_ref().unwrap()[table],
            *n as u64,
            "{table}"
        );
        assert_eq!(v.tables[table].expected, *n as u64);
        assert_eq!(v.tables[table].actual, *n as u64);
    }
    let checked = assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    assert_eq!(checked as u64, good);
    assert_eq!(
        count(&t.conn, "embeddings").await,
        3000,
        "legacy rows are never removed"
    );

    let again = run_migration(&t.conn, &execute(128), &NoopObserver)
        .await
        .unwrap();
    assert!(again.nothing_to_do);
    assert_eq!(again.rows_written(), 0);
    assert_eq!(
        again.already_migrated.values().sum::<u64>(),
        0,
        "nothing after the checkpoint"
    );
    assert!(again.verification.unwrap().passed);
    assert_eq!(again.quarantined_count, summary.bad.len() as u64);
}

#[tokio::test]
async fn rows_written_after_a_finished_run_are_picked_up_and_changes_repaired() {
    let (t, summary) = TestDb::sample(&small_spec(800, 3)).await;
    run_migration(&t.conn, &execute(100), &NoopObserver)
        .await
        .unwrap();

    // New rows on both sides of the checkpoint, and an update to a migrated row.
    let v: Vec<f32> = (0..768).map(|i| i as f32 * 0.25 - 3.0).collect();
    let new_row = |id: &str| LegacyRow {
        embedding_id: id.to_string(),
        item_id: format!("item-{id}"),
        item_type: "episode".into(),
        embedding_data: encode_json(&v),
        embedding_vector: None,
        dimension: 768,
        model: "local".into(),
        created_at: 1_750_000_000,
    };
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let victim = legacy
        .iter()
        .find(|(id, _)| !bad_ids(&summary).contains(id))
        .map(|(id, _)| id.clone())
        .unwrap();
    insert_legacy_rows(
        &t.conn,
        &[new_row("0000-first"), new_row("zzzz-last")],
        true,
    )
    .await
    .unwrap();
    t.conn
        .execute(
            "UPDATE embeddings SET model = 'retrained-model' WHERE embedding_id = ?1",
            [victim.as_str()],
        )
        .await
        .unwrap();

    let check = run_migration(&t.conn, &verify_only(), &NoopObserver)
        .await
        .unwrap();
    let v = check.verification.unwrap();
    assert!(!v.passed);
    let kinds: Vec<(String, String)> = v
        .discrepancies
        .iter()
        .map(|d| (d.embedding_id.clone(), d.kind.to_string()))
        .collect();
    assert!(
        kinds.contains(&("0000-first".into(), "missing".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(victim.clone(), "differs".into())),
        "{kinds:?}"
    );

    let report = run_migration(&t.conn, &execute(100), &NoopObserver)
        .await
        .unwrap();
    assert!(!report.nothing_to_do);
    assert_eq!(report.rows_written(), 3, "two new rows and one changed row");
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

/// Verification tells apart a row this migration wrote wrong (a failure,
/// repaired) from one the application changed after it was written, or a
/// row the migration never wrote (conflicts: reported, never a failure,
/// never repaired or deleted).
#[tokio::test]
async fn verify_tells_our_wrong_rows_from_the_applications_rows() {
    let (t, summary) = TestDb::sample(&small_spec(400, 11)).await;
    run_migration(&t.conn, &execute(1000), &NoopObserver)
        .await
        .unwrap();
    let clean = run_migration(&t.conn, &verify_only(), &NoopObserver)
        .await
        .unwrap();
    assert!(clean.verification.unwrap().passed);

    let rows384 = read_table(&t.conn, "embeddings_384", true).await;
    let mut ids = rows384.keys();
    let (changed_by_app, written_wrong, elsewhere) = (
        ids.next().unwrap().clone(),
        ids.next().unwrap().clone(),
        ids.next().unwrap().clone(),
    );
    let flipped = |id: &str| {
        let libsql::Value::Blob(mut bytes) = rows384[id][4].clone() else {
            panic!("vector is not a blob")
        };
        bytes[7] ^= 0x80; // the sign bit of one float
        bytes
    };
    // The application writes over a migrated row.
    t.conn
        .execute(
            "UPDATE embeddings_384 SET embedding_vector = ?1 WHERE embedding_id = ?2",
            libsql::params![flipped(&changed_by_app), changed_by_app.as_str()],
        )
        .await
        .unwrap();
    // A row the migration wrote wrong: the ledger says it wrote exactly
    // what is there.
    let wrong = flipped(&written_wrong);
    t.conn
        .execute(
            "UPDATE embeddings_384 SET embedding_vector = ?1 WHERE embedding_id = ?2",
            libsql::params![wrong.clone(), written_wrong.as_str()],
        )
        .await
        .unwrap();
    let mut as_written = rows384[&written_wrong].clone();
    as_written[4] = libsql::Value::Blob(wrong);
    let values: Vec<&libsql::Value> = as_written.iter().collect();
    let fp = memory_storage_turso::decode::row::fingerprint(values.try_into().unwrap());
    t.conn
        .execute(
            "UPDATE embedding_migration_ledger SET fingerprint = ?1 WHERE embedding_id = ?2",
            libsql::params![fp, written_wrong.as_str()],
        )
        .await
        .unwrap();
    // A row nobody migrated, in a table its dimension does not belong to.
    t.conn
        .execute(
            "INSERT INTO embeddings_other SELECT 'orphan-id', item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at FROM embeddings_384 LIMIT 1",
            (),
        )
        .await
        .unwrap();
    // The application's copy of a migrated key in another table.
    t.conn
        .execute(
            "INSERT INTO embeddings_1024 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rows384[&elsewhere].clone(),
        )
        .await
        .unwrap();

    let report = run_migration(&t.conn, &verify_only(), &NoopObserver)
        .await
        .unwrap();
    let v = report.verification.unwrap();
    assert!(!v.passed);
    assert_eq!(v.discrepancy_count, 2, "{:?}", v.discrepancies);
    let find = |id: &str| {
        v.discrepancies
            .iter()
            .find(|d| d.embedding_id == id)
            .unwrap()
    };
    assert_eq!(find(&written_wrong).kind, "differs");
    assert!(find(&written_wrong).detail.contains("embedding_vector"));
    assert_eq!(find("orphan-id").kind, "orphan");
    assert_eq!(report.conflict_count, 2, "{:?}", report.conflicts);
    let conflict = |id: &str| {
        report
            .conflicts
            .iter()
            .find(|c| c.embedding_id == id)
            .unwrap()
    };
    assert_eq!(
        conflict(&changed_by_app).kind,
        ConflictKind::ChangedSinceWritten
    );
    assert_eq!(conflict(&changed_by_app).table, "embeddings_384");
    assert_eq!(conflict(&changed_by_app).differs_in, ["embedding_vector"]);
    assert_eq!(
        conflict(&elsewhere).kind,
        ConflictKind::NotWrittenByMigration
    );
    assert_eq!(conflict(&elsewhere).table, "embeddings_1024");

    // Execute repairs its own wrong row; the application's rows and the
    // orphan are left exactly as they are.
    let fixed = run_migration(&t.conn, &execute(1000), &NoopObserver)
        .await
        .unwrap();
    let v = fixed.verification.unwrap();
    assert_eq!(v.discrepancy_count, 1, "{:?}", v.discrepancies);
    assert_eq!(v.discrepancies[0].embedding_id, "orphan-id");
    assert_eq!(fixed.conflict_count, 2);
    let now = read_table(&t.conn, "embeddings_384", true).await;
    assert_eq!(now[&written_wrong], rows384[&written_wrong], "repaired");
    assert_eq!(
        now[&changed_by_app][4],
        libsql::Value::Blob(flipped(&changed_by_app)),
        "the application's write is kept"
    );
    let in_1024 = read_table(&t.conn, "embeddings_1024", true).await;
    assert_eq!(in_1024[&elsewhere], rows384[&elsewhere]);
    t.conn
        .execute(
            "DELETE FROM embeddings_other WHERE embedding_id = 'orphan-id'",
            (),
        )
        .await
        .unwrap();
    t.conn
        .execute(
            "DELETE FROM embeddings_1024 WHERE embedding_id = ?1",
            [elsewhere.as_str()],
        )
        .await
        .unwrap();
    t.conn
        .execute(
            "UPDATE embeddings_384 SET embedding_vector = ?1 WHERE embedding_id = ?2",
            libsql::params![rows384[&changed_by_app][4].clone(), changed_by_app.as_str()],
        )
        .await
        .unwrap();
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test]
async fn legacy_table_without_a_vector_column_migrates() {
    let mut spec = small_spec(600, 5);
    spec.with_vector_column = false;
    let (t, summary) = TestDb::sample(&spec).await;
    let cols = memory_storage_turso::schema::table_columns(&t.conn, "embeddings")
        .await
        .unwrap();
    assert!(!cols.iter().any(|c| c == "embedding_vector"));
    let report = run_migration(&t.conn, &execute(64), &NoopObserver)
        .await
        .unwrap();
    assert!(!report.source_has_vector_column);
    assert!(report.verification.unwrap().passed);
    assert_eq!(report.quarantined_count, summary.bad.len() as u64);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), false).await;
}

#[tokio::test]
async fn tiny_byte_budget_still_covers_every_row_once() {
    let (t, summary) = TestDb::sample(&small_spec(500, 9)).await;
    let options = MigrationOptions {
        batch_bytes: 1, // every window holds one row per table
        ..execute(1000)
    };
    let report = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test]
async fn vector_indexes_are_built_after_the_copy_and_only_once() {
    let mut spec = small_spec(120, 13);
    spec.bad_rows = 0;
    let (t, _) = TestDb::sample(&spec).await;
    let first = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    assert!(
        first.vector_indexes.iter().all(|i| i.status == "skipped"),
        "{:?}",
        first.vector_indexes
    );
    // A later execute builds what is missing, after nothing left to copy.
    let report = run_migration(
        &t.conn,
        &MigrationOptions {
            build_vector_index: true,
            ..execute(50)
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    assert_eq!(report.rows_written(), 0);
    assert!(!report.nothing_to_do, "building indexes is work done");
    assert_eq!(report.vector_indexes.len(), 4);
    assert!(
        report.vector_indexes.iter().all(|i| i.status == "built"),
        "{:?}",
        report.vector_indexes
    );
    // The verification ended with the search smoke test on every index.
    assert_eq!(report.search_checks.len(), 4, "{:?}", report.search_checks);
    for c in &report.search_checks {
        assert!(c.sampled > 0 && c.passed(), "{c:?}");
    }
    assert!(report.verification.as_ref().unwrap().passed);
    for n in [384, 1024, 1536, 3072] {
        assert!(memory_storage_turso::schema::object_exists(
            &t.conn,
            &format!("idx_embeddings_{n}_vector")
        )
        .await
        .unwrap());
    }
    // The index answers a nearest-neighbour query for a migrated vector.
    let rows = read_table(&t.conn, "embeddings_384", true).await;
    let (id, row) = rows.iter().next().unwrap();
    let mut hits = t
        .conn
        .query(
            "SELECT e.embedding_id FROM vector_top_k('idx_embeddings_384_vector', ?1, 1) AS v JOIN embeddings_384 e ON e.rowid = v.id",
            [row[4].clone()],
        )
        .await
        .unwrap();
    let first = hits.next().await.unwrap().unwrap();
    assert_eq!(first.get_value(0).unwrap(), Value::Text(id.clone()));

    let again = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    assert!(again.vector_indexes.iter().all(|i| i.status == "present"));
    assert!(again.nothing_to_do);
}

#[tokio::test]
async fn vector_index_options_are_passed_through() {
    let mut spec = small_spec(60, 19);
    spec.bad_rows = 0;
    let (t, _) = TestDb::sample(&spec).await;
    let options = MigrationOptions {
        build_vector_index: true,
        vector_index: memory_storage_turso::schema::VectorIndexOptions {
            compress_neighbors: memory_storage_turso::schema::NeighborCompression::parse("float8"),
            max_neighbors: Some(16),
            search_l: Some(30),
        },
        ..execute(50)
    };
    let report = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(report.verification.unwrap().passed);
    let mut rows = t
        .conn
        .query(
            "SELECT sql FROM sqlite_master WHERE name = 'idx_embeddings_384_vector'",
            (),
        )
        .await
        .unwrap();
    let sql: String = rows.next().await.unwrap().unwrap().get(0).unwrap();
    assert!(
        sql.contains("'compress_neighbors=float8'") && sql.contains("'max_neighbors=16'"),
        "{sql}"
    );
}

/// Asks the run to stop after its second committed copy batch.
#[tokio::test]
async fn rows_the_application_stores_during_the_transition_are_not_discrepancies() {
    use memory_storage_turso::store::{Embedding, EmbeddingStore};
    let mut spec = small_spec(300, 17);
    spec.bad_rows = 0;
    let (t, _) = TestDb::sample(&spec).await;
    // Half migrated, then the application stores a new embedding and a new
    // version of a legacy one through the store (which writes to the new
    // tables only).
    let half = run_migration(
        &t.conn,
        &MigrationOptions {
            batch_size: 50,
            ..execute(50)
        },
        &StopAfter::batches(2),
    )
    .await
    .unwrap();
    assert!(half.interrupted);
    let store = EmbeddingStore::open(t.db.connect().unwrap()).await.unwrap();
    store
        .store(&Embedding::new(
            "app-new",
            "item-x",
            "episode",
            "m",
            vec![0.5; 1024],
        ))
        .await
        .unwrap();
    let legacy_ids: Vec<String> = read_table(&t.conn, "embeddings", true)
        .await
        .into_keys()
        .collect();
    let last = legacy_ids.last().unwrap().clone();
    store
        .store(&Embedding::new(
            &last,
            "item-y",
            "pattern",
            "m2",
            vec![0.25; 384],
        ))
        .await
        .unwrap();

    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    let v = report.verification.unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_eq!(v.application_rows, 2);
    // The application's newer version survived the migration.
    let rows = read_table(&t.conn, "embeddings_384", true).await;
    assert_eq!(rows[&last][6], libsql::Value::Text("m2".into()));
}

/// After the first committed batch, stores a new version of `key` (a row of
/// the window the copy has already read ahead) through the store, on its
/// own connection and thread, as another process would.
struct StoreDuringCopy {
    path: std::path::PathBuf,
    key: String,
    done: std::sync::atomic::AtomicBool,
}

impl memory_storage_turso::migration::Observer for StoreDuringCopy {
    fn progress(&self, phase: memory_storage_turso::migration::Phase, _done: u64) {
        use std::sync::atomic::Ordering;
        if phase != memory_storage_turso::migration::Phase::Copy
            || self.done.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let (path, key) = (self.path.clone(), self.key.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use memory_storage_turso::store::{Embedding, EmbeddingStore};
                let (_db, conn) = connect(&path, std::time::Duration::from_secs(5)).await;
                let store = EmbeddingStore::open(conn).await.unwrap();
                store
                    .store(&Embedding::new(
                        &key,
                        "item-z",
                        "pattern",
                        "from-store",
                        vec![0.75; 384],
                    ))
                    .await
                    .unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test]
async fn a_store_write_between_reading_a_window_and_writing_it_wins() {
    let mut spec = small_spec(400, 23);
    spec.bad_rows = 0;
    let (t, _) = TestDb::sample(&spec).await;
    // The store needs the tables: a run that stops before its first batch
    // makes them.
    memory_storage_turso::schema::create_target_tables(&t.conn)
        .await
        .unwrap();
    let mut ids: Vec<String> = read_table(&t.conn, "embeddings", true)
        .await
        .into_keys()
        .collect();
    ids.sort();
    // Window 2 (rows 51–100 at 50 per batch) is read before batch 1 commits.
    let key = ids[75].clone();
    let observer = StoreDuringCopy {
        path: t.path.clone(),
        key: key.clone(),
        done: Default::default(),
    };
    let report = run_migration(&t.conn, &execute(50), &observer)
        .await
        .unwrap();
    assert!(observer.done.load(std::sync::atomic::Ordering::SeqCst));
    let v = report.verification.unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_eq!(v.application_rows, 1);
    let rows = read_table(&t.conn, "embeddings_384", true).await;
    assert_eq!(
        rows[&key][6],
        libsql::Value::Text("from-store".into()),
        "the copy overwrote the store's newer write"
    );
}
