//! The binaries as processes: a clean environment, their output, their
//! exit, and SIGKILL.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use migrate_embeddings_cli::args::{DB_ENV, TOKEN_ENV};

/// Removes every variable that could name a database or token, and
/// `RUST_LOG`, so only what a test sets counts.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in DB_ENV.iter().chain(TOKEN_ENV.iter()) {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_LOG")
}

/// The workspace binary `name` with a clean environment.
pub fn bin(name: &str) -> Command {
    let mut cmd = Command::cargo_bin(name).unwrap();
    clean_env(&mut cmd);
    cmd
}

/// The workspace binary `name` as a `std::process::Command` (to spawn,
/// signal and kill it), with the same clean environment as [`bin`].
pub fn spawnable(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin(name));
    for var in DB_ENV.iter().chain(TOKEN_ENV.iter()) {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A blocking runner for the async helpers, in a test that is not async.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The whole of stdout as one JSON document.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// Asserts the exit status, showing the output when it differs.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// SIGKILLs `child` (no chance to clean up) and reaps it. Returns whether
/// it was still running.
pub fn kill_now(child: &mut Child) -> bool {
    let alive = child.try_wait().unwrap().is_none();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    alive
}

/// Waits at most `limit` for `child` to exit.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `migrate_embeddings` with a clean environment.
pub fn migrate_embeddings() -> Command {
    bin("migrate_embeddings")
}

/// `memory-cli` with a clean environment.
pub fn memory_cli() -> Command {
    bin("memory-cli")
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

/// The status of `db` as the library reads it and the summary renders it:
/// what `migrate_embeddings status` and `memory-cli migrate-embeddings
/// status` print, human and JSON.
pub async fn expected_status(db: &str) -> (String, serde_json::Value) {
    let status = memory_storage_turso::migration::migration_status(db, "")
        .await
        .unwrap();
    let location =
        memory_storage_turso::text::shown(&memory_storage_turso::connect::shown_location(db))
            .into_owned();
    (
        migrate_embeddings_cli::render::status_summary(&status, &location),
        serde_json::to_value(&status).unwrap(),
    )
}

/// The longest a test lets one run of a binary take: far past any run of
/// the suite, so only a hang reaches it.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output` with a deadline: a run that hangs is killed and its
/// test fails on what it printed (a line saying so appended to stderr),
/// instead of the suite hanging with nothing to show.
pub trait OutputWithin {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output>;
}

impl OutputWithin for std::process::Command {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        // Its own process group, so that a kill reaches whatever it started
        // (which would otherwise hold the pipes open).
        let mut child = self
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let finished = wait_for(&mut child, limit);
        let timed_out = finished.is_none();
        if timed_out {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        }
        let status = match finished {
            Some(status) => status,
            None => child.wait()?,
        };
        let mut stderr = stderr.join().unwrap_or_default();
        if timed_out {
            stderr.extend_from_slice(
                format!("\n[test] killed after {limit:?}: the run did not finish\n").as_bytes(),
            );
        }
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_limit_is_killed_and_says_so() {
        let began = Instant::now();
        let out = std::process::Command::new("sh")
            .args(["-c", "echo started; sleep 30"])
            .output_within(Duration::from_millis(300))
            .unwrap();
        assert!(began.elapsed() < Duration::from_secs(10));
        assert!(!out.status.success());
        assert_eq!(text(&out.stdout), "started\n");
        assert!(text(&out.stderr).contains("killed after 300ms"));
    }

    #[test]
    fn a_run_within_its_limit_is_as_output_gives_it() {
        let out = std::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output_within(Duration::from_secs(30))
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(text(&out.stdout), "out\n");
        assert_eq!(text(&out.stderr), "err\n");
    }
}
