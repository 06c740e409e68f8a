//! Crash safety, proven by killing the real binary with SIGKILL in the
//! middle of a copy, several times, then letting it finish: every row is
//! present exactly once and bit-exact.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

/// The keys of every target table.
const UNION: &str = "SELECT embedding_id FROM embeddings_384 UNION ALL SELECT embedding_id FROM embeddings_1024 \
     UNION ALL SELECT embedding_id FROM embeddings_1536 UNION ALL SELECT embedding_id FROM embeddings_3072 \
     UNION ALL SELECT embedding_id FROM embeddings_other";

/// Every one of the `good` rows is in exactly one target table.
async fn assert_good_rows_once(conn: &Connection, good: i64) {
    let union = UNION;
    assert_eq!(
        scalar(conn, &format!("SELECT count(*) FROM ({union})")).await,
        Some(good)
    );
    assert_eq!(
        scalar(
            conn,
            &format!("SELECT count(DISTINCT embedding_id) FROM ({union})")
        )
        .await,
        Some(good)
    );
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
    assert_good_rows_once(&conn, good).await;
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM embeddings WHERE embedding_id NOT IN ({UNION})")
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

/// Starts the binary with `args`, its stderr lines coming back through a
/// channel (stdout piped when `keep_stdout`, else discarded).
fn spawn_logged(args: &[&str], keep_stdout: bool) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Starts a full lifecycle run (backup, copy, verify, drop).
fn spawn_lifecycle(db: &Path) -> (Child, mpsc::Receiver<String>) {
    spawn_logged(
        &[
            "--db",
            db.to_str().unwrap(),
            "--execute",
            "--backup",
            "--drop-old-table",
            "--allow-quarantined",
            "--yes",
            "--no-vector-index",
            "--batch-size",
            "100",
        ],
        false,
    )
}

/// Waits for the log line that starts `phase`, waits `extra`, then kills.
/// Returns whether the process was still running when killed.
fn kill_in_phase(
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
    phase: &str,
    extra: Duration,
) -> bool {
    let marker = format!(" {phase}: ");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(&marker) && line.contains("to go") => break,
            Ok(_) => {}
            Err(_) => panic!("the run never reached the {phase} phase"),
        }
    }
    std::thread::sleep(extra);
    let alive = child.try_wait().unwrap().is_none();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    alive
}

async fn table_exists(conn: &Connection, name: &str) -> bool {
    scalar(
        conn,
        &format!("SELECT count(*) FROM sqlite_master WHERE name = '{name}'"),
    )
    .await
        == Some(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_inside_backup_copy_verify_and_drop_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let db = Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut spec = SampleSpec::realistic(ROWS, 77);
    spec.bad_rows = 16;
    let summary = generate_legacy_database(&conn, &spec).await.unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();

    // Inside the backup copy: the backup transaction is rolled back.
    let (mut child, lines) = spawn_lifecycle(&path);
    assert!(kill_in_phase(
        &mut child,
        &lines,
        "backup",
        Duration::from_millis(30)
    ));
    assert!(
        !table_exists(&conn, "embeddings_backup").await,
        "a half-made backup survived"
    );

    // Inside a copy batch.
    let (mut child, lines) = spawn_lifecycle(&path);
    let _ = kill_in_phase(&mut child, &lines, "copy", Duration::from_millis(0));
    let mut child2 = spawn(&path);
    // (a plain copy run, killed once a few batches are in, mid-batch)
    assert!(kill_after(&mut child2, &conn, 2000, Duration::from_millis(23)).await);

    // Inside verification.
    let (mut child, lines) = spawn_lifecycle(&path);
    assert!(kill_in_phase(
        &mut child,
        &lines,
        "verify",
        Duration::from_millis(200)
    ));

    // Inside the drop: the legacy table must still be there.
    let (mut child, lines) = spawn_lifecycle(&path);
    assert!(kill_in_phase(
        &mut child,
        &lines,
        "drop",
        Duration::from_millis(5)
    ));
    assert!(
        table_exists(&conn, "embeddings").await,
        "the drop was half done"
    );

    // Then let it finish.
    let (mut child, _lines) = spawn_lifecycle(&path);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "finished, with the planted bad rows quarantined"
    );
    assert!(
        !table_exists(&conn, "embeddings").await,
        "the legacy table was dropped"
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM embeddings_backup").await,
        Some(ROWS as i64)
    );

    let good = (ROWS - summary.bad.len()) as i64;
    assert_good_rows_once(&conn, good).await;
    for n in ["384", "1024", "1536", "3072", "other"] {
        let mismatched = scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM embeddings_{n} t LEFT JOIN embeddings_backup e USING (embedding_id) \
                 WHERE e.embedding_id IS NULL OR t.item_id IS NOT e.item_id OR t.item_type IS NOT e.item_type \
                 OR t.embedding_data IS NOT e.embedding_data OR t.dimension IS NOT e.dimension \
                 OR t.model IS NOT e.model OR t.created_at IS NOT e.created_at \
                 OR length(t.embedding_vector) != 4 * t.dimension \
                 OR ('{n}' != 'other' AND t.embedding_data NOT LIKE '\\_\\_compressed\\_\\_:%' ESCAPE '\\' \
                     AND t.embedding_vector IS NOT vector32(t.embedding_data))"
            ),
        )
        .await;
        assert_eq!(mismatched, Some(0), "embeddings_{n}");
    }
}

/// Rows of 1536 dimensions in the index-build test (DiskANN inserts of that
/// size take tens of milliseconds each).
const INDEX_ROWS: i64 = 600;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_inside_the_vector_index_build_resumes_without_starting_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let db = Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let spec = SampleSpec {
        dimension_mix: vec![(1536, 1)],
        bad_rows: 0,
        compressed_percent: 0,
        ..SampleSpec::realistic(INDEX_ROWS as usize, 9)
    };
    generate_legacy_database(&conn, &spec).await.unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let db_arg = path.to_str().unwrap();
    let run = || spawn_logged(&["--db", db_arg, "--execute", "--format", "json"], true);
    // Kill once the index build reports committed rows (its progress line
    // comes after a batch commits; the database itself stays locked by the
    // long index transactions, so it is not polled).
    let (mut child, lines) = run();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the index build reported no progress"));
        let done = line
            .split(" vector_index: ")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.trim().parse::<i64>().ok());
        if done.is_some_and(|n| n >= 100) {
            break;
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the index build finished before the kill"
    );
    let progress = "SELECT last_rowid FROM embedding_migration_index_progress WHERE target_table = 'embeddings_1536'";
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let indexed_before = scalar(&conn, progress).await.unwrap();
    assert!(
        (100..INDEX_ROWS).contains(&indexed_before),
        "{indexed_before}"
    );

    // Resume: the build continues where it stopped.
    let (child, _lines) = run();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = report["vector_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == "embeddings_1536")
        .unwrap()
        .clone();
    assert_eq!(index["status"], "resumed and built", "{index}");
    let phase = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "vector_index")
        .unwrap()
        .clone();
    assert!(
        phase["units"].as_i64().unwrap() <= INDEX_ROWS - indexed_before + 100,
        "the second run indexed {} rows: it started over",
        phase["units"]
    );
    assert_eq!(report["verification"]["passed"], true);
    // The index is on the live table, complete, and answers queries.
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 'idx_embeddings_1536_vector' AND tbl_name = 'embeddings_1536'").await,
        Some(1)
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM embeddings_1536").await,
        Some(INDEX_ROWS)
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_indexing%'"
        )
        .await,
        Some(0),
        "the indexing table and its triggers are gone"
    );
    let hit = scalar(
        &conn,
        "SELECT count(*) FROM embeddings_1536 e WHERE e.rowid IN (SELECT id FROM vector_top_k('idx_embeddings_1536_vector', (SELECT embedding_vector FROM embeddings_1536 ORDER BY rowid LIMIT 1), 1)) AND e.rowid = (SELECT min(rowid) FROM embeddings_1536)",
    )
    .await;
    assert_eq!(hit, Some(1), "a row's own vector finds that row first");
}
