//! sqld's limits, met on purpose: the real `migrate_embeddings` against
//! libSQL's own server (`SQLD_BIN`), with `hrana-test-server` as a proxy in
//! front of it where a request must be held back, and an application
//! writing to the same database straight to sqld. Each run ends with sqld
//! stopped and its file checked by the independent oracle. Without
//! `SQLD_BIN` these tests are skipped (said once): the test server has
//! none of these limits.
//!
//! What sqld does (libsql-server): a write transaction is rolled back once
//! another writer has waited for it and it is older than 5 s, and the next
//! request on its stream answers `TRANSACTION_TIMEOUT` (later ones run in
//! autocommit); an idle stream expires after 10 s; an answer over
//! `--max-response-size` is refused with `RESPONSE_TOO_LARGE`.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Faulty, Server, SCAN_INDEX_ON_384_ONLY};
use libsql::{Builder, Connection};
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec, SampleSummary};
use test_support::{bad_ids, sample_db, scalar, table_exists, OutputWithin, RUN_LIMIT};

/// One test at a time: each times transactions against sqld's 5 s limit
/// and builds DiskANN indexes on it, and five at once on two cores starve
/// each other into the very timeouts they measure (one parallel run took
/// over 20 minutes; one after the other they take under two).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether sqld is at hand; says once that these tests are skipped if not.
fn have_sqld() -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    let have = test_support::sqld_binary().is_some();
    if !have {
        SAID.call_once(|| eprintln!("SQLD_BIN is not set: sqld's limits are not tested"));
    }
    have
}

fn migrate(url: &str, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_migrate_embeddings"));
    cmd.args(["--db", url, "--auth-token", token])
        .args(args)
        .env_remove("TURSO_DATABASE_URL")
        .env_remove("TURSO_AUTH_TOKEN")
        .env_remove("TURSO_TOKEN")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn remote(url: &str, token: &str) -> Connection {
    Builder::new_remote(url.to_string(), token.to_string())
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap()
}

async fn local(path: &Path) -> Connection {
    let conn = Builder::new_local(path)
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// Holds back the request matching `matching` (after `skip` of them) for
/// `millis` before it goes on to sqld.
fn stall(matching: &str, skip: u32, millis: u64) -> String {
    serde_json::json!({ "kind": "stall", "skip": skip, "matching": matching, "stall_ms": millis })
        .to_string()
}

/// A legacy database of `rows` rows served by sqld behind the fault proxy,
/// and an application's connection straight to sqld with its own table.
struct WithApp {
    dir: tempfile::TempDir,
    summary: SampleSummary,
    served: Faulty,
    app: Connection,
}

async fn with_app(rows: usize, seed: u64) -> WithApp {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, rows, 16, seed).await;
    serve_with_app(dir, summary).await
}

/// `dir`'s `legacy.db` (of `summary`) served, and the application's
/// connection (see [`with_app`]).
async fn serve_with_app(dir: tempfile::TempDir, summary: SampleSummary) -> WithApp {
    let legacy = dir.path().join("legacy.db");
    let served = Faulty::start(&legacy, dir.path(), &[]);
    let app = remote(&served.direct_url(), &served.token).await;
    app.execute(
        "CREATE TABLE app_notes (id INTEGER PRIMARY KEY, note TEXT)",
        (),
    )
    .await
    .unwrap();
    WithApp {
        dir,
        summary,
        served,
        app,
    }
}

/// With the server stopped, its file: every row migrated exactly (the
/// independent oracle), and the application's `notes` rows all there.
async fn assert_exact_and_notes_kept(served: &mut Faulty, summary: &SampleSummary, notes: i64) {
    let file = served.stop();
    let conn = local(&file).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(summary), true).await;
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM app_notes").await,
        Some(notes)
    );
}

/// Waits until `proxy` has fired `n` faults (a request is being held).
fn wait_fired(proxy: &Server, n: u64, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.stats()["fired"].as_u64().unwrap_or(0) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the fault fired"
        );
        assert!(Instant::now() < deadline, "the fault never fired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The longest the application waits for one answer from sqld: far past
/// its 5 s transaction limit, so only a server that stopped answering
/// reaches it, and the test fails saying so instead of hanging.
const APP_ANSWER: Duration = Duration::from_secs(60);

/// `request` as the application sends it, failing the test if sqld
/// answers nothing within [`APP_ANSWER`].
async fn answered<T>(what: &str, request: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(APP_ANSWER, request)
        .await
        .unwrap_or_else(|_| {
            panic!("sqld answered no {what} of the application's in {APP_ANSWER:?}")
        })
}

/// An application's write straight to sqld: waits for the write lock (so
/// sqld times out a transaction older than 5 s that holds it); retried
/// until it commits. Returns how long it took.
async fn app_write(app: &Connection, id: i64) -> Duration {
    let began = Instant::now();
    loop {
        match answered(
            "insert",
            app.execute("INSERT INTO app_notes (id, note) VALUES (?1, 'app')", [id]),
        )
        .await
        {
            Ok(_) => return began.elapsed(),
            Err(e) => {
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "the application could not write for 30 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

const WRITTEN: [&str; 6] = [
    "embeddings_384",
    "embeddings_1024",
    "embeddings_1536",
    "embeddings_3072",
    "embeddings_other",
    "embedding_migration_ledger",
];

/// What the migration has committed: its checkpoint (last key and rows),
/// and the rows of every target table and of the ledger.
async fn committed(conn: &Connection) -> (Option<String>, i64) {
    let checkpoint = test_support::scalar_text(
        conn,
        "SELECT quote(last_embedding_id) || ' after ' || rows_written FROM embedding_migration_checkpoint WHERE id = 1",
    )
    .await;
    let mut rows = 0;
    for table in WRITTEN {
        if table_exists(conn, table).await {
            rows += scalar(conn, &format!("SELECT count(*) FROM {table}"))
                .await
                .unwrap_or(0);
        }
    }
    (checkpoint, rows)
}

/// Rows of every target table and ledger entry beyond the checkpoint.
async fn rows_past_the_checkpoint(conn: &Connection) -> i64 {
    let mut n = 0;
    for table in WRITTEN {
        if table_exists(conn, table).await {
            n += scalar(
                conn,
                &format!(
                    "SELECT count(*) FROM {table} WHERE embedding_id > \
                     (SELECT last_embedding_id FROM embedding_migration_checkpoint WHERE id = 1)"
                ),
            )
            .await
            .unwrap_or(0);
        }
    }
    n
}

/// The fields of each copy batch's event in a `--log-file`, in order.
fn copy_batches(log: &Path) -> Vec<serde_json::Value> {
    batches_of(log, "copy")
}

/// The fields of each batch's event of `phase` in a `--log-file`, in order.
fn batches_of(log: &Path, phase: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| e["fields"].clone())
        .filter(|f| f["message"] == "batch committed" && f["phase"] == phase)
        .collect()
}

// What the libSQL client sends for the checkpoint's move and an index
// batch's progress (see the proxy's --log-requests).
const CHECKPOINT_WRITE: &str = r#""sql":"INSERT INTO embedding_migration_checkpoint"#;
/// A batch in one request: its checkpoint's move beside its COMMIT.
const ONE_REQUEST_CHECKPOINT: &str = r#"embedding_migration_checkpoint (id, last_embedding_id"#;
const INDEX_PROGRESS_WRITE: &str = r#""sql":"UPDATE embedding_migration_index_progress"#;
/// A catch-up transaction of `--online` forgetting a mirrored change.
const CHANGE_FORGET: &str = r#""sql":"DELETE FROM embedding_migration_changes WHERE rowid"#;
/// The prepare of a lookup of one schema object by name
/// (`db::schema_object`), as the index phase asks where a table's index
/// stands.
const INDEX_LOOKUP: &str =
    r#""type":"describe","sql":"SELECT type, tbl_name, sql FROM sqlite_master WHERE name"#;

/// A batch whose transaction sqld rolls back (held open past 5 s while an
/// application waits to write) lands nothing: not a row, not a ledger
/// entry, not its checkpoint, though the request holding it goes on to
/// sqld afterwards. A run that may retry then tries the batch again with
/// half the rows, on a fresh stream, and finishes, exact. (Statements one
/// per request, so that the network can hold a transaction open; in one
/// request it cannot: the next test.)
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_sqld_timed_out_lands_nothing_and_is_retried() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let WithApp {
        dir,
        summary,
        mut served,
        app,
    } = with_app(600, 61).await;
    let (url, token) = (served.url(), served.token.clone());
    let args = [
        "--execute",
        "--no-vector-index",
        "--batch-size",
        "100",
        "--one-statement-per-request",
    ];

    // The second batch's checkpoint is held 8 s, its rows already written
    // in the open transaction; the application waits for the lock.
    served.proxy.arm(&stall(CHECKPOINT_WRITE, 1, 8_000));
    let mut child = migrate(&url, &token, &[&args[..], &["--max-retries", "0"]].concat())
        .spawn()
        .unwrap();
    wait_fired(&served.proxy, 1, &mut child);
    // The first batch is committed; the second is in its transaction.
    let before = committed(&app).await;
    assert!(before.0.is_some() && before.1 > 0, "{before:?}");
    let waited = app_write(&app, 1).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("TRANSACTION_TIMEOUT"), "{}", text(&out));
    assert!(
        waited > Duration::from_secs(2),
        "sqld let the app write at once: {waited:?}"
    );
    assert_eq!(
        committed(&app).await,
        before,
        "rows, ledger entries or the checkpoint of the timed-out batch landed"
    );
    assert_eq!(rows_past_the_checkpoint(&app).await, 0);

    // The same hold on the resumed run's first batch: retried with half
    // the rows (and the rest of the copy too), finished.
    served.proxy.arm(&stall(CHECKPOINT_WRITE, 0, 8_000));
    let log = dir.path().join("log.jsonl");
    let retrying = [&args[..], &["--max-retries", "10", "--log-file"]].concat();
    let mut child = migrate(&url, &token, &retrying).arg(&log).spawn().unwrap();
    wait_fired(&served.proxy, 2, &mut child);
    app_write(&app, 2).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let batches: Vec<(u64, u64)> = copy_batches(&log)
        .iter()
        .map(|f| (f["rows"].as_u64().unwrap(), f["retries"].as_u64().unwrap()))
        .collect();
    assert!(batches.len() > 2, "{batches:?}");
    assert!(
        batches[0].1 >= 1,
        "the first batch was not retried: {batches:?}"
    );
    assert!(
        batches.iter().all(|&(rows, _)| rows <= 50),
        "not retried smaller: {batches:?}"
    );
    assert_exact_and_notes_kept(&mut served, &summary, 2).await;
}

/// The one `CREATE INDEX` of a scan index, as the libSQL client sends it
/// (statements one per request; the client writes the SQL out again, a
/// space before each parenthesis).
const SCAN_INDEX_CREATE: &str =
    r#""sql":"CREATE INDEX idx_embeddings_384_scan ON embeddings_384 ("#;

/// A scan index made in one statement that sqld rolls back (its request
/// held back past 5 s while the application waits to write; statements
/// one per request, so that the network can hold the transaction open:
/// on a table this small the statement itself takes milliseconds) is made
/// again in batches beside the table and swapped in, instead of the same
/// statement tried again: the run ends exact, the index in place.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_index_sqld_rolled_back_is_made_again_in_batches() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let WithApp {
        dir,
        summary,
        mut served,
        app,
    } = with_app(300, 72).await;
    let log = dir.path().join("log.jsonl");
    let args = [
        &["--execute", "--one-statement-per-request"][..],
        &SCAN_INDEX_ON_384_ONLY,
        &["--max-retries", "10", "--log-file", log.to_str().unwrap()],
    ]
    .concat();
    served.proxy.arm(&stall(SCAN_INDEX_CREATE, 0, 8_000));
    let mut child = migrate(&served.url(), &served.token, &args)
        .spawn()
        .unwrap();
    wait_fired(&served.proxy, 1, &mut child);
    let waited = app_write(&app, 1).await;
    assert!(
        waited > Duration::from_secs(2),
        "the scan index's transaction held no lock: the application wrote in {waited:?}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let batches = batches_of(&log, "scan index");
    assert!(!batches.is_empty(), "not made in batches: {}", text(&out));

    let file = served.stop();
    let conn = local(&file).await;
    assert_eq!(
        memory_storage_turso::scan_index::state(
            &conn,
            memory_storage_turso::schema::TargetTable::D384,
            memory_storage_turso::schema::ScanBits::Float8
        )
        .await
        .unwrap(),
        memory_storage_turso::scan_index::ScanIndex::Present
    );
    assert!(!table_exists(&conn, "embeddings_384_indexing").await);
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM app_notes").await,
        Some(1)
    );
}

/// A batch sent as one request (BEGIN, rows, ledger, checkpoint, lock,
/// COMMIT) holds no lock while the network holds it: with the request
/// stalled 8 s on its way to sqld, an application writes at once, and the
/// batch then lands whole, in one request, exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_in_one_request_holds_no_lock_while_the_network_delays_it() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let WithApp {
        dir: _dir,
        summary,
        mut served,
        app,
    } = with_app(600, 63).await;
    let (url, token) = (served.url(), served.token.clone());
    // The second batch: its checkpoint is in the same request as its rows
    // and its COMMIT.
    served.proxy.arm(&stall(ONE_REQUEST_CHECKPOINT, 1, 8_000));
    let args = [
        "--execute",
        "--no-vector-index",
        "--batch-size",
        "100",
        "--max-retries",
        "0",
    ];
    let mut child = migrate(&url, &token, &args).spawn().unwrap();
    wait_fired(&served.proxy, 1, &mut child);
    let waited = app_write(&app, 1).await;
    // A held lock would keep the application waiting until sqld times the
    // transaction out (5 s); below that is margin for a loaded machine.
    assert!(
        waited < Duration::from_secs(4),
        "the application waited {waited:?} for a batch still on its way"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_exact_and_notes_kept(&mut served, &summary, 1).await;
}

/// Over the network the copy writes a batch on one stream while it reads
/// the next window on another, each batch guarded by the writing stream's
/// `data_version`. An application's commit while a batch's request is held
/// back makes that batch fail its guard and be written the slow way
/// (its window read again in the transaction); the batches after it go
/// back to one request each instead of every one being read again. Exact.
/// A logged copy of `with`'s rows in batches of 100 (`args` added) beside
/// its application, the third batch's request held back while the application
/// commits, so that its guard fails; `then` armed after that hold. Returns
/// once the application's write is done, with the run still going.
async fn guard_failing_at_the_third_batch(
    with: WithApp,
    then: &[String],
    args: &[&str],
) -> (WithApp, std::process::Child, std::path::PathBuf) {
    let log = with.dir.path().join("run.log");
    with.served
        .proxy
        .arm(&stall(ONE_REQUEST_CHECKPOINT, 2, 1_500));
    for fault in then {
        with.served.proxy.arm(fault);
    }
    let logging = ["--log-file", log.to_str().unwrap()];
    let base = ["--execute", "--no-vector-index", "--batch-size", "100"];
    let mut child = migrate(&with.served.url(), &with.served.token, &base)
        .args(args)
        .args(logging)
        .spawn()
        .unwrap();
    wait_fired(&with.served.proxy, 1, &mut child);
    app_write(&with.app, 1).await;
    (with, child, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_commit_by_the_application_makes_one_batch_read_its_window_again() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut with, child, log) =
        guard_failing_at_the_third_batch(with_app(1000, 67).await, &[], &[]).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let batches = copy_batches(&log);
    assert!(batches.len() >= 10, "{} copy batches", batches.len());
    let read_again: Vec<usize> = (0..batches.len())
        .filter(|&i| batches[i]["read_again"] == true)
        .collect();
    assert_eq!(read_again, vec![2], "batches read again: {read_again:?}");
    assert_exact_and_notes_kept(&mut with.served, &with.summary, 1).await;
}

/// A row the database refuses, in a batch read again under the write lock
/// (its guard failed: the application committed): that attempt lands
/// nothing, the batch is made the way that names the row, and the run
/// ends exact with the row left in the legacy table and in the quarantine
/// record as `rejected_by_database`. (`embeddings_384` carries a `CHECK`
/// refusing one row of the third window: 64 rows, then 100 each.)
#[tokio::test(flavor = "multi_thread")]
async fn a_row_refused_in_a_batch_read_again_under_the_lock_is_quarantined_and_named() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 1000, 16, 69).await;
    let victim = good_384_within(&legacy, &bad_ids(&summary), 190..250).await;
    refuse_in_embeddings_384(&legacy, &victim).await;
    let with = serve_with_app(dir, summary).await;
    let (mut with, child, log) = guard_failing_at_the_third_batch(with, &[], &[]).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The third batch holds the row: its attempt in one request (the
    // guard failed), its attempt under the lock (the row refused), then
    // the window read and written again without the row.
    let batches = copy_batches(&log);
    let upper = |i: usize| batches[i]["checkpoint"].as_str().unwrap().to_string();
    assert!(
        upper(1) < victim && victim <= upper(2),
        "{victim} is not in the third batch ({} to {})",
        upper(1),
        upper(2)
    );
    let requests = batches[2]["requests"].as_u64().unwrap();
    assert!(requests >= 4, "the third batch took {requests} requests");
    assert!(
        text(&out).contains(&victim),
        "the run did not name {victim}"
    );

    assert_refused_and_the_rest_exact(&mut with.served, &with.summary, &victim, 1).await;
}

/// A good 384-dimension row of the legacy file at `path` (not in `bad`)
/// whose place in key order is within `places`: its key.
async fn good_384_within(path: &Path, bad: &[String], places: std::ops::Range<usize>) -> String {
    let conn = local(path).await;
    let keys = test_support::read_table(&conn, "embeddings", true).await;
    keys.iter()
        .enumerate()
        .filter(|(i, _)| places.contains(i))
        .find(|(_, (id, row))| {
            !bad.contains(id)
                && matches!(&row[3], libsql::Value::Text(d)
                    if test_support::oracle_vector(d).is_some_and(|v| v.len() == 384 * 4))
        })
        .map(|(_, (id, _))| id.clone())
        .expect("a good 384-dimension row in those places")
}

/// Makes `embeddings_384` in the file at `path` as the schema does, plus
/// a `CHECK` refusing the row `victim`.
async fn refuse_in_embeddings_384(path: &Path, victim: &str) {
    let ddl = memory_storage_turso::schema::TargetTable::D384
        .create_table_sql()
        .trim_end();
    let ddl = format!(
        "{},\n    CHECK (embedding_id != '{victim}')\n)",
        ddl.strip_suffix(')').unwrap().trim_end()
    );
    local(path).await.execute(&ddl, ()).await.unwrap();
}

/// With the server stopped, its file: `victim` recorded as refused by the
/// database and still in the legacy table, every other row migrated
/// exactly, and the application's `notes` rows all there.
async fn assert_refused_and_the_rest_exact(
    served: &mut Faulty,
    summary: &SampleSummary,
    victim: &str,
    notes: i64,
) {
    let file = served.stop();
    let conn = local(&file).await;
    assert_eq!(
        test_support::scalar_text(
            &conn,
            &format!(
                "SELECT reason_code FROM embedding_migration_quarantine WHERE embedding_id = '{victim}'"
            ),
        )
        .await
        .as_deref(),
        Some("rejected_by_database")
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM embeddings WHERE embedding_id = '{victim}'")
        )
        .await,
        Some(1),
        "the refused row left the legacy table"
    );
    let mut left = bad_ids(summary);
    left.push(victim.to_string());
    test_support::assert_migrated_exactly(&conn, &left, true).await;
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM app_notes").await,
        Some(notes)
    );
}

/// `--online`: a row the application writes during the copy, which the
/// database refuses, met in a turn of the catch-up under the write lock
/// (its key is before every other, so the copy never reads it): that turn
/// lands nothing, the turn is made the way that names the row, and the run
/// ends exact with the row left in the legacy table and in the quarantine
/// record as `rejected_by_database`.
#[tokio::test(flavor = "multi_thread")]
async fn online_a_row_refused_in_a_catch_up_turn_under_the_lock_is_quarantined_and_named() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let victim = "0000-refused-by-check";
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 1000, 16, 70).await;
    refuse_in_embeddings_384(&legacy, victim).await;
    let with = serve_with_app(dir, summary).await;
    let (mut with, child, _log) = guard_failing_at_the_third_batch(with, &[], &["--online"]).await;
    let v: Vec<f32> = (0..384).map(|j| j as f32 * 0.125 - 3.0).collect();
    app_writes_legacy_row(&with.app, victim, &v).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(victim), "the run did not name {victim}");
    assert_refused_and_the_rest_exact(&mut with.served, &with.summary, victim, 1).await;
}

/// The application writes a legacy row of key `id` holding `v` (384
/// dimensions) straight to sqld.
async fn app_writes_legacy_row(app: &Connection, id: &str, v: &[f32]) {
    answered(
        "insert",
        app.execute(
            "INSERT INTO embeddings (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) \
             VALUES (?1, 'item-refused', 'episode', ?2, 384, 'app', 1760000000)",
            libsql::params![id, memory_storage_turso::sample::encode_json(v)],
        ),
    )
    .await
    .unwrap();
}

/// The request that opens `--online`'s final step: the whole log read
/// under the write lock (`LIMIT` bound to `i64::MAX`; a catch-up turn
/// reads a batch's worth; the guard's statements hold the number too, but
/// not as a bound value).
const FINAL_LOG_READ: &str = r#""value":"9223372036854775807""#;

/// `--online`: a row the application writes just before the final step,
/// which the database refuses, met in the final step under the write lock
/// (the run's first request of that step is held back at the proxy while
/// the application writes): that attempt lands nothing, the row is named,
/// the final step is made again with the row quarantined, and it settles:
/// the triggers and the log are gone, the row is left in the legacy table
/// and in the quarantine record as `rejected_by_database`, every other
/// row is migrated exactly.
#[tokio::test(flavor = "multi_thread")]
async fn online_a_row_refused_in_the_final_step_under_the_lock_is_quarantined_and_named() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let victim = "0000-refused-in-the-final-step";
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 600, 16, 71).await;
    refuse_in_embeddings_384(&legacy, victim).await;
    let mut with = serve_with_app(dir, summary).await;
    with.served.proxy.arm(&stall(FINAL_LOG_READ, 0, 2_000));
    let report = with.dir.path().join("report.json");
    let mut child = migrate(
        &with.served.url(),
        &with.served.token,
        &[
            "--execute",
            "--online",
            "--no-vector-index",
            "--batch-size",
            "100",
            "--report-json",
            report.to_str().unwrap(),
        ],
    )
    .spawn()
    .unwrap();
    wait_fired(&with.served.proxy, 1, &mut child);
    let v: Vec<f32> = (0..384).map(|j| j as f32 * 0.25 - 7.0).collect();
    app_writes_legacy_row(&with.app, victim, &v).await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(victim), "the run did not name {victim}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let online = &report["online"];
    assert_eq!(online["triggers_removed"], true, "{online}");
    assert!(
        online["final_keys"].as_u64() >= Some(1),
        "{online}\n{}",
        text(&out)
    );

    assert_refused_and_the_rest_exact(&mut with.served, &with.summary, victim, 0).await;
    // The server is stopped: its file.
    let conn = local(&with.served.stop()).await;
    assert!(!table_exists(&conn, memory_storage_turso::schema::CHANGES_TABLE).await);
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
        )
        .await,
        Some(0)
    );
}

/// A batch read again under the write lock (its guard failed: the
/// application committed) takes two requests, the lock held between them;
/// held back past sqld's 5 s while the application waits, its second
/// request lands nothing, and the batch is made again: the run ends exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_read_again_under_the_lock_and_timed_out_lands_nothing_and_is_retried() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    // Then the commit of the batch read again held past 5 s.
    let then = [stall(ONE_REQUEST_CHECKPOINT, 0, 8_000)];
    let (mut with, mut child, log) =
        guard_failing_at_the_third_batch(with_app(1000, 68).await, &then, &["--max-retries", "10"])
            .await;
    wait_fired(&with.served.proxy, 2, &mut child);
    let before = committed(&with.app).await;
    let waited = app_write(&with.app, 2).await;
    assert!(
        waited > Duration::from_secs(2),
        "the batch read again held no lock: the application wrote in {waited:?}"
    );
    assert_eq!(
        committed(&with.app).await,
        before,
        "something of the timed-out batch landed"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let batches = copy_batches(&log);
    assert!(
        batches.iter().any(|b| b["retries"].as_u64() >= Some(1)),
        "no batch was retried: {batches:?}"
    );
    assert_exact_and_notes_kept(&mut with.served, &with.summary, 2).await;
}

/// The copy's guard, on sqld itself: `PRAGMA data_version` read on a
/// stream stays the same through that stream's own commits and moves with
/// another connection's; a transaction guarded by an older value lands
/// nothing; and a transaction bound to a stream that is gone is not sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_guard_read_on_a_stream_sees_other_connections_commits_not_its_own() {
    use memory_storage_turso::connect::pipeline::{fail_unless, Failure, Pipeline, Statement};
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    sample_db(&legacy, 10, 0, 68).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    let url = served.direct_url();
    let writing = Pipeline::new(&url, &served.token, Duration::from_secs(30)).unwrap();
    let reading = writing.fork();
    let sql = |s: &str| Statement::new(s, vec![]);
    // `PRAGMA data_version` on the writing stream, as the copy reads it.
    let observe = |p: &Pipeline| {
        let p = p.clone();
        async move { p.read_observed(Vec::new()).await.unwrap().0 }
    };
    writing
        .transaction(vec![sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")])
        .await
        .unwrap();
    let seen = observe(&writing).await;
    writing
        .transaction_on(seen.stream, vec![sql("INSERT INTO t VALUES (1)")])
        .await
        .unwrap();
    assert_eq!(observe(&writing).await, seen, "own commit");
    reading
        .transaction(vec![sql("INSERT INTO t VALUES (2)")])
        .await
        .unwrap();
    let moved = observe(&writing).await;
    assert_eq!(moved.stream, seen.stream);
    assert_ne!(moved.data_version, seen.data_version, "another's commit");
    let guard = |v: i64| {
        Statement::new(
            fail_unless("(SELECT data_version FROM pragma_data_version) = ?1"),
            vec![libsql::Value::Integer(v)],
        )
    };
    let failure = writing
        .transaction_on(
            seen.stream,
            vec![guard(seen.data_version), sql("INSERT INTO t VALUES (3)")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::Step { step: 0, .. }),
        "{failure:?}"
    );
    // That failure left the stream behind: bound to it, nothing is sent.
    let requests = writing.requests();
    let failure = writing
        .transaction_on(
            moved.stream,
            vec![guard(moved.data_version), sql("INSERT INTO t VALUES (4)")],
        )
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::StreamChanged), "{failure:?}");
    assert_eq!(writing.requests(), requests, "a request was sent");
    let fresh = observe(&writing).await;
    assert_ne!(fresh.stream, moved.stream);
    writing
        .transaction_on(
            fresh.stream,
            vec![guard(fresh.data_version), sql("INSERT INTO t VALUES (5)")],
        )
        .await
        .unwrap();
    let rows = reading
        .read(vec![sql("SELECT id FROM t ORDER BY id")])
        .await;
    let ids: Vec<libsql::Value> = rows.unwrap().remove(0).rows.into_iter().flatten().collect();
    assert_eq!(
        ids,
        [1, 2, 5].map(libsql::Value::Integer).to_vec(),
        "guarded rows landed"
    );
    served.stop();
}

/// An application writes a row every 50 ms through the whole run, with
/// vector indexes, while one index transaction is held past sqld's 5 s:
/// sqld rolls it back, the batch is tried again smaller and the run
/// finishes in bounded time. Every row migrated exactly, every index
/// built, every application write kept.
#[tokio::test(flavor = "multi_thread")]
async fn an_index_transaction_sqld_times_out_is_retried_and_nothing_is_lost() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let WithApp {
        dir: _dir,
        summary,
        mut served,
        app,
    } = with_app(300, 62).await;
    let (url, token) = (served.url(), served.token.clone());
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut id = 0;
            while running.load(Ordering::SeqCst) {
                id += 1;
                if app
                    .execute("INSERT INTO app_notes (id, note) VALUES (?1, 'app')", [id])
                    .await
                    .is_ok()
                {
                    written.push(id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            written
        })
    };

    served.proxy.arm(&stall(INDEX_PROGRESS_WRITE, 1, 8_000));
    let began = Instant::now();
    let out = migrate(
        &url,
        &token,
        &["--execute", "--no-index-plan", "--max-retries", "10"],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    running.store(false, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        began.elapsed() < Duration::from_secs(90),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(served.proxy.stats()["armed"], 0, "the hold never happened");
    assert!(
        written.len() > 10,
        "the application hardly wrote: {written:?}"
    );

    let file = served.stop();
    let conn = local(&file).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
    for t in [
        "embeddings_384",
        "embeddings_1024",
        "embeddings_1536",
        "embeddings_3072",
    ] {
        let index = format!("idx_{t}_vector");
        assert!(table_exists(&conn, &index).await, "{index} is missing");
    }
    let mut rows = conn
        .query("SELECT id FROM app_notes ORDER BY id", ())
        .await
        .unwrap();
    let mut present = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        present.push(row.get::<i64>(0).unwrap());
    }
    assert_eq!(present, written, "application writes were lost or invented");
}

/// A legacy file of `rows` valid 3072-dimension rows (no bad ones).
async fn large_vectors_db(path: &Path, rows: usize, seed: u64) -> SampleSummary {
    let conn = local(path).await;
    let spec = SampleSpec {
        rows,
        seed,
        bad_rows: 0,
        with_vector_column: true,
        dimension_mix: vec![(3072, 1)],
        compressed_percent: 0,
        clusters: 0,
    };
    generate_legacy_database(&conn, &spec).await.unwrap()
}

/// Answers the server refused as too large in a run with `-v`.
fn refusals(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .matches("refused an answer as too large")
        .count()
}

/// sqld capped at 1 MB per answer, where a window of 100 such rows is
/// several MB: the copy and the verification still read every window (the
/// libSQL client reads rows through `/v3/cursor`, streamed, which sqld
/// does not cap; the same rows in one pipeline answer are refused, as the
/// probe shows), and every row arrives exactly.
#[tokio::test(flavor = "multi_thread")]
async fn windows_of_3072_dimension_rows_stay_under_the_response_cap() {
    let Some(bin) = test_support::sqld_binary() else {
        have_sqld();
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = large_vectors_db(&legacy, 150, 63).await;
    let mut sqld =
        test_support::Sqld::start_with(&bin, Some(&legacy), &["--max-response-size", "1MB"]);
    let (url, token) = (sqld.url(), sqld.token.clone());
    // The cap bites: 100 rows in one pipeline answer are refused.
    let probe = remote(&url, &token).await;
    let refused = probe
        .execute(
            "SELECT * FROM embeddings ORDER BY embedding_id LIMIT 100",
            (),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("RESPONSE_TOO_LARGE"), "{refused:?}");

    // The cap is learnt: a few refused answers, not one per window (each
    // refused answer leaves a stream whose connection sqld keeps until it
    // expires; enough of them and sqld opens no more connections).
    let out = migrate(
        &url,
        &token,
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "-v",
        ],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let copy_refusals = refusals(&out);
    let out = migrate(&url, &token, &["--verify", "--batch-size", "100", "-v"])
        .output_within(RUN_LIMIT)
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let verify_refusals = refusals(&out);
    assert!(
        copy_refusals <= 8 && verify_refusals <= 8,
        "answers refused: {copy_refusals} in the copy, {verify_refusals} in the verification"
    );
    sqld.stop();
    let conn = local(&sqld.database_file()).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM embeddings_3072").await,
        Some(150)
    );
}

/// At sqld's default cap no answer is refused in a whole run: each pass
/// sizes its windows from its own answers. The verification, whose
/// answers carry the migrated copies beside the legacy rows, used to start
/// from the copy's window size: its first answer was twice the bytes aimed
/// at, was refused, and halved them for the rest of the run (twice the
/// requests).
#[tokio::test(flavor = "multi_thread")]
async fn no_answer_is_refused_at_the_default_cap() {
    let Some(bin) = test_support::sqld_binary() else {
        have_sqld();
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 3_000, 0, 66).await;
    let mut sqld = test_support::Sqld::start_with(&bin, Some(&legacy), &[]);
    let out = migrate(
        &sqld.url(),
        &sqld.token,
        &["--execute", "--no-vector-index", "-v"],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(refusals(&out), 0, "{}", text(&out));
    sqld.stop();
    let conn = local(&sqld.database_file()).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
}

/// The first request after the index plan (measured locally, the remote
/// stream idle meanwhile) held 11 s, past sqld's 10 s stream expiry: sent
/// then with the expired stream's baton, it is refused, and the run goes
/// on with a fresh stream; every row and index arrives. The pipeline's
/// own streams, idle as long, never send an expired baton: they open a
/// new stream instead, so none of their requests is refused for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_pause_past_the_stream_expiry_breaks_no_later_request() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 16, 64).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    served.proxy.arm(&stall(INDEX_LOOKUP, 1, 11_000));
    let out = migrate(
        &served.url(),
        &served.token,
        &["--execute", "--no-index-plan", "--max-retries", "10"],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(served.proxy.stats()["armed"], 0, "the pause never happened");
    // Only the held request's own stream expired (the `libsql`
    // connection's, retried); before, the index build's next batch on the
    // pipeline's writing stream, idle as long, was refused too.
    let expired: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("STREAM_EXPIRED"))
        .collect();
    assert_eq!(expired.len(), 1, "{expired:#?}");
    let file = served.stop();
    let conn = local(&file).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
    for t in [
        "embeddings_384",
        "embeddings_1024",
        "embeddings_1536",
        "embeddings_3072",
    ] {
        let index = format!("idx_{t}_vector");
        assert!(table_exists(&conn, &index).await, "{index} is missing");
    }
}

/// A verification longer than sqld's 10 s stream expiry, during which the
/// migration's own connection sits idle (the windows are read on the
/// pipeline's stream): the run still records its end and finishes. Two
/// of the verification's window reads are held 6 s each, so no stream of
/// the pipeline idles past the expiry, only the connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_verification_longer_than_the_stream_expiry_still_finishes() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 16, 69).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    // A pass reads windows of 64, 100, 100 and 36 rows: the first from the
    // start of the table, three after a key. The copy's come first.
    let held = |matching: &str, skip: u32| serde_json::json!({ "kind": "stall", "skip": skip, "matching": matching, "stall_ms": 6_000 });
    let faults = serde_json::json!([
        held("embedding_id IS NOT NULL AND", 1),
        held("embedding_id > ?1 AND", 4),
    ]);
    served.proxy.arm(&faults.to_string());
    let out = migrate(
        &served.url(),
        &served.token,
        &[
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "--format",
            "json",
        ],
    )
    .output_within(RUN_LIMIT)
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(served.proxy.stats()["armed"], 0, "a pause never happened");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verify = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "verify")
        .unwrap()["seconds"]
        .as_f64()
        .unwrap();
    assert!(verify > 11.0, "the verification took {verify} s");
    let file = served.stop();
    let conn = local(&file).await;
    test_support::assert_migrated_exactly(&conn, &bad_ids(&summary), true).await;
}

/// An application writing through sqld for the whole run: each write its
/// own transaction that first checks the run's mirroring triggers are
/// there (so none falls after the switch), a new row every 100 ms.
async fn online_application(app: Connection, running: Arc<AtomicBool>) -> u64 {
    let mut written = 0;
    for i in 0u64.. {
        if !running.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if answered("BEGIN", app.execute("BEGIN IMMEDIATE", ()))
            .await
            .is_err()
        {
            continue;
        }
        let mirrored = answered(
            "read",
            scalar(
                &app,
                &format!(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = '{}'",
                    memory_storage_turso::schema::TRIGGERS[0]
                ),
            ),
        )
        .await
            == Some(1);
        if !mirrored {
            let _ = answered("ROLLBACK", app.execute("ROLLBACK", ())).await;
            continue;
        }
        let dim = [384usize, 1024, 1536][(i % 3) as usize];
        let v: Vec<f32> = (0..dim).map(|j| (j as f32 - i as f32) * 0.0625).collect();
        let inserted = answered(
            "insert",
            app.execute(
                "INSERT INTO embeddings (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) \
                 VALUES (?1, ?2, 'episode', ?3, ?4, 'app', ?5)",
                libsql::params![
                    format!("{:016x}-online-{i}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    format!("item-online-{i}"),
                    memory_storage_turso::sample::encode_json(&v),
                    dim as i64,
                    1_760_000_000 + i as i64
                ],
            ),
        )
        .await
        .is_ok();
        if inserted && answered("COMMIT", app.execute("COMMIT", ())).await.is_ok() {
            written += 1;
        } else {
            let _ = answered("ROLLBACK", app.execute("ROLLBACK", ())).await;
        }
    }
    written
}

/// `migrate` with `args` (within `limit`) while [`online_application`]
/// writes straight to sqld for the whole run: the run's output, and the
/// rows the application wrote.
async fn migrate_beside_online_application(
    served: &Faulty,
    args: &[&str],
    limit: Duration,
) -> (std::io::Result<Output>, u64) {
    let app = OnlineApp::start(served).await;
    let out = migrate(&served.url(), &served.token, args).output_within(limit);
    (out, app.stop().await)
}

/// [`online_application`] writing straight to `served`'s sqld until
/// stopped.
struct OnlineApp {
    running: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<u64>,
}

impl OnlineApp {
    async fn start(served: &Faulty) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let writer = tokio::spawn(online_application(
            remote(&served.direct_url(), &served.token).await,
            running.clone(),
        ));
        OnlineApp { running, writer }
    }

    /// Stops it; the rows it wrote.
    async fn stop(self) -> u64 {
        self.running.store(false, Ordering::SeqCst);
        self.writer.await.unwrap()
    }
}

/// With the server stopped, its file (returned): each of the
/// application's `written` rows there, and every row migrated exactly.
async fn assert_exact_and_app_rows_kept(
    served: &mut Faulty,
    summary: &SampleSummary,
    written: u64,
) -> Connection {
    let file = served.stop();
    let conn = local(&file).await;
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM embeddings WHERE model = 'app'").await,
        Some(written as i64)
    );
    test_support::assert_migrated_exactly(&conn, &bad_ids(summary), true).await;
    conn
}

/// `--online` with vector indexes while an application writes through
/// sqld for the whole run (what exited 1 with TRANSACTION_TIMEOUT), one
/// catch-up transaction held past sqld's 5 s: one run ends with the
/// targets equal to the legacy table, the application's rows included.
/// `embeddings_384` gets the quantized scan index, built in batches beside
/// the table as the DiskANN ones are (a large table's is, online): one
/// `CREATE INDEX` holds the write lock for as long as it sorts the whole
/// table, and sqld rolls it back when the application has waited 5 s.
#[tokio::test(flavor = "multi_thread")]
async fn online_with_an_application_writing_through_sqld_for_the_whole_run() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 16, 65).await;
    let mut served = Faulty::start(&legacy, dir.path(), &[]);
    // The first catch-up transaction (mirroring what the application
    // wrote during the copy) is held past sqld's 5 s while the
    // application waits to write.
    served.proxy.arm(&stall(CHANGE_FORGET, 0, 8_000));
    let log = dir.path().join("log.jsonl");
    let args = [
        "--execute",
        "--online",
        "--no-index-plan",
        "--index-options",
        "embeddings_384=scan",
        // In batches however small the table (by default past 260,000
        // rows of 384 dimensions).
        "--scan-index-batches-above",
        "0",
        "--max-retries",
        "10",
        "--log-file",
        log.to_str().unwrap(),
    ];
    let (out, written) = migrate_beside_online_application(&served, &args, RUN_LIMIT).await;
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(written > 5, "the application hardly wrote: {written}");
    assert_eq!(served.proxy.stats()["armed"], 0, "the hold never happened");
    let scan_batches = batches_of(&log, "scan index");
    assert!(scan_batches.len() >= 2, "{scan_batches:?}");
    let conn = assert_exact_and_app_rows_kept(&mut served, &summary, written).await;
    for t in ["embeddings_1024", "embeddings_1536", "embeddings_3072"] {
        let index = format!("idx_{t}_vector");
        assert!(table_exists(&conn, &index).await, "{index} is missing");
    }
    assert!(!table_exists(&conn, "idx_embeddings_384_vector").await);
    assert!(!table_exists(&conn, "embeddings_384_indexing").await);
    assert_eq!(
        memory_storage_turso::scan_index::state(
            &conn,
            memory_storage_turso::schema::TargetTable::D384,
            memory_storage_turso::schema::ScanBits::Float8
        )
        .await
        .unwrap(),
        memory_storage_turso::scan_index::ScanIndex::Present
    );
}

/// `--online` over a 200 ms round trip while the application writes a
/// row every 100 ms, faster than one turn of mirroring its changes takes:
/// the run ends, and the targets equal the legacy table. (The mirroring
/// drained the change log until it found it empty, which it never did at
/// 20 ms: the run went on mirroring for as long as the application wrote;
/// at 80 ms its turn, which forgot each mirrored change in a request of its
/// own, outlasted sqld's 5 s transaction limit while the application
/// waited, every time; and at 200 ms every copy batch the application's
/// commits sent the slow way, through the `libsql` connection a statement
/// per request, outlasted it: the run retried for longer than two minutes.
/// Under the write lock a batch, a turn or the final step now takes two to
/// four requests.)
#[tokio::test(flavor = "multi_thread")]
async fn online_over_a_slow_network_ends_while_the_application_writes() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 300, 0, 67).await;
    let mut served = Faulty::start(&legacy, dir.path(), &["--delay-ms", "200"]);
    let args = [
        "--execute",
        "--online",
        "--no-vector-index",
        "--max-retries",
        "10",
    ];
    let (out, written) =
        migrate_beside_online_application(&served, &args, Duration::from_secs(120)).await;
    let out = out.expect("the online run never ended");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written > 5, "the application hardly wrote: {written}");
    assert_exact_and_app_rows_kept(&mut served, &summary, written).await;
}

/// `--online` over a 20 ms round trip while the application writes through
/// sqld, the client killed (SIGKILL) twice, where most of its batches are
/// transactions held across requests: each kill leaves at most a
/// transaction open on sqld, which it rolls back; the next run takes the
/// lock over, resumes, and ends with the targets equal to the legacy
/// table, the application's rows included.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_an_online_run_while_the_application_writes_then_resume() {
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let summary = sample_db(&legacy, 1500, 0, 71).await;
    let mut served = Faulty::start(&legacy, dir.path(), &["--delay-ms", "20"]);
    let watch = remote(&served.direct_url(), &served.token).await;
    let app = OnlineApp::start(&served).await;
    let args = [
        "--execute",
        "--online",
        "--no-vector-index",
        "--batch-size",
        "100",
        "--max-retries",
        "10",
    ];
    let checkpoint = "SELECT rows_written FROM embedding_migration_checkpoint WHERE id = 1";
    let mut killed = 0;
    for rows in [300, 800] {
        let mut child = migrate(&served.url(), &served.token, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            if table_exists(&watch, "embedding_migration_checkpoint").await
                && scalar(&watch, checkpoint).await.unwrap_or(0) >= rows
            {
                killed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(killed, 2, "the kills did not land mid-copy");
    let out = migrate(&served.url(), &served.token, &args).output_within(RUN_LIMIT);
    let written = app.stop().await;
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(written > 5, "the application hardly wrote: {written}");
    assert_exact_and_app_rows_kept(&mut served, &summary, written).await;
}

/// The pipeline's transaction in one request stops at its first failing
/// statement: the statements after it do not run, inside or outside the
/// transaction; nothing of it lands; no lock is left held; and the next
/// transaction goes on, on a fresh stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_in_one_request_stops_at_its_first_failure_and_lands_nothing() {
    use memory_storage_turso::connect::pipeline::{Failure, Statement};
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let common::Ground {
        dir: _dir,
        mut served,
        pipeline,
        app,
    } = common::pipeline_with_table(64).await;
    let sql = |s: &str| Statement::new(s, vec![]);
    let failure = pipeline
        .transaction(vec![
            sql("INSERT INTO t VALUES (1)"),
            sql("INSERT INTO t VALUES (1)"),
            sql("INSERT INTO t VALUES (3)"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::Step { step: 1, .. }),
        "{failure:?}"
    );
    let began = Instant::now();
    app.execute("CREATE TABLE app_notes (id INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    // A held lock: 5 s until sqld times it out (margin below that).
    assert!(began.elapsed() < Duration::from_secs(4), "a lock was held");
    assert_eq!(scalar(&app, "SELECT count(*) FROM t").await, Some(0));
    pipeline
        .transaction(vec![sql("INSERT INTO t VALUES (4)")])
        .await
        .unwrap();
    assert_eq!(scalar(&app, "SELECT count(*) FROM t").await, Some(1));
    served.stop();
}

/// A transaction held across requests (`Held`: the online mirror's, and a
/// copy batch read again under the write lock) runs nothing once sqld has
/// timed it out: the request after it lands nothing, in or out of a
/// transaction. (A failed step and a commit: `tests/remote.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_held_transaction_runs_nothing_after_sqld_timed_it_out() {
    use memory_storage_turso::connect::pipeline::{Failure, Statement};
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let common::Ground {
        dir: _dir,
        mut served,
        pipeline,
        app,
    } = common::pipeline_with_table(66).await;
    let sql = |s: &str| Statement::new(s, vec![]);

    // Held past sqld's limit while the application waits to write.
    let (mut held, _) = pipeline
        .begin_held(vec![sql("INSERT INTO t VALUES (1)")])
        .await
        .unwrap();
    let began = Instant::now();
    app.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
    assert!(
        began.elapsed() > Duration::from_secs(3),
        "the application wrote while the transaction held the lock"
    );
    let failure = held
        .run(vec![
            sql("INSERT INTO t VALUES (3)"),
            sql("INSERT INTO t VALUES (4)"),
        ])
        .await
        .unwrap_err();
    // Either the request found the stream in autocommit (sqld had rolled
    // the transaction back) or its first statement was told so.
    match failure {
        Failure::Ended => {}
        Failure::Step { step: 0, error } => {
            assert!(error.to_string().contains("TRANSACTION_TIMEOUT"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    // (The stream is the held transaction's for its life.)
    drop(held);
    assert_eq!(
        common::ids_in_t(&app).await,
        vec![2],
        "a statement of it landed"
    );
    served.stop();
}

/// An application's search through `EmbeddingStore` whose requests fail
/// (sqld's answer lost, as when it interrupts a statement) is asked again
/// and answers: a search only reads.
#[tokio::test(flavor = "multi_thread")]
async fn the_stores_search_is_asked_again_after_a_failed_request() {
    use memory_storage_turso::init::{initialize_schema, SchemaOptions};
    use memory_storage_turso::store::{Embedding, EmbeddingStore};
    if !have_sqld() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let w = with_app(20, 71).await;
    let conn = remote(&w.served.url(), &w.served.token).await;
    let options = SchemaOptions {
        vector_indexes: false,
        ..Default::default()
    };
    initialize_schema(&conn, &options).await.unwrap();
    let store = EmbeddingStore::open(conn).await.unwrap();
    let vector: Vec<f32> = (0..384).map(|i| ((i * 37 % 101) as f32).sin()).collect();
    let mine = Embedding::new("mine", "item-1", "episode", "model-384", vector.clone());
    store.store(&mine).await.unwrap();
    w.served.proxy.arm(
        &serde_json::json!([{
            "kind": "status_500",
            "times": 2,
            "matching": "vector_distance_cos"
        }])
        .to_string(),
    );
    let found = store.find_similar(&vector, None, 3, None).await.unwrap();
    assert_eq!(w.served.proxy.stats()["fired"].as_u64(), Some(2));
    assert_eq!(
        found.first().map(|f| f.embedding.embedding_id.as_str()),
        Some("mine")
    );
}
