//! libSQL's own server, `sqld`, for the remote suites: started on a free
//! loopback port with a database directory of its own (optionally serving
//! a legacy file as its database), JWT authentication on with a key pair
//! made here, and stopped by its pid. The binary comes from `SQLD_BIN`
//! (`.ci/run` sets it to `../shared/bin/sqld`); without it the suites run
//! against `hrana-test-server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};

/// The `sqld` binary to test against, if one is given.
pub fn sqld_binary() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("SQLD_BIN")?);
    path.exists().then_some(path)
}

/// A running `sqld`.
pub struct Sqld {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// A JWT the server accepts (full access).
    pub token: String,
    key: SigningKey,
    /// Further command-line options (`--max-response-size`, say).
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut seed)
        .unwrap();
    seed
}

impl Sqld {
    /// Starts `sqld` from `binary` on an empty database, or on a copy of
    /// `legacy` placed as its database; returns once it answers.
    pub fn start(binary: &Path, legacy: Option<&Path>) -> Sqld {
        Self::start_with(binary, legacy, &[])
    }

    /// As [`Sqld::start`], with further command-line options for sqld.
    pub fn start_with(binary: &Path, legacy: Option<&Path>, args: &[&str]) -> Sqld {
        let dir = tempfile::tempdir().unwrap();
        if let Some(file) = legacy {
            let data = dir.path().join("db/dbs/default");
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(file, data.join("data")).unwrap();
        }
        let key = SigningKey::from_bytes(&random_seed());
        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        std::fs::write(dir.path().join("jwt.key"), public).unwrap();
        let mut server = Sqld {
            child: None,
            dir,
            port: 0,
            token: String::new(),
            key,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.token = server.sign(r#"{}"#);
        server.run(binary);
        server
    }

    /// A JWT over `claims`, signed with this server's key.
    pub fn sign(&self, claims: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims);
        let signed = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(signed.as_bytes()).to_bytes());
        format!("{signed}.{signature}")
    }

    fn run(&mut self, binary: &Path) {
        if self.port == 0 {
            self.port = free_port();
        }
        let log = std::fs::File::create(self.dir.path().join("sqld.log")).unwrap();
        let child = Command::new(binary)
            .arg("--db-path")
            .arg(self.dir.path().join("db"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--auth-jwt-key-file")
            .arg(self.dir.path().join("jwt.key"))
            .arg("--no-welcome")
            // sqld 0.24.33 deadlocks when it forces the rollback of a write
            // transaction held past 5 s and that rollback runs the WAL's
            // frame-count autocheckpoint: the rollback runs on the waiting
            // writer's thread, and the checkpoint waits for the write slot
            // just handed to that same writer. The server then spins on a
            // core and never answers a write again (seen twice in CI, the
            // suite hanging until its limit; docs/design.md). A time-based
            // checkpoint turns the frame-count one off; an hour never
            // comes within a test. The tests force such rollbacks on purpose.
            .args(["--checkpoint-interval-s", "3600"])
            .args(&self.args)
            // sqld logs to stdout; both go to the log a failing test shows.
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "sqld did not answer within 30 s: {}",
                self.log()
            );
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sqld exited ({status}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sqld.log")).unwrap_or_default()
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The database file the server serves (read it once it is stopped).
    pub fn database_file(&self) -> PathBuf {
        self.dir.path().join("db/dbs/default/data")
    }

    /// Stops the server (SIGTERM by its pid, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let began = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if began.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the stopped server again on the same database and port.
    pub fn restart(&mut self, binary: &Path) {
        self.stop();
        self.run(binary);
    }
}

impl Drop for Sqld {
    /// Stops the server; in a failing test, shows the end of its log with
    /// the failure (a CI failure is otherwise all that is left of it).
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            eprintln!("--- the last {LOG_TAIL} lines of sqld's log ---\n{tail}");
        }
    }
}

/// Lines of sqld's log a failing test shows.
const LOG_TAIL: usize = 40;
