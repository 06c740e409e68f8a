//! Records the libsql crate version from the workspace's Cargo.lock, so the
//! benchmark report names the exact libSQL it measured.

fn main() {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo:rerun-if-changed={lock}");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let version = locked_version(&text, "libsql").unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MIGRATE_BENCH_LIBSQL_VERSION={version}");
}

/// The `version` line that follows `name = "<name>"` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?.trim();
            return next
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}
