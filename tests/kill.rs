//! Crash safety, proven by killing the real binary with SIGKILL in the
//! middle of a copy, several times, then letting it finish: every row is
//! present exactly once and bit-exact.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libsql::{Builder, Connection, Value};
use memory_storage_turso::sample::{
    encode_json, generate_legacy_database, vector_bytes, SampleSpec,
};
use memory_storage_turso::schema::{route, TargetTable, COLUMNS};
use test_support::{
    assert_migrated_exactly, assert_migrated_exactly_from, bad_ids, kill_now, scalar, table_exists,
};

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

    // Every good row exactly once, in the right table, every column equal
    // and the vector bit for bit; no bad row anywhere.
    assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
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

    assert_migrated_exactly_from(&conn, "embeddings_backup", &bad_ids(&summary), true).await;
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
        clusters: 0,
        ..SampleSpec::realistic(INDEX_ROWS as usize, 9)
    };
    generate_legacy_database(&conn, &spec).await.unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let db_arg = path.to_str().unwrap();
    // The index is forced: the plan would search 600 rows exactly.
    let run = || {
        spawn_logged(
            &[
                "--db",
                db_arg,
                "--execute",
                "--index-options",
                "embeddings_1536=default",
                "--format",
                "json",
            ],
            true,
        )
    };
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

/// Legacy rows of the `--on-conflict legacy` crash test.
const CONFLICT_ROWS: usize = 6_000;
/// The model of every application row (no legacy row has it).
const APP_MODEL: &str = "app-model-v2";

/// Every schema object (kind, table, SQL) and every row of every table
/// (rows sorted, each as [`encode`]): two dumps are equal when the schema
/// and every value are.
type Dump = BTreeMap<String, (String, Vec<Vec<u8>>)>;

/// A row as bytes, every value exact (a type tag, a length, the bytes):
/// cheap to compare and sort even with thousands of vectors.
fn encode(values: impl Iterator<Item = Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        let (tag, bytes) = match v {
            Value::Null => (b'n', Vec::new()),
            Value::Integer(i) => (b'i', i.to_le_bytes().to_vec()),
            Value::Real(r) => (b'r', r.to_bits().to_le_bytes().to_vec()),
            Value::Text(t) => (b't', t.into_bytes()),
            Value::Blob(b) => (b'b', b),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// An [`encode`]d row for people: short values in full, long ones by
/// their length and first bytes.
fn describe(mut row: &[u8]) -> String {
    let mut out = Vec::new();
    while let [tag, rest @ ..] = row {
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        let bytes = &rest[8..8 + len];
        row = &rest[8 + len..];
        out.push(match tag {
            b'n' => "NULL".to_string(),
            b'i' => i64::from_le_bytes(bytes.try_into().unwrap()).to_string(),
            b'r' => f64::from_bits(u64::from_le_bytes(bytes.try_into().unwrap())).to_string(),
            b't' if len <= 48 => format!("{:?}", String::from_utf8_lossy(bytes)),
            b't' => format!(
                "text of {len} bytes {:?}…",
                String::from_utf8_lossy(&bytes[..24])
            ),
            _ => format!("blob of {len} bytes {:02x?}…", &bytes[..len.min(8)]),
        });
    }
    out.join(" | ")
}

async fn dump_database(conn: &Connection) -> Dump {
    let mut objects = Vec::new();
    let mut rows = conn
        .query(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master",
            (),
        )
        .await
        .unwrap();
    while let Some(row) = rows.next().await.unwrap() {
        let text = |i| row.get::<String>(i).unwrap();
        objects.push((text(0), text(1), text(2), text(3)));
    }
    drop(rows);
    let mut out = BTreeMap::new();
    for (kind, name, table, sql) in objects {
        let mut dumped = Vec::new();
        if kind == "table" {
            let mut rows = conn
                .query(&format!("SELECT * FROM \"{name}\""), ())
                .await
                .unwrap();
            let n = rows.column_count();
            while let Some(row) = rows.next().await.unwrap() {
                dumped.push(encode((0..n).map(|i| row.get_value(i).unwrap())));
            }
            dumped.sort();
        }
        out.insert(name, (format!("{kind} ON {table}: {sql}"), dumped));
    }
    out
}

/// Asserts two dumps are equal, naming the first object and rows that
/// differ instead of printing both dumps.
fn assert_same_database(expected: &Dump, found: &Dump, what: &str) {
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: the schema objects differ"
    );
    for (name, (sql, rows)) in expected {
        let (found_sql, found_rows) = &found[name];
        assert_eq!(found_sql, sql, "{what}: the schema of {name} differs");
        if found_rows != rows {
            let (a, b): (BTreeSet<_>, BTreeSet<_>) =
                (rows.iter().collect(), found_rows.iter().collect());
            let missing: Vec<_> = a.difference(&b).collect();
            let extra: Vec<_> = b.difference(&a).collect();
            panic!(
                "{what}: {name} holds {} rows instead of {}; {} missing (first: {:?}), {} extra (first: {:?})",
                found_rows.len(),
                rows.len(),
                missing.len(),
                missing.first().map(|r| describe(r)),
                extra.len(),
                extra.first().map(|r| describe(r)),
            );
        }
    }
}

/// `dump` without the lock table (a killed process leaves its row there).
fn without_lock(mut dump: Dump) -> Dump {
    dump.remove("embedding_migration_lock");
    dump
}

/// A row the application wrote to a target table before the migration.
struct AppRow {
    table: TargetTable,
    id: String,
    /// Whether the legacy table holds this id.
    in_legacy: bool,
    values: Vec<Value>,
}

impl AppRow {
    fn new(table: TargetTable, id: &str, dimension: i64, k: usize, in_legacy: bool) -> Self {
        let vector: Vec<f32> = (0..dimension as usize)
            .map(|i| ((k * 31 + i * 7) % 101) as f32 / 101.0 - 0.5)
            .collect();
        AppRow {
            table,
            id: id.to_string(),
            in_legacy,
            values: vec![
                Value::Text(id.to_string()),
                Value::Text(format!("app-item-{k}")),
                Value::Text("episode".into()),
                Value::Text(encode_json(&vector)),
                Value::Blob(vector_bytes(&vector)),
                Value::Integer(dimension),
                Value::Text(APP_MODEL.into()),
                Value::Integer(1_800_000_000 + k as i64),
            ],
        }
    }

    /// `(table, row)`, as [`saved_app_rows`] lists a row.
    fn shown(&self) -> (String, Vec<u8>) {
        (
            self.table.name().to_string(),
            encode(self.values.iter().cloned()),
        )
    }
}

/// Application rows for a share of the legacy ids, in the table their
/// dimension routes to (every 5th 384 row, every 3rd row of another
/// dimension), a few in the wrong table (every 40th 1536 row, in
/// `embeddings_other`), and a few with ids the legacy table lacks.
async fn application_rows(conn: &Connection) -> Vec<AppRow> {
    let mut rows = conn
        .query(
            "SELECT embedding_id, dimension FROM embeddings ORDER BY embedding_id",
            (),
        )
        .await
        .unwrap();
    let mut legacy = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        legacy.push((row.get::<String>(0).unwrap(), row.get::<i64>(1).unwrap()));
    }
    drop(rows);
    let (mut n384, mut n_other, mut n1536) = (0, 0, 0);
    let mut out = Vec::new();
    for (k, (id, dimension)) in legacy.into_iter().enumerate() {
        if dimension <= 0 {
            continue;
        }
        match route(dimension as usize) {
            TargetTable::D384 => {
                n384 += 1;
                if n384 % 5 == 0 {
                    out.push(AppRow::new(TargetTable::D384, &id, dimension, k, true));
                }
            }
            TargetTable::Other => {
                n_other += 1;
                if n_other % 3 == 0 {
                    out.push(AppRow::new(TargetTable::Other, &id, dimension, k, true));
                }
            }
            TargetTable::D1536 => {
                n1536 += 1;
                if n1536 % 40 == 0 {
                    out.push(AppRow::new(TargetTable::Other, &id, dimension, k, true));
                }
            }
            _ => {}
        }
    }
    for i in 0..5 {
        let k = CONFLICT_ROWS + i;
        out.push(AppRow::new(
            TargetTable::D384,
            &format!("app-only-384-{i}"),
            384,
            k,
            false,
        ));
        out.push(AppRow::new(
            TargetTable::Other,
            &format!("app-only-other-{i}"),
            768,
            k,
            false,
        ));
    }
    out
}

/// Every application row still in its table, and every row saved in the
/// displaced-rows table, as [`AppRow::shown`].
async fn saved_app_rows(conn: &Connection) -> BTreeSet<(String, Vec<u8>)> {
    let cols = COLUMNS.join(", ");
    let mut queries = vec![];
    for t in [TargetTable::D384, TargetTable::Other] {
        queries.push(format!(
            "SELECT '{t}', {cols} FROM {t} WHERE model = '{APP_MODEL}'"
        ));
    }
    if table_exists(conn, "embedding_migration_displaced").await {
        queries.push(format!(
            "SELECT target_table, {cols} FROM embedding_migration_displaced"
        ));
    }
    let mut out = BTreeSet::new();
    for sql in queries {
        let mut rows = conn.query(&sql, ()).await.unwrap();
        while let Some(row) = rows.next().await.unwrap() {
            let table = row.get::<String>(0).unwrap();
            out.insert((table, encode((1..=8).map(|i| row.get_value(i).unwrap()))));
        }
    }
    out
}

/// Every application row is in its table as written, or saved, as
/// written, in the displaced-rows table.
async fn assert_no_app_row_lost(conn: &Connection, app: &[AppRow], when: &str) {
    let saved = saved_app_rows(conn).await;
    let lost: Vec<&AppRow> = app.iter().filter(|r| !saved.contains(&r.shown())).collect();
    assert!(
        lost.is_empty(),
        "{when}: {} application rows are neither in their table nor saved, e.g. {} in {}",
        lost.len(),
        lost[0].id,
        lost[0].table
    );
}

fn spawn_args(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `--execute --on-conflict legacy`, in batches of 100.
fn spawn_legacy_wins(db: &Path) -> Child {
    spawn_args(&[
        "--db",
        db.to_str().unwrap(),
        "--execute",
        "--no-vector-index",
        "--on-conflict",
        "legacy",
        "--batch-size",
        "100",
        "-q",
    ])
}

fn spawn_rollback(db: &Path) -> Child {
    spawn_args(&["--db", db.to_str().unwrap(), "--rollback", "--yes", "-q"])
}

/// Waits until `child` holds the migration lock, sleeps `extra`, then
/// kills it. Returns false if it had already ended.
async fn kill_once_locked(child: &mut Child, conn: &Connection, extra: Duration) -> bool {
    let pid = i64::from(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(
        conn,
        "SELECT pid FROM embedding_migration_lock WHERE id = 1",
    )
    .await
        != Some(pid)
    {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the run never took the lock");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(extra).await;
    kill_now(child)
}

/// Kills a `--rollback` inside its transaction (`extra` after it took the
/// lock) and checks that it changed nothing; returns whether it left a hot
/// journal (it was killed with changes written but not committed).
async fn kill_rollback(path: &Path, conn: &Connection, extra: Duration) -> bool {
    let before = without_lock(dump_database(conn).await);
    let mut child = spawn_rollback(path);
    assert!(
        kill_once_locked(&mut child, conn, extra).await,
        "the rollback finished before the kill"
    );
    // Looked at before anything opens the database again.
    let journal = path.with_extension("db-journal");
    let hot = std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0)
        || std::fs::metadata(path.with_extension("db-wal")).is_ok_and(|m| m.len() > 0);
    assert_same_database(
        &before,
        &without_lock(dump_database(conn).await),
        "after a rollback killed mid-way",
    );
    hot
}

/// Runs a rollback to the end and checks the database is as it was
/// before the first run.
async fn rollback_to(path: &Path, conn: &Connection, original: &Dump, what: &str) {
    let status = spawn_rollback(path).wait().unwrap();
    assert_eq!(status.code(), Some(0), "{what}: the rollback failed");
    assert_same_database(original, &dump_database(conn).await, what);
}

/// A SIGKILL at any point of a `--on-conflict legacy` run followed by
/// `--rollback` loses no displaced row: application rows in the target
/// tables (created before any migration) are at every kill point either in
/// place or saved, and the rollback (itself killed mid-transaction first)
/// brings back the database exactly as it was before the first run.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_on_conflict_legacy_then_rollback_loses_no_displaced_row() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let db = Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut spec = SampleSpec::realistic(CONFLICT_ROWS, 4242);
    spec.bad_rows = 8;
    generate_legacy_database(&conn, &spec).await.unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();

    // The application's own tables and rows, there before any migration.
    for t in [TargetTable::D384, TargetTable::Other] {
        conn.execute(t.create_table_sql(), ()).await.unwrap();
    }
    let app = application_rows(&conn).await;
    conn.execute("BEGIN", ()).await.unwrap();
    for row in &app {
        conn.execute(
            &format!(
                "INSERT INTO {} ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                row.table,
                COLUMNS.join(", ")
            ),
            row.values.clone(),
        )
        .await
        .unwrap();
    }
    conn.execute("COMMIT", ()).await.unwrap();
    let in_legacy = app.iter().filter(|r| r.in_legacy).count();
    assert!(in_legacy > 800, "{in_legacy} conflicting rows");
    let original = dump_database(&conn).await;

    let mut early = 0;
    let mut mid = 0;
    let mut hot = 0;
    // Round 1: killed runs only, then a rollback of the unfinished copy.
    // Round 2: killed runs, one run to the end, then a rollback.
    for round in 1..=2 {
        // Right at the start: before the database is even opened, and
        // as soon as the run holds the lock (it records the database as it
        // was, creates its tables, starts its first batch).
        let mut child = spawn_legacy_wins(&path);
        tokio::time::sleep(Duration::from_millis(if round == 1 { 10 } else { 60 })).await;
        kill_now(&mut child);
        for extra_ms in [0, 4] {
            let mut child = spawn_legacy_wins(&path);
            if kill_once_locked(&mut child, &conn, Duration::from_millis(extra_ms)).await
                && checkpoint_rows(&conn).await == 0
            {
                early += 1;
            }
            assert_no_app_row_lost(&conn, &app, "after an early kill").await;
        }
        // Inside batches, further and further in.
        let points: &[(i64, u64)] = if round == 1 {
            &[(1, 0), (1000, 17), (2300, 43), (3900, 5)]
        } else {
            &[(1, 9), (1600, 29), (3400, 3)]
        };
        for &(rows, extra_ms) in points {
            let mut child = spawn_legacy_wins(&path);
            if kill_after(&mut child, &conn, rows, Duration::from_millis(extra_ms)).await {
                mid += 1;
            }
            assert_ne!(
                scalar(
                    &conn,
                    "SELECT copy_completed_at IS NOT NULL FROM embedding_migration_checkpoint"
                )
                .await,
                Some(1),
                "the copy finished before the kill: make the database bigger"
            );
            assert_no_app_row_lost(&conn, &app, &format!("after a kill past {rows} rows")).await;
        }
        let displaced = scalar(&conn, "SELECT count(*) FROM embedding_migration_displaced")
            .await
            .unwrap_or(0);
        assert!(displaced > 0, "round {round}: nothing was displaced");

        if round == 2 {
            let status = spawn_legacy_wins(&path).wait().unwrap();
            assert_eq!(
                status.code(),
                Some(3),
                "finished, with the planted bad rows quarantined"
            );
            assert_no_app_row_lost(&conn, &app, "after a finished run").await;
            // Every application row whose legacy row is good was replaced
            // (and saved); the others stay where they are.
            let mut quarantined = BTreeSet::new();
            let mut rows = conn
                .query(
                    "SELECT embedding_id FROM embedding_migration_quarantine",
                    (),
                )
                .await
                .unwrap();
            while let Some(row) = rows.next().await.unwrap() {
                quarantined.insert(row.get::<String>(0).unwrap());
            }
            drop(rows);
            let replaced = app
                .iter()
                .filter(|r| r.in_legacy && !quarantined.contains(&r.id))
                .count() as i64;
            assert_eq!(
                scalar(
                    &conn,
                    "SELECT count(*) FROM (SELECT DISTINCT target_table, embedding_id FROM embedding_migration_displaced)"
                )
                .await,
                Some(replaced)
            );
            assert_eq!(
                scalar(
                    &conn,
                    &format!("SELECT (SELECT count(*) FROM embeddings_384 WHERE model = '{APP_MODEL}') + (SELECT count(*) FROM embeddings_other WHERE model = '{APP_MODEL}')")
                )
                .await,
                Some(app.len() as i64 - replaced)
            );
        }

        // A rollback is one transaction: killed in the middle, it changes
        // nothing; run again, it puts every displaced row back.
        for extra_ms in [5, 40, 120] {
            hot += usize::from(kill_rollback(&path, &conn, Duration::from_millis(extra_ms)).await);
        }
        rollback_to(&path, &conn, &original, &format!("round {round}")).await;
    }
    assert!(early >= 1, "no kill landed before the first batch");
    assert!(mid >= 5, "only {mid} kills landed mid-run");
    assert!(
        hot >= 2,
        "only {hot} rollback kills landed inside its transaction"
    );
    println!(
        "{} application rows ({in_legacy} conflicting), {early} early kills, {mid} mid-run kills, \
         {hot} of 6 rollback kills left a hot journal, all restored in {:.1?}",
        app.len(),
        started.elapsed()
    );
}
