//! The progress display as a user sees it: plain log lines when stderr is
//! not a terminal, bars under a pseudo-terminal (tmux, else `script`), and
//! Ctrl-C stopping after a committed batch with a resumable checkpoint.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libsql::Connection;
use memory_storage_turso::sample::SampleSpec;
use test_support::{open, sample_db, scalar, spawnable};

const BIN: &str = env!("CARGO_BIN_EXE_migrate_embeddings");

/// Writes a realistic legacy database of `rows` rows; returns an open
/// connection to it and the number of bad rows planted.
async fn legacy_db(path: &Path, rows: usize, seed: u64) -> (Connection, usize) {
    let bad = SampleSpec::realistic(rows, seed).bad_rows;
    let summary = sample_db(path, rows, bad, seed).await;
    let conn = open(path).await;
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    (conn, summary.bad.len())
}

/// The binary with an environment that neither hides the bars nor changes
/// the log filter.
fn bin() -> Command {
    let mut cmd = spawnable("migrate_embeddings");
    cmd.env_remove("NO_PROGRESS");
    cmd
}

/// The keys of every target table.
const UNION: &str = "SELECT embedding_id FROM embeddings_384 UNION ALL SELECT embedding_id FROM embeddings_1024 \
     UNION ALL SELECT embedding_id FROM embeddings_1536 UNION ALL SELECT embedding_id FROM embeddings_3072 \
     UNION ALL SELECT embedding_id FROM embeddings_other";

#[tokio::test(flavor = "multi_thread")]
async fn off_a_terminal_progress_is_plain_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let _ = legacy_db(&path, 3000, 5).await;
    let out = bin()
        .args([
            "--db",
            path.to_str().unwrap(),
            "--execute",
            "--no-vector-index",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("copy: 3000 rows to go"), "{stderr}");
    assert!(stderr.contains("verify: 3000 rows to go"), "{stderr}");
    assert!(stderr.contains("verify: finished in"), "{stderr}");
    assert!(
        !out.stderr.contains(&0x1b),
        "escape codes off a terminal:\n{stderr}"
    );
    assert!(!out.stdout.contains(&0x1b));
}

/// Where `program` is on the PATH, if anywhere.
fn which(program: &str) -> bool {
    Command::new("which")
        .arg(program)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A private tmux server, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.0, "-f", "/dev/null"]);
        cmd
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// Runs `shell` in a 120×60 tmux pane and returns the whole pane (history
/// included) once it printed `EXIT=`.
fn run_in_tmux(shell: &str) -> String {
    let tmux = Tmux(format!("migrate-progress-{}", std::process::id()));
    let started = tmux
        .cmd()
        .args(["new-session", "-d", "-x", "120", "-y", "60", "-s", "run"])
        .arg(format!("{shell}; echo EXIT=$?; sleep 300"))
        .env("TERM", "xterm-256color")
        .status()
        .unwrap();
    assert!(started.success(), "tmux could not start a session");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = tmux
            .cmd()
            .args(["capture-pane", "-p", "-S", "-", "-t", "run"])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&out.stdout).to_string();
        if screen.contains("EXIT=") {
            return screen;
        }
        assert!(Instant::now() < deadline, "the run did not end:\n{screen}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `shell` under `script` (util-linux), which gives it a pty; returns
/// the raw terminal stream.
fn run_in_script(shell: &str) -> String {
    let out = Command::new("script")
        .args([
            "-qfec",
            &format!("stty cols 120 rows 60; {shell}; echo EXIT=$?"),
            "/dev/null",
        ])
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The text of a terminal stream: colours removed, every other escape
/// sequence or carriage return read as a line break.
fn strip_escapes(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                let mut last = None;
                if chars.next() == Some('[') {
                    last = chars.by_ref().find(|c| ('@'..='~').contains(c));
                }
                // Colours (`m`) are inline; anything else moves the cursor.
                if last != Some('m') {
                    out.push('\n');
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_bars_reach_the_end_and_stay() {
    let use_tmux =
        which("tmux") && std::env::var_os("PROGRESS_TEST_PTY").is_none_or(|v| v != "script");
    if !use_tmux && !which("script") {
        eprintln!("SKIPPED: neither tmux nor script (util-linux) is installed: no pseudo-terminal to draw bars on");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let _ = legacy_db(&path, 20_000, 8).await;
    let shell = format!(
        "env -u NO_PROGRESS -u RUST_LOG {} --db {} --execute --no-vector-index --batch-size 500",
        quote(BIN),
        quote(path.to_str().unwrap())
    );
    let (screen, raw) = if use_tmux {
        (run_in_tmux(&shell), String::new())
    } else {
        let raw = run_in_script(&shell);
        (strip_escapes(&raw), raw)
    };
    // For the closing note of whoever runs this with --nocapture.
    println!("--- final screen ---\n{screen}--- end ---");

    assert!(
        screen.contains("EXIT=3"),
        "planted bad rows: exit 3\n{screen}"
    );
    assert!(screen.contains("verification passed"), "{screen}");
    let finished = |phase: &str| {
        screen
            .lines()
            .any(|l| l.contains(phase) && l.contains("20000/20000 rows") && l.contains("done in"))
    };
    assert!(
        finished("copy ["),
        "the copy bar did not reach 100%:\n{screen}"
    );
    assert!(
        finished("verify ["),
        "the verify bar did not reach 100%:\n{screen}"
    );
    if use_tmux {
        // The screen as drawn: the status line is gone at the end.
        assert!(
            !screen
                .lines()
                .any(|l| l.contains("memory ") && l.contains("written ")),
            "the status line was left behind:\n{screen}"
        );
    } else {
        assert!(raw.contains('\x1b'), "no bars were drawn:\n{raw}");
    }
}

/// Reads a pipe to its end on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// `cmd` started with no stdin; its stdout and stderr each read to its
/// end on a thread.
fn spawn_collecting(
    cmd: &mut Command,
) -> (
    Child,
    std::thread::JoinHandle<String>,
    std::thread::JoinHandle<String>,
) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

/// Waits up to `limit` for the child to end.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_after_a_committed_batch_and_the_next_run_resumes() {
    const ROWS: usize = 12_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let (conn, bad) = legacy_db(&path, ROWS, 31).await;
    let db = path.to_str().unwrap();

    let (mut child, stdout, stderr) = spawn_collecting(bin().args([
        "--db",
        db,
        "--execute",
        "--no-vector-index",
        "--batch-size",
        "100",
    ]));

    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(
        &conn,
        "SELECT rows_written FROM embedding_migration_checkpoint WHERE id = 1",
    )
    .await
    .unwrap_or(0)
        < 1000
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before Ctrl-C"
        );
        assert!(Instant::now() < deadline, "the migration made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
    }
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let status = status.unwrap_or_else(|| panic!("still running 10 s after Ctrl-C\n{stderr}"));
    assert_eq!(status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("--execute again") || stderr.contains("--execute again"),
        "no word on how to resume:\n{stdout}\n{stderr}"
    );

    // The checkpoint stands at a batch boundary: what it counts is exactly
    // what the target tables hold, and with the rows quarantined on the way
    // it makes whole batches.
    assert_eq!(
        scalar(
            &conn,
            "SELECT copy_completed_at IS NULL FROM embedding_migration_checkpoint"
        )
        .await,
        Some(1),
        "the copy finished before Ctrl-C: make the database bigger"
    );
    let written = scalar(
        &conn,
        "SELECT rows_written FROM embedding_migration_checkpoint",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM ({UNION})")).await,
        Some(written)
    );
    let quarantined = scalar(&conn, "SELECT count(*) FROM embedding_migration_quarantine")
        .await
        .unwrap_or(0);
    assert_eq!(
        (written + quarantined) % 100,
        0,
        "{written} written, {quarantined} quarantined"
    );

    let out = bin()
        .args(["--db", db, "--execute", "--no-vector-index"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "bad rows planted\n{stdout}");
    assert!(stdout.contains("resumed after checkpoint"), "{stdout}");
    assert!(stdout.contains("verification passed"), "{stdout}");
    let good = (ROWS - bad) as i64;
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM ({UNION})")).await,
        Some(good)
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(DISTINCT embedding_id) FROM ({UNION})")
        )
        .await,
        Some(good)
    );
}

/// The scratch folders of process `pid` in `tmp`.
fn scratch_of(tmp: &Path, pid: u32) -> Vec<String> {
    let prefix = format!("migrate-embeddings-scratch-{pid}-");
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_or_sigterm_during_the_index_plan_stops_it_and_leaves_no_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    legacy_db(&path, 3000, 41).await;
    // Ctrl-C ends the build in flight and stops; SIGTERM stops at once.
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut child, stdout, stderr) = spawn_collecting(
            bin()
                .args(["--db", path.to_str().unwrap(), "--dry-run"])
                // No search is that fast: every setting is built.
                .args(["--max-query-ms", "0.001"])
                .env("TMPDIR", tmp.path()),
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while scratch_of(tmp.path(), child.id()).is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the dry run ended before its plan built anything"
            );
            assert!(Instant::now() < deadline, "no scratch database in 120 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = wait_for(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
        }
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        let status =
            status.unwrap_or_else(|| panic!("still running 60 s after {signal}\n{stderr}"));
        assert_eq!(status.code(), Some(code), "{stdout}\n{stderr}");
        assert_eq!(
            scratch_of(tmp.path(), child.id()),
            Vec::<String>::new(),
            "left behind after signal {signal}"
        );
        if signal == libc::SIGINT {
            assert!(
                stdout.contains("Stopped before the dry run finished"),
                "{stdout}\n{stderr}"
            );
        }
    }
}
