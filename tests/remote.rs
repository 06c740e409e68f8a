//! The migration over the network: the real `migrate_embeddings` binary
//! against `hrana-test-server` (Hrana HTTP over SQLite, the protocol of
//! Turso and sqld) serving a temporary legacy database, with faults
//! injected. Afterwards the server is stopped and the file opened locally
//! with libSQL: every legacy row is present exactly once, bit for bit, in
//! the right table. With `SQLD_BIN` set, the fault tests (`Faulty`) run
//! against libSQL's `sqld` with `hrana-test-server` as a fault-injecting
//! proxy in front of it, and the lifecycle tests (`Served`) against sqld.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Faulty, Server, SCAN_INDEX_ON_384_ONLY, TOKEN};
use libsql::{Builder, Connection, Value};
use memory_storage_turso::sample::SampleSummary;
use test_support::{bad_ids, sample_db, scalar, table_exists, OutputWithin, RUN_LIMIT};

/// `migrate_embeddings` against `url` with the test token in `--auth-token`.
fn migrate(url: &str, args: &[&str]) -> Command {
    migrate_as(url, TOKEN, args)
}

/// `migrate_embeddings` against `url` with `token` in `--auth-token`.
fn migrate_as(url: &str, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"));
    cmd.args(["--db", url, "--auth-token", token])
        .args(args)
        .env_remove("TURSO_DATABASE_URL")
        .env_remove("TURSO_AUTH_TOKEN")
        .env_remove("TURSO_TOKEN")
        .env_remove("RUST_LOG");
    cmd
}

fn run(url: &str, args: &[&str]) -> Output {
    migrate(url, args)
        .output_within(RUN_LIMIT)
        .expect("running migrate_embeddings")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

async fn local(path: &Path) -> Connection {
    let db = Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

const TARGETS: [&str; 5] = [
    "embeddings_384",
    "embeddings_1024",
    "embeddings_1536",
    "embeddings_3072",
    "embeddings_other",
];

/// Every row of `table` (all columns, in the legacy column order but the
/// vector), keyed by embedding_id.
async fn rows_of(conn: &Connection, table: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    let mut rows = conn
        .query(
            &format!(
                "SELECT embedding_id, item_id, item_type, embedding_data, dimension, model, created_at, embedding_vector FROM {table}"
            ),
            (),
        )
        .await
        .unwrap();
    while let Some(row) = rows.next().await.unwrap() {
        let values: Vec<Value> = (0..8).map(|i| row.get_value(i).unwrap()).collect();
        let key = match &values[0] {
            Value::Text(s) => s.clone(),
            other => format!("{other:?}"),
        };
        assert!(
            out.insert(key, values).is_none(),
            "a duplicate key in {table}"
        );
    }
    out
}

/// The proof a migration is right, with the server stopped: the one
/// independent check of `test_support`, on the file the server served.
async fn assert_migrated_exactly(path: &Path, summary: &SampleSummary) {
    let conn = local(path).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(summary), true).await;
}

/// Rows the checkpoint says are written (0 before the first batch).
async fn checkpoint_rows(path: &Path) -> i64 {
    let conn = local(path).await;
    scalar(
        &conn,
        "SELECT rows_written FROM embedding_migration_checkpoint WHERE id = 1",
    )
    .await
    .unwrap_or(0)
}

/// Waits (at most a minute) until the checkpoint passes `rows`, or the
/// child ends; returns whether it is still running.
async fn wait_for_checkpoint(child: &mut Child, path: &Path, rows: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint_rows(path).await < rows {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the migration made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.try_wait().unwrap().is_none()
}

fn finish(child: Child) -> Output {
    child
        .wait_with_output()
        .expect("waiting for migrate_embeddings")
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_execute_verify_and_status_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let summary = sample_db(&path, 600, 16, 1).await;
    let server = Server::start(&path, &[]);
    let url = server.url();

    let before = std::fs::read(&path).unwrap();
    let out = run(&url, &["--dry-run", "--format", "json", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    let planned: u64 = report["planned"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(planned as usize, summary.total_rows - summary.bad.len());
    assert_eq!(report["quarantined_count"], summary.bad.len());
    assert_eq!(std::fs::read(&path).unwrap(), before, "a dry run wrote");

    let out = run(
        &url,
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "--format",
            "json",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["verification"]["passed"], true, "{}", text(&out));
    let migrated: u64 = report["migrated"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(migrated as usize, summary.total_rows - summary.bad.len());

    let out = run(&url, &["--verify", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verification passed"),
        "{}",
        text(&out)
    );

    let out = run(&url, &["--status", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = json(&out);
    assert_eq!(status["state"], "completed", "{}", text(&out));
    assert_eq!(status["quarantined"], summary.bad.len());
    assert_eq!(status["rows_left"], 0);

    drop(server);
    assert_migrated_exactly(&path, &summary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_vector_functions_stops_up_front_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 16, 2).await;
    let server = Server::start(&path, &[]);
    let out = run(&server.url(), &["--execute", "-q"]);
    // The flags are valid; the database lacks what they ask for, as a
    // database without an `embeddings` table does: a failure (1), not bad
    // usage (2).
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--no-vector-index"), "{}", text(&out));
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one sentence: {}",
        text(&out)
    );
    drop(server);
    let conn = local(&path).await;
    for table in TARGETS {
        assert!(!table_exists(&conn, table).await, "{table} was created");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_copy_then_resume_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let summary = sample_db(&path, 1500, 16, 3).await;
    // A little latency so the kills land mid-copy.
    let server = Server::start(&path, &["--delay-ms", "2"]);
    let url = server.url();
    let args = ["--execute", "--no-vector-index", "--batch-size", "50", "-q"];
    let mut killed = 0;
    for rows in [1, 400, 900] {
        let mut child = migrate(&url, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if wait_for_checkpoint(&mut child, &path, rows).await {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(killed >= 2, "only {killed} kills landed mid-copy");
    // The lock of the killed run is on this host and its process is gone:
    // the next run takes it over and resumes.
    let out = run(&url, &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    drop(server);
    assert_migrated_exactly(&path, &summary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_drop_and_rollback_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let summary = sample_db(&path, 500, 16, 4).await;
    let original = rows_of(&local(&path).await, "embeddings").await;
    let server = Server::start(&path, &[]);
    let url = server.url();

    let out = run(
        &url,
        &[
            "--execute",
            "--no-vector-index",
            "--backup",
            "--drop-old-table",
            "--allow-quarantined",
            "--yes",
            "--format",
            "json",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["backup"]["status"], "created", "{}", text(&out));
    assert!(report["dropped_legacy"].is_object(), "{}", text(&out));
    {
        let conn = local(&path).await;
        assert!(!table_exists(&conn, "embeddings").await);
        assert_eq!(rows_of(&conn, "embeddings_backup").await, original);
    }
    let out = run(&url, &["--status", "--format", "json"]);
    assert_eq!(json(&out)["state"], "legacy_dropped", "{}", text(&out));

    let out = run(&url, &["--rollback", "--yes", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A file backup is for local databases: refused up front, nothing written.
    let file = dir.path().join("copy.db");
    let out = run(
        &url,
        &[
            "--execute",
            "--no-vector-index",
            "--backup-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--backup"), "{}", text(&out));
    assert!(!file.exists());
    drop(server);
    let conn = local(&path).await;
    assert_eq!(rows_of(&conn, "embeddings").await, original, "restored");
    for table in TARGETS {
        if table_exists(&conn, table).await {
            assert_eq!(
                scalar(&conn, &format!("SELECT count(*) FROM {table}")).await,
                Some(0)
            );
        }
    }
    assert_eq!(original.len(), summary.total_rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let summary = sample_db(&path, 800, 16, 5).await;
    let server = Server::start(&path, &["--delay-ms", "5"]);
    let url = server.url();
    let args = ["--execute", "--no-vector-index", "--batch-size", "40", "-q"];
    let mut first = migrate(&url, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_checkpoint(&mut first, &path, 1).await, "too fast");
    let second = run(&url, &args);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another migration is running"),
        "{}",
        text(&second)
    );
    let out = finish(first);
    assert_eq!(out.status.code(), Some(3));
    drop(server);
    assert_migrated_exactly(&path, &summary).await;
}

/// Runs a migration of a fresh database while `faults` fire — against
/// sqld behind the fault proxy when `SQLD_BIN` is set, else against the
/// test server — and proves the result exact (the served file read with
/// the server stopped) and every fault fired.
async fn migrate_through(faults: &str, seed: u64, server_args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 600, 16, seed).await;
    let mut served = Faulty::start(&legacy, dir.path(), server_args);
    served.proxy.arm(faults);
    let out = migrate_as(
        &served.url(),
        &served.token,
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "--max-retries",
            "10",
        ],
    )
    .output_within(RUN_LIMIT)
    .expect("running migrate_embeddings");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stats = served.proxy.stats();
    assert_eq!(
        stats["armed"],
        0,
        "not every fault fired: {stats}\n{}",
        text(&out)
    );
    let file = served.stop();
    assert_migrated_exactly(&file, &summary).await;
    stats
}

// A batch's rows are multi-row `INSERT OR REPLACE INTO embeddings_N …`
// statements: over the network the whole batch is one request (BEGIN, the
// rows, the checkpoint, COMMIT: `connect::pipeline`); what the libSQL
// client sends itself re-renders them as `REPLACE INTO` (see the server's
// --log-requests).
const ROW_WRITE: &str = r#"REPLACE INTO embeddings_"#;
const COMMIT: &str = r#""sql":"COMMIT"#;

fn fault(kind: &str, skip: u32, matching: Option<&str>) -> serde_json::Value {
    let mut f = serde_json::json!({ "kind": kind, "skip": skip });
    if let Some(m) = matching {
        f["matching"] = m.into();
    }
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_dropped_mid_batch_lose_and_duplicate_nothing() {
    // Row writes inside batches: the connection drops before the server
    // reads them (the batch's transaction stays open there).
    let faults = serde_json::json!([
        fault("drop_before", 2, Some(ROW_WRITE)),
        fault("drop_before", 3, Some(ROW_WRITE)),
        fault("drop_before", 1, Some(COMMIT)),
    ]);
    migrate_through(&faults.to_string(), 11, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_after_the_commit_applied_duplicates_nothing() {
    // Two COMMITs are applied but the client only sees the connection
    // close; one row write is executed and its answer lost (its stream,
    // holding the batch's transaction, is abandoned and expires).
    let faults = serde_json::json!([
        fault("drop_after", 1, Some(COMMIT)),
        fault("drop_after", 1, Some(COMMIT)),
        fault("drop_after", 1, Some(ROW_WRITE)),
    ]);
    migrate_through(&faults.to_string(), 12, &["--stream-ttl-ms", "3000"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_mid_run_are_retried() {
    // 500s on a row write, a COMMIT, and whatever request comes 40th.
    let faults = serde_json::json!([
        fault("status_500", 3, Some(ROW_WRITE)),
        fault("status_500", 1, Some(COMMIT)),
        fault("status_500", 40, None),
    ]);
    migrate_through(&faults.to_string(), 13, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_commit_is_waited_for() {
    // The answer to the 2nd COMMIT comes 3 s late.
    let mut stall = fault("stall", 1, Some(COMMIT));
    stall["stall_ms"] = 3000.into();
    migrate_through(&stall.to_string(), 14, &[]).await;
}

/// A window read the server never answers (it sleeps for two minutes) is
/// given up after `--timeout 2` and read again on a fresh stream: the run
/// does not hang, and nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_never_comes_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 600, 16, 18).await;
    // Against sqld behind the fault proxy when SQLD_BIN is set.
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    let mut stall = fault("stall", 1, Some("FROM embeddings WHERE embedding_id >"));
    stall["stall_ms"] = 120_000.into();
    served.proxy.arm(&stall.to_string());
    let began = Instant::now();
    let out = migrate_as(
        &served.url(),
        &served.token,
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "--max-retries",
            "10",
            "--timeout",
            "2",
        ],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "the run waited {:?} for an answer that never came",
        began.elapsed()
    );
    let stats = served.proxy.stats();
    assert_eq!(stats["armed"], 0, "the stall did not fire: {stats}");
    let file = served.stop();
    assert_migrated_exactly(&file, &summary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_mid_run_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let summary = sample_db(&path, 1200, 16, 15).await;
    let mut server = Server::start(&path, &["--delay-ms", "3"]);
    let mut child = migrate(
        &server.url(),
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "50",
            "--max-retries",
            "10",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        wait_for_checkpoint(&mut child, &path, 300).await,
        "the run ended before the restart"
    );
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    server.restart();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    drop(server);
    assert_migrated_exactly(&path, &summary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_never_appears_in_output_logs_or_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 16, 16).await;
    let server = Server::start(&path, &[]);
    let url = server.url();
    let log = dir.path().join("log.jsonl");
    let report = dir.path().join("report.json");
    let log_arg = log.to_str().unwrap();
    let report_arg = report.to_str().unwrap();
    let mut seen = Vec::new();
    let mut check = |out: Output, what: &str| {
        seen.push(format!("{what}: {:?}", out.status.code()));
        let all = text(&out);
        assert!(!all.contains(TOKEN), "{what} shows the token:\n{all}");
        out
    };
    check(run(&url, &["--dry-run", "-v"]), "dry run -v");
    check(
        run(
            &url,
            &[
                "--execute",
                "--no-vector-index",
                "--format",
                "json",
                "--log-file",
                log_arg,
                "--report-json",
                report_arg,
                "-vv",
            ],
        ),
        "execute -vv --format json",
    );
    check(run(&url, &["--execute", "-v"]), "no vector functions");
    check(run(&url, &["--status", "-v"]), "status");
    check(run(&url, &["--verify", "--format", "json"]), "verify");
    // Failures: a wrong token (the right one must not show either), no
    // server at all, a token passed through the environment.
    let wrong = check(
        migrate_as(&url, "wrong-token-9d1e", &["--dry-run", "-vv"])
            .output_within(RUN_LIMIT)
            .unwrap(),
        "wrong token",
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        !text(&wrong).contains("wrong-token-9d1e"),
        "{}",
        text(&wrong)
    );
    assert!(
        text(&wrong).contains("refused the auth token"),
        "{}",
        text(&wrong)
    );
    // From a file; and a token inside the URL is not shown either.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let from_file = Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args(["--db", &url, "--status", "-v"])
        .arg("--auth-token-file")
        .arg(&token_file)
        .env_remove("TURSO_AUTH_TOKEN")
        .output_within(RUN_LIMIT)
        .unwrap();
    let from_file = check(from_file, "token from a file");
    assert_eq!(from_file.status.code(), Some(0), "{}", text(&from_file));
    let in_url = format!("{url}?authToken={TOKEN}");
    let out = check(run(&in_url, &["--verify", "-vv"]), "token in the URL");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = check(
        migrate_as(&in_url, "wrong-token-9d1e", &["--verify"])
            .output_within(RUN_LIMIT)
            .unwrap(),
        "token in the URL, failing",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    drop(server);
    let gone = check(
        run(&url, &["--execute", "-vv", "--max-retries", "1"]),
        "no server",
    );
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    let env = Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
        .args(["--db", &url, "--status", "-vv"])
        .env("TURSO_AUTH_TOKEN", TOKEN)
        .output_within(RUN_LIMIT)
        .unwrap();
    check(env, "token from the environment");
    for file in [&log, &report] {
        let content = std::fs::read_to_string(file).unwrap_or_default();
        assert!(!content.is_empty(), "{} is empty", file.display());
        assert!(
            !content.contains(TOKEN),
            "{} shows the token",
            file.display()
        );
    }
}

/// The lifecycle against a real libSQL server when one is reachable
/// (`LIBSQL_TEST_URL`, a scratch database: the test drops its tables;
/// token in `LIBSQL_TEST_TOKEN`), else against `hrana-test-server` — never
/// skipped. Checked through the remote connection itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_against_sqld_when_reachable_else_the_test_server() {
    let dir = tempfile::tempdir().unwrap();
    let (url, token, _server) = match std::env::var("LIBSQL_TEST_URL") {
        Ok(url) if !url.is_empty() => {
            let token = std::env::var("LIBSQL_TEST_TOKEN").unwrap_or_default();
            (url, token, None)
        }
        _ => {
            eprintln!("LIBSQL_TEST_URL is not set: running against hrana-test-server");
            let path = dir.path().join("empty.db");
            local(&path)
                .await
                .execute("CREATE TABLE IF NOT EXISTS placeholder (x)", ())
                .await
                .unwrap();
            let server = Server::start(&path, &[]);
            (server.url(), TOKEN.to_string(), Some(server))
        }
    };
    let db = Builder::new_remote(url.clone(), token.clone())
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    for table in TARGETS.iter().chain(&[
        "embeddings",
        "embeddings_backup",
        "embedding_migration_checkpoint",
        "embedding_migration_quarantine",
        "embedding_migration_ledger",
        "embedding_migration_lock",
        "metadata",
    ]) {
        conn.execute(&format!("DROP TABLE IF EXISTS {table}"), ())
            .await
            .unwrap();
    }
    // Generated locally, then written through the remote connection, in
    // transactions of 100 rows. (The sample generator's prepared statement
    // cannot be used here: on a remote connection a statement prepared
    // outside a transaction closes the stream on every execute, so its
    // rows escape the surrounding BEGIN … COMMIT.)
    let source = dir.path().join("source.db");
    let summary = sample_db(&source, 400, 16, 21).await;
    let source = local(&source).await;
    let mut schema = source
        .query(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'embeddings' AND sql IS NOT NULL \
             ORDER BY type = 'index'",
            (),
        )
        .await
        .unwrap();
    while let Some(row) = schema.next().await.unwrap() {
        conn.execute(&row.get::<String>(0).unwrap(), ())
            .await
            .unwrap();
    }
    let mut legacy = source.query("SELECT * FROM embeddings", ()).await.unwrap();
    let columns = legacy.column_count();
    let placeholders: Vec<String> = (1..=columns).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO embeddings VALUES ({})",
        placeholders.join(", ")
    );
    let mut n = 0;
    conn.execute("BEGIN", ()).await.unwrap();
    while let Some(row) = legacy.next().await.unwrap() {
        let values: Vec<Value> = (0..columns).map(|i| row.get_value(i).unwrap()).collect();
        conn.execute(&insert, values).await.unwrap();
        n += 1;
        if n % 100 == 0 {
            conn.execute("COMMIT", ()).await.unwrap();
            conn.execute("BEGIN", ()).await.unwrap();
        }
    }
    conn.execute("COMMIT", ()).await.unwrap();
    let original = rows_of(&conn, "embeddings").await;

    let out = migrate_as(&url, &token, &["--dry-run", "-q"])
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = migrate_as(
        &url,
        &token,
        &["--execute", "--no-vector-index", "--backup", "-q"],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
    let out = migrate_as(&url, &token, &["--verify", "-q"])
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = migrate_as(&url, &token, &["--rollback", "--yes", "-q"])
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(rows_of(&conn, "embeddings").await, original);
    for table in TARGETS {
        if table_exists(&conn, table).await {
            assert_eq!(
                scalar(&conn, &format!("SELECT count(*) FROM {table}")).await,
                Some(0)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_during_verification_reads_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 600, 16, 17).await;
    // Against sqld behind the fault proxy when SQLD_BIN is set.
    let mut served = Faulty::start(&legacy, dir.path(), &["--stream-ttl-ms", "3000"]);
    let (url, token) = (served.url(), served.token.clone());
    let run = |url: &str, args: &[&str]| {
        migrate_as(url, &token, args)
            .output_within(RUN_LIMIT)
            .unwrap()
    };
    let args = [
        "--execute",
        "--no-vector-index",
        "--batch-size",
        "100",
        "-q",
    ];
    let out = run(&url, &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The window reads: one request each over the network.
    const WINDOW_READ: &str = r#""sql":"SELECT CASE WHEN typeof"#;
    let faults = serde_json::json!([
        fault("drop_after", 1, Some(WINDOW_READ)),
        fault("drop_before", 0, Some(WINDOW_READ)),
        fault("status_500", 1, Some(WINDOW_READ)),
    ]);
    // Windows of 100 rows: a window is one request.
    let verify = ["--verify", "--max-retries", "10", "--batch-size", "100"];
    for mode in [&verify[..], &args[..]] {
        served.proxy.arm(&faults.to_string());
        let out = run(&url, mode);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert_eq!(served.proxy.stats()["armed"], 0, "{}", text(&out));
        if mode[0] == "--verify" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("verification passed"),
                "{}",
                text(&out)
            );
        }
    }
    let file = served.stop();
    assert_migrated_exactly(&file, &summary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_comes_up_late_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 16, 18).await;
    let mut server = Server::start(&path, &[]);
    server.kill();
    let child = migrate(&server.url(), &["--dry-run", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    server.restart();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// The server a lifecycle runs against: libSQL's `sqld` when `SQLD_BIN`
/// names it (JWT authentication on, vector functions there), else
/// `hrana-test-server` (no vector functions: the run skips the indexes).
enum Served {
    Sqld(Box<test_support::Sqld>, PathBuf),
    TestServer(Server, PathBuf),
}

impl Served {
    /// Serves a copy of `legacy`.
    fn start(legacy: &Path, dir: &Path) -> Served {
        match test_support::sqld_binary() {
            Some(bin) => Served::Sqld(Box::new(test_support::Sqld::start(&bin, Some(legacy))), bin),
            None => {
                eprintln!("SQLD_BIN is not set: this lifecycle runs against hrana-test-server, without vector indexes");
                let file = dir.join("served.db");
                std::fs::copy(legacy, &file).unwrap();
                Served::TestServer(Server::start(&file, &[]), file)
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Served::Sqld(s, _) => s.url(),
            Served::TestServer(s, _) => s.url(),
        }
    }

    fn token(&self) -> String {
        match self {
            Served::Sqld(s, _) => s.token.clone(),
            Served::TestServer(..) => TOKEN.to_string(),
        }
    }

    fn has_vectors(&self) -> bool {
        matches!(self, Served::Sqld(..))
    }

    /// Stops the server; returns the database file it served.
    fn stop(&mut self) -> PathBuf {
        match self {
            Served::Sqld(s, _) => {
                s.stop();
                s.database_file()
            }
            Served::TestServer(s, file) => {
                s.kill();
                file.clone()
            }
        }
    }

    fn restart(&mut self) {
        match self {
            Served::Sqld(s, bin) => s.restart(bin),
            Served::TestServer(s, _) => s.restart(),
        }
    }
}

/// Execute (with the vector indexes where the server has vector
/// functions), verify, then — the server stopped — the file it served
/// checked row by row with the independent oracle, then rollback: against
/// sqld when `SQLD_BIN` is set.
#[tokio::test(flavor = "multi_thread")]
async fn execute_verify_and_rollback_on_the_served_file_checked_with_the_server_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 600, 16, 33).await;
    let original = rows_of(&local(&legacy).await, "embeddings").await;
    let mut served = Served::start(&legacy, dir.path());
    let (url, token) = (served.url(), served.token());

    // A wrong token is refused: authentication is on.
    if served.has_vectors() {
        let out = migrate_as(&url, "not-a-token", &["--dry-run", "-q"])
            .output_within(RUN_LIMIT)
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
    let log = dir.path().join("log.jsonl");
    let mut execute = vec!["--execute", "-q", "--log-file", log.to_str().unwrap()];
    if served.has_vectors() {
        // The plan would search 600 rows exactly: build libSQL's default
        // indexes, so the index phase runs against the server, and a
        // quantized scan index on one table.
        execute.extend(["--no-index-plan", "--index-options", "embeddings_3072=scan"]);
    } else {
        execute.push("--no-vector-index");
    }
    let out = migrate_as(&url, &token, &execute)
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    if served.has_vectors() {
        // Each index batch is one transaction in one request, on a stream
        // the `libsql` client's cursors never touch: sqld interrupts a
        // statement when an earlier request on its stream is cancelled,
        // and it cancels the client's queries (a DiskANN insert so
        // interrupted failed a CI run).
        let (requests, batches) = index_batches(&log);
        assert!(batches > 1, "{batches} index batches");
        assert_eq!(requests, batches, "requests of {batches} index batches");
    }
    let report = {
        let out = migrate_as(&url, &token, &["--verify", "--format", "json"])
            .output_within(RUN_LIMIT)
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        json(&out)
    };
    assert_eq!(report["verification"]["passed"], true, "{report:#}");
    if served.has_vectors() {
        let checks = report["search_checks"].as_array().unwrap();
        assert_eq!(checks.len(), 4, "{report:#}");
    }

    let file = served.stop();
    {
        let conn = local(&file).await;
        test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
        if served.has_vectors() {
            for t in &TARGETS[..3] {
                let index = format!("idx_{t}_vector");
                assert!(table_exists(&conn, &index).await, "{index}");
            }
            assert!(table_exists(&conn, "idx_embeddings_3072_scan").await);
            assert!(!table_exists(&conn, "idx_embeddings_3072_vector").await);
        }
    }
    served.restart();
    let out = migrate_as(&url, &token, &["--rollback", "--yes", "-q"])
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = served.stop();
    let conn = local(&file).await;
    assert_eq!(rows_of(&conn, "embeddings").await, original, "restored");
    for table in TARGETS {
        assert!(!table_exists(&conn, table).await, "{table} is left");
    }
}

/// The state of the scan index of `table` in a report's JSON.
fn scan_index_status(report: &serde_json::Value, table: &str) -> String {
    report["vector_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == table)
        .unwrap_or_else(|| panic!("{table} not in {report:#}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// With statements one per request the `libsql` client sends the scan
/// index's `CREATE INDEX`, and writes it out again first (spaces before
/// parentheses, a `;`), so sqld keeps other text than the migration
/// sent. The index is still the migration's own: the next run finds it
/// in place, where it took it for a user's object (`name taken`) and had
/// the table searched exactly, its index never used.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_index_made_through_the_libsql_client_is_known_as_the_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 16, 35).await;
    let mut served = Served::start(&legacy, dir.path());
    if !served.has_vectors() {
        return;
    }
    let (url, token) = (served.url(), served.token());
    let args = [
        &["--execute", "--one-statement-per-request"][..],
        &SCAN_INDEX_ON_384_ONLY,
        &["--format", "json"],
    ]
    .concat();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = migrate_as(&url, &token, &args)
            .output_within(RUN_LIMIT)
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        seen.push(scan_index_status(&json(&out), "embeddings_384"));
    }
    assert_eq!(seen, ["built", "present"]);

    let file = served.stop();
    let conn = local(&file).await;
    let kept = test_support::scalar_text(
        &conn,
        "SELECT sql FROM sqlite_master WHERE name = 'idx_embeddings_384_scan'",
    )
    .await
    .unwrap();
    assert!(kept.contains("embeddings_384 ("), "sent as written: {kept}");
    let plan = memory_storage_turso::search_plan::read(&conn)
        .await
        .unwrap();
    assert!(
        matches!(
            plan.get(&memory_storage_turso::schema::TargetTable::D384),
            Some(memory_storage_turso::search_plan::TableSearch::Scan { .. })
        ),
        "{plan:?}"
    );
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
}

/// SIGKILL of the client mid-batch, several times, then a run to the end:
/// against sqld when `SQLD_BIN` is set. With the server stopped, its file
/// holds every good row once and bit for bit (the independent oracle).
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_client_mid_batch_then_resume_on_the_served_file() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 3000, 16, 44).await;
    let mut served = Served::start(&legacy, dir.path());
    let (url, token) = (served.url(), served.token());
    let remote = Builder::new_remote(url.clone(), token.clone())
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    let args = ["--execute", "--no-vector-index", "--batch-size", "50", "-q"];
    let mut killed = 0;
    for rows in [1, 800, 1800] {
        let mut child = migrate_as(&url, &token, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let written = scalar(
                &remote,
                "SELECT rows_written FROM embedding_migration_checkpoint WHERE id = 1",
            )
            .await
            .unwrap_or(0);
            if written >= rows {
                killed += i32::from(test_support::kill_now(&mut child));
                break;
            }
            assert!(Instant::now() < deadline, "the migration made no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = child.wait();
    }
    assert!(killed >= 2, "only {killed} kills landed mid-copy");
    let out = migrate_as(&url, &token, &args)
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let file = served.stop();
    let conn = local(&file).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
}

/// Requests and rows of the copy's batches in a `--log-file`.
fn copy_requests(log: &Path) -> (u64, u64) {
    batches(log, "copy")
        .into_iter()
        .fold((0, 0), |(r, n), (requests, rows)| (r + requests, n + rows))
}

/// Requests and count of the vector-index phase's batches in a `--log-file`.
fn index_batches(log: &Path) -> (u64, u64) {
    let batches = batches(log, "vector index");
    (batches.iter().map(|b| b.0).sum(), batches.len() as u64)
}

/// Requests and rows of each batch a phase committed, from a `--log-file`.
fn batches(log: &Path, phase: &str) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut batches = Vec::new();
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let f = &e["fields"];
        if f["message"] == "batch committed" && f["phase"] == phase {
            let requests = f["requests"].as_u64().expect("requests per batch");
            batches.push((requests, f["rows"].as_u64().unwrap()));
        }
    }
    batches
}

/// Over the network a batch is one request and a window read another: a
/// batch of 1,000 rows, its reads included, costs at most 8 requests
/// (windows shrink to keep the server's answers small, so a batch of wide
/// vectors may be split). The whole run, its fixed setup included, makes
/// less than half the requests of one statement per request (154 against
/// 434 at 3,000 rows), and both end exact. A batch sends each row's key
/// and vector, its other columns copied on the server from the legacy
/// row: the whole run sends less than the legacy rows' `embedding_data`
/// text alone, which one statement per request sends again (against
/// sqld: 9.4 MB, 24.0 MB of text, 37.5 MB one by one).
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_and_its_reads_take_a_few_requests() {
    let mut totals = Vec::new();
    for one_by_one in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("legacy.db");
        let summary = sample_db(&legacy, 3000, 16, 21).await;
        let text_bytes = scalar(
            &test_support::open(&legacy).await,
            "SELECT sum(length(CAST(embedding_data AS BLOB))) FROM embeddings",
        )
        .await
        .unwrap() as u64;
        let mut served = Faulty::start(&legacy, dir.path(), &[]);
        let log = dir.path().join("log.jsonl");
        let mut args = vec!["--execute", "--no-vector-index", "-q", "--log-file"];
        args.push(log.to_str().unwrap());
        if one_by_one {
            args.push("--one-statement-per-request");
        }
        let out = migrate_as(&served.url(), &served.token, &args)
            .output_within(RUN_LIMIT)
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let stats = served.proxy.stats();
        totals.push(stats["requests"].as_u64().unwrap());
        let sent = stats["request_bytes"].as_u64().unwrap();
        assert_eq!(
            sent < text_bytes,
            !one_by_one,
            "{sent} bytes sent, {text_bytes} of embedding_data"
        );
        if !one_by_one {
            let (requests, rows) = copy_requests(&log);
            assert_eq!(rows, 3000);
            assert!(
                requests * 1000 <= 8 * rows,
                "{requests} requests for {rows} rows"
            );
        }
        let file = served.stop();
        assert_migrated_exactly(&file, &summary).await;
    }
    assert!(
        totals[0] * 2 < totals[1],
        "in one request per batch: {} requests; one statement per request: {}",
        totals[0],
        totals[1]
    );
}

/// The migration's pipeline speaks Hrana's protobuf to a server that has
/// it (sqld, directly and through the fault proxy), and JSON to one that
/// answers 404 (the test server on a file): the same read answers alike,
/// the vector's bytes included.
#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_speaks_protobuf_where_the_server_has_it_else_json() {
    use memory_storage_turso::connect::pipeline::{Pipeline, Statement};
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    sample_db(&legacy, 10, 0, 65).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    let vector: Vec<u8> = [f32::MIN_POSITIVE, -0.0, f32::NAN, 1.0 / 3.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    for url in [served.url(), served.direct_url()] {
        let pipeline = Pipeline::new(&url, &served.token, Duration::from_secs(30)).unwrap();
        let read = Statement::new(
            "SELECT ?1, ?2, ?3, ?4, count(*) FROM embeddings",
            vec![
                Value::Blob(vector.clone()),
                Value::Text("ünïcode \"quoted\"".into()),
                Value::Integer(i64::MIN),
                Value::Null,
            ],
        );
        let answer = pipeline.read(vec![read]).await.unwrap();
        assert_eq!(
            answer[0].rows,
            vec![vec![
                Value::Blob(vector.clone()),
                Value::Text("ünïcode \"quoted\"".into()),
                Value::Integer(i64::MIN),
                Value::Null,
                Value::Integer(10),
            ]]
        );
        // The file server answered the protobuf request 404, and the same
        // request went again in JSON.
        assert_eq!(pipeline.speaks_protobuf(), served.is_sqld(), "{url}");
        let requests = if served.is_sqld() { 1 } else { 2 };
        assert_eq!(pipeline.requests(), requests, "{url}");
    }
    served.stop();
}

/// A transaction held across requests (`Held`, the online mirror's): a
/// step that fails ends it in its own request, the statements after it not
/// run and the lock not left held; one that goes through sees its own
/// writes inside and commits them.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_transaction_ends_at_a_failed_step_and_commits_what_it_saw() {
    use memory_storage_turso::connect::pipeline::{Failure, Statement};
    let common::Ground {
        dir: _dir,
        mut served,
        pipeline,
        app,
    } = common::pipeline_with_table(66).await;
    let sql = |s: &str| Statement::new(s, vec![]);

    let (mut held, _) = pipeline
        .begin_held(vec![sql("INSERT INTO t VALUES (1)")])
        .await
        .unwrap();
    let failure = held
        .run(vec![
            sql("INSERT INTO t VALUES (2)"),
            sql("INSERT INTO t VALUES (1)"),
            sql("INSERT INTO t VALUES (3)"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::Step { step: 1, .. }),
        "{failure:?}"
    );
    // Nothing more runs in it.
    let failure = held.run(vec![sql("INSERT INTO t VALUES (4)")]).await;
    assert!(matches!(failure, Err(Failure::Ended)), "{failure:?}");
    drop(held);
    let began = Instant::now();
    app.execute("INSERT INTO t VALUES (5)", ()).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "the failed transaction left the lock held"
    );
    assert_eq!(
        common::ids_in_t(&app).await,
        vec![5],
        "a statement of the failed one landed"
    );

    let (mut held, _) = pipeline
        .begin_held(vec![sql("INSERT INTO t VALUES (6)")])
        .await
        .unwrap();
    let seen = held.run(vec![sql("SELECT count(*) FROM t")]).await.unwrap();
    assert_eq!(seen[0].rows, vec![vec![Value::Integer(2)]]);
    held.commit(vec![sql("INSERT INTO t VALUES (7)")])
        .await
        .unwrap();
    assert_eq!(common::ids_in_t(&app).await, vec![5, 6, 7]);
    served.stop();
}

/// The verification over the network repairs copies of ours that went
/// missing, under the write lock in a few requests (the window read again,
/// the repairs with the window read once more, the commit), where a repair
/// through the `libsql` connection took about twenty; the served file is
/// then exact.
#[tokio::test(flavor = "multi_thread")]
async fn the_verification_repairs_over_the_network_in_a_few_requests() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 0, 69).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    let execute = |served: &Faulty| {
        let args = ["--execute", "--no-vector-index", "--format", "json", "-q"];
        let before = served.proxy.stats()["requests"].as_u64().unwrap();
        let out = migrate_as(&served.url(), &served.token, &args)
            .output_within(RUN_LIMIT)
            .expect("running migrate_embeddings");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let requests = served.proxy.stats()["requests"].as_u64().unwrap() - before;
        (json(&out), requests)
    };
    execute(&served);
    // Two copies of ours go missing: the first two of embeddings_384.
    let app = Builder::new_remote(served.direct_url(), served.token.clone())
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    app.execute(
        "DELETE FROM embeddings_384 WHERE embedding_id IN \
         (SELECT embedding_id FROM embeddings_384 ORDER BY embedding_id LIMIT 2)",
        (),
    )
    .await
    .unwrap();
    let (repairing, with_repairs) = execute(&served);
    assert_eq!(repairing["verification"]["repaired"], 2);
    assert_eq!(repairing["verification"]["passed"], true);
    let (clean, without) = execute(&served);
    assert_eq!(clean["verification"]["repaired"], 0);
    assert!(
        with_repairs <= without + 6,
        "repairing two rows took {with_repairs} requests against {without} for none"
    );
    let file = served.stop();
    assert_migrated_exactly(&file, &summary).await;
}

/// `--online`: the answer to the final step's commit is lost after the
/// server committed it (the triggers and the change log dropped). The
/// retry finds them gone, which only that commit could have done, and the
/// run ends as settled instead of failing on the missing log.
#[tokio::test(flavor = "multi_thread")]
async fn an_online_final_step_committed_but_unanswered_ends_settled() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 0, 70).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    let lost = fault(
        "drop_after",
        0,
        Some("DROP TABLE IF EXISTS embedding_migration_changes"),
    );
    served.proxy.arm(&lost.to_string());
    let out = migrate_as(
        &served.url(),
        &served.token,
        &[
            "--execute",
            "--online",
            "--no-vector-index",
            "--format",
            "json",
            "-q",
        ],
    )
    .output_within(RUN_LIMIT)
    .expect("running migrate_embeddings");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        served.proxy.stats()["armed"],
        0,
        "the answer was never lost"
    );
    assert_eq!(json(&out)["online"]["triggers_removed"], true);
    let file = served.stop();
    let conn = local(&file).await;
    assert!(!table_exists(&conn, "embedding_migration_changes").await);
    assert_migrated_exactly(&file, &summary).await;
}
