//! Fixtures shared by the `memory-cli` tests: the binary with a clean
//! environment, sample legacy databases, JSON output.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;

use assert_cmd::Command;
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};
use migrate_embeddings_cli::args::{DB_ENV, TOKEN_ENV};

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

/// A legacy database at `path` with `rows` rows, `bad` of them bad.
pub fn sample_db(path: &Path, rows: usize, bad: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
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
