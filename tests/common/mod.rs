//! What the remote suites share: `hrana-test-server` as a process (on a
//! file, or as a fault-injecting proxy in front of sqld), and the server a
//! fault test runs against.
#![allow(dead_code)] // each suite uses its own part

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "remote-test-token-51c0ffee";

/// Arguments for a run that makes one index, the quantized scan index of
/// `embeddings_384`, and plans nothing.
pub const SCAN_INDEX_ON_384_ONLY: [&str; 9] = [
    "--no-index-plan",
    "--index-options",
    "embeddings_384=scan",
    "--index-options",
    "embeddings_1024=none",
    "--index-options",
    "embeddings_1536=none",
    "--index-options",
    "embeddings_3072=none",
];

/// The test server binary, next to the migrate_embeddings binary: built
/// (or brought up to date) once per test run with the cargo and profile
/// running the tests, so it is never stale and these tests never skip.
/// (Run outside cargo, an existing binary is used as it is.)
pub fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_migrate_embeddings"))
            .parent()
            .expect("the binary has a directory")
            .to_path_buf();
        let bin = dir.join("hrana-test-server");
        let cargo = std::env::var("CARGO").ok();
        if cargo.is_none() && bin.is_file() {
            return bin;
        }
        let mut build = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
        build.args(["build", "--quiet", "-p", "remote-test-server"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p remote-test-server");
        assert!(status.success(), "cargo build -p remote-test-server failed");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// A running `hrana-test-server`: on one database file, or as a proxy in
/// front of an upstream server.
pub struct Server {
    child: Option<Child>,
    /// The file served, or `--upstream URL`.
    serves: Vec<OsString>,
    /// `127.0.0.1:PORT`.
    addr: String,
    extra: Vec<String>,
}

impl Server {
    /// Serves `db`.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Self::start_serving(vec![db.into()], extra)
    }

    /// Forwards every Hrana request to `upstream` (faults and delay
    /// applied on the way); `TOKEN` guards only the control endpoints.
    pub fn proxy(upstream: &str, extra: &[&str]) -> Server {
        Self::start_serving(vec!["--upstream".into(), upstream.into()], extra)
    }

    fn start_serving(serves: Vec<OsString>, extra: &[&str]) -> Server {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr) = Self::spawn(&serves, "127.0.0.1:0", &extra);
        Server {
            child: Some(child),
            serves,
            addr,
            extra,
        }
    }

    fn spawn(serves: &[OsString], listen: &str, extra: &[String]) -> (Child, String) {
        let mut child = Command::new(server_binary())
            .args(serves)
            .args(["--listen", listen, "--token", TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting hrana-test-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("reading the server's address");
        let addr = line
            .trim()
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the server printed {line:?}, not its address"))
            .to_string();
        (child, addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same file and port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(server_binary())
                .args(&self.serves)
                .args(["--listen", &self.addr, "--token", TOKEN])
                .args(&self.extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("restarting hrana-test-server");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
            if line.starts_with("http://") {
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "could not restart on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a control request; returns the status code and the body.
    pub fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream =
            std::net::TcpStream::connect(&self.addr).expect("connecting to the server");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("sending a control request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("reading the control response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Arms faults (a JSON object or array, see the server's `faults.rs`).
    pub fn arm(&self, faults: &str) {
        let (status, body) = self.control("POST", "/control/faults", faults);
        assert_eq!(status, 200, "arming {faults}: {body}");
    }

    /// The server's counters: requests, fired, armed.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = self.control("GET", "/control/stats", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats are JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server a fault test runs against, behind `hrana-test-server`'s
/// faults: libSQL's `sqld` with the test server as a proxy in front of it
/// when `SQLD_BIN` names it, else the test server serving the file itself.
pub struct Faulty {
    /// Where the client connects and faults are armed.
    pub proxy: Server,
    sqld: Option<test_support::Sqld>,
    file: PathBuf,
    /// The token the client must send.
    pub token: String,
}

impl Faulty {
    /// Serves a copy of `legacy` (kept in `dir`). `extra` goes to the test
    /// server (`--delay-ms` applies in both modes; the file server's own
    /// options are ignored by sqld).
    pub fn start(legacy: &Path, dir: &Path, extra: &[&str]) -> Faulty {
        Self::start_with(legacy, dir, extra, &[])
    }

    /// As [`Faulty::start`], with `sqld_args` for sqld when it is used.
    pub fn start_with(legacy: &Path, dir: &Path, extra: &[&str], sqld_args: &[&str]) -> Faulty {
        match test_support::sqld_binary() {
            Some(bin) => {
                let sqld = test_support::Sqld::start_with(&bin, Some(legacy), sqld_args);
                // What the proxy applies too: the delay, the request log.
                let mut proxy_args = Vec::new();
                let mut args = extra.iter();
                while let Some(&arg) = args.next() {
                    if arg == "--log-requests" {
                        proxy_args.push(arg);
                    } else if arg == "--delay-ms" {
                        proxy_args.extend([arg, args.next().copied().unwrap_or("0")]);
                    }
                }
                Faulty {
                    proxy: Server::proxy(&sqld.url(), &proxy_args),
                    file: sqld.database_file(),
                    token: sqld.token.clone(),
                    sqld: Some(sqld),
                }
            }
            None => {
                say_once_without_sqld();
                let file = dir.join("served.db");
                std::fs::copy(legacy, &file).unwrap();
                Faulty {
                    proxy: Server::start(&file, extra),
                    file,
                    sqld: None,
                    token: TOKEN.to_string(),
                }
            }
        }
    }

    /// Whether sqld is behind the proxy.
    pub fn is_sqld(&self) -> bool {
        self.sqld.is_some()
    }

    /// The client URL (the proxy's).
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// The URL of the server itself, past the faults.
    pub fn direct_url(&self) -> String {
        match &self.sqld {
            Some(s) => s.url(),
            None => self.proxy.url(),
        }
    }

    /// Stops the servers; returns the database file that was served.
    pub fn stop(&mut self) -> PathBuf {
        self.proxy.kill();
        if let Some(s) = &mut self.sqld {
            s.stop();
        }
        self.file.clone()
    }
}

/// Says once per suite that the fault tests run without sqld.
pub fn say_once_without_sqld() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!("SQLD_BIN is not set: the fault tests run against hrana-test-server serving the file itself")
    });
}

/// The held-transaction tests' ground: a small legacy file (`seed`)
/// served, a pipeline straight to its database with a table `t (id)`
/// made, and an application's connection beside it.
pub struct Ground {
    /// Holds the served file.
    pub dir: tempfile::TempDir,
    pub served: Faulty,
    pub pipeline: memory_storage_turso::connect::pipeline::Pipeline,
    pub app: libsql::Connection,
}

pub async fn pipeline_with_table(seed: u64) -> Ground {
    use memory_storage_turso::connect::pipeline::{Pipeline, Statement};
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    test_support::sample_db(&legacy, 10, 0, seed).await;
    let served = Faulty::start(&legacy, dir.path(), &[]);
    let url = served.direct_url();
    let pipeline = Pipeline::new(&url, &served.token, Duration::from_secs(30)).unwrap();
    pipeline
        .transaction(vec![Statement::new(
            "CREATE TABLE t (id INTEGER PRIMARY KEY)",
            vec![],
        )])
        .await
        .unwrap();
    let app = libsql::Builder::new_remote(url, served.token.clone())
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    Ground {
        dir,
        served,
        pipeline,
        app,
    }
}

/// The ids in `t`, in order.
pub async fn ids_in_t(conn: &libsql::Connection) -> Vec<i64> {
    let mut rows = conn
        .query("SELECT id FROM t ORDER BY id", ())
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        ids.push(row.get::<i64>(0).unwrap());
    }
    ids
}
