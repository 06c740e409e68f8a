//! The `memory-cli` suites' own fixtures (blocking, for its non-async
//! tests); everything generic comes from `test_support`.

#![allow(dead_code, unused_imports)] // each test file uses its own part

use std::path::Path;

pub use test_support::{
    assert_exit, block_on, clean_env, json, memory_cli as cli, offered_flags, text,
};

/// The status of `db` as both binaries print it, human and JSON.
pub fn expected_status(db: &str) -> (String, serde_json::Value) {
    block_on(test_support::expected_status(db))
}

/// A legacy database at `path` with `rows` rows, `bad` of them bad.
pub fn sample_db(path: &Path, rows: usize, bad: usize) {
    block_on(test_support::sample_db(path, rows, bad, 7));
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
