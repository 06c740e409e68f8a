//! Crash safety, proven by killing the real binary with SIGKILL in the
//! middle of a copy, several times, then letting it finish: every row is
//! present exactly once and bit-exact.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libsql::{Builder, Connection};
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};

const ROWS: usize = 12_000;

fn spawn(db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn scalar(conn: &Connection, sql: &str) -> Option<i64> {
    let mut rows = conn.query(sql, ()).await.ok()?;
    rows.next().await.ok()??.get::<i64>(0).ok()
}

/// Rows the checkpoint says are written (0 before the first batch).
async fn checkpoint_rows(conn: &Connection) -> i64 {
    scalar(
        conn,
        "SELECT rows_written FROM embedding_migration_checkpoint WHERE id = 1",
    )
    .await
    .unwrap_or(0)
}

/// Waits until the checkpoint passes `rows`, sleeps `extra` (to land inside
/// a batch), then kills the process. Returns false if it had already ended.
async fn kill_after(child: &mut Child, conn: &Connection, rows: i64, extra: Duration) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_rows(conn).await < rows {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the migration made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(extra).await;
    let alive = child.try_wait().unwrap().is_none();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    alive
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_copy_then_resume_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let db = Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut spec = SampleSpec::realistic(ROWS, 2024);
    spec.bad_rows = 16;
    let summary = generate_legacy_database(&conn, &spec).await.unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();

    // Kill points: right after the first committed batch, inside later
    // batches, further and further in.
    let mut killed = 0;
    for (rows, extra_ms) in [(1, 0), (1500, 17), (3500, 43), (6000, 5), (8000, 29)] {
        let mut child = spawn(&path);
        if kill_after(&mut child, &conn, rows, Duration::from_millis(extra_ms)).await {
            killed += 1;
        }
        let completed = scalar(
            &conn,
            "SELECT copy_completed_at IS NOT NULL FROM embedding_migration_checkpoint",
        )
        .await;
        assert_ne!(
            completed,
            Some(1),
            "the copy finished before the kill: make the database bigger"
        );
    }
    assert!(killed >= 4, "only {killed} kills landed mid-run");

    let status = spawn(&path).wait().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "finished, with the planted bad rows quarantined"
    );

    // Every good row exactly once, in the right table.
    let good = (ROWS - summary.bad.len()) as i64;
    let union = "SELECT embedding_id FROM embeddings_384 UNION ALL SELECT embedding_id FROM embeddings_1024 \
                 UNION ALL SELECT embedding_id FROM embeddings_1536 UNION ALL SELECT embedding_id FROM embeddings_3072 \
                 UNION ALL SELECT embedding_id FROM embeddings_other";
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM ({union})")).await,
        Some(good)
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(DISTINCT embedding_id) FROM ({union})")
        )
        .await,
        Some(good)
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM embeddings WHERE embedding_id NOT IN ({union})")
        )
        .await,
        Some(summary.bad.len() as i64)
    );
    // Bit-exact, checked by libSQL's own parser for the plain-JSON rows of
    // every native table, and every column equal to its source.
    for n in [384, 1024, 1536, 3072] {
        let mismatched = scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM embeddings_{n} t JOIN embeddings e USING (embedding_id) \
                 WHERE (t.embedding_data NOT LIKE '\\_\\_compressed\\_\\_:%' ESCAPE '\\' AND t.embedding_vector IS NOT vector32(t.embedding_data)) \
                 OR t.item_id IS NOT e.item_id OR t.item_type IS NOT e.item_type OR t.embedding_data IS NOT e.embedding_data \
                 OR t.dimension IS NOT e.dimension OR t.model IS NOT e.model OR t.created_at IS NOT e.created_at \
                 OR length(t.embedding_vector) != 4 * {n}"
            ),
        )
        .await;
        assert_eq!(mismatched, Some(0), "embeddings_{n}");
    }
    // And the tool's own full verification (every row, every bit) agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args(["--db", path.to_str().unwrap(), "--verify", "-q"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("verification passed"));
}
