//! `memory-cli migrate-embeddings` runs the migration as `migrate_embeddings`
//! does: dry run as JSON, execute with its exit statuses, and the same
//! report from the same library call.

mod common;

use common::{assert_exit, cli, json, sample, text};

#[test]
fn dry_run_json_is_the_whole_stdout_with_format_before_or_after_the_command() {
    let (_dir, db) = sample(300, 0);
    let before = std::fs::read(&db).unwrap();
    for args in [
        &[
            "--format",
            "json",
            "migrate-embeddings",
            "--dry-run",
            "--db",
            &db,
        ][..],
        &[
            "migrate-embeddings",
            "--db",
            &db,
            "--dry-run",
            "--format",
            "json",
        ][..],
    ] {
        let out = cli().args(args).output().unwrap();
        assert_exit(&out, 0);
        let report = json(&out);
        assert_eq!(report["mode"], "dry_run", "{args:?}");
        let planned: u64 = report["planned"]
            .as_object()
            .expect("a `planned` object")
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(planned, 300, "{report}");
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a dry run wrote to the database"
    );
}

#[test]
fn execute_passes_verification_and_exits_0() {
    let (_dir, db) = sample(300, 0);
    let out = cli()
        .args([
            "migrate-embeddings",
            "--execute",
            "--no-vector-index",
            "--db",
            &db,
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("verification passed"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn execute_with_bad_rows_exits_3() {
    let (_dir, db) = sample(300, 16);
    let out = cli()
        .args([
            "--format",
            "json",
            "migrate-embeddings",
            "--execute",
            "--no-vector-index",
            "--db",
            &db,
        ])
        .output()
        .unwrap();
    assert_exit(&out, 3);
    assert_eq!(json(&out)["quarantined_count"], 16);
}

/// The report without what depends on the clock: phase timings and the
/// dry run's estimates.
fn timeless(mut report: serde_json::Value) -> serde_json::Value {
    let map = report.as_object_mut().expect("a JSON object");
    map.remove("phases");
    map.retain(|key, _| !key.starts_with("estimated_"));
    // The index plan's measured timings: keep each table's pick only.
    if let Some(tables) = map
        .get_mut("index_plan")
        .and_then(|p| p["tables"].as_array_mut())
    {
        for t in tables {
            let pick = t["pick"]["method"].clone();
            *t = serde_json::json!({ "table": t["table"], "rows": t["rows"], "pick": pick });
        }
    }
    report
}

#[test]
fn dry_run_report_equals_migrate_embeddings_one() {
    let other = assert_cmd::cargo::cargo_bin("migrate_embeddings");
    if !other.exists() {
        eprintln!(
            "SKIPPED: {} is not built (run `cargo build --bin migrate_embeddings` to compare the two binaries)",
            other.display()
        );
        return;
    }
    let (_dir, db) = sample(300, 16);
    let ours = cli()
        .args([
            "--format",
            "json",
            "migrate-embeddings",
            "--dry-run",
            "--db",
            &db,
        ])
        .output()
        .unwrap();
    assert_exit(&ours, 3);
    let mut cmd = assert_cmd::Command::new(&other);
    common::clean_env(&mut cmd);
    let theirs = cmd
        .args(["--format", "json", "--dry-run", "--db", &db])
        .output()
        .unwrap();
    assert_exit(&theirs, 3);
    assert_eq!(timeless(json(&ours)), timeless(json(&theirs)));
}
