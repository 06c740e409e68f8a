//! `migrate_embeddings` driven as a user runs it: exit statuses, messages,
//! the JSON report.

use std::path::Path;

use test_support::{expected_status, migrate_embeddings, offered_flags, sample_db};

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

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap()
}

/// A database whose only table is not `embeddings`: every run fails.
async fn database_without_embeddings(path: &Path) {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    db.connect()
        .unwrap()
        .execute("CREATE TABLE t (x)", ())
        .await
        .unwrap();
}

/// Adds a legacy row whose `embedding_data` is not JSON (so it is
/// quarantined) under `embedding_id`.
async fn add_bad_row(path: &Path, embedding_id: &str) {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    db.connect()
        .unwrap()
        .execute(
            "INSERT INTO embeddings (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) \
             VALUES (?1, 'item', 'episode', 'not json', 384, 'm', 1700000000)",
            [embedding_id],
        )
        .await
        .unwrap();
}

async fn legacy_rows(path: &Path) -> i64 {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query("SELECT count(*) FROM embeddings", ())
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// The ids of the report's quarantined rows.
fn quarantined_ids(report: &serde_json::Value) -> Vec<String> {
    report["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["embedding_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn usage_errors_exit_2() {
    let out = migrate_embeddings().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--dry-run, --execute, --verify or --rollback"));
    let out = migrate_embeddings().args(["--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("TURSO_DATABASE_URL"));
    let out = migrate_embeddings()
        .args(["--db", "x.db", "--dry-run", "--execute"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = migrate_embeddings()
        .args(["--db", "x.db", "--execute", "--batch-size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_database_is_one_sentence_exit_1_and_nothing_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let out = migrate_embeddings()
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
    let out = migrate_embeddings()
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
    let out = migrate_embeddings()
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
    sample_db(&path, 400, 0, 99).await;
    let db = path.to_str().unwrap();
    let json = dir.path().join("report.json");

    let out = migrate_embeddings()
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

    let out = migrate_embeddings()
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

    let out = migrate_embeddings()
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
    sample_db(&path, 300, 20, 99).await;
    let json = dir.path().join("r.json");
    let out = migrate_embeddings()
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
    sample_db(&path, 120, 0, 99).await;
    let db = path.to_str().unwrap();
    let before = std::fs::read(&path).unwrap();
    for args in [
        vec!["--db", db, "--execute", "--drop-old-table"],
        vec!["--db", db, "--rollback"],
    ] {
        let out = migrate_embeddings().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{args:?} touched the database"
        );
    }
    let out = migrate_embeddings()
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
    let out = migrate_embeddings()
        .args(["--db", db, "--execute"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--rollback"), "{}", stderr(&out));
    let out = migrate_embeddings()
        .args(["--db", db, "--rollback", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored `embeddings`"));
    // Back to before the migration: everything is to be copied again.
    let json = dir.path().join("plan.json");
    let out = migrate_embeddings()
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
    sample_db(&path, 600, 12, 99).await;
    let log = dir.path().join("run.log");
    let out = migrate_embeddings()
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
    sample_db(&path, 300, 0, 99).await;
    let db = path.to_str().unwrap();
    let json = dir.path().join("report.json");

    // --online goes with --execute only.
    let out = migrate_embeddings()
        .args(["--db", db, "--verify", "--online"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--online"), "{}", stderr(&out));

    let out = migrate_embeddings()
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

#[tokio::test]
async fn a_refused_drop_writes_the_report_and_shows_what_made_it_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 200, 5, 99).await;
    let db = path.to_str().unwrap();
    let json = dir.path().join("refused.json");
    let out = migrate_embeddings()
        .args([
            "--db",
            db,
            "--execute",
            "--drop-old-table",
            "--yes",
            "--no-vector-index",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_json(&json);
    assert_eq!(report["failure"]["kind"], "refused", "{report:#}");
    let reason = report["failure"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not dropped") && reason.contains("quarantined"),
        "{reason}"
    );
    assert_eq!(report["verification"]["passed"], true);
    let ids = quarantined_ids(&report);
    assert_eq!(ids.len(), 5);
    // The summary lists what made the drop be refused; stderr says why.
    let summary = stdout(&out);
    assert!(summary.contains("5 row(s) cannot be migrated"), "{summary}");
    for id in &ids {
        assert!(summary.contains(id.as_str()), "{id} not listed:\n{summary}");
    }
    assert!(summary.contains("Refused"), "{summary}");
    let err = stderr(&out);
    assert!(
        err.contains("error:")
            && err.contains("not dropped")
            && err.contains("--allow-quarantined"),
        "{err}"
    );
    assert_eq!(legacy_rows(&path).await, 200, "nothing was dropped");

    // The same refusal with --format json: the report on stdout.
    let out = migrate_embeddings()
        .args([
            "--db",
            db,
            "--execute",
            "--drop-old-table",
            "--yes",
            "--no-vector-index",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}):\n{}", stdout(&out)));
    assert_eq!(report["failure"]["kind"], "refused");
    assert_eq!(report["quarantined_count"], 5);
    assert!(stderr(&out).contains("not dropped"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_failed_run_writes_the_report_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    database_without_embeddings(&path).await;
    let json = dir.path().join("failed.json");
    let out = migrate_embeddings()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--execute",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_json(&json);
    assert_eq!(report["failure"]["kind"], "failed", "{report:#}");
    assert!(
        report["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("no `embeddings` table"),
        "{report:#}"
    );
    assert_eq!(report["mode"], "execute");
    // No summary of a run that did not get going; the error says why.
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("has no `embeddings` table"));

    let out = migrate_embeddings()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--dry-run",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}):\n{}", stdout(&out)));
    assert_eq!(report["failure"]["kind"], "failed");
    assert_eq!(report["mode"], "dry_run");
}

#[tokio::test]
async fn ids_are_escaped_on_the_terminal_and_exact_in_the_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 100, 0, 99).await;
    let id = "\u{1b}[31mred\nforged: line\u{202e}txt";
    add_bad_row(&path, id).await;
    let json = dir.path().join("r.json");
    for mode in ["--dry-run", "--execute"] {
        let out = migrate_embeddings()
            .args([
                "--db",
                path.to_str().unwrap(),
                mode,
                "--no-vector-index",
                "-vv",
                "--report-json",
                json.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{mode}: {}", stderr(&out));
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            assert!(!bytes.contains(&0x1b), "{mode}: raw ESC on {name}:\n{text}");
            assert!(
                !text.contains('\u{202e}'),
                "{mode}: raw bidi override on {name}"
            );
            assert!(
                !text.lines().any(|l| l.starts_with("forged")),
                "{mode}: a forged line on {name}:\n{text}"
            );
        }
        let summary = stdout(&out);
        assert!(
            summary.contains(
                r"\u{1b}[31mred\nforged: line\u{202e}txt: embedding_data is not valid JSON"
            ),
            "{mode}: the id is not shown escaped:\n{summary}"
        );
        assert_eq!(quarantined_ids(&read_json(&json)), [id], "{mode}");
    }
}

#[tokio::test]
async fn quarantined_rows_are_listed_once_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 6, 99).await;
    let json = dir.path().join("r.json");
    let out = migrate_embeddings()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--execute",
            "--no-vector-index",
            "-v",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let ids = quarantined_ids(&read_json(&json));
    assert_eq!(ids.len(), 6);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    for id in &ids {
        assert_eq!(all.matches(id.as_str()).count(), 1, "{id}:\n{all}");
    }
    // The live lines count them instead.
    assert!(
        stderr(&out).contains("copy: finished in")
            && stderr(&out).contains("6 row(s) quarantined (the summary lists them)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_demo_lists_its_bad_rows_once() {
    let out = migrate_embeddings()
        .args(["--demo", "--demo-rows", "300"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let mut listed: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("cannot be migrated") {
            // The block under the header: counts per reason, then the rows.
            listed.extend(
                lines[i + 1..]
                    .iter()
                    .take_while(|l| l.starts_with("    "))
                    .filter(|l| l.contains(": ")),
            );
        }
    }
    assert!(listed.len() >= 3, "no bad rows listed:\n{text}");
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a bad row listed twice:\n{text}"
    );
    assert_eq!(text.matches("cannot be migrated").count(), 3, "{text}");
}

#[tokio::test]
async fn quiet_shows_errors_and_the_final_summary_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 4, 99).await;
    let db = path.to_str().unwrap();
    // Without -q the same run says a lot on stderr: the check below means
    // something.
    let out = migrate_embeddings()
        .args(["--db", db, "--dry-run"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan: 300 rows to go"),
        "{}",
        stderr(&out)
    );

    for args in [
        vec!["--db", db, "--dry-run", "-q"],
        vec!["--db", db, "--execute", "--no-vector-index", "-q"],
        vec!["--db", db, "--verify", "--quiet", "-v"],
    ] {
        // RUST_LOG does not outvote -q.
        let out = migrate_embeddings()
            .args(&args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: stderr is not empty");
        let summary = stdout(&out);
        assert!(summary.contains("4 row(s) cannot be migrated"), "{summary}");
        assert!(
            !summary.contains("rows to go") && !summary.contains("finished in"),
            "{summary}"
        );
    }

    // Errors still show: one line.
    let other = dir.path().join("app.db");
    database_without_embeddings(&other).await;
    let out = migrate_embeddings()
        .args(["--db", other.to_str().unwrap(), "--execute", "-q"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error:"), "{err}");
}

#[test]
fn the_demo_exits_0_when_only_its_planted_rows_are_quarantined_and_says_what_3_means() {
    let out = migrate_embeddings()
        .args(["--demo", "--demo-rows", "2000", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("As planned: the 16 row(s) planted as bad, and no other, were quarantined"),
        "{text}"
    );
    assert!(
        text.contains("On your own database, quarantined rows make the run exit 3: done, but some rows need a person"),
        "{text}"
    );
    // The commands it shows are this binary's.
    assert!(
        text.contains("$ migrate_embeddings --db ") && text.contains(" --verify\n"),
        "{text}"
    );
}

#[tokio::test]
async fn status_and_dash_dash_status_print_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 300, 5, 99).await;
    let db = path.to_str().unwrap();
    let spellings: [&[&str]; 3] = [
        &["--db", db, "--status"],
        &["status", "--db", db],
        &["--db", db, "status"],
    ];

    let (human, _) = expected_status(db).await;
    assert!(human.contains("not started"), "{human}");
    for args in spellings {
        let out = migrate_embeddings().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), human, "{args:?}");
    }

    let out = migrate_embeddings()
        .args(["--db", db, "--execute", "--no-vector-index", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // JSON after a run: the human summary says "… s ago", which moves.
    let (_, json) = expected_status(db).await;
    assert_eq!(json["quarantined"], 5, "{json:#}");
    for args in spellings {
        let out = migrate_embeddings()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", stdout(&out)));
        assert_eq!(printed, json, "{args:?}");
    }
}

#[test]
fn status_help_offers_only_the_flags_status_uses() {
    let out = migrate_embeddings()
        .args(["status", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = stdout(&out);
    assert_eq!(
        offered_flags(&help),
        [
            "--auth-token",
            "--auth-token-file",
            "--db",
            "--format",
            "--help",
            "--log-file",
            "--quiet",
            "--verbose"
        ],
        "{help}"
    );
    assert!(
        help.contains("  migrate_embeddings status --db memory.db"),
        "{help}"
    );
}

#[tokio::test]
async fn a_usage_errors_suggestions_work_when_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, 120, 0, 99).await;
    let db = path.to_str().unwrap();
    let out = migrate_embeddings().args(["--db", db]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let suggested: Vec<&str> = err
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--"))
        .collect();
    assert_eq!(
        suggested,
        [
            "--dry-run",
            "--execute",
            "--verify",
            "--rollback",
            "--status",
            "--demo"
        ],
        "{err}"
    );
    for flag in suggested {
        let args = match flag {
            "--demo" => vec![flag, "--demo-rows", "300"],
            // Off a terminal a rollback needs its confirmation.
            "--rollback" => vec!["--db", db, flag, "--yes"],
            _ => vec!["--db", db, flag],
        };
        let out = migrate_embeddings().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
}
