//! `--online`: an application keeps writing to the legacy table for the
//! whole migration, and when the one run ends the target tables equal the
//! legacy table, with no second run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libsql::Connection;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::sample::{encode_json, insert_legacy_rows, LegacyRow};
use memory_storage_turso::schema::object_exists;
use memory_storage_turso::schema::{CHANGES_TABLE, TRIGGERS};
use test_support::*;

fn online(batch: usize) -> MigrationOptions {
    MigrationOptions {
        batch_size: batch,
        build_vector_index: false,
        online: true,
        max_retries: 10,
        ..Default::default()
    }
}

/// A row the application writes: good ones in three dimensions, and every
/// ninth one bad (its JSON has one value too few for its dimension).
fn app_row(i: u64) -> (LegacyRow, bool) {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    let dim = [384usize, 1024, 1536][(i % 3) as usize];
    let bad = i % 9 == 4;
    let n = if bad { dim - 1 } else { dim };
    let v: Vec<f32> = (0..n).map(|j| (j as f32 - i as f32) * 0.0625).collect();
    (
        LegacyRow {
            // Spread over the key space: before and after the checkpoint.
            embedding_id: format!("{x:016x}-online-{i}"),
            item_id: format!("item-online-{i}"),
            item_type: "episode".into(),
            embedding_data: encode_json(&v),
            embedding_vector: None,
            dimension: dim as i64,
            model: "app".into(),
            created_at: 1_760_000_000 + i as i64,
        },
        bad,
    )
}

#[derive(Default)]
struct Writes {
    inserted: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    /// Writes made while the migration was in its final phases (after the
    /// first 100 operations), to show the writer really overlapped.
    late: AtomicU64,
    /// The application saw the triggers gone and switched to the new
    /// tables.
    switched: AtomicBool,
}

async fn triggers_present(conn: &Connection) -> bool {
    let mut rows = conn
        .query(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [TRIGGERS[0]],
        )
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap() == 1
}

async fn some_id(conn: &Connection, i: u64) -> Option<String> {
    let mut rows = conn
        .query(
            "SELECT embedding_id FROM embeddings ORDER BY embedding_id LIMIT 1 OFFSET ?1",
            [((i * 7919) % 1500) as i64],
        )
        .await
        .unwrap();
    rows.next()
        .await
        .unwrap()
        .map(|r| r.get::<String>(0).unwrap())
}

/// The application: while the triggers exist, each write is its own
/// transaction that first checks them (so no write falls after the switch);
/// once they are gone it stops writing to the legacy table.
async fn application(
    conn: Connection,
    stop: Arc<AtomicBool>,
    bad_ids: Arc<std::sync::Mutex<Vec<String>>>,
) -> Writes {
    let writes = Writes::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Start once the run has installed its triggers.
    while !triggers_present(&conn).await {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return writes;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for i in 0u64.. {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let began = loop {
            match conn.execute("BEGIN IMMEDIATE", ()).await {
                Ok(_) => break true,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
            if stop.load(Ordering::SeqCst) {
                break false;
            }
        };
        if !began {
            break;
        }
        if !triggers_present(&conn).await {
            conn.execute("ROLLBACK", ()).await.unwrap();
            writes.switched.store(true, Ordering::SeqCst);
            break;
        }
        let n = match i % 4 {
            0 | 3 => {
                let (row, bad) = app_row(i);
                conn.execute(
                    "INSERT INTO embeddings (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    libsql::params![
                        row.embedding_id.clone(),
                        row.item_id,
                        row.item_type,
                        row.embedding_data,
                        row.dimension,
                        row.model,
                        row.created_at
                    ],
                )
                .await
                .unwrap();
                if bad {
                    bad_ids.lock().unwrap().push(row.embedding_id.clone());
                }
                writes.inserted.fetch_add(1, Ordering::SeqCst);
                1
            }
            1 => match some_id(&conn, i).await {
                Some(id) => {
                    let n = conn
                        .execute(
                            "UPDATE embeddings SET model = ?1, item_type = 'pattern' WHERE embedding_id = ?2",
                            [format!("retrained-{i}"), id],
                        )
                        .await
                        .unwrap();
                    writes.updated.fetch_add(n, Ordering::SeqCst);
                    n
                }
                None => 0,
            },
            _ => match some_id(&conn, i).await {
                Some(id) => {
                    let n = conn
                        .execute("DELETE FROM embeddings WHERE embedding_id = ?1", [id])
                        .await
                        .unwrap();
                    writes.deleted.fetch_add(n, Ordering::SeqCst);
                    n
                }
                None => 0,
            },
        };
        conn.execute("COMMIT", ()).await.unwrap();
        if i >= 100 {
            writes.late.fetch_add(n, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_writing_throughout_leaves_the_targets_equal_to_the_legacy_table() {
    let (t, summary) = TestDb::sample(&small_spec(3000, 71)).await;
    let (_app_db, app) = connect(&t.path, Duration::from_secs(5)).await;
    let (_db, conn) = connect(&t.path, Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let app_bad = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = tokio::spawn(application(app, stop.clone(), app_bad.clone()));

    // The run on its own thread, as another process would be.
    let handle = tokio::runtime::Handle::current();
    let report = tokio::task::spawn_blocking(move || {
        handle.block_on(async move { run_migration(&conn, &online(100), &NoopObserver).await })
    })
    .await
    .unwrap()
    .expect("the online run succeeds while the application writes");
    // The application notices the switch on its next write; stop it only
    // if it does not.
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.store(true, Ordering::SeqCst);
        })
    };
    let writes = writer.await.unwrap();
    stopper.abort();

    let (inserted, updated, deleted) = (
        writes.inserted.load(Ordering::SeqCst),
        writes.updated.load(Ordering::SeqCst),
        writes.deleted.load(Ordering::SeqCst),
    );
    assert!(
        inserted > 20 && updated > 5 && deleted > 5 && writes.late.load(Ordering::SeqCst) > 0,
        "the application wrote throughout: {inserted} inserted, {updated} updated, {deleted} deleted"
    );
    let online = report.online.clone().expect("an online report");
    assert!(online.triggers_removed);
    assert!(
        online.mirrored + online.final_keys > 0,
        "changes were mirrored: {online:?}"
    );
    assert!(report.verification.as_ref().unwrap().passed);
    assert!(
        writes.switched.load(Ordering::SeqCst),
        "the application saw the triggers go at the end of the run"
    );
    for t_name in TRIGGERS.iter().chain([&CHANGES_TABLE]) {
        let mut rows = t
            .conn
            .query(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [*t_name],
            )
            .await
            .unwrap();
        let n = rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap();
        assert_eq!(n, 0, "{t_name} is removed");
    }

    // The one run left the target tables equal to the legacy table: every
    // good row once, bit-exact, in its table; no bad row in a target.
    let mut bad = bad_ids(&summary);
    bad.extend(app_bad.lock().unwrap().iter().cloned());
    assert_migrated_exactly(&t.conn, &bad, true).await;
    let quarantined = count(&t.conn, "embedding_migration_quarantine").await;
    assert!(
        quarantined as usize >= app_bad.lock().unwrap().len(),
        "the application's bad rows are quarantined"
    );
}

#[tokio::test]
async fn online_goes_with_execute_and_a_rollback_removes_the_triggers() {
    let (t, _) = TestDb::sample(&small_spec(100, 72)).await;
    let err = run_migration(
        &t.conn,
        &MigrationOptions {
            dry_run: true,
            ..online(50)
        },
        &NoopObserver,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--online"), "{err}");

    // A run stopped before the end keeps its triggers (changes keep being
    // logged); a rollback removes them with the rows.
    let stopped = run_migration(&t.conn, &online(10), &StopAfter::batches(1))
        .await
        .unwrap();
    assert!(stopped.interrupted);
    assert!(object_exists(&t.conn, CHANGES_TABLE).await.unwrap());
    assert!(triggers_present(&t.conn).await);
    let (row, _) = app_row(1);
    insert_legacy_rows(&t.conn, std::slice::from_ref(&row), true)
        .await
        .unwrap();
    assert_eq!(count(&t.conn, CHANGES_TABLE).await, 1);
    run_migration(
        &t.conn,
        &MigrationOptions {
            rollback: true,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    assert!(!object_exists(&t.conn, CHANGES_TABLE).await.unwrap());
    assert!(!triggers_present(&t.conn).await);
}
