//! Fixtures shared by the `memory-cli` tests: the binary with a clean
//! environment, sample legacy databases, JSON output.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;

use assert_cmd::Command;
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};
use migrate_embeddings_cli::args::{DB_ENV, TOKEN_ENV};
use migrate_embeddings_cli::render::status_summary;

/// Removes every variable that could name a database or token, and
/// `RUST_LOG`, so only what a test sets counts.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in DB_ENV.iter().chain(TOKEN_ENV.iter()) {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_LOG")
}

/// `memory-cli` with a clean environment.
pub fn cli() -> Command {
    let mut cmd = Command::cargo_bin("memory-cli").unwrap();
    clean_env(&mut cmd);
    cmd
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The status of `db` as the library reads it and the summary renders it:
/// what `memory-cli migrate-embeddings status` and `migrate_embeddings
/// status` print, human and JSON.
pub fn expected_status(db: &str) -> (String, serde_json::Value) {
    let status = block_on(memory_storage_turso::migration::migration_status(db, "")).unwrap();
    let location =
        memory_storage_turso::text::shown(&memory_storage_turso::connect::shown_location(db))
            .into_owned();
    (
        status_summary(&status, &location),
        serde_json::to_value(&status).unwrap(),
    )
}

/// The long flags a help text offers, sorted.
pub fn offered_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .collect();
    flags.sort();
    flags
}

/// A legacy database at `path` with `rows` rows, `bad` of them bad.
pub fn sample_db(path: &Path, rows: usize, bad: usize) {
    block_on(async {
        let db = libsql::Builder::new_local(path).build().await.unwrap();
        let conn = db.connect().unwrap();
        let mut spec = SampleSpec::realistic(rows, 7);
        spec.bad_rows = bad;
        generate_legacy_database(&conn, &spec).await.unwrap();
    });
}

/// A fresh temporary directory holding `memory.db`, a sample of `rows` rows
/// with `bad` bad ones; returns the directory (keep it alive) and the path.
pub fn sample(rows: usize, bad: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    sample_db(&path, rows, bad);
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// The whole of stdout as one JSON document.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit status, showing the output when it differs.
pub fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
