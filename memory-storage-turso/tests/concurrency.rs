//! Other processes on the same database: a second migration is kept out by
//! the lock (taken over only when its holder is gone), and an application
//! writing to the legacy table meanwhile is caught up by the next run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libsql::{Connection, Value};
use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{host_name, MigrationLock, STALE_AFTER_SECS};
use memory_storage_turso::migration::{
    run_migration, MigrationOptions, NoopObserver, Observer, Phase,
};
use memory_storage_turso::sample::{encode_json, insert_legacy_rows, LegacyRow};
use memory_storage_turso::schema::{object_exists, LEDGER_TABLE, LOCK_TABLE_SQL};
use test_support::*;

fn execute(batch: usize) -> MigrationOptions {
    MigrationOptions {
        batch_size: batch,
        build_vector_index: false,
        ..Default::default()
    }
}

/// Rows of the lock table (0 when no migration holds it).
async fn lock_rows(conn: &Connection) -> i64 {
    if object_exists(conn, "embedding_migration_lock")
        .await
        .unwrap()
    {
        count(conn, "embedding_migration_lock").await
    } else {
        0
    }
}

#[tokio::test]
async fn a_held_lock_keeps_a_second_migration_out_until_released() {
    let (t, summary) = TestDb::sample(&small_spec(200, 41)).await;
    let (_db, other) = connect(&t.path, Duration::from_secs(5)).await;
    let lock = MigrationLock::acquire(&other).await.unwrap();

    let err = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap_err();
    let MigrateError::LockHeld { holder } = &err else {
        panic!("expected LockHeld, got {err:?}")
    };
    assert_eq!(holder.pid, lock.pid);
    let message = err.to_string();
    for part in [
        lock.host.clone(),
        lock.pid.to_string(),
        lock.started_at.to_string(),
    ] {
        assert!(message.contains(&part), "{part} not in: {message}");
    }
    assert!(
        !object_exists(&t.conn, "embeddings_384").await.unwrap(),
        "the refused run created tables"
    );

    lock.release(&other).await.unwrap();
    assert_eq!(lock_rows(&t.conn).await, 0);
    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    assert!(report.lock_taken_over_from.is_none());
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    assert_eq!(lock_rows(&t.conn).await, 0, "the lock is released");
}

/// When a run was active: from its first phase to the end of its last.
#[derive(Default)]
struct Span {
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Observer for Span {
    fn phase_started(&self, _phase: Phase, _total: u64) {
        self.first.lock().unwrap().get_or_insert_with(Instant::now);
    }
    fn phase_finished(&self, _phase: Phase, _elapsed: Duration) {
        *self.last.lock().unwrap() = Some(Instant::now());
    }
}

impl Span {
    fn get(&self) -> (Instant, Instant) {
        (
            self.first.lock().unwrap().expect("the run started a phase"),
            self.last.lock().unwrap().expect("the run finished a phase"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_at_once_never_run_together() {
    let mut refused = 0;
    for attempt in 0..3u64 {
        let (t, summary) = TestDb::sample(&small_spec(3000, 42 + attempt)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (db, conn) = connect(&t.path, Duration::from_secs(10)).await;
            let barrier = barrier.clone();
            // Each run on its own thread, as two processes would be: a
            // local libSQL call never yields, so two runs sharing a worker
            // would simply take turns.
            let handle = tokio::runtime::Handle::current();
            tasks.push(tokio::task::spawn_blocking(move || {
                handle.block_on(async move {
                    let span = Span::default();
                    barrier.wait().await;
                    let result = run_migration(&conn, &execute(100), &span).await;
                    drop(conn);
                    drop(db);
                    (result, span)
                })
            }));
        }
        let mut ok = Vec::new();
        for task in tasks {
            let (result, span) = task.await.unwrap();
            match result {
                Ok(report) => {
                    assert!(report.verification.as_ref().unwrap().passed);
                    ok.push(span.get());
                }
                Err(MigrateError::LockHeld { holder }) => {
                    assert_eq!(holder.host, host_name());
                    refused += 1;
                }
                Err(e) => panic!("neither done nor refused: {e:?}"),
            }
        }
        assert!(!ok.is_empty(), "one of the two runs must do the work");
        if let [a, b] = ok[..] {
            assert!(
                a.1 <= b.0 || b.1 <= a.0,
                "both migrations were active at once: {a:?} and {b:?}"
            );
        }
        assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
        assert_eq!(lock_rows(&t.conn).await, 0, "the lock is released");
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "in three tries the second migration never met the first"
    );
}

/// Puts a lock row there as another (or a dead) migration left it.
async fn plant_lock(conn: &Connection, host: &str, pid: i64, heartbeat_at: i64) {
    conn.execute(LOCK_TABLE_SQL, ()).await.unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO embedding_migration_lock (id, host, pid, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3, ?4)",
        vec![
            Value::Text(host.to_string()),
            Value::Integer(pid),
            Value::Integer(heartbeat_at - 5),
            Value::Integer(heartbeat_at),
        ],
    )
    .await
    .unwrap();
}

/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    i64::from(pid)
}

#[tokio::test]
async fn a_lock_whose_holder_is_gone_is_taken_over() {
    let (t, summary) = TestDb::sample(&small_spec(200, 43)).await;
    let pid = dead_pid();
    plant_lock(&t.conn, &host_name(), pid, unix_now()).await;

    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    let from = report
        .lock_taken_over_from
        .expect("the report names the stale holder");
    assert_eq!(from.pid, pid);
    assert_eq!(from.host, host_name());
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    assert_eq!(lock_rows(&t.conn).await, 0);
}

#[tokio::test]
async fn a_live_holder_here_or_a_fresh_one_elsewhere_keeps_the_lock() {
    let (t, _) = TestDb::sample(&small_spec(100, 44)).await;
    // This very process: alive.
    let me = i64::from(std::process::id());
    plant_lock(&t.conn, &host_name(), me, unix_now()).await;
    let err = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::LockHeld { holder } if holder.pid == me),
        "{err:?}"
    );

    // Another host: its process cannot be checked, its heartbeat is fresh.
    let host = "other-host.example";
    plant_lock(&t.conn, host, 4242, unix_now()).await;
    let err = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::LockHeld { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(host), "{message}");
    assert!(message.contains("4242"), "{message}");
    assert!(!object_exists(&t.conn, "embeddings_384").await.unwrap());
    assert_eq!(lock_rows(&t.conn).await, 1, "the holder's lock is kept");
}

#[tokio::test]
async fn a_silent_lock_from_another_host_is_taken_over() {
    let (t, summary) = TestDb::sample(&small_spec(200, 45)).await;
    let host = "other-host.example";
    plant_lock(&t.conn, host, 4242, unix_now() - STALE_AFTER_SECS - 30).await;

    let report = run_migration(&t.conn, &execute(50), &NoopObserver)
        .await
        .unwrap();
    let from = report
        .lock_taken_over_from
        .expect("the report names the stale holder");
    assert_eq!((from.host.as_str(), from.pid), (host, 4242));
    assert!(report.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    assert_eq!(lock_rows(&t.conn).await, 0);
}

/// Whether a libSQL error is SQLITE_BUSY / SQLITE_LOCKED.
fn is_busy(e: &libsql::Error) -> bool {
    matches!(e, libsql::Error::SqliteFailure(code, _) if matches!(code & 0xff, 5 | 6))
        || e.to_string().contains("locked")
}

/// Runs `op` until it is not refused as busy (a bounded number of times).
async fn retry_busy<T, F, Fut>(conn: &Connection, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, libsql::Error>>,
{
    for _ in 0..200 {
        match op().await {
            Ok(v) => return v,
            Err(e) if is_busy(&e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute("ROLLBACK", ()).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the application's write failed: {e}"),
        }
    }
    panic!("the application's write stayed busy");
}

/// A random id of a row the migration wrote, if any.
async fn some_migrated_id(conn: &Connection) -> Option<String> {
    let mut rows = conn
        .query(
            &format!("SELECT embedding_id FROM {LEDGER_TABLE} ORDER BY random() LIMIT 1"),
            (),
        )
        .await
        .ok()?; // the ledger does not exist yet
    match rows.next().await.ok()??.get_value(0).ok()? {
        Value::Text(id) => Some(id),
        _ => None,
    }
}

/// What the application managed to do while the migration ran.
#[derive(Default)]
struct Writes {
    inserted: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
}

fn new_row(i: u64) -> LegacyRow {
    // Ids spread over the key space, before and after the checkpoint.
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    let dim = [384usize, 768, 1536][(i % 3) as usize];
    let v: Vec<f32> = (0..dim)
        .map(|j| (j as f32 + i as f32) * 0.125 - 7.0)
        .collect();
    LegacyRow {
        embedding_id: format!("{:016x}-app-{i}", x),
        item_id: format!("item-app-{i}"),
        item_type: "episode".into(),
        embedding_data: encode_json(&v),
        embedding_vector: None,
        dimension: dim as i64,
        model: "app-model".into(),
        created_at: 1_760_000_000 + i as i64,
    }
}

/// The application: inserts, updates and deletes in short transactions
/// until `stop` (at most 3000 operations, at most 120 s).
async fn application(conn: Connection, legacy_ids: Vec<String>, stop: Arc<AtomicBool>) -> Writes {
    let writes = Writes::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..3000u64 {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        match i % 4 {
            0 => {
                let row = new_row(i);
                retry_busy(&conn, || {
                    insert_legacy_rows(&conn, std::slice::from_ref(&row), true)
                })
                .await;
                writes.inserted.fetch_add(1, Ordering::SeqCst);
            }
            1 => {
                if let Some(id) = some_migrated_id(&conn).await {
                    let model = format!("retrained-{i}");
                    let n = retry_busy(&conn, || {
                        conn.execute(
                            "UPDATE embeddings SET model = ?1 WHERE embedding_id = ?2",
                            [model.as_str(), id.as_str()],
                        )
                    })
                    .await;
                    writes.updated.fetch_add(n, Ordering::SeqCst);
                }
            }
            2 => {
                // A migrated row, so its copy must go too.
                if let Some(id) = some_migrated_id(&conn).await {
                    let n = retry_busy(&conn, || {
                        conn.execute(
                            "DELETE FROM embeddings WHERE embedding_id = ?1",
                            [id.as_str()],
                        )
                    })
                    .await;
                    writes.deleted.fetch_add(n, Ordering::SeqCst);
                }
            }
            _ => {
                // Any legacy row, migrated or not yet.
                let id = &legacy_ids[(i as usize * 7919) % legacy_ids.len()];
                let n = retry_busy(&conn, || {
                    conn.execute(
                        "DELETE FROM embeddings WHERE embedding_id = ?1",
                        [id.as_str()],
                    )
                })
                .await;
                writes.deleted.fetch_add(n, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_writing_meanwhile_is_caught_up_by_the_next_run() {
    let (t, summary) = TestDb::sample(&small_spec(2000, 46)).await;
    let legacy_ids: Vec<String> = read_table(&t.conn, "embeddings", true)
        .await
        .into_keys()
        .collect();
    let (_app_db, app) = connect(&t.path, Duration::from_secs(2)).await;
    let (_db, conn) = connect(&t.path, Duration::from_secs(5)).await;
    let options = MigrationOptions {
        max_retries: 10,
        ..execute(50)
    };

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(application(app, legacy_ids, stop.clone()));
    let first = run_migration(&conn, &options, &NoopObserver).await;
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.unwrap();
    let first = first.expect("the run survives an application writing meanwhile");
    assert!(first.rows_written() > 0);

    let (inserted, updated, deleted) = (
        writes.inserted.load(Ordering::SeqCst),
        writes.updated.load(Ordering::SeqCst),
        writes.deleted.load(Ordering::SeqCst),
    );
    assert!(
        inserted > 0 && updated > 0 && deleted > 0,
        "the application wrote during the migration: {inserted} inserted, {updated} updated, {deleted} deleted"
    );
    assert_eq!(
        count(&t.conn, "embeddings").await,
        2000 + inserted as i64 - deleted as i64
    );

    let second = run_migration(&conn, &options, &NoopObserver).await.unwrap();
    let v = second.verification.unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
    assert_eq!(lock_rows(&t.conn).await, 0);
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
