//! `migrate_embeddings` driven as a user runs it: exit statuses, messages,
//! the JSON report.

use std::path::Path;

use assert_cmd::Command;
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("migrate_embeddings").unwrap();
    cmd.env_remove("TURSO_DATABASE_URL")
        .env_remove("TURSO_AUTH_TOKEN");
    cmd
}

async fn sample_db(path: &Path, rows: usize, bad: usize) {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut spec = SampleSpec::realistic(rows, 99);
    spec.bad_rows = bad;
    generate_legacy_database(&conn, &spec).await.unwrap();
}

/// The sum of a JSON object's numbers (a report's table → rows map).
fn total(map: &serde_json::Value) -> u64 {
    map.as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--dry-run, --execute, --verify or --rollback"));
    let out = bin().args(["--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("TURSO_DATABASE_URL"));
    let out = bin()
        .args(["--db", "x.db", "--dry-run", "--execute"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["--db", "x.db", "--execute", "--batch-size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_database_is_one_sentence_exit_1_and_nothing_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--execute"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no database file at") && err.contains("missing.db"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_a_database_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a libSQL/SQLite database"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_database_without_embeddings_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    db.connect()
        .unwrap()
        .execute("CREATE TABLE t (x)", ())
        .await
        .unwrap();
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--execute"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no `embeddings` table"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn execute_then_verify_with_json_reports_and_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 400, 0).await;
    let db = path.to_str().unwrap();
    let json = dir.path().join("report.json");

    let out = bin()
        .args([
            "--db",
            db,
            "--dry-run",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(plan["mode"], "dry_run");
    let planned = total(&plan["planned"]);
    assert_eq!(planned, 400);

    let out = bin()
        .args([
            "--db",
            db,
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "64",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verification passed"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let migrated = total(&report["migrated"]);
    assert_eq!(migrated, 400);
    assert_eq!(report["verification"]["passed"], true);
    assert_eq!(report["quarantined"], serde_json::json!([]));

    let out = bin()
        .args(["--db", db, "--execute", "--no-vector-index"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing to do"));
}

#[tokio::test]
async fn quarantined_rows_exit_3_and_are_listed_in_the_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 20).await;
    let json = dir.path().join("r.json");
    let out = bin()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--execute",
            "--no-vector-index",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let q = report["quarantined"].as_array().unwrap();
    assert_eq!(q.len(), 20);
    assert!(q
        .iter()
        .all(|e| e["embedding_id"].is_string() && e["reason"].is_string()));
    assert_eq!(report["verification"]["passed"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cannot be migrated"), "{stdout}");
}

#[tokio::test]
async fn destructive_steps_need_yes_off_a_terminal_and_do_nothing_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 120, 0).await;
    let db = path.to_str().unwrap();
    let before = std::fs::read(&path).unwrap();
    for args in [
        vec!["--db", db, "--execute", "--drop-old-table"],
        vec!["--db", db, "--rollback"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{args:?} touched the database"
        );
    }
    let out = bin()
        .args([
            "--db",
            db,
            "--execute",
            "--backup",
            "--drop-old-table",
            "--yes",
            "--no-vector-index",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped `embeddings`"));
    let out = bin().args(["--db", db, "--execute"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--rollback"), "{}", stderr(&out));
    let out = bin()
        .args(["--db", db, "--rollback", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored `embeddings`"));
    // Back to before the migration: everything is to be copied again.
    let json = dir.path().join("plan.json");
    let out = bin()
        .args([
            "--db",
            db,
            "--dry-run",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let planned = total(&plan["planned"]);
    assert_eq!(planned, 120);
}

#[tokio::test]
async fn the_log_file_has_one_json_event_per_batch_and_per_quarantined_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 600, 12).await;
    let log = dir.path().join("run.log");
    let out = bin()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--execute",
            "--no-vector-index",
            "--batch-size",
            "100",
            "-q",
        ])
        .arg("--log-file")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let batches: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "batch committed")
        .collect();
    assert!(batches.len() >= 6, "{} batch events", batches.len());
    let rows: u64 = batches
        .iter()
        .map(|e| e["fields"]["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 600, "the batch events cover every row");
    let mut quarantined: Vec<String> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "row not migrated")
        .map(|e| e["fields"]["embedding_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(quarantined.len(), 12, "each quarantined row logged once");
    quarantined.sort();
    quarantined.dedup();
    assert_eq!(quarantined.len(), 12);
}

#[tokio::test]
async fn online_runs_say_what_they_mirrored_and_leave_no_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 0).await;
    let db = path.to_str().unwrap();
    let json = dir.path().join("report.json");

    // --online goes with --execute only.
    let out = bin()
        .args(["--db", db, "--verify", "--online"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--online"), "{}", stderr(&out));

    let out = bin()
        .args([
            "--db",
            db,
            "--execute",
            "--online",
            "--no-vector-index",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("online: mirrored 0 change(s)"), "{stdout}");
    assert!(stdout.contains("triggers removed"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["online"]["triggers_removed"], true);
    assert_eq!(report["verification"]["passed"], true);

    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' OR name = 'embedding_migration_changes'",
            (),
        )
        .await
        .unwrap();
    let n = rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap();
    assert_eq!(n, 0, "no trigger or change log is left behind");
}
