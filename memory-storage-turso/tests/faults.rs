//! The database fails under the migration: disk full, read-only, locked by
//! another writer, one row refused. Each stops (or goes on) cleanly: one
//! sentence, nothing half-written, a later run finishes the job.

use std::time::{Duration, Instant};

use libsql::{Connection, OpenFlags, Value};
use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{
    quarantined_rows, run_migration, MigrationOptions, NoopObserver,
};
use memory_storage_turso::schema::{object_exists, TargetTable};
use memory_storage_turso::Error;
use test_support::*;

fn execute(batch: usize) -> MigrationOptions {
    MigrationOptions {
        batch_size: batch,
        build_vector_index: false,
        ..Default::default()
    }
}

async fn pragma_int(conn: &Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// The stored checkpoint: the last key done, and the rows it counts.
async fn checkpoint(conn: &Connection) -> Option<(String, i64)> {
    if !object_exists(conn, "embedding_migration_checkpoint")
        .await
        .unwrap()
    {
        return None;
    }
    let mut rows = conn
        .query(
            "SELECT last_embedding_id, rows_written FROM embedding_migration_checkpoint WHERE id = 1",
            (),
        )
        .await
        .unwrap();
    let row = rows.next().await.unwrap()?;
    match row.get_value(0).unwrap() {
        Value::Text(k) => Some((k, row.get::<i64>(1).unwrap())),
        Value::Null => None,
        other => panic!("checkpoint key {other:?}"),
    }
}

/// Rows of every target table that exists.
async fn target_rows(conn: &Connection) -> i64 {
    let mut n = 0;
    for t in TARGETS {
        if object_exists(conn, t).await.unwrap() {
            n += count(conn, t).await;
        }
    }
    n
}

#[tokio::test]
async fn a_full_disk_stops_at_a_batch_boundary_and_the_next_run_resumes() {
    let (t, summary) = TestDb::sample(&small_spec(1000, 21)).await;
    let bad = bad_ids(&summary);
    let batch = 50;
    // A second connection whose size limit lets the copy get only part way.
    let (_db, conn) = connect(&t.path, Duration::from_secs(5)).await;
    let pages = pragma_int(&conn, "PRAGMA page_count").await;
    let limit = pages + pages / 4;
    assert_eq!(
        pragma_int(&conn, &format!("PRAGMA max_page_count = {limit}")).await,
        limit
    );

    let err = run_migration(&conn, &execute(batch), &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::DiskFull { .. })),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("disk is full"), "{message}");
    assert!(message.contains("checkpoint is intact"), "{message}");
    assert!(!message.contains('\n'), "{message}");

    // The checkpoint sits at a batch boundary, part way through.
    let (last, rows_written) = checkpoint(&t.conn)
        .await
        .expect("at least one batch was committed before the disk filled");
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let upto = legacy.keys().filter(|id| **id <= last).count();
    assert_eq!(upto % batch, 0, "checkpoint {last} after {upto} rows");
    assert!(
        upto > 0 && upto < legacy.len(),
        "{upto} of {}",
        legacy.len()
    );
    let good_upto = legacy
        .keys()
        .filter(|id| **id <= last && !bad.contains(id))
        .count();
    assert_eq!(rows_written as usize, good_upto);

    // Nothing half-written: every target row is exact, and the targets hold
    // exactly the good rows up to the checkpoint.
    assert_eq!(assert_targets_exact(&t.conn, true).await, good_upto);
    for t_name in TARGETS {
        for id in read_table(&t.conn, t_name, true).await.keys() {
            assert!(*id <= last, "{id} in {t_name} is after checkpoint {last}");
        }
    }
    let check = run_migration(
        &t.conn,
        &MigrationOptions {
            verify_only: true,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    let v = check.verification.unwrap();
    let good_after = legacy
        .keys()
        .filter(|id| **id > last && !bad.contains(id))
        .count();
    assert_eq!(v.discrepancy_count as usize, good_after);
    for d in &v.discrepancies {
        assert_eq!(d.kind, "missing", "{d:?}");
        assert!(d.embedding_id > last, "{d:?}");
    }

    // Room again: the next run resumes and completes.
    pragma_int(&conn, "PRAGMA max_page_count = 1000000000").await;
    let report = run_migration(&conn, &execute(batch), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(report.resumed_from.as_deref(), Some(last.as_str()));
    assert_eq!(report.rows_written() as usize, good_after);
    let v = report.verification.unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_migrated_exactly(&t.conn, &bad, true).await;
}

#[tokio::test]
async fn a_read_only_database_stops_with_one_sentence_and_stays_unchanged() {
    let (t, _) = TestDb::sample(&small_spec(200, 22)).await;
    let before = file_bytes(&t.path);
    let db = libsql::Builder::new_local(&t.path)
        .flags(OpenFlags::SQLITE_OPEN_READ_ONLY)
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();

    let err = run_migration(&conn, &execute(50), &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::ReadOnly { .. })),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("read-only"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(message.matches(". ").count(), 0, "one sentence: {message}");
    drop(conn);
    drop(db);
    assert!(file_bytes(&t.path) == before, "the file changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_throughout_stops_with_busy_and_changes_nothing() {
    let (t, summary) = TestDb::sample(&small_spec(300, 23)).await;
    let (_blocker_db, blocker) = connect(&t.path, Duration::from_secs(5)).await;
    let (_db, conn) = connect(&t.path, Duration::from_millis(100)).await;
    let before = file_bytes(&t.path);
    blocker.execute("BEGIN IMMEDIATE", ()).await.unwrap();

    let options = MigrationOptions {
        max_retries: 1,
        ..execute(50)
    };
    let err = run_migration(&conn, &options, &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::Busy { .. })),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("stayed locked"), "{message}");
    assert!(message.contains("2 attempts"), "{message}");

    // Nothing was written: no target row, no lock left behind.
    assert_eq!(target_rows(&t.conn).await, 0);
    assert!(file_bytes(&t.path) == before, "the file changed");

    blocker.execute("COMMIT", ()).await.unwrap();
    let report = run_migration(&conn, &options, &NoopObserver).await.unwrap();
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_soon_is_waited_out_with_retries() {
    let (t, summary) = TestDb::sample(&small_spec(300, 24)).await;
    let (blocker_db, blocker) = connect(&t.path, Duration::from_secs(5)).await;
    let (_db, conn) = connect(&t.path, Duration::from_millis(100)).await;
    blocker.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    let began = Instant::now();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        blocker.execute("COMMIT", ()).await.unwrap();
        drop(blocker_db);
    });

    let options = MigrationOptions {
        max_retries: 5,
        ..execute(50)
    };
    let report = run_migration(&conn, &options, &NoopObserver).await;
    release.await.unwrap();
    let report = report.unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(250),
        "the run did not wait for the other writer"
    );
    assert_eq!(
        report.rows_written() as usize,
        300 - summary.bad.len(),
        "every good row written once"
    );
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test]
async fn a_row_the_database_refuses_is_quarantined_and_the_rest_migrates() {
    let (t, summary) = TestDb::sample(&small_spec(600, 25)).await;
    let mut bad = bad_ids(&summary);
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let victim = legacy
        .iter()
        .find(|(id, row)| {
            !bad.contains(id)
                && matches!(&row[3], Value::Text(d)
                    if oracle_vector(d).is_some_and(|v| v.len() == 768 * 4))
        })
        .map(|(id, _)| id.clone())
        .expect("the fixture has a good 768-dimension row");

    // embeddings_other as the schema makes it, plus a CHECK refusing one id.
    let ddl = TargetTable::Other.create_table_sql().trim_end();
    let ddl = format!(
        "{},\n    CHECK (embedding_id != '{}')\n)",
        ddl.strip_suffix(')').unwrap().trim_end(),
        victim.replace('\'', "''")
    );
    t.conn.execute(&ddl, ()).await.unwrap();

    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    let listed = report
        .quarantined
        .iter()
        .find(|q| q.embedding_id == victim)
        .unwrap_or_else(|| panic!("{victim} not in {:?}", report.quarantined));
    assert_eq!(listed.code, "rejected_by_database");
    assert!(listed.reason.contains("embeddings_other"), "{listed:?}");
    assert_eq!(report.quarantined_count as usize, bad.len() + 1);
    assert_eq!(report.quarantined_by_reason["rejected_by_database"], 1);
    assert!(report.verification.as_ref().unwrap().passed);

    let recorded = quarantined_rows(&t.conn).await.unwrap();
    let q = recorded
        .iter()
        .find(|q| q.embedding_id == victim)
        .expect("the refused row is in the quarantine record");
    assert_eq!(q.code, "rejected_by_database");

    for table in TARGETS {
        assert!(
            !read_table(&t.conn, table, true).await.contains_key(&victim),
            "{victim} reached {table}"
        );
    }
    assert!(read_table(&t.conn, "embeddings", true)
        .await
        .contains_key(&victim));
    bad.push(victim);
    assert_migrated_exactly(&t.conn, &bad, true).await;
    // The report counts each row written once, though the refused row's
    // batch was written twice (rolled back, then again without it).
    assert_eq!(
        report.rows_written() as usize,
        legacy.len() - bad.len(),
        "every other good row migrated"
    );
}

/// Renames a target table from another connection once the copy is under way.
struct RenameMidway {
    path: std::path::PathBuf,
    done: std::sync::atomic::AtomicBool,
}

impl memory_storage_turso::migration::Observer for RenameMidway {
    fn progress(&self, phase: memory_storage_turso::migration::Phase, _done: u64) {
        use std::sync::atomic::Ordering;
        if phase == memory_storage_turso::migration::Phase::Copy
            && !self.done.swap(true, Ordering::SeqCst)
        {
            let path = self.path.clone();
            // The observer is synchronous: do the rename on its own thread and runtime.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let db = libsql::Builder::new_local(&path).build().await.unwrap();
                    let conn = db.connect().unwrap();
                    conn.busy_timeout(Duration::from_secs(5)).unwrap();
                    conn.execute("ALTER TABLE embeddings_384 RENAME TO renamed_384", ())
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_table_renamed_under_the_run_stops_it_with_one_sentence_and_the_checkpoint_intact() {
    let (t, summary) = TestDb::sample(&small_spec(400, 41)).await;
    let observer = RenameMidway {
        path: t.path.clone(),
        done: std::sync::atomic::AtomicBool::new(false),
    };
    let err = run_migration(&t.conn, &execute(50), &observer)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::SchemaChanged { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("checkpoint is intact"), "{err}");
    // Put it back: the next run resumes and completes.
    t.conn
        .execute("ALTER TABLE renamed_384 RENAME TO embeddings_384", ())
        .await
        .unwrap();
    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    assert!(report.resumed_from.is_some());
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}
